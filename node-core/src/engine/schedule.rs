//! What this node computes next: its own queue (tasks it ranks in the top `q` of), then
//! a task to steal (nobody live has claimed it), then a speculative backup of a
//! straggler; and what happens when a computation finishes.
//!
//! Never starts more than `slots` computations, never a task this node reported
//! already (unless asked for help), and never before the job's pacing delay.

use std::collections::{BTreeMap, BTreeSet};

use super::board::TaskEntry;
use super::config::STEAL_CHOICES;
use super::job::Job;
use super::placement;
use super::timer::Timer;
use super::{DropReason, Engine, Event, Millis, Output, Settled, Why};
use crate::job::{JobId, NodeId, TaskId, result_hash};
use crate::wire::Fact;

/// What a thief's scan found.
enum Steal {
    /// A task to start now.
    Take(TaskId, Why),
    /// Only tasks that fall to other thieves; the first of them.
    Deferred(TaskId),
    /// Nothing to steal.
    Nothing,
}

/// Per-job scheduling state.
#[derive(Debug)]
pub(super) struct Schedule {
    /// Tasks this node ranks in the top `q` of, in order: its own queue.
    pub(super) owned: Vec<TaskId>,
    /// How far through `owned` the scheduler is.
    pub(super) owned_pos: usize,
    /// Where the next scan for a task to steal resumes.
    pub(super) steal_cursor: u32,
    /// The last full scan found nothing to run; scan again only after a change.
    pub(super) idle: bool,
    /// Whether `steal_after_ms` has passed (stealing allowed).
    pub(super) steal_open: bool,
    /// When another node's claim on a task not yet validated was seen (for backups and
    /// claim expiry), and whether its expiry woke the scheduler already. Claims on a
    /// task seen longer than `claim_expire_ms` ago without a report no longer count as
    /// work in flight, so a node that claims and never reports holds nothing up for
    /// good. A new claimer after that starts the clock again.
    pub(super) claim_seen: BTreeMap<TaskId, (Millis, bool)>,
    /// Tasks run here as backups.
    pub(super) backups: BTreeSet<TaskId>,
    /// Since when the only tasks left to steal fell to other thieves (see
    /// [`Engine::steal_falls_to_me`]); `steal_after_ms` later this node takes one anyway.
    pub(super) deferred_since: Option<Millis>,
    /// By task: one more than the `Engine::copies_gen` at which a scan for work found it
    /// validated with a copy on a live, trusted holder (0: not found so). Only a bump of
    /// that generation (a member gone, a liar caught, a holder given up on) can make
    /// such a task need computing again, so scans pass it by until then: at 64 nodes,
    /// idle members' scans over validated tasks were an eighth of the engine's time.
    pub(super) settled: Settled,
}

impl Schedule {
    pub(super) fn new(steal_cursor: u32) -> Schedule {
        Schedule {
            owned: Vec::new(),
            owned_pos: 0,
            steal_cursor,
            idle: false,
            steal_open: false,
            claim_seen: BTreeMap::new(),
            backups: BTreeSet::new(),
            deferred_since: None,
            settled: Settled::default(),
        }
    }
}

impl Job {
    /// Recomputes this node's queue after the ranking changed.
    pub(super) fn rebuild_owned(&mut self, me: NodeId) {
        let q = usize::from(self.spec.quorum);
        self.sched.owned = (0..self.tasks)
            .map(TaskId)
            .filter(|t| self.ranking.top(*t).take(q).any(|n| n == me))
            .collect();
        self.sched.owned_pos = 0;
        self.sched.idle = false;
    }
}

impl Engine {
    /// Another node claimed a task: remember when, for backups and claim expiry.
    pub(super) fn on_claim(&mut self, job: JobId, task: TaskId, author: NodeId) {
        let now = self.now;
        if author != self.me
            && let Some(j) = self.jobs.get_mut(&job)
        {
            let expire = self.config.claim_expire_ms;
            let seen = j.sched.claim_seen.entry(task).or_insert((now, false));
            if now.since(seen.0) >= expire {
                *seen = (now, false);
            }
        }
    }

