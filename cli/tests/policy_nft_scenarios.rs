//! The policy scenarios of issue 6's acceptance against the real kernel: felix's nftables
//! dataplane programs a node namespace with three pod namespaces (the lab shared with felix's
//! tests), and every case is checked four ways: the expectation written here, the policy
//! evaluator, the real `vrctl policy test -f` binary (exit 0 allow, 3 deny), and a real TCP
//! connection or UDP round trip between the pod namespaces. Cases: default allow, Kubernetes
//! default-deny-ingress, allow-from-label, ipBlock with except, named port, egress deny, a
//! policy whose rules all match IPv4 TCP, and a GlobalNetworkPolicy in a Deny tier with Log
//! and Pass rules. Needs root.

#[path = "../../felix/tests/lab/mod.rs"]
mod lab;

use std::path::Path;
use std::process::Command;

use felix::nft::PolicyDataplane;
use lab::{LABELS, Lab, Probe, TCP, UDP, evaluate, idx, model_of, run_probes, state_of};
use policy::rule::Protocol;

/// `(src, dst, protocol, port, expected)`.
type Case = (&'static str, &'static str, Protocol, u16, bool);

/// `vrctl policy test -f <model>` for one probe: `true` allow (exit 0), `false` deny (3).
fn vrctl_allows(model: &Path, lab: &Lab, p: &Probe) -> bool {
    let pod = |i: usize| format!("{}/{}", lab.pods[i].namespace, lab.pods[i].name);
    let protocol = if p.protocol == TCP { "TCP" } else { "UDP" };
    let out = Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .args(["policy", "test", "-f"])
        .arg(model)
        .args(["--from", &pod(p.src), "--to", &pod(p.dst)])
        .args(["--protocol", protocol, "--port", &p.port.to_string()])
        .output()
        .expect("runs vrctl");
    match out.status.code() {
        Some(0) => true,
        Some(3) => false,
        code => panic!(
            "vrctl policy test failed ({code:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

/// Applies `policies` (on top of the base resources) and checks every case four ways:
/// expectation, evaluator, `vrctl policy test`, and real traffic.
fn check(
    lab: &Lab,
    dp: &mut PolicyDataplane,
    labels: &[(&str, &str)],
    policies: &str,
    cases: &[Case],
) {
    let yaml = format!("{}{policies}", lab.base_yaml(labels));
    let model = model_of(&yaml);
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("model.yaml");
    std::fs::write(&file, &yaml).expect("write model");
    let names: Vec<&str> = lab.pods.iter().map(|p| p.name).collect();
    dp.set_desired(state_of(lab, &model, &names));
    dp.apply().expect("apply");
    let probes: Vec<Probe> = cases
        .iter()
        .map(|(s, d, protocol, port, _)| Probe {
            src: idx(lab, s),
            dst: idx(lab, d),
            protocol: *protocol,
            port: *port,
        })
        .collect();
    let got = run_probes(lab, &probes);
    for ((case, probe), actual) in cases.iter().zip(&probes).zip(got) {
        let evaluated = evaluate(lab, &model, probe);
        assert_eq!(
            evaluated, case.4,
            "evaluator disagrees with the expectation for {case:?}"
        );
        assert_eq!(
            vrctl_allows(&file, lab, probe),
            evaluated,
            "vrctl policy test disagrees with the evaluator for {case:?}"
        );
        assert_eq!(
            actual,
            evaluated,
            "kernel verdict differs from the evaluator for {case:?}\n{}",
            lab.listing()
        );
    }
}

#[test]
fn reachability_matches_the_evaluator_and_vrctl_for_every_scenario() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();

    // Default allow: no policy selects anything.
    check(
        &lab,
        &mut dp,
        &LABELS,
        "",
        &[
            ("a", "b", TCP, 80, true),
            ("c", "a", TCP, 8080, true),
            ("b", "c", UDP, 53, true),
        ],
    );

    // Kubernetes default-deny-ingress in prod.
    let deny = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                metadata: {name: default-deny, namespace: prod}\n\
                spec: {podSelector: {}, policyTypes: [Ingress]}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        deny,
        &[
            ("c", "a", TCP, 80, false),
            ("a", "b", TCP, 5432, false),
            ("c", "b", UDP, 53, false),
            ("a", "c", TCP, 80, true),
            ("b", "c", UDP, 53, true),
        ],
    );

    // Allow from a label (on top of the default deny).
    let from_label = format!(
        "{deny}---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
         metadata: {{name: db-from-frontend, namespace: prod}}\n\
         spec:\n  podSelector: {{matchLabels: {{app: db}}}}\n  ingress:\n  \
         - from: [{{podSelector: {{matchLabels: {{role: frontend}}}}}}]\n    \
         ports: [{{protocol: TCP, port: 5432}}]\n"
    );
    check(
        &lab,
        &mut dp,
        &LABELS,
        &from_label,
        &[
            ("a", "b", TCP, 5432, true),
            ("a", "b", TCP, 80, false),
            ("c", "b", TCP, 5432, false),
        ],
    );

    // ipBlock with except.
    let ipblock = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
                   metadata: {name: web-from-block, namespace: prod}\n\
                   spec:\n  podSelector: {matchLabels: {app: web}}\n  ingress:\n  \
                   - from: [{ipBlock: {cidr: 10.65.0.0/24, except: [10.65.0.3/32]}}]\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        ipblock,
        &[
            ("b", "a", TCP, 80, true),
            ("b", "a", UDP, 53, true),
            ("c", "a", TCP, 80, false),
            ("c", "b", TCP, 80, true),
        ],
    );

    // Named port (Calico NetworkPolicy).
    let named = "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
                 metadata: {name: db-named-port, namespace: prod}\n\
                 spec:\n  selector: app == 'db'\n  ingress:\n  \
                 - {action: Allow, protocol: TCP, destination: {ports: [dbport]}}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        named,
        &[
            ("c", "b", TCP, 5432, true),
            ("a", "b", TCP, 5432, true),
            ("a", "b", TCP, 8080, false),
            ("c", "a", TCP, 5432, true),
        ],
    );

    // Egress deny.
    let egress = "---\napiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
                  metadata: {name: web-egress, namespace: prod}\n\
                  spec:\n  selector: app == 'web'\n  types: [Egress]\n  egress:\n  \
                  - {action: Deny, protocol: UDP, destination: {ports: [53]}}\n  \
                  - {action: Deny, protocol: TCP, destination: {nets: [10.65.0.3/32], notPorts: [8080]}}\n  \
                  - {action: Allow}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        egress,
        &[
            ("a", "c", UDP, 53, false),
            ("a", "b", UDP, 53, false),
            ("a", "c", TCP, 80, false),
            ("a", "c", TCP, 8080, true),
            ("a", "b", TCP, 80, true),
            ("b", "a", UDP, 53, true),
        ],
    );

    // Every rule IPv4 TCP (the dataplane checks family and protocol once per chain): UDP
    // matches no rule and meets the end-of-tier deny.
    let tcp_only = "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
                    metadata: {name: tool-tcp}\n\
                    spec:\n  selector: app == 'tool'\n  types: [Ingress]\n  ingress:\n  \
                    - {action: Allow, ipVersion: 4, protocol: TCP, source: {selector: role == 'frontend'}, destination: {ports: [80]}}\n  \
                    - {action: Deny, ipVersion: 4, protocol: TCP, destination: {ports: [8080]}}\n  \
                    - {action: Allow, ipVersion: 4, protocol: TCP, source: {nets: [10.65.0.0/24]}}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        tcp_only,
        &[
            ("a", "c", TCP, 80, true),
            ("b", "c", TCP, 80, true),
            ("a", "c", TCP, 8080, false),
            ("b", "c", TCP, 5432, true),
            ("b", "c", UDP, 53, false),
            ("c", "a", UDP, 53, true),
        ],
    );

    // A Calico GNP in a Deny tier with Log and Pass rules.
    let tiered = "---\napiVersion: projectcalico.org/v3\nkind: Tier\nmetadata: {name: security}\n\
                  spec: {order: 100}\n---\napiVersion: projectcalico.org/v3\n\
                  kind: GlobalNetworkPolicy\nmetadata: {name: security.gate}\n\
                  spec:\n  tier: security\n  order: 10\n  selector: all()\n  types: [Ingress]\n  ingress:\n  \
                  - {action: Log}\n  \
                  - {action: Pass, source: {selector: app == 'web'}}\n  \
                  - {action: Deny, source: {selector: app == 'tool'}}\n  \
                  - {action: Allow, protocol: UDP}\n---\n\
                  apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\n\
                  metadata: {name: db-only-5432, namespace: prod}\n\
                  spec:\n  selector: app == 'db'\n  ingress:\n  \
                  - {action: Allow, protocol: TCP, destination: {ports: [5432]}}\n";
    check(
        &lab,
        &mut dp,
        &LABELS,
        tiered,
        &[
            ("a", "b", TCP, 5432, true),
            ("a", "b", TCP, 80, false),
            ("a", "c", TCP, 80, true),
            ("c", "b", TCP, 5432, false),
            ("b", "a", TCP, 80, false),
            ("b", "a", UDP, 53, true),
        ],
    );
}
