//! A deterministic simulated link between two endpoints: each direction
//! drops, duplicates and delays (uniformly between a minimum and a
//! maximum, which reorders); a partition drops everything. Time jumps from
//! event to event (a delivery or an endpoint's deadline); endpoints are
//! driven as a daemon drives a core: `handle_*`, then drain
//! `poll_transmit` and run their actions. Everything random comes from
//! the one seeded [`Rng`] of the [`Net`].
//!
//! Generic over the message type: the session and config sync tests send
//! byte payloads, a test of typed messages can send those.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::time::Duration;

use crate::Rng;

/// Simulated time: a duration since the start of the simulation.
pub type Time = Duration;

pub fn ms(v: u64) -> Time {
    Duration::from_millis(v)
}

/// One direction of the link.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    /// Probability that a message is lost.
    pub drop: f64,
    /// Probability that a message arrives twice.
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
    /// A bad link: 20 % loss, 5 % duplicates, 0.5..5 ms delay.
    pub fn lossy() -> Link {
        Link {
            drop: 0.2,
            dup: 0.05,
            delay_min: Duration::from_micros(500),
            delay_max: ms(5),
        }
    }
    /// Nothing gets through.
    pub fn cut() -> Link {
        Link {
            drop: 1.0,
            ..Link::perfect()
        }
    }
}

/// A core plus the bit of daemon around it.
pub trait Endpoint {
    type Msg: Clone;
    fn handle_message(&mut self, now: Time, msg: &Self::Msg);
    fn handle_timeout(&mut self, now: Time);
    fn poll_timeout(&self) -> Option<Time>;
    fn poll_transmit(&mut self) -> Option<Self::Msg>;
    /// Carries out the core's actions (the daemon's part).
    fn run_actions(&mut self, now: Time);
}

/// Two endpoints `a` and `b` and the link between them.
pub struct Net<A: Endpoint, B> {
    pub now: Time,
    pub a: A,
    pub b: B,
    /// `links[0]`: a → b; `links[1]`: b → a.
    pub links: [Link; 2],
    pub rng: Rng,
    flights: BinaryHeap<Reverse<(Time, u64)>>,
    cargo: HashMap<u64, (usize, A::Msg)>,
    next_id: u64,
    /// Messages handed to the link, per direction (before loss).
    pub sent: [u64; 2],
    pub delivered: [u64; 2],
}

impl<A: Endpoint, B: Endpoint<Msg = A::Msg>> Net<A, B> {
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

    /// Messages on the wire now (a partition drops at sending, so these
    /// still arrive).
    pub fn in_flight(&self) -> usize {
        self.cargo.len()
    }

    /// Cuts both directions until [`Net::heal`].
    pub fn partition(&mut self) {
        self.links = [Link::cut(); 2];
    }

    /// Both directions behave as `link` from now on.
    pub fn heal(&mut self, link: Link) {
        self.links = [link; 2];
    }

    /// Lets both endpoints act on whatever they have (after an input the
    /// test gave one of them directly).
    pub fn drain(&mut self) {
        self.a.run_actions(self.now);
        self.b.run_actions(self.now);
        while let Some(msg) = self.a.poll_transmit() {
            self.transmit(0, msg);
        }
        while let Some(msg) = self.b.poll_transmit() {
            self.transmit(1, msg);
        }
    }

    fn transmit(&mut self, dir: usize, msg: A::Msg) {
        self.sent[dir] += 1;
        let link = self.links[dir];
        if self.rng.chance(link.drop) {
            return;
        }
        let copies = if self.rng.chance(link.dup) { 2 } else { 1 };
        for _ in 0..copies {
            let at = self.now + self.rng.between(link.delay_min, link.delay_max);
            self.flights.push(Reverse((at, self.next_id)));
            self.cargo.insert(self.next_id, (dir, msg.clone()));
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

    /// Jumps to the next event and handles it: every delivery due, then
    /// each endpoint's deadline if it is due. Panics if an endpoint leaves
    /// a deadline in the past (the daemon would spin).
    pub fn step(&mut self) {
        let Some(t) = self.next_event() else {
            return;
        };
        self.now = t;
        while self.flights.peek().is_some_and(|Reverse((at, _))| *at <= t) {
            let Some(Reverse((_, id))) = self.flights.pop() else {
                break;
            };
            let Some((dir, msg)) = self.cargo.remove(&id) else {
                continue;
            };
            self.delivered[dir] += 1;
            if dir == 0 {
                self.b.handle_message(t, &msg);
            } else {
                self.a.handle_message(t, &msg);
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Sends `0..count` at start, once, and keeps what it receives.
    struct Peer {
        to_send: Vec<u32>,
        got: Vec<u32>,
        timer: Option<Time>,
        fired: u32,
    }

    impl Peer {
        fn new(count: u32) -> Peer {
            Peer {
                to_send: (0..count).rev().collect(),
                got: Vec::new(),
                timer: None,
                fired: 0,
            }
        }
    }

    impl Endpoint for Peer {
        type Msg = u32;
        fn handle_message(&mut self, _now: Time, msg: &u32) {
            self.got.push(*msg);
        }
        fn handle_timeout(&mut self, _now: Time) {
            self.fired += 1;
            self.timer = None;
        }
        fn poll_timeout(&self) -> Option<Time> {
            self.timer
        }
        fn poll_transmit(&mut self) -> Option<u32> {
            self.to_send.pop()
        }
        fn run_actions(&mut self, _now: Time) {}
    }

    #[test]
    fn a_perfect_link_delivers_everything_in_order_after_its_delay() {
        let mut net = Net::new(1, Peer::new(100), Peer::new(0), Link::perfect());
        net.drain();
        assert_eq!(net.in_flight(), 100);
        net.run_until(Duration::from_micros(99));
        assert!(net.b.got.is_empty());
        net.run_until(ms(1));
        assert_eq!(net.b.got, (0..100).collect::<Vec<_>>());
        assert_eq!((net.sent, net.delivered), ([100, 0], [100, 0]));
    }

    #[test]
    fn a_lossy_link_drops_duplicates_and_reorders() {
        let mut net = Net::new(2, Peer::new(10_000), Peer::new(0), Link::lossy());
        net.drain();
        net.run_until(ms(10));
        let got = &net.b.got;
        let mut distinct = got.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert!(
            (7_500..8_500).contains(&distinct.len()),
            "{}",
            distinct.len()
        );
        assert!(got.len() > distinct.len(), "no duplicates");
        assert!(got.windows(2).any(|w| w[0] > w[1]), "no reordering");
        assert!(net.now >= ms(10));
    }

    #[test]
    fn a_partition_drops_everything_until_healed_and_timers_still_fire() {
        let mut net = Net::new(3, Peer::new(50), Peer::new(0), Link::perfect());
        net.partition();
        net.b.timer = Some(ms(7));
        net.drain();
        net.run_until(ms(10));
        assert!(net.b.got.is_empty());
        assert_eq!(net.b.fired, 1, "time moved on while cut");
        assert_eq!(net.now, ms(10));
        net.heal(Link::perfect());
        net.a.to_send = vec![7];
        net.drain();
        let ok = net.run_until_true(ms(20), |n| n.b.got == [7]);
        assert!(ok);
    }
}
