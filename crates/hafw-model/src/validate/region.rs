//! The region and its zones. A zone id is its region's id followed by a
//! letter, with a dash (`cn-hangzhou-h`) or without (`ap-southeast-1a`)
//! (alicloud-havip.md, "Learned since"); a zone of another region, or an
//! unknown region, would fail only at `terraform apply`.

use super::context::{Context, Report};

/// The regions the provider knows: `ValidRegions` in
/// aliyun/terraform-provider-alicloud `alicloud/connectivity/regions.go`
/// at commit 33087025ad51c844c0d5e22c7a1068bb8d593795, in its order. A
/// region opened since is added here (and refused until it is).
pub const REGIONS: &[&str] = &[
    "cn-hangzhou",
    "cn-qingdao",
    "cn-beijing",
    "cn-shenzhen",
    "cn-hongkong",
    "cn-shanghai",
    "cn-zhangjiakou",
    "cn-huhehaote",
    "cn-chengdu",
    "cn-heyuan",
    "cn-wulanchabu",
    "cn-guangzhou",
    "cn-nanjing",
    "us-west-1",
    "us-east-1",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ap-south-1",
    "me-east-1",
    "me-central-1",
    "eu-central-1",
    "eu-west-1",
    "cn-north-2-gov-1",
    "cn-shenzhen-finance-1",
    "cn-szfinance",
    "cn-shenzhen-finance",
    "cn-shanghai-finance-1-pub",
    "cn-shanghai-finance-1",
    "cn-hangzhou-finance",
    "cn-hzfinance",
    "cn-hzjbp",
    "cn-beijing-finance-1",
    "cn-beijing-finance-1-pub",
];

pub(super) fn check(cx: &Context, r: &mut Report) {
    let c = &cx.dep.cloud;
    if !REGIONS.contains(&c.region.as_str()) {
        r.error(
            "cloud.region",
            format!(
                "region `{}` is not one the provider knows (the nearest: {})",
                c.region,
                nearest(&c.region).join(", ")
            ),
            "write a region id such as cn-hangzhou (the known ones are listed in crates/hafw-model/src/validate/region.rs, from the Terraform provider)",
        );
        return;
    }
    for (i, z) in c.zones.iter().enumerate() {
        if !in_region(z, &c.region) {
            r.error(
                format!("cloud.zones.{i}"),
                format!(
                    "zone `{z}` is not a zone of region `{}`; a zone id is its region's id and a letter (`{}-h`, `ap-southeast-1a`)",
                    c.region, c.region
                ),
                format!("use a zone of {}, or set cloud.region to the zone's region", c.region),
            );
        }
    }
}

/// Whether `zone` is `region` followed by one letter, with or without a
/// dash.
pub fn in_region(zone: &str, region: &str) -> bool {
    let Some(rest) = zone.strip_prefix(region) else {
        return false;
    };
    let rest = rest.strip_prefix('-').unwrap_or(rest);
    rest.len() == 1 && rest.bytes().all(|b| b.is_ascii_lowercase())
}

/// The three known regions closest to `name` by edit distance.
fn nearest(name: &str) -> Vec<&'static str> {
    let mut all: Vec<(usize, &str)> = REGIONS.iter().map(|r| (distance(name, r), *r)).collect();
    all.sort();
    all.into_iter().take(3).map(|(_, r)| r).collect()
}

/// Levenshtein distance over bytes (region ids are ASCII; a name that is
/// not only costs more). Bounded: file values are short, and a long one is
/// cut at 64 bytes.
fn distance(a: &str, b: &str) -> usize {
    let (a, b) = (&a.as_bytes()[..a.len().min(64)], b.as_bytes());
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::super::testing::{messages, seed_edits};
    use super::*;

    #[test]
    fn zones_belong_to_their_region() {
        assert!(in_region("cn-hangzhou-h", "cn-hangzhou"));
        assert!(in_region("ap-southeast-1a", "ap-southeast-1"));
        assert!(!in_region("cn-hangzhou-finance-a", "cn-hangzhou"));
        assert!(!in_region("cn-shanghai-b", "cn-hangzhou"));
        assert!(!in_region("cn-hangzhou", "cn-hangzhou"));
        assert!(!in_region("cn-hangzhou-hh", "cn-hangzhou"));
        assert!(!in_region("cn-hangzhou-H", "cn-hangzhou"));
    }

    #[test]
    fn a_zone_of_another_region_is_refused() {
        let m = messages(&seed_edits(&[
            (
                r#"zones = ["cn-hangzhou-h"]"#,
                r#"zones = ["cn-shanghai-b"]"#,
            ),
            (r#"zone = "cn-hangzhou-h""#, r#"zone = "cn-shanghai-b""#),
            (r#"zone = "cn-hangzhou-h""#, r#"zone = "cn-shanghai-b""#),
            (r#"zone = "cn-hangzhou-h""#, r#"zone = "cn-shanghai-b""#),
            (r#"zone = "cn-hangzhou-h""#, r#"zone = "cn-shanghai-b""#),
            (r#"zone = "cn-hangzhou-h""#, r#"zone = "cn-shanghai-b""#),
        ]));
        assert_eq!(
            m,
            ["zone `cn-shanghai-b` is not a zone of region `cn-hangzhou`; a zone id is its region's id and a letter (`cn-hangzhou-h`, `ap-southeast-1a`)"]
        );
    }

    #[test]
    fn an_unknown_region_names_the_nearest_known_ones() {
        let m = messages(&seed_edits(&[(
            r#"region = "cn-hangzhou""#,
            r#"region = "cn-hangzou""#,
        )]));
        assert_eq!(m.len(), 1, "{m:?}");
        assert!(
            m[0].starts_with(
                "region `cn-hangzou` is not one the provider knows (the nearest: cn-hangzhou, "
            ),
            "{m:?}"
        );
    }

    #[test]
    fn distance_is_an_edit_distance() {
        assert_eq!(distance("", "abc"), 3);
        assert_eq!(distance("kitten", "sitting"), 3);
        assert_eq!(distance("cn-hangzhou", "cn-hangzhou"), 0);
        let long = "x".repeat(10_000);
        assert!(distance(&long, "cn-hangzhou") <= 64);
    }
}
