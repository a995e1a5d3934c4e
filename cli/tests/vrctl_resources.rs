//! `vrctl apply|create|replace|delete|get` against a real etcd, through the real binary.
//!
//! Each test starts its own etcd (loopback, free port) so tests can run in parallel and see
//! only their own objects. Assertions:
//! 1. every kind survives apply → `get -o yaml` with resourceVersion/uid/creationTimestamp
//!    filled in, and that output applies back unchanged (one object and `<Kind>List`);
//! 2. calicoctl semantics: create fails on existing, replace on missing, delete -f and
//!    delete KIND NAME, get of a missing object names it;
//! 3. re-applying the same file writes nothing (the etcd revision does not move);
//! 4. one invalid document among 40 valid ones writes nothing and is reported as
//!    `FILE: document N (Kind/ns/name): path: detail`, exit 1;
//! 5. YAML syntax errors give line and column; unknown kinds and fields are named;
//! 6. 1,000 policies in one file land in one transaction (one revision);
//! 7. tables (-o wide columns), JSON output/input, `kind: List`, stdin, namespaces (-n, -A).

use std::io::Write;
use std::process::{Command, Stdio};

use test_support::etcd::Etcd;

/// The result of one `vrctl` run.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// A real etcd plus a scratch directory for input files and an empty config file (so a
/// host's `/etc/vrouter/vrctl.yaml` cannot leak into the test).
struct Cluster {
    etcd: Etcd,
    dir: tempfile::TempDir,
}

impl Cluster {
    fn start() -> Self {
        let etcd = Etcd::start().expect("start etcd");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("vrctl.yaml"), "").expect("config file");
        Self { etcd, dir }
    }

    fn file(&self, name: &str, text: &str) -> String {
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).expect("write input");
        path.display().to_string()
    }

    fn vrctl_with_stdin(&self, args: &[&str], stdin: &str) -> Run {
        let mut child = Command::new(env!("CARGO_BIN_EXE_vrctl"))
            .env_remove("VROUTER_ETCD_ENDPOINTS")
            .arg("--etcd-endpoints")
            .arg(self.etcd.endpoint())
            .arg("--config")
            .arg(self.dir.path().join("vrctl.yaml"))
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run vrctl");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("vrctl output");
        Run {
            code: out.status.code().expect("exit code"),
            stdout: String::from_utf8(out.stdout).expect("utf-8 stdout"),
            stderr: String::from_utf8(out.stderr).expect("utf-8 stderr"),
        }
    }

    fn vrctl(&self, args: &[&str]) -> Run {
        self.vrctl_with_stdin(args, "")
    }

    /// Runs and insists on exit 0; returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let run = self.vrctl(args);
        assert_eq!(
            run.code, 0,
            "vrctl {args:?} failed:\n{}\n{}",
            run.stderr, run.stdout
        );
        run.stdout
    }

    /// Runs and insists on exit 1; returns stderr.
    fn rejected(&self, args: &[&str]) -> String {
        let run = self.vrctl(args);
        assert_eq!(
            run.code, 1,
            "vrctl {args:?}:\n{}\n{}",
            run.stderr, run.stdout
        );
        assert_eq!(
            run.stderr.lines().count(),
            1,
            "one error line: {}",
            run.stderr
        );
        run.stderr
    }

    /// The store's current revision.
    fn revision(&self) -> i64 {
        let out = self
            .etcd
            .etcdctl(&["get", "/vrouter/none", "-w", "json"])
            .expect("etcdctl get");
        let json: serde_json::Value = serde_json::from_str(&out).expect("etcdctl json");
        json["header"]["revision"].as_i64().expect("revision")
    }
}

const ALL_KINDS: &str = r#"apiVersion: projectcalico.org/v3
kind: IPPool
metadata: {name: pool-a}
spec: {cidr: 10.20.0.0/16, blockSize: 26, natOutgoing: true, nodeSelector: all()}
---
apiVersion: projectcalico.org/v3
kind: Node
metadata: {name: node-1, labels: {rack: r1}}
spec:
  bgp: {ipv4Address: 192.168.0.1/24, asNumber: 64512}
