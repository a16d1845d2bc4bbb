//! The lab's web server: answers every GET with the client's address as the
//! server saw it, so the seed's inbound test can check that a firewall's
//! DNAT kept the internet client's public source address.
//!
//! One thread per connection (bounded), one request per connection, then
//! close: the server never needs to find where a second request starts.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use super::error::{is_timeout, HostError};
use super::http::{self, Reject, MAX_HEAD};
use super::sock::{accept_until, Live};
use super::Stop;

#[derive(Debug, Clone)]
pub struct WebConfig {
    pub addr: SocketAddr,
    /// The whole request head must arrive within this; a slower client gets
    /// 408 and is closed, so a silent client cannot hold a thread.
    pub request_timeout: Duration,
    /// Connections served at once; more are answered 503 straight away.
    pub max_connections: usize,
}

impl WebConfig {
    pub fn new(addr: SocketAddr) -> Self {
        WebConfig {
            addr,
            request_timeout: Duration::from_secs(10),
            max_connections: 512,
        }
    }
}

/// What a server did before it stopped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebStats {
    pub connections: u64,
    /// Answered 200.
    pub ok: u64,
    /// Answered with an error status (400, 405, 408, 431, 505).
    pub rejected: u64,
    /// Answered 503 because `max_connections` were busy.
    pub refused: u64,
    /// Closed before an answer could be written (client vanished, reset).
    pub failed: u64,
    pub accept_errors: u64,
}

/// A bound server; binding apart from running lets a caller learn the port
/// when it asked for port 0.
pub struct WebServer {
    listener: TcpListener,
    config: WebConfig,
}

/// Binds `config.addr` and serves until `stop` says so.
pub fn serve_web(config: WebConfig, stop: &Stop) -> Result<WebStats, HostError> {
    WebServer::bind(config)?.run(stop)
}

impl WebServer {
    pub fn bind(config: WebConfig) -> Result<Self, HostError> {
        if config.max_connections == 0 {
            return Err(HostError::Config(
                "max_connections must be at least 1".into(),
            ));
        }
        if config.request_timeout.is_zero() {
            return Err(HostError::Config(
                "request_timeout must be more than zero".into(),
            ));
        }
        let listener = TcpListener::bind(config.addr).map_err(|source| HostError::Bind {
            addr: config.addr,
            source,
        })?;
        Ok(WebServer { listener, config })
    }

    pub fn local_addr(&self) -> Result<SocketAddr, HostError> {
        self.listener
            .local_addr()
            .map_err(HostError::io("cannot read the web server's address"))
    }

    /// Serves until `stop`, then waits briefly for connections in progress
    /// so the returned counts include them.
    pub fn run(self, stop: &Stop) -> Result<WebStats, HostError> {
        let counters = Arc::new(Counters::default());
        let live = Live::default();
        let config = self.config;
        let accept_errors = accept_until(&self.listener, stop, |stream, peer| {
            counters.connections.fetch_add(1, Ordering::Relaxed);
            let Some(slot) = live.take(config.max_connections) else {
                refuse(stream);
                counters.refused.fetch_add(1, Ordering::Relaxed);
                return;
            };
            let conn_counters = counters.clone();
            let timeout = config.request_timeout;
            let spawned = thread::Builder::new()
                .name("web-conn".into())
                .spawn(move || {
                    let _slot = slot;
                    conn_counters.record(answer(stream, peer, timeout));
                });
            if spawned.is_err() {
                // Out of threads: the stream was dropped with the closure,
                // which closes the connection.
                counters.failed.fetch_add(1, Ordering::Relaxed);
            }
        })?;
        live.drain(config.request_timeout.min(Duration::from_secs(2)));
        Ok(counters.snapshot(accept_errors))
    }
}

#[derive(Default)]
struct Counters {
    connections: AtomicU64,
    ok: AtomicU64,
    rejected: AtomicU64,
    refused: AtomicU64,
    failed: AtomicU64,
}

