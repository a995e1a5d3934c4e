//! The network configuration both plugins read from stdin, and what they derive from it and
//! the environment: node name, pod identity, labels, the IPAM handle.
//!
//! ```json
//! {
//!   "cniVersion": "1.1.0",
//!   "name": "k8s-pod-network",
//!   "type": "vrouter-cni",
//!   "etcd_endpoints": "http://127.0.0.1:2379",
//!   "nodename": "node-1",
//!   "mtu": 1500,
//!   "ipam": { "type": "vrouter-ipam", "assign_ipv4": true, "assign_ipv6": false,
//!             "ipv4_pools": ["10.65.0.0/16"] },
//!   "args": { "cni": { "labels": [ { "key": "app", "value": "web" } ] } },
//!   "runtimeConfig": { "labels": { "tier": "frontend" } }
//! }
//! ```
//!
//! **Workload labels** come from two places, merged (the second wins on a clash): the CNI
//! conventions' `args.cni.labels` list of `{key, value}`, and `runtimeConfig.labels`, a map
//! a runtime passes when the plugin's configuration lists the `labels` capability. To these
//! vrouter adds Calico's `projectcalico.org/namespace` and `projectcalico.org/orchestrator`.
//!
//! **Pod identity** comes from `CNI_ARGS` (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`); without them
//! the workload is named after the container id, orchestrator `cni`, namespace `default`.
//!
//! **Node name**: `nodename`, else `$VROUTER_NODENAME`, else the host name.

use std::collections::BTreeMap;

use datastore::etcd::EtcdConfig;
use datastore::ipam::workload::{ORCHESTRATOR_CNI, ORCHESTRATOR_K8S};
use datastore::ipam::{endpoint_id, host_veth_name, workload_endpoint_name};
use ipnetwork::IpNetwork;
use serde::Deserialize;

use crate::spec::{CniError, CniResult, Environment, check_version, code};

/// Label Calico puts on every workload: its namespace.
pub const LABEL_NAMESPACE: &str = "projectcalico.org/namespace";
/// Label Calico puts on every workload: its orchestrator.
pub const LABEL_ORCHESTRATOR: &str = "projectcalico.org/orchestrator";

/// The `ipam` section.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct IpamConf {
    /// Plugin to delegate to (`vrouter-ipam`).
    #[serde(rename = "type")]
    pub kind: String,
    /// Assign an IPv4 address (default true).
    #[serde(default)]
    pub assign_ipv4: Option<bool>,
    /// Assign an IPv6 address (default false).
    #[serde(default)]
    pub assign_ipv6: Option<bool>,
    /// Restrict IPv4 allocation to these pool CIDRs.
    #[serde(default)]
    pub ipv4_pools: Vec<String>,
    /// Restrict IPv6 allocation to these pool CIDRs.
    #[serde(default)]
    pub ipv6_pools: Vec<String>,
}

/// One entry of `cni.dev/valid-attachments` (GC).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Attachment {
    /// Container id.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// Interface name.
    #[serde(default)]
    pub ifname: String,
}

