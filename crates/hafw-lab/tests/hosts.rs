//! The lab's test hosts over real sockets on loopback; ports are picked by
//! binding port 0.

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream, UdpSocket};
use std::ops::RangeInclusive;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hafw_lab::hosts::echo::encode_reply;
use hafw_lab::hosts::prober::ProbePayload;
use hafw_lab::hosts::{
    ask, ask_via, fetch, probe, EchoConfig, EchoServer, EchoStats, HostError, ProbeConfig, Stop,
    WebConfig, WebServer, WebStats,
};

const LOOPBACK: &str = "127.0.0.1:0";
const TIMEOUT: Duration = Duration::from_secs(5);

struct Running<T> {
    addr: SocketAddr,
    stop: Stop,
    thread: JoinHandle<Result<T, HostError>>,
}

impl<T> Running<T> {
    fn finish(self) -> T {
        self.stop.stop();
        self.thread.join().unwrap().unwrap()
    }
}

fn web(config: WebConfig) -> Running<WebStats> {
    let server = WebServer::bind(config).unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Stop::new();
    let run_stop = stop.clone();
    Running {
        addr,
        stop,
        thread: thread::spawn(move || server.run(&run_stop)),
    }
}

fn echo() -> Running<EchoStats> {
    let server = EchoServer::bind(EchoConfig::new(LOOPBACK.parse().unwrap())).unwrap();
    let addr = server.local_addr().unwrap();
    let stop = Stop::new();
    let run_stop = stop.clone();
    Running {
        addr,
        stop,
        thread: thread::spawn(move || server.run(&run_stop)),
    }
}

/// Sends `request` raw, half-closes, and returns everything the server wrote
/// until close.
fn raw_exchange(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(request).unwrap();
    s.shutdown(Shutdown::Write).unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8(out).unwrap()
}

fn status_of(response: &str) -> &str {
    response.split(' ').nth(1).unwrap_or("")
}

#[test]
fn web_names_the_client_address_it_saw() {
    let server = web(WebConfig::new(LOOPBACK.parse().unwrap()));
    let got = fetch(&format!("http://{}/any/path", server.addr), "", TIMEOUT).unwrap();
    assert_eq!(got.status, 200);
    assert_eq!(got.local.ip().to_string(), "127.0.0.1");
    assert_ne!(got.local.port(), 0);
    assert_eq!(got.body, format!("client 127.0.0.1:{}\n", got.local.port()));
    assert_eq!(got.peer, server.addr);
    let stats = server.finish();
    assert_eq!(
        (stats.connections, stats.ok, stats.rejected, stats.failed),
        (1, 1, 0, 0)
    );
}

#[test]
fn web_response_is_plain_text_with_its_length_and_closes() {
    let server = web(WebConfig::new(LOOPBACK.parse().unwrap()));
    // HTTP/1.0 needs no Host header.
    let response = raw_exchange(server.addr, b"GET / HTTP/1.0\r\n\r\n");
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.split("\r\n");
    assert_eq!(lines.next(), Some("HTTP/1.1 200 OK"));
    let headers: Vec<&str> = lines.collect();
    assert!(headers.contains(&"Content-Type: text/plain"), "{headers:?}");
    assert!(headers.contains(&"Connection: close"), "{headers:?}");
    assert!(
        headers.contains(&format!("Content-Length: {}", body.len()).as_str()),
        "{headers:?}"
    );
    assert!(
        body.starts_with("client 127.0.0.1:") && body.ends_with('\n'),
        "{body:?}"
    );
    // HEAD: the same head, no body.
    let head_only = raw_exchange(server.addr, b"HEAD / HTTP/1.1\r\nHost: x\r\n\r\n");
    assert!(
        head_only.starts_with("HTTP/1.1 200 OK\r\n") && head_only.ends_with("\r\n\r\n"),
        "{head_only:?}"
    );
    server.finish();
}

