//! Conntrack entries to the sync cores' sessions and back, and which
//! entries are synced at all.

use std::net::Ipv4Addr;

use hafw_ha::sessions::{Session, SessionKey, Tuple as SyncTuple};
use hafw_kernel::conntrack::{self, Entry, TcpInfo, Tuple};

pub(super) fn key_of(t: &Tuple) -> SessionKey {
    SessionKey {
        src: t.src,
        dst: t.dst,
        proto: t.proto,
        src_port: t.src_port,
        dst_port: t.dst_port,
    }
}

pub(super) fn tuple_of(k: &SessionKey) -> Tuple {
    Tuple {
        src: k.src,
        dst: k.dst,
        proto: k.proto,
        src_port: k.src_port,
        dst_port: k.dst_port,
    }
}

/// Entries of the default zone only (zones are not part of the policy),
/// and not the nodes' own traffic: a passive that mirrored its peer's
/// heartbeat and HA2 flows would overwrite the entries of flows it
/// terminates itself (conntrackd's `IgnoreTrafficFor`, for the same reason).
pub(super) fn to_session(e: &Entry, node_addresses: &[Ipv4Addr]) -> Option<Session> {
    if e.zone != 0 || is_node_traffic(e, node_addresses) {
        return None;
    }
    Some(Session {
        key: key_of(&e.orig),
        reply: SyncTuple {
            src: e.reply.src,
            dst: e.reply.dst,
            src_port: e.reply.src_port,
            dst_port: e.reply.dst_port,
        },
        status: e.status,
        timeout_s: e.timeout,
        tcp_state: e.tcp.map(|t| t.state),
        mark: e.mark,
    })
}

fn is_node_traffic(e: &Entry, node_addresses: &[Ipv4Addr]) -> bool {
    [e.orig.src, e.orig.dst, e.reply.src, e.reply.dst]
        .iter()
        .any(|a| node_addresses.contains(a))
}

pub(super) fn to_entry(s: &Session) -> Entry {
    Entry {
        orig: tuple_of(&s.key),
        reply: Tuple {
            src: s.reply.src,
            dst: s.reply.dst,
            proto: s.key.proto,
            src_port: s.reply.src_port,
            dst_port: s.reply.dst_port,
        },
        status: s.status,
        timeout: s.timeout_s.max(1),
        mark: s.mark,
        zone: 0,
        id: None,
        tcp: s.tcp_state.map(|state| TcpInfo {
            state,
            flags_orig: conntrack::tcp_flags::BE_LIBERAL,
            flags_reply: conntrack::tcp_flags::BE_LIBERAL,
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(src: [u8; 4], dst: [u8; 4], reply_src: [u8; 4], reply_dst: [u8; 4]) -> Entry {
        Entry {
            orig: Tuple::tcp(Ipv4Addr::from(src), 40000, Ipv4Addr::from(dst), 80),
            reply: Tuple::tcp(
                Ipv4Addr::from(reply_src),
                80,
                Ipv4Addr::from(reply_dst),
                40000,
            ),
            status: 0,
            timeout: 100,
            mark: 0,
            zone: 0,
            id: None,
            tcp: None,
        }
    }

    #[test]
    fn the_nodes_own_flows_are_not_synced_but_nat_through_floating_addresses_is() {
        let own = [Ipv4Addr::new(10, 0, 3, 11), Ipv4Addr::new(10, 0, 3, 12)];
        // HA2 between the nodes.
        let ha2 = entry(
            [10, 0, 3, 11],
            [10, 0, 3, 12],
            [10, 0, 3, 12],
            [10, 0, 3, 11],
        );
        assert!(to_session(&ha2, &own).is_none());
        // Inbound DNAT to the floating address: synced.
        let dnat = entry(
            [198, 51, 100, 20],
            [10, 0, 1, 100],
            [10, 0, 10, 10],
            [198, 51, 100, 20],
        );
        assert!(to_session(&dnat, &own).is_some());
        // Another zone: not synced.
        let mut zoned = dnat;
        zoned.zone = 3;
        assert!(to_session(&zoned, &own).is_none());
    }
}
