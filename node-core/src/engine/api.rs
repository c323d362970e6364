//! The engine's vocabulary: time ([`Millis`]), what it is told ([`Input`], [`Command`]),
//! what it asks for ([`Output`]), and what it keeps ([`Footprint`]).

use crate::job::{JobId, NodeId, TaskId};
use crate::kernels::Kernel;
use crate::wire::EngineMsg;

#[cfg(doc)]
use super::Engine;
use super::Event;

/// Virtual or real time in milliseconds, handed in by the driver.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Millis(pub u64);

impl Millis {
    pub(super) fn plus(self, ms: u64) -> Millis {
        Millis(self.0.saturating_add(ms))
    }

    /// Milliseconds from `earlier` to this time (0 if `earlier` is later).
    pub fn since(self, earlier: Millis) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// A command from this node's user.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum Command {
    /// Start a job; this node assembles its output.
    Submit {
        /// What to compute.
        kernel: Kernel,
        /// Copies of every result (`r`).
        replication: u8,
        /// Matching reports needed to accept a result (`q`).
        quorum: u8,
        /// Delay between two tasks on every node, for slow motion.
        pacing_ms: u32,
        /// Tells apart two otherwise equal jobs of one submitter.
        nonce: u64,
    },
    /// Cancel a job this node submitted.
    Cancel {
        /// The job.
        job: JobId,
    },
    /// Change a job's pacing delay everywhere.
    SetPacing {
        /// The job.
        job: JobId,
        /// The new delay between two tasks.
        pacing_ms: u32,
    },
    /// Assemble a job's output here too (any node may).
    Assemble {
        /// The job.
        job: JobId,
    },
    /// Show a job here without assembling it: fetch the preview of each validated
    /// image result not held here ([`crate::kernels::preview`]). A job without pictures
    /// is assembled instead (its results are a few bytes). [`Command::Assemble`] later
    /// fetches the full results.
    Watch {
        /// The job.
        job: JobId,
    },
}

/// Everything that can happen to an engine.
#[derive(Clone, Debug, PartialEq)]
pub enum Input {
    /// A peer finished its Hello and is a member.
    PeerUp(NodeId),
    /// A peer is gone (however that was noticed).
    PeerDown(NodeId),
    /// A message from a peer.
    Message {
        /// The sender, as vouched for by its channel.
        from: NodeId,
        /// The message.
        msg: EngineMsg,
    },
    /// A command from this node's user.
    Command(Command),
    /// A task this engine asked for ([`Output::RunTask`]) finished.
    ComputeFinished {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The kernel's output bytes.
        output: Vec<u8>,
    },
    /// Time passed ([`Engine::poll_timeout`]).
    Timeout,
}

/// What the engine wants done.
#[derive(Clone, Debug, PartialEq)]
pub enum Output {
    /// Send a message to one peer.
    Send {
        /// The peer.
        to: NodeId,
        /// The message.
        msg: EngineMsg,
    },
    /// Send a message to every peer this node considers up.
    Broadcast {
        /// The message.
        msg: EngineMsg,
    },
    /// Compute a task, then report with [`Input::ComputeFinished`].
    RunTask {
        /// The job.
        job: JobId,
        /// The task.
        task: TaskId,
        /// The kernel to run it with.
        kernel: Kernel,
    },
    /// Something to show a person.
    Event(Event),
}

/// The size of everything an engine keeps ([`Engine::footprint`]), grouped by what
/// bounds it, so that a test can hold each group to its own bound.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Footprint {
    /// Jobs kept.
    pub jobs: usize,
    /// Facts on all boards.
    pub facts: u64,
    /// Result bytes held.
    pub payload_bytes: usize,
    /// Retired job ids remembered.
    pub retired: usize,
    /// Unknown job ids whose spec was asked for.
    pub asked: usize,
    /// Nodes marked as liars.
    pub liars: usize,
    /// Per-peer budgets (fetch answers, help with validated tasks).
    pub peer_budgets: usize,
    /// Peers' requests waiting for their budgets to renew.
    pub deferred: usize,
    /// Per-task marks over all jobs (at most one per task each): claims seen, backups,
    /// unfetchable results, help asked and given, open reports, mismatches.
    pub task_marks: usize,
    /// Per (task, author) entries over all jobs: holders that did not serve, copies
    /// awaiting confirmation, holders that never confirmed one.
    pub per_author: usize,
    /// Fetches in flight over all jobs.
    pub fetches: usize,
    /// Per (job, peer) gossip entries: peers behind, resends answered.
    pub per_peer: usize,
    /// Own facts waiting for a flush.
    pub outbox: usize,
}
