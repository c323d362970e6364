//! Result bytes: kept by the node that computed them and copied to the task's top `r`
//! ranked live members; after a departure the first live holder copies them to the new
//! top `r` (copies, never recomputation while a live holder exists).
//!
//! Keeps bytes only when they match their hash, only for tasks this node ranks among
//! the top of, and never bytes of a hash that lost validation.

use std::collections::{BTreeMap, BTreeSet};

use super::config::{STORE_TRIES_MAX, TURN_SYNCS};
use super::job::Job;
use super::{DropReason, Engine, Event, Millis, Settled};
use crate::job::{JobId, NodeId, TaskId, result_hash};
use crate::wire::{EngineMsg, Fact};

/// Result bytes held here, and copies sent to holders.
#[derive(Debug, Default)]
pub(super) struct Held {
    /// Result bytes held here, by task, with their hash. Change only through
    /// [`Held::keep`] and [`Held::forget`], which keep `payload_bytes` true.
    pub(super) payloads: BTreeMap<TaskId, (u64, Vec<u8>)>,
    /// Sum of the lengths in `payloads`.
    pub(super) payload_bytes: usize,
    /// Copies sent and not yet confirmed by a Holding fact: when last sent, and tries.
    pub(super) stores: BTreeMap<(TaskId, NodeId), (Millis, u32)>,
    /// Holders that never confirmed a copy of a task after [`STORE_TRIES_MAX`] tries
    /// (silent, or lying about room): no longer targets for it here, so the copy goes
    /// to the next ranked node instead of to them forever.
    pub(super) refused: BTreeSet<(TaskId, NodeId)>,
    /// Previews served from bytes held here, with the hash of those bytes: made at the
    /// first request for a task, dropped with the bytes. A sixteenth of what is held.
    pub(super) previews: BTreeMap<TaskId, (u64, Vec<u8>)>,
    /// By task: one more than the `Engine::copies_gen` at which re-replication found
    /// every target holding the bytes held here (0: not found so, or other bytes since).
    /// Nothing but a bump of that generation can make such a result lack a copy again,
    /// so re-replication passes it by until then.
    pub(super) settled: Settled,
}

impl Held {
    /// Keeps result bytes for a task unless some are kept already.
    pub(super) fn keep(&mut self, task: TaskId, hash: u64, bytes: Vec<u8>) {
        if let std::collections::btree_map::Entry::Vacant(e) = self.payloads.entry(task) {
            self.payload_bytes += bytes.len();
            e.insert((hash, bytes));
            self.settled.clear(task);
        }
    }

    /// Drops the bytes kept for a task.
    pub(super) fn forget(&mut self, task: TaskId) {
        if let Some((_, bytes)) = self.payloads.remove(&task) {
            self.payload_bytes -= bytes.len();
        }
        self.previews.remove(&task);
        self.settled.clear(task);
    }
}

impl Engine {
    /// Where a task's bytes should be: its live, honest top `r` (skipping holders that
    /// never confirmed a copy of it).
    pub(super) fn target_holders(&self, j: &Job, task: TaskId) -> Vec<NodeId> {
        self.targets(j, task, false).collect()
    }

    /// Where a view counts a task's copies: [`Engine::target_holders`] without the
    /// members known not to have the job ([`super::job::Job::unaware`]). A copy sent to
    /// one of those is dropped, its sender gives up on it after [`STORE_TRIES_MAX`]
    /// tries and copies to the next ranked instead, but every other member would count
    /// it as a wanted holder for good, and the task short of a copy that does exist.
    pub(super) fn wanted_holders(&self, j: &Job, task: TaskId) -> Vec<NodeId> {
        self.targets(j, task, true).collect()
    }

