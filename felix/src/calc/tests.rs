//! Calc unit tests: no kernel, no etcd; updates in, desired-state changes out.

use std::collections::BTreeMap;

use datastore::ipam::{AffinityState, AllocationBlock, BlockAffinity};
use datastore::keys::{ipam_affinity_key, ipam_block_key};
use datastore::resource::{Resource, parse_and_validate_documents};
use datastore::resource_store::key_of;
use ipnetwork::IpNetwork;
use policy::compile::Ruleset;
use policy::ipset::Member;
use policy::model::EndpointId;

use super::*;

const NODE: &str = "node-a";

fn net(s: &str) -> IpNetwork {
    s.parse().unwrap()
}

fn yaml(text: &str) -> Resource {
    let mut docs = parse_and_validate_documents(text).unwrap();
    assert_eq!(docs.len(), 1);
    docs.remove(0)
}

fn put(calc: &mut Calc, r: Resource) {
    calc.on_update(Update {
        key: key_of(&r),
        value: Some(Value::Resource(r)),
        revision: 1,
    });
}

fn delete(calc: &mut Calc, key: String) {
    calc.on_update(Update {
        key,
        value: None,
        revision: 2,
    });
}

fn wep(name: &str, node: &str, ip: &str, labels: &str, iface: Option<&str>) -> Resource {
    let iface = iface
        .map(|i| format!("  interfaceName: {i}\n"))
        .unwrap_or_default();
    yaml(&format!(
        "apiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  name: {name}\n  namespace: prod\n  labels: {{{labels}}}\nspec:\n  node: {node}\n  orchestrator: k8s\n  pod: {name}\n  endpoint: eth0\n  ipNetworks: [{ip}]\n  mac: ee:ee:ee:ee:ee:01\n{iface}"
    ))
}

fn block(calc: &mut Calc, cidr: &str, owner: Option<&str>) {
    let cidr = net(cidr);
    calc.on_update(Update {
        key: ipam_block_key(&cidr),
        value: Some(Value::Block(AllocationBlock::new(cidr, owner).unwrap())),
        revision: 1,
    });
}

fn affinity(calc: &mut Calc, node: &str, cidr: &str, state: Option<AffinityState>) {
    let cidr = net(cidr);
    calc.on_update(Update {
        key: ipam_affinity_key(node, &cidr),
        value: state.map(|s| Value::Affinity(BlockAffinity::new(s))),
        revision: 1,
    });
}

/// Routes in the outputs: dst → target (None = removal).
fn routes(outputs: &[Output]) -> BTreeMap<IpNetwork, Option<RouteDesire>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Route { dst, target } => Some((*dst, target.clone())),
            _ => None,
        })
        .collect()
}

fn endpoints(outputs: &[Output]) -> BTreeMap<EndpointId, Option<LocalEndpoint>> {
    outputs
        .iter()
        .filter_map(|o| match o {
            Output::Endpoint { id, endpoint } => Some((id.clone(), endpoint.clone())),
            _ => None,
        })
        .collect()
}

fn policy(outputs: &[Output]) -> Option<&PolicyDesired> {
    outputs.iter().find_map(|o| match o {
        Output::Policy(p) => Some(&**p),
        _ => None,
    })
}

