//! `vrctl policy test` without `-f` reads its model from the datastore: the same cluster
//! applied with `vrctl apply` gives the verdicts the file-based mode gives.

use std::io::Write;
use std::process::{Command, Output};

use test_support::etcd::Etcd;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: prod, labels: {team: a}}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: db, namespace: prod, labels: {role: db}}
spec:
  ipNetworks: [10.0.0.1/32]
  ports:
  - {name: pg, protocol: TCP, port: 5432}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: frontend, namespace: prod, labels: {role: frontend}}
spec: {ipNetworks: [10.0.0.2/32]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: batch, namespace: prod, labels: {role: batch}}
spec: {ipNetworks: [10.0.0.3/32]}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-frontend, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  policyTypes: [Ingress]
  ingress:
  - from:
    - podSelector: {matchLabels: {role: frontend}}
    ports:
    - {protocol: TCP, port: pg}
"#;

fn vrctl(endpoint: &str, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .arg("--etcd-endpoints")
        .arg(endpoint)
        .args(args)
        .output()
        .expect("run vrctl")
}

#[test]
fn flows_are_decided_from_the_datastore() {
    let etcd = Etcd::start().expect("etcd");
    let endpoint = etcd.endpoint();
    let mut file = tempfile::NamedTempFile::new().expect("temp file");
    file.write_all(CLUSTER.as_bytes()).expect("write");
    let path = file.path().to_str().expect("utf8 path").to_string();
    let applied = vrctl(&endpoint, &["apply", "-f", &path]);
    assert!(applied.status.success(), "apply: {applied:?}");

    for (from, to, port, expected) in [
        ("prod/frontend", "prod/db", "5432", 0),
        ("prod/batch", "prod/db", "5432", 3),
        ("prod/frontend", "prod/db", "5433", 3),
        ("prod/db", "prod/batch", "80", 0),
    ] {
        let args = [
            "policy",
            "test",
            "--from",
            from,
            "--to",
            to,
            "--protocol",
            "TCP",
            "--port",
            port,
        ];
        let from_datastore = vrctl(&endpoint, &args);
        let stdout = String::from_utf8_lossy(&from_datastore.stdout);
        assert_eq!(
            from_datastore.status.code(),
            Some(expected),
            "{from} -> {to}:{port}: {stdout}{}",
            String::from_utf8_lossy(&from_datastore.stderr)
        );
        let mut with_file = args.to_vec();
        with_file.extend(["-f", &path]);
        let from_file = vrctl(&endpoint, &with_file);
        assert_eq!(
            String::from_utf8_lossy(&from_file.stdout),
            stdout,
            "the same explanation either way"
        );
    }
}
