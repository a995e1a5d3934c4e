//! Direct netlink encoding of `add rule` payloads: the NFTA_RULE_* attributes of a
//! [`RuleSpec`] written into one byte buffer, exactly the bytes libnftnl 1.2's
//! `nftnl_rule_nlmsg_build_payload` produces for the same rule (the unit tests in `wire`
//! compare both byte for byte). Rules are most of a full load's messages; building them
//! through libnftnl objects costs one allocation per expression, attribute and string.
//!
//! One deliberate difference: the names the kernel finds by walking a list, comparing each
//! entry with `nla_strcmp` (expression types: every registered type, for every expression;
//! sets: the table's sets in creation order, for every lookup), go without libnftnl's
//! trailing NUL ([`Names::Bare`]). Both attributes are `NLA_STRING`s, which need none, and
//! `nla_strcmp` strips trailing NULs from the attribute one byte at a time before comparing,
//! for every entry walked: a few percent of the kernel's work on a large ruleset.
//!
//! Safe code only: [`wire`](super::wire) copies the finished payload behind the message header.

use super::NftError;
use super::spec::{Cond, End, Family, IfDir, RuleSpec, Stmt, Verdict};
use super::wire::{
    CMP_EQ, CMP_GTE, CMP_LTE, CMP_NEQ, LOOKUP_F_INV, NF_ACCEPT, NF_DROP, NFPROTO_IPV4,
    NFPROTO_IPV6, NFT_CT_STATE, NFT_GOTO, NFT_JUMP, NFT_META_IIFNAME, NFT_META_L4PROTO,
    NFT_META_MARK, NFT_META_NFPROTO, NFT_META_OIFNAME, NFT_PAYLOAD_NETWORK, NFT_PAYLOAD_TRANSPORT,
    NFT_RETURN, RANGE_NEQ, REG_1, REG_VERDICT, reg_at, set_id,
};

const NLA_F_NESTED: u16 = 0x8000;
const UDATA_RULE_COMMENT: u8 = nftnl::nftnl_sys::NFTNL_UDATA_RULE_COMMENT as u8;
const NLA_HDRLEN: usize = 4;

const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_RULE_USERDATA: u16 = 7;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_VERDICT_CHAIN: u16 = 2;

const NFTA_META_DREG: u16 = 1;
const NFTA_META_KEY: u16 = 2;
const NFTA_META_SREG: u16 = 3;
const NFTA_PAYLOAD_DREG: u16 = 1;
const NFTA_PAYLOAD_BASE: u16 = 2;
const NFTA_PAYLOAD_OFFSET: u16 = 3;
const NFTA_PAYLOAD_LEN: u16 = 4;
const NFTA_CMP_SREG: u16 = 1;
const NFTA_CMP_OP: u16 = 2;
const NFTA_CMP_DATA: u16 = 3;
const NFTA_RANGE_SREG: u16 = 1;
const NFTA_RANGE_OP: u16 = 2;
const NFTA_RANGE_FROM_DATA: u16 = 3;
const NFTA_RANGE_TO_DATA: u16 = 4;
const NFTA_BITWISE_SREG: u16 = 1;
const NFTA_BITWISE_DREG: u16 = 2;
const NFTA_BITWISE_LEN: u16 = 3;
const NFTA_BITWISE_MASK: u16 = 4;
const NFTA_BITWISE_XOR: u16 = 5;
const NFTA_LOOKUP_SET: u16 = 1;
const NFTA_LOOKUP_SREG: u16 = 2;
const NFTA_LOOKUP_DREG: u16 = 3;
const NFTA_LOOKUP_SET_ID: u16 = 4;
const NFTA_LOOKUP_FLAGS: u16 = 5;
const NFTA_IMMEDIATE_DREG: u16 = 1;
const NFTA_IMMEDIATE_DATA: u16 = 2;
const NFTA_LOG_PREFIX: u16 = 2;
const NFTA_CT_DREG: u16 = 1;
const NFTA_CT_KEY: u16 = 2;

/// Largest payload accepted: the batch reserves `nft_nlmsg_maxsize()` (64 KiB) per message.
pub(super) const MAX_PAYLOAD: usize = 60_000;

/// How expression-type and set names are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Names {
    /// Without a trailing NUL (what the dataplane sends).
    Bare,
    /// NUL-terminated, as libnftnl writes them (the byte-for-byte comparison).
    #[cfg_attr(not(test), allow(dead_code))]
    Terminated,
}

