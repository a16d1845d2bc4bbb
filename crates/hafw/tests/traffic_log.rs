//! The traffic log in a lab pair (`docs/logs.md`): a denied packet with its
//! default deny and 5-tuple, a rule with `log = true`, a session's end
//! with its bytes, the seed's DNAT and SNAT as NAT records matching what
//! the hosts saw, RFC 5424 to a UDP collector; then a flood of denied
//! packets rate limited and counted while a probe through the firewall
//! loses nothing and a TCP collector that stops reading stalls nothing.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::Pair;
use serde_json::Value;

const EIP: &str = "203.0.113.10";

const DECOYS: &str = "[[policy.rule]]\nname = \"decoy-tcp\"\nfrom = \"untrust\"\nto = \"trust\"\ndestination = [\"10.0.10.99\"]\nprotocol = \"tcp\"\nports = [22]\naction = \"accept\"\n\n[[policy.rule]]\nname = \"decoy-udp\"\nfrom = \"untrust\"\nto = \"trust\"\ndestination = [\"10.0.10.99\"]\nprotocol = \"udp\"\nports = [9999]\naction = \"accept\"\n\n";

/// The seed, with `web-in` logged, a DNAT of port 22 that no rule accepts
/// for its server (its packets meet `untrust -> trust`'s default deny), and
/// `extra`. The decoy rules open TCP 22 and UDP 9999 in the cloud's
/// security group (derived from the rules), so that denied packets reach
/// the firewall at all.
fn deployment(extra: &str) -> String {
    let text = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let rule = "ports = [80]\naction = \"accept\"\n";
    assert!(text.contains(rule), "the seed changed: update this test");
    let text = text.replacen(rule, &format!("{rule}log = true\n"), 1);
    format!(
        "{text}\n[[policy.nat.dnat]]\nname = \"ssh\"\nmatch_address = \"10.0.1.100\"\nprotocol = \"tcp\"\nport = 22\nto_address = \"10.0.10.10\"\n\n{DECOYS}{extra}"
    )
}

fn ns(pair: &Pair, host: &str) -> String {
    format!("hafw-{}.{host}", pair.lab)
}

fn in_ns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    hafw_kernel::in_netns(Some(ns), f).expect("enter namespace")
}

fn find(rs: &[Value], f: impl Fn(&Value) -> bool) -> Option<&Value> {
    rs.iter().find(|r| f(r))
}

fn dump(rs: &[Value]) -> String {
    rs.iter().rev().take(40).map(|r| format!("{r}\n")).collect()
}

fn conntrack_delete(pair: &Pair, node: &str, args: &str) {
    let cmd = format!("conntrack -D -p tcp {args}");
    let _ = Command::new("ip")
        .args(["netns", "exec", &ns(pair, node), "sh", "-c", &cmd])
        .output();
}

