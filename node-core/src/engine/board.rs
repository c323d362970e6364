//! The task board of one job: a state-based CRDT of facts.
//!
//! Per task, per author: whether it claimed the task, the result hashes it reported and
//! the result hashes it holds bytes for. Merge is set union, so facts may arrive late,
//! twice or in any order and every node that has seen the same facts has the same board.
//!
//! Bounds: per (task, author) at most one claim, [`HASHES_PER_AUTHOR`] reports and as
//! many holdings (the smallest hashes win, which keeps the merge order-free); at most
//! `authors_max` authors per job besides this node (facts from more are refused and
//! counted; this node's own are always taken, or a crowd of peers could make it refuse
//! its own reports and compute the same task forever). So a board holds at most
//! `tasks × (authors_max + 1) × (1 + 2 × HASHES_PER_AUTHOR)` facts; in practice
//! each task has facts from `max(q, r)` authors, a few more after failures.

use std::collections::BTreeMap;

use crate::job::{NodeId, TaskId};
use crate::wire::{Fact, TaskFact, Why};

/// Distinct report (and holding) hashes kept per author and task. An honest node has
/// one; a second one proves the author contradicts itself.
pub const HASHES_PER_AUTHOR: usize = 2;

/// What one author said about one task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthorFacts {
    /// Whether the author said it is computing the task.
    pub claimed: bool,
    /// Why it computes it, as it said (the first in [`Why`]'s order if it said several,
    /// so that the board does not depend on the order facts arrive in).
    pub claim_why: Option<Why>,
    /// Reported result hashes, ascending, at most [`HASHES_PER_AUTHOR`].
    pub reports: Vec<u64>,
    /// Hashes of results whose bytes the author holds, ascending, bounded likewise.
    pub holding: Vec<u64>,
}

/// Everything known about one task.
#[derive(Clone, Debug, Default)]
pub struct TaskEntry {
    /// By author, ascending.
    pub authors: Vec<(NodeId, AuthorFacts)>,
    /// The first hash that reached the quorum in this node's view; never changes after.
    pub validated_hash: Option<u64>,
}

impl TaskEntry {
    /// What `node` said about this task, if anything.
    pub fn facts_of(&self, node: NodeId) -> Option<&AuthorFacts> {
        self.authors
            .binary_search_by_key(&node, |(n, _)| *n)
            .ok()
            .map(|i| &self.authors[i].1)
    }

    /// Distinct authors that reported `hash`.
    pub fn reporters_of(&self, hash: u64) -> usize {
        self.authors
            .iter()
            .filter(|(_, f)| f.reports.contains(&hash))
            .count()
    }

    /// The largest number of authors agreeing on one hash.
    pub fn best_agreement(&self) -> usize {
        let mut best = 0;
        for (_, f) in &self.authors {
            for h in &f.reports {
                best = best.max(self.reporters_of(*h));
            }
        }
        best
    }

    /// Whether more than one distinct hash was reported.
    pub fn has_mismatch(&self) -> bool {
        let mut first = None;
        for (_, f) in &self.authors {
            for h in &f.reports {
                match first {
                    None => first = Some(*h),
                    Some(x) if x != *h => return true,
                    _ => {}
                }
            }
        }
        false
    }

    /// Authors holding bytes for `hash`: those that said so, and those that reported it
    /// (the engine keeps the bytes of every result it computed, so a report implies the
    /// bytes even before the Holding fact arrives).
    pub fn holders_of(&self, hash: u64) -> impl Iterator<Item = NodeId> + '_ {
        self.authors
            .iter()
            .filter(move |(_, f)| f.holding.contains(&hash) || f.reports.contains(&hash))
            .map(|(n, _)| *n)
    }
}

/// What adding a fact did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    /// The fact is new.
    New,
    /// The fact was known.
    Duplicate,
    /// Over a bound (too many authors, or a third hash from one author).
    Refused,
    /// A smaller hash displaced a larger one at the bound.
    Replaced,
    /// The task does not exist in this job.
    BadTask,
}

/// The board of one job.
#[derive(Clone, Debug)]
pub struct Board {
    tasks: Vec<TaskEntry>,
    /// Facts accepted per author, compared with their digests to repair losses.
    counts: BTreeMap<NodeId, u64>,
    authors_max: usize,
    /// This node: its facts are always taken.
    me: NodeId,
    /// Facts refused for a bound.
    pub refused: u64,
}

