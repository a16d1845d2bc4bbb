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
//!
//! The epoch travels in clear, so a forger that saw one real heartbeat can
//! reuse it; then each forgery costs a tag check unless its counter gives
//! it away: the real peer counts up by one per datagram, so a counter far
//! ahead of the last authentic one ([`COUNTER_AHEAD`]) goes through the
//! same budget. One that also guessed the counter closely is on the path
//! (it could as well drop the heartbeats) and costs a tag check each.

use std::time::Duration;

/// Sender id (4 bytes) then epoch (16 bytes), as in the envelope header:
/// `"HF" | version | kind | sender id | epoch | echo | counter | ...`
/// (`hafw_ha::wire::envelope`; a unit test seals one to pin the offsets).
const EPOCH_KEY: std::ops::Range<usize> = 4..24;
const COUNTER: std::ops::Range<usize> = 40..48;

/// How far past the last authentic counter an envelope of the known epoch
/// is opened outside the budget: the fast profile's two paths send 400
/// datagrams a second, so this is minutes of lost heartbeats; beyond it
/// the real peer still gets in through the budget.
pub const COUNTER_AHEAD: u64 = 65_536;

/// Opens of unknown epochs allowed per window.
pub const NEW_EPOCH_OPENS: u32 = 4;
pub const NEW_EPOCH_WINDOW: Duration = Duration::from_millis(100);

/// The sender and epoch of an envelope, unauthenticated (`None` when too
/// short to hold them: the opener refuses it as too short, cheaply).
pub fn epoch_key(envelope: &[u8]) -> Option<[u8; 20]> {
    envelope.get(EPOCH_KEY)?.try_into().ok()
}

fn counter(envelope: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(envelope.get(COUNTER)?.try_into().ok()?))
}

#[derive(Debug, Default)]
pub struct EpochBudget {
    /// Sender and epoch of the last authentic envelope.
    known: Option<[u8; 20]>,
    /// The counter of the last authentic envelope (of the known epoch).
    last_counter: u64,
    window_start: Duration,
    used: u32,
    /// Envelopes of an unknown epoch dropped unopened, since the start.
    pub limited: u64,
}

impl EpochBudget {
    /// Whether to open `envelope` at `now`. An envelope of the known epoch
    /// with a plausible counter always is (its cost is one tag check, and
    /// its replay window is checked before that); any other only within
    /// the budget.
    pub fn admit(&mut self, now: Duration, envelope: &[u8]) -> bool {
        let (Some(key), Some(c)) = (epoch_key(envelope), counter(envelope)) else {
            return true;
        };
        if Some(key) == self.known && c <= self.last_counter.saturating_add(COUNTER_AHEAD) {
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
        if let (Some(key), Some(c)) = (epoch_key(envelope), counter(envelope)) {
            if self.known != Some(key) {
                self.last_counter = 0;
            }
            self.known = Some(key);
            self.last_counter = self.last_counter.max(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::msg::Message;
    use hafw_ha::wire::{Kind, PairKey, Psk, Sealer};

    fn sealed(start_ns: u64) -> Vec<u8> {
        let psk = Psk::from_file_bytes(b"epoch budget test key, 32 bytes!", "k").unwrap();
        let mut s = Sealer::new(&PairKey::for_tests(&psk), 7, start_ns, [3; 8]);
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
        assert_eq!(counter(&env), Some(0));
    }

    #[test]
    fn a_known_epoch_far_ahead_of_its_counter_takes_the_budget() {
        let mut b = EpochBudget::default();
        let now = Duration::from_secs(5);
        let real = sealed(1);
        assert!(b.admit(now, &real));
        b.accepted(&real);
        let mut forged = real.clone();
        forged[COUNTER].copy_from_slice(&(COUNTER_AHEAD + 1).to_be_bytes());
        let mut admitted = 0;
        for _ in 0..100 {
            admitted += u32::from(b.admit(now, &forged));
        }
        assert_eq!(admitted, NEW_EPOCH_OPENS - 1);
        // Within the span, always: the real peer counting up.
        forged[COUNTER].copy_from_slice(&COUNTER_AHEAD.to_be_bytes());
        assert!(b.admit(now, &forged));
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
