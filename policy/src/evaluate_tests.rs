//! Evaluator tests: one cluster, many flows, each checking verdict and explanation.

use super::*;
use crate::model::{
    Endpoint, Labels, ModelParts, NamedPort, Namespace, NetworkSet, Policy, PolicyKind, Profile,
    Tier, TierDefaultAction,
};
use crate::rule::{IcmpMatch, PortMatch};
use crate::selector::Selector;
use crate::test_util::{labels, sel};
use Verdict::{Allow, Deny};

fn ep(ns: &str, name: &str, ip: &str, l: &[(&str, &str)]) -> Endpoint {
    Endpoint {
        id: EndpointId::new(ns, name),
        labels: labels(l),
        nets: vec![ip.parse().expect("net")],
        ports: vec![],
        profiles: vec![],
        service_account: None,
    }
}

fn gnp(name: &str, order: f64, selector: &str, ingress: Vec<Rule>, egress: Vec<Rule>) -> Policy {
    Policy {
        id: PolicyId {
            kind: PolicyKind::GlobalNetworkPolicy,
            namespace: None,
            name: name.into(),
        },
        tier: "default".into(),
        order: Some(order),
        selector: sel(selector),
        applies_ingress: !ingress.is_empty() || egress.is_empty(),
        applies_egress: !egress.is_empty(),
        ingress,
        egress,
    }
}

fn allow_from(selector: &str) -> Rule {
    let mut r = Rule::new(Action::Allow);
    r.source.selector = Some(sel(selector));
    r
}

fn tcp(port: &str) -> Rule {
    let mut r = Rule::new(Action::Allow);
    r.protocol = Some(Protocol::TCP);
    r.destination.ports = vec![PortMatch::parse(port).expect("port")];
    r
}

fn base_parts() -> ModelParts {
    let mut web = ep("prod", "web", "10.0.0.2/32", &[("app", "web")]);
    web.ports = vec![NamedPort {
        name: "http".into(),
        protocol: Protocol::TCP,
        port: 8080,
    }];
    web.nets.push("fd00::2/128".parse().expect("net"));
    ModelParts {
        namespaces: vec![
            Namespace {
                name: "prod".into(),
                labels: labels(&[("env", "prod")]),
            },
            Namespace {
                name: "dev".into(),
                labels: labels(&[("env", "dev")]),
            },
        ],
        endpoints: vec![
            ep("prod", "client", "10.0.0.1/32", &[("app", "client")]),
            web,
            ep("dev", "tester", "10.0.1.1/32", &[("app", "client")]),
        ],
        network_sets: vec![NetworkSet {
            namespace: None,
            name: "partners".into(),
            labels: labels(&[("role", "partner")]),
            nets: vec!["198.51.100.0/24".parse().expect("net")],
        }],
        ..ModelParts::default()
    }
}

fn model_with(policies: Vec<Policy>) -> Model {
    Model::new(ModelParts {
        policies,
        ..base_parts()
    })
    .expect("model")
}

fn flow(src: &str, dst: &str, protocol: Protocol, port: Option<u16>) -> Flow {
    let peer = |s: &str| match s.parse::<IpAddr>() {
        Ok(a) => Peer::Addr(a),
        Err(_) => {
            let (ns, name) = s.split_once('/').expect("ns/name");
            Peer::Endpoint(EndpointId::new(ns, name))
        }
    };
    Flow::new(peer(src), peer(dst), protocol, port)
}

fn verdict(m: &Model, f: &Flow) -> Verdict {
    m.evaluate(f).expect("evaluates").verdict
}

/// A flow to check and the verdict it must get: (source, destination, protocol, port).
type Case<'a> = (&'a str, &'a str, Protocol, Option<u16>, Verdict);

