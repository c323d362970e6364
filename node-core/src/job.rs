//! Jobs: what a job is, how it is named, and the ids that name its parts.
//!
//! A job is a [`JobSpec`]: a kernel with its parameters (which fix the task count), the
//! replication factor `r`, the quorum `q` and a pacing delay. Its [`JobId`] is a hash of
//! the spec's bytes, submitter and nonce included, so a spec relayed by any node can be
//! checked against its id and cannot be altered on the way.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kernels::{Kernel, KernelError, hash64};

/// The hash that names results and job specs: the first 8 bytes of SHA-256.
///
/// Not the kernels' fast `hash64`: once a quorum validated a hash, result bytes are
/// accepted on that hash alone, so it must resist a liar crafting other bytes with the
/// same value (XXH64 does not; a second preimage of a 64-bit SHA-256 prefix costs about
/// 2^64 work). The same bytes give the same value on every target.
pub fn content_hash(bytes: &[u8]) -> u64 {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_le_bytes(first)
}

/// A node of the compute mesh. In a live mesh it is derived from the signaling peer id
/// ([`NodeId::from_peer`]); the simulator numbers its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

impl NodeId {
    /// The node id of a signaling peer id.
    pub fn from_peer(peer: &crate::signal::PeerId) -> NodeId {
        NodeId(hash64(peer.0.as_bytes()))
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "n{:04x}", self.0 & 0xffff)
    }
}

/// A job, named by the hash of its spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct JobId(pub u64);

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "j{:08x}", self.0 >> 32)
    }
}

/// A task of a job: `0..kernel.task_count()`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct TaskId(pub u32);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "t{}", self.0)
    }
}

/// Most tasks in one job: bounds the task board and every per-task table.
pub const TASKS_MAX: u32 = crate::kernels::TASK_COUNT_MAX;
/// Largest replication factor and quorum accepted.
pub const REPLICAS_MAX: u8 = 8;
/// Longest pacing delay, in milliseconds.
pub const PACING_MS_MAX: u32 = 60_000;

/// Everything that defines a job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JobSpec {
    /// What to compute; fixes the task count.
    pub kernel: Kernel,
    /// `r`: how many nodes hold each result's bytes.
    pub replication: u8,
    /// `q`: how many distinct nodes must report the same result hash before a task is
    /// done. With at most `q - 1` lying nodes no wrong result is accepted.
    pub quorum: u8,
    /// Delay after each task a node computes, so a live audience can follow.
    pub pacing_ms: u32,
    /// Who submitted it.
    pub submitter: NodeId,
    /// Lets one submitter run the same kernel twice as two jobs.
    pub nonce: u64,
}

/// Why a spec was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JobError {
    #[error("bad kernel parameters: {0}")]
    Kernel(#[from] KernelError),
    #[error("a job must have between 1 and {TASKS_MAX} tasks, this one has {0}")]
    Tasks(u32),
    #[error("replication and quorum must be between 1 and {REPLICAS_MAX}")]
    Replicas,
    #[error("pacing of {0} ms is over the {PACING_MS_MAX} ms limit")]
    Pacing(u32),
}

impl JobSpec {
    /// The job's id: a hash of its encoded spec.
    pub fn id(&self) -> JobId {
        // postcard of these plain types cannot fail.
        let bytes = postcard::to_allocvec(self).unwrap_or_default();
        JobId(content_hash(&bytes))
    }

    /// Number of tasks.
    pub fn tasks(&self) -> u32 {
        self.kernel.task_count()
    }

    /// Checks a spec that may have come from the network.
    pub fn validate(&self) -> Result<(), JobError> {
        self.kernel.validate()?;
        let n = self.kernel.task_count();
        if n == 0 || n > TASKS_MAX {
            return Err(JobError::Tasks(n));
        }
        if !(1..=REPLICAS_MAX).contains(&self.replication)
            || !(1..=REPLICAS_MAX).contains(&self.quorum)
        {
            return Err(JobError::Replicas);
        }
        if self.pacing_ms > PACING_MS_MAX {
            return Err(JobError::Pacing(self.pacing_ms));
        }
        Ok(())
    }
}
