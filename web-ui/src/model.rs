//! What the page shows of the jobs, read from the node's engine: each job's progress
//! and, per task, its state, its live copies and who computed it; and, after a member
//! leaves, what became of its work, in plain words.
//!
//! Platform-free, so that it is tested natively; the page only renders it.

use std::cell::RefCell;
use std::collections::BTreeMap;

use node_core::engine::Engine;
use node_core::job::{JobId, NodeId, TaskId};
use node_core::kernels::{JobOutput, Kernel};
use serde::{Deserialize, Serialize};

/// Most task cells shown per job (a bigger job shows its first ones).
pub const CELLS_SHOWN_MAX: u32 = 4096;
/// Tasks with a disagreement listed per job, at most.
pub const DISAGREED_LISTED_MAX: usize = 64;

/// The members' colours, by the slot the signaling server gives each member
/// ([`node_core::signal::PeerInfo::colour`]: the lowest no live member of the room has).
/// Chosen by a max-min search in CIELAB: every pair differs by a CIEDE2000 ΔE of at
/// least 23 (at least 37 among the first 8, the slots of a room of 8), every colour has
/// a WCAG contrast of at least 4.5 against the page's background, and pairs stay at
/// least 12.9 apart for deuteranopia (Machado 2009). Past 12 members, a slot's pattern
/// ([`pattern`]) tells two members of the same colour apart.
pub const PALETTE: [&str; 12] = [
    "#e354ff", "#caff00", "#66f5ff", "#ef9b00", "#fff6ff", "#0280db", "#fa0030", "#009050",
    "#977985", "#00f4a7", "#a8a494", "#009aa7",
];

/// Colours remembered at most (members and former members).
pub const COLOURS_MAX: usize = 1024;

thread_local! {
    /// Each node's colour slot, as the server gave it: the same on every tab.
    static SLOTS: RefCell<BTreeMap<NodeId, u8>> = const { RefCell::new(BTreeMap::new()) };
}

/// Remembers a node's colour slot (from its `PeerInfo`, or a recording).
pub fn remember_colour(node: NodeId, slot: u8) {
    SLOTS.with(|m| {
        let mut m = m.borrow_mut();
        if m.len() < COLOURS_MAX || m.contains_key(&node) {
            m.insert(node, slot);
        }
    });
}

/// A node's colour slot: the one the server gave it, or (for a node this page never
/// met, as in an old recording) one from its id.
pub fn slot(node: NodeId) -> u8 {
    SLOTS
        .with(|m| m.borrow().get(&node).copied())
        .unwrap_or((node.0 % PALETTE.len() as u64) as u8)
}

/// The colour of a slot.
pub fn palette(slot: u8) -> &'static str {
    PALETTE[usize::from(slot) % PALETTE.len()]
}

/// 0 for the first 12 slots, 1 for the next 12 (drawn with an outline), and so on.
pub fn pattern(slot: u8) -> u8 {
    slot / PALETTE.len() as u8
}

/// One colour per node, the same everywhere on the page and on every tab.
pub fn colour(node: NodeId) -> String {
    palette(slot(node)).to_string()
}

/// Where a task is: the engine's word for it.
pub use node_core::engine::view::TaskState;

/// One task as the page shows it.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Cell {
    pub state: TaskState,
    /// Live members holding the validated result's bytes (0 before validation).
    pub replicas: u32,
    /// The node that computed the validated result (the top-ranked of its reporters),
    /// or the live node computing it.
    pub by: Option<NodeId>,
}

/// One job as the page shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobRow {
    pub id: JobId,
    /// The kernel and its size, in words ("Mandelbrot 512×512, 1000 iterations").
    pub what: String,
    pub submitter: NodeId,
    pub tasks: u32,
    pub validated: u32,
    pub replication: u8,
    pub quorum: u8,
    pub pacing_ms: u32,
    /// The output is assembled here.
    pub assembled: bool,
    /// The image's size, for a Mandelbrot or Julia job.
    pub image: Option<(u32, u32)>,
    /// Columns of the task grid: an image's tile columns, else up to 32.
    pub columns: u32,
    /// The first [`CELLS_SHOWN_MAX`] tasks.
    pub cells: Vec<Cell>,
    /// Results computed that match their task's validated result (`q` or more per
    /// validated task: more where a backup, a steal or help computed it again).
    pub results: u32,
    /// Validated tasks for which some member reported a different result.
    pub disagreed: u32,
    /// The first [`DISAGREED_LISTED_MAX`] of them, for the page to point at.
    pub disagreed_tasks: Vec<TaskId>,
    /// Members caught lying in this job (or in every job), by this node.
    pub caught: Vec<NodeId>,
}

impl JobRow {
    /// Tasks waiting, running and validated among the cells shown: they add up to the
    /// cells shown (all the tasks, up to [`CELLS_SHOWN_MAX`]).
    pub fn counts(&self) -> [u32; 3] {
        let mut counts = [0u32; 3];
        for c in &self.cells {
            counts[c.state as usize] += 1;
        }
        counts
    }

