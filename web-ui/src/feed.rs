//! The view's feed: what a page shows of its node, worked out from the node alone and
//! handed out as a list of changes ([`ViewOp`]). [`Feed`] turns the node's events into
//! log lines and, after each step, reads the node for the rows the panels show (peers,
//! jobs, the graph, rates, the inspector's words); it emits a change only when what it
//! read differs from what it last emitted. Applying every change in order to an empty
//! view gives the view a fresh feed would emit for the node now ([`ViewModel`] is that
//! view as plain data; the page's signals are another). The feed touches no browser
//! API, so it is tested natively, and runs wherever the node runs.

use std::collections::{BTreeMap, BTreeSet};

use node_core::engine::{Command, Event};
use node_core::job::{JobId, NodeId, TaskId};
use node_core::kernels::{JobOutput, mandelbrot};
use node_core::membership::{LeftReason, MeshEvent, Micros, PeerState};
use node_core::node::{MeshNode, NodeEvent, node_id};
use node_core::signal::{ErrorCode, PeerId, PeerInfo};
use node_core::wire::ConsoleCmd;
use serde::{Deserialize, Serialize};

use crate::inspect::{self, Load};
use crate::model::{
    self, Departure, Flashes, GraphNode, JobRow, RateMeter, colour, remember_colour,
};

/// Jobs are re-read from the engine at most this often (ms).
pub const REFRESH_MS: f64 = 100.0;
/// Jobs are re-read at least this often (ms) even when no event said they changed:
/// facts that arrive by gossip (a copy confirmed, a late report) change the board
/// without an event, and a finished job has no more events to wait for.
pub const STALE_MS: f64 = 500.0;
/// The graph is rebuilt at most this often (ms): pulses are sampled at this rate.
pub const GRAPH_MS: f64 = 150.0;
/// A departed member stays on the graph this long (ms).
pub const GONE_SHOWN_MS: f64 = 6_000.0;
/// Result bytes sent to the page for its pictures at most per read of the jobs: a tab
/// that joins mid-job gets hundreds of tiles over a few reads instead of in one message
/// (the page paints for 6 ms at a time anyway).
pub const TILE_BYTES_MAX: usize = 256 << 10;

/// A tile's preview was sent to the page ([`Feed`]'s record of what it sent).
const SENT_PREVIEW: u8 = 1;
/// A tile's full bytes were sent to the page.
const SENT_TILE: u8 = 2;
/// Most lines kept in the event log.
pub const LOG_LEN_MAX: usize = 200;
/// A departure's log line is updated for at most this long (ms).
const DEPARTURE_FOLLOW_MS: f64 = 30_000.0;
/// Names remembered for nodes (members and former members).
const NAMES_MAX: usize = 1024;
/// Departures remembered for the inspector's "its first owner left".
const DEPARTED_MAX: usize = 64;
/// Tasks per job the view scans for each member's load.
const LOAD_TASKS_MAX: u32 = 4096;

/// One peer as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct PeerRow {
    pub id: String,
    pub name: String,
    pub kind: String,
    pub state: String,
    /// Last round trip, rounded to 0.1 ms so the view does not churn on noise.
    pub rtt_ms: Option<f64>,
    pub colour: String,
    /// The ICE path of the connection: the local and remote candidate kinds, "host/host"
    /// on one network, "relay/…" through a TURN server; empty until known.
    pub path: String,
}

/// Event kinds the log can be narrowed to, with their labels.
pub const LOG_KINDS: &[(&str, &str)] = &[
    ("", "every kind"),
    ("joined", "joins"),
    ("left", "departures"),
    ("job", "jobs"),
    ("done", "finished jobs"),
    ("warning", "warnings, liars"),
    ("console", "console"),
];

/// One line of the event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogLine {
    /// Sequence number, the list key: the feed numbers its lines 0, 1, 2...
    pub seq: u64,
    /// "joined", "left", "job", "done", "warning" or "console".
    pub event: String,
    /// The node the line is about, if one.
    pub node: Option<NodeId>,
    /// The task the line is about, if one.
    pub task: Option<(JobId, TaskId)>,
    /// The peer a join or departure is about.
    pub peer: String,
    /// How a departure was noticed; empty otherwise.
    pub reason: String,
    /// Join: time to connect. Departure: time since the peer was last heard.
    pub ms: f64,
    pub text: String,
}

impl LogLine {
    /// A line read back from a recording.
    pub fn replayed(seq: u64, event: &str, text: String) -> LogLine {
        let event = LOG_KINDS
            .iter()
            .map(|(k, _)| *k)
            .find(|k| *k == event)
            .unwrap_or("");
        LogLine {
            seq,
            event: event.to_string(),
            node: None,
            task: None,
            peer: String::new(),
            reason: "".to_string(),
            ms: 0.0,
            text,
        }
    }
}

/// One job as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobView {
    pub row: JobRow,
    pub submitter: String,
    pub mine: bool,
    /// The output in words, once assembled here.
    pub output: Option<String>,
    /// Tasks that lost a copy to a departure, and tasks healed, since the page loaded.
    pub lost: u64,
    pub healed: u64,
    /// Why it validated nothing for [`model::STALL_MS`], while it does not.
    #[serde(default)]
    pub stalled: Option<String>,
    /// Shown from previews, every task validated and every tile's preview (or the tile)
    /// here; not assembled ([`node_core::engine::Engine::is_previewed`]).
    #[serde(default)]
    pub previewed: bool,
    /// Shown from previews where no tile is held here, not assembled
    /// ([`node_core::engine::Engine::is_watching`]).
    #[serde(default)]
    pub watching: bool,
}

/// The numbers panel: tasks per second, in total and per node.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RatesView {
    /// Validated tasks per second, each second of the last minute.
    pub series: Vec<f64>,
    pub total: f64,
    /// Results computed per second, all members together.
    pub results: f64,
    /// Name, colour and results per second of every node computing now.
    pub per: Vec<(String, String, f64)>,
    pub speedup: Option<f64>,
}

