//! Prometheus metrics of a node, in the OpenMetrics text format.
//!
//! The daemon reports what happened through the methods of [`Metrics`]; a
//! scrape of `/metrics` calls [`Metrics::encode`]. Counters that the daemon
//! already keeps as running totals (the opener's drop counters, resyncs) are
//! handed over as totals and stored with `fetch_max`, so reporting the same
//! total twice, or from two threads, never counts anything twice.
//!
//! Label values are bounded sets (states, path names, phase names, drop
//! reasons, cause kinds), never free text: a cause's full text belongs in
//! the log and in `/status`, not in a label.

use std::fmt::Debug;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::{Registry, Unit};

/// The media type of [`Metrics::encode`]'s output, for the HTTP reply.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The states of `hafw_ha::node`, exported from the start (at 0) so an
/// alert on `hafw_state{state="active"}` works before the first transition.
pub const STATES: [&str; 5] = [
    "initial",
    "passive",
    "active",
    "suspended",
    "non-functional",
];

type One = [(&'static str, String); 1];
type Three = [(&'static str, String); 3];
type U64Gauge = Gauge<u64, AtomicU64>;
type F64Gauge = Gauge<f64, AtomicU64>;

/// A node's metrics. Cloning is cheap (one `Arc`); every method takes
/// `&self` and may be called from any thread.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    /// The state last reported, so the next report can zero it.
    current_state: Mutex<Option<String>>,
    state: Family<One, U64Gauge>,
    term: U64Gauge,
    transitions: Family<Three, Counter>,
    heartbeat_rtt: Family<One, Histogram, fn() -> Histogram>,
    heartbeat_misses: Family<One, Counter>,
    path_up: Family<One, U64Gauge>,
    phase: Family<One, Histogram, fn() -> Histogram>,
    garp_sent: Counter,
    ha_accepted: Counter,
    ha_dropped: Family<One, Counter>,
    sessions: U64Gauge,
    sessions_synced: U64Gauge,
    sync_lag: F64Gauge,
    resyncs: Counter,
    config_version: U64Gauge,
    peer_config_version: U64Gauge,
    alarm: Family<One, U64Gauge>,
    handover_ready: U64Gauge,
    api_refused: Family<One, Counter>,
    control_refused: Family<One, Counter>,
    audit_dropped: Counter,
    hook_runs: Family<One, Counter>,
    traffic_records: Family<One, Counter>,
    traffic_suppressed: Counter,
    traffic_lost: Family<One, Counter>,
    peer_alive: U64Gauge,
    rule_packets: Family<One, Counter>,
    rule_bytes: Family<One, Counter>,
    /// The keys the rule families were last set for: another set clears
    /// them (a rule that left the policy leaves the metrics).
    rule_keys: Mutex<Vec<String>>,
}

/// Rules with a series of their own at most; the rest are summed into
/// one `rule="(other)"` series, so a policy of 10,000 rules cannot make
/// 20,000 series.
pub const RULE_SERIES_CAP: usize = 500;
pub const RULE_OTHER: &str = "(other)";

/// Heartbeat round trips: 50 µs to about 1.6 s, doubling.
fn rtt_histogram() -> Histogram {
    Histogram::new(exponential_buckets(50e-6, 2.0, 16))
}

/// Failover phases: 100 µs to about 6.5 s, doubling (a gratuitous-ARP
/// phase with repeats takes seconds, an address add well under a millisecond).
fn phase_histogram() -> Histogram {
    Histogram::new(exponential_buckets(100e-6, 2.0, 17))
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Registers every series under the `hafw_` prefix.
    pub fn new() -> Metrics {
        let mut r = Registry::with_prefix("hafw");
        let state = Family::<One, U64Gauge>::default();
        // hafw_state{state}: 1 for the node's current HA state, 0 for the others.
        r.register(
            "state",
            "1 for the node's current HA state (initial, passive, active, suspended, non-functional), 0 for the others",
            state.clone(),
        );
        for s in STATES {
            state.get_or_create(&[("state", s.to_string())]).set(0);
        }
        let term = U64Gauge::default();
        // hafw_term
        r.register(
            "term",
            "The node's HA term: raised by each promotion; the higher term wins a conflict",
            term.clone(),
        );
        let transitions = Family::<Three, Counter>::default();
        // hafw_transitions_total{from,to,cause}
        r.register(
            "transitions",
            "HA state transitions, by from-state, to-state and kind of cause",
            transitions.clone(),
        );
        let heartbeat_rtt =
            Family::<One, Histogram, fn() -> Histogram>::new_with_constructor(rtt_histogram);
        // hafw_heartbeat_rtt_seconds{path}
        r.register_with_unit(
            "heartbeat_rtt",
            "Heartbeat round-trip time per heartbeat path",
            Unit::Seconds,
            heartbeat_rtt.clone(),
        );
        let heartbeat_misses = Family::<One, Counter>::default();
        // hafw_heartbeat_misses_total{path}
        r.register(
            "heartbeat_misses",
            "Heartbeats from the peer that never arrived, per heartbeat path",
            heartbeat_misses.clone(),
        );
        let path_up = Family::<One, U64Gauge>::default();
        // hafw_heartbeat_path_up{path}
        r.register(
            "heartbeat_path_up",
            "1 while the peer is heard on this heartbeat path, 0 when it is silent",
            path_up.clone(),
        );
        let phase =
            Family::<One, Histogram, fn() -> Histogram>::new_with_constructor(phase_histogram);
        // hafw_failover_phase_seconds{phase}
        r.register_with_unit(
            "failover_phase",
            "Duration of each promotion or demotion phase (sessions, addresses, garp, forwarding, ...)",
            Unit::Seconds,
            phase.clone(),
        );
        let garp_sent = Counter::default();
        // hafw_garp_sent_total
        r.register(
            "garp_sent",
            "Gratuitous ARP packets sent for the floating addresses",
            garp_sent.clone(),
        );
        let ha_accepted = Counter::default();
        // hafw_ha_messages_accepted_total
        r.register(
            "ha_messages_accepted",
            "HA messages (heartbeats and HA2 frames) that passed authentication and the replay window",
            ha_accepted.clone(),
        );
        let ha_dropped = Family::<One, Counter>::default();
        // hafw_ha_messages_dropped_total{reason}
        r.register(
            "ha_messages_dropped",
            "HA messages refused, by reason (auth_failed = forged or wrong key, replayed, stale_epoch, ...)",
            ha_dropped.clone(),
        );
        let sessions = U64Gauge::default();
        // hafw_sessions
        r.register(
            "sessions",
            "Sessions known to the session sync (local conntrack on the active, the replica on the passive)",
            sessions.clone(),
        );
        let sessions_synced = U64Gauge::default();
        // hafw_sessions_synced
        r.register(
            "sessions_synced",
            "Sessions acknowledged by the peer's replica",
            sessions_synced.clone(),
        );
        let sync_lag = F64Gauge::default();
        // hafw_session_sync_lag_seconds
        r.register_with_unit(
            "session_sync_lag",
            "Age of the oldest session update not yet acknowledged by the peer (0 when in sync)",
            Unit::Seconds,
            sync_lag.clone(),
        );
        let resyncs = Counter::default();
        // hafw_session_resyncs_total
        r.register(
            "session_resyncs",
            "Bulk session resynchronisations (peer joined, or the incremental stream fell behind)",
            resyncs.clone(),
        );
        let config_version = U64Gauge::default();
        // hafw_config_version
        r.register(
            "config_version",
            "Version of the configuration this node runs",
            config_version.clone(),
        );
        let peer_config_version = U64Gauge::default();
        // hafw_peer_config_version
        r.register(
            "peer_config_version",
            "Version of the configuration the peer reports in its heartbeats",
            peer_config_version.clone(),
        );
        let alarm = Family::<One, U64Gauge>::default();
        // hafw_alarm{kind}
        r.register(
            "alarm",
            "1 while an alarm of this kind is on (no_standby: active with no peer that could take over)",
            alarm.clone(),
        );
        for k in super::alarms::KINDS {
            alarm.get_or_create(&[("kind", k.to_string())]).set(0);
        }
        let handover_ready = U64Gauge::default();
        // hafw_handover_ready
        r.register(
            "handover_ready",
            "1 when a handover now would keep every session (active: to the peer; passive: to this node)",
            handover_ready.clone(),
        );
        let api_refused = Family::<One, Counter>::default();
        // hafw_api_refused_total{reason}
        r.register(
            "api_refused",
            "Status API connections or requests refused, by reason (busy, evicted, head_timeout, ...)",
            api_refused.clone(),
        );
        let control_refused = Family::<One, Counter>::default();
        // hafw_control_refused_total{reason}
        r.register(
            "control_refused",
            "Control socket clients refused, by reason (peer_uid, busy, timeout, too_long, unknown)",
            control_refused.clone(),
        );
        let audit_dropped = Counter::default();
        // hafw_audit_dropped_total
        r.register(
            "audit_dropped",
            "Audit records dropped because the audit writer was behind (the HA path never waits for it)",
            audit_dropped.clone(),
        );
        let traffic_records = Family::<One, Counter>::default();
        // hafw_traffic_log_records_total{kind}
        r.register(
            "traffic_log_records",
            "Traffic log records written, by kind (deny, accept, drop, reject, session-end, nat-start, nat-end, suppressed)",
            traffic_records.clone(),
        );
        let traffic_suppressed = Counter::default();
        // hafw_traffic_log_suppressed_total
        r.register(
            "traffic_log_suppressed",
            "Traffic log records not written because [policy.logging] rate was reached",
            traffic_suppressed.clone(),
        );
        let traffic_lost = Family::<One, Counter>::default();
        // hafw_traffic_log_lost_total{reason}
        r.register(
            "traffic_log_lost",
            "Traffic log records lost: kernel overruns (nflog_overrun, nflog_gap, conntrack_overrun), malformed messages, a full queue, the syslog collector",
            traffic_lost.clone(),
        );
        for reason in crate::ops::traffic::LOST_REASONS {
            let _ = traffic_lost.get_or_create(&[("reason", reason.to_string())]);
        }
        let hook_runs = Family::<One, Counter>::default();
        // hafw_hook_runs_total{result}
        r.register(
            "hook_runs",
            "HA event hook runs by result (ok, failed, timeout; dropped counts events the full hook queue refused)",
            hook_runs.clone(),
        );
        for res in super::hooks::RESULTS {
            let _ = hook_runs.get_or_create(&[("result", res.to_string())]);
        }
        let peer_alive = U64Gauge::default();
        // hafw_peer_alive
        r.register(
            "peer_alive",
            "1 while the peer is heard on at least one heartbeat path, 0 when every path is silent or it was never heard",
            peer_alive.clone(),
        );
        let rule_packets = Family::<One, Counter>::default();
        r.register(
            "rule_packets",
            "Packets counted by each rule of the policy on this node (label: the rule's comment in the ruleset, `rule NAME`, `default deny A -> B`, `dnat NAME`), carried across ruleset replacements and restarts; rules past the first 500 summed as (other)",
            rule_packets.clone(),
        );
        let rule_bytes = Family::<One, Counter>::default();
        r.register(
            "rule_bytes",
            "Bytes counted by each rule of the policy on this node, as hafw_rule_packets_total",
            rule_bytes.clone(),
        );
        Metrics {
            inner: Arc::new(Inner {
                registry: r,
                current_state: Mutex::new(None),
                state,
                term,
                transitions,
                heartbeat_rtt,
                heartbeat_misses,
                path_up,
                phase,
                garp_sent,
                ha_accepted,
                ha_dropped,
                sessions,
                sessions_synced,
                sync_lag,
                resyncs,
                config_version,
                peer_config_version,
                alarm,
                handover_ready,
                api_refused,
                control_refused,
                audit_dropped,
                hook_runs,
                traffic_records,
                traffic_suppressed,
                traffic_lost,
                peer_alive,
                rule_packets,
                rule_bytes,
                rule_keys: Mutex::new(Vec::new()),
            }),
        }
    }

    /// `hafw_state{state}`: `state` becomes 1, the previous state 0.
    pub fn state(&self, state: &str) {
        // One lock so that two reports racing never leave two states at 1.
        let mut current = match self.inner.current_state.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(prev) = current.take() {
            self.inner.state.get_or_create(&[("state", prev)]).set(0);
        }
        self.inner
            .state
            .get_or_create(&[("state", state.to_string())])
            .set(1);
        *current = Some(state.to_string());
    }

    /// `hafw_term`.
    pub fn term(&self, term: u64) {
        self.inner.term.set(term);
    }

    /// `hafw_transitions_total{from,to,cause}` + 1. `cause_kind` is a short
    /// kind such as `peer_lost` ([`cause_kind`] derives it from a cause).
    pub fn transition(&self, from: &str, to: &str, cause_kind: &str) {
        self.inner
            .transitions
            .get_or_create(&[
                ("from", from.to_string()),
                ("to", to.to_string()),
                ("cause", cause_kind.to_string()),
            ])
            .inc();
    }

    /// `hafw_heartbeat_rtt_seconds{path}`: one observed round trip. A
    /// negative or non-finite value (a clock bug) is not recorded.
    pub fn heartbeat_rtt(&self, path: &str, secs: f64) {
        if secs.is_finite() && secs >= 0.0 {
            self.inner
                .heartbeat_rtt
                .get_or_create(&[("path", path.to_string())])
                .observe(secs);
        }
    }

    /// `hafw_heartbeat_misses_total{path}` + 1.
    pub fn heartbeat_miss(&self, path: &str) {
        self.inner
            .heartbeat_misses
            .get_or_create(&[("path", path.to_string())])
            .inc();
    }

    /// `hafw_heartbeat_misses_total{path}` raised to a running total (the
    /// `lost` count of `hafw status`), for a caller that samples totals
    /// instead of reporting each miss. Use this or [`Self::heartbeat_miss`]
    /// for a path, not both.
    pub fn heartbeat_misses_total(&self, path: &str, total: u64) {
        let c = self
            .inner
            .heartbeat_misses
            .get_or_create_owned(&[("path", path.to_string())]);
        raise(&c, total);
    }

    /// `hafw_heartbeat_path_up{path}`.
    pub fn path_up(&self, path: &str, up: bool) {
        self.inner
            .path_up
            .get_or_create(&[("path", path.to_string())])
            .set(u64::from(up));
    }

    /// `hafw_failover_phase_seconds{phase}`: one phase of a promotion or
    /// demotion took `secs`.
    pub fn phase(&self, phase: &str, secs: f64) {
        if secs.is_finite() && secs >= 0.0 {
            self.inner
                .phase
                .get_or_create(&[("phase", phase.to_string())])
                .observe(secs);
        }
    }

    /// `hafw_garp_sent_total` + `n` (the packets of one announcement burst).
    pub fn garp_sent(&self, n: u64) {
        self.inner.garp_sent.inc_by(n);
    }

    /// `hafw_ha_messages_dropped_total{reason}` set to the opener's running
    /// total for `reason`; idempotent.
    pub fn ha_dropped(&self, reason: &str, n_total: u64) {
        let c = self
            .inner
            .ha_dropped
            .get_or_create_owned(&[("reason", reason.to_string())]);
        raise(&c, n_total);
    }

    /// All of the opener's counters at once, as `Counters::iter()` yields
    /// them: `accepted` goes to `hafw_ha_messages_accepted_total`, every
    /// other name is a drop reason.
    pub fn ha_counters<'a>(&self, counters: impl IntoIterator<Item = (&'a str, u64)>) {
        for (name, total) in counters {
            if name == "accepted" {
                raise(&self.inner.ha_accepted, total);
            } else {
                self.ha_dropped(name, total);
            }
        }
    }

    /// `hafw_sessions` and `hafw_sessions_synced`.
    pub fn sessions(&self, known: u64, synced: u64) {
        self.inner.sessions.set(known);
        self.inner.sessions_synced.set(synced);
    }

    /// `hafw_session_sync_lag_seconds`. A negative or non-finite value is
    /// not recorded.
    pub fn sync_lag(&self, secs: f64) {
        if secs.is_finite() && secs >= 0.0 {
            self.inner.sync_lag.set(secs);
        }
    }

    /// `hafw_session_resyncs_total` set to a running total; idempotent.
    pub fn resyncs_total(&self, n: u64) {
        raise(&self.inner.resyncs, n);
    }

    /// `hafw_config_version`.
    pub fn config_version(&self, v: u64) {
        self.inner.config_version.set(v);
    }

    /// `hafw_peer_config_version`.
    pub fn peer_config_version(&self, v: u64) {
        self.inner.peer_config_version.set(v);
    }

    /// `hafw_alarm{kind}`: 1 while on. `kind` is one of
    /// [`super::alarms::KINDS`].
    pub fn alarm(&self, kind: &str, on: bool) {
        self.inner
            .alarm
            .get_or_create(&[("kind", kind.to_string())])
            .set(u64::from(on));
    }

    /// `hafw_handover_ready`.
    pub fn handover_ready(&self, ready: bool) {
        self.inner.handover_ready.set(u64::from(ready));
    }

    /// `hafw_api_refused_total{reason}` + 1.
    pub fn api_refused(&self, reason: &str) {
        self.inner
            .api_refused
            .get_or_create(&[("reason", reason.to_string())])
            .inc();
    }

    /// `hafw_control_refused_total{reason}` raised to the control server's
    /// running total; idempotent.
    pub fn control_refused(&self, reason: &str, total: u64) {
        let c = self
            .inner
            .control_refused
            .get_or_create_owned(&[("reason", reason.to_string())]);
        raise(&c, total);
    }

    /// `hafw_audit_dropped_total` raised to the audit log's running total;
    /// idempotent.
    pub fn audit_dropped_total(&self, total: u64) {
        raise(&self.inner.audit_dropped, total);
    }

    /// `hafw_rule_packets_total{rule}` and `hafw_rule_bytes_total{rule}`
    /// raised to this node's totals (policy order; past
    /// [`RULE_SERIES_CAP`] summed as [`RULE_OTHER`]). A new set of rules
    /// clears the families first.
    pub fn rule_hits(&self, totals: &[(String, crate::hits::parse::Count)]) {
        let keys: Vec<String> = totals.iter().map(|(k, _)| k.clone()).collect();
        if let Ok(mut last) = self.inner.rule_keys.lock() {
            if *last != keys {
                self.inner.rule_packets.clear();
                self.inner.rule_bytes.clear();
                *last = keys;
            }
        }
        let mut other = crate::hits::parse::Count::default();
        for (i, (key, c)) in totals.iter().enumerate() {
            if i >= RULE_SERIES_CAP {
                other = other.plus(*c);
                continue;
            }
            let label = [("rule", key.clone())];
            raise(
                &self.inner.rule_packets.get_or_create_owned(&label),
                c.packets,
            );
            raise(&self.inner.rule_bytes.get_or_create_owned(&label), c.bytes);
        }
        if totals.len() > RULE_SERIES_CAP {
            let label = [("rule", RULE_OTHER.to_string())];
            raise(
                &self.inner.rule_packets.get_or_create_owned(&label),
                other.packets,
            );
            raise(
                &self.inner.rule_bytes.get_or_create_owned(&label),
                other.bytes,
            );
        }
    }

    /// `hafw_peer_alive`.
    pub fn peer_alive(&self, alive: bool) {
        self.inner.peer_alive.set(u64::from(alive));
    }

    /// `hafw_hook_runs_total{result}` + 1; `result` is one of
    /// [`super::hooks::RESULTS`].
    /// `hafw_traffic_log_records_total{kind}` + 1; `kind` is a record kind.
    pub fn traffic_record(&self, kind: &'static str) {
        self.inner
            .traffic_records
            .get_or_create(&[("kind", kind.to_string())])
            .inc();
    }

    /// `hafw_traffic_log_suppressed_total` + `n`.
    pub fn traffic_suppressed(&self, n: u64) {
        self.inner.traffic_suppressed.inc_by(n);
    }

    /// `hafw_traffic_log_lost_total{reason}` + `n`; `reason` is one of
    /// `ops::traffic::LOST_REASONS`.
    pub fn traffic_lost(&self, reason: &'static str, n: u64) {
        self.inner
            .traffic_lost
            .get_or_create(&[("reason", reason.to_string())])
            .inc_by(n);
    }

    pub fn hook_run(&self, result: &str) {
        self.inner
            .hook_runs
            .get_or_create(&[("result", result.to_string())])
            .inc();
    }

    /// Every series in the OpenMetrics text format (ending in `# EOF`),
    /// served with [`CONTENT_TYPE`].
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail and every metric here encodes;
        // an error would be a bug in prometheus-client, so log it loudly
        // rather than fail the scrape.
        if let Err(e) = encode(&mut out, &self.inner.registry) {
            tracing::error!(error = %e, "encoding the metrics failed");
        }
        out
    }
}

