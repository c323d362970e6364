//! What a view of the mesh reads of a task, decided here once: where a task is (waiting,
//! running, validated), which member computes or computed it, how many live copies it
//! has where the engine wants them, and placement's order over any members. The page's
//! job rows, its inspector and the recordings read these instead of restating the
//! engine's rules from the task board. [`TaskFacts`] is the board's entry for a task, read
//! only, with its facts said against the accepted result: the board itself stays the
//! engine's.

use super::board::{AuthorFacts, TaskEntry};
use super::job::Job;
use super::placement::score;
use super::{Engine, Why};
use crate::job::{JobId, NodeId, TaskId};

/// Where a task is, in this node's view.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum TaskState {
    /// Nobody live has said it computes it.
    Waiting,
    /// A live member claimed it and has not reported; no result is validated yet.
    Running,
    /// A result reached the quorum.
    Validated,
}

impl TaskState {
    /// The state in one word, as the page's data attributes and log say it.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::Waiting => "waiting",
            TaskState::Running => "running",
            TaskState::Validated => "validated",
        }
    }
}

/// One task as this node sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TaskView {
    /// Where it is.
    pub state: TaskState,
    /// Live copies of the validated result at the members the engine wants them at
    /// ([`Engine::holders_wanted`]); 0 before validation. Other copies (a tab that
    /// assembled the picture keeps every tile) do not count: when a wanted holder
    /// leaves, the task is short until the next-ranked member has its copy.
    pub copies: u32,
    /// Validated: the top-ranked of the members that reported the validated result (with
    /// q > 1 several computed it; each computing member's colour then shows on its share
    /// of the tasks). Running: the live member computing it. Waiting: nobody.
    pub by: Option<NodeId>,
}

/// What one member said of a task, as a view reads it: its claim, and its reports and
/// copies against the task's accepted result (all false before a result is accepted).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AuthorView {
    /// The member.
    pub node: NodeId,
    /// It said it computes the task.
    pub claimed: bool,
    /// Why it computes it, as it said.
    pub why: Option<Why>,
    /// It reported nothing yet.
    pub reported_nothing: bool,
    /// It reported the accepted result.
    pub reported_accepted: bool,
    /// It said it holds the accepted result's bytes as a copy.
    pub holding_accepted: bool,
    /// It reported a result other than the accepted one.
    pub reported_other: bool,
}

impl AuthorView {
    fn new(node: NodeId, f: &AuthorFacts, accepted: Option<u64>) -> AuthorView {
        let is = |h: &u64| Some(*h) == accepted;
        AuthorView {
            node,
            claimed: f.claimed,
            why: f.claim_why,
            reported_nothing: f.reports.is_empty(),
            reported_accepted: f.reports.iter().any(is),
            holding_accepted: f.holding.iter().any(is),
            reported_other: accepted.is_some_and(|a| f.reports.iter().any(|h| *h != a)),
        }
    }

    /// It has the accepted result's bytes: it computed or copied them.
    pub fn holds_accepted(&self) -> bool {
        self.reported_accepted || self.holding_accepted
    }
}

/// A task's entry on this node's board, read only: who said what about it.
#[derive(Clone, Copy, Debug)]
pub struct TaskFacts<'a> {
    entry: &'a TaskEntry,
}

impl<'a> TaskFacts<'a> {
    /// The result's hash that reached the quorum here, if one did (it never changes).
    pub fn accepted(&self) -> Option<u64> {
        self.entry.validated_hash
    }

    /// Every member that said anything of the task, ascending by id.
    pub fn authors(&self) -> impl Iterator<Item = AuthorView> + 'a {
        let accepted = self.entry.validated_hash;
        self.entry
            .authors
            .iter()
            .map(move |(n, f)| AuthorView::new(*n, f, accepted))
    }

    /// What `node` said of the task, if anything.
    pub fn author(&self, node: NodeId) -> Option<AuthorView> {
        self.entry
            .facts_of(node)
            .map(|f| AuthorView::new(node, f, self.entry.validated_hash))
    }

    /// Members that reported the accepted result.
    pub fn reporters(&self) -> impl Iterator<Item = NodeId> + 'a {
        self.authors()
            .filter(|a| a.reported_accepted)
            .map(|a| a.node)
    }

    /// Members that have the accepted result's bytes, live or not.
    pub fn holders(&self) -> impl Iterator<Item = NodeId> + 'a {
        self.authors()
            .filter(AuthorView::holds_accepted)
            .map(|a| a.node)
    }

    /// The most members that reported one and the same result.
    pub fn best_agreement(&self) -> usize {
        self.entry.best_agreement()
    }

    /// Members reported more than one distinct result.
    pub fn has_mismatch(&self) -> bool {
        self.entry.has_mismatch()
    }
}

