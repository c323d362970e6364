//! The node worker: this tab's node (membership, the engine, chunk reassembly) and the
//! feed of its view run here, on a thread of their own, so that heartbeats, timers and
//! the engine never wait behind the page's rendering. The page starts it from
//! `node_loader.js` (a third binary of this crate, `src/bin/node.rs`) and talks to it
//! in [`crate::link`] messages:
//!
//! - the page's transport (peer connections live on the page) reports its events, and
//!   [`RelayTransport`] hands them to the run loop. Where the browser can move a data
//!   channel to a worker (Chromium), the page moves each one here as it is made: the
//!   worker reads and sends on it, and tells the page when it opens and closes (the
//!   page's negotiation policy decides what that means). Elsewhere (Firefox) messages
//!   pass through the page: what the node sends goes back to the page, which puts it
//!   on the data channel and says how much the channel holds;
//! - the page's user and its compute pool send [`PageInput`]s;
//! - the feed's changes go to the page at most once a frame ([`FRAME_MS`]).

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::rc::Rc;

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use js_sys::{Array, Uint8Array};
use node_core::driver::{Page, run_web, sleep_ms, web_now};
use node_core::job::{JobId, TaskId};
use node_core::kernels::Kernel;
use node_core::membership::MembershipConfig;
use node_core::node::{MeshNode, NodeEvent, PageInput};
use node_core::signal::PeerId;
use node_core::transport::{SendError, Transport, TransportEvent};
use node_core::wire::MESSAGE_LEN_MAX;
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast, JsValue};
use web_sys::{
    DedicatedWorkerGlobalScope, MessageEvent, RtcDataChannel, RtcDataChannelState,
    RtcDataChannelType,
};

use crate::feed::{Feed, PageState, ViewOp};
use crate::link::{Payload, ToNode, ToPage, join, split};

/// The feed's changes go to the page at most this often (ms): about once a frame.
pub const FRAME_MS: f64 = 16.0;

/// Messages and bytes (headers and payloads) this side of the link posted and read.
#[derive(Clone, Copy, Debug, Default)]
pub struct LinkCounts {
    pub sent: u64,
    pub sent_bytes: u64,
    pub received: u64,
    pub received_bytes: u64,
}

thread_local! {
    static COUNTS: Cell<LinkCounts> = Cell::new(LinkCounts::default());
}

/// What this side of the link (the page, or the node worker) posted and read so far.
pub fn link_counts() -> LinkCounts {
    COUNTS.with(Cell::get)
}

fn count(sent: bool, bytes: usize) {
    COUNTS.with(|c| {
        let mut n = c.get();
        if sent {
            n.sent += 1;
            n.sent_bytes += bytes as u64;
        } else {
            n.received += 1;
            n.received_bytes += bytes as u64;
        }
        c.set(n);
    });
}

/// Posts a message with its payload beside it (transferred, not copied again), to the
/// page from the worker, or to the worker from the page.
pub fn post<T: Payload + serde::Serialize>(
    to: &impl PostMessage,
    msg: T,
) -> Result<(), wasm_bindgen::JsValue> {
    let (header, payload) = split(msg);
    count(true, header.len() + payload.as_ref().map_or(0, Vec::len));
    let header = Uint8Array::from(header.as_slice());
    let parts = Array::of1(&header);
    let transfer = Array::of1(&header.buffer());
    if let Some(p) = payload {
        let p = Uint8Array::from(p.as_slice());
        parts.push(&p);
        transfer.push(&p.buffer());
    }
    to.post(&parts, &transfer)
}

/// Moves data channel `dc` (of attempt `conn` to `peer`) to the node worker; `false` if
/// this browser cannot move data channels (the page keeps it, and relays).
pub fn post_channel(
    worker: &web_sys::Worker,
    peer: &PeerId,
    conn: u64,
    dc: &RtcDataChannel,
) -> bool {
    let (header, _) = split(ToNode::Channel {
        peer: peer.clone(),
        conn,
    });
    count(true, header.len());
    let header = Uint8Array::from(header.as_slice());
    let parts = Array::of2(&header, dc);
    let transfer = Array::of2(&header.buffer(), dc);
    worker.post_message_with_transfer(&parts, &transfer).is_ok()
}