/// What a click selected for the inspector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Selection {
    Node(NodeId),
    Task(JobId, TaskId),
}

/// A message crossing an edge, drawn once as a dot moving along it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pulse {
    pub seq: u64,
    pub peer: String,
    /// From the peer to this node.
    pub inbound: bool,
}

/// A member that left, kept on the graph for a while.
#[derive(Clone, Debug)]
pub struct Gone {
    pub node: GraphNode,
    pub until: f64,
}

/// One change to the view, in the order the feed made them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ViewOp {
    /// This node joined, as this member.
    Me(PeerInfo),
    /// The status line under the title.
    Status(String),
    /// A member's name and colour slot, for every line and square that names it.
    Member {
        node: NodeId,
        name: String,
        colour: u8,
    },
    /// A new line of the log, numbered one past the previous line.
    Log(LogLine),
    /// Line `seq` now reads `text`.
    Relog {
        seq: u64,
        text: String,
    },
    /// Line `seq` gets `more` at its end.
    LogAppend {
        seq: u64,
        more: String,
    },
    /// The peers table.
    Peers(Vec<PeerRow>),
    /// The jobs were read again: the painter draws what changed on its canvases (tiles
    /// arrive without a change to the rows). `jobs` (newest first) is set when the rows
    /// changed; `flashes` are the tasks that lost a copy or healed.
    Jobs {
        jobs: Option<Vec<JobView>>,
        flashes: Flashes,
    },
    /// A job's output, assembled here: its picture is drawn from it.
    Finished(JobId, JobOutput),
    /// Result bytes held here that the page has not been sent, for the job's picture
    /// (an image job: `params` say where each tile goes), and previews fetched here of
    /// tiles not held ([`node_core::kernels::preview`]; a full tile sent later replaces
    /// its preview). Sent before the `Jobs` read they belong to.
    Tiles {
        job: JobId,
        params: mandelbrot::Params,
        tiles: Vec<(TaskId, Vec<u8>)>,
        previews: Vec<(TaskId, Vec<u8>)>,
    },
    /// The graph's members, at every rebuild (the time machine records each).
    Graph(Vec<GraphNode>),
    /// Messages that crossed edges since the last rebuild (empty: none since).
    Pulses(Vec<Pulse>),
    Rates(RatesView),
    /// The inspector's words for the selection.
    Inspect(String),
    /// Why this node went silent (failed or sent away by a presenter), or (`None`) that
    /// it speaks again (revived).
    Halted(Option<String>),
    /// Whether any live member is paused, and the longest slow motion of any, as the
    /// members announce them.
    Paused(bool),
    SlowMs(u32),
    /// Back from a recorded moment: every picture is drawn again, from tiles sent
    /// again after this.
    Redraw,
    /// The signaling server is here (`None`) or away: `Some(back_in_ms)`, with how long
    /// until it takes the room back when it said (a presenter took it away).
    ServerAway(Option<Option<u64>>),
    /// This node's data-channel bytes so far, after a job it saw finish:
    /// `[out, in, packed in, what the packed bytes stood for]`.
    Traffic([u64; 4]),
}

/// What the feed needs to know of the page.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PageState {
    /// What the inspector explains.
    pub selected: Option<Selection>,
    /// A recorded moment is on screen instead of the live view.
    pub replaying: bool,
    /// The painter left tiles undrawn at its last paint: jobs are sent again soon.
    pub painting_behind: bool,
}

/// The view as plain data: the result of applying a feed's changes.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ViewModel {
    pub me: Option<PeerInfo>,
    pub status: String,
    pub names: BTreeMap<NodeId, String>,
    pub log: Vec<LogLine>,
    pub peers: Vec<PeerRow>,
    pub jobs: Vec<JobView>,
    pub graph: Vec<GraphNode>,
    pub rates: RatesView,
    pub inspect: String,
    pub halted: Option<String>,
    pub paused: bool,
    pub slow_ms: u32,
    pub finished: BTreeSet<JobId>,
    /// The signaling server away, and how long until it is back if said.
    pub server_away: Option<Option<u64>>,
    /// Per job, the tasks whose tile or preview was received (since the last redraw),
    /// and how many tiles in all.
    pub tiles: BTreeMap<JobId, BTreeSet<TaskId>>,
    pub tiles_received: usize,
    /// Previews received, in all.
    pub previews_received: usize,
}

impl ViewModel {
    pub fn apply(&mut self, op: ViewOp) {
        match op {
            ViewOp::Me(me) => self.me = Some(me),
            ViewOp::Status(s) => self.status = s,
            ViewOp::Member { node, name, .. } => {
                self.names.insert(node, name);
            }
            ViewOp::Log(line) => {
                self.log.push(line);
                if self.log.len() > LOG_LEN_MAX {
                    self.log.remove(0);
                }
            }
            ViewOp::Relog { seq, text } => {
                if let Some(l) = self.log.iter_mut().find(|l| l.seq == seq) {
                    l.text = text;
                }
            }
            ViewOp::LogAppend { seq, more } => {
                if let Some(l) = self.log.iter_mut().find(|l| l.seq == seq) {
                    l.text += &more;
                }
            }
            ViewOp::Peers(p) => self.peers = p,
            ViewOp::Jobs { jobs, .. } => {
                if let Some(jobs) = jobs {
                    self.jobs = jobs;
                }
            }
            ViewOp::Finished(job, _) => {
                self.finished.insert(job);
            }
            ViewOp::Graph(g) => self.graph = g,
            ViewOp::Rates(r) => self.rates = r,
            ViewOp::Inspect(w) => self.inspect = w,
            ViewOp::Halted(h) => self.halted = h,
            ViewOp::Paused(p) => self.paused = p,
            ViewOp::SlowMs(ms) => self.slow_ms = ms,
            ViewOp::Tiles {
                job,
                tiles,
                previews,
                ..
            } => {
                self.tiles_received += tiles.len();
                self.previews_received += previews.len();
                let got = self.tiles.entry(job).or_default();
                got.extend(tiles.into_iter().chain(previews).map(|(t, _)| t));
            }
            ViewOp::Redraw => self.tiles.clear(),
            ViewOp::ServerAway(away) => self.server_away = away,
            // Flashes, and a benchmark's reading: not the view's state.
            ViewOp::Pulses(_) | ViewOp::Traffic(_) => {}
        }
    }
}

