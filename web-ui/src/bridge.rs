//! The node bridge: the node's start-up (the signaling socket, the page's hooks, the run
//! loop) and [`Shell`], what the run loop calls back. It hands tasks to the worker
//! [`Pool`], turns the node's events into log lines, and after each step refreshes the
//! view's signals (at most every [`REFRESH_MS`] for jobs) and paints the canvases. The
//! components only read what it writes.

use std::collections::{BTreeMap, BTreeSet};

use futures_channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use node_core::driver::{Page, PageInput, run_web, web_now};
use node_core::engine::{Command, Event};
use node_core::job::{JobId, NodeId, TaskId};
use node_core::kernels::{JobOutput, Kernel};
use node_core::membership::LeftReason;
use node_core::membership::{MembershipConfig, MeshEvent, PeerState};
use node_core::node::{MeshNode, NodeEvent, node_id};
use node_core::signal::PeerInfo;
use node_core::transport::web::WebTransport;
use node_core::wire::ConsoleCmd;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_ui::inspect;
use web_ui::model::{
    self, Departure, Flashes, GraphNode, JobRow, RateMeter, colour, remember_colour,
};

use crate::graph::{GONE_SHOWN_MS, GRAPH_MS, Sampler};
use crate::pool::Pool;
use crate::view::{
    Gone, JobView, MeshView, PeerRow, RatesView, Selection, ms_now, presenter_key, query_param,
};
use web_ui::paint::Painter;

/// Jobs are re-read from the engine at most this often (ms).
const REFRESH_MS: f64 = 100.0;
/// Jobs are re-read at least this often (ms) even when no event said they changed:
/// facts that arrive by gossip (a copy confirmed, a late report) change the board
/// without an event, and a finished job has no more events to wait for.
const STALE_MS: f64 = 500.0;
/// A departure's log line is updated for at most this long (ms).
const DEPARTURE_FOLLOW_MS: f64 = 30_000.0;
/// Names remembered for nodes (members and former members).
const NAMES_MAX: usize = 1024;
/// Most workers the page starts.
pub(crate) const WORKERS_MAX: u16 = 64;
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
        let moving = !self.following.is_empty() || !self.flashes.is_empty() || self.painter.behind;
        let since = now - self.refreshed_at;
        if ((self.dirty || moving) && since >= REFRESH_MS) || since >= STALE_MS {
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
