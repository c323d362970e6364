//! Jobs: what a job is, how it is named, and the ids that name its parts.
//!
//! A job is a [`JobSpec`]: a kernel with its parameters (which fix the task count), the
//! replication factor `r`, the quorum `q` and a pacing delay. Its [`JobId`] is a hash of
//! the spec's bytes, submitter and nonce included, so a spec relayed by any node can be
//! checked against its id and cannot be altered on the way.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::kernels::{Kernel, KernelError};

/// The hash that names results and job specs: the first 8 bytes of BLAKE3.
///
/// Not the kernels' fast `hash64`: once a quorum validated a hash, result bytes are
/// accepted on that hash alone, so it must resist a liar crafting other bytes with the
/// same value (XXH64 does not; a second preimage of a 64-bit prefix of a cryptographic
/// hash costs about 2^64 work). BLAKE3 rather than SHA-256: every result is hashed by
/// its author and again by every node that takes its bytes, on the same cores as the
/// computation, and BLAKE3 is 4.8 times faster here (9.7 GB/s against SHA-256's 2.0 on
/// 64 KiB, with the CPU's SHA instructions; wasm has no such instructions, and BLAKE3
/// uses its 128-bit SIMD there). The same bytes give the same value on every target.
pub fn content_hash(bytes: &[u8]) -> u64 {
    let digest = blake3::hash(bytes);
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest.as_bytes()[..8]);
    u64::from_le_bytes(first)
}

/// The hash that names task `task`'s result `output` in the engine: its
/// [`content_hash`] for kernels without previews; for image kernels, that hash sealed
/// with its preview's ([`sealed_hash`]), so that a quorum on it vouches for the preview
/// too (see [`crate::kernels::preview`]). Always computed from the canonical,
/// uncompressed bytes.
pub fn result_hash(kernel: &Kernel, task: TaskId, output: &[u8]) -> u64 {
    let full = content_hash(output);
    match kernel.preview(task.0, output) {
        Some(preview) => sealed_hash(full, content_hash(&preview)),
        None => full,
    }
}

/// The [`result_hash`] of an image result whose bytes hash to `full` and whose preview
/// hashes to `preview`: what a watcher checks a preview against.
pub fn sealed_hash(full: u64, preview: u64) -> u64 {
    let mut both = [0u8; 16];
    both[..8].copy_from_slice(&full.to_le_bytes());
    both[8..].copy_from_slice(&preview.to_le_bytes());
    content_hash(&both)
}

/// A node of the compute mesh. In a live mesh it is derived from the signaling peer id
/// ([`crate::node::node_id`]); the simulator numbers its nodes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeId(pub u64);

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
/// Largest output of one task, in bytes: every result crosses data channels in chunks
/// and is held by `r` nodes, so a bigger job takes more, smaller tasks (for an image:
/// more tiles; 1 MiB is a 512 × 512 tile).
pub const TASK_OUTPUT_LEN_MAX: usize = 1 << 20;

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
    #[error(
        "quorum {quorum} is over the replication {replication}: a result needs as many copies as matching reports"
    )]
    QuorumOverReplicas { quorum: u8, replication: u8 },
    #[error(
        "one task's output would be {0} bytes, over the {TASK_OUTPUT_LEN_MAX}-byte limit: split the job into more tasks (tiles)"
    )]
    TaskTooBig(usize),
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
        if self.quorum > self.replication {
            return Err(JobError::QuorumOverReplicas {
                quorum: self.quorum,
                replication: self.replication,
            });
        }
        if self.pacing_ms > PACING_MS_MAX {
            return Err(JobError::Pacing(self.pacing_ms));
        }
        let len = self.kernel.task_output_len_max();
        if len > TASK_OUTPUT_LEN_MAX {
            return Err(JobError::TaskTooBig(len));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{mandelbrot, monte_carlo};

    fn spec(kernel: Kernel, replication: u8, quorum: u8) -> JobSpec {
        JobSpec {
            kernel,
            replication,
            quorum,
            pacing_ms: 0,
            submitter: NodeId(1),
            nonce: 0,
        }
    }

    fn pi() -> Kernel {
        Kernel::MonteCarloPi(monte_carlo::Params::default())
    }

    fn image(tiles: u32) -> Kernel {
        Kernel::Mandelbrot(mandelbrot::Params {
            width: 2048,
            height: 2048,
            tiles_x: tiles,
            tiles_y: tiles,
            ..mandelbrot::Params::default()
        })
    }

    #[test]
    fn every_bound_of_a_spec_is_checked() {
        assert_eq!(spec(pi(), 2, 2).validate(), Ok(()));
        assert_eq!(spec(pi(), 0, 1).validate(), Err(JobError::Replicas));
        assert_eq!(spec(pi(), 2, 0).validate(), Err(JobError::Replicas));
        assert_eq!(
            spec(pi(), REPLICAS_MAX + 1, 1).validate(),
            Err(JobError::Replicas)
        );
        assert_eq!(
            spec(pi(), 1, 2).validate(),
            Err(JobError::QuorumOverReplicas {
                quorum: 2,
                replication: 1
            })
        );
        let mut paced = spec(pi(), 1, 1);
        paced.pacing_ms = PACING_MS_MAX + 1;
        assert_eq!(paced.validate(), Err(JobError::Pacing(PACING_MS_MAX + 1)));
        // 2048² in 2 × 2 tiles: 1024² pixels of a byte, exactly the limit; one tile is
        // over.
        assert_eq!(spec(image(2), 1, 1).validate(), Ok(()));
        assert_eq!(
            spec(image(1), 1, 1).validate(),
            Err(JobError::TaskTooBig(4 * TASK_OUTPUT_LEN_MAX))
        );
    }
}
