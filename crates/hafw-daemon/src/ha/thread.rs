//! The HA thread: the core, its sockets and its one timer, on a dedicated
//! OS thread with a current-thread runtime. It only ever waits on its own
//! sockets, its timer and its request channel; everything it does is one
//! [`HaInstance::process`] step per [`HaInput`] (holo's instance loop).
//!
//! Anyone on a heartbeat segment can send datagrams from the peer's
//! address, faster than they can be opened (each forged new epoch costs a
//! key derivation). So every turn of the loop does bounded work: at most
//! [`READ_PER_TURN`] datagrams per socket, then the core's deadline is
//! served if it is due, whatever is still queued. What the thread cannot
//! read the kernel drops at the socket's buffer; forged and real datagrams
//! alike, so a real heartbeat still gets through at the rate the thread
//! reads, and the timer (heartbeats sent, the peer judged) never waits
//! behind the queue.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::Poll;
use std::time::{Duration, Instant};

use hafw_ha::msg::State;
use hafw_ha::node::{Action, Command, Input, Node};
use hafw_ha::version::{self, Advert, Negotiation};
use hafw_ha::wire::{KindSealer, Opener, Sealer};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot, watch};

use super::epochs::EpochBudget;
use super::record::{self, RecordFile};
use super::setup::Setup;
use super::{status, HaRequest, Timelines};
use crate::error::SetupError;
use crate::log::Log;
use crate::ops::metrics::Metrics;

/// Datagrams read from each heartbeat socket per turn of the loop. A turn
/// costs at most this many opens per path (a few microseconds each, a key
/// derivation included) before the timer is looked at, so a flood delays
/// a due heartbeat by well under a millisecond; the real peer sends one
/// datagram per path per interval, far below it.
pub const READ_PER_TURN: usize = 32;

/// The drop reason (status and metrics) of envelopes over the budget of
/// unknown epochs ([`EpochBudget`]).
pub const EPOCH_BUDGET: &str = "epoch_budget";

/// Drop counters of the HA transport (on top of the opener's reasons).
#[derive(Default, Debug, Clone)]
pub struct Transport {
    pub send_errors: u64,
    pub sealed: u64,
    /// Envelopes of an unknown epoch dropped unopened (over the budget).
    pub epoch_limited: u64,
}

pub struct Handles {
    pub requests: mpsc::UnboundedSender<HaRequest>,
    pub actions: mpsc::UnboundedReceiver<Action>,
    /// The peer's (version, hash) of the shared policy, and whether it is
    /// alive and active, from its heartbeats.
    pub peer_config: watch::Receiver<Option<PeerHeard>>,
}

/// The peer's advertised policy (version, hash), whether it is alive
/// and active (session sync and config sync take only an active's), and
/// why config sync is paused, if it is (the nodes' policy schemas differ).
pub type PeerHeard = (u64, [u8; 32], bool, Option<String>);

/// Test-only: the highest protocol this node speaks, instead of
/// [`version::PROTOCOL`]; `PROTOCOL + 1` makes it a node of the next
/// release for a rolling-upgrade lab. Read once, at start.
pub const TEST_PROTOCOL_MAX: &str = "HAFW_TEST_PROTOCOL_MAX";
/// Test-only: this node's policy schema, instead of
/// [`version::POLICY_SCHEMA`]. Read once, at start.
pub const TEST_POLICY_SCHEMA: &str = "HAFW_TEST_POLICY_SCHEMA";

/// This node's versions, what its heartbeats advertise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OwnVersions {
    pub protocol_max: u8,
    pub policy_schema: u16,
}

/// The versions this run speaks: the release's, or the test-only knobs'
/// (read once; [`new_sealers`] reads them first and refuses bad values).
pub fn own_versions() -> Result<OwnVersions, SetupError> {
    static OWN: OnceLock<Result<OwnVersions, String>> = OnceLock::new();
    let own = OWN.get_or_init(|| {
        own_versions_from(
            std::env::var(TEST_PROTOCOL_MAX).ok().as_deref(),
            std::env::var(TEST_POLICY_SCHEMA).ok().as_deref(),
        )
    });
    own.clone().map_err(SetupError::Missing)
}