---
apiVersion: projectcalico.org/v3
kind: BGPPeer
metadata: {name: tor-1}
spec: {peerIP: 192.168.0.254, asNumber: 64600, node: node-1}
---
apiVersion: projectcalico.org/v3
kind: BGPConfiguration
metadata: {name: default}
spec: {asNumber: 64512, nodeToNodeMeshEnabled: true, logSeverityScreen: Info}
---
apiVersion: projectcalico.org/v3
kind: Tier
metadata: {name: security}
spec: {order: 100, defaultAction: Deny}
---
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: allow-web, namespace: prod}
spec:
  tier: security
  order: 10
  selector: app == "web"
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80, "8000:8080"]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: allow-dns}
spec:
  selector: all()
  types: [Egress]
  egress:
  - action: Allow
    protocol: UDP
    destination: {ports: [53]}
---
apiVersion: projectcalico.org/v3
kind: NetworkSet
metadata: {name: partners, namespace: prod, labels: {role: partner}}
spec: {nets: [198.51.100.0/24]}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkSet
metadata: {name: blocked, labels: {role: blocked}}
spec: {nets: [203.0.113.0/24]}
---
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: allow-all}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: node--1-k8s-web--0-eth0, namespace: prod, labels: {app: web}}
spec:
  node: node-1
  orchestrator: k8s
  pod: web-0
  endpoint: eth0
  interfaceName: vr0123456789a
  ipNetworks: [10.20.0.5/32]
  profiles: [allow-all]
---
apiVersion: projectcalico.org/v3
kind: FelixConfiguration
metadata: {name: default}
spec: {logSeverityScreen: Info}
---
apiVersion: projectcalico.org/v3
kind: IPAMConfiguration
metadata: {name: default}
spec: {strictAffinity: false, maxBlocksPerHost: 4}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-ingress, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress]
  ingress:
  - from: [{podSelector: {matchLabels: {role: api}}}]
    ports: [{protocol: TCP, port: 5432}]
---
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: a}}
"#;

/// `vrctl get` arguments for each document of [`ALL_KINDS`], in order.
const GET_ARGS: [&[&str]; 15] = [
    &["ippool", "pool-a"],
    &["node", "node-1"],
    &["bgppeer", "tor-1"],
    &["bgpconfig", "default"],
    &["tier", "security"],
    &["networkpolicy", "allow-web", "-n", "prod"],
    &["gnp", "allow-dns"],
    &["networkset", "partners", "-n", "prod"],
    &["globalnetworkset", "blocked"],
    &["profile", "allow-all"],
    &["wep", "node--1-k8s-web--0-eth0", "-n", "prod"],
    &["felixconfig", "default"],
    &["ipamconfig", "default"],
    &["k8snetworkpolicy", "db-ingress", "-n", "prod"],
    &["namespace", "prod"],
];

/// The parsed YAML with the server-managed metadata removed, after checking it is there.
fn without_server_fields(mut doc: yaml_serde::Value) -> yaml_serde::Value {
    let meta = doc
        .get_mut("metadata")
        .and_then(yaml_serde::Value::as_mapping_mut)
        .expect("metadata");
    for field in ["resourceVersion", "uid", "creationTimestamp"] {
        let value = meta
            .remove(field)
            .unwrap_or_else(|| panic!("{field} missing"));
        assert!(
            value.as_str().is_some_and(|s| !s.is_empty()),
            "{field}: {value:?}"
        );
    }
    doc
}

fn documents(text: &str) -> Vec<yaml_serde::Value> {
    yaml_serde::Deserializer::from_str(text)
        .map(|d| <yaml_serde::Value as serde::Deserialize>::deserialize(d).expect("yaml"))
        .collect()
}

