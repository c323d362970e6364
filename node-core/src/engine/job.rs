//! One job as this node knows it, and its lifecycle: accepted (from this node's user or
//! a peer's spec), paced, cancelled by its submitter, evicted to make room once done.
//!
//! Per-job state is split by concern: [`Schedule`] (what to run here), [`Held`] (result
//! bytes kept here), [`Assembly`] (fetching the output), [`Gossip`] (facts in and out),
//! [`Help`]; each lives in the file that changes it.

use std::collections::BTreeSet;

use super::assemble::Assembly;
use super::board::Board;
use super::config::RETIRED_MAX;
use super::gossip::Gossip;
use super::help::Help;
use super::placement::Ranking;
use super::replicate::Held;
use super::schedule::Schedule;
use super::timer::Timer;
use super::watch::Watch;
use super::{Command, DropReason, Engine, Event, Millis};
use crate::job::{JobId, JobSpec, NodeId, PACING_MS_MAX, TaskId};
use crate::wire::EngineMsg;

/// One job as this node knows it.
#[derive(Debug)]
pub(super) struct Job {
    /// The job's content hash.
    pub(super) id: JobId,
    /// What to compute; never changes (its hash is the id).
    pub(super) spec: JobSpec,
    /// Tasks in the job.
    pub(super) tasks: u32,
    /// The replicated facts: claims, reports, holdings.
    pub(super) board: Board,
    /// Each task's top ranked live, honest members.
    pub(super) ranking: Ranking,
    /// Tasks validated so far in this node's view.
    pub(super) tasks_validated: u32,
    /// Tasks whose mismatch was announced already (once each).
    pub(super) mismatched: BTreeSet<TaskId>,
    /// Members caught lying in this job ([`super::quorum::verdict`]): no longer placed
    /// in it. Those caught with evidence enough for every job are in `Engine::liars`.
    pub(super) caught: BTreeSet<NodeId>,
    /// Members forgiven by a presenter's reset ([`super::Engine::forget_liars`]) while
    /// this job was held: their reports in it are judged no more (its board keeps the
    /// old lie, which would mark them again at the next report of any of its tasks).
    pub(super) forgiven: BTreeSet<NodeId>,
    /// When this node accepted the job.
    pub(super) started_at: Millis,
    /// When the last task was validated here.
    pub(super) validated_at: Option<Millis>,
    /// Tasks this node computed.
    pub(super) computed_here: u32,
    /// The current pacing delay. Starts as the spec's; changes by [`EngineMsg::Pacing`]
    /// from the submitter. Kept apart so the spec (and so the job's id) never changes.
    pub(super) pacing_ms: u32,
    /// No task starts before this (pacing).
    pub(super) paced_until: Millis,
    /// What to run here next.
    pub(super) sched: Schedule,
    /// Result bytes kept here and copies sent to holders.
    pub(super) held: Held,
    /// Fetching results for the output.
    pub(super) assembly: Assembly,
    /// Own facts to send and peers to resend to.
    pub(super) gossip: Gossip,
    /// Help asked and given.
    pub(super) help: Help,
    /// Previews fetched, when this node shows the job without assembling it.
    pub(super) watch: Watch,
    /// Peers that do not have the job: they came up while its submitter was not a
    /// live peer here (a spec is taken only from its submitter, or relayed while it is
    /// live, so they never learn it), or they asked for it (`Resend`) without ever
    /// having shown it (a member whose table was full when the job came refused it).
    /// They drop every copy sent to them, so a view does not count them as wanted
    /// holders ([`Engine::holders_wanted`]) until they show the job. Bounded by the
    /// peers; a departure takes a peer out.
    pub(super) unaware: BTreeSet<NodeId>,
    /// Peers that showed the job: its spec, facts or a digest came from them. Bounded
    /// by the peers; a departure takes a peer out.
    pub(super) shown: BTreeSet<NodeId>,
}

impl Job {
    /// Whether every task is validated in this node's view.
    pub(super) fn all_validated(&self) -> bool {
        self.tasks_validated == self.tasks
    }

    /// Done with, as far as this node is concerned: every task validated and, if this
    /// node assembles, the output assembled. Only such a job may be evicted.
    pub(super) fn finished_here(&self) -> bool {
        self.all_validated() && (!self.assembly.assembler || self.assembly.assembled)
    }

