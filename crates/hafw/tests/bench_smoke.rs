//! `hafw bench sync` at a size CI can run: not a timed test (no figure is
//! held to a goal here), but the output must be well-formed JSON and every
//! entry must have arrived: all 1,000 injected sessions held by the new
//! active after the promotion, every churned connection seen on the
//! passive. At this size the host's conntrack table is never touched
//! (compared before and after).

mod common;

use std::process::Command;

use common::*;

fn host(key: &str) -> String {
    std::fs::read_to_string(format!("/proc/sys/net/netfilter/{key}")).unwrap_or_default()
}

#[test]
fn bench_sync_at_a_thousand_sessions_is_well_formed_and_complete() {
    if !ns_tests_enabled() {
        return;
    }
    let (max, buckets) = (host("nf_conntrack_max"), host("nf_conntrack_buckets"));
    let out = Command::new(hafw())
        .args(["bench", "sync", "--sizes", "1000", "--runs", "1"])
        .args(["--seconds", "1", "--threads", "2", "--json"])
        .args(["--load-rates", "1500", "--load-seconds", "1"])
        .output()
        .expect("run hafw bench sync");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "hafw bench sync failed:\n{stderr}");
    assert!(
        !stderr.contains("raised the host's"),
        "a 1,000-session run must not touch the host's table:\n{stderr}"
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}):\n{}", String::from_utf8_lossy(&out.stdout)));

    let promotion = &v["promotion"][0];
    assert_eq!(promotion["sessions"], 1000, "{promotion}");
    assert_eq!(promotion["runs"], 1, "{promotion}");
    assert_eq!(
        promotion["failures"].as_array().map(Vec::len),
        Some(0),
        "{promotion}"
    );
    assert_eq!(promotion["every_entry_held_after"], true, "{promotion}");
    let sample = &promotion["samples"][0];
    assert_eq!(sample["held_after"], 1000, "{sample}");
    assert!(
        sample["sessions_phase_ms"]
            .as_f64()
            .is_some_and(|ms| ms >= 0.0),
        "{sample}"
    );
    let per = sample["cache_bytes_per_session"].as_f64().unwrap_or(0.0);
    assert!(
        per > 0.0 && per <= hafw_ha_budget(),
        "passive cache bytes per session {per} is outside (0, the budget]: {sample}"
    );

    let churn = &v["churn"][0];
    let made = churn["connections"].as_u64().unwrap_or(0);
    assert!(made > 0, "the churn made no connection: {churn}");
    assert_eq!(churn["never_arrived"], 0, "{churn}");
    assert_eq!(churn["keys"].as_u64(), Some(made), "{churn}");
    assert!(churn["lag_ms"]["p99"].as_f64().is_some(), "{churn}");

    assert_eq!(
        host("nf_conntrack_max"),
        max,
        "the host's nf_conntrack_max changed"
    );
    assert_eq!(
        host("nf_conntrack_buckets"),
        buckets,
        "the host's hash table changed"
    );
}

/// The passive cache's budget per session (`sessions::cache` in hafw-ha,
/// which the sizing of `policy.sessions` counts on).
fn hafw_ha_budget() -> f64 {
    hafw_model::sessions::CACHE_BYTES_PER_SESSION as f64
}
