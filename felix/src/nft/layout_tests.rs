//! Unit tests of the table layout (no kernel): skeleton, interval merging, rendering of
//! tiers, Pass/Log/Deny, profiles and per-family sets.

use std::sync::Arc;

use policy::model::EndpointId;

use super::super::rendered::{Rendered, render};
use super::super::spec::ifname_key;
use super::*;
use crate::calc::{Failsafe, LocalEndpoint, LocalHostEndpoint, PolicyChanges};

fn net(s: &str) -> IpNetwork {
    s.parse().expect("net")
}

fn model(yaml: &str) -> policy::Model {
    let docs = datastore::resource::parse_documents(yaml).expect("yaml");
    policy::convert::model_from_resources(&docs).expect("model")
}

const BASE: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: prod}\n---\n\
    apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
    metadata: {name: a, namespace: prod, labels: {app: web}}\n\
    spec: {interfaceName: vr00000000001, ipNetworks: [10.0.0.1/32, 'fd00::1/128']}\n---\n\
    apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
    metadata: {name: b, namespace: prod, labels: {app: db}}\n\
    spec: {interfaceName: vr00000000002, ipNetworks: [10.0.0.2/32]}\n";

fn state(yaml: &str) -> PolicyState {
    let m = model(&format!("{BASE}{yaml}"));
    PolicyState::new(
        policy::compile::compile(&m),
        vec![LocalEndpoint {
            id: EndpointId::new("prod", "a"),
            iface: "vr00000000001".into(),
            nets: vec![net("10.0.0.1/32"), net("fd00::1/128")],
            mac: None,
        }],
    )
}

fn texts(t: &TableSpec, chain: &str) -> Vec<String> {
    t.chains[chain]
        .rules
        .iter()
        .map(RuleSpec::body_text)
        .collect()
}

#[test]
fn skeleton_fails_closed() {
    let t = skeleton(&Failsafe::default());
    assert_eq!(t.chains[CHAIN_FORWARD].hook, Some(Hook::Forward));
    assert_eq!(
        texts(&t, CHAIN_FORWARD)[..4],
        [
            "ct state established,related accept",
            "ct state invalid drop",
            "iifname \"vr*\" jump vr-from-wl-dispatch",
            "oifname \"vr*\" jump vr-to-wl-dispatch",
        ]
    );
    let from = texts(&t, CHAIN_FROM_WL);
    assert_eq!(from.last().map(String::as_str), Some("drop"));
    assert!(from[0].contains("iifname . ip saddr != @vr-wl-src-4 drop"));
    assert_eq!(
        texts(&t, CHAIN_TO_WL).last().map(String::as_str),
        Some("drop")
    );
    assert!(t.sets[MAP_FROM_WL].elems.is_empty());
    // Every name is prefixed (no nft keyword such as `fwd` or `input`).
    assert!(
        t.chains
            .keys()
            .chain(t.sets.keys())
            .all(|n| n.starts_with("vr-"))
    );
}

#[test]
fn intervals_are_merged() {
    let nets = [
        net("10.0.0.0/25"),
        net("10.0.0.128/25"),
        net("10.0.0.5/32"),
        net("192.168.0.0/16"),
        net("fd00::/64"),
    ];
    let e = interval_elems(nets.iter(), Family::V4);
    assert_eq!(e.len(), 2, "{e:?}");
    assert_eq!(
        e[&vec![10, 0, 0, 0]],
        ElemValue::IntervalTo(Some(vec![10, 0, 1, 0]))
    );
    let top = interval_elems(
        [net("255.255.255.0/24"), net("0.0.0.0/0")].iter(),
        Family::V4,
    );
    assert_eq!(top.len(), 1);
    assert_eq!(top[&vec![0, 0, 0, 0]], ElemValue::IntervalTo(None));
    let v6 = interval_elems(nets.iter(), Family::V6);
    assert_eq!(v6.len(), 1);
    let all6 = interval_elems([net("::/0")].iter(), Family::V6);
    assert_eq!(all6[&vec![0; 16]], ElemValue::IntervalTo(None));
}