#[test]
fn only_local_endpoints_produce_endpoints_and_routes() {
    let mut calc = Calc::new(NODE);
    put(
        &mut calc,
        wep("web", NODE, "10.65.0.1/32", "", Some("vrabcdefabcde")),
    );
    put(&mut calc, wep("db", NODE, "\"fd00:65::2/128\"", "", None));
    put(&mut calc, wep("far", "node-b", "10.65.1.1/32", "", None));
    let out = calc.flush();
    let eps = endpoints(&out);
    assert_eq!(eps.len(), 2);
    let web = eps[&EndpointId::new("prod", "web")].clone().unwrap();
    assert_eq!(web.iface, "vrabcdefabcde");
    assert_eq!(web.nets, vec![net("10.65.0.1/32")]);
    assert_eq!(web.mac.as_deref(), Some("ee:ee:ee:ee:ee:01"));
    let db = eps[&EndpointId::new("prod", "db")].clone().unwrap();
    // No interfaceName: the CNI plugin's name for the endpoint id.
    assert_eq!(db.iface, crate::ownership::host_veth_name("prod/db"));
    assert_eq!(
        routes(&out),
        BTreeMap::from([
            (
                net("10.65.0.1/32"),
                Some(RouteDesire::Workload("vrabcdefabcde".into()))
            ),
            (
                net("fd00:65::2/128"),
                Some(RouteDesire::Workload(db.iface.clone()))
            ),
        ])
    );
    let p = policy(&out).expect("first flush always carries the policy state");
    assert_eq!(p.workloads.len(), 2);
    // Compiled chain layouts only for local endpoints.
    assert_eq!(p.ruleset.endpoints.len(), 2);
    assert!(calc.flush().is_empty(), "nothing changed");
}

#[test]
fn endpoint_moves_and_deletions_remove_routes() {
    let mut calc = Calc::new(NODE);
    let w = wep("web", NODE, "10.65.0.1/32", "", Some("vrabcdefabcde"));
    let key = key_of(&w);
    put(&mut calc, w);
    calc.flush();
    // Address change: old /32 withdrawn, new one wanted.
    put(
        &mut calc,
        wep("web", NODE, "10.65.0.9/32", "", Some("vrabcdefabcde")),
    );
    let out = calc.flush();
    assert_eq!(
        routes(&out),
        BTreeMap::from([
            (net("10.65.0.1/32"), None),
            (
                net("10.65.0.9/32"),
                Some(RouteDesire::Workload("vrabcdefabcde".into()))
            ),
        ])
    );
    // Moved to another node: no longer local.
    put(&mut calc, wep("web", "node-b", "10.65.0.9/32", "", None));
    let out = calc.flush();
    assert_eq!(
        endpoints(&out),
        BTreeMap::from([(EndpointId::new("prod", "web"), None)])
    );
    assert_eq!(routes(&out), BTreeMap::from([(net("10.65.0.9/32"), None)]));
    // Deleting a remote endpoint changes nothing local.
    delete(&mut calc, key);
    let out = calc.flush();
    assert!(endpoints(&out).is_empty() && routes(&out).is_empty());
}

#[test]
fn blackholes_only_for_confirmed_local_non_host_blocks() {
    let mut calc = Calc::new(NODE);
    block(&mut calc, "10.65.0.0/26", Some(NODE));
    affinity(
        &mut calc,
        NODE,
        "10.65.0.0/26",
        Some(AffinityState::Confirmed),
    );
    // Pending affinity: a claim in progress is not ownership.
    block(&mut calc, "10.65.0.64/26", Some(NODE));
    affinity(
        &mut calc,
        NODE,
        "10.65.0.64/26",
        Some(AffinityState::Pending),
    );
    // Another node's block, and our affinity to a block stored for someone else.
    block(&mut calc, "10.65.1.0/26", Some("node-b"));
    affinity(
        &mut calc,
        "node-b",
        "10.65.1.0/26",
        Some(AffinityState::Confirmed),
    );
    block(&mut calc, "10.65.2.0/26", Some("node-b"));
    affinity(
        &mut calc,
        NODE,
        "10.65.2.0/26",
        Some(AffinityState::Confirmed),
    );
    // A /32 block never gets a blackhole.
    block(&mut calc, "10.65.3.7/32", Some(NODE));
    affinity(
        &mut calc,
        NODE,
        "10.65.3.7/32",
        Some(AffinityState::Confirmed),
    );
    let out = calc.flush();
    assert_eq!(
        routes(&out),
        BTreeMap::from([(net("10.65.0.0/26"), Some(RouteDesire::Blackhole))])
    );
    // Confirming the pending one adds it; releasing the first removes it.
    affinity(
        &mut calc,
        NODE,
        "10.65.0.64/26",
        Some(AffinityState::Confirmed),
    );
    affinity(&mut calc, NODE, "10.65.0.0/26", None);
    let out = calc.flush();
    assert_eq!(
        routes(&out),
        BTreeMap::from([
            (net("10.65.0.0/26"), None),
            (net("10.65.0.64/26"), Some(RouteDesire::Blackhole)),
        ])
    );
    // Block deleted: its blackhole goes too.
    calc.on_update(Update {
        key: ipam_block_key(&net("10.65.0.64/26")),
        value: None,
        revision: 3,
    });
    assert_eq!(
        routes(&calc.flush()),
        BTreeMap::from([(net("10.65.0.64/26"), None)])
    );
}

