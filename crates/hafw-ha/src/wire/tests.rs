//! Seal and open together: the scenarios of the protocol's security
//! claims.

use std::time::Duration;

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Key, Nonce};
use hkdf::Hkdf;
use sha2::Sha256;

use super::codec::tests::{heartbeat, samples};
use super::*;
use crate::msg::{Message, State};

const PSK_BYTES: &[u8; 40] = b"a pair's shared secret, 40 bytes long!!!";
const T0: u64 = 1_700_000_000_000_000_000;
const PEER: u32 = 1;
const ME: u32 = 3;

fn psk() -> Psk {
    Psk::from_file_bytes(PSK_BYTES, "test.key").unwrap()
}

fn pair() -> Pair {
    Pair::new("seed", (PEER, "fw-a"), (ME, "fw-b"))
}

fn key() -> PairKey {
    PairKey::derive(&psk(), &pair())
}

/// This node's run (the opener's side).
fn my_epoch() -> Epoch {
    Epoch {
        start_ns: T0 + 1,
        random: [0xC3; 8],
    }
}

/// Two seconds after T0 by the wall clock; any monotonic origin.
fn now() -> Now {
    Now::new(T0 + 2_000_000_000, Duration::from_secs(100))
}

fn later(secs: u64) -> Now {
    let n = now();
    Now::new(
        n.unix_ns + secs * 1_000_000_000,
        n.mono + Duration::from_secs(secs),
    )
}

fn opener() -> Opener {
    Opener::new(&key(), ME, PEER, my_epoch())
}

/// The peer's sealer, which has already heard this node's run.
fn peer_sealer(start_ns: u64) -> Sealer {
    let mut s = Sealer::new(&key(), PEER, start_ns, [0x5A; 8]);
    s.set_echo(Some(my_epoch()));
    s
}

fn takeover(term: u64) -> Message {
    Message::Takeover {
        node_id: PEER,
        term,
    }
}

#[test]
fn every_message_round_trips_on_both_kinds() {
    let mut s = peer_sealer(T0);
    let mut o = opener();
    let mut first = true;
    for kind in Kind::ALL {
        for m in samples() {
            // samples() are from node 7; re-address them to our peer.
            let m = match m {
                Message::Heartbeat(hb) => Message::Heartbeat(crate::msg::Heartbeat {
                    node_id: PEER,
                    ..hb
                }),
                Message::Takeover { term, .. } => takeover(term),
            };
            let env = s.seal(kind, &m).unwrap();
            let got = o.open(now(), &env).unwrap();
            assert_eq!(got.body, m);
            assert_eq!(got.sender_id, PEER);
            assert_eq!(got.kind, kind);
            assert_eq!(got.epoch, s.epoch());
            assert_eq!(got.new_epoch, first, "only the first is a new epoch");
            first = false;
        }
    }
    let n = 2 * samples().len() as u64;
    assert_eq!(o.counters().accepted, n);
    assert_eq!(o.counters().rejected(), 0);
}

#[test]
fn payload_bytes_round_trip_and_ciphertext_hides_them() {
    let mut s = peer_sealer(T0);
    let mut o = opener();
    let payload = b"session sync: 10.0.0.1:443 -> 198.51.100.7:51000 established";
    let env = s.seal_bytes(Kind::Ha2Frame, payload).unwrap();
    assert!(
        !env.windows(payload.len()).any(|w| w == payload),
        "plaintext visible in the envelope"
    );
    let got = o.open_bytes(now(), &env).unwrap();
    assert_eq!(got.body, payload);
    let empty = s.seal_bytes(Kind::Ha2Frame, b"").unwrap();
    assert_eq!(o.open_bytes(now(), &empty).unwrap().body, b"");
}

#[test]
fn other_psk_is_auth_failed_and_counted() {
    let other = Psk::from_file_bytes(b"another pair's secret of 32 bytes", "other.key").unwrap();
    let mut s = Sealer::new(&PairKey::derive(&other, &pair()), PEER, T0, [1; 8]);
    s.set_echo(Some(my_epoch()));
    let mut o = opener();
    for i in 0..3 {
        let env = s.seal(Kind::Ha1Datagram, &takeover(i)).unwrap();
        assert_eq!(
            o.open(now(), &env),
            Err(Reject::AuthFailed { sender_id: PEER })
        );
    }
    assert_eq!(o.counters().auth_failed, 3);
    assert_eq!(o.counters().accepted, 0);
    assert_eq!(o.counters().rejected(), 3);
}

