//! How `vrctl` reaches etcd: the global `--etcd-*` flags, their `VROUTER_ETCD_*` environment
//! variables and the config file (`/etc/vrouter/vrctl.yaml` unless `--config` names another),
//! merged into one [`EtcdConfig`] with the precedence flags > environment > file > default
//! (`http://127.0.0.1:2379`, calicoctl's). Also owns the exit-code rule for errors: an
//! unreachable datastore is exit 2, everything else 1.
//!
//! Config file keys (all optional, unknown keys are errors):
//!
//! ```yaml
//! etcdEndpoints: https://10.0.0.1:2379,https://10.0.0.2:2379   # or a YAML list
//! etcdCACert: /etc/vrouter/pki/ca.pem
//! etcdCert: /etc/vrouter/pki/vrctl.pem
//! etcdKey: /etc/vrouter/pki/vrctl-key.pem
//! ```

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow};
use clap::Args;
use datastore::etcd::{DatastoreError, EtcdConfig, Store, TlsConfig};
use datastore::resource_store::ResourceError;
use serde::Deserialize;

/// The config file read when `--config` is not given; a missing default file is not an error.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vrouter/vrctl.yaml";

/// The endpoint used when neither flags, environment nor config file name one.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:2379";

/// Exit code for invalid input and rejected writes.
pub const EXIT_INVALID: u8 = 1;

/// Exit code when the datastore cannot be reached.
pub const EXIT_UNREACHABLE: u8 = 2;

/// Global flags saying where etcd is (every flag also reads an environment variable).
#[derive(Debug, Clone, Default, Args)]
pub struct ConnectionArgs {
    /// etcd client URLs, comma separated (e.g. `http://127.0.0.1:2379`).
    #[arg(
        long,
        global = true,
        env = "VROUTER_ETCD_ENDPOINTS",
        value_name = "URLS"
    )]
    pub etcd_endpoints: Option<String>,
    /// PEM file of the CA that signed etcd's certificate.
    #[arg(long, global = true, env = "VROUTER_ETCD_CACERT", value_name = "FILE")]
    pub etcd_cacert: Option<PathBuf>,
    /// PEM file of the client certificate.
    #[arg(long, global = true, env = "VROUTER_ETCD_CERT", value_name = "FILE")]
    pub etcd_cert: Option<PathBuf>,
    /// PEM file of the client key.
    #[arg(long, global = true, env = "VROUTER_ETCD_KEY", value_name = "FILE")]
    pub etcd_key: Option<PathBuf>,
    /// Config file with etcdEndpoints, etcdCACert, etcdCert, etcdKey
    /// [default: /etc/vrouter/vrctl.yaml, if it exists].
    #[arg(long, global = true, env = "VRCTL_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
}

/// The config file's contents.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConfigFile {
    /// Endpoints: a comma-separated string or a list.
    #[serde(rename = "etcdEndpoints")]
    pub etcd_endpoints: Option<Endpoints>,
    /// CA certificate file.
    #[serde(rename = "etcdCACert")]
    pub etcd_ca_cert: Option<PathBuf>,
    /// Client certificate file.
    #[serde(rename = "etcdCert")]
    pub etcd_cert: Option<PathBuf>,
    /// Client key file.
    #[serde(rename = "etcdKey")]
    pub etcd_key: Option<PathBuf>,
}

/// `etcdEndpoints` as written in the config file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Endpoints {
    /// `http://a:2379,http://b:2379`.
    Text(String),
    /// `[http://a:2379, http://b:2379]`.
    List(Vec<String>),
}

impl ConfigFile {
    /// Parses a config file's text.
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        if text.trim().is_empty() {
            return Ok(Self::default());
        }
        Ok(yaml_serde::from_str(text)?)
    }

    /// Reads `path`; `Ok(None)` when it does not exist and `required` is false.
    pub fn load(path: &Path, required: bool) -> anyhow::Result<Option<Self>> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text)
                .map(Some)
                .with_context(|| format!("config file {}", path.display())),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && !required => Ok(None),
            Err(e) => Err(anyhow!(e).context(format!("reading config file {}", path.display()))),
        }
    }
}

impl ConnectionArgs {
    /// Reads the config file (if any) and merges it under the flags and environment.
    pub fn etcd_config(&self) -> anyhow::Result<EtcdConfig> {
        let file = match &self.config {
            Some(path) => ConfigFile::load(path, true)?,
            None => ConfigFile::load(Path::new(DEFAULT_CONFIG_PATH), false)?,
        };
        self.merge(file.unwrap_or_default())
    }

