//! `cargo xtask bench kernels`: every kernel natively, in wasm inside a headless Chromium
//! compute worker, and prime counting in `primesieve` on one thread, in one run.
//!
//! - Natively: `cargo bench -p node-core --bench kernels` (release, one core): each
//!   kernel's first call and warm time.
//! - In wasm: the page at `?bench=kernels` (`web-ui/src/bench.rs`) times the same work in
//!   one compute worker, first task and warm, inside a network namespace of its own
//!   (`tests/e2e/worker_bench.mjs`); needs root and Chromium, else the rows say skipped.
//!   Mandelbrot's plain scalar loop runs in the worker too (a request that asks for it).
//! - `primesieve LO HI --threads=1 --time` over each prime case's numbers, best of three,
//!   where it is installed.
//!
//! Prints one table with the ratios (wasm speed over native, first task over warm, our
//! time over primesieve's) and whether wasm and native produced the same bytes, then
//! Mandelbrot's lanes over its scalar loop, and writes it all as JSON to
//! `bench-kernels.json` in the target directory.

use std::path::Path;
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

use crate::bench::{build_release, last_json, node_in_netns};

fn native(root: &Path) -> Result<Value> {
    let out = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["bench", "-p", "node-core", "--bench", "kernels"])
        .current_dir(root)
        .stderr(Stdio::inherit())
        .output()
        .context("run the native kernels benchmark")?;
    if !out.status.success() {
        bail!("the native kernels benchmark failed");
    }
    last_json(&String::from_utf8_lossy(&out.stdout)).context("no JSON from the native benchmark")
}

/// primesieve's best time of three counting the primes in `[lo, hi)` on one thread, in ms.
fn primesieve_ms(lo: u64, hi: u64) -> Option<f64> {
    (0..3)
        .filter_map(|_| {
            let out = Command::new("primesieve")
                .args([
                    &lo.to_string(),
                    &(hi - 1).to_string(),
                    "--threads=1",
                    "--time",
                ])
                .stderr(Stdio::null())
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&out.stdout);
            let secs: f64 = text
                .lines()
                .find_map(|l| l.strip_prefix("Seconds:"))?
                .trim()
                .parse()
                .ok()?;
            Some(secs * 1000.0)
        })
        .min_by(f64::total_cmp)
}

