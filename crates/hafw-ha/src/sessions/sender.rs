//! The active's side of session sync: conntrack events in, encoded
//! payloads out, reliably and in order. See the module docs of
//! [`crate::sessions`] for the protocol.

use std::collections::VecDeque;
use std::time::Duration;

use super::coalesce::Coalescer;
use super::codec::{
    self, decode, encode, entries_per_message, keys_per_message, Frame, ResyncReason, SyncMessage,
};
use super::config::{ConfigError, SenderConfig};
use super::entry::{Event, Session, SessionKey};
use super::rto::{LagHistogram, RttEstimator};
use crate::Time;

/// How long after a failed dump ([`SyncSender::handle_dump_failed`]) it is
/// asked for again: the kernel refusing a dump is rare and usually brief
/// (memory pressure), and until a dump arrives nothing reaches the peer.
pub const DUMP_RETRY: Duration = Duration::from_secs(1);

/// What the sender needs from the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SenderAction {
    /// Dump the conntrack table (after this action, so the dump is newer
    /// than every change dropped in its favour) and hand it to
    /// [`SyncSender::start_bulk`]. Changes arriving meanwhile are held and
    /// follow the bulk.
    RequestDump { reason: BulkReason },
}

/// Why a bulk generation is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BulkReason {
    /// The sender started: the peer's cache is of unknown age.
    Start,
    /// The daemon's event socket overflowed (ENOBUFS): changes were lost.
    Overrun,
    /// The peer (re)started: it has nothing.
    PeerJoined,
    /// The peer asked.
    Resync(ResyncReason),
    /// The periodic refresh ([`SenderConfig::refresh_interval`] after the
    /// last generation started): keeps entries whose kernel timers the
    /// active refreshes without events from expiring on the passive.
    Refresh,
    /// The peer stopped acknowledging and the changes waiting for it
    /// outgrew [`SenderConfig::max_pending`]: they were dropped, and this
    /// bulk replaces them once it acknowledges again.
    Backlog,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SenderStats {
    /// Conntrack events handed in.
    pub events: u64,
    /// Events folded into a change already pending for the same key.
    pub coalesced: u64,
    /// Pending changes dropped because a bulk generation carries them.
    pub superseded: u64,
    /// Entries and keys sent (first transmissions, bulk included).
    pub entries_sent: u64,
    pub messages_sent: u64,
    pub bytes_sent: u64,
    pub retransmits: u64,
    /// Bulk generations fully queued.
    pub bulks: u64,
    /// Resync requests from the peer that started a bulk.
    pub resyncs: u64,
    /// Times changes waited because the window was full (backpressure).
    pub window_stalls: u64,
    /// Acks of another stream (a previous run's) or of unsent messages.
    pub stale_acks: u64,
    /// Payloads that did not decode, or that only a receiver should get.
    pub bad_messages: u64,
    /// Events dropped while the peer was disconnected or stalled: the
    /// bulk when it is back carries their result.
    pub discarded: u64,
    /// Times the pending set outgrew [`SenderConfig::max_pending`] and was
    /// dropped for a bulk.
    pub backlogs: u64,
    /// Times the daemon reported the HA2 link down.
    pub disconnects: u64,
    /// Keys waiting for a message.
    pub pending: usize,
    /// Messages sent and not yet acknowledged.
    pub in_flight: usize,
    /// Age of the oldest change the peer has not acknowledged.
    pub lag: Duration,
    pub srtt: Option<Duration>,
    pub rto: Duration,
    /// Per acknowledged message: event to acknowledgement.
    pub lag_histogram: LagHistogram,
}

