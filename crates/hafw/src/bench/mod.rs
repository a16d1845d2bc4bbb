//! `hafw bench …`: commands that print figures.
use std::process::ExitCode;

mod dataplane;

#[derive(clap::Subcommand)]
pub enum BenchCmd {
    /// Forwarding throughput through the node's data plane (NAT and 10 /
    /// 10,000 security rules) against plain kernel forwarding, and the
    /// ruleset commit time. Builds its own three namespaces; needs root.
    #[command(after_help = "Example: hafw bench dataplane --rules 10,10000 --seconds 3 --runs 3")]
    Dataplane(dataplane::Args),
}

pub fn run(cmd: BenchCmd) -> ExitCode {
    match cmd {
        BenchCmd::Dataplane(args) => dataplane::run(args),
    }
}
