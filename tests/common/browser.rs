//! Helpers of the end-to-end tests with real browsers (`browser_mesh`, `browser_jobs`):
//! prerequisites and skipping, the network namespace that confines WebRTC to loopback,
//! running a Node controller from `tests/e2e/` inside it, and decoding screenshots.
//!
//! A controller prints progress on stderr and its JSON summary as the last stdout line;
//! every process it starts runs in the namespace, and whatever is left there when the
//! [`Netns`] guard drops is killed (all of it was started by the test).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
pub const CHROMIUM: &str = "/usr/bin/chromium";

pub fn workspace() -> PathBuf {
    Path::new(WORKSPACE).canonicalize().expect("workspace root")
}

/// Runs a command quietly; Ok(stdout) when it exits 0.
pub fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(cmd)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run {cmd}: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(format!(
            "`{cmd} {}` failed ({}): {}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A network namespace holding only `lo` (up). Dropping it kills whatever still runs
/// inside (all of it started by this test) and deletes it.
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn create() -> Result<Netns, String> {
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_micros())
            .unwrap_or(0);
        let name = format!("meshwork-e2e-{}-{stamp}", std::process::id());
        run("ip", &["netns", "add", &name])?;
        // From here on the guard deletes it, whatever fails next.
        let ns = Netns { name };
        ns.exec_quiet(&["ip", "link", "set", "lo", "up"])?;
        let links = ns.exec_quiet(&["ip", "-o", "link", "show"])?;
        let names: Vec<&str> = links
            .lines()
            .filter_map(|l| l.split(':').nth(1).map(str::trim))
            .collect();
        if names != ["lo"] {
            return Err(format!(
                "namespace {} should hold only lo, has {names:?}",
                ns.name
            ));
        }
        Ok(ns)
    }

    pub fn exec_quiet(&self, cmd: &[&str]) -> Result<String, String> {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Pids of processes still in the namespace.
    pub fn pids(&self) -> Vec<String> {
        run("ip", &["netns", "pids", &self.name])
            .map(|s| s.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Normally empty: the controller kills its children. After a timeout or a
        // crash of the controller, browsers or nodes may be left; each pid listed is in
        // this test's namespace, so it was started by this test.
        for _ in 0..3 {
            let pids = self.pids();
            if pids.is_empty() {
                break;
            }
            eprintln!(
                "[e2e] killing leftover processes in {}: {pids:?}",
                self.name
            );
            let mut args = vec!["-KILL".to_string()];
            args.extend(pids);
            let _ = Command::new("kill")
                .args(&args)
                .stderr(Stdio::null())
                .status();
            std::thread::sleep(Duration::from_millis(200));
        }
        if let Err(e) = run("ip", &["netns", "del", &self.name]) {
            eprintln!("[e2e] could not delete namespace {}: {e}", self.name);
        }
    }
}

/// Kills the controller (by its pid) if it is still running when dropped.
pub struct Controller(pub Child);

impl Drop for Controller {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// What is missing to run the test, with how to get it.
pub fn missing_prerequisites(ws: &Path, dist: &Path) -> Vec<String> {
    let mut missing = Vec::new();
    if !dist.join("index.html").is_file() {
        missing.push(format!(
            "the web UI at {} (`cargo xtask test` builds it; or `trunk build --release` in the \
             workspace with node_modules/.bin on PATH)",
            dist.display()
        ));
    }
    if !ws
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push(
            "node_modules/playwright-core (`cargo xtask setup`, or `npm ci` in the workspace)"
                .into(),
        );
    }
    if !Path::new(CHROMIUM).exists() {
        missing.push(format!(
            "{CHROMIUM} (`cargo xtask setup`, or `apt-get install -y chromium`)"
        ));
    }
    if Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_or(true, |s| !s.success())
    {
        missing.push("`node` (Node.js 20+) on PATH (`cargo xtask setup`)".into());
    }
    missing
}

pub const FIREFOX: &str = "/usr/bin/firefox-esr";

/// `name` in a directory of `PATH`.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
}

/// Firefox ESR and geckodriver for the Firefox members, or what is missing.
pub fn firefox_prerequisites() -> Result<(PathBuf, PathBuf), String> {
    let firefox = Path::new(FIREFOX);
    let driver = on_path("geckodriver");
    match (firefox.exists(), driver) {
        (true, Some(driver)) => Ok((driver, firefox.to_path_buf())),
        (has_firefox, driver) => Err([
            (!has_firefox).then(|| {
                format!("{FIREFOX} (`cargo xtask setup`, or `apt-get install -y firefox-esr`)")
            }),
            driver.is_none().then(|| {
                "geckodriver on PATH (`cargo xtask setup`, or `cargo install geckodriver`)"
                    .to_string()
            }),
        ]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("; ")),
    }
}

/// Skips (prints why) or, under CI=true, fails.
pub fn skip_or_fail(test: &str, what: &str) {
    let msg = format!(
        "{test} needs: {what}.\n  Get them with `cargo xtask setup`; `cargo xtask test` builds dist/; \
         the test must run as root to create a network namespace (`ip netns add`)."
    );
    if super::in_ci() {
        panic!("{msg}\n  (CI=true: a missing prerequisite is a failure, not a skip)");
    }
    eprintln!("SKIP {test}: {msg}\n  (set CI=true to make this a failure)");
}

/// A decoded screenshot as RGB pixels.
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub rgb: Vec<[u8; 3]>,
}

