//! nf_tables netlink messages for [`spec`](super::spec) values, built with libnftnl
//! (`nftnl::nftnl_sys`), except rules: their attributes are encoded directly by
//! [`encode`](super::encode) and only framed here. The read path (dump requests and reply
//! parsers) is in `dump`.
//!
//! This is one of the three modules allowed `unsafe` (with `dump` and `netlink`): nftnl 0.9's safe
//! API has no interval sets, verdict maps, vmap lookups, bitwise/range/log expressions or read
//! path (reference crates.md §2). Every libnftnl object lives inside a [`Msg`] (or a local
//! guard) that frees it exactly once; every string handed to libnftnl is a `CString` that
//! outlives the call (libnftnl copies strings and data on `*_set_*`).
//!
//! Messages carry no `NLM_F_ACK` and set elements no `NLM_F_EXCL`: errors are still reported
//! per message, re-adding an existing element is not an error, and a 10,000-rule batch does
//! not produce 10,000 acknowledgements (crates.md pitfalls 2 and 4).

#![allow(unsafe_code)]

use std::ffi::{CStr, CString, c_char, c_void};
use std::ptr::NonNull;

use nftnl::nftnl_sys as sys;

use super::NftError;
use super::encode::Names;
#[cfg(test)]
use super::spec::{Cond, End, Family, IfDir, Stmt, Verdict};
use super::spec::{ElemValue, Hook, RuleSpec, SetKind};

pub(super) const NFPROTO_INET: u16 = 1;
pub(super) const NFPROTO_IPV4: u8 = 2;
pub(super) const NFPROTO_IPV6: u8 = 10;

const NFT_MSG_NEWTABLE: u16 = 0;
pub(super) const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_DELTABLE: u16 = 2;
const NFT_MSG_NEWCHAIN: u16 = 3;
pub(super) const NFT_MSG_GETCHAIN: u16 = 4;
const NFT_MSG_DELCHAIN: u16 = 5;
const NFT_MSG_NEWRULE: u16 = 6;
pub(super) const NFT_MSG_GETRULE: u16 = 7;
const NFT_MSG_DELRULE: u16 = 8;
const NFT_MSG_NEWSET: u16 = 9;
pub(super) const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_DELSET: u16 = 11;
const NFT_MSG_NEWSETELEM: u16 = 12;
pub(super) const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;

pub(super) const NLM_F_REQUEST: u16 = 0x1;
pub(super) const NLM_F_DUMP: u16 = 0x300;
const NLM_F_CREATE: u16 = 0x400;
const NLM_F_APPEND: u16 = 0x800;

pub(super) const NFT_META_MARK: u32 = 3;
pub(super) const NFT_META_IIFNAME: u32 = 6;
pub(super) const NFT_META_OIFNAME: u32 = 7;
pub(super) const NFT_META_NFPROTO: u32 = 15;
pub(super) const NFT_META_L4PROTO: u32 = 16;
pub(super) const NFT_CT_STATE: u32 = 0;
pub(super) const NFT_PAYLOAD_NETWORK: u32 = 1;
pub(super) const NFT_PAYLOAD_TRANSPORT: u32 = 2;
pub(super) const CMP_EQ: u32 = 0;
pub(super) const CMP_NEQ: u32 = 1;
pub(super) const CMP_LTE: u32 = 3;
pub(super) const CMP_GTE: u32 = 5;
pub(super) const RANGE_NEQ: u32 = 1;
pub(super) const LOOKUP_F_INV: u32 = 1;
pub(super) const REG_VERDICT: u32 = 0;
pub(super) const REG_1: u32 = 1;

pub(super) const NF_DROP: i32 = 0;
pub(super) const NF_ACCEPT: i32 = 1;
pub(super) const NFT_JUMP: i32 = -3;
pub(super) const NFT_GOTO: i32 = -4;
pub(super) const NFT_RETURN: i32 = -5;

pub(super) const SET_F_INTERVAL: u32 = 0x4;
pub(super) const SET_F_MAP: u32 = 0x8;
pub(super) const ELEM_F_INTERVAL_END: u32 = 0x1;
const DATA_VERDICT: u32 = 0xffff_ff00;
/// nft's `enum byteorder`.
const BYTEORDER_HOST: u32 = 1;
const BYTEORDER_BIG: u32 = 2;

