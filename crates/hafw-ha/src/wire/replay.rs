//! Sliding replay window over a sender's counters, as in IPsec (RFC 4303
//! §3.4.3) and WireGuard: a ring of 64-bit words, so advancing the window
//! clears whole words instead of shifting a long bitmap.

const WORD_BITS: u64 = 64;
const WORDS: usize = 16;
const RING_BITS: u64 = WORD_BITS * WORDS as u64;
/// How far behind the newest counter a message may arrive and still be
/// accepted (once). One word of the ring is the one being filled, so the
/// guaranteed reach is the ring minus one word.
pub const WINDOW: u64 = RING_BITS - WORD_BITS;

/// Why a counter is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replay {
    /// Already accepted once.
    Duplicate,
    /// Too far behind the newest accepted counter to tell.
    TooOld,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct ReplayWindow {
    /// Newest accepted counter; `None` until the first.
    newest: Option<u64>,
    ring: [u64; WORDS],
    /// Counters up to this one are refused as too old, whatever the ring.
    floor: Option<u64>,
}

impl ReplayWindow {
    /// Would `counter` be accepted? Does not change the window, so it can
    /// run before the tag is checked.
    pub fn check(&self, counter: u64) -> Result<(), Replay> {
        if self.floor.is_some_and(|f| counter <= f) {
            return Err(Replay::TooOld);
        }
        let Some(newest) = self.newest else {
            return Ok(());
        };
        if counter > newest {
            return Ok(());
        }
        if newest - counter >= WINDOW {
            return Err(Replay::TooOld);
        }
        let (word, bit) = Self::slot(counter);
        if self.ring[word] & bit != 0 {
            return Err(Replay::Duplicate);
        }
        Ok(())
    }

    /// Records `counter`; call only after the tag verified and `check`
    /// passed.
    pub fn accept(&mut self, counter: u64) -> Result<(), Replay> {
        self.check(counter)?;
        match self.newest {
            Some(newest) if counter <= newest => {}
            old => {
                // Blocks entering the window reuse the ring words of
                // blocks leaving it: clear them first (at most the whole
                // ring).
                let new_block = counter / WORD_BITS;
                let first = match old {
                    Some(n) => n / WORD_BITS + 1,
                    None => new_block,
                };
                // Zero when the new counter stays in the newest block.
                let span = (new_block + 1).saturating_sub(first).min(WORDS as u64);
                for b in (new_block + 1 - span)..=new_block {
                    self.ring[(b % WORDS as u64) as usize] = 0;
                }
                self.newest = Some(counter);
            }
        }
        let (word, bit) = Self::slot(counter);
        self.ring[word] |= bit;
        Ok(())
    }

    /// Refuses every counter up to `counter` from now on (envelopes seen
    /// and refused before this window existed).
    pub fn refuse_up_to(&mut self, counter: u64) {
        self.floor = self.floor.max(Some(counter));
    }

    fn slot(counter: u64) -> (usize, u64) {
        let word = ((counter / WORD_BITS) % WORDS as u64) as usize;
        (word, 1u64 << (counter % WORD_BITS))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    #[test]
    fn in_order_then_duplicate() {
        let mut w = ReplayWindow::default();
        for c in 0..3000 {
            assert_eq!(w.accept(c), Ok(()), "counter {c}");
            assert_eq!(w.check(c), Err(Replay::Duplicate), "counter {c}");
        }
    }

    #[test]
    fn out_of_order_within_window_once_each() {
        let mut w = ReplayWindow::default();
        w.accept(5000).unwrap();
        for c in (5000 - WINDOW + 1..5000).rev() {
            assert_eq!(w.accept(c), Ok(()), "counter {c}");
            assert_eq!(w.accept(c), Err(Replay::Duplicate), "counter {c}");
        }
        assert_eq!(w.check(5000 - WINDOW), Err(Replay::TooOld));
        assert_eq!(w.check(0), Err(Replay::TooOld));
    }

    #[test]
    fn a_big_jump_forgets_everything_behind() {
        let mut w = ReplayWindow::default();
        for c in 0..100 {
            w.accept(c).unwrap();
        }
        w.accept(100 + 10 * RING_BITS).unwrap();
        // Still within reach of the new newest, and never seen: accepted,
        // even though its ring slot once held counter 100 - 64 or so.
        let c = 100 + 10 * RING_BITS - 1;
        assert_eq!(w.accept(c), Ok(()));
        assert_eq!(w.check(99), Err(Replay::TooOld));
    }

    #[test]
    fn a_floor_refuses_up_to_it() {
        let mut w = ReplayWindow::default();
        w.refuse_up_to(10);
        assert_eq!(w.check(0), Err(Replay::TooOld));
        assert_eq!(w.accept(10), Err(Replay::TooOld));
        assert_eq!(w.accept(11), Ok(()));
        assert_eq!(w.accept(10), Err(Replay::TooOld));
    }

    #[test]
    fn extreme_counters() {
        let mut w = ReplayWindow::default();
        w.accept(u64::MAX - 1).unwrap();
        assert_eq!(w.accept(u64::MAX - 1), Err(Replay::Duplicate));
        assert_eq!(w.accept(u64::MAX - 2), Ok(()));
        assert_eq!(w.check(0), Err(Replay::TooOld));
        let mut w = ReplayWindow::default();
        w.accept(0).unwrap();
        assert_eq!(w.accept(0), Err(Replay::Duplicate));
    }

    /// The window must agree exactly with the obvious model: accept a
    /// counter newer than all, or one less than WINDOW behind the newest
    /// that was never accepted.
    fn model_accepts(seen: &BTreeSet<u64>, c: u64) -> Result<(), Replay> {
        match seen.iter().next_back() {
            None => Ok(()),
            Some(&n) if c > n => Ok(()),
            Some(&n) if n - c >= WINDOW => Err(Replay::TooOld),
            Some(_) if seen.contains(&c) => Err(Replay::Duplicate),
            Some(_) => Ok(()),
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn agrees_with_model(
            start in prop_oneof![Just(0u64), any::<u64>().prop_map(|v| v / 2)],
            steps in prop::collection::vec(
                prop_oneof![
                    (0u64..2200).prop_map(|d| d as i64 - 1100),
                    (0u64..70_000).prop_map(|d| d as i64 - 35_000),
                ],
                1..400,
            ),
        ) {
            let mut w = ReplayWindow::default();
            let mut seen = BTreeSet::new();
            let mut cursor = start;
            for d in steps {
                cursor = cursor.saturating_add_signed(d);
                let want = model_accepts(&seen, cursor);
                prop_assert_eq!(w.check(cursor), want, "check {}", cursor);
                prop_assert_eq!(w.accept(cursor), want, "accept {}", cursor);
                if want.is_ok() {
                    seen.insert(cursor);
                }
            }
        }
    }
}
