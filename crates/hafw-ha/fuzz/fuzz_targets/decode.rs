//! Arbitrary bytes against the receiving side of the HA wire format.
//!
//! The first byte picks what the rest is:
//! - 0: an envelope from the network (`open`, `open_bytes`) and a bare
//!   plaintext (`decode`): none may panic, none may be accepted. Its key
//!   seals nothing here: modes 1 and 2 show the fuzzer genuine envelopes
//!   (it learns them from comparisons), which under one key it could
//!   simply replay;
//! - 1: a plaintext sealed with the real key, so the message decoder runs
//!   behind a valid tag: whatever decodes must encode back identically;
//! - 2: a XOR mask over a genuine envelope: any change must be refused.
#![no_main]

use hafw_ha::msg::Message;
use hafw_ha::wire::{
    decode, decode_v, encode, encode_v, Epoch, Kind, Now, Opener, PairKey, Psk, Reject, Sealer,
    MAX_PLAINTEXT_LEN,
};
use libfuzzer_sys::fuzz_target;

const PEER: u32 = 1;
const ME: u32 = 2;

const MINE: Epoch = Epoch {
    start_ns: 1_700_000_000_000_000_001,
    random: [3; 8],
};

fn now() -> Now {
    Now::new(1_700_000_000_000_000_002, std::time::Duration::ZERO)
}

fn psk(bytes: &[u8]) -> PairKey {
    match Psk::from_file_bytes(bytes, "fuzz.key") {
        Ok(p) => PairKey::for_tests(&p),
        Err(e) => panic!("fuzz key: {e}"),
    }
}

fn pair() -> (Sealer, Opener) {
    let key = psk(b"fuzzing key, 32 bytes or longer!");
    let mut sealer = Sealer::new(&key, PEER, 1_700_000_000_000_000_000, [7; 8]);
    sealer.set_echo(Some(MINE));
    (sealer, Opener::new(&key, ME, PEER, MINE))
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mut sealer, mut opener) = pair();
    match mode % 3 {
        0 => {
            let mut opener = Opener::new(&psk(b"a key that never seals in here!!"), ME, PEER, MINE);
            assert!(
                opener.open(now(), rest).is_err(),
                "forged envelope accepted"
            );
            assert!(
                opener.open_bytes(now(), rest).is_err(),
                "forged envelope accepted"
            );
            if let Ok(m) = decode(rest) {
                assert_eq!(encode(&m), rest, "two encodings of one message");
            }
            for v in 2..=4 {
                if let Ok((m, a)) = decode_v(v, rest) {
                    assert_eq!(
                        encode_v(v, &m, a.as_ref()),
                        rest,
                        "two encodings of one message"
                    );
                }
            }
        }
        1 => {
            if rest.len() > MAX_PLAINTEXT_LEN {
                return;
            }
            let Ok(env) = sealer.seal_bytes(Kind::Ha1Datagram, rest) else {
                panic!("seal refused a plaintext within the limit");
            };
            match opener.open(now(), &env) {
                Ok(o) => assert_eq!(
                    encode_v(o.version, &o.body, o.advert.as_ref()),
                    rest,
                    "two encodings of one message"
                ),
                Err(Reject::Decode { .. }) | Err(Reject::SenderMismatch { .. }) => {}
                Err(other) => panic!("authentic envelope refused: {other}"),
            }
        }
        _ => {
            let msg = Message::Takeover {
                node_id: PEER,
                term: 1,
            };
            let Ok(genuine) = sealer.seal(Kind::Ha1Datagram, &msg) else {
                panic!("seal refused a takeover");
            };
            let mut env = genuine.clone();
            for (b, m) in env.iter_mut().zip(rest) {
                *b ^= m;
            }
            // Bytes past the genuine length extend it.
            env.extend_from_slice(rest.get(genuine.len()..).unwrap_or(&[]));
            let r = opener.open(now(), &env);
            if env == genuine {
                assert!(r.is_ok(), "genuine envelope refused: {r:?}");
            } else {
                assert!(r.is_err(), "altered envelope accepted");
            }
        }
    }
});