impl Engine {
    /// By job, its validated tasks short of copies: fewer live copies than the members
    /// the engine wants them at ([`TaskView::copies`] against [`Engine::holders_wanted`]).
    /// Jobs with none are left out. Re-replication brings every count to nothing once
    /// the members stop coming and going; a checker reads it (`meshwork node --json`'s
    /// `copies_short` lines). One pass over every held job's tasks.
    pub fn copies_short(&self) -> std::collections::BTreeMap<JobId, u32> {
        let mut short = std::collections::BTreeMap::new();
        for j in self.jobs.values() {
            let n = (0..j.tasks)
                .map(TaskId)
                .filter(|t| {
                    let Some(entry) = j.board.get(*t) else {
                        return false;
                    };
                    let Some(hash) = entry.validated_hash else {
                        return false;
                    };
                    let (copies, wanted) = self.copies_wanted(j, *t, entry, hash);
                    copies < wanted
                })
                .count() as u32;
            if n > 0 {
                short.insert(j.id, n);
            }
        }
        short
    }

    /// A validated task's live copies at the members the engine wants them at, and how
    /// many members it wants them at.
    fn copies_wanted(&self, j: &Job, task: TaskId, entry: &TaskEntry, hash: u64) -> (u32, u32) {
        let wanted = self.wanted_holders(j, task);
        let copies = entry
            .holders_of(hash)
            .filter(|n| wanted.contains(n))
            .count();
        (copies as u32, wanted.len() as u32)
    }

    /// What this node's board holds of a task (none if the job or task is unknown here).
    pub fn task_facts(&self, job: JobId, task: TaskId) -> Option<TaskFacts<'_>> {
        self.task_entry(job, task).map(|entry| TaskFacts { entry })
    }

    /// Task `task` of `job` as this node sees it (waiting, with nobody, if the job or
    /// task is unknown here).
    pub fn task_view(&self, job: JobId, task: TaskId) -> TaskView {
        let waiting = TaskView {
            state: TaskState::Waiting,
            copies: 0,
            by: None,
        };
        let Some(entry) = self.task_entry(job, task) else {
            return waiting;
        };
        if let (Some(hash), Some(j)) = (entry.validated_hash, self.jobs.get(&job)) {
            let (copies, _) = self.copies_wanted(j, task, entry, hash);
            let by = entry
                .authors
                .iter()
                .filter(|(_, f)| f.reports.contains(&hash))
                .map(|(n, _)| *n)
                .max_by_key(|n| score(job, task, *n));
            return TaskView {
                state: TaskState::Validated,
                copies,
                by,
            };
        }
        match self.running_on(job, task) {
            Some(n) => TaskView {
                state: TaskState::Running,
                copies: 0,
                by: Some(n),
            },
            None => waiting,
        }
    }

    /// The live member computing a task not validated yet: one that claimed it and has
    /// reported nothing (the first by id if several did). None once it is validated.
    pub fn running_on(&self, job: JobId, task: TaskId) -> Option<NodeId> {
        self.unreported_claims(job, task).find(|n| self.is_live(*n))
    }

    /// Every member, live or not, that claimed a task not validated yet and has reported
    /// nothing for it: the work it holds unfinished.
    pub fn unreported_claims(&self, job: JobId, task: TaskId) -> impl Iterator<Item = NodeId> + '_ {
        self.task_entry(job, task)
            .filter(|e| e.validated_hash.is_none())
            .into_iter()
            .flat_map(|e| e.authors.iter())
            .filter(|(_, f)| f.claimed && f.reports.is_empty())
            .map(|(n, _)| *n)
    }

    /// `nodes` in placement's order for a task: the highest rendezvous score first, the
    /// order every member computes alike.
    pub fn ranked(job: JobId, task: TaskId, nodes: &[NodeId]) -> Vec<NodeId> {
        let mut v: Vec<(u64, NodeId)> = nodes.iter().map(|n| (score(job, task, *n), *n)).collect();
        v.sort_unstable_by(|a, b| b.cmp(a));
        v.into_iter().map(|(_, n)| n).collect()
    }
}
