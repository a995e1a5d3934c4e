//! Reading and writing files of resources: multi-document YAML, JSON (one object or an
//! array), and `List` wrappers (`kind: List` with `apiVersion: v1`, or calicoctl's
//! `<Kind>List`), with errors that say which document, which object and which field.
//!
//! Documents are numbered from 1 in file order, empty ones (a lone `---`) included in the
//! count but otherwise skipped, so "document 3" is the third `---`-separated part.

use serde::Serialize;
use yaml_serde::{Mapping, Value};

use super::kind::{CALICO_API_VERSION, K8S_CORE_API_VERSION, Kind};
use super::{DEFAULT_NAMESPACE, Resource, display_id};

/// An object could not be decoded.
///
/// Displays as `(<id>): <path>: <message>` with the parts that are known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(self.id.as_deref(), &self.path, &self.message))]
pub struct DecodeError {
    /// `Kind/ns/name` when the type and name could be read.
    pub id: Option<String>,
    /// Field path (`spec.ingress[0].foo`), empty for the object as a whole.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// A document of a multi-document input could not be used.
///
/// Displays as `document 3 (NetworkPolicy/default/x): spec.ingress[0].foo: unknown field
/// "foo", expected one of ...`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("document {index}{}", with_detail(self.id.as_deref(), &self.path, &self.message))]
pub struct DocumentError {
    /// 1-based document number.
    pub index: usize,
    /// `Kind/ns/name` when the type and name could be read.
    pub id: Option<String>,
    /// Field path, empty when the error is about the whole document.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

fn render(id: Option<&str>, path: &str, message: &str) -> String {
    let mut out = String::new();
    if let Some(id) = id {
        out.push('(');
        out.push_str(id);
        out.push_str("): ");
    }
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

fn with_detail(id: Option<&str>, path: &str, message: &str) -> String {
    let mut out = String::new();
    if let Some(id) = id {
        out.push_str(" (");
        out.push_str(id);
        out.push(')');
    }
    out.push_str(": ");
    if !path.is_empty() {
        out.push_str(path);
        out.push_str(": ");
    }
    out.push_str(message);
    out
}

impl DocumentError {
    fn new(index: usize, err: DecodeError) -> Self {
        DocumentError {
            index,
            id: err.id,
            path: err.path,
            message: err.message,
        }
    }

    fn whole(index: usize, message: impl Into<String>) -> Self {
        DocumentError {
            index,
            id: None,
            path: String::new(),
            message: message.into(),
        }
    }
}

impl DecodeError {
    fn whole(id: Option<String>, message: impl Into<String>) -> Self {
        DecodeError {
            id,
            path: String::new(),
            message: message.into(),
        }
    }

    fn at(path: &str, message: impl Into<String>) -> Self {
        DecodeError {
            id: None,
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// Prefixes the path (for list items: `items[2].` + `spec.cidr`).
    fn under(mut self, prefix: &str) -> Self {
        self.path = if self.path.is_empty() {
            prefix.to_owned()
        } else {
            format!("{prefix}.{}", self.path)
        };
        self
    }
}

/// serde quotes names with backticks; print them the way YAML users read them.
fn tidy(message: &str) -> String {
    message.replace('`', "\"")
}

/// Renders a `serde_path_to_error` path in wire form (`spec.ingress[0].foo`).
fn render_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for segment in path {
        match segment {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(key);
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    out
}

/// Decodes one kind's struct from a tree, keeping the failing field's path.
fn typed<'de, T, D>(tree: D) -> Result<T, DecodeError>
where
    T: serde::Deserialize<'de>,
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    serde_path_to_error::deserialize(tree).map_err(|err| DecodeError {
        id: None,
        path: render_path(err.path()),
        message: tidy(&err.inner().to_string()),
    })
}

/// Decodes the body (everything but `apiVersion`/`kind`) of a `kind` object.
fn decode_body<'de, D>(kind: Kind, tree: D) -> Result<Resource, DecodeError>
where
    D: serde::Deserializer<'de>,
    D::Error: std::fmt::Display,
{
    Ok(match kind {
        Kind::IpPool => Resource::IpPool(typed(tree)?),
        Kind::Node => Resource::Node(typed(tree)?),
        Kind::BgpPeer => Resource::BgpPeer(typed(tree)?),
        Kind::BgpConfiguration => Resource::BgpConfiguration(typed(tree)?),
        Kind::NetworkPolicy => Resource::NetworkPolicy(typed(tree)?),
        Kind::GlobalNetworkPolicy => Resource::GlobalNetworkPolicy(typed(tree)?),
        Kind::NetworkSet => Resource::NetworkSet(typed(tree)?),
        Kind::GlobalNetworkSet => Resource::GlobalNetworkSet(typed(tree)?),
        Kind::Tier => Resource::Tier(typed(tree)?),
        Kind::Profile => Resource::Profile(typed(tree)?),
        Kind::WorkloadEndpoint => Resource::WorkloadEndpoint(typed(tree)?),
        Kind::HostEndpoint => Resource::HostEndpoint(typed(tree)?),
        Kind::FelixConfiguration => Resource::FelixConfiguration(typed(tree)?),
        Kind::IpamConfiguration => Resource::IpamConfiguration(typed(tree)?),
        Kind::K8sNetworkPolicy => Resource::K8sNetworkPolicy(typed(tree)?),
        Kind::Namespace => Resource::Namespace(typed(tree)?),
    })
}

fn describe(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// Takes a required string field (`apiVersion`, `kind`) out of a mapping.
fn take_str(map: &mut Mapping, field: &str) -> Result<String, DecodeError> {
    match map.remove(field) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(DecodeError::at(
            field,
            format!("expected a string, found {}", describe(&other)),
        )),
        None => Err(DecodeError::at(field, "is required")),
    }
}

/// `Kind/ns/name` from a not-yet-decoded object, if it has a string name.
fn id_of(kind: Kind, metadata: Option<&Value>) -> Option<String> {
    let metadata = metadata?;
    let name = metadata.get("name")?.as_str()?;
    let namespace = kind.is_namespaced().then(|| {
        metadata
            .get("namespace")
            .and_then(Value::as_str)
            .unwrap_or(DEFAULT_NAMESPACE)
    });
    Some(display_id(kind, namespace, name))
}

fn unknown_type(api_version: &str, kind: &str) -> DecodeError {
    DecodeError::whole(
        None,
        format!("unknown resource type: apiVersion {api_version:?}, kind {kind:?}"),
    )
}

/// Decodes one object (not a `List`). `default_type` fills in a missing `apiVersion`/`kind`
/// for items of a typed list.
fn decode_object(value: Value, default_type: Option<Kind>) -> Result<Resource, DecodeError> {
    let Value::Mapping(mut map) = value else {
        return Err(DecodeError::whole(
            None,
            format!(
                "expected a mapping with apiVersion and kind, found {}",
                describe(&value)
            ),
        ));
    };
    let kind = match (
        default_type,
        map.contains_key("apiVersion") || map.contains_key("kind"),
    ) {
        (Some(kind), false) => kind,
        _ => {
            let api_version = take_str(&mut map, "apiVersion")?;
            let kind_name = take_str(&mut map, "kind")?;
            Kind::from_type(&api_version, &kind_name)
                .ok_or_else(|| unknown_type(&api_version, &kind_name))?
        }
    };
    let id = id_of(kind, map.get("metadata"));
    decode_body(kind, Value::Mapping(map)).map_err(|e| DecodeError { id, ..e })
}

/// Whether a mapping is a list wrapper; returns the item type for `<Kind>List`.
fn list_type(map: &Mapping) -> Option<Result<Option<Kind>, DecodeError>> {
    let kind = map.get("kind")?.as_str()?;
    let api_version = map
        .get("apiVersion")
        .and_then(Value::as_str)
        .unwrap_or_default();
    if kind == "List" {
        return Some(
            if api_version == K8S_CORE_API_VERSION || api_version == CALICO_API_VERSION {
                Ok(None)
            } else {
                Err(unknown_type(api_version, kind))
            },
        );
    }
    let item_kind = kind.strip_suffix("List")?;
    Some(
        Kind::from_type(api_version, item_kind)
            .map(Some)
            .ok_or_else(|| unknown_type(api_version, kind)),
    )
}

/// Decodes a document: one object, or every item of a list.
fn decode_document(value: Value) -> Result<Vec<Resource>, DecodeError> {
    let Value::Mapping(mut map) = value else {
        return decode_object(value, None).map(|r| vec![r]);
    };
    let Some(list) = list_type(&map) else {
        return decode_object(Value::Mapping(map), None).map(|r| vec![r]);
    };
    let item_type = list?;
    for key in map.keys() {
        let key = key.as_str().unwrap_or("?");
        if !matches!(key, "apiVersion" | "kind" | "metadata" | "items") {
            return Err(DecodeError::at(
                key,
                format!(
                    "unknown field {key:?}, expected one of \"apiVersion\", \"kind\", \"metadata\", \"items\""
                ),
            ));
        }
    }
    let items = match map.remove("items") {
        Some(Value::Sequence(items)) => items,
        Some(Value::Null) | None => Vec::new(),
        Some(other) => {
            return Err(DecodeError::at(
                "items",
                format!("expected a sequence, found {}", describe(&other)),
            ));
        }
    };
    items
        .into_iter()
        .enumerate()
        .map(|(i, item)| {
            decode_object(item, item_type).map_err(|e| e.under(&format!("items[{i}]")))
        })
        .collect()
}

/// Decodes a single object from a YAML value (used by `Deserialize for Resource`).
pub(crate) fn decode_value(value: Value) -> Result<Resource, DecodeError> {
    decode_object(value, None)
}

/// Decodes the JSON stored in etcd straight from `serde_json` (no YAML detour).
pub(crate) fn decode_json(text: &str) -> Result<Resource, DecodeError> {
    let value: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| DecodeError::whole(None, format!("invalid JSON: {e}")))?;
    let serde_json::Value::Object(mut map) = value else {
        return Err(DecodeError::whole(None, "expected a JSON object"));
    };
    let mut take = |field: &str| match map.remove(field) {
        Some(serde_json::Value::String(s)) => Ok(s),
        Some(_) => Err(DecodeError::at(field, "expected a string")),
        None => Err(DecodeError::at(field, "is required")),
    };
    let api_version = take("apiVersion")?;
    let kind_name = take("kind")?;
    let kind = Kind::from_type(&api_version, &kind_name)
        .ok_or_else(|| unknown_type(&api_version, &kind_name))?;
    let id = map.get("metadata").and_then(|m| {
        let name = m.get("name")?.as_str()?;
        let ns = kind.is_namespaced().then(|| {
            m.get("namespace")
                .and_then(serde_json::Value::as_str)
                .unwrap_or(DEFAULT_NAMESPACE)
        });
        Some(display_id(kind, ns, name))
    });
    decode_body(kind, serde_json::Value::Object(map)).map_err(|e| DecodeError { id, ..e })
}

/// Splits input into numbered documents: a JSON object or array, or YAML documents.
fn documents(text: &str) -> Result<Vec<(usize, Value)>, DocumentError> {
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| DocumentError::whole(1, format!("invalid JSON: {e}")))?;
        let docs = match json {
            serde_json::Value::Array(items) => items,
            other => vec![other],
        };
        return docs
            .into_iter()
            .enumerate()
            .map(|(i, doc)| {
                yaml_serde::to_value(doc)
                    .map(|v| (i + 1, v))
                    .map_err(|e| DocumentError::whole(i + 1, e.to_string()))
            })
            .collect();
    }
    let mut out = Vec::new();
    for (i, doc) in yaml_serde::Deserializer::from_str(text).enumerate() {
        let value = <Value as serde::Deserialize>::deserialize(doc)
            .map_err(|e| DocumentError::whole(i + 1, format!("invalid YAML: {e}")))?;
        out.push((i + 1, value));
    }
    Ok(out)
}

/// Parses every resource in `text` with the document number each came from.
pub fn parse_located(text: &str) -> Result<Vec<(usize, Resource)>, DocumentError> {
    let mut out = Vec::new();
    for (index, value) in documents(text)? {
        if value.is_null() {
            continue;
        }
        let resources = decode_document(value).map_err(|e| DocumentError::new(index, e))?;
        out.extend(resources.into_iter().map(|r| (index, r)));
    }
    Ok(out)
}

/// Parses multi-document YAML, JSON (an object or an array of objects) and `List`s into
/// resources, in file order. Strict: unknown fields and unknown `apiVersion`/`kind` pairs are
/// errors. Does not default or validate (see [`parse_and_validate_documents`]).
pub fn parse_documents(text: &str) -> Result<Vec<Resource>, DocumentError> {
    Ok(parse_located(text)?.into_iter().map(|(_, r)| r).collect())
}

/// [`parse_documents`], then [`Resource::normalize`] and [`Resource::validate`] each
/// resource; what `vrctl apply -f` does before writing.
pub fn parse_and_validate_documents(text: &str) -> Result<Vec<Resource>, DocumentError> {
    parse_located(text)?
        .into_iter()
        .map(|(index, mut resource)| {
            resource.normalize();
            resource.validate().map_err(|e| DocumentError {
                index,
                id: Some(resource.display_id()),
                path: e.path,
                message: e.message,
            })?;
            Ok(resource)
        })
        .collect()
}

/// Multi-document YAML (`---` between documents), as `vrctl get -o yaml` prints several
/// objects of mixed kinds.
pub fn resources_to_yaml(resources: &[Resource]) -> String {
    resources
        .iter()
        .map(Resource::to_yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}

/// The list envelope `calicoctl get <kind> -o yaml|json` prints: `<Kind>List` with the kind's
/// `apiVersion` when every item has the same kind, otherwise a `v1` `List`. Serialize it with
/// any serde format.
#[derive(Debug, Serialize)]
pub struct ResourceList<'a> {
    /// `apiVersion` of the list.
    #[serde(rename = "apiVersion")]
    pub api_version: &'static str,
    /// `<Kind>List` or `List`.
    pub kind: String,
    /// The objects.
    pub items: &'a [Resource],
}

impl<'a> ResourceList<'a> {
    /// Wraps `resources` in the envelope calicoctl would use.
    pub fn new(resources: &'a [Resource]) -> Self {
        let first = resources.first().map(Resource::kind);
        match first.filter(|k| resources.iter().all(|r| r.kind() == *k)) {
            Some(kind) => ResourceList {
                api_version: kind.api_version(),
                kind: format!("{}List", kind.kind_name()),
                items: resources,
            },
            None => ResourceList {
                api_version: K8S_CORE_API_VERSION,
                kind: "List".to_owned(),
                items: resources,
            },
        }
    }
}

/// One list document like `calicoctl get <kind> -o yaml` (see [`ResourceList`]).
pub fn resources_to_list_yaml(resources: &[Resource]) -> String {
    yaml_serde::to_string(&ResourceList::new(resources))
        .expect("invariant: resources have string keys")
}

#[cfg(test)]
mod tests {
    use super::super::{IpPool, Namespace};
    use super::*;

