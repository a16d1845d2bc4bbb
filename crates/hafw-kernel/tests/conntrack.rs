//! Conntrack through ctnetlink in throw-away namespaces: round trip of
//! created entries, events, a live NAT'd TCP connection that survives a
//! flush and a move to a second firewall thanks to re-created entries
//! (linux-kernel-notes trap 3), and batch throughput.

mod common;

use std::io::{Read, Write as _};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::Lab;
use hafw_kernel::conntrack::{
    proto, status, tcp_state, Conntrack, Entry, Event, Events, TcpInfo, Tuple,
};
use hafw_kernel::{command, in_netns, nft, sysctl};

const INJECTED: u32 = 1 << 31;

/// Namespace tests need root; HAFW_SKIP_NS_TESTS=1 makes them say so and pass.
fn enabled() -> bool {
    if std::env::var("HAFW_SKIP_NS_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: HAFW_SKIP_NS_TESTS=1");
        return false;
    }
    // SAFETY: geteuid has no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "namespace tests need root (or set HAFW_SKIP_NS_TESTS=1)"
    );
    true
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Runs `ip ARGS` inside `ns`, panicking with ip's message on failure.
fn ipcmd(ns: &str, args: &str) {
    let out = command(ns, "ip")
        .unwrap()
        .args(args.split_whitespace())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip {args} in {ns}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn established(orig: Tuple, reply: Tuple) -> Entry {
    Entry {
        orig,
        reply,
        status: status::SEEN_REPLY | status::ASSURED | status::CONFIRMED,
        timeout: 3600,
        mark: 0x42,
        zone: 0,
        id: None,
        tcp: Some(TcpInfo {
            state: tcp_state::ESTABLISHED,
            wscale_orig: 7,
            wscale_reply: 7,
            flags_orig: 0x03,
            flags_reply: 0x03,
        }),
    }
}

fn find<'a>(entries: &'a [Entry], orig: &Tuple) -> Option<&'a Entry> {
    entries.iter().find(|e| e.orig == *orig)
}

