//! Scenario tests: a pair, a fault schedule, the expected states and state
//! changes (style.md rule 9: scenarios are data). All use the fast profile:
//! 10 ms heartbeats × 3 = 30 ms detection, 20 ms promotion hold, 1 ms links;
//! node 0 is node id 1 (priority 200), node 1 is node id 2 (priority 100).

mod sim;

use std::time::Duration;

use hafw_ha::msg::State::{self, *};
use hafw_ha::node::{Action, Alarm, Cause, Command, Config, FlapLimit, Handover};
use sim::{ms, profile, Fault, Fault::*, Link, Sim};

const INTERVAL: u64 = 10;
const DETECTION: u64 = 30;
const HOLD: u64 = 20;

struct Scenario {
    configs: [Config; 2],
    /// `(ms, fault)`; both nodes start at 0 unless `start` says otherwise.
    start: [Option<u64>; 2],
    faults: Vec<(u64, Fault)>,
    until: u64,
    states: [Option<State>; 2],
    moves: [&'static [&'static str]; 2],
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            configs: [fast(1, 200), fast(2, 100)],
            start: [Some(0), Some(0)],
            faults: Vec::new(),
            until: 1000,
            states: [Some(Active), Some(Passive)],
            moves: [&["passive", "active"], &["passive"]],
        }
    }
}

fn fast(node_id: u32, priority: u8) -> Config {
    profile(node_id, priority, INTERVAL, HOLD)
}

fn cut(path: Option<usize>, dir: Option<usize>) -> Fault {
    Fault::Link {
        path,
        dir,
        link: Link::cut(),
    }
}

fn heal(path: Option<usize>) -> Fault {
    Fault::Link {
        path,
        dir: None,
        link: Link::good(ms(1)),
    }
}

/// Runs the scenario and checks its expected states and state changes.
fn play(s: Scenario) -> Sim {
    let mut sim = Sim::new(1, s.configs, ms(1));
    for (i, start) in s.start.iter().enumerate() {
        if let Some(t) = start {
            sim.at(ms(*t), Start(i));
        }
    }
    sim.schedule(&s.faults);
    sim.run_until(ms(s.until));
    for i in 0..2 {
        let log: Vec<String> = sim
            .actions(i)
            .iter()
            .map(|(t, a)| format!("{t:?} {a}"))
            .collect();
        assert_eq!(
            sim.moves(i),
            s.moves[i],
            "node {i} moves; log:\n{}",
            log.join("\n")
        );
    }
    assert_eq!(sim.states(), s.states);
    sim
}

fn is_active(a: &Action) -> bool {
    matches!(a, Action::BecomeActive { .. })
}

fn last_cause(sim: &Sim, i: usize) -> Cause {
    let node = sim.node(i).unwrap();
    node.status().transitions.last().unwrap().cause.clone()
}

#[test]
fn cold_start_of_both_makes_exactly_the_higher_priority_active() {
    let sim = play(Scenario::default());
    let t = sim.first(0, ms(0), is_active).unwrap();
    assert!(
        t >= ms(HOLD) && t <= ms(HOLD + 5),
        "won the election then held: {t:?}"
    );
    assert_eq!(last_cause(&sim, 0), Cause::ElectionWon { peer: 2 });
}

#[test]
fn cold_start_of_one_becomes_active_after_the_detection_time() {
    let sim = play(Scenario {
        start: [Some(0), None],
        states: [Some(Active), None],
        moves: [&["active"], &[]],
        ..Scenario::default()
    });
    assert_eq!(sim.first(0, ms(0), is_active), Some(ms(DETECTION)));
}

#[test]
fn a_node_joining_an_active_peer_stays_passive() {
    play(Scenario {
        start: [Some(0), Some(400)],
        states: [Some(Active), Some(Passive)],
        moves: [&["active"], &["passive"]],
        ..Scenario::default()
    });
}

