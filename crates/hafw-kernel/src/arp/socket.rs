//! The AF_PACKET side of ARP: sending announcements, receiving frames.

use std::collections::HashMap;
use std::ffi::CString;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

use socket2::{Domain, Protocol, Socket, Type};
use tokio::io::unix::AsyncFd;

use super::frame::{decode, gratuitous, ArpFields};
use crate::error::in_ns;
use crate::{in_netns, link, Error, Mac, Result};

/// `sll_pkttype` of frames this host sent (linux/if_packet.h); the listener
/// skips them so it reports only what arrived.
const PACKET_OUTGOING: u8 = 4;

/// An ARP packet received on one of a listener's interfaces.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArpPacket {
    /// The interface it arrived on.
    pub interface: String,
    /// Its fields.
    pub fields: ArpFields,
}

/// Sends `count` gratuitous ARP requests for `ip` from interface `ifname` in
/// namespace `ns`, `interval` apart, from the interface's own MAC to the
/// broadcast address. Blocks for `(count - 1) * interval`; call it from
/// `spawn_blocking` in async code. Returns the MAC it announced from.
pub fn announce(
    ns: Option<&str>,
    ifname: &str,
    ip: Ipv4Addr,
    count: u32,
    interval: Duration,
) -> Result<Mac> {
    link::check_name(ifname)?;
    let object = in_ns(format!("interface {ifname}"), ns);
    let (socket, mac) = in_netns(ns, || -> io::Result<(Socket, Mac)> {
        let index = ifindex(ifname)?;
        let socket = packet_socket()?;
        bind(socket.as_raw_fd(), index)?;
        let mac = hardware_address(socket.as_raw_fd(), ifname)?;
        Ok((socket, mac))
    })?
    .map_err(|e| Error::io("open ARP socket", object.clone(), e))?;
    let frame = gratuitous(mac, ip);
    for i in 0..count {
        if i > 0 {
            std::thread::sleep(interval);
        }
        socket
            .send(&frame)
            .map_err(|e| Error::io("send gratuitous ARP", object.clone(), e))?;
    }
    Ok(mac)
}

/// A send-only packet socket kept open on one interface, so an announcement
/// on the failover path costs one `send`. Opening and closing packet sockets
/// that listen for a protocol waits for an RCU grace period each time (tens
/// of milliseconds, measured here); this socket is created with protocol 0,
/// so it never joins the receive path and opens and sends without that wait.
pub struct Announcer {
    socket: Socket,
    mac: Mac,
    object: String,
}

impl Announcer {
    pub fn open(ns: Option<&str>, ifname: &str) -> Result<Announcer> {
        link::check_name(ifname)?;
        let object = in_ns(format!("interface {ifname}"), ns);
        let (socket, mac) = in_netns(ns, || -> io::Result<(Socket, Mac)> {
            let index = ifindex(ifname)?;
            let socket = Socket::new(Domain::PACKET, Type::RAW, None)?;
            bind_proto(socket.as_raw_fd(), index, 0)?;
            let mac = hardware_address(socket.as_raw_fd(), ifname)?;
            Ok((socket, mac))
        })?
        .map_err(|e| Error::io("open ARP socket", object.clone(), e))?;
        Ok(Announcer {
            socket,
            mac,
            object,
        })
    }

    /// The MAC announcements come from (the interface's own).
    pub fn mac(&self) -> Mac {
        self.mac
    }

    /// Sends one gratuitous ARP request for `ip`.
    pub fn announce(&self, ip: Ipv4Addr) -> Result<()> {
        self.socket
            .send(&gratuitous(self.mac, ip))
            .map(|_| ())
            .map_err(|e| Error::io("send gratuitous ARP", self.object.clone(), e))
    }
}

/// A blocking ARP listener on a set of interfaces of one namespace. Frames
/// the namespace itself sends are skipped; frames that are not valid
/// Ethernet/IPv4 ARP requests or replies are counted in
/// [`Listener::malformed`] and skipped.
pub struct Listener {
    socket: Socket,
    core: Core,
}

