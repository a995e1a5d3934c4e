//! `vrctl` as a program: where it finds etcd (flags > `VROUTER_ETCD_ENDPOINTS` > config file),
//! what it does when etcd is unreachable (one line, exit 2), and `version`, `completion`,
//! `--help`. Runs the real binary; etcd is a real one on loopback.

use std::net::TcpListener;
use std::process::{Command, Output};

use test_support::etcd::Etcd;

const POOL: &str = "apiVersion: projectcalico.org/v3\nkind: IPPool\nmetadata: {name: pool-1}\nspec: {cidr: 10.1.0.0/16}\n";

fn vrctl() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_vrctl"));
    cmd.env_remove("VROUTER_ETCD_ENDPOINTS")
        .env_remove("VROUTER_ETCD_CACERT")
        .env_remove("VROUTER_ETCD_CERT")
        .env_remove("VROUTER_ETCD_KEY")
        .env_remove("VRCTL_CONFIG");
    cmd
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("run vrctl")
}

/// A loopback URL nobody listens on.
fn dead_endpoint() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    format!("http://127.0.0.1:{port}")
}

#[test]
fn unreachable_etcd_is_one_line_and_exit_2() {
    let dir = tempfile::tempdir().expect("tmp");
    let pool = dir.path().join("pool.yaml");
    std::fs::write(&pool, POOL).expect("write");
    let config = dir.path().join("empty.yaml");
    std::fs::write(&config, "").expect("write");
    let dead = dead_endpoint();
    let cases: [&[&str]; 3] = [
        &["get", "ippool"],
        &["apply", "-f", pool.to_str().expect("path")],
        &["delete", "ippool", "pool-1"],
    ];
    for args in cases {
        let out = run(vrctl()
            .args(["--etcd-endpoints", &dead, "--config"])
            .arg(&config)
            .args(args));
        let stderr = text(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(
            stderr,
            format!("error: etcd is unreachable at {dead}: connection refused\n"),
            "{args:?}"
        );
        assert!(out.stdout.is_empty());
    }
    // Invalid input is reported as such (exit 1) before any connection is tried.
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, POOL.replace("10.1.0.0/16", "10.1.0.0/99")).expect("write");
    let out = run(vrctl()
        .args(["--etcd-endpoints", &dead, "--config"])
        .arg(&config)
        .arg("apply")
        .arg("-f")
        .arg(&bad));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    // A malformed endpoint is invalid input, not an outage.
    let out = run(vrctl().args(["--etcd-endpoints", "127.0.0.1:2379", "get", "ippool"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("must start with http:// or https://"));
}

#[test]
fn flags_beat_environment_beat_config_file() {
    let etcd = Etcd::start().expect("etcd");
    let live = etcd.endpoint();
    let dead = dead_endpoint();
    let dir = tempfile::tempdir().expect("tmp");
    let pool = dir.path().join("pool.yaml");
    std::fs::write(&pool, POOL).expect("write");
    let live_config = dir.path().join("live.yaml");
    std::fs::write(&live_config, format!("etcdEndpoints: {live}\n")).expect("write");
    let dead_config = dir.path().join("dead.yaml");
    std::fs::write(&dead_config, format!("etcdEndpoints: [{dead}]\n")).expect("write");

    // The config file alone.
    let out = run(vrctl()
        .arg("--config")
        .arg(&live_config)
        .arg("apply")
        .arg("-f")
        .arg(&pool));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // The environment beats the file.
    let out = run(vrctl()
        .env("VROUTER_ETCD_ENDPOINTS", &live)
        .arg("--config")
        .arg(&dead_config)
        .args(["get", "ippool"]));
    assert_eq!(text(&out.stdout), "NAME\npool-1\n", "{}", text(&out.stderr));
    // VRCTL_CONFIG names the file too.
    let out = run(vrctl()
        .env("VRCTL_CONFIG", &live_config)
        .args(["get", "ippool", "pool-1", "-o", "yaml"]));
    assert!(
        text(&out.stdout).contains("cidr: 10.1.0.0/16"),
        "{}",
        text(&out.stderr)
    );
    // The flag beats the environment.
    let out = run(vrctl()
        .env("VROUTER_ETCD_ENDPOINTS", &dead)
        .args(["--etcd-endpoints", &live, "--config"])
        .arg(&dead_config)
        .args(["get", "ippool"]));
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    // And the other way round, to show the dead settings really were read.
    let out = run(vrctl()
        .env("VROUTER_ETCD_ENDPOINTS", &dead)
        .arg("--config")
        .arg(&live_config)
        .args(["get", "ippool"]));
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    // A named config file that does not exist, or has unknown keys, is an error.
    let out = run(vrctl().args(["--config", "/nonexistent/vrctl.yaml", "get", "ippool"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("/nonexistent/vrctl.yaml"));
    let typo = dir.path().join("typo.yaml");
    std::fs::write(&typo, format!("etcdEndpoint: {live}\n")).expect("write");
    let out = run(vrctl().arg("--config").arg(&typo).args(["get", "ippool"]));
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("etcdEndpoint"),
        "{}",
        text(&out.stderr)
    );
    // A TLS file that cannot be read is named.
    let out = run(vrctl()
        .args([
            "--etcd-endpoints",
            &live,
            "--etcd-cacert",
            "/nonexistent/ca.pem",
            "--config",
        ])
        .arg(&live_config)
        .args(["get", "ippool"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("/nonexistent/ca.pem"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn version_help_and_completion() {
    let out = run(vrctl().arg("version"));
    assert_eq!(
        text(&out.stdout),
        format!("vrctl {}\n", env!("CARGO_PKG_VERSION"))
    );
    let out = run(vrctl().arg("--help"));
    let help = text(&out.stdout);
    for needle in [
        "apply",
        "get",
        "completion",
        "Examples:",
        "vrctl get ippools -o wide",
        "VROUTER_ETCD_ENDPOINTS",
    ] {
        assert!(help.contains(needle), "{needle} missing from:\n{help}");
    }
    for (shell, marker) in [
        ("bash", "complete -F _vrctl"),
        ("zsh", "#compdef vrctl"),
        ("fish", "complete -c vrctl"),
    ] {
        let out = run(vrctl().args(["completion", shell]));
        assert_eq!(out.status.code(), Some(0));
        let script = text(&out.stdout);
        assert!(script.contains(marker), "{shell}: {script}");
        assert!(script.contains("apply"), "{shell}");
    }
    let out = run(vrctl().args(["completion", "tcsh"]));
    assert_eq!(out.status.code(), Some(1), "usage errors are invalid input");
    assert!(text(&out.stderr).contains("tcsh"));
    let out = run(vrctl().args(["delete", "ippool"]));
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let out = run(vrctl().arg("--version"));
    assert_eq!(out.status.code(), Some(0));
    // The policy subcommand still works next to the resource verbs.
    let out = run(vrctl().args(["policy", "selector", "app == 'web'", "--labels", "app=web"]));
    assert_eq!(out.status.code(), Some(0));
    assert!(text(&out.stdout).starts_with("match\n"));
}
