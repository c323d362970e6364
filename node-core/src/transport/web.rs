//! The browser transport: `RTCPeerConnection` and `RTCDataChannel` through web-sys, the
//! signaling server over a `WebSocket`.
//!
//! Everything runs on the page's one thread: state lives in `Rc<RefCell<…>>`. Every
//! negotiation decision is the policy's ([`super::negotiation`]); this file carries out
//! its steps and reports back. Browser callbacks feed the policy or push
//! [`TransportEvent`]s into a channel that the driver drains. Callbacks are kept alive by
//! the connection that owns them and unset before it is closed, so no closure is ever
//! called after it is freed.

use std::cell::{Cell, RefCell};
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
    RtcDataChannelType, RtcIceCandidateInit, RtcIceConnectionState, RtcIceGatheringState,
    RtcIceServer, RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType,
    RtcSessionDescriptionInit, WebSocket,
};

use super::negotiation::{Candidate, ConnId, Negotiation, NegotiationConfig, Step};
use super::pace::{Pacer, reconnect_delay_ms};
use super::{SendError, Transport, TransportEvent};
use crate::signal::{
    self, ClientMsg, ErrorCode, IceServer, PeerId, PeerKind, ServerMsg, SignalData,
};
use crate::wire::MESSAGE_LEN_MAX;

/// Bytes queued in a data channel above which `send` waits for `bufferedamountlow`.
const BUFFERED_HIGH_BYTES: u32 = 1 << 20;
/// Where `bufferedamountlow` fires.
const BUFFERED_LOW_BYTES: u32 = 256 << 10;

/// The page's monotonic clock in whole milliseconds.
fn now_ms() -> u64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or_else(js_sys::Date::now, |p| p.now()) as u64
}

/// A browser callback kept alive as long as its owner.
type Callback = Closure<dyn FnMut(JsValue)>;

fn callback(f: impl FnMut(JsValue) + 'static) -> Callback {
    Closure::wrap(Box::new(f) as Box<dyn FnMut(JsValue)>)
}

/// One connection attempt the negotiation policy asked for.
struct Conn {
    id: ConnId,
    pc: RtcPeerConnection,
    dc: Option<RtcDataChannel>,
    /// The callbacks installed on `pc` and `dc`.
    callbacks: Vec<Callback>,
}

impl Conn {
    /// Unsets every handler, then closes: no callback fires after this.
    fn close(self) {
        if let Some(dc) = &self.dc {
            unset_channel(dc);
            dc.close();
        }
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.set_ondatachannel(None);
        self.pc.close();
        // A close can be decided inside one of these callbacks (the connection failed):
        // free them only once it has returned.
        let callbacks = self.callbacks;
        spawn_local(async move { drop(callbacks) });
    }
}

fn unset_channel(dc: &RtcDataChannel) {
    dc.set_onopen(None);
    dc.set_onmessage(None);
    dc.set_onclose(None);
    dc.set_onbufferedamountlow(None);
}

struct Inner {
    /// Where and as whom this node joins.
    url: String,
    room: String,
    name: String,
    presenter_key: Option<String>,
    /// The current signaling socket (a new one after each reconnection).
    ws: RefCell<WebSocket>,
    events: mpsc::UnboundedSender<TransportEvent>,
    /// The negotiation policy. Borrowed only to feed one input and drain its steps (see
    /// [`Inner::input`]), never across an await.
    policy: RefCell<Negotiation>,
    /// Each peer's current connection, as the policy's steps left it.
    conns: RefCell<HashMap<PeerId, Conn>>,
    ice_servers: RefCell<Vec<IceServer>>,
    /// The current socket's callbacks.
    ws_callbacks: RefCell<Vec<Callback>>,
    /// Frames to the server, at its pace (a fresh pacer for each socket).
    pacer: RefCell<Pacer>,
    /// When the pacer's timer is set for (ms on the page's clock), if it is.
    timer_at: Cell<Option<u64>>,
    /// The last resume token, also kept in the tab's session storage so that a reload
    /// comes back under the same id. A secret: never logged.
    resume_token: RefCell<Option<String>>,
    /// Whether this page has been welcomed at all, and on the current socket.
    welcomed_ever: Cell<bool>,
    welcomed_now: Cell<bool>,
    /// The server has been told gone (SignalingClosed reported) and not back yet.
    away: Cell<bool>,
    /// Reconnection attempts since the last welcome.
    attempt: Cell<u32>,
    /// No more reconnecting: shut down, or the server refused our token for good.
    stopped: Cell<bool>,
    /// Where new data channels go instead of staying on this page (see
    /// [`WebTransport::host_channels`]).
    host: RefCell<Option<ChannelHost>>,
}

