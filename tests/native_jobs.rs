//! Jobs on a native mesh over real WebRTC on loopback: `meshwork submit` hands a job to
//! a room of `meshwork node` processes, two of them are killed with SIGKILL mid-job,
//! and the output is byte-identical to `meshwork run`'s, the same job computed by one
//! process alone.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{Proc, meshwork, node, server, wait_connected};

/// Runs `meshwork run` with `job` and returns its stdout (the JSON output, if any).
fn reference(job: &[&str]) -> String {
    let out = meshwork()
        .arg("run")
        .args(job)
        .output()
        .expect("meshwork run starts");
    assert!(
        out.status.success(),
        "meshwork run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn submit(addr: &str, room: &str, job: &[&str], extra: &[&str]) -> Proc {
    let mut cmd = meshwork();
    cmd.args([
        "submit",
        "--server",
        &format!("http://{addr}"),
        "--room",
        room,
        "--ice-bind",
        "127.0.0.1",
        "--json",
    ])
    .args(job)
    .args(extra);
    Proc::spawn("submit", cmd)
}

fn tasks_validated(p: &Proc) -> u64 {
    p.seen
        .iter()
        .filter(|v| v["event"] == "task_validated")
        .count() as u64
}

#[test]
fn a_mandelbrot_job_survives_two_nodes_killed_and_equals_the_one_process_image() {
    let dir = std::env::temp_dir().join(format!("meshwork-jobs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let (mesh_png, ref_png) = (dir.join("mesh.png"), dir.join("ref.png"));
    let job = |out: &Path| -> Vec<String> {
        [
            "--kernel",
            "mandelbrot",
            "--width",
            "512",
            "--height",
            "512",
            "--max-iter",
            "300",
            "--tiles",
            "16x16",
            "--out",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain([out.display().to_string()])
        .collect()
    };
    let ref_args = job(&ref_png);
    reference(&ref_args.iter().map(String::as_str).collect::<Vec<_>>());

    let (_server, addr) = server(&[]);
    let room = "native-jobs";
    let mut nodes: Vec<Proc> = (0..4)
        .map(|i| node(&addr, room, &format!("n{i}"), &["--workers", "1"]))
        .collect();
    for n in nodes.iter_mut() {
        wait_connected(n, 3, Duration::from_secs(60));
    }
    let mesh_args = job(&mesh_png);
    // Paced so that the job lasts a few seconds: the kills land while it runs.
    let mut sub = submit(
        &addr,
        room,
        &mesh_args.iter().map(String::as_str).collect::<Vec<_>>(),
        &[
            "--replicas",
            "2",
            "--pace-ms",
            "40",
            "--workers",
            "1",
            "--timeout",
            "120",
        ],
    );
    sub.wait_event(Duration::from_secs(30), "job_accepted");
    // Once a fifth of the 256 tiles are validated, two nodes die without a word.
    sub.wait_for(Duration::from_secs(60), |v| {
        v["event"] == "job_progress" && v["tasks_validated"].as_u64().is_some_and(|n| n >= 50)
    })
    .unwrap_or_else(|| panic!("no progress; saw {:?}", sub.seen));
    let before = tasks_validated(&sub);
    nodes[1].kill();
    nodes[2].kill();
    let status = sub
        .wait_exit(Duration::from_secs(150))
        .unwrap_or_else(|| panic!("submit did not finish; saw {:?}", sub.seen.last()));
    assert!(status.success(), "submit failed: {status}");
    assert!(before < 256, "the job was over before the kills");
    assert!(
        sub.seen.iter().any(|v| v["event"] == "peer_left"),
        "the submitter never saw the kills"
    );
    let (mesh, reference) = (
        std::fs::read(&mesh_png).unwrap(),
        std::fs::read(&ref_png).unwrap(),
    );
    assert!(
        mesh == reference,
        "the mesh's PNG differs from the one-process PNG"
    );
    // The others computed too: not every task ran on the submitter.
    let here = sub
        .seen
        .iter()
        .filter(|v| v["event"] == "task_computed")
        .count();
    assert!(here < 256, "the submitter computed every task itself");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_prime_count_to_a_billion_on_the_mesh_is_50_847_534() {
    let (_server, addr) = server(&[]);
    let room = "native-primes";
    let mut nodes: Vec<Proc> = (0..2)
        .map(|i| node(&addr, room, &format!("p{i}"), &["--workers", "1"]))
        .collect();
    for n in nodes.iter_mut() {
        wait_connected(n, 1, Duration::from_secs(60));
    }
    // The job goes out once the submitter is connected to both members the server
    // listed, not after the (here longer than the whole test) --wait-ms.
    let mut sub = submit(
        &addr,
        room,
        &["--kernel", "primes", "--n", "1000000000", "--ranges", "64"],
        &[
            "--replicas",
            "1",
            "--workers",
            "1",
            "--timeout",
            "120",
            "--wait-ms",
            "600000",
        ],
    );
    let status = sub
        .wait_exit(Duration::from_secs(150))
        .unwrap_or_else(|| panic!("submit did not finish; saw {:?}", sub.seen.last()));
    assert!(status.success(), "submit failed: {status}");
    let at = |event: &str| sub.seen.iter().position(|v| v["event"] == event);
    let joined = at("joined").expect("joined");
    assert_eq!(sub.seen[joined]["peers"], 2, "{:?}", sub.seen[joined]);
    let connected: Vec<usize> = (0..sub.seen.len())
        .filter(|i| sub.seen[*i]["event"] == "peer_connected")
        .collect();
    assert!(connected.len() >= 2, "{:?}", sub.seen);
    assert!(at("job_accepted").expect("accepted") > connected[1]);
    let result = sub
        .seen
        .iter()
        .find(|v| v["kernel"] == "primes")
        .unwrap_or_else(|| panic!("no result line; saw {:?}", sub.seen));
    assert_eq!(result["count"], 50_847_534);
    assert_eq!(result["n"], 1_000_000_000u64);
    // The job's own figures, by the submitter's clock (what `bench scale` reports).
    let done = &sub.seen[at("job_done").expect("job_done")];
    let computed = sub
        .seen
        .iter()
        .filter(|v| v["event"] == "task_computed")
        .count();
    assert_eq!(done["computed_here"], computed as u64, "{done}");
    let ms = |k: &str| done[k].as_u64().unwrap_or_else(|| panic!("no {k}: {done}"));
    assert!(
        ms("validated_ms") <= ms("assembled_ms") && ms("assembled_ms") < 150_000,
        "{done}"
    );
}

#[test]
fn invalid_jobs_are_refused_before_anything_reaches_a_mesh() {
    // No server runs: a job refused for its parameters never tries to connect.
    // (arguments, what the message says); clap's own usage errors span a few lines.
    let cases: [(&[&str], &str); 10] = [
        (
            &["--kernel", "mandelbrot", "--tiles", "0x4", "--out", "x.png"],
            "tile grid",
        ),
        (
            &[
                "--kernel",
                "mandelbrot",
                "--width",
                "4096",
                "--height",
                "4096",
                "--tiles",
                "2x2",
                "--out",
                "x.png",
            ],
            "over the",
        ),
        (&["--kernel", "mandelbrot"], "--out"),
        (
            &["--kernel", "pi", "--replicas", "1", "--quorum", "2"],
            "quorum 2 is over the replication 1",
        ),
        (&["--kernel", "primes", "--n", "0"], "primes"),
        (&["--kernel", "fractal"], "invalid value 'fractal'"),
        (&["--kernel", "julia"], "--out"),
        (
            &["--kernel", "julia", "--c=3,0", "--out", "x.png"],
            "c_re 3 is not",
        ),
        (
            &["--kernel", "julia", "--c=-0.8", "--out", "x.png"],
            "is not RE,IM",
        ),
        (
            &["--kernel", "julia", "--view=0,1,2", "--out", "x.png"],
            "is not X_MIN,X_MAX,Y_MIN,Y_MAX",
        ),
    ];
    for (args, want) in cases {
        let out = meshwork()
            .args(["submit", "--server", "http://127.0.0.1:9"])
            .args(args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(err.contains(want), "{args:?}: {err}");
        assert!(
            !err.contains("cannot join"),
            "{args:?} tried to connect: {err}"
        );
        if !want.starts_with("invalid value") {
            assert_eq!(
                err.trim().lines().count(),
                1,
                "{args:?}: not one line: {err}"
            );
        }
    }
}

#[test]
fn meshwork_run_draws_a_julia_set_the_same_in_any_tiling() {
    let dir = std::env::temp_dir().join(format!("meshwork-julia-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = |kernel: &str, tiles: &str, c: &str| -> Vec<u8> {
        let out = dir.join(format!("{kernel}-{tiles}-{c}.png"));
        reference(&[
            "--kernel",
            kernel,
            "--width",
            "96",
            "--height",
            "64",
            "--max-iter",
            "300",
            "--tiles",
            tiles,
            &format!("--c={c}"),
            "--out",
            out.to_str().unwrap(),
        ]);
        std::fs::read(&out).unwrap()
    };
    let whole = png("julia", "1x1", "-0.8,0.156");
    assert!(whole.starts_with(b"\x89PNG"));
    assert_eq!(png("julia", "8x4", "-0.8,0.156"), whole);
    assert_ne!(png("julia", "1x1", "0.285,0.01"), whole, "c is used");
    assert_ne!(png("mandelbrot", "1x1", "-0.8,0.156"), whole);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_submitter_that_computes_nothing_in_an_empty_room_says_so() {
    let (_server, addr) = server(&[]);
    let mut sub = submit(
        &addr,
        "nobody-here",
        &["--kernel", "pi", "--tasks", "4"],
        &["--no-compute", "--wait-ms", "300", "--timeout", "30"],
    );
    let status = sub
        .wait_exit(Duration::from_secs(30))
        .expect("submit gives up at once");
    assert!(!status.success());
    assert!(
        !sub.seen.iter().any(|v| v["event"] == "job_accepted"),
        "the job was handed out to nobody"
    );
}
