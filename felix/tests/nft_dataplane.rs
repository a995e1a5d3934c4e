//! The nftables policy dataplane against the real kernel (the lab in `lab/`): the
//! lifecycle (fail closed, kill, adopt, resync, label change, rebuild), with reachability
//! measured by real TCP/UDP connections. The policy scenarios (default allow, default deny,
//! allow-from-label, ipBlock with except, named port, egress deny, tiers with Pass) run in
//! `cli/tests/policy_nft_scenarios.rs`, where each verdict is also checked against
//! `vrctl policy test`. Needs root.

mod lab;

use std::net::{Ipv4Addr, SocketAddr};

use felix::calc::LocalEndpoint;
use felix::nft::{ApplyReport, PolicyDataplane, PolicyState};
use lab::{LABELS, Lab, Probe, TCP, UDP, UDP_PORT, evaluate, idx, model_of, reach, state_of};
use test_support::Netns;

fn apply_state(
    lab: &Lab,
    dp: &mut PolicyDataplane,
    policies: &str,
    labels: &[(&str, &str)],
    pods: &[&str],
) -> ApplyReport {
    let model = model_of(&format!("{}{policies}", lab.base_yaml(labels)));
    dp.set_desired(state_of(lab, &model, pods));
    dp.apply().expect("apply")
}

fn udp_from(lab: &Lab, src: &str, from: Ipv4Addr, dst: &str) -> bool {
    let to = SocketAddr::from((lab.pod(dst).ip, UDP_PORT));
    reach(&lab.pod(src).ns, Some(from), to, UDP)
}

fn tcp(lab: &Lab, src: &str, dst: &str, port: u16) -> bool {
    let to = SocketAddr::from((lab.pod(dst).ip, port));
    reach(&lab.pod(src).ns, None, to, TCP)
}

#[test]
fn spoofed_sources_and_unknown_interfaces_are_dropped() {
    let lab = Lab::new(4);
    let a = lab.pod("a");
    let spoof = Ipv4Addr::new(10, 65, 0, 99);
    a.ns.add_addr("eth0", &format!("{spoof}/32"))
        .expect("extra addr");
    lab.node
        .add_dev_route(&format!("{spoof}/32"), &a.iface)
        .expect("route back");
    let mut dp = lab.dataplane();

    // Before any state: every vr* interface is unknown, so nothing passes.
    assert!(!tcp(&lab, "a", "b", 80));

    apply_state(&lab, &mut dp, "", &LABELS, &["a", "b", "c"]);
    assert!(udp_from(&lab, "a", a.ip, "b"), "own address passes");
    assert!(
        !udp_from(&lab, "a", spoof, "b"),
        "spoofed source is dropped"
    );
    // d's veth is a vr* interface the maps do not know: nothing in or out.
    assert!(!tcp(&lab, "d", "a", 80));
    assert!(!tcp(&lab, "a", "d", 80));
    assert!(tcp(&lab, "a", "c", 80));

    // Positive controls: the same packets pass once the address / interface is known.
    let model = model_of(&lab.base_yaml(&LABELS));
    let mut pods: Vec<LocalEndpoint> = ["a", "b", "c", "d"]
        .iter()
        .map(|p| lab.pod(p).workload())
        .collect();
    pods[0]
        .nets
        .push(format!("{spoof}/32").parse().expect("net"));
    dp.set_desired(PolicyState::new(policy::compile::compile(&model), pods));
    let report = dp.apply().expect("apply");
    assert_eq!(report.chains_rewritten, 0, "{report:?}");
    assert_eq!(
        report.chains_created, 2,
        "only d's two endpoint chains: {report:?}"
    );
    assert!(udp_from(&lab, "a", spoof, "b"));
    assert!(tcp(&lab, "d", "a", 80));
}

const DEFAULT_DENY: &str = "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
    metadata: {name: default-deny, namespace: prod}\n\
    spec: {podSelector: {}, policyTypes: [Ingress]}\n---\n\
    apiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\n\
    metadata: {name: db-from-frontend, namespace: prod}\n\
    spec:\n  podSelector: {matchLabels: {app: db}}\n  ingress:\n  \
    - from: [{podSelector: {matchLabels: {role: frontend}}}]\n";