    /// How many of a task's claims are work in flight: by live, honest other nodes
    /// that have not reported it, while the task's claims are younger than
    /// `claim_expire_ms`.
    pub(super) fn in_flight(&self, j: &Job, task: TaskId, entry: &TaskEntry) -> usize {
        let fresh = j
            .sched
            .claim_seen
            .get(&task)
            .is_none_or(|(at, _)| self.now.since(*at) < self.config.claim_expire_ms);
        if !fresh {
            return 0;
        }
        entry
            .authors
            .iter()
            .filter(|(n, f)| {
                *n != self.me
                    && f.claimed
                    && f.reports.is_empty()
                    && self.is_live(*n)
                    && !self.excluded(j, *n)
            })
            .count()
    }

    /// Every sync: a claim that just expired is work no event announces; wake its job.
    pub(super) fn wake_for_expired_claims(&mut self) {
        let now = self.now;
        let expire = self.config.claim_expire_ms;
        for j in self.jobs.values_mut() {
            for (at, woke) in j.sched.claim_seen.values_mut() {
                if !*woke && now.since(*at) >= expire {
                    *woke = true;
                    j.sched.idle = false;
                }
            }
        }
    }

    /// A task to take from others' queues. While tasks to steal are plenty (at least
    /// one per member, up to [`STEAL_CHOICES`]), this node's favourite among them by
    /// rendezvous score: thieves rarely meet.
    /// Once they are scarce, every idle thief would race for the same few, so each is
    /// taken only by the member it falls to ([`Engine::steal_falls_to_me`]); the rest
    /// are left to their owners. Recomputations, help and exhausted rankings are taken
    /// as found.
    ///
    /// Also returns the tasks the scan found settled (see [`Schedule::settled`]), for
    /// the caller to mark.
    fn find_steal(&self, j: &Job) -> (Steal, Vec<TaskId>) {
        let n = j.tasks;
        let members = j.placed_among(&self.members());
        let plenty = members.len().min(STEAL_CHOICES);
        let generation = self.copies_gen;
        let mut settled = Vec::new();
        let mut steals = Vec::new();
        for t in (0..n).map(|i| TaskId((j.sched.steal_cursor + n - i) % n)) {
            // Help asked for overrides validation (see `runnable`).
            if j.sched.settled.at(t, generation) && !j.help.requests.contains(&t) {
                continue;
            }
            match self.runnable(j, t, true) {
                Some(Why::Stolen) => {
                    steals.push(t);
                    if steals.len() >= plenty {
                        break;
                    }
                }
                Some(why) => return (Steal::Take(t, why), settled),
                None => {
                    if j.board
                        .task(t)
                        .validated_hash
                        .is_some_and(|h| self.copy_lives(j, t, h))
                    {
                        settled.push(t);
                    }
                }
            }
        }
        if steals.len() >= plenty {
            // This thief's own preference among them: two thieves rarely share it.
            let best = steals
                .iter()
                .max_by_key(|t| placement::score(j.id, **t, self.me));
            let steal = best.map_or(Steal::Nothing, |t| Steal::Take(*t, Why::Stolen));
            return (steal, settled);
        }
        let steal = match steals
            .iter()
            .find(|t| self.steal_falls_to_me(j, **t, &members))
        {
            Some(t) => Steal::Take(*t, Why::Stolen),
            None => steals
                .first()
                .map_or(Steal::Nothing, |t| Steal::Deferred(*t)),
        };
        (steal, settled)
    }

    /// Whether the bytes of `task` validated as `hash` are held here or by a live
    /// member trusted in the job that this node has not given up fetching from.
    fn copy_lives(&self, j: &Job, task: TaskId, hash: u64) -> bool {
        j.held.payloads.get(&task).is_some_and(|(x, _)| *x == hash)
            || j.board
                .task(task)
                .holders_of(hash)
                .any(|n| self.is_live(n) && !self.excluded(j, n) && !j.assembly.gave_up_on(task, n))
    }

    /// Whether a scarce task to steal falls to this node: the highest rendezvous score
    /// among the members that do not own it (the next in its ranking). Thieves that see
    /// the same members pick different tasks, instead of racing for the same few at the
    /// end of a job while their claims are still in flight.
    fn steal_falls_to_me(&self, j: &Job, task: TaskId, members: &[NodeId]) -> bool {
        let owners: Vec<NodeId> = j
            .ranking
            .top(task)
            .take(usize::from(j.spec.quorum))
            .collect();
        let entry = j.board.task(task);
        members
            .iter()
            .filter(|n| {
                **n == self.me
                    || (!owners.contains(n)
                        && entry
                            .facts_of(**n)
                            .is_none_or(|f| !f.claimed && f.reports.is_empty()))
            })
            .max_by_key(|n| placement::score(j.id, task, **n))
            .is_none_or(|n| *n == self.me)
    }

