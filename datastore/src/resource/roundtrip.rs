//! Test support: the round-trip and validation assertions every kind's tests use.

use super::{Resource, ValidationError, parse_documents};

/// Parses `text` (one resource), checks it validates, and checks that printing it as YAML and
/// as JSON gives back the same resource and a YAML value equal to the input. Returns it.
pub(crate) fn assert_round_trip(text: &str) -> Resource {
    let mut docs = parse_documents(text).unwrap_or_else(|e| panic!("parse failed: {e}\n{text}"));
    assert_eq!(docs.len(), 1, "expected one resource in\n{text}");
    let resource = docs.remove(0);
    let mut normalized = resource.clone();
    normalized.normalize();
    normalized
        .validate()
        .unwrap_or_else(|e| panic!("{}: {e}", resource.display_id()));

    let yaml = resource.to_yaml();
    let input: yaml_serde::Value = yaml_serde::from_str(text).expect("test input is YAML");
    let output: yaml_serde::Value = yaml_serde::from_str(&yaml).expect("output is YAML");
    assert_eq!(
        output, input,
        "YAML changed in round trip; printed:\n{yaml}"
    );
    assert_eq!(
        parse_documents(&yaml).expect("reparse"),
        std::slice::from_ref(&resource)
    );

    let json = resource.to_json();
    assert_eq!(Resource::from_json(&json).expect("from_json"), resource);
    let json_value: serde_json::Value = serde_json::from_str(&json).expect("output is JSON");
    let input_as_json: serde_json::Value =
        yaml_serde::from_str(text).expect("test input converts to JSON");
    assert_eq!(json_value, input_as_json, "JSON differs from input");
    resource
}

/// Parses `text` (one resource, which must parse), normalizes it and returns its validation
/// error, failing if it validates.
pub(crate) fn assert_invalid(text: &str) -> ValidationError {
    let mut docs = parse_documents(text).unwrap_or_else(|e| panic!("parse failed: {e}\n{text}"));
    assert_eq!(docs.len(), 1);
    let mut resource = docs.remove(0);
    resource.normalize();
    match resource.validate() {
        Ok(()) => panic!(
            "{} validated but should not:\n{text}",
            resource.display_id()
        ),
        Err(e) => e,
    }
}
