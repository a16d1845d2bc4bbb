//! Is the peer alive, on which paths, and what did it last say?
//!
//! Rules (architecture.md, split-brain rules):
//! - A path is up while it delivered a heartbeat within the detection time
//!   (`interval × miss_count`). The peer is alive while some path is up and
//!   is lost only when every path is silent.
//! - A path silent while another is up is an alarm (`PathDown`), never a
//!   failover. When the peer is first found, paths not heard yet get one
//!   detection time of grace before they are reported down. When the peer
//!   is lost, path alarms are dropped: `PeerLost` says more.
//! - Ordering: the sender numbers each round of heartbeats (the same `seq`
//!   on every path). Per path, a `seq` not above the last one on that path is
//!   a duplicate or reordered copy: counted, never refreshes liveness. Across
//!   paths, only a `seq` above every one seen updates what the peer said, so
//!   a late copy can't bring back an old state.
//! - Adaptive detection: a path's detection time is `detection + misses ×
//!   excess` (capped), where `excess` is how much later than the interval
//!   its heartbeats have recently come (the largest lateness, halving every
//!   `JITTER_HALF_LIFE`; nothing is learnt in the first second of a peer's
//!   run, when detection is four times the fixed time, within the cap). On a loaded host heartbeats queue in the kernel for tens of
//!   milliseconds; a fixed 15 ms detector calls that death and
//!   flaps. A silence longer than the cap is an outage, not jitter, and a
//!   restarted peer's first heartbeat is no sample: neither inflates it.
//! - A peer that restarts numbers from 1 again. Its first heartbeats say
//!   `Initial`, which resets the ordering; if those are all lost, its paths
//!   go silent within one detection time and the reset happens on loss.

use std::time::Duration;

use crate::msg::{Heartbeat, State};
use crate::Time;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Event {
    PeerFound(u32),
    PeerLost,
    PathDown(usize),
    PathUp(usize),
}

/// What the peer said last, with the state it said before (while alive).
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub hb: Heartbeat,
    pub previous_state: Option<State>,
}

#[derive(Debug, Clone, Default)]
pub(crate) struct Path {
    pub up: bool,
    /// `PathDown` was reported and `PathUp` not yet.
    pub alarmed: bool,
    pub deadline: Option<Time>,
    pub last_heard: Option<Time>,
    last_seq: Option<u64>,
    /// The peer's `sent_ns` of the last heartbeat here and when it came.
    echo: Option<(u64, Time)>,
    pub rtt: Option<Duration>,
    pub sent: u64,
    pub received: u64,
    /// Heartbeats the peer sent here that never came (gaps in `seq`).
    pub lost: u64,
    /// Duplicates and reordered copies.
    pub stale: u64,
    /// Recent lateness of heartbeats here, and when it was last raised.
    excess: Duration,
    excess_at: Time,
    /// When the path first heard this peer run (adaptive detection's warm-up).
    up_since: Time,
    /// This path's current detection time (adaptive).
    pub detection: Option<Duration>,
}

/// Adaptive detection's inputs (see the module notes).
#[derive(Debug, Clone, Copy)]
struct Adapt {
    interval: Duration,
    misses: u32,
    max: Duration,
}

#[derive(Debug, Clone)]
pub(crate) struct Liveness {
    detection: Duration,
    adapt: Option<Adapt>,
    pub paths: Vec<Path>,
    pub peer: Option<Peer>,
    newest_seq: Option<u64>,
    pub last_heard: Option<Time>,
}

impl Liveness {
    pub fn new(paths: usize, detection: Duration) -> Liveness {
        Liveness {
            detection,
            adapt: None,
            paths: vec![Path::default(); paths],
            peer: None,
            newest_seq: None,
            last_heard: None,
        }
    }

    /// Turns on adaptive detection up to `max` (off when `max` is not
    /// above the fixed detection time).
    pub fn adaptive(mut self, interval: Duration, misses: u32, max: Duration) -> Liveness {
        self.adapt = (max > self.detection).then_some(Adapt {
            interval,
            misses,
            max,
        });
        self
    }