#[test]
fn no_policy_means_profile_only_and_local_workloads_dispatch() {
    let t = render(&state(""));
    let fw = texts(&t, "vr-fw-vr00000000001");
    assert_eq!(fw.len(), 6, "{fw:?}");
    assert_eq!(fw[1], "jump vr-wl-pol-out");
    assert_eq!(fw[2], "meta mark & 0x01000000 != 0 return");
    assert!(fw[3].starts_with("jump vr-pro-"));
    assert_eq!(fw[5], "drop");
    assert!(texts(&t, CHAIN_WL_POL_OUT).is_empty());
    assert!(texts(&t, CHAIN_WL_POL_IN).is_empty());
    // Only the local workload is dispatched; b has no chain.
    assert_eq!(t.sets[MAP_FROM_WL].elems.len(), 1);
    assert!(!t.chains.contains_key("vr-fw-vr00000000002"));
    assert_eq!(t.sets[SET_WL_SRC4].elems.len(), 1);
    assert_eq!(t.sets[SET_WL_SRC6].elems.len(), 1);
    let key = &t.sets[SET_WL_SRC4].elems.keys().next().expect("elem")[..];
    assert_eq!(&key[16..], &[10, 0, 0, 1]);
}

#[test]
fn tiers_pass_log_and_end_of_tier() {
    let t = render(&state(
        "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: sec}\nspec: {order: 10}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: sec.g}\n\
         spec:\n  tier: sec\n  selector: all()\n  ingress:\n  - {action: Log}\n  \
         - {action: Pass, source: {selector: app == 'db'}}\n  - {action: Deny, protocol: TCP, destination: {ports: [22, '80:90']}}\n",
    ));
    // The workload's chain is fixed; the tier lives in the shared chain, guarded by sets.
    assert_eq!(texts(&t, "vr-tw-vr00000000001")[1], "jump vr-wl-pol-in");
    let tw = texts(&t, CHAIN_WL_POL_IN);
    assert!(
        tw[0].starts_with("meta mark & 0x03000000 == 0 oifname @vr-ap-")
            && tw[0].contains(" jump vr-pi-"),
        "{tw:?}"
    );
    assert_eq!(tw[1], "meta mark & 0x01000000 != 0 return");
    assert!(
        tw[2].starts_with("meta mark & 0x02000000 == 0 oifname @vr-at-")
            && tw[2].ends_with("-i drop"),
        "{tw:?}"
    );
    assert_eq!(tw.len(), 3);
    // Membership: a (local) is in the policy's and the tier's set; b is not local.
    let ap = tw[0]
        .split_whitespace()
        .nth(7)
        .expect("set")
        .trim_start_matches('@');
    let at = tw[2]
        .split_whitespace()
        .nth(7)
        .expect("set")
        .trim_start_matches('@');
    for set in [ap, at] {
        assert_eq!(
            t.sets[set].elems.keys().collect::<Vec<_>>(),
            [&ifname_key("vr00000000001")],
            "{set}"
        );
    }
    let policy = tw[0].rsplit(' ').next().expect("chain").to_string();
    let rules = texts(&t, &policy);
    assert!(rules[0].starts_with("log prefix \"vr ingress GlobalNetworkPolicy sec.g: \""));
    // Pass over a selector set: one rule per family, each setting the pass bit.
    assert!(rules[1].starts_with("meta nfproto ipv4 ip saddr @vr-s-"));
    assert!(rules[1].ends_with(" goto vr-pass"));
    assert_eq!(
        texts(&t, CHAIN_PASS),
        ["meta mark set meta mark | 0x02000000 return"]
    );
    assert!(rules[2].starts_with("meta nfproto ipv6 ip6 saddr @vr-s-"));
    // Two port ranges: two alternatives.
    assert_eq!(rules[3], "meta l4proto 6 th dport 22 drop");
    assert_eq!(rules[4], "meta l4proto 6 th dport 80-90 drop");
    assert_eq!(rules.len(), 5);
    // The selector set holds b's address (v4) and nothing for v6.
    let set4 = t
        .sets
        .iter()
        .find(|(n, _)| n.starts_with("vr-s-") && n.ends_with("-4"))
        .expect("v4 set");
    assert_eq!(set4.1.elems.len(), 1);
}

