//! vrouterd's configuration: one typed [`Config`] resolved from flags, `VROUTER_*` environment
//! variables and the YAML config file, with the precedence flag > environment > file > default.
//!
//! Every setting has one name in each source, derived from one table ([`Key`]): the flag
//! `--etcd-ca-file`, the environment variable `VROUTER_ETCD_CA_FILE` and the file key
//! `etcdCaFile`. Values from all sources are first collected as text with their [`Origin`],
//! then validated in one place, so an error always names where the bad value came from
//! (`flag --asn`, `environment VROUTER_ASN`, `asn in /etc/vrouter/vrouterd.yaml`) and what it
//! was. Reading the process environment is left to clap (`Cli`); [`resolve`] itself is pure and
//! takes the collected values, so tests feed it maps.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::parser::ValueSource;
use clap::{CommandFactory, FromArgMatches, Parser};
use datastore::etcd::{EtcdConfig, TlsConfig};
use datastore::resource::numorstring::AsNumber;
use ipnetwork::IpNetwork;
use regex::Regex;

/// The config file read when `--config` is not given; a missing default file is fine.
pub const DEFAULT_CONFIG_PATH: &str = "/etc/vrouter/vrouterd.yaml";
/// Default control socket.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/vrouter/vrouter.ctl";
/// Default metrics listen address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9091";
/// Default directory of BGP password secrets (`<dir>/<secret>/<key>`).
pub const DEFAULT_SECRETS_DIR: &str = "/etc/vrouter/secrets";
/// Default etcd endpoint.
pub const DEFAULT_ETCD_ENDPOINT: &str = "http://127.0.0.1:2379";

