//! The pre-shared key and the per-sender keys derived from it.
//!
//! Each sender derives a fresh key for each run (its *epoch*), so the
//! nonce counter can start at zero every run without ever repeating a
//! (key, nonce) pair, which is the one rule ChaCha20-Poly1305 must not
//! break (RFC 8439 §4).

use std::fmt;

use chacha20poly1305::aead::KeyInit;
use chacha20poly1305::{ChaCha20Poly1305, Key};
use hkdf::Hkdf;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Shortest pre-shared key accepted: 256 bits, the AEAD key size, so the
/// derived keys are never weaker than the cipher.
pub const PSK_MIN_LEN: usize = 32;

/// HKDF salt: names the protocol and its version, so keys for a future
/// format never collide with these.
const HKDF_SALT: &[u8] = b"hafw-ha-v2";

/// The pair's shared secret: the bytes of the key file, exactly as read
/// (no trimming, so both nodes must hold byte-identical files).
#[derive(Clone)]
pub struct Psk(Zeroizing<Vec<u8>>);

impl Psk {
    /// `file_name` only serves the error message.
    pub fn from_file_bytes(bytes: &[u8], file_name: &str) -> Result<Psk, PskError> {
        if bytes.len() < PSK_MIN_LEN {
            return Err(PskError::TooShort {
                file: file_name.to_string(),
                len: bytes.len(),
            });
        }
        // A file of one repeated byte is a placeholder (zeros from
        // `truncate -s`, a row of 'x'), not a secret.
        if bytes.iter().all(|&b| b == bytes[0]) {
            return Err(PskError::Constant {
                file: file_name.to_string(),
            });
        }
        Ok(Psk(Zeroizing::new(bytes.to_vec())))
    }

    fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Psk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Psk({} bytes, redacted)", self.0.len())
    }
}

/// Why a key file cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PskError {
    TooShort { file: String, len: usize },
    Constant { file: String },
}

impl fmt::Display for PskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PskError::TooShort { file, len } => write!(
                f,
                "HA pre-shared key file {file} holds {len} bytes; it needs at least \
                 {PSK_MIN_LEN} random bytes: create it with \
                 `hafw keygen --force {file}` and copy the same file to both nodes"
            ),
            PskError::Constant { file } => write!(
                f,
                "HA pre-shared key file {file} repeats one byte value, so it is a placeholder, \
                 not a secret: create it with `hafw keygen --force {file}` \
                 and copy the same file to both nodes"
            ),
        }
    }
}

impl std::error::Error for PskError {}

/// One run of a sender. `start_ns` (wall clock at start, nanoseconds since
/// the UNIX epoch) orders runs, so a receiver can refuse a recorded older
/// run; `random` keeps two runs apart even if the clock repeats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch {
    pub start_ns: u64,
    pub random: [u8; 8],
}

impl Epoch {
    pub const LEN: usize = 16;

    pub fn to_bytes(self) -> [u8; Epoch::LEN] {
        let mut b = [0u8; Epoch::LEN];
        b[..8].copy_from_slice(&self.start_ns.to_be_bytes());
        b[8..].copy_from_slice(&self.random);
        b
    }

    pub fn from_bytes(b: [u8; Epoch::LEN]) -> Epoch {
        let mut start = [0u8; 8];
        let mut random = [0u8; 8];
        start.copy_from_slice(&b[..8]);
        random.copy_from_slice(&b[8..]);
        Epoch {
            start_ns: u64::from_be_bytes(start),
            random,
        }
    }
}

/// Who the key is for: the deployment's name and both nodes (id and
/// name). Both nodes build the same value (the nodes are ordered by id),
/// and the pair key depends on all of it, so a key file copied to another
/// pair (another deployment, or other node names) opens nothing there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pair {
    deployment: String,
    /// Ordered by id.
    nodes: [(u32, String); 2],
}

impl Pair {
    pub fn new(deployment: &str, a: (u32, &str), b: (u32, &str)) -> Pair {
        let (lo, hi) = if a.0 <= b.0 { (a, b) } else { (b, a) };
        Pair {
            deployment: deployment.to_string(),
            nodes: [(lo.0, lo.1.to_string()), (hi.0, hi.1.to_string())],
        }
    }