/// A netlink attribute writer over one buffer (libmnl's layout: native-endian 16-bit length
/// and type, payload, zero padding to 4 bytes; nests carry NLA_F_NESTED).
struct Attrs<'a> {
    buf: &'a mut Vec<u8>,
    names: Names,
    /// The first string written that contains a NUL byte (the kernel would cut it there).
    nul: Option<String>,
}

impl Attrs<'_> {
    fn put(&mut self, ty: u16, data: &[u8]) {
        self.put_parts(ty, data, &[], &[]);
    }

    /// One attribute whose payload is `a`, `b` and `c` in a row.
    fn put_parts(&mut self, ty: u16, a: &[u8], b: &[u8], c: &[u8]) {
        let len = NLA_HDRLEN + a.len() + b.len() + c.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(a);
        self.buf.extend_from_slice(b);
        self.buf.extend_from_slice(c);
        let pad = (4 - len % 4) % 4;
        self.buf.extend_from_slice(&[0u8; 3][..pad]);
    }

    fn strz(&mut self, ty: u16, s: &str) {
        self.check(s);
        self.put_parts(ty, s.as_bytes(), &[0], &[]);
    }

    /// A name the kernel looks up by walking a list (see [`Names`]).
    fn name(&mut self, ty: u16, s: &str) {
        match self.names {
            Names::Bare => {
                self.check(s);
                self.put(ty, s.as_bytes());
            }
            Names::Terminated => self.strz(ty, s),
        }
    }

    /// Records `s` if it contains a NUL byte (checked as it is written: no second pass).
    fn check(&mut self, s: &str) {
        if self.nul.is_none() && s.bytes().any(|b| b == 0) {
            self.nul = Some(s.to_string());
        }
    }

    fn u32(&mut self, ty: u16, v: u32) {
        self.put(ty, &v.to_be_bytes());
    }

    fn nest(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        at
    }

    fn end(&mut self, at: usize) {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
    }

    /// A data nest holding one NFTA_DATA_VALUE.
    fn value(&mut self, ty: u16, data: &[u8]) {
        let n = self.nest(ty);
        self.put(NFTA_DATA_VALUE, data);
        self.end(n);
    }

    /// One expression: `NFTA_LIST_ELEM { NAME, DATA { body } }`.
    fn expr(&mut self, name: &str, body: impl FnOnce(&mut Self)) {
        let elem = self.nest(NFTA_LIST_ELEM);
        self.name(NFTA_EXPR_NAME, name);
        let data = self.nest(NFTA_EXPR_DATA);
        body(self);
        self.end(data);
        self.end(elem);
    }

    fn meta(&mut self, key: u32, dreg: u32) {
        self.expr("meta", |a| {
            a.u32(NFTA_META_KEY, key);
            a.u32(NFTA_META_DREG, dreg);
        });
    }

    fn meta_set(&mut self, key: u32, sreg: u32) {
        self.expr("meta", |a| {
            a.u32(NFTA_META_KEY, key);
            a.u32(NFTA_META_SREG, sreg);
        });
    }

    fn payload(&mut self, base: u32, offset: u32, len: u32, dreg: u32) {
        self.expr("payload", |a| {
            a.u32(NFTA_PAYLOAD_DREG, dreg);
            a.u32(NFTA_PAYLOAD_BASE, base);
            a.u32(NFTA_PAYLOAD_OFFSET, offset);
            a.u32(NFTA_PAYLOAD_LEN, len);
        });
    }

    fn cmp(&mut self, op: u32, data: &[u8]) {
        self.expr("cmp", |a| {
            a.u32(NFTA_CMP_SREG, REG_1);
            a.u32(NFTA_CMP_OP, op);
            a.value(NFTA_CMP_DATA, data);
        });
    }

    fn range_neq(&mut self, from: &[u8], to: &[u8]) {
        self.expr("range", |a| {
            a.u32(NFTA_RANGE_SREG, REG_1);
            a.u32(NFTA_RANGE_OP, RANGE_NEQ);
            a.value(NFTA_RANGE_FROM_DATA, from);
            a.value(NFTA_RANGE_TO_DATA, to);
        });
    }

    /// `reg1 = (reg1 & mask) ^ xor` on 4 bytes (host byte order, like the mark).
    fn bitwise(&mut self, mask: u32, xor: u32) {
        self.expr("bitwise", |a| {
            a.u32(NFTA_BITWISE_SREG, REG_1);
            a.u32(NFTA_BITWISE_DREG, REG_1);
            a.u32(NFTA_BITWISE_LEN, 4);
            a.value(NFTA_BITWISE_MASK, &mask.to_ne_bytes());
            a.value(NFTA_BITWISE_XOR, &xor.to_ne_bytes());
        });
    }

    fn lookup(&mut self, set: &str, invert: bool, verdict: bool) {
        self.expr("lookup", |a| {
            a.u32(NFTA_LOOKUP_SREG, REG_1);
            if verdict {
                a.u32(NFTA_LOOKUP_DREG, REG_VERDICT);
            }
            a.name(NFTA_LOOKUP_SET, set);
            a.u32(NFTA_LOOKUP_SET_ID, set_id(set));
            if invert {
                a.u32(NFTA_LOOKUP_FLAGS, LOOKUP_F_INV);
            }
        });
    }

    fn verdict(&mut self, code: i32, chain: Option<&str>) {
        self.expr("immediate", |a| {
            a.u32(NFTA_IMMEDIATE_DREG, REG_VERDICT);
            let data = a.nest(NFTA_IMMEDIATE_DATA);
            let v = a.nest(NFTA_DATA_VERDICT);
            a.u32(NFTA_VERDICT_CODE, code as u32);
            if let Some(c) = chain {
                a.strz(NFTA_VERDICT_CHAIN, c);
            }
            a.end(v);
            a.end(data);
        });
    }

    fn ifname(&mut self, dir: IfDir, dreg: u32) {
        let key = match dir {
            IfDir::In => NFT_META_IIFNAME,
            IfDir::Out => NFT_META_OIFNAME,
        };
        self.meta(key, dreg);
    }

    fn addr(&mut self, family: Family, end: End, dreg: u32) {
        let offset = match (family, end) {
            (Family::V4, End::Src) => 12,
            (Family::V4, End::Dst) => 16,
            (Family::V6, End::Src) => 8,
            (Family::V6, End::Dst) => 24,
        };
        self.payload(NFT_PAYLOAD_NETWORK, offset, family.addr_len() as u32, dreg);
    }

    fn port(&mut self, end: End, dreg: u32) {
        let offset = match end {
            End::Src => 0,
            End::Dst => 2,
        };
        self.payload(NFT_PAYLOAD_TRANSPORT, offset, 2, dreg);
    }

    fn cond(&mut self, c: &Cond) {
        let op = |negated: bool| if negated { CMP_NEQ } else { CMP_EQ };
        match c {
            Cond::NfProto(f) => {
                self.meta(NFT_META_NFPROTO, REG_1);
                let v = match f {
                    Family::V4 => NFPROTO_IPV4,
                    Family::V6 => NFPROTO_IPV6,
                };
                self.cmp(CMP_EQ, &[v]);
            }
            Cond::L4Proto { proto, negated } => {
                self.meta(NFT_META_L4PROTO, REG_1);
                self.cmp(op(*negated), &[*proto]);
            }
            Cond::CtState(bits) => {
                self.expr("ct", |a| {
                    a.u32(NFTA_CT_KEY, NFT_CT_STATE);
                    a.u32(NFTA_CT_DREG, REG_1);
                });
                self.bitwise(*bits, 0);
                self.cmp(CMP_NEQ, &0u32.to_ne_bytes());
            }
            Cond::IfPrefix { dir, prefix } => {
                self.ifname(*dir, REG_1);
                self.cmp(CMP_EQ, prefix.as_bytes());
            }
            Cond::IfInSet { dir, set, negated } => {
                self.ifname(*dir, REG_1);
                self.lookup(set, *negated, false);
            }
            Cond::Addr {
                family,
                end,
                set,
                negated,
            } => {
                self.addr(*family, *end, REG_1);
                self.lookup(set, *negated, false);
            }
            Cond::IfaceAddr {
                family,
                set,
                negated,
            } => {
                self.ifname(IfDir::In, REG_1);
                self.addr(*family, End::Src, reg_at(super::spec::IFNAMSIZ));
                self.lookup(set, *negated, false);
            }
            Cond::NamedPort {
                family,
                end,
                set,
                negated,
            } => {
                let n = family.addr_len();
                self.addr(*family, *end, REG_1);
                self.meta(NFT_META_L4PROTO, reg_at(n));
                self.port(*end, reg_at(n + 4));
                self.lookup(set, *negated, false);
            }
            Cond::Port {
                end,
                first,
                last,
                negated,
            } => {
                self.port(*end, REG_1);
                let (f, l) = (first.to_be_bytes(), last.to_be_bytes());
                match (first == last, negated) {
                    (true, _) => self.cmp(op(*negated), &f),
                    (false, false) => {
                        self.cmp(CMP_GTE, &f);
                        self.cmp(CMP_LTE, &l);
                    }
                    (false, true) => self.range_neq(&f, &l),
                }
            }
            Cond::Icmp {
                icmp_type,
                code,
                negated,
            } => match code {
                None => {
                    self.payload(NFT_PAYLOAD_TRANSPORT, 0, 1, REG_1);
                    self.cmp(op(*negated), &[*icmp_type]);
                }
                Some(c) => {
                    self.payload(NFT_PAYLOAD_TRANSPORT, 0, 2, REG_1);
                    self.cmp(op(*negated), &[*icmp_type, *c]);
                }
            },
            Cond::Mark { mask, zero } => {
                self.meta(NFT_META_MARK, REG_1);
                self.bitwise(*mask, 0);
                self.cmp(op(!*zero), &0u32.to_ne_bytes());
            }
        }
    }

    fn stmt(&mut self, s: &Stmt) {
        match s {
            Stmt::Log(p) => self.expr("log", |a| a.strz(NFTA_LOG_PREFIX, p)),
            Stmt::MarkOr(bits) => {
                self.meta(NFT_META_MARK, REG_1);
                self.bitwise(!bits, *bits);
                self.meta_set(NFT_META_MARK, REG_1);
            }
            Stmt::MarkClear(bits) => {
                self.meta(NFT_META_MARK, REG_1);
                self.bitwise(!bits, 0);
                self.meta_set(NFT_META_MARK, REG_1);
            }
            // A fresh counter starts at zero.
            Stmt::Counter => self.expr("counter", |_| {}),
        }
    }
}

