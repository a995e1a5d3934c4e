//! `vrouter-reflector`'s configuration: flags (and `VROUTER_REFLECTOR_*` environment) over an
//! optional YAML file (`--config`, camelCase keys of the same names), over defaults, resolved
//! into one validated [`Config`]. Errors name the flag or file key and the bad value.
//!
//! Identity: `--router-id` (BGP identifier), `--cluster-id` (RFC 4456 CLUSTER_ID, default the
//! router id), `--listen <addr>[:port]` (the address sessions use, default the router id on
//! port 179), `--asn` (default 64512). Clients: every Node in etcd, or those the Calico
//! selector `--client-selector` matches.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};

use clap::Parser;
use datastore::etcd::{EtcdConfig, TlsConfig};
use serde::Deserialize;

/// Default control socket path.
pub const DEFAULT_CONTROL_SOCKET: &str = "/run/vrouter/reflector.ctl";
/// Default metrics listen address.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9092";
/// Default AS (Calico's).
pub const DEFAULT_ASN: u32 = 64512;

/// Command line of `vrouter-reflector`.
#[derive(Debug, Clone, Default, Parser)]
#[command(
    name = "vrouter-reflector",
    version,
    about = "BGP route reflector (RFC 4456) for vrouter nodes, clients from etcd"
)]
pub struct Cli {
    /// YAML config file with the same settings in camelCase (`routerId`, `clusterId`, …).
    #[arg(long, env = "VROUTER_REFLECTOR_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// BGP identifier (IPv4).
    #[arg(long, env = "VROUTER_REFLECTOR_ROUTER_ID", value_name = "IPV4")]
    pub router_id: Option<String>,
    /// Route-reflector cluster id (IPv4) [default: the router id]. Reflectors that back each
    /// other up share one.
    #[arg(long, env = "VROUTER_REFLECTOR_CLUSTER_ID", value_name = "IPV4")]
    pub cluster_id: Option<String>,
    /// Address (and port) to listen on and to source sessions from [default: router id:179].
    #[arg(long, env = "VROUTER_REFLECTOR_LISTEN", value_name = "ADDR[:PORT]")]
    pub listen: Option<String>,
    /// AS number [default: 64512].
    #[arg(long, env = "VROUTER_REFLECTOR_ASN", value_name = "ASN")]
    pub asn: Option<String>,
    /// etcd client URLs, comma separated [default: http://127.0.0.1:2379].
    #[arg(long, env = "VROUTER_REFLECTOR_ETCD_ENDPOINTS", value_name = "URLS")]
    pub etcd_endpoints: Option<String>,
    /// PEM file of the CA that signed etcd's certificate.
    #[arg(long, env = "VROUTER_REFLECTOR_ETCD_CA_FILE", value_name = "FILE")]
    pub etcd_ca_file: Option<String>,
    /// PEM file of the etcd client certificate.
    #[arg(long, env = "VROUTER_REFLECTOR_ETCD_CERT_FILE", value_name = "FILE")]
    pub etcd_cert_file: Option<String>,
    /// PEM file of the etcd client key.
    #[arg(long, env = "VROUTER_REFLECTOR_ETCD_KEY_FILE", value_name = "FILE")]
    pub etcd_key_file: Option<String>,
    /// Calico selector over Node labels choosing the clients [default: all()].
    #[arg(
        long,
        env = "VROUTER_REFLECTOR_CLIENT_SELECTOR",
        value_name = "SELECTOR"
    )]
    pub client_selector: Option<String>,
    /// Install the best routes into this host's kernel (protocol 81) [default: off].
    #[arg(long, env = "VROUTER_REFLECTOR_INSTALL_ROUTES")]
    pub install_routes: bool,
    /// Also connect to clients instead of only waiting for them.
    #[arg(long, env = "VROUTER_REFLECTOR_ACTIVE")]
    pub active: bool,
    /// Control socket path, or `off` [default: /run/vrouter/reflector.ctl].
    #[arg(long, env = "VROUTER_REFLECTOR_CONTROL_SOCKET", value_name = "PATH")]
    pub control_socket: Option<String>,
    /// Metrics listen address, or `off` [default: 127.0.0.1:9092].
    #[arg(
        long,
        env = "VROUTER_REFLECTOR_METRICS_LISTEN",
        value_name = "ADDR:PORT"
    )]
    pub metrics_listen: Option<String>,
    /// Log format: pretty or json [default: pretty].
    #[arg(long, env = "VROUTER_REFLECTOR_LOG_FORMAT", value_name = "FORMAT")]
    pub log_format: Option<String>,
}

