//! The passive's side of session sync: payloads in, the session cache
//! kept, acknowledgements out, and (in [`Mode::Mirror`]) kernel changes out.
//! See the module docs of [`crate::sessions`] for the protocol.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use super::cache::SessionCache;
use super::coalesce::Coalescer;
use super::codec::{self, decode, encode, Frame, ResyncReason, SyncMessage};
use super::config::{ConfigError, Mode, ReceiverConfig};
use super::entry::{Session, SessionKey};
use crate::Time;

/// Kernel changes for the daemon ([`Mode::Mirror`] only), batched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReceiverAction {
    /// Create or update these entries in this node's conntrack table
    /// (marked as injected, so the daemon's own event filter drops them).
    Install(Vec<Session>),
    Remove(Vec<SessionKey>),
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReceiverStats {
    /// Entries in the cache.
    pub sessions: usize,
    /// Entries applied (updates and bulk chunks) and keys destroyed.
    pub synced: u64,
    pub destroyed: u64,
    /// Bulk generations completed.
    pub bulks: u64,
    /// Resync requests sent.
    pub resyncs: u64,
    /// Payloads that did not decode (another build or a bug).
    pub undecodable: u64,
    /// Messages dropped: of a stream we are not synced to, beyond the
    /// reorder window, or only a sender should get.
    pub dropped: u64,
    pub duplicates: u64,
    /// Bulk chunks or ends of an abandoned generation.
    pub stale: u64,
    /// Entries dropped by their timeout.
    pub expired: u64,
    pub acks: u64,
    /// Data messages refused because the peer is not active (only an
    /// active's table is worth copying; a passive or a stale peer sending
    /// entries is confused, or not our peer). Not acknowledged: an active
    /// we had not yet heard of as active retransmits them.
    pub refused_peer_not_active: u64,
    /// Data messages refused because this node is active: its own kernel
    /// table is the live one, never overwritten from the peer.
    pub refused_local_active: u64,
    /// Entries refused because a tuple names a node's own address.
    pub refused_own_address: u64,
    /// Entries refused because a tuple holds an address no routed flow
    /// has ([`Session::is_bogus`]).
    pub refused_bogus: u64,
    /// New entries dropped because the cache held `max_sessions`.
    pub cache_full: u64,
    /// Entries whose timeout was capped at the kernel's default maximum.
    pub clamped: u64,
    /// Messages held out of order now.
    pub buffered: usize,
    /// How long the oldest gap has been waiting for a retransmission.
    pub waiting: Option<Duration>,
    pub ready: bool,
}

#[derive(Debug, Clone)]
pub struct SyncReceiver {
    config: ReceiverConfig,
    cache: SessionCache,
    stream: Option<u64>,
    /// The next seq to deliver.
    expected: u64,
    buffer: BTreeMap<u64, SyncMessage>,
    /// When the current gap (some seq missing, later ones held) began.
    gap_since: Option<Time>,
    bulk: Option<BulkRx>,
    /// The wire generation of the last bulk start seen on `stream`.
    last_gen: u64,
    /// Local generation tag for the cache (wire gens restart per stream).
    tag: u64,
    ready: bool,
    /// An entry was dropped for the cap since the last bulk started: the
    /// cache is not a full copy, so the node is not ready.
    overflowed: bool,
    /// This node is active: nothing from the peer is applied.
    local_active: bool,
    /// The peer is active, as its heartbeats say: only then are its
    /// entries taken.
    peer_active: bool,
    /// Messages of an unknown stream have been arriving since.
    unsynced_since: Option<Time>,
    /// The last such stream: a NotSynced request names it, so its sender
    /// can tell "I lost your BulkStart" from "I restarted".
    foreign: Option<u64>,
    last_request: Option<Time>,
    /// A resync request waiting for the rate limit.
    want_resync: Option<ResyncReason>,
    ack_due: bool,
    outbox: VecDeque<Vec<u8>>,
    dirty: Coalescer<()>,
    actions: VecDeque<ReceiverAction>,
    next_scan: Option<Time>,
    stats: ReceiverStats,
}

#[derive(Debug, Clone, Copy)]
struct BulkRx {
    gen: u64,
    received: u64,
}

impl SyncReceiver {
    pub fn new(config: ReceiverConfig) -> Result<SyncReceiver, ConfigError> {
        config.validate()?;
        Ok(SyncReceiver {
            config,
            cache: SessionCache::default(),
            stream: None,
            expected: 0,
            buffer: BTreeMap::new(),
            gap_since: None,
            bulk: None,
            last_gen: 0,
            tag: 0,
            ready: false,
            overflowed: false,
            local_active: false,
            peer_active: false,
            unsynced_since: None,
            foreign: None,
            last_request: None,
            want_resync: None,
            ack_due: false,
            outbox: VecDeque::new(),
            dirty: Coalescer::default(),
            actions: VecDeque::new(),
            next_scan: None,
            stats: ReceiverStats::default(),
        })
    }

