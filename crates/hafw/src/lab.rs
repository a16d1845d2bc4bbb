//! `hafw lab …`: the emulated VPC's commands.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use std::time::Duration;

use clap::Subcommand;
use hafw_lab::hosts;
use hafw_lab::lab as vpc;

use crate::cli::{self, EXIT_INVALID};

#[derive(Subcommand)]
pub enum LabCmd {
    /// Run the seed's test plan end to end: build the VPC, start both firewalls,
    /// check inbound and outbound traffic, fail over (planned and unplanned), report, clean up.
    #[command(
        after_help = "Example: hafw lab demo            (the built-in seed example)\n         hafw lab demo examples/alicloud-one-arm.toml --json"
    )]
    Demo(hafw_bench::demo::DemoArgs),
    /// Build the emulated VPC of a deployment file in network namespaces.
    #[command(after_help = "Example: hafw lab up examples/alicloud-havip.toml --name seed")]
    Up {
        file: PathBuf,
        /// Lab name (a-z, 0-9, -; at most 16); default: the deployment's name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Remove a lab: its processes, namespaces and interfaces. Safe to repeat.
    #[command(after_help = "Example: hafw lab down --name seed")]
    Down {
        #[arg(long)]
        name: Option<String>,
    },
    /// Show a lab's namespaces, ENIs and each HAVIP's owner and last move.
    #[command(after_help = "Example: hafw lab status")]
    Status {
        #[arg(long)]
        name: Option<String>,
    },
    /// Show the security group the VPC enforces on the firewalls' ENIs: each
    /// rule's counter and the drops.
    #[command(after_help = "Example: hafw lab sg --name seed")]
    Sg {
        #[arg(long)]
        name: Option<String>,
    },
    /// Run a command inside an instance's or lab host's namespace.
    #[command(after_help = "Example: hafw lab exec seed client -- hafw lab fetch 203.0.113.10:80")]
    Exec {
        /// The lab's name.
        lab: String,
        /// An instance or lab host name from the deployment file, or `vpc` / `inet`.
        host: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// Run a test host: `web` answers HTTP with the client address it saw;
    /// `echo` answers UDP and TCP with the source address it saw.
    #[command(after_help = "Example: hafw lab serve echo --listen 0.0.0.0:7777")]
    Serve {
        #[arg(value_parser = ["web", "echo"])]
        kind: String,
        #[arg(long)]
        listen: std::net::SocketAddr,
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// Fetch a page from a web server and print the status and body.
    #[command(after_help = "Example: hafw lab exec seed client -- hafw lab fetch 203.0.113.10:80")]
    Fetch {
        target: String,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Ask an echo host which source address it sees.
    #[command(after_help = "Example: hafw lab exec seed web -- hafw lab ask 198.51.100.30:7777")]
    Ask {
        target: std::net::SocketAddr,
        #[arg(long, default_value_t = 2000)]
        timeout_ms: u64,
    },
    /// Send UDP probes to an echo host at a steady rate; report loss and the longest outage.
    #[command(
        after_help = "Example: hafw lab exec seed web -- hafw lab probe 198.51.100.30:7777 --rate 1000 --duration-ms 5000"
    )]
    Probe {
        target: std::net::SocketAddr,
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 5000)]
        duration_ms: u64,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Send forged HA1 datagrams from a spoofed source (a raw socket: run it
    /// in the VPC namespace), to check that a node shrugs off a flood.
    #[command(
        after_help = "Example: hafw lab exec seed vpc -- hafw lab flood 10.0.0.11:28780 --from 10.0.0.12:28780 --sender-id 2 --rate 50000 --duration-ms 30000"
    )]
    Flood {
        /// The victim's heartbeat address and port.
        target: std::net::SocketAddrV4,
        /// The spoofed source: the peer's heartbeat address and port.
        #[arg(long)]
        from: std::net::SocketAddrV4,
        /// The node id the forged envelopes claim (the peer's, from `hafw status --json`).
        #[arg(long)]
        sender_id: u32,
        #[arg(long, default_value_t = 50_000)]
        rate: u64,
        #[arg(long, default_value_t = 30_000)]
        duration_ms: u64,
    },
    /// The metadata service (started by `lab up` inside the VPC namespace).
    #[command(hide = true)]
    Metadata {
        #[arg(long)]
        name: String,
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
    /// The HAVIP controller (started by `lab up` inside the VPC namespace).
    #[command(hide = true)]
    Controller {
        #[arg(long)]
        name: String,
        #[arg(long)]
        ready_file: Option<PathBuf>,
    },
}

