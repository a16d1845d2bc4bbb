//! The operations layer on its own: metrics text, the status API over
//! loopback (auth, routes, hostile clients), systemd notifications to a
//! test socket, token files. No lab, no root needed.

use hafw_daemon::ops;
use hafw_testkit::Rng;

use std::net::SocketAddr;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ops::api::{self, Limits};
use ops::metrics::Metrics;
use ops::notify;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const TOKEN: &str = "s3cret-token-0123456789";
const STATUS_JSON: &str = "{\"state\":\"active\",\"term\":4}\n";

/// A directory of one test's own: its name, this process and a counter.
fn temp_dir(name: &str) -> PathBuf {
    static SEQ: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let seq = SEQ.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("hafw-ops-{}-{seq}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

// ---- metrics ----

#[test]
fn metrics_show_every_series_after_the_daemon_reports() {
    let m = Metrics::new();
    let m2 = m.clone();
    m.state("passive");
    m2.state("active");
    m.term(4);
    m.transition("passive", "active", "peer_lost");
    m.transition("passive", "active", "peer_lost");
    m.heartbeat_rtt("mgmt", 0.0004);
    m.heartbeat_rtt("mgmt", 0.5);
    m.heartbeat_rtt("mgmt", f64::NAN);
    m.heartbeat_miss("ha2");
    m.heartbeat_miss("ha2");
    m.heartbeat_misses_total("mgmt", 7);
    m.path_up("mgmt", true);
    m.path_up("ha2", false);
    m.phase("addresses", 0.0002);
    m.phase("garp", 0.5);
    m.garp_sent(3);
    m.garp_sent(2);
    m.ha_counters([("accepted", 100), ("auth_failed", 2), ("replayed", 0)]);
    m.ha_counters([("accepted", 100), ("auth_failed", 2), ("replayed", 1)]);
    m.sessions(120, 118);
    m.sync_lag(0.25);
    m.resyncs_total(1);
    m.config_version(3);
    m.peer_config_version(2);
    let text = m.encode();
    for line in [
        "hafw_state{state=\"active\"} 1\n",
        "hafw_state{state=\"passive\"} 0\n",
        "hafw_term 4\n",
        "hafw_transitions_total{from=\"passive\",to=\"active\",cause=\"peer_lost\"} 2\n",
        "hafw_heartbeat_rtt_seconds_count{path=\"mgmt\"} 2\n",
        "hafw_heartbeat_rtt_seconds_bucket{le=\"0.8192\",path=\"mgmt\"} 2\n",
        "hafw_heartbeat_rtt_seconds_bucket{le=\"0.0004\",path=\"mgmt\"} 1\n",
        "hafw_heartbeat_misses_total{path=\"ha2\"} 2\n",
        "hafw_heartbeat_misses_total{path=\"mgmt\"} 7\n",
        "hafw_heartbeat_path_up{path=\"mgmt\"} 1\n",
        "hafw_heartbeat_path_up{path=\"ha2\"} 0\n",
        "hafw_failover_phase_seconds_count{phase=\"garp\"} 1\n",
        "hafw_failover_phase_seconds_count{phase=\"addresses\"} 1\n",
        "hafw_garp_sent_total 5\n",
        "hafw_ha_messages_accepted_total 100\n",
        "hafw_ha_messages_dropped_total{reason=\"auth_failed\"} 2\n",
        "hafw_ha_messages_dropped_total{reason=\"replayed\"} 1\n",
        "hafw_sessions 120\n",
        "hafw_sessions_synced 118\n",
        "hafw_session_sync_lag_seconds 0.25\n",
        "hafw_session_resyncs_total 1\n",
        "hafw_config_version 3\n",
        "hafw_peer_config_version 2\n",
        "# TYPE hafw_failover_phase_seconds histogram\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.ends_with("# EOF\n"), "{text}");
    assert!(
        !text.contains("\"accepted\""),
        "accepted is not a drop reason"
    );
}

#[test]
fn label_values_cannot_break_the_format() {
    let m = Metrics::new();
    m.heartbeat_miss("a\"b\\c\nd");
    let text = m.encode();
    assert!(
        text.contains("hafw_heartbeat_misses_total{path=\"a\\\"b\\\\c\\nd\"} 1\n"),
        "{text}"
    );
}

// ---- status API over loopback ----

fn start(limits: Limits) -> (api::Server, Metrics) {
    let metrics = Metrics::new();
    metrics.state("active");
    let server = api::serve_with(
        "127.0.0.1:0".parse().unwrap(),
        TOKEN.into(),
        || STATUS_JSON.to_string(),
        metrics.clone(),
        limits,
    )
    .unwrap();
    (server, metrics)
}

fn quick() -> Limits {
    Limits {
        head_timeout: Duration::from_millis(300),
        write_timeout: Duration::from_millis(300),
        status_timeout: Duration::from_millis(300),
        max_connections: 4,
        ..Limits::default()
    }
}

/// Sends `request` and reads the reply to the end.
async fn exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    read_all(&mut s).await
}

async fn read_all(s: &mut TcpStream) -> String {
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
        .await
        .expect("the server must close the connection")
        .unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

fn get(path: &str, auth: Option<&str>) -> Vec<u8> {
    let auth = auth
        .map(|a| format!("Authorization: {a}\r\n"))
        .unwrap_or_default();
    format!("GET {path} HTTP/1.1\r\nHost: fw\r\n{auth}\r\n").into_bytes()
}

fn code(reply: &str) -> u16 {
    reply
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("not an HTTP reply: {reply:?}"))
}

fn body(reply: &str) -> &str {
    reply.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("")
}

fn header<'a>(reply: &'a str, name: &str) -> Option<&'a str> {
    reply.split("\r\n").find_map(|l| {
        let (n, v) = l.split_once(": ")?;
        n.eq_ignore_ascii_case(name).then_some(v)
    })
}

