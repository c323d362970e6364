//! The time machine's memory: what this tab saw, as frames (the graph's members and every
//! job's task grid at one moment) and log lines, bounded, so that the view can be
//! scrubbed back to any moment; and the file a run exports to and imports from.
//!
//! Frames are compact (a member is an index into a table of nodes; a task is a byte of
//! state and copies and the index of the node that computed it) and only recorded when
//! something changed. When [`FRAMES_MAX`] are kept, every other one is dropped, so a long
//! run is kept whole at a coarser grain. An imported file is untrusted: its size and
//! every count and index in it are checked, and a bad one is refused with the reason.

use std::collections::BTreeMap;

use node_core::job::{JobId, NodeId};
use serde::{Deserialize, Serialize};

use crate::inspect::Load;
use crate::model::{CELLS_SHOWN_MAX, Cell, GraphNode, JobRow, TaskState};

/// Frames kept at most (then every other one goes).
pub const FRAMES_MAX: usize = 2_000;
/// Log lines kept at most (the oldest go).
pub const LOG_MAX: usize = 2_000;
/// Nodes and jobs a recording names at most.
pub const NODES_MAX: usize = 1_024;
pub const JOBS_MAX: usize = 64;
/// Largest file imported, in bytes.
pub const FILE_BYTES_MAX: usize = 64 << 20;
/// Tasks a recorded job may have (more than any job spec allows).
pub const TASKS_MAX: u32 = 1 << 24;
/// The file format's version.
pub const FORMAT_VERSION: u32 = 1;

/// A node as the recording names it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NodeRec {
    pub peer: String,
    pub node: u64,
    pub name: String,
    pub kind: String,
    /// Its colour slot (absent from recordings made before members had one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub colour: Option<u8>,
}

/// One member at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MemberAt {
    /// Index into [`Recording::nodes`].
    pub n: u16,
    pub state: String,
    #[serde(default)]
    pub presenter: bool,
    pub running: u32,
    pub done: u32,
    pub held: u32,
    #[serde(default)]
    pub liar: bool,
    #[serde(default)]
    pub rtt_ms: Option<f64>,
    #[serde(default)]
    pub note: String,
    #[serde(default)]
    pub background: bool,
    /// Its console state then (see [`GraphNode`]).
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub slow_ms: u32,
    #[serde(default)]
    pub told_to_lie: bool,
}

/// A job as it does not change: what it is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRec {
    pub id: u64,
    pub what: String,
    pub submitter: u64,
    pub tasks: u32,
    pub replication: u8,
    pub quorum: u8,
    pub pacing_ms: u32,
    pub image: Option<(u32, u32)>,
    pub columns: u32,
    /// The finished picture (a PNG data URL), added on export, for a replay elsewhere.
    #[serde(default)]
    pub picture: Option<String>,
}

/// One job at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobAt {
    /// Index into [`Recording::jobs`].
    pub j: u16,
    pub validated: u32,
    pub assembled: bool,
    /// Per task: state (0 waiting, 1 running, 2 validated) × 64 + copies (at most 63).
    pub cells: Vec<u8>,
    /// Per task: index + 1 into the nodes of who computes or computed it; 0 for none.
    pub by: Vec<u16>,
    /// Results matching their validated task's, and validated tasks with a
    /// disagreement ([`JobRow::results`], [`JobRow::disagreed`]).
    #[serde(default)]
    pub results: u32,
    #[serde(default)]
    pub disagreed: u32,
}

/// Everything seen at one moment.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Frame {
    /// Milliseconds since the recording started.
    pub t: u64,
    pub members: Vec<MemberAt>,
    pub jobs: Vec<JobAt>,
    /// Log lines seen by then.
    pub log: u32,
}

/// A log line with when it was seen.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogRec {
    pub t: u64,
    pub event: String,
    pub text: String,
}

/// A run as one tab saw it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Recording {
    pub version: u32,
    pub nodes: Vec<NodeRec>,
    pub jobs: Vec<JobRec>,
    pub frames: Vec<Frame>,
    pub log: Vec<LogRec>,
    /// Log lines dropped from the front (so frame `log` counts stay right).
    #[serde(default)]
    pub log_dropped: u32,
}