#[test]
fn fixed_nets_skip_the_other_family() {
    let t = render(&state(
        "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: p, namespace: prod}\n\
         spec:\n  selector: all()\n  egress:\n  - {action: Allow, destination: {nets: [192.0.2.0/24]}}\n  \
         - {action: Deny, destination: {notNets: [192.0.2.0/24]}}\n",
    ));
    let fw = texts(&t, CHAIN_WL_POL_OUT);
    let policy = fw[0].rsplit(' ').next().expect("chain").to_string();
    let rules = texts(&t, &policy);
    assert_eq!(rules.len(), 3, "{rules:?}");
    assert!(rules[0].starts_with("meta nfproto ipv4 ip daddr @vr-n-"));
    assert!(rules[1].starts_with("meta nfproto ipv4 ip daddr != @vr-n-"));
    // For IPv6 the notNets set is empty: the condition always holds.
    assert_eq!(rules[2], "meta nfproto ipv6 drop");
    assert!(
        t.sets
            .keys()
            .any(|n| n.starts_with("vr-n-") && n.ends_with("-4"))
    );
    assert!(
        !t.sets
            .keys()
            .any(|n| n.starts_with("vr-n-") && n.ends_with("-6"))
    );
}

#[test]
fn profile_pass_moves_to_the_next_profile() {
    let t = render(&state(
        "---\napiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: p1}\n\
         spec: {ingress: [{action: Pass}, {action: Deny}]}\n",
    ));
    let name = profile_chain("p1", Direction::Ingress);
    let mut s = state(
        "---\napiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: p1}\n\
         spec: {ingress: [{action: Pass}, {action: Deny}]}\n",
    );
    if let Some(ep) = Arc::make_mut(&mut s.ruleset)
        .endpoints
        .get_mut(&EndpointId::new("prod", "a"))
    {
        ep.profiles.insert(0, "p1".into());
        ep.profiles.push("missing".into());
    }
    let t2 = render(&s);
    assert_eq!(texts(&t2, &name), ["return", "drop"]);
    let tw = texts(&t2, "vr-tw-vr00000000001");
    assert!(tw[3].ends_with(&name), "{tw:?}");
    // The missing profile is skipped; the chain still ends in drop.
    assert_eq!(tw.len(), 8, "{tw:?}");
    assert!(
        !t.chains.contains_key(&name),
        "unused profiles get no chain"
    );
}

#[test]
fn log_prefixes_are_bounded() {
    let long = "x".repeat(300);
    let p = log_prefix(&format!("\"{long}\""), Direction::Egress);
    assert!(p.len() <= 120 && !p.contains('"'));
}

const HEP: &str = "---\napiVersion: projectcalico.org/v3\nkind: HostEndpoint\n\
    metadata: {name: n1-eth0, labels: {role: uplink}}\n\
    spec: {node: n1, interfaceName: eth0, expectedIPs: [192.0.2.1]}\n";

fn with_host(yaml: &str) -> PolicyState {
    state(&format!("{HEP}{yaml}")).with_host_endpoints([LocalHostEndpoint {
        id: EndpointId::host("n1-eth0"),
        iface: "eth0".into(),
    }])
}

