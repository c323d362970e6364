//! `cargo xtask bench signaling`: what members cost the signaling server, how fast it
//! relays, and how fast a room comes back after a restart.
//!
//! A release `meshwork serve` on loopback, with the per-address limits raised (every
//! client here comes from 127.0.0.1, where a real audience comes from many addresses).
//!
//! - **Idle members**: 1,000 and then 10,000 WebSocket clients (64 to a room) join and
//!   stay, reading (so they answer the server's pings). Measured: joins per second
//!   while they come in, and the server's resident memory before and once all are in.
//!   Goal: 10,000 idle joined members in ≤ 200 MB.
//! - **Relay latency**: 1,000 members, each sending a signal to a random member of its
//!   room twice a second for 10 s, spread evenly; each carries its send time, and the
//!   receiver notes how long it took (one clock: same process). p50, p99, max.
//! - **Reconnect**: 1,000 members joined; the server is killed (SIGKILL) and started
//!   again on the same port; each client reconnects with exponential backoff and
//!   jitter and joins again. Measured: time from the kill and from the new server
//!   listening until all are back, and the new server's memory.
//!
//! Bounded in count and time (every wait has a deadline); the clients' sockets need an
//! open-files limit above the count, and the count is lowered (and said so) where it is
//! not. Prints a table and writes it as JSON to `bench-signaling.json` in the target
//! directory.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use futures_util::{SinkExt, StreamExt};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

use crate::bench::{build_release, server_at, server_with};

/// The server's limits for these runs: enough connections, and per-address limits
/// that one loopback address full of clients does not meet.
const SERVER_ARGS: &[&str] = &[
    "--connections-max",
    "12000",
    "--joins-per-second-max",
    "1000000",
    "--joins-burst-max",
    "1000000",
    "--address-messages-per-second-max",
    "1000000",
    "--address-messages-burst-max",
    "1000000",
];
/// Members for the relay and reconnect runs.
const ACTIVE: usize = 1_000;
/// How long the relay run sends, and how often each member sends.
const ACTIVE_FOR: Duration = Duration::from_secs(10);
const SEND_EVERY: Duration = Duration::from_millis(500);

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
        let (mut server, addr) = server_with(&bin, SERVER_ARGS)?;
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
    let active = ACTIVE.min(usize::try_from(limit.saturating_sub(512)).unwrap_or(ACTIVE));
    let (relay_row, relay_json) = relay(&bin, active)?;
    rows.push(relay_row);
    results.push(relay_json);
    let (reconnect_row, reconnect_json) = reconnect(&bin, active)?;
    rows.push(reconnect_row);
    results.push(reconnect_json);
    let (natives_row, natives_json) = resume_natives(&bin, 8)?;
    rows.push(natives_row);
    results.push(natives_json);
    let (mixed_row, mixed_json) = resume_with_tabs(root, &bin);
    rows.push(mixed_row);
    results.push(mixed_json);
    println!();
    for (what, figure) in &rows {
        println!("  {what:<28} {figure}");
    }
    println!(
        "  goals: 10,000 idle joined members in ≤ 200 MB; every member back ≤ 3 s after a restart; \
         a storm of 500 back within 10 s"
    );
    let target = crate::bench::target_dir(root);
    let out = target.join("bench-signaling.json");
    std::fs::write(&out, serde_json::to_string_pretty(&results)?)?;
    println!("\n  written to {}", out.display());
    Ok(())
}

