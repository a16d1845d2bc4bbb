//! Unit tests of the config-sync codec and core; the lossy-link runs are
//! in `tests/sync.rs`.

use std::time::Duration;

use proptest::prelude::*;

use super::codec::*;
use super::*;
use crate::msg::State;

fn ms(v: u64) -> Duration {
    Duration::from_millis(v)
}

fn samples() -> Vec<ConfigMessage> {
    vec![
        ConfigMessage::Offer {
            version: 3,
            hash: [7; 32],
            total: 5,
            offset: 0,
            bytes: b"abcde".to_vec(),
        },
        ConfigMessage::Offer {
            version: u64::MAX,
            hash: [0; 32],
            total: 0,
            offset: 0,
            bytes: vec![],
        },
        ConfigMessage::Result {
            version: 3,
            hash: [7; 32],
            applied: true,
            error: None,
        },
        ConfigMessage::Result {
            version: 3,
            hash: [7; 32],
            applied: false,
            error: Some("rule \"web\": unknown zone ünt".into()),
        },
        ConfigMessage::Result {
            version: 1,
            hash: [1; 32],
            applied: false,
            error: Some(String::new()),
        },
        ConfigMessage::Pending {
            version: 4,
            hash: [4; 32],
            remaining_ms: 3000,
            back_to: 3,
        },
    ]
}

#[test]
fn every_variant_round_trips_and_errors_are_named() {
    for m in samples() {
        assert_eq!(decode(&encode(&m)), Ok(m.clone()), "{m:?}");
    }
    let good = encode(&samples()[3]);
    let mut b = good.clone();
    b[0] = b'S';
    assert_eq!(decode(&b), Err(DecodeError::WrongChannel(b'S')));
    let mut b = good.clone();
    b[1] = 9;
    assert_eq!(decode(&b), Err(DecodeError::UnknownVersion(9)));
    let mut b = good.clone();
    b[2] = 9;
    assert_eq!(decode(&b), Err(DecodeError::UnknownType(9)));
    let flags_at = 3 + 8 + 32;
    let mut b = good.clone();
    b[flags_at] = 0x80;
    assert_eq!(decode(&b), Err(DecodeError::UnknownFlags(0x80)));
    let mut b = good.clone();
    b[flags_at] = 0;
    assert_eq!(decode(&b), Err(DecodeError::StrayError));
    let mut b = good.clone();
    let last = b.len() - 1;
    b[last] = 0xFF;
    assert_eq!(decode(&b), Err(DecodeError::BadUtf8));
    let mut b = good.clone();
    b.push(1);
    assert_eq!(decode(&b), Err(DecodeError::TrailingBytes(1)));
    assert!(matches!(
        decode(&good[..20]),
        Err(DecodeError::Truncated { .. })
    ));
}

proptest! {
    #[test]
    fn any_bytes_decode_without_panic_and_reencode_identically(
        mut bytes in prop::collection::vec(any::<u8>(), 0..200),
        valid_prefix in any::<bool>(),
    ) {
        if valid_prefix && bytes.len() >= 2 {
            bytes[0] = b'C';
            bytes[1] = 1;
        }
        if let Ok(m) = decode(&bytes) {
            prop_assert_eq!(encode(&m), bytes);
        }
    }
}

/// An active node's core (its peer passive).
fn active(current: Option<(u64, Vec<u8>)>) -> ConfigSync {
    let mut c = ConfigSync::new(RetryConfig::default(), current);
    c.set_local_active(ms(0), true);
    c
}

/// A passive node's core whose peer is heard as active.
fn passive(current: Option<(u64, Vec<u8>)>) -> ConfigSync {
    let mut c = ConfigSync::new(RetryConfig::default(), current);
    c.set_peer_active(true);
    c
}

