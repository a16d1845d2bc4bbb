//! The HAVIP controller process (`hafw lab controller`): runs inside the VPC
//! namespace, listens for ARP on the VPC end of every port, feeds the pure
//! [`havip::Controller`] and carries out its moves: the HAVIP's /32 and every
//! route entry pointing at it now go to the new owner's ENI, and the
//! source/destination check learns who may use the address. Each move is
//! appended to the HAVIP log with its CLOCK_MONOTONIC time.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::path::Path;
use std::time::{Duration, Instant};

use hafw_kernel::arp::Listener;
use hafw_kernel::{route, Rtnl};
use hafw_model::addr::Cidr;

use crate::havip::{Announcement, Controller, Verdict};
use crate::lab::{self, kernel_route, monotonic_ns, LabError, LogLine};
use crate::topology::{self, Route, Topology, VPC_TABLE};

/// The longest single wait while a move is pending.
const PENDING_STEP: Duration = Duration::from_millis(20);

pub fn run(lab_name: &str, ready_file: Option<&Path>) -> Result<(), LabError> {
    let text = std::fs::read_to_string(lab::state_dir(lab_name).join("deployment.toml"))
        .map_err(|e| LabError::Refused(format!("lab `{lab_name}` has no saved deployment: {e}")))?;
    let dep = hafw_model::parse("deployment.toml", &text)
        .map_err(|d| LabError::Refused(d.to_string()))?;
    let topo = topology::build(&dep, lab_name).map_err(LabError::Refused)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| LabError::Refused(format!("start runtime: {e}")))?;
    let nl = runtime
        .block_on(async { Rtnl::connect() })
        .map_err(|source| LabError::Kernel {
            context: "open netlink".into(),
            source,
        })?;
    let devs: Vec<&str> = topo.ports.iter().map(|p| p.vpc_dev.as_str()).collect();
    let mut listener = Listener::open(None, &devs).map_err(|source| LabError::Kernel {
        context: "listen for ARP".into(),
        source,
    })?;
    let mut log = OpenOptions::new()
        .append(true)
        .create(true)
        .open(lab::havip_log(lab_name))
        .map_err(|e| LabError::Refused(format!("open the HAVIP log: {e}")))?;
    if let Some(f) = ready_file {
        std::fs::write(f, "ready\n")
            .map_err(|e| LabError::Refused(format!("write ready file: {e}")))?;
    }

    let mut core = Controller::new(&topo.havips);
    let epoch = Instant::now();
    loop {
        let now = epoch.elapsed();
        // A pending move is waited for in short steps: a socket timeout of
        // seconds lands on a coarse level of the kernel's timer wheel (up
        // to 256 ms late for 5 s at HZ=250), which would add to the
        // cloud's modelled delay.
        let wait = core
            .next_timeout()
            .map(|t| t.saturating_sub(now).min(PENDING_STEP));
        let packet = listener
            .recv(wait.or(Some(Duration::from_secs(1))))
            .map_err(|source| LabError::Kernel {
                context: "receive ARP".into(),
                source,
            })?;
        let mut verdicts = core.handle_timeout(epoch.elapsed());
        if let Some(p) = packet {
            let Some(port) = topo.port_by_vpc_dev(&p.interface) else {
                continue;
            };
            let a = Announcement {
                eni: port.eni.clone(),
                sender_ip: p.fields.sender_ip,
                target_ip: p.fields.target_ip,
                is_reply: p.fields.op == hafw_kernel::arp::ArpOp::Reply,
            };
            verdicts.push(core.handle_arp(epoch.elapsed(), &a));
        }
        for v in verdicts {
            match v {
                Verdict::Move { havip, from, to } => {
                    if let Err(e) =
                        runtime.block_on(apply_move(&nl, &topo, &havip, from.as_deref(), &to))
                    {
                        eprintln!("move of HAVIP {havip} to {to} failed: {e}");
                        continue;
                    }
                    let line = LogLine {
                        at_ns: monotonic_ns(),
                        kind: "move".into(),
                        havip,
                        from,
                        to,
                    };
                    let _ = writeln!(log, "{}", lab::format_log_line(&line));
                }
                Verdict::NonMember { havip, eni } => {
                    let line = LogLine {
                        at_ns: monotonic_ns(),
                        kind: "ignored".into(),
                        havip,
                        from: None,
                        to: eni,
                    };
                    let _ = writeln!(log, "{}", lab::format_log_line(&line));
                }
                // Logged so a timeline can tell the cloud's delay from
                // the node's: the move itself is logged when it lands.
                Verdict::Scheduled { havip, to, .. } => {
                    let line = LogLine {
                        at_ns: monotonic_ns(),
                        kind: "requested".into(),
                        havip,
                        from: None,
                        to,
                    };
                    let _ = writeln!(log, "{}", lab::format_log_line(&line));
                }
                Verdict::Refresh { .. } | Verdict::Unrelated => {}
            }
        }
    }
}

async fn apply_move(
    nl: &Rtnl,
    t: &Topology,
    havip: &str,
    from: Option<&str>,
    to: &str,
) -> Result<(), LabError> {
    let spec = t.havips.iter().find(|h| h.name == havip);
    let (Some(spec), Some(port)) = (spec, t.port(to)) else {
        return Err(LabError::Refused(format!(
            "unknown HAVIP {havip} or ENI {to}"
        )));
    };
    let vpc = t.vpc_ns();
    let mut routes = vec![Route {
        ns: vpc.clone(),
        dst: Cidr(ipnet::Ipv4Net::from(spec.ip.0)),
        via: Some(port.ip),
        dev: port.vpc_dev.clone(),
        table: 254,
    }];
    for (table, dst) in &spec.entries {
        routes.push(Route {
            ns: vpc.clone(),
            dst: *dst,
            via: Some(port.ip),
            dev: port.vpc_dev.clone(),
            table: *table,
        });
    }
    for r in &routes {
        route::replace(nl, &kernel_route(r))
            .await
            .map_err(|source| LabError::Kernel {
                context: format!("move HAVIP {havip}"),
                source,
            })?;
    }
    // Only ENIs with the check on are in the allowed set.
    let mut script = String::new();
    if let Some(old) = from.and_then(|f| t.port(f)).filter(|p| p.source_dest_check) {
        script.push_str(&format!(
            "delete element ip {VPC_TABLE} allowed {{ \"{}\" . {} }}\n",
            old.vpc_dev, spec.ip
        ));
    }
    if port.source_dest_check {
        script.push_str(&format!(
            "add element ip {VPC_TABLE} allowed {{ \"{}\" . {} }}\n",
            port.vpc_dev, spec.ip
        ));
    }
    if !script.is_empty() {
        hafw_kernel::nft::apply(None, &script).map_err(|source| LabError::Kernel {
            context: format!("update the check for HAVIP {havip}"),
            source,
        })?;
    }
    Ok(())
}
