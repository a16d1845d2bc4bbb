//! `hafw bench sync`: session sync of the HA pair in the emulated VPC
//! (issue 6's goals: ≥ 100k events/s, p99 lag ≤ 50 ms, sessions ready at
//! promotion within 10 ms at 100k sessions).
//!
//! Two measurements per session-sync mode, on one pair per mode:
//! - **promotion**: N synthetic established TCP entries are injected into
//!   the active's kernel, the bench waits until the passive holds them all,
//!   suspends the active and reads the new active's promotion timeline (its
//!   "sessions" phase and the total) from `hafw status --json`;
//! - **churn** (mirror mode only: in commit mode the passive's kernel holds
//!   nothing to observe): threads in the `web` host open and close TCP
//!   connections to the echo host through the firewall's SNAT while the
//!   bench follows conntrack events in both firewalls' namespaces, in one
//!   process, so on one clock: events/s on the active, events/s the passive's
//!   sync thread applies, and the lag from a connection's NEW on the active
//!   to its NEW on the passive.
//!
//! Figures are printed, never asserted (architecture.md, testing pyramid).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use hafw_daemon::status::{Status, Timeline};
use hafw_kernel::conntrack::{
    self, status, tcp_state, Conntrack, Entry, Event, Events, TcpInfo, Tuple,
};
use hafw_lab::hosts::{ChurnConfig, ChurnReport, Stop};
use hafw_lab::pair::{Fault, Pair};
use hafw_lab::topology::ns_name;
use serde_json::{json, Value};

use hafw_daemon::sync::INJECT_MARK;

mod load;

const ECHO: &str = "198.51.100.30:7777";
const CHURN_HOST: &str = "web";
const SETTLE: Duration = Duration::from_secs(30);
/// How long the passive may take to hold every injected entry.
const SYNC_WAIT: Duration = Duration::from_secs(60);
/// After the generator stops, how long the passive may stay quiet before
/// the listeners stop (and at most how long they wait in all).
const TAIL_QUIET: Duration = Duration::from_secs(1);
const TAIL_MAX: Duration = Duration::from_secs(10);
/// Synthetic entries go to 198.51.100.{SYN_DST_BASE + block}:443, from
/// 10.0.10.{SYN_SRC_BASE + block}, one block per PORTS_PER_BLOCK entries.
const SYN_DST_BASE: u8 = 200;
const SYN_SRC_BASE: u8 = 100;
const SYN_PORT: u16 = 443;
const PORTS_PER_BLOCK: usize = 60_000;
const MAX_SIZE: usize = 50 * PORTS_PER_BLOCK;

#[derive(clap::Args)]
pub struct Args {
    /// The deployment file; by default the shipped seed example. It needs
    /// a `web` lab host behind the firewall's SNAT and the echo host
    /// 198.51.100.30:7777.
    file: Option<PathBuf>,
    /// Length of the connection churn (mirror mode); 0 skips it.
    #[arg(long, default_value_t = 5)]
    seconds: u64,
    /// Load generator threads (one connection at a time each). Each
    /// connection may wait up to 5 ms for the echo host's accept loop, so
    /// the rate grows with threads until the CPUs are busy.
    #[arg(long, default_value_t = 32)]
    threads: usize,
    /// Session counts for the promotion measurement, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "1000,10000,100000")]
    sizes: Vec<usize>,
    /// Promotions per size; 0 skips the promotion measurement.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Session-sync modes, comma-separated: mirror, commit.
    #[arg(long, value_delimiter = ',', default_value = "mirror", value_parser = ["mirror", "commit"])]
    modes: Vec<String>,
    /// Kernel-sourced sync load (mirror mode): target events/s,
    /// comma-separated and rising; each runs --load-seconds, and the first
    /// that saturates ends the series. Empty skips it.
    #[arg(long, value_delimiter = ',')]
    load_rates: Vec<u64>,
    /// Length of each sync-load rate.
    #[arg(long, default_value_t = 3)]
    load_seconds: u64,
    /// HA timers of the pair: `default` or `fast`.
    #[arg(long, value_enum, default_value_t = hafw_model::spec::HaProfile::Default)]
    profile: hafw_model::spec::HaProfile,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
}

/// Nearest-rank summary of a sample.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Summary {
    n: usize,
    min: f64,
    p50: f64,
    p99: f64,
    max: f64,
}

/// The daemon's own session-sync counters (`session_sync` of its status).
#[derive(Debug, Clone, Default, PartialEq)]
struct Counters {
    state: String,
    sessions: Option<u64>,
    installed: Option<u64>,
    lag_ms: Option<f64>,
    resyncs: Option<u64>,
    dropped: Option<u64>,
}

/// A promotion's phases: (name, ms).
type Phases = Vec<(String, f64)>;

/// One event as a listener saw it: (ns since the bench's origin, kind,
/// marked by the passive's sync thread, original tuple).
type Record = (u64, Kind, bool, Tuple);

/// What one conntrack listener saw.
#[derive(Default)]
struct Seen {
    events: Vec<Record>,
    overruns: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    New,
    Update,
    Destroy,
}

#[derive(Default)]
struct EventCounts {
    new: u64,
    update: u64,
    destroy: u64,
}

impl EventCounts {
    fn total(&self) -> u64 {
        self.new + self.update + self.destroy
    }
}

struct ChurnResult {
    mode: String,
    active: String,
    passive: String,
    generator: ChurnReport,
    window_s: f64,
    active_events: EventCounts,
    active_overruns: u64,
    /// Events of entries the passive's sync thread installed, in the window.
    passive_window: EventCounts,
    /// The same, from the generator's start to the end of the tail.
    passive_all: EventCounts,
    passive_overruns: u64,
    tail_s: f64,
    keys: usize,
    lag: Option<Summary>,
    never_arrived: usize,
    /// Keys whose NEW was seen more than once on the active: a client port
    /// reused while the firewall's entry was in TIME_WAIT (it then destroys
    /// the old entry and creates a new one).
    repeated: usize,
    /// Keys the passive's listener saw before the active's (a listener
    /// behind by more than the lag).
    early: usize,
    before: Vec<(String, Counters)>,
    after: Vec<(String, Counters)>,
    /// The active's `session_sync.lag_ms`, sampled every 100 ms of the load.
    daemon_lag: Option<Summary>,
}

