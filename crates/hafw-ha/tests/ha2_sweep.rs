//! The no-panic sweep of what arrives over HA2, run in every `cargo test`
//! (the fuzz targets `ha2` and `config` do the same open-ended): a byte
//! stream split into length-prefixed envelopes as the sync thread reads it,
//! forged and mutated frames refused, and authentic frames carrying random
//! or mutated payloads handed to the endpoint their channel byte picks. The
//! config-sync codec's own sweep is here too; the session codec's is
//! `src/sessions/sweep.rs`.

use std::time::Duration;

use hafw_ha::config_sync::codec::{decode, encode, ConfigMessage, CHANNEL};
use hafw_ha::config_sync::{ConfigSync, RetryConfig};
use hafw_ha::sessions::{Mode, ReceiverConfig, SenderConfig, SyncReceiver, SyncSender};
use hafw_ha::wire::{Kind, Now, Opener, PairKey, Psk, Sealer, MAX_ENVELOPE_LEN, MAX_PLAINTEXT_LEN};
use hafw_testkit::mutate::mutate;
use hafw_testkit::Rng;

const ROUNDS: usize = 30_000;
const PEER: u32 = 1;
const ME: u32 = 2;

fn psk() -> Psk {
    Psk::from_file_bytes(b"ha2 sweep: 32 bytes or more of secret", "sweep.key").unwrap()
}

/// The sync thread's framing (`hafw-daemon/src/sync/ha2.rs`): a 4-byte
/// big-endian length, then the envelope; a length over the limit ends the
/// connection (returned, after the frames before it).
fn frames(mut stream: &[u8]) -> (Vec<&[u8]>, Option<usize>) {
    let mut out = vec![];
    while stream.len() >= 4 {
        let n = u32::from_be_bytes(stream[..4].try_into().unwrap()) as usize;
        if n > MAX_ENVELOPE_LEN {
            return (out, Some(n));
        }
        let Some(frame) = stream.get(4..4 + n) else {
            break;
        };
        out.push(frame);
        stream = &stream[4 + n..];
    }
    (out, None)
}

fn framed(envelopes: &[Vec<u8>]) -> Vec<u8> {
    let mut s = vec![];
    for e in envelopes {
        s.extend_from_slice(&(e.len() as u32).to_be_bytes());
        s.extend_from_slice(e);
    }
    s
}

fn config_samples() -> Vec<ConfigMessage> {
    vec![
        ConfigMessage::Offer {
            version: 4,
            hash: [7; 32],
            total: 11,
            offset: 0,
            bytes: b"[policy] x=".to_vec(),
        },
        ConfigMessage::Offer {
            version: 4,
            hash: [7; 32],
            total: 20,
            offset: 11,
            bytes: b"1".to_vec(),
        },
        ConfigMessage::Result {
            version: 4,
            hash: [7; 32],
            applied: false,
            error: Some("rule \"web\": unknown zone".into()),
        },
        ConfigMessage::Result {
            version: 2,
            hash: [1; 32],
            applied: true,
            error: None,
        },
    ]
}

struct Endpoints {
    sender: SyncSender,
    receivers: [SyncReceiver; 2],
    config: ConfigSync,
}

impl Endpoints {
    fn new() -> Endpoints {
        let mut sender = SyncSender::new(SenderConfig::new(0x5EED)).unwrap();
        sender.start_bulk(Duration::ZERO, vec![]);
        let rx = |mode| SyncReceiver::new(ReceiverConfig::new(0xAC4, mode)).unwrap();
        let mut receivers = [rx(Mode::Mirror), rx(Mode::Commit)];
        let mut config = ConfigSync::new(RetryConfig::default(), Some((3, b"policy v3".to_vec())));
        // A passive hearing an active peer: the one role in which the
        // receivers and config sync take what arrives, so the decoders and
        // the state behind them are reached.
        for r in receivers.iter_mut() {
            r.set_peer_active(true);
        }
        config.set_peer_active(true);
        Endpoints {
            sender,
            receivers,
            config,
        }
    }

    /// As the sync thread dispatches a payload: config sync by its channel
    /// byte, else session sync.
    fn deliver(&mut self, now: Duration, payload: &[u8]) {
        if payload.first() == Some(&CHANNEL) {
            let _ = self.config.handle_message(now, payload);
            self.config.handle_timeout(now);
            while self.config.poll_transmit().is_some() {}
            while self.config.poll_action().is_some() {}
            assert!(self.config.poll_timeout().is_none_or(|t| t > now));
            return;
        }
        let _ = self.sender.handle_message(now, payload);
        self.sender.handle_timeout(now);
        while self.sender.poll_transmit().is_some() {}
        for r in self.receivers.iter_mut() {
            let _ = r.handle_message(now, payload);
            r.handle_timeout(now);
            assert!(r.poll_timeout().is_none_or(|t| t > now));
            while r.poll_transmit().is_some() {}
        }
    }
}