    /// A computation this engine asked for finished.
    pub(super) fn on_compute_finished(&mut self, job: JobId, task: TaskId, output: Vec<u8>) {
        if !self.running.remove(&(job, task)) {
            return;
        }
        let now = self.now;
        let floor = self.pacing_floor_ms;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if output.len() > j.spec.kernel.task_output_len_max() {
            return self.drop_msg(self.me, DropReason::OwnOutputTooBig);
        }
        let hash = result_hash(&j.spec.kernel, task, &output);
        j.computed_here += 1;
        j.paced_until = now.plus(u64::from(j.pacing_ms.max(floor)));
        if j.paced_until > now {
            self.timers.set(Timer::Paced(job), j.paced_until);
        }
        if j.board.task(task).validated_hash.is_none() {
            j.help.reported_open.insert(task);
        }
        match j.board.task(task).validated_hash {
            Some(v) if v != hash => {}
            _ => {
                // Own bytes win over stored ones: a report must imply holding the bytes
                // (see `TaskEntry::holders_of`).
                if j.held.payloads.get(&task).is_some_and(|(h, _)| *h != hash) {
                    j.held.forget(task);
                }
                j.held.keep(task, hash, output);
            }
        }
        self.stats.tasks_run += 1;
        self.event(Event::TaskComputed { job, task, hash });
        self.say(job, task, Fact::Report(hash));
        if self
            .jobs
            .get(&job)
            .is_some_and(|j| j.held.payloads.get(&task).is_some_and(|(h, _)| *h == hash))
        {
            self.say(job, task, Fact::Holding(hash));
            self.replicate(job, task);
        }
        self.try_assemble(job, task);
    }

    /// Whether this node should compute `task` now, and why.
    pub(super) fn runnable(&self, j: &Job, task: TaskId, allow_steal: bool) -> Option<Why> {
        if self.running.contains(&(j.id, task)) {
            return None;
        }
        let entry = j.board.task(task);
        let mine = entry.facts_of(self.me);
        // Asked by a node whose view lacks the quorum ours may have: our report helps it
        // even if the task looks validated here.
        if j.help.requests.contains(&task) && mine.is_none_or(|f| f.reports.is_empty()) {
            return Some(Why::Helped);
        }
        if let Some(h) = entry.validated_hash {
            // Done, unless every holder of the bytes is gone.
            if self.copy_lives(j, task, h) {
                return None;
            }
            // This node computed the task and got other bytes: kernels are deterministic,
            // so computing it again cannot bring the validated ones back (with q = 1 a
            // wrong first report is believed, and its author may leave). Without this,
            // it would recompute the task forever.
            if mine.is_some_and(|f| f.reports.iter().any(|r| *r != h)) {
                return None;
            }
            let first = j.ranking.top(task).find(|n| self.is_live(*n));
            return (first == Some(self.me) || allow_steal).then_some(Why::Recompute);
        }
        if mine.is_some_and(|f| !f.reports.is_empty()) {
            return None;
        }
        let in_flight = self.in_flight(j, task, entry);
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
        let may_steal = allow_steal && j.sched.steal_open;
        if (may_steal && in_flight == 0) || exhausted {
            return Some(Why::Stolen);
        }
        None
    }

    /// Straggler backup: claimed long ago by a live node, no result yet.
    pub(super) fn backup_candidate(&self, j: &Job, task: TaskId) -> bool {
        let entry = j.board.task(task);
        if entry.validated_hash.is_some()
            || j.sched.backups.contains(&task)
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
        // Only work really in flight limits backups: a dead claimer, one that reported
        // or one whose claim expired must not block them.
        let claimers = self.in_flight(j, task, entry);
        claimers <= usize::from(j.spec.quorum)
            && j.sched
                .claim_seen
                .get(&task)
                .is_some_and(|(t, _)| self.now.since(*t) >= self.config.straggler_ms)
    }

