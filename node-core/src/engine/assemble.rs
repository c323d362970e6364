//! Assembly: the assembling node (the submitter, or any node told to) fetches every
//! validated result from a live holder as results are validated (the holder with the
//! fewest of its fetches in flight), through a bounded window of fetches, retrying
//! another holder on timeout, and merges the bytes into the job's output once all are
//! here.
//!
//! Accepts bytes only in answer to its own fetches and only when they match the
//! validated hash; keeps at most `fetches_max` fetches in flight per job.

use std::collections::{BTreeMap, BTreeSet};

use super::{DropReason, Engine, Event, JobTimings, Millis};
use crate::job::{JobId, NodeId, TaskId, result_hash};
use crate::kernels::mandelbrot::Canvas;
use crate::wire::{EngineMsg, Fact};

/// Per-job assembly state.
#[derive(Debug)]
pub(super) struct Assembly {
    /// Whether this node assembles the output.
    pub(super) assembler: bool,
    /// Whether the output was assembled.
    pub(super) assembled: bool,
    /// Fetches in flight: holder asked, when, and how many tries.
    pub(super) fetches: InFlight,
    /// Where the last walk for the output (once every task is validated) resumes.
    pub(super) fetch_cursor: u32,
    /// Tasks validated while the job runs, not yet looked at for a fetch: in the order
    /// of their task ids, whichever member computed them and whenever, so a result is
    /// fetched as soon as it is validated, not once every task before it is.
    pub(super) validated: BTreeSet<TaskId>,
    /// Validated results no live node holds (to be computed again, then fetched).
    pub(super) unfetchable: BTreeSet<TaskId>,
    /// Fetches a holder left unanswered, by task and holder. A holder that failed
    /// [`UNSERVED_MAX`] times no longer counts as one here: a peer that says it holds
    /// bytes and never serves them cannot stall the assembly (the task is fetched
    /// elsewhere or computed again).
    pub(super) unserved: BTreeMap<(TaskId, NodeId), u32>,
    /// An image job's output, coloured in result by result as this assembler comes to
    /// hold each validated one (from the first such result on), so that the job's end
    /// has only its last results left to merge.
    pub(super) canvas: Option<Canvas>,
}

/// Unanswered fetches after which a holder is no longer asked for a task.
pub(super) const UNSERVED_MAX: u32 = 2;

/// Requests in flight to holders, by task: the holder asked, when, and how many tries.
/// Assembly's fetches and a watcher's preview requests (`watch.rs`) share these rules.
pub(super) type InFlight = BTreeMap<TaskId, (NodeId, Millis, u32)>;

/// The requests unanswered for `timeout_ms` at `now`: the task, the holder asked, and
/// the try a retry makes.
pub(super) fn timed_out(
    in_flight: &InFlight,
    now: Millis,
    timeout_ms: u64,
) -> Vec<(TaskId, NodeId, u32)> {
    in_flight
        .iter()
        .filter(|(_, (_, at, _))| now.since(*at) >= timeout_ms)
        .map(|(t, (holder, _, tries))| (*t, *holder, tries + 1))
        .collect()
}

/// Requests in flight per holder, the timed-out ones left out.
pub(super) fn load(
    in_flight: &InFlight,
    timed_out: &[(TaskId, NodeId, u32)],
) -> BTreeMap<NodeId, usize> {
    let mut load = BTreeMap::new();
    for (task, (holder, ..)) in in_flight {
        if !timed_out.iter().any(|(t, ..)| t == task) {
            *load.entry(*holder).or_default() += 1;
        }
    }
    load
}

/// Whether `holder` failed `task` [`UNSERVED_MAX`] times (by `unserved`, its count of
/// requests left unanswered) and is no longer asked for it.
pub(super) fn gave_up(
    unserved: &BTreeMap<(TaskId, NodeId), u32>,
    task: TaskId,
    holder: NodeId,
) -> bool {
    unserved
        .get(&(task, holder))
        .is_some_and(|n| *n >= UNSERVED_MAX)
}

/// The holder to ask for `task` among `holders`, counted in `load`. A retry asks a
/// holder other than `failed` (the one that did not answer), when there is one; then
/// the request goes to the holder with the fewest of ours in flight (the one with the
/// most to spare for us), so that requests spread over the holders instead of all going
/// to the first; ties go round by task and try.
pub(super) fn pick_holder(
    holders: &[NodeId],
    task: TaskId,
    tries: u32,
    failed: Option<NodeId>,
    load: &mut BTreeMap<NodeId, usize>,
) -> Option<NodeId> {
    let turn = (task.0 as usize).wrapping_add(tries as usize);
    let pick = (0..holders.len())
        .map(|i| holders[turn.wrapping_add(i) % holders.len()])
        .min_by_key(|h| (Some(*h) == failed, load.get(h).copied().unwrap_or(0)))?;
    *load.entry(pick).or_default() += 1;
    Some(pick)
}

impl Assembly {
    /// Whether `holder` has stopped counting as a holder of `task` here.
    pub(super) fn gave_up_on(&self, task: TaskId, holder: NodeId) -> bool {
        gave_up(&self.unserved, task, holder)
    }
}

