//! The sync thread's state and its one step: [`SyncInstance::process`]
//! takes one [`Input`], hands it to the cores, then carries out what they
//! ask (frames to the peer, dumps, kernel installs, policies to apply) and
//! publishes the status. Every decision (when to bulk, when to retransmit,
//! whether an offer is taken, whether the node is ready) is a core's; the
//! loop around it only waits for the next input or the earliest deadline
//! ([`SyncInstance::deadline`]).

use std::net::Ipv4Addr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hafw_ha::config_sync::{self, ConfigAction, ConfigSync, RetryConfig};
use hafw_ha::readiness::{self, readiness};
use hafw_ha::sessions::{
    Event as SyncEvent, Mode, ReceiverAction, ReceiverConfig, SenderAction, SenderConfig,
    SyncReceiver, SyncSender,
};
use hafw_kernel::conntrack::{self, Conntrack, Entry};
use tokio::sync::{mpsc, oneshot};

use super::entries::{key_of, to_entry, to_session, tuple_of};
use super::ha2::{Ha2Event, Ha2Tx};
use super::{Installed, SyncCmd, SyncSetup, SyncStatus};
use crate::error::{DaemonError, KernelError, PeerError, SetupError};
use crate::log::Log;

/// How often the sync thread publishes its [`SyncStatus`] at most: readers
/// (control socket, metrics, readiness) need it fresh, not per conntrack
/// event.
const STATUS_EVERY: Duration = Duration::from_millis(5);
/// The wait when no core has a deadline.
const IDLE: Duration = Duration::from_millis(500);
/// This node's rule-hit totals go to the peer this often, and when the
/// link connects (so a restarted peer hears them at once).
pub(super) const HITS_EVERY: Duration = Duration::from_secs(5);
/// ... and on a change, at most this often.
const HITS_MIN_GAP: Duration = Duration::from_secs(1);

/// Everything the sync thread reacts to.
pub(super) enum Input {
    Ha2(Ha2Event),
    Conntrack(conntrack::Event),
    /// This node became active (true) or passive (false).
    Role(bool),
    Cmd(SyncCmd),
    /// Promotion: make every synced session present in the kernel now.
    Promote(oneshot::Sender<Installed>),
    /// The earliest deadline of [`SyncInstance::deadline`] passed.
    Timeout,
    /// This node's rule-hit totals changed.
    HitsChanged,
}

pub(super) struct SyncInstance {
    origin: Instant,
    mode: Mode,
    node_addresses: Vec<Ipv4Addr>,
    config_actions: mpsc::UnboundedSender<ConfigAction>,
    ct: Conntrack,
    to_peer: Ha2Tx,
    /// The HA2 connection frames go to; None while the link is down, when
    /// nothing is queued for the peer.
    conn: Option<u64>,
    /// This run's stream id: a new sender's stream derives from it.
    stream: u64,
    /// Senders made so far: each one's stream differs.
    senders: u64,
    /// The figures of senders already dropped (the link went down).
    retired: Retired,
    /// Conntrack event overruns (the kernel's ENOBUFS or our full queue).
    overruns: u64,
    /// Events the reader thread dropped on a full queue.
    events_dropped: Arc<AtomicU64>,
    /// The receiver's run id, one more per passive period.
    receiver_run: u64,
    /// The active's side, while the peer is connected; None while passive
    /// or while HA2 is down (a dead peer costs nothing: no backlog, and
    /// the next connection gets one fresh bulk).
    sender: Option<SyncSender>,
    receiver: SyncReceiver,
    config: ConfigSync,
    /// The policy schemas differ: config sync's frames are neither sent
    /// nor taken ([`SyncCmd::PauseConfig`]).
    config_paused: bool,
    active: bool,
    /// The peer is alive and active (its heartbeats, via the HA thread).
    peer_active: bool,
    /// The receiver's cap: this node's conntrack table size.
    max_sessions: usize,
    connected: bool,
    synced: u64,
    dropped: u64,
    status: Arc<Mutex<SyncStatus>>,
    last_status: Option<Instant>,
    /// A publish was skipped as too soon: the deadline includes it.
    status_stale: bool,
    hits: Option<crate::hits::Hits>,
    /// When this node's rule hits are due to the peer next.
    hits_due: Option<Instant>,
    hits_sent: Option<Instant>,
    log: Log,
}