/// One promotion run's figures.
struct Promotion {
    /// From the start of the injection until the passive held every entry.
    synced_ms: f64,
    sessions_ms: f64,
    total_ms: f64,
    phases: Phases,
    /// Entries the promotion installed (`session_sync.last_install`).
    installed: Option<u64>,
    /// Synthetic entries in the new active's kernel after the promotion.
    held: usize,
    /// What the promotion's timeline reported as going wrong.
    error: Option<String>,
    /// The passive's sync cache heap over the sessions it held, once it
    /// held them all (`session_sync.cache_bytes` / `.sessions`).
    cache_bytes_per_session: Option<f64>,
}

/// The machine's 1-minute load average around one mode's measurements:
/// the figures are only comparable between runs on an idle machine.
struct Load {
    mode: String,
    before: Option<f64>,
    after: Option<f64>,
}

fn load1() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

struct Series {
    mode: String,
    size: usize,
    runs: Vec<Promotion>,
    failures: Vec<String>,
}

pub fn run(args: Args) -> ExitCode {
    if let Err(e) = hafw_daemon::dataplane::preflight::check() {
        eprintln!("error: hafw bench sync: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = check_args(&args) {
        eprintln!("error: hafw bench sync: {e}");
        return ExitCode::FAILURE;
    }
    let file = match super::deployment_file(args.file.as_deref(), "sync") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: hafw bench sync: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = bench(&args, file.path());
    drop(file);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: hafw bench sync: {e}");
            ExitCode::FAILURE
        }
    }
}

fn check_args(args: &Args) -> Result<(), String> {
    if args.seconds == 0 && args.runs == 0 && args.load_rates.is_empty() {
        return Err("nothing to measure: give --seconds, --runs or --load-rates above 0".into());
    }
    if args.load_rates.contains(&0) || (!args.load_rates.is_empty() && args.load_seconds == 0) {
        return Err("--load-rates and --load-seconds must be above 0".into());
    }
    if args.threads == 0 {
        return Err("--threads must be at least 1".into());
    }
    if let Some(s) = args.sizes.iter().find(|&&s| s == 0 || s > MAX_SIZE) {
        return Err(format!(
            "--sizes {s}: each size must be between 1 and {MAX_SIZE}"
        ));
    }
    if args.modes.is_empty() {
        return Err("--modes is empty: use mirror, commit or both".into());
    }
    Ok(())
}

fn bench(args: &Args, file: &Path) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the hafw binary: {e}"))?;
    // Declared before any pair, so it is dropped (the host's values put
    // back) after every lab is gone.
    let largest = if args.runs > 0 {
        args.sizes.iter().copied().max().unwrap_or(0)
    } else {
        0
    };
    let _host = crate::host_table::HostTable::raise_for(largest as u64)?;
    let started = Instant::now();
    let mut churns = vec![];
    let mut steps = vec![];
    let mut series = vec![];
    let mut loads = vec![];
    for (i, mode) in args.modes.iter().enumerate() {
        let load_before = load1();
        let lab = format!("syb{}{i}", std::process::id() % 10000);
        eprintln!("session sync {mode}: building lab {lab} and starting both firewalls");
        // The pair removes its lab when dropped, so every `?` below (and a
        // panic) leaves no namespace behind.
        let mut pair = Pair::start_opts(
            file,
            &lab,
            &exe,
            args.profile.as_str(),
            false,
            &["--session-sync", mode],
        )
        .map_err(|e| e.to_string())?;
        // Promotions first: the churn leaves tens of thousands of entries
        // in TIME_WAIT whose expiry would otherwise run through the
        // promotion figures.
        if args.runs > 0 {
            for &size in &args.sizes {
                series.push(promotions(&mut pair, mode, size, args.runs));
            }
        }
        if !args.load_rates.is_empty() && mode == "mirror" {
            steps = load::run(&pair, &args.load_rates, args.load_seconds)?;
        }
        if args.seconds > 0 && mode == "mirror" {
            churns.push(churn(&pair, mode, args)?);
        } else if args.seconds > 0 {
            eprintln!("session sync {mode}: no churn measurement (the passive installs nothing into its kernel before a promotion, so there is nothing to time there)");
        }
        pair.stop().map_err(|e| format!("remove lab {lab}: {e}"))?;
        loads.push(Load {
            mode: mode.clone(),
            before: load_before,
            after: load1(),
        });
    }
    let elapsed = started.elapsed();
    if args.json {
        let mut v = to_json(args, &churns, &series, &loads, elapsed);
        v["sync_load"] = load_json(&steps);
        println!("{v}");
    } else {
        print_tables(args, &churns, &series, &loads, elapsed);
        print_load(&steps);
    }
    Ok(series.iter().all(|s| s.failures.is_empty()))
}

// ---------------------------------------------------------------- load --

fn load_json(steps: &[load::Step]) -> Value {
    let counts = |c: &EventCounts| json!({"new": c.new, "update": c.update, "destroy": c.destroy, "total": c.total()});
    let sum = |s: &Option<Summary>| {
        s.map(|s| json!({"n": s.n, "min": s.min, "p50": s.p50, "p99": s.p99, "max": s.max}))
    };
    Value::Array(
        steps
            .iter()
            .map(|s| {
                json!({
                    "target_events_per_s": s.target, "generated_per_s": s.generated_per_s,
                    "ticks_late": s.ticks_late, "failed_requests": s.failed_requests,
                    "active_events": counts(&s.active), "active_events_per_s": s.active_per_s,
                    "passive_applied": counts(&s.passive), "passive_applied_per_s": s.passive_per_s,
                    "active_listener_overruns": s.active_overruns,
                    "passive_listener_overruns": s.passive_overruns,
                    "keys": s.keys, "never_arrived": s.never_arrived, "lag_ms": sum(&s.lag),
                    "saturated": s.saturated,
                })
            })
            .collect(),
    )
}

