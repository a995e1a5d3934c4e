//! The blocking `NETLINK_ROUTE` socket the drivers share: multi-message batches and dumps.
//!
//! Why not `rtnetlink::Handle`: `netlink-proto` sends exactly one message per datagram, so
//! bulk programming costs one syscall round trip per route (~8 µs, crates.md §1). Here a batch
//! packs up to [`BATCH_MESSAGES`] requests into one `sendmsg`; only the last request of each
//! datagram asks for an ACK, so the kernel answers a successful batch with one message and a
//! failed request with an error carrying its sequence number. rtnetlink requests are handled
//! synchronously inside `sendmsg`, so every answer is queued by the time `send` returns.
//!
//! The socket belongs to the network namespace of the thread that opened it (the agent opens
//! it on its dataplane thread, after entering the namespace). Message types come from
//! `rtnetlink`'s re-exports (`packet_core`, `packet_route`, `sys`); no `unsafe` here.

use std::collections::BTreeMap;
use std::io;
use std::ops::ControlFlow;

use rtnetlink::packet_core::{
    NLM_F_ACK, NLM_F_DUMP, NLM_F_DUMP_INTR, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload,
};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::sys::protocols::NETLINK_ROUTE;
use rtnetlink::sys::{Socket, SocketAddr};

/// Requests packed into one datagram (~60–80 bytes each for routes: ~64 KiB per `sendmsg`).
pub const BATCH_MESSAGES: usize = 1024;
/// Receive buffer asked for (the kernel caps it at `net.core.rmem_max`).
const RX_BUFFER_BYTES: usize = 8 << 20;
/// Bytes read per `recv` (dump answers come in skbs of up to 32 KiB).
const RECV_CHUNK: usize = 1 << 20;
/// How often a dump interrupted by concurrent changes is retried before giving up.
const DUMP_ATTEMPTS: usize = 3;

/// One request of a batch: the message and its `NLM_F_*` flags (besides `REQUEST`/`ACK`).
#[derive(Debug, Clone)]
pub struct Request {
    /// The rtnetlink message.
    pub message: RouteNetlinkMessage,
    /// Extra flags (`NLM_F_CREATE`, `NLM_F_EXCL`, `NLM_F_REPLACE`).
    pub flags: u16,
}

/// A blocking netlink route socket in the namespace it was opened in.
pub struct NetlinkSocket {
    socket: Socket,
    sequence: u32,
    rx: Vec<u8>,
}

impl std::fmt::Debug for NetlinkSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetlinkSocket")
            .field("sequence", &self.sequence)
            .finish()
    }
}

impl NetlinkSocket {
    /// Opens a socket in the calling thread's network namespace.
    pub fn open() -> io::Result<Self> {
        let mut socket = Socket::new(NETLINK_ROUTE)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        // Errors echo only the failed request's header, not its whole payload.
        socket.set_cap_ack(true)?;
        // Dump filters (protocol, table) are applied by the kernel.
        socket.set_netlink_get_strict_chk(true)?;
        socket.set_rx_buf_sz(RX_BUFFER_BYTES)?;
        Ok(Self {
            socket,
            sequence: 0,
            rx: vec![0; RECV_CHUNK],
        })
    }

    fn next_sequence(&mut self) -> u32 {
        self.sequence = self.sequence.wrapping_add(1).max(1);
        self.sequence
    }

    /// Sends `requests` in multi-message datagrams. Returns the failures as
    /// `(index into requests, error)`; an empty vector means every request succeeded.
    /// An `Err` means the socket itself failed (answers lost), and the outcome of the
    /// requests is unknown: the caller must read the kernel state back.
    pub fn batch(&mut self, requests: Vec<Request>) -> io::Result<Vec<(usize, io::Error)>> {
        let mut failures = Vec::new();
        let mut out = Vec::with_capacity(BATCH_MESSAGES * 80);
        let total = requests.len();
        let mut requests = requests.into_iter().enumerate().peekable();
        while requests.peek().is_some() {
            out.clear();
            let mut by_sequence = BTreeMap::new();
            let mut barrier = 0;
            for (i, request) in requests.by_ref().take(BATCH_MESSAGES) {
                let sequence = self.next_sequence();
                by_sequence.insert(sequence, i);
                let mut message = NetlinkMessage::from(request.message);
                message.header.flags = NLM_F_REQUEST | request.flags;
                if (i + 1) % BATCH_MESSAGES == 0 || i + 1 == total {
                    message.header.flags |= NLM_F_ACK;
                    barrier = sequence;
                }
                message.header.sequence_number = sequence;
                message.finalize();
                let offset = out.len();
                out.resize(offset + message.buffer_len(), 0);
                message.serialize(&mut out[offset..]);
            }
            self.socket.send(&out, 0)?;
            self.collect_answers(barrier, &by_sequence, &mut failures)?;
        }
        Ok(failures)
    }

