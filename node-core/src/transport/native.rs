//! The native transport: webrtc-rs 0.21 over tokio, with the signaling socket on
//! tokio-tungstenite.
//!
//! Settings measured on loopback and in network namespaces:
//! - ICE binds only the addresses in [`NativeConfig::ice_bind`]; a wildcard bind serves a
//!   LAN, `127.0.0.1` keeps tests on loopback.
//! - mDNS is disabled: its default query mode opens a multicast socket, which fails in a
//!   namespace with only `lo`.
//! - Every UDP socket gets [`NativeConfig::udp_buffer_bytes`] of kernel buffer: with the
//!   default 208 KiB, loopback bursts are dropped and SCTP stalls.
//! - Each data channel's send buffer is bounded ([`NativeConfig::send_buffer_bytes`]):
//!   `send` waits instead of queueing without bound.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::BytesMut;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::data_channel::{DataChannel, DataChannelEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceCandidateInit, RTCIceServer, RTCPeerConnectionIceEvent, RTCPeerConnectionState,
    RTCSessionDescription, SettingEngineBuilder,
};

use super::negotiation::{Candidate, ConnId, Negotiation, NegotiationConfig, Step};
use super::pace::{Pacer, reconnect_delay_ms, xorshift};
use super::{SendError, Transport, TransportEvent};
use crate::signal::{
    self, ClientMsg, ErrorCode, IceServer, PeerId, PeerKind, RateLimits, ServerMsg, SignalData,
};
use crate::wire::MESSAGE_LEN_MAX;

/// How a native node reaches the mesh.
#[derive(Clone, Debug)]
pub struct NativeConfig {
    /// The signaling server's WebSocket URL, e.g. `ws://127.0.0.1:8080/ws`.
    pub server_url: String,
    /// The room to join.
    pub room: String,
    /// Display name; the server's id is used when empty.
    pub name: String,
    /// Local addresses ICE binds its UDP sockets to (`IP` or `IP:PORT`).
    pub ice_bind: Vec<String>,
    /// Kernel receive/send buffer for every UDP socket, in bytes.
    pub udp_buffer_bytes: usize,
    /// Most bytes queued in one data channel before `send` waits.
    pub send_buffer_bytes: usize,
    /// Capacity of the event queue between the network tasks and the driver.
    pub events_max: usize,
    /// ICE candidates held for a peer whose description has not arrived yet.
    pub early_candidates_max: usize,
    /// The server's presenter key, to give console commands (see [`crate::wire::ConsoleCmd`]).
    pub presenter_key: Option<String>,
}

/// How often ICE checks a candidate pair while connecting.
const ICE_CHECK_INTERVAL: Duration = Duration::from_millis(200);

/// The checks of one pair that fill `ms`.
fn ice_binding_requests(ms: u64) -> u16 {
    u16::try_from(ms / ICE_CHECK_INTERVAL.as_millis() as u64).unwrap_or(u16::MAX)
}

impl Default for NativeConfig {
    fn default() -> Self {
        NativeConfig {
            server_url: "ws://127.0.0.1:8080/ws".into(),
            room: "demo".into(),
            name: String::new(),
            ice_bind: vec!["0.0.0.0:0".into()],
            udp_buffer_bytes: 4 << 20,
            send_buffer_bytes: 1 << 20,
            events_max: 4096,
            early_candidates_max: 64,
            presenter_key: None,
        }
    }
}

/// Why the transport could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectError {
    #[error("cannot reach the signaling server at {url}: {source}")]
    Signaling {
        url: String,
        source: Box<tokio_tungstenite::tungstenite::Error>,
    },
    #[error("bad ICE bind address {0:?} (expected IP or IP:PORT)")]
    BadBind(String),
}

/// One connection attempt the negotiation policy asked for.
struct Conn {
    id: ConnId,
    pc: Arc<dyn PeerConnection>,
    /// Set once the channel is known (created by us, or announced by the remote).
    dc: Option<Arc<dyn DataChannel>>,
}

/// Why a step of the negotiation failed on this platform.
type NegotiationError = Box<dyn std::error::Error + Send + Sync>;

