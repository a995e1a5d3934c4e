//! Compiler tests. The main one runs a tiny interpreter of the compiled ruleset (what the
//! nftables renderer must do) and checks it reaches the evaluator's verdict on every flow.

use std::net::IpAddr;

use super::*;
use crate::evaluate::{Flow, Peer, Verdict};
use crate::ipset::SetChange;
use crate::model::{
    Endpoint, ModelParts, NamedPort, Namespace, NetworkSet, Policy, PolicyKind, Tier,
};
use crate::test_util::{labels, sel};

fn ep(ns: &str, name: &str, ip: &str, app: &str) -> Endpoint {
    Endpoint {
        id: EndpointId::new(ns, name),
        labels: labels(&[("app", app)]),
        nets: vec![ip.parse().expect("net")],
        ports: vec![NamedPort {
            name: "http".into(),
            protocol: Protocol::TCP,
            port: if app == "web" { 8080 } else { 9090 },
        }],
        profiles: vec![],
        service_account: None,
    }
}

fn policy(
    name: &str,
    tier: &str,
    order: f64,
    selector: &str,
    ingress: Vec<Rule>,
    egress: Vec<Rule>,
) -> Policy {
    Policy {
        id: PolicyId {
            kind: PolicyKind::GlobalNetworkPolicy,
            namespace: None,
            name: name.into(),
        },
        tier: tier.into(),
        order: Some(order),
        selector: sel(selector),
        applies_ingress: true,
        applies_egress: !egress.is_empty(),
        ingress,
        egress,
    }
}

fn rule(action: Action, f: impl FnOnce(&mut Rule)) -> Rule {
    let mut r = Rule::new(action);
    f(&mut r);
    r
}

fn ports(list: &[&str]) -> Vec<PortMatch> {
    list.iter()
        .map(|p| PortMatch::parse(p).expect("port"))
        .collect()
}

fn model() -> Model {
    Model::new(ModelParts {
        tiers: vec![Tier {
            name: "sec".into(),
            order: Some(1.0),
            default_action: TierDefaultAction::Deny,
        }],
        namespaces: vec![
            Namespace {
                name: "a".into(),
                labels: labels(&[("env", "prod")]),
            },
            Namespace {
                name: "b".into(),
                labels: labels(&[("env", "dev")]),
            },
        ],
        endpoints: vec![
            ep("a", "web", "10.0.0.1/32", "web"),
            ep("a", "db", "10.0.0.2/32", "db"),
            ep("b", "web", "10.0.1.1/32", "web"),
            ep("b", "client", "10.0.1.2/32", "client"),
        ],
        network_sets: vec![NetworkSet {
            namespace: None,
            name: "ext".into(),
            labels: labels(&[("ext", "yes")]),
            nets: vec!["192.0.2.0/24".parse().expect("net")],
        }],
        policies: vec![
            policy(
                "sec-pass-dev",
                "sec",
                1.0,
                "app == 'db'",
                vec![
                    rule(Action::Log, |_| {}),
                    rule(Action::Pass, |r| {
                        r.source.selector = Some(sel("env == 'prod'").namespace_to_entity())
                    }),
                    rule(Action::Deny, |r| {
                        r.source.not_selector = Some(sel("ext == 'yes'"))
                    }),
                    rule(Action::Allow, |r| {
                        r.protocol = Some(Protocol::TCP);
                        r.destination.ports = ports(&["5432", "http"]);
                    }),
                ],
                vec![],
            ),
            policy(
                "web",
                "default",
                10.0,
                "app == 'web'",
                vec![
                    rule(Action::Allow, |r| {
                        r.protocol = Some(Protocol::TCP);
                        r.source.selector = Some(sel("app == 'client' || ext == 'yes'"));
                        r.destination.ports = ports(&["80:90", "http"]);
                        r.destination.not_ports = ports(&["85"]);
                    }),
                    rule(Action::Deny, |r| {
                        r.source.nets = vec!["10.0.0.0/24".parse().expect("net")]
                    }),
                    rule(Action::Allow, |r| {
                        r.not_protocol = Some(Protocol::UDP);
                        r.source.not_nets = vec!["10.0.1.0/24".parse().expect("net")];
                    }),
                ],
                vec![rule(Action::Allow, |r| {
                    r.destination.selector = Some(sel("app == 'db'"))
                })],
            ),
        ],
        ..ModelParts::default()
    })
    .expect("model")
}

