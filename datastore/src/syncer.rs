//! The syncer: list + watch of one etcd prefix, turned into Felix's syncer contract.
//!
//! Consumers receive [`SyncEvent`]s: `Update { key, value: Option<T>, revision }` (`None` =
//! absent) and [`SyncStatus`] changes. The contract (calico.md §1.1, design.md §4):
//!
//! - Start of day: `WaitForDatastore` → `ResyncInProgress` → one update per existing key →
//!   `InSync`. Consumers must not delete anything they own before the first `InSync`.
//! - Updates are eventually consistent per key; the last one for a key is the truth.
//! - **No spurious deletes.** When etcd is unreachable the syncer reports `WaitForDatastore` and
//!   keeps trying with backoff; it never reports keys as gone for that reason. When it gets
//!   back it re-lists at a current revision and reports only the difference against what it
//!   reported before (changed keys, new keys, keys really deleted meanwhile), then `InSync`
//!   again, and watches from the listing's revision. Re-listing rather than resuming the old
//!   watch is deliberate: it cannot be defeated by a compaction during the outage, and etcd
//!   3.4 answers a watch progress request before a resumed watcher has caught up, so a resumed
//!   watch has no reliable "caught up" signal to report `InSync` on.
//! - A live watcher that falls behind a compaction is cancelled by etcd with
//!   `compact_revision` (a message, not an error; crates.md §3); the syncer re-lists the same way.
//! - A value that fails to decode is reported as [`SyncEvent::Invalid`] with its key and then
//!   delivered as absent. The syncer never panics on content.
//!
//! The diffing core, [`Snapshot`], is pure and unit-tested; [`Syncer`] is the tokio driver.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, WatchOptions};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::etcd::{KeyValue, Listing, Store};
use crate::keys::parse_resource_key;
use crate::resource::Resource;

/// Capacity of the channel to the consumer; a slow consumer slows the syncer, not memory.
const CHANNEL_CAPACITY: usize = 1024;
/// First and longest pause between reconnection attempts.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// Where the syncer is, as seen by consumers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncStatus {
    /// Not connected to etcd (at start, or after losing it). Consumers keep their state.
    WaitForDatastore,
    /// Listing the prefix; updates follow.
    ResyncInProgress,
    /// Every key that existed at the listing revision has been reported.
    InSync,
}

/// One key's new state.
#[derive(Debug, Clone, PartialEq)]
pub struct Update<T> {
    /// The etcd key.
    pub key: String,
    /// The decoded value, or `None` when the key is absent (deleted, or undecodable).
    pub value: Option<T>,
    /// The etcd revision of this state (the key's mod revision, or the deletion's revision).
    pub revision: i64,
}

/// What the syncer tells its consumer.
#[derive(Debug, Clone, PartialEq)]
pub enum SyncEvent<T> {
    /// The syncer's status changed.
    Status(SyncStatus),
    /// A key changed.
    Update(Update<T>),
    /// The value stored under `key` could not be decoded; an `Update` with `None` follows.
    Invalid {
        /// The key.
        key: String,
        /// The revision of the bad value.
        revision: i64,
        /// Why it could not be decoded.
        error: String,
    },
}

/// A raw change found by [`Snapshot`], before decoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawChange {
    /// The key.
    pub key: String,
    /// The stored bytes, or `None` if the key is gone.
    pub value: Option<Vec<u8>>,
    /// Revision of the change.
    pub revision: i64,
}

/// What the consumer has been told so far: key → mod revision. Pure; no I/O.
#[derive(Debug, Default, Clone)]
pub struct Snapshot {
    reported: BTreeMap<String, i64>,
}

impl Snapshot {
    /// Number of keys currently reported as present.
    pub fn len(&self) -> usize {
        self.reported.len()
    }

    /// True if no key is reported as present.
    pub fn is_empty(&self) -> bool {
        self.reported.is_empty()
    }

