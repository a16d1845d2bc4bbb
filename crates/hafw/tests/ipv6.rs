//! IPv6 under the policy: a standalone fw-a in a lab, a TCP listener on
//! `[::]` inside it, and IPv6 aimed at it from the VPC over untrust's
//! link-local address and over a global (ULA) one, and IPv6 forwarded
//! through it from the server side. The file allows no IPv6, so each is
//! dropped and counted by the ruleset's named counters, while neighbour
//! discovery keeps working on the link. The addresses are ULAs the test
//! adds inside the lab's own namespaces, which go with the lab.

mod common;
mod standalone;

use std::net::{Ipv6Addr, SocketAddr, SocketAddrV6, TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hafw_model::render::nft::counters;
use standalone::{counted, ip, sh, Node};

const SEED: &str = "alicloud-havip.toml";
const PORT: u16 = 7013;

/// A TCP listener on `[::]:PORT` in fw-a (IPv4 and IPv6), counting the
/// connections it accepts.
fn listen(lab: &Lab) -> Arc<AtomicUsize> {
    let listener = hafw_kernel::in_netns(Some(&lab.ns("fw-a")), || {
        TcpListener::bind((Ipv6Addr::UNSPECIFIED, PORT))
    })
    .unwrap()
    .unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    std::thread::spawn(move || {
        for s in listener.incoming() {
            if s.is_ok() {
                count.fetch_add(1, Ordering::SeqCst);
            }
        }
    });
    accepted
}

/// A TCP connection from namespace `ns` to `to` (with the scope of `dev`
/// for a link-local address), tried for at most `timeout`.
fn connect(ns: &str, to: Ipv6Addr, dev: Option<&str>, timeout: Duration) -> std::io::Result<()> {
    let dev = dev.map(str::to_string);
    hafw_kernel::in_netns(Some(ns), move || {
        let scope = match dev {
            Some(d) => {
                let name = std::ffi::CString::new(d).unwrap();
                // SAFETY: a valid NUL-terminated string.
                match unsafe { libc::if_nametoindex(name.as_ptr()) } {
                    0 => return Err(std::io::Error::last_os_error()),
                    i => i,
                }
            }
            None => 0,
        };
        let addr = SocketAddr::V6(SocketAddrV6::new(to, PORT, 0, scope));
        TcpStream::connect_timeout(&addr, timeout).map(|_| ())
    })
    .unwrap()
}

/// The link-local address of `dev` in `ns`.
fn link_local(ns: &str, dev: &str) -> Ipv6Addr {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let (_, out) = sh(ns, &format!("ip -6 -o addr show dev {dev} scope link"));
        // DAD done: the address is no longer tentative.
        if let Some(a) = out
            .split_whitespace()
            .skip_while(|w| *w != "inet6")
            .nth(1)
            .filter(|_| !out.contains("tentative"))
        {
            return a.split('/').next().unwrap().parse().unwrap();
        }
        assert!(
            Instant::now() < end,
            "no link-local on {dev} in {ns}: {out}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn ipv6_to_and_through_the_node_is_dropped_and_counted() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "v6");
    let dep = hafw_model::parse("seed", &std::fs::read_to_string(example(SEED)).unwrap()).unwrap();
    let topo = hafw_lab::topology::build(&dep, &lab.name).unwrap();
    let vpc_dev = |eni: &str| {
        topo.ports
            .iter()
            .find(|p| p.eni == eni)
            .map(|p| p.vpc_dev.clone())
            .unwrap()
    };
    let (untrust_vpc, trust_vpc) = (vpc_dev("fw-a-untrust"), vpc_dev("fw-a-trust"));
    let web = topo
        .veths
        .iter()
        .find(|v| v.b_ns == lab.ns("web"))
        .unwrap()
        .clone();
    let (vpc, fw) = (lab.ns("vpc"), lab.ns("fw-a"));
    let config = example_copy(SEED);
    let node = Node::start(&lab, config.path());
    let accepted = listen(&lab);

    // The control: the listener works (over loopback, which the input
    // chain accepts).
    assert!(connect(&fw, Ipv6Addr::LOCALHOST, None, Duration::from_secs(1)).is_ok());
    let end = Instant::now() + Duration::from_secs(2);
    while accepted.load(Ordering::SeqCst) == 0 && Instant::now() < end {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 1, "the listener works");

    // 1. Over untrust's link-local address.
    let untrust_nic = topo.port("fw-a-untrust").unwrap().dev.clone();
    let ll = link_local(&fw, &untrust_nic);
    // The VPC end's own link-local must be past DAD, or the connection
    // fails before a packet leaves and the count proves nothing.
    link_local(&vpc, &untrust_vpc);
    let before_in = counted(&lab, counters::IPV6_INPUT);
    let r = connect(&vpc, ll, Some(&untrust_vpc), Duration::from_millis(1500));
    assert!(r.is_err(), "a connection over {ll} was accepted");
    let after_ll = counted(&lab, counters::IPV6_INPUT);
    assert!(
        after_ll > before_in,
        "the SYN to {ll} was not counted ({before_in} -> {after_ll})"
    );
    // Neighbour discovery still works: the VPC resolved fw-a's address.
    let (_, neigh) = sh(&vpc, &format!("ip -6 neigh show {ll} dev {untrust_vpc}"));
    assert!(
        neigh.contains("lladdr") && !neigh.contains("FAILED"),
        "fw-a did not answer neighbour solicitation: {neigh}"
    );

    // 2. Over a global (ULA) address on untrust.
    ip(
        &vpc,
        &format!("-6 addr add fd00:13::1/64 dev {untrust_vpc} nodad"),
    );
    ip(
        &fw,
        &format!("-6 addr add fd00:13::2/64 dev {untrust_nic} nodad"),
    );
    let r = connect(
        &vpc,
        "fd00:13::2".parse().unwrap(),
        None,
        Duration::from_millis(1500),
    );
    assert!(r.is_err(), "a connection over fd00:13::2 was accepted");
    let after_global = counted(&lab, counters::IPV6_INPUT);
    assert!(
        after_global > after_ll,
        "the SYN to fd00:13::2 was not counted"
    );
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(
        accepted.load(Ordering::SeqCst),
        1,
        "the listener accepted IPv6 from outside"
    );

    // 3. Forwarded: from the VPC's untrust side to the web server, through
    // fw-a (untrust -> trust), on a host that forwards IPv6 (the node does
    // not turn it off; a host may have it on). The VPC sends it from
    // fd00:13::1 (a rule for its own packets only) to fw-a's untrust
    // side; fw-a routes it out of trust; the VPC delivers it to the server.
    ip(
        &vpc,
        &format!("-6 addr add fd00:14::1/64 dev {trust_vpc} nodad"),
    );
    ip(
        &vpc,
        &format!("-6 addr add fd00:15::1/64 dev {} nodad", web.a_name),
    );
    ip(
        &lab.ns("web"),
        &format!("-6 addr add fd00:15::10/64 dev {} nodad", web.b_name),
    );
    let trust_nic = topo.port("fw-a-trust").unwrap().dev.clone();
    ip(
        &fw,
        &format!("-6 addr add fd00:14::2/64 dev {trust_nic} nodad"),
    );
    ip(
        &fw,
        &format!("-6 route add fd00:15::/64 via fd00:14::1 dev {trust_nic}"),
    );
    ip(
        &vpc,
        "-6 rule add from fd00:13::1 iif lo lookup 1300 pref 50",
    );
    ip(
        &vpc,
        &format!("-6 route add fd00:15::/64 via fd00:13::2 dev {untrust_vpc} table 1300"),
    );
    for ns in [&vpc, &fw] {
        hafw_kernel::sysctl::set(Some(ns), "net.ipv6.conf.all.forwarding", "1").unwrap();
    }
    let before = counted(&lab, counters::IPV6_FORWARD);
    let sink = udp_in(&lab.ns("web"), "[fd00:15::10]:7014");
    sink.set_read_timeout(Some(Duration::from_millis(1500)))
        .unwrap();
    let source = udp_in(&vpc, "[fd00:13::1]:0");
    for _ in 0..3 {
        source.send_to(b"through", "[fd00:15::10]:7014").unwrap();
    }
    let mut buf = [0u8; 64];
    let got = sink.recv_from(&mut buf);
    assert!(got.is_err(), "IPv6 was forwarded through fw-a: {got:?}");
    let forwarded = counted(&lab, counters::IPV6_FORWARD) - before;
    assert!(forwarded >= 3, "forwarded IPv6 counted {forwarded}");

    // `--check` ignores the named counters' counts, which are not zero now.
    let audit = audit_log("ipv6");
    let check = run(&[
        "lab",
        "exec",
        &lab.name,
        "fw-a",
        "--",
        hafw(),
        "run",
        "--config",
        config.path().to_str().unwrap(),
        "--node",
        "fw-a",
        "--check",
        "--standalone",
        "--audit-log",
        audit.path().to_str().unwrap(),
    ]);
    let said = String::from_utf8_lossy(&check.stdout).to_string()
        + &String::from_utf8_lossy(&check.stderr);
    assert!(
        check.status.success() && said.contains("no differences"),
        "{said}"
    );

    eprintln!(
        "ipv6_input_dropped: link-local {}, global {}; ipv6_forward_dropped {forwarded}",
        after_ll - before_in,
        after_global - after_ll
    );
    drop(node);
}