struct Pkt {
    protocol: Protocol,
    src: IpAddr,
    dst: IpAddr,
    dst_port: Option<u16>,
}

fn set_contains(
    rs: &Ruleset,
    set: &IpSetId,
    addr: IpAddr,
    protocol: Protocol,
    port: Option<u16>,
) -> bool {
    rs.set_members(set).iter().any(|m| match m {
        Member::Net(n) => n.contains(addr),
        Member::NamedPort {
            addr: a,
            protocol: p,
            port: pt,
        } => *a == addr && *p == protocol && Some(*pt) == port,
    })
}

fn holds(rs: &Ruleset, m: &Match, pkt: &Pkt) -> bool {
    let end = |side: &Side| match side {
        Side::Source => (pkt.src, None),
        Side::Destination => (pkt.dst, pkt.dst_port),
    };
    match m {
        Match::IpVersion(v) => IpVersion::of(&pkt.src) == *v,
        Match::Protocol(p) => pkt.protocol == *p,
        Match::NotProtocol(p) => pkt.protocol != *p,
        Match::Icmp(_) => false,
        Match::NotIcmp(_) => true,
        Match::AddrInSet { side, set, negated } => {
            set_contains(rs, set, end(side).0, pkt.protocol, None) != *negated
        }
        Match::Ports {
            side,
            ranges,
            negated,
        } => {
            end(side)
                .1
                .is_some_and(|p| ranges.iter().any(|(a, b)| (*a..=*b).contains(&p)))
                != *negated
        }
        Match::NamedPortSet { side, set, negated } => {
            let (addr, port) = end(side);
            set_contains(rs, set, addr, pkt.protocol, port) != *negated
        }
    }
}

fn run(rs: &Ruleset, rules: &[CompiledRule], pkt: &Pkt) -> Option<Action> {
    rules
        .iter()
        .filter(|r| r.matches.iter().all(|m| holds(rs, m, pkt)))
        .map(|r| r.action)
        .find(|a| *a != Action::Log)
}

fn interpret(rs: &Ruleset, ep: &EndpointId, direction: Direction, pkt: &Pkt) -> Verdict {
    let layout = &rs.endpoints[ep];
    for tier in layout.tiers(direction) {
        let mut passed = false;
        for p in &tier.policies {
            match run(rs, rs.policy_rules(p, direction), pkt) {
                Some(Action::Allow) => return Verdict::Allow,
                Some(Action::Deny) => return Verdict::Deny,
                Some(Action::Pass) => {
                    passed = true;
                    break;
                }
                _ => {}
            }
        }
        if !passed && tier.default_action == TierDefaultAction::Deny {
            return Verdict::Deny;
        }
    }
    for name in &layout.profiles {
        let Some(rules) = rs.profiles.get(name) else {
            continue;
        };
        let list = if direction == Direction::Ingress {
            &rules.ingress
        } else {
            &rules.egress
        };
        match run(rs, list, pkt) {
            Some(Action::Allow) => return Verdict::Allow,
            Some(Action::Deny) => return Verdict::Deny,
            _ => {}
        }
    }
    Verdict::Deny
}

