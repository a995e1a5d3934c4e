//! Encoded UPDATEs shared between peers (one encode per update group, not per peer).
//!
//! Peers that negotiated the same codec context and get the same packed message (the same
//! attribute-set `Arc` from export, the same routes) send the same bytes. The router encodes
//! such a message for the first peer it flushes; the others get the bytes from here. The table owns
//! what it holds: keys are attribute-set identities, so each entry keeps its `Arc` alive (no
//! address can be reused while it is a key). It is bounded: when it reaches
//! [`SharedUpdates::CAPACITY`] entries it starts over.

use std::sync::Arc;

use foldhash::HashMap;

use crate::rib::Packed;
use crate::wire::{
    CodecContext, EncodeError, Family, Message, Nlri, PathAttributes, attributes_len,
    encode_message,
};

#[derive(Debug, PartialEq, Eq, Hash)]
struct Key {
    ctx: CodecContext,
    /// Address of the attribute set (0: a withdrawal).
    attributes: usize,
    nlri: Vec<Nlri>,
}

#[derive(Debug)]
struct Entry {
    _attributes: Option<Arc<PathAttributes>>,
    bytes: Arc<[u8]>,
}

/// The speaker's table of encoded UPDATEs (the router's).
#[derive(Debug, Default)]
pub(crate) struct SharedUpdates {
    table: HashMap<Key, Entry>,
    /// Encoded sizes of attribute sets (packing needs them for every peer).
    lengths: HashMap<(CodecContext, usize, Family), (Arc<PathAttributes>, usize)>,
}

impl SharedUpdates {
    /// Entries kept before the table starts over (a few batches' worth of distinct messages).
    pub(crate) const CAPACITY: usize = 4096;

    /// The encoding of `packed` for a session with context `ctx`, from the table or encoded
    /// now (and kept for the next peer).
    pub(crate) fn encode(
        &mut self,
        ctx: &CodecContext,
        packed: Packed,
    ) -> Result<Arc<[u8]>, EncodeError> {
        let (attributes, nlri) = match packed {
            Packed::Withdraw(nlri) => (None, nlri),
            Packed::Announce(attributes, nlri) => (Some(attributes), nlri),
        };
        let key = Key {
            ctx: *ctx,
            attributes: attributes.as_ref().map_or(0, |a| Arc::as_ptr(a) as usize),
            nlri,
        };
        if let Some(entry) = self.table.get(&key) {
            return Ok(Arc::clone(&entry.bytes));
        }
        let packed = match &attributes {
            Some(a) => Packed::Announce(Arc::clone(a), key.nlri.clone()),
            None => Packed::Withdraw(key.nlri.clone()),
        };
        let bytes: Arc<[u8]> = encode_message(&Message::Update(packed.into_update()), ctx)?.into();
        if self.table.len() >= Self::CAPACITY {
            self.table.clear();
        }
        self.table.insert(
            key,
            Entry {
                _attributes: attributes,
                bytes: Arc::clone(&bytes),
            },
        );
        Ok(bytes)
    }

    /// The encoded size of `attributes` for `family` on a session with context `ctx`,
    /// remembered (by identity) along with the encodings.
    pub(crate) fn attributes_len(
        &mut self,
        ctx: &CodecContext,
        attributes: &Arc<PathAttributes>,
        family: Family,
    ) -> Result<usize, EncodeError> {
        let key = (*ctx, Arc::as_ptr(attributes) as usize, family);
        if let Some((_, len)) = self.lengths.get(&key) {
            return Ok(*len);
        }
        let len = attributes_len(attributes, family, ctx)?;
        if self.lengths.len() >= Self::CAPACITY {
            self.lengths.clear();
        }
        self.lengths.insert(key, (Arc::clone(attributes), len));
        Ok(len)
    }

    /// Number of encodings held.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.table.len()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::wire::{CodecContext, Origin, Prefix, decode_message};
    use std::net::Ipv4Addr;

    fn nlri(s: &str) -> Vec<Nlri> {
        let (addr, len) = s.split_once('/').unwrap();
        let prefix = Prefix::new(addr.parse().unwrap(), len.parse().unwrap()).unwrap();
        vec![Nlri::new(prefix)]
    }

    fn attrs(hop: [u8; 4]) -> Arc<PathAttributes> {
        Arc::new(PathAttributes {
            origin: Origin::Igp,
            next_hop: Some(Ipv4Addr::from(hop)),
            local_pref: Some(100),
            ..PathAttributes::default()
        })
    }

    fn ctx() -> CodecContext {
        CodecContext {
            four_octet_as: true,
            ibgp: true,
            ..CodecContext::default()
        }
    }

    #[test]
    fn peers_with_the_same_message_share_one_encoding() {
        let mut shared = SharedUpdates::default();
        let a = attrs([10, 0, 0, 1]);
        let first = shared
            .encode(
                &ctx(),
                Packed::Announce(Arc::clone(&a), nlri("10.1.0.0/26")),
            )
            .unwrap();
        let second = shared
            .encode(
                &ctx(),
                Packed::Announce(Arc::clone(&a), nlri("10.1.0.0/26")),
            )
            .unwrap();
        assert!(Arc::ptr_eq(&first, &second), "encoded once");
        let expected = encode_message(
            &Message::Update(Packed::Announce(a, nlri("10.1.0.0/26")).into_update()),
            &ctx(),
        )
        .unwrap();
        assert_eq!(&first[..], &expected[..]);
        assert!(matches!(
            decode_message(&first, &ctx()).unwrap(),
            Message::Update(_)
        ));
    }

    #[test]
    fn other_routes_contexts_or_attribute_sets_are_encoded_apart() {
        let mut shared = SharedUpdates::default();
        let a = attrs([10, 0, 0, 1]);
        let base = shared
            .encode(
                &ctx(),
                Packed::Announce(Arc::clone(&a), nlri("10.1.0.0/26")),
            )
            .unwrap();
        let other_route = shared
            .encode(
                &ctx(),
                Packed::Announce(Arc::clone(&a), nlri("10.2.0.0/26")),
            )
            .unwrap();
        let two_octet = CodecContext {
            four_octet_as: false,
            ..ctx()
        };
        let other_ctx = shared
            .encode(
                &two_octet,
                Packed::Announce(Arc::clone(&a), nlri("10.1.0.0/26")),
            )
            .unwrap();
        let other_set = shared
            .encode(
                &ctx(),
                Packed::Announce(attrs([10, 0, 0, 2]), nlri("10.1.0.0/26")),
            )
            .unwrap();
        let withdraw = shared
            .encode(&ctx(), Packed::Withdraw(nlri("10.1.0.0/26")))
            .unwrap();
        for other in [&other_route, &other_ctx, &other_set, &withdraw] {
            assert!(!Arc::ptr_eq(&base, other));
        }
        assert_ne!(&base[..], &other_route[..]);
        assert_ne!(&base[..], &other_set[..]);
        assert_eq!(shared.len(), 5);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut shared = SharedUpdates::default();
        let a = attrs([10, 0, 0, 1]);
        for i in 0..=SharedUpdates::CAPACITY {
            let n = u32::try_from(i).unwrap();
            let prefix = Prefix::new(Ipv4Addr::from(0x0a00_0000 + (n << 8)).into(), 24).unwrap();
            shared
                .encode(
                    &ctx(),
                    Packed::Announce(Arc::clone(&a), vec![Nlri::new(prefix)]),
                )
                .unwrap();
        }
        assert!(shared.len() <= SharedUpdates::CAPACITY);
    }
}
