//! The compute engine: a sans-IO node of the compute mesh.
//!
//! It splits jobs into tasks, decides which tasks this node computes (rendezvous
//! placement, stealing, speculative backups), keeps the replicated task board, stores
//! and re-replicates result bytes, validates results by quorum and assembles outputs.
//! It reads no clock, touches no socket, spawns nothing and has no `async`: time is a
//! [`Millis`] argument and randomness a seed given to [`Engine::new`], so the simulator
//! can run dozens of engines in one thread on virtual time and replay any run.
//!
//! # The run loop
//!
//! 1. Feed every input with [`Engine::handle_input`]`(now, input)`: peers coming and
//!    going, messages from peers, commands from the user, finished computations.
//! 2. After every input, drain [`Engine::poll_output`] until it returns `None`, and
//!    carry each [`Output`] out: send or broadcast a message, start a computation
//!    (report it back with [`Input::ComputeFinished`]), show an [`Event`].
//! 3. Call `handle_input(now, Input::Timeout)` no later than [`Engine::poll_timeout`]
//!    ([`Engine::next_timer`] also says which [`Timer`] is due), then drain again.
//!
//! A lone node running a job to the end:
//!
//! ```
//! use node_core::engine::{Command, Engine, EngineConfig, Event, Input, Millis, Output};
//! use node_core::job::NodeId;
//! use node_core::kernels::{Kernel, monte_carlo};
//!
//! let kernel = Kernel::MonteCarloPi(monte_carlo::Params { samples_per_task: 100, tasks: 4, seed: 1 });
//! let mut engine = Engine::new(NodeId(1), EngineConfig::default(), 42, Millis(0));
//! let mut inputs = vec![Input::Command(Command::Submit {
//!     kernel, replication: 1, quorum: 1, pacing_ms: 0, nonce: 1,
//! })];
//! let mut now = Millis(0);
//! let mut done = false;
//! while !done {
//!     for input in inputs.drain(..) {
//!         engine.handle_input(now, input);
//!     }
//!     while let Some(out) = engine.poll_output() {
//!         match out {
//!             // A real node runs this on a worker and reports back later.
//!             Output::RunTask { job, task, kernel } => {
//!                 let mut output = Vec::new();
//!                 kernel.run_task(task.0, &mut output).expect("valid task");
//!                 inputs.push(Input::ComputeFinished { job, task, output });
//!             }
//!             Output::Event(Event::JobDone { .. }) => done = true,
//!             Output::Event(e) => println!("{e}"),
//!             Output::Send { .. } | Output::Broadcast { .. } => {} // no peers here
//!         }
//!     }
//!     if inputs.is_empty() && !done {
//!         now = engine.poll_timeout().expect("the sync timer is always set");
//!         inputs.push(Input::Timeout);
//!     }
//! }
//! ```
//!
//! # Model
//!
//! Membership is this node's own view (peers come and go by [`Input::PeerUp`] and
//! [`Input::PeerDown`]); views may disagree for a while and the engine stays safe:
//! - A task is *validated* when `q` distinct nodes reported the same result hash
//!   (`quorum.rs`). That is the only way a result is accepted, so with at most `q - 1`
//!   liars no wrong result is. A reporter of another hash is marked a liar only with
//!   evidence: `q ≥ 2` and two other reporters of the validated hash (in the job; in
//!   every job when two of them are not the submitter), so never at `q = 1`.
//! - Facts (claims, reports, holdings) are accepted only from their author and merged
//!   by set union ([`board`]); digests every `sync_ms` repair lost messages
//!   (`gossip.rs`).
//! - The `q` computations of a task go to the first nodes of its rendezvous ranking
//!   ([`placement`]) that have neither reported nor claimed it; an idle node steals a
//!   task nobody live has claimed; near the end, a task claimed longer than
//!   `straggler_ms` ago gets a speculative backup (`schedule.rs`).
//! - Result bytes live on the task's top `r` ranked members; when one leaves, a node
//!   that has the bytes copies them to the new top `r` (`replicate.rs`). When no live
//!   node holds a validated result, the task is computed again.
//! - The assembling node fetches every result from a holder (`assemble.rs`); a node
//!   whose view lacks a quorum that died with a reporter asks for help (`help.rs`).
//!
//! Each file owns one part of a job's state ([`job`](self) holds them together) and the
//! `impl Engine` block that changes it; this file holds the API and the dispatch.

