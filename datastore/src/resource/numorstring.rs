//! Scalars that Calico writes either as a number or as a string (its `numorstring` package):
//! ports, protocols, AS numbers, plus policy `order` and Kubernetes `IntOrString`.
//!
//! Each keeps the spelling it was parsed from (`80` stays a number, `"80"` and `"80:90"` stay
//! strings), so a round trip never rewrites a user's YAML. What a string *means* (a range, a
//! named port, a protocol name) is for the `policy` crate to decide.

use std::fmt;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// A port in a policy rule: a number, or a string (`"80"`, `"8080:8090"`, or a named port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Port {
    /// Written as a YAML/JSON number.
    Number(u16),
    /// Written as a string: a number, a `min:max` range, or a port name.
    Text(String),
}

/// An IP protocol: a number (`6`) or a name (`TCP`, `UDP`, `ICMP`, `ICMPv6`, `SCTP`, `UDPLite`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// Written as a number (0–255).
    Number(u8),
    /// Written as a string.
    Name(String),
}

/// A DSCP value: a number (0–63) or a name (`AF11`, `EF`).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Dscp {
    /// Written as a number.
    Number(u8),
    /// Written as a name.
    Name(String),
}

/// Kubernetes `IntOrString` (a port number or a named port).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum IntOrString {
    /// Written as a number.
    Int(i32),
    /// Written as a string.
    String(String),
}

/// A BGP AS number. Accepts a number, a decimal string or the asdot string `"1.10"` (RFC 5396),
/// rejecting anything outside 32 bits at parse time; prints the way it was written.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsNumber {
    value: u32,
    /// The original string, when the input was a string.
    text: Option<String>,
}

/// A policy or tier `order`: a float, printed without `.0` when integral (as Go prints it).
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
pub struct Order(pub f64);

impl Port {
    /// The text as written (`"80"` for `Number(80)`).
    pub fn to_text(&self) -> String {
        match self {
            Port::Number(n) => n.to_string(),
            Port::Text(s) => s.clone(),
        }
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Port::Number(n) => write!(f, "{n}"),
            Port::Text(s) => f.write_str(s),
        }
    }
}

impl Protocol {
    /// Whether ports may be given with this protocol (TCP, UDP, SCTP by name or number).
    pub fn supports_ports(&self) -> bool {
        match self {
            Protocol::Number(n) => matches!(n, 6 | 17 | 132),
            Protocol::Name(s) => ["tcp", "udp", "sctp"]
                .iter()
                .any(|p| s.eq_ignore_ascii_case(p)),
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Protocol::Number(n) => write!(f, "{n}"),
            Protocol::Name(s) => f.write_str(s),
        }
    }
}

impl fmt::Display for IntOrString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IntOrString::Int(n) => write!(f, "{n}"),
            IntOrString::String(s) => f.write_str(s),
        }
    }
}

impl AsNumber {
    /// An AS number written as a plain number.
    pub fn new(value: u32) -> Self {
        AsNumber { value, text: None }
    }

    /// The numeric value.
    pub fn get(&self) -> u32 {
        self.value
    }

    /// Parses `"64512"` or asdot `"1.10"` (= 65546).
    pub fn parse(text: &str) -> Option<AsNumber> {
        let value = match text.split_once('.') {
            None => text.parse::<u32>().ok()?,
            Some((high, low)) => {
                let high = high.parse::<u16>().ok()?;
                let low = low.parse::<u16>().ok()?;
                (u32::from(high) << 16) | u32::from(low)
            }
        };
        Some(AsNumber {
            value,
            text: Some(text.to_owned()),
        })
    }
}

impl From<u32> for AsNumber {
    fn from(value: u32) -> Self {
        AsNumber::new(value)
    }
}

impl fmt::Display for AsNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.value)
    }
}

impl fmt::Display for Order {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Serialize for Port {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Port::Number(n) => s.serialize_u16(*n),
            Port::Text(t) => s.serialize_str(t),
        }
    }
}

impl Serialize for Protocol {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Protocol::Number(n) => s.serialize_u8(*n),
            Protocol::Name(t) => s.serialize_str(t),
        }
    }
}

