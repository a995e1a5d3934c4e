//! How `vrctl get` prints resources: a calicoctl-like table (`NAMESPACE` for namespaced
//! kinds, `NAME`, and with `-o wide` a few kind-specific columns), YAML (one object for
//! `get KIND NAME`, a `<Kind>List` otherwise, both accepted back by `apply`) and JSON of the
//! same shape. Pure functions from resources to text.

use clap::ValueEnum;
use datastore::resource::{Kind, Resource, ResourceList, resources_to_list_yaml};
use serde_json::Value;

/// `-o` formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum Format {
    /// A table of names (calicoctl's default `ps` output).
    #[default]
    Table,
    /// The table with kind-specific columns.
    Wide,
    /// YAML that `vrctl apply -f` accepts back.
    Yaml,
    /// JSON that `vrctl apply -f` accepts back.
    Json,
}

/// A kind-specific `-o wide` column: header and JSON pointer into the resource.
struct Column {
    header: &'static str,
    pointer: &'static str,
}

const fn col(header: &'static str, pointer: &'static str) -> Column {
    Column { header, pointer }
}

/// The extra columns `-o wide` shows for `kind`.
fn wide_columns(kind: Kind) -> Vec<Column> {
    match kind {
        Kind::IpPool => vec![
            col("CIDR", "/spec/cidr"),
            col("NAT", "/spec/natOutgoing"),
            col("IPIPMODE", "/spec/ipipMode"),
            col("VXLANMODE", "/spec/vxlanMode"),
            col("DISABLED", "/spec/disabled"),
            col("SELECTOR", "/spec/nodeSelector"),
        ],
        Kind::Node => vec![
            col("ASN", "/spec/bgp/asNumber"),
            col("IPV4", "/spec/bgp/ipv4Address"),
            col("IPV6", "/spec/bgp/ipv6Address"),
        ],
        Kind::BgpPeer => vec![
            col("PEERIP", "/spec/peerIP"),
            col("NODE", "/spec/node"),
            col("ASN", "/spec/asNumber"),
        ],
        Kind::BgpConfiguration => vec![
            col("LOGSEVERITY", "/spec/logSeverityScreen"),
            col("MESHENABLED", "/spec/nodeToNodeMeshEnabled"),
            col("ASNUMBER", "/spec/asNumber"),
        ],
        Kind::NetworkPolicy | Kind::GlobalNetworkPolicy => vec![
            col("TIER", "/spec/tier"),
            col("ORDER", "/spec/order"),
            col("SELECTOR", "/spec/selector"),
        ],
        Kind::NetworkSet | Kind::GlobalNetworkSet => vec![col("NETS", "/spec/nets")],
        Kind::Tier => vec![
            col("ORDER", "/spec/order"),
            col("DEFAULTACTION", "/spec/defaultAction"),
        ],
        Kind::Profile => vec![col("LABELS", "/spec/labelsToApply")],
        Kind::WorkloadEndpoint => vec![
            col("WORKLOAD", "/spec/workload"),
            col("NODE", "/spec/node"),
            col("NETWORKS", "/spec/ipNetworks"),
            col("INTERFACE", "/spec/interfaceName"),
        ],
        Kind::HostEndpoint => vec![
            col("NODE", "/spec/node"),
            col("INTERFACE", "/spec/interfaceName"),
            col("IPS", "/spec/expectedIPs"),
        ],
        Kind::FelixConfiguration | Kind::IpamConfiguration => vec![],
        Kind::K8sNetworkPolicy => vec![
            col("PODSELECTOR", "/spec/podSelector/matchLabels"),
            col("TYPES", "/spec/policyTypes"),
        ],
        Kind::Namespace => vec![col("LABELS", "/metadata/labels")],
    }
}

/// One table cell from a JSON value: scalars as written, lists comma-joined, maps as
/// `k=v` pairs, absent as empty.
fn cell(value: Option<&Value>) -> String {
    match value {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| cell(Some(v)))
            .collect::<Vec<_>>()
            .join(","),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| format!("{k}={}", cell(Some(v))))
            .collect::<Vec<_>>()
            .join(","),
        Some(other) => other.to_string(),
    }
}

