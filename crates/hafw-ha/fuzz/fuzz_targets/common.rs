//! Shared by the targets: the HA2 stream framing as the daemon reads it
//! (`hafw-daemon/src/sync/ha2.rs`) and the endpoints a payload reaches.
#![allow(dead_code)]

use std::time::Duration;

use hafw_ha::config_sync::{ConfigSync, RetryConfig};
use hafw_ha::sessions::{Mode, ReceiverConfig, SenderConfig, SyncReceiver, SyncSender};
use hafw_ha::wire::MAX_ENVELOPE_LEN;

/// Splits an HA2 byte stream into envelopes: a 4-byte big-endian length,
/// then that many bytes. A length over the envelope limit ends the
/// connection (the frames before it were delivered; the length is
/// returned); a short read is a connection that closed.
pub fn frames(mut stream: &[u8]) -> (Vec<&[u8]>, Option<usize>) {
    let mut out = vec![];
    while stream.len() >= 4 {
        let n = u32::from_be_bytes([stream[0], stream[1], stream[2], stream[3]]) as usize;
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

/// Every endpoint an HA2 payload can reach, as the sync thread dispatches
/// it (config sync by its channel byte, else session sync).
pub struct Endpoints {
    pub sender: SyncSender,
    pub receivers: [SyncReceiver; 2],
    pub config: ConfigSync,
}

impl Endpoints {
    pub fn new() -> Endpoints {
        let Ok(mut sender) = SyncSender::new(SenderConfig::new(0x5EED)) else {
            panic!("sender config");
        };
        sender.start_bulk(Duration::ZERO, vec![]);
        let rx = |mode| match SyncReceiver::new(ReceiverConfig::new(0xAC4, mode)) {
            Ok(r) => r,
            Err(e) => panic!("receiver config: {e}"),
        };
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

    /// Hands `payload` to whichever endpoint would get it, then runs the
    /// timers; nothing may panic, no deadline may stay in the past.
    pub fn deliver(&mut self, now: Duration, payload: &[u8]) {
        if payload.first() == Some(&hafw_ha::config_sync::codec::CHANNEL) {
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
