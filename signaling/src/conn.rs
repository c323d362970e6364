//! One WebSocket connection: reads a client's frames, answers them, and hangs up.
//!
//! Two tasks per connection. The reader (this module's [`run`]) decodes and checks each
//! frame and acts on the [`Registry`](crate::rooms::Registry); it never waits on the
//! network to send. The writer drains the connection's [`Outbox`] into the socket, so a
//! client that stops reading blocks only its own writer, and its queue overflowing gets
//! it dropped.
//!
//! Bad input is answered with an `error` frame and the connection stays open; only a
//! client that keeps sending nothing but bad frames is hung up on. Nothing a client
//! sends can panic this task or reach another room.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, close_code};
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use node_core::signal::{
    ClientMsg, ErrorCode, OUTAGE_SECS_MAX, PeerId, PeerKind, ROOM_NAME_LEN_MAX, ServerMsg,
    clean_display_name, decode_client, encode_server, valid_room_name,
};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use crate::Shared;
use crate::limit::TokenBucket;
use crate::outbox::{Kicker, Meter, Outbox, Undeliverable};
use crate::rooms::{JoinError, RelayError};
use crate::token::unix_now;

/// Refused frames in a row after which the server stops answering and hangs up, so a
/// broken or hostile client cannot keep it busy writing error frames.
pub const ERRORS_IN_A_ROW_MAX: u32 = 100;

/// How long a closing connection's writer may take to flush its last frames (the close
/// frame, on shutdown) before the socket is dropped regardless.
const FLUSH_GRACE: Duration = Duration::from_secs(2);

/// Why the reader stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// The client closed the socket, or it broke (including a frame past the hard cap).
    Gone,
    /// The registry dropped this client for not reading; its queue is full.
    Kicked,
    /// Too many refused frames in a row.
    TooManyErrors,
    /// The server is shutting down.
    Shutdown,
    /// A presenter took the server away from this connection's room.
    Away,
    /// Nothing was heard from the client (not even a pong) for `dead_after_ms`.
    Silent,
    /// The client did not join a room within `join_deadline_ms`.
    NeverJoined,
    /// The client broke the WebSocket protocol: the close code that says how (1002
    /// protocol error, 1007 text that is not UTF-8, 1009 a frame past the hard cap).
    Violation(u16),
}

impl Exit {
    /// Why the server ended the connection, for `/metrics`; `None` when the client did.
    fn drop_reason(self) -> Option<&'static str> {
        match self {
            Exit::Gone => None,
            Exit::Kicked => Some("slow_reader"),
            Exit::TooManyErrors => Some("too_many_errors"),
            Exit::Shutdown => Some("shutdown"),
            Exit::Away => Some("presenter_outage"),
            Exit::Silent => Some("silent"),
            Exit::NeverJoined => Some("never_joined"),
            Exit::Violation(_) => Some("protocol_violation"),
        }
    }
}

