//! The read path: dump requests for table `inet vrouter`'s tables, chains, rules, sets and
//! set elements, and parsers for the kernel's replies (libnftnl's `*_nlmsg_parse`), so a
//! restarted agent and `resync` can compare the kernel's table with the wanted one.
//!
//! One of the three modules allowed `unsafe` (libnftnl FFI). Every object parsed into is
//! allocated and freed here; strings and data are copied out before the free.

#![allow(unsafe_code)]

use std::ffi::{CStr, c_char};

use nftnl::nftnl_sys as sys;

use super::NftError;
use super::spec::SetKind;
use super::wire::{
    ELEM_F_INTERVAL_END, NFPROTO_INET, NFT_MSG_GETCHAIN, NFT_MSG_GETRULE, NFT_MSG_GETSET,
    NFT_MSG_GETSETELEM, NFT_MSG_GETTABLE, NLM_F_DUMP, NLM_F_REQUEST, SET_F_INTERVAL, SET_F_MAP,
    alloc, chain_obj, rule_obj, set_flags, set_obj,
};

/// A dump request (`NLM_F_DUMP`) for the objects of `table` (and `set`, for elements).
pub(crate) fn dump_request(kind: DumpKind, table: &str, seq: u32) -> Result<Vec<u8>, NftError> {
    let mut buf = vec![0u8; 4096];
    let msg_type = match kind {
        DumpKind::Tables => NFT_MSG_GETTABLE,
        DumpKind::Chains => NFT_MSG_GETCHAIN,
        DumpKind::Rules | DumpKind::ChainRules(_) => NFT_MSG_GETRULE,
        DumpKind::Sets => NFT_MSG_GETSET,
        DumpKind::Elems(_) => NFT_MSG_GETSETELEM,
    };
    // SAFETY: `buf` has room for a header plus the few attributes written; objects are
    // freed after use by their owning Msg.
    unsafe {
        let nlh = sys::nftnl_nlmsg_build_hdr(
            buf.as_mut_ptr().cast(),
            msg_type,
            NFPROTO_INET,
            NLM_F_REQUEST | NLM_F_DUMP,
            seq,
        );
        match &kind {
            DumpKind::Tables => {}
            DumpKind::Chains => {
                let c = chain_obj(table, "x")?;
                sys::nftnl_chain_unset(c.as_ptr(), sys::NFTNL_CHAIN_NAME as u16);
                sys::nftnl_chain_nlmsg_build_payload(nlh, c.as_ptr());
                sys::nftnl_chain_free(c.as_ptr());
            }
            DumpKind::Rules => {
                let rule = rule_obj(table, "x")?;
                sys::nftnl_rule_unset(rule.as_ptr(), sys::NFTNL_RULE_CHAIN as u16);
                sys::nftnl_rule_nlmsg_build_payload(nlh, rule.as_ptr());
                sys::nftnl_rule_free(rule.as_ptr());
            }
            DumpKind::ChainRules(chain) => {
                let rule = rule_obj(table, chain)?;
                sys::nftnl_rule_nlmsg_build_payload(nlh, rule.as_ptr());
                sys::nftnl_rule_free(rule.as_ptr());
            }
            DumpKind::Sets => {
                let s = set_obj(table, "x")?;
                sys::nftnl_set_unset(s.as_ptr(), sys::NFTNL_SET_NAME as u16);
                sys::nftnl_set_unset(s.as_ptr(), sys::NFTNL_SET_ID as u16);
                sys::nftnl_set_nlmsg_build_payload(nlh, s.as_ptr());
                sys::nftnl_set_free(s.as_ptr());
            }
            DumpKind::Elems(set) => {
                let s = set_obj(table, set)?;
                sys::nftnl_set_unset(s.as_ptr(), sys::NFTNL_SET_ID as u16);
                sys::nftnl_set_elems_nlmsg_build_payload(nlh, s.as_ptr());
                sys::nftnl_set_free(s.as_ptr());
            }
        }
        let len = (*nlh).nlmsg_len as usize;
        buf.truncate(len);
    }
    Ok(buf)
}

/// What to dump.
#[derive(Debug, Clone)]
pub(crate) enum DumpKind {
    /// Tables of the inet family.
    Tables,
    /// Chains.
    Chains,
    /// Rules.
    Rules,
    /// Rules of one chain (the kernel filters by chain name).
    ChainRules(String),
    /// Sets.
    Sets,
    /// Elements of one set.
    Elems(String),
}