#[derive(Debug, Clone)]
pub struct SyncSender {
    config: SenderConfig,
    per_update: usize,
    per_destroy: usize,
    phase: Phase,
    /// The last bulk generation started (0: none yet).
    gen: u64,
    /// The seq of its BulkStart, once sent.
    bulk_start_seq: Option<u64>,
    /// The receiver run whose ack covered that BulkStart.
    start_acked_by: Option<u64>,
    /// When the next refresh bulk is due: armed when a generation starts,
    /// so any bulk (start, peer joined, overrun, resync) postpones it.
    refresh_at: Option<Time>,
    /// Why the dump being awaited was asked for, and when to ask again
    /// after the daemon reported it failed.
    dump_reason: BulkReason,
    dump_retry_at: Option<Time>,
    next_seq: u64,
    pending: Coalescer<Pending>,
    /// Ordered by seq.
    unacked: VecDeque<InFlight>,
    /// Seqs to transmit, each in `unacked` with `queued` set.
    outbox: VecDeque<u64>,
    actions: VecDeque<SenderAction>,
    rtt: RttEstimator,
    stats: SenderStats,
}

#[derive(Debug, Clone)]
enum Phase {
    /// Holding changes until the daemon's dump arrives.
    AwaitingDump,
    Bulk(BulkTx),
    Streaming,
    /// The HA2 link is down: nothing is kept for the peer (events are
    /// discarded, nothing is in flight); when it is back it gets one bulk.
    Disconnected,
    /// The peer stopped acknowledging and the pending set hit its bound:
    /// events are discarded and only the oldest unacknowledged message is
    /// kept, as a probe; its acknowledgement starts one bulk.
    Backlogged,
}

#[derive(Debug, Clone)]
struct BulkTx {
    started: Time,
    start_sent: bool,
    entries: std::vec::IntoIter<Session>,
    sent: u64,
}

enum BulkStep {
    Start,
    Chunk(Vec<Session>),
    End(u64),
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    /// The newest state; `None`: destroyed. A destroy supersedes anything
    /// before it (removing an unknown key is harmless), so a short-lived
    /// connection's New..Destroy costs one 13-byte key.
    session: Option<Session>,
    /// The first change since the key was last sent: the lag clock.
    since: Time,
}

#[derive(Debug, Clone)]
struct InFlight {
    seq: u64,
    bytes: Vec<u8>,
    first_sent: Time,
    /// Retransmission deadline.
    due: Time,
    retries: u32,
    /// In the outbox, waiting for the daemon.
    queued: bool,
    /// The receiver holds it out of order: no retransmission needed.
    sacked: bool,
    oldest_change: Time,
}

impl SyncSender {
    /// A sender at the start of its stream: it asks for a dump at once,
    /// because the peer's cache (if any) is of another stream.
    pub fn new(config: SenderConfig) -> Result<SyncSender, ConfigError> {
        config.validate()?;
        let mut s = SyncSender {
            per_update: entries_per_message(config.max_payload),
            per_destroy: keys_per_message(config.max_payload),
            rtt: RttEstimator::new(config.initial_rto, config.min_rto, config.max_rto),
            config,
            phase: Phase::AwaitingDump,
            gen: 0,
            bulk_start_seq: None,
            start_acked_by: None,
            refresh_at: None,
            dump_reason: BulkReason::Start,
            dump_retry_at: None,
            next_seq: 1,
            pending: Coalescer::default(),
            unacked: VecDeque::new(),
            outbox: VecDeque::new(),
            actions: VecDeque::new(),
            stats: SenderStats {
                events: 0,
                coalesced: 0,
                superseded: 0,
                entries_sent: 0,
                messages_sent: 0,
                bytes_sent: 0,
                retransmits: 0,
                bulks: 0,
                resyncs: 0,
                window_stalls: 0,
                stale_acks: 0,
                bad_messages: 0,
                discarded: 0,
                backlogs: 0,
                disconnects: 0,
                pending: 0,
                in_flight: 0,
                lag: Duration::ZERO,
                srtt: None,
                rto: Duration::ZERO,
                lag_histogram: LagHistogram::default(),
            },
        };
        s.actions.push_back(SenderAction::RequestDump {
            reason: BulkReason::Start,
        });
        Ok(s)
    }

    pub fn stream(&self) -> u64 {
        self.config.stream
    }

    /// A conntrack event (not one of our own injected entries).
    pub fn handle_event(&mut self, now: Time, event: Event) {
        self.absorb(now, event);
        self.pump(now);
    }

    /// Many events at once (one read of the event socket): cheaper than
    /// one call each, since the pump runs once.
    pub fn handle_events(&mut self, now: Time, events: impl IntoIterator<Item = Event>) {
        for event in events {
            self.absorb(now, event);
        }
        self.pump(now);
    }