/// Set elements per NEWSETELEM/DELSETELEM message (well below the 64 KiB attribute limit).
const ELEMS_PER_MSG: usize = 400;

/// The register nft uses for data at byte `offset` of a concatenation: 16-byte registers when
/// aligned, 4-byte registers otherwise.
pub(super) fn reg_at(offset: usize) -> u32 {
    if offset.is_multiple_of(16) {
        REG_1 + (offset / 16) as u32
    } else {
        8 + (offset / 4) as u32
    }
}

pub(super) fn cstring(s: &str) -> Result<CString, NftError> {
    CString::new(s).map_err(|_| NftError::Encode(format!("name {s:?} contains a NUL byte")))
}

enum Obj {
    Table(NonNull<sys::nftnl_table>),
    Chain(NonNull<sys::nftnl_chain>),
    Rule(NonNull<sys::nftnl_rule>),
    Set(NonNull<sys::nftnl_set>),
    Elems(NonNull<sys::nftnl_set>),
    /// Attributes encoded directly (see [`encode`](super::encode)), copied behind the header.
    Raw(Vec<u8>),
}

/// One netlink message for a batch: a libnftnl object plus the message type and flags.
pub(crate) struct Msg {
    msg_type: u16,
    flags: u16,
    obj: Obj,
}

impl Drop for Msg {
    fn drop(&mut self) {
        // SAFETY: each pointer was returned by the matching `*_alloc`, is owned by this Msg
        // alone and is freed exactly once here.
        unsafe {
            match self.obj {
                Obj::Table(p) => sys::nftnl_table_free(p.as_ptr()),
                Obj::Chain(p) => sys::nftnl_chain_free(p.as_ptr()),
                Obj::Rule(p) => sys::nftnl_rule_free(p.as_ptr()),
                Obj::Set(p) | Obj::Elems(p) => sys::nftnl_set_free(p.as_ptr()),
                Obj::Raw(_) => {}
            }
        }
    }
}

// SAFETY: `write` builds a header plus one object's payload; libnftnl never writes more than
// `nft_nlmsg_maxsize()` bytes for one object, set-element messages are capped at
// ELEMS_PER_MSG elements of at most 60 bytes of attributes each, and raw payloads at
// `encode::MAX_PAYLOAD` bytes.
unsafe impl nftnl::NlMsg for Msg {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: nftnl::MsgType) {
        // SAFETY: the batch hands us a buffer with room for one maximal message; the object
        // pointers are valid for the lifetime of `self`.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                self.msg_type,
                NFPROTO_INET,
                self.flags,
                seq,
            );
            match self.obj {
                Obj::Table(p) => sys::nftnl_table_nlmsg_build_payload(nlh, p.as_ptr()),
                Obj::Chain(p) => sys::nftnl_chain_nlmsg_build_payload(nlh, p.as_ptr()),
                Obj::Rule(p) => sys::nftnl_rule_nlmsg_build_payload(nlh, p.as_ptr()),
                Obj::Set(p) => sys::nftnl_set_nlmsg_build_payload(nlh, p.as_ptr()),
                Obj::Elems(p) => sys::nftnl_set_elems_nlmsg_build_payload(nlh, p.as_ptr()),
                Obj::Raw(ref payload) => {
                    // The header is aligned and `payload` is a whole number of padded
                    // attributes of at most `encode::MAX_PAYLOAD` bytes.
                    let end = nlh.cast::<u8>().add((*nlh).nlmsg_len as usize);
                    std::ptr::copy_nonoverlapping(payload.as_ptr(), end, payload.len());
                    (*nlh).nlmsg_len += payload.len() as u32;
                }
            }
        }
    }
}

/// An `add rule` whose attributes were encoded into a caller's buffer (reused from rule to
/// rule: no allocation per message).
pub(crate) struct RuleMsg<'a> {
    payload: &'a [u8],
}

// SAFETY: as for `Msg`'s raw payloads: a header plus at most `encode::MAX_PAYLOAD` bytes of
// whole, padded attributes.
unsafe impl nftnl::NlMsg for RuleMsg<'_> {
    unsafe fn write(&self, buf: *mut c_void, seq: u32, _msg_type: nftnl::MsgType) {
        // SAFETY: the batch hands us a buffer with room for one maximal message.
        unsafe {
            let nlh = sys::nftnl_nlmsg_build_hdr(
                buf.cast::<c_char>(),
                NFT_MSG_NEWRULE,
                NFPROTO_INET,
                NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND,
                seq,
            );
            let end = nlh.cast::<u8>().add((*nlh).nlmsg_len as usize);
            std::ptr::copy_nonoverlapping(self.payload.as_ptr(), end, self.payload.len());
            (*nlh).nlmsg_len += self.payload.len() as u32;
        }
    }
}

