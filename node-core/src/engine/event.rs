//! What the engine tells a person or a program: [`Event`]s with plain-words `Display`,
//! why a task runs ([`Why`]), a job's timings and the engine's counters.

use super::Millis;
use crate::job::{JobId, NodeId, TaskId};
use crate::kernels::JobOutput;
pub use crate::wire::Why;

/// How long a job took, from this node's point of view.
#[derive(Clone, Debug, PartialEq)]
pub struct JobTimings {
    /// When this node accepted the job.
    pub started_at: Millis,
    /// When this node saw the last task validated.
    pub validated_at: Millis,
    /// When this node assembled the output.
    pub assembled_at: Millis,
    /// Tasks this node computed.
    pub computed_here: u32,
}

/// Something worth showing a person, in plain words via `Display`.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum Event {
    /// This node took up a job.
    JobAccepted {
        /// The job.
        job: JobId,
        /// Its number of tasks.
        tasks: u32,
        /// The node that submitted it.
        submitter: NodeId,
    },
    /// This node did not take up a job.
    JobRefused {
        /// The job.
        job: JobId,
        /// Why, in plain words.
        why: String,
    },
    /// This node started computing a task.
    TaskStarted {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// Why this node runs it.
        why: Why,
    },
    /// This node finished computing a task.
    TaskComputed {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The content hash of its output.
        hash: u64,
    },
    /// A task reached its quorum in this node's view.
    TaskValidated {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The hash that reached the quorum.
        hash: u64,
    },
    /// Nodes reported different results for a task (before or after it was
    /// validated); said once per task.
    TaskMismatch {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
    },
    /// A node reported a result other than the validated one, with evidence (see
    /// [`super::Verdict`]), and is no longer placed in the job, or in any job.
    LiarMarked {
        /// The node.
        node: NodeId,
        /// The job where it was caught.
        job: JobId,
        /// The task where it was caught.
        task: TaskId,
        /// Whether the mark holds in every job (else in `job` only).
        everywhere: bool,
    },
    /// This node sent a copy of a result to a holder.
    ResultReplicated {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The holder the copy went to.
        to: NodeId,
    },
    /// A node that held a validated result left.
    HolderLost {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The node that left.
        holder: NodeId,
    },
    /// A peer left the mesh.
    PeerDead {
        /// The peer.
        node: NodeId,
    },
    /// Validation progress of a job in this node's view.
    JobProgress {
        /// The job.
        job: JobId,
        /// Tasks validated so far.
        tasks_validated: u32,
        /// Tasks in the job.
        tasks: u32,
    },
    /// The assembling node has the bytes of `fetched` of `tasks` results.
    AssemblyProgress {
        /// The job.
        job: JobId,
        /// Results whose bytes are here.
        fetched: u32,
        /// Tasks in the job.
        tasks: u32,
    },
    /// The job's output is assembled here.
    JobDone {
        /// The job.
        job: JobId,
        /// The kernel's merged output.
        output: JobOutput,
        /// How long it took.
        timings: JobTimings,
    },
    /// Every result is here but the kernel could not merge them (a kernel bug).
    JobFailed {
        /// The job.
        job: JobId,
        /// The kernel's error.
        why: String,
    },
    /// The submitter cancelled a job.
    JobCancelled {
        /// The job.
        job: JobId,
    },
    /// A message was refused (malformed, unknown job, over a bound).
    Dropped {
        /// The peer that sent it.
        from: NodeId,
        /// Why.
        why: DropReason,
    },
}