    /// The detection time a path has after a heartbeat at `now` that came
    /// `gap` after the previous one (`None`: no usable previous one).
    fn path_detection(
        &self,
        p: &mut Path,
        now: Time,
        gap: Option<Duration>,
        warm: bool,
    ) -> Duration {
        let Some(a) = self.adapt else {
            return self.detection;
        };
        if !warm {
            // Nothing learnt yet, and this is when the peer is busiest
            // with us (bulk sync, config): a seen 17 ms hiccup promoted a
            // passive 52 ms after its restart. Four times the fixed time,
            // within the ceiling, until the warm-up is over.
            return self
                .detection
                .checked_mul(4)
                .unwrap_or(a.max)
                .clamp(self.detection, a.max);
        }
        let age = now.saturating_sub(p.excess_at).as_secs_f64();
        let half = super::config::JITTER_HALF_LIFE.as_secs_f64();
        let mut excess = p.excess.mul_f64(0.5f64.powf(age / half));
        if let Some(late) = gap
            .filter(|g| *g <= a.max)
            .map(|g| g.saturating_sub(a.interval))
        {
            excess = excess.max(late);
        }
        p.excess = excess;
        p.excess_at = now;
        excess
            .checked_mul(a.misses)
            .and_then(|x| x.checked_add(self.detection))
            .unwrap_or(a.max)
            .clamp(self.detection, a.max)
    }

    pub fn alive(&self) -> bool {
        self.paths.iter().any(|p| p.up)
    }

    /// What the peer last said, if it is alive.
    pub fn alive_peer(&self) -> Option<&Heartbeat> {
        self.peer.as_ref().filter(|_| self.alive()).map(|p| &p.hb)
    }

    pub fn silent_for(&self, now: Time) -> Option<Duration> {
        self.last_heard.map(|t| now.saturating_sub(t))
    }

    /// Takes a heartbeat on `path` (the caller checked `path` is in range).
    pub fn on_heartbeat(
        &mut self,
        now: Time,
        path: usize,
        hb: &Heartbeat,
        events: &mut Vec<Event>,
    ) {
        let replaced = self
            .peer
            .as_ref()
            .is_some_and(|p| p.hb.node_id != hb.node_id);
        let restarted = hb.state == State::Initial && self.newest_seq.is_some_and(|s| hb.seq <= s);
        if replaced || restarted {
            self.reset_ordering();
        }
        let was_alive = self.alive();
        let initial_detection = self.detection;
        let Some(mut p) = self.paths.get(path).cloned() else {
            return;
        };
        if p.last_seq.is_some_and(|last| hb.seq <= last) {
            self.paths[path].stale += 1;
            return;
        }
        // A (re)starting peer's heartbeat after a silence is no sample: the
        // silence was an outage; nor is anything in the warm-up.
        let fresh = replaced || hb.state == State::Initial;
        // Not reset when the path merely went silent: a silence that ended
        // with the same peer is the very jitter to learn from.
        if p.last_heard.is_none() || fresh {
            p.up_since = now;
        }
        let warm = now.saturating_sub(p.up_since) >= super::config::JITTER_WARMUP;
        let gap = p
            .last_heard
            .filter(|_| !fresh && warm)
            .map(|t| now.saturating_sub(t));
        let detection = self.path_detection(&mut p, now, gap, warm);
        p.detection = Some(detection);
        if let Some(last) = p.last_seq {
            p.lost += hb.seq - last - 1;
        }
        p.last_seq = Some(hb.seq);
        p.received += 1;
        p.last_heard = Some(now);
        p.deadline = Some(now.saturating_add(detection));
        p.echo = Some((hb.sent_ns, now));
        if let Some(sample) = rtt_sample(now, hb) {
            // Smoothed as TCP does (RFC 6298): 7/8 old, 1/8 new.
            p.rtt = Some(p.rtt.map_or(sample, |r| (r * 7 + sample) / 8));
        }
        if !p.up {
            p.up = true;
            if p.alarmed {
                p.alarmed = false;
                events.push(Event::PathUp(path));
            }
        }
        self.paths[path] = p;
        self.last_heard = Some(now);
        if !was_alive {
            events.push(Event::PeerFound(hb.node_id));
            for (i, q) in self.paths.iter_mut().enumerate() {
                if i != path && q.deadline.is_none() {
                    q.deadline = Some(now.saturating_add(initial_detection));
                }
            }
        }
        if self.newest_seq.is_none_or(|s| hb.seq > s) {
            self.newest_seq = Some(hb.seq);
            let previous_state = self.peer.as_ref().filter(|_| was_alive).map(|p| p.hb.state);
            self.peer = Some(Peer {
                hb: hb.clone(),
                previous_state,
            });
        }
    }

