//! IPAM against a real etcd: block claims with affinity, borrowing, strict affinity, per-host
//! limits, exhaustion without leaks, release of empty blocks, and 4 nodes allocating 2,000
//! addresses concurrently with no duplicates and a clean `ipam::check`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use datastore::etcd::{EtcdConfig, Store};
use datastore::ipam::{self, AffinityState, AssignArgs, Finding, Ipam, IpamError, IpamSettings};
use datastore::keys::{ipam_affinity_key, ipam_block_key, resource_key};
use datastore::resource::node::NodeSpec;
use datastore::resource::{IpPool, Kind, Node, ObjectMeta, Resource};
use ipnetwork::IpNetwork;
use test_support::etcd::Etcd;

async fn setup(pools: &[(&str, &str, Option<u8>)]) -> (Etcd, Ipam) {
    let etcd = Etcd::start().expect("etcd");
    let store = Store::connect(&EtcdConfig::new([etcd.endpoint()]))
        .await
        .expect("connect");
    for (name, cidr, block_size) in pools {
        let mut pool = IpPool::new(*name, *cidr);
        pool.spec.block_size = *block_size;
        store
            .create(
                &resource_key(Kind::IpPool.plural(), None, name),
                Resource::IpPool(pool).to_json().into_bytes(),
            )
            .await
            .expect("pool");
    }
    (etcd, Ipam::new(store))
}

async fn add_node(ipam: &Ipam, name: &str) {
    let node = Node {
        metadata: ObjectMeta::named(name),
        spec: NodeSpec::default(),
        status: None,
    };
    ipam.store()
        .create(
            &resource_key(Kind::Node.plural(), None, name),
            Resource::Node(node).to_json().into_bytes(),
        )
        .await
        .expect("node");
}

fn args(node: &str, handle: &str, n: usize) -> AssignArgs {
    AssignArgs {
        node: node.to_string(),
        handle: handle.to_string(),
        num_v4: n,
        ..AssignArgs::default()
    }
}

fn net(s: &str) -> IpNetwork {
    s.parse().expect("cidr")
}

#[tokio::test]
async fn first_allocation_claims_an_affine_block_and_release_frees_it() {
    let (_etcd, ipam) = setup(&[("pool-a", "10.70.0.0/24", None)]).await;
    add_node(&ipam, "node-1").await;
    let assigned = ipam
        .auto_assign(&args("node-1", "net.c1", 2))
        .await
        .expect("assign");
    let ips = assigned.ips();
    assert_eq!(ips.len(), 2);
    assert_eq!(assigned.v4[0].1.metadata.name, "pool-a");
    let blocks = ipam.blocks().await.expect("blocks");
    assert_eq!(blocks.len(), 1);
    let block = &blocks[0];
    assert_eq!(block.cidr.prefix(), 26);
    assert!(block.is_affine_to("node-1"));
    assert!(ips.iter().all(|ip| block.cidr.contains(*ip)));
    assert_eq!(
        ipam.affinities().await.expect("affinities"),
        [("node-1".to_string(), block.cidr, AffinityState::Confirmed)]
    );
    assert_eq!(ipam.ips_by_handle("net.c1").await.expect("by handle"), ips);
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.is_clean(), "{report}");

    // A second allocation on the same node uses the same block.
    let more = ipam
        .auto_assign(&args("node-1", "net.c2", 1))
        .await
        .expect("assign");
    assert!(block.cidr.contains(more.ips()[0]));
    assert_eq!(ipam.blocks().await.expect("blocks").len(), 1);

    // Releasing everything empties the block: block and affinity go, handles go.
    let freed = ipam.release_by_handle("net.c1").await.expect("release");
    assert_eq!(freed, ips);
    assert_eq!(
        ipam.release_by_handle("net.c1").await.expect("again"),
        Vec::<IpAddr>::new(),
        "release by handle is idempotent"
    );
    assert_eq!(
        ipam.release_ips(&more.ips()).await.expect("release ip"),
        more.ips()
    );
    assert!(ipam.blocks().await.expect("blocks").is_empty());
    assert!(ipam.affinities().await.expect("affinities").is_empty());
    assert_eq!(
        ipam.ips_by_handle("net.c2").await.expect("h"),
        Vec::<IpAddr>::new()
    );
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.handles, 0);
}