impl Assembly {
    pub(super) fn new(assembler: bool) -> Assembly {
        Assembly {
            assembler,
            assembled: false,
            fetches: BTreeMap::new(),
            fetch_cursor: 0,
            validated: BTreeSet::new(),
            unfetchable: BTreeSet::new(),
            unserved: BTreeMap::new(),
            canvas: None,
        }
    }
}

impl Engine {
    /// A peer left: a fetch from it will not be answered, so it is due for a retry now.
    pub(super) fn retarget_fetches(&mut self, gone: NodeId) {
        for j in self.jobs.values_mut() {
            for f in j
                .assembly
                .fetches
                .values_mut()
                .chain(j.watch.fetches.values_mut())
            {
                if f.0 == gone {
                    f.1 = Millis(0);
                }
            }
        }
    }

    /// Asks holders for the results an assembling node lacks, as they are validated:
    /// fetching overlaps computing, and the output is ready soon after the last task.
    pub(super) fn fetch_missing(&mut self) {
        let ids: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.assembly.assembler && !j.assembly.assembled)
            .map(|j| j.id)
            .collect();
        for id in ids {
            self.fetch_job(id);
        }
        let watched: Vec<JobId> = self
            .jobs
            .values()
            .filter(|j| j.watch.on && !(j.watch.pending.is_empty() && j.watch.fetches.is_empty()))
            .map(|j| j.id)
            .collect();
        for id in watched {
            self.fetch_previews(id);
        }
    }

    /// [`Engine::fetch_missing`] for one job: after one of its tasks is validated.
    pub(super) fn fetch_missing_of(&mut self, job: JobId) {
        if self
            .jobs
            .get(&job)
            .is_some_and(|j| j.assembly.assembler && !j.assembly.assembled)
        {
            self.fetch_job(job);
        }
        self.fetch_previews(job);
    }

    /// Keeps up to `fetches_max` fetches in flight for one job: retries timed-out ones
    /// with another holder, then takes newly validated tasks (while the job runs) or
    /// walks a cursor over all tasks (once all are validated), so the work per call is
    /// bounded by the window, not the job.
    fn fetch_job(&mut self, id: JobId) {
        let now = self.now;
        let Some(j) = self.jobs.get(&id) else { return };
        let a = &j.assembly;
        // Fetches that timed out: the holder asked failed to serve once more.
        let timed_out = timed_out(&a.fetches, now, self.config.fetch_timeout_ms);
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        let mut gave_up = false;
        for (task, holder, _) in &timed_out {
            let n = j.assembly.unserved.entry((*task, *holder)).or_insert(0);
            *n += 1;
            gave_up |= *n == UNSERVED_MAX;
        }
        // A holder given up on may have been a task's last: scans for work look at
        // tasks they had found settled again (`Schedule::settled`).
        if gave_up {
            self.copies_gen += 1;
        }
        let Some(j) = self.jobs.get(&id) else { return };
        let a = &j.assembly;
        let mut candidates: Vec<(TaskId, u32)> =
            timed_out.iter().map(|(t, _, tries)| (*t, *tries)).collect();
        candidates.extend(a.unfetchable.iter().map(|t| (*t, 0)));
        let mut cursor = a.fetch_cursor;
        let mut window = self.config.fetches_max.saturating_sub(a.fetches.len());
        // While the job runs, results whose copy comes here anyway (this node ranks
        // among their `r` holders) are not fetched; once all are validated, the cursor
        // walks from the start and fetches whatever is still missing.
        let early = !j.all_validated();
        let r = usize::from(j.spec.replication);
        let wanted =
            |task: TaskId| !j.held.payloads.contains_key(&task) && !a.fetches.contains_key(&task);
        let mut taken = Vec::new();
        if early {
            for &task in &a.validated {
                if window == 0 {
                    break;
                }
                taken.push(task);
                if !j.ranking.top(task).take(r).any(|n| n == self.me) && wanted(task) {
                    candidates.push((task, 0));
                    window -= 1;
                }
            }
        } else {
            while window > 0 && cursor < j.tasks {
                let task = TaskId(cursor);
                cursor += 1;
                if wanted(task) {
                    candidates.push((task, 0));
                    window -= 1;
                }
            }
        }
        let mut sends = Vec::new();
        let mut lost = Vec::new();
        let mut load = load(&a.fetches, &timed_out);
        for (task, tries) in candidates {
            if j.held.payloads.contains_key(&task) {
                continue;
            }
            let entry = j.board.task(task);
            let Some(hash) = entry.validated_hash else {
                continue;
            };
            let holders: Vec<NodeId> = entry
                .holders_of(hash)
                .filter(|n| {
                    *n != self.me
                        && self.is_live(*n)
                        && !self.excluded(j, *n)
                        && !a.gave_up_on(task, *n)
                })
                .collect();
            let failed = a.fetches.get(&task).map(|(holder, ..)| *holder);
            match pick_holder(&holders, task, tries, failed, &mut load) {
                None => lost.push(task),
                Some(holder) => sends.push((task, hash, holder, tries)),
            }
        }
        let Some(j) = self.jobs.get_mut(&id) else {
            return;
        };
        j.assembly.fetch_cursor = cursor;
        for task in taken {
            j.assembly.validated.remove(&task);
        }
        for (task, ..) in &sends {
            j.assembly.unfetchable.remove(task);
        }
        if !lost.is_empty() {
            // No live holder: the task will be computed again; look again later.
            j.sched.idle = false;
            for task in lost {
                j.assembly.fetches.remove(&task);
                j.assembly.unfetchable.insert(task);
            }
        }
        for (task, hash, to, tries) in sends {
            self.stats.fetches_sent += 1;
            if let Some(j) = self.jobs.get_mut(&id) {
                j.assembly.fetches.insert(task, (to, now, tries));
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

    /// A peer's [`EngineMsg::Payload`], the answer to one of our fetches.
    pub(super) fn on_payload(
        &mut self,
        from: NodeId,
        job: JobId,
        task: TaskId,
        hash: u64,
        payload: Vec<u8>,
    ) {
        let Some(j) = self.jobs.get(&job) else { return };
        // Only answers to our own fetches: unsolicited bytes could move the fetch
        // window or fill memory.
        if !j.assembly.fetches.contains_key(&task) {
            return self.drop_msg(from, DropReason::PayloadUnsolicited);
        }
        let why = if task.0 >= j.tasks {
            Some(DropReason::PayloadTaskOutOfRange)
        } else if payload.len() > j.spec.kernel.task_output_len_max() {
            Some(DropReason::PayloadTooBig)
        } else if j.board.task(task).validated_hash != Some(hash) {
            Some(DropReason::PayloadNotValidated)
        } else if result_hash(&j.spec.kernel, task, &payload) != hash {
            Some(DropReason::PayloadHashMismatch)
        } else {
            None
        };
        if let Some(why) = why {
            return self.drop_msg(from, why);
        }
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        j.assembly.fetches.remove(&task);
        super::forget_task(&mut j.assembly.unserved, task);
        let new = !j.held.payloads.contains_key(&task);
        j.held.keep(task, hash, payload);
        let (fetched, tasks) = (j.held.payloads.len() as u32, j.tasks);
        let progress = new && j.assembly.assembler && !j.assembly.assembled;
        if new {
            // This node holds the bytes now: it says so, so that it serves them, counts
            // as a copy and takes its turn at restoring copies after a departure.
            self.say(job, task, Fact::Holding(hash));
        }
        if progress {
            self.event(Event::AssemblyProgress {
                job,
                fetched,
                tasks,
            });
        }
        self.try_assemble(job, task);
        self.fetch_missing();
    }

    /// Colours task `task`'s result into an image job's canvas if this assembler holds
    /// its validated bytes, then merges the output once every result's bytes are here.
    /// Called wherever a result's bytes or its validation arrive.
    pub(super) fn try_assemble(&mut self, job: JobId, task: TaskId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if !j.assembly.assembler || j.assembly.assembled {
            return;
        }
        let validated = j.board.task(task).validated_hash;
        if let Some((hash, bytes)) = j.held.payloads.get(&task)
            && validated == Some(*hash)
        {
            let canvas = &mut j.assembly.canvas;
            if canvas.is_none() {
                *canvas = j.spec.kernel.canvas();
            }
            if let Some(c) = canvas {
                c.add(task.0, bytes);
            }
        }
        self.finish_assembly(job);
    }

    /// Merges the output if this node assembles it and every result's bytes are here.
    pub(super) fn finish_assembly(&mut self, job: JobId) {
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if !j.assembly.assembler
            || j.assembly.assembled
            || !j.all_validated()
            || j.held.payloads.len() < j.tasks as usize
        {
            return;
        }
        let merged = if let Some(mut canvas) = j.assembly.canvas.take() {
            // Every result is validated and held (a held copy of another hash is
            // dropped at validation): the rest go in now, among them any held before
            // this node was told to assemble.
            for (t, (_, bytes)) in &j.held.payloads {
                canvas.add(t.0, bytes);
            }
            canvas.finish()
        } else {
            let outputs: Vec<&[u8]> = (0..j.tasks)
                .map(|t| j.held.payloads[&TaskId(t)].1.as_slice())
                .collect();
            j.spec.kernel.assemble(&outputs)
        };
        match merged {
            Ok(output) => {
                j.assembly.assembled = true;
                let timings = JobTimings {
                    started_at: j.started_at,
                    validated_at: j.validated_at.unwrap_or(self.now),
                    assembled_at: self.now,
                    computed_here: j.computed_here,
                };
                self.event(Event::JobDone {
                    job,
                    output,
                    timings,
                });
            }
            Err(e) => {
                // Validated bytes that do not assemble would be a kernel bug. Say so, and
                // count the job as finished here so that it can be evicted.
                j.assembly.assembled = true;
                self.stats.dropped += 1;
                self.event(Event::JobFailed {
                    job,
                    why: e.to_string(),
                });
            }
        }
    }
}