#[test]
fn conntrack_created_entries_dump_back_with_nat_state_and_mark() {
    if !enabled() {
        return;
    }
    let lab = Lab::new(&["ctrt"]);
    let ns = Some(lab.name(0));
    let mut ct = Conntrack::open(ns).unwrap();
    ct.set_inject_mark(INJECTED);

    let dnat_snat = established(
        Tuple::tcp(ip("198.51.100.7"), 50000, ip("203.0.113.10"), 443),
        Tuple::tcp(ip("10.0.1.5"), 8443, ip("10.0.1.254"), 61000),
    );
    let snat = established(
        Tuple::tcp(ip("10.0.1.5"), 40000, ip("198.51.100.9"), 80),
        Tuple::tcp(ip("198.51.100.9"), 80, ip("203.0.113.20"), 40000),
    );
    let dnat = established(
        Tuple::tcp(ip("198.51.100.8"), 50001, ip("203.0.113.10"), 80),
        Tuple::tcp(ip("10.0.1.6"), 80, ip("198.51.100.8"), 50001),
    );
    let udp = Entry {
        tcp: None,
        status: status::SEEN_REPLY | status::CONFIRMED,
        timeout: 120,
        ..established(
            Tuple::udp(ip("10.0.0.1"), 5353, ip("10.0.0.2"), 53),
            Tuple::udp(ip("10.0.0.2"), 53, ip("10.0.0.1"), 5353),
        )
    };
    let icmp = Entry {
        tcp: None,
        status: status::CONFIRMED,
        timeout: 30,
        ..established(
            Tuple::icmp(ip("10.0.0.1"), ip("10.0.0.2"), 77, 8, 0),
            Tuple::icmp(ip("10.0.0.2"), ip("10.0.0.1"), 77, 0, 0),
        )
    };
    let all = [dnat_snat, snat, dnat, udp, icmp];
    for e in &all {
        ct.create(e).unwrap();
    }
    let dumped = ct.dump().unwrap();
    assert_eq!(dumped.len(), all.len(), "{dumped:#?}");
    for want in &all {
        let got = find(&dumped, &want.orig).unwrap_or_else(|| panic!("{} missing", want.orig));
        assert_eq!(got.reply, want.reply, "reply of {}", want.orig);
        assert_eq!(got.nat(), want.nat(), "NAT of {}", want.orig);
        assert_eq!(got.mark, want.mark | INJECTED);
        assert!(got.id.is_some());
        assert!(got.timeout <= want.timeout && got.timeout + 5 >= want.timeout);
        let keep = status::SEEN_REPLY | status::ASSURED | status::CONFIRMED;
        assert_eq!(
            got.status & keep,
            want.status & keep,
            "status of {}",
            want.orig
        );
        // The kernel set the NAT bits itself from CTA_NAT_*.
        let nat = want.nat();
        let snat = nat.and_then(|n| n.snat).is_some();
        let dnat = nat.and_then(|n| n.dnat).is_some();
        assert_eq!(got.status & status::SRC_NAT != 0, snat, "{}", want.orig);
        assert_eq!(got.status & status::DST_NAT != 0, dnat, "{}", want.orig);
        if want.orig.proto == proto::TCP {
            let tcp = got.tcp.unwrap();
            assert_eq!(tcp.state, tcp_state::ESTABLISHED);
            assert_eq!((tcp.wscale_orig, tcp.wscale_reply), (7, 7));
            assert_eq!(tcp.flags_orig & 0x03, 0x03);
        }
    }

    // Creating again is an update (upsert): timeout and mark change.
    let mut again = dnat_snat;
    again.timeout = 100;
    again.mark = 0x7;
    ct.create(&again).unwrap();
    let got = *find(&ct.dump().unwrap(), &again.orig).unwrap();
    assert!(got.timeout <= 100, "{got:?}");
    assert_eq!(got.mark, 0x7 | INJECTED);
    assert_eq!(got.reply, dnat_snat.reply, "an update must keep the NAT");

    // Update of a missing entry is refused with ENOENT.
    let mut ghost = udp;
    ghost.orig.src_port = 1;
    let err = ct.update(&ghost).unwrap_err();
    assert_eq!(err.errno(), Some(libc::ENOENT), "{err}");

    // Delete: present, then absent (still Ok); flush empties the table.
    ct.delete(&udp.orig, 0).unwrap();
    ct.delete(&udp.orig, 0).unwrap();
    assert!(find(&ct.dump().unwrap(), &udp.orig).is_none());
    ct.flush().unwrap();
    assert!(ct.dump().unwrap().is_empty());
    assert_eq!(ct.malformed(), 0);
}

/// Reads events until `pick` accepts one, for at most 5 s.
fn wait_for(events: &mut Events, what: &str, mut pick: impl FnMut(&Event) -> bool) -> Event {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match events.recv(Some(left)).unwrap() {
            Some(ev) if pick(&ev) => return ev,
            Some(ev) => seen.push(ev),
            None => break,
        }
    }
    panic!("no {what} event within 5 s; saw {seen:#?}");
}