    /// Merges flags/environment (already combined by clap) over `file`. Pure.
    pub fn merge(&self, file: ConfigFile) -> anyhow::Result<EtcdConfig> {
        let endpoints = match (&self.etcd_endpoints, file.etcd_endpoints) {
            (Some(list), _) => EtcdConfig::parse_endpoints(list)?,
            (None, Some(Endpoints::Text(list))) => EtcdConfig::parse_endpoints(&list)?,
            (None, Some(Endpoints::List(list))) => EtcdConfig::parse_endpoints(&list.join(","))?,
            (None, None) => vec![DEFAULT_ENDPOINT.to_string()],
        };
        let tls = TlsConfig {
            ca_cert: self.etcd_cacert.clone().or(file.etcd_ca_cert),
            cert: self.etcd_cert.clone().or(file.etcd_cert),
            key: self.etcd_key.clone().or(file.etcd_key),
        };
        let mut config = EtcdConfig::new(endpoints);
        if tls != TlsConfig::default() {
            config.tls = Some(tls);
        }
        config.validate()?;
        Ok(config)
    }

    /// Resolves the configuration and connects (fails fast, in one line, when etcd is down).
    pub async fn connect(&self) -> anyhow::Result<Store> {
        let config = self.etcd_config()?;
        Ok(Store::connect(&config).await?)
    }
}

/// The process exit code for a failed command: [`EXIT_UNREACHABLE`] when the cause is an
/// unreachable datastore, otherwise [`EXIT_INVALID`].
pub fn exit_code_for(error: &anyhow::Error) -> u8 {
    let unreachable = error.chain().any(|cause| {
        matches!(
            cause.downcast_ref::<DatastoreError>(),
            Some(DatastoreError::Unavailable { .. })
        ) || matches!(
            cause.downcast_ref::<ResourceError>(),
            Some(ResourceError::Datastore(DatastoreError::Unavailable { .. }))
        )
    });
    if unreachable {
        EXIT_UNREACHABLE
    } else {
        EXIT_INVALID
    }
}

/// The one line printed after `error: ` for a failed command. An unreachable datastore is
/// reduced to its endpoints and the gist of the transport error (the raw gRPC text nests
/// three error types deep).
pub fn error_line(error: &anyhow::Error) -> String {
    let unavailable = error.chain().find_map(|cause| {
        match (
            cause.downcast_ref::<DatastoreError>(),
            cause.downcast_ref::<ResourceError>(),
        ) {
            (Some(e @ DatastoreError::Unavailable { .. }), _)
            | (_, Some(ResourceError::Datastore(e @ DatastoreError::Unavailable { .. }))) => {
                Some(e)
            }
            _ => None,
        }
    });
    if let Some(DatastoreError::Unavailable { endpoints, reason }) = unavailable {
        return format!("etcd is unreachable at {endpoints}: {}", gist(reason));
    }
    let too_big = error.chain().any(|cause| {
        let refused = match (
            cause.downcast_ref::<DatastoreError>(),
            cause.downcast_ref::<ResourceError>(),
        ) {
            (Some(DatastoreError::Etcd(m)), _)
            | (_, Some(ResourceError::Datastore(DatastoreError::Etcd(m)))) => m,
            _ => return false,
        };
        refused.contains("too many operations in txn")
    });
    if too_big {
        return "etcd refused the transaction: it has more operations than etcd's \
                --max-txn-ops allows (128 by default); nothing was written. Raise the \
                limit on the etcd members or split the input"
            .to_string();
    }
    format!("{error:#}")
}

