//! Session records from conntrack's new and destroy events, and the NAT
//! pairing: a NATed session's start (its new event) is remembered until its
//! end, so the end record says when it began even where the kernel keeps no
//! timestamps. Pure: the events and the time are inputs.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use hafw_kernel::conntrack::{proto, Accounting, Entry, Tuple};

use super::record::{Body, Flow, Translation, Volume};

/// NATed sessions remembered at most; beyond it a start is not remembered
/// (counted), and its end takes the kernel's timestamp alone.
pub const MAX_PAIRED: usize = 65_536;

pub struct Sessions {
    starts: HashMap<(Tuple, u16), u64>,
    cap: usize,
    local: Vec<Ipv4Addr>,
    ignore_mark: u32,
    full: u64,
}

impl Sessions {
    /// `local`: the node's own addresses (a session to or from them that
    /// no NAT touched is the node's own: heartbeats, management, the
    /// metadata service); `ignore_mark`: entries with these mark bits were
    /// installed by session sync and are logged by the node that forwarded
    /// them.
    pub fn new(local: Vec<Ipv4Addr>, ignore_mark: u32, cap: usize) -> Sessions {
        Sessions {
            starts: HashMap::new(),
            cap,
            local,
            ignore_mark,
            full: 0,
        }
    }

    /// Starts not remembered because the table was full, since the last call.
    pub fn take_full(&mut self) -> u64 {
        std::mem::take(&mut self.full)
    }

    pub fn remembered(&self) -> usize {
        self.starts.len()
    }

    fn skip(&self, e: &Entry) -> bool {
        if e.has_mark(self.ignore_mark) {
            return true;
        }
        e.nat().is_none() && (self.local.contains(&e.orig.src) || self.local.contains(&e.orig.dst))
    }

    /// A new entry: a `nat-start` record when NAT applies.
    pub fn on_new(&mut self, e: &Entry, now_ms: u64) -> Option<Body> {
        if self.skip(e) {
            return None;
        }
        let nat = translation(e)?;
        let key = (e.orig, e.zone);
        if self.starts.len() < self.cap || self.starts.contains_key(&key) {
            self.starts.insert(key, now_ms);
        } else {
            self.full += 1;
        }
        Some(Body::NatStart {
            flow: flow(&e.orig),
            nat,
            start_ms: now_ms,
        })
    }

    /// A destroyed entry: its `session-end`, and its `nat-end` when NAT
    /// applied.
    pub fn on_end(&mut self, e: &Entry, acct: &Accounting, now_ms: u64) -> Vec<Body> {
        let paired = self.starts.remove(&(e.orig, e.zone));
        if self.skip(e) {
            return Vec::new();
        }
        let start_ms = acct.start_ns.map(|ns| ns / 1_000_000).or(paired);
        let end_ms = acct.stop_ns.map_or(now_ms, |ns| ns / 1_000_000);
        let volume = Volume {
            orig_packets: acct.orig.map_or(0, |c| c.packets),
            orig_bytes: acct.orig.map_or(0, |c| c.bytes),
            reply_packets: acct.reply.map_or(0, |c| c.packets),
            reply_bytes: acct.reply.map_or(0, |c| c.bytes),
        };
        let flow = flow(&e.orig);
        let mut out = vec![Body::SessionEnd {
            flow,
            start_ms,
            end_ms,
            volume,
        }];
        if let Some(nat) = translation(e) {
            out.push(Body::NatEnd {
                flow,
                nat,
                start_ms,
                end_ms,
                volume,
            });
        }
        out
    }
}

fn flow(t: &Tuple) -> Flow {
    Flow {
        proto: t.proto,
        src: t.src,
        dst: t.dst,
        ports: proto::has_ports(t.proto).then_some((t.src_port, t.dst_port)),
    }
}

