//! The plan one firewall node applies: its interfaces, floating addresses,
//! routes, sysctls, HA endpoints and timers, and the nftables ruleset. Pure:
//! `hafw plan node` prints it and `hafw run` carries it out.

mod display;
mod sysctl;
#[cfg(test)]
mod tests;

use std::time::Duration;

use hafw_ha::node::{defaults, Config, FlapLimit};

use crate::addr::{Cidr, Ip};
use crate::render::nft::{self, HaPeer, Ruleset};
use crate::resolve;
pub use crate::resolve::IfNames;
use crate::spec::{
    Count, Deployment, EniRole, Garp, Ha, HaProfile, Instance, IntervalMs, LinkMonitor, Node,
    PathMonitor,
};

pub use sysctl::Sysctl;

/// Everything one node needs, as plain data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodePlan {
    pub deployment: String,
    pub node: String,
    pub key_file: String,
    /// The other `[[node]]` of the pair; `None` for a lone node.
    pub peer: Option<String>,
    pub ha: HaPlan,
    pub interfaces: Vec<Interface>,
    /// Held only while the node is active.
    pub floating: Vec<FloatingAddress>,
    pub routes: Vec<RoutePlan>,
    pub sysctls: Vec<Sysctl>,
    /// `policy.sessions` for this node's instance: what sizes
    /// `nf_conntrack_max`, the hash table and the sync cache.
    pub sessions: crate::sessions::SessionsPlan,
    pub ruleset: Ruleset,
    /// `policy.hooks`, taken up at start (a change needs a restart).
    pub hooks: crate::hooks::Hooks,
    /// `policy.logging`, taken up at start (a change of its syslog or
    /// rate needs a restart; the ruleset's log statements follow applies).
    pub logging: crate::logging::Logging,
}

/// Every HA setting of the node, resolved: the daemon builds the core's
/// [`Config`] from this alone (`Config::from(&plan.ha)`) and never reads
/// `policy.ha` itself, so `hafw plan node` shows exactly what runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPlan {
    /// Position in the file's `[[node]]` list, from 1: both nodes compute
    /// the same ids, and the tie-break (lower id wins) follows the file.
    pub node_id: u32,
    /// The peer's id, the same way; `None` for a lone node.
    pub peer_id: Option<u32>,
    /// Higher wins the election; on a tie the lower `node_id` wins.
    pub priority: u8,
    /// UDP heartbeats and the TCP session-sync stream both use it.
    pub port: u16,
    pub timers: HaTimers,
    pub preempt: bool,
    pub preempt_hold: Duration,
    pub promotion_hold: Duration,
    pub flap_limit: FlapLimit,
    /// How long an active that hands over waits to see its peer active
    /// ([`defaults::takeover_wait`]).
    pub takeover_wait: Duration,
    /// The least time a starting node listens for its peer
    /// ([`defaults::INITIAL_LISTEN`]).
    pub initial_listen: Duration,
    /// Adaptive detection's ceiling ([`defaults::max_detection`]).
    pub max_detection: Duration,
    /// One heartbeat path per role in `policy.ha.paths`, in that order.
    pub paths: Vec<HaPath>,
    /// `policy.ha.link_monitor`, as written (roles; the ifname of a role is
    /// [`EniRole::ifname`]).
    pub link_monitors: Vec<LinkMonitor>,
    pub path_monitors: Vec<PathMonitor>,
    /// Gratuitous ARP repeats after a promotion.
    pub garp: Garp,
}

impl From<&HaPlan> for Config {
    fn from(ha: &HaPlan) -> Config {
        Config {
            node_id: ha.node_id,
            priority: ha.priority,
            preempt: ha.preempt,
            preempt_hold: ha.preempt_hold,
            promotion_hold: ha.promotion_hold,
            heartbeat_interval: ha.timers.heartbeat_interval(),
            miss_count: ha.timers.miss_count.get(),
            paths: ha.paths.len(),
            flap_limit: ha.flap_limit,
            takeover_wait: ha.takeover_wait,
            initial_listen: ha.initial_listen,
            max_detection: ha.max_detection,
        }
    }
}

/// A heartbeat endpoint pair: this node's primary IP on the role's ENI and
/// the peer's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaPath {
    pub role: EniRole,
    pub ifname: String,
    pub local: Ip,
    pub peer: Option<Ip>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HaTimers {
    pub profile: HaProfile,
    pub heartbeat_interval_ms: IntervalMs,
    /// Heartbeats missed on every path before the peer counts as lost.
    pub miss_count: Count,
}