/// Command line of `vrouterd`. Every option also reads `VROUTER_<NAME>` and the config file key
/// of the same name in camelCase; flags beat the environment, which beats the file.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "vrouterd",
    version,
    about = "vrouter node daemon: Felix-style agent, BGP speaker, control socket and metrics"
)]
pub struct Cli {
    /// Config file [default: /etc/vrouter/vrouterd.yaml, if it exists].
    #[arg(long, env = "VROUTER_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// This node's name (its Node resource) [default: the hostname].
    #[arg(long, env = "VROUTER_NODE_NAME", value_name = "NAME")]
    pub node_name: Option<String>,
    /// The node's IPv4 address with prefix length (`10.0.0.5/24`); overrides autodetection.
    #[arg(long, env = "VROUTER_IPV4", value_name = "ADDR/PLEN")]
    pub ipv4: Option<String>,
    /// IPv4 autodetection: first-found (default), interface=REGEX, skip-interface=REGEX,
    /// can-reach=IP|HOST, cidr=CIDR[,CIDR], none.
    #[arg(long, env = "VROUTER_IPV4_AUTODETECT", value_name = "METHOD")]
    pub ipv4_autodetect: Option<String>,
    /// The node's IPv6 address with prefix length; overrides autodetection.
    #[arg(long, env = "VROUTER_IPV6", value_name = "ADDR/PLEN")]
    pub ipv6: Option<String>,
    /// IPv6 autodetection (same methods as IPv4) [default: none].
    #[arg(long, env = "VROUTER_IPV6_AUTODETECT", value_name = "METHOD")]
    pub ipv6_autodetect: Option<String>,
    /// etcd client URLs, comma separated [default: http://127.0.0.1:2379].
    #[arg(long, env = "VROUTER_ETCD_ENDPOINTS", value_name = "URLS")]
    pub etcd_endpoints: Option<String>,
    /// PEM file of the CA that signed etcd's certificate.
    #[arg(long, env = "VROUTER_ETCD_CA_FILE", value_name = "FILE")]
    pub etcd_ca_file: Option<String>,
    /// PEM file of the etcd client certificate.
    #[arg(long, env = "VROUTER_ETCD_CERT_FILE", value_name = "FILE")]
    pub etcd_cert_file: Option<String>,
    /// PEM file of the etcd client key.
    #[arg(long, env = "VROUTER_ETCD_KEY_FILE", value_name = "FILE")]
    pub etcd_key_file: Option<String>,
    /// Give up (exit 2) when etcd stays unreachable this long at start (`30s`, `5m`)
    /// [default: retry forever].
    #[arg(long, env = "VROUTER_ETCD_START_TIMEOUT", value_name = "DURATION")]
    pub etcd_start_timeout: Option<String>,
    /// This node's AS number (Node spec.bgp.asNumber) [default: leave the Node's as it is].
    #[arg(long, env = "VROUTER_ASN", value_name = "ASN")]
    pub asn: Option<String>,
    /// Route-reflector cluster id (Node spec.bgp.routeReflectorClusterID).
    #[arg(long, env = "VROUTER_RR_CLUSTER_ID", value_name = "IPV4")]
    pub rr_cluster_id: Option<String>,
    /// Control socket path [default: /run/vrouter/vrouter.ctl].
    #[arg(long, env = "VROUTER_CONTROL_SOCKET", value_name = "PATH")]
    pub control_socket: Option<String>,
    /// Output layout of the control socket: bird2 or bird1 [default: bird2].
    #[arg(long, env = "VROUTER_CTL_LAYOUT", value_name = "LAYOUT")]
    pub ctl_layout: Option<String>,
    /// Metrics listen address, or `off` [default: 127.0.0.1:9091].
    #[arg(long, env = "VROUTER_METRICS_LISTEN", value_name = "ADDR:PORT")]
    pub metrics_listen: Option<String>,
    /// Log format: pretty or json [default: pretty].
    #[arg(long, env = "VROUTER_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
    /// Log level or filter (`info`, `debug,bgp=trace`) [default: RUST_LOG, else info].
    #[arg(long, env = "VROUTER_LOG_LEVEL", value_name = "FILTER")]
    pub log_level: Option<String>,
    /// Directory of BGP passwords: `<dir>/<secret name>/<key>` [default: /etc/vrouter/secrets].
    #[arg(long, env = "VROUTER_SECRETS_DIR", value_name = "DIR")]
    pub secrets_dir: Option<String>,
    /// Routes only: no nftables policy.
    #[arg(long, env = "VROUTER_NO_POLICY")]
    pub no_policy: bool,
    /// How pod routes reach other nodes (Calico's CALICO_NETWORKING_BACKEND): bgp (the BGP
    /// speaker, plus VXLAN for pools that ask for it), vxlan (no BGP: VXLAN pools only) or
    /// none (no BGP, no tunnel address) [default: bgp].
    #[arg(long, env = "VROUTER_NETWORKING_BACKEND", value_name = "BACKEND")]
    pub networking_backend: Option<String>,
}

/// One setting, named the same way in every source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Key {
    /// `--node-name`.
    NodeName,
    /// `--ipv4`.
    Ipv4,
    /// `--ipv4-autodetect`.
    Ipv4Autodetect,
    /// `--ipv6`.
    Ipv6,
    /// `--ipv6-autodetect`.
    Ipv6Autodetect,
    /// `--etcd-endpoints`.
    EtcdEndpoints,
    /// `--etcd-ca-file`.
    EtcdCaFile,
    /// `--etcd-cert-file`.
    EtcdCertFile,
    /// `--etcd-key-file`.
    EtcdKeyFile,
    /// `--etcd-start-timeout`.
    EtcdStartTimeout,
    /// `--asn`.
    Asn,
    /// `--rr-cluster-id`.
    RrClusterId,
    /// `--control-socket`.
    ControlSocket,
    /// `--ctl-layout`.
    CtlLayout,
    /// `--metrics-listen`.
    MetricsListen,
    /// `--log-format`.
    LogFormat,
    /// `--log-level`.
    LogLevel,
    /// `--secrets-dir`.
    SecretsDir,
    /// `--no-policy`.
    NoPolicy,
    /// `--networking-backend`.
    NetworkingBackend,
}

