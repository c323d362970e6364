//! The page: the node bridge (the `Shell` the run loop calls back), the node's start-up,
//! and the components. The view state is in `view.rs`, the painting in `paint.rs`.
//!
//! The node runs in [`run_web`]; [`Shell`] is what it calls back: it hands tasks to the
//! worker [`Pool`], turns events into log lines, and after each step refreshes the view
//! signals (at most every [`REFRESH_MS`] for jobs) and paints the canvases. Components
//! only read signals, except the job form and the workers field, which send commands.

use std::collections::{BTreeMap, BTreeSet};

use futures_channel::mpsc::{UnboundedSender, unbounded};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use node_core::driver::{Page, PageInput, run_web, web_now};
use node_core::engine::{Command, Event};
use node_core::job::{JobId, NodeId, TaskId};
use node_core::kernels::{JobOutput, Kernel};
use node_core::membership::LeftReason;
use node_core::membership::{MembershipConfig, MeshEvent, PeerState};
use node_core::node::{MeshNode, NodeEvent, node_id};
use node_core::signal::{PeerInfo, valid_room_name};
use node_core::transport::web::WebTransport;
use node_core::wire::ConsoleCmd;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_ui::form::{JobForm, KERNELS};
use web_ui::inspect;
use web_ui::model::{
    self, Departure, Flashes, GraphNode, JobRow, RateMeter, TaskState, colour, plural,
    remember_colour,
};

use crate::console::{Console, ConsolePanel, Overlays};
use crate::graph::{GONE_SHOWN_MS, GRAPH_MS, MeshGraph, Sampler};
use crate::pool::{Pool, PoolStats};
use crate::timemachine::TimeMachinePanel;
use crate::view::{
    Gone, JobView, LOG_KINDS, LogFilter, LogLine, MeshView, Overlay, PeerRow, RatesView, Selection,
    TimeMachine, ms_now, presenter_key, query_param,
};
use web_ui::paint::{CELL_PX, Painter, cells_text, job_dom_id};

/// Jobs are re-read from the engine at most this often (ms).
const REFRESH_MS: f64 = 100.0;
/// A departure's log line is updated for at most this long (ms).
const DEPARTURE_FOLLOW_MS: f64 = 30_000.0;
/// Names remembered for nodes (members and former members).
const NAMES_MAX: usize = 1024;
/// Most workers the page starts.
const WORKERS_MAX: u16 = 64;
/// Departures remembered for the inspector's "its first owner left".
const DEPARTED_MAX: usize = 64;
/// Tasks per job the view scans for each member's load.
const LOAD_TASKS_MAX: u32 = 4096;

fn signaling_url() -> Option<String> {
    let loc = web_sys::window()?.location();
    let scheme = if loc.protocol().ok()? == "https:" {
        "wss"
    } else {
        "ws"
    };
    Some(format!("{scheme}://{}/ws", loc.host().ok()?))
}

/// What the run loop calls back: the page's side of the node.
struct Shell {
    view: MeshView,
    pool: Pool,
    to_node: UnboundedSender<PageInput>,
    painter: Painter,
    me: Option<NodeId>,
    /// Outputs assembled here, in words.
    outputs: BTreeMap<JobId, String>,
    /// Departures just logged, to be noted against the engine's state after this step.
    departed: Vec<(NodeId, String, u64)>,
    /// Departures followed: the log line, what it held, since when.
    following: Vec<(u64, Departure, f64)>,
    dirty: bool,
    refreshed_at: f64,
    /// The graph: message counters, recent departures, when it was last built.
    sampler: Sampler,
    gone: Vec<Gone>,
    graph_at: f64,
    /// Departed members and how they went, for the inspector (bounded).
    departed_words: Vec<(NodeId, String)>,
    /// Each connected peer's ICE path ("host/host"), by peer id.
    paths: BTreeMap<String, String>,
    /// Peers whose connection gathered no local address: their departure says so.
    no_address: BTreeSet<String>,
    /// The selection the inspector's words were worked out for.
    inspected: Option<Selection>,
    /// Tasks that lost a copy to a departure, until healed and a little after.
    flashes: Flashes,
    /// The rows last read from the engine, for the recording.
    last_rows: Vec<JobRow>,
    /// Whether the time machine was showing a recorded moment at the last step.
    was_replaying: bool,
    rate_meter: RateMeter,
}

impl Shell {
    fn on_engine(&mut self, e: &Event) {
        let view = self.view;
        match e {
            Event::JobAccepted {
                job,
                tasks,
                submitter,
            } => {
                if Some(*submitter) != self.me {
                    // Every tab assembles every job: its canvas shows the whole picture.
                    let _ = self
                        .to_node
                        .unbounded_send(PageInput::Command(Command::Assemble { job: *job }));
                }
                let who = view.name(*submitter);
                view.log(
                    "job",
                    "",
                    "",
                    0.0,
                    format!("job {job} from {who}: {tasks} tasks"),
                );
            }
            Event::JobRefused { job, why } => {
                view.log("warning", "", "", 0.0, format!("job {job} refused: {why}"));
            }
            Event::JobDone {
                job,
                output,
                timings,
            } => {
                let words = model::output_words(output);
                let secs = timings.assembled_at.since(timings.started_at) as f64 / 1000.0;
                view.log(
                    "done",
                    "",
                    "",
                    secs * 1000.0,
                    format!(
                        "job {job} done in {secs:.1} s: {words} ({} tasks computed here)",
                        timings.computed_here
                    ),
                );
                self.outputs.insert(*job, words);
                if matches!(output, JobOutput::Image { .. }) {
                    self.painter.finished.insert(*job, output.clone());
                }
                self.refreshed_at = f64::NEG_INFINITY;
            }
            Event::JobFailed { job, why } => {
                view.log("warning", "", "", 0.0, format!("job {job} failed: {why}"));
            }
            Event::JobCancelled { job } => {
                view.log(
                    "job",
                    "",
                    "",
                    0.0,
                    format!("job {job} was cancelled by its submitter"),
                );
            }
            Event::LiarMarked {
                node,
                job,
                task,
                everywhere,
            } => {
                let text = format!(
                    "{} reported a wrong result for {job} {task}, against the hash two other members reported: caught lying, it gets no more tasks {}",
                    view.name(*node),
                    if *everywhere {
                        "in any job"
                    } else {
                        "in this job"
                    }
                );
                view.log_about("warning", Some(*node), Some((*job, *task)), text);
            }
            Event::TaskMismatch { job, task } => {
                let text = format!(
                    "{job} {task}: members reported different results (click for who, and what it proves)"
                );
                view.log_about("warning", None, Some((*job, *task)), text);
            }
            _ => {}
        }
        self.dirty = true;
    }

