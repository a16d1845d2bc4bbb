//! The alert rules (`dist/alerts/hafw.rules.yml`) against a lab pair: the
//! pair is put in each state an alert is for, both nodes' `/metrics` are
//! scraped around the moment it got there, the scrapes become promtool
//! `input_series` (one test group per state), and `promtool test rules`
//! checks that each alert fires in its state, with its labels and
//! annotations, and that none fires in the normal state.
//!
//! States: normal; forged heartbeats (drops rising); failing hooks; no node
//! active (both suspended); the passive killed (peer lost, paths down, no
//! standby); split brain (every heartbeat link of the passive cut: both
//! active); session sync lagging (the passive frozen under connection
//! churn); config versions differing (config sync paused by another policy
//! schema, then an apply). Audit drops cannot be caused in the lab (the
//! writer keeps up with anything the lab can make), so that alert is only
//! checked not to fire in the normal state.
//!
//! Without promtool (Debian package `prometheus`) the test says so and
//! passes, unless HAFW_REQUIRE_PROMTOOL=1 (scripts/check-alerts sets it).

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::hosts::{flood, ChurnConfig, FloodConfig, Stop};
use hafw_lab::pair::{Fault, Pair, API_TOKEN};
use serde_json::{json, Value};

const JOB: &str = "hafw";
/// Seconds between the samples of a state, as in the promtool test.
const STEP: Duration = Duration::from_secs(1);
/// When promtool evaluates: long enough for every `for:` (at most 1m).
const EVAL_AT: &str = "90s";
/// The samples after the last scrape: its values, repeated to past EVAL_AT.
const PAD: u32 = 150;

/// The metrics the rules read; the rest of a scrape is left out.
const USED: [&str; 10] = [
    "hafw_state",
    "hafw_peer_alive",
    "hafw_heartbeat_path_up",
    "hafw_config_version",
    "hafw_peer_config_version",
    "hafw_session_sync_lag_seconds",
    "hafw_ha_messages_dropped_total",
    "hafw_hook_runs_total",
    "hafw_audit_dropped_total",
    "hafw_alarm",
];

fn rules_file() -> PathBuf {
    repo().join("dist/alerts/hafw.rules.yml")
}

/// A directory of this test's own, removed when dropped unless kept.
struct Dir(PathBuf, bool);

