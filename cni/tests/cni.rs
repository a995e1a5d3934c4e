//! `vrouter-cni` and `vrouter-ipam` invoked exactly as a container runtime does (CNI_*
//! environment, configuration on stdin, plugins found through CNI_PATH), with a real etcd and
//! pod namespaces made by `test_support::Netns`. Needs root. `vrouter-cni` runs
//! `vrouter-ipam` in its own process; other IPAM types go through CNI_PATH (tested with the
//! `vrouter-ipam` binary under another name).
//!
//! Each test uses its own pool CIDR (host routes to pod addresses live in the shared host
//! namespace) and its own node name.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::process::{Command, Stdio};

use datastore::etcd::{EtcdConfig, Store};
use datastore::ipam::{self, AssignArgs, Ipam, host_veth_name};
use datastore::keys::resource_key;
use datastore::resource::{IpPool, Kind, Resource};
use serde_json::{Value, json};
use test_support::Netns;
use test_support::etcd::Etcd;

struct Cluster {
    etcd: Etcd,
    store: Store,
    bin: tempfile::TempDir,
}

impl Cluster {
    async fn start(pool_cidr: &str, block_size: Option<u8>) -> Cluster {
        let etcd = Etcd::start().expect("etcd");
        let store = Store::connect(&EtcdConfig::new([etcd.endpoint()]))
            .await
            .expect("connect");
        let mut pool = IpPool::new("pool", pool_cidr);
        pool.spec.block_size = block_size;
        store
            .create(
                &resource_key(Kind::IpPool.plural(), None, "pool"),
                Resource::IpPool(pool).to_json().into_bytes(),
            )
            .await
            .expect("pool");
        // CNI_PATH holds the plugins, as on a node's /opt/cni/bin.
        let bin = tempfile::tempdir().expect("tempdir");
        for (name, path) in [
            ("vrouter-cni", env!("CARGO_BIN_EXE_vrouter-cni")),
            ("vrouter-ipam", env!("CARGO_BIN_EXE_vrouter-ipam")),
        ] {
            std::os::unix::fs::symlink(path, bin.path().join(name)).expect("symlink");
        }
        Cluster { etcd, store, bin }
    }

    fn conf(&self, node: &str) -> Value {
        json!({
            "cniVersion": "1.1.0",
            "name": "k8s-pod-network",
            "type": "vrouter-cni",
            "etcd_endpoints": self.etcd.endpoint(),
            "nodename": node,
            "ipam": { "type": "vrouter-ipam" },
            "args": { "cni": { "labels": [ { "key": "app", "value": "web" } ] } }
        })
    }

    async fn add_node(&self, name: &str) {
        let node = datastore::resource::Node {
            metadata: datastore::resource::ObjectMeta::named(name),
            spec: datastore::resource::node::NodeSpec::default(),
            status: None,
        };
        self.store
            .create(
                &resource_key(Kind::Node.plural(), None, name),
                Resource::Node(node).to_json().into_bytes(),
            )
            .await
            .expect("node");
    }

    fn cni_path(&self) -> String {
        self.bin.path().display().to_string()
    }

    fn ipam(&self) -> Ipam {
        Ipam::new(self.store.clone())
    }
}

/// One plugin run: exit success, parsed stdout (Null when empty).
struct Outcome {
    ok: bool,
    stdout: Value,
}

impl Outcome {
    fn code(&self) -> u64 {
        assert!(!self.ok, "expected a failure, got {}", self.stdout);
        self.stdout["code"].as_u64().expect("error code")
    }

    fn expect_ok(&self, what: &str) -> &Value {
        assert!(self.ok, "{what} failed: {}", self.stdout);
        &self.stdout
    }
}

fn invoke(plugin: &str, env: &[(&str, &str)], stdin: &[u8]) -> Outcome {
    let mut cmd = Command::new(plugin);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("spawn plugin");
    // A plugin that rejects its environment exits before reading stdin: a broken pipe
    // here is expected then, and its exit status tells the story.
    let _ignored = child.stdin.take().expect("stdin").write_all(stdin);
    let output = child.wait_with_output().expect("wait");
    let text = String::from_utf8_lossy(&output.stdout);
    let stdout = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {text}"))
    };
    Outcome {
        ok: output.status.success(),
        stdout,
    }
}

