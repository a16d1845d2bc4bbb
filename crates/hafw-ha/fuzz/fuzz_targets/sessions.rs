//! Arbitrary bytes as a session-sync payload (the HA2 plaintext after the
//! envelope opened): the decoder must not panic, whatever decodes must
//! encode back to the same bytes, and the sender and both receivers
//! (mirror and commit mode) take it without panicking.
#![no_main]

use std::time::Duration;

use hafw_ha::sessions::codec::{decode, encode};
use libfuzzer_sys::fuzz_target;

mod common;

fuzz_target!(|data: &[u8]| {
    if let Ok(f) = decode(data) {
        assert_eq!(encode(&f), data, "two encodings of one frame: {f:?}");
    }
    let mut ends = common::Endpoints::new();
    // Twice: the second copy meets the state the first one left.
    ends.deliver(Duration::from_millis(1), data);
    ends.deliver(Duration::from_millis(2), data);
});