/// Takes a new data channel elsewhere (to the node's worker): given the peer, the
/// attempt's number and the channel, moves it and says whether it did.
pub type ChannelHost = Box<dyn Fn(&PeerId, u64, &RtcDataChannel) -> bool>;

/// A browser mesh endpoint.
pub struct WebTransport {
    inner: Rc<Inner>,
    events: mpsc::UnboundedReceiver<TransportEvent>,
}

impl WebTransport {
    /// Opens the signaling socket at `url` (e.g. `ws://host/ws`) and joins `room`, with
    /// the server's presenter key if the page was given one.
    pub fn connect(
        url: &str,
        room: &str,
        name: &str,
        presenter_key: Option<String>,
    ) -> Result<Self, JsValue> {
        let (tx, rx) = mpsc::unbounded();
        let kind = PeerKind::Browser;
        let ws = WebSocket::new(url)?;
        let inner = Rc::new(Inner {
            url: url.to_string(),
            room: room.to_string(),
            name: name.to_string(),
            presenter_key,
            ws: RefCell::new(ws),
            events: tx,
            policy: RefCell::new(Negotiation::new(
                NegotiationConfig::default(),
                kind,
                name.to_string(),
            )),
            conns: RefCell::new(HashMap::new()),
            ice_servers: RefCell::new(Vec::new()),
            ws_callbacks: RefCell::new(Vec::new()),
            pacer: RefCell::new(Pacer::new(now_ms(), jitter_seed())),
            timer_at: Cell::new(None),
            resume_token: RefCell::new(stored_token(room)),
            welcomed_ever: Cell::new(false),
            welcomed_now: Cell::new(false),
            away: Cell::new(false),
            attempt: Cell::new(0),
            stopped: Cell::new(false),
            host: RefCell::new(None),
        });
        inner.serve_socket();
        Ok(WebTransport { inner, events: rx })
    }

    /// The transport and, apart, the stream of its events: for a page that reads the
    /// events in one task while it sends in another. The transport's own
    /// [`Transport::next_event`] then ends at once.
    pub fn into_parts(self) -> (WebTransport, mpsc::UnboundedReceiver<TransportEvent>) {
        let (_, none) = mpsc::unbounded();
        let events = self.events;
        (
            WebTransport {
                inner: self.inner,
                events: none,
            },
            events,
        )
    }

    /// From now on each new data channel is offered to `host` first. A channel it takes
    /// lives where it went: messages are read and sent there, and whoever holds it
    /// reports its opening and closing with [`WebTransport::moved_channel`], so that the
    /// policy here sees them as it sees its own channels'. A channel it does not take
    /// stays here.
    pub fn host_channels(&self, host: ChannelHost) {
        *self.inner.host.borrow_mut() = Some(host);
    }

    /// The moved channel of attempt `conn` (its [`ConnId::number`]) to `peer` opened, or
    /// closed. Ignored if that attempt is no longer held.
    pub fn moved_channel(&self, peer: &PeerId, conn: u64, open: bool) {
        let inner = &self.inner;
        let held = inner
            .conns
            .borrow()
            .get(peer)
            .filter(|c| c.id.number() == conn)
            .map(|c| c.id);
        let Some(conn) = held else { return };
        if open {
            inner.run(inner.input(|n| n.channel_open(peer, conn)));
            inner.report_path(peer, conn);
        } else {
            inner.closed(peer, conn);
        }
    }

    /// A function that closes every connection at once, synchronously: for `pagehide`,
    /// after which no promise runs again.
    pub fn closer(&self) -> impl FnMut() + 'static {
        let inner = self.inner.clone();
        move || inner.close_all()
    }
}

