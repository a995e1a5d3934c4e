//! The only code in the workspace that talks to etcd.
//!
//! [`Store`] wraps one `etcd-client` connection (several endpoints are load-balanced, TLS client
//! certificates optional) and offers exactly the writes the design allows: compare-and-swap
//! create / update / delete, and [`Store::commit`], an all-or-nothing transaction of several CAS
//! writes (one multi-document `apply` is one call). [`Store::read`] takes several reads in one
//! round trip at one revision; [`Store::list_keys`] lists a prefix without its values. Every request has a deadline, so an
//! unreachable cluster is one clear [`DatastoreError::Unavailable`] within seconds rather than
//! a hang or a stack of gRPC errors.

use std::path::PathBuf;
use std::time::Duration;

use etcd_client::{
    Certificate, Client, Compare, CompareOp, ConnectOptions, GetOptions, Identity, PutOptions,
    TlsOptions, Txn, TxnOp, TxnOpResponse,
};
use tracing::debug;

use crate::keys::prefix_range_end;

/// Page size of a prefix listing; keeps every response far below gRPC's message limit.
const LIST_PAGE: i64 = 500;
/// Keys read per transaction by [`Store::get_many`] (etcd's `--max-txn-ops` defaults to 128).
const GET_MANY_CHUNK: usize = 100;
/// How many times a request that failed for lack of a reachable endpoint is tried.
const ATTEMPTS: u32 = 4;
/// Pause between those tries; the balanced channel meanwhile notices dead endpoints.
const RETRY_PAUSE: Duration = Duration::from_millis(200);

/// Errors from the datastore.
#[derive(Debug, thiserror::Error)]
pub enum DatastoreError {
    /// No endpoint answered in time (or the connection was refused).
    #[error("etcd is unreachable at {endpoints}: {reason}")]
    Unavailable {
        /// The configured endpoints, comma separated.
        endpoints: String,
        /// What went wrong, in one line.
        reason: String,
    },
    /// A create found the key already present.
    #[error("{key} already exists")]
    AlreadyExists {
        /// The key.
        key: String,
    },
    /// An update or delete found no such key.
    #[error("{key} does not exist")]
    NotFound {
        /// The key.
        key: String,
    },
    /// An update or delete found the key at another revision: someone else wrote it first.
    #[error("{key} was modified concurrently (expected revision {expected}, found {found})")]
    Conflict {
        /// The key.
        key: String,
        /// The revision the writer read.
        expected: i64,
        /// The revision now stored.
        found: i64,
    },
    /// The configuration is unusable.
    #[error("invalid etcd configuration: {0}")]
    Config(String),
    /// A TLS file could not be read.
    #[error("cannot read {what} {path}")]
    TlsFile {
        /// Which file (CA certificate, client certificate, client key).
        what: &'static str,
        /// Its path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// etcd answered with an error that is none of the above.
    #[error("etcd request failed: {0}")]
    Etcd(String),
    /// A stored key is not UTF-8 (nothing vrouter writes; someone else wrote under our prefix).
    #[error("key under {prefix} is not UTF-8")]
    BadKey {
        /// The prefix being read.
        prefix: String,
    },
}

/// TLS client settings: the CA that signed etcd's certificate and an optional client identity.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsConfig {
    /// PEM file of the CA certificate(s).
    pub ca_cert: Option<PathBuf>,
    /// PEM file of the client certificate.
    pub cert: Option<PathBuf>,
    /// PEM file of the client private key.
    pub key: Option<PathBuf>,
}

/// How to reach etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs (`http://10.0.0.1:2379`, `https://…`); several form one load-balanced client.
    pub endpoints: Vec<String>,
    /// TLS settings; needed for `https://` endpoints that check client certificates.
    pub tls: Option<TlsConfig>,
    /// Deadline of establishing a connection.
    pub connect_timeout: Duration,
    /// Deadline of one attempt of a request (a request is tried up to four times while no
    /// endpoint answers, e.g. during a leader election).
    pub request_timeout: Duration,
}

impl Default for EtcdConfig {
    fn default() -> Self {
        Self {
            endpoints: vec!["http://127.0.0.1:2379".to_string()],
            tls: None,
            connect_timeout: Duration::from_secs(3),
            request_timeout: Duration::from_secs(2),
        }
    }
}

impl EtcdConfig {
    /// A configuration for the given endpoints with default timeouts and no TLS.
    pub fn new(endpoints: impl IntoIterator<Item = impl Into<String>>) -> Self {
        Self {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            ..Self::default()
        }
    }