impl Key {
    /// Every key, in flag order.
    pub const ALL: [Key; 20] = [
        Key::NodeName,
        Key::Ipv4,
        Key::Ipv4Autodetect,
        Key::Ipv6,
        Key::Ipv6Autodetect,
        Key::EtcdEndpoints,
        Key::EtcdCaFile,
        Key::EtcdCertFile,
        Key::EtcdKeyFile,
        Key::EtcdStartTimeout,
        Key::Asn,
        Key::RrClusterId,
        Key::ControlSocket,
        Key::CtlLayout,
        Key::MetricsListen,
        Key::LogFormat,
        Key::LogLevel,
        Key::SecretsDir,
        Key::NoPolicy,
        Key::NetworkingBackend,
    ];

    /// The flag without its dashes (`etcd-ca-file`).
    pub fn flag(self) -> &'static str {
        match self {
            Key::NodeName => "node-name",
            Key::Ipv4 => "ipv4",
            Key::Ipv4Autodetect => "ipv4-autodetect",
            Key::Ipv6 => "ipv6",
            Key::Ipv6Autodetect => "ipv6-autodetect",
            Key::EtcdEndpoints => "etcd-endpoints",
            Key::EtcdCaFile => "etcd-ca-file",
            Key::EtcdCertFile => "etcd-cert-file",
            Key::EtcdKeyFile => "etcd-key-file",
            Key::EtcdStartTimeout => "etcd-start-timeout",
            Key::Asn => "asn",
            Key::RrClusterId => "rr-cluster-id",
            Key::ControlSocket => "control-socket",
            Key::CtlLayout => "ctl-layout",
            Key::MetricsListen => "metrics-listen",
            Key::LogFormat => "log-format",
            Key::LogLevel => "log-level",
            Key::SecretsDir => "secrets-dir",
            Key::NoPolicy => "no-policy",
            Key::NetworkingBackend => "networking-backend",
        }
    }

    /// The environment variable (`VROUTER_ETCD_CA_FILE`).
    pub fn env(self) -> String {
        format!("VROUTER_{}", self.flag().to_uppercase().replace('-', "_"))
    }

    /// The config file key (`etcdCaFile`).
    pub fn file_key(self) -> String {
        let mut out = String::new();
        let mut upper = false;
        for c in self.flag().chars() {
            if c == '-' {
                upper = true;
            } else if upper {
                out.push(c.to_ascii_uppercase());
                upper = false;
            } else {
                out.push(c);
            }
        }
        out
    }

    fn from_file_key(key: &str) -> Option<Key> {
        Key::ALL.into_iter().find(|k| k.file_key() == key)
    }

    /// clap's argument id (`etcd_ca_file`).
    fn arg_id(self) -> String {
        self.flag().replace('-', "_")
    }
}

/// Where a value came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A command-line flag.
    Flag,
    /// A `VROUTER_*` environment variable.
    Env,
    /// The config file at this path.
    File(PathBuf),
}

/// A value and where it came from, for error messages and the start-up log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sourced {
    /// Which setting.
    pub key: Key,
    /// Where it was given.
    pub origin: Origin,
    /// The text as given.
    pub value: String,
}

impl fmt::Display for Sourced {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.origin {
            Origin::Flag => write!(f, "flag --{}", self.key.flag()),
            Origin::Env => write!(f, "environment {}", self.key.env()),
            Origin::File(path) => write!(f, "{} in {}", self.key.file_key(), path.display()),
        }
    }
}

