//! `hafw run`: the firewall node daemon. With a peer it runs the HA pair
//! ([`paired`]); with `--standalone` it is forced active without a peer: it applies the node's data plane, holds it, and
//! withdraws what it added on SIGTERM/SIGINT. `--check` compares the
//! kernel's live state with the plan.
use std::path::PathBuf;
use std::process::ExitCode;

use hafw_model::render::node::{IfNames, NodePlan};
use hafw_model::spec::HaProfile;
use hafw_model::Deployment;

mod links;
pub mod metadata;
mod paired;
mod standalone;

use crate::dataplane::{check, preflight};

/// What `hafw run` was asked to do, as the command line gives it.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// The deployment file.
    pub config: PathBuf,
    /// This node's name (a [[node]] in the file), or `auto`: the node
    /// whose instance has this machine's addresses ([`AUTO_NODE`]).
    pub node: String,
    /// Stay active without a peer (no HA).
    pub standalone: bool,
    /// Compare the kernel's live state with the plan and exit.
    pub check: bool,
    /// Apply the data plane and exit, leaving it in place.
    pub apply_only: bool,
    /// Test hook: commit this file's nftables text instead of the rendered ruleset.
    pub ruleset: Option<PathBuf>,
    /// The pre-shared key file (default: the node's `key_file`).
    pub key_file: Option<PathBuf>,
    /// Override the deployment's HA timer profile (explicit timers in the
    /// file still win over either profile's).
    pub ha_profile: Option<HaProfile>,
    /// Serve the read-only status API and metrics on this address.
    pub api: Option<std::net::SocketAddr>,
    /// File holding the API's bearer token.
    pub api_token_file: Option<PathBuf>,
    /// Session sync over HA2: `mirror`, `commit` or `off`.
    pub session_sync: String,
    /// Log one JSON object per line instead of text.
    pub log_json: bool,
    /// The control socket for `hafw status|suspend|resume`.
    pub control: PathBuf,
    /// Record the HA core's inputs and actions to this file (bounded; see
    /// `ha::record`).
    pub record: Option<PathBuf>,
    /// The audit log's JSON-lines file (default
    /// [`crate::ops::audit::default_path`]).
    pub audit_log: Option<PathBuf>,
    /// Test hook: the journal socket the audit log writes to (default
    /// [`crate::ops::audit::JOURNAL_SOCKET`]).
    pub audit_journal: Option<PathBuf>,
    /// `--state-dir`: the rule-hit totals' file ([`crate::hits::state`]).
    pub state_dir: PathBuf,
    /// The traffic log's JSON-lines file (default
    /// [`crate::ops::traffic::default_path`]).
    pub traffic_log: Option<PathBuf>,
}

/// The default `--state-dir`, which the unit's StateDirectory makes.
pub const DEFAULT_STATE_DIR: &str = "/var/lib/hafw";

/// `--node auto`: found from this machine's addresses and the metadata
/// service (`hafw_model::resolve::which_node`).
pub const AUTO_NODE: &str = "auto";

pub fn run(mut args: RunOptions) -> ExitCode {
    if let Err(e) = crate::ops::logging::init(args.log_json) {
        eprintln!("error: hafw run: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = preflight::check() {
        eprintln!("error: hafw run: {e}");
        return ExitCode::FAILURE;
    }
    // What this machine's links are, before anything is applied: the
    // node plan names the links it found, not the role aliases it assumed.
    let links = match links::observe() {
        Ok(l) => l,
        Err(e) => {
            eprintln!("error: hafw run: cannot list this machine's links: {e}");
            return ExitCode::FAILURE;
        }
    };
    if args.node == AUTO_NODE {
        // Only `[cloud]` is read here, which recovery never changes.
        let dep = match crate::load(&args.config) {
            Ok(d) => d,
            Err(code) => return code,
        };
        match links::auto_node(&dep, &links) {
            Ok(node) => {
                tracing::info!(node = %node, "--node auto: this machine is node {node}");
                args.node = node;
            }
            Err(e) => {
                eprintln!("error: hafw run: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    if !args.standalone && !args.check && !args.apply_only {
        // After a crash in an apply: back on the committed version before
        // the file is read.
        match crate::config::recover_files(&args.config, &args.node) {
            Ok(notes) => {
                for n in notes {
                    tracing::warn!(node = %args.node, "config recovery: {n}");
                }
            }
            Err(e) => {
                eprintln!("error: hafw run: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    let (dep, plan, names) = match load_plan(&args, &links) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    if args.check {
        return check::run(&plan, args.standalone);
    }
    if args.apply_only {
        let mode = standalone::Mode::ApplyOnly {
            active: args.standalone,
        };
        let garp = plan.ha.garp.clone();
        return standalone::run_standalone(plan, garp, mode);
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
        let audit_log = args
            .audit_log
            .clone()
            .unwrap_or_else(|| crate::ops::audit::default_path(&plan.node));
        let audit_journal = args
            .audit_journal
            .clone()
            .unwrap_or_else(|| PathBuf::from(crate::ops::audit::JOURNAL_SOCKET));
        let traffic_log = args
            .traffic_log
            .clone()
            .unwrap_or_else(|| crate::ops::traffic::default_path(&plan.node));
        return paired::run(
            dep,
            plan,
            paired::Paths {
                config: &args.config,
                key_file: &key_file,
                control: &args.control,
                record: args.record.as_deref(),
                audit_log: &audit_log,
                audit_journal: &audit_journal,
                state_dir: &args.state_dir,
                traffic_log: &traffic_log,
            },
            paired::Options {
                ha_profile: args.ha_profile,
                api,
                session_sync: args.session_sync.clone(),
                names,
            },
        );
    }
    let garp = plan.ha.garp.clone();
    standalone::run_standalone(plan, garp, standalone::Mode::Hold)
}

fn load_plan(
    args: &RunOptions,
    links: &[hafw_model::resolve::SeenLink],
) -> Result<(Deployment, NodePlan, IfNames), ExitCode> {
    let dep = crate::load(&args.config)?;
    let names = links::names(&dep, &args.node, links).map_err(|e| {
        eprintln!("error: hafw run: node {}: {e}", args.node);
        ExitCode::FAILURE
    })?;
    let plan = hafw_model::render::node::plan_with(&dep, &args.node, args.ha_profile, &names);
    let mut plan = plan.map_err(|e| {
        eprintln!("{}: error: {e}", args.config.display());
        ExitCode::from(crate::EXIT_INVALID)
    })?;
    if let Some(file) = &args.ruleset {
        plan.ruleset.text = std::fs::read_to_string(file).map_err(|e| {
            eprintln!("error: cannot read ruleset {}: {e}", file.display());
            ExitCode::FAILURE
        })?;
    }
    Ok((dep, plan, names))
}
