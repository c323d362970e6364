//! Validation and verdicts: a task's result is accepted when `q` distinct authors
//! reported the same hash, and the first hash to get there is final. A report of
//! another hash is a disagreement; it makes its author a liar only with evidence
//! ([`verdict`]).
//!
//! Never accepts a result on fewer than `q` distinct reporters, never changes a
//! validated hash, and never marks a member on the word of fewer than two others.

use super::board::TaskEntry;
use super::{Engine, Event};
use crate::job::{JobId, NodeId, TaskId};

/// What a report of another hash than a task's validated one earns its author.
///
/// The rule (ARCHITECTURE.md, "Hostile peers"): with `q = 1` the first report is
/// believed, so a later different one proves nothing about who is wrong: it is a
/// disagreement and nobody is marked. With `q ≥ 2` the author is caught in the job when
/// at least two *other* members reported the validated hash; the mark holds in every
/// job only when two of those backers are not the job's submitter, so that a hostile
/// submitter (who picks `q` and may report first) cannot, with one accomplice, have an
/// honest member shut out of a third party's jobs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    /// `q = 1`: the first report was believed; this one only disagrees with it.
    Disagreed,
    /// `q ≥ 2`, but fewer than two members other than the author back the validated
    /// hash (the author reported it too, contradicting itself): not marked yet.
    Unproven,
    /// Caught lying in this job: no longer placed in it.
    CaughtInJob,
    /// Caught lying with two backers besides the job's submitter: placed in no job.
    CaughtEverywhere,
}

impl Verdict {
    /// Whether the author is marked a liar (in the job or everywhere).
    pub fn caught(self) -> bool {
        matches!(self, Verdict::CaughtInJob | Verdict::CaughtEverywhere)
    }
}

/// The verdict on `author`'s reports for a task, or `None` if the task is not validated
/// or the author reported nothing but the validated hash.
pub fn verdict(
    entry: &TaskEntry,
    quorum: u8,
    submitter: NodeId,
    author: NodeId,
) -> Option<Verdict> {
    let hash = entry.validated_hash?;
    let facts = entry.facts_of(author)?;
    if !facts.reports.iter().any(|r| *r != hash) {
        return None;
    }
    if quorum < 2 {
        return Some(Verdict::Disagreed);
    }
    let backers = || {
        entry
            .authors
            .iter()
            .filter(move |(n, f)| *n != author && f.reports.contains(&hash))
            .map(|(n, _)| *n)
    };
    Some(if backers().filter(|n| *n != submitter).count() >= 2 {
        Verdict::CaughtEverywhere
    } else if backers().count() >= 2 {
        Verdict::CaughtInJob
    } else {
        Verdict::Unproven
    })
}

impl Engine {
    /// A report (own or a peer's) was added to the board.
    pub(super) fn on_report(&mut self, job: JobId, task: TaskId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let entry = j.board.task(task);
        if entry.has_mismatch() && j.mismatched.insert(task) {
            if entry.validated_hash.is_none() {
                j.sched.idle = false;
            }
            self.event(Event::TaskMismatch { job, task });
        }
        if self.jobs[&job].board.task(task).validated_hash.is_some() {
            // A report after validation: judged against the validated hash; and a report
            // of the validated hash may be the second backer that proves an earlier lie.
            self.judge(job, task);
        } else {
            self.check_quorum(job, task);
            // A report short of the quorum ends that author's claim without
            // finishing the task: with q > 1 another computation may now be due.
            if let Some(j) = self.jobs.get_mut(&job)
                && j.board.task(task).validated_hash.is_none()
                && j.spec.quorum > 1
            {
                j.sched.idle = false;
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
        j.tasks_validated += 1;
        j.help.reported_open.remove(&task);
        j.sched.claim_seen.remove(&task);
        j.help.requests.remove(&task);
        j.help.asked_at.remove(&task);
        let (tasks_validated, tasks) = (j.tasks_validated, j.tasks);
        // Bytes kept for another hash are a liar's: drop them.
        if j.held.payloads.get(&task).is_some_and(|(h, _)| *h != hash) {
            j.held.forget(task);
        }
        self.event(Event::TaskValidated { job, task, hash });
        self.event(Event::JobProgress {
            job,
            tasks_validated,
            tasks,
        });
        self.judge(job, task);
        if let Some(j) = self.jobs.get_mut(&job) {
            if j.assembly.assembler {
                j.assembly.validated.insert(task);
            } else if j.watch.on {
                j.watch.pending.insert(task);
            }
        }
        if tasks_validated == tasks {
            let now = self.now;
            if let Some(j) = self.jobs.get_mut(&job) {
                j.validated_at = Some(now);
                // The last walk for the output: what it skipped, expecting a copy.
                j.assembly.fetch_cursor = 0;
                j.assembly.validated.clear();
            }
        }
        // An assembling node fetches each result once it is validated.
        self.fetch_missing_of(job);
        self.try_assemble(job, task);
    }

    /// Applies [`verdict`] to every author of a validated task's board entry.
    fn judge(&mut self, job: JobId, task: TaskId) {
        let Some(j) = self.jobs.get(&job) else {
            return;
        };
        let entry = j.board.task(task);
        let marks: Vec<(NodeId, Verdict)> = entry
            .authors
            .iter()
            .filter(|(n, _)| !j.forgiven.contains(n))
            .filter_map(|(n, _)| {
                verdict(entry, j.spec.quorum, j.spec.submitter, *n)
                    .filter(|v| v.caught())
                    .map(|v| (*n, v))
            })
            .collect();
        for (n, v) in marks {
            self.mark_liar(n, job, task, v == Verdict::CaughtEverywhere);
        }
    }

    /// A node was caught reporting a wrong result: take it out of the job's placement,
    /// and of every job's if `everywhere`. Each mark is announced once.
    fn mark_liar(&mut self, n: NodeId, job: JobId, task: TaskId, everywhere: bool) {
        if n == self.me {
            return;
        }
        let me = self.me;
        let new_in_job = self.jobs.get_mut(&job).is_some_and(|j| j.caught.insert(n));
        let new_everywhere = everywhere && self.liars.insert(n);
        if !new_in_job && !new_everywhere {
            return;
        }
        self.copies_gen += 1;
        self.event(Event::LiarMarked {
            node: n,
            job,
            task,
            everywhere: self.liars.contains(&n),
        });
        let members = self.members();
        for j in self.jobs.values_mut() {
            if j.id == job || new_everywhere {
                j.ranking.remove(n, &j.placed_among(&members));
                j.rebuild_owned(me);
            }
        }
    }
}
