//! The pure side of rule hits: the last counters seen, the base carried
//! across table replacements, the time each last grew, and the peer's last
//! totals. Time (Unix ms) and listings are inputs; nothing here reads a
//! clock or the kernel.
//!
//! A node's total for an object is `base + last`: `last` is what its
//! counter in the current table reads, `base` what earlier tables (and
//! earlier runs, through the state file) had counted. A new table handle
//! means the table was replaced whole (its counters start at 0), so `last`
//! moves into `base`; a counter lower than `last` in the same table (an
//! `nft reset`) does the same. Only after a failed apply, whose restore
//! recommits the old listing counters included, is a new handle taken as
//! carrying the counters ([`Store::after_replace`]).

use std::collections::BTreeMap;

use hafw_model::render::nft::counted::Counted;

use super::parse::{Count, Listing};

/// While a replacement runs, samples wait, at most this long (a config
/// task that died mid-apply must not stop the counting for ever).
pub const REPLACE_GUARD_MS: u64 = 30_000;

/// One object's counting on this node.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Own {
    pub base: Count,
    pub last: Count,
    /// Unix ms of the sample that last saw the counter grow; 0: never.
    pub last_hit_ms: u64,
}

impl Own {
    pub fn total(&self) -> Count {
        self.base.plus(self.last)
    }
}

/// The peer's totals for one object, as last heard (the highest heard).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Peer {
    pub total: Count,
    pub last_hit_ms: u64,
}

/// What the peer sent that was dropped.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerDrops {
    /// Entries naming no object of the running policy.
    pub unknown: u64,
    /// Messages that did not decode (or were too large).
    pub malformed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct Store {
    policy: Vec<Counted>,
    own: BTreeMap<String, Own>,
    peer: BTreeMap<String, Peer>,
    /// The table handle of the last listing; None: no table seen.
    handle: Option<u64>,
    /// Set by a failed apply: the next listing's new handle carries the
    /// counters (the old listing recommitted).
    carried: bool,
    /// A replacement runs since this Unix ms.
    replacing: Option<u64>,
    /// When the peer's totals last arrived (Unix ms).
    peer_heard_ms: Option<u64>,
    pub drops: PeerDrops,
    /// One more whenever this node's totals or last hits change.
    pub generation: u64,
}

impl Store {
    /// A store carrying `own` and `peer` from the state file, whose
    /// listing had `handle`.
    pub fn restored(
        handle: Option<u64>,
        own: BTreeMap<String, Own>,
        peer: BTreeMap<String, Peer>,
    ) -> Store {
        Store {
            handle,
            own,
            peer,
            ..Store::default()
        }
    }

    /// The running policy's objects. Objects that left it are forgotten
    /// (a renamed rule starts again), new ones start at 0.
    pub fn set_policy(&mut self, policy: Vec<Counted>) {
        let keys: std::collections::BTreeSet<&str> =
            policy.iter().map(|c| c.key.as_str()).collect();
        self.own.retain(|k, _| keys.contains(k.as_str()));
        self.peer.retain(|k, _| keys.contains(k.as_str()));
        for k in keys {
            self.own.entry(k.to_string()).or_default();
        }
        self.policy = policy;
        self.generation += 1;
    }

    pub fn policy(&self) -> &[Counted] {
        &self.policy
    }

    pub fn knows(&self, key: &str) -> bool {
        self.own.contains_key(key)
    }

    /// A sample: `listing` None when the table is absent. Returns whether
    /// anything of this node's changed. Skipped while a replacement runs.
    pub fn observe(&mut self, now_ms: u64, listing: Option<&Listing>) -> bool {
        if let Some(since) = self.replacing {
            if now_ms.saturating_sub(since) < REPLACE_GUARD_MS {
                return false;
            }
            self.replacing = None;
        }
        let carried = std::mem::take(&mut self.carried);
        let Some(listing) = listing else {
            // Gone (withdrawn): whatever comes next is a new table.
            self.handle = None;
            return false;
        };
        let mut changed = false;
        if self.handle != Some(listing.handle) {
            if !carried {
                for o in self.own.values_mut() {
                    o.base = o.base.plus(o.last);
                    o.last = Count::default();
                }
            }
            self.handle = Some(listing.handle);
            changed = true;
        }
        for (key, o) in self.own.iter_mut() {
            let now = listing.counts.get(key).copied().unwrap_or_default();
            if now == o.last {
                continue;
            }
            if now.below(o.last) {
                // Reset in place: what was counted stays counted.
                o.base = o.base.plus(o.last);
                if now != Count::default() {
                    o.last_hit_ms = now_ms;
                }
            } else {
                o.last_hit_ms = now_ms;
            }
            o.last = now;
            changed = true;
        }
        if changed {
            self.generation += 1;
        }
        changed
    }

