//! The deployment file as written: one TOML document describing the cloud,
//! the policy the pair shares, each node, and the lab's test hosts.
//!
//! Every struct refuses unknown keys, so a typo is an error with its location
//! instead of a setting silently left at its default (style.md rule 5).

use std::num::NonZeroU32;
use std::time::Duration;

use hafw_ha::node::defaults;
use serde::Deserialize;

use crate::addr::{Cidr, Ip, Mac, Prefix};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// Short name, used for resource names and as the default lab name.
    pub name: String,
    pub cloud: Cloud,
    pub policy: Policy,
    #[serde(rename = "node")]
    pub nodes: Vec<Node>,
    #[serde(default)]
    pub lab: Lab,
}

// ---------------------------------------------------------------- cloud

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cloud {
    pub provider: Provider,
    pub region: String,
    pub zones: Vec<String>,
    pub vpc: Vpc,
    #[serde(rename = "vswitch")]
    pub vswitches: Vec<VSwitch>,
    #[serde(rename = "instance")]
    pub instances: Vec<Instance>,
    #[serde(rename = "havip", default)]
    pub havips: Vec<Havip>,
    #[serde(rename = "eip", default)]
    pub eips: Vec<Eip>,
    #[serde(rename = "route_table", default)]
    pub route_tables: Vec<RouteTable>,
    #[serde(default)]
    pub limits: Limits,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Alicloud,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Vpc {
    pub name: String,
    pub cidr: Cidr,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VSwitch {
    pub name: String,
    pub zone: String,
    pub cidr: Cidr,
    /// What the subnet is for; `server` marks where DNAT targets may live.
    pub role: VSwitchRole,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum VSwitchRole {
    Management,
    Untrust,
    Trust,
    Ha2,
    Data,
    Server,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub name: String,
    pub instance_type: String,
    /// ENIs the type allows, primary included; required when the type is not
    /// in the built-in table.
    pub max_enis: Option<u8>,
    #[serde(rename = "eni")]
    pub enis: Vec<Eni>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eni {
    pub name: String,
    pub vswitch: String,
    pub primary_ip: Ip,
    pub role: EniRole,
    /// Alibaba Cloud turns the check on by default; a firewall's data ENIs
    /// need it off to forward traffic that is not their own.
    #[serde(default = "yes")]
    pub source_dest_check: bool,
    /// The ENI's MAC address, when known (Terraform's `mac_address`
    /// output): `hafw run` then finds the ENI's link by it. Left out, the
    /// link is found by the role's name, the metadata service or the
    /// primary IP (`hafw_model::resolve`).
    pub mac: Option<Mac>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EniRole {
    Management,
    Untrust,
    Trust,
    Ha2,
    Data,
}

impl EniRole {
    pub fn as_str(self) -> &'static str {
        match self {
            EniRole::Management => "management",
            EniRole::Untrust => "untrust",
            EniRole::Trust => "trust",
            EniRole::Ha2 => "ha2",
            EniRole::Data => "data",
        }
    }
    /// The interface name the role has inside a firewall (the lab names the
    /// instance end of each ENI this way; the node plan uses the same names).
    pub fn ifname(self) -> &'static str {
        match self {
            EniRole::Management => "mgmt",
            EniRole::Untrust => "untrust",
            EniRole::Trust => "trust",
            EniRole::Ha2 => "ha2",
            EniRole::Data => "data",
        }
    }
    /// Roles that carry customer traffic through the firewall.
    pub fn is_data(self) -> bool {
        matches!(self, EniRole::Untrust | EniRole::Trust | EniRole::Data)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Havip {
    pub name: String,
    pub vswitch: String,
    pub ip: Ip,
    /// ENI names or instance names (never both kinds).
    pub members: Vec<String>,
    /// Lab only: how long the emulated cloud takes to move ownership.
    #[serde(default)]
    pub move_delay_ms: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Eip {
    pub name: String,
    /// The public address the lab uses; on the real cloud Terraform allocates it.
    pub ip: Ip,
    /// The HAVIP this EIP is associated with (`alicloud_eip_association`).
    pub havip: Option<String>,
    #[serde(default = "default_bandwidth")]
    pub bandwidth_mbps: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteTable {
    pub name: String,
    pub vswitches: Vec<String>,
    #[serde(rename = "entry", default)]
    pub entries: Vec<RouteEntry>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteEntry {
    pub destination: Cidr,
    pub next_hop: NextHop,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase", deny_unknown_fields)]
pub enum NextHop {
    Havip(String),
    Eni(String),
    Instance(String),
}

/// Cloud quotas; the defaults are the documented ones (alicloud-havip.md),
/// kept configurable because older API documents give other numbers.
/// `havips_per_vpc`: 5 from the ROS page of `ALIYUN::VPC::HaVip`
/// (2026-06), the strictest current document; older VPC API pages say 50.
/// `security_group_rules`: 200 inbound and outbound together per group
/// (ECS `AuthorizeSecurityGroup`; `validate::security_group` says more).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub havip_members: usize,
    pub havips_per_instance: usize,
    pub havips_per_vpc: usize,
    pub route_entries: usize,
    pub havip_route_entries: usize,
    pub security_group_rules: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            havip_members: 10,
            havips_per_instance: 5,
            havips_per_vpc: 5,
            route_entries: 200,
            havip_route_entries: 5,
            security_group_rules: 200,
        }
    }
}

// ---------------------------------------------------------------- policy

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    #[serde(default)]
    pub interface: Interfaces,
    #[serde(rename = "route", default)]
    pub routes: Vec<Route>,
    #[serde(rename = "zone")]
    pub zones: Vec<Zone>,
    #[serde(rename = "rule", default)]
    pub rules: Vec<Rule>,
    #[serde(default)]
    pub nat: Nat,
    #[serde(default)]
    pub ha: Ha,
    #[serde(default)]
    pub management: Management,
    /// `[policy.sessions]`: how many concurrent sessions the node holds
    /// (`crate::sessions`).
    #[serde(default)]
    pub sessions: Sessions,
    /// `[policy.hooks]`: commands and a webhook run on HA events, after the
    /// transition (`crate::hooks`).
    #[serde(default)]
    pub hooks: crate::hooks::Hooks,
    /// `[policy.logging]`: traffic logs (`crate::logging`).
    #[serde(default)]
    pub logging: crate::logging::Logging,
    /// `policy.fastpath = true`: established forwarded TCP and UDP
    /// connections are handed to an nftables software flowtable on the
    /// zones' interfaces, so their packets skip the forward and NAT chains
    /// (`render::nft` says what conntrack and session sync then see).
    #[serde(default)]
    pub fastpath: bool,
}

/// Session capacity. `max` left out: derived from the node's memory
/// ([`crate::sessions`] says how, and why that figure).
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sessions {
    /// Concurrent sessions: sizes `nf_conntrack_max`, the conntrack hash
    /// table and the passive's session-sync cache.
    pub max: Option<SessionCount>,
}

/// Who may reach the node's own services on the management interface.
/// IPv4 only, like every address in the file: over IPv6 nothing reaches
/// the node (the ruleset drops it).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Management {
    /// Sources allowed to reach SSH (port 22) and `api_port`; left out, the
    /// management vSwitch's CIDR of each node. An empty list is refused by
    /// validation: it would lock every operator out of both nodes at once.
    pub allow: Option<Vec<Prefix>>,
    /// The port `hafw run --api` listens on, opened to `allow` like SSH;
    /// left out, nothing but SSH is reachable.
    pub api_port: Option<u16>,
}

/// The floating address each data role takes while the node is active.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Interfaces {
    pub untrust: Option<Floating>,
    pub trust: Option<Floating>,
    pub data: Option<Floating>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Floating {
    pub floating: Ip,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Route {
    pub destination: Cidr,
    /// The interface role the route leaves by; the gateway defaults to that
    /// interface's vSwitch gateway.
    pub via: EniRole,
    pub gateway: Option<Ip>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Zone {
    pub name: String,
    pub interfaces: Vec<EniRole>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub name: String,
    pub from: String,
    pub to: String,
    /// Empty means any.
    #[serde(default)]
    pub source: Vec<Prefix>,
    #[serde(default)]
    pub destination: Vec<Prefix>,
    #[serde(default)]
    pub protocol: Protocol,
    #[serde(default)]
    pub ports: Vec<PortRange>,
    pub action: Action,
    /// Log each connection this rule decides (its first packet) to the
    /// traffic log, with the rule's name.
    #[serde(default)]
    pub log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Any,
    Tcp,
    Udp,
    Icmp,
}

impl Protocol {
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Any => "any",
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
            Protocol::Icmp => "icmp",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Accept,
    Drop,
    Reject,
}

/// A port or an inclusive range: `80`, `"80"` or `"8000-8080"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl std::fmt::Display for PortRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.first == self.last {
            write!(f, "{}", self.first)
        } else {
            write!(f, "{}-{}", self.first, self.last)
        }
    }
}

impl<'de> Deserialize<'de> for PortRange {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            N(i64),
            S(String),
        }
        let port = |n: i64| {
            u16::try_from(n)
                .ok()
                .filter(|p| *p > 0)
                .ok_or_else(|| D::Error::custom(format!("port {n} is out of range; use 1-65535")))
        };
        match Raw::deserialize(d)? {
            Raw::N(n) => port(n).map(|p| PortRange { first: p, last: p }),
            Raw::S(s) => {
                let bad = || {
                    D::Error::custom(format!(
                        "`{s}` is not a port or range; write 443 or \"8000-8080\""
                    ))
                };
                let (a, b) = s.split_once('-').unwrap_or((&s, &s));
                let first = port(a.trim().parse().map_err(|_| bad())?)?;
                let last = port(b.trim().parse().map_err(|_| bad())?)?;
                if first > last {
                    return Err(D::Error::custom(format!(
                        "port range `{s}` runs backwards; write \"{last}-{first}\""
                    )));
                }
                Ok(PortRange { first, last })
            }
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Nat {
    #[serde(default)]
    pub dnat: Vec<Dnat>,
    #[serde(default)]
    pub snat: Vec<Snat>,
}

/// Inbound: traffic to the external HAVIP private IP (the EIP's 1:1 mapping)
/// and a port goes to a server.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Dnat {
    pub name: String,
    pub match_address: Ip,
    pub protocol: L4,
    pub port: u16,
    pub to_address: Ip,
    pub to_port: Option<u16>,
}

/// Outbound: server subnets leave as the external HAVIP private IP, which
/// the cloud maps to the EIP.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snat {
    pub name: String,
    pub sources: Vec<Prefix>,
    pub to_address: Ip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum L4 {
    Tcp,
    Udp,
}

impl L4 {
    pub fn as_str(self) -> &'static str {
        match self {
            L4::Tcp => "tcp",
            L4::Udp => "udp",
        }
    }
}

// ---------------------------------------------------------------- HA

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Ha {
    /// `default` (safe on a loaded VM) or `fast`; explicit timers override it.
    pub profile: HaProfile,
    pub heartbeat_interval_ms: Option<IntervalMs>,
    pub miss_count: Option<Count>,
    pub preempt: bool,
    pub preempt_hold_ms: u32,
    /// 0 is allowed: no hold beyond the detection time.
    pub promotion_hold_ms: u32,
    pub flap_limit: FlapLimit,
    pub garp: Garp,
    /// Interface roles heartbeats run over; the peer is lost only when all
    /// of them are silent.
    pub paths: Vec<EniRole>,
    pub port: u16,
    #[serde(rename = "link_monitor")]
    pub link_monitors: Vec<LinkMonitor>,
    #[serde(rename = "path_monitor")]
    pub path_monitors: Vec<PathMonitor>,
}

/// The defaults are the core's ([`hafw_ha::node::defaults`]): one set.
impl Default for Ha {
    fn default() -> Self {
        Ha {
            profile: HaProfile::Default,
            heartbeat_interval_ms: None,
            miss_count: None,
            preempt: false,
            preempt_hold_ms: defaults::PREEMPT_HOLD_MS,
            promotion_hold_ms: defaults::PROMOTION_HOLD_MS,
            flap_limit: FlapLimit::default(),
            garp: Garp::default(),
            paths: vec![EniRole::Management, EniRole::Ha2],
            port: 28_780,
            link_monitors: Vec::new(),
            path_monitors: Vec::new(),
        }
    }
}

/// The HA timer profile: the file's `policy.ha.profile`, and `hafw run
/// --ha-profile` (and the lab's `--profile`), which override it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum HaProfile {
    /// 200 ms × 5: safe on a loaded VM.
    #[default]
    Default,
    /// 5 ms × 3: for idle hosts and the lab.
    Fast,
    /// 2 ms × 3: the fastest detection; adaptive detection still widens it
    /// on a path whose heartbeats arrive late.
    Tight,
}

impl HaProfile {
    pub const ALL: [HaProfile; 3] = [HaProfile::Default, HaProfile::Fast, HaProfile::Tight];

    /// The name the file and the command line use.
    pub fn as_str(self) -> &'static str {
        match self {
            HaProfile::Default => "default",
            HaProfile::Fast => "fast",
            HaProfile::Tight => "tight",
        }
    }
}

