//! Helpers for the cross-crate tests: spawn `meshwork` processes and read their JSON
//! event lines.

#![allow(dead_code)]

pub mod browser;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// The `meshwork` binary cargo built for these tests.
pub fn meshwork() -> Command {
    Command::new(env!("CARGO_BIN_EXE_meshwork"))
}

/// `meshwork submit` arguments for `job` with two copies of every result, `q = 1`,
/// `pace_ms` of pacing, a 120 s timeout and its output written to `png`.
pub fn paced_submit_args(job: &[String], pace_ms: u32, png: &std::path::Path) -> Vec<String> {
    let mut args = job.to_vec();
    let pace = pace_ms.to_string();
    for a in [
        "--replicas",
        "2",
        "--quorum",
        "1",
        "--pace-ms",
        &pace,
        "--timeout",
        "120",
        "--out",
    ] {
        args.push(a.to_string());
    }
    args.push(png.display().to_string());
    args
}

/// Notes a problem unless the file `png` holds exactly the bytes `reference`.
pub fn same_png(png: &std::path::Path, reference: &[u8], problems: &mut Vec<String>) {
    match std::fs::read(png) {
        Ok(bytes) if bytes == reference => {}
        Ok(_) => problems.push(format!(
            "{} differs from meshwork run's output",
            png.display()
        )),
        Err(e) => problems.push(format!("{}: {e}", png.display())),
    }
}

/// `meshwork run` / `submit` arguments of a square Mandelbrot job: `side`² pixels in
/// `tiles`² tiles at `max_iter` iterations.
pub fn mandelbrot_args(side: u32, tiles: u32, max_iter: u32) -> Vec<String> {
    [
        "--kernel".to_string(),
        "mandelbrot".into(),
        "--width".into(),
        side.to_string(),
        "--height".into(),
        side.to_string(),
        "--tiles".into(),
        format!("{tiles}x{tiles}"),
        "--max-iter".into(),
        max_iter.to_string(),
    ]
    .to_vec()
}

/// Runs `meshwork run JOB --out FILE` and returns the PNG: the one-process reference a
/// mesh's image must equal byte for byte.
pub fn reference_png(job: &[String], out: &std::path::Path) -> Vec<u8> {
    let status = meshwork()
        .arg("run")
        .args(job)
        .arg("--out")
        .arg(out)
        .status()
        .expect("meshwork run starts");
    assert!(status.success(), "meshwork run failed: {status}");
    std::fs::read(out).expect("the reference PNG")
}

/// A child process whose stdout is one JSON object per line. Killed on drop.
pub struct Proc {
    pub name: String,
    child: Child,
    lines: mpsc::Receiver<Value>,
    /// Every event read so far, in order.
    pub seen: Vec<Value>,
}

impl Proc {
    pub fn spawn(name: &str, mut cmd: Command) -> Proc {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        if std::env::var_os("MESHWORK_TEST_QUIET").is_some() {
            cmd.stderr(Stdio::null());
        }
        let mut child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        let tag = name.to_string();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                match serde_json::from_str::<Value>(&line) {
                    Ok(v) => {
                        if tx.send(v).is_err() {
                            break;
                        }
                    }
                    Err(_) => eprintln!("[{tag}] {line}"),
                }
            }
        });
        Proc {
            name: name.to_string(),
            child,
            lines: rx,
            seen: Vec::new(),
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until an event matching `pred` arrives (or has arrived), up to `timeout`.
    pub fn wait_for(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        if let Some(v) = self.seen.iter().find(|v| pred(v)) {
            return Some(v.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return Some(v);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Waits for the event `{"event": name, ...}`.
    pub fn wait_event(&mut self, timeout: Duration, name: &str) -> Value {
        self.wait_for(timeout, |v| v["event"] == name)
            .unwrap_or_else(|| {
                panic!(
                    "{}: no {name:?} event within {timeout:?}; saw {:?}",
                    self.name, self.seen
                )
            })
    }

    /// Waits for the process to end on its own (its stdout closes), reading its last
    /// events; returns its exit status, or None if it is still running at `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(v) => self.seen.push(v),
                Err(mpsc::RecvTimeoutError::Disconnected) => return self.child.wait().ok(),
                Err(mpsc::RecvTimeoutError::Timeout) => return None,
            }
        }
    }

    /// Ends the process with SIGKILL and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Starts `meshwork serve` on a free loopback port; returns it and its address.
pub fn server(extra: &[&str]) -> (Proc, String) {
    let mut cmd = meshwork();
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--json"])
        .args(extra);
    let mut p = Proc::spawn("server", cmd);
    let ev = p.wait_event(Duration::from_secs(20), "listening");
    let addr = ev["addr"].as_str().expect("addr").to_string();
    (p, addr)
}

/// Starts `meshwork node --json` bound to loopback in `room`.
pub fn node(addr: &str, room: &str, name: &str, extra: &[&str]) -> Proc {
    let mut cmd = meshwork();
    cmd.args([
        "node",
        "--server",
        &format!("http://{addr}"),
        "--room",
        room,
        "--name",
        name,
        "--ice-bind",
        "127.0.0.1",
        "--json",
    ])
    .args(extra);
    Proc::spawn(name, cmd)
}

/// Waits until `p` has reported `n` distinct connected peers; returns their ids.
pub fn wait_connected(p: &mut Proc, n: usize, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    loop {
        let peers = connected_peers(p);
        if peers.len() >= n {
            return peers;
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if p.wait_for(left, |v| {
            v["event"] == "peer_connected" && !peers.iter().any(|x| v["peer"] == x.as_str())
        })
        .is_none()
        {
            panic!(
                "{}: {} of {n} peers connected within {timeout:?}; saw {:?}",
                p.name,
                peers.len(),
                p.seen
            );
        }
    }
}

/// Peers `p` reported connected and not since left.
pub fn connected_peers(p: &Proc) -> Vec<String> {
    let mut peers: Vec<String> = Vec::new();
    for v in &p.seen {
        let Some(id) = v["peer"].as_str() else {
            continue;
        };
        if v["event"] == "peer_connected" && !peers.iter().any(|x| x == id) {
            peers.push(id.to_string());
        } else if v["event"] == "peer_left" {
            peers.retain(|x| x != id);
        }
    }
    peers
}

/// Whether tests must not skip (CI sets CI=true).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}