#[test]
fn conntrack_events_tell_new_update_destroy_and_skip_injected_entries() {
    if !enabled() {
        return;
    }
    let lab = Lab::new(&["ctev"]);
    let ns = Some(lab.name(0));
    let mut events = Events::open(ns).unwrap();
    events.ignore_mark(INJECTED);
    let mut plain = Conntrack::open(ns).unwrap();
    let mut injector = Conntrack::open(ns).unwrap();
    injector.set_inject_mark(INJECTED);

    // An injected entry first: its events must be filtered out.
    let synced = established(
        Tuple::tcp(ip("10.9.0.1"), 1000, ip("10.9.0.2"), 22),
        Tuple::tcp(ip("10.9.0.2"), 22, ip("10.9.0.1"), 1000),
    );
    injector.create(&synced).unwrap();
    let local = established(
        Tuple::tcp(ip("10.8.0.1"), 2000, ip("10.8.0.2"), 80),
        Tuple::tcp(ip("10.8.0.2"), 80, ip("192.0.2.1"), 2000),
    );
    plain.create(&local).unwrap();
    let ev = wait_for(&mut events, "new", |ev| matches!(ev, Event::New(_)));
    let Event::New(e) = ev else { unreachable!() };
    assert_eq!(
        e.orig, local.orig,
        "the injected entry's New was not filtered"
    );
    assert_eq!(e.reply, local.reply);
    assert!(
        events.ignored() >= 1,
        "the injected entry's event was not seen"
    );

    let mut changed = local;
    changed.tcp = Some(TcpInfo {
        state: tcp_state::FIN_WAIT,
        ..local.tcp.unwrap()
    });
    plain.update(&changed).unwrap();
    let ev = wait_for(&mut events, "update", |ev| matches!(ev, Event::Update(_)));
    assert_eq!(ev.entry().unwrap().orig, local.orig);
    assert_eq!(ev.entry().unwrap().tcp.unwrap().state, tcp_state::FIN_WAIT);

    plain.delete(&local.orig, 0).unwrap();
    injector.delete(&synced.orig, 0).unwrap();
    let ev = wait_for(&mut events, "destroy", |ev| matches!(ev, Event::Destroy(_)));
    assert_eq!(ev.entry().unwrap().orig, local.orig);
    assert!(
        events
            .recv(Some(Duration::from_millis(300)))
            .unwrap()
            .is_none(),
        "the injected entry's destroy was not filtered"
    );

    // Real traffic: conntrack hooks run once a ruleset uses them.
    nft::apply(
        ns,
        "table inet hkt_ct {\n  chain input {\n    type filter hook input priority 0; policy accept;\n    ct state invalid drop\n  }\n}\n",
    )
    .unwrap();
    let listener = in_netns(ns, || TcpListener::bind("127.0.0.1:0"))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let client = in_netns(ns, || TcpStream::connect(("127.0.0.1", port)))
        .unwrap()
        .unwrap();
    let (_server, _) = listener.accept().unwrap();
    let is_ours = |ev: &Event| {
        ev.entry()
            .is_some_and(|e| e.orig.proto == proto::TCP && e.orig.dst_port == port)
    };
    let new = wait_for(&mut events, "new TCP", |ev| {
        matches!(ev, Event::New(_)) && is_ours(ev)
    });
    assert_eq!(
        new.entry().unwrap().orig.src_port,
        client.local_addr().unwrap().port()
    );
    wait_for(&mut events, "established", |ev| {
        matches!(ev, Event::Update(_))
            && is_ours(ev)
            && ev.entry().unwrap().tcp.map(|t| t.state) == Some(tcp_state::ESTABLISHED)
    });
    assert_eq!(events.malformed(), 0);
}

/// The NAT ruleset of both firewalls, like the seed's: DNAT of the service,
/// SNAT toward the servers, invalid packets dropped so that a missing entry
/// shows as a stall rather than being hidden. Input drops them too: the SNAT
/// address is local, so a server segment without an entry would otherwise
/// meet the firewall's own TCP stack and be answered with a reset.
const FW_RULES: &str = "table ip hkt_nat {
    chain prerouting {
        type nat hook prerouting priority -100; policy accept;
        ip daddr 203.0.113.10 tcp dport 8080 dnat to 10.0.1.5:9090
    }
    chain postrouting {
        type nat hook postrouting priority 100; policy accept;
        oifname \"f1\" snat to 10.0.1.254
    }
    chain forward {
        type filter hook forward priority 0; policy accept;
        ct state invalid drop
    }
    chain input {
        type filter hook input priority 0; policy accept;
        ct state invalid drop
    }
}
";

/// A firewall namespace: `f0` toward the client, `f1` toward the server,
/// the same addresses on every firewall (floating, as on a HAVIP).
fn build_fw(fw: &str, client: &str, c_if: &str, server: &str, s_if: &str) {
    ipcmd(
        fw,
        &format!("link add f0 type veth peer name {c_if} netns {client}"),
    );
    ipcmd(
        fw,
        &format!("link add f1 type veth peer name {s_if} netns {server}"),
    );
    ipcmd(fw, "addr add 198.51.100.1/24 dev f0");
    ipcmd(fw, "addr add 10.0.1.1/24 dev f1");
    ipcmd(fw, "addr add 10.0.1.254/24 dev f1");
    ipcmd(fw, "link set f0 up");
    ipcmd(fw, "link set f1 up");
    ipcmd(client, &format!("addr add 198.51.100.2/24 dev {c_if}"));
    ipcmd(client, &format!("link set {c_if} up"));
    ipcmd(server, &format!("addr add 10.0.1.5/24 dev {s_if}"));
    ipcmd(server, &format!("link set {s_if} up"));
    sysctl::set(Some(fw), "net.ipv4.ip_forward", "1").unwrap();
    sysctl::set(Some(fw), "net.netfilter.nf_conntrack_tcp_loose", "0").unwrap();
    sysctl::set(Some(fw), "net.netfilter.nf_conntrack_tcp_be_liberal", "0").unwrap();
    nft::apply(Some(fw), FW_RULES).unwrap();
}