/// Works out the view from the node's events and state; see the module's words.
#[derive(Default)]
pub struct Feed {
    me: Option<NodeId>,
    /// This tab joined with the presenter key: it assembles every job whole, since its
    /// screen is the one the room looks at. Other tabs show others' image jobs from
    /// previews.
    presenter: bool,
    /// Previews the engine had received at the last step.
    previews_seen: u64,
    /// Jobs whose picture was whole from previews at a refresh (their traffic was told).
    shown_whole: BTreeSet<JobId>,
    names: BTreeMap<NodeId, String>,
    /// Changes not yet taken.
    ops: Vec<ViewOp>,
    /// Commands for the node (a job to assemble here).
    commands: Vec<Command>,
    /// The next log line's number.
    log_seq: u64,
    /// Outputs assembled here, in words.
    outputs: BTreeMap<JobId, String>,
    /// Departures just logged, to be noted against the engine's state after this step.
    departed: Vec<(NodeId, String, u64)>,
    /// Departures followed: the log line, what it held, since when, its words now.
    following: Vec<(u64, Departure, f64, String)>,
    dirty: bool,
    /// When jobs were last read (ms); `None`: never, or read them at the next step.
    refreshed_at: Option<f64>,
    /// The graph: message counters, recent departures, when it was last built.
    sampler: Sampler,
    gone: Vec<Gone>,
    graph_at: Option<f64>,
    /// What was last emitted, to emit only changes.
    graph: Vec<GraphNode>,
    peers: Vec<PeerRow>,
    jobs: Vec<JobView>,
    rates: RatesView,
    inspect: String,
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
    /// The rows last read from the engine.
    last_rows: Vec<JobRow>,
    /// Whether the page showed a recorded moment at the last step.
    was_replaying: bool,
    rate_meter: RateMeter,
    /// Whether the last sample sent pulses.
    pulsed: bool,
    /// Per image job, what of each tile was sent to the page (since the last redraw):
    /// [`SENT_PREVIEW`] or [`SENT_TILE`], 0 for nothing.
    tiles_sent: BTreeMap<JobId, Vec<u8>>,
    /// Tiles held here were left unsent at the last read (its budget was spent).
    tiles_behind: bool,
    /// Per job, the log line that counts its tasks with different results (one line,
    /// said again with each new one, instead of a line per task): its number, the first
    /// task and how many.
    mismatch_lines: BTreeMap<JobId, (u64, TaskId, u32)>,
    /// The banners' pause and slow motion as last sent.
    paused: bool,
    slow_ms: u32,
    /// Per unfinished job: tasks validated, since when, and why it is stuck once it
    /// is (bounded by the jobs).
    stalls: BTreeMap<JobId, (u32, f64, Option<String>)>,
    /// When each job held was first seen (a count), and how many have been.
    job_order: BTreeMap<JobId, u64>,
    jobs_seen: u64,
}

/// Jobs whose disagreements keep a line of their own (the oldest line gives way).
const MISMATCH_LINES_MAX: usize = 16;

/// The words of a job's disagreements: `count` tasks, the first `first`, the latest
/// `latest`.
fn mismatch_words(job: JobId, first: TaskId, latest: TaskId, count: u32) -> String {
    if count == 1 {
        format!(
            "{job} {first}: members reported different results (click for who, and what it proves)"
        )
    } else {
        format!(
            "{job}: members reported different results for {count} tasks (latest {latest}; click for the first, {first}: who, and what it proves)"
        )
    }
}

impl Feed {
    pub fn new() -> Feed {
        Feed::default()
    }

    /// The changes made since the last call, in order.
    pub fn take(&mut self) -> Vec<ViewOp> {
        std::mem::take(&mut self.ops)
    }

