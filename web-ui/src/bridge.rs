//! The node bridge: the page's half of the node. The node itself runs in a worker of its
//! own (`web_ui::node_worker`); the page keeps what only a window holds. At start-up it
//! opens the signaling socket and the peer connections ([`WebTransport`]), starts the
//! node worker, and then relays: the transport's events to the worker, the worker's
//! sends to the data channels ([`serve_transport`]), tasks to the compute [`Pool`] and
//! their outputs back, and the page's own hooks (leaving, hiding). The feed's changes
//! from the worker are applied to the view's signals and painted by [`Shell`]. The
//! components only read what it writes.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeSet, VecDeque};
use std::rc::Rc;

use futures_channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures_util::StreamExt;
use leptos::prelude::*;
use node_core::driver::{SLICE_MS, sleep_ms, yield_to_browser};
use node_core::kernels::JobOutput;
use node_core::node::PageInput;
use node_core::signal::PeerId;
use node_core::transport::Transport;
use node_core::transport::web::WebTransport;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{MessageEvent, Worker};
use web_ui::feed::{PageState, ViewOp};
use web_ui::link::{ToNode, ToPage};
use web_ui::model::{JobRow, remember_colour};
use web_ui::node_worker::{link_counts, post, post_channel, receive};
use web_ui::paint::Painter;
use web_ui::unless_left_borrowed;

use crate::pool::Pool;
use crate::view::{MeshView, ms_now, presenter_key, query_param};

/// Where Trunk puts the node worker's loader (`src/bin/node.rs`).
const NODE_WORKER_URL: &str = "./node_loader.js";

/// Most workers the page starts.
pub(crate) const WORKERS_MAX: u16 = 64;

fn signaling_url() -> Option<String> {
    let loc = web_sys::window()?.location();
    let scheme = if loc.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", loc.host().ok()?))
}

/// The page's side of the node: applies the feed's changes (from the node worker) to
/// the view's signals, paints the canvases, and tells the worker what the page shows.
struct Shell {
    view: MeshView,
    painter: Painter,
    /// The jobs' rows last received, for the recording and the painter.
    rows: Vec<JobRow>,
    worker: Worker,
    /// What the worker was last told of the page.
    told: PageState,
    /// Changes received and not yet applied.
    waiting: VecDeque<ViewOp>,
    /// [`apply_waiting`] is at work (it may be waiting for the browser with nothing
    /// queued): a second one would apply changes out of order.
    applying: bool,
}

/// Applies the changes received, handing the thread back to the browser whenever it has
/// spent [`SLICE_MS`] at it, and after each change that re-renders a panel: a tab that
/// joins mid-job receives hundreds of changes at once, and the panels' effects run after
/// the slice that set their signals, in the same task. So the first picture of the
/// mesh is built over a few tasks (jobs, graph, members, log) instead of in one long one.
async fn apply_waiting(shell: Rc<RefCell<Shell>>) {
    loop {
        let start = ms_now();
        loop {
            let Some(mut s) = unless_left_borrowed(&shell) else {
                return;
            };
            let Some(op) = s.waiting.pop_front() else {
                s.applying = false;
                s.tell();
                return;
            };
            let renders = s.apply(op);
            if renders || ms_now() - start > SLICE_MS {
                break;
            }
        }
        yield_to_browser().await;
    }
}