impl Drop for Dir {
    fn drop(&mut self) {
        if !self.1 {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// One scrape of one node: series (with `job` and `instance`) to value.
type Scrape = BTreeMap<String, f64>;

fn scrape(pair: &Pair, node: &str) -> Scrape {
    let mut out = Scrape::new();
    let Ok((200, text)) = pair.api_get(node, "/metrics", Some(API_TOKEN)) else {
        return out;
    };
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let name = series.split('{').next().unwrap_or(series);
        if !USED.contains(&name) {
            continue;
        }
        let Ok(v) = value.parse::<f64>() else {
            continue;
        };
        let ours = format!("job=\"{JOB}\",instance=\"{node}\"");
        let series = match series.strip_suffix('}') {
            Some(s) => format!("{s},{ours}}}"),
            None => format!("{series}{{{ours}}}"),
        };
        out.insert(series, v);
    }
    out
}

/// The samples of one state: each a scrape of both nodes merged.
#[derive(Default)]
struct Samples(Vec<Scrape>);

impl Samples {
    fn take(&mut self, pair: &Pair, n: usize) {
        self.take_from(pair, &pair.nodes(), n)
    }

    /// As [`Samples::take`], from `nodes` only (a frozen node's API does
    /// not answer, and waiting for it would space the samples out).
    fn take_from(&mut self, pair: &Pair, nodes: &[String], n: usize) {
        for _ in 0..n {
            let t = Instant::now();
            let mut all = Scrape::new();
            for node in nodes {
                all.extend(scrape(pair, node));
            }
            self.0.push(all);
            std::thread::sleep(STEP.saturating_sub(t.elapsed()));
        }
    }

    fn last(&self) -> &Scrape {
        self.0.last().expect("a sample")
    }

    /// promtool `input_series`: each series' value at each sample (`_`
    /// where a node could not be scraped), then the last value repeated.
    fn input_series(&self) -> Vec<Value> {
        let names: std::collections::BTreeSet<&String> =
            self.0.iter().flat_map(|s| s.keys()).collect();
        names
            .into_iter()
            .map(|name| {
                let mut vals: Vec<String> = self
                    .0
                    .iter()
                    .map(|s| s.get(name).map_or("_".to_string(), |v| format!("{v}")))
                    .collect();
                let last = self.0.iter().rev().find_map(|s| s.get(name));
                match last {
                    Some(v) if self.last().contains_key(name) => vals.push(format!("{v}+0x{PAD}")),
                    _ => vals.push(format!("_x{PAD}")),
                }
                json!({"series": name, "values": vals.join(" ")})
            })
            .collect()
    }

    /// The value of `series` (without job/instance) on `node` in the last sample.
    fn value(&self, node: &str, series: &str) -> Option<f64> {
        let ours = format!("job=\"{JOB}\",instance=\"{node}\"");
        let key = match series.strip_suffix('}') {
            Some(s) => format!("{s},{ours}}}"),
            None => format!("{series}{{{ours}}}"),
        };
        self.last().get(&key).copied()
    }

    /// The first and last sample's value of `series` on `node`.
    fn delta(&self, node: &str, series: &str) -> f64 {
        let ours = format!("job=\"{JOB}\",instance=\"{node}\"");
        let key = match series.strip_suffix('}') {
            Some(s) => format!("{s},{ours}}}"),
            None => format!("{series}{{{ours}}}"),
        };
        let first = self
            .0
            .iter()
            .find_map(|s| s.get(&key))
            .copied()
            .unwrap_or(0.0);
        self.last().get(&key).copied().unwrap_or(0.0) - first
    }
}

/// Each alert's labels and annotation templates, read from the rules file
/// (its annotations use only `{{ $labels.NAME }}`, so they can be expected
/// exactly).
#[derive(Debug, Default, Clone)]
struct Rule {
    labels: BTreeMap<String, String>,
    annotations: BTreeMap<String, String>,
}

fn rules() -> BTreeMap<String, Rule> {
    let text = std::fs::read_to_string(rules_file()).unwrap();
    let mut out: BTreeMap<String, Rule> = BTreeMap::new();
    let (mut current, mut section) = (None::<String>, "");
    for line in text.lines() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix("- alert: ") {
            current = Some(name.to_string());
            out.insert(name.to_string(), Rule::default());
            continue;
        }
        match t {
            "labels:" => section = "labels",
            "annotations:" => section = "annotations",
            _ if t.starts_with("expr:") || t.starts_with("for:") => section = "",
            _ => {
                let (Some(name), Some((k, v))) = (&current, t.split_once(": ")) else {
                    continue;
                };
                let v = v.trim_matches('"').to_string();
                let r = out.get_mut(name).unwrap();
                match section {
                    "labels" => r.labels.insert(k.to_string(), v),
                    "annotations" => r.annotations.insert(k.to_string(), v),
                    _ => None,
                };
            }
        }
    }
    assert!(out.len() >= 9, "the rules file parsed to {out:?}");
    out
}

/// An expected alert: the rule's labels plus `labels`, its annotations
/// with `{{ $labels.NAME }}` filled in.
fn expect(rules: &BTreeMap<String, Rule>, alert: &str, labels: &[(&str, &str)]) -> Value {
    let r = rules
        .get(alert)
        .unwrap_or_else(|| panic!("no alert {alert}"));
    let mut all = r.labels.clone();
    for (k, v) in labels {
        all.insert(k.to_string(), v.to_string());
    }
    let annotations: BTreeMap<String, String> = r
        .annotations
        .iter()
        .map(|(k, tpl)| {
            let mut s = tpl.clone();
            for (lk, lv) in &all {
                s = s.replace(&format!("{{{{ $labels.{lk} }}}}"), lv);
            }
            assert!(!s.contains("{{"), "{alert}: {s}");
            (k.clone(), s)
        })
        .collect();
    json!({"exp_labels": all, "exp_annotations": annotations})
}

/// One promtool test group: the state's series, and for each alert named
/// the alerts expected at EVAL_AT (an empty list: it must not fire).
fn group(name: &str, samples: &Samples, alerts: Vec<(&str, Vec<Value>)>) -> Value {
    json!({
        "name": name,
        "interval": "1s",
        "input_series": samples.input_series(),
        "alert_rule_test": alerts
            .into_iter()
            .map(|(a, exp)| json!({"eval_time": EVAL_AT, "alertname": a, "exp_alerts": exp}))
            .collect::<Vec<_>>(),
    })
}

fn both_status(pair: &Pair) -> String {
    pair.nodes()
        .iter()
        .map(|n| format!("{n}:\n{}", pair.status_text(n)))
        .collect()
}

/// Waits until the pair has one active and a ready passive that hears it.
fn settle(pair: &Pair) -> (String, String) {
    let active = pair.wait_settled(Duration::from_secs(30)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    pair.wait_ready(Duration::from_secs(30)).unwrap();
    wait_for(
        "a settled pair without alarms",
        Duration::from_secs(30),
        || {
            let a = pair.status(&active)?;
            let p = pair.status(&passive)?;
            (a.state == "active"
                && p.state == "passive"
                && a.no_standby.is_none()
                && a.paths.iter().all(|x| x.up)
                && p.paths.iter().all(|x| x.up))
            .then_some(())
        },
        || both_status(pair),
    );
    (active, passive)
}

fn promtool() -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", "command -v promtool"])
        .output()
        .ok()?;
    let p = String::from_utf8_lossy(&out.stdout).trim().to_string();
    (out.status.success() && !p.is_empty()).then(|| PathBuf::from(p))
}

fn mgmt_heartbeat(node: &str) -> std::net::SocketAddrV4 {
    let ip = match node {
        "fw-a" => [10, 0, 0, 11],
        _ => [10, 0, 0, 12],
    };
    std::net::SocketAddrV4::new(ip.into(), 28_780)
}

#[test]
fn each_alert_fires_in_its_lab_state_and_none_in_the_normal_state() {
    let Some(promtool) = promtool() else {
        assert!(
            std::env::var("HAFW_REQUIRE_PROMTOOL").as_deref() != Ok("1"),
            "promtool is not installed (Debian package prometheus) and HAFW_REQUIRE_PROMTOOL=1"
        );
        eprintln!("skipped: promtool is not installed (apt-get install prometheus)");
        return;
    };
    if !ns_tests_enabled() {
        return;
    }
    let rules = rules();
    let name = unique("alr");
    let mut dir = Dir(
        std::env::temp_dir().join(format!("hafw-test-alerts-{name}")),
        false,
    );
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = dir.0.display().to_string();
    // A hook that fails while `fail` exists.
    let hook = dir.0.join("hook.sh");
    std::fs::write(
        &hook,
        format!("#!/bin/sh\n[ -e {d}/fail ] && exit 1\nexit 0\n"),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let file = dir.0.join("deployment.toml");
    std::fs::write(
        &file,
        format!(
            "{seed}\n[policy.hooks]\non_transition = [\"{}\"]\n",
            hook.display()
        ),
    )
    .unwrap();
    let mut pair = Pair::start_with(&file, &name, Path::new(hafw()), "fast", true)
        .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let mut groups = vec![];
    let every: Vec<&str> = rules.keys().map(String::as_str).collect();

    // 1. Normal: nothing fires.
    let (active, passive) = settle(&pair);
    let mut s = Samples::default();
    s.take(&pair, 5);
    groups.push(group(
        "normal",
        &s,
        every.iter().map(|a| (*a, vec![])).collect(),
    ));
    // Nothing scraped at all (both nodes down): only absent() can see it.
    groups.push(group(
        "nothing scraped",
        &Samples::default(),
        vec![(
            "HafwNoNodeScraped",
            vec![expect(&rules, "HafwNoNodeScraped", &[("state", "active")])],
        )],
    ));

    // 2. Forged heartbeats at the passive: drops rise, by reason.
    let mut s = Samples::default();
    s.take(&pair, 2);
    let peer_id = pair
        .status(&passive)
        .and_then(|st| st.peer.map(|p| p.node_id))
        .expect("the passive hears its peer");
    let mut cfg = FloodConfig::new(mgmt_heartbeat(&active), mgmt_heartbeat(&passive), peer_id);
    cfg.rate = 20_000;
    cfg.duration = Duration::from_secs(2);
    let vpc = format!("hafw-{name}.vpc");
    hafw_kernel::in_netns(Some(&vpc), || flood(&cfg, &Stop::new()))
        .expect("enter the VPC namespace")
        .expect("flood");
    s.take(&pair, 3);
    let mut reasons = vec![];
    for series in s.last().keys() {
        let Some(reason) = series
            .strip_prefix("hafw_ha_messages_dropped_total{reason=\"")
            .and_then(|r| r.split('"').next())
        else {
            continue;
        };
        for node in [&active, &passive] {
            if !series.contains(&format!("instance=\"{node}\"")) {
                continue;
            }
            let delta = s.delta(
                node,
                &format!("hafw_ha_messages_dropped_total{{reason=\"{reason}\"}}"),
            );
            eprintln!("{node} {reason} rose by {delta}");
            // The rule's threshold is 1000 in 5 minutes; promtool's
            // extrapolation moves an increase by a few percent at most.
            assert!(
                !(500.0..=2000.0).contains(&delta),
                "{node} {reason} rose by {delta}: too near the threshold to expect either way"
            );
            if delta > 1000.0 {
                reasons.push((node.clone(), reason.to_string()));
            }
        }
    }
    eprintln!("drops rising under the flood: {reasons:?}");
    assert!(reasons.iter().any(|(n, _)| *n == passive), "{reasons:?}");
    groups.push(group(
        "forged heartbeats",
        &s,
        vec![(
            "HafwHaDropsRising",
            reasons
                .iter()
                .map(|(n, r)| {
                    expect(
                        &rules,
                        "HafwHaDropsRising",
                        &[("job", JOB), ("instance", n), ("reason", r)],
                    )
                })
                .collect(),
        )],
    ));

    // 3. Failing hooks: a handover and back while the hook exits 1.
    let mut s = Samples::default();
    s.take(&pair, 2);
    std::fs::write(dir.0.join("fail"), "").unwrap();
    let at = pair.inject(Fault::Suspend, &active).unwrap();
    pair.wait_moved_to(&passive, at, Duration::from_secs(10))
        .unwrap();
    wait_for(
        "the old active suspended",
        Duration::from_secs(10),
        || (pair.state(&active).as_deref() == Some("suspended")).then_some(()),
        || both_status(&pair),
    );
    pair.heal(Fault::Suspend, &active).unwrap();
    let (active, passive) = settle(&pair);
    std::fs::remove_file(dir.0.join("fail")).unwrap();
    s.take(&pair, 3);
    for n in [&active, &passive] {
        let failed = s.delta(n, "hafw_hook_runs_total{result=\"failed\"}");
        assert!(failed >= 1.0, "{n}: {failed} hook failures");
    }
    groups.push(group(
        "failing hooks",
        &s,
        vec![(
            "HafwHookFailures",
            [&active, &passive]
                .iter()
                .map(|n| {
                    expect(
                        &rules,
                        "HafwHookFailures",
                        &[("job", JOB), ("instance", n), ("result", "failed")],
                    )
                })
                .collect(),
        )],
    ));

    // 4. No node active: the active suspended (the passive takes over),
    // then that one too (nobody to hand over to).
    pair.inject(Fault::Suspend, &active).unwrap();
    wait_for(
        "the passive active",
        Duration::from_secs(10),
        || {
            (pair.state(&passive).as_deref() == Some("active")
                && pair.state(&active).as_deref() == Some("suspended"))
            .then_some(())
        },
        || both_status(&pair),
    );
    pair.inject(Fault::Suspend, &passive).unwrap();
    wait_for(
        "both suspended",
        Duration::from_secs(10),
        || (pair.state(&passive).as_deref() == Some("suspended")).then_some(()),
        || both_status(&pair),
    );
    let mut s = Samples::default();
    s.take(&pair, 3);
    groups.push(group(
        "both suspended",
        &s,
        vec![(
            "HafwNoActiveNode",
            vec![expect(&rules, "HafwNoActiveNode", &[("job", JOB)])],
        )],
    ));
    pair.heal(Fault::Suspend, &active).unwrap();
    pair.heal(Fault::Suspend, &passive).unwrap();
    let (active, passive) = settle(&pair);

    // 5. The passive killed: the active has lost its peer on every path
    // and has no standby.
    pair.inject(Fault::Kill, &passive).unwrap();
    wait_for(
        "the active alone",
        Duration::from_secs(10),
        || {
            pair.status(&active)
                .filter(|st| st.no_standby.is_some() && st.paths.iter().all(|p| !p.up))
        },
        || pair.status_text(&active),
    );
    let mut s = Samples::default();
    s.take(&pair, 3);
    // The paths as the metric names them (the interface of each).
    let paths: Vec<String> = s
        .last()
        .iter()
        .filter(|(k, v)| {
            k.starts_with("hafw_heartbeat_path_up{")
                && k.contains(&format!("instance=\"{active}\""))
                && **v == 0.0
        })
        .filter_map(|(k, _)| {
            k.split("path=\"")
                .nth(1)?
                .split('"')
                .next()
                .map(String::from)
        })
        .collect();
    assert_eq!(paths.len(), 2, "{paths:?}: {:?}", s.last());
    let lab = |a: &str, extra: &[(&str, &str)]| {
        let mut l = vec![("job", JOB), ("instance", active.as_str())];
        l.extend_from_slice(extra);
        expect(&rules, a, &l)
    };
    groups.push(group(
        "passive killed",
        &s,
        vec![
            ("HafwPeerLost", vec![lab("HafwPeerLost", &[])]),
            (
                "HafwHeartbeatPathDown",
                paths
                    .iter()
                    .map(|p| lab("HafwHeartbeatPathDown", &[("path", p)]))
                    .collect(),
            ),
            (
                "HafwNoStandby",
                vec![lab("HafwNoStandby", &[("kind", "no_standby")])],
            ),
            ("HafwNoActiveNode", vec![]),
        ],
    ));
    pair.heal(Fault::Kill, &passive).unwrap();
    let (active, passive) = settle(&pair);

    // 6. Split brain: every heartbeat link of the passive cut, it
    // promotes while the active stays.
    pair.set_links(&passive, &["mgmt", "ha2"], false).unwrap();
    wait_for(
        "both active",
        Duration::from_secs(10),
        || {
            (pair.state(&passive).as_deref() == Some("active")
                && pair.state(&active).as_deref() == Some("active"))
            .then_some(())
        },
        || both_status(&pair),
    );
    let mut s = Samples::default();
    s.take(&pair, 3);
    groups.push(group(
        "split brain",
        &s,
        vec![
            (
                "HafwTwoActiveNodes",
                vec![expect(&rules, "HafwTwoActiveNodes", &[("job", JOB)])],
            ),
            (
                "HafwPeerLost",
                [&active, &passive]
                    .iter()
                    .map(|n| expect(&rules, "HafwPeerLost", &[("job", JOB), ("instance", n)]))
                    .collect(),
            ),
        ],
    ));
    pair.set_links(&passive, &["mgmt", "ha2"], true).unwrap();
    let (active, passive) = settle(&pair);

    // 7. Session sync lagging: the passive frozen (HA2 stays up for its
    // 10 s) while connections churn through the active.
    let web = format!("hafw-{name}.web");
    hafw_kernel::sysctl::set(Some(&web), "net.ipv4.ip_local_port_range", "1024 65535").unwrap();
    let mut ccfg = ChurnConfig::new("198.51.100.30:7777".parse().unwrap());
    ccfg.threads = 4;
    ccfg.duration = Duration::from_secs(7);
    let churn = std::thread::spawn(move || {
        hafw_kernel::in_netns(Some(&web), || hafw_lab::hosts::churn(&ccfg, &Stop::new()))
    });
    std::thread::sleep(Duration::from_millis(500));
    pair.inject(Fault::Stop, &passive).unwrap();
    let mut s = Samples::default();
    s.take_from(&pair, std::slice::from_ref(&active), 4);
    let report = churn.join().unwrap();
    let key = format!("hafw_session_sync_lag_seconds{{job=\"{JOB}\",instance=\"{active}\"}}");
    let lags: Vec<Option<f64>> = s.0.iter().map(|x| x.get(&key).copied()).collect();
    eprintln!("sync lag of {active} at each sample: {lags:?}");
    eprintln!("churn while the passive was frozen: {report:?}");
    let lag = s.value(&active, "hafw_session_sync_lag_seconds");
    eprintln!("sync lag of {active} at the last sample: {lag:?} s");
    assert!(
        lag.is_some_and(|l| l > 2.0),
        "lag {lag:?}\n{}",
        pair.status_text(&active)
    );
    groups.push(group(
        "session sync lagging",
        &s,
        vec![(
            "HafwSessionSyncLagHigh",
            vec![expect(
                &rules,
                "HafwSessionSyncLagHigh",
                &[("job", JOB), ("instance", &active)],
            )],
        )],
    ));
    pair.heal(Fault::Stop, &passive).unwrap();
    let (active, passive) = settle(&pair);

    // 8. Config versions differing: config sync paused by another policy
    // schema on the passive, then an apply on the active.
    pair.restart_with_env(&passive, &[("HAFW_TEST_POLICY_SCHEMA", "2")])
        .unwrap();
    wait_for(
        "config sync paused",
        Duration::from_secs(20),
        || {
            pair.status(&active)
                .filter(|st| st.versions.config_sync_paused)
        },
        || both_status(&pair),
    );
    let (active, passive) = settle(&pair);
    let v1 = dir.0.join("v1.toml");
    std::fs::write(
        &v1,
        std::fs::read_to_string(pair.node_config(&active))
            .unwrap()
            .replace("name = \"servers-out\"", "name = \"servers-out-v1\""),
    )
    .unwrap();
    let out = Command::new(hafw())
        .args(["config", "apply", v1.to_str().unwrap(), "--control"])
        .arg(pair.control(&active))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for(
        "the versions apart",
        Duration::from_secs(10),
        || {
            pair.status(&passive)
                .filter(|st| st.config.peer_version == Some(1) && st.config.version == 0)
        },
        || both_status(&pair),
    );
    let mut s = Samples::default();
    s.take(&pair, 3);
    groups.push(group(
        "config versions differ",
        &s,
        vec![(
            "HafwConfigVersionsDiffer",
            [&active, &passive]
                .iter()
                .map(|n| {
                    expect(
                        &rules,
                        "HafwConfigVersionsDiffer",
                        &[("job", JOB), ("instance", n)],
                    )
                })
                .collect(),
        )],
    ));
    pair.stop().unwrap();

    // The test file (JSON is YAML) and promtool's verdict.
    let test = json!({
        "rule_files": [rules_file()],
        "evaluation_interval": "1s",
        "tests": groups,
    });
    let test_file = dir.0.join("lab.test.yml");
    std::fs::write(&test_file, serde_json::to_string_pretty(&test).unwrap()).unwrap();
    let out = Command::new(&promtool)
        .args(["test", "rules"])
        .arg(&test_file)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("promtool test rules {}:\n{text}", test_file.display());
    if !out.status.success() {
        dir.1 = true;
        panic!(
            "promtool test rules failed (the test file is kept: {}):\n{text}",
            test_file.display()
        );
    }
    assert!(text.contains("SUCCESS"), "{text}");
}
