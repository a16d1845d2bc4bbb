//! Unit tests of the node driven by hand; whole-pair behaviour is in
//! `tests/scenarios.rs` and `tests/property.rs`.

use std::time::Duration;

use super::*;

mod shutdown;

fn ms(v: u64) -> Time {
    Duration::from_millis(v)
}

/// Every value the tests time against is stated here, not taken from
/// [`Config::new`]'s defaults, so a change of defaults cannot move them.
fn config(node_id: u32, priority: u8) -> Config {
    Config {
        heartbeat_interval: ms(10),
        miss_count: 3,
        promotion_hold: ms(20),
        preempt_hold: ms(10_000),
        flap_limit: FlapLimit {
            transitions: 5,
            window: ms(60_000),
        },
        takeover_wait: ms(2_000),
        initial_listen: Duration::ZERO,
        max_detection: ms(2_000),
        ..Config::new(node_id, priority)
    }
}

fn drain(node: &mut Node) -> (Vec<(usize, Message)>, Vec<Action>) {
    let tx = std::iter::from_fn(|| node.poll_transmit()).collect();
    let actions = std::iter::from_fn(|| node.poll_action()).collect();
    (tx, actions)
}

fn peer_hb(seq: u64, state: State, term: u64) -> Message {
    Message::Heartbeat(Heartbeat {
        node_id: 2,
        state,
        term,
        priority: 50,
        preempt: false,
        healthy: true,
        seq,
        sent_ns: 0,
        echo_ns: 0,
        echo_hold_ns: 0,
        config_version: 0,
        config_hash: [0; 32],
    })
}

/// Drives `node` through its own deadlines up to `until`.
fn run(node: &mut Node, until: Time) {
    while let Some(at) = node.poll_timeout().filter(|&at| at <= until) {
        node.handle_timeout(at);
        assert!(
            node.poll_timeout().is_none_or(|next| next > at),
            "deadline left in the past"
        );
    }
}

#[test]
fn a_bad_config_is_refused() {
    let c = Config {
        paths: 0,
        ..config(1, 100)
    };
    assert_eq!(Node::new(c, ms(0)).err(), Some(ConfigError::NoPaths));
}

#[test]
fn starts_initial_with_a_heartbeat_on_every_path() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    assert_eq!(n.poll_timeout(), Some(ms(0)));
    n.handle_timeout(ms(0));
    let (tx, actions) = drain(&mut n);
    assert_eq!(n.state(), State::Initial);
    assert!(actions.is_empty());
    let paths: Vec<usize> = tx.iter().map(|(p, _)| *p).collect();
    assert_eq!(paths, [0, 1]);
    assert!(matches!(&tx[0].1, Message::Heartbeat(h) if h.state == State::Initial && h.seq == 1));
    assert_eq!(n.poll_timeout(), Some(ms(10)));
}

#[test]
fn alone_it_becomes_active_after_the_detection_time() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    run(&mut n, ms(29));
    assert_eq!(n.state(), State::Initial);
    run(&mut n, ms(30));
    let (_, actions) = drain(&mut n);
    assert_eq!(
        actions,
        [Action::BecomeActive {
            term: 1,
            cause: Cause::ColdStart { listened: ms(30) }
        }]
    );
}

#[test]
fn a_takeover_promotes_a_passive_at_once_with_a_higher_term() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    n.handle_message(ms(1), 0, &peer_hb(1, State::Active, 4));
    assert_eq!(n.state(), State::Passive);
    n.handle_message(
        ms(2),
        1,
        &Message::Takeover {
            node_id: 2,
            term: 4,
        },
    );
    assert_eq!(n.state(), State::Active);
    assert_eq!(n.status().term, 5);
    let (_, actions) = drain(&mut n);
    assert_eq!(
        actions.last(),
        Some(&Action::BecomeActive {
            term: 5,
            cause: Cause::TakeoverRequested { node_id: 2 }
        })
    );
    // A late copy of an older takeover is ignored.
    n.handle_message(
        ms(3),
        1,
        &Message::Takeover {
            node_id: 2,
            term: 3,
        },
    );
    assert_eq!(n.status().counters.stale_takeovers, 1);
}

