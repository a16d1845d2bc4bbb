//! Retransmission timeout from measured round trips (RFC 6298 §2), and the
//! lag histogram the sender's acknowledgements feed.

use std::time::Duration;

#[derive(Debug, Clone)]
pub(crate) struct RttEstimator {
    srtt: Option<Duration>,
    rttvar: Duration,
    rto: Duration,
    min: Duration,
    max: Duration,
}

impl RttEstimator {
    pub fn new(initial: Duration, min: Duration, max: Duration) -> RttEstimator {
        RttEstimator {
            srtt: None,
            rttvar: Duration::ZERO,
            rto: initial,
            min,
            max,
        }
    }

    /// A round trip of a message sent once (Karn: retransmitted messages
    /// give ambiguous samples and are not fed here).
    pub fn sample(&mut self, r: Duration) {
        match self.srtt {
            None => {
                self.srtt = Some(r);
                self.rttvar = r / 2;
            }
            Some(srtt) => {
                let diff = srtt.abs_diff(r);
                self.rttvar = (self.rttvar * 3 + diff) / 4;
                self.srtt = Some((srtt * 7 + r) / 8);
            }
        }
        let srtt = self.srtt.unwrap_or(r);
        // RFC 6298 (2.3): RTO = SRTT + max(G, 4·RTTVAR), G = 1 ms here.
        let rto = srtt + (self.rttvar * 4).max(Duration::from_millis(1));
        self.rto = rto.clamp(self.min, self.max);
    }

    pub fn rto(&self) -> Duration {
        self.rto
    }

    pub fn srtt(&self) -> Option<Duration> {
        self.srtt
    }

    /// The timeout after `retries` retransmissions: doubled each time
    /// (RFC 6298 5.5), capped.
    pub fn backoff(&self, retries: u32) -> Duration {
        let factor = 1u32 << retries.min(16);
        self.rto.saturating_mul(factor).min(self.max)
    }
}

/// Counts of samples by power-of-two microseconds: bucket `i` holds
/// samples below `2^i` µs (bucket 0: below 1 µs). 40 buckets reach
/// about 6 days, so nothing overflows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LagHistogram {
    buckets: [u64; 40],
    count: u64,
    max: Duration,
}

impl Default for LagHistogram {
    fn default() -> Self {
        LagHistogram {
            buckets: [0; 40],
            count: 0,
            max: Duration::ZERO,
        }
    }
}

impl LagHistogram {
    pub fn record(&mut self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = (64 - us.leading_zeros()) as usize;
        self.buckets[i.min(self.buckets.len() - 1)] += 1;
        self.count += 1;
        self.max = self.max.max(d);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Duration {
        self.max
    }

    /// An upper bound of the `q`-quantile (0.0..=1.0): the top of the
    /// bucket it falls in, so at most twice the true value.
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        if self.count == 0 {
            return None;
        }
        let rank = ((self.count as f64) * q.clamp(0.0, 1.0)).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (i, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                let top = Duration::from_micros(1u64 << i);
                return Some(top.min(self.max));
            }
        }
        Some(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Duration {
        Duration::from_millis(v)
    }

    #[test]
    fn rto_follows_rfc6298_and_clamps() {
        let mut r = RttEstimator::new(ms(200), ms(20), ms(2000));
        assert_eq!(r.rto(), ms(200));
        r.sample(ms(10));
        // SRTT 10, RTTVAR 5: RTO 30.
        assert_eq!(r.rto(), ms(30));
        for _ in 0..50 {
            r.sample(ms(1));
        }
        assert_eq!(r.rto(), ms(20), "clamped to min");
        assert_eq!(r.backoff(1), ms(40));
        assert_eq!(r.backoff(30), ms(2000), "capped");
    }

    #[test]
    fn histogram_quantiles_bound_the_samples() {
        let mut h = LagHistogram::default();
        assert_eq!(h.quantile(0.5), None);
        for v in 1..=100u64 {
            h.record(ms(v));
        }
        let p50 = h.quantile(0.5).unwrap();
        assert!(p50 >= ms(50) && p50 <= ms(100), "{p50:?}");
        let p99 = h.quantile(0.99).unwrap();
        assert!(p99 >= ms(99) && p99 <= ms(100), "{p99:?}");
        assert_eq!(h.max(), ms(100));
        assert_eq!(h.count(), 100);
    }
}