struct Inner {
    config: NativeConfig,
    /// What this node joins as.
    kind: PeerKind,
    /// Frames (and pacing news) for the signaling session's writer.
    ws_out: mpsc::Sender<Out>,
    /// The last resume token the server gave: presented when the socket is opened
    /// again, it gets this node its id back. A secret: never logged.
    resume_token: Mutex<Option<String>>,
    /// Events for the driver.
    events: mpsc::Sender<TransportEvent>,
    /// The negotiation policy. Locked only to feed one input and drain its steps, never
    /// across an await (see [`Inner::input`]).
    policy: Mutex<Negotiation>,
    /// Each peer's current connection, as the policy's steps left it.
    conns: Mutex<HashMap<PeerId, Conn>>,
    ice_servers: Mutex<Vec<IceServer>>,
    /// Each UDP socket's bind address, checked at connect time.
    ice_bind: Vec<String>,
}

/// A native mesh endpoint.
pub struct NativeTransport {
    inner: Arc<Inner>,
    events: mpsc::Receiver<TransportEvent>,
}

impl NativeTransport {
    /// Connects to the signaling server and joins the room as a node of `kind`. Peers
    /// are connected in the background; watch [`Transport::next_event`].
    pub async fn connect(config: NativeConfig, kind: PeerKind) -> Result<Self, ConnectError> {
        let ice_bind = config
            .ice_bind
            .iter()
            .map(|a| normalize_bind(a).ok_or_else(|| ConnectError::BadBind(a.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let (ws, _) = tokio_tungstenite::connect_async(config.server_url.as_str())
            .await
            .map_err(|e| ConnectError::Signaling {
                url: config.server_url.clone(),
                source: Box::new(e),
            })?;
        let (out_tx, out_rx) = mpsc::channel::<Out>(256);
        let (ev_tx, ev_rx) = mpsc::channel(config.events_max);
        let policy = Negotiation::new(
            NegotiationConfig {
                early_candidates_max: config.early_candidates_max,
                ..NegotiationConfig::default()
            },
            kind,
            config.name.clone(),
        );
        let inner = Arc::new(Inner {
            config,
            kind,
            ws_out: out_tx,
            events: ev_tx,
            policy: Mutex::new(policy),
            conns: Mutex::new(HashMap::new()),
            ice_servers: Mutex::new(Vec::new()),
            ice_bind,
            resume_token: Mutex::new(None),
        });
        tokio::spawn(signaling_session(Arc::downgrade(&inner), ws, out_rx));
        Ok(NativeTransport {
            inner,
            events: ev_rx,
        })
    }
}

/// What the signaling socket's writer is told.
enum Out {
    /// A frame to send, at the server's pace.
    Frame(String),
    /// The pace the server announced.
    Limits(RateLimits),
    /// The server refused this frame for pace.
    Refused {
        frame: u64,
        retry_after_ms: Option<u64>,
    },
    /// End this socket and enter the room again ([`Transport::rejoin`]).
    Rejoin,
}

/// How the writer of one signaling socket ended.
#[derive(Clone, Copy, PartialEq, Eq)]
enum WriterEnd {
    /// The transport was dropped.
    Gone,
    /// The socket failed or its reader ended.
    Ended,
    /// A rejoin was asked for.
    Rejoin,
}

type WsStream =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How one signaling socket ended.
enum SocketEnd {
    /// The transport was dropped: nothing more to do.
    TransportGone,
    /// The socket closed or failed; `welcomed` if the server had taken us in on it.
    Closed { welcomed: bool },
    /// The server refused our resume token for good (bad or expired): joining afresh
    /// would give this node a second identity in a mesh that knows its first.
    TokenRefused,
}

/// A signaling socket that brings nothing (not even a ping) for this long is taken for
/// dead and replaced.
const SERVER_SILENT_MAX: Duration = Duration::from_secs(15);

/// The signaling connection over the transport's life: serves `ws`, and whenever a
/// socket ends, opens another (backoff with jitter) and resumes under the same id with
/// the last resume token. The mesh's data channels carry on meanwhile.
async fn signaling_session(weak: Weak<Inner>, ws: WsStream, mut out_rx: mpsc::Receiver<Out>) {
    let mut next = Some(ws);
    let mut attempt: u32 = 0;
    let mut away = false;
    let mut rng = seed();
    loop {
        let ws = match next.take() {
            Some(ws) => ws,
            None => {
                rng = xorshift(rng);
                let delay = reconnect_delay_ms(attempt, (rng % 1000) as f64 / 1000.0);
                attempt = attempt.saturating_add(1);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let Some(url) = weak.upgrade().map(|i| i.config.server_url.clone()) else {
                    return;
                };
                match tokio::time::timeout(
                    Duration::from_secs(10),
                    tokio_tungstenite::connect_async(url.as_str()),
                )
                .await
                {
                    Ok(Ok((ws, _))) => ws,
                    _ => continue,
                }
            }
        };
        let Some(first) = weak.upgrade().map(|i| i.enter_frame()) else {
            return;
        };
        let (ws_tx, ws_rx) = ws.split();
        let (side_tx, side_rx) = mpsc::unbounded_channel();
        let reader = tokio::spawn(read_signaling(weak.clone(), ws_rx, side_tx));
        let writer_end = write_paced(ws_tx, &mut out_rx, side_rx, first).await;
        if writer_end == WriterEnd::Rejoin {
            // `rejoin` closed the connections and restarted the policy. Quietly: no
            // "signaling away" while the server still holds the old socket a moment.
            reader.abort();
            attempt = 0;
            away = true;
            continue;
        }
        let end = if writer_end == WriterEnd::Gone {
            reader.abort();
            SocketEnd::TransportGone
        } else {
            reader
                .await
                .unwrap_or(SocketEnd::Closed { welcomed: false })
        };
        let Some(inner) = weak.upgrade() else { return };
        match end {
            SocketEnd::TransportGone => return,
            SocketEnd::TokenRefused => {
                tracing::error!(
                    "the signaling server refused this node's resume token: the mesh carries \
                     on, but newcomers cannot reach this node; restart it to join afresh"
                );
                inner.run(inner.input(Negotiation::signaling_closed)).await;
                return;
            }
            SocketEnd::Closed { welcomed } => {
                if welcomed {
                    attempt = 0;
                }
                if welcomed || !away {
                    away = true;
                    tracing::warn!("signaling away, mesh still working: reconnecting");
                    inner.run(inner.input(Negotiation::signaling_closed)).await;
                }
            }
        }
    }
}

/// Reads one signaling socket into the policy until it ends. Pacing news (the limits,
/// refused frames) goes to the writer on `side`.
async fn read_signaling(
    weak: Weak<Inner>,
    mut ws_rx: futures_util::stream::SplitStream<WsStream>,
    side: mpsc::UnboundedSender<Out>,
) -> SocketEnd {
    let mut welcomed = false;
    // One reader: server frames are fed to the policy in the order they arrived, and the
    // negotiation steps of one frame finish before the next frame is read. The server
    // pings every few seconds: a socket silent for longer is gone.
    while let Ok(Some(msg)) = tokio::time::timeout(SERVER_SILENT_MAX, ws_rx.next()).await {
        let Ok(msg) = msg else { break };
        let Message::Text(text) = msg else { continue };
        let Some(inner) = weak.upgrade() else {
            return SocketEnd::TransportGone;
        };
        let msg = match signal::decode_server(text.as_str()) {
            Ok(msg) => msg,
            Err(e) => {
                tracing::warn!("undecodable signaling frame dropped: {e}");
                continue;
            }
        };
        match &msg {
            ServerMsg::Welcome {
                id,
                room,
                peers,
                limits,
                ..
            } => {
                welcomed = true;
                tracing::info!(%id, %room, peers = peers.len(), "joined");
                if let Some(l) = limits {
                    let _ = side.send(Out::Limits(*l));
                }
            }
            ServerMsg::ResumeToken { token, .. } => {
                *lock(&inner.resume_token) = Some(token.clone());
                continue;
            }
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                frame: Some(frame),
                retry_after_ms,
                ..
            } => {
                tracing::debug!(
                    frame,
                    "the signaling server paced a frame: sending it again"
                );
                let _ = side.send(Out::Refused {
                    frame: *frame,
                    retry_after_ms: *retry_after_ms,
                });
            }
            ServerMsg::Error { code, message, .. } => {
                tracing::warn!(?code, "signaling server refused a frame: {message}");
            }
            _ => {}
        }
        let end = match &msg {
            ServerMsg::Error {
                code: ErrorCode::BadToken | ErrorCode::TokenExpired,
                ..
            } => Some(SocketEnd::TokenRefused),
            // The id's old connection is not gone yet from the server's view: try again
            // on a new socket after the backoff.
            ServerMsg::Error {
                code: ErrorCode::IdInUse,
                ..
            } => Some(SocketEnd::Closed { welcomed: false }),
            // The room is away for now (a presenter's demonstration): a new socket after
            // the backoff finds it back soon after it is, early or on time.
            ServerMsg::Error {
                code: ErrorCode::ServerAway,
                ..
            } => Some(SocketEnd::Closed { welcomed: false }),
            _ => None,
        };
        let steps = inner.input(|n| n.handle_server(msg));
        inner.run(steps).await;
        if let Some(end) = end {
            return end;
        }
    }
    SocketEnd::Closed { welcomed }
}

/// Sends frames to the signaling server at its pace ([`Pacer`]), `first` first, until
/// the socket fails or its reader ends (`side` closes), the transport is dropped, or a
/// rejoin is asked for. Closes the socket.
async fn write_paced(
    mut ws_tx: futures_util::stream::SplitSink<WsStream, Message>,
    out_rx: &mut mpsc::Receiver<Out>,
    mut side: mpsc::UnboundedReceiver<Out>,
    first: String,
) -> WriterEnd {
    let start = tokio::time::Instant::now();
    let now_ms = || u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX);
    let mut pacer = Pacer::new(now_ms(), seed());
    pacer.push(first);
    let mut end = WriterEnd::Ended;
    'run: loop {
        while let Some(text) = pacer.poll(now_ms()) {
            if ws_tx.send(Message::text(text)).await.is_err() {
                break 'run;
            }
        }
        let wake = pacer
            .wake_at(now_ms())
            .map(|ms| start + Duration::from_millis(ms));
        let out = tokio::select! {
            out = out_rx.recv() => match out {
                Some(out) => out,
                None => {
                    end = WriterEnd::Gone;
                    break;
                }
            },
            news = side.recv() => match news {
                Some(news) => news,
                // The reader ended: this socket is done.
                None => break,
            },
            () = tokio::time::sleep_until(wake.unwrap_or(start)), if wake.is_some() => continue,
        };
        match out {
            Out::Frame(text) => pacer.push(text),
            Out::Limits(limits) => pacer.set_limits(limits, now_ms()),
            Out::Refused {
                frame,
                retry_after_ms,
            } => pacer.refused(frame, retry_after_ms, now_ms()),
            Out::Rejoin => {
                end = WriterEnd::Rejoin;
                break;
            }
        }
    }
    let stats = pacer.stats();
    if stats.refused > 0 {
        tracing::info!(
            refused = stats.refused,
            resent = stats.resent,
            dropped = stats.dropped,
            "frames the signaling server paced"
        );
    }
    let _ = tokio::time::timeout(Duration::from_secs(1), ws_tx.send(Message::Close(None))).await;
    end
}