impl Serialize for Dscp {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Dscp::Number(n) => s.serialize_u8(*n),
            Dscp::Name(t) => s.serialize_str(t),
        }
    }
}

impl Serialize for IntOrString {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            IntOrString::Int(n) => s.serialize_i32(*n),
            IntOrString::String(t) => s.serialize_str(t),
        }
    }
}

impl Serialize for AsNumber {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match &self.text {
            Some(t) => s.serialize_str(t),
            None => s.serialize_u32(self.value),
        }
    }
}

/// Largest integer an f64 holds exactly; beyond it integral orders print as floats.
const F64_EXACT_INT: f64 = 9_007_199_254_740_992.0;

impl Serialize for Order {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let v = self.0;
        if v.is_finite() && v.fract() == 0.0 && v.abs() <= F64_EXACT_INT {
            // Exact: an integral |v| <= 2^53 fits in i64 without loss.
            s.serialize_i64(v as i64)
        } else {
            s.serialize_f64(v)
        }
    }
}

/// Generates a number-or-string visitor: `$num` builds from an in-range unsigned value,
/// `$text` from a string, and `$what` names the expectation in errors.
macro_rules! num_or_string_visitor {
    ($visitor:ident, $ty:ty, $what:literal, $num:expr, $text:expr) => {
        struct $visitor;

        impl Visitor<'_> for $visitor {
            type Value = $ty;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str($what)
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<$ty, E> {
                let build: fn(u64) -> Option<$ty> = $num;
                build(v).ok_or_else(|| E::custom(format!("{v} is out of range for {}", $what)))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<$ty, E> {
                match u64::try_from(v) {
                    Ok(u) => self.visit_u64(u),
                    Err(_) => Err(E::custom(format!("{v} is out of range for {}", $what))),
                }
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<$ty, E> {
                let build: fn(&str) -> Result<$ty, String> = $text;
                build(v).map_err(E::custom)
            }
        }
    };
}

num_or_string_visitor!(
    PortVisitor,
    Port,
    "a port number (0-65535) or a string",
    |v| u16::try_from(v).ok().map(Port::Number),
    |s| Ok(Port::Text(s.to_owned()))
);

num_or_string_visitor!(
    ProtocolVisitor,
    Protocol,
    "a protocol number (0-255) or name",
    |v| u8::try_from(v).ok().map(Protocol::Number),
    |s| Ok(Protocol::Name(s.to_owned()))
);

num_or_string_visitor!(
    DscpVisitor,
    Dscp,
    "a DSCP number (0-63) or name",
    |v| u8::try_from(v).ok().filter(|&n| n < 64).map(Dscp::Number),
    |s| Ok(Dscp::Name(s.to_owned()))
);

num_or_string_visitor!(
    AsNumberVisitor,
    AsNumber,
    "an AS number (32-bit, or asdot \"1.10\")",
    |v| u32::try_from(v).ok().map(AsNumber::new),
    |s| AsNumber::parse(s).ok_or_else(|| format!("invalid AS number {s:?}"))
);

impl<'de> Deserialize<'de> for Port {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(PortVisitor)
    }
}

impl<'de> Deserialize<'de> for Protocol {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ProtocolVisitor)
    }
}

impl<'de> Deserialize<'de> for Dscp {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DscpVisitor)
    }
}

impl<'de> Deserialize<'de> for AsNumber {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(AsNumberVisitor)
    }
}

struct IntOrStringVisitor;

impl Visitor<'_> for IntOrStringVisitor {
    type Value = IntOrString;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an integer or a string")
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<IntOrString, E> {
        i32::try_from(v)
            .map(IntOrString::Int)
            .map_err(|_| E::custom(format!("{v} is out of range for a 32-bit integer")))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<IntOrString, E> {
        i32::try_from(v)
            .map(IntOrString::Int)
            .map_err(|_| E::custom(format!("{v} is out of range for a 32-bit integer")))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<IntOrString, E> {
        Ok(IntOrString::String(v.to_owned()))
    }
}

impl<'de> Deserialize<'de> for IntOrString {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(IntOrStringVisitor)
    }
}