impl Counters {
    fn record(&self, outcome: io::Result<Option<u16>>) {
        let counter = match outcome {
            Ok(Some(200)) => &self.ok,
            Ok(Some(_)) => &self.rejected,
            Ok(None) | Err(_) => &self.failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    fn snapshot(&self, accept_errors: u64) -> WebStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        WebStats {
            connections: get(&self.connections),
            ok: get(&self.ok),
            rejected: get(&self.rejected),
            refused: get(&self.refused),
            failed: get(&self.failed),
            accept_errors,
        }
    }
}

/// Answers 503 without reading: the response is small enough for the socket
/// buffer, so this never blocks the accept loop for long.
fn refuse(mut stream: TcpStream) {
    let _ = stream.set_write_timeout(Some(Duration::from_millis(100)));
    let _ = stream.write_all(&http::render_response(503, "too many connections\n", false));
}

/// Reads one request and answers it. Returns the status sent, or `None` if
/// the client closed without sending anything.
fn answer(mut stream: TcpStream, peer: SocketAddr, timeout: Duration) -> io::Result<Option<u16>> {
    let (status, body, head_only) = match read_head(&mut stream, Instant::now() + timeout)? {
        Head::Complete(head) => respond_to(&head, peer),
        Head::Closed => return Ok(None),
        Head::Truncated => (
            400,
            "the request ended before its blank line\n".to_string(),
            false,
        ),
        Head::TooLarge => (
            431,
            format!("the request head exceeds {MAX_HEAD} bytes\n"),
            false,
        ),
        Head::TimedOut => (
            408,
            "the request head did not arrive in time\n".to_string(),
            false,
        ),
    };
    stream.set_write_timeout(Some(timeout))?;
    stream.write_all(&http::render_response(status, &body, head_only))?;
    linger(&mut stream);
    Ok(Some(status))
}

fn respond_to(head: &[u8], peer: SocketAddr) -> (u16, String, bool) {
    match http::parse_request(head) {
        Ok(req) if req.method == "GET" || req.method == "HEAD" => {
            (200, format!("client {peer}\n"), req.method == "HEAD")
        }
        Ok(req) => (
            405,
            format!("method {} is not served; use GET\n", req.method),
            false,
        ),
        Err(Reject::Malformed(why)) => (400, format!("{why}\n"), false),
        Err(Reject::Version) => (505, "only HTTP/1.0 and HTTP/1.1 are served\n".into(), false),
    }
}

enum Head {
    Complete(Vec<u8>),
    /// EOF before any byte.
    Closed,
    /// EOF in the middle of a head.
    Truncated,
    TooLarge,
    TimedOut,
}

/// Reads until the head's blank line, at most [`MAX_HEAD`] bytes, by
/// `deadline` (one deadline for the whole head, so a client trickling a byte
/// at a time is cut off too).
fn read_head(stream: &mut TcpStream, deadline: Instant) -> io::Result<Head> {
    let mut buf = vec![0; MAX_HEAD];
    let mut len = 0;
    loop {
        if let Some(end) = http::head_end(&buf[..len]) {
            buf.truncate(end);
            return Ok(Head::Complete(buf));
        }
        if len == MAX_HEAD {
            return Ok(Head::TooLarge);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(Head::TimedOut);
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut buf[len..]) {
            Ok(0) if len == 0 => return Ok(Head::Closed),
            Ok(0) => return Ok(Head::Truncated),
            Ok(n) => len += n,
            Err(e) if is_timeout(&e) => return Ok(Head::TimedOut),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Half-closes, then reads and discards what the client still sends for a
/// moment. Closing a socket with unread input makes the kernel send RST,
/// which can destroy the response before the client reads it (the
/// "lingering close" of RFC 9112 §9.6).
fn linger(stream: &mut TcpStream) {
    const LIMIT: usize = 64 * 1024;
    if stream.shutdown(Shutdown::Write).is_err() {
        return;
    }
    let until = Instant::now() + Duration::from_secs(1);
    let mut sink = [0u8; 4096];
    let mut drained = 0;
    while drained < LIMIT {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return;
        }
        match stream.read(&mut sink) {
            Ok(0) => return,
            Ok(n) => drained += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}
