//! The nftables objects vrouter programs, as plain data: rules (match conditions, statements,
//! a verdict), chains, and sets with their elements. Pure: no I/O.
//!
//! The same values are lowered to netlink by `wire` and printed as `nft` text here
//! ([`TableSpec::to_nft_text`]), so an operator (and the tests and benchmarks) can load the
//! same ruleset with `nft -f` (which adds a `meta nfproto` test in front of each `ip`/`ip6`
//! address match; the rules of a policy chain have none, see `rules`). Every rule carries a
//! comment `vr:<hash of its text>`; the kernel keeps it as rule user data, which is how a
//! restarted agent recognises its rules.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::fmt::{self, Write as _};

/// Address family of a match or set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum Family {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl Family {
    pub(crate) fn nft(self) -> &'static str {
        match self {
            Family::V4 => "ip",
            Family::V6 => "ip6",
        }
    }

    pub(crate) fn addr_len(self) -> usize {
        match self {
            Family::V4 => 4,
            Family::V6 => 16,
        }
    }
}

/// Which end of the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum End {
    /// Source address / port.
    Src,
    /// Destination address / port.
    Dst,
}

/// Input or output interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum IfDir {
    /// `iifname`.
    In,
    /// `oifname`.
    Out,
}

impl IfDir {
    fn nft(self) -> &'static str {
        match self {
            IfDir::In => "iifname",
            IfDir::Out => "oifname",
        }
    }
}

/// Conntrack state bits (`NF_CT_STATE_BIT`).
pub(crate) const CT_INVALID: u32 = 1;
/// `established`.
pub(crate) const CT_ESTABLISHED: u32 = 2;
/// `related`.
pub(crate) const CT_RELATED: u32 = 4;

/// One match condition. A rule matches when all its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Cond {
    /// `meta nfproto ipv4|ipv6`.
    NfProto(Family),
    /// `meta l4proto [!=] N`.
    L4Proto { proto: u8, negated: bool },
    /// `ct state <bits>` (any of the bits).
    CtState(u32),
    /// `iifname "vr*"`.
    IfPrefix { dir: IfDir, prefix: String },
    /// `oifname [!=] @set`.
    IfInSet {
        dir: IfDir,
        set: String,
        negated: bool,
    },
    /// `ip saddr [!=] @set`.
    Addr {
        family: Family,
        end: End,
        set: String,
        negated: bool,
    },
    /// `iifname . ip saddr [!=] @set` (anti-spoofing).
    IfaceAddr {
        family: Family,
        set: String,
        negated: bool,
    },
    /// `ip daddr . meta l4proto . th dport [!=] @set` (named ports).
    NamedPort {
        family: Family,
        end: End,
        set: String,
        negated: bool,
    },
    /// `th dport [!=] first[-last]`.
    Port {
        end: End,
        first: u16,
        last: u16,
        negated: bool,
    },
    /// ICMP type (and code): `@th,0,8 T` or `@th,0,16 0xTTCC`.
    Icmp {
        icmp_type: u8,
        code: Option<u8>,
        negated: bool,
    },
    /// `meta mark & MASK == 0` (`zero`) or `!= 0`.
    Mark { mask: u32, zero: bool },
}

/// A non-terminal statement.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Stmt {
    /// `log prefix "..."`.
    Log(String),
    /// `meta mark set meta mark | BITS`.
    MarkOr(u32),
    /// `meta mark set meta mark & ~BITS`.
    MarkClear(u32),
    /// `counter` (packets and bytes, read back by the NAT dataplane).
    Counter,
}

/// What a rule does at the end.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Verdict {
    /// No verdict: continue with the next rule.
    Continue,
    /// `accept`.
    Accept,
    /// `drop`.
    Drop,
    /// `return`.
    Return,
    /// `jump CHAIN` (a constant name is borrowed: most rules jump to one of a few chains).
    Jump(Cow<'static, str>),
    /// `goto CHAIN` (its `return` goes back to this chain's caller).
    Goto(Cow<'static, str>),
    /// `iifname|oifname vmap @MAP`.
    Vmap { dir: IfDir, map: String },
    /// `masquerade` (source NAT to the outgoing interface's address; nat chains only).
    Masquerade,
}

/// One rule.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct RuleSpec {
    pub(crate) conds: Vec<Cond>,
    pub(crate) stmts: Vec<Stmt>,
    pub(crate) verdict: Verdict,
    /// `vr:<hash>`: identifies the rule's content when read back from the kernel.
    pub(crate) comment: String,
}

