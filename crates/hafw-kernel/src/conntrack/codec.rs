//! ctnetlink messages as bytes: requests built straight into a buffer (many
//! of them back to back for a batch) and replies/events decoded from one.
//!
//! Why not netlink-packet-netfilter's typed attributes: 0.4 has no NAT
//! attributes (`CTA_NAT_SRC`/`CTA_NAT_DST`), no ICMP tuple fields, no zone or
//! id, and its `DefaultNla` hides the bytes of what it does not know. The
//! layout is small and fixed (`uapi/linux/netfilter/nfnetlink_conntrack.h`),
//! so it is written here and pinned by tests, including a cross-check against
//! that crate's parser. Decoding never panics: every length is checked and a
//! bad message is a [`Malformed`] value.

use std::net::Ipv4Addr;

use super::entry::{proto, status, tcp_flags, tcp_state, Entry, TcpInfo, Tuple};
use super::sessions::{Accounting, Counters};

// netlink
pub(crate) const NLMSG_HDRLEN: usize = 16;
pub(crate) const NLMSG_ERROR: u16 = 2;
pub(crate) const NLMSG_DONE: u16 = 3;
pub(crate) const NLMSG_OVERRUN: u16 = 4;
pub(crate) const NLM_F_REQUEST: u16 = 1;
pub(crate) const NLM_F_ACK: u16 = 4;
pub(crate) const NLM_F_DUMP: u16 = 0x300;
pub(crate) const NLM_F_EXCL: u16 = 0x200;
pub(crate) const NLM_F_CREATE: u16 = 0x400;
const NLA_F_NESTED: u16 = 1 << 15;
const NLA_TYPE_MASK: u16 = !(1 << 15 | 1 << 14);

// nfnetlink
const NFGENMSG_LEN: usize = 4;
const AF_INET: u8 = 2;
const NFNL_SUBSYS_CTNETLINK: u16 = 1;
pub(crate) const IPCTNL_MSG_CT_NEW: u16 = NFNL_SUBSYS_CTNETLINK << 8;
pub(crate) const IPCTNL_MSG_CT_GET: u16 = NFNL_SUBSYS_CTNETLINK << 8 | 1;
pub(crate) const IPCTNL_MSG_CT_DELETE: u16 = NFNL_SUBSYS_CTNETLINK << 8 | 2;

// enum ctattr_type
pub(crate) const CTA_TUPLE_ORIG: u16 = 1;
pub(crate) const CTA_TUPLE_REPLY: u16 = 2;
pub(crate) const CTA_STATUS: u16 = 3;
const CTA_PROTOINFO: u16 = 4;
const CTA_NAT_SRC: u16 = 6;
const CTA_TIMEOUT: u16 = 7;
const CTA_MARK: u16 = 8;
pub(crate) const CTA_ID: u16 = 12;
const CTA_NAT_DST: u16 = 13;
const CTA_ZONE: u16 = 18;
// enum ctattr_tuple / ctattr_ip / ctattr_l4proto
const CTA_TUPLE_IP: u16 = 1;
const CTA_TUPLE_PROTO: u16 = 2;
const CTA_IP_V4_SRC: u16 = 1;
const CTA_IP_V4_DST: u16 = 2;
const CTA_PROTO_NUM: u16 = 1;
const CTA_PROTO_SRC_PORT: u16 = 2;
const CTA_PROTO_DST_PORT: u16 = 3;
const CTA_PROTO_ICMP_ID: u16 = 4;
const CTA_PROTO_ICMP_TYPE: u16 = 5;
const CTA_PROTO_ICMP_CODE: u16 = 6;
// enum ctattr_protoinfo / ctattr_protoinfo_tcp
const CTA_PROTOINFO_TCP: u16 = 1;
const CTA_PROTOINFO_TCP_STATE: u16 = 1;
const CTA_PROTOINFO_TCP_WSCALE_ORIGINAL: u16 = 2;
const CTA_PROTOINFO_TCP_WSCALE_REPLY: u16 = 3;
const CTA_PROTOINFO_TCP_FLAGS_ORIGINAL: u16 = 4;
const CTA_PROTOINFO_TCP_FLAGS_REPLY: u16 = 5;
// enum ctattr_nat / ctattr_protonat
const CTA_NAT_V4_MINIP: u16 = 1;
const CTA_NAT_V4_MAXIP: u16 = 2;
const CTA_NAT_PROTO: u16 = 3;
const CTA_PROTONAT_PORT_MIN: u16 = 1;
const CTA_PROTONAT_PORT_MAX: u16 = 2;

