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

impl SessionCache {
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