    /// The HKDF info: a label, then each field length-prefixed (u32 BE),
    /// so no two pairs encode alike ("ab"+"c" is not "a"+"bc").
    fn info(&self) -> Vec<u8> {
        let mut out = b"hafw pair".to_vec();
        let mut put = |bytes: &[u8]| {
            out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
            out.extend_from_slice(bytes);
        };
        put(self.deployment.as_bytes());
        for (id, name) in &self.nodes {
            put(&id.to_be_bytes());
            put(name.as_bytes());
        }
        out
    }
}

/// The key of one pair, derived once from the pre-shared key and the
/// [`Pair`]: `HKDF-SHA256(salt "hafw-ha-v2", ikm psk, info pair)`. The
/// per-sender, per-epoch keys are expanded from it.
#[derive(Clone)]
pub struct PairKey {
    prk: Zeroizing<[u8; 32]>,
}

impl PairKey {
    pub fn derive(psk: &Psk, pair: &Pair) -> PairKey {
        let mut prk = Zeroizing::new([0u8; 32]);
        expand(
            &Hkdf::<Sha256>::new(Some(HKDF_SALT), psk.bytes()),
            &pair.info(),
            &mut prk,
        );
        PairKey { prk }
    }

    /// A key for tests and fuzzing, from a PSK and a fixed pair.
    pub fn for_tests(psk: &Psk) -> PairKey {
        PairKey::derive(psk, &Pair::new("test", (1, "fw-a"), (2, "fw-b")))
    }
}

impl fmt::Debug for PairKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PairKey(redacted)")
    }
}

fn expand(hk: &Hkdf<Sha256>, info: &[u8], out: &mut [u8; 32]) {
    // Fails only for outputs over 255 * 32 bytes; a constant 32 cannot,
    // whatever the input. A silent fallback key would be worse than a panic.
    hk.expand(info, out)
        .expect("32 bytes is within HKDF-SHA256's output limit");
}

/// The AEAD key of one sender in one epoch: HKDF-Expand(prk = pair key,
/// info = "hafw sender" || sender id (u32 BE) || epoch).
pub(crate) fn derive_cipher(key: &PairKey, sender_id: u32, epoch: Epoch) -> ChaCha20Poly1305 {
    const LABEL: &[u8] = b"hafw sender";
    let mut info = [0u8; LABEL.len() + 4 + Epoch::LEN];
    info[..LABEL.len()].copy_from_slice(LABEL);
    info[LABEL.len()..LABEL.len() + 4].copy_from_slice(&sender_id.to_be_bytes());
    info[LABEL.len() + 4..].copy_from_slice(&epoch.to_bytes());
    // A 32-byte PRK is HKDF-SHA256's own length, the least `from_prk` takes.
    let hk = Hkdf::<Sha256>::from_prk(key.prk.as_ref())
        .expect("a 32-byte PRK is long enough for HKDF-SHA256");
    let mut okm = Zeroizing::new([0u8; 32]);
    expand(&hk, &info, &mut okm);
    ChaCha20Poly1305::new(Key::from_slice(okm.as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_psk_refused_naming_the_file() {
        let err = Psk::from_file_bytes(&[7u8; 31], "/etc/hafw/ha.key").unwrap_err();
        assert_eq!(
            err,
            PskError::TooShort {
                file: "/etc/hafw/ha.key".into(),
                len: 31
            }
        );
        let text = err.to_string();
        assert!(text.contains("/etc/hafw/ha.key"), "{text}");
        assert!(text.contains("at least 32"), "{text}");
        assert!(Psk::from_file_bytes(b"", "k").is_err());
    }

    #[test]
    fn constant_psk_refused() {
        let err = Psk::from_file_bytes(&[0u8; 64], "ha.key").unwrap_err();
        assert_eq!(
            err,
            PskError::Constant {
                file: "ha.key".into()
            }
        );
    }

    #[test]
    fn psk_of_32_distinct_bytes_accepted_and_redacted() {
        let bytes: Vec<u8> = (0u8..32).collect();
        let psk = Psk::from_file_bytes(&bytes, "ha.key").unwrap();
        let dbg = format!("{psk:?}");
        assert_eq!(dbg, "Psk(32 bytes, redacted)");
    }

    #[test]
    fn epoch_bytes_round_trip_big_endian() {
        let e = Epoch {
            start_ns: 0x0102_0304_0506_0708,
            random: [9, 10, 11, 12, 13, 14, 15, 16],
        };
        let b = e.to_bytes();
        assert_eq!(b[..8], [1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(Epoch::from_bytes(b), e);
    }
}