fn print_load(steps: &[load::Step]) {
    if steps.is_empty() {
        return;
    }
    println!("kernel-sourced sync load (mirror): create, update, delete in batches on the active");
    println!(
        "{:>10} {:>12} {:>12} {:>14} {:>9} {:>9} {:>8}  saturated",
        "target/s", "generated/s", "active ev/s", "passive ev/s", "p50 ms", "p99 ms", "missing"
    );
    for s in steps {
        println!(
            "{:>10} {:>12.0} {:>12.0} {:>14.0} {:>9} {:>9} {:>8}  {}",
            s.target,
            s.generated_per_s,
            s.active_per_s,
            s.passive_per_s,
            s.lag.map_or("-".into(), |l| format!("{:.2}", l.p50)),
            s.lag.map_or("-".into(), |l| format!("{:.2}", l.p99)),
            s.never_arrived,
            if s.saturated.is_empty() {
                "no".to_string()
            } else {
                s.saturated.join(", ")
            },
        );
    }
    let best = steps
        .iter()
        .filter(|s| s.saturated.is_empty())
        .map(|s| s.passive_per_s)
        .fold(0.0, f64::max);
    println!(
        "goal >= {:.0} events/s end to end at p99 <= {} ms: {} (best unsaturated: {best:.0} events/s applied); conntrackd side by side: not measured by this bench yet",
        load::GOAL_RATE,
        load::GOAL_P99_MS,
        goal(best >= load::GOAL_RATE)
    );
}

// ---------------------------------------------------------------- churn --