/// A message posted with [`post`], read back; `None` (and a warning) if malformed.
pub fn receive<T: Payload + for<'a> serde::Deserialize<'a>>(e: &MessageEvent) -> Option<T> {
    let parts: Array = e.data().dyn_into().ok()?;
    let header = Uint8Array::new(&parts.get(0)).to_vec();
    // A second part is the payload's bytes, or a moved data channel (read by the
    // caller from the event itself).
    let payload = Some(parts.get(1))
        .filter(|p| p.is_instance_of::<Uint8Array>())
        .map(|p| Uint8Array::new(&p).to_vec());
    count(false, header.len() + payload.as_ref().map_or(0, Vec::len));
    match join(&header, payload) {
        Ok(m) => Some(m),
        Err(err) => {
            web_sys::console::warn_1(&format!("dropped a message: {err}").into());
            None
        }
    }
}

/// Whatever can post a message with transfers: the worker's scope, or a `Worker`.
pub trait PostMessage {
    fn post(&self, msg: &Array, transfer: &Array) -> Result<(), wasm_bindgen::JsValue>;
}

impl PostMessage for DedicatedWorkerGlobalScope {
    fn post(&self, msg: &Array, transfer: &Array) -> Result<(), wasm_bindgen::JsValue> {
        self.post_message_with_transfer(msg, transfer)
    }
}

impl PostMessage for web_sys::Worker {
    fn post(&self, msg: &Array, transfer: &Array) -> Result<(), wasm_bindgen::JsValue> {
        self.post_message_with_transfer(msg, transfer)
    }
}

/// What the worker's message handler and the run loop share.
#[derive(Default)]
struct Shared {
    page: Cell<PageState>,
    /// Per peer: bytes posted to the page for its channel and not yet handed to it,
    /// and what the channel held at the page's last word.
    queued: RefCell<BTreeMap<PeerId, (usize, usize)>>,
    /// Data channels moved here, by peer.
    channels: RefCell<BTreeMap<PeerId, Moved>>,
}

/// A data channel the page moved to this worker.
struct Moved {
    /// The connection attempt it belongs to.
    conn: u64,
    dc: RtcDataChannel,
    /// The node has been told it is open (the page's `ChannelOpen` passed): until then
    /// its messages wait, so that none reaches the node before the channel does.
    told_open: bool,
    waiting: Vec<Vec<u8>>,
    /// Its handlers, kept as long as it is.
    _callbacks: [Closure<dyn FnMut(JsValue)>; 3],
}

impl Drop for Moved {
    fn drop(&mut self) {
        self.dc.set_onopen(None);
        self.dc.set_onmessage(None);
        self.dc.set_onclose(None);
    }
}

/// Messages a moved channel may hold for the node before it is told the channel is
/// open; more are dropped (the peer's Hello is the first).
const WAITING_MAX: usize = 64;