    /// Reads answers until the ACK of `barrier`, recording errors of the requests before it.
    fn collect_answers(
        &mut self,
        barrier: u32,
        by_sequence: &BTreeMap<u32, usize>,
        failures: &mut Vec<(usize, io::Error)>,
    ) -> io::Result<()> {
        self.receive(|message| {
            let sequence = message.header.sequence_number;
            if let NetlinkPayload::Error(error) = message.payload {
                if error.code.is_some()
                    && let Some(&index) = by_sequence.get(&sequence)
                {
                    failures.push((index, error.to_io()));
                }
                if sequence == barrier {
                    return Ok(ControlFlow::Break(()));
                }
            }
            Ok(ControlFlow::Continue(()))
        })
    }

    /// Reads messages and hands each to `handle` until it returns `Break`.
    fn receive(
        &mut self,
        mut handle: impl FnMut(NetlinkMessage<RouteNetlinkMessage>) -> io::Result<ControlFlow<()>>,
    ) -> io::Result<()> {
        loop {
            let n = self
                .socket
                .recv(&mut &mut self.rx[..], 0)?
                .min(self.rx.len());
            let mut offset = 0;
            while offset < n {
                let message =
                    NetlinkMessage::<RouteNetlinkMessage>::deserialize(&self.rx[offset..n])
                        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))?;
                let length = message.header.length as usize;
                if length == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "zero-length netlink message",
                    ));
                }
                offset += length;
                if handle(message)?.is_break() {
                    return Ok(());
                }
            }
        }
    }

    /// Dumps with `request` (a `Get*` message whose header carries the kernel-side filter)
    /// and returns every answer. A dump interrupted by concurrent changes is retried.
    pub fn dump(&mut self, request: RouteNetlinkMessage) -> io::Result<Vec<RouteNetlinkMessage>> {
        for _ in 0..DUMP_ATTEMPTS {
            let (answers, interrupted) = self.dump_once(request.clone())?;
            if !interrupted {
                return Ok(answers);
            }
            tracing::debug!("netlink dump interrupted by a concurrent change; retrying");
        }
        Err(io::Error::new(
            io::ErrorKind::Interrupted,
            "netlink dump kept being interrupted",
        ))
    }

    fn dump_once(
        &mut self,
        request: RouteNetlinkMessage,
    ) -> io::Result<(Vec<RouteNetlinkMessage>, bool)> {
        let sequence = self.next_sequence();
        let mut message = NetlinkMessage::from(request);
        message.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        message.header.sequence_number = sequence;
        message.finalize();
        let mut out = vec![0; message.buffer_len()];
        message.serialize(&mut out);
        self.socket.send(&out, 0)?;
        let mut answers = Vec::new();
        let mut interrupted = false;
        self.receive(|message| {
            if message.header.sequence_number != sequence {
                return Ok(ControlFlow::Continue(())); // a late answer to an earlier request
            }
            interrupted |= message.header.flags & NLM_F_DUMP_INTR != 0;
            match message.payload {
                NetlinkPayload::Done(_) => return Ok(ControlFlow::Break(())),
                NetlinkPayload::Error(error) if error.code.is_some() => return Err(error.to_io()),
                NetlinkPayload::InnerMessage(inner) => answers.push(inner),
                _ => {}
            }
            Ok(ControlFlow::Continue(()))
        })?;
        Ok((answers, interrupted))
    }
}