struct Conn {
    client: TcpStream,
    server: TcpStream,
    n: u32,
}

impl Conn {
    /// Client -> server, then server -> client; `Err` when either leg does
    /// not arrive within `wait`.
    fn exchange(&mut self, wait: Duration) -> Result<(), String> {
        self.n += 1;
        let msg = format!("ping {:06}", self.n);
        self.client.write_all(msg.as_bytes()).unwrap();
        self.server.set_read_timeout(Some(wait)).unwrap();
        let mut got = vec![0; msg.len()];
        self.server
            .read_exact(&mut got)
            .map_err(|e| format!("server did not get {msg:?}: {e}"))?;
        assert_eq!(got, msg.as_bytes());
        let back = format!("pong {:06}", self.n);
        self.server.write_all(back.as_bytes()).unwrap();
        self.client.set_read_timeout(Some(wait)).unwrap();
        let mut got = vec![0; back.len()];
        self.client
            .read_exact(&mut got)
            .map_err(|e| format!("client did not get {back:?}: {e}"))?;
        assert_eq!(got, back.as_bytes());
        Ok(())
    }

    /// Sends a message that must *not* reach the server within `wait`;
    /// it is read later, once the path works again. `Err` says what the
    /// server got instead of a timeout.
    fn stalls(&mut self, wait: Duration) -> Result<(), String> {
        self.n += 1;
        let msg = format!("ping {:06}", self.n);
        self.client.write_all(msg.as_bytes()).unwrap();
        self.server.set_read_timeout(Some(wait)).unwrap();
        let mut b = [0u8; 16];
        match self.server.peek(&mut b) {
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                Ok(())
            }
            Err(e) => Err(format!("server read failed: {e}")),
            Ok(n) => Err(format!("server got {:?}", String::from_utf8_lossy(&b[..n]))),
        }
    }

    /// Reads the message [`Conn::stalls`] left in flight, and answers it.
    fn finish_stalled(&mut self, wait: Duration) -> Result<(), String> {
        let msg = format!("ping {:06}", self.n);
        self.server.set_read_timeout(Some(wait)).unwrap();
        let mut got = vec![0; msg.len()];
        self.server
            .read_exact(&mut got)
            .map_err(|e| format!("server did not get the stalled {msg:?}: {e}"))?;
        assert_eq!(got, msg.as_bytes());
        Ok(())
    }
}

fn service_entry(entries: &[Entry]) -> Entry {
    *entries
        .iter()
        .find(|e| e.orig.dst == ip("203.0.113.10") && e.orig.dst_port == 8080)
        .unwrap_or_else(|| panic!("no entry for the service in {entries:#?}"))
}