#![deny(missing_docs)]

mod api;
mod assemble;
mod board;
mod config;
mod event;
mod gossip;
mod help;
mod job;
mod placement;
mod quorum;
mod replicate;
mod schedule;
mod serve;
#[cfg(test)]
mod tests;
mod timer;
pub mod view;
mod watch;

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use crate::job::{JobId, JobSpec, NodeId, TaskId};
use crate::wire::{EngineMsg, Fact};
pub use api::{Command, Footprint, Input, Millis, Output};
pub use config::EngineConfig;
pub use event::{DropReason, EngineStats, Event, JobTimings, Why};
use job::Job;
use placement::mix64;
pub use quorum::Verdict;
pub use timer::Timer;
use timer::Timers;

/// A sans-IO compute node.
#[derive(Debug)]
pub struct Engine {
    /// This node.
    me: NodeId,
    /// Tunables.
    config: EngineConfig,
    /// State of the seeded random sequence.
    rng: u64,
    /// Peers this node considers up.
    peers: BTreeSet<NodeId>,
    /// Nodes caught reporting a wrong result with evidence enough for every job (see
    /// [`quorum::verdict`]); never placed again. Those caught in one job only are in
    /// that job's `caught`.
    liars: BTreeSet<NodeId>,
    /// The jobs this node takes part in.
    jobs: BTreeMap<JobId, Job>,
    /// Jobs cancelled or evicted recently, so that a late spec does not bring them
    /// back. Bounded by `RETIRED_MAX`.
    retired: VecDeque<JobId>,
    /// Computations under way here.
    running: BTreeSet<(JobId, TaskId)>,
    /// Unknown jobs whose spec was asked for, and when (bounded by `RETIRED_MAX`).
    asked: BTreeMap<JobId, Millis>,
    /// Result bytes sent to each peer in answer to fetches since a time: at most
    /// `served_bytes_per_sync_max` per sync interval, so a small request cannot make
    /// this node send without bound. Pruned when a peer leaves.
    served: BTreeMap<NodeId, (Millis, usize)>,
    /// Requests over a peer's budget, answered when it renews (bounded per peer by
    /// `serve::DEFERRED_PER_PEER_MAX`). Pruned when a peer leaves.
    deferred: BTreeMap<NodeId, VecDeque<serve::Asked>>,
    /// Bumped whenever a result may lack a copy it had (a member came or went, a liar
    /// was marked or forgiven, a holder was given up on by re-replication or by the
    /// assembler): re-replication looks again only at results not found complete since
    /// (`Held::settled`), and scans for work only at tasks not found validated with a
    /// live copy since (`Schedule::settled`).
    copies_gen: u64,
    /// When each peer last had a help request honoured for a task validated here (such
    /// help costs a computation this node would not otherwise do): once per
    /// `straggler_ms`. Pruned when a peer leaves.
    helped_for: BTreeMap<NodeId, Millis>,
    /// Outputs not yet polled.
    out: VecDeque<Output>,
    /// The latest time handed in.
    now: Millis,
    /// Deadlines.
    timers: Timers,
    /// Counters.
    stats: EngineStats,
    /// A presenter paused scheduling here: `Some(n)` starts at most `n` more tasks (a
    /// single step gives one) until resumed. Computations under way finish.
    held: Option<u32>,
    /// A presenter's slow motion: every job paces at least this much here (ms).
    pacing_floor_ms: u32,
}

