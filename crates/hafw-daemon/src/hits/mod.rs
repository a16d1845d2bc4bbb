//! Rule hits (`hafw rules`): packets, bytes and last hit of every counted
//! object of the policy (each rule, each zone pair's default deny, the
//! unconnected-zones deny, each NAT), on this node, on the peer, and the
//! pair's total.
//!
//! - A sampler thread (`hafw-hits`, never the HA thread) lists the table
//!   as JSON every [`SAMPLE_EVERY`] (`nft -j list table inet hafw`,
//!   [`parse`]) and feeds the pure [`store::Store`]: "last hit" is the
//!   time of the first sample that saw a counter grow, so its resolution
//!   is the sampling period.
//! - An apply replaces the table, which zeroes its counters: the config
//!   task calls [`Hits::before_replace`] (a sample, then samples wait) and
//!   [`Hits::after_replace`], and the store carries each object's count
//!   on by its key (a renamed rule starts again).
//! - The totals go to `<state dir>/rule-hits.json` ([`state`]) whenever
//!   they change (at most once per sample), so a restart carries them too.
//! - The sync thread sends this node's totals to the peer over HA2
//!   (`hafw_ha::hits`) and hands the peer's to [`Hits::peer_message`].

pub mod parse;
pub mod report;
pub mod state;
pub mod store;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hafw_kernel::nft::Family;
use hafw_model::render::nft::counted::Counted;
use tokio::sync::watch;

use self::parse::Listing;
use self::store::Store;
use crate::log::Log;

/// How often the sampler lists the table: the resolution of "last hit".
pub const SAMPLE_EVERY: Duration = Duration::from_secs(2);

/// The node's rule hits, shared by the sampler, the config task, the
/// sync thread and the control socket. Cloning is cheap.
#[derive(Clone)]
pub struct Hits {
    inner: Arc<Inner>,
}

struct Inner {
    node: String,
    ns: Option<String>,
    /// None: the state dir does not exist; the totals live in memory only.
    file: Option<PathBuf>,
    store: Mutex<Store>,
    /// The peer's part changed since the last write.
    dirty: AtomicBool,
    /// The generation last written.
    written: AtomicU64,
    /// This node's generation, for the sync thread (latest value only).
    changed: watch::Sender<u64>,
    log: Log,
}

pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

impl Hits {
    /// The store for `policy`, carried on from `state_dir`'s file when it
    /// holds this node's (a foreign or corrupt file is a warning and a
    /// start from zero).
    pub fn new(
        node: &str,
        ns: Option<&str>,
        state_dir: &std::path::Path,
        policy: Vec<Counted>,
        log: &Log,
    ) -> Hits {
        // Not created here: systemd's StateDirectory makes the default,
        // and a run without it (a test) must not write into the host's.
        let file = state_dir.is_dir().then(|| state::path(state_dir));
        let loaded = match &file {
            Some(f) => state::load(f, node),
            None => {
                log.warn(format!(
                    "rule hits: {} does not exist, so the totals are kept in memory only; create it or pass --state-dir",
                    state_dir.display()
                ));
                Ok(None)
            }
        };
        let mut store = match loaded {
            Ok(Some(s)) => Store::restored(s.handle, s.own, s.peer),
            Ok(None) => Store::default(),
            Err(e) => {
                log.warn(format!("rule hits: {e}"));
                Store::default()
            }
        };
        store.set_policy(policy);
        let (changed, _) = watch::channel(0);
        Hits {
            inner: Arc::new(Inner {
                node: node.into(),
                ns: ns.map(String::from),
                file,
                store: Mutex::new(store),
                dirty: AtomicBool::new(false),
                written: AtomicU64::new(u64::MAX),
                changed,
                log: log.clone(),
            }),
        }
    }

