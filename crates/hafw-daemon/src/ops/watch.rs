//! `hafw status --watch`: one screen of what matters during an incident
//! (state, peer, each heartbeat path with its RTT and detection time,
//! sessions, sync lag, the last transition), refreshed in place.
//!
//! [`frame`] is pure (a status, or the error of fetching it, in; lines
//! out) and unit-tested; [`run`] only fetches, prints and sleeps. On a
//! terminal each frame clears the screen first (ANSI home + clear); piped,
//! frames follow each other with no escape codes, a blank line between.

use std::io::{IsTerminal as _, Write as _};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use crate::control::{self, Request};
use crate::ops::text::peer_text;
use crate::status::Status;

/// Cursor home, clear the screen.
const CLEAR: &str = "\x1b[H\x1b[2J";

/// The longest `--interval`.
pub const MAX_INTERVAL: Duration = Duration::from_secs(3600);

/// The shortest `--interval`: faster than this only loads the node.
pub const MIN_INTERVAL: Duration = Duration::from_millis(100);

/// A cause is cut to this many characters in the frame (`hafw status`
/// shows it whole).
const CAUSE_MAX: usize = 160;

/// The lines of one frame; `at` is the time shown in its header
/// (`HH:MM:SS`, UTC), `every` the refresh interval.
pub fn frame(status: &Result<Status, String>, at: &str, every: Duration) -> Vec<String> {
    let mut out = vec![];
    let head = format!("hafw status --watch  {at} UTC  every {}", secs(every));
    let s = match status {
        Ok(s) => s,
        Err(e) => {
            out.push(head);
            out.push(format!("node      UNREACHABLE: {}", peer_text(e)));
            return out;
        }
    };
    out.push(head);
    out.push(format!(
        "node      id {}  {}  term {}  {}",
        s.node_id,
        s.state.to_uppercase(),
        s.term,
        if s.healthy {
            "healthy".to_string()
        } else {
            format!("UNHEALTHY: {}", peer_text(&s.monitor_reason))
        }
    ));
    out.push(match &s.peer {
        Some(p) => format!(
            "peer      {}  {}  term {}  {}  {}  heard {}",
            peer_text(&p.name),
            p.state,
            p.term,
            if p.alive { "alive" } else { "LOST" },
            if p.healthy { "healthy" } else { "unhealthy" },
            ago(p.last_heard_ms_ago)
        ),
        None => format!("peer      {}  never heard", peer_text(&s.peer_name)),
    });
    for (i, p) in s.paths.iter().enumerate() {
        out.push(format!(
            "path {i}    {:<10} {:<4}  rtt {:>9}  detect {:>9}  lost {}",
            p.name
                .as_deref()
                .map(peer_text)
                .unwrap_or_else(|| "?".into()),
            if p.up { "up" } else { "DOWN" },
            p.rtt_ms.map(ms).unwrap_or_else(|| "-".into()),
            p.detection_ms.map(ms).unwrap_or_else(|| "-".into()),
            p.lost
        ));
    }
    out.push(match &s.session_sync {
        Some(ss) => format!(
            "sessions  {}  {}  sync lag {}  HA2 {}{}",
            ss.sessions,
            if ss.sending { "sending" } else { "replica" },
            ss.lag_ms.map(ms).unwrap_or_else(|| "-".into()),
            if ss.connected { "connected" } else { "DOWN" },
            if ss.ready {
                String::new()
            } else {
                format!(
                    "  NOT READY{}",
                    ss.reason
                        .as_deref()
                        .map(|r| format!(": {}", peer_text(r)))
                        .unwrap_or_default()
                )
            }
        ),
        None => "sessions  session sync off".into(),
    });
    let c = &s.config;
    out.push(format!(
        "config    version {}  peer {}{}",
        c.version,
        c.peer_version
            .map(|v| v.to_string())
            .unwrap_or_else(|| "?".into()),
        if c.mismatch { "  DIFFERENT" } else { "" }
    ));
    if !s.hooks.is_empty() {
        let n = |r: &str| s.hooks.get(r).copied().unwrap_or(0);
        out.push(format!(
            "hooks     ok {}  failed {}  timeout {}  dropped {}",
            n("ok"),
            n("failed"),
            n("timeout"),
            n("dropped")
        ));
    }
    out.push(match s.transitions.last() {
        Some(t) => format!(
            "last      {} -> {} (term {}) {}: {}",
            t.from,
            t.to,
            t.term,
            ago(t.ms_ago),
            cut(&peer_text(&t.cause), CAUSE_MAX)
        ),
        None => "last      no transition yet".into(),
    });
    if s.alarms.is_empty() {
        out.push("alarms    none".into());
    } else {
        for a in &s.alarms {
            out.push(format!("alarm     {}", cut(&peer_text(a), CAUSE_MAX)));
        }
    }
    out
}

