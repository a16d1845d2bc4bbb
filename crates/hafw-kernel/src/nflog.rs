//! NFLOG (`nfnetlink_log`): the packets nftables `log group N` statements
//! hand to user space, each with its rule's prefix, its interfaces and its
//! first bytes (the traffic log, `docs/logs.md`).
//!
//! [`Nflog::open`] binds one group in one namespace with a small copy range
//! (headers only) and per-instance sequence numbers, so a gap in them is a
//! count of what the kernel dropped before the socket (its queue full);
//! ENOBUFS on the socket is [`Logged::Overrun`]. [`decode`] turns one
//! message into a [`Packet`] or a [`Malformed`] value, never a panic.
//!
//! Written by hand like the ctnetlink codec (`conntrack::codec`): the layout
//! is small and fixed (`uapi/linux/netfilter/nfnetlink_log.h`), and the
//! bytes we do not know stay readable for the tests.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use netlink_sys::Socket;

use crate::conntrack::codec::{self as nl, align4, attrs, bad, Malformed};
use crate::conntrack::socket::{open_socket, recv, send};
use crate::error::in_ns;
use crate::{Error, Result};

const NFNL_SUBSYS_ULOG: u16 = 4;
const NFULNL_MSG_PACKET: u16 = NFNL_SUBSYS_ULOG << 8;
const NFULNL_MSG_CONFIG: u16 = NFNL_SUBSYS_ULOG << 8 | 1;
// enum nfulnl_attr_config
const NFULA_CFG_CMD: u16 = 1;
const NFULA_CFG_MODE: u16 = 2;
const NFULA_CFG_TIMEOUT: u16 = 4;
const NFULA_CFG_QTHRESH: u16 = 5;
const NFULA_CFG_FLAGS: u16 = 6;
const NFULNL_CFG_CMD_BIND: u8 = 1;
const NFULNL_COPY_PACKET: u8 = 2;
const NFULNL_CFG_F_SEQ: u16 = 1;
// enum nfulnl_attr_type
const NFULA_IFINDEX_INDEV: u16 = 4;
const NFULA_IFINDEX_OUTDEV: u16 = 5;
const NFULA_PAYLOAD: u16 = 9;
const NFULA_PREFIX: u16 = 10;
const NFULA_SEQ: u16 = 12;

/// Bytes of each packet copied to user space by default: an IPv4 header
/// with options (60) and the ports that follow; the rest is not logged.
pub const COPY_RANGE: u32 = 80;

/// How long the kernel may hold logged packets before it sends them, in
/// hundredths of a second, and how many it batches into one datagram.
const FLUSH_CS: u32 = 5;
const QTHRESH: u32 = 64;
const RECV_BYTES: usize = 64 << 10;

/// One logged packet, as the kernel described it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Packet {
    /// The rule's `log prefix` (without the kernel's NUL).
    pub prefix: String,
    /// Input and output interface indexes (`None`: not known at the hook).
    pub indev: Option<u32>,
    pub outdev: Option<u32>,
    /// The packet's first bytes from its network header.
    pub payload: Vec<u8>,
    /// The group's sequence number (one per logged packet).
    pub seq: Option<u32>,
}

/// What [`Nflog::recv`] returns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Logged {
    Packet(Packet),
    /// The socket's buffer overflowed (ENOBUFS): packets were lost; the
    /// sequence gap after it says how many.
    Overrun,
}

/// Decodes the payload (after the netlink header) of an
/// `NFULNL_MSG_PACKET` message.
pub fn decode(payload: &[u8]) -> Result<Packet, Malformed> {
    if payload.len() < 4 {
        return bad("nfgenmsg header cut short");
    }
    let mut p = Packet {
        prefix: String::new(),
        indev: None,
        outdev: None,
        payload: Vec::new(),
        seq: None,
    };
    let be32 = |v: &[u8], what: &str| -> Result<u32, Malformed> {
        match <[u8; 4]>::try_from(v.get(..4).unwrap_or(&[])) {
            Ok(b) => Ok(u32::from_be_bytes(b)),
            Err(_) => bad(format!("{what}: {} bytes, want 4", v.len())),
        }
    };
    for a in attrs(&payload[4..]) {
        match a? {
            (NFULA_IFINDEX_INDEV, v) => p.indev = Some(be32(v, "NFULA_IFINDEX_INDEV")?),
            (NFULA_IFINDEX_OUTDEV, v) => p.outdev = Some(be32(v, "NFULA_IFINDEX_OUTDEV")?),
            (NFULA_SEQ, v) => p.seq = Some(be32(v, "NFULA_SEQ")?),
            (NFULA_PAYLOAD, v) => p.payload = v.to_vec(),
            (NFULA_PREFIX, v) => {
                let text = v.split(|b| *b == 0).next().unwrap_or(&[]);
                match std::str::from_utf8(text) {
                    Ok(s) => p.prefix = s.to_string(),
                    Err(_) => return bad("NFULA_PREFIX is not UTF-8"),
                }
            }
            _ => {}
        }
    }
    Ok(p)
}

