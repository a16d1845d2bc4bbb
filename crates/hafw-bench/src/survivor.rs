//! `hafw bench survivor`: the memory of the node left alone. The passive
//! is killed with kill -9, connections churn through the active's SNAT for
//! a while, and the active's resident memory is sampled every second; then
//! the passive is started again and must become ready from one fresh bulk
//! (the active's bulk count goes up by one, not by a backlog of refreshes).
//!
//! [`outage`] is the measurement, shared with the namespace test
//! `crates/hafw/tests/survivor.rs`, which asserts on a shorter run what
//! this command prints for a long one.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use hafw_lab::hosts::{ChurnConfig, ChurnReport, Stop};
use hafw_lab::pair::{Fault, Pair};

/// The echo host the churn connects to, through the active's SNAT.
const ECHO: &str = "198.51.100.30:7777";
const CHURN_HOST: &str = "web";

#[derive(clap::Args)]
pub struct Args {
    /// Deployment file (default: the built-in seed).
    #[arg(long)]
    file: Option<std::path::PathBuf>,
    /// How long the connections churn with the passive dead.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Load generator threads (one connection at a time each).
    #[arg(long, default_value_t = 8)]
    threads: usize,
    /// The HA timer profile of both daemons.
    #[arg(long, default_value = "fast")]
    profile: String,
}

/// What [`outage`] measured.
#[derive(Debug, Clone)]
pub struct Outage {
    pub active: String,
    pub passive: String,
    /// (seconds since the churn started, the active's VmRSS in kB), every
    /// second of the churn.
    pub rss: Vec<(f64, u64)>,
    pub churn: ChurnReport,
    /// The active's bulk generations (`session_sync.resyncs`, which counts
    /// every bulk and resync) just before the passive restarted and once it
    /// was ready.
    pub bulks_before: u64,
    pub bulks_after: u64,
    /// From the passive's restart to its `ready`.
    pub ready_after: Duration,
    /// Both nodes' states at the end (the survivor should still be active).
    pub states_after: Vec<(String, Option<String>)>,
}

impl Outage {
    /// The sample at (or just after) `secs` into the churn.
    pub fn rss_at(&self, secs: f64) -> Option<u64> {
        self.rss.iter().find(|(t, _)| *t >= secs).map(|&(_, kb)| kb)
    }

    pub fn rss_last(&self) -> Option<u64> {
        self.rss.last().map(|&(_, kb)| kb)
    }
}

