//! One task per configured peer: drives [`Session::handle`] and turns its outputs into I/O.
//!
//! The task owns up to two connections to its peer: the primary session and, while the
//! primary is in OpenSent/OpenConfirm, a second session for a colliding incoming connection.
//! Once either has the peer's OPEN, [`collision::detect`] picks the loser (RFC 4271 §6.8),
//! which is sent Cease/Connection Collision Resolution; a winning second session takes over
//! the primary's graceful-restart state.
//!
//! Outputs: `Send` is encoded with the session's codec context and written (writes of one
//! step are batched), `Connect` spawns a connect attempt, timers become the task's next
//! wake-up ([`Session::next_deadline`]), and everything the RIB must know goes to the router
//! as a [`PeerEvent`] over a bounded channel. UPDATEs do not pass through this task: the
//! router writes them itself on the established connection's [`ConnWriter`] (handed over in
//! [`PeerEvent::Up`]). This task drains the writer's backlog when the socket was full and
//! then tells the router ([`PeerEvent::Drained`]), which had held that peer's changes back.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::ops::ControlFlow;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime};

use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::connection::{self, ConnEvent, ConnectSpec};
use super::writer::{ConnWriter, WRITE_TIMEOUT};
use super::{PeerConfig, Shutdown};
use crate::fsm::collision::{self, Loser};
use crate::fsm::{Direction, Input, Output, Session, SessionConfig, SessionContext, State, Timer};
use crate::wire::{Family, FamilySet, Message, Update, decode_message, encode_message};

/// How long a closing connection gets to write its backlog and NOTIFICATION.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// What a peer task tells the router.
#[derive(Debug)]
pub(crate) enum PeerEvent {
    Up {
        address: IpAddr,
        context: SessionContext,
        local: IpAddr,
        /// Where the router writes this session's UPDATEs.
        writer: Weak<ConnWriter>,
    },
    /// The connection's backlog is written: the router may flush the peer again.
    Drained {
        address: IpAddr,
    },
    Down {
        address: IpAddr,
        retain: FamilySet,
    },
    Update {
        address: IpAddr,
        update: Update,
    },
    EndOfRib {
        address: IpAddr,
        family: Family,
    },
    SweepStale {
        address: IpAddr,
        families: FamilySet,
    },
    RouteRefresh {
        address: IpAddr,
        family: Family,
    },
}

/// What the router tells a peer task.
#[derive(Debug)]
pub(crate) enum PeerCommand {
    Incoming(TcpStream),
    Stop(Shutdown),
    /// Ask the peer to re-send a family (`reload in`).
    RouteRefresh(Family),
}

/// The peer's state as the router reports it.
#[derive(Debug, Clone)]
pub(crate) struct PeerLive {
    pub(crate) state: State,
    pub(crate) context: Option<SessionContext>,
    pub(crate) last_error: Option<String>,
    pub(crate) stale_families: FamilySet,
    pub(crate) malformed_updates: u64,
    /// UPDATE messages received (End-of-RIB included) since the peer was configured.
    pub(crate) updates_received: u64,
    /// UPDATE messages sent (End-of-RIB included) since the peer was configured.
    pub(crate) updates_sent: u64,
    /// Wall-clock time of the last state change.
    pub(crate) since: SystemTime,
}

/// The router's handle on a peer task.
#[derive(Debug)]
pub(crate) struct PeerTaskHandle {
    pub(crate) commands: mpsc::Sender<PeerCommand>,
    pub(crate) live: Arc<Mutex<PeerLive>>,
    pub(crate) task: JoinHandle<()>,
}

