//! `[policy.hooks]`: an absolute command, a plain-HTTP webhook, a bounded
//! timeout (the rules are in `crate::hooks::problems`, shared with the
//! daemon's start-up check).

use super::context::{Context, Report};

pub(super) fn check(cx: &Context, r: &mut Report) {
    for (path, message, fix) in crate::hooks::problems(&cx.dep.policy.hooks) {
        r.error(path, message, fix);
    }
}

#[cfg(test)]
mod tests {
    use crate::validate::testing::SEED;

    fn parse(hooks: &str) -> Result<crate::spec::Deployment, crate::Diagnostics> {
        let text = format!("{SEED}\n[policy.hooks]\n{hooks}\n");
        crate::parse("d.toml", &text)
    }

    #[test]
    fn a_good_hooks_table_parses() {
        let d = parse(
            "on_transition = [\"/usr/local/bin/notify\", \"--x\"]\nwebhook = \"http://10.0.0.9:9000/e\"\ntimeout_ms = 2000",
        )
        .unwrap();
        assert_eq!(d.policy.hooks.timeout().as_millis(), 2000);
        assert!(d.policy.hooks.any());
        let none = crate::parse("d.toml", SEED).unwrap();
        assert!(!none.policy.hooks.any());
        assert_eq!(none.policy.hooks.timeout().as_millis(), 10_000);
    }

    #[test]
    fn bad_hooks_are_located_with_a_fix() {
        let e =
            parse("on_transition = [\"notify\"]\nwebhook = \"https://x/\"\ntimeout_ms = 900000")
                .unwrap_err();
        let text = e.to_string();
        assert_eq!(e.items.len(), 3, "{text}");
        for (what, fix) in [
            ("`notify` is not an absolute path", "not looked up in PATH"),
            ("https is not supported", "local relay"),
            ("900000 ms is longer than", "300000 or less"),
        ] {
            let d = e
                .items
                .iter()
                .find(|d| d.message.contains(what))
                .unwrap_or_else(|| panic!("{what} in {text}"));
            assert!(d.fix.contains(fix), "{text}");
            let line = d.location.expect("located").line;
            // Located in the appended table, past the seed's own lines.
            assert!(line > SEED.lines().count(), "{line}: {text}");
        }
        let empty = parse("on_transition = []").unwrap_err();
        assert!(empty.items[0].message.contains("empty"), "{empty}");
        let zero = parse("timeout_ms = 0").unwrap_err();
        assert!(zero.items[0].fix.contains("timeout_ms"), "{zero}");
        let unknown = parse("on_transiton = [\"/bin/true\"]").unwrap_err();
        assert!(
            unknown.items[0].message.contains("unknown field"),
            "{unknown}"
        );
    }
}
