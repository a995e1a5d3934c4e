//! Kubernetes NetworkPolicy scenarios from the Kubernetes documentation
//! (concepts/services-networking/network-policies), run through the real `vrctl policy test -f`
//! binary: exit 0 = allow, 3 = deny.

use std::io::Write;
use std::process::Command;

const CLUSTER: &str = r#"
apiVersion: v1
kind: Namespace
metadata:
  name: prod
  labels: {team: a}
---
apiVersion: v1
kind: Namespace
metadata:
  name: other
  labels: {team: b}
---
apiVersion: projectcalico.org/v3
kind: List
items:
- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata: {name: db, namespace: prod, labels: {role: db}}
  spec:
    ipNetworks: [10.0.0.1/32]
    ports:
    - {name: pg, protocol: TCP, port: 5432}
    - {name: metrics, protocol: SCTP, port: 9100}
- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata: {name: frontend, namespace: prod, labels: {role: frontend}}
  spec: {ipNetworks: [10.0.0.2/32]}
- apiVersion: projectcalico.org/v3
  kind: WorkloadEndpoint
  metadata: {name: client, namespace: other, labels: {role: frontend}}
  spec: {ipNetworks: [10.0.1.1/32]}
"#;

struct Scenario {
    name: &'static str,
    policies: &'static str,
    /// (from, to, protocol, port, expected exit code)
    flows: &'static [(&'static str, &'static str, &'static str, u16, i32)],
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "no policy: everything allowed",
        policies: "",
        flows: &[
            ("prod/frontend", "prod/db", "TCP", 5432, 0),
            ("192.0.2.1", "prod/db", "UDP", 53, 0),
        ],
    },
    Scenario {
        name: "default deny ingress",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-ingress, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Ingress]
"#,
        flows: &[
            ("prod/frontend", "prod/db", "TCP", 5432, 3),
            ("other/client", "prod/frontend", "TCP", 80, 3),
            // Egress from prod is not isolated.
            ("prod/db", "other/client", "TCP", 80, 0),
        ],
    },
    Scenario {
        name: "default deny egress",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-egress, namespace: prod}
spec:
  podSelector: {}
  policyTypes: [Egress]
"#,
        flows: &[
            ("prod/db", "other/client", "TCP", 80, 3),
            ("other/client", "prod/db", "TCP", 5432, 0),
        ],
    },
    Scenario {
        name: "allow from pods in the same namespace",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-frontend, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - podSelector: {matchLabels: {role: frontend}}
"#,
        flows: &[
            ("prod/frontend", "prod/db", "TCP", 5432, 0),
            // Same labels, other namespace: a bare podSelector means this namespace only.
            ("other/client", "prod/db", "TCP", 5432, 3),
            ("192.0.2.1", "prod/db", "TCP", 5432, 3),
        ],
    },
    Scenario {
        name: "allow from a namespace",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-team-b, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector: {matchLabels: {team: b}}
"#,
        flows: &[
            ("other/client", "prod/db", "TCP", 5432, 0),
            ("prod/frontend", "prod/db", "TCP", 5432, 3),
        ],
    },
    Scenario {
        name: "namespaceSelector and podSelector in one peer (AND)",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-b-frontends, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - namespaceSelector:
        matchExpressions: [{key: kubernetes.io/metadata.name, operator: In, values: [other]}]
      podSelector: {matchLabels: {role: frontend}}
"#,
        flows: &[
            ("other/client", "prod/db", "TCP", 5432, 0),
            ("prod/frontend", "prod/db", "TCP", 5432, 3),
        ],
    },
    Scenario {
        name: "ipBlock with except",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-from-block, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from:
    - ipBlock: {cidr: 172.17.0.0/16, except: [172.17.1.0/24]}
"#,
        flows: &[
            ("172.17.0.5", "prod/db", "TCP", 5432, 0),
            ("172.17.1.5", "prod/db", "TCP", 5432, 3),
            ("172.18.0.5", "prod/db", "TCP", 5432, 3),
        ],
    },
    Scenario {
        name: "named port",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-pg-only, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - ports: [{port: pg}]
"#,
        flows: &[
            ("other/client", "prod/db", "TCP", 5432, 0),
            ("other/client", "prod/db", "TCP", 5433, 3),
        ],
    },
    Scenario {
        name: "endPort range",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-range, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - ports: [{protocol: TCP, port: 32000, endPort: 32768}]
"#,
        flows: &[
            ("other/client", "prod/db", "TCP", 32000, 0),
            ("other/client", "prod/db", "TCP", 32768, 0),
            ("other/client", "prod/db", "TCP", 32769, 3),
            ("other/client", "prod/db", "UDP", 32000, 3),
        ],
    },
    Scenario {
        name: "SCTP-only policy leaves TCP isolated",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db-sctp, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - ports: [{protocol: SCTP, port: metrics}]
"#,
        flows: &[
            ("prod/frontend", "prod/db", "SCTP", 9100, 0),
            ("prod/frontend", "prod/db", "TCP", 9100, 3),
        ],
    },
    Scenario {
        name: "policies combine by union",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-frontend, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from: [{podSelector: {matchLabels: {role: frontend}}}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: allow-team-b, namespace: prod}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress:
  - from: [{namespaceSelector: {matchLabels: {team: b}}}]
"#,
        flows: &[
            ("prod/frontend", "prod/db", "TCP", 5432, 0),
            ("other/client", "prod/db", "TCP", 5432, 0),
            ("192.0.2.1", "prod/db", "TCP", 5432, 3),
        ],
    },
    Scenario {
        name: "egress rules with empty to allow all destinations on a port",
        policies: r#"
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: frontend-dns-only, namespace: prod}
spec:
  podSelector: {matchLabels: {role: frontend}}
  egress:
  - ports: [{protocol: UDP, port: 53}]
