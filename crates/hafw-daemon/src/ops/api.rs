//! The read-only HTTP status API: `GET /status` (the JSON of
//! `hafw status --json`) and `GET /metrics` (OpenMetrics text), both behind
//! `Authorization: Bearer <token>`. Off unless the daemon is given
//! `--api ADDR --api-token-file FILE`; bind it to the management address.
//!
//! A small HTTP/1.1 server of its own rather than a framework: two
//! read-only routes need no more, and every limit is visible here. One
//! request per connection (`Connection: close`); the request head is
//! bounded in size and time, connections in number, and nothing a client
//! sends can make it panic.
//!
//! One slow client cannot shut out monitoring: connections are tasks (an
//! idle one costs a few kilobytes, so the cap is in the hundreds), and when
//! the cap is reached a new connection evicts the oldest one still waiting
//! for its request head rather than being refused: a client that connects
//! and says nothing loses its place to one that asks. Only when every
//! connection is past its head (answering, which takes milliseconds) is a
//! newcomer closed. Every refusal is counted (`hafw_api_refused_total`).

use std::fs::File;
use std::io::{ErrorKind, Read};
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use subtle::ConstantTimeEq;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::task::JoinHandle;

use super::metrics::{self, Metrics};

/// The shortest token accepted, in bytes.
pub const MIN_TOKEN_LEN: usize = 16;

/// Bounds on what one client can cost the node.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest request head (request line and headers), in bytes.
    pub max_head: usize,
    /// Time allowed to receive the whole head (slow clients are cut off).
    /// Above one TCP retransmission of the head (the first RTO is 1 s).
    pub head_timeout: Duration,
    /// Time allowed to send the whole reply.
    pub write_timeout: Duration,
    /// Time the status callback may take before the reply is 503.
    pub status_timeout: Duration,
    /// Connections held at once. A new one beyond it evicts the oldest
    /// still waiting for its head, or is closed when none is.
    pub max_connections: usize,
    /// Status callbacks running at once (a stuck callback holds its slot
    /// until it returns, so a hung HA thread cannot pile up threads).
    pub max_status_calls: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 8 * 1024,
            head_timeout: Duration::from_secs(3),
            write_timeout: Duration::from_secs(5),
            status_timeout: Duration::from_secs(2),
            max_connections: 256,
            max_status_calls: 2,
        }
    }
}

/// A running API server.
#[derive(Debug)]
pub struct Server {
    addr: SocketAddr,
    task: JoinHandle<()>,
}

impl Server {
    /// The address it listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections. Dropping the `Server` does not stop
    /// it: it serves until the runtime ends or this is called.
    pub fn stop(self) {
        self.task.abort();
    }
}

type StatusFn = dyn Fn() -> String + Send + Sync;

struct Ctx {
    token: Vec<u8>,
    status: Arc<StatusFn>,
    metrics: Metrics,
    limits: Limits,
    status_calls: Arc<Semaphore>,
}

/// Starts the API on the current tokio runtime with the default
/// [`Limits`]. `status` returns the status JSON; it runs on the blocking
/// pool, so it may wait on a channel (like the control socket's handler).
pub fn serve(
    addr: SocketAddr,
    token: String,
    status: impl Fn() -> String + Send + Sync + 'static,
    metrics: Metrics,
) -> Result<Server, String> {
    serve_with(addr, token, status, metrics, Limits::default())
}