/// The config file: the same settings as the flags, camelCase.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct FileConfig {
    router_id: Option<String>,
    cluster_id: Option<String>,
    listen: Option<String>,
    asn: Option<serde_json::Value>,
    etcd_endpoints: Option<String>,
    etcd_ca_file: Option<String>,
    etcd_cert_file: Option<String>,
    etcd_key_file: Option<String>,
    client_selector: Option<String>,
    install_routes: Option<bool>,
    active: Option<bool>,
    control_socket: Option<String>,
    metrics_listen: Option<String>,
    log_format: Option<String>,
}

/// Log output layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Pretty,
    /// One JSON object per line.
    Json,
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// BGP identifier.
    pub router_id: Ipv4Addr,
    /// Cluster id.
    pub cluster_id: Ipv4Addr,
    /// Session address and listen port.
    pub listen: SocketAddr,
    /// AS number.
    pub asn: u32,
    /// How to reach etcd.
    pub etcd: EtcdConfig,
    /// Selector over Node labels choosing the clients.
    pub client_selector: policy::Selector,
    /// Install best routes into the kernel.
    pub install_routes: bool,
    /// Connect to clients too.
    pub active: bool,
    /// Control socket path (None: off).
    pub control_socket: Option<PathBuf>,
    /// Metrics listen address (None: off).
    pub metrics_listen: Option<SocketAddr>,
    /// Log layout.
    pub log_format: LogFormat,
}