impl Listener {
    /// Starts listening on `interfaces` of namespace `ns` (`None`: the
    /// calling thread's). The interfaces must exist now.
    pub fn open(ns: Option<&str>, interfaces: &[&str]) -> Result<Listener> {
        let (socket, core) = open(ns, interfaces)?;
        Ok(Listener { socket, core })
    }

    /// The next ARP packet, or `None` once `timeout` has passed (`None`
    /// waits forever).
    pub fn recv(&mut self, timeout: Option<Duration>) -> Result<Option<ArpPacket>> {
        let deadline = timeout.map(|t| Instant::now() + t);
        loop {
            let wait = match deadline {
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) if !left.is_zero() => Some(left),
                    _ => return Ok(None),
                },
                None => None,
            };
            self.socket
                .set_read_timeout(wait)
                .map_err(|e| Error::io("set ARP socket timeout", self.core.object.clone(), e))?;
            match recv_ll(self.socket.as_raw_fd(), &mut self.core.buf) {
                Ok((len, from)) => {
                    if let Some(packet) = self.core.accept(len, &from) {
                        return Ok(Some(packet));
                    }
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock
                            | io::ErrorKind::TimedOut
                            | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(Error::io("receive ARP", self.core.object.clone(), e)),
            }
        }
    }

    /// How many frames were skipped because they were not valid ARP.
    pub fn malformed(&self) -> u64 {
        self.core.malformed
    }

    /// The same listener for use under tokio; fails outside a runtime.
    pub fn into_async(self) -> Result<AsyncListener> {
        let object = self.core.object.clone();
        self.socket
            .set_nonblocking(true)
            .map_err(|e| Error::io("set ARP socket non-blocking", object.clone(), e))?;
        if tokio::runtime::Handle::try_current().is_err() {
            let e = io::Error::other("not called within a tokio runtime");
            return Err(Error::io("register ARP socket", object, e));
        }
        // SAFETY: the Socket owns its descriptor, which stays open and the same
        // until the AsyncFd drops it.
        let fd = unsafe { AsyncFd::register(self.socket) }
            .map_err(|e| Error::io("register ARP socket", object, e.into_parts().1))?;
        Ok(AsyncListener {
            fd,
            core: self.core,
        })
    }
}

/// Blocks for each packet; ends only on a socket error.
impl Iterator for Listener {
    type Item = Result<ArpPacket>;

    fn next(&mut self) -> Option<Self::Item> {
        self.recv(None).transpose()
    }
}

/// [`Listener`] under tokio: `recv().await`.
pub struct AsyncListener {
    fd: AsyncFd<Socket>,
    core: Core,
}

impl AsyncListener {
    /// Starts listening (see [`Listener::open`]); fails outside a tokio
    /// runtime.
    pub fn open(ns: Option<&str>, interfaces: &[&str]) -> Result<AsyncListener> {
        Listener::open(ns, interfaces)?.into_async()
    }

    /// The next ARP packet.
    pub async fn recv(&mut self) -> Result<ArpPacket> {
        loop {
            let mut guard = self
                .fd
                .readable()
                .await
                .map_err(|e| Error::io("wait for ARP", self.core.object.clone(), e))?;
            let buf = &mut self.core.buf;
            match guard.try_io(|fd| recv_ll(fd.as_raw_fd(), buf)) {
                Ok(Ok((len, from))) => {
                    if let Some(packet) = self.core.accept(len, &from) {
                        return Ok(packet);
                    }
                }
                Ok(Err(e)) if e.kind() == io::ErrorKind::Interrupted => {}
                Ok(Err(e)) => return Err(Error::io("receive ARP", self.core.object.clone(), e)),
                Err(_would_block) => {}
            }
        }
    }

    /// How many frames were skipped because they were not valid ARP.
    pub fn malformed(&self) -> u64 {
        self.core.malformed
    }
}

/// What both listeners share: the interfaces, the buffer, the counter.
struct Core {
    interfaces: HashMap<i32, String>,
    buf: Vec<u8>,
    malformed: u64,
    object: String,
}