/// Opens `n` clients in rooms of [`ROOM`] and joins them; returns each one's room, id
/// and socket (clients that did not get in within the deadline are left out).
async fn join_active(
    url: &str,
    n: usize,
) -> Vec<(
    usize,
    String,
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>,
)> {
    let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
    let gate = Arc::new(tokio::sync::Semaphore::new(OPENING_AT_ONCE));
    let tasks: Vec<_> = (0..n)
        .map(|i| {
            let (url, gate) = (url.to_string(), gate.clone());
            tokio::spawn(async move {
                let _permit = gate.acquire_owned().await.ok()?;
                let (mut ws, _) =
                    tokio::time::timeout_at(deadline, tokio_tungstenite::connect_async(url))
                        .await
                        .ok()?
                        .ok()?;
                let room = i / ROOM;
                let join = format!(
                    r#"{{"v":1,"type":"join","room":"active-{room}","kind":"native","name":"m{i}"}}"#
                );
                ws.send(Message::text(join)).await.ok()?;
                loop {
                    match tokio::time::timeout_at(deadline, ws.next()).await {
                        Ok(Some(Ok(Message::Text(t)))) if t.contains(r#""type":"welcome""#) => {
                            let v: serde_json::Value = serde_json::from_str(&t).ok()?;
                            return Some((room, v["id"].as_str()?.to_string(), ws));
                        }
                        Ok(Some(Ok(_))) => continue,
                        _ => return None,
                    }
                }
            })
        })
        .collect();
    let mut out = Vec::with_capacity(n);
    for t in tasks {
        if let Ok(Some(m)) = t.await {
            out.push(m);
        }
    }
    out
}