#[test]
fn filtering_survives_the_agent_and_a_new_agent_adopts_the_table_unchanged() {
    let lab = Lab::new(4);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(tcp(&lab, "a", "b", 80));
    assert!(!tcp(&lab, "c", "b", 80));
    let before = lab.listing();
    drop(dp); // the agent is gone

    assert!(!tcp(&lab, "c", "b", 80), "policy stays enforced");
    assert!(tcp(&lab, "a", "b", 80));
    assert!(!tcp(&lab, "d", "a", 80), "unknown vr* still dropped");
    assert_eq!(lab.listing(), before);

    let mut dp = lab.dataplane();
    assert_eq!(lab.listing(), before, "adopting changes nothing");
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(report.read_back, "{report:?}");
    assert!(report.is_noop(), "same state, nothing to send: {report:?}");
    assert_eq!(lab.listing(), before);
    // The re-applied state is in place and incremental again.
    let again = dp.apply().expect("apply");
    assert!(again.is_noop() && !again.read_back);
}

/// The name of the nft set (IPv4) that holds `addr` among the `vr-s-…` selector sets.
fn selector_set_with(lab: &Lab, addr: Ipv4Addr) -> String {
    let listing = lab.listing();
    let mut current = None;
    for line in listing.lines() {
        let t = line.trim();
        if let Some(rest) = t.strip_prefix("set ") {
            current = rest.split_whitespace().next().map(str::to_string);
        }
        if t.contains(&addr.to_string())
            && let Some(name) = &current
            && name.starts_with("vr-s-")
        {
            return name.clone();
        }
    }
    panic!("no selector set holds {addr}:\n{listing}");
}

#[test]
fn resync_restores_elements_removed_by_hand() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    let before = lab.listing();
    assert!(tcp(&lab, "a", "b", 80));

    let set = selector_set_with(&lab, lab.pod("a").ip);
    let elem = format!("{{ {} }}", lab.pod("a").ip);
    lab.nft(&["delete", "element", "inet", "vrouter", &set, &elem]);
    let dispatch = format!("{{ \"{}\" }}", lab.pod("b").iface);
    lab.nft(&[
        "delete", "element", "inet", "vrouter", "vr-to-wl", &dispatch,
    ]);
    assert!(!tcp(&lab, "a", "b", 80), "drift takes effect");

    // apply() trusts its own record; resync() reads the kernel back.
    assert!(dp.apply().expect("apply").is_noop());
    let report = dp.resync().expect("resync");
    assert!(report.read_back);
    assert_eq!(report.elements_added, 2, "{report:?}");
    assert!(report.only_elements_changed(), "{report:?}");
    assert_eq!(lab.listing(), before);
    assert!(tcp(&lab, "a", "b", 80));
    assert!(dp.resync().expect("resync").is_noop());
}

/// Applies DEFAULT_DENY with `labels` for a, b and c; checks that only set elements
/// changed, `(added, removed)` of them.
fn relabel(lab: &Lab, dp: &mut PolicyDataplane, labels: &[(&str, &str)], changed: (usize, usize)) {
    let report = apply_state(lab, dp, DEFAULT_DENY, labels, &["a", "b", "c"]);
    assert!(report.only_elements_changed(), "{report:?}");
    assert_eq!(
        (report.elements_added, report.elements_removed),
        changed,
        "{report:?}"
    );
}

/// a → b:80 is denied, by the evaluator for `labels` and by the kernel.
fn a_to_b_denied(lab: &Lab, labels: &[(&str, &str)]) {
    let model = model_of(&format!("{}{DEFAULT_DENY}", lab.base_yaml(labels)));
    let probe = Probe {
        src: idx(lab, "a"),
        dst: idx(lab, "b"),
        protocol: TCP,
        port: 80,
    };
    assert!(!evaluate(lab, &model, &probe));
    assert!(!tcp(lab, "a", "b", 80));
}