fn own_versions_from(max: Option<&str>, schema: Option<&str>) -> Result<OwnVersions, String> {
    let (lo, hi) = (version::PROTOCOL, version::PROTOCOL_TEST_MAX);
    let protocol_max = match max {
        None => lo,
        Some(v) => match v.trim().parse::<u8>() {
            Ok(n) if (lo..=hi).contains(&n) => n,
            _ => {
                return Err(format!(
                    "environment {TEST_PROTOCOL_MAX}={v:?}: a test-only knob, {lo} to {hi}; \
                     unset it outside tests"
                ))
            }
        },
    };
    let policy_schema = match schema {
        None => version::POLICY_SCHEMA,
        Some(v) => match v.trim().parse::<u16>() {
            Ok(n) if n >= 1 => n,
            _ => {
                return Err(format!(
                    "environment {TEST_POLICY_SCHEMA}={v:?}: a test-only knob, a number from 1; \
                     unset it outside tests"
                ))
            }
        },
    };
    Ok(OwnVersions {
        protocol_max,
        policy_schema,
    })
}

/// The peer's advertised policy version and role, as the core last heard it.
pub type PeerConfig = watch::Sender<Option<PeerHeard>>;

/// What the HA thread is shared with the rest of the daemon: its status
/// figures and its logging.
pub struct Shared {
    pub timelines: Timelines,
    pub metrics: Metrics,
    pub log: Log,
}

/// One epoch per run for HA1 and HA2 alike (the peer's opener accepts one
/// epoch per sender), split into one sealer per kind: the HA thread owns
/// HA1's outright, so it never waits on a lock the sync thread holds.
///
/// The epoch's random half is what the peer echoes to prove its envelopes
/// are fresh for this run: it comes from the OS random generator or the
/// start fails (a guessable one, such as the pid, would let recordings
/// of an earlier run pass as fresh).
pub fn new_sealers(setup: &Setup) -> Result<(KindSealer, Arc<Mutex<KindSealer>>), SetupError> {
    let start_ns = super::wire_now(Duration::ZERO).unix_ns.max(1);
    let mut random = [0u8; 8];
    getrandom::fill(&mut random).map_err(|e| {
        SetupError::Missing(format!(
            "the OS random generator failed ({e}): the HA epoch needs 8 random bytes; \
             check that the kernel's getrandom(2) works (a container's seccomp profile)"
        ))
    })?;
    let own = own_versions()?;
    let mut sealer = Sealer::new(&setup.key, setup.config.node_id, start_ns, random);
    sealer.set_advert(Advert::new(
        env!("CARGO_PKG_VERSION"),
        own.protocol_max,
        own.policy_schema,
    ));
    let (ha1, ha2) = sealer.split();
    Ok((ha1, Arc::new(Mutex::new(ha2))))
}

/// Binds the heartbeat sockets and starts the HA thread. Binding and the
/// core's construction happen before `start` returns, so an address
/// problem stops `hafw run`; so does a recording file that cannot be created.
pub fn start(
    setup: Setup,
    sealer: KindSealer,
    shared: Shared,
    record: Option<std::path::PathBuf>,
) -> Result<Handles, SetupError> {
    let record =
        (record.as_deref().map(record::create).transpose()).map_err(SetupError::Missing)?;
    let (req_tx, req_rx) = mpsc::unbounded_channel();
    let (act_tx, act_rx) = mpsc::unbounded_channel();
    let (peer_tx, peer_rx) = watch::channel(None);
    crate::threads::spawn("ha", move |started| async move {
        let ends = Ends {
            actions: act_tx,
            peer_config: peer_tx,
        };
        let ha = match HaInstance::new(setup, sealer, ends, shared, record) {
            Ok(ha) => ha,
            Err(e) => return started.fail(e),
        };
        realtime(&ha.log);
        started.ok();
        run(ha, req_rx).await;
    })?;
    Ok(Handles {
        requests: req_tx,
        actions: act_rx,
        peer_config: peer_rx,
    })
}

/// A heartbeat socket bound to its path's address and device.
fn bind_path(local: SocketAddr, dev: &str) -> std::io::Result<UdpSocket> {
    let s = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    s.bind_device(Some(dev.as_bytes()))?;
    s.bind(&local.into())?;
    s.set_nonblocking(true)?;
    UdpSocket::from_std(s.into())
}

