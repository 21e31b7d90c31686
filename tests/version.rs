//! `debstage::debian::version::compare` against `dpkg --compare-versions`, on generated pairs.
//!
//! Each proptest case is a batch of pairs checked by one `sh` running dpkg for every pair,
//! so a few thousand pairs cost a few seconds; a mismatch shrinks to a small batch.

use std::cmp::Ordering;
use std::process::Command;

use proptest::prelude::*;

/// A valid Debian version over a small alphabet, so that pairs often differ in one place.
fn version() -> impl Strategy<Value = String> {
    let epoch = proptest::option::weighted(0.2, "[0-2]");
    let plain = "[0-9][0-9abZ.+~]{0,6}";
    let with_revision = ("[0-9][0-9abZ.+~-]{0,6}", "[0-9abZ.+~]{1,4}")
        .prop_map(|(upstream, revision)| format!("{upstream}-{revision}"));
    let body = prop_oneof![plain.prop_map(|text: String| text), with_revision];
    (epoch, body).prop_map(|(epoch, body)| match epoch {
        Some(epoch) => format!("{epoch}:{body}"),
        None => body,
    })
}

/// dpkg's answers for a batch of pairs, as orderings.
fn dpkg_orderings(pairs: &[(String, String)]) -> Vec<Ordering> {
    let mut script = String::new();
    for (left, right) in pairs {
        script.push_str(&format!(
            "if dpkg --compare-versions '{left}' lt '{right}'; then echo lt; \
             elif dpkg --compare-versions '{left}' eq '{right}'; then echo eq; else echo gt; fi\n"
        ));
    }
    let output = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .output()
        .expect("sh runs");
    assert!(
        output.status.success() && output.stderr.is_empty(),
        "dpkg: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(|line| match line {
            "lt" => Ordering::Less,
            "eq" => Ordering::Equal,
            _ => Ordering::Greater,
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 50, ..ProptestConfig::default() })]

    #[test]
    fn compare_orders_like_dpkg(pairs in proptest::collection::vec((version(), version()), 40)) {
        let theirs = dpkg_orderings(&pairs);
        prop_assert_eq!(theirs.len(), pairs.len());
        for ((left, right), expected) in pairs.iter().zip(theirs) {
            prop_assert_eq!(
                debstage::debian::version::compare(left, right),
                expected,
                "{} vs {}", left, right
            );
        }
    }
}