fn owned_str(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libnftnl returns NUL-terminated strings owned by the object, valid until free.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// A table name from a NEWTABLE dump message.
pub(crate) fn parse_table(msg: &[u8]) -> Result<String, NftError> {
    // SAFETY: `msg` is one complete netlink message; the table is freed before returning.
    unsafe {
        let t = alloc(sys::nftnl_table_alloc())?;
        let rc = sys::nftnl_table_nlmsg_parse(msg.as_ptr().cast(), t.as_ptr());
        let name = owned_str(sys::nftnl_table_get_str(
            t.as_ptr(),
            sys::NFTNL_TABLE_NAME as u16,
        ));
        sys::nftnl_table_free(t.as_ptr());
        if rc < 0 {
            return Err(NftError::Decode("table".into()));
        }
        Ok(name)
    }
}

/// (table, chain) from a NEWCHAIN dump message.
pub(crate) fn parse_chain(msg: &[u8]) -> Result<(String, String), NftError> {
    // SAFETY: as in parse_table.
    unsafe {
        let c = alloc(sys::nftnl_chain_alloc())?;
        let rc = sys::nftnl_chain_nlmsg_parse(msg.as_ptr().cast(), c.as_ptr());
        let table = owned_str(sys::nftnl_chain_get_str(
            c.as_ptr(),
            sys::NFTNL_CHAIN_TABLE as u16,
        ));
        let name = owned_str(sys::nftnl_chain_get_str(
            c.as_ptr(),
            sys::NFTNL_CHAIN_NAME as u16,
        ));
        sys::nftnl_chain_free(c.as_ptr());
        if rc < 0 {
            return Err(NftError::Decode("chain".into()));
        }
        Ok((table, name))
    }
}

/// (table, chain, comment) from a NEWRULE dump message; the comment is empty when absent.
pub(crate) fn parse_rule(msg: &[u8]) -> Result<(String, String, String), NftError> {
    // SAFETY: as in parse_table; the user data pointer is read within its object's lifetime.
    unsafe {
        let r = alloc(sys::nftnl_rule_alloc())?;
        let rc = sys::nftnl_rule_nlmsg_parse(msg.as_ptr().cast(), r.as_ptr());
        let table = owned_str(sys::nftnl_rule_get_str(
            r.as_ptr(),
            sys::NFTNL_RULE_TABLE as u16,
        ));
        let chain = owned_str(sys::nftnl_rule_get_str(
            r.as_ptr(),
            sys::NFTNL_RULE_CHAIN as u16,
        ));
        let mut len = 0u32;
        let p = sys::nftnl_rule_get_data(r.as_ptr(), sys::NFTNL_RULE_USERDATA as u16, &mut len);
        let udata = if p.is_null() {
            Vec::new()
        } else {
            std::slice::from_raw_parts(p.cast::<u8>(), len as usize).to_vec()
        };
        sys::nftnl_rule_free(r.as_ptr());
        if rc < 0 {
            return Err(NftError::Decode("rule".into()));
        }
        Ok((table, chain, comment_of(&udata)))
    }
}

/// A rule's identity and the first `counter` expression in it, as the kernel reports them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RuleCounter {
    pub(crate) chain: String,
    pub(crate) comment: String,
    /// `None`: the rule has no counter.
    pub(crate) packets_bytes: Option<(u64, u64)>,
}

/// The counter of a NEWRULE dump message (see [`RuleCounter`]).
pub(crate) fn parse_rule_counter(msg: &[u8]) -> Result<RuleCounter, NftError> {
    let (_, chain, comment) = parse_rule(msg)?;
    let mut packets_bytes = None;
    // SAFETY: as in parse_table; the expression iterator is destroyed before the rule is
    // freed, and values are copied out while both are alive.
    unsafe {
        let r = alloc(sys::nftnl_rule_alloc())?;
        let rc = sys::nftnl_rule_nlmsg_parse(msg.as_ptr().cast(), r.as_ptr());
        if rc >= 0 {
            let it = sys::nftnl_expr_iter_create(r.as_ptr());
            if !it.is_null() {
                loop {
                    let e = sys::nftnl_expr_iter_next(it);
                    if e.is_null() {
                        break;
                    }
                    let name = owned_str(sys::nftnl_expr_get_str(e, sys::NFTNL_EXPR_NAME as u16));
                    if name == "counter" {
                        let get = |attr: u32| {
                            if sys::nftnl_expr_is_set(e, attr as u16) {
                                sys::nftnl_expr_get_u64(e, attr as u16)
                            } else {
                                0
                            }
                        };
                        packets_bytes = Some((
                            get(sys::NFTNL_EXPR_CTR_PACKETS),
                            get(sys::NFTNL_EXPR_CTR_BYTES),
                        ));
                        break;
                    }
                }
                sys::nftnl_expr_iter_destroy(it);
            }
        }
        sys::nftnl_rule_free(r.as_ptr());
        if rc < 0 {
            return Err(NftError::Decode("rule".into()));
        }
    }
    Ok(RuleCounter {
        chain,
        comment,
        packets_bytes,
    })
}

/// The rule comment in nft's user-data TLVs.
fn comment_of(udata: &[u8]) -> String {
    let mut rest = udata;
    while rest.len() >= 2 {
        let (t, l) = (rest[0], rest[1] as usize);
        let Some(value) = rest.get(2..2 + l) else {
            break;
        };
        if u32::from(t) == sys::NFTNL_UDATA_RULE_COMMENT {
            let end = value.iter().position(|b| *b == 0).unwrap_or(value.len());
            return String::from_utf8_lossy(&value[..end]).into_owned();
        }
        rest = &rest[2 + l..];
    }
    String::new()
}

