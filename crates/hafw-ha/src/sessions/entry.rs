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

/// The longest timeout the kernel gives an entry of each protocol by
/// default (`net.netfilter.nf_conntrack_*_timeout*`): TCP established
/// 432,000 s (5 days, the longest TCP state), UDP stream 180 s (120 s
/// since Linux 5.19; the older, longer value is the cap), ICMP 30 s,
/// anything else the generic 600 s. A synced entry claiming longer came
/// from a broken or hostile sender; capped, it still expires.
pub const MAX_TIMEOUT_TCP: u32 = 432_000;
pub const MAX_TIMEOUT_UDP: u32 = 180;
pub const MAX_TIMEOUT_ICMP: u32 = 30;
pub const MAX_TIMEOUT_GENERIC: u32 = 600;

/// [`MAX_TIMEOUT_TCP`] and the others, by IP protocol number.
pub fn max_timeout(proto: u8) -> u32 {
    match proto {
        6 => MAX_TIMEOUT_TCP,
        17 | 136 => MAX_TIMEOUT_UDP, // UDP, UDP-Lite
        1 => MAX_TIMEOUT_ICMP,
        _ => MAX_TIMEOUT_GENERIC,
    }
}

impl Session {
    /// Whether either tuple names one of `addresses`: the nodes' own
    /// traffic (heartbeats, HA2, management), or a NAT onto or from a
    /// node. The sender never syncs these and the receiver refuses them:
    /// a mirrored entry would overwrite one of a flow this node
    /// terminates itself.
    pub fn touches(&self, addresses: &[Ipv4Addr]) -> bool {
        [self.key.src, self.key.dst, self.reply.src, self.reply.dst]
            .iter()
            .any(|a| addresses.contains(a))
    }

    /// Whether either tuple holds an address no forwarded flow can have:
    /// unspecified (0/8), loopback (127/8), multicast (224/4) or reserved
    /// and broadcast (240/4). The kernel never tracks a routed connection
    /// with one; installed, such an entry would only shadow local traffic.
    pub fn is_bogus(&self) -> bool {
        [self.key.src, self.key.dst, self.reply.src, self.reply.dst]
            .iter()
            .any(|a| {
                let first = a.octets()[0];
                first == 0 || first == 127 || first >= 224
            })
    }

    /// The timeout capped at [`max_timeout`] for its protocol; whether
    /// it was capped.
    pub fn clamp_timeout(&mut self) -> bool {
        let max = max_timeout(self.key.proto);
        let over = self.timeout_s > max;
        self.timeout_s = self.timeout_s.min(max);
        over
    }
}