/// Takes in a data channel the page moved here: its messages go to the node, its
/// opening and closing to the page.
fn take_channel(
    scope: &DedicatedWorkerGlobalScope,
    shared: &Rc<Shared>,
    events: &UnboundedSender<TransportEvent>,
    peer: PeerId,
    conn: u64,
    dc: RtcDataChannel,
) {
    dc.set_binary_type(RtcDataChannelType::Arraybuffer);
    let tell = {
        let (scope, peer) = (scope.clone(), peer.clone());
        move |open: bool| {
            let msg = ToPage::ChannelState {
                peer: peer.clone(),
                conn,
                open,
            };
            if let Err(e) = post(&scope, msg) {
                web_sys::console::error_1(&e);
            }
        }
    };
    let on_open = {
        let tell = tell.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_| tell(true))
    };
    let on_close = {
        let tell = tell.clone();
        Closure::<dyn FnMut(JsValue)>::new(move |_| tell(false))
    };
    let on_message = {
        let (shared, events, peer) = (Rc::downgrade(shared), events.clone(), peer.clone());
        Closure::<dyn FnMut(JsValue)>::new(move |ev: JsValue| {
            let Some(data) = ev.dyn_ref::<MessageEvent>().map(MessageEvent::data) else {
                return;
            };
            if !data.is_instance_of::<js_sys::ArrayBuffer>() {
                return;
            }
            let bytes = Uint8Array::new(&data).to_vec();
            let Some(shared) = shared.upgrade() else {
                return;
            };
            let mut channels = shared.channels.borrow_mut();
            match channels.get_mut(&peer) {
                Some(m) if m.conn == conn && m.told_open => {
                    let _ = events.unbounded_send(TransportEvent::Message(peer.clone(), bytes));
                }
                Some(m) if m.conn == conn && m.waiting.len() < WAITING_MAX => {
                    m.waiting.push(bytes);
                }
                _ => {}
            }
        })
    };
    dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    let open = dc.ready_state() == RtcDataChannelState::Open;
    let moved = Moved {
        conn,
        dc,
        told_open: false,
        waiting: Vec::new(),
        _callbacks: [on_open, on_message, on_close],
    };
    // A newer attempt replaces an older one (the page closes the older connection).
    let mut channels = shared.channels.borrow_mut();
    if channels.get(&peer).is_some_and(|m| m.conn > conn) {
        moved.dc.close();
        return;
    }
    channels.insert(peer, moved);
    drop(channels);
    // An answerer's channel can arrive already open; its open event then never fires.
    if open {
        tell(true);
    }
}

/// The page's transport reported `ev`: a moved channel's state follows it, and the
/// messages that waited for the node to hear of the channel go after it.
fn relay_event(shared: &Shared, events: &UnboundedSender<TransportEvent>, ev: TransportEvent) {
    let mut after = Vec::new();
    match &ev {
        TransportEvent::ChannelOpen(p) => {
            if let Some(m) = shared.channels.borrow_mut().get_mut(p) {
                m.told_open = true;
                after = std::mem::take(&mut m.waiting);
            }
        }
        TransportEvent::ChannelClosed(p) | TransportEvent::PeerLeft(p) => {
            shared.queued.borrow_mut().remove(p);
            // A channel the node knew open, or one already closed; a newer attempt's
            // channel, moved here before the older one's close was reported, stays
            // (unless the peer left the room).
            let left = matches!(ev, TransportEvent::PeerLeft(_));
            let mut channels = shared.channels.borrow_mut();
            if channels.get(p).is_some_and(|m| {
                left || m.told_open || m.dc.ready_state() == RtcDataChannelState::Closed
            }) && let Some(m) = channels.remove(p)
            {
                m.dc.close();
            }
        }
        _ => {}
    }
    let peer = match &ev {
        TransportEvent::ChannelOpen(p) => Some(p.clone()),
        _ => None,
    };
    let _ = events.unbounded_send(ev);
    if let Some(p) = peer {
        for bytes in after {
            let _ = events.unbounded_send(TransportEvent::Message(p.clone(), bytes));
        }
    }
}

/// The transport as the node worker sees it: events come from the page's transport,
/// and sends go back to the page.
pub struct RelayTransport {
    events: UnboundedReceiver<TransportEvent>,
    scope: DedicatedWorkerGlobalScope,
    shared: Rc<Shared>,
}

impl RelayTransport {
    fn tell(&self, msg: ToPage) {
        if let Err(e) = post(&self.scope, msg) {
            web_sys::console::error_1(&e);
        }
    }
}