    fn refresh_jobs(&mut self, node: &MeshNode) {
        let Some(engine) = node.engine() else { return };
        let rows = model::job_rows(engine);
        self.flashes.update(&rows, ms_now());
        if !self.was_replaying {
            self.painter.paint(node, &rows, &self.flashes);
        }
        self.last_rows.clone_from(&rows);
        let view = self.view;
        let jobs: Vec<JobView> = rows
            .into_iter()
            .rev()
            .map(|row| {
                let (lost, healed) = self
                    .flashes
                    .totals
                    .get(&row.id)
                    .copied()
                    .unwrap_or_default();
                JobView {
                    submitter: view.name(row.submitter),
                    mine: Some(row.submitter) == self.me,
                    output: self.outputs.get(&row.id).cloned(),
                    lost,
                    healed,
                    row,
                }
            })
            .collect();
        if view.jobs.with_untracked(|old| *old != jobs) {
            view.jobs.set(jobs);
        }
        let now = ms_now();
        self.following.retain(|(seq, d, since)| {
            let (mut text, done) = d.summary(engine, |n| view.name(n));
            if done && !(d.unfinished.is_empty() && d.held.is_empty()) {
                text += &format!(
                    " (all of it elsewhere {:.0} ms after the departure was noticed)",
                    now - since
                );
            }
            view.relog(*seq, text);
            !done && now - since < DEPARTURE_FOLLOW_MS
        });
        self.outputs.retain(|id, _| engine.job_spec(*id).is_some());
        self.inspect(node);
    }

    /// The inspector's words for the current selection.
    fn inspect(&mut self, node: &MeshNode) {
        let Some(engine) = node.engine() else { return };
        let view = self.view;
        let selected = view.selected.get_untracked();
        self.inspected = selected;
        let words = match selected {
            None => String::new(),
            Some(Selection::Task(job, task)) => {
                inspect::task_words(engine, job, task, &self.departed_words, |n| view.name(n))
            }
            Some(Selection::Node(n)) => {
                // The graph holds each member's load as of its last build (150 ms at
                // most): only a node it no longer shows needs the board scanned again.
                let shown = view.graph.with_untracked(|g| {
                    g.iter().find(|g| g.node == n).map(|g| {
                        let kind = match g.kind {
                            "me" => "this tab",
                            "browser" => "a browser tab",
                            _ => "a native node",
                        };
                        let rtt = g
                            .rtt_ms
                            .map(|ms| format!(", {ms:.1} ms away"))
                            .unwrap_or_default();
                        let cut = if g.state == "cut" {
                            ", its link to this tab is cut"
                        } else {
                            ""
                        };
                        let state = inspect::MemberState {
                            gone: match g.state {
                                "gone" => Some(g.note.clone()),
                                "silent" => {
                                    Some(format!("{}; it is taken back if it speaks again", g.note))
                                }
                                _ => None,
                            },
                            silent: g.state == "silent",
                            background: g.background,
                        };
                        (format!("{} ({kind}{rtt}{cut})", g.name), g.load, state)
                    })
                });
                let (about, load, state) = shown.unwrap_or_else(|| {
                    let load = inspect::loads(engine, LOAD_TASKS_MAX)
                        .get(&n)
                        .copied()
                        .unwrap_or_default();
                    // Not on the graph any more: a member that left a while ago.
                    let gone = self
                        .departed_words
                        .iter()
                        .find(|(d, _)| *d == n)
                        .map(|(_, how)| how.clone())
                        .or_else(|| (!engine.is_live(n)).then(|| "no longer a member".to_string()));
                    let state = inspect::MemberState {
                        gone,
                        ..Default::default()
                    };
                    (view.name(n), load, state)
                });
                inspect::node_words(engine, n, load, &about, &state)
            }
        };
        if view.inspect.with_untracked(|w| *w != words) {
            view.inspect.set(words);
        }
    }

    /// Rebuilds the graph (at most every [`GRAPH_MS`]).
    fn refresh_graph(&mut self, node: &MeshNode) {
        let now = ms_now();
        if now - self.graph_at < GRAPH_MS {
            return;
        }
        self.graph_at = now;
        self.gone.retain(|g| g.until > now);
        let (loads, liars): (_, Vec<NodeId>) = match node.engine() {
            Some(e) => {
                let mut caught: Vec<NodeId> = e
                    .job_ids()
                    .flat_map(|j| e.caught_in(j).collect::<Vec<_>>())
                    .collect();
                caught.extend(e.liars());
                caught.sort_unstable();
                caught.dedup();
                (inspect::loads(e, LOAD_TASKS_MAX), caught)
            }
            None => Default::default(),
        };
        let graph = crate::graph::build(node, &loads, &liars, &self.gone, web_now());
        let view = self.view;
        let validated: u64 = self.last_rows.iter().map(|r| u64::from(r.validated)).sum();
        let done = loads.iter().map(|(n, l)| (*n, l.done)).collect();
        if self.rate_meter.sample(now, validated, done) {
            let (total, per) = self.rate_meter.rates();
            let rates = RatesView {
                series: self.rate_meter.total_series(),
                total,
                results: per.values().sum(),
                per: per
                    .into_iter()
                    .filter(|(_, r)| *r > 0.0)
                    .map(|(n, r)| (view.name(n), colour(n), r))
                    .collect(),
                speedup: self.rate_meter.speedup(),
            };
            if view.rates.with_untracked(|r| *r != rates) {
                view.rates.set(rates);
            }
        }
        view.tm
            .live
            .update_value(|r| r.record(now as u64, &graph, &self.last_rows));
        if !view.tm.is_imported.get_untracked() {
            let frames = view.tm.live.with_value(|r| r.frames.len());
            if view.tm.frames.get_untracked() != frames {
                view.tm.frames.set(frames);
            }
        }
        if view.graph.with_untracked(|g| *g != graph) {
            view.graph.set(graph);
        }
        let pulses = self.sampler.pulses(node);
        if !(pulses.is_empty() && view.pulses.with_untracked(Vec::is_empty)) {
            view.pulses.set(pulses);
        }
    }