const CNI: &str = env!("CARGO_BIN_EXE_vrouter-cni");
const IPAM: &str = env!("CARGO_BIN_EXE_vrouter-ipam");

fn netns_path(ns: &Netns) -> String {
    format!("/var/run/netns/{}", ns.name())
}

fn cni_args(pod: &str) -> String {
    format!("IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME={pod}")
}

fn host_link_exists(name: &str) -> bool {
    Command::new("ip")
        .args(["link", "show", "dev", name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("ip")
        .success()
}

fn endpoint_name(node: &str, pod: &str) -> String {
    ipam::workload_endpoint_name(node, "k8s", pod, "eth0")
}

fn host_ifname(node: &str, pod: &str) -> String {
    host_veth_name(&ipam::endpoint_id("default", &endpoint_name(node, pod)))
}

async fn endpoint_json(store: &Store, node: &str, pod: &str) -> Option<Value> {
    let key = resource_key(
        Kind::WorkloadEndpoint.plural(),
        Some("default"),
        &endpoint_name(node, pod),
    );
    store
        .get(&key)
        .await
        .expect("get")
        .map(|kv| serde_json::from_slice(&kv.value).expect("json"))
}

#[tokio::test]
async fn add_check_del_round_trip() {
    let cluster = Cluster::start("10.81.0.0/24", None).await;
    let node = "cni-node-a";
    cluster.add_node(node).await;
    let pod_ns = Netns::new("pod").expect("netns");
    let netns = netns_path(&pod_ns);
    let path = cluster.cni_path();
    let args = cni_args("web-0");
    let conf = cluster.conf(node).to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c-web-0"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args.as_str()),
        ("CNI_PATH", path.as_str()),
    ];
    let add = invoke(CNI, &env, conf.as_bytes());
    let result = add.expect_ok("ADD").clone();
    assert_eq!(result["cniVersion"], "1.1.0");
    let address = result["ips"][0]["address"].as_str().expect("address");
    let ip = address.strip_suffix("/32").expect("a /32");
    assert!(ip.starts_with("10.81.0."), "{ip}");
    assert_eq!(result["ips"][0]["interface"], 1);
    assert_eq!(result["interfaces"][1]["name"], "eth0");
    assert_eq!(result["interfaces"][1]["sandbox"], netns.as_str());
    assert_eq!(
        result["routes"][0],
        json!({"dst": "0.0.0.0/0", "gw": "169.254.1.1"})
    );
    let host_if = host_ifname(node, "web-0");
    assert_eq!(result["interfaces"][0]["name"], host_if.as_str());
    assert_eq!(result["interfaces"][0]["mac"], "ee:ee:ee:ee:ee:ee");

    // The pod: interface, address, routes.
    let addrs = pod_ns
        .ip(&["-o", "addr", "show", "dev", "eth0"])
        .expect("addr");
    assert!(addrs.contains(&format!("inet {ip}/32")), "{addrs}");
    let routes = pod_ns.routes().expect("routes");
    let lines: Vec<&str> = routes.lines().collect();
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("default via 169.254.1.1 dev eth0")),
        "{routes}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l.starts_with("169.254.1.1 dev eth0") && l.contains("scope link")),
        "{routes}"
    );
    // The host: the veth with its route to the pod.
    assert!(host_link_exists(&host_if));
    let host_routes =
        test_support::run_ok(Command::new("ip").args(["route", "show", "dev", &host_if]))
            .expect("host routes");
    assert!(host_routes.contains(ip), "{host_routes}");
    assert!(
        host_routes.contains("proto 80"),
        "the host route carries the agent's protocol so the agent adopts it: {host_routes}"
    );
    // The pod answers through the link-local gateway (traffic only into our namespace).
    test_support::run_ok(Command::new("ping").args(["-c", "1", "-W", "2", ip])).expect("ping pod");
    // The WorkloadEndpoint.
    let wep = endpoint_json(&cluster.store, node, "web-0")
        .await
        .expect("endpoint written");
    assert_eq!(wep["kind"], "WorkloadEndpoint");
    assert_eq!(wep["spec"]["ipNetworks"], json!([address]));
    assert_eq!(wep["spec"]["interfaceName"], host_if.as_str());
    assert_eq!(wep["spec"]["node"], node);
    assert_eq!(wep["spec"]["pod"], "web-0");
    assert_eq!(wep["spec"]["containerID"], "c-web-0");
    assert_eq!(wep["metadata"]["labels"]["app"], "web");
    assert_eq!(
        wep["metadata"]["labels"]["projectcalico.org/namespace"],
        "default"
    );
    let pod_mac = result["interfaces"][1]["mac"].as_str().expect("mac");
    assert_eq!(wep["spec"]["mac"], pod_mac);
    let report = ipam::check(&cluster.store).await.expect("check");
    assert!(report.is_clean(), "{report}");

    // CHECK with the previous result.
    let mut with_prev = cluster.conf(node);
    with_prev["prevResult"] = result.clone();
    let check_env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| {
            if *k == "CNI_COMMAND" {
                (*k, "CHECK")
            } else {
                (*k, *v)
            }
        })
        .collect();
    invoke(CNI, &check_env, with_prev.to_string().as_bytes()).expect_ok("CHECK");
    // CHECK notices a missing route.
    pod_ns
        .ip(&["route", "del", "default"])
        .expect("break the pod");
    let broken = invoke(CNI, &check_env, with_prev.to_string().as_bytes());
    assert_eq!(broken.code(), 100);
    assert!(
        broken.stdout["msg"]
            .as_str()
            .expect("msg")
            .contains("default route")
    );

    // DEL cleans everything; a second DEL and a DEL without netns succeed too.
    let del_env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| {
            if *k == "CNI_COMMAND" {
                (*k, "DEL")
            } else {
                (*k, *v)
            }
        })
        .collect();
    invoke(CNI, &del_env, with_prev.to_string().as_bytes()).expect_ok("DEL");
    assert!(!host_link_exists(&host_if), "host veth removed");
    assert!(
        pod_ns.ip(&["link", "show", "dev", "eth0"]).is_err(),
        "pod eth0 removed"
    );
    assert!(endpoint_json(&cluster.store, node, "web-0").await.is_none());
    assert!(
        cluster
            .ipam()
            .ips_by_handle("k8s-pod-network.c-web-0")
            .await
            .expect("h")
            .is_empty()
    );
    invoke(CNI, &del_env, conf.as_bytes()).expect_ok("second DEL");
    let no_netns: Vec<(&str, &str)> = del_env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "CNI_NETNS")
        .collect();
    invoke(CNI, &no_netns, conf.as_bytes()).expect_ok("DEL without netns");
    let report = ipam::check(&cluster.store).await.expect("check");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.allocated, 0);
}