/// Errors resolving the configuration (vrouterd exits 1 on any of them).
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// A value is unusable; the message names the flag, variable or file key and the value.
    #[error("{given}: {value:?} is not valid: {reason}", value = given.value)]
    Invalid {
        /// The value and its origin.
        given: Box<Sourced>,
        /// What is wrong.
        reason: String,
    },
    /// The config file cannot be read or parsed.
    #[error("config file {}: {reason}", path.display())]
    File {
        /// Its path.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// Settings that contradict each other or are missing.
    #[error("{0}")]
    Inconsistent(String),
    /// The command line itself (unknown flag, `--help`, `--version`).
    #[error(transparent)]
    Cli(#[from] clap::Error),
}

fn invalid(given: &Sourced, reason: impl Into<String>) -> ConfigError {
    ConfigError::Invalid {
        given: Box::new(given.clone()),
        reason: reason.into(),
    }
}

/// How the node's address of one family is chosen.
#[derive(Debug, Clone)]
pub enum AddressChoice {
    /// Given explicitly.
    Fixed(IpNetwork),
    /// Detected at start (and on SIGHUP).
    Autodetect(Method),
    /// No address of this family.
    Disabled,
}

impl PartialEq for AddressChoice {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

impl fmt::Display for AddressChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressChoice::Fixed(net) => write!(f, "{net}"),
            AddressChoice::Autodetect(method) => write!(f, "autodetect {method}"),
            AddressChoice::Disabled => f.write_str("none"),
        }
    }
}

/// Calico's address autodetection methods (`IP_AUTODETECTION_METHOD`).
#[derive(Debug, Clone)]
pub enum Method {
    /// The first address of the first interface not on the skip list.
    FirstFound,
    /// The first address of the first interface whose name matches.
    Interface(Regex),
    /// Like first-found, also skipping interfaces whose name matches.
    SkipInterface(Regex),
    /// The source address the kernel picks to reach this destination (no packet is sent).
    CanReach(String),
    /// The first address inside one of these networks.
    Cidr(Vec<IpNetwork>),
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Method::FirstFound => f.write_str("first-found"),
            Method::Interface(r) => write!(f, "interface={}", r.as_str()),
            Method::SkipInterface(r) => write!(f, "skip-interface={}", r.as_str()),
            Method::CanReach(dest) => write!(f, "can-reach={dest}"),
            Method::Cidr(nets) => {
                let text: Vec<String> = nets.iter().map(ToString::to_string).collect();
                write!(f, "cidr={}", text.join(","))
            }
        }
    }
}

impl Method {
    /// Parses a method; `Ok(None)` for `none`.
    pub fn parse(text: &str) -> Result<Option<Method>, String> {
        let text = text.trim();
        if text == "none" {
            return Ok(None);
        }
        if text == "first-found" {
            return Ok(Some(Method::FirstFound));
        }
        let Some((name, arg)) = text.split_once('=') else {
            return Err(
                "expected first-found, interface=REGEX, skip-interface=REGEX, \
                        can-reach=IP|HOST, cidr=CIDR[,CIDR] or none"
                    .to_string(),
            );
        };
        let regex = |arg: &str| Regex::new(arg).map_err(|e| format!("bad regular expression: {e}"));
        match name {
            "interface" => Ok(Some(Method::Interface(regex(arg)?))),
            "skip-interface" => Ok(Some(Method::SkipInterface(regex(arg)?))),
            "can-reach" if !arg.is_empty() => Ok(Some(Method::CanReach(arg.to_string()))),
            "can-reach" => Err("can-reach needs an address or host name".to_string()),
            "cidr" => {
                let nets = arg
                    .split(',')
                    .map(|c| {
                        c.trim()
                            .parse::<IpNetwork>()
                            .map_err(|e| format!("bad CIDR {c:?}: {e}"))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Some(Method::Cidr(nets)))
            }
            other => Err(format!("unknown autodetection method {other:?}")),
        }
    }
}

/// Layout of `show protocols` on the control socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtlLayout {
    /// BIRD 2's.
    Bird2,
    /// BIRD 1.6's (what calicoctl-style tools parse).
    Bird1,
}

