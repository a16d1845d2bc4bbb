//! The transitions. Each decision is level-triggered: after every input,
//! [`Node::settle`] looks at what the node knows now and moves until
//! nothing more applies. The reason is cited at each transition (style.md
//! rule 8); the rules themselves are in the module doc of [`super`].

use super::election::{keeps_active, wins, Candidate};
use super::{Action, Cause, Handover, HandoverReason, Node, PlannedHandover, Transition, HISTORY};
use crate::msg::{Heartbeat, State};
use crate::node::timers::Timer;
use crate::Time;

/// Initial → Passive → Active is the longest chain one input can cause.
const MAX_MOVES: usize = 4;

impl Node {
    pub(super) fn settle(&mut self, now: Time) {
        for _ in 0..MAX_MOVES {
            let moved = match self.state {
                State::Initial => self.decide_initial(now),
                State::Passive => self.decide_passive(now),
                State::Active => self.decide_active(now),
                State::NonFunctional => self.decide_non_functional(now),
                State::Suspended => false,
            };
            if !moved {
                return;
            }
        }
    }

    fn me(&self) -> Candidate {
        Candidate {
            priority: self.config.priority,
            node_id: self.config.node_id,
        }
    }

    fn decide_initial(&mut self, now: Time) -> bool {
        if !self.healthy {
            // A failing monitor must never take over (architecture.md, "ha").
            let cause = self.monitor_cause(Handover::NotActive);
            self.enter(now, State::NonFunctional, cause);
            return true;
        }
        if let Some(peer) = self.liveness.alive_peer() {
            // The peer answered: take a side by the Passive rules.
            let cause = Cause::PeerHeard {
                node_id: peer.node_id,
                state: peer.state,
            };
            self.enter(now, State::Passive, cause);
            return true;
        }
        if self.listened {
            // Nobody answered within one detection time: a cold start of one.
            let cause = Cause::ColdStart {
                listened: self.config.detection().max(self.config.initial_listen),
            };
            self.promote(now, cause);
            return true;
        }
        false
    }

    fn decide_passive(&mut self, now: Time) -> bool {
        if !self.healthy {
            let cause = self.monitor_cause(Handover::NotActive);
            self.enter(now, State::NonFunctional, cause);
            return true;
        }
        match self.promotion_cause(now) {
            Some(cause) => {
                let hold = now.saturating_add(self.config.promotion_hold);
                if self.timers.set_if_unarmed(Timer::PromotionHold, hold) <= now {
                    // Justified for the whole promotion hold.
                    self.promote(now, cause);
                    return true;
                }
            }
            None => self.timers.clear(Timer::PromotionHold),
        }
        match self.preempt_target() {
            Some(peer) => {
                let hold = now.saturating_add(self.config.preempt_hold);
                if self.timers.set_if_unarmed(Timer::PreemptHold, hold) <= now {
                    // Preemption possible for the whole preempt hold: promote
                    // with a higher term; the old active steps down on seeing it.
                    let held = self.config.preempt_hold;
                    self.promote(now, Cause::Preempting { peer, held });
                    return true;
                }
            }
            None => self.timers.clear(Timer::PreemptHold),
        }
        false
    }

    /// Why a passive should become active now, if it should.
    fn promotion_cause(&self, now: Time) -> Option<Cause> {
        let Some(peer) = self.liveness.alive_peer() else {
            // Every path silent: the peer is lost.
            return Some(Cause::PeerLost {
                silent_for: self.liveness.silent_for(now),
            });
        };
        match peer.state {
            State::Active => None,
            State::Passive | State::Initial if peer.healthy => {
                // Nobody active: the election decides who goes.
                wins(self.me(), candidate(peer))
                    .then_some(Cause::ElectionWon { peer: peer.node_id })
            }
            _ => Some(Cause::PeerCannotServe {
                node_id: peer.node_id,
                state: peer.state,
                healthy: peer.healthy,
            }),
        }
    }

    /// The active peer this node may preempt.
    fn preempt_target(&self) -> Option<u32> {
        let peer = self.liveness.alive_peer()?;
        let may = self.config.preempt
            && self.healthy
            && peer.state == State::Active
            && self.config.priority > peer.priority;
        may.then_some(peer.node_id)
    }