impl Engine {
    /// A node with id `me`; `seed` drives its only randomness.
    pub fn new(me: NodeId, config: EngineConfig, seed: u64, now: Millis) -> Engine {
        let mut timers = Timers::default();
        timers.set(Timer::Sync, now.plus(config.sync_ms));
        Engine {
            me,
            config,
            rng: seed,
            peers: BTreeSet::new(),
            liars: BTreeSet::new(),
            jobs: BTreeMap::new(),
            retired: VecDeque::new(),
            running: BTreeSet::new(),
            asked: BTreeMap::new(),
            served: BTreeMap::new(),
            deferred: BTreeMap::new(),
            copies_gen: 0,
            helped_for: BTreeMap::new(),
            out: VecDeque::new(),
            now,
            timers,
            stats: EngineStats::default(),
            held: None,
            pacing_floor_ms: 0,
        }
    }

    // ---- getters ----

    /// This node's id.
    pub fn id(&self) -> NodeId {
        self.me
    }

    /// Counters.
    pub fn stats(&self) -> &EngineStats {
        &self.stats
    }

    /// Peers this node considers up.
    pub fn peers(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.peers.iter().copied()
    }

    /// Nodes caught reporting a wrong result, placed in no job.
    pub fn liars(&self) -> impl Iterator<Item = NodeId> + '_ {
        self.liars.iter().copied()
    }

    /// Nodes caught reporting a wrong result in `job` (those placed in no job included):
    /// the job places no task on them, and their copies do not count.
    pub fn caught_in(&self, job: JobId) -> impl Iterator<Item = NodeId> + '_ {
        let caught = self.jobs.get(&job).map(|j| &j.caught);
        let mut all: Vec<NodeId> = self
            .liars
            .iter()
            .chain(caught.into_iter().flatten())
            .copied()
            .collect();
        all.sort_unstable();
        all.dedup();
        all.into_iter()
    }

    /// What `author`'s reports for a task earned it, if it reported another hash than
    /// the validated one ([`quorum::verdict`]).
    pub fn verdict(&self, job: JobId, task: TaskId, author: NodeId) -> Option<Verdict> {
        let j = self.jobs.get(&job)?;
        quorum::verdict(j.board.get(task)?, j.spec.quorum, j.spec.submitter, author)
    }

    /// The members `job` places tasks on, this node included, sorted: live, and not
    /// caught lying in the job or everywhere.
    pub fn placed_members(&self, job: JobId) -> Vec<NodeId> {
        let members = self.members();
        match self.jobs.get(&job) {
            Some(j) => j.placed_among(&members),
            None => members,
        }
    }

    /// A task's top ranked members, best first, as this node's placement keeps them
    /// (`max(q, r) + 2` of them at most): its `q` computers and `r` holders come first.
    pub fn placement(&self, job: JobId, task: TaskId) -> Vec<NodeId> {
        self.jobs
            .get(&job)
            .filter(|j| task.0 < j.tasks)
            .map(|j| j.ranking.top(task).collect())
            .unwrap_or_default()
    }

    /// The jobs this node takes part in.
    pub fn job_ids(&self) -> impl Iterator<Item = JobId> + '_ {
        self.jobs.keys().copied()
    }

    /// The validated hash of a task, if any, in this node's view.
    pub fn validated_hash(&self, job: JobId, task: TaskId) -> Option<u64> {
        self.task_entry(job, task).and_then(|e| e.validated_hash)
    }

    /// Distinct authors that reported `hash` for a task.
    pub fn reporters(&self, job: JobId, task: TaskId, hash: u64) -> usize {
        self.task_entry(job, task)
            .map_or(0, |e| e.reporters_of(hash))
    }

    /// Everything this node knows about a task (views read it as [`Engine::task_facts`]).
    pub(crate) fn task_entry(&self, job: JobId, task: TaskId) -> Option<&board::TaskEntry> {
        self.jobs.get(&job)?.board.get(task)
    }

    /// Where this node wants a task's result bytes: the task's top `r` live, honest
    /// members, skipping any that never confirmed a copy and any known not to have the
    /// job (what replication ends at, and what a view should count copies against).
    pub fn holders_wanted(&self, job: JobId, task: TaskId) -> Vec<NodeId> {
        self.jobs
            .get(&job)
            .map(|j| self.wanted_holders(j, task))
            .unwrap_or_default()
    }

    /// The result bytes this node holds for a task, if any (for the simulator's
    /// checkers, which compare them with the truth themselves).
    pub fn held(&self, job: JobId, task: TaskId) -> Option<&[u8]> {
        let (_, bytes) = self.jobs.get(&job)?.held.payloads.get(&task)?;
        Some(bytes)
    }

    /// The bytes of a task's result held here, only if they are the validated result (a
    /// result computed here and not yet validated, or a liar's, is not).
    pub fn held_validated(&self, job: JobId, task: TaskId) -> Option<&[u8]> {
        let j = self.jobs.get(&job)?;
        let (hash, bytes) = j.held.payloads.get(&task)?;
        (j.board.task(task).validated_hash == Some(*hash)).then_some(bytes.as_slice())
    }

    /// The preview of a validated image result fetched here ([`Command::Watch`]), if it
    /// arrived; results held here have none (use [`Engine::held`]).
    pub fn preview(&self, job: JobId, task: TaskId) -> Option<&[u8]> {
        Some(self.jobs.get(&job)?.watch.previews.get(&task)?)
    }

    /// Whether this node shows a job from previews ([`Command::Watch`]) rather than
    /// assembling it.
    pub fn is_watching(&self, job: JobId) -> bool {
        self.jobs
            .get(&job)
            .is_some_and(|j| j.watch.on && !j.assembly.assembler)
    }

    /// Whether this node shows a job from previews ([`Command::Watch`]) and has a
    /// preview or the result of every task: its picture is whole at preview resolution.
    pub fn is_previewed(&self, job: JobId) -> bool {
        self.jobs.get(&job).is_some_and(|j| {
            j.watch.on
                && !j.assembly.assembler
                && j.all_validated()
                && (0..j.tasks).all(|t| {
                    let t = TaskId(t);
                    j.held.payloads.contains_key(&t) || j.watch.previews.contains_key(&t)
                })
        })
    }

    /// A job's spec, if this node takes part in it.
    pub fn job_spec(&self, job: JobId) -> Option<&JobSpec> {
        self.jobs.get(&job).map(|j| &j.spec)
    }

    /// Tasks computed here at once from now on (0: none). Takes effect at the next
    /// input; computations under way finish.
    pub fn set_slots(&mut self, slots: usize) {
        self.config.slots = slots;
    }

    /// Tasks handed out beyond the slots (`EngineConfig::ahead`) from now on.
    pub fn set_ahead(&mut self, ahead: usize) {
        self.config.ahead = ahead;
    }

    /// The steal grace (`EngineConfig::steal_after_ms`), and the wait before taking a
    /// task left to another thief. The node sets it from the round trips it measures
    /// ([`crate::node::MeshNode`]). It holds for jobs taken up from now on and for those
    /// whose grace still runs: theirs ends `ms` after this node took them up. A peer's
    /// job often arrives before the first round trip to it is measured, and the grace
    /// in force then (200 ms) outlasted a short job, its owner computing its last tasks
    /// while this node sat idle.
    pub fn set_steal_after_ms(&mut self, ms: u64) {
        self.config.steal_after_ms = ms;
        for j in self.jobs.values() {
            let open = Timer::StealOpen(j.id);
            if self.timers.is_set(open) {
                self.timers.set(open, j.started_at.plus(ms));
            }
        }
    }

    /// The steal grace now (see [`Engine::set_steal_after_ms`]).
    pub fn steal_after_ms(&self) -> u64 {
        self.config.steal_after_ms
    }

    /// Pauses (or resumes) starting tasks here, for a presenter who wants the mesh to
    /// stand still. Everything else goes on: facts, copies, failure detection. Takes
    /// effect at the next input.
    pub fn set_paused(&mut self, paused: bool) {
        self.held = paused.then_some(0);
    }

    /// While paused, lets one more task start (a single step); no effect otherwise.
    pub fn step(&mut self) {
        if let Some(n) = &mut self.held {
            *n = n.saturating_add(1);
        }
    }

    /// Forgets every member caught lying, here and in every job (a presenter's reset:
    /// the demonstration starts over), so that the live ones are ranked for every job
    /// again, as members that never lied. What they reported stays on the boards and
    /// counts no more against them in the jobs held now; a lie in a later job is caught
    /// as any lie is.
    pub fn forget_liars(&mut self) {
        self.copies_gen += 1;
        // This node's own lies (told while a presenter made it lie) are taken back:
        // the members here forgive them, and a member that joins later, which gets
        // this node's facts, must not catch it on them either.
        for j in self.jobs.values_mut() {
            for t in 0..j.tasks {
                let task = TaskId(t);
                if j.board.withdraw_own_wrong(task) > 0 {
                    let valid = j.board.task(task).validated_hash;
                    j.gossip.outbox.retain(|f| {
                        f.task != task
                            || !matches!(f.fact, Fact::Report(h) | Fact::Holding(h) if Some(h) != valid)
                    });
                    if j.held
                        .payloads
                        .get(&task)
                        .is_some_and(|(h, _)| Some(*h) != valid)
                    {
                        j.held.forget(task);
                    }
                }
            }
        }
        let mut forgiven = std::mem::take(&mut self.liars);
        for j in self.jobs.values_mut() {
            forgiven.append(&mut j.caught);
        }
        // The jobs held now keep their evidence on their boards: it counts no more.
        for j in self.jobs.values_mut() {
            j.forgiven.extend(forgiven.iter().copied());
        }
        let me = self.me;
        let live: Vec<NodeId> = forgiven
            .into_iter()
            .filter(|n| self.peers.contains(n))
            .collect();
        for j in self.jobs.values_mut() {
            for n in &live {
                j.ranking.add(*n);
            }
            j.rebuild_owned(me);
            j.sched.idle = false;
        }
    }

    /// Forgets the computations under way here, whose outputs will never come (a
    /// presenter failed this node, which threw them away), so that its slots compute
    /// again: a task it claimed and never reported is runnable here again.
    pub fn abandon_running(&mut self) {
        self.running.clear();
        for j in self.jobs.values_mut() {
            j.sched.idle = false;
        }
    }

    /// Whether scheduling here is paused.
    pub fn is_paused(&self) -> bool {
        self.held.is_some()
    }

    /// Slow motion: after each task of any job this node waits at least `ms` (capped
    /// like a job's own pacing); 0 turns it off. The jobs' own pacing still applies
    /// when longer.
    pub fn set_pacing_floor(&mut self, ms: u32) {
        self.pacing_floor_ms = ms.min(crate::job::PACING_MS_MAX);
    }

    /// The slow-motion delay set by [`Engine::set_pacing_floor`].
    pub fn pacing_floor(&self) -> u32 {
        self.pacing_floor_ms
    }

    /// Tasks validated and tasks in the job.
    pub fn progress(&self, job: JobId) -> Option<(u32, u32)> {
        self.jobs.get(&job).map(|j| (j.tasks_validated, j.tasks))
    }

    /// Whether this node assembled the job's output.
    pub fn is_assembled(&self, job: JobId) -> bool {
        self.jobs.get(&job).is_some_and(|j| j.assembly.assembled)
    }

    /// The size of everything this node keeps: for bounds checks.
    pub fn footprint(&self) -> Footprint {
        let sum = |f: &dyn Fn(&Job) -> usize| self.jobs.values().map(f).sum::<usize>();
        Footprint {
            jobs: self.jobs.len(),
            facts: self.jobs.values().map(|j| j.board.fact_count()).sum(),
            payload_bytes: sum(&|j| j.held.payload_bytes),
            retired: self.retired.len(),
            asked: self.asked.len(),
            liars: {
                let mut all: BTreeSet<NodeId> = self.liars.clone();
                for j in self.jobs.values() {
                    all.extend(j.caught.iter().copied());
                }
                all.len()
            },
            peer_budgets: self.served.len() + self.helped_for.len(),
            deferred: self.deferred_count(),
            task_marks: sum(&|j| {
                j.sched.claim_seen.len()
                    + j.sched.backups.len()
                    + j.assembly.unfetchable.len()
                    + j.help.requests.len()
                    + j.help.asked_at.len()
                    + j.help.reported_open.len()
                    + j.mismatched.len()
            }),
            per_author: sum(&|j| {
                j.assembly.unserved.len() + j.held.stores.len() + j.held.refused.len()
            }),
            fetches: sum(&|j| j.assembly.fetches.len()),
            per_peer: sum(&|j| j.gossip.behind_since.len() + j.gossip.resent_to.len()),
            outbox: sum(&|j| j.gossip.outbox.len()),
        }
    }

    // ---- input ----

    /// Takes one input; then drain [`Engine::poll_output`].
    pub fn handle_input(&mut self, now: Millis, input: Input) {
        self.now = self.now.max(now);
        match input {
            Input::PeerUp(n) => self.on_peer_up(n),
            Input::PeerDown(n) => self.on_peer_down(n),
            Input::Message { from, msg } => {
                self.stats.messages_in += 1;
                self.on_message(from, msg)
            }
            Input::Command(c) => self.on_command(c),
            Input::ComputeFinished { job, task, output } => {
                self.on_compute_finished(job, task, output)
            }
            Input::Timeout => self.on_timeout(),
        }
        if self.schedule() {
            // A claim goes out at once: a thief or owner that has not heard of it may
            // start the same task.
            self.flush();
        } else if !self.timers.is_set(Timer::Flush) && self.has_unflushed() {
            self.timers
                .set(Timer::Flush, self.now.plus(self.config.flush_ms));
        }
    }

    // ---- output ----

    /// The next thing to do, until `None`.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// When to call `handle_input(now, Input::Timeout)` next.
    pub fn poll_timeout(&self) -> Option<Millis> {
        self.next_timer().map(|(_, at)| at)
    }

    /// The earliest timer and its deadline: why the node will wake next.
    pub fn next_timer(&self) -> Option<(Timer, Millis)> {
        self.timers.next()
    }

    // ---- dispatch ----

    fn on_message(&mut self, from: NodeId, msg: EngineMsg) {
        match msg {
            EngineMsg::Job { spec } => self.on_job_spec(from, spec),
            EngineMsg::Facts { job, facts } => self.on_facts(from, job, facts),
            EngineMsg::Digest { job, facts } => self.on_digest(from, job, facts),
            EngineMsg::Resend { job } => self.on_resend(from, job),
            EngineMsg::Store {
                job,
                task,
                hash,
                payload,
            } => self.on_store(from, job, task, hash, payload),
            EngineMsg::Fetch { job, task, hash } => self.on_fetch(from, job, task, hash),
            EngineMsg::Payload {
                job,
                task,
                hash,
                payload,
            } => self.on_payload(from, job, task, hash, payload),
            EngineMsg::Help { job, task } => self.on_help(from, job, task),
            EngineMsg::Cancel { job } => self.on_cancel(from, job),
            EngineMsg::Pacing { job, pacing_ms } => self.on_pacing(from, job, pacing_ms),
            EngineMsg::FetchPreview { job, task, hash } => {
                self.on_fetch_preview(from, job, task, hash)
            }
            EngineMsg::Preview {
                job,
                task,
                hash,
                full,
                preview,
            } => self.on_preview(from, job, task, hash, full, preview),
        }
    }

    fn on_peer_up(&mut self, n: NodeId) {
        if n == self.me || !self.peers.insert(n) {
            return;
        }
        self.copies_gen += 1;
        let honest = !self.liars.contains(&n);
        let me = self.me;
        for j in self.jobs.values_mut() {
            let submitter = j.spec.submitter;
            if submitter != me && !self.peers.contains(&submitter) {
                j.unaware.insert(n);
            }
            if honest && !j.caught.contains(&n) {
                j.ranking.add(n);
                j.rebuild_owned(me);
            }
            j.sched.idle = false;
        }
        self.greet(n);
    }

    fn on_peer_down(&mut self, n: NodeId) {
        if !self.peers.remove(&n) {
            return;
        }
        self.copies_gen += 1;
        // Budgets are forgotten with the peer. Liars are not: a peer cut off for a while
        // comes back under the same id (and `liars` only ever holds authors of facts,
        // so it is bounded by the boards).
        self.served.remove(&n);
        self.deferred.remove(&n);
        self.helped_for.remove(&n);
        self.event(Event::PeerDead { node: n });
        let members = self.members();
        let me = self.me;
        for j in self.jobs.values_mut() {
            j.ranking.remove(n, &j.placed_among(&members));
            j.rebuild_owned(me);
            j.gossip.behind_since.remove(&n);
            j.gossip.resent_to.remove(&n);
        }
        self.note_holder_lost(n);
        self.retarget_fetches(n);
        self.rereplicate();
        self.fetch_missing();
    }

    fn on_timeout(&mut self) {
        for timer in self.timers.take_due(self.now) {
            match timer {
                Timer::StealOpen(job) => {
                    if let Some(j) = self.jobs.get_mut(&job) {
                        j.sched.steal_open = true;
                        j.sched.idle = false;
                    }
                }
                Timer::StealRetry(job) => {
                    if let Some(j) = self.jobs.get_mut(&job) {
                        j.sched.idle = false;
                    }
                }
                // The scheduler runs after every input.
                Timer::Paced(_) => {}
                Timer::Flush => self.flush(),
                Timer::Sync => {
                    self.timers
                        .set(Timer::Sync, self.now.plus(self.config.sync_ms));
                    self.sync();
                }
                Timer::Serve => self.serve_deferred(),
            }
        }
    }

    /// The periodic work: help, digests, backups, store and fetch retries.
    fn sync(&mut self) {
        // Before a job's `idle` is reset: help is asked only by nodes with nothing to run.
        self.ask_for_help();
        self.broadcast_digests();
        self.wake_for_backups();
        self.wake_for_expired_claims();
        self.retry_stores();
        self.rereplicate();
        self.fetch_missing();
    }

    // ---- helpers for every concern ----

    fn event(&mut self, e: Event) {
        self.out.push_back(Output::Event(e));
    }

    fn send(&mut self, to: NodeId, msg: EngineMsg) {
        self.out.push_back(Output::Send { to, msg });
    }

    fn broadcast(&mut self, msg: EngineMsg) {
        self.out.push_back(Output::Broadcast { msg });
    }

    fn drop_msg(&mut self, from: NodeId, why: DropReason) {
        self.stats.dropped += 1;
        self.event(Event::Dropped { from, why });
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

    /// Whether `n` is this node or a peer it considers up.
    pub fn is_live(&self, n: NodeId) -> bool {
        n == self.me || self.peers.contains(&n)
    }

    /// Whether `n` was caught lying in job `j` or everywhere: no task, copy, fetch or
    /// help goes to it for that job, and its claims and copies count for nothing.
    fn excluded(&self, j: &Job, n: NodeId) -> bool {
        self.liars.contains(&n) || j.caught.contains(&n)
    }
}