    /// Reconciles with a full listing: changes for new or modified keys, and deletions for
    /// reported keys the listing no longer has. Unchanged keys produce nothing.
    pub fn resync(&mut self, listing: &Listing) -> Vec<RawChange> {
        let mut changes = Vec::new();
        let mut seen = BTreeMap::new();
        for kv in &listing.kvs {
            seen.insert(kv.key.clone(), kv.mod_revision);
            if self.reported.get(&kv.key) != Some(&kv.mod_revision) {
                changes.push(RawChange {
                    key: kv.key.clone(),
                    value: Some(kv.value.clone()),
                    revision: kv.mod_revision,
                });
            }
        }
        for key in self.reported.keys() {
            if !seen.contains_key(key) {
                changes.push(RawChange {
                    key: key.clone(),
                    value: None,
                    revision: listing.revision,
                });
            }
        }
        self.reported = seen;
        changes
    }

    /// Applies one watch event; `None` if it is older than what was already reported (a replay
    /// after a re-watch) or deletes a key that was never reported.
    pub fn apply_put(&mut self, kv: &KeyValue) -> Option<RawChange> {
        if self
            .reported
            .get(&kv.key)
            .is_some_and(|&rev| rev >= kv.mod_revision)
        {
            return None;
        }
        self.reported.insert(kv.key.clone(), kv.mod_revision);
        Some(RawChange {
            key: kv.key.clone(),
            value: Some(kv.value.clone()),
            revision: kv.mod_revision,
        })
    }

    /// Applies one deletion at `revision`.
    pub fn apply_delete(&mut self, key: &str, revision: i64) -> Option<RawChange> {
        match self.reported.get(key) {
            Some(&rev) if rev < revision => {
                self.reported.remove(key);
                Some(RawChange {
                    key: key.to_string(),
                    value: None,
                    revision,
                })
            }
            _ => None,
        }
    }
}

/// Decodes a stored value; the error text is reported with the key.
pub type Decoder<T> = Arc<dyn Fn(&str, &[u8]) -> Result<T, String> + Send + Sync>;

/// A decoder for the resources prefix ([`crate::keys::RESOURCES`]) that decodes only the kinds
/// whose plural (`nodes`, `bgppeers`, …) is in `plurals`; every other key is `None`, not
/// decoded at all.
pub fn resource_decoder(plurals: &'static [&'static str]) -> Decoder<Option<Resource>> {
    Arc::new(move |key: &str, bytes: &[u8]| {
        let relevant =
            parse_resource_key(key).is_some_and(|k| plurals.contains(&k.plural.as_str()));
        if !relevant {
            return Ok(None);
        }
        let text = std::str::from_utf8(bytes).map_err(|e| e.to_string())?;
        Resource::from_json(text)
            .map(Some)
            .map_err(|e| e.to_string())
    })
}

/// A running syncer. Dropping it stops the background task.
#[derive(Debug)]
pub struct Syncer<T> {
    events: mpsc::Receiver<SyncEvent<T>>,
    task: JoinHandle<()>,
}

impl<T> Drop for Syncer<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl<T: Send + 'static> Syncer<T> {
    /// Starts syncing every key under `prefix`, decoding values with `decode`.
    pub fn spawn(store: Store, prefix: impl Into<String>, decode: Decoder<T>) -> Self {
        let (tx, events) = mpsc::channel(CHANNEL_CAPACITY);
        let driver = Driver {
            store,
            prefix: prefix.into(),
            decode,
            tx,
            snapshot: Snapshot::default(),
            status: None,
        };
        let task = tokio::spawn(driver.run());
        Self { events, task }
    }

    /// The next event; `None` only if the background task has stopped.
    pub async fn next(&mut self) -> Option<SyncEvent<T>> {
        self.events.recv().await
    }
}

impl Syncer<Vec<u8>> {
    /// A syncer that delivers the stored bytes as they are.
    pub fn spawn_raw(store: Store, prefix: impl Into<String>) -> Self {
        Self::spawn(store, prefix, Arc::new(|_, value| Ok(value.to_vec())))
    }
}

/// Why the consumer can no longer be served.
struct ConsumerGone;