impl RuleSpec {
    /// A rule; its comment is derived from its content.
    pub(crate) fn new(conds: Vec<Cond>, stmts: Vec<Stmt>, verdict: Verdict) -> RuleSpec {
        let mut r = RuleSpec {
            conds,
            stmts,
            verdict,
            comment: String::new(),
        };
        let mut h = FnvWriter(FNV_OFFSET);
        let _ = r.write_body(&mut h);
        let mut comment = String::with_capacity(19);
        comment.push_str("vr:");
        for shift in (0..16).rev() {
            let digit = ((h.0 >> (shift * 4)) & 0xf) as u8;
            comment.push(char::from(if digit < 10 {
                b'0' + digit
            } else {
                b'a' + digit - 10
            }));
        }
        r.comment = comment;
        r
    }

    /// The rule as `nft` text, without the comment.
    pub(crate) fn body_text(&self) -> String {
        let mut s = String::with_capacity(96);
        let _ = self.write_body(&mut s);
        s
    }

    /// Writes the rule's `nft` text (the comment's input; no allocation per part).
    fn write_body(&self, w: &mut impl fmt::Write) -> fmt::Result {
        let mut first = true;
        let mut sep = |w: &mut dyn fmt::Write| -> fmt::Result {
            if !std::mem::take(&mut first) {
                w.write_char(' ')?;
            }
            Ok(())
        };
        for c in &self.conds {
            sep(w)?;
            write_cond(w, c)?;
        }
        for st in &self.stmts {
            sep(w)?;
            match st {
                Stmt::Log(p) => write!(w, "log prefix \"{p}\"")?,
                Stmt::MarkOr(b) => write!(w, "meta mark set meta mark | 0x{b:08x}")?,
                Stmt::MarkClear(b) => write!(w, "meta mark set meta mark & 0x{:08x}", !b)?,
                Stmt::Counter => w.write_str("counter")?,
            }
        }
        if self.verdict != Verdict::Continue {
            sep(w)?;
        }
        match &self.verdict {
            Verdict::Continue => Ok(()),
            Verdict::Accept => w.write_str("accept"),
            Verdict::Drop => w.write_str("drop"),
            Verdict::Return => w.write_str("return"),
            Verdict::Jump(c) => w.write_str("jump ").and_then(|()| w.write_str(c)),
            Verdict::Goto(c) => w.write_str("goto ").and_then(|()| w.write_str(c)),
            Verdict::Vmap { dir, map } => write!(w, "{} vmap @{map}", dir.nft()),
            Verdict::Masquerade => w.write_str("masquerade"),
        }
    }
}

/// FNV-1a over everything written to it.
struct FnvWriter(u64);

impl fmt::Write for FnvWriter {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for b in s.as_bytes() {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(FNV_PRIME);
        }
        Ok(())
    }
}

fn neq(negated: bool) -> &'static str {
    if negated { "!= " } else { "" }
}

fn port_name(end: End) -> &'static str {
    match end {
        End::Src => "sport",
        End::Dst => "dport",
    }
}

fn addr_name(end: End) -> &'static str {
    match end {
        End::Src => "saddr",
        End::Dst => "daddr",
    }
}

/// Writes `n` in decimal (the text of every rule is hashed: no formatting machinery).
fn write_dec(w: &mut impl fmt::Write, n: u32) -> fmt::Result {
    let mut buf = [0u8; 10];
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf[i..]
        .iter()
        .try_for_each(|b| w.write_char(char::from(*b)))
}