/// `default` is the core's default ([`defaults::HEARTBEAT_INTERVAL_MS`]
/// says why): 200 ms x 5 detects a dead peer in 1 s.
pub const DEFAULT_HEARTBEAT_MS: u32 = defaults::HEARTBEAT_INTERVAL_MS;
pub const DEFAULT_MISS_COUNT: u32 = defaults::MISS_COUNT;
/// `fast` is for idle hosts and the lab: 5 ms x 3 = 15 ms detection.
pub const FAST_HEARTBEAT_MS: u32 = 5;
pub const FAST_MISS_COUNT: u32 = 3;
/// `tight`: 2 ms x 3 = 6 ms detection, for a planned-for crash outage
/// under 10 ms on an idle host.
pub const TIGHT_HEARTBEAT_MS: u32 = 2;
pub const TIGHT_MISS_COUNT: u32 = 3;

impl HaTimers {
    /// The profile's timers, each overridden by an explicit setting.
    pub fn resolve(ha: &Ha) -> HaTimers {
        HaTimers::resolve_with(ha, None)
    }

    /// As [`HaTimers::resolve`], with `profile` (`hafw run --ha-profile`)
    /// in place of the file's; explicit timers in the file still win.
    pub fn resolve_with(ha: &Ha, profile: Option<HaProfile>) -> HaTimers {
        let profile = profile.unwrap_or(ha.profile);
        let (interval, misses) = match profile {
            HaProfile::Default => (DEFAULT_HEARTBEAT_MS, DEFAULT_MISS_COUNT),
            HaProfile::Fast => (FAST_HEARTBEAT_MS, FAST_MISS_COUNT),
            HaProfile::Tight => (TIGHT_HEARTBEAT_MS, TIGHT_MISS_COUNT),
        };
        HaTimers {
            profile,
            heartbeat_interval_ms: ha.heartbeat_interval_ms.unwrap_or(IntervalMs::of(interval)),
            miss_count: ha.miss_count.unwrap_or(Count::of(misses)),
        }
    }

    pub fn heartbeat_interval(&self) -> Duration {
        self.heartbeat_interval_ms.duration()
    }

    /// How long after the peer's last heartbeat it is declared lost.
    pub fn detection(&self) -> Duration {
        Duration::from_millis(self.detection_ms())
    }

    /// [`HaTimers::detection`] in milliseconds (cannot overflow: u32 × u32).
    pub fn detection_ms(&self) -> u64 {
        u64::from(self.heartbeat_interval_ms) * u64::from(self.miss_count)
    }
}

/// One ENI as the node sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    pub role: EniRole,
    pub eni: String,
    /// The kernel link: as `hafw run` found it ([`crate::resolve`]), or
    /// the role alias (the role's name, with a number appended for a
    /// second ENI of the same role).
    pub ifname: String,
    pub vswitch: String,
    /// The vSwitch CIDR: the connected network.
    pub network: Cidr,
    pub address: Ip,
    pub gateway: Ip,
    pub source_dest_check: bool,
}

impl Interface {
    pub fn prefix_len(&self) -> u8 {
        self.network.prefix_len()
    }
}

/// A HAVIP address the active node adds to a data interface.
///
/// It is added as a /32, not with the vSwitch prefix: the primary IP already
/// gives the connected route, a /32 adds only a local route, so the routing
/// table is identical on the active and the passive node, and locally
/// originated traffic (heartbeats, probes) keeps the primary IP as its
/// source. With the vSwitch prefix it would be a secondary address of that
/// subnet, which the kernel deletes with the primary unless promotion is on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloatingAddress {
    pub role: EniRole,
    pub ifname: String,
    pub address: Ip,
}