impl SyncInstance {
    pub(super) fn new(
        setup: SyncSetup,
        ct: Conntrack,
        to_peer: Ha2Tx,
        status: Arc<Mutex<SyncStatus>>,
        events_dropped: Arc<AtomicU64>,
        log: Log,
    ) -> Result<SyncInstance, DaemonError> {
        let origin = Instant::now();
        let stream = (std::process::id() as u64) << 32 | (nanos_since_epoch() & 0xffff_ffff);
        let max_sessions = setup.max_sessions.max(1);
        let receiver = new_receiver(stream, setup.mode, &setup.node_addresses, max_sessions)?;
        let mut inst = SyncInstance {
            origin,
            mode: setup.mode,
            node_addresses: setup.node_addresses,
            config_actions: setup.config_actions,
            ct,
            to_peer,
            conn: None,
            stream,
            senders: 0,
            retired: Retired::default(),
            overruns: 0,
            events_dropped,
            receiver_run: stream,
            sender: None,
            receiver,
            config: ConfigSync::new(RetryConfig::default(), setup.config),
            config_paused: false,
            active: false,
            peer_active: false,
            max_sessions,
            connected: false,
            synced: 0,
            dropped: 0,
            status,
            last_status: None,
            status_stale: false,
            hits: setup.hits,
            hits_due: None,
            hits_sent: None,
            log,
        };
        inst.carry_out();
        Ok(inst)
    }

    /// The one step: the input to the cores, then their outputs carried out.
    pub(super) fn process(&mut self, input: Input) {
        let now = self.now();
        match input {
            Input::Ha2(ev) => self.on_ha2(now, ev),
            Input::Conntrack(ev) => self.on_conntrack(now, ev),
            Input::Role(active) => self.set_role(now, active),
            Input::Cmd(cmd) => self.on_cmd(now, cmd),
            Input::Promote(reply) => {
                let _ = reply.send(self.install_for_promotion());
            }
            Input::HitsChanged => {
                let soonest = self.hits_sent.map(|t| t + HITS_MIN_GAP);
                let at = soonest.unwrap_or_else(Instant::now);
                self.hits_due = Some(self.hits_due.map_or(at, |d| d.min(at)));
            }
            Input::Timeout => {
                if let Some(s) = self.sender.as_mut() {
                    s.handle_timeout(now);
                }
                self.receiver.handle_timeout(now);
                self.config.handle_timeout(now);
            }
        }
        self.carry_out();
    }

