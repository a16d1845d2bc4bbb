//! `hafw bench failover`: how long the pair's failover takes, seen from a
//! client and from the cloud, per fault kind and timer profile; and a soak
//! that counts spurious transitions while a CPU hog saturates the machine.
//!
//! Each run faults the current active of a pair in the emulated VPC while
//! a 1 kHz prober on the `web` host talks to the echo host through the
//! firewall's SNAT, then heals the fault and waits for the pair to settle
//! before the next run (one lab per profile, reused: building a lab per run
//! would dominate the time). Figures are printed, never asserted
//! (architecture.md, testing pyramid).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hafw_lab::hosts::ProbeReport;
use hafw_lab::pair::{Fault, Pair, Profile};
use hafw_model::spec::HaProfile;
use serde_json::{json, Value};

const ECHO: &str = "198.51.100.30:7777";
const PROBER_HOST: &str = "web";
/// Probing before the fault, so the run shows a steady state first.
const LEAD: Duration = Duration::from_millis(300);
const SETTLE: Duration = Duration::from_secs(30);

#[derive(clap::Args)]
pub struct Args {
    /// The deployment file; by default the shipped seed example. It needs
    /// a `web` lab host behind the firewall and the echo host 198.51.100.30.
    file: Option<PathBuf>,
    /// Runs per fault kind and profile.
    #[arg(long, default_value_t = 10)]
    runs: usize,
    /// HA timers: `default` (200 ms x 5), `fast` (5 ms x 3), `tight` (2 ms x
    /// 3), `both` (default and fast) or `all`.
    #[arg(long, value_enum, default_value_t = Profiles::Both)]
    profile: Profiles,
    /// Fault kinds, comma-separated: suspend, term, kill, stop, link, crash.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "suspend,kill,stop,link,crash"
    )]
    faults: Vec<String>,
    /// Print the results as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Run the same faults with keepalived (VRRPv3, unicast, one sync group)
    /// moving the floating addresses, with its default and its fastest
    /// advert interval, and print the ratios hafw / keepalived.
    #[arg(long, value_parser = ["keepalived"])]
    compare: Option<String>,
    /// Established TCP sessions (server -> internet, through the SNAT) kept
    /// open across each run; the share that survives is reported.
    #[arg(long, default_value_t = 10)]
    sessions: usize,
    /// After the runs, a soak of this many seconds per profile with both
    /// cores saturated by a CPU hog, counting spurious transitions.
    #[arg(long)]
    soak_seconds: Option<u64>,
    /// A slow cloud: how long the emulated VPC takes to move a HAVIP after
    /// the new owner announces it (`2s`, `500ms`), set on every HAVIP of
    /// the lab. The probes and the TCP sessions' patience grow with it.
    #[arg(long, value_parser = super::cloud_delay::parse_delay)]
    move_delay: Option<Duration>,
}

/// `--profile`: one of hafw's timer profiles, or both in turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Profiles {
    Default,
    Fast,
    Tight,
    /// `default` and `fast`.
    Both,
    /// Every profile.
    All,
}

impl Profiles {
    fn list(self) -> Vec<Profile> {
        match self {
            Profiles::Default => vec![HaProfile::Default.into()],
            Profiles::Fast => vec![HaProfile::Fast.into()],
            Profiles::Tight => vec![HaProfile::Tight.into()],
            Profiles::Both => vec![HaProfile::Default.into(), HaProfile::Fast.into()],
            Profiles::All => HaProfile::ALL.into_iter().map(Profile::from).collect(),
        }
    }
}

impl std::fmt::Display for Profiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(match self {
            Profiles::Default => "default",
            Profiles::Fast => "fast",
            Profiles::Tight => "tight",
            Profiles::Both => "both",
            Profiles::All => "all",
        })
    }
}

/// One run's figures.
struct Sample {
    lost: u64,
    loss_span_ms: f64,
    arrival_gap_ms: f64,
    /// The cloud's move of the external HAVIP after the injection.
    move_ms: f64,
    skipped_ticks: u64,
    /// TCP sessions that survived, of those opened.
    sessions: (usize, usize),
}