impl std::fmt::Display for HaProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so a width in a format string (a table column) applies.
        f.pad(self.as_str())
    }
}

impl std::str::FromStr for HaProfile {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        HaProfile::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| format!("unknown HA profile `{s}`: use `default`, `fast` or `tight`"))
    }
}

/// An interval in milliseconds that is never 0: a 0 interval would send
/// heartbeats (or probes) in a busy loop and make every deadline already
/// due. Refused when the file is parsed, located.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "u32")]
pub struct IntervalMs(NonZeroU32);

/// A count that is never 0: 0 missed heartbeats would declare the peer
/// lost before any heartbeat is due, a flap limit of 0 would allow no
/// promotion at all. Refused when the file is parsed, located.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "u32")]
pub struct Count(NonZeroU32);

/// `policy.sessions.max`: never 0 (a node that holds no session forwards
/// nothing statefully). Refused when the file is parsed, located.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize)]
#[serde(try_from = "u32")]
pub struct SessionCount(NonZeroU32);

/// The error of a 0 where only 1 or more makes sense. `parse` turns it into
/// a diagnostic naming the field and how to fix it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{what} of 0 {}", ZeroError::MUST)]
pub struct ZeroError {
    what: &'static str,
}

impl ZeroError {
    /// The words `parse` recognizes to give the fix.
    pub const MUST: &'static str = "is not allowed: it must be 1 or more";
}

