//! The browser transport: `RTCPeerConnection` and `RTCDataChannel` through web-sys, the
//! signaling server over a `WebSocket`.
//!
//! Everything runs on the page's one thread: state lives in `Rc<RefCell<…>>`, browser
//! callbacks push [`TransportEvent`]s into a channel that the driver drains. Callbacks
//! are kept alive by the peer that owns them and unset before that peer is dropped, so
//! no closure is ever called after it is freed.

use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::{Rc, Weak};

use futures_channel::mpsc;
use futures_util::StreamExt;
use js_sys::{Array, Promise, Reflect, Uint8Array};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::{JsFuture, spawn_local};
use web_sys::{
    BinaryType, MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent,
    RtcDataChannelType, RtcIceCandidateInit, RtcIceServer, RtcPeerConnection,
    RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType, RtcSessionDescriptionInit,
    WebSocket,
};

use super::{SendError, Transport, TransportEvent};
use crate::signal::{
    self, ClientMsg, IceServer, PeerId, PeerInfo, PeerKind, ServerMsg, SignalData,
};
use crate::wire::MESSAGE_LEN_MAX;

/// Bytes queued in a data channel above which `send` waits for `bufferedamountlow`.
const BUFFERED_HIGH_BYTES: u32 = 1 << 20;
/// Where `bufferedamountlow` fires.
const BUFFERED_LOW_BYTES: u32 = 256 << 10;
/// ICE candidates held for a peer whose description has not arrived yet.
const EARLY_CANDIDATES_MAX: usize = 64;

/// A browser callback kept alive as long as its owner.
type Callback = Closure<dyn FnMut(JsValue)>;

fn callback(f: impl FnMut(JsValue) + 'static) -> Callback {
    Closure::wrap(Box::new(f) as Box<dyn FnMut(JsValue)>)
}

struct Peer {
    pc: Option<RtcPeerConnection>,
    dc: Option<RtcDataChannel>,
    remote_set: bool,
    early: Vec<RtcIceCandidateInit>,
    /// The callbacks installed on `pc` and `dc`.
    callbacks: Vec<Callback>,
}

impl Peer {
    fn empty() -> Self {
        Peer {
            pc: None,
            dc: None,
            remote_set: false,
            early: Vec::new(),
            callbacks: Vec::new(),
        }
    }

    /// Unsets every handler, then closes: no callback fires after this.
    fn close(self) {
        if let Some(dc) = &self.dc {
            dc.set_onopen(None);
            dc.set_onmessage(None);
            dc.set_onclose(None);
            dc.set_onbufferedamountlow(None);
            dc.close();
        }
        if let Some(pc) = &self.pc {
            pc.set_onicecandidate(None);
            pc.set_onconnectionstatechange(None);
            pc.set_ondatachannel(None);
            pc.close();
        }
    }
}

struct Inner {
    ws: WebSocket,
    name: String,
    events: mpsc::UnboundedSender<TransportEvent>,
    peers: RefCell<HashMap<PeerId, Peer>>,
    ice_servers: RefCell<Vec<IceServer>>,
    /// The socket's own callbacks.
    ws_callbacks: RefCell<Vec<Callback>>,
}

/// A browser mesh endpoint.
pub struct WebTransport {
    inner: Rc<Inner>,
    events: mpsc::UnboundedReceiver<TransportEvent>,
}

