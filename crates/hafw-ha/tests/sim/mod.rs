//! A deterministic simulator of two HA nodes over `paths` heartbeat paths.
//! Each path has two directions (0: node 0 → node 1, 1: node 1 → node 0)
//! that drop, delay (uniformly between a minimum and a maximum, which
//! reorders), duplicate, or are cut. Node faults: crash, restart, freeze
//! (stops sending and processing; messages to it are lost), thaw, monitor
//! verdicts and commands. Everything random comes from one seeded PRNG, so a
//! seed replays a run exactly.
//!
//! Time advances from event to event (a delivery, a node deadline, a
//! scheduled fault); nodes are driven exactly as the daemon drives them.

#![allow(dead_code)] // each test binary uses a different part

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Duration;

use hafw_ha::msg::{Message, State};
use hafw_ha::node::{Action, Command, Config, FlapLimit, Node};
use hafw_ha::Time;

pub fn ms(v: u64) -> Time {
    Duration::from_millis(v)
}

/// The workspace's test generator (splitmix64), the same everywhere.
pub use hafw_testkit::Rng;

/// One direction of one path.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Link {
    pub up: bool,
    pub drop: f64,
    pub dup: f64,
    pub delay_min: Duration,
    pub delay_max: Duration,
    /// Loses every Takeover (and only those): a planned handover unheard.
    pub drop_takeovers: bool,
}