    /// Parses a comma-separated endpoint list (`--etcd-endpoints`, `VROUTER_ETCD_ENDPOINTS`).
    pub fn parse_endpoints(list: &str) -> Result<Vec<String>, DatastoreError> {
        let endpoints: Vec<String> = list
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .collect();
        if endpoints.is_empty() {
            return Err(DatastoreError::Config(format!(
                "etcd endpoints: {list:?} names no endpoint"
            )));
        }
        Ok(endpoints)
    }

    /// Checks the configuration without connecting.
    pub fn validate(&self) -> Result<(), DatastoreError> {
        if self.endpoints.is_empty() {
            return Err(DatastoreError::Config("no etcd endpoint given".into()));
        }
        for endpoint in &self.endpoints {
            let rest = endpoint
                .strip_prefix("http://")
                .or_else(|| endpoint.strip_prefix("https://"))
                .ok_or_else(|| {
                    DatastoreError::Config(format!(
                        "etcd endpoint {endpoint:?} must start with http:// or https://"
                    ))
                })?;
            let host_port = rest.trim_end_matches('/');
            let valid_port = host_port
                .rsplit_once(':')
                .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
            if !valid_port {
                return Err(DatastoreError::Config(format!(
                    "etcd endpoint {endpoint:?} must be scheme://host:port"
                )));
            }
        }
        if let Some(tls) = &self.tls
            && tls.cert.is_some() != tls.key.is_some()
        {
            return Err(DatastoreError::Config(
                "a client certificate needs its key and a key needs its certificate".into(),
            ));
        }
        Ok(())
    }

    fn endpoints_display(&self) -> String {
        self.endpoints.join(",")
    }
}

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    /// The key.
    pub key: String,
    /// The value as stored.
    pub value: Vec<u8>,
    /// Revision of the last write to this key (the CAS token, `resourceVersion`).
    pub mod_revision: i64,
    /// Revision that created this key.
    pub create_revision: i64,
}

/// A consistent listing of a prefix at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listing {
    /// Keys in key order.
    pub kvs: Vec<KeyValue>,
    /// The store revision the listing was taken at; watch from `revision + 1`.
    pub revision: i64,
}

/// One read inside [`Store::read`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// One key.
    Key(String),
    /// Every key under a prefix, in one answer (not paged): only for prefixes that stay small,
    /// such as the IP pools or one node's block affinities.
    Prefix(String),
}

/// One compare-and-swap write inside [`Store::commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Write {
    /// Store `value` under `key`, which must not exist.
    Create {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
    },
    /// Replace `key`, which must still be at `mod_revision`.
    Update {
        /// The key.
        key: String,
        /// The value.
        value: Vec<u8>,
        /// The revision the writer read.
        mod_revision: i64,
    },
    /// Delete `key`, which must still be at `mod_revision`.
    Delete {
        /// The key.
        key: String,
        /// The revision the writer read.
        mod_revision: i64,
    },
}

impl Write {
    /// The key this write touches.
    pub fn key(&self) -> &str {
        match self {
            Write::Create { key, .. } | Write::Update { key, .. } | Write::Delete { key, .. } => {
                key
            }
        }
    }

    fn compare(&self) -> Compare {
        match self {
            Write::Create { key, .. } => Compare::version(key.as_str(), CompareOp::Equal, 0),
            Write::Update {
                key, mod_revision, ..
            }
            | Write::Delete {
                key, mod_revision, ..
            } => Compare::mod_revision(key.as_str(), CompareOp::Equal, *mod_revision),
        }
    }

    fn op(&self) -> TxnOp {
        match self {
            Write::Create { key, value } | Write::Update { key, value, .. } => {
                TxnOp::put(key.as_str(), value.clone(), None)
            }
            Write::Delete { key, .. } => TxnOp::delete(key.as_str(), None),
        }
    }

    /// Why this write's compare failed, given what is stored now.
    fn failure(&self, current: Option<i64>) -> Option<DatastoreError> {
        let key = self.key().to_string();
        match (self, current) {
            (Write::Create { .. }, Some(_)) => Some(DatastoreError::AlreadyExists { key }),
            (Write::Create { .. }, None) => None,
            (Write::Update { .. } | Write::Delete { .. }, None) => {
                Some(DatastoreError::NotFound { key })
            }
            (
                Write::Update { mod_revision, .. } | Write::Delete { mod_revision, .. },
                Some(found),
            ) => (found != *mod_revision).then_some(DatastoreError::Conflict {
                key,
                expected: *mod_revision,
                found,
            }),
        }
    }
}

