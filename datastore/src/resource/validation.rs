//! Local (single-object) validation: the error type and the field checks shared by the kinds
//! (DNS-1123 names, label keys and values, IPs, CIDRs). Checks that need more than the object
//! itself, or the selector grammar, belong to the `policy` crate.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

/// A field of a resource failed validation.
///
/// Displays as `<path>: <message>`, e.g. `spec.cidr: "10.0.0.0/33" is not a valid CIDR`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ValidationError {
    /// Field path in the wire form (`spec.ingress[0].source.nets[1]`).
    pub path: String,
    /// What is wrong, naming the offending value.
    pub message: String,
}

impl ValidationError {
    /// A new error for `path`.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ValidationError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// Shorthand for validation results.
pub(crate) type Checked = Result<(), ValidationError>;

/// Quotes a value for an error message the way YAML/JSON would print it.
pub(crate) struct Quoted<'a>(pub(crate) &'a str);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}", self.0)
    }
}

/// Kubernetes DNS-1123 label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, at most 63 characters.
pub(crate) fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

/// Kubernetes DNS-1123 subdomain: dot-separated labels, at most 253 characters.
pub(crate) fn is_dns_subdomain(s: &str) -> bool {
    !s.is_empty() && s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// Checks a resource name against Calico's default rule (DNS-1123 subdomain).
pub(crate) fn check_subdomain(path: &str, value: &str) -> Checked {
    if value.is_empty() {
        return Err(ValidationError::new(path, "is required"));
    }
    if !is_dns_subdomain(value) {
        return Err(ValidationError::new(
            path,
            format!(
                "{} must consist of lower case alphanumeric characters, '-' or '.', \
                 start and end with an alphanumeric character and be at most 253 characters",
                Quoted(value)
            ),
        ));
    }
    Ok(())
}

/// Checks a DNS-1123 label (tier names, namespaces).
pub(crate) fn check_label_name(path: &str, value: &str) -> Checked {
    if value.is_empty() {
        return Err(ValidationError::new(path, "is required"));
    }
    if !is_dns_label(value) {
        return Err(ValidationError::new(
            path,
            format!(
                "{} must consist of lower case alphanumeric characters or '-', \
                 start and end with an alphanumeric character and be at most 63 characters",
                Quoted(value)
            ),
        ));
    }
    Ok(())
}

/// Kubernetes "qualified name" part: `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`, at most 63.
fn is_qualified_name_part(s: &str) -> bool {
    let bytes = s.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            s.len() <= 63
                && first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        }
        _ => false,
    }
}

/// Checks a label (or annotation) key: optional DNS subdomain prefix and `/`, then a name.
pub(crate) fn check_label_key(path: &str, key: &str) -> Checked {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    let prefix_ok = prefix.is_none_or(is_dns_subdomain);
    if !prefix_ok || !is_qualified_name_part(name) {
        return Err(ValidationError::new(
            path,
            format!(
                "{} is not a valid label key (an optional DNS subdomain prefix and '/', then \
                 alphanumerics, '-', '_' or '.', at most 63 characters)",
                Quoted(key)
            ),
        ));
    }
    Ok(())
}

/// Checks a label value: empty, or a qualified-name part.
pub(crate) fn check_label_value(path: &str, value: &str) -> Checked {
    if !value.is_empty() && !is_qualified_name_part(value) {
        return Err(ValidationError::new(
            path,
            format!(
                "{} is not a valid label value (alphanumerics, '-', '_' or '.', \
                 at most 63 characters)",
                Quoted(value)
            ),
        ));
    }
    Ok(())
}

/// Parses a CIDR (`10.0.0.0/16`, `fd00::/64`); a bare address is not a CIDR here.
pub(crate) fn parse_cidr(path: &str, value: &str) -> Result<IpNetwork, ValidationError> {
    if !value.contains('/') {
        return Err(not_a_cidr(path, value));
    }
    value
        .parse::<IpNetwork>()
        .map_err(|_| not_a_cidr(path, value))
}

fn not_a_cidr(path: &str, value: &str) -> ValidationError {
    ValidationError::new(path, format!("{} is not a valid CIDR", Quoted(value)))
}

/// Checks a CIDR.
pub(crate) fn check_cidr(path: &str, value: &str) -> Checked {
    parse_cidr(path, value).map(|_| ())
}

/// Parses an address or a CIDR (Calico's `net` validator: `10.0.0.1` or `10.0.0.1/24`).
pub(crate) fn parse_ip_or_cidr(path: &str, value: &str) -> Result<IpNetwork, ValidationError> {
    value.parse::<IpNetwork>().map_err(|_| {
        ValidationError::new(
            path,
            format!("{} is not a valid IP address or CIDR", Quoted(value)),
        )
    })
}