/// [`serve`] with explicit limits.
pub fn serve_with(
    addr: SocketAddr,
    token: String,
    status: impl Fn() -> String + Send + Sync + 'static,
    metrics: Metrics,
    limits: Limits,
) -> Result<Server, String> {
    check_token(&token).map_err(|e| format!("API token: {e}"))?;
    if tokio::runtime::Handle::try_current().is_err() {
        return Err("the status API must be started from within the tokio runtime".into());
    }
    // Bound synchronously so a taken port fails `hafw run` at start.
    let std_listener = std::net::TcpListener::bind(addr).map_err(|e| {
        format!("status API: cannot listen on {addr}: {e}; is the address on this node and the port free?")
    })?;
    std_listener
        .set_nonblocking(true)
        .map_err(|e| format!("status API on {addr}: {e}"))?;
    let listener =
        TcpListener::from_std(std_listener).map_err(|e| format!("status API on {addr}: {e}"))?;
    let local = listener
        .local_addr()
        .map_err(|e| format!("status API on {addr}: {e}"))?;
    let ctx = Arc::new(Ctx {
        token: token.into_bytes(),
        status: Arc::new(status),
        metrics,
        limits,
        status_calls: Arc::new(Semaphore::new(limits.max_status_calls.max(1))),
    });
    let task = tokio::spawn(accept(listener, ctx));
    Ok(Server { addr: local, task })
}

/// The connections that hold a place, and those of them still waiting for
/// their head, oldest first, with the signal that evicts each.
#[derive(Default)]
struct Table {
    places: std::collections::HashSet<u64>,
    next_id: u64,
    waiting: std::collections::BTreeMap<u64, Arc<Notify>>,
}

/// Gives a connection's place back when its task ends, however it ends.
struct Held {
    table: Arc<Mutex<Table>>,
    id: u64,
}

impl Held {
    /// The head arrived (or the connection failed): no longer evictable.
    fn done_waiting(&self) {
        lock(&self.table).waiting.remove(&self.id);
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let mut t = lock(&self.table);
        t.waiting.remove(&self.id);
        t.places.remove(&self.id);
    }
}

fn lock(t: &Mutex<Table>) -> std::sync::MutexGuard<'_, Table> {
    t.lock().unwrap_or_else(|p| p.into_inner())
}

/// Takes a place for a new connection, evicting the oldest one still
/// waiting for its head when all `max` are taken; `None` when every
/// connection is past its head. An evicted connection gives its place up
/// at once (its task closes it as soon as it runs), so at most `max` hold
/// a place, plus those being closed.
fn admit(table: &Arc<Mutex<Table>>, max: usize, metrics: &Metrics) -> Option<(Held, Arc<Notify>)> {
    let mut t = lock(table);
    if t.places.len() >= max {
        let (oldest, evict) = t.waiting.pop_first()?;
        t.places.remove(&oldest);
        evict.notify_one();
        metrics.api_refused("evicted");
    }
    t.next_id += 1;
    let id = t.next_id;
    let evict = Arc::new(Notify::new());
    t.places.insert(id);
    t.waiting.insert(id, evict.clone());
    Some((
        Held {
            table: table.clone(),
            id,
        },
        evict,
    ))
}

async fn accept(listener: TcpListener, ctx: Arc<Ctx>) {
    let table = Arc::new(Mutex::new(Table::default()));
    let max = ctx.limits.max_connections.max(1);
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of file descriptors and the like: wait, do not spin.
                tracing::warn!(error = %e, "status API: accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some((held, evict)) = admit(&table, max, &ctx.metrics) else {
            // Every connection is being answered: closing costs nothing,
            // queueing would cost memory.
            ctx.metrics.api_refused("busy");
            continue;
        };
        let ctx = ctx.clone();
        tokio::spawn(async move {
            connection(stream, &ctx, &held, &evict).await;
            drop(held);
        });
    }
}

