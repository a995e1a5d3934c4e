//! Normalized policy rules: what a rule matches (protocol, ICMP, addresses, selectors, ports)
//! and what it does. Values arrive here already validated; the `parse` helpers are the single
//! place where Calico's spellings (`TCP`, `"80:90"`, `http`, ...) are accepted or rejected.

use std::fmt;
use std::net::IpAddr;

use ipnetwork::IpNetwork;

use crate::selector::Selector;

/// A value that failed validation, and why (`"80:70" is not a valid port range`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} {reason}")]
pub struct InvalidValue {
    /// The offending value as written.
    pub value: String,
    /// What is wrong with it, phrased to follow the quoted value.
    pub reason: String,
}

impl InvalidValue {
    pub(crate) fn new(value: impl Into<String>, reason: impl Into<String>) -> Self {
        InvalidValue {
            value: value.into(),
            reason: reason.into(),
        }
    }
}

/// What a matching rule does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Accept the packet (terminal).
    Allow,
    /// Drop the packet (terminal).
    Deny,
    /// Skip the rest of this tier and continue with the next tier (or the profiles).
    Pass,
    /// Log the packet and keep evaluating (non-terminal).
    Log,
}

impl Action {
    /// Parses Calico's spelling (`Allow`, `Deny`, `Pass`, `Log`).
    pub fn parse(s: &str) -> Result<Action, InvalidValue> {
        match s {
            "Allow" => Ok(Action::Allow),
            "Deny" => Ok(Action::Deny),
            "Pass" => Ok(Action::Pass),
            "Log" => Ok(Action::Log),
            _ => Err(InvalidValue::new(
                s,
                "is not a valid action (Allow, Deny, Pass, Log)",
            )),
        }
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Action::Allow => "Allow",
            Action::Deny => "Deny",
            Action::Pass => "Pass",
            Action::Log => "Log",
        })
    }
}

/// IP version of a rule or address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpVersion {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpVersion {
    /// Parses Calico's `ipVersion` (4 or 6).
    pub fn from_number(n: i64) -> Result<IpVersion, InvalidValue> {
        match n {
            4 => Ok(IpVersion::V4),
            6 => Ok(IpVersion::V6),
            _ => Err(InvalidValue::new(
                n.to_string(),
                "is not a valid IP version (4 or 6)",
            )),
        }
    }

    /// The version of an address.
    pub fn of(addr: &IpAddr) -> IpVersion {
        if addr.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }

    /// The version of a network.
    pub fn of_net(net: &IpNetwork) -> IpVersion {
        if net.is_ipv4() {
            IpVersion::V4
        } else {
            IpVersion::V6
        }
    }
}

/// An IP protocol number, printed with Calico's names where it has one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Protocol(pub u8);

impl Protocol {
    /// ICMP (1).
    pub const ICMP: Protocol = Protocol(1);
    /// TCP (6).
    pub const TCP: Protocol = Protocol(6);
    /// UDP (17).
    pub const UDP: Protocol = Protocol(17);
    /// ICMPv6 (58).
    pub const ICMPV6: Protocol = Protocol(58);
    /// SCTP (132).
    pub const SCTP: Protocol = Protocol(132);
    /// UDP-Lite (136).
    pub const UDPLITE: Protocol = Protocol(136);

    /// Parses Calico's spelling: `TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`, `UDPLite` (exact case)
    /// or a number 1–255.
    pub fn parse(s: &str) -> Result<Protocol, InvalidValue> {
        let named = match s {
            "TCP" => Some(Protocol::TCP),
            "UDP" => Some(Protocol::UDP),
            "ICMP" => Some(Protocol::ICMP),
            "ICMPv6" => Some(Protocol::ICMPV6),
            "SCTP" => Some(Protocol::SCTP),
            "UDPLite" => Some(Protocol::UDPLITE),
            _ => None,
        };
        if let Some(p) = named {
            return Ok(p);
        }
        match s.parse::<u16>() {
            Ok(n @ 1..=255) if !s.starts_with('+') => Ok(Protocol(n as u8)),
            _ => Err(InvalidValue::new(
                s,
                "is not a valid protocol (TCP, UDP, ICMP, ICMPv6, SCTP, UDPLite or 1-255)",
            )),
        }
    }

    /// True for the protocols whose rules may carry port matches (TCP, UDP, UDP-Lite, SCTP).
    pub fn supports_ports(self) -> bool {
        matches!(
            self,
            Protocol::TCP | Protocol::UDP | Protocol::UDPLITE | Protocol::SCTP
        )
    }

    /// True for ICMP and ICMPv6.
    pub fn is_icmp(self) -> bool {
        matches!(self, Protocol::ICMP | Protocol::ICMPV6)
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Protocol::TCP => f.write_str("TCP"),
            Protocol::UDP => f.write_str("UDP"),
            Protocol::ICMP => f.write_str("ICMP"),
            Protocol::ICMPV6 => f.write_str("ICMPv6"),
            Protocol::SCTP => f.write_str("SCTP"),
            Protocol::UDPLITE => f.write_str("UDPLite"),
            Protocol(n) => write!(f, "{n}"),
        }
    }
}