#[tokio::test]
async fn version_and_status() {
    let cluster = Cluster::start("10.82.0.0/24", None).await;
    let version = invoke(
        CNI,
        &[("CNI_COMMAND", "VERSION")],
        br#"{"cniVersion":"1.1.0"}"#,
    );
    assert_eq!(
        version.expect_ok("VERSION")["supportedVersions"],
        json!(["1.0.0", "1.1.0"])
    );
    let path = cluster.cni_path();
    let status_env = [("CNI_COMMAND", "STATUS"), ("CNI_PATH", path.as_str())];
    let conf = cluster.conf("n").to_string();
    let ok = invoke(CNI, &status_env, conf.as_bytes());
    ok.expect_ok("STATUS");
    assert_eq!(ok.stdout, Value::Null);
    invoke(IPAM, &status_env, conf.as_bytes()).expect_ok("IPAM STATUS");

    // etcd gone: code 50.
    let mut dead = cluster.conf("n");
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    dead["etcd_endpoints"] = json!(format!("http://127.0.0.1:{port}"));
    let down = invoke(CNI, &status_env, dead.to_string().as_bytes());
    assert_eq!(down.code(), 50);
    assert_eq!(
        invoke(IPAM, &status_env, dead.to_string().as_bytes()).code(),
        50
    );
}