#[test]
fn host_endpoints_get_failsafe_then_policy_then_drop() {
    let t = render(&with_host(""));
    let input = texts(&t, CHAIN_INPUT);
    assert!(
        input.contains(&"jump vr-from-host-dispatch".to_string()),
        "{input:?}"
    );
    let output = texts(&t, CHAIN_OUTPUT);
    assert_eq!(output[1], "jump vr-to-host-dispatch", "{output:?}");
    assert_eq!(
        t.sets[MAP_FROM_HOST].elems.get(&ifname_key("eth0")),
        Some(&ElemValue::Goto("vr-fh-eth0".into()))
    );
    assert_eq!(
        t.sets[MAP_TO_HOST].elems.get(&ifname_key("eth0")),
        Some(&ElemValue::Goto("vr-th-eth0".into()))
    );
    // No policy and no profile: failsafe ports, then drop.
    let fh = texts(&t, "vr-fh-eth0");
    assert_eq!(fh.first().map(String::as_str), Some("jump vr-failsafe-in"));
    assert_eq!(fh.last().map(String::as_str), Some("drop"));
    let th = texts(&t, "vr-th-eth0");
    assert_eq!(
        th[..3],
        [
            "ct state established,related accept",
            "ct state invalid drop",
            "jump vr-failsafe-out"
        ]
    );
    let fs_in = texts(&t, CHAIN_FAILSAFE_IN);
    assert!(fs_in.contains(&"meta l4proto 6 th dport 22 accept".to_string()));
    assert!(fs_in.contains(&"meta l4proto 17 th dport 68 accept".to_string()));
    assert_eq!(fs_in.len(), 9);
    let fs_out = texts(&t, CHAIN_FAILSAFE_OUT);
    assert!(fs_out.contains(&"meta l4proto 17 th dport 53 accept".to_string()));
    // A policy selecting the host endpoint lands in its chain; workloads are unaffected.
    let t = render(&with_host(
        "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
         metadata: {name: uplink}\nspec: {selector: role == 'uplink', \
         ingress: [{action: Allow, protocol: TCP, destination: {ports: [8080]}}]}\n",
    ));
    let fh = texts(&t, "vr-fh-eth0");
    assert!(fh.iter().any(|r| r.contains("jump vr-pi-")), "{fh:?}");
    assert!(
        !texts(&t, "vr-tw-vr00000000001")
            .iter()
            .any(|r| r.contains("vr-pi-"))
    );
}

#[test]
fn failsafe_ports_with_a_peer_network_use_a_set() {
    let fs = Failsafe {
        inbound: vec![crate::calc::FailsafePort {
            protocol: 6,
            port: 2379,
            net: Some(net("10.9.0.0/16")),
        }],
        ..Failsafe::default()
    };
    let t = skeleton(&fs);
    let rules = texts(&t, CHAIN_FAILSAFE_IN);
    assert_eq!(rules.len(), 1);
    assert!(
        rules[0].starts_with("meta nfproto ipv4 ip saddr @vr-fsn-")
            && rules[0].ends_with("meta l4proto 6 th dport 2379 accept"),
        "{rules:?}"
    );
    assert!(t.sets.keys().any(|n| n.starts_with("vr-fsn-")));
}

