//! Scenario tests as data (style.md rule 9): each file under
//! `tests/scenarios/` holds a topology (both nodes' settings, the links), an
//! input sequence (starts, faults, commands, at their times) and, after
//! `--- expected`, the timeline of inputs and actions and the final states
//! the simulation gave. [`every_fixture_gives_its_expected_timeline`] runs
//! them all and compares; `HAFW_BLESS=1 cargo test -p hafw-ha --test
//! scenarios` rewrites the expected parts. The tests below keep each
//! scenario's properties (who is active, the order of moves, detection
//! bounds) as code, so a bless cannot silently accept a broken behaviour.
//! All use the fast profile: 10 ms heartbeats × 3 = 30 ms detection, 20 ms
//! promotion hold, 1 ms links; node 0 is node id 1 (priority 200), node 1
//! is node id 2 (priority 100), unless the fixture says otherwise.

mod sim;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Duration;

use hafw_ha::msg::State::{self, *};
use hafw_ha::node::{Action, Alarm, Cause, Command, Config, FlapLimit, Handover};
use sim::{ms, profile, Event, Fault, Fault::*, Link, Sim};

const INTERVAL: u64 = 10;
const DETECTION: u64 = 30;
const HOLD: u64 = 20;
const EXPECTED: &str = "--- expected";

/// A fixture read from its file: the simulation set up, not yet run.
struct Fixture {
    sim: Sim,
    until: Duration,
    /// The file up to the expected part, kept verbatim by a bless.
    inputs: String,
    /// The expected part as the file holds it (`None`: not blessed yet).
    expected: Option<String>,
}

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios")
}

