//! What a node is told at start, and the checks that make a bad value an
//! error rather than a silent default (style.md rule 5).

use std::fmt;
use std::time::Duration;

/// The HA parameters of one node. Both nodes of a pair should agree on all
/// but `node_id` and `priority`; a mismatch of `preempt` shows as an alarm.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub node_id: u32,
    /// Higher wins the election; on a tie the lower `node_id` wins.
    pub priority: u8,
    /// Take the addresses back from an active peer of lower priority.
    pub preempt: bool,
    /// How long preemption must stay possible before it happens.
    pub preempt_hold: Duration,
    /// How long a promotion must stay justified before it happens (debounces
    /// a peer that restarts or a path that flickers).
    pub promotion_hold: Duration,
    pub heartbeat_interval: Duration,
    /// The peer (or a path) is silent after this many intervals without a
    /// heartbeat.
    pub miss_count: u32,
    /// How many heartbeat paths (HA1, HA1 backup, ...). Path indexes are
    /// `0..paths`.
    pub paths: usize,
    pub flap_limit: FlapLimit,
    /// How long an active that hands over waits to see its peer active
    /// before stepping down anyway.
    pub takeover_wait: Duration,
    /// The least time a starting node listens for its peer before a cold
    /// start makes it active alone (it listens at least one detection time).
    /// Two nodes booted together need more than a fast detection time to
    /// hear each other's first heartbeats (the first ones wait on ARP).
    pub initial_listen: Duration,
    /// Adaptive detection's ceiling. A path's detection time grows with the
    /// jitter its heartbeats show (a silence shorter than this that ended
    /// with the peer still there is jitter, not death): `detection +
    /// miss_count × excess`, where excess is the largest recent lateness of
    /// a heartbeat, halving every [`JITTER_HALF_LIFE`] (none is taken in
    /// a path's first [`JITTER_WARMUP`]). Kept within
    /// `detection()..=max_detection`; at or below `detection()` it is off.
    pub max_detection: Duration,
}

/// How fast a path forgets a late heartbeat (adaptive detection).
pub const JITTER_HALF_LIFE: Duration = Duration::from_secs(5);
/// A path's first second after it comes up teaches adaptive detection
/// nothing: its first heartbeats wait on ARP and on both nodes starting.
pub const JITTER_WARMUP: Duration = Duration::from_secs(1);

/// More than `transitions` promotions within `window` suspend the node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlapLimit {
    pub transitions: u32,
    pub window: Duration,
}

impl Config {
    /// Defaults for a production pair: 200 ms × 5 = 1 s detection, two paths,
    /// no preemption, 500 ms promotion hold, 5 promotions a minute.
    pub fn new(node_id: u32, priority: u8) -> Config {
        Config {
            node_id,
            priority,
            preempt: false,
            preempt_hold: Duration::from_secs(10),
            promotion_hold: Duration::from_millis(500),
            heartbeat_interval: Duration::from_millis(200),
            miss_count: 5,
            paths: 2,
            flap_limit: FlapLimit {
                transitions: 5,
                window: Duration::from_secs(60),
            },
            takeover_wait: Duration::from_secs(2),
            initial_listen: Duration::ZERO,
            max_detection: Duration::from_secs(2),
        }
    }

    /// Silence on a path (or on all paths, for the peer) longer than this
    /// means it is down: `heartbeat_interval × miss_count`.
    pub fn detection(&self) -> Duration {
        self.heartbeat_interval
            .checked_mul(self.miss_count)
            .unwrap_or(Duration::MAX)
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.paths == 0 {
            return Err(ConfigError::NoPaths);
        }
        if self.heartbeat_interval.is_zero() {
            return Err(ConfigError::ZeroHeartbeatInterval);
        }
        if self.miss_count == 0 {
            return Err(ConfigError::ZeroMissCount);
        }
        if self
            .heartbeat_interval
            .checked_mul(self.miss_count)
            .is_none()
        {
            return Err(ConfigError::DetectionOverflow);
        }
        if self.flap_limit.transitions == 0 {
            return Err(ConfigError::ZeroFlapLimit);
        }
        if self.takeover_wait.is_zero() {
            return Err(ConfigError::ZeroTakeoverWait);
        }
        Ok(())
    }
}

/// A [`Config`] the node cannot run with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConfigError {
    NoPaths,
    ZeroHeartbeatInterval,
    ZeroMissCount,
    DetectionOverflow,
    ZeroFlapLimit,
    ZeroTakeoverWait,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ConfigError::NoPaths => "ha: no heartbeat paths: configure at least one HA1 path",
            ConfigError::ZeroHeartbeatInterval => {
                "ha: heartbeat interval is zero: set it to a positive duration (e.g. 200 ms)"
            }
            ConfigError::ZeroMissCount => {
                "ha: miss count is zero: set it to at least 1 (e.g. 5 missed heartbeats)"
            }
            ConfigError::DetectionOverflow => {
                "ha: heartbeat interval × miss count overflows: use a shorter interval or fewer misses"
            }
            ConfigError::ZeroFlapLimit => {
                "ha: flap limit allows no promotion at all: set it to at least 1 transition"
            }
            ConfigError::ZeroTakeoverWait => {
                "ha: takeover wait is zero: a planned handover needs time to be confirmed (e.g. 2 s)"
            }
        })
    }
}

impl std::error::Error for ConfigError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_detect_in_one_second() {
        let c = Config::new(1, 100);
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.detection(), Duration::from_secs(1));
    }

    #[test]
    fn bad_values_are_errors_naming_the_fix() {
        type Spoil = fn(&mut Config);
        let cases: [(Spoil, ConfigError); 5] = [
            (|c| c.paths = 0, ConfigError::NoPaths),
            (
                |c| c.heartbeat_interval = Duration::ZERO,
                ConfigError::ZeroHeartbeatInterval,
            ),
            (|c| c.miss_count = 0, ConfigError::ZeroMissCount),
            (|c| c.flap_limit.transitions = 0, ConfigError::ZeroFlapLimit),
            (
                |c| c.takeover_wait = Duration::ZERO,
                ConfigError::ZeroTakeoverWait,
            ),
        ];
        for (spoil, want) in cases {
            let mut c = Config::new(1, 100);
            spoil(&mut c);
            assert_eq!(c.validate(), Err(want.clone()));
            assert!(want.to_string().starts_with("ha: "));
        }
        let mut c = Config::new(1, 100);
        c.heartbeat_interval = Duration::MAX;
        c.miss_count = 2;
        assert_eq!(c.validate(), Err(ConfigError::DetectionOverflow));
    }
}