/// Checks the verdict of every case.
fn expect_verdicts(m: &Model, cases: &[Case<'_>]) {
    for (src, dst, protocol, port, want) in cases {
        let got = verdict(m, &flow(src, dst, *protocol, *port));
        assert_eq!(got, *want, "{src} -> {dst} {protocol:?} {port:?}");
    }
}

/// The model with one policy `p` selecting web, with these ingress rules.
fn web_ingress(rules: Vec<Rule>) -> Model {
    model_with(vec![gnp("p", 1.0, "app == 'web'", rules, vec![])])
}

const TCP: Protocol = Protocol::TCP;
const UDP: Protocol = Protocol::UDP;

#[test]
fn no_policy_means_default_allow_via_namespace_profile() {
    let m = model_with(vec![]);
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::TCP, Some(80)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Allow);
    let ingress = v.ingress.expect("dst is an endpoint");
    assert!(matches!(
        ingress.decision,
        Decision::ProfileRule {
            policies_applied: false,
            ..
        }
    ));
    assert!(
        ingress
            .to_string()
            .contains("no policy selects it: default allow (profile kns.prod)"),
        "{ingress}"
    );
    assert_eq!(v.src_addr.to_string(), "10.0.0.1");
}

#[test]
fn end_of_tier_default_deny() {
    let m = model_with(vec![gnp(
        "web-only-80",
        1.0,
        "app == 'web'",
        vec![tcp("80")],
        vec![],
    )]);
    expect_verdicts(&m, &[("prod/client", "prod/web", TCP, Some(80), Allow)]);
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::TCP, Some(81)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Deny);
    let ingress = v.ingress.clone().expect("ingress");
    assert_eq!(
        ingress.decision,
        Decision::EndOfTier {
            tier: "default".into(),
            policies: vec![PolicyId {
                kind: PolicyKind::GlobalNetworkPolicy,
                namespace: None,
                name: "web-only-80".into()
            }]
        }
    );
    assert!(v.to_string().starts_with("deny\n"), "{v}");
    assert!(
        v.to_string().contains("end of tier default: default deny"),
        "{v}"
    );
    // Egress of the client is unaffected (policy has ingress rules only).
    assert_eq!(v.egress.as_ref().expect("egress").verdict, Verdict::Allow);
}

#[test]
fn first_matching_rule_and_policy_order_decide() {
    let mut deny_client = allow_from("app == 'client'");
    deny_client.action = Action::Deny;
    let m = model_with(vec![
        gnp(
            "b-allow",
            2.0,
            "app == 'web'",
            vec![Rule::new(Action::Allow)],
            vec![],
        ),
        gnp(
            "a-deny",
            1.0,
            "app == 'web'",
            vec![deny_client, Rule::new(Action::Allow)],
            vec![],
        ),
    ]);
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::TCP, Some(80)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Deny);
    assert!(
        matches!(&v.ingress.as_ref().expect("ingress").decision, Decision::PolicyRule { policy, rule: 0, action: Action::Deny, .. } if policy.name == "a-deny")
    );
    // An address not owned by a client endpoint falls to a-deny's second rule.
    let v = m
        .evaluate(&flow("203.0.113.7", "prod/web", Protocol::TCP, Some(80)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Allow);
    assert!(matches!(
        &v.ingress.as_ref().expect("ingress").decision,
        Decision::PolicyRule { rule: 1, .. }
    ));
    assert!(v.egress.is_none());
    assert!(v.to_string().contains("not a workload endpoint"), "{v}");
}

#[test]
fn tiers_pass_and_log() {
    let mut parts = base_parts();
    parts.tiers = vec![
        Tier {
            name: "security".into(),
            order: Some(10.0),
            default_action: TierDefaultAction::Deny,
        },
        Tier {
            name: "baseline".into(),
            order: Some(20.0),
            default_action: TierDefaultAction::Pass,
        },
    ];
    let mut pass = Rule::new(Action::Pass);
    pass.source.selector = Some(sel("app == 'client'"));
    let mut security = gnp(
        "sec",
        1.0,
        "all()",
        vec![Rule::new(Action::Log), pass],
        vec![],
    );
    security.tier = "security".into();
    let mut baseline = gnp("base", 1.0, "all()", vec![tcp("9999")], vec![]);
    baseline.tier = "baseline".into();
    parts.policies = vec![security, baseline];
    let m = Model::new(parts).expect("model");
    // Client: logged, passed by security, baseline has no match but passes, then kns profile.
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::TCP, Some(80)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Allow);
    let ingress = v.ingress.expect("ingress");
    assert!(matches!(
        ingress.decision,
        Decision::ProfileRule {
            policies_applied: true,
            ..
        }
    ));
    assert_eq!(ingress.notes.len(), 3, "{:?}", ingress.notes);
    assert!(ingress.notes[0].contains("logs"));
    assert!(ingress.notes[1].contains("passes to the next tier"));
    assert!(ingress.notes[2].contains("tier default action passes"));
    // Others: security applies, nothing decides, end of tier.
    let v = m
        .evaluate(&flow("203.0.113.7", "prod/web", Protocol::TCP, Some(80)))
        .expect("ok");
    assert!(
        matches!(&v.ingress.expect("ingress").decision, Decision::EndOfTier { tier, .. } if tier == "security")
    );
}