/// A seed for jitter that differs between processes and calls.
fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| {
            u64::from(d.subsec_nanos()) ^ d.as_secs().rotate_left(32)
        })
        | 1
}

/// `IP` → `IP:0`; `IP:PORT` and `[v6]:PORT` pass; anything else is refused.
fn normalize_bind(addr: &str) -> Option<String> {
    if let Ok(ip) = addr.parse::<std::net::IpAddr>() {
        return Some(std::net::SocketAddr::new(ip, 0).to_string());
    }
    addr.parse::<std::net::SocketAddr>()
        .ok()
        .map(|a| a.to_string())
}

/// A normalised candidate as webrtc-rs takes it.
fn candidate_init(c: Candidate) -> RTCIceCandidateInit {
    RTCIceCandidateInit {
        candidate: c.candidate,
        sdp_mid: c.sdp_mid,
        sdp_mline_index: Some(c.sdp_mline_index),
        ..Default::default()
    }
}

impl Inner {
    /// The first frame on a signaling socket: a resume with the last token, once there
    /// is one, or else a join.
    fn enter_frame(&self) -> String {
        let c = &self.config;
        signal::encode_client(ClientMsg::enter(
            &c.room,
            lock(&self.resume_token).clone(),
            self.kind,
            &c.name,
            c.presenter_key.clone(),
            lock(&self.policy).colour(),
        ))
    }

