//! `cargo xtask bench view`: the live view's cost.
//!
//! - The page's bundle (its wasm, JS and CSS, gzip -9: what it needs to paint), the
//!   node worker's and the compute worker's, from the `dist/` that `cargo xtask
//!   build-ui` made. Goals: the page ≤ 300 KB, everything ≤ 600 KB.
//! - Frames in headless Chromium while a tab in a mesh of 16 members (the tab and 15
//!   native nodes) shows a 1,024-tile job (`tests/e2e/view_bench.mjs`, in a network
//!   namespace; needs root and Chromium). Goal: 60 frames per second, no main-thread task
//!   over 50 ms.
//!
//! Prints a table and writes it as JSON to `bench-view.json` in the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use serde_json::json;

use crate::bench::{build_release, node_in_netns};

/// Bytes of `path` compressed with `gzip -9`.
fn gzipped(path: &Path) -> Result<u64> {
    let out = Command::new("gzip")
        .args(["-9", "-c"])
        .arg(path)
        .output()
        .context("running gzip")?;
    if !out.status.success() {
        bail!("gzip {} failed", path.display());
    }
    Ok(out.stdout.len() as u64)
}

/// The page's, the node worker's and the compute worker's files in `dist/`, with their
/// gzipped sizes.
fn bundle(dist: &Path) -> Result<(Sizes, Sizes, Sizes)> {
    let mut page = Vec::new();
    let mut node = Vec::new();
    let mut worker = Vec::new();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dist)
        .with_context(|| format!("reading {}", dist.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for p in entries {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let ext = p
            .extension()
            .map(|e| e.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !matches!(ext.as_str(), "wasm" | "js" | "css" | "html") {
            continue;
        }
        let size = gzipped(&p)?;
        if name.starts_with("worker") {
            worker.push((name, size));
        } else if name.starts_with("node") {
            node.push((name, size));
        } else {
            page.push((name, size));
        }
    }
    Ok((page, node, worker))
}

pub fn run(root: &Path) -> Result<()> {
    let dist = root.join("dist");
    if !dist.join("index.html").exists() {
        bail!("no dist/: run `cargo xtask build-ui` first");
    }
    let (page, node, worker) = bundle(&dist)?;
    let kb = |v: &[(String, u64)]| v.iter().map(|(_, s)| s).sum::<u64>() as f64 / 1000.0;
    let mut rows = vec![
        (
            "page bundle at first paint (wasm + JS + CSS + HTML, gzip -9)".to_string(),
            format!("{:.0} KB (goal ≤ 300 KB): {}", kb(&page), sizes(&page)),
        ),
        (
            "node worker (wasm + JS, gzip -9, loaded after the page)".to_string(),
            format!("{:.0} KB: {}", kb(&node), sizes(&node)),
        ),
        (
            "compute worker (wasm + JS, gzip -9, loaded after the page)".to_string(),
            format!("{:.0} KB: {}", kb(&worker), sizes(&worker)),
        ),
        (
            "everything a tab downloads (gzip -9)".to_string(),
            format!(
                "{:.0} KB (goal ≤ 600 KB)",
                kb(&page) + kb(&node) + kb(&worker)
            ),
        ),
    ];
    let bin = build_release(root)?;
    let script = root.join("tests/e2e/view_bench.mjs");
    let mut all_frames = Vec::new();
    // 8 members, then 16: on a 2-core machine the 15 native nodes of the second take
    // the cores from the tab, which the first shows apart.
    for members in [8, 16] {
        let what = format!("{members} members, 1,024-tile job: frames in the tab");
        let frames = if !Path::new("/usr/bin/chromium").exists() {
            json!({"skipped": "needs /usr/bin/chromium"})
        } else {
            let envs = [
                ("MESHWORK_BIN", bin.display().to_string()),
                ("MESHWORK_DIST", dist.display().to_string()),
                ("MEMBERS", members.to_string()),
            ];
            match node_in_netns(root, &script, &envs) {
                Ok(v) => v,
                Err(e) => json!({"skipped": e}),
            }
        };
        rows.push((what, frames_text(&frames)));
        if let Some(words) = long_frames_text(&frames) {
            rows.push(("  what ran in the frames over 50 ms".to_string(), words));
        }
        if let Some(words) = newcomer_text(&frames) {
            rows.push((
                "  a newcomer tab, cold cache: paint, members drawn, all live".to_string(),
                words,
            ));
        }
        if let Some(words) = traffic_text(&frames) {
            rows.push((
                "  data channels, this tab, to the job's end".to_string(),
                words,
            ));
        }
        if let Some(words) = link_text(&frames) {
            rows.push(("  page ⇄ node worker, per task".to_string(), words));
        }
        all_frames.push(frames);
    }
    println!();
    for (what, figure) in &rows {
        println!("  {what:<58} {figure}");
    }
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out = target.join("bench-view.json");
    let doc = json!({
        "page_gzip_bytes": page.iter().map(|(_, s)| s).sum::<u64>(),
        "node_worker_gzip_bytes": node.iter().map(|(_, s)| s).sum::<u64>(),
        "worker_gzip_bytes": worker.iter().map(|(_, s)| s).sum::<u64>(),
        "page": page,
        "node_worker": node,
        "worker": worker,
        "frames": all_frames,
    });
    std::fs::write(&out, serde_json::to_string_pretty(&doc)?)?;
    println!("\n  written to {}", out.display());
    Ok(())
}

/// `cargo xtask bench watch`: what a tab that only watches a job receives
/// (`tests/e2e/watch_bench.mjs`): a plain tab, which draws from previews the tiles it
/// does not hold, against a presenter's, which fetches every tile.
pub fn watch(root: &Path) -> Result<()> {
    let dist = root.join("dist");
    if !dist.join("index.html").exists() {
        bail!("no dist/: run `cargo xtask build-ui` first");
    }
    if !Path::new("/usr/bin/chromium").exists() {
        bail!("needs /usr/bin/chromium");
    }
    let bin = build_release(root)?;
    let script = root.join("tests/e2e/watch_bench.mjs");
    let envs = [
        ("MESHWORK_BIN", bin.display().to_string()),
        ("MESHWORK_DIST", dist.display().to_string()),
    ];
    let v = node_in_netns(root, &script, &envs).map_err(|e| anyhow::anyhow!("{e}"))?;
    if let Some(e) = v["error"].as_str() {
        bail!("the watch benchmark failed: {e}");
    }
    let mib = |x: &serde_json::Value| x.as_f64().unwrap_or(f64::NAN) / 1_048_576.0;
    println!();
    println!(
        "  a {0}×{0} Mandelbrot job, {1} tiles ({2:.1} MiB of RGBA), r = 2, from `meshwork submit` with {3} native nodes;",
        v["size"],
        v["tiles"],
        mib(&v["tiles_full_bytes"]),
        v["natives"]
    );
    println!("  a tab computing nothing, its data-channel bytes in to the job's end:");
    let mut rows = Vec::new();
    for (what, k) in [
        (
            "    a plain tab (tiles it does not hold from previews)",
            "watching",
        ),
        (
            "    a presenter's tab (every tile, as every tab before)",
            "assembling",
        ),
    ] {
        let t = &v[k]["traffic"];
        let bytes = mib(&t["bytes_in"]);
        rows.push(bytes);
        println!(
            "{what:<58} {bytes:.2} MiB (results packed {:.2} MiB for {:.2} MiB)",
            mib(&t["packed_in"]),
            mib(&t["unpacked_in"]),
        );
    }
    println!(
        "    previews: {:.1}× fewer bytes in; the plain tab's summary: {}",
        rows[1] / rows[0],
        v["watching"]["summary"]
    );
    Ok(())
}

fn frames_text(frames: &serde_json::Value) -> String {
    match frames["fps"].as_f64() {
        Some(fps) => format!(
            "{fps:.1} fps (goal 60); frame p50 {:.1} ms, p95 {:.1} ms, p99 {:.1} ms, max {:.0} ms; {} main-thread tasks over 50 ms (longest {:.0} ms); job {:.1} s",
            frames["frame_ms_p50"].as_f64().unwrap_or(f64::NAN),
            frames["frame_ms_p95"].as_f64().unwrap_or(f64::NAN),
            frames["frame_ms_p99"].as_f64().unwrap_or(f64::NAN),
            frames["frame_ms_max"].as_f64().unwrap_or(f64::NAN),
            frames["long_tasks_over_50ms"],
            frames["long_task_ms_max"].as_f64().unwrap_or(0.0),
            frames["job_s"].as_f64().unwrap_or(f64::NAN),
        ),
        None => format!(
            "skipped: {}",
            frames["skipped"]
                .as_str()
                .or(frames["error"].as_str())
                .unwrap_or("no result")
        ),
    }
}

/// A newcomer tab's first contentful paint, when its graph drew every other member
/// and when it drew every one live, at normal speed and with its CPU slowed 4 times.
fn newcomer_text(frames: &serde_json::Value) -> Option<String> {
    let n = &frames["newcomers"];
    let one = |k: &str| {
        let v = &n[k];
        match (
            v["first_contentful_paint_ms"].as_f64(),
            v["members_drawn_ms"].as_f64(),
            v["mesh_shown_ms"].as_f64(),
        ) {
            (Some(p), Some(d), Some(m)) => format!("{p:.0}, {d:.0}, {m:.0} ms"),
            _ => format!("n/a ({})", v["error"].as_str().unwrap_or("not measured")),
        }
    };
    n.is_object().then(|| {
        format!(
            "{} (goal: the mesh within 1000 ms); CPU 4× slower: {}",
            one("normal"),
            one("cpu_4x_slower")
        )
    })
}

/// The tab's data-channel bytes to the job's end: in, out, and what packing saved.
fn traffic_text(frames: &serde_json::Value) -> Option<String> {
    let t = &frames["traffic"];
    let mib = |k: &str| Some(t[k].as_f64()? / 1_048_576.0);
    Some(format!(
        "{:.2} MiB in, {:.2} MiB out; results packed {:.2} MiB for {:.2} MiB",
        mib("bytes_in")?,
        mib("bytes_out")?,
        mib("packed_in")?,
        mib("unpacked_in")?,
    ))
}

/// What the page and its node worker said to each other during the job, per task.
fn link_text(frames: &serde_json::Value) -> Option<String> {
    let l = &frames["link"];
    let f = |k: &str| l[k].as_f64();
    Some(format!(
        "{:.2} messages ({:.0} bytes) to the worker, {:.2} messages ({:.0} bytes) from it",
        f("to_worker_per_task")?,
        f("to_worker_bytes_per_task")?,
        f("from_worker_per_task")?,
        f("from_worker_bytes_per_task")?,
    ))
}

/// What ran in the long animation frames: their time, the scripts' share by what
/// invoked them, and the rendering's.
fn long_frames_text(frames: &serde_json::Value) -> Option<String> {
    let lf = &frames["long_frames"];
    let count = lf["count"].as_u64().filter(|c| *c > 0)?;
    let by = lf["by_invoker"]
        .as_array()
        .map(|v| {
            v.iter()
                .filter_map(|e| Some(format!("{} {} ms", e[0].as_str()?, e[1].as_f64()?)))
                .collect::<Vec<_>>()
                .join(", ")
        })
        .unwrap_or_default();
    Some(format!(
        "{count} frames, {} ms: scripts {} ms ({by}), rendering {} ms; machine load {:.1} on {} cores",
        lf["ms"],
        lf["script_ms"],
        lf["render_ms"],
        frames["load_1min"].as_f64().unwrap_or(f64::NAN),
        frames["cores"],
    ))
}

/// Files with their gzipped sizes.
type Sizes = Vec<(String, u64)>;

fn sizes(v: &[(String, u64)]) -> String {
    v.iter()
        .map(|(n, s)| format!("{n} {:.1}", *s as f64 / 1000.0))
        .collect::<Vec<_>>()
        .join(", ")
}
