//! Conversion and validation from `datastore::resource` types (Calico `projectcalico.org/v3`
//! and Kubernetes `networking.k8s.io/v1` / `v1`) into the normalized [`Model`].
//!
//! Every rejection names the field path and value, e.g.
//! `spec.ingress[0].destination.ports[1]: "80:70" is not a valid port range`. Features the
//! dataplane does not enforce (L7 `http` matches, `services`, service-account *selectors*,
//! host-endpoint-only options) are rejected as "not supported", never silently ignored.
//! Selector semantics follow libcalico-go's `GetEntityRuleSelector`; Kubernetes policies follow
//! `K8sNetworkPolicyToCalico` (tier `default`, order 1000, every rule `Allow`, missing protocol
//! = TCP, `endPort` → range, `ipBlock.except` → `notNets`).

use std::collections::BTreeSet;

use datastore::resource::k8s::{K8sPeer, K8sPort, LabelSelector};
use datastore::resource::numorstring::{IntOrString, Port, Protocol as DsProtocol};
use datastore::resource::rule::{
    Action as DsAction, EntityRule, IcmpFields, PolicyType, Rule as DsRule,
};
use datastore::resource::{K8sNetworkPolicy, Resource};
use ipnetwork::IpNetwork;

use crate::model::{
    Endpoint, EndpointId, Model, ModelError, ModelParts, NamedPort, Namespace, NetworkSet, Policy,
    PolicyId, PolicyKind, Profile, Tier, TierDefaultAction,
};
use crate::rule::{
    Action, EntityMatch, IcmpMatch, InvalidValue, IpVersion, PortMatch, Protocol, Rule,
};
use crate::selector::{Expr, SERVICE_ACCOUNT_LABEL, Selector};

/// Order Calico gives every converted Kubernetes NetworkPolicy.
pub const K8S_POLICY_ORDER: f64 = 1000.0;

/// A resource field that failed validation.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{resource}: {path}: {detail}")]
pub struct ConvertError {
    /// The resource, e.g. `NetworkPolicy prod/allow-web`.
    pub resource: String,
    /// Field path, e.g. `spec.ingress[0].destination.ports[1]`.
    pub path: String,
    /// What is wrong, usually quoting the value.
    pub detail: String,
}

