//! The running reflector: a `bgp` speaker with a cluster id, and the etcd syncer that keeps
//! its peers equal to [`ClientSet::desired`].
//!
//! The speaker starts (and listens) at once with no peers; peers are added when the resource
//! syncer is first in sync and follow every Node change after that. Nothing is removed
//! because etcd went away (the syncer never reports spurious deletes). Routes are installed
//! into the kernel only with `install_routes`; otherwise a counting FIB takes them.

use std::collections::BTreeMap;
use std::net::IpAddr;

use bgp::speaker::cluster::{AgentTask, Launch};
use bgp::speaker::netns::{FibChoice, NetnsSpeaker, start_speaker};
use bgp::speaker::{CountingFib, PeerConfig, Shutdown, SpeakerConfig, SpeakerError, SpeakerHandle};
use datastore::etcd::Store;
use datastore::keys::RESOURCES;
use datastore::syncer::{SyncEvent, SyncStatus, Syncer, resource_decoder};
use tokio::sync::{oneshot, watch};

use crate::clients::{ClientPolicy, ClientSet};
use crate::config::Config;

/// Errors starting a reflector.
#[derive(Debug, thiserror::Error)]
pub enum ReflectorError {
    /// The speaker could not start (listen address in use, namespace missing, netlink).
    #[error("starting the BGP speaker: {0}")]
    Speaker(#[from] SpeakerError),
}

/// The speaker configuration of a reflector.
pub fn speaker_config(config: &Config) -> SpeakerConfig {
    let mut speaker = SpeakerConfig::new(config.router_id, config.asn);
    speaker.cluster_id = Some(config.cluster_id);
    speaker.listen_port = Some(config.listen.port());
    match config.listen.ip() {
        IpAddr::V4(v4) => speaker.node_ipv4 = Some(v4),
        IpAddr::V6(v6) => {
            speaker.node_ipv4 = None;
            speaker.node_ipv6 = Some(v6);
        }
    }
    speaker
}

/// Which peers a reflector with `config` wants.
pub fn client_policy(config: &Config) -> ClientPolicy {
    ClientPolicy {
        asn: config.asn,
        cluster_id: config.cluster_id,
        own: vec![config.listen.ip(), IpAddr::V4(config.router_id)],
        selector: config.client_selector.clone(),
        passive: !config.active,
    }
}

/// A running reflector.
#[derive(Debug)]
pub struct Reflector {
    handle: SpeakerHandle,
    synced: watch::Receiver<usize>,
    task: AgentTask,
    _thread: Option<NetnsSpeaker>,
}

impl Reflector {
    /// Starts the speaker (`launch`: in this process's namespace, or on a thread in another
    /// one) and the etcd syncer, on the current tokio runtime.
    pub async fn start(
        config: &Config,
        store: Store,
        launch: Launch,
    ) -> Result<Reflector, ReflectorError> {
        let speaker = speaker_config(config);
        let (netns, fib) = match &launch {
            Launch::Kernel => (None, FibChoice::Counting(CountingFib::new())),
            Launch::Netns(path, fib) => (Some(path.as_path()), fib.clone()),
        };
        let fib = if config.install_routes {
            FibChoice::Kernel
        } else {
            fib
        };
        let (handle, thread) = start_speaker(netns, speaker, fib).await?;
        let (synced_tx, synced) = watch::channel(0);
        let task = AgentTask::spawn(|stop| {
            follow(
                store,
                client_policy(config),
                handle.clone(),
                synced_tx,
                stop,
            )
        });
        tracing::info!(router_id = %config.router_id, cluster_id = %config.cluster_id, listen = %config.listen, asn = config.asn, "route reflector started");
        Ok(Reflector {
            handle,
            synced,
            task,
            _thread: thread,
        })
    }

    /// The speaker's handle (status, routes).
    pub fn handle(&self) -> &SpeakerHandle {
        &self.handle
    }

    /// How many peers the reflector has configured from etcd (0 until the first sync).
    pub fn configured_peers(&self) -> usize {
        *self.synced.borrow()
    }

    /// Stops the syncer and the speaker: `Stop` sends Cease to every client, `Restart` just
    /// drops the sessions (clients with graceful restart keep the routes).
    pub async fn stop(self, how: Shutdown) {
        self.task.stop(how).await;
    }
}

async fn follow(
    store: Store,
    policy: ClientPolicy,
    handle: SpeakerHandle,
    synced: watch::Sender<usize>,
    mut stop: oneshot::Receiver<Shutdown>,
) {
    let decode = resource_decoder(&["nodes", "bgpconfigurations"]);
    let mut syncer = Syncer::spawn(store, RESOURCES, decode);
    let mut set = ClientSet::default();
    let mut in_sync = false;
    let mut current: BTreeMap<IpAddr, PeerConfig> = BTreeMap::new();
    loop {
        tokio::select! {
            how = &mut stop => {
                let _ = handle.shutdown(how.unwrap_or(Shutdown::Stop)).await;
                return;
            }
            event = syncer.next() => match event {
                Some(SyncEvent::Update(u)) => set.resource(&u.key, u.value.flatten()),
                Some(SyncEvent::Status(s)) => in_sync |= s == SyncStatus::InSync,
                Some(SyncEvent::Invalid { key, error, .. }) => {
                    tracing::warn!(%key, %error, "undecodable resource ignored");
                }
                None => {
                    let _ = handle.shutdown(Shutdown::Stop).await;
                    return;
                }
            },
        }
        if !in_sync {
            continue;
        }
        let desired = set.desired(&policy);
        if desired == current {
            continue;
        }
        for (address, peer) in &desired {
            if current.get(address) != Some(peer) {
                tracing::info!(peer = %address, client = peer.route_reflector_client, "peer from etcd");
                if handle.add_peer(peer.clone()).await.is_err() {
                    return;
                }
            }
        }
        for address in current.keys() {
            if !desired.contains_key(address) {
                tracing::info!(peer = %address, "peer gone from etcd");
                if handle.remove_peer(*address).await.is_err() {
                    return;
                }
            }
        }
        let _ = synced.send(desired.len());
        current = desired;
    }
}
