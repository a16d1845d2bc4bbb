//! `hafw run`'s arguments; the daemon itself is `hafw_daemon`.

use std::path::PathBuf;

#[derive(clap::Args)]
pub struct RunArgs {
    /// The deployment file.
    #[arg(long)]
    pub config: PathBuf,
    /// This node's name (a [[node]] in the file), or `auto`: the node whose
    /// instance has an ENI with this machine's address (on a link, or as
    /// the ECS metadata service gives it for a local MAC).
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
    /// Override the deployment's HA timer profile, as the lab's benchmarks
    /// do; give both nodes the same.
    #[arg(long, value_enum)]
    pub ha_profile: Option<hafw_model::spec::HaProfile>,
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
    #[arg(long, default_value = hafw_daemon::control::DEFAULT_SOCKET)]
    pub control: PathBuf,
    /// Record the HA core's inputs (heartbeats as decrypted, timeouts,
    /// commands, monitor verdicts) and its actions to FILE, for `hafw
    /// replay`. Bounded to about 4 MiB: the settings and the start-up are
    /// kept, then the most recent history (older history is dropped in
    /// quarters). The pre-shared key is never written.
    #[arg(long, value_name = "FILE")]
    pub record: Option<PathBuf>,
    /// The audit log: every policy apply (local or from the peer), suspend,
    /// resume and HA transition, one JSON object per line (mode 0600,
    /// rotated at 8 MiB to one FILE.1), also sent to journald with HAFW_*
    /// fields. Default /var/log/hafw/NODE.audit.jsonl.
    #[arg(long, value_name = "FILE")]
    pub audit_log: Option<PathBuf>,
    /// Where the node keeps state across restarts (the rule-hit totals of
    /// `hafw rules`, `rule-hits.json`). The unit's StateDirectory makes the
    /// default; a directory that does not exist is not created, and the
    /// totals are then kept in memory only.
    #[arg(long, value_name = "DIR", default_value = hafw_daemon::run::DEFAULT_STATE_DIR)]
    pub state_dir: PathBuf,
    /// Test hook: send the audit log's journal entries to this datagram
    /// socket instead of journald's.
    #[arg(long, hide = true, value_name = "SOCKET")]
    pub audit_journal: Option<PathBuf>,
    /// The traffic log: packets the ruleset logs ([policy.logging],
    /// rule `log = true`), session ends with bytes each way, NAT starts and
    /// ends, one JSON object per line (mode 0640, rotated at 64 MiB to one
    /// FILE.1). Default /var/log/hafw/NODE.traffic.jsonl.
    #[arg(long, value_name = "FILE")]
    pub traffic_log: Option<PathBuf>,
}

impl From<RunArgs> for hafw_daemon::RunOptions {
    fn from(a: RunArgs) -> Self {
        hafw_daemon::RunOptions {
            config: a.config,
            node: a.node,
            standalone: a.standalone,
            check: a.check,
            apply_only: a.apply_only,
            ruleset: a.ruleset,
            key_file: a.key_file,
            ha_profile: a.ha_profile,
            api: a.api,
            api_token_file: a.api_token_file,
            session_sync: a.session_sync,
            log_json: a.log_json,
            control: a.control,
            record: a.record,
            audit_log: a.audit_log,
            audit_journal: a.audit_journal,
            state_dir: a.state_dir,
            traffic_log: a.traffic_log,
        }
    }
}
