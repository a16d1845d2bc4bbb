//! Path monitoring: in-process ICMP echo probes to each target of a
//! `policy.ha.path_monitor` group, out of the group's interface. A target
//! fails after `misses` probes in a row go unanswered; a group fails when any
//! (or all, as configured) of its targets fail. Each group runs on a thread
//! of its own and publishes its verdict for the monitor loop to combine with
//! the link monitors.

use std::io::ErrorKind;
use std::mem::MaybeUninit;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hafw_model::spec::{Failure, PathMonitor};
use socket2::{Domain, Protocol, Socket, Type};

/// A group's current verdict: `None` while healthy, else why it fails.
pub type Verdict = Arc<Mutex<Option<String>>>;

pub fn start(m: &PathMonitor, id: u16) -> Result<Verdict, String> {
    let dev = m.via.ifname();
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(|e| format!("path monitor {}: open an ICMP socket: {e}", m.name))?;
    sock.bind_device(Some(dev.as_bytes()))
        .map_err(|e| format!("path monitor {}: bind to {dev}: {e}", m.name))?;
    let verdict: Verdict = Arc::new(Mutex::new(None));
    let out = verdict.clone();
    let (name, targets, failure) = (
        m.name.clone(),
        m.targets.iter().map(|t| t.0).collect::<Vec<_>>(),
        m.failure,
    );
    let interval = m.interval_ms.duration();
    let misses = m.misses.get();
    std::thread::Builder::new()
        .name(format!("probe-{name}"))
        .spawn(move || {
            run(
                sock, &name, dev, &targets, failure, interval, misses, id, &out,
            )
        })
        .map_err(|e| format!("path monitor: start its thread: {e}"))?;
    Ok(verdict)
}

#[allow(clippy::too_many_arguments)]
fn run(
    sock: Socket,
    name: &str,
    dev: &str,
    targets: &[Ipv4Addr],
    failure: Failure,
    interval: Duration,
    misses: u32,
    id: u16,
    out: &Verdict,
) {
    let mut missed = vec![0u32; targets.len()];
    let mut seq: u16 = 0;
    loop {
        seq = seq.wrapping_add(1);
        let mut answered = vec![false; targets.len()];
        for t in targets {
            let _ = sock.send_to(&echo_request(id, seq), &SocketAddrV4::new(*t, 0).into());
        }
        let end = Instant::now() + interval;
        while let Some(left) = end
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        {
            let _ = sock.set_read_timeout(Some(left));
            let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
            match sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    // SAFETY: recv_from initialised the first n bytes.
                    let bytes: Vec<u8> = buf[..n]
                        .iter()
                        .map(|b| unsafe { b.assume_init() })
                        .collect();
                    let Some(src) = from.as_socket_ipv4().map(|a| *a.ip()) else {
                        continue;
                    };
                    if is_our_reply(&bytes, id, seq) {
                        if let Some(i) = targets.iter().position(|t| *t == src) {
                            answered[i] = true;
                        }
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                    ) =>
                {
                    break
                }
                Err(_) => break,
            }
        }
        for (i, a) in answered.iter().enumerate() {
            missed[i] = if *a { 0 } else { missed[i].saturating_add(1) };
        }
        let failed: Vec<String> = targets
            .iter()
            .zip(&missed)
            .filter(|(_, m)| **m >= misses)
            .map(|(t, _)| t.to_string())
            .collect();
        let fails = match failure {
            Failure::Any => !failed.is_empty(),
            Failure::All => failed.len() == targets.len(),
        };
        let v = fails.then(|| {
            format!(
                "path {name} via {dev} failed: no answer from {}",
                failed.join(", ")
            )
        });
        if let Ok(mut o) = out.lock() {
            *o = v;
        }
    }
}

/// An ICMP echo request with our id and sequence number.
fn echo_request(id: u16, seq: u16) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[0] = 8; // echo request
    p[4..6].copy_from_slice(&id.to_be_bytes());
    p[6..8].copy_from_slice(&seq.to_be_bytes());
    p[8..16].copy_from_slice(b"hafwpath");
    let c = checksum(&p);
    p[2..4].copy_from_slice(&c.to_be_bytes());
    p
}

/// A raw ICMP socket receives the IP header too.
fn is_our_reply(packet: &[u8], id: u16, seq: u16) -> bool {
    let Some(&vihl) = packet.first() else {
        return false;
    };
    let ihl = usize::from(vihl & 0x0f) * 4;
    let Some(icmp) = packet.get(ihl..ihl + 8) else {
        return false;
    };
    icmp[0] == 0 && icmp[4..6] == id.to_be_bytes() && icmp[6..8] == seq.to_be_bytes()
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_echo_request_checksums_to_zero() {
        let p = echo_request(0x1234, 7);
        assert_eq!(checksum(&p), 0);
    }

    #[test]
    fn only_our_replies_count_and_garbage_is_ignored() {
        let mut reply = vec![0x45u8; 1];
        reply.extend_from_slice(&[0u8; 19]);
        reply.extend_from_slice(&[0, 0, 0, 0, 0x12, 0x34, 0, 7]);
        assert!(is_our_reply(&reply, 0x1234, 7));
        assert!(!is_our_reply(&reply, 0x1234, 8));
        assert!(!is_our_reply(&reply[..10], 0x1234, 7));
        assert!(!is_our_reply(&[], 0x1234, 7));
    }
}