/// `add rule` appending `spec` to `chain`, its attributes encoded into `scratch` (cleared
/// first).
pub(crate) fn add_rule_in<'a>(
    scratch: &'a mut Vec<u8>,
    table: &str,
    chain: &str,
    spec: &RuleSpec,
) -> Result<RuleMsg<'a>, NftError> {
    scratch.clear();
    super::encode::rule_payload(scratch, table, chain, spec, Names::Bare)?;
    Ok(RuleMsg { payload: scratch })
}

pub(super) fn alloc<T>(p: *mut T) -> Result<NonNull<T>, NftError> {
    NonNull::new(p).ok_or_else(|| NftError::Encode("libnftnl allocation failed".into()))
}

pub(super) fn table_obj(table: &CStr) -> Result<NonNull<sys::nftnl_table>, NftError> {
    // SAFETY: fresh allocation; the string is copied by libnftnl.
    unsafe {
        let t = alloc(sys::nftnl_table_alloc())?;
        sys::nftnl_table_set_str(t.as_ptr(), sys::NFTNL_TABLE_NAME as u16, table.as_ptr());
        sys::nftnl_table_set_u32(
            t.as_ptr(),
            sys::NFTNL_TABLE_FAMILY as u16,
            u32::from(NFPROTO_INET),
        );
        Ok(t)
    }
}

/// `add table inet T` (a no-op if it exists).
pub(crate) fn add_table(table: &str) -> Result<Msg, NftError> {
    Ok(Msg {
        msg_type: NFT_MSG_NEWTABLE,
        flags: NLM_F_REQUEST | NLM_F_CREATE,
        obj: Obj::Table(table_obj(&cstring(table)?)?),
    })
}

/// `delete table inet T`.
pub(crate) fn del_table(table: &str) -> Result<Msg, NftError> {
    Ok(Msg {
        msg_type: NFT_MSG_DELTABLE,
        flags: NLM_F_REQUEST,
        obj: Obj::Table(table_obj(&cstring(table)?)?),
    })
}

pub(super) fn chain_obj(table: &str, name: &str) -> Result<NonNull<sys::nftnl_chain>, NftError> {
    let (t, n) = (cstring(table)?, cstring(name)?);
    // SAFETY: fresh allocation; strings are copied.
    unsafe {
        let c = alloc(sys::nftnl_chain_alloc())?;
        sys::nftnl_chain_set_str(c.as_ptr(), sys::NFTNL_CHAIN_TABLE as u16, t.as_ptr());
        sys::nftnl_chain_set_str(c.as_ptr(), sys::NFTNL_CHAIN_NAME as u16, n.as_ptr());
        sys::nftnl_chain_set_u32(
            c.as_ptr(),
            sys::NFTNL_CHAIN_FAMILY as u16,
            u32::from(NFPROTO_INET),
        );
        Ok(c)
    }
}

/// `add chain` (base chains: `type filter hook H priority 0; policy accept`, or
/// `type nat hook postrouting priority 110` — see [`Hook`]).
pub(crate) fn add_chain(table: &str, name: &str, hook: Option<Hook>) -> Result<Msg, NftError> {
    let c = chain_obj(table, name)?;
    if let Some(h) = hook {
        let chain_type = match h.chain_type() {
            "nat" => c"nat",
            _ => c"filter",
        };
        // SAFETY: `c` is a valid chain; the type is a static C string copied by libnftnl.
        unsafe {
            sys::nftnl_chain_set_u32(c.as_ptr(), sys::NFTNL_CHAIN_HOOKNUM as u16, h.number());
            sys::nftnl_chain_set_s32(c.as_ptr(), sys::NFTNL_CHAIN_PRIO as u16, h.priority());
            sys::nftnl_chain_set_str(
                c.as_ptr(),
                sys::NFTNL_CHAIN_TYPE as u16,
                chain_type.as_ptr(),
            );
            sys::nftnl_chain_set_u32(c.as_ptr(), sys::NFTNL_CHAIN_POLICY as u16, NF_ACCEPT as u32);
        }
    }
    Ok(Msg {
        msg_type: NFT_MSG_NEWCHAIN,
        flags: NLM_F_REQUEST | NLM_F_CREATE,
        obj: Obj::Chain(c),
    })
}

