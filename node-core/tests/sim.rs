//! The deterministic simulator's tests: many engines in one thread on virtual time, a
//! seeded network that loses, duplicates, delays and reorders messages, partitions that
//! heal, crashes, restarts, joins mid-job and lying nodes, with invariants checked after
//! every step (see `simulator/mod.rs`).
//!
//! `cargo test` runs `SIM_SEEDS` seeds (default 500); a failure prints its seed, and
//! `SIM_SEED=<n> cargo test -p node-core --test sim -- --nocapture` replays it exactly
//! with a trace. `cargo xtask soak` runs 100,000.

mod simulator;

use std::collections::{BTreeMap, BTreeSet};

use node_core::engine::{Command, Engine, EngineConfig, Event, Input, Millis, Output};
use node_core::job::{NodeId, TaskId};
use node_core::kernels::{Kernel, monte_carlo};
use node_core::wire::EngineMsg;
use simulator::Sim;

fn run_seed(seed: u64) -> Sim {
    let mut sim = Sim::new(seed);
    if sim.trace {
        println!("seed {seed}: {:?}", sim.sc);
    }
    sim.run();
    // `run` returns once node 0 has its output; check it once more here, apart from
    // the checker that watched it arrive.
    assert_eq!(
        sim.assembled.as_ref(),
        Some(&sim.reference),
        "seed {seed}: node 0's output"
    );
    sim
}

