//! Per-interface sysctls of host-side workload veths, written through `/proc/sys`.
//!
//! `/proc/sys/net` resolves to the network namespace of the thread that opens the file, so
//! the agent's dataplane thread (which entered the node's namespace) configures that
//! namespace's interfaces. Settings (calico.md §1.3, Felix `configureProcSysForInterface`):
//!
//! | sysctl | value | why |
//! |---|---|---|
//! | `ipv4/conf/<if>/proxy_arp` | 1 | the host answers the pod's ARP for its gateway `169.254.1.1` |
//! | `ipv4/conf/<if>/forwarding` | 1 | traffic from the pod is routed |
//! | `ipv4/conf/<if>/rp_filter` | 1 | strict reverse-path filter: a pod cannot source another pod's address |
//! | `ipv4/neigh/<if>/proxy_delay` | 0 | answer proxy ARP at once |
//! | `ipv6/conf/<if>/accept_ra` | 0 | a pod must not configure the host's routes |
//! | `ipv6/conf/<if>/forwarding` | 1 | IPv6 traffic from the pod is routed |
//! | `ipv6/conf/<if>/proxy_ndp` | 1 | the IPv6 counterpart of `proxy_arp` |
//!
//! IPv6 settings are skipped when the interface has no IPv6 configuration (IPv6 disabled).

use std::io;
use std::path::PathBuf;

/// Root of the sysctl tree.
const PROC_SYS_NET: &str = "/proc/sys/net";

/// Errors writing sysctls.
#[derive(Debug, thiserror::Error)]
pub enum SysctlError {
    /// The interface does not exist (yet).
    #[error("interface {iface} does not exist")]
    NoInterface {
        /// The interface.
        iface: String,
    },
    /// A write failed.
    #[error("cannot write {path}")]
    Write {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: io::Error,
    },
}

/// One setting: path below `/proc/sys/net` (with `{}` for the interface) and value.
const IPV4_SETTINGS: &[(&str, &str)] = &[
    ("ipv4/conf/{}/proxy_arp", "1"),
    ("ipv4/conf/{}/forwarding", "1"),
    ("ipv4/conf/{}/rp_filter", "1"),
    ("ipv4/neigh/{}/proxy_delay", "0"),
];
const IPV6_SETTINGS: &[(&str, &str)] = &[
    ("ipv6/conf/{}/accept_ra", "0"),
    ("ipv6/conf/{}/forwarding", "1"),
    ("ipv6/conf/{}/proxy_ndp", "1"),
];

fn path(template: &str, iface: &str) -> PathBuf {
    PathBuf::from(format!("{PROC_SYS_NET}/{}", template.replace("{}", iface)))
}

/// Writes `value` unless the file already holds it; true if it was written.
fn ensure(path: &PathBuf, value: &str) -> Result<bool, SysctlError> {
    let error = |source| SysctlError::Write {
        path: path.display().to_string(),
        source,
    };
    let current = std::fs::read_to_string(path).map_err(error)?;
    if current.trim() == value {
        return Ok(false);
    }
    std::fs::write(path, value).map_err(error)?;
    Ok(true)
}

/// Applies the workload-interface settings to `iface`; returns how many values had to be
/// changed (0 when everything was already right).
pub fn configure_workload_iface(iface: &str) -> Result<usize, SysctlError> {
    if iface.is_empty() || iface.contains('/') || iface == "." || iface == ".." {
        return Err(SysctlError::NoInterface {
            iface: iface.to_string(),
        });
    }
    if !path("ipv4/conf/{}", iface).exists() {
        return Err(SysctlError::NoInterface {
            iface: iface.to_string(),
        });
    }
    let mut changed = 0;
    for (template, value) in IPV4_SETTINGS {
        changed += usize::from(ensure(&path(template, iface), value)?);
    }
    if path("ipv6/conf/{}", iface).exists() {
        for (template, value) in IPV6_SETTINGS {
            changed += usize::from(ensure(&path(template, iface), value)?);
        }
    }
    Ok(changed)
}

/// Reads one setting (for tests and diagnostics), e.g. `("ipv4/conf/{}/rp_filter", "vr…")`.
pub fn read(template: &str, iface: &str) -> io::Result<String> {
    Ok(std::fs::read_to_string(path(template, iface))?
        .trim()
        .to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_built_per_interface() {
        assert_eq!(
            path("ipv4/conf/{}/rp_filter", "vr0123456789a"),
            PathBuf::from("/proc/sys/net/ipv4/conf/vr0123456789a/rp_filter")
        );
    }

    #[test]
    fn missing_and_hostile_names_are_refused() {
        for name in ["", "../all", "no-such-iface-x"] {
            assert!(matches!(
                configure_workload_iface(name),
                Err(SysctlError::NoInterface { .. })
            ));
        }
    }
}