/// The operator-relevant part of a transport error.
fn gist(reason: &str) -> &str {
    let lower = reason.to_ascii_lowercase();
    if lower.contains("connection refused") {
        "connection refused"
    } else if lower.contains("timed out") || lower.contains("deadline") {
        "no answer in time"
    } else if lower.contains("dns error") || lower.contains("failed to lookup") {
        "cannot resolve the host name"
    } else if lower.contains("no route to host") {
        "no route to host"
    } else {
        reason
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let file = ConfigFile::parse(
            "etcdEndpoints: http://10.0.0.1:2379, http://10.0.0.2:2379\netcdCACert: /ca.pem\n",
        )
        .unwrap();
        let none = ConnectionArgs::default();
        let merged = none.merge(file.clone()).unwrap();
        assert_eq!(
            merged.endpoints,
            ["http://10.0.0.1:2379", "http://10.0.0.2:2379"]
        );
        assert_eq!(
            merged.tls.as_ref().and_then(|t| t.ca_cert.clone()),
            Some(PathBuf::from("/ca.pem"))
        );
        let flags = ConnectionArgs {
            etcd_endpoints: Some("http://127.0.0.1:9999".into()),
            etcd_cacert: Some("/flag-ca.pem".into()),
            ..Default::default()
        };
        let merged = flags.merge(file).unwrap();
        assert_eq!(merged.endpoints, ["http://127.0.0.1:9999"]);
        assert_eq!(
            merged.tls.and_then(|t| t.ca_cert),
            Some(PathBuf::from("/flag-ca.pem"))
        );
        let merged = none.merge(ConfigFile::default()).unwrap();
        assert_eq!(merged.endpoints, [DEFAULT_ENDPOINT]);
        assert_eq!(merged.tls, None);
    }

    #[test]
    fn config_file_accepts_a_list_and_rejects_unknown_keys() {
        let file = ConfigFile::parse("etcdEndpoints: [http://a:1, http://b:2]\n").unwrap();
        let merged = ConnectionArgs::default().merge(file).unwrap();
        assert_eq!(merged.endpoints, ["http://a:1", "http://b:2"]);
        let err = ConfigFile::parse("etcdEndpoint: http://a:1\n").unwrap_err();
        assert!(err.to_string().contains("etcdEndpoint"), "{err}");
        assert_eq!(ConfigFile::parse("").unwrap(), ConfigFile::default());
    }

    #[test]
    fn bad_endpoints_and_half_identities_are_rejected() {
        let args = ConnectionArgs {
            etcd_endpoints: Some("127.0.0.1:2379".into()),
            ..Default::default()
        };
        let err = args.merge(ConfigFile::default()).unwrap_err();
        assert!(err.to_string().contains("http://"), "{err}");
        let args = ConnectionArgs {
            etcd_cert: Some("/c.pem".into()),
            ..Default::default()
        };
        assert!(args.merge(ConfigFile::default()).is_err());
    }

    #[test]
    fn missing_default_file_is_fine_but_a_named_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("absent.yaml");
        assert_eq!(ConfigFile::load(&path, false).unwrap(), None);
        assert!(ConfigFile::load(&path, true).is_err());
    }

    #[test]
    fn unreachable_errors_print_their_gist() {
        let down = DatastoreError::Unavailable {
            endpoints: "http://127.0.0.1:1".into(),
            reason: "grpc request error: code: 'The service is currently unavailable', source: tonic::transport::Error(Transport, ConnectError(ConnectError(\"tcp connect error\", Os { code: 111, kind: ConnectionRefused, message: \"Connection refused\" })))".into(),
        };
        assert_eq!(
            error_line(&anyhow!(down)),
            "etcd is unreachable at http://127.0.0.1:1: connection refused"
        );
        let other = DatastoreError::Unavailable {
            endpoints: "http://e:2379".into(),
            reason: "something new".into(),
        };
        assert_eq!(
            error_line(&anyhow!(ResourceError::Datastore(other))),
            "etcd is unreachable at http://e:2379: something new"
        );
        assert_eq!(
            error_line(&anyhow!("inner").context("outer")),
            "outer: inner"
        );
        let too_big = ResourceError::Datastore(DatastoreError::Etcd(
            "grpc request error: message: \"etcdserver: too many operations in txn request\""
                .into(),
        ));
        let line = error_line(&anyhow!(too_big));
        assert!(line.contains("--max-txn-ops"), "{line}");
        assert!(line.contains("nothing was written"), "{line}");
    }

    #[test]
    fn only_unreachable_datastores_exit_2() {
        let down = DatastoreError::Unavailable {
            endpoints: "http://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        };
        assert_eq!(
            exit_code_for(&anyhow!(down).context("get")),
            EXIT_UNREACHABLE
        );
        let wrapped = ResourceError::Datastore(DatastoreError::Unavailable {
            endpoints: "x".into(),
            reason: "y".into(),
        });
        assert_eq!(exit_code_for(&anyhow!(wrapped)), EXIT_UNREACHABLE);
        let refused = ResourceError::NotFound {
            id: "IPPool/p".into(),
        };
        assert_eq!(exit_code_for(&anyhow!(refused)), EXIT_INVALID);
        assert_eq!(exit_code_for(&anyhow!("bad input")), EXIT_INVALID);
    }
}