    /// Feeds one input to the policy and takes the steps it caused. The lock is held
    /// only inside this call, so concurrent callers each get their own steps.
    fn input(&self, f: impl FnOnce(&mut Negotiation)) -> Vec<Step> {
        let mut n = lock(&self.policy);
        f(&mut n);
        std::iter::from_fn(|| n.poll_step()).collect()
    }

    /// Carries out steps in order; a step's follow-ups run before the next step.
    fn run(self: &Arc<Self>, steps: Vec<Step>) -> BoxFuture<'_, ()> {
        Box::pin(async move {
            for step in steps {
                self.step(step).await;
            }
        })
    }

    async fn step(self: &Arc<Self>, step: Step) {
        match step {
            Step::SetIceServers(servers) => *lock(&self.ice_servers) = servers,
            Step::Offer { peer, conn } => {
                let next = match self.offer(&peer, conn).await {
                    Ok(sdp) => self.input(|n| n.local_description(&peer, conn, sdp)),
                    Err(e) => {
                        tracing::warn!(%peer, %conn, "offer failed: {e}");
                        self.input(|n| n.negotiation_failed(&peer, conn))
                    }
                };
                self.run(next).await;
            }
            Step::Answer { peer, conn, sdp } => {
                if let Err(e) = self.answer(&peer, conn, sdp).await {
                    tracing::warn!(%peer, %conn, "answering an offer failed: {e}");
                    let next = self.input(|n| n.negotiation_failed(&peer, conn));
                    self.run(next).await;
                }
            }
            Step::ApplyAnswer { peer, conn, sdp } => {
                let next = match self.apply_answer(&peer, conn, sdp).await {
                    Ok(()) => self.input(|n| n.remote_description_set(&peer, conn)),
                    Err(e) => {
                        tracing::warn!(%peer, %conn, "applying the answer failed: {e}");
                        self.input(|n| n.negotiation_failed(&peer, conn))
                    }
                };
                self.run(next).await;
            }
            Step::AddCandidate {
                peer,
                conn,
                candidate,
            } => {
                let Some(pc) = self.pc(&peer, conn) else {
                    return;
                };
                if let Err(e) = pc.add_ice_candidate(candidate_init(candidate)).await {
                    tracing::debug!(%peer, %conn, "candidate refused: {e}");
                }
            }
            Step::Close { peer, conn } => self.close(&peer, conn),
            Step::Signal { to, data } => self.signal(&to, data).await,
            Step::Emit(ev) => self.emit(ev).await,
            Step::Alarm { after_ms, alarm } => {
                // Held weakly: an alarm that rings after the transport is gone does nothing.
                let weak = Arc::downgrade(self);
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(after_ms)).await;
                    if let Some(inner) = weak.upgrade() {
                        let next = inner.input(|n| n.alarm(alarm));
                        inner.run(next).await;
                    }
                });
            }
        }
    }

    async fn emit(&self, ev: TransportEvent) {
        let _ = self.events.send(ev).await;
    }

    async fn signal(&self, to: &PeerId, data: SignalData) {
        let frame = signal::encode_client(ClientMsg::Signal {
            to: to.clone(),
            data,
        });
        let _ = self.ws_out.send(Out::Frame(frame)).await;
    }

    async fn new_pc(
        self: &Arc<Self>,
        peer: &PeerId,
        conn: ConnId,
    ) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
        let setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(true)
            // A pair is checked every 200 ms for as long as an attempt may take to open
            // (the negotiation's deadline), not webrtc-rs's default 1.4 s: an attempt
            // started while a link is cut then connects as soon as packets pass again.
            .with_ice_connection_attempts(
                Some(ICE_CHECK_INTERVAL),
                Some(ice_binding_requests(
                    NegotiationConfig::default().open_within_ms,
                )),
            )
            .with_network_types(vec![
                rtc::ice::network_type::NetworkType::Udp4,
                rtc::ice::network_type::NetworkType::Udp6,
            ])
            .build();
        let ice_servers = lock(&self.ice_servers)
            .iter()
            .map(|s| RTCIceServer {
                urls: s.urls.clone(),
                username: s.username.clone().unwrap_or_default(),
                credential: s.credential.clone().unwrap_or_default(),
            })
            .collect();
        let handler = Arc::new(Handler {
            peer: peer.clone(),
            conn,
            inner: Arc::downgrade(self),
        });
        let pc = PeerConnectionBuilder::new()
            .with_configuration(
                RTCConfigurationBuilder::new()
                    .with_ice_servers(ice_servers)
                    .build(),
            )
            .with_setting_engine(setting_engine)
            .with_runtime(Arc::new(BufferedRuntime(self.config.udp_buffer_bytes)))
            .with_handler(handler)
            .with_udp_addrs(self.ice_bind.clone())
            .with_data_channel_send_buffer_limit(self.config.send_buffer_bytes)
            .build()
            .await?;
        let pc: Arc<dyn PeerConnection> = Arc::new(pc);
        self.keep(peer, conn, pc.clone());
        Ok(pc)
    }

    /// Holds `pc` as the peer's connection `conn`. Attempts only get newer, so an older
    /// one still held is closed, and `pc` itself is closed if a newer one is held.
    fn keep(&self, peer: &PeerId, conn: ConnId, pc: Arc<dyn PeerConnection>) {
        let mut conns = lock(&self.conns);
        let stale = match conns.get(peer) {
            Some(held) if held.id > conn => Some(pc),
            _ => conns
                .insert(
                    peer.clone(),
                    Conn {
                        id: conn,
                        pc,
                        dc: None,
                    },
                )
                .map(|old| old.pc),
        };
        drop(conns);
        if let Some(pc) = stale {
            tokio::spawn(async move { pc.close().await });
        }
    }

    /// The connection of attempt `conn`, if it is still held.
    fn pc(&self, peer: &PeerId, conn: ConnId) -> Option<Arc<dyn PeerConnection>> {
        lock(&self.conns)
            .get(peer)
            .filter(|c| c.id == conn)
            .map(|c| c.pc.clone())
    }

    /// Records the data channel of attempt `conn`; false if that attempt is not held.
    fn keep_channel(&self, peer: &PeerId, conn: ConnId, dc: &Arc<dyn DataChannel>) -> bool {
        match lock(&self.conns).get_mut(peer) {
            Some(c) if c.id == conn => {
                c.dc = Some(dc.clone());
                true
            }
            _ => false,
        }
    }

    /// Forgets attempt `conn` and closes its connection, if it is still held.
    fn close(&self, peer: &PeerId, conn: ConnId) {
        let mut conns = lock(&self.conns);
        if conns.get(peer).is_some_and(|c| c.id == conn)
            && let Some(c) = conns.remove(peer)
        {
            drop(conns);
            tokio::spawn(async move { c.pc.close().await });
        }
    }

    /// Builds the connection with our data channel and sets our offer: its SDP.
    async fn offer(
        self: &Arc<Self>,
        peer: &PeerId,
        conn: ConnId,
    ) -> Result<String, NegotiationError> {
        let pc = self.new_pc(peer, conn).await?;
        let dc = pc.create_data_channel("meshwork", None).await?;
        self.keep_channel(peer, conn, &dc);
        tokio::spawn(run_channel(dc, peer.clone(), conn, Arc::downgrade(self)));
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        local_sdp(&pc).await
    }

    /// Builds the connection for the peer's offer, reports the remote description and
    /// sends our answer.
    async fn answer(
        self: &Arc<Self>,
        peer: &PeerId,
        conn: ConnId,
        sdp: String,
    ) -> Result<(), NegotiationError> {
        let pc = self.new_pc(peer, conn).await?;
        pc.set_remote_description(RTCSessionDescription::offer(sdp)?)
            .await?;
        let next = self.input(|n| n.remote_description_set(peer, conn));
        self.run(next).await;
        let answer = pc.create_answer(None).await?;
        pc.set_local_description(answer).await?;
        let sdp = local_sdp(&pc).await?;
        let next = self.input(|n| n.local_description(peer, conn, sdp));
        self.run(next).await;
        Ok(())
    }

    async fn apply_answer(
        &self,
        peer: &PeerId,
        conn: ConnId,
        sdp: String,
    ) -> Result<(), NegotiationError> {
        let pc = self
            .pc(peer, conn)
            .ok_or("the connection of this answer is closed")?;
        pc.set_remote_description(RTCSessionDescription::answer(sdp)?)
            .await?;
        Ok(())
    }
}