#[tokio::test]
async fn every_error_code() {
    let cluster = Cluster::start("10.83.0.0/30", Some(30)).await;
    let node = "cni-node-err";
    let pod_ns = Netns::new("poderr").expect("netns");
    let netns = netns_path(&pod_ns);
    let path = cluster.cni_path();
    let args = cni_args("err-0");
    let conf = cluster.conf(node).to_string();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c-err-0"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args.as_str()),
        ("CNI_PATH", path.as_str()),
    ];

    // 4: a missing variable, named.
    let without_ifname: Vec<_> = env
        .iter()
        .copied()
        .filter(|(k, _)| *k != "CNI_IFNAME")
        .collect();
    let missing = invoke(CNI, &without_ifname, conf.as_bytes());
    assert_eq!(missing.code(), 4);
    assert!(
        missing.stdout["msg"]
            .as_str()
            .expect("msg")
            .contains("CNI_IFNAME")
    );
    // 6: stdin is not a configuration.
    assert_eq!(invoke(CNI, &env, b"this is not json").code(), 6);
    assert_eq!(invoke(IPAM, &env, b"{\"cniVersion\": 5}").code(), 6);
    // 1: unsupported version.
    let mut old = cluster.conf(node);
    old["cniVersion"] = json!("0.4.0");
    assert_eq!(invoke(CNI, &env, old.to_string().as_bytes()).code(), 1);
    // 3: the sandbox does not exist.
    let gone: Vec<_> = env
        .iter()
        .map(|(k, v)| {
            if *k == "CNI_NETNS" {
                (*k, "/var/run/netns/vt-no-such")
            } else {
                (*k, *v)
            }
        })
        .collect();
    assert_eq!(invoke(CNI, &gone, conf.as_bytes()).code(), 3);
    // 7: no IPAM plugin of that name on CNI_PATH.
    let mut bad_ipam = cluster.conf(node);
    bad_ipam["ipam"]["type"] = json!("no-such-ipam");
    assert_eq!(invoke(CNI, &env, bad_ipam.to_string().as_bytes()).code(), 7);

    // 11: etcd does not answer (the IPAM's first read finds out); nothing is created.
    let mut dead = cluster.conf(node);
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.local_addr().expect("addr").port()
    };
    dead["etcd_endpoints"] = json!(format!("http://127.0.0.1:{port}"));
    let unreachable = invoke(CNI, &env, dead.to_string().as_bytes());
    assert_eq!(unreachable.code(), 11, "{}", unreachable.stdout);
    assert!(!host_link_exists(&host_ifname(node, "err-0")));

    // 11: the pool (4 addresses) is exhausted; nothing leaks.
    let filler = AssignArgs {
        node: "other".into(),
        handle: "filler".into(),
        num_v4: 4,
        ..AssignArgs::default()
    };
    cluster
        .ipam()
        .auto_assign(&filler)
        .await
        .expect("fill the pool");
    let exhausted = invoke(CNI, &env, conf.as_bytes());
    assert_eq!(exhausted.code(), 11, "{}", exhausted.stdout);
    let msg = exhausted.stdout["msg"].as_str().expect("msg");
    assert!(msg.contains("exhausted"), "{msg}");
    assert!(!host_link_exists(&host_ifname(node, "err-0")));
    assert!(pod_ns.ip(&["link", "show", "dev", "eth0"]).is_err());
    assert!(endpoint_json(&cluster.store, node, "err-0").await.is_none());
    let report = ipam::check(&cluster.store).await.expect("check");
    assert_eq!(report.allocated, 4, "{report}");
    assert_eq!(report.handles, 1, "only the filler: {report}");
    assert!(report.inconsistencies().is_empty(), "{report}");
}

#[tokio::test]
async fn failed_add_undoes_everything() {
    let cluster = Cluster::start("10.84.0.0/24", None).await;
    let node = "cni-node-undo";
    let pod_ns = Netns::new("podundo").expect("netns");
    // Something else already owns eth0 in the sandbox: ADD fails after IPAM allocated.
    pod_ns
        .ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", "other0",
        ])
        .expect("foreign eth0");
    let netns = netns_path(&pod_ns);
    let path = cluster.cni_path();
    let args = cni_args("undo-0");
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c-undo-0"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args.as_str()),
        ("CNI_PATH", path.as_str()),
    ];
    let failed = invoke(CNI, &env, cluster.conf(node).to_string().as_bytes());
    assert_eq!(failed.code(), 101);
    assert!(
        failed.stdout["msg"]
            .as_str()
            .expect("msg")
            .contains("already exists")
    );
    assert!(
        !host_link_exists(&host_ifname(node, "undo-0")),
        "no veth leaked"
    );
    assert!(
        endpoint_json(&cluster.store, node, "undo-0")
            .await
            .is_none(),
        "no endpoint"
    );
    let report = ipam::check(&cluster.store).await.expect("check");
    assert_eq!(report.allocated, 0, "no address leaked: {report}");
    assert_eq!(report.handles, 0, "{report}");
    pod_ns
        .ip(&["link", "show", "dev", "other0"])
        .expect("the foreign eth0 and its peer are untouched");
}

