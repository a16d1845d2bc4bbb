//! The node's status as one typed value: built by the daemon (the HA
//! thread fills the HA part, the paired node adds session sync and config),
//! shown by `hafw status` ([`std::fmt::Display`]), served as JSON by `hafw
//! status --json` and the API, and read back with serde by the lab harness,
//! the benchmarks and the tests. One type, so no reader scrapes text.
//!
//! Times are relative to the moment the status was taken (`*_ms_ago`) or
//! CLOCK_MONOTONIC (`started_mono_ns`), so a reader in another process can
//! line them up with its own clock.

use std::collections::BTreeMap;
use std::fmt;

use hafw_ha::readiness;
use serde::{Deserialize, Serialize};

use crate::config::ConfigView;
use crate::ops::text::peer_text;
use crate::sync::SyncStatus;

/// Everything `hafw status` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Status {
    pub node_id: u32,
    /// `initial`, `passive`, `active`, `suspended` or `non-functional`.
    pub state: String,
    pub term: u64,
    pub healthy: bool,
    #[serde(default)]
    pub monitor_reason: String,
    /// The peer's name from the deployment file (known before it is heard).
    #[serde(default)]
    pub peer_name: String,
    /// What the peer's heartbeats say; `None` until one is heard.
    pub peer: Option<Peer>,
    #[serde(default)]
    pub paths: Vec<Path>,
    #[serde(default)]
    pub alarms: Vec<String>,
    #[serde(default)]
    pub transitions: Vec<Transition>,
    #[serde(default)]
    pub timelines: Vec<Timeline>,
    /// HA messages opened, by outcome: `accepted` and each reason to refuse.
    #[serde(default)]
    pub dropped: BTreeMap<String, u64>,
    /// HA messages refused, all reasons.
    #[serde(default)]
    pub dropped_total: u64,
    #[serde(default)]
    pub send_errors: u64,
    /// The last refusal of an envelope from the peer, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_refused: Option<String>,
    /// Absent when session sync is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_sync: Option<SessionSync>,
    #[serde(default)]
    pub config: Config,
    /// On the active when no peer could take over (also in `alarms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_standby: Option<NoStandby>,
    /// On the active and the passive: whether a handover now would keep
    /// every session ([`crate::ops::alarms`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub handover: Option<Handover>,
    /// Audit records dropped because the audit writer was behind.
    #[serde(default)]
    pub audit_dropped: u64,
    /// HA event hook runs by result (`ok`, `failed`, `timeout`, `dropped`);
    /// empty when `policy.hooks` is not set.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub hooks: BTreeMap<String, u64>,
    /// This node's and the peer's software, protocol and policy schema
    /// versions (rolling upgrades, `docs/upgrade.md`).
    #[serde(default)]
    pub versions: Versions,
}

/// What each node runs, and which protocol version they speak.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Versions {
    /// This node's software (crate) version.
    pub software: String,
    /// The highest protocol this node speaks.
    pub protocol_max: u8,
    pub policy_schema: u16,
    /// The protocol version this node seals with towards the peer.
    pub speaking: u8,
    /// From the peer's heartbeats (none from a version 2 peer).
    pub peer_software: Option<String>,
    /// The version of the peer's last authentic message.
    pub peer_protocol: Option<u8>,
    pub peer_protocol_max: Option<u8>,
    pub peer_policy_schema: Option<u16>,
    /// Times the spoken version changed in this run.
    pub protocol_changes: u64,
    /// No policy offered or taken: the policy schemas differ (an alarm).
    pub config_sync_paused: bool,
}

/// The active has no standby: why, and since when.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct NoStandby {
    pub peer: String,
    /// `lost`, `never heard`, `not passive` or `unhealthy`.
    pub why: String,
    /// When lost: how long ago the peer was last heard.
    pub since_ms_ago: Option<f64>,
    /// The same moment on the wall clock, UTC.
    pub since: Option<String>,
}

