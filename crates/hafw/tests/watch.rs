//! `hafw status --watch` against a stand-in control socket (no namespace):
//! piped, it prints one frame per interval with no escape codes, follows
//! the node's changes, shows an unreachable node as a frame, and exits 0 on
//! Ctrl-C (SIGINT).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixListener;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;

/// A control socket answering `status json` with a status whose term is
/// the number of requests so far.
fn fake_node(path: &std::path::Path) -> Arc<AtomicU64> {
    let l = UnixListener::bind(path).unwrap();
    let served = Arc::new(AtomicU64::new(0));
    let n = served.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { return };
            let mut line = String::new();
            let _ = BufReader::new(&c).read_line(&mut line);
            let term = n.fetch_add(1, Ordering::SeqCst) + 1;
            let status = serde_json::json!({
                "node_id": 1, "state": "active", "term": term, "healthy": true,
                "peer_name": "fw-b", "peer": null,
                "paths": [{"name": "mgmt", "up": true, "rtt_ms": 0.25, "detection_ms": 15.0,
                           "sent": 1, "received": 1, "lost": 0, "stale": 0}],
                "transitions": [{"from": "passive", "to": "active", "term": term,
                                 "cause": "peer lost", "ms_ago": 5.0}],
            });
            let reply = if line.trim() == "status json" {
                format!("ok\n{status}")
            } else {
                "error: unexpected\n".to_string()
            };
            let _ = c.write_all(reply.as_bytes());
        }
    });
    served
}

#[test]
fn piped_watch_prints_a_plain_frame_per_interval_and_exits_0_on_ctrl_c() {
    let sock = std::env::temp_dir().join(format!("hafw-watch-{}.sock", unique("w")));
    let _ = std::fs::remove_file(&sock);
    let served = fake_node(&sock);
    let child = Command::new(hafw())
        .args(["status", "--watch", "--interval", "0.2", "--control"])
        .arg(&sock)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while served.load(Ordering::SeqCst) < 4 && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(20));
    }
    // The node goes away: the watch goes on, saying so.
    std::fs::remove_file(&sock).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{:?}\n{text}", out.status);
    assert!(!text.contains('\x1b'), "{text:?}");
    let frames: Vec<&str> = text.split("\n\n").filter(|f| !f.is_empty()).collect();
    assert!(frames.len() >= 5, "{text}");
    for (i, f) in frames.iter().take(4).enumerate() {
        assert!(f.starts_with("hafw status --watch  "), "{f}");
        assert!(
            f.contains(&format!("node      id 1  ACTIVE  term {}  healthy", i + 1)),
            "{f}"
        );
        assert!(
            f.contains("path 0    mgmt       up    rtt   0.25 ms"),
            "{f}"
        );
        assert!(
            f.contains(&format!("last      passive -> active (term {})", i + 1)),
            "{f}"
        );
    }
    assert!(
        frames
            .last()
            .unwrap()
            .contains("node      UNREACHABLE: cannot reach a node"),
        "{text}"
    );
}