/// A message or attribute that does not parse; says what was wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "malformed ctnetlink message: {}", self.0)
    }
}

impl std::error::Error for Malformed {}

pub(crate) fn bad<T>(what: impl Into<String>) -> Result<T, Malformed> {
    Err(Malformed(what.into()))
}

// ---------------------------------------------------------------- encoding

/// What a `IPCTNL_MSG_CT_NEW` request asks for; decides the header flags and
/// whether NAT attributes may be sent (the kernel refuses them on an
/// existing entry with EOPNOTSUPP).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Write {
    /// Create; EEXIST when the original tuple is already tracked.
    Create,
    /// Change an existing entry; ENOENT when there is none.
    Update,
}

pub(crate) const fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Starts a netlink + nfgenmsg header; returns where the message begins, for
/// [`end_msg`].
pub(crate) fn begin_msg(buf: &mut Vec<u8>, ty: u16, flags: u16, seq: u32) -> usize {
    let start = buf.len();
    buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched by end_msg
    buf.extend_from_slice(&ty.to_ne_bytes());
    buf.extend_from_slice(&flags.to_ne_bytes());
    buf.extend_from_slice(&seq.to_ne_bytes());
    buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: the kernel fills it
    buf.extend_from_slice(&[AF_INET, 0, 0, 0]); // family, NFNETLINK_V0, res_id
    start
}

pub(crate) fn end_msg(buf: &mut [u8], start: usize) {
    let len = (buf.len() - start) as u32;
    buf[start..start + 4].copy_from_slice(&len.to_ne_bytes());
}

pub(crate) fn put(buf: &mut Vec<u8>, kind: u16, value: &[u8]) {
    let len = 4 + value.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(value);
    buf.resize(buf.len() + align4(len) - len, 0);
}

fn nest<F: FnOnce(&mut Vec<u8>)>(buf: &mut Vec<u8>, kind: u16, body: F) {
    let start = buf.len();
    buf.extend_from_slice(&[0, 0]);
    buf.extend_from_slice(&(kind | NLA_F_NESTED).to_ne_bytes());
    body(buf);
    // Every attribute inside is padded, so the nest needs no padding of its own.
    let len = (buf.len() - start) as u16;
    buf[start..start + 2].copy_from_slice(&len.to_ne_bytes());
}

pub(crate) fn put_tuple(buf: &mut Vec<u8>, kind: u16, t: &Tuple) {
    nest(buf, kind, |buf| {
        nest(buf, CTA_TUPLE_IP, |buf| {
            put(buf, CTA_IP_V4_SRC, &t.src.octets());
            put(buf, CTA_IP_V4_DST, &t.dst.octets());
        });
        nest(buf, CTA_TUPLE_PROTO, |buf| {
            put(buf, CTA_PROTO_NUM, &[t.proto]);
            if t.proto == proto::ICMP {
                put(buf, CTA_PROTO_ICMP_ID, &t.icmp_id().to_be_bytes());
                put(buf, CTA_PROTO_ICMP_TYPE, &[t.icmp_type()]);
                put(buf, CTA_PROTO_ICMP_CODE, &[t.icmp_code()]);
            } else if proto::has_ports(t.proto) {
                put(buf, CTA_PROTO_SRC_PORT, &t.src_port.to_be_bytes());
                put(buf, CTA_PROTO_DST_PORT, &t.dst_port.to_be_bytes());
            }
        });
    });
}