fn load(name: &str) -> Fixture {
    let path = dir().join(format!("{name}.scenario"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse(text: &str) -> Result<Fixture, String> {
    let (inputs, expected) = match text.split_once(&format!("\n{EXPECTED}\n")) {
        Some((i, e)) => (format!("{i}\n"), Some(e.to_owned())),
        None => (text.to_owned(), None),
    };
    let mut configs = [None, None];
    let (mut seed, mut delay, mut until) = (1, ms(1), None);
    let mut faults = Vec::new();
    for (n, line) in inputs.lines().enumerate() {
        let at_line = |e: String| format!("line {}: {e}", n + 1);
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        match word {
            "node" => {
                let (i, settings) = rest.split_once(' ').unwrap_or((rest, ""));
                let i = index(i).map_err(at_line)?;
                configs[i] = Some(config(settings).map_err(at_line)?);
            }
            "seed" => {
                seed = rest
                    .parse()
                    .map_err(|_| at_line(format!("seed {rest:?}")))?
            }
            "delay" => delay = duration(rest).map_err(at_line)?,
            "until" => until = Some(duration(rest).map_err(at_line)?),
            "at" => {
                let (t, fault) = rest
                    .split_once(' ')
                    .ok_or_else(|| at_line("at <time> <fault>".into()))?;
                faults.push((
                    duration(t).map_err(at_line)?,
                    self::fault(fault).map_err(at_line)?,
                ));
            }
            _ => return Err(at_line(format!("unknown line {line:?}"))),
        }
    }
    let [Some(a), Some(b)] = configs else {
        return Err("needs `node 0 ...` and `node 1 ...`".into());
    };
    let mut sim = Sim::new(seed, [a, b], delay);
    for (t, f) in faults {
        sim.at(t, f);
    }
    Ok(Fixture {
        sim,
        until: until.ok_or("needs `until <time>`")?,
        inputs,
        expected,
    })
}

fn index(s: &str) -> Result<usize, String> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        _ => Err(format!("node {s:?}: expected 0 or 1")),
    }
}

/// `key=value ...` over the fast profile.
fn config(settings: &str) -> Result<Config, String> {
    let mut c = profile(0, 0, INTERVAL, HOLD);
    for kv in settings.split_whitespace() {
        let (k, v) = kv
            .split_once('=')
            .ok_or(format!("{kv:?} is not key=value"))?;
        let num = || {
            v.parse::<u64>()
                .map_err(|_| format!("{k}: bad number {v:?}"))
        };
        match k {
            "node_id" => c.node_id = num()? as u32,
            "priority" => c.priority = u8::try_from(num()?).map_err(|e| format!("{k}: {e}"))?,
            "preempt" => c.preempt = v.parse().map_err(|_| format!("{k}: {v:?}"))?,
            "preempt_hold" => c.preempt_hold = duration(v)?,
            "promotion_hold" => c.promotion_hold = duration(v)?,
            "heartbeat_interval" => c.heartbeat_interval = duration(v)?,
            "miss_count" => c.miss_count = num()? as u32,
            "paths" => c.paths = num()? as usize,
            "flap_transitions" => c.flap_limit.transitions = num()? as u32,
            "flap_window" => c.flap_limit.window = duration(v)?,
            "takeover_wait" => c.takeover_wait = duration(v)?,
            "initial_listen" => c.initial_listen = duration(v)?,
            "max_detection" => c.max_detection = duration(v)?,
            _ => return Err(format!("unknown setting {k:?}")),
        }
    }
    Ok(c)
}

/// `250ms`, `10s`, `500us`.
fn duration(s: &str) -> Result<Duration, String> {
    let bad = || format!("bad time {s:?}: expected e.g. 250ms, 10s or 500us");
    let (n, unit): (&str, fn(u64) -> Duration) = if let Some(n) = s.strip_suffix("ms") {
        (n, Duration::from_millis)
    } else if let Some(n) = s.strip_suffix("us") {
        (n, Duration::from_micros)
    } else if let Some(n) = s.strip_suffix('s') {
        (n, Duration::from_secs)
    } else {
        return Err(bad());
    };
    n.parse().map(unit).map_err(|_| bad())
}

fn fault(s: &str) -> Result<Fault, String> {
    let mut words = s.split_whitespace();
    let kind = words.next().unwrap_or("");
    if kind == "link" {
        return link(words);
    }
    let node = index(words.next().unwrap_or(""))?;
    Ok(match kind {
        "start" => Start(node),
        "crash" => Crash(node),
        "freeze" => Freeze(node),
        "thaw" => Thaw(node),
        "monitor" => {
            let healthy = match words.next() {
                Some("ok") => true,
                Some("failing") => false,
                v => return Err(format!("monitor verdict {v:?}: ok or failing")),
            };
            let reason = words.collect::<Vec<_>>().join(" ");
            // The simulator holds reasons as 'static text; a fixture's few
            // are leaked for the test's lifetime.
            Monitor(node, healthy, Box::leak(reason.into_boxed_str()))
        }
        "command" => Fault::Command(
            node,
            match words.next() {
                Some("suspend") => Command::Suspend,
                Some("resume") => Command::Resume,
                v => return Err(format!("command {v:?}: suspend or resume")),
            },
        ),
        _ => return Err(format!("unknown fault {kind:?}")),
    })
}

/// `link <path|all> <0|1|both> cut|good|key=value...`: the direction is
/// the sender (0: node 0 → node 1); settings start from a good 1 ms link.
fn link<'a>(mut words: impl Iterator<Item = &'a str>) -> Result<Fault, String> {
    let path = match words.next() {
        Some("all") => None,
        Some(p) => Some(p.parse().map_err(|_| format!("link path {p:?}"))?),
        None => return Err("link <path|all> <0|1|both> ...".into()),
    };
    let dir = match words.next() {
        Some("both") => None,
        Some(d) => Some(index(d)?),
        None => return Err("link <path|all> <0|1|both> ...".into()),
    };
    let mut l = Link::good(ms(1));
    for w in words {
        match w.split_once('=') {
            None if w == "cut" => l = Link::cut(),
            None if w == "good" => {}
            Some(("drop", v)) => l.drop = v.parse().map_err(|_| format!("drop {v:?}"))?,
            Some(("dup", v)) => l.dup = v.parse().map_err(|_| format!("dup {v:?}"))?,
            Some(("drop_takeovers", v)) => {
                l.drop_takeovers = v.parse().map_err(|_| format!("drop_takeovers {v:?}"))?
            }
            Some(("delay", v)) => {
                let (lo, hi) = v.split_once("..").unwrap_or((v, v));
                (l.delay_min, l.delay_max) = (duration(lo)?, duration(hi)?);
            }
            _ => return Err(format!("unknown link setting {w:?}")),
        }
    }
    Ok(Fault::Link { path, dir, link: l })
}

