//! A keyed set that keeps only the newest value per session and remembers
//! the order keys first arrived in, so the oldest change leaves first.
//! Memory is bounded by the number of distinct keys: a key changed a
//! thousand times before a flush is one slot (the sender's backpressure
//! and the receiver's kernel batches both rely on this).
//!
//! Keys leave only from the front (or all at once), so the order queue
//! holds each live key exactly once and never a stale one.

use std::collections::{HashMap, VecDeque};

use super::entry::SessionKey;

#[derive(Debug, Clone)]
pub(crate) struct Coalescer<V> {
    map: HashMap<SessionKey, V>,
    order: VecDeque<SessionKey>,
}

impl<V> Default for Coalescer<V> {
    fn default() -> Self {
        Coalescer {
            map: HashMap::new(),
            order: VecDeque::new(),
        }
    }
}

impl<V> Coalescer<V> {
    pub fn len(&self) -> usize {
        self.map.len()
    }

    #[cfg(test)]
    pub fn order_len(&self) -> usize {
        self.order.len()
    }

    pub fn get_mut(&mut self, key: &SessionKey) -> Option<&mut V> {
        self.map.get_mut(key)
    }

    /// Adds `key` at the back, or replaces its value in place (keeping its
    /// place in the order).
    pub fn upsert(&mut self, key: SessionKey, value: V) {
        if let Some(v) = self.map.get_mut(&key) {
            *v = value;
            return;
        }
        self.map.insert(key, value);
        self.order.push_back(key);
    }

    /// The oldest key and its value.
    pub fn pop_front(&mut self) -> Option<(SessionKey, V)> {
        let key = self.order.pop_front()?;
        let value = self.map.remove(&key)?;
        Some((key, value))
    }

    pub fn front(&self) -> Option<(&SessionKey, &V)> {
        let key = self.order.front()?;
        self.map.get_key_value(key)
    }

    pub fn clear(&mut self) {
        self.map.clear();
        self.order.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(n: u16) -> SessionKey {
        SessionKey {
            src: Ipv4Addr::new(10, 0, 0, 1),
            dst: Ipv4Addr::new(192, 0, 2, 1),
            proto: 6,
            src_port: n,
            dst_port: 80,
        }
    }

    #[test]
    fn newest_value_oldest_position() {
        let mut c = Coalescer::default();
        c.upsert(key(1), "a1");
        c.upsert(key(2), "b1");
        c.upsert(key(1), "a2");
        assert_eq!(c.len(), 2);
        assert_eq!(c.front(), Some((&key(1), &"a2")));
        assert_eq!(c.pop_front(), Some((key(1), "a2")));
        assert_eq!(c.pop_front(), Some((key(2), "b1")));
        assert_eq!(c.pop_front(), None);
    }

    #[test]
    fn churn_on_few_keys_stays_few_slots() {
        let mut c = Coalescer::default();
        for round in 0..10_000u32 {
            c.upsert(key((round % 7) as u16), round);
            if round % 1000 == 999 {
                c.pop_front();
            }
        }
        assert!(c.len() <= 7);
        assert_eq!(c.order_len(), c.len());
    }
}