#[test]
fn simulated_meshes_stay_safe_and_live() {
    let seeds = simulator::seeds_from_env("SIM", 500);
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(seeds.len().max(1));
    let chunks: Vec<Vec<u64>> = (0..threads)
        .map(|t| seeds.iter().copied().skip(t).step_by(threads).collect())
        .collect();
    type Totals = (u64, u64, u64, BTreeMap<&'static str, u64>, f64);
    let results: Vec<Totals> = std::thread::scope(|s| {
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| {
                s.spawn(move || {
                    let (mut sim_ms, mut steps, mut used) = (0, 0, 0f64);
                    let mut counts = BTreeMap::new();
                    for seed in &chunk {
                        let sim = run_seed(*seed);
                        sim_ms += sim.now;
                        steps += sim.steps;
                        let took = sim
                            .done_at
                            .unwrap_or(sim.now)
                            .saturating_sub(sim.faults_end);
                        used = used.max(took as f64 / sim.liveness_bound_ms() as f64);
                        for (k, v) in sim.counts {
                            *counts.entry(k).or_insert(0) += v;
                        }
                    }
                    (chunk.len() as u64, sim_ms, steps, counts, used)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    });
    let runs: u64 = results.iter().map(|r| r.0).sum();
    let sim_ms: u64 = results.iter().map(|r| r.1).sum();
    let steps: u64 = results.iter().map(|r| r.2).sum();
    let mut counts: BTreeMap<&'static str, u64> = BTreeMap::new();
    for r in &results {
        for (k, v) in &r.3 {
            *counts.entry(k).or_insert(0) += v;
        }
    }
    println!(
        "simulator: {runs} seeds, {steps} steps, {:.0} s of simulated time",
        sim_ms as f64 / 1000.0
    );
    println!("simulator paths: {counts:?}");
    let used = results.iter().map(|r| r.4).fold(0.0, f64::max);
    println!(
        "simulator: the slowest run took {:.0} % of its liveness bound after its last fault",
        used * 100.0
    );
    // Rare paths (a flood, a fake holder) show up in about one seed in a hundred, so
    // coverage is asserted over a run of at least 500 seeds (the default); a replay of
    // fewer seeds says so.
    if seeds.len() < 500 {
        println!("coverage not asserted: {runs} seeds < 500");
    } else {
        // The scenarios must reach every recovery path, or the invariants prove little.
        for path in [
            "assigned",
            "helped",
            "stolen",
            "speculative",
            "recomputed",
            "mismatch",
            "liar marked",
            "replicated",
            "holder lost",
            "silent claimer",
            "fake holder",
            "job flood",
            "assembled elsewhere",
            "fetch flood",
            "junk pushed",
            "went silent",
            "copies checked",
            "work checked",
            "authors capped",
            "front run",
            "store flood",
            "previews checked",
            "watcher complete",
            "requests deferred",
        ] {
            assert!(
                counts.get(path).is_some_and(|n| *n > 0),
                "no seed exercised {path:?}: {counts:?}"
            );
        }
    }
}

#[test]
fn membership_disagreement_is_safe() {
    // Two nodes that never hear of each other still validate consistently through a
    // third: checked by the invariants in every seed; here a direct small case, where
    // the third node lies, so that two hashes are reported for every task.
    let kernel = Kernel::MonteCarloPi(monte_carlo::Params {
        samples_per_task: 100,
        tasks: 8,
        seed: 3,
    });
    let ids = [NodeId(1), NodeId(2), NodeId(3)];
    let mut engines: Vec<Engine> = ids
        .iter()
        .map(|id| Engine::new(*id, EngineConfig::default(), id.0, Millis(0)))
        .collect();
    // 1 knows 2 and 3; 2 and 3 know only 1.
    engines[0].handle_input(Millis(0), Input::PeerUp(ids[1]));
    engines[0].handle_input(Millis(0), Input::PeerUp(ids[2]));
    engines[1].handle_input(Millis(0), Input::PeerUp(ids[0]));
    engines[2].handle_input(Millis(0), Input::PeerUp(ids[0]));
    engines[0].handle_input(
        Millis(0),
        Input::Command(Command::Submit {
            kernel: kernel.clone(),
            replication: 2,
            quorum: 2,
            pacing_ms: 0,
            nonce: 1,
        }),
    );
    let mut now = 0;
    let mut inbox: Vec<(usize, NodeId, EngineMsg)> = Vec::new();
    let mut done = false;
    let mut validated: BTreeMap<TaskId, BTreeSet<u64>> = BTreeMap::new();
    for _ in 0..10_000 {
        for i in 0..3 {
            while let Some(out) = engines[i].poll_output() {
                match out {
                    Output::Send { to, msg } => {
                        let t = ids.iter().position(|x| *x == to).expect("known");
                        inbox.push((t, ids[i], msg));
                    }
                    Output::Broadcast { msg } => {
                        for p in engines[i].peers().collect::<Vec<_>>() {
                            let t = ids.iter().position(|x| *x == p).expect("known");
                            inbox.push((t, ids[i], msg.clone()));
                        }
                    }
                    Output::RunTask { job, task, kernel } => {
                        let mut out = Vec::new();
                        kernel.run_task(task.0, &mut out).expect("valid");
                        if i == 2 {
                            out[0] ^= 0xff;
                        }
                        engines[i].handle_input(
                            Millis(now),
                            Input::ComputeFinished {
                                job,
                                task,
                                output: out,
                            },
                        );
                    }
                    Output::Event(Event::TaskValidated { task, hash, .. }) => {
                        validated.entry(task).or_default().insert(hash);
                    }
                    Output::Event(Event::JobDone { output, .. }) => {
                        assert_eq!(output, kernel.run_all().expect("valid"));
                        done = true;
                    }
                    Output::Event(_) => {}
                }
            }
        }
        if done {
            break;
        }
        now += 5;
        for (t, from, msg) in std::mem::take(&mut inbox) {
            engines[t].handle_input(Millis(now), Input::Message { from, msg });
        }
        for e in engines.iter_mut() {
            if e.poll_timeout().is_some_and(|t| t.0 <= now) {
                e.handle_input(Millis(now), Input::Timeout);
            }
        }
    }
    assert!(done, "the job completes");
    for (task, hashes) in &validated {
        let mut truth = Vec::new();
        kernel.run_task(task.0, &mut truth).expect("valid");
        assert_eq!(
            hashes,
            &BTreeSet::from([node_core::job::result_hash(&kernel, *task, &truth)]),
            "one hash, the true one, for {task} everywhere"
        );
    }
    assert_eq!(validated.len(), 8, "every task validated somewhere");
}

/// The prime-count job through a simulated mesh of five nodes with loss and a crash
/// reproduces the published values of π(10^k), which nobody here computed.
#[test]
fn prime_count_jobs_reproduce_published_values() {
    use node_core::kernels::{JobOutput, primes};
    use simulator::{Fault, Rng, Scenario};
    // π(10^k), k = 1..=7 (OEIS A006880).
    let published = [4u64, 25, 168, 1_229, 9_592, 78_498, 664_579];
    for (k, want) in published.iter().enumerate() {
        let n = 10u64.pow(k as u32 + 1);
        let sc = Scenario {
            nodes: 5,
            kernel: Kernel::Primes(primes::Params { n, ranges: 7 }),
            replication: 2,
            quorum: 2,
            liars: 1,
            silent: 0,
            fake_holders: 0,
            flooders: 0,
            forgers: 0,
            mutes: 0,
            front_runners: 0,
            authors_max: 256,
            loss: 0.05,
            dup: 0.05,
            latency_ms: (1, 20),
            faults: vec![(300, Fault::Crash(3))],
            task_ms: (5, 50),
            stragglers: 0,
            tight_servers: true,
            submit_at_ms: Some(400),
        };
        let mut sim = Sim::with(k as u64, Rng(k as u64), sc);
        sim.run();
        let Some(JobOutput::Count { count, .. }) = sim.assembled.clone() else {
            panic!("π(10^{}) job produced {:?}", k + 1, sim.assembled);
        };
        assert_eq!(count, *want, "π(10^{})", k + 1);
    }
}
