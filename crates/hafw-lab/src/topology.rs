//! The emulated VPC as data: every namespace, veth, address, route, rule,
//! neighbour and ruleset the lab creates, derived purely from a validated
//! deployment and a lab name. `lab up` applies it, `lab down` removes what it
//! names, the HAVIP controller reads it, and unit tests pin it.
//!
//! How the cloud's rules map onto the kernel (alicloud-havip.md):
//! - Layer 3 only: each ENI is a veth pair, instance end in the instance's
//!   namespace, far end in the VPC namespace. No bridge, so no instance ever
//!   sees another instance's ARP or broadcast.
//! - ARP is answered by the platform: every VPC end has the one platform MAC
//!   and proxy ARP on (with `proxy_arp_pvlan`, so same-link targets are
//!   answered too); vSwitch gateways are local addresses of the VPC namespace.
//!   The VPC itself never ARPs toward an instance: each ENI address has a
//!   permanent neighbour entry, as the platform knows every ENI's MAC.
//! - Per-vSwitch route tables: packets arriving from an ENI of vSwitch X
//!   look up X's table first (custom entries), then the main table (system
//!   routes: a /32 per ENI address and per owned HAVIP, the internet uplink).
//! - A HAVIP with no owner has no route, so its traffic is dropped.
//! - EIPs are stateless 1:1 NAT at the uplink (the VPC tracks no connection).
//! - Source/destination check: a set of (interface, address) pairs the ENI may
//!   use; the HAVIP controller adds an owned HAVIP to its owner's pairs.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use hafw_model::addr::{Cidr, Ip};
use hafw_model::render::security_group::{self, Ingress};
use hafw_model::spec::{Deployment, HostKind, NextHop};

/// The MAC the platform answers ARP with (ECS's gateway MAC, from captures).
pub const PLATFORM_MAC: [u8; 6] = [0xee, 0xff, 0xff, 0xff, 0xff, 0xff];
/// Infrastructure addresses of the VPC ↔ internet link (documentation range).
pub const UPLINK_VPC_IP: &str = "192.0.2.253";
pub const UPLINK_INET_IP: &str = "192.0.2.254";
/// Internet hosts route through this address on their router link.
pub const INET_ROUTER_IP: &str = "192.0.2.1";
/// First table id of the per-vSwitch route tables.
pub const TABLE_BASE: u32 = 100;
pub const RULE_PRIORITY: u32 = 100;
pub const VPC_TABLE: &str = "hafw_vpc";
/// The internet router's table: the EIPs' stateless 1:1 NAT.
pub const INET_TABLE: &str = "hafw_inet";
/// The metadata service's address, a local address of the VPC namespace.
pub const METADATA_IP: &str = crate::metadata::ADDR;
/// The security group's drop counter (what no rule accepted).
pub const SG_DROPPED: &str = "sg_dropped";