pub fn decode_png(path: &Path) -> Result<Image, String> {
    let file = File::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let mut decoder = png::Decoder::new(BufReader::new(file));
    decoder.set_transformations(png::Transformations::normalize_to_color8());
    let mut reader = decoder
        .read_info()
        .map_err(|e| format!("{} is not a PNG: {e}", path.display()))?;
    let size = reader
        .output_buffer_size()
        .ok_or_else(|| format!("{}: image too large", path.display()))?;
    let mut buf = vec![0; size];
    let frame = reader
        .next_frame(&mut buf)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let channels = frame.color_type.samples();
    let rgb = buf[..frame.buffer_size()]
        .chunks_exact(frame.line_size)
        .flat_map(|line| {
            line[..frame.width as usize * channels]
                .chunks_exact(channels)
                .map(|p| match channels {
                    1 | 2 => [p[0]; 3],
                    _ => [p[0], p[1], p[2]],
                })
        })
        .collect();
    Ok(Image {
        width: frame.width,
        height: frame.height,
        rgb,
    })
}

impl Image {
    pub fn distinct_colours(&self) -> usize {
        self.rgb.iter().collect::<HashSet<_>>().len()
    }

    /// Share of pixels that differ from the most common (background) colour.
    pub fn non_background(&self) -> f64 {
        let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
        for p in &self.rgb {
            *counts.entry(*p).or_default() += 1;
        }
        let top = counts.values().copied().max().unwrap_or(0);
        1.0 - top as f64 / self.rgb.len().max(1) as f64
    }

    /// Pixels within `tol` (per channel) of `colour`.
    pub fn near(&self, colour: [u8; 3], tol: u8) -> usize {
        self.rgb
            .iter()
            .filter(|p| p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= tol))
            .count()
    }
}

/// Checks that a screenshot is big enough and shows something; logs what it saw.
pub fn check_screenshot(
    path: &Path,
    min_w: u32,
    min_h: u32,
    min_colours: usize,
) -> Result<Image, String> {
    if !path.is_file() {
        return Err(format!("{}: no such screenshot", path.display()));
    }
    let img = decode_png(path)?;
    let colours = img.distinct_colours();
    let busy = img.non_background();
    eprintln!(
        "[e2e] {}: {}x{}, {colours} colours, {:.1}% non-background",
        path.display(),
        img.width,
        img.height,
        busy * 100.0
    );
    if img.width < min_w || img.height < min_h {
        return Err(format!(
            "{}: {}x{} is smaller than {min_w}x{min_h}",
            path.display(),
            img.width,
            img.height
        ));
    }
    if colours < min_colours {
        return Err(format!(
            "{}: only {colours} colours: blank?",
            path.display()
        ));
    }
    if busy < 0.01 {
        return Err(format!(
            "{}: {:.3}% of pixels differ from the background: blank?",
            path.display(),
            busy * 100.0
        ));
    }
    Ok(img)
}

/// The built web UI: `dist/`, or `MESHWORK_E2E_DIST` to try another build.
pub fn dist_dir(ws: &Path) -> PathBuf {
    std::env::var_os("MESHWORK_E2E_DIST").map_or_else(|| ws.join("dist"), PathBuf::from)
}