#[test]
fn every_single_bit_flip_is_rejected_and_changes_nothing() {
    let mut s = peer_sealer(T0);
    let m = Message::Heartbeat(heartbeat(PEER, State::Active));
    let env = s.seal(Kind::Ha1Datagram, &m).unwrap();
    let mut o = opener();
    let mut flips = 0u64;
    for byte in 0..env.len() {
        for bit in 0..8 {
            let mut bad = env.clone();
            bad[byte] ^= 1 << bit;
            let r = o.open(now(), &bad);
            assert!(r.is_err(), "flip of byte {byte} bit {bit} accepted: {r:?}");
            flips += 1;
        }
    }
    let c = o.counters();
    assert_eq!(c.accepted, 0);
    assert_eq!(c.rejected(), flips);
    assert_eq!(c.bad_magic, 16);
    // Version 3 with one bit flipped: 2 is accepted as a version (and then
    // fails the tag), the other seven are not versions this node reads.
    assert_eq!(c.bad_version, 7);
    assert_eq!(
        c.unknown_kind, 8,
        "kind 1 with one bit flipped is never 1 or 2"
    );
    // Sender 1 with bit 1 flipped is 3, our own id; any other flip of the
    // sender is not our peer.
    assert_eq!(c.own_id, 1);
    assert_eq!(c.unknown_sender, 31);
    // A flip that raises the epoch's start past the lead is refused as
    // future; one that lowers it, or any other, fails the tag (no epoch
    // is known yet, and the tag is checked before the echo).
    let future = (0..64)
        .filter(|b| T0 ^ (1u64 << b) > now().unix_ns + MAX_EPOCH_LEAD.as_nanos() as u64)
        .count() as u64;
    assert!(future > 10, "{future}");
    assert_eq!(c.future_epoch, future);
    assert_eq!(c.auth_failed, flips - 16 - 7 - 8 - 1 - 31 - future);
    assert_eq!(
        o.last_refusal().map(|r| r.0),
        Some(Reject::AuthFailed { sender_id: PEER })
    );
    // None of that advanced any state: the genuine envelope opens.
    assert_eq!(o.open(now(), &env).unwrap().body, m);
}

#[test]
fn the_kind_is_authenticated() {
    let mut s = peer_sealer(T0);
    let mut env = s.seal(Kind::Ha1Datagram, &takeover(1)).unwrap();
    env[3] = Kind::Ha2Frame as u8;
    let mut o = opener();
    assert_eq!(
        o.open(now(), &env),
        Err(Reject::AuthFailed { sender_id: PEER })
    );
}

#[test]
fn a_replayed_envelope_is_rejected_and_counted() {
    let mut s = peer_sealer(T0);
    let mut o = opener();
    let env = s.seal(Kind::Ha1Datagram, &takeover(1)).unwrap();
    o.open(now(), &env).unwrap();
    for _ in 0..2 {
        assert_eq!(
            o.open(now(), &env),
            Err(Reject::Duplicate {
                sender_id: PEER,
                counter: 0
            })
        );
    }
    assert_eq!(o.counters().replayed, 2);
    assert_eq!(o.counters().accepted, 1);
}

#[test]
fn reordering_within_the_window_accepted_once_each_beyond_rejected() {
    let mut s = peer_sealer(T0);
    let envs: Vec<Vec<u8>> = (0..1500)
        .map(|i| s.seal(Kind::Ha1Datagram, &takeover(i)).unwrap())
        .collect();
    let mut o = opener();
    let newest = 1499usize;
    o.open(now(), &envs[newest]).unwrap();
    let reach = replay::WINDOW as usize;
    for c in (newest + 1 - reach..newest).rev() {
        assert_eq!(o.open(now(), &envs[c]).unwrap().counter, c as u64);
        assert!(matches!(
            o.open(now(), &envs[c]),
            Err(Reject::Duplicate { .. })
        ));
    }
    for c in [newest - reach, 100, 0] {
        assert_eq!(
            o.open(now(), &envs[c]),
            Err(Reject::TooOld {
                sender_id: PEER,
                counter: c as u64
            })
        );
    }
    assert_eq!(o.counters().accepted, reach as u64);
    assert_eq!(o.counters().replayed, reach as u64 - 1 + 3);
}

#[test]
fn kinds_have_independent_windows() {
    let mut s = peer_sealer(T0);
    let mut o = opener();
    let ha2_first = s.seal_bytes(Kind::Ha2Frame, b"bulk sync 1").unwrap();
    for i in 0..2000 {
        let env = s.seal(Kind::Ha1Datagram, &takeover(i)).unwrap();
        o.open(now(), &env).unwrap();
    }
    // An HA2 frame that waited behind 2000 heartbeats is still fresh.
    assert_eq!(o.open_bytes(now(), &ha2_first).unwrap().counter, 0);
}

#[test]
fn an_older_epoch_after_a_newer_one_is_stale() {
    let mut old = peer_sealer(T0);
    let mut new = peer_sealer(T0 + 1);
    let mut o = opener();
    let recorded = old.seal(Kind::Ha1Datagram, &takeover(1)).unwrap();
    assert!(o.open(now(), &recorded).unwrap().new_epoch);
    assert!(
        o.open(now(), &new.seal(Kind::Ha1Datagram, &takeover(2)).unwrap())
            .unwrap()
            .new_epoch
    );
    // The old run was left behind: never again, even after a silence.
    let fresh_from_old = old.seal(Kind::Ha1Datagram, &takeover(3)).unwrap();
    for (env, at) in [(&recorded, now()), (&fresh_from_old, later(60))] {
        assert_eq!(
            o.open(at, env),
            Err(Reject::RetiredEpoch {
                sender_id: PEER,
                start_ns: T0,
            })
        );
    }
    // Same start time, other random bytes: not newer, so stale.
    let mut twin = Sealer::new(&key(), PEER, T0 + 1, [0xA5; 8]);
    twin.set_echo(Some(my_epoch()));
    assert!(matches!(
        o.open(now(), &twin.seal(Kind::Ha1Datagram, &takeover(4)).unwrap()),
        Err(Reject::StaleEpoch { .. })
    ));
    assert_eq!(o.counters().stale_epoch, 3);
    // The current run goes on.
    assert!(
        !o.open(now(), &new.seal(Kind::Ha1Datagram, &takeover(5)).unwrap())
            .unwrap()
            .new_epoch
    );
}

