//! A node plan carried out on the kernel (withdraw.rs takes it back).
//!
//! Order (architecture.md, "Promotion order"): sysctls, ENI addresses,
//! routes, ruleset, then, when active, the floating addresses; gratuitous
//! ARP is the caller's (garp.rs). Config is a transaction: the
//! ruleset is checked by nft and the interfaces looked up before anything
//! changes; if a step still fails, what this apply changed is undone.
//!
//! Idempotent: an address or route that is already there is left alone,
//! a sysctl already at its value is not written, and a live table that
//! lists the same as the plan is not recommitted (its counters survive).
//! [`Applied`] records only what this apply changed, so [`withdraw`]
//! removes that and nothing else.

use std::fmt;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::Instant;

use hafw_kernel::nft::NFT;
use hafw_kernel::route::{Route, Scope, MAIN_TABLE};
use hafw_kernel::{addr, link, nft, route, sysctl, Rtnl};
use hafw_model::render::node::{FloatingAddress, NodePlan};
use ipnet::Ipv4Net;

use super::nft_error::{first_culprit, Culprit};
use super::nft_view;
use super::withdraw::withdraw;
use crate::log::Log;

/// What one apply changed, to be withdrawn later.
#[derive(Debug, Default)]
pub struct Applied {
    /// Each sysctl written, with the value it had before.
    pub sysctls: Vec<(String, String)>,
    pub addresses_added: Vec<(String, Ipv4Net)>,
    pub routes_added: Vec<Route>,
    /// Routes this apply replaced, as they were before.
    pub routes_replaced: Vec<Route>,
    /// Set when this apply committed the table.
    pub table: Option<(nft::Family, String)>,
    /// Set when the live table already listed as planned. The table is
    /// hafw's own by name, so a standalone node withdraws it on shutdown
    /// either way; an apply that fails leaves a table it found alone.
    pub table_found: Option<(nft::Family, String)>,
    pub floating_added: Vec<(String, Ipv4Net)>,
}

impl Applied {
    /// True when the apply found everything already in place.
    pub fn changed_nothing(&self) -> bool {
        self.sysctls.is_empty()
            && self.addresses_added.is_empty()
            && self.routes_added.is_empty()
            && self.routes_replaced.is_empty()
            && self.table.is_none()
            && self.floating_added.is_empty()
    }
}

/// Why an apply failed. Everything it had changed has been undone.
#[derive(Debug)]
pub enum ApplyError {
    /// An interface of the plan is missing on this host.
    MissingInterface {
        ifname: String,
        eni: String,
        source: Box<hafw_kernel::Error>,
    },
    /// nft or the kernel refused the ruleset; the running one is untouched.
    RulesetRefused {
        culprit: Option<Culprit>,
        stderr: String,
    },
    /// A kernel operation failed.
    Kernel {
        step: &'static str,
        source: Box<hafw_kernel::Error>,
    },
}

impl fmt::Display for ApplyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ApplyError::MissingInterface { ifname, eni, source } => write!(
                f,
                "interface `{ifname}` (ENI {eni}) is not on this host ({source}); attach the ENI and name its interface `{ifname}`, the name `hafw plan node` gives it"
            ),
            ApplyError::RulesetRefused { culprit: Some(c), stderr } => {
                let object = c.object.as_deref().unwrap_or("no rule comment near it");
                write!(
                    f,
                    "the kernel refused the ruleset at line {} ({object}): {}\n    {}\nnothing was committed; the running ruleset is unchanged. nft said:\n{}",
                    c.line,
                    c.message,
                    c.text,
                    indent(stderr)
                )
            }
            ApplyError::RulesetRefused { culprit: None, stderr } => write!(
                f,
                "the kernel refused the ruleset; nothing was committed, the running ruleset is unchanged. nft said:\n{}",
                indent(stderr)
            ),
            ApplyError::Kernel { step, source } => write!(f, "{step}: {source}"),
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::MissingInterface { source, .. } | ApplyError::Kernel { source, .. } => {
                Some(source.as_ref())
            }
            ApplyError::RulesetRefused { .. } => None,
        }
    }
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}\n"))
        .collect::<String>()
        .trim_end()
        .to_string()
}

fn kernel(step: &'static str) -> impl FnOnce(hafw_kernel::Error) -> ApplyError {
    move |source| ApplyError::Kernel {
        step,
        source: Box::new(source),
    }
}