/// A `{key, value}` label of the CNI conventions' `args.cni.labels`.
#[derive(Debug, Clone, Deserialize)]
struct KeyValue {
    key: String,
    value: String,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct CniArgs {
    #[serde(default)]
    labels: Vec<KeyValue>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct Args {
    #[serde(default)]
    cni: Option<CniArgs>,
}

#[derive(Debug, Clone, Default, Deserialize)]
struct RuntimeConfig {
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

/// The network configuration (unknown fields are ignored, as the spec allows).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NetConf {
    /// Spec version.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Network name (the handle prefix).
    pub name: String,
    /// Plugin type.
    #[serde(rename = "type", default)]
    pub kind: String,
    /// IPAM section.
    #[serde(default)]
    pub ipam: Option<IpamConf>,
    /// Comma-separated etcd client URLs.
    #[serde(default)]
    pub etcd_endpoints: Option<String>,
    /// Node name.
    #[serde(default)]
    pub nodename: Option<String>,
    /// MTU of the pod interface.
    #[serde(default)]
    pub mtu: Option<u32>,
    #[serde(default)]
    args: Option<Args>,
    #[serde(rename = "runtimeConfig", default)]
    runtime_config: Option<RuntimeConfig>,
    /// The previous result (DEL, CHECK).
    #[serde(rename = "prevResult", default)]
    pub prev_result: Option<CniResult>,
    /// GC: attachments to keep.
    #[serde(rename = "cni.dev/valid-attachments", default)]
    pub valid_attachments: Option<Vec<Attachment>>,
}

impl NetConf {
    /// Parses stdin: code 6 if it is not a configuration, code 1 for an unsupported version,
    /// code 7 for a configuration that parses but cannot be used.
    pub fn parse(stdin: &[u8]) -> Result<NetConf, CniError> {
        let conf: NetConf = serde_json::from_slice(stdin).map_err(|e| {
            CniError::new(code::DECODE, "cannot decode the network configuration")
                .with_details(e.to_string())
        })?;
        check_version(&conf.cni_version)?;
        if conf.name.is_empty() {
            return Err(CniError::new(code::INVALID_CONFIG, "network name is empty")
                .in_version(&conf.cni_version));
        }
        if let Some(ipam) = &conf.ipam {
            for pool in ipam.ipv4_pools.iter().chain(&ipam.ipv6_pools) {
                if pool.parse::<IpNetwork>().is_err() {
                    return Err(CniError::new(
                        code::INVALID_CONFIG,
                        format!("ipam pool {pool:?} is not a CIDR"),
                    )
                    .in_version(&conf.cni_version));
                }
            }
        }
        Ok(conf)
    }

    /// The etcd configuration.
    pub fn etcd(&self) -> Result<EtcdConfig, CniError> {
        let list = self
            .etcd_endpoints
            .clone()
            .or_else(|| std::env::var("VROUTER_ETCD_ENDPOINTS").ok())
            .unwrap_or_else(|| "http://127.0.0.1:2379".to_string());
        let endpoints = EtcdConfig::parse_endpoints(&list).map_err(|e| {
            CniError::new(code::INVALID_CONFIG, e.to_string()).in_version(&self.cni_version)
        })?;
        Ok(EtcdConfig::new(endpoints))
    }

    /// The node name.
    pub fn node(&self) -> String {
        if let Some(n) = self.nodename.as_ref().filter(|n| !n.is_empty()) {
            return n.clone();
        }
        if let Ok(n) = std::env::var("VROUTER_NODENAME")
            && !n.is_empty()
        {
            return n;
        }
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".to_string())
    }

    /// Merged workload labels (see the module documentation), without the Calico ones.
    pub fn labels(&self) -> BTreeMap<String, String> {
        let mut labels = BTreeMap::new();
        if let Some(cni) = self.args.as_ref().and_then(|a| a.cni.as_ref()) {
            for kv in &cni.labels {
                labels.insert(kv.key.clone(), kv.value.clone());
            }
        }
        if let Some(rc) = &self.runtime_config {
            labels.extend(rc.labels.clone());
        }
        labels
    }

    /// Pools the IPAM section restricts allocation to.
    pub fn pools(&self) -> Vec<IpNetwork> {
        self.ipam
            .iter()
            .flat_map(|i| i.ipv4_pools.iter().chain(&i.ipv6_pools))
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// Whether to assign IPv4 / IPv6.
    pub fn families(&self) -> (bool, bool) {
        let ipam = self.ipam.clone().unwrap_or_default();
        (
            ipam.assign_ipv4.unwrap_or(true),
            ipam.assign_ipv6.unwrap_or(false),
        )
    }
}

/// Who the workload is: everything derived from the configuration and the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Workload {
    /// Node.
    pub node: String,
    /// Namespace (`default` without `K8S_POD_NAMESPACE`).
    pub namespace: String,
    /// Pod name, when the runtime is Kubernetes.
    pub pod: Option<String>,
    /// `k8s` or `cni`.
    pub orchestrator: &'static str,
    /// Container id.
    pub container_id: String,
    /// Interface name in the sandbox.
    pub ifname: String,
    /// WorkloadEndpoint name.
    pub endpoint_name: String,
    /// Endpoint id (`namespace/name`).
    pub endpoint_id: String,
    /// Host-side veth name.
    pub host_ifname: String,
    /// IPAM handle (`<network>.<containerID>`).
    pub handle: String,
}

impl Workload {
    /// Derives the workload identity.
    pub fn new(conf: &NetConf, env: &Environment) -> Workload {
        let node = conf.node();
        let pod = env
            .args
            .get("K8S_POD_NAME")
            .filter(|p| !p.is_empty())
            .cloned();
        let namespace = env
            .args
            .get("K8S_POD_NAMESPACE")
            .filter(|n| !n.is_empty())
            .cloned()
            .unwrap_or_else(|| datastore::resource::DEFAULT_NAMESPACE.to_string());
        let (orchestrator, workload) = match &pod {
            Some(p) => (ORCHESTRATOR_K8S, p.clone()),
            None => (ORCHESTRATOR_CNI, env.container_id.clone()),
        };
        let endpoint_name = workload_endpoint_name(&node, orchestrator, &workload, &env.ifname);
        let endpoint_id = endpoint_id(&namespace, &endpoint_name);
        Workload {
            host_ifname: host_veth_name(&endpoint_id),
            handle: handle(&conf.name, &env.container_id),
            node,
            namespace,
            pod,
            orchestrator,
            container_id: env.container_id.clone(),
            ifname: env.ifname.clone(),
            endpoint_name,
            endpoint_id,
        }
    }
}

/// The IPAM handle of a container on a network: `<network>.<containerID>`.
pub fn handle(network: &str, container_id: &str) -> String {
    format!("{network}.{container_id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_derives_identity() {
        let conf = NetConf::parse(
            br#"{"cniVersion":"1.0.0","name":"k8s-pod-network","type":"vrouter-cni",
                 "nodename":"node-1","ipam":{"type":"vrouter-ipam","ipv4_pools":["10.65.0.0/16"]},
                 "args":{"cni":{"labels":[{"key":"app","value":"web"},{"key":"tier","value":"a"}]}},
                 "runtimeConfig":{"labels":{"tier":"b"}},"somethingElse":42}"#,
        )
        .expect("parses");
        assert_eq!(conf.families(), (true, false));
        assert_eq!(
            conf.pools(),
            ["10.65.0.0/16".parse::<IpNetwork>().expect("cidr")]
        );
        let labels = conf.labels();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels["tier"], "b", "runtimeConfig wins");
        let env = Environment {
            container_id: "abc".into(),
            ifname: "eth0".into(),
            args: [
                ("K8S_POD_NAMESPACE".to_string(), "prod".to_string()),
                ("K8S_POD_NAME".to_string(), "web-0".to_string()),
            ]
            .into(),
            ..Environment::default()
        };
        let w = Workload::new(&conf, &env);
        assert_eq!(w.endpoint_name, "node--1-k8s-web--0-eth0");
        assert_eq!(w.endpoint_id, "prod/node--1-k8s-web--0-eth0");
        assert_eq!(w.handle, "k8s-pod-network.abc");
        assert_eq!(w.host_ifname, host_veth_name(&w.endpoint_id));
        let plain = Workload::new(
            &conf,
            &Environment {
                args: BTreeMap::new(),
                ..env
            },
        );
        assert_eq!(plain.namespace, "default");
        assert_eq!(plain.endpoint_name, "node--1-cni-abc-eth0");
    }

    #[test]
    fn errors_have_the_spec_codes() {
        assert_eq!(NetConf::parse(b"{not json").expect_err("6").code, 6);
        assert_eq!(NetConf::parse(b"[]").expect_err("6").code, 6);
        let old = br#"{"cniVersion":"0.3.1","name":"n","type":"vrouter-cni"}"#;
        assert_eq!(NetConf::parse(old).expect_err("1").code, 1);
        let bad_pool =
            br#"{"cniVersion":"1.1.0","name":"n","ipam":{"type":"x","ipv4_pools":["x"]}}"#;
        assert_eq!(NetConf::parse(bad_pool).expect_err("7").code, 7);
    }
}