#[test]
fn selectors_match_network_sets_and_nets() {
    let mut r = allow_from("role == 'partner'");
    r.source.not_nets = vec!["198.51.100.128/25".parse().expect("net")];
    let mut by_net = Rule::new(Action::Allow);
    by_net.source.nets = vec!["203.0.113.0/24".parse().expect("net")];
    expect_verdicts(
        &web_ingress(vec![r, by_net]),
        &[
            ("198.51.100.5", "prod/web", TCP, Some(1), Allow),
            ("198.51.100.200", "prod/web", TCP, Some(1), Deny),
            ("203.0.113.1", "prod/web", TCP, Some(1), Allow),
            ("192.0.2.1", "prod/web", TCP, Some(1), Deny),
        ],
    );
}

#[test]
fn namespace_scoped_selectors() {
    // What a NetworkPolicy in prod with `selector: app == 'client'` becomes.
    let scoped = Selector::in_namespace("prod").and(&sel("app == 'client'"));
    let mut r = Rule::new(Action::Allow);
    r.source.selector = Some(scoped);
    expect_verdicts(
        &web_ingress(vec![r]),
        &[
            ("prod/client", "prod/web", TCP, Some(1), Allow),
            ("dev/tester", "prod/web", TCP, Some(1), Deny),
        ],
    );
    // namespaceSelector env == 'dev' (converted to pcns.) selects the tester.
    let mut r = Rule::new(Action::Allow);
    r.source.selector = Some(sel("env == 'dev'").namespace_to_entity());
    expect_verdicts(
        &web_ingress(vec![r]),
        &[
            ("dev/tester", "prod/web", TCP, Some(1), Allow),
            ("prod/client", "prod/web", TCP, Some(1), Deny),
        ],
    );
}

#[test]
fn not_selector_excludes() {
    let mut r = Rule::new(Action::Allow);
    r.source.not_selector = Some(sel("projectcalico.org/namespace == 'dev'"));
    expect_verdicts(
        &web_ingress(vec![r]),
        &[
            ("prod/client", "prod/web", TCP, Some(1), Allow),
            ("dev/tester", "prod/web", TCP, Some(1), Deny),
            // Addresses no entity owns are not selected, so notSelector does not exclude them.
            ("192.0.2.1", "prod/web", TCP, Some(1), Allow),
        ],
    );
}

#[test]
fn ports_ranges_named_and_negated() {
    let mut range = tcp("8000:8100");
    range.destination.not_ports = vec![PortMatch::parse("8050").expect("port")];
    expect_verdicts(
        &web_ingress(vec![range, tcp("http")]),
        &[
            ("prod/client", "prod/web", TCP, Some(8000), Allow),
            ("prod/client", "prod/web", TCP, Some(8100), Allow),
            ("prod/client", "prod/web", TCP, Some(8050), Deny),
            ("prod/client", "prod/web", TCP, Some(8101), Deny),
            ("prod/client", "prod/web", UDP, Some(8000), Deny),
        ],
    );
    // Named port "http" is 8080/TCP on web only: 8080 matches via range too, so test it on v6
    // where the range rule matches equally; then check the named port alone.
    let m = web_ingress(vec![tcp("http")]);
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::TCP, Some(8080)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Allow);
    assert!(matches!(
        &v.ingress.expect("ingress").decision,
        Decision::PolicyRule { rule: 0, .. }
    ));
    expect_verdicts(
        &m,
        &[
            ("prod/client", "prod/web", TCP, Some(80), Deny),
            ("prod/client", "prod/web", UDP, Some(8080), Deny),
        ],
    );
}