    fn decide_active(&mut self, now: Time) -> bool {
        if let Some(peer) = self.liveness.alive_peer().cloned() {
            if peer.state == State::Active
                && !keeps_active(self.active_term, self.me(), peer.term, candidate(&peer))
            {
                // Two actives: the higher term stays, equal terms go to the
                // election winner; the loser steps down at once.
                self.step_down(now, &peer);
                return true;
            }
            if peer.state == State::Active && self.reannounced_for != Some(peer.term) {
                // Two actives and this node stays: the peer announced the
                // floating addresses too, and the cloud follows the latest
                // announcement (alicloud-havip.md), so announce again now
                // rather than leave the HAVIPs on the node that steps down.
                self.reannounced_for = Some(peer.term);
                self.actions.push_back(Action::Reannounce {
                    peer_term: peer.term,
                });
            }
        }
        let ready = self.peer_ready();
        let handover = self.handover.as_ref().map(|h| h.why.clone());
        match handover {
            None if !self.healthy && ready => {
                // A failing monitor with a healthy passive peer: hand over.
                let reason = self.monitor_reason.clone();
                self.start_handover(now, HandoverReason::Monitor { reason });
            }
            Some(HandoverReason::Monitor { .. }) if self.healthy => {
                // Monitors recovered: nothing to hand over any more.
                self.cancel_handover();
            }
            Some(HandoverReason::Monitor { .. }) if !ready => {
                // Nobody to hand over to: forwarding badly beats not forwarding.
                self.cancel_handover();
            }
            Some(HandoverReason::Suspend) if !ready => {
                // The operator asked; with no peer left to confirm, suspend now.
                let outcome = if self.liveness.alive() {
                    Handover::NoPeer
                } else {
                    Handover::PeerLost
                };
                self.enter(now, State::Suspended, Cause::Suspend { outcome });
                return true;
            }
            _ => {}
        }
        false
    }

    /// The peer is alive, passive and healthy: it can take over.
    fn peer_ready(&self) -> bool {
        self.liveness
            .alive_peer()
            .is_some_and(|p| p.state == State::Passive && p.healthy)
    }

    fn step_down(&mut self, now: Time, peer: &Heartbeat) {
        let confirmed = Handover::Confirmed {
            node_id: peer.node_id,
            term: peer.term,
        };
        let (to, cause) = match self.handover.as_ref().map(|h| h.why.clone()) {
            // The planned handover is confirmed: the peer forwards now.
            Some(HandoverReason::Suspend) => {
                (State::Suspended, Cause::Suspend { outcome: confirmed })
            }
            Some(HandoverReason::Monitor { reason }) => (
                State::NonFunctional,
                Cause::MonitorFailed {
                    reason,
                    outcome: confirmed,
                },
            ),
            None => {
                let cause = self.conflict_cause(peer);
                let to = if self.healthy {
                    State::Passive
                } else {
                    State::NonFunctional
                };
                (to, cause)
            }
        };
        self.enter(now, to, cause);
    }

    fn conflict_cause(&self, peer: &Heartbeat) -> Cause {
        let (node_id, term) = (peer.node_id, peer.term);
        let was_connected = self
            .liveness
            .peer
            .as_ref()
            .and_then(|p| p.previous_state)
            .is_some_and(|s| s != State::Active);
        if was_connected {
            // It was passive a heartbeat ago: a takeover, not a heal.
            if peer.preempt && peer.priority > self.config.priority {
                return Cause::Preempted { node_id };
            }
            return Cause::PeerTookOver { node_id, term };
        }
        if term > self.active_term {
            Cause::PartitionHealed { node_id, term }
        } else {
            Cause::PartitionHealedTie { node_id, term }
        }
    }

    fn decide_non_functional(&mut self, now: Time) -> bool {
        if self.healthy {
            self.enter(now, State::Passive, Cause::MonitorRecovered);
            return true;
        }
        false
    }

    pub(super) fn on_takeover(&mut self, now: Time, node_id: u32, term: u64) {
        if node_id == self.config.node_id {
            self.counters.own_id += 1;
            return;
        }
        if term < self.max_term {
            // From an activity already superseded (a late copy).
            self.counters.stale_takeovers += 1;
            return;
        }
        self.max_term = term;
        if self.state != State::Passive || !self.healthy {
            // Suspended and non-functional nodes never take over; an Initial
            // node has not synced yet. The active times out and steps down.
            self.counters.refused_takeovers += 1;
            return;
        }
        // Planned handover: promote at once, skipping the promotion hold.
        // The peer stays active until it sees us active: that is the
        // handover, not a conflict to announce again for.
        self.reannounced_for = Some(term);
        self.promote(now, Cause::TakeoverRequested { node_id });
    }

    pub(super) fn suspend(&mut self, now: Time) {
        match self.state {
            State::Suspended => {}
            State::Active if self.peer_ready() => {
                self.start_handover(now, HandoverReason::Suspend);
            }
            State::Active => {
                // The operator asked: suspend even with nobody to take over.
                let cause = Cause::Suspend {
                    outcome: Handover::NoPeer,
                };
                self.enter(now, State::Suspended, cause);
            }
            _ => {
                let cause = Cause::Suspend {
                    outcome: Handover::NotActive,
                };
                self.enter(now, State::Suspended, cause);
            }
        }
    }