/// `delete chain` (must be empty and unreferenced by the time it runs).
pub(crate) fn del_chain(table: &str, name: &str) -> Result<Msg, NftError> {
    Ok(Msg {
        msg_type: NFT_MSG_DELCHAIN,
        flags: NLM_F_REQUEST,
        obj: Obj::Chain(chain_obj(table, name)?),
    })
}

pub(super) fn rule_obj(table: &str, chain: &str) -> Result<NonNull<sys::nftnl_rule>, NftError> {
    let (t, c) = (cstring(table)?, cstring(chain)?);
    // SAFETY: fresh allocation; strings are copied.
    unsafe {
        let r = alloc(sys::nftnl_rule_alloc())?;
        sys::nftnl_rule_set_str(r.as_ptr(), sys::NFTNL_RULE_TABLE as u16, t.as_ptr());
        sys::nftnl_rule_set_str(r.as_ptr(), sys::NFTNL_RULE_CHAIN as u16, c.as_ptr());
        sys::nftnl_rule_set_u32(
            r.as_ptr(),
            sys::NFTNL_RULE_FAMILY as u16,
            u32::from(NFPROTO_INET),
        );
        Ok(r)
    }
}

/// `flush chain` (a rule delete without handle removes every rule of the chain).
pub(crate) fn flush_chain(table: &str, chain: &str) -> Result<Msg, NftError> {
    Ok(Msg {
        msg_type: NFT_MSG_DELRULE,
        flags: NLM_F_REQUEST,
        obj: Obj::Rule(rule_obj(table, chain)?),
    })
}

/// Builds expressions into one rule through libnftnl: the reference the direct encoder
/// ([`encode`](super::encode)) is tested against byte for byte. Owns nothing: expressions are handed to the rule
/// (`nftnl_rule_add_expr` takes ownership) as soon as they are built.
#[cfg(test)]
struct RuleBuilder {
    rule: NonNull<sys::nftnl_rule>,
}

#[cfg(test)]
impl RuleBuilder {
    fn expr(&self, name: &CStr, set: impl FnOnce(*mut sys::nftnl_expr)) -> Result<(), NftError> {
        // SAFETY: a fresh expression is configured by `set` and then owned by the rule.
        unsafe {
            let e = alloc(sys::nftnl_expr_alloc(name.as_ptr()))?;
            set(e.as_ptr());
            sys::nftnl_rule_add_expr(self.rule.as_ptr(), e.as_ptr());
        }
        Ok(())
    }

