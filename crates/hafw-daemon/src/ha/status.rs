//! The HA part of [`crate::status::Status`], taken from the core's snapshot,
//! the transport's counters and the promotion timelines.

use std::time::{Duration, Instant};

use hafw_ha::node::Status as CoreStatus;
use hafw_ha::version::Negotiation;
use hafw_ha::wire::{Counters, Opener};

use super::executor::Timeline;
use super::setup::Setup;
use super::thread::{OwnVersions, Transport};
use crate::status::{self, Status};

pub fn build(
    s: &CoreStatus,
    setup: &Setup,
    tl: &[Timeline],
    rejected: &Counters,
    tr: &Transport,
    origin: Instant,
) -> Status {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let since = |t: Option<Duration>| t.map(|t| ms(origin.elapsed().saturating_sub(t)));
    Status {
        node_id: s.node_id,
        state: s.state.as_str().into(),
        term: s.term,
        healthy: s.healthy,
        monitor_reason: s.monitor_reason.clone(),
        peer_name: setup.peer_name.clone(),
        peer: s.peer.as_ref().map(|p| status::Peer {
            name: setup.peer_name.clone(),
            node_id: p.node_id,
            state: p.state.as_str().into(),
            term: p.term,
            priority: p.priority,
            healthy: p.healthy,
            alive: p.alive,
            config_version: p.config_version,
            last_heard_ms_ago: since(p.last_heard),
        }),
        paths: s
            .paths
            .iter()
            .enumerate()
            .map(|(i, p)| status::Path {
                name: setup.path_names.get(i).cloned(),
                up: p.up,
                rtt_ms: p.rtt.map(ms),
                detection_ms: p.detection.map(ms),
                sent: p.sent,
                received: p.received,
                lost: p.lost,
                stale: p.stale,
                last_heard_ms_ago: since(p.last_heard),
            })
            .collect(),
        alarms: s.alarms.iter().map(|a| a.to_string()).collect(),
        transitions: s
            .transitions
            .iter()
            .map(|t| status::Transition {
                from: t.from.as_str().into(),
                to: t.to.as_str().into(),
                term: t.term,
                cause: t.cause.to_string(),
                ms_ago: since(Some(t.at)),
            })
            .collect(),
        timelines: tl
            .iter()
            .map(|t| status::Timeline {
                what: t.what.clone(),
                started_mono_ns: t.started_mono_ns,
                error: t.error.clone(),
                phases: t
                    .phases
                    .iter()
                    .map(|(n, d)| status::Phase {
                        phase: (*n).into(),
                        ms: ms(*d),
                    })
                    .collect(),
                total_ms: ms(t.total()),
            })
            .collect(),
        dropped: (rejected.iter().map(|(k, n)| (k.to_string(), n)))
            .chain([(super::thread::EPOCH_BUDGET.to_string(), tr.epoch_limited)])
            .collect(),
        dropped_total: rejected.rejected() + tr.epoch_limited,
        send_errors: tr.send_errors,
        last_refused: None,
        session_sync: None,
        config: status::Config::default(),
        // Need session sync's part too: added with it.
        no_standby: None,
        handover: None,
        audit_dropped: 0,
        hooks: Default::default(),
        versions: status::Versions::default(),
    }
}

/// How config sync's pause starts in `alarms`.
pub const PAUSED_ALARM: &str = "config sync paused: ";

/// This node's and the peer's versions (software, protocol, policy schema)
/// and, while config sync is paused, its alarm.
pub fn add_versions(st: &mut Status, n: &Negotiation, own: OwnVersions, paused: &Option<String>) {
    let p = n.status();
    st.versions = status::Versions {
        software: env!("CARGO_PKG_VERSION").into(),
        protocol_max: own.protocol_max,
        policy_schema: own.policy_schema,
        speaking: p.speaking,
        // The peer's text: escaped and capped before anyone shows it.
        peer_software: p.software.as_deref().map(crate::ops::text::peer_text),
        peer_protocol: p.peer_speaking,
        peer_protocol_max: p.peer_max,
        peer_policy_schema: p.policy_schema,
        protocol_changes: p.changes,
        config_sync_paused: paused.is_some(),
    };
    if let Some(why) = paused {
        st.alarms.push(format!("{PAUSED_ALARM}{why}"));
    }
}

/// Why the peer's envelopes were last refused, how long ago, and how often
/// a peer restarted with its clock behind was taken back: what `hafw
/// status` shows while the peer is not heard.
pub fn last_refused(opener: &Opener, now: Duration) -> Option<String> {
    let (why, at) = opener.last_refusal()?;
    let ago = now.saturating_sub(at).as_secs_f64();
    let recoveries = opener.counters().recoveries;
    let recovered = match recoveries {
        0 => String::new(),
        n => format!("; peer heard again after its clock went back {n} time(s)"),
    };
    Some(format!("{why} ({ago:.1} s ago){recovered}"))
}