    /// Validated tasks shown with fewer than `r` live copies at their top-ranked
    /// members, now.
    pub fn short(&self) -> u32 {
        self.cells
            .iter()
            .filter(|c| c.state == TaskState::Validated && c.replicas < u32::from(self.replication))
            .count() as u32
    }

    /// The task grid in words: what each count counts, adding up, with copies now.
    pub fn summary(&self) -> String {
        let [waiting, running, validated] = self.counts();
        let shown = self.cells.len() as u32;
        let of = if shown < self.tasks {
            format!(" (the first {shown} of {} tasks shown)", self.tasks)
        } else {
            format!(" of {} {}", self.tasks, plural(self.tasks, "task", "tasks"))
        };
        let r = self.replication;
        format!(
            "{validated} validated, {running} running, {waiting} waiting{of}; {} validated {} fewer than {r} live {} now",
            self.short(),
            plural(self.short(), "task has", "tasks have"),
            plural(u32::from(r), "copy", "copies"),
        )
    }
}

/// `one` for 1, else `many`.
pub fn plural<'a>(n: u32, one: &'a str, many: &'a str) -> &'a str {
    if n == 1 { one } else { many }
}

/// A kernel and its size in words.
pub fn describe(kernel: &Kernel) -> String {
    match kernel {
        Kernel::Mandelbrot(p) => format!(
            "Mandelbrot {}×{}, {} iterations, {}×{} tiles",
            p.width, p.height, p.max_iter, p.tiles_x, p.tiles_y
        ),
        Kernel::Primes(p) => format!("primes up to {} in {} ranges", p.n, p.ranges),
        Kernel::MonteCarloPi(p) => {
            format!("π from {} × {} random points", p.tasks, p.samples_per_task)
        }
        Kernel::Julia(j) => {
            let p = &j.image;
            format!(
                "Julia c = {} {} {}i, {}×{}, {} iterations, {}×{} tiles",
                j.c_re,
                if j.c_im < 0.0 { "−" } else { "+" },
                j.c_im.abs(),
                p.width,
                p.height,
                p.max_iter,
                p.tiles_x,
                p.tiles_y
            )
        }
    }
}

/// An output in words.
pub fn output_words(output: &JobOutput) -> String {
    match output {
        JobOutput::Image { width, height, .. } => format!("a {width}×{height} image"),
        JobOutput::Count { n, count } => format!("π({n}) = {count} primes"),
        JobOutput::Estimate {
            samples,
            inside,
            pi,
        } => format!("π ≈ {pi:.6} ({inside} of {samples} points inside)"),
    }
}

/// The members placement ranks over for `job` in `engine`'s view: itself and its live
/// peers, less the nodes caught lying there.
pub fn members(engine: &Engine, job: JobId) -> Vec<NodeId> {
    engine.placed_members(job)
}

/// A task's cell: the engine's view of it ([`Engine::task_view`]).
pub fn cell(engine: &Engine, job: JobId, task: TaskId) -> Cell {
    let v = engine.task_view(job, task);
    Cell {
        state: v.state,
        replicas: v.copies,
        by: v.by,
    }
}

/// Every job `engine` takes part in, newest first (by id, which is stable).
pub fn job_rows(engine: &Engine) -> Vec<JobRow> {
    engine
        .job_ids()
        .filter_map(|id| {
            let spec = engine.job_spec(id)?;
            let (validated, tasks) = engine.progress(id)?;
            let (image, columns) = match spec.kernel.image() {
                Some(p) => (Some((p.width, p.height)), p.tiles_x),
                None => (None, tasks.clamp(1, 32)),
            };
            let (mut results, mut disagreed) = (0, 0);
            let mut disagreed_tasks = Vec::new();
            for t in 0..tasks {
                let Some(f) = engine.task_facts(id, TaskId(t)) else {
                    continue;
                };
                if f.accepted().is_some() {
                    results += f.reporters().count() as u32;
                    if f.authors().any(|a| a.reported_other) {
                        disagreed += 1;
                        if disagreed_tasks.len() < DISAGREED_LISTED_MAX {
                            disagreed_tasks.push(TaskId(t));
                        }
                    }
                }
            }
            Some(JobRow {
                id,
                results,
                disagreed,
                disagreed_tasks,
                caught: engine.caught_in(id).collect(),
                what: describe(&spec.kernel),
                submitter: spec.submitter,
                tasks,
                validated,
                replication: spec.replication,
                quorum: spec.quorum,
                pacing_ms: spec.pacing_ms,
                assembled: engine.is_assembled(id),
                image,
                columns,
                cells: (0..tasks.min(CELLS_SHOWN_MAX))
                    .map(|t| cell(engine, id, TaskId(t)))
                    .collect(),
            })
        })
        .collect()
}

/// What became of a departed member's work, followed until it is all elsewhere.
#[derive(Clone, Debug, PartialEq)]
pub struct Departure {
    pub node: NodeId,
    /// "lab-2 left (the server saw its socket close, 40 ms after it was last heard)".
    pub headline: String,
    /// Tasks it had claimed and not finished when it left.
    pub unfinished: Vec<(JobId, TaskId)>,
    /// Validated results it held, with the job's `r`.
    pub held: Vec<(JobId, TaskId, u8)>,
}