/// On the active, a planned handover to the peer; on the passive, a
/// takeover by this node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Handover {
    pub ready: bool,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Peer {
    pub name: String,
    pub node_id: u32,
    pub state: String,
    pub term: u64,
    pub priority: u8,
    pub healthy: bool,
    pub alive: bool,
    pub config_version: u64,
    pub last_heard_ms_ago: Option<f64>,
}

/// One heartbeat path.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Path {
    pub name: Option<String>,
    pub up: bool,
    pub rtt_ms: Option<f64>,
    /// The path's current detection time (adaptive).
    pub detection_ms: Option<f64>,
    pub sent: u64,
    pub received: u64,
    pub lost: u64,
    pub stale: u64,
    pub last_heard_ms_ago: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Transition {
    pub from: String,
    pub to: String,
    pub term: u64,
    pub cause: String,
    pub ms_ago: Option<f64>,
}

/// The phases of one promotion or demotion, as the executor timed them.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Timeline {
    pub what: String,
    pub started_mono_ns: u64,
    pub error: Option<String>,
    pub phases: Vec<Phase>,
    pub total_ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Phase {
    pub phase: String,
    pub ms: f64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct SessionSync {
    pub mode: String,
    pub connected: bool,
    /// This node streams its table (the active) rather than holding the peer's.
    pub sending: bool,
    /// The sessions this node answers for: the passive's cache, the active's kernel count.
    pub sessions: u64,
    /// The passive cache's bound (`policy.sessions`, as the kernel took it).
    pub max_sessions: u64,
    /// The heap the passive's cache holds, in bytes (0 on the active).
    pub cache_bytes: u64,
    pub entries_sent: u64,
    pub installed: u64,
    pub lag_ms: Option<f64>,
    pub resyncs: u64,
    pub dropped_messages: u64,
    /// This node could take over with nothing lost (always on the active;
    /// on a passive not while HA2 is down).
    pub ready: bool,
    /// Why not, when not ready.
    pub reason: Option<String>,
    pub last_install: Option<Install>,
    /// Bulk generations the active queued (one per peer connection, plus
    /// refreshes and resyncs).
    pub bulks: u64,
    /// What session sync dropped or refused, by reason (non-zero only):
    /// the receiver's refusals of the peer's entries and messages, the HA2
    /// link's drops and refused connections, the conntrack event queue's
    /// drops and overruns, conntrack requests that timed out.
    pub drops: BTreeMap<String, u64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Install {
    pub sessions: u64,
    pub ms: f64,
}

/// This node's and its peer's policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Config {
    pub version: u64,
    pub hash: String,
    pub peer_version: Option<u64>,
    pub peer_hash: Option<String>,
    pub mismatch: bool,
    /// A failure to apply here.
    pub error: Option<String>,
    /// The peer's refusal of our last offer.
    pub peer_error: Option<String>,
    pub restart_needed: Option<String>,
    /// Config sync runs (there is an HA2 path and session sync is on).
    pub sync: bool,
    /// The running version was applied with `--confirm-within` and is
    /// not confirmed yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pending_confirm: Option<PendingConfirm>,
}

/// What `hafw config confirm` would keep, and what happens without it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PendingConfirm {
    pub version: u64,
    /// Seconds until the nodes go back (0 once due).
    pub seconds_left: u64,
    /// The version whose policy they go back to.
    pub back_to: u64,
}

impl Status {
    pub fn is_active(&self) -> bool {
        self.state == "active"
    }

    /// Ready to take over with nothing lost (systemd's READY=1): active, or
    /// holding the peer's table and policy. Without session sync there is
    /// nothing to wait for.
    pub fn ready(&self) -> bool {
        self.session_sync.as_ref().is_none_or(|s| s.ready)
    }

    /// The newest timeline whose description starts with `what` and that
    /// started at or after `since_mono_ns`.
    pub fn timeline(&self, what: &str, since_mono_ns: u64) -> Option<&Timeline> {
        self.timelines
            .iter()
            .rev()
            .find(|t| t.what.starts_with(what) && t.started_mono_ns >= since_mono_ns)
    }