async fn connection(mut stream: TcpStream, ctx: &Ctx, held: &Held, evict: &Notify) {
    let limits = ctx.limits;
    let head = tokio::select! {
        head = tokio::time::timeout(limits.head_timeout, read_head(&mut stream, limits.max_head)) => head,
        // Evicted for a newer connection: close without a word.
        _ = evict.notified() => return,
    };
    held.done_waiting();
    let refused = |reason: &str| ctx.metrics.api_refused(reason);
    let reply = match head {
        Err(_) => {
            refused("head_timeout");
            Reply::error(408, "request head not received in time\n")
        }
        Ok(Err(HeadError::TooLarge)) => {
            refused("head_too_large");
            Reply::error(431, "request head too large\n")
        }
        Ok(Err(HeadError::Closed)) => return,
        Ok(Ok(head)) => match parse_head(&head) {
            Err(code) => {
                refused("malformed");
                Reply::error(code, "malformed request\n")
            }
            Ok(req) => match route(&req, &ctx.token) {
                Route::Error(code) => {
                    if code == 401 {
                        refused("unauthorized");
                    }
                    Reply::error(code, reason(code))
                }
                Route::Metrics => Reply {
                    code: 200,
                    content_type: metrics::CONTENT_TYPE,
                    body: ctx.metrics.encode(),
                },
                Route::Status => status_reply(ctx).await,
            },
        },
    };
    let _ = tokio::time::timeout(limits.write_timeout, async {
        stream.write_all(&reply.to_bytes()).await?;
        stream.shutdown().await
    })
    .await;
    // Read what the client still sends (a body, the rest of an oversize
    // head) briefly, so closing does not reset the connection before the
    // client has read the reply.
    let _ = tokio::time::timeout(Duration::from_millis(200), async {
        let mut sink = [0u8; 4096];
        let mut left: usize = 256 * 1024;
        while left > 0 {
            match stream.read(&mut sink).await {
                Ok(0) | Err(_) => break,
                Ok(n) => left = left.saturating_sub(n),
            }
        }
    })
    .await;
}

async fn status_reply(ctx: &Ctx) -> Reply {
    let Ok(permit) = ctx.status_calls.clone().try_acquire_owned() else {
        ctx.metrics.api_refused("status_busy");
        return Reply::error(503, "status busy: earlier requests are still waiting\n");
    };
    let status = ctx.status.clone();
    let call = tokio::task::spawn_blocking(move || {
        let json = status();
        drop(permit);
        json
    });
    match tokio::time::timeout(ctx.limits.status_timeout, call).await {
        Ok(Ok(json)) => Reply {
            code: 200,
            content_type: "application/json",
            body: json,
        },
        Ok(Err(e)) => {
            tracing::error!(error = %e, "status API: the status callback failed");
            Reply::error(500, "status callback failed\n")
        }
        Err(_) => Reply::error(503, "the node did not produce its status in time\n"),
    }
}

enum HeadError {
    TooLarge,
    Closed,
}

/// Reads until the blank line that ends the head; the bytes after it (a
/// body) are never looked at.
async fn read_head(stream: &mut TcpStream, max: usize) -> Result<Vec<u8>, HeadError> {
    let mut head = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        let n = match stream.read(&mut chunk).await {
            Ok(0) => return Err(HeadError::Closed),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return Err(HeadError::Closed),
        };
        let from = head.len().saturating_sub(3);
        head.extend_from_slice(&chunk[..n]);
        if let Some(end) = head_end(&head[from..]) {
            if from + end > max {
                return Err(HeadError::TooLarge);
            }
            head.truncate(from + end);
            return Ok(head);
        }
        if head.len() > max {
            return Err(HeadError::TooLarge);
        }
    }
}

/// Where the head ends (after `\r\n\r\n`, or `\n\n` from lax clients).
fn head_end(b: &[u8]) -> Option<usize> {
    (0..b.len()).find_map(|i| {
        if b[i..].starts_with(b"\r\n\r\n") {
            Some(i + 4)
        } else if b[i..].starts_with(b"\n\n") {
            Some(i + 2)
        } else {
            None
        }
    })
}

/// What the server needs from a request head.
#[derive(Debug, PartialEq, Eq)]
pub struct Request {
    pub method: String,
    /// The target without its query string.
    pub path: String,
    /// Every `Authorization` header value, in order.
    pub authorization: Vec<String>,
}