#[tokio::test]
async fn full_node_borrows_unless_strict_affinity() {
    // One /26 pool with /26 blocks: a single block.
    let (_etcd, ipam) = setup(&[("tiny", "10.71.0.0/26", None)]).await;
    let a = ipam
        .auto_assign(&args("node-a", "net.a", 60))
        .await
        .expect("node-a fills most of the only block");
    let block = net("10.71.0.0/26");
    assert!(a.ips().iter().all(|ip| block.contains(*ip)));

    let strict = AssignArgs {
        settings: Some(IpamSettings {
            strict_affinity: true,
            ..IpamSettings::default()
        }),
        ..args("node-b", "net.b-strict", 1)
    };
    let err = ipam
        .auto_assign(&strict)
        .await
        .expect_err("strict: no borrowing");
    assert!(matches!(err, IpamError::Exhausted { .. }), "{err}");
    assert!(err.is_try_again());

    let borrowed = ipam
        .auto_assign(&args("node-b", "net.b", 4))
        .await
        .expect("node-b borrows");
    assert!(borrowed.ips().iter().all(|ip| block.contains(*ip)));
    let blocks = ipam.blocks().await.expect("blocks");
    assert_eq!(blocks.len(), 1);
    assert!(
        blocks[0].is_affine_to("node-a"),
        "borrowing does not move the affinity"
    );
    assert_eq!(blocks[0].free(), 0);

    let err = ipam
        .auto_assign(&args("node-b", "net.b2", 1))
        .await
        .expect_err("pool full");
    assert!(
        err.to_string().contains("exhausted"),
        "message says what happened: {err}"
    );
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.inconsistencies().is_empty(), "{report}");
}

#[tokio::test]
async fn exhaustion_is_all_or_nothing_and_leaks_nothing() {
    let (_etcd, ipam) = setup(&[("small", "10.72.0.0/28", Some(28))]).await;
    ipam.auto_assign(&args("n1", "net.x", 10))
        .await
        .expect("10 of 16");
    let err = ipam
        .auto_assign(&args("n1", "net.y", 7))
        .await
        .expect_err("only 6 left");
    match &err {
        IpamError::Exhausted {
            requested,
            assigned,
            ..
        } => assert_eq!((*requested, *assigned), (7, 6)),
        other => panic!("expected exhaustion, got {other}"),
    }
    assert_eq!(
        ipam.ips_by_handle("net.y").await.expect("h"),
        Vec::<IpAddr>::new()
    );
    let blocks = ipam.blocks().await.expect("blocks");
    assert_eq!(
        blocks[0].in_use(),
        10,
        "the 6 taken on the way were given back"
    );
    let report = ipam::check(ipam.store()).await.expect("check");
    assert_eq!(report.handles, 1, "{report}");
    assert!(report.inconsistencies().is_empty(), "{report}");

    let err = ipam
        .auto_assign(&AssignArgs {
            num_v6: 1,
            ..args("n1", "net.z", 0)
        })
        .await
        .expect_err("no IPv6 pool");
    assert!(matches!(err, IpamError::NoPools { .. }), "{err}");
}

#[tokio::test]
async fn max_blocks_per_host_caps_claims_and_disabled_pools_are_skipped() {
    let (_etcd, ipam) = setup(&[
        ("off", "10.73.0.0/24", None),
        ("on", "10.74.0.0/24", Some(28)),
    ])
    .await;
    // Disable the first pool.
    let key = resource_key(Kind::IpPool.plural(), None, "off");
    let kv = ipam.store().get(&key).await.expect("get").expect("pool");
    let mut pool = IpPool::new("off", "10.73.0.0/24");
    pool.spec.disabled = Some(true);
    ipam.store()
        .update(
            &key,
            Resource::IpPool(pool).to_json().into_bytes(),
            kv.mod_revision,
        )
        .await
        .expect("disable");

    let limited = AssignArgs {
        settings: Some(IpamSettings {
            max_blocks_per_host: Some(2),
            strict_affinity: true,
            ..IpamSettings::default()
        }),
        ..args("n1", "net.a", 32)
    };
    let got = ipam.auto_assign(&limited).await.expect("two /28 blocks");
    assert!(got.ips().iter().all(|ip| net("10.74.0.0/24").contains(*ip)));
    let err = ipam
        .auto_assign(&AssignArgs {
            handle: "net.b".into(),
            num_v4: 1,
            ..limited.clone()
        })
        .await
        .expect_err("a third block is over the limit");
    assert!(matches!(err, IpamError::Exhausted { .. }), "{err}");
    assert_eq!(ipam.blocks().await.expect("blocks").len(), 2);
}

