//! Traffic log records and their two renderings: one JSON object per line
//! (the file) and RFC 5424 (syslog). Pure: the time and the node are
//! inputs. The fields of each kind are fixed and documented in
//! `docs/logs.md`; a field that does not apply to a packet (ports of ICMP,
//! an interface the hook does not know) is left out, never invented.

use std::fmt::Write as _;
use std::net::Ipv4Addr;

use serde_json::{Map, Value};

use crate::ops::audit::rfc3339;

/// A 5-tuple as the packet (or the originator) had it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// IP protocol number.
    pub proto: u8,
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    /// Ports of TCP and UDP (ICMP: none).
    pub ports: Option<(u16, u16)>,
}

/// The name of an IP protocol as the log writes it.
pub fn proto_name(p: u8) -> String {
    match p {
        1 => "icmp".into(),
        6 => "tcp".into(),
        17 => "udp".into(),
        n => n.to_string(),
    }
}

/// What NAT did to a session: the translated source (SNAT: the address
/// and port the far side saw) and the translated destination (DNAT: where
/// the packets really went).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Translation {
    pub src: Option<(Ipv4Addr, u16)>,
    pub dst: Option<(Ipv4Addr, u16)>,
}

impl Translation {
    fn kind(&self) -> &'static str {
        match (self.src.is_some(), self.dst.is_some()) {
            (true, true) => "dnat+snat",
            (false, true) => "dnat",
            _ => "snat",
        }
    }
}

/// Packets and bytes each way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Volume {
    pub orig_packets: u64,
    pub orig_bytes: u64,
    pub reply_packets: u64,
    pub reply_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// A logged packet: `kind` is `deny` (a default deny), or the logged
    /// rule's action (`accept`, `drop`, `reject`, or `rule` when the rule
    /// is not in the policy the node started with).
    Packet {
        kind: &'static str,
        rule: String,
        in_if: Option<String>,
        out_if: Option<String>,
        flow: Flow,
    },
    /// A session left the conntrack table.
    SessionEnd {
        flow: Flow,
        start_ms: Option<u64>,
        end_ms: u64,
        volume: Volume,
    },
    /// A NATed session began.
    NatStart {
        flow: Flow,
        nat: Translation,
        start_ms: u64,
    },
    /// A NATed session ended.
    NatEnd {
        flow: Flow,
        nat: Translation,
        start_ms: Option<u64>,
        end_ms: u64,
        volume: Volume,
    },
    /// Records the rate limit held back, and records lost before the
    /// writer, since the last such record.
    Suppressed {
        suppressed: u64,
        lost: u64,
        since_ms: u64,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub unix_ms: u64,
    pub node: String,
    pub body: Body,
}

impl Record {
    /// The `kind` field (also the metric's label and syslog's MSGID).
    pub fn kind(&self) -> &'static str {
        match &self.body {
            Body::Packet { kind, .. } => kind,
            Body::SessionEnd { .. } => "session-end",
            Body::NatStart { .. } => "nat-start",
            Body::NatEnd { .. } => "nat-end",
            Body::Suppressed { .. } => "suppressed",
        }
    }

    /// Whether the rate limit applies: the `suppressed` record itself
    /// always goes (it is what says the limit acted).
    pub fn limited(&self) -> bool {
        !matches!(self.body, Body::Suppressed { .. })
    }

    /// The record as one JSON object, fields in the documented order.
    pub fn to_json(&self) -> Value {
        let mut m = Map::new();
        m.insert("ts".into(), rfc3339(self.unix_ms).into());
        m.insert("node".into(), self.node.clone().into());
        m.insert("kind".into(), self.kind().into());
        match &self.body {
            Body::Packet {
                rule,
                in_if,
                out_if,
                flow,
                ..
            } => {
                m.insert("rule".into(), rule.clone().into());
                if let Some(i) = in_if {
                    m.insert("in".into(), i.clone().into());
                }
                if let Some(o) = out_if {
                    m.insert("out".into(), o.clone().into());
                }
                flow_fields(&mut m, flow);
            }
            Body::SessionEnd {
                flow,
                start_ms,
                end_ms,
                volume,
            } => {
                flow_fields(&mut m, flow);
                times(&mut m, *start_ms, Some(*end_ms));
                volume_fields(&mut m, volume);
            }
            Body::NatStart {
                flow,
                nat,
                start_ms,
            } => {
                flow_fields(&mut m, flow);
                nat_fields(&mut m, nat);
                times(&mut m, Some(*start_ms), None);
            }
            Body::NatEnd {
                flow,
                nat,
                start_ms,
                end_ms,
                volume,
            } => {
                flow_fields(&mut m, flow);
                nat_fields(&mut m, nat);
                times(&mut m, *start_ms, Some(*end_ms));
                volume_fields(&mut m, volume);
            }
            Body::Suppressed {
                suppressed,
                lost,
                since_ms,
            } => {
                m.insert("suppressed".into(), (*suppressed).into());
                m.insert("lost".into(), (*lost).into());
                m.insert("since".into(), rfc3339(*since_ms).into());
            }
        }
        Value::Object(m)
    }

    /// One line of the JSON-lines file, with its newline.
    pub fn to_json_line(&self) -> String {
        let mut s = self.to_json().to_string();
        s.push('\n');
        s
    }

    /// The record as an RFC 5424 message (no framing): facility local0,
    /// severity notice for what a rule stopped, informational otherwise;
    /// HOSTNAME the node, APP-NAME `hafw`, MSGID the kind, no structured
    /// data, the JSON object as MSG.
    pub fn to_syslog(&self, pid: u32) -> String {
        let severity = match self.kind() {
            "deny" | "drop" | "reject" => 5,
            "suppressed" => 4,
            _ => 6,
        };
        let pri = 16 * 8 + severity;
        let mut out = String::with_capacity(256);
        let _ = write!(
            out,
            "<{pri}>1 {} {} hafw {pid} {} - {}",
            rfc3339(self.unix_ms),
            header_field(&self.node),
            self.kind(),
            self.to_json()
        );
        out
    }
}

