//! Pods: a namespace per pod, wired by running `vrouter-cni` inside its node's namespace with
//! the `CNI_*` environment and the network configuration on stdin, exactly as a container
//! runtime on that host would: started directly by a thread that moved into the node's
//! namespace (`setns(2)`), with no `ip netns exec` in between, whose mount-namespace and
//! `/sys` set-up cost several milliseconds a runtime does not pay. DEL likewise.
//!
//! Every pod runs a small TCP listener (`vrctl lab listen`, hidden) that answers each
//! connection with the pod's name, so the reachability matrix proves it reached the right pod.

use std::io::{Read as _, Write as _};
use std::net::{Ipv4Addr, TcpListener};
use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use super::process::{command_line, enter_netns};

/// Interface name inside every pod.
pub const POD_DEV: &str = "eth0";
/// The Kubernetes namespace every lab pod is in.
pub const POD_NAMESPACE: &str = "default";
/// The CNI network name.
pub const NETWORK: &str = "vrouter-lab";

/// The network configuration a runtime hands the plugin for a pod of `node`.
pub fn netconf(
    etcd: &str,
    node: &str,
    pool: &str,
    labels: &[(String, String)],
) -> serde_json::Value {
    let labels: Vec<serde_json::Value> = labels
        .iter()
        .map(|(k, v)| serde_json::json!({ "key": k, "value": v }))
        .collect();
    serde_json::json!({
        "cniVersion": "1.1.0",
        "name": NETWORK,
        "type": "vrouter-cni",
        "etcd_endpoints": etcd,
        "nodename": node,
        "ipam": { "type": "vrouter-ipam", "ipv4_pools": [pool] },
        "args": { "cni": { "labels": labels } }
    })
}

/// Runs `vrouter-cni` `command` (ADD, DEL) for pod `pod` inside `node`'s namespace; returns
/// the plugin's stdout.
pub fn invoke(
    bin_dir: &Path,
    command: &str,
    node: &str,
    pod: &str,
    conf: &serde_json::Value,
) -> anyhow::Result<String> {
    let mut cmd = Command::new(bin_dir.join("vrouter-cni"));
    cmd.env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", pod)
        .env("CNI_NETNS", format!("/run/netns/{pod}"))
        .env("CNI_IFNAME", POD_DEV)
        .env(
            "CNI_ARGS",
            format!("K8S_POD_NAMESPACE={POD_NAMESPACE};K8S_POD_NAME={pod}"),
        )
        .env("CNI_PATH", bin_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = format!("{} (in namespace {node})", command_line(&cmd));
    let stdin = conf.to_string();
    let in_node = node.to_string();
    let out = std::thread::spawn(move || -> anyhow::Result<std::process::Output> {
        enter_netns(&in_node)?;
        let mut child = cmd.spawn()?;
        if let Some(mut pipe) = child.stdin.take() {
            pipe.write_all(stdin.as_bytes())
                .context("writing the network configuration to vrouter-cni")?;
        }
        Ok(child.wait_with_output()?)
    })
    .join()
    .map_err(|_| anyhow::anyhow!("the thread running vrouter-cni panicked"))?
    .with_context(|| format!("running `{line}` (CNI {command} {pod})"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    if !out.status.success() {
        bail!(
            "CNI {command} of pod {pod} on {node} failed ({}): {} {}",
            out.status,
            stdout.trim(),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(stdout)
}

/// The first IPv4 address of a CNI ADD result.
pub fn result_ipv4(result: &str) -> anyhow::Result<Ipv4Addr> {
    let json: serde_json::Value =
        serde_json::from_str(result).context("parsing the CNI ADD result")?;
    json.get("ips")
        .and_then(|ips| ips.as_array())
        .into_iter()
        .flatten()
        .filter_map(|ip| ip.get("address")?.as_str())
        .filter_map(|a| a.split('/').next()?.parse::<Ipv4Addr>().ok())
        .next()
        .with_context(|| format!("no IPv4 address in the CNI result {result}"))
}

/// The hidden `vrctl lab listen` body: accept on `port` forever, answer every connection with
/// `name` and a newline.
pub fn listen(port: u16, name: &str) -> anyhow::Result<()> {
    let listener = TcpListener::bind(("0.0.0.0", port))
        .with_context(|| format!("binding the lab listener on port {port}"))?;
    let reply = format!("{name}\n");
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let _ = stream.write_all(reply.as_bytes());
        // Drain what the client sent (nothing) so the close is orderly.
        let _ = stream.set_read_timeout(Some(std::time::Duration::from_millis(100)));
        let mut sink = [0u8; 64];
        let _ = stream.read(&mut sink);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_from_a_result() {
        let result = r#"{"cniVersion":"1.1.0","ips":[{"address":"fd00::5/128"},{"address":"10.244.3.7/32","gateway":"169.254.1.1"}]}"#;
        assert_eq!(
            result_ipv4(result).expect("ip"),
            Ipv4Addr::new(10, 244, 3, 7)
        );
        assert!(result_ipv4(r#"{"ips":[]}"#).is_err());
        assert!(result_ipv4("not json").is_err());
    }

    #[test]
    fn netconf_carries_labels_and_pool() {
        let conf = netconf(
            "http://10.250.1.1:2379",
            "vl-n0",
            "10.244.0.0/16",
            &[("app".into(), "demo".into())],
        );
        assert_eq!(conf["nodename"], "vl-n0");
        assert_eq!(conf["ipam"]["ipv4_pools"][0], "10.244.0.0/16");
        assert_eq!(conf["args"]["cni"]["labels"][0]["key"], "app");
    }
}
