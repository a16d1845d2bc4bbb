//! Tunables of the two session-sync endpoints, checked once at
//! construction (style.md rule 5: a bad value is an error, never replaced
//! by a default).

use std::fmt;
use std::net::Ipv4Addr;
use std::time::Duration;

use super::codec::{entries_per_message, MAX_PAYLOAD};

/// The sender's window is at most this many messages: a receiver's
/// selective ack covers 64 messages past the first gap, and 1024 × 60 KB
/// is already more memory than a sync link needs in flight.
pub const MAX_WINDOW: usize = 1024;
/// Smallest payload a sender may be configured for (a handful of entries).
pub const MIN_PAYLOAD: usize = 256;
/// The kernel's default `nf_conntrack_max` on a host of a few GB: the
/// receiver's cap when the daemon cannot read the running value.
pub const DEFAULT_MAX_SESSIONS: usize = 262_144;
/// The sender's default bound on changes waiting for the window: about
/// 42 full messages, some 7 MB. Beyond it a bulk is cheaper than the
/// backlog, and the backlog is dropped.
pub const DEFAULT_MAX_PENDING: usize = 65_536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SenderConfig {
    /// Names this run of the sender; must differ from the previous run's
    /// (the daemon uses its wire epoch's start time) and not be 0.
    pub stream: u64,
    /// Largest payload built, ≤ [`MAX_PAYLOAD`].
    pub max_payload: usize,
    /// How long a change may wait for others to share its message.
    pub flush_interval: Duration,
    /// Unacknowledged messages allowed in flight (2..=[`MAX_WINDOW`]; a
    /// flush may overshoot it by one, an Update and a Destroy together).
    /// When full, changes keep coalescing in the pending set instead.
    pub window: usize,
    /// Retransmission timeout before any round trip was measured.
    pub initial_rto: Duration,
    pub min_rto: Duration,
    /// Cap of the exponential backoff.
    pub max_rto: Duration,
    /// How long after a bulk generation started the next refresh bulk is
    /// sent: the active's kernel refreshes quiet flows' timers without
    /// events, so without it they would expire on the passive. Shorter
    /// than the shortest timeout that matters (UDP's 120 s stream timeout).
    pub refresh_interval: Duration,
    /// Most changes held while the window is full (or a bulk is being
    /// sent). Past it the pending changes are dropped and one fresh bulk
    /// follows as soon as the peer acknowledges again
    /// ([`super::SenderStats::backlogs`]): a stalled peer never gets a
    /// backlog, and the active's memory stays flat.
    pub max_pending: usize,
}