/// A NAT range of one address and (when `port` is given) one port: the
/// kernel then recomputes exactly the reply tuple the active had.
fn put_nat(buf: &mut Vec<u8>, kind: u16, addr: Ipv4Addr, port: Option<u16>) {
    nest(buf, kind, |buf| {
        put(buf, CTA_NAT_V4_MINIP, &addr.octets());
        put(buf, CTA_NAT_V4_MAXIP, &addr.octets());
        if let Some(port) = port {
            nest(buf, CTA_NAT_PROTO, |buf| {
                put(buf, CTA_PROTONAT_PORT_MIN, &port.to_be_bytes());
                put(buf, CTA_PROTONAT_PORT_MAX, &port.to_be_bytes());
            });
        }
    });
}

fn put_tcp(buf: &mut Vec<u8>, tcp: &TcpInfo) {
    nest(buf, CTA_PROTOINFO, |buf| {
        nest(buf, CTA_PROTOINFO_TCP, |buf| {
            put(buf, CTA_PROTOINFO_TCP_STATE, &[tcp.state]);
            put(buf, CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, &[tcp.wscale_orig]);
            put(buf, CTA_PROTOINFO_TCP_WSCALE_REPLY, &[tcp.wscale_reply]);
            // struct nf_ct_tcp_flags { flags, mask }: the kernel changes only
            // the masked bits. Dumps give mask 0, so the mask is ours.
            let m = tcp_flags::TRANSFERABLE;
            put(
                buf,
                CTA_PROTOINFO_TCP_FLAGS_ORIGINAL,
                &[tcp.flags_orig & m, m],
            );
            put(
                buf,
                CTA_PROTOINFO_TCP_FLAGS_REPLY,
                &[tcp.flags_reply & m, m],
            );
        });
    });
}

/// The status a create/update may carry: CONFIRMED is mandatory (else
/// EBUSY), EXPECTED and DYING are refused (EBUSY); NAT bits are ignored by
/// the kernel, which sets them itself from `CTA_NAT_*`. OFFLOAD and
/// HW_OFFLOAD say where the *sender's* kernel forwards the flow: the
/// kernel ignores them from userspace, and they are cleared here too so
/// the installed copy is plainly a slow-path entry, which this node's own
/// flowtable may offload once traffic reaches it.
pub(crate) fn sendable_status(s: u32) -> u32 {
    (s | status::CONFIRMED)
        & !(status::EXPECTED | status::DYING | status::OFFLOAD | status::HW_OFFLOAD)
}

/// Appends one `IPCTNL_MSG_CT_NEW` request for `e` to `buf`. `mark_or` is
/// ORed into the mark (the injected-entry bit). On [`Write::Create`] the
/// reply tuple is the *un-translated* one and the NAT goes in `CTA_NAT_DST`
/// then `CTA_NAT_SRC` (the order the kernel applies them); on
/// [`Write::Update`] only the original tuple identifies the entry.
pub(crate) fn encode_write(
    buf: &mut Vec<u8>,
    e: &Entry,
    write: Write,
    seq: u32,
    ack: bool,
    mark_or: u32,
) {
    let mut flags = NLM_F_REQUEST;
    if write == Write::Create {
        flags |= NLM_F_CREATE | NLM_F_EXCL;
    }
    if ack {
        flags |= NLM_F_ACK;
    }
    let start = begin_msg(buf, IPCTNL_MSG_CT_NEW, flags, seq);
    put_tuple(buf, CTA_TUPLE_ORIG, &e.orig);
    if write == Write::Create {
        put_tuple(buf, CTA_TUPLE_REPLY, &e.untranslated_reply());
        if let Some(nat) = e.nat() {
            // ICMP DNAT leaves the id to the kernel: its id lives in the
            // source half of the tuple, which DNAT does not own.
            let icmp = e.orig.proto == proto::ICMP;
            if let Some(d) = nat.dnat {
                put_nat(buf, CTA_NAT_DST, d.addr, (!icmp).then_some(d.port));
            }
            if let Some(s) = nat.snat {
                let port = (proto::has_ports(e.orig.proto) || icmp).then_some(s.port);
                put_nat(buf, CTA_NAT_SRC, s.addr, port);
            }
        }
    }
    put(buf, CTA_STATUS, &sendable_status(e.status).to_be_bytes());
    put(buf, CTA_TIMEOUT, &e.timeout.to_be_bytes());
    put(buf, CTA_MARK, &(e.mark | mark_or).to_be_bytes());
    if e.zone != 0 {
        put(buf, CTA_ZONE, &e.zone.to_be_bytes());
    }
    if let Some(tcp) = e.tcp.filter(|_| e.orig.proto == proto::TCP) {
        put_tcp(buf, &tcp);
    }
    end_msg(buf, start);
}

