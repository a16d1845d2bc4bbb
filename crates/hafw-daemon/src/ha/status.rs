//! `hafw status`: the core's snapshot, the transport's counters and the
//! promotion timelines, as a table or as JSON.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use hafw_ha::node::Status;
use hafw_ha::wire::Counters;
use serde_json::json;

use super::executor::Timeline;
use super::setup::Setup;
use super::thread::Transport;
use crate::log::ms;

fn ago(origin: Instant, t: Option<Duration>) -> String {
    match t {
        Some(t) => format!("{} ago", ms(origin.elapsed().saturating_sub(t))),
        None => "never".into(),
    }
}

pub fn text(
    s: &Status,
    setup: &Setup,
    tl: &[Timeline],
    rejected: &Counters,
    tr: &Transport,
    origin: Instant,
) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "node      id {}  {}  term {}  {}",
        s.node_id,
        s.state.as_str(),
        s.term,
        if s.healthy { "healthy" } else { "UNHEALTHY" }
    );
    if !s.healthy {
        let _ = writeln!(o, "          monitor: {}", s.monitor_reason);
    }
    match &s.peer {
        Some(p) => {
            let _ = writeln!(
                o,
                "peer      {} (id {})  {}  term {}  priority {}  {}  {}  last heard {}",
                setup.peer_name,
                p.node_id,
                p.state.as_str(),
                p.term,
                p.priority,
                if p.healthy { "healthy" } else { "unhealthy" },
                if p.alive { "alive" } else { "LOST" },
                ago(origin, p.last_heard)
            );
        }
        None => {
            let _ = writeln!(o, "peer      {}  never heard", setup.peer_name);
        }
    }
    let _ = writeln!(o, "paths");
    for (i, p) in s.paths.iter().enumerate() {
        let name = setup.path_names.get(i).map(String::as_str).unwrap_or("?");
        let _ = writeln!(
            o,
            "  {i} {name:<32} {:<5} rtt {:<9} detect {:<9} sent {} received {} lost {} stale {}  last heard {}",
            if p.up { "up" } else { "DOWN" },
            p.rtt.map(ms).unwrap_or_else(|| "-".into()),
            p.detection.map(ms).unwrap_or_else(|| "-".into()),
            p.sent,
            p.received,
            p.lost,
            p.stale,
            ago(origin, p.last_heard)
        );
    }
    if s.alarms.is_empty() {
        let _ = writeln!(o, "alarms    none");
    } else {
        for a in &s.alarms {
            let _ = writeln!(o, "alarm     {a}");
        }
    }
    match s.transitions.last() {
        Some(t) => {
            let _ = writeln!(
                o,
                "last transition  {} -> {} (term {}) {}: {}",
                t.from.as_str(),
                t.to.as_str(),
                t.term,
                ago(origin, Some(t.at)),
                t.cause
            );
        }
        None => {
            let _ = writeln!(o, "last transition  none");
        }
    }
    if let Some(t) = tl.last() {
        let phases: Vec<String> = t
            .phases
            .iter()
            .map(|(n, d)| format!("{n} {}", ms(*d)))
            .collect();
        let _ = writeln!(
            o,
            "timeline  {} (total {})",
            phases.join(", "),
            ms(t.total())
        );
        if let Some(e) = &t.error {
            let _ = writeln!(o, "          error: {e}");
        }
    }
    let _ = writeln!(
        o,
        "dropped   {} HA messages ({}), {} send errors",
        rejected.rejected(),
        rejected
            .iter()
            .filter(|(_, n)| *n > 0)
            .map(|(k, n)| format!("{k} {n}"))
            .collect::<Vec<_>>()
            .join(", "),
        tr.send_errors
    );
    o
}

pub fn json(
    s: &Status,
    setup: &Setup,
    tl: &[Timeline],
    rejected: &Counters,
    tr: &Transport,
    origin: Instant,
) -> String {
    let ms_f = |d: Duration| d.as_secs_f64() * 1000.0;
    let since = |t: Option<Duration>| t.map(|t| ms_f(origin.elapsed().saturating_sub(t)));
    let v = json!({
        "node_id": s.node_id,
        "state": s.state.as_str(),
        "term": s.term,
        "healthy": s.healthy,
        "monitor_reason": s.monitor_reason,
        "peer": s.peer.as_ref().map(|p| json!({
            "name": setup.peer_name, "node_id": p.node_id, "state": p.state.as_str(), "term": p.term,
            "priority": p.priority, "healthy": p.healthy, "alive": p.alive,
            "config_version": p.config_version, "last_heard_ms_ago": since(p.last_heard),
        })),
        "paths": s.paths.iter().enumerate().map(|(i, p)| json!({
            "name": setup.path_names.get(i), "up": p.up, "rtt_ms": p.rtt.map(ms_f), "detection_ms": p.detection.map(ms_f), "sent": p.sent,
            "received": p.received, "lost": p.lost, "stale": p.stale, "last_heard_ms_ago": since(p.last_heard),
        })).collect::<Vec<_>>(),
        "alarms": s.alarms.iter().map(|a| a.to_string()).collect::<Vec<_>>(),
        "transitions": s.transitions.iter().map(|t| json!({
            "from": t.from.as_str(), "to": t.to.as_str(), "term": t.term, "cause": t.cause.to_string(),
            "ms_ago": since(Some(t.at)),
        })).collect::<Vec<_>>(),
        "timelines": tl.iter().map(|t| json!({
            "what": t.what, "started_mono_ns": t.started_mono_ns, "error": t.error,
            "phases": t.phases.iter().map(|(n, d)| json!({"phase": n, "ms": ms_f(*d)})).collect::<Vec<_>>(),
            "total_ms": ms_f(t.total()),
        })).collect::<Vec<_>>(),
        "dropped": rejected.iter().map(|(k, n)| (k.to_string(), json!(n))).collect::<serde_json::Map<_, _>>(),
        "send_errors": tr.send_errors,
    });
    format!("{v}\n")
}