    /// When the loop must call [`Input::Timeout`]: the cores' earliest
    /// deadline, or a status publish that was held back.
    pub(super) fn deadline(&self) -> Instant {
        let cores = [
            self.sender.as_ref().and_then(|s| s.poll_timeout()),
            self.receiver.poll_timeout(),
            self.config.poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min()
        .map(|t| self.origin + t);
        let status = self
            .last_status
            .filter(|_| self.status_stale)
            .map(|t| t + STATUS_EVERY);
        let hits = self.hits_due.filter(|_| self.conn.is_some());
        cores
            .into_iter()
            .chain(status)
            .chain(hits)
            .min()
            .unwrap_or_else(|| Instant::now() + IDLE)
    }

    fn now(&self) -> Duration {
        self.origin.elapsed()
    }

    fn on_ha2(&mut self, now: Duration, ev: Ha2Event) {
        match ev {
            Ha2Event::Connected(conn) => {
                self.conn = Some(conn);
                self.connected = true;
                self.hits_due = Some(Instant::now());
                if self.active {
                    // A (re)connected peer may have restarted: a new
                    // sender's first act is one bulk of the whole table.
                    self.new_sender();
                }
            }
            Ha2Event::Disconnected(reason) => {
                self.conn = None;
                self.connected = false;
                self.retire_sender(now);
                self.log.error(&PeerError::Link { reason }.into());
            }
            Ha2Event::Payload(bytes) => {
                let config = bytes.first() == Some(&config_sync::codec::CHANNEL);
                let hits = bytes.first() == Some(&hafw_ha::hits::CHANNEL);
                let refused = if hits {
                    self.hits
                        .as_ref()
                        .and_then(|h| match h.peer_message(&bytes) {
                            Ok(0) => None,
                            Ok(n) => Some(format!(
                            "rule hits: {n} entries name no rule of this node's policy (dropped)"
                        )),
                            Err(e) => Some(e),
                        })
                } else if config && self.config_paused {
                    // Not refused: not read. The peer's policy is of another
                    // schema; its retries come again once the pause ends.
                    None
                } else if config {
                    self.config
                        .handle_message(now, &bytes)
                        .err()
                        .map(|e| format!("config sync: {e}"))
                } else if let Some(s) = self.sender.as_mut() {
                    s.handle_message(now, &bytes)
                        .err()
                        .map(|e| format!("session sync: {e}"))
                } else {
                    self.receiver
                        .handle_message(now, &bytes)
                        .err()
                        .map(|e| format!("session sync: {e}"))
                };
                if let Some(reason) = refused {
                    self.dropped += 1;
                    self.log.error(&PeerError::Refused { reason }.into());
                }
            }
        }
    }

    fn on_conntrack(&mut self, now: Duration, ev: conntrack::Event) {
        if ev == conntrack::Event::Overrun {
            self.overruns += 1;
        }
        let Some(s) = self.sender.as_mut() else {
            return;
        };
        let own = &self.node_addresses;
        match ev {
            conntrack::Event::New(x) => {
                if let Some(v) = to_session(&x, own) {
                    s.handle_event(now, SyncEvent::New(v))
                }
            }
            conntrack::Event::Update(x) => {
                if let Some(v) = to_session(&x, own) {
                    s.handle_event(now, SyncEvent::Update(v))
                }
            }
            conntrack::Event::Destroy(x) => {
                s.handle_event(now, SyncEvent::Destroy(key_of(&x.orig)))
            }
            conntrack::Event::Overrun => s.handle_overrun(now),
        }
    }

    /// Only the active sends and only the passive applies, so the nodes
    /// never echo each other's entries.
    fn set_role(&mut self, now: Duration, active: bool) {
        if active && !self.active {
            self.active = true;
            if self.conn.is_some() {
                self.new_sender();
            }
        } else if !active && self.active {
            self.retire_sender(now);
            self.receiver_run = self.receiver_run.wrapping_add(1);
            let own = &self.node_addresses;
            match new_receiver(self.receiver_run, self.mode, own, self.max_sessions) {
                Ok(r) => self.receiver = r,
                Err(e) => self.log.error(&e),
            }
        }
        self.active = active;
        self.receiver.set_local_active(active);
        self.receiver.set_peer_active(self.peer_active);
        self.config.set_local_active(now, active);
    }

    /// A sender on a new stream: it asks for a dump at once, so the peer
    /// gets one bulk of the whole table and then the changes.
    fn new_sender(&mut self) {
        self.senders += 1;
        let stream = (self.stream ^ (self.senders << 40)).max(1);
        match SyncSender::new(SenderConfig::new(stream)) {
            Ok(s) => self.sender = Some(s),
            Err(e) => self.log.error(&SetupError::from(e).into()),
        }
    }

    /// Drops the sender, keeping its figures: what it held (pending
    /// changes, messages in flight) is of no use to a peer that will get a
    /// fresh bulk when it comes back.
    fn retire_sender(&mut self, now: Duration) {
        if let Some(s) = self.sender.take() {
            let st = s.stats(now);
            self.retired.entries_sent += st.entries_sent;
            self.retired.bulks += st.bulks;
            self.retired.resyncs += st.resyncs;
        }
    }

    /// This node's rule-hit totals to the peer, when due and connected;
    /// then due again in [`HITS_EVERY`].
    fn send_hits_if_due(&mut self) {
        let now = Instant::now();
        if self.conn.is_none() || self.hits_due.is_none_or(|d| now < d) {
            return;
        }
        let Some(h) = &self.hits else {
            self.hits_due = None;
            return;
        };
        for bytes in h.own_messages() {
            self.send(bytes);
        }
        self.hits_sent = Some(now);
        self.hits_due = Some(now + HITS_EVERY);
    }

    /// Queues a payload for the peer's current connection (dropped and
    /// counted by the link when it is down or its queue is full).
    fn send(&self, bytes: Vec<u8>) {
        self.to_peer.send(self.conn, bytes);
    }

    fn on_cmd(&mut self, now: Duration, cmd: SyncCmd) {
        match cmd {
            SyncCmd::PeerConfig(v, h) => self.config.note_peer_version(now, v, h),
            SyncCmd::PeerActive(active) => {
                self.peer_active = active;
                self.receiver.set_peer_active(active);
                self.config.set_peer_active(active);
            }
            SyncCmd::ApplyLocal {
                version,
                bytes,
                reply,
            } => {
                let _ = reply.send(self.config.apply_local(now, version, bytes));
            }
            SyncCmd::ApplyResult(r) => self.config.handle_apply_result(now, r),
            SyncCmd::PauseConfig(paused) => self.config_paused = paused,
            SyncCmd::Pending {
                version,
                remaining_ms,
                back_to,
            } => self
                .config
                .send_pending(now, version, remaining_ms, back_to),
        }
    }

    /// Commit before announce: whatever the receiver still holds goes in
    /// now, and in commit mode the whole cache in one batch.
    fn install_for_promotion(&mut self) -> Installed {
        let t = Instant::now();
        let mut err = None;
        let mut n = 0;
        while let Some(a) = self.receiver.poll_action() {
            n += self.apply(a);
        }
        if self.mode == Mode::Commit {
            let sessions = self.receiver.take_for_promotion();
            let entries: Vec<Entry> = sessions.iter().map(to_entry).collect();
            match self.ct.create_batch(&entries) {
                Ok(r) => n += r.created + r.updated,
                Err(e) => err = Some(e.to_string()),
            }
        }
        if let Ok(mut st) = self.status.lock() {
            st.last_install = Some((n, t.elapsed()));
        }
        (n, t.elapsed(), err)
    }

    /// Carries out what the cores ask, then publishes the status.
    fn carry_out(&mut self) {
        self.send_hits_if_due();
        let now = self.now();
        while let Some(a) = self.config.poll_action() {
            if self.config_actions.send(a).is_err() {
                let stopped = SetupError::Stopped("config");
                self.config
                    .handle_apply_result(now, Err(stopped.to_string()));
            }
        }
        while let Some(bytes) = self.config.poll_transmit() {
            // Paused: nothing offered; the core retries after the pause.
            if !self.config_paused {
                self.send(bytes);
            }
        }
        if let Some(s) = self.sender.as_mut() {
            while let Some(SenderAction::RequestDump { .. }) = s.poll_action() {
                match self.ct.dump() {
                    Ok(entries) => s.start_bulk(
                        now,
                        entries
                            .iter()
                            .filter_map(|e| to_session(e, &self.node_addresses))
                            .collect(),
                    ),
                    Err(source) => {
                        s.handle_dump_failed(now);
                        let what = "dump for a bulk (asked again shortly)".into();
                        self.log
                            .error(&KernelError::Conntrack { what, source }.into());
                    }
                }
            }
            while let Some(bytes) = s.poll_transmit() {
                self.to_peer.send(self.conn, bytes);
            }
        }
        while let Some(bytes) = self.receiver.poll_transmit() {
            self.send(bytes);
        }
        while let Some(a) = self.receiver.poll_action() {
            self.apply(a);
        }
        self.publish();
    }

    /// The status for readers, at most every [`STATUS_EVERY`] and never
    /// left stale ([`SyncInstance::deadline`] ends the wait when it is due).
    fn publish(&mut self) {
        let due = self.last_status.map(|t| t + STATUS_EVERY);
        if due.is_some_and(|d| Instant::now() < d) {
            self.status_stale = true;
            return;
        }
        let Ok(mut st) = self.status.lock() else {
            return;
        };
        let now = self.now();
        self.last_status = Some(Instant::now());
        self.status_stale = false;
        st.connected = self.connected;
        st.role_active = self.active;
        st.max_sessions = self.max_sessions;
        st.cache_bytes = if self.active {
            0
        } else {
            self.receiver.cache().heap_bytes()
        };
        if let Some(s) = &self.sender {
            let stats = s.stats(now);
            st.sessions_known = 0;
            st.entries_sent = self.retired.entries_sent + stats.entries_sent;
            st.lag_ms = Some(stats.lag.as_secs_f64() * 1000.0);
            st.bulks = self.retired.bulks + stats.bulks;
            st.resyncs = self.retired.resyncs + stats.resyncs + st.bulks;
        } else if self.active {
            st.sessions_known = 0;
            st.entries_sent = self.retired.entries_sent;
            st.lag_ms = None;
            st.bulks = self.retired.bulks;
            st.resyncs = self.retired.resyncs + st.bulks;
        } else {
            let r = self.receiver.stats(now);
            st.sessions_known = self.receiver.cache().len();
            st.resyncs = r.resyncs;
            st.lag_ms = None;
            st.refused = [
                ("peer not active", r.refused_peer_not_active),
                ("this node active", r.refused_local_active),
                ("own address", r.refused_own_address),
                ("impossible address", r.refused_bogus),
                ("cache full", r.cache_full),
            ]
            .into_iter()
            .filter(|(_, n)| *n > 0)
            .collect();
            st.not_ready = self.receiver.not_ready_reason();
        }
        st.synced_entries = self.synced;
        st.dropped = self.dropped;
        st.overruns = self.overruns;
        st.events_dropped = self.events_dropped.load(Ordering::Relaxed);
        st.ct_timeouts = self.ct.timeouts();
        st.ha2 = self.to_peer.figures();
        let cs = self.config.status();
        st.ready = readiness(readiness::Inputs {
            active: self.active,
            sessions_synced: self.receiver.ready(),
            policy: cs.version,
            peer_policy: cs.peer.map(|(v, _)| v),
        })
        .is_ok();
        st.config = cs;
    }

    /// One receiver action into the kernel; how many entries it touched.
    fn apply(&mut self, a: ReceiverAction) -> usize {
        match a {
            ReceiverAction::Install(sessions) => {
                let entries: Vec<Entry> = sessions.iter().map(to_entry).collect();
                match self.ct.create_batch(&entries) {
                    Ok(r) => {
                        self.synced += (r.created + r.updated) as u64;
                        r.created + r.updated
                    }
                    Err(source) => {
                        let what = format!("install of {} entries", entries.len());
                        self.log
                            .error(&KernelError::Conntrack { what, source }.into());
                        0
                    }
                }
            }
            ReceiverAction::Remove(keys) => {
                for k in &keys {
                    let _ = self.ct.delete(&tuple_of(k), 0);
                }
                keys.len()
            }
        }
    }
}

/// What the senders dropped so far had done.
#[derive(Debug, Default)]
struct Retired {
    entries_sent: u64,
    bulks: u64,
    resyncs: u64,
}

/// A receiver for a new passive period. `run` tells the sender a
/// restarted receiver from a late message of the previous one.
fn new_receiver(
    run: u64,
    mode: Mode,
    own: &[Ipv4Addr],
    max_sessions: usize,
) -> Result<SyncReceiver, DaemonError> {
    let mut cfg = ReceiverConfig::new(run.max(1), mode);
    cfg.own_addresses = own.to_vec();
    cfg.max_sessions = max_sessions;
    // HA2 is one TCP stream: a stream whose bulk start we missed (we were
    // active, or frozen, when it was sent) will not see it arrive late, so
    // ask for a bulk almost at once; connections opened just before the
    // next failover depend on it.
    cfg.resync_interval = Duration::from_millis(20);
    SyncReceiver::new(cfg).map_err(|e| SetupError::from(e).into())
}

/// Part of the stream id: differs between two runs of the daemon started
/// within the same process id (a container restarted).
fn nanos_since_epoch() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::sessions::codec::{decode, SyncMessage};
    use hafw_ha::sessions::config::DEFAULT_MAX_SESSIONS;
    use hafw_kernel::conntrack::Tuple;

