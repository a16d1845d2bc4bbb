//! The `hafw` command: validate and plan deployments, run a firewall node,
//! and build the emulated VPC.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod lab;
mod probe;
mod run;

use hafw_daemon::control;

#[derive(Parser)]
#[command(
    name = "hafw",
    version,
    about = "Active/passive HA firewall pair for cloud VPCs (Alibaba Cloud HAVIP)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check a deployment file against the cloud's rules; exit 2 if it breaks any.
    #[command(after_help = "Example: hafw validate examples/alicloud-havip.toml")]
    Validate { file: PathBuf },
    /// Render what a deployment turns into.
    #[command(subcommand)]
    Plan(Plan),
    /// Write a new HA pre-shared key: 32 bytes from the OS random generator, mode 0600.
    #[command(
        after_help = "Example: hafw keygen /etc/hafw/ha.key\n\nCopy the same file to both nodes (mode 0600, owned by root). An existing file is kept unless --force."
    )]
    Keygen {
        file: PathBuf,
        /// Replace an existing file (atomically).
        #[arg(long)]
        force: bool,
    },
    /// Run a firewall node (needs root, nft).
    #[command(
        after_help = "Example: hafw run --config examples/alicloud-havip.toml --node fw-a --standalone"
    )]
    Run(run::RunArgs),
    /// Show a running node's state, peer, term, heartbeat paths and last transition.
    #[command(
        after_help = "Example: hafw status --control /run/hafw/hafw.sock\nLive view: hafw status --watch --interval 0.5"
    )]
    Status {
        /// The node's control socket.
        #[arg(long)]
        control: Option<PathBuf>,
        /// Print JSON.
        #[arg(long, conflicts_with = "watch")]
        json: bool,
        /// Refresh in place until Ctrl-C (one frame per interval, no escape codes, when piped).
        #[arg(long)]
        watch: bool,
        /// Seconds between refreshes of --watch.
        #[arg(long, requires = "watch", default_value = "1", value_parser = hafw_daemon::ops::watch::parse_interval)]
        interval: std::time::Duration,
    },
    /// Planned handover: the active node asks its peer to take over now, then stands down.
    #[command(after_help = "Example: hafw suspend --control /run/hafw/hafw.sock")]
    Suspend {
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Make a suspended node functional again (passive unless preemption says otherwise).
    #[command(after_help = "Example: hafw resume --control /run/hafw/hafw.sock")]
    Resume {
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// The shared policy: show the running one, diff a file against it, apply a file.
    #[command(subcommand)]
    Config(ConfigCmd),
    /// Sessions this node knows: the count and a listing (orig -> reply, protocol, TCP state, NAT).
    #[command(
        after_help = "Example: hafw sessions --control /run/hafw/hafw.sock --filter 10.0.1.100:80"
    )]
    Sessions {
        #[arg(long)]
        control: Option<PathBuf>,
        /// Only the sessions whose line contains this text.
        #[arg(long)]
        filter: Option<String>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Each rule of the policy (and each zone pair's default deny, the NAT
    /// rules) with packets, bytes and last hit on this node, the peer, and
    /// the pair's total (docs/rule-hits.md).
    #[command(after_help = "Example: hafw rules --control /run/hafw/hafw.sock --json")]
    Rules {
        #[arg(long)]
        control: Option<PathBuf>,
        /// Print JSON (the fields are in docs/rule-hits.md).
        #[arg(long)]
        json: bool,
    },
    /// Replay a recording of `hafw run --record`: print the actions a fresh HA core returns
    /// for the recorded inputs; exit 1 if they differ from what the recording node did.
    #[command(after_help = "Example: hafw replay /var/log/hafw/fw-a.rec")]
    Replay { file: PathBuf },
    /// Benchmarks that print figures.
    #[command(subcommand)]
    Bench(hafw_bench::BenchCmd),
    /// The emulated VPC in network namespaces (needs root).
    #[command(subcommand)]
    Lab(lab::LabCmd),
    /// Probe a target through the firewall pair from any host (ICMP, TCP, HTTP or UDP at an
    /// interval): each lost span with its times, a summary; exit 3 past --max-loss/--max-outage.
    #[command(
        after_help = "Example: hafw probe 10.0.2.10 --interval 100ms --duration 120s --max-outage 5s
         hafw probe 203.0.113.10:80 --method http --json"
    )]
    Probe(probe::ProbeArgs),
}

