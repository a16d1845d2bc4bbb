//! The VPC's CIDR block (VPC API 2016-04-28, `CreateVpc`, CidrBlock; the
//! current page says a mask of 8 to 28 bits, the page before it (help
//! doc-detail 35737) said 8 to 24: /25 to /28 are newer, and accepted).
//!
//! The cloud also takes a user CIDR (anything but 100.64.0.0/10,
//! 224.0.0.0/4, 127.0.0.0/8 and 169.254.0.0/16). This validator does not:
//! a VPC's own block is routed inside the VPC before any route table
//! entry, so a VPC that covers public addresses makes those addresses
//! unreachable from behind the firewall (the system route wins over the
//! default route to the HAVIP), which a perimeter firewall never wants;
//! and a block that spans two private ranges (10.0.0.0/7) is not one of
//! them. A deployment needing a user CIDR is a case to add on purpose.

use ipnet::Ipv4Net;

use super::context::{Context, Report};

/// The mask lengths `CreateVpc` accepts.
pub const PREFIXES: std::ops::RangeInclusive<u8> = 8..=28;

/// RFC 1918's blocks, the ones the cloud calls standard.
const PRIVATE: [&str; 3] = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"];

/// Blocks the cloud refuses even as a user CIDR, with why.
const RESERVED: [(&str, &str); 4] = [
    (
        "100.64.0.0/10",
        "the cloud's own services (the metadata service at 100.100.100.200 among them)",
    ),
    ("224.0.0.0/4", "multicast"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local"),
];

fn net(s: &str) -> Ipv4Net {
    // The tables above are literals of this file; a typo in them fails
    // every test, never a user's file.
    s.parse().unwrap_or_else(|_| Ipv4Net::default())
}

pub(super) fn check(cx: &Context, r: &mut Report) {
    let cidr = cx.dep.cloud.vpc.cidr;
    let at = "cloud.vpc.cidr";
    let len = cidr.prefix_len();
    if !PREFIXES.contains(&len) {
        r.error(
            at,
            format!("the VPC CIDR {cidr} is a /{len}; the cloud accepts /8 to /28 (CreateVpc)"),
            "choose a mask from /8 to /28, for example 10.0.0.0/16",
        );
    }
    if let Some((block, what)) = RESERVED
        .iter()
        .find(|(b, _)| net(b).contains(&cidr.0) || cidr.0.contains(&net(b)))
    {
        r.error(
            at,
            format!("the VPC CIDR {cidr} overlaps {block}, which the cloud reserves for {what}"),
            "choose a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16",
        );
        return;
    }
    if PRIVATE.iter().any(|p| net(p).contains(&cidr.0)) {
        return;
    }
    let covers: Vec<&str> = (PRIVATE.iter().copied())
        .filter(|p| cidr.0.contains(&net(p)))
        .collect();
    let message = if covers.is_empty() {
        format!(
            "the VPC CIDR {cidr} is outside 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16; hafw refuses a user CIDR: the VPC would route those addresses itself, so hosts behind the firewall could never reach them on the internet"
        )
    } else {
        format!(
            "the VPC CIDR {cidr} covers {} and addresses outside the private ranges; a VPC block must lie inside one of 10.0.0.0/8, 172.16.0.0/12 and 192.168.0.0/16",
            covers.join(" and ")
        )
    };
    r.error(
        at,
        message,
        "choose a block inside 10.0.0.0/8, 172.16.0.0/12 or 192.168.0.0/16, for example 10.0.0.0/16",
    );
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, seed_edits};

    /// The seed with the VPC (and, where needed, every vSwitch) moved.
    fn with_vpc(cidr: &str) -> Vec<String> {
        messages(&seed_edits(&[(
            r#"cidr = "10.0.0.0/16""#,
            &format!(r#"cidr = "{cidr}""#),
        )]))
        .into_iter()
        .filter(|m| m.starts_with("the VPC CIDR"))
        .collect()
    }

    #[test]
    fn private_blocks_from_8_to_28_are_accepted() {
        for ok in [
            "10.0.0.0/8",
            "10.0.0.0/16",
            "172.16.0.0/12",
            "192.168.0.0/16",
            "10.0.0.0/28",
        ] {
            assert_eq!(with_vpc(ok), Vec::<String>::new(), "{ok}");
        }
    }

    #[test]
    fn masks_outside_8_to_28_are_refused() {
        let m = with_vpc("10.0.0.0/29");
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].contains("is a /29; the cloud accepts /8 to /28"),
            "{m:?}"
        );
    }

    #[test]
    fn a_block_spanning_two_ranges_is_refused() {
        let m = with_vpc("10.0.0.0/7");
        assert!(m.iter().any(|m| m.contains("is a /7")), "{m:?}");
        assert!(
            m.iter()
                .any(|m| m.contains("covers 10.0.0.0/8 and addresses outside")),
            "{m:?}"
        );
    }

    #[test]
    fn the_clouds_reserved_blocks_are_refused() {
        for (bad, what) in [
            ("100.64.0.0/16", "the cloud's own services"),
            ("100.100.0.0/16", "100.64.0.0/10"),
            ("169.254.0.0/16", "link-local"),
            ("127.0.0.0/16", "loopback"),
            ("100.0.0.0/8", "100.64.0.0/10"),
        ] {
            let m = with_vpc(bad);
            assert_eq!(m.len(), 1, "{bad}: {m:?}");
            assert!(
                m[0].contains("reserves") && m[0].contains(what),
                "{bad}: {m:?}"
            );
        }
    }

    #[test]
    fn a_user_cidr_is_refused_with_why() {
        let m = with_vpc("203.0.113.0/24");
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(m[0].contains("refuses a user CIDR"), "{m:?}");
    }
}
