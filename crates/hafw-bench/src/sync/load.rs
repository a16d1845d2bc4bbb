//! Kernel-sourced sync load (`hafw bench sync --load-rates ...`):
//! conntrack entries created, updated and destroyed in batches on the
//! active over netlink, not by a traffic generator, so the lab's hosts do
//! not take the CPUs the pair needs. Each 10 ms tick creates k entries,
//! updates the k of the tick before (a new timeout) and deletes the k of
//! two ticks before: 3k events a tick, the target rate. The rates rise
//! until one saturates: the generator cannot keep the rate (the active's
//! netlink writes), the bench's listener overran, the passive applied
//! less than 95% of the active's events in the window, or the p99 lag
//! went over 50 ms. Lag is the active's NEW to the passive's NEW of the
//! entry its sync thread installed (mirror mode), both read by listeners
//! in this process, on one clock.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use hafw_kernel::conntrack::{Conntrack, Entry, Tuple};
use hafw_lab::pair::Pair;
use hafw_lab::topology::ns_name;

use super::{
    match_news, ns_since, summary, EventCounts, Kind, Listener, Seen, Summary, TAIL_MAX, TAIL_QUIET,
};

const TICK: Duration = Duration::from_millis(10);
/// Load entries go to 198.51.100.{DST_BASE + block}:LOAD_PORT from
/// 10.0.10.{SRC_BASE + block}, apart from the promotion's synthetic ones.
const DST_BASE: u8 = 180;
const SRC_BASE: u8 = 80;
const LOAD_PORT: u16 = 8443;
const PORTS: usize = 60_000;
/// The goal (issue 16): events/s end to end at this p99 lag.
pub(super) const GOAL_RATE: f64 = 200_000.0;
pub(super) const GOAL_P99_MS: f64 = 50.0;

/// One rate's figures.
pub(super) struct Step {
    pub target: u64,
    /// Events the generator asked for, per second of its run.
    pub generated_per_s: f64,
    pub ticks_late: u64,
    pub active: EventCounts,
    pub active_per_s: f64,
    pub passive: EventCounts,
    pub passive_per_s: f64,
    pub active_overruns: u64,
    pub passive_overruns: u64,
    pub keys: usize,
    pub never_arrived: usize,
    pub lag: Option<Summary>,
    pub failed_requests: usize,
    /// The limits this rate hit, if any.
    pub saturated: Vec<&'static str>,
}

pub(super) fn is_load_key(t: &Tuple) -> bool {
    let d = t.dst.octets();
    t.dst_port == LOAD_PORT && d[..3] == [198, 51, 100] && d[3] >= DST_BASE && d[3] < DST_BASE + 10
}

fn entry(i: usize, snat: Ipv4Addr, timeout: u32) -> Entry {
    let block = ((i / PORTS) % 10) as u8;
    let port = 1024 + (i % PORTS) as u16;
    let src = Ipv4Addr::new(10, 0, 10, SRC_BASE + block);
    let dst = Ipv4Addr::new(198, 51, 100, DST_BASE + block);
    let mut e = super::synthetic(1, snat).remove(0);
    e.orig = Tuple::tcp(src, port, dst, LOAD_PORT);
    e.reply = Tuple::tcp(dst, LOAD_PORT, snat, port);
    e.timeout = timeout;
    e
}

/// Runs each rate in turn on `pair` (mirror mode), stopping after the
/// first that saturates.
pub(super) fn run(pair: &Pair, rates: &[u64], seconds: u64) -> Result<Vec<Step>, String> {
    let mut out = vec![];
    for &rate in rates {
        let step = one(pair, rate, seconds)?;
        eprintln!(
            "sync load {rate:>7} ev/s: generated {:.0}/s, active {:.0}/s, passive applied {:.0}/s, lag p50 {} p99 {} ms, {} never arrived{}",
            step.generated_per_s,
            step.active_per_s,
            step.passive_per_s,
            step.lag.map_or("-".into(), |l| format!("{:.2}", l.p50)),
            step.lag.map_or("-".into(), |l| format!("{:.2}", l.p99)),
            step.never_arrived,
            if step.saturated.is_empty() {
                String::new()
            } else {
                format!("; saturated: {}", step.saturated.join(", "))
            }
        );
        let stop = !step.saturated.is_empty();
        out.push(step);
        if stop {
            break;
        }
    }
    Ok(out)
}