    fn on_console(&mut self, from: Option<&PeerInfo>, cmd: &ConsoleCmd, obeyed: bool) {
        let view = self.view;
        let who = from.map_or_else(|| "this tab".to_string(), |p| p.name.clone());
        let node = from.map(|p| node_id(&p.id));
        if !obeyed {
            let text = format!(
                "ignored a console command from {who} ({cmd}): it did not join with the presenter key"
            );
            view.log_about("warning", node, None, text);
            return;
        }
        view.log_about(
            "console",
            node,
            None,
            format!("console: {cmd} (from {who})"),
        );
        match cmd {
            ConsoleCmd::Fail => view.halted.set(Some(
                "The presenter failed this node: it now answers nothing, as a crashed machine would, and the others notice only its silence. Reload the page to join again.".into(),
            )),
            ConsoleCmd::Leave => view.halted.set(Some(
                "This node left the mesh at the presenter's request. Reload the page to join again.".into(),
            )),
            ConsoleCmd::Pause { on } => view.paused.set(*on),
            ConsoleCmd::Pacing { ms } => view.slow_ms.set(*ms),
            _ => {}
        }
    }
}

impl Shell {
    /// Keeps a member that left on the graph a few seconds, dashed, with `note`.
    fn show_gone(&mut self, peer: &PeerInfo, note: String) {
        let n = node_id(&peer.id);
        let last = self
            .view
            .graph
            .with_untracked(|g| g.iter().find(|g| g.peer == peer.id.0).cloned());
        let mut gone = last.unwrap_or_else(|| GraphNode {
            peer: peer.id.0.clone(),
            node: n,
            name: peer.name.clone(),
            kind: peer.kind.as_str(),
            state: "gone",
            presenter: peer.presenter,
            rtt_ms: None,
            load: Default::default(),
            liar: false,
            note: String::new(),
            colour: peer.colour,
            background: false,
        });
        gone.state = "gone";
        gone.rtt_ms = None;
        gone.background = false;
        gone.note = note;
        self.gone.retain(|g| g.node.peer != peer.id.0);
        self.gone.push(Gone {
            node: gone,
            until: ms_now() + GONE_SHOWN_MS,
        });
    }
}

impl Page for Shell {
    fn compute(&mut self, job: JobId, task: TaskId, kernel: Kernel) {
        self.pool.compute(job, task, kernel);
    }

    fn on_event(&mut self, e: &NodeEvent) {
        let view = self.view;
        match e {
            NodeEvent::Joined { me } => {
                self.me = Some(node_id(&me.id));
                remember_colour(node_id(&me.id), me.colour);
                view.names.update(|m| {
                    m.insert(node_id(&me.id), me.name.clone());
                });
                view.me.set(Some(me.clone()));
                view.status.set("joined".into());
            }
            NodeEvent::Mesh(MeshEvent::PeerConnected {
                peer, connect_ms, ..
            }) => {
                // An id seen before is a member coming back (a reloaded tab, a node
                // that resumed): the same node to placement, not a new one.
                let back = view
                    .names
                    .with_untracked(|m| m.contains_key(&node_id(&peer.id)));
                remember_colour(node_id(&peer.id), peer.colour);
                view.names.update(|m| {
                    if m.len() < NAMES_MAX {
                        m.insert(node_id(&peer.id), peer.name.clone());
                    }
                });
                let text = if back {
                    format!(
                        "{} ({}) rejoined under the same id, connected in {:.0} ms",
                        peer.name, peer.kind, connect_ms
                    )
                } else {
                    format!(
                        "{} ({}) connected in {:.0} ms",
                        peer.name, peer.kind, connect_ms
                    )
                };
                view.log("joined", &peer.id.0, "", *connect_ms, text);
            }
            NodeEvent::Mesh(MeshEvent::PeerLeft {
                peer,
                reason,
                detect_ms,
                ..
            }) => {
                let no_address = self.no_address.remove(&peer.id.0);
                let silent = *reason == LeftReason::Heartbeat;
                let how = how_left(*reason, no_address);
                let headline = if silent {
                    format!(
                        "{} ({}) went silent: no message for {:.0} ms, so its work moves to others; it is taken back if it speaks again",
                        peer.name, peer.kind, detect_ms
                    )
                } else {
                    format!(
                        "{} ({}) left: {how}, {:.0} ms after it was last heard",
                        peer.name, peer.kind, detect_ms
                    )
                };
                let seq = view.log(
                    "left",
                    &peer.id.0,
                    reason.as_str(),
                    *detect_ms,
                    headline.clone(),
                );
                let n = node_id(&peer.id);
                self.departed.push((n, headline, seq));
                let gone_words = if silent {
                    format!(
                        "went silent at {:.1} s (no message for {detect_ms:.0} ms)",
                        ms_now() / 1000.0
                    )
                } else {
                    format!("left at {:.1} s: {how}", ms_now() / 1000.0)
                };
                self.departed_words.retain(|(d, _)| *d != n);
                self.departed_words.push((n, gone_words));
                if self.departed_words.len() > DEPARTED_MAX {
                    self.departed_words.remove(0);
                }
                if !silent {
                    self.paths.remove(&peer.id.0);
                    let note =
                        format!("left: {how}, noticed {detect_ms:.0} ms after it was last heard");
                    self.show_gone(peer, note);
                }
                self.graph_at = f64::NEG_INFINITY;
            }
            NodeEvent::Mesh(MeshEvent::PeerBack { peer, silent_ms }) => {
                let n = node_id(&peer.id);
                let text = format!(
                    "{} ({}) is back: it was silent {:.1} s; a member again, its results and copies count again",
                    peer.name,
                    peer.kind,
                    silent_ms / 1000.0
                );
                view.log("joined", &peer.id.0, "back", *silent_ms, text);
                self.departed_words.retain(|(d, _)| *d != n);
                // Its departure's line says it came back, and is followed no more.
                self.following.retain(|(seq, d, _)| {
                    if d.node == n {
                        let back = format!(" It came back {:.1} s later.", silent_ms / 1000.0);
                        view.log_append(*seq, &back);
                    }
                    d.node != n
                });
                self.graph_at = f64::NEG_INFINITY;
            }
            NodeEvent::Mesh(MeshEvent::SilentGone { peer, reason }) => {
                self.paths.remove(&peer.id.0);
                let how = match reason {
                    LeftReason::Heartbeat => "it stayed silent a minute",
                    _ => how_left(*reason, false),
                };
                let text = format!(
                    "{} ({}), silent until now, left for good: {how}",
                    peer.name, peer.kind
                );
                view.log("left", &peer.id.0, reason.as_str(), 0.0, text);
                self.show_gone(peer, format!("left: {how}"));
                self.graph_at = f64::NEG_INFINITY;
            }
            NodeEvent::Mesh(MeshEvent::Background { peer, on }) => {
                let name = view.name(node_id(peer));
                let text = if *on {
                    format!(
                        "{name} went to the background (its tab is hidden): the others now wait 10 s before they take its silence for a departure"
                    )
                } else {
                    format!("{name} is in the foreground again")
                };
                view.log("joined", &peer.0, "background", 0.0, text);
                self.graph_at = f64::NEG_INFINITY;
            }
            NodeEvent::Mesh(MeshEvent::LinkCut { peer }) => {
                view.log(
                    "left",
                    &peer.id.0,
                    "cut",
                    0.0,
                    format!("the link to {} was cut by the presenter: each side treats the other as gone", peer.name),
                );
            }
            NodeEvent::Mesh(MeshEvent::LinkRestored { peer }) => {
                view.log(
                    "joined",
                    &peer.id.0,
                    "",
                    0.0,
                    format!(
                        "the link to {} was restored: it is a member again, with what it kept",
                        peer.name
                    ),
                );
            }
            NodeEvent::Console { from, cmd, obeyed } => {
                self.on_console(from.as_ref(), cmd, *obeyed)
            }
            NodeEvent::Mesh(_) => {}
            NodeEvent::Engine(e) => self.on_engine(e),
            NodeEvent::SignalingError { message, .. } => {
                view.status.set(format!("signaling error: {message}"))
            }
            NodeEvent::SignalingClosed => view
                .status
                .set("signaling away, mesh still working: reconnecting…".into()),
            NodeEvent::Path {
                peer,
                local,
                remote,
            } => {
                // Bounded by the room: entries go when the peer leaves. A connection
                // that opened had an address, whatever an earlier attempt said.
                self.paths
                    .insert(peer.0.clone(), format!("{local}/{remote}"));
                self.no_address.remove(&peer.0);
                self.dirty = true;
            }
            NodeEvent::NoLocalAddress { peer } => {
                self.no_address.insert(peer.0.clone());
                let text = format!(
                    "this browser offered no network address for WebRTC, so it cannot connect to {}: \
                     it gathered no ICE candidate (a privacy setting, or no usable network interface)",
                    peer.0
                );
                view.log("warning", &peer.0, "no_local_address", 0.0, text);
            }
            NodeEvent::SignalingBack { peers } => view.status.set(format!(
                "signaling back: the server knows {peers} other member(s) again"
            )),
        }
    }

