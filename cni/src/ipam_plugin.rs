//! `vrouter-ipam`: the CNI IPAM plugin over [`datastore::ipam`].
//!
//! - ADD: allocates the configured families to the handle `<network>.<containerID>` with the
//!   workload's attributes (node, namespace, pod, endpoint, container id) and returns `ips` +
//!   `routes` (default routes via the link-local gateway). A repeated ADD for the same handle
//!   returns the addresses it already holds.
//! - DEL: releases everything the handle holds (idempotent).
//! - CHECK: the handle still holds the addresses of `prevResult`.
//! - GC: releases addresses that this node allocated on this network for containers not in
//!   `cni.dev/valid-attachments`.
//! - STATUS: 0 when etcd answers, code 50 when not.
//!
//! Pools: enabled IPPools of the family whose `nodeSelector` matches the node's labels (from
//! its `Node` resource), optionally restricted by `ipv4_pools` / `ipv6_pools`.
//!
//! ADD starts with one etcd read (the handle, the Node, the IPAM settings, the pools and the
//! node's affinities in one transaction: [`datastore::ipam::AssignSnapshot`]). `vrouter-cni`
//! runs this plugin in its own process ([`execute`]) when `ipam.type` is `vrouter-ipam`, over
//! its own etcd connection, instead of starting the binary.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use datastore::etcd::{DatastoreError, KeyValue, Store};
use datastore::ipam::{
    ATTR_CONTAINER_ID, ATTR_ENDPOINT, ATTR_NAMESPACE, ATTR_NODE, ATTR_POD, AssignArgs, Ipam,
    IpamError,
};
use datastore::keys::{ipam_handle_key, resource_key};
use datastore::resource::ippool::AllowedUse;
use datastore::resource::{IpPool, Kind, Resource};
use policy::Selector;

use crate::gateway::{default_routes, ip_config};
use crate::netconf::{NetConf, Workload};
use crate::spec::{CniError, CniResult, Command, Environment, VersionResult, code};

/// Maps an IPAM failure to its CNI code: exhaustion, contention and an unreachable etcd are
/// "try again later" (11); the rest are I/O failures (5).
pub fn ipam_error(e: &IpamError, version: &str) -> CniError {
    let code = match e {
        IpamError::Exhausted { .. }
        | IpamError::TooManyRetries { .. }
        | IpamError::NoPools { .. }
        | IpamError::Datastore(DatastoreError::Unavailable { .. }) => code::TRY_AGAIN_LATER,
        _ => code::IO_FAILURE,
    };
    CniError::new(code, e.to_string()).in_version(version)
}

/// Connects to etcd; an unreachable cluster is "try again later".
pub async fn connect(conf: &NetConf) -> Result<Store, CniError> {
    let config = conf.etcd()?;
    Store::connect(&config).await.map_err(|e| {
        CniError::new(code::TRY_AGAIN_LATER, e.to_string()).in_version(&conf.cni_version)
    })
}

/// [`connect`] without the round trip that checks etcd answers, for a caller whose next step
/// is an etcd request (the IPAM itself, which then fails "try again later" as [`connect`]
/// would).
pub async fn connect_lazy(conf: &NetConf) -> Result<Store, CniError> {
    let config = conf.etcd()?;
    Store::connect_lazy(&config).await.map_err(|e| {
        CniError::new(code::TRY_AGAIN_LATER, e.to_string()).in_version(&conf.cni_version)
    })
}

/// Runs one `vrouter-ipam` invocation; returns what to print on success.
pub async fn run(command: Command, env: &Environment, stdin: &[u8]) -> Result<String, CniError> {
    if command == Command::Version {
        return Ok(serde_json::to_string(&VersionResult::ours()).unwrap_or_default());
    }
    let conf = NetConf::parse(stdin)?;
    if command == Command::Status {
        return status(&conf).await.map(|()| String::new());
    }
    let ipam = Ipam::new(connect_lazy(&conf).await?);
    let result = execute(&ipam, command, &conf, env).await?;
    Ok(match command {
        Command::Add => result.to_json(),
        _ => String::new(),
    })
}

/// Runs ADD, DEL, CHECK or GC over an etcd connection the caller already has: the body of
/// the `vrouter-ipam` binary, and what `vrouter-cni` calls in its own process. Returns the
/// result for ADD, an empty one otherwise (VERSION and STATUS are the binary's alone).
pub async fn execute(
    ipam: &Ipam,
    command: Command,
    conf: &NetConf,
    env: &Environment,
) -> Result<CniResult, CniError> {
    let version = &conf.cni_version;
    match command {
        Command::Add => add(ipam, conf, env).await,
        Command::Del => {
            let workload = Workload::new(conf, env);
            ipam.release_by_handle(&workload.handle)
                .await
                .map_err(|e| ipam_error(&e, version))?;
            Ok(CniResult::default())
        }
        Command::Check => check(ipam, conf, env).await.map(|()| CniResult::default()),
        Command::Gc => gc(ipam, conf).await.map(|_| CniResult::default()),
        Command::Version | Command::Status => Ok(CniResult::default()),
    }
}