impl Departure {
    /// Notes `node`'s work as `engine` sees it just after the departure.
    pub fn new(engine: &Engine, node: NodeId, headline: String) -> Departure {
        let mut unfinished = Vec::new();
        let mut held = Vec::new();
        for job in engine.job_ids() {
            let (Some(spec), Some((_, tasks))) = (engine.job_spec(job), engine.progress(job))
            else {
                continue;
            };
            for t in 0..tasks {
                let Some(facts) = engine.task_facts(job, TaskId(t)) else {
                    continue;
                };
                let Some(a) = facts.author(node) else {
                    continue;
                };
                match facts.accepted() {
                    Some(_) if a.holding_accepted => held.push((job, TaskId(t), spec.replication)),
                    None if engine.unreported_claims(job, TaskId(t)).any(|n| n == node) => {
                        unfinished.push((job, TaskId(t)))
                    }
                    _ => {}
                }
            }
        }
        Departure {
            node,
            headline,
            unfinished,
            held,
        }
    }

    /// The log line as things stand, and whether everything it held is elsewhere now.
    pub fn summary(&self, engine: &Engine, name: impl Fn(NodeId) -> String) -> (String, bool) {
        if self.unfinished.is_empty() && self.held.is_empty() {
            return (format!("{}: it held no work", self.headline), true);
        }
        let mut takers: Vec<NodeId> = Vec::new();
        let mut moved = 0;
        for (job, task) in &self.unfinished {
            let c = cell(engine, *job, *task);
            if c.state != TaskState::Waiting {
                moved += 1;
                if let Some(by) = c.by.filter(|n| *n != self.node)
                    && !takers.contains(&by)
                {
                    takers.push(by);
                }
            }
        }
        let restored = self
            .held
            .iter()
            .filter(|(job, task, r)| cell(engine, *job, *task).replicas >= u32::from(*r))
            .count();
        let mut parts = Vec::new();
        if !self.unfinished.is_empty() {
            let who = match takers.len() {
                0 => String::new(),
                1 => format!(" by {}", name(takers[0])),
                n => format!(" by {n} nodes"),
            };
            parts.push(format!(
                "{moved} of its {} unfinished tasks taken up{who}",
                self.unfinished.len()
            ));
        }
        if !self.held.is_empty() {
            parts.push(format!(
                "{restored} of its {} results back to their full copies",
                self.held.len()
            ));
        }
        let done = moved == self.unfinished.len() && restored == self.held.len();
        (format!("{}: {}", self.headline, parts.join(", ")), done)
    }
}

/// What one node is doing, as this node's board sees it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Load {
    /// Tasks it claimed and has not reported.
    pub running: u32,
    /// Validated tasks whose result it computed.
    pub done: u32,
    /// Validated results whose bytes it holds.
    pub held: u32,
}

/// One member (or a member that just left) as the graph shows it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GraphNode {
    /// Signaling id, for tests and keys.
    pub peer: String,
    pub node: NodeId,
    pub name: String,
    /// "me", "browser" or "native": the shape.
    pub kind: String,
    /// "live", "connecting", "cut" (a presenter cut our link), "silent" (declared gone
    /// by its silence: its work moved, and it may come back) or "gone".
    pub state: String,
    pub presenter: bool,
    pub rtt_ms: Option<f64>,
    pub load: Load,
    /// Caught lying (in some job) by this node, or, for this node, lying on a
    /// presenter's command.
    pub liar: bool,
    /// For a departure or a silence: how it was noticed and how fast.
    pub note: String,
    /// Its colour slot ([`palette`]).
    pub colour: u8,
    /// It said it is in the background (a hidden tab).
    pub background: bool,
    /// Its console state, as it announced it: paused, slow motion (ms after each task),
    /// lying on a presenter's command.
    #[serde(default)]
    pub paused: bool,
    #[serde(default)]
    pub slow_ms: u32,
    #[serde(default)]
    pub told_to_lie: bool,
    /// The members its link is cut to (signaling ids), as it announced them.
    #[serde(default)]
    pub cut: Vec<String>,
}

/// Samples kept by [`RateMeter`]: a minute at one a second.
pub const RATE_SAMPLES: usize = 61;
/// Seconds of samples a rate is measured over.
pub const RATE_WINDOW: usize = 5;

/// Tasks per second, in total and per node, from counts sampled about once a second.
#[derive(Clone, Debug, Default)]
pub struct RateMeter {
    /// (ms, tasks validated in all jobs, results computed per node).
    samples: std::collections::VecDeque<(f64, u64, BTreeMap<NodeId, u32>)>,
}

impl RateMeter {
    /// Takes a sample if a second has passed since the last one; returns whether it did.
    pub fn sample(&mut self, at: f64, validated: u64, done: BTreeMap<NodeId, u32>) -> bool {
        if self.samples.back().is_some_and(|(t, _, _)| at - t < 1000.0) {
            return false;
        }
        if self.samples.len() == RATE_SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back((at, validated, done));
        true
    }