fn write_cond(w: &mut impl fmt::Write, c: &Cond) -> fmt::Result {
    match c {
        Cond::NfProto(Family::V4) => w.write_str("meta nfproto ipv4"),
        Cond::NfProto(Family::V6) => w.write_str("meta nfproto ipv6"),
        Cond::L4Proto { proto, negated } => {
            w.write_str("meta l4proto ")?;
            w.write_str(neq(*negated))?;
            write_dec(w, u32::from(*proto))
        }
        Cond::CtState(bits) => {
            let mut names = Vec::new();
            for (bit, name) in [
                (CT_INVALID, "invalid"),
                (CT_ESTABLISHED, "established"),
                (CT_RELATED, "related"),
            ] {
                if bits & bit != 0 {
                    names.push(name);
                }
            }
            write!(w, "ct state {}", names.join(","))
        }
        Cond::IfPrefix { dir, prefix } => write!(w, "{} \"{prefix}*\"", dir.nft()),
        Cond::IfInSet { dir, set, negated } => {
            for part in [dir.nft(), " ", neq(*negated), "@", set] {
                w.write_str(part)?;
            }
            Ok(())
        }
        Cond::Addr {
            family,
            end,
            set,
            negated,
        } => {
            for part in [
                family.nft(),
                " ",
                addr_name(*end),
                " ",
                neq(*negated),
                "@",
                set,
            ] {
                w.write_str(part)?;
            }
            Ok(())
        }
        Cond::IfaceAddr {
            family,
            set,
            negated,
        } => write!(
            w,
            "iifname . {} saddr {}@{set}",
            family.nft(),
            neq(*negated)
        ),
        Cond::NamedPort {
            family,
            end,
            set,
            negated,
        } => write!(
            w,
            "{} {} . meta l4proto . th {} {}@{set}",
            family.nft(),
            addr_name(*end),
            port_name(*end),
            neq(*negated)
        ),
        Cond::Port {
            end,
            first,
            last,
            negated,
        } => {
            for part in ["th ", port_name(*end), " ", neq(*negated)] {
                w.write_str(part)?;
            }
            write_dec(w, u32::from(*first))?;
            if first != last {
                w.write_char('-')?;
                write_dec(w, u32::from(*last))?;
            }
            Ok(())
        }
        Cond::Icmp {
            icmp_type,
            code,
            negated,
        } => match code {
            None => write!(w, "@th,0,8 {}{icmp_type}", neq(*negated)),
            Some(c) => write!(
                w,
                "@th,0,16 {}0x{:04x}",
                neq(*negated),
                (u16::from(*icmp_type) << 8) | u16::from(*c)
            ),
        },
        Cond::Mark { mask, zero } => {
            let op = if *zero { "==" } else { "!=" };
            write!(w, "meta mark & 0x{mask:08x} {op} 0")
        }
    }
}

#[cfg(test)]
fn cond_text(c: &Cond) -> String {
    let mut s = String::new();
    let _ = write_cond(&mut s, c);
    s
}

/// A base chain's hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Hook {
    /// `hook input`.
    Input,
    /// `hook forward`.
    Forward,
    /// `hook output`.
    Output,
    /// `type nat hook postrouting priority srcnat + 10` (after kube-proxy's, as Calico).
    Postrouting,
}

impl Hook {
    fn nft(self) -> &'static str {
        match self {
            Hook::Input => "input",
            Hook::Forward => "forward",
            Hook::Output => "output",
            Hook::Postrouting => "postrouting",
        }
    }

    /// The chain type: `nat` for postrouting, `filter` otherwise.
    pub(crate) fn chain_type(self) -> &'static str {
        match self {
            Hook::Postrouting => "nat",
            _ => "filter",
        }
    }

    /// The chain priority: `filter` (0), or `srcnat + 10` (110) for postrouting.
    pub(crate) fn priority(self) -> i32 {
        match self {
            Hook::Postrouting => 110,
            _ => 0,
        }
    }

    fn priority_text(self) -> &'static str {
        match self {
            Hook::Postrouting => "srcnat + 10",
            _ => "filter",
        }
    }

    /// The netfilter hook number.
    pub(crate) fn number(self) -> u32 {
        match self {
            Hook::Input => 1,
            Hook::Forward => 2,
            Hook::Output => 3,
            Hook::Postrouting => 4,
        }
    }
}

/// A chain and its rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ChainSpec {
    /// `Some` for base chains (`type T hook H priority P; policy accept`, see [`Hook`]).
    pub(crate) hook: Option<Hook>,
    pub(crate) rules: Vec<RuleSpec>,
}

impl ChainSpec {
    /// A regular chain.
    pub(crate) fn regular(rules: Vec<RuleSpec>) -> ChainSpec {
        ChainSpec { hook: None, rules }
    }
}

/// What a set holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SetKind {
    /// `type ipv4_addr|ipv6_addr; flags interval`.
    Addrs(Family),
    /// `type ipv4_addr . inet_proto . inet_service`.
    NamedPorts(Family),
    /// `type ifname . ipv4_addr`.
    IfaceAddrs(Family),
    /// `type ifname`.
    Ifaces,
    /// `type ifname : verdict` (map).
    IfaceVmap,
}

