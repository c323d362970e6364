//! `cargo xtask bench scale`: jobs on a live native mesh against one process.
//!
//! Release builds of `meshwork` on loopback, every row measured in the same run: the
//! Mandelbrot job computed by `meshwork run --workers 1`, then by one and two native
//! nodes with one worker each (the speedup); `r = 2` and `q = 2` against `r = q = 1`;
//! one of four nodes killed mid-job; the same picture at 4096² on one and two nodes;
//! π(10^10) on two nodes against `primesieve -t2`;
//! one tile in wasm in a Chromium worker against the same tile natively.
//! Prints a table and writes it as JSON to `bench-scale.json` in the target directory.
//! Job times are from the submitter's `job_accepted` to its `job_done`.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench::{Proc, build_release, node, node_in_netns, server};

const IMAGE: &[&str] = &[
    "--kernel",
    "mandelbrot",
    "--width",
    "2048",
    "--height",
    "2048",
    "--max-iter",
    "1000",
    "--tiles",
    "16x16",
];
/// The same picture at four times the pixels (and bytes per tile).
const BIG: &[&str] = &[
    "--kernel",
    "mandelbrot",
    "--width",
    "4096",
    "--height",
    "4096",
    "--max-iter",
    "1000",
    "--tiles",
    "16x16",
];
const PRIMES: &[&str] = &[
    "--kernel",
    "primes",
    "--n",
    "10000000000",
    "--ranges",
    "256",
];

/// The Mandelbrot tile of the speed baseline (1024², 1000 iterations) in wasm in a
/// headless Chromium worker (`tests/e2e/worker_bench.mjs`, in a namespace) against the
/// same tile natively (the engine benchmark's kernels section, release build).
fn worker_tile(root: &Path, bin: &Path) -> (String, String) {
    let what =
        "Mandelbrot 1024², 1000 it, one tile: wasm in a Chromium worker vs native".to_string();
    let native = crate::cargo()
        .args([
            "bench",
            "-q",
            "-p",
            "node-core",
            "--bench",
            "engine",
            "--",
            "kernels",
        ])
        .current_dir(root)
        .output()
        .ok()
        .and_then(|o| {
            let text = String::from_utf8_lossy(&o.stdout).into_owned();
            // "mandelbrot 1024x1024, 1000 iter: 251 ms (4.2 Mpixel/s), first call 260 ms"
            let line = text
                .lines()
                .find(|l| l.starts_with("mandelbrot 1024x1024"))?;
            let ms = |after: &str| -> Option<f64> {
                let rest = &line[line.find(after)? + after.len()..];
                rest.split_whitespace().next()?.parse().ok()
            };
            Some((ms("1000 iter: ")?, ms("first call ")?))
        });
    let Some((native_warm, native_first)) = native else {
        return (
            what,
            "skipped: the engine benchmark printed no kernel line".into(),
        );
    };
    let script = root.join("tests/e2e/worker_bench.mjs");
    if !root.join("dist/index.html").exists() || !Path::new("/usr/bin/chromium").exists() {
        return (
            what,
            format!("native {native_warm:.0} ms; wasm skipped: needs dist/ and /usr/bin/chromium"),
        );
    }
    let envs = [
        ("MESHWORK_BIN", bin.display().to_string()),
        ("MESHWORK_DIST", root.join("dist").display().to_string()),
    ];
    match node_in_netns(root, &script, &envs) {
        Ok(v) if v["warm_ms"].as_f64().is_some() => {
            let (warm, first) = (
                v["warm_ms"].as_f64().unwrap_or(f64::NAN),
                v["first_ms"].as_f64().unwrap_or(f64::NAN),
            );
            (
                what,
                format!(
                    "warm {warm:.0} vs {native_warm:.0} ms ({:.2}×), first {first:.0} vs {native_first:.0} ms ({:.2}×)",
                    native_warm / warm,
                    native_first / first
                ),
            )
        }
        Ok(v) => (
            what,
            format!("native {native_warm:.0} ms; wasm failed: {v}"),
        ),
        Err(why) => (
            what,
            format!("native {native_warm:.0} ms; wasm skipped: {why}"),
        ),
    }
}

/// Seconds `meshwork run` takes for `job` on `workers` threads.
fn run_local(bin: &Path, job: &[&str], workers: usize, out: &Path) -> Result<f64> {
    let started = Instant::now();
    let status = Command::new(bin)
        .arg("run")
        .args(job)
        .args(["--workers", &workers.to_string(), "--out"])
        .arg(out)
        .stderr(std::process::Stdio::null())
        .status()?;
    if !status.success() {
        bail!("meshwork run failed");
    }
    Ok(started.elapsed().as_secs_f64())
}