impl WebTransport {
    /// Opens the signaling socket at `url` (e.g. `ws://host/ws`) and joins `room`.
    pub fn connect(url: &str, room: &str, name: &str) -> Result<Self, JsValue> {
        let ws = WebSocket::new(url)?;
        ws.set_binary_type(BinaryType::Arraybuffer);
        let (tx, rx) = mpsc::unbounded();
        let inner = Rc::new(Inner {
            ws: ws.clone(),
            name: name.to_string(),
            events: tx,
            peers: RefCell::new(HashMap::new()),
            ice_servers: RefCell::new(Vec::new()),
            ws_callbacks: RefCell::new(Vec::new()),
        });
        let join = signal::encode_client(ClientMsg::Join {
            room: room.to_string(),
            kind: PeerKind::Browser,
            name: name.to_string(),
        });
        let on_open = {
            let ws = ws.clone();
            callback(move |_| {
                let _ = ws.send_with_str(&join);
            })
        };
        let on_message = {
            let weak = Rc::downgrade(&inner);
            callback(move |ev: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                let Some(text) = ev
                    .dyn_ref::<MessageEvent>()
                    .and_then(|m| m.data().as_string())
                else {
                    return;
                };
                match signal::decode_server(&text) {
                    Ok(msg) => inner.on_server_msg(msg),
                    Err(e) => {
                        web_sys::console::warn_1(&format!("signaling frame dropped: {e}").into())
                    }
                }
            })
        };
        let on_close = {
            let weak = Rc::downgrade(&inner);
            callback(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.emit(TransportEvent::SignalingClosed);
                }
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        inner
            .ws_callbacks
            .borrow_mut()
            .extend([on_open, on_message, on_close]);
        Ok(WebTransport { inner, events: rx })
    }

    /// A function that closes every connection at once, synchronously: for `pagehide`,
    /// after which no promise runs again.
    pub fn closer(&self) -> impl FnMut() + 'static {
        let inner = self.inner.clone();
        move || inner.close_all()
    }
}

impl Inner {
    fn emit(&self, ev: TransportEvent) {
        let _ = self.events.unbounded_send(ev);
    }

    fn signal(&self, to: &PeerId, data: SignalData) {
        let frame = signal::encode_client(ClientMsg::Signal {
            to: to.clone(),
            data,
        });
        let _ = self.ws.send_with_str(&frame);
    }

    fn on_server_msg(self: &Rc<Self>, msg: ServerMsg) {
        match msg {
            ServerMsg::Welcome {
                id,
                peers,
                ice_servers,
                ..
            } => {
                *self.ice_servers.borrow_mut() = ice_servers;
                let me = PeerInfo {
                    id,
                    kind: PeerKind::Browser,
                    name: self.name.clone(),
                };
                self.emit(TransportEvent::Joined {
                    me,
                    peers: peers.clone(),
                });
                // The newcomer offers to everyone already there.
                for p in peers {
                    let this = self.clone();
                    spawn_local(async move {
                        if let Err(e) = this.offer(&p.id).await {
                            web_sys::console::warn_2(&"offer failed".into(), &e);
                            this.drop_peer(&p.id);
                            this.emit(TransportEvent::ChannelClosed(p.id));
                        }
                    });
                }
            }
            ServerMsg::PeerJoined { peer } => self.emit(TransportEvent::PeerJoined(peer)),
            ServerMsg::PeerLeft { id } => {
                self.drop_peer(&id);
                self.emit(TransportEvent::PeerLeft(id));
            }
            ServerMsg::Signal { from, data } => {
                let this = self.clone();
                spawn_local(async move {
                    if let Err(e) = this.on_signal(&from, data).await {
                        web_sys::console::warn_2(&"negotiation failed".into(), &e);
                        this.drop_peer(&from);
                        this.emit(TransportEvent::ChannelClosed(from));
                    }
                });
            }
            ServerMsg::Error { code, message } => {
                self.emit(TransportEvent::SignalingError { code, message })
            }
        }
    }