/// The timeline a run gave: every input and action with its time and
/// node, then each node's final state and term.
fn timeline(sim: &Sim) -> String {
    let mut s = String::new();
    for e in &sim.log {
        let what = match &e.event {
            Event::Action(a) => format!("{a}"),
            Event::Fault(Fault::Link { path, dir, link }) => {
                let path = path.map_or("all".into(), |p| p.to_string());
                let dir = dir.map_or("both".into(), |d| d.to_string());
                format!("< link {path} {dir} {link:?}")
            }
            Event::Fault(f) => format!("< {f:?}"),
        };
        let _ = writeln!(s, "{:?} node {}: {what}", e.at, e.node);
    }
    for i in 0..2 {
        let _ = match sim.node(i) {
            Some(n) => writeln!(
                s,
                "final node {i}: {} term {}",
                n.state().as_str(),
                n.status().term
            ),
            None => writeln!(s, "final node {i}: down"),
        };
    }
    s
}

/// Runs a fixture; its expected part is compared by
/// [`every_fixture_gives_its_expected_timeline`] alone.
fn run(name: &str) -> Sim {
    let mut f = load(name);
    f.sim.run_until(f.until);
    f.sim
}

#[test]
fn every_fixture_gives_its_expected_timeline() {
    let bless = std::env::var("HAFW_BLESS").is_ok_and(|v| v == "1");
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir())
        .expect("tests/scenarios")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "scenario"))
        .collect();
    names.sort();
    assert!(names.len() >= 20, "fixtures missing: {names:?}");
    let mut stale = Vec::new();
    for path in names {
        let text = std::fs::read_to_string(&path).expect("read fixture");
        let mut f = parse(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        f.sim.run_until(f.until);
        let got = timeline(&f.sim);
        if bless {
            std::fs::write(&path, format!("{}{EXPECTED}\n{got}", f.inputs)).expect("bless");
        } else if f.expected.as_deref() != Some(got.as_str()) {
            let want = f.expected.unwrap_or_default();
            let first = want
                .lines()
                .zip(got.lines())
                .find(|(a, b)| a != b)
                .map(|(a, b)| format!("expected `{a}`, got `{b}`"))
                .unwrap_or_else(|| "one is a prefix of the other".into());
            stale.push(format!("{}: {first}", path.display()));
        }
    }
    assert!(
        stale.is_empty(),
        "scenario timelines differ; if the change is intended, run with HAFW_BLESS=1 and review the diff:\n{}",
        stale.join("\n")
    );
}

#[test]
fn a_fixture_that_does_not_parse_says_where() {
    let e = parse("node 0 node_id=1\nnode 1 priority=x\nuntil 1s\n").err();
    assert_eq!(e.as_deref(), Some("line 2: priority: bad number \"x\""));
    assert!(parse("node 0\nnode 1\nuntil 1s\nat 5ms explode 0\n").is_err());
    assert!(parse("node 0\nnode 1\n").is_err(), "until is required");
    assert!(parse("node 0\nnode 1\nuntil 1s\nat 1ms link all both delay=x\n").is_err());
}

struct Scenario {
    fixture: &'static str,
    states: [Option<State>; 2],
    /// Each node's state changes, in order (`None`: not checked).
    moves: Option<[&'static [&'static str]; 2]>,
}

impl Default for Scenario {
    fn default() -> Scenario {
        Scenario {
            fixture: "",
            states: [Some(Active), Some(Passive)],
            moves: Some([&["passive", "active"], &["passive"]]),
        }
    }
}