impl Transport for RelayTransport {
    async fn next_event(&mut self) -> Option<TransportEvent> {
        self.events.next().await
    }

    async fn send(&self, to: &PeerId, bytes: Vec<u8>) -> Result<(), SendError> {
        if bytes.len() > MESSAGE_LEN_MAX {
            return Err(SendError::TooBig(bytes.len()));
        }
        let moved = self
            .shared
            .channels
            .borrow()
            .get(to)
            .filter(|m| m.told_open)
            .map(|m| m.dc.clone());
        if let Some(dc) = moved {
            return dc
                .send_with_u8_array(&bytes)
                .map_err(|e| SendError::Channel(format!("{e:?}")));
        }
        self.shared
            .queued
            .borrow_mut()
            .entry(to.clone())
            .or_default()
            .0 += bytes.len();
        self.tell(ToPage::Send {
            to: to.clone(),
            bytes,
        });
        Ok(())
    }

    async fn queued(&self, to: &PeerId) -> usize {
        if let Some(m) = self.shared.channels.borrow().get(to) {
            return m.dc.buffered_amount() as usize;
        }
        self.shared
            .queued
            .borrow()
            .get(to)
            .map_or(0, |(posted, held)| posted + held)
    }

    fn close_peer(&self, peer: &PeerId) {
        self.shared.queued.borrow_mut().remove(peer);
        if let Some(m) = self.shared.channels.borrow_mut().remove(peer) {
            m.dc.close();
        }
        self.tell(ToPage::Close(peer.clone()));
    }

    fn reconnect(&self, peer: &PeerId) {
        self.tell(ToPage::Reconnect(peer.clone()));
    }

    fn take_server_away(&self, secs: u32) {
        self.tell(ToPage::ServerAway(secs));
    }

    fn revive_room(&self) {
        self.tell(ToPage::ReviveRoom);
    }

    fn rejoin(&self) {
        // The channels of before go: the page closes their connections, and a closing
        // one's word no longer matches an attempt there.
        self.shared.queued.borrow_mut().clear();
        for (_, m) in std::mem::take(&mut *self.shared.channels.borrow_mut()) {
            m.dc.close();
        }
        self.tell(ToPage::Rejoin);
    }

    async fn shutdown(&self) {
        for (_, m) in std::mem::take(&mut *self.shared.channels.borrow_mut()) {
            m.dc.close();
        }
        self.tell(ToPage::Shutdown);
    }
}

/// The feed's changes waiting for the next post, and when the last one went.
struct Outbox {
    ops: Vec<ViewOp>,
    posted_at: f64,
    timer: bool,
}

/// What the run loop calls back in the worker: tasks go to the page's pool, and the
/// feed's changes to the page.
struct WorkerShell {
    scope: DedicatedWorkerGlobalScope,
    shared: Rc<Shared>,
    feed: Feed,
    to_node: UnboundedSender<PageInput>,
    outbox: Rc<RefCell<Outbox>>,
}

/// Posts what the outbox holds.
fn flush(scope: &DedicatedWorkerGlobalScope, outbox: &RefCell<Outbox>) {
    let ops = {
        let mut o = outbox.borrow_mut();
        o.posted_at = web_now().as_ms_f64();
        o.timer = false;
        std::mem::take(&mut o.ops)
    };
    if !ops.is_empty()
        && let Err(e) = post(scope, ToPage::View(ops))
    {
        web_sys::console::error_1(&e);
    }
}

impl WorkerShell {
    /// Sends the outbox now if a frame has passed since the last post, else once it has.
    fn send_view(&mut self) {
        let ops = self.feed.take();
        let wait = {
            let mut o = self.outbox.borrow_mut();
            o.ops.extend(ops);
            if o.ops.is_empty() || o.timer {
                return;
            }
            FRAME_MS - (web_now().as_ms_f64() - o.posted_at)
        };
        if wait <= 0.0 {
            flush(&self.scope, &self.outbox);
            return;
        }
        self.outbox.borrow_mut().timer = true;
        let (scope, outbox) = (self.scope.clone(), self.outbox.clone());
        wasm_bindgen_futures::spawn_local(async move {
            sleep_ms(wait as i32).await;
            flush(&scope, &outbox);
        });
    }
}

