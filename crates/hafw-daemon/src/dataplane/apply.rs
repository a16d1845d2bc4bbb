//! A node plan carried out on the kernel (withdraw.rs takes it back).
//!
//! Order (architecture.md, "Promotion order" and "Never forwarding
//! without the ruleset"): sysctls, ENI addresses, routes, ruleset,
//! conntrack sysctls, forwarding, then, when active, the floating
//! addresses; gratuitous ARP is the caller's (garp.rs). Forwarding goes on
//! only once the ruleset is committed. Config is a transaction: the
//! ruleset is checked by nft and the interfaces looked up before anything
//! changes; if a step still fails, [`restore`] puts back exactly what was
//! there before, the previous ruleset included.
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
use super::withdraw::{forwarding_keys, restore};
use crate::log::Log;

/// The steps of an apply, in the order they run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Step {
    Sysctls,
    Addresses,
    Routes,
    Ruleset,
    ConntrackSysctls,
    Forwarding,
    Floating,
}

impl Step {
    pub const ALL: [Step; 7] = [
        Step::Sysctls,
        Step::Addresses,
        Step::Routes,
        Step::Ruleset,
        Step::ConntrackSysctls,
        Step::Forwarding,
        Step::Floating,
    ];

    /// The name the apply's log uses for the step.
    pub fn name(self) -> &'static str {
        match self {
            Step::Sysctls => "sysctls",
            Step::Addresses => "addresses",
            Step::Routes => "routes",
            Step::Ruleset => "ruleset",
            Step::ConntrackSysctls => "conntrack sysctls",
            Step::Forwarding => "forwarding",
            Step::Floating => "floating addresses",
        }
    }
}

/// A failure made to happen at `step`, so tests can prove that every
/// failure puts the kernel back as it was. With `after`, the step first
/// makes its kernel change and then fails: the hard case, where the undo
/// must take back a change the step itself did not report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fault {
    pub step: Step,
    pub after: bool,
}

fn inject(fault: Option<Fault>, step: Step, after: bool) -> Result<(), ApplyError> {
    match fault {
        Some(f) if f.step == step && f.after == after => Err(ApplyError::Injected(f)),
        _ => Ok(()),
    }
}

/// What one apply changed, to be withdrawn later.
#[derive(Debug, Default)]
pub struct Applied {
    /// Each sysctl written, with the value it had before.
    pub sysctls: Vec<(String, String)>,
    pub addresses_added: Vec<(String, Ipv4Net)>,
    /// Links this apply set up: on a first boot only the DHCP-configured
    /// management NIC is up, the other ENIs' links are down.
    pub links_raised: Vec<String>,
    pub routes_added: Vec<Route>,
    /// Routes this apply replaced, as they were before.
    pub routes_replaced: Vec<Route>,
    /// Set when this apply committed the table.
    pub table: Option<(nft::Family, String)>,
    /// With `table`: the table's listing (counters included) before this
    /// apply committed it, or None when there was no such table. A failed
    /// apply recommits it, so the previous ruleset is what runs after.
    pub table_before: Option<String>,
    /// Set when the live table already listed as planned. The table is
    /// hafw's own by name, so a standalone node withdraws it on shutdown
    /// either way; an apply that fails leaves a table it found alone.
    pub table_found: Option<(nft::Family, String)>,
    pub floating_added: Vec<(String, Ipv4Net)>,
    /// Every forwarding switch (`net.ipv4.ip_forward` first, then each
    /// `net/ipv4/conf/*/forwarding`) as it was before this apply turned
    /// forwarding on; empty when the planned values were already in place.
    pub forwarding: Vec<(String, String)>,
}