    /// Commands the feed has for the node (every member's job is assembled here).
    pub fn take_commands(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.commands)
    }

    fn name(&self, n: NodeId) -> String {
        name_in(&self.names, n)
    }

    fn member(&mut self, p: &PeerInfo) {
        let n = node_id(&p.id);
        remember_colour(n, p.colour);
        if self.names.len() < NAMES_MAX || self.names.contains_key(&n) {
            self.names.insert(n, p.name.clone());
            self.ops.push(ViewOp::Member {
                node: n,
                name: p.name.clone(),
                colour: p.colour,
            });
        }
    }

    fn push(&mut self, mut line: LogLine) -> u64 {
        line.seq = self.log_seq;
        self.log_seq += 1;
        let seq = line.seq;
        self.ops.push(ViewOp::Log(line));
        seq
    }

    fn log(
        &mut self,
        event: &'static str,
        peer: &str,
        reason: &'static str,
        ms: f64,
        text: String,
    ) -> u64 {
        self.push(LogLine {
            seq: 0,
            event: event.to_string(),
            node: (!peer.is_empty()).then(|| node_id(&PeerId(peer.to_string()))),
            task: None,
            peer: peer.to_string(),
            reason: reason.to_string(),
            ms,
            text,
        })
    }

    /// A line about a node or a task, which a click on it inspects.
    fn log_about(
        &mut self,
        event: &'static str,
        node: Option<NodeId>,
        task: Option<(JobId, TaskId)>,
        text: String,
    ) -> u64 {
        self.push(LogLine {
            seq: 0,
            event: event.to_string(),
            node,
            task,
            peer: String::new(),
            reason: "".to_string(),
            ms: 0.0,
            text,
        })
    }

    fn on_engine(&mut self, e: &Event) {
        match e {
            Event::JobAccepted {
                job,
                tasks,
                submitter,
            } => {
                if Some(*submitter) != self.me {
                    // A presenter's tab assembles every job whole; any other shows
                    // another's picture from previews, 1/16 of the bytes (jobs without
                    // pictures are assembled anyway: their results are a few words).
                    // The card's button fetches the full picture on request.
                    self.commands.push(if self.presenter {
                        Command::Assemble { job: *job }
                    } else {
                        Command::Watch { job: *job }
                    });
                }
                let who = self.name(*submitter);
                self.log(
                    "job",
                    "",
                    "",
                    0.0,
                    format!("job {job} from {who}: {tasks} tasks"),
                );
            }
            Event::JobRefused { job, why } => {
                self.log("warning", "", "", 0.0, format!("job {job} refused: {why}"));
            }
            Event::JobDone {
                job,
                output,
                timings,
            } => {
                let words = model::output_words(output);
                let secs = timings.assembled_at.since(timings.started_at) as f64 / 1000.0;
                self.log(
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
                self.ops.push(ViewOp::Finished(*job, output.clone()));
                self.refreshed_at = None;
            }
            Event::JobFailed { job, why } => {
                self.log("warning", "", "", 0.0, format!("job {job} failed: {why}"));
            }
            Event::JobCancelled { job } => {
                self.log(
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
                    self.name(*node),
                    if *everywhere {
                        "in any job"
                    } else {
                        "in this job"
                    }
                );
                self.log_about("warning", Some(*node), Some((*job, *task)), text);
            }
            Event::TaskMismatch { job, task } => {
                // One line per job, counting: a liar in a big job makes hundreds of
                // these, which would push every other line out of the log.
                let log_seq = self.log_seq;
                match self.mismatch_lines.get_mut(job) {
                    Some((seq, first, count)) if log_seq - *seq < LOG_LEN_MAX as u64 => {
                        *count += 1;
                        let text = mismatch_words(*job, *first, *task, *count);
                        self.ops.push(ViewOp::Relog { seq: *seq, text });
                    }
                    _ => {
                        let text = mismatch_words(*job, *task, *task, 1);
                        let seq = self.log_about("warning", None, Some((*job, *task)), text);
                        self.mismatch_lines.insert(*job, (seq, *task, 1));
                        if self.mismatch_lines.len() > MISMATCH_LINES_MAX
                            && let Some(oldest) = self
                                .mismatch_lines
                                .iter()
                                .min_by_key(|(_, (seq, _, _))| *seq)
                                .map(|(j, _)| *j)
                        {
                            self.mismatch_lines.remove(&oldest);
                        }
                    }
                }
            }
            _ => {}
        }
        self.dirty = true;
    }

    fn on_console(&mut self, from: Option<&PeerInfo>, cmd: &ConsoleCmd, obeyed: bool) {
        let who = from.map_or_else(|| "this tab".to_string(), |p| p.name.clone());
        let node = from.map(|p| node_id(&p.id));
        if !obeyed {
            let text = format!(
                "ignored a console command from {who} ({cmd}): it did not join with the presenter key"
            );
            self.log_about("warning", node, None, text);
            return;
        }
        self.log_about(
            "console",
            node,
            None,
            format!("console: {cmd} (from {who})"),
        );
        match cmd {
            ConsoleCmd::Fail => self.ops.push(ViewOp::Halted(Some(
                "The presenter failed this node: it now answers nothing, as a crashed machine would, and the others notice only its silence. The presenter's reset brings it back (or reload the page).".into(),
            ))),
            ConsoleCmd::Leave => self.ops.push(ViewOp::Halted(Some(
                "This node left the mesh at the presenter's request. Reload the page to join again.".into(),
            ))),
            // Pause and slow motion show from the members' announced states (see
            // `build`), which a reloaded tab learns too.
            _ => {}
        }
    }

    /// Keeps a member that left on the graph a few seconds, dashed, with `note`.
    fn show_gone(&mut self, now_ms: f64, peer: &PeerInfo, note: String) {
        let n = node_id(&peer.id);
        let last = self.graph.iter().find(|g| g.peer == peer.id.0).cloned();
        let mut gone = last.unwrap_or_else(|| GraphNode {
            peer: peer.id.0.clone(),
            node: n,
            name: peer.name.clone(),
            kind: peer.kind.as_str().to_string(),
            state: "gone".to_string(),
            presenter: peer.presenter,
            rtt_ms: None,
            load: Load::default(),
            liar: false,
            note: String::new(),
            colour: peer.colour,
            background: false,
            paused: false,
            slow_ms: 0,
            told_to_lie: false,
            cut: Vec::new(),
        });
        gone.state = "gone".to_string();
        gone.rtt_ms = None;
        gone.background = false;
        gone.note = note;
        self.gone.retain(|g| g.node.peer != peer.id.0);
        self.gone.push(Gone {
            node: gone,
            until: now_ms + GONE_SHOWN_MS,
        });
    }

    /// One event of the node, as it happens.
    pub fn on_event(&mut self, now: Micros, e: &NodeEvent) {
        let now_ms = now.as_ms_f64();
        match e {
            NodeEvent::Joined { me, .. } => {
                self.me = Some(node_id(&me.id));
                self.presenter = me.presenter;
                self.member(me);
                self.ops.push(ViewOp::Me(me.clone()));
                self.ops.push(ViewOp::Status("joined".into()));
                self.ops.push(ViewOp::ServerAway(None));
            }
            NodeEvent::Mesh(MeshEvent::PeerConnected {
                peer, connect_ms, ..
            }) => {
                // An id seen before is a member coming back (a reloaded tab, a node
                // that resumed): the same node to placement, not a new one.
                let back = self.names.contains_key(&node_id(&peer.id));
                self.member(peer);
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
                self.log("joined", &peer.id.0, "", *connect_ms, text);
            }
            // A peer this node never connected to was never shown as a member: its end
            // is no news, and "went silent" or "left" would be false (an attempt that
            // failed; a member a presenter failed, whose transport answers but which
            // never speaks, given up on after a minute).
            NodeEvent::Mesh(MeshEvent::PeerLeft {
                peer,
                was_connected: false,
                ..
            }) => {
                self.no_address.remove(&peer.id.0);
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
                let seq = self.log(
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
                        now_ms / 1000.0
                    )
                } else {
                    format!("left at {:.1} s: {how}", now_ms / 1000.0)
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
                    self.show_gone(now_ms, peer, note);
                }
                self.graph_at = None;
            }
            NodeEvent::Mesh(MeshEvent::PeerBack { peer, silent_ms }) => {
                let n = node_id(&peer.id);
                let text = format!(
                    "{} ({}) is back: it was silent {:.1} s; a member again, its results and copies count again",
                    peer.name,
                    peer.kind,
                    silent_ms / 1000.0
                );
                self.log("joined", &peer.id.0, "back", *silent_ms, text);
                self.departed_words.retain(|(d, _)| *d != n);
                // Its departure's line says it came back, and is followed no more.
                let mut appended = Vec::new();
                self.following.retain(|(seq, d, _, _)| {
                    if d.node == n {
                        appended.push(*seq);
                    }
                    d.node != n
                });
                for seq in appended {
                    let more = format!(" It came back {:.1} s later.", silent_ms / 1000.0);
                    self.ops.push(ViewOp::LogAppend { seq, more });
                }
                self.graph_at = None;
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
                self.log("left", &peer.id.0, reason.as_str(), 0.0, text);
                self.show_gone(now_ms, peer, format!("left: {how}"));
                self.graph_at = None;
            }
            NodeEvent::Mesh(MeshEvent::Background { peer, on }) => {
                let name = self.name(node_id(peer));
                let text = if *on {
                    format!(
                        "{name} went to the background (its tab is hidden): the others now wait 10 s before they take its silence for a departure"
                    )
                } else {
                    format!("{name} is in the foreground again")
                };
                self.log("joined", &peer.0, "background", 0.0, text);
                self.graph_at = None;
            }
            NodeEvent::Mesh(MeshEvent::LinkCut { peer }) => {
                let text = format!(
                    "the link to {} was cut by the presenter: each side treats the other as gone",
                    peer.name
                );
                self.log("left", &peer.id.0, "cut", 0.0, text);
            }
            NodeEvent::Mesh(MeshEvent::LinkRestored { peer }) => {
                let text = format!(
                    "the link to {} was restored: it is a member again, with what it kept",
                    peer.name
                );
                self.log("joined", &peer.id.0, "", 0.0, text);
            }
            NodeEvent::Console { from, cmd, obeyed } => {
                self.on_console(from.as_ref(), cmd, *obeyed)
            }
            // The graph shows it, and the banners whether anyone is paused or slowed.
            NodeEvent::ConsoleState { .. } => self.dirty = true,
            NodeEvent::Revived { by } => {
                let who = by.as_ref().map_or("a presenter", |p| p.name.as_str());
                let node = by.as_ref().map(|p| node_id(&p.id));
                let text = format!(
                    "console: revived by {who}: this node speaks again and enters the room again; the others see it come back"
                );
                self.log_about("console", node, None, text);
                self.ops.push(ViewOp::Halted(None));
            }
            // A tab never asks for the count: its task rows show each task's copies.
            NodeEvent::Mesh(_) | NodeEvent::CopiesShort(_) => {}
            NodeEvent::Traffic(t) => self.ops.push(ViewOp::Traffic([
                t.bytes_out,
                t.bytes_in,
                t.packed_in,
                t.unpacked_in,
            ])),
            NodeEvent::BulkDone { peer, bytes, secs } => {
                let mib_s = *bytes as f64 / 1_048_576.0 / secs.max(1e-9);
                let text = format!(
                    "bulk benchmark: {} counted {bytes} bytes from this tab in {:.0} ms ({mib_s:.1} MiB/s)",
                    self.name(node_id(peer)),
                    secs * 1000.0
                );
                self.log("bulk", &peer.0, "", secs * 1000.0, text);
            }
            NodeEvent::Engine(e) => self.on_engine(e),
            NodeEvent::SignalingError {
                code,
                message,
                retry_after_ms,
            } => {
                self.ops
                    .push(ViewOp::Status(format!("signaling error: {message}")));
                if *code == ErrorCode::ServerAway {
                    self.ops.push(ViewOp::ServerAway(Some(*retry_after_ms)));
                }
            }
            NodeEvent::SignalingClosed => {
                self.ops.push(ViewOp::Status(
                    "signaling away, mesh still working: reconnecting…".into(),
                ));
                self.ops.push(ViewOp::ServerAway(Some(None)));
            }
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
            // Once per peer until it connects or leaves, not once per attempt (an
            // attempt that cannot connect is tried again every few seconds).
            NodeEvent::NoLocalAddress { peer } if self.no_address.insert(peer.0.clone()) => {
                let text = format!(
                    "this browser offered no network address for WebRTC, so it cannot connect to {}: \
                     it gathered no ICE candidate (a privacy setting, or no usable network interface)",
                    peer.0
                );
                self.log("warning", &peer.0, "no_local_address", 0.0, text);
            }
            NodeEvent::NoLocalAddress { .. } => {}
            NodeEvent::SignalingBack { peers } => {
                self.ops.push(ViewOp::Status(format!(
                    "signaling back: the server knows {peers} other member(s) again"
                )));
                self.ops.push(ViewOp::ServerAway(None));
            }
        }
    }

    /// The node after a step: what changed in the rows the page shows.
    pub fn on_change(&mut self, now: Micros, node: &MeshNode, page: &PageState) {
        let now_ms = now.as_ms_f64();
        let peers = peer_rows(node, &self.paths);
        if peers != self.peers {
            self.peers.clone_from(&peers);
            self.ops.push(ViewOp::Peers(peers));
        }
        if let Some(engine) = node.engine() {
            for (n, headline, seq) in std::mem::take(&mut self.departed) {
                let d = Departure::new(engine, n, headline.clone());
                self.flashes
                    .lost(d.held.iter().map(|(j, t, _)| (*j, *t)), now_ms);
                self.following.push((seq, d, now_ms, headline));
                self.dirty = true;
            }
        }
        if self.was_replaying && !page.replaying {
            // Back to live: every picture is drawn again from the node's bytes.
            self.ops.push(ViewOp::Redraw);
            self.tiles_sent.clear();
            self.dirty = true;
            self.refreshed_at = None;
        }
        self.was_replaying = page.replaying;
        self.refresh_graph(now, node);
        if page.selected != self.inspected {
            self.dirty = true;
            self.refreshed_at = None;
        }
        // Previews arrive without an event: a new one is a change to draw.
        if let Some(n) = node.engine().map(|e| e.stats().previews_received)
            && n != self.previews_seen
        {
            self.previews_seen = n;
            self.dirty = true;
        }
        let moving = !self.following.is_empty()
            || !self.flashes.is_empty()
            || page.painting_behind
            || self.tiles_behind;
        let since = self.refreshed_at.map_or(f64::INFINITY, |at| now_ms - at);
        if ((self.dirty || moving) && since >= REFRESH_MS) || since >= STALE_MS {
            self.dirty = false;
            self.refreshed_at = Some(now_ms);
            self.refresh_jobs(now_ms, node, page.selected);
        }
    }

    fn refresh_jobs(&mut self, now_ms: f64, node: &MeshNode, selected: Option<Selection>) {
        let Some(engine) = node.engine() else { return };
        let mut rows = model::job_rows(engine);
        // In the order this node learnt of them (a job's id is a hash, no order): the
        // newest last here, first on the page, so that the stage shows the current one.
        self.job_order
            .retain(|id, _| rows.iter().any(|r| r.id == *id));
        for r in &rows {
            if !self.job_order.contains_key(&r.id) {
                self.jobs_seen += 1;
                self.job_order.insert(r.id, self.jobs_seen);
            }
        }
        rows.sort_by_key(|r| self.job_order.get(&r.id).copied());
        self.flashes.update(&rows, now_ms);
        self.note_stalls(&rows, now_ms);
        self.last_rows.clone_from(&rows);
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
                    submitter: self.name(row.submitter),
                    mine: Some(row.submitter) == self.me,
                    output: self.outputs.get(&row.id).cloned(),
                    lost,
                    healed,
                    stalled: self.stalls.get(&row.id).and_then(|s| s.2.clone()),
                    previewed: engine.is_previewed(row.id),
                    watching: engine.is_watching(row.id),
                    row,
                }
            })
            .collect();
        // A job shown whole from previews is as finished here as an assembled one: its
        // traffic is told as a finished job's is (`window.__meshworkTraffic`).
        for j in &jobs {
            if j.previewed && self.shown_whole.insert(j.row.id) {
                let t = &node.stats().traffic;
                self.ops.push(ViewOp::Traffic([
                    t.bytes_out,
                    t.bytes_in,
                    t.packed_in,
                    t.unpacked_in,
                ]));
            }
        }
        self.send_tiles(engine);
        let changed = jobs != self.jobs;
        if changed {
            self.jobs.clone_from(&jobs);
        }
        self.ops.push(ViewOp::Jobs {
            jobs: changed.then_some(jobs),
            flashes: self.flashes.clone(),
        });
        let names = &self.names;
        let name = |n: NodeId| name_in(names, n);
        let ops = &mut self.ops;
        self.following.retain_mut(|(seq, d, since, words)| {
            let (mut text, done) = d.summary(engine, name);
            if done && !(d.unfinished.is_empty() && d.held.is_empty()) {
                text += &format!(
                    " (all of it elsewhere {:.0} ms after the departure was noticed)",
                    now_ms - *since
                );
            }
            // The log's readers run again only when the words changed.
            if text != *words {
                words.clone_from(&text);
                ops.push(ViewOp::Relog { seq: *seq, text });
            }
            !done && now_ms - *since < DEPARTURE_FOLLOW_MS
        });
        self.outputs.retain(|id, _| engine.job_spec(*id).is_some());
        self.inspect(node, selected);
    }

    /// Follows each unfinished job's progress: one that validated nothing for
    /// [`model::STALL_MS`] gets its reason (from the graph last built) and a log line,
    /// once per stall; progress clears it.
    fn note_stalls(&mut self, rows: &[JobRow], now_ms: f64) {
        self.stalls.retain(|id, _| rows.iter().any(|r| r.id == *id));
        let live: Vec<&GraphNode> = self.graph.iter().filter(|g| g.state == "live").collect();
        let lying = live.iter().filter(|g| g.told_to_lie).count();
        let caught = live.iter().filter(|g| g.liar && !g.told_to_lie).count();
        let paused = live.iter().filter(|g| g.paused).count();
        let mut said = Vec::new();
        for r in rows {
            if r.validated == r.tasks {
                self.stalls.remove(&r.id);
                continue;
            }
            let entry = self
                .stalls
                .entry(r.id)
                .or_insert((r.validated, now_ms, None));
            if entry.0 != r.validated {
                *entry = (r.validated, now_ms, None);
                continue;
            }
            if now_ms - entry.1 < model::STALL_MS {
                continue;
            }
            let words = model::stall_words(r.quorum, live.len(), lying, caught, paused);
            if entry.2.as_ref() != Some(&words) {
                entry.2 = Some(words.clone());
                said.push((r.id, words));
            }
        }
        for (job, words) in said {
            let secs = model::STALL_MS / 1000.0;
            let text = format!("{job}: no task validated for {secs:.0} s: {words}");
            self.log_about("warning", None, None, text);
        }
    }

    /// Sends the page the result bytes it has not been sent for each image job's
    /// picture, and the previews of tiles not held here, [`TILE_BYTES_MAX`] at most per
    /// read.
    fn send_tiles(&mut self, engine: &node_core::engine::Engine) {
        let mut budget = TILE_BYTES_MAX;
        self.tiles_behind = false;
        self.tiles_sent
            .retain(|job, _| engine.job_spec(*job).is_some());
        for job in engine.job_ids().collect::<Vec<_>>() {
            let Some(params) = engine.job_spec(job).and_then(|s| s.kernel.image()) else {
                continue;
            };
            let tasks = params.tiles_x * params.tiles_y;
            let sent = self
                .tiles_sent
                .entry(job)
                .or_insert_with(|| vec![0; tasks as usize]);
            let (mut tiles, mut previews) = (Vec::new(), Vec::new());
            for t in 0..tasks {
                let Some(was) = sent.get_mut(t as usize) else {
                    break;
                };
                if *was == SENT_TILE {
                    continue;
                }
                // Only validated bytes: a result computed here may lose to the quorum (a
                // lying member's own page), and what the page drew stays drawn.
                let (bytes, what) = match engine.held_validated(job, TaskId(t)) {
                    Some(bytes) => (bytes, SENT_TILE),
                    None => match engine.preview(job, TaskId(t)) {
                        Some(bytes) if *was != SENT_PREVIEW => (bytes, SENT_PREVIEW),
                        _ => continue,
                    },
                };
                if budget < bytes.len() && !(tiles.is_empty() && previews.is_empty()) {
                    self.tiles_behind = true;
                    break;
                }
                budget = budget.saturating_sub(bytes.len());
                *was = what;
                let to = if what == SENT_TILE {
                    &mut tiles
                } else {
                    &mut previews
                };
                to.push((TaskId(t), bytes.to_vec()));
            }
            if !(tiles.is_empty() && previews.is_empty()) {
                self.ops.push(ViewOp::Tiles {
                    job,
                    params: params.clone(),
                    tiles,
                    previews,
                });
            }
            if self.tiles_behind {
                break;
            }
        }
    }

    /// The inspector's words for the current selection.
    fn inspect(&mut self, node: &MeshNode, selected: Option<Selection>) {
        let Some(engine) = node.engine() else { return };
        self.inspected = selected;
        let words = match selected {
            None => String::new(),
            Some(Selection::Task(job, task)) => {
                let names = &self.names;
                let name = |n: NodeId| name_in(names, n);
                inspect::task_words(engine, job, task, &self.departed_words, name)
            }
            Some(Selection::Node(n)) => {
                // The graph holds each member's load as of its last build (150 ms at
                // most): only a node it no longer shows needs the board scanned again.
                let shown = self.graph.iter().find(|g| g.node == n).map(|g| {
                    let kind = match g.kind.as_str() {
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
                        gone: match g.state.as_str() {
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
                    (self.name(n), load, state)
                });
                inspect::node_words(engine, n, load, &about, &state)
            }
        };
        if words != self.inspect {
            self.inspect.clone_from(&words);
            self.ops.push(ViewOp::Inspect(words));
        }
    }

    /// Rebuilds the graph (at most every [`GRAPH_MS`]) and samples the rates.
    fn refresh_graph(&mut self, now: Micros, node: &MeshNode) {
        let now_ms = now.as_ms_f64();
        if self.graph_at.is_some_and(|at| now_ms - at < GRAPH_MS) {
            return;
        }
        self.graph_at = Some(now_ms);
        self.gone.retain(|g| g.until > now_ms);
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
        let graph = build_graph(node, &loads, &liars, &self.gone, now);
        let validated: u64 = self.last_rows.iter().map(|r| u64::from(r.validated)).sum();
        let done = loads.iter().map(|(n, l)| (*n, l.done)).collect();
        if self.rate_meter.sample(now_ms, validated, done) {
            let (total, per) = self.rate_meter.rates();
            let rates = RatesView {
                series: self.rate_meter.total_series(),
                total,
                // Not `sum()`: a float sum of nothing is -0.0, shown as "-0.0".
                results: per.values().fold(0.0, |a, b| a + b),
                per: per
                    .into_iter()
                    .filter(|(_, r)| *r > 0.0)
                    .map(|(n, r)| (self.name(n), colour(n), r))
                    .collect(),
                speedup: self.rate_meter.speedup(),
            };
            if rates != self.rates {
                self.rates.clone_from(&rates);
                self.ops.push(ViewOp::Rates(rates));
            }
        }
        // The banners: the mesh is paused while any live member is, and as slow as
        // its slowest member.
        let live = || graph.iter().filter(|g| g.state == "live");
        let paused = live().any(|g| g.paused);
        let slow_ms = live().map(|g| g.slow_ms).max().unwrap_or(0);
        if paused != self.paused {
            self.paused = paused;
            self.ops.push(ViewOp::Paused(paused));
        }
        if slow_ms != self.slow_ms {
            self.slow_ms = slow_ms;
            self.ops.push(ViewOp::SlowMs(slow_ms));
        }
        // Sent at every build, changed or not: the time machine records each.
        self.graph.clone_from(&graph);
        self.ops.push(ViewOp::Graph(graph));
        // Each pulse is drawn once: an empty sample after pulses clears them.
        let pulses = self.sampler.pulses(node);
        if !pulses.is_empty() || self.pulsed {
            self.pulsed = !pulses.is_empty();
            self.ops.push(ViewOp::Pulses(pulses));
        }
    }
}

/// Message counters per peer at the last sample, to tell when messages crossed.
#[derive(Default)]
struct Sampler {
    counts: BTreeMap<String, (u64, u64)>,
    seq: u64,
}

impl Sampler {
    /// One pulse per direction per edge that carried messages since the last sample.
    fn pulses(&mut self, node: &MeshNode) -> Vec<Pulse> {
        let Some(m) = node.membership() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut next = BTreeMap::new();
        for p in m.connected() {
            let now = (p.messages_in, node.messages_to(&p.info.id));
            let before = self.counts.get(&p.info.id.0).copied().unwrap_or(now);
            for (inbound, moved) in [(true, now.0 > before.0), (false, now.1 > before.1)] {
                if moved && !p.cut {
                    self.seq += 1;
                    out.push(Pulse {
                        seq: self.seq,
                        peer: p.info.id.0.clone(),
                        inbound,
                    });
                }
            }
            next.insert(p.info.id.0.clone(), now);
        }
        self.counts = next;
        out
    }
}

/// The graph's members: this node first, then its peers by id, then recent departures.
/// `now` is the node's clock (for how long a silent member has been silent).
fn build_graph(
    node: &MeshNode,
    loads: &BTreeMap<NodeId, Load>,
    liars: &[NodeId],
    gone: &[Gone],
    now: Micros,
) -> Vec<GraphNode> {
    let Some(m) = node.membership() else {
        return Vec::new();
    };
    let me = m.me();
    let mine = node.console_state();
    let mut out = vec![GraphNode {
        peer: me.id.0.clone(),
        node: node_id(&me.id),
        name: me.name.clone(),
        kind: "me".to_string(),
        state: if node.is_failed() {
            "gone".to_string()
        } else {
            "live".to_string()
        },
        presenter: me.presenter,
        rtt_ms: None,
        load: loads.get(&node_id(&me.id)).copied().unwrap_or_default(),
        liar: node.is_lying(),
        note: String::new(),
        colour: me.colour,
        background: m.is_background(),
        paused: mine.paused,
        slow_ms: mine.pacing_ms,
        told_to_lie: mine.lying,
        cut: mine.cut.iter().map(|p| p.0.clone()).collect(),
    }];
    let plain = node_core::wire::ConsoleState::default();
    for p in m.peers() {
        let n = node_id(&p.info.id);
        let silent = p.state == PeerState::Silent;
        let state = node.member_states().get(&p.info.id).unwrap_or(&plain);
        out.push(GraphNode {
            peer: p.info.id.0.clone(),
            node: n,
            // Until its Hello names it, a member that gave the server no name has the
            // name it will give itself.
            name: if p.info.name.is_empty() {
                node_core::membership::default_name(p.info.kind, &p.info.id)
            } else {
                p.info.name.clone()
            },
            kind: p.info.kind.as_str().to_string(),
            state: match (p.cut, p.state) {
                (true, _) => "cut",
                (false, PeerState::Connected) => "live",
                (false, PeerState::Silent) => "silent",
                _ => "connecting",
            }
            .to_string(),
            presenter: p.info.presenter,
            rtt_ms: p
                .rtt_ms
                .filter(|_| p.state == PeerState::Connected && !p.cut)
                .map(|ms| (ms * 10.0).round() / 10.0),
            load: loads.get(&n).copied().unwrap_or_default(),
            liar: liars.contains(&n),
            note: if silent {
                format!(
                    "silent {:.0} s: its work moved",
                    now.saturating_sub(p.last_heard()).as_ms_f64() / 1000.0
                )
            } else {
                String::new()
            },
            colour: p.info.colour,
            background: p.background,
            paused: state.paused,
            slow_ms: state.pacing_ms,
            told_to_lie: state.lying,
            cut: state.cut.iter().map(|p| p.0.clone()).collect(),
        });
    }
    for g in gone {
        if !out.iter().any(|n| n.peer == g.node.peer) {
            out.push(g.node.clone());
        }
    }
    out
}

/// A node's name, or its id where no name is known.
fn name_in(names: &BTreeMap<NodeId, String>, n: NodeId) -> String {
    names.get(&n).cloned().unwrap_or_else(|| n.to_string())
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
            kind: p.info.kind.as_str().to_string(),
            state: p.state.as_str().to_string(),
            rtt_ms: p
                .rtt_ms
                .filter(|_| p.state == PeerState::Connected)
                .map(|ms| (ms * 10.0).round() / 10.0),
            colour: colour(node_id(&p.info.id)),
            path: paths.get(&p.info.id.0).cloned().unwrap_or_default(),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::signal::PeerKind;

    fn left(was_connected: bool, reason: LeftReason) -> NodeEvent {
        NodeEvent::Mesh(MeshEvent::PeerLeft {
            peer: PeerInfo {
                id: PeerId("b".into()),
                kind: PeerKind::Native,
                name: "native-b".into(),
                presenter: false,
                colour: 0,
            },
            reason,
            detect_ms: 1500.0,
            was_connected,
        })
    }

    fn lines(f: &mut Feed) -> Vec<String> {
        f.take()
            .into_iter()
            .filter_map(|op| match op {
                ViewOp::Log(l) => Some(l.text),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_peer_never_connected_to_is_not_said_to_leave() {
        let mut f = Feed::new();
        // A connection attempt given up, a failed member given up on after a minute:
        // it was never shown, so its end is not news.
        f.on_event(Micros(0), &left(false, LeftReason::Heartbeat));
        f.on_event(Micros(0), &left(false, LeftReason::ChannelClosed));
        assert_eq!(lines(&mut f), Vec::<String>::new());
        // A member that was connected is said to go silent.
        f.on_event(Micros(0), &left(true, LeftReason::Heartbeat));
        let said = lines(&mut f);
        assert!(
            said.len() == 1 && said[0].contains("native-b (native) went silent"),
            "{said:?}"
        );
    }
}