/// Appends a delete of the entry whose original tuple is `orig`.
pub(crate) fn encode_delete(buf: &mut Vec<u8>, orig: &Tuple, zone: u16, seq: u32) {
    encode_delete_acked(buf, orig, zone, seq, true);
}

/// As [`encode_delete`]; `ack` false for a request inside a batch whose
/// last request asks for the acknowledgement (errors are answered anyway).
pub(crate) fn encode_delete_acked(buf: &mut Vec<u8>, orig: &Tuple, zone: u16, seq: u32, ack: bool) {
    let flags = if ack {
        NLM_F_REQUEST | NLM_F_ACK
    } else {
        NLM_F_REQUEST
    };
    let start = begin_msg(buf, IPCTNL_MSG_CT_DELETE, flags, seq);
    put_tuple(buf, CTA_TUPLE_ORIG, orig);
    if zone != 0 {
        put(buf, CTA_ZONE, &zone.to_be_bytes());
    }
    end_msg(buf, start);
}

/// Appends a delete without tuple: the kernel flushes the family's entries.
pub(crate) fn encode_flush(buf: &mut Vec<u8>, seq: u32) {
    let start = begin_msg(buf, IPCTNL_MSG_CT_DELETE, NLM_F_REQUEST | NLM_F_ACK, seq);
    end_msg(buf, start);
}

/// Appends a dump request for the IPv4 table.
pub(crate) fn encode_dump(buf: &mut Vec<u8>, seq: u32) {
    let start = begin_msg(buf, IPCTNL_MSG_CT_GET, NLM_F_REQUEST | NLM_F_DUMP, seq);
    end_msg(buf, start);
}

// ---------------------------------------------------------------- decoding

/// One netlink message of a received datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct NlMsg<'a> {
    pub ty: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the 16-byte netlink header.
    pub payload: &'a [u8],
}

/// The netlink messages in `buf`, in order; stops at the first bad header
/// (yielding its error), since nothing after it can be framed.
pub(crate) fn messages(buf: &[u8]) -> impl Iterator<Item = Result<NlMsg<'_>, Malformed>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = frame(rest);
        match &parsed {
            Ok((_, used)) => rest = rest.get(*used..).unwrap_or(&[]),
            Err(_) => rest = &[],
        }
        Some(parsed.map(|(m, _)| m))
    })
}