/// The SDP of the local description just set.
async fn local_sdp(pc: &Arc<dyn PeerConnection>) -> Result<String, NegotiationError> {
    Ok(pc
        .local_description()
        .await
        .ok_or("no local description after setting it")?
        .sdp)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the state inconsistent (each update
    // is one insert or remove, or one policy input), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The kinds (`host`, `srflx`, `prflx`, `relay`) of the local and remote candidates of
/// the pair ICE selected for `pc`, once it has one.
async fn selected_path(pc: &dyn PeerConnection) -> Option<(String, String)> {
    let sctp = pc.sctp().await?;
    let pair = sctp
        .transport()
        .ice_transport()
        .get_selected_candidate_pair()
        .await
        .ok()??;
    Some((pair.local().typ.to_string(), pair.remote().typ.to_string()))
}

/// Reads one data channel until it closes, forwarding its messages as events.
async fn run_channel(dc: Arc<dyn DataChannel>, peer: PeerId, conn: ConnId, inner: Weak<Inner>) {
    while let Some(ev) = dc.poll().await {
        let Some(inner) = inner.upgrade() else { return };
        match ev {
            DataChannelEvent::OnOpen => {
                inner.keep_channel(&peer, conn, &dc);
                let steps = inner.input(|n| n.channel_open(&peer, conn));
                inner.run(steps).await;
                if let Some(pc) = inner.pc(&peer, conn)
                    && let Some((local, remote)) = selected_path(pc.as_ref()).await
                {
                    inner
                        .emit(TransportEvent::Path {
                            peer: peer.clone(),
                            local,
                            remote,
                        })
                        .await;
                }
            }
            DataChannelEvent::OnMessage(m) => {
                inner
                    .emit(TransportEvent::Message(peer.clone(), m.data.to_vec()))
                    .await;
            }
            DataChannelEvent::OnClose => break,
            _ => {}
        }
    }
    if let Some(inner) = inner.upgrade() {
        let steps = inner.input(|n| n.connection_closed(&peer, conn));
        inner.run(steps).await;
    }
}

struct Handler {
    peer: PeerId,
    conn: ConnId,
    inner: Weak<Inner>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_candidate(&self, event: RTCPeerConnectionIceEvent) {
        let Some(inner) = self.inner.upgrade() else {
            return;
        };
        if let Ok(init) = event.candidate.to_json() {
            // webrtc-rs fills sdpMid with ""; browsers want null plus the m-line index.
            let candidate = Candidate {
                candidate: init.candidate,
                sdp_mid: None,
                sdp_mline_index: 0,
            };
            let steps = inner.input(|n| n.local_candidate(&self.peer, self.conn, candidate));
            inner.run(steps).await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(peer = %self.peer, conn = %self.conn, %state, "connection state");
        if matches!(
            state,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        ) && let Some(inner) = self.inner.upgrade()
        {
            let steps = inner.input(|n| n.connection_closed(&self.peer, self.conn));
            inner.run(steps).await;
        }
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        if let Some(inner) = self.inner.upgrade()
            && inner.keep_channel(&self.peer, self.conn, &dc)
        {
            tokio::spawn(run_channel(
                dc,
                self.peer.clone(),
                self.conn,
                self.inner.clone(),
            ));
        }
    }
}

impl Transport for NativeTransport {
    async fn next_event(&mut self) -> Option<TransportEvent> {
        self.events.recv().await
    }

    async fn send(&self, to: &PeerId, bytes: Vec<u8>) -> Result<(), SendError> {
        if bytes.len() > MESSAGE_LEN_MAX {
            return Err(SendError::TooBig(bytes.len()));
        }
        let dc = lock(&self.inner.conns).get(to).and_then(|c| c.dc.clone());
        let dc = dc.ok_or_else(|| SendError::NoChannel(to.clone()))?;
        dc.send(BytesMut::from(&bytes[..]))
            .await
            .map_err(|e| SendError::Channel(e.to_string()))
    }

    async fn queued(&self, to: &PeerId) -> usize {
        let dc = lock(&self.inner.conns).get(to).and_then(|c| c.dc.clone());
        match dc {
            Some(dc) => dc.outstanding_bytes().await.unwrap_or(0),
            None => 0,
        }
    }

    fn close_peer(&self, peer: &PeerId) {
        for step in self.inner.input(|n| n.close_peer(peer)) {
            match step {
                Step::Close { peer, conn } => self.inner.close(&peer, conn),
                step => {
                    let inner = self.inner.clone();
                    tokio::spawn(async move { inner.step(step).await });
                }
            }
        }
    }

    fn reconnect(&self, peer: &PeerId) {
        let steps = self.inner.input(|n| n.reconnect(peer));
        let inner = self.inner.clone();
        tokio::spawn(async move { inner.run(steps).await });
    }

    fn take_server_away(&self, secs: u32) {
        let frame = signal::encode_client(ClientMsg::Outage { secs });
        if self.inner.ws_out.try_send(Out::Frame(frame)).is_err() {
            tracing::warn!("the signaling socket is closed or busy: outage not asked");
        }
    }

    fn revive_room(&self) {
        let frame = signal::encode_client(ClientMsg::Revive);
        if self.inner.ws_out.try_send(Out::Frame(frame)).is_err() {
            tracing::warn!("the signaling socket is closed or busy: revive not asked");
        }
    }

    fn rejoin(&self) {
        // The connections go now, so that nothing the node says next leaves on them; the
        // signaling session opens a new socket and enters the room again.
        for step in self.inner.input(Negotiation::restart) {
            if let Step::Close { peer, conn } = step {
                self.inner.close(&peer, conn);
            }
        }
        if self.inner.ws_out.try_send(Out::Rejoin).is_err() {
            tracing::warn!("the signaling session is busy: rejoin not started");
        }
    }

    async fn shutdown(&self) {
        // The policy closes every attempt it knows of; all are closed here at once.
        for step in self.inner.input(Negotiation::shutdown) {
            if !matches!(step, Step::Close { .. }) {
                self.inner.step(step).await;
            }
        }
        let pcs: Vec<_> = lock(&self.inner.conns).drain().map(|(_, c)| c.pc).collect();
        for pc in pcs {
            // Closing sends the SCTP/DTLS goodbyes that let the other side notice at once.
            let _ = tokio::time::timeout(Duration::from_millis(500), pc.close()).await;
        }
    }
}

/// The tokio runtime with bigger kernel buffers on every UDP socket webrtc-rs binds.
#[derive(Debug)]
struct BufferedRuntime(usize);

type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl webrtc::runtime::Runtime for BufferedRuntime {
    fn spawn(
        &self,
        f: Pin<Box<dyn Future<Output = ()> + Send>>,
    ) -> Box<dyn webrtc::runtime::JoinHandle> {
        webrtc::runtime::TokioRuntime.spawn(f)
    }

    fn wrap_udp_socket(
        &self,
        socket: std::net::UdpSocket,
    ) -> std::io::Result<Arc<dyn webrtc::runtime::AsyncUdpSocket>> {
        let s = socket2::SockRef::from(&socket);
        // Best effort: the kernel caps these at net.core.{r,w}mem_max.
        let _ = s.set_recv_buffer_size(self.0);
        let _ = s.set_send_buffer_size(self.0);
        webrtc::runtime::TokioRuntime.wrap_udp_socket(socket)
    }

    fn wrap_tcp_listener(
        &self,
        l: std::net::TcpListener,
    ) -> std::io::Result<Arc<dyn webrtc::runtime::AsyncTcpListener>> {
        webrtc::runtime::TokioRuntime.wrap_tcp_listener(l)
    }

    fn connect_tcp<'a>(
        &'a self,
        a: std::net::SocketAddr,
    ) -> BoxFuture<'a, std::io::Result<Arc<dyn webrtc::runtime::AsyncTcpStream>>> {
        webrtc::runtime::TokioRuntime.connect_tcp(a)
    }

    fn resolve_host<'a>(
        &'a self,
        h: &'a str,
    ) -> BoxFuture<'a, std::io::Result<Vec<std::net::SocketAddr>>> {
        webrtc::runtime::TokioRuntime.resolve_host(h)
    }

    fn sleep(&self, d: Duration) -> BoxFuture<'static, ()> {
        webrtc::runtime::TokioRuntime.sleep(d)
    }

    fn interval(&self, p: Duration) -> Box<dyn webrtc::runtime::AsyncInterval> {
        webrtc::runtime::TokioRuntime.interval(p)
    }

    fn block_on(&self, f: Pin<Box<dyn Future<Output = ()> + '_>>) {
        webrtc::runtime::TokioRuntime.block_on(f)
    }
}

#[cfg(test)]
mod tests {
    use super::normalize_bind;

    #[test]
    fn bind_addresses() {
        assert_eq!(normalize_bind("127.0.0.1").as_deref(), Some("127.0.0.1:0"));
        assert_eq!(
            normalize_bind("0.0.0.0:5000").as_deref(),
            Some("0.0.0.0:5000")
        );
        assert_eq!(normalize_bind("::1").as_deref(), Some("[::1]:0"));
        assert_eq!(normalize_bind("localhost"), None);
        assert_eq!(normalize_bind("1.2.3.4:99999"), None);
    }
}