#[test]
fn denies_logged_rules_sessions_and_nat_are_logged_and_sent_to_syslog() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("tlog");
    let file = TempFile::new(
        "tlog",
        "deployment.toml",
        &deployment(
            "[policy.logging.syslog]\naddress = \"10.0.10.10:5514\"\ntransport = \"udp\"\n",
        ),
    );
    let pair = Pair::start_opts(file.path(), &name, Path::new(hafw()), "fast", false, &[])
        .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let a = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let collector = in_ns(&ns(&pair, "web"), || {
        UdpSocket::bind("0.0.0.0:5514").unwrap()
    });
    collector
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(pair.traffic_log(&a))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o640);

    // 1. A SYN to the EIP's port 22: DNAT'd to the server, no rule accepts.
    let client = ns(&pair, "client");
    let probe = in_ns(&client, || {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.bind(
            &"198.51.100.20:0"
                .parse::<std::net::SocketAddr>()
                .unwrap()
                .into(),
        )
        .unwrap();
        let port = s.local_addr().unwrap().as_socket().unwrap().port();
        let to: std::net::SocketAddr = format!("{EIP}:22").parse().unwrap();
        let _ = s.connect_timeout(&to.into(), Duration::from_millis(300));
        port
    });
    let deny = wait_for(
        "the denied SYN's record",
        Duration::from_secs(5),
        || {
            find(&pair.traffic_records(&a), |r| {
                r["kind"] == "deny" && r["sport"] == probe && r["dport"] == 22
            })
            .cloned()
        },
        || {
            let nft = Command::new("ip")
                .args([
                    "netns",
                    "exec",
                    &ns(&pair, &a),
                    "nft",
                    "list",
                    "table",
                    "inet",
                    "hafw",
                ])
                .output()
                .unwrap();
            format!(
                "{}\n{}\n{}",
                dump(&pair.traffic_records(&a)),
                pair.daemon_log(&a),
                String::from_utf8_lossy(&nft.stdout)
            )
        },
    );
    assert_eq!(deny["rule"], "default deny untrust -> trust", "{deny}");
    assert_eq!(deny["node"], a.as_str());
    assert_eq!(deny["proto"], "tcp");
    assert_eq!(deny["src"], "198.51.100.20");
    assert_eq!(deny["dst"], "10.0.10.10");
    assert_eq!(deny["in"], "eth1", "{deny}");
    assert_eq!(deny["out"], "eth2", "{deny}");

    // 2. The logged rule: an HTTP GET through the DNAT; its first packet
    // is logged as `web-in`'s accept, its session as a NAT start.
    let (cport, reply) = in_ns(&client, || {
        let mut s = TcpStream::connect_timeout(
            &format!("{EIP}:80").parse().unwrap(),
            Duration::from_secs(3),
        )
        .unwrap();
        s.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let port = s.local_addr().unwrap().port();
        s.write_all(b"GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
        let mut body = String::new();
        let _ = s.read_to_string(&mut body);
        (port, body)
    });
    assert!(reply.contains("198.51.100.20"), "{reply}");
    let accept = wait_for(
        "web-in's logged accept",
        Duration::from_secs(5),
        || {
            find(&pair.traffic_records(&a), |r| {
                r["kind"] == "accept" && r["rule"] == "web-in" && r["sport"] == cport
            })
            .cloned()
        },
        || dump(&pair.traffic_records(&a)),
    );
    assert_eq!(accept["dst"], "10.0.10.10", "{accept}");
    let start = wait_for(
        "the DNAT's nat-start",
        Duration::from_secs(5),
        || {
            find(&pair.traffic_records(&a), |r| {
                r["kind"] == "nat-start" && r["sport"] == cport
            })
            .cloned()
        },
        || dump(&pair.traffic_records(&a)),
    );
    // What the client sent to (the EIP's private address, 1:1 with the
    // EIP) and where the server got it.
    assert_eq!(start["src"], "198.51.100.20");
    assert_eq!(start["dst"], "10.0.1.100");
    assert_eq!(start["dport"], 80);
    assert_eq!(start["nat"], "dnat");
    assert_eq!(start["xdst"], "10.0.10.10");
    assert_eq!(start["xdport"], 80);

    // 3. SNAT with a known volume: the server sends 200,000 bytes to a
    // listener on the internet's echo host.
    let listener = in_ns(&ns(&pair, "echo"), || {
        TcpListener::bind("198.51.100.30:7000").unwrap()
    });
    let reader = std::thread::spawn(move || {
        let (mut c, seen) = listener.accept().unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        (seen, buf.len())
    });
    const BYTES: usize = 200_000;
    let sport = in_ns(&ns(&pair, "web"), || {
        let mut s = TcpStream::connect_timeout(
            &"198.51.100.30:7000".parse().unwrap(),
            Duration::from_secs(3),
        )
        .unwrap();
        let port = s.local_addr().unwrap().port();
        s.write_all(&vec![7u8; BYTES]).unwrap();
        port
    });
    let (seen, got) = reader.join().unwrap();
    assert_eq!(got, BYTES);
    assert_eq!(seen.ip().to_string(), EIP, "the echo host sees the EIP");
    // The sessions end now rather than after TIME_WAIT.
    std::thread::sleep(Duration::from_millis(200));
    conntrack_delete(&pair, &a, "--orig-port-dst 7000");
    conntrack_delete(&pair, &a, "--orig-port-dst 80");
    let end = wait_for(
        "the SNAT'd session's end",
        Duration::from_secs(5),
        || {
            find(&pair.traffic_records(&a), |r| {
                r["kind"] == "session-end" && r["sport"] == sport && r["dport"] == 7000
            })
            .cloned()
        },
        || dump(&pair.traffic_records(&a)),
    );
    assert!(end["bytes_out"].as_u64().unwrap() >= BYTES as u64, "{end}");
    assert!(end["packets_out"].as_u64().unwrap() > 0, "{end}");
    assert!(end["packets_in"].as_u64().unwrap() > 0, "{end}");
    assert!(end["start"].as_str().unwrap() <= end["end"].as_str().unwrap());
    let nat_end = find(&pair.traffic_records(&a), |r| {
        r["kind"] == "nat-end" && r["sport"] == sport
    })
    .cloned()
    .unwrap_or_else(|| panic!("{}", dump(&pair.traffic_records(&a))));
    assert_eq!(nat_end["src"], "10.0.10.10");
    assert_eq!(nat_end["nat"], "snat");
    // The public side: the EIP's private address (1:1 with the EIP the
    // echo host saw) and the very port it saw.
    assert_eq!(nat_end["xsrc"], "10.0.1.100");
    assert_eq!(nat_end["xsport"], seen.port(), "{nat_end}");
    wait_for(
        "the DNAT'd session's nat-end",
        Duration::from_secs(5),
        || {
            find(&pair.traffic_records(&a), |r| {
                r["kind"] == "nat-end" && r["sport"] == cport && r["xdst"] == "10.0.10.10"
            })
            .cloned()
        },
        || dump(&pair.traffic_records(&a)),
    );

    // 4. The UDP collector got RFC 5424 messages from this node.
    let mut buf = [0u8; 4096];
    let mut kinds = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline && !kinds.iter().any(|k: &String| k == "deny") {
        let Ok(n) = collector.recv(&mut buf) else {
            break;
        };
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        let head: Vec<&str> = line.splitn(8, ' ').collect();
        assert!(
            head[0].starts_with('<') && head[0].ends_with(">1"),
            "{line}"
        );
        if head[2] == a {
            assert_eq!(head[3], "hafw", "{line}");
            let json: Value = serde_json::from_str(head[7]).unwrap();
            assert_eq!(json["kind"], head[5], "{line}");
            kinds.push(head[5].to_string());
        }
    }
    assert!(kinds.iter().any(|k| k == "deny"), "{kinds:?}");
    drop(pair);
}