/// How pod traffic reaches other nodes (Calico's `CALICO_NETWORKING_BACKEND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The BGP speaker runs; pools with `vxlanMode` are tunnelled by the agent.
    Bgp,
    /// No BGP speaker: only VXLAN pools reach other nodes.
    Vxlan,
    /// Neither BGP nor a tunnel address (policy only).
    None,
}

impl Backend {
    /// Whether the BGP speaker runs.
    pub fn bgp(self) -> bool {
        self == Backend::Bgp
    }

    /// Whether this node gets a VXLAN tunnel address when a pool needs one.
    pub fn tunnel(self) -> bool {
        self != Backend::None
    }
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The resolved, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// The config file that was read (or would have been).
    pub config_path: PathBuf,
    /// This node's name.
    pub node_name: String,
    /// How the IPv4 address is chosen.
    pub ipv4: AddressChoice,
    /// How the IPv6 address is chosen.
    pub ipv6: AddressChoice,
    /// How to reach etcd.
    pub etcd: EtcdConfig,
    /// Exit 2 when etcd is unreachable this long at start; `None`: wait forever.
    pub etcd_start_timeout: Option<Duration>,
    /// Node AS number to register, if given.
    pub asn: Option<u32>,
    /// Route-reflector cluster id to register, if given.
    pub rr_cluster_id: Option<Ipv4Addr>,
    /// Control socket path.
    pub control_socket: PathBuf,
    /// Control socket output layout.
    pub ctl_layout: CtlLayout,
    /// Metrics listen address; `None` = off.
    pub metrics_listen: Option<SocketAddr>,
    /// Log format.
    pub log_format: LogFormat,
    /// Log filter given explicitly; `None`: `RUST_LOG`, else `info`.
    pub log_level: Option<String>,
    /// Directory of BGP password secrets.
    pub secrets_dir: PathBuf,
    /// Enforce policy with nftables.
    pub policy: bool,
    /// Networking backend.
    pub backend: Backend,
    /// Every value that did not come from a default, for the start-up log.
    pub given: Vec<Sourced>,
}

/// Parses the command line (clap reads the `VROUTER_*` environment), reads the config file and
/// resolves everything. `hostname` is the default node name.
pub fn load(args: &[OsString], hostname: Option<String>) -> Result<Config, ConfigError> {
    let (config_path, explicit, given) = from_command_line(args)?;
    let file = read_file(&config_path, explicit)?;
    let mut values = given;
    for sourced in file {
        if !values.iter().any(|v| v.key == sourced.key) {
            values.push(sourced);
        }
    }
    resolve(config_path, values, hostname)
}

/// The command line's and environment's values, and which config file to read.
fn from_command_line(args: &[OsString]) -> Result<(PathBuf, bool, Vec<Sourced>), ConfigError> {
    let matches = Cli::command().try_get_matches_from(args)?;
    let cli = Cli::from_arg_matches(&matches)?;
    let origin = |id: &str| match matches.value_source(id) {
        Some(ValueSource::CommandLine) => Some(Origin::Flag),
        Some(ValueSource::EnvVariable) => Some(Origin::Env),
        _ => None,
    };
    let (config_path, explicit) = match &cli.config {
        Some(path) => (path.clone(), true),
        None => (PathBuf::from(DEFAULT_CONFIG_PATH), false),
    };
    let mut values = Vec::new();
    for key in Key::ALL {
        let Some(origin) = origin(&key.arg_id()) else {
            continue;
        };
        let value = match key {
            Key::NodeName => cli.node_name.clone(),
            Key::Ipv4 => cli.ipv4.clone(),
            Key::Ipv4Autodetect => cli.ipv4_autodetect.clone(),
            Key::Ipv6 => cli.ipv6.clone(),
            Key::Ipv6Autodetect => cli.ipv6_autodetect.clone(),
            Key::EtcdEndpoints => cli.etcd_endpoints.clone(),
            Key::EtcdCaFile => cli.etcd_ca_file.clone(),
            Key::EtcdCertFile => cli.etcd_cert_file.clone(),
            Key::EtcdKeyFile => cli.etcd_key_file.clone(),
            Key::EtcdStartTimeout => cli.etcd_start_timeout.clone(),
            Key::Asn => cli.asn.clone(),
            Key::RrClusterId => cli.rr_cluster_id.clone(),
            Key::ControlSocket => cli.control_socket.clone(),
            Key::CtlLayout => cli.ctl_layout.clone(),
            Key::MetricsListen => cli.metrics_listen.clone(),
            Key::LogFormat => cli.log_format.clone(),
            Key::LogLevel => cli.log_level.clone(),
            Key::SecretsDir => cli.secrets_dir.clone(),
            Key::NoPolicy => Some(cli.no_policy.to_string()),
            Key::NetworkingBackend => cli.networking_backend.clone(),
        };
        if let Some(value) = value {
            values.push(Sourced { key, origin, value });
        }
    }
    Ok((config_path, explicit, values))
}

