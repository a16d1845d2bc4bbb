//! `hafw bench …`: commands that print figures.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

mod cloud_delay;
mod connections;
mod dataplane;
pub mod demo;
mod failover;
mod host_table;
pub mod survivor;
mod sync;

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Forwarding through the node's data plane against plain kernel
    /// forwarding: a TCP stream (NAT and 10 / 10,000 security rules) and
    /// the ruleset commit time, or with `--mode pps` 64-byte UDP packets
    /// over many flows, also with `policy.fastpath`. Builds its own three
    /// namespaces; needs root.
    #[command(
        after_help = "Example: hafw bench dataplane --rules 10,10000 --seconds 3 --runs 3\nExample: hafw bench dataplane --mode pps --flows 1000 --seconds 5 --runs 5"
    )]
    Dataplane(dataplane::Args),
    /// New connections per second through the active's SNAT with session
    /// sync on (mirror) and off, two pairs in one run, measured in turn;
    /// the ratio. Builds its own labs; needs root.
    #[command(after_help = "Example: hafw bench connections --seconds 5 --runs 5 --threads 16")]
    Connections(connections::Args),
    /// Failover of the HA pair in the emulated VPC: per fault kind and
    /// timer profile, a 1 kHz prober's loss and gap and the cloud's HAVIP
    /// move time; optionally a soak under a CPU hog counting spurious
    /// transitions. Builds its own labs; needs root.
    #[command(
        after_help = "Example: hafw bench failover --runs 10 --profile both --soak-seconds 600"
    )]
    Failover(failover::Args),
    /// Session sync of the HA pair in the emulated VPC: events/s and the
    /// active-to-passive lag under a connection-churn load generator, and
    /// the time a promotion takes to make 1k / 10k / 100k synced sessions
    /// ready, per session-sync mode. Builds its own labs; needs root.
    #[command(
        after_help = "Example: hafw bench sync --seconds 5 --sizes 1000,10000,100000 --runs 3 --modes mirror,commit"
    )]
    Sync(sync::Args),
    /// The memory of the node left alone: the passive killed with kill -9,
    /// connections churning through the active's SNAT, the active's RSS
    /// every second; then the passive restarted, ready from one bulk.
    /// Builds its own lab; needs root.
    #[command(after_help = "Example: hafw bench survivor --seconds 600 --threads 8")]
    Survivor(survivor::Args),
}

/// The seed deployment, built in so the benchmarks run from anywhere.
use hafw_model::examples::SEED;

/// The deployment file `hafw run` reads; the built-in seed is written to a
/// temporary file removed on drop.
enum DeploymentFile {
    Given(PathBuf),
    Temporary(PathBuf),
}

impl DeploymentFile {
    fn path(&self) -> &Path {
        match self {
            DeploymentFile::Given(p) | DeploymentFile::Temporary(p) => p,
        }
    }
}

impl Drop for DeploymentFile {
    fn drop(&mut self) {
        if let DeploymentFile::Temporary(p) = self {
            let _ = std::fs::remove_file(p);
        }
    }
}

/// `given`, made absolute (`hafw run` starts inside namespaces, maybe from
/// another directory), or the built-in seed in a temporary file.
fn deployment_file(given: Option<&Path>, bench: &str) -> Result<DeploymentFile, String> {
    if let Some(p) = given {
        let abs = std::fs::canonicalize(p).map_err(|e| format!("{}: {e}", p.display()))?;
        return Ok(DeploymentFile::Given(abs));
    }
    let path = std::env::temp_dir().join(format!("hafw-bench-{bench}-{}.toml", std::process::id()));
    std::fs::write(&path, SEED)
        .map_err(|e| format!("write the built-in seed to {}: {e}", path.display()))?;
    Ok(DeploymentFile::Temporary(path))
}

/// Min, median (the mean of the middle two for an even count) and max,
/// as every benchmark prints them; None for no values.
fn min_med_max(v: &[f64]) -> Option<(f64, f64, f64)> {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    let n = s.len();
    let median = match n {
        0 => return None,
        n if n % 2 == 0 => (s[n / 2 - 1] + s[n / 2]) / 2.0,
        n => s[n / 2],
    };
    Some((s[0], median, s[n - 1]))
}

pub fn run(cmd: BenchCmd) -> ExitCode {
    match cmd {
        BenchCmd::Dataplane(args) => dataplane::run(args),
        BenchCmd::Connections(args) => connections::run(args),
        BenchCmd::Failover(args) => failover::run(args),
        BenchCmd::Sync(args) => sync::run(args),
        BenchCmd::Survivor(args) => survivor::run(args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_med_max_averages_the_middle_pair() {
        assert_eq!(min_med_max(&[]), None);
        assert_eq!(min_med_max(&[5.0, 1.0, 3.0]), Some((1.0, 3.0, 5.0)));
        assert_eq!(min_med_max(&[4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
    }
}