#[test]
fn a_label_change_only_changes_set_elements() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(tcp(&lab, "a", "b", 80));

    // a loses `role: frontend`: it leaves the selector's set, nothing else changes.
    let relabelled = [
        ("a", "{app: web, projectcalico.org/orchestrator: k8s}"),
        LABELS[1],
        LABELS[2],
    ];
    relabel(&lab, &mut dp, &relabelled, (0, 1));
    a_to_b_denied(&lab, &relabelled);

    // And back.
    relabel(&lab, &mut dp, &LABELS, (1, 0));
    assert!(tcp(&lab, "a", "b", 80));

    // The local endpoint b stops being `app: db`: db-from-frontend no longer applies to it.
    // That is a membership element (b's interface leaves the policy's set), no rule.
    let not_db = [
        LABELS[0],
        ("b", "{app: cache, projectcalico.org/orchestrator: k8s}"),
        LABELS[2],
    ];
    relabel(&lab, &mut dp, &not_db, (0, 1));
    a_to_b_denied(&lab, &not_db);
    relabel(&lab, &mut dp, &LABELS, (1, 0));
    assert!(tcp(&lab, "a", "b", 80));
}

/// A listing as a sorted list of its blocks (nft lists objects in creation order, which
/// differs between an incrementally built table and one loaded from a script).
fn blocks(listing: &str) -> Vec<String> {
    let mut out: Vec<String> = listing
        .split("\n\n")
        .map(|b| {
            b.trim()
                .trim_start_matches("table inet vrouter {")
                .trim_end_matches('}')
                .trim()
                .to_string()
        })
        .collect();
    out.sort();
    out
}

/// The rules of `nft --debug=netlink list` output as sorted blocks of expressions, each
/// headed by its chain (handles and positions dropped: they follow creation order).
fn expression_blocks(debug: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for line in debug.lines() {
        let t = line.trim();
        if t.starts_with('[') {
            if let Some(block) = current.as_mut() {
                block.push('\n');
                block.push_str(t);
            }
        } else if t.starts_with("inet vrouter ") {
            out.extend(current.take().filter(|b| b.contains('\n')));
            let chain: Vec<&str> = t.split_whitespace().take(3).collect();
            current = Some(chain.join(" "));
        }
    }
    out.extend(current.filter(|b| b.contains('\n')));
    out.sort();
    out
}

/// Our listing with the address matches of family-specific policy chains named as the `nft`
/// text names them: those rules test no family (their chain is entered for one family only),
/// and without that test `nft` lists the match as the raw network-header payload.
fn named_addresses(listing: &str) -> String {
    listing
        .replace("@nh,96,32 ", "ip saddr ")
        .replace("@nh,128,32 ", "ip daddr ")
        .replace("@nh,64,128 ", "ip6 saddr ")
        .replace("@nh,192,128 ", "ip6 daddr ")
}

/// Expression blocks (sorted) without the family test `nft` puts in front of a
/// network-header match (`meta nfproto` and its `cmp`), and how many were removed.
fn without_family_tests(blocks: &[String]) -> (Vec<String>, usize) {
    let mut removed = 0;
    let mut out: Vec<String> = blocks
        .iter()
        .map(|b| {
            let lines: Vec<&str> = b.lines().collect();
            let mut kept = Vec::new();
            let mut i = 0;
            while i < lines.len() {
                let dependency = lines[i] == "[ meta load nfproto => reg 1 ]"
                    && lines
                        .get(i + 1)
                        .is_some_and(|l| l.starts_with("[ cmp eq reg 1 "))
                    && lines.get(i + 2).is_some_and(|l| {
                        l.starts_with("[ payload load") && l.contains("@ network header")
                    });
                if dependency {
                    removed += 1;
                    i += 2;
                } else {
                    kept.push(lines[i]);
                    i += 1;
                }
            }
            kept.join("\n")
        })
        .collect();
    out.sort();
    (out, removed)
}

