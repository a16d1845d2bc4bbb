//! Reassembly of a policy offered in chunks, checked against its hash.

use super::codec::{CHUNK, MAX_POLICY_LEN};
use super::policy_hash;

/// The chunks of one offered (version, hash) received so far.
#[derive(Debug, Clone)]
pub(crate) struct Assembly {
    pub version: u64,
    pub hash: [u8; 32],
    total: usize,
    chunks: Vec<Option<Vec<u8>>>,
    missing: usize,
}

/// Why an offer chunk cannot be used (the peer's bug, never ours).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ChunkError {
    TooLarge(usize),
    Misplaced {
        offset: usize,
        len: usize,
    },
    /// Same (version, hash), another total length.
    Inconsistent,
    /// All chunks arrived, and they do not hash to the offered hash.
    HashMismatch,
}

impl ChunkError {
    pub fn describe(&self) -> String {
        match self {
            ChunkError::TooLarge(n) => format!(
                "offered policy is {n} bytes, more than config sync carries ({MAX_POLICY_LEN})"
            ),
            ChunkError::Misplaced { offset, len } => {
                format!("offered policy chunk at {offset} of {len} bytes is misplaced")
            }
            ChunkError::Inconsistent => "offered policy chunks disagree on its length".into(),
            ChunkError::HashMismatch => {
                "offered policy does not match its SHA-256 hash (corrupted on the way?)".into()
            }
        }
    }
}

impl Assembly {
    pub fn new(version: u64, hash: [u8; 32], total: usize) -> Result<Assembly, ChunkError> {
        if total > MAX_POLICY_LEN {
            return Err(ChunkError::TooLarge(total));
        }
        let n = total.div_ceil(CHUNK).max(1);
        Ok(Assembly {
            version,
            hash,
            total,
            chunks: vec![None; n],
            missing: n,
        })
    }

    /// Adds a chunk; returns the whole policy once complete and verified.
    pub fn add(
        &mut self,
        total: usize,
        offset: usize,
        bytes: Vec<u8>,
    ) -> Result<Option<Vec<u8>>, ChunkError> {
        if total != self.total {
            return Err(ChunkError::Inconsistent);
        }
        let expected_len = self.total.saturating_sub(offset).min(CHUNK);
        let index = offset / CHUNK;
        // (Not `is_multiple_of`: the workspace builds with Rust 1.85.)
        if index * CHUNK != offset || index >= self.chunks.len() || bytes.len() != expected_len {
            return Err(ChunkError::Misplaced {
                offset,
                len: bytes.len(),
            });
        }
        if let Some(slot) = self.chunks.get_mut(index) {
            if slot.is_none() {
                *slot = Some(bytes);
                self.missing -= 1;
            }
        }
        if self.missing > 0 {
            return Ok(None);
        }
        let whole: Vec<u8> = self.chunks.iter().flatten().flatten().copied().collect();
        if policy_hash(&whole) != self.hash {
            return Err(ChunkError::HashMismatch);
        }
        Ok(Some(whole))
    }
}

/// `bytes` as (offset, chunk) pairs; an empty policy is one empty chunk.
pub(crate) fn chunks(bytes: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    let empty = bytes.is_empty().then_some((0, &bytes[..0]));
    bytes
        .chunks(CHUNK)
        .enumerate()
        .map(|(i, c)| (i * CHUNK, c))
        .chain(empty)
}
