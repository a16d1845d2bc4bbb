//! `hafw run`: the firewall node daemon. With a peer it runs the HA pair
//! (`ha_daemon`); with `--standalone` it is forced active without a peer: it applies the node's data plane, holds it, and
//! withdraws what it added on SIGTERM/SIGINT. `--check` compares the
//! kernel's live state with the plan.
use std::path::PathBuf;
use std::process::ExitCode;

use hafw_model::render::node::NodePlan;
use hafw_model::Deployment;

pub mod apply;
mod check;
mod daemon;
mod garp;
mod ha_daemon;
pub mod log;
mod nft_error;
mod nft_view;
pub mod preflight;
pub mod withdraw;

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
    /// With --standalone the floating addresses are expected too.
    #[arg(long)]
    pub check: bool,
    /// Apply the data plane and exit, leaving it in place: as passive (no
    /// floating addresses), or with --standalone as active (floating
    /// addresses added and announced).
    #[arg(long, conflicts_with = "check")]
    pub apply_only: bool,
    /// Test hook: commit this file's nftables text instead of the rendered
    /// ruleset (to prove how a ruleset the kernel refuses is handled).
    #[arg(long, hide = true)]
    pub ruleset: Option<PathBuf>,
    /// The pre-shared key file (default: the node's `key_file` in the deployment).
    #[arg(long)]
    pub key_file: Option<PathBuf>,
    /// Override the deployment's HA timer profile (`default` or `fast`), as
    /// the lab's benchmarks do; give both nodes the same.
    #[arg(long, value_parser = ["default", "fast"])]
    pub ha_profile: Option<String>,
    /// Serve the read-only status API and metrics on this address (off by default).
    #[arg(long, requires = "api_token_file")]
    pub api: Option<std::net::SocketAddr>,
    /// File holding the API's bearer token (at least 16 characters, not world-readable).
    #[arg(long)]
    pub api_token_file: Option<PathBuf>,
    /// Session sync over HA2: `mirror` keeps the passive's kernel table warm
    /// (promotion installs nothing), `commit` installs the synced table at
    /// promotion, `off` syncs nothing.
    #[arg(long, default_value = "mirror", value_parser = ["mirror", "commit", "off"])]
    pub session_sync: String,
    /// Log one JSON object per line instead of text.
    #[arg(long)]
    pub log_json: bool,
    /// The control socket for `hafw status|suspend|resume`.
    #[arg(long, default_value = crate::control::DEFAULT_SOCKET)]
    pub control: PathBuf,
}

/// Exit status when the live state differs from the plan (`--check`).
const EXIT_DIFFERS: u8 = 1;

pub fn run(args: RunArgs) -> ExitCode {
    if let Err(e) = crate::ops::logging::init(args.log_json) {
        eprintln!("error: hafw run: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = preflight::check() {
        eprintln!("error: hafw run: {e}");
        return ExitCode::FAILURE;
    }
    let (dep, plan) = match load_plan(&args) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if args.check {
        return check::run(&plan, args.standalone);
    }
    if args.apply_only {
        let mode = daemon::Mode::ApplyOnly {
            active: args.standalone,
        };
        return daemon::run_standalone(plan, dep.policy.ha.garp.clone(), mode);
    }
    if !args.standalone {
        let key_file = args
            .key_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(&plan.key_file));
        let api = match (&args.api, &args.api_token_file) {
            (Some(addr), Some(file)) => match crate::ops::api::load_token(file) {
                Ok(token) => Some((*addr, token)),
                Err(e) => {
                    eprintln!("error: hafw run: --api-token-file: {e}");
                    return ExitCode::FAILURE;
                }
            },
            _ => None,
        };
        return ha_daemon::run(
            dep,
            plan,
            ha_daemon::Paths {
                config: &args.config,
                key_file: &key_file,
                control: &args.control,
            },
            args.ha_profile.clone(),
            api,
            &args.session_sync,
        );
    }
    daemon::run_standalone(plan, dep.policy.ha.garp.clone(), daemon::Mode::Hold)
}

fn load_plan(args: &RunArgs) -> Result<(Deployment, NodePlan), ExitCode> {
    let mut dep = crate::cli::load(&args.config)?;
    match args.ha_profile.as_deref() {
        Some("fast") => dep.policy.ha.profile = hafw_model::spec::HaProfile::Fast,
        Some("default") => dep.policy.ha.profile = hafw_model::spec::HaProfile::Default,
        _ => {}
    }
    let mut plan = hafw_model::render::node::plan(&dep, &args.node).map_err(|e| {
        eprintln!("{}: error: {e}", args.config.display());
        ExitCode::from(crate::cli::EXIT_INVALID)
    })?;
    if let Some(file) = &args.ruleset {
        plan.ruleset.text = std::fs::read_to_string(file).map_err(|e| {
            eprintln!("error: cannot read ruleset {}: {e}", file.display());
            ExitCode::FAILURE
        })?;
    }
    Ok((dep, plan))
}