    /// The event socket overflowed (ENOBUFS): changes were lost. Call it
    /// before dumping; the dump then supersedes every pending change.
    pub fn handle_overrun(&mut self, now: Time) {
        if !self.holding() {
            self.await_dump(now, BulkReason::Overrun, false);
        }
    }

    /// The peer (re)started (a new wire epoch): what is in flight is lost
    /// on it, so a bulk replaces it.
    pub fn handle_peer_joined(&mut self, now: Time) {
        self.await_dump(now, BulkReason::PeerJoined, true);
    }

    /// A refresh now: asks for a dump like an overrun does, without having
    /// lost anything. The periodic one is the sender's own timer
    /// ([`SyncSender::poll_timeout`]); this is for a bulk out of turn.
    pub fn request_bulk(&mut self, now: Time) {
        if !self.holding() {
            self.await_dump(now, BulkReason::Refresh, false);
        }
    }

    /// The HA2 link is down (the peer died, or the network between): what
    /// is in flight and pending is dropped and events are discarded until
    /// [`SyncSender::handle_peer_joined`] (or
    /// [`SyncSender::handle_reconnect`]), which sends one fresh bulk. A
    /// survivor's memory stays flat however long its peer is gone, and
    /// the peer never gets a backlog.
    pub fn handle_disconnect(&mut self, _now: Time) {
        self.stats.disconnects += 1;
        self.stats.superseded += self.pending.len() as u64;
        self.pending.clear();
        self.unacked.clear();
        self.outbox.clear();
        self.refresh_at = None;
        self.dump_retry_at = None;
        // A dump asked for and not yet taken is not worth taking.
        self.actions.clear();
        self.phase = Phase::Disconnected;
    }

    /// Disconnected or backlogged: events are not kept, and the next
    /// bulk waits for the peer.
    fn holding(&self) -> bool {
        matches!(self.phase, Phase::Disconnected | Phase::Backlogged)
    }

    /// The HA2 connection was re-established: whatever was in flight on
    /// the old one is gone, so everything unacknowledged goes again now
    /// rather than after its timeout.
    pub fn handle_reconnect(&mut self, now: Time) {
        if matches!(self.phase, Phase::Disconnected) {
            return self.await_dump(now, BulkReason::PeerJoined, true);
        }
        let rto = self.rtt.rto();
        for m in self.unacked.iter_mut().filter(|m| !m.queued && !m.sacked) {
            m.queued = true;
            m.due = now + rto;
            self.outbox.push_back(m.seq);
            self.stats.retransmits += 1;
        }
    }

    /// The daemon could not take the dump it was asked for: it is asked
    /// again after [`DUMP_RETRY`] (changes keep being held meanwhile).
    pub fn handle_dump_failed(&mut self, now: Time) {
        if matches!(self.phase, Phase::AwaitingDump) {
            self.dump_retry_at = Some(now + DUMP_RETRY);
        }
    }

    /// The conntrack dump the daemon took after [`SenderAction::RequestDump`]
    /// (or after [`SyncSender::handle_overrun`]). It is sent as a new bulk
    /// generation; changes held meanwhile follow it.
    pub fn start_bulk(&mut self, now: Time, dump: Vec<Session>) {
        if self.holding() {
            // Asked for before the link went down or the peer stalled:
            // the bulk for its return will be dumped then.
            return;
        }
        self.dump_retry_at = None;
        self.gen += 1;
        self.refresh_at = Some(now + self.config.refresh_interval);
        self.phase = Phase::Bulk(BulkTx {
            started: now,
            start_sent: false,
            entries: dump.into_iter(),
            sent: 0,
        });
        self.pump(now);
    }

    /// A payload from the peer's receiver (an ack or a resync request).
    pub fn handle_message(&mut self, now: Time, bytes: &[u8]) -> Result<(), codec::DecodeError> {
        match decode(bytes) {
            Ok(frame) => {
                self.handle_frame(now, &frame);
                Ok(())
            }
            Err(e) => {
                self.stats.bad_messages += 1;
                Err(e)
            }
        }
    }

