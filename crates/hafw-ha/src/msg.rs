//! The messages of the HA protocol, as plain data. [`crate::wire`] encodes
//! and encrypts them; [`crate::node`] produces and consumes them.

/// A node's place in the pair. Numbering is part of the wire format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum State {
    /// Just started: listening for the peer before taking a side.
    Initial = 0,
    /// Healthy and ready to take over.
    Passive = 1,
    /// Holds the floating addresses and forwards.
    Active = 2,
    /// Stood down on request (`hafw suspend`) or by the flap limit.
    Suspended = 3,
    /// A link or path monitor fails: must not take over.
    NonFunctional = 4,
}

impl State {
    pub fn from_u8(v: u8) -> Option<State> {
        Some(match v {
            0 => State::Initial,
            1 => State::Passive,
            2 => State::Active,
            3 => State::Suspended,
            4 => State::NonFunctional,
            _ => return None,
        })
    }
    pub fn as_str(self) -> &'static str {
        match self {
            State::Initial => "initial",
            State::Passive => "passive",
            State::Active => "active",
            State::Suspended => "suspended",
            State::NonFunctional => "non-functional",
        }
    }
}

/// Sent on every heartbeat path every interval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    pub node_id: u32,
    pub state: State,
    /// Raised at every promotion; after a partition heals the higher term
    /// stays active and the other steps down at once.
    pub term: u64,
    /// Higher wins the election.
    pub priority: u8,
    pub preempt: bool,
    /// The sender's monitors all pass.
    pub healthy: bool,
    /// Per-sender sequence number, for loss accounting per path.
    pub seq: u64,
    /// The sender's clock when sent (nanoseconds since its own origin).
    pub sent_ns: u64,
    /// The `sent_ns` of the last heartbeat the sender got from us on this
    /// path, and how long it held it: the receiver computes the round trip.
    pub echo_ns: u64,
    pub echo_hold_ns: u64,
    /// The shared policy's version and hash (config sync).
    pub config_version: u64,
    pub config_hash: [u8; 32],
}

/// What one node asks of the other outside heartbeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Heartbeat(Heartbeat),
    /// Planned handover: the active asks the passive to take over now,
    /// without waiting for missed heartbeats (`hafw suspend`, SIGTERM, a
    /// failing monitor on the active).
    Takeover {
        node_id: u32,
        term: u64,
    },
}
