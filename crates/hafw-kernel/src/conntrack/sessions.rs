//! Session starts and ends for the traffic log: ctnetlink's new and
//! destroy groups only (no updates: a busy table sends many), each destroy
//! with its [`Accounting`]. Lossy like every event group (trap 4): an
//! overrun is reported as [`Session::Overrun`] and counted by the caller;
//! nothing is re-dumped, since an ended session is gone from the table.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use netlink_sys::Socket;

use super::codec;
use super::entry::Entry;
use super::socket::{open_socket, recv};
use crate::error::in_ns;
use crate::{Error, Result};

/// Packets and bytes of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
}

/// What a destroyed entry counted (`nf_conntrack_acct`) and when it began
/// and ended (`nf_conntrack_timestamp`, wall-clock nanoseconds).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Accounting {
    pub orig: Option<Counters>,
    pub reply: Option<Counters>,
    pub start_ns: Option<u64>,
    pub stop_ns: Option<u64>,
}

/// One event of [`SessionEvents`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Session {
    /// A new entry (its first packet passed the ruleset).
    New(Entry),
    /// An entry left the table.
    End(Entry, Accounting),
    /// The kernel dropped events (ENOBUFS or an overrun message).
    Overrun,
}

const GROUP_NEW: u32 = 1;
const GROUP_DESTROY: u32 = 3;
const RECV_BYTES: usize = 64 << 10;

/// A subscription to new and destroy events of one namespace.
pub struct SessionEvents {
    sock: Socket,
    object: String,
    rx: Vec<u8>,
    queue: VecDeque<Session>,
    malformed: u64,
}

impl SessionEvents {
    /// Subscribes in namespace `ns` (`None`: the calling thread's), with an
    /// 8 MiB receive buffer.
    pub fn open(ns: Option<&str>) -> Result<SessionEvents> {
        let object = in_ns("conntrack session events", ns);
        let sock = open_socket(ns, &[GROUP_NEW, GROUP_DESTROY], &object)?;
        Ok(SessionEvents {
            sock,
            object,
            rx: vec![0; RECV_BYTES],
            queue: VecDeque::new(),
            malformed: 0,
        })
    }

    /// Messages that did not decode (skipped, counted).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    pub fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The next event, waiting at most `timeout`; `Ok(None)` when the time
    /// is up.
    pub fn recv(&mut self, timeout: Duration) -> Result<Option<Session>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc =
                unsafe { libc::poll(&mut pfd, 1, left.as_millis().min(i32::MAX as u128) as i32) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io("wait for", self.object.clone(), e));
            }
            if rc == 0 {
                return Ok(None);
            }
            match recv(self.sock.as_raw_fd(), &mut self.rx, libc::MSG_DONTWAIT) {
                Ok(n) => {
                    let (q, bad) = (&mut self.queue, &mut self.malformed);
                    take_into(&self.rx[..n], q, bad);
                }
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(Some(Session::Overrun))
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
}

/// Decodes one datagram into `queue`, counting what does not decode
/// (non-IPv4 entries included) in `malformed`. Pure, for the tests.
pub fn take_into(datagram: &[u8], queue: &mut VecDeque<Session>, malformed: &mut u64) {
    for m in codec::messages(datagram) {
        let Ok(m) = m else {
            *malformed += 1;
            continue;
        };
        if m.ty == codec::NLMSG_OVERRUN {
            queue.push_back(Session::Overrun);
            continue;
        }
        let end = m.ty == codec::IPCTNL_MSG_CT_DELETE;
        if m.ty != codec::IPCTNL_MSG_CT_NEW && !end {
            continue;
        }
        let decoded = codec::decode_entry(m.payload).and_then(|e| {
            Ok(match end {
                true => Session::End(e, codec::decode_accounting(m.payload)?),
                false => Session::New(e),
            })
        });
        match decoded {
            Ok(s) => queue.push_back(s),
            Err(_) => *malformed += 1,
        }
    }
}

/// An event message as the kernel sends it (the reply tuple translated),
/// for the tests of the readers.
#[cfg(test)]
fn encode_event(e: &Entry, acct: Option<&Accounting>) -> Vec<u8> {
    let mut buf = Vec::new();
    let ty = match acct {
        Some(_) => codec::IPCTNL_MSG_CT_DELETE,
        None => codec::IPCTNL_MSG_CT_NEW,
    };
    let start = codec::begin_msg(&mut buf, ty, codec::NLM_F_CREATE | codec::NLM_F_EXCL, 0);
    codec::put_tuple(&mut buf, codec::CTA_TUPLE_ORIG, &e.orig);
    codec::put_tuple(&mut buf, codec::CTA_TUPLE_REPLY, &e.reply);
    codec::put(&mut buf, codec::CTA_STATUS, &e.status.to_be_bytes());
    if let Some(id) = e.id {
        codec::put(&mut buf, codec::CTA_ID, &id.to_be_bytes());
    }
    if let Some(a) = acct {
        codec::put_accounting(&mut buf, a);
    }
    codec::end_msg(&mut buf, start);
    buf
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conntrack::Tuple;
    use std::net::Ipv4Addr;

    fn dnat() -> Entry {
        let client = Ipv4Addr::new(198, 51, 100, 20);
        Entry {
            orig: Tuple::tcp(client, 40000, Ipv4Addr::new(10, 0, 1, 100), 80),
            reply: Tuple::tcp(Ipv4Addr::new(10, 0, 10, 10), 80, client, 40000),
            status: 0x18e,
            timeout: 0,
            mark: 0,
            zone: 0,
            id: Some(7),
            tcp: None,
        }
    }

    fn acct() -> Accounting {
        Accounting {
            orig: Some(Counters {
                packets: 5,
                bytes: 300,
            }),
            reply: Some(Counters {
                packets: 4,
                bytes: 100_000,
            }),
            start_ns: Some(1_000_000_000),
            stop_ns: Some(3_500_000_000),
        }
    }

    #[test]
    fn new_and_destroy_events_decode_with_their_accounting() {
        let mut dgram = encode_event(&dnat(), None);
        dgram.extend(encode_event(&dnat(), Some(&acct())));
        let (mut q, mut bad) = (VecDeque::new(), 0);
        take_into(&dgram, &mut q, &mut bad);
        assert_eq!(bad, 0);
        assert_eq!(q.pop_front(), Some(Session::New(dnat())));
        assert_eq!(q.pop_front(), Some(Session::End(dnat(), acct())));
    }

    /// Truncated and mutated datagrams decode or are counted, never a panic.
    #[test]
    fn mutated_events_are_counted_never_a_panic() {
        let mut dgram = encode_event(&dnat(), None);
        dgram.extend(encode_event(&dnat(), Some(&acct())));
        let mut rng = hafw_testkit::Rng::new(3);
        let (mut ok, mut malformed) = (0usize, 0u64);
        for cut in 0..dgram.len() {
            let (mut q, mut bad) = (VecDeque::new(), 0);
            take_into(&dgram[..cut], &mut q, &mut bad);
            ok += q.len();
            malformed += bad;
        }
        for _ in 0..20_000 {
            let m = hafw_testkit::mutate::mutate(&mut rng, &dgram, 16);
            let (mut q, mut bad) = (VecDeque::new(), 0);
            take_into(&m, &mut q, &mut bad);
            ok += q.len();
            malformed += bad;
        }
        assert!(ok > 0 && malformed > 0, "{ok} {malformed}");
    }
}