/// Reads the config file; a missing file is an error only when it was named explicitly.
pub fn read_file(path: &Path, explicit: bool) -> Result<Vec<Sourced>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => return Ok(Vec::new()),
        Err(e) => return Err(file_error(e.to_string())),
    };
    parse_file(path, &text)
}

/// Parses the config file's text: a YAML mapping of known keys to scalars (`etcdEndpoints`
/// may also be a list).
pub fn parse_file(path: &Path, text: &str) -> Result<Vec<Sourced>, ConfigError> {
    let file_error = |reason: String| ConfigError::File {
        path: path.to_path_buf(),
        reason,
    };
    if text.trim().is_empty() {
        return Ok(Vec::new());
    }
    let map: Option<BTreeMap<String, serde_json::Value>> =
        yaml_serde::from_str(text).map_err(|e| file_error(e.to_string()))?;
    let mut values = Vec::new();
    for (name, value) in map.unwrap_or_default() {
        let key = Key::from_file_key(&name).ok_or_else(|| {
            let known: Vec<String> = Key::ALL.iter().map(|k| k.file_key()).collect();
            file_error(format!(
                "unknown key {name:?} (known: {})",
                known.join(", ")
            ))
        })?;
        let text = match value {
            serde_json::Value::Null => continue,
            serde_json::Value::String(s) => s,
            serde_json::Value::Bool(b) => b.to_string(),
            serde_json::Value::Number(n) => n.to_string(),
            serde_json::Value::Array(items) => {
                let mut parts = Vec::new();
                for item in items {
                    match item {
                        serde_json::Value::String(s) => parts.push(s),
                        other => {
                            return Err(file_error(format!(
                                "{name}: list items must be strings, found {other}"
                            )));
                        }
                    }
                }
                parts.join(",")
            }
            serde_json::Value::Object(_) => {
                return Err(file_error(format!(
                    "{name}: expected a value, found a mapping"
                )));
            }
        };
        values.push(Sourced {
            key,
            origin: Origin::File(path.to_path_buf()),
            value: text,
        });
    }
    Ok(values)
}