#[test]
fn a_forged_newer_epoch_does_not_make_the_real_one_stale() {
    let mut real = peer_sealer(T0);
    let mut o = opener();
    o.open(now(), &real.seal(Kind::Ha1Datagram, &takeover(1)).unwrap())
        .unwrap();

    // Without the PSK: a newer epoch under another key.
    let wrong = Psk::from_file_bytes(b"attacker guesses a key, 32 bytes", "x").unwrap();
    let mut forger = Sealer::new(
        &PairKey::derive(&wrong, &pair()),
        PEER,
        T0 + 1_000_000_000,
        [9; 8],
    );
    forger.set_echo(Some(my_epoch()));
    let forged = forger.seal(Kind::Ha1Datagram, &takeover(99)).unwrap();
    assert_eq!(
        o.open(now(), &forged),
        Err(Reject::AuthFailed { sender_id: PEER })
    );
    // A genuine envelope with its epoch rewritten to a newer one.
    let mut rewritten = real.seal(Kind::Ha1Datagram, &takeover(2)).unwrap();
    rewritten[15] ^= 0x01;
    assert_eq!(
        o.open(now(), &rewritten),
        Err(Reject::AuthFailed { sender_id: PEER })
    );
    // A forged counter far ahead in the real epoch does not move the window.
    let mut ahead = real.seal(Kind::Ha1Datagram, &takeover(3)).unwrap();
    ahead[40] = 0x7F;
    assert_eq!(
        o.open(now(), &ahead),
        Err(Reject::AuthFailed { sender_id: PEER })
    );

    assert_eq!(o.counters().auth_failed, 3);
    let next = real.seal(Kind::Ha1Datagram, &takeover(4)).unwrap();
    let got = o.open(now(), &next).unwrap();
    assert_eq!(got.body, takeover(4));
    assert!(!got.new_epoch);
    assert_eq!(o.counters().stale_epoch, 0);
}

#[test]
fn our_own_id_is_rejected() {
    let mut me_too = Sealer::new(&key(), ME, T0, [1; 8]);
    let mut o = opener();
    let env = me_too
        .seal(
            Kind::Ha1Datagram,
            &Message::Takeover {
                node_id: ME,
                term: 1,
            },
        )
        .unwrap();
    assert_eq!(o.open(now(), &env), Err(Reject::OwnId(ME)));
    assert_eq!(o.open_bytes(now(), &env), Err(Reject::OwnId(ME)));
    assert_eq!(o.counters().own_id, 2);
}

#[test]
fn a_message_naming_another_node_is_rejected() {
    let mut s = peer_sealer(T0);
    let mut o = opener();
    let env = s
        .seal(
            Kind::Ha1Datagram,
            &Message::Heartbeat(heartbeat(2, State::Active)),
        )
        .unwrap();
    assert_eq!(
        o.open(now(), &env),
        Err(Reject::SenderMismatch {
            sender_id: PEER,
            claimed: 2
        })
    );
    assert_eq!(o.counters().sender_mismatch, 1);
}

#[test]
fn authentic_garbage_is_a_decode_error_not_a_panic() {
    let mut s = peer_sealer(T0);
    let mut o = opener();
    let env = s.seal_bytes(Kind::Ha1Datagram, &[1, 0, 115, 0]).unwrap();
    assert!(matches!(
        o.open(now(), &env),
        Err(Reject::Decode {
            sender_id: PEER,
            error: DecodeError::Truncated { .. }
        })
    ));
    let env = s.seal_bytes(Kind::Ha1Datagram, &[77]).unwrap();
    assert_eq!(
        o.open(now(), &env),
        Err(Reject::Decode {
            sender_id: PEER,
            error: DecodeError::UnknownType(77)
        })
    );
    assert_eq!(o.counters().decode_error, 2);
    let text = o.open(now(), &env).unwrap_err().to_string();
    assert!(text.contains("already received"), "{text}");
}

