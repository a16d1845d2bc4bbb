//! Seal and open together: the scenarios of the protocol's security
//! claims.

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

fn peer_sealer(start_ns: u64) -> Sealer {
    Sealer::new(&psk(), PEER, start_ns, [0x5A; 8])
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
    let mut o = Opener::new(&psk(), ME);
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
            let got = o.open(&env).unwrap();
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
    let mut o = Opener::new(&psk(), ME);
    let payload = b"session sync: 10.0.0.1:443 -> 198.51.100.7:51000 established";
    let env = s.seal_bytes(Kind::Ha2Frame, payload).unwrap();
    assert!(
        !env.windows(payload.len()).any(|w| w == payload),
        "plaintext visible in the envelope"
    );
    let got = o.open_bytes(&env).unwrap();
    assert_eq!(got.body, payload);
    let empty = s.seal_bytes(Kind::Ha2Frame, b"").unwrap();
    assert_eq!(o.open_bytes(&empty).unwrap().body, b"");
}

#[test]
fn other_psk_is_auth_failed_and_counted() {
    let other = Psk::from_file_bytes(b"another pair's secret of 32 bytes", "other.key").unwrap();
    let mut s = Sealer::new(&other, PEER, T0, [1; 8]);
    let mut o = Opener::new(&psk(), ME);
    for i in 0..3 {
        let env = s.seal(Kind::Ha1Datagram, &takeover(i)).unwrap();
        assert_eq!(o.open(&env), Err(Reject::AuthFailed { sender_id: PEER }));
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
    let mut o = Opener::new(&psk(), ME);
    let mut flips = 0u64;
    for byte in 0..env.len() {
        for bit in 0..8 {
            let mut bad = env.clone();
            bad[byte] ^= 1 << bit;
            let r = o.open(&bad);
            assert!(r.is_err(), "flip of byte {byte} bit {bit} accepted: {r:?}");
            flips += 1;
        }
    }
    let c = o.counters();
    assert_eq!(c.accepted, 0);
    assert_eq!(c.rejected(), flips);
    assert_eq!(c.bad_magic, 16);
    assert_eq!(c.bad_version, 8);
    assert_eq!(
        c.unknown_kind, 8,
        "kind 1 with one bit flipped is never 1 or 2"
    );
    // Sender 1 with bit 1 flipped is 3, our own id.
    assert_eq!(c.own_id, 1);
    // The epoch start's bits: flipping a bit that lowers the start makes
    // no difference here (no epoch known yet), so all else is auth_failed.
    assert_eq!(c.auth_failed, flips - 16 - 8 - 8 - 1);
    // None of that advanced any state: the genuine envelope opens.
    assert_eq!(o.open(&env).unwrap().body, m);
}

#[test]
fn the_kind_is_authenticated() {
    let mut s = peer_sealer(T0);
    let mut env = s.seal(Kind::Ha1Datagram, &takeover(1)).unwrap();
    env[3] = Kind::Ha2Frame as u8;
    let mut o = Opener::new(&psk(), ME);
    assert_eq!(o.open(&env), Err(Reject::AuthFailed { sender_id: PEER }));
}

#[test]
fn a_replayed_envelope_is_rejected_and_counted() {
    let mut s = peer_sealer(T0);
    let mut o = Opener::new(&psk(), ME);
    let env = s.seal(Kind::Ha1Datagram, &takeover(1)).unwrap();
    o.open(&env).unwrap();
    for _ in 0..2 {
        assert_eq!(
            o.open(&env),
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
    let mut o = Opener::new(&psk(), ME);
    let newest = 1499usize;
    o.open(&envs[newest]).unwrap();
    let reach = replay::WINDOW as usize;
    for c in (newest + 1 - reach..newest).rev() {
        assert_eq!(o.open(&envs[c]).unwrap().counter, c as u64);
        assert!(matches!(o.open(&envs[c]), Err(Reject::Duplicate { .. })));
    }
    for c in [newest - reach, 100, 0] {
        assert_eq!(
            o.open(&envs[c]),
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
    let mut o = Opener::new(&psk(), ME);
    let ha2_first = s.seal_bytes(Kind::Ha2Frame, b"bulk sync 1").unwrap();
    for i in 0..2000 {
        let env = s.seal(Kind::Ha1Datagram, &takeover(i)).unwrap();
        o.open(&env).unwrap();
    }
    // An HA2 frame that waited behind 2000 heartbeats is still fresh.
    assert_eq!(o.open_bytes(&ha2_first).unwrap().counter, 0);
}

#[test]
fn an_older_epoch_after_a_newer_one_is_stale() {
    let mut old = peer_sealer(T0);
    let mut new = peer_sealer(T0 + 1);
    let mut o = Opener::new(&psk(), ME);
    let recorded = old.seal(Kind::Ha1Datagram, &takeover(1)).unwrap();
    assert!(o.open(&recorded).unwrap().new_epoch);
    assert!(
        o.open(&new.seal(Kind::Ha1Datagram, &takeover(2)).unwrap())
            .unwrap()
            .new_epoch
    );
    let fresh_from_old = old.seal(Kind::Ha1Datagram, &takeover(3)).unwrap();
    for env in [&recorded, &fresh_from_old] {
        assert_eq!(
            o.open(env),
            Err(Reject::StaleEpoch {
                sender_id: PEER,
                start_ns: T0,
                newest_start_ns: T0 + 1
            })
        );
    }
    // Same start time, other random bytes: not newer, so stale too.
    let mut twin = Sealer::new(&psk(), PEER, T0 + 1, [0xA5; 8]);
    assert!(matches!(
        o.open(&twin.seal(Kind::Ha1Datagram, &takeover(4)).unwrap()),
        Err(Reject::StaleEpoch { .. })
    ));
    assert_eq!(o.counters().stale_epoch, 3);
    // The current run goes on.
    assert!(
        !o.open(&new.seal(Kind::Ha1Datagram, &takeover(5)).unwrap())
            .unwrap()
            .new_epoch
    );
}

#[test]
fn a_forged_newer_epoch_does_not_make_the_real_one_stale() {
    let mut real = peer_sealer(T0);
    let mut o = Opener::new(&psk(), ME);
    o.open(&real.seal(Kind::Ha1Datagram, &takeover(1)).unwrap())
        .unwrap();

    // Without the PSK: a newer epoch under another key.
    let wrong = Psk::from_file_bytes(b"attacker guesses a key, 32 bytes", "x").unwrap();
    let mut forger = Sealer::new(&wrong, PEER, T0 + 1_000_000_000, [9; 8]);
    let forged = forger.seal(Kind::Ha1Datagram, &takeover(99)).unwrap();
    assert_eq!(o.open(&forged), Err(Reject::AuthFailed { sender_id: PEER }));
    // A genuine envelope with its epoch rewritten to a newer one.
    let mut rewritten = real.seal(Kind::Ha1Datagram, &takeover(2)).unwrap();
    rewritten[8] ^= 0x40;
    assert_eq!(
        o.open(&rewritten),
        Err(Reject::AuthFailed { sender_id: PEER })
    );
    // A forged counter far ahead in the real epoch does not move the window.
    let mut ahead = real.seal(Kind::Ha1Datagram, &takeover(3)).unwrap();
    ahead[24] = 0x7F;
    assert_eq!(o.open(&ahead), Err(Reject::AuthFailed { sender_id: PEER }));

    assert_eq!(o.counters().auth_failed, 3);
    let next = real.seal(Kind::Ha1Datagram, &takeover(4)).unwrap();
    let got = o.open(&next).unwrap();
    assert_eq!(got.body, takeover(4));
    assert!(!got.new_epoch);
    assert_eq!(o.counters().stale_epoch, 0);
}

#[test]
fn restart_with_a_clock_gone_back_needs_forget() {
    let mut first = peer_sealer(T0);
    let mut o = Opener::new(&psk(), ME);
    o.open(&first.seal(Kind::Ha1Datagram, &takeover(1)).unwrap())
        .unwrap();
    let mut restarted = Sealer::new(&psk(), PEER, T0 - 5_000_000_000, [7; 8]);
    let env = restarted.seal(Kind::Ha1Datagram, &takeover(2)).unwrap();
    assert!(matches!(o.open(&env), Err(Reject::StaleEpoch { .. })));
    o.forget(PEER);
    assert!(o.open(&env).unwrap().new_epoch);
}

#[test]
fn our_own_id_is_rejected() {
    let mut me_too = Sealer::new(&psk(), ME, T0, [1; 8]);
    let mut o = Opener::new(&psk(), ME);
    let env = me_too
        .seal(
            Kind::Ha1Datagram,
            &Message::Takeover {
                node_id: ME,
                term: 1,
            },
        )
        .unwrap();
    assert_eq!(o.open(&env), Err(Reject::OwnId(ME)));
    assert_eq!(o.open_bytes(&env), Err(Reject::OwnId(ME)));
    assert_eq!(o.counters().own_id, 2);
}

#[test]
fn a_message_naming_another_node_is_rejected() {
    let mut s = peer_sealer(T0);
    let mut o = Opener::new(&psk(), ME);
    let env = s
        .seal(
            Kind::Ha1Datagram,
            &Message::Heartbeat(heartbeat(2, State::Active)),
        )
        .unwrap();
    assert_eq!(
        o.open(&env),
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
    let mut o = Opener::new(&psk(), ME);
    let env = s.seal_bytes(Kind::Ha1Datagram, &[1, 0, 87, 0]).unwrap();
    assert!(matches!(
        o.open(&env),
        Err(Reject::Decode {
            sender_id: PEER,
            error: DecodeError::Truncated { .. }
        })
    ));
    let env = s.seal_bytes(Kind::Ha1Datagram, &[77]).unwrap();
    assert_eq!(
        o.open(&env),
        Err(Reject::Decode {
            sender_id: PEER,
            error: DecodeError::UnknownType(77)
        })
    );
    assert_eq!(o.counters().decode_error, 2);
    let text = o.open(&env).unwrap_err().to_string();
    assert!(text.contains("already received"), "{text}");
}

#[test]
fn two_senders_are_tracked_apart() {
    let mut a = peer_sealer(T0 + 10);
    let mut b = Sealer::new(&psk(), 2, T0, [3; 8]);
    let mut o = Opener::new(&psk(), ME);
    o.open(&a.seal(Kind::Ha1Datagram, &takeover(1)).unwrap())
        .unwrap();
    // b's epoch starts earlier than a's, but it is another sender.
    let env = b
        .seal(
            Kind::Ha1Datagram,
            &Message::Takeover {
                node_id: 2,
                term: 1,
            },
        )
        .unwrap();
    assert_eq!(o.open(&env).unwrap().sender_id, 2);
    assert_eq!(o.counters().accepted, 2);
}

#[test]
fn envelope_matches_the_specification() {
    // Rebuild the receiver from the written design, not from the code:
    // key = HKDF-SHA256(psk, salt "hafw-ha-v1", info id BE || epoch),
    // nonce = 0 0 0 kind || counter BE, aad = the 32-byte header.
    let mut s = Sealer::new(&psk(), 0x0102_0304, T0, *b"rand0m!!");
    s.seal_bytes(Kind::Ha2Frame, b"skip counter 0").unwrap();
    let env = s.seal_bytes(Kind::Ha2Frame, b"hello peer").unwrap();
    assert_eq!(env.len(), 32 + 10 + 16);
    assert_eq!(&env[..4], b"HF\x01\x02");
    assert_eq!(&env[4..8], &[1, 2, 3, 4]);
    assert_eq!(&env[8..16], &T0.to_be_bytes());
    assert_eq!(&env[16..24], b"rand0m!!");
    assert_eq!(&env[24..32], &1u64.to_be_bytes());

    let mut info = vec![1, 2, 3, 4];
    info.extend_from_slice(&env[8..24]);
    let mut key = [0u8; 32];
    Hkdf::<Sha256>::new(Some(b"hafw-ha-v1"), PSK_BYTES)
        .expand(&info, &mut key)
        .unwrap();
    let mut nonce = [0u8; 12];
    nonce[3] = 2;
    nonce[4..].copy_from_slice(&1u64.to_be_bytes());
    let plain = ChaCha20Poly1305::new(Key::from_slice(&key))
        .decrypt(
            Nonce::from_slice(&nonce),
            Payload {
                msg: &env[32..],
                aad: &env[..32],
            },
        )
        .unwrap();
    assert_eq!(plain, b"hello peer");
}

#[test]
fn rejects_display_what_to_fix() {
    let r = Reject::BadVersion(9);
    assert!(r.to_string().contains("same release"));
    let r = Reject::AuthFailed { sender_id: 1 };
    assert!(r.to_string().contains("key files"));
    let e = Reject::Decode {
        sender_id: 1,
        error: DecodeError::UnknownState(9),
    };
    assert!(std::error::Error::source(&e).is_some());
}