/// Validates collected values (at most one per key; the caller applied precedence) into a
/// [`Config`]. Pure.
pub fn resolve(
    config_path: PathBuf,
    values: Vec<Sourced>,
    hostname: Option<String>,
) -> Result<Config, ConfigError> {
    let get = |key: Key| values.iter().find(|v| v.key == key);
    let node_name = match get(Key::NodeName) {
        Some(given) => {
            check_node_name(&given.value).map_err(|reason| invalid(given, reason))?;
            given.value.clone()
        }
        None => {
            let host = hostname.unwrap_or_default();
            let host = host.trim().to_lowercase();
            check_node_name(&host).map_err(|reason| {
                ConfigError::Inconsistent(format!(
                    "the hostname {host:?} is not a valid node name ({reason}); set --node-name"
                ))
            })?;
            host
        }
    };
    let ipv4 = address_choice(get(Key::Ipv4), get(Key::Ipv4Autodetect), true)?;
    let ipv6 = address_choice(get(Key::Ipv6), get(Key::Ipv6Autodetect), false)?;

    let mut etcd = EtcdConfig::new([DEFAULT_ETCD_ENDPOINT]);
    if let Some(given) = get(Key::EtcdEndpoints) {
        etcd.endpoints =
            EtcdConfig::parse_endpoints(&given.value).map_err(|e| invalid(given, e.to_string()))?;
        let probe = EtcdConfig::new(etcd.endpoints.clone());
        probe
            .validate()
            .map_err(|e| invalid(given, e.to_string()))?;
    }
    let path_of = |key: Key| get(key).map(|g| PathBuf::from(&g.value));
    let tls = TlsConfig {
        ca_cert: path_of(Key::EtcdCaFile),
        cert: path_of(Key::EtcdCertFile),
        key: path_of(Key::EtcdKeyFile),
    };
    if tls.cert.is_some() != tls.key.is_some() {
        return Err(ConfigError::Inconsistent(
            "--etcd-cert-file and --etcd-key-file must be given together".to_string(),
        ));
    }
    if tls != TlsConfig::default() {
        etcd.tls = Some(tls);
    }
    let etcd_start_timeout = match get(Key::EtcdStartTimeout) {
        None => None,
        Some(given) => {
            let d = parse_duration(&given.value)
                .ok_or_else(|| invalid(given, "expected a duration such as 30s, 5m or 1h30m"))?;
            (!d.is_zero()).then_some(d)
        }
    };
    let asn = match get(Key::Asn) {
        None => None,
        Some(given) => {
            let asn = AsNumber::parse(given.value.trim())
                .ok_or_else(|| invalid(given, "expected an AS number (64512 or asdot 1.10)"))?;
            if asn.get() == 0 {
                return Err(invalid(given, "AS 0 is reserved"));
            }
            Some(asn.get())
        }
    };
    let rr_cluster_id = match get(Key::RrClusterId) {
        None => None,
        Some(given) => Some(
            given
                .value
                .trim()
                .parse::<Ipv4Addr>()
                .map_err(|_| invalid(given, "expected an IPv4 dotted quad"))?,
        ),
    };
    let control_socket = get(Key::ControlSocket)
        .map(|g| PathBuf::from(&g.value))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_CONTROL_SOCKET));
    let ctl_layout = match get(Key::CtlLayout) {
        None => CtlLayout::Bird2,
        Some(given) => match given.value.trim() {
            "bird2" => CtlLayout::Bird2,
            "bird1" => CtlLayout::Bird1,
            _ => return Err(invalid(given, "expected bird2 or bird1")),
        },
    };
    let metrics_listen = match get(Key::MetricsListen) {
        None => Some(
            parse_listen(DEFAULT_METRICS_LISTEN)
                .unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, 9091))),
        ),
        Some(given) if given.value.trim() == "off" => None,
        Some(given) => Some(
            parse_listen(&given.value)
                .ok_or_else(|| invalid(given, "expected ADDRESS:PORT (127.0.0.1:9091) or off"))?,
        ),
    };
    let log_format = match get(Key::LogFormat) {
        None => LogFormat::Pretty,
        Some(given) => match given.value.trim() {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => return Err(invalid(given, "expected pretty or json")),
        },
    };
    let log_level = match get(Key::LogLevel) {
        None => None,
        Some(given) => {
            tracing_subscriber::EnvFilter::try_new(given.value.trim())
                .map_err(|e| invalid(given, format!("not a log level or filter: {e}")))?;
            Some(given.value.trim().to_string())
        }
    };
    let secrets_dir = get(Key::SecretsDir)
        .map(|g| PathBuf::from(&g.value))
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SECRETS_DIR));
    let policy = match get(Key::NoPolicy) {
        None => true,
        Some(given) => {
            !parse_bool(&given.value).ok_or_else(|| invalid(given, "expected true or false"))?
        }
    };
    let backend = match get(Key::NetworkingBackend) {
        None => Backend::Bgp,
        Some(given) => match given.value.trim() {
            "bgp" | "bird" => Backend::Bgp,
            "vxlan" => Backend::Vxlan,
            "none" => Backend::None,
            _ => return Err(invalid(given, "expected bgp, vxlan or none")),
        },
    };
    Ok(Config {
        backend,
        config_path,
        node_name,
        ipv4,
        ipv6,
        etcd,
        etcd_start_timeout,
        asn,
        rr_cluster_id,
        control_socket,
        ctl_layout,
        metrics_listen,
        log_format,
        log_level,
        secrets_dir,
        policy,
        given: values,
    })
}

