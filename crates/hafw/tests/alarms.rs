//! Alarms that tell the truth on a lab pair: the passive killed, the
//! survivor says it has no standby (status text and JSON, the metric, one
//! log line) and that a handover is not possible; the passive restarted,
//! the alarm clears (and the log says so once).

mod common;

use std::time::{Duration, Instant};

use common::*;
use hafw_lab::pair::{Fault, Pair, API_TOKEN};

const NO_STANDBY: &str = "hafw_alarm{kind=\"no_standby\"}";

#[test]
fn a_survivor_alarms_no_standby_until_its_peer_is_back() {
    if !ns_tests_enabled() {
        return;
    }
    let mut pair = Pair::start_with(
        &example("alicloud-havip.toml"),
        &unique("al"),
        std::path::Path::new(hafw()),
        "fast",
        true,
    )
    .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let active = pair.wait_settled(Duration::from_secs(20)).unwrap();
    let passive = pair.peer_of(&active).unwrap();
    pair.wait_ready(Duration::from_secs(20)).unwrap();

    // A healthy pair: no alarm, a handover would keep the sessions.
    let st = wait_for(
        "a healthy pair's status",
        Duration::from_secs(5),
        || {
            pair.status(&active)
                .filter(|s| s.handover.as_ref().is_some_and(|h| h.ready))
        },
        || pair.status_text(&active),
    );
    assert!(st.no_standby.is_none(), "{st:?}");
    let m = wait_for(
        "the metric at 0",
        Duration::from_secs(3),
        || {
            let (_, m) = pair.api_get(&active, "/metrics", Some(API_TOKEN)).ok()?;
            (metric(&m, NO_STANDBY) == Some(0.0) && metric(&m, "hafw_handover_ready ") == Some(1.0))
                .then_some(m)
        },
        || pair.status_text(&active),
    );
    assert_eq!(metric(&m, NO_STANDBY), Some(0.0), "{m}");

    pair.inject(Fault::Kill, &passive).unwrap();
    let killed = Instant::now();
    let st = wait_for(
        "the no-standby alarm",
        Duration::from_secs(5),
        || pair.status(&active).filter(|s| s.no_standby.is_some()),
        || pair.status_text(&active),
    );
    eprintln!("no-standby alarm {:?} after the kill", killed.elapsed());
    assert_eq!(st.state, "active");
    let n = st.no_standby.clone().unwrap();
    assert_eq!(
        (n.peer.as_str(), n.why.as_str()),
        (passive.as_str(), "lost")
    );
    assert!(n.since.is_some_and(|t| t.ends_with(" UTC")), "{st:?}");
    let h = st.handover.clone().unwrap();
    assert!(!h.ready);
    let text = pair.status_text(&active);
    assert!(
        text.contains(&format!("alarm     no standby: peer {passive} lost since ")),
        "{text}"
    );
    assert!(!text.contains("alarms    none"), "{text}");
    assert!(text.contains("handover  NOT READY: no standby"), "{text}");
    let sessions = text
        .lines()
        .find(|l| l.starts_with("sessions"))
        .unwrap_or("");
    assert!(!sessions.ends_with(", ready"), "{sessions}");
    let (_, body) = pair.api_get(&active, "/status", Some(API_TOKEN)).unwrap();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["no_standby"]["why"], "lost", "{body}");
    wait_for(
        "hafw_alarm{kind=\"no_standby\"} 1",
        Duration::from_secs(3),
        || {
            let (_, m) = pair.api_get(&active, "/metrics", Some(API_TOKEN)).ok()?;
            (metric(&m, NO_STANDBY) == Some(1.0) && metric(&m, "hafw_handover_ready ") == Some(0.0))
                .then_some(())
        },
        || pair.status_text(&active),
    );

    pair.heal(Fault::Kill, &passive).unwrap();
    let healed = Instant::now();
    wait_for(
        "the alarm to clear",
        Duration::from_secs(20),
        || {
            pair.status(&active)
                .filter(|s| s.no_standby.is_none() && s.handover.as_ref().is_some_and(|h| h.ready))
        },
        || pair.status_text(&active),
    );
    eprintln!("alarm cleared {:?} after the restart", healed.elapsed());
    let text = pair.status_text(&active);
    assert!(!text.contains("no standby"), "{text}");
    wait_for(
        "the metric back at 0",
        Duration::from_secs(3),
        || {
            let (_, m) = pair.api_get(&active, "/metrics", Some(API_TOKEN)).ok()?;
            (metric(&m, NO_STANDBY) == Some(0.0)).then_some(())
        },
        || pair.status_text(&active),
    );
    // The log says it once when it began and once when it ended.
    let log = wait_for(
        "the log line of the end",
        Duration::from_secs(3),
        || {
            let log = pair.daemon_log(&active);
            log.contains("no standby alarm cleared").then_some(log)
        },
        || pair.daemon_log(&active),
    );
    let began = format!("alarm: no standby: peer {passive} lost since");
    // (At start the active may have had no standby for a moment, while its
    // peer was still starting: that alarm began and ended before the kill.)
    assert_eq!(log.matches(&began).count(), 1, "{log}");
    let after = &log[log.find(&began).unwrap_or(0)..];
    assert_eq!(
        after.matches("no standby alarm cleared").count(),
        1,
        "{log}"
    );
    pair.stop().unwrap();
}
