//! Counters out of `nft -j list table inet hafw`: each counted rule's and
//! each set element's counter, summed by comment (a grouped rule has one
//! element per source x destination x port, all commented `rule NAME`).
//! Only the objects the caller names are kept, so the result is bounded
//! by the policy whatever the listing holds.

use std::collections::BTreeMap;

use serde::Deserialize;

/// Packets and bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, Deserialize)]
pub struct Count {
    pub packets: u64,
    pub bytes: u64,
}

impl Count {
    pub fn plus(self, o: Count) -> Count {
        Count {
            packets: self.packets.saturating_add(o.packets),
            bytes: self.bytes.saturating_add(o.bytes),
        }
    }

    /// Either figure is lower than `o`'s: the counter was reset.
    pub fn below(self, o: Count) -> bool {
        self.packets < o.packets || self.bytes < o.bytes
    }
}

/// One listing of the table: its handle (a new table, replaced whole, has
/// a new one) and the counters by comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub handle: u64,
    pub counts: BTreeMap<String, Count>,
}

#[derive(Deserialize)]
struct Top {
    nftables: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Table {
    handle: u64,
}

#[derive(Deserialize)]
struct Rule {
    comment: Option<String>,
    #[serde(default)]
    expr: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Set {
    #[serde(default)]
    elem: Vec<serde_json::Value>,
}

#[derive(Deserialize)]
struct Elem {
    comment: Option<String>,
    counter: Option<Count>,
}

/// Parses the JSON listing; `wanted` says which comments to keep. An
/// object of another shape than expected is skipped; no table object, or
/// text that is not the listing's JSON, is an error saying so.
pub fn parse(json: &str, wanted: &dyn Fn(&str) -> bool) -> Result<Listing, String> {
    let top: Top = serde_json::from_str(json)
        .map_err(|e| format!("nft -j list table: not the JSON listing expected ({e})"))?;
    let mut handle = None;
    let mut counts: BTreeMap<String, Count> = BTreeMap::new();
    let mut add = |comment: String, c: Count| {
        if wanted(&comment) {
            let e = counts.entry(comment).or_default();
            *e = e.plus(c);
        }
    };
    for obj in top.nftables {
        let serde_json::Value::Object(mut map) = obj else {
            continue;
        };
        if let Some(t) = map.remove("table") {
            if let Ok(t) = serde_json::from_value::<Table>(t) {
                handle.get_or_insert(t.handle);
            }
        } else if let Some(r) = map.remove("rule") {
            let Ok(r) = serde_json::from_value::<Rule>(r) else {
                continue;
            };
            let (Some(comment), Some(c)) = (r.comment, rule_counter(&r.expr)) else {
                continue;
            };
            add(comment, c);
        } else if let Some(s) = map.remove("set") {
            let Ok(s) = serde_json::from_value::<Set>(s) else {
                continue;
            };
            for e in s.elem {
                // `{"elem": {"val": .., "comment": .., "counter": ..}}`; an
                // element without counter or comment is a bare value.
                let serde_json::Value::Object(mut m) = e else {
                    continue;
                };
                let Some(inner) = m.remove("elem") else {
                    continue;
                };
                if let Ok(Elem {
                    comment: Some(comment),
                    counter: Some(c),
                }) = serde_json::from_value::<Elem>(inner)
                {
                    add(comment, c);
                }
            }
        }
    }
    let handle = handle.ok_or("nft -j list table: the listing has no table object")?;
    Ok(Listing { handle, counts })
}

/// The first anonymous counter statement of a rule's expressions.
fn rule_counter(expr: &[serde_json::Value]) -> Option<Count> {
    expr.iter()
        .find_map(|e| e.get("counter"))
        .and_then(|c| serde_json::from_value::<Count>(c.clone()).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Cut from a real listing (nft 1.0.6) of the seed with a grouped run.
    const LISTING: &str = r#"{"nftables": [{"metainfo": {"version": "1.0.6", "release_name": "Lester Gooch #5", "json_schema_version": 1}},
{"table": {"family": "inet", "name": "hafw", "handle": 7}},
{"counter": {"family": "inet", "name": "ha_rate_dropped", "table": "hafw", "handle": 3, "packets": 4, "bytes": 400}},
{"set": {"family": "inet", "name": "untrust_to_trust_g1", "table": "hafw", "type": ["ipv4_addr", "ipv4_addr", "inet_service"], "handle": 15, "flags": ["interval"], "elem": [{"elem": {"val": {"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, "10.0.10.10", 80]}, "comment": "rule web-in", "counter": {"packets": 3, "bytes": 180}}}, {"elem": {"val": {"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, "10.0.10.11", 443]}, "comment": "rule web-in-2", "counter": {"packets": 1, "bytes": 60}}}, {"elem": {"val": {"concat": [{"prefix": {"addr": "0.0.0.0", "len": 0}}, "10.0.10.12", 443]}, "comment": "rule web-in-2", "counter": {"packets": 2, "bytes": 120}}}], "stmt": [{"counter": null}]}},
{"rule": {"family": "inet", "table": "hafw", "chain": "forward", "handle": 39, "comment": "default deny: no rule connects these zones", "expr": [{"counter": {"packets": 0, "bytes": 0}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "hafw", "chain": "untrust_to_trust", "handle": 40, "comment": "rules web-in .. web-in-2 (2 rules)", "expr": [{"match": {"op": "==", "left": {"concat": []}, "right": "@untrust_to_trust_g1"}}, {"counter": {"packets": 6, "bytes": 360}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "hafw", "chain": "untrust_to_trust", "handle": 41, "comment": "default deny untrust -> trust", "expr": [{"counter": {"packets": 9, "bytes": 540}}, {"drop": null}]}},
{"rule": {"family": "inet", "table": "hafw", "chain": "trust_to_untrust", "handle": 42, "comment": "rule servers-out", "expr": [{"match": {"op": "==", "left": {"payload": {"protocol": "ip", "field": "saddr"}}, "right": {"prefix": {"addr": "10.0.10.0", "len": 24}}}}, {"counter": {"packets": 5, "bytes": 300}}, {"accept": null}]}},
{"rule": {"family": "inet", "table": "hafw", "chain": "prerouting", "handle": 44, "comment": "dnat web", "expr": [{"counter": {"packets": 2, "bytes": 120}}, {"dnat": {"family": "ip", "addr": "10.0.10.10"}}]}}]}"#;

    fn all(_: &str) -> bool {
        true
    }

    fn c(packets: u64, bytes: u64) -> Count {
        Count { packets, bytes }
    }

    #[test]
    fn rules_and_set_elements_sum_by_comment() {
        let l = parse(LISTING, &|k: &str| !k.starts_with("rules ")).unwrap();
        assert_eq!(l.handle, 7);
        assert_eq!(l.counts["rule web-in"], c(3, 180));
        assert_eq!(l.counts["rule web-in-2"], c(3, 180));
        assert_eq!(l.counts["rule servers-out"], c(5, 300));
        assert_eq!(l.counts["default deny untrust -> trust"], c(9, 540));
        assert_eq!(l.counts["dnat web"], c(2, 120));
        assert!(!l.counts.contains_key("rules web-in .. web-in-2 (2 rules)"));
        // Named counters have no comment: not a rule's.
        assert_eq!(l.counts.len(), 6);
    }

    #[test]
    fn only_wanted_comments_are_kept() {
        let l = parse(LISTING, &|k: &str| k == "dnat web").unwrap();
        assert_eq!(l.counts.len(), 1);
    }

    #[test]
    fn malformed_listings_are_errors_or_skipped_never_a_panic() {
        assert!(parse("", &all).is_err());
        assert!(parse("[]", &all).is_err());
        assert!(parse(r#"{"nftables": []}"#, &all)
            .unwrap_err()
            .contains("no table"));
        // Odd objects are skipped.
        let odd = r#"{"nftables": [1, "x", {"table": {"handle": "no"}}, {"table": {"handle": 3}},
            {"rule": {"comment": 5}}, {"rule": {"comment": "rule a", "expr": [{"counter": {"packets": -1}}]}},
            {"rule": {"comment": "rule b"}}, {"set": {"elem": [1, {"elem": 2}, {"elem": {"comment": "rule c"}}]}},
            {"set": {"elem": "x"}}]}"#;
        let l = parse(odd, &all).unwrap();
        assert_eq!(l.handle, 3);
        assert!(l.counts.is_empty(), "{:?}", l.counts);
        // Saturating sums.
        let big = r#"{"nftables": [{"table": {"handle": 1}},
            {"rule": {"comment": "rule a", "expr": [{"counter": {"packets": 18446744073709551615, "bytes": 1}}]}},
            {"rule": {"comment": "rule a", "expr": [{"counter": {"packets": 5, "bytes": 1}}]}}]}"#;
        assert_eq!(parse(big, &all).unwrap().counts["rule a"], c(u64::MAX, 2));
        // Every truncation of a real listing.
        for n in (0..LISTING.len()).step_by(7) {
            if let Some(s) = LISTING.get(..n) {
                assert!(parse(s, &all).is_err());
            }
        }
    }
}