#[test]
fn conntrack_live_nat_connection_survives_flush_and_move_to_a_second_firewall() {
    if !enabled() {
        return;
    }
    let lab = Lab::new(&["cli", "fw1", "fw2", "srv"]);
    let (cli, fw1, fw2, srv) = (lab.name(0), lab.name(1), lab.name(2), lab.name(3));
    build_fw(fw1, cli, "c0", srv, "s0");
    build_fw(fw2, cli, "c1", srv, "s1");
    ipcmd(cli, "route add 203.0.113.10/32 via 198.51.100.1 dev c0");
    ipcmd(srv, "route add 10.0.1.254/32 dev s0");

    let listener = in_netns(Some(srv), || TcpListener::bind("10.0.1.5:9090"))
        .unwrap()
        .unwrap();
    let client = in_netns(Some(cli), || {
        TcpStream::connect_timeout(
            &"203.0.113.10:8080".parse().unwrap(),
            Duration::from_secs(3),
        )
    })
    .unwrap()
    .unwrap();
    let (server, peer) = listener.accept().unwrap();
    // The server sees the SNAT address, the client the service address.
    assert_eq!(peer.ip(), ip("10.0.1.254"));
    assert_eq!(
        client.peer_addr().unwrap(),
        "203.0.113.10:8080".parse().unwrap()
    );
    let mut conn = Conn {
        client,
        server,
        n: 0,
    };
    let fast = Duration::from_secs(2);
    conn.exchange(fast).unwrap();

    // Dump fw1's entry: DNAT to the server, SNAT to 10.0.1.254.
    let mut ct1 = Conntrack::open(Some(fw1)).unwrap();
    let entry = service_entry(&ct1.dump().unwrap());
    let nat = entry.nat().expect("the entry carries NAT");
    assert_eq!(nat.dnat.unwrap().addr, ip("10.0.1.5"));
    assert_eq!(nat.dnat.unwrap().port, 9090);
    assert_eq!(nat.snat.unwrap().addr, ip("10.0.1.254"));
    assert_eq!(entry.reply.dst_port, peer.port());
    assert_eq!(entry.tcp.unwrap().state, tcp_state::ESTABLISHED);

    // Flush: with tcp_loose=0 the next segment finds no entry and is dropped.
    ct1.flush().unwrap();
    if let Err(e) = conn.stalls(Duration::from_secs(1)) {
        panic!("data passed fw1 without an entry: {e}");
    }

    // Restore from the dump: the same connection resumes, NAT intact.
    ct1.create(&entry).unwrap();
    let restored = service_entry(&ct1.dump().unwrap());
    assert_eq!((restored.orig, restored.reply), (entry.orig, entry.reply));
    conn.finish_stalled(Duration::from_secs(10)).unwrap();
    conn.exchange(fast).unwrap();

    // Failover: routes move to fw2, which has never seen the connection.
    let snapshot = service_entry(&ct1.dump().unwrap());
    ipcmd(fw1, "link set f0 down");
    ipcmd(fw1, "link set f1 down");
    ipcmd(cli, "route replace 203.0.113.10/32 via 198.51.100.1 dev c1");
    ipcmd(srv, "route replace 10.0.1.254/32 dev s1");
    if let Err(e) = conn.stalls(Duration::from_secs(1)) {
        let fw2_table = Conntrack::open(Some(fw2)).unwrap().dump().unwrap();
        panic!("data passed fw2 without a synced entry ({e}); fw2 has {fw2_table:#?}");
    }

    // Session sync: install fw1's entry in fw2; the connection continues.
    let mut ct2 = Conntrack::open(Some(fw2)).unwrap();
    ct2.set_inject_mark(INJECTED);
    ct2.create(&snapshot).unwrap();
    conn.finish_stalled(Duration::from_secs(10)).unwrap();
    for _ in 0..5 {
        conn.exchange(fast).unwrap();
    }
    let on_fw2 = service_entry(&ct2.dump().unwrap());
    assert_eq!((on_fw2.orig, on_fw2.reply), (snapshot.orig, snapshot.reply));
    assert_eq!(on_fw2.mark & INJECTED, INJECTED);
    assert_eq!(on_fw2.tcp.unwrap().state, tcp_state::ESTABLISHED);
}

/// `n` distinct TCP entries; every other one SNAT'd to a unique port.
fn many(n: usize) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let src = Ipv4Addr::new(10, (i >> 16) as u8, (i >> 8) as u8, i as u8);
            let orig = Tuple::tcp(src, 40000, ip("198.51.100.9"), 443);
            let reply = if i % 2 == 0 {
                let nat = Ipv4Addr::new(203, 0, 113, 1 + (i / 60000) as u8);
                Tuple::tcp(ip("198.51.100.9"), 443, nat, 1024 + (i % 60000) as u16)
            } else {
                Tuple::tcp(ip("198.51.100.9"), 443, src, 40000)
            };
            established(orig, reply)
        })
        .collect()
}