#[tokio::test]
async fn check_reports_leaks_orphans_and_stale_claims() {
    let (_etcd, ipam) = setup(&[("p", "10.75.0.0/24", None)]).await;
    add_node(&ipam, "alive").await;
    let mut pod = args("alive", "net.pod", 1);
    pod.attrs = BTreeMap::from([
        (ipam::ATTR_NAMESPACE.to_string(), "default".to_string()),
        (
            ipam::ATTR_ENDPOINT.to_string(),
            "alive-k8s-web-eth0".to_string(),
        ),
    ]);
    let leaked = ipam.auto_assign(&pod).await.expect("assign").ips()[0];
    ipam.auto_assign(&args("gone", "net.gone", 1))
        .await
        .expect("assign");
    // A claim that crashed after phase 1.
    let stale = net("10.75.0.192/26");
    ipam.store()
        .create(
            &ipam_affinity_key("alive", &stale),
            br#"{"state":"pending"}"#.to_vec(),
        )
        .await
        .expect("pending");

    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.inconsistencies().is_empty(), "{report}");
    let kinds: Vec<&Finding> = report.findings.iter().collect();
    assert_eq!(kinds.len(), 3, "{report}");
    assert!(report.findings.iter().any(|f| matches!(f,
        Finding::LeakedAddress { ip, endpoint, .. } if *ip == leaked && endpoint == "default/alive-k8s-web-eth0")));
    assert!(report.findings.iter().any(|f| matches!(f,
        Finding::OrphanedBlock { node, in_use: 1, .. } if node == "gone")));
    assert!(report.findings.iter().any(|f| matches!(f,
        Finding::StalePendingAffinity { block, .. } if *block == stale)));

    // Corrupt a block's affinity bookkeeping: check calls it an inconsistency.
    let block = ipam
        .blocks()
        .await
        .expect("blocks")
        .into_iter()
        .find(|b| b.is_affine_to("alive"))
        .expect("alive's block");
    let kv = ipam
        .store()
        .get(&ipam_affinity_key("alive", &block.cidr))
        .await
        .expect("get")
        .expect("affinity");
    ipam.store()
        .delete(&kv.key, kv.mod_revision)
        .await
        .expect("delete");
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(
        report.inconsistencies().iter().any(|f| matches!(f,
            Finding::MissingAffinity { node, .. } if node == "alive")),
        "{report}"
    );
    assert!(
        ipam.store()
            .get(&ipam_block_key(&block.cidr))
            .await
            .expect("get")
            .is_some()
    );
}

/// Affinities an older version left `pending` (its two-phase claim stopped between writes)
/// are settled by the next assignment on that node, as that claim would have ended; nothing
/// writes `pending` any more.
#[tokio::test]
async fn affinities_left_pending_by_older_versions_are_settled() {
    // One block per pool, so a node's block search starts at that block.
    let (_etcd, ipam) = setup(&[
        ("p1", "10.77.1.0/26", None),
        ("p2", "10.77.2.0/26", None),
        ("p3", "10.77.3.0/26", None),
    ])
    .await;
    for node in ["node-1", "node-2", "node-3"] {
        add_node(&ipam, node).await;
    }
    let pending = br#"{"state":"pending"}"#.to_vec();
    let in_pool = |node: &str, handle: &str, pool: &str| AssignArgs {
        pools: vec![net(pool)],
        ..args(node, handle, 1)
    };
    let store = ipam.store();

    // Stopped after the pending affinity: the node's next claim of that block completes it.
    let b1 = net("10.77.1.0/26");
    store
        .create(&ipam_affinity_key("node-1", &b1), pending.clone())
        .await
        .expect("pending 1");
    let got = ipam
        .auto_assign(&in_pool("node-1", "net.a", "10.77.1.0/26"))
        .await
        .expect("assign 1");
    assert!(b1.contains(got.ips()[0]));

    // Stopped after the block, before the confirm: the next assignment confirms and uses it.
    let b2 = net("10.77.2.0/26");
    store
        .create(
            &ipam_block_key(&b2),
            ipam::AllocationBlock::new(b2, Some("node-2"))
                .expect("block")
                .to_json(),
        )
        .await
        .expect("block 2");
    store
        .create(&ipam_affinity_key("node-2", &b2), pending.clone())
        .await
        .expect("pending 2");
    let got = ipam
        .auto_assign(&in_pool("node-2", "net.b", "10.77.2.0/26"))
        .await
        .expect("assign 2");
    assert!(b2.contains(got.ips()[0]));

    // Lost the race but stopped before deleting its pending affinity: the next assignment
    // deletes it (and here borrows from the winner's block, the pool's only one).
    let b3 = net("10.77.3.0/26");
    ipam.auto_assign(&in_pool("node-2", "net.c", "10.77.3.0/26"))
        .await
        .expect("node-2 claims b3");
    store
        .create(&ipam_affinity_key("node-3", &b3), pending)
        .await
        .expect("pending 3");
    let got = ipam
        .auto_assign(&in_pool("node-3", "net.d", "10.77.3.0/26"))
        .await
        .expect("assign 3");
    assert!(b3.contains(got.ips()[0]));

    let mut affinities = ipam.affinities().await.expect("affinities");
    affinities.sort_by_key(|(node, block, _)| (node.clone(), *block));
    assert_eq!(
        affinities,
        [
            ("node-1".to_string(), b1, AffinityState::Confirmed),
            ("node-2".to_string(), b2, AffinityState::Confirmed),
            ("node-2".to_string(), b3, AffinityState::Confirmed),
        ]
    );
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.is_clean(), "{report}");
}

