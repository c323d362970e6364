//! The node bridge: the node's start-up (the signaling socket, the page's hooks, the run
//! loop) and [`Shell`], what the run loop calls back. It hands tasks to the worker
//! [`Pool`], and after each step applies what the [`Feed`] says changed to the view's
//! signals and paints the canvases. The components only read what it writes.

use futures_channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use node_core::driver::{Page, PageInput, run_web, web_now};
use node_core::job::{JobId, TaskId};
use node_core::kernels::{JobOutput, Kernel};
use node_core::membership::MembershipConfig;
use node_core::node::{MeshNode, NodeEvent};
use node_core::transport::web::WebTransport;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_ui::feed::{Feed, PageState, ViewOp};
use web_ui::model::{JobRow, remember_colour};
use web_ui::paint::Painter;

use crate::pool::Pool;
use crate::view::{MeshView, ms_now, presenter_key, query_param};

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

/// What the run loop calls back: the page's side of the node. The [`Feed`] works out
/// what changed; the shell applies it to the view's signals and paints the canvases.
struct Shell {
    view: MeshView,
    pool: Pool,
    to_node: UnboundedSender<PageInput>,
    painter: Painter,
    feed: Feed,
    /// The jobs' rows last received, for the recording.
    rows: Vec<JobRow>,
}

impl Shell {
    /// Applies the feed's changes to the view, and hands its commands to the node.
    fn apply(&mut self, node: &MeshNode) {
        for cmd in self.feed.take_commands() {
            let _ = self.to_node.unbounded_send(PageInput::Command(cmd));
        }
        let view = self.view;
        for op in self.feed.take() {
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
                ViewOp::Peers(p) => view.peers.set(p),
                ViewOp::Jobs { jobs, flashes } => {
                    if let Some(jobs) = jobs {
                        self.rows = jobs.iter().rev().map(|j| j.row.clone()).collect();
                        view.jobs.set(jobs);
                    }
                    if !self.replaying() {
                        self.painter.paint(node, &self.rows, &flashes);
                    }
                }
                ViewOp::Finished(job, output) => {
                    if matches!(output, JobOutput::Image { .. }) {
                        self.painter.finished.insert(job, output);
                    }
                }
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
                    }
                }
                ViewOp::Pulses(p) => view.pulses.set(p),
                ViewOp::Rates(r) => view.rates.set(r),
                ViewOp::Inspect(w) => view.inspect.set(w),
                ViewOp::Halted(h) => view.halted.set(Some(h)),
                ViewOp::Paused(on) => view.paused.set(on),
                ViewOp::SlowMs(ms) => view.slow_ms.set(ms),
                ViewOp::Redraw => self.painter.forget_canvases(),
            }
        }
    }

    fn replaying(&self) -> bool {
        self.view.tm.at.with_untracked(Option::is_some) || self.view.tm.is_imported.get_untracked()
    }
}

impl Page for Shell {
    fn compute(&mut self, job: JobId, task: TaskId, kernel: Kernel) {
        self.pool.compute(job, task, kernel);
    }

    fn on_event(&mut self, e: &NodeEvent) {
        self.feed.on_event(web_now(), e);
    }

    fn on_change(&mut self, node: &MeshNode) {
        let page = PageState {
            selected: self.view.selected.get_untracked(),
            replaying: self.replaying(),
            painting_behind: self.painter.behind,
        };
        self.feed.on_change(web_now(), node, &page);
        self.apply(node);
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
    let transport = match WebTransport::connect(&url, &room, &name, presenter_key()) {
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
        let _ =
            w.add_event_listener_with_callback("pagehide", on_pagehide.as_ref().unchecked_ref());
        // Lives as long as the page.
        on_pagehide.forget();
    }
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
    let node = MeshNode::new(
        MembershipConfig::default(),
        name,
        controls.workers.get_untracked(),
    );
    let shell = Shell {
        view,
        pool: controls.pool,
        to_node: controls.to_node,
        painter: Painter::default(),
        feed: Feed::new(),
        rows: Vec::new(),
    };
    wasm_bindgen_futures::spawn_local(run_web(transport, node, inputs, shell));
}