#[test]
fn envelope_matches_the_specification() {
    // Rebuild the receiver from the written design, not from the code:
    // pair key = HKDF-SHA256(salt "hafw-ha-v2", ikm psk,
    //   info "hafw pair" || len deployment || len id || len name, lower id first),
    // sender key = HKDF-Expand(prk pair key, info "hafw sender" || id BE || epoch),
    // nonce = 0 0 0 kind || counter BE, aad = the 48-byte header.
    let echo = Epoch {
        start_ns: 0x0A0B,
        random: *b"echo me!",
    };
    let mut s = Sealer::new(&key(), 0x0102_0304, T0, *b"rand0m!!");
    s.set_echo(Some(echo));
    s.seal_bytes(Kind::Ha2Frame, b"skip counter 0").unwrap();
    let env = s.seal_bytes(Kind::Ha2Frame, b"hello peer").unwrap();
    assert_eq!(env.len(), 48 + 10 + 16);
    // A sealer speaks this release's protocol until told otherwise.
    assert_eq!(&env[..4], b"HF\x03\x02");
    assert_eq!(&env[4..8], &[1, 2, 3, 4]);
    assert_eq!(&env[8..16], &T0.to_be_bytes());
    assert_eq!(&env[16..24], b"rand0m!!");
    assert_eq!(&env[24..32], &0x0A0Bu64.to_be_bytes());
    assert_eq!(&env[32..40], b"echo me!");
    assert_eq!(&env[40..48], &1u64.to_be_bytes());

    let mut pair_info = b"hafw pair".to_vec();
    for field in [
        &b"seed"[..],
        &PEER.to_be_bytes(),
        b"fw-a",
        &ME.to_be_bytes(),
        b"fw-b",
    ] {
        pair_info.extend_from_slice(&(field.len() as u32).to_be_bytes());
        pair_info.extend_from_slice(field);
    }
    let mut pair_key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"hafw-ha-v2"), PSK_BYTES)
        .expand(&pair_info, &mut pair_key)
        .unwrap();
    let mut info = b"hafw sender".to_vec();
    info.extend_from_slice(&[1, 2, 3, 4]);
    info.extend_from_slice(&env[8..24]);
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::from_prk(&pair_key)
        .unwrap()
        .expand(&info, &mut key)
        .unwrap();
    let mut nonce = [0u8; 12];
    nonce[3] = 2;
    nonce[4..].copy_from_slice(&1u64.to_be_bytes());
    let plain = ChaCha20Poly1305::new(Key::from_slice(&key))
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &env[48..],
                aad: &env[..48],
            },
        )
        .unwrap();
    assert_eq!(plain, b"hello peer");
}

#[test]
fn rejects_display_what_to_fix() {
    let r = Reject::BadVersion(9);
    assert!(r.to_string().contains("upgrade this node"));
    let r = Reject::AuthFailed { sender_id: 1 };
    assert!(r.to_string().contains("key files"));
    let e = Reject::Decode {
        sender_id: 1,
        error: DecodeError::UnknownState(9),
    };
    assert!(std::error::Error::source(&e).is_some());
}

// ---- The attacks on keys and epochs: each counts what it dropped. ----

/// A sealer of the peer's key that has heard our run.
fn sealer_of(key: &PairKey, id: u32, start_ns: u64, random: u8) -> Sealer {
    let mut s = Sealer::new(key, id, start_ns, [random; 8]);
    s.set_echo(Some(my_epoch()));
    s
}

#[test]
fn another_node_id_is_dropped_before_any_key_is_derived() {
    // A third node holding the pair's own key, and a flood of forgeries
    // under node id 2, each claiming a new epoch.
    let mut third = sealer_of(&key(), 2, T0, 1);
    let mut o = opener();
    for i in 0..100 {
        let env = third
            .seal(
                Kind::Ha1Datagram,
                &Message::Takeover {
                    node_id: 2,
                    term: i,
                },
            )
            .unwrap();
        assert_eq!(
            o.open(now(), &env),
            Err(Reject::UnknownSender {
                sender_id: 2,
                peer_id: PEER
            })
        );
        let mut forged = env.clone();
        forged[8..24].copy_from_slice(&(i as u128).to_be_bytes());
        assert!(matches!(
            o.open_bytes(now(), &forged),
            Err(Reject::UnknownSender { .. })
        ));
    }
    assert_eq!(o.counters().unknown_sender, 200);
    assert_eq!(o.derivations(), 0, "a key was derived for a stranger");
    assert_eq!(
        o.last_refusal(),
        None,
        "strangers do not hide the peer's refusals"
    );
    // The peer itself: one derivation for its epoch, then none.
    let mut real = peer_sealer(T0);
    for i in 0..10 {
        o.open(now(), &real.seal(Kind::Ha1Datagram, &takeover(i)).unwrap())
            .unwrap();
    }
    assert_eq!(o.derivations(), 1);
}

#[test]
fn a_key_reused_by_another_pair_opens_nothing() {
    // The same key file in another deployment, or with other node names.
    let others = [
        Pair::new("other", (PEER, "fw-a"), (ME, "fw-b")),
        Pair::new("seed", (PEER, "fw-x"), (ME, "fw-b")),
        Pair::new("seed", (PEER, "fw-a"), (ME, "fw-c")),
        Pair::new("seed", (PEER, "fw-b"), (ME, "fw-a")),
        // The fields are length-prefixed: moving a byte across is another pair.
        Pair::new("see", (PEER, "dfw-a"), (ME, "fw-b")),
    ];
    let mut o = opener();
    for (i, p) in others.iter().enumerate() {
        let mut s = sealer_of(&PairKey::derive(&psk(), p), PEER, T0, 9);
        let env = s.seal(Kind::Ha1Datagram, &takeover(i as u64)).unwrap();
        assert_eq!(
            o.open(now(), &env),
            Err(Reject::AuthFailed { sender_id: PEER }),
            "{p:?}"
        );
    }
    assert_eq!(o.counters().auth_failed, others.len() as u64);
    assert_eq!(o.counters().accepted, 0);
    // Both nodes build the same pair whichever way round they name it.
    let mirrored = Pair::new("seed", (ME, "fw-b"), (PEER, "fw-a"));
    assert_eq!(mirrored, pair());
    let mut s = sealer_of(&PairKey::derive(&psk(), &mirrored), PEER, T0, 9);
    let env = s.seal(Kind::Ha1Datagram, &takeover(1)).unwrap();
    assert!(o.open(now(), &env).unwrap().new_epoch);
}