/// Why a set of resources does not load as a model.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoadError {
    /// A field failed validation.
    #[error(transparent)]
    Convert(#[from] ConvertError),
    /// The objects are inconsistent with each other.
    #[error(transparent)]
    Model(#[from] ModelError),
}

/// Field-path error before the resource name is attached.
struct FieldError {
    path: String,
    detail: String,
}

type Field<T> = Result<T, FieldError>;

fn at(path: &str, detail: impl ToString) -> FieldError {
    FieldError {
        path: path.to_string(),
        detail: detail.to_string(),
    }
}

fn invalid(path: &str, e: InvalidValue) -> FieldError {
    at(path, e)
}

fn unsupported(path: &str, what: &str) -> FieldError {
    at(
        path,
        format!("{what} is not supported by the vrouter dataplane"),
    )
}

fn parse_selector(path: &str, text: &str) -> Field<Selector> {
    let s = Selector::parse(text).map_err(|e| {
        at(
            path,
            format!("{text:?} is not a valid selector: {}", e.kind),
        )
    })?;
    if s.uses_global() {
        return Err(at(
            path,
            format!("{text:?}: global() may only be used as a whole namespaceSelector"),
        ));
    }
    Ok(s)
}

fn parse_net(path: &str, text: &str) -> Field<IpNetwork> {
    text.parse::<IpNetwork>()
        .map_err(|_| at(path, format!("{text:?} is not a valid CIDR")))
}

fn protocol(path: &str, p: &DsProtocol) -> Field<Protocol> {
    match p {
        DsProtocol::Number(0) => Err(at(
            path,
            "\"0\" is not a valid protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)",
        )),
        DsProtocol::Number(n) => Ok(Protocol(*n)),
        DsProtocol::Name(s) => Protocol::parse(s).map_err(|e| invalid(path, e)),
    }
}

fn port(path: &str, p: &Port) -> Field<PortMatch> {
    match p {
        Port::Number(n) => Ok(PortMatch::Range {
            first: *n,
            last: *n,
        }),
        Port::Text(s) => PortMatch::parse(s).map_err(|e| invalid(path, e)),
    }
}

fn icmp(path: &str, f: &Option<IcmpFields>) -> Field<Option<IcmpMatch>> {
    match f {
        None => Ok(None),
        Some(f) => IcmpMatch::new(f.icmp_type.map(i64::from), f.code.map(i64::from))
            .map_err(|e| invalid(path, e)),
    }
}

/// Converts one side of a Calico rule. `namespace` is the policy's namespace (`None` for
/// global policies and profiles).
fn entity(
    path: &str,
    e: &EntityRule,
    namespace: Option<&str>,
    versions: &mut BTreeSet<IpVersion>,
) -> Field<EntityMatch> {
    if e.services.is_some() {
        return Err(unsupported(
            &format!("{path}.services"),
            "matching on services",
        ));
    }
    let mut nets_of = |field: &str, list: &[String], negated: bool| -> Field<Vec<IpNetwork>> {
        let mut out = Vec::new();
        for (i, n) in list.iter().enumerate() {
            let p = format!("{path}.{field}[{i}]");
            let net = parse_net(&p, n)?;
            if negated && net.prefix() == 0 {
                return Err(at(
                    &p,
                    format!("{n:?} is a catch-all CIDR: negating it matches no traffic"),
                ));
            }
            versions.insert(IpVersion::of_net(&net));
            out.push(net);
        }
        Ok(out)
    };
    let nets = nets_of("nets", &e.nets, false)?;
    let not_nets = nets_of("notNets", &e.not_nets, true)?;

    let selector = e
        .selector
        .as_deref()
        .map(|s| parse_selector(&format!("{path}.selector"), s))
        .transpose()?;
    let not_selector = e
        .not_selector
        .as_deref()
        .map(|s| parse_selector(&format!("{path}.notSelector"), s))
        .transpose()?;
    let namespace_selector = match e.namespace_selector.as_deref() {
        None => None,
        Some(text) => {
            let p = format!("{path}.namespaceSelector");
            let s = Selector::parse(text).map_err(|err| {
                at(
                    &p,
                    format!("{text:?} is not a valid selector: {}", err.kind),
                )
            })?;
            if s.uses_global() && !s.is_global() {
                return Err(at(
                    &p,
                    format!("{text:?}: global() must be the whole namespaceSelector"),
                ));
            }
            Some(s)
        }
    };
    let sa_selector = match &e.service_accounts {
        None => None,
        Some(sa) => {
            if sa.selector.is_some() {
                return Err(unsupported(
                    &format!("{path}.serviceAccounts.selector"),
                    "selecting service accounts by label",
                ));
            }
            if sa.names.is_empty() {
                None
            } else {
                let names = sa.names.iter().cloned().collect();
                Some(Selector::from_expr(Expr::In(
                    SERVICE_ACCOUNT_LABEL.to_string(),
                    names,
                )))
            }
        }
    };

    // libcalico-go GetEntityRuleSelector.
    let ns_scope = match (&namespace_selector, namespace) {
        (Some(s), _) => Some(s.namespace_to_entity()),
        (None, Some(ns)) => Some(Selector::in_namespace(ns)),
        (None, None) => None,
    };
    let mut parts: Vec<Selector> = sa_selector.into_iter().chain(selector).collect();
    let combined = match parts.len() {
        0 => None,
        1 => parts.pop(),
        _ => Some(parts[0].and(&parts[1])),
    };
    let effective = match ns_scope {
        Some(scope)
            if combined.is_some() || not_selector.is_some() || namespace_selector.is_some() =>
        {
            Some(combined.map(|c| scope.and(&c)).unwrap_or(scope))
        }
        _ => combined,
    };

    let ports = e
        .ports
        .iter()
        .enumerate()
        .map(|(i, p)| port(&format!("{path}.ports[{i}]"), p))
        .collect::<Field<Vec<_>>>()?;
    let not_ports = e
        .not_ports
        .iter()
        .enumerate()
        .map(|(i, p)| port(&format!("{path}.notPorts[{i}]"), p))
        .collect::<Field<Vec<_>>>()?;
    Ok(EntityMatch {
        nets,
        not_nets,
        selector: effective,
        not_selector,
        ports,
        not_ports,
    })
}

fn action(a: DsAction) -> Action {
    match a {
        DsAction::Allow => Action::Allow,
        DsAction::Deny => Action::Deny,
        DsAction::Pass => Action::Pass,
        DsAction::Log => Action::Log,
    }
}

/// Converts and validates one Calico rule at `path` (e.g. `spec.ingress[0]`).
fn calico_rule(path: &str, r: &DsRule, namespace: Option<&str>) -> Field<Rule> {
    if r.http.is_some() {
        return Err(unsupported(&format!("{path}.http"), "L7 http matching"));
    }
    let ip_version = r
        .ip_version
        .map(|v| {
            IpVersion::from_number(i64::from(v))
                .map_err(|e| invalid(&format!("{path}.ipVersion"), e))
        })
        .transpose()?;
    let proto = r
        .protocol
        .as_ref()
        .map(|p| protocol(&format!("{path}.protocol"), p))
        .transpose()?;
    let not_proto = r
        .not_protocol
        .as_ref()
        .map(|p| protocol(&format!("{path}.notProtocol"), p))
        .transpose()?;
    let icmp_match = icmp(&format!("{path}.icmp"), &r.icmp)?;
    let not_icmp = icmp(&format!("{path}.notICMP"), &r.not_icmp)?;
    for (field, m) in [("icmp", &icmp_match), ("notICMP", &not_icmp)] {
        if m.is_none() {
            continue;
        }
        match proto {
            Some(Protocol::ICMP) if ip_version == Some(IpVersion::V6) => {
                return Err(at(
                    &format!("{path}.{field}"),
                    "ICMP matches need ipVersion 4 with protocol ICMP",
                ));
            }
            Some(Protocol::ICMPV6) if ip_version == Some(IpVersion::V4) => {
                return Err(at(
                    &format!("{path}.{field}"),
                    "ICMPv6 matches need ipVersion 6 with protocol ICMPv6",
                ));
            }
            Some(p) if p.is_icmp() => {}
            _ => {
                return Err(at(
                    &format!("{path}.{field}"),
                    "ICMP matches need protocol ICMP or ICMPv6",
                ));
            }
        }
    }
    let mut versions = BTreeSet::new();
    let empty = EntityRule::default();
    let source = entity(
        &format!("{path}.source"),
        r.source.as_ref().unwrap_or(&empty),
        namespace,
        &mut versions,
    )?;
    let destination = entity(
        &format!("{path}.destination"),
        r.destination.as_ref().unwrap_or(&empty),
        namespace,
        &mut versions,
    )?;
    if versions.len() > 1 {
        return Err(at(path, "rule contains both IPv4 and IPv6 CIDRs"));
    }
    if let (Some(v), Some(cidr_v)) = (ip_version, versions.first())
        && v != *cidr_v
    {
        return Err(at(
            &format!("{path}.ipVersion"),
            "rule IP version does not match its CIDRs' version",
        ));
    }
    for (side_name, side) in [("source", &source), ("destination", &destination)] {
        for (field, list) in [("ports", &side.ports), ("notPorts", &side.not_ports)] {
            for (i, p) in list.iter().enumerate() {
                let numeric = matches!(p, PortMatch::Range { .. });
                let ok = match proto {
                    Some(pr) => pr.supports_ports(),
                    None => !numeric,
                };
                if !ok {
                    return Err(at(
                        &format!("{path}.{side_name}.{field}[{i}]"),
                        format!(
                            "{:?} needs protocol TCP, UDP, UDPLite or SCTP",
                            p.to_string()
                        ),
                    ));
                }
            }
        }
    }
    Ok(Rule {
        action: action(r.action),
        ip_version,
        protocol: proto,
        not_protocol: not_proto,
        icmp: icmp_match,
        not_icmp,
        source,
        destination,
    })
}

fn calico_rules(field: &str, rules: &[DsRule], namespace: Option<&str>) -> Field<Vec<Rule>> {
    rules
        .iter()
        .enumerate()
        .map(|(i, r)| calico_rule(&format!("spec.{field}[{i}]"), r, namespace))
        .collect()
}

fn types(list: &[PolicyType]) -> (bool, bool) {
    (
        list.contains(&PolicyType::Ingress),
        list.contains(&PolicyType::Egress),
    )
}

fn label_selector(path: &str, ls: &LabelSelector) -> Field<Selector> {
    let mut operands = Vec::new();
    for (k, v) in &ls.match_labels {
        operands.push(Expr::Eq(k.clone(), v.clone()));
    }
    for (i, req) in ls.match_expressions.iter().enumerate() {
        let p = format!("{path}.matchExpressions[{i}]");
        let values: BTreeSet<String> = req.values.iter().cloned().collect();
        let e = match req.operator.as_str() {
            "In" | "NotIn" if values.is_empty() => {
                return Err(at(&p, format!("operator {} needs values", req.operator)));
            }
            "In" => Expr::In(req.key.clone(), values),
            "NotIn" => Expr::NotIn(req.key.clone(), values),
            "Exists" | "DoesNotExist" if !values.is_empty() => {
                return Err(at(&p, format!("operator {} takes no values", req.operator)));
            }
            "Exists" => Expr::Has(req.key.clone()),
            "DoesNotExist" => Expr::Not(Box::new(Expr::Has(req.key.clone()))),
            other => {
                return Err(at(
                    &format!("{p}.operator"),
                    format!("{other:?} is not a valid operator (In, NotIn, Exists, DoesNotExist)"),
                ));
            }
        };
        operands.push(e);
    }
    for op in &operands {
        if let Expr::Eq(k, _) | Expr::In(k, _) | Expr::NotIn(k, _) | Expr::Has(k) = op
            && !crate::selector::is_valid_label(k)
        {
            return Err(at(path, format!("{k:?} is not a valid label key")));
        }
    }
    Ok(match operands.len() {
        0 => Selector::all(),
        1 => Selector::from_expr(operands.remove(0)),
        _ => Selector::from_expr(Expr::And(operands)),
    })
}

fn k8s_peer(path: &str, peer: &K8sPeer, namespace: &str) -> Field<EntityMatch> {
    if let Some(block) = &peer.ip_block {
        if peer.pod_selector.is_some() || peer.namespace_selector.is_some() {
            return Err(at(
                path,
                "ipBlock cannot be combined with podSelector or namespaceSelector",
            ));
        }
        let cidr = parse_net(&format!("{path}.ipBlock.cidr"), &block.cidr)?;
        let mut not_nets = Vec::new();
        for (i, e) in block.except.iter().enumerate() {
            let p = format!("{path}.ipBlock.except[{i}]");
            let net = parse_net(&p, e)?;
            if IpVersion::of_net(&net) != IpVersion::of_net(&cidr)
                || !cidr.contains(net.ip())
                || net.prefix() < cidr.prefix()
            {
                return Err(at(&p, format!("{e:?} is not inside {:?}", block.cidr)));
            }
            not_nets.push(net);
        }
        return Ok(EntityMatch {
            nets: vec![cidr],
            not_nets,
            ..EntityMatch::default()
        });
    }
    let pods = peer
        .pod_selector
        .as_ref()
        .map(|s| label_selector(&format!("{path}.podSelector"), s))
        .transpose()?;
    let selector = match &peer.namespace_selector {
        Some(ns) => {
            let ns_sel =
                label_selector(&format!("{path}.namespaceSelector"), ns)?.namespace_to_entity();
            pods.map(|p| ns_sel.and(&p)).unwrap_or(ns_sel)
        }
        None => match pods {
            Some(p) => Selector::in_namespace(namespace).and(&p),
            None => {
                return Err(at(
                    path,
                    "a peer needs podSelector, namespaceSelector or ipBlock",
                ));
            }
        },
    };
    Ok(EntityMatch {
        selector: Some(selector),
        ..EntityMatch::default()
    })
}

fn k8s_port(path: &str, p: &K8sPort) -> Field<(Protocol, Option<PortMatch>)> {
    let proto = match p.protocol.as_deref() {
        None | Some("TCP") => Protocol::TCP,
        Some("UDP") => Protocol::UDP,
        Some("SCTP") => Protocol::SCTP,
        Some(other) => {
            return Err(at(
                &format!("{path}.protocol"),
                format!("{other:?} is not a valid protocol (TCP, UDP, SCTP)"),
            ));
        }
    };
    let m = match (&p.port, p.end_port) {
        (None, Some(_)) => {
            return Err(at(
                &format!("{path}.endPort"),
                "endPort needs a numeric port",
            ));
        }
        (None, None) => None,
        (Some(IntOrString::String(name)), None) => {
            Some(PortMatch::parse(name).map_err(|e| invalid(&format!("{path}.port"), e))?)
        }
        (Some(IntOrString::String(_)), Some(_)) => {
            return Err(at(
                &format!("{path}.endPort"),
                "endPort cannot be used with a named port",
            ));
        }
        (Some(IntOrString::Int(n)), end) => {
            let first = u16::try_from(*n).ok().filter(|n| *n > 0).ok_or_else(|| {
                at(
                    &format!("{path}.port"),
                    format!("\"{n}\" is not a valid port number (1-65535)"),
                )
            })?;
            let last = match end {
                None => first,
                Some(e) => u16::try_from(e)
                    .ok()
                    .filter(|e| *e >= first)
                    .ok_or_else(|| {
                        at(
                            &format!("{path}.endPort"),
                            format!("\"{e}\" must be a port number >= port {first}"),
                        )
                    })?,
            };
            Some(PortMatch::Range { first, last })
        }
    };
    Ok((proto, m))
}

/// One Kubernetes ingress/egress rule → Calico rules (one per peer × port entry; union).
fn k8s_rule(
    path: &str,
    peers_field: &str,
    peers: &[K8sPeer],
    ports: &[K8sPort],
    namespace: &str,
    ingress: bool,
) -> Field<Vec<Rule>> {
    let peer_matches: Vec<EntityMatch> = if peers.is_empty() {
        vec![EntityMatch::default()]
    } else {
        peers
            .iter()
            .enumerate()
            .map(|(i, p)| k8s_peer(&format!("{path}.{peers_field}[{i}]"), p, namespace))
            .collect::<Field<_>>()?
    };
    let port_entries: Vec<(Option<Protocol>, Option<PortMatch>)> = if ports.is_empty() {
        vec![(None, None)]
    } else {
        ports
            .iter()
            .enumerate()
            .map(|(i, p)| k8s_port(&format!("{path}.ports[{i}]"), p).map(|(pr, m)| (Some(pr), m)))
            .collect::<Field<_>>()?
    };
    let mut out = Vec::new();
    for peer in &peer_matches {
        for (proto, port_match) in &port_entries {
            let mut r = Rule::new(Action::Allow);
            r.protocol = *proto;
            let mut dst = EntityMatch {
                ports: port_match.iter().cloned().collect(),
                ..EntityMatch::default()
            };
            if ingress {
                r.source = peer.clone();
            } else {
                dst.nets = peer.nets.clone();
                dst.not_nets = peer.not_nets.clone();
                dst.selector = peer.selector.clone();
            }
            r.destination = dst;
            out.push(r);
        }
    }
    Ok(out)
}

fn k8s_policy(p: &K8sNetworkPolicy, namespace: &str) -> Field<Policy> {
    let pods = match &p.spec.pod_selector {
        Some(s) => label_selector("spec.podSelector", s)?,
        None => Selector::all(),
    };
    let mut ingress = Vec::new();
    for (i, r) in p.spec.ingress_rules().iter().enumerate() {
        ingress.extend(k8s_rule(
            &format!("spec.ingress[{i}]"),
            "from",
            &r.from,
            &r.ports,
            namespace,
            true,
        )?);
    }
    let mut egress = Vec::new();
    for (i, r) in p.spec.egress_rules().iter().enumerate() {
        egress.extend(k8s_rule(
            &format!("spec.egress[{i}]"),
            "to",
            &r.to,
            &r.ports,
            namespace,
            false,
        )?);
    }
    let (applies_ingress, applies_egress) = types(&p.spec.effective_policy_types());
    Ok(Policy {
        id: PolicyId {
            kind: PolicyKind::KubernetesNetworkPolicy,
            namespace: Some(namespace.to_string()),
            name: p.metadata.name.clone(),
        },
        tier: crate::model::DEFAULT_TIER.to_string(),
        order: Some(K8S_POLICY_ORDER),
        selector: Selector::in_namespace(namespace).and(&pods),
        applies_ingress,
        applies_egress,
        ingress,
        egress,
    })
}

fn policy_selector(path: &str, text: Option<&str>) -> Field<Selector> {
    match text {
        None => Ok(Selector::all()),
        Some(t) => parse_selector(path, t),
    }
}

/// Adds one resource to `parts`; kinds that carry no policy meaning (pools, nodes, BGP, ...)
/// are skipped.
fn add_resource(parts: &mut ModelParts, r: &Resource) -> Field<()> {
    let ns = r.namespace_or_default().unwrap_or("default").to_string();
    match r {
        Resource::NetworkPolicy(p) => {
            if p.spec.service_account_selector.is_some() {
                return Err(unsupported(
                    "spec.serviceAccountSelector",
                    "selecting endpoints by service-account labels",
                ));
            }
            let selector = Selector::in_namespace(&ns).and(&policy_selector(
                "spec.selector",
                p.spec.selector.as_deref(),
            )?);
            let (applies_ingress, applies_egress) = types(&p.spec.effective_types());
            parts.policies.push(Policy {
                id: PolicyId {
                    kind: PolicyKind::NetworkPolicy,
                    namespace: Some(ns.clone()),
                    name: p.metadata.name.clone(),
                },
                tier: p.spec.tier().to_string(),
                order: p.spec.order.map(|o| o.0),
                selector,
                applies_ingress,
                applies_egress,
                ingress: calico_rules("ingress", &p.spec.ingress, Some(&ns))?,
                egress: calico_rules("egress", &p.spec.egress, Some(&ns))?,
            });
        }
        Resource::GlobalNetworkPolicy(p) => {
            let s = &p.spec;
            if s.service_account_selector.is_some() {
                return Err(unsupported(
                    "spec.serviceAccountSelector",
                    "selecting endpoints by service-account labels",
                ));
            }
            for (field, v) in [
                ("doNotTrack", s.do_not_track),
                ("preDNAT", s.pre_dnat),
                ("applyOnForward", s.apply_on_forward),
            ] {
                if v == Some(true) {
                    return Err(unsupported(
                        &format!("spec.{field}"),
                        "host-endpoint policy",
                    ));
                }
            }
            let mut selector = policy_selector("spec.selector", s.selector.as_deref())?;
            if let Some(text) = s
                .namespace_selector
                .as_deref()
                .filter(|t| !t.trim().is_empty())
            {
                selector = parse_selector("spec.namespaceSelector", text)?
                    .namespace_to_entity()
                    .and(&selector);
            }
            let (applies_ingress, applies_egress) = types(&s.effective_types());
            parts.policies.push(Policy {
                id: PolicyId {
                    kind: PolicyKind::GlobalNetworkPolicy,
                    namespace: None,
                    name: p.metadata.name.clone(),
                },
                tier: s.tier().to_string(),
                order: s.order.map(|o| o.0),
                selector,
                applies_ingress,
                applies_egress,
                ingress: calico_rules("ingress", &s.ingress, None)?,
                egress: calico_rules("egress", &s.egress, None)?,
            });
        }
        Resource::K8sNetworkPolicy(p) => parts.policies.push(k8s_policy(p, &ns)?),
        Resource::Tier(t) => {
            let default_action = match t.spec.default_action {
                None | Some(DsAction::Deny) => TierDefaultAction::Deny,
                Some(DsAction::Pass) => TierDefaultAction::Pass,
                Some(other) => {
                    return Err(at(
                        "spec.defaultAction",
                        format!(
                            "\"{}\" is not a valid tier default action (Deny, Pass)",
                            action(other)
                        ),
                    ));
                }
            };
            parts.tiers.push(Tier {
                name: t.metadata.name.clone(),
                order: t.effective_order(),
                default_action,
            });
        }
        Resource::Profile(p) => parts.profiles.push(Profile {
            name: p.metadata.name.clone(),
            labels_to_apply: p.spec.labels_to_apply.clone(),
            ingress: calico_rules("ingress", &p.spec.ingress, None)?,
            egress: calico_rules("egress", &p.spec.egress, None)?,
        }),
        Resource::NetworkSet(s) => parts.network_sets.push(NetworkSet {
            namespace: Some(ns),
            name: s.metadata.name.clone(),
            labels: s.metadata.labels.clone(),
            nets: nets_field("spec.nets", &s.spec.nets)?,
        }),
        Resource::GlobalNetworkSet(s) => parts.network_sets.push(NetworkSet {
            namespace: None,
            name: s.metadata.name.clone(),
            labels: s.metadata.labels.clone(),
            nets: nets_field("spec.nets", &s.spec.nets)?,
        }),
        Resource::Namespace(n) => parts.namespaces.push(Namespace {
            name: n.metadata.name.clone(),
            labels: n.metadata.labels.clone(),
        }),
        Resource::WorkloadEndpoint(w) => {
            let mut ports = Vec::new();
            for (i, p) in w.spec.ports.iter().enumerate() {
                let Some(name) = &p.name else { continue };
                let proto = protocol(&format!("spec.ports[{i}].protocol"), &p.protocol)?;
                ports.push(NamedPort {
                    name: name.clone(),
                    protocol: proto,
                    port: p.port,
                });
            }
            parts.endpoints.push(Endpoint {
                id: EndpointId::new(ns, w.metadata.name.clone()),
                labels: w.metadata.labels.clone(),
                nets: nets_field("spec.ipNetworks", &w.spec.ip_networks)?,
                ports,
                profiles: w.spec.profiles.clone(),
                service_account: w.spec.service_account_name.clone(),
            });
        }
        Resource::HostEndpoint(h) => {
            // A host endpoint is an endpoint without a namespace: only cluster-wide
            // selectors (GlobalNetworkPolicy, global sets) can select it, it gets no
            // namespace profile, and with no policy and no profile it denies (Calico).
            let mut ports = Vec::new();
            for (i, p) in h.spec.ports.iter().enumerate() {
                let proto = protocol(&format!("spec.ports[{i}].protocol"), &p.protocol)?;
                ports.push(NamedPort {
                    name: p.name.clone(),
                    protocol: proto,
                    port: p.port,
                });
            }
            parts.endpoints.push(Endpoint {
                id: EndpointId::host(h.metadata.name.clone()),
                labels: h.metadata.labels.clone(),
                nets: nets_field("spec.expectedIPs", &h.spec.expected_ips)?,
                ports,
                profiles: h.spec.profiles.clone(),
                service_account: None,
            });
        }
        _ => {}
    }
    Ok(())
}

fn nets_field(field: &str, list: &[String]) -> Field<Vec<IpNetwork>> {
    list.iter()
        .enumerate()
        .map(|(i, n)| parse_net(&format!("{field}[{i}]"), n))
        .collect()
}

fn describe(r: &Resource) -> String {
    let kind = match r {
        Resource::K8sNetworkPolicy(_) => "Kubernetes NetworkPolicy".to_string(),
        other => other.kind().kind_name().to_string(),
    };
    match r.namespace_or_default() {
        Some(ns) => format!("{kind} {ns}/{}", r.name()),
        None => format!("{kind} {}", r.name()),
    }
}

/// Validates one resource's policy-relevant fields (what `vrctl apply` should check).
pub fn validate_resource(r: &Resource) -> Result<(), ConvertError> {
    add_resource(&mut ModelParts::default(), r).map_err(|e| ConvertError {
        resource: describe(r),
        path: e.path,
        detail: e.detail,
    })
}

/// Converts resources into [`ModelParts`], rejecting the first invalid field.
pub fn parts_from_resources<'a>(
    resources: impl IntoIterator<Item = &'a Resource>,
) -> Result<ModelParts, ConvertError> {
    let mut parts = ModelParts::default();
    for r in resources {
        add_resource(&mut parts, r).map_err(|e| ConvertError {
            resource: describe(r),
            path: e.path,
            detail: e.detail,
        })?;
    }
    Ok(parts)
}

/// Converts resources and builds the model.
pub fn model_from_resources<'a>(
    resources: impl IntoIterator<Item = &'a Resource>,
) -> Result<Model, LoadError> {
    Ok(Model::new(parts_from_resources(resources)?)?)
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
