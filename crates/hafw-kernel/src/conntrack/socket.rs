//! ctnetlink sockets: [`Conntrack`] for requests (dump, create, update,
//! delete, flush, batches) and [`Events`] for the multicast event groups.
//! Both are blocking; a socket is created inside its namespace (on a thread
//! that entered it, see [`crate::in_netns`]) and can then be used from any
//! thread. For tokio, wrap [`Events::as_raw_fd`] in `AsyncFd` or run
//! [`Events::recv`] on a thread of its own.

use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use netlink_sys::{protocols::NETLINK_NETFILTER, Socket};

use super::codec::{self, Write};
use super::entry::{Entry, Tuple};
use crate::error::in_ns;
use crate::{in_netns, Error, Result};

/// Receive buffer asked for on every ctnetlink socket: events are lossy and
/// a batch's errors must not be dropped (linux-kernel-notes trap 4).
pub const RCVBUF: usize = 8 << 20;

/// Largest `sendmsg` a batch makes. Far below the default `wmem` limit
/// (212992), big enough that 10k creates take ~30 system calls.
const BATCH_BYTES: usize = 64 << 10;

/// Datagram buffer: a dump part is at most 32 KiB (the kernel caps it at
/// `max_recvmsg_len`), events are one message each.
const RECV_BYTES: usize = 64 << 10;

/// How long a request waits for each answer from the kernel (a dump, for
/// each of its parts): a kernel that does not answer must not hang the
/// caller (the sync thread) for good. Each timeout is counted
/// ([`Conntrack::timeouts`]) and returned as an error.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

const EAGAIN: i32 = libc::EAGAIN;
const EEXIST: i32 = libc::EEXIST;
const ENOENT: i32 = libc::ENOENT;

/// A ctnetlink socket for requests, in one namespace.
pub struct Conntrack {
    sock: Socket,
    /// "conntrack table in netns X", for errors.
    object: String,
    seq: u32,
    inject_mark: u32,
    rx: Vec<u8>,
    malformed: u64,
    timeout: Duration,
    timeouts: u64,
}

/// What [`Conntrack::create_batch`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchReport {
    /// Entries created.
    pub created: usize,
    /// Entries that existed and were updated instead (their NAT is kept:
    /// the kernel cannot change an existing entry's NAT).
    pub updated: usize,
    /// Entries the kernel refused: `(index in the input, errno)`.
    pub failed: Vec<(usize, i32)>,
    /// `sendmsg` calls made.
    pub sends: usize,
}

/// One conntrack event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new entry (`IPCTNL_MSG_CT_NEW` with `NLM_F_CREATE|NLM_F_EXCL`).
    New(Entry),
    /// A change of state, status, mark or timeout of an entry.
    Update(Entry),
    /// The entry is gone (expired, flushed, deleted). `timeout` is 0 and
    /// TCP state may be missing.
    Destroy(Entry),
    /// The kernel dropped events (ENOBUFS): the consumer's view is stale and
    /// it must dump the table again.
    Overrun,
}

impl Event {
    /// The entry the event is about, unless it is an [`Event::Overrun`].
    pub fn entry(&self) -> Option<&Entry> {
        match self {
            Event::New(e) | Event::Update(e) | Event::Destroy(e) => Some(e),
            Event::Overrun => None,
        }
    }
}

/// `NFNLGRP_CONNTRACK_*`.
const GROUP_NEW: u32 = 1;
const GROUP_UPDATE: u32 = 2;
const GROUP_DESTROY: u32 = 3;

pub(crate) fn open_socket(ns: Option<&str>, groups: &[u32], object: &str) -> Result<Socket> {
    let sock = in_netns(ns, || -> io::Result<Socket> {
        let mut sock = Socket::new(NETLINK_NETFILTER)?;
        sock.bind_auto()?;
        for g in groups {
            sock.add_membership(*g)?;
        }
        Ok(sock)
    })?
    .map_err(|e| Error::io("open ctnetlink socket", object, e))?;
    grow_rcvbuf(&sock).map_err(|e| Error::io("set ctnetlink receive buffer", object, e))?;
    Ok(sock)
}