#[test]
fn a_far_future_epoch_is_refused_and_the_real_peer_still_accepted() {
    // Sealed with the real key (a peer whose clock was broken at start, or
    // a key holder): u64::MAX, and just past the lead.
    let lead = MAX_EPOCH_LEAD.as_nanos() as u64;
    let mut o = opener();
    let mut max = sealer_of(&key(), PEER, u64::MAX, 1);
    let mut ahead = sealer_of(&key(), PEER, now().unix_ns + lead + 1, 2);
    for i in 0..5 {
        for s in [&mut max, &mut ahead] {
            let env = s.seal(Kind::Ha1Datagram, &takeover(i)).unwrap();
            assert!(matches!(
                o.open(now(), &env),
                Err(Reject::FutureEpoch {
                    sender_id: PEER,
                    ..
                })
            ));
        }
    }
    assert_eq!(o.counters().future_epoch, 10);
    assert_eq!(o.derivations(), 0, "refused before any key work");
    assert!(matches!(
        o.last_refusal(),
        Some((Reject::FutureEpoch { .. }, _))
    ));
    let text = o.last_refusal().unwrap().0.to_string();
    assert!(text.contains("clocks"), "{text}");
    // The real peer, whose run started before ours, is heard; the forged
    // epoch still cannot displace it.
    let mut real = peer_sealer(T0);
    assert!(
        o.open(now(), &real.seal(Kind::Ha1Datagram, &takeover(1)).unwrap())
            .unwrap()
            .new_epoch
    );
    let env = max.seal(Kind::Ha1Datagram, &takeover(9)).unwrap();
    assert!(matches!(
        o.open(now(), &env),
        Err(Reject::FutureEpoch { .. })
    ));
    let got = o.open(now(), &real.seal(Kind::Ha1Datagram, &takeover(2)).unwrap());
    assert!(!got.unwrap().new_epoch);
    // Within the lead (a clock a little ahead) is accepted: a restart.
    let mut near = sealer_of(&key(), PEER, now().unix_ns + lead, 3);
    assert!(
        o.open(now(), &near.seal(Kind::Ha1Datagram, &takeover(3)).unwrap())
            .unwrap()
            .new_epoch
    );
}

#[test]
fn a_previous_run_is_not_replayed_to_a_restarted_receiver() {
    // Run 1 of this node hears the peer; an attacker records all of it.
    let mut peer = peer_sealer(T0);
    let mut run1 = opener();
    let recorded: Vec<Vec<u8>> = (0..50)
        .map(|i| peer.seal(Kind::Ha1Datagram, &takeover(i)).unwrap())
        .collect();
    for env in &recorded {
        run1.open(now(), env).unwrap();
    }
    // This node restarts: a new epoch, a fresh opener. The peer runs on.
    let run2_epoch = Epoch {
        start_ns: T0 + 3_000_000_000,
        random: [0x77; 8],
    };
    let mut run2 = Opener::new(&key(), ME, PEER, run2_epoch);
    for env in &recorded {
        assert_eq!(
            run2.open(later(2), env),
            Err(Reject::Unconfirmed { sender_id: PEER })
        );
    }
    assert_eq!(run2.counters().unconfirmed, 50);
    assert_eq!(run2.counters().accepted, 0);
    // The live peer, once it has heard run 2, is accepted at once; the
    // recordings stay refused, before any key work.
    peer.set_echo(Some(run2_epoch));
    let live = peer.seal(Kind::Ha1Datagram, &takeover(50)).unwrap();
    assert!(run2.open(later(2), &live).unwrap().new_epoch);
    let before = run2.derivations();
    for env in &recorded {
        assert_eq!(
            run2.open(later(2), env),
            Err(Reject::Unconfirmed { sender_id: PEER })
        );
    }
    assert_eq!(run2.derivations(), before);
    assert_eq!(run2.counters().unconfirmed, 100);
    assert_eq!(run2.counters().accepted, 1);
}

#[test]
fn two_fresh_nodes_confirm_each_other_in_one_exchange() {
    let (ka, kb) = (key(), key());
    let ea = Epoch {
        start_ns: T0,
        random: [0xA; 8],
    };
    let eb = Epoch {
        start_ns: T0 + 5,
        random: [0xB; 8],
    };
    let (mut sa, mut oa) = (
        Sealer::new(&ka, PEER, ea.start_ns, ea.random),
        Opener::new(&ka, PEER, ME, ea),
    );
    let (mut sb, mut ob) = (
        Sealer::new(&kb, ME, eb.start_ns, eb.random),
        Opener::new(&kb, ME, PEER, eb),
    );
    let from = |id| Message::Takeover {
        node_id: id,
        term: 1,
    };
    // a -> b: echoes nothing yet; b learns a's run.
    let r = ob.open(now(), &sa.seal(Kind::Ha1Datagram, &from(PEER)).unwrap());
    assert_eq!(r, Err(Reject::Unconfirmed { sender_id: PEER }));
    sb.set_echo(ob.echo());
    // b -> a: echoes a: accepted; a now echoes b.
    assert!(oa
        .open(now(), &sb.seal(Kind::Ha1Datagram, &from(ME)).unwrap())
        .is_ok());
    sa.set_echo(oa.echo());
    // a -> b: accepted. Both hear each other from here on.
    assert!(ob
        .open(now(), &sa.seal(Kind::Ha1Datagram, &from(PEER)).unwrap())
        .is_ok());
    sb.set_echo(ob.echo());
    for _ in 0..3 {
        assert!(oa
            .open(now(), &sb.seal(Kind::Ha1Datagram, &from(ME)).unwrap())
            .is_ok());
        assert!(ob
            .open(now(), &sa.seal(Kind::Ha1Datagram, &from(PEER)).unwrap())
            .is_ok());
    }
    assert_eq!(oa.counters().rejected() + ob.counters().rejected(), 1);
}

