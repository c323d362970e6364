//! `cargo xtask bench mesh`: how fast the mesh forms, carries data and notices a loss.
//!
//! Drives release builds of `meshwork` on loopback and prints a table. Goals: full mesh of 8 native nodes ≤ 2 s; native↔native ≥ 100 MiB/s; a killed
//! peer noticed ≤ 1.5 s. The Chromium rows run the browser controller inside a network
//! namespace and need root and Chromium; they are reported as skipped otherwise.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Bytes sent in each throughput run.
const BULK_BYTES: u64 = 20 << 20;

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    match args.first().map(String::as_str) {
        Some("mesh") | None => mesh(root),
        Some("scale") => crate::scale::run(root),
        Some("view") => crate::viewbench::run(root),
        Some("watch") => crate::viewbench::watch(root),
        Some("signaling") => crate::sigbench::run(root),
        Some("kernels") => crate::kernbench::run(root),
        Some("codec") => {
            let mut c = crate::cargo();
            c.args(["bench", "-q", "-p", "node-core", "--bench", "codec"])
                .current_dir(root);
            let status = c.status().context("running the codec benchmark")?;
            if !status.success() {
                bail!("the codec benchmark failed");
            }
            Ok(())
        }
        Some(other) => {
            bail!(
                "unknown benchmark {other:?}; try `cargo xtask bench mesh`, `bench scale`, `bench view`, `bench watch`, `bench signaling`, `bench kernels` or `bench codec`"
            )
        }
    }
}

/// A child printing JSON lines; killed on drop.
pub(crate) struct Proc {
    pub(crate) child: Child,
    lines: mpsc::Receiver<(Instant, serde_json::Value)>,
    pub(crate) seen: Vec<(Instant, serde_json::Value)>,
}

impl Proc {
    pub(crate) fn spawn(bin: &Path, args: &[&str]) -> Result<Proc> {
        let mut child = Command::new(bin)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .stdin(Stdio::null())
            .spawn()
            .with_context(|| format!("cannot start {}", bin.display()))?;
        let out = child.stdout.take().context("stdout")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str(&line)
                    && tx.send((Instant::now(), v)).is_err()
                {
                    break;
                }
            }
        });
        Ok(Proc {
            child,
            lines: rx,
            seen: Vec::new(),
        })
    }

    /// The first event matching `pred`, with when it was read.
    pub(crate) fn wait(
        &mut self,
        timeout: Duration,
        pred: impl Fn(&serde_json::Value) -> bool,
    ) -> Option<(Instant, serde_json::Value)> {
        if let Some(hit) = self.seen.iter().find(|(_, v)| pred(v)) {
            return Some(hit.clone());
        }
        let deadline = Instant::now() + timeout;
        while let Ok(hit) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(hit.clone());
            if pred(&hit.1) {
                return Some(hit);
            }
        }
        None
    }

    /// Reads the next line, if one comes within `timeout`.
    pub(crate) fn read(&mut self, timeout: Duration) -> bool {
        match self.lines.recv_timeout(timeout) {
            Ok(hit) => {
                self.seen.push(hit);
                true
            }
            Err(_) => false,
        }
    }

    /// Waits up to `timeout` for the process to exit; whether it exited with success.
    pub(crate) fn exited_ok(&mut self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            match self.child.try_wait() {
                Ok(Some(status)) => return status.success(),
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(_) => return false,
            }
        }
        false
    }

    pub(crate) fn count(&self, event: &str) -> usize {
        self.seen
            .iter()
            .filter(|(_, v)| v["event"] == event)
            .count()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn build_release(root: &Path) -> Result<PathBuf> {
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "-p", "node-cli"])
        .current_dir(root)
        .status()?;
    if !status.success() {
        bail!("building meshwork failed");
    }
    Ok(target_dir(root).join("release/meshwork"))
}

/// Cargo's target directory (`CARGO_TARGET_DIR`, else `target/` in the workspace).
pub(crate) fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

pub(crate) fn server(bin: &Path) -> Result<(Proc, String)> {
    server_with(bin, &["--messages-per-second-max", "1000"])
}

/// `meshwork serve` on a free loopback port with `extra` arguments, once listening.
pub(crate) fn server_with(bin: &Path, extra: &[&str]) -> Result<(Proc, String)> {
    server_at(bin, "127.0.0.1:0", extra)
}

