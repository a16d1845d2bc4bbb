//! The HA state machine: which of the two nodes holds the floating
//! addresses. A pure core (architecture.md, "The firewall node: pure cores,
//! thin drivers"): inputs are [`Input`]s given to [`Node::handle`] with `now`; outputs are
//! drained with [`Node::poll_transmit`], [`Node::poll_action`] and
//! [`Node::poll_timeout`]. It never reads a clock, sleeps or touches a socket.
//!
//! # Semantics
//!
//! **Liveness** ([`liveness`]): the peer is alive iff some path delivered a
//! heartbeat within the detection time `interval × miss_count`. It is lost
//! only when every path is silent; one silent path while another works is a
//! `PathDown` alarm, never a failover.
//!
//! **Election**: higher priority wins, a tie goes to the lower node id.
//!
//! **Terms**: every heartbeat carries a term: an active's promotion term,
//! otherwise the highest term the node knows. A promotion takes
//! `highest known + 1`. Two actives (a healed partition): the higher term
//! stays, equal terms go to the election winner, the loser steps down at
//! once. Both sides reach opposite verdicts, so exactly one stays.
//!
//! **States** (each decision is level-triggered: it is re-evaluated after
//! every input, from what the node knows now):
//! - *Initial*: send heartbeats and listen for one detection time. Peer
//!   heard → Passive (and the Passive rules decide). Nobody heard → Active
//!   (the listen was the hold: a cold start of one).
//! - *Passive*: becomes Active after `promotion_hold` of continuous
//!   justification: the peer is lost; or the peer is passive/initial and
//!   healthy and this node wins the election; or the peer is suspended,
//!   non-functional or unhealthy. A `Takeover` from the active (term not
//!   older than known) promotes at once, skipping the hold.
//!   Preemption (off by default): when on, the node is healthy and has a
//!   strictly higher priority than the active peer, and that holds for
//!   `preempt_hold`, the node promotes with a higher term; the old active
//!   sees the higher term and steps down at once (the two-actives rule),
//!   so the overlap is one heartbeat's trip, as in a planned handover.
//!   Equal priorities never preempt: a tie-break is no preference.
//! - *Active*: steps down when the two-actives rule says so.
//!   Suspend, or a failing monitor, with a healthy passive peer: a planned
//!   handover. Send `Takeover` on every path (again each interval), keep
//!   the addresses until the peer's heartbeat says Active, then step down
//!   (Suspended / NonFunctional), so the only outage is the cloud's move.
//!   After `takeover_wait` without confirmation it steps down anyway (the
//!   peer then promotes after its promotion hold); a failing monitor whose
//!   peer is no longer ready stays Active instead.
//!   Suspend without a healthy peer: Suspended at once (the operator
//!   asked). A failing monitor without a healthy peer: stays Active with an
//!   alarm (forwarding badly beats not forwarding); the handover starts as
//!   soon as a healthy passive peer appears.
//! - *Suspended*: never takes over; heartbeats say Suspended. Resume →
//!   Passive (NonFunctional if a monitor fails), and the Passive rules run
//!   the election (preemption may apply). Resume also forgets the flap
//!   history: the operator looked.
//! - *NonFunctional*: a monitor fails; never takes over. Monitors healthy
//!   again → Passive.
//! - **Flap limit**: a promotion that would make more than `transitions`
//!   promotions within `window` suspends the node instead.
//! - **Shutdown** ([`Command::Shutdown`], the daemon's SIGTERM): suspend by
//!   the rules above (a planned handover when active), then
//!   [`Action::ShutdownComplete`] once no longer active, or at
//!   `takeover_wait + 2 × heartbeat_interval` at the latest, so a stopping
//!   daemon never waits on its peer for ever.
//!
//! **Robustness**: no message content panics. Messages with our own node
//! id, or on a path index we don't have, are ignored and counted; duplicated
//! and reordered heartbeats are recognised by their round number.

