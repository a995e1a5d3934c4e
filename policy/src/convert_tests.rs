//! Conversion and validation tests: each validation rule with a passing and a failing case,
//! checked through real YAML parsed by `datastore::resource`.

use super::*;

fn load(yaml: &str) -> Result<ModelParts, ConvertError> {
    let docs = datastore::resource::parse_documents(yaml).expect("yaml parses");
    parts_from_resources(&docs)
}

fn np_rule(rule: &str) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {{name: p, namespace: prod}}\nspec:\n  selector: app == 'web'\n  ingress:\n  - {rule}\n"
    )
}

fn err(yaml: &str) -> String {
    load(yaml).expect_err("should be rejected").to_string()
}

#[test]
fn rule_validation_pass_and_fail() {
    let cases: &[(&str, Option<&str>)] = &[
        (
            "{action: Allow, protocol: TCP, destination: {ports: [80, '8000:8080', http]}}",
            None,
        ),
        (
            "{action: Allow, protocol: TCP, destination: {ports: [80, '80:70']}}",
            Some(r#"spec.ingress[0].destination.ports[1]: "80:70" is not a valid port range"#),
        ),
        ("{action: Allow, destination: {ports: [http]}}", None),
        (
            "{action: Allow, destination: {ports: [80]}}",
            Some(
                "spec.ingress[0].destination.ports[0]: \"80\" needs protocol TCP, UDP, UDPLite or SCTP",
            ),
        ),
        (
            "{action: Allow, protocol: ICMP, destination: {notPorts: [80]}}",
            Some("spec.ingress[0].destination.notPorts[0]"),
        ),
        ("{action: Allow, protocol: UDPLite}", None),
        (
            "{action: Allow, protocol: tcp}",
            Some(r#"spec.ingress[0].protocol: "tcp" is not a valid protocol"#),
        ),
        ("{action: Allow, notProtocol: 47}", None),
        (
            "{action: Allow, protocol: ICMP, icmp: {type: 8, code: 0}}",
            None,
        ),
        (
            "{action: Allow, protocol: TCP, icmp: {type: 8}}",
            Some("spec.ingress[0].icmp: ICMP matches need protocol ICMP or ICMPv6"),
        ),
        (
            "{action: Allow, protocol: ICMPv6, ipVersion: 4, icmp: {type: 128}}",
            Some("spec.ingress[0].icmp"),
        ),
        (
            "{action: Allow, source: {nets: [10.0.0.0/8], notNets: [10.1.0.0/16]}}",
            None,
        ),
        (
            "{action: Allow, source: {nets: [10.0.0.300/8]}}",
            Some(r#"spec.ingress[0].source.nets[0]: "10.0.0.300/8" is not a valid CIDR"#),
        ),
        (
            "{action: Allow, source: {notNets: [0.0.0.0/0]}}",
            Some("spec.ingress[0].source.notNets[0]"),
        ),
        (
            "{action: Allow, source: {nets: [10.0.0.0/8]}, destination: {nets: ['fd00::/8']}}",
            Some("both IPv4 and IPv6"),
        ),
        (
            "{action: Allow, ipVersion: 6, source: {nets: [10.0.0.0/8]}}",
            Some("spec.ingress[0].ipVersion"),
        ),
        (
            "{action: Allow, source: {selector: \"role in {'a','b'}\"}}",
            None,
        ),
        (
            "{action: Allow, source: {selector: 'role =='}}",
            Some("spec.ingress[0].source.selector: \"role ==\" is not a valid selector"),
        ),
        (
            "{action: Allow, source: {selector: 'global()'}}",
            Some("spec.ingress[0].source.selector"),
        ),
        (
            "{action: Allow, source: {namespaceSelector: 'global()'}}",
            None,
        ),
        (
            "{action: Allow, source: {namespaceSelector: 'global() && has(x)'}}",
            Some("spec.ingress[0].source.namespaceSelector"),
        ),
        (
            "{action: Allow, source: {serviceAccounts: {names: [api]}}}",
            None,
        ),
        (
            "{action: Allow, source: {serviceAccounts: {selector: 'x == \"y\"'}}}",
            Some(
                "spec.ingress[0].source.serviceAccounts.selector: selecting service accounts by label is not supported",
            ),
        ),
        (
            "{action: Allow, http: {methods: [GET]}}",
            Some("spec.ingress[0].http: L7 http matching is not supported"),
        ),
        (
            "{action: Allow, destination: {services: {name: kube-dns, namespace: kube-system}}}",
            Some("spec.ingress[0].destination.services"),
        ),
    ];
    for (rule, expected) in cases {
        let yaml = np_rule(rule);
        match expected {
            None => {
                load(&yaml).unwrap_or_else(|e| panic!("{rule} should be accepted: {e}"));
            }
            Some(text) => {
                let e = err(&yaml);
                assert!(e.contains(text), "{rule}: {e}");
                assert!(e.starts_with("NetworkPolicy prod/p: "), "{e}");
            }
        }
    }
}

#[test]
fn namespaced_rule_selectors_are_scoped() {
    let parts = load(&np_rule(
        "{action: Allow, source: {selector: \"app == 'x'\", notSelector: 'has(y)'}}",
    ))
    .expect("ok");
    let p = &parts.policies[0];
    assert_eq!(
        p.selector.canonical(),
        r#"(projectcalico.org/namespace == "prod" && app == "web")"#
    );
    let src = &p.ingress[0].source;
    assert_eq!(
        src.selector.as_ref().map(Selector::canonical),
        Some(r#"(projectcalico.org/namespace == "prod" && app == "x")"#)
    );
    assert_eq!(
        src.not_selector.as_ref().map(Selector::canonical),
        Some("has(y)")
    );
    assert!(p.applies_ingress && !p.applies_egress);
    // Nets only: no namespace scoping (matches any address in the CIDR).
    let parts = load(&np_rule("{action: Allow, source: {nets: [10.0.0.0/8]}}")).expect("ok");
    assert_eq!(parts.policies[0].ingress[0].source.selector, None);
    // namespaceSelector replaces the namespace scope.
    let parts = load(&np_rule(
        "{action: Allow, source: {namespaceSelector: \"team == 'a'\"}}",
    ))
    .expect("ok");
    assert_eq!(
        parts.policies[0].ingress[0]
            .source
            .selector
            .as_ref()
            .map(Selector::canonical),
        Some(r#"pcns.team == "a""#)
    );
}

#[test]
fn global_policy_options() {
    let gnp = |extra: &str| {
        format!(
            "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {{name: g}}\nspec:\n  selector: has(app)\n{extra}"
        )
    };
    let parts = load(&gnp(
        "  namespaceSelector: \"team == 'a'\"\n  egress: [{action: Deny}]\n",
    ))
    .expect("ok");
    let p = &parts.policies[0];
    assert_eq!(p.selector.canonical(), r#"(pcns.team == "a" && has(app))"#);
    assert!(!p.applies_ingress && p.applies_egress);
    assert!(err(&gnp("  doNotTrack: true\n  applyOnForward: true\n")).contains("spec.doNotTrack"));
    assert!(
        err(&gnp("  serviceAccountSelector: has(x)\n")).contains("spec.serviceAccountSelector")
    );
}

#[test]
fn tiers_network_sets_and_endpoints() {
    let parts = load(
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: sec}\nspec: {order: 100, defaultAction: Pass}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: GlobalNetworkSet\nmetadata: {name: ext, labels: {a: b}}\nspec: {nets: [192.0.2.0/24]}\n",
    )
    .expect("ok");
    assert_eq!(parts.tiers[0].default_action, TierDefaultAction::Pass);
    assert_eq!(parts.tiers[0].order, Some(100.0));
    assert_eq!(parts.network_sets[0].nets.len(), 1);
    let e = err(
        "apiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: sec}\nspec: {defaultAction: Allow}\n",
    );
    assert!(e.contains("spec.defaultAction"), "{e}");
}

#[test]
fn kubernetes_policy_conversion() {
    let yaml = "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {name: k, namespace: prod}\nspec:\n  podSelector:\n    matchLabels: {app: db}\n    matchExpressions: [{key: tier, operator: NotIn, values: [x]}]\n  ingress:\n  - from: [{podSelector: {}}, {ipBlock: {cidr: 10.0.0.0/8, except: [10.1.0.0/16]}}]\n    ports: [{port: 5432}, {protocol: UDP, port: 53, endPort: 60}]\n";
    let parts = load(yaml).expect("ok");
    let p = &parts.policies[0];
    assert_eq!(p.order, Some(K8S_POLICY_ORDER));
    assert_eq!(
        p.selector.canonical(),
        r#"(projectcalico.org/namespace == "prod" && app == "db" && tier not in {"x"})"#
    );
    assert_eq!(p.ingress.len(), 4, "2 peers x 2 port entries");
    assert_eq!(p.ingress[0].protocol, Some(Protocol::TCP));
    assert_eq!(
        p.ingress[1].destination.ports,
        vec![PortMatch::Range {
            first: 53,
            last: 60
        }]
    );
    assert_eq!(p.ingress[2].source.not_nets.len(), 1);
    assert!(p.applies_ingress && !p.applies_egress);

    let bad = |spec: &str| {
        err(&format!(
            "apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: k, namespace: prod}}\nspec:\n{spec}"
        ))
    };
    assert!(
        bad("  podSelector: {matchExpressions: [{key: a, operator: Bogus}]}\n")
            .contains("spec.podSelector.matchExpressions[0].operator")
    );
    assert!(
        bad("  ingress: [{ports: [{port: 80, endPort: 70}]}]\n")
            .contains("spec.ingress[0].ports[0].endPort")
    );
    assert!(
        bad("  ingress: [{from: [{ipBlock: {cidr: 10.0.0.0/8, except: [11.0.0.0/16]}}]}]\n")
            .contains("spec.ingress[0].from[0].ipBlock.except[0]")
    );
    assert!(
        bad("  egress: [{to: [{ipBlock: {cidr: nope}}]}]\n")
            .contains("spec.egress[0].to[0].ipBlock.cidr")
    );
}

#[test]
fn whole_model_loads() {
    let docs = datastore::resource::parse_documents(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\n\
         apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata: {name: w, namespace: prod}\nspec: {ipNetworks: [10.0.0.1/32]}\n",
    )
    .expect("yaml");
    let m = model_from_resources(&docs).expect("model");
    assert_eq!(m.endpoints().len(), 1);
    let docs = datastore::resource::parse_documents(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: prod}\nspec: {tier: nope}\n",
    )
    .expect("yaml");
    assert!(matches!(
        model_from_resources(&docs),
        Err(LoadError::Model(_))
    ));
}

#[test]
fn host_endpoints_are_namespace_less_endpoints() {
    let yaml = "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\n\
                apiVersion: projectcalico.org/v3\nkind: HostEndpoint\n\
                metadata: {name: node1-eth0, labels: {role: uplink}}\n\
                spec: {node: node1, interfaceName: eth0, expectedIPs: [192.0.2.1], \
                ports: [{name: ssh, protocol: TCP, port: 22}]}\n---\n\
                apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
                metadata: {name: all-in-prod, namespace: prod}\nspec: {selector: all()}\n---\n\
                apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
                metadata: {name: uplink}\nspec: {selector: role == 'uplink', \
                ingress: [{action: Allow, protocol: TCP, destination: {ports: [ssh]}}]}\n";
    let model = Model::new(load(yaml).expect("loads")).expect("model");
    let i = model
        .endpoint_index(&EndpointId::host("node1-eth0"))
        .expect("host endpoint in the model");
    assert_eq!(
        model.endpoints()[i].nets,
        vec!["192.0.2.1/32".parse().unwrap()]
    );
    assert!(
        model.endpoint_profiles(i).is_empty(),
        "no namespace profile"
    );
    assert!(
        !model
            .endpoint_labels(i)
            .contains_key(crate::selector::NAMESPACE_LABEL),
        "no namespace label"
    );
    let applying: Vec<String> = model
        .tiers()
        .iter()
        .flat_map(|t| &t.policies)
        .filter(|p| p.selector.matches(model.endpoint_labels(i)))
        .map(|p| p.id.name.clone())
        .collect();
    assert_eq!(applying, ["uplink"], "namespaced policies never select it");
    assert_eq!(
        err(
            "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h}\n\
             spec: {node: n, interfaceName: eth0, expectedIPs: [not-an-ip]}\n"
        ),
        "HostEndpoint h: spec.expectedIPs[0]: \"not-an-ip\" is not a valid CIDR"
    );
}