"#,
        flows: &[
            ("prod/frontend", "192.0.2.53", "UDP", 53, 0),
            ("prod/frontend", "prod/db", "TCP", 5432, 3),
        ],
    },
];

fn write(dir: &tempfile::TempDir, name: &str, text: &str) -> std::path::PathBuf {
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).expect("create");
    f.write_all(text.as_bytes()).expect("write");
    path
}

fn vrctl(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_vrctl"))
        .args(args)
        .output()
        .expect("runs vrctl");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn kubernetes_network_policy_scenarios() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = write(&dir, "cluster.yaml", CLUSTER);
    for (i, s) in SCENARIOS.iter().enumerate() {
        let mut files = vec![cluster.to_string_lossy().into_owned()];
        if !s.policies.is_empty() {
            files.push(
                write(&dir, &format!("policy{i}.yaml"), s.policies)
                    .to_string_lossy()
                    .into_owned(),
            );
        }
        for (from, to, proto, port, expected) in s.flows {
            let port = port.to_string();
            let mut args = vec![
                "policy",
                "test",
                "--from",
                from,
                "--to",
                to,
                "--protocol",
                proto,
                "--port",
                &port,
            ];
            for f in &files {
                args.extend(["-f", f.as_str()]);
            }
            let (code, stdout, stderr) = vrctl(&args);
            assert_eq!(
                code, *expected,
                "{}: {from} -> {to} {proto}/{port}\nstdout:\n{stdout}\nstderr:\n{stderr}",
                s.name
            );
            let word = if *expected == 0 { "allow" } else { "deny" };
            assert!(stdout.starts_with(word), "{}: {stdout}", s.name);
        }
    }
}

#[test]
fn explanation_names_the_deciding_policy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cluster = write(&dir, "cluster.yaml", CLUSTER);
    let pol = write(&dir, "p.yaml", SCENARIOS[3].policies);
    let (code, stdout, _) = vrctl(&[
        "policy",
        "test",
        "--from",
        "prod/frontend",
        "--to",
        "prod/db",
        "--protocol",
        "TCP",
        "--port",
        "5432",
        "-f",
        cluster.to_str().expect("utf8"),
        "-f",
        pol.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("Kubernetes NetworkPolicy prod/db-from-frontend, rule 0 (Allow)"),
        "{stdout}"
    );
    let (code, stdout, _) = vrctl(&[
        "policy",
        "test",
        "--from",
        "other/client",
        "--to",
        "prod/db",
        "--protocol",
        "TCP",
        "--port",
        "5432",
        "-f",
        cluster.to_str().expect("utf8"),
        "-f",
        pol.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 3);
    assert!(
        stdout.contains("end of tier default: default deny"),
        "{stdout}"
    );
}

#[test]
fn errors_exit_1_with_a_field_path() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bad = write(
        &dir,
        "bad.yaml",
        r#"
apiVersion: projectcalico.org/v3
kind: NetworkPolicy
metadata: {name: bad, namespace: prod}
spec:
  ingress:
  - action: Allow
    protocol: TCP
    destination: {ports: [80, "80:70"]}
"#,
    );
    let (code, _, stderr) = vrctl(&[
        "policy",
        "test",
        "--from",
        "10.0.0.9",
        "--to",
        "10.0.0.1",
        "--port",
        "1",
        "-f",
        bad.to_str().expect("utf8"),
    ]);
    assert_eq!(code, 1);
    assert!(
        stderr
            .contains(r#"spec.ingress[0].destination.ports[1]: "80:70" is not a valid port range"#),
        "{stderr}"
    );

    let (code, stdout, _) = vrctl(&["policy", "selector", "app == 'web'", "--labels", "app=web"]);
    assert_eq!(
        (code, stdout.as_str()),
        (0, "match\ncanonical: app == \"web\"\n")
    );
    let (code, stdout, _) = vrctl(&["policy", "selector", "app == 'web'", "--labels", "app=db"]);
    assert_eq!((code, stdout.lines().next()), (0, Some("no match")));
    let (code, _, stderr) = vrctl(&["policy", "selector", "app ==", "--labels", ""]);
    assert_eq!(code, 1);
    assert!(stderr.contains("column"), "{stderr}");
}
