//! `cargo xtask bench engine` (= `cargo bench -p node-core --bench engine`): what the
//! engine costs and how fast the kernels run. Prints a table; asserts nothing.
//!
//! Engine cost per task is the wall time spent inside `handle_input` and `poll_output`
//! across all simulated nodes, divided by the job's tasks. The simulator's own work
//! (network, checkers) is not counted.

#[path = "../tests/simulator/mod.rs"]
mod simulator;

use std::time::Instant;

use node_core::kernels::{Kernel, mandelbrot, monte_carlo, primes};
use simulator::{Rng, Scenario, Sim};

struct Run {
    engine_us_per_task: f64,
    sim_s: f64,
    wall_s: f64,
    tasks_run: u64,
}

fn run(nodes: usize, tasks: u32, replication: u8, quorum: u8) -> Run {
    let sc = Scenario {
        nodes,
        kernel: Kernel::MonteCarloPi(monte_carlo::Params {
            samples_per_task: 8,
            tasks,
            seed: 1,
        }),
        replication,
        quorum,
        liars: 0,
        silent: 0,
        fake_holders: 0,
        flooders: 0,
        forgers: 0,
        mutes: 0,
        front_runners: 0,
        authors_max: 256,
        loss: 0.0,
        dup: 0.0,
        latency_ms: (1, 5),
        faults: Vec::new(),
        task_ms: (5, 15),
        stragglers: 0,
        tight_servers: false,
        // Once the mesh has formed (handshakes take at most 300 ms in the simulator).
        submit_at_ms: Some(400),
    };
    let mut sim = Sim::with(1, Rng(1), sc);
    let wall = Instant::now();
    sim.run();
    if std::env::var_os("BENCH_VERBOSE").is_some() {
        eprintln!("{nodes} nodes r={replication} q={quorum}: {:?}", sim.counts);
    }
    Run {
        engine_us_per_task: sim.engine_ns as f64 / 1000.0 / f64::from(tasks),
        sim_s: sim.now as f64 / 1000.0,
        wall_s: wall.elapsed().as_secs_f64(),
        tasks_run: sim.tasks_run(),
    }
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let out = f();
    (out, t.elapsed().as_secs_f64())
}

fn main() {
    // `cargo bench` passes --bench; `-- kernels` runs the kernels alone.
    if !std::env::args().any(|a| a == "kernels") {
        engine();
    }
    kernels();
}

fn engine() {
    println!("engine benchmark (release build, one thread)");
    println!("{}", "-".repeat(86));
    for nodes in [8, 64] {
        let r = run(nodes, 10_000, 1, 1);
        println!(
            "{nodes:>2} nodes, 10,000 tasks, r=1 q=1: engine {:.1} µs/task over all nodes = {:.2} µs per task per node (goal ≤ 5); \
             simulated {:.1} s, wall {:.2} s, {} computations ({:.1} % computed twice, goal ≤ 3)",
            r.engine_us_per_task,
            r.engine_us_per_task / nodes as f64,
            r.sim_s,
            r.wall_s,
            r.tasks_run,
            (r.tasks_run as f64 / 10_000.0 - 1.0) * 100.0
        );
    }
    let base = run(8, 10_000, 1, 1);
    let r2 = run(8, 10_000, 2, 1);
    // A quorum needs as many copies as matching reports (q ≤ r): q = 2 is measured
    // against q = 1 at r = 2.
    let q2 = run(8, 10_000, 2, 2);
    for (label, other, base, goal) in [
        (
            "r=2 vs r=1",
            &r2,
            &base,
            "goal ≤ 1.05: copies, not recomputation",
        ),
        ("r=q=2 vs r=2 q=1", &q2, &r2, "about 2x by design"),
    ] {
        println!(
            "{label} (8 nodes): tasks computed {} vs {} ({:.3}x, {goal}); engine time {:.2}x",
            other.tasks_run,
            base.tasks_run,
            other.tasks_run as f64 / base.tasks_run as f64,
            other.engine_us_per_task / base.engine_us_per_task
        );
    }
}

fn kernels() {
    println!();
    println!("kernels (native, one core)");
    println!("{}", "-".repeat(86));
    // The default parameters are the speed baseline: 1024×1024, 1000 iterations.
    let m = Kernel::Mandelbrot(mandelbrot::Params {
        tiles_x: 1,
        tiles_y: 1,
        ..mandelbrot::Params::default()
    });
    let (_, first) = time(|| m.run_all());
    let (_, warm) = time(|| m.run_all());
    println!(
        "mandelbrot 1024x1024, 1000 iter: {:.0} ms ({:.1} Mpixel/s), first call {:.0} ms",
        warm * 1000.0,
        1024.0 * 1024.0 / warm / 1e6,
        first * 1000.0
    );
    for (n, reference_ms) in [(100_000_000u64, 13.0), (1_000_000_000, 117.0)] {
        let k = Kernel::Primes(primes::Params { n, ranges: 1 });
        let (out, s) = time(|| k.run_all());
        println!(
            "primes π({n}) = {:?}: {:.0} ms, {:.0} M numbers/s ({:.2}x primesieve's {reference_ms} ms, goal ≤ 2)",
            out.map(|o| format!("{o:?}")).unwrap_or_default(),
            s * 1000.0,
            n as f64 / s / 1e6,
            s * 1000.0 / reference_ms
        );
    }
    let mc = Kernel::MonteCarloPi(monte_carlo::Params {
        samples_per_task: 10_000_000,
        tasks: 1,
        seed: 7,
    });
    let (_, s) = time(|| mc.run_all());
    println!(
        "monte carlo π, 10 M samples: {:.0} ms ({:.0} M samples/s)",
        s * 1000.0,
        10.0 / s
    );
}