/// 4 nodes × 500 allocations (5 concurrent pods per node) from a /21 (2,048 addresses), then
/// every node releases half and allocates 250 again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn four_nodes_allocate_two_thousand_addresses_without_duplicates() {
    let (_etcd, ipam) = setup(&[("cluster", "10.76.0.0/21", None)]).await;
    const NODES: usize = 4;
    const PER_NODE: usize = 500;
    const WORKERS: usize = 5;
    for n in 0..NODES {
        add_node(&ipam, &format!("node-{n}")).await;
    }

    async fn allocate(ipam: &Ipam, round: &str, per_node: usize) -> BTreeMap<String, IpAddr> {
        let mut tasks = tokio::task::JoinSet::new();
        for n in 0..NODES {
            for w in 0..WORKERS {
                let ipam = ipam.clone();
                let round = round.to_string();
                tasks.spawn(async move {
                    let node = format!("node-{n}");
                    let mut got = Vec::new();
                    for i in 0..per_node / WORKERS {
                        let handle = format!("net.{round}-{n}-{w}-{i}");
                        let assigned = ipam
                            .auto_assign(&args(&node, &handle, 1))
                            .await
                            .unwrap_or_else(|e| panic!("{handle}: {e}"));
                        got.push((handle, assigned.ips()[0]));
                    }
                    got
                });
            }
        }
        let mut all = BTreeMap::new();
        while let Some(done) = tasks.join_next().await {
            all.extend(done.expect("task"));
        }
        all
    }

    fn assert_unique(held: &BTreeMap<String, IpAddr>) {
        let unique: BTreeSet<IpAddr> = held.values().copied().collect();
        assert_eq!(unique.len(), held.len(), "an address was handed out twice");
    }

    let mut held = allocate(&ipam, "r1", PER_NODE).await;
    assert_eq!(held.len(), NODES * PER_NODE);
    assert_unique(&held);
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.allocated, NODES * PER_NODE);

    // Release every other handle, concurrently.
    let to_release: Vec<String> = held.keys().step_by(2).cloned().collect();
    let mut tasks = tokio::task::JoinSet::new();
    for chunk in to_release.chunks(to_release.len() / (NODES * WORKERS) + 1) {
        let ipam = ipam.clone();
        let chunk = chunk.to_vec();
        tasks.spawn(async move {
            for handle in chunk {
                let freed = ipam.release_by_handle(&handle).await.expect("release");
                assert_eq!(freed.len(), 1, "{handle}");
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("task");
    }
    for handle in &to_release {
        held.remove(handle);
    }
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.allocated, held.len());

    held.extend(allocate(&ipam, "r2", PER_NODE / 2).await);
    assert_eq!(held.len(), NODES * PER_NODE);
    assert_unique(&held);
    for (handle, ip) in held.iter().step_by(97) {
        assert_eq!(ipam.ips_by_handle(handle).await.expect("h"), [*ip]);
    }
    let report = ipam::check(ipam.store()).await.expect("check");
    assert!(report.is_clean(), "{report}");
    assert_eq!(report.allocated, NODES * PER_NODE);
    assert_eq!(report.handles, NODES * PER_NODE);
    // Every address is in the pool and every block is affine to one of the four nodes.
    let pool = net("10.76.0.0/21");
    assert!(held.values().all(|ip| pool.contains(*ip)));
    for block in ipam.blocks().await.expect("blocks") {
        let node = block.affine_node().expect("affine");
        assert!(node.starts_with("node-"), "{node}");
    }
}
