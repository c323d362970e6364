//! The native transport: webrtc-rs 0.21 over tokio, with the signaling socket on
//! tokio-tungstenite.
//!
//! Settings measured on loopback and in namespaces (see TOOLCHAIN.md):
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

use super::{SendError, Transport, TransportEvent};
use crate::signal::{
    self, ClientMsg, IceServer, PeerId, PeerInfo, PeerKind, ServerMsg, SignalData,
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

/// One remote peer's WebRTC state.
struct Peer {
    /// None until we offer to it or its offer arrives.
    pc: Option<Arc<dyn PeerConnection>>,
    /// Set once the channel is known (created by us, or announced by the remote).
    dc: Option<Arc<dyn DataChannel>>,
    /// Whether the remote description is set, so candidates can be added.
    remote_set: bool,
    /// Candidates that arrived before the remote description, bounded.
    early: Vec<RTCIceCandidateInit>,
}

impl Peer {
    fn empty() -> Self {
        Peer {
            pc: None,
            dc: None,
            remote_set: false,
            early: Vec::new(),
        }
    }
}

struct Inner {
    config: NativeConfig,
    /// Frames for the signaling socket's writer task.
    ws_out: mpsc::Sender<String>,
    /// Events for the driver.
    events: mpsc::Sender<TransportEvent>,
    peers: Mutex<HashMap<PeerId, Peer>>,
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
    /// Connects to the signaling server and joins the room. Peers are connected in the
    /// background; watch [`Transport::next_event`].
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
        let (mut ws_tx, mut ws_rx) = ws.split();
        let (out_tx, mut out_rx) = mpsc::channel::<String>(256);
        let (ev_tx, ev_rx) = mpsc::channel(config.events_max);
        tokio::spawn(async move {
            while let Some(text) = out_rx.recv().await {
                if ws_tx.send(Message::text(text)).await.is_err() {
                    break;
                }
            }
            let _ = ws_tx.send(Message::Close(None)).await;
        });
        let join = signal::encode_client(ClientMsg::Join {
            room: config.room.clone(),
            kind,
            name: config.name.clone(),
        });
        let inner = Arc::new(Inner {
            config,
            ws_out: out_tx,
            events: ev_tx,
            peers: Mutex::new(HashMap::new()),
            ice_servers: Mutex::new(Vec::new()),
            ice_bind,
        });
        let _ = inner.ws_out.send(join).await;
        let weak = Arc::downgrade(&inner);
        tokio::spawn(async move {
            while let Some(msg) = ws_rx.next().await {
                let Ok(msg) = msg else { break };
                let Message::Text(text) = msg else { continue };
                let Some(inner) = weak.upgrade() else { return };
                match signal::decode_server(text.as_str()) {
                    Ok(msg) => inner.on_server_msg(msg).await,
                    Err(e) => tracing::warn!("undecodable signaling frame dropped: {e}"),
                }
            }
            if let Some(inner) = weak.upgrade() {
                let _ = inner.events.send(TransportEvent::SignalingClosed).await;
            }
        });
        Ok(NativeTransport {
            inner,
            events: ev_rx,
        })
    }
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

impl Inner {
    async fn emit(&self, ev: TransportEvent) {
        let _ = self.events.send(ev).await;
    }

    async fn signal(&self, to: &PeerId, data: SignalData) {
        let frame = signal::encode_client(ClientMsg::Signal {
            to: to.clone(),
            data,
        });
        let _ = self.ws_out.send(frame).await;
    }

    async fn on_server_msg(self: &Arc<Self>, msg: ServerMsg) {
        match msg {
            ServerMsg::Welcome {
                id,
                room,
                peers,
                ice_servers,
            } => {
                tracing::info!(%id, %room, peers = peers.len(), "joined");
                *lock(&self.ice_servers) = ice_servers;
                let me = PeerInfo {
                    id,
                    kind: PeerKind::Native,
                    name: self.config.name.clone(),
                };
                self.emit(TransportEvent::Joined {
                    me,
                    peers: peers.clone(),
                })
                .await;
                // The newcomer offers to everyone already there.
                for p in peers {
                    if let Err(e) = self.offer(&p.id).await {
                        tracing::warn!(peer = %p.id, "offer failed: {e}");
                        self.emit(TransportEvent::ChannelClosed(p.id)).await;
                    }
                }
            }
            ServerMsg::PeerJoined { peer } => self.emit(TransportEvent::PeerJoined(peer)).await,
            ServerMsg::PeerLeft { id } => {
                self.emit(TransportEvent::PeerLeft(id.clone())).await;
                self.drop_peer(&id);
            }
            ServerMsg::Signal { from, data } => {
                if let Err(e) = self.on_signal(&from, data).await {
                    tracing::warn!(peer = %from, "negotiation failed: {e}");
                    self.emit(TransportEvent::ChannelClosed(from.clone())).await;
                    self.drop_peer(&from);
                }
            }
            ServerMsg::Error { code, message } => {
                tracing::warn!(?code, "signaling server refused a frame: {message}");
                self.emit(TransportEvent::SignalingError { code, message })
                    .await;
            }
        }
    }

    async fn new_pc(
        self: &Arc<Self>,
        peer: &PeerId,
    ) -> webrtc::error::Result<Arc<dyn PeerConnection>> {
        let setting_engine = SettingEngineBuilder::new()
            .with_multicast_dns_mode(rtc::ice::mdns::MulticastDnsMode::Disabled)
            .with_include_loopback_candidate(true)
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
        Ok(Arc::new(pc))
    }

    async fn offer(self: &Arc<Self>, peer: &PeerId) -> webrtc::error::Result<()> {
        let pc = self.new_pc(peer).await?;
        let dc = pc.create_data_channel("meshwork", None).await?;
        {
            let mut peers = lock(&self.peers);
            let entry = peers.entry(peer.clone()).or_insert_with(Peer::empty);
            entry.pc = Some(pc.clone());
            entry.dc = Some(dc.clone());
        }
        tokio::spawn(run_channel(dc, peer.clone(), Arc::downgrade(self)));
        let offer = pc.create_offer(None).await?;
        pc.set_local_description(offer).await?;
        if let Some(desc) = pc.local_description().await {
            self.signal(peer, SignalData::Offer { sdp: desc.sdp }).await;
        }
        Ok(())
    }

    async fn on_signal(
        self: &Arc<Self>,
        from: &PeerId,
        data: SignalData,
    ) -> webrtc::error::Result<()> {
        match data {
            SignalData::Offer { sdp } => {
                let pc = self.new_pc(from).await?;
                let old = {
                    let mut peers = lock(&self.peers);
                    let entry = peers.entry(from.clone()).or_insert_with(Peer::empty);
                    entry.remote_set = false;
                    entry.pc.replace(pc.clone())
                };
                if let Some(old) = old {
                    tokio::spawn(async move { old.close().await });
                }
                pc.set_remote_description(RTCSessionDescription::offer(sdp)?)
                    .await?;
                self.remote_set(from, &pc).await;
                let answer = pc.create_answer(None).await?;
                pc.set_local_description(answer).await?;
                if let Some(desc) = pc.local_description().await {
                    self.signal(from, SignalData::Answer { sdp: desc.sdp })
                        .await;
                }
            }
            SignalData::Answer { sdp } => {
                let pc = lock(&self.peers).get(from).and_then(|p| p.pc.clone());
                let Some(pc) = pc else {
                    tracing::debug!(peer = %from, "answer for no offer dropped");
                    return Ok(());
                };
                pc.set_remote_description(RTCSessionDescription::answer(sdp)?)
                    .await?;
                self.remote_set(from, &pc).await;
            }
            SignalData::Ice {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let init = RTCIceCandidateInit {
                    candidate,
                    sdp_mid: sdp_mid.filter(|m| !m.is_empty()),
                    sdp_mline_index: sdp_mline_index.or(Some(0)),
                    ..Default::default()
                };
                let ready = {
                    let mut peers = lock(&self.peers);
                    let entry = peers.entry(from.clone()).or_insert_with(Peer::empty);
                    match (&entry.pc, entry.remote_set) {
                        (Some(pc), true) => Some((pc.clone(), init)),
                        _ => {
                            if entry.early.len() < self.config.early_candidates_max {
                                entry.early.push(init);
                            }
                            None
                        }
                    }
                };
                if let Some((pc, init)) = ready
                    && let Err(e) = pc.add_ice_candidate(init).await
                {
                    tracing::debug!(peer = %from, "candidate refused: {e}");
                }
            }
        }
        Ok(())
    }

    /// The remote description is in: add the candidates that came early.
    async fn remote_set(&self, peer: &PeerId, pc: &Arc<dyn PeerConnection>) {
        let early = {
            let mut peers = lock(&self.peers);
            match peers.get_mut(peer) {
                Some(entry) => {
                    entry.remote_set = true;
                    std::mem::take(&mut entry.early)
                }
                None => Vec::new(),
            }
        };
        for c in early {
            if let Err(e) = pc.add_ice_candidate(c).await {
                tracing::debug!(%peer, "early candidate refused: {e}");
            }
        }
    }

    fn drop_peer(&self, peer: &PeerId) {
        if let Some(p) = lock(&self.peers).remove(peer)
            && let Some(pc) = p.pc
        {
            tokio::spawn(async move { pc.close().await });
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding these locks cannot leave the maps inconsistent (each update
    // is one insert or remove), so a poisoned lock is still usable.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Reads one data channel until it closes, forwarding its messages as events.
async fn run_channel(dc: Arc<dyn DataChannel>, peer: PeerId, inner: Weak<Inner>) {
    while let Some(ev) = dc.poll().await {
        let Some(inner) = inner.upgrade() else { return };
        match ev {
            DataChannelEvent::OnOpen => {
                if let Some(entry) = lock(&inner.peers).get_mut(&peer) {
                    entry.dc = Some(dc.clone());
                }
                inner.emit(TransportEvent::ChannelOpen(peer.clone())).await;
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
        inner.emit(TransportEvent::ChannelClosed(peer)).await;
    }
}

struct Handler {
    peer: PeerId,
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
            inner
                .signal(
                    &self.peer,
                    SignalData::Ice {
                        candidate: init.candidate,
                        sdp_mid: None,
                        sdp_mline_index: Some(0),
                    },
                )
                .await;
        }
    }

    async fn on_connection_state_change(&self, state: RTCPeerConnectionState) {
        tracing::debug!(peer = %self.peer, %state, "connection state");
        if matches!(
            state,
            RTCPeerConnectionState::Failed | RTCPeerConnectionState::Closed
        ) && let Some(inner) = self.inner.upgrade()
        {
            inner
                .emit(TransportEvent::ChannelClosed(self.peer.clone()))
                .await;
        }
    }

    async fn on_data_channel(&self, dc: Arc<dyn DataChannel>) {
        if let Some(inner) = self.inner.upgrade() {
            if let Some(entry) = lock(&inner.peers).get_mut(&self.peer) {
                entry.dc = Some(dc.clone());
            }
            tokio::spawn(run_channel(dc, self.peer.clone(), self.inner.clone()));
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
        let dc = lock(&self.inner.peers).get(to).and_then(|p| p.dc.clone());
        let dc = dc.ok_or_else(|| SendError::NoChannel(to.clone()))?;
        dc.send(BytesMut::from(&bytes[..]))
            .await
            .map_err(|e| SendError::Channel(e.to_string()))
    }

    fn close_peer(&self, peer: &PeerId) {
        self.inner.drop_peer(peer);
    }

    async fn shutdown(&self) {
        let pcs: Vec<_> = lock(&self.inner.peers)
            .drain()
            .filter_map(|(_, p)| p.pc)
            .collect();
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