    /// A straggler is work no event announces: on every sync, wake idle jobs that have
    /// a backup to run.
    pub(super) fn wake_for_backups(&mut self) {
        let wake: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| {
                j.sched.idle
                    && j.sched
                        .claim_seen
                        .keys()
                        .any(|t| self.backup_candidate(j, *t))
            })
            .map(|j| j.id)
            .collect();
        for id in wake {
            if let Some(j) = self.jobs.get_mut(&id) {
                j.sched.idle = false;
            }
        }
    }

    /// Starts tasks while slots are free. Returns whether any started.
    pub(super) fn schedule(&mut self) -> bool {
        let mut started = false;
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            let slots = self.config.slots + self.ahead_for(id);
            while self.running.len() < slots && self.held != Some(0) {
                let Some((task, why)) = self.pick(id) else {
                    break;
                };
                self.start(id, task, why);
                if let Some(n) = &mut self.held {
                    *n -= 1;
                }
                started = true;
            }
        }
        started
    }

    /// Tasks `id` may have handed out beyond the slots: [`EngineConfig::ahead`] unless
    /// the job is paced (paused or stepping, the steps allowed bound what starts).
    ///
    /// [`EngineConfig::ahead`]: super::EngineConfig::ahead
    fn ahead_for(&self, id: JobId) -> usize {
        let paced = self
            .jobs
            .get(&id)
            .is_none_or(|j| j.pacing_ms.max(self.pacing_floor_ms) > 0);
        if paced { 0 } else { self.config.ahead }
    }

    /// The next task to start for a job: from this node's own queue first, then one to
    /// steal (a scan that resumes where the last one stopped, so a sweep over the job
    /// costs O(tasks) however many steals it yields), then a straggler's backup.
    fn pick(&mut self, id: JobId) -> Option<(TaskId, Why)> {
        let j = self.jobs.get(&id)?;
        if j.sched.idle || j.paced_until > self.now {
            return None;
        }
        let mut pos = j.sched.owned_pos;
        while let Some(&task) = j.sched.owned.get(pos) {
            if let Some(why) = self.runnable(j, task, false) {
                self.jobs.get_mut(&id)?.sched.owned_pos = pos;
                return Some((task, why));
            }
            pos += 1;
        }
        // Owners work through their queues in ascending order, so a thief scans
        // descending: it takes what owners would reach last. A plain steal is taken
        // only if it falls to this node among the idle members.
        let now = self.now;
        let (steal, settled) = self.find_steal(j);
        if !settled.is_empty() {
            let generation = self.copies_gen;
            let j = self.jobs.get_mut(&id)?;
            for t in settled {
                j.sched.settled.mark(t, generation);
            }
        }
        let j = self.jobs.get(&id)?;
        let found = match steal {
            Steal::Take(t, why) => Some((t, why)),
            Steal::Deferred(t) => match j.sched.deferred_since {
                // Left to another thief for long enough: it may be busy or gone.
                Some(since) if now.since(since) >= self.config.steal_after_ms => {
                    Some((t, Why::Stolen))
                }
                since => {
                    let since = since.unwrap_or(now);
                    let at = since.plus(self.config.steal_after_ms);
                    let j = self.jobs.get_mut(&id)?;
                    j.sched.deferred_since = Some(since);
                    self.timers.set(Timer::StealRetry(id), at);
                    None
                }
            },
            Steal::Nothing => {
                self.jobs.get_mut(&id)?.sched.deferred_since = None;
                None
            }
        };
        let j = self.jobs.get(&id)?;
        let backup = match found {
            Some(_) => None,
            None => j
                .sched
                .claim_seen
                .keys()
                .copied()
                .find(|t| self.backup_candidate(j, *t)),
        };
        let j = self.jobs.get_mut(&id)?;
        j.sched.owned_pos = pos;
        if let Some((task, why)) = found {
            j.sched.steal_cursor = task.0;
            j.sched.deferred_since = None;
            return Some((task, why));
        }
        if let Some(task) = backup {
            j.sched.backups.insert(task);
            return Some((task, Why::Speculative));
        }
        j.sched.idle = true;
        None
    }

    fn start(&mut self, id: JobId, task: TaskId, why: Why) {
        self.running.insert((id, task));
        if let Some(j) = self.jobs.get_mut(&id) {
            j.help.requests.remove(&task);
        }
        self.say(id, task, Fact::Claim(why));
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