const ALLOW_FROM_FRONTEND: &str = "apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata:
  name: allow-frontend
  namespace: prod
spec:
  selector: app == 'db'
  ingress:
  - action: Allow
    source:
      selector: role == 'frontend'
";

fn members(ruleset: &Ruleset) -> BTreeMap<String, Vec<Member>> {
    ruleset
        .ip_sets
        .sets()
        .map(|(id, _)| {
            (
                id.to_string(),
                ruleset.set_members(id).into_iter().collect(),
            )
        })
        .collect()
}

#[test]
fn policies_compile_for_local_endpoints() {
    let mut calc = Calc::new(NODE);
    put(&mut calc, wep("db", NODE, "10.65.0.2/32", "app: db", None));
    put(
        &mut calc,
        wep("fe", "node-b", "10.65.1.1/32", "role: frontend", None),
    );
    put(&mut calc, yaml(ALLOW_FROM_FRONTEND));
    let out = calc.flush();
    let p = policy(&out).unwrap();
    let db = &p.ruleset.endpoints[&EndpointId::new("prod", "db")];
    assert_eq!(db.ingress.len(), 1);
    assert_eq!(db.ingress[0].policies[0].name, "allow-frontend");
    assert!(
        !p.ruleset
            .endpoints
            .contains_key(&EndpointId::new("prod", "fe"))
    );
    // The remote frontend is a member of the source selector's set.
    let all = members(&p.ruleset);
    assert!(
        all.values()
            .any(|m| m.contains(&Member::Net(net("10.65.1.1/32")))),
        "{all:?}"
    );
}

#[test]
fn incremental_label_changes_match_a_full_rebuild() {
    let mut calc = Calc::new(NODE);
    put(&mut calc, wep("db", NODE, "10.65.0.2/32", "app: db", None));
    put(
        &mut calc,
        wep("fe", "node-b", "10.65.1.1/32", "role: frontend", None),
    );
    put(
        &mut calc,
        wep("x", "node-b", "10.65.1.2/32", "role: other", None),
    );
    put(&mut calc, yaml(ALLOW_FROM_FRONTEND));
    calc.flush();
    // Label changes only (incremental path): x becomes a frontend, fe stops being one,
    // the local db stops being selected by the policy.
    put(
        &mut calc,
        wep("x", "node-b", "10.65.1.2/32", "role: frontend", None),
    );
    put(
        &mut calc,
        wep("fe", "node-b", "10.65.1.1/32", "role: gone", None),
    );
    put(
        &mut calc,
        wep("db", NODE, "10.65.0.2/32", "app: cache", None),
    );
    let out = calc.flush();
    let incremental = policy(&out).expect("label changes re-emit the policy state");

    let mut fresh = Calc::new(NODE);
    put(
        &mut fresh,
        wep("db", NODE, "10.65.0.2/32", "app: cache", None),
    );
    put(
        &mut fresh,
        wep("fe", "node-b", "10.65.1.1/32", "role: gone", None),
    );
    put(
        &mut fresh,
        wep("x", "node-b", "10.65.1.2/32", "role: frontend", None),
    );
    put(&mut fresh, yaml(ALLOW_FROM_FRONTEND));
    let out_fresh = fresh.flush();
    let full = policy(&out_fresh).unwrap();

    assert_eq!(members(&incremental.ruleset), members(&full.ruleset));
    assert_eq!(incremental.ruleset.endpoints, full.ruleset.endpoints);
    assert!(
        incremental.ruleset.endpoints[&EndpointId::new("prod", "db")]
            .ingress
            .is_empty()
    );
    // Deleting an endpoint removes its contributions.
    delete(
        &mut calc,
        key_of(&wep("x", "node-b", "10.65.1.2/32", "", None)),
    );
    let out = calc.flush();
    let after = policy(&out).unwrap();
    assert!(
        !members(&after.ruleset)
            .values()
            .any(|m| m.contains(&Member::Net(net("10.65.1.2/32"))))
    );
}

