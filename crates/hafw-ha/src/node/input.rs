//! Everything the daemon tells the core, as one value: the recorder writes
//! it down, the replay and the scenario fixtures feed it back, and
//! [`Node::handle`](super::Node::handle) is the one entry that dispatches.

use super::action::Command;
use crate::msg::Message;

/// One input to the HA core. A new kind of input is a new variant here, a
/// match arm in `Node::handle` and a line form in `record` (the compiler
/// points at all three).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A message the daemon decrypted, received on heartbeat `path`.
    Message { path: usize, msg: Message },
    /// The core's timer fired (or any time at or after `poll_timeout`).
    Timeout,
    /// The link and path monitors' combined verdict.
    Monitor { healthy: bool, reason: String },
    /// An operator command (`hafw suspend|resume`, SIGTERM).
    Command(Command),
    /// The shared policy's version and hash, advertised in heartbeats.
    ConfigVersion { version: u64, hash: [u8; 32] },
}
