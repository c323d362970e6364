//! Help requests: a node that reported a task, sees no quorum and nobody computing it
//! (a report was lost with its dead author) asks the next node that has not reported it
//! to compute it, even if that node sees the task as done.
//!
//! Asks only when it has nothing else to run for the job, at most once per
//! `straggler_ms` a task; a request wakes the receiver's scheduler only when it is news.

use std::collections::{BTreeMap, BTreeSet};

use super::{DropReason, Engine, Millis};
use crate::job::{JobId, NodeId, TaskId};
use crate::wire::EngineMsg;

/// Per-job help state.
#[derive(Debug, Default)]
pub(super) struct Help {
    /// Tasks other nodes asked this one to compute ([`EngineMsg::Help`]).
    pub(super) requests: BTreeSet<TaskId>,
    /// When this node last asked for help with a task, and how often it asked: each ask
    /// goes to the next candidate, so a helper that never helps is not asked forever.
    pub(super) asked_at: BTreeMap<TaskId, (Millis, u32)>,
    /// Tasks this node reported that are not validated yet (where help may be needed).
    pub(super) reported_open: BTreeSet<TaskId>,
}

impl Engine {
    /// Every sync, for idle jobs: ask for help with tasks this node cannot advance.
    pub(super) fn ask_for_help(&mut self) {
        let now = self.now;
        let mut asks = Vec::new();
        for j in self.jobs.values() {
            if !j.sched.idle || j.all_validated() {
                continue;
            }
            for &task in &j.help.reported_open {
                let entry = j.board.task(task);
                if entry.validated_hash.is_some()
                    || self.running.contains(&(j.id, task))
                    || j.help
                        .asked_at
                        .get(&task)
                        .is_some_and(|(at, _)| now.since(*at) < self.config.straggler_ms)
                    || self.runnable(j, task, true).is_some()
                {
                    continue;
                }
                if self.in_flight(j, task, entry) > 0 {
                    continue;
                }
                let fresh = |n: &NodeId| {
                    *n != self.me
                        && !self.excluded(j, *n)
                        && entry.facts_of(*n).is_none_or(|f| f.reports.is_empty())
                };
                let mut helpers: Vec<NodeId> = j
                    .ranking
                    .top(task)
                    .filter(|n| self.is_live(*n) && fresh(n))
                    .collect();
                for n in self.peers.iter().copied().filter(fresh) {
                    if !helpers.contains(&n) {
                        helpers.push(n);
                    }
                }
                let tries = j.help.asked_at.get(&task).map_or(0, |(_, n)| *n);
                if !helpers.is_empty() {
                    let to = helpers[tries as usize % helpers.len()];
                    asks.push((j.id, task, to, tries + 1));
                }
            }
        }
        for (job, task, to, tries) in asks {
            if let Some(j) = self.jobs.get_mut(&job) {
                j.help.asked_at.insert(task, (now, tries));
            }
            self.send(to, EngineMsg::Help { job, task });
        }
    }

    /// A peer's [`EngineMsg::Help`].
    pub(super) fn on_help(&mut self, from: NodeId, job: JobId, task: TaskId) {
        let me = self.me;
        let Some(j) = self.jobs.get_mut(&job) else {
            return self.ask_for_job(from, job);
        };
        let Some(entry) = j.board.get(task) else {
            return self.drop_msg(from, DropReason::HelpTaskOutOfRange);
        };
        let reported = entry.facts_of(me).is_some_and(|f| !f.reports.is_empty());
        if reported || j.help.requests.contains(&task) {
            // Moot or repeated: it costs nothing.
            return;
        }
        // Help with a task validated here costs a computation this node would not do
        // otherwise: honoured once per `straggler_ms` per peer. Not so for the job's
        // submitter: it needs the quorum in its own view to assemble the output, and a
        // member it cut off (declared dead while it still worked) may have reported to
        // others only, so it may lack many reports at once. Its asks are bounded anyway:
        // a node computes a task at most once, and a submitter has few jobs.
        if entry.validated_hash.is_some() && from != j.spec.submitter {
            let now = self.now;
            if self
                .helped_for
                .get(&from)
                .is_some_and(|at| now.since(*at) < self.config.straggler_ms)
            {
                return self.drop_msg(from, DropReason::HelpTooSoon);
            }
            self.helped_for.insert(from, now);
        }
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        // Wake the scheduler only for news.
        j.help.requests.insert(task);
        j.sched.idle = false;
    }
}