/// One entry of `ports` / `notPorts`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PortMatch {
    /// An inclusive range (a single port is `first == last`).
    Range {
        /// Lowest port.
        first: u16,
        /// Highest port.
        last: u16,
    },
    /// A named port, resolved against the endpoints' declared ports.
    Named(String),
}

impl PortMatch {
    /// Parses `80`, `"80:90"` or a port name (Kubernetes port-name rules: 1–15 characters of
    /// `[a-z0-9-]`, at least one letter, no leading, trailing or doubled `-`).
    pub fn parse(s: &str) -> Result<PortMatch, InvalidValue> {
        let number = |p: &str| -> Option<u16> {
            if p.is_empty() || !p.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            p.parse::<u16>().ok()
        };
        if let Some((a, b)) = s.split_once(':') {
            return match (number(a), number(b)) {
                (Some(first), Some(last)) if first <= last => Ok(PortMatch::Range { first, last }),
                _ => Err(InvalidValue::new(s, "is not a valid port range")),
            };
        }
        if s.bytes().all(|b| b.is_ascii_digit()) {
            return match number(s) {
                Some(p) => Ok(PortMatch::Range { first: p, last: p }),
                None => Err(InvalidValue::new(s, "is not a valid port number (0-65535)")),
            };
        }
        if is_valid_port_name(s) {
            Ok(PortMatch::Named(s.to_string()))
        } else {
            Err(InvalidValue::new(
                s,
                "is not a valid port, port range or port name",
            ))
        }
    }

    /// True when the numeric range contains `port` (named ports never match here).
    pub fn contains(&self, port: u16) -> bool {
        matches!(self, PortMatch::Range { first, last } if (*first..=*last).contains(&port))
    }
}

impl fmt::Display for PortMatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortMatch::Range { first, last } if first == last => write!(f, "{first}"),
            PortMatch::Range { first, last } => write!(f, "{first}:{last}"),
            PortMatch::Named(n) => f.write_str(n),
        }
    }
}

/// Kubernetes `IsValidPortName`.
pub fn is_valid_port_name(s: &str) -> bool {
    (1..=15).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().any(|b| b.is_ascii_lowercase())
        && !s.starts_with('-')
        && !s.ends_with('-')
        && !s.contains("--")
}

/// `icmp` / `notICMP`: a type and optionally a code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IcmpMatch {
    /// ICMP type (0–254).
    pub icmp_type: u8,
    /// ICMP code (0–255), if constrained.
    pub code: Option<u8>,
}

impl IcmpMatch {
    /// Validates Calico's limits: type 0–254, code 0–255, and a code only with a type.
    pub fn new(
        icmp_type: Option<i64>,
        code: Option<i64>,
    ) -> Result<Option<IcmpMatch>, InvalidValue> {
        let Some(t) = icmp_type else {
            return match code {
                Some(c) => Err(InvalidValue::new(
                    c.to_string(),
                    "is an ICMP code without an ICMP type",
                )),
                None => Ok(None),
            };
        };
        let icmp_type = u8::try_from(t)
            .ok()
            .filter(|t| *t != 255)
            .ok_or_else(|| InvalidValue::new(t.to_string(), "is not a valid ICMP type (0-254)"))?;
        let code = code
            .map(|c| {
                u8::try_from(c).map_err(|_| {
                    InvalidValue::new(c.to_string(), "is not a valid ICMP code (0-255)")
                })
            })
            .transpose()?;
        Ok(Some(IcmpMatch { icmp_type, code }))
    }

    /// True when a packet's ICMP type/code satisfy the match.
    pub fn matches(&self, icmp_type: u8, code: Option<u8>) -> bool {
        self.icmp_type == icmp_type && self.code.is_none_or(|c| Some(c) == code)
    }
}

/// One side (`source` or `destination`) of a rule, normalized: selectors already carry the
/// namespace scoping and service-account matching Calico folds into them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EntityMatch {
    /// The address must be inside one of these (if any).
    pub nets: Vec<IpNetwork>,
    /// The address must be inside none of these.
    pub not_nets: Vec<IpNetwork>,
    /// The address must belong to an endpoint or network set this selects (if set).
    pub selector: Option<Selector>,
    /// The address must belong to no endpoint or network set this selects (if set).
    pub not_selector: Option<Selector>,
    /// The port must be one of these (if any).
    pub ports: Vec<PortMatch>,
    /// The port must be none of these.
    pub not_ports: Vec<PortMatch>,
}

impl EntityMatch {
    /// True when the side places no constraint at all.
    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
            && self.not_nets.is_empty()
            && self.selector.is_none()
            && self.not_selector.is_none()
            && self.ports.is_empty()
            && self.not_ports.is_empty()
    }
}

/// One normalized rule.
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// What happens on a match.
    pub action: Action,
    /// Only packets of this IP version match (if set).
    pub ip_version: Option<IpVersion>,
    /// Only this protocol matches (if set).
    pub protocol: Option<Protocol>,
    /// This protocol never matches (if set).
    pub not_protocol: Option<Protocol>,
    /// ICMP type/code constraint.
    pub icmp: Option<IcmpMatch>,
    /// Negated ICMP type/code constraint.
    pub not_icmp: Option<IcmpMatch>,
    /// Source constraints.
    pub source: EntityMatch,
    /// Destination constraints.
    pub destination: EntityMatch,
}