fn address_choice(
    fixed: Option<&Sourced>,
    method: Option<&Sourced>,
    v4: bool,
) -> Result<AddressChoice, ConfigError> {
    if let Some(given) = fixed {
        let text = given.value.trim();
        match text {
            // Calico's IP=autodetect / IP=none.
            "autodetect" => {}
            "none" => return Ok(AddressChoice::Disabled),
            _ => {
                let net: IpNetwork = text.parse().map_err(|_| {
                    invalid(given, "expected ADDRESS/PREFIXLEN, autodetect or none")
                })?;
                if net.is_ipv4() != v4 {
                    let want = if v4 { "an IPv4" } else { "an IPv6" };
                    return Err(invalid(given, format!("expected {want} address")));
                }
                if !text.contains('/') {
                    return Err(invalid(given, "the prefix length is missing (10.0.0.5/24)"));
                }
                return Ok(AddressChoice::Fixed(net));
            }
        }
    }
    match method {
        Some(given) => match Method::parse(&given.value).map_err(|r| invalid(given, r))? {
            Some(m) => {
                if let Method::Cidr(nets) = &m
                    && nets.iter().any(|n| n.is_ipv4() != v4)
                {
                    return Err(invalid(given, "a CIDR of the other address family"));
                }
                Ok(AddressChoice::Autodetect(m))
            }
            None => Ok(AddressChoice::Disabled),
        },
        None if v4 => Ok(AddressChoice::Autodetect(Method::FirstFound)),
        None => Ok(AddressChoice::Disabled),
    }
}

/// `127.0.0.1:9091`, `[::1]:9091`, `:9091` (all addresses).
fn parse_listen(text: &str) -> Option<SocketAddr> {
    let text = text.trim();
    if let Some(port) = text.strip_prefix(':') {
        return Some(SocketAddr::new(
            IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            port.parse().ok()?,
        ));
    }
    text.parse().ok()
}

fn parse_bool(text: &str) -> Option<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Some(true),
        "false" | "0" | "no" | "off" | "" => Some(false),
        _ => None,
    }
}

/// `30s`, `5m`, `1h30m`, `500ms`, or plain seconds.
fn parse_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    bgp::speaker::cluster::parse_go_duration(text)
}

/// A Kubernetes/Calico node name: a DNS subdomain (lower-case alphanumerics, `-`, `.`).
fn check_node_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters".to_string());
    }
    let ok_chars = name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.');
    let ok_ends = name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.ends_with(|c: char| c.is_ascii_alphanumeric());
    if !(ok_chars && ok_ends) {
        return Err(
            "must be lower-case letters, digits, '-' and '.', starting and ending with a letter or digit"
                .to_string(),
        );
    }
    Ok(())
}

/// The host name (`/proc/sys/kernel/hostname`), the default node name.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
}

#[cfg(test)]
mod tests;
