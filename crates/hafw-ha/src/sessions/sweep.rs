//! The no-panic sweep of the session-sync decoder and of both endpoints:
//! random bytes, mutated genuine payloads, and decodable-but-hostile
//! frames fed to a sender and a receiver. Whatever decodes must encode
//! back to the same bytes (one encoding per frame).

use super::codec::{decode, encode, Frame, SyncMessage, MAX_PAYLOAD};
use super::tests::{samples, RX};
use super::*;
use hafw_testkit::mutate::mutate;
use hafw_testkit::Rng;
use std::time::Duration;

const ROUNDS: usize = 100_000;

#[test]
fn no_payload_panics_and_decoding_is_injective() {
    let mut rng = Rng::new(0x5E55_1045);
    let genuine: Vec<Vec<u8>> = samples().iter().map(encode).collect();
    let mut sender = SyncSender::new(SenderConfig::new(0x5EED)).unwrap();
    sender.start_bulk(Duration::ZERO, vec![]);
    let mut receivers = [
        SyncReceiver::new(ReceiverConfig::new(RX, Mode::Mirror)).unwrap(),
        SyncReceiver::new(ReceiverConfig::new(RX, Mode::Commit)).unwrap(),
    ];
    for r in &mut receivers {
        r.set_peer_active(true);
    }
    let mut decoded = 0u64;
    for round in 0..ROUNDS {
        let now = Duration::from_micros(round as u64 * 100);
        let input = match round % 3 {
            0 => {
                let len = if rng.index(100) == 0 {
                    MAX_PAYLOAD + rng.index(16)
                } else {
                    rng.index(120)
                };
                let mut b = rng.bytes(len);
                // Often behind a valid channel and version, so the message
                // decoders run on random bodies.
                if rng.index(2) == 0 && b.len() >= 2 {
                    b[0] = b'S';
                    b[1] = 1;
                }
                b
            }
            _ => {
                let i = rng.index(genuine.len());
                mutate(&mut rng, &genuine[i], 40)
            }
        };
        if let Ok(f) = decode(&input) {
            decoded += 1;
            assert_eq!(encode(&f), input, "round {round}: {f:?}");
        }
        // Both endpoints take anything without panicking, and leave no
        // deadline in the past once their timers ran.
        let _ = sender.handle_message(now, &input);
        for r in receivers.iter_mut() {
            let _ = r.handle_message(now, &input);
            r.handle_timeout(now);
            assert!(r.poll_timeout().is_none_or(|t| t > now), "round {round}");
            while r.poll_transmit().is_some() {}
            while r.poll_action().is_some() {}
        }
        sender.handle_timeout(now);
        assert!(
            sender.poll_timeout().is_none_or(|t| t > now),
            "round {round}"
        );
        while sender.poll_transmit().is_some() {}
        while sender.poll_action().is_some() {}
    }
    assert!(
        decoded > 1000,
        "mutations rarely kept a payload valid: {decoded}"
    );
    // The receivers saw hostile but valid frames and still answer acks.
    let b = encode(&Frame {
        stream: 77,
        msg: SyncMessage::BulkStart { seq: 1, gen: 1 },
    });
    for r in receivers.iter_mut() {
        r.handle_message(Duration::from_secs(100), &b).unwrap();
        assert!(r.poll_transmit().is_some());
    }
}
