//! Session sync over HA2: the active streams its conntrack table to the
//! passive, so that a promotion keeps every connection and NAT binding.
//! Pure cores (architecture.md, "pure cores, thin drivers"): payloads,
//! events and time in; payloads, actions and deadlines out.
//!
//! | module | what it holds |
//! |---|---|
//! | [`entry`] | [`Session`], [`SessionKey`], [`Event`]: plain data the daemon converts conntrack entries to |
//! | [`codec`] | the payload format ([`Frame`], [`SyncMessage`]), versioned, never panicking |
//! | [`sender`] | [`SyncSender`], on the active: coalescing, batching, sequence numbers, retransmission, bulk generations |
//! | [`receiver`] | [`SyncReceiver`], on the passive: in-order delivery, acks, the [`SessionCache`], expiry, kernel actions |
//! | [`config`] | their settings and defaults |
//!
//! # Protocol
//!
//! **Stream and order.** A sender run has a `stream` id; its data
//! messages (Update, Destroy, BulkStart, BulkChunk, BulkEnd) carry one
//! sequence of `seq` numbers, and the receiver applies them strictly in
//! that order, holding up to `window` later ones while a gap is filled.
//! Applying in order is what makes the result right: a Destroy and a later
//! New of the same 5-tuple, or an update racing a bulk, land as they
//! happened on the active.
//!
//! **Reliability.** The receiver answers data with a cumulative
//! `Ack { upto, sack }` (a 64-bit selective-ack map past the first gap, so
//! a loss costs one retransmission rather than the window's). The sender
//! keeps at most `window` unacknowledged messages and retransmits each
//! after its own RTO (RFC 6298 estimate, doubled per retry, capped);
//! [`SyncSender::handle_reconnect`] resends at once when the HA2
//! connection was replaced. HA2 is a TCP stream, so loss is rare (a
//! reconnect, a peer frozen past its buffers): the protocol is correct
//! over a link that drops, duplicates and reorders, and cheap over one
//! that does not.
//!
//! **Coalescing and backpressure.** Events go into a pending set keyed by
//! session, newest state only, in order of first change; a Destroy
//! supersedes anything pending for its key. It is flushed when a message's
//! worth (~1,570 entries in 60 KB) is pending or the oldest change has
//! waited `flush_interval` (2 ms). When the window is full nothing more is
//! encoded: changes keep coalescing, so memory is bounded by the window
//! plus the number of distinct keys (at most `max_pending`), however fast
//! events come.
//!
//! **Bulk generations.** On start, on an overrun of the event socket
//! (ENOBUFS), when the peer (re)joins, after a backlog, or on the receiver's request, the
//! sender drops its pending changes (the dump will be newer) and asks the
//! daemon for a dump ([`SenderAction::RequestDump`]); changes arriving
//! meanwhile are held. A dump the kernel refused
//! ([`SyncSender::handle_dump_failed`]) is asked for again after
//! [`sender::DUMP_RETRY`]. The dump goes as `BulkStart, BulkChunk.., BulkEnd
//! { count }`, then the held changes. A BulkStart is a resync point: a
//! receiver jumps to it over any gap (a sender that restarts a bulk drops
//! what it had in flight), and a receiver of a new stream adopts the
//! stream at its BulkStart. The receiver applies chunks to the live cache
//! at once, tagging each entry touched since the BulkStart; at a BulkEnd
//! whose count matches it drops every entry not tagged (mark and sweep).
//! This is the "replace atomically at BulkEnd" of the design with one
//! difference: entries become current while the bulk streams in instead
//! of at its end, and no second copy of the table is built.
//! The receiver is [`SyncReceiver::ready`] once a generation completed.
//!
//! **Resync.** Messages of a stream whose BulkStart the receiver never saw,
//! a gap that retransmission does not fill within `gap_timeout`, or a
//! count mismatch make the receiver send `ResyncRequest` (rate limited;
//! for an unknown stream only after `resync_interval`, as its BulkStart may
//! just be late). The sender ignores one while a dump is coming, or when
//! it names the generation in progress (it saw its start), or when it
//! says "your stream, but not its BulkStart" while that BulkStart is still
//! unacknowledged (retransmission brings it) or was acknowledged by the
//! very same receiver run (the request crossed that ack): acks and
//! requests carry the receiver's run id, so only a restarted receiver the
//! daemon did not report costs a bulk. A count mismatch always does.
//!
//! **Expiry.** The receiver drops an entry `timeout_s + expiry_grace`
//! after its last update, so an entry whose Destroy was lost (or that the
//! active never reported, because it died) does not live forever. The
//! active's kernel refreshes timers on traffic without events, so a live
//! but quiet flow (UDP, 120 s) would expire here: the sender sends a
//! refresh bulk on its own timer ([`SenderConfig::refresh_interval`] after
//! the last generation started, 30 s) more often than the shortest
//! timeout that matters, and a bulk also sweeps stale entries.
//!
//! **Roles.** The receiver applies data only while this node is passive
//! ([`SyncReceiver::set_local_active`]) and its peer is heard as active
//! ([`SyncReceiver::set_peer_active`]); otherwise the message is counted
//! and not acknowledged, so a new active retransmits it once heard.
//!
//! **Hostile entries.** Entries naming an address of
//! [`ReceiverConfig::own_addresses`] in either tuple are refused, as the
//! sender filters them, and so are entries with an address no routed
//! flow has ([`Session::is_bogus`]); timeouts are capped at the kernel's default for
//! the protocol ([`entry::max_timeout`]).
//!
//! **Bounds.** The cache holds at most [`ReceiverConfig::max_sessions`]
//! (the conntrack table's size); new entries past it are dropped and the
//! receiver is not [`SyncReceiver::ready`] until a bulk fits. The sender
//! holds at most `window` messages in flight and
//! [`SenderConfig::max_pending`] changes: when the daemon reports HA2 down
//! ([`SyncSender::handle_disconnect`]) it drops both and discards events
//! until the peer is back, which gets one bulk; when the pending set
//! outgrows its bound with the link up it drops it, keeps the oldest
//! message in flight as a probe and sends one bulk once that is
//! acknowledged ([`BulkReason::Backlog`]). A backlog is never resent.
//!
//! **Two modes on the passive** ([`Mode`]): *Mirror* emits
//! [`ReceiverAction`]s (coalesced per key, batched) that keep the
//! passive's own kernel table warm, so promotion has nothing to install;
//! *Commit* keeps the cache only and promotion installs
//! [`SyncReceiver::take_for_promotion`] in one batch. The issue asks to
//! measure both; the daemon picks one with a flag.
//!
//! **Echo.** Entries the passive installs must not come back as events
//! when it is promoted: the daemon marks them and filters its event socket
//! by mark, before [`SyncSender::handle_event`].
//!
//! **Channel.** Session sync and config sync share the HA2 frame kind; the
//! first payload byte names the channel ([`codec::CHANNEL`] `'S'`,
//! `crate::config_sync::codec::CHANNEL` `'C'`).

pub mod cache;
mod coalesce;
pub mod codec;
pub mod config;
pub mod entry;
pub mod receiver;
mod rto;
pub mod sender;

#[cfg(test)]
mod guard_tests;
#[cfg(test)]
mod sweep;
#[cfg(test)]
mod tests;

pub use cache::{Cached, SessionCache};
pub use codec::{DecodeError, Frame, ResyncReason, SyncMessage};
pub use config::{ConfigError, Mode, ReceiverConfig, SenderConfig};
pub use entry::{Event, Session, SessionKey, Tuple};
pub use receiver::{ReceiverAction, ReceiverStats, SyncReceiver};
pub use rto::LagHistogram;
pub use sender::{BulkReason, SenderAction, SenderStats, SyncSender};
