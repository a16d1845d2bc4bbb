//! The node left alone stays flat: the passive killed with kill -9,
//! connections churning through the active's SNAT at 500/s and more, the
//! active's resident memory after the first 20 s grows by at most 2 MB to
//! the end; the passive, restarted, becomes ready from one fresh bulk (the
//! active's bulk count goes up by exactly one), not from a backlog.
//!
//! Before the active stopped queueing for a dead peer, the same run grew
//! by several MB (the HA2 queue, the sender's backlog and its refresh bulks
//! held for the peer); this test measured that growth on the old code.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use hafw_bench::survivor::outage;
use hafw_lab::pair::Pair;

/// Long enough for three refresh periods (30 s each) of the old backlog.
const LOAD: Duration = Duration::from_secs(80);
const THREADS: usize = 8;
const MAX_GROWTH_KB: u64 = 2048;

#[test]
fn the_survivor_stays_flat_and_the_rejoining_peer_gets_one_bulk() {
    if !ns_tests_enabled() {
        return;
    }
    let name = unique("surv");
    let mut pair = Pair::start(
        &example("alicloud-havip.toml"),
        &name,
        Path::new(hafw()),
        "fast",
    )
    .unwrap_or_else(|e| panic!("start the pair: {e}"));
    let r = outage(&mut pair, LOAD, THREADS);
    let logs: String = pair
        .nodes()
        .iter()
        .map(|n| format!("--- {n}\n{}", pair.daemon_log(n)))
        .collect();
    let _ = pair.stop();
    let r = r.unwrap_or_else(|e| panic!("{e}\n{logs}"));
    let series: Vec<String> = r
        .rss
        .iter()
        .step_by(5)
        .map(|(t, kb)| format!("{t:.0}s {kb}kB"))
        .collect();
    eprintln!(
        "churn {:.0} conn/s ({} done, {} failed); RSS {}; bulks {} -> {}; ready after {:?}; states {:?}",
        r.churn.rate(),
        r.churn.completed,
        r.churn.failed,
        series.join(", "),
        r.bulks_before,
        r.bulks_after,
        r.ready_after,
        r.states_after
    );
    assert!(
        r.churn.rate() >= 500.0,
        "the load was {:.0} conn/s, under the 500/s this test needs (a loaded machine?)",
        r.churn.rate()
    );
    let early = r.rss_at(20.0).expect("an RSS sample at 20 s");
    let last = r.rss_last().expect("an RSS sample at the end");
    assert!(
        last <= early + MAX_GROWTH_KB,
        "the active's RSS grew from {early} kB at 20 s to {last} kB at the end ({} kB > {MAX_GROWTH_KB} kB): {}",
        last - early,
        series.join(", ")
    );
    let still = r.states_after.iter().find(|(n, _)| *n == r.active);
    assert_eq!(
        still.and_then(|(_, s)| s.as_deref()),
        Some("active"),
        "the survivor must still be active: {:?}",
        r.states_after
    );
    assert_eq!(
        r.bulks_after,
        r.bulks_before + 1,
        "the rejoining peer must get exactly one bulk\n{logs}"
    );
}
