//! ICMP echo for the prober: the seed's failover test is a ping. An
//! unprivileged ping socket (`SOCK_DGRAM`, `IPPROTO_ICMP`) where
//! `net.ipv4.ping_group_range` allows it, else a raw socket (root or
//! CAP_NET_RAW). A ping socket's kernel sets the identifier and checksum
//! and delivers only its own replies; a raw socket sees every ICMP packet,
//! so replies are matched by our identifier and parsed past the IP header.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::time::Duration;

use socket2::{Domain, Protocol, Socket, Type};

use super::error::{is_timeout, HostError};

const ECHO_REQUEST: u8 = 8;
const ECHO_REPLY: u8 = 0;
const HEADER: usize = 8;

pub(crate) struct IcmpSocket {
    /// std's datagram calls work on either kind of ICMP socket.
    socket: UdpSocket,
    raw: bool,
    /// Our echo identifier (raw sockets; a ping socket's kernel picks it).
    id: u16,
}

impl IcmpSocket {
    pub(crate) fn open() -> Result<IcmpSocket, HostError> {
        let (socket, raw) = match Socket::new(Domain::IPV4, Type::DGRAM, Some(Protocol::ICMPV4)) {
            Ok(s) => (s, false),
            Err(dgram) => match Socket::new(Domain::IPV4, Type::RAW, Some(Protocol::ICMPV4)) {
                Ok(s) => (s, true),
                Err(raw) => {
                    return Err(HostError::Config(format!(
                        "cannot open an ICMP socket: a ping socket is refused ({dgram}; \
                         allow this group in net.ipv4.ping_group_range) and a raw one too \
                         ({raw}; run as root or with CAP_NET_RAW), or probe with --method tcp"
                    )))
                }
            },
        };
        let id = (super::ask::nonce() & 0xffff) as u16;
        Ok(IcmpSocket {
            socket: socket.into(),
            raw,
            id,
        })
    }

    /// Sends echo request `seq` carrying `payload` to `host`.
    pub(crate) fn send(&self, host: Ipv4Addr, seq: u16, payload: &[u8]) -> io::Result<()> {
        let packet = echo_request(self.id, seq, payload);
        self.socket
            .send_to(&packet, SocketAddr::new(IpAddr::V4(host), 0))
            .map(|_| ())
    }

    /// The next echo reply for us within `wait`: who sent it and its
    /// payload. `None` on timeout. Other ICMP packets a raw socket sees
    /// (requests, other pingers' replies, errors) are skipped within the
    /// same wait.
    pub(crate) fn recv<'b>(
        &self,
        buf: &'b mut [u8],
        wait: Duration,
    ) -> io::Result<Option<(Ipv4Addr, &'b [u8])>> {
        self.socket
            .set_read_timeout(Some(wait.max(Duration::from_micros(1))))?;
        let (n, from) = match self.socket.recv_from(buf) {
            Ok(got) => got,
            Err(e) if is_timeout(&e) || e.kind() == io::ErrorKind::Interrupted => return Ok(None),
            Err(e) => return Err(e),
        };
        let IpAddr::V4(from) = from.ip() else {
            return Ok(None);
        };
        let packet = if self.raw {
            skip_ip_header(&buf[..n])
        } else {
            Some(&buf[..n])
        };
        let payload = packet.and_then(|p| parse_reply(p, self.raw.then_some(self.id)));
        Ok(payload.map(|p| (from, p)))
    }
}

/// An echo request with its checksum (a ping socket's kernel rewrites the
/// identifier and checksum; a raw socket sends it as is).
fn echo_request(id: u16, seq: u16, payload: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(HEADER + payload.len());
    p.extend_from_slice(&[ECHO_REQUEST, 0, 0, 0]);
    p.extend_from_slice(&id.to_be_bytes());
    p.extend_from_slice(&seq.to_be_bytes());
    p.extend_from_slice(payload);
    let sum = checksum(&p);
    p[2..4].copy_from_slice(&sum.to_be_bytes());
    p
}

/// The payload of an echo reply (with identifier `id`, when given);
/// `None` for anything else.
fn parse_reply(p: &[u8], id: Option<u16>) -> Option<&[u8]> {
    if p.len() < HEADER || p[0] != ECHO_REPLY || p[1] != 0 {
        return None;
    }
    if id.is_some_and(|id| u16::from_be_bytes([p[4], p[5]]) != id) {
        return None;
    }
    Some(&p[HEADER..])
}

/// A raw socket's packets start with the IPv4 header.
fn skip_ip_header(p: &[u8]) -> Option<&[u8]> {
    let first = *p.first()?;
    let ihl = usize::from(first & 0x0f) * 4;
    (first >> 4 == 4 && ihl >= 20)
        .then(|| p.get(ihl..))
        .flatten()
}

/// The Internet checksum (RFC 1071).
fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    for pair in data.chunks(2) {
        let word = match pair {
            [a, b] => u16::from_be_bytes([*a, *b]),
            [a] => u16::from_be_bytes([*a, 0]),
            _ => 0,
        };
        sum += u32::from(word);
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_checks_out_and_only_our_replies_parse() {
        let req = echo_request(0x1234, 7, b"hello");
        // A correct checksum sums to zero over the whole message.
        assert_eq!(checksum(&req), 0);
        assert_eq!(&req[4..8], &[0x12, 0x34, 0, 7]);
        let mut reply = req.clone();
        reply[0] = ECHO_REPLY;
        assert_eq!(parse_reply(&reply, Some(0x1234)), Some(&b"hello"[..]));
        assert_eq!(parse_reply(&reply, None), Some(&b"hello"[..]));
        // Another pinger's reply, our own request, a truncated packet.
        assert_eq!(parse_reply(&reply, Some(0x4321)), None);
        assert_eq!(parse_reply(&req, Some(0x1234)), None);
        assert_eq!(parse_reply(&reply[..7], None), None);
    }

    #[test]
    fn the_ip_header_is_skipped_by_its_length() {
        let mut packet = vec![0x45u8; 20];
        packet.extend_from_slice(b"icmp");
        assert_eq!(skip_ip_header(&packet), Some(&b"icmp"[..]));
        let mut options = vec![0x46u8; 24];
        options.extend_from_slice(b"x");
        assert_eq!(skip_ip_header(&options), Some(&b"x"[..]));
        assert_eq!(skip_ip_header(&[0x65; 30]), None);
        assert_eq!(skip_ip_header(&[0x4f; 10]), None);
        assert_eq!(skip_ip_header(&[]), None);
    }
}
