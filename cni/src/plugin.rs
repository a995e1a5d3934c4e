//! `vrouter-cni`: the main CNI plugin.
//!
//! - ADD: IPAM ADD, attach the veth with addresses and routes ([`crate::dataplane`]), write
//!   the WorkloadEndpoint ([`crate::endpoint`]), print the result. Any failure after IPAM
//!   undoes everything done so far (veth, endpoint, addresses), so a failed ADD leaks nothing.
//! - DEL: remove the veth, the endpoint and (IPAM DEL) the addresses. Every step tolerates
//!   "already gone", so a second DEL, a DEL without `CNI_NETNS` and a DEL after a crash
//!   mid-ADD all succeed.
//! - CHECK: the endpoint exists, the kernel state is as ADD left it, IPAM CHECK passes.
//! - STATUS: 0 when etcd answers, code 50 when not.
//! - GC: IPAM GC, then the endpoints (and host veths) of this node whose container is not in
//!   `cni.dev/valid-attachments`.
//!
//! **IPAM** is the plugin `ipam.type` names. When that is `vrouter-ipam`, it runs in this
//! process ([`crate::ipam_plugin::execute`]) over the etcd connection this plugin already
//! has: the same code and the same result as the binary, without a second process start and
//! a second etcd connection, which were most of the time from ADD to the block claim. Any
//! other type is run as the CNI spec prescribes, found in `CNI_PATH` and executed
//! ([`crate::delegate`]).

use std::net::IpAddr;

use datastore::etcd::Store;
use datastore::ipam::{Ipam, host_veth_name};

use crate::dataplane::{self, DataplaneError, PodNetwork};
use crate::delegate::run_ipam;
use crate::endpoint::{self, datastore_error};
use crate::gateway::{default_routes, ip_config};
use crate::ipam_plugin::{self, connect, connect_lazy, status};
use crate::netconf::{NetConf, Workload};
use crate::spec::{CniError, CniResult, Command, Environment, Interface, VersionResult, code};

fn dataplane_error(e: &DataplaneError, version: &str) -> CniError {
    let code = match e {
        DataplaneError::Check(_) => code::CHECK_FAILED,
        _ => code::DATAPLANE,
    };
    CniError::new(code, e.to_string()).in_version(version)
}

/// The IPAM plugin that runs in this process rather than through `CNI_PATH`.
pub const IN_PROCESS_IPAM: &str = "vrouter-ipam";

/// Runs IPAM `command`: in this process over `store` for [`IN_PROCESS_IPAM`], else the
/// plugin `kind` from `CNI_PATH`. The error is in the configuration's version.
async fn run_ipam_as(
    kind: &str,
    command: Command,
    conf: &NetConf,
    env: &Environment,
    stdin: &[u8],
    store: &Store,
) -> Result<CniResult, CniError> {
    let result = if kind == IN_PROCESS_IPAM {
        ipam_plugin::execute(&Ipam::new(store.clone()), command, conf, env).await
    } else {
        run_ipam(kind, command, env, stdin).await
    };
    result.map_err(|e| e.in_version(&conf.cni_version))
}

fn ipam_type(conf: &NetConf) -> Result<String, CniError> {
    conf.ipam
        .as_ref()
        .map(|i| i.kind.clone())
        .filter(|k| !k.is_empty())
        .ok_or_else(|| {
            CniError::new(code::INVALID_CONFIG, "the configuration has no ipam.type")
                .in_version(&conf.cni_version)
        })
}

/// Runs one `vrouter-cni` invocation; returns what to print on success.
pub async fn run(command: Command, env: &Environment, stdin: &[u8]) -> Result<String, CniError> {
    if command == Command::Version {
        return Ok(serde_json::to_string(&VersionResult::ours()).unwrap_or_default());
    }
    let conf = NetConf::parse(stdin)?;
    match command {
        Command::Add => add(&conf, env, stdin).await.map(|r| r.to_json()),
        Command::Del => del(&conf, env, stdin).await.map(|()| String::new()),
        Command::Check => check(&conf, env, stdin).await.map(|()| String::new()),
        Command::Status => status(&conf).await.map(|()| String::new()),
        Command::Gc => gc(&conf, env, stdin).await.map(|()| String::new()),
        Command::Version => Ok(String::new()),
    }
}

fn parse_ips(result: &CniResult) -> Result<Vec<IpAddr>, CniError> {
    result
        .ips
        .iter()
        .map(|c| {
            c.address
                .split('/')
                .next()
                .and_then(|a| a.parse().ok())
                .ok_or_else(|| {
                    CniError::new(
                        code::DECODE,
                        format!("IPAM returned an unparsable address {:?}", c.address),
                    )
                })
        })
        .collect()
}

async fn add(conf: &NetConf, env: &Environment, stdin: &[u8]) -> Result<CniResult, CniError> {
    let version = conf.cni_version.as_str();
    let ipam = ipam_type(conf)?;
    let netns = env.netns.clone().unwrap_or_default();
    if !std::path::Path::new(&netns).exists() {
        return Err(CniError::new(
            code::UNKNOWN_CONTAINER,
            format!("network namespace {netns} does not exist"),
        )
        .in_version(version));
    }
    let workload = Workload::new(conf, env);
    // With IPAM in this process its first read is the check that etcd answers; before a
    // delegated IPAM plugin runs, check first.
    let store = if ipam == IN_PROCESS_IPAM {
        connect_lazy(conf).await?
    } else {
        connect(conf).await?
    };
    let allocated = run_ipam_as(&ipam, Command::Add, conf, env, stdin, &store).await?;
    tracing::debug!(container = %workload.container_id, "IPAM ADD done");
    match attach(conf, env, &workload, &store, &allocated).await {
        Ok(result) => Ok(result),
        Err(e) => {
            tracing::warn!(error = %e, container = %workload.container_id, "ADD failed, undoing");
            undo(conf, env, &workload, &store, stdin, &ipam).await;
            Err(e)
        }
    }
}