/// A job submitted to a room of `nodes` other native nodes (one worker each; the
/// submitter computes too unless `nodes` > 0 and... it always does, with one worker).
struct Run {
    /// From the job's acceptance to its output, by the submitter's own clock (its
    /// `job_done` line's `assembled_ms`): the time this benchmark takes to read the
    /// lines of every process it runs is no part of it.
    secs: f64,
    /// The submitter's events, with when they were read.
    sub: Proc,
}

/// One job run: its room, how many other nodes are in it, the job and extra
/// arguments, and where its output goes.
struct Job<'a> {
    room: &'a str,
    others: usize,
    job: &'a [&'a str],
    extra: &'a [&'a str],
    out: &'a Path,
}

fn submit(
    bin: &Path,
    addr: &str,
    j: Job<'_>,
    mut mid_job: impl FnMut(&mut Vec<Proc>, &mut Proc) -> Result<()>,
) -> Result<Run> {
    let Job {
        room,
        others,
        job,
        extra,
        out,
    } = j;
    let mut nodes = (0..others)
        .map(|_| node(bin, addr, room, &["--workers", "1"]))
        .collect::<Result<Vec<_>>>()?;
    // Every node in the room before the submitter joins: one not yet there when it
    // hands the job out joins it late, and at q = 2 nothing validates before it does
    // (two nodes at r = q = 2 measured 1.00 s for 0.22 s).
    for p in nodes.iter_mut() {
        let deadline = Instant::now() + Duration::from_secs(60);
        while p.count("joined") < 1 || p.count("peer_connected") < others.saturating_sub(1) {
            if !p.read(deadline.saturating_duration_since(Instant::now())) {
                bail!("the room's nodes did not connect within 60 s");
            }
        }
    }
    let server = format!("http://{addr}");
    let mut args = vec![
        "submit",
        "--server",
        &server,
        "--room",
        room,
        "--ice-bind",
        "127.0.0.1",
        "--json",
        "--workers",
        "1",
        "--timeout",
        "600",
        "--out",
    ];
    let out = out.display().to_string();
    args.push(&out);
    args.extend_from_slice(job);
    args.extend_from_slice(extra);
    let mut sub = Proc::spawn(bin, &args)?;
    sub.wait(Duration::from_secs(60), |v| v["event"] == "job_accepted")
        .context("the job was not accepted within 60 s")?;
    mid_job(&mut nodes, &mut sub)?;
    let (_, line) = sub
        .wait(Duration::from_secs(600), |v| v["event"] == "job_done")
        .context("the job did not finish within 600 s")?;
    let secs = match line["assembled_ms"].as_f64() {
        Some(ms) => ms / 1000.0,
        None => bail!("the submitter's job_done line has no assembled_ms: {line}"),
    };
    // The output is written after the job is done: wait for it before comparing.
    if !sub.exited_ok(Duration::from_secs(60)) {
        bail!("meshwork submit did not exit with success after its job");
    }
    // The room's nodes end with the run: left alive, they would compute again the
    // results the departed submitter held (nobody needs them) during the next runs.
    drop(nodes);
    Ok(Run { secs, sub })
}

/// Runs per median.
const RUNS: usize = 3;

/// The run of median time among `n`.
fn median_run(n: usize, mut one: impl FnMut(usize) -> Result<Run>) -> Result<Run> {
    let mut runs = (0..n).map(&mut one).collect::<Result<Vec<_>>>()?;
    runs.sort_by(|a, b| a.secs.total_cmp(&b.secs));
    Ok(runs.swap_remove(n / 2))
}

fn no_pause(_: &mut Vec<Proc>, _: &mut Proc) -> Result<()> {
    Ok(())
}

fn same_file(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read(a), std::fs::read(b)), (Ok(x), Ok(y)) if x == y)
}