    const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool1}\nspec: {cidr: 10.1.0.0/16}\n";

    #[test]
    fn multi_document_error_names_document_object_and_field() {
        let text = format!(
            "{POOL}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: web\n---\n\
             apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: x\n\
             spec:\n  ingress:\n  - action: Allow\n    foo: bar\n"
        );
        let err = parse_documents(&text).unwrap_err();
        assert_eq!(err.index, 3);
        assert_eq!(err.id.as_deref(), Some("NetworkPolicy/default/x"));
        assert_eq!(err.path, "spec.ingress[0].foo");
        let shown = err.to_string();
        assert!(
            shown.starts_with(
                "document 3 (NetworkPolicy/default/x): spec.ingress[0].foo: unknown field \"foo\", expected one of \"action\""
            ),
            "{shown}"
        );
    }

    #[test]
    fn unknown_fields_anywhere_are_errors_with_paths() {
        let cases = [
            (
                "metadata: {name: p, colour: red}\nspec: {cidr: 10.0.0.0/8}",
                "metadata.colour",
            ),
            (
                "metadata: {name: p}\nspec: {cidr: 10.0.0.0/8, ipip: {enabled: true}}",
                "spec.ipip",
            ),
            (
                "metadata: {name: p}\nspec: {cidr: 10.0.0.0/8}\nstatus: {colour: red}",
                "status.colour",
            ),
            (
                "metadata: {name: p}\nspec: {cidr: 10.0.0.0/8}\nextra: 1",
                "extra",
            ),
            (
                "metadata: {name: p}\nspec: {cidr: 10.0.0.0/8, blockSize: big}",
                "spec.blockSize",
            ),
            (
                "metadata: {name: p, labels: {a: [1]}}\nspec: {cidr: 10.0.0.0/8}",
                "metadata.labels.a",
            ),
        ];
        for (body, path) in cases {
            let text = format!("apiVersion: projectcalico.org/v3\nkind: IPPool\n{body}\n");
            let err = parse_documents(&text).unwrap_err();
            assert_eq!(err.path, path, "{err}");
            assert_eq!(err.index, 1);
            assert_eq!(err.id.as_deref(), Some("IPPool/p"));
        }
        let err = parse_documents(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nspec: {cidr: 10.0.0.0/8}\n",
        )
        .unwrap_err();
        assert!(err.message.contains("missing field \"metadata\""), "{err}");
    }