impl Page for WorkerShell {
    fn compute(&mut self, job: JobId, task: TaskId, kernel: Kernel) {
        if let Err(e) = post(&self.scope, ToPage::Compute { job, task, kernel }) {
            web_sys::console::error_1(&e);
        }
    }

    fn on_event(&mut self, e: &NodeEvent) {
        self.feed.on_event(web_now(), e);
    }

    fn on_change(&mut self, node: &MeshNode) {
        self.feed
            .on_change(web_now(), node, &self.shared.page.get());
        for cmd in self.feed.take_commands() {
            let _ = self.to_node.unbounded_send(PageInput::Command(cmd));
        }
        self.send_view();
    }
}

/// Installs the worker's message handler and tells the page it is ready; the node
/// starts at the page's `Start`.
pub fn start() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let shared = Rc::new(Shared::default());
    let (events_tx, events_rx) = mpsc::unbounded::<TransportEvent>();
    let (inputs_tx, inputs_rx) = mpsc::unbounded::<PageInput>();
    let waiting = RefCell::new(Some((events_rx, inputs_rx)));
    let (s, sh) = (scope.clone(), shared.clone());
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let Some(msg) = receive::<ToNode>(&e) else {
            return;
        };
        match msg {
            ToNode::Channel { peer, conn } => {
                let dc = js_sys::Array::from(&e.data()).get(1);
                match dc.dyn_into::<RtcDataChannel>() {
                    Ok(dc) => take_channel(&s, &sh, &events_tx, peer, conn, dc),
                    Err(_) => {
                        web_sys::console::warn_1(&"a moved channel without its channel".into())
                    }
                }
            }
            ToNode::Start {
                name,
                workers,
                hidden,
            } => {
                let Some((events, inputs)) = waiting.borrow_mut().take() else {
                    web_sys::console::warn_1(&"the node was started twice".into());
                    return;
                };
                // A task waits for each compute worker: without it, every worker sat
                // idle for a round trip through the page between two tasks (1 ms a
                // task, measured: a 1,024-tile job cost 1.1 s with nothing to compute).
                let node =
                    MeshNode::new(MembershipConfig::default(), name, workers).with_tasks_ahead();
                if hidden {
                    let _ = inputs_tx.unbounded_send(PageInput::Background(true));
                }
                let transport = RelayTransport {
                    events,
                    scope: s.clone(),
                    shared: sh.clone(),
                };
                let shell = WorkerShell {
                    scope: s.clone(),
                    shared: sh.clone(),
                    feed: Feed::new(),
                    to_node: inputs_tx.clone(),
                    outbox: Rc::new(RefCell::new(Outbox {
                        ops: Vec::new(),
                        posted_at: f64::NEG_INFINITY,
                        timer: false,
                    })),
                };
                wasm_bindgen_futures::spawn_local(run_web(transport, node, inputs, shell));
            }
            ToNode::Transport(ev) => relay_event(&sh, &events_tx, ev),
            ToNode::Input(input) => {
                let _ = inputs_tx.unbounded_send(input);
            }
            ToNode::Page(state) => {
                sh.page.set(state);
                let _ = inputs_tx.unbounded_send(PageInput::Refresh);
            }
            ToNode::Queued {
                peer,
                sent,
                buffered,
            } => {
                let mut q = sh.queued.borrow_mut();
                let e = q.entry(peer).or_default();
                e.0 = e.0.saturating_sub(sent);
                e.1 = buffered;
            }
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // Lives as long as the worker.
    on_message.forget();
    if let Err(e) = post(&scope, ToPage::Ready) {
        web_sys::console::error_1(&e);
    }
}
