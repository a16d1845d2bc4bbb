//! What `hafw rules` shows: one row per counted object, in policy order,
//! with this node's, the peer's and the pair's packets, bytes and last
//! hit. The JSON is stable (documented in docs/rule-hits.md); the text is
//! a table read at a glance.

use std::fmt;

use hafw_model::render::nft::counted::Kind;
use serde::Serialize;

use super::store::Store;
use super::SAMPLE_EVERY;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Figures {
    pub packets: u64,
    pub bytes: u64,
    /// Unix ms; None: never seen growing.
    pub last_hit_ms: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Row {
    /// `rule`, `default-deny`, `dnat`, `snat`.
    pub kind: &'static str,
    pub name: String,
    pub from: String,
    pub to: String,
    pub action: &'static str,
    /// The counted object's comment in the ruleset.
    pub key: String,
    pub node: Figures,
    /// None: nothing heard from the peer for it.
    pub peer: Option<Figures>,
    pub pair: Figures,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub node: String,
    pub now_ms: u64,
    /// The sampling period: the resolution of `last_hit_ms`.
    pub sample_every_ms: u64,
    /// When the peer's totals last arrived (Unix ms).
    pub peer_heard_ms: Option<u64>,
    /// Entries from the peer naming no object of this policy.
    pub peer_dropped_unknown: u64,
    /// Messages from the peer that did not decode.
    pub peer_dropped_malformed: u64,
    pub rules: Vec<Row>,
}

fn hit(ms: u64) -> Option<u64> {
    (ms != 0).then_some(ms)
}

impl Report {
    pub fn of(s: &Store, node: &str, now_ms: u64) -> Report {
        let rules = s
            .policy()
            .iter()
            .map(|c| {
                let own = s.own(&c.key).copied().unwrap_or_default();
                let t = own.total();
                let here = Figures {
                    packets: t.packets,
                    bytes: t.bytes,
                    last_hit_ms: hit(own.last_hit_ms),
                };
                let peer = s.peer(&c.key).map(|p| Figures {
                    packets: p.total.packets,
                    bytes: p.total.bytes,
                    last_hit_ms: hit(p.last_hit_ms),
                });
                let p = peer.unwrap_or_default();
                Row {
                    kind: c.kind.as_str(),
                    name: c.name.clone(),
                    from: c.from.clone(),
                    to: c.to.clone(),
                    action: c.action,
                    key: c.key.clone(),
                    node: here,
                    peer,
                    pair: Figures {
                        packets: here.packets.saturating_add(p.packets),
                        bytes: here.bytes.saturating_add(p.bytes),
                        last_hit_ms: here.last_hit_ms.max(p.last_hit_ms),
                    },
                }
            })
            .collect();
        Report {
            node: node.into(),
            now_ms,
            sample_every_ms: SAMPLE_EVERY.as_millis() as u64,
            peer_heard_ms: s.peer_heard_ms(),
            peer_dropped_unknown: s.drops.unknown,
            peer_dropped_malformed: s.drops.malformed,
            rules,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
            + "\n"
    }
}

fn ago(now_ms: u64, at: Option<u64>) -> String {
    let Some(at) = at else {
        return "never".into();
    };
    let s = now_ms.saturating_sub(at) / 1000;
    match s {
        0..=119 => format!("{s} s ago"),
        120..=7199 => format!("{} min ago", s / 60),
        7200..=172_799 => format!("{} h ago", s / 3600),
        _ => format!("{} d ago", s / 86_400),
    }
}

fn bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let zones = |r: &Row| {
            if r.from.is_empty() {
                "-".to_string()
            } else {
                format!("{} -> {}", r.from, r.to)
            }
        };
        let name = |r: &Row| match Kind::Rule.as_str() == r.kind {
            true => r.name.clone(),
            false => format!("({} {})", r.kind, r.name),
        };
        let w_name = self
            .rules
            .iter()
            .map(|r| name(r).len())
            .max()
            .unwrap_or(4)
            .max(4);
        let w_zones = self
            .rules
            .iter()
            .map(|r| zones(r).len())
            .max()
            .unwrap_or(5)
            .max(5);
        writeln!(
            f,
            "{:<w_name$}  {:<w_zones$}  {:<6}  {:>10}  {:>10}  {:>10}  {:>10}  LAST HIT (PAIR)",
            "RULE", "ZONES", "ACTION", "PKTS HERE", "PKTS PEER", "PKTS PAIR", "BYTES PAIR",
        )?;
        for r in &self.rules {
            writeln!(
                f,
                "{:<w_name$}  {:<w_zones$}  {:<6}  {:>10}  {:>10}  {:>10}  {:>10}  {}",
                name(r),
                zones(r),
                r.action,
                r.node.packets,
                r.peer.map(|p| p.packets.to_string()).unwrap_or("-".into()),
                r.pair.packets,
                bytes(r.pair.bytes),
                ago(self.now_ms, r.pair.last_hit_ms),
            )?;
        }
        let peer = match self.peer_heard_ms {
            Some(t) => format!("peer's totals heard {}", ago(self.now_ms, Some(t))),
            None => "nothing heard from the peer".into(),
        };
        write!(
            f,
            "node {}; {peer}; last hit to within {} s",
            self.node,
            self.sample_every_ms / 1000
        )?;
        if self.peer_dropped_unknown + self.peer_dropped_malformed > 0 {
            write!(
                f,
                "; dropped from the peer: {} unknown names, {} malformed messages",
                self.peer_dropped_unknown, self.peer_dropped_malformed
            )?;
        }
        writeln!(f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hits::parse::{Count, Listing};

    fn store() -> Store {
        let dep = hafw_model::parse("seed", hafw_model::examples::SEED).unwrap();
        let mut s = Store::default();
        s.set_policy(hafw_model::render::nft::counted::counted(&dep));
        let mut counts = std::collections::BTreeMap::new();
        counts.insert(
            "rule web-in".to_string(),
            Count {
                packets: 4,
                bytes: 4096,
            },
        );
        s.observe(10_000, Some(&Listing { handle: 1, counts }));
        s.peer_update(
            11_000,
            &[hafw_ha::hits::Hit {
                key: "rule web-in".into(),
                packets: 6,
                bytes: 100,
                last_hit_ms: 12_000,
            }],
        );
        s
    }

    #[test]
    fn the_pair_is_the_sum_and_the_latest_hit() {
        let r = Report::of(&store(), "fw-a", 20_000);
        let web = &r.rules[0];
        assert_eq!(
            (web.kind, web.name.as_str(), web.action),
            ("rule", "web-in", "accept")
        );
        assert_eq!(web.node.packets, 4);
        assert_eq!(web.peer.unwrap().packets, 6);
        assert_eq!(web.pair.packets, 10);
        assert_eq!(web.pair.bytes, 4196);
        assert_eq!(web.pair.last_hit_ms, Some(12_000));
        assert_eq!(r.rules[1].peer, None);
        assert_eq!(r.rules[1].pair.last_hit_ms, None);
    }

    #[test]
    fn the_text_is_a_table_and_the_json_has_the_documented_fields() {
        let r = Report::of(&store(), "fw-a", 20_000);
        let text = r.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("RULE"), "{text}");
        assert!(
            lines[1].starts_with("web-in") && lines[1].contains("untrust -> trust"),
            "{text}"
        );
        assert!(
            lines[1].contains("8 s ago") && lines[1].contains("4.1 KiB"),
            "{text}"
        );
        assert!(text.contains("(default-deny untrust -> trust)"), "{text}");
        assert!(text.contains("never"), "{text}");
        let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
        assert_eq!(v["rules"][0]["pair"]["packets"], 10);
        assert_eq!(v["rules"][0]["key"], "rule web-in");
        assert_eq!(v["sample_every_ms"], 2000);
        assert!(v["rules"][1]["peer"].is_null());
    }
}