macro_rules! non_zero {
    ($t:ident, $what:literal) => {
        impl $t {
            /// `None` for 0.
            pub const fn new(v: u32) -> Option<$t> {
                match NonZeroU32::new(v) {
                    Some(n) => Some($t(n)),
                    None => None,
                }
            }
            /// For constants: fails to compile (or panics) on 0.
            pub const fn of(v: u32) -> $t {
                match $t::new(v) {
                    Some(t) => t,
                    None => panic!(concat!($what, " of 0")),
                }
            }
            pub const fn get(self) -> u32 {
                self.0.get()
            }
        }
        impl TryFrom<u32> for $t {
            type Error = ZeroError;
            fn try_from(v: u32) -> Result<$t, ZeroError> {
                $t::new(v).ok_or(ZeroError { what: $what })
            }
        }
        impl From<$t> for u32 {
            fn from(v: $t) -> u32 {
                v.get()
            }
        }
        impl From<$t> for u64 {
            fn from(v: $t) -> u64 {
                u64::from(v.get())
            }
        }
        impl From<$t> for NonZeroU32 {
            fn from(v: $t) -> NonZeroU32 {
                v.0
            }
        }
        impl std::fmt::Display for $t {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                self.0.fmt(f)
            }
        }
    };
}

non_zero!(IntervalMs, "an interval");
non_zero!(Count, "a count");
non_zero!(SessionCount, "a session count");