/// One bound NFLOG group in one namespace.
pub struct Nflog {
    sock: Socket,
    object: String,
    rx: Vec<u8>,
    queue: VecDeque<Logged>,
    malformed: u64,
}

impl Nflog {
    /// Binds `group` in namespace `ns` (`None`: the calling thread's),
    /// copying `copy_range` bytes of each packet. EBUSY: another process
    /// (another hafw, ulogd) holds the group.
    pub fn open(ns: Option<&str>, group: u16, copy_range: u32) -> Result<Nflog> {
        let object = in_ns(format!("nflog group {group}"), ns);
        let sock = open_socket(ns, &[], &object)?;
        let mut log = Nflog {
            sock,
            object,
            rx: vec![0; RECV_BYTES],
            queue: VecDeque::new(),
            malformed: 0,
        };
        // Bind first, then configure the bound instance (older kernels
        // apply attributes only to an instance that already exists).
        log.config(group, 1, |b| put(b, NFULA_CFG_CMD, &[NFULNL_CFG_CMD_BIND]))?;
        log.config(group, 2, |b| {
            let mut mode = copy_range.to_be_bytes().to_vec();
            mode.extend_from_slice(&[NFULNL_COPY_PACKET, 0]);
            put(b, NFULA_CFG_MODE, &mode);
            put(b, NFULA_CFG_TIMEOUT, &FLUSH_CS.to_be_bytes());
            put(b, NFULA_CFG_QTHRESH, &QTHRESH.to_be_bytes());
            put(b, NFULA_CFG_FLAGS, &NFULNL_CFG_F_SEQ.to_be_bytes());
        })?;
        Ok(log)
    }

    fn config(&mut self, group: u16, seq: u32, body: impl FnOnce(&mut Vec<u8>)) -> Result<()> {
        let mut buf = Vec::with_capacity(64);
        buf.extend_from_slice(&0u32.to_ne_bytes());
        buf.extend_from_slice(&NFULNL_MSG_CONFIG.to_ne_bytes());
        buf.extend_from_slice(&(nl::NLM_F_REQUEST | nl::NLM_F_ACK).to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes());
        // nfgenmsg: AF_UNSPEC, version 0, the group as res_id (big endian).
        buf.extend_from_slice(&[0, 0]);
        buf.extend_from_slice(&group.to_be_bytes());
        body(&mut buf);
        let len = buf.len() as u32;
        buf[..4].copy_from_slice(&len.to_ne_bytes());
        send(self.sock.as_raw_fd(), &buf)
            .map_err(|e| Error::io("configure", self.object.clone(), e))?;
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if !wait(self.sock.as_raw_fd(), deadline) {
                return Err(Error::io(
                    "configure",
                    self.object.clone(),
                    io::Error::from_raw_os_error(libc::ETIMEDOUT),
                ));
            }
            let n = match recv(self.sock.as_raw_fd(), &mut self.rx, libc::MSG_DONTWAIT) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) => return Err(Error::io("configure", self.object.clone(), e)),
            };
            for m in nl::messages(&self.rx[..n]) {
                let Ok(m) = m else { continue };
                if m.ty == nl::NLMSG_ERROR && m.seq == seq {
                    return match nl::error_code(m.payload) {
                        Ok(0) => Ok(()),
                        Ok(errno) => Err(Error::Netlink {
                            op: "configure",
                            object: self.object.clone(),
                            errno: Some(errno),
                            message: io::Error::from_raw_os_error(errno).to_string(),
                        }),
                        Err(e) => Err(Error::Netlink {
                            op: "configure",
                            object: self.object.clone(),
                            errno: None,
                            message: e.to_string(),
                        }),
                    };
                }
            }
        }
    }

    /// Messages that did not decode (skipped, counted).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The next logged packet, waiting at most `timeout` (`None`: forever);
    /// `Ok(None)` when the time is up.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<Logged>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(p) = self.queue.pop_front() {
                return Ok(Some(p));
            }
            let ready = match deadline {
                Some(d) => wait(self.sock.as_raw_fd(), d),
                None => wait(
                    self.sock.as_raw_fd(),
                    Instant::now() + Duration::from_secs(3600),
                ),
            };
            if !ready {
                if deadline.is_some() {
                    return Ok(None);
                }
                continue;
            }
            match recv(self.sock.as_raw_fd(), &mut self.rx, libc::MSG_DONTWAIT) {
                Ok(n) => self.take(n),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(Some(Logged::Overrun))
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io("receive", self.object.clone(), e)),
            }
        }
    }

    fn take(&mut self, len: usize) {
        let (queue, malformed) = (&mut self.queue, &mut self.malformed);
        take_into(&self.rx[..len], queue, malformed);
    }
}

