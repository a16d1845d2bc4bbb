//! `[policy.logging]`: which packets the ruleset logs, and where the
//! traffic log goes besides the node's file (`docs/logs.md`).
//!
//! In the policy, shared by the pair and carried by config sync, so both
//! nodes log the same traffic whichever is active. Read by the daemon at
//! start (`hafw run`); the ruleset's `log` statements follow every apply.

use std::net::SocketAddr;

use serde::Deserialize;

use crate::spec::Count;

/// The NFLOG group the ruleset logs to when `group` is left out.
pub const DEFAULT_GROUP: u16 = 17;
/// Records per second when `rate` is left out.
pub const DEFAULT_RATE: u32 = 200;
/// Records allowed at once above the rate when `burst` is left out.
pub const DEFAULT_BURST: u32 = 400;
/// The kernel's longest log prefix is 127 bytes (`NF_LOG_PREFIXLEN` 128
/// with its NUL); nft refuses a longer one, so validation does first.
pub const MAX_PREFIX: usize = 127;

/// `[policy.logging]` as written.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Logging {
    /// Log what each zone pair's default deny drops (and the input
    /// chain's final drop). Rules log only with `log = true`.
    pub default_deny: bool,
    /// The NFLOG group (`log group N`) the daemon reads.
    pub group: u16,
    /// Records per second the daemon writes, at most; the rest is counted
    /// as suppressed.
    pub rate: Count,
    /// Records allowed at once above the rate.
    pub burst: Count,
    /// A syslog collector that also gets every record (RFC 5424).
    pub syslog: Option<Syslog>,
}

impl Default for Logging {
    fn default() -> Self {
        Logging {
            default_deny: true,
            group: DEFAULT_GROUP,
            rate: Count::of(DEFAULT_RATE),
            burst: Count::of(DEFAULT_BURST),
            syslog: None,
        }
    }
}

/// `[policy.logging.syslog]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Syslog {
    /// `IP:port` of the collector, e.g. `"192.0.2.50:514"`.
    pub address: SocketAddr,
    #[serde(default)]
    pub transport: Transport,
}

/// UDP (RFC 5426, one message a datagram) or TCP (RFC 6587 octet
/// counting).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    #[default]
    Udp,
    Tcp,
}

impl Transport {
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Udp => "udp",
            Transport::Tcp => "tcp",
        }
    }
}

/// The prefix a logged rule's packets carry: the daemon reads the rule's
/// name back from it.
pub fn rule_prefix(name: &str) -> String {
    format!("rule {name}")
}

/// The prefix of a zone pair's default deny.
pub fn default_deny_prefix(from: &str, to: &str) -> String {
    format!("default deny {from} -> {to}")
}

/// The prefix of the input chain's final drop (traffic to the node itself).
pub fn input_deny_prefix(zone: &str) -> String {
    format!("default deny {zone} -> node")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(extra: &str) -> Result<crate::Deployment, String> {
        let text = format!("{}\n{extra}", crate::examples::SEED);
        crate::parse("seed", &text).map_err(|d| format!("{d:?}"))
    }

    #[test]
    fn defaults_log_the_default_deny_at_a_bounded_rate() {
        let dep = parse("").unwrap();
        assert_eq!(dep.policy.logging, Logging::default());
        assert!(dep.policy.logging.default_deny);
        assert!(dep.policy.rules.iter().all(|r| !r.log));
    }

    #[test]
    fn a_syslog_collector_and_rate_are_read() {
        let dep = parse(
            "[policy.logging]\nrate = 50\nburst = 10\n[policy.logging.syslog]\naddress = \"192.0.2.50:6514\"\ntransport = \"tcp\"\n",
        )
        .unwrap();
        let l = &dep.policy.logging;
        assert_eq!((l.rate.get(), l.burst.get()), (50, 10));
        let s = l.syslog.as_ref().unwrap();
        assert_eq!(s.address, "192.0.2.50:6514".parse().unwrap());
        assert_eq!(s.transport, Transport::Tcp);
    }

    #[test]
    fn bad_values_are_refused_with_their_field() {
        for (extra, word) in [
            ("[policy.logging]\nrate = 0\n", "rate"),
            ("[policy.logging]\nratee = 5\n", "ratee"),
            (
                "[policy.logging.syslog]\naddress = \"collector\"\n",
                "address",
            ),
            (
                "[policy.logging.syslog]\naddress = \"192.0.2.1:514\"\ntransport = \"tls\"\n",
                "transport",
            ),
        ] {
            let e = parse(extra).unwrap_err();
            assert!(e.contains(word), "{extra}: {e}");
        }
    }
}