    #[test]
    fn unknown_types_are_named() {
        let err = parse_documents(
            "apiVersion: projectcalico.org/v3\nkind: Frobnicator\nmetadata: {name: a}\n",
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 1: unknown resource type: apiVersion \"projectcalico.org/v3\", kind \"Frobnicator\""
        );
        let err = parse_documents("apiVersion: v1\nkind: NetworkPolicy\nmetadata: {name: a}\n")
            .unwrap_err();
        assert!(
            err.message.contains("\"v1\"") && err.message.contains("\"NetworkPolicy\""),
            "{err}"
        );
        let err = parse_documents("kind: IPPool\nmetadata: {name: a}\n").unwrap_err();
        assert_eq!(
            (err.path.as_str(), err.message.as_str()),
            ("apiVersion", "is required")
        );
        let err = parse_documents("apiVersion: 3\nkind: IPPool\n").unwrap_err();
        assert_eq!(err.path, "apiVersion");
        let err = parse_documents("- a\n- b\n").unwrap_err();
        assert!(err.message.contains("found a sequence"), "{err}");
    }

    #[test]
    fn empty_documents_are_skipped_but_counted() {
        let text = format!("---\n---\n# only a comment\n---\n{POOL}---\n");
        let docs = parse_located(&text).unwrap();
        assert_eq!(docs.len(), 1);
        assert_eq!(docs[0].0, 3);
        assert_eq!(
            docs[0].1,
            Resource::IpPool(IpPool::new("pool1", "10.1.0.0/16"))
        );
        assert!(parse_documents("").unwrap().is_empty());
        assert!(parse_documents("---\n").unwrap().is_empty());
    }