/// What one frame prints: on a terminal the screen is cleared first.
pub fn render(lines: &[String], tty: bool) -> String {
    let mut text = String::new();
    if tty {
        text.push_str(CLEAR);
    }
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    if !tty {
        text.push('\n');
    }
    text
}

/// Parses `--interval` (seconds, fractions allowed) within
/// [`MIN_INTERVAL`]..=[`MAX_INTERVAL`].
pub fn parse_interval(s: &str) -> Result<Duration, String> {
    let v: f64 = s
        .trim_end_matches('s')
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds (e.g. 1 or 0.5)"))?;
    if !v.is_finite() || v < MIN_INTERVAL.as_secs_f64() || v > MAX_INTERVAL.as_secs_f64() {
        return Err(format!(
            "`{s}` is outside {} to {} seconds",
            MIN_INTERVAL.as_secs_f64(),
            MAX_INTERVAL.as_secs()
        ));
    }
    Ok(Duration::from_secs_f64(v))
}

/// Fetches and prints a frame every `every` until Ctrl-C (or SIGTERM),
/// then exits 0. A node that cannot be reached is a frame too: the watch
/// goes on through a restart.
pub fn run(socket: &Path, every: Duration) -> ExitCode {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let tty = std::io::stdout().is_terminal();
    let socket = socket.to_path_buf();
    rt.block_on(async move {
        let stop = tokio::signal::ctrl_c();
        tokio::pin!(stop);
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => break,
                _ = tick.tick() => {}
            }
            let path = socket.clone();
            // The fetch waits at most one interval (a frozen node must not
            // freeze the view); blocking I/O, so off the runtime's thread.
            let limit = every.max(Duration::from_secs(1));
            let status = tokio::task::spawn_blocking(move || fetch(&path, limit))
                .await
                .unwrap_or_else(|e| Err(e.to_string()));
            let lines = frame(&status, &clock_now(), every);
            let mut out = std::io::stdout().lock();
            // A closed pipe (`| head`) ends the watch.
            if out
                .write_all(render(&lines, tty).as_bytes())
                .and_then(|()| out.flush())
                .is_err()
            {
                break;
            }
        }
    });
    ExitCode::SUCCESS
}

fn fetch(socket: &Path, limit: Duration) -> Result<Status, String> {
    let body = control::request_within(socket, &Request::StatusJson, limit)?;
    serde_json::from_str(&body).map_err(|e| format!("the node's status JSON does not parse: {e}"))
}

/// The wall clock's `HH:MM:SS` in UTC.
fn clock_now() -> String {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let t = super::audit::rfc3339(ms);
    t.get(11..19).unwrap_or(&t).to_string()
}

fn ms(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.1} s", v / 1000.0)
    } else {
        format!("{v:.2} ms")
    }
}

fn ago(v: Option<f64>) -> String {
    v.map_or_else(|| "never".into(), |v| format!("{} ago", ms(v)))
}

fn secs(d: Duration) -> String {
    format!("{} s", d.as_secs_f64())
}