/// nft data type numbers (`enum datatypes` in nftables' datatype.h).
const TYPE_IPV4: u32 = 7;
const TYPE_IPV6: u32 = 8;
const TYPE_INET_PROTO: u32 = 12;
const TYPE_INET_SERVICE: u32 = 13;
const TYPE_IFNAME: u32 = 41;
const TYPE_BITS: u32 = 6;
/// Interface names are keyed as `IFNAMSIZ` bytes, zero padded.
pub(crate) const IFNAMSIZ: usize = 16;

impl SetKind {
    fn addr_type(f: Family) -> u32 {
        match f {
            Family::V4 => TYPE_IPV4,
            Family::V6 => TYPE_IPV6,
        }
    }

    /// The key's data type as the kernel stores it (concatenations shifted by 6 bits).
    pub(crate) fn key_type(self) -> u32 {
        match self {
            SetKind::Addrs(f) => Self::addr_type(f),
            SetKind::NamedPorts(f) => {
                (((Self::addr_type(f) << TYPE_BITS) | TYPE_INET_PROTO) << TYPE_BITS)
                    | TYPE_INET_SERVICE
            }
            SetKind::IfaceAddrs(f) => (TYPE_IFNAME << TYPE_BITS) | Self::addr_type(f),
            SetKind::Ifaces | SetKind::IfaceVmap => TYPE_IFNAME,
        }
    }

    /// Key length in bytes (concatenation fields padded to 4 bytes).
    pub(crate) fn key_len(self) -> u32 {
        let n = match self {
            SetKind::Addrs(f) => f.addr_len(),
            SetKind::NamedPorts(f) => f.addr_len() + 4 + 4,
            SetKind::IfaceAddrs(f) => IFNAMSIZ + f.addr_len(),
            SetKind::Ifaces | SetKind::IfaceVmap => IFNAMSIZ,
        };
        n as u32
    }

    /// True for interval sets.
    pub(crate) fn interval(self) -> bool {
        matches!(self, SetKind::Addrs(_))
    }

    /// True for verdict maps.
    pub(crate) fn is_vmap(self) -> bool {
        matches!(self, SetKind::IfaceVmap)
    }

    fn type_text(self) -> String {
        let addr = |f: Family| match f {
            Family::V4 => "ipv4_addr",
            Family::V6 => "ipv6_addr",
        };
        match self {
            SetKind::Addrs(f) => format!("type {}; flags interval;", addr(f)),
            SetKind::NamedPorts(f) => format!("type {} . inet_proto . inet_service;", addr(f)),
            SetKind::IfaceAddrs(f) => format!("type ifname . {};", addr(f)),
            SetKind::Ifaces => "type ifname;".into(),
            SetKind::IfaceVmap => "type ifname : verdict;".into(),
        }
    }
}

/// What an element carries besides its key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum ElemValue {
    /// A plain element.
    Key,
    /// An interval `[key, end)`; `None`: up to the top of the address space.
    IntervalTo(Option<Vec<u8>>),
    /// A verdict-map entry `key : goto CHAIN`.
    Goto(String),
}

/// A set: its kind and elements (key bytes → value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetSpec {
    pub(crate) kind: SetKind,
    pub(crate) elems: BTreeMap<Vec<u8>, ElemValue>,
}

impl SetSpec {
    /// An empty set.
    pub(crate) fn new(kind: SetKind) -> SetSpec {
        SetSpec {
            kind,
            elems: BTreeMap::new(),
        }
    }
}

/// The whole table.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct TableSpec {
    pub(crate) chains: BTreeMap<String, ChainSpec>,
    pub(crate) sets: BTreeMap<String, SetSpec>,
}

impl TableSpec {
    /// How many rules refer to each set (by name).
    fn set_uses(&self) -> HashMap<&str, usize> {
        let mut uses: HashMap<&str, usize> = HashMap::with_capacity(self.sets.len());
        for chain in self.chains.values() {
            for r in &chain.rules {
                for c in &r.conds {
                    let set = match c {
                        Cond::IfInSet { set, .. }
                        | Cond::Addr { set, .. }
                        | Cond::IfaceAddr { set, .. }
                        | Cond::NamedPort { set, .. } => set,
                        _ => continue,
                    };
                    *uses.entry(set.as_str()).or_insert(0) += 1;
                }
                if let Verdict::Vmap { map, .. } = &r.verdict {
                    *uses.entry(map.as_str()).or_insert(0) += 1;
                }
            }
        }
        uses
    }

