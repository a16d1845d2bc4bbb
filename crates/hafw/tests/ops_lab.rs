//! Operating a running pair (issue 8): the status API and metrics of a lab
//! pair change across a failover, an unauthenticated request is refused, and
//! SIGTERM of the active hands over with the planned outage.

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use hafw_lab::pair::{Fault, Pair, API_TOKEN};

fn start(prefix: &str) -> Pair {
    let name = unique(prefix);
    Pair::start_with(
        &example("alicloud-havip.toml"),
        &name,
        std::path::Path::new(hafw()),
        "fast",
        true,
    )
    .unwrap_or_else(|e| panic!("start the pair: {e}"))
}

#[test]
fn the_api_and_metrics_follow_a_failover() {
    if !ns_tests_enabled() {
        return;
    }
    let mut pair = start("oa");
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let standby = pair.nodes().into_iter().find(|n| *n != active).unwrap();

    // No token, or a wrong one: refused.
    assert_eq!(pair.api_get(&active, "/status", None).unwrap().0, 401);
    assert_eq!(
        pair.api_get(&active, "/metrics", Some("not-the-token-at-all"))
            .unwrap()
            .0,
        401
    );

    let (code, body) = pair.api_get(&active, "/status", Some(API_TOKEN)).unwrap();
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["state"], "active");
    assert_eq!(status["peer"]["state"], "passive");
    let (_, m) = pair.api_get(&standby, "/metrics", Some(API_TOKEN)).unwrap();
    assert_eq!(
        metric(&m, "hafw_state{state=\"passive\"}"),
        Some(1.0),
        "{m}"
    );
    let before = metric(&m, "hafw_transitions_total{from=\"passive\",to=\"active\"").unwrap_or(0.0);

    pair.inject(Fault::Suspend, &active).unwrap();
    pair.wait_settled(Duration::from_secs(10)).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // metrics are exported every 100 ms

    let (_, body) = pair.api_get(&standby, "/status", Some(API_TOKEN)).unwrap();
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(status["state"], "active", "{body}");
    let last = status["transitions"]
        .as_array()
        .and_then(|t| t.last())
        .cloned()
        .unwrap();
    assert!(
        last["cause"].as_str().unwrap().contains("planned takeover"),
        "{last}"
    );
    let phases = status["timelines"]
        .as_array()
        .and_then(|t| t.last())
        .unwrap()["phases"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(phases, 4, "sessions, addresses, announce, confirm");

    let (_, m) = pair.api_get(&standby, "/metrics", Some(API_TOKEN)).unwrap();
    assert_eq!(metric(&m, "hafw_state{state=\"active\"}"), Some(1.0), "{m}");
    // Session and config sync's figures are fed, not only registered: the
    // new active's kernel holds at least the nodes' own flows.
    assert!(
        metric(&m, "hafw_sessions ").is_some_and(|v| v >= 1.0),
        "{m}"
    );
    assert_eq!(metric(&m, "hafw_config_version "), Some(0.0), "{m}");
    assert_eq!(metric(&m, "hafw_peer_config_version "), Some(0.0), "{m}");
    assert!(metric(&m, "hafw_session_resyncs_total ").is_some(), "{m}");
    assert_eq!(
        metric(&m, "hafw_state{state=\"passive\"}"),
        Some(0.0),
        "{m}"
    );
    let after = m
        .lines()
        .filter(|l| l.starts_with("hafw_transitions_total{") && l.contains("to=\"active\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum::<f64>();
    assert!(
        after > before,
        "transitions to active did not grow: {before} -> {after}\n{m}"
    );
    assert!(
        m.contains("hafw_failover_phase_seconds_count{phase=\"announce\"}"),
        "{m}"
    );
    let (_, m) = pair.api_get(&active, "/metrics", Some(API_TOKEN)).unwrap();
    assert_eq!(
        metric(&m, "hafw_state{state=\"suspended\"}"),
        Some(1.0),
        "{m}"
    );
}

#[test]
fn sigterm_of_the_active_hands_over_with_the_planned_outage() {
    if !ns_tests_enabled() {
        return;
    }
    let mut pair = start("ot");
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let standby = pair.nodes().into_iter().find(|n| *n != active).unwrap();
    let echo: SocketAddr = "198.51.100.30:7777".parse().unwrap();
    let (report, _, injected) = pair
        .probe_around(
            "web",
            echo,
            Duration::from_millis(2500),
            Duration::from_millis(500),
            |p| p.inject(Fault::Term, &active),
        )
        .unwrap();
    injected.unwrap();
    assert_eq!(pair.wait_settled(Duration::from_secs(10)).unwrap(), standby);
    eprintln!(
        "SIGTERM of the active: {} of {} probes lost at 1 kHz, longest gap {:.1} ms",
        report.lost,
        report.sent,
        report.longest_arrival_gap.as_secs_f64() * 1000.0
    );
    assert!(
        report.lost <= 2,
        "SIGTERM should hand over like a suspend: {report}"
    );
    // The stopped node withdrew: no floating address, no table left.
    let left = std::process::Command::new("ip")
        .args([
            "netns",
            "exec",
            &format!("hafw-{}.{active}", pair.lab),
            "ip",
            "-br",
            "addr",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&left.stdout);
    assert!(
        !text.contains("10.0.1.100") && !text.contains("10.0.2.100"),
        "{text}"
    );
}

/// `hafw run` without root refuses at once, naming the fix (issue 8).
#[test]
fn hafw_run_without_root_refuses_at_once() {
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    // A copy the unprivileged user can reach, wherever the build lives.
    use std::os::unix::fs::PermissionsExt;
    let dir = std::env::temp_dir().join(format!("hafw-nonroot-{}", unique("n")));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let (bin, file) = (dir.join("hafw"), dir.join("seed.toml"));
    std::fs::copy(hafw(), &bin).unwrap();
    std::fs::copy(example("alicloud-havip.toml"), &file).unwrap();
    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let started = std::time::Instant::now();
    let out = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
        .arg(&bin)
        .args(["run", "--config"])
        .arg(&file)
        .args(["--node", "fw-a"])
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("needs root") && err.contains("sudo"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(2));
}
