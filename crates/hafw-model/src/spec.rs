//! The deployment file as written: one TOML document describing the cloud,
//! the policy the pair shares, each node, and the lab's test hosts.
//!
//! Every struct refuses unknown keys, so a typo is an error with its location
//! instead of a setting silently left at its default (style.md rule 5).

use serde::Deserialize;

use crate::addr::{Cidr, Ip, Prefix};

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
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    pub havip_members: usize,
    pub havips_per_instance: usize,
    pub havips_per_vpc: usize,
    pub route_entries: usize,
    pub havip_route_entries: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            havip_members: 10,
            havips_per_instance: 5,
            havips_per_vpc: 50,
            route_entries: 200,
            havip_route_entries: 5,
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
    pub heartbeat_interval_ms: Option<u32>,
    pub miss_count: Option<u32>,
    pub preempt: bool,
    pub preempt_hold_ms: u32,
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

impl Default for Ha {
    fn default() -> Self {
        Ha {
            profile: HaProfile::Default,
            heartbeat_interval_ms: None,
            miss_count: None,
            preempt: false,
            preempt_hold_ms: 60_000,
            promotion_hold_ms: 0,
            flap_limit: FlapLimit::default(),
            garp: Garp::default(),
            paths: vec![EniRole::Management, EniRole::Ha2],
            port: 28_780,
            link_monitors: Vec::new(),
            path_monitors: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HaProfile {
    #[default]
    Default,
    Fast,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlapLimit {
    pub transitions: u32,
    pub window_s: u32,
}

impl Default for FlapLimit {
    fn default() -> Self {
        FlapLimit {
            transitions: 6,
            window_s: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
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

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinkMonitor {
    pub interfaces: Vec<EniRole>,
    #[serde(default)]
    pub failure: Failure,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PathMonitor {
    pub name: String,
    pub via: EniRole,
    pub targets: Vec<Ip>,
    #[serde(default)]
    pub failure: Failure,
    #[serde(default = "default_probe_interval")]
    pub interval_ms: u32,
    #[serde(default = "default_probe_misses")]
    pub misses: u32,
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
fn default_probe_interval() -> u32 {
    100
}
fn default_probe_misses() -> u32 {
    3
}
