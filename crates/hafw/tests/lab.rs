//! Namespace tests of the emulated VPC (issue 3), with static stand-ins for
//! the firewalls: addresses and gratuitous ARPs set by the test itself.

mod common;

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use common::*;
use hafw_kernel::{addr, arp, route, Netns};

const EXT: &str = "10.0.1.100";
const INT: &str = "10.0.2.100";

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn announce(lab: &Lab, instance: &str, dev: &str, what: &str) {
    arp::announce(Some(&lab.ns(instance)), dev, ip(what), 1, Duration::ZERO)
        .expect("send gratuitous ARP");
}

/// The VPC's route for `dst` in `table`, as `ip route` prints it.
fn vpc_route(lab: &Lab, table: &str, dst: &str) -> String {
    lab.sh(
        "vpc",
        &format!("ip route show table {table} exact {dst} 2>/dev/null"),
    )
}

/// Makes an instance answer as a firewall would while active: the floating
/// address on the interface and a default route via the vSwitch gateway.
fn stand_in(lab: &Lab, instance: &str, dev: &'static str, floating: &str, gateway: &str) {
    let ns = Netns::open(&lab.ns(instance)).unwrap();
    let net: ipnet::Ipv4Net = format!("{floating}/32").parse().unwrap();
    let gw = ip(gateway);
    ns.run_blocking(move |nl| async move {
        addr::add(&nl, dev, net).await?;
        route::replace(
            &nl,
            &route::Route::new("0.0.0.0/0".parse().unwrap())
                .via(gw)
                .dev(dev),
        )
        .await
    })
    .unwrap();
}

fn port_dev(lab: &Lab, eni: &str) -> String {
    // `lab status` lists each ENI with its VPC-side interface.
    let out = run(&["lab", "status", "--name", &lab.name]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with(eni))
        .unwrap_or_else(|| panic!("{eni} not in status:\n{text}"));
    line.split("vpc:")
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string()
}

#[test]
fn member_announcement_moves_havip_and_ownership_sticks() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up("alicloud-havip.toml", "m");
    assert!(
        vpc_route(&lab, "main", EXT).trim().is_empty(),
        "no owner before any announcement"
    );

    announce(&lab, "fw-a", "eth1", EXT);
    assert!(
        lab.wait_log("move external - fw-a-untrust", Duration::from_secs(2)),
        "log: {}",
        lab.log()
    );
    let a_dev = port_dev(&lab, "fw-a-untrust");
    assert!(vpc_route(&lab, "main", EXT).contains(&a_dev));

    // A non-member (fw-b's trust ENI) announcing the external HAVIP is ignored.
    announce(&lab, "fw-b", "eth2", EXT);
    assert!(
        lab.wait_log("ignored external fw-b-trust", Duration::from_secs(2)),
        "log: {}",
        lab.log()
    );
    assert!(vpc_route(&lab, "main", EXT).contains(&a_dev));

    // Silence: ownership sticks.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(lab.log().matches(" move external ").count(), 1);
    assert!(vpc_route(&lab, "main", EXT).contains(&a_dev));

    // The other member announces: the latest announcement wins.
    announce(&lab, "fw-b", "eth1", EXT);
    assert!(
        lab.wait_log(
            "move external fw-a-untrust fw-b-untrust",
            Duration::from_secs(2)
        ),
        "log: {}",
        lab.log()
    );
    assert!(vpc_route(&lab, "main", EXT).contains(&port_dev(&lab, "fw-b-untrust")));

    let status =
        String::from_utf8_lossy(&run(&["lab", "status", "--name", &lab.name]).stdout).to_string();
    assert!(status.contains("owner fw-b-untrust"), "{status}");
    assert!(status.contains("non-member announcements 1"), "{status}");
}

#[test]
fn route_entries_with_havip_next_hop_follow_the_owner() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up("alicloud-havip.toml", "r");
    // The server vSwitch (fifth) uses table 104.
    assert!(vpc_route(&lab, "104", "0.0.0.0/0").trim().is_empty());
    announce(&lab, "fw-a", "eth2", INT);
    assert!(lab.wait_log("move internal - fw-a-trust", Duration::from_secs(2)));
    assert!(vpc_route(&lab, "104", "0.0.0.0/0").contains(&port_dev(&lab, "fw-a-trust")));
    announce(&lab, "fw-b", "eth2", INT);
    assert!(lab.wait_log(
        "move internal fw-a-trust fw-b-trust",
        Duration::from_secs(2)
    ));
    assert!(vpc_route(&lab, "104", "0.0.0.0/0").contains(&port_dev(&lab, "fw-b-trust")));
}