    /// The JSON `hafw status --json` prints: one object and a newline.
    pub fn to_json(&self) -> String {
        match serde_json::to_string(self) {
            Ok(s) => s + "\n",
            // A struct of strings and numbers always serializes; say so if not.
            Err(e) => format!("{{\"error\":\"status: {e}\"}}\n"),
        }
    }
}

/// How config sync's alarms start, in `alarms` and in the text.
const CONFIG_ALARM: &str = "config sync: ";

fn ms(v: f64) -> String {
    format!("{v:.1} ms")
}

fn ago(v: Option<f64>) -> String {
    match v {
        Some(v) => format!("{} ago", ms(v)),
        None => "never".into(),
    }
}

fn short(hash: &str) -> &str {
    hash.get(..8).unwrap_or(hash)
}

impl fmt::Display for Status {
    fn fmt(&self, o: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            o,
            "node      id {}  {}  term {}  {}",
            self.node_id,
            self.state,
            self.term,
            if self.healthy { "healthy" } else { "UNHEALTHY" }
        )?;
        if !self.healthy {
            writeln!(o, "          monitor: {}", self.monitor_reason)?;
        }
        match &self.peer {
            Some(p) => writeln!(
                o,
                "peer      {} (id {})  {}  term {}  priority {}  {}  {}  last heard {}",
                p.name,
                p.node_id,
                p.state,
                p.term,
                p.priority,
                if p.healthy { "healthy" } else { "unhealthy" },
                if p.alive { "alive" } else { "LOST" },
                ago(p.last_heard_ms_ago)
            )?,
            None => writeln!(o, "peer      {}  never heard", self.peer_name)?,
        }
        let v = &self.versions;
        let opt = |x: Option<String>| x.unwrap_or_else(|| "?".into());
        writeln!(
            o,
            "versions  this {} protocol {} schema {}  peer {} protocol {} (max {}) schema {}  \
             speaking {}{}",
            v.software,
            v.protocol_max,
            v.policy_schema,
            opt(v.peer_software.clone()),
            opt(v.peer_protocol.map(|p| p.to_string())),
            opt(v.peer_protocol_max.map(|p| p.to_string())),
            opt(v.peer_policy_schema.map(|p| p.to_string())),
            v.speaking,
            if v.config_sync_paused {
                "  CONFIG SYNC PAUSED"
            } else {
                ""
            }
        )?;
        writeln!(o, "paths")?;
        for (i, p) in self.paths.iter().enumerate() {
            writeln!(
                o,
                "  {i} {:<32} {:<5} rtt {:<9} detect {:<9} sent {} received {} lost {} stale {}  last heard {}",
                p.name.as_deref().unwrap_or("?"),
                if p.up { "up" } else { "DOWN" },
                p.rtt_ms.map(ms).unwrap_or_else(|| "-".into()),
                p.detection_ms.map(ms).unwrap_or_else(|| "-".into()),
                p.sent,
                p.received,
                p.lost,
                p.stale,
                ago(p.last_heard_ms_ago)
            )?;
        }
        // Config sync's alarms are also in `alarms` (for JSON readers); the
        // text shows them once, under the config line.
        let ha_alarms: Vec<&String> = (self.alarms.iter())
            .filter(|a| !a.starts_with(CONFIG_ALARM))
            .collect();
        if ha_alarms.is_empty() {
            writeln!(o, "alarms    none")?;
        } else {
            for a in ha_alarms {
                writeln!(o, "alarm     {a}")?;
            }
        }
        if let Some(h) = &self.handover {
            match (&h.reason, h.ready) {
                (_, true) => writeln!(o, "handover  ready")?,
                (Some(r), false) => writeln!(o, "handover  NOT READY: {r}")?,
                (None, false) => writeln!(o, "handover  NOT READY")?,
            }
        }
        match self.transitions.last() {
            Some(t) => writeln!(
                o,
                "last transition  {} -> {} (term {}) {}: {}",
                t.from,
                t.to,
                t.term,
                ago(t.ms_ago),
                t.cause
            )?,
            None => writeln!(o, "last transition  none")?,
        }
        if let Some(t) = self.timelines.last() {
            let phases: Vec<String> = t
                .phases
                .iter()
                .map(|p| format!("{} {}", p.phase, ms(p.ms)))
                .collect();
            writeln!(
                o,
                "timeline  {} (total {})",
                phases.join(", "),
                ms(t.total_ms)
            )?;
            if let Some(e) = &t.error {
                writeln!(o, "          error: {e}")?;
            }
        }
        writeln!(
            o,
            "dropped   {} HA messages ({}), {} send errors",
            self.dropped_total,
            self.dropped
                .iter()
                .filter(|(k, n)| **n > 0 && k.as_str() != "accepted")
                .map(|(k, n)| format!("{k} {n}"))
                .collect::<Vec<_>>()
                .join(", "),
            self.send_errors
        )?;
        if let Some(why) = &self.last_refused {
            writeln!(o, "          last refused: {why}")?;
        }
        if self.audit_dropped > 0 {
            writeln!(
                o,
                "audit     {} records dropped (the writer was behind)",
                self.audit_dropped
            )?;
        }
        if !self.hooks.is_empty() {
            let runs: Vec<String> = ["ok", "failed", "timeout", "dropped"]
                .iter()
                .map(|r| format!("{r} {}", self.hooks.get(*r).copied().unwrap_or(0)))
                .collect();
            writeln!(o, "hooks     {}", runs.join("  "))?;
        }
        if let Some(st) = &self.session_sync {
            writeln!(
                o,
                "sessions  {} mode, HA2 {}, {} {} sessions{}, {} installed here, lag {}, resyncs {}, dropped {}, {}",
                st.mode,
                if st.connected { "connected" } else { "DISCONNECTED" },
                if st.sending { "sending" } else { "holding" },
                st.sessions,
                if st.sending {
                    format!(" ({} changes sent)", st.entries_sent)
                } else {
                    String::new()
                },
                st.installed,
                st.lag_ms
                    .map(|l| format!("{l:.1} ms"))
                    .unwrap_or_else(|| "-".into()),
                st.resyncs,
                st.dropped_messages,
                match (&self.handover, st.ready) {
                    (Some(h), _) if h.ready => "ready".to_string(),
                    (Some(h), _) => format!(
                        "NOT READY ({})",
                        h.reason.as_deref().unwrap_or("no reason known")
                    ),
                    (None, true) => "ready".to_string(),
                    (None, false) => format!(
                        "NOT READY ({})",
                        st.reason.as_deref().unwrap_or("no full table or policy yet")
                    ),
                }
            )?;
            if !st.drops.is_empty() {
                let d: Vec<String> = st.drops.iter().map(|(k, v)| format!("{k} {v}")).collect();
                writeln!(o, "          sync drops: {}", d.join(", "))?;
            }
        }
        let c = &self.config;
        writeln!(
            o,
            "config    version {} ({}){}{}",
            c.version,
            short(&c.hash),
            match (c.peer_version, &c.peer_hash) {
                (Some(v), Some(h)) => format!("  peer version {v} ({})", short(h)),
                _ if !c.sync => "  (config sync off)".into(),
                _ => "  peer version unknown".into(),
            },
            if c.mismatch { "  [MISMATCH]" } else { "" }
        )?;
        for e in c.error.iter().chain(&c.peer_error) {
            writeln!(o, "alarm     {CONFIG_ALARM}{e}")?;
        }
        if let Some(r) = &c.restart_needed {
            writeln!(o, "          restart needed: {r}")?;
        }
        if let Some(p) = &c.pending_confirm {
            writeln!(
                o,
                "          NOT CONFIRMED: `hafw config confirm` within {} s, or both nodes go back to version {}'s policy",
                p.seconds_left, p.back_to
            )?;
        }
        Ok(())
    }
}

