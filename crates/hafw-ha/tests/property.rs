//! Random fault schedules against the pair, checking the invariants:
//! 1. while connected (every path delivering both ways, both nodes running)
//!    for longer than detection + the largest network delay, two actives
//!    never overlap longer than one heartbeat trip (planned handovers and
//!    preemption overlap by design: make before break);
//! 2. while a functional node (running, healthy, not suspended) has been so
//!    for longer than detection + promotion hold + the largest delay + a few
//!    intervals, some running node is active, except within that same time
//!    of the last moment one was;
//! 3. no panic, and no node leaves a deadline in the past (the simulator
//!    asserts it).
//!
//! `PROPERTY_CASES=n` runs more schedules; `PROPERTY_SEED=s` replays one.

mod sim;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use hafw_ha::msg::State;
use hafw_ha::node::{Action, Command, Config, FlapLimit};
use hafw_ha::Time;
use sim::{ms, Entry, Event, Fault, Link, Rng, Sim};

const DEFAULT_CASES: u64 = 1000;

#[test]
fn random_fault_schedules_keep_the_invariants() {
    let seeds: Vec<u64> = match std::env::var("PROPERTY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        Some(seed) => vec![seed],
        None => {
            let cases = std::env::var("PROPERTY_CASES")
                .ok()
                .and_then(|s| s.parse().ok())
                .unwrap_or(DEFAULT_CASES);
            (0..cases).collect()
        }
    };
    let mut checked = Counts::default();
    for seed in seeds {
        let result = catch_unwind(AssertUnwindSafe(|| run_case(seed)));
        match result {
            Ok(Ok(counts)) => checked.add(&counts),
            Ok(Err(why)) => panic!("seed {seed} fails (replay: PROPERTY_SEED={seed}): {why}"),
            Err(_) => panic!("seed {seed} panicked (replay: PROPERTY_SEED={seed})"),
        }
    }
    // The schedules must exercise what the invariants are about.
    assert!(
        checked.promotions > 0 && checked.connected_checks > 0 && checked.functional_checks > 0
    );
    eprintln!("{checked:?}");
}

/// How much each invariant was actually exercised.
#[derive(Debug, Default)]
struct Counts {
    /// Transitions into Active.
    promotions: u64,
    /// Checks of invariant 1 with two actives while long connected.
    connected_checks: u64,
    /// Checks of invariant 2 with a node functional for long.
    functional_checks: u64,
}

impl Counts {
    fn add(&mut self, o: &Counts) {
        self.promotions += o.promotions;
        self.connected_checks += o.connected_checks;
        self.functional_checks += o.functional_checks;
    }
}

struct Plan {
    sim: Sim,
    end: Time,
    /// When the network is not calm: `[start, end)`.
    rough: Vec<(Time, Time)>,
    /// Invariant 1: overlap allowed while connected, and how long the
    /// connection must have lasted first.
    overlap: Duration,
    settle: Duration,
    /// Invariant 2: how long a functional node may wait for an active.
    patience: Duration,
}

fn plan(seed: u64) -> Plan {
    let mut rng = Rng::new(seed.wrapping_mul(0x2545_f491_4f6c_dd1d) ^ 0x5eed);
    let slow = rng.chance(0.3);
    let interval = ms(if slow { 100 } else { 10 });
    let paths = 1 + rng.below(3) as usize;
    let hold = interval * rng.below(4) as u32;
    let preempt = rng.chance(0.3);
    // Half the cases listen longer than the detection time at start, as the
    // daemon does (a cold-start race must not make both announce).
    let listen = if rng.chance(0.5) {
        Duration::ZERO
    } else {
        interval * 10
    };
    // Half the cases adapt detection to jitter, up to 10x the fixed time.
    let max_detection = if rng.chance(0.5) {
        interval * 30
    } else {
        Duration::ZERO
    };
    let config = |node_id, priority, rng: &mut Rng| Config {
        node_id,
        priority,
        preempt,
        preempt_hold: interval * (5 + rng.below(20) as u32),
        promotion_hold: hold,
        heartbeat_interval: interval,
        miss_count: 3,
        paths,
        flap_limit: FlapLimit {
            transitions: 5,
            window: interval * 2000,
        },
        takeover_wait: interval * (3 + rng.below(10) as u32),
        initial_listen: listen,
        max_detection,
    };
    let prio = [100, 200];
    let a = config(1, prio[rng.below(2) as usize], &mut rng);
    let b = config(2, prio[rng.below(2) as usize], &mut rng);
    let configs = if rng.chance(0.5) { [a, b] } else { [b, a] };
    let calm = Link {
        dup: if rng.chance(0.5) { 0.05 } else { 0.0 },
        delay_min: ms(0),
        delay_max: rng.between(ms(1), interval * 8 / 10),
        ..Link::good(ms(1))
    };
    let mut sim = Sim::new(seed, configs, ms(1));
    sim.at(
        ms(0),
        Fault::Link {
            path: None,
            dir: None,
            link: calm,
        },
    );
    let end = interval * 400;
    for i in 0..2 {
        let start = interval * rng.below(20) as u32;
        sim.at(start, Fault::Start(i));
    }
    let mut rough = Vec::new();
    let mut max_delay = calm.delay_max;
    for _ in 0..2 + rng.below(9) {
        let from = interval * (20 + rng.below(340) as u32);
        let to = from + interval * (1 + rng.below(40) as u32);
        let i = rng.below(2) as usize;
        let mut net = |sim: &mut Sim, path, dir, link| {
            sim.at(from, Fault::Link { path, dir, link });
            sim.at(
                to,
                Fault::Link {
                    path: None,
                    dir: None,
                    link: calm,
                },
            );
            rough.push((from, to));
        };
        match rng.below(8) {
            0 => net(&mut sim, None, None, Link::cut()),
            1 => net(&mut sim, None, Some(i), Link::cut()),
            2 => net(
                &mut sim,
                Some(rng.below(paths as u64) as usize),
                None,
                Link::cut(),
            ),
            3 => {
                let lossy = Link {
                    drop: 0.2 + 0.7 * (rng.below(100) as f64 / 100.0),
                    dup: 0.1,
                    delay_min: ms(0),
                    delay_max: rng.between(ms(1), interval * 4),
                    ..Link::good(ms(0))
                };
                max_delay = max_delay.max(lossy.delay_max);
                net(&mut sim, None, None, lossy);
            }
            4 => {
                sim.at(from, Fault::Crash(i));
                sim.at(to, Fault::Start(i));
            }
            5 => {
                sim.at(from, Fault::Freeze(i));
                sim.at(to, Fault::Thaw(i));
            }
            6 => {
                sim.at(from, Fault::Monitor(i, false, "untrust link down"));
                sim.at(to, Fault::Monitor(i, true, ""));
            }
            _ => {
                sim.at(from, Fault::Command(i, Command::Suspend));
                sim.at(to, Fault::Command(i, Command::Resume));
            }
        }
    }
    // Adaptive detection may stretch to its ceiling after a freeze or a
    // delay burst: the bounds allow for it.
    let detection = (interval * 3).max(max_detection);
    Plan {
        sim,
        end,
        rough,
        overlap: interval + calm.delay_max + ms(1),
        settle: detection + max_delay + interval,
        patience: detection.max(listen) + hold + max_delay + interval * 3,
    }
}