#[test]
fn a_peer_whose_clock_went_back_is_heard_again_after_the_bound() {
    let mut o = opener();
    let mut old = peer_sealer(T0 + 1_000_000_000);
    let recorded: Vec<Vec<u8>> = (0..5)
        .map(|i| old.seal(Kind::Ha1Datagram, &takeover(i)).unwrap())
        .collect();
    for env in &recorded {
        o.open(now(), env).unwrap();
    }
    // The peer restarts with its clock a minute behind: its new run starts
    // "earlier" than the old one, which now falls silent.
    let back = T0 - 60_000_000_000;
    let mut new = sealer_of(&key(), PEER, back, 0x42);
    let mut waited = vec![];
    for s in 0..5 {
        let env = new.seal(Kind::Ha1Datagram, &takeover(100 + s)).unwrap();
        assert_eq!(
            o.open(later(s), &env),
            Err(Reject::StaleEpoch {
                sender_id: PEER,
                start_ns: back,
                newest_start_ns: T0 + 1_000_000_000
            }),
            "{s} s after the old run's last envelope"
        );
        waited.push(env);
        // Meanwhile this node echoes the new run, so the peer hears it.
        assert_eq!(o.echo(), Some(new.epoch()));
        // Status can say why.
        let (why, at) = o.last_refusal().unwrap();
        assert!(why.to_string().contains("clock"), "{why}");
        assert_eq!(at, later(s).mono);
    }
    assert_eq!(o.counters().stale_epoch, 5);
    assert_eq!(o.derivations(), 2, "one key per run of the peer");
    // RECOVER_AFTER after the old run's last envelope: the new run.
    let t = later(RECOVER_AFTER.as_secs());
    let env = new.seal(Kind::Ha1Datagram, &takeover(200)).unwrap();
    let got = o.open(t, &env).unwrap();
    assert!(got.new_epoch);
    assert_eq!(o.counters().recoveries, 1);
    assert_eq!(o.echo(), Some(new.epoch()));
    // The old run's recordings (sealed during this run of ours, so they
    // echo us) are refused for good, and so is what was refused meanwhile.
    for env in &recorded {
        assert!(matches!(o.open(t, env), Err(Reject::RetiredEpoch { .. })));
    }
    for env in &waited {
        assert!(matches!(o.open(t, env), Err(Reject::TooOld { .. })));
    }
    assert_eq!(o.counters().stale_epoch, 10);
    assert_eq!(o.counters().replayed, 5);
    let env = new.seal(Kind::Ha1Datagram, &takeover(201)).unwrap();
    assert!(!o.open(t, &env).unwrap().new_epoch);
}

#[test]
fn a_silent_peer_is_not_replaced_by_a_replay_that_does_not_echo_us() {
    // The clock-back rule opens no door to recordings from before our run.
    let mut o = opener();
    let mut live = peer_sealer(T0);
    o.open(now(), &live.seal(Kind::Ha1Datagram, &takeover(1)).unwrap())
        .unwrap();
    let mut earlier = Sealer::new(&key(), PEER, T0 - 1_000_000_000, [3; 8]);
    earlier.set_echo(Some(Epoch {
        start_ns: T0 - 2_000_000_000,
        random: [1; 8],
    }));
    let env = earlier.seal(Kind::Ha1Datagram, &takeover(2)).unwrap();
    assert_eq!(
        o.open(later(3600), &env),
        Err(Reject::Unconfirmed { sender_id: PEER })
    );
    assert_eq!(o.derivations(), 1);
    assert_eq!(o.counters().recoveries, 0);
}

/// Envelopes sealed by the release before version negotiation (protocol
/// 2), byte for byte: that build's sealer, this file's key and epochs, a
/// heartbeat, a takeover and an HA2 frame. A node of this release must
/// open them, and seal the same bytes when it speaks version 2.
const V2_HEARTBEAT: &str = "484602010000000117979cfe362a00005a5a5a5a5a5a5a5a17979cfe362a0001c3c3c3c3c3c3c3c300000000000000000599de47e19a686c86e4039e72cde035aa0ee81a0f696d732a3dd3144087af3342f652c85f196ba1e293c55344d048f58783614488bdc7bdee61d5994eb062f211ed24cb7c2275df142344bbd3f366102d61566c99124c60bd97eefaab305c64f57ce38a32905250a5af";
const V2_TAKEOVER: &str = "484602010000000117979cfe362a00005a5a5a5a5a5a5a5a17979cfe362a0001c3c3c3c3c3c3c3c30000000000000001d138a6dcdf2c22941ffde245bfc04e6877fb46e03efa9583ccab4352648e75";
const V2_FRAME: &str = "484602020000000117979cfe362a00005a5a5a5a5a5a5a5a17979cfe362a0001c3c3c3c3c3c3c3c30000000000000000a341936c41bf8437bdb81e551819c57d6a0634984c048ece9e212fc29d";

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

