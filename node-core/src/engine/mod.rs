//! The compute engine: a sans-IO node of the compute mesh.
//!
//! It splits jobs into tasks, decides which tasks this node computes (rendezvous
//! placement, stealing, speculative backups), keeps the replicated task board, stores
//! and re-replicates result bytes, validates results by quorum and assembles outputs.
//!
//! **Run-loop rule.** After every [`Engine::handle_input`], drain
//! [`Engine::poll_output`] until it returns `None`; then call `handle_input(now,
//! Input::Timeout)` no later than [`Engine::poll_timeout`]. Time is a [`Millis`]
//! argument and randomness a seed given to [`Engine::new`]: the engine reads no clock,
//! touches no socket, spawns nothing and has no `async`, so the simulator can run
//! dozens of engines in one thread on virtual time and replay any run from its seed.
//!
//! **Model.** Membership is this node's own view (peers come and go by [`Input::PeerUp`]
//! and [`Input::PeerDown`]); views may disagree for a while and the engine stays safe:
//! - A task is *validated* when `q` distinct nodes reported the same result hash. That
//!   is the only way a result is accepted, so with at most `q - 1` liars no wrong result
//!   is. Once a hash is validated, nodes that reported another one are marked as liars
//!   and no longer placed.
//! - Facts (claims, reports, holdings) are accepted only from their author and merged
//!   by set union ([`board`]); digests every `sync_ms` repair lost messages.
//! - The `needed` computations of a task go to the first nodes of its rendezvous
//!   ranking that have neither reported nor claimed it; an idle node steals a task
//!   nobody live has claimed; near the end, a task claimed longer than `straggler_ms`
//!   ago gets a speculative backup.
//! - Result bytes live on the task's top `r` ranked members; when one leaves, a node
//!   that has the bytes copies them to the new top `r` (copies, not recomputation).
//!   When no live node holds a validated result, the task is computed again.

pub mod board;
pub mod placement;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::job::{JobId, JobSpec, NodeId, PACING_MS_MAX, TaskId, content_hash};
use crate::kernels::{JobOutput, Kernel};
use crate::wire::{EngineMsg, Fact, TaskFact};
use board::{Added, Board};
use placement::{Ranking, mix64};

/// Virtual or real time in milliseconds, handed in by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }
    fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Tunables. Defaults suit a LAN mesh of up to a few dozen nodes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Tasks computed at once (the cores given to the mesh).
    pub slots: usize,
    /// New facts are batched this long before they are broadcast.
    pub flush_ms: u64,
    /// Digests, store and fetch retries and backups are looked at this often.
    pub sync_ms: u64,
    /// A task claimed this long ago without a result may get a speculative backup.
    pub straggler_ms: u64,
    /// An idle node steals only once a job is this old here, so that owners' claims
    /// have had time to arrive (otherwise every idle node grabs the same first tasks).
    pub steal_after_ms: u64,
    /// A fetch unanswered this long is asked of another holder.
    pub fetch_timeout_ms: u64,
    /// A stored copy not confirmed this long is sent again.
    pub store_retry_ms: u64,
    /// Jobs kept at once; finished jobs are dropped first to make room.
    pub jobs_max: usize,
    /// Distinct authors of facts per job.
    pub authors_max: usize,
    /// Facts per message.
    pub facts_per_msg_max: usize,
    /// Fetches in flight per job.
    pub fetches_max: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            slots: 1,
            flush_ms: 5,
            sync_ms: 500,
            straggler_ms: 2_000,
            steal_after_ms: 200,
            fetch_timeout_ms: 1_000,
            store_retry_ms: 1_000,
            jobs_max: 16,
            authors_max: 256,
            facts_per_msg_max: 512,
            fetches_max: 64,
        }
    }
}

/// A command from this node's user.
#[derive(Clone, Debug, PartialEq)]
pub enum Command {
    /// Start a job; this node assembles its output.
    Submit {
        kernel: Kernel,
        replication: u8,
        quorum: u8,
        pacing_ms: u32,
        nonce: u64,
    },
    /// Cancel a job this node submitted.
    Cancel { job: JobId },
    /// Change a job's pacing delay everywhere.
    SetPacing { job: JobId, pacing_ms: u32 },
    /// Assemble a job's output here too (any node may).
    Assemble { job: JobId },
}

/// Everything that can happen to an engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A peer finished its Hello and is a member.
    PeerUp(NodeId),
    /// A peer is gone (however that was noticed).
    PeerDown(NodeId),
    Message {
        from: NodeId,
        msg: EngineMsg,
    },
    Command(Command),
    /// A task this engine asked for ([`Output::RunTask`]) finished.
    ComputeFinished {
        job: JobId,
        task: TaskId,
        output: Vec<u8>,
    },
    /// Time passed ([`Engine::poll_timeout`]).
    Timeout,
}

/// What the engine wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    Send {
        to: NodeId,
        msg: EngineMsg,
    },
    /// To every peer this node considers up.
    Broadcast {
        msg: EngineMsg,
    },
    /// Compute a task, then report with [`Input::ComputeFinished`].
    RunTask {
        job: JobId,
        task: TaskId,
        kernel: Kernel,
    },
    Event(Event),
}

/// How long a job took, from this node's point of view.
#[derive(Clone, Debug, PartialEq)]
pub struct JobTimings {
    pub started: Millis,
    pub validated: Millis,
    pub assembled: Millis,
    /// Tasks this node computed.
    pub computed_here: u32,
}

/// Why a task runs here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Why {
    /// Placement chose this node.
    Assigned,
    /// Nobody live had started it and this node was idle.
    Stolen,
    /// Backup copy of a straggling task.
    Speculative,
    /// Its validated result was lost with every holder.
    Recompute,
}

