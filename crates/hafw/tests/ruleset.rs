//! The input chain's defences under attack, in a lab with a standalone
//! fw-a: management access from outside `policy.management.allow`, an
//! ICMP echo flood on untrust, a flood at the HA port from the peer's
//! address (and the peer's real heartbeat rate, which must pass), and a
//! forged peer address on the wrong interface, which strict reverse-path
//! filtering on mgmt drops. Each is counted.

mod common;
mod standalone;

use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::time::{Duration, Instant};

use common::*;
use hafw_model::render::nft::counters;
use socket2::{Domain, Protocol, SockAddr, Socket, Type};
use standalone::{counted, netstat, Node};

const SEED: &str = "alicloud-havip.toml";
const HA_PORT: u16 = 28780;

/// The seed with management open to the VPC's mgmt gateway address only
/// (so fw-b, on the same link, is a source outside the list).
fn config() -> TempFile {
    let seed = std::fs::read_to_string(example(SEED)).unwrap();
    let text = seed.replacen(
        "allow = [\"10.0.0.0/24\"]",
        "allow = [\"10.0.0.253/32\"]",
        1,
    );
    assert_ne!(text, seed);
    TempFile::new("ruleset", "seed.toml", &text)
}

/// A socket of `ty` made inside namespace `ns`, bound to `bind` (an
/// address the namespace need not own: transparent, so the kernel routes
/// what it sends from a forged source too).
fn socket_in(ns: &str, ty: Type, proto: Protocol, bind: SocketAddrV4) -> Socket {
    hafw_kernel::in_netns(Some(ns), move || -> std::io::Result<Socket> {
        let s = Socket::new(Domain::IPV4, ty, Some(proto))?;
        s.set_freebind_v4(true)?;
        s.set_ip_transparent_v4(true)?;
        s.bind(&SockAddr::from(bind))?;
        Ok(s)
    })
    .unwrap()
    .unwrap()
}

fn tcp_connects(ns: &str, from: Ipv4Addr, to: SocketAddrV4) -> bool {
    let s = socket_in(ns, Type::STREAM, Protocol::TCP, SocketAddrV4::new(from, 0));
    s.connect_timeout(&SockAddr::from(to), Duration::from_millis(1500))
        .is_ok()
}

/// An ICMP echo request (type 8) with its checksum.
fn echo_request(id: u16, seq: u16) -> Vec<u8> {
    let mut p = vec![8, 0, 0, 0];
    p.extend(id.to_be_bytes());
    p.extend(seq.to_be_bytes());
    p.extend(b"hafw-echo-flood!");
    let mut sum: u32 = p
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    p[2..4].copy_from_slice(&(!(sum as u16)).to_be_bytes());
    p
}

