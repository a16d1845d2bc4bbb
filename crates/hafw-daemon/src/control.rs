//! The control socket: a root-only Unix socket where `hafw status`,
//! `hafw suspend` and `hafw resume` reach a running node. One request line
//! in, one reply out (`ok` or `error: …` on the first line, then a body),
//! then the connection closes.
//!
//! Its rules: created 0600 with no moment of a wider mode ([`bind`]); a
//! client must be root or the daemon's own user (`SO_PEERCRED`, checked
//! before a byte is read); each client has a thread of its own, up to
//! [`Limits::max_clients`], with a deadline for its request line and one
//! for taking its reply, so a silent, trickling or non-reading client
//! costs one slot for seconds and never blocks another. Refusals are
//! counted ([`Counters`], `hafw_control_refused_total`).

use std::io::{ErrorKind, Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Where a node listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/hafw/hafw.sock";

/// The longest request line: a path or a filter, not a document.
const MAX_LINE: usize = 4096;

/// A request the daemon understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    Status,
    StatusJson,
    Suspend,
    Resume,
    /// `config apply <absolute path>`: the daemon reads the file itself.
    /// With a window or a comment: `config apply-with <window ms, 0 for
    /// none> <comment, hex of its UTF-8, or -> <absolute path>`.
    ConfigApply {
        path: PathBuf,
        confirm_within: Option<Duration>,
        comment: String,
    },
    /// `config confirm`: keep the version waiting for confirmation.
    ConfigConfirm,
    /// `config history`.
    ConfigHistory,
    /// `config rollback N`: a new version equal to version N.
    ConfigRollback(u64),
    /// `config diff N M`: the line diff of two versions' policies.
    ConfigDiff {
        from: u64,
        to: u64,
    },
    /// The running policy: a header, a blank line, the policy text.
    ConfigShow,
    /// `sessions [json] [filter TEXT]`.
    Sessions {
        json: bool,
        filter: Option<String>,
    },
    /// `rules [json]`: the counted objects with their hits.
    Rules {
        json: bool,
    },
}

impl Request {
    pub fn parse(line: &str) -> Option<Request> {
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(path) = line.strip_prefix("config apply ") {
            return (!path.is_empty()).then(|| Request::ConfigApply {
                path: PathBuf::from(path),
                confirm_within: None,
                comment: String::new(),
            });
        }
        if let Some(rest) = line.strip_prefix("config apply-with ") {
            let mut words = rest.splitn(3, ' ');
            let ms: u64 = words.next()?.parse().ok()?;
            let comment = match words.next()? {
                "-" => String::new(),
                h => unhex(h)?,
            };
            let path = words.next().filter(|p| !p.is_empty())?;
            return Some(Request::ConfigApply {
                path: PathBuf::from(path),
                confirm_within: (ms > 0).then(|| Duration::from_millis(ms)),
                comment,
            });
        }
        if let Some(n) = line.strip_prefix("config rollback ") {
            return n.trim().parse().ok().map(Request::ConfigRollback);
        }
        if let Some(rest) = line.strip_prefix("config diff ") {
            let (a, b) = rest.trim().split_once(' ')?;
            return Some(Request::ConfigDiff {
                from: a.parse().ok()?,
                to: b.parse().ok()?,
            });
        }
        if let Some(rest) = line.strip_prefix("sessions") {
            let (json, rest) = match rest.strip_prefix(" json") {
                Some(r) => (true, r),
                None => (false, rest),
            };
            let filter = match rest {
                "" => None,
                r => Some(r.strip_prefix(" filter ")?.to_string()),
            };
            return Some(Request::Sessions { json, filter });
        }
        Some(match line.trim() {
            "status" => Request::Status,
            "status json" => Request::StatusJson,
            "suspend" => Request::Suspend,
            "resume" => Request::Resume,
            "config show" => Request::ConfigShow,
            "config confirm" => Request::ConfigConfirm,
            "config history" => Request::ConfigHistory,
            "rules" => Request::Rules { json: false },
            "rules json" => Request::Rules { json: true },
            _ => return None,
        })
    }
    pub fn as_line(&self) -> String {
        match self {
            Request::Status => "status".into(),
            Request::StatusJson => "status json".into(),
            Request::Suspend => "suspend".into(),
            Request::Resume => "resume".into(),
            Request::ConfigApply {
                path,
                confirm_within: None,
                comment,
            } if comment.is_empty() => format!("config apply {}", path.display()),
            Request::ConfigApply {
                path,
                confirm_within,
                comment,
            } => format!(
                "config apply-with {} {} {}",
                confirm_within.map(|d| d.as_millis().max(1)).unwrap_or(0),
                if comment.is_empty() {
                    "-".into()
                } else {
                    comment
                        .bytes()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                },
                path.display()
            ),
            Request::ConfigConfirm => "config confirm".into(),
            Request::ConfigHistory => "config history".into(),
            Request::ConfigRollback(n) => format!("config rollback {n}"),
            Request::ConfigDiff { from, to } => format!("config diff {from} {to}"),
            Request::ConfigShow => "config show".into(),
            Request::Rules { json: false } => "rules".into(),
            Request::Rules { json: true } => "rules json".into(),
            Request::Sessions { json, filter } => format!(
                "sessions{}{}",
                if *json { " json" } else { "" },
                filter
                    .as_deref()
                    .map(|f| format!(" filter {f}"))
                    .unwrap_or_default()
            ),
        }
    }
}