    /// Starts the sampler thread; it ends with the process.
    pub fn spawn_sampler(&self) -> Result<(), String> {
        let hits = self.clone();
        std::thread::Builder::new()
            .name("hafw-hits".into())
            .spawn(move || {
                let mut warned = false;
                loop {
                    std::thread::sleep(SAMPLE_EVERY);
                    match hits.list() {
                        Ok(l) => {
                            warned = false;
                            hits.with(|s| s.observe(now_ms(), l.as_ref()));
                        }
                        Err(e) if !warned => {
                            warned = true;
                            hits.inner.log.warn(format!("rule hits: {e}"));
                        }
                        Err(_) => {}
                    }
                    hits.persist();
                }
            })
            .map(|_| ())
            .map_err(|e| format!("cannot start the rule-hits sampler: {e}"))
    }

    /// The table's listing; None when there is no table.
    fn list(&self) -> Result<Option<Listing>, String> {
        let ns = self.inner.ns.as_deref();
        let json = match hafw_kernel::nft::list_table_json(ns, Family::Inet, "hafw") {
            Ok(j) => j,
            Err(hafw_kernel::Error::Nft { stderr, .. })
                if stderr.contains("No such file or directory") =>
            {
                return Ok(None)
            }
            Err(e) => return Err(format!("cannot list the table: {e}")),
        };
        // Only the policy's keys are kept: bounded by the policy.
        let keys: std::collections::BTreeSet<String> =
            self.with(|s| s.policy().iter().map(|c| c.key.clone()).collect());
        parse::parse(&json, &|k| keys.contains(k)).map(Some)
    }

