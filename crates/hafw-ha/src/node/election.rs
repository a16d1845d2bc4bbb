//! Who holds the addresses when both nodes could: the election, the rule
//! that resolves two actives, and the flap limit.

use std::collections::VecDeque;
use std::time::Duration;

use crate::Time;

/// What the election compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Candidate {
    pub priority: u8,
    pub node_id: u32,
}

/// Higher priority wins; on equal priority the lower node id wins, so both
/// nodes reach the same verdict from the same two heartbeats (architecture.md,
/// "ha": election).
pub(crate) fn wins(me: Candidate, other: Candidate) -> bool {
    me.priority > other.priority || (me.priority == other.priority && me.node_id < other.node_id)
}

/// Two actives (a healed partition): the higher term stays, on equal terms
/// the election winner stays (architecture.md, split-brain rules). Both
/// sides evaluate this with the roles swapped and reach opposite answers,
/// so exactly one stays.
pub(crate) fn keeps_active(my_term: u64, me: Candidate, peer_term: u64, peer: Candidate) -> bool {
    my_term > peer_term || (my_term == peer_term && wins(me, peer))
}

/// Promotions within the last `window`; more than `limit` suspend the node.
#[derive(Debug, Clone)]
pub(crate) struct FlapWindow {
    limit: u32,
    window: Duration,
    promotions: VecDeque<Time>,
}

impl FlapWindow {
    pub fn new(limit: u32, window: Duration) -> FlapWindow {
        FlapWindow {
            limit,
            window,
            promotions: VecDeque::new(),
        }
    }

    /// Records a promotion at `now`, or refuses it with the number of
    /// promotions (this one included) the window would hold.
    pub fn admit(&mut self, now: Time) -> Result<(), u32> {
        while self
            .promotions
            .front()
            .is_some_and(|&t| now.saturating_sub(t) >= self.window)
        {
            self.promotions.pop_front();
        }
        let count = u32::try_from(self.promotions.len()).unwrap_or(u32::MAX);
        if count >= self.limit {
            return Err(count.saturating_add(1));
        }
        self.promotions.push_back(now);
        Ok(())
    }

    /// The operator resumed the node: earlier flapping is forgiven.
    pub fn forget(&mut self) {
        self.promotions.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(priority: u8, node_id: u32) -> Candidate {
        Candidate { priority, node_id }
    }

    #[test]
    fn election_is_antisymmetric() {
        let cases = [
            (c(200, 2), c(100, 1), true),
            (c(100, 1), c(200, 2), false),
            (c(100, 1), c(100, 2), true),
            (c(100, 2), c(100, 1), false),
        ];
        for (a, b, want) in cases {
            assert_eq!(wins(a, b), want, "{a:?} vs {b:?}");
            assert_eq!(wins(b, a), !want, "{b:?} vs {a:?}");
        }
    }

    #[test]
    fn exactly_one_of_two_actives_stays() {
        let cases = [
            (7, c(1, 1), 6, c(200, 2)),
            (5, c(100, 1), 5, c(100, 2)),
            (5, c(200, 9), 5, c(100, 1)),
        ];
        for (ta, a, tb, b) in cases {
            assert_ne!(keeps_active(ta, a, tb, b), keeps_active(tb, b, ta, a));
        }
        assert!(keeps_active(7, c(1, 1), 6, c(200, 2)));
        assert!(keeps_active(5, c(100, 1), 5, c(100, 2)));
    }

    #[test]
    fn flap_window_refuses_the_promotion_over_the_limit_and_forgets_old_ones() {
        let s = Duration::from_secs;
        let mut w = FlapWindow::new(2, s(60));
        assert_eq!(w.admit(s(0)), Ok(()));
        assert_eq!(w.admit(s(10)), Ok(()));
        assert_eq!(w.admit(s(20)), Err(3));
        assert_eq!(
            w.admit(s(60)),
            Ok(()),
            "the promotion at 0 s left the window"
        );
        w.forget();
        assert_eq!(w.admit(s(61)), Ok(()));
    }
}