/// A bad setting.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// Command-line parsing failed (or `--help`/`--version`).
    #[error(transparent)]
    Cli(#[from] clap::Error),
    /// The config file could not be read or parsed.
    #[error("config file {path}: {reason}")]
    File {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A value is invalid.
    #[error("{setting} {value:?}: {reason}")]
    Invalid {
        /// `--flag` or file key that held it.
        setting: String,
        /// The value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A required setting is missing.
    #[error("{0} is required (flag or config file)")]
    Missing(&'static str),
}

/// Parses the command line and the config file it names.
pub fn load(args: &[std::ffi::OsString]) -> Result<Config, ConfigError> {
    let cli = Cli::try_parse_from(args)?;
    let file = match &cli.config {
        Some(path) => read_file(path)?,
        None => FileConfig::default(),
    };
    resolve(cli, file)
}

/// Reads a YAML config file.
pub fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    yaml_serde::from_str(&text).map_err(|e| ConfigError::File {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn invalid(setting: &str, value: &str, reason: impl ToString) -> ConfigError {
    ConfigError::Invalid {
        setting: setting.to_string(),
        value: value.to_string(),
        reason: reason.to_string(),
    }
}

/// Picks the flag value, else the file value, naming where it came from.
fn pick(flag: Option<String>, file: Option<String>, name: &str) -> Option<(String, String)> {
    match (flag, file) {
        (Some(v), _) => Some((format!("--{name}"), v)),
        (None, Some(v)) => Some((format!("{} in the config file", camel(name)), v)),
        (None, None) => None,
    }
}

fn camel(flag: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in flag.chars() {
        if c == '-' {
            upper = true;
        } else if upper {
            out.extend(c.to_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn ipv4(setting: &str, value: &str) -> Result<Ipv4Addr, ConfigError> {
    value
        .parse()
        .map_err(|_| invalid(setting, value, "not an IPv4 address"))
}

/// Resolves flags over the file into a [`Config`] (pure).
pub fn resolve(cli: Cli, file: FileConfig) -> Result<Config, ConfigError> {
    let (setting, value) = pick(cli.router_id, file.router_id, "router-id")
        .ok_or(ConfigError::Missing("--router-id"))?;
    let router_id = ipv4(&setting, &value)?;
    if router_id.is_unspecified() {
        return Err(invalid(
            &setting,
            &value,
            "the router id must not be 0.0.0.0",
        ));
    }
    let cluster_id = match pick(cli.cluster_id, file.cluster_id, "cluster-id") {
        Some((setting, value)) => ipv4(&setting, &value)?,
        None => router_id,
    };
    let listen = match pick(cli.listen, file.listen, "listen") {
        None => SocketAddr::new(IpAddr::V4(router_id), bgp::speaker::BGP_PORT),
        Some((setting, value)) => parse_listen(&value).map_err(|r| invalid(&setting, &value, r))?,
    };
    let file_asn = file.asn.map(|v| match v {
        serde_json::Value::String(s) => s,
        other => other.to_string(),
    });
    let asn = match pick(cli.asn, file_asn, "asn") {
        None => DEFAULT_ASN,
        Some((setting, value)) => match value.parse::<u32>() {
            Ok(0) => return Err(invalid(&setting, &value, "AS 0 is reserved (RFC 7607)")),
            Ok(asn) => asn,
            Err(_) => return Err(invalid(&setting, &value, "not an AS number (1-4294967295)")),
        },
    };
    let mut etcd = match pick(cli.etcd_endpoints, file.etcd_endpoints, "etcd-endpoints") {
        None => EtcdConfig::default(),
        Some((setting, value)) => EtcdConfig::new(
            EtcdConfig::parse_endpoints(&value).map_err(|e| invalid(&setting, &value, e))?,
        ),
    };
    let ca = pick(cli.etcd_ca_file, file.etcd_ca_file, "etcd-ca-file");
    let cert = pick(cli.etcd_cert_file, file.etcd_cert_file, "etcd-cert-file");
    let key = pick(cli.etcd_key_file, file.etcd_key_file, "etcd-key-file");
    if ca.is_some() || cert.is_some() || key.is_some() {
        etcd.tls = Some(TlsConfig {
            ca_cert: ca.map(|(_, v)| PathBuf::from(v)),
            cert: cert.map(|(_, v)| PathBuf::from(v)),
            key: key.map(|(_, v)| PathBuf::from(v)),
        });
    }
    etcd.validate()
        .map_err(|e| invalid("etcd", &etcd.endpoints.join(","), e))?;
    let client_selector = match pick(cli.client_selector, file.client_selector, "client-selector") {
        None => policy::Selector::parse("all()")
            .map_err(|e| invalid("--client-selector", "all()", e))?,
        Some((setting, value)) => {
            policy::Selector::parse(&value).map_err(|e| invalid(&setting, &value, e))?
        }
    };
    let control_socket = match pick(cli.control_socket, file.control_socket, "control-socket") {
        None => Some(PathBuf::from(DEFAULT_CONTROL_SOCKET)),
        Some((_, v)) if v == "off" => None,
        Some((setting, v)) if v.is_empty() => {
            return Err(invalid(&setting, &v, "give a path or `off`"));
        }
        Some((_, v)) => Some(PathBuf::from(v)),
    };
    let metrics_listen = match pick(cli.metrics_listen, file.metrics_listen, "metrics-listen") {
        None => Some(
            DEFAULT_METRICS_LISTEN
                .parse()
                .map_err(|_| invalid("--metrics-listen", DEFAULT_METRICS_LISTEN, "bad default"))?,
        ),
        Some((_, v)) if v == "off" => None,
        Some((setting, v)) => Some(
            v.parse()
                .map_err(|_| invalid(&setting, &v, "expected ADDR:PORT or `off`"))?,
        ),
    };
    let log_format = match pick(cli.log_format, file.log_format, "log-format") {
        None => LogFormat::Pretty,
        Some((_, v)) if v == "pretty" => LogFormat::Pretty,
        Some((_, v)) if v == "json" => LogFormat::Json,
        Some((setting, v)) => return Err(invalid(&setting, &v, "expected pretty or json")),
    };
    Ok(Config {
        router_id,
        cluster_id,
        listen,
        asn,
        etcd,
        client_selector,
        install_routes: cli.install_routes || file.install_routes.unwrap_or(false),
        active: cli.active || file.active.unwrap_or(false),
        control_socket,
        metrics_listen,
        log_format,
    })
}

/// `10.0.0.1`, `10.0.0.1:1179`, `fd00::1`, `[fd00::1]:1179`.
fn parse_listen(value: &str) -> Result<SocketAddr, &'static str> {
    if let Ok(ip) = value.parse::<IpAddr>() {
        return Ok(SocketAddr::new(ip, bgp::speaker::BGP_PORT));
    }
    let at: SocketAddr = value
        .parse()
        .map_err(|_| "expected ADDR or ADDR:PORT ([ADDR]:PORT for IPv6)")?;
    if at.port() == 0 {
        return Err("port 0 is not a listen port");
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn cli(args: &[&str]) -> Cli {
        let mut all = vec!["vrouter-reflector"];
        all.extend_from_slice(args);
        Cli::try_parse_from(all).unwrap()
    }

    #[test]
    fn defaults_follow_the_router_id() {
        let c = resolve(cli(&["--router-id", "10.0.0.254"]), FileConfig::default()).unwrap();
        assert_eq!(c.cluster_id, Ipv4Addr::new(10, 0, 0, 254));
        assert_eq!(c.listen, "10.0.0.254:179".parse().unwrap());
        assert_eq!(c.asn, 64512);
        assert!(!c.install_routes && !c.active);
        assert_eq!(c.metrics_listen, Some("127.0.0.1:9092".parse().unwrap()));
    }

    #[test]
    fn packaged_example_config_resolves() {
        let text = include_str!("../../packaging/vrouter-reflector.yaml");
        let file: FileConfig = yaml_serde::from_str(text).unwrap();
        let c = resolve(cli(&[]), file).unwrap();
        assert_eq!(c.router_id, Ipv4Addr::new(10, 0, 0, 250));
        assert_eq!(c.cluster_id, Ipv4Addr::new(10, 255, 0, 1));
        assert_eq!(c.listen, "10.0.0.250:179".parse().unwrap());
        assert!(!c.install_routes);
    }

    #[test]
    fn flags_beat_the_file() {
        let file: FileConfig = yaml_serde::from_str(
            "routerId: 10.0.0.1\nclusterId: 1.1.1.1\nasn: 65000\nlisten: 10.0.0.1:1179\ninstallRoutes: true\nclientSelector: \"rack == 'r1'\"\n",
        )
        .unwrap();
        let c = resolve(
            cli(&["--cluster-id", "2.2.2.2", "--metrics-listen", "off"]),
            file,
        )
        .unwrap();
        assert_eq!(c.router_id, Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(c.cluster_id, Ipv4Addr::new(2, 2, 2, 2));
        assert_eq!((c.asn, c.listen.port()), (65000, 1179));
        assert!(c.install_routes);
        assert_eq!(c.metrics_listen, None);
    }

    #[test]
    fn errors_name_the_setting_and_value() {
        let e = resolve(cli(&[]), FileConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--router-id is required (flag or config file)"
        );
        let e = resolve(cli(&["--router-id", "10.0.0.300"]), FileConfig::default()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--router-id \"10.0.0.300\": not an IPv4 address"
        );
        let file: FileConfig = yaml_serde::from_str("routerId: 10.0.0.1\nasn: 0\n").unwrap();
        let e = resolve(cli(&[]), file).unwrap_err();
        assert!(
            e.to_string().starts_with("asn in the config file \"0\""),
            "{e}"
        );
        let e = resolve(
            cli(&["--router-id", "10.0.0.1", "--client-selector", "rack =="]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(
            e.to_string().starts_with("--client-selector \"rack ==\""),
            "{e}"
        );
        let e = resolve(
            cli(&["--router-id", "10.0.0.1", "--listen", "10.0.0.1:0"]),
            FileConfig::default(),
        )
        .unwrap_err();
        assert!(e.to_string().contains("port 0"), "{e}");
        assert!(yaml_serde::from_str::<FileConfig>("routerID: 1.1.1.1\n").is_err());
    }
}