struct Series {
    fault: Fault,
    profile: Profile,
    /// keepalived ran with conntrackd (session sync).
    conntrackd: bool,
    samples: Vec<Sample>,
    /// Runs that failed, with why.
    failures: Vec<String>,
}

struct Soak {
    profile: Profile,
    seconds: f64,
    havip_moves: usize,
    transitions: usize,
    terms: Vec<(String, u64, u64)>,
}

pub fn run(args: Args) -> ExitCode {
    if let Err(e) = hafw_daemon::dataplane::preflight::check() {
        eprintln!("error: hafw bench failover: {e}");
        return ExitCode::FAILURE;
    }
    let faults = match parse_faults(&args.faults) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: hafw bench failover: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.runs == 0 && args.soak_seconds.is_none() {
        eprintln!("error: hafw bench failover: --runs must be at least 1 (or give --soak-seconds)");
        return ExitCode::FAILURE;
    }
    let mut profiles = args.profile.list();
    if args.compare.is_some() {
        if std::process::Command::new("keepalived")
            .arg("--version")
            .output()
            .is_err()
        {
            eprintln!("error: hafw bench failover --compare keepalived: keepalived is not installed; install it with `apt-get install keepalived` (Debian) and run again");
            return ExitCode::FAILURE;
        }
        if hafw_lab::pair::conntrackd_path().is_none() {
            eprintln!("conntrackd not installed: keepalived runs without session sync (apt-get install conntrackd)");
        }
        profiles.push(Profile::KEEPALIVED);
        profiles.push(Profile::KEEPALIVED_FASTEST);
    }
    let file = match super::deployment_file(args.file.as_deref(), "seed") {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: hafw bench failover: {e}");
            return ExitCode::FAILURE;
        }
    };
    let delayed = match args.move_delay {
        Some(d) => match super::cloud_delay::with_move_delay(file.path(), d) {
            Ok(f) => Some(f),
            Err(e) => {
                eprintln!("error: hafw bench failover --move-delay: {e}");
                return ExitCode::FAILURE;
            }
        },
        None => None,
    };
    let path = delayed.as_ref().map_or(file.path(), |d| d.path());
    let result = bench(&args, &faults, &profiles, path);
    drop(delayed);
    drop(file);
    match result {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: hafw bench failover: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_faults(names: &[String]) -> Result<Vec<Fault>, String> {
    names
        .iter()
        .map(|n| {
            Fault::parse(n.trim()).ok_or_else(|| {
                format!(
                    "unknown fault `{n}`: use suspend, term, kill, stop, link or crash, comma-separated"
                )
            })
        })
        .collect()
}

fn bench(args: &Args, faults: &[Fault], profiles: &[Profile], file: &Path) -> Result<bool, String> {
    let exe = std::env::current_exe().map_err(|e| format!("cannot find the hafw binary: {e}"))?;
    let echo: SocketAddr = ECHO.parse().map_err(|e| format!("{e}"))?;
    let started = Instant::now();
    let mut all: Vec<Series> = vec![];
    let mut soaks: Vec<Soak> = vec![];
    for (i, &profile) in profiles.iter().enumerate() {
        // A fresh pair per fault kind: what one kind of fault leaves behind
        // (a route the kernel dropped with a link, say) must not show up
        // in another kind's figures. Within a kind the pair is reused.
        for (j, &fault) in faults.iter().enumerate() {
            if args.runs == 0 {
                break;
            }
            let lab = format!("fob{}{i}{j}", std::process::id() % 10000);
            eprintln!(
                "profile {profile}, {}: building lab {lab} and starting both firewalls",
                fault.as_str()
            );
            let mut pair =
                Pair::start(file, &lab, &exe, profile.as_str()).map_err(|e| e.to_string())?;
            all.push(series(
                &mut pair,
                fault,
                profile,
                args.runs,
                echo,
                args.sessions,
            ));
            pair.stop().map_err(|e| format!("remove lab {lab}: {e}"))?;
        }
        if let Some(secs) = args.soak_seconds {
            let lab = format!("fosoak{}{i}", std::process::id() % 10000);
            soaks.push(soak(file, &lab, &exe, profile, Duration::from_secs(secs))?);
        }
    }
    if args.json {
        println!("{}", to_json(&all, &soaks, started.elapsed()));
    } else {
        print_table(&all, &soaks, started.elapsed());
    }
    Ok(all.iter().all(|s| s.failures.is_empty()))
}

/// `runs` runs of one fault on a reused pair.
fn series(
    pair: &mut Pair,
    fault: Fault,
    profile: Profile,
    runs: usize,
    echo: SocketAddr,
    sessions: usize,
) -> Series {
    let mut s = Series {
        fault,
        profile,
        conntrackd: pair.conntrackd(),
        samples: vec![],
        failures: vec![],
    };
    // Long enough to see the detection, the move and recovery after it.
    let outage = pair.detection() + super::cloud_delay::longest_delay(&pair.dep);
    let duration = LEAD + outage + Duration::from_millis(700);
    for run in 1..=runs {
        match one_run(pair, fault, duration, outage, echo, sessions) {
            Ok(sample) => {
                eprintln!(
                    "{profile:<7} {:<17} run {run:>2}: lost {:>4}  loss span {:>7.1} ms  arrival gap {:>7.1} ms  HAVIP moved {:>7.1} ms{}",
                    fault.as_str(),
                    sample.lost,
                    sample.loss_span_ms,
                    sample.arrival_gap_ms,
                    sample.move_ms,
                    if sample.skipped_ticks > 0 { format!("  ({} prober ticks skipped)", sample.skipped_ticks) } else { String::new() }
                );
                s.samples.push(sample);
            }
            Err(e) => {
                eprintln!(
                    "{profile:<7} {:<17} run {run:>2}: FAILED: {e}",
                    fault.as_str()
                );
                s.failures.push(e);
                // A broken pair makes every later run fail the same way.
                if pair.wait_settled(SETTLE).is_err() {
                    s.failures.push(
                        "the pair did not settle again; the remaining runs were skipped".into(),
                    );
                    break;
                }
            }
        }
    }
    s
}

fn one_run(
    pair: &mut Pair,
    fault: Fault,
    duration: Duration,
    outage: Duration,
    echo: SocketAddr,
    n_sessions: usize,
) -> Result<Sample, String> {
    // A passive restarted by the last run's heal protects nothing until it
    // holds the table: an operator waits for `ready`, so does the bench.
    // Then who is active, asked last: it may have changed meanwhile.
    pair.wait_ready(SETTLE).map_err(|e| e.to_string())?;
    let active = pair.wait_settled(SETTLE).map_err(|e| e.to_string())?;
    let standby = pair.peer_of(&active).ok_or("the pair has one node")?;
    // Judged as TCP judges them: each echo may wait out the outage and
    // the retransmission backoff on top of it.
    let sessions = hafw_lab::sessions::Sessions::open_patient(
        &hafw_lab::topology::ns_name(&pair.lab, PROBER_HOST),
        echo,
        n_sessions,
        Duration::from_millis(10),
        hafw_lab::sessions::patience_for(outage),
    );
    // Connections live a while before a failover: give session sync the
    // moment it needs to carry new ones over. And a passive restarted by
    // the last heal detects at four times the fixed time in its first
    // second (adaptive detection's warm-up): the runs measure the steady
    // state, 1.1 s on.
    std::thread::sleep(Duration::from_millis(1100));
    let (report, probe_start, injected) = pair
        .probe_around(PROBER_HOST, echo, duration, LEAD, |p| {
            p.inject(fault, &active)
        })
        .map_err(|e| e.to_string())?;
    let at = injected.map_err(|e| format!("inject {}: {e}", fault.as_str()))?;
    // A failed move is shown with what both nodes said, before the heal
    // restarts anything: one such run was seen and its lab was gone.
    let moved = pair
        .wait_moved_to(&standby, at, SETTLE)
        .map_err(|e| format!("{e}\n{}", diagnosis(pair, &standby, &active)));
    // Let the sessions exchange on the new active before judging them.
    std::thread::sleep(Duration::from_millis(300));
    let results = sessions.finish();
    let survived = results.iter().filter(|r| r.failure.is_none()).count();
    // Heal even when the move failed, so the next run starts clean.
    pair.heal(fault, &active)
        .map_err(|e| format!("heal {} on {active}: {e}", fault.as_str()))?;
    let moved = moved.map_err(|e| e.to_string())?;
    // A probe sent well before the fault and lost means the pair was not
    // forwarding to begin with; a probe in flight at the fault is fair.
    let fault_at = Duration::from_nanos(at.saturating_sub(probe_start));
    if let Some(first) = report.first_lost {
        if first.sent_at + Duration::from_millis(20) < fault_at {
            return Err(format!(
                "traffic was failing before the fault (probe {} lost, {} lost in all): not a failover figure",
                first.seq, report.lost
            ));
        }
    }
    let ext = pair
        .dep
        .external_havip()
        .map(|h| h.name.clone())
        .unwrap_or_default();
    let move_ns = moved
        .iter()
        .find(|(h, _)| *h == ext)
        .map(|(_, t)| *t)
        .unwrap_or(at);
    pair.wait_settled(SETTLE)
        .map_err(|e| format!("after healing: {e}"))?;
    let mut out = sample(&report, move_ns.saturating_sub(at));
    out.sessions = (survived, results.len());
    Ok(out)
}

/// The standby's status and the tail of both daemons' logs, for a report.
fn diagnosis(pair: &Pair, standby: &str, victim: &str) -> String {
    let tail = |node: &str| {
        let log = pair.daemon_log(node);
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(25)..].join("\n    ")
    };
    format!(
        "  status of {standby}:\n    {}\n  log of {standby}:\n    {}\n  log of {victim}:\n    {}",
        pair.status_text(standby).trim_end().replace('\n', "\n    "),
        tail(standby),
        tail(victim)
    )
}

