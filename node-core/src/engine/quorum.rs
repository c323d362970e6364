//! Validation: a task's result is accepted when `q` distinct authors reported the same
//! hash, and the first hash to get there is final. Reporters of another hash are then
//! liars and are no longer placed.
//!
//! Never accepts a result on fewer than `q` distinct reporters, and never changes a
//! validated hash.

use super::{Engine, Event};
use crate::job::{JobId, NodeId, TaskId};

impl Engine {
    /// A report (own or a peer's) was added to the board.
    pub(super) fn on_report(&mut self, job: JobId, task: TaskId, author: NodeId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let entry = j.board.task(task);
        if entry.validated_hash.is_none() && entry.has_mismatch() && j.mismatched.insert(task) {
            j.sched.idle = false;
            self.event(Event::TaskMismatch { job, task });
        }
        let entry = self.jobs[&job].board.task(task);
        if let Some(h) = entry.validated_hash {
            // A report after validation: a different hash is a lie.
            if entry
                .facts_of(author)
                .is_some_and(|a| a.reports.iter().any(|r| *r != h))
            {
                self.mark_liar(author, job, task);
            }
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
            tasks_validated,
            tasks,
        });
        for n in liars {
            self.mark_liar(n, job, task);
        }
        if tasks_validated == tasks {
            let now = self.now;
            if let Some(j) = self.jobs.get_mut(&job) {
                j.validated_at = Some(now);
                // The last walk for the output: what it skipped, expecting a copy.
                j.assembly.fetch_cursor = 0;
            }
        }
        // An assembling node fetches each result once it is validated.
        self.fetch_missing_of(job);
        self.try_assemble(job);
    }

    /// A node reported a hash other than the validated one: take it out of placement.
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
}