/// How a watch ended.
enum WatchEnd {
    /// The connection failed; back off, then re-list.
    Disconnected(String),
    /// The watcher fell behind a compaction; re-list at once.
    Compacted(i64),
}

struct Driver<T> {
    store: Store,
    prefix: String,
    decode: Decoder<T>,
    tx: mpsc::Sender<SyncEvent<T>>,
    snapshot: Snapshot,
    status: Option<SyncStatus>,
}

impl<T: Send + 'static> Driver<T> {
    async fn run(mut self) {
        let _ = self.run_until_consumer_gone().await;
    }

    async fn run_until_consumer_gone(&mut self) -> Result<(), ConsumerGone> {
        let mut backoff = BACKOFF_MIN;
        self.set_status(SyncStatus::WaitForDatastore).await?;
        loop {
            let listing = match self.store.list(&self.prefix).await {
                Ok(listing) => listing,
                Err(error) => {
                    warn!(prefix = %self.prefix, %error, ?backoff, "etcd list failed; retrying");
                    self.set_status(SyncStatus::WaitForDatastore).await?;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    continue;
                }
            };
            backoff = BACKOFF_MIN;
            self.set_status(SyncStatus::ResyncInProgress).await?;
            for change in self.snapshot.resync(&listing) {
                self.deliver(change).await?;
            }
            self.set_status(SyncStatus::InSync).await?;
            info!(prefix = %self.prefix, revision = listing.revision, keys = self.snapshot.len(), "in sync");
            match self.watch(listing.revision + 1).await? {
                WatchEnd::Compacted(compact_revision) => {
                    warn!(prefix = %self.prefix, compact_revision, "watch fell behind a compaction; re-listing");
                }
                WatchEnd::Disconnected(error) => {
                    warn!(prefix = %self.prefix, %error, "watch lost; re-listing after backoff");
                    self.set_status(SyncStatus::WaitForDatastore).await?;
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }

    /// Watches from `start_revision` until the watch ends.
    async fn watch(&mut self, start_revision: i64) -> Result<WatchEnd, ConsumerGone> {
        let options = WatchOptions::new()
            .with_prefix()
            .with_start_revision(start_revision);
        let mut client = self.store.client();
        let mut stream = match client.watch(self.prefix.as_str(), Some(options)).await {
            Ok(stream) => stream,
            Err(e) => return Ok(WatchEnd::Disconnected(e.to_string())),
        };
        loop {
            let response = match stream.message().await {
                Ok(Some(response)) => response,
                Ok(None) => return Ok(WatchEnd::Disconnected("watch stream closed".into())),
                Err(e) => return Ok(WatchEnd::Disconnected(e.to_string())),
            };
            if response.canceled() {
                if response.compact_revision() > 0 {
                    return Ok(WatchEnd::Compacted(response.compact_revision()));
                }
                return Ok(WatchEnd::Disconnected(format!(
                    "watch canceled: {}",
                    response.cancel_reason()
                )));
            }
            for event in response.events() {
                let Some(kv) = event.kv() else { continue };
                let Ok(key) = kv.key_str() else {
                    warn!(prefix = %self.prefix, "ignoring a non-UTF-8 key");
                    continue;
                };
                let change = match event.event_type() {
                    EventType::Put => self.snapshot.apply_put(&KeyValue {
                        key: key.to_string(),
                        value: kv.value().to_vec(),
                        mod_revision: kv.mod_revision(),
                        create_revision: kv.create_revision(),
                    }),
                    EventType::Delete => self.snapshot.apply_delete(key, kv.mod_revision()),
                };
                if let Some(change) = change {
                    self.deliver(change).await?;
                }
            }
        }
    }

    async fn deliver(&mut self, change: RawChange) -> Result<(), ConsumerGone> {
        let value = match change.value {
            None => None,
            Some(bytes) => match (self.decode)(&change.key, &bytes) {
                Ok(value) => Some(value),
                Err(error) => {
                    warn!(key = %change.key, revision = change.revision, %error, "undecodable value; treating as absent");
                    self.send(SyncEvent::Invalid {
                        key: change.key.clone(),
                        revision: change.revision,
                        error,
                    })
                    .await?;
                    None
                }
            },
        };
        debug!(key = %change.key, revision = change.revision, present = value.is_some(), "update");
        self.send(SyncEvent::Update(Update {
            key: change.key,
            value,
            revision: change.revision,
        }))
        .await
    }

    async fn set_status(&mut self, status: SyncStatus) -> Result<(), ConsumerGone> {
        if self.status == Some(status) {
            return Ok(());
        }
        self.status = Some(status);
        self.send(SyncEvent::Status(status)).await
    }

    async fn send(&self, event: SyncEvent<T>) -> Result<(), ConsumerGone> {
        self.tx.send(event).await.map_err(|_| ConsumerGone)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kv(key: &str, value: &str, rev: i64) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: value.as_bytes().to_vec(),
            mod_revision: rev,
            create_revision: rev,
        }
    }

    fn listing(kvs: Vec<KeyValue>, revision: i64) -> Listing {
        Listing { kvs, revision }
    }

    #[test]
    fn first_resync_reports_every_key() {
        let mut snap = Snapshot::default();
        let changes = snap.resync(&listing(vec![kv("/a", "1", 2), kv("/b", "2", 3)], 3));
        assert_eq!(changes.len(), 2);
        assert!(changes.iter().all(|c| c.value.is_some()));
        assert_eq!(snap.len(), 2);
    }

    #[test]
    fn resync_reports_only_the_difference() {
        let mut snap = Snapshot::default();
        snap.resync(&listing(
            vec![kv("/a", "1", 2), kv("/b", "2", 3), kv("/c", "3", 4)],
            4,
        ));
        // /a unchanged, /b modified, /c deleted, /d new.
        let changes = snap.resync(&listing(
            vec![kv("/a", "1", 2), kv("/b", "22", 7), kv("/d", "4", 8)],
            9,
        ));
        assert_eq!(
            changes,
            vec![
                RawChange {
                    key: "/b".into(),
                    value: Some(b"22".to_vec()),
                    revision: 7
                },
                RawChange {
                    key: "/d".into(),
                    value: Some(b"4".to_vec()),
                    revision: 8
                },
                RawChange {
                    key: "/c".into(),
                    value: None,
                    revision: 9
                },
            ]
        );
    }

    #[test]
    fn identical_resync_is_silent() {
        let mut snap = Snapshot::default();
        let l = listing(vec![kv("/a", "1", 2)], 5);
        snap.resync(&l);
        assert!(snap.resync(&l).is_empty());
    }

    #[test]
    fn replayed_watch_events_are_dropped() {
        let mut snap = Snapshot::default();
        snap.resync(&listing(vec![kv("/a", "1", 5)], 5));
        assert_eq!(snap.apply_put(&kv("/a", "1", 5)), None, "same revision");
        assert_eq!(snap.apply_put(&kv("/a", "0", 4)), None, "older revision");
        assert!(snap.apply_put(&kv("/a", "2", 6)).is_some());
        assert_eq!(snap.apply_delete("/a", 6), None, "delete older than put");
        assert!(snap.apply_delete("/a", 7).is_some());
        assert_eq!(snap.apply_delete("/a", 8), None, "already gone");
        assert_eq!(snap.apply_delete("/never", 9), None);
        assert!(snap.is_empty());
    }

    #[test]
    fn resource_decoder_decodes_only_the_kinds_asked_for() {
        let node = crate::resource::parse_documents(
            "apiVersion: projectcalico.org/v3\nkind: Node\nmetadata: {name: n1}\n",
        )
        .unwrap()
        .remove(0)
        .to_json();
        let decode = resource_decoder(&["nodes"]);
        let key = crate::keys::resource_key("nodes", None, "n1");
        let decoded = decode(&key, node.as_bytes()).unwrap();
        assert!(matches!(decoded, Some(Resource::Node(_))), "{decoded:?}");
        let other = crate::keys::resource_key("bgppeers", None, "p1");
        assert_eq!(decode(&other, b"not even JSON").unwrap(), None);
        assert!(decode(&key, b"not JSON").is_err());
    }
}