    /// [`Engine::target_holders`] (or, `without_unaware`, [`Engine::wanted_holders`]),
    /// without collecting them.
    fn targets<'a>(
        &'a self,
        j: &'a Job,
        task: TaskId,
        without_unaware: bool,
    ) -> impl Iterator<Item = NodeId> + 'a {
        j.ranking
            .top(task)
            .filter(move |n| {
                self.is_live(*n)
                    && (!without_unaware || !j.unaware.contains(n))
                    && !self.excluded(j, *n)
                    && !j.held.refused.contains(&(task, *n))
            })
            .take(usize::from(j.spec.replication))
    }

    /// A holder confirmed a copy.
    pub(super) fn on_holding(&mut self, job: JobId, task: TaskId, author: NodeId) {
        if let Some(j) = self.jobs.get_mut(&job) {
            j.held.stores.remove(&(task, author));
            j.held.refused.remove(&(task, author));
        }
    }

    /// Target holders of `task` other than this node that have not said they hold
    /// `hash` and are not being sent a copy: where [`Engine::replicate`] sends one.
    fn missing_holders<'a>(
        &'a self,
        j: &'a Job,
        task: TaskId,
        hash: u64,
    ) -> impl Iterator<Item = NodeId> + 'a {
        let entry = j.board.task(task);
        self.targets(j, task, false).filter(move |n| {
            *n != self.me
                && !entry
                    .facts_of(*n)
                    .is_some_and(|f| f.holding.contains(&hash))
                && !j.held.stores.contains_key(&(task, *n))
        })
    }

    /// Sends the bytes this node holds for `task` to target holders that lack them.
    pub(super) fn replicate(&mut self, job: JobId, task: TaskId) {
        let Some(j) = self.jobs.get(&job) else { return };
        let Some((hash, bytes)) = j.held.payloads.get(&task) else {
            return;
        };
        let hash = *hash;
        let missing: Vec<NodeId> = self.missing_holders(j, task, hash).collect();
        if missing.is_empty() {
            return;
        }
        let bytes = bytes.clone();
        let now = self.now;
        for to in missing {
            self.stats.stores_sent += 1;
            if let Some(j) = self.jobs.get_mut(&job) {
                j.held.stores.insert((task, to), (now, 0));
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

    /// A peer left: say which validated results it held (for the UI, and so that
    /// re-replication looks at once), and stop sending it copies.
    pub(super) fn note_holder_lost(&mut self, gone: NodeId) {
        let mut events = Vec::new();
        for j in self.jobs.values_mut() {
            j.unaware.remove(&gone);
            j.shown.remove(&gone);
            j.held.stores.retain(|(_, to), _| *to != gone);
            j.held.refused.retain(|(_, to)| *to != gone);
            for t in 0..j.tasks {
                let entry = j.board.task(TaskId(t));
                if let Some(h) = entry.validated_hash
                    && entry.facts_of(gone).is_some_and(|f| f.holding.contains(&h))
                {
                    events.push(Event::HolderLost {
                        job: j.id,
                        task: TaskId(t),
                        holder: gone,
                    });
                }
            }
        }
        for e in events {
            self.event(e);
        }
    }

    /// After a departure, and at every sync: restore `r` copies of every validated
    /// result this node holds, if it is this node's turn. The live holders take turns
    /// in ranking order, one turn every [`TURN_SYNCS`] sync intervals, so that one node
    /// sends at a time, and a holder that never sends (a fake one, or one gone silent)
    /// delays the copies by one turn only. At every sync, not only after departures:
    /// a join moves the ranking, and the new top `r` may lack copies.
    pub(super) fn rereplicate(&mut self) {
        let turn = self.now.0 / (self.config.sync_ms.max(1) * TURN_SYNCS);
        let generation = self.copies_gen;
        let mut todo = Vec::new();
        let mut settled = Vec::new();
        for j in self.jobs.values() {
            for (task, (hash, _)) in &j.held.payloads {
                if j.held.settled.at(*task, generation) {
                    continue;
                }
                let entry = j.board.task(*task);
                if entry.validated_hash != Some(*hash) {
                    continue;
                }
                // Nobody to copy to, whoever's turn it is: most results, most syncs. (The
                // turn below costs a pass over every author's facts.) Not looked at again
                // until the generation moves.
                if self.missing_holders(j, *task, *hash).next().is_none() {
                    settled.push((j.id, *task));
                    continue;
                }
                // A member caught lying in the job takes no turn: it may hold the true
                // bytes (a copy sent before it was caught), but nobody counts on it.
                let mut holders: Vec<NodeId> = entry
                    .holders_of(*hash)
                    .filter(|n| self.is_live(*n) && !self.excluded(j, *n))
                    .collect();
                // Ranked holders first, in ranking order; then the others, by id.
                holders.sort_unstable();
                let mut order: Vec<NodeId> = j
                    .ranking
                    .top(*task)
                    .filter(|n| holders.contains(n))
                    .collect();
                let others: Vec<NodeId> = holders
                    .iter()
                    .filter(|n| !order.contains(n))
                    .copied()
                    .collect();
                order.extend(others);
                if !order.is_empty() && order[(turn % order.len() as u64) as usize] == self.me {
                    todo.push((j.id, *task));
                }
            }
        }
        for (job, task) in settled {
            if let Some(j) = self.jobs.get_mut(&job) {
                j.held.settled.mark(task, generation);
            }
        }
        for (job, task) in todo {
            self.replicate(job, task);
        }
    }

    /// Every sync: send unconfirmed copies again, and give up on holders that are no
    /// longer targets or never confirm.
    pub(super) fn retry_stores(&mut self) {
        let now = self.now;
        let retry = self.config.store_retry_ms;
        let mut resend = Vec::new();
        for j in self.jobs.values_mut() {
            for ((task, to), (at, tries)) in j.held.stores.iter_mut() {
                if now.since(*at) >= retry {
                    *at = now;
                    *tries += 1;
                    resend.push((j.id, *task, *to, *tries));
                }
            }
        }
        for (job, task, to, tries) in resend {
            let Some(j) = self.jobs.get(&job) else {
                continue;
            };
            // Stop retrying a node that is no longer a holder (the ranking moved) or that
            // never confirms (it may be silent or lying): the next ranked node becomes a
            // target in its place, and re-replication sends it a copy.
            let refuses = tries > STORE_TRIES_MAX;
            if refuses || !self.target_holders(j, task).contains(&to) {
                // The copy may now be missing (it never came), or due elsewhere.
                self.copies_gen += 1;
                if let Some(j) = self.jobs.get_mut(&job) {
                    j.held.stores.remove(&(task, to));
                    if refuses {
                        j.held.refused.insert((task, to));
                    }
                }
                continue;
            }
            if let Some((hash, bytes)) = j.held.payloads.get(&task) {
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
    }

    /// A peer's [`EngineMsg::Store`]: keep the bytes if they match their hash and this
    /// node is among the task's top ranked.
    pub(super) fn on_store(
        &mut self,
        from: NodeId,
        job: JobId,
        task: TaskId,
        hash: u64,
        payload: Vec<u8>,
    ) {
        let me = self.me;
        let Some(j) = self.jobs.get_mut(&job) else {
            self.ask_for_job(from, job);
            return self.drop_msg(from, DropReason::StoreForUnknownJob);
        };
        if task.0 >= j.tasks {
            return self.drop_msg(from, DropReason::StoreTaskOutOfRange);
        }
        if payload.len() > j.spec.kernel.task_output_len_max() {
            return self.drop_msg(from, DropReason::StoreTooBig);
        }
        if result_hash(&j.spec.kernel, task, &payload) != hash {
            return self.drop_msg(from, DropReason::StoreHashMismatch);
        }
        // Only a node among the task's top ranked keeps bytes sent to it (with slack
        // for views that differ): anyone else would let a peer fill its memory.
        if !j.ranking.top(task).any(|n| n == me) {
            return self.drop_msg(from, DropReason::StoreNotRankedHere);
        }
        if j.board.task(task).validated_hash.is_some_and(|v| v != hash) {
            return self.drop_msg(from, DropReason::StoreLostValidation);
        }
        if j.held.payloads.contains_key(&task) {
            // Already holding (maybe another hash awaiting validation): keep the first.
            if j.held.payloads.get(&task).is_some_and(|(h, _)| *h == hash) {
                self.say(job, task, Fact::Holding(hash));
            }
            return;
        }
        j.held.keep(task, hash, payload);
        self.say(job, task, Fact::Holding(hash));
        self.try_assemble(job, task);
    }
}