#[tokio::test]
async fn the_api_answers_only_with_the_token() {
    let (server, _m) = start(quick());
    let a = server.local_addr();
    let bearer = format!("Bearer {TOKEN}");

    let r = exchange(a, &get("/status", None)).await;
    assert_eq!(code(&r), 401, "{r}");
    assert_eq!(
        header(&r, "WWW-Authenticate"),
        Some("Bearer realm=\"hafw\"")
    );
    assert!(!r.contains("active"), "no data without the token: {r}");
    let r = exchange(a, &get("/metrics", Some("Bearer wrong-token-0123456789"))).await;
    assert_eq!(code(&r), 401, "{r}");
    let r = exchange(a, &get("/metrics", Some(&format!("Basic {TOKEN}")))).await;
    assert_eq!(code(&r), 401, "{r}");

    let r = exchange(a, &get("/status", Some(&bearer))).await;
    assert_eq!(code(&r), 200, "{r}");
    assert_eq!(header(&r, "Content-Type"), Some("application/json"));
    assert_eq!(body(&r), STATUS_JSON);
    assert_eq!(
        header(&r, "Content-Length"),
        Some(STATUS_JSON.len().to_string().as_str())
    );

    let r = exchange(a, &get("/metrics?x=1", Some(&bearer))).await;
    assert_eq!(code(&r), 200, "{r}");
    assert!(header(&r, "Content-Type")
        .unwrap()
        .starts_with("application/openmetrics-text"));
    assert!(body(&r).contains("hafw_state{state=\"active\"} 1\n"), "{r}");
    assert!(body(&r).ends_with("# EOF\n"), "{r}");

    let r = exchange(a, &get("/", Some(&bearer))).await;
    assert_eq!(code(&r), 404, "{r}");
    let r = exchange(a, &get("/status/../metrics", Some(&bearer))).await;
    assert_eq!(code(&r), 404, "{r}");
    let post = format!(
        "POST /status HTTP/1.1\r\nAuthorization: {bearer}\r\nContent-Length: 5\r\n\r\nhello"
    );
    let r = exchange(a, post.as_bytes()).await;
    assert_eq!(code(&r), 405, "{r}");
    assert_eq!(header(&r, "Allow"), Some("GET"));
    let head = format!("HEAD /status HTTP/1.1\r\nAuthorization: {bearer}\r\n\r\n");
    assert_eq!(code(&exchange(a, head.as_bytes()).await), 405);
    server.stop();
}

