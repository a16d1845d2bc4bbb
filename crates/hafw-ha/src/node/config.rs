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

/// The one set of HA defaults: what a deployment file that sets nothing
/// gets (`hafw-model` fills its serde defaults from these) and what
/// [`Config::new`] starts from, so the core in tests and the daemon in
/// production run the same numbers.
pub mod defaults {
    use std::time::Duration;

    /// 200 ms × 5 detects a dead peer in 1 s and does not fail over on a
    /// loaded 2-vCPU VM, where a scheduling stall of a few hundred
    /// milliseconds is ordinary. The VPC's own HAVIP move is measured in
    /// seconds (alicloud-havip.md), so a faster detector buys little there.
    pub const HEARTBEAT_INTERVAL_MS: u32 = 200;
    pub const MISS_COUNT: u32 = 5;
    /// Preemption waits a minute of a healthy, higher-priority node before
    /// it takes the addresses back: a node that has just rebooted should
    /// prove itself before it costs the traffic a second move.
    pub const PREEMPT_HOLD_MS: u32 = 60_000;
    /// No promotion hold: the detection time already is the debounce, and
    /// every millisecond here is added to each unplanned outage (the
    /// README's measured outages are taken with 0).
    pub const PROMOTION_HOLD_MS: u32 = 0;
    /// More than 6 promotions in 60 s suspend the node: a pair that flaps
    /// this often is broken, and moving the HAVIPs makes it worse.
    pub const FLAP_TRANSITIONS: u32 = 6;
    pub const FLAP_WINDOW_S: u32 = 60;

    /// Booted together, the nodes must hear each other before either takes
    /// the HAVIPs alone (a cold-start race makes both announce).
    pub const INITIAL_LISTEN: Duration = Duration::from_millis(500);

    /// How long an active that hands over waits to see its peer active:
    /// long enough for the peer to promote and say so in a heartbeat, even
    /// with the default timers on a loaded machine.
    pub fn takeover_wait(heartbeat_interval: Duration) -> Duration {
        heartbeat_interval
            .saturating_mul(4)
            .max(Duration::from_millis(500))
    }

    /// Adaptive detection's ceiling: on a loaded host heartbeats queue in
    /// the kernel for tens, at worst hundreds, of milliseconds. Up to
    /// 500 ms (or twice the fixed time) a path's detection time grows with
    /// the lateness it has seen.
    pub fn max_detection(detection: Duration) -> Duration {
        detection.saturating_mul(2).max(Duration::from_millis(500))
    }
}

impl Config {
    /// The [`defaults`]: 200 ms × 5 = 1 s detection, two paths, no
    /// preemption (60 s hold if turned on), no promotion hold, 6 promotions
    /// a minute, and the waits derived from those timers.
    pub fn new(node_id: u32, priority: u8) -> Config {
        let heartbeat_interval = Duration::from_millis(u64::from(defaults::HEARTBEAT_INTERVAL_MS));
        let detection = heartbeat_interval.saturating_mul(defaults::MISS_COUNT);
        Config {
            node_id,
            priority,
            preempt: false,
            preempt_hold: Duration::from_millis(u64::from(defaults::PREEMPT_HOLD_MS)),
            promotion_hold: Duration::from_millis(u64::from(defaults::PROMOTION_HOLD_MS)),
            heartbeat_interval,
            miss_count: defaults::MISS_COUNT,
            paths: 2,
            flap_limit: FlapLimit {
                transitions: defaults::FLAP_TRANSITIONS,
                window: Duration::from_secs(u64::from(defaults::FLAP_WINDOW_S)),
            },
            takeover_wait: defaults::takeover_wait(heartbeat_interval),
            initial_listen: defaults::INITIAL_LISTEN,
            max_detection: defaults::max_detection(detection),
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
    fn defaults_are_the_files_and_the_waits_follow_the_timers() {
        let c = Config::new(1, 100);
        assert_eq!(c.preempt_hold, Duration::from_secs(60));
        assert_eq!(c.promotion_hold, Duration::ZERO);
        assert_eq!(
            c.flap_limit,
            FlapLimit {
                transitions: 6,
                window: Duration::from_secs(60)
            }
        );
        assert_eq!(c.takeover_wait, Duration::from_millis(800));
        assert_eq!(c.initial_listen, Duration::from_millis(500));
        assert_eq!(c.max_detection, Duration::from_secs(2));
        // Fast timers: the floors hold.
        let fast = Duration::from_millis(5);
        assert_eq!(defaults::takeover_wait(fast), Duration::from_millis(500));
        assert_eq!(
            defaults::max_detection(fast * 3),
            Duration::from_millis(500)
        );
        assert_eq!(defaults::takeover_wait(Duration::MAX), Duration::MAX);
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