    /// Expires silent paths at `now`.
    pub fn on_timeout(&mut self, now: Time, events: &mut Vec<Event>) {
        let was_alive = self.alive();
        let mut expired = Vec::new();
        for (i, p) in self.paths.iter_mut().enumerate() {
            if p.deadline.is_some_and(|d| d <= now) {
                p.deadline = None;
                p.up = false;
                expired.push(i);
            }
        }
        if expired.is_empty() {
            return;
        }
        if self.alive() {
            for i in expired {
                if let Some(p) = self.paths.get_mut(i).filter(|p| !p.alarmed) {
                    p.alarmed = true;
                    events.push(Event::PathDown(i));
                }
            }
        } else if was_alive {
            for p in &mut self.paths {
                p.alarmed = false;
                p.deadline = None;
            }
            self.reset_ordering();
            events.push(Event::PeerLost);
        }
    }

    fn reset_ordering(&mut self) {
        self.newest_seq = None;
        for p in &mut self.paths {
            p.last_seq = None;
        }
    }

    pub fn next_deadline(&self) -> Option<Time> {
        self.paths.iter().filter_map(|p| p.deadline).min()
    }

    /// The echo fields of a heartbeat about to leave on `path`.
    pub fn echo(&self, path: usize, now: Time) -> (u64, u64) {
        match self.paths.get(path).and_then(|p| p.echo) {
            Some((sent_ns, at)) => (sent_ns, nanos(now.saturating_sub(at))),
            None => (0, 0),
        }
    }

    pub fn note_sent(&mut self, path: usize) {
        if let Some(p) = self.paths.get_mut(path) {
            p.sent += 1;
        }
    }
}

/// Round trip from the echo of one of our own `sent_ns`; `None` when there
/// is no echo yet or it can't be ours (e.g. from before our restart).
fn rtt_sample(now: Time, hb: &Heartbeat) -> Option<Duration> {
    if hb.echo_ns == 0 {
        return None;
    }
    let ns = nanos(now)
        .checked_sub(hb.echo_ns)?
        .checked_sub(hb.echo_hold_ns)?;
    Some(Duration::from_nanos(ns))
}

pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Time {
        Duration::from_millis(v)
    }

    fn hb(seq: u64, state: State) -> Heartbeat {
        Heartbeat {
            node_id: 2,
            state,
            term: 1,
            priority: 100,
            preempt: false,
            healthy: true,
            seq,
            sent_ns: 0,
            echo_ns: 0,
            echo_hold_ns: 0,
            config_version: 0,
            config_hash: [0; 32],
        }
    }

    #[test]
    fn one_silent_path_is_an_alarm_all_silent_is_peer_lost() {
        let mut l = Liveness::new(2, ms(30));
        let mut ev = Vec::new();
        l.on_heartbeat(ms(0), 0, &hb(1, State::Passive), &mut ev);
        l.on_heartbeat(ms(1), 1, &hb(1, State::Passive), &mut ev);
        assert_eq!(ev, [Event::PeerFound(2)]);
        ev.clear();
        l.on_heartbeat(ms(20), 0, &hb(2, State::Passive), &mut ev);
        l.on_timeout(ms(31), &mut ev);
        assert_eq!(ev, [Event::PathDown(1)]);
        assert!(l.alive());
        l.on_heartbeat(ms(40), 1, &hb(4, State::Passive), &mut ev);
        assert_eq!(ev, [Event::PathDown(1), Event::PathUp(1)]);
        assert_eq!(l.paths[1].lost, 2, "seq 2 and 3 never came on path 1");
        ev.clear();
        l.on_timeout(ms(70), &mut ev);
        assert_eq!(ev, [Event::PeerLost]);
        assert!(l.alive_peer().is_none());
    }

    #[test]
    fn never_heard_path_gets_a_grace_period_then_alarms() {
        let mut l = Liveness::new(2, ms(30));
        let mut ev = Vec::new();
        l.on_heartbeat(ms(0), 0, &hb(1, State::Passive), &mut ev);
        l.on_heartbeat(ms(10), 0, &hb(2, State::Passive), &mut ev);
        l.on_timeout(ms(29), &mut ev);
        assert_eq!(ev, [Event::PeerFound(2)]);
        l.on_timeout(ms(30), &mut ev);
        assert_eq!(ev, [Event::PeerFound(2), Event::PathDown(1)]);
    }

    #[test]
    fn late_copies_neither_refresh_nor_change_the_peer_state() {
        let mut l = Liveness::new(2, ms(30));
        let mut ev = Vec::new();
        l.on_heartbeat(ms(0), 0, &hb(5, State::Passive), &mut ev);
        l.on_heartbeat(ms(1), 1, &hb(5, State::Passive), &mut ev);
        l.on_heartbeat(ms(2), 0, &hb(4, State::Active), &mut ev);
        l.on_heartbeat(ms(3), 1, &hb(5, State::Active), &mut ev);
        assert_eq!(l.alive_peer().map(|h| h.state), Some(State::Passive));
        assert_eq!(l.paths[0].stale + l.paths[1].stale, 2);
        assert_eq!(l.paths[0].deadline, Some(ms(30)));
    }

    #[test]
    fn a_restarted_peer_is_believed_at_once() {
        let mut l = Liveness::new(1, ms(30));
        let mut ev = Vec::new();
        l.on_heartbeat(ms(0), 0, &hb(500, State::Active), &mut ev);
        l.on_heartbeat(ms(5), 0, &hb(1, State::Initial), &mut ev);
        assert_eq!(l.alive_peer().map(|h| h.state), Some(State::Initial));
        l.on_heartbeat(ms(6), 0, &hb(2, State::Passive), &mut ev);
        assert_eq!(l.alive_peer().map(|h| h.state), Some(State::Passive));
    }

    /// 5 ms x 3 with a 150 ms ceiling, past its warm-up: heard at 0 and
    /// every 5 ms from 1 s on (the next `seq` is returned).
    fn adaptive(max: u64) -> (Liveness, Vec<Event>, u64) {
        let mut l = Liveness::new(1, ms(15)).adaptive(ms(5), 3, ms(max));
        let mut ev = Vec::new();
        l.on_heartbeat(ms(0), 0, &hb(1, State::Passive), &mut ev);
        l.on_heartbeat(ms(1000), 0, &hb(2, State::Passive), &mut ev);
        (l, ev, 3)
    }

    #[test]
    fn late_heartbeats_stretch_the_detection_time_up_to_the_ceiling() {
        let (mut l, mut ev, seq) = adaptive(150);
        l.on_heartbeat(ms(1005), 0, &hb(seq, State::Passive), &mut ev);
        assert_eq!(l.paths[0].deadline, Some(ms(1020)), "on time: 15 ms");
        // 25 ms late: detection 15 + 3 x 25 = 90 ms.
        l.on_heartbeat(ms(1035), 0, &hb(seq + 1, State::Passive), &mut ev);
        assert_eq!(l.paths[0].detection, Some(ms(90)));
        assert_eq!(l.paths[0].deadline, Some(ms(1125)));
        // Later still: capped at 150 ms.
        l.on_heartbeat(ms(1100), 0, &hb(seq + 2, State::Passive), &mut ev);
        assert_eq!(l.paths[0].detection, Some(ms(150)));
        l.on_timeout(ms(1249), &mut ev);
        assert_eq!(ev, [Event::PeerFound(2)], "not lost before the ceiling");
        l.on_timeout(ms(1250), &mut ev);
        assert_eq!(ev, [Event::PeerFound(2), Event::PeerLost]);
        // Back after that silence (under the ceiling): it was jitter, and
        // it is learnt.
        l.on_heartbeat(ms(1260), 0, &hb(seq + 3, State::Passive), &mut ev);
        assert_eq!(l.paths[0].detection, Some(ms(150)));
    }

    #[test]
    fn nothing_is_learnt_in_the_first_second() {
        let mut l = Liveness::new(1, ms(15)).adaptive(ms(5), 3, ms(150));
        let mut ev = Vec::new();
        l.on_heartbeat(ms(0), 0, &hb(1, State::Passive), &mut ev);
        l.on_heartbeat(ms(40), 0, &hb(2, State::Passive), &mut ev);
        assert_eq!(l.paths[0].detection, Some(ms(60)), "warm-up: 4 x 15 ms");
        l.on_heartbeat(ms(1000), 0, &hb(3, State::Passive), &mut ev);
        l.on_heartbeat(ms(1005), 0, &hb(4, State::Passive), &mut ev);
        assert_eq!(
            l.paths[0].detection,
            Some(ms(15)),
            "the 40 ms gap taught nothing"
        );
    }

    #[test]
    fn the_stretch_halves_every_half_life_of_on_time_heartbeats() {
        let (mut l, mut ev, mut seq) = adaptive(150);
        l.on_heartbeat(ms(1045), 0, &hb(seq, State::Passive), &mut ev);
        assert_eq!(l.paths[0].detection, Some(ms(135)), "40 ms late");
        let half = super::super::config::JITTER_HALF_LIFE;
        let mut t = ms(1045);
        while t < ms(1045) + half {
            t += ms(5);
            seq += 1;
            l.on_heartbeat(t, 0, &hb(seq, State::Passive), &mut ev);
        }
        let d = l.paths[0].detection.unwrap();
        assert!(
            d >= ms(74) && d <= ms(76),
            "one half-life later: 15 + 3 x 20 = 75 ms, got {d:?}"
        );
    }

    #[test]
    fn an_outage_or_a_restart_is_no_jitter_sample() {
        let (mut l, mut ev, seq) = adaptive(150);
        // Silent beyond the ceiling: an outage (lost, then back).
        l.on_heartbeat(ms(1400), 0, &hb(seq, State::Passive), &mut ev);
        assert_eq!(l.paths[0].detection, Some(ms(15)));
        // A restarted peer after 100 ms: no sample either, and a new
        // warm-up.
        l.on_heartbeat(ms(1500), 0, &hb(1, State::Initial), &mut ev);
        assert_eq!(l.paths[0].detection, Some(ms(60)));
    }

    #[test]
    fn without_a_ceiling_above_the_detection_time_nothing_adapts() {
        let (mut l, mut ev, seq) = adaptive(15);
        l.on_heartbeat(ms(1014), 0, &hb(seq, State::Passive), &mut ev);
        assert_eq!(l.paths[0].deadline, Some(ms(1029)));
    }

    #[test]
    fn rtt_comes_from_the_echo() {
        let mut l = Liveness::new(1, ms(30));
        let mut ev = Vec::new();
        let mut h = hb(1, State::Passive);
        h.echo_ns = nanos(ms(10));
        h.echo_hold_ns = nanos(ms(2));
        l.on_heartbeat(ms(16), 0, &h, &mut ev);
        assert_eq!(l.paths[0].rtt, Some(ms(4)));
        assert_eq!(l.echo(0, ms(20)), (0, nanos(ms(4))));
    }
}
