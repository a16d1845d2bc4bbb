//! `hafw bench …`: commands that print figures.
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum BenchCmd {}

pub fn run(cmd: BenchCmd) -> ExitCode {
    match cmd {}
}