fn unhex(h: &str) -> Option<String> {
    // (Not `is_multiple_of`: the workspace builds with Rust 1.85.)
    if h.len() / 2 * 2 != h.len() || !h.is_ascii() {
        return None;
    }
    let bytes = (0..h.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&h[i..i + 2], 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    String::from_utf8(bytes).ok()
}

/// Who sent a request: the client's user, read from the socket with
/// `SO_PEERCRED` before its request line (history and audit name it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caller {
    pub uid: u32,
}

/// Binds the socket, readable and writable by root only, with no moment
/// at which it has a wider mode: it is bound inside a fresh 0700 directory
/// beside `path`, restricted to 0600 there, then renamed into place (a
/// rename keeps the inode a client connects to). The process umask, shared
/// by every thread, is left alone. A stale socket from a crashed daemon is
/// replaced; a live one is refused.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    let shown = path.display();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    let dir = dir.unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{shown} is in use by a running node; stop it or pass another --control path"
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let name = path
        .file_name()
        .ok_or_else(|| format!("{shown}: the control path needs a file name"))?;
    let private = dir.join(format!(
        ".{}.{}.tmp",
        name.to_string_lossy(),
        std::process::id()
    ));
    // Left by a crashed start of a process with the same pid: ours to take.
    let _ = std::fs::remove_dir_all(&private);
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&private)
        .map_err(|e| format!("create {}: {e}", private.display()))?;
    let inner = private.join("s");
    let bound = UnixListener::bind(&inner)
        .map_err(|e| format!("bind {shown}: {e}"))
        .and_then(|l| {
            std::fs::set_permissions(&inner, std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("restrict {shown}: {e}"))?;
            std::fs::rename(&inner, path)
                .map_err(|e| format!("move the socket to {shown}: {e}"))?;
            Ok(l)
        });
    let _ = std::fs::remove_dir_all(&private);
    bound
}

/// Bounds on what control clients can cost the node.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Clients served at once; more are told the node is busy.
    pub max_clients: usize,
    /// Time allowed to send the whole request line.
    pub read_deadline: Duration,
    /// Time allowed to take the whole reply: a client that does not read
    /// is cut off.
    pub write_deadline: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_clients: 8,
            read_deadline: Duration::from_secs(2),
            write_deadline: Duration::from_secs(5),
        }
    }
}

/// What the control server refused, by reason (running totals).
#[derive(Debug, Default)]
pub struct Counters {
    pub served: AtomicU64,
    /// A client neither root nor this daemon's user.
    pub peer_uid: AtomicU64,
    /// Every client slot taken.
    pub busy: AtomicU64,
    /// No request line within the read deadline, or a reply not taken
    /// within the write deadline.
    pub timeout: AtomicU64,
    pub too_long: AtomicU64,
    pub unknown: AtomicU64,
}