#[test]
fn every_kind_round_trips_through_apply_and_get() {
    let c = Cluster::start();
    let file = c.file("all.yaml", ALL_KINDS);
    let out = c.ok(&["apply", "-f", &file]);
    assert!(out.contains("Successfully applied 15 resource(s)"), "{out}");
    let applied = documents(ALL_KINDS);
    let before = c.revision();
    for (args, original) in GET_ARGS.iter().zip(applied) {
        let mut get = vec!["get"];
        get.extend_from_slice(args);
        get.extend(["-o", "yaml"]);
        let yaml = c.ok(&get);
        let got = documents(&yaml).pop().expect("one document");
        assert_eq!(without_server_fields(got), original, "{args:?}:\n{yaml}");
        // What get printed is accepted back, and changes nothing.
        let back = c.file("back.yaml", &yaml);
        let out = c.ok(&["apply", "-f", &back]);
        assert!(out.contains(" unchanged\n"), "{args:?}: {out}");
    }
    // The list form of every kind applies back as well.
    for args in GET_ARGS {
        // -A: every namespace for namespaced kinds, no effect on cluster-scoped ones.
        let list = c.ok(&["get", args[0], "-A", "-o", "yaml"]);
        assert!(list.contains("List\n"), "{list}");
        let back = c.file("list.yaml", &list);
        let out = c.ok(&["apply", "-f", &back]);
        assert!(out.contains("Successfully applied 1 resource(s)"), "{out}");
    }
    assert_eq!(
        c.revision(),
        before,
        "re-applying get output wrote something"
    );
}

#[test]
fn host_endpoints_are_validated_and_stored() {
    // vrctl runs the policy validator on every document: a HostEndpoint with a bad
    // expected IP is refused up front, a valid one is stored (the agent enforces it).
    let c = Cluster::start();
    let bad = c.file(
        "bad-hep.yaml",
        "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h1}\nspec: {node: node-1, interfaceName: eth0, expectedIPs: [10.0.0.300]}\n",
    );
    let err = c.rejected(&["apply", "-f", &bad]);
    assert!(
        err.contains("HostEndpoint/h1") && err.contains("10.0.0.300"),
        "{err}"
    );
    assert_eq!(c.ok(&["get", "hep"]), "NAME\n");
    let good = c.file(
        "hep.yaml",
        "apiVersion: projectcalico.org/v3\nkind: HostEndpoint\nmetadata: {name: h1}\nspec: {node: node-1, interfaceName: eth0, expectedIPs: [10.0.0.1]}\n",
    );
    let out = c.ok(&["apply", "-f", &good]);
    assert!(out.contains("Successfully applied 1 resource(s)"), "{out}");
    assert!(c.ok(&["get", "hep"]).contains("h1"));
}

const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-1}\nspec: {cidr: 10.1.0.0/16}\n";
const POLICY: &str = "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: web}\nspec: {selector: app == 'web', ingress: [{action: Allow, protocol: TCP, destination: {ports: [443]}}]}\n";