/// Decodes one datagram's messages into `queue`; what does not decode is
/// counted in `malformed`. Pure, for the tests.
pub fn take_into(datagram: &[u8], queue: &mut VecDeque<Logged>, malformed: &mut u64) {
    for m in nl::messages(datagram) {
        let Ok(m) = m else {
            *malformed += 1;
            continue;
        };
        if m.ty == nl::NLMSG_OVERRUN {
            queue.push_back(Logged::Overrun);
            continue;
        }
        if m.ty != NFULNL_MSG_PACKET {
            continue;
        }
        match decode(m.payload) {
            Ok(p) => queue.push_back(Logged::Packet(p)),
            Err(_) => *malformed += 1,
        }
    }
}

fn put(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + align4(len) - len, 0);
}

/// Waits for the socket to be readable until `deadline`; false when the
/// time is up.
fn wait(fd: RawFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut pfd = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc > 0 {
            return true;
        }
        if rc == 0 {
            return false;
        }
        if io::Error::last_os_error().kind() != io::ErrorKind::Interrupted {
            return false;
        }
    }
}

/// A packet message as the kernel builds it, for the tests of the readers.
pub fn encode_packet(p: &Packet, group: u16) -> Vec<u8> {
    let mut buf = Vec::new();
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&NFULNL_MSG_PACKET.to_ne_bytes());
    buf.extend_from_slice(&0u16.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes());
    buf.extend_from_slice(&[2, 0]);
    buf.extend_from_slice(&group.to_be_bytes());
    if let Some(i) = p.indev {
        put(&mut buf, NFULA_IFINDEX_INDEV, &i.to_be_bytes());
    }
    if let Some(o) = p.outdev {
        put(&mut buf, NFULA_IFINDEX_OUTDEV, &o.to_be_bytes());
    }
    put(&mut buf, NFULA_PAYLOAD, &p.payload);
    let mut prefix = p.prefix.as_bytes().to_vec();
    prefix.push(0);
    put(&mut buf, NFULA_PREFIX, &prefix);
    if let Some(s) = p.seq {
        put(&mut buf, NFULA_SEQ, &s.to_be_bytes());
    }
    let len = buf.len() as u32;
    buf[..4].copy_from_slice(&len.to_ne_bytes());
    buf
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet() -> Packet {
        Packet {
            prefix: "default deny untrust -> trust".into(),
            indev: Some(3),
            outdev: Some(4),
            payload: vec![
                0x45, 0, 0, 40, 1, 2, 3, 4, 64, 6, 0, 0, 203, 0, 113, 7, 10, 0, 1, 10, 0x9c, 0x40,
                0, 22,
            ],
            seq: Some(9),
        }
    }

    #[test]
    fn a_packet_message_decodes_to_its_fields() {
        let bytes = encode_packet(&packet(), 17);
        let (mut q, mut bad) = (VecDeque::new(), 0);
        take_into(&bytes, &mut q, &mut bad);
        assert_eq!(bad, 0);
        assert_eq!(q.pop_front(), Some(Logged::Packet(packet())));
    }

    /// Every truncation and byte mutation of a datagram decodes or is
    /// counted: never a panic.
    #[test]
    fn mutated_datagrams_are_counted_never_a_panic() {
        let mut two = encode_packet(&packet(), 17);
        two.extend(encode_packet(&packet(), 17));
        let mut rng = hafw_testkit::Rng::new(17);
        let (mut decoded, mut malformed) = (0usize, 0u64);
        for cut in 0..two.len() {
            let (mut q, mut bad) = (VecDeque::new(), 0);
            take_into(&two[..cut], &mut q, &mut bad);
            decoded += q.len();
            malformed += bad;
        }
        for _ in 0..20_000 {
            let m = hafw_testkit::mutate::mutate(&mut rng, &two, 16);
            let (mut q, mut bad) = (VecDeque::new(), 0);
            take_into(&m, &mut q, &mut bad);
            decoded += q.len();
            malformed += bad;
        }
        assert!(malformed > 0 && decoded > 0, "{malformed} {decoded}");
    }
}