impl Counters {
    /// The refusals, as `(reason, total)` for `hafw_control_refused_total`.
    pub fn refused(&self) -> [(&'static str, u64); 5] {
        let n = |c: &AtomicU64| c.load(Ordering::Relaxed);
        [
            ("peer_uid", n(&self.peer_uid)),
            ("busy", n(&self.busy)),
            ("timeout", n(&self.timeout)),
            ("too_long", n(&self.too_long)),
            ("unknown", n(&self.unknown)),
        ]
    }
}

/// May this user talk to the node? Root, or the user the daemon runs as
/// (which is root in production; tests run it as themselves).
pub fn allowed(peer_uid: u32, own_uid: u32) -> bool {
    peer_uid == 0 || peer_uid == own_uid
}

/// The user at the other end, as the kernel recorded it at connect().
fn peer_uid(conn: &UnixStream) -> std::io::Result<u32> {
    let mut cred = libc::ucred {
        pid: 0,
        uid: u32::MAX,
        gid: u32::MAX,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: SO_PEERCRED fills a `ucred` of the length given; both point
    // to live locals.
    let rc = unsafe {
        libc::getsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&mut cred as *mut libc::ucred).cast(),
            &mut len,
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cred.uid)
}

/// Serves requests with the default [`Limits`]; see [`serve_with`].
pub fn serve(
    listener: UnixListener,
    handle: impl Fn(Caller, Request) -> Result<String, String> + Send + Sync + 'static,
) -> Arc<Counters> {
    serve_with(listener, Limits::default(), handle)
}

/// Serves requests: an accept thread checks each client's user and hands
/// it to a thread of its own, up to `max_clients` at once, so a silent or
/// slow client holds only its own thread, for at most the read and write
/// deadlines. `handle` answers each request (it may block: it talks to the
/// HA thread and the config task over channels).
pub fn serve_with(
    listener: UnixListener,
    limits: Limits,
    handle: impl Fn(Caller, Request) -> Result<String, String> + Send + Sync + 'static,
) -> Arc<Counters> {
    let counters = Arc::new(Counters::default());
    let handle = Arc::new(handle);
    let active = Arc::new(AtomicUsize::new(0));
    // SAFETY: geteuid has no preconditions.
    let own_uid = unsafe { libc::geteuid() };
    let c = counters.clone();
    let spawned = std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else {
                    // Out of file descriptors and the like: wait, do not spin.
                    std::thread::sleep(Duration::from_millis(50));
                    continue;
                };
                // A refusal is one short line into an empty socket buffer;
                // the timeout only guards against the impossible.
                let _ = conn.set_write_timeout(Some(Duration::from_millis(100)));
                let caller = match peer_uid(&conn) {
                    Ok(uid) if allowed(uid, own_uid) => Caller { uid },
                    who => {
                        c.peer_uid.fetch_add(1, Ordering::Relaxed);
                        let who = who.map_or("an unknown user".into(), |u| format!("uid {u}"));
                        let _ = conn.write_all(
                            format!("error: the control socket serves root only; this client is {who}: run the command as root\n")
                                .as_bytes(),
                        );
                        continue;
                    }
                };
                if active.fetch_add(1, Ordering::SeqCst) >= limits.max_clients {
                    active.fetch_sub(1, Ordering::SeqCst);
                    c.busy.fetch_add(1, Ordering::Relaxed);
                    let _ = conn.write_all(
                        format!("error: the node is serving {} control clients already; try again\n", limits.max_clients)
                            .as_bytes(),
                    );
                    continue;
                }
                let (h, c2, a) = (handle.clone(), c.clone(), active.clone());
                let worker = std::thread::Builder::new()
                    .name("control-client".into())
                    .spawn(move || {
                        client(conn, caller, &limits, &*h, &c2);
                        a.fetch_sub(1, Ordering::SeqCst);
                    });
                if worker.is_err() {
                    active.fetch_sub(1, Ordering::SeqCst);
                    c.busy.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "cannot start the control socket's thread");
    }
    counters
}

/// One client: one request line in (within the read deadline), one reply
/// out (within the write deadline).
fn client(
    mut conn: UnixStream,
    caller: Caller,
    limits: &Limits,
    handle: &(dyn Fn(Caller, Request) -> Result<String, String> + Send + Sync),
    c: &Counters,
) {
    let reply = match read_line(&mut conn, Instant::now() + limits.read_deadline) {
        Err(LineError::Closed) => return,
        Err(LineError::Timeout) => {
            c.timeout.fetch_add(1, Ordering::Relaxed);
            format!(
                "error: no request line within {} ms\n",
                limits.read_deadline.as_millis()
            )
        }
        Err(LineError::TooLong) => {
            c.too_long.fetch_add(1, Ordering::Relaxed);
            format!("error: the request is longer than {MAX_LINE} bytes\n")
        }
        Ok(line) => match Request::parse(&line) {
            Some(req) => match handle(caller, req) {
                Ok(body) => format!("ok\n{body}"),
                Err(e) => format!("error: {e}\n"),
            },
            None => {
                c.unknown.fetch_add(1, Ordering::Relaxed);
                format!(
                    "error: unknown request {:?}; use status, suspend, resume, config show|apply PATH|confirm|history|rollback N|diff N M, or sessions\n",
                    line.trim()
                )
            }
        },
    };
    match write_within(
        &mut conn,
        reply.as_bytes(),
        Instant::now() + limits.write_deadline,
    ) {
        Ok(()) => {
            c.served.fetch_add(1, Ordering::Relaxed);
        }
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            c.timeout.fetch_add(1, Ordering::Relaxed);
        }
        Err(_) => {}
    }
}

