//! `hafw run`: the firewall node daemon.
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The deployment file.
    #[arg(long)]
    pub config: PathBuf,
    /// This node's name (a [[node]] in the file).
    #[arg(long)]
    pub node: String,
    /// Stay active without a peer (no HA): apply the data plane and hold it.
    #[arg(long)]
    pub standalone: bool,
    /// Compare the kernel's live state with the plan and exit (0 same, 1 differs).
    #[arg(long)]
    pub check: bool,
}

pub fn run(_args: RunArgs) -> ExitCode {
    eprintln!("error: hafw run is not built yet");
    ExitCode::FAILURE
}