/// Keeps the [`HASHES_PER_AUTHOR`] smallest hashes: the same set whatever the order.
fn insert_sorted(v: &mut Vec<u64>, h: u64) -> Added {
    match v.binary_search(&h) {
        Ok(_) => Added::Duplicate,
        Err(i) if v.len() >= HASHES_PER_AUTHOR => {
            if i >= v.len() {
                return Added::Refused;
            }
            v.pop();
            v.insert(i, h);
            Added::Replaced
        }
        Err(i) => {
            v.insert(i, h);
            Added::New
        }
    }
}

impl Board {
    /// An empty board for a job of `tasks` tasks, kept by node `me`.
    pub fn new(tasks: u32, authors_max: usize, me: NodeId) -> Board {
        Board {
            tasks: vec![TaskEntry::default(); tasks as usize],
            counts: BTreeMap::new(),
            authors_max,
            me,
            refused: 0,
        }
    }

    /// The entry of a task the caller knows to be in range (engine-internal).
    pub fn task(&self, t: TaskId) -> &TaskEntry {
        &self.tasks[t.0 as usize]
    }

    /// The entry of any task, if in range.
    pub fn get(&self, t: TaskId) -> Option<&TaskEntry> {
        self.tasks.get(t.0 as usize)
    }

    /// Facts accepted from `author`.
    pub fn count(&self, author: NodeId) -> u64 {
        self.counts.get(&author).copied().unwrap_or(0)
    }

    /// Total facts held, for the memory checker.
    pub fn fact_count(&self) -> u64 {
        self.counts.values().sum()
    }

    /// Adds one fact by `author`. Checking the quorum is the caller's business
    /// ([`Board::check_quorum`]).
    pub fn add(&mut self, author: NodeId, tf: TaskFact) -> Added {
        let Some(entry) = self.tasks.get_mut(tf.task.0 as usize) else {
            return Added::BadTask;
        };
        if author != self.me && !self.counts.contains_key(&author) {
            let others = self.counts.len() - usize::from(self.counts.contains_key(&self.me));
            if others >= self.authors_max {
                self.refused += 1;
                return Added::Refused;
            }
        }
        let i = match entry.authors.binary_search_by_key(&author, |(n, _)| *n) {
            Ok(i) => i,
            Err(i) => {
                entry.authors.insert(i, (author, AuthorFacts::default()));
                i
            }
        };
        let facts = &mut entry.authors[i].1;
        let added = match tf.fact {
            Fact::Claim(why) if facts.claimed => {
                if facts.claim_why.is_none_or(|w| why < w) {
                    facts.claim_why = Some(why);
                }
                Added::Duplicate
            }
            Fact::Claim(why) => {
                facts.claimed = true;
                facts.claim_why = Some(why);
                Added::New
            }
            Fact::Report(h) => insert_sorted(&mut facts.reports, h),
            Fact::Holding(h) => insert_sorted(&mut facts.holding, h),
        };
        match added {
            Added::New => *self.counts.entry(author).or_insert(0) += 1,
            Added::Refused | Added::Replaced => self.refused += 1,
            _ => {}
        }
        added
    }

    /// If a hash has reached `quorum` distinct reporters and the task was not validated
    /// yet, validates it and returns the hash.
    pub fn check_quorum(&mut self, t: TaskId, quorum: usize) -> Option<u64> {
        let entry = self.tasks.get_mut(t.0 as usize)?;
        if entry.validated_hash.is_some() {
            return None;
        }
        // Candidates in ascending order, so that the choice is the same everywhere if
        // (against the fault model) two hashes reach the quorum at once.
        let mut hashes: Vec<u64> = entry
            .authors
            .iter()
            .flat_map(|(_, f)| f.reports.iter().copied())
            .collect();
        hashes.sort_unstable();
        hashes.dedup();
        let hit = hashes
            .into_iter()
            .find(|h| entry.reporters_of(*h) >= quorum)?;
        entry.validated_hash = Some(hit);
        Some(hit)
    }