/// Runs `node tests/e2e/SCRIPT CONFIG` inside `ns`, its stderr echoed (and logged to
/// `out/controller.log`), killed after `timeout`. Returns its exit status (None if it
/// was killed) and its summary (the last stdout line, parsed), also written to
/// `out/summary.json`.
pub fn run_controller(
    ns: &Netns,
    script: &str,
    config: &Value,
    out: &Path,
    timeout: Duration,
) -> (Option<ExitStatus>, Result<Value, String>) {
    let ws = workspace();
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "node"])
        .arg(ws.join("tests/e2e").join(script))
        .arg(config.to_string())
        .current_dir(&ws)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the controller");
    let stdout = child.stdout.take().expect("stdout");
    let stderr = child.stderr.take().expect("stderr");
    let mut controller = Controller(child);
    let log_path = out.join("controller.log");
    let err_thread = std::thread::spawn(move || {
        let mut log = File::create(&log_path).ok();
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            eprintln!("{line}");
            if let Some(f) = log.as_mut() {
                let _ = writeln!(f, "{line}");
            }
        }
    });
    let out_thread = std::thread::spawn(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .filter(|l| !l.trim().is_empty())
            .last()
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = controller.0.try_wait().expect("wait for the controller") {
            break Some(status);
        }
        if started.elapsed() > timeout {
            eprintln!(
                "[e2e] the controller overran {timeout:?}: killing it (pid {})",
                controller.0.id()
            );
            drop(controller);
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let last = out_thread.join().expect("stdout reader");
    let _ = err_thread.join();
    let summary = match last {
        None => Err("the controller printed no summary".to_string()),
        Some(l) => serde_json::from_str::<Value>(&l)
            .map_err(|e| format!("the controller's last line is not JSON ({e}): {l}")),
    };
    if let Ok(s) = &summary {
        let _ = std::fs::write(
            out.join("summary.json"),
            serde_json::to_string_pretty(s).unwrap_or_default(),
        );
    }
    (status, summary)
}

/// The failed checks of a summary, the required ones that did not run, and its console
/// errors, as one list of problems.
pub fn summary_problems(summary: &Value, required: &[&str]) -> Vec<String> {
    let mut problems = Vec::new();
    let checks = summary["checks"].as_array().cloned().unwrap_or_default();
    for c in checks.iter().filter(|c| c["ok"] != true) {
        problems.push(format!(
            "check {} failed: {}",
            c["name"].as_str().unwrap_or("?"),
            c["detail"]
        ));
    }
    for name in required {
        if !checks.iter().any(|c| c["name"] == *name) {
            problems.push(format!("check {name} did not run"));
        }
    }
    for e in summary["console_errors"].as_array().into_iter().flatten() {
        problems.push(format!(
            "console error in {}: {} ({})",
            e["page"], e["text"], e["location"]["url"]
        ));
    }
    problems
}

/// What an end-to-end run left: the controller's summary, where its artifacts are, and
/// every problem found so far (failed or missing checks, console errors, a failed exit).
pub struct E2eRun {
    pub summary: Value,
    pub out: PathBuf,
    pub problems: Vec<String>,
}

/// Runs `tests/e2e/SCRIPT` for test `test` in a fresh namespace: checks the
/// prerequisites (None when they are missing and the test was skipped), makes the
/// output directory (`extra` gets it and returns the script's own config fields), runs
/// the controller with the common config (binary, UI, directories, Chromium, timeout),
/// then deletes the namespace and the browser profiles. Panics when the controller
/// overran `test_timeout` or printed no summary.
pub fn run_e2e(
    test: &str,
    script: &str,
    (controller_timeout, test_timeout): (Duration, Duration),
    required: &[&str],
    extra: impl FnOnce(&Path) -> Value,
) -> Option<E2eRun> {
    let ws = workspace();
    let dist = dist_dir(&ws);
    let missing = missing_prerequisites(&ws, &dist);
    if !missing.is_empty() {
        skip_or_fail(test, &missing.join("; "));
        return None;
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => {
            skip_or_fail(test, &format!("a network namespace ({e})"));
            return None;
        }
    };
    eprintln!("[{test}] namespace {} (only lo)", ns.name);
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let out = tmp.join(test);
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("output dir");
    let profiles = tmp.join(format!("{test}_profiles"));
    let _ = std::fs::remove_dir_all(&profiles);
    let mut config = serde_json::json!({
        "meshwork": env!("CARGO_BIN_EXE_meshwork"),
        "dist": dist,
        "outdir": out,
        "cwd": ws,
        "chromium": CHROMIUM,
        "timeout_ms": controller_timeout.as_millis() as u64,
        // The controller deletes the browser profiles itself; the test also does, in
        // case the controller was killed first.
        "profiles_dir": profiles,
    });
    if let (Some(c), Value::Object(more)) = (config.as_object_mut(), extra(&out)) {
        c.extend(more);
    }
    let (status, summary) = run_controller(&ns, script, &config, &out, test_timeout);
    // The controller is gone; the namespace goes too, with anything left in it.
    drop(ns);
    let _ = std::fs::remove_dir_all(&profiles);
    let status =
        status.unwrap_or_else(|| panic!("the controller did not finish within {test_timeout:?}"));
    let summary = summary.unwrap_or_else(|e| panic!("{e} (exit {status})"));
    let mut problems = summary_problems(&summary, required);
    if problems.is_empty() && !status.success() {
        problems.push(format!(
            "the controller exited with {status} although every check passed"
        ));
    }
    Some(E2eRun {
        summary,
        out,
        problems,
    })
}

/// Fails the test with every problem found and where its artifacts are; otherwise says
/// it passed.
pub fn assert_no_problems(test: &str, problems: &[String], out: &Path) {
    assert!(
        problems.is_empty(),
        "{} problem(s); artifacts (screenshots, logs, summary.json) in {}:\n  {}",
        problems.len(),
        out.display(),
        problems.join("\n  ")
    );
    eprintln!("[{test}] passed; artifacts in {}", out.display());
}
