//! The ECS instance metadata service (alicloud-havip.md, "On the
//! instance"), as `hafw run` asks it at start: which MAC is which ENI
//! (`network/interfaces/macs/<mac>/primary-ip-address`).
//!
//! A small HTTP/1.1 client of its own over `std::net::TcpStream`, like the
//! status API's server (`ops::api`): three kinds of request to one
//! link-local service need no HTTP stack, and every limit is here to see.
//! One request per connection (`Connection: close`); a reply is at most
//! [`Limits::reply_max`] bytes and [`Limits::per_request`] long, whatever
//! the peer sends (a slow drip is cut at the request's deadline, not per
//! read); the whole conversation has a budget ([`Limits::budget`]) for the
//! retries a just-booted instance needs (the service can be slow or not
//! yet reachable for the first seconds). Anything malformed is refused and
//! counted ([`Stats`]), never a panic.
//!
//! Always the hardened mode: `PUT /latest/api/token` with
//! `X-aliyun-ecs-metadata-token-ttl-seconds`, then the token on every read.
//! The ECS service accepts a token in both of its modes, and the account
//! can enforce the hardened one at any time, so a node that always uses it
//! works in both; a fallback to plain reads when the PUT is refused would
//! only serve a service that is not ECS's, and is not made.
//!
//! `HAFW_METADATA_URL` (tests and the lab only) replaces
//! `http://100.100.100.200`.

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

/// The service's address on every ECS instance.
pub const DEFAULT_URL: &str = "http://100.100.100.200";
/// The test and lab override of [`DEFAULT_URL`].
pub const URL_ENV: &str = "HAFW_METADATA_URL";
/// The token's lifetime asked for: 6 hours, the service's maximum; a
/// start-up needs seconds.
pub const TOKEN_TTL_S: u32 = 21_600;

/// What one conversation may cost.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// The largest reply read, head and body (longer: refused).
    pub reply_max: usize,
    /// One request, connect to last byte.
    pub per_request: Duration,
    /// Every request and retry together.
    pub budget: Duration,
    /// The first pause between retries; doubled each time up to 2 s.
    pub first_backoff: Duration,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            reply_max: 64 * 1024,
            per_request: Duration::from_secs(2),
            budget: Duration::from_secs(20),
            first_backoff: Duration::from_millis(200),
        }
    }
}

/// What the client refused or retried, for the start-up log.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub requests: u32,
    pub retries: u32,
    pub timeouts: u32,
    pub oversize: u32,
    pub malformed: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataError {
    /// The URL in `HAFW_METADATA_URL` is not `http://HOST[:PORT][/PREFIX]`.
    Url(String),
    /// No connection, or it broke (retried within the budget).
    Io(String),
    /// A reply took longer than `per_request` (retried within the budget).
    Timeout,
    /// A reply longer than `reply_max` (not retried).
    Oversize,
    /// Not HTTP/1.x, or a body that is not what was asked (not retried).
    Malformed(String),
    /// An answer with this status (5xx retried; 404 is "no such item").
    Status(u16),
    /// The budget ran out; the last failure.
    Exhausted(Box<MetadataError>),
}

impl std::fmt::Display for MetadataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MetadataError::Url(u) => write!(
                f,
                "{URL_ENV}=`{u}` is not http://HOST[:PORT][/PREFIX]; correct it or unset it"
            ),
            MetadataError::Io(e) => write!(f, "{e}"),
            MetadataError::Timeout => write!(f, "no complete reply in time"),
            MetadataError::Oversize => write!(f, "reply too large, refused"),
            MetadataError::Malformed(e) => write!(f, "malformed reply refused: {e}"),
            MetadataError::Status(404) => write!(f, "404 Not Found"),
            MetadataError::Status(s) => write!(f, "HTTP status {s}"),
            MetadataError::Exhausted(last) => {
                write!(f, "gave up after the retry budget; last: {last}")
            }
        }
    }
}

impl MetadataError {
    fn retried(&self) -> bool {
        match self {
            MetadataError::Io(_) | MetadataError::Timeout => true,
            MetadataError::Status(s) => *s >= 500,
            _ => false,
        }
    }
}

/// A conversation with the service: its token, budget and counters.
pub struct Client {
    host: String,
    addr: SocketAddr,
    prefix: String,
    limits: Limits,
    deadline: Instant,
    token: Option<String>,
    pub stats: Stats,
}