/// Adds session sync's and the config task's parts to the HA thread's
/// status; a config failure on either side is also an alarm.
pub fn add_sync(s: &mut Status, sync: Option<&SyncStatus>, view: &ConfigView) {
    let hex = crate::config::hex;
    let cs = sync.map(|st| &st.config);
    let peer = cs.and_then(|c| c.peer);
    // The reason is the peer's text: shown escaped and capped.
    let peer_error = cs.and_then(|c| match &c.peer_result {
        Some((version, false, e)) => Some(format!(
            "the peer did not apply policy version {version}: {}",
            e.as_deref().map_or("no reason given".into(), peer_text)
        )),
        _ => None,
    });
    s.config = Config {
        version: view.version,
        hash: hex(&view.hash),
        peer_version: peer.map(|p| p.0),
        peer_hash: peer.map(|p| hex(&p.1)),
        mismatch: peer.is_some_and(|p| p != (view.version, view.hash)),
        // Cleared by the next policy applied here. It may quote the
        // peer's policy (an offer that did not validate).
        error: view.error.as_deref().map(peer_text),
        peer_error,
        restart_needed: view.restart.clone(),
        sync: sync.is_some(),
        pending_confirm: view.pending.map(|p| PendingConfirm {
            version: p.version,
            seconds_left: p
                .until_ms
                .saturating_sub(crate::config::history::now_ms())
                .div_ceil(1000),
            back_to: p.back_to,
        }),
    };
    for e in s.config.error.iter().chain(&s.config.peer_error) {
        s.alarms.push(format!("{CONFIG_ALARM}{e}"));
    }
    s.session_sync = sync.map(|st| {
        let now = readiness::now(readiness::Now {
            active: st.role_active,
            verdict: st.ready,
            ha2_connected: st.connected,
            policy: st.config.version,
            peer_policy: st.config.peer.map(|p| p.0),
        });
        SessionSync {
            mode: st.mode.clone(),
            connected: st.connected,
            sending: st.role_active,
            sessions: sessions(st),
            max_sessions: st.max_sessions as u64,
            cache_bytes: st.cache_bytes,
            entries_sent: st.entries_sent,
            installed: st.synced_entries,
            lag_ms: st.lag_ms,
            resyncs: st.resyncs,
            dropped_messages: st.dropped,
            ready: now.is_ok(),
            // The receiver's own reason (a full cache, say) beats the
            // generic "not synced yet".
            reason: now.err().map(|e| match (&st.not_ready, st.ready) {
                (Some(why), false) => why.clone(),
                _ => e.to_string(),
            }),
            bulks: st.bulks,
            drops: sync_drops(st),
            last_install: st.last_install.map(|(n, d)| Install {
                sessions: n as u64,
                ms: d.as_secs_f64() * 1000.0,
            }),
        }
    });
}