    /// Validated tasks per second over each second sampled (oldest first).
    pub fn total_series(&self) -> Vec<f64> {
        self.samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|((t0, v0, _), (t1, v1, _))| {
                v1.saturating_sub(*v0) as f64 * 1000.0 / (t1 - t0).max(1.0)
            })
            .collect()
    }

    /// Over the last [`RATE_WINDOW`] seconds: validated tasks per second, and each node's
    /// results computed per second.
    pub fn rates(&self) -> (f64, BTreeMap<NodeId, f64>) {
        let n = self.samples.len();
        if n < 2 {
            return (0.0, BTreeMap::new());
        }
        let (t0, v0, d0) = &self.samples[n.saturating_sub(RATE_WINDOW + 1)];
        let (t1, v1, d1) = &self.samples[n - 1];
        let secs = ((t1 - t0) / 1000.0).max(0.001);
        let per = d1
            .iter()
            .map(|(node, d)| {
                let before = d0.get(node).copied().unwrap_or(0);
                (*node, f64::from(d.saturating_sub(before)) / secs)
            })
            .collect();
        (v1.saturating_sub(*v0) as f64 / secs, per)
    }

    /// The mesh's results per second over its fastest member's: how many times as many
    /// results the members compute together as the fastest alone. Results, not
    /// validated tasks, on both sides: with `q = 2` every task needs two results, and a
    /// backup or a steal may compute one again. `None` while nothing is computed.
    pub fn speedup(&self) -> Option<f64> {
        let (_, per) = self.rates();
        let all: f64 = per.values().sum();
        let fastest = per.values().copied().fold(0.0, f64::max);
        (all > 0.0 && fastest > 0.0).then(|| all / fastest)
    }
}

/// A task's copies seen going and coming back, for the grid to flash.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Flash {
    /// A member holding it left: it lost a copy.
    Lost,
    /// Back to `r` copies at its top-ranked members.
    Healed,
}

/// A lost copy is shown at least this long before it shows as healed (ms).
pub const LOST_SHOWN_MS: f64 = 700.0;
/// A healed task is shown as healed this long (ms).
pub const HEALED_SHOWN_MS: f64 = 2_000.0;
/// Tasks flashing at once, at most (a departure that held more flashes its first ones).
pub const FLASHES_MAX: usize = 1 << 16;

/// Which tasks lost a copy and which healed, with when, and totals per job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Flashes {
    now: BTreeMap<(JobId, TaskId), (Flash, f64)>,
    /// Per job: tasks that lost a copy, tasks healed, since the page loaded.
    pub totals: BTreeMap<JobId, (u64, u64)>,
}

impl Flashes {
    /// Tasks whose copy went with a departed member, at `at` ms.
    pub fn lost(&mut self, tasks: impl IntoIterator<Item = (JobId, TaskId)>, at: f64) {
        for (job, task) in tasks {
            if self.now.len() >= FLASHES_MAX {
                break;
            }
            // A task that lost two copies at once is one task waiting to heal.
            if self.of(job, task) != Some(Flash::Lost) {
                self.totals.entry(job).or_default().0 += 1;
            }
            self.now.insert((job, task), (Flash::Lost, at));
        }
    }

    /// Moves lost tasks that have their `r` copies again to healed, and forgets old
    /// flashes and jobs no longer shown.
    pub fn update(&mut self, rows: &[JobRow], at: f64) {
        let mut healed = Vec::new();
        self.now.retain(|(job, task), (flash, since)| {
            let Some(row) = rows.iter().find(|r| r.id == *job) else {
                return false;
            };
            match flash {
                Flash::Lost => {
                    let full = row.cells.get(task.0 as usize).is_some_and(|c| {
                        c.state == TaskState::Validated && c.replicas >= u32::from(row.replication)
                    });
                    if full && at - *since >= LOST_SHOWN_MS {
                        *flash = Flash::Healed;
                        *since = at;
                        healed.push(*job);
                    }
                    true
                }
                Flash::Healed => at - *since < HEALED_SHOWN_MS,
            }
        });
        for job in healed {
            self.totals.entry(job).or_default().1 += 1;
        }
        self.totals
            .retain(|job, _| rows.iter().any(|r| r.id == *job));
    }

    /// Whether nothing flashes now.
    pub fn is_empty(&self) -> bool {
        self.now.is_empty()
    }

    /// How a task flashes now, if it does.
    pub fn of(&self, job: JobId, task: TaskId) -> Option<Flash> {
        self.now.get(&(job, task)).map(|(f, _)| *f)
    }
}