/// Runs the fixture and checks the expected states and state changes.
fn play(s: Scenario) -> Sim {
    let sim = run(s.fixture);
    if let Some(moves) = s.moves {
        for (i, want) in moves.iter().enumerate() {
            assert_eq!(
                sim.moves(i),
                *want,
                "{}: node {i} moves; timeline:\n{}",
                s.fixture,
                timeline(&sim)
            );
        }
    }
    assert_eq!(sim.states(), s.states, "{}", s.fixture);
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
    let sim = play(Scenario {
        fixture: "cold_start_of_both",
        ..Scenario::default()
    });
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
        fixture: "cold_start_of_one",
        states: [Some(Active), None],
        moves: Some([&["active"], &[]]),
    });
    assert_eq!(sim.first(0, ms(0), is_active), Some(ms(DETECTION)));
}

#[test]
fn a_node_joining_an_active_peer_stays_passive() {
    play(Scenario {
        fixture: "joining_an_active_peer",
        states: [Some(Active), Some(Passive)],
        moves: Some([&["active"], &["passive"]]),
    });
}

#[test]
fn active_crash_fails_over_within_detection_hold_and_one_interval() {
    let sim = play(Scenario {
        fixture: "active_crash",
        states: [None, Some(Active)],
        moves: Some([&["passive", "active"], &["passive", "active"]]),
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
        fixture: "frozen_active_thaws",
        states: [Some(Passive), Some(Active)],
        moves: Some([&["passive", "active", "passive"], &["passive", "active"]]),
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
        fixture: "one_lost_path",
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
        fixture: "all_paths_lost",
        states: [Some(Passive), Some(Active)],
        moves: Some([&["passive", "active", "passive"], &["passive", "active"]]),
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
        fixture: "one_way_partition",
        states: [Some(Passive), Some(Active)],
        moves: Some([&["passive", "active", "passive"], &["passive", "active"]]),
    });
}

#[test]
fn equal_priorities_go_to_the_lower_node_id() {
    let sim = play(Scenario {
        fixture: "equal_priorities",
        states: [Some(Passive), Some(Active)],
        moves: Some([&["passive"], &["passive", "active"]]),
    });
    assert_eq!(last_cause(&sim, 1), Cause::ElectionWon { peer: 2 });
}

#[test]
fn without_preemption_a_recovered_higher_priority_node_stays_passive() {
    play(Scenario {
        fixture: "no_preemption",
        states: [Some(Passive), Some(Active)],
        moves: Some([&["passive", "active", "passive"], &["passive", "active"]]),
    });
}