/// Kills the passive, churns connections through the active for `load`
/// sampling its memory, restarts the passive and waits until it is ready.
pub fn outage(pair: &mut Pair, load: Duration, threads: usize) -> Result<Outage, String> {
    let active = pair
        .wait_settled(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let passive = pair.peer_of(&active).ok_or("the pair has one node")?;
    pair.wait_ready(Duration::from_secs(30))
        .map_err(|e| e.to_string())?;
    let pid = daemon_pid(&pair.control(&active))
        .ok_or_else(|| format!("no hafw process of {active} found in /proc"))?;
    let web = format!("hafw-{}.{CHURN_HOST}", pair.lab);
    // Each connection leaves a TIME_WAIT for 60 s: widen the client's ports.
    hafw_kernel::sysctl::set(Some(&web), "net.ipv4.ip_local_port_range", "1024 65535")
        .map_err(|e| format!("widen the ephemeral ports of {web}: {e}"))?;
    pair.inject(Fault::Kill, &passive)
        .map_err(|e| e.to_string())?;
    // Let the active see its peer gone before the clock starts.
    std::thread::sleep(Duration::from_secs(2));
    let mut cfg = ChurnConfig::new(ECHO.parse::<SocketAddr>().map_err(|e| e.to_string())?);
    cfg.threads = threads;
    cfg.duration = load;
    let generator = std::thread::Builder::new()
        .name("survivor-churn".into())
        .spawn(move || {
            hafw_kernel::in_netns(Some(&web), || hafw_lab::hosts::churn(&cfg, &Stop::new()))
        })
        .map_err(|e| format!("start the load generator: {e}"))?;
    let start = Instant::now();
    let mut rss = vec![];
    while !generator.is_finished() {
        if let Some(kb) = vm_rss_kb(pid) {
            rss.push((start.elapsed().as_secs_f64(), kb));
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    let churn = generator
        .join()
        .map_err(|_| "the load generator panicked".to_string())?
        .map_err(|e| format!("in {CHURN_HOST}: {e}"))?
        .map_err(|e| format!("churn: {e}"))?;
    if let Some(kb) = vm_rss_kb(pid) {
        rss.push((start.elapsed().as_secs_f64(), kb));
    }
    let bulks_before = bulks(pair, &active)?;
    let restarted = Instant::now();
    pair.heal(Fault::Kill, &passive)
        .map_err(|e| e.to_string())?;
    pair.wait_ready(Duration::from_secs(60))
        .map_err(|e| e.to_string())?;
    let ready_after = restarted.elapsed();
    // A moment for any second bulk a backlog would have caused.
    std::thread::sleep(Duration::from_secs(3));
    let bulks_after = bulks(pair, &active)?;
    let states_after = pair
        .nodes()
        .into_iter()
        .map(|n| {
            let st = pair.state(&n);
            (n, st)
        })
        .collect();
    Ok(Outage {
        states_after,
        active,
        passive,
        rss,
        churn,
        bulks_before,
        bulks_after,
        ready_after,
    })
}

fn bulks(pair: &Pair, node: &str) -> Result<u64, String> {
    pair.status(node)
        .and_then(|s| s.session_sync)
        .map(|s| s.resyncs)
        .ok_or_else(|| format!("{node} reports no session sync"))
}

/// The pid of the `hafw run` whose command line names `control` (each
/// node of each lab has its own control socket).
pub fn daemon_pid(control: &Path) -> Option<i32> {
    let want = control.to_string_lossy().into_owned();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|d| {
        let pid: i32 = d.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(d.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|&b| b == 0).collect();
        let is_run = args.contains(&b"run".as_slice());
        let names = args.contains(&want.as_bytes());
        (is_run && names).then_some(pid)
    })
}

/// `VmRSS` of `pid` in kB.
pub fn vm_rss_kb(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

pub fn run(args: Args) -> ExitCode {
    match bench(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hafw bench survivor: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args) -> Result<(), String> {
    let file = super::deployment_file(args.file.as_deref(), "survivor")?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let lab = format!("surv{}", std::process::id() % 10000);
    let mut pair =
        Pair::start(file.path(), &lab, &exe, &args.profile).map_err(|e| e.to_string())?;
    eprintln!(
        "survivor: passive killed, {} threads churning through the active for {} s",
        args.threads, args.seconds
    );
    let r = outage(&mut pair, Duration::from_secs(args.seconds), args.threads);
    let _ = pair.stop();
    let r = r?;
    let mb = |kb: Option<u64>| kb.map_or("-".into(), |k| format!("{:.1}", k as f64 / 1024.0));
    println!(
        "hafw bench survivor: {} killed (kill -9), {} active, {} threads, {} s, {:.0} conn/s ({} connections, {} failed)",
        r.passive,
        r.active,
        args.threads,
        args.seconds,
        r.churn.rate(),
        r.churn.completed,
        r.churn.failed
    );
    println!("{:>8}  {:>8}", "at", "RSS MB");
    let mut marks: Vec<f64> = vec![1.0, 20.0, 60.0];
    marks.extend((2..=args.seconds / 60).map(|m| (m * 60) as f64));
    for at in marks.into_iter().filter(|&s| s <= args.seconds as f64) {
        println!("{:>7}s  {:>8}", at, mb(r.rss_at(at)));
    }
    println!("{:>8}  {:>8}", "end", mb(r.rss_last()));
    let growth = match (r.rss_at(60.0), r.rss_last()) {
        (Some(a), Some(b)) => format!("{:+.1} MB", (b as f64 - a as f64) / 1024.0),
        _ => "-".into(),
    };
    println!("growth after the first minute: {growth} (goal: at most 2 MB)");
    println!(
        "rejoin: {} ready after {:.1} s, bulks on the active {} -> {} (goal: one)",
        r.passive,
        r.ready_after.as_secs_f64(),
        r.bulks_before,
        r.bulks_after
    );
    println!("states at the end: {:?}", r.states_after);
    Ok(())
}