/// The value of `t=` in a relayed signal's SDP: its send time in µs.
fn sent_at_us(text: &str) -> Option<u64> {
    let at = text.find("t=")? + 2;
    let digits: String = text[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Percentile `p` (0–100) of sorted `xs`.
fn percentile(xs: &[u64], p: f64) -> u64 {
    if xs.is_empty() {
        return 0;
    }
    let at = ((xs.len() - 1) as f64 * p / 100.0).round() as usize;
    xs[at.min(xs.len() - 1)]
}

/// Relay latency with `n` members active.
fn relay(bin: &Path, n: usize) -> Result<((String, String), serde_json::Value)> {
    let (mut server, addr) = server_with(bin, SERVER_ARGS)?;
    let rt = tokio::runtime::Runtime::new()?;
    let (joined, sent, latencies) = rt.block_on(async {
        let members = join_active(&format!("ws://{addr}/ws"), n).await;
        let joined = members.len();
        let mut rooms: std::collections::HashMap<usize, Vec<String>> = Default::default();
        for (room, id, _) in &members {
            rooms.entry(*room).or_default().push(id.clone());
        }
        let t0 = Instant::now();
        let start = tokio::time::Instant::now();
        let stop_at = start + ACTIVE_FOR;
        let tasks: Vec<_> = members
            .into_iter()
            .enumerate()
            .map(|(i, (room, me, ws))| {
                let peers: Vec<String> =
                    rooms[&room].iter().filter(|p| **p != me).cloned().collect();
                tokio::spawn(async move {
                    let (mut tx, mut rx) = ws.split();
                    // Spread the members' sends evenly over each period.
                    let offset = SEND_EVERY.mul_f64(i as f64 / n.max(1) as f64);
                    let mut tick = tokio::time::interval_at(start + offset, SEND_EVERY);
                    let mut rng = (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
                    let (mut sent, mut seen) = (0u64, Vec::new());
                    let listen_until = stop_at + Duration::from_secs(2);
                    loop {
                        tokio::select! {
                            _ = tick.tick(), if tokio::time::Instant::now() < stop_at && !peers.is_empty() => {
                                rng ^= rng << 13;
                                rng ^= rng >> 7;
                                rng ^= rng << 17;
                                let to = &peers[(rng % peers.len() as u64) as usize];
                                let us = t0.elapsed().as_micros();
                                let frame = format!(
                                    r#"{{"v":1,"type":"signal","to":"{to}","data":{{"kind":"offer","sdp":"t={us}"}}}}"#
                                );
                                if tx.send(Message::text(frame)).await.is_err() {
                                    break;
                                }
                                sent += 1;
                            }
                            next = tokio::time::timeout_at(listen_until, rx.next()) => match next {
                                Ok(Some(Ok(Message::Text(t)))) => {
                                    if t.contains(r#""type":"signal""#)
                                        && let Some(at) = sent_at_us(&t)
                                    {
                                        let now = t0.elapsed().as_micros() as u64;
                                        seen.push(now.saturating_sub(at));
                                    }
                                }
                                Ok(Some(Ok(_))) => {}
                                _ => break,
                            },
                        }
                    }
                    (sent, seen)
                })
            })
            .collect();
        let (mut sent, mut all) = (0, Vec::new());
        for t in tasks {
            if let Ok((s, seen)) = t.await {
                sent += s;
                all.extend(seen);
            }
        }
        (joined, sent, all)
    });
    drop(rt);
    let _ = server.child.kill();
    let _ = server.child.wait();
    let mut lat = latencies;
    lat.sort_unstable();
    let (p50, p99, max) = (
        percentile(&lat, 50.0),
        percentile(&lat, 99.0),
        lat.last().copied().unwrap_or(0),
    );
    let row = (
        format!("relay, {n} members active"),
        format!(
            "{joined} joined; {sent} signals sent over {:.0} s, {} relayed; latency p50 {:.2} ms, p99 {:.2} ms, max {:.1} ms",
            ACTIVE_FOR.as_secs_f64(),
            lat.len(),
            p50 as f64 / 1000.0,
            p99 as f64 / 1000.0,
            max as f64 / 1000.0,
        ),
    );
    let json = json!({
        "relay_members": n, "joined": joined, "sent": sent, "relayed": lat.len(),
        "latency_p50_us": p50, "latency_p99_us": p99, "latency_max_us": max,
    });
    Ok((row, json))
}

/// What a reconnecting member reports: it was welcomed back (under the id it had, if
/// it had one), or a resume was refused.
enum Back {
    Welcomed { i: usize, same_id: bool },
    Refused { i: usize, code: String },
}

/// A member that joins, and whenever its socket closes, reconnects (with backoff and
/// jitter) and resumes with its last resume token, until `stop`.
async fn rejoining_member(
    url: String,
    i: usize,
    report: tokio::sync::mpsc::UnboundedSender<Back>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let mut rng = (i as u64 + 7).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut backoff = Duration::from_millis(100);
    let room = format!("back-{}", i / ROOM);
    let (mut token, mut my_id): (Option<String>, Option<String>) = (None, None);
    while !*stop.borrow() {
        let first = match &token {
            Some(t) => format!(
                r#"{{"v":1,"type":"resume","room":"{room}","token":"{t}","kind":"native","name":"m{i}"}}"#
            ),
            None => {
                format!(r#"{{"v":1,"type":"join","room":"{room}","kind":"native","name":"m{i}"}}"#)
            }
        };
        let attempt = async {
            let (mut ws, _) = tokio_tungstenite::connect_async(url.as_str()).await.ok()?;
            ws.send(Message::text(first)).await.ok()?;
            Some(ws)
        };
        if let Some(mut ws) = attempt.await {
            loop {
                tokio::select! {
                    _ = stop.changed() => return,
                    next = ws.next() => match next {
                        Some(Ok(Message::Text(t))) => {
                            let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) else { continue };
                            match v["type"].as_str() {
                                Some("welcome") => {
                                    backoff = Duration::from_millis(100);
                                    let id = v["id"].as_str().unwrap_or_default().to_string();
                                    let same_id = my_id.as_deref() == Some(id.as_str());
                                    my_id = Some(id);
                                    let _ = report.send(Back::Welcomed { i, same_id });
                                }
                                Some("resume_token") => token = v["token"].as_str().map(str::to_string),
                                Some("error") => {
                                    let code = v["code"].as_str().unwrap_or_default().to_string();
                                    if code != "rate_limited" {
                                        let _ = report.send(Back::Refused { i, code });
                                        break;
                                    }
                                }
                                _ => {}
                            }
                        }
                        Some(Ok(_)) => {}
                        _ => break,
                    },
                }
            }
        }
        // Gone or refused: wait, doubling up to 2 s, with up to half again as jitter.
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        let jitter = backoff.mul_f64((rng % 1000) as f64 / 2000.0);
        tokio::select! {
            _ = stop.changed() => return,
            () = tokio::time::sleep(backoff + jitter) => {}
        }
        backoff = (backoff * 2).min(Duration::from_secs(2));
    }
}

/// SIGKILLs `server` and starts another on its address as soon as the port can be
/// bound: when it was killed, the new server, and how long after the kill it listened.
fn kill_and_restart(
    mut server: crate::bench::Proc,
    bin: &Path,
    addr: &str,
    args: &[&str],
) -> Result<(Instant, crate::bench::Proc, Duration)> {
    let killed = Instant::now();
    let _ = server.child.kill();
    let _ = server.child.wait();
    loop {
        match server_at(bin, addr, args) {
            Ok((p, _)) => return Ok((killed, p, killed.elapsed())),
            Err(e) if killed.elapsed() < Duration::from_secs(10) => {
                eprintln!("restarting the server: {e:#}; trying again");
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

/// Time for `n` members to be back after the server is killed and started again.
fn reconnect(bin: &Path, n: usize) -> Result<((String, String), serde_json::Value)> {
    let key =
        std::env::temp_dir().join(format!("meshwork-bench-resume-key-{}", std::process::id()));
    let _ = std::fs::remove_file(&key);
    let key = key.display().to_string();
    let args: Vec<&str> = SERVER_ARGS
        .iter()
        .copied()
        .chain(["--resume-key-file", key.as_str()])
        .collect();
    let (server, addr) = server_with(bin, &args)?;
    let rt = tokio::runtime::Runtime::new()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let url = format!("ws://{addr}/ws");
    rt.block_on(async {
        for i in 0..n {
            tokio::spawn(rejoining_member(
                url.clone(),
                i,
                tx.clone(),
                stop_rx.clone(),
            ));
        }
    });
    // Members welcomed (under their old ids, when `same` is asked for), and refusals.
    let all_in = |rx: &mut tokio::sync::mpsc::UnboundedReceiver<Back>, same: bool| {
        rt.block_on(async {
            let mut back = std::collections::HashSet::new();
            let mut refused = 0;
            let deadline = tokio::time::Instant::now() + JOIN_DEADLINE;
            while back.len() < n {
                match tokio::time::timeout_at(deadline, rx.recv()).await {
                    Ok(Some(Back::Welcomed { i, same_id })) if same_id || !same => {
                        back.insert(i);
                    }
                    Ok(Some(Back::Welcomed { .. })) => {}
                    Ok(Some(Back::Refused { i, code })) => {
                        refused += 1;
                        eprintln!("member {i} refused: {code}");
                    }
                    _ => break,
                }
            }
            (back.len(), refused)
        })
    };
    let (first, _) = all_in(&mut rx, false);
    let (killed, mut server, listening) = kill_and_restart(server, bin, &addr, &args)?;
    let (back, refused) = all_in(&mut rx, true);
    let all_back = killed.elapsed();
    let rss = rss_kb(server.child.id()).unwrap_or(0);
    let _ = stop_tx.send(true);
    drop(rt);
    let _ = server.child.kill();
    let _ = server.child.wait();
    let _ = std::fs::remove_file(&key);
    let row = (
        format!("reconnect, {n} members"),
        format!(
            "{first} in before; server killed, listening again {:.2} s later; {back} back under their ids {:.2} s after the kill ({:.2} s after listening), {refused} resumes refused; new server RSS {:.1} MB",
            listening.as_secs_f64(),
            all_back.as_secs_f64(),
            all_back.saturating_sub(listening).as_secs_f64(),
            rss as f64 / 1000.0,
        ),
    );
    let json = json!({
        "reconnect_members": n, "joined_before": first, "back_same_id": back, "refused": refused,
        "listening_after_kill_s": listening.as_secs_f64(), "all_back_after_kill_s": all_back.as_secs_f64(),
        "rss_after_kb": rss,
    });
    Ok((row, json))
}

/// The ids `/api/rooms` lists in `room`, sorted; empty if the server does not answer.
fn room_ids(addr: &str, room: &str) -> Vec<String> {
    use std::io::{Read, Write};
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return Vec::new();
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /api/rooms HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return Vec::new();
    }
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    let Some((_, body)) = text.split_once("\r\n\r\n") else {
        return Vec::new();
    };
    let Ok(v) = serde_json::from_str::<serde_json::Value>(body) else {
        return Vec::new();
    };
    let mut ids: Vec<String> = v["rooms"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| r["name"] == room)
        .flat_map(|r| r["peers"].as_array().cloned().unwrap_or_default())
        .filter_map(|p| p["id"].as_str().map(str::to_string))
        .collect();
    ids.sort();
    ids
}

/// Time from a restart until `n` native nodes (real `meshwork node` processes in a full
/// mesh) are all registered again under their ids.
pub(crate) fn resume_natives(
    bin: &Path,
    n: usize,
) -> Result<((String, String), serde_json::Value)> {
    let key =
        std::env::temp_dir().join(format!("meshwork-bench-natives-key-{}", std::process::id()));
    let _ = std::fs::remove_file(&key);
    let key = key.display().to_string();
    let args = ["--resume-key-file", key.as_str()];
    let (server, addr) = server_with(bin, &args)?;
    let room = "bench-resume";
    let mut nodes = (0..n)
        .map(|_| crate::bench::node(bin, &addr, room, &["--workers", "1"]))
        .collect::<Result<Vec<_>>>()?;
    let mut ids = Vec::new();
    for p in nodes.iter_mut() {
        let (_, ev) = p
            .wait(Duration::from_secs(20), |v| v["event"] == "joined")
            .ok_or_else(|| anyhow::anyhow!("a node did not join"))?;
        ids.push(ev["id"].as_str().unwrap_or_default().to_string());
    }
    ids.sort();
    let meshed_by = Instant::now() + Duration::from_secs(60);
    for p in nodes.iter_mut() {
        while p.count("peer_connected") < n - 1 {
            if !p.read(meshed_by.saturating_duration_since(Instant::now())) {
                anyhow::bail!("no full mesh of {n} within 60 s");
            }
        }
    }
    let (killed, mut again, listening) = kill_and_restart(server, bin, &addr, &args)?;
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut back = None;
    while Instant::now() < deadline {
        if room_ids(&addr, room) == ids {
            back = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let left = nodes.iter().map(|p| p.count("peer_left")).sum::<usize>();
    drop(nodes);
    let _ = again.child.kill();
    let _ = again.child.wait();
    let _ = std::fs::remove_file(&key);
    let figure = match back {
        Some(t) => format!(
            "all {n} back under their ids {:.2} s after the kill ({:.2} s after the new server listened); {left} departures seen in the mesh",
            t.as_secs_f64(),
            t.saturating_sub(listening).as_secs_f64()
        ),
        None => format!("not all {n} back within 30 s"),
    };
    let row = (format!("restart, {n} native nodes"), figure);
    let json = json!({
        "resume_natives": n,
        "back_after_kill_s": back.map(|t| t.as_secs_f64()),
        "back_after_listening_s": back.map(|t| t.saturating_sub(listening).as_secs_f64()),
        "departures": left,
    });
    Ok((row, json))
}

/// The same with 8 native nodes and 4 Chromium tabs (`tests/e2e/resume_bench.mjs`, in a
/// network namespace of its own); a row that says "skipped" where that cannot run.
fn resume_with_tabs(root: &Path, bin: &Path) -> ((String, String), serde_json::Value) {
    let what = "restart, 8 native nodes and 4 tabs".to_string();
    let dist = root.join("dist");
    if !Path::new("/usr/bin/chromium").exists() || !dist.join("index.html").exists() {
        let why = "needs /usr/bin/chromium and dist/";
        return ((what, format!("skipped: {why}")), json!({"skipped": why}));
    }
    let key = std::env::temp_dir().join(format!("meshwork-bench-tabs-key-{}", std::process::id()));
    let _ = std::fs::remove_file(&key);
    let envs = [
        ("MESHWORK_BIN", bin.display().to_string()),
        ("MESHWORK_DIST", dist.display().to_string()),
        ("KEY_FILE", key.display().to_string()),
    ];
    let script = root.join("tests/e2e/resume_bench.mjs");
    let result =
        crate::bench::node_in_netns(root, &script, &envs).unwrap_or_else(|e| json!({"skipped": e}));
    let _ = std::fs::remove_file(&key);
    let figure = match result["all_back_after_kill_ms"].as_u64() {
        Some(ms) => format!(
            "all 12 back under their ids {:.2} s after the kill (listening again after {:.2} s); {} departures seen by the natives",
            ms as f64 / 1000.0,
            result["listening_after_kill_ms"]
                .as_f64()
                .unwrap_or(f64::NAN)
                / 1000.0,
            result["departures_seen_by_natives"],
        ),
        None => format!(
            "not measured: {}",
            result["error"]
                .as_str()
                .or(result["skipped"].as_str())
                .unwrap_or("not all back within 30 s")
        ),
    };
    ((what, figure), result)
}