/// The entry's NAT as the log states it (`Entry::nat` derives it from the
/// tuples, linux-kernel-notes trap 3).
fn translation(e: &Entry) -> Option<Translation> {
    let nat = e.nat()?;
    Some(Translation {
        src: nat.snat.map(|b| (b.addr, b.port)),
        dst: nat.dnat.map(|b| (b.addr, b.port)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_kernel::conntrack::Counters;

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

    /// The seed's DNAT: client -> EIP's private address 10.0.1.100:80,
    /// translated to the server 10.0.10.10:80.
    fn dnat() -> Entry {
        entry(
            Tuple::tcp(ip("198.51.100.20"), 40000, ip("10.0.1.100"), 80),
            Tuple::tcp(ip("10.0.10.10"), 80, ip("198.51.100.20"), 40000),
        )
    }

    /// The seed's SNAT: the server leaves as 10.0.1.100 (port kept or
    /// changed by the kernel).
    fn snat() -> Entry {
        entry(
            Tuple::udp(ip("10.0.10.10"), 5000, ip("198.51.100.30"), 7777),
            Tuple::udp(ip("198.51.100.30"), 7777, ip("10.0.1.100"), 5001),
        )
    }

    fn local() -> Sessions {
        Sessions::new(vec![ip("10.0.0.11"), ip("10.0.1.11")], 0x4846_0000, 4)
    }

    #[test]
    fn a_dnat_session_pairs_its_start_with_its_end() {
        let mut s = local();
        let Some(Body::NatStart { nat, start_ms, .. }) = s.on_new(&dnat(), 1000) else {
            panic!("no nat-start")
        };
        assert_eq!(nat.dst, Some((ip("10.0.10.10"), 80)));
        assert_eq!(nat.src, None);
        assert_eq!(start_ms, 1000);
        let acct = Accounting {
            orig: Some(Counters {
                packets: 3,
                bytes: 180,
            }),
            reply: Some(Counters {
                packets: 2,
                bytes: 5000,
            }),
            start_ns: None,
            stop_ns: None,
        };
        let out = s.on_end(&dnat(), &acct, 4000);
        assert_eq!(out.len(), 2);
        let Body::NatEnd {
            start_ms,
            end_ms,
            volume,
            ..
        } = &out[1]
        else {
            panic!("{out:?}")
        };
        assert_eq!((*start_ms, *end_ms), (Some(1000), 4000));
        assert_eq!(volume.reply_bytes, 5000);
        assert_eq!(s.remembered(), 0);
    }

    #[test]
    fn an_snat_session_names_the_public_side_port_and_the_kernel_times_win() {
        let mut s = local();
        let Some(Body::NatStart { nat, .. }) = s.on_new(&snat(), 10) else {
            panic!()
        };
        assert_eq!(nat.src, Some((ip("10.0.1.100"), 5001)));
        let acct = Accounting {
            start_ns: Some(2_000_000_000),
            stop_ns: Some(9_000_000_000),
            ..Accounting::default()
        };
        let out = s.on_end(&snat(), &acct, 50);
        let Body::SessionEnd {
            start_ms,
            end_ms,
            flow,
            ..
        } = &out[0]
        else {
            panic!()
        };
        assert_eq!((*start_ms, *end_ms), (Some(2000), 9000));
        assert_eq!(flow.ports, Some((5000, 7777)));
    }

    #[test]
    fn the_nodes_own_and_synced_sessions_are_not_logged() {
        let mut s = local();
        let hb = entry(
            Tuple::udp(ip("10.0.0.11"), 28780, ip("10.0.0.12"), 28780),
            Tuple::udp(ip("10.0.0.12"), 28780, ip("10.0.0.11"), 28780),
        );
        assert!(s.on_new(&hb, 0).is_none());
        assert!(s.on_end(&hb, &Accounting::default(), 0).is_empty());
        let mut synced = dnat();
        synced.mark = 0x4846_0000;
        assert!(s.on_new(&synced, 0).is_none());
        let plain = entry(
            Tuple::tcp(ip("10.0.10.10"), 1, ip("10.0.20.5"), 22),
            Tuple::tcp(ip("10.0.20.5"), 22, ip("10.0.10.10"), 1),
        );
        assert!(s.on_new(&plain, 0).is_none(), "no NAT: no nat-start");
        assert_eq!(s.on_end(&plain, &Accounting::default(), 0).len(), 1);
    }

    /// A flood of new NATed sessions never grows the pairing past its
    /// bound; what it could not remember is counted.
    #[test]
    fn the_pairing_is_bounded_and_counts_what_it_could_not_hold() {
        let mut s = local();
        for port in 0..100u16 {
            let mut e = dnat();
            e.orig.src_port = port;
            e.reply.dst_port = port;
            assert!(s.on_new(&e, 0).is_some());
        }
        assert_eq!(s.remembered(), 4);
        assert_eq!(s.take_full(), 96);
    }
}