#[test]
fn web_refuses_bad_requests_with_error_statuses() {
    let server = web(WebConfig::new(LOOPBACK.parse().unwrap()));
    assert_eq!(
        status_of(&raw_exchange(server.addr, b"NONSENSE\r\n\r\n")),
        "400"
    );
    assert_eq!(
        status_of(&raw_exchange(server.addr, b"GET / HTTP/1.1\r\n\r\n")),
        "400"
    );
    assert_eq!(
        status_of(&raw_exchange(server.addr, b"GET / HTTP/9.9\r\n\r\n")),
        "505"
    );
    assert_eq!(
        status_of(&raw_exchange(
            server.addr,
            b"POST / HTTP/1.1\r\nHost: x\r\n\r\n"
        )),
        "405"
    );
    // A request cut off by the client's half-close.
    assert_eq!(
        status_of(&raw_exchange(server.addr, b"GET / HTTP/1.1\r\nHost")),
        "400"
    );
    let mut big = b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', 9000));
    big.extend_from_slice(b"\r\n\r\n");
    assert_eq!(status_of(&raw_exchange(server.addr, &big)), "431");
    // The client sees the status through fetch too.
    let got = fetch(&server.addr.to_string(), "/", TIMEOUT).unwrap();
    assert_eq!(got.status, 200);
    let stats = server.finish();
    assert_eq!(
        (stats.ok, stats.rejected, stats.failed),
        (1, 6, 0),
        "{stats:?}"
    );
}

#[test]
fn web_times_out_a_slow_client() {
    let config = WebConfig {
        request_timeout: Duration::from_millis(200),
        ..WebConfig::new(LOOPBACK.parse().unwrap())
    };
    let server = web(config);
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.write_all(b"GET / HTTP/1.1\r\n").unwrap();
    let started = Instant::now();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    assert_eq!(status_of(&out), "408", "{out:?}");
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    server.finish();
}

#[test]
fn web_serves_fifty_concurrent_fetches() {
    let server = web(WebConfig::new(LOOPBACK.parse().unwrap()));
    let target = server.addr.to_string();
    let clients: Vec<_> = (0..50)
        .map(|_| {
            let target = target.clone();
            thread::spawn(move || fetch(&target, "/", TIMEOUT))
        })
        .collect();
    for client in clients {
        let got = client.join().unwrap().unwrap();
        assert_eq!(got.status, 200);
        assert_eq!(got.body, format!("client {}\n", got.local));
    }
    let stats = server.finish();
    assert_eq!((stats.connections, stats.ok), (50, 50));
}

#[test]
fn web_refuses_past_its_connection_limit() {
    let config = WebConfig {
        max_connections: 1,
        ..WebConfig::new(LOOPBACK.parse().unwrap())
    };
    let server = web(config);
    // Holds the only slot: connected, head not yet sent.
    let mut holder = TcpStream::connect(server.addr).unwrap();
    thread::sleep(Duration::from_millis(50));
    let got = fetch(&server.addr.to_string(), "/", TIMEOUT).unwrap();
    assert_eq!(got.status, 503);
    holder.write_all(b"GET / HTTP/1.0\r\n\r\n").unwrap();
    let mut out = String::new();
    holder.read_to_string(&mut out).unwrap();
    assert_eq!(status_of(&out), "200");
    let stats = server.finish();
    assert_eq!((stats.ok, stats.refused), (1, 1));
}

#[test]
fn fetch_reports_a_closed_port() {
    // Bind then drop to find a port nobody listens on.
    let free = std::net::TcpListener::bind(LOOPBACK)
        .unwrap()
        .local_addr()
        .unwrap();
    let err = fetch(&free.to_string(), "/", TIMEOUT).unwrap_err();
    assert!(matches!(err, HostError::Connect { .. }), "{err}");
}

#[test]
fn ask_returns_the_clients_own_address() {
    let server = echo();
    let socket = UdpSocket::bind(LOOPBACK).unwrap();
    assert_eq!(
        ask_via(&socket, server.addr, TIMEOUT).unwrap(),
        socket.local_addr().unwrap()
    );
    let seen = ask(server.addr, TIMEOUT).unwrap();
    assert_eq!(seen.ip().to_string(), "127.0.0.1");
    assert_ne!(seen.port(), socket.local_addr().unwrap().port());
    let stats = server.finish();
    assert_eq!(stats.datagrams, 2);
}