pub fn run(root: &Path) -> Result<()> {
    let native = native(root)?;
    let bin = build_release(root)?;
    let dist = root.join("dist");
    let wasm = if !Path::new("/usr/bin/chromium").exists() {
        json!({"skipped": "needs /usr/bin/chromium"})
    } else {
        let envs = [
            ("MESHWORK_BIN", bin.display().to_string()),
            ("MESHWORK_DIST", dist.display().to_string()),
            ("BENCH", "kernels".to_string()),
        ];
        node_in_netns(root, &root.join("tests/e2e/worker_bench.mjs"), &envs)
            .unwrap_or_else(|e| json!({"skipped": e}))
    };
    let find = |doc: &Value, name: &str| -> Option<Value> {
        doc["kernels"]
            .as_array()?
            .iter()
            .find(|k| k["name"] == name)
            .cloned()
    };
    let mut rows = Vec::new();
    println!();
    println!(
        "  {:<30} {:>17} {:>17} {:>11} {:>11} {:>6} {:>22}",
        "kernel",
        "native first/warm",
        "wasm first/warm",
        "wasm speed",
        "first/warm",
        "bytes",
        "vs primesieve (nat/wasm)"
    );
    for k in native["kernels"].as_array().into_iter().flatten() {
        let name = k["name"].as_str().unwrap_or_default();
        let (nf, nw) = (k["first_ms"].as_f64(), k["warm_ms"].as_f64());
        let w = find(&wasm, name);
        let (wf, ww) = (
            w.as_ref().and_then(|w| w["first_ms"].as_f64()),
            w.as_ref().and_then(|w| w["warm_ms"].as_f64()),
        );
        let same = w.as_ref().map(|w| w["hash"] == k["hash"]);
        let range = k["range"]
            .as_array()
            .and_then(|r| Some((r.first()?.as_u64()?, r.get(1)?.as_u64()?)))
            .filter(|(lo, hi)| hi > lo);
        let ps = range.and_then(|(lo, hi)| primesieve_ms(lo, hi));
        let fmt = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) => format!("{a:.0} / {b:.0} ms"),
            _ => "skipped".into(),
        };
        let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
            (Some(a), Some(b)) if b > 0.0 => Some(a / b),
            _ => None,
        };
        let speed = ratio(nw, ww);
        let first_over_warm = ratio(ww, wf);
        let vs_ps = match ps {
            Some(ps) => format!(
                "{ps:.0} ms: {} / {}",
                ratio(nw, Some(ps)).map_or("–".into(), |r| format!("{r:.2}x")),
                ratio(ww, Some(ps)).map_or("–".into(), |r| format!("{r:.2}x"))
            ),
            None if range.is_some() => "skipped (no primesieve)".into(),
            None => String::new(),
        };
        println!(
            "  {name:<30} {:>17} {:>17} {:>11} {:>11} {:>6} {vs_ps:>22}",
            fmt(nf, nw),
            fmt(wf, ww),
            speed.map_or("–".into(), |r| format!("{r:.2}x")),
            first_over_warm.map_or("–".into(), |r| format!("{r:.2}x")),
            match same {
                Some(true) => "same",
                Some(false) => "DIFFER",
                None => "–",
            },
        );
        rows.push(json!({
            "kernel": name,
            "native_first_ms": nf, "native_warm_ms": nw,
            "wasm_first_ms": wf, "wasm_warm_ms": ww,
            "wasm_speed_over_native": speed, "wasm_first_speed_over_warm": first_over_warm,
            "same_bytes": same,
            "primesieve_ms": ps,
        }));
    }
    if let Some(why) = wasm["skipped"].as_str().or(wasm["error"].as_str()) {
        println!("  wasm rows skipped: {why}");
    }
    // The lanes against the plain scalar loop, natively and in wasm.
    let warm = |kernel: &str, key: &str| {
        rows.iter()
            .find(|r| r["kernel"] == kernel)
            .and_then(|r| r[key].as_f64())
    };
    let lanes = "mandelbrot 1024x1024 1000 it";
    let scalar = "mandelbrot, plain scalar loop";
    let mut speedups = json!({});
    for (place, key) in [("native", "native_warm_ms"), ("wasm", "wasm_warm_ms")] {
        if let (Some(l), Some(s)) = (warm(lanes, key), warm(scalar, key)) {
            println!(
                "  Mandelbrot lanes over the plain scalar loop, {place}: {:.2}x",
                s / l
            );
            speedups[place] = json!(s / l);
        }
    }
    // wasm's simd128 against native lanes of the same width (SSE2): the comparison of
    // code, not of vector hardware (the CPU's AVX-512 has four times the lanes).
    let same_width = "mandelbrot, 128-bit lanes";
    if let (Some(n), Some(w)) = (
        warm(same_width, "native_warm_ms"),
        warm(lanes, "wasm_warm_ms"),
    ) {
        println!(
            "  Mandelbrot in wasm (simd128) against native lanes of the same width (SSE2): {:.2}x (goal ≥ 0.95x)",
            n / w
        );
        speedups["wasm_over_native_same_width"] = json!(n / w);
    }
    println!(
        "  goals: wasm ≥ 0.95x native warm, a worker's first task ≥ 0.7x warm; π(10^9) ≤ 1.2x primesieve natively, ≤ 1.5x in wasm, π(10^10) and up ≤ 1.3x natively; Mandelbrot ≤ 170 ms natively, lanes ≥ 3x the scalar loop natively, ≥ 2.5x in wasm"
    );
    let target = crate::bench::target_dir(root);
    let out = target.join("bench-kernels.json");
    let doc = json!({
        "rows": rows,
        "mandelbrot_lanes_over_scalar": speedups,
        "chromium": wasm["chromium"],
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc)?)?;
    println!("\n  written to {}", out.display());
    Ok(())
}