/// Why a message (or an own output) was refused. Each refusal has its own name, so a
/// test can tell them apart; `Display` says it in plain words.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum DropReason {
    /// Facts about a job this node does not know (its spec is asked for).
    FactsForUnknownJob,
    /// More facts in one message than `facts_per_msg_max`.
    TooManyFacts,
    /// A fact about a task the job does not have.
    FactTaskOutOfRange,
    /// A resend asked again within a sync interval.
    ResendTooSoon,
    /// A cancel from a node that did not submit the job.
    CancelNotFromSubmitter,
    /// A pacing change from a node that did not submit the job.
    PacingNotFromSubmitter,
    /// A store for a job this node does not know.
    StoreForUnknownJob,
    /// A store for a task the job does not have.
    StoreTaskOutOfRange,
    /// A store larger than the kernel's task output can be.
    StoreTooBig,
    /// A store whose bytes do not hash to the hash it names.
    StoreHashMismatch,
    /// A store for a task this node does not rank among the top of.
    StoreNotRankedHere,
    /// A store of a hash other than the task's validated one.
    StoreLostValidation,
    /// A payload this node did not fetch.
    PayloadUnsolicited,
    /// A payload for a task the job does not have.
    PayloadTaskOutOfRange,
    /// A payload larger than the kernel's task output can be.
    PayloadTooBig,
    /// A payload named by a hash other than the task's validated one.
    PayloadNotValidated,
    /// A payload whose bytes do not hash to the hash it names.
    PayloadHashMismatch,
    /// This node's own computation returned more bytes than the kernel allows.
    OwnOutputTooBig,
    /// A job naming this node as its submitter, which it never submitted.
    JobForged,
    /// A job relayed while its submitter is not a live peer here.
    JobSubmitterNotHere,
    /// A job over its submitter's share (`jobs_per_submitter_max` unfinished jobs).
    JobOverSubmitterShare,
    /// A fetch (of a result or a preview) past the peer's queue of requests waiting for
    /// its budget of bytes per sync interval, or larger than a whole budget.
    FetchOverBudget,
    /// A help request for a task the job does not have.
    HelpTaskOutOfRange,
    /// Help with a task validated here, asked again within `straggler_ms`.
    HelpTooSoon,
    /// A preview this node did not ask for.
    PreviewUnsolicited,
    /// A preview larger than the kernel's preview can be.
    PreviewTooBig,
    /// A preview named by a hash other than the task's validated one.
    PreviewNotValidated,
    /// A preview (with the tile hash sent beside it) that does not seal to its hash.
    PreviewHashMismatch,
    /// A preview asked of a job whose kernel makes none.
    PreviewOfNoImage,
}

impl std::fmt::Display for DropReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use DropReason::*;
        f.write_str(match self {
            FactsForUnknownJob => "facts about an unknown job",
            TooManyFacts => "too many facts in one message",
            FactTaskOutOfRange => "fact about a task out of range",
            ResendTooSoon => "resend asked again within a sync interval",
            CancelNotFromSubmitter => "cancel from a node that did not submit the job",
            PacingNotFromSubmitter => "pacing from a node that did not submit the job",
            StoreForUnknownJob => "store for an unknown job",
            StoreTaskOutOfRange => "store for a task out of range",
            StoreTooBig => "store larger than a task's output can be",
            StoreHashMismatch => "store whose bytes do not match its hash",
            StoreNotRankedHere => "store for a task this node does not hold",
            StoreLostValidation => "store of a result that lost validation",
            PayloadUnsolicited => "payload nobody asked for",
            PayloadTaskOutOfRange => "payload for a task out of range",
            PayloadTooBig => "payload larger than a task's output can be",
            PayloadNotValidated => "payload of a hash that is not the validated one",
            PayloadHashMismatch => "payload whose bytes do not match its hash",
            OwnOutputTooBig => "own task output over its bound",
            JobForged => "job naming this node as submitter, which it never submitted",
            JobSubmitterNotHere => "job relayed while its submitter is not here",
            JobOverSubmitterShare => "job over its submitter's share of this node",
            FetchOverBudget => {
                "fetch past the peer's queue of requests waiting for its byte budget"
            }
            HelpTaskOutOfRange => "help asked for a task out of range",
            HelpTooSoon => "help with a validated task asked again too soon",
            PreviewUnsolicited => "preview nobody asked for",
            PreviewTooBig => "preview larger than a task's preview can be",
            PreviewNotValidated => "preview of a hash that is not the validated one",
            PreviewHashMismatch => "preview that does not match its hash",
            PreviewOfNoImage => "preview asked of a job without pictures",
        })
    }
}

