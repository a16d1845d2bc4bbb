//! The control socket: a root-only Unix socket where `hafw status`,
//! `hafw suspend` and `hafw resume` reach a running node. One request line
//! in, one reply out (`ok` or `error: …` on the first line, then a body),
//! then the connection closes.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

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
    ConfigApply(PathBuf),
    /// The running policy: a header, a blank line, the policy text.
    ConfigShow,
    /// `sessions [json] [filter TEXT]`.
    Sessions {
        json: bool,
        filter: Option<String>,
    },
}

impl Request {
    pub fn parse(line: &str) -> Option<Request> {
        let line = line.trim_end_matches(['\r', '\n']);
        if let Some(path) = line.strip_prefix("config apply ") {
            return (!path.is_empty()).then(|| Request::ConfigApply(PathBuf::from(path)));
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
            _ => return None,
        })
    }
    pub fn as_line(&self) -> String {
        match self {
            Request::Status => "status".into(),
            Request::StatusJson => "status json".into(),
            Request::Suspend => "suspend".into(),
            Request::Resume => "resume".into(),
            Request::ConfigApply(p) => format!("config apply {}", p.display()),
            Request::ConfigShow => "config show".into(),
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

/// Binds the socket, readable and writable by root only. A stale socket
/// from a crashed daemon is replaced; a live one is refused.
pub fn bind(path: &Path) -> Result<UnixListener, String> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(format!(
                "{} is in use by a running node; stop it or pass another --control path",
                path.display()
            ));
        }
        let _ = std::fs::remove_file(path);
    }
    let listener = UnixListener::bind(path).map_err(|e| format!("bind {}: {e}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("restrict {}: {e}", path.display()))?;
    Ok(listener)
}

/// Serves requests on its own thread; `handle` answers each (it must not
/// block for long: it talks to the HA thread over a channel).
pub fn serve(
    listener: UnixListener,
    handle: impl Fn(Request) -> Result<String, String> + Send + 'static,
) {
    std::thread::Builder::new()
        .name("control".into())
        .spawn(move || {
            for conn in listener.incoming() {
                let Ok(mut conn) = conn else { continue };
                let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                let mut line = String::new();
                // Bounded: a client cannot make the thread buffer without end.
                let mut reader = BufReader::new(match conn.try_clone() {
                    Ok(c) => c,
                    Err(_) => continue,
                })
                .take(MAX_LINE as u64 + 1);
                if reader.read_line(&mut line).is_err() || line.len() > MAX_LINE {
                    continue;
                }
                let reply = match Request::parse(&line) {
                    Some(req) => match handle(req) {
                        Ok(body) => format!("ok\n{body}"),
                        Err(e) => format!("error: {e}\n"),
                    },
                    None => format!(
                        "error: unknown request {:?}; use status, suspend, resume, config show, config apply PATH or sessions\n",
                        line.trim()
                    ),
                };
                let _ = conn.write_all(reply.as_bytes());
            }
        })
        .ok();
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
    conn.write_all(format!("{}\n", req.as_line()).as_bytes())
        .map_err(|e| format!("send to {}: {e}", path.display()))?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .map_err(|e| format!("read from {}: {e}", path.display()))?;
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
pub fn config_apply(socket: Option<PathBuf>, file: &Path) -> ExitCode {
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
    cli(socket, Request::ConfigApply(path))
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
        serve(l, |r| match r {
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
            Request::ConfigApply(PathBuf::from("/etc/hafw/dep loyment.toml")),
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
        ] {
            assert_eq!(
                Request::parse(&format!("{}\n", r.as_line())),
                Some(r.clone()),
                "{r:?}"
            );
        }
        assert_eq!(Request::parse("sessions bogus"), None);
        assert_eq!(Request::parse("config apply "), None);
    }
}