#[test]
fn the_input_chain_counts_what_it_refuses_under_attack() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up(SEED, "rsa");
    let file = config();
    let node = Node::start(&lab, file.path());
    let (vpc, fw, peer) = (lab.ns("vpc"), lab.ns("fw-a"), lab.ns("fw-b"));
    let fw_mgmt = Ipv4Addr::new(10, 0, 0, 11);

    // 1. Management: SSH from the allowed address is accepted, from the
    // peer firewall (same link, not in the list) refused and counted.
    let ssh = hafw_kernel::in_netns(Some(&fw), || TcpListener::bind("0.0.0.0:22"))
        .unwrap()
        .unwrap();
    let to = SocketAddrV4::new(fw_mgmt, 22);
    assert!(
        tcp_connects(&vpc, Ipv4Addr::new(10, 0, 0, 253), to),
        "SSH from the allowed 10.0.0.253 failed; log:\n{}",
        node.log()
    );
    let before = counted(&lab, counters::MANAGEMENT);
    assert!(
        !tcp_connects(&peer, Ipv4Addr::new(10, 0, 0, 12), to),
        "SSH from 10.0.0.12, outside policy.management.allow, was accepted"
    );
    let refused = counted(&lab, counters::MANAGEMENT) - before;
    assert!(refused >= 1, "the refused SYN was not counted");
    drop(ssh);

    // 2. An ICMP echo flood on untrust: 10/s, burst 20 pass; the rest is
    // dropped before conntrack and counted.
    let raw = socket_in(
        &vpc,
        Type::RAW,
        Protocol::ICMPV4,
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 253), 0),
    );
    let target = SockAddr::from(SocketAddrV4::new(Ipv4Addr::new(10, 0, 1, 11), 0));
    let before = counted(&lab, counters::ECHO);
    let echo_sent = 500u64;
    let t = Instant::now();
    for seq in 0..echo_sent {
        raw.send_to(&echo_request(0x4afa, seq as u16), &target)
            .unwrap();
    }
    let echo_secs = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    let echo_dropped = counted(&lab, counters::ECHO) - before;
    let passed_at_most = 20 + (10.0 * (echo_secs + 0.2)).ceil() as u64;
    assert!(
        echo_dropped >= echo_sent - passed_at_most && echo_dropped <= echo_sent - 10,
        "echo flood: {echo_sent} sent in {echo_secs:.3} s, {echo_dropped} dropped"
    );

    // 3. The peer's real heartbeat rate passes untouched: the fast
    // profile's 5 ms on this path, doubled (a takeover in every interval),
    // for 2 s.
    let hb = socket_in(
        &peer,
        Type::DGRAM,
        Protocol::UDP,
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 12), HA_PORT),
    );
    let ha_to = SockAddr::from(SocketAddrV4::new(fw_mgmt, HA_PORT));
    let before = counted(&lab, counters::HA_RATE);
    let t = Instant::now();
    let mut real = 0u64;
    while t.elapsed() < Duration::from_secs(2) {
        // Paced by the clock: 2 per 5 ms elapsed, caught up after a late
        // wake-up as a real sender's queued heartbeats would be.
        let due = t.elapsed().as_millis() as u64 / 5 * 2;
        while real < due {
            hb.send_to(b"heartbeat-sized datagram", &ha_to).unwrap();
            real += 1;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        counted(&lab, counters::HA_RATE) - before,
        0,
        "{real} datagrams at the real rate were rate-limited"
    );

    // 4. A flood from the peer's address: beyond 4,000/s (burst 4,000)
    // per source, dropped before conntrack and counted.
    std::thread::sleep(Duration::from_millis(1100));
    let before = counted(&lab, counters::HA_RATE);
    let flood = 40_000u64;
    let t = Instant::now();
    for _ in 0..flood {
        let _ = hb.send_to(b"forged datagram, no valid envelope", &ha_to);
    }
    let secs = t.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_millis(100));
    let dropped = counted(&lab, counters::HA_RATE) - before;
    let passed_at_most = 4_000 + (4_000.0 * (secs + 0.2)).ceil() as u64;
    assert!(
        dropped >= flood.saturating_sub(passed_at_most) && dropped > 0,
        "HA flood: {flood} sent in {secs:.3} s, {dropped} dropped"
    );

    // 5. The peer's HA2 address forged on mgmt: strict reverse-path
    // filtering on mgmt (the peer's addresses and the operators are on
    // the link) drops it before the input chain sees it.
    let forged = socket_in(
        &vpc,
        Type::DGRAM,
        Protocol::UDP,
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 3, 12), HA_PORT),
    );
    let rp_before = netstat(&fw, "TcpExt", "IPReversePathFilter");
    for _ in 0..10 {
        forged.send_to(b"forged", &ha_to).unwrap();
    }
    std::thread::sleep(Duration::from_millis(100));
    let rp = netstat(&fw, "TcpExt", "IPReversePathFilter") - rp_before;
    assert!(
        rp >= 10,
        "forged peer address on mgmt: {rp} reverse-path drops"
    );

    eprintln!(
        "management refused {refused}; echo flood {echo_sent} in {echo_secs:.3} s, {echo_dropped} dropped; \
         HA at the real rate {real} in 2 s, 0 dropped; HA flood {flood} in {secs:.3} s, {dropped} dropped; \
         forged peer on mgmt: {rp} reverse-path drops"
    );
}
