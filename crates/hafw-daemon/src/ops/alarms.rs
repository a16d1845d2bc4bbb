//! The pair's alarms that the HA core cannot raise alone, because they
//! need the HA part and session sync's part of the status together:
//!
//! - **no standby**: this node is active and no peer could take over (lost,
//!   never heard, not passive, unhealthy). A survivor after a failover runs
//!   with no protection; that is the most dangerous time of a pair's life,
//!   so it must be loud: an alarm in `hafw status` (text and JSON), the
//!   `hafw_alarm{kind="no_standby"}` gauge, and a log line when it begins
//!   and when it ends.
//! - **handover readiness**: whether a handover now would keep every
//!   session. On the active, a planned handover to the peer (not while HA2
//!   is down: the passive's table goes stale); on the passive, a takeover
//!   by this node ([`hafw_ha::readiness::now`]). `hafw_handover_ready`.
//!
//! The rules are [`hafw_ha::readiness`]'s; this module reads them off a
//! [`Status`] and words them.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hafw_ha::readiness::{self, NoStandby as Why};

use crate::status::{Handover, NoStandby, Status};

/// The alarm kinds of the `hafw_alarm{kind}` gauge, exported at 0 from the
/// start so an alert rule works before the first alarm.
pub const KINDS: [&str; 1] = ["no_standby"];

/// How `no standby` alarms start, in `alarms` and in the log.
pub const NO_STANDBY: &str = "no standby: ";

/// Adds the no-standby alarm and the handover verdict to a status the HA
/// thread built and [`crate::status::add_sync`] completed; `now` is the
/// wall clock at that moment (for "lost since").
pub fn add(s: &mut Status, now: SystemTime) {
    s.no_standby = None;
    s.handover = None;
    s.alarms.retain(|a| !a.starts_with(NO_STANDBY));
    let ha2 = s.session_sync.as_ref().map(|st| st.connected);
    if s.state == "passive" {
        s.handover = s.session_sync.as_ref().map(|st| Handover {
            ready: st.ready,
            reason: st.reason.clone(),
        });
        if s.session_sync.is_none() {
            s.handover = Some(Handover {
                ready: true,
                reason: None,
            });
        }
        return;
    }
    if !s.is_active() {
        return;
    }
    let peer = match &s.peer {
        Some(p) => readiness::Peer {
            heard: true,
            alive: p.alive,
            passive: p.state == "passive",
            healthy: p.healthy,
        },
        None => readiness::Peer {
            heard: false,
            alive: false,
            passive: false,
            healthy: false,
        },
    };
    let verdict = readiness::handover(peer, ha2);
    s.handover = Some(Handover {
        ready: verdict.is_ok(),
        reason: verdict.err().map(|e| handover_reason(e, &s.peer_name)),
    });
    let Err(why) = readiness::standby(peer) else {
        return;
    };
    let name = s.peer_name.clone();
    let ago = s.peer.as_ref().and_then(|p| p.last_heard_ms_ago);
    let since = match why {
        Why::Lost => ago.map(|ms| utc(now - Duration::from_secs_f64(ms.max(0.0) / 1000.0))),
        _ => None,
    };
    let text = match (why, &since, ago) {
        (Why::Lost, Some(t), Some(ms)) => {
            format!("peer {name} lost since {t} ({:.1} s ago)", ms / 1000.0)
        }
        (Why::Lost, _, _) => format!("peer {name} lost"),
        (Why::NeverHeard, _, _) => format!("peer {name} never heard since this node started"),
        (Why::NotPassive, _, _) => format!(
            "peer {name} is {}",
            s.peer.as_ref().map_or("not passive", |p| p.state.as_str())
        ),
        (Why::Unhealthy, _, _) => {
            format!("peer {name} is passive but unhealthy (its monitors fail)")
        }
    };
    s.alarms.push(format!("{NO_STANDBY}{text}"));
    s.no_standby = Some(NoStandby {
        peer: name,
        why: why.to_string(),
        since_ms_ago: if why == Why::Lost { ago } else { None },
        since,
    });
}

fn handover_reason(e: readiness::NotReady, peer: &str) -> String {
    match e {
        readiness::NotReady::Ha2Disconnected => format!(
            "HA2 disconnected: {peer} gets no session changes, a planned handover would lose sessions"
        ),
        readiness::NotReady::NoStandby(why) => format!("no standby: peer {peer} is {why}"),
        other => other.to_string(),
    }
}

/// A wall-clock time as `2026-12-04 21:03:14 UTC` (no time-zone database
/// needed; the log's own timestamps are UTC too).
pub fn utc(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to (year, month, day), proleptic Gregorian
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Remembers which alarms are on, so each is logged once when it begins
/// and once when it ends, however often the status is sampled.
#[derive(Debug, Default)]
pub struct AlarmLog {
    no_standby: Option<String>,
    handover: Option<String>,
}

/// A line to log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// An alarm began: a warning.
    Begins(String),
    /// It ended: information.
    Ends(String),
}