    pub fn handle_frame(&mut self, now: Time, frame: &Frame) {
        match frame.msg {
            SyncMessage::Ack {
                upto,
                sack,
                receiver,
            } => self.on_ack(now, frame.stream, upto, sack, receiver),
            SyncMessage::ResyncRequest {
                gen,
                reason,
                receiver,
            } => self.on_resync(now, frame.stream, gen, reason, receiver),
            _ => self.stats.bad_messages += 1,
        }
    }

    /// Retransmissions, the flush interval and the periodic refresh.
    pub fn handle_timeout(&mut self, now: Time) {
        if self.refresh_due().is_some_and(|t| t <= now) {
            self.refresh_at = None;
            self.await_dump(now, BulkReason::Refresh, false);
        }
        if self.dump_retry_at.is_some_and(|t| t <= now) {
            self.dump_retry_at = None;
            self.actions.push_back(SenderAction::RequestDump {
                reason: self.dump_reason,
            });
        }
        for m in self.unacked.iter_mut() {
            if m.queued || m.sacked || m.due > now {
                continue;
            }
            m.retries += 1;
            m.due = now + self.rtt.backoff(m.retries);
            m.queued = true;
            self.outbox.push_back(m.seq);
            self.stats.retransmits += 1;
        }
        self.pump(now);
    }