#[test]
fn invalid_resources_are_left_out_and_reported() {
    let mut calc = Calc::new(NODE);
    put(&mut calc, wep("db", NODE, "10.65.0.2/32", "app: db", None));
    put(&mut calc, yaml(ALLOW_FROM_FRONTEND));
    // A policy in a tier that does not exist: inactive, as in Calico.
    put(
        &mut calc,
        yaml(
            "apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata:
  name: security.deny-all
spec:
  tier: security
  selector: all()
  ingress:
  - action: Deny
",
        ),
    );
    let out = calc.flush();
    let p = policy(&out).unwrap();
    assert_eq!(p.ruleset.policies.len(), 1, "only the valid policy");
    assert_eq!(
        calc.invalid_resources().len(),
        1,
        "{:?}",
        calc.invalid_resources()
    );
    // Creating the tier activates it (full rebuild) and clears the report.
    put(
        &mut calc,
        yaml(
            "apiVersion: projectcalico.org/v3
kind: Tier
metadata:
  name: security
spec:
  order: 100
",
        ),
    );
    let out = calc.flush();
    let p = policy(&out).unwrap();
    assert_eq!(p.ruleset.policies.len(), 2);
    assert!(calc.invalid_resources().is_empty());
    let db = &p.ruleset.endpoints[&EndpointId::new("prod", "db")];
    assert_eq!(db.ingress[0].tier, "security");
}

#[test]
fn irrelevant_updates_change_nothing() {
    let mut calc = Calc::new(NODE);
    calc.flush();
    put(
        &mut calc,
        yaml(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata:\n  name: p\nspec:\n  cidr: 10.65.0.0/16\n",
        ),
    );
    calc.on_update(Update {
        key: "/vrouter/ipam/handles/k8s-pod-network.abc".into(),
        value: Some(Value::Ignored),
        revision: 1,
    });
    assert!(calc.flush().is_empty());
}

#[test]
fn decode_dispatches_on_the_key() {
    let pool = br#"{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"p"},"spec":{"cidr":"10.0.0.0/16"}}"#;
    assert!(matches!(
        decode("/vrouter/resources/ippools/p", pool),
        Ok(Value::Resource(Resource::IpPool(_)))
    ));
    assert!(decode("/vrouter/resources/ippools/p", b"{").is_err());
    let b = AllocationBlock::new(net("10.0.0.0/26"), Some(NODE)).unwrap();
    assert!(matches!(
        decode("/vrouter/ipam/blocks/10.0.0.0-26", &b.to_json()),
        Ok(Value::Block(_))
    ));
    assert!(matches!(
        decode(
            "/vrouter/ipam/affinity/node-a/10.0.0.0-26",
            br#"{"state":"confirmed"}"#
        ),
        Ok(Value::Affinity(_))
    ));
    assert_eq!(decode("/vrouter/ipam/handles/h", b"{}"), Ok(Value::Ignored));
}