/// `SO_RCVBUFFORCE` passes `rmem_max` (root only); without the privilege,
/// `SO_RCVBUF` gives what the limit allows.
pub(crate) fn grow_rcvbuf(sock: &Socket) -> io::Result<()> {
    let size = RCVBUF as libc::c_int;
    for opt in [libc::SO_RCVBUFFORCE, libc::SO_RCVBUF] {
        // SAFETY: a c_int option value of the right length on an open socket.
        let rc = unsafe {
            libc::setsockopt(
                sock.as_raw_fd(),
                libc::SOL_SOCKET,
                opt,
                (&size as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc == 0 {
            return Ok(());
        }
    }
    Err(io::Error::last_os_error())
}

/// Reads one datagram into `buf` (kept at [`RECV_BYTES`]) and returns its
/// length. A datagram larger than the buffer would lose messages silently,
/// so it is an error.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags | libc::MSG_TRUNC,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    let n = n as usize;
    if n > buf.len() {
        return Err(io::Error::other(format!(
            "netlink datagram of {n} bytes truncated to {}",
            buf.len()
        )));
    }
    Ok(n)
}

pub(crate) fn send(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: `buf` is valid for `buf.len()` bytes.
    let n = unsafe { libc::send(fd, buf.as_ptr().cast(), buf.len(), 0) };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    if n as usize != buf.len() {
        return Err(io::Error::other("short netlink send"));
    }
    Ok(())
}

impl Conntrack {
    /// A request socket in namespace `ns` (`None`: the calling thread's).
    pub fn open(ns: Option<&str>) -> Result<Conntrack> {
        let object = in_ns("conntrack table", ns);
        let sock = open_socket(ns, &[], &object)?;
        let mut ct = Conntrack {
            sock,
            object,
            seq: 0,
            inject_mark: 0,
            rx: vec![0; RECV_BYTES],
            malformed: 0,
            timeout: REQUEST_TIMEOUT,
            timeouts: 0,
        };
        ct.set_request_timeout(REQUEST_TIMEOUT)?;
        Ok(ct)
    }

    /// How long each answer is waited for (default [`REQUEST_TIMEOUT`]).
    pub fn set_request_timeout(&mut self, timeout: Duration) -> Result<()> {
        let tv = libc::timeval {
            tv_sec: timeout.as_secs() as libc::time_t,
            tv_usec: timeout.subsec_micros() as libc::suseconds_t,
        };
        // SAFETY: a timeval option value of the right length on an open socket.
        let rc = unsafe {
            libc::setsockopt(
                self.sock.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_RCVTIMEO,
                (&tv as *const libc::timeval).cast(),
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            let e = io::Error::last_os_error();
            return Err(Error::io("set ctnetlink receive timeout", &self.object, e));
        }
        self.timeout = timeout;
        Ok(())
    }

    /// Requests the kernel did not answer in time, since the socket opened.
    pub fn timeouts(&self) -> u64 {
        self.timeouts
    }

    /// The next answer datagram; a timeout is counted and named.
    fn answer(&mut self) -> io::Result<usize> {
        match recv(self.sock.as_raw_fd(), &mut self.rx, 0) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                self.timeouts += 1;
                Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    format!("the kernel did not answer within {:?}", self.timeout),
                ))
            }
            r => r,
        }
    }

    /// Mark bits ORed into `CTA_MARK` of every entry this socket creates or
    /// updates, so that [`Events::ignore_mark`] with the same bits on this
    /// node drops the events they cause and the two nodes do not echo each
    /// other's updates. Choose a bit the ruleset does not use; after a
    /// promotion the entries still carry it, so the new active must stop
    /// filtering on it (or clear it) to sync them back to a returning peer.
    pub fn set_inject_mark(&mut self, bits: u32) {
        self.inject_mark = bits;
    }

    /// The bits set by [`Conntrack::set_inject_mark`].
    pub fn inject_mark(&self) -> u32 {
        self.inject_mark
    }

    /// Dump items that did not decode (skipped), since the socket opened.
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn netlink_error(&self, op: &'static str, errno: i32, detail: &str) -> Error {
        Error::Netlink {
            op,
            object: format!("{}{detail}", self.object),
            errno: Some(errno),
            message: io::Error::from_raw_os_error(errno).to_string(),
        }
    }

    /// Every IPv4 entry of the table (all zones). Items that do not decode
    /// are skipped and counted in [`Conntrack::malformed`].
    pub fn dump(&mut self) -> Result<Vec<Entry>> {
        let seq = self.next_seq();
        let mut req = Vec::with_capacity(32);
        codec::encode_dump(&mut req, seq);
        send(self.sock.as_raw_fd(), &req)
            .map_err(|e| Error::io("send conntrack dump", self.object.clone(), e))?;
        let mut out = Vec::new();
        loop {
            let n = self
                .answer()
                .map_err(|e| Error::io("receive conntrack dump", self.object.clone(), e))?;
            for m in codec::messages(&self.rx[..n]) {
                let Ok(m) = m else {
                    self.malformed += 1;
                    continue;
                };
                if m.seq != seq {
                    continue;
                }
                match m.ty {
                    codec::NLMSG_DONE => return Ok(out),
                    codec::NLMSG_ERROR => {
                        let code = codec::error_code(m.payload).unwrap_or(libc::EPROTO);
                        if code != 0 {
                            return Err(self.netlink_error("dump conntrack", code, ""));
                        }
                    }
                    codec::IPCTNL_MSG_CT_NEW => match codec::decode_entry(m.payload) {
                        Ok(e) => out.push(e),
                        Err(_) => self.malformed += 1,
                    },
                    _ => {}
                }
            }
        }
    }

    /// Sends one request and waits for its acknowledgement; `Err(errno)`
    /// when the kernel refused it.
    fn request(&mut self, build: impl FnOnce(&mut Vec<u8>, u32)) -> Result<(), i32> {
        let seq = self.next_seq();
        let mut req = Vec::with_capacity(256);
        build(&mut req, seq);
        send(self.sock.as_raw_fd(), &req).map_err(|e| e.raw_os_error().unwrap_or(libc::EIO))?;
        self.wait_ack(seq)
    }

    /// Reads until the `NLMSG_ERROR` answering `seq` (0 = acknowledged).
    fn wait_ack(&mut self, seq: u32) -> Result<(), i32> {
        loop {
            let n = self.answer().map_err(|e| match e.kind() {
                io::ErrorKind::TimedOut => libc::ETIMEDOUT,
                _ => e.raw_os_error().unwrap_or(libc::EIO),
            })?;
            for m in codec::messages(&self.rx[..n]).flatten() {
                if m.seq == seq && m.ty == codec::NLMSG_ERROR {
                    return match codec::error_code(m.payload) {
                        Ok(0) => Ok(()),
                        Ok(code) => Err(code),
                        Err(_) => Err(libc::EPROTO),
                    };
                }
            }
        }
    }

    fn write(&mut self, e: &Entry, write: Write) -> Result<(), i32> {
        let mark = self.inject_mark;
        self.request(|buf, seq| codec::encode_write(buf, e, write, seq, true, mark))
    }

    /// Installs `e`: `IPS_CONFIRMED` added, NAT rebuilt from the translated
    /// reply tuple as `CTA_NAT_DST`/`CTA_NAT_SRC`, TCP state, window scale
    /// and flags from `e.tcp`, mark ORed with the inject mark. EAGAIN (NAT
    /// module loading) is retried once; an existing entry is updated instead
    /// (without NAT: the kernel cannot change it on a live entry).
    pub fn create(&mut self, e: &Entry) -> Result<()> {
        let mut result = self.write(e, Write::Create);
        if result == Err(EAGAIN) {
            result = self.write(e, Write::Create);
        }
        match result {
            Ok(()) => Ok(()),
            Err(EEXIST) => self.update(e),
            Err(errno) => {
                Err(self.netlink_error("create conntrack entry", errno, &format!(": {}", e.orig)))
            }
        }
    }

    /// Changes the existing entry with `e.orig`: status bits (SEEN_REPLY and
    /// ASSURED can only be set, never cleared: clearing is EBUSY), timeout,
    /// mark, TCP state. ENOENT when there is no such entry.
    pub fn update(&mut self, e: &Entry) -> Result<()> {
        self.write(e, Write::Update).map_err(|errno| {
            self.netlink_error("update conntrack entry", errno, &format!(": {}", e.orig))
        })
    }

    /// Deletes the entry whose original tuple is `orig` in `zone` (0 is the
    /// default zone). A missing entry is not an error.
    pub fn delete(&mut self, orig: &Tuple, zone: u16) -> Result<()> {
        match self.request(|buf, seq| codec::encode_delete(buf, orig, zone, seq)) {
            Ok(()) | Err(ENOENT) => Ok(()),
            Err(errno) => {
                Err(self.netlink_error("delete conntrack entry", errno, &format!(": {orig}")))
            }
        }
    }

    /// Deletes every IPv4 entry of the namespace.
    pub fn flush(&mut self) -> Result<()> {
        self.request(codec::encode_flush)
            .map_err(|errno| self.netlink_error("flush conntrack table", errno, ""))
    }

    /// Installs many entries in few system calls (create or update each):
    /// requests are packed into 64 KiB `sendmsg`s and only the last of each
    /// asks for an acknowledgement (the kernel handles a datagram
    /// synchronously and in order, so that ack comes after every error of
    /// the datagram). Updates go first and only ENOENT ones are created: a
    /// create that meets an existing entry makes the kernel allocate a new
    /// one and set up its NAT before answering EEXIST, while an update of a
    /// missing one is a bare lookup. EAGAIN is retried once; what still
    /// fails is listed in the report. `Err` only when the socket itself
    /// fails.
    pub fn create_batch(&mut self, entries: &[Entry]) -> Result<BatchReport> {
        let mut report = BatchReport::default();
        let all: Vec<usize> = (0..entries.len()).collect();
        let mut failed = Vec::new();
        let mut missing = Vec::new();
        for (i, errno) in self.send_batch(entries, &all, Write::Update, &mut report)? {
            match errno {
                ENOENT => missing.push(i),
                _ => failed.push((i, errno)),
            }
        }
        report.updated = entries.len() - missing.len() - failed.len();
        let (mut exists, mut retry, mut create_failed) = (Vec::new(), Vec::new(), Vec::new());
        for (i, errno) in self.send_batch(entries, &missing, Write::Create, &mut report)? {
            match errno {
                EEXIST => exists.push(i),
                EAGAIN => retry.push(i),
                _ => create_failed.push((i, errno)),
            }
        }
        for (i, errno) in self.send_batch(entries, &retry, Write::Create, &mut report)? {
            match errno {
                EEXIST => exists.push(i),
                _ => create_failed.push((i, errno)),
            }
        }
        report.created = missing.len() - exists.len() - create_failed.len();
        // Created by someone else between our update and our create.
        let late = self.send_batch(entries, &exists, Write::Update, &mut report)?;
        report.updated += exists.len() - late.len();
        failed.extend(create_failed);
        failed.extend(late);
        failed.sort_unstable();
        report.failed = failed;
        Ok(report)
    }

    /// Deletes many entries (by original tuple, default zone) in few
    /// system calls, packed as [`Conntrack::create_batch`] packs its
    /// requests. A missing entry is not an error; what else fails is
    /// listed with its errno.
    pub fn delete_batch(&mut self, origs: &[Tuple]) -> Result<Vec<(usize, i32)>> {
        let all: Vec<usize> = (0..origs.len()).collect();
        let mut report = BatchReport::default();
        let refused = self.send_requests(&all, &mut report, |buf, i, seq, last| {
            codec::encode_delete_acked(buf, &origs[i], 0, seq, last)
        })?;
        Ok(refused.into_iter().filter(|(_, e)| *e != ENOENT).collect())
    }

    /// Sends `which` entries as `write` requests; returns the refused ones
    /// with their errno.
    fn send_batch(
        &mut self,
        entries: &[Entry],
        which: &[usize],
        write: Write,
        report: &mut BatchReport,
    ) -> Result<Vec<(usize, i32)>> {
        let mark = self.inject_mark;
        self.send_requests(which, report, |buf, i, seq, last| {
            codec::encode_write(buf, &entries[i], write, seq, last, mark)
        })
    }

    /// Sends one request per index of `which`, `encode(buf, index, seq,
    /// last)` appending each; returns the refused ones with their errno.
    fn send_requests(
        &mut self,
        which: &[usize],
        report: &mut BatchReport,
        encode: impl Fn(&mut Vec<u8>, usize, u32, bool),
    ) -> Result<Vec<(usize, i32)>> {
        let mut refused = Vec::new();
        let mut buf = Vec::with_capacity(BATCH_BYTES + 1024);
        let mut pos = 0;
        while pos < which.len() {
            buf.clear();
            let base = self.seq.wrapping_add(1);
            let mut n = 0;
            // A request is under 512 bytes, so the datagram stays under
            // BATCH_BYTES; the last request of a datagram asks for the ack.
            loop {
                let i = which[pos + n];
                let seq = self.next_seq();
                let last = pos + n + 1 == which.len() || buf.len() >= BATCH_BYTES - 1024;
                encode(&mut buf, i, seq, last);
                n += 1;
                if last {
                    break;
                }
            }
            let last_seq = self.seq;
            send(self.sock.as_raw_fd(), &buf)
                .map_err(|e| Error::io("send conntrack batch", self.object.clone(), e))?;
            report.sends += 1;
            // Collect errors until the final message's answer (ack or error).
            'answers: loop {
                let len = self.answer().map_err(|e| {
                    Error::io("receive conntrack batch answers", self.object.clone(), e)
                })?;
                for m in codec::messages(&self.rx[..len]).flatten() {
                    if m.ty != codec::NLMSG_ERROR {
                        continue;
                    }
                    let offset = m.seq.wrapping_sub(base) as usize;
                    if offset >= n {
                        continue; // an answer to an earlier request
                    }
                    let code = codec::error_code(m.payload).unwrap_or(libc::EPROTO);
                    if code != 0 {
                        refused.push((which[pos + offset], code));
                    }
                    if m.seq == last_seq {
                        break 'answers;
                    }
                }
            }
            pos += n;
        }
        Ok(refused)
    }
}