#[test]
fn active_crash_fails_over_within_detection_hold_and_one_interval() {
    let sim = play(Scenario {
        faults: vec![(300, Crash(0))],
        states: [None, Some(Active)],
        moves: [&["passive", "active"], &["passive", "active"]],
        ..Scenario::default()
    });
    let t = sim.first(1, ms(300), is_active).unwrap();
    assert!(
        t <= ms(300 + DETECTION + HOLD + INTERVAL),
        "took over at {t:?}"
    );
    assert!(matches!(last_cause(&sim, 1), Cause::PeerLost { .. }));
}

#[test]
fn a_frozen_active_steps_down_at_once_after_thawing() {
    let sim = play(Scenario {
        faults: vec![(300, Freeze(0)), (600, Thaw(0))],
        states: [Some(Passive), Some(Active)],
        moves: [&["passive", "active", "passive"], &["passive", "active"]],
        ..Scenario::default()
    });
    let down = sim
        .first(0, ms(600), |a| matches!(a, Action::BecomePassive { .. }))
        .unwrap();
    assert!(down <= ms(600 + INTERVAL + 1), "stepped down at {down:?}");
    assert_eq!(
        last_cause(&sim, 0),
        Cause::PartitionHealed {
            node_id: 2,
            term: 2
        }
    );
}

#[test]
fn one_lost_path_is_an_alarm_never_a_failover() {
    let sim = play(Scenario {
        faults: vec![(300, cut(Some(1), None)), (800, heal(Some(1)))],
        ..Scenario::default()
    });
    for i in 0..2 {
        let alarms: Vec<Action> = sim
            .actions(i)
            .into_iter()
            .map(|(_, a)| a)
            .filter(|a| word(a).is_none())
            .collect();
        assert_eq!(
            alarms,
            [
                Action::PeerFound { node_id: [2, 1][i] },
                Action::PathDown { path: 1 },
                Action::PathUp { path: 1 }
            ],
            "node {i}"
        );
    }
    let t = sim
        .first(1, ms(300), |a| matches!(a, Action::PathDown { .. }))
        .unwrap();
    assert!(t <= ms(300 + DETECTION));
}

fn word(a: &Action) -> Option<&'static str> {
    sim::word(a)
}

#[test]
fn all_paths_lost_fails_over_and_exactly_one_stays_after_the_heal() {
    let sim = play(Scenario {
        faults: vec![(300, cut(None, None)), (600, heal(None))],
        states: [Some(Passive), Some(Active)],
        moves: [&["passive", "active", "passive"], &["passive", "active"]],
        ..Scenario::default()
    });
    assert_eq!(
        last_cause(&sim, 0).to_string(),
        "partition healed: peer node 2 active with higher term 2"
    );
    let down = sim
        .first(0, ms(600), |a| matches!(a, Action::BecomePassive { .. }))
        .unwrap();
    assert!(down <= ms(600 + INTERVAL + 1));
}

#[test]
fn a_one_way_partition_leaves_exactly_one_active() {
    // Node 1 stops hearing node 0 and promotes with a higher term; node 0
    // still hears it and steps down at once.
    play(Scenario {
        faults: vec![(300, cut(None, Some(0))), (700, heal(None))],
        states: [Some(Passive), Some(Active)],
        moves: [&["passive", "active", "passive"], &["passive", "active"]],
        ..Scenario::default()
    });
}

#[test]
fn equal_priorities_go_to_the_lower_node_id() {
    let sim = play(Scenario {
        configs: [fast(2, 100), fast(1, 100)],
        states: [Some(Passive), Some(Active)],
        moves: [&["passive"], &["passive", "active"]],
        ..Scenario::default()
    });
    assert_eq!(last_cause(&sim, 1), Cause::ElectionWon { peer: 2 });
}

#[test]
fn without_preemption_a_recovered_higher_priority_node_stays_passive() {
    play(Scenario {
        faults: vec![(300, Crash(0)), (500, Start(0))],
        until: 2000,
        states: [Some(Passive), Some(Active)],
        moves: [&["passive", "active", "passive"], &["passive", "active"]],
        ..Scenario::default()
    });
}