/// How different two colours look: the CIEDE2000 colour difference (Sharma, Wu and Dalal,
/// 2005) of two CIELAB colours. The page keeps live members at least 20 apart.
pub fn ciede2000((l1, a1, b1): (f64, f64, f64), (l2, a2, b2): (f64, f64, f64)) -> f64 {
    use std::f64::consts::PI;
    let deg = |r: f64| r * 180.0 / PI;
    let rad = |d: f64| d * PI / 180.0;
    let c_bar = ((a1 * a1 + b1 * b1).sqrt() + (a2 * a2 + b2 * b2).sqrt()) / 2.0;
    let g = 0.5 * (1.0 - (c_bar.powi(7) / (c_bar.powi(7) + 25f64.powi(7))).sqrt());
    let (a1p, a2p) = ((1.0 + g) * a1, (1.0 + g) * a2);
    let (c1p, c2p) = ((a1p * a1p + b1 * b1).sqrt(), (a2p * a2p + b2 * b2).sqrt());
    let hue = |b: f64, a: f64| {
        if b == 0.0 && a == 0.0 {
            0.0
        } else {
            deg(b.atan2(a)).rem_euclid(360.0)
        }
    };
    let (h1p, h2p) = (hue(b1, a1p), hue(b2, a2p));
    let dl = l2 - l1;
    let dc = c2p - c1p;
    let dh = if c1p * c2p == 0.0 {
        0.0
    } else if (h2p - h1p).abs() <= 180.0 {
        h2p - h1p
    } else if h2p - h1p > 180.0 {
        h2p - h1p - 360.0
    } else {
        h2p - h1p + 360.0
    };
    let dhh = 2.0 * (c1p * c2p).sqrt() * rad(dh / 2.0).sin();
    let l_bar = (l1 + l2) / 2.0;
    let cp_bar = (c1p + c2p) / 2.0;
    let h_bar = if c1p * c2p == 0.0 {
        h1p + h2p
    } else if (h1p - h2p).abs() <= 180.0 {
        (h1p + h2p) / 2.0
    } else if h1p + h2p < 360.0 {
        (h1p + h2p + 360.0) / 2.0
    } else {
        (h1p + h2p - 360.0) / 2.0
    };
    let t = 1.0 - 0.17 * rad(h_bar - 30.0).cos()
        + 0.24 * rad(2.0 * h_bar).cos()
        + 0.32 * rad(3.0 * h_bar + 6.0).cos()
        - 0.20 * rad(4.0 * h_bar - 63.0).cos();
    let d_theta = 30.0 * (-((h_bar - 275.0) / 25.0).powi(2)).exp();
    let rc = 2.0 * (cp_bar.powi(7) / (cp_bar.powi(7) + 25f64.powi(7))).sqrt();
    let sl = 1.0 + 0.015 * (l_bar - 50.0).powi(2) / (20.0 + (l_bar - 50.0).powi(2)).sqrt();
    let sc = 1.0 + 0.045 * cp_bar;
    let sh = 1.0 + 0.015 * cp_bar * t;
    let rt = -rad(2.0 * d_theta).sin() * rc;
    ((dl / sl).powi(2) + (dc / sc).powi(2) + (dhh / sh).powi(2) + rt * (dc / sc) * (dhh / sh))
        .sqrt()
}

/// sRGB `#rrggbb` to CIELAB (D65); black for anything else.
pub fn lab(hex: &str) -> (f64, f64, f64) {
    let v = hex
        .strip_prefix('#')
        .and_then(|h| u32::from_str_radix(h, 16).ok())
        .unwrap_or(0);
    let lin = |c: u32| {
        let c = f64::from(c & 0xff) / 255.0;
        if c <= 0.04045 {
            c / 12.92
        } else {
            ((c + 0.055) / 1.055).powf(2.4)
        }
    };
    let (r, g, b) = (lin(v >> 16), lin(v >> 8), lin(v));
    let x = (0.4124 * r + 0.3576 * g + 0.1805 * b) / 0.95047;
    let y = 0.2126 * r + 0.7152 * g + 0.0722 * b;
    let z = (0.0193 * r + 0.1192 * g + 0.9505 * b) / 1.08883;
    let f = |t: f64| {
        if t > 216.0 / 24389.0 {
            t.cbrt()
        } else {
            (24389.0 / 27.0 * t + 16.0) / 116.0
        }
    };
    (
        116.0 * f(y) - 16.0,
        500.0 * (f(x) - f(y)),
        200.0 * (f(y) - f(z)),
    )
}

/// A job that validated no task for this long (ms) says why it is stuck.
pub const STALL_MS: f64 = 8_000.0;

/// Why a job validates nothing, as far as the members show it: `live` members now
/// (this node included), `lying` of them lying on a presenter's command and `caught`
/// more caught lying before (their results count for nothing), `paused` of them paused;
/// the job needs `q` matching results per task.
pub fn stall_words(q: u8, live: usize, lying: usize, caught: usize, paused: usize) -> String {
    let q = usize::from(q);
    let members = |n: usize| if n == 1 { "member" } else { "members" };
    if live > 0 && paused >= live {
        return "every member is paused: no task starts (space resumes)".into();
    }
    if live < q {
        return format!(
            "{live} {}, and a task needs {q} matching results (q = {q}): no result can reach q until more members join",
            members(live)
        );
    }
    // Liars tell the same lie: they agree with each other only; a caught liar's results
    // count for nothing.
    if live.saturating_sub(lying + caught) < q && lying < q {
        let who = match (lying, caught) {
            (l, 0) => format!("{l} lying"),
            (0, c) => format!("{c} caught lying before"),
            (l, c) => format!("{l} lying and {c} caught lying before"),
        };
        return format!(
            "{live} {}, {who}: no result can reach q = {q} (the honest ones are too few to agree, and the lie differs from their result)",
            members(live)
        );
    }
    if paused > 0 {
        return format!(
            "{paused} of {live} members are paused and start no task (space resumes them)"
        );
    }
    "its tasks wait for results: a member computing them may be slow, in the background, or gone and not yet noticed".into()
}