#[test]
fn ask_times_out_without_an_echo_host() {
    let silent = UdpSocket::bind(LOOPBACK).unwrap();
    let started = Instant::now();
    let err = ask(silent.local_addr().unwrap(), Duration::from_millis(300)).unwrap_err();
    assert!(matches!(err, HostError::Timeout { .. }), "{err}");
    assert!(started.elapsed() >= Duration::from_millis(300));
    // It retried within the timeout.
    silent.set_nonblocking(true).unwrap();
    let mut buf = [0u8; 64];
    let mut requests = 0;
    while silent.recv_from(&mut buf).is_ok() {
        requests += 1;
    }
    assert_eq!(requests, 3);
}

#[test]
fn tcp_echo_sends_the_seen_line_then_echoes_until_eof() {
    let server = echo();
    let mut s = TcpStream::connect(server.addr).unwrap();
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    let expected = format!("seen {}\n", s.local_addr().unwrap());
    let mut line = vec![0u8; expected.len()];
    s.read_exact(&mut line).unwrap();
    assert_eq!(String::from_utf8(line).unwrap(), expected);
    // Long-lived: a pause does not end it.
    thread::sleep(Duration::from_millis(200));
    let sent: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let writer = {
        let mut w = s.try_clone().unwrap();
        let sent = sent.clone();
        thread::spawn(move || {
            w.write_all(&sent).unwrap();
            w.shutdown(Shutdown::Write).unwrap();
        })
    };
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    writer.join().unwrap();
    assert_eq!(back.len(), sent.len());
    assert!(back == sent, "echoed bytes differ");
    let stats = server.finish();
    assert_eq!((stats.tcp_connections, stats.tcp_bytes), (1, 100_000));
}

#[test]
fn servers_stop_when_told() {
    let server = echo();
    let web = web(WebConfig::new(LOOPBACK.parse().unwrap()));
    let started = Instant::now();
    server.finish();
    web.finish();
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "took {:?}",
        started.elapsed()
    );
    let bounded = Stop::after(Duration::from_millis(100));
    let stats =
        hafw_lab::hosts::serve_echo(EchoConfig::new(LOOPBACK.parse().unwrap()), &bounded).unwrap();
    assert_eq!(stats, EchoStats::default());
}

/// A UDP echo for the prober tests: `answer` decides what to send for each
/// probe (it gets the socket, the probe and where it came from).
fn test_echo(answer: impl Fn(&UdpSocket, &[u8], SocketAddr) + Send + 'static) -> Running<()> {
    let socket = UdpSocket::bind(LOOPBACK).unwrap();
    let addr = socket.local_addr().unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let stop = Stop::new();
    let run_stop = stop.clone();
    let thread = thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while !run_stop.is_stopped() {
            if let Ok((n, from)) = socket.recv_from(&mut buf) {
                answer(&socket, &buf[..n], from);
            }
        }
        Ok(())
    });
    Running { addr, stop, thread }
}

fn seq(payload: &[u8]) -> u64 {
    ProbePayload::decode(payload).unwrap().seq
}

fn ms(range: RangeInclusive<u64>) -> RangeInclusive<Duration> {
    Duration::from_millis(*range.start())..=Duration::from_millis(*range.end())
}

#[test]
fn prober_at_1000_hz_for_a_second_loses_nothing() {
    let server = echo();
    let config = ProbeConfig {
        duration: Duration::from_secs(1),
        ..ProbeConfig::new(server.addr)
    };
    let report = probe(&config, &Stop::new()).unwrap();
    eprintln!("{report}");
    assert!((950..=1050).contains(&report.sent), "{report}");
    assert_eq!(
        (report.lost, report.received, report.longest_loss_run),
        (0, report.sent, 0),
        "{report}"
    );
    assert!(
        report.longest_arrival_gap < Duration::from_millis(50),
        "{report}"
    );
    assert!(
        (900..=1100).contains(&report.sending.as_millis()),
        "{report}"
    );
    assert_eq!(
        (report.foreign, report.malformed, report.duplicates),
        (0, 0, 0),
        "{report}"
    );
    assert_eq!(report.probes.len() as u64, report.sent);
    assert!(report.probes.iter().all(|p| p.rtt.is_some()));
    // The echo host saw the prober's own loopback address.
    assert_eq!(report.seen.len(), 1, "{:?}", report.seen);
    assert_eq!(report.seen[0].ip().to_string(), "127.0.0.1");
    let stats = server.finish();
    assert_eq!(stats.datagrams, report.sent);
}