/// Parses a plain IP address.
pub(crate) fn parse_ip(path: &str, value: &str) -> Result<IpAddr, ValidationError> {
    value.parse::<IpAddr>().map_err(|_| {
        ValidationError::new(path, format!("{} is not a valid IP address", Quoted(value)))
    })
}

/// Checks a plain IPv4 address.
pub(crate) fn check_ipv4(path: &str, value: &str) -> Checked {
    match parse_ip(path, value)? {
        IpAddr::V4(_) => Ok(()),
        IpAddr::V6(_) => Err(ValidationError::new(
            path,
            format!("{} is not an IPv4 address", Quoted(value)),
        )),
    }
}

/// Checks a plain IPv6 address.
pub(crate) fn check_ipv6(path: &str, value: &str) -> Checked {
    match parse_ip(path, value)? {
        IpAddr::V6(_) => Ok(()),
        IpAddr::V4(_) => Err(ValidationError::new(
            path,
            format!("{} is not an IPv6 address", Quoted(value)),
        )),
    }
}

/// Checks a MAC address (`aa:bb:cc:dd:ee:ff`, also `-` separated as Go's `net.ParseMAC`).
pub(crate) fn check_mac(path: &str, value: &str) -> Checked {
    let parts: Vec<&str> = value.split([':', '-']).collect();
    let ok = parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            path,
            format!("{} is not a valid MAC address", Quoted(value)),
        ))
    }
}

/// Checks a Linux interface name as Calico does: `[a-zA-Z0-9_.-]{1,15}`, or `*` if allowed.
pub(crate) fn check_interface_name(path: &str, value: &str, allow_wildcard: bool) -> Checked {
    let ok = (allow_wildcard && value == "*")
        || (!value.is_empty()
            && value.len() <= 15
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')));
    if ok {
        Ok(())
    } else {
        Err(ValidationError::new(
            path,
            format!("{} is not a valid interface name", Quoted(value)),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_names() {
        for ok in ["a", "default", "web-1", "a1", &"x".repeat(63)] {
            assert!(is_dns_label(ok), "{ok}");
        }
        for bad in ["", "-a", "a-", "A", "a_b", "a.b", &"x".repeat(64)] {
            assert!(!is_dns_label(bad), "{bad}");
        }
        assert!(is_dns_subdomain("node.worker-1"));
        assert!(is_dns_subdomain("kns.default"));
        assert!(!is_dns_subdomain("a..b"));
        assert!(!is_dns_subdomain("a."));
        assert!(!is_dns_subdomain("Node1"));
    }

    #[test]
    fn label_keys_and_values() {
        assert!(check_label_key("k", "app").is_ok());
        assert!(check_label_key("k", "projectcalico.org/namespace").is_ok());
        assert!(check_label_key("k", "kubernetes.io/metadata.name").is_ok());
        assert!(check_label_key("k", "App_Name.x").is_ok());
        assert!(check_label_key("k", "/app").is_err());
        assert!(check_label_key("k", "bad prefix/app").is_err());
        assert!(check_label_key("k", "app-").is_err());
        assert!(check_label_value("v", "").is_ok());
        assert!(check_label_value("v", "v1.2_x").is_ok());
        assert!(check_label_value("v", "has space").is_err());
    }

    #[test]
    fn addresses() {
        assert!(check_cidr("p", "10.0.0.0/16").is_ok());
        assert!(check_cidr("p", "fd00::/64").is_ok());
        let err = check_cidr("spec.cidr", "10.0.0.0/33").unwrap_err();
        assert_eq!(
            err.to_string(),
            r#"spec.cidr: "10.0.0.0/33" is not a valid CIDR"#
        );
        assert!(check_cidr("p", "10.0.0.1").is_err());
        assert!(parse_ip_or_cidr("p", "10.0.0.1").is_ok());
        assert!(parse_ip_or_cidr("p", "10.0.0.1/24").is_ok());
        assert!(parse_ip_or_cidr("p", "10.0.0.300").is_err());
        assert!(check_ipv4("p", "10.0.0.1").is_ok());
        assert!(check_ipv4("p", "::1").is_err());
        assert!(check_ipv6("p", "fe80::1").is_ok());
        assert!(check_mac("p", "ee:ee:ee:ee:ee:ee").is_ok());
        assert!(check_mac("p", "ee:ee:ee:ee:ee").is_err());
        assert!(check_interface_name("p", "eth0", false).is_ok());
        assert!(check_interface_name("p", "*", true).is_ok());
        assert!(check_interface_name("p", "*", false).is_err());
        assert!(check_interface_name("p", "averyveryverylongname", false).is_err());
    }
}