impl Event {
    /// The event's name in logs and JSON lines: `task_started`, `job_done`, ...
    pub fn kind(&self) -> &'static str {
        use Event::*;
        match self {
            JobAccepted { .. } => "job_accepted",
            JobRefused { .. } => "job_refused",
            TaskStarted { .. } => "task_started",
            TaskComputed { .. } => "task_computed",
            TaskValidated { .. } => "task_validated",
            TaskMismatch { .. } => "task_mismatch",
            LiarMarked { .. } => "liar_marked",
            ResultReplicated { .. } => "result_replicated",
            HolderLost { .. } => "holder_lost",
            PeerDead { .. } => "peer_dead",
            JobProgress { .. } => "job_progress",
            AssemblyProgress { .. } => "assembly_progress",
            JobDone { .. } => "job_done",
            JobFailed { .. } => "job_failed",
            JobCancelled { .. } => "job_cancelled",
            Dropped { .. } => "engine_dropped",
        }
    }
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use Event::*;
        match self {
            JobAccepted {
                job,
                tasks,
                submitter,
            } => write!(f, "job {job} from {submitter}: {tasks} tasks"),
            JobRefused { job, why } => write!(f, "job {job} refused: {why}"),
            TaskStarted { job, task, why } => write!(f, "{job} {task} started ({why:?})"),
            TaskComputed { job, task, hash } => {
                write!(f, "{job} {task} computed, hash {hash:016x}")
            }
            TaskValidated { job, task, hash } => {
                write!(f, "{job} {task} validated, hash {hash:016x}")
            }
            TaskMismatch { job, task } => write!(f, "{job} {task}: nodes disagree on the result"),
            LiarMarked {
                node,
                job,
                task,
                everywhere,
            } => write!(
                f,
                "{node} reported a wrong result for {job} {task}: caught lying {}",
                if *everywhere {
                    "in every job"
                } else {
                    "in this job"
                }
            ),
            ResultReplicated { job, task, to } => write!(f, "{job} {task} result copied to {to}"),
            HolderLost { job, task, holder } => write!(f, "{job} {task}: holder {holder} left"),
            PeerDead { node } => write!(f, "{node} left the mesh"),
            JobProgress {
                job,
                tasks_validated,
                tasks,
            } => write!(f, "{job}: {tasks_validated}/{tasks} tasks validated"),
            AssemblyProgress {
                job,
                fetched,
                tasks,
            } => write!(
                f,
                "{job}: {fetched}/{tasks} results gathered for the output"
            ),
            JobDone { job, timings, .. } => write!(
                f,
                "{job} done: validated at {} ms, assembled at {} ms, {} tasks computed here",
                timings.validated_at.since(timings.started_at),
                timings.assembled_at.since(timings.started_at),
                timings.computed_here
            ),
            JobFailed { job, why } => write!(f, "{job} failed to assemble: {why}"),
            JobCancelled { job } => write!(f, "{job} cancelled"),
            Dropped { from, why } => write!(f, "message from {from} dropped: {why}"),
        }
    }
}

/// Counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct EngineStats {
    /// Computations this node finished.
    pub tasks_run: u64,
    /// Messages received from peers.
    pub messages_in: u64,
    /// Messages (or own outputs) refused.
    pub dropped: u64,
    /// Result copies sent to holders.
    pub stores_sent: u64,
    /// Fetches sent to holders.
    pub fetches_sent: u64,
    /// Preview requests sent to holders (watching).
    pub previews_asked: u64,
    /// Previews received and accepted.
    pub previews_received: u64,
    /// Bytes of the previews accepted.
    pub preview_bytes: u64,
    /// Peers' requests that waited for their budgets to renew instead of being answered
    /// at once.
    pub asks_deferred: u64,
}