    /// The next payload for the HA2 link (seal it as `Kind::Ha2Frame`).
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        while let Some(seq) = self.outbox.pop_front() {
            // Acked while it waited: nothing to send.
            if let Some(m) = self.find_mut(seq) {
                m.queued = false;
                return Some(m.bytes.clone());
            }
        }
        None
    }

    pub fn poll_action(&mut self) -> Option<SenderAction> {
        self.actions.pop_front()
    }

    /// The earliest retransmission, flush or refresh deadline: the one
    /// timer the daemon arms.
    pub fn poll_timeout(&self) -> Option<Time> {
        let retransmit = self
            .unacked
            .iter()
            .filter(|m| !m.queued && !m.sacked)
            .map(|m| m.due)
            .min();
        let flush = match self.phase {
            Phase::Streaming if self.room() > 0 => self
                .pending
                .front()
                .map(|(_, p)| p.since + self.config.flush_interval),
            _ => None,
        };
        retransmit
            .into_iter()
            .chain(flush)
            .chain(self.refresh_due())
            .chain(self.dump_retry_at)
            .min()
    }

    /// The refresh deadline, while streaming: during a bulk the table is
    /// being sent anyway, and while a dump is awaited one is coming.
    fn refresh_due(&self) -> Option<Time> {
        match self.phase {
            Phase::Streaming => self.refresh_at,
            _ => None,
        }
    }

    pub fn stats(&self, now: Time) -> SenderStats {
        let oldest = self
            .unacked
            .iter()
            .map(|m| m.oldest_change)
            .chain(self.pending.front().map(|(_, p)| p.since))
            .min();
        SenderStats {
            pending: self.pending.len(),
            in_flight: self.unacked.len(),
            lag: oldest.map_or(Duration::ZERO, |t| now.saturating_sub(t)),
            srtt: self.rtt.srtt(),
            rto: self.rtt.rto(),
            ..self.stats.clone()
        }
    }

    fn absorb(&mut self, now: Time, event: Event) {
        self.stats.events += 1;
        if self.holding() {
            self.stats.discarded += 1;
            return;
        }
        let session = match event {
            Event::New(s) | Event::Update(s) => Some(s),
            Event::Destroy(_) => None,
        };
        let key = event.key();
        match self.pending.get_mut(&key) {
            Some(p) => {
                p.session = session;
                self.stats.coalesced += 1;
            }
            None => self.pending.upsert(
                key,
                Pending {
                    session,
                    since: now,
                },
            ),
        }
        if self.pending.len() > self.config.max_pending {
            self.backlog();
        }
    }

    /// The pending set outgrew its bound: the peer is not taking what we
    /// send (frozen, or its link stalled without breaking). A backlog that
    /// size is worth less than a bulk, so it goes, with all in flight but
    /// the oldest message, kept as a probe: its acknowledgement says the
    /// peer is back, and [`SyncSender::pump`] then asks for the bulk.
    fn backlog(&mut self) {
        self.stats.backlogs += 1;
        self.stats.superseded += self.pending.len() as u64;
        self.pending.clear();
        self.unacked.truncate(1);
        let probe = self.unacked.front().map(|m| m.seq);
        self.outbox.retain(|s| Some(*s) == probe);
        // A dump asked for (or to be asked for again) would be dropped on
        // arrival: the bulk waits for the peer.
        self.actions.clear();
        self.dump_retry_at = None;
        self.phase = Phase::Backlogged;
    }

    fn await_dump(&mut self, _now: Time, reason: BulkReason, drop_in_flight: bool) {
        if drop_in_flight {
            // The peer cannot use them: the bulk's start makes it skip
            // past them, and they would only hold the window.
            self.unacked.clear();
            self.outbox.clear();
        }
        if matches!(self.phase, Phase::AwaitingDump) {
            // A dump is already coming, and it may have been taken before
            // the changes pending now: keep them, they follow the bulk.
            return;
        }
        self.stats.superseded += self.pending.len() as u64;
        self.pending.clear();
        self.phase = Phase::AwaitingDump;
        self.dump_reason = reason;
        self.actions.push_back(SenderAction::RequestDump { reason });
    }

    fn on_ack(&mut self, now: Time, stream: u64, upto: u64, sack: u64, receiver: u64) {
        if stream != self.config.stream || upto >= self.next_seq {
            self.stats.stale_acks += 1;
            return;
        }
        if self.bulk_start_seq.is_some_and(|s| s <= upto) && self.start_acked_by.is_none() {
            self.start_acked_by = Some(receiver);
        }
        // Round-trip samples only from messages sent once (Karn) and heard
        // of for the first time now: one held out of order was reported by
        // an earlier sack, and its cumulative ack waited for another.
        let mut sample = None;
        while self.unacked.front().is_some_and(|m| m.seq <= upto) {
            let Some(m) = self.unacked.pop_front() else {
                break;
            };
            if m.retries == 0 && !m.sacked {
                sample = Some(now.saturating_sub(m.first_sent));
            }
            self.stats
                .lag_histogram
                .record(now.saturating_sub(m.oldest_change));
        }
        for m in self.unacked.iter_mut() {
            let Some(bit) = m.seq.checked_sub(upto.saturating_add(2)) else {
                continue;
            };
            if bit < 64 && sack & (1 << bit) != 0 && !m.sacked {
                m.sacked = true;
                if m.retries == 0 {
                    sample = Some(now.saturating_sub(m.first_sent));
                }
            }
        }
        if let Some(r) = sample {
            self.rtt.sample(r);
        }
        self.pump(now);
    }

    fn on_resync(&mut self, now: Time, stream: u64, gen: u64, reason: ResyncReason, receiver: u64) {
        if matches!(self.phase, Phase::AwaitingDump | Phase::Disconnected) {
            return;
        }
        let ours = stream == self.config.stream;
        // A receiver that names our current generation saw its start: what
        // it misses, retransmission brings (the request is stale).
        let has_our_bulk = ours && gen == self.gen && gen != 0;
        // A receiver that sees our stream but not its BulkStart: if the
        // BulkStart is still unacknowledged, it was lost or is late and
        // retransmission brings it; if this very receiver run acked it, the
        // request crossed that ack. Only another run (a restarted
        // receiver the daemon did not report) needs a new bulk.
        let start_coming = ours
            && reason == ResyncReason::NotSynced
            && self.bulk_start_seq.is_some_and(|seq| {
                self.unacked.iter().any(|m| m.seq == seq) || self.start_acked_by == Some(receiver)
            });
        if (has_our_bulk || start_coming) && reason != ResyncReason::BulkMismatch {
            return;
        }
        self.stats.resyncs += 1;
        self.await_dump(now, BulkReason::Resync(reason), true);
    }

    fn room(&self) -> usize {
        self.config.window.saturating_sub(self.unacked.len())
    }

    fn find_mut(&mut self, seq: u64) -> Option<&mut InFlight> {
        let front = self.unacked.front()?.seq;
        let i = usize::try_from(seq.checked_sub(front)?).ok()?;
        self.unacked.get_mut(i).filter(|m| m.seq == seq)
    }

    /// Sends what the phase and the window allow.
    fn pump(&mut self, now: Time) {
        loop {
            let room = self.room();
            match &mut self.phase {
                Phase::AwaitingDump | Phase::Disconnected => return,
                Phase::Backlogged if !self.unacked.is_empty() => return,
                Phase::Backlogged => self.await_dump(now, BulkReason::Backlog, true),
                Phase::Bulk(_) if room == 0 => {
                    self.stats.window_stalls += 1;
                    return;
                }
                Phase::Bulk(b) => {
                    let started = b.started;
                    let step = if !b.start_sent {
                        b.start_sent = true;
                        BulkStep::Start
                    } else {
                        let entries: Vec<Session> =
                            b.entries.by_ref().take(self.per_update).collect();
                        if entries.is_empty() {
                            BulkStep::End(b.sent)
                        } else {
                            b.sent += entries.len() as u64;
                            BulkStep::Chunk(entries)
                        }
                    };
                    let gen = self.gen;
                    match step {
                        BulkStep::Start => {
                            self.bulk_start_seq = Some(self.next_seq);
                            self.start_acked_by = None;
                            self.send(now, started, 0, |seq| SyncMessage::BulkStart { seq, gen })
                        }
                        BulkStep::Chunk(entries) => {
                            let n = entries.len();
                            self.send(now, started, n, |seq| SyncMessage::BulkChunk {
                                seq,
                                gen,
                                entries,
                            });
                        }
                        BulkStep::End(count) => {
                            // Changes held during the bulk may go from here
                            // on: their seqs follow the generation's end.
                            self.phase = Phase::Streaming;
                            self.stats.bulks += 1;
                            self.send(now, started, 0, |seq| SyncMessage::BulkEnd {
                                seq,
                                gen,
                                count,
                            });
                        }
                    }
                }
                Phase::Streaming => {
                    let Some((_, front)) = self.pending.front() else {
                        return;
                    };
                    let due = front.since + self.config.flush_interval <= now;
                    if !due && self.pending.len() < self.per_update {
                        return;
                    }
                    if room == 0 {
                        self.stats.window_stalls += 1;
                        return;
                    }
                    self.flush_batch(now);
                }
            }
        }
    }

    /// One Update and/or one Destroy from the oldest pending changes. With
    /// one slot left both may go, so the window is soft by one message.
    fn flush_batch(&mut self, now: Time) {
        let mut ups = Vec::new();
        let mut dels: Vec<SessionKey> = Vec::new();
        let (mut ups_since, mut dels_since) = (now, now);
        while ups.len() < self.per_update && dels.len() < self.per_destroy {
            let Some((key, p)) = self.pending.pop_front() else {
                break;
            };
            match p.session {
                Some(s) => {
                    ups_since = ups_since.min(p.since);
                    ups.push(s);
                }
                None => {
                    dels_since = dels_since.min(p.since);
                    dels.push(key);
                }
            }
        }
        if !ups.is_empty() {
            let n = ups.len();
            self.send(now, ups_since, n, |seq| SyncMessage::Update {
                seq,
                entries: ups,
            });
        }
        if !dels.is_empty() {
            let n = dels.len();
            self.send(now, dels_since, n, |seq| SyncMessage::Destroy {
                seq,
                keys: dels,
            });
        }
    }

    fn send(
        &mut self,
        now: Time,
        oldest_change: Time,
        entries: usize,
        msg: impl FnOnce(u64) -> SyncMessage,
    ) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let bytes = encode(&Frame {
            stream: self.config.stream,
            msg: msg(seq),
        });
        self.stats.messages_sent += 1;
        self.stats.entries_sent += entries as u64;
        self.stats.bytes_sent += bytes.len() as u64;
        self.unacked.push_back(InFlight {
            seq,
            bytes,
            first_sent: now,
            due: now + self.rtt.rto(),
            retries: 0,
            queued: true,
            sacked: false,
            oldest_change,
        });
        self.outbox.push_back(seq);
    }
}