impl Applied {
    /// True when the apply found everything already in place.
    pub fn changed_nothing(&self) -> bool {
        self.sysctls.is_empty()
            && self.addresses_added.is_empty()
            && self.links_raised.is_empty()
            && self.routes_added.is_empty()
            && self.routes_replaced.is_empty()
            && self.table.is_none()
            && self.floating_added.is_empty()
            && self.forwarding.is_empty()
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
    /// A failure a test asked for ([`apply_with`]).
    Injected(Fault),
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
                    "the kernel refused the ruleset at line {} ({object}): {}\n    {}\n{}nothing was committed; the running ruleset is unchanged. nft said:\n{}",
                    c.line,
                    c.message,
                    c.text,
                    fastpath_hint(c),
                    indent(stderr)
                )
            }
            ApplyError::RulesetRefused { culprit: None, stderr } => write!(
                f,
                "the kernel refused the ruleset; nothing was committed, the running ruleset is unchanged. nft said:\n{}",
                indent(stderr)
            ),
            ApplyError::Kernel { step, source } => write!(f, "{step}: {source}"),
            ApplyError::Injected(Fault { step, after }) => write!(
                f,
                "{}: failure injected {} the step's kernel change (a test's)",
                step.name(),
                if *after { "after" } else { "before" }
            ),
        }
    }
}

impl std::error::Error for ApplyError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ApplyError::MissingInterface { source, .. } | ApplyError::Kernel { source, .. } => {
                Some(source.as_ref())
            }
            ApplyError::RulesetRefused { .. } | ApplyError::Injected(_) => None,
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
/// addresses too. On failure, puts back what was there and says why.
pub async fn apply(
    nl: &Rtnl,
    plan: &NodePlan,
    active: bool,
    log: &Log,
) -> Result<Applied, ApplyError> {
    apply_with(nl, plan, active, log, None).await
}

/// [`apply`], failing at `fault` when given (tests only pass one).
pub async fn apply_with(
    nl: &Rtnl,
    plan: &NodePlan,
    active: bool,
    log: &Log,
    fault: Option<Fault>,
) -> Result<Applied, ApplyError> {
    let started = Instant::now();
    prepare(nl, plan).await?;
    log.step(
        "prepare",
        started,
        "interfaces present, ruleset accepted by nft --check",
    );
    let mut applied = Applied::default();
    match steps(nl, plan, active, log, &mut applied, fault).await {
        Ok(()) => Ok(applied),
        Err(e) => {
            log.warn(format!(
                "apply failed ({e}); putting back the previous ruleset, addresses, routes and sysctls"
            ));
            let problems = restore(nl, applied, log).await;
            for problem in &problems {
                log.warn(format!("undo: {problem}"));
            }
            Err(e)
        }
    }
}

/// Whether `key` is a forwarding switch, which goes on only after the
/// ruleset (architecture.md, "Never forwarding without the ruleset").
fn is_forwarding(key: &str) -> bool {
    key == "net.ipv4.ip_forward" || key.ends_with(".forwarding") || key.ends_with("/forwarding")
}