    #[test]
    fn yaml_syntax_errors_name_the_document() {
        let text =
            format!("{POOL}---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: [unclosed\n");
        let err = parse_documents(&text).unwrap_err();
        assert_eq!(err.index, 2);
        assert!(err.message.starts_with("invalid YAML"), "{err}");
    }

    #[test]
    fn v1_list_with_mixed_items() {
        let text = "apiVersion: v1
kind: List
metadata:
  resourceVersion: \"\"
items:
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata: {name: pool1}
  spec: {cidr: 10.1.0.0/16}
- apiVersion: v1
  kind: Namespace
  metadata: {name: web}
";
        let docs = parse_documents(text).unwrap();
        assert_eq!(
            docs,
            [
                Resource::IpPool(IpPool::new("pool1", "10.1.0.0/16")),
                Resource::Namespace(Namespace::new("web"))
            ]
        );
        let bad = text.replace(
            "metadata: {name: web}",
            "metadata: {name: web}\n  spec: {colour: red}",
        );
        let err = parse_documents(&bad).unwrap_err();
        assert_eq!(err.path, "items[1].spec.colour");
        assert_eq!(err.id.as_deref(), Some("Namespace/web"));
        let err = parse_documents("apiVersion: v1\nkind: List\nitems: []\nextra: 1\n").unwrap_err();
        assert_eq!(err.path, "extra");
        let err = parse_documents("apiVersion: v1\nkind: List\nitems: {}\n").unwrap_err();
        assert_eq!(err.path, "items");
        assert!(
            parse_documents("apiVersion: v1\nkind: List\nitems: []\n")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn calicoctl_kind_list_fills_in_item_types() {
        let text = "apiVersion: projectcalico.org/v3
kind: IPPoolList
metadata:
  resourceVersion: \"1234\"
items:
- metadata: {name: pool1}
  spec: {cidr: 10.1.0.0/16}
- apiVersion: projectcalico.org/v3
  kind: IPPool
  metadata: {name: pool2}
  spec: {cidr: 10.2.0.0/16}
";
        let docs = parse_documents(text).unwrap();
        assert_eq!(docs.len(), 2);
        assert_eq!(docs[1].name(), "pool2");
        let k8s = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicyList\nitems:\n- metadata: {name: a, namespace: b}\n  spec: {podSelector: {}}\n";
        assert_eq!(
            parse_documents(k8s).unwrap()[0].kind(),
            Kind::K8sNetworkPolicy
        );
        let err = parse_documents("apiVersion: projectcalico.org/v3\nkind: FooList\nitems: []\n")
            .unwrap_err();
        assert!(err.message.contains("\"FooList\""), "{err}");
    }

    #[test]
    fn json_object_and_array_input() {
        let one = r#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"pool1"},"spec":{"cidr":"10.1.0.0/16"}}"#;
        assert_eq!(
            parse_documents(one).unwrap(),
            [Resource::IpPool(IpPool::new("pool1", "10.1.0.0/16"))]
        );
        let many = format!(
            r#"[{one}, {{"apiVersion":"v1","kind":"Namespace","metadata":{{"name":"web","bogus":1}}}}]"#
        );
        let err = parse_documents(&many).unwrap_err();
        assert_eq!((err.index, err.path.as_str()), (2, "metadata.bogus"));
        let err = parse_documents("{\"apiVersion\": ").unwrap_err();
        assert!(err.message.starts_with("invalid JSON"), "{err}");
        let list = r#"{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"web"}}]}"#;
        assert_eq!(
            parse_documents(list).unwrap(),
            [Resource::Namespace(Namespace::new("web"))]
        );
    }

    #[test]
    fn from_json_errors() {
        let err = Resource::from_json("[]").unwrap_err();
        assert_eq!(err.message, "expected a JSON object");
        let err = Resource::from_json(r#"{"apiVersion":"v1","kind":"Pod"}"#).unwrap_err();
        assert!(err.message.contains("\"Pod\""), "{err}");
        let err = Resource::from_json(
            r#"{"apiVersion":"projectcalico.org/v3","kind":"NetworkPolicy","metadata":{"name":"x","namespace":"web"},"spec":{"egress":[{"action":"Jump"}]}}"#,
        )
        .unwrap_err();
        assert_eq!(err.id.as_deref(), Some("NetworkPolicy/web/x"));
        assert_eq!(err.path, "spec.egress[0].action");
        assert!(
            err.to_string().starts_with(
                "(NetworkPolicy/web/x): spec.egress[0].action: unknown variant \"Jump\""
            ),
            "{err}"
        );
    }

    #[test]
    fn validation_errors_are_located() {
        let text = format!(
            "{POOL}---\napiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: 10.0.0.0/33}}\n"
        );
        assert_eq!(parse_documents(&text).unwrap().len(), 2);
        let err = parse_and_validate_documents(&text).unwrap_err();
        assert_eq!(
            err.to_string(),
            "document 2 (IPPool/p): spec.cidr: \"10.0.0.0/33\" is not a valid CIDR"
        );
        let np = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: x}\nspec: {}\n";
        let docs = parse_and_validate_documents(np).unwrap();
        assert_eq!(docs[0].meta().namespace.as_deref(), Some("default"));
    }

    #[test]
    fn printing_multi_document_and_lists_parses_back() {
        let pools = vec![
            Resource::IpPool(IpPool::new("pool1", "10.1.0.0/16")),
            Resource::IpPool(IpPool::new("pool2", "10.2.0.0/16")),
        ];
        let yaml = resources_to_yaml(&pools);
        assert_eq!(yaml.matches("---\n").count(), 1);
        assert_eq!(parse_documents(&yaml).unwrap(), pools);

        let list = resources_to_list_yaml(&pools);
        assert!(
            list.starts_with("apiVersion: projectcalico.org/v3\nkind: IPPoolList\nitems:\n"),
            "{list}"
        );
        assert_eq!(parse_documents(&list).unwrap(), pools);

        let mut mixed = pools.clone();
        mixed.push(Resource::Namespace(Namespace::new("web")));
        let list = resources_to_list_yaml(&mixed);
        assert!(list.starts_with("apiVersion: v1\nkind: List\n"), "{list}");
        assert_eq!(parse_documents(&list).unwrap(), mixed);
        assert_eq!(parse_documents(&resources_to_list_yaml(&[])).unwrap(), []);
        assert_eq!(resources_to_yaml(&[]), "");
    }
}