/// RFC 5424 header fields are printable US-ASCII without spaces, 1-255
/// characters; anything else becomes `_` (the JSON keeps the real name).
fn header_field(s: &str) -> String {
    let f: String = s
        .chars()
        .take(255)
        .map(|c| if c.is_ascii_graphic() { c } else { '_' })
        .collect();
    if f.is_empty() {
        "-".into()
    } else {
        f
    }
}

fn flow_fields(m: &mut Map<String, Value>, f: &Flow) {
    m.insert("proto".into(), proto_name(f.proto).into());
    m.insert("src".into(), f.src.to_string().into());
    if let Some((sport, _)) = f.ports {
        m.insert("sport".into(), sport.into());
    }
    m.insert("dst".into(), f.dst.to_string().into());
    if let Some((_, dport)) = f.ports {
        m.insert("dport".into(), dport.into());
    }
}

fn nat_fields(m: &mut Map<String, Value>, n: &Translation) {
    m.insert("nat".into(), n.kind().into());
    if let Some((a, p)) = n.src {
        m.insert("xsrc".into(), a.to_string().into());
        m.insert("xsport".into(), p.into());
    }
    if let Some((a, p)) = n.dst {
        m.insert("xdst".into(), a.to_string().into());
        m.insert("xdport".into(), p.into());
    }
}

fn times(m: &mut Map<String, Value>, start: Option<u64>, end: Option<u64>) {
    if let Some(s) = start {
        m.insert("start".into(), rfc3339(s).into());
    }
    if let Some(e) = end {
        m.insert("end".into(), rfc3339(e).into());
    }
}

fn volume_fields(m: &mut Map<String, Value>, v: &Volume) {
    m.insert("packets_out".into(), v.orig_packets.into());
    m.insert("bytes_out".into(), v.orig_bytes.into());
    m.insert("packets_in".into(), v.reply_packets.into());
    m.insert("bytes_in".into(), v.reply_bytes.into());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny() -> Record {
        Record {
            unix_ms: 1_796_700_720_123,
            node: "fw-a".into(),
            body: Body::Packet {
                kind: "deny",
                rule: "default deny untrust -> trust".into(),
                in_if: Some("eth1".into()),
                out_if: Some("eth2".into()),
                flow: Flow {
                    proto: 6,
                    src: "203.0.113.7".parse().unwrap(),
                    dst: "10.0.1.10".parse().unwrap(),
                    ports: Some((40000, 22)),
                },
            },
        }
    }

    #[test]
    fn a_deny_is_one_json_line_with_the_documented_fields_in_order() {
        assert_eq!(
            deny().to_json_line(),
            "{\"ts\":\"2026-12-08T03:32:00.123Z\",\"node\":\"fw-a\",\"kind\":\"deny\",\"rule\":\"default deny untrust -> trust\",\"in\":\"eth1\",\"out\":\"eth2\",\"proto\":\"tcp\",\"src\":\"203.0.113.7\",\"sport\":40000,\"dst\":\"10.0.1.10\",\"dport\":22}\n"
        );
    }

    #[test]
    fn nat_records_carry_the_original_and_translated_addresses() {
        let flow = Flow {
            proto: 6,
            src: "198.51.100.20".parse().unwrap(),
            dst: "10.0.1.100".parse().unwrap(),
            ports: Some((40000, 80)),
        };
        let nat = Translation {
            src: None,
            dst: Some(("10.0.10.10".parse().unwrap(), 80)),
        };
        let r = Record {
            unix_ms: 0,
            node: "fw-a".into(),
            body: Body::NatEnd {
                flow,
                nat,
                start_ms: Some(0),
                end_ms: 1500,
                volume: Volume {
                    orig_packets: 5,
                    orig_bytes: 300,
                    reply_packets: 4,
                    reply_bytes: 9000,
                },
            },
        };
        let v = r.to_json();
        assert_eq!(v["kind"], "nat-end");
        assert_eq!(v["nat"], "dnat");
        assert_eq!(v["xdst"], "10.0.10.10");
        assert_eq!(v["xdport"], 80);
        assert_eq!(v["dst"], "10.0.1.100");
        assert_eq!(v["end"], "1970-01-01T00:00:01.500Z");
        assert_eq!(v["bytes_in"], 9000);
        assert!(v.get("xsrc").is_none());
    }

    /// RFC 5424 section 6: `<PRI>VERSION SP TIMESTAMP SP HOSTNAME SP
    /// APP-NAME SP PROCID SP MSGID SP STRUCTURED-DATA SP MSG`.
    #[test]
    fn the_syslog_message_has_the_rfc_5424_header() {
        let line = deny().to_syslog(42);
        assert!(
            line.starts_with("<133>1 2026-12-08T03:32:00.123Z fw-a hafw 42 deny - {\"ts\""),
            "{line}"
        );
        let mut odd = deny();
        odd.node = "fw a\n".into();
        assert!(odd.to_syslog(1).contains(" fw_a_ hafw 1 "));
    }
}