/// Something worth showing a person, in plain words via `Display`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    JobAccepted {
        job: JobId,
        tasks: u32,
        submitter: NodeId,
    },
    JobRefused {
        job: JobId,
        why: String,
    },
    TaskStarted {
        job: JobId,
        task: TaskId,
        why: Why,
    },
    TaskComputed {
        job: JobId,
        task: TaskId,
        hash: u64,
    },
    TaskValidated {
        job: JobId,
        task: TaskId,
        hash: u64,
    },
    TaskMismatch {
        job: JobId,
        task: TaskId,
    },
    LiarMarked {
        node: NodeId,
        job: JobId,
        task: TaskId,
    },
    ResultReplicated {
        job: JobId,
        task: TaskId,
        to: NodeId,
    },
    HolderLost {
        job: JobId,
        task: TaskId,
        holder: NodeId,
    },
    PeerDead {
        node: NodeId,
    },
    JobProgress {
        job: JobId,
        validated: u32,
        tasks: u32,
    },
    /// The assembling node has the bytes of `fetched` of `tasks` results.
    AssemblyProgress {
        job: JobId,
        fetched: u32,
        tasks: u32,
    },
    JobDone {
        job: JobId,
        output: JobOutput,
        timings: JobTimings,
    },
    JobCancelled {
        job: JobId,
    },
    /// A message was refused (malformed, unknown job, over a bound).
    Dropped {
        from: NodeId,
        why: &'static str,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Event::*;
        match self {
            JobAccepted {
                job,
                tasks,
                submitter,
            } => write!(f, "job {job} from {submitter}: {tasks} tasks"),
            JobRefused { job, why } => write!(f, "job {job} refused: {why}"),
            TaskStarted { job, task, why } => write!(f, "{job} {task} started ({why:?})"),
            TaskComputed { job, task, hash } => {
                write!(f, "{job} {task} computed, hash {hash:016x}")
            }
            TaskValidated { job, task, hash } => {
                write!(f, "{job} {task} validated, hash {hash:016x}")
            }
            TaskMismatch { job, task } => write!(f, "{job} {task}: nodes disagree on the result"),
            LiarMarked { node, job, task } => {
                write!(f, "{node} reported a wrong result for {job} {task}")
            }
            ResultReplicated { job, task, to } => write!(f, "{job} {task} result copied to {to}"),
            HolderLost { job, task, holder } => write!(f, "{job} {task}: holder {holder} left"),
            PeerDead { node } => write!(f, "{node} left the mesh"),
            JobProgress {
                job,
                validated,
                tasks,
            } => write!(f, "{job}: {validated}/{tasks} tasks validated"),
            AssemblyProgress {
                job,
                fetched,
                tasks,
            } => write!(
                f,
                "{job}: {fetched}/{tasks} results gathered for the output"
            ),
            JobDone { job, timings, .. } => write!(
                f,
                "{job} done: validated at {} ms, assembled at {} ms, {} tasks computed here",
                timings.validated.since(timings.started),
                timings.assembled.since(timings.started),
                timings.computed_here
            ),
            JobCancelled { job } => write!(f, "{job} cancelled"),
            Dropped { from, why } => write!(f, "message from {from} dropped: {why}"),
        }
    }
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    pub tasks_run: u64,
    pub messages_in: u64,
    pub dropped: u64,
    pub stores_sent: u64,
    pub fetches_sent: u64,
}

/// One job as this node knows it.
#[derive(Debug)]
struct Job {
    spec: JobSpec,
    id: JobId,
    tasks: u32,
    board: Board,
    ranking: Ranking,
    /// Result bytes held here, by task, with their hash. Change only through
    /// [`Job::keep`] and [`Job::forget`], which keep `payload_bytes` true.
    payloads: BTreeMap<TaskId, (u64, Vec<u8>)>,
    /// Sum of the lengths in `payloads`.
    payload_bytes: usize,
    /// Tasks validated so far.
    validated: u32,
    /// When a claim by someone else was first seen, by task (for backups).
    claim_seen: BTreeMap<TaskId, Millis>,
    /// Tasks where a mismatch was reported already.
    mismatched: BTreeSet<TaskId>,
    /// Tasks run here as backups.
    backups: BTreeSet<TaskId>,
    /// Tasks other nodes asked this one to compute ([`EngineMsg::Help`]).
    helps: BTreeSet<TaskId>,
    /// When this node last asked for help with a task.
    asked_help: BTreeMap<TaskId, Millis>,
    /// Own facts not yet broadcast.
    outbox: Vec<TaskFact>,
    /// Peers whose digest said we miss facts, since when.
    behind_since: BTreeMap<NodeId, Millis>,
    /// Stores sent and not yet confirmed by a Holding fact.
    stores: BTreeMap<(TaskId, NodeId), (Millis, u32)>,
    /// Fetches in flight: holder asked and when, and how many tries.
    fetches: BTreeMap<TaskId, (NodeId, Millis, u32)>,
    /// Where the next new fetch starts.
    fetch_cursor: u32,
    /// Validated results no live node holds (to be computed again, then fetched).
    unfetchable: BTreeSet<TaskId>,
    /// Whether this node assembles the output.
    assembler: bool,
    /// Whether the output was assembled.
    assembled: bool,
    /// Tasks this node ranks in the top `q` of, in order: its own queue.
    owned: Vec<TaskId>,
    /// How far through `owned` the scheduler is.
    owned_pos: usize,
    /// Where the next scan for a task to steal resumes.
    cursor: u32,
    /// Tasks this node reported that are not validated yet (where help may be needed).
    reported_open: BTreeSet<TaskId>,
    /// The last full scan found nothing to run; scan again only after a change.
    idle: bool,
    /// Whether `steal_after_ms` has passed (stealing allowed).
    steal_open: bool,
    /// No task starts before this (pacing).
    paced_until: Millis,
    /// The current pacing delay. Starts as the spec's; changes by [`EngineMsg::Pacing`]
    /// from the submitter. Kept apart so the spec (and so the job's id) never changes.
    pacing_ms: u32,
    /// When each peer last had all our facts resent, to answer `Resend` at most once a
    /// sync interval (it costs O(tasks)).
    resent_to: BTreeMap<NodeId, Millis>,
    started: Millis,
    validated_at: Option<Millis>,
    computed_here: u32,
}

impl Job {
    /// Keeps result bytes for a task unless some are kept already.
    fn keep(&mut self, task: TaskId, hash: u64, bytes: Vec<u8>) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.payloads.entry(task) {
            self.payload_bytes += bytes.len();
            e.insert((hash, bytes));
        }
    }

    fn forget(&mut self, task: TaskId) {
        if let Some((_, bytes)) = self.payloads.remove(&task) {
            self.payload_bytes -= bytes.len();
        }
    }

    /// Recomputes this node's queue after the ranking changed.
    fn rebuild_owned(&mut self, me: NodeId) {
        let q = usize::from(self.spec.quorum);
        self.owned = (0..self.tasks)
            .map(TaskId)
            .filter(|t| self.ranking.top(*t).take(q).any(|n| n == me))
            .collect();
        self.owned_pos = 0;
        self.idle = false;
    }
}

/// A sans-IO compute node.
#[derive(Debug)]
pub struct Engine {
    me: NodeId,
    config: EngineConfig,
    rng: u64,
    peers: BTreeSet<NodeId>,
    liars: BTreeSet<NodeId>,
    jobs: BTreeMap<JobId, Job>,
    /// Jobs cancelled or dropped recently, so that a late spec does not bring them back.
    /// Bounded by `CANCELLED_MAX`.
    cancelled: VecDeque<JobId>,
    running: BTreeSet<(JobId, TaskId)>,
    /// Unknown jobs whose spec was asked for, and when (bounded by `CANCELLED_MAX`).
    asked: BTreeMap<JobId, Millis>,
    out: VecDeque<Output>,
    now: Millis,
    next_flush: Option<Millis>,
    next_sync: Millis,
    stats: EngineStats,
}

