//! The kernels natively, for `cargo xtask bench kernels` (which runs this in a release
//! build and puts its figures beside the same kernels in wasm in a Chromium worker and
//! primesieve's): each case's first call and warm time (median of the following runs)
//! on one core. Prints one JSON object as its last line; asserts nothing.

use std::time::Instant;

/// Runs per kernel: the first call, then warm ones.
const RUNS: usize = 5;

fn main() {
    let mut rows = Vec::new();
    for case in node_core::kernels::bench::single_task_cases() {
        let mut times = Vec::with_capacity(RUNS);
        let mut hash = 0;
        let mut out = Vec::new();
        for _ in 0..RUNS {
            let t = Instant::now();
            case.run(&mut out)
                .expect("the benchmark's kernels are valid");
            times.push(t.elapsed().as_secs_f64() * 1000.0);
            hash = node_core::job::content_hash(&out);
        }
        let mut warm = times[1..].to_vec();
        warm.sort_by(f64::total_cmp);
        let warm = warm[warm.len() / 2];
        let name = case.name;
        eprintln!(
            "{name:<32} first {:>8.1} ms   warm {warm:>8.1} ms",
            times[0]
        );
        let range = case.primes_range().map_or(String::new(), |(lo, hi)| {
            format!(", \"range\": [{lo}, {hi}]")
        });
        rows.push(format!(
            "{{\"name\": \"{name}\", \"first_ms\": {:.1}, \"warm_ms\": {warm:.1}, \"hash\": \"{hash:016x}\"{range}}}",
            times[0]
        ));
    }
    println!("{{\"kernels\": [{}]}}", rows.join(", "));
}