impl Link {
    pub fn good(delay: Duration) -> Link {
        Link {
            up: true,
            drop: 0.0,
            dup: 0.0,
            delay_min: delay,
            delay_max: delay,
            drop_takeovers: false,
        }
    }
    pub fn cut() -> Link {
        Link {
            up: false,
            ..Link::good(Duration::ZERO)
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// Starts (or restarts) the node fresh, in Initial.
    Start(usize),
    Crash(usize),
    Freeze(usize),
    Thaw(usize),
    Monitor(usize, bool, &'static str),
    Command(usize, Command),
    /// Sets one direction (`Some(0)`: node 0 → 1) or both of a path (or of
    /// every path: `None`).
    Link {
        path: Option<usize>,
        dir: Option<usize>,
        link: Link,
    },
}

/// What the log holds: every action of every node, and the faults.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Action(Action),
    Fault(Fault),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: Time,
    pub node: usize,
    pub event: Event,
}

struct SimNode {
    config: Config,
    node: Option<Node>,
    frozen: bool,
    healthy: bool,
    reason: &'static str,
}

#[derive(PartialEq, Eq, PartialOrd, Ord)]
struct Flight {
    at: Time,
    id: u64,
    to: usize,
    path: usize,
}

pub struct Sim {
    pub now: Time,
    nodes: Vec<SimNode>,
    /// `links[path][dir]`.
    links: Vec<[Link; 2]>,
    flights: BinaryHeap<Reverse<Flight>>,
    /// Messages in flight, by flight id (kept apart so `Flight` orders
    /// without comparing messages).
    cargo: std::collections::HashMap<u64, Message>,
    faults: BinaryHeap<Reverse<(Time, u64)>>,
    fault_list: Vec<Fault>,
    rng: Rng,
    next_id: u64,
    pub log: Vec<Entry>,
    /// Heartbeats delivered, per direction (for the property checker).
    pub delivered: [u64; 2],
}

impl Sim {
    /// Two nodes, not started, over `configs[0].paths` good links of `delay`.
    pub fn new(seed: u64, configs: [Config; 2], delay: Duration) -> Sim {
        let paths = configs[0].paths;
        Sim {
            now: Duration::ZERO,
            nodes: configs
                .into_iter()
                .map(|config| SimNode {
                    config,
                    node: None,
                    frozen: false,
                    healthy: true,
                    reason: "",
                })
                .collect(),
            links: vec![[Link::good(delay); 2]; paths],
            flights: BinaryHeap::new(),
            cargo: Default::default(),
            faults: BinaryHeap::new(),
            fault_list: Vec::new(),
            rng: Rng::new(seed),
            next_id: 0,
            log: Vec::new(),
            delivered: [0; 2],
        }
    }

    /// Both nodes started at 0 over 1 ms links.
    pub fn pair(a: Config, b: Config) -> Sim {
        let mut sim = Sim::new(1, [a, b], ms(1));
        sim.at(ms(0), Fault::Start(0));
        sim.at(ms(0), Fault::Start(1));
        sim
    }

    pub fn at(&mut self, at: Time, fault: Fault) -> &mut Sim {
        self.faults
            .push(Reverse((at, self.fault_list.len() as u64)));
        self.fault_list.push(fault);
        self
    }

    /// `(time, fault)` rows, the shape scenario tables use.
    pub fn schedule(&mut self, rows: &[(u64, Fault)]) -> &mut Sim {
        for (t, f) in rows {
            self.at(ms(*t), f.clone());
        }
        self
    }

    pub fn state(&self, i: usize) -> Option<State> {
        self.nodes[i].node.as_ref().map(|n| n.state())
    }

    pub fn states(&self) -> [Option<State>; 2] {
        [self.state(0), self.state(1)]
    }

    /// Node `i`'s settings.
    pub fn config(&self, i: usize) -> &Config {
        &self.nodes[i].config
    }

    pub fn node(&self, i: usize) -> Option<&Node> {
        self.nodes[i].node.as_ref()
    }

    /// Running: started, not crashed, not frozen.
    pub fn running(&self, i: usize) -> bool {
        self.nodes[i].node.is_some() && !self.nodes[i].frozen
    }

    pub fn healthy(&self, i: usize) -> bool {
        self.nodes[i].healthy
    }

    pub fn actions(&self, i: usize) -> Vec<(Time, Action)> {
        self.log
            .iter()
            .filter(|e| e.node == i)
            .filter_map(|e| match &e.event {
                Event::Action(a) => Some((e.at, a.clone())),
                Event::Fault(_) => None,
            })
            .collect()
    }

    /// Node `i`'s state changes as short words, in order.
    pub fn moves(&self, i: usize) -> Vec<&'static str> {
        self.actions(i)
            .iter()
            .filter_map(|(_, a)| word(a))
            .collect()
    }

    /// When node `i` first did something matching `f` at or after `from`.
    pub fn first(&self, i: usize, from: Time, f: impl Fn(&Action) -> bool) -> Option<Time> {
        self.actions(i)
            .into_iter()
            .find(|(t, a)| *t >= from && f(a))
            .map(|(t, _)| t)
    }

    /// The instant of the next event, if any.
    pub fn next_event(&self) -> Option<Time> {
        let fault = self.faults.peek().map(|Reverse((t, _))| *t);
        let flight = self.flights.peek().map(|Reverse(f)| f.at);
        let timers = (0..2).filter(|&i| self.running(i)).filter_map(|i| {
            let node = self.nodes[i].node.as_ref()?;
            node.poll_timeout().map(|t| t.max(self.now))
        });
        fault.into_iter().chain(flight).chain(timers).min()
    }

    pub fn run_until(&mut self, end: Time) {
        while self.next_event().is_some_and(|t| t <= end) {
            self.step();
        }
        self.now = self.now.max(end);
    }

    /// Processes everything due at the next event's instant.
    pub fn step(&mut self) {
        let Some(t) = self.next_event() else {
            return;
        };
        self.now = t;
        while let Some(Reverse((at, id))) = self.faults.peek().copied() {
            if at > t {
                break;
            }
            self.faults.pop();
            let fault = self.fault_list[id as usize].clone();
            self.apply(fault);
        }
        while self.flights.peek().is_some_and(|Reverse(f)| f.at <= t) {
            let Some(Reverse(f)) = self.flights.pop() else {
                break;
            };
            let Some(msg) = self.cargo.remove(&f.id) else {
                continue;
            };
            if !self.running(f.to) {
                continue;
            }
            if matches!(msg, Message::Heartbeat(_)) {
                self.delivered[1 - f.to] += 1;
            }
            if let Some(node) = self.nodes[f.to].node.as_mut() {
                node.handle_message(t, f.path, &msg);
            }
            self.drain(f.to);
        }
        for i in 0..2 {
            if !self.running(i) {
                continue;
            }
            let Some(node) = self.nodes[i].node.as_mut() else {
                continue;
            };
            if node.poll_timeout().is_some_and(|d| d <= t) {
                node.handle_timeout(t);
                let next = node.poll_timeout();
                assert!(
                    next.is_none_or(|d| d > t),
                    "node {i} left a deadline in the past at {t:?}"
                );
                self.drain(i);
            }
        }
    }

    fn apply(&mut self, fault: Fault) {
        let now = self.now;
        let who = match &fault {
            Fault::Start(i)
            | Fault::Crash(i)
            | Fault::Freeze(i)
            | Fault::Thaw(i)
            | Fault::Monitor(i, ..)
            | Fault::Command(i, _) => *i,
            Fault::Link { .. } => 0,
        };
        self.log.push(Entry {
            at: now,
            node: who,
            event: Event::Fault(fault.clone()),
        });
        match fault {
            Fault::Start(i) => {
                let n = &mut self.nodes[i];
                let mut node = Node::new(n.config.clone(), now).expect("valid test config");
                if !n.healthy {
                    node.handle_monitor(now, false, n.reason);
                }
                n.node = Some(node);
                n.frozen = false;
                self.drain(i);
            }
            Fault::Crash(i) => self.nodes[i].node = None,
            Fault::Freeze(i) => self.nodes[i].frozen = true,
            Fault::Thaw(i) => {
                // The daemon's monitors report again once it runs.
                let n = &mut self.nodes[i];
                n.frozen = false;
                if let Some(node) = n.node.as_mut() {
                    node.handle_monitor(now, n.healthy, n.reason);
                }
                self.drain(i);
            }
            Fault::Monitor(i, healthy, reason) => {
                let n = &mut self.nodes[i];
                n.healthy = healthy;
                n.reason = reason;
                if let (Some(node), false) = (n.node.as_mut(), n.frozen) {
                    node.handle_monitor(now, healthy, reason);
                    self.drain(i);
                }
            }
            Fault::Command(i, cmd) => {
                if self.running(i) {
                    if let Some(node) = self.nodes[i].node.as_mut() {
                        node.handle_command(now, cmd);
                    }
                    self.drain(i);
                }
            }
            Fault::Link { path, dir, link } => {
                for p in 0..self.links.len() {
                    for d in 0..2 {
                        if path.is_none_or(|x| x == p) && dir.is_none_or(|x| x == d) {
                            self.links[p][d] = link;
                        }
                    }
                }
            }
        }
    }

    /// Takes node `i`'s transmits onto the links and its actions into the log.
    fn drain(&mut self, i: usize) {
        let Some(node) = self.nodes[i].node.as_mut() else {
            return;
        };
        let mut out = Vec::new();
        while let Some(t) = node.poll_transmit() {
            out.push(t);
        }
        while let Some(a) = node.poll_action() {
            self.log.push(Entry {
                at: self.now,
                node: i,
                event: Event::Action(a),
            });
        }
        for (path, msg) in out {
            let Some(link) = self.links.get(path).map(|l| l[i]) else {
                continue;
            };
            let takeover = matches!(msg, Message::Takeover { .. });
            if !link.up || (takeover && link.drop_takeovers) || self.rng.chance(link.drop) {
                continue;
            }
            let copies = if self.rng.chance(link.dup) { 2 } else { 1 };
            for _ in 0..copies {
                let at = self.now + self.rng.between(link.delay_min, link.delay_max);
                let id = self.next_id;
                self.next_id += 1;
                self.cargo.insert(id, msg.clone());
                self.flights.push(Reverse(Flight {
                    at,
                    id,
                    to: 1 - i,
                    path,
                }));
            }
        }
    }
}

/// A state change as one word; `None` for alarms.
pub fn word(a: &Action) -> Option<&'static str> {
    Some(match a {
        Action::BecomeActive { .. } => "active",
        Action::BecomePassive { .. } => "passive",
        Action::BecomeSuspended { .. } => "suspended",
        Action::BecomeNonFunctional { .. } => "non-functional",
        _ => return None,
    })
}

/// A test profile: `interval` × 3 detection, `hold` promotion hold.
pub fn profile(node_id: u32, priority: u8, interval: u64, hold: u64) -> Config {
    Config {
        heartbeat_interval: ms(interval),
        miss_count: 3,
        promotion_hold: ms(hold),
        preempt_hold: ms(interval * 20),
        takeover_wait: ms(interval * 10),
        // Fixed detection: the scenarios time it; adaptive detection has
        // scenarios of its own.
        max_detection: Duration::ZERO,
        // Stated, not taken from the defaults: the scenarios count on them.
        flap_limit: FlapLimit {
            transitions: 5,
            window: ms(60_000),
        },
        initial_listen: Duration::ZERO,
        ..Config::new(node_id, priority)
    }
}
