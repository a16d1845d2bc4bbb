//! A conntrack entry as plain data: what a dump or an event yields and what
//! [`super::Conntrack::create`] installs. No netlink here; the NAT binding is
//! derived from the two tuples because dumps carry no NAT attributes
//! (linux-kernel-notes trap 3).

use std::net::Ipv4Addr;

/// IP protocol numbers the codec knows the layer-4 layout of.
pub mod proto {
    /// ICMP: `src_port` is the echo id, `dst_port` is `type << 8 | code`.
    pub const ICMP: u8 = 1;
    /// TCP: ports.
    pub const TCP: u8 = 6;
    /// UDP: ports.
    pub const UDP: u8 = 17;
    /// DCCP: ports.
    pub const DCCP: u8 = 33;
    /// SCTP: ports.
    pub const SCTP: u8 = 132;
    /// UDP-Lite: ports.
    pub const UDPLITE: u8 = 136;

    /// Whether the kernel keys this protocol's tuples on two ports.
    pub fn has_ports(p: u8) -> bool {
        matches!(p, TCP | UDP | DCCP | SCTP | UDPLITE)
    }
}

/// `IPS_*` status bits (`uapi/linux/netfilter/nf_conntrack_common.h`).
pub mod status {
    /// Expected connection (of a helper); the kernel refuses to set it.
    pub const EXPECTED: u32 = 1;
    /// Packets were seen in both directions.
    pub const SEEN_REPLY: u32 = 1 << 1;
    /// The entry will not be dropped early when the table is full.
    pub const ASSURED: u32 = 1 << 2;
    /// The entry is in the table; mandatory on create, or EBUSY.
    pub const CONFIRMED: u32 = 1 << 3;
    /// Source NAT applies (set by the kernel from `CTA_NAT_SRC`).
    pub const SRC_NAT: u32 = 1 << 4;
    /// Destination NAT applies (set by the kernel from `CTA_NAT_DST`).
    pub const DST_NAT: u32 = 1 << 5;
    /// Source NAT binding is done.
    pub const SRC_NAT_DONE: u32 = 1 << 7;
    /// Destination NAT binding is done.
    pub const DST_NAT_DONE: u32 = 1 << 8;
    /// Being destroyed; the kernel refuses to set it.
    pub const DYING: u32 = 1 << 9;
    /// The flow is in a flowtable (`policy.fastpath`): the kernel holds
    /// the timeout and the flowtable forwards the packets.
    pub const OFFLOAD: u32 = 1 << 14;
    /// The flow is in a NIC's hardware flowtable.
    pub const HW_OFFLOAD: u32 = 1 << 15;
}

/// `TCP_CONNTRACK_*` states as ctnetlink carries them.
pub mod tcp_state {
    /// No state (an entry created without protoinfo stays here).
    pub const NONE: u8 = 0;
    /// SYN seen.
    pub const SYN_SENT: u8 = 1;
    /// SYN/ACK seen.
    pub const SYN_RECV: u8 = 2;
    /// Three-way handshake done.
    pub const ESTABLISHED: u8 = 3;
    /// FIN seen.
    pub const FIN_WAIT: u8 = 4;
    /// FIN seen in the reply direction.
    pub const CLOSE_WAIT: u8 = 5;
    /// Last ACK awaited.
    pub const LAST_ACK: u8 = 6;
    /// Closed, lingering.
    pub const TIME_WAIT: u8 = 7;
    /// Closed (RST).
    pub const CLOSE: u8 = 8;
    /// Simultaneous open.
    pub const SYN_SENT2: u8 = 9;
    /// One past the last valid state; the kernel refuses higher values.
    pub const MAX: u8 = 10;
}

/// `IP_CT_TCP_FLAG_*` bits of [`TcpInfo::flags_orig`] / `flags_reply`.
pub mod tcp_flags {
    /// The side announced window scaling (needed for `wscale` to apply).
    pub const WINDOW_SCALE: u8 = 0x01;
    /// The side allows SACK.
    pub const SACK_PERM: u8 = 0x02;
    /// This side closed first.
    pub const CLOSE_INIT: u8 = 0x04;
    /// No window checks for this side.
    pub const BE_LIBERAL: u8 = 0x08;
    /// Window-tracking bits (`DATA_UNACKNOWLEDGED`, `MAXACK_SET`): they
    /// describe sequence state that ctnetlink cannot transfer, so they are
    /// never sent on create; the kernel re-learns the window from the next
    /// packets.
    pub const WINDOW_TRACKING: u8 = 0x10 | 0x20;
    /// The bits [`super::super::Conntrack::create`] sends (mask of
    /// `CTA_PROTOINFO_TCP_FLAGS_*`): connection properties, not window state.
    pub const TRANSFERABLE: u8 = WINDOW_SCALE | SACK_PERM | CLOSE_INIT | BE_LIBERAL;
}

