//! Facts in and out: own facts are batched and broadcast every `flush_ms` (a claim
//! goes out at once, with whatever is batched); every
//! `sync_ms` a digest (facts authored per job) lets a peer that missed some ask for
//! them again; a newcomer gets every job and this node's facts at once.
//!
//! Accepts a fact only from its author (the channel vouches for the sender), so a peer
//! cannot speak for another, and answers a resend at most once a sync interval per peer.

use std::collections::BTreeMap;

use super::board::Added;
use super::{DropReason, Engine, Millis};
use crate::job::{JobId, NodeId, TaskId};
use crate::wire::{EngineMsg, Fact, TaskFact};

/// Per-job gossip state.
#[derive(Debug, Default)]
pub(super) struct Gossip {
    /// Own facts not yet broadcast.
    pub(super) outbox: Vec<TaskFact>,
    /// Peers whose digest said we miss facts: when, and how many facts that digest
    /// claimed. Facts sent before that digest have had a sync interval to arrive.
    pub(super) behind_since: BTreeMap<NodeId, (Millis, u64)>,
    /// When each peer last had all our facts resent, to answer `Resend` at most once a
    /// sync interval (it costs O(tasks)).
    pub(super) resent_to: BTreeMap<NodeId, Millis>,
}

impl Engine {
    /// Records a fact of this node's own (it goes out with the next flush).
    pub(super) fn say(&mut self, job: JobId, task: TaskId, fact: Fact) {
        let me = self.me;
        self.on_fact(job, me, TaskFact { task, fact });
    }

    /// A peer's [`EngineMsg::Facts`].
    pub(super) fn on_facts(&mut self, from: NodeId, job: JobId, facts: Vec<TaskFact>) {
        if !self.jobs.contains_key(&job) {
            self.ask_for_job(from, job);
            return self.drop_msg(from, DropReason::FactsForUnknownJob);
        }
        if facts.len() > self.config.facts_per_msg_max {
            return self.drop_msg(from, DropReason::TooManyFacts);
        }
        self.knows_job(from, job);
        for f in facts {
            self.on_fact(job, from, f);
        }
    }

    /// Records a fact by `author` and lets the concern it is about react.
    fn on_fact(&mut self, job: JobId, author: NodeId, f: TaskFact) {
        let me = self.me;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        match j.board.add(author, f) {
            Added::New | Added::Replaced => {}
            Added::Duplicate => return,
            Added::BadTask => return self.drop_msg(author, DropReason::FactTaskOutOfRange),
            Added::Refused => return,
        }
        if author == me {
            j.gossip.outbox.push(f);
        }
        match f.fact {
            Fact::Claim(_) => self.on_claim(job, f.task, author),
            Fact::Report(_) => self.on_report(job, f.task),
            Fact::Holding(_) => self.on_holding(job, f.task, author),
        }
    }

    /// Broadcasts own new facts.
    pub(super) fn flush(&mut self) {
        let chunk = self.config.facts_per_msg_max;
        let mut msgs = Vec::new();
        for j in self.jobs.values_mut() {
            for facts in std::mem::take(&mut j.gossip.outbox).chunks(chunk) {
                msgs.push(EngineMsg::Facts {
                    job: j.id,
                    facts: facts.to_vec(),
                });
            }
        }
        for msg in msgs {
            self.broadcast(msg);
        }
    }

    /// Whether some job has own facts waiting for the next flush.
    pub(super) fn has_unflushed(&self) -> bool {
        self.jobs.values().any(|j| !j.gossip.outbox.is_empty())
    }

    /// Every sync: how many facts this node authored, per job. Facts still waiting for
    /// a flush go out first, so the digest never counts facts not yet sent.
    pub(super) fn broadcast_digests(&mut self) {
        if self.has_unflushed() {
            self.flush();
        }
        let me = self.me;
        let digests: Vec<EngineMsg> = self
            .jobs
            .values()
            .map(|j| EngineMsg::Digest {
                job: j.id,
                facts: j.board.count(me),
            })
            .collect();
        for msg in digests {
            self.broadcast(msg);
        }
    }

    /// A peer's [`EngineMsg::Digest`]: if, a sync interval after an earlier digest, we
    /// still have fewer of its facts than that digest claimed, some were lost: ask for
    /// them again. Comparing with the earlier claim, not the latest, keeps facts that
    /// are merely in flight (a busy author always has some) from causing resends.
    pub(super) fn on_digest(&mut self, from: NodeId, job: JobId, facts: u64) {
        let now = self.now;
        let sync = self.config.sync_ms;
        if !self.jobs.contains_key(&job) {
            return self.ask_for_job(from, job);
        }
        self.knows_job(from, job);
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        let have = j.board.count(from);
        if have >= facts {
            j.gossip.behind_since.remove(&from);
            return;
        }
        match j.gossip.behind_since.get(&from).copied() {
            Some((since, _)) if now.since(since) < sync => {}
            Some((_, claimed)) if have < claimed => {
                j.gossip.behind_since.insert(from, (now, facts));
                self.send(from, EngineMsg::Resend { job });
            }
            _ => {
                j.gossip.behind_since.insert(from, (now, facts));
            }
        }
    }

    /// A peer's [`EngineMsg::Resend`]: the spec and all our facts, at most once a sync
    /// interval per peer.
    pub(super) fn on_resend(&mut self, from: NodeId, job: JobId) {
        self.asks_for_job(from, job);
        let now = self.now;
        let sync = self.config.sync_ms;
        let Some(j) = self.jobs.get_mut(&job) else {
            return;
        };
        if j.gossip
            .resent_to
            .get(&from)
            .is_some_and(|t| now.since(*t) < sync)
        {
            return self.drop_msg(from, DropReason::ResendTooSoon);
        }
        j.gossip.resent_to.insert(from, now);
        let msgs = self.job_and_own_facts(job);
        for m in msgs {
            self.send(from, m);
        }
    }

    /// A job's spec and every fact this node authored about it, in messages.
    fn job_and_own_facts(&self, job: JobId) -> Vec<EngineMsg> {
        let Some(j) = self.jobs.get(&job) else {
            return Vec::new();
        };
        let spec = EngineMsg::Job {
            spec: j.spec.clone(),
        };
        std::iter::once(spec)
            .chain(
                j.board
                    .facts_of(self.me)
                    .chunks(self.config.facts_per_msg_max)
                    .map(|c| EngineMsg::Facts {
                        job,
                        facts: c.to_vec(),
                    }),
            )
            .collect()
    }

    /// A newcomer gets every job and this node's facts about it.
    pub(super) fn greet(&mut self, peer: NodeId) {
        let ids: Vec<JobId> = self.jobs.keys().copied().collect();
        for id in ids {
            for m in self.job_and_own_facts(id) {
                self.send(peer, m);
            }
        }
    }
}