    pub fn mode(&self) -> Mode {
        self.config.mode
    }

    /// This node became active (true) or passive: an active applies
    /// nothing from its peer. A new receiver is passive.
    pub fn set_local_active(&mut self, active: bool) {
        self.local_active = active;
    }

    /// The peer's role from its heartbeats (true: it is alive and
    /// active). Until it says so, a new receiver refuses entries.
    pub fn set_peer_active(&mut self, active: bool) {
        self.peer_active = active;
    }

    /// A payload from the active's sender.
    pub fn handle_message(&mut self, now: Time, bytes: &[u8]) -> Result<(), codec::DecodeError> {
        match decode(bytes) {
            Ok(frame) => {
                self.handle_frame(now, frame);
                Ok(())
            }
            Err(e) => {
                self.stats.undecodable += 1;
                Err(e)
            }
        }
    }

    pub fn handle_frame(&mut self, now: Time, frame: Frame) {
        let Some(seq) = frame.msg.seq() else {
            self.stats.dropped += 1;
            return;
        };
        // Only an active's table is copied, and only onto a passive
        // (architecture.md, session sync). Refused before any state
        // changes, unacknowledged, so a just-promoted peer's messages come
        // again once its heartbeats said it is active.
        if self.local_active {
            self.stats.refused_local_active += 1;
            return;
        }
        if !self.peer_active {
            self.stats.refused_peer_not_active += 1;
            return;
        }
        if self.stream != Some(frame.stream) {
            if !matches!(frame.msg, SyncMessage::BulkStart { .. }) {
                // Its bulk start may only be late (reordered): ask after
                // `resync_interval` if it has not come by then.
                self.stats.dropped += 1;
                self.foreign = Some(frame.stream);
                let since = *self.unsynced_since.get_or_insert(now);
                self.want(
                    now,
                    ResyncReason::NotSynced,
                    since + self.config.resync_interval,
                );
                return;
            }
            // A new run of the sender: its seqs start over at this bulk.
            self.stream = Some(frame.stream);
            self.expected = seq;
            self.buffer.clear();
            self.bulk = None;
            self.unsynced_since = None;
            self.foreign = None;
            self.want_resync = None;
        }
        self.ack_due = true;
        let before = self.expected;
        if seq < self.expected {
            self.stats.duplicates += 1;
        } else if seq == self.expected {
            self.deliver(now, frame.msg);
            self.expected = self.expected.saturating_add(1);
        } else if matches!(frame.msg, SyncMessage::BulkStart { .. }) {
            // A bulk supersedes everything before it, so whatever is
            // missing before it is not worth waiting for (the sender
            // dropped it when it restarted the bulk).
            self.buffer = self.buffer.split_off(&seq);
            self.deliver(now, frame.msg);
            self.expected = seq.saturating_add(1);
        } else if seq - self.expected > self.config.window as u64 {
            self.stats.dropped += 1;
        } else if self.buffer.insert(seq, frame.msg).is_some() {
            self.stats.duplicates += 1;
        }
        // A hostile seq near u64::MAX saturates instead of wrapping; a
        // real sender never gets there.
        while let Some(msg) = self.buffer.remove(&self.expected) {
            self.deliver(now, msg);
            self.expected = self.expected.saturating_add(1);
        }
        // The gap clock restarts whenever it moves, so it measures how long
        // retransmission has made no progress.
        if self.buffer.is_empty() {
            self.gap_since = None;
        } else if self.expected != before || self.gap_since.is_none() {
            self.gap_since = Some(now);
        }
        self.stats.buffered = self.buffer.len();
    }

    /// Resync requests and expiry.
    pub fn handle_timeout(&mut self, now: Time) {
        if let Some(since) = self.gap_since {
            if now >= since + self.config.gap_timeout {
                self.gap_since = Some(now);
                self.want(now, ResyncReason::Gap, now);
            }
        }
        if let Some(reason) = self.want_resync {
            let allowed = self
                .last_request
                .map_or(now, |t| t + self.config.resync_interval);
            let not_before = match reason {
                ResyncReason::NotSynced => {
                    self.unsynced_since.map(|t| t + self.config.resync_interval)
                }
                _ => Some(now),
            };
            match not_before {
                // Synced meanwhile: the request is moot.
                None => self.want_resync = None,
                Some(t) if now >= t.max(allowed) => self.send_request(now, reason),
                Some(_) => {}
            }
        }
        if self.next_scan.is_some_and(|t| t <= now) {
            self.expire(now);
        }
    }

