//! The traffic log's rate limit: a token bucket of `rate` records a second
//! holding at most `burst`. Pure: the time is an argument.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Option<Duration>,
    suppressed: u64,
}

impl RateLimit {
    /// Starts full: a node that just started may log a burst.
    pub fn new(rate: u32, burst: u32) -> RateLimit {
        RateLimit {
            rate: f64::from(rate.max(1)),
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last: None,
            suppressed: 0,
        }
    }

    /// Whether a record may go at `now` (any monotonic time); a refusal is
    /// counted ([`RateLimit::take_suppressed`]).
    pub fn allow(&mut self, now: Duration) -> bool {
        if let Some(last) = self.last {
            let dt = now.saturating_sub(last).as_secs_f64();
            self.tokens = (self.tokens + dt * self.rate).min(self.burst);
        }
        self.last = Some(self.last.map_or(now, |l| l.max(now)));
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    /// Refusals since the last call.
    pub fn take_suppressed(&mut self) -> u64 {
        std::mem::take(&mut self.suppressed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Over any run the records let through are at most rate × time +
    /// burst, and everything else is counted.
    #[test]
    fn a_flood_gets_rate_times_time_plus_burst_and_the_rest_is_counted() {
        let mut r = RateLimit::new(100, 50);
        let (mut ok, mut offered) = (0u64, 0u64);
        // 50,000 records over 2 s.
        for i in 0..50_000u64 {
            offered += 1;
            if r.allow(Duration::from_micros(i * 40)) {
                ok += 1;
            }
        }
        assert!(ok <= 100 * 2 + 50, "{ok}");
        assert!(ok >= 100 * 2 + 50 - 2, "{ok}");
        assert_eq!(r.take_suppressed(), offered - ok);
        assert_eq!(r.take_suppressed(), 0);
    }

    #[test]
    fn idle_time_refills_only_up_to_the_burst_and_time_going_back_is_harmless() {
        let mut r = RateLimit::new(10, 3);
        let t = Duration::from_secs(100);
        assert_eq!((0..10).filter(|_| r.allow(t)).count(), 3);
        let later = t + Duration::from_secs(3600);
        assert_eq!((0..10).filter(|_| r.allow(later)).count(), 3);
        assert!(!r.allow(t));
    }
}