/// The candidate kinds (`host`, `srflx`, `prflx`, `relay`) of the selected pair in an
/// `RTCStatsReport`: the pair the transport names (Chromium), else the one marked
/// selected (Firefox), else the nominated pair that succeeded.
fn selected_path(report: &JsValue) -> Option<(String, String)> {
    let get = |v: &JsValue, key: &str| Reflect::get(v, &JsValue::from_str(key)).ok();
    let text = |v: &JsValue, key: &str| get(v, key).and_then(|x| x.as_string());
    let yes = |v: &JsValue, key: &str| get(v, key).and_then(|x| x.as_bool()) == Some(true);
    // The report is maplike: iterating it gives [id, stats] entries.
    let stats: Vec<JsValue> = js_sys::try_iter(report)
        .ok()??
        .filter_map(Result::ok)
        .map(|entry| Array::from(&entry).get(1))
        .collect();
    let of_type = |t: &'static str| {
        stats
            .iter()
            .filter(move |s| text(s, "type").as_deref() == Some(t))
    };
    let by_id = |id: Option<String>| {
        let id = id?;
        stats
            .iter()
            .find(|s| text(s, "id").as_deref() == Some(id.as_str()))
    };
    let pair = of_type("transport")
        .find_map(|t| by_id(text(t, "selectedCandidatePairId")))
        .or_else(|| of_type("candidate-pair").find(|p| yes(p, "selected")))
        .or_else(|| {
            of_type("candidate-pair")
                .find(|p| yes(p, "nominated") && text(p, "state").as_deref() == Some("succeeded"))
        })?;
    let kind = |key: &str| text(by_id(text(pair, key))?, "candidateType");
    Some((kind("localCandidateId")?, kind("remoteCandidateId")?))
}

/// A normalised candidate as the browser takes it.
fn candidate_init(c: &Candidate) -> RtcIceCandidateInit {
    let init = RtcIceCandidateInit::new(&c.candidate);
    init.set_sdp_mid(c.sdp_mid.as_deref());
    init.set_sdp_m_line_index(Some(c.sdp_mline_index));
    init
}

/// Where a tab keeps its resume token for `room`: the tab's session storage, which a
/// reload keeps and a new tab does not.
fn storage_key(room: &str) -> String {
    format!("meshwork.resume.{room}")
}

fn session_storage() -> Option<web_sys::Storage> {
    web_sys::window()?.session_storage().ok()?
}

fn stored_token(room: &str) -> Option<String> {
    session_storage()?.get_item(&storage_key(room)).ok()?
}

fn jitter_seed() -> u64 {
    (js_sys::Math::random() * 1e15) as u64 | 1
}

