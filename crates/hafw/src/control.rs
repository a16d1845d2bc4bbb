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

/// A request the daemon understands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    Status,
    StatusJson,
    Suspend,
    Resume,
}

impl Request {
    pub fn parse(line: &str) -> Option<Request> {
        Some(match line.trim() {
            "status" => Request::Status,
            "status json" => Request::StatusJson,
            "suspend" => Request::Suspend,
            "resume" => Request::Resume,
            _ => return None,
        })
    }
    pub fn as_line(self) -> &'static str {
        match self {
            Request::Status => "status",
            Request::StatusJson => "status json",
            Request::Suspend => "suspend",
            Request::Resume => "resume",
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
                let mut reader = BufReader::new(match conn.try_clone() {
                    Ok(c) => c,
                    Err(_) => continue,
                });
                if reader.read_line(&mut line).is_err() || line.len() > 256 {
                    continue;
                }
                let reply = match Request::parse(&line) {
                    Some(req) => match handle(req) {
                        Ok(body) => format!("ok\n{body}"),
                        Err(e) => format!("error: {e}\n"),
                    },
                    None => format!(
                        "error: unknown request {:?}; use status, suspend or resume\n",
                        line.trim()
                    ),
                };
                let _ = conn.write_all(reply.as_bytes());
            }
        })
        .ok();
}

/// Sends one request to a node and returns its reply body.
pub fn request(path: &Path, req: Request) -> Result<String, String> {
    let mut conn = UnixStream::connect(path).map_err(|e| {
        format!(
            "cannot reach a node at {}: {e}; is `hafw run` running (as root) with this --control path?",
            path.display()
        )
    })?;
    conn.set_read_timeout(Some(Duration::from_secs(5))).ok();
    conn.write_all(format!("{}\n", req.as_line()).as_bytes())
        .map_err(|e| format!("send to {}: {e}", path.display()))?;
    let mut reply = String::new();
    conn.read_to_string(&mut reply)
        .map_err(|e| format!("read from {}: {e}", path.display()))?;
    match reply.split_once('\n') {
        Some(("ok", body)) => Ok(body.to_string()),
        Some((err, _)) => Err(err.trim_start_matches("error: ").to_string()),
        None => Err(format!(
            "the node closed the connection without a reply: {reply:?}"
        )),
    }
}

/// `hafw status|suspend|resume` on the command line.
pub fn cli(socket: Option<PathBuf>, req: Request) -> ExitCode {
    let path = socket.unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET));
    match request(&path, req) {
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
        assert_eq!(request(&path, Request::Status).unwrap(), "state active\n");
        assert_eq!(request(&path, Request::Suspend).unwrap_err(), "not now");
        // A second daemon on the same path is refused.
        assert!(bind(&path).unwrap_err().contains("in use"));
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let _ = std::fs::remove_dir_all(dir);
    }
}