    /// `names` (sets of this table) in creation order: most used by rules first, then by
    /// name. The kernel finds a set named in a rule or an element message by walking the
    /// table's set list in creation order, comparing names, so this order shortens every
    /// lookup of the sets rules use most.
    pub(crate) fn order_sets(&self, names: &mut [&String]) {
        let uses = self.set_uses();
        names.sort_by_cached_key(|n| {
            (
                std::cmp::Reverse(uses.get(n.as_str()).copied().unwrap_or(0)),
                *n,
            )
        });
    }

    /// The table as an `nft -f` script that creates exactly this content: `table inet NAME {
    /// sets … chains … }`. Chains are declared before any rule refers to them; sets in the
    /// order the dataplane creates them ([`TableSpec::order_sets`]).
    pub(crate) fn to_nft_text(&self, table: &str) -> String {
        let mut out = format!("table inet {table} {{\n");
        let mut names: Vec<&String> = self.sets.keys().collect();
        self.order_sets(&mut names);
        for name in names {
            let set = &self.sets[name];
            let word = if set.kind.is_vmap() { "map" } else { "set" };
            let _ = write!(out, "\t{word} {name} {{ {}", set.kind.type_text());
            if !set.elems.is_empty() {
                let elems: Vec<String> = set
                    .elems
                    .iter()
                    .map(|(k, v)| elem_text(set.kind, k, v))
                    .collect();
                let _ = write!(out, " elements = {{ {} }}", elems.join(", "));
            }
            out.push_str(" }\n");
        }
        for (name, chain) in &self.chains {
            let _ = writeln!(out, "\tchain {name} {{");
            if let Some(h) = chain.hook {
                let _ = writeln!(
                    out,
                    "\t\ttype {} hook {} priority {}; policy accept;",
                    h.chain_type(),
                    h.nft(),
                    h.priority_text()
                );
            }
            out.push_str("\t}\n");
        }
        out.push_str("}\n");
        for (name, chain) in &self.chains {
            for r in &chain.rules {
                let _ = writeln!(
                    out,
                    "add rule inet {table} {name} {} comment \"{}\"",
                    r.body_text(),
                    r.comment
                );
            }
        }
        out
    }
}

fn addr_text(bytes: &[u8]) -> String {
    match bytes.len() {
        4 => std::net::Ipv4Addr::new(bytes[0], bytes[1], bytes[2], bytes[3]).to_string(),
        16 => {
            let mut a = [0u8; 16];
            a.copy_from_slice(bytes);
            std::net::Ipv6Addr::from(a).to_string()
        }
        _ => String::new(),
    }
}

fn ifname_text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    format!("\"{}\"", String::from_utf8_lossy(&bytes[..end]))
}

/// The address just below `end` (the last address of an interval ending at `end`).
fn pred(end: &[u8]) -> Vec<u8> {
    let mut v = end.to_vec();
    for b in v.iter_mut().rev() {
        if *b == 0 {
            *b = 0xff;
        } else {
            *b -= 1;
            break;
        }
    }
    v
}

fn elem_text(kind: SetKind, key: &[u8], value: &ElemValue) -> String {
    match kind {
        SetKind::Addrs(f) => {
            let last = match value {
                ElemValue::IntervalTo(Some(end)) => pred(end),
                _ => vec![0xff; f.addr_len()],
            };
            if last == key {
                addr_text(key)
            } else {
                format!("{}-{}", addr_text(key), addr_text(&last))
            }
        }
        SetKind::NamedPorts(f) => {
            let n = f.addr_len();
            let port = u16::from_be_bytes([key[n + 4], key[n + 5]]);
            format!("{} . {} . {port}", addr_text(&key[..n]), key[n])
        }
        SetKind::IfaceAddrs(_) => format!(
            "{} . {}",
            ifname_text(&key[..IFNAMSIZ]),
            addr_text(&key[IFNAMSIZ..])
        ),
        SetKind::Ifaces => ifname_text(key),
        SetKind::IfaceVmap => match value {
            ElemValue::Goto(chain) => format!("{} : goto {chain}", ifname_text(key)),
            _ => ifname_text(key),
        },
    }
}