    fn meta(&self, key: u32, dreg: u32) -> Result<(), NftError> {
        // SAFETY (closure): `e` is a valid meta expression.
        self.expr(c"meta", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_META_KEY as u16, key);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_META_DREG as u16, dreg);
        })
    }

    fn meta_set(&self, key: u32, sreg: u32) -> Result<(), NftError> {
        // SAFETY (closure): `e` is a valid meta expression.
        self.expr(c"meta", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_META_KEY as u16, key);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_META_SREG as u16, sreg);
        })
    }

    fn payload(&self, base: u32, offset: u32, len: u32, dreg: u32) -> Result<(), NftError> {
        // SAFETY (closure): `e` is a valid payload expression.
        self.expr(c"payload", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_BASE as u16, base);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_OFFSET as u16, offset);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_LEN as u16, len);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_PAYLOAD_DREG as u16, dreg);
        })
    }

    fn cmp(&self, op: u32, data: &[u8]) -> Result<(), NftError> {
        // SAFETY (closure): `data` outlives the call and is copied by libnftnl.
        self.expr(c"cmp", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CMP_SREG as u16, REG_1);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CMP_OP as u16, op);
            sys::nftnl_expr_set(
                e,
                sys::NFTNL_EXPR_CMP_DATA as u16,
                data.as_ptr().cast(),
                data.len() as u32,
            );
        })
    }

    fn range_neq(&self, from: &[u8], to: &[u8]) -> Result<(), NftError> {
        // SAFETY (closure): both slices outlive the call and are copied.
        self.expr(c"range", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_RANGE_SREG as u16, REG_1);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_RANGE_OP as u16, RANGE_NEQ);
            sys::nftnl_expr_set(
                e,
                sys::NFTNL_EXPR_RANGE_FROM_DATA as u16,
                from.as_ptr().cast(),
                from.len() as u32,
            );
            sys::nftnl_expr_set(
                e,
                sys::NFTNL_EXPR_RANGE_TO_DATA as u16,
                to.as_ptr().cast(),
                to.len() as u32,
            );
        })
    }

    /// `reg1 = (reg1 & mask) ^ xor` on 4 bytes (host byte order, like the mark).
    fn bitwise(&self, mask: u32, xor: u32) -> Result<(), NftError> {
        let (m, x) = (mask.to_ne_bytes(), xor.to_ne_bytes());
        // SAFETY (closure): mask/xor arrays outlive the call and are copied.
        self.expr(c"bitwise", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_BITWISE_SREG as u16, REG_1);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_BITWISE_DREG as u16, REG_1);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_BITWISE_LEN as u16, 4);
            sys::nftnl_expr_set(e, sys::NFTNL_EXPR_BITWISE_MASK as u16, m.as_ptr().cast(), 4);
            sys::nftnl_expr_set(e, sys::NFTNL_EXPR_BITWISE_XOR as u16, x.as_ptr().cast(), 4);
        })
    }

    fn lookup(&self, set: &str, invert: bool, verdict: bool) -> Result<(), NftError> {
        let name = cstring(set)?;
        let id = set_id(set);
        // SAFETY (closure): `name` outlives the call and is copied.
        self.expr(c"lookup", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_LOOKUP_SREG as u16, REG_1);
            sys::nftnl_expr_set_str(e, sys::NFTNL_EXPR_LOOKUP_SET as u16, name.as_ptr());
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_LOOKUP_SET_ID as u16, id);
            if verdict {
                sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_LOOKUP_DREG as u16, REG_VERDICT);
            }
            if invert {
                sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_LOOKUP_FLAGS as u16, LOOKUP_F_INV);
            }
        })
    }

    fn verdict(&self, code: i32, chain: Option<&str>) -> Result<(), NftError> {
        let chain = chain.map(cstring).transpose()?;
        // SAFETY (closure): `chain` outlives the call and is copied.
        self.expr(c"immediate", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_IMM_DREG as u16, REG_VERDICT);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_IMM_VERDICT as u16, code as u32);
            if let Some(c) = &chain {
                sys::nftnl_expr_set_str(e, sys::NFTNL_EXPR_IMM_CHAIN as u16, c.as_ptr());
            }
        })
    }

    fn log(&self, prefix: &str) -> Result<(), NftError> {
        let p = cstring(prefix)?;
        // SAFETY (closure): `p` outlives the call and is copied.
        self.expr(c"log", |e| unsafe {
            sys::nftnl_expr_set_str(e, sys::NFTNL_EXPR_LOG_PREFIX as u16, p.as_ptr());
        })
    }

    fn ct_state(&self) -> Result<(), NftError> {
        // SAFETY (closure): `e` is a valid ct expression.
        self.expr(c"ct", |e| unsafe {
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CT_KEY as u16, NFT_CT_STATE);
            sys::nftnl_expr_set_u32(e, sys::NFTNL_EXPR_CT_DREG as u16, REG_1);
        })
    }

    fn ifname(&self, dir: IfDir, dreg: u32) -> Result<(), NftError> {
        let key = match dir {
            IfDir::In => NFT_META_IIFNAME,
            IfDir::Out => NFT_META_OIFNAME,
        };
        self.meta(key, dreg)
    }

    fn addr(&self, family: Family, end: End, dreg: u32) -> Result<(), NftError> {
        let offset = match (family, end) {
            (Family::V4, End::Src) => 12,
            (Family::V4, End::Dst) => 16,
            (Family::V6, End::Src) => 8,
            (Family::V6, End::Dst) => 24,
        };
        self.payload(NFT_PAYLOAD_NETWORK, offset, family.addr_len() as u32, dreg)
    }

    fn port(&self, end: End, dreg: u32) -> Result<(), NftError> {
        let offset = match end {
            End::Src => 0,
            End::Dst => 2,
        };
        self.payload(NFT_PAYLOAD_TRANSPORT, offset, 2, dreg)
    }

    fn cond(&self, c: &Cond) -> Result<(), NftError> {
        let op = |negated: bool| if negated { CMP_NEQ } else { CMP_EQ };
        match c {
            Cond::NfProto(f) => {
                self.meta(NFT_META_NFPROTO, REG_1)?;
                let v = match f {
                    Family::V4 => NFPROTO_IPV4,
                    Family::V6 => NFPROTO_IPV6,
                };
                self.cmp(CMP_EQ, &[v])
            }
            Cond::L4Proto { proto, negated } => {
                self.meta(NFT_META_L4PROTO, REG_1)?;
                self.cmp(op(*negated), &[*proto])
            }
            Cond::CtState(bits) => {
                self.ct_state()?;
                self.bitwise(*bits, 0)?;
                self.cmp(CMP_NEQ, &0u32.to_ne_bytes())
            }
            Cond::IfPrefix { dir, prefix } => {
                self.ifname(*dir, REG_1)?;
                self.cmp(CMP_EQ, prefix.as_bytes())
            }
            Cond::IfInSet { dir, set, negated } => {
                self.ifname(*dir, REG_1)?;
                self.lookup(set, *negated, false)
            }
            Cond::Addr {
                family,
                end,
                set,
                negated,
            } => {
                self.addr(*family, *end, REG_1)?;
                self.lookup(set, *negated, false)
            }
            Cond::IfaceAddr {
                family,
                set,
                negated,
            } => {
                self.ifname(IfDir::In, REG_1)?;
                self.addr(*family, End::Src, reg_at(super::spec::IFNAMSIZ))?;
                self.lookup(set, *negated, false)
            }
            Cond::NamedPort {
                family,
                end,
                set,
                negated,
            } => {
                let n = family.addr_len();
                self.addr(*family, *end, REG_1)?;
                self.meta(NFT_META_L4PROTO, reg_at(n))?;
                self.port(*end, reg_at(n + 4))?;
                self.lookup(set, *negated, false)
            }
            Cond::Port {
                end,
                first,
                last,
                negated,
            } => {
                self.port(*end, REG_1)?;
                let (f, l) = (first.to_be_bytes(), last.to_be_bytes());
                match (first == last, negated) {
                    (true, _) => self.cmp(op(*negated), &f),
                    (false, false) => {
                        self.cmp(CMP_GTE, &f)?;
                        self.cmp(CMP_LTE, &l)
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
                    self.payload(NFT_PAYLOAD_TRANSPORT, 0, 1, REG_1)?;
                    self.cmp(op(*negated), &[*icmp_type])
                }
                Some(c) => {
                    self.payload(NFT_PAYLOAD_TRANSPORT, 0, 2, REG_1)?;
                    self.cmp(op(*negated), &[*icmp_type, *c])
                }
            },
            Cond::Mark { mask, zero } => {
                self.meta(NFT_META_MARK, REG_1)?;
                self.bitwise(*mask, 0)?;
                self.cmp(op(!*zero), &0u32.to_ne_bytes())
            }
        }
    }

    fn stmt(&self, s: &Stmt) -> Result<(), NftError> {
        match s {
            Stmt::Log(p) => self.log(p),
            Stmt::MarkOr(bits) => {
                self.meta(NFT_META_MARK, REG_1)?;
                self.bitwise(!bits, *bits)?;
                self.meta_set(NFT_META_MARK, REG_1)
            }
            Stmt::MarkClear(bits) => {
                self.meta(NFT_META_MARK, REG_1)?;
                self.bitwise(!bits, 0)?;
                self.meta_set(NFT_META_MARK, REG_1)
            }
            // A fresh counter starts at zero.
            Stmt::Counter => self.expr(c"counter", |_| {}),
        }
    }

    fn comment(&self, text: &str) -> Result<(), NftError> {
        // User data TLV as nft writes it: type NFTNL_UDATA_RULE_COMMENT, length, NUL-ended text.
        let mut udata = vec![sys::NFTNL_UDATA_RULE_COMMENT as u8, (text.len() + 1) as u8];
        udata.extend(text.as_bytes());
        udata.push(0);
        // SAFETY: the rule is valid; the data is copied by libnftnl.
        unsafe {
            sys::nftnl_rule_set_data(
                self.rule.as_ptr(),
                sys::NFTNL_RULE_USERDATA as u16,
                udata.as_ptr().cast(),
                udata.len() as u32,
            );
        }
        Ok(())
    }
}