/// `meshwork serve` bound to `bind` with `extra` arguments, once listening.
pub(crate) fn server_at(bin: &Path, bind: &str, extra: &[&str]) -> Result<(Proc, String)> {
    let mut args = vec!["serve", "--bind", bind, "--json"];
    args.extend_from_slice(extra);
    let mut p = Proc::spawn(bin, &args)?;
    let (_, ev) = p
        .wait(Duration::from_secs(20), |v| v["event"] == "listening")
        .context("server did not start")?;
    Ok((p, ev["addr"].as_str().unwrap_or_default().to_string()))
}

pub(crate) fn node(bin: &Path, addr: &str, room: &str, extra: &[&str]) -> Result<Proc> {
    let server = format!("http://{addr}");
    let mut args = vec![
        "node",
        "--server",
        &server,
        "--room",
        room,
        "--ice-bind",
        "127.0.0.1",
        "--json",
    ];
    args.extend_from_slice(extra);
    Proc::spawn(bin, &args)
}

fn median(mut xs: Vec<f64>) -> Option<f64> {
    xs.sort_by(f64::total_cmp);
    xs.get(xs.len() / 2).copied()
}

/// Starts `n` nodes at once; returns them and the time until every one had n-1 peers.
fn full_mesh(bin: &Path, addr: &str, room: &str, n: usize) -> Result<(Vec<Proc>, Duration)> {
    let start = Instant::now();
    let mut nodes = (0..n)
        .map(|_| node(bin, addr, room, &[]))
        .collect::<Result<Vec<_>>>()?;
    for p in nodes.iter_mut() {
        while p.count("peer_connected") < n - 1 {
            if !p.read(Duration::from_secs(60).saturating_sub(start.elapsed())) {
                bail!("no full mesh of {n} within 60 s");
            }
        }
    }
    Ok((nodes, start.elapsed()))
}

fn mesh(root: &Path) -> Result<()> {
    let bin = build_release(root)?;
    let (_server, addr) = server(&bin)?;
    let mut rows: Vec<(String, String, &str)> = Vec::new();

    for n in [2, 4, 8] {
        let (_nodes, took) = full_mesh(&bin, &addr, &format!("bench-mesh-{n}"), n)?;
        let goal = if n == 8 { "≤ 2000 ms" } else { "" };
        rows.push((
            format!("full mesh, {n} native nodes"),
            format!("{:.0} ms", took.as_secs_f64() * 1000.0),
            goal,
        ));
    }

    // Throughput: one node sends 20 MiB of the largest messages to the other.
    {
        let mut rx = node(&bin, &addr, "bench-bulk", &[])?;
        rx.wait(Duration::from_secs(20), |v| v["event"] == "joined")
            .context("receiver join")?;
        let bytes = BULK_BYTES.to_string();
        let mut tx = node(&bin, &addr, "bench-bulk", &["--bench-bulk-bytes", &bytes])?;
        let (_, ev) = tx
            .wait(Duration::from_secs(120), |v| v["event"] == "bulk")
            .context("bulk transfer did not finish in 120 s")?;
        let acked = ev["bytes"].as_u64().unwrap_or(0);
        if acked != BULK_BYTES {
            bail!("bulk receiver acknowledged {acked} of {BULK_BYTES} bytes");
        }
        rows.push((
            "native→native, 20 MiB in 16 KiB messages".into(),
            format!("{:.1} MiB/s", ev["mib_per_s"].as_f64().unwrap_or(f64::NAN)),
            "≥ 100 MiB/s",
        ));
    }

    // RTT and departure detection in a mesh of 4.
    {
        let (mut nodes, _) = full_mesh(&bin, &addr, "bench-kill", 4)?;
        // A three-second window of heartbeat round trips (each node prints at most one
        // per peer per second).
        let mut rtts = Vec::new();
        let window_end = Instant::now() + Duration::from_secs(3);
        for p in nodes.iter_mut() {
            while p.read(window_end.saturating_duration_since(Instant::now())) {}
            rtts.extend(
                p.seen
                    .iter()
                    .filter(|(_, v)| v["event"] == "rtt")
                    .filter_map(|(_, v)| v["ms"].as_f64()),
            );
        }
        rows.push((
            format!("median RTT native↔native ({} samples)", rtts.len()),
            median(rtts).map_or("n/a".into(), |m| format!("{m:.2} ms")),
            "",
        ));
        let victim_id = nodes[0]
            .wait(Duration::ZERO, |v| v["event"] == "joined")
            .map(|(_, v)| v["id"].as_str().unwrap_or_default().to_string())
            .context("victim id")?;
        let mut victim = nodes.remove(0);
        let killed = Instant::now();
        let _ = victim.child.kill();
        let mut worst = Duration::ZERO;
        let mut reasons = Vec::new();
        for p in nodes.iter_mut() {
            let (at, v) = p
                .wait(Duration::from_secs(10), |v| {
                    v["event"] == "peer_left" && v["peer"] == victim_id.as_str()
                })
                .context("a survivor never noticed the kill")?;
            worst = worst.max(at.duration_since(killed));
            reasons.push(v["reason"].as_str().unwrap_or("?").to_string());
        }
        rows.push((
            format!("killed native node noticed by all ({})", reasons.join(",")),
            format!("{:.0} ms", worst.as_secs_f64() * 1000.0),
            "≤ 1500 ms",
        ));
    }

    rows.extend(browser_rows(root, &bin));

    println!();
    println!("{:<58} {:>14}  goal", "mesh benchmark", "measured");
    println!("{}", "-".repeat(86));
    for (what, value, goal) in rows {
        println!("{what:<58} {value:>14}  {goal}");
    }
    Ok(())
}

