//! The HA wire format: versioned, authenticated and encrypted envelopes
//! between the two nodes, over HA1 (datagrams) and HA2 (a stream).
//!
//! - [`keys`]: the pre-shared key, the pair's key (bound to the deployment
//!   and both node names) and HKDF-SHA256 key derivation, one key per
//!   sender and run (epoch);
//! - [`envelope`]: the clear header (the AEAD's associated data) and its
//!   framing limits;
//! - [`codec`]: the plaintext encoding of [`crate::msg::Message`], per
//!   protocol version ([`crate::version`]);
//! - [`seal`]: the sending side, ChaCha20-Poly1305 with a counter nonce;
//! - [`open`]: the receiving side: sender and epoch rules, echo, replay
//!   window; [`reject`]: why an envelope was refused, and the counters;
//! - [`replay`]: the sliding replay window.
//!
//! Anything that arrives is untrusted: [`Opener::open`] returns a value or
//! a [`Reject`] for every byte string and never panics (fuzzed by
//! `fuzz/fuzz_targets/decode.rs`, swept in the unit tests).
//!
//! The transport frames HA2 envelopes on its stream (a length prefix);
//! the envelope itself does not carry its length.

pub mod codec;
pub mod envelope;
pub mod keys;
pub mod open;
pub mod reject;
pub mod replay;
pub mod seal;

#[cfg(test)]
mod sweep;
#[cfg(test)]
mod tests;

pub use codec::{decode, decode_v, encode, encode_v, DecodeError};
pub use envelope::{Kind, MAX_ENVELOPE_LEN, MAX_PLAINTEXT_LEN};
pub use keys::{Epoch, Pair, PairKey, Psk, PskError, PSK_MIN_LEN};
pub use open::{Now, Opened, Opener, Unconfirmed, MAX_EPOCH_LEAD, RECOVER_AFTER};
pub use reject::{Counters, Reject};
pub use seal::{KindSealer, SealError, Sealer};