/// Real-time scheduling for the HA thread: on a loaded machine a busy
/// process must not delay a heartbeat by more than the detection time
/// (keepalived's VRRP process does the same). Best effort: without the
/// privilege the thread runs as a normal one, and says so.
fn realtime(log: &Log) {
    let param = libc::sched_param { sched_priority: 10 };
    // SAFETY: sched_setscheduler on the calling thread (0) with a valid param.
    let rc = unsafe { libc::sched_setscheduler(0, libc::SCHED_FIFO, &param) };
    if rc != 0 {
        log.warn(format!(
            "HA thread: no real-time priority ({}); heartbeats may be late under load",
            std::io::Error::last_os_error()
        ));
    }
}

/// What wakes the HA thread.
pub enum HaInput {
    /// A heartbeat socket has datagrams queued (a bounded number is read).
    Readable,
    /// The core's earliest deadline (or the idle second) has come.
    Timer,
    Request(HaRequest),
}

/// Whether the loop goes on after a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// The core reported its shutdown complete: heartbeats stop here, the
    /// daemon withdraws next.
    Stop,
}

/// Where the HA thread's results go.
struct Ends {
    /// The core's actions, to the executor.
    actions: mpsc::UnboundedSender<Action>,
    peer_config: PeerConfig,
}

/// Everything the HA thread owns.
pub struct HaInstance {
    node: Node,
    opener: Opener,
    /// Which protocol version the peer is spoken to; HA2's sealer follows
    /// (it shares the version with HA1's).
    negotiation: Negotiation,
    own: OwnVersions,
    /// Why config sync is paused, as last logged.
    paused: Option<String>,
    /// What the opener is spared: unknown epochs beyond a few per window.
    epochs: EpochBudget,
    sealer: KindSealer,
    sockets: Vec<UdpSocket>,
    /// The peer's address on each path, by path index.
    peers: Vec<SocketAddr>,
    setup: Setup,
    transport: Transport,
    ends: Ends,
    timelines: Timelines,
    metrics: Metrics,
    log: Log,
    /// The core's clock: `now` is `origin.elapsed()`.
    origin: Instant,
    /// The watchdog is fed from this loop: it proves heartbeats are served,
    /// not merely that some runtime is alive.
    watchdog_every: Option<Duration>,
    last_watchdog: Instant,
    last_metrics: Instant,
    /// Every datagram is read into it: allocated once.
    recv_buf: Vec<u8>,
    /// Log lines of the actions of one flush, written once all are sent
    /// (with whether each was a state change); reused.
    sent: Vec<(String, bool)>,
    /// The SIGTERM waiting for the core's [`Action::ShutdownComplete`].
    shutdown: Option<oneshot::Sender<State>>,
    /// `--record`: every input and the actions it caused.
    rec: Option<RecordFile>,
}

impl HaInstance {
    fn new(
        setup: Setup,
        sealer: KindSealer,
        ends: Ends,
        shared: Shared,
        record: Option<(std::path::PathBuf, std::fs::File)>,
    ) -> Result<HaInstance, SetupError> {
        let mut sockets = vec![];
        for ((local, _), dev) in setup.paths.iter().zip(&setup.path_ifnames) {
            let s = bind_path(*local, dev).map_err(|e| {
                SetupError::io(
                    format!(
                        "bind the heartbeat socket {local} on {dev} (is the address on this node?)"
                    ),
                    e,
                )
            })?;
            sockets.push(s);
        }
        let origin = Instant::now();
        let start = origin.elapsed();
        let node = Node::new(setup.config.clone(), start)
            .map_err(|e| SetupError::Missing(format!("the HA core refused its settings: {e}")))?;
        let rec = record.map(|f| RecordFile::new(f, &setup.config, start, shared.log.clone()));
        let own = own_versions()?;
        let mut opener = Opener::new(
            &setup.key,
            setup.config.node_id,
            setup.peer_id,
            sealer.epoch(),
        );
        opener.set_max_version(own.protocol_max);
        Ok(HaInstance {
            node,
            opener,
            negotiation: Negotiation::new(own.protocol_max),
            own,
            paused: None,
            epochs: EpochBudget::default(),
            sealer,
            sockets,
            peers: setup.paths.iter().map(|p| p.1).collect(),
            setup,
            transport: Transport::default(),
            ends,
            timelines: shared.timelines,
            metrics: shared.metrics,
            log: shared.log,
            origin,
            watchdog_every: crate::ops::notify::watchdog_interval(),
            last_watchdog: origin,
            last_metrics: origin,
            recv_buf: vec![0u8; 65_536],
            sent: Vec::with_capacity(8),
            shutdown: None,
            rec,
        })
    }