    fn new_pc(self: &Rc<Self>, peer: &PeerId) -> Result<RtcPeerConnection, JsValue> {
        let config = RtcConfiguration::new();
        let servers = Array::new();
        for s in self.ice_servers.borrow().iter() {
            let server = RtcIceServer::new();
            let urls = Array::new();
            for u in &s.urls {
                urls.push(&JsValue::from_str(u));
            }
            server.set_urls(&urls);
            if let Some(u) = &s.username {
                server.set_username(u);
            }
            if let Some(c) = &s.credential {
                server.set_credential(c);
            }
            servers.push(&server);
        }
        config.set_ice_servers(&servers);
        let pc = RtcPeerConnection::new_with_configuration(&config)?;

        let weak = Rc::downgrade(self);
        let on_candidate = {
            let (weak, peer) = (weak.clone(), peer.clone());
            callback(move |ev: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                let Some(c) = ev
                    .dyn_ref::<RtcPeerConnectionIceEvent>()
                    .and_then(|e| e.candidate())
                else {
                    return;
                };
                if c.candidate().is_empty() {
                    return;
                }
                inner.signal(
                    &peer,
                    SignalData::Ice {
                        candidate: c.candidate(),
                        sdp_mid: c.sdp_mid(),
                        sdp_mline_index: c.sdp_m_line_index(),
                    },
                );
            })
        };
        let on_state = {
            let (weak, peer, pc) = (weak.clone(), peer.clone(), pc.clone());
            callback(move |_| {
                let Some(inner) = weak.upgrade() else { return };
                if matches!(
                    pc.connection_state(),
                    RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed
                ) {
                    inner.emit(TransportEvent::ChannelClosed(peer.clone()));
                }
            })
        };
        let on_channel = {
            let (weak, peer) = (weak.clone(), peer.clone());
            callback(move |ev: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                if let Some(e) = ev.dyn_ref::<RtcDataChannelEvent>() {
                    inner.attach_channel(&peer, e.channel());
                }
            })
        };
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));

        let mut peers = self.peers.borrow_mut();
        let entry = peers.entry(peer.clone()).or_insert_with(Peer::empty);
        if let Some(old) = entry.pc.replace(pc.clone()) {
            old.set_onicecandidate(None);
            old.set_onconnectionstatechange(None);
            old.set_ondatachannel(None);
            old.close();
        }
        entry.remote_set = false;
        entry.callbacks.extend([on_candidate, on_state, on_channel]);
        Ok(pc)
    }

    /// Wires a data channel's events to the event queue.
    fn attach_channel(self: &Rc<Self>, peer: &PeerId, dc: RtcDataChannel) {
        dc.set_binary_type(RtcDataChannelType::Arraybuffer);
        dc.set_buffered_amount_low_threshold(BUFFERED_LOW_BYTES);
        let weak: Weak<Inner> = Rc::downgrade(self);
        let on_open = {
            let (weak, peer) = (weak.clone(), peer.clone());
            callback(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.emit(TransportEvent::ChannelOpen(peer.clone()));
                }
            })
        };
        let on_message = {
            let (weak, peer) = (weak.clone(), peer.clone());
            callback(move |ev: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                let Some(data) = ev.dyn_ref::<MessageEvent>().map(|m| m.data()) else {
                    return;
                };
                if data.is_instance_of::<js_sys::ArrayBuffer>() {
                    let bytes = Uint8Array::new(&data).to_vec();
                    inner.emit(TransportEvent::Message(peer.clone(), bytes));
                }
            })
        };
        let on_close = {
            let (weak, peer) = (weak.clone(), peer.clone());
            callback(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.emit(TransportEvent::ChannelClosed(peer.clone()));
                }
            })
        };
        dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let open = dc.ready_state() == web_sys::RtcDataChannelState::Open;
        {
            let mut peers = self.peers.borrow_mut();
            let entry = peers.entry(peer.clone()).or_insert_with(Peer::empty);
            entry.dc = Some(dc);
            entry.callbacks.extend([on_open, on_message, on_close]);
        }
        // An answerer's channel can arrive already open; its open event then never fires.
        if open {
            self.emit(TransportEvent::ChannelOpen(peer.clone()));
        }
    }

    async fn offer(self: &Rc<Self>, peer: &PeerId) -> Result<(), JsValue> {
        let pc = self.new_pc(peer)?;
        let dc = pc.create_data_channel("meshwork");
        self.attach_channel(peer, dc);
        let offer = JsFuture::from(pc.create_offer()).await?;
        let sdp = sdp_of(&offer)?;
        let desc = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        desc.set_sdp(&sdp);
        JsFuture::from(pc.set_local_description(&desc)).await?;
        self.signal(peer, SignalData::Offer { sdp });
        Ok(())
    }

    async fn on_signal(self: &Rc<Self>, from: &PeerId, data: SignalData) -> Result<(), JsValue> {
        match data {
            SignalData::Offer { sdp } => {
                let pc = self.new_pc(from)?;
                let desc = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
                desc.set_sdp(&sdp);
                JsFuture::from(pc.set_remote_description(&desc)).await?;
                self.remote_set(from, &pc).await;
                let answer = JsFuture::from(pc.create_answer()).await?;
                let sdp = sdp_of(&answer)?;
                let desc = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
                desc.set_sdp(&sdp);
                JsFuture::from(pc.set_local_description(&desc)).await?;
                self.signal(from, SignalData::Answer { sdp });
            }
            SignalData::Answer { sdp } => {
                let pc = self.peers.borrow().get(from).and_then(|p| p.pc.clone());
                let Some(pc) = pc else { return Ok(()) };
                let desc = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
                desc.set_sdp(&sdp);
                JsFuture::from(pc.set_remote_description(&desc)).await?;
                self.remote_set(from, &pc).await;
            }
            SignalData::Ice {
                candidate,
                sdp_mid,
                sdp_mline_index,
            } => {
                let init = RtcIceCandidateInit::new(&candidate);
                // webrtc-rs sends an empty mid; the m-line index alone identifies it.
                init.set_sdp_mid(sdp_mid.as_deref().filter(|m| !m.is_empty()));
                init.set_sdp_m_line_index(sdp_mline_index.or(Some(0)));
                let ready = {
                    let mut peers = self.peers.borrow_mut();
                    let entry = peers.entry(from.clone()).or_insert_with(Peer::empty);
                    match (&entry.pc, entry.remote_set) {
                        (Some(pc), true) => Some(pc.clone()),
                        _ => {
                            if entry.early.len() < EARLY_CANDIDATES_MAX {
                                entry.early.push(init.clone());
                            }
                            None
                        }
                    }
                };
                if let Some(pc) = ready {
                    let p = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
                    if let Err(e) = JsFuture::from(p).await {
                        web_sys::console::debug_2(&"candidate refused".into(), &e);
                    }
                }
            }
        }
        Ok(())
    }

    async fn remote_set(&self, peer: &PeerId, pc: &RtcPeerConnection) {
        let early = match self.peers.borrow_mut().get_mut(peer) {
            Some(entry) => {
                entry.remote_set = true;
                std::mem::take(&mut entry.early)
            }
            None => Vec::new(),
        };
        for c in early {
            let p = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&c));
            if let Err(e) = JsFuture::from(p).await {
                web_sys::console::debug_2(&"early candidate refused".into(), &e);
            }
        }
    }

    fn drop_peer(&self, peer: &PeerId) {
        let removed = self.peers.borrow_mut().remove(peer);
        if let Some(p) = removed {
            p.close();
        }
    }

    fn close_all(&self) {
        let peers: Vec<Peer> = self.peers.borrow_mut().drain().map(|(_, p)| p).collect();
        for p in peers {
            p.close();
        }
        let _ = self.ws.close();
    }
}

