//! Path monitoring: in-process ICMP echo probes to each target of a
//! `policy.ha.path_monitor` group, out of the group's interface. When a
//! target or the group fails is the core's decision
//! ([`hafw_ha::monitor::PathCheck`]); this only sends and listens. Each
//! group runs on a thread of its own and publishes its verdict for the
//! monitor loop to combine with the link monitors.

use std::mem::MaybeUninit;
use std::net::SocketAddrV4;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hafw_ha::monitor::PathCheck;
use hafw_model::spec::PathMonitor;
use socket2::{Domain, Protocol, Socket, Type};

use crate::error::SetupError;

/// A group's current verdict: `None` while healthy, else why it fails.
pub type Verdict = Arc<Mutex<Option<String>>>;

/// Probes `m`'s targets out of `dev`, the link of its `via` ENI.
pub fn start(m: &PathMonitor, dev: &str, id: u16) -> Result<Verdict, SetupError> {
    let sock = Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4))
        .map_err(|e| SetupError::io(format!("path monitor {}: open an ICMP socket", m.name), e))?;
    sock.bind_device(Some(dev.as_bytes()))
        .map_err(|e| SetupError::io(format!("path monitor {}: bind to {dev}", m.name), e))?;
    let verdict: Verdict = Arc::new(Mutex::new(None));
    let rule = super::monitor::rule(m.failure);
    let targets = m.targets.iter().map(|t| t.0).collect();
    let prober = Prober {
        sock,
        id,
        interval: m.interval_ms.duration(),
        check: PathCheck::new(&m.name, dev, targets, rule, m.misses.get()),
        out: verdict.clone(),
    };
    std::thread::Builder::new()
        .name(format!("probe-{}", m.name))
        .spawn(move || prober.run())
        .map_err(|e| SetupError::io("path monitor: start its thread", e))?;
    Ok(verdict)
}

/// One path monitor's probing: its socket, and the core that decides
/// when its targets fail.
struct Prober {
    sock: Socket,
    /// The ICMP echo identifier of this monitor's probes.
    id: u16,
    /// One probe round per interval.
    interval: Duration,
    check: PathCheck,
    out: Verdict,
}

impl Prober {
    fn run(mut self) {
        let mut seq: u16 = 0;
        loop {
            seq = seq.wrapping_add(1);
            let answered = self.round(seq);
            let v = self.check.handle_round(&answered);
            if let Ok(mut o) = self.out.lock() {
                *o = v;
            }
        }
    }

    /// Sends one echo request to every target and listens for one interval;
    /// says which targets answered.
    fn round(&self, seq: u16) -> Vec<bool> {
        let targets = self.check.targets();
        let mut answered = vec![false; targets.len()];
        for t in targets {
            let to = SocketAddrV4::new(*t, 0).into();
            let _ = self.sock.send_to(&echo_request(self.id, seq), &to);
        }
        let end = Instant::now() + self.interval;
        while let Some(left) = end
            .checked_duration_since(Instant::now())
            .filter(|d| !d.is_zero())
        {
            let _ = self.sock.set_read_timeout(Some(left));
            let mut buf = [MaybeUninit::<u8>::uninit(); 1500];
            match self.sock.recv_from(&mut buf) {
                Ok((n, from)) => {
                    // SAFETY: recv_from initialised the first n bytes.
                    let bytes: Vec<u8> = buf[..n]
                        .iter()
                        .map(|b| unsafe { b.assume_init() })
                        .collect();
                    let Some(src) = from.as_socket_ipv4().map(|a| *a.ip()) else {
                        continue;
                    };
                    if is_our_reply(&bytes, self.id, seq) {
                        if let Some(i) = targets.iter().position(|t| *t == src) {
                            answered[i] = true;
                        }
                    }
                }
                // Timed out (the round is over), interrupted or failed: the
                // unanswered targets count a miss.
                Err(_) => break,
            }
        }
        answered
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
