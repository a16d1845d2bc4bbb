//! The lab's metadata service under attack, over real sockets from inside
//! a lab: strangers, oversized and slow requests, a connection flood. It
//! must stay bounded and keep answering the instances.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::*;
use hafw_lab::metadata::{self, MAX_CONNECTIONS, MAX_REQUEST, READ_TIMEOUT};

const MD: &str = "100.100.100.200:80";

fn connect(ns: &str) -> TcpStream {
    hafw_kernel::in_netns(Some(ns), || TcpStream::connect(MD))
        .unwrap()
        .unwrap()
}

/// Sends `req`, returns the status code of the reply (0: none).
fn code(mut s: TcpStream, req: &[u8]) -> u16 {
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = s.write_all(req);
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out.split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0)
}

#[test]
fn the_metadata_service_refuses_strangers_floods_and_junk_and_keeps_serving() {
    if !ns_tests_enabled() {
        return;
    }
    let lab = Lab::up("alicloud-havip.toml", "md");
    let fw = lab.ns("fw-a");

    // The instance, in hardened mode: a token, then its own items.
    let user_data = metadata::fetch_in(&fw, "/latest/user-data").expect("user data");
    assert!(user_data.starts_with("#!/bin/sh"), "{user_data}");
    let id = metadata::fetch_in(&fw, "/latest/meta-data/instance-id").unwrap();
    assert!(id.starts_with("i-"), "{id}");
    // Without a token: 401.
    let plain = b"GET /latest/meta-data/instance-id HTTP/1.1\r\nHost: x\r\n\r\n";
    assert_eq!(code(connect(&fw), plain), 401);
    // A lab host that is no instance: 403, even with a token of its own.
    assert_eq!(code(connect(&lab.ns("web")), plain), 403);
    // Junk and an oversized head.
    assert_eq!(code(connect(&fw), b"\x00\x01\x02 junk\r\n\r\n"), 400);
    let mut big = b"GET /latest/meta-data/mac HTTP/1.1\r\nX-Pad: ".to_vec();
    big.extend(std::iter::repeat_n(b'a', MAX_REQUEST * 2));
    assert_eq!(code(connect(&fw), &big), 431);

    // A flood of idle connections: past the bound they are refused at
    // once (503), not queued; once the idle ones time out it serves again.
    let idle: Vec<TcpStream> = (0..MAX_CONNECTIONS).map(|_| connect(&fw)).collect();
    std::thread::sleep(Duration::from_millis(200));
    let t = Instant::now();
    assert_eq!(code(connect(&fw), plain), 503);
    assert!(
        t.elapsed() < READ_TIMEOUT,
        "the refusal waited {:?}",
        t.elapsed()
    );
    let mut cut = 0;
    for mut s in idle {
        s.set_read_timeout(Some(READ_TIMEOUT * 2)).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        cut += usize::from(out.contains(" 408 "));
    }
    assert_eq!(
        cut, MAX_CONNECTIONS,
        "every idle connection is cut with 408"
    );
    assert!(metadata::fetch_in(&fw, "/latest/meta-data/mac").is_ok());

    // Everything was counted by answer.
    let counts = metadata::read_counts(&lab.name);
    for want in [401u16, 403, 400, 431, 503, 408, 200] {
        assert!(
            counts.iter().any(|(n, _, c, _)| *c == want && *n > 0),
            "no {want} counted: {counts:?}"
        );
    }
}