/// Raises a counter to `total`; a total lower than the count (a source
/// that restarted) leaves it unchanged, as a counter must never go down.
fn raise(c: &Counter, total: u64) {
    c.inner().fetch_max(total, Ordering::Relaxed);
}

/// The kind of a cause for the `cause` label: its enum variant name in
/// snake case (`PeerLost { .. }` → `peer_lost`). Derived from `Debug` so a
/// new variant in `hafw_ha::node::Cause` needs no change here.
pub fn cause_kind(cause: &impl Debug) -> String {
    let text = format!("{cause:?}");
    let name: String = text
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    if out.is_empty() {
        "unknown".into()
    } else {
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn rule_series_are_capped_with_one_other_and_follow_the_policy() {
        use crate::hits::parse::Count;
        let m = Metrics::new();
        let c = |packets| Count {
            packets,
            bytes: packets * 10,
        };
        let totals: Vec<(String, Count)> = (0..RULE_SERIES_CAP + 20)
            .map(|i| (format!("rule r{i}"), c(1)))
            .collect();
        m.rule_hits(&totals);
        let text = m.encode();
        let series = |text: &str| {
            text.lines()
                .filter(|l| l.starts_with("hafw_rule_packets_total{"))
                .count()
        };
        assert_eq!(series(&text), RULE_SERIES_CAP + 1);
        assert!(
            text.contains("hafw_rule_packets_total{rule=\"(other)\"} 20"),
            "{text}"
        );
        assert!(text.contains("hafw_rule_bytes_total{rule=\"rule r0\"} 10"));
        // Another policy: the old rules' series go.
        m.rule_hits(&[("rule x".into(), c(3))]);
        let text = m.encode();
        assert_eq!(series(&text), 1);
        assert!(text.contains("hafw_rule_packets_total{rule=\"rule x\"} 3"));
    }

    use super::*;

    #[derive(Debug)]
    #[allow(dead_code)]
    enum Cause {
        PeerLost { silent_for: Option<u64> },
        MonitorRecovered,
        TakeoverRequested(u32),
    }

    #[test]
    fn cause_kind_is_the_variant_in_snake_case() {
        assert_eq!(
            cause_kind(&Cause::PeerLost {
                silent_for: Some(3)
            }),
            "peer_lost"
        );
        assert_eq!(cause_kind(&Cause::MonitorRecovered), "monitor_recovered");
        assert_eq!(
            cause_kind(&Cause::TakeoverRequested(2)),
            "takeover_requested"
        );
        assert_eq!(cause_kind(&"quoted"), "unknown");
    }

    #[test]
    fn only_the_current_state_is_one() {
        let m = Metrics::new();
        let text = m.encode();
        for s in STATES {
            assert!(
                text.contains(&format!("hafw_state{{state=\"{s}\"}} 0\n")),
                "{text}"
            );
        }
        m.state("passive");
        m.state("active");
        let text = m.encode();
        assert!(text.contains("hafw_state{state=\"active\"} 1\n"), "{text}");
        assert!(text.contains("hafw_state{state=\"passive\"} 0\n"), "{text}");
        assert_eq!(text.matches("} 1\n").count(), 1, "{text}");
    }

    #[test]
    fn totals_are_idempotent_and_never_go_down() {
        let m = Metrics::new();
        m.ha_dropped("replayed", 5);
        m.ha_dropped("replayed", 5);
        m.ha_dropped("replayed", 3);
        m.resyncs_total(2);
        m.resyncs_total(2);
        let text = m.encode();
        assert!(
            text.contains("hafw_ha_messages_dropped_total{reason=\"replayed\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("hafw_session_resyncs_total 2\n"), "{text}");
        m.audit_dropped_total(4);
        m.audit_dropped_total(1);
        assert!(m.encode().contains("hafw_audit_dropped_total 4\n"));
    }
}
