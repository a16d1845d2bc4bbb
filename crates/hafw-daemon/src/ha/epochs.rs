//! A budget for envelopes of an epoch the HA thread has not accepted yet.
//!
//! Opening an envelope of a new epoch costs a key derivation and a tag
//! check: microseconds in a release build, over 100 µs in a debug one. A
//! flood of forged datagrams from the peer's address with fresh epochs
//! would otherwise cost the thread more time than it has, the kernel would
//! drop at the socket's buffer, and real heartbeats would be dropped with
//! the forgeries: a split brain. The peer's accepted epoch is known from its
//! last authentic envelope, so the thread compares the clear header first
//! (bytes, no crypto) and gives an unknown epoch a few opens per window.
//! A real peer needs one new epoch per restart; under a flood it waits for
//! a slot (its heartbeats on a path that is not flooded still count).

use std::time::Duration;

/// Sender id (4 bytes) then epoch (16 bytes), as in the envelope header:
/// `"HF" | version | kind | sender id | epoch | counter | ...`
/// (`hafw_ha::wire::envelope`; a unit test seals one to pin the offsets).
const EPOCH_KEY: std::ops::Range<usize> = 4..24;

/// Opens of unknown epochs allowed per window.
pub const NEW_EPOCH_OPENS: u32 = 4;
pub const NEW_EPOCH_WINDOW: Duration = Duration::from_millis(100);

/// The sender and epoch of an envelope, unauthenticated (`None` when too
/// short to hold them: the opener refuses it as too short, cheaply).
pub fn epoch_key(envelope: &[u8]) -> Option<[u8; 20]> {
    envelope.get(EPOCH_KEY)?.try_into().ok()
}

#[derive(Debug, Default)]
pub struct EpochBudget {
    /// Sender and epoch of the last authentic envelope.
    known: Option<[u8; 20]>,
    window_start: Duration,
    used: u32,
    /// Envelopes of an unknown epoch dropped unopened, since the start.
    pub limited: u64,
}

impl EpochBudget {
    /// Whether to open `envelope` at `now`. An envelope of the known epoch
    /// always is (its cost is one tag check, and its replay window is
    /// checked before that); one of another epoch only within the budget.
    pub fn admit(&mut self, now: Duration, envelope: &[u8]) -> bool {
        let key = epoch_key(envelope);
        if key.is_none() || key == self.known {
            return true;
        }
        if now.saturating_sub(self.window_start) >= NEW_EPOCH_WINDOW {
            self.window_start = now;
            self.used = 0;
        }
        if self.used < NEW_EPOCH_OPENS {
            self.used += 1;
            true
        } else {
            self.limited = self.limited.saturating_add(1);
            false
        }
    }

    /// `envelope` was authentic: its epoch is the known one from now on.
    pub fn accepted(&mut self, envelope: &[u8]) {
        if let Some(key) = epoch_key(envelope) {
            self.known = Some(key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::msg::Message;
    use hafw_ha::wire::{Kind, Psk, Sealer};

    fn sealed(start_ns: u64) -> Vec<u8> {
        let psk = Psk::from_file_bytes(b"epoch budget test key, 32 bytes!", "k").unwrap();
        let mut s = Sealer::new(&psk, 7, start_ns, [3; 8]);
        let msg = Message::Takeover {
            node_id: 7,
            term: 1,
        };
        s.seal(Kind::Ha1Datagram, &msg).unwrap()
    }

    #[test]
    fn the_key_is_the_sender_and_epoch_of_the_header() {
        let env = sealed(0x0102_0304_0506_0708);
        let key = epoch_key(&env).unwrap();
        assert_eq!(&key[..4], &7u32.to_be_bytes());
        assert_eq!(&key[4..12], &0x0102_0304_0506_0708u64.to_be_bytes());
        assert_eq!(&key[12..], &[3; 8]);
        assert_eq!(epoch_key(&env[..23]), None);
    }

    #[test]
    fn unknown_epochs_get_a_few_opens_per_window_the_known_one_all() {
        let mut b = EpochBudget::default();
        let real = sealed(1);
        let now = Duration::from_secs(5);
        assert!(b.admit(now, &real));
        b.accepted(&real);
        let mut admitted = 0;
        for i in 0..1000 {
            admitted += u32::from(b.admit(now, &sealed(100 + i)));
            assert!(b.admit(now, &real), "the known epoch is never limited");
        }
        // The real epoch's first envelope took one open of this window.
        assert_eq!(admitted, NEW_EPOCH_OPENS - 1);
        assert_eq!(b.limited, 1000 - u64::from(NEW_EPOCH_OPENS - 1));
        // The next window has a fresh budget: a restarted peer gets in.
        assert!(b.admit(now + NEW_EPOCH_WINDOW, &sealed(5000)));
        // Too short to carry an epoch: the opener refuses it, cheaply.
        assert!(b.admit(now, &real[..10]));
    }
}