#[test]
fn with_preemption_it_takes_over_after_the_hold_not_before() {
    let sim = play(Scenario {
        fixture: "preemption_after_hold",
        states: [Some(Active), Some(Passive)],
        moves: Some([
            &["passive", "active", "passive", "active"],
            &["passive", "active", "passive"],
        ]),
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

/// The fixtures' flap settings, checked here so a fixture edit that loses
/// them fails a test rather than changing what the flap tests prove.
fn assert_flappy(sim: &Sim) {
    for i in 0..2 {
        let want = FlapLimit {
            transitions: 3,
            window: Duration::from_secs(10),
        };
        let c = sim.config(i);
        assert_eq!(
            (c.preempt, c.preempt_hold, c.flap_limit),
            (true, ms(100), want)
        );
    }
}

#[test]
fn flapping_between_two_working_nodes_suspends_the_one_that_keeps_taking_over() {
    // Node 0's monitor fails and recovers every 700 ms: it hands over, then
    // preempts back. Its fourth promotion in 10 s, over a healthy active
    // peer, is one too many: it suspends and node 1 keeps the addresses.
    let sim = play(Scenario {
        fixture: "flapping_suspends",
        states: [Some(Suspended), Some(Active)],
        moves: None,
    });
    assert_flappy(&sim);
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
    let sim = play(Scenario {
        fixture: "flap_limit_yields",
        states: [None, Some(Active)],
        moves: Some([
            &[
                "passive", "active", "passive", "active", "passive", "active", "passive", "active",
            ],
            &[
                "passive", "active", "passive", "active", "passive", "active", "passive", "active",
            ],
        ]),
    });
    assert_flappy(&sim);
    assert_eq!(
        sim.node(1).unwrap().status().alarms,
        [Alarm::FlapLimitOverridden { transitions: 4 }]
    );
}

#[test]
fn a_failing_monitor_on_the_active_hands_over_before_letting_go() {
    let sim = play(Scenario {
        fixture: "failing_monitor_on_active",
        states: [Some(NonFunctional), Some(Active)],
        moves: Some([
            &["passive", "active", "non-functional"],
            &["passive", "active"],
        ]),
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
        fixture: "failing_active_waits_for_a_healthy_peer",
        states: [Some(NonFunctional), Some(Active)],
        moves: Some([
            &["passive", "active", "non-functional"],
            &["passive", "non-functional", "passive", "active"],
        ]),
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
        fixture: "failing_monitor_on_passive",
        states: [None, Some(NonFunctional)],
        moves: Some([&["passive", "active"], &["passive", "non-functional"]]),
    });
}

#[test]
fn suspend_hands_over_before_removing_addresses_and_resume_stays_passive() {
    let sim = play(Scenario {
        fixture: "suspend_and_resume",
        states: [Some(Passive), Some(Active)],
        moves: Some([
            &["passive", "active", "suspended", "passive"],
            &["passive", "active"],
        ]),
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
        fixture: "resume_without_peer",
        states: [None, Some(Active)],
        moves: Some([
            &["passive", "active"],
            &["passive", "suspended", "passive", "active"],
        ]),
    });
}

#[test]
fn lost_takeovers_fall_back_after_the_takeover_wait() {
    let sim = play(Scenario {
        fixture: "lost_takeovers",
        states: [Some(Suspended), Some(Active)],
        moves: Some([&["passive", "active", "suspended"], &["passive", "active"]]),
    });
    let wait = 10 * INTERVAL;
    assert_eq!(sim.config(0).takeover_wait, ms(wait));
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
    let sim = play(Scenario {
        fixture: "messy_links",
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

fn promotions(sim: &Sim, nodes: &[usize]) -> usize {
    nodes
        .iter()
        .map(|&i| sim.actions(i).iter().filter(|(_, a)| is_active(a)).count())
        .sum()
}

/// Load that builds up: the active's heartbeats stall for longer and
/// longer (20 to 110 ms against a 30 ms detection time), as they do on a
/// host whose packet processing is starved. A fixed detector calls that
/// death and fails over; the adaptive one stretches with the stalls it has
/// seen and stays put.
#[test]
fn rising_stalls_stretch_adaptive_detection_instead_of_failing_over() {
    let adaptive = run("rising_stalls_adaptive");
    assert_eq!(adaptive.config(0).max_detection, ms(300));
    assert_eq!(
        promotions(&adaptive, &[0, 1]),
        1,
        "only the cold start's promotion"
    );
    // The control: the same schedule with a fixed detection time fails over.
    let fixed = run("rising_stalls_fixed");
    assert_eq!(fixed.config(0).max_detection, Duration::ZERO);
    assert!(promotions(&fixed, &[0, 1]) > 1);
}

/// A passive restarts while the active is busy (bulk sync to it): the
/// active's heartbeats pause 70 ms, 50 ms after the restart (longer than
/// the 30 ms detection plus the 20 ms promotion hold). With nothing learnt
/// yet, the adaptive node uses four times the fixed time for its first
/// second and stays passive; a fixed detector takes over.
#[test]
fn a_restarted_passive_rides_out_a_hiccup_in_its_first_second() {
    let adaptive = run("hiccup_after_restart_adaptive");
    assert_eq!(adaptive.config(1).max_detection, ms(300));
    assert_eq!(promotions(&adaptive, &[1]), 0);
    // The control: a fixed 30 ms detector promotes on it.
    let fixed = run("hiccup_after_restart_fixed");
    assert_eq!(fixed.config(1).max_detection, Duration::ZERO);
    assert!(promotions(&fixed, &[1]) > 0);
}
