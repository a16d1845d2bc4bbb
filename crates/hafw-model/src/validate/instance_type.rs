//! How many ENIs an instance type allows, primary included
//! (alicloud-havip.md, "ENIs per instance type"). Only the families the
//! project has figures for are listed; any other type needs `max_enis`.

/// Families whose 4 vCPU size already allows four ENIs.
const WIDE: [&str; 4] = ["g7", "c7", "g6e", "c6e"];
/// Families whose 4 vCPU size allows three.
const NARROW: [&str; 4] = ["g6", "c6", "g5", "c5"];

/// The memory of a type written `ecs.<family>.<size>`, in GiB, if the table
/// knows it: Alibaba Cloud's general-purpose families (g5, g6, g6e, g7)
/// give 4 GiB per vCPU, the compute families (c5, c6, c6e, c7) 2 GiB;
/// `large` is 2 vCPUs and each size up doubles them.
pub(crate) fn memory_gib(instance_type: &str) -> Option<u64> {
    let rest = instance_type.strip_prefix("ecs.")?;
    let (family, size) = rest.split_once('.')?;
    let per_vcpu =
        if family.starts_with('g') && (WIDE.contains(&family) || NARROW.contains(&family)) {
            4
        } else if WIDE.contains(&family) || NARROW.contains(&family) {
            2
        } else {
            return None;
        };
    let vcpus = match size {
        "large" => 2,
        "xlarge" => 4,
        "2xlarge" => 8,
        "4xlarge" => 16,
        _ => return None,
    };
    Some(per_vcpu * vcpus)
}

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
    use super::{max_enis, memory_gib};

    #[test]
    fn memory_by_family_and_size() {
        for (t, gib) in [
            ("ecs.g7.large", 8),
            ("ecs.g7.xlarge", 16),
            ("ecs.g6.2xlarge", 32),
            ("ecs.c7.large", 4),
            ("ecs.c6e.xlarge", 8),
            ("ecs.c5.4xlarge", 32),
        ] {
            assert_eq!(memory_gib(t), Some(gib), "{t}");
        }
        for t in ["ecs.r7.xlarge", "ecs.g7.8xlarge", "g7.xlarge", ""] {
            assert_eq!(memory_gib(t), None, "{t}");
        }
    }

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