impl Client {
    /// The client for [`DEFAULT_URL`], or `HAFW_METADATA_URL` when set.
    pub fn from_env() -> Result<Client, MetadataError> {
        let url = std::env::var(URL_ENV).unwrap_or_else(|_| DEFAULT_URL.to_string());
        Client::new(&url, Limits::default())
    }

    pub fn new(url: &str, limits: Limits) -> Result<Client, MetadataError> {
        let bad = || MetadataError::Url(url.to_string());
        let rest = url.strip_prefix("http://").ok_or_else(bad)?;
        let (hostport, prefix) = match rest.find('/') {
            Some(at) => (&rest[..at], rest[at..].trim_end_matches('/')),
            None => (rest, ""),
        };
        if hostport.is_empty() || prefix.contains(char::is_whitespace) {
            return Err(bad());
        }
        let with_port = if hostport.contains(':') {
            hostport.to_string()
        } else {
            format!("{hostport}:80")
        };
        let addr = with_port
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?;
        Ok(Client {
            host: hostport.to_string(),
            addr,
            prefix: prefix.to_string(),
            limits,
            deadline: Instant::now() + limits.budget,
            token: None,
            stats: Stats::default(),
        })
    }

    /// `GET /latest/meta-data/<item>`, as text (trimmed).
    pub fn item(&mut self, item: &str) -> Result<String, MetadataError> {
        if self.token.is_none() {
            self.token = Some(self.fetch_token()?);
        }
        let path = format!("/latest/meta-data/{item}");
        match self.with_retries("GET", &path, true) {
            // An expired or revoked token: one fresh token, one more try.
            Err(MetadataError::Status(401 | 403)) => {
                self.token = Some(self.fetch_token()?);
                self.with_retries("GET", &path, true)
            }
            other => other,
        }
    }

    /// The primary IP the service gives the ENI with `mac` (lower case).
    pub fn primary_ip(&mut self, mac: &str) -> Result<Ipv4Addr, MetadataError> {
        let text = self.item(&format!("network/interfaces/macs/{mac}/primary-ip-address"))?;
        text.parse().map_err(|_| {
            self.stats.malformed += 1;
            MetadataError::Malformed(format!("`{}` is not an IPv4 address", printable(&text)))
        })
    }

    fn fetch_token(&mut self) -> Result<String, MetadataError> {
        let token = self.with_retries("PUT", "/latest/api/token", false)?;
        // It goes back into a header: visible ASCII only, or a reply could
        // write headers of its own into our requests.
        if token.is_empty() || token.len() > 1024 || !token.bytes().all(|b| b.is_ascii_graphic()) {
            self.stats.malformed += 1;
            return Err(MetadataError::Malformed(
                "the token is not 1-1024 visible ASCII characters".into(),
            ));
        }
        Ok(token)
    }

    fn with_retries(
        &mut self,
        method: &str,
        path: &str,
        with_token: bool,
    ) -> Result<String, MetadataError> {
        let mut backoff = self.limits.first_backoff;
        loop {
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MetadataError::Exhausted(Box::new(MetadataError::Timeout)));
            }
            self.stats.requests += 1;
            let e = match self.once(method, path, with_token, left.min(self.limits.per_request)) {
                Ok(body) => return Ok(body),
                Err(e) => e,
            };
            match &e {
                MetadataError::Timeout => self.stats.timeouts += 1,
                MetadataError::Oversize => self.stats.oversize += 1,
                MetadataError::Malformed(_) => self.stats.malformed += 1,
                _ => {}
            }
            if !e.retried() {
                return Err(e);
            }
            let left = self.deadline.saturating_duration_since(Instant::now());
            if left <= backoff {
                return Err(MetadataError::Exhausted(Box::new(e)));
            }
            self.stats.retries += 1;
            std::thread::sleep(backoff);
            backoff = (backoff * 2).min(Duration::from_secs(2));
        }
    }

    fn once(
        &self,
        method: &str,
        path: &str,
        with_token: bool,
        within: Duration,
    ) -> Result<String, MetadataError> {
        let until = Instant::now() + within;
        let io = |what: &str, e: std::io::Error| match e.kind() {
            ErrorKind::WouldBlock | ErrorKind::TimedOut => MetadataError::Timeout,
            _ => MetadataError::Io(format!("{what} {}: {e}", self.addr)),
        };
        let mut sock =
            TcpStream::connect_timeout(&self.addr, within).map_err(|e| io("connect", e))?;
        let mut head = format!(
            "{method} {}{path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: hafw\r\n",
            self.prefix, self.host
        );
        if method == "PUT" {
            head.push_str(&format!(
                "X-aliyun-ecs-metadata-token-ttl-seconds: {TOKEN_TTL_S}\r\nContent-Length: 0\r\n"
            ));
        }
        if let (true, Some(t)) = (with_token, &self.token) {
            head.push_str(&format!("X-aliyun-ecs-metadata-token: {t}\r\n"));
        }
        head.push_str("\r\n");
        sock.set_write_timeout(Some(within))
            .map_err(|e| io("set a timeout on", e))?;
        sock.write_all(head.as_bytes())
            .map_err(|e| io("send to", e))?;
        let mut reply = Vec::with_capacity(1024);
        let mut buf = [0u8; 4096];
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(MetadataError::Timeout);
            }
            sock.set_read_timeout(Some(left))
                .map_err(|e| io("set a timeout on", e))?;
            match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => {
                    if reply.len() + n > self.limits.reply_max {
                        return Err(MetadataError::Oversize);
                    }
                    reply.extend_from_slice(&buf[..n]);
                    // A complete reply with a length ends here even if the
                    // server keeps the connection open.
                    if let Some(done) = complete(&reply) {
                        return done;
                    }
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => return Err(io("read from", e)),
            }
        }
        parse(&reply, true)
    }
}