fn measure(ns: &str, n: usize) {
    let mut ct = Conntrack::open(Some(ns)).unwrap();
    ct.flush().unwrap();
    let entries = many(n);
    let t = Instant::now();
    let report = ct.create_batch(&entries).unwrap();
    let create = t.elapsed();
    assert_eq!(
        report.created,
        n,
        "{:?}",
        &report.failed[..report.failed.len().min(5)]
    );
    assert!(report.failed.is_empty());
    let t = Instant::now();
    let dumped = ct.dump().unwrap();
    let dump = t.elapsed();
    assert_eq!(dumped.len(), n);
    for e in [&entries[0], &entries[1], &entries[n - 1]] {
        assert_eq!(find(&dumped, &e.orig).unwrap().reply, e.reply);
    }
    // Again: every entry exists, so the batch updates them all.
    let t = Instant::now();
    let again = ct.create_batch(&entries).unwrap();
    let update = t.elapsed();
    assert_eq!((again.created, again.updated), (0, n));
    let rate = |d: Duration| n as f64 / d.as_secs_f64();
    println!(
        "conntrack {n} entries: create_batch {:?} ({:.0}/s, {} sendmsg), dump {:?} ({:.0}/s), \
         update batch {:?} ({:.0}/s)",
        create,
        rate(create),
        report.sends,
        dump,
        rate(dump),
        update,
        rate(update)
    );
    ct.flush().unwrap();
}

#[test]
fn conntrack_batch_create_and_dump_of_ten_thousand() {
    if !enabled() {
        return;
    }
    let lab = Lab::new(&["ctbatch"]);
    measure(lab.name(0), 1_000);
    measure(lab.name(0), 10_000);
}

/// 100k entries: run with `-- --ignored --nocapture` for the figure.
#[test]
#[ignore]
fn conntrack_batch_create_and_dump_of_a_hundred_thousand() {
    if !enabled() {
        return;
    }
    let lab = Lab::new(&["ctbig"]);
    measure(lab.name(0), 100_000);
}

#[test]
fn conntrack_events_overrun_is_reported_and_events_go_on() {
    if !enabled() {
        return;
    }
    let lab = Lab::new(&["ctovr"]);
    let ns = Some(lab.name(0));
    let mut events = Events::open(ns).unwrap();
    let mut ct = Conntrack::open(ns).unwrap();
    // More events than the 8 MiB buffer (doubled by the kernel) can hold
    // while nobody reads.
    let report = ct.create_batch(&many(40_000)).unwrap();
    assert!(report.failed.is_empty(), "{:?}", &report.failed[..5]);
    let mut overrun = false;
    let mut news = 0;
    while let Some(ev) = events.recv(Some(Duration::from_millis(500))).unwrap() {
        match ev {
            Event::Overrun => overrun = true,
            Event::New(_) => news += 1,
            _ => {}
        }
        if overrun && news > 0 {
            break;
        }
    }
    assert!(
        overrun,
        "40k unread events did not overrun ({news} news read)"
    );
    // Read what is left, then the subscription must still deliver.
    while events
        .recv(Some(Duration::from_millis(300)))
        .unwrap()
        .is_some()
    {}
    let e = established(
        Tuple::tcp(ip("10.7.0.1"), 1, ip("10.7.0.2"), 2),
        Tuple::tcp(ip("10.7.0.2"), 2, ip("10.7.0.1"), 1),
    );
    ct.create(&e).unwrap();
    wait_for(
        &mut events,
        "new after overrun",
        |ev| matches!(ev, Event::New(n) if n.orig == e.orig),
    );
}

#[test]
fn conntrack_delete_batch_removes_exactly_the_entries_named() {
    if !enabled() {
        return;
    }
    let lab = Lab::new(&["ctdelb"]);
    let mut ct = Conntrack::open(Some(lab.name(0))).unwrap();
    ct.flush().unwrap();
    let entries = many(3_000);
    assert!(ct.create_batch(&entries).unwrap().failed.is_empty());
    // Every other entry, plus one that was never created (not an error).
    let mut gone: Vec<Tuple> = entries.iter().step_by(2).map(|e| e.orig).collect();
    gone.push(Tuple::tcp(ip("10.200.0.1"), 1, ip("198.51.100.9"), 443));
    let refused = ct.delete_batch(&gone).unwrap();
    assert!(refused.is_empty(), "{refused:?}");
    let left = ct.dump().unwrap();
    assert_eq!(left.len(), 1_500);
    for (i, e) in entries.iter().enumerate() {
        assert_eq!(find(&left, &e.orig).is_some(), i % 2 == 1, "entry {i}");
    }
    assert!(ct.delete_batch(&[]).unwrap().is_empty());
    ct.flush().unwrap();
}