/// The close code for a read error that is the client's fault; `None` for a connection
/// that merely broke.
fn violation(e: &axum::Error) -> Option<u16> {
    use std::error::Error as _;
    let mut source: Option<&(dyn std::error::Error + 'static)> = e.source();
    while let Some(err) = source {
        if let Some(t) = err.downcast_ref::<tungstenite::Error>() {
            return match t {
                tungstenite::Error::Capacity(_) => Some(close_code::SIZE),
                tungstenite::Error::Utf8(_) => Some(close_code::INVALID),
                tungstenite::Error::Protocol(_) => Some(close_code::PROTOCOL),
                _ => None,
            };
        }
        source = err.source();
    }
    None
}

/// Whether to keep reading after a frame.
enum Flow {
    Continue,
    Stop(Exit),
}

/// This connection's membership, once `join` has succeeded.
#[derive(Debug)]
struct Joined {
    /// The id the registry gave this client.
    id: PeerId,
    /// The room it joined, to name when refusing a second join.
    room: String,
    /// It joined with the presenter key.
    presenter: bool,
}

/// The reader's state.
struct Connection {
    /// Configuration, the registry and the shutdown signal, shared by all connections.
    shared: Arc<Shared>,
    /// A number for log lines before the client has a peer id.
    conn: u64,
    /// Where the connection comes from, when the server knows (joins are paced per
    /// address).
    ip: Option<std::net::IpAddr>,
    /// This connection's own queue: replies travel the same FIFO as relayed frames.
    outbox: Outbox,
    /// Set once `join` succeeds; a connection joins at most once.
    joined: Option<Joined>,
    /// Paces inbound frames.
    bucket: TokenBucket,
    /// Text and binary frames received, so that an error can name the frame it refuses
    /// (the client counts the frames it sends the same way).
    frames_in: u64,
    /// The number of the frame being handled; `None` while handling a ping.
    frame: Option<u64>,
    /// Frames refused since the last accepted one.
    errors_in_a_row: u32,
    /// Whether bad input from this connection has been logged at warn level already.
    warned: bool,
}

/// Serves one upgraded socket until it closes, is dropped, or the server shuts down.
/// `_slot` is this connection's place under the connection cap, held until the end.
pub(crate) async fn run(
    socket: WebSocket,
    shared: Arc<Shared>,
    _slot: OwnedSemaphorePermit,
    ip: Option<std::net::IpAddr>,
) {
    let conn = shared.next_conn_number();
    let (sink, mut stream) = socket.split();
    let meter = Meter::new(shared.stats.queued_bytes.clone());
    let (outbox, rx) = Outbox::with_bytes(
        shared.config.outbox_messages_max,
        shared.config.outbox_bytes_max,
        meter.clone(),
    );
    let mut writer = tokio::spawn(write_loop(
        sink,
        rx,
        meter.clone(),
        outbox.kicker(),
        shared.clone(),
    ));
    tracing::debug!(conn, "websocket open");

    let config = &shared.config;
    let bucket = TokenBucket::new(
        config.messages_per_second_max,
        config.messages_burst_max,
        Instant::now(),
    );
    let mut connection = Connection {
        shared: shared.clone(),
        ip,
        conn,
        outbox,
        joined: None,
        bucket,
        frames_in: 0,
        frame: None,
        errors_in_a_row: 0,
        warned: false,
    };
    let mut exit = connection.read_loop(&mut stream).await;
    if exit == Exit::Kicked && connection.outbox.is_away() {
        exit = Exit::Away;
    }
    connection.leave();

    if let Some(reason) = exit.drop_reason() {
        shared.stats.drops.add(reason);
    }
    let close = match exit {
        Exit::Shutdown => Some((close_code::AWAY, "server shutting down")),
        Exit::TooManyErrors => Some((close_code::POLICY, "too many bad frames")),
        Exit::Away => Some((
            close_code::AWAY,
            "a presenter took the server away from this room for a while",
        )),
        Exit::Violation(code) => Some((code, "the WebSocket protocol was broken")),
        Exit::NeverJoined => Some((close_code::POLICY, "no join within the deadline")),
        Exit::Gone | Exit::Kicked | Exit::Silent => None,
    };
    if let Some((code, reason)) = close {
        let frame = CloseFrame {
            code,
            reason: reason.into(),
        };
        // A full queue means the client is not reading; it will not read this either.
        if connection.outbox.push(Message::Close(Some(frame))).is_ok() {
            shared.stats.frames_out.add("close");
        }
        // Read on until the client answers the close (or a grace period passes): a
        // socket closed with unread bytes in it is reset, and the client would see the
        // reset instead of its error frames and the close code.
        if !matches!(exit, Exit::Violation(_)) {
            let drain = async {
                while let Some(Ok(msg)) = stream.next().await {
                    if matches!(msg, Message::Close(_)) {
                        break;
                    }
                }
            };
            let _ = tokio::time::timeout(FLUSH_GRACE, drain).await;
        }
    }
    // Dropping the last sender lets the writer finish once it has flushed the queue;
    // a kicked client is not reading, so there is nothing worth waiting for.
    drop(connection);
    let flush_grace = if exit == Exit::Kicked {
        Duration::ZERO
    } else {
        FLUSH_GRACE
    };
    if tokio::time::timeout(flush_grace, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    }
    meter.release();
    tracing::debug!(conn, ?exit, "websocket closed");
}

/// Sends queued frames until the queue's senders are all gone or the socket fails. A
/// socket that takes no frame for `write_stall_ms` (a client that stopped reading, its
/// buffers full) gets the connection dropped.
async fn write_loop(
    mut sink: SplitSink<WebSocket, Message>,
    mut rx: tokio::sync::mpsc::Receiver<Message>,
    meter: Meter,
    kicker: Kicker,
    shared: Arc<Shared>,
) {
    let stall = Duration::from_millis(shared.config.write_stall_ms);
    while let Some(msg) = rx.recv().await {
        meter.taken(&msg);
        let closing = matches!(msg, Message::Close(_));
        match tokio::time::timeout(stall, sink.send(msg)).await {
            Ok(Ok(())) if !closing => {}
            Ok(_) => break,
            Err(_) => {
                shared.stats.writers_stalled.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("dropping a client whose socket took nothing for {stall:?}");
                kicker.kick();
                return;
            }
        }
    }
    let _ = tokio::time::timeout(stall, sink.close()).await;
}

impl Connection {
    async fn read_loop(&mut self, stream: &mut SplitStream<WebSocket>) -> Exit {
        let mut shutdown = self.shared.shutdown.subscribe();
        let every = Duration::from_millis(self.shared.config.ping_interval_ms.max(1));
        let dead_after = Duration::from_millis(self.shared.config.dead_after_ms);
        let mut heard = Instant::now();
        let mut next_ping = heard + every;
        let join_by = heard + Duration::from_millis(self.shared.config.join_deadline_ms);
        // A member gets a fresh resume token a third of a token's life after the last.
        let refresh_every = Duration::from_secs((self.shared.config.resume_token_secs / 3).max(1));
        let mut refresh_at = heard + refresh_every;
        loop {
            let frame = tokio::select! {
                // `wait_for` looks at the current value first, so a connection that
                // opens after shutdown began leaves at once.
                _ = shutdown.wait_for(|down| *down) => return Exit::Shutdown,
                _ = self.outbox.kicked() => return Exit::Kicked,
                () = tokio::time::sleep_until(join_by), if self.joined.is_none() => {
                    tracing::debug!(conn = self.conn, "closing a connection that never joined");
                    return Exit::NeverJoined;
                }
                () = tokio::time::sleep_until(refresh_at) => {
                    refresh_at = Instant::now() + refresh_every;
                    if let Flow::Stop(exit) = self.send_resume_token() {
                        return exit;
                    }
                    continue;
                }
                () = tokio::time::sleep_until(next_ping) => {
                    if heard.elapsed() >= dead_after {
                        self.shared.stats.silent_dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(conn = self.conn, "dropping a client silent for {dead_after:?}");
                        return Exit::Silent;
                    }
                    next_ping = Instant::now() + every;
                    // A full queue is a slow client: the push drops it as any frame would.
                    self.shared.stats.frames_out.add("ping");
                    if let Flow::Stop(exit) = self.send(Message::Ping(Default::default())) {
                        return exit;
                    }
                    continue;
                }
                frame = stream.next() => frame,
            };
            heard = Instant::now();
            let msg = match frame {
                Some(Ok(msg)) => msg,
                Some(Err(e)) => {
                    tracing::debug!(conn = self.conn, error = %e, "websocket read failed");
                    return violation(&e).map_or(Exit::Gone, Exit::Violation);
                }
                None => return Exit::Gone,
            };
            if let Flow::Stop(exit) = self.on_frame(msg) {
                return exit;
            }
        }
    }

    fn on_frame(&mut self, msg: Message) -> Flow {
        let text = match msg {
            Message::Text(text) => Some(text),
            Message::Binary(_) => None,
            // tungstenite answers pings and the closing handshake by itself; a client's
            // pings cost what any frame costs (a pong answers ours and is free).
            Message::Ping(_) => {
                self.shared.stats.frames_in.add("ping");
                self.frame = None;
                return match self.pace() {
                    Ok(()) => Flow::Continue,
                    Err(wait) => self.refuse_paced("too many pings", wait),
                };
            }
            Message::Pong(_) | Message::Close(_) => return Flow::Continue,
        };
        self.frames_in += 1;
        self.frame = Some(self.frames_in);
        if text.is_none() {
            self.shared.stats.frames_in.add("binary");
        }
        if let Err(wait) = self.pace() {
            return self.refuse_paced("too many frames; this one was dropped", wait);
        }
        let Some(text) = text else {
            return self.refuse(
                ErrorCode::Binary,
                "binary frames are not part of this protocol; send JSON text".into(),
            );
        };
        let max = self.shared.config.message_bytes_max;
        if text.len() > max {
            return self.refuse(
                ErrorCode::TooBig,
                format!(
                    "frame of {} bytes is over the limit of {max} bytes",
                    text.len()
                ),
            );
        }
        match decode_client(&text) {
            Ok(msg) => {
                let kind = match &msg {
                    ClientMsg::Join { .. } => "join",
                    ClientMsg::Signal { .. } => "signal",
                    ClientMsg::Outage { .. } => "outage",
                    ClientMsg::Revive => "revive",
                    ClientMsg::Resume { .. } => "resume",
                };
                self.shared.stats.frames_in.add(kind);
                self.on_message(msg)
            }
            Err(e) => {
                self.shared.stats.frames_in.add("invalid");
                self.refuse(e.code, e.message)
            }
        }
    }

    fn on_message(&mut self, msg: ClientMsg) -> Flow {
        match msg {
            ClientMsg::Join {
                room,
                kind,
                name,
                presenter_key,
            } => self.enter(room, None, kind, &name, presenter_key, None),
            ClientMsg::Resume {
                room,
                token,
                kind,
                name,
                presenter_key,
                colour,
            } => self.enter(room, Some(token), kind, &name, presenter_key, colour),
            ClientMsg::Signal { to, data } => {
                let Some(joined) = &self.joined else {
                    return self
                        .refuse(ErrorCode::NotJoined, "join a room before signaling".into());
                };
                let result = self.shared.registry().relay(&joined.id, &to, data);
                match result {
                    Ok(()) => self.accepted(),
                    // One message whether the id is elsewhere or nowhere: a client learns
                    // nothing about other rooms.
                    Err(RelayError::NoSuchPeer) => {
                        self.refuse(ErrorCode::NoSuchPeer, "no such peer in this room".into())
                    }
                    // This client was just dropped; the kick ends the connection.
                    Err(RelayError::SenderGone) => Flow::Continue,
                }
            }
            ClientMsg::Revive => {
                let (id, _) = match self.presenter("revive the room") {
                    Ok(joined) => joined,
                    Err(flow) => return flow,
                };
                let result = self.shared.registry().revive(&id);
                match result {
                    Ok(told) => {
                        tracing::info!(conn = self.conn, told, "revive");
                        self.accepted()
                    }
                    Err(_) => Flow::Continue,
                }
            }
            ClientMsg::Outage { secs } => {
                let (_, room) = match self.presenter("take the server away") {
                    Ok(joined) => joined,
                    Err(flow) => return flow,
                };
                let secs = secs.clamp(1, OUTAGE_SECS_MAX);
                let now = Instant::now();
                let until = now + Duration::from_secs(u64::from(secs));
                let n = self.shared.registry().take_away(&room, now, until);
                tracing::info!(conn = self.conn, %room, secs, members = n, "outage");
                // This connection was one of them: its kick ends it.
                Flow::Continue
            }
        }
    }

    /// This client's id and room if it joined with the presenter key, for a presenter's
    /// request (`what` it would do); otherwise the refusal, already sent.
    fn presenter(&mut self, what: &str) -> Result<(PeerId, String), Flow> {
        match &self.joined {
            Some(j) if j.presenter => Ok((j.id.clone(), j.room.clone())),
            Some(_) => Err(self.refuse(
                ErrorCode::NotPresenter,
                format!("only a member that joined with the presenter key can {what}"),
            )),
            None => Err(self.refuse(ErrorCode::NotJoined, "join a room first".into())),
        }
    }

    /// A join, or with `token` a resume: the checks both share, then the registry.
    fn enter(
        &mut self,
        room: String,
        token: Option<String>,
        kind: PeerKind,
        name: &str,
        presenter_key: Option<String>,
        colour: Option<u8>,
    ) -> Flow {
        if let Some(joined) = &self.joined {
            let message = format!("already joined room {:?}", joined.room);
            return self.refuse(ErrorCode::AlreadyJoined, message);
        }
        if !valid_room_name(&room) {
            return self.refuse(
                ErrorCode::BadRoom,
                format!(
                    "room names are 1 to {ROOM_NAME_LEN_MAX} ASCII letters, digits, '-' or '_'"
                ),
            );
        }
        let name = clean_display_name(name);
        let shared = self.shared.clone();
        if let Some(ip) = self.ip
            && !shared.join_allowed(ip, Instant::now())
        {
            return self.refuse(
                ErrorCode::RateLimited,
                "too many joins from your address; try again in a moment".into(),
            );
        }
        // The token is checked before anything else about the room is said.
        let resumed_id = match token.map(|t| shared.resume_key.check(&t, &room, unix_now())) {
            None => None,
            Some(Ok(id)) => Some(id),
            Some(Err((code, message))) => {
                shared.stats.tokens_refused.fetch_add(1, Ordering::Relaxed);
                return self.refuse(code, message);
            }
        };
        let away = shared.registry().away_for(&room, Instant::now());
        if let Some(left) = away {
            // When, exactly, so that a page counts down to it.
            let ms = u64::try_from(left.as_millis()).unwrap_or(u64::MAX);
            return self.refuse_with(
                ErrorCode::ServerAway,
                format!(
                    "a presenter took the server away from room {room:?}; back in {} s",
                    left.as_secs() + 1
                ),
                Some(ms),
            );
        }
        let presenter = match (&presenter_key, &shared.config.presenter_key) {
            (Some(given), Some(key)) => same_secret(given, key),
            _ => false,
        };
        if presenter_key.is_some() && !presenter {
            shared
                .stats
                .presenter_keys_refused
                .fetch_add(1, Ordering::Relaxed);
            tracing::info!(conn = self.conn, "a join with a wrong presenter key");
        }
        let resumed = resumed_id.is_some();
        let config = &shared.config;
        let ice = crate::turn::with_credentials(
            &config.ice_servers,
            config.turn_secret.as_deref(),
            &room,
            unix_now().saturating_add(config.turn_credential_secs),
        );
        let result = {
            let mut registry = shared.registry();
            let (outbox, ice) = (self.outbox.clone(), &ice);
            match resumed_id {
                Some(id) => {
                    let member = (kind, name.clone(), presenter, colour);
                    registry.rejoin(&room, id, member, outbox, ice)
                }
                None => registry.join(&room, kind, name.clone(), presenter, outbox, ice),
            }
        };
        match result {
            Ok(id) => {
                tracing::info!(conn = self.conn, %room, %id, %kind, %name, presenter, resumed, "peer joined");
                self.joined = Some(Joined {
                    id,
                    room,
                    presenter,
                });
                if let Flow::Stop(exit) = self.send_resume_token() {
                    return Flow::Stop(exit);
                }
                self.accepted()
            }
            Err(JoinError::RoomFull) => self.refuse(
                ErrorCode::RoomFull,
                format!(
                    "room {room:?} already has {} peers",
                    shared.config.peers_per_room_max
                ),
            ),
            Err(JoinError::TooManyRooms) => self.refuse(
                ErrorCode::TooManyRooms,
                "the server has as many rooms as it can hold; join an existing room".into(),
            ),
            Err(JoinError::IdInUse) => {
                shared.stats.tokens_refused.fetch_add(1, Ordering::Relaxed);
                self.refuse(
                    ErrorCode::IdInUse,
                    "a connected member holds this id; try again once its connection is gone"
                        .into(),
                )
            }
        }
    }

    /// Queues a fresh resume token for this member (after its welcome, and before the
    /// last one expires).
    fn send_resume_token(&mut self) -> Flow {
        let Some(joined) = &self.joined else {
            return Flow::Continue;
        };
        let secs = self.shared.config.resume_token_secs;
        let expiry = unix_now().saturating_add(secs);
        let token = self
            .shared
            .resume_key
            .issue(&joined.id, &joined.room, expiry);
        let frame = encode_server(ServerMsg::ResumeToken {
            token,
            expires_in_s: secs,
        });
        self.shared.stats.frames_out.add("resume_token");
        self.send(Message::Text(frame.into()))
    }

    /// Takes a token for one inbound frame from this connection's budget and its
    /// address's; if either is spent, how long until it will not be.
    fn pace(&mut self) -> Result<(), Option<Duration>> {
        let now = Instant::now();
        if !self.bucket.take(now) {
            return Err(self.bucket.wait(now));
        }
        match self.ip {
            Some(ip) => self.shared.frame_allowed(ip, now),
            None => Ok(()),
        }
    }

    /// Refuses a frame over a rate, saying when to send it again.
    fn refuse_paced(&mut self, message: &str, wait: Option<Duration>) -> Flow {
        let retry_after_ms = wait.map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX).max(1));
        self.refuse_with(ErrorCode::RateLimited, message.into(), retry_after_ms)
    }

    fn accepted(&mut self) -> Flow {
        self.errors_in_a_row = 0;
        Flow::Continue
    }

    /// Answers a refused frame with an `error` frame, or hangs up on a client that sends
    /// nothing else.
    fn refuse(&mut self, code: ErrorCode, message: String) -> Flow {
        self.refuse_with(code, message, None)
    }

    fn refuse_with(
        &mut self,
        code: ErrorCode,
        message: String,
        retry_after_ms: Option<u64>,
    ) -> Flow {
        self.errors_in_a_row += 1;
        self.shared
            .stats
            .frames_refused
            .fetch_add(1, Ordering::Relaxed);
        self.shared.stats.errors.add(code.as_str());
        let id = self.joined.as_ref().map(|j| j.id.as_str());
        if !self.warned {
            self.warned = true;
            tracing::warn!(
                conn = self.conn,
                ?id,
                ?code,
                ?message,
                "refused a frame (later ones from this connection are logged at debug)"
            );
        } else {
            tracing::debug!(conn = self.conn, ?id, ?code, ?message, "refused a frame");
        }
        if self.errors_in_a_row >= ERRORS_IN_A_ROW_MAX {
            tracing::warn!(
                conn = self.conn,
                ?id,
                "hanging up after {ERRORS_IN_A_ROW_MAX} bad frames in a row"
            );
            return Flow::Stop(Exit::TooManyErrors);
        }
        let frame = encode_server(ServerMsg::Error {
            code,
            message,
            frame: self.frame,
            retry_after_ms,
        });
        self.shared.stats.frames_out.add("error");
        self.send(Message::Text(frame.into()))
    }

    /// Queues a frame for this client; a client whose queue is full is dropped.
    fn send(&mut self, msg: Message) -> Flow {
        let id = self.joined.as_ref().map(|j| j.id.as_str());
        match self.outbox.push(msg) {
            Ok(()) => Flow::Continue,
            Err(Undeliverable::Full) => {
                self.shared
                    .stats
                    .slow_dropped
                    .fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    conn = self.conn,
                    ?id,
                    "dropping a client that does not read its socket fast enough"
                );
                Flow::Stop(Exit::Kicked)
            }
            Err(Undeliverable::Closed) => Flow::Stop(Exit::Gone),
        }
    }

    /// Leaves the room, if any, telling the others at once: their fastest sign that
    /// this peer is gone.
    fn leave(&mut self) {
        if let Some(joined) = self.joined.take() {
            self.shared.registry().leave(&joined.id);
        }
    }
}

/// Whether a presenter key given in a join is the server's, in time that depends only
/// on the lengths (a wrong guess learns nothing from how long the answer took).
pub(crate) fn same_secret(given: &str, key: &str) -> bool {
    let (a, b) = (given.as_bytes(), key.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
