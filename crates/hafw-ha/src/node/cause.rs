//! Why a node changed state, as a value with a human-readable Display: it
//! travels in every [`Action`](super::Action) and in the status history.

use std::fmt;
use std::time::Duration;

use crate::msg::State;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cause {
    /// Initial → Active: nobody answered during the start-up listen.
    ColdStart { listened: Duration },
    /// Initial → Passive: the peer answered.
    PeerHeard { node_id: u32, state: State },
    /// Passive → Active: every path silent (`None`: never heard at all).
    PeerLost { silent_for: Option<Duration> },
    /// Passive → Active: both passive and this node wins the election.
    ElectionWon { peer: u32 },
    /// Passive → Active: the peer is heard but will not serve.
    PeerCannotServe {
        node_id: u32,
        state: State,
        healthy: bool,
    },
    /// Passive → Active at once: the active asked (planned handover).
    TakeoverRequested { node_id: u32 },
    /// Passive → Active: preemption held for `held`.
    Preempting { peer: u32, held: Duration },
    /// Active → Passive: the peer preempted this node.
    Preempted { node_id: u32 },
    /// Active → Passive: the peer became active while connected.
    PeerTookOver { node_id: u32, term: u64 },
    /// Active → Passive: both were active; the peer's term is higher.
    PartitionHealed { node_id: u32, term: u64 },
    /// Active → Passive: both were active with equal terms; the peer wins
    /// the election.
    PartitionHealedTie { node_id: u32, term: u64 },
    /// → Suspended on `hafw suspend`.
    Suspend { outcome: Handover },
    /// → NonFunctional: a monitor fails.
    MonitorFailed { reason: String, outcome: Handover },
    /// NonFunctional → Passive.
    MonitorRecovered,
    /// Suspended → Passive on `hafw resume`.
    Resumed,
    /// → Suspended instead of a promotion.
    FlapLimit { transitions: u32, window: Duration },
}

/// How a planned handover ended, for the cause of stepping down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handover {
    /// The node was not active: nothing to hand over.
    NotActive,
    /// Active, but no healthy passive peer to hand over to.
    NoPeer,
    /// The peer vanished while the node waited for it.
    PeerLost,
    /// The peer reported itself active.
    Confirmed { node_id: u32, term: u64 },
    /// `takeover_wait` passed without the peer reporting active.
    Unconfirmed { waited: Duration },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::ColdStart { listened } => write!(
                f,
                "cold start: no peer heard on any path within {} ms",
                listened.as_millis()
            ),
            Cause::PeerHeard { node_id, state } => {
                write!(f, "peer node {node_id} heard ({})", state.as_str())
            }
            Cause::PeerLost {
                silent_for: Some(d),
            } => write!(f, "peer lost: no heartbeat on any path for {} ms", d.as_millis()),
            Cause::PeerLost { silent_for: None } => {
                f.write_str("peer lost: no heartbeat ever heard on any path")
            }
            Cause::ElectionWon { peer } => write!(
                f,
                "won the election against node {peer} (higher priority, or equal priority and lower node id)"
            ),
            Cause::PeerCannotServe {
                node_id,
                state,
                healthy,
            } => {
                let health = if *healthy { "" } else { " and unhealthy" };
                write!(
                    f,
                    "peer node {node_id} is {}{health} and cannot serve",
                    state.as_str()
                )
            }
            Cause::TakeoverRequested { node_id } => {
                write!(f, "planned takeover requested by node {node_id}")
            }
            Cause::Preempting { peer, held } => write!(
                f,
                "preempting node {peer}: higher priority for {} ms",
                held.as_millis()
            ),
            Cause::Preempted { node_id } => write!(f, "preempted by higher priority node {node_id}"),
            Cause::PeerTookOver { node_id, term } => {
                write!(f, "peer node {node_id} became active with higher term {term}")
            }
            Cause::PartitionHealed { node_id, term } => write!(
                f,
                "partition healed: peer node {node_id} active with higher term {term}"
            ),
            Cause::PartitionHealedTie { node_id, term } => write!(
                f,
                "partition healed: peer node {node_id} active with equal term {term} wins the election"
            ),
            Cause::Suspend { outcome } => write!(f, "suspended by operator{outcome}"),
            Cause::MonitorFailed { reason, outcome } => write!(f, "monitor failed: {reason}{outcome}"),
            Cause::MonitorRecovered => f.write_str("monitors healthy again"),
            Cause::Resumed => f.write_str("resumed by operator"),
            Cause::FlapLimit {
                transitions,
                window,
            } => write!(f, "flap limit: {transitions} transitions in {}", span(*window)),
        }
    }
}

/// Written as a suffix of the cause it completes.
impl fmt::Display for Handover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Handover::NotActive => Ok(()),
            Handover::NoPeer => f.write_str("; no healthy peer to hand over to"),
            Handover::PeerLost => f.write_str("; peer lost during the handover"),
            Handover::Confirmed { node_id, term } => {
                write!(f, "; node {node_id} took over with term {term}")
            }
            Handover::Unconfirmed { waited } => write!(
                f,
                "; takeover not confirmed within {} ms, stepping down anyway",
                waited.as_millis()
            ),
        }
    }
}

fn span(d: Duration) -> String {
    if d.subsec_nanos() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn causes_read_as_sentences() {
        let ms = Duration::from_millis;
        let cases = [
            (
                Cause::PeerLost {
                    silent_for: Some(ms(1000)),
                },
                "peer lost: no heartbeat on any path for 1000 ms",
            ),
            (
                Cause::TakeoverRequested { node_id: 2 },
                "planned takeover requested by node 2",
            ),
            (
                Cause::PartitionHealed {
                    node_id: 2,
                    term: 7,
                },
                "partition healed: peer node 2 active with higher term 7",
            ),
            (
                Cause::Preempted { node_id: 1 },
                "preempted by higher priority node 1",
            ),
            (
                Cause::FlapLimit {
                    transitions: 6,
                    window: ms(60_000),
                },
                "flap limit: 6 transitions in 60 s",
            ),
            (
                Cause::MonitorFailed {
                    reason: "untrust link down".into(),
                    outcome: Handover::NotActive,
                },
                "monitor failed: untrust link down",
            ),
            (
                Cause::Suspend {
                    outcome: Handover::NoPeer,
                },
                "suspended by operator; no healthy peer to hand over to",
            ),
            (
                Cause::Suspend {
                    outcome: Handover::Confirmed {
                        node_id: 2,
                        term: 4,
                    },
                },
                "suspended by operator; node 2 took over with term 4",
            ),
        ];
        for (cause, want) in cases {
            assert_eq!(cause.to_string(), want);
        }
    }
}