/// A connection to the etcd cluster. Cheap to clone; clones share the connection.
#[derive(Clone)]
pub struct Store {
    client: Client,
    config: EtcdConfig,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("endpoints", &self.config.endpoints)
            .finish_non_exhaustive()
    }
}

fn read_pem(what: &'static str, path: &PathBuf) -> Result<Vec<u8>, DatastoreError> {
    std::fs::read(path).map_err(|source| DatastoreError::TlsFile {
        what,
        path: path.clone(),
        source,
    })
}

impl Store {
    /// Connects to the cluster and checks that it answers.
    pub async fn connect(config: &EtcdConfig) -> Result<Self, DatastoreError> {
        let store = Self::connect_lazy(config).await?;
        store.current_revision().await?;
        Ok(store)
    }

    /// [`Store::connect`] without the request that checks that the cluster answers: the
    /// caller's first request does (and fails with [`DatastoreError::Unavailable`] after its
    /// retries, as the check would). For short-lived clients whose first request follows at
    /// once (the CNI plugin): one round trip less.
    pub async fn connect_lazy(config: &EtcdConfig) -> Result<Self, DatastoreError> {
        config.validate()?;
        let mut options = ConnectOptions::new()
            .with_connect_timeout(config.connect_timeout)
            .with_timeout(config.request_timeout)
            .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
            .with_keep_alive_while_idle(true);
        if let Some(tls) = &config.tls {
            let mut tls_options = TlsOptions::new();
            if let Some(ca) = &tls.ca_cert {
                tls_options = tls_options
                    .ca_certificate(Certificate::from_pem(read_pem("CA certificate", ca)?));
            }
            if let (Some(cert), Some(key)) = (&tls.cert, &tls.key) {
                tls_options = tls_options.identity(Identity::from_pem(
                    read_pem("client certificate", cert)?,
                    read_pem("client key", key)?,
                ));
            }
            options = options.with_tls(tls_options);
        }
        let started = std::time::Instant::now();
        let connecting = Client::connect(&config.endpoints, Some(options));
        let client = match tokio::time::timeout(config.connect_timeout, connecting).await {
            Ok(Ok(client)) => client,
            Ok(Err(e)) => return Err(unavailable(config, &e.to_string())),
            Err(_) => return Err(unavailable(config, "connection timed out")),
        };
        debug!(
            elapsed_us = started.elapsed().as_micros(),
            "etcd client ready"
        );
        Ok(Self {
            client,
            config: config.clone(),
        })
    }

    /// The configuration this store was connected with.
    pub fn config(&self) -> &EtcdConfig {
        &self.config
    }

    /// The raw client, for the syncer and leases inside this crate.
    pub(crate) fn client(&self) -> Client {
        self.client.clone()
    }