#[cfg(test)]
mod tests {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;

    use node_core::engine::{Command, EngineConfig, Input, Millis, Output};
    use node_core::kernels::mandelbrot;

    use super::*;

    /// Engines wired back to back: messages take 1 ms, a task 10 ms.
    struct Mesh {
        engines: Vec<Engine>,
        alive: Vec<bool>,
        now: u64,
        queue: BinaryHeap<Reverse<(u64, u64, usize)>>,
        inputs: std::collections::BTreeMap<u64, Input>,
        seq: u64,
    }

    impl Mesh {
        fn new(n: usize) -> Mesh {
            let mut m = Mesh {
                engines: (0..n)
                    .map(|i| {
                        let id = NodeId(i as u64 + 1);
                        Engine::new(id, EngineConfig::default(), id.0, Millis(0))
                    })
                    .collect(),
                alive: vec![true; n],
                now: 0,
                queue: BinaryHeap::new(),
                inputs: Default::default(),
                seq: 0,
            };
            for i in 0..n {
                for j in 0..n {
                    if i != j {
                        m.engines[i].handle_input(Millis(0), Input::PeerUp(NodeId(j as u64 + 1)));
                    }
                }
            }
            m
        }

        fn at(&mut self, delay: u64, to: usize, input: Input) {
            self.seq += 1;
            self.inputs.insert(self.seq, input);
            self.queue.push(Reverse((self.now + delay, self.seq, to)));
        }

        fn drain(&mut self, i: usize) {
            while let Some(out) = self.engines[i].poll_output() {
                let from = self.engines[i].id();
                match out {
                    Output::Send { to, msg } => {
                        self.at(1, to.0 as usize - 1, Input::Message { from, msg })
                    }
                    Output::Broadcast { msg } => {
                        for j in (0..self.engines.len()).filter(|j| *j != i) {
                            self.at(
                                1,
                                j,
                                Input::Message {
                                    from,
                                    msg: msg.clone(),
                                },
                            );
                        }
                    }
                    Output::RunTask { job, task, kernel } => {
                        let mut output = Vec::new();
                        kernel.run_task(task.0, &mut output).unwrap();
                        self.at(10, i, Input::ComputeFinished { job, task, output });
                    }
                    Output::Event(_) => {}
                }
            }
        }

        fn input(&mut self, i: usize, input: Input) {
            self.engines[i].handle_input(Millis(self.now), input);
            self.drain(i);
        }

        /// Runs until `until_ms`.
        fn run(&mut self, until_ms: u64) {
            loop {
                let timer = (0..self.engines.len())
                    .filter(|i| self.alive[*i])
                    .filter_map(|i| self.engines[i].poll_timeout().map(|t| (t.0, i)))
                    .min();
                let msg = self.queue.peek().map(|Reverse((t, ..))| *t);
                let next = timer.map_or(u64::MAX, |t| t.0).min(msg.unwrap_or(u64::MAX));
                if next > until_ms {
                    self.now = until_ms;
                    return;
                }
                self.now = self.now.max(next);
                if let Some((t, i)) = timer
                    && t <= msg.unwrap_or(u64::MAX)
                {
                    self.input(i, Input::Timeout);
                    continue;
                }
                let Some(Reverse((_, seq, to))) = self.queue.pop() else {
                    return;
                };
                let input = self.inputs.remove(&seq).unwrap();
                if self.alive[to] {
                    self.input(to, input);
                }
            }
        }

        fn kill(&mut self, i: usize) {
            self.alive[i] = false;
            let gone = self.engines[i].id();
            for j in (0..self.engines.len()).filter(|j| *j != i) {
                self.input(j, Input::PeerDown(gone));
            }
        }
    }

    fn image() -> Kernel {
        Kernel::Mandelbrot(mandelbrot::Params {
            width: 64,
            height: 64,
            max_iter: 50,
            tiles_x: 8,
            tiles_y: 2,
            ..mandelbrot::Params::default()
        })
    }

    fn submit(m: &mut Mesh, pacing_ms: u32) {
        m.input(
            0,
            Input::Command(Command::Submit {
                kernel: image(),
                replication: 2,
                quorum: 1,
                pacing_ms,
                nonce: 1,
            }),
        );
    }

