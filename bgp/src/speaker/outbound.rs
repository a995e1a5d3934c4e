//! The router's output path to one established peer: its Adj-RIB-Out and the writing of
//! what is pending in it.
//!
//! Two stores, one packer ([`crate::rib::adj_rib_out`]): a session without ADD-PATH send
//! keeps [`AdjRibOutBits`] (two bitsets over the router's [`PrefixIndex`]; best-route changes
//! only mark prefixes, and export runs at flush time from the Loc-RIB), a session with
//! ADD-PATH send keeps the full [`AdjRibOut`] (path ids need the attribute sets), filled by
//! export as changes happen.
//!
//! After every batch of events (or a command) the router flushes every peer with pending
//! changes in one loop: pack, take each message's bytes from the speaker-wide
//! [`SharedUpdates`] (one encode per distinct message and codec context), and write them on
//! the peer's [`ConnWriter`] without waiting. A peer whose socket still has a backlog is
//! skipped: its changes stay pending and coalesce until its peer task reports the backlog
//! written. End-of-RIB (RFC 4724 §2) follows the initial advertisement in the same write.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use foldhash::HashMap;

use super::export::{ExportCache, ExportTarget};
use super::shared_updates::SharedUpdates;
use super::writer::ConnWriter;
use crate::rib::{AdjRibOut, AdjRibOutBits, BestChange, Destination, LocRib, Path, PrefixIndex};
use crate::wire::{
    CodecContext, Family, FamilySet, Message, PathAttributes, Update, encode_message,
};

/// The router's state shared by every peer's flush.
pub(crate) struct FlushContext<'a> {
    pub(crate) loc_rib: &'a LocRib,
    pub(crate) index: &'a mut PrefixIndex,
    pub(crate) cache: &'a mut ExportCache,
    pub(crate) encodings: &'a mut SharedUpdates,
    /// Export results of this flush by prefix id and export class: the best path and what
    /// every peer of the class gets for it (a reflector's clients are one class, so the
    /// Loc-RIB lookup and export run once per prefix, not once per client).
    pub(crate) memo: ExportMemo<'a>,
}

