//! The no-panic sweep: the fuzz target's job, run deterministically in
//! every `cargo test` (cargo-fuzz needs nightly, so CI does not run it).
//! About 100k inputs: random bytes, random bytes behind a genuine header,
//! mutated genuine envelopes, and random or mutated plaintexts sealed with
//! the real key so that the message decoder runs behind a valid tag.

use super::codec::tests::heartbeat;
use super::*;
use crate::msg::{Message, State};
use hafw_testkit::mutate::mutate;
use hafw_testkit::Rng;

const PEER: u32 = 1;
const ME: u32 = 2;
const HEADER: usize = envelope::HEADER_LEN;
const ROUNDS: usize = 100_000;

/// Mostly small, sometimes around the envelope limits.
fn len(rng: &mut Rng) -> usize {
    match rng.index(100) {
        0 => MAX_ENVELOPE_LEN - 2 + rng.index(4),
        1..=10 => 40 + rng.index(16),
        _ => rng.index(200),
    }
}

fn key() -> PairKey {
    let psk = Psk::from_file_bytes(b"sweep: 32 bytes or more of secret", "sweep.key").unwrap();
    PairKey::for_tests(&psk)
}

const MINE: Epoch = Epoch {
    start_ns: 1_700_000_000_000_000_001,
    random: [6; 8],
};

#[test]
fn no_input_panics_and_no_forgery_passes() {
    let mut rng = Rng::new(0x00C0_FFEE);
    let mut sealer = Sealer::new(&key(), PEER, 1_700_000_000_000_000_000, [4; 8]);
    sealer.set_echo(Some(MINE));
    let mut opener = Opener::new(&key(), ME, PEER, MINE);
    let now = Now::new(1_700_000_000_000_000_002, std::time::Duration::ZERO);
    let messages = [
        Message::Heartbeat(heartbeat(PEER, State::Active)),
        Message::Heartbeat(heartbeat(PEER, State::NonFunctional)),
        Message::Takeover {
            node_id: PEER,
            term: 9,
        },
    ];
    let genuine: Vec<Vec<u8>> = Kind::ALL
        .iter()
        .flat_map(|&k| messages.iter().map(move |m| (k, m)))
        .map(|(k, m)| sealer.seal(k, m).unwrap())
        .collect();
    // Every version's plaintexts (version 4 decodes only where a node
    // speaks it: the decoder alone, below).
    let advert = crate::version::Advert::new("0.1.0", 3, 1);
    let plaintexts: Vec<(u8, Vec<u8>)> = (2..=4)
        .flat_map(|v| messages.iter().map(move |m| (v, m)))
        .map(|(v, m)| (v, encode_v(v, m, Some(&advert))))
        .collect();

    let mut expected_accepts = 0u64;
    let mut opens = 0u64;
    let mut decoded_ok = 0u64;
    for round in 0..ROUNDS {
        match round % 5 {
            // Random bytes.
            0 => {
                let len = len(&mut rng);
                let input = rng.bytes(len);
                assert!(opener.open(now, &input).is_err(), "round {round}");
                assert!(opener.open_bytes(now, &input).is_err(), "round {round}");
                opens += 2;
                if let Ok(m) = decode(&input) {
                    assert_eq!(encode(&m), input, "round {round}");
                }
            }
            // A genuine header, then random ciphertext and tag.
            1 => {
                let g = &genuine[rng.index(genuine.len())];
                let mut input = g[..HEADER].to_vec();
                let len = len(&mut rng);
                input.extend_from_slice(&rng.bytes(len));
                assert!(opener.open(now, &input).is_err(), "round {round}");
                opens += 1;
            }
            // A mutated genuine envelope.
            2 => {
                let g = &genuine[rng.index(genuine.len())];
                let input = mutate(&mut rng, g, 8);
                let r = opener.open(now, &input);
                opens += 1;
                if input == *g {
                    // The edits cancelled out: the genuine one is accepted
                    // once, then it is a replay (or behind the window, once
                    // round 3's seals have moved it on).
                    match r {
                        Ok(_) => expected_accepts += 1,
                        Err(Reject::Duplicate { .. }) | Err(Reject::TooOld { .. }) => {}
                        Err(other) => panic!("round {round}: genuine envelope: {other}"),
                    }
                } else {
                    assert!(r.is_err(), "round {round}: mutated envelope accepted");
                }
            }
            // A random or mutated plaintext behind a valid tag: reaches the
            // decoder with arbitrary bytes.
            3 => {
                let (version, plain) = if rng.index(2) == 0 {
                    let len = rng.index(140);
                    (2 + rng.index(2) as u8, rng.bytes(len))
                } else {
                    let (v, p) = &plaintexts[rng.index(plaintexts.len() * 2 / 3)];
                    (*v, mutate(&mut rng, p, 8))
                };
                let kind = Kind::ALL[rng.index(2)];
                sealer.set_version(version);
                let env = sealer.seal_bytes(kind, &plain).unwrap();
                opens += 1;
                match opener.open(now, &env) {
                    Ok(o) => {
                        expected_accepts += 1;
                        assert_eq!(o.version, version, "round {round}");
                        let again = encode_v(o.version, &o.body, o.advert.as_ref());
                        assert_eq!(again, plain, "round {round}");
                    }
                    Err(Reject::Decode { .. }) | Err(Reject::SenderMismatch { .. }) => {}
                    Err(other) => panic!("round {round}: authentic envelope refused: {other}"),
                }
            }
            // The decoder alone on mutated valid plaintexts.
            _ => {
                let (v, p) = &plaintexts[rng.index(plaintexts.len())];
                let input = mutate(&mut rng, p, 8);
                if let Ok((m, a)) = decode_v(*v, &input) {
                    decoded_ok += 1;
                    assert_eq!(encode_v(*v, &m, a.as_ref()), input, "round {round}");
                }
            }
        }
    }
    let c = opener.counters();
    assert_eq!(c.accepted, expected_accepts);
    assert_eq!(c.accepted + c.rejected(), opens, "every open counted once");
    // The sweep must reach every kind of refusal, or it explores too little.
    for (name, value) in c.iter() {
        if !matches!(name, "own_id" | "stale_epoch" | "too_long" | "future_epoch") {
            assert!(value > 0, "sweep never produced {name}: {c:?}");
        }
    }
    assert!(c.too_long > 0 || c.too_short > 0);
    assert!(decoded_ok > 0, "mutations never kept a plaintext valid");
}