    pub fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    /// When the loop must wake at the latest: the core's earliest deadline,
    /// or in a second when it has none (the watchdog and metrics still run).
    pub fn wake(&self) -> Instant {
        match self.node.poll_timeout() {
            Some(t) => self.origin + t,
            None => Instant::now() + Duration::from_secs(1),
        }
    }

    /// Whether the core's earliest deadline has come at `now`.
    fn due(&self, now: Duration) -> bool {
        self.node.poll_timeout().is_some_and(|t| t <= now)
    }

    /// Ready when any heartbeat socket has something to read (or an error
    /// to report, which the next read consumes).
    async fn readable(&self) {
        std::future::poll_fn(|cx| {
            let ready = (self.sockets.iter()).any(|s| s.poll_recv_ready(cx).is_ready());
            if ready {
                Poll::Ready(())
            } else {
                Poll::Pending
            }
        })
        .await
    }

    /// One step: hand the input to the core, send what it asks for (the
    /// executor's actions first), then the bookkeeping.
    pub fn process(&mut self, now: Duration, input: HaInput) -> Flow {
        match input {
            HaInput::Readable => {
                self.read(now);
                // A flood keeps the sockets readable: the deadline is served
                // in the same turn, not after the queue.
                if self.due(now) {
                    self.feed(now, Input::Timeout);
                }
            }
            HaInput::Timer => {
                // A heartbeat may already sit in a socket: read what is
                // queued (up to the bound) before the timer can call the
                // peer lost.
                self.read(now);
                self.feed(now, Input::Timeout);
            }
            HaInput::Request(r) => self.request(now, r),
        }
        let stopped = self.flush(now);
        // After the actions went to the executor: recording waits, they don't.
        if let Some(r) = &mut self.rec {
            r.tick();
        }
        self.housekeeping();
        match stopped {
            Some(state) => {
                if let Some(reply) = self.shutdown.take() {
                    let _ = reply.send(state);
                }
                Flow::Stop
            }
            None => Flow::Continue,
        }
    }

    /// The one place the core gets an input (and, with `--record`, where
    /// it is recorded with the actions it caused).
    fn feed(&mut self, now: Duration, input: Input) {
        record::feed(&mut self.node, &mut self.rec, now, input);
    }