#[test]
fn create_replace_delete_follow_calicoctl() {
    let c = Cluster::start();
    let both = c.file("both.yaml", &format!("{POOL}---\n{POLICY}"));
    let out = c.ok(&["create", "-f", &both]);
    assert_eq!(
        out,
        "IPPool/pool-1 created\nNetworkPolicy/default/web created\nSuccessfully created 2 resource(s)\n"
    );
    // create of something that exists: nothing written, the object named.
    let rev = c.revision();
    let err = c.rejected(&["create", "-f", &both]);
    assert!(
        err.contains("both.yaml: document 1 (IPPool/pool-1): resource already exists"),
        "{err}"
    );
    assert_eq!(c.revision(), rev);

    // replace of a missing object fails and writes nothing, not even the existing one.
    let other = POOL.replace("pool-1", "pool-2").replace("10.1.", "10.2.");
    let mixed = c.file(
        "mixed.yaml",
        &format!("{}---\n{other}", POOL.replace("10.1.0.0/16", "10.9.0.0/16")),
    );
    let err = c.rejected(&["replace", "-f", &mixed]);
    assert!(
        err.contains("mixed.yaml: document 2 (IPPool/pool-2): resource does not exist"),
        "{err}"
    );
    assert_eq!(c.revision(), rev);
    assert!(
        c.ok(&["get", "ippool", "-o", "wide"])
            .contains("10.1.0.0/16")
    );

    // replace of an existing object updates it and keeps uid and creationTimestamp.
    let uid_of = |yaml: &str| {
        documents(yaml)[0]["metadata"]["uid"]
            .as_str()
            .expect("uid")
            .to_string()
    };
    let uid = uid_of(&c.ok(&["get", "ippool", "pool-1", "-o", "yaml"]));
    let changed = c.file("changed.yaml", &POOL.replace("10.1.0.0/16", "10.9.0.0/16"));
    let out = c.ok(&["replace", "-f", &changed]);
    assert!(out.contains("IPPool/pool-1 configured"), "{out}");
    let yaml = c.ok(&["get", "ippool", "pool-1", "-o", "yaml"]);
    assert!(yaml.contains("cidr: 10.9.0.0/16"), "{yaml}");
    assert_eq!(uid_of(&yaml), uid);

    // A stale resourceVersion is refused.
    let stale = yaml.replace("10.9.0.0/16", "10.8.0.0/16").replace(
        &format!("resourceVersion: '{}'", c.revision()),
        "resourceVersion: '1'",
    );
    let stale = c.file("stale.yaml", &stale);
    let err = c.rejected(&["apply", "-f", &stale]);
    assert!(err.contains("resourceVersion 1 is out of date"), "{err}");

    // delete KIND NAME, then delete -f of a file naming a now-missing object fails whole.
    let out = c.ok(&["delete", "networkpolicy", "web"]);
    assert!(out.contains("NetworkPolicy/default/web deleted"), "{out}");
    let rev = c.revision();
    let err = c.rejected(&["delete", "-f", &both]);
    assert!(
        err.contains("both.yaml: document 2 (NetworkPolicy/default/web): resource does not exist"),
        "{err}"
    );
    assert_eq!(c.revision(), rev);
    assert!(c.ok(&["get", "ippool"]).contains("pool-1"));
    let pool_only = c.file("pool.yaml", POOL);
    assert!(
        c.ok(&["delete", "-f", &pool_only])
            .contains("IPPool/pool-1 deleted")
    );
    assert_eq!(c.ok(&["get", "ippool"]), "NAME\n");

    let err = c.rejected(&["get", "ippool", "pool-1"]);
    assert_eq!(err, "error: IPPool/pool-1: resource does not exist\n");
    let err = c.rejected(&["get", "networkpolicy", "web", "-n", "prod"]);
    assert_eq!(
        err,
        "error: NetworkPolicy/prod/web: resource does not exist\n"
    );
    let err = c.rejected(&["delete", "gnp", "nope"]);
    assert_eq!(
        err,
        "error: GlobalNetworkPolicy/nope: resource does not exist\n"
    );
}

#[test]
fn reapplying_the_same_file_moves_no_revision() {
    let c = Cluster::start();
    let file = c.file("all.yaml", ALL_KINDS);
    c.ok(&["apply", "-f", &file]);
    let rev = c.revision();
    let version = |c: &Cluster| c.ok(&["get", "gnp", "allow-dns", "-o", "json"]);
    let before = version(&c);
    let out = c.ok(&["apply", "-f", &file]);
    assert_eq!(out.matches(" unchanged\n").count(), 15, "{out}");
    assert_eq!(c.revision(), rev);
    assert_eq!(version(&c), before);
    // A real change moves exactly that object, in one revision.
    let edited = c.file(
        "edited.yaml",
        &ALL_KINDS.replace("order: 100", "order: 200"),
    );
    let out = c.ok(&["apply", "-f", &edited]);
    assert_eq!(out.matches(" unchanged\n").count(), 14, "{out}");
    assert!(out.contains("Tier/security configured"), "{out}");
    assert_eq!(c.revision(), rev + 1);
}

fn numbered_policy(i: usize) -> String {
    format!(
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata:\n  name: p{i:04}\n  namespace: ns{}\nspec:\n  selector: app == 'a{i}'\n  ingress:\n  - action: Allow\n    protocol: TCP\n    source: {{nets: [10.{}.{}.0/24]}}\n    destination: {{ports: [{}]}}\n",
        i % 7,
        i / 256,
        i % 256,
        1000 + i
    )
}