/// `add rule` appending `spec` to `chain`, encoded directly (no libnftnl objects).
pub(crate) fn add_rule(table: &str, chain: &str, spec: &RuleSpec) -> Result<Msg, NftError> {
    add_rule_with(table, chain, spec, Names::Bare)
}

fn add_rule_with(table: &str, chain: &str, spec: &RuleSpec, names: Names) -> Result<Msg, NftError> {
    let mut payload = Vec::with_capacity(512);
    super::encode::rule_payload(&mut payload, table, chain, spec, names)?;
    Ok(Msg {
        msg_type: NFT_MSG_NEWRULE,
        flags: NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND,
        obj: Obj::Raw(payload),
    })
}

/// `add rule` built through libnftnl objects (the test reference for [`add_rule`]).
#[cfg(test)]
fn add_rule_libnftnl(table: &str, chain: &str, spec: &RuleSpec) -> Result<Msg, NftError> {
    let msg = Msg {
        msg_type: NFT_MSG_NEWRULE,
        flags: NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND,
        obj: Obj::Rule(rule_obj(table, chain)?),
    };
    let Obj::Rule(rule) = msg.obj else {
        unreachable!("constructed as a rule just above")
    };
    let b = RuleBuilder { rule };
    for c in &spec.conds {
        b.cond(c)?;
    }
    for s in &spec.stmts {
        b.stmt(s)?;
    }
    match &spec.verdict {
        Verdict::Continue => {}
        Verdict::Accept => b.verdict(NF_ACCEPT, None)?,
        Verdict::Drop => b.verdict(NF_DROP, None)?,
        Verdict::Return => b.verdict(NFT_RETURN, None)?,
        Verdict::Jump(c) => b.verdict(NFT_JUMP, Some(c))?,
        Verdict::Goto(c) => b.verdict(NFT_GOTO, Some(c))?,
        Verdict::Vmap { dir, map } => {
            b.ifname(*dir, REG_1)?;
            b.lookup(map, false, true)?;
        }
        // No attributes: the outgoing interface's primary address, any port.
        Verdict::Masquerade => b.expr(c"masq", |_| {})?,
    }
    b.comment(&spec.comment)?;
    Ok(msg)
}

