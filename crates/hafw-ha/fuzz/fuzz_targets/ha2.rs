//! Arbitrary bytes as an HA2 TCP stream: length-prefixed envelopes, read
//! as the sync thread reads them. The first byte picks what the rest is:
//! - 0: the stream from the network, under a key that seals nothing here:
//!   no frame may open (framing must not panic on any length);
//! - 1: each frame's bytes are a payload, sealed as an HA2 frame with the
//!   real key, opened, and handed to the endpoint its channel byte picks
//!   (session or config sync), so the decoders run behind a valid tag;
//! - 2: a XOR mask over a genuine framed stream of two frames: a frame
//!   that changed must be refused, one that did not must open.
#![no_main]

use std::time::Duration;

use hafw_ha::wire::{Epoch, Kind, Now, Opener, PairKey, Psk, Sealer, MAX_PLAINTEXT_LEN};
use libfuzzer_sys::fuzz_target;

mod common;

const PEER: u32 = 1;
const ME: u32 = 2;

/// This node's run, which the peer's frames echo.
const MINE: Epoch = Epoch {
    start_ns: 1_700_000_000_000_000_001,
    random: [3; 8],
};

fn now() -> Now {
    Now::new(1_700_000_000_000_000_002, Duration::ZERO)
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

fn framed(envelopes: &[Vec<u8>]) -> Vec<u8> {
    let mut s = vec![];
    for e in envelopes {
        s.extend_from_slice(&(e.len() as u32).to_be_bytes());
        s.extend_from_slice(e);
    }
    s
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let (mut sealer, mut opener) = pair();
    match mode % 3 {
        0 => {
            let mut opener = Opener::new(&psk(b"a key that never seals in here!!"), ME, PEER, MINE);
            for f in common::frames(rest).0 {
                assert!(
                    opener.open_bytes(now(), f).is_err(),
                    "forged HA2 frame accepted"
                );
            }
        }
        1 => {
            let mut ends = common::Endpoints::new();
            let (payloads, _) = common::frames(rest);
            for (i, p) in payloads.into_iter().enumerate() {
                if p.len() > MAX_PLAINTEXT_LEN {
                    continue;
                }
                let Ok(env) = sealer.seal_bytes(Kind::Ha2Frame, p) else {
                    panic!("seal refused a plaintext within the limit");
                };
                match opener.open_bytes(now(), &env) {
                    Ok(o) => {
                        assert_eq!(o.kind, Kind::Ha2Frame);
                        assert_eq!(o.body, p);
                        ends.deliver(Duration::from_millis(i as u64), &o.body);
                    }
                    Err(e) => panic!("authentic HA2 frame refused: {e}"),
                }
            }
        }
        _ => {
            let genuine: Vec<Vec<u8>> = [&b"S\x01payload one"[..], b"C\x01two"]
                .iter()
                .map(|p| match sealer.seal_bytes(Kind::Ha2Frame, p) {
                    Ok(e) => e,
                    Err(e) => panic!("seal: {e}"),
                })
                .collect();
            let clean = framed(&genuine);
            let mut stream = clean.clone();
            for (b, m) in stream.iter_mut().zip(rest) {
                *b ^= m;
            }
            stream.extend_from_slice(rest.get(clean.len()..).unwrap_or(&[]));
            let (frames, _) = common::frames(&stream);
            let mut seen: Vec<&[u8]> = vec![];
            for (i, f) in frames.into_iter().enumerate() {
                let r = opener.open_bytes(now(), f);
                if !genuine.iter().any(|g| g.as_slice() == f) {
                    assert!(r.is_err(), "altered HA2 frame accepted");
                } else if genuine.get(i).is_some_and(|g| g.as_slice() == f) && !seen.contains(&f) {
                    assert!(r.is_ok(), "genuine HA2 frame refused: {r:?}");
                }
                seen.push(f);
            }
        }
    }
});