    fn on_change(&mut self, node: &MeshNode) {
        let view = self.view;
        let new = peer_rows(node, &self.paths);
        if view.peers.with_untracked(|old| *old != new) {
            view.peers.set(new);
        }
        if let Some(engine) = node.engine() {
            for (n, headline, seq) in self.departed.drain(..) {
                let d = Departure::new(engine, n, headline);
                self.flashes
                    .lost(d.held.iter().map(|(j, t, _)| (*j, *t)), ms_now());
                self.following.push((seq, d, ms_now()));
                self.dirty = true;
            }
        }
        let replaying =
            view.tm.at.with_untracked(Option::is_some) || view.tm.is_imported.get_untracked();
        if self.was_replaying && !replaying {
            // Back to live: every picture is drawn again from the engine's bytes.
            self.painter.forget_canvases();
            self.dirty = true;
            self.refreshed_at = f64::NEG_INFINITY;
        }
        self.was_replaying = replaying;
        self.refresh_graph(node);
        if view.selected.with_untracked(|s| *s != self.inspected) {
            self.dirty = true;
            self.refreshed_at = f64::NEG_INFINITY;
        }
        let now = ms_now();
        let moving = !self.following.is_empty() || !self.flashes.is_empty();
        if (self.dirty || moving) && now - self.refreshed_at >= REFRESH_MS {
            self.dirty = false;
            self.refreshed_at = now;
            self.refresh_jobs(node);
        }
    }
}

/// How a departure was noticed, in words.
fn how_left(reason: LeftReason, no_address: bool) -> &'static str {
    match reason {
        LeftReason::Signaling => "the signaling server saw its socket close",
        LeftReason::ChannelClosed if no_address => {
            "its data channel closed: this browser offered no network address for WebRTC"
        }
        LeftReason::ChannelClosed => "its data channel closed",
        LeftReason::Heartbeat => "its heartbeats stopped",
    }
}

fn peer_rows(node: &MeshNode, paths: &BTreeMap<String, String>) -> Vec<PeerRow> {
    let Some(m) = node.membership() else {
        return Vec::new();
    };
    m.peers()
        .map(|p| PeerRow {
            id: p.info.id.0.clone(),
            name: p.info.name.clone(),
            kind: p.info.kind.as_str(),
            state: p.state.as_str(),
            rtt_ms: p
                .rtt_ms
                .filter(|_| p.state == PeerState::Connected)
                .map(|ms| (ms * 10.0).round() / 10.0),
            colour: colour(node_id(&p.info.id)),
            path: paths.get(&p.info.id.0).cloned().unwrap_or_default(),
        })
        .collect()
}

/// Workers by default: one per core the browser reports, less one for the page itself,
/// at least one; `?workers=N` overrides.
fn default_workers() -> u16 {
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
struct Controls {
    to_node: UnboundedSender<PageInput>,
    pool: Pool,
    workers: RwSignal<u16>,
}

/// Joins the room and runs the node for the life of the page.
fn start_node(
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
        me: None,
        outputs: BTreeMap::new(),
        departed: Vec::new(),
        following: Vec::new(),
        dirty: false,
        refreshed_at: f64::NEG_INFINITY,
        sampler: Sampler::default(),
        gone: Vec::new(),
        graph_at: f64::NEG_INFINITY,
        departed_words: Vec::new(),
        paths: BTreeMap::new(),
        no_address: BTreeSet::new(),
        inspected: None,
        flashes: Flashes::default(),
        last_rows: Vec::new(),
        was_replaying: false,
        rate_meter: RateMeter::default(),
    };
    wasm_bindgen_futures::spawn_local(run_web(transport, node, inputs, shell));
}