/// How a lab is built beyond what the deployment file says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Options {
    /// Instances start as a fresh ECS instance: only eth0 has its address
    /// (with the vSwitch's mask, as DHCP gives it) and a default route via
    /// its vSwitch gateway; the other NICs are up without an address, as a
    /// secondary ENI is before the guest configures it. hafw configures
    /// them itself. Otherwise every NIC has its address (the older lab).
    pub first_boot: bool,
    /// The firewalls' security group as the VPC enforces it; `None`: the
    /// rules rendered from the deployment (the same as the Terraform's).
    /// Tests change it to show what a missing rule does.
    pub security_group: Option<Vec<Ingress>>,
    /// The metadata service answers reads without a token too (the
    /// cloud's default); the lab's default requires one, so a node that
    /// works here works where the cloud enforces hardened mode.
    pub metadata_token_optional: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NsRole {
    Vpc,
    Internet,
    Instance(String),
    Host(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub name: String,
    pub role: NsRole,
}

/// One veth pair; `a` is the far (VPC or internet router) end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Veth {
    pub a_ns: String,
    pub a_name: String,
    pub a_mac: [u8; 6],
    pub b_ns: String,
    pub b_name: String,
    pub b_mac: [u8; 6],
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Addr {
    pub ns: String,
    pub dev: String,
    pub ip: Ip,
    pub prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub ns: String,
    pub dst: Cidr,
    pub via: Option<Ip>,
    pub dev: String,
    /// 254 is the main table.
    pub table: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub ns: String,
    pub iif: String,
    pub table: u32,
    pub priority: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Neighbour {
    pub ns: String,
    pub dev: String,
    pub ip: Ip,
    pub mac: [u8; 6],
}

/// An ENI as the VPC sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Port {
    pub eni: String,
    pub instance: String,
    pub vswitch: String,
    pub ip: Ip,
    pub mac: [u8; 6],
    /// The interface name at the VPC end.
    pub vpc_dev: String,
    /// Namespace and interface name at the instance end.
    pub ns: String,
    pub dev: String,
    pub source_dest_check: bool,
}

/// What the HAVIP controller needs to move one HAVIP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HavipSpec {
    pub name: String,
    pub ip: Ip,
    /// Member ENI names; instance members are expanded to their primary ENI.
    pub members: Vec<String>,
    /// (table, destination) of every custom route entry whose next hop it is.
    pub entries: Vec<(u32, Cidr)>,
    pub move_delay_ms: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostSpec {
    pub name: String,
    pub kind: HostKind,
    pub ns: String,
    pub ip: Ip,
    pub port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    pub lab: String,
    pub namespaces: Vec<Namespace>,
    pub veths: Vec<Veth>,
    pub addrs: Vec<Addr>,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    pub neighbours: Vec<Neighbour>,
    pub sysctls: Vec<(String, String, String)>,
    pub ports: Vec<Port>,
    pub havips: Vec<HavipSpec>,
    pub hosts: Vec<HostSpec>,
    /// The VPC namespace's ruleset (source/destination check, the
    /// firewalls' security group).
    pub vpc_nft: String,
    /// The internet router's ruleset (EIP NAT).
    pub inet_nft: String,
    /// The security group the VPC enforces, in counter order.
    pub security_group: Vec<(String, Ingress)>,
}

impl Topology {
    pub fn vpc_ns(&self) -> String {
        ns_name(&self.lab, "vpc")
    }
    pub fn inet_ns(&self) -> String {
        ns_name(&self.lab, "inet")
    }
    pub fn port(&self, eni: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.eni == eni)
    }
    pub fn port_by_vpc_dev(&self, dev: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.vpc_dev == dev)
    }
    pub fn host(&self, name: &str) -> Option<&HostSpec> {
        self.hosts.iter().find(|h| h.name == name)
    }
    /// The namespace of an instance or lab host, by its name in the file.
    pub fn ns_of(&self, name: &str) -> Option<String> {
        self.namespaces
            .iter()
            .find(|n| matches!(&n.role, NsRole::Instance(i) | NsRole::Host(i) if i == name))
            .map(|n| n.name.clone())
    }
}

/// Lab names become part of namespace and interface names.
pub fn check_lab_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 16
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !name.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(format!(
            "lab name `{name}` must be 1-16 characters of a-z, 0-9 and `-`, not starting with `-`; pass --name with such a name"
        ))
    }
}

/// `hafw-<lab>.<name>`: lab names have no `.`, so the prefix `hafw-<lab>.`
/// finds exactly one lab's namespaces, even after a crash lost its state.
pub fn ns_name(lab: &str, what: &str) -> String {
    format!("{}{what}", ns_prefix(lab))
}

pub fn ns_prefix(lab: &str) -> String {
    format!("hafw-{lab}.")
}

/// The short tag that starts every interface name the lab creates outside
/// an instance: the lab name itself when it fits, else a prefix and a hash,
/// so interface names stay within Linux's 15 characters.
pub fn dev_tag(lab: &str) -> String {
    if lab.len() <= 8 {
        lab.to_string()
    } else {
        format!("{}{:03x}", &lab[..5], fnv(lab) & 0xfff)
    }
}