#[test]
fn a_label_change_reports_only_the_sets_and_endpoint_it_changed() {
    let mut calc = Calc::new(NODE);
    put(&mut calc, yaml(ALLOW_FROM_FRONTEND));
    put(&mut calc, wep("db", NODE, "10.65.0.2/32", "app: db", None));
    put(
        &mut calc,
        wep("fe", "node-b", "10.65.1.1/32", "role: frontend", None),
    );
    let first = policy(&calc.flush()).expect("first flush").changes.clone();
    assert!(first.all, "the first hand-over is complete");

    // A remote endpoint leaves the selector: one set changes, no endpoint, no route.
    put(
        &mut calc,
        wep("fe", "node-b", "10.65.1.1/32", "role: gone", None),
    );
    let out = calc.flush();
    assert!(routes(&out).is_empty() && endpoints(&out).is_empty());
    let changes = &policy(&out).expect("policy re-emitted").changes;
    assert!(!changes.all);
    assert_eq!(changes.sets.len(), 1, "{changes:?}");
    assert!(changes.endpoints.is_empty(), "{changes:?}");

    // The local endpoint's labels change so the policy no longer selects it: its layout
    // changes, its LocalEndpoint (interface, addresses) does not.
    put(
        &mut calc,
        wep("db", NODE, "10.65.0.2/32", "app: cache", None),
    );
    let out = calc.flush();
    assert!(
        endpoints(&out).is_empty(),
        "interface and addresses unchanged"
    );
    let changes = &policy(&out).expect("policy re-emitted").changes;
    assert_eq!(
        changes.endpoints,
        [EndpointId::new("prod", "db")].into(),
        "{changes:?}"
    );
    assert!(!changes.all);
}

const HOST_EP: &str = "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\n\
    metadata: {name: a-eth0, labels: {role: uplink}}\n\
    spec: {node: node-a, interfaceName: eth0, expectedIPs: [192.0.2.1]}\n";

#[test]
fn local_host_endpoints_and_failsafe_ports() {
    let mut calc = Calc::new(NODE);
    put(&mut calc, yaml(HOST_EP));
    put(
        &mut calc,
        yaml(
            "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: b-eth0}\n\
             spec: {node: node-b, interfaceName: eth0}\n",
        ),
    );
    put(
        &mut calc,
        yaml(
            "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: a-all}\n\
             spec: {node: node-a, interfaceName: '*'}\n",
        ),
    );
    let out = calc.flush();
    let p = policy(&out).expect("policy");
    let id = EndpointId::host("a-eth0");
    assert_eq!(
        p.host_endpoints.keys().collect::<Vec<_>>(),
        [&id],
        "only this node's, only named interfaces"
    );
    assert_eq!(p.host_endpoints[&id].iface, "eth0");
    assert!(p.ruleset.endpoints.contains_key(&id), "its chain layout");
    assert!(
        endpoints(&out).is_empty() && routes(&out).is_empty(),
        "no routes for hosts"
    );
    assert_eq!(*p.failsafe, Failsafe::default());

    // The node's FelixConfiguration overrides the default one, field by field.
    put(
        &mut calc,
        yaml(
            "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: default}\n\
             spec: {failsafeInboundHostPorts: [{protocol: TCP, port: 2222}], \
             failsafeOutboundHostPorts: [{protocol: UDP, port: 5353}]}\n",
        ),
    );
    put(
        &mut calc,
        yaml(
            "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\nmetadata: {name: node.node-a}\n\
             spec: {failsafeInboundHostPorts: [{protocol: TCP, port: 22}, {protocol: UDP, port: 68}]}\n",
        ),
    );
    let out = calc.flush();
    let p = policy(&out).expect("failsafe change re-emits");
    assert!(p.changes.all);
    let ports = |list: &[FailsafePort]| {
        list.iter()
            .map(|p| (p.protocol, p.port))
            .collect::<Vec<_>>()
    };
    assert_eq!(ports(&p.failsafe.inbound), [(6, 22), (17, 68)]);
    assert_eq!(ports(&p.failsafe.outbound), [(17, 5353)]);

    // A label change on the host endpoint is incremental; deleting it removes it.
    put(&mut calc, yaml(&HOST_EP.replace("uplink", "other")));
    let out = calc.flush();
    let p = policy(&out).expect("policy");
    assert!(!p.changes.all, "{:?}", p.changes);
    delete(&mut calc, key_of(&yaml(HOST_EP)));
    let out = calc.flush();
    let p = policy(&out).expect("policy");
    assert!(p.host_endpoints.is_empty() && !p.ruleset.endpoints.contains_key(&id));
}