/// Starts the task for `config`.
pub(crate) fn spawn(
    config: PeerConfig,
    session_config: SessionConfig,
    source: Option<IpAddr>,
    events: mpsc::Sender<PeerEvent>,
) -> PeerTaskHandle {
    let (commands, commands_rx) = mpsc::channel(super::PEER_COMMAND_CAPACITY);
    let live = Arc::new(Mutex::new(PeerLive {
        state: State::Idle,
        context: None,
        last_error: None,
        stale_families: FamilySet::EMPTY,
        malformed_updates: 0,
        updates_received: 0,
        updates_sent: 0,
        since: SystemTime::now(),
    }));
    let (conn_tx, conn_rx) = connection::channel();
    let task = PeerTask {
        address: config.address,
        primary: Slot::new(Session::new(session_config.clone())),
        pending: None,
        session_config,
        config,
        source,
        conn_tx,
        conn_rx,
        next_id: 0,
        attempt: None,
        resolving_collision: false,
        events,
        commands: commands_rx,
        live: Arc::clone(&live),
    };
    let task = tokio::spawn(task.run());
    PeerTaskHandle {
        commands,
        live,
        task,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Which {
    Primary,
    Pending,
}

struct Conn {
    id: u64,
    writer: Arc<ConnWriter>,
    reader: JoinHandle<()>,
    local: SocketAddr,
    /// Messages of the current step, written together at its end.
    out: Vec<u8>,
    /// `out` ends with a NOTIFICATION: nothing may follow it.
    closing: bool,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Slot {
    session: Session,
    conn: Option<Conn>,
}

impl Slot {
    fn new(session: Session) -> Slot {
        Slot {
            session,
            conn: None,
        }
    }
}

enum Wake {
    Timer(Which, Timer),
    Command(Option<PeerCommand>),
    Conn(ConnEvent),
    Drained(io::Result<()>),
}

struct PeerTask {
    address: IpAddr,
    config: PeerConfig,
    session_config: SessionConfig,
    source: Option<IpAddr>,
    primary: Slot,
    pending: Option<Slot>,
    conn_tx: mpsc::Sender<ConnEvent>,
    conn_rx: mpsc::Receiver<ConnEvent>,
    next_id: u64,
    attempt: Option<(u64, JoinHandle<()>)>,
    /// Set while a collision is being settled: driving the losing session re-enters
    /// [`PeerTask::resolve_collision`] (every `drive` ends with it), which must not settle
    /// the same collision again (a loser in Connect/Active ignores OpenCollisionDump and
    /// would be found losing forever).
    resolving_collision: bool,
    events: mpsc::Sender<PeerEvent>,
    commands: mpsc::Receiver<PeerCommand>,
    live: Arc<Mutex<PeerLive>>,
}

impl PeerTask {
    async fn run(mut self) {
        Box::pin(self.drive(Which::Primary, Input::ManualStart)).await;
        // One timer for the task's life, moved only when the next deadline changes (a new
        // `Sleep` per wake-up registered and cleared a timer entry every time).
        let sleep = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(sleep);
        loop {
            let deadline = self.next_deadline();
            if let Some((_, _, at)) = deadline {
                let at = tokio::time::Instant::from_std(at);
                if sleep.deadline() != at {
                    sleep.as_mut().reset(at);
                }
            }
            let writer = self.primary.conn.as_ref().map(|c| Arc::clone(&c.writer));
            let wake = tokio::select! {
                () = &mut sleep, if deadline.is_some() => match deadline {
                    Some((which, timer, _)) => Wake::Timer(which, timer),
                    None => continue,
                },
                command = self.commands.recv() => Wake::Command(command),
                Some(event) = self.conn_rx.recv() => Wake::Conn(event),
                result = backlog_written(writer.as_deref()) => Wake::Drained(result),
            };
            // The work of a wake-up is boxed: its future (the FSM step and the writes and
            // events it causes) is several KiB, and a reflector has hundreds of idle peer
            // tasks whose own futures would otherwise all carry it.
            if Box::pin(self.handle(wake)).await.is_break() {
                return;
            }
            if self.events.is_closed() {
                return;
            }
        }
    }

    /// Handles one wake-up; `Break` when the task is to end.
    async fn handle(&mut self, wake: Wake) -> ControlFlow<()> {
        match wake {
            Wake::Timer(which, timer) => self.drive(which, Input::TimerExpired(timer)).await,
            Wake::Command(None) => {
                self.stop(Shutdown::Stop).await;
                return ControlFlow::Break(());
            }
            Wake::Command(Some(PeerCommand::Stop(how))) => {
                self.stop(how).await;
                return ControlFlow::Break(());
            }
            Wake::Command(Some(PeerCommand::Incoming(stream))) => self.incoming(stream).await,
            Wake::Command(Some(PeerCommand::RouteRefresh(family))) => {
                self.drive(Which::Primary, Input::RequestRouteRefresh(family))
                    .await;
            }
            Wake::Conn(event) => self.conn_event(event).await,
            Wake::Drained(Ok(())) => {
                if self.primary.session.state() == State::Established {
                    self.emit(PeerEvent::Drained {
                        address: self.address,
                    })
                    .await;
                }
            }
            Wake::Drained(Err(error)) => {
                tracing::info!(peer = %self.address, %error, "write failed");
                self.set_error(format!("write: {error}"));
                self.primary.conn = None;
                self.drive(Which::Primary, Input::TcpConnectionFails).await;
            }
        }
        ControlFlow::Continue(())
    }

    fn next_deadline(&self) -> Option<(Which, Timer, Instant)> {
        let primary = self
            .primary
            .session
            .next_deadline()
            .map(|(t, at)| (Which::Primary, t, at));
        let pending = self
            .pending
            .as_ref()
            .and_then(|s| s.session.next_deadline())
            .map(|(t, at)| (Which::Pending, t, at));
        match (primary, pending) {
            (Some(a), Some(b)) => Some(if b.2 < a.2 { b } else { a }),
            (a, b) => a.or(b),
        }
    }

    fn slot(&mut self, which: Which) -> Option<&mut Slot> {
        match which {
            Which::Primary => Some(&mut self.primary),
            Which::Pending => self.pending.as_mut(),
        }
    }

    /// Feeds `input` to a session, carries out its outputs (and the failures they cause),
    /// then settles any connection collision.
    async fn drive(&mut self, which: Which, input: Input) {
        let mut next = Some(input);
        while let Some(input) = next.take() {
            if let Input::Message(Message::Notification(n)) = &input {
                self.set_error(format!("received notification {n}"));
            }
            let Some(slot) = self.slot(which) else { return };
            let outputs = slot.session.handle(Instant::now(), input);
            let mut failed = self.act(which, outputs).await;
            failed |= !self.write_out(which).await;
            if failed {
                if let Some(slot) = self.slot(which) {
                    slot.conn = None;
                }
                next = Some(Input::TcpConnectionFails);
            }
        }
        self.resolve_collision().await;
        self.publish();
    }

    /// Carries out outputs; true if a write failed (the connection is dead).
    async fn act(&mut self, which: Which, outputs: Vec<Output>) -> bool {
        let mut failed = false;
        for output in outputs {
            match output {
                Output::Connect => {
                    if which == Which::Primary {
                        self.start_connect();
                    }
                }
                Output::Disconnect => {
                    // Best effort: the NOTIFICATION before a close may not get through.
                    let _ = self.write_out(which).await;
                    if let Some(slot) = self.slot(which)
                        && let Some(conn) = slot.conn.take()
                    {
                        conn.writer.close();
                        let _ = tokio::time::timeout(CLOSE_GRACE, conn.writer.drain()).await;
                        // Dropping the last strong reference shuts the socket down.
                    }
                    if which == Which::Primary
                        && let Some((_, task)) = self.attempt.take()
                    {
                        task.abort();
                    }
                    // A failure after Disconnect has nothing left to fail.
                    failed = false;
                }
                Output::Send(message) => {
                    match &message {
                        Message::Notification(n) => {
                            self.set_error(format!("sent notification {n}"));
                        }
                        Message::Update(_) => self.count(|live| live.updates_sent += 1),
                        _ => {}
                    }
                    let Some(slot) = self.slot(which) else {
                        continue;
                    };
                    let codec = slot.session.codec();
                    let last = matches!(message, Message::Notification(_));
                    match encode_message(&message, &codec) {
                        Ok(bytes) => {
                            if let Some(conn) = &mut slot.conn {
                                conn.out.extend_from_slice(&bytes);
                                conn.closing |= last;
                            }
                        }
                        Err(error) => {
                            tracing::error!(peer = %self.address, %error, kind = message.kind(), "cannot encode message");
                        }
                    }
                }
                Output::ArmTimer { .. } | Output::StopTimer(_) => {}
                Output::StateChanged { from, to } => {
                    tracing::debug!(peer = %self.address, ?which, %from, %to, "state");
                }
                Output::Established(context) => {
                    if which == Which::Primary {
                        self.established(context).await;
                    }
                }
                Output::Down { reason, retain } => {
                    tracing::info!(peer = %self.address, %reason, graceful = retain.is_some(), "session down");
                    self.set_error(reason.to_string());
                    // The router's writes for this session end here.
                    if let Some(conn) = self.slot(which).and_then(|s| s.conn.as_ref()) {
                        conn.writer.close();
                    }
                    let retain = retain.map_or(FamilySet::EMPTY, |r| r.families);
                    self.emit(PeerEvent::Down {
                        address: self.address,
                        retain,
                    })
                    .await;
                }
                Output::Update(update) => {
                    self.count(|live| live.updates_received += 1);
                    if !update.errors.is_empty() {
                        self.count(|live| live.malformed_updates += 1);
                        for error in &update.errors {
                            tracing::warn!(peer = %self.address, disposition = %error.disposition, reason = %error.reason, "malformed UPDATE (RFC 7606)");
                        }
                    }
                    self.emit(PeerEvent::Update {
                        address: self.address,
                        update,
                    })
                    .await;
                }
                Output::EndOfRib(family) => {
                    self.count(|live| live.updates_received += 1);
                    self.emit(PeerEvent::EndOfRib {
                        address: self.address,
                        family,
                    })
                    .await;
                }
                Output::SweepStale(families) => {
                    self.emit(PeerEvent::SweepStale {
                        address: self.address,
                        families,
                    })
                    .await;
                }
                Output::RouteRefresh { family, subtype } => {
                    if subtype == 0 {
                        self.emit(PeerEvent::RouteRefresh {
                            address: self.address,
                            family,
                        })
                        .await;
                    }
                }
            }
        }
        failed
    }

    async fn established(&mut self, context: SessionContext) {
        let Some(conn) = self.primary.conn.as_ref() else {
            return;
        };
        let local = conn.local.ip();
        let writer = Arc::downgrade(&conn.writer);
        tracing::info!(peer = %self.address, families = ?context.families.iter().collect::<Vec<_>>(), "session established");
        self.emit(PeerEvent::Up {
            address: self.address,
            context,
            local,
            writer,
        })
        .await;
    }

    async fn emit(&mut self, event: PeerEvent) {
        // The router only goes away at shutdown; the run loop notices the closed channel.
        let _ = self.events.send(event).await;
    }

    /// Writes what a step queued on `which`'s connection; false if the connection failed.
    /// The primary connection's backlog, if the socket is full, is drained by the run loop;
    /// a colliding second connection (OPEN and KEEPALIVE only) drains it here.
    async fn write_out(&mut self, which: Which) -> bool {
        let Some(slot) = self.slot(which) else {
            return true;
        };
        let Some(conn) = &mut slot.conn else {
            return true;
        };
        if conn.out.is_empty() {
            return true;
        }
        let bytes = std::mem::take(&mut conn.out);
        let written = if std::mem::take(&mut conn.closing) {
            conn.writer.write_final(&bytes)
        } else {
            conn.writer.write(&[&bytes])
        };
        if written.is_err() {
            return false;
        }
        if which == Which::Pending && !conn.writer.is_clear() {
            return matches!(
                tokio::time::timeout(WRITE_TIMEOUT, conn.writer.drain()).await,
                Ok(Ok(()))
            );
        }
        true
    }

    fn start_connect(&mut self) {
        if let Some((_, task)) = self.attempt.take() {
            task.abort();
        }
        self.next_id += 1;
        let attempt = self.next_id;
        let spec = ConnectSpec {
            peer: SocketAddr::new(self.address, self.config.port),
            source: self.source,
            password: self.config.password.clone(),
            ttl_security: self.config.ttl_security,
            timeout: self.session_config.connect_retry,
        };
        let tx = self.conn_tx.clone();
        let task = tokio::spawn(async move {
            let result = connection::connect(spec).await;
            let _ = tx.send(ConnEvent::Connected { attempt, result }).await;
        });
        self.attempt = Some((attempt, task));
    }

    fn attach(&mut self, which: Which, stream: TcpStream) -> bool {
        let Ok(local) = stream.local_addr() else {
            return false;
        };
        self.next_id += 1;
        let id = self.next_id;
        let (read, writer) = stream.into_split();
        let reader = connection::spawn_reader(id, read, self.conn_tx.clone());
        let conn = Conn {
            id,
            writer: Arc::new(ConnWriter::new(writer)),
            reader,
            local,
            out: Vec::new(),
            closing: false,
        };
        match self.slot(which) {
            Some(slot) => {
                slot.conn = Some(conn);
                true
            }
            None => false,
        }
    }

    async fn incoming(&mut self, stream: TcpStream) {
        if let Err(error) = connection::secure_accepted(&stream, self.config.ttl_security) {
            tracing::warn!(peer = %self.address, %error, "socket options on accepted connection");
        }
        match self.primary.session.state() {
            State::Connect | State::Active if self.primary.conn.is_none() => {
                if let Some((_, task)) = self.attempt.take() {
                    task.abort();
                }
                if self.attach(Which::Primary, stream) {
                    self.drive(Which::Primary, Input::TcpConnected(Direction::Incoming))
                        .await;
                }
            }
            State::OpenSent | State::OpenConfirm
                if self.pending.is_none()
                    && self.primary.session.direction() == Some(Direction::Outgoing) =>
            {
                let mut session = Session::new(self.session_config.clone());
                // Start it without connecting: the connection is already here.
                let _ = session.handle(Instant::now(), Input::ManualStart);
                self.pending = Some(Slot::new(session));
                if self.attach(Which::Pending, stream) {
                    self.drive(Which::Pending, Input::TcpConnected(Direction::Incoming))
                        .await;
                }
            }
            // Idle refuses connections; an Established session wins any collision.
            state => tracing::debug!(peer = %self.address, %state, "refusing incoming connection"),
        }
    }

    async fn conn_event(&mut self, event: ConnEvent) {
        match event {
            ConnEvent::Connected { attempt, result } => {
                if self.attempt.as_ref().map(|(id, _)| *id) != Some(attempt) {
                    return;
                }
                self.attempt = None;
                match result {
                    Ok(stream)
                        if self.primary.session.state() == State::Connect
                            && self.primary.conn.is_none() =>
                    {
                        if self.attach(Which::Primary, stream) {
                            self.drive(Which::Primary, Input::TcpConnected(Direction::Outgoing))
                                .await;
                        }
                    }
                    Ok(_) => {}
                    Err(error) => {
                        tracing::debug!(peer = %self.address, %error, "connect failed");
                        self.set_error(format!("connect: {error}"));
                        self.drive(Which::Primary, Input::TcpConnectionFails).await;
                    }
                }
            }
            ConnEvent::Frame { conn, bytes } => {
                let Some(which) = self.which_conn(conn) else {
                    return;
                };
                let codec = match self.slot(which) {
                    Some(slot) => slot.session.codec(),
                    None => return,
                };
                let input = match decode_message(&bytes, &codec) {
                    Ok(message) => Input::Message(message),
                    Err(error) => {
                        tracing::warn!(peer = %self.address, %error, "malformed message");
                        Input::MessageError(error)
                    }
                };
                self.drive(which, input).await;
            }
            ConnEvent::Broken { conn, error } => {
                let Some(which) = self.which_conn(conn) else {
                    return;
                };
                let input = match error {
                    Some(error) => Input::MessageError(error),
                    None => {
                        if let Some(slot) = self.slot(which) {
                            slot.conn = None;
                        }
                        Input::TcpConnectionFails
                    }
                };
                self.drive(which, input).await;
            }
        }
    }

    fn which_conn(&self, id: u64) -> Option<Which> {
        if self.primary.conn.as_ref().is_some_and(|c| c.id == id) {
            return Some(Which::Primary);
        }
        self.pending
            .as_ref()
            .filter(|s| s.conn.as_ref().is_some_and(|c| c.id == id))
            .map(|_| Which::Pending)
    }

    /// Settles a collision between the primary and the pending session, if there is one.
    async fn resolve_collision(&mut self) {
        if self.resolving_collision {
            return;
        }
        self.resolving_collision = true;
        self.settle_collision().await;
        self.resolving_collision = false;
    }

    async fn settle_collision(&mut self) {
        let Some(pending) = &self.pending else { return };
        if pending.session.state() == State::Idle {
            self.pending = None;
            return;
        }
        if matches!(
            self.primary.session.state(),
            State::Idle | State::Connect | State::Active
        ) {
            Box::pin(self.promote_pending()).await;
            return;
        }
        match collision::detect(&self.primary.session, &pending.session) {
            Some(Loser::Second) => {
                tracing::info!(peer = %self.address, "collision: keeping our connection");
                Box::pin(self.drive(Which::Pending, Input::OpenCollisionDump)).await;
                self.pending = None;
            }
            Some(Loser::First) => {
                tracing::info!(peer = %self.address, "collision: keeping the peer's connection");
                Box::pin(self.drive(Which::Primary, Input::OpenCollisionDump)).await;
                Box::pin(self.promote_pending()).await;
            }
            None => {}
        }
    }

    async fn promote_pending(&mut self) {
        let Some(pending) = self.pending.take() else {
            return;
        };
        let mut old = std::mem::replace(&mut self.primary, pending);
        if let Some((_, task)) = self.attempt.take() {
            task.abort();
        }
        let outputs = self
            .primary
            .session
            .inherit_graceful_restart(&mut old.session);
        self.act(Which::Primary, outputs).await;
    }

    async fn stop(&mut self, how: Shutdown) {
        if let Some((_, task)) = self.attempt.take() {
            task.abort();
        }
        self.pending = None;
        match how {
            Shutdown::Stop => self.drive(Which::Primary, Input::ManualStop).await,
            // RFC 4724: a restarting speaker just goes away; the peer keeps our routes.
            Shutdown::Restart => self.primary.conn = None,
        }
    }

    fn count(&self, f: impl FnOnce(&mut PeerLive)) {
        if let Ok(mut live) = self.live.lock() {
            f(&mut live);
        }
    }

    fn set_error(&self, error: String) {
        if let Ok(mut live) = self.live.lock() {
            live.last_error = Some(error);
        }
    }

    fn publish(&self) {
        if let Ok(mut live) = self.live.lock() {
            let session = &self.primary.session;
            if live.state != session.state() {
                live.since = SystemTime::now();
            }
            live.state = session.state();
            live.context = (session.state() == State::Established)
                .then(|| session.context().cloned())
                .flatten();
            live.stale_families = session.stale_families();
        }
    }
}

/// Resolves when the connection's backlog has been written (or the connection failed).
async fn backlog_written(writer: Option<&ConnWriter>) -> io::Result<()> {
    match writer {
        Some(writer) => writer.backlog_written().await,
        None => std::future::pending().await,
    }
}
