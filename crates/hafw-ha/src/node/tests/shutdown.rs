//! Shutdown: done at once when not active, on the peer's takeover when
//! active, at the deadline at the latest.

use super::*;

fn completions(actions: &[Action]) -> Vec<State> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::ShutdownComplete { state } => Some(*state),
            _ => None,
        })
        .collect()
}

/// Active alone (cold start at 30 ms), then the peer is heard as a healthy
/// passive: ready to take over.
fn active_with_a_ready_peer() -> Node {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    run(&mut n, ms(30));
    assert_eq!(n.state(), State::Active);
    n.handle_message(ms(31), 0, &peer_hb(1, State::Passive, 1));
    drain(&mut n);
    n
}

#[test]
fn a_passive_shutdown_completes_at_once() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    n.handle_message(ms(1), 0, &peer_hb(1, State::Active, 4));
    assert_eq!(n.state(), State::Passive);
    drain(&mut n);
    n.handle_command(ms(2), Command::Shutdown);
    let (_, actions) = drain(&mut n);
    assert!(matches!(
        actions.as_slice(),
        [
            Action::BecomeSuspended { .. },
            Action::ShutdownComplete {
                state: State::Suspended
            }
        ]
    ));
    // Reported once: the deadline was disarmed with the completion.
    run(&mut n, ms(5_000));
    let (_, later) = drain(&mut n);
    assert!(completions(&later).is_empty());
}

#[test]
fn an_active_hands_over_and_completes_when_the_peer_takes_over() {
    let mut n = active_with_a_ready_peer();
    n.handle_command(ms(32), Command::Shutdown);
    let (tx, actions) = drain(&mut n);
    assert_eq!(n.state(), State::Active, "keeps forwarding until confirmed");
    assert!(completions(&actions).is_empty());
    assert!(tx
        .iter()
        .any(|(_, m)| matches!(m, Message::Takeover { .. })));
    // The peer's heartbeat says it is active with a higher term.
    n.handle_message(ms(35), 0, &peer_hb(2, State::Active, 2));
    let (_, actions) = drain(&mut n);
    assert_eq!(completions(&actions), [State::Suspended]);
    let s = n.status();
    assert_eq!(
        s.transitions.last().map(|t| &t.cause),
        Some(&Cause::Suspend {
            outcome: Handover::Confirmed {
                node_id: 2,
                term: 2
            }
        })
    );
}

#[test]
fn an_active_whose_peer_goes_silent_completes_when_it_steps_down() {
    let mut n = active_with_a_ready_peer();
    n.handle_command(ms(32), Command::Shutdown);
    drain(&mut n);
    // No heartbeat after 31 ms: the peer is lost after one detection time
    // (30 ms), and a suspending active with nobody to hand over to
    // suspends then, well before the deadline.
    let mut done = None;
    for t in 33..2_100 {
        run(&mut n, ms(t));
        let (_, actions) = drain(&mut n);
        if let Some(state) = completions(&actions).first() {
            done = Some((t, *state));
            break;
        }
    }
    let (at, state) = done.expect("completed");
    assert_eq!(state, State::Suspended);
    assert!(at < 32 + 2_020, "before the deadline, at {at} ms");
}

#[test]
fn an_active_that_stays_active_completes_at_the_deadline_and_not_before() {
    // Resumed during the shutdown, the node keeps forwarding with its peer
    // alive and ready; the deadline (takeover wait 2 s + 2 × 10 ms) still
    // ends the shutdown, as active.
    let mut n = active_with_a_ready_peer();
    n.handle_command(ms(32), Command::Shutdown);
    n.handle_command(ms(33), Command::Resume);
    drain(&mut n);
    let deadline = 32 + 2_000 + 20;
    let mut seq = 2;
    for t in 34..deadline {
        if t % 10 == 0 {
            n.handle_message(ms(t), 0, &peer_hb(seq, State::Passive, 1));
            seq += 1;
        }
        run(&mut n, ms(t));
        let (_, actions) = drain(&mut n);
        assert!(
            completions(&actions).is_empty(),
            "completed early at {t} ms"
        );
    }
    assert_eq!(n.state(), State::Active);
    run(&mut n, ms(deadline));
    let (_, actions) = drain(&mut n);
    assert_eq!(completions(&actions), [State::Active]);
}

#[test]
fn a_second_shutdown_after_completion_answers_again() {
    let mut n = Node::new(config(1, 100), ms(0)).unwrap();
    n.handle_command(ms(1), Command::Shutdown);
    let (_, first) = drain(&mut n);
    assert_eq!(completions(&first), [State::Suspended]);
    n.handle_command(ms(2), Command::Shutdown);
    let (_, second) = drain(&mut n);
    assert_eq!(
        second,
        [Action::ShutdownComplete {
            state: State::Suspended
        }]
    );
}