impl Shell {
    /// Applies one of the feed's changes to the view; true if it re-renders a panel
    /// (the job cards, the peers table, the graph), whose effects then want a task of
    /// their own.
    fn apply(&mut self, op: ViewOp) -> bool {
        let view = self.view;
        let mut renders = false;
        {
            match op {
                ViewOp::Me(me) => view.me.set(Some(me)),
                ViewOp::Status(s) => view.status.set(s),
                ViewOp::Member { node, name, colour } => {
                    remember_colour(node, colour);
                    view.names.update(|m| {
                        m.insert(node, name);
                    });
                }
                ViewOp::Log(line) => view.push(line),
                ViewOp::Relog { seq, text } => view.relog(seq, text),
                ViewOp::LogAppend { seq, more } => view.log_append(seq, &more),
                ViewOp::Peers(p) => {
                    view.peers.set(p);
                    renders = true;
                }
                ViewOp::Jobs { jobs, flashes } => {
                    if let Some(jobs) = jobs {
                        self.rows = jobs.iter().rev().map(|j| j.row.clone()).collect();
                        view.jobs.set(jobs);
                        renders = true;
                    }
                    if !self.replaying() {
                        self.painter.paint(&self.rows, &flashes);
                    }
                }
                ViewOp::Finished(job, output) => {
                    if matches!(output, JobOutput::Image { .. }) {
                        self.painter.finished.insert(job, output);
                    }
                }
                ViewOp::Tiles {
                    job,
                    params,
                    tiles,
                    previews,
                } => self.painter.tiles(job, params, tiles, previews),
                ViewOp::Graph(graph) => {
                    let now = ms_now() as u64;
                    view.tm
                        .live
                        .update_value(|r| r.record(now, &graph, &self.rows));
                    if !view.tm.is_imported.get_untracked() {
                        let frames = view.tm.live.with_value(|r| r.frames.len());
                        if view.tm.frames.get_untracked() != frames {
                            view.tm.frames.set(frames);
                        }
                    }
                    if view.graph.with_untracked(|g| *g != graph) {
                        view.graph.set(graph);
                        renders = true;
                    }
                }
                ViewOp::Pulses(p) => view.pulses.set(p),
                ViewOp::Rates(r) => view.rates.set(r),
                ViewOp::Inspect(w) => view.inspect.set(w),
                ViewOp::Halted(h) => view.halted.set(h),
                ViewOp::Paused(on) => view.paused.set(on),
                ViewOp::SlowMs(ms) => view.slow_ms.set(ms),
                ViewOp::Redraw => self.painter.forget_canvases(),
                ViewOp::Traffic(t) => show_traffic(t),
                ViewOp::ServerAway(None) => view.server_away.set(None),
                ViewOp::ServerAway(Some(back_in)) => {
                    let now = crate::view::page_now();
                    let at = back_in.map(|ms| now + ms as f64);
                    // A later word without a time keeps the time known.
                    let at = at.or_else(|| view.server_away.get_untracked().flatten());
                    view.clock.set(now);
                    view.server_away.set(Some(at));
                }
            }
        }
        renders
    }

    fn replaying(&self) -> bool {
        self.view.tm.at.with_untracked(Option::is_some) || self.view.tm.is_imported.get_untracked()
    }

    /// Tells the worker what the page shows, when it changed.
    fn tell(&mut self) {
        let now = PageState {
            selected: self.view.selected.get_untracked(),
            replaying: self.replaying(),
            painting_behind: self.painter.behind,
        };
        if now != self.told {
            self.told = now;
            if let Err(e) = post(&self.worker, ToNode::Page(now)) {
                web_sys::console::error_1(&e);
            }
        }
    }
}

/// Puts what the page and its node worker said to each other so far where a benchmark
/// reads it: `window.__meshworkLink` (messages and bytes, each way).
fn show_link_counts() {
    let c = link_counts();
    show_numbers(
        "__meshworkLink",
        [
            ("to_worker", c.sent),
            ("to_worker_bytes", c.sent_bytes),
            ("from_worker", c.received),
            ("from_worker_bytes", c.received_bytes),
        ],
    );
}

/// Sets `window[name]` to an object of these numbers, for a benchmark to read.
fn show_numbers<const N: usize>(name: &str, numbers: [(&str, u64); N]) {
    let Some(w) = web_sys::window() else { return };
    let o = js_sys::Object::new();
    for (k, v) in numbers {
        let _ = js_sys::Reflect::set(&o, &k.into(), &(v as f64).into());
    }
    let _ = js_sys::Reflect::set(&w, &name.into(), &o);
}

/// Benchmarks and tests send bulk bytes from this tab with
/// `window.__meshworkBulk(peerId, bytes)` (`cargo xtask bench mesh`, `browser_bulk`):
/// through the node's bulk queue, with the flow control results get; the acknowledgement
/// is a `bulk` line in the event log.
fn expose_bulk_hook(to_node: UnboundedSender<PageInput>) {
    let Some(w) = web_sys::window() else { return };
    let hook = Closure::<dyn FnMut(String, f64)>::new(move |peer: String, bytes: f64| {
        if bytes.is_finite() && bytes >= 0.0 && !peer.is_empty() {
            let _ = to_node.unbounded_send(PageInput::Bulk {
                to: PeerId(peer),
                bytes: bytes as u64,
            });
        }
    });
    let _ = js_sys::Reflect::set(&w, &"__meshworkBulk".into(), hook.as_ref());
    // Lives as long as the page.
    hook.forget();
}

/// Puts this node's data-channel bytes (as of the last job it saw finish) where a
/// benchmark reads them: `window.__meshworkTraffic`.
fn show_traffic([bytes_out, bytes_in, packed_in, unpacked_in]: [u64; 4]) {
    show_numbers(
        "__meshworkTraffic",
        [
            ("bytes_out", bytes_out),
            ("bytes_in", bytes_in),
            ("packed_in", packed_in),
            ("unpacked_in", unpacked_in),
        ],
    );
}

