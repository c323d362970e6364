//! `cargo xtask bench signaling`: what idle members cost the signaling server.
//!
//! A release `meshwork serve` on loopback; 1,000 and then 10,000 WebSocket clients (64 to
//! a room) join and stay, reading (so they answer the server's pings). Measured: joins
//! per second while they come in, and the server's resident memory before and once all
//! are in. Goal: 10,000 idle joined members in ≤ 200 MB. Bounded in count and time
//! (every wait has a deadline); the clients' sockets need an open-files limit above the
//! count, and the count is lowered (and said so) where it is not.
//!
//! Prints a table and writes it as JSON to `bench-signaling.json` in the target directory.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::bench::{build_release, server_with};

/// Members per room (the server's default room size).
const ROOM: usize = 64;
/// Connections being opened at once.
const OPENING_AT_ONCE: usize = 256;
/// The longest a run may take to get everyone in.
const JOIN_DEADLINE: Duration = Duration::from_secs(120);

/// Resident memory of process `pid`, in kB.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// This process's open-files limit, from the shell.
fn open_files_limit() -> u64 {
    Command::new("sh")
        .args(["-c", "ulimit -n"])
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(1024)
}

/// Opens `n` clients that join and stay; returns how many got their welcome and how
/// long it took. The clients keep reading until `stop` is dropped.
async fn join_many(
    url: String,
    n: usize,
    stop: tokio::sync::watch::Receiver<bool>,
) -> (usize, Duration) {
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
    let gate = Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let (url, gate, mut stop) = (url.clone(), gate.clone(), stop.clone());
        tasks.push(tokio::spawn(async move {
            let permit = gate.acquire_owned().await.ok()?;
            let (mut ws, _) =
                tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(url))
                    .await
                    .ok()?
                    .ok()?;
            let join = format!(
                r#"{{"v":1,"type":"join","room":"bench-{}","kind":"native","name":"m{i}"}}"#,
                i / ROOM
            );
            ws.send(Message::text(join)).await.ok()?;
            loop {
                match tokio::time::timeout_at(deadline, ws.next()).await {
                    Ok(Some(Ok(Message::Text(t)))) if t.contains(r#""type":"welcome""#) => break,
                    Ok(Some(Ok(_))) => continue,
                    _ => return None,
                }
            }
            drop(permit);
            // Stay, reading (which answers the server's pings), until told to go.
            tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = stop.changed() => break,
                        next = ws.next() => if next.is_none() { break },
                    }
                }
            });
            Some(())
        }));
    }
    let mut ok = 0;
    for t in tasks {
        if let Ok(Some(())) = t.await {
            ok += 1;
        }
    }
    (ok, started.elapsed())
}

pub fn run(root: &Path) -> Result<()> {
    let bin = build_release(root)?;
    let limit = open_files_limit();
    let mut rows = Vec::new();
    let mut results = Vec::new();
    for wanted in [1_000usize, 10_000] {
        let n = wanted.min(usize::try_from(limit.saturating_sub(512)).unwrap_or(wanted));
        let (mut server, addr) = server_with(
            &bin,
            &[
                "--connections-max",
                "12000",
                "--joins-per-second-max",
                "1000000",
                "--joins-burst-max",
                "1000000",
            ],
        )?;
        let pid = server.child.id();
        let before = rss_kb(pid).unwrap_or(0);
        let rt = tokio::runtime::Runtime::new()?;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let (joined, took) = rt.block_on(join_many(format!("ws://{addr}/ws"), n, stop_rx));
        // Let allocations settle, with everyone idle.
        std::thread::sleep(Duration::from_secs(2));
        let after = rss_kb(pid).unwrap_or(0);
        let _ = stop_tx.send(true);
        drop(rt);
        let _ = server.child.kill();
        let _ = server.child.wait();
        let per_member = (after.saturating_sub(before)) as f64 / joined.max(1) as f64;
        let what = format!("{wanted} idle joined members");
        let note = if n < wanted {
            format!(" (only {n}: open-files limit {limit})")
        } else {
            String::new()
        };
        rows.push((
            what,
            format!(
                "{joined} joined in {:.1} s ({:.0} joins/s); server RSS {:.1} MB → {:.1} MB ({per_member:.1} kB per member){note}",
                took.as_secs_f64(),
                joined as f64 / took.as_secs_f64().max(0.001),
                before as f64 / 1000.0,
                after as f64 / 1000.0,
            ),
        ));
        results.push(json!({
            "wanted": wanted, "joined": joined, "join_s": took.as_secs_f64(),
            "rss_before_kb": before, "rss_after_kb": after, "kb_per_member": per_member,
        }));
    }
    println!();
    for (what, figure) in &rows {
        println!("  {what:<28} {figure}");
    }
    println!("  goal: 10,000 idle joined members in ≤ 200 MB");
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    let out = target.join("bench-signaling.json");
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    println!("\n  written to {}", out.display());
    Ok(())
}