    #[test]
    fn a_julia_job_is_described_and_drawn_as_an_image() {
        use node_core::kernels::julia;
        let j = julia::Params {
            image: mandelbrot::Params {
                width: 64,
                height: 32,
                max_iter: 50,
                tiles_x: 4,
                tiles_y: 2,
                ..julia::Params::default().image
            },
            c_re: -0.8,
            c_im: -0.156,
        };
        let kernel = Kernel::Julia(j.clone());
        assert_eq!(
            describe(&kernel),
            "Julia c = -0.8 − 0.156i, 64×32, 50 iterations, 4×2 tiles"
        );
        assert_eq!(kernel.image(), Some(&j.image));
    }

    #[test]
    fn rows_show_each_tasks_state_copies_and_computer() {
        let mut m = Mesh::new(3);
        submit(&mut m, 50);
        // Paced (tasks of 10 ms, 50 ms apart): some done, some running, some waiting,
        // from the moment a second round of tasks starts (when, depends on placement).
        let running = |m: &Mesh| {
            job_rows(&m.engines[0])[0]
                .cells
                .iter()
                .any(|c| c.state == TaskState::Running)
        };
        m.run(20);
        while !running(&m) && m.now < 500 {
            m.run(m.now + 1);
        }
        let rows = job_rows(&m.engines[0]);
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!((row.tasks, row.replication, row.quorum), (16, 2, 1));
        assert_eq!(row.image, Some((64, 64)));
        assert_eq!(row.columns, 8);
        assert_eq!(row.what, "Mandelbrot 64×64, 50 iterations, 8×2 tiles");
        let count = |s: TaskState| row.cells.iter().filter(|c| c.state == s).count();
        assert!(count(TaskState::Validated) > 0, "{:?}", row.cells);
        assert!(count(TaskState::Running) > 0, "{:?}", row.cells);
        assert!(count(TaskState::Waiting) > 0, "{:?}", row.cells);
        assert_eq!(row.validated as usize, count(TaskState::Validated));
        for c in &row.cells {
            match c.state {
                TaskState::Waiting => assert_eq!((c.by, c.replicas), (None, 0)),
                TaskState::Running => assert!(c.by.is_some() && c.replicas == 0),
                TaskState::Validated => assert!(c.by.is_some() && c.replicas >= 1),
            }
        }
        m.run(5_000);
        let row = &job_rows(&m.engines[0])[0];
        assert_eq!(row.validated, 16);
        assert!(row.assembled);
        assert!(row.cells.iter().all(|c| c.replicas >= 2), "{:?}", row.cells);
        let computers: std::collections::BTreeSet<_> =
            row.cells.iter().filter_map(|c| c.by).collect();
        assert_eq!(computers.len(), 3, "every node computed some tiles");
        // A node that is not the submitter sees the same job.
        assert_eq!(job_rows(&m.engines[1])[0].validated, 16);
    }

    #[test]
    fn rates_are_per_second_over_the_window_and_speedup_is_over_the_fastest() {
        let mut m = RateMeter::default();
        let (a, b) = (NodeId(1), NodeId(2));
        for s in 0..10u32 {
            let done = BTreeMap::from([(a, s * 4), (b, s * 2)]);
            assert!(m.sample(f64::from(s) * 1000.0, u64::from(s) * 6, done));
            assert!(
                !m.sample(f64::from(s) * 1000.0 + 500.0, 0, BTreeMap::new()),
                "under a second"
            );
        }
        let (total, per) = m.rates();
        assert!((total - 6.0).abs() < 1e-9, "{total}");
        assert!(
            (per[&a] - 4.0).abs() < 1e-9 && (per[&b] - 2.0).abs() < 1e-9,
            "{per:?}"
        );
        assert!((m.speedup().unwrap() - 1.5).abs() < 1e-9);
        assert_eq!(m.total_series(), vec![6.0; 9]);
        assert_eq!(RateMeter::default().speedup(), None);
    }

