//! hafw-ha: the pure cores of the HA pair. No sockets, no clocks, no
//! sleeping: time is an argument (`Time`, a duration since any fixed origin
//! the caller picks) and every effect is returned as a value.
//!
//! | module | what it holds |
//! |---|---|
//! | [`codec`] | the byte reader under the wire, session and config codecs |
//! | [`msg`] | the messages two nodes exchange, as plain data |
//! | [`wire`] | their byte encoding, authenticated encryption and replay window |
//! | [`node`] | the HA state machine: election, liveness, preemption, suspend |
//! | [`sessions`] | session sync over HA2: sender, receiver, replicated cache |
//! | [`config_sync`] | config sync: the shared policy's version, offer and apply |
//! | [`hits`] | rule hit counters over HA2 (the pair's total per rule) |
//! | [`monitor`] | link and path monitor verdicts, combined for the node |
//! | [`readiness`] | when a passive is ready to take over (sessions synced, policy current) |

pub mod codec;
pub mod config_sync;
pub mod hits;
pub mod monitor;
pub mod msg;
pub mod node;
pub mod readiness;
pub mod sessions;
pub mod version;
pub mod wire;

/// Time as the cores see it: a duration since an origin the caller chose
/// (the daemon: its start; a simulation: zero).
pub type Time = std::time::Duration;