    /// Just before the table is replaced: `listing` is the sample taken
    /// then; later samples wait for [`Store::after_replace`].
    pub fn before_replace(&mut self, now_ms: u64, listing: Option<&Listing>) {
        self.replacing = None;
        self.observe(now_ms, listing);
        self.replacing = Some(now_ms);
    }

    /// The replacement ended. `restored`: it failed and the old table was
    /// recommitted with its counters, so the next new handle carries them.
    pub fn after_replace(&mut self, restored: bool) {
        self.replacing = None;
        self.carried = restored;
    }

    /// The peer's totals: entries for objects of the running policy are
    /// kept (never lower than already heard, so a pair total does not go
    /// backwards), the others dropped and counted. Returns how many were
    /// dropped.
    pub fn peer_update(&mut self, now_ms: u64, hits: &[hafw_ha::hits::Hit]) -> u64 {
        let mut dropped = 0;
        for h in hits {
            if !self.own.contains_key(&h.key) {
                dropped += 1;
                continue;
            }
            let p = self.peer.entry(h.key.clone()).or_default();
            p.total.packets = p.total.packets.max(h.packets);
            p.total.bytes = p.total.bytes.max(h.bytes);
            p.last_hit_ms = p.last_hit_ms.max(h.last_hit_ms);
        }
        self.drops.unknown += dropped;
        self.peer_heard_ms = Some(now_ms);
        dropped
    }

    pub fn peer_heard_ms(&self) -> Option<u64> {
        self.peer_heard_ms
    }

    /// This node's totals, in policy order, for the peer.
    pub fn own_hits(&self) -> Vec<hafw_ha::hits::Hit> {
        self.policy
            .iter()
            .filter_map(|c| self.own.get(&c.key).map(|o| (c, o)))
            .map(|(c, o)| {
                let t = o.total();
                hafw_ha::hits::Hit {
                    key: c.key.clone(),
                    packets: t.packets,
                    bytes: t.bytes,
                    last_hit_ms: o.last_hit_ms,
                }
            })
            .collect()
    }

    pub fn own(&self, key: &str) -> Option<&Own> {
        self.own.get(key)
    }

    pub fn peer(&self, key: &str) -> Option<&Peer> {
        self.peer.get(key)
    }

    pub fn handle(&self) -> Option<u64> {
        self.handle
    }

    pub fn own_all(&self) -> &BTreeMap<String, Own> {
        &self.own
    }