#[component]
fn App() -> impl IntoView {
    let view = MeshView {
        me: RwSignal::new(None),
        status: RwSignal::new("connecting to the signaling server…".into()),
        peers: RwSignal::new(Vec::new()),
        log: RwSignal::new(Vec::new()),
        jobs: RwSignal::new(Vec::new()),
        pool: RwSignal::new(PoolStats::default()),
        names: RwSignal::new(BTreeMap::new()),
        outlines: RwSignal::new(false),
        graph: RwSignal::new(Vec::new()),
        pulses: RwSignal::new(Vec::new()),
        selected: RwSignal::new(None),
        inspect: RwSignal::new(String::new()),
        cuts: RwSignal::new(BTreeSet::new()),
        paused: RwSignal::new(false),
        slow_ms: RwSignal::new(0),
        overlay: RwSignal::new(Overlay::None),
        blank: RwSignal::new(false),
        projector: RwSignal::new(query_param("layout").as_deref() == Some("projector")),
        public_url: RwSignal::new(None),
        halted: RwSignal::new(None),
        log_filter: RwSignal::new(LogFilter::default()),
        tm: TimeMachine::new(),
        replay_graph: RwSignal::new(Vec::new()),
        replay_jobs: RwSignal::new(Vec::new()),
        replay_log: RwSignal::new(Vec::new()),
        rates: RwSignal::new(RatesView::default()),
    };
    let asked = query_param("room");
    let room = match asked {
        Some(r) if valid_room_name(&r) => r,
        Some(_) => {
            view.status.set(
                "that room name is not valid (letters, digits, '-', '_'); joined `demo`".into(),
            );
            "demo".to_string()
        }
        None => "demo".to_string(),
    };
    let (to_node, inputs) = unbounded();
    let workers = RwSignal::new(default_workers());
    let pool = Pool::new(
        usize::from(workers.get_untracked()),
        to_node.clone(),
        move |s| view.pool.set(s),
    );
    let console = Console {
        view,
        to_node: to_node.clone(),
    };
    let controls = Controls {
        to_node,
        pool,
        workers,
    };
    start_node(view, room.clone(), controls.clone(), inputs);
    crate::console::listen_for_keys(console.clone());
    crate::console::fetch_public_url(view);
    let toggle = move |o: Overlay| {
        move |_| {
            view.overlay
                .update(|v| *v = if *v == o { Overlay::None } else { o })
        }
    };
    view! {
        <main class=move || if view.projector.get() { "app projector" } else { "app" } data-testid="app"
            data-layout=move || if view.projector.get() { "projector" } else { "standard" }>
            <header>
                <h1>"Meshwork"</h1>
                <p class="tagline">"This tab is a node in a WebRTC mesh of browsers and native processes. Submit a job: it splits into tasks that every member computes a share of."</p>
                <nav class="tools" aria-label="View">
                    <button data-testid="show-qr" on:click=toggle(Overlay::Qr)>"Join QR code (q)"</button>
                    <button data-testid="show-keys" on:click=toggle(Overlay::Keys)>"Keys (?)"</button>
                    <button data-testid="projector" aria-pressed=move || view.projector.get().to_string()
                        on:click=move |_| view.projector.update(|p| *p = !*p)>"Projector layout (p)"</button>
                </nav>
            </header>
            <Show when=move || view.halted.with(Option::is_some)>
                <p class="halted" role="alert" data-testid="halted">{move || view.halted.get().unwrap_or_default()}</p>
            </Show>
            <Show when=move || { view.paused.get() || view.slow_ms.get() > 0 }>
                <p class="paused" data-testid="mesh-mode">{move || match (view.paused.get(), view.slow_ms.get()) {
                    (true, _) => "The mesh is paused: no member starts a task (→ steps one task on each).".to_string(),
                    (false, ms) => format!("Slow motion: every member waits {ms} ms after each task."),
                }}</p>
            </Show>
            <StartBar view controls=controls.clone()/>
            <MeshGraph view/>
            <ConsolePanel console/>
            <Inspector view/>
            <Numbers view/>
            <TimeMachinePanel view room=room.clone()/>
            <Me view room=room.clone() controls=controls.clone()/>
            <SubmitForm view controls/>
            <Jobs view/>
            <Peers view/>
            <EventLog view/>
            <Guide/>
            <Overlays view room/>
        </main>
    }
}

