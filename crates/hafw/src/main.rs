//! The `hafw` command: validate and plan deployments, run a firewall node,
//! and build the emulated VPC.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;

#[derive(Parser)]
#[command(name = "hafw", version, about = "Active/passive HA firewall for cloud VPCs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a deployment file against the cloud's rules.
    ///
    /// Example: hafw validate examples/alicloud-havip.toml
    Validate { file: PathBuf },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { file } => cli::validate(&file),
    }
}