/// Incremental updates leave exactly the table a full render of the final state gives.
#[test]
fn incremental_updates_equal_a_full_render() {
    let policies = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
        metadata: {name: to-db}\nspec: {selector: app == 'db', \
        ingress: [{action: Allow, source: {selector: app == 'web'}}]}\n---\n\
        apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
        metadata: {name: from-web}\nspec: {selector: app == 'web', types: [Egress], \
        egress: [{action: Allow, destination: {selector: app == 'db'}}]}\n";
    let base = |a_app: &str| -> String {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: prod}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
             metadata: {{name: a, namespace: prod, labels: {{app: {a_app}}}}}\n\
             spec: {{interfaceName: vr00000000001, ipNetworks: [10.0.0.1/32]}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
             metadata: {{name: b, namespace: prod, labels: {{app: db}}}}\n\
             spec: {{interfaceName: vr00000000002, ipNetworks: [10.0.0.2/32]}}\n---\n{policies}"
        )
    };
    let wl = |name: &str, i: u8| LocalEndpoint {
        id: EndpointId::new("prod", name),
        iface: format!("vr0000000000{i}"),
        nets: vec![net(&format!("10.0.0.{i}/32"))],
        mac: None,
    };
    let state_for = |a_app: &str, with_b: bool| {
        let m = model(&base(a_app));
        let mut ruleset = policy::compile::compile(&m);
        let mut wls = vec![wl("a", 1)];
        if with_b {
            wls.push(wl("b", 2));
        } else {
            ruleset.endpoints.remove(&EndpointId::new("prod", "b"));
        }
        PolicyState::new(ruleset, wls)
    };
    let mut r = Rendered::of(&state_for("web", true));
    r.committed();
    // a: web → db (its chains and the selector sets change), then b goes away.
    let steps: [(&str, bool, PolicyChanges); 2] = [
        (
            "db",
            true,
            PolicyChanges {
                all: false,
                sets: state_for("web", true)
                    .ruleset
                    .ip_sets
                    .sets()
                    .map(|(id, _)| id.clone())
                    .collect(),
                endpoints: [EndpointId::new("prod", "a")].into(),
            },
        ),
        (
            "db",
            false,
            PolicyChanges {
                all: false,
                sets: Default::default(),
                endpoints: [EndpointId::new("prod", "b")].into(),
            },
        ),
    ];
    for (app, with_b, changes) in steps {
        let s = state_for(app, with_b);
        r.update(&s, &changes);
        assert_eq!(
            r.table(),
            &render(&s),
            "after a = {app}, b present = {with_b}"
        );
        assert!(!r.touched().all, "only the changes are touched");
        r.committed();
    }
    let from_web = policy_chain(
        &policy::model::PolicyId {
            kind: policy::model::PolicyKind::GlobalNetworkPolicy,
            namespace: None,
            name: "from-web".into(),
        },
        Direction::Egress,
    );
    // a is no longer web: it left the policy's membership set; the chain stays (every
    // policy has one, so a label change never adds a rule).
    assert!(r.table().chains.contains_key(&from_web));
    let id = policy::model::PolicyId {
        kind: policy::model::PolicyKind::GlobalNetworkPolicy,
        namespace: None,
        name: "from-web".into(),
    };
    let last = state_for("db", false);
    assert!(
        r.table().sets[&policy_member_set(&last.ruleset, &id)]
            .elems
            .is_empty()
    );
}

/// A label change of a workload touches membership elements only, never a chain.
#[test]
fn a_workload_label_change_touches_only_elements() {
    let policies = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
        metadata: {name: to-db}\nspec: {selector: app == 'db', \
        ingress: [{action: Allow, source: {selector: app == 'web'}}]}\n";
    let s = |app: &str| {
        let m = model(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: prod}}\n---\n\
             apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\n\
             metadata: {{name: a, namespace: prod, labels: {{app: {app}}}}}\n\
             spec: {{interfaceName: vr00000000001, ipNetworks: [10.0.0.1/32]}}\n{policies}"
        ));
        PolicyState::new(
            policy::compile::compile(&m),
            vec![LocalEndpoint {
                id: EndpointId::new("prod", "a"),
                iface: "vr00000000001".into(),
                nets: vec![net("10.0.0.1/32")],
                mac: None,
            }],
        )
    };
    let mut r = Rendered::of(&s("web"));
    r.committed();
    let next = s("db");
    let changes = PolicyChanges {
        all: false,
        sets: next
            .ruleset
            .ip_sets
            .sets()
            .map(|(id, _)| id.clone())
            .collect(),
        endpoints: [EndpointId::new("prod", "a")].into(),
    };
    r.update(&next, &changes);
    assert_eq!(r.table(), &render(&next));
    // The endpoint's chains are re-rendered to identical content (the planner sends nothing
    // for them); the shared chain is not touched at all.
    assert!(!r.touched().chains.contains(CHAIN_WL_POL_IN));
    assert!(!r.touched().chains.contains(CHAIN_WL_POL_OUT));
    assert_eq!(
        texts(r.table(), "vr-tw-vr00000000001"),
        texts(&render(&s("web")), "vr-tw-vr00000000001")
    );
}