#[test]
fn own_id_and_unknown_paths_are_ignored_and_counted() {
    let mut n = Node::new(config(2, 100), ms(0)).unwrap();
    n.handle_message(ms(1), 0, &peer_hb(1, State::Active, 9));
    n.handle_message(ms(1), 7, &peer_hb(2, State::Active, 9));
    n.handle_message(
        ms(1),
        0,
        &Message::Takeover {
            node_id: 2,
            term: 9,
        },
    );
    let s = n.status();
    assert_eq!((s.counters.own_id, s.counters.bad_path), (2, 1));
    assert_eq!((s.state, s.peer), (State::Initial, None));
}

#[test]
fn suspend_without_a_peer_suspends_at_once_and_says_so() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    run(&mut n, ms(30));
    n.handle_command(ms(40), Command::Suspend);
    let s = n.status();
    assert_eq!(s.state, State::Suspended);
    let last = s.transitions.last().unwrap();
    assert_eq!(
        last.cause.to_string(),
        "suspended by operator; no healthy peer to hand over to"
    );
    // Suspended nodes never take over, and say so in their heartbeats.
    run(&mut n, ms(1000));
    let (tx, _) = drain(&mut n);
    assert!(matches!(&tx.last().unwrap().1, Message::Heartbeat(h) if h.state == State::Suspended));
}

#[test]
fn a_failing_monitor_without_a_peer_keeps_forwarding_with_an_alarm() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    run(&mut n, ms(30));
    n.handle_monitor(ms(40), false, "untrust link down");
    let s = n.status();
    assert_eq!(s.state, State::Active);
    assert_eq!(
        s.alarms,
        [Alarm::ActiveWhileUnhealthy {
            reason: "untrust link down".into()
        }]
    );
}

#[test]
fn heartbeats_echo_the_peer_and_the_history_is_bounded() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    drain(&mut n);
    n.handle_message(ms(5), 0, &peer_hb(1, State::Active, 1));
    run(&mut n, ms(10));
    let (tx, _) = drain(&mut n);
    let echo = tx.iter().find_map(|(p, m)| match m {
        Message::Heartbeat(h) if *p == 0 && h.sent_ns == 10_000_000 => Some(h.echo_hold_ns),
        _ => None,
    });
    assert_eq!(echo, Some(5_000_000), "held the peer's heartbeat 5 ms");
    for i in 0..40 {
        n.handle_command(
            ms(20 + i),
            if i % 2 == 0 {
                Command::Suspend
            } else {
                Command::Resume
            },
        );
    }
    assert_eq!(n.status().transitions.len(), HISTORY);
}

#[test]
fn a_peer_on_another_policy_version_raises_an_alarm() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    n.set_config_version(3, [7; 32]);
    n.handle_timeout(ms(0));
    n.handle_message(ms(1), 0, &peer_hb(1, State::Active, 1));
    assert_eq!(
        n.status().alarms,
        [Alarm::ConfigMismatch { ours: 3, peer: 0 }]
    );
    let (tx, _) = drain(&mut n);
    assert!(tx.iter().all(|(_, m)| matches!(m, Message::Heartbeat(h) if h.config_version == 3 && h.config_hash == [7; 32])));
}

#[test]
fn the_winner_of_a_dual_active_announces_again_once() {
    // Cold start alone: active at term 1. Then a partition heals and the
    // peer (priority 50, also active, term 1) is heard: it loses the tie on
    // priority and steps down; this node stays and announces once more,
    // since the cloud follows the latest announcement.
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    run(&mut n, ms(30));
    assert_eq!(n.state(), State::Active);
    drain(&mut n);
    n.handle_message(ms(31), 0, &peer_hb(1, State::Active, 1));
    n.handle_message(ms(32), 1, &peer_hb(2, State::Active, 1));
    n.handle_message(ms(33), 0, &peer_hb(3, State::Active, 1));
    let (_, actions) = drain(&mut n);
    assert_eq!(n.state(), State::Active);
    let re: Vec<&Action> = actions
        .iter()
        .filter(|a| matches!(a, Action::Reannounce { .. }))
        .collect();
    assert_eq!(re, [&Action::Reannounce { peer_term: 1 }]);
}