/// Since when each tracked condition has held (`None`: it does not).
#[derive(Default)]
struct Since {
    connected: Option<Time>,
    both_active: Option<Time>,
    none_active: Option<Time>,
    functional: [Option<Time>; 2],
}

fn run_case(seed: u64) -> Result<Counts, String> {
    let Plan {
        mut sim,
        end,
        rough,
        overlap,
        settle,
        patience,
    } = plan(seed);
    let mut since = Since {
        none_active: Some(ms(0)),
        ..Since::default()
    };
    let mut counts = Counts::default();
    let fail = |sim: &Sim, t: Time, what: &str| -> String {
        format!(
            "at {t:?}: {what}; states {:?}\nlast events:\n{}",
            sim.states(),
            tail(&sim.log, 25)
        )
    };
    while let Some(t) = sim.next_event().filter(|&t| t <= end) {
        // The states held from the previous event until just before `t`.
        let both = since.both_active.is_some_and(|s| t - s > overlap);
        let long_connected = since.connected.is_some_and(|c| t - c > settle);
        if long_connected && since.both_active.is_some() {
            counts.connected_checks += 1;
        }
        if both && long_connected {
            return Err(fail(&sim, t, "two actives while connected"));
        }
        let waiting = since.functional.iter().flatten().any(|&f| t - f > patience);
        if waiting {
            counts.functional_checks += 1;
            if since.none_active.is_some_and(|n| t - n > patience) {
                return Err(fail(&sim, t, "a functional node waits with nobody active"));
            }
        }
        sim.step();
        observe(&sim, t, &rough, &mut since);
    }
    counts.promotions = (sim.log.iter())
        .filter(|e| matches!(e.event, Event::Action(Action::BecomeActive { .. })))
        .count() as u64;
    Ok(counts)
}

/// Updates the "since" marks from the states now in effect.
fn observe(sim: &Sim, t: Time, rough: &[(Time, Time)], since: &mut Since) {
    let calm = !rough.iter().any(|&(a, b)| a <= t && t < b);
    let connected = calm && sim.running(0) && sim.running(1);
    mark(&mut since.connected, connected, t);
    // A frozen active still holds its addresses: it counts for overlap.
    let holds = |i: usize| sim.state(i) == Some(State::Active);
    mark(&mut since.both_active, holds(0) && holds(1), t);
    let serving = (0..2).any(|i| sim.running(i) && holds(i));
    mark(&mut since.none_active, !serving, t);
    for i in 0..2 {
        let functional = sim.running(i) && sim.healthy(i) && sim.state(i) != Some(State::Suspended);
        mark(&mut since.functional[i], functional, t);
    }
}

fn mark(slot: &mut Option<Time>, holds: bool, t: Time) {
    match (holds, *slot) {
        (true, None) => *slot = Some(t),
        (false, _) => *slot = None,
        _ => {}
    }
}

fn tail(log: &[Entry], n: usize) -> String {
    let from = log.len().saturating_sub(n);
    log[from..]
        .iter()
        .map(|e| format!("  {:?} node {}: {:?}", e.at, e.node, e.event))
        .collect::<Vec<_>>()
        .join("\n")
}