#[test]
fn a_flood_is_rate_limited_and_a_stuck_tcp_collector_stalls_nothing() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("tflood");
    let file = TempFile::new(
        "tflood",
        "deployment.toml",
        &deployment(
            "[policy.logging]\nrate = 100\nburst = 50\n[policy.logging.syslog]\naddress = \"10.0.10.10:6514\"\ntransport = \"tcp\"\n",
        ),
    );
    let web = format!("hafw-{name}.web");
    let pair = Pair::start_opts(file.path(), &name, Path::new(hafw()), "fast", false, &[])
        .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let a = pair.wait_settled(Duration::from_secs(20)).unwrap();
    // The collector reads the first frame, then never reads again.
    let listener = in_ns(&web, || TcpListener::bind("0.0.0.0:6514").unwrap());
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let done2 = done.clone();
    let collector = std::thread::spawn(move || {
        let mut held = Vec::new();
        let mut first = String::new();
        listener.set_nonblocking(true).unwrap();
        let deadline = Instant::now() + Duration::from_secs(40);
        // fw-b's connection may never come: the servers' route leads to
        // the active, so its handshake's answer does not reach it.
        while held.len() < 2
            && Instant::now() < deadline
            && !done2.load(std::sync::atomic::Ordering::Relaxed)
        {
            let Ok((mut c, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            c.set_nonblocking(false).unwrap();
            if first.is_empty() {
                c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let mut buf = [0u8; 512];
                if let Ok(n) = c.read(&mut buf) {
                    first = String::from_utf8_lossy(&buf[..n]).into_owned();
                }
            }
            held.push(c);
        }
        (first, held)
    });
    std::thread::sleep(Duration::from_secs(1));

    // A probe through the firewall (server -> echo host, UDP) all along.
    let probe = in_ns(&web, || UdpSocket::bind("10.0.10.10:0").unwrap());
    let prober = std::thread::spawn(move || {
        let (mut lost, mut sent) = (0, 0);
        let end = Instant::now() + Duration::from_secs(4);
        while Instant::now() < end {
            sent += 1;
            if ask(&probe, "198.51.100.30:7777", "p", Duration::from_secs(1)).is_none() {
                lost += 1;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        (sent, lost)
    });

    // 50,000 datagrams to a port of the EIP nothing accepts, paced at
    // about 25,000/s.
    std::thread::sleep(Duration::from_millis(300));
    let flood_start = Instant::now();
    let t0 = std::time::SystemTime::now();
    let sent = in_ns(&format!("hafw-{name}.client"), || {
        let s = UdpSocket::bind("198.51.100.20:0").unwrap();
        let mut sent = 0;
        for i in 0..50_000u32 {
            if s.send_to(&i.to_be_bytes(), format!("{EIP}:9999")).is_ok() {
                sent += 1;
            }
            if i % 500 == 499 {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        sent
    });
    let flood = flood_start.elapsed();
    let (probes, lost) = prober.join().unwrap();
    assert_eq!(lost, 0, "{lost} of {probes} probes lost during the flood");

    let suppressed = wait_for(
        "a suppressed record",
        Duration::from_secs(12),
        || {
            find(&pair.traffic_records(&a), |r| {
                r["kind"] == "suppressed" && r["suppressed"].as_u64().unwrap_or(0) > 0
            })
            .cloned()
        },
        || dump(&pair.traffic_records(&a)),
    );
    let records = pair.traffic_records(&a);
    let t0 = hafw_daemon::ops::audit::rfc3339(
        t0.duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    );
    let denies = records
        .iter()
        .filter(|r| r["kind"] == "deny" && r["dport"] == 9999)
        .count() as f64;
    let bound = 100.0 * (flood.as_secs_f64() + 1.0) + 50.0;
    eprintln!(
        "flood: {sent} sent in {flood:?}; {denies} deny records (bound {bound:.0}); {suppressed}; {probes} probes, {lost} lost"
    );
    assert!(denies > 0.0, "the flood was not logged at all");
    assert!(denies <= bound, "{denies} records > {bound}");
    assert!(
        records
            .iter()
            .filter(|r| r["kind"] == "deny")
            .all(|r| r["ts"].as_str().unwrap() >= t0.as_str() || r["dport"] != 9999),
        "a flood record before the flood"
    );
    // The metrics agree: suppressed counted.
    let total_suppressed: u64 = records
        .iter()
        .filter(|r| r["kind"] == "suppressed")
        .map(|r| r["suppressed"].as_u64().unwrap_or(0))
        .sum();
    assert!(
        total_suppressed as f64 >= sent as f64 * 0.5 - denies,
        "{total_suppressed}"
    );
    let status = pair.status(&a);
    assert!(status.is_some(), "the node stopped answering");
    drop(pair);
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (first, _held) = collector.join().unwrap();
    // `LEN <PRI>1 ...`: octet counting (RFC 6587) around RFC 5424.
    let (len, msg) = first.split_once(' ').unwrap_or(("", ""));
    assert!(
        len.parse::<usize>().is_ok() && msg.starts_with('<'),
        "{first:?}"
    );
    assert!(msg.contains(">1 "), "{first:?}");
}
