//! The CNI protocol (spec 1.0.0 and 1.1.0): commands, the environment a runtime passes,
//! results, errors with their well-known codes, and version negotiation. No I/O: the
//! binaries hand in the environment and stdin, and print what these types serialize to.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Spec versions these plugins speak (reported by `VERSION`).
pub const SUPPORTED_VERSIONS: [&str; 2] = ["1.0.0", "1.1.0"];

/// Well-known error codes (CNI spec "Well-known Error Codes").
pub mod code {
    /// Incompatible CNI version.
    pub const INCOMPATIBLE_VERSION: u32 = 1;
    /// Unsupported field in the network configuration.
    pub const UNSUPPORTED_FIELD: u32 = 2;
    /// Container unknown or does not exist.
    pub const UNKNOWN_CONTAINER: u32 = 3;
    /// Invalid necessary environment variables (the message names the variable).
    pub const INVALID_ENVIRONMENT: u32 = 4;
    /// I/O failure.
    pub const IO_FAILURE: u32 = 5;
    /// Failed to decode content (stdin is not a network configuration).
    pub const DECODE: u32 = 6;
    /// Invalid network configuration.
    pub const INVALID_CONFIG: u32 = 7;
    /// Try again later (e.g. the IP pools are exhausted right now).
    pub const TRY_AGAIN_LATER: u32 = 11;
    /// `STATUS`: the plugin cannot service ADD requests (etcd unreachable).
    pub const NOT_AVAILABLE: u32 = 50;
    /// vrouter-specific: `CHECK` found the attachment not as `ADD` left it.
    pub const CHECK_FAILED: u32 = 100;
    /// vrouter-specific: programming the kernel (veth, addresses, routes) failed.
    pub const DATAPLANE: u32 = 101;
}

/// A CNI error: printed to stdout as JSON, with a non-zero exit status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[error("CNI error {code}: {msg}")]
pub struct CniError {
    /// Spec version of the error document.
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Error code (see [`code`]).
    pub code: u32,
    /// Short message.
    pub msg: String,
    /// Longer explanation.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub details: String,
}

impl CniError {
    /// An error with `code` and `msg`.
    pub fn new(code: u32, msg: impl Into<String>) -> Self {
        Self {
            cni_version: SUPPORTED_VERSIONS[1].to_string(),
            code,
            msg: msg.into(),
            details: String::new(),
        }
    }

    /// Adds details.
    pub fn with_details(mut self, details: impl Into<String>) -> Self {
        self.details = details.into();
        self
    }

    /// Sets the version the error document claims (the request's, when known).
    pub fn in_version(mut self, version: &str) -> Self {
        if !version.is_empty() {
            self.cni_version = version.to_string();
        }
        self
    }

    /// The JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("invariant: errors serialize")
    }
}

/// The operation requested through `CNI_COMMAND`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Attach a container.
    Add,
    /// Detach (idempotent).
    Del,
    /// Verify an attachment.
    Check,
    /// Report supported versions.
    Version,
    /// Report readiness (1.1.0).
    Status,
    /// Garbage-collect attachments not in the valid list (1.1.0).
    Gc,
}

impl Command {
    fn parse(text: &str) -> Option<Command> {
        Some(match text {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            _ => return None,
        })
    }
}