/// While a channel holds bytes, the page tells the worker how much this often (ms), so
/// that the node's result transfers go on as the channel drains.
const DRAIN_POLL_MS: i32 = 4;

/// Carries out what the node worker asks of the transport, in order: sends (saying
/// after each how much the channel holds), closes, the server's outage, the shutdown.
async fn serve_transport(
    transport: WebTransport,
    worker: Worker,
    mut asks: UnboundedReceiver<ToPage>,
) {
    let mut draining: BTreeSet<PeerId> = BTreeSet::new();
    let tell = |peer: PeerId, sent: usize, buffered: usize| {
        if let Err(e) = post(
            &worker,
            ToNode::Queued {
                peer,
                sent,
                buffered,
            },
        ) {
            web_sys::console::error_1(&e);
        }
    };
    loop {
        let ask = if draining.is_empty() {
            asks.next().await
        } else {
            let next = std::pin::pin!(asks.next());
            let tick = std::pin::pin!(sleep_ms(DRAIN_POLL_MS));
            match futures_util::future::select(next, tick).await {
                futures_util::future::Either::Left((ask, _)) => ask,
                futures_util::future::Either::Right(((), _)) => {
                    for peer in std::mem::take(&mut draining) {
                        let held = transport.queued(&peer).await;
                        tell(peer.clone(), 0, held);
                        if held > 0 {
                            draining.insert(peer);
                        }
                    }
                    continue;
                }
            }
        };
        let Some(ask) = ask else { return };
        match ask {
            ToPage::Send { to, bytes } => {
                let sent = bytes.len();
                if let Err(e) = transport.send(&to, bytes).await {
                    web_sys::console::debug_1(&format!("send to {to}: {e}").into());
                }
                let held = transport.queued(&to).await;
                if held > 0 {
                    draining.insert(to.clone());
                }
                tell(to, sent, held);
            }
            ToPage::Close(peer) => {
                draining.remove(&peer);
                transport.close_peer(&peer);
            }
            ToPage::Reconnect(peer) => transport.reconnect(&peer),
            ToPage::ServerAway(secs) => transport.take_server_away(secs),
            ToPage::ReviveRoom => transport.revive_room(),
            ToPage::Rejoin => {
                draining.clear();
                transport.rejoin();
            }
            ToPage::ChannelState { peer, conn, open } => transport.moved_channel(&peer, conn, open),
            ToPage::Shutdown => {
                transport.shutdown().await;
                return;
            }
            ToPage::Ready | ToPage::Compute { .. } | ToPage::View(_) => {}
        }
    }
}

/// Workers by default: one per core the browser reports, less one for the page itself,
/// at least one; `?workers=N` overrides.
pub(crate) fn default_workers() -> u16 {
    if let Some(n) = query_param("workers").and_then(|v| v.parse::<u16>().ok()) {
        return n.min(WORKERS_MAX);
    }
    let cores = web_sys::window()
        .map(|w| w.navigator().hardware_concurrency() as u16)
        .unwrap_or(1);
    cores.saturating_sub(1).clamp(1, WORKERS_MAX)
}

/// What the components need to act on the node.
#[derive(Clone)]
pub(crate) struct Controls {
    pub(crate) to_node: UnboundedSender<PageInput>,
    pub(crate) pool: Pool,
    pub(crate) workers: RwSignal<u16>,
}