#[test]
fn with_preemption_it_takes_over_after_the_hold_not_before() {
    let preempting = |id, prio| Config {
        preempt: true,
        preempt_hold: ms(200),
        ..fast(id, prio)
    };
    let sim = play(Scenario {
        configs: [preempting(1, 200), preempting(2, 100)],
        faults: vec![(300, Crash(0)), (500, Start(0))],
        until: 2000,
        states: [Some(Active), Some(Passive)],
        moves: [
            &["passive", "active", "passive", "active"],
            &["passive", "active", "passive"],
        ],
        ..Scenario::default()
    });
    let t = sim.first(0, ms(500), is_active).unwrap();
    // Passive at 501 (heard the peer after 1 ms), then 200 ms of hold.
    assert!(t >= ms(700) && t <= ms(702), "preempted at {t:?}");
    assert_eq!(last_cause(&sim, 1), Cause::Preempted { node_id: 1 });
    let down = sim
        .first(1, t, |a| matches!(a, Action::BecomePassive { .. }))
        .unwrap();
    assert!(
        down <= t + ms(2),
        "the old active stepped down one trip later: {down:?}"
    );
}

fn flappy(id: u32, prio: u8) -> Config {
    Config {
        preempt: true,
        preempt_hold: ms(100),
        flap_limit: FlapLimit {
            transitions: 3,
            window: Duration::from_secs(10),
        },
        ..fast(id, prio)
    }
}

#[test]
fn flapping_between_two_working_nodes_suspends_the_one_that_keeps_taking_over() {
    // Node 0's monitor fails and recovers every 700 ms: it hands over, then
    // preempts back. Its fourth promotion in 10 s, over a healthy active
    // peer, is one too many: it suspends and node 1 keeps the addresses.
    let mut faults = Vec::new();
    for k in 0..4 {
        faults.push((300 + 700 * k, Monitor(0, false, "untrust link down")));
        faults.push((500 + 700 * k, Monitor(0, true, "")));
    }
    let mut sim = Sim::new(1, [flappy(1, 200), flappy(2, 100)], ms(1));
    sim.at(ms(0), Start(0));
    sim.at(ms(0), Start(1));
    sim.schedule(&faults);
    sim.run_until(ms(3500));
    assert_eq!(sim.states(), [Some(Suspended), Some(Active)]);
    assert_eq!(
        last_cause(&sim, 0).to_string(),
        "flap limit: 4 transitions in 10 s"
    );
}

#[test]
fn the_flap_limit_yields_when_no_peer_can_serve() {
    // Node 0 preempts each time it comes back, then crashes again. Node 1's
    // fourth promotion in 10 s passes the flap limit, but node 0 is dead:
    // suspending would leave nobody forwarding, so node 1 stays active and
    // says why.
    let mut faults = Vec::new();
    for k in 0..4 {
        faults.push((300 + 700 * k, Crash(0)));
        faults.push((500 + 700 * k, Start(0)));
    }
    faults.pop();
    let sim = play(Scenario {
        configs: [flappy(1, 200), flappy(2, 100)],
        faults,
        until: 3000,
        states: [None, Some(Active)],
        moves: [
            &[
                "passive", "active", "passive", "active", "passive", "active", "passive", "active",
            ],
            &[
                "passive", "active", "passive", "active", "passive", "active", "passive", "active",
            ],
        ],
        ..Scenario::default()
    });
    assert_eq!(
        sim.node(1).unwrap().status().alarms,
        [Alarm::FlapLimitOverridden { transitions: 4 }]
    );
}