impl Core {
    fn accept(&mut self, len: usize, from: &libc::sockaddr_ll) -> Option<ArpPacket> {
        if from.sll_pkttype == PACKET_OUTGOING {
            return None;
        }
        let interface = self.interfaces.get(&from.sll_ifindex)?;
        match self.buf.get(..len).map(decode) {
            Some(Ok(fields)) => Some(ArpPacket {
                interface: interface.clone(),
                fields,
            }),
            _ => {
                self.malformed += 1;
                None
            }
        }
    }
}

fn open(ns: Option<&str>, interfaces: &[&str]) -> Result<(Socket, Core)> {
    for name in interfaces {
        link::check_name(name)?;
    }
    let object = in_ns(format!("interfaces {}", interfaces.join(",")), ns);
    let opened = in_netns(ns, || -> io::Result<(Socket, HashMap<i32, String>)> {
        let mut indexes = HashMap::new();
        for name in interfaces {
            let index = ifindex(name)?;
            indexes.insert(index, name.to_string());
        }
        // Not bound to one interface: one socket serves the whole set, and
        // frames from others are dropped by index in `Core::accept`.
        Ok((packet_socket()?, indexes))
    })?;
    let (socket, indexes) =
        opened.map_err(|e| Error::io("open ARP listener", object.clone(), e))?;
    Ok((
        socket,
        Core {
            interfaces: indexes,
            buf: vec![0; 2048],
            malformed: 0,
            object,
        },
    ))
}

fn packet_socket() -> io::Result<Socket> {
    let protocol = Protocol::from(i32::from((libc::ETH_P_ARP as u16).to_be()));
    Socket::new(Domain::PACKET, Type::RAW, Some(protocol))
}

/// The index of `name` in the calling thread's namespace.
fn ifindex(name: &str) -> io::Result<i32> {
    let c_name = CString::new(name).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: c_name is a valid NUL-terminated string.
    let index = unsafe { libc::if_nametoindex(c_name.as_ptr()) };
    if index == 0 {
        return Err(io::Error::last_os_error());
    }
    i32::try_from(index).map_err(|_| io::Error::from(io::ErrorKind::InvalidData))
}

fn bind(fd: RawFd, index: i32) -> io::Result<()> {
    bind_proto(fd, index, (libc::ETH_P_ARP as u16).to_be())
}

/// Binds to an interface; `protocol` (network order) 0 receives nothing.
fn bind_proto(fd: RawFd, index: i32, protocol: u16) -> io::Result<()> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut addr: libc::sockaddr_ll = unsafe { zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_protocol = protocol;
    addr.sll_ifindex = index;
    // SAFETY: addr is a valid sockaddr_ll and its size is passed.
    let rc = unsafe {
        libc::bind(
            fd,
            &addr as *const libc::sockaddr_ll as *const libc::sockaddr,
            size_of::<libc::sockaddr_ll>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn hardware_address(fd: RawFd, name: &str) -> io::Result<Mac> {
    // SAFETY: ifreq is plain data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { zeroed() };
    for (dst, src) in req
        .ifr_name
        .iter_mut()
        .zip(name.bytes().take(libc::IFNAMSIZ - 1))
    {
        *dst = src as libc::c_char;
    }
    // SAFETY: req is a valid ifreq with a NUL-terminated name.
    let rc = unsafe { libc::ioctl(fd, libc::SIOCGIFHWADDR, &mut req) };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFHWADDR fills ifru_hwaddr.
    let data = unsafe { req.ifr_ifru.ifru_hwaddr.sa_data };
    let bytes: Vec<u8> = data.iter().take(6).map(|b| *b as u8).collect();
    Mac::from_slice(&bytes).ok_or_else(|| io::Error::from(io::ErrorKind::InvalidData))
}

/// recvfrom(2) that also returns the link-level source address.
fn recv_ll(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, libc::sockaddr_ll)> {
    // SAFETY: sockaddr_ll is plain data; all-zero is a valid value.
    let mut from: libc::sockaddr_ll = unsafe { zeroed() };
    let mut len = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
    // SAFETY: buf and from are valid for the sizes passed.
    let n = unsafe {
        libc::recvfrom(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            0,
            &mut from as *mut libc::sockaddr_ll as *mut libc::sockaddr,
            &mut len,
        )
    };
    if n < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((n as usize, from))
}