    fn entry(port: u16) -> Entry {
        Entry {
            orig: Tuple::tcp(
                Ipv4Addr::new(10, 0, 10, 10),
                port,
                Ipv4Addr::new(198, 51, 100, 30),
                7,
            ),
            reply: Tuple::tcp(
                Ipv4Addr::new(198, 51, 100, 30),
                7,
                Ipv4Addr::new(10, 0, 1, 100),
                port,
            ),
            status: 0,
            timeout: 100,
            mark: 0,
            zone: 0,
            id: None,
            tcp: None,
        }
    }

    impl SyncInstance {
        fn publish_now(&mut self) {
            self.last_status = None;
            self.publish();
        }
    }

    fn drain(rx: &mut mpsc::Receiver<(u64, Vec<u8>)>) -> Vec<(u64, Vec<u8>)> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    /// The active with its peer gone: events cost nothing and nothing is
    /// queued for the peer; each (re)connection gets one bulk, starting
    /// with its BulkStart, on a stream of its own. (The dump reads this
    /// namespace's conntrack table; nothing is written.)
    #[test]
    fn nothing_is_queued_while_down_and_each_connection_gets_one_bulk() {
        let (tx, mut rx) = Ha2Tx::detached(1 << 16);
        let (config_actions, _keep) = mpsc::unbounded_channel();
        let setup = SyncSetup {
            local: "127.0.0.1:0".parse().unwrap(),
            peer: "127.0.0.1:0".parse().unwrap(),
            node_id: 1,
            peer_id: 2,
            mode: Mode::Mirror,
            config: None,
            config_actions,
            node_addresses: vec![],
            max_sessions: DEFAULT_MAX_SESSIONS,
            hits: None,
        };
        let ct = Conntrack::open(None).unwrap();
        let status = Arc::new(Mutex::new(SyncStatus::default()));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut inst = SyncInstance::new(setup, ct, tx, status, dropped, Log::quiet()).unwrap();
        inst.process(Input::Role(true));
        assert!(inst.sender.is_none(), "no peer: no sender");
        for p in 0..20_000u16 {
            inst.process(Input::Conntrack(conntrack::Event::New(entry(10_000 + p))));
            inst.process(Input::Conntrack(conntrack::Event::Destroy(entry(
                10_000 + p,
            ))));
        }
        inst.process(Input::Timeout);
        assert!(drain(&mut rx).is_empty(), "nothing queued while down");
        assert_eq!(inst.to_peer.figures().dropped_down, 0);

        let mut streams = vec![];
        for conn in [1, 2] {
            inst.process(Input::Ha2(Ha2Event::Connected(conn)));
            let sent = drain(&mut rx);
            assert!(sent.iter().all(|(c, _)| *c == conn));
            let first = decode(&sent.first().expect("a bulk").1).unwrap();
            assert!(
                matches!(first.msg, SyncMessage::BulkStart { .. }),
                "{first:?}"
            );
            streams.push(first.stream);
            inst.process(Input::Ha2(Ha2Event::Disconnected("test".into())));
            assert!(inst.sender.is_none());
            inst.process(Input::Conntrack(conntrack::Event::New(entry(9))));
            assert!(drain(&mut rx).is_empty());
        }
        assert_ne!(
            streams[0], streams[1],
            "each connection a stream of its own"
        );
        inst.publish_now();
        let st = inst.status.lock().unwrap().clone();
        assert_eq!(st.bulks, 2, "{st:?}");
    }