/// Parses a request head; `Err` is the HTTP status to answer (400, 505).
pub fn parse_head(head: &[u8]) -> Result<Request, u16> {
    let text = std::str::from_utf8(head).map_err(|_| 400u16)?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let request_line = lines.next().ok_or(400u16)?;
    let mut parts = request_line.split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(400);
    };
    if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
        return Err(400);
    }
    if !target.starts_with('/') {
        return Err(400);
    }
    match version {
        "HTTP/1.1" | "HTTP/1.0" => {}
        v if v.starts_with("HTTP/") => return Err(505),
        _ => return Err(400),
    }
    let mut authorization = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').ok_or(400u16)?;
        if name.is_empty() || name.bytes().any(|b| b.is_ascii_whitespace()) {
            return Err(400);
        }
        if name.eq_ignore_ascii_case("authorization") {
            authorization.push(value.trim().to_string());
        }
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    Ok(Request {
        method: method.to_string(),
        path: path.to_string(),
        authorization,
    })
}

/// What to answer.
#[derive(Debug, PartialEq, Eq)]
pub enum Route {
    Status,
    Metrics,
    Error(u16),
}

/// Authentication first, so that nothing, not even which paths exist, is
/// told to a client without the token.
pub fn route(req: &Request, token: &[u8]) -> Route {
    if !authorized(&req.authorization, token) {
        return Route::Error(401);
    }
    if req.method != "GET" {
        return Route::Error(405);
    }
    match req.path.as_str() {
        "/status" => Route::Status,
        "/metrics" => Route::Metrics,
        _ => Route::Error(404),
    }
}

/// Exactly one `Authorization: Bearer <token>` header with the right
/// token, compared in constant time (only the length can leak, and the
/// length of a random token tells nothing useful).
fn authorized(headers: &[String], token: &[u8]) -> bool {
    let [value] = headers else { return false };
    let Some((scheme, credentials)) = value.split_once(' ') else {
        return false;
    };
    if token.is_empty() || !scheme.eq_ignore_ascii_case("bearer") {
        return false;
    }
    bool::from(credentials.trim().as_bytes().ct_eq(token))
}

struct Reply {
    code: u16,
    content_type: &'static str,
    body: String,
}

impl Reply {
    fn error(code: u16, body: &str) -> Reply {
        Reply {
            code,
            content_type: "text/plain; charset=utf-8",
            body: body.to_string(),
        }
    }

    fn to_bytes(&self) -> Vec<u8> {
        let mut extra = String::new();
        match self.code {
            401 => extra.push_str("WWW-Authenticate: Bearer realm=\"hafw\"\r\n"),
            405 => extra.push_str("Allow: GET\r\n"),
            _ => {}
        }
        let head = format!(
            "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nConnection: close\r\n{extra}\r\n",
            self.code,
            reason(self.code).trim_end(),
            self.content_type,
            self.body.len(),
        );
        let mut out = head.into_bytes();
        out.extend_from_slice(self.body.as_bytes());
        out
    }
}

fn reason(code: u16) -> &'static str {
    match code {
        200 => "OK\n",
        400 => "Bad Request\n",
        401 => "Unauthorized\n",
        404 => "Not Found\n",
        405 => "Method Not Allowed\n",
        408 => "Request Timeout\n",
        431 => "Request Header Fields Too Large\n",
        500 => "Internal Server Error\n",
        503 => "Service Unavailable\n",
        505 => "HTTP Version Not Supported\n",
        _ => "Error\n",
    }
}

/// Reads the API token from `path`: one line of at least
/// [`MIN_TOKEN_LEN`] printable characters, in a file other users cannot
/// read.
pub fn load_token(path: &Path) -> Result<String, String> {
    let shown = path.display();
    let fix = format!("create it with: umask 077; head -c 32 /dev/urandom | base64 > {shown}");
    let mut file = File::open(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => format!("API token file {shown} does not exist; {fix}"),
        _ => format!("cannot read API token file {shown}: {e}"),
    })?;
    let meta = file
        .metadata()
        .map_err(|e| format!("cannot read API token file {shown}: {e}"))?;
    if !meta.is_file() {
        return Err(format!(
            "API token file {shown} is not a regular file; {fix}"
        ));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o007 != 0 {
        return Err(format!(
            "API token file {shown} is open to every user (mode {mode:03o}); run: chmod 600 {shown}"
        ));
    }
    // Bounded: a token file is one line; anything bigger is a wrong path.
    let mut raw = Vec::new();
    file.by_ref()
        .take(4096)
        .read_to_end(&mut raw)
        .map_err(|e| format!("cannot read API token file {shown}: {e}"))?;
    let text =
        String::from_utf8(raw).map_err(|_| format!("API token file {shown} is not text; {fix}"))?;
    let token = text.trim();
    check_token(token).map_err(|e| format!("API token file {shown}: {e}; {fix}"))?;
    Ok(token.to_string())
}