/// Tasks per second in total (a chart of the last minute) and per node, and the
/// speedup over one node.
#[component]
fn Numbers(view: MeshView) -> impl IntoView {
    let line = move || {
        view.rates.with(|r| {
            let max = r.series.iter().copied().fold(1.0, f64::max);
            let n = r.series.len().max(2) - 1;
            r.series
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    format!(
                        "{:.1},{:.1}",
                        i as f64 * 240.0 / n as f64,
                        46.0 - v / max * 42.0
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    let fastest = move || {
        view.rates
            .with(|r| r.per.iter().map(|p| p.2).fold(0.0, f64::max).max(0.001))
    };
    view! {
        <section class="numbers" aria-labelledby="numbers-title">
            <h2 id="numbers-title">"Numbers"</h2>
            <p data-testid="rate-total" data-validated-per-s=move || view.rates.with(|r| format!("{:.2}", r.total))
                data-results-per-s=move || view.rates.with(|r| format!("{:.2}", r.results))>
                {move || view.rates.with(|r| format!(
                "Over the last 5 s: {:.1} tasks validated per second, from {:.1} results per second (a task needs q matching results, and a backup or a steal may compute one again){}",
                r.total, r.results,
                r.speedup.map(|s| format!(". The members together compute {s:.1}× as many results per second as the fastest of them alone")).unwrap_or_default()))}</p>
            <svg class="spark" viewBox="0 0 240 48" role="img" aria-label="Tasks validated per second over the last minute">
                <polyline points=line fill="none" stroke="#7fd962" stroke-width="2"/>
            </svg>
            <ul class="rates" data-testid="rates">
                {move || view.rates.get().per.into_iter().map(|(name, c, r)| {
                    let width = format!("width: {:.0}%; background: {c}", r / fastest() * 100.0);
                    view! { <li data-testid="rate-member" data-per-s=format!("{r:.2}")><span class="bar" style=width></span>{format!("{name}: {r:.1} results/s")}</li> }
                }).collect_view()}
            </ul>
        </section>
    }
}

/// "Why?": what the selected member or task is doing, in plain words.
#[component]
fn Inspector(view: MeshView) -> impl IntoView {
    view! {
        <section class="inspector" aria-live="polite">
            <h2>"Why?"</h2>
            <p data-testid="inspector">{move || {
                let w = view.inspect.get();
                if w.is_empty() { "Click a member of the graph, a task square or a tile of the picture, or an event, to see what it is doing and why.".to_string() } else { w }
            }}</p>
        </section>
    }
}

/// This node: id, name, kind, room, signaling status and its workers.
#[component]
fn Me(view: MeshView, room: String, controls: Controls) -> impl IntoView {
    let field = move |f: fn(&PeerInfo) -> String| {
        move || view.me.get().map(|m| f(&m)).unwrap_or_else(|| "…".into())
    };
    let workers = controls.workers;
    let set_workers = move |v: String| {
        let Ok(n) = v.trim().parse::<u16>() else {
            return;
        };
        let n = n.min(WORKERS_MAX);
        workers.set(n);
        controls.pool.resize(usize::from(n));
        let _ = controls.to_node.unbounded_send(PageInput::Workers(n));
    };
    let pool_text = move || {
        let s = view.pool.get();
        let inline = if s.inline {
            "; workers failed, computing on the page"
        } else {
            ""
        };
        format!("{} busy, {} tasks computed{inline}", s.busy, s.computed)
    };
    view! {
        <section class="me" data-testid="me">
            <h2>"This node"</h2>
            <dl>
                <dt>"id"</dt><dd data-testid="me-id">{field(|m| m.id.0.clone())}</dd>
                <dt>"name"</dt><dd data-testid="me-name">
                    <span class="swatch" style=move || view.me.get().map(|m| format!("background: {}", colour(node_id(&m.id)))).unwrap_or_default()></span>
                    {field(|m| m.name.clone())}
                </dd>
                <dt>"kind"</dt><dd data-testid="me-kind">{field(|m| m.kind.as_str().to_string())}</dd>
                <dt>"room"</dt><dd data-testid="room">{room}</dd>
                <dt>"status"</dt><dd data-testid="status">{move || view.status.get()}</dd>
                <dt><label for="workers">"workers"</label></dt>
                <dd>
                    <input id="workers" data-testid="workers" type="number" min="0" max=WORKERS_MAX
                        prop:value=move || workers.get().to_string()
                        on:change=move |ev| set_workers(event_target_value(&ev))/>
                    " "<span data-testid="pool" class="dim">{pool_text}</span>
                </dd>
            </dl>
        </section>
    }
}

/// The first thing on the page: what to do, and a way to start a job without scrolling.
#[component]
fn StartBar(view: MeshView, controls: Controls) -> impl IntoView {
    let error = RwSignal::new(String::new());
    let to_node = controls.to_node.clone();
    let start = move |_| {
        let Some(me) = view.me.get_untracked() else {
            error.set("not in a room yet: wait for the server's welcome".into());
            return;
        };
        let nonce = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        match JobForm::default().submit(node_id(&me.id), nonce) {
            Ok(cmd) => {
                error.set(String::new());
                let _ = to_node.unbounded_send(PageInput::Command(cmd));
            }
            Err(e) => error.set(e),
        }
    };
    let peers = move || {
        view.peers
            .with(|p| p.iter().filter(|r| r.state == "connected").count())
    };
    view! {
        <section class="start" data-testid="start">
            <p>
                {move || match peers() {
                    0 => "You are the only member so far: open this page in another tab (or on a phone, from the QR code) to add one. ".to_string(),
                    n => format!("This tab and {n} other {} form the mesh. ", plural(n as u32, "member", "members")),
                }}
                "Start a job and watch the members split it, copy the results and carry on when one leaves."
            </p>
            <div class="row">
                <button data-testid="start-job" disabled=move || view.me.with(Option::is_none) on:click=start>
                    "Draw a Mandelbrot picture"
                </button>
                <a href="#submit-title">"…or choose the kernel, size, r and q"</a>
            </div>
            <Show when=move || error.with(|e| !e.is_empty())>
                <p class="error" data-testid="start-error">{move || error.get()}</p>
            </Show>
        </section>
    }
}

/// The job form: every field checked before anything is sent.
#[component]
fn SubmitForm(view: MeshView, controls: Controls) -> impl IntoView {
    let form = RwSignal::new(JobForm::default());
    let error = RwSignal::new(String::new());
    let joined = move || view.me.with(Option::is_some);
    let to_node = controls.to_node.clone();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(me) = view.me.get_untracked() else {
            error.set("not in a room yet: wait for the server's welcome".into());
            return;
        };
        let nonce = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        match form.get_untracked().submit(node_id(&me.id), nonce) {
            Ok(cmd) => {
                error.set(String::new());
                let _ = to_node.unbounded_send(PageInput::Command(cmd));
            }
            Err(e) => error.set(e),
        }
    };
    let field = move |label: &'static str,
                      testid: &'static str,
                      get: fn(&JobForm) -> String,
                      set: fn(&mut JobForm, String)| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input data-testid=testid type="text" inputmode="numeric"
                    prop:value=move || form.with(get)
                    on:input=move |ev| form.update(|f| set(f, event_target_value(&ev)))/>
            </label>
        }
    };
    let kernel = move || form.with(|f| f.kernel.clone());
    view! {
        <section class="submit">
            <h2 id="submit-title">"Submit a job"</h2>
            <form data-testid="job-form" on:submit=submit>
                <label class="field">
                    <span>"kernel"</span>
                    <select data-testid="kernel"
                        on:change=move |ev| form.update(|f| f.kernel = event_target_value(&ev))>
                        {KERNELS.iter().map(|(value, label)| view! {
                            <option value=*value selected=move || kernel() == *value>{*label}</option>
                        }).collect_view()}
                    </select>
                </label>
                <Show when=move || kernel() == "mandelbrot" || kernel() == "julia">
                    {field("size (px)", "size", |f| f.size.clone(), |f, v| f.size = v)}
                    {field("iterations", "max-iter", |f| f.max_iter.clone(), |f, v| f.max_iter = v)}
                    {field("tiles per side", "tiles", |f| f.tiles.clone(), |f, v| f.tiles = v)}
                </Show>
                <Show when=move || kernel() == "julia">
                    {field("c (re, im)", "julia-c", |f| f.c.clone(), |f, v| f.c = v)}
                </Show>
                <Show when=move || kernel() == "primes">
                    {field("count up to", "n", |f| f.n.clone(), |f, v| f.n = v)}
                    {field("ranges", "ranges", |f| f.ranges.clone(), |f, v| f.ranges = v)}
                </Show>
                <Show when=move || kernel() == "pi">
                    {field("samples per task", "samples", |f| f.samples.clone(), |f, v| f.samples = v)}
                    {field("tasks", "tasks", |f| f.tasks.clone(), |f, v| f.tasks = v)}
                </Show>
                {field("r (copies)", "replicas", |f| f.replicas.clone(), |f, v| f.replicas = v)}
                {field("q (quorum)", "quorum", |f| f.quorum.clone(), |f, v| f.quorum = v)}
                {field("pacing (ms)", "pacing", |f| f.pacing_ms.clone(), |f, v| f.pacing_ms = v)}
                <button type="submit" data-testid="submit" disabled=move || !joined()>"Submit"</button>
            </form>
            <p class="error" data-testid="job-error">{move || error.get()}</p>
        </section>
    }
}

fn job_ids(view: MeshView) -> Vec<JobId> {
    view.shown_jobs(|js| js.iter().map(|j| j.row.id).collect())
}

/// Every job this node takes part in: progress, canvas, task cells, output.
#[component]
fn Jobs(view: MeshView) -> impl IntoView {
    view! {
        <section class="jobs">
            <h2>"Jobs "
                <label class="toggle"><input type="checkbox" data-testid="outlines"
                    prop:checked=move || view.outlines.get()
                    on:change=move |ev| view.outlines.set(event_target_checked(&ev))/>" tile outlines"</label>
            </h2>
            <Show when=move || view.shown_jobs(Vec::is_empty)>
                <p class="empty">"No job yet. Submit one above, or with "<code>"meshwork submit"</code>"."</p>
            </Show>
            <For each=move || job_ids(view) key=|id| *id let:id>
                <JobCard view id/>
            </For>
        </section>
    }
}

/// Results computed against tasks validated, and disagreements, in words.
fn results_words(row: &JobRow) -> String {
    if row.validated == 0 {
        return String::new();
    }
    let q = u32::from(row.quorum);
    let extra = row.results.saturating_sub(q * row.validated);
    let mut s = format!(
        "{} {} computed and accepted for {} validated {} (q = {q}: {q} matching {} each",
        row.results,
        plural(row.results, "result", "results"),
        row.validated,
        plural(row.validated, "task", "tasks"),
        plural(q, "result", "results"),
    );
    if extra > 0 {
        s += &format!("; {extra} more computed again by a backup, a steal or help).");
    } else {
        s += ").";
    }
    if row.disagreed > 0 {
        s += &format!(
            " {} validated {} had a member report a different result.",
            row.disagreed,
            plural(row.disagreed, "task", "tasks")
        );
    }
    s
}

#[component]
fn JobCard(view: MeshView, id: JobId) -> impl IntoView {
    let job = Memo::new(move |_| view.shown_jobs(|js| js.iter().find(|j| j.row.id == id).cloned()));
    let get = move |f: fn(&JobView) -> String| {
        move || job.with(|j| j.as_ref().map(f).unwrap_or_default())
    };
    let state = move || {
        job.with(|j| match j {
            Some(j) if j.output.is_some() => "done",
            Some(j) if j.row.validated == j.row.tasks => "assembling",
            _ => "running",
        })
    };
    let image = job.with_untracked(|j| j.as_ref().and_then(|j| j.row.image));
    let columns = job.with_untracked(|j| j.as_ref().map_or(16, |j| j.row.columns));
    // Worked out once per change, read by the grid's attributes and its summary.
    let states = Memo::new(move |_| {
        job.with(|j| {
            j.as_ref()
                .map(|j| (cells_text(&j.row), j.row.summary()))
                .unwrap_or_default()
        })
    });
    let tasks = job.with_untracked(|j| j.as_ref().map_or(0, |j| j.row.tasks));
    let count = move |f: fn(&JobRow) -> u32| job.with(|j| j.as_ref().map_or(0, |j| f(&j.row)));
    // A click on the picture or the grid selects the task under it for the inspector.
    let pick = move |ev: web_sys::MouseEvent, cols: u32, rows: u32| {
        let Some(el) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        let (w, h) = (f64::from(el.client_width()), f64::from(el.client_height()));
        if w <= 0.0 || h <= 0.0 {
            return;
        }
        let cx = ((f64::from(ev.offset_x()) / w) * f64::from(cols)).floor() as u32;
        let cy = ((f64::from(ev.offset_y()) / h) * f64::from(rows)).floor() as u32;
        let t = cy.min(rows.saturating_sub(1)) * cols + cx.min(cols.saturating_sub(1));
        if t < tasks {
            view.selected.set(Some(Selection::Task(id, TaskId(t))));
        }
    };
    let rows = tasks.div_ceil(columns.max(1)).max(1);
    let canvas = image.map(|(w, h)| {
        view! {
            <div class="canvas" style=format!("width: min(100%, {w}px); aspect-ratio: {w} / {h}")
                on:click=move |ev| pick(ev, columns.max(1), rows)>
                <canvas id=job_dom_id("img", id) data-testid="job-canvas" width=w height=h></canvas>
                <canvas id=job_dom_id("ovl", id) class="overlay" width=w height=h
                    style:display=move || if view.outlines.get() { "block" } else { "none" }></canvas>
            </div>
        }
    });
    view! {
        <article class="job" data-testid="job" data-job-id=format!("{:016x}", id.0) data-state=state>
            <h3>{get(|j| j.row.what.clone())}</h3>
            <p class="dim">
                {format!("{id} · ")}{get(|j| format!("from {}{}", j.submitter, if j.mine { " (this tab)" } else { "" }))}
                {get(|j| format!(" · r = {}, q = {}, pacing {} ms", j.row.replication, j.row.quorum, j.row.pacing_ms))}
            </p>
            <p>
                <progress max=move || job.with(|j| j.as_ref().map_or(1, |j| j.row.tasks)) value=move || job.with(|j| j.as_ref().map_or(0, |j| j.row.validated))></progress>
                " "<span data-testid="job-progress">{get(|j| format!("{} / {} tasks validated", j.row.validated, j.row.tasks))}</span>
                " · "<span data-testid="job-state">{state}</span>
            </p>
            {canvas}
            <canvas id=job_dom_id("cells", id) class="cells" data-testid="task-grid"
                on:click=move |ev| pick(ev, columns.max(1), rows)
                data-cells=move || states.with(|(compact, _)| compact.clone())
                role="img" aria-label=move || states.with(|(_, words)| words.clone())
                width=columns * CELL_PX height=CELL_PX></canvas>
            <p class="dim" data-testid="task-summary"
                data-tasks=move || count(|r| r.tasks)
                data-waiting=move || count(|r| r.counts()[TaskState::Waiting as usize])
                data-running=move || count(|r| r.counts()[TaskState::Running as usize])
                data-validated=move || count(|r| r.counts()[TaskState::Validated as usize])
                data-short=move || count(JobRow::short)
                data-results=move || count(|r| r.results)
                data-disagreed=move || count(|r| r.disagreed)
                data-disagreed-tasks=move || job.with(|j| j.as_ref().map(|j| {
                    j.row.disagreed_tasks.iter().map(|t| t.0.to_string()).collect::<Vec<_>>().join(",")
                }).unwrap_or_default())
                data-quorum=move || count(|r| u32::from(r.quorum))
                data-replication=move || count(|r| u32::from(r.replication))>
                {move || states.with(|(_, words)| words.clone())}
            </p>
            <p class="dim" data-testid="results">{move || job.with(|j| j.as_ref().map(|j| results_words(&j.row)).unwrap_or_default())}</p>
            <p class="dim" data-testid="copies" data-lost=move || job.with(|j| j.as_ref().map_or(0, |j| j.lost))
                data-healed=move || job.with(|j| j.as_ref().map_or(0, |j| j.healed))>
                {move || job.with(|j| match j {
                    Some(j) if j.lost > 0 => format!(
                        "Since this page opened, {} {} lost a copy when a member left (red frame); {} of them {} back to {} {} at their top-ranked members (white frame).",
                        j.lost, plural(j.lost as u32, "task", "tasks"),
                        j.healed, plural(j.healed as u32, "is", "are"),
                        j.row.replication, plural(u32::from(j.row.replication), "copy", "copies"),
                    ),
                    _ => String::new(),
                })}
            </p>
            <p class="output" data-testid="job-output">{get(|j| j.output.clone().unwrap_or_default())}</p>
        </article>
    }
}

/// Every peer with its kind, connection state and round-trip time.
#[component]
fn Peers(view: MeshView) -> impl IntoView {
    let connected = move || {
        view.peers
            .with(|p| p.iter().filter(|r| r.state == "connected").count())
    };
    view! {
        <section class="peers">
            <h2>"Peers "<span class="count" data-testid="peer-count">{connected}</span></h2>
            <table data-testid="peer-list">
                <thead><tr><th>"name"</th><th>"kind"</th><th>"state"</th><th>"RTT"</th></tr></thead>
                <tbody>
                    {move || view.peers.get().into_iter().map(|p| {
                        let rtt = p.rtt_ms.map(|ms| format!("{ms:.1} ms")).unwrap_or_else(|| "–".into());
                        view! {
                            <tr data-testid="peer-row" data-peer-id=p.id.clone() data-kind=p.kind data-state=p.state
                                data-path=p.path.clone() class=format!("peer {} {}", p.kind, p.state)>
                                <td class="name" title=p.id.clone()><span class="swatch" style=format!("background: {}", p.colour)></span>{p.name.clone()}</td>
                                <td data-testid="peer-kind">{p.kind}</td>
                                <td data-testid="peer-state" title=if p.path.is_empty() { String::new() } else { format!("ICE path (local/remote candidate): {}", p.path) }>
                                    {p.state}
                                    <span class="path">{if p.path.is_empty() { String::new() } else { format!(" · {}", p.path) }}</span>
                                </td>
                                <td data-testid="peer-rtt">{rtt}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <Show when=move || view.peers.with(Vec::is_empty)>
                <p class="empty">"No other peers yet. Open this page in another tab, or run "<code>"meshwork node"</code>"."</p>
            </Show>
        </section>
    }
}

/// The log, newest first.
fn log_lines(view: MeshView) -> Vec<LogLine> {
    let f = view.log_filter.get();
    let source = if view.replaying() {
        view.replay_log
    } else {
        view.log
    };
    source.with(|log| {
        log.iter()
            .rev()
            .filter(|l| f.event.is_empty() || l.event == f.event)
            .filter(|l| f.node.is_none() || l.node == f.node)
            .filter(|l| {
                f.task
                    .is_none_or(|t| l.task.is_some_and(|(_, lt)| lt.0 == t))
            })
            .cloned()
            .collect()
    })
}

/// Joins, departures (and what became of their work), jobs, in plain words.
#[component]
fn EventLog(view: MeshView) -> impl IntoView {
    let nodes = move || {
        view.names.with(|m| {
            m.iter()
                .map(|(n, name)| view! { <option value=n.0.to_string()>{name.clone()}</option> })
                .collect_view()
        })
    };
    let set = move |f: fn(&mut LogFilter, String)| {
        move |ev: leptos::ev::Event| view.log_filter.update(|lf| f(lf, event_target_value(&ev)))
    };
    let inspect = move |l: &LogLine| {
        let sel = match (l.task, l.node) {
            (Some((j, t)), _) => Some(Selection::Task(j, t)),
            (None, Some(n)) => Some(Selection::Node(n)),
            _ => None,
        };
        move |_| {
            if sel.is_some() {
                view.selected.set(sel);
            }
        }
    };
    view! {
        <section class="log">
            <h2>"Events"</h2>
            <div class="row filters">
                <label class="field"><span>"kind"</span>
                    <select data-testid="log-kind" on:change=set(|f, v| f.event = v)>
                        {LOG_KINDS.iter().map(|(v, label)| view! { <option value=*v>{*label}</option> }).collect_view()}
                    </select>
                </label>
                <label class="field"><span>"node"</span>
                    <select data-testid="log-node" on:change=set(|f, v| f.node = v.parse().ok().map(NodeId))>
                        <option value="">"every node"</option>
                        {nodes}
                    </select>
                </label>
                <label class="field"><span>"task"</span>
                    <input data-testid="log-task" type="text" inputmode="numeric" placeholder="any"
                        on:input=set(|f, v| f.task = v.trim().parse().ok())/>
                </label>
            </div>
            <ol data-testid="event-log" reversed>
                // Keyed by line and text: a new or updated line re-renders alone.
                <For each=move || log_lines(view) key=|l| (l.seq, l.text.clone()) let:l>
                    <li data-testid="log-entry" data-event=l.event data-peer=l.peer.clone()
                        data-reason=l.reason data-ms=format!("{:.1}", l.ms) class=l.event
                        tabindex=if l.node.is_some() || l.task.is_some() { "0" } else { "-1" }
                        on:click=inspect(&l)>{l.text.clone()}
                        {web_ui::guide::topic_for(l.event, l.reason).map(|id| view! {
                            " "<a class="why" href=format!("#guide-{id}") data-testid="log-why"
                                on:click=move |_| open_topic(id)>"why?"</a>
                        })}
                    </li>
                </For>
            </ol>
        </section>
    }
}

/// Opens a topic of the guide (the link then scrolls to it).
fn open_topic(id: &str) {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&format!("guide-{id}")))
    {
        let _ = el.set_attribute("open", "");
    }
}

/// The learner's guide: each mechanism in plain words; events link to it.
#[component]
fn Guide() -> impl IntoView {
    view! {
        <section class="guide" aria-labelledby="guide-title">
            <h2 id="guide-title">"How it works"</h2>
            {web_ui::guide::TOPICS.iter().map(|t| view! {
                <details id=format!("guide-{}", t.id) data-testid="guide-topic">
                    <summary>{t.title}</summary>
                    {t.text.iter().map(|p| view! { <p>{*p}</p> }).collect_view()}
                </details>
            }).collect_view()}
        </section>
    }
}

/// Mounts the app on the page (or, with `?bench=tile` or `?bench=kernels`, a worker
/// benchmark).
pub fn start() {
    console_error_panic_hook::set_once();
    let bench = match query_param("bench").as_deref() {
        Some("tile") => Some(crate::bench::Which::Tile),
        Some("kernels") => Some(crate::bench::Which::Kernels),
        _ => None,
    };
    if let Some(which) = bench {
        leptos::mount::mount_to_body(move || {
            crate::bench::BenchPage(crate::bench::BenchPageProps { which })
        });
    } else {
        leptos::mount::mount_to_body(App);
    }
}