pub fn run(root: &Path) -> Result<()> {
    let bin = build_release(root)?;
    let target = crate::bench::target_dir(root);
    let dir = target.join("bench-scale");
    std::fs::create_dir_all(&dir)?;
    let (_server, addr) = server(&bin)?;
    let mut rows: Vec<(String, String, String)> = Vec::new();
    let mut push = |what: String, value: String, goal: &str| {
        println!("  {what}: {value}");
        rows.push((what, value, goal.to_string()));
    };

    let reference = dir.join("ref.png");
    let one_process = run_local(&bin, IMAGE, 1, &reference)?;
    push(
        "Mandelbrot 2048², 1000 it, 256 tiles: meshwork run --workers 1".into(),
        format!("{one_process:.2} s"),
        "",
    );
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let both = run_local(&bin, IMAGE, cores, &dir.join("ref-all.png"))?;
    push(
        format!("  the same, meshwork run --workers {cores}"),
        format!(
            "{both:.2} s ({:.2}×; its PNG encoding is serial)",
            one_process / both
        ),
        "",
    );
    // What the machine gives two single-worker processes at once: the ceiling of two
    // one-worker nodes (on a quiet machine with two cores, about as fast as one alone).
    let pair = std::thread::scope(|s| {
        let a = s.spawn(|| run_local(&bin, IMAGE, 1, &dir.join("pair-a.png")));
        let b = run_local(&bin, IMAGE, 1, &dir.join("pair-b.png"));
        let a = a
            .join()
            .map_err(|_| anyhow::anyhow!("a paired run panicked"))?;
        Ok::<_, anyhow::Error>(a?.max(b?))
    })?;
    let machine = 2.0 * one_process / pair;
    push(
        "  two meshwork run --workers 1 side by side".into(),
        format!("{pair:.2} s each: the machine gives two processes {machine:.2}× one"),
        "",
    );
    let png = dir.join("mesh.png");
    // Medians of three: a job of a few tenths of a second varies by a tenth.
    let job_runs = |room: &str, others: usize, job: &[&str]| {
        median_run(RUNS, |i| {
            submit(
                &bin,
                &addr,
                Job {
                    room: &format!("{room}-{i}"),
                    others,
                    job,
                    extra: &["--replicas", "1"],
                    out: &png,
                },
                no_pause,
            )
        })
    };
    let image_runs = |room: &str, others: usize| job_runs(room, others, IMAGE);
    let alone = image_runs("scale-1", 0)?;
    let identical = same_file(&png, &reference);
    push(
        format!("  one native node (submit, 1 worker), r = 1, median of {RUNS}"),
        format!("{:.2} s, output identical: {identical}", alone.secs),
        "",
    );
    let mut two = image_runs("scale-2", 1)?;
    let identical = same_file(&png, &reference);
    push(
        format!("  two native nodes (1 worker each), r = 1, median of {RUNS}"),
        format!(
            "{:.2} s, {:.2}× one node ({:.2}× what the machine gives two processes), output identical: {identical}",
            two.secs,
            alone.secs / two.secs,
            (alone.secs / two.secs) / machine,
        ),
        "≥ 1.8×",
    );
    let tiles = 256.0;
    let share = two.sub.count("task_computed") as f64 / tiles;
    let traffic = two
        .sub
        .wait(Duration::from_secs(5), |v| v["event"] == "traffic")
        .map(|(_, v)| v);
    let mib = |v: &serde_json::Value, k: &str| v[k].as_f64().unwrap_or(f64::NAN) / 1048576.0;
    push(
        "    the submitter's share of the tiles, and its data-channel bytes in".into(),
        match &traffic {
            Some(t) => format!(
                "{:.0} %; {:.2} MiB in, results packed {:.2} MiB for {:.2} MiB ({:.0}×)",
                share * 100.0,
                mib(t, "bytes_in"),
                mib(t, "packed_in"),
                mib(t, "unpacked_in"),
                mib(t, "unpacked_in") / mib(t, "packed_in"),
            ),
            None => format!(
                "{:.0} %; the submitter printed no traffic line",
                share * 100.0
            ),
        },
        "",
    );
    let r2 = submit(
        &bin,
        &addr,
        Job {
            room: "scale-r2",
            others: 1,
            job: IMAGE,
            extra: &["--replicas", "2"],
            out: &png,
        },
        no_pause,
    )?;
    push(
        "  two nodes, r = 2".into(),
        format!("{:.2} s ({:.2}× r = 1)", r2.secs, r2.secs / two.secs),
        "",
    );
    let q2 = submit(
        &bin,
        &addr,
        Job {
            room: "scale-q2",
            others: 1,
            job: IMAGE,
            extra: &["--replicas", "2", "--quorum", "2"],
            out: &png,
        },
        no_pause,
    )?;
    push(
        "  two nodes, r = q = 2".into(),
        format!("{:.2} s ({:.2}× r = q = 1)", q2.secs, q2.secs / two.secs),
        "",
    );

    // One of four nodes killed once a quarter of the tiles are validated.
    let four = submit(
        &bin,
        &addr,
        Job {
            room: "scale-4",
            others: 3,
            job: IMAGE,
            extra: &["--replicas", "2"],
            out: &png,
        },
        no_pause,
    )?;
    let mut killed_at = None;
    let mut killed = submit(
        &bin,
        &addr,
        Job {
            room: "scale-kill",
            others: 3,
            job: IMAGE,
            extra: &["--replicas", "2"],
            out: &png,
        },
        |nodes, sub| {
            sub.wait(Duration::from_secs(120), |v| {
                v["event"] == "job_progress" && v["tasks_validated"].as_u64() >= Some(64)
            })
            .context("no progress")?;
            let victim = nodes.remove(0);
            killed_at = Some(Instant::now());
            drop(victim);
            Ok(())
        },
    )?;
    let killed_at = killed_at.context("kill")?;
    let noticed = killed
        .sub
        .wait(Duration::from_secs(10), |v| v["event"] == "peer_left")
        .map(|(at, _)| at.saturating_duration_since(killed_at).as_secs_f64() * 1000.0);
    let identical = same_file(&png, &reference);
    push(
        "  four nodes, r = 2".into(),
        format!("{:.2} s", four.secs),
        "",
    );
    push(
        "  four nodes, one killed (SIGKILL) at 25 %".into(),
        format!(
            "{:.2} s ({:+.2} s), noticed in {} ms, output identical: {identical}",
            killed.secs,
            killed.secs - four.secs,
            noticed.map_or("?".into(), |ms| format!("{ms:.0}"))
        ),
        "noticed ≤ 1500 ms",
    );

    // Four times the pixels: what part of the gap is a fixed cost per job, and what
    // moving 256 KiB tiles costs.
    let big_ref = dir.join("ref-4096.png");
    let big_process = run_local(&bin, BIG, 1, &big_ref)?;
    let big_alone = job_runs("scale-big-1", 0, BIG)?;
    let big_two = job_runs("scale-big-2", 1, BIG)?;
    let identical = same_file(&png, &big_ref);
    push(
        format!(
            "Mandelbrot 4096², 1000 it, 256 tiles: one native node vs two, r = 1, median of {RUNS}"
        ),
        format!(
            "{:.2} s vs {:.2} s, {:.2}× (meshwork run --workers 1: {big_process:.2} s), output identical: {identical}",
            big_alone.secs,
            big_two.secs,
            big_alone.secs / big_two.secs,
        ),
        "≥ 1.8×",
    );
    // π(10^10): two nodes against primesieve on two threads.
    let primes_json = dir.join("primes.json");
    let pi = submit(
        &bin,
        &addr,
        Job {
            room: "scale-primes",
            others: 1,
            job: PRIMES,
            extra: &["--replicas", "1"],
            out: &primes_json,
        },
        no_pause,
    )?;
    let count = std::fs::read_to_string(&primes_json).unwrap_or_default();
    let ok = count.contains("\"count\":455052511");
    let reference = match Command::new("primesieve")
        .args(["1e10", "-t2", "-q"])
        .output()
    {
        Ok(_) => {
            let t = Instant::now();
            let out = Command::new("primesieve").args(["1e10", "-t2"]).output()?;
            let secs = t.elapsed().as_secs_f64();
            let text = String::from_utf8_lossy(&out.stdout);
            let agrees = text.contains("455052511");
            Some((secs, agrees))
        }
        Err(_) => None,
    };
    match reference {
        Some((secs, agrees)) => push(
            "π(10^10), two native nodes vs primesieve -t2".into(),
            format!(
                "{:.2} s vs {secs:.2} s ({:.2}×), counts right: {ok}, {agrees}",
                pi.secs,
                pi.secs / secs
            ),
            "≤ 1.5×",
        ),
        None => push(
            "π(10^10), two native nodes".into(),
            format!(
                "{:.2} s, count right: {ok} (skipped: no primesieve)",
                pi.secs
            ),
            "≤ 1.5× primesieve",
        ),
    }
    let (what, value) = worker_tile(root, &bin);
    push(what, value, "≥ 0.95× native warm");

    println!();
    println!("{:<64} {:>44}  goal", "scale benchmark", "measured");
    println!("{}", "-".repeat(120));
    for (what, value, goal) in &rows {
        println!("{what:<64} {value:>44}  {goal}");
    }
    let json = json!(
        rows.iter()
            .map(|(w, v, g)| json!({"row": w, "measured": v, "goal": g}))
            .collect::<Vec<_>>()
    );
    let path = target.join("bench-scale.json");
    std::fs::write(&path, serde_json::to_string_pretty(&json)?)?;
    println!("\nwritten to {}", path.display());
    Ok(())
}