    fn with<T>(&self, f: impl FnOnce(&mut Store) -> T) -> T {
        let mut g = match self.inner.store.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        };
        let before = g.generation;
        let r = f(&mut g);
        if g.generation != before {
            self.inner.changed.send_replace(g.generation);
        }
        r
    }

    /// Writes the state file when anything changed since the last write.
    fn persist(&self) {
        let (gen_changed, state) = self.with(|s| {
            (
                s.generation,
                state::State::new(
                    &self.inner.node,
                    s.handle(),
                    s.own_all().clone(),
                    s.peer_all().clone(),
                ),
            )
        });
        let own_changed = self.inner.written.swap(gen_changed, Ordering::Relaxed) != gen_changed;
        let peer_changed = self.inner.dirty.swap(false, Ordering::Relaxed);
        if own_changed || peer_changed {
            let Some(file) = &self.inner.file else {
                return;
            };
            if let Err(e) = state::save(file, &state) {
                self.inner.log.warn(format!("rule hits: {e}"));
            }
        }
    }

    /// Just before an apply may replace the table: one sample now, then
    /// samples wait until [`Hits::after_replace`].
    pub fn before_replace(&self) {
        let listing = self.list();
        self.with(|s| s.before_replace(now_ms(), listing.ok().flatten().as_ref()));
    }

    /// The apply ended: `policy` is the running policy's objects after it;
    /// `restored` when it failed (the old table recommitted with its
    /// counters).
    pub fn after_replace(&self, policy: Option<Vec<Counted>>, restored: bool) {
        self.with(|s| {
            if let Some(p) = policy {
                s.set_policy(p);
            }
            s.after_replace(restored);
        });
        // The first look at the new table, at once: what an operator asks
        // right after an apply is already carried on.
        if let Ok(l) = self.list() {
            self.with(|s| s.observe(now_ms(), l.as_ref()));
        }
        self.persist_now();
    }

    fn persist_now(&self) {
        self.inner.dirty.store(true, Ordering::Relaxed);
        self.persist();
    }

    /// A sample now (the control socket's `rules`: what it shows is fresh).
    pub fn sample_now(&self) {
        if let Ok(l) = self.list() {
            self.with(|s| s.observe(now_ms(), l.as_ref()));
        }
    }

    /// This node's totals as HA2 payloads.
    pub fn own_messages(&self) -> Vec<Vec<u8>> {
        hafw_ha::hits::encode(&self.with(|s| s.own_hits()))
    }

    /// Wakes when this node's totals change.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.inner.changed.subscribe()
    }

    /// One HA2 payload of the peer's: Ok(entries dropped as unknown), or
    /// why the message was dropped (counted).
    pub fn peer_message(&self, bytes: &[u8]) -> Result<u64, String> {
        match hafw_ha::hits::decode(bytes) {
            Ok(m) => {
                let dropped = self.with(|s| s.peer_update(now_ms(), &m.hits));
                self.inner.dirty.store(true, Ordering::Relaxed);
                Ok(dropped)
            }
            Err(e) => {
                self.with(|s| s.drops.malformed += 1);
                Err(e.to_string())
            }
        }
    }

    /// The table of `hafw rules` (text) or its JSON.
    pub fn report(&self, json: bool) -> String {
        let r = self.with(|s| report::Report::of(s, &self.inner.node, now_ms()));
        if json {
            r.to_json()
        } else {
            r.to_string()
        }
    }

    /// This node's totals by key, in policy order (for the metrics).
    pub fn own_totals(&self) -> Vec<(String, parse::Count)> {
        self.with(|s| {
            s.policy()
                .iter()
                .filter_map(|c| s.own(&c.key).map(|o| (c.key.clone(), o.total())))
                .collect()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed_policy() -> Vec<Counted> {
        let dep = hafw_model::parse("seed", hafw_model::examples::SEED).unwrap();
        hafw_model::render::nft::counted::counted(&dep)
    }

    fn temp_dir(name: &str) -> PathBuf {
        let d = std::env::temp_dir().join(format!("hafw-hits-mod-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    /// A flood of bad and foreign messages from the peer: every one
    /// dropped and counted, nothing kept beyond the policy's keys.
    #[test]
    fn a_flood_from_the_peer_is_dropped_and_counted() {
        let d = temp_dir("flood");
        let h = Hits::new("fw-a", None, &d, seed_policy(), &Log::quiet());
        for i in 0..1000u32 {
            let mut b = vec![hafw_ha::hits::CHANNEL];
            b.extend_from_slice(&i.to_be_bytes());
            assert!(h.peer_message(&b).is_err());
        }
        let foreign: Vec<hafw_ha::hits::Hit> = (0..3000)
            .map(|i| hafw_ha::hits::Hit {
                key: format!("rule not-ours-{i}"),
                packets: 1,
                bytes: 1,
                last_hit_ms: 1,
            })
            .collect();
        let mut dropped = 0;
        for m in hafw_ha::hits::encode(&foreign) {
            dropped += h.peer_message(&m).unwrap();
        }
        assert_eq!(dropped, 3000);
        let v: serde_json::Value = serde_json::from_str(&h.report(true)).unwrap();
        assert_eq!(v["peer_dropped_malformed"], 1000);
        assert_eq!(v["peer_dropped_unknown"], 3000);
        assert!(v["rules"]
            .as_array()
            .unwrap()
            .iter()
            .all(|r| r["peer"].is_null()));
        assert!(h.with(|s| s.peer_all().is_empty()));
        std::fs::remove_dir_all(&d).unwrap();
    }

    #[test]
    fn a_corrupt_state_file_starts_from_zero_and_a_missing_dir_is_memory_only() {
        let d = temp_dir("corrupt");
        std::fs::write(state::path(&d), b"{not json").unwrap();
        let h = Hits::new("fw-a", None, &d, seed_policy(), &Log::quiet());
        assert_eq!(h.own_totals().len(), seed_policy().len());
        assert!(h.own_totals().iter().all(|(_, c)| c.packets == 0));
        std::fs::remove_dir_all(&d).unwrap();
        let gone = d.join("no-such-dir");
        let h = Hits::new("fw-a", None, &gone, seed_policy(), &Log::quiet());
        h.persist_now();
        assert!(!gone.exists());
    }
}