impl FloatingAddress {
    pub const PREFIX_LEN: u8 = 32;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutePlan {
    pub destination: Cidr,
    pub gateway: Ip,
    pub ifname: String,
}

/// The plan for `node` (a `[[node]]` name). The deployment should have
/// passed validation; a reference that still does not resolve is an error
/// naming it, never a guess.
pub fn plan(dep: &Deployment, node: &str) -> Result<NodePlan, String> {
    plan_with(dep, node, None, &IfNames::aliases())
}

/// As [`plan`], with the HA timer profile overridden (`hafw run
/// --ha-profile`): the one place the override is applied; and with the
/// kernel link of each of this node's ENIs as `hafw run` found it
/// ([`crate::resolve`]; an ENI not in `names` keeps its role alias).
pub fn plan_with(
    dep: &Deployment,
    node: &str,
    profile: Option<HaProfile>,
    names: &IfNames,
) -> Result<NodePlan, String> {
    // Node ids are positions in the file's `[[node]]` list, from 1: both
    // nodes compute the same ids, and the tie-break (lower id wins) follows
    // the file.
    let (me_at, me) = dep
        .nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.name == node)
        .ok_or_else(|| unknown_node(dep, node))?;
    let instance = instance_of(dep, me)?;
    let peer_at = dep
        .nodes
        .iter()
        .enumerate()
        .find(|(_, n)| n.name != me.name);
    let peer = peer_at.map(|(_, p)| p);
    let peer_instance = peer.map(|p| instance_of(dep, p)).transpose()?;
    let interfaces = interfaces_of(dep, instance, names)?;
    // Only the peer's addresses are used; its link names are its own.
    let peer_interfaces = (peer_instance)
        .map(|i| interfaces_of(dep, i, &IfNames::aliases()))
        .transpose()?;
    let ids = NodeIds {
        me: node_id(me_at)?,
        peer: peer_at.map(|(at, _)| node_id(at)).transpose()?,
    };
    let ha = ha_plan(
        dep,
        me,
        ids,
        profile,
        &interfaces,
        peer_interfaces.as_deref(),
    )?;
    let floating = floating(dep, &interfaces)?;
    let mut routes = routes(dep, &interfaces)?;
    routes.extend(metadata_route(&interfaces, &routes));
    let ha_peers = ha_peers(&ha, &interfaces, peer_interfaces.as_deref());
    let ruleset = nft::ruleset(dep, &me.name, &interfaces, &ha_peers)?;
    Ok(NodePlan {
        deployment: dep.name.clone(),
        node: me.name.clone(),
        key_file: me.key_file.clone(),
        peer: peer.map(|p| p.name.clone()),
        ha,
        sysctls: sysctl::sysctls(dep, &interfaces, &ha_peers),
        sessions: crate::sessions::SessionsPlan::of(dep, instance),
        interfaces,
        floating,
        routes,
        ruleset,
        hooks: dep.policy.hooks.clone(),
        logging: dep.policy.logging.clone(),
    })
}

fn unknown_node(dep: &Deployment, node: &str) -> String {
    let known: Vec<&str> = dep.nodes.iter().map(|n| n.name.as_str()).collect();
    if known.is_empty() {
        return format!("no node `{node}`: the deployment has no [[node]]; add one per firewall");
    }
    format!(
        "no node `{node}` in the deployment; the nodes are: {}",
        known.join(", ")
    )
}

fn instance_of<'d>(dep: &'d Deployment, node: &Node) -> Result<&'d Instance, String> {
    dep.instance(&node.name).ok_or_else(|| {
        format!(
            "node `{}` has no [[cloud.instance]] of that name; a node runs on the instance it is named after, so add the instance or rename the node (`hafw validate` lists every such error)",
            node.name
        )
    })
}

/// The instance's ENIs in file order, each on its link in `names`, or
/// under its role alias.
fn interfaces_of(
    dep: &Deployment,
    instance: &Instance,
    names: &IfNames,
) -> Result<Vec<Interface>, String> {
    let mut out: Vec<Interface> = Vec::with_capacity(instance.enis.len());
    for (at, eni) in instance.enis.iter().enumerate() {
        let vswitch = dep.vswitch(&eni.vswitch).ok_or_else(|| {
            format!(
                "ENI `{}` names vSwitch `{}`, which is not a [[cloud.vswitch]]; correct the name",
                eni.name, eni.vswitch
            )
        })?;
        let ifname = match names.get(&eni.name) {
            Some(name) => name.to_owned(),
            None => resolve::alias(instance, at),
        };
        out.push(Interface {
            role: eni.role,
            eni: eni.name.clone(),
            ifname,
            vswitch: vswitch.name.clone(),
            network: vswitch.cidr,
            address: eni.primary_ip,
            gateway: vswitch.gateway(),
            source_dest_check: eni.source_dest_check,
        });
    }
    Ok(out)
}

/// The ECS metadata service (alicloud-havip.md, "On the instance"). The
/// instance reached it at boot over the management ENI (DHCP on eth0 gives
/// the default route via the management gateway); a policy default route
/// via untrust or data must not take it elsewhere, so it keeps a /32 via
/// the management gateway.
pub const METADATA_SERVICE: std::net::Ipv4Addr = std::net::Ipv4Addr::new(100, 100, 100, 200);

/// The /32 route to the metadata service via the management ENI, unless
/// there is no management ENI or the policy routes that /32 itself.
fn metadata_route(mine: &[Interface], routes: &[RoutePlan]) -> Option<RoutePlan> {
    let mgmt = by_role(mine, EniRole::Management)?;
    let destination = Cidr(ipnet::Ipv4Net::new(METADATA_SERVICE, 32).ok()?);
    if routes.iter().any(|r| r.destination == destination) {
        return None;
    }
    Some(RoutePlan {
        destination,
        gateway: mgmt.gateway,
        ifname: mgmt.ifname.clone(),
    })
}

impl NodePlan {
    /// The link of this node's first ENI of `role` (link and path monitors
    /// name interfaces by role).
    pub fn ifname_of(&self, role: EniRole) -> Option<&str> {
        by_role(&self.interfaces, role).map(|i| i.ifname.as_str())
    }
}

