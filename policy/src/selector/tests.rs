//! Grammar and semantics tests for the selector language: Calico's own test vectors
//! (`libcalico-go/lib/selector/parser/parser_test.go`) plus one passing and one failing case
//! per grammar production.

use super::*;
use crate::test_util::{labels, sel};

/// (selector, label maps it matches, label maps it does not match)
type Case = (
    &'static str,
    &'static [&'static [(&'static str, &'static str)]],
    &'static [&'static [(&'static str, &'static str)]],
);

const MATCH_CASES: &[Case] = &[
    (
        r#"a == "b""#,
        &[&[("a", "b")], &[("a", "b"), ("c", "d")]],
        &[&[("a", "c")], &[("c", "d")], &[]],
    ),
    (
        r#"a == "b" && c == "d""#,
        &[&[("a", "b"), ("c", "d")]],
        &[
            &[("a", "b"), ("c", "e")],
            &[("a", "c"), ("c", "d")],
            &[("c", "d")],
            &[("a", "b")],
        ],
    ),
    (
        r#"a == "b" || c == "d""#,
        &[&[("a", "b"), ("c", "d")], &[("a", "b")], &[("c", "d")]],
        &[&[("a", "e"), ("c", "e")], &[("c", "e")], &[("a", "e")]],
    ),
    (
        r#"a in {"'", '"', "c"}"#,
        &[&[("a", "c")], &[("a", "\"")], &[("a", "'")]],
        &[&[("a", "e")], &[]],
    ),
    (
        r#"a not in {"'", '"', "c"}"#,
        &[&[("a", "e")], &[]],
        &[&[("a", "c")], &[("a", "\"")], &[("a", "'")]],
    ),
    ("a == 'a'", &[&[("a", "a")]], &[&[("a", "b")], &[]]),
    (r#"a != "b""#, &[&[("a", "a")], &[]], &[&[("a", "b")]]),
    (
        r#"a contains "a""#,
        &[&[("a", "a")], &[("a", "bab")]],
        &[&[("a", "b")], &[("b", "aaa")]],
    ),
    (
        r#"a starts with "a""#,
        &[&[("a", "a")], &[("a", "abb")]],
        &[&[("a", "baa")], &[("b", "aaa")]],
    ),
    (
        r#"a ends with "a""#,
        &[&[("a", "a")], &[("a", "bba")]],
        &[&[("a", "aab")], &[("b", "aaa")]],
    ),
    (r#"!a in {"a"}"#, &[&[("a", "b")], &[]], &[&[("a", "a")]]),
    (
        r#"a in {"a", "b"}"#,
        &[&[("a", "a")], &[("a", "b")]],
        &[&[("a", "c")]],
    ),
    (r#"a in {}"#, &[], &[&[("a", "")], &[]]),
    (r#"a not in {}"#, &[&[("a", "x")], &[]], &[]),
    (r#"a in {"x",}"#, &[&[("a", "x")]], &[&[("a", "y")]]),
    ("has(a)", &[&[("a", "b")], &[("a", "")]], &[&[("b", "b")]]),
    ("!has(a)", &[&[("b", "b")]], &[&[("a", "b")]]),
    ("!!has(b)", &[&[("b", "x")]], &[&[("a", "b")]]),
    ("! has(a)", &[&[]], &[&[("a", "b")]]),
    ("!!! has(a)", &[&[]], &[&[("a", "b")]]),
    ("!! ! has(a)", &[&[]], &[&[("a", "b")]]),
    ("", &[&[], &[("a", "b")]], &[]),
    (" ", &[&[]], &[]),
    ("all()", &[&[], &[("a", "b")]], &[]),
    (" all( ) ", &[&[]], &[]),
    ("global()", &[&[], &[("a", "b")]], &[]),
    (
        "a == 'a1' && b != 'b1'",
        &[&[("a", "a1")]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    (
        "a != 'a1' && !b == 'b1'",
        &[&[]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    (
        "!a == 'a1' && b == 'b1'",
        &[&[("b", "b1")]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    (
        "has(a) && !has(b)",
        &[&[("a", "a")]],
        &[&[("a", "a"), ("b", "b")]],
    ),
    (
        "!(!has(a) || has(b))",
        &[&[("a", "a")]],
        &[&[("a", "a"), ("b", "b")], &[]],
    ),
    (
        "a != 'a1' || b != 'b1'",
        &[&[("a", "a1")]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    (
        "! a == 'a1' || ! b == 'b1'",
        &[&[]],
        &[&[("a", "a1"), ("b", "b1")]],
    ),
    // `||` binds loosest: a || (b && c).
    (
        "has(a) || has(b) && has(c)",
        &[&[("a", "")], &[("b", ""), ("c", "")]],
        &[&[("b", "")]],
    ),
    (
        "(has(a) || has(b)) && has(c)",
        &[&[("a", ""), ("c", "")]],
        &[&[("a", "")]],
    ),
    // Label keys with every allowed punctuation character.
    (
        "k8s.io/app-name_x == 'v'",
        &[&[("k8s.io/app-name_x", "v")]],
        &[&[("k8s.io/app-name", "v")]],
    ),
    ("startswith == 'x'", &[&[("startswith", "x")]], &[]),
];

#[test]
fn calico_match_vectors() {
    for (text, yes, no) in MATCH_CASES {
        let s = sel(text);
        for m in *yes {
            assert!(s.matches(&labels(m)), "{text:?} should match {m:?}");
        }
        for m in *no {
            assert!(!s.matches(&labels(m)), "{text:?} should not match {m:?}");
        }
        // The canonical form must mean the same thing.
        let again = sel(s.canonical());
        assert_eq!(
            again.canonical(),
            s.canonical(),
            "canonical form is a fixed point for {text:?}"
        );
        for m in yes.iter().chain(no.iter()) {
            assert_eq!(
                again.matches(&labels(m)),
                s.matches(&labels(m)),
                "{text:?} on {m:?}"
            );
        }
    }
}

#[test]
fn calico_bad_selectors_are_rejected() {
    let bad = [
        "b == b",
        "b contains b",
        "b starts with b",
        "b ends with b",
        "'b1' == b",
        "b",
        "a b",
        "!",
        r#"foo == "bar" &"#,
        r#"foo == "bar" |"#,
        "foo != ||",
        r#"foo in {"", ||"#,
        r#"foo in """#,
        r#""FOO"#,
        r#""FOO'"#,
        "'FOO",
        "(",
        r#"(a == "foo""#,
        ")",
        "()",
        "%",
        r#"a == "b" && %"#,
        r#"a == "b" || %"#,
        "a ",
        "has(foo) &&",
        "has (foo)",
        "a in {,}",
        r#"a in {"x" "y"}"#,
        "all() all()",
        r#"a == "b")"#,
    ];
    for text in bad {
        assert!(
            Selector::parse(text).is_err(),
            "{text:?} should be rejected"
        );
    }
}

#[test]
fn calico_canonical_forms() {
    let cases = [
        ("", "all()"),
        (" all() ", "all()"),
        (" (all() )", "all()"),
        ("! (has( b)||! has(a ))", "!(has(b) || !has(a))"),
        (r#"! (a == "b"&&! c != "d")"#, r#"!(a == "b" && !c != "d")"#),
        (r#"a == "'""#, r#"a == "'""#),
        (r#"a == '"'"#, r#"a == '"'"#),
        (r#"a contains '"'"#, r#"a contains '"'"#),
        (r#"a startswith '"'"#, r#"a starts with '"'"#),
        (r#"a endswith "'""#, r#"a ends with "'""#),
        (r#"a!='"'"#, r#"a != '"'"#),
        (r#"a in {"d", "a", "b"}"#, r#"a in {"a", "b", "d"}"#),
        (
            r#"a in {"z", "z", "x", "y", "x", "a"}"#,
            r#"a in {"a", "x", "y", "z"}"#,
        ),
        (r#"a notin {'b'}"#, r#"a not in {"b"}"#),
        (
            "has(a) && has(b) || has(c)",
            "((has(a) && has(b)) || has(c))",
        ),
        ("global()", "global()"),
        ("!!has(a)", "has(a)"),
    ];
    for (input, canonical) in cases {
        assert_eq!(sel(input).canonical(), canonical, "{input:?}");
        assert_eq!(
            sel(canonical).canonical(),
            canonical,
            "fixed point {canonical:?}"
        );
    }
}

#[test]
fn equal_meaning_spellings_share_identity() {
    assert_eq!(sel(""), sel("all()"));
    assert_eq!(
        sel("a in {'y','x'}").unique_id(),
        sel(r#"a in {"x", "y"}"#).unique_id()
    );
    assert_ne!(sel("has(a)").unique_id(), sel("has(b)").unique_id());
    assert!(sel("has(a)").unique_id().starts_with("s:"));
}

#[test]
fn errors_say_where_and_what() {
    let err = Selector::parse(r#"a == "b" && c =="#).expect_err("dangling operator");
    assert_eq!(err.offset, 16);
    assert_eq!(
        err.kind,
        SelectorErrorKind::Expected {
            expected: "a quoted string",
            found: "end of selector".into()
        }
    );
    assert_eq!(
        err.to_string(),
        "invalid selector at column 17: expected a quoted string, found end of selector"
    );

    let err = Selector::parse("a in 'x'").expect_err("needs a set");
    assert_eq!(err.offset, 5);
    assert!(err.to_string().contains("set literal"), "{err}");

    let err = Selector::parse("(has(a)").expect_err("unclosed paren");
    assert!(err.to_string().contains("expected ')'"), "{err}");

    let err = Selector::parse("has(a) has(b)").expect_err("missing operator");
    assert_eq!(err.offset, 7);
    assert!(
        err.to_string().contains("'&&', '||' or end of selector"),
        "{err}"
    );

    let err = Selector::parse("&& has(a)").expect_err("no operand");
    assert_eq!(err.offset, 0);
}

#[test]
fn deep_nesting_is_an_error_not_a_crash() {
    let deep = format!("{}has(a){}", "(".repeat(10_000), ")".repeat(10_000));
    let err = Selector::parse(&deep).expect_err("too deep");
    assert_eq!(err.kind, SelectorErrorKind::TooDeep);
    let ok = format!("{}has(a){}", "(".repeat(20), ")".repeat(20));
    assert!(sel(&ok).matches(&labels(&[("a", "")])));
    // Long runs of negation are iterative and fine.
    let nots = format!("{}has(a)", "!".repeat(10_001));
    assert!(sel(&nots).matches(&labels(&[])));
}

#[test]
fn combinators() {
    let a = sel("has(a)");
    let b = sel("b == 'x' && has(c)");
    assert_eq!(a.and(&b).canonical(), r#"(has(a) && b == "x" && has(c))"#);
    assert_eq!(Selector::all().and(&a), a);
    assert_eq!(a.and(&Selector::all()), a);
    assert!(Selector::all().and(&Selector::all()).is_all());
    assert_eq!(
        Selector::in_namespace("prod").canonical(),
        r#"projectcalico.org/namespace == "prod""#
    );
}

#[test]
fn namespace_selector_rewrite() {
    let ns = sel("team == 'a'").namespace_to_entity();
    assert_eq!(ns.canonical(), r#"pcns.team == "a""#);
    assert!(ns.matches(&labels(&[("pcns.team", "a")])));
    let all = sel("all()").namespace_to_entity();
    assert!(all.matches(&labels(&[(NAMESPACE_LABEL, "x")])));
    assert!(!all.matches(&labels(&[])));
    let global = sel("global()").namespace_to_entity();
    assert!(global.matches(&labels(&[])));
    assert!(!global.matches(&labels(&[(NAMESPACE_LABEL, "x")])));
}

#[test]
fn label_keys_and_predicates() {
    let s = sel("a == 'x' || !has(b) && c in {'1'}");
    assert_eq!(
        s.label_keys().into_iter().collect::<Vec<_>>(),
        vec!["a", "b", "c"]
    );
    assert!(sel("").is_all());
    assert!(sel("global()").is_global());
    assert!(sel("has(a) && global()").uses_global());
    assert!(!sel("has(a) && global()").is_global());
    let parsed: Selector = "has(x)".parse().expect("FromStr");
    assert_eq!(parsed.to_string(), "has(x)");
    assert!(is_valid_label("a.b/c"));
}
