//! Config sync: both nodes run the same shared policy. A pure core like
//! [`crate::node`]: inputs are `handle_*` calls taking `now`, outputs are
//! drained with `poll_transmit` (payloads to seal as HA2 frames),
//! `poll_action` (what the daemon must do) and `poll_timeout`.
//!
//! # Semantics
//!
//! The shared policy is the deployment file's text minus node-local
//! settings (the daemon decides which text; this core only sees bytes). It
//! has a **version** (u64, set by `hafw config apply` on the active, from
//! [`version::next_version`]) and a **hash** (SHA-256 of the bytes). The
//! numbering rules are in [`version`].
//! Version 0 with a zero hash means "no policy yet".
//!
//! - **The active's policy wins, if it is newer.** The active, when its
//!   version is higher than the one its peer advertises in heartbeats
//!   ([`ConfigSync::note_peer_version`]), offers it; a passive offered a
//!   higher version than its own by an active peer
//!   ([`ConfigSync::set_local_active`], [`ConfigSync::set_peer_active`])
//!   hands it to the daemon ([`ConfigAction::ApplyConfig`]), which
//!   validates, applies atomically, persists, and reports back
//!   ([`ConfigSync::handle_apply_result`]). Offers from a peer that is not
//!   active, or reaching a node that is, are counted and not answered (an
//!   active not yet heard as active sends again). A passive that restarted
//!   with a newer persisted version than an active restored from an old
//!   disk does not push it: that is a mismatch until the next apply on the
//!   active, which takes a version above both.
//! - **Offers are retransmitted** (100 ms, doubling, capped at 1 s) until
//!   the peer's Result for that (version, hash) arrives. The receiver
//!   answers every copy: a duplicate of what it has with "applied", one it
//!   is applying with nothing, one that failed with the same failure, so
//!   **a version is applied at most once** per node.
//! - **No downgrade**: an offer older than the current version is refused
//!   (and answered, so the sender stops). The **same version with another
//!   hash** is refused and raises the `conflict` alarm: two nodes edited
//!   independently (a split brain); a new apply on the active resolves it.
//! - **Failure leaves the previous version**: the daemon applies
//!   atomically, so a refused policy changes nothing; the failure is in
//!   `last_error` on this node and, through the Result, on the peer.
//! - **Local edits on a passive are refused**: [`local_edit_allowed`].
//!
//! The policy is split into [`codec::CHUNK`]-byte offers (one envelope
//! each) and reassembled and hash-checked by the receiver.

mod assemble;
pub mod codec;
mod sync;
pub mod version;

#[cfg(test)]
mod tests;

use std::fmt;

use sha2::{Digest, Sha256};

use crate::msg::State;

pub use codec::{ConfigMessage, DecodeError};
pub use sync::{ApplyError, ConfigAction, ConfigStatus, ConfigSync, RetryConfig};
pub use version::{judge_offer, next_version, OfferVerdict};

/// SHA-256 of the policy bytes: the hash advertised in heartbeats.
pub fn policy_hash(bytes: &[u8]) -> [u8; 32] {
    let digest = Sha256::digest(bytes);
    let mut out = [0u8; 32];
    out.copy_from_slice(&digest);
    out
}

/// Whether `hafw config apply` may change the policy on a node in `state`:
/// only the active edits; everyone else gets it from the active.
pub fn local_edit_allowed(state: State) -> Result<(), LocalEditRefused> {
    match state {
        State::Active => Ok(()),
        other => Err(LocalEditRefused(other)),
    }
}

/// A policy edit on a node that is not active.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LocalEditRefused(pub State);

impl fmt::Display for LocalEditRefused {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "this node is {}: the shared policy is changed on the active node only, \
             which syncs it here; run `hafw config apply` on the active node",
            self.0.as_str()
        )
    }
}

impl std::error::Error for LocalEditRefused {}