/// One direction of a connection, IPv4.
///
/// For ICMP the kernel keys on the echo id and the type/code instead of
/// ports; they sit where the kernel keeps them: `src_port` is the id,
/// `dst_port` is `type << 8 | code` (see [`Tuple::icmp`]). Protocols without
/// ports (other than ICMP) have both ports 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Tuple {
    /// Source address.
    pub src: Ipv4Addr,
    /// Destination address.
    pub dst: Ipv4Addr,
    /// IP protocol number ([`proto`]).
    pub proto: u8,
    /// Source port, or the ICMP id.
    pub src_port: u16,
    /// Destination port, or ICMP `type << 8 | code`.
    pub dst_port: u16,
}

impl Tuple {
    /// A TCP tuple.
    pub fn tcp(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16) -> Tuple {
        Tuple {
            src,
            dst,
            proto: proto::TCP,
            src_port,
            dst_port,
        }
    }

    /// A UDP tuple.
    pub fn udp(src: Ipv4Addr, src_port: u16, dst: Ipv4Addr, dst_port: u16) -> Tuple {
        Tuple {
            proto: proto::UDP,
            ..Tuple::tcp(src, src_port, dst, dst_port)
        }
    }

    /// An ICMP tuple (echo request: `kind` 8, `code` 0).
    pub fn icmp(src: Ipv4Addr, dst: Ipv4Addr, id: u16, kind: u8, code: u8) -> Tuple {
        Tuple {
            src,
            dst,
            proto: proto::ICMP,
            src_port: id,
            dst_port: u16::from(kind) << 8 | u16::from(code),
        }
    }

    /// ICMP id (the `src_port` slot).
    pub fn icmp_id(&self) -> u16 {
        self.src_port
    }

    /// ICMP type (high byte of the `dst_port` slot).
    pub fn icmp_type(&self) -> u8 {
        (self.dst_port >> 8) as u8
    }

    /// ICMP code (low byte of the `dst_port` slot).
    pub fn icmp_code(&self) -> u8 {
        (self.dst_port & 0xff) as u8
    }
}

impl std::fmt::Display for Tuple {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.proto {
            proto::ICMP => write!(
                f,
                "icmp {} > {} id {} type {} code {}",
                self.src,
                self.dst,
                self.icmp_id(),
                self.icmp_type(),
                self.icmp_code()
            ),
            p if proto::has_ports(p) => write!(
                f,
                "proto {p} {}:{} > {}:{}",
                self.src, self.src_port, self.dst, self.dst_port
            ),
            p => write!(f, "proto {p} {} > {}", self.src, self.dst),
        }
    }
}

/// TCP tracking state (`CTA_PROTOINFO_TCP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TcpInfo {
    /// [`tcp_state`] value.
    pub state: u8,
    /// Window scale the originator announced.
    pub wscale_orig: u8,
    /// Window scale the responder announced.
    pub wscale_reply: u8,
    /// [`tcp_flags`] of the originator side.
    pub flags_orig: u8,
    /// [`tcp_flags`] of the responder side.
    pub flags_reply: u8,
}

/// One conntrack entry (IPv4).
///
/// `reply` is the tuple as the kernel shows it, i.e. *translated* when NAT
/// applies; [`Entry::nat`] derives the binding from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// The originator's direction, as the first packet had it.
    pub orig: Tuple,
    /// The reply direction, after NAT.
    pub reply: Tuple,
    /// [`status`] bits.
    pub status: u32,
    /// Seconds until expiry (0 when the kernel did not say, e.g. destroy events).
    pub timeout: u32,
    /// Connection mark (`ct mark`).
    pub mark: u32,
    /// Conntrack zone; 0 is the default zone.
    pub zone: u16,
    /// The kernel's id of the entry (dumps and events); ignored on create.
    pub id: Option<u32>,
    /// TCP state, for TCP entries.
    pub tcp: Option<TcpInfo>,
}

/// Where one side of a connection is translated to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    /// The translated address.
    pub addr: Ipv4Addr,
    /// The translated port (ICMP: the id).
    pub port: u16,
}

/// The NAT an entry carries, derived from its tuples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Nat {
    /// Source NAT: the originator is seen as this (the reply's destination).
    pub snat: Option<Binding>,
    /// Destination NAT: the originator's packets go to this (the reply's source).
    pub dnat: Option<Binding>,
}

impl Entry {
    /// The entry's NAT, or `None` when the reply is the plain inverse of the
    /// original. SNAT when the reply goes somewhere other than the
    /// originator; DNAT when it comes from somewhere other than the original
    /// destination.
    pub fn nat(&self) -> Option<Nat> {
        let (o, r) = (&self.orig, &self.reply);
        let (snat, dnat) = if o.proto == proto::ICMP {
            (r.dst != o.src || r.icmp_id() != o.icmp_id(), r.src != o.dst)
        } else if proto::has_ports(o.proto) {
            (
                r.dst != o.src || r.dst_port != o.src_port,
                r.src != o.dst || r.src_port != o.dst_port,
            )
        } else {
            (r.dst != o.src, r.src != o.dst)
        };
        let (snat_port, dnat_port) = if o.proto == proto::ICMP {
            (r.icmp_id(), r.icmp_id())
        } else {
            (r.dst_port, r.src_port)
        };
        let nat = Nat {
            snat: snat.then_some(Binding {
                addr: r.dst,
                port: snat_port,
            }),
            dnat: dnat.then_some(Binding {
                addr: r.src,
                port: dnat_port,
            }),
        };
        (nat.snat.is_some() || nat.dnat.is_some()).then_some(nat)
    }

