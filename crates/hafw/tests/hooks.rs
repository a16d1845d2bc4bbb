//! HA event hooks on a flapping lab pair: the active is suspended and
//! resumed three times, the passive's heartbeat links are cut and restored
//! (both lose their peer, both promote, both find it again) and the
//! active's untrust link goes down and up (non-functional); each node's
//! hook appends its `HAFW_*` environment to a file, every kind of event is
//! seen, and the order each node saw equals the order of its transitions
//! (`hafw status`), numbered without a gap. Then a hook that
//! sleeps past its timeout: it is killed and counted
//! (`hafw_hook_runs_total{result="timeout"}`), the events behind it still
//! run in order, and the handover it ran beside took no longer than one
//! with quick hooks.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::*;
use hafw_lab::pair::{Fault, Pair, API_TOKEN};

/// The hook's time limit here; the slow hook would sleep 30 s.
const TIMEOUT_MS: u64 = 1500;

/// A directory of this test's own, removed when dropped (panic or not).
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// One line of a hook's log: seq, event, previous, state, term, cause.
#[derive(Debug)]
struct Seen {
    seq: u64,
    event: String,
    previous: String,
    state: String,
    term: u64,
    cause: String,
}

fn seen(dir: &Path, node: &str) -> Vec<Seen> {
    std::fs::read_to_string(dir.join(format!("{node}.log")))
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let (head, cause) = l.split_once('|').unwrap_or((l, ""));
            let w: Vec<&str> = head.split(' ').collect();
            assert_eq!(w.len(), 5, "{l}");
            Seen {
                seq: w[0].parse().unwrap(),
                event: w[1].into(),
                previous: w[2].into(),
                state: w[3].into(),
                term: w[4].parse().unwrap(),
                cause: cause.into(),
            }
        })
        .collect()
}

