//! One replicated connection, as plain data. The daemon converts from and
//! to the kernel driver's conntrack entries; this crate never sees
//! netlink. Kept small (39 bytes on the wire) because a bulk sync carries
//! one per connection.

use std::net::Ipv4Addr;

/// The original-direction tuple: what conntrack is keyed by. For ICMP the
/// daemon puts the echo id in `src_port` and type/code in `dst_port`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// IP protocol number (6 TCP, 17 UDP, 1 ICMP, ...).
    pub proto: u8,
    pub src_port: u16,
    pub dst_port: u16,
}

/// The reply-direction tuple: it carries the NAT binding (a DNAT shows as
/// a reply source other than the original destination, an SNAT as a reply
/// destination other than the original source).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Session {
    pub key: SessionKey,
    pub reply: Tuple,
    /// Conntrack status bits (`IPS_*`), as the kernel reports them.
    pub status: u32,
    /// Seconds left before the kernel expires the entry, when reported.
    pub timeout_s: u32,
    /// `TCP_CONNTRACK_*` for TCP entries.
    pub tcp_state: Option<u8>,
    pub mark: u32,
}

/// A conntrack event, as the daemon hands it to [`super::SyncSender`].
/// Entries this node injected itself are filtered out by the daemon (by
/// their mark) before they get here, so they never echo back to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    New(Session),
    Update(Session),
    Destroy(SessionKey),
}

impl Event {
    pub fn key(&self) -> SessionKey {
        match self {
            Event::New(s) | Event::Update(s) => s.key,
            Event::Destroy(k) => *k,
        }
    }
}