#[test]
fn compiled_rules_agree_with_the_evaluator() {
    let m = model();
    let rs = compile(&m);
    let mut sources: Vec<IpAddr> = m.endpoints().iter().map(|e| e.nets[0].ip()).collect();
    sources.extend(
        ["192.0.2.7", "198.51.100.1"]
            .iter()
            .map(|s| s.parse::<IpAddr>().expect("addr")),
    );
    let mut checked = 0;
    for src in &sources {
        for dst_ep in m.endpoints() {
            for protocol in [Protocol::TCP, Protocol::UDP] {
                for port in [80, 85, 90, 5432, 8080, 9090, 22] {
                    let dst = dst_ep.nets[0].ip();
                    let flow = Flow::new(Peer::Addr(*src), Peer::Addr(dst), protocol, Some(port));
                    let expected = m.evaluate(&flow).expect("evaluates");
                    let pkt = Pkt {
                        protocol,
                        src: *src,
                        dst,
                        dst_port: Some(port),
                    };
                    let ingress = interpret(&rs, &dst_ep.id, Direction::Ingress, &pkt);
                    assert_eq!(
                        Some(ingress),
                        expected.ingress.as_ref().map(|d| d.verdict),
                        "ingress {src} -> {dst} {protocol}/{port}"
                    );
                    if let Some(src_idx) = m.endpoint_by_addr(src) {
                        let egress =
                            interpret(&rs, &m.endpoints()[src_idx].id, Direction::Egress, &pkt);
                        assert_eq!(
                            Some(egress),
                            expected.egress.as_ref().map(|d| d.verdict),
                            "egress {src} -> {dst}"
                        );
                    }
                    checked += 1;
                }
            }
        }
    }
    assert_eq!(checked, sources.len() * 4 * 2 * 7);
}

#[test]
fn endpoint_layout_and_rule_expansion() {
    let m = model();
    let rs = compile(&m);
    let db = &rs.endpoints[&EndpointId::new("a", "db")];
    assert_eq!(db.ingress.len(), 1);
    assert_eq!(db.ingress[0].tier, "sec");
    assert!(db.egress.is_empty());
    assert_eq!(db.profiles, vec!["kns.a".to_string()]);
    let web = &rs.endpoints[&EndpointId::new("b", "web")];
    assert_eq!(web.ingress[0].tier, "default");
    assert_eq!(web.egress[0].policies[0].name, "web");

    let id = PolicyId {
        kind: PolicyKind::GlobalNetworkPolicy,
        namespace: None,
        name: "web".into(),
    };
    let rules = rs.policy_rules(&id, Direction::Ingress);
    // Rule 0 expands into numeric-port and named-port alternatives; rules 1 and 2 stay single.
    let origins: Vec<usize> = rules.iter().map(|r| r.rule_index).collect();
    assert_eq!(origins, vec![0, 0, 1, 2]);
    assert!(rules[0].matches.iter().any(
        |m| matches!(m, Match::Ports { ranges, negated: false, .. } if ranges == &vec![(80, 90)])
    ));
    assert!(
        rules[1]
            .matches
            .iter()
            .any(|m| matches!(m, Match::NamedPortSet { negated: false, .. }))
    );
    assert!(
        rules[1]
            .matches
            .iter()
            .any(|m| matches!(m, Match::Ports { negated: true, .. }))
    );

    // The selector set holds the client and the external network set.
    let set = SetKey::Selector(sel("app == 'client' || ext == 'yes'")).id();
    let members: Vec<String> = rs
        .set_members(&set)
        .iter()
        .map(|m| match m {
            Member::Net(n) => n.to_string(),
            other => format!("{other:?}"),
        })
        .collect();
    assert_eq!(
        members,
        vec!["10.0.1.2/32".to_string(), "192.0.2.0/24".to_string()]
    );
}

#[test]
fn incremental_label_change_on_compiled_sets() {
    let m = model();
    let mut rs = compile(&m);
    let set = SetKey::Selector(sel("app == 'client' || ext == 'yes'")).id();
    // a/db becomes a client: only the sets reading `app` can change, and exactly one does.
    let i = m
        .endpoint_index(&EndpointId::new("a", "db"))
        .expect("endpoint");
    let mut data = entity_data(&m, EntityRef::Endpoint(i));
    data.labels.insert("app".into(), "client".into());
    let changes = rs
        .ip_sets
        .upsert_entity(entity_key(&m, EntityRef::Endpoint(i)), data);
    let member = Member::Net("10.0.0.2/32".parse().expect("net"));
    assert!(
        changes.contains(&SetChange::Added { set, member }),
        "{changes:?}"
    );
    let db_set = SetKey::Selector(sel("app == 'db'")).id();
    assert!(
        changes.contains(&SetChange::Removed {
            set: db_set,
            member
        }),
        "{changes:?}"
    );
    // Nothing else: the unrestricted "http" named-port set keeps db's 9090 entry.
    assert_eq!(changes.len(), 2, "{changes:?}");
}