#[test]
fn one_invalid_document_among_forty_writes_nothing() {
    let c = Cluster::start();
    let mut docs: Vec<String> = (0..40).map(numbered_policy).collect();
    docs.insert(
        25,
        "apiVersion: projectcalico.org/v3\nkind: NetworkPolicy\nmetadata: {name: bad, namespace: prod}\nspec:\n  ingress:\n  - action: Allow\n    protocol: tcp\n".to_string(),
    );
    let file = c.file("forty.yaml", &docs.join("---\n"));
    let rev = c.revision();
    let err = c.rejected(&["apply", "-f", &file]);
    let expected = format!(
        "error: {file}: document 26 (NetworkPolicy/prod/bad): spec.ingress[0].protocol: \"tcp\" is not a valid protocol ("
    );
    assert!(err.starts_with(&expected), "{err}");
    assert!(err.contains("TCP, UDP"), "{err}");
    assert_eq!(c.revision(), rev);
    assert_eq!(c.ok(&["get", "networkpolicy", "-A"]), "NAMESPACE   NAME\n");

    // A bad selector is caught by the policy crate too, with its field path.
    docs[25] = "apiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata: {name: bad}\nspec: {selector: 'app == '}\n".to_string();
    let file = c.file("forty.yaml", &docs.join("---\n"));
    let err = c.rejected(&["create", "-f", &file]);
    assert!(
        err.contains(": document 26 (GlobalNetworkPolicy/bad): spec.selector: "),
        "{err}"
    );
    assert_eq!(c.revision(), rev);
}

#[test]
fn a_thousand_policies_apply_in_one_transaction() {
    let c = Cluster::start();
    let text = (0..1000)
        .map(numbered_policy)
        .collect::<Vec<_>>()
        .join("---\n");
    let file = c.file("thousand.yaml", &text);
    let rev = c.revision();
    let out = c.ok(&["apply", "-f", &file]);
    assert!(
        out.ends_with("Successfully applied 1000 resource(s)\n"),
        "{out}"
    );
    assert_eq!(c.revision(), rev + 1, "not one transaction");
    let table = c.ok(&["get", "networkpolicy", "-A"]);
    assert_eq!(table.lines().count(), 1001);
    let ns3 = c.ok(&["get", "networkpolicy", "-n", "ns3"]);
    assert_eq!(
        ns3.lines().count(),
        1 + (0..1000).filter(|i| i % 7 == 3).count()
    );
    // Re-applying 1,000 unchanged objects writes nothing.
    c.ok(&["apply", "-f", &file]);
    assert_eq!(c.revision(), rev + 1);
}

#[test]
fn syntax_errors_unknown_kinds_and_unknown_fields_are_clear() {
    let c = Cluster::start();
    let file = c.file(
        "syntax.yaml",
        &format!("{POOL}---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n   bad: 1\n"),
    );
    let err = c.rejected(&["apply", "-f", &file]);
    assert!(
        err.contains(&format!("{file}: document 2: invalid YAML: ")),
        "{err}"
    );
    assert!(err.contains("at line 10 column 7"), "{err}");

    let file = c.file(
        "kind.yaml",
        "apiVersion: projectcalico.org/v3\nkind: IPPoool\nmetadata: {name: a}\n",
    );
    let err = c.rejected(&["create", "-f", &file]);
    assert!(
        err.contains("document 1: unknown resource type: apiVersion \"projectcalico.org/v3\", kind \"IPPoool\""),
        "{err}"
    );
    let err = c.rejected(&["get", "ippoool"]);
    assert!(
        err.starts_with("error: unknown resource kind \"ippoool\""),
        "{err}"
    );

    let file = c.file(
        "field.yaml",
        &POOL.replace("cidr: 10.1.0.0/16", "cidr: 10.1.0.0/16, colour: red"),
    );
    let err = c.rejected(&["apply", "-f", &file]);
    assert!(
        err.contains(
            "document 1 (IPPool/pool-1): spec.colour: unknown field \"colour\", expected one of"
        ),
        "{err}"
    );
    let empty = c.file("empty.yaml", "---\n# nothing\n");
    let err = c.rejected(&["apply", "-f", &empty]);
    assert!(err.contains("no resources found"), "{err}");
    let err = c.rejected(&["apply", "-f", "/nonexistent/vrctl.yaml"]);
    assert!(
        err.contains("/nonexistent/vrctl.yaml: cannot read"),
        "{err}"
    );
}