async fn attach(
    conf: &NetConf,
    env: &Environment,
    workload: &Workload,
    store: &Store,
    allocated: &CniResult,
) -> Result<CniResult, CniError> {
    let version = conf.cni_version.as_str();
    let ips = parse_ips(allocated)?;
    if ips.is_empty() {
        return Err(
            CniError::new(code::INVALID_CONFIG, "IPAM assigned no address").in_version(version),
        );
    }
    let netns = env.netns.clone().unwrap_or_default();
    let pod = PodNetwork {
        netns: netns.clone(),
        ifname: workload.ifname.clone(),
        host_ifname: workload.host_ifname.clone(),
        ips: ips.clone(),
        mtu: crate::mtu::for_pod(conf, store, &ips).await,
    };
    let attached = dataplane::attach(&pod)
        .await
        .map_err(|e| dataplane_error(&e, version))?;
    let wep = endpoint::build(conf, workload, &ips, &attached.pod_mac);
    endpoint::write(store, wep, workload, version).await?;
    Ok(CniResult {
        cni_version: version.to_string(),
        interfaces: vec![
            Interface {
                name: workload.host_ifname.clone(),
                mac: attached.host_mac,
                sandbox: None,
            },
            Interface {
                name: workload.ifname.clone(),
                mac: attached.pod_mac,
                sandbox: Some(netns),
            },
        ],
        ips: ips.iter().map(|ip| ip_config(*ip, Some(1))).collect(),
        routes: default_routes(&ips),
        dns: allocated.dns.clone(),
    })
}

async fn undo(
    conf: &NetConf,
    env: &Environment,
    workload: &Workload,
    store: &Store,
    stdin: &[u8],
    ipam: &str,
) {
    if let Err(e) = dataplane::detach(&workload.host_ifname, env.netns.as_deref()).await {
        tracing::warn!(error = %e, "undo: veth");
    }
    if let Err(e) = endpoint::delete(store, workload).await {
        tracing::warn!(error = %e, "undo: endpoint");
    }
    if let Err(e) = run_ipam_as(ipam, Command::Del, conf, env, stdin, store).await {
        tracing::warn!(error = %e, network = %conf.name, "undo: IPAM DEL");
    }
}

async fn del(conf: &NetConf, env: &Environment, stdin: &[u8]) -> Result<(), CniError> {
    let version = conf.cni_version.as_str();
    let ipam = ipam_type(conf)?;
    let workload = Workload::new(conf, env);
    dataplane::detach(&workload.host_ifname, env.netns.as_deref())
        .await
        .map_err(|e| dataplane_error(&e, version))?;
    let store = connect(conf).await?;
    endpoint::delete(&store, &workload)
        .await
        .map_err(|e| datastore_error(&e, version))?;
    run_ipam_as(&ipam, Command::Del, conf, env, stdin, &store)
        .await
        .map(|_| ())
}

async fn check(conf: &NetConf, env: &Environment, stdin: &[u8]) -> Result<(), CniError> {
    let version = conf.cni_version.as_str();
    let ipam = ipam_type(conf)?;
    let workload = Workload::new(conf, env);
    let store = connect(conf).await?;
    let wep = endpoint::read(&store, &workload)
        .await
        .map_err(|e| datastore_error(&e, version))?
        .ok_or_else(|| {
            CniError::new(
                code::CHECK_FAILED,
                format!("WorkloadEndpoint {} does not exist", workload.endpoint_id),
            )
            .in_version(version)
        })?;
    let ips: Vec<IpAddr> = match &conf.prev_result {
        Some(prev) => parse_ips(prev)?,
        None => wep
            .spec
            .ip_networks
            .iter()
            .filter_map(|n| n.split('/').next()?.parse().ok())
            .collect(),
    };
    let pod = PodNetwork {
        netns: env.netns.clone().unwrap_or_default(),
        ifname: workload.ifname.clone(),
        host_ifname: workload.host_ifname.clone(),
        ips,
        mtu: conf.mtu,
    };
    dataplane::verify(&pod)
        .await
        .map_err(|e| dataplane_error(&e, version))?;
    run_ipam_as(&ipam, Command::Check, conf, env, stdin, &store)
        .await
        .map(|_| ())
}

async fn gc(conf: &NetConf, env: &Environment, stdin: &[u8]) -> Result<(), CniError> {
    let version = conf.cni_version.as_str();
    let ipam = ipam_type(conf)?;
    let store = connect(conf).await?;
    run_ipam_as(&ipam, Command::Gc, conf, env, stdin, &store).await?;
    let valid: Vec<&str> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| a.container_id.as_str())
        .collect();
    let node = conf.node();
    for wep in endpoint::on_node(&store, &node)
        .await
        .map_err(|e| datastore_error(&e, version))?
    {
        let container = wep.spec.container_id.as_deref().unwrap_or_default();
        if valid.contains(&container) {
            continue;
        }
        let namespace = wep.metadata.namespace.clone().unwrap_or_default();
        let host_ifname = wep.spec.interface_name.clone().unwrap_or_else(|| {
            host_veth_name(&datastore::ipam::endpoint_id(
                &namespace,
                &wep.metadata.name,
            ))
        });
        dataplane::detach(&host_ifname, None)
            .await
            .map_err(|e| dataplane_error(&e, version))?;
        endpoint::delete_listed(&store, &wep)
            .await
            .map_err(|e| datastore_error(&e, version))?;
    }
    Ok(())
}