    /// Takes back this node's own reports and holdings of a validated task other than
    /// its validated hash (a presenter's reset: what it said while made to lie);
    /// returns how many. Peers keep what they heard (and so count more of this node's
    /// facts than its digests say, until it has said as many again); newcomers no
    /// longer hear it.
    pub fn withdraw_own_wrong(&mut self, t: TaskId) -> u64 {
        let me = self.me;
        let Some(entry) = self.tasks.get_mut(t.0 as usize) else {
            return 0;
        };
        let Some(valid) = entry.validated_hash else {
            return 0;
        };
        let Ok(i) = entry.authors.binary_search_by_key(&me, |(n, _)| *n) else {
            return 0;
        };
        let f = &mut entry.authors[i].1;
        let before = f.reports.len() + f.holding.len();
        f.reports.retain(|h| *h == valid);
        f.holding.retain(|h| *h == valid);
        let gone = (before - f.reports.len() - f.holding.len()) as u64;
        if let Some(n) = self.counts.get_mut(&me) {
            *n = n.saturating_sub(gone);
        }
        gone
    }

    /// Every fact `author` contributed, to resend it.
    pub fn facts_of(&self, author: NodeId) -> Vec<TaskFact> {
        let mut out = Vec::new();
        for (i, entry) in self.tasks.iter().enumerate() {
            let Some(f) = entry.facts_of(author) else {
                continue;
            };
            let task = TaskId(i as u32);
            if let (true, Some(why)) = (f.claimed, f.claim_why) {
                out.push(TaskFact {
                    task,
                    fact: Fact::Claim(why),
                });
            }
            out.extend(f.reports.iter().map(|h| TaskFact {
                task,
                fact: Fact::Report(*h),
            }));
            out.extend(f.holding.iter().map(|h| TaskFact {
                task,
                fact: Fact::Holding(*h),
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(task: u32, fact: Fact) -> TaskFact {
        TaskFact {
            task: TaskId(task),
            fact,
        }
    }

    #[test]
    fn merge_is_order_free_and_idempotent() {
        let facts = [
            (NodeId(1), f(0, Fact::Claim(Why::Assigned))),
            (NodeId(2), f(0, Fact::Report(7))),
            (NodeId(1), f(0, Fact::Report(7))),
            (NodeId(3), f(1, Fact::Holding(9))),
            (NodeId(2), f(0, Fact::Report(8))),
            (NodeId(2), f(0, Fact::Report(6))),
        ];
        let mut a = Board::new(2, 8, NodeId(0));
        for (n, tf) in facts {
            a.add(n, tf);
        }
        let mut b = Board::new(2, 8, NodeId(0));
        for (n, tf) in facts.iter().rev().chain(facts.iter()) {
            b.add(*n, *tf);
        }
        for t in 0..2 {
            assert_eq!(a.task(TaskId(t)).authors, b.task(TaskId(t)).authors);
        }
        assert_eq!(a.count(NodeId(2)), b.count(NodeId(2)));
        assert_eq!(a.facts_of(NodeId(2)), b.facts_of(NodeId(2)));
    }

    #[test]
    fn quorum_needs_distinct_authors() {
        let mut b = Board::new(1, 8, NodeId(0));
        assert_eq!(b.task(TaskId(0)).best_agreement(), 0);
        b.add(NodeId(1), f(0, Fact::Report(5)));
        b.add(NodeId(1), f(0, Fact::Report(5)));
        let e = b.task(TaskId(0));
        assert_eq!((e.best_agreement(), e.has_mismatch()), (1, false));
        let mut agreeing = Board::new(1, 8, NodeId(0));
        agreeing.add(NodeId(1), f(0, Fact::Report(5)));
        agreeing.add(NodeId(2), f(0, Fact::Report(5)));
        let e = agreeing.task(TaskId(0));
        assert_eq!((e.best_agreement(), e.has_mismatch()), (2, false));
        assert_eq!(b.check_quorum(TaskId(0), 2), None);
        b.add(NodeId(2), f(0, Fact::Report(6)));
        assert_eq!(b.check_quorum(TaskId(0), 2), None);
        assert!(b.task(TaskId(0)).has_mismatch());
        b.add(NodeId(3), f(0, Fact::Report(5)));
        assert_eq!(
            b.task(TaskId(0)).best_agreement(),
            2,
            "two agree, one dissents"
        );
        assert_eq!(b.check_quorum(TaskId(0), 2), Some(5));
        assert_eq!(b.check_quorum(TaskId(0), 2), None, "validated once");
        assert_eq!(b.task(TaskId(0)).validated_hash, Some(5));
    }

    /// A claim says why its author computes the task; two claims of one author keep the
    /// first reason in `Why`'s order, whatever order they arrive in, and count once.
    #[test]
    fn a_claim_carries_its_reason_and_merges_order_free() {
        let (a, b) = (Fact::Claim(Why::Stolen), Fact::Claim(Why::Recompute));
        let mut x = Board::new(1, 8, NodeId(0));
        x.add(NodeId(1), f(0, a));
        assert_eq!(x.add(NodeId(1), f(0, b)), Added::Duplicate);
        let mut y = Board::new(1, 8, NodeId(0));
        y.add(NodeId(1), f(0, b));
        y.add(NodeId(1), f(0, a));
        for board in [&x, &y] {
            let facts = board.task(TaskId(0)).facts_of(NodeId(1)).unwrap();
            assert_eq!((facts.claimed, facts.claim_why), (true, Some(Why::Stolen)));
            assert_eq!(board.count(NodeId(1)), 1);
        }
        assert_eq!(x.facts_of(NodeId(1)), [f(0, a)]);
    }

    /// A holding is not a report: bytes anyone may hold (a copy, a fetch) are no
    /// computation, so they never count towards the quorum nor make a mismatch.
    #[test]
    fn holdings_are_not_reports() {
        let mut b = Board::new(1, 8, NodeId(0));
        b.add(NodeId(1), f(0, Fact::Report(5)));
        for n in 2..=4 {
            b.add(NodeId(n), f(0, Fact::Holding(5)));
        }
        b.add(NodeId(5), f(0, Fact::Holding(6)));
        let e = b.task(TaskId(0));
        assert_eq!(e.reporters_of(5), 1);
        assert_eq!(e.reporters_of(6), 0);
        assert_eq!(e.best_agreement(), 1);
        assert!(!e.has_mismatch());
        assert_eq!(b.check_quorum(TaskId(0), 2), None);
        assert_eq!(b.task(TaskId(0)).holders_of(5).count(), 4);
        b.add(NodeId(2), f(0, Fact::Report(5)));
        assert_eq!(b.check_quorum(TaskId(0), 2), Some(5));
    }

    #[test]
    fn bounds_refuse_and_count() {
        let mut b = Board::new(1, 2, NodeId(0));
        assert_eq!(
            b.add(NodeId(1), f(0, Fact::Claim(Why::Assigned))),
            Added::New
        );
        assert_eq!(
            b.add(NodeId(2), f(0, Fact::Claim(Why::Assigned))),
            Added::New
        );
        assert_eq!(
            b.add(NodeId(3), f(0, Fact::Claim(Why::Assigned))),
            Added::Refused
        );
        // This node's own facts are taken however many authors there are.
        assert_eq!(
            b.add(NodeId(0), f(0, Fact::Claim(Why::Assigned))),
            Added::New
        );
        assert_eq!(
            b.add(NodeId(4), f(0, Fact::Claim(Why::Assigned))),
            Added::Refused
        );
        for h in 0..5 {
            b.add(NodeId(1), f(0, Fact::Report(h)));
        }
        assert_eq!(
            b.task(TaskId(0)).facts_of(NodeId(1)).unwrap().reports,
            vec![0, 1]
        );
        let mut c = Board::new(1, 2, NodeId(0));
        for h in (0..5).rev() {
            c.add(NodeId(1), f(0, Fact::Report(h)));
        }
        assert_eq!(
            c.task(TaskId(0)).facts_of(NodeId(1)).unwrap().reports,
            vec![0, 1]
        );
        assert_eq!(
            b.add(NodeId(1), f(7, Fact::Claim(Why::Assigned))),
            Added::BadTask
        );
        // Tasks in range only: one here, five, none.
        assert!(b.get(TaskId(0)).is_some() && b.get(TaskId(1)).is_none());
        let five = Board::new(5, 2, NodeId(0));
        assert!(five.get(TaskId(4)).is_some() && five.get(TaskId(5)).is_none());
        assert!(Board::new(0, 2, NodeId(0)).get(TaskId(0)).is_none());
        assert_eq!(b.refused, 5);
        assert_eq!(c.fact_count(), 2);
        assert_eq!(b.fact_count(), 5);
    }
}