#[tokio::test]
async fn del_after_a_crash_mid_add_cleans_up() {
    let cluster = Cluster::start("10.85.0.0/24", None).await;
    let node = "cni-node-crash";
    let pod_ns = Netns::new("podcrash").expect("netns");
    let netns = netns_path(&pod_ns);
    let path = cluster.cni_path();
    let args = cni_args("crash-0");
    let conf = cluster.conf(node).to_string();
    let mut env = vec![
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "c-crash-0"),
        ("CNI_NETNS", netns.as_str()),
        ("CNI_IFNAME", "eth0"),
        ("CNI_ARGS", args.as_str()),
        ("CNI_PATH", path.as_str()),
    ];
    // The crash: IPAM allocated, the veth was created in the sandbox, nothing else happened.
    invoke(IPAM, &env, conf.as_bytes()).expect_ok("IPAM ADD");
    let host_if = host_ifname(node, "crash-0");
    pod_ns
        .ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", &host_if,
        ])
        .expect("half-made veth");
    env[0] = ("CNI_COMMAND", "DEL");
    invoke(CNI, &env, conf.as_bytes()).expect_ok("DEL after crash");
    assert!(pod_ns.ip(&["link", "show", "dev", &host_if]).is_err());
    assert!(pod_ns.ip(&["link", "show", "dev", "eth0"]).is_err());
    let report = ipam::check(&cluster.store).await.expect("check");
    assert_eq!(report.allocated, 0, "{report}");
    // And a fresh ADD works afterwards.
    env[0] = ("CNI_COMMAND", "ADD");
    invoke(CNI, &env, conf.as_bytes()).expect_ok("ADD after cleanup");
    env[0] = ("CNI_COMMAND", "DEL");
    invoke(CNI, &env, conf.as_bytes()).expect_ok("DEL");
}