/// Tasks found in some state at a generation of `Engine::copies_gen`: by task, one more
/// than the generation at which it was found so (0: not found, or cleared since). A
/// mark holds only while the generation has not moved, so a bump of it clears every
/// mark at once.
#[derive(Debug, Default)]
struct Settled(Vec<u64>);

impl Settled {
    /// Whether `task` was found so at `generation`.
    fn at(&self, task: TaskId, generation: u64) -> bool {
        self.0.get(task.0 as usize) == Some(&(generation + 1))
    }

    fn mark(&mut self, task: TaskId, generation: u64) {
        let i = task.0 as usize;
        if self.0.len() <= i {
            self.0.resize(i + 1, 0);
        }
        self.0[i] = generation + 1;
    }

    fn clear(&mut self, task: TaskId) {
        if let Some(s) = self.0.get_mut(task.0 as usize) {
            *s = 0;
        }
    }
}

/// Removes every entry of one task from a map keyed by (task, node), in O(log n + k)
/// rather than a pass over the whole map (this runs once per validated task).
fn forget_task<V>(map: &mut BTreeMap<(TaskId, NodeId), V>, task: TaskId) {
    let keys: Vec<(TaskId, NodeId)> = map
        .range((task, NodeId(0))..=(task, NodeId(u64::MAX)))
        .map(|(k, _)| *k)
        .collect();
    for k in keys {
        map.remove(&k);
    }
}
