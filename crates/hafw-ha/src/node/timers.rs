//! The node's one timer table (style.md rule 3): a deadline per [`Timer`],
//! the earliest of which the daemon arms as its single OS timer.

use crate::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Timer {
    /// Send a heartbeat on every path (and a Takeover while handing over).
    HeartbeatSend,
    /// The earliest instant a heartbeat path goes silent.
    PeerDeadCheck,
    /// End of the start-up listen (Initial → Active when nobody answered).
    InitialListen,
    /// A promotion has been justified for `promotion_hold`.
    PromotionHold,
    /// A preemption has been possible for `preempt_hold`.
    PreemptHold,
    /// A handing-over active gives up waiting for its peer.
    TakeoverWait,
    /// A shutting-down node reports completion even if still active.
    ShutdownDeadline,
}

const COUNT: usize = 7;

#[derive(Debug, Clone, Default)]
pub(crate) struct TimerTable {
    deadlines: [Option<Time>; COUNT],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Time) {
        self.deadlines[timer as usize] = Some(at);
    }

    /// Arms `timer` at `at` unless it is already armed; returns its deadline.
    pub fn set_if_unarmed(&mut self, timer: Timer, at: Time) -> Time {
        *self.deadlines[timer as usize].get_or_insert(at)
    }

    pub fn clear(&mut self, timer: Timer) {
        self.deadlines[timer as usize] = None;
    }

    /// Disarms `timer` and says whether it had expired at `now`.
    pub fn take_expired(&mut self, timer: Timer, now: Time) -> bool {
        let slot = &mut self.deadlines[timer as usize];
        if slot.is_some_and(|at| at <= now) {
            *slot = None;
            true
        } else {
            false
        }
    }

    pub fn next(&self) -> Option<Time> {
        self.deadlines.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn earliest_deadline_and_expiry() {
        let ms = Duration::from_millis;
        let mut t = TimerTable::default();
        assert_eq!(t.next(), None);
        t.set(Timer::HeartbeatSend, ms(30));
        t.set(Timer::TakeoverWait, ms(10));
        assert_eq!(t.set_if_unarmed(Timer::TakeoverWait, ms(50)), ms(10));
        assert_eq!(t.next(), Some(ms(10)));
        assert!(!t.take_expired(Timer::HeartbeatSend, ms(20)));
        assert!(t.take_expired(Timer::TakeoverWait, ms(20)));
        assert!(
            !t.take_expired(Timer::TakeoverWait, ms(20)),
            "already disarmed"
        );
        assert_eq!(t.next(), Some(ms(30)));
        t.clear(Timer::HeartbeatSend);
        assert_eq!(t.next(), None);
    }
}
