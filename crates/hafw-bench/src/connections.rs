//! `hafw bench connections`: new connections per second through the
//! active firewall with session sync on (`mirror`: the passive installs
//! every change as it comes) against the same pair with sync off, in one
//! run: two labs up at once, measured in turn (on, off, on, off, ...), so
//! a load that changes during the run touches both alike.
//!
//! The load is `hafw_lab::hosts::churn`: threads in the `web` host each
//! connect to the internet echo host through the SNAT, read its greeting
//! and close, one connection at a time, over and over. Each connection is
//! a NEW, several UPDATEs and a DESTROY in the active's conntrack, so
//! every one is also sync traffic. The generator's blocking
//! connect-and-greet is the cost per connection on the load side (the echo
//! host's accept loop can hold a connection up to 5 ms): more threads
//! raise the rate until the CPUs are busy, which on a 2-vCPU machine is
//! soon; the figure is the firewall's only when the CPUs are not shared
//! with anything else.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use hafw_lab::hosts::{ChurnConfig, ChurnReport, Stop};
use hafw_lab::pair::Pair;
use hafw_lab::topology::ns_name;

const ECHO: &str = "198.51.100.30:7777";
const CHURN_HOST: &str = "web";
/// Between measurements: TIME_WAIT entries of the last one expire in the
/// background; a short pause lets the sync thread catch up first.
const PAUSE: Duration = Duration::from_millis(500);

#[derive(clap::Args)]
pub struct Args {
    /// Length of each measurement.
    #[arg(long, default_value_t = 3)]
    seconds: u64,
    /// Measurements per configuration.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Load generator threads (one connection at a time each).
    #[arg(long, default_value_t = 16)]
    threads: usize,
    /// HA timers of the pairs: `default` or `fast`.
    #[arg(long, value_enum, default_value_t = hafw_model::spec::HaProfile::Default)]
    profile: hafw_model::spec::HaProfile,
}

pub fn run(args: Args) -> ExitCode {
    if let Err(e) = hafw_daemon::dataplane::preflight::check() {
        eprintln!("error: hafw bench connections: {e}");
        return ExitCode::FAILURE;
    }
    if args.seconds == 0 || args.runs == 0 || args.threads == 0 {
        eprintln!(
            "error: hafw bench connections: --seconds, --runs and --threads must be at least 1"
        );
        return ExitCode::FAILURE;
    }
    let file = match super::deployment_file(None, "connections") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: hafw bench connections: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = bench(&args, file.path());
    drop(file);
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: hafw bench connections: {e}");
            ExitCode::FAILURE
        }
    }
}

fn bench(args: &Args, file: &Path) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the hafw binary: {e}"))?;
    let echo: SocketAddr = ECHO.parse().map_err(|e| format!("{e}"))?;
    let modes = ["mirror", "off"];
    let mut pairs = Vec::new();
    for (i, mode) in modes.iter().enumerate() {
        let lab = format!("cps{}{i}", std::process::id() % 10000);
        eprintln!("session sync {mode}: building lab {lab} and starting both firewalls");
        // Each pair removes its lab when dropped, on every error path too.
        let pair = Pair::start_opts(
            file,
            &lab,
            &exe,
            args.profile.as_str(),
            false,
            &["--session-sync", mode],
        )
        .map_err(|e| e.to_string())?;
        let web = ns_name(&pair.lab, CHURN_HOST);
        // Every connection leaves the client in TIME_WAIT for 60 s: widen
        // the web host's own ephemeral ports (the namespace is the lab's).
        hafw_kernel::sysctl::set(Some(&web), "net.ipv4.ip_local_port_range", "1024 65535")
            .map_err(|e| format!("widen the ephemeral ports of {web}: {e}"))?;
        pairs.push(pair);
    }
    for pair in &pairs {
        pair.wait_ready(Duration::from_secs(30))
            .map_err(|e| e.to_string())?;
    }
    let mut rates: Vec<Vec<f64>> = vec![Vec::new(); modes.len()];
    let mut failed = vec![0u64; modes.len()];
    for run in 1..=args.runs {
        for (i, pair) in pairs.iter().enumerate() {
            let report = churn(pair, echo, args)?;
            eprintln!(
                "run {run}: sync {}: {:.0} connections/s ({} completed, {} failed{})",
                modes[i],
                report.rate(),
                report.completed,
                report.failed,
                report
                    .errors
                    .first()
                    .map(|e| format!(", first: {e}"))
                    .unwrap_or_default()
            );
            rates[i].push(report.rate());
            failed[i] += report.failed;
            std::thread::sleep(PAUSE);
        }
    }
    let sessions = pairs
        .first()
        .and_then(|p| {
            let active = p.owner()?;
            let passive = p.peer_of(&active)?;
            let s = p.status(&passive)?.session_sync?;
            Some(format!(
                "{} sessions held, {} entries installed, {} resyncs",
                s.sessions, s.installed, s.resyncs
            ))
        })
        .unwrap_or_else(|| "unknown".into());
    for pair in pairs {
        let lab = pair.lab.clone();
        pair.stop().map_err(|e| format!("remove lab {lab}: {e}"))?;
    }
    println!(
        "TCP connections web -> {ECHO} through the active's SNAT (connect, greeting, close), {} threads, {} s each, {} runs, alternating; profile {}",
        args.threads,
        args.seconds,
        args.runs,
        args.profile.as_str()
    );
    println!(
        "{:<24} {:>9} {:>9} {:>9}   failed",
        "connections/s", "min", "median", "max"
    );
    for (i, mode) in modes.iter().enumerate() {
        let (a, b, c) = super::min_med_max(&rates[i]).unwrap_or((f64::NAN, f64::NAN, f64::NAN));
        let label = if *mode == "off" {
            "session sync off".to_string()
        } else {
            format!("session sync {mode}")
        };
        println!("{label:<24} {a:>9.0} {b:>9.0} {c:>9.0}   {}", failed[i]);
    }
    let ratios: Vec<f64> = rates[0]
        .iter()
        .zip(&rates[1])
        .map(|(on, off)| on / off)
        .collect();
    if let Some((a, b, c)) = super::min_med_max(&ratios) {
        println!(
            "sync on / off, per run: {a:.2} / {b:.2} / {c:.2} (min/median/max); goal: >= 0.85 (sync costs at most 15%)"
        );
    }
    println!("the passive of the sync-on pair at the end: {sessions}");
    Ok(())
}

fn churn(pair: &Pair, echo: SocketAddr, args: &Args) -> Result<ChurnReport, String> {
    let web = ns_name(&pair.lab, CHURN_HOST);
    let mut cfg = ChurnConfig::new(echo);
    cfg.threads = args.threads;
    cfg.duration = Duration::from_secs(args.seconds);
    hafw_kernel::in_netns(Some(&web), || hafw_lab::hosts::churn(&cfg, &Stop::new()))
        .map_err(|e| format!("enter {web}: {e}"))?
        .map_err(|e| format!("load generator: {e}"))
}