#[test]
fn a_version_2_peer_is_opened_and_spoken_to_byte_for_byte() {
    let mut o = opener();
    let hb = o.open(now(), &unhex(V2_HEARTBEAT)).unwrap();
    assert_eq!(hb.version, 2);
    assert_eq!(hb.advert, None);
    assert_eq!(hb.body, Message::Heartbeat(heartbeat(PEER, State::Active)));
    let tk = o.open(now(), &unhex(V2_TAKEOVER)).unwrap();
    assert_eq!(
        tk.body,
        Message::Takeover {
            node_id: PEER,
            term: 9
        }
    );
    let f = o.open_bytes(now(), &unhex(V2_FRAME)).unwrap();
    assert_eq!((f.version, &f.body[..]), (2, &b"session bytes"[..]));
    // Spoken to at version 2, this release seals exactly what that one did.
    let mut s = Sealer::new(&key(), PEER, T0, [0x5A; 8]);
    s.set_echo(Some(my_epoch()));
    s.set_version(2);
    let m = Message::Heartbeat(heartbeat(PEER, State::Active));
    assert_eq!(s.seal(Kind::Ha1Datagram, &m).unwrap(), unhex(V2_HEARTBEAT));
    let t = Message::Takeover {
        node_id: PEER,
        term: 9,
    };
    assert_eq!(s.seal(Kind::Ha1Datagram, &t).unwrap(), unhex(V2_TAKEOVER));
    assert_eq!(
        s.seal_bytes(Kind::Ha2Frame, b"session bytes").unwrap(),
        unhex(V2_FRAME)
    );
}

#[test]
fn versions_above_the_openers_maximum_are_counted_not_opened() {
    let mut next = peer_sealer(T0);
    next.set_advert(crate::version::Advert::new("0.2.0", 4, 1));
    let m = Message::Heartbeat(heartbeat(PEER, State::Active));
    let v4 = next.seal(Kind::Ha1Datagram, &m).unwrap();
    assert_eq!(v4[2], 4);
    // A node of this release refuses it, by reason.
    let mut o = opener();
    assert_eq!(o.open(now(), &v4), Err(Reject::BadVersion(4)));
    assert_eq!(o.counters().bad_version, 1);
    // One that speaks 4 opens it, with the advert.
    let mut o4 = opener();
    o4.set_max_version(4);
    let opened = o4.open(now(), &v4).unwrap();
    assert_eq!(opened.version, 4);
    assert_eq!(opened.advert.map(|a| a.protocol_max), Some(4));
    // Stepped down to 3 it is a node of this release's format again.
    next.set_version(3);
    let v3 = next.seal(Kind::Ha1Datagram, &m).unwrap();
    let opened = o.open(now(), &v3).unwrap();
    assert_eq!((opened.version, opened.body), (3, m));
}

/// Two nodes in simulated time, heartbeats each way through the real
/// sealers and openers, with the negotiation of [`crate::version`] (or,
/// for the release before it, none: version 2 only, both ways).
mod negotiation_in_simulated_time {
    use super::*;
    use crate::version::{Negotiation, PROBE_EVERY};

    const STEP: Duration = Duration::from_millis(200);

    struct SimNode {
        id: u32,
        sealer: Sealer,
        opener: Opener,
        /// None: a node of the release before negotiation.
        neg: Option<Negotiation>,
        seq: u64,
    }

    fn node(id: u32, peer: u32, max: Option<u8>, start: Duration) -> SimNode {
        let start_ns = T0 + start.as_nanos() as u64;
        let mut sealer = Sealer::new(&key(), id, start_ns, [id as u8; 8]);
        let mut opener = Opener::new(&key(), id, peer, sealer.epoch());
        let neg = max.map(|m| {
            sealer.set_advert(crate::version::Advert::new("0.1.0", m, 1));
            opener.set_max_version(m);
            Negotiation::new(m)
        });
        if neg.is_none() {
            sealer.set_version(2);
            opener.set_max_version(2);
        }
        SimNode {
            id,
            sealer,
            opener,
            neg,
            seq: 0,
        }
    }

    fn at(t: Duration) -> Now {
        Now::new(T0 + t.as_nanos() as u64, t)
    }

    /// One heartbeat from `a` to `b` at `t`: whether `b` accepted it.
    fn send(a: &mut SimNode, b: &mut SimNode, t: Duration) -> bool {
        a.seq += 1;
        let hb = Message::Heartbeat(crate::msg::Heartbeat {
            seq: a.seq,
            ..heartbeat(a.id, State::Passive)
        });
        let env = match a.neg.as_mut() {
            Some(n) => a.sealer.seal_at(Kind::Ha1Datagram, n.speak_at(t), &hb),
            None => a.sealer.seal(Kind::Ha1Datagram, &hb),
        }
        .unwrap();
        let r = b.opener.open(at(t), &env);
        b.sealer.set_echo(b.opener.echo());
        let unconfirmed = b.opener.take_unconfirmed();
        if let Some(n) = b.neg.as_mut() {
            if let Some((e, v, adv)) = unconfirmed {
                if let Some(c) = n.heard(t, e, v, adv.as_ref()) {
                    b.sealer.set_version(c.to);
                }
            }
            if let Ok(o) = &r {
                if let Some(c) = n.heard(t, o.epoch, o.version, o.advert.as_ref()) {
                    b.sealer.set_version(c.to);
                }
            }
        }
        r.is_ok()
    }