impl Inner {
    /// Installs the current socket's callbacks and queues its first frame: a resume
    /// with the last token, once there is one, or else a join.
    fn serve_socket(self: &Rc<Self>) {
        let ws = self.ws.borrow().clone();
        ws.set_binary_type(BinaryType::Arraybuffer);
        let first = ClientMsg::enter(
            &self.room,
            self.resume_token.borrow().clone(),
            PeerKind::Browser,
            &self.name,
            self.presenter_key.clone(),
            self.policy.borrow().colour(),
        );
        {
            let mut pacer = Pacer::new(now_ms(), jitter_seed());
            pacer.push(signal::encode_client(first));
            *self.pacer.borrow_mut() = pacer;
        }
        self.welcomed_now.set(false);
        let on_open = {
            let weak = Rc::downgrade(self);
            callback(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.flush();
                }
            })
        };
        let on_message = {
            let weak = Rc::downgrade(self);
            let socket = ws.clone();
            callback(move |ev: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                let Some(text) = ev
                    .dyn_ref::<MessageEvent>()
                    .and_then(|m| m.data().as_string())
                else {
                    return;
                };
                // The policy sees frames in the order they arrived; only the platform's
                // asynchronous calls run later.
                match signal::decode_server(&text) {
                    Ok(msg) => inner.on_server(&socket, msg),
                    Err(e) => {
                        web_sys::console::warn_1(&format!("signaling frame dropped: {e}").into())
                    }
                }
            })
        };
        let on_close = {
            let weak = Rc::downgrade(self);
            callback(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.socket_closed();
                }
            })
        };
        ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let old = std::mem::replace(
            &mut *self.ws_callbacks.borrow_mut(),
            vec![on_open, on_message, on_close],
        );
        // The old socket's callbacks may be the one running now: free them later.
        spawn_local(async move { drop(old) });
    }

    /// A frame from the server on `socket` (the current one).
    fn on_server(self: &Rc<Self>, socket: &WebSocket, msg: ServerMsg) {
        match &msg {
            ServerMsg::ResumeToken { token, .. } => {
                *self.resume_token.borrow_mut() = Some(token.clone());
                if let Some(storage) = session_storage() {
                    let _ = storage.set_item(&storage_key(&self.room), token);
                }
                return;
            }
            ServerMsg::Welcome { .. } => {
                self.welcomed_ever.set(true);
                self.welcomed_now.set(true);
                self.away.set(false);
                self.attempt.set(0);
            }
            _ => {}
        }
        self.pace(&msg);
        let refused_token = matches!(
            msg,
            ServerMsg::Error {
                code: ErrorCode::BadToken | ErrorCode::TokenExpired | ErrorCode::IdInUse,
                ..
            }
        );
        let code = match &msg {
            ServerMsg::Error { code, .. } => Some(*code),
            _ => None,
        };
        self.run(self.input(|n| n.handle_server(msg)));
        if code == Some(ErrorCode::ServerAway) {
            // The room is away for now (a presenter's demonstration): try again after
            // the backoff, which finds it back soon after it is, early or on time.
            let _ = socket.close();
            return;
        }
        if !refused_token {
            return;
        }
        if code == Some(ErrorCode::IdInUse) {
            // Our old connection is not gone from the server's view yet (a reload
            // racing its own goodbye): a new socket after the backoff tries again.
            let _ = socket.close();
        } else if !self.welcomed_ever.get() {
            // A token left by an earlier page that the server no longer takes: this
            // page has nothing in the mesh yet, so it joins afresh.
            *self.resume_token.borrow_mut() = None;
            if let Some(storage) = session_storage() {
                let _ = storage.remove_item(&storage_key(&self.room));
            }
            self.attempt.set(0);
            let _ = socket.close();
        } else {
            // This node has an identity in the mesh; a new one would be a second.
            self.stopped.set(true);
            web_sys::console::error_1(
                &"the signaling server refused this tab's resume token: the mesh carries on, \
                  but newcomers cannot reach this tab; reload to join afresh"
                    .into(),
            );
            if let Some(storage) = session_storage() {
                let _ = storage.remove_item(&storage_key(&self.room));
            }
            let _ = socket.close();
        }
    }

    /// The current socket closed: tell the node once, then open another after a
    /// backoff with jitter.
    fn socket_closed(self: &Rc<Self>) {
        if (self.welcomed_now.get() || !self.away.get()) && self.welcomed_ever.get() {
            self.away.set(true);
            self.run(self.input(Negotiation::signaling_closed));
        }
        self.welcomed_now.set(false);
        if self.stopped.get() {
            return;
        }
        let attempt = self.attempt.get();
        self.attempt.set(attempt.saturating_add(1));
        let delay = reconnect_delay_ms(attempt, js_sys::Math::random());
        let weak = Rc::downgrade(self);
        let reopen = Closure::once_into_js(move || {
            let Some(inner) = weak.upgrade() else { return };
            if inner.stopped.get() {
                return;
            }
            inner.open_socket();
        });
        if let Some(window) = web_sys::window() {
            let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                reopen.unchecked_ref(),
                i32::try_from(delay).unwrap_or(i32::MAX),
            );
        }
    }

    /// Feeds one input to the policy and takes the steps it caused.
    fn input(&self, f: impl FnOnce(&mut Negotiation)) -> Vec<Step> {
        let mut n = self.policy.borrow_mut();
        f(&mut n);
        std::iter::from_fn(|| n.poll_step()).collect()
    }

    /// Carries out steps in order: at once where the browser's API is synchronous, in
    /// a spawned future (which reports back to the policy) where it returns a promise.
    fn run(self: &Rc<Self>, steps: Vec<Step>) {
        for step in steps {
            self.step(step);
        }
    }

    fn step(self: &Rc<Self>, step: Step) {
        match step {
            Step::SetIceServers(servers) => *self.ice_servers.borrow_mut() = servers,
            Step::Offer { peer, conn } => {
                let this = self.clone();
                spawn_local(async move {
                    let next = match this.offer(&peer, conn).await {
                        Ok(sdp) => this.input(|n| n.local_description(&peer, conn, sdp)),
                        Err(e) => {
                            web_sys::console::warn_2(&"offer failed".into(), &e);
                            this.input(|n| n.negotiation_failed(&peer, conn))
                        }
                    };
                    this.run(next);
                });
            }
            Step::Answer { peer, conn, sdp } => {
                let this = self.clone();
                spawn_local(async move {
                    if let Err(e) = this.answer(&peer, conn, sdp).await {
                        web_sys::console::warn_2(&"answering an offer failed".into(), &e);
                        this.run(this.input(|n| n.negotiation_failed(&peer, conn)));
                    }
                });
            }
            Step::ApplyAnswer { peer, conn, sdp } => {
                let this = self.clone();
                spawn_local(async move {
                    let next = match this.apply_answer(&peer, conn, &sdp).await {
                        Ok(()) => this.input(|n| n.remote_description_set(&peer, conn)),
                        Err(e) => {
                            web_sys::console::warn_2(&"applying the answer failed".into(), &e);
                            this.input(|n| n.negotiation_failed(&peer, conn))
                        }
                    };
                    this.run(next);
                });
            }
            Step::AddCandidate {
                peer,
                conn,
                candidate,
            } => {
                let Some(pc) = self.pc(&peer, conn) else {
                    return;
                };
                let init = candidate_init(&candidate);
                // Called now, so that candidates reach the connection in order.
                let added = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
                spawn_local(async move {
                    if let Err(e) = JsFuture::from(added).await {
                        web_sys::console::debug_2(&"candidate refused".into(), &e);
                    }
                });
            }
            Step::Close { peer, conn } => self.close(&peer, conn),
            Step::Signal { to, data } => self.signal(&to, data),
            Step::Emit(ev) => self.emit(ev),
            Step::Alarm { after_ms, alarm } => {
                let Some(window) = web_sys::window() else {
                    return;
                };
                // Held weakly: an alarm that rings after the transport is gone does nothing.
                let weak = Rc::downgrade(self);
                let ring = Closure::once_into_js(move || {
                    if let Some(inner) = weak.upgrade() {
                        let next = inner.input(|n| n.alarm(alarm));
                        inner.run(next);
                    }
                });
                let delay = i32::try_from(after_ms).unwrap_or(i32::MAX);
                let _ = window.set_timeout_with_callback_and_timeout_and_arguments_0(
                    ring.unchecked_ref(),
                    delay,
                );
            }
        }
    }

    fn emit(&self, ev: TransportEvent) {
        let _ = self.events.unbounded_send(ev);
    }

    fn signal(self: &Rc<Self>, to: &PeerId, data: SignalData) {
        let frame = signal::encode_client(ClientMsg::Signal {
            to: to.clone(),
            data,
        });
        self.send_paced(frame);
    }

    /// Sends a frame to the signaling server once its pace allows.
    fn send_paced(self: &Rc<Self>, frame: String) {
        self.pacer.borrow_mut().push(frame);
        self.flush();
    }

    /// What a server frame tells the pacer: the pace, or a frame to send again.
    fn pace(self: &Rc<Self>, msg: &ServerMsg) {
        match msg {
            ServerMsg::Welcome {
                limits: Some(limits),
                ..
            } => self.pacer.borrow_mut().set_limits(*limits, now_ms()),
            ServerMsg::Error {
                code: ErrorCode::RateLimited,
                frame: Some(frame),
                retry_after_ms,
                ..
            } => {
                self.pacer
                    .borrow_mut()
                    .refused(*frame, *retry_after_ms, now_ms());
                self.flush();
            }
            _ => {}
        }
    }

    /// Sends what the pace allows now, and sets a timer for the rest.
    fn flush(self: &Rc<Self>) {
        let ws = self.ws.borrow().clone();
        if ws.ready_state() != WebSocket::OPEN {
            return;
        }
        let now = now_ms();
        let wake = {
            let mut pacer = self.pacer.borrow_mut();
            while let Some(frame) = pacer.poll(now) {
                let _ = ws.send_with_str(&frame);
            }
            pacer.wake_at(now)
        };
        let Some(wake) = wake else { return };
        if self.timer_at.get().is_some_and(|t| t <= wake) {
            return;
        }
        let Some(window) = web_sys::window() else {
            return;
        };
        let weak = Rc::downgrade(self);
        let fire = Closure::once_into_js(move || {
            if let Some(inner) = weak.upgrade() {
                inner.timer_at.set(None);
                inner.flush();
            }
        });
        let delay = i32::try_from(wake.saturating_sub(now)).unwrap_or(i32::MAX);
        if window
            .set_timeout_with_callback_and_timeout_and_arguments_0(fire.unchecked_ref(), delay)
            .is_ok()
        {
            self.timer_at.set(Some(wake));
        }
    }

    /// Builds attempt `conn`'s connection with its callbacks and holds it as the peer's.
    fn new_pc(self: &Rc<Self>, peer: &PeerId, conn: ConnId) -> Result<RtcPeerConnection, JsValue> {
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
                let Some(e) = ev.dyn_ref::<RtcPeerConnectionIceEvent>() else {
                    return;
                };
                // A null candidate (or an empty one, end-of-candidates) ends gathering;
                // of the attempt held now only (a replaced one's report is not news).
                let Some(c) = e.candidate().filter(|c| !c.candidate().is_empty()) else {
                    if inner.pc(&peer, conn).is_some() {
                        inner.run(inner.input(|n| n.gathering_done(&peer, conn)));
                    }
                    return;
                };
                let candidate = Candidate::new(c.candidate(), c.sdp_mid(), c.sdp_m_line_index());
                inner.run(inner.input(|n| n.local_candidate(&peer, conn, candidate)));
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
                    inner.closed(&peer, conn);
                }
            })
        };
        let on_channel = {
            let (weak, peer) = (weak.clone(), peer.clone());
            callback(move |ev: JsValue| {
                let Some(inner) = weak.upgrade() else { return };
                if let Some(e) = ev.dyn_ref::<RtcDataChannelEvent>() {
                    inner.attach_channel(&peer, conn, e.channel());
                }
            })
        };
        pc.set_onicecandidate(Some(on_candidate.as_ref().unchecked_ref()));
        pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
        pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));

        let new = Conn {
            id: conn,
            pc: pc.clone(),
            dc: None,
            callbacks: vec![on_candidate, on_state, on_channel],
        };
        // Attempts only get newer: an older one still held is closed, and this one is
        // closed at once if a newer one is held.
        let stale = {
            let mut conns = self.conns.borrow_mut();
            match conns.get(peer) {
                Some(held) if held.id > conn => Some(new),
                _ => conns.insert(peer.clone(), new),
            }
        };
        if let Some(stale) = stale {
            stale.close();
        }
        Ok(pc)
    }

    /// The connection of attempt `conn`, if it is still held.
    fn pc(&self, peer: &PeerId, conn: ConnId) -> Option<RtcPeerConnection> {
        self.conns
            .borrow()
            .get(peer)
            .filter(|c| c.id == conn)
            .map(|c| c.pc.clone())
    }

    /// Wires attempt `conn`'s data channel to the event queue and the policy, or moves it
    /// to the channels' host if there is one and it takes it.
    fn attach_channel(self: &Rc<Self>, peer: &PeerId, conn: ConnId, dc: RtcDataChannel) {
        if self.pc(peer, conn).is_some()
            && let Some(host) = self.host.borrow().as_ref()
            && host(peer, conn.number(), &dc)
        {
            // Its host reports its opening and closing (`moved_channel`).
            return;
        }
        dc.set_binary_type(RtcDataChannelType::Arraybuffer);
        dc.set_buffered_amount_low_threshold(BUFFERED_LOW_BYTES);
        let weak: Weak<Inner> = Rc::downgrade(self);
        let on_open = {
            let (weak, peer) = (weak.clone(), peer.clone());
            callback(move |_| {
                if let Some(inner) = weak.upgrade() {
                    inner.run(inner.input(|n| n.channel_open(&peer, conn)));
                    inner.report_path(&peer, conn);
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
                    inner.closed(&peer, conn);
                }
            })
        };
        dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
        dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
        let open = dc.ready_state() == web_sys::RtcDataChannelState::Open;
        let held = {
            let mut conns = self.conns.borrow_mut();
            match conns.get_mut(peer) {
                Some(c) if c.id == conn => {
                    c.dc = Some(dc.clone());
                    c.callbacks.extend([on_open, on_message, on_close]);
                    true
                }
                _ => false,
            }
        };
        if !held {
            // The attempt was closed meanwhile.
            unset_channel(&dc);
            dc.close();
            return;
        }
        // An answerer's channel can arrive already open; its open event then never fires.
        if open {
            self.run(self.input(|n| n.channel_open(peer, conn)));
            self.report_path(peer, conn);
        }
    }

    /// Attempt `conn`'s channel or connection closed or failed. A browser may report that
    /// before the end of its candidate gathering, so a gathering that is complete, or an
    /// ICE that failed, is reported first: with no local candidate the policy then says
    /// why it failed.
    fn closed(self: &Rc<Self>, peer: &PeerId, conn: ConnId) {
        if self.pc(peer, conn).is_some_and(|pc| {
            pc.ice_gathering_state() == RtcIceGatheringState::Complete
                || pc.ice_connection_state() == RtcIceConnectionState::Failed
        }) {
            self.run(self.input(|n| n.gathering_done(peer, conn)));
        }
        self.run(self.input(|n| n.connection_closed(peer, conn)));
    }

    /// Reports, as [`TransportEvent::Path`], the kinds of the candidates ICE selected for
    /// attempt `conn`, read from the connection's statistics once its channel is open.
    fn report_path(self: &Rc<Self>, peer: &PeerId, conn: ConnId) {
        let Some(pc) = self.pc(peer, conn) else {
            return;
        };
        let (weak, peer) = (Rc::downgrade(self), peer.clone());
        spawn_local(async move {
            let Ok(report) = JsFuture::from(pc.get_stats()).await else {
                return;
            };
            let Some((local, remote)) = selected_path(&report) else {
                return;
            };
            // Only for the attempt still held: a replaced or closed one's path is stale.
            if let Some(inner) = weak.upgrade()
                && inner.pc(&peer, conn).is_some()
            {
                inner.emit(TransportEvent::Path {
                    peer,
                    local,
                    remote,
                });
            }
        });
    }

    /// Builds the connection with our data channel and sets our offer: its SDP.
    async fn offer(self: &Rc<Self>, peer: &PeerId, conn: ConnId) -> Result<String, JsValue> {
        let pc = self.new_pc(peer, conn)?;
        let dc = pc.create_data_channel("meshwork");
        self.attach_channel(peer, conn, dc);
        let offer = JsFuture::from(pc.create_offer()).await?;
        let sdp = sdp_of(&offer)?;
        let desc = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        desc.set_sdp(&sdp);
        JsFuture::from(pc.set_local_description(&desc)).await?;
        Ok(sdp)
    }

    /// Builds the connection for the peer's offer, reports the remote description and
    /// sends our answer.
    async fn answer(
        self: &Rc<Self>,
        peer: &PeerId,
        conn: ConnId,
        sdp: String,
    ) -> Result<(), JsValue> {
        let pc = self.new_pc(peer, conn)?;
        let desc = RtcSessionDescriptionInit::new(RtcSdpType::Offer);
        desc.set_sdp(&sdp);
        JsFuture::from(pc.set_remote_description(&desc)).await?;
        self.run(self.input(|n| n.remote_description_set(peer, conn)));
        let answer = JsFuture::from(pc.create_answer()).await?;
        let sdp = sdp_of(&answer)?;
        let desc = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        desc.set_sdp(&sdp);
        JsFuture::from(pc.set_local_description(&desc)).await?;
        self.run(self.input(|n| n.local_description(peer, conn, sdp)));
        Ok(())
    }

    async fn apply_answer(&self, peer: &PeerId, conn: ConnId, sdp: &str) -> Result<(), JsValue> {
        let pc = self
            .pc(peer, conn)
            .ok_or_else(|| JsValue::from_str("the connection of this answer is closed"))?;
        let desc = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        desc.set_sdp(sdp);
        JsFuture::from(pc.set_remote_description(&desc)).await?;
        Ok(())
    }

    /// Forgets attempt `conn` and closes its connection, if it is still held.
    fn close(&self, peer: &PeerId, conn: ConnId) {
        let removed = {
            let mut conns = self.conns.borrow_mut();
            if conns.get(peer).is_some_and(|c| c.id == conn) {
                conns.remove(peer)
            } else {
                None
            }
        };
        if let Some(c) = removed {
            c.close();
        }
    }

    /// Enters the room again under this tab's id ([`Transport::rejoin`]): every
    /// connection closes without a report, and a new socket resumes with the token.
    fn rejoin(self: &Rc<Self>) {
        for step in self.input(Negotiation::restart) {
            if let Step::Close { peer, conn } = step {
                self.close(&peer, conn);
            }
        }
        let old = self.ws.borrow().clone();
        old.set_onopen(None);
        old.set_onmessage(None);
        old.set_onclose(None);
        let _ = old.close();
        self.welcomed_now.set(false);
        self.attempt.set(0);
        // Quietly: no "signaling away" while the server still holds the old socket a moment.
        self.away.set(true);
        self.open_socket();
    }

    /// Opens a new signaling socket in place of the current one and serves it.
    fn open_socket(self: &Rc<Self>) {
        match WebSocket::new(&self.url) {
            Ok(ws) => {
                *self.ws.borrow_mut() = ws;
                self.serve_socket();
            }
            // Not a network failure (those close the socket): give up.
            Err(e) => web_sys::console::error_2(&"cannot open the signaling socket".into(), &e),
        }
    }

    fn close_all(self: &Rc<Self>) {
        // The policy closes every attempt it knows of; all are closed here at once.
        for step in self.input(Negotiation::shutdown) {
            if !matches!(step, Step::Close { .. }) {
                self.step(step);
            }
        }
        let conns: Vec<Conn> = self.conns.borrow_mut().drain().map(|(_, c)| c).collect();
        for c in conns {
            c.close();
        }
        self.stopped.set(true);
        let _ = self.ws.borrow().close();
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
        let dc = self.inner.conns.borrow().get(to).and_then(|c| c.dc.clone());
        let dc = dc.ok_or_else(|| SendError::NoChannel(to.clone()))?;
        if dc.buffered_amount() > BUFFERED_HIGH_BYTES {
            buffered_low(&dc).await;
        }
        dc.send_with_u8_array(&bytes)
            .map_err(|e| SendError::Channel(format!("{e:?}")))
    }

    async fn queued(&self, to: &PeerId) -> usize {
        let dc = self.inner.conns.borrow().get(to).and_then(|c| c.dc.clone());
        dc.map_or(0, |dc| dc.buffered_amount() as usize)
    }

    fn close_peer(&self, peer: &PeerId) {
        self.inner.run(self.inner.input(|n| n.close_peer(peer)));
    }

    fn reconnect(&self, peer: &PeerId) {
        self.inner.run(self.inner.input(|n| n.reconnect(peer)));
    }

    fn take_server_away(&self, secs: u32) {
        let frame = signal::encode_client(ClientMsg::Outage { secs });
        self.inner.send_paced(frame);
    }

    fn revive_room(&self) {
        self.inner
            .send_paced(signal::encode_client(ClientMsg::Revive));
    }

    fn rejoin(&self) {
        self.inner.rejoin();
    }

    async fn shutdown(&self) {
        self.inner.close_all();
    }
}
