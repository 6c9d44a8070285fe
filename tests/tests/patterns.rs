//! The kit reads a few shapes by hand (`xtask::core::patterns`) instead of compiling
//! regexes at start-up. Each must agree with the regex it names, on generated input
//! built from the characters that matter to it.

use proptest::prelude::*;
use regex::Regex;
use xtask::core::patterns;

/// Text over an alphabet rich in the characters the shapes care about.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop::sample::select(vec![
            ":", "<", ">", "/", "@", "*", " ", "\t", "a", "Z", "_", "-", "9", "+", ".", "é", "x",
            "://", "s3", "https", "\u{a0}",
        ]),
        0..24,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4096, ..ProptestConfig::default() })]

    #[test]
    fn looks_like_property_is_its_regex(line in text()) {
        let re = Regex::new(r"^:[^\s:]+:").unwrap();
        prop_assert_eq!(patterns::looks_like_property(&line), re.find(&line).map(|m| m.as_str()));
    }

    #[test]
    fn other_drawer_is_its_regex(line in text()) {
        let re = Regex::new(r"^:[A-Za-z][A-Za-z0-9_-]*:$").unwrap();
        prop_assert_eq!(patterns::is_other_drawer(&line), re.is_match(&line));
    }

    #[test]
    fn headline_is_its_regex(line in text()) {
        let re = Regex::new(r"^\*+\s").unwrap();
        prop_assert_eq!(patterns::is_headline(&line), re.is_match(&line));
    }

    #[test]
    fn placeholder_is_its_regex(value in text()) {
        let re = Regex::new(r"<[^<>]+>").unwrap();
        prop_assert_eq!(patterns::placeholder(&value), re.find(&value).map(|m| m.as_str()));
    }

    #[test]
    fn url_with_password_is_its_regex(value in text()) {
        let re = Regex::new(r"[a-zA-Z][a-zA-Z0-9+.-]*://[^/@\s:]*:[^/@\s]+@").unwrap();
        prop_assert_eq!(patterns::has_url_with_password(&value), re.is_match(&value));
    }
}

#[test]
fn known_answers() {
    assert_eq!(
        patterns::looks_like_property(":WB_S3_KEY: x"),
        Some(":WB_S3_KEY:")
    );
    assert!(patterns::is_other_drawer(":LOGBOOK:"));
    assert!(patterns::is_headline("** two"));
    assert_eq!(patterns::placeholder("a <b> <c>"), Some("<b>"));
    assert!(patterns::has_url_with_password("postgres://u:pw@db/x"));
    assert!(!patterns::has_url_with_password("https://example.com/a@b"));
}
