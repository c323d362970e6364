//! Unit tests of the engine's edges, by concern. The simulator
//! (`node-core/tests/sim.rs`) covers the distributed behaviour.

mod gossip;
mod hostile;
mod lifecycle;
mod recovery;

use super::*;
use crate::kernels::{Kernel, monte_carlo};

fn kernel(tasks: u32) -> Kernel {
    Kernel::MonteCarloPi(monte_carlo::Params {
        samples_per_task: 10,
        tasks,
        seed: 1,
    })
}

fn drain(e: &mut Engine) -> Vec<Output> {
    std::iter::from_fn(|| e.poll_output()).collect()
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

fn dropped(out: &[Output]) -> Vec<DropReason> {
    out.iter()
        .filter_map(|o| match o {
            Output::Event(Event::Dropped { why, .. }) => Some(*why),
            _ => None,
        })
        .collect()
}