fn fnv(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn mac(lab: &str, index: usize) -> [u8; 6] {
    let h = fnv(lab).to_be_bytes();
    // Locally administered, unicast; unique per lab and per interface.
    [0x02, h[0], h[1], h[2], (index >> 8) as u8, index as u8]
}

fn cidr(s: &str) -> Cidr {
    // Only called on literals written in this file.
    s.parse()
        .unwrap_or_else(|_| unreachable!("bad literal {s}"))
}

fn ip(s: &str) -> Ip {
    s.parse()
        .unwrap_or_else(|_| unreachable!("bad literal {s}"))
}

fn host_cidr(i: Ip) -> Cidr {
    Cidr(ipnet::Ipv4Net::from(i.0))
}

/// Builds the lab's topology from a validated deployment.
pub fn build(dep: &Deployment, lab: &str) -> Result<Topology, String> {
    build_with(dep, lab, &Options::default())
}

/// The NIC name of an instance's `k`th ENI (the file's order): an ECS guest
/// names its NICs in attach order, never by role.
pub fn nic_name(k: usize) -> String {
    format!("eth{k}")
}

/// As [`build`], with the lab's own options.
pub fn build_with(dep: &Deployment, lab: &str, opts: &Options) -> Result<Topology, String> {
    check_lab_name(lab)?;
    // The lab's own infrastructure addresses must not be claimed by the file.
    let infra = [INET_ROUTER_IP, UPLINK_VPC_IP, UPLINK_INET_IP];
    let claimed = dep
        .cloud
        .eips
        .iter()
        .map(|e| (e.ip, format!("EIP `{}`", e.name)))
        .chain(
            dep.lab
                .hosts
                .iter()
                .filter(|h| h.vswitch.is_none())
                .map(|h| (h.ip, format!("lab host `{}`", h.name))),
        );
    for (addr, what) in claimed {
        if infra.contains(&addr.to_string().as_str()) {
            return Err(format!(
                "{what} uses {addr}, which the lab keeps for its internet router ({}); choose another documentation address",
                infra.join(", ")
            ));
        }
    }
    let tag = dev_tag(lab);
    let vpc = ns_name(lab, "vpc");
    let inet = ns_name(lab, "inet");
    let mut t = Topology {
        lab: lab.to_string(),
        namespaces: vec![
            Namespace {
                name: vpc.clone(),
                role: NsRole::Vpc,
            },
            Namespace {
                name: inet.clone(),
                role: NsRole::Internet,
            },
        ],
        veths: vec![],
        addrs: vec![],
        routes: vec![],
        rules: vec![],
        neighbours: vec![],
        sysctls: vec![],
        ports: vec![],
        havips: vec![],
        hosts: vec![],
        vpc_nft: String::new(),
        inet_nft: String::new(),
        security_group: vec![],
    };
    let mut seen = BTreeMap::new();
    let mut claim = |name: &str, what: &str| -> Result<String, String> {
        if name == "vpc" || name == "inet" {
            return Err(format!(
                "{what} `{name}`: the lab reserves this name; rename it"
            ));
        }
        if let Some(other) = seen.insert(name.to_string(), what.to_string()) {
            return Err(format!(
                "{what} `{name}` has the same name as a {other}; the lab needs distinct names to name namespaces"
            ));
        }
        Ok(ns_name(lab, name))
    };
    for inst in &dep.cloud.instances {
        let ns = claim(&inst.name, "instance")?;
        t.namespaces.push(Namespace {
            name: ns,
            role: NsRole::Instance(inst.name.clone()),
        });
    }
    for h in &dep.lab.hosts {
        let ns = claim(&h.name, "lab host")?;
        t.namespaces.push(Namespace {
            name: ns.clone(),
            role: NsRole::Host(h.name.clone()),
        });
        t.hosts.push(HostSpec {
            name: h.name.clone(),
            kind: h.kind,
            ns,
            ip: h.ip,
            port: h.port,
        });
    }

    let table_of = |vswitch: &str| {
        dep.cloud
            .vswitches
            .iter()
            .position(|v| v.name == vswitch)
            .map(|i| TABLE_BASE + i as u32)
    };
    let mut n = 0usize;
    let next_dev = |n: &mut usize| {
        *n += 1;
        *n
    };

    // ENIs of instances, then servers: both are ports of a vSwitch.
    for (inst, eni) in dep.enis() {
        let i = next_dev(&mut n);
        let k = inst
            .enis
            .iter()
            .position(|e| e.name == eni.name)
            .unwrap_or(0);
        t.ports.push(Port {
            eni: eni.name.clone(),
            instance: inst.name.clone(),
            vswitch: eni.vswitch.clone(),
            ip: eni.primary_ip,
            mac: mac(lab, i),
            vpc_dev: format!("{tag}-e{i}"),
            ns: ns_name(lab, &inst.name),
            dev: nic_name(k),
            source_dest_check: eni.source_dest_check,
        });
    }
    for h in &dep.lab.hosts {
        if let Some(vs) = &h.vswitch {
            let i = next_dev(&mut n);
            t.ports.push(Port {
                eni: format!("{}-eni", h.name),
                instance: h.name.clone(),
                vswitch: vs.clone(),
                ip: h.ip,
                mac: mac(lab, i),
                vpc_dev: format!("{tag}-e{i}"),
                ns: ns_name(lab, &h.name),
                dev: "eth0".into(),
                source_dest_check: true,
            });
        }
    }

    // VPC namespace: platform ARP, forwarding, vSwitch gateways.
    let sys = |t: &mut Topology, ns: &str, k: &str, v: &str| {
        t.sysctls
            .push((ns.to_string(), k.to_string(), v.to_string()))
    };
    for ns in [&vpc, &inet] {
        sys(&mut t, ns, "net.ipv4.ip_forward", "1");
        sys(&mut t, ns, "net.ipv4.conf.all.rp_filter", "0");
        sys(&mut t, ns, "net.ipv4.conf.default.rp_filter", "0");
    }
    sys(&mut t, &vpc, "net.ipv4.conf.all.send_redirects", "0");
    sys(&mut t, &vpc, "net.ipv4.conf.default.send_redirects", "0");
    for v in &dep.cloud.vswitches {
        t.addrs.push(Addr {
            ns: vpc.clone(),
            dev: "lo".into(),
            ip: v.gateway(),
            prefix: 32,
        });
    }
    for p in t.ports.clone() {
        t.veths.push(Veth {
            a_ns: vpc.clone(),
            a_name: p.vpc_dev.clone(),
            a_mac: PLATFORM_MAC,
            b_ns: p.ns.clone(),
            b_name: p.dev.clone(),
            b_mac: p.mac,
        });
        let prefix = dep.vswitch(&p.vswitch).map_or(32, |v| v.cidr.prefix_len());
        let firewall = dep.instance(&p.instance).is_some();
        if !(opts.first_boot && firewall && p.dev != nic_name(0)) {
            t.addrs.push(Addr {
                ns: p.ns.clone(),
                dev: p.dev.clone(),
                ip: p.ip,
                prefix,
            });
        }
        for (k, v) in [
            ("proxy_arp", "1"),
            ("proxy_arp_pvlan", "1"),
            ("rp_filter", "0"),
        ] {
            sys(&mut t, &vpc, &format!("net.ipv4.conf.{}.{k}", p.vpc_dev), v);
        }
        // Linux delays proxy ARP replies by up to 0.8 s at random; the
        // platform answers at once.
        sys(
            &mut t,
            &vpc,
            &format!("net.ipv4.neigh.{}.proxy_delay", p.vpc_dev),
            "0",
        );
        t.neighbours.push(Neighbour {
            ns: vpc.clone(),
            dev: p.vpc_dev.clone(),
            ip: p.ip,
            mac: p.mac,
        });
        t.routes.push(Route {
            ns: vpc.clone(),
            dst: host_cidr(p.ip),
            via: None,
            dev: p.vpc_dev.clone(),
            table: 254,
        });
        if let Some(table) = table_of(&p.vswitch) {
            t.rules.push(Rule {
                ns: vpc.clone(),
                iif: p.vpc_dev.clone(),
                table,
                priority: RULE_PRIORITY,
            });
        }
    }
    // A fresh instance has DHCP's default route on eth0. The older lab
    // addresses every NIC but routes nothing; it still reaches the
    // metadata service by eth0, as every instance does.
    for inst in &dep.cloud.instances {
        let Some(vs) = inst.enis.first().and_then(|e| dep.vswitch(&e.vswitch)) else {
            continue;
        };
        t.routes.push(Route {
            ns: ns_name(lab, &inst.name),
            dst: cidr(if opts.first_boot {
                "0.0.0.0/0"
            } else {
                "100.100.100.200/32"
            }),
            via: Some(vs.gateway()),
            dev: nic_name(0),
            table: 254,
        });
    }
    // The metadata service answers on the VPC's own address.
    t.addrs.push(Addr {
        ns: vpc.clone(),
        dev: "lo".into(),
        ip: ip(METADATA_IP),
        prefix: 32,
    });
    // Servers (lab hosts in a vSwitch) route by their vSwitch gateway, as on ECS.
    for h in &dep.lab.hosts {
        let Some(vs) = h.vswitch.as_deref().and_then(|v| dep.vswitch(v)) else {
            continue;
        };
        t.routes.push(Route {
            ns: ns_name(lab, &h.name),
            dst: cidr("0.0.0.0/0"),
            via: Some(vs.gateway()),
            dev: "eth0".into(),
            table: 254,
        });
    }

    // Custom route tables: entries to ENIs and instances are fixed; HAVIP
    // entries appear when the HAVIP gets an owner.
    for rt in &dep.cloud.route_tables {
        for vs in &rt.vswitches {
            let Some(table) = table_of(vs) else { continue };
            for e in &rt.entries {
                let eni = match &e.next_hop {
                    NextHop::Havip(_) => continue,
                    NextHop::Eni(name) => name.clone(),
                    NextHop::Instance(name) => {
                        match dep.instance(name).and_then(|i| i.enis.first()) {
                            Some(eni) => eni.name.clone(),
                            None => continue,
                        }
                    }
                };
                if let Some(p) = t.port(&eni).cloned() {
                    t.routes.push(Route {
                        ns: vpc.clone(),
                        dst: e.destination,
                        via: Some(p.ip),
                        dev: p.vpc_dev,
                        table,
                    });
                }
            }
        }
    }
    for h in &dep.cloud.havips {
        let members = h
            .members
            .iter()
            .filter_map(|m| match dep.eni(m) {
                Some(_) => Some(m.clone()),
                None => dep
                    .instance(m)
                    .and_then(|i| i.enis.first())
                    .map(|e| e.name.clone()),
            })
            .collect();
        let mut entries = vec![];
        for rt in &dep.cloud.route_tables {
            for e in rt
                .entries
                .iter()
                .filter(|e| e.next_hop == NextHop::Havip(h.name.clone()))
            {
                for vs in &rt.vswitches {
                    if let Some(table) = table_of(vs) {
                        entries.push((table, e.destination));
                    }
                }
            }
        }
        t.havips.push(HavipSpec {
            name: h.name.clone(),
            ip: h.ip,
            members,
            entries,
            move_delay_ms: h.move_delay_ms,
        });
    }

    // The uplink between the VPC and the internet router.
    let up_vpc = format!("{tag}-up");
    let up_inet = format!("{tag}-vpc");
    t.veths.push(Veth {
        a_ns: vpc.clone(),
        a_name: up_vpc.clone(),
        a_mac: mac(lab, 0xf00),
        b_ns: inet.clone(),
        b_name: up_inet.clone(),
        b_mac: mac(lab, 0xf01),
    });
    t.addrs.push(Addr {
        ns: vpc.clone(),
        dev: up_vpc.clone(),
        ip: ip(UPLINK_VPC_IP),
        prefix: 24,
    });
    t.addrs.push(Addr {
        ns: inet.clone(),
        dev: up_inet.clone(),
        ip: ip(UPLINK_INET_IP),
        prefix: 24,
    });
    t.routes.push(Route {
        ns: vpc.clone(),
        dst: cidr("0.0.0.0/0"),
        via: Some(ip(UPLINK_INET_IP)),
        dev: up_vpc.clone(),
        table: 254,
    });
    for e in &dep.cloud.eips {
        t.routes.push(Route {
            ns: inet.clone(),
            dst: host_cidr(e.ip),
            via: Some(ip(UPLINK_VPC_IP)),
            dev: up_inet.clone(),
            table: 254,
        });
        // After the router's NAT the destination is the HAVIP.
        if let Some(h) = e.havip.as_deref().and_then(|h| dep.havip(h)) {
            t.routes.push(Route {
                ns: inet.clone(),
                dst: host_cidr(h.ip),
                via: Some(ip(UPLINK_VPC_IP)),
                dev: up_inet.clone(),
                table: 254,
            });
        }
    }
    // Internet hosts: a /32 each behind the internet router.
    t.addrs.push(Addr {
        ns: inet.clone(),
        dev: "lo".into(),
        ip: ip(INET_ROUTER_IP),
        prefix: 32,
    });
    for h in dep.lab.hosts.iter().filter(|h| h.vswitch.is_none()) {
        let i = next_dev(&mut n);
        let ns = ns_name(lab, &h.name);
        let dev = format!("{tag}-h{i}");
        t.veths.push(Veth {
            a_ns: inet.clone(),
            a_name: dev.clone(),
            a_mac: mac(lab, 0x800 + i),
            b_ns: ns.clone(),
            b_name: "eth0".into(),
            b_mac: mac(lab, i),
        });
        t.addrs.push(Addr {
            ns: ns.clone(),
            dev: "eth0".into(),
            ip: h.ip,
            prefix: 32,
        });
        t.routes.push(Route {
            ns: ns.clone(),
            dst: cidr("0.0.0.0/0"),
            via: Some(ip(INET_ROUTER_IP)),
            dev: "eth0".into(),
            table: 254,
        });
        t.routes.push(Route {
            ns: inet.clone(),
            dst: host_cidr(h.ip),
            via: None,
            dev,
            table: 254,
        });
    }

    let rules = opts
        .security_group
        .clone()
        .unwrap_or_else(|| security_group::ingress(dep));
    t.security_group = rules
        .into_iter()
        .enumerate()
        .map(|(i, r)| (sg_counter(i, &r), r))
        .collect();
    t.vpc_nft = vpc_ruleset(dep, &t, &up_vpc);
    t.inet_nft = inet_ruleset(dep, &up_inet);
    Ok(t)
}

/// A rule's counter name: its index and what it accepts, in the
/// characters nft allows (`sg3_tcp_10_0_3_12_32_28780`).
pub fn sg_counter(i: usize, r: &Ingress) -> String {
    let ports = match r.ports {
        None => "any".to_string(),
        Some(p) if p.first == p.last => p.first.to_string(),
        Some(p) => format!("{}_{}", p.first, p.last),
    };
    let cidr: String = r
        .cidr
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("sg{i}_{}_{cidr}_{ports}", r.proto)
}

/// One security-group rule as an nft match.
fn sg_match(r: &Ingress) -> String {
    let src = if r.cidr == "0.0.0.0/0" {
        String::new()
    } else {
        format!("ip saddr {} ", r.cidr)
    };
    let ports = |p: &hafw_model::spec::PortRange| {
        if p.first == p.last {
            p.first.to_string()
        } else {
            format!("{}-{}", p.first, p.last)
        }
    };
    match (r.proto, r.ports) {
        ("tcp" | "udp", Some(p)) => format!("{src}{} dport {}", r.proto, ports(&p)),
        ("tcp" | "udp", None) => format!("{src}meta l4proto {}", r.proto),
        ("icmp", _) => format!("{src}meta l4proto icmp"),
        _ => src,
    }
}

/// The internet router's ruleset: each EIP bound to a HAVIP is a stateless
/// 1:1 NAT, as the cloud's gateway does it. It sits outside the VPC so the
/// VPC sees private addresses only and can track connections for its
/// security groups.
fn inet_ruleset(dep: &Deployment, from_vpc: &str) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "table ip {INET_TABLE} {{}}\ndelete table ip {INET_TABLE}\ntable ip {INET_TABLE} {{"
    );
    let _ = writeln!(s, "  chain eip_prerouting {{\n    type filter hook prerouting priority raw; policy accept;\n    notrack");
    for e in &dep.cloud.eips {
        let Some(h) = e.havip.as_deref().and_then(|h| dep.havip(h)) else {
            continue;
        };
        let _ = writeln!(
            s,
            "    iifname != \"{from_vpc}\" ip daddr {} ip daddr set {}",
            e.ip, h.ip
        );
        let _ = writeln!(
            s,
            "    iifname \"{from_vpc}\" ip saddr {} ip saddr set {}",
            h.ip, e.ip
        );
    }
    let _ = writeln!(s, "  }}\n}}");
    s
}

