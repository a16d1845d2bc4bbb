//! The echo host's client: which address did the echo host see us as?

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::echo::decode_reply;
use super::error::{is_timeout, HostError};

/// Requests are sent this many times, spread over the timeout, so one lost
/// datagram (a neighbour entry still resolving) does not fail the question.
const SENDS: u32 = 3;

/// Asks the echo host at `target` from a fresh socket on an ephemeral port.
pub fn ask(target: SocketAddr, timeout: Duration) -> Result<SocketAddr, HostError> {
    let any: SocketAddr = match target {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(any).map_err(|source| HostError::Bind { addr: any, source })?;
    ask_via(&socket, target, timeout)
}

/// Asks from `socket`, which the caller bound (to a chosen source address or
/// port). Only a reply from `target` carrying this request's nonce counts;
/// anything else is skipped.
pub fn ask_via(
    socket: &UdpSocket,
    target: SocketAddr,
    timeout: Duration,
) -> Result<SocketAddr, HostError> {
    let request = format!("ask {:016x}\n", nonce()).into_bytes();
    let start = Instant::now();
    let deadline = start + timeout;
    let mut buf = [0u8; 2048];
    let mut sent = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            return Err(HostError::Timeout {
                context: format!("ask the echo host at {target}"),
                after: timeout,
            });
        }
        let next_send = start + timeout * sent / SENDS;
        if sent < SENDS && now >= next_send {
            socket
                .send_to(&request, target)
                .map_err(|source| HostError::Connect {
                    addr: target,
                    source,
                })?;
            sent += 1;
        }
        let wake = if sent < SENDS {
            (start + timeout * sent / SENDS).min(deadline)
        } else {
            deadline
        };
        let wait = wake
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        socket
            .set_read_timeout(Some(wait))
            .map_err(HostError::io("cannot set the read timeout"))?;
        match socket.recv_from(&mut buf) {
            Ok((n, from)) if from == target => {
                let (seen, payload) = decode_reply(&buf[..n])?;
                if payload == request {
                    return Ok(seen);
                }
            }
            Ok(_) => {}
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => {}
            Err(source) => {
                return Err(HostError::Io {
                    context: format!("waiting for {target}"),
                    source,
                })
            }
        }
    }
}

/// A value no earlier request of this process is likely to have used, so a
/// late reply to another question is not taken for ours.
pub(crate) fn nonce() -> u64 {
    // RandomState's keys are random per process and differ per call.
    let mut h = RandomState::new().build_hasher();
    let wall = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    h.write_u128(wall.as_nanos());
    h.finish()
}
