//! Two native nodes on networks that cannot reach each other meet through a TURN relay
//! and run a job.
//!
//! Three network namespaces made by this test: A (10.77.1.2) and B (10.77.2.2) are each
//! joined to a hub H (10.77.1.1 / 10.77.2.1) and to nothing else; H does not forward, so
//! A and B cannot reach each other, and both reach H's own address 10.77.0.1, where
//! Debian's coturn (`turnserver`, with a shared secret) and `meshwork serve --ice-server
//! turn:10.77.0.1:3478 --turn-secret …` listen. `meshwork node` runs in B and
//! `meshwork submit` (computing too) in A: the job's PNG must equal `meshwork run`'s,
//! and both must report that the selected candidate pair between them is a relay pair
//! (one of its candidates, or both, a TURN allocation).
//!
//! Needs root (namespaces) and coturn (`cargo xtask setup` installs it): without them
//! the test prints SKIP, except under `CI=true`.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::browser::{Netns, skip_or_fail};
use common::{Proc, mandelbrot_args, meshwork, reference_png};

const SECRET: &str = "meshwork-turn-test-secret";

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("ip {args:?}: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {args:?}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A, B and the hub, wired as the module says. The namespaces go (with their links and
/// anything left running in them) when this is dropped.
struct Topology {
    a: Netns,
    b: Netns,
    hub: Netns,
}

impl Topology {
    fn create() -> Result<Topology, String> {
        let t = Topology {
            a: Netns::create()?,
            b: Netns::create()?,
            hub: Netns::create()?,
        };
        let pid = std::process::id() % 100_000;
        for (side, ns, net) in [("a", &t.a, 1), ("b", &t.b, 2)] {
            let (outer, inner) = (format!("mwt{side}{pid}"), format!("mwh{side}{pid}"));
            ip(&[
                "link", "add", &outer, "type", "veth", "peer", "name", &inner,
            ])?;
            ip(&["link", "set", &outer, "netns", &ns.name])?;
            ip(&["link", "set", &inner, "netns", &t.hub.name])?;
            let (ns_addr, hub_addr) = (format!("10.77.{net}.2/24"), format!("10.77.{net}.1/24"));
            ns.exec_quiet(&["ip", "addr", "add", &ns_addr, "dev", &outer])?;
            ns.exec_quiet(&["ip", "link", "set", &outer, "up"])?;
            ns.exec_quiet(&[
                "ip",
                "route",
                "add",
                "10.77.0.1/32",
                "via",
                &format!("10.77.{net}.1"),
            ])?;
            t.hub
                .exec_quiet(&["ip", "addr", "add", &hub_addr, "dev", &inner])?;
            t.hub.exec_quiet(&["ip", "link", "set", &inner, "up"])?;
        }
        t.hub
            .exec_quiet(&["ip", "addr", "add", "10.77.0.1/32", "dev", "lo"])?;
        // The hub must not route between A and B.
        t.hub
            .exec_quiet(&["sysctl", "-qw", "net.ipv4.ip_forward=0"])?;
        Ok(t)
    }
}

/// `cmd` run inside `ns` as a JSON-line process.
fn spawn_in(ns: &Netns, name: &str, program: &std::path::Path, args: &[&str]) -> Proc {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", &ns.name])
        .arg(program)
        .args(args);
    Proc::spawn(name, cmd)
}

fn job_args() -> Vec<String> {
    mandelbrot_args(128, 8, 200)
}

#[test]
fn nodes_on_two_networks_that_cannot_reach_each_other_meet_through_turn() {
    const TEST: &str = "native_turn";
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    if !root {
        skip_or_fail(TEST, "root, to create network namespaces");
        return;
    }
    let Some(turnserver) = ["/usr/bin/turnserver", "/usr/sbin/turnserver"]
        .into_iter()
        .map(std::path::Path::new)
        .find(|p| p.exists())
    else {
        skip_or_fail(TEST, "coturn's turnserver (apt-get install coturn)");
        return;
    };
    let t = Topology::create().unwrap_or_else(|e| panic!("the test's networks: {e}"));
    // A cannot reach B.
    assert!(
        t.a.exec_quiet(&["ping", "-c", "1", "-W", "1", "10.77.2.2"])
            .is_err(),
        "A reaches B: the topology is wrong"
    );
    let tmp = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(TEST);
    let _ = std::fs::remove_dir_all(&tmp);
    std::fs::create_dir_all(&tmp).unwrap();

    let secret_arg = format!("--static-auth-secret={SECRET}");
    let pidfile = format!("--pidfile={}", tmp.join("turnserver.pid").display());
    let mut turn_cmd = Command::new("ip");
    turn_cmd
        .args(["netns", "exec", &t.hub.name])
        .arg(turnserver)
        .args([
            "-n",
            "--listening-ip=10.77.0.1",
            "--relay-ip=10.77.0.1",
            "--listening-port=3478",
            "--min-port=49200",
            "--max-port=49300",
            "--use-auth-secret",
            &secret_arg,
            "--realm=meshwork",
            "--no-tls",
            "--no-dtls",
            "--no-cli",
            "--log-file=stdout",
            "--simple-log",
            "--allowed-peer-ip=10.77.0.1",
            &pidfile,
        ]);
    turn_cmd.stderr(Stdio::null());
    let turn_log = std::fs::File::create(tmp.join("turnserver.log")).unwrap();
    turn_cmd.stdout(turn_log).stdin(Stdio::null());
    let mut turn = turn_cmd.spawn().expect("start turnserver");

    let bin = std::path::PathBuf::from(meshwork().get_program());
    let key = tmp.join("resume-key");
    let mut server = spawn_in(
        &t.hub,
        "server",
        &bin,
        &[
            "serve",
            "--bind",
            "10.77.0.1:0",
            "--json",
            "--ice-server",
            "turn:10.77.0.1:3478",
            "--turn-secret",
            SECRET,
            "--resume-key-file",
            key.to_str().unwrap(),
        ],
    );
    let addr = server.wait_event(Duration::from_secs(20), "listening")["addr"]
        .as_str()
        .unwrap()
        .to_string();
    let url = format!("http://{addr}");
    let room = "turn";
    let mut b = spawn_in(
        &t.b,
        "node-b",
        &bin,
        &[
            "node",
            "--server",
            &url,
            "--room",
            room,
            "--name",
            "b",
            "--ice-bind",
            "10.77.2.2",
            "--workers",
            "1",
            "--json",
        ],
    );
    b.wait_event(Duration::from_secs(20), "joined");
    let png = tmp.join("turn.png");
    let mut submit_args: Vec<String> = [
        "submit",
        "--server",
        &url,
        "--room",
        room,
        "--name",
        "a",
        "--ice-bind",
        "10.77.1.2",
        "--workers",
        "1",
        "--json",
        "--wait-ms",
        "8000",
        "--replicas",
        "2",
        "--quorum",
        "1",
        "--timeout",
        "90",
        "--out",
    ]
    .map(String::from)
    .to_vec();
    submit_args.push(png.display().to_string());
    submit_args.extend(job_args());
    let submit_refs: Vec<&str> = submit_args.iter().map(String::as_str).collect();
    let mut a = spawn_in(&t.a, "submit-a", &bin, &submit_refs);

    let path_a = a.wait_event(Duration::from_secs(30), "ice_path");
    let path_b = b.wait_event(Duration::from_secs(30), "ice_path");
    let status = a.wait_exit(Duration::from_secs(100));
    let b_computed = b
        .wait_for(Duration::from_secs(5), |v| v["event"] == "task_computed")
        .is_some();
    let _ = turn.kill();
    let _ = turn.wait();
    server.kill();
    b.kill();

    // A relay pair: one of its candidates (or both) is a TURN allocation. A may send
    // from its own address to B's allocation: the hub's address is one A reaches.
    let relayed = |p: &serde_json::Value| p["local"] == "relay" || p["remote"] == "relay";
    assert!(
        relayed(&path_a) && relayed(&path_b),
        "the selected pairs are not relay pairs: A {path_a}, B {path_b}"
    );
    let status = status.expect("meshwork submit did not finish within 100 s");
    assert!(
        status.success(),
        "meshwork submit failed: {status}; {:?}",
        a.seen
    );
    assert_eq!(
        std::fs::read(&png).expect("the job's PNG"),
        reference_png(&job_args(), &tmp.join("reference.png")),
        "the job's output differs from meshwork run's"
    );
    // B computed part of it, through the relay.
    assert!(b_computed, "node B computed nothing: {:?}", b.seen);
}