mod action;
mod cause;
mod config;
mod decide;
mod election;
mod input;
mod liveness;
pub mod record;
mod shutdown;
mod status;
mod timers;

use std::collections::VecDeque;

pub use action::{Action, Command};
pub use cause::{Cause, Handover};
pub use config::{defaults, Config, ConfigError, FlapLimit};
pub use input::Input;
pub use status::{Alarm, Counters, PathStatus, PeerStatus, Status, Transition};

use crate::msg::{Heartbeat, Message, State};
use crate::Time;
use election::FlapWindow;
use liveness::{nanos, Liveness};
use shutdown::Shutdown;
use timers::{Timer, TimerTable};

/// How many transitions the status keeps.
const HISTORY: usize = 16;
/// Outgoing messages kept for a daemon that doesn't drain them, per path.
const TRANSMIT_BACKLOG_PER_PATH: usize = 64;

/// One node of the HA pair.
#[derive(Debug, Clone)]
pub struct Node {
    config: Config,
    state: State,
    /// The term of the current promotion (meaningful while Active).
    active_term: u64,
    /// The highest term seen anywhere, own promotions included.
    max_term: u64,
    healthy: bool,
    monitor_reason: String,
    config_version: u64,
    config_hash: [u8; 32],
    liveness: Liveness,
    timers: TimerTable,
    /// The start-up listen is over (Initial only).
    listened: bool,
    handover: Option<PlannedHandover>,
    /// The peer term of the last dual-active this node won and re-announced
    /// for: one re-announcement per conflict, not one per heartbeat.
    reannounced_for: Option<u64>,
    flaps: FlapWindow,
    /// The promotion count when the flap limit was last passed because no
    /// peer could serve (an alarm while active).
    flap_override: Option<u32>,
    tx_seq: u64,
    transmits: VecDeque<(usize, Message)>,
    actions: VecDeque<Action>,
    history: VecDeque<Transition>,
    counters: Counters,
    shutdown: Shutdown,
}

/// An active handing over, and what it becomes once the peer is active.
#[derive(Debug, Clone)]
struct PlannedHandover {
    why: HandoverReason,
    since: Time,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HandoverReason {
    Suspend,
    Monitor { reason: String },
}

impl Node {
    /// A node in Initial, its first heartbeat round due at `now`.
    pub fn new(config: Config, now: Time) -> Result<Node, ConfigError> {
        config.validate()?;
        let mut node = Node {
            liveness: Liveness::new(config.paths, config.detection()).adaptive(
                config.heartbeat_interval,
                config.miss_count,
                config.max_detection,
            ),
            flaps: FlapWindow::new(config.flap_limit.transitions, config.flap_limit.window),
            flap_override: None,
            config,
            state: State::Initial,
            active_term: 0,
            max_term: 0,
            healthy: true,
            monitor_reason: String::new(),
            config_version: 0,
            config_hash: [0; 32],
            timers: TimerTable::default(),
            listened: false,
            handover: None,
            reannounced_for: None,
            tx_seq: 0,
            transmits: VecDeque::new(),
            actions: VecDeque::new(),
            history: VecDeque::new(),
            counters: Counters::default(),
            shutdown: Shutdown::Running,
        };
        node.timers.set(
            Timer::InitialListen,
            now.saturating_add(node.config.detection().max(node.config.initial_listen)),
        );
        // Due at once: the first round leaves on the daemon's first
        // `handle_timeout`, after it had the chance to set the config version.
        node.timers.set(Timer::HeartbeatSend, now);
        Ok(node)
    }

    /// The one entry for every input; the `handle_*` methods are its arms.
    pub fn handle(&mut self, now: Time, input: Input) {
        match input {
            Input::Message { path, msg } => self.handle_message(now, path, &msg),
            Input::Timeout => self.handle_timeout(now),
            Input::Monitor { healthy, reason } => self.handle_monitor(now, healthy, &reason),
            Input::Command(cmd) => self.handle_command(now, cmd),
            Input::ConfigVersion { version, hash } => self.set_config_version(version, hash),
        }
    }