pub fn run(cmd: LabCmd) -> ExitCode {
    match cmd {
        LabCmd::Demo(args) => hafw_bench::demo::run(args),
        LabCmd::Up { file, name } => up(&file, name.as_deref()),
        LabCmd::Down { name } => report(vpc::resolve_name(name.as_deref()).and_then(|n| {
            let removed = vpc::down(&n)?;
            println!("lab `{n}` is down ({removed} namespaces removed)");
            Ok(())
        })),
        LabCmd::Status { name } => report(vpc::resolve_name(name.as_deref()).and_then(|n| {
            print!("{}", vpc::status(&n)?);
            Ok(())
        })),
        LabCmd::Sg { name } => report(vpc::resolve_name(name.as_deref()).and_then(|n| {
            print!("{}", vpc::sg_status(&n)?);
            Ok(())
        })),
        LabCmd::Metadata { name, ready_file } => {
            report(hafw_lab::metadata::run(&name, ready_file.as_deref()))
        }
        LabCmd::Exec { lab, host, command } => exec(&lab, &host, &command),
        LabCmd::Serve {
            kind,
            listen,
            ready_file,
        } => serve(&kind, listen, ready_file.as_deref()),
        LabCmd::Fetch {
            target,
            path,
            timeout_ms,
        } => match hosts::fetch(&target, &path, Duration::from_millis(timeout_ms)) {
            Ok(f) => {
                println!("{} {}", f.status, f.body.trim_end());
                if f.status == 200 {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                }
            }
            Err(e) => {
                eprintln!("error: fetch {target}: {e}");
                ExitCode::FAILURE
            }
        },
        LabCmd::Ask { target, timeout_ms } => {
            match hosts::ask(target, Duration::from_millis(timeout_ms)) {
                Ok(seen) => {
                    println!("seen {seen}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: ask {target}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        LabCmd::Probe {
            target,
            rate,
            duration_ms,
            json,
        } => {
            let mut cfg = hosts::ProbeConfig::new(target);
            cfg.rate_hz = rate;
            cfg.duration = Duration::from_millis(duration_ms);
            match hosts::probe(&cfg, &hosts::Stop::new()) {
                Ok(r) => {
                    if json {
                        println!("{}", r.to_json());
                    } else {
                        println!("{r}");
                    }
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: probe {target}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        LabCmd::Flood {
            target,
            from,
            sender_id,
            rate,
            duration_ms,
        } => {
            let mut cfg = hosts::FloodConfig::new(from, target, sender_id);
            cfg.rate = rate;
            cfg.duration = Duration::from_millis(duration_ms);
            match hosts::flood(&cfg, &hosts::Stop::new()) {
                Ok(r) => {
                    println!(
                        "sent {} forged datagrams in {:.1} s ({:.0}/s), {} send errors",
                        r.sent,
                        r.elapsed.as_secs_f64(),
                        r.rate(),
                        r.errors
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("error: flood {target}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        LabCmd::Controller { name, ready_file } => {
            report(hafw_lab::controller::run(&name, ready_file.as_deref()))
        }
    }
}

fn report(r: Result<(), vpc::LabError>) -> ExitCode {
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn up(file: &Path, name: Option<&str>) -> ExitCode {
    let dep = match cli::load(file) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {}: {e}", file.display());
            return ExitCode::from(EXIT_INVALID);
        }
    };
    let lab = name.unwrap_or(&dep.name).to_string();
    let exe = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find the hafw binary: {e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match hafw_daemon::runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    match runtime.block_on(vpc::up(&dep, &text, &lab, &exe)) {
        Ok(r) => {
            println!(
                "lab `{lab}` is up in {:.0} ms: {} namespaces, {} ENIs, {} HAVIPs (no owner until a member announces)",
                r.elapsed.as_secs_f64() * 1000.0,
                r.topology.namespaces.len(),
                r.topology.ports.len(),
                r.topology.havips.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}\nnothing was left behind (lab `{lab}` removed)");
            ExitCode::FAILURE
        }
    }
}

fn exec(lab: &str, host: &str, command: &[String]) -> ExitCode {
    let ns = hafw_lab::topology::ns_name(lab, host);
    let Some((program, args)) = command.split_first() else {
        eprintln!("error: give a command after --");
        return ExitCode::from(EXIT_INVALID);
    };
    let mut cmd = match hafw_kernel::command(&ns, program) {
        Ok(c) => c,
        Err(e) => {
            eprintln!(
                "error: {e} (is lab `{lab}` up, and is `{host}` one of its instances or hosts?)"
            );
            return ExitCode::FAILURE;
        }
    };
    match cmd.args(args).status() {
        Ok(s) => ExitCode::from(s.code().unwrap_or(1).clamp(0, 255) as u8),
        Err(e) => {
            eprintln!("error: cannot run {program} in {ns}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs a test host until killed; writes the ready file once bound.
fn serve(kind: &str, listen: std::net::SocketAddr, ready: Option<&Path>) -> ExitCode {
    let stop = hosts::Stop::new();
    let mark_ready = || match ready {
        Some(f) => std::fs::write(f, "ready\n").map_err(|e| format!("write {}: {e}", f.display())),
        None => Ok(()),
    };
    let result = match kind {
        "web" => hosts::WebServer::bind(hosts::WebConfig::new(listen))
            .map_err(|e| e.to_string())
            .and_then(|s| mark_ready().map(|_| s))
            .and_then(|s| s.run(&stop).map(|_| ()).map_err(|e| e.to_string())),
        _ => hosts::EchoServer::bind(hosts::EchoConfig::new(listen))
            .map_err(|e| e.to_string())
            .and_then(|s| mark_ready().map(|_| s))
            .and_then(|s| s.run(&stop).map(|_| ()).map_err(|e| e.to_string())),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: serve {kind} on {listen}: {e}");
            ExitCode::FAILURE
        }
    }
}