fn vpc_ruleset(dep: &Deployment, t: &Topology, uplink: &str) -> String {
    let mut s = String::new();
    let checked: Vec<&Port> = t.ports.iter().filter(|p| p.source_dest_check).collect();
    let _ = writeln!(
        s,
        "table ip {VPC_TABLE} {{}}\ndelete table ip {VPC_TABLE}\ntable ip {VPC_TABLE} {{"
    );
    let _ = writeln!(s, "  set checked {{\n    type ifname");
    if !checked.is_empty() {
        let names: Vec<String> = checked
            .iter()
            .map(|p| format!("\"{}\"", p.vpc_dev))
            .collect();
        let _ = writeln!(s, "    elements = {{ {} }}", names.join(", "));
    }
    let _ = writeln!(s, "  }}\n  set allowed {{\n    type ifname . ipv4_addr");
    if !checked.is_empty() {
        let pairs: Vec<String> = checked
            .iter()
            .map(|p| format!("\"{}\" . {}", p.vpc_dev, p.ip))
            .collect();
        let _ = writeln!(s, "    elements = {{ {} }}", pairs.join(", "));
    }
    let _ = writeln!(s, "  }}");
    // The firewalls' ENIs: members of the one security group.
    let guarded: Vec<String> = t
        .ports
        .iter()
        .filter(|p| dep.nodes.iter().any(|n| n.name == p.instance))
        .map(|p| format!("\"{}\"", p.vpc_dev))
        .collect();
    let _ = writeln!(s, "  set sg_members {{\n    type ifname");
    if !guarded.is_empty() {
        let _ = writeln!(s, "    elements = {{ {} }}", guarded.join(", "));
    }
    let _ = writeln!(s, "  }}");
    let _ = writeln!(
        s,
        "  counter spoofed {{}}\n  counter not_for_eni {{}}\n  counter no_eip {{}}\n  counter {SG_DROPPED} {{}}"
    );
    for (name, _) in &t.security_group {
        let _ = writeln!(s, "  counter {name} {{}}");
    }
    // Sources are checked before anything else sees the packet.
    let _ = writeln!(
        s,
        "  chain vpc_prerouting {{\n    type filter hook prerouting priority raw; policy accept;"
    );
    let _ = writeln!(
        s,
        "    iifname @checked iifname . ip saddr != @allowed counter name spoofed drop"
    );
    let _ = writeln!(s, "  }}");
    // Only a HAVIP bound to an EIP reaches the internet (the router
    // rewrites it to the EIP).
    let eip_havips: Vec<String> = dep
        .cloud
        .eips
        .iter()
        .filter_map(|e| e.havip.as_deref().and_then(|h| dep.havip(h)))
        .map(|h| h.ip.to_string())
        .collect();
    let _ = writeln!(
        s,
        "  chain vpc_forward {{\n    type filter hook forward priority filter; policy accept;"
    );
    let _ = writeln!(
        s,
        "    oifname @checked oifname . ip daddr != @allowed counter name not_for_eni drop"
    );
    if eip_havips.is_empty() {
        let _ = writeln!(s, "    oifname \"{uplink}\" counter name no_eip drop");
    } else {
        let _ = writeln!(
            s,
            "    oifname \"{uplink}\" ip saddr != {{ {} }} counter name no_eip drop",
            eip_havips.join(", ")
        );
    }
    let _ = writeln!(s, "  }}");
    // The security group: stateful (replies and related ICMP pass), each
    // rule counted, the rest dropped and counted (inner access Drop: even
    // the other firewall needs a rule). Traffic from the VPC itself (the
    // metadata service's replies) is output, not forward: the cloud's
    // own services are not filtered either.
    let _ = writeln!(
        s,
        "  chain vpc_security_group {{\n    type filter hook forward priority filter + 10; policy accept;"
    );
    let _ = writeln!(s, "    oifname != @sg_members accept");
    let _ = writeln!(s, "    ct state established,related accept");
    for (name, r) in &t.security_group {
        let _ = writeln!(s, "    {} counter name {name} accept", sg_match(r));
    }
    let _ = writeln!(s, "    counter name {SG_DROPPED} drop");
    let _ = writeln!(s, "  }}\n}}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seed() -> Deployment {
        let text = hafw_model::examples::SEED;
        hafw_model::parse("alicloud-havip.toml", text).expect("seed example validates")
    }

    #[test]
    fn every_namespace_and_uplink_carries_the_lab_name() {
        let t = build(&seed(), "t1").unwrap();
        assert!(t.namespaces.iter().all(|n| n.name.starts_with("hafw-t1.")));
        assert!(t.veths.iter().all(|v| v.a_name.starts_with("t1-")));
        assert!(t
            .veths
            .iter()
            .all(|v| v.a_name.len() <= 15 && v.b_name.len() <= 15));
        assert_eq!(t.namespaces.len(), 2 + 2 + 3);
    }

    #[test]
    fn long_lab_names_get_a_short_distinct_tag() {
        assert_eq!(dev_tag("seed"), "seed");
        let a = dev_tag("failover-bench-1");
        let b = dev_tag("failover-bench-2");
        assert_ne!(a, b);
        assert!(a.len() <= 8);
    }

    #[test]
    fn bad_lab_names_are_refused() {
        assert!(check_lab_name("Seed").is_err());
        assert!(check_lab_name("").is_err());
        assert!(check_lab_name("a-very-long-lab-name-indeed").is_err());
    }

    #[test]
    fn havip_entries_follow_route_tables() {
        let t = build(&seed(), "t1").unwrap();
        let internal = t.havips.iter().find(|h| h.name == "internal").unwrap();
        assert_eq!(internal.members, vec!["fw-a-trust", "fw-b-trust"]);
        // servers is the fifth vSwitch: table 104.
        assert_eq!(internal.entries, vec![(104, "0.0.0.0/0".parse().unwrap())]);
        // No route to a HAVIP exists before an announcement.
        assert!(!t
            .routes
            .iter()
            .any(|r| r.dst.0.addr().to_string() == "10.0.2.100"));
    }

    #[test]
    fn vpc_ruleset_maps_the_eip_both_ways_and_checks_sources() {
        let t = build(&seed(), "t1").unwrap();
        assert!(t
            .inet_nft
            .contains("ip daddr 203.0.113.10 ip daddr set 10.0.1.100"));
        assert!(t
            .inet_nft
            .contains("ip saddr 10.0.1.100 ip saddr set 203.0.113.10"));
        // Firewall data ENIs have the check off; management ENIs and the server have it on.
        let web = t.port("web-eni").unwrap();
        assert!(t
            .vpc_nft
            .contains(&format!("\"{}\" . 10.0.10.10", web.vpc_dev)));
        let untrust = t.port("fw-a-untrust").unwrap();
        let checked = t.vpc_nft.split("set sg_members").next().unwrap();
        assert!(!checked.contains(&format!("\"{}\"", untrust.vpc_dev)));
    }

    #[test]
    fn instances_get_cloud_nic_names_with_distinct_macs() {
        let t = build(&seed(), "t1").unwrap();
        let a: Vec<&Port> = t.ports.iter().filter(|p| p.instance == "fw-a").collect();
        let names: Vec<&str> = a.iter().map(|p| p.dev.as_str()).collect();
        assert_eq!(names, ["eth0", "eth1", "eth2", "eth3"]);
        let mut macs: Vec<[u8; 6]> = t.ports.iter().map(|p| p.mac).collect();
        assert!(
            macs.iter().all(|m| m[0] & 0x03 == 0x02),
            "locally administered unicast"
        );
        macs.sort();
        macs.dedup();
        assert_eq!(macs.len(), t.ports.len());
        // Another lab, other MACs.
        let u = build(&seed(), "t2").unwrap();
        assert!(u
            .ports
            .iter()
            .all(|p| t.ports.iter().all(|q| q.mac != p.mac)));
    }

    #[test]
    fn first_boot_addresses_only_eth0_and_routes_by_its_gateway() {
        let opts = Options {
            first_boot: true,
            ..Options::default()
        };
        let t = build_with(&seed(), "t1", &opts).unwrap();
        let ns = ns_name("t1", "fw-a");
        let addrs: Vec<&str> = t
            .addrs
            .iter()
            .filter(|a| a.ns == ns)
            .map(|a| a.dev.as_str())
            .collect();
        assert_eq!(addrs, ["eth0"]);
        let mgmt = seed().instance("fw-a").unwrap().enis[0].vswitch.clone();
        let gw = seed().vswitch(&mgmt).unwrap().gateway();
        assert!(t.routes.iter().any(|r| r.ns == ns
            && r.dev == "eth0"
            && r.via == Some(gw)
            && r.dst.prefix_len() == 0));
        // Servers keep their address and route either way.
        let web = ns_name("t1", "web");
        assert!(t.addrs.iter().any(|a| a.ns == web));
    }

    #[test]
    fn the_vpc_enforces_the_rendered_security_group_on_firewall_enis() {
        let dep = seed();
        let t = build(&dep, "t1").unwrap();
        let rules = security_group::ingress(&dep);
        assert_eq!(t.security_group.len(), rules.len());
        for (name, r) in &t.security_group {
            assert!(
                t.vpc_nft.contains(&format!("counter name {name} accept")),
                "{name}"
            );
            assert!(t.vpc_nft.contains(&sg_match(r)));
        }
        assert!(t.vpc_nft.contains("ct state established,related accept"));
        assert!(t
            .vpc_nft
            .contains(&format!("counter name {SG_DROPPED} drop")));
        // Members: every firewall ENI, no server.
        let fw = t.port("fw-b-ha2").unwrap();
        let web = t.port("web-eni").unwrap();
        let members = t.vpc_nft.split("set sg_members").nth(1).unwrap();
        let members = members.split('}').next().unwrap();
        assert!(members.contains(&format!("\"{}\"", fw.vpc_dev)));
        assert!(!members.contains(&format!("\"{}\"", web.vpc_dev)));
        // A rule taken out is gone from the VPC.
        let mut fewer = rules.clone();
        let gone = fewer.remove(0);
        let opts = Options {
            security_group: Some(fewer),
            ..Options::default()
        };
        let u = build_with(&dep, "t1", &opts).unwrap();
        assert_eq!(u.security_group.len(), rules.len() - 1);
        assert!(!u.security_group.iter().any(|(_, r)| *r == gone));
    }

    #[test]
    fn the_vpc_tracks_connections_and_the_router_does_the_eip_nat() {
        let t = build(&seed(), "t1").unwrap();
        assert!(
            !t.vpc_nft.contains("notrack"),
            "the security group needs conntrack"
        );
        assert!(!t.vpc_nft.contains("ip daddr set"));
        assert!(t.inet_nft.contains("notrack"));
        assert!(t
            .addrs
            .iter()
            .any(|a| a.ns == t.vpc_ns() && a.ip.to_string() == METADATA_IP));
    }
}
