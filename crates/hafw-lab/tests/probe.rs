//! `hafw probe`'s prober against local listeners on loopback: a TCP
//! listener and the lab's web server, each stopped for a second mid-run,
//! must show as one lost span of about that second, where it happened.
//! Ports are picked by binding port 0 and re-bound after the gap.

use std::net::{SocketAddr, TcpListener};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use hafw_lab::hosts::outage::{breaches, render_json, MaxLoss, Thresholds};
use hafw_lab::hosts::{probe, Method, ProbeConfig, ProbeReport, Stop, WebConfig, WebServer};

const RATE_HZ: u32 = 50;
const RUN: Duration = Duration::from_secs(3);
const UP_FIRST: Duration = Duration::from_secs(1);
const GAP: Duration = Duration::from_secs(1);

/// Something listening on `addr` until stopped.
trait Listener: Sized {
    fn start(addr: SocketAddr) -> Self;
    fn stop(self);
}

/// A bare TCP listener accepting and closing connections.
struct Tcp {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
    addr: SocketAddr,
}

impl Listener for Tcp {
    fn start(addr: SocketAddr) -> Tcp {
        let listener = TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((conn, _)) => drop(conn),
                    Err(_) => thread::sleep(Duration::from_millis(1)),
                }
            }
            // The listener closes here: new connections are refused.
        });
        Tcp { stop, thread, addr }
    }

    fn stop(self) {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().unwrap();
    }
}

/// The lab's web server.
struct Web {
    stop: Stop,
    thread: JoinHandle<()>,
    addr: SocketAddr,
}

impl Listener for Web {
    fn start(addr: SocketAddr) -> Web {
        let server = WebServer::bind(WebConfig::new(addr)).unwrap();
        let addr = server.local_addr().unwrap();
        let stop = Stop::new();
        let run_stop = stop.clone();
        let thread = thread::spawn(move || {
            server.run(&run_stop).unwrap();
        });
        Web { stop, thread, addr }
    }

    fn stop(self) {
        self.stop.stop();
        self.thread.join().unwrap();
    }
}

/// Probes a listener that goes away after [`UP_FIRST`] for [`GAP`].
fn probe_with_a_gap<L: Listener>(
    method: Method,
    start: impl Fn(SocketAddr) -> L,
    addr_of: impl Fn(&L) -> SocketAddr,
) -> ProbeReport {
    let first = start("127.0.0.1:0".parse().unwrap());
    let addr = addr_of(&first);
    let config = ProbeConfig {
        method,
        rate_hz: RATE_HZ,
        duration: RUN,
        timeout: Duration::from_millis(300),
        ..ProbeConfig::new(addr)
    };
    let prober = thread::spawn(move || probe(&config, &Stop::new()));
    thread::sleep(UP_FIRST);
    first.stop();
    thread::sleep(GAP);
    let again = start(addr);
    let report = prober.join().unwrap().unwrap();
    again.stop();
    report
}

fn assert_one_gap(report: &ProbeReport) {
    eprintln!("{report}");
    let spans = report.loss_spans();
    assert_eq!(spans.len(), 1, "{spans:?}");
    let span = spans[0];
    // Where and how long, within scheduling slack on a busy machine.
    let near = |got: Duration, want: Duration| {
        got + Duration::from_millis(150) >= want && got <= want + Duration::from_millis(250)
    };
    assert!(near(span.from, UP_FIRST), "{span:?}");
    assert!(near(span.length(), GAP), "{span:?}");
    assert_eq!(span.lost, report.lost);
    assert!(report.sent >= u64::from(RATE_HZ) * 2, "{report}");
    // A threshold below the loss fails the run, one above passes it.
    let strict = Thresholds {
        max_loss: Some(MaxLoss::Probes(report.lost - 1)),
        max_outage: None,
    };
    let lenient = Thresholds {
        max_loss: Some(MaxLoss::Percent(100.0)),
        max_outage: Some(span.length() + Duration::from_millis(1)),
    };
    assert_eq!(breaches(report, &strict).len(), 1);
    assert!(breaches(report, &lenient).is_empty());
    let json: serde_json::Value = serde_json::from_str(&render_json(
        report,
        "tcp",
        std::time::SystemTime::now(),
        &strict,
    ))
    .unwrap();
    assert_eq!(json["lost_spans"].as_array().map(Vec::len), Some(1));
    assert_eq!(json["passed"], false);
}