fn one(pair: &Pair, rate: u64, seconds: u64) -> Result<Step, String> {
    let active = pair
        .wait_settled(super::SETTLE)
        .map_err(|e| e.to_string())?;
    let passive = pair.peer_of(&active).ok_or("the pair has one node")?;
    let active_ns = ns_name(&pair.lab, &active);
    let snat = pair
        .dep
        .external_havip()
        .map(|h| h.ip.0)
        .ok_or("the deployment has no external HAVIP to source-NAT to")?;
    let per_tick = ((rate as f64 * TICK.as_secs_f64()) / 3.0).ceil().max(1.0) as usize;
    let ticks = (Duration::from_secs(seconds).as_nanos() / TICK.as_nanos()) as usize;
    // Every entry of a step has a key of its own, so each NEW has one lag.
    if per_tick * ticks > PORTS * 10 {
        return Err(format!(
            "--load-rates {rate} for {seconds} s creates more than {} distinct entries; lower --load-seconds",
            PORTS * 10
        ));
    }
    let origin = Instant::now();
    let on_active = Listener::start(&active_ns, origin)?;
    let on_passive = Listener::start(&ns_name(&pair.lab, &passive), origin)?;
    std::thread::sleep(Duration::from_millis(100));
    let mut ct = Conntrack::open(Some(&active_ns)).map_err(|e| e.to_string())?;
    let t_start = ns_since(origin);
    let started = Instant::now();
    let (mut late, mut failed) = (0u64, 0usize);
    let slot = |tick: usize, j: usize| tick * per_tick + j;
    for tick in 0..ticks + 2 {
        let due = started + TICK * tick as u32;
        match due.checked_duration_since(Instant::now()) {
            Some(wait) => std::thread::sleep(wait),
            None if tick > 0 => late += 1,
            None => {}
        }
        if tick < ticks {
            let new: Vec<Entry> = (0..per_tick)
                .map(|j| entry(slot(tick, j), snat, 600))
                .collect();
            failed += ct
                .create_batch(&new)
                .map_err(|e| e.to_string())?
                .failed
                .len();
        }
        if (1..=ticks).contains(&tick) {
            let upd: Vec<Entry> = (0..per_tick)
                .map(|j| entry(slot(tick - 1, j), snat, 900))
                .collect();
            failed += ct
                .create_batch(&upd)
                .map_err(|e| e.to_string())?
                .failed
                .len();
        }
        if tick >= 2 {
            let del: Vec<Tuple> = (0..per_tick)
                .map(|j| entry(slot(tick - 2, j), snat, 0).orig)
                .collect();
            failed += ct.delete_batch(&del).map_err(|e| e.to_string())?.len();
        }
    }
    let gen_s = started.elapsed().as_secs_f64();
    let t_end = ns_since(origin);
    let tail = Instant::now();
    while tail.elapsed() < TAIL_MAX {
        let last = on_passive.last.load(std::sync::atomic::Ordering::Relaxed);
        if ns_since(origin).saturating_sub(last.max(t_end)) >= TAIL_QUIET.as_nanos() as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let seen_active = on_active.finish()?;
    let seen_passive = on_passive.finish()?;
    let window_s = (t_end - t_start) as f64 / 1e9;
    let count = |seen: &Seen, marked_only: bool| {
        let mut c = EventCounts::default();
        for (_, k, marked, key) in &seen.events {
            if !is_load_key(key) || (marked_only && !marked) {
                continue;
            }
            match k {
                Kind::New => c.new += 1,
                Kind::Update => c.update += 1,
                Kind::Destroy => c.destroy += 1,
            }
        }
        c
    };
    let active_events = count(&seen_active, false);
    // The passive's own: NEW and UPDATE of entries its sync thread
    // installed (marked), and every DESTROY of a load key (a destroy event
    // may carry no mark).
    let mut passive_events = count(&seen_passive, true);
    passive_events.destroy = count(&seen_passive, false).destroy;
    let m = match_news(&seen_active.events, &seen_passive.events, is_load_key);
    let lag_ms: Vec<f64> = m.lags_ns.iter().map(|&l| l as f64 / 1e6).collect();
    let lag = summary(&lag_ms);
    let generated_per_s = (3 * per_tick * ticks) as f64 / gen_s;
    let active_per_s = active_events.total() as f64 / window_s;
    let passive_per_s = passive_events.total() as f64 / window_s;
    // Every limit that was hit, in the order they are checked: the first
    // is the one the rate ran into first along the path.
    let mut saturated = vec![];
    if generated_per_s < 0.95 * rate as f64 {
        saturated.push("the load generator (netlink writes on the active)");
    }
    if seen_active.overruns > 0 || seen_passive.overruns > 0 {
        saturated.push("the bench's event listeners (ENOBUFS)");
    }
    if passive_events.total() < active_events.total() * 95 / 100 {
        saturated.push("the passive's apply (under 95% of the active's events)");
    }
    if lag.is_some_and(|l| l.p99 > GOAL_P99_MS) {
        saturated.push("lag (p99 above 50 ms)");
    }
    Ok(Step {
        target: rate,
        generated_per_s,
        ticks_late: late,
        active: active_events,
        active_per_s,
        passive: passive_events,
        passive_per_s,
        active_overruns: seen_active.overruns,
        passive_overruns: seen_passive.overruns,
        keys: m.keys,
        never_arrived: m.missing,
        lag,
        failed_requests: failed,
        saturated,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn load_entries_are_distinct_and_recognised() {
        let snat = Ipv4Addr::new(10, 0, 1, 100);
        let keys: std::collections::HashSet<Tuple> =
            (0..3 * PORTS).map(|i| entry(i, snat, 1).orig).collect();
        assert_eq!(keys.len(), 3 * PORTS);
        assert!(keys.iter().all(is_load_key));
        assert!(!super::super::is_synthetic(&entry(0, snat, 1).orig));
        let synthetic = super::super::synthetic(1, snat).remove(0);
        assert!(!is_load_key(&synthetic.orig));
    }
}