    pub fn peer_all(&self) -> &BTreeMap<String, Peer> {
        &self.peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hafw_ha::hits::Hit;

    fn policy() -> Vec<Counted> {
        let dep = hafw_model::parse("seed", hafw_model::examples::SEED).unwrap();
        hafw_model::render::nft::counted::counted(&dep)
    }

    fn listing(handle: u64, web: u64) -> Listing {
        let mut counts = BTreeMap::new();
        counts.insert(
            "rule web-in".to_string(),
            Count {
                packets: web,
                bytes: web * 60,
            },
        );
        counts.insert(
            "rule gone".to_string(),
            Count {
                packets: 99,
                bytes: 1,
            },
        );
        Listing { handle, counts }
    }

    fn web(s: &Store) -> Own {
        *s.own("rule web-in").unwrap()
    }

    #[test]
    fn growth_sets_last_hit_and_an_unknown_key_is_ignored() {
        let mut s = Store::default();
        s.set_policy(policy());
        assert!(s.observe(1000, Some(&listing(1, 0))));
        assert_eq!(web(&s).last_hit_ms, 0);
        assert!(s.observe(2000, Some(&listing(1, 3))));
        assert_eq!(web(&s).total().packets, 3);
        assert_eq!(web(&s).last_hit_ms, 2000);
        assert!(!s.observe(3000, Some(&listing(1, 3))));
        assert_eq!(web(&s).last_hit_ms, 2000);
        assert!(s.own("rule gone").is_none());
    }

    #[test]
    fn a_replaced_table_carries_the_totals_on() {
        let mut s = Store::default();
        s.set_policy(policy());
        s.observe(1000, Some(&listing(1, 5)));
        s.before_replace(1500, Some(&listing(1, 7)));
        // Samples wait during the replacement.
        assert!(!s.observe(1600, Some(&listing(2, 0))));
        s.after_replace(false);
        s.observe(2000, Some(&listing(2, 2)));
        assert_eq!(web(&s).total().packets, 9);
        assert_eq!(web(&s).base.packets, 7);
        assert_eq!(web(&s).last_hit_ms, 2000);
    }

    #[test]
    fn a_restored_table_is_not_counted_twice() {
        let mut s = Store::default();
        s.set_policy(policy());
        s.before_replace(1000, Some(&listing(1, 7)));
        s.after_replace(true);
        s.observe(2000, Some(&listing(3, 8)));
        assert_eq!(web(&s).total().packets, 8);
        // The carry is for that one listing only.
        s.observe(3000, Some(&listing(4, 1)));
        assert_eq!(web(&s).total().packets, 9);
    }

    #[test]
    fn a_dead_replacement_stops_holding_samples_back() {
        let mut s = Store::default();
        s.set_policy(policy());
        s.before_replace(1000, Some(&listing(1, 1)));
        assert!(!s.observe(1000 + REPLACE_GUARD_MS - 1, Some(&listing(1, 4))));
        assert!(s.observe(1000 + REPLACE_GUARD_MS, Some(&listing(1, 4))));
    }

    #[test]
    fn a_reset_in_place_and_a_withdrawn_table_lose_nothing() {
        let mut s = Store::default();
        s.set_policy(policy());
        s.observe(1000, Some(&listing(1, 5)));
        s.observe(2000, Some(&listing(1, 2)));
        assert_eq!(web(&s).total().packets, 7);
        s.observe(3000, None);
        s.observe(4000, Some(&listing(1, 1)));
        assert_eq!(web(&s).total().packets, 8);
    }

    #[test]
    fn a_restart_on_the_same_table_continues_and_on_a_new_one_carries() {
        let mut s = Store::default();
        s.set_policy(policy());
        s.observe(1000, Some(&listing(1, 5)));
        let (own, handle) = (s.own_all().clone(), s.handle());
        let mut same = Store::restored(handle, own.clone(), BTreeMap::new());
        same.set_policy(policy());
        same.observe(2000, Some(&listing(1, 6)));
        assert_eq!(web(&same).total().packets, 6);
        let mut new = Store::restored(handle, own, BTreeMap::new());
        new.set_policy(policy());
        new.observe(2000, Some(&listing(9, 1)));
        assert_eq!(web(&new).total().packets, 6);
    }

    #[test]
    fn a_renamed_rule_starts_again() {
        let mut s = Store::default();
        s.set_policy(policy());
        s.observe(1000, Some(&listing(1, 5)));
        let mut p = policy();
        p[0].key = "rule web-in-new".into();
        s.set_policy(p);
        assert!(s.own("rule web-in").is_none());
        assert_eq!(s.own("rule web-in-new").unwrap().total().packets, 0);
    }

    fn hit(key: &str, n: u64) -> Hit {
        Hit {
            key: key.into(),
            packets: n,
            bytes: n,
            last_hit_ms: n,
        }
    }

    #[test]
    fn the_peer_never_goes_backwards_and_unknown_names_are_dropped() {
        let mut s = Store::default();
        s.set_policy(policy());
        assert_eq!(
            s.peer_update(1, &[hit("rule web-in", 5), hit("rule x", 1)]),
            1
        );
        assert_eq!(s.peer_update(2, &[hit("rule web-in", 3)]), 0);
        assert_eq!(s.peer("rule web-in").unwrap().total.packets, 5);
        assert_eq!(s.peer_update(3, &[hit("rule web-in", 8)]), 0);
        assert_eq!(s.peer("rule web-in").unwrap().total.packets, 8);
        // A flood of unknown names: all dropped, counted, nothing kept.
        let flood: Vec<Hit> = (0..5000).map(|i| hit(&format!("rule f{i}"), 1)).collect();
        assert_eq!(s.peer_update(4, &flood), 5000);
        assert_eq!(s.drops.unknown, 5001);
        assert_eq!(s.peer_all().len(), 1);
        // A rule that leaves the policy leaves the peer's part too.
        let mut p = policy();
        p.remove(0);
        s.set_policy(p);
        assert!(s.peer("rule web-in").is_none());
    }

    #[test]
    fn own_hits_follow_the_policy_order() {
        let mut s = Store::default();
        s.set_policy(policy());
        s.observe(1000, Some(&listing(1, 4)));
        let hits = s.own_hits();
        assert_eq!(hits.len(), policy().len());
        assert_eq!(
            hits[0],
            Hit {
                key: "rule web-in".into(),
                packets: 4,
                bytes: 240,
                last_hit_ms: 1000
            }
        );
    }
}