struct OrderVisitor;

impl Visitor<'_> for OrderVisitor {
    type Value = Order;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a number")
    }

    // An order is an f64 in Calico too; integers beyond 2^53 round as Go's would.
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Order, E> {
        Ok(Order(v as f64))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Order, E> {
        Ok(Order(v as f64))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Order, E> {
        if v.is_finite() {
            Ok(Order(v))
        } else {
            Err(E::custom("order must be a finite number"))
        }
    }
}

impl<'de> Deserialize<'de> for Order {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(OrderVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: for<'de> Deserialize<'de>>(text: &str) -> Result<T, String> {
        yaml_serde::from_str(text).map_err(|e| e.to_string())
    }

    fn out<T: Serialize>(value: &T) -> String {
        yaml_serde::to_string(value).unwrap().trim().to_owned()
    }

    #[test]
    fn ports_keep_their_spelling() {
        assert_eq!(yaml::<Port>("80").unwrap(), Port::Number(80));
        assert_eq!(yaml::<Port>("'80'").unwrap(), Port::Text("80".into()));
        assert_eq!(yaml::<Port>("80:90").unwrap(), Port::Text("80:90".into()));
        assert_eq!(yaml::<Port>("http").unwrap(), Port::Text("http".into()));
        assert_eq!(out(&Port::Number(443)), "443");
        assert_eq!(out(&Port::Text("80".into())), "'80'");
        assert!(yaml::<Port>("70000").unwrap_err().contains("out of range"));
        assert!(yaml::<Port>("-1").is_err());
    }

    #[test]
    fn protocols() {
        assert_eq!(
            yaml::<Protocol>("TCP").unwrap(),
            Protocol::Name("TCP".into())
        );
        assert_eq!(yaml::<Protocol>("6").unwrap(), Protocol::Number(6));
        assert!(yaml::<Protocol>("256").is_err());
        assert!(Protocol::Number(17).supports_ports());
        assert!(Protocol::Name("sctp".into()).supports_ports());
        assert!(!Protocol::Name("ICMP".into()).supports_ports());
    }

    #[test]
    fn dscp() {
        assert_eq!(yaml::<Dscp>("46").unwrap(), Dscp::Number(46));
        assert_eq!(yaml::<Dscp>("EF").unwrap(), Dscp::Name("EF".into()));
        assert!(yaml::<Dscp>("64").is_err());
    }

    #[test]
    fn as_numbers() {
        assert_eq!(yaml::<AsNumber>("64512").unwrap().get(), 64512);
        assert_eq!(yaml::<AsNumber>("4294967295").unwrap().get(), u32::MAX);
        assert!(
            yaml::<AsNumber>("4294967296")
                .unwrap_err()
                .contains("out of range")
        );
        let dotted = yaml::<AsNumber>("'1.10'").unwrap();
        assert_eq!(dotted.get(), 65546);
        assert_eq!(out(&dotted), "'1.10'");
        assert_eq!(yaml::<AsNumber>("'64512'").unwrap().get(), 64512);
        assert!(
            yaml::<AsNumber>("'1.70000'")
                .unwrap_err()
                .contains("invalid AS number")
        );
        assert!(yaml::<AsNumber>("abc").is_err());
        assert_eq!(out(&AsNumber::new(65001)), "65001");
    }

    #[test]
    fn orders_print_like_go() {
        assert_eq!(yaml::<Order>("100").unwrap(), Order(100.0));
        assert_eq!(yaml::<Order>("10.5").unwrap(), Order(10.5));
        assert_eq!(out(&Order(100.0)), "100");
        assert_eq!(out(&Order(10.5)), "10.5");
        assert!(yaml::<Order>("'100'").is_err());
    }

    #[test]
    fn int_or_string() {
        assert_eq!(yaml::<IntOrString>("53").unwrap(), IntOrString::Int(53));
        assert_eq!(
            yaml::<IntOrString>("dns").unwrap(),
            IntOrString::String("dns".into())
        );
        assert_eq!(out(&IntOrString::Int(53)), "53");
    }
}