impl IntervalMs {
    pub fn duration(self) -> Duration {
        Duration::from_millis(u64::from(self))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlapLimit {
    pub transitions: Count,
    pub window_s: u32,
}

impl Default for FlapLimit {
    fn default() -> Self {
        FlapLimit {
            transitions: Count::of(defaults::FLAP_TRANSITIONS),
            window_s: defaults::FLAP_WINDOW_S,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Garp {
    pub count: u32,
    pub interval_ms: u32,
}

impl Default for Garp {
    fn default() -> Self {
        Garp {
            count: 3,
            interval_ms: 100,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkMonitor {
    pub interfaces: Vec<EniRole>,
    #[serde(default)]
    pub failure: Failure,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMonitor {
    pub name: String,
    pub via: EniRole,
    pub targets: Vec<Ip>,
    #[serde(default)]
    pub failure: Failure,
    #[serde(default = "default_probe_interval")]
    pub interval_ms: IntervalMs,
    #[serde(default = "default_probe_misses")]
    pub misses: Count,
}

/// A monitor group fails when any member fails, or only when all do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Failure {
    #[default]
    Any,
    All,
}

// ---------------------------------------------------------------- nodes

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// The firewall instance this node runs on (its `cloud.instance` name).
    pub name: String,
    /// Higher wins the election; equal priorities go to the lower node id.
    pub priority: u8,
    /// File holding the pair's pre-shared key (32 bytes or more).
    pub key_file: String,
}

// ---------------------------------------------------------------- lab

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Lab {
    #[serde(rename = "host", default)]
    pub hosts: Vec<LabHost>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabHost {
    pub name: String,
    pub kind: HostKind,
    /// A server in the VPC sits in a vSwitch; an internet host has none.
    pub vswitch: Option<String>,
    pub ip: Ip,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKind {
    /// HTTP server that answers with the source address it saw.
    WebServer,
    /// Internet host that echoes the source address it saw.
    Echo,
    /// Internet client that runs probes and fetches.
    Client,
}

fn yes() -> bool {
    true
}
fn default_bandwidth() -> u32 {
    5
}
fn default_probe_interval() -> IntervalMs {
    IntervalMs::of(100)
}
fn default_probe_misses() -> Count {
    Count::of(3)
}
