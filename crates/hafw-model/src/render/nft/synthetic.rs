//! Large, deterministic policies for load tests and benchmarks.

use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::addr::Prefix;
use crate::spec::{Action, Deployment, PortRange, Protocol, Rule};

/// `n` rules named `syn-00000`.., spread over `pairs` (from zone, to zone)
/// in blocks of 500. Actions and protocols change every 16 rules, so the
/// policy has long same-verdict runs broken by drops and rejects, as real
/// rule bases do; addresses and ports vary per rule and overlap now and
/// then. The same `n` and `pairs` always give the same rules.
pub fn synthetic_rules(n: usize, pairs: &[(&str, &str)]) -> Vec<Rule> {
    if pairs.is_empty() {
        return Vec::new();
    }
    (0..n)
        .map(|i| {
            let (from, to) = pairs[(i / 500) % pairs.len()];
            let block = mix(i as u64 / 16 + 0x5eed);
            let action = match block % 10 {
                0..=6 => Action::Accept,
                7 | 8 => Action::Drop,
                _ => Action::Reject,
            };
            let protocol = match (block >> 8) % 10 {
                0..=5 => Protocol::Tcp,
                6 | 7 => Protocol::Udp,
                8 => Protocol::Any,
                _ => Protocol::Icmp,
            };
            let h = mix(i as u64);
            let ports = match protocol {
                Protocol::Tcp | Protocol::Udp => ports(h >> 32),
                _ => Vec::new(),
            };
            Rule {
                name: format!("syn-{i:05}"),
                from: from.to_string(),
                to: to.to_string(),
                source: sources(h),
                destination: destinations(h >> 16),
                protocol,
                ports,
                action,
                log: false,
            }
        })
        .collect()
}

/// `base` with its rules replaced by `n` synthetic ones between every
/// ordered pair of its zones (or within its only zone, as in one-arm mode).
pub fn synthetic_deployment(base: &Deployment, n: usize) -> Deployment {
    let zones: Vec<&str> = base.policy.zones.iter().map(|z| z.name.as_str()).collect();
    let mut pairs: Vec<(&str, &str)> = Vec::new();
    for a in &zones {
        for b in &zones {
            if a != b || zones.len() == 1 {
                pairs.push((a, b));
            }
        }
    }
    let mut dep = base.clone();
    dep.policy.rules = synthetic_rules(n, &pairs);
    dep
}

/// splitmix64: a fixed, dependency-free mixer.
pub(super) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

fn prefix(a: u8, b: u8, c: u8, d: u8, len: u8) -> Prefix {
    let net = Ipv4Net::new(Ipv4Addr::new(a, b, c, d), len)
        .map(|n| n.trunc())
        .unwrap_or_default();
    Prefix(net)
}

fn sources(h: u64) -> Vec<Prefix> {
    let (b, c, d) = ((h >> 8) as u8, (h >> 16) as u8, (h >> 24) as u8);
    match h % 8 {
        0 | 1 => Vec::new(),
        2..=4 => vec![prefix(198, 18, c, d, 32)],
        5 | 6 => vec![prefix(198, 19, b, 0, 24)],
        _ => vec![prefix(198, 18, c, d, 32), prefix(198, 19, b, 0, 24)],
    }
}

fn destinations(h: u64) -> Vec<Prefix> {
    let (c, d) = ((h >> 8) as u8, (h >> 16) as u8);
    // Never empty: with an empty source too, a rule of protocol any would
    // match every packet and leave the rules after it dead.
    match h % 6 {
        0 => vec![prefix(172, 16, c, 0, 24)],
        1..=3 => vec![prefix(10, 0, 10, d, 32)],
        4 => vec![prefix(172, 16, c, d, 28)],
        _ => vec![prefix(10, 0, 10, d, 32), prefix(10, 0, 11, d, 32)],
    }
}

fn ports(h: u64) -> Vec<PortRange> {
    const COMMON: [u16; 6] = [22, 53, 80, 443, 3306, 8080];
    let one = |p: u16| PortRange { first: p, last: p };
    let high = 1024 + (h >> 8) as u16 % 60_000;
    match h % 8 {
        0 => Vec::new(),
        1..=4 => vec![one(COMMON[(h >> 4) as usize % COMMON.len()])],
        5 => vec![one(high)],
        6 => vec![PortRange {
            first: high,
            last: high.saturating_add(99),
        }],
        _ => vec![one(80), one(443)],
    }
}