    /// The members this job places tasks on: `members` (live, and not caught lying in
    /// every job) less those caught lying in this job.
    pub(super) fn placed_among(&self, members: &[NodeId]) -> Vec<NodeId> {
        members
            .iter()
            .copied()
            .filter(|n| !self.caught.contains(n))
            .collect()
    }
}

impl Engine {
    pub(super) fn on_command(&mut self, c: Command) {
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
                if self.accept_job(spec.clone(), true) {
                    self.broadcast(EngineMsg::Job { spec });
                }
            }
            Command::Cancel { job } => {
                if self
                    .jobs
                    .get(&job)
                    .is_some_and(|j| j.spec.submitter == self.me)
                {
                    self.cancel(job);
                    self.broadcast(EngineMsg::Cancel { job });
                }
            }
            Command::SetPacing { job, pacing_ms } => {
                let pacing_ms = pacing_ms.min(PACING_MS_MAX);
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.pacing_ms = pacing_ms;
                    self.broadcast(EngineMsg::Pacing { job, pacing_ms });
                }
            }
            Command::Assemble { job } => {
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.assembly.assembler = true;
                }
                self.fetch_missing();
                // Nothing may be missing (this node holds every result): no answer
                // would come to merge them.
                self.finish_assembly(job);
            }
            Command::Watch { job } => match self.jobs.get(&job) {
                Some(j) if j.spec.kernel.image().is_none() => {
                    self.on_command(Command::Assemble { job })
                }
                Some(_) => self.watch(job),
                None => {}
            },
        }
    }

    /// A peer's [`EngineMsg::Job`]: take the job up unless it is known, invalid, not
    /// vouched for, or over its submitter's share.
    ///
    /// A job belongs to its submitter: a spec may be relayed by anyone (a late joiner
    /// learns jobs from whoever it hears of them), but only while its submitter is a live
    /// peer, and each submitter may have at most `jobs_per_submitter_max` unfinished jobs
    /// here, so no peer can fill this node's table. A spec naming this node as submitter
    /// that it never submitted is a forgery: it is disowned with a `Cancel`, which every
    /// node honours since it comes from the named submitter.
    pub(super) fn on_job_spec(&mut self, from: NodeId, spec: JobSpec) {
        let id = spec.id();
        if self.jobs.contains_key(&id) {
            return self.knows_job(from, id);
        }
        if self.retired.contains(&id) {
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
        if spec.submitter == self.me {
            self.retire(id);
            self.broadcast(EngineMsg::Cancel { job: id });
            return self.drop_msg(from, DropReason::JobForged);
        }
        if spec.submitter != from && !self.peers.contains(&spec.submitter) {
            return self.drop_msg(from, DropReason::JobSubmitterNotHere);
        }
        let open = self
            .jobs
            .values()
            .filter(|j| j.spec.submitter == spec.submitter && !j.finished_here())
            .count();
        if open >= self.config.jobs_per_submitter_max {
            return self.drop_msg(from, DropReason::JobOverSubmitterShare);
        }
        if self.accept_job(spec, false) {
            self.knows_job(from, id);
        }
    }

    /// `peer` showed that it holds `job` (it sent the spec, facts or a digest): a view
    /// counts it as a wanted holder again.
    pub(super) fn knows_job(&mut self, peer: NodeId, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if self.peers.contains(&peer) {
            j.shown.insert(peer);
        }
        j.unaware.remove(&peer);
    }

    /// `peer` asked for `job` (`Resend`): without having shown it, it does not have it.
    pub(super) fn asks_for_job(&mut self, peer: NodeId, job: JobId) {
        if let Some(j) = self.jobs.get_mut(&job)
            && peer != j.spec.submitter
            && self.peers.contains(&peer)
            && !j.shown.contains(&peer)
        {
            j.unaware.insert(peer);
        }
    }

    /// A peer's [`EngineMsg::Cancel`]: only the submitter may cancel.
    pub(super) fn on_cancel(&mut self, from: NodeId, job: JobId) {
        if self
            .jobs
            .get(&job)
            .is_some_and(|j| j.spec.submitter == from)
        {
            self.cancel(job);
        } else if self.jobs.contains_key(&job) {
            self.drop_msg(from, DropReason::CancelNotFromSubmitter);
        }
    }

    /// A peer's [`EngineMsg::Pacing`]: only the submitter may change it.
    pub(super) fn on_pacing(&mut self, from: NodeId, job: JobId, pacing_ms: u32) {
        let now = self.now;
        match self.jobs.get_mut(&job) {
            Some(j) if j.spec.submitter == from => {
                j.pacing_ms = pacing_ms.min(PACING_MS_MAX);
                // A shorter delay takes effect at once.
                j.paced_until = j.paced_until.min(now.plus(u64::from(j.pacing_ms)));
                if j.paced_until > now {
                    self.timers.set(Timer::Paced(job), j.paced_until);
                }
            }
            Some(_) => self.drop_msg(from, DropReason::PacingNotFromSubmitter),
            None => {}
        }
    }

    /// Starts tracking a job. Returns false if it was refused.
    pub(super) fn accept_job(&mut self, spec: JobSpec, assembler: bool) -> bool {
        let id = spec.id();
        if self.jobs.contains_key(&id) || self.retired.contains(&id) {
            return false;
        }
        // Peers' jobs (`assembler` is false only for those) leave one place free for
        // this node's own.
        let theirs = self
            .jobs
            .values()
            .filter(|j| j.spec.submitter != self.me)
            .count();
        let full = self.jobs.len() >= self.config.jobs_max
            || (!assembler && theirs >= self.config.jobs_max.saturating_sub(1));
        if full && !self.evict_one() {
            self.event(Event::JobRefused {
                job: id,
                why: "too many jobs at once".into(),
            });
            return false;
        }
        let tasks = spec.tasks();
        let k = usize::from(spec.quorum.max(spec.replication)) + 2;
        let members = self.members();
        // Thieves start apart, in the last quarter of the tasks.
        let steal_cursor = tasks - 1 - (self.next_random() % u64::from(tasks.div_ceil(4))) as u32;
        let mut job = Job {
            board: Board::new(tasks, self.config.authors_max, self.me),
            ranking: Ranking::new(id, tasks, k, &members),
            id,
            tasks,
            tasks_validated: 0,
            mismatched: BTreeSet::new(),
            caught: BTreeSet::new(),
            forgiven: BTreeSet::new(),
            started_at: self.now,
            validated_at: None,
            computed_here: 0,
            pacing_ms: spec.pacing_ms,
            paced_until: self.now,
            sched: Schedule::new(steal_cursor),
            held: Held::default(),
            assembly: Assembly::new(assembler),
            gossip: Gossip::default(),
            help: Help::default(),
            watch: Watch::default(),
            unaware: BTreeSet::new(),
            shown: BTreeSet::new(),
            spec,
        };
        self.asked.remove(&id);
        self.event(Event::JobAccepted {
            job: id,
            tasks,
            submitter: job.spec.submitter,
        });
        job.rebuild_owned(self.me);
        self.jobs.insert(id, job);
        self.timers.set(
            Timer::StealOpen(id),
            self.now.plus(self.config.steal_after_ms),
        );
        true
    }

    /// Makes room by dropping the oldest job this node is finished with, if any. A
    /// dropped job is remembered like a cancelled one, so a peer's digest does not bring
    /// it back.
    fn evict_one(&mut self) -> bool {
        let oldest = self
            .jobs
            .values()
            .filter(|j| j.finished_here())
            .map(|j| (j.started_at, j.id))
            .min();
        match oldest {
            Some((_, old)) => {
                self.forget_job(old);
                true
            }
            None => false,
        }
    }

    /// The submitter cancelled a job: forget it, and say so.
    pub(super) fn cancel(&mut self, job: JobId) {
        if self.jobs.contains_key(&job) {
            self.forget_job(job);
            self.event(Event::JobCancelled { job });
        }
    }

    /// Drops a job and remembers its id, so it is not taken up again.
    fn forget_job(&mut self, job: JobId) {
        self.jobs.remove(&job);
        self.running.retain(|(j, _)| *j != job);
        self.timers.clear_job(job);
        self.retire(job);
    }

    /// Remembers a job id that must not be taken up again (bounded).
    fn retire(&mut self, job: JobId) {
        if self.retired.len() >= RETIRED_MAX {
            self.retired.pop_front();
        }
        self.retired.push_back(job);
    }

    /// A peer speaks of a job we do not know (its spec was lost, or we joined late):
    /// ask for it, at most once a sync interval.
    pub(super) fn ask_for_job(&mut self, from: NodeId, job: JobId) {
        if self.retired.contains(&job) {
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
        if self.asked.len() >= RETIRED_MAX {
            self.asked.clear();
        }
        self.asked.insert(job, now);
        self.send(from, EngineMsg::Resend { job });
    }
}
