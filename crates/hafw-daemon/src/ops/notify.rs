//! systemd notifications (sd_notify(3)) without libsystemd: one datagram
//! per message to the Unix socket named by `$NOTIFY_SOCKET`. Outside
//! systemd (no variable) every call is a no-op, so the daemon calls them
//! unconditionally.
//!
//! With `Type=notify` systemd waits for [`ready`] before it calls the unit
//! started; with `WatchdogSec=` it restarts the node when [`watchdog`] is
//! not called within that time. Call [`watchdog`] from the loop whose
//! stall matters (the HA thread), not from an idle timer, or it proves
//! nothing.

use std::env;
use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Tells systemd the node is up (data plane applied, HA running).
pub fn ready() -> Result<(), String> {
    send("READY=1")
}

/// Pets the watchdog.
pub fn watchdog() -> Result<(), String> {
    send("WATCHDOG=1")
}

/// Tells systemd the node is shutting down (handing over, withdrawing).
pub fn stopping() -> Result<(), String> {
    send("STOPPING=1")
}

/// The one-line status `systemctl status hafw` shows, e.g. "active, term 4".
pub fn status(text: &str) -> Result<(), String> {
    send(&status_message(text))
}

/// `STATUS=` with line breaks replaced: each line of a notification is an
/// assignment, so a newline in the text would inject another one.
pub fn status_message(text: &str) -> String {
    let one_line: String = text
        .chars()
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    format!("STATUS={one_line}")
}

/// How often to call [`watchdog`]: half of `$WATCHDOG_USEC`, as
/// sd_watchdog_enabled(3) recommends; `None` when systemd set no watchdog
/// for this process.
pub fn watchdog_interval() -> Option<Duration> {
    watchdog_interval_from(
        env::var("WATCHDOG_USEC").ok().as_deref(),
        env::var("WATCHDOG_PID").ok().as_deref(),
        std::process::id(),
    )
}

/// [`watchdog_interval`] on explicit values. `WATCHDOG_PID`, when set,
/// names the process the watchdog is for; a child that inherited the
/// variables must not think it is watched.
pub fn watchdog_interval_from(
    usec: Option<&str>,
    pid: Option<&str>,
    my_pid: u32,
) -> Option<Duration> {
    if let Some(pid) = pid {
        if pid.trim().parse::<u32>().ok() != Some(my_pid) {
            return None;
        }
    }
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    Some(Duration::from_micros(usec / 2))
}

/// Sends `message` to `$NOTIFY_SOCKET`; `Ok` without sending when the
/// variable is unset or empty.
pub fn send(message: &str) -> Result<(), String> {
    match env::var_os("NOTIFY_SOCKET") {
        Some(socket) if !socket.is_empty() => match socket.to_str() {
            Some(socket) => send_to(socket, message),
            None => Err(format!(
                "NOTIFY_SOCKET {socket:?} is not valid UTF-8; systemd sets a path or an @abstract name"
            )),
        },
        _ => Ok(()),
    }
}

/// Sends `message` to the notification socket `socket`: an absolute path,
/// or `@name` for a Linux abstract socket.
pub fn send_to(socket: &str, message: &str) -> Result<(), String> {
    let addr = socket_addr(socket)?;
    let sock = UnixDatagram::unbound()
        .map_err(|e| format!("cannot open a socket to notify systemd: {e}"))?;
    let sent = sock
        .send_to_addr(message.as_bytes(), &addr)
        .map_err(|e| format!("notify systemd at NOTIFY_SOCKET={socket}: {e}"))?;
    if sent != message.len() {
        return Err(format!(
            "notify systemd at NOTIFY_SOCKET={socket}: sent {sent} of {} bytes",
            message.len()
        ));
    }
    Ok(())
}

fn socket_addr(socket: &str) -> Result<SocketAddr, String> {
    if let Some(name) = socket.strip_prefix('@') {
        SocketAddr::from_abstract_name(name.as_bytes())
            .map_err(|e| format!("NOTIFY_SOCKET={socket}: bad abstract socket name: {e}"))
    } else if socket.starts_with('/') {
        SocketAddr::from_pathname(socket)
            .map_err(|e| format!("NOTIFY_SOCKET={socket}: bad socket path: {e}"))
    } else {
        Err(format!(
            "NOTIFY_SOCKET={socket} is neither an absolute path nor an @abstract name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_interval_is_half_and_only_for_this_process() {
        assert_eq!(
            watchdog_interval_from(Some("2000000"), None, 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(
            watchdog_interval_from(Some("2000000"), Some("7"), 7),
            Some(Duration::from_secs(1))
        );
        assert_eq!(watchdog_interval_from(Some("2000000"), Some("8"), 7), None);
        assert_eq!(watchdog_interval_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_interval_from(Some("soon"), None, 7), None);
        assert_eq!(watchdog_interval_from(None, None, 7), None);
    }

    #[test]
    fn status_stays_on_one_line() {
        assert_eq!(status_message("active\nREADY=1"), "STATUS=active READY=1");
    }

    #[test]
    fn a_relative_socket_is_refused() {
        assert!(send_to("run/notify", "READY=1")
            .unwrap_err()
            .contains("neither an absolute path"));
    }
}