#[test]
fn json_lists_stdin_and_directories_are_accepted() {
    let c = Cluster::start();
    // A JSON array on stdin.
    let json = r#"[{"apiVersion":"projectcalico.org/v3","kind":"IPPool","metadata":{"name":"j1"},"spec":{"cidr":"10.3.0.0/16"}},
                  {"apiVersion":"v1","kind":"Namespace","metadata":{"name":"web","labels":{"team":"b"}}}]"#;
    let run = c.vrctl_with_stdin(&["apply", "-f", "-"], json);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // A v1 List in a directory with another file; files apply together.
    let dir = c.dir.path().join("manifests");
    std::fs::create_dir(&dir).expect("mkdir");
    std::fs::write(
        dir.join("a-list.yaml"),
        "apiVersion: v1\nkind: List\nitems:\n- apiVersion: projectcalico.org/v3\n  kind: GlobalNetworkSet\n  metadata: {name: g1}\n  spec: {nets: [192.0.2.0/24]}\n",
    )
    .expect("write");
    std::fs::write(dir.join("b-pool.yml"), POOL).expect("write");
    std::fs::write(dir.join("README.md"), "not a manifest").expect("write");
    let out = c.ok(&["apply", "-f", &dir.display().to_string()]);
    assert_eq!(
        out,
        "GlobalNetworkSet/g1 created\nIPPool/pool-1 created\nSuccessfully applied 2 resource(s)\n"
    );
    // JSON output is a <Kind>List that parses and applies back.
    let list = c.ok(&["get", "ippool", "-o", "json"]);
    let value: serde_json::Value = serde_json::from_str(&list).expect("json");
    assert_eq!(value["kind"], "IPPoolList");
    let names: Vec<&str> = value["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|i| i["metadata"]["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["j1", "pool-1"]);
    let run = c.vrctl_with_stdin(&["apply", "-f", "-"], &list);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        run.stdout.matches(" unchanged\n").count(),
        2,
        "{}",
        run.stdout
    );
}

#[test]
fn tables_show_namespaces_and_wide_columns() {
    let c = Cluster::start();
    let file = c.file("all.yaml", ALL_KINDS);
    c.ok(&["apply", "-f", &file]);
    let default_policy = c.file("p.yaml", POLICY);
    c.ok(&["apply", "-f", &default_policy]);
    assert_eq!(c.ok(&["get", "ippools"]), "NAME\npool-a\n");
    assert_eq!(
        c.ok(&["get", "ippools", "-o", "wide"]),
        "NAME     CIDR           NAT    IPIPMODE   VXLANMODE   DISABLED   SELECTOR\n\
         pool-a   10.20.0.0/16   true                                     all()\n"
    );
    // Namespaced kinds default to `default`, -n picks one, -A lists all.
    assert_eq!(c.ok(&["get", "np"]), "NAMESPACE   NAME\ndefault     web\n");
    assert_eq!(
        c.ok(&["get", "np", "-n", "prod"]),
        "NAMESPACE   NAME\nprod        allow-web\n"
    );
    assert_eq!(
        c.ok(&["get", "np", "-A", "-o", "wide"]),
        "NAMESPACE   NAME        TIER       ORDER   SELECTOR\n\
         default     web                            app == 'web'\n\
         prod        allow-web   security   10      app == \"web\"\n"
    );
    assert_eq!(
        c.ok(&["get", "bgppeer", "-o", "wide"]),
        "NAME    PEERIP          NODE     ASN\ntor-1   192.168.0.254   node-1   64600\n"
    );
    let err = c.rejected(&["get", "np", "web", "-A"]);
    assert!(err.contains("-A lists every namespace"), "{err}");
}
