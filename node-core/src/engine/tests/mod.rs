//! Unit tests of the engine's edges, by concern. The simulator
//! (`node-core/tests/sim.rs`) covers the distributed behaviour.

mod gossip;
mod hostile;
mod lifecycle;
mod recovery;
mod verdicts;
mod watch;

use super::*;
use crate::kernels::{Kernel, monte_carlo};

fn kernel(tasks: u32) -> Kernel {
    Kernel::MonteCarloPi(monte_carlo::Params {
        samples_per_task: 10,
        tasks,
        seed: 1,
    })
}

/// Node `me` computing `slots` tasks at once, with `peers` up.
fn node_with(me: u64, slots: usize, peers: impl IntoIterator<Item = u64>) -> Engine {
    let config = EngineConfig {
        slots,
        ..EngineConfig::default()
    };
    let mut e = Engine::new(NodeId(me), config, me, Millis(0));
    for p in peers {
        e.handle_input(Millis(0), Input::PeerUp(NodeId(p)));
    }
    e
}

/// Node `me`, which computes nothing, with `peers` up.
fn watcher(me: u64, peers: &[u64]) -> Engine {
    node_with(me, 0, peers.iter().copied())
}

fn drain(e: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output()).collect()
}

/// Computes every task `e` hands out for `job` (and those it hands out next), the
/// n-th finishing at `start + n * step` ms; how many, and the last time.
fn compute_handed_out(e: &mut Engine, job: JobId, start: u64, step: u64) -> (u32, u64) {
    let (mut count, mut now) = (0, start);
    loop {
        let runs: Vec<(TaskId, Kernel)> = drain(e)
            .into_iter()
            .filter_map(|o| match o {
                Output::RunTask { task, kernel, .. } => Some((task, kernel)),
                _ => None,
            })
            .collect();
        if runs.is_empty() {
            return (count, now);
        }
        for (task, kernel) in runs {
            let mut output = Vec::new();
            kernel.run_task(task.0, &mut output).expect("valid");
            now += step;
            count += 1;
            e.handle_input(Millis(now), Input::ComputeFinished { job, task, output });
        }
    }
}

fn submit(e: &mut Engine, tasks: u32, pacing_ms: u32) -> JobId {
    e.handle_input(
        Millis(0),
        Input::Command(Command::Submit {
            kernel: kernel(tasks),
            replication: 1,
            quorum: 1,
            pacing_ms,
            nonce: 7,
        }),
    );
    e.job_ids().next().expect("job accepted")
}

/// Submits `kernel` as this node's job (`r`, `q`, no pacing, `nonce`) at `at`.
fn submit_kernel(e: &mut Engine, at: u64, kernel: Kernel, r: u8, q: u8, nonce: u64) {
    e.handle_input(
        Millis(at),
        Input::Command(Command::Submit {
            kernel,
            replication: r,
            quorum: q,
            pacing_ms: 0,
            nonce,
        }),
    );
}

/// Peer `submitter`'s job (`r`, `q`, `pacing_ms`, nonce 0), sent by it at `at`; its id.
fn peer_job(
    e: &mut Engine,
    at: u64,
    submitter: u64,
    kernel: Kernel,
    r: u8,
    q: u8,
    pacing_ms: u32,
) -> JobId {
    let spec = crate::job::JobSpec {
        kernel,
        replication: r,
        quorum: q,
        pacing_ms,
        submitter: NodeId(submitter),
        nonce: 0,
    };
    send_job(e, at, spec)
}

/// `spec`, sent by its submitter at `at`; its id.
fn send_job(e: &mut Engine, at: u64, spec: JobSpec) -> JobId {
    let id = spec.id();
    e.handle_input(
        Millis(at),
        Input::Message {
            from: spec.submitter,
            msg: EngineMsg::Job { spec },
        },
    );
    id
}

/// `spec` with the first nonce from its own up whose job id meets `ok`. Placement
/// follows from the id (a hash), so a test that needs a task placed somewhere in
/// particular asks for it here instead of relying on what one nonce happens to give.
fn spec_where(mut spec: JobSpec, ok: impl Fn(JobId) -> bool) -> JobSpec {
    let from = spec.nonce;
    while !ok(spec.id()) {
        spec.nonce += 1;
        assert!(
            spec.nonce < from + 10_000,
            "no nonce gives the placement asked"
        );
    }
    spec
}

/// Whether `node` ranks first for `task` of `job` among `members`.
fn ranks_first(job: JobId, task: u32, node: u64, members: &[u64]) -> bool {
    let score = |n: u64| placement::score(job, TaskId(task), NodeId(n));
    members.iter().all(|&m| m == node || score(m) < score(node))
}

/// Node `from` says, at `at`, that it reported and holds result `bytes[t]` of every
/// task `t` of `job`.
fn report_and_hold(e: &mut Engine, at: u64, from: u64, job: JobId, bytes: &[Vec<u8>]) {
    use crate::wire::{Fact, TaskFact};
    let facts = bytes
        .iter()
        .enumerate()
        .flat_map(|(t, b)| {
            let h = hash_of(e, job, t as u32, b);
            [Fact::Report(h), Fact::Holding(h)].map(|fact| TaskFact {
                task: TaskId(t as u32),
                fact,
            })
        })
        .collect();
    e.handle_input(
        Millis(at),
        Input::Message {
            from: NodeId(from),
            msg: EngineMsg::Facts { job, facts },
        },
    );
}

/// The hash the engine names task `task`'s result `bytes` by in `job`
/// ([`crate::job::result_hash`]: sealed with the preview's for an image).
fn hash_of(e: &Engine, job: JobId, task: u32, bytes: &[u8]) -> u64 {
    let spec = e.job_spec(job).expect("job known");
    crate::job::result_hash(&spec.kernel, TaskId(task), bytes)
}

fn dropped(out: &[Output]) -> Vec<DropReason> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Dropped { why, .. }) => Some(*why),
            _ => None,
        })
        .collect()
}
