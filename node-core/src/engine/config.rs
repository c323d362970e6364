//! The engine's tunables and its fixed bounds.

/// Tunables. Defaults suit a LAN mesh of up to a few dozen nodes.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Tasks computed at once (the cores given to the mesh).
    pub slots: usize,
    /// Tasks handed out beyond `slots`, for jobs without pacing (a presenter's pause
    /// and steps bound what starts as before), so that a compute thread has its next task when it finishes
    /// one: natively the hash, the run loop's round trip and a thread's wake-up left
    /// each worker idle between tasks, a fifth of the time on millisecond tiles. Such a
    /// task is claimed (and reported started) when handed out, at most one task's time
    /// before it runs; paced jobs, which people watch, never have one.
    pub ahead: usize,
    /// New facts are batched this long before they are broadcast (a claim goes out at
    /// once: another node that has not heard of it may start the same task).
    pub flush_ms: u64,
    /// Digests, store and fetch retries and backups are looked at this often.
    pub sync_ms: u64,
    /// A task claimed this long ago without a result may get a speculative backup.
    pub straggler_ms: u64,
    /// A claim this old without a report no longer counts as work in flight (the
    /// claimer may be silent on purpose); others then compute the task.
    pub claim_expire_ms: u64,
    /// An idle node steals only once a job is this old here, so that owners' claims
    /// have had time to arrive (otherwise every idle node grabs the same first tasks).
    /// A node measuring its peers' round trips lowers it to a few of the slowest
    /// (`node::steal_grace_ms`); this is the most it waits.
    pub steal_after_ms: u64,
    /// A fetch unanswered this long is asked of another holder.
    pub fetch_timeout_ms: u64,
    /// A stored copy not confirmed this long is sent again.
    pub store_retry_ms: u64,
    /// Jobs kept at once; finished jobs are dropped first to make room. Peers' jobs
    /// leave one place free for this node's own.
    pub jobs_max: usize,
    /// Unfinished jobs of one submitter (other than this node) kept at once.
    pub jobs_per_submitter_max: usize,
    /// Distinct authors of facts per job.
    pub authors_max: usize,
    /// Facts per message.
    pub facts_per_msg_max: usize,
    /// Fetches in flight per job.
    pub fetches_max: usize,
    /// Result bytes sent to one peer in answer to its fetches per sync interval.
    pub served_bytes_per_sync_max: usize,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            slots: 1,
            ahead: 0,
            flush_ms: 5,
            sync_ms: 500,
            straggler_ms: 2_000,
            claim_expire_ms: 10_000,
            steal_after_ms: 200,
            fetch_timeout_ms: 1_000,
            store_retry_ms: 1_000,
            jobs_max: 16,
            jobs_per_submitter_max: 4,
            authors_max: 256,
            facts_per_msg_max: 512,
            fetches_max: 64,
            served_bytes_per_sync_max: 64 << 20,
        }
    }
}

/// Retired (cancelled or evicted) job ids remembered, and unknown job ids whose spec
/// was asked for, each at most this many.
pub(super) const RETIRED_MAX: usize = 64;
/// Times a stored copy is sent again before its holder is given up on.
pub(super) const STORE_TRIES_MAX: u32 = 10;
/// Steal candidates a thief chooses among while they are plenty.
pub(super) const STEAL_CHOICES: usize = 32;
/// Sync intervals per turn of re-replication: each live holder of a result takes one
/// turn at copying it to holders that lack it.
pub(super) const TURN_SYNCS: u64 = 2;
