//! `hafw probe`: the lab's prober on any host (clap and dispatch only; the
//! prober is `hafw_lab::hosts`, what it prints `hosts::outage`).

use std::net::{SocketAddr, ToSocketAddrs};
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use hafw_lab::hosts::outage::{self, MaxLoss, Thresholds};
use hafw_lab::hosts::{self, Method, ProbeConfig, Stop};

/// Exit status when the run broke a threshold (1 is a probe that could not run).
const EXIT_THRESHOLD: u8 = 3;

#[derive(clap::Args)]
pub struct ProbeArgs {
    /// What to probe: `ADDRESS` for icmp, `HOST:PORT` for tcp, http and udp
    /// (http defaults to port 80).
    target: String,
    /// icmp (a ping, as the seed's failover test; a raw socket needs root),
    /// tcp (a connection per probe), http (a GET per probe, any response
    /// counts), udp (datagrams to `hafw lab serve echo`).
    #[arg(long, value_parser = ["icmp", "tcp", "http", "udp"], default_value = "icmp")]
    method: String,
    /// The path an http probe asks for.
    #[arg(long, default_value = "/")]
    path: String,
    /// Time between probes: 1ms to 1s (`100ms`, `1s`).
    #[arg(long, default_value = "100ms", value_parser = parse_duration)]
    interval: Duration,
    /// How long to probe (`60s`, `5m`).
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    duration: Duration,
    /// How long a probe may take to be answered before it counts as lost.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    timeout: Duration,
    /// Fail (exit 3) if more probes are lost: a count (`20`) or a share (`1%`).
    #[arg(long)]
    max_loss: Option<MaxLoss>,
    /// Fail (exit 3) if a lost span is longer (`2s`).
    #[arg(long, value_parser = parse_duration)]
    max_outage: Option<Duration>,
    /// Print one JSON object instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: ProbeArgs) -> ExitCode {
    let config = match config(&args) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: hafw probe: {e}");
            return ExitCode::FAILURE;
        }
    };
    let thresholds = Thresholds {
        max_loss: args.max_loss,
        max_outage: args.max_outage,
    };
    let started = SystemTime::now();
    let report = match hosts::probe(&config, &Stop::new()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: hafw probe {}: {e}", args.target);
            return ExitCode::FAILURE;
        }
    };
    let method = config.method.as_str();
    if args.json {
        println!(
            "{}",
            outage::render_json(&report, method, started, &thresholds)
        );
    } else {
        print!(
            "{}",
            outage::render_text(&report, method, started, &thresholds)
        );
    }
    if outage::breaches(&report, &thresholds).is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_THRESHOLD)
    }
}

fn config(args: &ProbeArgs) -> Result<ProbeConfig, String> {
    let method = match args.method.as_str() {
        "icmp" => Method::Icmp,
        "tcp" => Method::Tcp,
        "udp" => Method::Udp,
        _ => Method::Http {
            path: args.path.clone(),
        },
    };
    let target = resolve(&args.target, &method)?;
    if args.interval < Duration::from_millis(1) || args.interval > Duration::from_secs(1) {
        return Err(format!("--interval {:?}: give 1ms to 1s", args.interval));
    }
    let rate_hz = (1e9 / args.interval.as_nanos() as f64).round() as u32;
    Ok(ProbeConfig {
        method,
        rate_hz,
        duration: args.duration,
        timeout: args.timeout,
        ..ProbeConfig::new(target)
    })
}

/// `ADDRESS`, `HOST:PORT` or `[V6]:PORT`; names resolve to their first address.
fn resolve(target: &str, method: &Method) -> Result<SocketAddr, String> {
    if let Ok(ip) = target.parse::<std::net::IpAddr>() {
        return match method {
            Method::Icmp => Ok(SocketAddr::new(ip, 0)),
            Method::Http { .. } => Ok(SocketAddr::new(ip, 80)),
            _ => Err(format!("`{target}`: give the port too, as in {ip}:80")),
        };
    }
    let with_port = match (method, target.rsplit_once(':')) {
        (Method::Icmp | Method::Http { .. }, None) => format!(
            "{target}:{}",
            if matches!(method, Method::Icmp) {
                0
            } else {
                80
            }
        ),
        _ => target.to_string(),
    };
    with_port
        .to_socket_addrs()
        .map_err(|e| format!("`{target}`: {e}"))?
        .next()
        .ok_or_else(|| format!("`{target}` resolves to no address"))
}

/// `100ms`, `1s`, `2.5s`, `5m`.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else if let Some(n) = t.strip_suffix('m') {
        (n, 60.0)
    } else {
        return Err(format!("`{s}`: give a unit, as in 100ms, 1s or 5m"));
    };
    let v: f64 = num
        .trim()
        .parse()
        .map_err(|_| format!("`{s}`: not a duration (100ms, 1s, 5m)"))?;
    if !v.is_finite() || v <= 0.0 || v * scale > 86_400.0 {
        return Err(format!("`{s}`: give more than 0 and at most a day"));
    }
    Ok(Duration::from_secs_f64(v * scale))
}
