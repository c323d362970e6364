//! Serving: a holder answers peers' requests for results ([`EngineMsg::Fetch`]) and
//! previews ([`EngineMsg::FetchPreview`]) within a budget of bytes per peer and sync
//! interval (`served_bytes_per_sync_max`), so that a small request cannot make this
//! node send without bound.
//!
//! A request over the budget waits in its peer's queue until the budget renews, and is
//! answered then, in the order asked. Dropping it instead cost an honest assembler a
//! fetch timeout for every request past the budget: a 4096² image assembled from one
//! other node took 3.1 s for 0.44 s of computation. The queue is bounded per peer
//! ([`DEFERRED_PER_PEER_MAX`]), and a request asked again while it waits waits once;
//! a request past the bound, or one larger than a whole budget, is dropped and counted
//! ([`DropReason::FetchOverBudget`]).

use std::collections::VecDeque;

use super::{DropReason, Engine, Timer};
use crate::job::{JobId, NodeId, TaskId, content_hash};
use crate::kernels::preview;
use crate::wire::EngineMsg;

/// Requests over budget kept per peer. An honest assembler has at most `fetches_max`
/// (64) in flight per job; four jobs' worth waits here before anything is dropped.
pub(super) const DEFERRED_PER_PEER_MAX: usize = 256;

/// What a peer asked for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Want {
    /// The result bytes.
    Result,
    /// The preview of an image result, with the result's own hash.
    Preview,
}

/// A request waiting for its peer's budget to renew.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Asked {
    want: Want,
    job: JobId,
    task: TaskId,
    hash: u64,
}

impl Engine {
    /// A peer's [`EngineMsg::Fetch`].
    pub(super) fn on_fetch(&mut self, from: NodeId, job: JobId, task: TaskId, hash: u64) {
        self.on_ask(
            from,
            Asked {
                want: Want::Result,
                job,
                task,
                hash,
            },
        );
    }

    /// A peer's [`EngineMsg::FetchPreview`].
    pub(super) fn on_fetch_preview(&mut self, from: NodeId, job: JobId, task: TaskId, hash: u64) {
        self.on_ask(
            from,
            Asked {
                want: Want::Preview,
                job,
                task,
                hash,
            },
        );
    }

    fn on_ask(&mut self, from: NodeId, a: Asked) {
        let Some(len) = self.answer_len(from, a) else {
            return;
        };
        if len > self.config.served_bytes_per_sync_max {
            return self.drop_msg(from, DropReason::FetchOverBudget);
        }
        // Requests already waiting go first: answers keep the order asked.
        let waiting = self.deferred.get(&from).is_some_and(|q| !q.is_empty());
        if !waiting && self.within_serve_budget(from, len) {
            return self.answer(from, a);
        }
        let q = self.deferred.entry(from).or_default();
        // Asked again while it waits (the asker's timeout): it is answered once.
        if q.contains(&a) {
            return;
        }
        if q.len() >= DEFERRED_PER_PEER_MAX {
            return self.drop_msg(from, DropReason::FetchOverBudget);
        }
        q.push_back(a);
        self.stats.asks_deferred += 1;
        self.arm_serve();
    }

    /// The size of the answer to `a`, if this node can give one: the result is held
    /// under the hash asked for (otherwise the request is ignored: the asker's timeout
    /// sends it elsewhere) and, for a preview, the job has pictures.
    fn answer_len(&mut self, from: NodeId, a: Asked) -> Option<usize> {
        let j = self.jobs.get(&a.job)?;
        let (hash, bytes) = j.held.payloads.get(&a.task)?;
        if *hash != a.hash {
            return None;
        }
        match a.want {
            Want::Result => Some(bytes.len()),
            Want::Preview => {
                let Some(params) = j.spec.kernel.image() else {
                    self.drop_msg(from, DropReason::PreviewOfNoImage);
                    return None;
                };
                // From the preview's size: a request over budget costs no hashing.
                Some(preview::size(params, a.task.0).map_or(0, |(w, h)| (w * h) as usize))
            }
        }
    }

    /// Sends the answer to `a` (its bytes were counted against the budget).
    fn answer(&mut self, to: NodeId, a: Asked) {
        let Asked {
            want,
            job,
            task,
            hash,
        } = a;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let held = &mut j.held;
        let Some((_, bytes)) = held.payloads.get(&task) else {
            return;
        };
        let msg = match want {
            Want::Result => EngineMsg::Payload {
                job,
                task,
                hash,
                payload: bytes.clone(),
            },
            Want::Preview => {
                // Made once, from the bytes held, and kept with them.
                let (full, preview) = held
                    .previews
                    .entry(task)
                    .or_insert_with(|| {
                        (
                            content_hash(bytes),
                            j.spec.kernel.preview(task.0, bytes).unwrap_or_default(),
                        )
                    })
                    .clone();
                EngineMsg::Preview {
                    job,
                    task,
                    hash,
                    full,
                    preview,
                }
            }
        };
        self.send(to, msg);
    }

    /// Whether `len` more bytes served to `from` stay within its budget per sync
    /// interval; if so they are counted.
    pub(super) fn within_serve_budget(&mut self, from: NodeId, len: usize) -> bool {
        let now = self.now;
        let (since, sent) = self.served.get(&from).copied().unwrap_or((now, 0));
        let sent = if now.since(since) >= self.config.sync_ms {
            0
        } else {
            sent
        };
        if sent + len > self.config.served_bytes_per_sync_max {
            return false;
        }
        let since = if sent == 0 { now } else { since };
        self.served.insert(from, (since, sent + len));
        true
    }

    /// Answers waiting requests whose peers' budgets have renewed, in the order asked;
    /// a request whose result is no longer held is let go (its asker's timeout sends it
    /// elsewhere).
    pub(super) fn serve_deferred(&mut self) {
        let peers: Vec<NodeId> = self.deferred.keys().copied().collect();
        for peer in peers {
            while let Some(&a) = self.deferred.get(&peer).and_then(VecDeque::front) {
                match self.answer_len(peer, a) {
                    Some(len) if !self.within_serve_budget(peer, len) => break,
                    Some(_) => self.answer(peer, a),
                    None => {}
                }
                if let Some(q) = self.deferred.get_mut(&peer) {
                    q.pop_front();
                }
            }
            if self.deferred.get(&peer).is_some_and(VecDeque::is_empty) {
                self.deferred.remove(&peer);
            }
        }
        self.arm_serve();
    }

    /// Sets the serve timer to the earliest renewal of a waiting peer's budget.
    fn arm_serve(&mut self) {
        let sync = self.config.sync_ms;
        let now = self.now;
        let next = self
            .deferred
            .keys()
            .map(|p| {
                self.served
                    .get(p)
                    .map_or(now, |(since, _)| since.plus(sync))
            })
            .min();
        match next {
            Some(at) => self.timers.set(Timer::Serve, at.max(now)),
            None => self.timers.clear(Timer::Serve),
        }
    }

    /// Requests waiting over all peers.
    pub(super) fn deferred_count(&self) -> usize {
        self.deferred.values().map(VecDeque::len).sum()
    }
}