/// Session sync's drops and refusals by reason, non-zero ones only.
fn sync_drops(st: &SyncStatus) -> BTreeMap<String, u64> {
    let h = &st.ha2;
    let link = [
        ("ha2_dropped_down", h.dropped_down),
        ("ha2_dropped_full", h.dropped_full),
        ("ha2_rejected", h.rejected),
        ("ha2_unauthenticated", h.unauthenticated),
        ("ha2_replaced", h.replaced),
        ("ha2_idle_timeouts", h.idle_timeouts),
        ("ha2_oversize", h.oversize),
        ("conntrack_events_dropped", st.events_dropped),
        ("conntrack_overruns", st.overruns),
        ("conntrack_timeouts", st.ct_timeouts),
    ];
    (st.refused.iter().map(|(k, v)| (*k, *v)))
        .chain(link)
        .filter(|(_, v)| *v > 0)
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// The sessions a node answers for: the passive's sync cache; on the
/// active, the kernel's conntrack count (this process's namespace), read
/// when asked rather than tracked per event.
pub fn sessions(st: &SyncStatus) -> u64 {
    if !st.role_active {
        return st.sessions_known as u64;
    }
    std::fs::read_to_string("/proc/sys/net/netfilter/nf_conntrack_count")
        .ok()
        .and_then(|t| t.trim().parse().ok())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Status {
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
                term: 4,
                priority: 100,
                healthy: true,
                alive: false,
                config_version: 3,
                last_heard_ms_ago: Some(1500.0),
            }),
            paths: vec![Path {
                name: Some("mgmt 10.0.0.1 -> 10.0.0.2".into()),
                up: false,
                ..Path::default()
            }],
            alarms: vec!["peer lost".into()],
            timelines: vec![Timeline {
                what: "become active (term 4): peer lost".into(),
                started_mono_ns: 10,
                phases: vec![Phase {
                    phase: "add addresses".into(),
                    ms: 0.5,
                }],
                total_ms: 0.5,
                error: None,
            }],
            dropped: [
                ("accepted".to_string(), 90),
                ("bad tag".to_string(), 2),
                ("replay".to_string(), 0),
            ]
            .into(),
            dropped_total: 2,
            session_sync: Some(SessionSync {
                mode: "mirror".into(),
                connected: false,
                sending: true,
                sessions: 12,
                ready: true,
                ..SessionSync::default()
            }),
            config: Config {
                version: 3,
                hash: "d7b9ec9f00".into(),
                peer_version: Some(3),
                peer_hash: Some("d7b9ec9f00".into()),
                sync: true,
                ..Config::default()
            },
            ..Status::default()
        }
    }

    #[test]
    fn json_round_trips_into_the_same_value() {
        let s = sample();
        let back: Status = serde_json::from_str(&s.to_json()).expect("parse");
        assert_eq!(back, s);
    }

    #[test]
    fn versions_in_the_text_and_the_json() {
        let mut s = sample();
        s.versions = Versions {
            software: "0.2.0".into(),
            protocol_max: 4,
            policy_schema: 1,
            speaking: 3,
            peer_software: Some("0.1.0".into()),
            peer_protocol: Some(3),
            peer_protocol_max: Some(3),
            peer_policy_schema: Some(2),
            protocol_changes: 1,
            config_sync_paused: true,
        };
        let text = s.to_string();
        assert!(
            text.contains(
                "versions  this 0.2.0 protocol 4 schema 1  peer 0.1.0 protocol 3 (max 3) \
                 schema 2  speaking 3  CONFIG SYNC PAUSED"
            ),
            "{text}"
        );
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).expect("parse");
        assert_eq!(v["versions"]["peer_protocol_max"], 3);
        assert_eq!(v["versions"]["speaking"], 3);
        assert_eq!(v["versions"]["config_sync_paused"], true);
        // A peer on the release before negotiation: nothing advertised.
        s.versions.peer_software = None;
        assert!(s.to_string().contains("peer ? protocol 3"), "{}", s);
        // A status from a build without versions still parses.
        let old: Status = serde_json::from_str(
            r#"{"node_id":1,"state":"active","term":1,"healthy":true,"peer":null}"#,
        )
        .expect("parse");
        assert_eq!(old.versions, Versions::default());
    }

    #[test]
    fn the_json_keeps_the_field_names_readers_use() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).expect("parse");
        assert_eq!(v["state"], "active");
        assert_eq!(v["session_sync"]["ready"], true);
        assert_eq!(v["config"]["version"], 3);
        assert_eq!(v["timelines"][0]["phases"][0]["phase"], "add addresses");
        assert_eq!(v["peer"]["last_heard_ms_ago"], 1500.0);
    }

    #[test]
    fn the_text_says_what_is_wrong() {
        let text = sample().to_string();
        assert!(text.contains("peer      fw-b (id 2)  passive"), "{text}");
        assert!(text.contains("LOST"), "{text}");
        assert!(text.contains("alarm     peer lost"), "{text}");
        assert!(text.contains("HA2 DISCONNECTED"), "{text}");
        assert!(
            text.contains("dropped   2 HA messages (bad tag 2)"),
            "{text}"
        );
        assert!(
            text.contains("config    version 3 (d7b9ec9f)  peer version 3 (d7b9ec9f)"),
            "{text}"
        );
        assert!(text.contains("timeline  add addresses 0.5 ms (total 0.5 ms)"));
    }

    #[test]
    fn a_config_sync_failure_is_an_alarm_in_json_and_shown_once_in_text() {
        let mut s = sample();
        s.alarms.clear();
        let view = ConfigView {
            version: 2,
            error: Some("bad rule".into()),
            ..ConfigView::default()
        };
        add_sync(&mut s, None, &view);
        assert_eq!(s.alarms, vec!["config sync: bad rule".to_string()]);
        let text = s.to_string();
        assert_eq!(text.matches("config sync: bad rule").count(), 1, "{text}");
        assert!(text.contains("alarms    none"), "{text}");
    }

    #[test]
    fn dropped_audit_records_are_shown_only_when_there_are_some() {
        let mut s = sample();
        assert!(!s.to_string().contains("audit "), "{s}");
        s.audit_dropped = 3;
        assert!(s.to_string().contains("audit     3 records dropped"), "{s}");
        let back: Status = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(back.audit_dropped, 3);
    }

    #[test]
    fn a_status_without_sync_is_ready_and_says_config_sync_is_off() {
        let s = Status {
            state: "passive".into(),
            ..Status::default()
        };
        assert!(s.ready());
        assert!(!s.is_active());
        assert!(s.to_string().contains("(config sync off)"));
        let mut waiting = sample();
        if let Some(x) = waiting.session_sync.as_mut() {
            x.ready = false;
        }
        assert!(!waiting.ready());
    }

    fn survivor_sync(connected: bool, active: bool) -> SyncStatus {
        SyncStatus {
            mode: "mirror".into(),
            connected,
            role_active: active,
            ready: true,
            ..SyncStatus::default()
        }
    }

    /// Session sync's drops reach status by reason, non-zero only, and a
    /// full cache is the passive's reason not to be ready.
    #[test]
    fn sync_drops_and_the_receivers_reason_are_shown() {
        let mut st = survivor_sync(true, false);
        st.ready = false;
        st.not_ready = Some("the session cache is full (262144 entries)".into());
        st.refused = vec![("refused_own_address", 4), ("cache_full", 7)];
        st.ha2.unauthenticated = 3;
        st.events_dropped = 0;
        st.overruns = 2;
        let mut s = sample();
        add_sync(&mut s, Some(&st), &ConfigView::default());
        let ss = s.session_sync.as_ref().unwrap();
        let want: Vec<(&str, u64)> = vec![
            ("cache_full", 7),
            ("conntrack_overruns", 2),
            ("ha2_unauthenticated", 3),
            ("refused_own_address", 4),
        ];
        let got: Vec<(&str, u64)> = ss.drops.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        assert_eq!(got, want);
        assert_eq!(
            ss.reason.as_deref(),
            Some("the session cache is full (262144 entries)")
        );
        let text = s.to_string();
        assert!(
            text.contains("sync drops: cache_full 7, conntrack_overruns 2, ha2_unauthenticated 3, refused_own_address 4"),
            "{text}"
        );
    }

    fn at() -> std::time::SystemTime {
        std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_796_418_206)
    }

    /// The survivor of a failover: peer lost, HA2 down. Before, its status
    /// said `alarms none` and `... HA2 DISCONNECTED ... ready`.
    #[test]
    fn a_survivor_says_it_has_no_standby_in_text_and_json() {
        let mut s = sample();
        s.alarms.clear();
        add_sync(
            &mut s,
            Some(&survivor_sync(false, true)),
            &ConfigView::default(),
        );
        crate::ops::alarms::add(&mut s, at());
        let text = s.to_string();
        assert!(
            text.contains(
                "alarm     no standby: peer fw-b lost since 2026-12-04 21:03:24 UTC (1.5 s ago)"
            ),
            "{text}"
        );
        assert!(!text.contains("alarms    none"), "{text}");
        assert!(
            text.contains("handover  NOT READY: no standby: peer fw-b is lost"),
            "{text}"
        );
        let sessions = text.lines().find(|l| l.starts_with("sessions")).unwrap();
        assert!(sessions.contains("HA2 DISCONNECTED"), "{sessions}");
        assert!(
            sessions.ends_with("NOT READY (no standby: peer fw-b is lost)"),
            "{sessions}"
        );
        let v: serde_json::Value = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(v["no_standby"]["peer"], "fw-b");
        assert_eq!(v["no_standby"]["why"], "lost");
        assert_eq!(v["no_standby"]["since_ms_ago"], 1500.0);
        assert_eq!(v["handover"]["ready"], false);
        assert!(v["alarms"][0]
            .as_str()
            .unwrap()
            .starts_with("no standby: peer fw-b lost since"));
        // The active itself can serve: its own readiness is unchanged.
        assert_eq!(v["session_sync"]["ready"], true);
        let back: Status = serde_json::from_str(&s.to_json()).unwrap();
        assert_eq!(back, s);
    }

    #[test]
    fn a_passive_cut_off_from_ha2_is_not_ready_and_says_why() {
        let mut s = sample();
        s.state = "passive".into();
        s.alarms.clear();
        // The sync thread's verdict still holds its last generation.
        add_sync(
            &mut s,
            Some(&survivor_sync(false, false)),
            &ConfigView::default(),
        );
        crate::ops::alarms::add(&mut s, at());
        let st = s.session_sync.clone().unwrap();
        assert!(!st.ready);
        assert_eq!(st.reason.as_deref(), Some("HA2 disconnected"));
        assert!(!s.ready());
        let text = s.to_string();
        assert!(text.contains("NOT READY (HA2 disconnected)"), "{text}");
        assert!(
            text.contains("handover  NOT READY: HA2 disconnected"),
            "{text}"
        );
        assert!(
            s.no_standby.is_none(),
            "a passive is nobody's standby alarm"
        );
        // Connected again: ready.
        add_sync(
            &mut s,
            Some(&survivor_sync(true, false)),
            &ConfigView::default(),
        );
        crate::ops::alarms::add(&mut s, at());
        assert!(s.ready());
        assert!(s.to_string().contains("handover  ready"));
    }

    /// The peer's refusal text cannot clear the screen or forge a line.
    #[test]
    fn the_peers_error_text_is_escaped_in_status() {
        let mut s = sample();
        s.alarms.clear();
        let mut sync = survivor_sync(true, true);
        sync.config.peer_result = Some((
            4,
            false,
            Some("bad\x1b[2J\x1b[H\nalarms    none\nnode      id 9".into()),
        ));
        let view = ConfigView {
            error: Some("offer refused: name \u{1b}]0;pwned\u{7}".into()),
            ..ConfigView::default()
        };
        add_sync(&mut s, Some(&sync), &view);
        let text = s.to_string();
        assert!(!text.contains('\x1b') && !text.contains('\x07'), "{text:?}");
        assert!(
            text.contains(
                "alarm     config sync: the peer did not apply policy version 4: bad\\u{1b}[2J\\u{1b}[H\\nalarms    none\\nnode      id 9"
            ),
            "{text}"
        );
        // One "alarms none" line (the HA part's own), not a forged second.
        assert_eq!(
            text.lines()
                .filter(|l| l.starts_with("alarms    none"))
                .count(),
            1,
            "{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("node      id 9")),
            "{text}"
        );
        assert_eq!(
            s.config.error.as_deref(),
            Some("offer refused: name \\u{1b}]0;pwned\\u{7}")
        );
    }
}
