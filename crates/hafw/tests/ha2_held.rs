//! Connections held open to the HA2 port cannot keep the real peer out.
//! From the dialling node's own namespace (so from the peer's address, the
//! only one the acceptor takes), six TCP connections to the acceptor's
//! HA2 port are held open and silent, and reopened a second after the
//! acceptor closes one. The dialling node's daemon is then killed and restarted:
//! its HA2 link must come back as fast as in a reference restart without
//! the held connections (within 1 s more). With one connection at a time,
//! or a table of pending connections that refuses newcomers, the held
//! connections keep the slot and the link never (or only seconds later)
//! comes back.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::{Fault, Pair};

const SEED: &str = "alicloud-havip.toml";
const SETTLE: Duration = Duration::from_secs(15);
/// The acceptor's HA2 address and port in the seed (fw-b, the higher id).
const ACCEPTOR: &str = "10.0.3.12:28780";
const HELD: usize = 6;
/// A closed slot is reopened after this long: the holder stays under the
/// ruleset's limit on new HA2 connections from the peer's address (10/s),
/// which would otherwise drop the real peer's SYN too (a different attack,
/// which the limit trades for a bounded cost of connections).
const REOPEN: Duration = Duration::from_secs(1);

fn ha2_connected(pair: &Pair, node: &str) -> bool {
    pair.status(node)
        .and_then(|s| s.session_sync)
        .is_some_and(|s| s.connected)
}

/// How long after the restart of `node` both ends see HA2 connected.
fn restart_and_time(pair: &mut Pair, node: &str, peer: &str) -> Duration {
    pair.inject(Fault::Kill, node).expect("kill");
    let deadline = Instant::now() + Duration::from_secs(10);
    while ha2_connected(pair, peer) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let t = Instant::now();
    pair.heal(Fault::Kill, node).expect("restart");
    let deadline = t + Duration::from_secs(20);
    while !(ha2_connected(pair, peer) && ha2_connected(pair, node)) {
        assert!(
            Instant::now() < deadline,
            "HA2 not connected 20 s after the restart of {node}\n--- {node}\n{}\n--- {peer}\n{}",
            pair.daemon_log(node),
            pair.daemon_log(peer)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    t.elapsed()
}

/// Holds `HELD` silent connections from namespace `ns` to `to`, reopening
/// any the other end closes; returns (opened, closed by the other end).
fn hold(ns: String, to: SocketAddr, stop: Arc<AtomicBool>, counts: Arc<[AtomicU64; 2]>) {
    let r = hafw_kernel::in_netns(Some(&ns), move || {
        let mut held: Vec<Option<TcpStream>> = (0..HELD).map(|_| None).collect();
        let mut closed_at: Vec<Option<Instant>> = vec![None; HELD];
        let mut buf = [0u8; 512];
        while !stop.load(Ordering::Relaxed) {
            for (slot, closed_at) in held.iter_mut().zip(closed_at.iter_mut()) {
                let open = match slot {
                    // The acceptor's hello is read and ignored.
                    Some(s) => match s.read(&mut buf) {
                        Ok(0) => false,
                        Ok(_) => true,
                        Err(e) => e.kind() == std::io::ErrorKind::WouldBlock,
                    },
                    None => false,
                };
                if !open {
                    if slot.take().is_some() {
                        counts[1].fetch_add(1, Ordering::Relaxed);
                        *closed_at = Some(Instant::now());
                    }
                    if closed_at.is_some_and(|t| t.elapsed() < REOPEN) {
                        continue;
                    }
                    if let Ok(s) = TcpStream::connect_timeout(&to, Duration::from_millis(200)) {
                        let _ = s.set_nonblocking(true);
                        counts[0].fetch_add(1, Ordering::Relaxed);
                        *slot = Some(s);
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    r.expect("enter the dialler's namespace");
}

#[test]
fn connections_held_open_to_ha2_do_not_keep_the_peer_out() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("h2h");
    let mut pair = Pair::start(&example(SEED), &name, Path::new(hafw()), "default")
        .unwrap_or_else(|e| panic!("start the pair in lab {name}: {e}"));
    pair.wait_settled(SETTLE).expect("settled");
    pair.wait_ready(SETTLE).expect("ready");
    let (dialler, acceptor) = ("fw-a".to_string(), "fw-b".to_string());

    let reference = restart_and_time(&mut pair, &dialler, &acceptor);
    pair.wait_ready(SETTLE).expect("ready again");

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let holder = {
        let (ns, stop, counts) = (
            format!("hafw-{name}.{dialler}"),
            stop.clone(),
            counts.clone(),
        );
        let to: SocketAddr = ACCEPTOR.parse().unwrap();
        std::thread::spawn(move || hold(ns, to, stop, counts))
    };
    // Long enough for the held connections to fill the acceptor's table
    // and outlive its authentication timeout once.
    std::thread::sleep(Duration::from_secs(3));
    let held = restart_and_time(&mut pair, &dialler, &acceptor);
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    let _ = holder.join();
    let (opened, closed) = (
        counts[0].load(Ordering::Relaxed),
        counts[1].load(Ordering::Relaxed),
    );
    let logs = format!(
        "--- {dialler}\n{}\n--- {acceptor}\n{}",
        pair.daemon_log(&dialler),
        pair.daemon_log(&acceptor)
    );
    let _ = pair.stop();
    eprintln!(
        "HA2 back after a restart: {reference:?} (reference), {held:?} with {HELD} connections \
         held open ({opened} opened, {closed} closed by the acceptor)"
    );
    assert!(
        opened >= HELD as u64,
        "the holder opened only {opened}\n{logs}"
    );
    assert!(
        closed > 0,
        "the acceptor closed none of the held connections\n{logs}"
    );
    assert!(
        held <= reference + Duration::from_secs(1),
        "HA2 came back after {held:?} with connections held, {reference:?} without\n{logs}"
    );
    assert!(lab_namespaces(&name).is_empty(), "namespaces left behind");
}