/// Set id used to refer to a set created in the same batch.
pub(super) fn set_id(name: &str) -> u32 {
    (super::spec::fnv64(name.as_bytes()) & 0x7fff_ffff) as u32
}

pub(super) fn set_obj(table: &str, name: &str) -> Result<NonNull<sys::nftnl_set>, NftError> {
    let (t, n) = (cstring(table)?, cstring(name)?);
    // SAFETY: fresh allocation; strings are copied.
    unsafe {
        let s = alloc(sys::nftnl_set_alloc())?;
        sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_TABLE as u16, t.as_ptr());
        sys::nftnl_set_set_str(s.as_ptr(), sys::NFTNL_SET_NAME as u16, n.as_ptr());
        sys::nftnl_set_set_u32(
            s.as_ptr(),
            sys::NFTNL_SET_FAMILY as u16,
            u32::from(NFPROTO_INET),
        );
        sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_ID as u16, set_id(name));
        Ok(s)
    }
}

/// The kernel-side flags of a set kind.
pub(super) fn set_flags(kind: SetKind) -> u32 {
    let mut f = 0;
    if kind.interval() {
        f |= SET_F_INTERVAL;
    }
    if kind.is_vmap() {
        f |= SET_F_MAP;
    }
    f
}

/// `add set` / `add map`.
pub(crate) fn add_set(table: &str, name: &str, kind: SetKind) -> Result<Msg, NftError> {
    let s = set_obj(table, name)?;
    // SAFETY: `s` is a valid set.
    unsafe {
        sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_KEY_TYPE as u16, kind.key_type());
        sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_KEY_LEN as u16, kind.key_len());
        sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_FLAGS as u16, set_flags(kind));
        // Key byte order as nft records it in the set's user data, so `nft list` prints
        // interface names (host-endian strings) instead of byte-swapped garbage.
        let order: u32 = match kind {
            SetKind::Ifaces | SetKind::IfaceVmap => BYTEORDER_HOST,
            _ => BYTEORDER_BIG,
        };
        let mut udata = vec![sys::NFTNL_UDATA_SET_KEYBYTEORDER as u8, 4];
        udata.extend(order.to_ne_bytes());
        sys::nftnl_set_set_data(
            s.as_ptr(),
            sys::NFTNL_SET_USERDATA as u16,
            udata.as_ptr().cast(),
            udata.len() as u32,
        );
        if kind.is_vmap() {
            sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_DATA_TYPE as u16, DATA_VERDICT);
            sys::nftnl_set_set_u32(s.as_ptr(), sys::NFTNL_SET_DATA_LEN as u16, 16);
        }
    }
    Ok(Msg {
        msg_type: NFT_MSG_NEWSET,
        flags: NLM_F_REQUEST | NLM_F_CREATE,
        obj: Obj::Set(s),
    })
}