/// Applies `plan` in `nl`'s namespace; with `active`, adds the floating
/// addresses too. On failure, undoes what it changed and says why.
pub async fn apply(
    nl: &Rtnl,
    plan: &NodePlan,
    active: bool,
    log: &Log,
) -> Result<Applied, ApplyError> {
    let started = Instant::now();
    prepare(nl, plan).await?;
    log.step(
        "prepare",
        started,
        "interfaces present, ruleset accepted by nft --check",
    );
    let mut applied = Applied::default();
    match steps(nl, plan, active, log, &mut applied).await {
        Ok(()) => Ok(applied),
        Err(e) => {
            log.info("apply failed; undoing what it changed");
            applied.table_found = None;
            for problem in withdraw(nl, applied, log).await {
                log.info(format!("undo: {problem}"));
            }
            Err(e)
        }
    }
}

async fn steps(
    nl: &Rtnl,
    plan: &NodePlan,
    active: bool,
    log: &Log,
    applied: &mut Applied,
) -> Result<(), ApplyError> {
    let ns = nl.netns();
    // The conntrack sysctls exist only once nf_conntrack is loaded, which
    // committing the ruleset does (render/node/sysctl.rs).
    let (late, early): (Vec<_>, Vec<_>) = plan
        .sysctls
        .iter()
        .partition(|s| s.key.starts_with("net.netfilter."));

    let t = Instant::now();
    let n = set_sysctls(ns, &early, applied)?;
    log.step("sysctls", t, format!("{} of {} changed", n, early.len()));

    let t = Instant::now();
    let before = applied.addresses_added.len();
    for i in &plan.interfaces {
        let net = net(i.address.0, i.prefix_len());
        if add_address(nl, &i.ifname, net).await? {
            applied.addresses_added.push((i.ifname.clone(), net));
        }
    }
    let added = applied.addresses_added.len() - before;
    log.step(
        "addresses",
        t,
        format!("{} of {} added", added, plan.interfaces.len()),
    );

    let t = Instant::now();
    let (added, replaced) = routes(nl, plan, applied).await?;
    log.step(
        "routes",
        t,
        format!(
            "{added} added, {replaced} replaced, {} already in place",
            plan.routes.len() - added - replaced
        ),
    );

    let t = Instant::now();
    let committed = commit_ruleset(ns, plan, applied)?;
    let what = if committed {
        "committed"
    } else {
        "already in place (same listing), not recommitted"
    };
    log.step(
        "ruleset",
        t,
        format!(
            "table {} {}: {what}",
            plan.ruleset.family, plan.ruleset.table
        ),
    );

    let t = Instant::now();
    let n = set_sysctls(ns, &late, applied)?;
    log.step(
        "conntrack sysctls",
        t,
        format!("{} of {} changed", n, late.len()),
    );

    if active {
        let t = Instant::now();
        for f in &plan.floating {
            let net = floating_net(f);
            if add_address(nl, &f.ifname, net).await? {
                applied.floating_added.push((f.ifname.clone(), net));
            }
        }
        log.step(
            "floating addresses",
            t,
            format!(
                "{} of {} added",
                applied.floating_added.len(),
                plan.floating.len()
            ),
        );
    }
    Ok(())
}

/// Checks what can be checked before changing anything: every interface
/// exists, and nft accepts the ruleset (`nft --check` parses it and runs
/// the transaction in the kernel without committing). Some refusals, such
/// as a NAT statement in a filter chain, only show at commit; those are
/// handled there.
async fn prepare(nl: &Rtnl, plan: &NodePlan) -> Result<(), ApplyError> {
    for i in &plan.interfaces {
        if let Err(source) = link::index(nl, &i.ifname).await {
            return Err(ApplyError::MissingInterface {
                ifname: i.ifname.clone(),
                eni: i.eni.clone(),
                source: Box::new(source),
            });
        }
    }
    nft_check(nl.netns(), &plan.ruleset.text)
}

fn nft_check(ns: Option<&str>, text: &str) -> Result<(), ApplyError> {
    use std::io::Write;
    let mut cmd = match ns {
        Some(ns) => hafw_kernel::command(ns, NFT).map_err(kernel("check ruleset"))?,
        None => Command::new(NFT),
    };
    cmd.args(["--check", "-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let io = |e: std::io::Error| ApplyError::RulesetRefused {
        culprit: None,
        stderr: format!("cannot run {NFT} --check: {e}"),
    };
    let mut child = cmd.spawn().map_err(io)?;
    let output = std::thread::scope(|scope| {
        // A separate writer so nft cannot block us on a full stderr pipe.
        let writer = child
            .stdin
            .take()
            .map(|mut pipe| scope.spawn(move || pipe.write_all(text.as_bytes())));
        let output = child.wait_with_output();
        if let Some(w) = writer {
            // nft may stop reading early on a fatal error; its status says more.
            let _ = w.join();
        }
        output
    })
    .map_err(io)?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr)
        .trim_end()
        .to_string();
    Err(refused(stderr, text))
}