/// See [`FlushContext::memo`].
pub(crate) type ExportMemo<'a> =
    HashMap<(u32, u32), (Option<&'a Path>, Option<Arc<PathAttributes>>)>;

#[derive(Debug)]
enum Store {
    /// No ADD-PATH send: what the peer holds, as bits.
    Bits(AdjRibOutBits),
    /// ADD-PATH send for some family: every advertised path with its attributes and path id.
    Full(AdjRibOut),
}

/// What the router keeps for one established session's output.
#[derive(Debug)]
pub(crate) struct PeerOut {
    target: ExportTarget,
    /// The target's [`super::export::ExportClass`], numbered by the router.
    class: u32,
    store: Store,
    writer: Weak<ConnWriter>,
    ctx: CodecContext,
    families: FamilySet,
    /// End-of-RIB is owed once the initial advertisement is written.
    eor_pending: bool,
}

impl PeerOut {
    /// The output of a session that just came up, loaded with the initial advertisement (every
    /// route of the Loc-RIB); End-of-RIB follows it in the first flush.
    #[allow(clippy::too_many_arguments)] // one constructor, called once, by the router
    pub(crate) fn new(
        target: ExportTarget,
        class: u32,
        ctx: CodecContext,
        families: FamilySet,
        writer: Weak<ConnWriter>,
        loc_rib: &LocRib,
        index: &PrefixIndex,
        cache: &mut ExportCache,
    ) -> PeerOut {
        let store = if ctx.add_path_send.is_empty() {
            let mut bits = AdjRibOutBits::new(ctx);
            for family in families.iter() {
                bits.mark_all(index.live(family));
            }
            Store::Bits(bits)
        } else {
            let mut full = AdjRibOut::new(ctx);
            for (prefix, destination) in loc_rib.iter() {
                let family = prefix.family();
                if families.contains(family) {
                    let all = ctx.add_path_send.contains(family);
                    let exported = target.export_paths(family, candidates(destination, all), cache);
                    full.set(*prefix, &exported);
                }
            }
            Store::Full(full)
        };
        PeerOut {
            target,
            class,
            store,
            writer,
            ctx,
            families,
            eor_pending: true,
        }
    }

    /// A best-route change (`id` is its prefix's id in the index).
    pub(crate) fn changed(
        &mut self,
        change: &BestChange,
        id: u32,
        loc_rib: &LocRib,
        cache: &mut ExportCache,
    ) {
        let family = change.prefix.family();
        if !self.families.contains(family) {
            return;
        }
        match &mut self.store {
            Store::Bits(bits) => {
                if change.best_changed {
                    bits.mark(id);
                }
            }
            Store::Full(full) => {
                let exported = match loc_rib.get(&change.prefix) {
                    Some(d) => {
                        let all = self.ctx.add_path_send.contains(family);
                        self.target.export_paths(family, candidates(d, all), cache)
                    }
                    None => Vec::new(),
                };
                full.set(change.prefix, &exported);
            }
        }
    }

    /// Queues every route of `family` again (route refresh, `reload out`).
    pub(crate) fn refresh(&mut self, family: Family, index: &PrefixIndex) {
        match &mut self.store {
            Store::Bits(bits) => bits.refresh(family, index),
            Store::Full(full) => full.refresh(family),
        }
    }

    /// Routes the peer holds from us (or, with ADD-PATH, holds or is about to get).
    pub(crate) fn routes(&self) -> usize {
        match &self.store {
            Store::Bits(bits) => bits.len(),
            Store::Full(full) => full.len(),
        }
    }

    /// The session is gone: its references in the prefix index go too.
    pub(crate) fn release(&mut self, index: &mut PrefixIndex) {
        if let Store::Bits(bits) = &mut self.store {
            bits.release(index);
        }
    }

    /// Whether a flush would write something.
    fn has_pending(&self) -> bool {
        self.eor_pending
            || match &self.store {
                Store::Bits(bits) => bits.has_pending(),
                Store::Full(full) => full.has_pending(),
            }
    }

    /// Takes the pending changes (and End-of-RIB after the initial advertisement) as the
    /// messages to write, unless the connection still has a backlog (or is gone).
    pub(crate) fn flush(&mut self, address: IpAddr, cx: &mut FlushContext<'_>) -> Option<Write> {
        if !self.has_pending() {
            return None;
        }
        let writer = self.writer.upgrade()?;
        if !writer.is_clear() {
            return None;
        }
        let packed = match &mut self.store {
            Store::Bits(bits) => {
                let (loc_rib, target, cache) = (cx.loc_rib, &self.target, &mut *cx.cache);
                let (encodings, ctx, memo, class) =
                    (&mut *cx.encodings, &self.ctx, &mut cx.memo, self.class);
                bits.flush_packed_with(
                    cx.index,
                    |id, prefix| {
                        let (best, exported) = memo.entry((id, class)).or_insert_with(|| {
                            let best = loc_rib.get(&prefix).and_then(Destination::best);
                            let exported = best.and_then(|path| {
                                target.export_for_class(prefix.family(), path, cache)
                            });
                            (best, exported)
                        });
                        let best = (*best)?;
                        if target.excludes(best) {
                            return None;
                        }
                        exported.clone()
                    },
                    |attributes, family| encodings.attributes_len(ctx, attributes, family),
                )
            }
            Store::Full(full) => full.flush_packed(),
        };
        let packed = match packed {
            Ok(packed) => packed,
            Err(error) => {
                tracing::error!(peer = %address, %error, "cannot pack UPDATEs");
                Vec::new()
            }
        };
        let mut messages: Vec<Arc<[u8]>> = Vec::with_capacity(packed.len() + 2);
        for p in packed {
            match cx.encodings.encode(&self.ctx, p) {
                Ok(bytes) => messages.push(bytes),
                Err(error) => tracing::error!(peer = %address, %error, "cannot encode UPDATE"),
            }
        }
        if std::mem::take(&mut self.eor_pending) {
            for family in self.families.iter() {
                let eor = Message::Update(Update::end_of_rib(family));
                match encode_message(&eor, &self.ctx) {
                    Ok(bytes) => messages.push(bytes.into()),
                    Err(error) => {
                        tracing::error!(peer = %address, %error, "cannot encode End-of-RIB");
                    }
                }
            }
        }
        (!messages.is_empty()).then_some(Write {
            address,
            writer,
            messages,
        })
    }
}

/// The messages of one flush for one connection.
#[derive(Debug)]
pub(crate) struct Write {
    address: IpAddr,
    writer: Arc<ConnWriter>,
    messages: Vec<Arc<[u8]>>,
}

impl Write {
    /// Writes (or queues) the messages; returns how many were taken (0 on a dead
    /// connection, which the writer reports to the peer task).
    pub(crate) fn run(&self) -> u64 {
        match self.writer.write(&self.messages) {
            Ok(()) => u64::try_from(self.messages.len()).unwrap_or(u64::MAX),
            Err(error) => {
                tracing::debug!(peer = %self.address, %error, "write failed");
                0
            }
        }
    }
}

/// The routes of a destination export considers: every path, best first, when the session
/// sends ADD-PATH for the family, else only the best.
fn candidates(destination: &Destination, all: bool) -> Box<dyn Iterator<Item = &Path> + '_> {
    if all {
        Box::new(destination.paths_best_first())
    } else {
        Box::new(destination.best().into_iter())
    }
}