    #[test]
    fn a_departure_is_followed_until_its_work_is_elsewhere() {
        let mut m = Mesh::new(3);
        submit(&mut m, 50);
        let gone = NodeId(3);
        // Until the node leaving computes a task and holds a validated result.
        let busy = |m: &Mesh| {
            let cells = &job_rows(&m.engines[0])[0].cells;
            cells
                .iter()
                .any(|c| c.state == TaskState::Running && c.by == Some(gone))
                && !Departure::new(&m.engines[0], gone, String::new())
                    .held
                    .is_empty()
        };
        while !busy(&m) {
            assert!(m.now < 2_000, "node 3 never got busy");
            let next = m.now + 2;
            m.run(next);
        }
        m.kill(2);
        let d = Departure::new(&m.engines[0], gone, "n3 left".into());
        assert!(!d.unfinished.is_empty(), "it was computing");
        assert!(!d.held.is_empty(), "it held results");
        // Its results flash as lost, for a while even if they are whole again at once.
        let mut flashes = Flashes::default();
        flashes.lost(d.held.iter().map(|(j, t, _)| (*j, *t)), 0.0);
        let (job, task, _) = d.held[0];
        // Reported lost again (two holders gone): still one task to heal.
        flashes.lost([(job, task)], 0.0);
        flashes.update(&job_rows(&m.engines[0]), LOST_SHOWN_MS - 1.0);
        assert_eq!(flashes.of(job, task), Some(Flash::Lost));
        let name = |n: NodeId| format!("node{}", n.0);
        let (line, done) = d.summary(&m.engines[0], name);
        assert!(!done, "{line}");
        assert!(line.starts_with("n3 left: "), "{line}");
        m.run(8_000);
        let (line, done) = d.summary(&m.engines[0], name);
        assert!(done, "{line}");
        // Back to r copies at their top-ranked members: healed, then no longer shown.
        let rows = job_rows(&m.engines[0]);
        flashes.update(&rows, LOST_SHOWN_MS);
        assert_eq!(flashes.of(job, task), Some(Flash::Healed));
        let held = d.held.len() as u64;
        assert_eq!(flashes.totals[&job], (held, held));
        flashes.update(&rows, LOST_SHOWN_MS + HEALED_SHOWN_MS);
        assert_eq!(flashes.of(job, task), None);
        let n = d.unfinished.len();
        let h = d.held.len();
        assert!(
            line.contains(&format!("{n} of its {n} unfinished tasks taken up")),
            "{line}"
        );
        assert!(
            line.contains(&format!("{h} of its {h} results back")),
            "{line}"
        );
        assert!(!line.contains("node3"), "{line}");
        // Nothing to follow for a node that held nothing.
        let idle = Departure::new(&m.engines[0], NodeId(99), "n99 left".into());
        assert_eq!(
            idle.summary(&m.engines[0], name),
            ("n99 left: it held no work".into(), true)
        );
    }

    fn luminance(hex: &str) -> f64 {
        let v = u32::from_str_radix(&hex[1..], 16).unwrap();
        let lin = |c: u32| {
            let c = f64::from(c & 0xff) / 255.0;
            if c <= 0.03928 {
                c / 12.92
            } else {
                ((c + 0.055) / 1.055).powf(2.4)
            }
        };
        0.2126 * lin(v >> 16) + 0.7152 * lin(v >> 8) + 0.0722 * lin(v)
    }

    #[test]
    fn ciede2000_matches_the_published_pairs() {
        // Pairs 1, 7, 17 and 25 of Sharma, Wu and Dalal's test data, both ways round.
        let pairs = [
            ((50.0, 2.6772, -79.7751), (50.0, 0.0, -82.7485), 2.0425),
            ((50.0, 0.0, 0.0), (50.0, -1.0, 2.0), 2.3669),
            ((50.0, 2.5, 0.0), (73.0, 25.0, -18.0), 27.1492),
            (
                (60.2574, -34.0099, 36.2677),
                (60.4626, -34.1751, 39.4387),
                1.2644,
            ),
        ];
        for (a, b, want) in pairs {
            assert!((ciede2000(a, b) - want).abs() < 1e-4, "{a:?} {b:?}");
            assert!((ciede2000(b, a) - want).abs() < 1e-4, "{b:?} {a:?}");
        }
    }

    /// The measure the page keeps: every two live members differ by a CIEDE2000 ΔE of
    /// at least 20 (23 over all 12 slots, 37 over the first 8), and each colour is
    /// readable on the page's background (WCAG contrast of at least 4.5).
    #[test]
    fn palette_colours_differ_visibly_and_read_on_the_background() {
        let min = |n: usize| {
            let mut m = f64::MAX;
            for (i, a) in PALETTE[..n].iter().enumerate() {
                for b in &PALETTE[i + 1..n] {
                    m = m.min(ciede2000(lab(a), lab(b)));
                }
            }
            m
        };
        assert!(min(8) >= 37.0, "{}", min(8));
        assert!(min(12) >= 23.0, "{}", min(12));
        let bg = luminance("#0f1419");
        for c in PALETTE {
            let contrast = (luminance(c) + 0.05) / (bg + 0.05);
            assert!(contrast >= 4.5, "{c}: {contrast}");
        }
        // Slots past the palette repeat its colours with a pattern.
        assert_eq!((palette(13), pattern(13)), (PALETTE[1], 1));
        remember_colour(NodeId(77), 4);
        assert_eq!(colour(NodeId(77)), PALETTE[4]);
    }

    #[test]
    fn a_stall_is_explained_by_what_the_members_show() {
        assert_eq!(
            stall_words(2, 2, 1, 0, 0),
            "2 members, 1 lying: no result can reach q = 2 (the honest ones are too few to agree, and the lie differs from their result)"
        );
        assert!(
            stall_words(6, 5, 0, 0, 0)
                .starts_with("5 members, and a task needs 6 matching results")
        );
        assert!(stall_words(1, 1, 0, 0, 1).starts_with("every member is paused"));
        assert!(stall_words(2, 4, 1, 0, 2).starts_with("2 of 4 members are paused"));
        // Two liars agree with each other: not stuck for that reason.
        assert!(stall_words(2, 3, 2, 0, 0).starts_with("its tasks wait"));
        // One honest member left beside two caught liars: stuck, and said so.
        assert!(
            stall_words(2, 3, 0, 2, 0)
                .starts_with("3 members, 2 caught lying before: no result can reach q = 2")
        );
    }
}