#[test]
fn anti_spoofing_covers_every_address_of_small_endpoint_networks() {
    use super::super::rendered::source_addrs;
    let id = EndpointId::new("prod", "a");
    let quad = source_addrs(&id, &net("10.0.0.4/30"));
    assert_eq!(
        quad,
        ["10.0.0.4", "10.0.0.5", "10.0.0.6", "10.0.0.7"]
            .map(|a| a.parse::<std::net::IpAddr>().unwrap())
    );
    assert_eq!(source_addrs(&id, &net("fd00::/120")).len(), 256);
    assert!(
        source_addrs(&id, &net("10.0.0.0/16")).is_empty(),
        "too wide"
    );
    let mut s = state("");
    Arc::make_mut(&mut s.workloads).get_mut(&id).unwrap().nets = vec![net("10.0.0.4/30")];
    let t = render(&s);
    assert_eq!(t.sets[SET_WL_SRC4].elems.len(), 4);
}

/// What every rule of a policy needs (one family, one protocol) is checked once, by the jump
/// into its chain; a profile checks a shared protocol at the top of its chain.
#[test]
fn a_protocol_shared_by_every_rule_is_checked_once() {
    let t = render(&state(
        "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: tcp4}\n\
         spec:\n  selector: all()\n  ingress:\n  \
         - {action: Allow, ipVersion: 4, protocol: TCP, source: {selector: app == 'db'}, destination: {ports: [80]}}\n  \
         - {action: Deny, ipVersion: 4, protocol: TCP, destination: {ports: [22]}}\n  \
         - {action: Allow, ipVersion: 4, protocol: TCP, source: {nets: [10.0.0.0/8]}}\n",
    ));
    let tw = texts(&t, CHAIN_WL_POL_IN);
    assert!(
        tw[0].starts_with(
            "meta mark & 0x03000000 == 0 meta nfproto ipv4 meta l4proto 6 oifname @vr-ap-"
        ),
        "{tw:?}"
    );
    let policy = tw[0].rsplit(' ').next().expect("chain").to_string();
    let rules = texts(&t, &policy);
    assert!(
        rules[0].starts_with("ip saddr @vr-s-") && rules[0].ends_with("th dport 80 goto vr-allow"),
        "{rules:?}"
    );
    assert_eq!(rules[1], "th dport 22 drop");
    assert!(rules[2].starts_with("ip saddr @vr-n-"));
    assert_eq!(rules.len(), 3);
    // The same policy on a host endpoint: the same guard on its jump.
    let t = render(&with_host(
        "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: tcp4}\n\
         spec:\n  selector: all()\n  ingress:\n  \
         - {action: Deny, ipVersion: 4, protocol: TCP, destination: {ports: [22]}}\n",
    ));
    let fh = texts(&t, "vr-fh-eth0");
    assert!(
        fh.iter().any(|r| r.starts_with(
            "meta mark & 0x03000000 == 0 meta nfproto ipv4 meta l4proto 6 jump vr-pi-"
        )),
        "{fh:?}"
    );
    // Different protocols: nothing is moved to the jump.
    let t = render(&state(
        "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: both}\n\
         spec:\n  selector: all()\n  ingress:\n  \
         - {action: Allow, protocol: TCP, source: {selector: app == 'db'}}\n  \
         - {action: Deny, protocol: TCP}\n  - {action: Allow, protocol: UDP}\n",
    ));
    let tw = texts(&t, CHAIN_WL_POL_IN);
    assert!(
        tw[0].starts_with("meta mark & 0x03000000 == 0 oifname @vr-ap-"),
        "{tw:?}"
    );
    let policy = tw[0].rsplit(' ').next().expect("chain").to_string();
    let rules = texts(&t, &policy);
    assert!(
        rules[0].starts_with("meta nfproto ipv4 meta l4proto 6 ip saddr @vr-s-"),
        "{rules:?}"
    );
    assert_eq!(rules.len(), 4, "{rules:?}");
    // A profile whose rules all match TCP: one `return` rule at the top.
    let mut s = state(
        "---\napiVersion: projectcalico.org/v3\nkind: Profile\nmetadata: {name: tcp-only}\n\
         spec:\n  ingress:\n  \
         - {action: Allow, protocol: TCP, source: {selector: app == 'db'}}\n  \
         - {action: Deny, protocol: TCP, destination: {ports: [22]}}\n",
    );
    if let Some(ep) = Arc::make_mut(&mut s.ruleset)
        .endpoints
        .get_mut(&EndpointId::new("prod", "a"))
    {
        ep.profiles.insert(0, "tcp-only".into());
    }
    let t = render(&s);
    let profile = profile_chain("tcp-only", Direction::Ingress);
    let rules = texts(&t, &profile);
    assert_eq!(rules[0], "meta l4proto != 6 return", "{rules:?}");
    assert!(
        rules[1].starts_with("meta nfproto ipv4 ip saddr @vr-s-"),
        "{rules:?}"
    );
    assert!(
        rules[2].starts_with("meta nfproto ipv6 ip6 saddr @vr-s-"),
        "{rules:?}"
    );
    assert_eq!(rules[3], "th dport 22 drop");
}