    /// A message the daemon decrypted, received on heartbeat `path`.
    pub fn handle_message(&mut self, now: Time, path: usize, msg: &Message) {
        if path >= self.config.paths {
            self.counters.bad_path += 1;
            return;
        }
        match msg {
            Message::Heartbeat(hb) => self.on_heartbeat(now, path, hb),
            Message::Takeover { node_id, term } => self.on_takeover(now, *node_id, *term),
        }
        self.settle(now);
    }

    /// The daemon's timer fired (or any time at or after [`Node::poll_timeout`]).
    pub fn handle_timeout(&mut self, now: Time) {
        if self.timers.take_expired(Timer::PeerDeadCheck, now) {
            let mut events = Vec::new();
            self.liveness.on_timeout(now, &mut events);
            self.report(events);
        }
        if let Some(at) = self.liveness.next_deadline() {
            self.timers.set(Timer::PeerDeadCheck, at);
        }
        if self.timers.take_expired(Timer::InitialListen, now) {
            self.listened = true;
        }
        if self.timers.take_expired(Timer::TakeoverWait, now) {
            self.on_takeover_wait_over(now);
        }
        // The hold timers are decided by `settle`, which promotes when they
        // have run out and the promotion is still justified.
        self.settle(now);
        if self.timers.take_expired(Timer::ShutdownDeadline, now) {
            // After `settle`: a step-down due now still counts as handed over.
            self.on_shutdown_deadline();
        }
        if self.timers.take_expired(Timer::HeartbeatSend, now) {
            // After `settle`, so the heartbeat carries the current state.
            self.send_heartbeats(now);
            if self.handover.is_some() {
                self.send_takeovers();
            }
            self.timers.set(
                Timer::HeartbeatSend,
                now.saturating_add(self.config.heartbeat_interval),
            );
        }
    }

    /// The link and path monitors' combined verdict; `reason` says what
    /// fails (shown in causes and alarms).
    pub fn handle_monitor(&mut self, now: Time, healthy: bool, reason: &str) {
        self.healthy = healthy;
        self.monitor_reason = reason.to_owned();
        self.settle(now);
    }

    pub fn handle_command(&mut self, now: Time, cmd: Command) {
        match cmd {
            Command::Suspend => self.suspend(now),
            Command::Resume => self.resume(now),
            Command::Shutdown => self.shutdown(now),
        }
        self.settle(now);
    }

    /// The shared policy's version and hash, advertised in heartbeats.
    pub fn set_config_version(&mut self, version: u64, hash: [u8; 32]) {
        self.config_version = version;
        self.config_hash = hash;
    }