    /// Drops entries whose timeout ran out since their last update (the
    /// active's destroy may have been lost, or it failed without one).
    /// Returns how many went.
    pub fn expire(&mut self, now: Time) -> usize {
        let (gone, next) = self.cache.expire(now, self.config.expiry_grace);
        self.stats.expired += gone.len() as u64;
        let n = gone.len();
        self.mark_dirty(gone);
        self.next_scan = next.map(|t| t.max(now + self.config.expiry_scan));
        n
    }

    /// The next payload for the HA2 link: resync requests, then an ack.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        if let Some(b) = self.outbox.pop_front() {
            return Some(b);
        }
        if !self.ack_due {
            return None;
        }
        self.ack_due = false;
        let stream = self.stream?;
        let mut sack = 0u64;
        let first = self.expected.saturating_add(1);
        for &seq in self
            .buffer
            .range(first..first.saturating_add(64))
            .map(|(s, _)| s)
        {
            sack |= 1 << (seq - first);
        }
        self.stats.acks += 1;
        Some(encode(&Frame {
            stream,
            msg: SyncMessage::Ack {
                upto: self.expected.saturating_sub(1),
                sack,
                receiver: self.config.instance,
            },
        }))
    }

    /// Kernel changes to make ([`Mode::Mirror`]); never anything in
    /// [`Mode::Commit`].
    pub fn poll_action(&mut self) -> Option<ReceiverAction> {
        if self.local_active {
            return None;
        }
        if self.actions.is_empty() {
            let mut install = Vec::new();
            let mut remove = Vec::new();
            while install.len() + remove.len() < self.config.action_batch {
                let Some((key, ())) = self.dirty.pop_front() else {
                    break;
                };
                match self.cache.get(&key) {
                    Some(c) => install.push(c.session),
                    None => remove.push(key),
                }
            }
            if !remove.is_empty() {
                self.actions.push_back(ReceiverAction::Remove(remove));
            }
            if !install.is_empty() {
                self.actions.push_back(ReceiverAction::Install(install));
            }
        }
        self.actions.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Time> {
        let gap = self.gap_since.map(|t| t + self.config.gap_timeout);
        let request = self.want_resync.map(|reason| {
            let allowed = self
                .last_request
                .map_or(Duration::ZERO, |t| t + self.config.resync_interval);
            let not_before = match (reason, self.unsynced_since) {
                (ResyncReason::NotSynced, Some(t)) => t + self.config.resync_interval,
                _ => Duration::ZERO,
            };
            allowed.max(not_before)
        });
        [gap, request, self.next_scan].into_iter().flatten().min()
    }

    /// A complete bulk generation has been received and nothing was
    /// dropped for the cap since it started: the cache holds the active's
    /// whole table (a restarted passive reports ready only now).
    pub fn ready(&self) -> bool {
        self.ready && !self.overflowed
    }

    /// Why [`SyncReceiver::ready`] is false, for status and readiness.
    pub fn not_ready_reason(&self) -> Option<String> {
        if self.overflowed {
            Some(format!(
                "session cache full ({} sessions, nf_conntrack_max): {} entries dropped",
                self.config.max_sessions, self.stats.cache_full
            ))
        } else if !self.ready {
            Some("no complete bulk of the peer's sessions yet".into())
        } else {
            None
        }
    }

    pub fn cache(&self) -> &SessionCache {
        &self.cache
    }

    /// Promotion (mode B's commit): the whole cache, to install before
    /// the floating addresses are announced. The receiver is left empty
    /// and unsynced: after a later demotion a new bulk fills it.
    pub fn take_for_promotion(&mut self) -> Vec<Session> {
        let sessions = self.cache.take();
        let stats = ReceiverStats {
            sessions: 0,
            ready: false,
            buffered: 0,
            waiting: None,
            ..self.stats.clone()
        };
        if let Ok(fresh) = SyncReceiver::new(self.config.clone()) {
            *self = SyncReceiver {
                stats,
                local_active: self.local_active,
                peer_active: self.peer_active,
                ..fresh
            };
        }
        sessions
    }

    pub fn stats(&self, now: Time) -> ReceiverStats {
        ReceiverStats {
            sessions: self.cache.len(),
            buffered: self.buffer.len(),
            waiting: self.gap_since.map(|t| now.saturating_sub(t)),
            ready: self.ready(),
            ..self.stats.clone()
        }
    }

    /// Applies one message, in sequence order.
    fn deliver(&mut self, now: Time, msg: SyncMessage) {
        match msg {
            SyncMessage::Update { entries, .. } => self.upsert(now, entries),
            SyncMessage::Destroy { keys, .. } => {
                let gone: Vec<SessionKey> =
                    keys.into_iter().filter(|k| self.cache.remove(k)).collect();
                self.stats.destroyed += gone.len() as u64;
                self.mark_dirty(gone);
            }
            SyncMessage::BulkStart { gen, .. } => {
                self.tag += 1;
                self.overflowed = false;
                self.last_gen = gen;
                self.bulk = Some(BulkRx { gen, received: 0 });
            }
            SyncMessage::BulkChunk { gen, entries, .. } => match &mut self.bulk {
                Some(b) if b.gen == gen => {
                    b.received += entries.len() as u64;
                    self.upsert(now, entries);
                }
                _ => self.stats.stale += 1,
            },
            SyncMessage::BulkEnd { gen, count, .. } => match self.bulk.take() {
                Some(b) if b.gen == gen && b.received == count => {
                    let gone = self.cache.sweep(self.tag);
                    self.mark_dirty(gone);
                    self.ready = true;
                    self.stats.bulks += 1;
                }
                Some(b) if b.gen == gen => {
                    // The sender counted otherwise: a bug somewhere; the
                    // cache is not to be trusted as a full copy.
                    self.want(now, ResyncReason::BulkMismatch, now);
                }
                other => {
                    self.bulk = other;
                    self.stats.stale += 1;
                }
            },
            SyncMessage::Ack { .. } | SyncMessage::ResyncRequest { .. } => {
                self.stats.dropped += 1;
            }
        }
    }

    fn upsert(&mut self, now: Time, entries: Vec<Session>) {
        let mirror = self.config.mode == Mode::Mirror;
        let mut earliest: Option<u32> = None;
        for mut s in entries {
            // The sender's own-traffic filter, again on receipt: a sender
            // that skipped it (another build, a bug) must not make this
            // node overwrite its own flows or NAT onto itself.
            if s.touches(&self.config.own_addresses) {
                self.stats.refused_own_address += 1;
                continue;
            }
            if s.is_bogus() {
                self.stats.refused_bogus += 1;
                continue;
            }
            if self.cache.len() >= self.config.max_sessions && self.cache.get(&s.key).is_none() {
                self.stats.cache_full += 1;
                self.overflowed = true;
                continue;
            }
            if s.clamp_timeout() {
                self.stats.clamped += 1;
            }
            self.stats.synced += 1;
            if mirror {
                self.dirty.upsert(s.key, ());
            }
            earliest = Some(earliest.map_or(s.timeout_s, |t| t.min(s.timeout_s)));
            self.cache.upsert(s, now, self.tag);
        }
        if let Some(t) = earliest {
            // Scans are at least `expiry_scan` apart, and no later than the
            // earliest new deadline needs.
            let deadline = now + Duration::from_secs(u64::from(t)) + self.config.expiry_grace;
            let scan = deadline.max(now + self.config.expiry_scan);
            self.next_scan = Some(self.next_scan.map_or(scan, |n| n.min(scan)));
        }
    }

    fn mark_dirty(&mut self, keys: Vec<SessionKey>) {
        if self.config.mode == Mode::Mirror {
            for k in keys {
                self.dirty.upsert(k, ());
            }
        }
    }

    /// Records a resync request to send at `not_before` at the earliest
    /// (and not sooner than `resync_interval` after the last one).
    fn want(&mut self, now: Time, reason: ResyncReason, not_before: Time) {
        if self.want_resync.is_none() || reason != ResyncReason::NotSynced {
            self.want_resync = Some(reason);
        }
        let allowed = self
            .last_request
            .map_or(now, |t| t + self.config.resync_interval);
        if now >= not_before.max(allowed) {
            self.send_request(now, reason);
        }
    }

    fn send_request(&mut self, now: Time, reason: ResyncReason) {
        self.want_resync = None;
        self.last_request = Some(now);
        self.stats.resyncs += 1;
        let (stream, gen) = match reason {
            ResyncReason::NotSynced => (self.foreign.unwrap_or(0), 0),
            _ => (self.stream.unwrap_or(0), self.last_gen),
        };
        self.outbox.push_back(encode(&Frame {
            stream,
            msg: SyncMessage::ResyncRequest {
                gen,
                reason,
                receiver: self.config.instance,
            },
        }));
    }
}
