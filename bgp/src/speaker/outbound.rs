//! The router's output path to one established peer: its Adj-RIB-Out and the writing of
//! what is pending in it.
//!
//! After every batch of events (or a command) the router flushes every peer with pending
//! changes in one loop: pack, take each message's bytes from the speaker-wide
//! [`SharedUpdates`] (one encode per distinct message and codec context), and write them on
//! the peer's [`ConnWriter`] without waiting. A peer whose socket still has a backlog is
//! skipped: its changes stay pending and coalesce until its peer task reports the backlog
//! written. End-of-RIB (RFC 4724 §2) follows the initial advertisement in the same write.

use std::net::IpAddr;
use std::sync::{Arc, Weak};

use super::shared_updates::SharedUpdates;
use super::writer::ConnWriter;
use crate::rib::AdjRibOut;
use crate::wire::{CodecContext, FamilySet, Message, Update, encode_message};

/// What the router keeps for one established session's output.
#[derive(Debug)]
pub(crate) struct PeerOut {
    /// What the peer has been told, and what is pending.
    pub(crate) rib_out: AdjRibOut,
    writer: Weak<ConnWriter>,
    ctx: CodecContext,
    families: FamilySet,
    /// End-of-RIB is owed once the initial advertisement is written.
    eor_pending: bool,
}

impl PeerOut {
    /// The output of a session that just came up; End-of-RIB is owed after the first flush.
    pub(crate) fn new(ctx: CodecContext, families: FamilySet, writer: Weak<ConnWriter>) -> Self {
        PeerOut {
            rib_out: AdjRibOut::new(ctx),
            writer,
            ctx,
            families,
            eor_pending: true,
        }
    }

    /// Whether a flush would write something.
    pub(crate) fn has_pending(&self) -> bool {
        self.eor_pending || self.rib_out.has_pending()
    }

    /// Writes the pending changes (and End-of-RIB after the initial advertisement) unless the
    /// connection still has a backlog. Returns the number of UPDATE messages written.
    pub(crate) fn flush(&mut self, address: IpAddr, encodings: &mut SharedUpdates) -> u64 {
        if !self.has_pending() {
            return 0;
        }
        let Some(writer) = self.writer.upgrade() else {
            return 0;
        };
        if !writer.is_clear() {
            return 0;
        }
        let packed = match self.rib_out.flush_packed() {
            Ok(packed) => packed,
            Err(error) => {
                tracing::error!(peer = %address, %error, "cannot pack UPDATEs");
                Vec::new()
            }
        };
        let mut messages: Vec<Arc<[u8]>> = Vec::with_capacity(packed.len() + 2);
        for p in packed {
            match encodings.encode(&self.ctx, p) {
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
        if messages.is_empty() {
            return 0;
        }
        match writer.write(&messages) {
            Ok(()) => u64::try_from(messages.len()).unwrap_or(u64::MAX),
            // The peer task is woken by the writer and takes the session down.
            Err(error) => {
                tracing::debug!(peer = %address, %error, "write failed");
                0
            }
        }
    }
}
