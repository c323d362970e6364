//! `cargo xtask`: the one way to set up, build, test, demo and benchmark Meshwork.
//!
//! - `setup`: installs what a fresh machine lacks, idempotently (checks versions first):
//!   the wasm32 target, wasm-bindgen-cli and Trunk at their pinned versions, the npm
//!   packages of `package-lock.json` (`wasm-opt`, `playwright-core`), geckodriver, and
//!   Chromium, Firefox ESR, primesieve, coturn and nftables (with apt, when run as root).
//! - `demo [ARGS]`: setup, build the web UI, run `meshwork demo ARGS` (release build).
//! - `test`: setup, build the web UI, then `cargo fmt --check`, clippy natively and for
//!   wasm32, `cargo test --workspace` (every native layer, the browser end to end
//!   included), the simulator over 5,000 seeds in release, node-core's tests on
//!   wasm32 in Node, the view logic and kernel bytes in Chromium and Firefox, and three
//!   minutes of `chaos` (seed 12); ends with `total: N passed, N failed`.
//! - `build-ui`: build the web UI into `dist/` with Trunk (offline; needs `setup`).
//! - `bench mesh` (or `bench` alone): setup, build the web UI, then the mesh benchmark
//!   on release builds (see `bench.rs`).
//! - `bench engine`: `cargo bench -p node-core --bench engine`, the engine's cost per
//!   task in the simulator and the kernels' speed.
//! - `soak [N]`: the engine simulator over N seeds (default 100,000) and the whole-node
//!   simulator over N/10, in a release build.
//! - `mutants [FILE…]`: mutation testing of the engine with cargo-mutants (installed on
//!   first use); prints caught / missed / unviable and the missed mutants. Slow (hours
//!   over the whole engine on 2 cores), so not part of `test`.
//!
//! CI (`.ci/run`) calls `cargo xtask setup` and `cargo xtask test`, the same commands a
//! person runs.

mod bench;
mod chaos;
mod kernbench;
mod scale;
mod sigbench;
mod viewbench;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

const WASM_BINDGEN_VERSION: &str = "0.2.130";
const TRUNK_VERSION: &str = "0.21.14";
/// geckodriver, for Firefox over WebDriver (the Firefox tests).
const GECKODRIVER_VERSION: &str = "0.37.1";

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (cmd, rest) = args
        .split_first()
        .map_or(("help", &[][..]), |(c, r)| (c.as_str(), r));
    match cmd {
        "setup" => setup(),
        "build-ui" => build_ui(),
        "demo" => {
            setup()?;
            build_ui()?;
            demo(rest)
        }
        "test" => {
            setup()?;
            build_ui()?;
            test()
        }
        "bench" => match rest.first().map(String::as_str) {
            Some("engine") => bench_engine(),
            _ => {
                setup()?;
                build_ui()?;
                bench::run(&root(), rest)
            }
        },
        "soak" => soak(rest),
        "chaos" => chaos::run(&root(), rest),
        "mutants" => mutants(rest),
        "help" | "--help" | "-h" => {
            println!("{HELP}");
            Ok(())
        }
        other => bail!("unknown xtask command {other:?}\n\n{HELP}"),
    }
}

