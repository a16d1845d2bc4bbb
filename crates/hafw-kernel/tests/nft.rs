//! Rulesets applied with `nft -f -` inside a namespace.

mod common;

use common::Lab;
use hafw_kernel::nft::{self, Family};
use hafw_kernel::Error;

const GOOD: &str = "table inet hkt_test {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dport 9 drop
    }
}
";

// Line 4 has a typo nft must point at.
const BAD: &str = "table inet hkt_test {
    chain input {
        type filter hook input priority 0; policy accept;
        tcp dprot 10 drop
    }
}
";

#[test]
fn valid_ruleset_applies_and_invalid_one_changes_nothing() {
    let lab = Lab::new(&["nft"]);
    let ns = Some(lab.name(0));
    nft::apply(ns, GOOD).unwrap();
    let listed = nft::list_table(ns, Family::Inet, "hkt_test").unwrap();
    assert!(listed.contains("tcp dport 9 drop"), "{listed}");

    let err = nft::apply(ns, BAD).unwrap_err();
    let Error::Nft { stderr, .. } = &err else {
        panic!("expected an nft error, got {err}");
    };
    assert!(stderr.contains("Error"), "{stderr}");
    assert!(
        stderr.contains("dprot"),
        "nft's message should quote the bad line: {stderr}"
    );
    assert!(err.to_string().contains("dprot"), "{err}");

    let after = nft::list_table(ns, Family::Inet, "hkt_test").unwrap();
    assert_eq!(after, listed, "a refused ruleset changed the table");

    // Atomic replace: add, delete, add with new contents, one transaction.
    let replacement = "table inet hkt_test {}\ndelete table inet hkt_test\n".to_string()
        + &GOOD.replace("dport 9", "dport 11");
    nft::apply(ns, &replacement).unwrap();
    let replaced = nft::list_table(ns, Family::Inet, "hkt_test").unwrap();
    assert!(
        replaced.contains("tcp dport 11 drop") && !replaced.contains("dport 9"),
        "{replaced}"
    );

    // The table exists only in the test namespace.
    let elsewhere = nft::list_ruleset(None).unwrap();
    assert!(
        !elsewhere.contains("hkt_test"),
        "table leaked into the current namespace"
    );
}

#[test]
fn table_names_are_checked_before_nft_runs() {
    let lab = Lab::new(&["nftname"]);
    let err = nft::list_table(Some(lab.name(0)), Family::Inet, "x; flush ruleset").unwrap_err();
    assert!(matches!(err, Error::Invalid { .. }), "{err}");
    let missing = nft::list_table(Some(lab.name(0)), Family::Inet, "absent").unwrap_err();
    assert!(matches!(missing, Error::Nft { .. }), "{missing}");
}