#[test]
fn eip_nat_works_both_ways() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up("alicloud-havip.toml", "e");
    stand_in(&lab, "fw-a", "eth1", EXT, "10.0.1.253");
    announce(&lab, "fw-a", "eth1", EXT);
    assert!(lab.wait_log("move external - fw-a-untrust", Duration::from_secs(2)));

    // Inbound: the client reaches the EIP; the firewall sees the client's
    // public IP. TCP 80: the one port the security group opens to the
    // internet (UDP 7000 is dropped and counted).
    let fw = hafw_kernel::in_netns(Some(&lab.ns("fw-a")), || {
        std::net::TcpListener::bind(format!("{EXT}:80"))
    })
    .unwrap()
    .unwrap();
    let seen = std::thread::spawn(move || fw.accept().map(|(_, peer)| peer));
    let connected = hafw_kernel::in_netns(Some(&lab.ns("client")), || {
        std::net::TcpStream::connect_timeout(
            &"203.0.113.10:80".parse().unwrap(),
            Duration::from_secs(2),
        )
    })
    .unwrap();
    assert!(connected.is_ok(), "connect through the EIP: {connected:?}");
    let peer = seen.join().unwrap().unwrap();
    assert_eq!(peer.ip().to_string(), "198.51.100.20");
    let fw = udp_in(&lab.ns("fw-a"), &format!("{EXT}:7000"));
    fw.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let client = udp_in(&lab.ns("client"), "0.0.0.0:0");
    client.send_to(b"hi", "203.0.113.10:7000").unwrap();
    assert!(
        fw.recv_from(&mut [0u8; 16]).is_err(),
        "the security group let UDP 7000 in"
    );
    let dropped = lab.sh("vpc", "nft list counter ip hafw_vpc sg_dropped");
    assert!(!dropped.contains("packets 0 "), "{dropped}");

    // Outbound: the internet sees the EIP. The echo host runs `hafw lab serve echo`.
    let out = udp_in(&lab.ns("fw-a"), &format!("{EXT}:0"));
    let reply = ask(&out, "198.51.100.30:7777", "hi", Duration::from_secs(2)).expect("echo reply");
    assert!(reply.contains("203.0.113.10:"), "{reply}");

    // Traffic from an address that is not the HAVIP gets no EIP: it never leaves.
    let plain = udp_in(&lab.ns("fw-a"), "10.0.1.11:0");
    assert_eq!(
        ask(
            &plain,
            "198.51.100.30:7777",
            "hi",
            Duration::from_millis(300)
        ),
        None
    );
}

#[test]
fn spoofed_sources_are_dropped_where_the_check_is_on() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up("alicloud-havip.toml", "s");
    // fw-a needs a way back to the server vSwitch (its daemon would add one).
    Netns::open(&lab.ns("fw-a"))
        .unwrap()
        .run_blocking(|nl| async move {
            route::add(
                &nl,
                &route::Route::new("10.0.10.0/24".parse().unwrap())
                    .via(ip("10.0.0.253"))
                    .dev("eth0"),
            )
            .await
        })
        .unwrap();
    let listener = udp_in(&lab.ns("fw-a"), "10.0.0.11:9000");
    let responder = respond_with_source(listener, 2);
    // The web server's own address passes.
    let honest = udp_in(&lab.ns("web"), "10.0.10.10:0");
    let reply = ask(&honest, "10.0.0.11:9000", "hi", Duration::from_secs(2));
    assert!(reply
        .expect("honest source passes")
        .starts_with("seen 10.0.10.10:"));
    // A second address on the same ENI (check on) is dropped by the VPC.
    let ns = Netns::open(&lab.ns("web")).unwrap();
    ns.run_blocking(
        |nl| async move { addr::add(&nl, "eth0", "10.0.10.99/32".parse().unwrap()).await },
    )
    .unwrap();
    let spoof = udp_in(&lab.ns("web"), "10.0.10.99:0");
    assert_eq!(
        ask(&spoof, "10.0.0.11:9000", "hi", Duration::from_millis(300)),
        None
    );
    drop(responder);
    let counters = lab.sh("vpc", "nft list counter ip hafw_vpc spoofed");
    assert!(
        !counters.contains("packets 0 "),
        "spoofed counter did not count: {counters}"
    );
}

