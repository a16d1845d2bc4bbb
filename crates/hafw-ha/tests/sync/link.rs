//! A deterministic simulated HA2 link between two sync endpoints: each
//! direction drops, duplicates and delays (uniformly between a minimum and
//! a maximum, which reorders). Time jumps from event to event (a delivery
//! or an endpoint's deadline); endpoints are driven as the daemon drives
//! them: `handle_*`, then drain `poll_transmit` and `poll_action`.
//! Everything random comes from one seeded PRNG, as in `tests/sim`.

#![allow(dead_code)] // each test uses a different part

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use hafw_ha::Time;

pub fn ms(v: u64) -> Time {
    Duration::from_millis(v)
}

/// splitmix64, like `tests/sim`.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn chance(&mut self, p: f64) -> bool {
        ((self.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p
    }
    pub fn between(&mut self, lo: Duration, hi: Duration) -> Duration {
        let span = hi.saturating_sub(lo).as_micros() as u64;
        lo + Duration::from_micros(self.below(span + 1))
    }
}

/// One direction of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    pub drop: f64,
    pub dup: f64,
    pub delay_min: Duration,
    pub delay_max: Duration,
}

impl Link {
    pub fn perfect() -> Link {
        Link {
            drop: 0.0,
            dup: 0.0,
            delay_min: Duration::from_micros(100),
            delay_max: Duration::from_micros(100),
        }
    }
    /// The bad link: 20 % loss, 5 % duplicates, 0.5..5 ms delay.
    pub fn lossy() -> Link {
        Link {
            drop: 0.2,
            dup: 0.05,
            delay_min: Duration::from_micros(500),
            delay_max: ms(5),
        }
    }
    pub fn cut() -> Link {
        Link {
            drop: 1.0,
            ..Link::perfect()
        }
    }
}

/// A sync core plus the bit of daemon around it.
pub trait Endpoint {
    fn handle_message(&mut self, now: Time, bytes: &[u8]);
    fn handle_timeout(&mut self, now: Time);
    fn poll_timeout(&self) -> Option<Time>;
    fn poll_transmit(&mut self) -> Option<Vec<u8>>;
    /// Carries out the core's actions (the daemon's part).
    fn run_actions(&mut self, now: Time);
}

pub struct Net<A, B> {
    pub now: Time,
    pub a: A,
    pub b: B,
    /// `links[0]`: a → b; `links[1]`: b → a.
    pub links: [Link; 2],
    pub rng: Rng,
    flights: BinaryHeap<Reverse<(Time, u64)>>,
    cargo: HashMap<u64, (usize, Vec<u8>)>,
    next_id: u64,
    /// Payloads handed to the link, per direction (before loss).
    pub sent: [u64; 2],
    pub delivered: [u64; 2],
}

impl<A: Endpoint, B: Endpoint> Net<A, B> {
    pub fn new(seed: u64, a: A, b: B, link: Link) -> Net<A, B> {
        Net {
            now: Duration::ZERO,
            a,
            b,
            links: [link; 2],
            rng: Rng::new(seed),
            flights: BinaryHeap::new(),
            cargo: HashMap::new(),
            next_id: 0,
            sent: [0; 2],
            delivered: [0; 2],
        }
    }

    pub fn in_flight(&self) -> usize {
        self.cargo.len()
    }

    /// Lets both endpoints act on whatever they have (after an input the
    /// test gave one of them directly).
    pub fn drain(&mut self) {
        self.a.run_actions(self.now);
        self.b.run_actions(self.now);
        while let Some(bytes) = self.a.poll_transmit() {
            self.transmit(0, bytes);
        }
        while let Some(bytes) = self.b.poll_transmit() {
            self.transmit(1, bytes);
        }
    }

    fn transmit(&mut self, dir: usize, bytes: Vec<u8>) {
        self.sent[dir] += 1;
        let link = self.links[dir];
        if self.rng.chance(link.drop) {
            return;
        }
        let copies = if self.rng.chance(link.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.between(link.delay_min, link.delay_max);
            self.flights.push(Reverse((at, self.next_id)));
            self.cargo.insert(self.next_id, (dir, bytes.clone()));
            self.next_id += 1;
        }
    }

    pub fn next_event(&self) -> Option<Time> {
        let flight = self.flights.peek().map(|Reverse((t, _))| *t);
        let timers = [self.a.poll_timeout(), self.b.poll_timeout()]
            .into_iter()
            .flatten()
            .map(|t| t.max(self.now));
        flight.into_iter().chain(timers).min()
    }

    pub fn run_until(&mut self, end: Time) {
        while self.next_event().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Runs until `done` holds, giving up (false) at `limit`.
    pub fn run_until_true(&mut self, limit: Time, done: impl Fn(&Self) -> bool) -> bool {
        loop {
            if done(self) {
                return true;
            }
            match self.next_event() {
                Some(t) if t <= limit => self.step(),
                _ => {
                    self.now = self.now.max(limit);
                    return done(self);
                }
            }
        }
    }

    pub fn step(&mut self) {
        let Some(t) = self.next_event() else {
            return;
        };
        self.now = t;
        while self.flights.peek().is_some_and(|Reverse((at, _))| *at <= t) {
            let Some(Reverse((_, id))) = self.flights.pop() else {
                break;
            };
            let Some((dir, bytes)) = self.cargo.remove(&id) else {
                continue;
            };
            self.delivered[dir] += 1;
            if dir == 0 {
                self.b.handle_message(t, &bytes);
            } else {
                self.a.handle_message(t, &bytes);
            }
            self.drain();
        }
        if self.a.poll_timeout().is_some_and(|d| d <= t) {
            self.a.handle_timeout(t);
            assert!(
                self.a.poll_timeout().is_none_or(|d| d > t),
                "endpoint a left a deadline in the past at {t:?}"
            );
        }
        if self.b.poll_timeout().is_some_and(|d| d <= t) {
            self.b.handle_timeout(t);
            assert!(
                self.b.poll_timeout().is_none_or(|d| d > t),
                "endpoint b left a deadline in the past at {t:?}"
            );
        }
        self.drain();
    }
}