    pub fn poll_transmit(&mut self) -> Option<(usize, Message)> {
        self.transmits.pop_front()
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    /// The actions not yet polled, oldest first: a recorder notes the ones
    /// an input added, before the daemon polls them with others.
    pub fn queued_actions(&self) -> impl ExactSizeIterator<Item = &Action> {
        self.actions.iter()
    }

    /// The earliest deadline in the timer table.
    pub fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    pub fn state(&self) -> State {
        self.state
    }

    pub fn status(&self) -> Status {
        let peer = self.liveness.peer.as_ref().map(|p| PeerStatus {
            node_id: p.hb.node_id,
            state: p.hb.state,
            term: p.hb.term,
            priority: p.hb.priority,
            preempt: p.hb.preempt,
            healthy: p.hb.healthy,
            config_version: p.hb.config_version,
            config_hash: p.hb.config_hash,
            alive: self.liveness.alive(),
            last_heard: self.liveness.last_heard,
        });
        let paths = self
            .liveness
            .paths
            .iter()
            .map(|p| PathStatus {
                up: p.up,
                last_heard: p.last_heard,
                rtt: p.rtt,
                detection: p.detection,
                sent: p.sent,
                received: p.received,
                lost: p.lost,
                stale: p.stale,
            })
            .collect();
        Status {
            node_id: self.config.node_id,
            state: self.state,
            term: self.advertised_term(),
            healthy: self.healthy,
            monitor_reason: self.monitor_reason.clone(),
            handing_over_since: self.handover.as_ref().map(|h| h.since),
            peer,
            paths,
            alarms: self.alarms(),
            transitions: self.history.iter().cloned().collect(),
            counters: self.counters.clone(),
        }
    }

    fn alarms(&self) -> Vec<Alarm> {
        let mut alarms: Vec<Alarm> = (self.liveness.paths.iter().enumerate())
            .filter(|(_, p)| p.alarmed)
            .map(|(path, _)| Alarm::PathDown { path })
            .collect();
        if self.state == State::Active && !self.healthy {
            alarms.push(Alarm::ActiveWhileUnhealthy {
                reason: self.monitor_reason.clone(),
            });
        }
        if let (State::Active, Some(transitions)) = (self.state, self.flap_override) {
            alarms.push(Alarm::FlapLimitOverridden { transitions });
        }
        if let Some(peer) = self.liveness.alive_peer() {
            if (peer.config_version, peer.config_hash) != (self.config_version, self.config_hash) {
                alarms.push(Alarm::ConfigMismatch {
                    ours: self.config_version,
                    peer: peer.config_version,
                });
            }
            if peer.preempt != self.config.preempt {
                alarms.push(Alarm::PreemptMismatch {
                    ours: self.config.preempt,
                    peer: peer.preempt,
                });
            }
        }
        alarms
    }

    fn on_heartbeat(&mut self, now: Time, path: usize, hb: &Heartbeat) {
        if hb.node_id == self.config.node_id {
            self.counters.own_id += 1;
            return;
        }
        let mut events = Vec::new();
        self.liveness.on_heartbeat(now, path, hb, &mut events);
        self.report(events);
        self.max_term = self.max_term.max(hb.term);
        if let Some(at) = self.liveness.next_deadline() {
            self.timers.set(Timer::PeerDeadCheck, at);
        }
    }

    fn report(&mut self, events: Vec<liveness::Event>) {
        for e in events {
            self.actions.push_back(match e {
                liveness::Event::PeerFound(node_id) => Action::PeerFound { node_id },
                liveness::Event::PeerLost => Action::PeerLost,
                liveness::Event::PathDown(path) => Action::PathDown { path },
                liveness::Event::PathUp(path) => Action::PathUp { path },
            });
        }
    }

    fn advertised_term(&self) -> u64 {
        if self.state == State::Active {
            self.active_term
        } else {
            self.max_term
        }
    }

    /// A round of heartbeats, one per path, all with the same `seq`.
    fn send_heartbeats(&mut self, now: Time) {
        self.tx_seq += 1;
        for path in 0..self.config.paths {
            let (echo_ns, echo_hold_ns) = self.liveness.echo(path, now);
            self.liveness.note_sent(path);
            let hb = Heartbeat {
                node_id: self.config.node_id,
                state: self.state,
                term: self.advertised_term(),
                priority: self.config.priority,
                preempt: self.config.preempt,
                healthy: self.healthy,
                seq: self.tx_seq,
                sent_ns: nanos(now),
                echo_ns,
                echo_hold_ns,
                config_version: self.config_version,
                config_hash: self.config_hash,
            };
            self.transmit(path, Message::Heartbeat(hb));
        }
    }

    fn send_takeovers(&mut self) {
        for path in 0..self.config.paths {
            let msg = Message::Takeover {
                node_id: self.config.node_id,
                term: self.active_term,
            };
            self.transmit(path, msg);
        }
    }

    fn transmit(&mut self, path: usize, msg: Message) {
        if self.transmits.len() >= TRANSMIT_BACKLOG_PER_PATH * self.config.paths {
            self.transmits.pop_front();
            self.counters.transmit_overflow += 1;
        }
        self.transmits.push_back((path, msg));
    }
}

#[cfg(test)]
mod tests;