/// STATUS: etcd reachable → `Ok`, else code 50.
pub async fn status(conf: &NetConf) -> Result<(), CniError> {
    let config = conf.etcd()?;
    match Store::connect(&config).await {
        Ok(_) => Ok(()),
        Err(e) => Err(CniError::new(
            code::NOT_AVAILABLE,
            "the datastore is unreachable: cannot service ADD",
        )
        .with_details(e.to_string())
        .in_version(&conf.cni_version)),
    }
}

/// The labels of the stored Node resource (none when it is absent or not a Node).
fn node_labels(node: Option<&KeyValue>) -> BTreeMap<String, String> {
    let Some(kv) = node else {
        return BTreeMap::new();
    };
    match Resource::from_json(&String::from_utf8_lossy(&kv.value)) {
        Ok(Resource::Node(n)) => n.metadata.labels,
        _ => BTreeMap::new(),
    }
}

async fn add(ipam: &Ipam, conf: &NetConf, env: &Environment) -> Result<CniResult, CniError> {
    let version = &conf.cni_version;
    let workload = Workload::new(conf, env);
    let handle_key = ipam_handle_key(&workload.handle);
    let node_key = resource_key(Kind::Node.plural(), None, &workload.node);
    let snapshot = ipam
        .snapshot(&workload.node, &[handle_key, node_key])
        .await
        .map_err(|e| ipam_error(&e, version))?;
    let (handle, node) = match snapshot.extra.as_slice() {
        [handle, node] => (handle.as_ref(), node.as_ref()),
        _ => (None, None),
    };
    // A repeated ADD for the same handle returns what it already holds.
    let held = ipam
        .ips_of_handle(&workload.handle, handle)
        .await
        .map_err(|e| ipam_error(&e, version))?;
    let ips = if held.is_empty() {
        let labels = node_labels(node);
        let filter = move |pool: &IpPool| match pool.spec.node_selector.as_deref() {
            None | Some("") => true,
            Some(text) => Selector::parse(text).is_ok_and(|s| s.matches(&labels)),
        };
        let (v4, v6) = conf.families();
        let mut attrs = BTreeMap::from([
            (ATTR_NODE.to_string(), workload.node.clone()),
            (ATTR_NAMESPACE.to_string(), workload.namespace.clone()),
            (ATTR_ENDPOINT.to_string(), workload.endpoint_name.clone()),
            (ATTR_CONTAINER_ID.to_string(), workload.container_id.clone()),
        ]);
        if let Some(pod) = &workload.pod {
            attrs.insert(ATTR_POD.to_string(), pod.clone());
        }
        let args = AssignArgs {
            node: workload.node.clone(),
            handle: workload.handle.clone(),
            attrs,
            num_v4: usize::from(v4),
            num_v6: usize::from(v6),
            pools: conf.pools(),
            pool_filter: Some(Arc::new(filter)),
            settings: None,
        };
        ipam.auto_assign_from(&args, AllowedUse::Workload, &snapshot)
            .await
            .map_err(|e| ipam_error(&e, version))?
            .ips()
    } else {
        held
    };
    Ok(CniResult {
        cni_version: version.clone(),
        ips: ips.iter().map(|ip| ip_config(*ip, None)).collect(),
        routes: default_routes(&ips),
        ..CniResult::default()
    })
}

async fn check(ipam: &Ipam, conf: &NetConf, env: &Environment) -> Result<(), CniError> {
    let version = &conf.cni_version;
    let workload = Workload::new(conf, env);
    let held: BTreeSet<IpAddr> = ipam
        .ips_by_handle(&workload.handle)
        .await
        .map_err(|e| ipam_error(&e, version))?
        .into_iter()
        .collect();
    if held.is_empty() {
        return Err(CniError::new(
            code::CHECK_FAILED,
            format!("handle {} holds no addresses", workload.handle),
        )
        .in_version(version));
    }
    if let Some(prev) = &conf.prev_result {
        for ip in &prev.ips {
            let addr = ip.address.split('/').next().unwrap_or_default();
            let held_it = addr.parse::<IpAddr>().is_ok_and(|a| held.contains(&a));
            if !held_it {
                return Err(CniError::new(
                    code::CHECK_FAILED,
                    format!(
                        "{} is not allocated to handle {}",
                        ip.address, workload.handle
                    ),
                )
                .in_version(version));
            }
        }
    }
    Ok(())
}

/// GC: releases this node's addresses on this network whose container is not in
/// `cni.dev/valid-attachments`. Returns the handles released.
pub async fn gc(ipam: &Ipam, conf: &NetConf) -> Result<Vec<String>, CniError> {
    let version = &conf.cni_version;
    let valid: BTreeSet<String> = conf
        .valid_attachments
        .iter()
        .flatten()
        .map(|a| a.container_id.clone())
        .collect();
    let node = conf.node();
    let prefix = format!("{}.", conf.name);
    let mut stale = BTreeSet::new();
    for block in ipam.blocks().await.map_err(|e| ipam_error(&e, version))? {
        for a in block.allocated() {
            let Some(handle) = a.attribute.handle_id else {
                continue;
            };
            let Some(container) = handle.strip_prefix(&prefix) else {
                continue;
            };
            if a.attribute.attrs.get(ATTR_NODE) == Some(&node) && !valid.contains(container) {
                stale.insert(handle.clone());
            }
        }
    }
    for handle in &stale {
        ipam.release_by_handle(handle)
            .await
            .map_err(|e| ipam_error(&e, version))?;
    }
    Ok(stale.into_iter().collect())
}