/// `ipam.type: vrouter-ipam` runs in `vrouter-cni`'s own process (the binary on CNI_PATH is
/// not needed); any other type is found on CNI_PATH and executed, as the CNI spec says.
#[tokio::test]
async fn vrouter_ipam_runs_in_process_and_other_ipam_types_are_delegated() {
    let cluster = Cluster::start("10.89.0.0/24", None).await;
    let node = "cni-node-delegate";
    cluster.add_node(node).await;
    // CNI_PATH: vrouter-cni, and the IPAM plugin under another name only.
    let bin = tempfile::tempdir().expect("tempdir");
    std::os::unix::fs::symlink(CNI, bin.path().join("vrouter-cni")).expect("symlink");
    let other = bin.path().join("other-ipam");
    std::os::unix::fs::symlink(IPAM, &other).expect("symlink");
    let path = bin.path().display().to_string();
    let env_for = |command: &'static str, id: &'static str, netns: &str| {
        vec![
            ("CNI_COMMAND", command.to_string()),
            ("CNI_CONTAINERID", id.to_string()),
            ("CNI_NETNS", netns.to_string()),
            ("CNI_IFNAME", "eth0".to_string()),
            ("CNI_ARGS", cni_args(id)),
            ("CNI_PATH", path.clone()),
        ]
    };
    let run = |env: &[(&str, String)], conf: &Value| {
        let pairs: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        invoke(CNI, &pairs, conf.to_string().as_bytes())
    };

    // In process: no vrouter-ipam on CNI_PATH, and ADD, CHECK and DEL work.
    let in_process = cluster.conf(node);
    let ns = Netns::new("podinproc").expect("netns");
    let added = run(&env_for("ADD", "inproc-0", &netns_path(&ns)), &in_process);
    let result = added.expect_ok("in-process ADD").clone();
    assert!(
        result["ips"][0]["address"]
            .as_str()
            .expect("address")
            .starts_with("10.89.0."),
        "{result}"
    );
    let mut with_prev = in_process.clone();
    with_prev["prevResult"] = result;
    run(&env_for("CHECK", "inproc-0", &netns_path(&ns)), &with_prev).expect_ok("in-process CHECK");
    run(&env_for("DEL", "inproc-0", &netns_path(&ns)), &in_process).expect_ok("in-process DEL");

    // Delegated: `other-ipam` is executed from CNI_PATH.
    let mut delegated = cluster.conf(node);
    delegated["ipam"]["type"] = json!("other-ipam");
    let ns = Netns::new("poddeleg").expect("netns");
    let added = run(&env_for("ADD", "deleg-0", &netns_path(&ns)), &delegated);
    let result = added.expect_ok("delegated ADD").clone();
    let address = result["ips"][0]["address"].as_str().expect("address");
    assert!(address.starts_with("10.89.0."), "{result}");
    let ip: std::net::IpAddr = address.trim_end_matches("/32").parse().expect("ip");
    assert_eq!(
        cluster
            .ipam()
            .ips_by_handle("k8s-pod-network.deleg-0")
            .await
            .expect("handle"),
        [ip]
    );
    let mut with_prev = delegated.clone();
    with_prev["prevResult"] = result;
    run(&env_for("CHECK", "deleg-0", &netns_path(&ns)), &with_prev).expect_ok("delegated CHECK");
    // It really is executed: without the executable, the next ADD cannot find it.
    std::fs::remove_file(&other).expect("remove other-ipam");
    let ns2 = Netns::new("poddeleg").expect("netns");
    let missing = run(&env_for("ADD", "deleg-1", &netns_path(&ns2)), &delegated);
    assert_eq!(missing.code(), 7, "{}", missing.stdout);
    std::os::unix::fs::symlink(IPAM, &other).expect("symlink");
    run(&env_for("DEL", "deleg-0", &netns_path(&ns)), &delegated).expect_ok("delegated DEL");
    let report = ipam::check(&cluster.store).await.expect("check");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.allocated, 0);
}

#[tokio::test]
async fn ipam_plugin_is_idempotent_and_gc_releases_stale_attachments() {
    let cluster = Cluster::start("10.86.0.0/24", None).await;
    let node = "cni-node-gc";
    let path = cluster.cni_path();
    let conf = cluster.conf(node);
    let mut results = BTreeMap::new();
    for container in ["keep", "stale"] {
        let env = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", container),
            ("CNI_NETNS", "/var/run/netns/unused-by-ipam"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", path.as_str()),
        ];
        let first = invoke(IPAM, &env, conf.to_string().as_bytes());
        let again = invoke(IPAM, &env, conf.to_string().as_bytes());
        let first = first.expect_ok("IPAM ADD").clone();
        assert_eq!(
            &first,
            again.expect_ok("repeated ADD"),
            "same address again"
        );
        assert_eq!(first["routes"][0]["dst"], "0.0.0.0/0");
        let mut check_conf = conf.clone();
        check_conf["prevResult"] = first.clone();
        let check_env = [("CNI_COMMAND", "CHECK"), env[1], env[2], env[3], env[4]];
        invoke(IPAM, &check_env, check_conf.to_string().as_bytes()).expect_ok("IPAM CHECK");
        results.insert(container, first);
    }
    let mut gc_conf = conf.clone();
    gc_conf["cni.dev/valid-attachments"] = json!([{ "containerID": "keep", "ifname": "eth0" }]);
    invoke(
        CNI,
        &[("CNI_COMMAND", "GC"), ("CNI_PATH", path.as_str())],
        gc_conf.to_string().as_bytes(),
    )
    .expect_ok("GC");
    let ipam = cluster.ipam();
    assert!(
        ipam.ips_by_handle("k8s-pod-network.stale")
            .await
            .expect("h")
            .is_empty()
    );
    assert_eq!(
        ipam.ips_by_handle("k8s-pod-network.keep")
            .await
            .expect("h")
            .len(),
        1
    );
    // CHECK of the collected attachment fails; DEL of it still succeeds.
    let mut check_conf = conf.clone();
    check_conf["prevResult"] = results["stale"].clone();
    let env = [
        ("CNI_COMMAND", "CHECK"),
        ("CNI_CONTAINERID", "stale"),
        ("CNI_NETNS", "/var/run/netns/unused-by-ipam"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path.as_str()),
    ];
    assert_eq!(
        invoke(IPAM, &env, check_conf.to_string().as_bytes()).code(),
        100
    );
    let del = [("CNI_COMMAND", "DEL"), env[1], env[3], env[4]];
    invoke(IPAM, &del, conf.to_string().as_bytes()).expect_ok("DEL of a collected handle");
}