fn by_role(interfaces: &[Interface], role: EniRole) -> Option<&Interface> {
    interfaces.iter().find(|i| i.role == role)
}

struct NodeIds {
    me: u32,
    peer: Option<u32>,
}

/// The id of the `[[node]]` at index `at`.
fn node_id(at: usize) -> Result<u32, String> {
    u32::try_from(at + 1).map_err(|_| {
        "too many [[node]] entries; an HA pair has two (`hafw validate` says so)".to_string()
    })
}

fn ha_plan(
    dep: &Deployment,
    me: &Node,
    ids: NodeIds,
    profile: Option<HaProfile>,
    mine: &[Interface],
    peer: Option<&[Interface]>,
) -> Result<HaPlan, String> {
    let ha = &dep.policy.ha;
    let mut paths = Vec::with_capacity(ha.paths.len());
    for &role in &ha.paths {
        let local = by_role(mine, role).ok_or_else(|| {
            format!(
                "policy.ha.paths lists `{}`, but this node has no ENI with that role; add the ENI or remove the path",
                role.as_str()
            )
        })?;
        let peer_addr = match peer {
            None => None,
            Some(p) => Some(by_role(p, role).map(|i| i.address).ok_or_else(|| {
                format!(
                    "policy.ha.paths lists `{}`, but the peer node has no ENI with that role; add the ENI or remove the path",
                    role.as_str()
                )
            })?),
        };
        paths.push(HaPath {
            role,
            ifname: local.ifname.clone(),
            local: local.address,
            peer: peer_addr,
        });
    }
    let timers = HaTimers::resolve_with(ha, profile);
    Ok(HaPlan {
        node_id: ids.me,
        peer_id: ids.peer,
        priority: me.priority,
        port: ha.port,
        timers,
        preempt: ha.preempt,
        preempt_hold: Duration::from_millis(u64::from(ha.preempt_hold_ms)),
        promotion_hold: Duration::from_millis(u64::from(ha.promotion_hold_ms)),
        flap_limit: FlapLimit {
            transitions: ha.flap_limit.transitions.get(),
            window: Duration::from_secs(u64::from(ha.flap_limit.window_s)),
        },
        takeover_wait: defaults::takeover_wait(timers.heartbeat_interval()),
        initial_listen: defaults::INITIAL_LISTEN,
        max_detection: defaults::max_detection(timers.detection()),
        paths,
        link_monitors: ha.link_monitors.clone(),
        path_monitors: ha.path_monitors.clone(),
        garp: ha.garp.clone(),
    })
}

/// Where the input chain accepts HA traffic from: the peer's end of every
/// heartbeat path, and its HA2 address, which carries session sync even
/// when HA2 is not a heartbeat path.
fn ha_peers(ha: &HaPlan, mine: &[Interface], peer: Option<&[Interface]>) -> Vec<HaPeer> {
    let mut out: Vec<HaPeer> = ha
        .paths
        .iter()
        .filter_map(|p| {
            p.peer.map(|address| HaPeer {
                ifname: p.ifname.clone(),
                address,
            })
        })
        .collect();
    let ha2 = by_role(mine, EniRole::Ha2).zip(peer.and_then(|p| by_role(p, EniRole::Ha2)));
    if let Some((local, remote)) = ha2 {
        let entry = HaPeer {
            ifname: local.ifname.clone(),
            address: remote.address,
        };
        if !out.contains(&entry) {
            out.push(entry);
        }
    }
    out
}

fn floating(dep: &Deployment, mine: &[Interface]) -> Result<Vec<FloatingAddress>, String> {
    let mut out = Vec::new();
    for role in [EniRole::Untrust, EniRole::Trust, EniRole::Data] {
        let Some(address) = dep.floating(role) else {
            continue;
        };
        let iface = by_role(mine, role).ok_or_else(|| {
            format!(
                "policy.interface.{} has a floating address, but this node has no `{}` ENI; add the ENI or remove the floating address",
                role.as_str(),
                role.as_str()
            )
        })?;
        out.push(FloatingAddress {
            role,
            ifname: iface.ifname.clone(),
            address,
        });
    }
    Ok(out)
}

fn routes(dep: &Deployment, mine: &[Interface]) -> Result<Vec<RoutePlan>, String> {
    dep.policy
        .routes
        .iter()
        .map(|r| {
            let iface = by_role(mine, r.via).ok_or_else(|| {
                format!(
                    "the route to {} leaves via `{}`, but this node has no ENI with that role; correct `via`",
                    r.destination,
                    r.via.as_str()
                )
            })?;
            Ok(RoutePlan {
                destination: r.destination,
                gateway: r.gateway.unwrap_or(iface.gateway),
                ifname: iface.ifname.clone(),
            })
        })
        .collect()
}