/// Runs `node SCRIPT` inside a fresh network namespace holding only `lo` (deleted
/// afterwards), with `envs`; returns the last JSON line it printed, or why not.
pub(crate) fn node_in_netns(
    root: &Path,
    script: &Path,
    envs: &[(&str, String)],
) -> std::result::Result<serde_json::Value, String> {
    let ns = format!("meshwork-bench-{}", std::process::id());
    let made = Command::new("ip")
        .args(["netns", "add", &ns])
        .status()
        .is_ok_and(|s| s.success());
    if !made {
        return Err("cannot create a network namespace (run as root)".into());
    }
    let mut c = Command::new("ip");
    c.args([
        "netns",
        "exec",
        &ns,
        "sh",
        "-c",
        "ip link set lo up && exec \"$0\" \"$@\"",
        "node",
    ])
    .arg(script)
    .current_dir(root)
    .stderr(Stdio::inherit());
    for (k, v) in envs {
        c.env(k, v);
    }
    let out = c.output();
    let _ = Command::new("ip").args(["netns", "del", &ns]).status();
    let out = out.map_err(|e| format!("cannot run node: {e}"))?;
    last_json(&String::from_utf8_lossy(&out.stdout))
        .ok_or_else(|| format!("{} printed no summary", script.display()))
}

/// The last line of `text` that is JSON (a script's summary after its progress).
pub(crate) fn last_json(text: &str) -> Option<serde_json::Value> {
    text.lines()
        .rev()
        .find_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
}

/// Chromium rows: run the browser controller in bench mode inside a namespace.
fn browser_rows(root: &Path, bin: &Path) -> Vec<(String, String, &'static str)> {
    let skip = |why: &str| {
        vec![("Chromium rows".to_string(), "skipped".to_string(), "")]
            .into_iter()
            .inspect(|_| eprintln!("bench: Chromium rows skipped: {why}"))
            .collect::<Vec<_>>()
    };
    let script = root.join("tests/e2e/bench.mjs");
    if !script.exists()
        || !root.join("dist/index.html").exists()
        || !Path::new("/usr/bin/chromium").exists()
    {
        return skip("needs tests/e2e/bench.mjs, dist/ and /usr/bin/chromium (cargo xtask setup)");
    }
    let envs = [
        ("MESHWORK_BIN", bin.display().to_string()),
        ("MESHWORK_DIST", root.join("dist").display().to_string()),
        ("MESHWORK_BULK_BYTES", BULK_BYTES.to_string()),
    ];
    let summary = match node_in_netns(root, &script, &envs) {
        Ok(s) => s,
        Err(why) => return skip(&why),
    };
    let fmt = |key: &str, unit: &str| {
        summary[key]
            .as_f64()
            .map_or("n/a".to_string(), |x| format!("{x:.1} {unit}"))
    };
    vec![
        (
            "native→Chromium, 20 MiB in 16 KiB messages".into(),
            fmt("native_to_chromium_mib_s", "MiB/s"),
            "≥ 25 MiB/s",
        ),
        (
            "Chromium→native, 20 MiB in 16 KiB messages".into(),
            fmt("chromium_to_native_mib_s", "MiB/s"),
            "≥ 25 MiB/s",
        ),
        (
            "median RTT Chromium↔native".into(),
            fmt("rtt_chromium_native_ms", "ms"),
            "",
        ),
        (
            "killed tab (renderer SIGKILL) noticed by natives".into(),
            fmt("killed_tab_detect_ms", "ms"),
            "≤ 1500 ms",
        ),
    ]
}