#[tokio::test]
async fn pools_are_chosen_by_node_selector() {
    let cluster = Cluster::start("10.87.9.0/24", None).await;
    // Disable the default pool of the harness; add two selected pools.
    let key = resource_key(Kind::IpPool.plural(), None, "pool");
    let kv = cluster.store.get(&key).await.expect("get").expect("pool");
    let mut disabled = IpPool::new("pool", "10.87.9.0/24");
    disabled.spec.disabled = Some(true);
    cluster
        .store
        .update(
            &key,
            Resource::IpPool(disabled).to_json().into_bytes(),
            kv.mod_revision,
        )
        .await
        .expect("disable");
    for (name, cidr, selector) in [
        ("rack-a", "10.87.0.0/24", "rack == 'a'"),
        ("rack-b", "10.87.1.0/24", "rack == 'b'"),
    ] {
        let mut pool = IpPool::new(name, cidr);
        pool.spec.node_selector = Some(selector.to_string());
        cluster
            .store
            .create(
                &resource_key(Kind::IpPool.plural(), None, name),
                Resource::IpPool(pool).to_json().into_bytes(),
            )
            .await
            .expect("pool");
    }
    let mut node = datastore::resource::Node {
        metadata: datastore::resource::ObjectMeta::named("rack-b-node"),
        spec: datastore::resource::node::NodeSpec::default(),
        status: None,
    };
    node.metadata.labels.insert("rack".into(), "b".into());
    cluster
        .store
        .create(
            &resource_key(Kind::Node.plural(), None, "rack-b-node"),
            Resource::Node(node).to_json().into_bytes(),
        )
        .await
        .expect("node");
    let path = cluster.cni_path();
    let env = [
        ("CNI_COMMAND", "ADD"),
        ("CNI_CONTAINERID", "sel"),
        ("CNI_NETNS", "/var/run/netns/unused-by-ipam"),
        ("CNI_IFNAME", "eth0"),
        ("CNI_PATH", path.as_str()),
    ];
    let result = invoke(
        IPAM,
        &env,
        cluster.conf("rack-b-node").to_string().as_bytes(),
    );
    let address = result.expect_ok("IPAM ADD")["ips"][0]["address"]
        .as_str()
        .expect("address")
        .to_string();
    assert!(address.starts_with("10.87.1."), "{address}");
    // A node no pool selects gets "try again later" with a clear message.
    let mut lonely = env;
    lonely[1] = ("CNI_CONTAINERID", "lonely");
    let unselected = invoke(
        IPAM,
        &lonely,
        cluster.conf("lonely-node").to_string().as_bytes(),
    );
    assert_eq!(unselected.code(), 11);
    assert!(
        unselected.stdout["msg"]
            .as_str()
            .expect("msg")
            .contains("no usable IPv4 IP pool"),
        "{}",
        unselected.stdout
    );
}

/// The MTU of the host's default-route interface (what the plugin detects), if any.
fn host_underlay_mtu() -> Option<u32> {
    let routes = test_support::run_ok(Command::new("ip").args(["-o", "route", "show", "default"]))
        .expect("ip route");
    let dev = routes
        .split_whitespace()
        .skip_while(|w| *w != "dev")
        .nth(1)?
        .to_string();
    let link = test_support::run_ok(Command::new("ip").args(["-o", "link", "show", "dev", &dev]))
        .expect("ip link");
    link.split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)?
        .parse()
        .ok()
}

fn link_mtu(output: &str) -> u32 {
    output
        .split_whitespace()
        .skip_while(|w| *w != "mtu")
        .nth(1)
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("no mtu in {output}"))
}