#[test]
fn the_nft_text_is_valid_and_programs_the_same_table() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    let policies = format!(
        "{DEFAULT_DENY}---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
         metadata: {{name: icmp-and-ports}}\nspec:\n  selector: all()\n  ingress:\n  \
         - {{action: Log}}\n  - {{action: Allow, protocol: ICMP, icmp: {{type: 8, code: 0}}}}\n  \
         - {{action: Deny, protocol: ICMP, notICMP: {{type: 3}}}}\n  \
         - {{action: Allow, protocol: TCP, source: {{notNets: [10.66.0.0/16]}}, destination: {{ports: [22, '8000:8100', dbport], notPorts: [8050]}}}}\n  \
         - {{action: Pass, protocol: UDP, notProtocol: TCP}}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
         metadata: {{name: tcp-only}}\nspec:\n  selector: all()\n  ingress:\n  \
         - {{action: Allow, protocol: TCP, source: {{selector: app == 'web'}}, destination: {{ports: [80]}}}}\n  \
         - {{action: Deny, protocol: TCP, destination: {{ports: [22]}}}}\n  \
         - {{action: Allow, protocol: TCP, source: {{nets: [10.65.0.0/24]}}}}\n\
         ---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\n\
         metadata: {{name: v4-only}}\nspec:\n  selector: all()\n  egress:\n  \
         - {{action: Allow, ipVersion: 4, protocol: UDP, destination: {{selector: app == 'web', ports: [53]}}}}\n  \
         - {{action: Deny, ipVersion: 4, protocol: UDP, destination: {{notNets: [10.65.0.0/24]}}}}\n"
    );
    apply_state(&lab, &mut dp, &policies, &LABELS, &["a", "b", "c"]);
    let script = dp.desired_script();
    // Only prefixed names: nft parses its own listing and our script.
    let path = std::env::temp_dir().join(format!("vr-nft-{}.nft", std::process::id()));
    std::fs::write(&path, &script).expect("write script");
    let p = path.to_string_lossy().to_string();
    lab.nft(&["-c", "-f", &p]);
    // Loaded by nft in a fresh namespace, the script gives the listing our batches gave.
    let other = Netns::new("nftcmp").expect("ns");
    other.exec_ok(&["nft", "-f", &p]).expect("nft -f");
    let theirs = other
        .exec_ok(&["nft", "list", "table", "inet", "vrouter"])
        .expect("list");
    let _ = std::fs::remove_file(&path);
    let listing = lab.listing();
    assert!(listing.contains("@nh,128,32 "), "{listing}");
    assert_eq!(blocks(&named_addresses(&listing)), blocks(&theirs));
    // The same expressions too, but for the family tests nft adds in front of address
    // matches: the policy chains have none (each is entered for one family only), the
    // profile and skeleton chains have the same as nft's.
    let ours = lab.nft(&["--debug=netlink", "list", "table", "inet", "vrouter"]);
    let theirs = other
        .exec_ok(&["nft", "--debug=netlink", "list", "table", "inet", "vrouter"])
        .expect("list");
    let ours = expression_blocks(&ours);
    assert!(
        ours.len() > 40 && ours.iter().any(|b| b.contains("[ lookup")),
        "{ours:?}"
    );
    let (ours, ours_removed) = without_family_tests(&ours);
    let (theirs, theirs_removed) = without_family_tests(&expression_blocks(&theirs));
    assert_eq!(ours, theirs);
    assert!(
        ours_removed < theirs_removed,
        "{ours_removed} {theirs_removed}"
    );
    // And nft can re-read the listing (no keyword clashes in names).
    let listing_path = std::env::temp_dir().join(format!("vr-nft-list-{}.nft", std::process::id()));
    std::fs::write(&listing_path, named_addresses(&listing)).expect("write listing");
    other
        .exec_ok(&["nft", "-c", "-f", &listing_path.to_string_lossy()])
        .expect("listing re-parses");
    let _ = std::fs::remove_file(&listing_path);
}

#[test]
fn a_table_that_cannot_be_patched_is_rebuilt_atomically() {
    let lab = Lab::new(3);
    let mut dp = lab.dataplane();
    apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    let before = lab.listing();
    drop(dp);
    // Someone replaces a set by one of another type.
    lab.nft(&["flush", "chain", "inet", "vrouter", "vr-output"]);
    lab.nft(&["delete", "set", "inet", "vrouter", "vr-wl-ifaces"]);
    lab.nft(&[
        "add",
        "set",
        "inet",
        "vrouter",
        "vr-wl-ifaces",
        "{ type ipv4_addr; }",
    ]);
    let mut dp = lab.dataplane();
    let report = apply_state(&lab, &mut dp, DEFAULT_DENY, &LABELS, &["a", "b", "c"]);
    assert!(report.full_rebuild, "{report:?}");
    assert_eq!(blocks(&lab.listing()), blocks(&before));
    assert!(tcp(&lab, "a", "b", 80));
    assert!(!tcp(&lab, "c", "b", 80));
}