/// Appends the NFTA_RULE_* attributes of `add rule` (`spec` appended to `chain` of `table`)
/// to `out`, as libnftnl would (but for `names`): table, chain, user data (the comment),
/// expressions.
pub(super) fn rule_payload(
    out: &mut Vec<u8>,
    table: &str,
    chain: &str,
    spec: &RuleSpec,
    names: Names,
) -> Result<(), NftError> {
    let start = out.len();
    let mut a = Attrs {
        buf: out,
        names,
        nul: None,
    };
    a.strz(NFTA_RULE_TABLE, table);
    a.strz(NFTA_RULE_CHAIN, chain);
    // User data TLV as nft writes it: type NFTNL_UDATA_RULE_COMMENT, length, NUL-ended text.
    a.check(&spec.comment);
    let comment = spec.comment.as_bytes();
    let tlv = [UDATA_RULE_COMMENT, (comment.len() + 1) as u8];
    a.put_parts(NFTA_RULE_USERDATA, &tlv, comment, &[0]);
    let exprs = a.nest(NFTA_RULE_EXPRESSIONS);
    let first_expr = a.buf.len();
    for c in &spec.conds {
        a.cond(c);
    }
    for s in &spec.stmts {
        a.stmt(s);
    }
    match &spec.verdict {
        Verdict::Continue => {}
        Verdict::Accept => a.verdict(NF_ACCEPT, None),
        Verdict::Drop => a.verdict(NF_DROP, None),
        Verdict::Return => a.verdict(NFT_RETURN, None),
        Verdict::Jump(c) => a.verdict(NFT_JUMP, Some(c)),
        Verdict::Goto(c) => a.verdict(NFT_GOTO, Some(c)),
        Verdict::Vmap { dir, map } => {
            a.ifname(*dir, REG_1);
            a.lookup(map, false, true);
        }
        // No attributes: the outgoing interface's primary address, any port.
        Verdict::Masquerade => a.expr("masq", |_| {}),
    }
    if a.buf.len() == first_expr {
        // libnftnl writes no expression list for a rule without expressions.
        a.buf.truncate(exprs);
    } else {
        a.end(exprs);
    }
    if let Some(s) = a.nul.take() {
        out.truncate(start);
        return Err(NftError::Encode(format!("name {s:?} contains a NUL byte")));
    }
    let len = out.len() - start;
    if len > MAX_PAYLOAD {
        out.truncate(start);
        return Err(NftError::Encode(format!(
            "rule in chain {chain:?} needs {len} bytes of attributes (at most {MAX_PAYLOAD})"
        )));
    }
    Ok(())
}
