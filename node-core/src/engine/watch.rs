//! Watching: a node that shows a job without assembling it (a tab of the audience)
//! fetches each validated image result's preview ([`crate::kernels::preview`], 1/16 of
//! the tile) instead of the tile, from a live holder, through the same bounded window of
//! fetches as assembly, retrying another holder on timeout.
//!
//! A preview is accepted only in answer to this node's own request and only when it and
//! the tile hash its holder names seal to the task's validated hash
//! ([`crate::job::sealed_hash`]): the quorum that validated the result vouches for its
//! preview. Results held here need no preview; a kernel without previews (its results
//! are a few words) is assembled whole instead ([`super::Command::Watch`]).

use std::collections::{BTreeMap, BTreeSet};

use super::assemble::{InFlight, gave_up, load, pick_holder, timed_out};
use super::{DropReason, Engine};
use crate::job::{JobId, NodeId, TaskId, content_hash, sealed_hash};
use crate::wire::EngineMsg;

/// Per-job watching state.
#[derive(Debug, Default)]
pub(super) struct Watch {
    /// Whether this node shows the job from previews.
    pub(super) on: bool,
    /// Validated tasks whose preview is neither here nor asked for.
    pub(super) pending: BTreeSet<TaskId>,
    /// Requests in flight: holder asked, when, and how many tries.
    pub(super) fetches: InFlight,
    /// Previews received, checked against the validated hash.
    pub(super) previews: BTreeMap<TaskId, Vec<u8>>,
    /// Requests a holder left unanswered, by task and holder; one that failed
    /// [`super::assemble::UNSERVED_MAX`] times is no longer asked for that task.
    pub(super) unserved: BTreeMap<(TaskId, NodeId), u32>,
}

impl Engine {
    /// Turns watching on for a job whose kernel has previews: every task validated so far
    /// is due for a preview.
    pub(super) fn watch(&mut self, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if j.spec.kernel.image().is_none() || j.assembly.assembler || j.watch.on {
            return;
        }
        j.watch.on = true;
        let validated: Vec<TaskId> = (0..j.tasks)
            .map(TaskId)
            .filter(|t| j.board.task(*t).validated_hash.is_some())
            .collect();
        j.watch.pending.extend(validated);
        self.fetch_previews(job);
    }

    /// Keeps up to `fetches_max` preview requests in flight for one watched job: retries
    /// timed-out ones with another holder, then asks for pending ones.
    pub(super) fn fetch_previews(&mut self, id: JobId) {
        let now = self.now;
        let me = self.me;
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        if !j.watch.on || j.assembly.assembler {
            return;
        }
        let w = &mut j.watch;
        let timed_out = timed_out(&w.fetches, now, self.config.fetch_timeout_ms);
        for (task, holder, _) in &timed_out {
            *w.unserved.entry((*task, *holder)).or_insert(0) += 1;
        }
        // Timed-out requests give their places back (they are asked again below).
        let mut window = self
            .config
            .fetches_max
            .saturating_sub(w.fetches.len() - timed_out.len());
        let mut load = load(&w.fetches, &timed_out);
        // Retries first, then pending tasks in order; a task takes a place in the window
        // only when it has a holder to ask, so tasks nobody can serve now never keep
        // the others waiting.
        let retries = timed_out.iter().map(|(t, _, tries)| (*t, *tries));
        let j = self.jobs.get(&id).expect("looked up above");
        let w = &j.watch;
        let fresh = w
            .pending
            .iter()
            .filter(|t| !timed_out.iter().any(|(r, ..)| r == *t))
            .map(|t| (*t, 0));
        let mut sends = Vec::new();
        let mut settled = Vec::new();
        let mut unserved_reset = Vec::new();
        for (task, tries) in retries.chain(fresh) {
            if window == 0 {
                break;
            }
            if j.held.payloads.contains_key(&task) || w.previews.contains_key(&task) {
                settled.push(task);
                continue;
            }
            let entry = j.board.task(task);
            let Some(hash) = entry.validated_hash else {
                continue;
            };
            let usable = |n: &NodeId| *n != me && self.is_live(*n) && !self.excluded(j, *n);
            let holders: Vec<NodeId> = entry
                .holders_of(hash)
                .filter(|n| usable(n) && !gave_up(&w.unserved, task, *n))
                .collect();
            if holders.is_empty() && entry.holders_of(hash).any(|n| usable(&n)) {
                // Every live holder failed it twice: start over with all of them (a
                // holder that was busy or away may serve now) at the next call.
                unserved_reset.push(task);
            }
            let failed = w.fetches.get(&task).map(|(holder, ..)| *holder);
            if let Some(holder) = pick_holder(&holders, task, tries, failed, &mut load) {
                sends.push((task, hash, holder, tries));
                window -= 1;
            }
            // No holder to ask: it stays pending (a retry goes back to pending) until
            // one holds it again.
        }
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        for task in settled {
            j.watch.pending.remove(&task);
            j.watch.fetches.remove(&task);
        }
        for task in unserved_reset {
            super::forget_task(&mut j.watch.unserved, task);
        }
        for (task, ..) in &timed_out {
            if !sends.iter().any(|(t, ..)| t == task) && j.watch.fetches.remove(task).is_some() {
                j.watch.pending.insert(*task);
            }
        }
        for (task, _, to, tries) in &sends {
            j.watch.pending.remove(task);
            j.watch.fetches.insert(*task, (*to, now, *tries));
        }
        for (task, hash, to, _) in sends {
            self.stats.previews_asked += 1;
            self.send(
                to,
                EngineMsg::FetchPreview {
                    job: id,
                    task,
                    hash,
                },
            );
        }
    }

    /// A peer's [`EngineMsg::Preview`], the answer to one of our requests.
    pub(super) fn on_preview(
        &mut self,
        from: NodeId,
        job: JobId,
        task: TaskId,
        hash: u64,
        full: u64,
        preview: Vec<u8>,
    ) {
        let Some(j) = self.jobs.get(&job) else { return };
        if !j.watch.fetches.contains_key(&task) {
            return self.drop_msg(from, DropReason::PreviewUnsolicited);
        }
        let why = if preview.len() > j.spec.kernel.preview_len_max() {
            Some(DropReason::PreviewTooBig)
        } else if j.board.task(task).validated_hash != Some(hash) {
            Some(DropReason::PreviewNotValidated)
        } else if sealed_hash(full, content_hash(&preview)) != hash {
            Some(DropReason::PreviewHashMismatch)
        } else {
            None
        };
        if let Some(why) = why {
            return self.drop_msg(from, why);
        }
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        j.watch.fetches.remove(&task);
        super::forget_task(&mut j.watch.unserved, task);
        self.stats.previews_received += 1;
        self.stats.preview_bytes += preview.len() as u64;
        j.watch.previews.insert(task, preview);
        self.fetch_previews(job);
    }
}