fn churn(pair: &Pair, mode: &str, args: &Args) -> Result<ChurnResult, String> {
    let echo: SocketAddr = ECHO.parse().map_err(|e| format!("{e}"))?;
    let active = pair.wait_settled(SETTLE).map_err(|e| e.to_string())?;
    let passive = pair.peer_of(&active).ok_or("the pair has one node")?;
    let web = ns_name(&pair.lab, CHURN_HOST);
    // Every connection leaves the client in TIME_WAIT for 60 s; the default
    // 28k ephemeral ports would run out in seconds at full churn. The range
    // is the web host's own (the namespace is the lab's).
    hafw_kernel::sysctl::set(Some(&web), "net.ipv4.ip_local_port_range", "1024 65535")
        .map_err(|e| format!("widen the ephemeral ports of {web}: {e}"))?;
    let before = counters_of(pair);
    let origin = Instant::now();
    let on_active = Listener::start(&ns_name(&pair.lab, &active), origin)?;
    let on_passive = Listener::start(&ns_name(&pair.lab, &passive), origin)?;
    // A moment so both subscriptions are read before the first connection.
    std::thread::sleep(Duration::from_millis(100));
    eprintln!(
        "session sync {mode}: churning connections {CHURN_HOST} -> {ECHO} for {} s on {} threads (active {active}, passive {passive})",
        args.seconds, args.threads
    );
    let mut cfg = ChurnConfig::new(echo);
    cfg.threads = args.threads;
    cfg.duration = Duration::from_secs(args.seconds);
    let t_start = ns_since(origin);
    let web2 = web.clone();
    let generator = std::thread::Builder::new()
        .name("bench-churn".into())
        .spawn(move || {
            hafw_kernel::in_netns(Some(&web2), || hafw_lab::hosts::churn(&cfg, &Stop::new()))
        })
        .map_err(|e| format!("start the load generator: {e}"))?;
    // The daemon's own lag figure is a snapshot (the age of what it has not
    // had acknowledged yet), zero once the load stops: sample it during the
    // load. Each sample is one control-socket request, next to nothing.
    let mut daemon_lag: Vec<f64> = vec![];
    while !generator.is_finished() {
        if let Some(l) = counters(pair, &active).lag_ms {
            daemon_lag.push(l);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let generated = generator
        .join()
        .map_err(|_| "the load generator panicked".to_string())?;
    let t_end = ns_since(origin);
    // The passive may still be applying: wait until it has been quiet.
    let tail_start = Instant::now();
    while tail_start.elapsed() < TAIL_MAX {
        let last = on_passive.last.load(Ordering::Relaxed);
        if ns_since(origin).saturating_sub(last.max(t_end)) >= TAIL_QUIET.as_nanos() as u64 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let t_tail = ns_since(origin);
    let seen_active = on_active.finish()?;
    let seen_passive = on_passive.finish()?;
    let generator = generated
        .map_err(|e| format!("enter {web}: {e}"))?
        .map_err(|e| format!("load generator: {e}"))?;
    let after = counters_of(pair);

    let in_window = |t: u64| t >= t_start && t <= t_end;
    let count = |seen: &Seen, keep: &dyn Fn(u64, bool) -> bool| {
        let mut c = EventCounts::default();
        for (t, k, marked, _) in &seen.events {
            if keep(*t, *marked) {
                match k {
                    Kind::New => c.new += 1,
                    Kind::Update => c.update += 1,
                    Kind::Destroy => c.destroy += 1,
                }
            }
        }
        c
    };
    let active_events = count(&seen_active, &|t, _| in_window(t));
    let passive_window = count(&seen_passive, &|t, m| m && in_window(t));
    let passive_all = count(&seen_passive, &|t, m| m && t >= t_start);
    let lags = match_news(&seen_active.events, &seen_passive.events, is_churn_key);
    let lag_ms: Vec<f64> = lags.lags_ns.iter().map(|&l| l as f64 / 1e6).collect();
    Ok(ChurnResult {
        mode: mode.to_string(),
        active,
        passive,
        generator,
        window_s: (t_end - t_start) as f64 / 1e9,
        active_events,
        active_overruns: seen_active.overruns,
        passive_window,
        passive_all,
        passive_overruns: seen_passive.overruns,
        tail_s: (t_tail - t_end) as f64 / 1e9,
        keys: lags.keys,
        lag: summary(&lag_ms),
        never_arrived: lags.missing,
        repeated: lags.repeated,
        early: lags.early,
        before,
        after,
        daemon_lag: summary(&daemon_lag),
    })
}

fn ns_since(origin: Instant) -> u64 {
    origin.elapsed().as_nanos() as u64
}

/// A connection of the load generator, by its original tuple.
fn is_churn_key(t: &Tuple) -> bool {
    ECHO.parse::<SocketAddr>().is_ok_and(|echo| {
        t.proto == conntrack::proto::TCP && SocketAddr::new(t.dst.into(), t.dst_port) == echo
    })
}

/// A conntrack event listener on a thread of its own, recording every
/// event with its arrival time.
struct Listener {
    stop: Arc<AtomicBool>,
    /// Arrival of the latest event, ns since the origin.
    last: Arc<AtomicU64>,
    thread: Option<JoinHandle<Result<Seen, String>>>,
}

impl Listener {
    fn start(ns: &str, origin: Instant) -> Result<Listener, String> {
        // Opened here, before the load starts, so no early event is missed;
        // `Events::open` asks for an 8 MiB receive buffer (forced past
        // rmem_max as root).
        let mut events =
            Events::open(Some(ns)).map_err(|e| format!("subscribe to events in {ns}: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let last = Arc::new(AtomicU64::new(0));
        let (stop2, last2, ns) = (stop.clone(), last.clone(), ns.to_string());
        let thread = std::thread::Builder::new()
            .name("bench-ct-events".into())
            .spawn(move || {
                let mut seen = Seen::default();
                while !stop2.load(Ordering::Relaxed) {
                    let ev = events
                        .recv(Some(Duration::from_millis(100)))
                        .map_err(|e| format!("conntrack events in {ns}: {e}"))?;
                    let Some(ev) = ev else { continue };
                    let t = ns_since(origin);
                    let (kind, e) = match ev {
                        Event::New(e) => (Kind::New, e),
                        Event::Update(e) => (Kind::Update, e),
                        Event::Destroy(e) => (Kind::Destroy, e),
                        Event::Overrun => {
                            seen.overruns += 1;
                            continue;
                        }
                    };
                    last2.store(t, Ordering::Relaxed);
                    seen.events.push((t, kind, e.has_mark(INJECT_MARK), e.orig));
                }
                Ok(seen)
            })
            .map_err(|e| format!("start an event listener: {e}"))?;
        Ok(Listener {
            stop,
            last,
            thread: Some(thread),
        })
    }

    fn finish(mut self) -> Result<Seen, String> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread
            .take()
            .ok_or("the event listener was already stopped")?
            .join()
            .map_err(|_| "an event listener panicked".to_string())?
    }
}

impl Drop for Listener {
    /// A listener left behind by an error stops within 100 ms.
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// NEW on the active matched with NEW on the passive, per original tuple.
#[derive(Debug, Default, PartialEq)]
struct Matched {
    /// Keys with a NEW on the active.
    keys: usize,
    /// Passive NEW minus active NEW, for each key that arrived.
    lags_ns: Vec<u64>,
    missing: usize,
    repeated: usize,
    /// Keys whose first NEW on the passive was recorded before the one on
    /// the active: they arrived, but the bench's active listener was behind
    /// by more than the lag, so they have no lag figure.
    early: usize,
}

/// Pairs the first NEW of each key on the active with the first NEW of
/// the same key on the passive. Only keys `keep` selects count.
fn match_news(active: &[Record], passive: &[Record], keep: impl Fn(&Tuple) -> bool) -> Matched {
    let mut first: HashMap<Tuple, u64> = HashMap::new();
    let mut m = Matched::default();
    for (t, k, _, key) in active {
        if *k != Kind::New || !keep(key) {
            continue;
        }
        if first.contains_key(key) {
            m.repeated += 1;
        } else {
            first.insert(*key, *t);
        }
    }
    m.keys = first.len();
    let mut arrived: HashMap<Tuple, Option<u64>> = HashMap::new();
    for (t, k, _, key) in passive {
        if *k != Kind::New {
            continue;
        }
        if let Some(&ta) = first.get(key) {
            arrived.entry(*key).or_insert(t.checked_sub(ta));
        }
    }
    m.missing = m.keys - arrived.len();
    m.lags_ns = arrived.values().flatten().copied().collect();
    m.early = arrived.len() - m.lags_ns.len();
    m
}

// ------------------------------------------------------------ promotion --

fn promotions(pair: &mut Pair, mode: &str, size: usize, runs: usize) -> Series {
    let mut s = Series {
        mode: mode.to_string(),
        size,
        runs: vec![],
        failures: vec![],
    };
    for run in 1..=runs {
        let result = one_promotion(pair, mode, size);
        // Whatever happened, the next run (and the churn) starts without
        // this run's entries.
        let cleaned = cleanup(pair);
        match result {
            Ok(p) => {
                eprintln!(
                    "{mode:<6} {size:>7} sessions run {run}: passive held all after {:.0} ms; promotion: sessions {:.2} ms, total {:.2} ms ({}), {} installed at promotion, {}/{size} held after, passive cache {} bytes/session{}",
                    p.synced_ms,
                    p.sessions_ms,
                    p.total_ms,
                    p.phases.iter().map(|(n, ms)| format!("{n} {ms:.2}")).collect::<Vec<_>>().join(", "),
                    p.installed.map(|n| n.to_string()).unwrap_or_else(|| "?".into()),
                    p.held,
                    p.cache_bytes_per_session.map_or("?".into(), |b| format!("{b:.0}")),
                    p.error.as_ref().map(|e| format!("; the promotion reported: {e}")).unwrap_or_default(),
                );
                s.runs.push(p);
            }
            Err(e) => {
                eprintln!("{mode:<6} {size:>7} sessions run {run}: FAILED: {e}");
                s.failures.push(e);
            }
        }
        if let Err(e) = cleaned {
            s.failures.push(format!(
                "the synthetic entries could not be removed ({e}); the remaining runs were skipped"
            ));
            break;
        }
    }
    s
}

fn one_promotion(pair: &mut Pair, mode: &str, size: usize) -> Result<Promotion, String> {
    let active = pair.wait_settled(SETTLE).map_err(|e| e.to_string())?;
    let passive = pair.peer_of(&active).ok_or("the pair has one node")?;
    let (active_ns, passive_ns) = (ns_name(&pair.lab, &active), ns_name(&pair.lab, &passive));
    let snat = pair
        .dep
        .external_havip()
        .map(|h| h.ip.0)
        .ok_or("the deployment has no external HAVIP to source-NAT to")?;
    room_for(&active_ns, size)?;
    let base = stable_cache_size(pair, &passive);
    let entries = synthetic(size, snat);
    let t0 = Instant::now();
    let mut ct = Conntrack::open(Some(&active_ns)).map_err(|e| e.to_string())?;
    let report = ct
        .create_batch(&entries)
        .map_err(|e| format!("inject {size} entries into {active}: {e}"))?;
    if let Some((i, errno)) = report.failed.first() {
        return Err(format!(
            "{active}'s kernel refused {} of {size} synthetic entries (first: {} errno {errno}: {})",
            report.failed.len(),
            entries[*i].orig,
            std::io::Error::from_raw_os_error(*errno)
        ));
    }
    // The passive holds them: in mirror mode in its kernel (what makes the
    // promotion's sessions phase short), in commit mode in its sync cache.
    let end = t0 + SYNC_WAIT;
    loop {
        let done = if mode == "mirror" {
            count_synthetic(&passive_ns)? >= size
        } else {
            let c = counters(pair, &passive);
            c.sessions.is_some_and(|n| n >= base + size as u64)
        };
        if done {
            break;
        }
        if Instant::now() > end {
            return Err(format!(
                "{passive} did not hold the {size} injected sessions within {SYNC_WAIT:?} ({} in its kernel, sync cache {:?}); see `hafw status` of both nodes",
                count_synthetic(&passive_ns).unwrap_or(0),
                counters(pair, &passive).sessions
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let synced_ms = t0.elapsed().as_secs_f64() * 1000.0;
    let cache_bytes_per_session = cache_bytes_per_session(pair, &passive, base + size as u64);
    let at = pair
        .inject(Fault::Suspend, &active)
        .map_err(|e| format!("suspend {active}: {e}"))?;
    let timeline = wait_timeline(pair, &passive, at);
    let held = count_synthetic(&passive_ns).unwrap_or(0);
    let installed = pair
        .status(&passive)
        .and_then(|s| s.session_sync?.last_install)
        .map(|i| i.sessions);
    pair.heal(Fault::Suspend, &active)
        .map_err(|e| format!("resume {active}: {e}"))?;
    let tl = timeline?;
    let (sessions_ms, total_ms, phases) = phases_of(&tl)
        .ok_or_else(|| format!("{passive}'s promotion timeline has no sessions phase: {tl:?}"))?;
    Ok(Promotion {
        synced_ms,
        sessions_ms,
        total_ms,
        phases,
        installed,
        held,
        error: tl.error.clone(),
        cache_bytes_per_session,
    })
}

/// Bytes per session of the passive's own cache, read once its status
/// shows at least `want` sessions (it is published at most every 100 ms).
fn cache_bytes_per_session(pair: &Pair, passive: &str, want: u64) -> Option<f64> {
    let end = Instant::now() + Duration::from_secs(5);
    loop {
        let ss = pair.status(passive).and_then(|s| s.session_sync);
        if let Some(ss) = ss.filter(|s| s.sessions >= want && s.sessions > 0) {
            return Some(ss.cache_bytes as f64 / ss.sessions as f64);
        }
        if Instant::now() > end {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Refuses a size the active's conntrack table cannot take on top of what
/// it holds, rather than measuring drops.
fn room_for(ns: &str, size: usize) -> Result<(), String> {
    let max = hafw_kernel::sysctl::get(Some(ns), "net.netfilter.nf_conntrack_max")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    let count = hafw_kernel::sysctl::get(Some(ns), "net.netfilter.nf_conntrack_count")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    match (max, count) {
        (Some(max), Some(count)) if count + size > max => Err(format!(
            "{size} entries do not fit the conntrack table of {ns} ({count} of {max} used); \
             raise net.netfilter.nf_conntrack_max or use smaller --sizes"
        )),
        _ => Ok(()),
    }
}

/// The passive's sync cache size once it stopped moving (at most 3 s).
fn stable_cache_size(pair: &Pair, node: &str) -> u64 {
    let mut last = counters(pair, node).sessions.unwrap_or(0);
    let end = Instant::now() + Duration::from_secs(3);
    while Instant::now() < end {
        std::thread::sleep(Duration::from_millis(200));
        let now = counters(pair, node).sessions.unwrap_or(0);
        if now == last {
            break;
        }
        last = now;
    }
    last
}

/// The latest "become active" timeline of `node` started after `since`
/// (CLOCK_MONOTONIC ns), once it is complete.
fn wait_timeline(pair: &Pair, node: &str, since: u64) -> Result<Timeline, String> {
    let end = Instant::now() + Duration::from_secs(10);
    loop {
        let v = pair.status(node);
        if let Some(tl) = v.as_ref().and_then(|v| promotion_timeline(v, since)) {
            return Ok(tl);
        }
        if Instant::now() > end {
            return Err(format!(
                "{node} reported no promotion within 10 s of the suspend; its status:\n{}",
                pair.status_text(node)
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn promotion_timeline(status: &Status, since: u64) -> Option<Timeline> {
    status
        .timelines
        .iter()
        .rev()
        .find(|t| {
            t.what.starts_with("become active")
                && t.started_mono_ns >= since
                && !t.phases.is_empty()
        })
        .cloned()
}

/// (sessions phase ms, total ms, every phase) of a timeline.
fn phases_of(tl: &Timeline) -> Option<(f64, f64, Phases)> {
    let phases: Phases = tl.phases.iter().map(|p| (p.phase.clone(), p.ms)).collect();
    let sessions = phases.iter().find(|(n, _)| n == "sessions")?.1;
    Some((sessions, tl.total_ms, phases))
}

/// `n` distinct established TCP entries from the servers' subnet to
/// documentation addresses, each source-NATed to `snat` on its own port
/// (as the seed's SNAT rule would), so no two replies collide.
fn synthetic(n: usize, snat: Ipv4Addr) -> Vec<Entry> {
    (0..n)
        .map(|i| {
            let block = (i / PORTS_PER_BLOCK) as u8;
            let port = 1024 + (i % PORTS_PER_BLOCK) as u16;
            let src = Ipv4Addr::new(10, 0, 10, SYN_SRC_BASE + block);
            let dst = Ipv4Addr::new(198, 51, 100, SYN_DST_BASE + block);
            Entry {
                orig: Tuple::tcp(src, port, dst, SYN_PORT),
                reply: Tuple::tcp(dst, SYN_PORT, snat, port),
                status: status::SEEN_REPLY | status::ASSURED | status::CONFIRMED,
                timeout: 3600,
                mark: 0,
                zone: 0,
                id: None,
                tcp: Some(TcpInfo {
                    state: tcp_state::ESTABLISHED,
                    flags_orig: conntrack::tcp_flags::BE_LIBERAL,
                    flags_reply: conntrack::tcp_flags::BE_LIBERAL,
                    ..Default::default()
                }),
            }
        })
        .collect()
}

fn is_synthetic(t: &Tuple) -> bool {
    let d = t.dst.octets();
    t.proto == conntrack::proto::TCP
        && t.dst_port == SYN_PORT
        && d[..3] == [198, 51, 100]
        && d[3] >= SYN_DST_BASE
}

fn count_synthetic(ns: &str) -> Result<usize, String> {
    let mut ct = Conntrack::open(Some(ns)).map_err(|e| e.to_string())?;
    let all = ct.dump().map_err(|e| e.to_string())?;
    Ok(all.iter().filter(|e| is_synthetic(&e.orig)).count())
}

/// Deletes the synthetic entries in both firewalls, entry by entry: a
/// flush would also drop the HA2 and heartbeat connections, which with
/// `nf_conntrack_tcp_loose = 0` would cut the HA2 stream. Then waits for
/// the pair to settle and both kernels to hold none.
fn cleanup(pair: &Pair) -> Result<(), String> {
    let _ = pair.wait_settled(SETTLE);
    let end = Instant::now() + Duration::from_secs(60);
    loop {
        let mut left = 0;
        for node in pair.nodes() {
            let ns = ns_name(&pair.lab, &node);
            let mut ct = Conntrack::open(Some(&ns)).map_err(|e| e.to_string())?;
            let all = ct.dump().map_err(|e| e.to_string())?;
            for e in all.iter().filter(|e| is_synthetic(&e.orig)) {
                left += 1;
                ct.delete(&e.orig, e.zone)
                    .map_err(|e| format!("in {ns}: {e}"))?;
            }
        }
        if left == 0 {
            return Ok(());
        }
        if Instant::now() > end {
            return Err(format!("{left} synthetic entries came back for 60 s"));
        }
        // A bulk the new active sends its returning peer may put some back.
        std::thread::sleep(Duration::from_millis(500));
    }
}

// --------------------------------------------------------------- status --

fn counters(pair: &Pair, node: &str) -> Counters {
    counters_from(pair.status(node).as_ref())
}

fn counters_from(v: Option<&Status>) -> Counters {
    let s = v.and_then(|v| v.session_sync.as_ref());
    Counters {
        state: v.map_or("?", |v| v.state.as_str()).to_string(),
        sessions: s.map(|s| s.sessions),
        installed: s.map(|s| s.installed),
        lag_ms: s.and_then(|s| s.lag_ms),
        resyncs: s.map(|s| s.resyncs),
        dropped: s.map(|s| s.dropped_messages),
    }
}

fn counters_of(pair: &Pair) -> Vec<(String, Counters)> {
    pair.nodes()
        .into_iter()
        .map(|n| {
            let c = counters(pair, &n);
            (n, c)
        })
        .collect()
}

// -------------------------------------------------------------- figures --

/// Nearest-rank percentiles (p in 0..=100) of an unsorted sample.
fn summary(v: &[f64]) -> Option<Summary> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let rank = |p: f64| {
        let r = (p / 100.0 * s.len() as f64).ceil() as usize;
        s[r.clamp(1, s.len()) - 1]
    };
    Some(Summary {
        n: s.len(),
        min: s[0],
        p50: rank(50.0),
        p99: rank(99.0),
        max: s[s.len() - 1],
    })
}

fn per_s(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map(|x| x.to_string()).unwrap_or_else(|| "-".into())
}

fn counters_line(c: &Counters) -> String {
    format!(
        "{} sessions {} installed {} lag_ms {} resyncs {} dropped {}",
        c.state,
        opt(c.sessions),
        opt(c.installed),
        c.lag_ms
            .map(|l| format!("{l:.1}"))
            .unwrap_or_else(|| "-".into()),
        opt(c.resyncs),
        opt(c.dropped)
    )
}

fn goal(met: bool) -> &'static str {
    if met {
        "met"
    } else {
        "NOT met"
    }
}

fn print_tables(
    args: &Args,
    churns: &[ChurnResult],
    series: &[Series],
    loads: &[Load],
    elapsed: Duration,
) {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    for l in loads {
        println!(
            "machine: {cpus} CPUs, 1-minute load average {} before the {} measurements, {} after{}",
            l.before
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "?".into()),
            l.mode,
            l.after
                .map(|x| format!("{x:.1}"))
                .unwrap_or_else(|| "?".into()),
            // The bench's own load counts after; before, it is others'.
            if l.before.is_some_and(|x| x > 2.0 * cpus as f64) {
                " (far above the CPU count before: other work was competing, or had just been)"
            } else {
                ""
            }
        );
    }
    for c in churns {
        let ev =
            |e: &EventCounts| format!("new {}, update {}, destroy {}", e.new, e.update, e.destroy);
        println!(
            "hafw bench sync: connection churn, {} mode, {} threads {CHURN_HOST} -> {ECHO} (SNAT via the external HAVIP), {:.1} s",
            c.mode, args.threads, c.window_s
        );
        println!(
            "  generator          {} connections opened and closed ({:.0}/s), {} failed{}",
            c.generator.completed,
            c.generator.rate(),
            c.generator.failed,
            if c.generator.errors.is_empty() {
                String::new()
            } else {
                format!(" ({})", c.generator.errors.join("; "))
            }
        );
        let a = c.active_events.total();
        println!(
            "  active  {:<10} {a} events seen ({:.0}/s): {}; listener overruns {}",
            c.active,
            per_s(a, c.window_s),
            ev(&c.active_events),
            c.active_overruns
        );
        let p = c.passive_window.total();
        println!(
            "  passive {:<10} {p} events applied in the window ({:.0}/s): {}; {} until quiet {:.1} s later; listener overruns {}",
            c.passive,
            per_s(p, c.window_s),
            ev(&c.passive_window),
            c.passive_all.total(),
            c.tail_s,
            c.passive_overruns
        );
        match &c.lag {
            Some(l) => println!(
                "  lag NEW active -> NEW passive, {} connections: p50 {:.2} ms  p99 {:.2} ms  max {:.2} ms  (min {:.2} ms)",
                l.n, l.p50, l.p99, l.max, l.min
            ),
            None => println!("  lag NEW active -> NEW passive: no connection arrived"),
        }
        if c.early > 0 {
            println!(
                "  arrived, no lag   {} connections the passive's listener saw first: the bench's active listener was behind by more than their lag (each side's figure includes its listener's delay)",
                c.early
            );
        }
        let overruns = c.active_overruns + c.passive_overruns;
        println!(
            "  never arrived      {} of {} connections{}{}",
            c.never_arrived,
            c.keys,
            if overruns > 0 && c.never_arrived > 0 {
                format!(
                    " (UNKNOWN rather than lost: the bench's own listeners overran {overruns} times, so some events were dropped before the bench saw them)"
                )
            } else {
                String::new()
            },
            if c.repeated > 0 {
                format!(
                    "; {} repeated NEWs of a key on the active (a client port reused) ignored",
                    c.repeated
                )
            } else {
                String::new()
            }
        );
        for (n, b) in &c.before {
            let a = c.after.iter().find(|(m, _)| m == n).map(|x| &x.1);
            println!(
                "  daemon {n:<6} before: {}\n                after:  {}",
                counters_line(b),
                a.map(counters_line).unwrap_or_else(|| "-".into())
            );
        }
        if let Some(l) = &c.daemon_lag {
            println!(
                "  daemon {:<6} session_sync.lag_ms during the load ({} samples, 100 ms apart): p50 {:.2}  max {:.2}",
                c.active, l.n, l.p50, l.max
            );
        }
        let rate = per_s(a, c.window_s);
        let p99 = c.lag.map(|l| l.p99);
        println!(
            "  goals: >= 100k events/s on the active: {} ({rate:.0}/s, limited by the generator: {:.0} connections/s); p99 lag <= 50 ms: {}",
            goal(rate >= 100_000.0),
            c.generator.rate(),
            match p99 {
                Some(p) => format!("{} ({p:.2} ms)", goal(p <= 50.0)),
                None => "unknown".into(),
            }
        );
        println!();
    }
    if !series.is_empty() {
        println!(
            "time to make sessions ready at promotion (suspend of the active, `{}` timers), min / median / max",
            args.profile
        );
        println!(
            "{:<7} {:>8} {:>4}  {:>26}  {:>26}  {:>26}  {:>22}  {:>10}  {:>14}",
            "mode",
            "sessions",
            "runs",
            "sessions phase ms",
            "promotion total ms",
            "passive held all after ms",
            "installed at promotion",
            "held after",
            "cache B/session"
        );
        for s in series {
            let f = |g: &dyn Fn(&Promotion) -> f64, prec: usize| {
                let v: Vec<f64> = s.runs.iter().map(g).collect();
                match super::min_med_max(&v) {
                    Some((a, b, c)) => format!("{a:.prec$} / {b:.prec$} / {c:.prec$}"),
                    None => "-".into(),
                }
            };
            let held = s.runs.iter().map(|p| p.held).min();
            println!(
                "{:<7} {:>8} {:>4}  {:>26}  {:>26}  {:>26}  {:>22}  {:>10}  {:>14}",
                s.mode,
                s.size,
                s.runs.len(),
                f(&|p| p.sessions_ms, 2),
                f(&|p| p.total_ms, 2),
                f(&|p| p.synced_ms, 0),
                f(&|p| p.installed.unwrap_or(0) as f64, 0),
                held.map(|h| format!("{h}/{}", s.size))
                    .unwrap_or_else(|| "-".into()),
                f(&|p| p.cache_bytes_per_session.unwrap_or(f64::NAN), 0),
            );
            for e in &s.failures {
                println!("  failed run: {e}");
            }
            for (i, p) in s.runs.iter().enumerate() {
                if let Some(e) = &p.error {
                    println!("  run {}: the promotion reported: {e}", i + 1);
                }
            }
        }
        for s in series.iter().filter(|s| s.size >= 100_000) {
            let v: Vec<f64> = s.runs.iter().map(|p| p.sessions_ms).collect();
            if let Some((_, med, _)) = super::min_med_max(&v) {
                println!(
                    "goal <= 10 ms ready time at {} sessions ({}): {} (median sessions phase {med:.2} ms)",
                    s.size,
                    s.mode,
                    goal(med <= 10.0)
                );
            }
        }
        println!("{NOTE}");
    }
    println!("total time {:.0} s", elapsed.as_secs_f64());
}

const NOTE: &str = "\
Notes:
- sessions phase: the new active's own timing of its promotion's first
  phase (flush what the sync receiver still holds; in commit mode, install
  the whole cache). held after: synthetic entries in the new active's
  kernel after the promotion, read by a dump.
- passive held all after: from the start of the injection (create_batch on
  the active) until the passive held every entry (its kernel in mirror mode,
  its sync cache in commit mode), polled, so it includes a dump's time.";

fn to_json(
    args: &Args,
    churns: &[ChurnResult],
    series: &[Series],
    loads: &[Load],
    elapsed: Duration,
) -> Value {
    let sum = |s: &Option<Summary>| {
        s.map(|s| json!({"n": s.n, "min": s.min, "p50": s.p50, "p99": s.p99, "max": s.max}))
    };
    let ev = |e: &EventCounts| json!({"new": e.new, "update": e.update, "destroy": e.destroy, "total": e.total()});
    let ctr = |list: &[(String, Counters)]| {
        list.iter()
            .map(|(n, c)| {
                (
                    n.clone(),
                    json!({"state": c.state, "sessions": c.sessions, "installed": c.installed,
                        "lag_ms": c.lag_ms, "resyncs": c.resyncs, "dropped_messages": c.dropped}),
                )
            })
            .collect::<serde_json::Map<_, _>>()
    };
    let mmm = |v: Vec<f64>| {
        super::min_med_max(&v).map(|(a, b, c)| json!({"min": a, "median": b, "max": c}))
    };
    json!({
        "profile": args.profile.as_str(),
        "churn": churns.iter().map(|c| json!({
            "mode": c.mode, "active": c.active, "passive": c.passive,
            "threads": args.threads, "target": ECHO, "window_s": c.window_s,
            "connections": c.generator.completed, "connections_per_s": c.generator.rate(),
            "connection_failures": c.generator.failed, "connection_errors": c.generator.errors,
            "active_events": ev(&c.active_events),
            "active_events_per_s": per_s(c.active_events.total(), c.window_s),
            "active_listener_overruns": c.active_overruns,
            "passive_applied_in_window": ev(&c.passive_window),
            "passive_applied_per_s": per_s(c.passive_window.total(), c.window_s),
            "passive_applied_until_quiet": ev(&c.passive_all), "tail_s": c.tail_s,
            "passive_listener_overruns": c.passive_overruns,
            "lag_ms": sum(&c.lag), "keys": c.keys, "never_arrived": c.never_arrived,
            "never_arrived_unknown": c.active_overruns + c.passive_overruns > 0,
            "repeated_keys": c.repeated, "arrived_without_lag": c.early,
            "daemons_before": ctr(&c.before), "daemons_after": ctr(&c.after),
            "active_daemon_lag_ms_during_load": sum(&c.daemon_lag),
        })).collect::<Vec<_>>(),
        "promotion": series.iter().map(|s| json!({
            "mode": s.mode, "sessions": s.size, "runs": s.runs.len(),
            "sessions_phase_ms": mmm(s.runs.iter().map(|p| p.sessions_ms).collect()),
            "total_ms": mmm(s.runs.iter().map(|p| p.total_ms).collect()),
            "passive_held_all_ms": mmm(s.runs.iter().map(|p| p.synced_ms).collect()),
            "every_entry_held_after": s.runs.iter().all(|p| p.held == s.size),
            "samples": s.runs.iter().map(|p| json!({
                "sessions_phase_ms": p.sessions_ms, "total_ms": p.total_ms,
                "phases": p.phases.iter().map(|(n, ms)| json!({"phase": n, "ms": ms})).collect::<Vec<_>>(),
                "passive_held_all_ms": p.synced_ms, "installed_at_promotion": p.installed,
                "held_after": p.held, "promotion_error": p.error,
                "cache_bytes_per_session": p.cache_bytes_per_session,
            })).collect::<Vec<_>>(),
            "failures": s.failures,
        })).collect::<Vec<_>>(),
        "load_average_1m": loads.iter().map(|l| json!({"mode": l.mode, "before": l.before, "after": l.after})).collect::<Vec<_>>(),
        "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "elapsed_s": elapsed.as_secs_f64(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_uses_nearest_rank() {
        assert_eq!(summary(&[]), None);
        let one = summary(&[3.0]).unwrap();
        assert_eq!((one.min, one.p50, one.p99, one.max), (3.0, 3.0, 3.0, 3.0));
        let v: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        let s = summary(&v).unwrap();
        assert_eq!(
            (s.n, s.min, s.p50, s.p99, s.max),
            (100, 1.0, 50.0, 99.0, 100.0)
        );
        let s = summary(&[1.0, 2.0, 3.0, 1000.0]).unwrap();
        assert_eq!((s.p50, s.p99), (2.0, 1000.0));
    }

    #[test]
    fn synthetic_entries_are_distinct_and_recognised() {
        let snat = Ipv4Addr::new(10, 0, 1, 100);
        let v = synthetic(130_000, snat);
        let origs: std::collections::HashSet<_> = v.iter().map(|e| e.orig).collect();
        let replies: std::collections::HashSet<_> = v.iter().map(|e| e.reply).collect();
        assert_eq!((origs.len(), replies.len()), (v.len(), v.len()));
        assert!(v.iter().all(|e| is_synthetic(&e.orig)));
        assert!(v
            .iter()
            .all(|e| e.nat().and_then(|n| n.snat).map(|b| b.addr) == Some(snat)));
        let churn = Tuple::tcp(
            Ipv4Addr::new(10, 0, 10, 10),
            40000,
            Ipv4Addr::new(198, 51, 100, 30),
            7777,
        );
        assert!(!is_synthetic(&churn));
        assert!(is_churn_key(&churn));
        assert!(!is_churn_key(&v[0].orig));
    }

    fn t(port: u16) -> Tuple {
        Tuple::tcp(
            Ipv4Addr::new(10, 0, 10, 10),
            port,
            Ipv4Addr::new(198, 51, 100, 30),
            7777,
        )
    }

    #[test]
    fn news_are_matched_by_key_and_first_arrival() {
        let active = vec![
            (100, Kind::New, false, t(1)),
            (110, Kind::Update, false, t(1)),
            (200, Kind::New, false, t(2)),
            (300, Kind::New, false, t(3)),
            (400, Kind::New, false, t(1)), // reused port
        ];
        let passive = vec![
            (150, Kind::Update, true, t(1)),
            (160, Kind::New, true, t(1)),
            (260, Kind::New, true, t(2)),
            (270, Kind::New, true, t(2)),
            (290, Kind::New, true, t(3)), // recorded before its active NEW
        ];
        let mut m = match_news(&active, &passive, |_| true);
        m.lags_ns.sort();
        assert_eq!(
            m,
            Matched {
                keys: 3,
                lags_ns: vec![60, 60],
                missing: 0,
                repeated: 1,
                early: 1,
            }
        );
        let none = match_news(&active, &passive, |k| k.src_port == 9);
        assert_eq!(none, Matched::default());
    }

    #[test]
    fn promotion_timeline_is_the_latest_complete_become_active() {
        let v: Status = serde_json::from_value(serde_json::json!({"node_id": 1, "state": "active", "term": 4, "healthy": true, "peer": null, "timelines": [
            {"what": "become active (term 2): start", "started_mono_ns": 50,
             "phases": [{"phase": "sessions", "ms": 9.0}], "total_ms": 9.0},
            {"what": "become passive", "started_mono_ns": 150, "phases": [{"phase": "remove addresses", "ms": 1.0}]},
            {"what": "become active (term 4): peer suspended", "started_mono_ns": 200,
             "phases": [{"phase": "sessions", "ms": 0.5}, {"phase": "addresses", "ms": 0.25},
                        {"phase": "announce", "ms": 0.1}, {"phase": "confirm", "ms": 0.15}],
             "total_ms": 1.0},
        ]}))
        .unwrap();
        assert_eq!(promotion_timeline(&v, 300), None);
        let tl = promotion_timeline(&v, 100).unwrap();
        let (sessions, total, phases) = phases_of(&tl).unwrap();
        assert_eq!((sessions, total, phases.len()), (0.5, 1.0, 4));
        assert_eq!(phases[1], ("addresses".to_string(), 0.25));
        assert_eq!(promotion_timeline(&Status::default(), 0), None);
    }

    #[test]
    fn counters_come_from_the_status_json() {
        let v: Status = serde_json::from_value(serde_json::json!({"node_id": 1, "state": "active",
            "term": 1, "healthy": true, "peer": null, "session_sync": {
            "mode": "mirror", "connected": true, "sending": true, "entries_sent": 0, "ready": true,
            "last_install": null, "sessions": 12, "installed": 3, "lag_ms": 0.5, "resyncs": 1,
            "dropped_messages": 0}}))
        .unwrap();
        let c = counters_from(Some(&v));
        assert_eq!(c.state, "active");
        assert_eq!(
            (c.sessions, c.installed, c.resyncs, c.dropped),
            (Some(12), Some(3), Some(1), Some(0))
        );
        assert_eq!(c.lag_ms, Some(0.5));
        assert_eq!(counters_from(None).sessions, None);
    }
}