/// A set as the kernel reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SetInfo {
    pub(crate) table: String,
    pub(crate) name: String,
    pub(crate) key_type: u32,
    pub(crate) key_len: u32,
    pub(crate) flags: u32,
}

impl SetInfo {
    /// True when the kernel's set can hold `kind`'s elements as we program them.
    pub(crate) fn matches(&self, kind: SetKind) -> bool {
        self.key_type == kind.key_type()
            && self.key_len == kind.key_len()
            && self.flags & (SET_F_INTERVAL | SET_F_MAP) == set_flags(kind)
    }
}

/// A NEWSET dump message.
pub(crate) fn parse_set(msg: &[u8]) -> Result<SetInfo, NftError> {
    // SAFETY: as in parse_table.
    unsafe {
        let s = alloc(sys::nftnl_set_alloc())?;
        let rc = sys::nftnl_set_nlmsg_parse(msg.as_ptr().cast(), s.as_ptr());
        let get = |a: u32| sys::nftnl_set_get_u32(s.as_ptr(), a as u16);
        let info = SetInfo {
            table: owned_str(sys::nftnl_set_get_str(
                s.as_ptr(),
                sys::NFTNL_SET_TABLE as u16,
            )),
            name: owned_str(sys::nftnl_set_get_str(
                s.as_ptr(),
                sys::NFTNL_SET_NAME as u16,
            )),
            key_type: get(sys::NFTNL_SET_KEY_TYPE),
            key_len: get(sys::NFTNL_SET_KEY_LEN),
            flags: get(sys::NFTNL_SET_FLAGS),
        };
        sys::nftnl_set_free(s.as_ptr());
        if rc < 0 {
            return Err(NftError::Decode("set".into()));
        }
        Ok(info)
    }
}

/// One element as the kernel reports it: key, interval-end flag, goto chain (maps).
pub(crate) type RawElem = (Vec<u8>, bool, Option<String>);

/// The elements in a NEWSETELEM dump message.
pub(crate) fn parse_elems(msg: &[u8]) -> Result<Vec<RawElem>, NftError> {
    let mut out = Vec::new();
    // SAFETY: as in parse_table; the iterator is destroyed before the set is freed, and
    // element data is copied out while both are alive.
    unsafe {
        let s = alloc(sys::nftnl_set_alloc())?;
        let rc = sys::nftnl_set_elems_nlmsg_parse(msg.as_ptr().cast(), s.as_ptr());
        if rc >= 0 {
            let it = sys::nftnl_set_elems_iter_create(s.as_ptr());
            if !it.is_null() {
                loop {
                    let e = sys::nftnl_set_elems_iter_next(it);
                    if e.is_null() {
                        break;
                    }
                    let mut len = 0u32;
                    let k = sys::nftnl_set_elem_get(e, sys::NFTNL_SET_ELEM_KEY as u16, &mut len);
                    let key = if k.is_null() {
                        Vec::new()
                    } else {
                        std::slice::from_raw_parts(k.cast::<u8>(), len as usize).to_vec()
                    };
                    // `get_u32` dereferences unset attributes: check first.
                    let flags = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_FLAGS as u16) {
                        sys::nftnl_set_elem_get_u32(e, sys::NFTNL_SET_ELEM_FLAGS as u16)
                    } else {
                        0
                    };
                    let chain = if sys::nftnl_set_elem_is_set(e, sys::NFTNL_SET_ELEM_CHAIN as u16) {
                        Some(owned_str(sys::nftnl_set_elem_get_str(
                            e,
                            sys::NFTNL_SET_ELEM_CHAIN as u16,
                        )))
                    } else {
                        None
                    };
                    out.push((key, flags & ELEM_F_INTERVAL_END != 0, chain));
                }
                sys::nftnl_set_elems_iter_destroy(it);
            }
        }
        sys::nftnl_set_free(s.as_ptr());
        if rc < 0 {
            return Err(NftError::Decode("set elements".into()));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn comment_tlv_round_trip() {
        let mut udata = vec![5, 2, 1, 1];
        udata.extend([0, 6]);
        udata.extend(b"vr:ab\0");
        assert_eq!(comment_of(&udata), "vr:ab");
        assert_eq!(comment_of(&[0, 9, 1]), "");
    }

    #[test]
    fn dump_requests_are_well_formed() {
        for kind in [
            DumpKind::Tables,
            DumpKind::Chains,
            DumpKind::Rules,
            DumpKind::ChainRules("c".into()),
            DumpKind::Sets,
            DumpKind::Elems("s".into()),
        ] {
            let req = dump_request(kind.clone(), "vrouter", 7).expect("request");
            let len = u32::from_ne_bytes([req[0], req[1], req[2], req[3]]) as usize;
            assert_eq!(len, req.len(), "{kind:?}");
            assert_eq!(u32::from_ne_bytes([req[8], req[9], req[10], req[11]]), 7);
        }
    }
}