/// A token must be sendable as a Bearer credential and hard to guess.
pub fn check_token(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("the token is empty".into());
    }
    if token.len() < MIN_TOKEN_LEN {
        return Err(format!(
            "the token is {} bytes long; use at least {MIN_TOKEN_LEN}",
            token.len()
        ));
    }
    if !token.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(
            "the token has spaces, control or non-ASCII characters, which a Bearer header cannot carry"
                .into(),
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(text: &str) -> Result<Request, u16> {
        parse_head(text.as_bytes())
    }

    #[test]
    fn heads_parse_or_name_the_status() {
        let r = req("GET /status?x=1 HTTP/1.1\r\nHost: a\r\nauthorization:  Bearer abc \r\n\r\n")
            .unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.path, "/status");
        assert_eq!(r.authorization, vec!["Bearer abc".to_string()]);
        assert_eq!(req("GET /status HTTP/2.0\r\n\r\n"), Err(505));
        assert_eq!(req("GET /status\r\n\r\n"), Err(400));
        assert_eq!(req("GET  /status HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(req("get /status HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(req("GET status HTTP/1.1\r\n\r\n"), Err(400));
        assert_eq!(req("GET / HTTP/1.1\r\nno colon\r\n\r\n"), Err(400));
        assert_eq!(req("GET / HTTP/1.1\r\nBad Name: x\r\n\r\n"), Err(400));
        assert_eq!(parse_head(b"GET / HTTP/1.1\r\nX: \xff\r\n\r\n"), Err(400));
        assert_eq!(req(""), Err(400));
    }

    #[test]
    fn routes_check_the_token_before_anything_else() {
        let token = b"0123456789abcdef";
        let r = |m: &str, p: &str, auth: &[&str]| {
            route(
                &Request {
                    method: m.into(),
                    path: p.into(),
                    authorization: auth.iter().map(|s| s.to_string()).collect(),
                },
                token,
            )
        };
        let good = "Bearer 0123456789abcdef";
        assert_eq!(r("GET", "/status", &[good]), Route::Status);
        assert_eq!(
            r("GET", "/metrics", &["bearer 0123456789abcdef"]),
            Route::Metrics
        );
        assert_eq!(r("GET", "/status", &[]), Route::Error(401));
        assert_eq!(
            r("GET", "/status", &["Bearer 0123456789abcdeX"]),
            Route::Error(401)
        );
        assert_eq!(
            r("GET", "/status", &["Bearer 0123456789abcde"]),
            Route::Error(401)
        );
        assert_eq!(
            r("GET", "/status", &["Basic 0123456789abcdef"]),
            Route::Error(401)
        );
        assert_eq!(r("GET", "/status", &[good, good]), Route::Error(401));
        assert_eq!(r("POST", "/x", &[]), Route::Error(401));
        assert_eq!(r("POST", "/status", &[good]), Route::Error(405));
        assert_eq!(r("GET", "/", &[good]), Route::Error(404));
    }

    #[test]
    fn an_empty_token_matches_nothing() {
        let r = Request {
            method: "GET".into(),
            path: "/status".into(),
            authorization: vec!["Bearer ".into()],
        };
        assert_eq!(route(&r, b""), Route::Error(401));
    }

    #[test]
    fn tokens_are_checked() {
        assert!(check_token("").unwrap_err().contains("empty"));
        assert!(check_token("short").unwrap_err().contains("at least 16"));
        assert!(check_token("0123456789 abcdef")
            .unwrap_err()
            .contains("spaces"));
        assert!(check_token("0123456789abcdef").is_ok());
    }
}