#[test]
fn protocol_icmp_and_ip_version() {
    let mut not_udp = Rule::new(Action::Allow);
    not_udp.not_protocol = Some(Protocol::UDP);
    not_udp.ip_version = Some(IpVersion::V4);
    let mut ping = Rule::new(Action::Allow);
    ping.protocol = Some(Protocol::ICMPV6);
    ping.icmp = IcmpMatch::new(Some(128), None).expect("icmp");
    let m = web_ingress(vec![not_udp, ping]);
    expect_verdicts(
        &m,
        &[
            ("prod/client", "prod/web", TCP, Some(1), Allow),
            ("prod/client", "prod/web", UDP, Some(1), Deny),
        ],
    );
    // IPv6 source: the IPv4-only rule does not match; ICMPv6 echo does.
    let mut f = flow("fd00::9", "prod/web", Protocol::ICMPV6, None);
    f.icmp = Some((128, Some(0)));
    let v = m.evaluate(&f).expect("ok");
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(v.dst_addr.to_string(), "fd00::2");
    f.icmp = Some((129, Some(0)));
    assert_eq!(verdict(&m, &f), Verdict::Deny);
    let tcp6 = flow("fd00::9", "prod/web", Protocol::TCP, Some(1));
    assert_eq!(verdict(&m, &tcp6), Verdict::Deny);
}

#[test]
fn egress_and_ingress_both_count() {
    let deny_all_egress = Policy {
        applies_ingress: false,
        ..gnp("no-egress", 1.0, "app == 'client'", vec![], vec![])
    };
    let deny_all_egress = Policy {
        applies_egress: true,
        ..deny_all_egress
    };
    let m = model_with(vec![deny_all_egress]);
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::TCP, Some(80)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(v.egress.as_ref().expect("egress").verdict, Verdict::Deny);
    assert_eq!(v.ingress.as_ref().expect("ingress").verdict, Verdict::Allow);
    assert!(
        v.to_string().contains("egress from prod/client: deny"),
        "{v}"
    );
    // An address that belongs to an endpoint is treated as that endpoint.
    let v = m
        .evaluate(&flow("10.0.0.1", "prod/web", Protocol::TCP, Some(80)))
        .expect("ok");
    assert_eq!(v.verdict, Verdict::Deny);
}

#[test]
fn profiles_missing_or_denying() {
    let mut parts = base_parts();
    parts.endpoints[1].profiles = vec!["missing".into(), "closed".into()];
    let mut deny = Rule::new(Action::Deny);
    deny.protocol = Some(Protocol::UDP);
    parts.profiles = vec![Profile {
        name: "closed".into(),
        labels_to_apply: Labels::new(),
        ingress: vec![deny],
        egress: vec![],
    }];
    let m = Model::new(parts).expect("model");
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::UDP, Some(53)))
        .expect("ok");
    let ingress = v.ingress.expect("ingress");
    assert!(matches!(
        ingress.decision,
        Decision::ProfileRule {
            action: Action::Deny,
            ..
        }
    ));
    assert_eq!(
        ingress.notes,
        vec!["profile missing does not exist".to_string()]
    );
    let v = m
        .evaluate(&flow("prod/client", "prod/web", Protocol::TCP, Some(53)))
        .expect("ok");
    let ingress = v.ingress.expect("ingress");
    assert!(matches!(
        ingress.decision,
        Decision::NoProfileMatched { .. }
    ));
    assert!(
        ingress
            .to_string()
            .contains("no profile allowed it (missing, closed): default deny"),
        "{ingress}"
    );
}

#[test]
fn evaluation_errors() {
    let m = model_with(vec![]);
    let err = m
        .evaluate(&flow("prod/nope", "prod/web", Protocol::TCP, Some(1)))
        .expect_err("unknown");
    assert_eq!(
        err.to_string(),
        "no workload endpoint prod/nope in the model"
    );
    let err = m
        .evaluate(&flow("fd00::1", "prod/client", Protocol::TCP, Some(1)))
        .expect_err("version");
    assert!(matches!(err, EvaluateError::NoCommonIpVersion { .. }));
}

#[test]
fn source_ports_need_a_known_source_port() {
    let mut r = Rule::new(Action::Allow);
    r.protocol = Some(Protocol::UDP);
    r.source.ports = vec![PortMatch::parse("53").expect("port")];
    let m = web_ingress(vec![r]);
    let mut f = flow("prod/client", "prod/web", Protocol::UDP, Some(1000));
    assert_eq!(verdict(&m, &f), Verdict::Deny);
    f.src_port = Some(53);
    assert_eq!(verdict(&m, &f), Verdict::Allow);
}