/// Waits for one active with a ready passive that hears it; the active.
fn settle(pair: &Pair) -> String {
    let active = pair.wait_settled(Duration::from_secs(30)).unwrap();
    pair.wait_ready(Duration::from_secs(30)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    wait_for(
        "both hear each other",
        Duration::from_secs(20),
        || {
            let a = pair.status(&active)?;
            let p = pair.status(&passive)?;
            (a.state == "active"
                && p.state == "passive"
                && a.paths.iter().all(|x| x.up)
                && p.paths.iter().all(|x| x.up))
            .then_some(())
        },
        || {
            format!(
                "{}\n{}",
                pair.status_text(&active),
                pair.status_text(&passive)
            )
        },
    );
    active
}

fn is_transition(e: &str) -> bool {
    matches!(e, "active" | "passive" | "suspended" | "non-functional")
}

/// Suspends `active`, waits for its peer to hold every HAVIP and for the
/// suspended node to say so, resumes it and waits until it is passive;
/// returns the new active and the handover's time (suspend to the last
/// HAVIP move).
fn flap(pair: &mut Pair, active: &str) -> (String, Duration) {
    let peer = pair.peer_of(active).unwrap();
    let at = pair.inject(Fault::Suspend, active).unwrap();
    let moved = pair
        .wait_moved_to(&peer, at, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("{e}\n{}", pair.status_text(active)));
    let last = moved.iter().map(|m| m.1).max().unwrap();
    let took = Duration::from_nanos(last.saturating_sub(at));
    wait_for(
        "the suspended node",
        Duration::from_secs(10),
        || (pair.state(active).as_deref() == Some("suspended")).then_some(()),
        || pair.status_text(active),
    );
    pair.heal(Fault::Suspend, active).unwrap();
    wait_for(
        "the resumed node passive",
        Duration::from_secs(10),
        || (pair.state(active).as_deref() == Some("passive")).then_some(()),
        || pair.status_text(active),
    );
    (peer, took)
}

#[test]
fn hooks_see_the_transitions_in_order_and_a_slow_hook_is_killed_off_the_failover_path() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("hk");
    let dir = Dir(std::env::temp_dir().join(format!("hafw-test-hooks-{name}")));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    let d = dir.0.display().to_string();
    let hook = dir.0.join("hook.sh");
    // The line first, then (while `slow` exists) a sleep past the timeout.
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\n\
             echo \"$HAFW_SEQ $HAFW_EVENT $HAFW_PREVIOUS $HAFW_STATE $HAFW_TERM|$HAFW_CAUSE\" >> {d}/$HAFW_NODE.log\n\
             if [ -e {d}/slow ]; then echo \"$HAFW_NODE $HAFW_SEQ\" >> {d}/slow.log; exec sleep 30; fi\n"
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
    let seed = std::fs::read_to_string(example("alicloud-havip.toml")).unwrap();
    let file = dir.0.join("deployment.toml");
    std::fs::write(
        &file,
        format!(
            "{seed}\n[policy.hooks]\non_transition = [\"{}\"]\ntimeout_ms = {TIMEOUT_MS}\n",
            hook.display()
        ),
    )
    .unwrap();

    let mut pair = Pair::start_with(&file, &name, Path::new(hafw()), "fast", true)
        .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let mut active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    pair.wait_ready(Duration::from_secs(20)).unwrap();

    // Flapping: three handovers with quick hooks.
    let mut quick = vec![];
    for _ in 0..3 {
        let (next, took) = flap(&mut pair, &active);
        quick.push(took);
        active = next;
    }

    // Split brain and back: peer lost and peer back on both nodes.
    let passive = pair.peer_of(&active).unwrap();
    pair.set_links(&passive, &["mgmt", "ha2"], false).unwrap();
    wait_for(
        "both active",
        Duration::from_secs(10),
        || {
            (pair.state(&active).as_deref() == Some("active")
                && pair.state(&passive).as_deref() == Some("active"))
            .then_some(())
        },
        || pair.status_text(&passive),
    );
    pair.set_links(&passive, &["mgmt", "ha2"], true).unwrap();
    active = settle(&pair);
    // A monitor fails on the active: non-functional, then back to passive.
    let passive = pair.peer_of(&active).unwrap();
    pair.inject(Fault::UntrustDown, &active).unwrap();
    wait_for(
        "non-functional",
        Duration::from_secs(10),
        || (pair.state(&active).as_deref() == Some("non-functional")).then_some(()),
        || pair.status_text(&active),
    );
    pair.heal(Fault::UntrustDown, &active).unwrap();
    wait_for(
        "recovered",
        Duration::from_secs(10),
        || (pair.state(&active).as_deref() == Some("passive")).then_some(()),
        || pair.status_text(&active),
    );
    active = passive;
    active = {
        let a = settle(&pair);
        assert_eq!(a, active);
        a
    };

    // A slow hook: the next event of each node sleeps past its timeout.
    std::fs::write(dir.0.join("slow"), "").unwrap();
    let peer = pair.peer_of(&active).unwrap();
    let at = pair.inject(Fault::Suspend, &active).unwrap();
    let moved = pair
        .wait_moved_to(&peer, at, Duration::from_secs(10))
        .unwrap();
    let slow_took = Duration::from_nanos(moved.iter().map(|m| m.1).max().unwrap() - at);
    // Both nodes' hooks started sleeping (the peer's `active`, this node's
    // `suspended`), then the file goes: what queues behind them is quick.
    wait_for(
        "both nodes' hooks asleep",
        Duration::from_secs(5),
        || {
            let t = std::fs::read_to_string(dir.0.join("slow.log")).unwrap_or_default();
            (t.lines().count() >= 2).then_some(())
        },
        || std::fs::read_to_string(dir.0.join("slow.log")).unwrap_or_default(),
    );
    std::fs::remove_file(dir.0.join("slow")).unwrap();
    pair.heal(Fault::Suspend, &active).unwrap();
    wait_for(
        "the resumed node passive",
        Duration::from_secs(10),
        || (pair.state(&active).as_deref() == Some("passive")).then_some(()),
        || pair.status_text(&active),
    );
    eprintln!("handover with quick hooks: {quick:?}; beside a hook asleep: {slow_took:?}");
    assert!(
        slow_took < Duration::from_millis(TIMEOUT_MS),
        "the handover waited for the hook: {slow_took:?}"
    );
    let worst_quick = quick.iter().max().copied().unwrap();
    assert!(
        slow_took <= worst_quick + Duration::from_millis(500),
        "a sleeping hook slowed the handover: {slow_took:?} vs {quick:?}"
    );

    let mut kinds = std::collections::BTreeSet::new();
    let mut suspends = 0;
    for node in pair.nodes() {
        // Every transition's hook has run (the killed one included) and
        // the counts are in: each node had exactly one timeout.
        let m = wait_for(
            "the hook runs counted",
            Duration::from_secs(10),
            || {
                let (_, m) = pair.api_get(&node, "/metrics", Some(API_TOKEN)).ok()?;
                let st = pair.status(&node)?;
                let runs = ["ok", "failed", "timeout"]
                    .iter()
                    .map(|r| {
                        metric(&m, &format!("hafw_hook_runs_total{{result=\"{r}\"}}"))
                            .unwrap_or(0.0)
                    })
                    .sum::<f64>();
                let lines = seen(&dir.0, &node).len();
                let transitions = st.transitions.len();
                (runs as usize == lines
                    && seen(&dir.0, &node)
                        .iter()
                        .filter(|s| is_transition(&s.event))
                        .count()
                        == transitions)
                    .then_some(m)
            },
            || format!("{}\n{:?}", pair.status_text(&node), seen(&dir.0, &node)),
        );
        let count = |r: &str| metric(&m, &format!("hafw_hook_runs_total{{result=\"{r}\"}}"));
        assert_eq!(count("timeout"), Some(1.0), "{node}: {m}");
        assert_eq!(count("failed"), Some(0.0), "{node}: {m}");
        assert_eq!(count("dropped"), Some(0.0), "{node}: {m}");
        // hafw status says the same.
        let st = pair.status(&node).unwrap();
        assert_eq!(st.hooks.get("timeout"), Some(&1), "{node}: {:?}", st.hooks);
        assert!(pair.status_text(&node).contains("hooks     ok "), "{node}");

        let lines = seen(&dir.0, &node);
        eprintln!(
            "{node} hooks saw: {}",
            lines
                .iter()
                .map(|s| format!("{} {} {}->{}", s.seq, s.event, s.previous, s.state))
                .collect::<Vec<_>>()
                .join(", ")
        );
        // Numbered from 1 without a gap: nothing dropped, nothing reordered.
        let seqs: Vec<u64> = lines.iter().map(|s| s.seq).collect();
        assert_eq!(
            seqs,
            (1..=lines.len() as u64).collect::<Vec<_>>(),
            "{node}: {lines:?}"
        );
        // The transition events are the node's transitions, in order.
        let st = pair.status(&node).unwrap();
        let hooked: Vec<(String, String)> = lines
            .iter()
            .filter(|s| is_transition(&s.event))
            .map(|s| (s.previous.clone(), s.state.clone()))
            .collect();
        let had: Vec<(String, String)> = st
            .transitions
            .iter()
            .map(|t| (t.from.clone(), t.to.clone()))
            .collect();
        assert_eq!(
            hooked,
            had,
            "{node}: {lines:?}\n{}",
            pair.status_text(&node)
        );
        for s in lines.iter().filter(|s| is_transition(&s.event)) {
            assert_eq!(s.event, s.state, "{node}: {s:?}");
            assert!(!s.cause.is_empty(), "{node}: {s:?}");
        }
        // Each promotion carries its term, higher each time.
        let terms: Vec<u64> = lines
            .iter()
            .filter(|s| s.event == "active")
            .map(|s| s.term)
            .collect();
        assert!(terms.windows(2).all(|w| w[0] < w[1]), "{node}: {terms:?}");
        // Which node is suspended in the last round depends on who won the
        // split brain: each at least once, four in all (checked below).
        let suspended = lines.iter().filter(|s| s.event == "suspended").count();
        assert!(suspended >= 1, "{node}: {lines:?}");
        suspends += suspended;
        let peer_events: Vec<&str> = lines
            .iter()
            .filter(|s| !is_transition(&s.event))
            .map(|s| s.event.as_str())
            .collect();
        assert!(
            peer_events.contains(&"peer-lost"),
            "{node}: {peer_events:?}"
        );
        // Each loss is followed by the peer's return.
        let last_lost = peer_events.iter().rposition(|e| *e == "peer-lost");
        let last_back = peer_events.iter().rposition(|e| *e == "peer-back");
        assert!(last_back > last_lost, "{node}: {peer_events:?}");
        kinds.extend(lines.iter().map(|s| s.event.clone()));
        let log = pair.daemon_log(&node);
        assert!(
            log.contains("killed at its 1500 ms timeout"),
            "{node}: {log}"
        );
    }
    let want: std::collections::BTreeSet<String> = [
        "active",
        "passive",
        "suspended",
        "non-functional",
        "peer-lost",
        "peer-back",
    ]
    .iter()
    .map(|k| k.to_string())
    .collect();
    assert_eq!(kinds, want);
    assert_eq!(suspends, 4);
    pair.stop().unwrap();
}