#[test]
fn a_failing_monitor_on_the_active_hands_over_before_letting_go() {
    let sim = play(Scenario {
        faults: vec![(300, Monitor(0, false, "untrust link down"))],
        states: [Some(NonFunctional), Some(Active)],
        moves: [
            &["passive", "active", "non-functional"],
            &["passive", "active"],
        ],
        ..Scenario::default()
    });
    let up = sim.first(1, ms(300), is_active).unwrap();
    let down = sim
        .first(0, ms(300), |a| {
            matches!(a, Action::BecomeNonFunctional { .. })
        })
        .unwrap();
    assert!(
        up < down,
        "peer active at {up:?} before the addresses go at {down:?}"
    );
    assert_eq!(
        last_cause(&sim, 0).to_string(),
        "monitor failed: untrust link down; node 2 took over with term 2"
    );
    assert_eq!(last_cause(&sim, 1), Cause::TakeoverRequested { node_id: 1 });
}

#[test]
fn a_failing_active_hands_over_as_soon_as_a_healthy_peer_appears() {
    // Both monitors fail; the active keeps forwarding (alarm) until the
    // passive recovers, then hands over.
    let sim = play(Scenario {
        faults: vec![
            (200, Monitor(1, false, "trust link down")),
            (300, Monitor(0, false, "untrust link down")),
            (500, Monitor(1, true, "")),
        ],
        states: [Some(NonFunctional), Some(Active)],
        moves: [
            &["passive", "active", "non-functional"],
            &["passive", "non-functional", "passive", "active"],
        ],
        ..Scenario::default()
    });
    let down = sim.first(0, ms(300), |a| word(a).is_some()).unwrap();
    assert!(
        down > ms(500),
        "kept forwarding while no peer could: {down:?}"
    );
}

#[test]
fn a_failing_monitor_on_the_passive_means_it_never_takes_over() {
    play(Scenario {
        faults: vec![(300, Monitor(1, false, "trust link down")), (500, Crash(0))],
        until: 1500,
        states: [None, Some(NonFunctional)],
        moves: [&["passive", "active"], &["passive", "non-functional"]],
        ..Scenario::default()
    });
}

#[test]
fn suspend_hands_over_before_removing_addresses_and_resume_stays_passive() {
    let sim = play(Scenario {
        faults: vec![
            (300, Command(0, Command::Suspend)),
            (600, Command(0, Command::Resume)),
        ],
        states: [Some(Passive), Some(Active)],
        moves: [
            &["passive", "active", "suspended", "passive"],
            &["passive", "active"],
        ],
        ..Scenario::default()
    });
    let up = sim.first(1, ms(300), is_active).unwrap();
    let down = sim
        .first(0, ms(300), |a| matches!(a, Action::BecomeSuspended { .. }))
        .unwrap();
    assert_eq!(
        (up, down),
        (ms(301), ms(302)),
        "takeover 1 ms away, confirmation 1 ms back"
    );
    assert_eq!(
        last_cause(&sim, 0),
        Cause::Resumed,
        "resumed into passive: the peer is active"
    );
}

#[test]
fn resume_with_no_peer_runs_the_election_alone() {
    play(Scenario {
        faults: vec![
            (300, Command(1, Command::Suspend)),
            (400, Crash(0)),
            (600, Command(1, Command::Resume)),
        ],
        states: [None, Some(Active)],
        moves: [
            &["passive", "active"],
            &["passive", "suspended", "passive", "active"],
        ],
        ..Scenario::default()
    });
}

#[test]
fn lost_takeovers_fall_back_after_the_takeover_wait() {
    let deaf = Link {
        drop_takeovers: true,
        ..Link::good(ms(1))
    };
    let sim = play(Scenario {
        faults: vec![
            (
                100,
                Fault::Link {
                    path: None,
                    dir: None,
                    link: deaf,
                },
            ),
            (300, Command(0, Command::Suspend)),
        ],
        states: [Some(Suspended), Some(Active)],
        moves: [&["passive", "active", "suspended"], &["passive", "active"]],
        ..Scenario::default()
    });
    let wait = 10 * INTERVAL;
    let down = sim
        .first(0, ms(300), |a| matches!(a, Action::BecomeSuspended { .. }))
        .unwrap();
    assert_eq!(down, ms(300 + wait));
    let up = sim.first(1, ms(300), is_active).unwrap();
    assert!(
        up > down && up <= down + ms(HOLD + 2),
        "peer promoted after its hold: {up:?}"
    );
    assert_eq!(
        last_cause(&sim, 0),
        Cause::Suspend {
            outcome: Handover::Unconfirmed { waited: ms(wait) }
        }
    );
    assert_eq!(
        last_cause(&sim, 1).to_string(),
        "peer node 1 is suspended and cannot serve"
    );
}