fn cut(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let mut t: String = s.chars().take(max).collect();
    t.push_str(" [...]");
    t
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Path as HaPath, Peer, SessionSync, Transition};

    fn status() -> Status {
        Status {
            node_id: 1,
            state: "active".into(),
            term: 4,
            healthy: true,
            peer_name: "fw-b".into(),
            peer: Some(Peer {
                name: "fw-b".into(),
                node_id: 2,
                state: "passive".into(),
                term: 3,
                priority: 100,
                healthy: true,
                alive: true,
                config_version: 2,
                last_heard_ms_ago: Some(12.5),
            }),
            paths: vec![
                HaPath {
                    name: Some("mgmt".into()),
                    up: true,
                    rtt_ms: Some(0.213),
                    detection_ms: Some(15.0),
                    lost: 0,
                    ..Default::default()
                },
                HaPath {
                    name: Some("ha2".into()),
                    up: false,
                    rtt_ms: None,
                    detection_ms: Some(15.0),
                    lost: 7,
                    ..Default::default()
                },
            ],
            transitions: vec![
                Transition {
                    from: "initial".into(),
                    to: "passive".into(),
                    term: 0,
                    cause: "peer heard".into(),
                    ms_ago: Some(90_000.0),
                },
                Transition {
                    from: "passive".into(),
                    to: "active".into(),
                    term: 4,
                    cause: "peer lost: every path silent for 16 ms".into(),
                    ms_ago: Some(3_200.0),
                },
            ],
            session_sync: Some(SessionSync {
                connected: true,
                sending: true,
                sessions: 1234,
                lag_ms: Some(0.5),
                ready: true,
                ..Default::default()
            }),
            config: crate::status::Config {
                version: 3,
                peer_version: Some(2),
                mismatch: true,
                ..Default::default()
            },
            ..Default::default()
        }
    }

    #[test]
    fn a_frame_shows_state_peer_paths_sessions_lag_and_the_last_transition() {
        let lines = frame(&Ok(status()), "00:20:01", Duration::from_secs(1));
        let want = [
            "hafw status --watch  00:20:01 UTC  every 1 s",
            "node      id 1  ACTIVE  term 4  healthy",
            "peer      fw-b  passive  term 3  alive  healthy  heard 12.50 ms ago",
            "path 0    mgmt       up    rtt   0.21 ms  detect  15.00 ms  lost 0",
            "path 1    ha2        DOWN  rtt         -  detect  15.00 ms  lost 7",
            "sessions  1234  sending  sync lag 0.50 ms  HA2 connected",
            "config    version 3  peer 2  DIFFERENT",
            "last      passive -> active (term 4) 3200.00 ms ago: peer lost: every path silent for 16 ms",
            "alarms    none",
        ];
        assert_eq!(lines, want);
    }

    #[test]
    fn a_lost_peer_an_unreachable_node_and_hostile_text() {
        let mut s = status();
        s.peer = None;
        s.session_sync = None;
        s.transitions.clear();
        s.healthy = false;
        s.monitor_reason = "untrust down\x1b[2J".into();
        s.alarms = vec!["no standby: peer fw-b lost".into()];
        s.hooks = [("ok".to_string(), 3), ("timeout".to_string(), 1)].into();
        let lines = frame(&Ok(s), "t", Duration::from_millis(500));
        assert_eq!(lines[0], "hafw status --watch  t UTC  every 0.5 s");
        assert!(lines[1].contains("UNHEALTHY: untrust down"), "{lines:?}");
        // Text that came from outside never reaches the terminal raw.
        assert!(lines.iter().all(|l| !l.contains('\x1b')), "{lines:?}");
        assert!(lines.contains(&"peer      fw-b  never heard".to_string()));
        assert!(lines.contains(&"sessions  session sync off".to_string()));
        assert!(lines.contains(&"last      no transition yet".to_string()));
        assert!(lines.contains(&"hooks     ok 3  failed 0  timeout 1  dropped 0".to_string()));
        assert!(lines.contains(&"alarm     no standby: peer fw-b lost".to_string()));
        let down = frame(
            &Err("cannot reach a node".into()),
            "t",
            Duration::from_secs(1),
        );
        assert_eq!(down[1], "node      UNREACHABLE: cannot reach a node");
    }

    #[test]
    fn a_terminal_frame_clears_the_screen_and_a_pipe_gets_no_escapes() {
        let lines = vec!["a".to_string(), "b".to_string()];
        assert_eq!(render(&lines, true), "\x1b[H\x1b[2Ja\nb\n");
        assert_eq!(render(&lines, false), "a\nb\n\n");
    }

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("1"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.5s"), Ok(Duration::from_millis(500)));
        for bad in ["0", "-1", "0.01", "x", "NaN", "inf", "7200"] {
            assert!(parse_interval(bad).is_err(), "{bad}");
        }
    }
}