impl SenderConfig {
    /// The defaults for a LAN link: 60 KB messages, 2 ms flush, 64 in
    /// flight, RTO 200 ms at first, 20 ms..2 s, a refresh bulk every 30 s.
    pub fn new(stream: u64) -> SenderConfig {
        SenderConfig {
            stream,
            max_payload: MAX_PAYLOAD,
            flush_interval: Duration::from_millis(2),
            window: 64,
            initial_rto: Duration::from_millis(200),
            min_rto: Duration::from_millis(20),
            max_rto: Duration::from_secs(2),
            refresh_interval: Duration::from_secs(30),
            max_pending: DEFAULT_MAX_PENDING,
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.stream == 0 {
            return Err(ConfigError::new(
                "stream",
                "is 0, which receivers use for \"no stream\"; use the wire epoch's start time",
            ));
        }
        if !(MIN_PAYLOAD..=MAX_PAYLOAD).contains(&self.max_payload) {
            return Err(ConfigError::new(
                "max_payload",
                format!(
                    "is {} bytes; it must be within {MIN_PAYLOAD}..={MAX_PAYLOAD} \
                     so that a message fits one HA2 envelope",
                    self.max_payload
                ),
            ));
        }
        if !(2..=MAX_WINDOW).contains(&self.window) {
            return Err(ConfigError::new(
                "window",
                format!("is {}; it must be within 2..={MAX_WINDOW}", self.window),
            ));
        }
        if self.min_rto.is_zero() || self.min_rto > self.max_rto {
            return Err(ConfigError::new(
                "min_rto",
                format!(
                    "is {:?} with max_rto {:?}; it must be above zero and at most max_rto",
                    self.min_rto, self.max_rto
                ),
            ));
        }
        if self.initial_rto < self.min_rto || self.initial_rto > self.max_rto {
            return Err(ConfigError::new(
                "initial_rto",
                format!(
                    "is {:?}; it must be within min_rto..=max_rto ({:?}..={:?})",
                    self.initial_rto, self.min_rto, self.max_rto
                ),
            ));
        }
        if self.refresh_interval.is_zero() {
            return Err(ConfigError::new(
                "refresh_interval",
                "is 0, which would send bulk after bulk; 30 s keeps quiet flows alive",
            ));
        }
        if self.max_pending == 0 {
            return Err(ConfigError::new(
                "max_pending",
                format!("is 0; it must be at least 1 (default {DEFAULT_MAX_PENDING})"),
            ));
        }
        debug_assert!(entries_per_message(self.max_payload) > 0);
        Ok(())
    }
}

/// Where the passive keeps synced sessions until it is promoted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Mode A: mirror every change into the passive's own kernel table at
    /// once ([`super::ReceiverAction`]s), so promotion has nothing to do.
    Mirror,
    /// Mode B: keep them in the cache only; promotion commits
    /// [`super::SyncReceiver::take_for_promotion`] in one batch.
    Commit,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverConfig {
    /// Names this run of the receiver in acks and requests, so a sender
    /// tells a restarted receiver from a late request of the one it knows
    /// (the daemon uses its wire epoch's start time). Not 0.
    pub instance: u64,
    pub mode: Mode,
    /// Out-of-order messages held past the first gap (1..=[`MAX_WINDOW`]);
    /// at least the sender's window, or retransmissions are wasted.
    pub window: usize,
    /// Least time between two resync requests, and how long messages of an
    /// unknown stream may arrive before one is sent (its bulk start may be
    /// merely late).
    pub resync_interval: Duration,
    /// A gap retransmission has not filled in this long asks for a bulk.
    pub gap_timeout: Duration,
    /// Added to an entry's `timeout_s` before it expires here: the active
    /// refreshes its kernel timer on traffic without sending an event.
    pub expiry_grace: Duration,
    /// How often the cache is scanned for expired entries.
    pub expiry_scan: Duration,
    /// Most entries per kernel action in [`Mode::Mirror`].
    pub action_batch: usize,
    /// Most sessions cached: the conntrack table's size
    /// (`nf_conntrack_max`), since the passive cannot hold more in its
    /// kernel either. New entries past it are dropped and counted
    /// ([`super::ReceiverStats::cache_full`]), and the receiver is not
    /// [`super::SyncReceiver::ready`] until a bulk fits again.
    pub max_sessions: usize,
    /// Both nodes' own (not floating) addresses: an entry naming one in
    /// either tuple is the nodes' own traffic, or a NAT onto a node, and
    /// is refused on receipt as the sender filters it before sending.
    pub own_addresses: Vec<Ipv4Addr>,
}

impl ReceiverConfig {
    pub fn new(instance: u64, mode: Mode) -> ReceiverConfig {
        ReceiverConfig {
            instance,
            mode,
            window: 128,
            resync_interval: Duration::from_millis(200),
            gap_timeout: Duration::from_secs(5),
            expiry_grace: Duration::from_secs(30),
            expiry_scan: Duration::from_secs(1),
            action_batch: 1024,
            max_sessions: DEFAULT_MAX_SESSIONS,
            own_addresses: Vec::new(),
        }
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.instance == 0 {
            return Err(ConfigError::new(
                "instance",
                "is 0; use the wire epoch's start time",
            ));
        }
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return Err(ConfigError::new(
                "window",
                format!("is {}; it must be within 1..={MAX_WINDOW}", self.window),
            ));
        }
        for (field, d) in [
            ("resync_interval", self.resync_interval),
            ("gap_timeout", self.gap_timeout),
            ("expiry_scan", self.expiry_scan),
        ] {
            if d.is_zero() {
                return Err(ConfigError::new(field, "is zero; it must be above zero"));
            }
        }
        if self.action_batch == 0 {
            return Err(ConfigError::new(
                "action_batch",
                "is 0; it must be at least 1",
            ));
        }
        if self.max_sessions == 0 {
            return Err(ConfigError::new(
                "max_sessions",
                format!(
                    "is 0; use the conntrack table's size (nf_conntrack_max, \
                     default {DEFAULT_MAX_SESSIONS})"
                ),
            ));
        }
        Ok(())
    }
}

/// A session-sync setting out of range: which one, and what it must be.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

impl ConfigError {
    fn new(field: &'static str, problem: impl Into<String>) -> ConfigError {
        ConfigError {
            field,
            problem: problem.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "session sync setting {} {}", self.field, self.problem)
    }
}

impl std::error::Error for ConfigError {}