/// A subscription to the conntrack event groups (new, update, destroy) of
/// one namespace.
pub struct Events {
    sock: Socket,
    object: String,
    rx: Vec<u8>,
    queue: VecDeque<Event>,
    ignore_mark: u32,
    ignored: u64,
    malformed: u64,
}

impl Events {
    /// Subscribes in namespace `ns` (`None`: the calling thread's), with an
    /// 8 MiB receive buffer.
    pub fn open(ns: Option<&str>) -> Result<Events> {
        let object = in_ns("conntrack events", ns);
        let sock = open_socket(ns, &[GROUP_NEW, GROUP_UPDATE, GROUP_DESTROY], &object)?;
        Ok(Events {
            sock,
            object,
            rx: vec![0; RECV_BYTES],
            queue: VecDeque::new(),
            ignore_mark: 0,
            ignored: 0,
            malformed: 0,
        })
    }

    /// Drops events of entries whose mark has any of `bits` (entries this
    /// node injected, see [`Conntrack::set_inject_mark`]); 0 keeps all.
    pub fn ignore_mark(&mut self, bits: u32) {
        self.ignore_mark = bits;
    }

    /// Events dropped by [`Events::ignore_mark`].
    pub fn ignored(&self) -> u64 {
        self.ignored
    }

    /// Event messages that did not decode (skipped).
    pub fn malformed(&self) -> u64 {
        self.malformed
    }

