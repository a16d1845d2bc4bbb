//! When a server or the prober ends: a shared flag anyone may raise, and an
//! optional deadline so tests can bound a run without a second thread.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// A stop handle. Clones share the flag, so one clone can stop a server that
/// runs on another thread with another clone.
#[derive(Debug, Clone, Default)]
pub struct Stop {
    flag: Arc<AtomicBool>,
    deadline: Option<Instant>,
}

impl Stop {
    /// A handle that stops only when [`Stop::stop`] is called: a production
    /// server runs until the process is killed.
    pub fn new() -> Self {
        Stop::default()
    }

    /// A handle that also stops by itself `after` from now.
    pub fn after(after: Duration) -> Self {
        Stop {
            flag: Arc::default(),
            deadline: Instant::now().checked_add(after),
        }
    }

    pub fn stop(&self) {
        self.flag.store(true, Ordering::SeqCst);
    }

    pub fn is_stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst) || self.deadline.is_some_and(|d| Instant::now() >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_the_flag() {
        let a = Stop::new();
        let b = a.clone();
        assert!(!b.is_stopped());
        a.stop();
        assert!(b.is_stopped());
    }

    #[test]
    fn deadline_stops_by_itself() {
        let s = Stop::after(Duration::from_millis(20));
        assert!(!s.is_stopped());
        std::thread::sleep(Duration::from_millis(30));
        assert!(s.is_stopped());
    }
}
