//! Arbitrary bytes as a config-sync payload: the decoder must not panic,
//! whatever decodes must encode back to the same bytes, and the core
//! takes it (twice, and after its timers) without panicking.
#![no_main]

use std::time::Duration;

use hafw_ha::config_sync::codec::{decode, encode};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = decode(data) {
        assert_eq!(encode(&m), data, "two encodings of one message: {m:?}");
    }
    let mut ends = common::Endpoints::new();
    let mut payload = data.to_vec();
    // Most inputs start with the config channel, so the core sees them.
    if let Some(b) = payload.first_mut() {
        *b = hafw_ha::config_sync::codec::CHANNEL;
    }
    ends.deliver(Duration::from_millis(1), &payload);
    ends.deliver(Duration::from_millis(2), &payload);
    ends.deliver(Duration::from_secs(5), data);
});
