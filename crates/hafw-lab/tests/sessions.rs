//! The session checker judged as TCP judges: a session held across an
//! outage longer than the old fixed timeout is kept, one that gets a reset
//! is lost. Each test runs in a namespace of its own (loopback only) with
//! an nftables table that makes the outage, removed with the namespace.

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hafw_lab::hosts::{EchoConfig, EchoServer, EchoStats, HostError, Stop};
use hafw_lab::sessions::{patience_for, Sessions};

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A namespace with loopback up, deleted when dropped (panic or not).
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        let name = format!(
            "hafw-t-sess{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        hafw_kernel::netns::create(&name).expect("create namespace");
        let ns = Ns(name);
        ns.run("ip", &["link", "set", "lo", "up"], None);
        ns
    }

    fn run(&self, program: &str, args: &[&str], stdin: Option<&str>) {
        let mut cmd = hafw_kernel::command(&self.0, program).expect("command in namespace");
        cmd.args(args).stdin(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        if let Some(text) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(text.as_bytes())
                .expect("write stdin");
        }
        drop(child.stdin.take());
        let status = child.wait().expect("wait");
        assert!(status.success(), "{program} {args:?} failed");
    }

    /// Every TCP segment to and from `port` on loopback is dropped.
    fn cut(&self, port: u16) {
        self.rules(&format!("tcp dport {port} drop\n tcp sport {port} drop"));
    }

    /// Every TCP segment to `port` is answered with a RST (which, coming
    /// from `port`, must not be dropped).
    fn reset(&self, port: u16) {
        self.rules(&format!("tcp dport {port} reject with tcp reset"));
    }

    fn rules(&self, rules: &str) {
        let rules = format!(
            "table inet outage {{\n chain input {{\n type filter hook input priority 0\n \
             {rules}\n }}\n}}\n"
        );
        self.run("nft", &["-f", "-"], Some(&rules));
    }

    fn unblock(&self) {
        self.run("nft", &["delete", "table", "inet", "outage"], None);
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = hafw_kernel::netns::delete(&self.0);
    }
}

fn ns_tests_enabled() -> bool {
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

/// An echo host on the namespace's loopback.
fn echo(ns: &Ns) -> (SocketAddr, Stop, JoinHandle<Result<EchoStats, HostError>>) {
    let server = hafw_kernel::in_netns(Some(&ns.0), || {
        EchoServer::bind(EchoConfig::new("127.0.0.1:0".parse().unwrap()))
    })
    .unwrap()
    .unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Stop::new();
    let run_stop = stop.clone();
    (addr, stop, thread::spawn(move || server.run(&run_stop)))
}

const OUTAGE: Duration = Duration::from_secs(2);

#[test]
fn a_session_held_across_a_two_second_outage_is_kept() {
    if !ns_tests_enabled() {
        return;
    }
    let ns = Ns::new();
    let (addr, stop, server) = echo(&ns);
    let sessions = Sessions::open_patient(
        &ns.0,
        addr,
        3,
        Duration::from_millis(10),
        patience_for(OUTAGE),
    );
    assert_eq!(sessions.opened, 3, "{:?}", sessions.open_errors);
    thread::sleep(Duration::from_millis(300));
    ns.cut(addr.port());
    thread::sleep(OUTAGE);
    ns.unblock();
    thread::sleep(Duration::from_millis(300));
    // Finishing waits for any echo still being retransmitted.
    let results = sessions.finish();
    stop.stop();
    let _ = server.join();
    for r in &results {
        assert_eq!(r.failure, None, "{r:?}");
        // It did wait out the outage (so the test made one), and carried on.
        assert!(
            r.longest_wait >= OUTAGE - Duration::from_millis(100),
            "{r:?}"
        );
        assert!(r.exchanges > 20, "{r:?}");
    }
}

#[test]
fn a_session_that_gets_a_reset_is_lost() {
    if !ns_tests_enabled() {
        return;
    }
    let ns = Ns::new();
    let (addr, stop, server) = echo(&ns);
    let sessions = Sessions::open_patient(
        &ns.0,
        addr,
        3,
        Duration::from_millis(10),
        patience_for(OUTAGE),
    );
    assert_eq!(sessions.opened, 3, "{:?}", sessions.open_errors);
    thread::sleep(Duration::from_millis(300));
    // The next segment each client sends is answered with a RST.
    ns.reset(addr.port());
    thread::sleep(Duration::from_millis(500));
    ns.unblock();
    let results = sessions.finish();
    stop.stop();
    let _ = server.join();
    for r in &results {
        let failure = r.failure.as_deref().unwrap_or("kept");
        assert!(failure.starts_with("reset on "), "{r:?}");
    }
}