fn state_code(s: TaskState) -> u8 {
    match s {
        TaskState::Waiting => 0,
        TaskState::Running => 1,
        TaskState::Validated => 2,
    }
}

/// The `&'static str`s the view uses, for strings read back from a file.
fn known(s: &str, all: &[&'static str]) -> Option<&'static str> {
    all.iter().copied().find(|k| *k == s)
}

const KINDS: &[&str] = &["me", "browser", "native"];
const STATES: &[&str] = &["live", "connecting", "cut", "silent", "gone"];

impl Recording {
    pub fn new() -> Recording {
        Recording {
            version: FORMAT_VERSION,
            ..Recording::default()
        }
    }

    fn node_index(&mut self, g: &GraphNode) -> Option<u16> {
        if let Some(i) = self.nodes.iter().position(|n| n.peer == g.peer) {
            // A name learnt later (a member's Hello names it) replaces none.
            if self.nodes[i].name.is_empty() && !g.name.is_empty() {
                self.nodes[i].name.clone_from(&g.name);
            }
            return Some(i as u16);
        }
        if self.nodes.len() >= NODES_MAX {
            return None;
        }
        self.nodes.push(NodeRec {
            peer: g.peer.clone(),
            node: g.node.0,
            name: g.name.clone(),
            kind: g.kind.to_string(),
            colour: Some(g.colour),
        });
        Some(self.nodes.len() as u16 - 1)
    }

    fn by_index(&self, n: Option<NodeId>) -> u16 {
        n.and_then(|n| self.nodes.iter().position(|r| r.node == n.0))
            .map_or(0, |i| i as u16 + 1)
    }

    fn job_index(&mut self, row: &JobRow) -> Option<u16> {
        if let Some(i) = self.jobs.iter().position(|j| j.id == row.id.0) {
            return Some(i as u16);
        }
        if self.jobs.len() >= JOBS_MAX {
            return None;
        }
        self.jobs.push(JobRec {
            id: row.id.0,
            what: row.what.clone(),
            submitter: row.submitter.0,
            tasks: row.tasks,
            replication: row.replication,
            quorum: row.quorum,
            pacing_ms: row.pacing_ms,
            image: row.image,
            columns: row.columns,
            picture: None,
        });
        Some(self.jobs.len() as u16 - 1)
    }

    /// Records the view at `t` ms, if it differs from the last frame.
    pub fn record(&mut self, t: u64, graph: &[GraphNode], rows: &[JobRow]) {
        let members: Vec<MemberAt> = graph
            .iter()
            .filter_map(|g| {
                Some(MemberAt {
                    n: self.node_index(g)?,
                    state: g.state.to_string(),
                    presenter: g.presenter,
                    running: g.load.running,
                    done: g.load.done,
                    held: g.load.held,
                    liar: g.liar,
                    rtt_ms: g.rtt_ms,
                    note: g.note.clone(),
                    background: g.background,
                    paused: g.paused,
                    slow_ms: g.slow_ms,
                    told_to_lie: g.told_to_lie,
                })
            })
            .collect();
        let jobs: Vec<JobAt> = rows
            .iter()
            .filter_map(|row| {
                let j = self.job_index(row)?;
                Some(JobAt {
                    j,
                    validated: row.validated,
                    assembled: row.assembled,
                    cells: row
                        .cells
                        .iter()
                        .map(|c| state_code(c.state) * 64 + c.replicas.min(63) as u8)
                        .collect(),
                    by: row.cells.iter().map(|c| self.by_index(c.by)).collect(),
                    results: row.results,
                    disagreed: row.disagreed,
                })
            })
            .collect();
        if let Some(last) = self.frames.last()
            && last.members == members
            && last.jobs == jobs
        {
            return;
        }
        if self.frames.len() >= FRAMES_MAX {
            // Keep the first and every other one after it: the whole run, coarser.
            let mut i = 0;
            self.frames.retain(|_| {
                i += 1;
                i % 2 == 1
            });
        }
        let log = self.log_dropped + self.log.len() as u32;
        self.frames.push(Frame {
            t,
            members,
            jobs,
            log,
        });
    }

    /// Records a log line seen at `t` ms.
    pub fn log_line(&mut self, t: u64, event: &str, text: &str) {
        if self.log.len() >= LOG_MAX {
            self.log.remove(0);
            self.log_dropped += 1;
        }
        self.log.push(LogRec {
            t,
            event: event.to_string(),
            text: text.to_string(),
        });
    }

    /// The graph and the jobs as frame `i` saw them.
    pub fn view_at(&self, i: usize) -> Option<(Vec<GraphNode>, Vec<JobRow>)> {
        let f = self.frames.get(i)?;
        let graph = f
            .members
            .iter()
            .filter_map(|m| {
                let n = self.nodes.get(usize::from(m.n))?;
                Some(GraphNode {
                    peer: n.peer.clone(),
                    node: NodeId(n.node),
                    name: n.name.clone(),
                    kind: known(&n.kind, KINDS)?.to_string(),
                    state: known(&m.state, STATES)?.to_string(),
                    presenter: m.presenter,
                    rtt_ms: m.rtt_ms,
                    load: Load {
                        running: m.running,
                        done: m.done,
                        held: m.held,
                    },
                    liar: m.liar,
                    note: m.note.clone(),
                    colour: n
                        .colour
                        .unwrap_or_else(|| crate::model::slot(NodeId(n.node))),
                    background: m.background,
                    paused: m.paused,
                    slow_ms: m.slow_ms,
                    told_to_lie: m.told_to_lie,
                    cut: Vec::new(),
                })
            })
            .collect();
        let jobs = f
            .jobs
            .iter()
            .filter_map(|ja| {
                let jr = self.jobs.get(usize::from(ja.j))?;
                let cells = ja
                    .cells
                    .iter()
                    .zip(&ja.by)
                    .map(|(c, by)| Cell {
                        state: match c / 64 {
                            0 => TaskState::Waiting,
                            1 => TaskState::Running,
                            _ => TaskState::Validated,
                        },
                        replicas: u32::from(c % 64),
                        by: by
                            .checked_sub(1)
                            .and_then(|i| self.nodes.get(usize::from(i)))
                            .map(|n| NodeId(n.node)),
                    })
                    .collect();
                Some(JobRow {
                    id: JobId(jr.id),
                    what: jr.what.clone(),
                    submitter: NodeId(jr.submitter),
                    tasks: jr.tasks,
                    validated: ja.validated,
                    replication: jr.replication,
                    quorum: jr.quorum,
                    pacing_ms: jr.pacing_ms,
                    assembled: ja.assembled,
                    image: jr.image,
                    columns: jr.columns,
                    cells,
                    results: ja.results,
                    disagreed: ja.disagreed,
                    disagreed_tasks: Vec::new(),
                    caught: Vec::new(),
                })
            })
            .collect();
        Some((graph, jobs))
    }

    /// The log lines seen by frame `i`, oldest first.
    pub fn log_at(&self, i: usize) -> &[LogRec] {
        let Some(f) = self.frames.get(i) else {
            return &[];
        };
        let n = f.log.saturating_sub(self.log_dropped) as usize;
        &self.log[..n.min(self.log.len())]
    }

    /// The run as a file, with the finished pictures (PNG data URLs by job).
    pub fn to_json(&self, pictures: &BTreeMap<u64, String>) -> String {
        let mut r = self.clone();
        for j in &mut r.jobs {
            j.picture = pictures.get(&j.id).cloned();
        }
        serde_json::to_string(&r).unwrap_or_default()
    }

    /// A run from a file: refused with the reason if it is too big, not this format, or
    /// names nodes, jobs or tasks it does not have.
    pub fn from_json(text: &str) -> Result<Recording, String> {
        if text.len() > FILE_BYTES_MAX {
            return Err(format!(
                "the file is {} bytes; a recording is at most {FILE_BYTES_MAX}",
                text.len()
            ));
        }
        let r: Recording =
            serde_json::from_str(text).map_err(|e| format!("not a Meshwork recording: {e}"))?;
        if r.version != FORMAT_VERSION {
            return Err(format!(
                "a recording of format {}; this page reads format {FORMAT_VERSION}",
                r.version
            ));
        }
        if r.frames.is_empty() {
            return Err("the recording has no frame".into());
        }
        if r.frames.len() > FRAMES_MAX || r.nodes.len() > NODES_MAX || r.jobs.len() > JOBS_MAX {
            return Err("the recording has more frames, nodes or jobs than a tab records".into());
        }
        if r.log.len() > LOG_MAX {
            return Err(format!("more than {LOG_MAX} log lines"));
        }
        for n in &r.nodes {
            if known(&n.kind, KINDS).is_none() {
                return Err(format!("unknown kind of node {:?}", n.kind));
            }
        }
        for j in &r.jobs {
            if j.tasks > TASKS_MAX || j.columns == 0 || j.columns > TASKS_MAX {
                return Err(format!("job {:x} has a bad size", j.id));
            }
            if let Some(p) = &j.picture
                && !p.starts_with("data:image/png;base64,")
            {
                return Err("a picture that is not a PNG data URL".into());
            }
        }
        let mut last_t = 0;
        for f in &r.frames {
            if f.t < last_t {
                return Err("frames out of time order".into());
            }
            last_t = f.t;
            for m in &f.members {
                if usize::from(m.n) >= r.nodes.len() || known(&m.state, STATES).is_none() {
                    return Err("a member that is not in the node table".into());
                }
            }
            for ja in &f.jobs {
                let Some(jr) = r.jobs.get(usize::from(ja.j)) else {
                    return Err("a job that is not in the job table".into());
                };
                let shown = jr.tasks.min(CELLS_SHOWN_MAX) as usize;
                if ja.cells.len() != shown || ja.by.len() != shown {
                    return Err(format!(
                        "job {:x}: a frame with the wrong number of tasks",
                        jr.id
                    ));
                }
                if ja.by.iter().any(|b| usize::from(*b) > r.nodes.len()) {
                    return Err("a task computed by a node not in the node table".into());
                }
            }
        }
        Ok(r)
    }

    /// Milliseconds from the first frame to the last.
    pub fn span_ms(&self) -> u64 {
        match (self.frames.first(), self.frames.last()) {
            (Some(a), Some(b)) => b.t - a.t,
            _ => 0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(peer: &str, state: &'static str, done: u32) -> GraphNode {
        GraphNode {
            peer: peer.into(),
            node: NodeId(peer.len() as u64 * 1000 + u64::from(peer.as_bytes()[0])),
            name: format!("name-{peer}"),
            kind: "native".to_string(),
            state: state.to_string(),
            presenter: false,
            rtt_ms: Some(1.5),
            load: Load {
                running: 1,
                done,
                held: done,
            },
            liar: false,
            note: String::new(),
            colour: 3,
            background: false,
            paused: true,
            slow_ms: 600,
            told_to_lie: true,
            cut: Vec::new(),
        }
    }

    fn row(validated: u32, by: NodeId) -> JobRow {
        let cells = (0..4)
            .map(|t| Cell {
                state: if t < validated {
                    TaskState::Validated
                } else {
                    TaskState::Waiting
                },
                replicas: if t < validated { 2 } else { 0 },
                by: (t < validated).then_some(by),
            })
            .collect();
        JobRow {
            id: JobId(42),
            what: "Mandelbrot".into(),
            submitter: by,
            tasks: 4,
            validated,
            replication: 2,
            quorum: 1,
            pacing_ms: 0,
            assembled: false,
            image: Some((8, 8)),
            columns: 2,
            cells,
            results: validated,
            disagreed: 0,
            disagreed_tasks: Vec::new(),
            caught: Vec::new(),
        }
    }

    #[test]
    fn frames_replay_what_was_recorded_and_repeat_nothing() {
        let mut r = Recording::new();
        let a = member("a", "live", 0);
        r.record(0, std::slice::from_ref(&a), &[row(0, a.node)]);
        r.log_line(5, "joined", "a joined");
        r.record(10, std::slice::from_ref(&a), &[row(0, a.node)]);
        assert_eq!(r.frames.len(), 1, "an unchanged view is not a new frame");
        let a2 = member("a", "live", 3);
        let b = member("b", "gone", 0);
        r.record(20, &[a2.clone(), b.clone()], &[row(3, a.node)]);
        assert_eq!(r.frames.len(), 2);
        let (g, j) = r.view_at(0).unwrap();
        assert_eq!((g, j), (vec![a.clone()], vec![row(0, a.node)]));
        let (g, j) = r.view_at(1).unwrap();
        assert_eq!((g, j), (vec![a2, b], vec![row(3, a.node)]));
        assert_eq!(r.log_at(0).len(), 0);
        assert_eq!(r.log_at(1).len(), 1);
        assert_eq!(r.span_ms(), 20);
    }

    #[test]
    fn a_name_learnt_after_the_first_frame_is_the_members_in_the_whole_run() {
        let mut r = Recording::new();
        let unnamed = GraphNode {
            name: String::new(),
            ..member("a", "connecting", 0)
        };
        r.record(1, std::slice::from_ref(&unnamed), &[]);
        let named = member("a", "live", 1);
        r.record(2, std::slice::from_ref(&named), &[]);
        let back = Recording::from_json(&r.to_json(&BTreeMap::new())).unwrap();
        let (graph, _) = back.view_at(0).unwrap();
        assert_eq!(graph[0].name, "name-a", "the first moment too");
    }

    #[test]
    fn a_long_run_is_kept_whole_at_a_coarser_grain() {
        let mut r = Recording::new();
        for i in 0..(FRAMES_MAX as u32 * 3) {
            let m = member("a", "live", i);
            r.record(u64::from(i), &[m], &[]);
        }
        assert!(r.frames.len() <= FRAMES_MAX);
        assert_eq!(r.frames[0].t, 0, "the start is kept");
        let last = r.frames.last().unwrap().t;
        assert_eq!(
            last,
            u64::from(FRAMES_MAX as u32 * 3 - 1),
            "the end is kept"
        );
        for _ in 0..LOG_MAX + 10 {
            r.log_line(1, "job", "x");
        }
        assert_eq!(r.log.len(), LOG_MAX);
        assert_eq!(r.log_dropped, 10);
    }

    #[test]
    fn a_file_round_trips_and_bad_files_are_refused_with_the_reason() {
        let mut r = Recording::new();
        let a = member("a", "live", 2);
        r.record(0, std::slice::from_ref(&a), &[row(2, a.node)]);
        let mut pics = BTreeMap::new();
        pics.insert(42, "data:image/png;base64,AAAA".to_string());
        let text = r.to_json(&pics);
        let back = Recording::from_json(&text).unwrap();
        assert_eq!(
            back.jobs[0].picture.as_deref(),
            Some("data:image/png;base64,AAAA")
        );
        assert_eq!(back.view_at(0), r.view_at(0));

        let refuse = |f: &dyn Fn(&mut serde_json::Value)| {
            let mut v: serde_json::Value = serde_json::from_str(&text).unwrap();
            f(&mut v);
            Recording::from_json(&v.to_string()).unwrap_err()
        };
        assert!(
            Recording::from_json("{")
                .unwrap_err()
                .starts_with("not a Meshwork recording")
        );
        assert!(refuse(&|v| v["version"] = 9.into()).contains("format 9"));
        assert!(refuse(&|v| v["frames"] = serde_json::json!([])).contains("no frame"));
        assert!(refuse(&|v| v["frames"][0]["members"][0]["n"] = 7.into()).contains("node table"));
        assert!(refuse(&|v| v["frames"][0]["jobs"][0]["j"] = 3.into()).contains("job table"));
        assert!(
            refuse(&|v| v["frames"][0]["jobs"][0]["cells"] = serde_json::json!([0]))
                .contains("wrong number")
        );
        assert!(
            refuse(&|v| v["frames"][0]["jobs"][0]["by"][0] = 9.into())
                .contains("not in the node table")
        );
        assert!(refuse(&|v| v["nodes"][0]["kind"] = "toaster".into()).contains("unknown kind"));
        assert!(
            refuse(&|v| v["jobs"][0]["picture"] = "javascript:x".into()).contains("PNG data URL")
        );
        let big = " ".repeat(FILE_BYTES_MAX + 1);
        assert!(Recording::from_json(&big).unwrap_err().contains("at most"));
    }
}