    /// The reply tuple before NAT: the inverse of `orig`. The kernel must be
    /// given this one on create, with the NAT as `CTA_NAT_*`; given the
    /// translated reply it installs an entry that looks right but translates
    /// nothing (linux-kernel-notes trap 3). ICMP keeps the reply's type/code
    /// (the kernel inverts echo request to echo reply) and the original id.
    pub fn untranslated_reply(&self) -> Tuple {
        let o = &self.orig;
        let (src_port, dst_port) = if o.proto == proto::ICMP {
            (o.icmp_id(), self.reply.dst_port)
        } else if proto::has_ports(o.proto) {
            (o.dst_port, o.src_port)
        } else {
            (0, 0)
        };
        Tuple {
            src: o.dst,
            dst: o.src,
            proto: o.proto,
            src_port,
            dst_port,
        }
    }

    /// Whether any bit of `mask` is set in the entry's mark (how injected
    /// entries are recognised; see [`super::Events::ignore_mark`]).
    pub fn has_mark(&self, mask: u32) -> bool {
        self.mark & mask != 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }

    fn entry(orig: Tuple, reply: Tuple) -> Entry {
        Entry {
            orig,
            reply,
            status: 0,
            timeout: 0,
            mark: 0,
            zone: 0,
            id: None,
            tcp: None,
        }
    }

    #[test]
    fn plain_entry_has_no_nat() {
        let o = Tuple::tcp(ip("10.0.0.1"), 40000, ip("10.0.1.1"), 80);
        let r = Tuple::tcp(ip("10.0.1.1"), 80, ip("10.0.0.1"), 40000);
        assert_eq!(entry(o, r).nat(), None);
        assert_eq!(entry(o, r).untranslated_reply(), r);
    }

    #[test]
    fn snat_and_dnat_are_read_from_the_reply() {
        // Client 198.51.100.7 -> service 203.0.113.10:443, DNAT to 10.0.1.5:8443,
        // SNAT to 10.0.1.254:61000.
        let o = Tuple::tcp(ip("198.51.100.7"), 50000, ip("203.0.113.10"), 443);
        let r = Tuple::tcp(ip("10.0.1.5"), 8443, ip("10.0.1.254"), 61000);
        let e = entry(o, r);
        let nat = e.nat().unwrap();
        assert_eq!(
            nat.dnat,
            Some(Binding {
                addr: ip("10.0.1.5"),
                port: 8443
            })
        );
        assert_eq!(
            nat.snat,
            Some(Binding {
                addr: ip("10.0.1.254"),
                port: 61000
            })
        );
        assert_eq!(
            e.untranslated_reply(),
            Tuple::tcp(ip("203.0.113.10"), 443, ip("198.51.100.7"), 50000)
        );

        // A port-only SNAT is still SNAT.
        let r2 = Tuple::tcp(ip("203.0.113.10"), 443, ip("198.51.100.7"), 1024);
        let nat = entry(o, r2).nat().unwrap();
        assert_eq!(nat.dnat, None);
        assert_eq!(nat.snat.unwrap().port, 1024);
    }

    #[test]
    fn icmp_keeps_type_code_and_reads_the_id() {
        let o = Tuple::icmp(ip("10.0.0.1"), ip("10.0.1.1"), 77, 8, 0);
        assert_eq!((o.icmp_id(), o.icmp_type(), o.icmp_code()), (77, 8, 0));
        let r = Tuple::icmp(ip("10.0.1.1"), ip("192.0.2.1"), 77, 0, 0);
        let e = entry(o, r);
        let nat = e.nat().unwrap();
        assert_eq!(nat.snat.unwrap().addr, ip("192.0.2.1"));
        assert_eq!(nat.dnat, None);
        assert_eq!(
            e.untranslated_reply(),
            Tuple::icmp(ip("10.0.1.1"), ip("10.0.0.1"), 77, 0, 0)
        );
        assert!(o.to_string().contains("type 8"), "{o}");
    }

    #[test]
    fn portless_protocols_compare_addresses_only() {
        let o = Tuple {
            src: ip("10.0.0.1"),
            dst: ip("10.0.1.1"),
            proto: 47,
            src_port: 0,
            dst_port: 0,
        };
        let r = Tuple {
            src: ip("10.0.1.1"),
            dst: ip("10.0.0.1"),
            ..o
        };
        assert_eq!(entry(o, r).nat(), None);
        assert_eq!(entry(o, r).untranslated_reply(), r);
    }
}