    /// The socket, for readiness polling (e.g. tokio's `AsyncFd`); then call
    /// [`Events::recv`] with `Some(Duration::ZERO)`.
    pub fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    /// The next event, waiting at most `timeout` (`None`: forever);
    /// `Ok(None)` when the time is up.
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<Event>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            if let Some(ev) = self.queue.pop_front() {
                return Ok(Some(ev));
            }
            let wait_ms = match deadline {
                None => -1,
                Some(d) => {
                    let left = d.saturating_duration_since(Instant::now());
                    left.as_millis().min(i32::MAX as u128) as i32
                }
            };
            let mut pfd = libc::pollfd {
                fd: self.sock.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, wait_ms) };
            if rc < 0 {
                let e = io::Error::last_os_error();
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(Error::io(
                    "wait for conntrack events",
                    self.object.clone(),
                    e,
                ));
            }
            if rc == 0 {
                return Ok(None);
            }
            match recv(self.sock.as_raw_fd(), &mut self.rx, libc::MSG_DONTWAIT) {
                Ok(n) => self.take(n),
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    return Ok(Some(Event::Overrun))
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    return Err(Error::io(
                        "receive conntrack events",
                        self.object.clone(),
                        e,
                    ))
                }
            }
        }
    }

    /// Decodes the datagram of `len` bytes in `rx` into the queue.
    fn take(&mut self, len: usize) {
        for m in codec::messages(&self.rx[..len]) {
            let Ok(m) = m else {
                self.malformed += 1;
                continue;
            };
            if m.ty == codec::NLMSG_OVERRUN {
                self.queue.push_back(Event::Overrun);
                continue;
            }
            let is_delete = m.ty == codec::IPCTNL_MSG_CT_DELETE;
            if m.ty != codec::IPCTNL_MSG_CT_NEW && !is_delete {
                continue;
            }
            let e = match codec::decode_entry(m.payload) {
                Ok(e) => e,
                Err(_) => {
                    self.malformed += 1;
                    continue;
                }
            };
            if e.has_mark(self.ignore_mark) {
                self.ignored += 1;
                continue;
            }
            // trap 4: NEW and UPDATE share a message type; the kernel marks
            // a new entry with NLM_F_CREATE|NLM_F_EXCL.
            let new = m.flags & (codec::NLM_F_CREATE | codec::NLM_F_EXCL)
                == codec::NLM_F_CREATE | codec::NLM_F_EXCL;
            self.queue.push_back(match (is_delete, new) {
                (true, _) => Event::Destroy(e),
                (false, true) => Event::New(e),
                (false, false) => Event::Update(e),
            });
        }
    }
}

impl Iterator for Events {
    type Item = Result<Event>;

    /// Blocks for the next event; `None` never happens.
    fn next(&mut self) -> Option<Self::Item> {
        self.recv(None).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An answer that never comes (nothing was sent) ends in a counted
    /// timeout instead of a hang.
    #[test]
    fn a_request_nobody_answers_times_out_and_is_counted() {
        let mut ct = Conntrack::open(None).unwrap();
        ct.set_request_timeout(Duration::from_millis(100)).unwrap();
        let t = Instant::now();
        assert_eq!(ct.wait_ack(12345), Err(libc::ETIMEDOUT));
        assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
        assert_eq!(ct.timeouts(), 1);
    }
}
