//! Property test: for random selector text (random spellings, spacing, quoting, redundant
//! parentheses and negations), `parse(canonical(parse(s)))` evaluates exactly like `parse(s)` on
//! random label maps, and the canonical form is a fixed point.

use std::collections::BTreeMap;

use policy::Selector;
use proptest::prelude::*;

const KEYS: &[&str] = &["a", "b", "app", "k8s.io/role", "x-y_z"];
const VALUES: &[&str] = &["", "1", "web", "db", "we", "it's", "say \"hi\""];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_string)
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(VALUES).prop_map(str::to_string)
}

fn quote(v: &str, prefer_single: bool) -> String {
    if v.contains('"') || (prefer_single && !v.contains('\'')) {
        format!("'{v}'")
    } else {
        format!("\"{v}\"")
    }
}

fn ws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", " ", "  ", "\t"][..])
}

/// Random selector text built from the grammar, with the non-canonical spellings mixed in.
fn selector_text() -> impl Strategy<Value = String> {
    let leaf = prop_oneof![
        Just("all()".to_string()),
        Just("global( )".to_string()),
        (key(), ws()).prop_map(|(k, w)| format!("has({w}{k}{w})")),
        (
            key(),
            prop::sample::select(
                &[
                    "==",
                    "!=",
                    "contains",
                    "starts with",
                    "startswith",
                    "ends with",
                    "endswith"
                ][..]
            ),
            value(),
            any::<bool>(),
            ws()
        )
            .prop_map(|(k, op, v, single, w)| {
                let sep = if op.chars().all(|c| c.is_ascii_alphabetic() || c == ' ') {
                    " "
                } else {
                    w
                };
                format!("{k}{sep}{op}{sep}{}", quote(&v, single))
            }),
        (
            key(),
            prop::sample::select(&["in", "not in", "notin"][..]),
            prop::collection::vec((value(), any::<bool>()), 0..4),
            any::<bool>()
        )
            .prop_map(|(k, op, vs, trailing)| {
                let items: Vec<String> = vs.iter().map(|(v, s)| quote(v, *s)).collect();
                let comma = if trailing && !items.is_empty() {
                    ","
                } else {
                    ""
                };
                format!("{k} {op} {{{}{comma}}}", items.join(", "))
            }),
    ];
    leaf.prop_recursive(4, 24, 3, |inner| {
        prop_oneof![
            (
                prop::sample::select(&["!", "!!", "! ", "!!!"][..]),
                inner.clone()
            )
                .prop_map(|(n, e)| format!("{n}({e})")),
            (inner.clone(), ws()).prop_map(|(e, w)| format!("({w}{e}{w})")),
            (prop::collection::vec(inner.clone(), 2..4), ws())
                .prop_map(|(es, w)| es.join(&format!("{w}&&{w}"))),
            (prop::collection::vec(inner, 2..4), ws())
                .prop_map(|(es, w)| format!("({})", es.join(&format!("{w}||{w}")))),
        ]
    })
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(key(), value(), 0..KEYS.len())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn canonical_form_means_the_same(text in selector_text(), maps in prop::collection::vec(label_map(), 1..16)) {
        let parsed = Selector::parse(&text).map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))?;
        let canonical = parsed.canonical().to_string();
        let reparsed = Selector::parse(&canonical).map_err(|e| TestCaseError::fail(format!("{canonical:?}: {e}")))?;
        prop_assert_eq!(reparsed.canonical(), canonical.as_str());
        for labels in &maps {
            prop_assert_eq!(parsed.matches(labels), reparsed.matches(labels), "{} vs {} on {:?}", text, canonical, labels);
        }
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,64}") {
        if let Ok(s) = Selector::parse(&text) {
            let again = Selector::parse(s.canonical());
            prop_assert!(again.is_ok(), "canonical form of {:?} did not re-parse: {}", text, s.canonical());
        }
    }
}