/// `Some` once `reply` holds a whole response with a Content-Length.
fn complete(reply: &[u8]) -> Option<Result<String, MetadataError>> {
    let end = find(reply, b"\r\n\r\n")?;
    let head = std::str::from_utf8(&reply[..end]).ok()?;
    let len = content_length(head)?.ok()?;
    (reply.len() >= end + 4 + len).then(|| parse(reply, false))
}

/// A whole reply (`closed`: the server closed the connection after it).
/// Chunked bodies are refused: the service sends a length, and a body
/// without one is read to the close.
pub fn parse(reply: &[u8], closed: bool) -> Result<String, MetadataError> {
    let bad = |m: &str| MetadataError::Malformed(m.to_string());
    let end = find(reply, b"\r\n\r\n").ok_or_else(|| bad("no end of the head"))?;
    let head = std::str::from_utf8(&reply[..end]).map_err(|_| bad("the head is not text"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let (version, code) = (parts.next(), parts.next());
    if !matches!(version, Some("HTTP/1.1" | "HTTP/1.0")) {
        return Err(bad("not an HTTP/1.x status line"));
    }
    let code: u16 = code
        .filter(|c| c.len() == 3)
        .and_then(|c| c.parse().ok())
        .filter(|c| (100..600).contains(c))
        .ok_or_else(|| bad("no status code"))?;
    if head.lines().skip(1).any(|l| {
        l.split_once(':').is_some_and(|(n, v)| {
            n.trim().eq_ignore_ascii_case("transfer-encoding")
                && !v.trim().eq_ignore_ascii_case("identity")
        })
    }) {
        return Err(bad(
            "a transfer encoding (only Content-Length bodies are read)",
        ));
    }
    let body = &reply[end + 4..];
    let body = match content_length(head) {
        Some(Err(())) => return Err(bad("Content-Length is not one number")),
        Some(Ok(len)) if body.len() < len => {
            return Err(bad("the body is shorter than its Content-Length"))
        }
        Some(Ok(len)) => &body[..len],
        None if closed => body,
        None => return Err(bad("no Content-Length")),
    };
    if code != 200 {
        return Err(MetadataError::Status(code));
    }
    let text = std::str::from_utf8(body).map_err(|_| bad("the body is not UTF-8"))?;
    Ok(text.trim().to_string())
}

/// The Content-Length header: `None` if absent, `Err` if two differ or
/// it is not a number.
fn content_length(head: &str) -> Option<Result<usize, ()>> {
    let mut found: Option<usize> = None;
    for line in head.lines().skip(1) {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if !name.trim().eq_ignore_ascii_case("content-length") {
            continue;
        }
        let Ok(n) = value.trim().parse::<usize>() else {
            return Some(Err(()));
        };
        if found.is_some_and(|f| f != n) {
            return Some(Err(()));
        }
        found = Some(n);
    }
    found.map(Ok)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// At most 40 characters of `s`, control characters escaped, for a log.
fn printable(s: &str) -> String {
    s.chars().take(40).flat_map(char::escape_debug).collect()
}

#[cfg(test)]
mod tests;