#[tokio::test]
async fn the_api_survives_garbage_oversize_and_slow_clients() {
    let limits = quick();
    let (server, _m) = start(limits);
    let a = server.local_addr();
    let bearer = format!("Bearer {TOKEN}");
    let alive = || async {
        let r = exchange(a, &get("/status", Some(&bearer))).await;
        assert_eq!(code(&r), 200, "the server must still answer: {r}");
    };

    // Garbage heads: answered 400 (or 505), never a crash.
    for junk in [
        &b"\x00\xff\xfe garbage\r\n\r\n"[..],
        b"GET\r\n\r\n",
        b"GET /status HTTP/9.9\r\n\r\n",
        b"GET /status HTTP/1.1\r\n: empty name\r\n\r\n",
        b"\r\n\r\n",
    ] {
        let r = exchange(a, junk).await;
        assert!(matches!(code(&r), 400 | 505), "{junk:?} -> {r}");
    }
    // Pseudo-random bytes, terminated so the server parses them.
    let mut rng = Rng::new(0x9E37_79B9_7F4A_7C15);
    for _ in 0..30 {
        let mut junk = rng.bytes(200);
        junk.extend_from_slice(b"\r\n\r\n");
        let r = exchange(a, &junk).await;
        assert!(matches!(code(&r), 400 | 505), "{r}");
    }
    alive().await;

    // An oversize head: 431, without reading it all.
    let mut big = b"GET /status HTTP/1.1\r\nX-Pad: ".to_vec();
    big.resize(64 * 1024, b'a');
    let r = exchange(a, &big).await;
    assert_eq!(code(&r), 431, "{r}");
    alive().await;

    // A client that connects and says nothing is cut off after the head
    // timeout with 408.
    let started = Instant::now();
    let mut idle = TcpStream::connect(a).await.unwrap();
    let r = read_all(&mut idle).await;
    assert_eq!(code(&r), 408, "{r}");
    let waited = started.elapsed();
    assert!(
        waited >= limits.head_timeout && waited < limits.head_timeout * 5,
        "{waited:?}"
    );

    // An idle client holding a connection does not block the others.
    let _idle = TcpStream::connect(a).await.unwrap();
    alive().await;
    server.stop();
}