/// A policy with one family's rules and family-independent ones keeps the family test in
/// each of the former (its chain is entered for both families), as does one with rules for
/// both families.
#[test]
fn one_family_and_independent_rules_keep_the_family_per_rule() {
    let t = render(&state(
        "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: mixed}\n\
         spec:\n  selector: all()\n  ingress:\n  \
         - {action: Allow, ipVersion: 4, protocol: TCP, source: {selector: app == 'db'}}\n  \
         - {action: Allow, protocol: UDP}\n",
    ));
    let tw = texts(&t, CHAIN_WL_POL_IN);
    assert!(
        tw[0].starts_with("meta mark & 0x03000000 == 0 oifname @vr-ap-"),
        "{tw:?}"
    );
    let policy = tw[0].rsplit(' ').next().expect("chain").to_string();
    let rules = texts(&t, &policy);
    assert!(
        rules[0].starts_with("meta nfproto ipv4 meta l4proto 6 ip saddr @vr-s-"),
        "{rules:?}"
    );
    assert_eq!(rules[1], "meta l4proto 17 goto vr-allow");
    assert_eq!(rules.len(), 2);
}

/// Policies with the same endpoint selector share one membership set.
#[test]
fn policies_with_one_selector_share_a_membership_set() {
    let t = render(&state(
        "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: one}\n\
         spec: {selector: app == 'web', ingress: [{action: Allow, protocol: TCP}]}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: two}\n\
         spec: {selector: app == 'web', ingress: [{action: Allow, protocol: UDP}]}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: three}\n\
         spec: {selector: app == 'db', ingress: [{action: Allow}]}\n",
    ));
    let tw = texts(&t, CHAIN_WL_POL_IN);
    let set_of = |rule: &str| rule.split_whitespace().nth(7).map(str::to_string);
    assert_eq!(tw.len(), 5, "{tw:?}");
    let mut jumps: Vec<String> = tw[..3].iter().filter_map(|r| set_of(r)).collect();
    jumps.sort();
    jumps.dedup();
    assert_eq!(jumps.len(), 2, "{tw:?}");
    let member_sets: Vec<&String> = t.sets.keys().filter(|n| n.starts_with("vr-ap-")).collect();
    assert_eq!(member_sets.len(), 2, "{member_sets:?}");
    // a (web) is in one of them, once; b (db) is not local.
    let sizes: Vec<usize> = member_sets.iter().map(|n| t.sets[*n].elems.len()).collect();
    assert_eq!(sizes.iter().sum::<usize>(), 1, "{sizes:?}");
}