#[test]
fn no_arp_or_broadcast_reaches_another_instance() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up("alicloud-havip.toml", "b");
    let mut listener = arp::Listener::open(Some(&lab.ns("fw-b")), &["eth1"]).unwrap();
    let bcast = udp_in(&lab.ns("fw-b"), "0.0.0.0:9100");
    bcast
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    announce(&lab, "fw-a", "eth1", EXT);
    let sender = udp_in(&lab.ns("fw-a"), "10.0.1.11:0");
    sender.set_broadcast(true).unwrap();
    let _ = sender.send_to(b"hello", "10.0.1.255:9100");
    let _ = sender.send_to(b"hello", "255.255.255.255:9100");
    let end = Instant::now() + Duration::from_millis(300);
    while Instant::now() < end {
        if let Some(p) = listener.recv(Some(Duration::from_millis(50))).unwrap() {
            assert_ne!(p.fields.sender_ip, ip(EXT), "fw-b saw fw-a's ARP: {p:?}");
            assert_ne!(
                p.fields.sender_ip,
                ip("10.0.1.11"),
                "fw-b saw fw-a's ARP: {p:?}"
            );
        }
    }
    let mut buf = [0u8; 64];
    assert!(
        bcast.recv_from(&mut buf).is_err(),
        "a broadcast crossed the VPC"
    );
    // The announcement itself did reach the VPC.
    assert!(lab.wait_log("move external - fw-a-untrust", Duration::from_secs(2)));
}

#[test]
fn two_labs_coexist_and_down_leaves_nothing() {
    if !ns_tests_enabled() {
        return;
    }
    let (a_name, b_name);
    {
        let a = Lab::up("alicloud-havip.toml", "x");
        let b = Lab::up("alicloud-havip.toml", "y");
        a_name = a.name.clone();
        b_name = b.name.clone();
        assert!(!lab_namespaces(&a.name).is_empty() && !lab_namespaces(&b.name).is_empty());
        // Both work independently.
        announce(&a, "fw-a", "eth1", EXT);
        announce(&b, "fw-b", "eth1", EXT);
        assert!(a.wait_log("move external - fw-a-untrust", Duration::from_secs(2)));
        assert!(b.wait_log("move external - fw-b-untrust", Duration::from_secs(2)));
        // A second `up` of the same name is refused.
        let again = run(&[
            "lab",
            "up",
            example("alicloud-havip.toml").to_str().unwrap(),
            "--name",
            &a.name,
        ]);
        assert!(!again.status.success());
        assert!(String::from_utf8_lossy(&again.stderr).contains("already up"));
    }
    assert!(lab_namespaces(&a_name).is_empty());
    assert!(lab_namespaces(&b_name).is_empty());
    // Down is idempotent.
    assert!(run(&["lab", "down", "--name", &a_name]).status.success());
}

#[test]
fn a_panicking_test_still_removes_its_lab() {
    if !ns_tests_enabled() {
        return;
    }
    let name = std::sync::Mutex::new(String::new());
    let result = std::panic::catch_unwind(|| {
        let lab = Lab::up("alicloud-havip.toml", "p");
        *name.lock().unwrap() = lab.name.clone();
        panic!("on purpose");
    });
    assert!(result.is_err());
    let name = name.lock().unwrap().clone();
    assert!(!name.is_empty());
    assert!(
        lab_namespaces(&name).is_empty(),
        "namespaces left after a panic"
    );
}

#[test]
fn lab_down_cleans_up_after_a_crash() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up("alicloud-havip.toml", "c");
    // Simulate a crash: the state directory is gone, namespaces and processes remain.
    std::fs::remove_dir_all(format!("/run/hafw-lab/{}", lab.name)).unwrap();
    assert!(run(&["lab", "down", "--name", &lab.name]).status.success());
    assert!(lab_namespaces(&lab.name).is_empty());
}

#[test]
fn an_invalid_deployment_is_refused_before_anything_is_created() {
    if !ns_tests_enabled() {
        return;
    }
    let text = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let bad = text.replace("ip = \"10.0.1.100\"", "ip = \"10.0.9.100\"");
    let file = TempFile::new("bad", "deployment.toml", &bad);
    let name = unique("v");
    let out = run(&["lab", "up", file.path().to_str().unwrap(), "--name", &name]);
    drop(file);
    assert_eq!(
        out.status.code(),
        Some(2),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(lab_namespaces(&name).is_empty());
}

#[test]
fn lab_up_of_the_seed_is_quick() {
    if !ns_tests_enabled() {
        return;
    }
    let started = Instant::now();
    let lab = Lab::up("alicloud-havip.toml", "t");
    let took = started.elapsed();
    let reported = String::from_utf8_lossy(&lab.up.stdout).to_string();
    eprintln!(
        "lab up of the seed example: {} ms wall clock; hafw said: {reported}",
        took.as_millis()
    );
    // The goal is under 2 s; allow slack for a loaded CI machine.
    assert!(took < Duration::from_secs(6), "lab up took {took:?}");
}