#[test]
fn prober_measures_a_hundred_probe_outage() {
    // Drops the replies to probes 300..400: a 100 ms outage at 1000 Hz.
    let server = test_echo(|socket, payload, from| {
        if !(300..400).contains(&seq(payload)) {
            socket.send_to(&encode_reply(from, payload), from).unwrap();
        }
    });
    let config = ProbeConfig {
        duration: Duration::from_secs(1),
        ..ProbeConfig::new(server.addr)
    };
    let report = probe(&config, &Stop::new()).unwrap();
    eprintln!("{report}");
    server.finish();
    assert_eq!(
        (report.lost, report.longest_loss_run),
        (100, 100),
        "{report}"
    );
    let start = report.longest_loss_run_start.unwrap();
    assert_eq!(start.seq, 300, "{report}");
    assert!(ms(280..=340).contains(&start.sent_at), "{report}");
    assert!(ms(95..=115).contains(&report.longest_loss_span), "{report}");
    assert!(
        ms(95..=130).contains(&report.longest_arrival_gap),
        "{report}"
    );
    let end = report.longest_arrival_gap_end.unwrap();
    assert!(ms(380..=460).contains(&end), "{report}");
    assert_eq!(
        (
            report.first_lost.unwrap().seq,
            report.last_lost.unwrap().seq
        ),
        (300, 399)
    );
    assert!(report.probes[300..400].iter().all(|p| p.rtt.is_none()));
    let json = report.to_json();
    assert!(json.contains("\"lost\":100,\"duplicates\":0,"), "{json}");
    assert!(
        json.contains("\"longest_loss_run\":100,\"longest_loss_run_start\":{\"seq\":300,"),
        "{json}"
    );
}

#[test]
fn prober_counts_foreign_malformed_and_duplicate_replies() {
    let other = UdpSocket::bind(LOOPBACK).unwrap();
    let server = test_echo(move |socket, payload, from| {
        let reply = encode_reply(from, payload);
        socket.send_to(&reply, from).unwrap();
        if seq(payload) == 10 {
            socket.send_to(&reply, from).unwrap();
            socket.send_to(b"seen nonsense\n", from).unwrap();
            socket
                .send_to(&encode_reply(from, b"not a probe"), from)
                .unwrap();
            other.send_to(&reply, from).unwrap();
        }
    });
    let config = ProbeConfig {
        rate_hz: 200,
        duration: Duration::from_millis(200),
        ..ProbeConfig::new(server.addr)
    };
    let report = probe(&config, &Stop::new()).unwrap();
    server.finish();
    assert_eq!(report.sent, 40, "{report}");
    assert_eq!(
        (
            report.lost,
            report.duplicates,
            report.malformed,
            report.foreign
        ),
        (0, 1, 2, 1),
        "{report}"
    );
    assert_eq!(report.probes[10].replies, 2);
}

#[test]
fn prober_stops_early_when_told_and_waits_for_the_last_replies() {
    // Answers every probe 50 ms late.
    let server = test_echo(|socket, payload, from| {
        thread::sleep(Duration::from_millis(50));
        let _ = socket.send_to(&encode_reply(from, payload), from);
    });
    let config = ProbeConfig {
        rate_hz: 10,
        duration: Duration::from_secs(30),
        ..ProbeConfig::new(server.addr)
    };
    let started = Instant::now();
    let report = probe(&config, &Stop::after(Duration::from_millis(450))).unwrap();
    server.finish();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!((report.sent, report.lost), (5, 0), "{report}");
    assert!(
        report.rtt_min.unwrap() >= Duration::from_millis(50),
        "{report}"
    );
}