impl AlarmLog {
    /// The changes since the last sample.
    pub fn update(&mut self, s: &Status) -> Vec<Change> {
        let mut out = Vec::new();
        let standby = s.alarms.iter().find(|a| a.starts_with(NO_STANDBY)).cloned();
        match (&self.no_standby, &standby) {
            (None, Some(a)) => out.push(Change::Begins(a.clone())),
            (Some(_), None) => out.push(Change::Ends(format!(
                "no standby alarm cleared: peer {} can take over again",
                s.peer_name
            ))),
            _ => {}
        }
        self.no_standby = standby;
        let handover = s
            .handover
            .as_ref()
            .filter(|h| !h.ready)
            .map(|h| h.reason.clone().unwrap_or_else(|| "not ready".into()));
        match (&self.handover, &handover) {
            (None, Some(r)) => out.push(Change::Begins(format!(
                "not ready for a handover ({}): {r}",
                s.state
            ))),
            (Some(_), None) => out.push(Change::Ends(format!(
                "ready for a handover again ({})",
                s.state
            ))),
            _ => {}
        }
        self.handover = handover;
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::status::{Peer, SessionSync};

    fn survivor() -> Status {
        Status {
            node_id: 1,
            state: "active".into(),
            healthy: true,
            peer_name: "fw-b".into(),
            peer: Some(Peer {
                name: "fw-b".into(),
                node_id: 2,
                state: "passive".into(),
                healthy: true,
                alive: false,
                last_heard_ms_ago: Some(12_345.0),
                ..Peer::default()
            }),
            session_sync: Some(SessionSync {
                mode: "mirror".into(),
                connected: false,
                sending: true,
                ready: true,
                ..SessionSync::default()
            }),
            ..Status::default()
        }
    }

    /// 2026-12-04 21:03:26.345 UTC.
    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_millis(1_796_418_206_345)
    }

    #[test]
    fn utc_is_the_civil_date() {
        assert_eq!(utc(UNIX_EPOCH), "1970-01-01 00:00:00 UTC");
        assert_eq!(
            utc(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "2000-02-29 00:00:00 UTC"
        );
        assert_eq!(utc(now()), "2026-12-04 21:03:26 UTC");
    }

    #[test]
    fn a_survivor_with_its_peer_lost_has_the_alarm() {
        let mut s = survivor();
        add(&mut s, now());
        assert_eq!(
            s.alarms,
            vec![
                "no standby: peer fw-b lost since 2026-12-04 21:03:14 UTC (12.3 s ago)".to_string()
            ]
        );
        let n = s.no_standby.clone().expect("typed too");
        assert_eq!((n.peer.as_str(), n.why.as_str()), ("fw-b", "lost"));
        assert_eq!(n.since_ms_ago, Some(12_345.0));
        let h = s.handover.clone().unwrap();
        assert!(!h.ready);
        assert_eq!(h.reason.as_deref(), Some("no standby: peer fw-b is lost"));
        // Adding twice does not repeat it.
        add(&mut s, now());
        assert_eq!(s.alarms.len(), 1, "{:?}", s.alarms);
    }

    #[test]
    fn a_peer_never_heard_or_not_passive_is_no_standby() {
        let mut s = Status {
            peer: None,
            ..survivor()
        };
        add(&mut s, now());
        assert_eq!(
            s.alarms,
            vec!["no standby: peer fw-b never heard since this node started".to_string()]
        );
        let mut s = survivor();
        if let Some(p) = s.peer.as_mut() {
            p.alive = true;
            p.state = "suspended".into();
        }
        add(&mut s, now());
        assert_eq!(
            s.alarms,
            vec!["no standby: peer fw-b is suspended".to_string()]
        );
        assert_eq!(s.no_standby.unwrap().since_ms_ago, None);
    }

    #[test]
    fn ha2_down_on_the_active_is_a_handover_not_ready_without_the_alarm() {
        let mut s = survivor();
        if let Some(p) = s.peer.as_mut() {
            p.alive = true;
        }
        add(&mut s, now());
        assert!(s.alarms.is_empty(), "{:?}", s.alarms);
        let h = s.handover.clone().unwrap();
        assert!(!h.ready);
        assert!(h
            .reason
            .unwrap()
            .starts_with("HA2 disconnected: fw-b gets no session changes"),);
        if let Some(st) = s.session_sync.as_mut() {
            st.connected = true;
        }
        add(&mut s, now());
        assert_eq!(
            s.handover,
            Some(Handover {
                ready: true,
                reason: None
            })
        );
        assert!(s.no_standby.is_none());
    }

    #[test]
    fn the_passive_s_handover_is_its_own_readiness() {
        let mut s = survivor();
        s.state = "passive".into();
        if let Some(st) = s.session_sync.as_mut() {
            st.ready = false;
            st.reason = Some("HA2 disconnected".into());
        }
        add(&mut s, now());
        assert!(s.alarms.is_empty());
        assert_eq!(
            s.handover,
            Some(Handover {
                ready: false,
                reason: Some("HA2 disconnected".into())
            })
        );
    }

    #[test]
    fn each_alarm_is_logged_once_when_it_begins_and_once_when_it_ends() {
        let mut log = AlarmLog::default();
        let mut lost = survivor();
        add(&mut lost, now());
        let changes = log.update(&lost);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert!(
            matches!(&changes[0], Change::Begins(t) if t.starts_with("no standby: peer fw-b lost since"))
        );
        assert!(
            matches!(&changes[1], Change::Begins(t) if t.starts_with("not ready for a handover (active)"))
        );
        // Sampled again, a second later: nothing new.
        add(&mut lost, now() + Duration::from_secs(1));
        assert_eq!(log.update(&lost), vec![]);
        let mut back = survivor();
        if let Some(p) = back.peer.as_mut() {
            p.alive = true;
        }
        if let Some(st) = back.session_sync.as_mut() {
            st.connected = true;
        }
        add(&mut back, now());
        let changes = log.update(&back);
        assert_eq!(
            changes,
            vec![
                Change::Ends("no standby alarm cleared: peer fw-b can take over again".into()),
                Change::Ends("ready for a handover again (active)".into()),
            ]
        );
        assert_eq!(log.update(&back), vec![]);
    }
}
