//! How many ENIs an instance type allows, primary included
//! (alicloud-havip.md, "ENIs per instance type"). Only the families the
//! project has figures for are listed; any other type needs `max_enis`.

/// Families whose 4 vCPU size already allows four ENIs.
const WIDE: [&str; 4] = ["g7", "c7", "g6e", "c6e"];
/// Families whose 4 vCPU size allows three.
const NARROW: [&str; 4] = ["g6", "c6", "g5", "c5"];

/// The ENI limit of a type written `ecs.<family>.<size>`, if the table knows it.
pub(super) fn max_enis(instance_type: &str) -> Option<u8> {
    let rest = instance_type.strip_prefix("ecs.")?;
    let (family, size) = rest.split_once('.')?;
    let wide = if WIDE.contains(&family) {
        true
    } else if NARROW.contains(&family) {
        false
    } else {
        return None;
    };
    match (size, wide) {
        ("large", true) => Some(3),
        ("large", false) => Some(2),
        ("xlarge", true) => Some(4),
        ("xlarge", false) => Some(3),
        ("2xlarge", _) => Some(4),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::max_enis;

    #[test]
    fn the_table() {
        for (t, n) in [
            ("ecs.g7.large", 3),
            ("ecs.c7.xlarge", 4),
            ("ecs.g6e.2xlarge", 4),
            ("ecs.c6e.xlarge", 4),
            ("ecs.g6.large", 2),
            ("ecs.c6.xlarge", 3),
            ("ecs.g5.2xlarge", 4),
            ("ecs.c5.xlarge", 3),
        ] {
            assert_eq!(max_enis(t), Some(n), "{t}");
        }
    }

    #[test]
    fn unknown_types_and_sizes() {
        for t in [
            "ecs.r7.xlarge",
            "ecs.g7.4xlarge",
            "g7.xlarge",
            "ecs.g7",
            "",
            "ecs..xlarge",
        ] {
            assert_eq!(max_enis(t), None, "{t}");
        }
    }
}