    /// Paused (the policy schemas differ), the active offers nothing to a
    /// peer that is behind; resumed, its retry sends the offer.
    #[test]
    fn a_paused_config_sync_offers_nothing_until_resumed() {
        let (tx, mut rx) = Ha2Tx::detached(1 << 16);
        let (config_actions, _keep) = mpsc::unbounded_channel();
        let setup = SyncSetup {
            local: "127.0.0.1:0".parse().unwrap(),
            peer: "127.0.0.1:0".parse().unwrap(),
            node_id: 1,
            peer_id: 2,
            mode: Mode::Mirror,
            config: Some((1, b"a policy".to_vec())),
            config_actions,
            node_addresses: vec![],
            max_sessions: DEFAULT_MAX_SESSIONS,
            hits: None,
        };
        let ct = Conntrack::open(None).unwrap();
        let status = Arc::new(Mutex::new(SyncStatus::default()));
        let dropped = Arc::new(AtomicU64::new(0));
        let mut inst = SyncInstance::new(setup, ct, tx, status, dropped, Log::quiet()).unwrap();
        inst.process(Input::Role(true));
        inst.process(Input::Ha2(Ha2Event::Connected(1)));
        drain(&mut rx);
        let offers = |rx: &mut mpsc::Receiver<(u64, Vec<u8>)>| {
            drain(rx)
                .iter()
                .filter(|(_, b)| b.first() == Some(&config_sync::codec::CHANNEL))
                .count()
        };
        inst.process(Input::Cmd(SyncCmd::PauseConfig(true)));
        inst.process(Input::Cmd(SyncCmd::PeerConfig(0, [0; 32])));
        std::thread::sleep(Duration::from_millis(250));
        inst.process(Input::Timeout);
        assert_eq!(offers(&mut rx), 0, "an offer crossed the pause");
        inst.process(Input::Cmd(SyncCmd::PauseConfig(false)));
        let mut sent = 0;
        for _ in 0..30 {
            std::thread::sleep(Duration::from_millis(100));
            inst.process(Input::Timeout);
            sent += offers(&mut rx);
            if sent > 0 {
                break;
            }
        }
        assert!(sent > 0, "no offer after the pause ended");
    }
}