#[test]
fn duplicated_reordered_delayed_heartbeats_cause_no_transition() {
    let messy = Link {
        dup: 0.5,
        delay_min: ms(1),
        delay_max: ms(16),
        ..Link::good(ms(1))
    };
    let sim = play(Scenario {
        faults: vec![(
            0,
            Fault::Link {
                path: None,
                dir: None,
                link: messy,
            },
        )],
        until: 5000,
        ..Scenario::default()
    });
    let status = sim.node(1).unwrap().status();
    assert!(
        status.paths.iter().all(|p| p.stale > 0),
        "the mess did happen: {:?}",
        status.paths
    );
    assert!(status.paths.iter().all(|p| p.rtt.is_some()));
}

/// Load that builds up: the active's heartbeats stall for longer and
/// longer (20 to 110 ms against a 30 ms detection time), as they do on a
/// host whose packet processing is starved. A fixed detector calls that
/// death and fails over; the adaptive one stretches with the stalls it has
/// seen and stays put.
fn rising_stalls(max_detection: Duration) -> usize {
    let config = |id, prio| Config {
        max_detection,
        ..fast(id, prio)
    };
    let mut sim = Sim::new(7, [config(1, 200), config(2, 100)], ms(1));
    sim.at(ms(0), Start(0));
    sim.at(ms(0), Start(1));
    for (k, stall) in [20, 35, 50, 70, 90, 110].into_iter().enumerate() {
        // After the first second, which teaches adaptive detection nothing.
        let at = 1500 + 500 * k as u64;
        sim.at(ms(at), Fault::Freeze(0));
        sim.at(ms(at + stall), Fault::Thaw(0));
    }
    sim.run_until(ms(5000));
    (0..2)
        .map(|i| sim.actions(i).iter().filter(|(_, a)| is_active(a)).count())
        .sum()
}

#[test]
fn rising_stalls_stretch_adaptive_detection_instead_of_failing_over() {
    assert_eq!(rising_stalls(ms(300)), 1, "only the cold start's promotion");
    // The control: the same schedule with a fixed detection time fails over.
    assert!(rising_stalls(Duration::ZERO) > 1);
}

/// A passive restarts while the active is busy (bulk sync to it): the
/// active's heartbeats pause 70 ms, 50 ms after the restart (longer than
/// the 30 ms detection plus the 20 ms promotion hold). With nothing learnt
/// yet, the adaptive node uses four times the fixed time for its first
/// second and stays passive; a fixed detector takes over.
fn hiccup_after_restart(max_detection: Duration) -> usize {
    let config = |id, prio| Config {
        max_detection,
        ..fast(id, prio)
    };
    let mut sim = Sim::new(3, [config(1, 200), config(2, 100)], ms(1));
    sim.at(ms(0), Start(0));
    sim.at(ms(0), Start(1));
    sim.schedule(&[
        (1000, Crash(1)),
        (1200, Start(1)),
        (1250, Fault::Freeze(0)),
        (1320, Fault::Thaw(0)),
    ]);
    sim.run_until(ms(2000));
    sim.actions(1).iter().filter(|(_, a)| is_active(a)).count()
}

#[test]
fn a_restarted_passive_rides_out_a_hiccup_in_its_first_second() {
    assert_eq!(hiccup_after_restart(ms(300)), 0);
    // The control: a fixed 30 ms detector promotes on it.
    assert!(hiccup_after_restart(Duration::ZERO) > 0);
}