enum LineError {
    Closed,
    Timeout,
    TooLong,
}

/// Reads up to the first newline, by `deadline` (a client trickling bytes
/// is cut off as one saying nothing is), at most [`MAX_LINE`] bytes.
fn read_line(conn: &mut UnixStream, deadline: Instant) -> Result<String, LineError> {
    let mut line = Vec::with_capacity(128);
    let mut chunk = [0u8; 512];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(LineError::Timeout);
        }
        let _ = conn.set_read_timeout(Some(left));
        let n = match conn.read(&mut chunk) {
            Ok(0) if line.is_empty() => return Err(LineError::Closed),
            // Closed after part of a line: take it as the request.
            Ok(0) => return Ok(String::from_utf8_lossy(&line).into_owned()),
            Ok(n) => n,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Err(LineError::Timeout)
            }
            Err(_) => return Err(LineError::Closed),
        };
        let got = &chunk[..n];
        if let Some(end) = got.iter().position(|b| *b == b'\n') {
            line.extend_from_slice(&got[..end]);
            if line.len() > MAX_LINE {
                return Err(LineError::TooLong);
            }
            return Ok(String::from_utf8_lossy(&line).into_owned());
        }
        line.extend_from_slice(got);
        if line.len() > MAX_LINE {
            return Err(LineError::TooLong);
        }
    }
}

/// Writes all of `bytes` by `deadline`, however slowly the client reads.
fn write_within(conn: &mut UnixStream, bytes: &[u8], deadline: Instant) -> std::io::Result<()> {
    let mut rest = bytes;
    while !rest.is_empty() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(ErrorKind::TimedOut.into());
        }
        conn.set_write_timeout(Some(left))?;
        match conn.write(&rest[..rest.len().min(64 * 1024)]) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(n) => rest = &rest[n..],
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Sends one request to a node and returns its reply body.
pub fn request(path: &Path, req: &Request) -> Result<String, String> {
    // A config apply validates, commits a ruleset and persists: seconds.
    request_within(path, req, Duration::from_secs(30))
}

/// [`request`] with a reply deadline: a harness polling a frozen daemon
/// must not stall.
pub fn request_within(path: &Path, req: &Request, timeout: Duration) -> Result<String, String> {
    let mut conn = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach a node at {}: {e}; is `hafw run` running (as root) with this --control path?",
            path.display()
        )
    })?;
    conn.set_read_timeout(Some(timeout)).ok();
    // A node that refuses a client (busy, not root) answers and closes
    // without reading: the request may then fail to send, or the end of
    // the reply come as a reset. The reply, if any, is what counts.
    let sent = conn.write_all(format!("{}\n", req.as_line()).as_bytes());
    let mut raw = Vec::new();
    let read = conn.read_to_end(&mut raw);
    let reply = String::from_utf8_lossy(&raw).into_owned();
    match (sent, read) {
        (_, Ok(_)) => {}
        (_, Err(e)) if !raw.is_empty() && e.kind() == ErrorKind::ConnectionReset => {}
        (Err(e), _) => return Err(format!("send to {}: {e}", path.display())),
        (Ok(()), Err(e)) => return Err(format!("read from {}: {e}", path.display())),
    }
    match reply.split_once('\n') {
        Some(("ok", body)) => Ok(body.to_string()),
        // Errors may span lines (a validation's diagnostics).
        Some(_) => Err(reply.trim_start_matches("error: ").trim_end().to_string()),
        None => Err(format!(
            "the node closed the connection without a reply: {reply:?}"
        )),
    }
}