    pub(super) fn resume(&mut self, now: Time) {
        match self.state {
            State::Suspended => {
                // The operator looked: forget the flapping that suspended us.
                self.flaps.forget();
                if self.healthy {
                    self.enter(now, State::Passive, Cause::Resumed);
                } else {
                    let cause = self.monitor_cause(Handover::NotActive);
                    self.enter(now, State::NonFunctional, cause);
                }
            }
            State::Active
                if self
                    .handover
                    .as_ref()
                    .is_some_and(|h| h.why == HandoverReason::Suspend) =>
            {
                // Resumed before the peer confirmed: keep forwarding.
                self.cancel_handover();
            }
            _ => {}
        }
    }

    fn start_handover(&mut self, now: Time, why: HandoverReason) {
        let since = self.handover.as_ref().map_or(now, |h| h.since);
        self.handover = Some(PlannedHandover { why, since });
        self.send_takeovers();
        let wait = since.saturating_add(self.config.takeover_wait);
        self.timers.set(Timer::TakeoverWait, wait);
    }

    fn cancel_handover(&mut self) {
        self.handover = None;
        self.timers.clear(Timer::TakeoverWait);
    }

    pub(super) fn on_takeover_wait_over(&mut self, now: Time) {
        let Some(h) = self.handover.take() else {
            return;
        };
        let outcome = Handover::Unconfirmed {
            waited: self.config.takeover_wait,
        };
        match h.why {
            // The operator asked: step down; the peer promotes after its hold.
            HandoverReason::Suspend => {
                self.enter(now, State::Suspended, Cause::Suspend { outcome })
            }
            HandoverReason::Monitor { reason } if !self.healthy && self.peer_ready() => {
                // The peer is still ready: it promotes once it sees us
                // non-functional, after its promotion hold.
                self.enter(
                    now,
                    State::NonFunctional,
                    Cause::MonitorFailed { reason, outcome },
                );
            }
            // Recovered, or nobody to take over: keep forwarding.
            HandoverReason::Monitor { .. } => {}
        }
    }

    fn monitor_cause(&self, outcome: Handover) -> Cause {
        Cause::MonitorFailed {
            reason: self.monitor_reason.clone(),
            outcome,
        }
    }

    /// Every promotion goes through here: the flap limit, then a term above
    /// every term known. The flap limit stops two working nodes trading the
    /// addresses; with no peer that could serve, suspending would turn
    /// flapping into an outage, so the node promotes and raises an alarm.
    fn promote(&mut self, now: Time, cause: Cause) {
        self.flap_override = None;
        if let Err(transitions) = self.flaps.admit(now) {
            let peer_can_serve = self
                .liveness
                .alive_peer()
                .is_some_and(|p| p.healthy && matches!(p.state, State::Passive | State::Active));
            if !peer_can_serve {
                self.flap_override = Some(transitions);
                self.max_term = self.max_term.saturating_add(1);
                self.active_term = self.max_term;
                self.enter(now, State::Active, cause);
                return;
            }
            let window = self.config.flap_limit.window;
            self.enter(
                now,
                State::Suspended,
                Cause::FlapLimit {
                    transitions,
                    window,
                },
            );
            return;
        }
        self.max_term = self.max_term.saturating_add(1);
        self.active_term = self.max_term;
        self.enter(now, State::Active, cause);
    }

    /// Every state change goes through here: history, the daemon's action,
    /// and a heartbeat round at once so the peer learns without waiting an
    /// interval.
    fn enter(&mut self, now: Time, to: State, cause: Cause) {
        let from = self.state;
        self.state = to;
        self.handover = None;
        for t in [
            Timer::PromotionHold,
            Timer::PreemptHold,
            Timer::TakeoverWait,
            Timer::InitialListen,
        ] {
            self.timers.clear(t);
        }
        if self.history.len() == HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(Transition {
            at: now,
            from,
            to,
            term: self.advertised_term(),
            cause: cause.clone(),
        });
        self.actions.push_back(match to {
            State::Active => Action::BecomeActive {
                term: self.active_term,
                cause,
            },
            State::Passive | State::Initial => Action::BecomePassive { cause },
            State::Suspended => Action::BecomeSuspended { cause },
            State::NonFunctional => Action::BecomeNonFunctional { cause },
        });
        self.complete_shutdown_unless_active();
        self.send_heartbeats(now);
    }
}

fn candidate(hb: &Heartbeat) -> Candidate {
    Candidate {
        priority: hb.priority,
        node_id: hb.node_id,
    }
}