    /// Runs `rounds` steps from `t`; returns the refused heartbeats each
    /// way after the first `settle` rounds, and the time reached.
    fn run(
        a: &mut SimNode,
        b: &mut SimNode,
        t: Duration,
        rounds: u32,
        settle: u32,
    ) -> ((u32, u32), Duration) {
        let mut refused = (0, 0);
        let mut t = t;
        for i in 0..rounds {
            t += STEP;
            let ab = send(a, b, t);
            let ba = send(b, a, t);
            if i >= settle {
                refused.0 += u32::from(!ab);
                refused.1 += u32::from(!ba);
            }
        }
        (refused, t)
    }

    fn speaking(n: &SimNode) -> u8 {
        n.sealer.version()
    }

    const ROUNDS: u32 = 400; // 80 s: more than two probe periods
    const SETTLE: u32 = 5;

    #[test]
    fn same_release_speaks_3_and_next_releases_4() {
        for (a, b, want) in [(3, 3, 3), (3, 4, 3), (4, 3, 3), (4, 4, 4)] {
            let mut x = node(PEER, ME, Some(a), Duration::ZERO);
            let mut y = node(ME, PEER, Some(b), Duration::from_millis(1));
            let (refused, _) = run(&mut x, &mut y, Duration::ZERO, ROUNDS, SETTLE);
            assert_eq!(refused, (0, 0), "{a} with {b}");
            assert_eq!((speaking(&x), speaking(&y)), (want, want), "{a} with {b}");
        }
    }

    #[test]
    fn a_node_of_the_release_before_is_spoken_to_in_version_2() {
        for new_first in [true, false] {
            let (s0, s1) = if new_first {
                (Duration::ZERO, Duration::from_millis(1))
            } else {
                (Duration::from_millis(1), Duration::ZERO)
            };
            let mut old = node(PEER, ME, None, s0);
            let mut new = node(ME, PEER, Some(3), s1);
            let (refused, _) = run(&mut old, &mut new, Duration::ZERO, ROUNDS, SETTLE);
            assert_eq!(speaking(&new), 2);
            // The old node refuses only the probes: one per PROBE_EVERY.
            let probes = (u64::from(ROUNDS) * STEP.as_millis() as u64
                / PROBE_EVERY.as_millis() as u64) as u32;
            assert_eq!(refused.0, 0);
            assert!(refused.1 <= probes + 1, "{refused:?}, {probes} probes");
            assert!(refused.1 >= probes, "{refused:?}: the periodic probes");
            // What the old node refused, it counted as a bad version.
            assert!(old.opener.counters().bad_version >= u64::from(refused.1));
        }
    }

    #[test]
    fn the_old_node_upgraded_in_place_meets_at_3() {
        // The new node speaks 2 to the old one; the old one is upgraded
        // (a new run of this release): both hear version 2 first, a probe
        // lifts them to 3.
        let mut a = node(PEER, ME, None, Duration::ZERO);
        let mut b = node(ME, PEER, Some(3), Duration::from_millis(1));
        let (_, t) = run(&mut a, &mut b, Duration::ZERO, 20, 0);
        assert_eq!(speaking(&b), 2);
        let mut a = node(PEER, ME, Some(3), t);
        let (refused, _) = run(&mut a, &mut b, t, ROUNDS, SETTLE);
        assert_eq!(refused, (0, 0));
        assert_eq!((speaking(&a), speaking(&b)), (3, 3));
    }

    #[test]
    fn a_rolling_upgrade_from_3_to_4_loses_no_heartbeat_once_settled() {
        let mut a = node(PEER, ME, Some(3), Duration::ZERO);
        let mut b = node(ME, PEER, Some(3), Duration::from_millis(1));
        let (r, t) = run(&mut a, &mut b, Duration::ZERO, 20, SETTLE);
        assert_eq!(r, (0, 0));
        // The passive restarted on the next release: 3 each way.
        let mut b = node(ME, PEER, Some(4), t);
        let (r, t) = run(&mut a, &mut b, t, 20, SETTLE);
        assert_eq!(r, (0, 0));
        assert_eq!((speaking(&a), speaking(&b)), (3, 3));
        // Then the other: 4 each way.
        let mut a = node(PEER, ME, Some(4), t);
        let (r, _) = run(&mut a, &mut b, t, ROUNDS, SETTLE);
        assert_eq!(r, (0, 0));
        assert_eq!((speaking(&a), speaking(&b)), (4, 4));
        // And a rollback of one node to this release: back to 3.
        let mut a2 = node(PEER, ME, Some(3), Duration::from_secs(200));
        let (r, _) = run(&mut a2, &mut b, Duration::from_secs(200), 40, SETTLE);
        assert_eq!(r, (0, 0));
        assert_eq!((speaking(&a2), speaking(&b)), (3, 3));
    }
}
