//! The passive's copy of the active's session table.

use std::collections::HashMap;
use std::time::Duration;

use super::entry::{Session, SessionKey};
use crate::Time;

#[derive(Debug, Clone, Default)]
pub struct SessionCache {
    map: HashMap<SessionKey, Cached>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cached {
    pub session: Session,
    /// When the last update for it arrived: its expiry counts from here.
    pub updated: Time,
    /// The receiver's local bulk generation that last touched it: a bulk's
    /// end drops entries of older generations.
    tag: u64,
}

/// The most memory the cache takes per session it holds: one hash table
/// slot (key and value) plus its control byte, at the lowest load the
/// table falls to (std's table doubles at 7/8 full, so just after growing
/// it is 7/16 full), rounded up. `hafw-model::sessions` budgets it per
/// session; the test below holds the figure to the real slot size.
pub const MAX_BYTES_PER_SESSION: u64 = 256;

impl SessionCache {
    /// The heap the table holds now: every slot of its capacity, used or
    /// not (`hafw bench sync` divides it by the sessions held).
    pub fn heap_bytes(&self) -> u64 {
        let slot = std::mem::size_of::<(SessionKey, Cached)>() + 1;
        (self.map.capacity() * slot) as u64
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn get(&self, key: &SessionKey) -> Option<&Cached> {
        self.map.get(key)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Session> {
        self.map.values().map(|c| &c.session)
    }

    /// The sessions, sorted by key (for comparisons and stable output).
    pub fn sorted(&self) -> Vec<Session> {
        let mut v: Vec<Session> = self.iter().copied().collect();
        v.sort_unstable_by_key(|s| s.key);
        v
    }

    pub(crate) fn upsert(&mut self, session: Session, now: Time, tag: u64) {
        self.map.insert(
            session.key,
            Cached {
                session,
                updated: now,
                tag,
            },
        );
    }

    pub(crate) fn remove(&mut self, key: &SessionKey) -> bool {
        self.map.remove(key).is_some()
    }

    /// Drops the entries no message of generation `tag` touched; returns
    /// their keys.
    pub(crate) fn sweep(&mut self, tag: u64) -> Vec<SessionKey> {
        let mut gone = Vec::new();
        self.map.retain(|k, c| {
            let keep = c.tag == tag;
            if !keep {
                gone.push(*k);
            }
            keep
        });
        gone
    }

    /// Drops entries whose timeout (plus `grace`) ran out since their last
    /// update; returns their keys and the earliest deadline left.
    pub(crate) fn expire(&mut self, now: Time, grace: Duration) -> (Vec<SessionKey>, Option<Time>) {
        let mut gone = Vec::new();
        let mut next: Option<Time> = None;
        self.map.retain(|k, c| {
            let deadline = c.updated + Duration::from_secs(u64::from(c.session.timeout_s)) + grace;
            if deadline <= now {
                gone.push(*k);
                false
            } else {
                next = Some(next.map_or(deadline, |n| n.min(deadline)));
                true
            }
        });
        (gone, next)
    }

    pub(crate) fn take(&mut self) -> Vec<Session> {
        self.map.drain().map(|(_, c)| c.session).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_budget_holds_a_slot_at_the_lowest_load() {
        let slot = (std::mem::size_of::<(SessionKey, Cached)>() + 1) as u64;
        // 16/7: a table that just doubled from 7/8 full.
        let worst = slot * 16 / 7 + 1;
        assert!(
            worst <= MAX_BYTES_PER_SESSION,
            "a slot of {slot} bytes costs up to {worst} per session; raise MAX_BYTES_PER_SESSION"
        );
    }

    #[test]
    fn heap_bytes_grow_with_the_table() {
        let mut c = SessionCache::default();
        assert_eq!(c.heap_bytes(), 0);
        for n in 0..1000 {
            c.upsert(crate::sessions::tests::session(n, 1), Time::ZERO, 1);
        }
        assert_eq!(c.len(), 1000);
        let per = c.heap_bytes() / c.len() as u64;
        assert!(
            per > 0 && per <= MAX_BYTES_PER_SESSION,
            "{per} bytes per session"
        );
    }
}