#[derive(Subcommand)]
enum ConfigCmd {
    /// The running policy's version and hash, the peer's, and the policy text.
    #[command(after_help = "Example: hafw config show --control /run/hafw/hafw.sock")]
    Show {
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// A line diff of FILE's [policy] against the running one (exit 1 when they differ),
    /// or with --from N --to M of two versions in the history.
    #[command(
        after_help = "Example: hafw config diff /etc/hafw/deployment.toml --control /run/hafw/hafw.sock\n         hafw config diff --from 3 --to 5"
    )]
    Diff {
        #[arg(required_unless_present_all = ["from", "to"])]
        file: Option<PathBuf>,
        #[arg(long, requires = "to", conflicts_with = "file")]
        from: Option<u64>,
        #[arg(long, requires = "from")]
        to: Option<u64>,
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Keep the version applied with --confirm-within (on the node it was applied on).
    #[command(after_help = "Example: hafw config confirm --control /run/hafw/hafw.sock")]
    Confirm {
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// The versions kept on this node: version, hash, time, who (uid), state, comment.
    #[command(after_help = "Example: hafw config history --control /run/hafw/hafw.sock")]
    History {
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Apply version N's policy again, as a new version (on the active node).
    #[command(after_help = "Example: hafw config rollback 4 --control /run/hafw/hafw.sock")]
    Rollback {
        version: u64,
        #[arg(long)]
        control: Option<PathBuf>,
    },
    /// Validate FILE, apply its [policy] atomically on this (active) node and push it to the peer.
    #[command(
        after_help = "Example: hafw config apply /etc/hafw/deployment.toml --control /run/hafw/hafw.sock\n         hafw config apply new.toml --confirm-within 60s -m \"open 8080\"   (then: hafw config confirm)\n\nOnly [policy] may change; the passive refuses: apply on the active node."
    )]
    Apply {
        file: PathBuf,
        /// Roll back by itself (both nodes) unless `hafw config confirm` comes within this
        /// time, e.g. 60s, 90s, 2m.
        #[arg(long, value_parser = parse_window)]
        confirm_within: Option<std::time::Duration>,
        /// A comment kept in the history.
        #[arg(short = 'm', long = "message")]
        message: Option<String>,
        #[arg(long)]
        control: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum Plan {
    /// Terraform for the aliyun/alicloud provider.
    #[command(after_help = "Example: hafw plan terraform examples/alicloud-havip.toml -o tf/")]
    Terraform {
        file: PathBuf,
        /// Write main.tf, variables.tf, outputs.tf and each node's user-data-NODE.sh.tftpl here
        /// instead of printing them.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },
    /// One node's first-boot script (cloud-init user data): installs hafw, writes /etc/hafw
    /// (the deployment file, NODE=, the key), sets the host name, starts hafw.service.
    #[command(
        name = "user-data",
        after_help = "Example: hafw plan user-data examples/alicloud-havip.toml --node fw-a --key-file ha.key

The script holds the key: keep it secret. `hafw plan terraform` renders the same script as a
template, with the key generated by Terraform."
    )]
    UserData {
        file: PathBuf,
        #[arg(long)]
        node: String,
        /// The pair's HA key (`hafw keygen`), embedded in the script.
        #[arg(long)]
        key_file: PathBuf,
        /// Where the instance downloads hafw: a .deb, or the binary itself; left out, the
        /// image must already have hafw.
        #[arg(long)]
        package_url: Option<String>,
        /// The download's SHA-256 (hex), checked before it is installed.
        #[arg(long)]
        package_sha256: Option<String>,
    },
    /// One node's effective configuration: interfaces, addresses, routes, sysctls, nftables ruleset.
    #[command(after_help = "Example: hafw plan node examples/alicloud-havip.toml --node fw-a")]
    Node {
        file: PathBuf,
        #[arg(long)]
        node: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Validate { file } => cli::validate(&file),
        Command::Keygen { file, force } => cli::keygen(&file, force),
        Command::Plan(Plan::Terraform { file, output }) => {
            cli::plan_terraform(&file, output.as_deref())
        }
        Command::Plan(Plan::Node { file, node }) => cli::plan_node(&file, &node),
        Command::Plan(Plan::UserData {
            file,
            node,
            key_file,
            package_url,
            package_sha256,
        }) => cli::plan_user_data(
            &file,
            &node,
            &key_file,
            &hafw_model::render::bootstrap::Bootstrap {
                package_url,
                package_sha256,
            },
        ),
        Command::Lab(cmd) => lab::run(cmd),
        Command::Probe(args) => probe::run(args),
        Command::Run(args) => hafw_daemon::run(args.into()),
        Command::Bench(cmd) => hafw_bench::run(cmd),
        Command::Replay { file } => hafw_daemon::ha::record::replay_command(&file),
        Command::Status {
            control,
            watch: true,
            interval,
            ..
        } => hafw_daemon::ops::watch::run(
            &control.unwrap_or_else(|| control::DEFAULT_SOCKET.into()),
            interval,
        ),
        Command::Status { control, json, .. } => control::cli(
            control,
            if json {
                control::Request::StatusJson
            } else {
                control::Request::Status
            },
        ),
        Command::Config(ConfigCmd::Show { control }) => {
            control::cli(control, control::Request::ConfigShow)
        }
        Command::Config(ConfigCmd::Diff {
            file,
            from,
            to,
            control,
        }) => match (file, from, to) {
            (_, Some(from), Some(to)) => {
                control::cli(control, control::Request::ConfigDiff { from, to })
            }
            (Some(file), _, _) => control::config_diff(control, &file),
            _ => {
                eprintln!("error: hafw config diff needs FILE, or --from N --to M");
                ExitCode::from(2)
            }
        },
        Command::Config(ConfigCmd::Apply {
            file,
            confirm_within,
            message,
            control,
        }) => control::config_apply(control, &file, confirm_within, message),
        Command::Config(ConfigCmd::Confirm { control }) => {
            control::cli(control, control::Request::ConfigConfirm)
        }
        Command::Config(ConfigCmd::History { control }) => {
            control::cli(control, control::Request::ConfigHistory)
        }
        Command::Config(ConfigCmd::Rollback { version, control }) => {
            control::cli(control, control::Request::ConfigRollback(version))
        }
        Command::Sessions {
            control,
            filter,
            json,
        } => control::cli(control, control::Request::Sessions { json, filter }),
        Command::Rules { control, json } => control::cli(control, control::Request::Rules { json }),
        Command::Suspend { control } => control::cli(control, control::Request::Suspend),
        Command::Resume { control } => control::cli(control, control::Request::Resume),
    }
}

/// `--confirm-within`: `60s`, `2m`, `1500ms` or a number of seconds.
fn parse_window(s: &str) -> Result<std::time::Duration, String> {
    let s = s.trim();
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{s:?} is not a duration: write e.g. 60s, 2m or 1500ms"))?;
    let ms = match unit {
        "ms" => n,
        "s" => n.saturating_mul(1000),
        "m" => n.saturating_mul(60_000),
        _ => return Err(format!("{s:?}: the unit is ms, s or m (e.g. 60s)")),
    };
    if ms == 0 {
        return Err("the window must be longer than 0".into());
    }
    Ok(std::time::Duration::from_millis(ms))
}

#[cfg(test)]
mod tests {
    use super::parse_window;
    use std::time::Duration;

    #[test]
    fn a_confirmation_window_takes_ms_s_m_or_plain_seconds() {
        assert_eq!(parse_window("60s"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_window("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_window("1500ms"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_window("90"), Ok(Duration::from_secs(90)));
        assert!(parse_window("0s").unwrap_err().contains("longer than 0"));
        assert!(parse_window("5h").unwrap_err().contains("ms, s or m"));
        assert!(parse_window("soon").unwrap_err().contains("e.g. 60s"));
    }
}