#[test]
fn vxlan_pool_mode_changes_flow_through_the_calc_as_vtep_and_route_changes() {
    let mut calc = Calc::new(NODE);
    let pool = |mode: &str| {
        yaml(&format!(
            "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {{name: p}}\nspec: {{cidr: 10.66.0.0/16, vxlanMode: {mode}}}\n"
        ))
    };
    let node = |name: &str, ip: &str, vtep: &str, mac: &str| {
        yaml(&format!(
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {{name: {name}}}\nspec:\n  bgp: {{ipv4Address: {ip}}}\n  ipv4VXLANTunnelAddr: {vtep}\n  vxlanTunnelMACAddr: \"{mac}\"\n"
        ))
    };
    put(&mut calc, pool("Never"));
    put(
        &mut calc,
        node(NODE, "10.1.0.1/24", "10.66.0.1", "02:00:00:00:00:01"),
    );
    put(
        &mut calc,
        node("node-b", "10.1.0.2/24", "10.66.1.1", "02:00:00:00:00:02"),
    );
    put(
        &mut calc,
        node("node-c", "10.2.0.3/24", "10.66.2.1", "02:00:00:00:00:03"),
    );
    block(&mut calc, "10.66.0.0/24", Some(NODE));
    affinity(
        &mut calc,
        NODE,
        "10.66.0.0/24",
        Some(AffinityState::Confirmed),
    );
    block(&mut calc, "10.66.1.0/24", Some("node-b"));
    block(&mut calc, "10.66.2.0/24", Some("node-c"));
    let out = calc.flush();
    assert_eq!(
        routes(&out),
        BTreeMap::from([(net("10.66.0.0/24"), Some(RouteDesire::Blackhole))]),
        "Never: remote blocks are BGP's"
    );
    let vtep = |out: &[Output]| {
        out.iter().find_map(|o| match o {
            Output::Vtep(v) => Some(v.clone()),
            _ => None,
        })
    };
    assert_eq!(vtep(&out).unwrap().device, None);

    put(&mut calc, pool("CrossSubnet"));
    let out = calc.flush();
    let v = vtep(&out).expect("the VTEP changed");
    assert_eq!(v.device.unwrap().addr.to_string(), "10.66.0.1");
    assert_eq!(v.peers.len(), 2);
    assert_eq!(
        routes(&out),
        BTreeMap::from([
            (
                net("10.66.1.0/24"),
                Some(RouteDesire::Gateway("10.1.0.2".parse().unwrap()))
            ),
            (
                net("10.66.2.0/24"),
                Some(RouteDesire::Tunnel("10.66.2.1".parse().unwrap()))
            ),
        ])
    );

    put(&mut calc, pool("Always"));
    let out = calc.flush();
    assert!(vtep(&out).is_none(), "same VTEPs");
    assert_eq!(
        routes(&out),
        BTreeMap::from([(
            net("10.66.1.0/24"),
            Some(RouteDesire::Tunnel("10.66.1.1".parse().unwrap()))
        )])
    );

    put(&mut calc, pool("Never"));
    let out = calc.flush();
    assert_eq!(vtep(&out).unwrap(), vxlan::VxlanDesired::default());
    assert_eq!(
        routes(&out),
        BTreeMap::from([(net("10.66.1.0/24"), None), (net("10.66.2.0/24"), None)])
    );
}