/// `hafw status|suspend|resume` on the command line.
pub fn cli(socket: Option<PathBuf>, req: Request) -> ExitCode {
    let path = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    match request(&path, &req) {
        Ok(body) => {
            print!("{body}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// `hafw config apply FILE`: the file is validated here first, so its
/// problems are printed with their locations (exit 2); the daemon reads it
/// again and validates it as the authority.
pub fn config_apply(
    socket: Option<PathBuf>,
    file: &Path,
    confirm_within: Option<Duration>,
    comment: Option<String>,
) -> ExitCode {
    if let Err(code) = crate::load(file) {
        return code;
    }
    let path = match std::path::absolute(file) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot resolve {}: {e}", file.display());
            return ExitCode::FAILURE;
        }
    };
    cli(
        socket,
        Request::ConfigApply {
            path,
            confirm_within,
            comment: comment.unwrap_or_default(),
        },
    )
}

/// A config apply through the socket at `socket`, for harnesses (the lab
/// demo): `confirm_within` as `--confirm-within`, `comment` as `-m`.
/// Returns the daemon's reply body; confirm with [`Request::ConfigConfirm`].
pub fn apply_within(
    socket: &Path,
    file: &Path,
    confirm_within: Option<Duration>,
    comment: &str,
) -> Result<String, String> {
    let path =
        std::path::absolute(file).map_err(|e| format!("cannot resolve {}: {e}", file.display()))?;
    request(
        socket,
        &Request::ConfigApply {
            path,
            confirm_within,
            comment: comment.to_string(),
        },
    )
}

/// `hafw config diff FILE`: 0 when FILE's policy is the running one, 1
/// with a diff when not, 2 when either cannot be read.
pub fn config_diff(socket: Option<PathBuf>, file: &Path) -> ExitCode {
    const TROUBLE: u8 = 2;
    let path = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    let theirs = std::fs::read_to_string(file)
        .map_err(|e| format!("cannot read {}: {e}", file.display()))
        .and_then(|t| {
            crate::config::policy_text(&t).map_err(|e| format!("{}: {e}", file.display()))
        });
    let shown = request(&path, &Request::ConfigShow);
    let (theirs, shown) = match (theirs, shown) {
        (Ok(t), Ok(s)) => (t, s),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(TROUBLE);
        }
    };
    let Some((header, running)) = shown.split_once("\n\n") else {
        eprintln!("error: the node's `config show` reply has no policy text");
        return ExitCode::from(TROUBLE);
    };
    let version = header.lines().next().unwrap_or_default();
    match crate::config::line_diff(running, &theirs) {
        None => {
            println!(
                "{}: [policy] is the running one ({version})",
                file.display()
            );
            ExitCode::SUCCESS
        }
        Some(d) => {
            print!("- running ({version})\n+ {}\n{d}", file.display());
            ExitCode::from(1)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_round_trips_over_the_socket() {
        let dir = std::env::temp_dir().join(format!("hafw-ctl-{}", std::process::id()));
        let path = dir.join("t.sock");
        let l = bind(&path).unwrap();
        serve(l, |_, r| match r {
            Request::Status => Ok("state active\n".into()),
            _ => Err("not now".into()),
        });
        assert_eq!(request(&path, &Request::Status).unwrap(), "state active\n");
        assert_eq!(request(&path, &Request::Suspend).unwrap_err(), "not now");
        // A second daemon on the same path is refused.
        assert!(bind(&path).unwrap_err().contains("in use"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn requests_with_arguments_round_trip_as_lines() {
        for r in [
            Request::ConfigApply {
                path: PathBuf::from("/etc/hafw/dep loyment.toml"),
                confirm_within: None,
                comment: String::new(),
            },
            Request::ConfigApply {
                path: PathBuf::from("/etc/hafw/dep loyment.toml"),
                confirm_within: Some(Duration::from_secs(3)),
                comment: "open port 8080 for the 'web' team".into(),
            },
            Request::ConfigApply {
                path: PathBuf::from("/x.toml"),
                confirm_within: None,
                comment: "why".into(),
            },
            Request::ConfigConfirm,
            Request::ConfigHistory,
            Request::ConfigRollback(7),
            Request::ConfigDiff { from: 3, to: 9 },
            Request::ConfigShow,
            Request::Sessions {
                json: false,
                filter: None,
            },
            Request::Sessions {
                json: true,
                filter: Some("10.0.1.100:7777 tcp".into()),
            },
            Request::Sessions {
                json: false,
                filter: Some("json".into()),
            },
            Request::Rules { json: false },
            Request::Rules { json: true },
        ] {
            assert_eq!(
                Request::parse(&format!("{}\n", r.as_line())),
                Some(r.clone()),
                "{r:?}"
            );
        }
        assert_eq!(Request::parse("sessions bogus"), None);
        assert_eq!(Request::parse("config apply "), None);
        // A comment not in whole hex bytes, a window not a number, a
        // version not a number: unknown requests.
        assert_eq!(Request::parse("config apply-with 0 abc /x.toml"), None);
        assert_eq!(Request::parse("config apply-with soon - /x.toml"), None);
        assert_eq!(Request::parse("config rollback x"), None);
        assert_eq!(Request::parse("config diff 3"), None);
    }
}