#[test]
fn a_tcp_listener_stopped_for_a_second_shows_as_one_span() {
    let report = probe_with_a_gap(Method::Tcp, Tcp::start, |l| l.addr);
    assert_one_gap(&report);
}

#[test]
fn a_web_server_stopped_for_a_second_shows_as_one_span() {
    let report = probe_with_a_gap(
        Method::Http {
            path: "/probe".into(),
        },
        Web::start,
        |l| l.addr,
    );
    assert_one_gap(&report);
}

#[test]
fn an_idle_listener_loses_nothing() {
    let tcp = Tcp::start("127.0.0.1:0".parse().unwrap());
    let config = ProbeConfig {
        method: Method::Tcp,
        rate_hz: 100,
        duration: Duration::from_millis(500),
        timeout: Duration::from_millis(300),
        ..ProbeConfig::new(tcp.addr)
    };
    let report = probe(&config, &Stop::new()).unwrap();
    tcp.stop();
    assert_eq!((report.lost, report.send_errors), (0, 0), "{report}");
    assert!(report.loss_spans().is_empty());
}

/// A namespace with loopback up, deleted when dropped (panic or not).
struct Ns(String);

impl Ns {
    fn new() -> Ns {
        static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "hafw-t-probe{}-{}",
            std::process::id(),
            SEQ.fetch_add(1, Ordering::SeqCst)
        );
        hafw_kernel::netns::create(&name).expect("create namespace");
        let ns = Ns(name);
        ns.nft_or_ip("ip", &["link", "set", "lo", "up"], None);
        ns
    }

    fn nft_or_ip(&self, program: &str, args: &[&str], stdin: Option<&str>) {
        use std::io::Write;
        let mut cmd = hafw_kernel::command(&self.0, program).expect("command in namespace");
        cmd.args(args).stdin(std::process::Stdio::piped());
        let mut child = cmd.spawn().expect("spawn");
        let mut input = child.stdin.take().expect("stdin");
        if let Some(text) = stdin {
            input.write_all(text.as_bytes()).expect("write stdin");
        }
        drop(input);
        assert!(child.wait().expect("wait").success(), "{program} {args:?}");
    }
}

impl Drop for Ns {
    fn drop(&mut self) {
        let _ = hafw_kernel::netns::delete(&self.0);
    }
}

/// The seed's own test is a ping: ICMP echo dropped for a second shows as
/// one span. In a namespace of its own (a new namespace allows no ping
/// sockets, so as root this takes the raw-socket path).
#[test]
fn a_ping_dropped_for_a_second_shows_as_one_span() {
    ping_with_a_gap(false);
}

/// The same through an unprivileged ping socket, as a non-root operator's
/// `hafw probe` opens it: the namespace's `ping_group_range` lets group 0 in.
#[test]
fn a_ping_socket_sees_the_same_span() {
    ping_with_a_gap(true);
}

fn ping_with_a_gap(ping_socket: bool) {
    if std::env::var("HAFW_SKIP_NS_TESTS").as_deref() == Ok("1") {
        eprintln!("skipped: HAFW_SKIP_NS_TESTS=1");
        return;
    }
    let ns = Ns::new();
    if ping_socket {
        ns.nft_or_ip("sysctl", &["-qw", "net.ipv4.ping_group_range=0 0"], None);
    }
    let config = ProbeConfig {
        method: Method::Icmp,
        rate_hz: RATE_HZ,
        duration: RUN,
        timeout: Duration::from_millis(300),
        ..ProbeConfig::new("127.0.0.1:0".parse().unwrap())
    };
    let name = ns.0.clone();
    let prober = thread::spawn(move || {
        hafw_kernel::in_netns(Some(&name), || probe(&config, &Stop::new())).unwrap()
    });
    thread::sleep(UP_FIRST);
    ns.nft_or_ip(
        "nft",
        &["-f", "-"],
        Some("table inet gap {\n chain input {\n type filter hook input priority 0\n icmp type echo-request drop\n }\n}\n"),
    );
    thread::sleep(GAP);
    ns.nft_or_ip("nft", &["delete", "table", "inet", "gap"], None);
    let report = prober.join().unwrap().unwrap();
    assert_one_gap(&report);
}
