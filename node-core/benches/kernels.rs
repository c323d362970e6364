//! The kernels natively, for `cargo xtask bench kernels` (which runs this in a release
//! build and puts its figures beside the same kernels in wasm in a Chromium worker and
//! primesieve's): each kernel's first call and warm time (median of the following
//! runs) on one core. Prints one JSON object as its last line; asserts nothing.

use std::time::Instant;

use node_core::kernels::{Kernel, mandelbrot, monte_carlo, primes};

/// Runs per kernel: the first call, then warm ones.
const RUNS: usize = 5;

/// The cases, as the worker page times them (`web-ui/src/bench.rs`, `?bench=kernels`).
fn cases() -> Vec<(&'static str, Kernel)> {
    vec![
        (
            "mandelbrot 1024x1024 1000 it",
            Kernel::Mandelbrot(mandelbrot::Params {
                tiles_x: 1,
                tiles_y: 1,
                ..mandelbrot::Params::default()
            }),
        ),
        (
            "primes pi(10^8)",
            Kernel::Primes(primes::Params {
                n: 100_000_000,
                ranges: 1,
            }),
        ),
        (
            "primes pi(10^9)",
            Kernel::Primes(primes::Params {
                n: 1_000_000_000,
                ranges: 1,
            }),
        ),
        (
            "monte carlo 10M samples",
            Kernel::MonteCarloPi(monte_carlo::Params {
                samples_per_task: 10_000_000,
                tasks: 1,
                seed: 7,
            }),
        ),
    ]
}

fn main() {
    let mut rows = Vec::new();
    for (name, kernel) in cases() {
        let mut times = Vec::with_capacity(RUNS);
        let mut hash = 0;
        for _ in 0..RUNS {
            let t = Instant::now();
            let mut out = Vec::new();
            kernel
                .run_task(0, &mut out)
                .expect("the benchmark's kernels are valid");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            hash = node_core::job::content_hash(&out);
        }
        let mut warm = times[1..].to_vec();
        warm.sort_by(f64::total_cmp);
        let warm = warm[warm.len() / 2];
        eprintln!(
            "{name:<32} first {:>8.1} ms   warm {warm:>8.1} ms",
            times[0]
        );
        rows.push(format!(
            "{{\"name\": \"{name}\", \"first_ms\": {:.1}, \"warm_ms\": {warm:.1}, \"hash\": \"{hash:016x}\"}}",
            times[0]
        ));
    }
    println!("{{\"kernels\": [{}]}}", rows.join(", "));
}