    /// Reads up to [`READ_PER_TURN`] datagrams from each heartbeat socket;
    /// each is opened, then goes to the core. A refused one is the peer's
    /// (or an attacker's) fault: the opener counts it by reason and the
    /// status shows it; it is not worth a log line each.
    fn read(&mut self, now: Duration) {
        for path in 0..self.sockets.len() {
            for _ in 0..READ_PER_TURN {
                match self.sockets[path].try_recv_from(&mut self.recv_buf) {
                    Ok((n, _)) => {
                        let bytes = &self.recv_buf[..n];
                        if !self.epochs.admit(now, bytes) {
                            continue;
                        }
                        let opened = self.opener.open(super::wire_now(now), bytes);
                        // Our heartbeats echo the peer's run as the opener now knows it.
                        self.sealer.set_echo(self.opener.echo());
                        // An authentic envelope that does not echo us yet
                        // still says which versions the peer reads.
                        if let Some((epoch, v, advert)) = self.opener.take_unconfirmed() {
                            negotiate(
                                &mut self.negotiation,
                                &self.sealer,
                                &self.log,
                                now,
                                epoch,
                                v,
                                advert.as_ref(),
                            );
                        }
                        if let Ok(opened) = opened {
                            self.epochs.accepted(bytes);
                            let (e, v, a) = (opened.epoch, opened.version, opened.advert.as_ref());
                            negotiate(&mut self.negotiation, &self.sealer, &self.log, now, e, v, a);
                            let msg = opened.body;
                            self.feed(now, Input::Message { path, msg });
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    // An ICMP error from a peer that is down surfaces as a
                    // read error, consumed by the read: keep listening.
                    Err(_) => {}
                }
            }
        }
    }

    fn request(&mut self, now: Duration, r: HaRequest) {
        match r {
            HaRequest::Status { reply } => {
                let tl = self.timelines.lock().map(|t| t.clone()).unwrap_or_default();
                let (s, c) = (self.node.status(), self.opener.counters());
                self.transport.epoch_limited = self.epochs.limited;
                let (setup, tr, origin) = (&self.setup, &self.transport, self.origin);
                let mut st = status::build(&s, setup, &tl, &c, tr, origin);
                st.last_refused = status::last_refused(&self.opener, now);
                status::add_versions(&mut st, &self.negotiation, self.own, &self.paused);
                let _ = reply.send(st);
            }
            HaRequest::Command { cmd, reply } => {
                self.feed(now, Input::Command(cmd));
                let state = self.node.state().as_str();
                let _ = reply.send(format!("{}: now {state}\n", cmd.as_str()));
            }
            HaRequest::Monitor { healthy, reason } => {
                self.feed(now, Input::Monitor { healthy, reason });
            }
            HaRequest::SetConfigVersion { version, hash } => {
                self.feed(now, Input::ConfigVersion { version, hash })
            }
            HaRequest::State { reply } => {
                let _ = reply.send(self.node.state());
            }
            HaRequest::Shutdown { reply } => {
                // The core decides when the shutdown is done (handed over,
                // or its deadline); the answer goes out at its action.
                self.shutdown = Some(reply);
                self.feed(now, Input::Command(Command::Shutdown));
            }
        }
    }

    /// Sends what the core asks for; returns the state it stopped in if it
    /// reported its shutdown complete.
    fn flush(&mut self, now: Duration) -> Option<State> {
        // Actions first: a promotion must not wait behind a round of sends.
        // Every action of this step reaches the executor before any log
        // line is written or metric counted: those are bookkeeping, the
        // promotion is not.
        let mut stopped = None;
        let mut transitions = 0;
        while let Some(a) = self.node.poll_action() {
            let line = format!("HA: {a}");
            let transition = matches!(
                a,
                Action::BecomeActive { .. }
                    | Action::BecomePassive { .. }
                    | Action::BecomeSuspended { .. }
                    | Action::BecomeNonFunctional { .. }
            );
            if let Action::ShutdownComplete { state } = a {
                stopped = Some(state);
            }
            let _ = self.ends.actions.send(a);
            transitions += usize::from(transition);
            self.sent.push((line, transition));
        }
        self.transmit(now);
        if !self.sent.is_empty() {
            self.account(transitions);
        }
        stopped
    }

    /// The heartbeats (and takeovers) the core queued, sealed and sent.
    fn transmit(&mut self, now: Duration) {
        while let Some((path, msg)) = self.node.poll_transmit() {
            let (Some(sock), Some(peer)) = (self.sockets.get(path), self.peers.get(path)) else {
                continue;
            };
            let version = self.negotiation.speak_at(now);
            match self.sealer.seal_at(version, &msg) {
                Ok(bytes) => {
                    self.transport.sealed += 1;
                    // Non-blocking: a full socket buffer drops a heartbeat
                    // rather than stalling the core.
                    if sock.try_send_to(&bytes, *peer).is_err() {
                        self.transport.send_errors += 1;
                    }
                }
                Err(e) => self.log.warn(format!("HA: cannot seal a message: {e}")),
            }
        }
    }

    /// The log lines and metrics of the actions just sent; the status is
    /// computed once for the step's `transitions` state changes.
    fn account(&mut self, transitions: usize) {
        for (line, _) in self.sent.drain(..) {
            self.log.info(line);
        }
        if transitions == 0 {
            return;
        }
        let s = self.node.status();
        let first = s.transitions.len().saturating_sub(transitions);
        for t in &s.transitions[first..] {
            let kind = crate::ops::metrics::cause_kind(&t.cause);
            self.metrics
                .transition(t.from.as_str(), t.to.as_str(), &kind);
        }
        self.metrics.state(s.state.as_str());
        self.metrics.term(s.term);
    }

    /// The watchdog, and the metrics a few times a second.
    fn housekeeping(&mut self) {
        if (self.watchdog_every).is_some_and(|w| self.last_watchdog.elapsed() >= w) {
            let _ = crate::ops::notify::watchdog();
            self.last_watchdog = Instant::now();
        }
        if self.last_metrics.elapsed() >= Duration::from_millis(100) {
            self.pause_config_sync();
            // Config sync offers its policy to a peer that is behind.
            let peer = self.export();
            self.ends.peer_config.send_if_modified(|old| {
                let changed = *old != peer;
                *old = peer;
                changed
            });
            self.last_metrics = Instant::now();
        }
    }

    /// Metrics from the core's snapshot; returns the peer's policy
    /// (version, hash) and whether it is alive and active, from the same
    /// snapshot.
    fn export(&self) -> Option<PeerHeard> {
        let (s, metrics) = (self.node.status(), &self.metrics);
        metrics.state(s.state.as_str());
        metrics.term(s.term);
        for (i, p) in s.paths.iter().enumerate() {
            let name = (self.setup.path_ifnames.get(i))
                .map(String::as_str)
                .unwrap_or("?");
            metrics.path_up(name, p.up);
            metrics.heartbeat_misses_total(name, p.lost);
            if let Some(rtt) = p.rtt {
                metrics.heartbeat_rtt(name, rtt.as_secs_f64());
            }
        }
        metrics.ha_counters(self.opener.counters().iter());
        metrics.ha_dropped(EPOCH_BUDGET, self.epochs.limited);
        if let Some(peer) = &s.peer {
            metrics.peer_config_version(peer.config_version);
        }
        metrics.peer_alive(s.peer.as_ref().is_some_and(|p| p.alive));
        s.peer.map(|p| {
            let active = p.alive && p.state == State::Active;
            (p.config_version, p.config_hash, active, self.paused.clone())
        })
    }

    /// Config sync runs between nodes of one policy schema only: a policy
    /// of one schema means something else, or nothing, to the other.
    /// Logged when it pauses and when it resumes.
    fn pause_config_sync(&mut self) {
        let peer = self.negotiation.peer_policy_schema();
        let paused = version::config_sync_paused(self.own.policy_schema, peer);
        if paused == self.paused {
            return;
        }
        match &paused {
            Some(why) => self.log.warn(format!("config sync paused: {why}")),
            None => self
                .log
                .info("config sync resumed: both nodes have one policy schema".to_string()),
        }
        self.paused = paused;
    }
}

/// What an authentic envelope showed of the peer's versions, to the
/// negotiation; the spoken version goes to the sealers (HA1's and, shared,
/// HA2's) and a change of it is logged.
fn negotiate(
    n: &mut Negotiation,
    sealer: &KindSealer,
    log: &Log,
    now: Duration,
    epoch: hafw_ha::wire::Epoch,
    version: u8,
    advert: Option<&Advert>,
) {
    if let Some(c) = n.heard(now, epoch, version, advert) {
        sealer.set_version(c.to);
        log.info(format!(
            "HA: speaking protocol {} to the peer (was {}; the peer's maximum is {}, ours {})",
            c.to,
            c.from,
            c.peer_max,
            n.ours()
        ));
    }
}

/// The loop: waits for the next input and hands it to
/// [`HaInstance::process`]; nothing else. The timer is polled first, so a
/// due deadline wins over sockets that a flood keeps readable.
async fn run(mut ha: HaInstance, mut requests: mpsc::UnboundedReceiver<HaRequest>) {
    loop {
        let wake = ha.wake();
        let input = tokio::select! {
            biased;
            _ = tokio::time::sleep_until(wake.into()) => HaInput::Timer,
            req = requests.recv() => match req {
                Some(r) => HaInput::Request(r),
                None => return,
            },
            _ = ha.readable() => HaInput::Readable,
        };
        let now = ha.now();
        if ha.process(now, input) == Flow::Stop {
            return;
        }
    }
}

#[cfg(test)]
mod version_knob_tests {
    use super::*;

    #[test]
    fn knobs_default_to_the_release_and_refuse_what_they_cannot_mean() {
        let release = OwnVersions {
            protocol_max: version::PROTOCOL,
            policy_schema: version::POLICY_SCHEMA,
        };
        assert_eq!(own_versions_from(None, None), Ok(release));
        assert_eq!(
            own_versions_from(Some("4"), Some("2")),
            Ok(OwnVersions {
                protocol_max: 4,
                policy_schema: 2
            })
        );
        for bad in ["2", "5", "x", ""] {
            let e = own_versions_from(Some(bad), None).unwrap_err();
            assert!(e.contains(TEST_PROTOCOL_MAX) && e.contains("3 to 4"), "{e}");
        }
        let e = own_versions_from(None, Some("0")).unwrap_err();
        assert!(e.contains(TEST_POLICY_SCHEMA), "{e}");
    }
}