fn frame(buf: &[u8]) -> Result<(NlMsg<'_>, usize), Malformed> {
    if buf.len() < NLMSG_HDRLEN {
        return bad(format!(
            "{} bytes, shorter than a netlink header",
            buf.len()
        ));
    }
    let len = u32::from_ne_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
    if len < NLMSG_HDRLEN || len > buf.len() {
        return bad(format!(
            "netlink length {len} outside 16..={} bytes",
            buf.len()
        ));
    }
    let msg = NlMsg {
        ty: u16::from_ne_bytes([buf[4], buf[5]]),
        flags: u16::from_ne_bytes([buf[6], buf[7]]),
        seq: u32::from_ne_bytes([buf[8], buf[9], buf[10], buf[11]]),
        payload: &buf[NLMSG_HDRLEN..len],
    };
    Ok((msg, align4(len).min(buf.len())))
}

/// The errno of an `NLMSG_ERROR` payload: 0 is an acknowledgement, else the
/// positive errno.
pub(crate) fn error_code(payload: &[u8]) -> Result<i32, Malformed> {
    match payload.get(..4) {
        Some(b) => Ok(i32::from_ne_bytes([b[0], b[1], b[2], b[3]]).saturating_abs()),
        None => bad("NLMSG_ERROR shorter than its error code"),
    }
}

/// Attributes of a buffer, `(type without flags, value)`; the first bad
/// length ends the walk with an error.
pub(crate) fn attrs(buf: &[u8]) -> impl Iterator<Item = Result<(u16, &[u8]), Malformed>> {
    let mut rest = buf;
    std::iter::from_fn(move || {
        // Trailing padding shorter than a header is tolerated, as the kernel does.
        if rest.len() < 4 {
            return None;
        }
        let len = u16::from_ne_bytes([rest[0], rest[1]]) as usize;
        let kind = u16::from_ne_bytes([rest[2], rest[3]]) & NLA_TYPE_MASK;
        if len < 4 || len > rest.len() {
            let have = rest.len();
            rest = &[];
            return Some(bad(format!(
                "attribute {kind} has length {len}, outside 4..={have} bytes"
            )));
        }
        let value = &rest[4..len];
        rest = rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((kind, value)))
    })
}

fn fixed<const N: usize>(v: &[u8], what: &str) -> Result<[u8; N], Malformed> {
    match v.get(..N).and_then(|b| <[u8; N]>::try_from(b).ok()) {
        Some(a) => Ok(a),
        None => bad(format!("{what}: {} bytes, want {N}", v.len())),
    }
}

fn be16(v: &[u8], what: &str) -> Result<u16, Malformed> {
    fixed::<2>(v, what).map(u16::from_be_bytes)
}

fn be32(v: &[u8], what: &str) -> Result<u32, Malformed> {
    fixed::<4>(v, what).map(u32::from_be_bytes)
}

fn u8v(v: &[u8], what: &str) -> Result<u8, Malformed> {
    fixed::<1>(v, what).map(|[b]| b)
}