#[test]
fn config_payloads_never_panic_and_decode_injectively() {
    let mut rng = Rng::new(0xC0F1_6000);
    let genuine: Vec<Vec<u8>> = config_samples().iter().map(encode).collect();
    let mut ends = Endpoints::new();
    let mut decoded = 0;
    for round in 0..ROUNDS {
        let now = Duration::from_millis(round as u64);
        let input = match round % 3 {
            0 => {
                let n = rng.index(120);
                let mut b = rng.bytes(n);
                if rng.index(2) == 0 && b.len() >= 2 {
                    b[0] = CHANNEL;
                    b[1] = 1;
                }
                b
            }
            _ => {
                let i = rng.index(genuine.len());
                mutate(&mut rng, &genuine[i], 40)
            }
        };
        if let Ok(m) = decode(&input) {
            decoded += 1;
            assert_eq!(encode(&m), input, "round {round}: {m:?}");
        }
        ends.deliver(now, &input);
    }
    // The sweep reaches the decoder's far end, not only its first check.
    assert!(decoded > ROUNDS / 50, "only {decoded} decoded");
}

#[test]
fn ha2_streams_never_panic_and_no_forged_frame_opens() {
    let mut rng = Rng::new(0x00A2_2026);
    const START: u64 = 1_700_000_000_000_000_000;
    let key = PairKey::for_tests(&psk());
    let mine = Sealer::new(&key, ME, START, [6; 8]).epoch();
    let mut sealer = Sealer::new(&key, PEER, START, [5; 8]);
    // The peer has heard this run of ours, so its frames may open.
    sealer.set_echo(Some(mine));
    let mut opener = Opener::new(&key, ME, PEER, mine);
    let mut ends = Endpoints::new();
    let payloads: Vec<Vec<u8>> = config_samples()
        .iter()
        .map(encode)
        .chain([b"S\x01\x05".to_vec(), vec![]])
        .collect();
    let (mut opened, mut refused) = (0u64, 0u64);
    for round in 0..ROUNDS {
        let now = Duration::from_millis(round as u64);
        let wire_now = Now::new(START + now.as_nanos() as u64, now);
        match round % 3 {
            // A stream from the network: random lengths and bytes.
            0 => {
                let n = rng.index(300);
                let mut stream = rng.bytes(n);
                if rng.index(4) != 0 && stream.len() >= 4 {
                    let n = rng.index(stream.len() - 3) as u32;
                    stream[..4].copy_from_slice(&n.to_be_bytes());
                }
                if rng.index(50) == 0 {
                    stream.splice(0..0, ((MAX_ENVELOPE_LEN + 1) as u32).to_be_bytes());
                    assert!(frames(&stream).1.is_some(), "round {round}");
                }
                for f in frames(&stream).0 {
                    assert!(opener.open_bytes(wire_now, f).is_err(), "round {round}");
                    refused += 1;
                }
            }
            // Authentic frames with random or mutated payloads: the
            // decoders and endpoints run behind a valid tag.
            1 => {
                let p = if rng.index(2) == 0 {
                    let i = rng.index(payloads.len());
                    mutate(&mut rng, &payloads[i], 20)
                } else {
                    let n = rng.index(100);
                    let mut b = rng.bytes(n);
                    if let Some(c) = b.first_mut() {
                        *c = if rng.index(2) == 0 { b'S' } else { CHANNEL };
                    }
                    b
                };
                if p.len() > MAX_PLAINTEXT_LEN {
                    continue;
                }
                let stream = framed(&[sealer.seal_bytes(Kind::Ha2Frame, &p).unwrap()]);
                let f = frames(&stream).0;
                let o = opener.open_bytes(wire_now, f[0]).expect("authentic frame");
                assert_eq!((o.kind, &o.body), (Kind::Ha2Frame, &p));
                opened += 1;
                ends.deliver(now, &o.body);
            }
            // A mutated genuine stream: a changed frame never opens.
            _ => {
                let p = &payloads[rng.index(payloads.len())];
                let env = sealer.seal_bytes(Kind::Ha2Frame, p).unwrap();
                let stream = mutate(&mut rng, &framed(std::slice::from_ref(&env)), 8);
                for f in frames(&stream).0 {
                    let r = opener.open_bytes(wire_now, f);
                    if f == env.as_slice() {
                        assert!(r.is_ok(), "round {round}: genuine refused {r:?}");
                        opened += 1;
                    } else {
                        assert!(r.is_err(), "round {round}: altered frame opened");
                        refused += 1;
                    }
                }
            }
        }
    }
    eprintln!("opened {opened}, refused {refused}");
    assert!(opened > ROUNDS as u64 / 4 && refused > ROUNDS as u64 / 5);
    assert_eq!(opener.counters().accepted, opened);
}