#[test]
fn a_pending_confirmation_goes_from_the_active_to_a_passive_only() {
    let mut a = active(Some((4, b"p4".to_vec())));
    let mut b = passive(Some((4, b"p4".to_vec())));
    // Not ours: nothing sent.
    a.send_pending(ms(0), 5, 3000, 3);
    assert!(a.poll_transmit().is_none());
    a.send_pending(ms(0), 4, 3000, 3);
    let m = a.poll_transmit().expect("sent");
    b.handle_message(ms(1), &m).unwrap();
    assert_eq!(
        b.poll_action(),
        Some(ConfigAction::Pending {
            version: 4,
            hash: policy_hash(b"p4"),
            remaining_ms: 3000,
            back_to: 3
        })
    );
    // A passive does not send it, and an active does not take it.
    b.send_pending(ms(1), 4, 3000, 3);
    assert!(b.poll_transmit().is_none());
    a.handle_message(ms(2), &m).unwrap();
    assert_eq!(a.poll_action(), None);
    assert_eq!(a.status().refused_peer_not_active, 1);
    // The peer comes to run version 4 (it restarted): told again, with
    // what is left of the window.
    let pendings = |c: &mut ConfigSync| {
        std::iter::from_fn(|| c.poll_transmit())
            .filter_map(|m| match decode(&m) {
                Ok(p @ ConfigMessage::Pending { .. }) => Some(p),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    a.note_peer_version(ms(0), 3, [3; 32]);
    assert!(pendings(&mut a).is_empty(), "not while it runs another");
    a.note_peer_version(ms(1000), 4, policy_hash(b"p4"));
    let again = pendings(&mut a);
    assert!(
        matches!(
            again[..],
            [ConfigMessage::Pending {
                remaining_ms: 2000,
                back_to: 3,
                ..
            }]
        ),
        "{again:?}"
    );
    a.note_peer_version(ms(1100), 4, policy_hash(b"p4"));
    assert!(
        pendings(&mut a).is_empty(),
        "once per change of its version"
    );
    // Confirmed: 0, and not again.
    a.send_pending(ms(1200), 4, 0, 3);
    let done = pendings(&mut a);
    assert!(
        matches!(
            done[..],
            [ConfigMessage::Pending {
                remaining_ms: 0,
                ..
            }]
        ),
        "{done:?}"
    );
    a.note_peer_version(ms(1300), 3, [3; 32]);
    a.note_peer_version(ms(1400), 4, policy_hash(b"p4"));
    assert!(pendings(&mut a).is_empty());
}

/// Runs the two cores against each other over a perfect link until quiet;
/// `apply` answers each ApplyConfig.
fn exchange(
    a: &mut ConfigSync,
    b: &mut ConfigSync,
    now: Duration,
    apply: &mut dyn FnMut(&ConfigAction) -> Result<(), String>,
) -> usize {
    let mut applied = 0;
    loop {
        let mut moved = false;
        while let Some(m) = a.poll_transmit() {
            b.handle_message(now, &m).unwrap();
            moved = true;
        }
        while let Some(act) = b.poll_action() {
            applied += 1;
            b.handle_apply_result(now, apply(&act));
            moved = true;
        }
        while let Some(m) = b.poll_transmit() {
            a.handle_message(now, &m).unwrap();
            moved = true;
        }
        while let Some(act) = a.poll_action() {
            applied += 1;
            a.handle_apply_result(now, apply(&act));
            moved = true;
        }
        if !moved {
            return applied;
        }
    }
}

fn ok(_: &ConfigAction) -> Result<(), String> {
    Ok(())
}

#[test]
fn an_apply_on_the_active_reaches_the_passive_once() {
    let mut active = active(Some((1, b"v1".to_vec())));
    let mut passive = passive(Some((1, b"v1".to_vec())));
    assert_eq!(active.next_version(), 2);
    let hash = active.apply_local(ms(0), 2, b"v2 policy".to_vec()).unwrap();
    assert_eq!(hash, policy_hash(b"v2 policy"));
    assert_eq!(active.status().offering, Some(2));
    let mut seen = Vec::new();
    let n = exchange(&mut active, &mut passive, ms(1), &mut |a| {
        seen.push(a.clone());
        Ok(())
    });
    assert_eq!(n, 1);
    assert_eq!(
        seen,
        vec![ConfigAction::ApplyConfig {
            version: 2,
            hash,
            bytes: b"v2 policy".to_vec()
        }]
    );
    assert_eq!(passive.advertised(), (2, hash));
    assert_eq!(active.status().offering, None, "answered: no more offers");
    assert_eq!(active.status().peer_result, Some((2, true, None)));
    assert_eq!(active.poll_timeout(), None);
    // A stray retransmission of the same offer is answered, not re-applied.
    active.note_peer_version(ms(2), 1, policy_hash(b"v1"));
    assert_eq!(exchange(&mut active, &mut passive, ms(2), &mut ok), 0);
    active.note_peer_version(ms(3), 2, hash);
    assert!(!active.status().mismatch);
}

#[test]
fn offers_are_retransmitted_with_backoff_until_answered() {
    let mut active = ConfigSync::new(RetryConfig::default(), None);
    active.apply_local(ms(0), 1, b"p".to_vec()).unwrap();
    assert!(active.poll_transmit().is_some(), "first copy (lost)");
    assert_eq!(active.poll_timeout(), Some(ms(100)));
    active.handle_timeout(ms(100));
    assert!(active.poll_transmit().is_some());
    assert_eq!(active.poll_timeout(), Some(ms(300)), "doubled");
    for t in [300, 700, 1500, 2500] {
        active.handle_timeout(ms(t));
        assert!(active.poll_transmit().is_some());
    }
    assert_eq!(active.poll_timeout(), Some(ms(3500)), "capped at 1 s");
    assert_eq!(active.status().retransmits, 5);
}

#[test]
fn a_failed_apply_keeps_the_previous_version_and_is_reported() {
    let mut active = active(Some((4, b"old".to_vec())));
    let mut passive = passive(Some((4, b"old".to_vec())));
    active.apply_local(ms(0), 5, b"bad".to_vec()).unwrap();
    let n = exchange(&mut active, &mut passive, ms(1), &mut |_| {
        Err("rule \"x\": unknown zone \"dmz\"".into())
    });
    assert_eq!(n, 1);
    assert_eq!(passive.advertised(), (4, policy_hash(b"old")));
    let ps = passive.status();
    assert_eq!(ps.failed, 1);
    assert!(ps.last_error.unwrap().contains("unknown zone"));
    let st = active.status();
    assert_eq!(st.offering, None);
    assert_eq!(
        st.peer_result.as_ref().map(|r| (r.0, r.1)),
        Some((5, false))
    );
    assert!(st
        .last_error
        .unwrap()
        .contains("did not apply policy version 5"));
    // The retransmitted offer gets the same failure, not a second apply;
    // heartbeats showing the old version do not restart the offer either.
    active.note_peer_version(ms(2), 4, policy_hash(b"old"));
    assert_eq!(active.status().offering, None);
    assert!(active.status().mismatch, "status flags it");
}

#[test]
fn no_downgrade_and_conflicts_raise_the_alarm() {
    let mut newer = passive(Some((9, b"nine".to_vec())));
    let mut older = active(Some((3, b"three".to_vec())));
    // The older node learns the newer exists: it does not offer.
    older.note_peer_version(ms(0), 9, policy_hash(b"nine"));
    assert_eq!(older.poll_transmit(), None);
    // A (forced) old offer to the newer node: refused, answered.
    let offer = encode(&ConfigMessage::Offer {
        version: 3,
        hash: policy_hash(b"three"),
        total: 5,
        offset: 0,
        bytes: b"three".to_vec(),
    });
    newer.handle_message(ms(1), &offer).unwrap();
    assert_eq!(newer.poll_action(), None);
    assert_eq!(newer.advertised().0, 9);
    assert_eq!(newer.status().stale_offers, 1);
    let answer = decode(&newer.poll_transmit().unwrap()).unwrap();
    assert!(matches!(
        answer,
        ConfigMessage::Result {
            applied: false,
            version: 3,
            ..
        }
    ));
    // Same version, another text: conflict.
    let twin = encode(&ConfigMessage::Offer {
        version: 9,
        hash: policy_hash(b"NINE"),
        total: 4,
        offset: 0,
        bytes: b"NINE".to_vec(),
    });
    newer.handle_message(ms(2), &twin).unwrap();
    assert_eq!(newer.poll_action(), None);
    assert_eq!(newer.status().conflict, Some(9));
    // A newer passive does not push its version onto the active...
    while newer.poll_transmit().is_some() {}
    newer.note_peer_version(ms(3), 3, policy_hash(b"three"));
    assert_eq!(newer.poll_transmit(), None);
    assert!(newer.status().mismatch);
    // ...but once it is the active (a failover), it does (highest wins).
    older.set_local_active(ms(3), false);
    older.set_peer_active(true);
    newer.set_peer_active(false);
    newer.set_local_active(ms(3), true);
    let n = exchange(&mut newer, &mut older, ms(3), &mut ok);
    assert_eq!(n, 1);
    assert_eq!(older.advertised().0, 9);
}

#[test]
fn a_large_policy_goes_in_chunks_and_is_hash_checked() {
    let text: Vec<u8> = (0..CHUNK * 2 + 123).map(|i| (i % 251) as u8).collect();
    let mut a = active(None);
    let mut b = passive(None);
    a.apply_local(ms(0), 1, text.clone()).unwrap();
    let offers: Vec<Vec<u8>> = std::iter::from_fn(|| a.poll_transmit()).collect();
    assert_eq!(offers.len(), 3);
    // Out of order and duplicated: still one apply, of the right bytes.
    for i in [2, 0, 2, 1] {
        b.handle_message(ms(1), &offers[i]).unwrap();
    }
    match b.poll_action() {
        Some(ConfigAction::ApplyConfig {
            version: 1, bytes, ..
        }) => assert_eq!(bytes, text),
        other => panic!("{other:?}"),
    }
    assert_eq!(b.poll_action(), None);
    // A chunk whose bytes do not match the hash: refused as corrupted.
    let mut c = passive(None);
    let lie = encode(&ConfigMessage::Offer {
        version: 1,
        hash: [3; 32],
        total: 2,
        offset: 0,
        bytes: b"hi".to_vec(),
    });
    c.handle_message(ms(1), &lie).unwrap();
    assert_eq!(c.poll_action(), None);
    assert!(c.status().last_error.unwrap().contains("SHA-256"));
}

#[test]
fn only_the_active_edits_locally() {
    assert!(local_edit_allowed(State::Active).is_ok());
    for s in [
        State::Passive,
        State::Initial,
        State::Suspended,
        State::NonFunctional,
    ] {
        let e = local_edit_allowed(s).unwrap_err();
        assert!(e.to_string().contains("active node"), "{e}");
        assert!(e.to_string().contains(s.as_str()), "{e}");
    }
    let mut a = ConfigSync::new(RetryConfig::default(), Some((5, b"x".to_vec())));
    let e = a.apply_local(ms(0), 5, b"y".to_vec()).unwrap_err();
    assert!(e.to_string().contains("not newer"), "{e}");
}

proptest! {
    /// The core takes any decodable offer or result (lying totals,
    /// offsets, hashes) without panicking or leaving a deadline behind.
    #[test]
    fn any_decodable_message_is_survived(
        version in 0u64..4,
        total in prop_oneof![0u32..200_000, Just(u32::MAX)],
        offset in prop_oneof![0u32..200_000, Just(CHUNK as u32), Just(u32::MAX)],
        len in 0usize..70_000,
        applied in any::<bool>(),
        result in any::<bool>(),
    ) {
        let mut c = passive(Some((2, b"two".to_vec())));
        c.apply_local(ms(0), 3, b"three".to_vec()).unwrap();
        let msg = if result {
            ConfigMessage::Result { version, hash: [version as u8; 32], applied, error: None }
        } else {
            ConfigMessage::Offer {
                version, hash: [1; 32], total, offset, bytes: vec![7; len],
            }
        };
        c.handle_message(ms(1), &encode(&msg)).unwrap();
        c.handle_timeout(ms(500));
        prop_assert!(c.poll_timeout().is_none_or(|t| t > ms(500)));
        while c.poll_transmit().is_some() {}
        while let Some(a) = c.poll_action() {
            let is_apply = matches!(a, ConfigAction::ApplyConfig { .. });
            prop_assert!(is_apply);
        }
    }
}

#[test]
fn an_offer_from_a_peer_that_is_not_active_is_refused() {
    let offer = |v: u64, text: &[u8]| {
        encode(&ConfigMessage::Offer {
            version: v,
            hash: policy_hash(text),
            total: text.len() as u32,
            offset: 0,
            bytes: text.to_vec(),
        })
    };
    // A passive whose peer is passive too (or not heard as active): a
    // newer policy from it is not taken, and not answered.
    let mut c = ConfigSync::new(RetryConfig::default(), Some((1, b"one".to_vec())));
    c.handle_message(ms(0), &offer(2, b"two")).unwrap();
    assert_eq!(c.poll_action(), None);
    assert_eq!(c.poll_transmit(), None, "unanswered: an active sends again");
    assert_eq!(c.status().refused_peer_not_active, 1);
    assert_eq!(c.advertised().0, 1);
    // Its heartbeats say active: the next copy is taken.
    c.set_peer_active(true);
    c.handle_message(ms(100), &offer(2, b"two")).unwrap();
    assert!(matches!(
        c.poll_action(),
        Some(ConfigAction::ApplyConfig { version: 2, .. })
    ));
}

#[test]
fn a_passive_cannot_push_its_policy_to_the_active() {
    let mut act = active(Some((3, b"three".to_vec())));
    // Even with the peer (wrongly) heard as active, an active takes no
    // offer: the policy changes there only by `hafw config apply`.
    act.set_peer_active(true);
    let newer = encode(&ConfigMessage::Offer {
        version: 9,
        hash: policy_hash(b"nine"),
        total: 4,
        offset: 0,
        bytes: b"nine".to_vec(),
    });
    act.handle_message(ms(0), &newer).unwrap();
    assert_eq!(act.poll_action(), None);
    assert_eq!(act.status().refused_local_active, 1);
    assert_eq!(act.advertised().0, 3);
    // And a passive that is ahead does not even offer.
    let mut pas = passive(Some((9, b"nine".to_vec())));
    pas.note_peer_version(ms(0), 3, policy_hash(b"three"));
    assert_eq!(pas.poll_transmit(), None);
    assert_eq!(pas.status().offering, None);
    assert!(pas.status().mismatch, "flagged, not pushed");
    // A node that stops being active stops offering.
    act.note_peer_version(ms(1), 1, [0; 32]);
    assert_eq!(act.status().offering, Some(3));
    act.set_local_active(ms(2), false);
    assert_eq!(act.status().offering, None);
    assert_eq!(act.poll_timeout(), None);
}