impl Rule {
    /// A rule with no constraints and the given action.
    pub fn new(action: Action) -> Rule {
        Rule {
            action,
            ip_version: None,
            protocol: None,
            not_protocol: None,
            icmp: None,
            not_icmp: None,
            source: EntityMatch::default(),
            destination: EntityMatch::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions() {
        for a in ["Allow", "Deny", "Pass", "Log"] {
            assert_eq!(Action::parse(a).expect("valid").to_string(), a);
        }
        assert_eq!(
            Action::parse("allow")
                .expect_err("case matters")
                .to_string(),
            r#""allow" is not a valid action (Allow, Deny, Pass, Log)"#
        );
        assert!(Action::parse("Accept").is_err());
    }

    #[test]
    fn protocols() {
        let good = [
            ("TCP", 6),
            ("UDP", 17),
            ("ICMP", 1),
            ("ICMPv6", 58),
            ("SCTP", 132),
            ("UDPLite", 136),
            ("1", 1),
            ("255", 255),
            ("47", 47),
        ];
        for (s, n) in good {
            assert_eq!(Protocol::parse(s).expect(s), Protocol(n));
        }
        for bad in ["tcp", "Tcp", "icmpv6", "0", "256", "-1", "+6", "", "GRE"] {
            assert!(Protocol::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(Protocol(47).to_string(), "47");
        assert_eq!(Protocol::ICMPV6.to_string(), "ICMPv6");
        assert!(Protocol::SCTP.supports_ports() && Protocol::UDPLITE.supports_ports());
        assert!(!Protocol::ICMP.supports_ports() && !Protocol(47).supports_ports());
        assert!(Protocol::ICMPV6.is_icmp() && !Protocol::TCP.is_icmp());
    }

    #[test]
    fn ports() {
        assert_eq!(
            PortMatch::parse("80").expect("single"),
            PortMatch::Range {
                first: 80,
                last: 80
            }
        );
        assert_eq!(
            PortMatch::parse("80:90").expect("range"),
            PortMatch::Range {
                first: 80,
                last: 90
            }
        );
        assert_eq!(
            PortMatch::parse("0:65535").expect("full"),
            PortMatch::Range {
                first: 0,
                last: 65535
            }
        );
        assert_eq!(
            PortMatch::parse("http").expect("named"),
            PortMatch::Named("http".into())
        );
        assert_eq!(
            PortMatch::parse("web-8080").expect("named"),
            PortMatch::Named("web-8080".into())
        );
        assert_eq!(
            PortMatch::parse("80:70").expect_err("reversed").to_string(),
            r#""80:70" is not a valid port range"#
        );
        for bad in [
            "65536",
            "80:",
            ":80",
            "80:90:100",
            "HTTP",
            "-web",
            "web-",
            "we--b",
            "a-very-long-port-name",
            "8o:9o",
            "1:+2",
        ] {
            assert!(PortMatch::parse(bad).is_err(), "{bad}");
        }
        let r = PortMatch::parse("80:90").expect("range");
        assert!(r.contains(80) && r.contains(90) && !r.contains(91));
        assert!(!PortMatch::Named("http".into()).contains(80));
        assert_eq!(r.to_string(), "80:90");
        assert_eq!(PortMatch::parse("443").expect("port").to_string(), "443");
    }

    #[test]
    fn icmp_limits() {
        assert_eq!(IcmpMatch::new(None, None).expect("empty"), None);
        let m = IcmpMatch::new(Some(8), Some(0))
            .expect("valid")
            .expect("some");
        assert!(m.matches(8, Some(0)));
        assert!(!m.matches(8, Some(1)));
        assert!(!m.matches(8, None));
        let any_code = IcmpMatch::new(Some(3), None).expect("valid").expect("some");
        assert!(any_code.matches(3, Some(4)) && any_code.matches(3, None));
        assert!(IcmpMatch::new(Some(255), None).is_err());
        assert!(IcmpMatch::new(Some(-1), None).is_err());
        assert!(IcmpMatch::new(Some(8), Some(256)).is_err());
        assert!(IcmpMatch::new(None, Some(0)).is_err());
    }

    #[test]
    fn ip_versions() {
        assert_eq!(IpVersion::from_number(4).expect("4"), IpVersion::V4);
        assert_eq!(IpVersion::from_number(6).expect("6"), IpVersion::V6);
        assert!(IpVersion::from_number(5).is_err());
        let v6: IpAddr = "::1".parse().expect("addr");
        assert_eq!(IpVersion::of(&v6), IpVersion::V6);
    }

    #[test]
    fn empty_entity_match() {
        assert!(EntityMatch::default().is_empty());
        let m = EntityMatch {
            ports: vec![PortMatch::Named("dns".into())],
            ..EntityMatch::default()
        };
        assert!(!m.is_empty());
        assert_eq!(Rule::new(Action::Allow).source, EntityMatch::default());
    }
}