/// `delete set`.
pub(crate) fn del_set(table: &str, name: &str) -> Result<Msg, NftError> {
    Ok(Msg {
        msg_type: NFT_MSG_DELSET,
        flags: NLM_F_REQUEST,
        obj: Obj::Set(set_obj(table, name)?),
    })
}

fn push_elem(
    set: NonNull<sys::nftnl_set>,
    key: &[u8],
    flags: u32,
    goto: Option<&CStr>,
) -> Result<(), NftError> {
    // SAFETY: fresh element configured then owned by the set; key/chain are copied.
    unsafe {
        let e = alloc(sys::nftnl_set_elem_alloc())?;
        sys::nftnl_set_elem_set(
            e.as_ptr(),
            sys::NFTNL_SET_ELEM_KEY as u16,
            key.as_ptr().cast(),
            key.len() as u32,
        );
        if flags != 0 {
            sys::nftnl_set_elem_set_u32(e.as_ptr(), sys::NFTNL_SET_ELEM_FLAGS as u16, flags);
        }
        if let Some(chain) = goto {
            sys::nftnl_set_elem_set_u32(
                e.as_ptr(),
                sys::NFTNL_SET_ELEM_VERDICT as u16,
                NFT_GOTO as u32,
            );
            sys::nftnl_set_elem_set_str(
                e.as_ptr(),
                sys::NFTNL_SET_ELEM_CHAIN as u16,
                chain.as_ptr(),
            );
        }
        sys::nftnl_set_elem_add(set.as_ptr(), e.as_ptr());
    }
    Ok(())
}

/// NEWSETELEM (`add == true`) or DELSETELEM messages for `elems` of set `name`; intervals
/// become a start element plus an interval-end element.
pub(crate) fn elems<'a>(
    table: &str,
    name: &str,
    elems: impl Iterator<Item = (&'a Vec<u8>, &'a ElemValue)>,
    add: bool,
) -> Result<Vec<Msg>, NftError> {
    let mut out = Vec::new();
    let mut current: Option<(NonNull<sys::nftnl_set>, usize)> = None;
    let msg_of = |s| Msg {
        msg_type: if add {
            NFT_MSG_NEWSETELEM
        } else {
            NFT_MSG_DELSETELEM
        },
        flags: if add {
            NLM_F_REQUEST | NLM_F_CREATE
        } else {
            NLM_F_REQUEST
        },
        obj: Obj::Elems(s),
    };
    for (key, value) in elems {
        let (set, count) = match current.take() {
            Some((s, n)) if n < ELEMS_PER_MSG => (s, n),
            Some((s, _)) => {
                out.push(msg_of(s));
                (set_obj(table, name)?, 0)
            }
            None => (set_obj(table, name)?, 0),
        };
        // Hand the set to a Msg right away on error paths: wrap it first.
        let mut added = 0;
        let res = (|| -> Result<(), NftError> {
            match value {
                ElemValue::Key => push_elem(set, key, 0, None)?,
                ElemValue::IntervalTo(end) => {
                    push_elem(set, key, 0, None)?;
                    added += 1;
                    if let Some(end) = end {
                        push_elem(set, end, ELEM_F_INTERVAL_END, None)?;
                    }
                }
                ElemValue::Goto(chain) => {
                    let c = cstring(chain)?;
                    push_elem(set, key, 0, Some(&c))?;
                }
            }
            added += 1;
            Ok(())
        })();
        if let Err(e) = res {
            out.push(msg_of(set));
            return Err(e);
        }
        current = Some((set, count + added));
    }
    if let Some((s, _)) = current {
        out.push(msg_of(s));
    }
    Ok(out)
}

#[cfg(test)]
#[path = "wire_tests.rs"]
mod tests;