/// The head timeout counts from the connection, not from the last byte:
/// a client trickling bytes is cut off as one saying nothing is.
#[tokio::test]
async fn a_slowloris_is_cut_off_at_the_head_timeout() {
    let limits = Limits {
        head_timeout: Duration::from_millis(1000),
        ..quick()
    };
    let (server, _m) = start(limits);
    let mut slow = TcpStream::connect(server.local_addr()).await.unwrap();
    let started = Instant::now();
    for b in b"GET /status HTTP/1.1\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaa" {
        if started.elapsed() > Duration::from_millis(900) {
            break;
        }
        slow.write_all(&[*b]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let r = read_all(&mut slow).await;
    assert_eq!(code(&r), 408, "{r}");
    // A timer reset by each byte would answer after 1.9 s or more.
    let waited = started.elapsed();
    assert!(waited < Duration::from_millis(1600), "{waited:?}");
    server.stop();
}

fn metric(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// 32 connections that say nothing, as one slow or hostile client would
/// hold them: a monitoring request with the token is still answered, at
/// once, with the default limits (16 slots and a 5 s head timeout made it
/// wait 5 s and more, or refused it).
#[tokio::test]
async fn idle_connections_cannot_starve_monitoring() {
    let (server, _m) = start(Limits::default());
    let a = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..32 {
        idle.push(TcpStream::connect(a).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(50)).await;
    let started = Instant::now();
    let r = tokio::time::timeout(
        Duration::from_secs(2),
        exchange(a, &get("/status", Some(&format!("Bearer {TOKEN}")))),
    )
    .await
    .expect("answered within 2 s beside 32 idle connections");
    eprintln!(
        "/status answered in {:?} beside 32 idle connections",
        started.elapsed()
    );
    assert_eq!(code(&r), 200, "{r}");
    assert_eq!(body(&r), STATUS_JSON);
    server.stop();
}

/// With the table full of connections that said nothing, each newcomer
/// evicts the oldest of them (counted) and is served; the evicted are
/// closed without a reply.
#[tokio::test]
async fn a_full_table_evicts_the_oldest_idle_connection() {
    let limits = Limits {
        max_connections: 4,
        head_timeout: Duration::from_secs(10),
        ..quick()
    };
    let (server, m) = start(limits);
    let a = server.local_addr();
    let mut idle = Vec::new();
    for _ in 0..8 {
        idle.push(TcpStream::connect(a).await.unwrap());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let r = exchange(a, &get("/metrics", Some(&format!("Bearer {TOKEN}")))).await;
    assert_eq!(code(&r), 200, "{r}");
    // 4 evicted by the later idle ones, 1 by the request.
    assert_eq!(
        metric(body(&r), "hafw_api_refused_total{reason=\"evicted\"}"),
        Some(5.0),
        "{r}"
    );
    // The five oldest were closed at once, without a reply.
    for s in idle.iter_mut().take(5) {
        let mut buf = Vec::new();
        let n = tokio::time::timeout(Duration::from_secs(1), s.read_to_end(&mut buf))
            .await
            .expect("closed at once");
        assert!(n.map(|n| n == 0).unwrap_or(true), "{buf:?}");
    }
    let text = m.encode();
    assert!(
        text.contains("hafw_api_refused_total{reason=\"evicted\"} 5\n"),
        "{text}"
    );
    server.stop();
}

/// Connections past their head (waiting on a slow status) cannot be
/// evicted: a newcomer is then closed at once, counted as busy, and the
/// server serves again when they are done.
#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once_when_none_is_idle() {
    let metrics = Metrics::new();
    let limits = Limits {
        max_connections: 2,
        status_timeout: Duration::from_millis(1500),
        ..quick()
    };
    let server = api::serve_with(
        "127.0.0.1:0".parse().unwrap(),
        TOKEN.into(),
        || {
            std::thread::sleep(Duration::from_millis(600));
            STATUS_JSON.into()
        },
        metrics.clone(),
        limits,
    )
    .unwrap();
    let a = server.local_addr();
    let req = get("/status", Some(&format!("Bearer {TOKEN}")));
    let slow: Vec<_> = (0..2)
        .map(|_| {
            let req = req.clone();
            tokio::spawn(async move { exchange(a, &req).await })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(150)).await;
    let started = Instant::now();
    let mut third = TcpStream::connect(a).await.unwrap();
    let mut buf = Vec::new();
    let n = tokio::time::timeout(Duration::from_secs(2), third.read_to_end(&mut buf))
        .await
        .unwrap();
    assert!(
        n.map(|n| n == 0).unwrap_or(true),
        "the third connection must be closed without a reply"
    );
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "closed at once"
    );
    assert!(
        metrics
            .encode()
            .contains("hafw_api_refused_total{reason=\"busy\"} 1\n"),
        "{}",
        metrics.encode()
    );
    for s in slow {
        assert_eq!(code(&s.await.unwrap()), 200);
    }
    let r = exchange(a, &req).await;
    assert_eq!(code(&r), 200, "{r}");
    server.stop();
}

#[tokio::test]
async fn a_slow_or_failing_status_callback_is_a_5xx_not_a_hang() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    let server = api::serve_with(
        "127.0.0.1:0".parse().unwrap(),
        TOKEN.into(),
        move || match c.fetch_add(1, Ordering::SeqCst) {
            0 => {
                std::thread::sleep(Duration::from_millis(3000));
                "late".into()
            }
            1 => panic!("status callback panics on purpose"),
            _ => STATUS_JSON.into(),
        },
        Metrics::new(),
        // A second for each callback: a panic's unwinding and report can
        // take hundreds of milliseconds on a loaded machine, and must not
        // be mistaken for a slow callback (503).
        Limits {
            status_timeout: Duration::from_millis(1000),
            ..quick()
        },
    )
    .unwrap();
    let a = server.local_addr();
    let req = get("/status", Some(&format!("Bearer {TOKEN}")));
    let started = Instant::now();
    let r = exchange(a, &req).await;
    assert_eq!(code(&r), 503, "{r}");
    assert!(started.elapsed() < Duration::from_millis(2500));
    // The late call still holds one of the two status slots; the next
    // panics in its own slot and is a 500.
    let r = exchange(a, &req).await;
    assert_eq!(code(&r), 500, "{r}");
    let r = exchange(a, &req).await;
    assert_eq!(code(&r), 200, "{r}");
    assert_eq!(body(&r), STATUS_JSON);
    server.stop();
}

#[tokio::test]
async fn the_api_refuses_a_weak_token_and_a_taken_port() {
    let err = api::serve(
        "127.0.0.1:0".parse().unwrap(),
        "short".into(),
        String::new,
        Metrics::new(),
    )
    .unwrap_err();
    assert!(err.contains("at least 16"), "{err}");
    let (server, _m) = start(quick());
    let err = api::serve(
        server.local_addr(),
        TOKEN.into(),
        String::new,
        Metrics::new(),
    )
    .unwrap_err();
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
    server.stop();
}

#[test]
fn the_api_needs_a_runtime() {
    let err = api::serve(
        "127.0.0.1:0".parse().unwrap(),
        TOKEN.into(),
        String::new,
        Metrics::new(),
    )
    .unwrap_err();
    assert!(err.contains("tokio runtime"), "{err}");
}

// ---- token file ----

#[test]
fn token_files_are_checked() {
    let dir = temp_dir("token");
    let write = |name: &str, text: &[u8], mode: u32| {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    let err = api::load_token(&dir.join("absent")).unwrap_err();
    assert!(
        err.contains("does not exist") && err.contains("umask 077"),
        "{err}"
    );
    let err = api::load_token(&write("empty", b"\n", 0o600)).unwrap_err();
    assert!(err.contains("empty"), "{err}");
    let err = api::load_token(&write("short", b"abc123\n", 0o600)).unwrap_err();
    assert!(err.contains("6 bytes long; use at least 16"), "{err}");
    let err = api::load_token(&write("open", TOKEN.as_bytes(), 0o644)).unwrap_err();
    assert!(
        err.contains("every user (mode 644)") && err.contains("chmod 600"),
        "{err}"
    );
    let err = api::load_token(&write("spaces", b"0123456789 abcdefgh\n", 0o600)).unwrap_err();
    assert!(err.contains("spaces"), "{err}");
    let err = api::load_token(&write("binary", b"\xff\xfe0123456789abcdef", 0o600)).unwrap_err();
    assert!(err.contains("not text"), "{err}");
    let err = api::load_token(&dir).unwrap_err();
    assert!(err.contains("not a regular file"), "{err}");
    let good = format!("{TOKEN}\n");
    assert_eq!(
        api::load_token(&write("good", good.as_bytes(), 0o600)).unwrap(),
        TOKEN
    );
    assert_eq!(
        api::load_token(&write("group", good.as_bytes(), 0o640)).unwrap(),
        TOKEN
    );
    let _ = std::fs::remove_dir_all(dir);
}

// ---- systemd notifications ----

fn receive(sock: &UnixDatagram) -> String {
    let mut buf = [0u8; 256];
    let n = sock.recv(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn notifications_reach_a_path_socket() {
    let dir = temp_dir("notify-path");
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let p = path.to_str().unwrap();
    for msg in ["READY=1", "WATCHDOG=1", "STOPPING=1"] {
        notify::send_to(p, msg).unwrap();
        assert_eq!(receive(&sock), msg);
    }
    let err = notify::send_to(dir.join("nobody").to_str().unwrap(), "READY=1").unwrap_err();
    assert!(err.contains("NOTIFY_SOCKET="), "{err}");
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn notifications_reach_an_abstract_socket() {
    let name = format!("hafw-ops-notify-abstract-{}", std::process::id());
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
    let sock = UnixDatagram::bind_addr(&addr).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    notify::send_to(&format!("@{name}"), "READY=1").unwrap();
    assert_eq!(receive(&sock), "READY=1");
}

/// The only test that touches NOTIFY_SOCKET and WATCHDOG_*: environment
/// variables are process-wide.
#[test]
fn the_environment_selects_the_socket_and_the_watchdog() {
    let dir = temp_dir("notify-env");
    let path = dir.join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();

    std::env::remove_var("NOTIFY_SOCKET");
    notify::ready().unwrap();
    std::env::set_var("NOTIFY_SOCKET", &path);
    notify::ready().unwrap();
    assert_eq!(receive(&sock), "READY=1");
    notify::watchdog().unwrap();
    assert_eq!(receive(&sock), "WATCHDOG=1");
    notify::status("active, term 4\nREADY=1").unwrap();
    assert_eq!(receive(&sock), "STATUS=active, term 4 READY=1");
    notify::stopping().unwrap();
    assert_eq!(receive(&sock), "STOPPING=1");
    std::env::set_var("NOTIFY_SOCKET", "relative/path");
    assert!(notify::ready().is_err());
    std::env::remove_var("NOTIFY_SOCKET");
    // Nothing else arrived: the unset and failed sends sent nothing.
    sock.set_nonblocking(true).unwrap();
    assert!(sock.recv(&mut [0u8; 64]).is_err());

    std::env::remove_var("WATCHDOG_PID");
    std::env::remove_var("WATCHDOG_USEC");
    assert_eq!(notify::watchdog_interval(), None);
    std::env::set_var("WATCHDOG_USEC", "2000000");
    assert_eq!(notify::watchdog_interval(), Some(Duration::from_secs(1)));
    std::env::set_var("WATCHDOG_PID", std::process::id().to_string());
    assert_eq!(notify::watchdog_interval(), Some(Duration::from_secs(1)));
    std::env::set_var("WATCHDOG_PID", "1");
    assert_eq!(notify::watchdog_interval(), None);
    std::env::remove_var("WATCHDOG_PID");
    std::env::remove_var("WATCHDOG_USEC");
    let _ = std::fs::remove_dir_all(dir);
}

// ---- logging ----

/// The only test that installs the global subscriber.
#[test]
fn logging_installs_once() {
    ops::logging::init(true).unwrap();
    tracing::info!(test = "ops", "JSON logging installed");
    let err = ops::logging::init(false).unwrap_err();
    assert!(err.contains("cannot install the logger"), "{err}");
}

// ---- control socket ----

use hafw_daemon::control::{self, Request};
use std::io::{Read as _, Write as _};
use std::os::unix::net::UnixStream as StdUnix;

fn control_limits() -> control::Limits {
    control::Limits {
        max_clients: 4,
        read_deadline: Duration::from_millis(400),
        write_deadline: Duration::from_millis(400),
    }
}

/// A control server answering `status` at once and `config show` with
/// `big` bytes.
fn control_server(
    name: &str,
    limits: control::Limits,
    big: usize,
) -> (PathBuf, PathBuf, Arc<control::Counters>) {
    let dir = temp_dir(name);
    let path = dir.join("hafw.sock");
    let l = control::bind(&path).unwrap();
    let counters = control::serve_with(l, limits, move |_, r| match r {
        Request::Status => Ok("state active\n".into()),
        Request::ConfigShow => Ok("x".repeat(big)),
        _ => Err("not now".into()),
    });
    (dir, path, counters)
}

fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(Ordering::Relaxed)
}

/// Checked from another thread while the socket is bound again and
/// again with the umask cleared: bound first and restricted after, the
/// socket is seen world-writable (0777) now and then; bound in a private
/// directory and renamed, never.
#[test]
fn the_control_socket_is_never_seen_with_a_wider_mode() {
    let dir = temp_dir("ctl-mode");
    let path = dir.join("hafw.sock");
    // SAFETY: umask has no preconditions; it is restored below. Other
    // tests of this binary set their files' modes explicitly.
    let old = unsafe { libc::umask(0) };
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (p, s) = (path.clone(), stop.clone());
    let watcher = std::thread::spawn(move || {
        let (mut seen, mut wide) = (0u64, Vec::new());
        while !s.load(Ordering::Relaxed) {
            if let Ok(m) = std::fs::symlink_metadata(&p) {
                seen += 1;
                let mode = m.permissions().mode() & 0o777;
                if mode != 0o600 {
                    wide.push(mode);
                }
            }
        }
        (seen, wide)
    });
    for _ in 0..300 {
        let l = control::bind(&path).unwrap();
        assert_eq!(
            std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        drop(l);
        std::fs::remove_file(&path).unwrap();
    }
    stop.store(true, Ordering::Relaxed);
    let (seen, wide) = watcher.join().unwrap();
    unsafe { libc::umask(old) };
    eprintln!(
        "the socket was seen {seen} times, {} with a wider mode",
        wide.len()
    );
    assert!(
        wide.is_empty(),
        "seen {} times with a wider mode, first {:o}",
        wide.len(),
        wide[0]
    );
    // Nothing of the private directory is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().flatten().collect();
    assert!(left.is_empty(), "{left:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// A silent client, one that sends half a request, and one that never
/// reads its (large) reply each hold only their own slot: another client
/// is answered at once, and each is cut off at its deadline, counted.
#[test]
fn a_silent_or_slow_control_client_does_not_block_another() {
    let limits = control_limits();
    let (dir, path, counters) = control_server("ctl-slow", limits, 8 << 20);
    let _silent = StdUnix::connect(&path).unwrap();
    let mut half = StdUnix::connect(&path).unwrap();
    half.write_all(b"stat").unwrap();
    let mut deaf = StdUnix::connect(&path).unwrap();
    deaf.write_all(b"config show\n").unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let r = control::request_within(&path, &Request::Status, Duration::from_secs(2));
    let took = started.elapsed();
    assert_eq!(r.unwrap(), "state active\n");
    eprintln!("answered in {took:?} beside a silent, a half and a deaf client");
    assert!(took < Duration::from_millis(300), "{took:?}");
    // After the deadlines: the silent and the half client were told, the
    // deaf one cut off; all three counted.
    std::thread::sleep(limits.read_deadline + limits.write_deadline + Duration::from_millis(300));
    assert_eq!(load(&counters.timeout), 3, "{counters:?}");
    let mut told = String::new();
    half.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let _ = half.read_to_string(&mut told);
    assert!(
        told.starts_with("error: no request line within 400 ms"),
        "{told:?}"
    );
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn control_clients_beyond_the_cap_are_told_at_once_and_counted() {
    let limits = control_limits();
    let (dir, path, counters) = control_server("ctl-cap", limits, 0);
    let held: Vec<StdUnix> = (0..limits.max_clients)
        .map(|_| StdUnix::connect(&path).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(50));
    let started = Instant::now();
    let err = control::request_within(&path, &Request::Status, Duration::from_secs(2)).unwrap_err();
    assert!(err.contains("serving 4 control clients already"), "{err}");
    assert!(started.elapsed() < Duration::from_millis(300));
    assert_eq!(load(&counters.busy), 1);
    drop(held);
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(
        control::request_within(&path, &Request::Status, Duration::from_secs(2)).unwrap(),
        "state active\n"
    );
    // An oversize request line is refused, not buffered.
    let mut long = StdUnix::connect(&path).unwrap();
    let _ = long.write_all(&[b'a'; 5000]);
    let mut reply = String::new();
    long.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let _ = long.read_to_string(&mut reply);
    assert!(
        reply.starts_with("error: the request is longer than 4096 bytes"),
        "{reply:?}"
    );
    assert_eq!(load(&counters.too_long), 1);
    let _ = std::fs::remove_dir_all(dir);
}

/// The kernel's record of the client's user is checked: a client that is
/// not root (here a thread that changed its own effective uid, with the
/// socket opened wide as if its mode had been lost) is refused before a
/// byte of its request is read, and counted.
#[test]
fn a_control_client_that_is_not_root_is_refused() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: needs root to act as another user");
        return;
    }
    assert!(control::allowed(0, 0) && control::allowed(1000, 1000));
    assert!(!control::allowed(65534, 0));
    let (dir, path, counters) = control_server("ctl-uid", control_limits(), 0);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).unwrap();
    let p = path.clone();
    let reply = std::thread::spawn(move || {
        // SAFETY: the raw syscall changes this thread's credentials only
        // (glibc's setresuid would change every thread's).
        let rc = unsafe { libc::syscall(libc::SYS_setresuid, -1i32, 65534i32, -1i32) };
        assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
        let r = control::request_within(&p, &Request::Status, Duration::from_secs(2));
        // SAFETY: as above; back to root (the saved uid) for the rest.
        unsafe { libc::syscall(libc::SYS_setresuid, -1i32, 0i32, -1i32) };
        r
    })
    .join()
    .unwrap();
    let err = reply.unwrap_err();
    assert!(
        err.contains("serves root only; this client is uid 65534"),
        "{err}"
    );
    assert_eq!(load(&counters.peer_uid), 1);
    assert_eq!(load(&counters.served), 0);
    assert_eq!(
        control::request_within(&path, &Request::Status, Duration::from_secs(2)).unwrap(),
        "state active\n"
    );
    assert_eq!(load(&counters.served), 1);
    let _ = std::fs::remove_dir_all(dir);
}