/// Lays out rows under headers, columns separated by three spaces (calicoctl's `ps` style).
fn layout(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut text = String::new();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                text.push_str("   ");
            }
            text.push_str(c);
            let pad = widths[i].saturating_sub(c.chars().count());
            text.extend(std::iter::repeat_n(' ', pad));
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(&mut headers.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

/// The table for `resources` of `kind`; `wide` adds the kind-specific columns.
pub fn table(kind: Kind, resources: &[Resource], wide: bool) -> String {
    let extra = if wide { wide_columns(kind) } else { vec![] };
    let mut headers = Vec::new();
    if kind.is_namespaced() {
        headers.push("NAMESPACE");
    }
    headers.push("NAME");
    headers.extend(extra.iter().map(|c| c.header));
    let rows: Vec<Vec<String>> = resources
        .iter()
        .map(|r| {
            let json = to_value(r);
            let mut row = Vec::new();
            if let Some(ns) = r.namespace_or_default() {
                row.push(ns.to_string());
            }
            row.push(r.name().to_string());
            row.extend(extra.iter().map(|c| cell(json.pointer(c.pointer))));
            row
        })
        .collect();
    layout(&headers, &rows)
}

fn to_value(resource: &Resource) -> Value {
    serde_json::to_value(resource).expect("invariant: resources have string keys")
}

/// JSON of one object, or of a `<Kind>List` (like [`resources_to_list_yaml`]).
pub fn json(resources: &[Resource], single: bool) -> String {
    let text = match (single, resources) {
        (true, [one]) => serde_json::to_string_pretty(one),
        _ => serde_json::to_string_pretty(&ResourceList::new(resources)),
    };
    let mut text = text.expect("invariant: resources have string keys and finite values");
    text.push('\n');
    text
}

/// YAML of one object, or a `<Kind>List`.
pub fn yaml(resources: &[Resource], single: bool) -> String {
    match (single, resources) {
        (true, [one]) => one.to_yaml(),
        _ => resources_to_list_yaml(resources),
    }
}

/// Writes `text` to standard output; a reader that went away (`vrctl get … | head`) is not
/// an error.
pub fn emit(text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(e.into()),
        _ => Ok(()),
    }
}

/// Renders `resources` of `kind` in `format`; `single` is true for `get KIND NAME`.
pub fn render(format: Format, kind: Kind, resources: &[Resource], single: bool) -> String {
    match format {
        Format::Table => table(kind, resources, false),
        Format::Wide => table(kind, resources, true),
        Format::Yaml => yaml(resources, single),
        Format::Json => json(resources, single),
    }
}

#[cfg(test)]
mod tests {
    use datastore::resource::{IpPool, parse_documents};

    use super::*;

    fn pools() -> Vec<Resource> {
        vec![
            Resource::IpPool(IpPool::new("pool-a", "10.1.0.0/16")),
            Resource::IpPool(IpPool::new("b", "fd00::/48")),
        ]
    }

    #[test]
    fn table_aligns_names_and_wide_adds_cidr() {
        assert_eq!(table(Kind::IpPool, &pools(), false), "NAME\npool-a\nb\n");
        assert_eq!(
            table(Kind::IpPool, &pools(), true),
            "NAME     CIDR          NAT   IPIPMODE   VXLANMODE   DISABLED   SELECTOR\n\
             pool-a   10.1.0.0/16\n\
             b        fd00::/48\n"
        );
    }

    #[test]
    fn namespaced_kinds_lead_with_the_namespace() {
        let docs = parse_documents(
            "apiVersion: projectcalico.org/v3\nkind: NetworkSet\nmetadata: {name: n1, namespace: prod}\nspec: {nets: [10.0.0.0/8, 192.168.0.0/16]}\n",
        )
        .unwrap();
        assert_eq!(
            table(Kind::NetworkSet, &docs, true),
            "NAMESPACE   NAME   NETS\nprod        n1     10.0.0.0/8,192.168.0.0/16\n"
        );
    }

    #[test]
    fn yaml_and_json_parse_back() {
        let pools = pools();
        for format in [Format::Yaml, Format::Json] {
            let text = render(format, Kind::IpPool, &pools, false);
            assert_eq!(parse_documents(&text).unwrap(), pools, "{text}");
            let one = render(format, Kind::IpPool, &pools[..1], true);
            assert_eq!(parse_documents(&one).unwrap(), pools[..1], "{one}");
        }
        let list = json(&pools, false);
        assert!(
            list.starts_with(
                "{\n  \"apiVersion\": \"projectcalico.org/v3\",\n  \"kind\": \"IPPoolList\""
            ),
            "{list}"
        );
        assert!(parse_documents(&yaml(&[], false)).unwrap().is_empty());
        assert!(parse_documents(&json(&[], false)).unwrap().is_empty());
    }

    #[test]
    fn cells_render_scalars_lists_and_maps() {
        let v: Value = serde_json::json!({"a": 1, "b": [1, "x"], "c": {"k": "v"}, "d": true});
        assert_eq!(cell(v.pointer("/a")), "1");
        assert_eq!(cell(v.pointer("/b")), "1,x");
        assert_eq!(cell(v.pointer("/c")), "k=v");
        assert_eq!(cell(v.pointer("/d")), "true");
        assert_eq!(cell(v.pointer("/missing")), "");
    }
}