/// The `CNI_*` environment of one invocation.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Environment {
    /// `CNI_CONTAINERID` (empty for VERSION/STATUS/GC).
    pub container_id: String,
    /// `CNI_NETNS`: path of the network namespace (`None` when not given; DEL may omit it).
    pub netns: Option<String>,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS` as `key=value` pairs (`K8S_POD_NAMESPACE`, `K8S_POD_NAME`, ...).
    pub args: BTreeMap<String, String>,
    /// `CNI_PATH`: directories searched for delegated plugins.
    pub path: Vec<String>,
}

fn missing(var: &str, command: &str) -> CniError {
    CniError::new(
        code::INVALID_ENVIRONMENT,
        format!("required environment variable {var} is not set"),
    )
    .with_details(format!("{command} needs {var}"))
}

/// Reads `CNI_COMMAND` and the variables that command requires (through `var`, so tests
/// need not touch the process environment). A missing required variable is code 4 naming
/// it.
pub fn read_environment(
    var: impl Fn(&str) -> Option<String>,
) -> Result<(Command, Environment), CniError> {
    let get = |name: &str| var(name).filter(|v| !v.is_empty());
    let command_text = get("CNI_COMMAND").ok_or_else(|| missing("CNI_COMMAND", "every call"))?;
    let command = Command::parse(&command_text).ok_or_else(|| {
        CniError::new(
            code::INVALID_ENVIRONMENT,
            format!("CNI_COMMAND {command_text:?} is not ADD, DEL, CHECK, VERSION, STATUS or GC"),
        )
    })?;
    let required: &[&str] = match command {
        Command::Add | Command::Check => {
            &["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"]
        }
        Command::Del => &["CNI_CONTAINERID", "CNI_IFNAME", "CNI_PATH"],
        Command::Gc | Command::Status => &["CNI_PATH"],
        Command::Version => &[],
    };
    for name in required {
        if get(name).is_none() {
            return Err(missing(name, &command_text));
        }
    }
    let mut args = BTreeMap::new();
    if let Some(text) = get("CNI_ARGS") {
        for pair in text.split(';').filter(|p| !p.is_empty()) {
            let Some((k, v)) = pair.split_once('=') else {
                return Err(CniError::new(
                    code::INVALID_ENVIRONMENT,
                    format!("CNI_ARGS entry {pair:?} is not KEY=VALUE"),
                ));
            };
            args.insert(k.to_string(), v.to_string());
        }
    }
    Ok((
        command,
        Environment {
            container_id: get("CNI_CONTAINERID").unwrap_or_default(),
            netns: get("CNI_NETNS"),
            ifname: get("CNI_IFNAME").unwrap_or_default(),
            args,
            path: get("CNI_PATH")
                .map(|p| {
                    p.split(':')
                        .filter(|d| !d.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
        },
    ))
}

/// Checks the configuration's `cniVersion` (code 1 when unsupported).
pub fn check_version(version: &str) -> Result<(), CniError> {
    if SUPPORTED_VERSIONS.contains(&version) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("unsupported cniVersion {version:?}"),
        )
        .with_details(format!(
            "supported versions: {}",
            SUPPORTED_VERSIONS.join(", ")
        )))
    }
}

/// The `VERSION` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionResult {
    /// Version of this document.
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Every version the plugin speaks.
    #[serde(rename = "supportedVersions")]
    pub supported_versions: Vec<String>,
}

impl VersionResult {
    /// The plugins' answer.
    pub fn ours() -> Self {
        Self {
            cni_version: SUPPORTED_VERSIONS[1].to_string(),
            supported_versions: SUPPORTED_VERSIONS.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// An interface in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interface {
    /// Name.
    pub name: String,
    /// MAC address.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub mac: String,
    /// Netns path for interfaces inside the sandbox.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<String>,
}

/// An address in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpConfig {
    /// `ip/prefix`.
    pub address: String,
    /// Gateway, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<String>,
    /// Index into `interfaces`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interface: Option<usize>,
}

/// A route in a result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Route {
    /// Destination CIDR.
    pub dst: String,
    /// Next hop.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gw: Option<String>,
}

/// DNS settings in a result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dns {
    /// Name servers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nameservers: Vec<String>,
    /// Local domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub domain: Option<String>,
    /// Search domains.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub search: Vec<String>,
    /// Resolver options.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub options: Vec<String>,
}

/// The result of ADD (and the `prevResult` of DEL/CHECK).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CniResult {
    /// Version of this document (the request's).
    #[serde(rename = "cniVersion", default)]
    pub cni_version: String,
    /// Interfaces created.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub interfaces: Vec<Interface>,
    /// Addresses assigned.
    #[serde(default)]
    pub ips: Vec<IpConfig>,
    /// Routes in the sandbox.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<Route>,
    /// DNS settings.
    #[serde(default)]
    pub dns: Dns,
}

impl CniResult {
    /// The JSON document.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("invariant: results serialize")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn add_needs_every_variable_and_names_the_missing_one() {
        let full = [
            ("CNI_COMMAND", "ADD"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_NETNS", "/var/run/netns/x"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin:/usr/lib/cni"),
            (
                "CNI_ARGS",
                "IgnoreUnknown=1;K8S_POD_NAMESPACE=prod;K8S_POD_NAME=web-0",
            ),
        ];
        let (command, e) = read_environment(env(&full)).expect("complete");
        assert_eq!(command, Command::Add);
        assert_eq!(e.path, ["/opt/cni/bin", "/usr/lib/cni"]);
        assert_eq!(e.args["K8S_POD_NAME"], "web-0");
        for skip in ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_PATH"] {
            let partial: Vec<_> = full.iter().copied().filter(|(k, _)| *k != skip).collect();
            let err = read_environment(env(&partial)).expect_err(skip);
            assert_eq!(err.code, code::INVALID_ENVIRONMENT);
            assert!(err.msg.contains(skip), "{}", err.msg);
        }
    }

    #[test]
    fn del_may_omit_the_netns_and_bad_commands_are_code_4() {
        let del = [
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/opt/cni/bin"),
        ];
        let (_, e) = read_environment(env(&del)).expect("no netns is fine");
        assert_eq!(e.netns, None);
        let err = read_environment(env(&[("CNI_COMMAND", "FROB")])).expect_err("bad");
        assert_eq!(err.code, code::INVALID_ENVIRONMENT);
        let err = read_environment(env(&[])).expect_err("none");
        assert!(err.msg.contains("CNI_COMMAND"));
        let (command, _) = read_environment(env(&[("CNI_COMMAND", "VERSION")])).expect("ok");
        assert_eq!(command, Command::Version);
    }

    #[test]
    fn versions_and_documents() {
        assert!(check_version("1.0.0").is_ok());
        assert!(check_version("1.1.0").is_ok());
        assert_eq!(check_version("0.4.0").expect_err("old").code, 1);
        let v = serde_json::to_value(VersionResult::ours()).expect("json");
        assert_eq!(
            v["supportedVersions"],
            serde_json::json!(["1.0.0", "1.1.0"])
        );
        let err = CniError::new(code::TRY_AGAIN_LATER, "pools exhausted").in_version("1.0.0");
        assert_eq!(
            err.to_json(),
            r#"{"cniVersion":"1.0.0","code":11,"msg":"pools exhausted"}"#
        );
        let result = CniResult {
            cni_version: "1.0.0".into(),
            ips: vec![IpConfig {
                address: "10.0.0.5/32".into(),
                gateway: None,
                interface: Some(1),
            }],
            ..CniResult::default()
        };
        assert_eq!(
            result.to_json(),
            r#"{"cniVersion":"1.0.0","ips":[{"address":"10.0.0.5/32","interface":1}],"dns":{}}"#
        );
    }
}