/// ADD sets both veth ends to the underlay's MTU for a native pool, 50 less for a VXLAN
/// pool, and to the configuration's `mtu` when one is set (clamped to the underlay).
#[tokio::test]
async fn pod_mtu_follows_the_underlay_and_the_pool_encapsulation() {
    let cluster = Cluster::start("10.88.0.0/24", None).await;
    let node = "cni-node-mtu";
    let underlay = host_underlay_mtu();
    let path = cluster.cni_path();
    let run = |command: &str, pod: &str, netns: &str, conf: &Value| {
        let args = cni_args(pod);
        let container = format!("c-{pod}");
        let env = [
            ("CNI_COMMAND", command),
            ("CNI_CONTAINERID", container.as_str()),
            ("CNI_NETNS", netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", args.as_str()),
            ("CNI_PATH", path.as_str()),
        ];
        invoke(CNI, &env, conf.to_string().as_bytes()).expect_ok(command);
    };
    let mtus = |ns: &Netns, pod: &str| {
        let inside = link_mtu(&ns.ip(&["-o", "link", "show", "dev", "eth0"]).expect("eth0"));
        let host = link_mtu(
            &test_support::run_ok(Command::new("ip").args([
                "-o",
                "link",
                "show",
                "dev",
                &host_ifname(node, pod),
            ]))
            .expect("host veth"),
        );
        (inside, host)
    };

    // Native pool: the underlay's MTU (the kernel default without a default route).
    let native_ns = Netns::new("podmtu0").expect("netns");
    run("ADD", "mtu-0", &netns_path(&native_ns), &cluster.conf(node));
    let want = underlay.unwrap_or(1500);
    assert_eq!(mtus(&native_ns, "mtu-0"), (want, want));

    // The pool switches to VXLAN: new pods get 50 bytes less.
    let key = resource_key(Kind::IpPool.plural(), None, "pool");
    let kv = cluster.store.get(&key).await.expect("get").expect("pool");
    let mut vxlan = IpPool::new("pool", "10.88.0.0/24");
    vxlan.spec.vxlan_mode = Some(datastore::resource::ippool::EncapMode::Always);
    cluster
        .store
        .update(
            &key,
            Resource::IpPool(vxlan).to_json().into_bytes(),
            kv.mod_revision,
        )
        .await
        .expect("vxlan pool");
    let vxlan_ns = Netns::new("podmtu1").expect("netns");
    run("ADD", "mtu-1", &netns_path(&vxlan_ns), &cluster.conf(node));
    let want = underlay.map_or(1500, |u| u - 50);
    assert_eq!(mtus(&vxlan_ns, "mtu-1"), (want, want));

    // FelixConfiguration vxlanMTU is the VXLAN pods' MTU (the agent uses it too).
    let felix = datastore::resource::parse_and_validate_documents(
        "apiVersion: projectcalico.org/v3\nkind: FelixConfiguration\n\
         metadata:\n  name: default\nspec:\n  vxlanMTU: 1234\n",
    )
    .expect("felix configuration")
    .remove(0);
    cluster
        .store
        .create(
            &resource_key(Kind::FelixConfiguration.plural(), None, "default"),
            felix.to_json().into_bytes(),
        )
        .await
        .expect("felix configuration");
    let felix_ns = Netns::new("podmtu3").expect("netns");
    run("ADD", "mtu-3", &netns_path(&felix_ns), &cluster.conf(node));
    let want = underlay.map_or(1234, |u| u.min(1234));
    assert_eq!(mtus(&felix_ns, "mtu-3"), (want, want));

    // An explicit `mtu` is the pod MTU as given.
    let mut conf = cluster.conf(node);
    conf["mtu"] = json!(1300);
    let fixed_ns = Netns::new("podmtu2").expect("netns");
    run("ADD", "mtu-2", &netns_path(&fixed_ns), &conf);
    assert_eq!(mtus(&fixed_ns, "mtu-2"), (1300, 1300));

    run("DEL", "mtu-0", &netns_path(&native_ns), &cluster.conf(node));
    run("DEL", "mtu-1", &netns_path(&vxlan_ns), &cluster.conf(node));
    run("DEL", "mtu-2", &netns_path(&fixed_ns), &conf);
    run("DEL", "mtu-3", &netns_path(&felix_ns), &cluster.conf(node));
}