const HELP: &str = "cargo xtask <command>

  setup        install what this machine lacks (wasm target, wasm-bindgen-cli, Trunk,
               npm packages, Chromium, Firefox ESR, geckodriver, primesieve, coturn,
               nftables);
               skips what is already there
  demo [ARGS]  build everything and run `meshwork demo ARGS` (try --help)
  test         build everything, check fmt and clippy (native and wasm32), run every
               test layer, three minutes of chaos; ends with `total: N passed, N failed`
  build-ui     build the web UI into dist/ with Trunk
  bench mesh   mesh benchmark: time to full mesh, throughput, RTT, departure detection
               (`bench` alone runs it too)
  bench engine engine cost per task, r and q overheads, kernel throughput
  bench scale  jobs on native nodes: speedup over one process, r and q costs, a kill
               mid-job, prime counting against primesieve (JSON in target/)
  bench view   the page's bundle size (gzip) and frames per second in a tab of a
               16-member mesh running a 1,024-tile job (JSON in target/)
  bench watch  the bytes a tab that only shows a 2048² job receives: from previews,
               against a presenter's tab that fetches every tile
  bench signaling  the server's memory with 1,000 and 10,000 idle joined members,
               joins per second, relay latency with 1,000 active members, and
               1,000 members' return after a restart (JSON in target/)
  bench kernels  every kernel natively, in wasm in a Chromium worker (first task and
               warm), Mandelbrot against its plain scalar loop, and prime counting
               against primesieve on one thread (JSON in target/)
  bench codec  result packing: LZ4 against DEFLATE (levels 1 and 6) on real Mandelbrot
               and Julia tiles, ratio and speed (why the wire uses LZ4)
  soak [N]     run the engine simulator over N seeds (default 100000) and the
               whole-node simulator over N/10, in a release build
  chaos [--minutes N] [--seed S] [--natives K] [--tabs K] [--no-firefox] [--hostile K]
               native nodes (4), Chromium tabs (2), a Firefox tab, the server and a
               submitter, each member in a namespace of its own, through seeded faults
               (kills, tabs closed, reloaded or crashed, stops, cut links, isolation, a
               split, packet loss, bandwidth caps, server restarts, the presenter's
               console) while jobs run; every output checked against `meshwork run`,
               stalls, members shown gone or lying while alive and panics reported
               (needs root; builds the web UI when there are tabs); --hostile K makes
               K natives serve changed bytes under true hashes (--serve-lies)
  mutants [--iterate] [FILE…]  mutation testing of the engine (default
               node-core/src/engine/*.rs) with cargo-mutants (installed on first use);
               prints caught, missed and unviable mutants and lists the missed ones;
               --iterate tests again only those the last run did not catch. Slow: not
               part of `test`
  help         print this";

/// The workspace root.
///
/// Found at run time, not from the path compiled in: with a target directory shared
/// between checkouts (CI's clone and a person's tree), cargo may reuse an xtask binary
/// built in another checkout, whose compiled-in path would point there.
pub fn root() -> PathBuf {
    // `cargo run` (and so `cargo xtask`) sets this for the binary it runs.
    if let Some(dir) = std::env::var_os("CARGO_MANIFEST_DIR")
        && let Some(parent) = Path::new(&dir).parent()
    {
        return parent.to_path_buf();
    }
    // Run directly: the nearest directory above the current one with a workspace.
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    cwd.ancestors()
        .find(|d| {
            std::fs::read_to_string(d.join("Cargo.toml")).is_ok_and(|t| t.contains("[workspace]"))
        })
        .map_or(cwd.clone(), Path::to_path_buf)
}

pub(crate) fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
}

/// Runs a command in the workspace root, failing with its name if it fails.
fn run(mut cmd: Command) -> Result<()> {
    cmd.current_dir(root());
    let shown = format!("{cmd:?}");
    eprintln!("xtask: {shown}");
    let status = cmd
        .status()
        .with_context(|| format!("cannot start {shown}"))?;
    if !status.success() {
        bail!("{shown} failed ({status})");
    }
    Ok(())
}

/// The first line a command prints, if it runs at all.
fn version_of(program: &str, arg: &str) -> Option<String> {
    let out = Command::new(program).arg(arg).output().ok()?;
    out.status.success().then(|| {
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or("")
            .to_string()
    })
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn setup() -> Result<()> {
    // The wasm target.
    let targets = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    if !targets
        .lines()
        .any(|t| t.trim() == "wasm32-unknown-unknown")
    {
        let mut c = Command::new("rustup");
        c.args(["target", "add", "wasm32-unknown-unknown"]);
        run(c).context("run `rustup target add wasm32-unknown-unknown`")?;
    }
    // wasm-bindgen-cli, exactly the version wasm-bindgen is pinned to, or Trunk tries to
    // download one. Not --locked: its lockfile wants a crate version the registry lacks.
    if !version_of("wasm-bindgen", "--version").is_some_and(|v| v.ends_with(WASM_BINDGEN_VERSION)) {
        let mut c = cargo();
        c.args([
            "install",
            "wasm-bindgen-cli",
            "--version",
            WASM_BINDGEN_VERSION,
            "--force",
        ]);
        run(c).with_context(|| {
            format!("run `cargo install wasm-bindgen-cli --version {WASM_BINDGEN_VERSION}`")
        })?;
    }
    if !version_of("trunk", "--version").is_some_and(|v| v.ends_with(TRUNK_VERSION)) {
        let mut c = cargo();
        c.args([
            "install",
            "trunk",
            "--version",
            TRUNK_VERSION,
            "--locked",
            "--force",
        ]);
        run(c).with_context(|| {
            format!("run `cargo install trunk --version {TRUNK_VERSION} --locked`")
        })?;
    }
    // npm packages from the committed lockfile: wasm-opt for Trunk, playwright-core for
    // the browser tests. `npm ci` only when the installed tree is not the locked one.
    let root = root();
    let installed = root.join("node_modules/.package-lock.json");
    let fresh = std::fs::read(&installed).ok().is_some_and(|inst| {
        let lock = std::fs::read(root.join("package-lock.json")).unwrap_or_default();
        lock_packages(&inst) == lock_packages(&lock)
    });
    if !fresh {
        if version_of("npm", "--version").is_none() {
            bail!(
                "npm is missing: install Node.js 20 and npm (Debian: apt-get install -y nodejs npm)"
            );
        }
        let mut c = Command::new("npm");
        c.args(["ci", "--no-audit", "--no-fund"]);
        run(c).context("run `npm ci` in the workspace root")?;
    }
    // Chromium for the end-to-end tests.
    if !Path::new("/usr/bin/chromium").exists() || !Path::new("/usr/bin/chromedriver").exists() {
        let apt = Path::new("/usr/bin/apt-get").exists();
        if apt && is_root() {
            let mut c = Command::new("apt-get");
            c.arg("update");
            run(c)?;
            let mut c = Command::new("apt-get");
            c.args(["install", "-y", "chromium", "chromium-driver"])
                .env("DEBIAN_FRONTEND", "noninteractive");
            run(c)?;
        } else {
            eprintln!(
                "xtask: Chromium is missing; the browser tests need it. Install it with:\n  \
                 sudo apt-get update && sudo apt-get install -y chromium chromium-driver"
            );
        }
    }
    // primesieve, the reference `cargo xtask bench scale` compares prime counting with
    // (the benchmark says "skipped" without it; no test needs it), and coturn, the TURN
    // server `native_turn` relays through (a test needs it: under CI=true its absence
    // fails that test).
    for (package, present, without) in [
        (
            "primesieve",
            version_of("primesieve", "--version").is_some(),
            "`bench scale` will skip its row",
        ),
        (
            "coturn",
            Path::new("/usr/bin/turnserver").exists(),
            "the TURN test will be skipped (a failure under CI=true)",
        ),
        (
            "firefox-esr",
            Path::new("/usr/bin/firefox-esr").exists(),
            "the Firefox tests will be skipped (a failure under CI=true)",
        ),
        (
            "nftables",
            Path::new("/usr/sbin/nft").exists(),
            "`cargo xtask chaos` cannot cut links or drop packets and will skip",
        ),
    ] {
        if present || !Path::new("/usr/bin/apt-get").exists() || !is_root() {
            if !present {
                eprintln!("xtask: {package} is missing (apt-get install {package}): {without}");
            }
            continue;
        }
        let install = || {
            let mut c = Command::new("apt-get");
            c.args(["install", "-y", package])
                .env("DEBIAN_FRONTEND", "noninteractive");
            run(c)
        };
        // The package lists may be stale on a machine that had Chromium already.
        let done = install().is_ok() || {
            let mut c = Command::new("apt-get");
            c.arg("update");
            run(c).is_ok() && install().is_ok()
        };
        if !done {
            eprintln!("xtask: could not install {package}: {without}");
        }
    }
    // geckodriver drives Firefox over WebDriver for the Firefox tests, which skip
    // without it (a failure under CI=true): a failed install is reported, not fatal.
    // Its first line reads "geckodriver 0.37.1 (…)".
    if version_of("geckodriver", "--version")
        .is_none_or(|v| v.split_whitespace().nth(1) != Some(GECKODRIVER_VERSION))
    {
        let mut c = cargo();
        c.args([
            "install",
            "geckodriver",
            "--version",
            GECKODRIVER_VERSION,
            "--locked",
            "--force",
        ]);
        if let Err(e) = run(c) {
            eprintln!(
                "xtask: could not install geckodriver {GECKODRIVER_VERSION} ({e:#}): the Firefox tests will be skipped (a failure under CI=true)"
            );
        }
    }
    Ok(())
}

/// The `packages` entry of an npm lockfile, for comparing an installed tree to the lock.
fn lock_packages(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    // Compare names and versions only: the two files differ in their headers.
    text.lines()
        .filter(|l| l.contains("\"node_modules/") || l.trim_start().starts_with("\"version\""))
        .map(str::trim)
        .collect::<Vec<_>>()
        .join("\n")
}

/// PATH with the npm tools (wasm-opt) first.
fn path_with_node_bin() -> std::ffi::OsString {
    let mut paths = vec![root().join("node_modules/.bin")];
    if let Some(p) = std::env::var_os("PATH") {
        paths.extend(std::env::split_paths(&p));
    }
    std::env::join_paths(paths).unwrap_or_default()
}

pub(crate) fn build_ui() -> Result<()> {
    let mut c = Command::new("trunk");
    c.args(["build", "--release"])
        .env("PATH", path_with_node_bin())
        .env("TRUNK_SKIP_VERSION_CHECK", "true");
    run(c).context("building the web UI with Trunk (run `cargo xtask setup` first)")
}

fn demo(args: &[String]) -> Result<()> {
    let args = args.strip_prefix(&["--".to_string()]).unwrap_or(args);
    let mut c = cargo();
    c.args([
        "run",
        "--release",
        "--quiet",
        "-p",
        "node-cli",
        "--",
        "demo",
    ])
    .args(args);
    run(c)
}

fn bench_engine() -> Result<()> {
    let mut c = cargo();
    c.args(["bench", "-p", "node-core", "--bench", "engine"]);
    run(c)
}

fn soak(args: &[String]) -> Result<()> {
    let seeds: u64 = match args.first() {
        Some(n) => n
            .parse()
            .with_context(|| format!("soak: {n:?} is not a number of seeds"))?,
        None => 100_000,
    };
    let start = std::time::Instant::now();
    let mut c = cargo();
    c.arg("test")
        .args(SIM_RELEASE)
        .args(["--", "--nocapture"])
        .env("SIM_SEEDS", seeds.to_string());
    run(c)?;
    // Whole nodes cost more per run (heartbeats, chunks): a tenth as many seeds.
    let mesh_seeds = (seeds / 10).max(1);
    let mut c = cargo();
    c.arg("test")
        .args(MESH_SIM_RELEASE)
        .args(["--", "--nocapture"])
        .env("MESH_SIM_SEEDS", mesh_seeds.to_string());
    run(c)?;
    println!(
        "soak: {seeds} engine seeds and {mesh_seeds} whole-node seeds without a violation in {:.0} s",
        start.elapsed().as_secs_f64()
    );
    Ok(())
}

const CARGO_MUTANTS_VERSION: &str = "27.1.0";

/// `cargo test` arguments for the simulator's seed sweep in a release build.
const SIM_RELEASE: &[&str] = &[
    "--release",
    "-p",
    "node-core",
    "--test",
    "sim",
    "simulated_meshes_stay_safe_and_live",
];

/// The whole-node simulator in a release build.
const MESH_SIM_RELEASE: &[&str] = &["--release", "-p", "node-core", "--test", "mesh_sim"];

/// `cargo xtask mutants [FILE…]`: how many of the engine's mutants its tests catch.
fn mutants(args: &[String]) -> Result<()> {
    let installed = cargo()
        .args(["mutants", "--version"])
        .output()
        .is_ok_and(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .ends_with(CARGO_MUTANTS_VERSION)
        });
    if !installed {
        let mut c = cargo();
        c.args([
            "install",
            "cargo-mutants",
            "--version",
            CARGO_MUTANTS_VERSION,
            "--locked",
        ]);
        run(c).context("install cargo-mutants")?;
    }
    // `--iterate`: test again only the mutants the last run did not catch.
    let iterate = args.iter().any(|a| a == "--iterate");
    let args: Vec<String> = args.iter().filter(|a| *a != "--iterate").cloned().collect();
    let files: Vec<String> = if args.is_empty() {
        vec!["node-core/src/engine/*.rs".into()]
    } else {
        args
    };
    let out_dir = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root().join("target"), PathBuf::from)
        .join("mutants");
    let mut c = cargo();
    // Each of cargo-mutants' copies of the tree builds in its own target directory: a
    // shared one would mix mutated builds with the ones a person runs meanwhile.
    c.env_remove("CARGO_TARGET_DIR");
    c.args([
        "mutants",
        "-p",
        "node-core",
        "--no-shuffle",
        "-j",
        "2",
        "--profile",
        "mutation",
    ]);
    for f in &files {
        c.args(["-f", f]);
    }
    if iterate {
        c.arg("--iterate");
    }
    c.arg("--output").arg(&out_dir).current_dir(root());
    eprintln!("xtask: {c:?}");
    // cargo-mutants exits with 2 when a mutant was missed and 3 when one timed out: the
    // summary below says so. Any other failure (a broken baseline, an internal error)
    // means the counts are incomplete.
    let code = c.status().context("cannot start cargo mutants")?.code();
    if !matches!(code, Some(0 | 2 | 3)) {
        bail!("cargo mutants failed (exit {code:?}): the run is incomplete");
    }
    let read = |name: &str| -> Vec<String> {
        std::fs::read_to_string(out_dir.join("mutants.out").join(name))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    };
    let (caught, missed, timeout, unviable) = (
        read("caught.txt"),
        read("missed.txt"),
        read("timeout.txt"),
        read("unviable.txt"),
    );
    let viable = caught.len() + missed.len() + timeout.len();
    println!(
        "mutants: {} caught, {} missed, {} timed out, {} unviable; {:.1} % of viable mutants caught",
        caught.len(),
        missed.len(),
        timeout.len(),
        unviable.len(),
        100.0 * (caught.len() + timeout.len()) as f64 / viable.max(1) as f64
    );
    for m in &missed {
        println!("  missed: {m}");
    }
    if viable == 0 {
        bail!("no mutant was tested");
    }
    Ok(())
}

/// Totals of `test result:` lines.
#[derive(Default)]
struct Tally {
    passed: u64,
    failed: u64,
    ignored: u64,
}

impl Tally {
    fn read(&mut self, line: &str) {
        let Some(rest) = line.trim().strip_prefix("test result: ") else {
            return;
        };
        for part in rest.split(['.', ';']) {
            let mut words = part.split_whitespace();
            let (Some(n), Some(what)) = (words.next(), words.next()) else {
                continue;
            };
            let Ok(n) = n.parse::<u64>() else { continue };
            match what {
                "passed" => self.passed += n,
                "failed" => self.failed += n,
                "ignored" => self.ignored += n,
                _ => {}
            }
        }
    }
}

/// Runs `cargo test …`, echoing its output and counting its results.
fn cargo_test(
    args: &[&str],
    env: &[(&str, std::ffi::OsString)],
    tally: &mut Tally,
) -> Result<bool> {
    cargo_test_in(&[], args, env, tally)
}

/// [`cargo_test`] run through `wrapper` (e.g. `ip netns exec NAME`).
fn cargo_test_in(
    wrapper: &[&str],
    args: &[&str],
    env: &[(&str, std::ffi::OsString)],
    tally: &mut Tally,
) -> Result<bool> {
    let mut c = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest)
                .arg(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
            c
        }
        None => cargo(),
    };
    c.arg("test")
        .args(args)
        .current_dir(root())
        .stdout(Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    eprintln!("xtask: cargo test {}", args.join(" "));
    let mut child = c.spawn().context("cannot start cargo test")?;
    let stdout = child.stdout.take().context("piped stdout")?;
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        println!("{line}");
        tally.read(&line);
    }
    Ok(child.wait()?.success())
}

/// Component tests on wasm32 in headless browsers (wasm-bindgen-test): the page's view
/// logic and the kernels' same bytes, each in Chromium and in Firefox, inside a network
/// namespace of its own with only `lo`, so the browsers can reach nothing but loopback.
/// Needs root for the namespace and both drivers: without one the browser's runs are
/// skipped with a message, and under `CI=true` that is a failure.
fn component_tests_in_browsers(tally: &mut Tally) -> Result<bool> {
    // (what, cargo test arguments, extra environment)
    type Suite<'a> = (&'a str, &'a [&'a str], &'a [(&'a str, &'a str)]);
    let suites: [Suite; 2] = [
        (
            "the view logic",
            &[
                "-p",
                "web-ui",
                "--target",
                "wasm32-unknown-unknown",
                "--test",
                "view_logic",
            ],
            &[("WASM_BINDGEN_TEST_TIMEOUT", "120")],
        ),
        (
            "the kernels' same bytes",
            &[
                "-p",
                "node-core",
                "--target",
                "wasm32-unknown-unknown",
                "--test",
                "kernels_same_bytes",
            ],
            // The suite runs in Node by default; this puts it in the browser. The runner
            // gives a browser 20 s by default; a debug build of the prime cases on a
            // busy machine may want more.
            &[
                ("WASM_BINDGEN_USE_BROWSER", "1"),
                ("WASM_BINDGEN_TEST_TIMEOUT", "120"),
            ],
        ),
    ];
    let ci = std::env::var("CI").is_ok_and(|v| v == "true");
    let root_user = is_root();
    let gecko = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .map(|d| d.join("geckodriver"))
        .find(|p| p.is_file());
    let browsers = [
        (
            "Chromium",
            "CHROMEDRIVER",
            Some(Path::new("/usr/bin/chromedriver").to_path_buf())
                .filter(|p| p.exists() && Path::new("/usr/bin/chromium").exists()),
            "chromedriver or chromium is missing (apt-get install chromium chromium-driver)",
        ),
        (
            "Firefox",
            "GECKODRIVER",
            // wasm-bindgen-test-runner's geckodriver starts `firefox` from PATH, which
            // Debian's firefox-esr provides as /usr/bin/firefox.
            gecko.filter(|_| Path::new("/usr/bin/firefox").exists()),
            "geckodriver or Firefox is missing (`cargo xtask setup`: apt-get install firefox-esr, cargo install geckodriver)",
        ),
    ];
    let mut ok = true;
    let mut runnable = Vec::new();
    for (browser, var, driver, missing) in browsers {
        let why = match (root_user, driver) {
            (true, Some(driver)) => {
                runnable.push((browser, var, driver));
                continue;
            }
            (false, _) => "creating a network namespace needs root",
            (true, None) => missing,
        };
        if ci {
            eprintln!("xtask: the component tests in {browser} cannot run: {why}");
            ok = false;
        } else {
            eprintln!("xtask: SKIP the component tests in {browser}: {why}");
        }
    }
    if runnable.is_empty() {
        return Ok(ok);
    }
    // Built outside the namespace, which has no network to fetch with.
    for (_, args, _) in &suites {
        let mut build = cargo();
        build.arg("test").args(*args).arg("--no-run");
        run(build)?;
    }
    let ns = format!("meshwork-wbt-{}", std::process::id());
    let mut add = Command::new("ip");
    add.args(["netns", "add", &ns]);
    run(add)?;
    let mut up = Command::new("ip");
    up.args(["netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
    let result = run(up).and_then(|()| {
        for (browser, var, driver) in &runnable {
            for (what, args, env) in &suites {
                eprintln!("xtask: {what} in {browser}");
                let mut with_offline = args.to_vec();
                with_offline.push("--offline");
                let mut vars: Vec<(&str, std::ffi::OsString)> = vec![(var, driver.into())];
                vars.extend(env.iter().map(|(k, v)| (*k, std::ffi::OsString::from(v))));
                ok &= cargo_test_in(&["ip", "netns", "exec", &ns], &with_offline, &vars, tally)?;
            }
        }
        Ok(ok)
    });
    let mut del = Command::new("ip");
    del.args(["netns", "del", &ns]);
    let deleted = run(del);
    let ok = result?;
    deleted?;
    Ok(ok)
}

/// Runs `cargo ARGS` as one check of `cargo xtask test`; a failure is reported and
/// remembered, and the other checks still run.
fn check(args: &[&str], hint: &str, ok: &mut bool) {
    let mut c = cargo();
    c.args(args);
    if let Err(e) = run(c) {
        eprintln!("xtask: {e:#}{hint}");
        *ok = false;
    }
}

fn test() -> Result<()> {
    let mut ok = true;
    check(
        &["fmt", "--all", "--check"],
        ": run `cargo fmt --all`",
        &mut ok,
    );
    check(
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        "",
        &mut ok,
    );
    // The browser half: node-core's web transport and run loop, and the page.
    check(
        &[
            "clippy",
            "-p",
            "node-core",
            "-p",
            "web-ui",
            "--features",
            "node-core/platform",
            "--target",
            "wasm32-unknown-unknown",
            "--all-targets",
            "--",
            "-D",
            "warnings",
        ],
        "",
        &mut ok,
    );
    let mut tally = Tally::default();
    // Native: unit tests, signaling over sockets, the native mesh, the browser end to end.
    ok &= cargo_test(&["--workspace"], &[], &mut tally)?;
    // The simulator over 5,000 seeds in a release build (a few seconds), to reach the
    // rare paths the 500 seeds of the debug run may miss.
    ok &= cargo_test(SIM_RELEASE, &[("SIM_SEEDS", "5000".into())], &mut tally)?;
    // The whole-node simulator over 2,000 seeds in release (about 25 s).
    ok &= cargo_test(
        MESH_SIM_RELEASE,
        &[("MESH_SIM_SEEDS", "2000".into())],
        &mut tally,
    )?;
    // node-core on wasm32, in Node through wasm-bindgen-test-runner.
    ok &= cargo_test(
        &["-p", "node-core", "--target", "wasm32-unknown-unknown"],
        &[],
        &mut tally,
    )?;
    ok &= component_tests_in_browsers(&mut tally)?;
    // Real processes through seeded faults: three minutes with a fixed seed, every kind
    // of fault at least once (a replay: `cargo xtask chaos --minutes 3 --seed 12`).
    match chaos::checked(
        &root(),
        &["--minutes", "3", "--seed", "12"].map(String::from),
    ) {
        Ok(true) => tally.passed += 1,
        Ok(false) => {}
        Err(e) => {
            eprintln!("xtask: the chaos run failed: {e:#}");
            tally.failed += 1;
            ok = false;
        }
    }
    println!();
    println!("total: {} passed, {} failed", tally.passed, tally.failed);
    if tally.ignored > 0 {
        println!("total ignored: {}", tally.ignored);
    }
    if !ok || tally.failed > 0 {
        bail!("some checks failed (see above)");
    }
    if tally.passed == 0 {
        bail!("no test ran");
    }
    Ok(())
}