fn decode_tuple(buf: &[u8], which: &str) -> Result<Tuple, Malformed> {
    let (mut src, mut dst, mut proto_num) = (None, None, None);
    let (mut sport, mut dport) = (0u16, 0u16);
    let (mut id, mut icmp_type, mut icmp_code) = (0u16, 0u8, 0u8);
    for a in attrs(buf) {
        match a? {
            (CTA_TUPLE_IP, ip) => {
                for a in attrs(ip) {
                    match a? {
                        (CTA_IP_V4_SRC, v) => src = Some(Ipv4Addr::from(fixed::<4>(v, which)?)),
                        (CTA_IP_V4_DST, v) => dst = Some(Ipv4Addr::from(fixed::<4>(v, which)?)),
                        (3 | 4, _) => return bad(format!("{which} tuple is IPv6")),
                        _ => {}
                    }
                }
            }
            (CTA_TUPLE_PROTO, p) => {
                for a in attrs(p) {
                    match a? {
                        (CTA_PROTO_NUM, v) => proto_num = Some(u8v(v, "CTA_PROTO_NUM")?),
                        (CTA_PROTO_SRC_PORT, v) => sport = be16(v, "CTA_PROTO_SRC_PORT")?,
                        (CTA_PROTO_DST_PORT, v) => dport = be16(v, "CTA_PROTO_DST_PORT")?,
                        (CTA_PROTO_ICMP_ID, v) => id = be16(v, "CTA_PROTO_ICMP_ID")?,
                        (CTA_PROTO_ICMP_TYPE, v) => icmp_type = u8v(v, "CTA_PROTO_ICMP_TYPE")?,
                        (CTA_PROTO_ICMP_CODE, v) => icmp_code = u8v(v, "CTA_PROTO_ICMP_CODE")?,
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    let (Some(src), Some(dst)) = (src, dst) else {
        return bad(format!("{which} tuple without IPv4 source and destination"));
    };
    let Some(p) = proto_num else {
        return bad(format!("{which} tuple without protocol number"));
    };
    Ok(if p == proto::ICMP {
        Tuple::icmp(src, dst, id, icmp_type, icmp_code)
    } else {
        Tuple {
            src,
            dst,
            proto: p,
            src_port: sport,
            dst_port: dport,
        }
    })
}

fn decode_tcp(buf: &[u8]) -> Result<Option<TcpInfo>, Malformed> {
    let mut found = None;
    for a in attrs(buf) {
        if let (CTA_PROTOINFO_TCP, tcp) = a? {
            let mut info = TcpInfo::default();
            for a in attrs(tcp) {
                match a? {
                    (CTA_PROTOINFO_TCP_STATE, v) => info.state = u8v(v, "TCP state")?,
                    (CTA_PROTOINFO_TCP_WSCALE_ORIGINAL, v) => {
                        info.wscale_orig = u8v(v, "TCP wscale")?
                    }
                    (CTA_PROTOINFO_TCP_WSCALE_REPLY, v) => {
                        info.wscale_reply = u8v(v, "TCP wscale")?
                    }
                    (CTA_PROTOINFO_TCP_FLAGS_ORIGINAL, v) => {
                        info.flags_orig = fixed::<2>(v, "TCP flags")?[0]
                    }
                    (CTA_PROTOINFO_TCP_FLAGS_REPLY, v) => {
                        info.flags_reply = fixed::<2>(v, "TCP flags")?[0]
                    }
                    _ => {}
                }
            }
            if info.state >= tcp_state::MAX {
                return bad(format!("TCP state {} out of range", info.state));
            }
            found = Some(info);
        }
    }
    Ok(found)
}

/// Decodes the payload (after the netlink header) of a ctnetlink
/// `IPCTNL_MSG_CT_NEW`/`DELETE` message: a dump item or an event.
/// Non-IPv4 entries are [`Malformed`] too (callers skip them).
pub(crate) fn decode_entry(payload: &[u8]) -> Result<Entry, Malformed> {
    let Some(family) = payload.first() else {
        return bad("no nfgenmsg header");
    };
    if payload.len() < NFGENMSG_LEN {
        return bad("nfgenmsg header cut short");
    }
    if *family != AF_INET {
        return bad(format!("address family {family}, not IPv4"));
    }
    let (mut orig, mut reply) = (None, None);
    let mut e = Entry {
        orig: Tuple::tcp(Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0),
        reply: Tuple::tcp(Ipv4Addr::UNSPECIFIED, 0, Ipv4Addr::UNSPECIFIED, 0),
        status: 0,
        timeout: 0,
        mark: 0,
        zone: 0,
        id: None,
        tcp: None,
    };
    for a in attrs(&payload[NFGENMSG_LEN..]) {
        match a? {
            (CTA_TUPLE_ORIG, v) => orig = Some(decode_tuple(v, "original")?),
            (CTA_TUPLE_REPLY, v) => reply = Some(decode_tuple(v, "reply")?),
            (CTA_STATUS, v) => e.status = be32(v, "CTA_STATUS")?,
            (CTA_TIMEOUT, v) => e.timeout = be32(v, "CTA_TIMEOUT")?,
            (CTA_MARK, v) => e.mark = be32(v, "CTA_MARK")?,
            (CTA_ID, v) => e.id = Some(be32(v, "CTA_ID")?),
            (CTA_ZONE, v) => e.zone = be16(v, "CTA_ZONE")?,
            (CTA_PROTOINFO, v) => e.tcp = decode_tcp(v)?,
            _ => {}
        }
    }
    let (Some(orig), Some(reply)) = (orig, reply) else {
        return bad("entry without original and reply tuples");
    };
    e.orig = orig;
    e.reply = reply;
    Ok(e)
}

// enum ctattr_type (accounting), ctattr_counters, ctattr_tstamp
const CTA_COUNTERS_ORIG: u16 = 9;
const CTA_COUNTERS_REPLY: u16 = 10;
const CTA_TIMESTAMP: u16 = 20;
const CTA_COUNTERS_PACKETS: u16 = 1;
const CTA_COUNTERS_BYTES: u16 = 2;
const CTA_TIMESTAMP_START: u16 = 1;
const CTA_TIMESTAMP_STOP: u16 = 2;

fn be64(v: &[u8], what: &str) -> Result<u64, Malformed> {
    fixed::<8>(v, what).map(u64::from_be_bytes)
}

fn decode_counters(buf: &[u8], which: &str) -> Result<Counters, Malformed> {
    let mut c = Counters::default();
    for a in attrs(buf) {
        match a? {
            (CTA_COUNTERS_PACKETS, v) => c.packets = be64(v, which)?,
            (CTA_COUNTERS_BYTES, v) => c.bytes = be64(v, which)?,
            _ => {}
        }
    }
    Ok(c)
}

/// The accounting of a ctnetlink entry (destroy events carry it when
/// `nf_conntrack_acct` and `nf_conntrack_timestamp` are on).
pub(crate) fn decode_accounting(payload: &[u8]) -> Result<Accounting, Malformed> {
    let mut acct = Accounting::default();
    for a in attrs(payload.get(NFGENMSG_LEN..).unwrap_or(&[])) {
        match a? {
            (CTA_COUNTERS_ORIG, v) => acct.orig = Some(decode_counters(v, "CTA_COUNTERS_ORIG")?),
            (CTA_COUNTERS_REPLY, v) => acct.reply = Some(decode_counters(v, "CTA_COUNTERS_REPLY")?),
            (CTA_TIMESTAMP, v) => {
                for t in attrs(v) {
                    match t? {
                        (CTA_TIMESTAMP_START, v) => {
                            acct.start_ns = Some(be64(v, "CTA_TIMESTAMP_START")?)
                        }
                        (CTA_TIMESTAMP_STOP, v) => {
                            acct.stop_ns = Some(be64(v, "CTA_TIMESTAMP_STOP")?)
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }
    Ok(acct)
}

/// Packets and bytes of one direction (for the tests' messages).
#[cfg(test)]
pub(crate) fn put_accounting(buf: &mut Vec<u8>, acct: &Accounting) {
    for (kind, c) in [
        (CTA_COUNTERS_ORIG, acct.orig),
        (CTA_COUNTERS_REPLY, acct.reply),
    ] {
        if let Some(c) = c {
            nest(buf, kind, |b| {
                put(b, CTA_COUNTERS_PACKETS, &c.packets.to_be_bytes());
                put(b, CTA_COUNTERS_BYTES, &c.bytes.to_be_bytes());
            });
        }
    }
    if acct.start_ns.is_some() || acct.stop_ns.is_some() {
        nest(buf, CTA_TIMESTAMP, |b| {
            if let Some(t) = acct.start_ns {
                put(b, CTA_TIMESTAMP_START, &t.to_be_bytes());
            }
            if let Some(t) = acct.stop_ns {
                put(b, CTA_TIMESTAMP_STOP, &t.to_be_bytes());
            }
        });
    }
}

#[cfg(test)]
mod tests;