async fn steps(
    nl: &Rtnl,
    plan: &NodePlan,
    active: bool,
    log: &Log,
    applied: &mut Applied,
    fault: Option<Fault>,
) -> Result<(), ApplyError> {
    let ns = nl.netns();
    let (forwarding, rest): (Vec<_>, Vec<_>) =
        plan.sysctls.iter().partition(|s| is_forwarding(&s.key));
    // The conntrack sysctls exist only once nf_conntrack is loaded, which
    // committing the ruleset does (render/node/sysctl.rs).
    let (late, early): (Vec<_>, Vec<_>) = rest
        .into_iter()
        .partition(|s| s.key.starts_with("net.netfilter."));
    let before = |step| inject(fault, step, false);
    let after = |step| inject(fault, step, true);

    let t = Instant::now();
    before(Step::Sysctls)?;
    let n = set_sysctls(ns, &early, applied)?;
    after(Step::Sysctls)?;
    log.step("sysctls", t, format!("{} of {} changed", n, early.len()));

    let t = Instant::now();
    before(Step::Addresses)?;
    let before_n = applied.addresses_added.len();
    for i in &plan.interfaces {
        if raise_link(nl, &i.ifname).await? {
            applied.links_raised.push(i.ifname.clone());
        }
        let net = net(i.address.0, i.prefix_len());
        if add_address(nl, &i.ifname, net).await? {
            applied.addresses_added.push((i.ifname.clone(), net));
        }
    }
    after(Step::Addresses)?;
    let added = applied.addresses_added.len() - before_n;
    log.step(
        "addresses",
        t,
        format!("{} of {} added", added, plan.interfaces.len()),
    );

    let t = Instant::now();
    before(Step::Routes)?;
    let (added, replaced) = routes(nl, plan, applied).await?;
    after(Step::Routes)?;
    log.step(
        "routes",
        t,
        format!(
            "{added} added, {replaced} replaced, {} already in place",
            plan.routes.len() - added - replaced
        ),
    );

    let t = Instant::now();
    before(Step::Ruleset)?;
    let committed = commit_ruleset(ns, plan, applied)?;
    after(Step::Ruleset)?;
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
    before(Step::ConntrackSysctls)?;
    let n = set_sysctls(ns, &late, applied)?;
    after(Step::ConntrackSysctls)?;
    log.step(
        "conntrack sysctls",
        t,
        format!("{} of {} changed", n, late.len()),
    );

    // Only now: the ruleset that filters what is forwarded is committed.
    let t = Instant::now();
    before(Step::Forwarding)?;
    let n = forwarding_on(nl, &forwarding, applied).await?;
    after(Step::Forwarding)?;
    log.step(
        "forwarding",
        t,
        format!("{} of {} changed, after the ruleset", n, forwarding.len()),
    );

    if active {
        let t = Instant::now();
        before(Step::Floating)?;
        for f in &plan.floating {
            let net = floating_net(f);
            if add_address(nl, &f.ifname, net).await? {
                applied.floating_added.push((f.ifname.clone(), net));
            }
        }
        after(Step::Floating)?;
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

/// The flowtable of `policy.fastpath` is the one object of the ruleset a
/// kernel may lack (CONFIG_NF_FLOW_TABLE): nft then says only "No such
/// file or directory" at `flowtable ft {` or `flow add @ft`.
fn fastpath_hint(c: &Culprit) -> &'static str {
    let flowtable = c.text.starts_with("flowtable ") || c.text.contains(" flow add @");
    if flowtable && c.message.contains("No such file or directory") {
        "policy.fastpath: this kernel has no nftables flowtable (it needs CONFIG_NF_FLOW_TABLE and CONFIG_NF_FLOW_TABLE_INET, or `modprobe nf_flow_table_inet`), or a device of the flowtable is missing; load the module or set policy.fastpath = false\n"
    } else {
        ""
    }
}

fn refused(stderr: String, text: &str) -> ApplyError {
    ApplyError::RulesetRefused {
        culprit: first_culprit(&stderr, text),
        stderr,
    }
}

/// Writes the planned values and records each key that ends up changed,
/// with its value from before the step. All values are read first: a write
/// to `conf.default.*` also changes every interface not yet set on its own
/// (the kernel copies the default to them), so a key's value just before
/// its own write may already be hafw's. Recorded before any write, so a
/// failure half-way through is undone too; pruned once the step is done.
fn set_sysctls(
    ns: Option<&str>,
    sysctls: &[&hafw_model::render::node::Sysctl],
    applied: &mut Applied,
) -> Result<usize, ApplyError> {
    let start = applied.sysctls.len();
    for s in sysctls {
        let old = sysctl::get(ns, &s.key).map_err(kernel("read sysctl"))?;
        applied.sysctls.push((s.key.clone(), old));
    }
    for s in sysctls {
        let now = sysctl::get(ns, &s.key).map_err(kernel("read sysctl"))?;
        if now != s.value {
            sysctl::set(ns, &s.key, &s.value).map_err(kernel("set sysctl"))?;
        }
    }
    let recorded = applied.sysctls.split_off(start);
    for (key, old) in recorded {
        let now = sysctl::get(ns, &key).map_err(kernel("read sysctl"))?;
        if now != old {
            applied.sysctls.push((key, old));
        }
    }
    Ok(applied.sysctls.len() - start)
}

/// Sets the planned forwarding sysctls; records, when one changes, every
/// forwarding switch as it was before: writing `ip_forward` also sets each
/// interface's `forwarding`, so the undo writes `ip_forward` back first and
/// then each switch that still differs. Returns how many planned ones
/// changed.
async fn forwarding_on(
    nl: &Rtnl,
    sysctls: &[&hafw_model::render::node::Sysctl],
    applied: &mut Applied,
) -> Result<usize, ApplyError> {
    let ns = nl.netns();
    let keys = forwarding_keys(nl)
        .await
        .map_err(kernel("list the forwarding sysctls"))?;
    let mut was = vec![];
    for k in &keys {
        let v = sysctl::get(ns, k).map_err(kernel("read sysctl"))?;
        was.push((k.clone(), v));
    }
    let mut changed = 0;
    for s in sysctls {
        let old = sysctl::get(ns, &s.key).map_err(kernel("read sysctl"))?;
        if old != s.value {
            if changed == 0 {
                // Recorded before the first write, so a failure between
                // writes is still undone.
                applied.forwarding = std::mem::take(&mut was);
            }
            sysctl::set(ns, &s.key, &s.value).map_err(kernel("set sysctl"))?;
            changed += 1;
        }
    }
    Ok(changed)
}

/// Sets `ifname` up unless it is; true when it was down. The routes via
/// the ENI's gateway need the link up (the kernel refuses a gateway it has
/// no connected route to).
async fn raise_link(nl: &Rtnl, ifname: &str) -> Result<bool, ApplyError> {
    let l = link::show(nl, ifname).await.map_err(kernel("show link"))?;
    if l.admin_up {
        return Ok(false);
    }
    link::set_up(nl, ifname)
        .await
        .map_err(kernel("set link up"))?;
    Ok(true)
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
    let family = nft_view::family(rs);
    // As listed, counters included: what a failed apply recommits.
    let listed = match nft::list_table(ns, family, &rs.table) {
        Ok(text) => Some(text),
        Err(hafw_kernel::Error::Nft { stderr, .. })
            if stderr.contains("No such file or directory") =>
        {
            None
        }
        Err(e) => return Err(kernel("list the live table")(e)),
    };
    if let Some(live) = &listed {
        // A failed comparison is not fatal: committing is always correct.
        if nft_view::expected(rs).is_ok_and(|planned| planned == nft_view::normalize(live)) {
            applied.table_found = Some((family, rs.table.clone()));
            return Ok(false);
        }
    }
    match nft::apply(ns, &rs.text) {
        Ok(()) => {
            applied.table = Some((family, rs.table.clone()));
            applied.table_before = listed;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_flowtable_names_policy_fastpath() {
        // What nft 1.0.6 says on a kernel without CONFIG_NF_FLOW_TABLE.
        let text =
            "table inet hafw {\n\tflowtable ft {\n\t\thook ingress priority filter;\n\t}\n}\n";
        let stderr = "/dev/stdin:2:12-13: Error: Could not process rule: No such file or directory\n\tflowtable ft {\n\t          ^^\n";
        let e = refused(stderr.into(), text).to_string();
        assert!(e.contains("policy.fastpath = false"), "{e}");
        assert!(e.contains("CONFIG_NF_FLOW_TABLE"), "{e}");
        // Any other refusal says nothing of the fast path.
        let stderr =
            "/dev/stdin:3:3-10: Error: Could not process rule: No such file or directory\n";
        let e = refused(stderr.into(), text).to_string();
        assert!(!e.contains("fastpath"), "{e}");
    }

    #[test]
    fn a_fault_fires_at_its_step_and_side_only() {
        let f = Fault {
            step: Step::Ruleset,
            after: true,
        };
        for step in Step::ALL {
            for after in [false, true] {
                let fired = inject(Some(f), step, after).is_err();
                assert_eq!(fired, step == Step::Ruleset && after, "{step:?} {after}");
                assert!(inject(None, step, after).is_ok());
            }
        }
        let e = inject(Some(f), Step::Ruleset, true)
            .unwrap_err()
            .to_string();
        assert_eq!(
            e,
            "ruleset: failure injected after the step's kernel change (a test's)"
        );
    }

    #[test]
    fn forwarding_is_held_back_from_the_early_sysctls() {
        let dep = hafw_model::parse("seed", hafw_model::examples::SEED).unwrap();
        let plan = hafw_model::render::node::plan(&dep, "fw-a").unwrap();
        let forwarding: Vec<&str> = plan
            .sysctls
            .iter()
            .filter(|s| is_forwarding(&s.key))
            .map(|s| s.key.as_str())
            .collect();
        assert_eq!(forwarding, ["net.ipv4.ip_forward"]);
        assert!(is_forwarding("net.ipv4.conf.all.forwarding"));
        assert!(is_forwarding("net/ipv4/conf/eth0.5/forwarding"));
        assert!(!is_forwarding("net.ipv4.conf.all.rp_filter"));
    }
}
