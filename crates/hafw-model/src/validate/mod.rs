//! Validation against the cloud's rules (alicloud-havip.md, "Rules the
//! validator and the emulator enforce") and the seed's design. Every rule
//! runs and every problem is collected; a name that does not resolve is
//! reported once (by `names`) and skipped by the rest, so one typo gives one
//! diagnostic. Nothing here panics on a document that deserialized.

mod addresses;
mod context;
mod havip;
mod hooks;
pub(crate) mod instance_type;
mod instances;
mod names;
mod policy;
pub mod region;
mod routes;
mod security_group;
mod seed;
mod vpc;
mod vswitch;

use crate::diag::Diagnostic;
use crate::spec::Deployment;

use context::{Context, Report};

pub fn validate(dep: &Deployment) -> Vec<Diagnostic> {
    let cx = Context::new(dep);
    let mut r = Report::default();
    names::check(&cx, &mut r);
    region::check(&cx, &mut r);
    vpc::check(&cx, &mut r);
    vswitch::check(&cx, &mut r);
    addresses::check(&cx, &mut r);
    instances::check(&cx, &mut r);
    havip::check(&cx, &mut r);
    routes::check(&cx, &mut r);
    seed::check(&cx, &mut r);
    policy::check(&cx, &mut r);
    hooks::check(&cx, &mut r);
    security_group::check(&cx, &mut r);
    r.0
}

#[cfg(test)]
pub(crate) mod testing {
    //! The examples, changed in one place, for the rules' unit tests.
    use crate::spec::Deployment;

    pub use crate::examples::ONE_ARM;
    pub use crate::examples::SEED;

    fn with(text: &str, edits: &[(&str, &str)]) -> Deployment {
        let mut changed = text.to_string();
        for (from, to) in edits.iter().filter(|(from, _)| !from.is_empty()) {
            assert!(changed.contains(from), "`{from}` is not in the example");
            changed = changed.replacen(from, to, 1);
        }
        toml::from_str(&changed).unwrap_or_else(|e| panic!("changed example does not parse: {e}"))
    }

    /// The seed example with each `from`, in turn, replaced once by its `to`.
    pub fn seed_edits(edits: &[(&str, &str)]) -> Deployment {
        with(SEED, edits)
    }

    /// The seed example with the first `from` replaced by `to`.
    pub fn seed_with(from: &str, to: &str) -> Deployment {
        with(SEED, &[(from, to)])
    }

    pub fn one_arm_with(from: &str, to: &str) -> Deployment {
        with(ONE_ARM, &[(from, to)])
    }

    /// Every message validation gives, in the order the rules found them.
    pub fn messages(dep: &Deployment) -> Vec<String> {
        super::validate(dep)
            .into_iter()
            .map(|d| d.message)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{messages, one_arm_with, seed_with};

    #[test]
    fn both_examples_are_valid() {
        assert_eq!(messages(&seed_with("", "")), Vec::<String>::new());
        assert_eq!(messages(&one_arm_with("", "")), Vec::<String>::new());
    }

    #[test]
    fn an_unknown_name_is_reported_once() {
        let m = messages(&seed_with(
            r#"vswitch = "untrust"
ip"#,
            r#"vswitch = "outside"
ip"#,
        ));
        assert_eq!(
            m,
            vec!["HAVIP `external` names vSwitch `outside`, which is not declared"]
        );
    }

    /// Every name broken at once: each is reported, nothing panics, and the
    /// rules that need a name skip what does not resolve.
    #[test]
    fn nothing_resolves() {
        let mut dep = seed_with("", "");
        for v in &mut dep.cloud.vswitches {
            v.name.push('?');
        }
        for i in &mut dep.cloud.instances {
            i.name.push('?');
            for e in &mut i.enis {
                e.name.push('?');
            }
        }
        for h in &mut dep.cloud.havips {
            h.name.push('?');
        }
        let m = messages(&dep);
        assert!(m.iter().all(|m| !m.is_empty()));
        assert_eq!(
            m.iter()
                .filter(|m| m.contains("which is not declared"))
                .count(),
            8 + 2 + 1 + 1 + 1 + 1,
            "{m:#?}"
        );
        assert!(m.contains(
            &"node `fw-a` names no instance; a node runs on the cloud.instance of the same name"
                .to_string()
        ));
    }
}