/// An interface name as a set key.
pub(crate) fn ifname_key(name: &str) -> Vec<u8> {
    let mut k = vec![0u8; IFNAMSIZ];
    let b = name.as_bytes();
    let n = b.len().min(IFNAMSIZ - 1);
    k[..n].copy_from_slice(&b[..n]);
    k
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// FNV-1a, 64 bit: stable names and rule comments (not for security).
pub(crate) fn fnv64(data: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for b in data {
        h ^= u64::from(*b);
        h = h.wrapping_mul(FNV_PRIME);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rule_text_and_comment_follow_content() {
        let r = RuleSpec::new(
            vec![
                Cond::NfProto(Family::V4),
                Cond::L4Proto {
                    proto: 6,
                    negated: false,
                },
                Cond::Addr {
                    family: Family::V4,
                    end: End::Src,
                    set: "vr-s-1-4".into(),
                    negated: true,
                },
                Cond::Port {
                    end: End::Dst,
                    first: 80,
                    last: 90,
                    negated: false,
                },
            ],
            vec![Stmt::MarkOr(0x10000)],
            Verdict::Return,
        );
        assert_eq!(
            r.body_text(),
            "meta nfproto ipv4 meta l4proto 6 ip saddr != @vr-s-1-4 th dport 80-90 \
             meta mark set meta mark | 0x00010000 return"
        );
        let same = RuleSpec::new(r.conds.clone(), r.stmts.clone(), Verdict::Return);
        assert_eq!(r.comment, same.comment);
        let other = RuleSpec::new(r.conds.clone(), vec![], Verdict::Drop);
        assert_ne!(r.comment, other.comment);
        assert!(r.comment.starts_with("vr:") && r.comment.len() == 19);
    }

    #[test]
    fn sets_are_ordered_most_used_first() {
        let uses = |set: &'static str, n: usize| {
            (0..n).map(move |i| {
                RuleSpec::new(
                    vec![Cond::Addr {
                        family: Family::V4,
                        end: End::Src,
                        set: set.into(),
                        negated: false,
                    }],
                    Vec::new(),
                    Verdict::Jump(format!("c{i}").into()),
                )
            })
        };
        let mut t = TableSpec::default();
        let rules = uses("a", 1)
            .chain(uses("b", 3))
            .chain(uses("d", 3))
            .collect();
        t.chains.insert("c".into(), ChainSpec::regular(rules));
        let names: Vec<String> = ["a", "b", "c", "d"].map(String::from).into();
        for n in &names {
            t.sets
                .insert(n.clone(), SetSpec::new(SetKind::Addrs(Family::V4)));
        }
        let mut order: Vec<&String> = names.iter().collect();
        t.order_sets(&mut order);
        assert_eq!(order, ["b", "d", "a", "c"]);
    }

    #[test]
    fn icmp_and_mark_text() {
        let c = Cond::Icmp {
            icmp_type: 8,
            code: Some(0),
            negated: true,
        };
        assert_eq!(cond_text(&c), "@th,0,16 != 0x0800");
        assert_eq!(
            cond_text(&Cond::Mark {
                mask: 0x30000,
                zero: true
            }),
            "meta mark & 0x00030000 == 0"
        );
        assert_eq!(
            cond_text(&Cond::CtState(CT_ESTABLISHED | CT_RELATED)),
            "ct state established,related"
        );
    }

    #[test]
    fn element_text() {
        let k = vec![10, 0, 0, 0];
        assert_eq!(
            elem_text(
                SetKind::Addrs(Family::V4),
                &k,
                &ElemValue::IntervalTo(Some(vec![10, 0, 1, 0]))
            ),
            "10.0.0.0-10.0.0.255"
        );
        assert_eq!(
            elem_text(
                SetKind::Addrs(Family::V4),
                &k,
                &ElemValue::IntervalTo(Some(vec![10, 0, 0, 1]))
            ),
            "10.0.0.0"
        );
        assert_eq!(
            elem_text(SetKind::Addrs(Family::V4), &k, &ElemValue::IntervalTo(None)),
            "10.0.0.0-255.255.255.255"
        );
        let mut np = vec![10, 0, 0, 5, 6, 0, 0, 0];
        np.extend([0x1f, 0x90, 0, 0]);
        assert_eq!(
            elem_text(SetKind::NamedPorts(Family::V4), &np, &ElemValue::Key),
            "10.0.0.5 . 6 . 8080"
        );
        assert_eq!(
            elem_text(
                SetKind::IfaceVmap,
                &ifname_key("vr1"),
                &ElemValue::Goto("vr-fw-vr1".into())
            ),
            "\"vr1\" : goto vr-fw-vr1"
        );
        assert_eq!(
            SetKind::NamedPorts(Family::V6).key_type(),
            (((8 << 6) | 12) << 6) | 13
        );
        assert_eq!(SetKind::IfaceAddrs(Family::V4).key_len(), 20);
    }
}