fn sample(r: &ProbeReport, move_ns: u64) -> Sample {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    Sample {
        lost: r.lost,
        loss_span_ms: ms(r.longest_loss_span),
        arrival_gap_ms: ms(r.longest_arrival_gap),
        move_ms: move_ns as f64 / 1e6,
        skipped_ticks: r.skipped_ticks,
        sessions: (0, 0),
    }
}

/// The profile as the tables name it: keepalived with conntrackd says so.
fn label(s: &Series) -> String {
    if s.conntrackd {
        format!("{} + conntrackd", s.profile)
    } else {
        s.profile.to_string()
    }
}

/// Share of TCP sessions that survived over a series' runs, in percent.
fn survival(s: &Series) -> Option<f64> {
    let (ok, all) = s
        .samples
        .iter()
        .fold((0, 0), |(a, b), x| (a + x.sessions.0, b + x.sessions.1));
    (all > 0).then(|| 100.0 * ok as f64 / all as f64)
}

/// Both cores saturated at nice 0 while the pair idles: every transition
/// and every HAVIP move in the window is spurious.
fn soak(
    file: &Path,
    lab: &str,
    exe: &Path,
    profile: Profile,
    length: Duration,
) -> Result<Soak, String> {
    eprintln!("soak, profile {profile}: building lab {lab}");
    let pair = Pair::start(file, lab, exe, profile.as_str()).map_err(|e| e.to_string())?;
    pair.wait_settled(SETTLE).map_err(|e| e.to_string())?;
    let terms_before: Vec<(String, u64)> = pair
        .nodes()
        .into_iter()
        .map(|n| (n.clone(), term(&pair, &n)))
        .collect();
    let since = hafw_lab::lab::monotonic_ns();
    let stop = Arc::new(AtomicBool::new(false));
    let hogs: Vec<_> = (0..2)
        .map(|_| {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let mut x: u64 = 1;
                while !stop.load(Ordering::Relaxed) {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
            })
        })
        .collect();
    eprintln!(
        "soak, profile {profile}: CPU hog on 2 threads for {}s",
        length.as_secs()
    );
    let start = Instant::now();
    let mut next_report = start + Duration::from_secs(30);
    while start.elapsed() < length {
        std::thread::sleep(Duration::from_secs(1).min(length.saturating_sub(start.elapsed())));
        if Instant::now() >= next_report {
            next_report += Duration::from_secs(30);
            eprintln!(
                "soak, profile {profile}: {:.0}s, {} HAVIP moves so far",
                start.elapsed().as_secs_f64(),
                pair.moves_since(since).len()
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    for h in hogs {
        let _ = h.join();
    }
    let seconds = start.elapsed().as_secs_f64();
    // Exactly the soak: the cold start's own transitions, a moment before
    // it, are not spurious (a second of slack here once counted them).
    let window_ms = start.elapsed().as_secs_f64() * 1000.0;
    let transitions = pair
        .nodes()
        .iter()
        .map(|n| transitions_within(&pair, n, window_ms))
        .sum();
    let havip_moves = pair.moves_since(since).len();
    let terms = terms_before
        .into_iter()
        .map(|(n, t)| (n.clone(), t, term(&pair, &n)))
        .collect();
    pair.stop().map_err(|e| format!("remove lab {lab}: {e}"))?;
    Ok(Soak {
        profile,
        seconds,
        havip_moves,
        transitions,
        terms,
    })
}

fn term(pair: &Pair, node: &str) -> u64 {
    pair.status(node).map_or(0, |s| s.term)
}

/// Transitions the node reports within the last `window_ms`. The node
/// keeps its last 16; 16 here means at least 16.
fn transitions_within(pair: &Pair, node: &str, window_ms: f64) -> usize {
    pair.status(node).map_or(0, |s| {
        s.transitions
            .iter()
            .filter(|t| t.ms_ago.is_some_and(|a| a < window_ms))
            .count()
    })
}

const NOTE: &str = "\
Notes:
- kill -9 and SIGSTOP stop only the daemon: the victim's kernel keeps its
  floating addresses and forwards what reaches it, so traffic may see little
  loss although the HAVIPs move after the detection time. `instance crash`
  (daemon killed and every interface down) is the fault comparable to a VM
  dying; `untrust link down` and `suspend` are detected without heartbeats.
- HAVIP move: the emulated cloud's log entry for the external HAVIP minus the
  injection time. Loss span: send-time span of the longest run of lost
  probes. Arrival gap: longest time between two replies at the client.";

fn print_table(all: &[Series], soaks: &[Soak], elapsed: Duration) {
    if !all.is_empty() {
        println!("hafw bench failover: 1 kHz UDP prober web -> {ECHO} (SNAT via the external HAVIP), min / median / max");
        println!(
            "{:<18} {:<18} {:>4}  {:>20}  {:>26}  {:>26}  {:>26}  {:>8}",
            "fault",
            "profile",
            "runs",
            "lost probes",
            "loss span ms",
            "arrival gap ms",
            "HAVIP move ms",
            "TCP kept"
        );
        for s in all {
            let f = |g: &dyn Fn(&Sample) -> f64, prec: usize| match super::min_med_max(
                &s.samples.iter().map(g).collect::<Vec<_>>(),
            ) {
                Some((a, b, c)) => format!("{a:.prec$} / {b:.prec$} / {c:.prec$}"),
                None => "-".into(),
            };
            println!(
                "{:<18} {:<18} {:>4}  {:>20}  {:>26}  {:>26}  {:>26}  {:>8}",
                s.fault.as_str(),
                label(s),
                s.samples.len(),
                f(&|x| x.lost as f64, 0),
                f(&|x| x.loss_span_ms, 1),
                f(&|x| x.arrival_gap_ms, 1),
                f(&|x| x.move_ms, 1),
                survival(s)
                    .map(|p| format!("{p:.0}%"))
                    .unwrap_or_else(|| "-".into()),
            );
            for e in &s.failures {
                println!("  failed run: {e}");
            }
        }
        println!("{NOTE}");
        print_ratios(all);
    }
    for s in soaks {
        println!(
            "soak ({} profile, {:.0} s, CPU hog on 2 threads): {} spurious transitions, {} HAVIP moves; terms {}",
            s.profile,
            s.seconds,
            s.transitions,
            s.havip_moves,
            s.terms.iter().map(|(n, a, b)| format!("{n} {a}->{b}")).collect::<Vec<_>>().join(", ")
        );
    }
    println!("total time {:.0} s", elapsed.as_secs_f64());
}

/// hafw / keepalived per fault: median loss span and median HAVIP move
/// (below 1 means hafw is faster), for each pairing of timer profiles.
fn print_ratios(all: &[Series]) {
    let med = |s: &Series, g: &dyn Fn(&Sample) -> f64| {
        super::min_med_max(&s.samples.iter().map(g).collect::<Vec<_>>()).map(|x| x.1)
    };
    let (fast, default) = (
        Profile::from(HaProfile::Fast),
        Profile::from(HaProfile::Default),
    );
    let pairs = [
        (fast, Profile::KEEPALIVED_FASTEST),
        (default, Profile::KEEPALIVED),
        (fast, Profile::KEEPALIVED),
    ];
    let mut lines = vec![];
    for (h, k) in pairs {
        for hs in all.iter().filter(|s| s.profile == h) {
            let Some(ks) = all.iter().find(|s| s.profile == k && s.fault == hs.fault) else {
                continue;
            };
            let ratio = |g: &dyn Fn(&Sample) -> f64| match (med(hs, g), med(ks, g)) {
                (Some(a), Some(b)) if b > 0.0 => format!("{:.3}", a / b),
                (Some(a), Some(b)) => format!("{a:.1} vs {b:.1}"),
                _ => "-".into(),
            };
            lines.push(format!(
                "{:<18} hafw {h:<8} / {:<19} loss span {:>12}   HAVIP move {:>12}   TCP kept {} vs {}",
                hs.fault.as_str(),
                label(ks),
                ratio(&|x| x.loss_span_ms),
                ratio(&|x| x.move_ms),
                survival(hs).map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into()),
                survival(ks).map(|p| format!("{p:.0}%")).unwrap_or_else(|| "-".into()),
            ));
        }
    }
    if !lines.is_empty() {
        println!("\nratios hafw / keepalived (medians; below 1: hafw is faster):");
        for l in lines {
            println!("{l}");
        }
    }
}

fn to_json(all: &[Series], soaks: &[Soak], elapsed: Duration) -> Value {
    let st = |v: Vec<f64>| {
        super::min_med_max(&v).map(|(a, b, c)| json!({"min": a, "median": b, "max": c}))
    };
    json!({
        "prober": {"from": PROBER_HOST, "to": ECHO, "rate_hz": 1000},
        "series": all.iter().map(|s| json!({
            "fault": s.fault.key(),
            "profile": s.profile.as_str(),
            "conntrackd": s.conntrackd,
            "runs": s.samples.len(),
            "lost": st(s.samples.iter().map(|x| x.lost as f64).collect()),
            "loss_span_ms": st(s.samples.iter().map(|x| x.loss_span_ms).collect()),
            "arrival_gap_ms": st(s.samples.iter().map(|x| x.arrival_gap_ms).collect()),
            "havip_move_ms": st(s.samples.iter().map(|x| x.move_ms).collect()),
            "tcp_survived_pct": survival(s),
            "samples": s.samples.iter().map(|x| json!({
                "lost": x.lost, "loss_span_ms": x.loss_span_ms, "arrival_gap_ms": x.arrival_gap_ms,
                "havip_move_ms": x.move_ms, "skipped_ticks": x.skipped_ticks,
            })).collect::<Vec<_>>(),
            "failures": s.failures,
        })).collect::<Vec<_>>(),
        "soaks": soaks.iter().map(|s| json!({
            "profile": s.profile.as_str(), "seconds": s.seconds, "spurious_transitions": s.transitions,
            "havip_moves": s.havip_moves,
            "terms": s.terms.iter().map(|(n, a, b)| json!({"node": n, "before": a, "after": b})).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "elapsed_s": elapsed.as_secs_f64(),
    })
}