    /// Runs `request` with the per-request deadline, retrying while no endpoint answers (a
    /// dead member, or a leader election in progress). Retrying a write is safe only because
    /// every write is a compare-and-swap: a retry of a write that did land fails its compare,
    /// and [`Store::commit`] then recognises its own write.
    async fn request<T, F, Fut>(&self, what: &str, request: F) -> Result<T, DatastoreError>
    where
        F: Fn(Client) -> Fut,
        Fut: Future<Output = Result<T, etcd_client::Error>>,
    {
        let mut last = String::new();
        for attempt in 1..=ATTEMPTS {
            let started = std::time::Instant::now();
            match tokio::time::timeout(self.config.request_timeout, request(self.client.clone()))
                .await
            {
                Ok(Ok(value)) => {
                    debug!(
                        what,
                        attempt,
                        elapsed_us = started.elapsed().as_micros(),
                        "etcd request"
                    );
                    return Ok(value);
                }
                Ok(Err(e)) if is_unavailable(&e) => last = one_line(&e.to_string()),
                Ok(Err(e)) => return Err(DatastoreError::Etcd(one_line(&e.to_string()))),
                Err(_) => last = "request timed out".to_string(),
            }
            debug!(what, attempt, error = %last, "etcd request failed, retrying");
            if attempt < ATTEMPTS {
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
        Err(unavailable(&self.config, &last))
    }

    /// The store's current revision.
    pub async fn current_revision(&self) -> Result<i64, DatastoreError> {
        let response = self
            .request("status", |mut c| async move {
                c.get("/vrouter/", Some(GetOptions::new().with_count_only()))
                    .await
            })
            .await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Reads one key.
    pub async fn get(&self, key: &str) -> Result<Option<KeyValue>, DatastoreError> {
        let response = self
            .request("get", |mut c| async move { c.get(key, None).await })
            .await?;
        response.kvs().first().map(convert_kv).transpose()
    }

    /// Reads many keys with one round trip per [`GET_MANY_CHUNK`] keys (a read-only
    /// transaction each, so each chunk is one snapshot). The result is in the order of `keys`.
    pub async fn get_many(&self, keys: &[String]) -> Result<Vec<Option<KeyValue>>, DatastoreError> {
        let mut found = Vec::with_capacity(keys.len());
        for chunk in keys.chunks(GET_MANY_CHUNK) {
            let reads: Vec<TxnOp> = chunk.iter().map(|k| TxnOp::get(k.as_str(), None)).collect();
            let txn = Txn::new().and_then(reads);
            let response = self
                .request("get many", |mut c| {
                    let txn = txn.clone();
                    async move { c.txn(txn).await }
                })
                .await?;
            let mut answers = response.op_responses().into_iter();
            for _ in chunk {
                let kv = match answers.next() {
                    Some(TxnOpResponse::Get(get)) => {
                        get.kvs().first().map(convert_kv).transpose()?
                    }
                    _ => None,
                };
                found.push(kv);
            }
        }
        Ok(found)
    }

    /// Reads several keys and small prefixes in one round trip: a read-only transaction, so
    /// every answer is from one revision. Answers are in the order of `reads`: a [`Read::Key`]
    /// gives no or one key, a [`Read::Prefix`] every key under it, in key order.
    pub async fn read(&self, reads: &[Read]) -> Result<Vec<Vec<KeyValue>>, DatastoreError> {
        let ops: Vec<TxnOp> = reads
            .iter()
            .map(|read| match read {
                Read::Key(key) => TxnOp::get(key.as_str(), None),
                Read::Prefix(prefix) => TxnOp::get(
                    prefix.as_str(),
                    Some(GetOptions::new().with_range(prefix_range_end(prefix))),
                ),
            })
            .collect();
        let txn = Txn::new().and_then(ops);
        let response = self
            .request("read", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        let answers = response.op_responses();
        if answers.len() != reads.len() {
            return Err(DatastoreError::Etcd(format!(
                "a read transaction of {} reads had {} answers",
                reads.len(),
                answers.len()
            )));
        }
        answers
            .into_iter()
            .map(|answer| match answer {
                TxnOpResponse::Get(get) => get.kvs().iter().map(convert_kv).collect(),
                _ => Err(DatastoreError::Etcd(
                    "a read transaction answered with a write".to_string(),
                )),
            })
            .collect()
    }

    /// Lists every key under `prefix` as one consistent snapshot (paged at a fixed revision).
    pub async fn list(&self, prefix: &str) -> Result<Listing, DatastoreError> {
        self.list_paged(prefix, false).await
    }

    /// The keys under `prefix`, in key order, without their values (a keys-only listing, paged
    /// like [`Store::list`]): for callers that only need to know what exists.
    pub async fn list_keys(&self, prefix: &str) -> Result<Vec<String>, DatastoreError> {
        let listing = self.list_paged(prefix, true).await?;
        Ok(listing.kvs.into_iter().map(|kv| kv.key).collect())
    }

    async fn list_paged(&self, prefix: &str, keys_only: bool) -> Result<Listing, DatastoreError> {
        let end = prefix_range_end(prefix);
        let mut kvs = Vec::new();
        let mut from = prefix.as_bytes().to_vec();
        let mut revision = 0;
        loop {
            let mut options = GetOptions::new()
                .with_range(end.clone())
                .with_limit(LIST_PAGE);
            if keys_only {
                options = options.with_keys_only();
            }
            if revision > 0 {
                options = options.with_revision(revision);
            }
            let start = from.clone();
            let response = self
                .request("list", |mut c| {
                    let options = options.clone();
                    let start = start.clone();
                    async move { c.get(start, Some(options)).await }
                })
                .await?;
            if revision == 0 {
                revision = response.header().map_or(0, |h| h.revision());
            }
            for kv in response.kvs() {
                kvs.push(convert_kv(kv).map_err(|_| DatastoreError::BadKey {
                    prefix: prefix.to_string(),
                })?);
            }
            match (response.more(), response.kvs().last()) {
                (true, Some(last)) => {
                    from = last.key().to_vec();
                    from.push(0);
                }
                _ => break,
            }
        }
        Ok(Listing { kvs, revision })
    }

    /// Creates `key`; fails with [`DatastoreError::AlreadyExists`] if it exists.
    /// Returns the new revision.
    pub async fn create(&self, key: &str, value: Vec<u8>) -> Result<i64, DatastoreError> {
        self.commit(&[Write::Create {
            key: key.to_string(),
            value,
        }])
        .await
    }

    /// Replaces `key` if it is still at `mod_revision`. Returns the new revision.
    pub async fn update(
        &self,
        key: &str,
        value: Vec<u8>,
        mod_revision: i64,
    ) -> Result<i64, DatastoreError> {
        self.commit(&[Write::Update {
            key: key.to_string(),
            value,
            mod_revision,
        }])
        .await
    }

    /// Deletes `key` if it is still at `mod_revision`. Returns the new revision.
    pub async fn delete(&self, key: &str, mod_revision: i64) -> Result<i64, DatastoreError> {
        self.commit(&[Write::Delete {
            key: key.to_string(),
            mod_revision,
        }])
        .await
    }

    /// Applies every write or none: one etcd transaction whose guard is every write's compare.
    /// On failure the error names the first write whose compare failed. Returns the revision
    /// of the transaction.
    pub async fn commit(&self, writes: &[Write]) -> Result<i64, DatastoreError> {
        if writes.is_empty() {
            return self.current_revision().await;
        }
        let compares: Vec<Compare> = writes.iter().map(Write::compare).collect();
        let ops: Vec<TxnOp> = writes.iter().map(Write::op).collect();
        let reads: Vec<TxnOp> = writes.iter().map(|w| TxnOp::get(w.key(), None)).collect();
        let txn = Txn::new().when(compares).and_then(ops).or_else(reads);
        let response = self
            .request("txn", |mut c| {
                let txn = txn.clone();
                async move { c.txn(txn).await }
            })
            .await?;
        let revision = response.header().map_or(0, |h| h.revision());
        if response.succeeded() {
            return Ok(revision);
        }
        let current: Vec<Option<etcd_client::KeyValue>> = response
            .op_responses()
            .into_iter()
            .map(|op| match op {
                TxnOpResponse::Get(get) => get.kvs().first().cloned(),
                _ => None,
            })
            .collect();
        // A retried transaction whose first attempt landed fails its compares against its own
        // result; if the store already holds exactly what we wrote, that is success.
        let already_applied = writes.iter().zip(&current).all(|(write, kv)| match write {
            Write::Create { value, .. } | Write::Update { value, .. } => {
                kv.as_ref().is_some_and(|kv| kv.value() == value.as_slice())
            }
            Write::Delete { .. } => kv.is_none(),
        });
        if already_applied {
            let landed = current.iter().flatten().map(|kv| kv.mod_revision()).max();
            return Ok(landed.unwrap_or(revision));
        }
        for (write, kv) in writes.iter().zip(&current) {
            if let Some(error) = write.failure(kv.as_ref().map(|kv| kv.mod_revision())) {
                return Err(error);
            }
        }
        // Every compare passed on re-read: a concurrent writer came and went in between.
        Err(DatastoreError::Conflict {
            key: writes[0].key().to_string(),
            expected: 0,
            found: revision,
        })
    }

    /// Writes `key` attached to `lease` (liveness records), unconditionally.
    pub async fn put_with_lease(
        &self,
        key: &str,
        value: Vec<u8>,
        lease: i64,
    ) -> Result<i64, DatastoreError> {
        let response = self
            .request("put", |mut c| {
                let value = value.clone();
                async move {
                    c.put(key, value, Some(PutOptions::new().with_lease(lease)))
                        .await
                }
            })
            .await?;
        Ok(response.header().map_or(0, |h| h.revision()))
    }

    /// Grants a lease of `ttl` and returns its id.
    pub async fn grant_lease(&self, ttl: Duration) -> Result<i64, DatastoreError> {
        let seconds = i64::try_from(ttl.as_secs().max(1)).unwrap_or(i64::MAX);
        let response = self
            .request("lease grant", |mut c| async move {
                c.lease_grant(seconds, None).await
            })
            .await?;
        Ok(response.id())
    }

    /// Renews `lease` once; returns the remaining TTL in seconds (0 if it already expired).
    pub async fn keep_alive(&self, lease: i64) -> Result<i64, DatastoreError> {
        self.request("lease keepalive", |mut c| async move {
            let (mut keeper, mut stream) = c.lease_keep_alive(lease).await?;
            keeper.keep_alive().await?;
            Ok(stream.message().await?.map_or(0, |m| m.ttl()))
        })
        .await
    }

    /// Revokes `lease`: every key attached to it is deleted at once (a node leaving on
    /// purpose). Revoking a lease that already expired is not an error.
    pub async fn revoke_lease(&self, lease: i64) -> Result<(), DatastoreError> {
        let result = self
            .request("lease revoke", |mut c| async move {
                c.lease_revoke(lease).await
            })
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(DatastoreError::Etcd(message)) if message.contains("lease not found") => Ok(()),
            Err(other) => Err(other),
        }
    }

    /// Compacts history up to `revision` (operators and tests; the syncer copes with it).
    pub async fn compact(&self, revision: i64) -> Result<(), DatastoreError> {
        self.request(
            "compact",
            |mut c| async move { c.compact(revision, None).await },
        )
        .await?;
        Ok(())
    }
}

fn convert_kv(kv: &etcd_client::KeyValue) -> Result<KeyValue, DatastoreError> {
    let key = kv
        .key_str()
        .map_err(|_| DatastoreError::BadKey {
            prefix: String::from_utf8_lossy(kv.key()).into_owned(),
        })?
        .to_string();
    Ok(KeyValue {
        key,
        value: kv.value().to_vec(),
        mod_revision: kv.mod_revision(),
        create_revision: kv.create_revision(),
    })
}

/// True for failures that mean "no endpoint answered", as opposed to etcd refusing the request.
pub(crate) fn is_unavailable(error: &etcd_client::Error) -> bool {
    match error {
        etcd_client::Error::TransportError(_) | etcd_client::Error::IoError(_) => true,
        etcd_client::Error::GRpcStatus(status) => {
            // gRPC codes by number (Cancelled 1 — what tonic reports for its own timeout —,
            // Unknown 2, DeadlineExceeded 4, Unavailable 14), so this crate does not depend on
            // tonic just to name them. Other "etcdserver: …" messages are refusals by a live
            // server (e.g. a compacted revision), not reachability problems.
            let message = status.message();
            let transient_server = ["request timed out", "leader changed", "no leader"]
                .iter()
                .any(|m| message.contains(m));
            matches!(i32::from(status.code()), 1 | 2 | 4 | 14)
                && (!message.contains("etcdserver:") || transient_server)
        }
        _ => false,
    }
}

fn unavailable(config: &EtcdConfig, reason: &str) -> DatastoreError {
    DatastoreError::Unavailable {
        endpoints: config.endpoints_display(),
        reason: one_line(reason),
    }
}

/// gRPC errors arrive as nested multi-line text; operators want one line.
fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_lists_parse_and_validate() {
        let endpoints =
            EtcdConfig::parse_endpoints("http://10.0.0.1:2379, https://etcd-2:2379,").expect("ok");
        assert_eq!(endpoints, ["http://10.0.0.1:2379", "https://etcd-2:2379"]);
        assert!(EtcdConfig::new(endpoints).validate().is_ok());
        assert!(EtcdConfig::parse_endpoints(" , ").is_err());
        for bad in [
            "10.0.0.1:2379",
            "http://10.0.0.1",
            "http://:2379",
            "ftp://a:1",
        ] {
            let err = EtcdConfig::new([bad]).validate().expect_err(bad);
            assert!(err.to_string().contains(bad), "{err}");
        }
        let mut half_tls = EtcdConfig::new(["https://a:2379"]);
        half_tls.tls = Some(TlsConfig {
            cert: Some("c.pem".into()),
            ..TlsConfig::default()
        });
        assert!(half_tls.validate().is_err());
    }

    #[test]
    fn write_failures_name_the_reason() {
        let create = Write::Create {
            key: "/k".into(),
            value: vec![],
        };
        assert!(matches!(
            create.failure(Some(3)),
            Some(DatastoreError::AlreadyExists { .. })
        ));
        assert!(create.failure(None).is_none());
        let update = Write::Update {
            key: "/k".into(),
            value: vec![],
            mod_revision: 5,
        };
        assert!(matches!(
            update.failure(Some(6)),
            Some(DatastoreError::Conflict {
                expected: 5,
                found: 6,
                ..
            })
        ));
        assert!(update.failure(Some(5)).is_none());
        assert!(matches!(
            update.failure(None),
            Some(DatastoreError::NotFound { .. })
        ));
    }

    #[test]
    fn multi_line_errors_become_one_line() {
        assert_eq!(one_line("a\n  b\tc "), "a b c");
    }
}