fn refused(stderr: String, text: &str) -> ApplyError {
    ApplyError::RulesetRefused {
        culprit: first_culprit(&stderr, text),
        stderr,
    }
}

fn set_sysctls(
    ns: Option<&str>,
    sysctls: &[&hafw_model::render::node::Sysctl],
    applied: &mut Applied,
) -> Result<usize, ApplyError> {
    let mut changed = 0;
    for s in sysctls {
        let old = sysctl::get(ns, &s.key).map_err(kernel("read sysctl"))?;
        if old != s.value {
            sysctl::set(ns, &s.key, &s.value).map_err(kernel("set sysctl"))?;
            applied.sysctls.push((s.key.clone(), old));
            changed += 1;
        }
    }
    Ok(changed)
}

/// Adds `net` to `ifname` unless it is there; true when it was added.
async fn add_address(nl: &Rtnl, ifname: &str, net: Ipv4Net) -> Result<bool, ApplyError> {
    let present = addr::list(nl, ifname)
        .await
        .map_err(kernel("list addresses"))?;
    if present.contains(&net) {
        return Ok(false);
    }
    addr::add(nl, ifname, net)
        .await
        .map_err(kernel("add address"))?;
    Ok(true)
}

/// Makes each planned route present: left alone when identical, replaced
/// (old one remembered) when the destination goes elsewhere, else added.
async fn routes(
    nl: &Rtnl,
    plan: &NodePlan,
    applied: &mut Applied,
) -> Result<(usize, usize), ApplyError> {
    let live = route::list(nl, MAIN_TABLE)
        .await
        .map_err(kernel("list routes"))?;
    let (mut added, mut replaced) = (0, 0);
    for r in &plan.routes {
        let want = planned_route(r);
        let same_dst: Vec<&Route> = live
            .iter()
            .filter(|l| l.dst == want.dst && l.metric.unwrap_or(0) == 0)
            .collect();
        if same_dst.iter().any(|l| same_route(l, &want)) {
            continue;
        }
        if let Some(old) = same_dst.first() {
            route::replace(nl, &want)
                .await
                .map_err(kernel("replace route"))?;
            applied.routes_replaced.push((*old).clone());
            replaced += 1;
        } else {
            route::add(nl, &want).await.map_err(kernel("add route"))?;
            applied.routes_added.push(want);
            added += 1;
        }
    }
    Ok((added, replaced))
}

pub fn planned_route(r: &hafw_model::render::node::RoutePlan) -> Route {
    Route::new(r.destination.0)
        .via(r.gateway.0)
        .dev(r.ifname.clone())
}

/// The fields a plan sets; the kernel adds protocol, preference and the like.
pub fn same_route(live: &Route, want: &Route) -> bool {
    live.dst == want.dst
        && live.gateway == want.gateway
        && live.dev == want.dev
        && live.table == want.table
        && live.scope == Scope::Universe
}

/// Commits the ruleset unless the live table already lists the same;
/// true when it committed.
fn commit_ruleset(
    ns: Option<&str>,
    plan: &NodePlan,
    applied: &mut Applied,
) -> Result<bool, ApplyError> {
    let rs = &plan.ruleset;
    let live = nft_view::live(ns, rs).map_err(kernel("list the live table"))?;
    if let Some(live) = live {
        // A failed comparison is not fatal: committing is always correct.
        if nft_view::expected(rs).is_ok_and(|planned| planned == live) {
            applied.table_found = Some((nft_view::family(rs), rs.table.clone()));
            return Ok(false);
        }
    }
    match nft::apply(ns, &rs.text) {
        Ok(()) => {
            applied.table = Some((nft_view::family(rs), rs.table.clone()));
            Ok(true)
        }
        Err(hafw_kernel::Error::Nft { stderr, .. }) => Err(refused(stderr, &rs.text)),
        Err(e) => Err(ApplyError::Kernel {
            step: "commit ruleset",
            source: Box::new(e),
        }),
    }
}

pub fn floating_net(f: &FloatingAddress) -> Ipv4Net {
    net(f.address.0, FloatingAddress::PREFIX_LEN)
}

fn net(ip: Ipv4Addr, prefix_len: u8) -> Ipv4Net {
    // Both callers pass a prefix length from a parsed CIDR or 32.
    Ipv4Net::new(ip, prefix_len.min(32)).unwrap_or_else(|_| Ipv4Net::from(ip))
}