const CANCELLED_MAX: usize = 64;
/// Times a stored copy is sent again before its holder is given up on.
const STORE_TRIES_MAX: u32 = 10;
/// How many steal candidates a thief chooses among.
const STEAL_CHOICES: usize = 8;

impl Engine {
    pub fn new(me: NodeId, config: EngineConfig, seed: u64, now: Millis) -> Engine {
        Engine {
            me,
            next_sync: now.plus(config.sync_ms),
            config,
            rng: seed,
            peers: BTreeSet::new(),
            liars: BTreeSet::new(),
            jobs: BTreeMap::new(),
            cancelled: VecDeque::new(),
            running: BTreeSet::new(),
            asked: BTreeMap::new(),
            out: VecDeque::new(),
            now,
            next_flush: None,
            stats: EngineStats::default(),
        }
    }

    // ---- getters ----

    pub fn id(&self) -> NodeId {
        self.me
    }

    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.iter().copied()
    }

    pub fn liars(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.liars.iter().copied()
    }

    pub fn job_ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.jobs.keys().copied()
    }

    /// The validated hash of a task, if any, in this node's view.
    pub fn validated(&self, job: JobId, task: TaskId) -> Option<u64> {
        self.task_entry(job, task).and_then(|e| e.validated)
    }

    /// Distinct authors that reported `hash` for a task.
    pub fn reporters(&self, job: JobId, task: TaskId, hash: u64) -> usize {
        self.task_entry(job, task)
            .map_or(0, |e| e.reporters_of(hash))
    }

    /// Everything this node knows about a task (for debugging and the simulator).
    pub fn task_entry(&self, job: JobId, task: TaskId) -> Option<&board::TaskEntry> {
        self.jobs.get(&job)?.board.get(task)
    }

    /// Tasks of a job and how many are validated.
    pub fn progress(&self, job: JobId) -> Option<(u32, u32)> {
        self.jobs.get(&job).map(|j| (j.validated, j.tasks))
    }

    pub fn is_assembled(&self, job: JobId) -> bool {
        self.jobs.get(&job).is_some_and(|j| j.assembled)
    }

    /// Facts on all boards, and result bytes held: for bounds checks.
    pub fn footprint(&self) -> (u64, usize) {
        let facts = self.jobs.values().map(|j| j.board.fact_count()).sum();
        let bytes = self.jobs.values().map(|j| j.payload_bytes).sum();
        (facts, bytes)
    }

    // ---- input ----

    pub fn handle_input(&mut self, now: Millis, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::PeerUp(n) => self.peer_up(n),
            Input::PeerDown(n) => self.peer_down(n),
            Input::Message { from, msg } => {
                self.stats.messages_in += 1;
                self.message(from, msg)
            }
            Input::Command(c) => self.command(c),
            Input::ComputeFinished { job, task, output } => self.finished(job, task, output),
            Input::Timeout => self.timeout(),
        }
        self.schedule();
        if self.next_flush.is_none() && self.jobs.values().any(|j| !j.outbox.is_empty()) {
            self.next_flush = Some(self.now.plus(self.config.flush_ms));
        }
    }

    // ---- output ----

    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call `handle_input(now, Input::Timeout)` next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        let mut t = self.next_sync;
        if let Some(f) = self.next_flush {
            t = t.min(f);
        }
        if self.running.len() < self.config.slots {
            for j in self.jobs.values() {
                if !j.idle && j.paced_until > self.now {
                    t = t.min(j.paced_until);
                }
                if !j.steal_open {
                    t = t.min(j.started.plus(self.config.steal_after_ms));
                }
            }
        }
        Some(t)
    }

    // ---- internals ----

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn send(&mut self, to: NodeId, msg: EngineMsg) {
        self.out.push_back(Output::Send { to, msg });
    }

    fn next_random(&mut self) -> u64 {
        self.rng = self.rng.wrapping_add(0x9e37_79b9_7f4a_7c15);
        mix64(self.rng)
    }

    /// Live, honest members, this node included, sorted.
    fn members(&self) -> Vec<NodeId> {
        let mut m: Vec<NodeId> = self
            .peers
            .iter()
            .copied()
            .chain(std::iter::once(self.me))
            .filter(|n| !self.liars.contains(n))
            .collect();
        m.sort_unstable();
        m.dedup();
        m
    }

    fn is_live(&self, n: NodeId) -> bool {
        n == self.me || self.peers.contains(&n)
    }

    fn peer_up(&mut self, n: NodeId) {
        if n == self.me || !self.peers.insert(n) {
            return;
        }
        let honest = !self.liars.contains(&n);
        let me = self.me;
        let chunk = self.config.facts_per_msg_max;
        let mut msgs = Vec::new();
        for j in self.jobs.values_mut() {
            if honest {
                j.ranking.add(n);
                j.rebuild_owned(me);
            }
            j.idle = false;
            msgs.push(EngineMsg::Job {
                spec: j.spec.clone(),
            });
            for facts in j.board.facts_of(me).chunks(chunk) {
                msgs.push(EngineMsg::Facts {
                    job: j.id,
                    facts: facts.to_vec(),
                });
            }
        }
        for m in msgs {
            self.send(n, m);
        }
    }

    fn peer_down(&mut self, n: NodeId) {
        if !self.peers.remove(&n) {
            return;
        }
        self.event(Event::PeerDead { node: n });
        let members = self.members();
        let mut events = Vec::new();
        let me = self.me;
        for j in self.jobs.values_mut() {
            j.ranking.remove(n, &members);
            j.rebuild_owned(me);
            j.behind_since.remove(&n);
            j.stores.retain(|(_, to), _| *to != n);
            // Holders lost: for the UI, and so that re-replication looks at once.
            for t in 0..j.tasks {
                let entry = j.board.task(TaskId(t));
                if let Some(h) = entry.validated
                    && entry.facts_of(n).is_some_and(|f| f.holding.contains(&h))
                {
                    events.push(Event::HolderLost {
                        job: j.id,
                        task: TaskId(t),
                        holder: n,
                    });
                }
            }
            // A fetch from it will not be answered.
            for f in j.fetches.values_mut() {
                if f.0 == n {
                    f.1 = Millis(0);
                }
            }
        }
        for e in events {
            self.event(e);
        }
        self.rereplicate();
        self.fetch_missing();
    }

    fn command(&mut self, c: Command) {
        match c {
            Command::Submit {
                kernel,
                replication,
                quorum,
                pacing_ms,
                nonce,
            } => {
                let spec = JobSpec {
                    kernel,
                    replication,
                    quorum,
                    pacing_ms,
                    submitter: self.me,
                    nonce,
                };
                let id = spec.id();
                if let Err(e) = spec.validate() {
                    self.event(Event::JobRefused {
                        job: id,
                        why: e.to_string(),
                    });
                    return;
                }
                if self.add_job(spec.clone(), true) {
                    self.out.push_back(Output::Broadcast {
                        msg: EngineMsg::Job { spec },
                    });
                }
            }
            Command::Cancel { job } => {
                if self
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.spec.submitter == self.me)
                {
                    self.cancel(job);
                    self.out.push_back(Output::Broadcast {
                        msg: EngineMsg::Cancel { job },
                    });
                }
            }
            Command::SetPacing { job, pacing_ms } => {
                let pacing_ms = pacing_ms.min(PACING_MS_MAX);
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.pacing_ms = pacing_ms;
                    self.out.push_back(Output::Broadcast {
                        msg: EngineMsg::Pacing { job, pacing_ms },
                    });
                }
            }
            Command::Assemble { job } => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.assembler = true;
                }
                self.fetch_missing();
            }
        }
    }

    /// Starts tracking a job. Returns false if it was refused.
    fn add_job(&mut self, spec: JobSpec, assembler: bool) -> bool {
        let id = spec.id();
        if self.jobs.contains_key(&id) || self.cancelled.contains(&id) {
            return false;
        }
        if self.jobs.len() >= self.config.jobs_max {
            // Make room by dropping the oldest finished job, if any. An output this
            // node still has to assemble is not finished. A dropped job is remembered
            // like a cancelled one, so a peer's digest does not bring it back.
            let done = self
                .jobs
                .values()
                .filter(|j| j.validated == j.tasks && (!j.assembler || j.assembled))
                .map(|j| (j.started, j.id))
                .min();
            match done {
                Some((_, old)) => {
                    self.jobs.remove(&old);
                    self.running.retain(|(j, _)| *j != old);
                    self.remember_retired(old);
                }
                None => {
                    self.event(Event::JobRefused {
                        job: id,
                        why: "too many jobs at once".into(),
                    });
                    return false;
                }
            }
        }
        let tasks = spec.tasks();
        let k = usize::from(spec.quorum.max(spec.replication)) + 2;
        let members = self.members();
        let job = Job {
            board: Board::new(tasks, self.config.authors_max),
            ranking: Ranking::new(id, tasks, k, &members),
            id,
            tasks,
            payloads: BTreeMap::new(),
            payload_bytes: 0,
            validated: 0,
            claim_seen: BTreeMap::new(),
            mismatched: BTreeSet::new(),
            backups: BTreeSet::new(),
            helps: BTreeSet::new(),
            asked_help: BTreeMap::new(),
            outbox: Vec::new(),
            behind_since: BTreeMap::new(),
            stores: BTreeMap::new(),
            fetches: BTreeMap::new(),
            fetch_cursor: 0,
            unfetchable: BTreeSet::new(),
            assembler,
            assembled: false,
            owned: Vec::new(),
            owned_pos: 0,
            // Thieves start apart, in the last quarter of the tasks.
            cursor: tasks - 1 - (self.next_random() % u64::from(tasks.div_ceil(4))) as u32,
            reported_open: BTreeSet::new(),
            idle: false,
            steal_open: false,
            paced_until: self.now,
            pacing_ms: spec.pacing_ms,
            resent_to: BTreeMap::new(),
            started: self.now,
            validated_at: None,
            computed_here: 0,
            spec,
        };
        self.asked.remove(&id);
        self.event(Event::JobAccepted {
            job: id,
            tasks,
            submitter: job.spec.submitter,
        });
        let mut job = job;
        job.rebuild_owned(self.me);
        self.jobs.insert(id, job);
        true
    }

    fn cancel(&mut self, job: JobId) {
        if self.jobs.remove(&job).is_some() {
            self.running.retain(|(j, _)| *j != job);
            self.remember_retired(job);
            self.event(Event::JobCancelled { job });
        }
    }

    /// Remembers a job that was cancelled or dropped, so it is not taken up again.
    fn remember_retired(&mut self, job: JobId) {
        if self.cancelled.len() >= CANCELLED_MAX {
            self.cancelled.pop_front();
        }
        self.cancelled.push_back(job);
    }

    /// A peer speaks of a job we do not know (its spec was lost, or we joined late):
    /// ask for it, at most once a sync interval.
    fn ask_for_job(&mut self, from: NodeId, job: JobId) {
        if self.cancelled.contains(&job) {
            return;
        }
        let now = self.now;
        if self
            .asked
            .get(&job)
            .is_some_and(|t| now.since(*t) < self.config.sync_ms)
        {
            return;
        }
        if self.asked.len() >= CANCELLED_MAX {
            self.asked.clear();
        }
        self.asked.insert(job, now);
        self.send(from, EngineMsg::Resend { job });
    }

    fn drop_msg(&mut self, from: NodeId, why: &'static str) {
        self.stats.dropped += 1;
        self.event(Event::Dropped { from, why });
    }

    fn message(&mut self, from: NodeId, msg: EngineMsg) {
        match msg {
            EngineMsg::Job { spec } => {
                let id = spec.id();
                if self.jobs.contains_key(&id) {
                    return;
                }
                if let Err(e) = spec.validate() {
                    self.event(Event::JobRefused {
                        job: id,
                        why: e.to_string(),
                    });
                    self.stats.dropped += 1;
                    return;
                }
                self.add_job(spec, false);
            }
            EngineMsg::Facts { job, facts } => {
                if !self.jobs.contains_key(&job) {
                    self.ask_for_job(from, job);
                    return self.drop_msg(from, "facts about an unknown job");
                }
                if facts.len() > self.config.facts_per_msg_max {
                    return self.drop_msg(from, "too many facts in one message");
                }
                for f in facts {
                    self.fact(job, from, f);
                }
            }
            EngineMsg::Digest { job, facts } => {
                let now = self.now;
                let sync = self.config.sync_ms;
                let Some(j) = self.jobs.get_mut(&job) else {
                    return self.ask_for_job(from, job);
                };
                if j.board.count(from) >= facts {
                    j.behind_since.remove(&from);
                    return;
                }
                // Facts may still be in flight: ask only if still behind a sync later.
                match j.behind_since.get(&from) {
                    Some(since) if now.since(*since) >= sync => {
                        j.behind_since.insert(from, now);
                        self.send(from, EngineMsg::Resend { job });
                    }
                    Some(_) => {}
                    None => {
                        j.behind_since.insert(from, now);
                    }
                }
            }
            EngineMsg::Resend { job } => {
                let me = self.me;
                let now = self.now;
                let sync = self.config.sync_ms;
                let chunk = self.config.facts_per_msg_max;
                let Some(j) = self.jobs.get_mut(&job) else {
                    return;
                };
                if j.resent_to.get(&from).is_some_and(|t| now.since(*t) < sync) {
                    return self.drop_msg(from, "resend asked again within a sync interval");
                }
                j.resent_to.insert(from, now);
                let j = &*j;
                let spec = EngineMsg::Job {
                    spec: j.spec.clone(),
                };
                let msgs: Vec<EngineMsg> = std::iter::once(spec)
                    .chain(
                        j.board
                            .facts_of(me)
                            .chunks(chunk)
                            .map(|c| EngineMsg::Facts {
                                job,
                                facts: c.to_vec(),
                            }),
                    )
                    .collect();
                for m in msgs {
                    self.send(from, m);
                }
            }
            EngineMsg::Store {
                job,
                task,
                hash,
                payload,
            } => self.store(from, job, task, hash, payload),
            EngineMsg::Fetch { job, task, hash } => {
                let Some(j) = self.jobs.get(&job) else { return };
                if let Some((h, bytes)) = j.payloads.get(&task)
                    && *h == hash
                {
                    let payload = bytes.clone();
                    self.send(
                        from,
                        EngineMsg::Payload {
                            job,
                            task,
                            hash,
                            payload,
                        },
                    );
                }
            }
            EngineMsg::Payload {
                job,
                task,
                hash,
                payload,
            } => {
                let Some(j) = self.jobs.get(&job) else { return };
                // Only answers to our own fetches: unsolicited bytes could move the fetch
                // window or fill memory.
                if !j.fetches.contains_key(&task) {
                    return self.drop_msg(from, "payload nobody asked for");
                }
                if task.0 >= j.tasks
                    || payload.len() > j.spec.kernel.task_output_len_max()
                    || j.board.task(task).validated != Some(hash)
                    || content_hash(&payload) != hash
                {
                    return self.drop_msg(from, "payload that does not match the validated hash");
                }
                let Some(j) = self.jobs.get_mut(&job) else {
                    return;
                };
                j.fetches.remove(&task);
                let new = !j.payloads.contains_key(&task);
                j.keep(task, hash, payload);
                let (fetched, tasks) = (j.payloads.len() as u32, j.tasks);
                if new && j.assembler && !j.assembled {
                    self.event(Event::AssemblyProgress {
                        job,
                        fetched,
                        tasks,
                    });
                }
                self.try_assemble(job);
                self.fetch_missing();
            }
            EngineMsg::Help { job, task } => {
                let Some(j) = self.jobs.get_mut(&job) else {
                    return self.ask_for_job(from, job);
                };
                let reported = j
                    .board
                    .get(task)
                    .and_then(|e| e.facts_of(self.me))
                    .is_some_and(|f| !f.reports.is_empty());
                // Wake the scheduler only for news: a repeated or moot request costs nothing.
                if task.0 < j.tasks && !reported && j.helps.insert(task) {
                    j.idle = false;
                }
            }
            EngineMsg::Cancel { job } => {
                if self
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.spec.submitter == from)
                {
                    self.cancel(job);
                } else if self.jobs.contains_key(&job) {
                    self.drop_msg(from, "cancel from a node that did not submit the job");
                }
            }
            EngineMsg::Pacing { job, pacing_ms } => {
                let now = self.now;
                match self.jobs.get_mut(&job) {
                    Some(j) if j.spec.submitter == from => {
                        j.pacing_ms = pacing_ms.min(PACING_MS_MAX);
                        // A shorter delay takes effect at once.
                        j.paced_until = j.paced_until.min(now.plus(u64::from(j.pacing_ms)));
                    }
                    Some(_) => {
                        self.drop_msg(from, "pacing from a node that did not submit the job")
                    }
                    None => {}
                }
            }
        }
    }

    /// Records a fact of this node's own (it goes out with the next flush).
    fn say(&mut self, job: JobId, task: TaskId, fact: Fact) {
        let me = self.me;
        self.fact(job, me, TaskFact { task, fact });
    }

    /// Records a fact by `author` and reacts to it.
    fn fact(&mut self, job: JobId, author: NodeId, f: TaskFact) {
        let now = self.now;
        let me = self.me;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        match j.board.add(author, f) {
            Added::New | Added::Replaced => {}
            Added::Duplicate => return,
            Added::BadTask => return self.drop_msg(author, "fact about a task out of range"),
            Added::Refused => return,
        }
        if author == me {
            j.outbox.push(f);
        }
        match f.fact {
            Fact::Claim => {
                if author != me {
                    j.claim_seen.entry(f.task).or_insert(now);
                }
            }
            Fact::Report(_) => {
                let entry = j.board.task(f.task);
                if entry.validated.is_none() && entry.has_mismatch() && j.mismatched.insert(f.task)
                {
                    j.idle = false;
                    self.event(Event::TaskMismatch { job, task: f.task });
                }
                let entry = self.jobs[&job].board.task(f.task);
                if let Some(h) = entry.validated {
                    // A report after validation: a different hash is a lie.
                    if entry
                        .facts_of(author)
                        .is_some_and(|a| a.reports.iter().any(|r| *r != h))
                    {
                        self.mark_liar(author, job, f.task);
                    }
                } else {
                    self.check_quorum(job, f.task);
                    // A report short of the quorum ends that author's claim without
                    // finishing the task: with q > 1 another computation may now be due.
                    if let Some(j) = self.jobs.get_mut(&job)
                        && j.board.task(f.task).validated.is_none()
                        && j.spec.quorum > 1
                    {
                        j.idle = false;
                    }
                }
            }
            Fact::Holding(_) => {
                j.stores.remove(&(f.task, author));
            }
        }
    }

    fn check_quorum(&mut self, job: JobId, task: TaskId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let Some(hash) = j.board.check_quorum(task, usize::from(j.spec.quorum)) else {
            return;
        };
        j.validated += 1;
        j.reported_open.remove(&task);
        j.claim_seen.remove(&task);
        j.helps.remove(&task);
        let (validated, tasks) = (j.validated, j.tasks);
        // Bytes kept for another hash are a liar's: drop them.
        if j.payloads.get(&task).is_some_and(|(h, _)| *h != hash) {
            j.forget(task);
        }
        let liars: Vec<NodeId> = j
            .board
            .task(task)
            .authors
            .iter()
            .filter(|(_, f)| f.reports.iter().any(|r| *r != hash))
            .map(|(n, _)| *n)
            .collect();
        self.event(Event::TaskValidated { job, task, hash });
        self.event(Event::JobProgress {
            job,
            validated,
            tasks,
        });
        for n in liars {
            self.mark_liar(n, job, task);
        }
        if validated == tasks {
            let now = self.now;
            if let Some(j) = self.jobs.get_mut(&job) {
                j.validated_at = Some(now);
            }
            self.fetch_missing();
            self.try_assemble(job);
        }
    }

    fn mark_liar(&mut self, n: NodeId, job: JobId, task: TaskId) {
        if n == self.me || !self.liars.insert(n) {
            return;
        }
        self.event(Event::LiarMarked { node: n, job, task });
        let members = self.members();
        let me = self.me;
        for j in self.jobs.values_mut() {
            j.ranking.remove(n, &members);
            j.rebuild_owned(me);
        }
    }

    fn finished(&mut self, job: JobId, task: TaskId, output: Vec<u8>) {
        if !self.running.remove(&(job, task)) {
            return;
        }
        let now = self.now;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if output.len() > j.spec.kernel.task_output_len_max() {
            return self.drop_msg(self.me, "own task output over its bound");
        }
        let hash = content_hash(&output);
        j.computed_here += 1;
        j.paced_until = now.plus(u64::from(j.pacing_ms));
        if j.board.task(task).validated.is_none() {
            j.reported_open.insert(task);
        }
        match j.board.task(task).validated {
            Some(v) if v != hash => {}
            _ => {
                // Own bytes win over stored ones: a report must imply holding the bytes
                // (see `TaskEntry::holders_of`).
                if j.payloads.get(&task).is_some_and(|(h, _)| *h != hash) {
                    j.forget(task);
                }
                j.keep(task, hash, output);
            }
        }
        self.stats.tasks_run += 1;
        self.event(Event::TaskComputed { job, task, hash });
        self.say(job, task, Fact::Report(hash));
        if self
            .jobs
            .get(&job)
            .is_some_and(|j| j.payloads.get(&task).is_some_and(|(h, _)| *h == hash))
        {
            self.say(job, task, Fact::Holding(hash));
            self.replicate(job, task);
        }
        self.try_assemble(job);
    }

    /// The live, honest top-`r` of a task.
    fn holders(&self, j: &Job, task: TaskId) -> Vec<NodeId> {
        j.ranking
            .top(task)
            .filter(|n| self.is_live(*n) && !self.liars.contains(n))
            .take(usize::from(j.spec.replication))
            .collect()
    }

    /// Sends the bytes this node holds for `task` to holders that lack them.
    fn replicate(&mut self, job: JobId, task: TaskId) {
        let Some(j) = self.jobs.get(&job) else { return };
        let Some((hash, bytes)) = j.payloads.get(&task) else {
            return;
        };
        let hash = *hash;
        let entry = j.board.task(task);
        let missing: Vec<NodeId> = self
            .holders(j, task)
            .into_iter()
            .filter(|n| {
                *n != self.me
                    && !entry
                        .facts_of(*n)
                        .is_some_and(|f| f.holding.contains(&hash))
            })
            .filter(|n| !j.stores.contains_key(&(task, *n)))
            .collect();
        if missing.is_empty() {
            return;
        }
        let bytes = bytes.clone();
        let now = self.now;
        for to in missing {
            self.stats.stores_sent += 1;
            if let Some(j) = self.jobs.get_mut(&job) {
                j.stores.insert((task, to), (now, 0));
            }
            self.send(
                to,
                EngineMsg::Store {
                    job,
                    task,
                    hash,
                    payload: bytes.clone(),
                },
            );
            self.event(Event::ResultReplicated { job, task, to });
        }
    }

    /// After a departure: restore `r` copies of every validated result this node holds,
    /// if it is the first live holder in ranking order (so one node sends, not all).
    fn rereplicate(&mut self) {
        let mut todo = Vec::new();
        for j in self.jobs.values() {
            for (task, (hash, _)) in &j.payloads {
                let entry = j.board.task(*task);
                if entry.validated != Some(*hash) {
                    continue;
                }
                let live_holders: Vec<NodeId> = entry
                    .holders_of(*hash)
                    .filter(|n| self.is_live(*n))
                    .collect();
                let first = j
                    .ranking
                    .top(*task)
                    .find(|n| live_holders.contains(n))
                    .or_else(|| live_holders.iter().min().copied());
                if first == Some(self.me) {
                    todo.push((j.id, *task));
                }
            }
        }
        for (job, task) in todo {
            self.replicate(job, task);
        }
    }

    fn store(&mut self, from: NodeId, job: JobId, task: TaskId, hash: u64, payload: Vec<u8>) {
        let me = self.me;
        let Some(j) = self.jobs.get_mut(&job) else {
            self.ask_for_job(from, job);
            return self.drop_msg(from, "store for an unknown job");
        };
        if task.0 >= j.tasks
            || payload.len() > j.spec.kernel.task_output_len_max()
            || content_hash(&payload) != hash
        {
            return self.drop_msg(from, "store whose bytes do not match its hash");
        }
        // Only a node among the task's top ranked keeps bytes sent to it (with slack
        // for views that differ): anyone else would let a peer fill its memory.
        if !j.ranking.top(task).any(|n| n == me) {
            return self.drop_msg(from, "store for a task this node does not hold");
        }
        if j.board.task(task).validated.is_some_and(|v| v != hash) {
            return self.drop_msg(from, "store of a result that lost validation");
        }
        if j.payloads.contains_key(&task) {
            // Already holding (maybe another hash awaiting validation): keep the first.
            if j.payloads.get(&task).is_some_and(|(h, _)| *h == hash) {
                self.say(job, task, Fact::Holding(hash));
            }
            return;
        }
        j.keep(task, hash, payload);
        self.say(job, task, Fact::Holding(hash));
        self.try_assemble(job);
    }

    /// Asks holders for the results an assembling node lacks.
    fn fetch_missing(&mut self) {
        let ids: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.assembler && !j.assembled && j.validated == j.tasks)
            .map(|j| j.id)
            .collect();
        for id in ids {
            self.fetch_job(id);
        }
    }

    /// Keeps up to `fetches_max` fetches in flight for one job: retries timed-out ones
    /// with another holder, then walks a cursor over the tasks, so the work per call is
    /// bounded by the window, not the job.
    fn fetch_job(&mut self, id: JobId) {
        let now = self.now;
        let Some(j) = self.jobs.get(&id) else { return };
        let mut candidates: Vec<(TaskId, u32)> = j
            .fetches
            .iter()
            .filter(|(_, (_, at, _))| now.since(*at) >= self.config.fetch_timeout_ms)
            .map(|(t, (_, _, tries))| (*t, tries + 1))
            .collect();
        candidates.extend(j.unfetchable.iter().map(|t| (*t, 0)));
        let mut cursor = j.fetch_cursor;
        let mut window = self.config.fetches_max.saturating_sub(j.fetches.len());
        while window > 0 && cursor < j.tasks {
            let task = TaskId(cursor);
            cursor += 1;
            if !j.payloads.contains_key(&task) && !j.fetches.contains_key(&task) {
                candidates.push((task, 0));
                window -= 1;
            }
        }
        let mut sends = Vec::new();
        let mut lost = Vec::new();
        for (task, tries) in candidates {
            if j.payloads.contains_key(&task) {
                continue;
            }
            let entry = j.board.task(task);
            let Some(hash) = entry.validated else {
                continue;
            };
            let holders: Vec<NodeId> = entry
                .holders_of(hash)
                .filter(|n| *n != self.me && self.is_live(*n) && !self.liars.contains(n))
                .collect();
            if holders.is_empty() {
                lost.push(task);
            } else {
                sends.push((task, hash, holders[tries as usize % holders.len()], tries));
            }
        }
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        j.fetch_cursor = cursor;
        for (task, ..) in &sends {
            j.unfetchable.remove(task);
        }
        if !lost.is_empty() {
            // No live holder: the task will be computed again; look again later.
            j.idle = false;
            for task in lost {
                j.fetches.remove(&task);
                j.unfetchable.insert(task);
            }
        }
        for (task, hash, to, tries) in sends {
            self.stats.fetches_sent += 1;
            if let Some(j) = self.jobs.get_mut(&id) {
                j.fetches.insert(task, (to, now, tries));
            }
            self.send(
                to,
                EngineMsg::Fetch {
                    job: id,
                    task,
                    hash,
                },
            );
        }
    }

    fn try_assemble(&mut self, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if !j.assembler
            || j.assembled
            || j.validated < j.tasks
            || j.payloads.len() < j.tasks as usize
        {
            return;
        }
        let outputs: Vec<&[u8]> = (0..j.tasks)
            .map(|t| j.payloads[&TaskId(t)].1.as_slice())
            .collect();
        match j.spec.kernel.assemble(&outputs) {
            Ok(output) => {
                j.assembled = true;
                let timings = JobTimings {
                    started: j.started,
                    validated: j.validated_at.unwrap_or(self.now),
                    assembled: self.now,
                    computed_here: j.computed_here,
                };
                self.event(Event::JobDone {
                    job,
                    output,
                    timings,
                });
            }
            Err(_) => {
                // Validated bytes that do not assemble would be a kernel bug.
                self.stats.dropped += 1;
            }
        }
    }

    fn timeout(&mut self) {
        let now = self.now;
        let grace = self.config.steal_after_ms;
        for j in self.jobs.values_mut() {
            if !j.steal_open && now.since(j.started) >= grace {
                j.steal_open = true;
                j.idle = false;
            }
        }
        if self.next_flush.is_some_and(|f| f <= now) {
            self.next_flush = None;
            self.flush();
        }
        if self.next_sync <= now {
            self.next_sync = now.plus(self.config.sync_ms);
            self.sync();
        }
    }

    /// Broadcasts own new facts.
    fn flush(&mut self) {
        let chunk = self.config.facts_per_msg_max;
        let mut msgs = Vec::new();
        for j in self.jobs.values_mut() {
            for facts in std::mem::take(&mut j.outbox).chunks(chunk) {
                msgs.push(EngineMsg::Facts {
                    job: j.id,
                    facts: facts.to_vec(),
                });
            }
        }
        for msg in msgs {
            self.out.push_back(Output::Broadcast { msg });
        }
    }

    /// The periodic work: digests, retries, backups.
    fn sync(&mut self) {
        // Before `idle` is reset below: help is asked only by nodes with nothing to run.
        self.ask_for_help();
        let me = self.me;
        let now = self.now;
        let retry = self.config.store_retry_ms;
        let mut digests = Vec::new();
        let mut resend = Vec::new();
        for j in self.jobs.values_mut() {
            digests.push(EngineMsg::Digest {
                job: j.id,
                facts: j.board.count(me),
            });
            for ((task, to), (at, tries)) in j.stores.iter_mut() {
                if now.since(*at) >= retry {
                    *at = now;
                    *tries += 1;
                    resend.push((j.id, *task, *to, *tries));
                }
            }
        }
        // A straggler is work no event announces: look for backups in idle jobs.
        let wake: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.idle && j.claim_seen.keys().any(|t| self.backup_candidate(j, *t)))
            .map(|j| j.id)
            .collect();
        for id in wake {
            if let Some(j) = self.jobs.get_mut(&id) {
                j.idle = false;
            }
        }
        for msg in digests {
            self.out.push_back(Output::Broadcast { msg });
        }
        for (job, task, to, tries) in resend {
            let Some(j) = self.jobs.get(&job) else {
                continue;
            };
            // Stop retrying a node that is no longer a holder (the ranking moved) or that
            // never confirms (it may be lying): re-replication picks the next holder.
            if !self.holders(j, task).contains(&to) || tries > STORE_TRIES_MAX {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.stores.remove(&(task, to));
                }
                continue;
            }
            if let Some((hash, bytes)) = j.payloads.get(&task) {
                let msg = EngineMsg::Store {
                    job,
                    task,
                    hash: *hash,
                    payload: bytes.clone(),
                };
                self.stats.stores_sent += 1;
                self.send(to, msg);
            }
        }
        self.fetch_missing();
    }

    /// A task this node cannot advance (it reported already, and nobody it knows of is
    /// computing it) while the quorum is short in its view: ask the next node that has
    /// not reported it. Happens when a report was lost with its author. Only looked at
    /// when this node has nothing else to run for the job, once per `straggler_ms` a task.
    fn ask_for_help(&mut self) {
        let now = self.now;
        let mut asks = Vec::new();
        for j in self.jobs.values() {
            if !j.idle || j.validated == j.tasks {
                continue;
            }
            for &task in &j.reported_open {
                let entry = j.board.task(task);
                if entry.validated.is_some()
                    || self.running.contains(&(j.id, task))
                    || j.asked_help
                        .get(&task)
                        .is_some_and(|at| now.since(*at) < self.config.straggler_ms)
                    || self.runnable(j, task, true).is_some()
                {
                    continue;
                }
                let in_flight = entry.authors.iter().any(|(n, f)| {
                    f.claimed && f.reports.is_empty() && self.is_live(*n) && *n != self.me
                });
                if in_flight {
                    continue;
                }
                let fresh = |n: &NodeId| {
                    *n != self.me
                        && !self.liars.contains(n)
                        && entry.facts_of(*n).is_none_or(|f| f.reports.is_empty())
                };
                let helper = j
                    .ranking
                    .top(task)
                    .filter(|n| self.is_live(*n))
                    .find(fresh)
                    .or_else(|| self.peers.iter().copied().find(fresh));
                if let Some(to) = helper {
                    asks.push((j.id, task, to));
                }
            }
        }
        for (job, task, to) in asks {
            if let Some(j) = self.jobs.get_mut(&job) {
                j.asked_help.insert(task, now);
            }
            self.send(to, EngineMsg::Help { job, task });
        }
    }

    /// Whether this node should compute `task` now, and why.
    fn runnable(&self, j: &Job, task: TaskId, allow_steal: bool) -> Option<Why> {
        if self.running.contains(&(j.id, task)) {
            return None;
        }
        let entry = j.board.task(task);
        let mine = entry.facts_of(self.me);
        // Asked by a node whose view lacks the quorum ours may have: our report helps it
        // even if the task looks validated here.
        if j.helps.contains(&task) && mine.is_none_or(|f| f.reports.is_empty()) {
            return Some(Why::Assigned);
        }
        if let Some(h) = entry.validated {
            // Done, unless every holder of the bytes is gone.
            if j.payloads.get(&task).is_some_and(|(x, _)| *x == h) {
                return None;
            }
            if entry
                .holders_of(h)
                .any(|n| self.is_live(n) && !self.liars.contains(&n))
            {
                return None;
            }
            let first = j.ranking.top(task).find(|n| self.is_live(*n));
            return (first == Some(self.me) || allow_steal).then_some(Why::Recompute);
        }
        if mine.is_some_and(|f| !f.reports.is_empty()) {
            return None;
        }
        let busy = |n: NodeId, f: &board::AuthorFacts| {
            f.claimed && f.reports.is_empty() && self.is_live(n) && !self.liars.contains(&n)
        };
        let in_flight = entry
            .authors
            .iter()
            .filter(|(n, f)| *n != self.me && busy(*n, f))
            .count();
        let needed = usize::from(j.spec.quorum).saturating_sub(entry.best_agreement() + in_flight);
        if needed == 0 {
            return None;
        }
        // The first `needed` ranked nodes that have neither reported nor claimed it.
        let mut eligible = j.ranking.top(task).filter(|n| {
            *n == self.me
                || entry
                    .facts_of(*n)
                    .is_none_or(|f| !f.claimed && f.reports.is_empty())
        });
        if eligible.by_ref().take(needed).any(|n| n == self.me) {
            return Some(Why::Assigned);
        }
        // Ranking exhausted (many disagreeing reporters): any node may help.
        let ranked = j.ranking.top(task).count();
        let exhausted = j.ranking.top(task).all(|n| {
            n != self.me
                && entry
                    .facts_of(n)
                    .is_some_and(|f| f.claimed || !f.reports.is_empty())
        }) && ranked > 0;
        let may_steal = allow_steal && j.steal_open;
        if (may_steal && in_flight == 0) || exhausted {
            return Some(Why::Stolen);
        }
        None
    }

    /// Straggler backup: claimed long ago by a live node, no result yet.
    fn backup_candidate(&self, j: &Job, task: TaskId) -> bool {
        let entry = j.board.task(task);
        if entry.validated.is_some()
            || j.backups.contains(&task)
            || self.running.contains(&(j.id, task))
        {
            return false;
        }
        if entry
            .facts_of(self.me)
            .is_some_and(|f| f.claimed || !f.reports.is_empty())
        {
            return false;
        }
        let claimers = entry.authors.iter().filter(|(_, f)| f.claimed).count();
        claimers <= usize::from(j.spec.quorum)
            && j.claim_seen
                .get(&task)
                .is_some_and(|t| self.now.since(*t) >= self.config.straggler_ms)
    }

    /// Starts tasks while slots are free.
    fn schedule(&mut self) {
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            while self.running.len() < self.config.slots {
                let Some((task, why)) = self.pick(id) else {
                    break;
                };
                self.start(id, task, why);
            }
        }
    }

    /// The next task to start for a job: from this node's own queue first, then one to
    /// steal (a scan that resumes where the last one stopped, so a sweep over the job
    /// costs O(tasks) however many steals it yields), then a straggler's backup.
    fn pick(&mut self, id: JobId) -> Option<(TaskId, Why)> {
        let j = self.jobs.get(&id)?;
        if j.idle || j.paced_until > self.now {
            return None;
        }
        let mut pos = j.owned_pos;
        while let Some(&task) = j.owned.get(pos) {
            if let Some(why) = self.runnable(j, task, false) {
                self.jobs.get_mut(&id)?.owned_pos = pos;
                return Some((task, why));
            }
            pos += 1;
        }
        // Owners work through their queues in ascending order, so a thief scans
        // descending: it takes what owners would reach last.
        // Among the first few candidates, a random one: idle thieves that see the same
        // few unclaimed tasks would otherwise all take the same one.
        let n = j.tasks;
        let mut candidates = (0..n)
            .map(|i| TaskId((j.cursor + n - i) % n))
            .filter_map(|t| self.runnable(j, t, true).map(|why| (t, why)))
            .take(STEAL_CHOICES);
        let first = candidates.next();
        let found = first.map(|f| {
            let rest: Vec<(TaskId, Why)> = candidates.collect();
            let pick = (mix64(self.rng ^ u64::from(f.0.0)) % (rest.len() as u64 + 1)) as usize;
            if pick == 0 { f } else { rest[pick - 1] }
        });
        let backup = match found {
            Some(_) => None,
            None => j
                .claim_seen
                .keys()
                .copied()
                .find(|t| self.backup_candidate(j, *t)),
        };
        let j = self.jobs.get_mut(&id)?;
        j.owned_pos = pos;
        if let Some((task, why)) = found {
            j.cursor = task.0;
            return Some((task, why));
        }
        if let Some(task) = backup {
            j.backups.insert(task);
            return Some((task, Why::Speculative));
        }
        j.idle = true;
        None
    }

    fn start(&mut self, id: JobId, task: TaskId, why: Why) {
        self.running.insert((id, task));
        if let Some(j) = self.jobs.get_mut(&id) {
            j.helps.remove(&task);
        }
        self.say(id, task, Fact::Claim);
        let Some(j) = self.jobs.get(&id) else { return };
        let kernel = j.spec.kernel.clone();
        self.event(Event::TaskStarted { job: id, task, why });
        self.out.push_back(Output::RunTask {
            job: id,
            task,
            kernel,
        });
    }
}