/// Joins the room and runs the node for the life of the page.
pub(crate) fn start_node(
    view: MeshView,
    room: String,
    controls: Controls,
    inputs: futures_channel::mpsc::UnboundedReceiver<PageInput>,
) {
    let Some(url) = signaling_url() else {
        view.status
            .set("cannot tell the server's address from this page".into());
        return;
    };
    let name = query_param("name").unwrap_or_default();
    let presenter_key = presenter_key();
    // A hidden tab's timers may run once a second or less: its peers are told, so that
    // they wait longer before they take its silence for a departure.
    if let Some(doc) = web_sys::window().and_then(|w| w.document()) {
        let to_node = controls.to_node.clone();
        let d = doc.clone();
        let on_visibility = Closure::<dyn FnMut()>::new(move || {
            let hidden = d.visibility_state() == web_sys::VisibilityState::Hidden;
            let _ = to_node.unbounded_send(PageInput::Background(hidden));
        });
        let _ = doc.add_event_listener_with_callback(
            "visibilitychange",
            on_visibility.as_ref().unchecked_ref(),
        );
        // Lives as long as the page.
        on_visibility.forget();
    }
    expose_bulk_hook(controls.to_node.clone());
    let worker = match Worker::new(NODE_WORKER_URL) {
        Ok(w) => w,
        Err(e) => {
            view.status
                .set(format!("cannot start the node's worker: {e:?}"));
            return;
        }
    };
    view.status.set("joining…".into());
    let shell = Rc::new(RefCell::new(Shell {
        view,
        painter: Painter::default(),
        rows: Vec::new(),
        worker: worker.clone(),
        told: PageState::default(),
        waiting: VecDeque::new(),
        applying: false,
    }));
    // What the page shows, told to the worker when it changes (a click on a task).
    let told = shell.clone();
    Effect::new(move |_| {
        view.selected.track();
        view.tm.at.track();
        view.tm.is_imported.track();
        if let Ok(mut s) = told.try_borrow_mut() {
            s.tell();
        }
    });
    let (ready_tx, ready_rx) = futures_channel::oneshot::channel::<()>();
    let mut ready_tx = Some(ready_tx);
    let (asks_tx, asks_rx) = mpsc::unbounded::<ToPage>();
    let pool = controls.pool;
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let msg = receive::<ToPage>(&e);
        show_link_counts();
        let Some(msg) = msg else {
            return;
        };
        match msg {
            ToPage::Ready => {
                if let Some(tx) = ready_tx.take() {
                    let _ = tx.send(());
                }
            }
            ToPage::Compute { job, task, kernel } => pool.compute(job, task, kernel),
            ToPage::View(ops) => {
                let start = {
                    let Some(mut s) = unless_left_borrowed(&shell) else {
                        return;
                    };
                    s.waiting.extend(ops);
                    !std::mem::replace(&mut s.applying, true)
                };
                if start {
                    wasm_bindgen_futures::spawn_local(apply_waiting(shell.clone()));
                }
            }
            ask => {
                let _ = asks_tx.unbounded_send(ask);
            }
        }
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // Lives as long as the page.
    on_message.forget();
    let on_error = Closure::<dyn FnMut(web_sys::ErrorEvent)>::new(move |e: web_sys::ErrorEvent| {
        view.status
            .set(format!("the node's worker failed: {}", e.message()));
    });
    worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
    on_error.forget();
    let workers = controls.workers.get_untracked();
    wasm_bindgen_futures::spawn_local(async move {
        // Messages sent before the worker's code has loaded are lost: the room is joined
        // once it is ready, so that every data channel can move to it.
        if ready_rx.await.is_err() {
            return;
        }
        let transport = match WebTransport::connect(&url, &room, &name, presenter_key) {
            Ok(t) => t,
            Err(e) => {
                view.status
                    .set(format!("cannot open the signaling socket: {e:?}"));
                return;
            }
        };
        // Close every connection when the tab goes away, so that peers notice in
        // milliseconds instead of waiting for their heartbeat timeout.
        let close = transport.closer();
        if let Some(w) = web_sys::window() {
            let on_pagehide = Closure::<dyn FnMut()>::new(close);
            let _ = w
                .add_event_listener_with_callback("pagehide", on_pagehide.as_ref().unchecked_ref());
            // Lives as long as the page.
            on_pagehide.forget();
        }
        // Each data channel moves to the worker where the browser can move it (Chromium):
        // then heartbeats and results never wait for this thread. A browser that cannot
        // (Firefox) keeps its channels here, and the page relays their messages.
        if query_param("relay").is_none() {
            let (w, can_move) = (worker.clone(), Rc::new(Cell::new(true)));
            transport.host_channels(Box::new(move |peer, conn, dc| {
                can_move.get() && {
                    let moved = post_channel(&w, peer, conn, dc);
                    can_move.set(moved);
                    moved
                }
            }));
        }
        let (transport, mut events) = transport.into_parts();
        let hidden = web_sys::window()
            .and_then(|w| w.document())
            .is_some_and(|d| d.visibility_state() == web_sys::VisibilityState::Hidden);
        let start = ToNode::Start {
            name,
            workers,
            hidden,
        };
        if let Err(e) = post(&worker, start) {
            web_sys::console::error_1(&e);
            return;
        }
        let w = worker.clone();
        let events = async move {
            while let Some(ev) = events.next().await {
                if let Err(e) = post(&w, ToNode::Transport(ev)) {
                    web_sys::console::error_1(&e);
                }
            }
        };
        let w = worker.clone();
        let mut inputs = inputs;
        let inputs = async move {
            while let Some(input) = inputs.next().await {
                if let Err(e) = post(&w, ToNode::Input(input)) {
                    web_sys::console::error_1(&e);
                }
            }
        };
        futures_util::join!(events, inputs, serve_transport(transport, worker, asks_rx));
    });
}