fn sdp_of(desc: &JsValue) -> Result<String, JsValue> {
    Reflect::get(desc, &JsValue::from_str("sdp"))?
        .as_string()
        .ok_or_else(|| JsValue::from_str("session description without sdp"))
}

/// Resolves when the channel's buffered amount drops below its low threshold.
async fn buffered_low(dc: &RtcDataChannel) {
    let promise = Promise::new(&mut |resolve, _reject| {
        dc.set_onbufferedamountlow(Some(&resolve));
    });
    let _ = JsFuture::from(promise).await;
    dc.set_onbufferedamountlow(None);
}

impl Transport for WebTransport {
    async fn next_event(&mut self) -> Option<TransportEvent> {
        self.events.next().await
    }

    async fn send(&self, to: &PeerId, bytes: Vec<u8>) -> Result<(), SendError> {
        if bytes.len() > MESSAGE_LEN_MAX {
            return Err(SendError::TooBig(bytes.len()));
        }
        let dc = self.inner.peers.borrow().get(to).and_then(|p| p.dc.clone());
        let dc = dc.ok_or_else(|| SendError::NoChannel(to.clone()))?;
        if dc.buffered_amount() > BUFFERED_HIGH_BYTES {
            buffered_low(&dc).await;
        }
        dc.send_with_u8_array(&bytes)
            .map_err(|e| SendError::Channel(format!("{e:?}")))
    }

    fn close_peer(&self, peer: &PeerId) {
        self.inner.drop_peer(peer);
    }

    async fn shutdown(&self) {
        self.inner.close_all();
    }
}
