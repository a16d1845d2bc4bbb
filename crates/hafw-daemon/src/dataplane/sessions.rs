//! Sizes the conntrack table for `policy.sessions` (hafw-model's
//! `sessions` says how the figure is chosen): `nf_conntrack_max` in this
//! namespace, and the hash table, which is global and only the initial
//! namespace may grow (linux-kernel-notes.md, "Conntrack table size in
//! namespaces"). Written after the ruleset, which loads nf_conntrack.
//!
//! Never shrinks the hash table: another user of the host's conntrack may
//! rely on it, and a smaller table only makes chains longer. A child
//! namespace (the lab) applies what it may and logs the rest with the
//! host's value; it never writes anything global.

use hafw_kernel::sysctl;
use hafw_model::render::node::NodePlan;
use hafw_model::sessions::Capacity;

use crate::log::Log;

const MAX_KEY: &str = "net.netfilter.nf_conntrack_max";
const BUCKETS_KEY: &str = "net.netfilter.nf_conntrack_buckets";
const HASHSIZE: &str = "/sys/module/nf_conntrack/parameters/hashsize";

/// What the kernel holds after [`apply`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    pub capacity: Capacity,
    /// `nf_conntrack_max` in effect in this namespace: the sync cache's
    /// bound (a passive cannot hold more in its kernel either).
    pub conntrack_max: u32,
    pub buckets: Option<u32>,
}

/// The capacity for this node, the host's memory read only when the
/// instance type's is unknown. Checked before anything is applied, so a
/// maximum the host cannot pay for stops the start cleanly.
pub fn capacity(plan: &NodePlan) -> Result<Capacity, String> {
    let host = match plan.sessions.type_memory() {
        Some(_) => None,
        None => host_memory(),
    };
    plan.sessions.capacity(host)
}

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn host_memory() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// Whether this thread's network namespace is the initial one (pid 1's).
pub fn in_initial_netns() -> bool {
    use std::os::unix::fs::MetadataExt;
    let ino = |p: &str| std::fs::metadata(p).ok().map(|m| (m.dev(), m.ino()));
    match (ino("/proc/thread-self/ns/net"), ino("/proc/1/ns/net")) {
        (Some(a), Some(b)) => a == b,
        // Unknown: act as a child, which writes nothing global.
        _ => false,
    }
}

/// Applies `cap`; problems are logged, never fatal: the node runs with
/// the table it got, and the sync cache follows what is in effect.
pub fn apply(cap: Capacity, log: &Log) -> Applied {
    let initial = in_initial_netns();
    let want = cap.max.to_string();
    let before = read_u32(MAX_KEY);
    if before != Some(cap.max) {
        if let Err(e) = sysctl::set(None, MAX_KEY, &want) {
            let held = before.map_or("unknown".to_string(), |v| v.to_string());
            if initial {
                log.warn(format!(
                    "policy.sessions.max: could not set {MAX_KEY} to {want} ({e}); it stays {held}"
                ));
            } else {
                // Some kernels make it read-only in a child namespace,
                // others refuse only a value above the host's.
                log.warn(format!(
                    "policy.sessions.max: {MAX_KEY} stays {held} in this namespace, not {want}: the kernel refused ({e}); a child namespace may not raise it above the host's value, and on some kernels may not change it at all; the sync cache is bounded at {} all the same",
                    before.map_or(cap.max, |b| b.min(cap.max))
                ));
            }
        }
    }
    let conntrack_max = read_u32(MAX_KEY).unwrap_or(cap.max).min(cap.max);
    let buckets = grow_buckets(cap.buckets, initial, log);
    log.info(format!(
        "sessions: {MAX_KEY} = {conntrack_max}, hash buckets = {}, sync cache bound = {conntrack_max} ({} wanted)",
        buckets.map_or("unknown".to_string(), |b| b.to_string()),
        cap.max
    ));
    Applied {
        capacity: cap,
        conntrack_max,
        buckets,
    }
}

/// Grows the hash table to `want` buckets if it is smaller and this is the
/// initial namespace; returns the buckets in effect.
fn grow_buckets(want: u32, initial: bool, log: &Log) -> Option<u32> {
    let now = read_u32(BUCKETS_KEY);
    let Some(now) = now else {
        log.warn(format!(
            "policy.sessions: {BUCKETS_KEY} cannot be read; the hash table is left as it is"
        ));
        return None;
    };
    if now >= want {
        return Some(now);
    }
    if !initial {
        log.warn(format!(
            "policy.sessions: the conntrack hash table has {now} buckets, {want} wanted; it is global and only the initial namespace may grow it (the host's {HASHSIZE})"
        ));
        return Some(now);
    }
    if let Err(e) = std::fs::write(HASHSIZE, want.to_string()) {
        log.warn(format!(
            "policy.sessions: could not grow the conntrack hash table from {now} to {want} buckets ({HASHSIZE}: {e})"
        ));
    }
    read_u32(BUCKETS_KEY)
}

fn read_u32(key: &str) -> Option<u32> {
    sysctl::get(None, key).ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meminfo_total_in_bytes() {
        let text = "MemTotal:       16318480 kB\nMemFree:         1000 kB\n";
        assert_eq!(parse_meminfo(text), Some(16_318_480 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: lots kB\n"), None);
        assert_eq!(parse_meminfo("MemTotal: 18446744073709551615 kB\n"), None);
    }

    #[test]
    fn the_host_memory_is_readable_here() {
        assert!(host_memory().is_some_and(|b| b > 0));
    }
}
