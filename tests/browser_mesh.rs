//! End to end with real browsers: a signaling server, two Chromium tabs and two native
//! `meshwork node` processes form a full WebRTC mesh; both tabs are screenshotted and
//! the screenshots checked; then tab A is closed and tab B's renderer is SIGKILLed, and
//! every survivor must report each departure within 2 s.
//!
//! The work is done by the Node controller `tests/e2e/mesh.mjs` (playwright-core over
//! CDP). Chromium offers ICE candidates on every interface once loopback is allowed, so
//! the controller runs inside a fresh network namespace holding only `lo`: no packet
//! can leave the machine. This file checks the prerequisites, owns the namespace (always
//! deleted, with anything left running in it), runs the controller with a timeout, and
//! asserts on its JSON summary and screenshots.
//!
//! Prerequisites: the web UI built into `dist/` (`cargo xtask test` builds it),
//! `node_modules/playwright-core` and `/usr/bin/chromium` (`cargo xtask setup`), `node`
//! on PATH, and root (for `ip netns`). Without them the test prints SKIP, except under
//! `CI=true`, where it fails.

mod common;

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

const WORKSPACE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
const CHROMIUM: &str = "/usr/bin/chromium";
/// The controller stops itself after this long (and kills what it started).
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(150);
/// Past this the test kills the controller and everything in the namespace.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

fn workspace() -> PathBuf {
    Path::new(WORKSPACE).canonicalize().expect("workspace root")
}

/// Runs a command quietly; Ok(stdout) when it exits 0.
fn run(cmd: &str, args: &[&str]) -> Result<String, String> {
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
struct Netns {
    name: String,
}

impl Netns {
    fn create() -> Result<Netns, String> {
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

    fn exec_quiet(&self, cmd: &[&str]) -> Result<String, String> {
        let mut args = vec!["netns", "exec", &self.name];
        args.extend_from_slice(cmd);
        run("ip", &args)
    }

    /// Pids of processes still in the namespace.
    fn pids(&self) -> Vec<String> {
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
                "[browser_mesh] killing leftover processes in {}: {pids:?}",
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
            eprintln!(
                "[browser_mesh] could not delete namespace {}: {e}",
                self.name
            );
        }
    }
}

/// Kills the controller (by its pid) if it is still running when dropped.
struct Controller(Child);

impl Drop for Controller {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// What is missing to run the test, with how to get it.
fn missing_prerequisites(ws: &Path, dist: &Path) -> Vec<String> {
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

/// Skips (prints why) or, under CI=true, fails.
fn skip_or_fail(what: &str) {
    let msg = format!(
        "browser_mesh needs: {what}.\n  Get them with `cargo xtask setup`; `cargo xtask test` builds dist/; \
         the test must run as root to create a network namespace (`ip netns add`)."
    );
    if common::in_ci() {
        panic!("{msg}\n  (CI=true: a missing prerequisite is a failure, not a skip)");
    }
    eprintln!("SKIP browser_mesh: {msg}\n  (set CI=true to make this a failure)");
}

/// A decoded screenshot as RGB pixels.
struct Image {
    width: u32,
    height: u32,
    rgb: Vec<[u8; 3]>,
}

fn decode_png(path: &Path) -> Result<Image, String> {
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
    fn distinct_colours(&self) -> usize {
        self.rgb.iter().collect::<HashSet<_>>().len()
    }

    /// Share of pixels that differ from the most common (background) colour.
    fn non_background(&self) -> f64 {
        let mut counts: HashMap<[u8; 3], usize> = HashMap::new();
        for p in &self.rgb {
            *counts.entry(*p).or_default() += 1;
        }
        let top = counts.values().copied().max().unwrap_or(0);
        1.0 - top as f64 / self.rgb.len().max(1) as f64
    }

    /// Pixels within `tol` (per channel) of `colour`.
    fn near(&self, colour: [u8; 3], tol: u8) -> usize {
        self.rgb
            .iter()
            .filter(|p| p.iter().zip(colour).all(|(a, b)| a.abs_diff(b) <= tol))
            .count()
    }
}

/// Checks that a screenshot is big enough and shows something; logs what it saw.
fn check_screenshot(
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
        "[browser_mesh] {}: {}x{}, {colours} colours, {:.1}% non-background",
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
fn dist_dir(ws: &Path) -> PathBuf {
    std::env::var_os("MESHWORK_E2E_DIST").map_or_else(|| ws.join("dist"), PathBuf::from)
}

#[test]
fn two_tabs_and_two_natives_form_a_mesh_and_notice_departures() {
    let ws = workspace();
    let dist = dist_dir(&ws);
    let missing = missing_prerequisites(&ws, &dist);
    if !missing.is_empty() {
        return skip_or_fail(&missing.join("; "));
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => return skip_or_fail(&format!("a network namespace ({e})")),
    };
    eprintln!("[browser_mesh] namespace {} (only lo)", ns.name);

    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser_mesh");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("output dir");
    let profiles = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser_mesh_profiles");
    let _ = std::fs::remove_dir_all(&profiles);
    let config = json!({
        "meshwork": env!("CARGO_BIN_EXE_meshwork"),
        "dist": dist,
        "outdir": out,
        "cwd": ws,
        "chromium": CHROMIUM,
        "timeout_ms": CONTROLLER_TIMEOUT.as_millis() as u64,
        // The controller deletes the browser profiles itself; this test also does, in
        // case the controller was killed first.
        "profiles_dir": profiles,
    });
    let script = ws.join("tests/e2e/mesh.mjs");
    let mut child = Command::new("ip")
        .args(["netns", "exec", &ns.name, "node"])
        .arg(&script)
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

    // Progress lines go through eprintln! so the harness captures them (shown with
    // --nocapture or on failure), and to a log file next to the screenshots.
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
        if started.elapsed() > TEST_TIMEOUT {
            eprintln!(
                "[browser_mesh] the controller overran {TEST_TIMEOUT:?}: killing it (pid {})",
                controller.0.id()
            );
            drop(controller);
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let last = out_thread.join().expect("stdout reader");
    let _ = err_thread.join();
    // The controller is gone; the namespace goes too, with anything left in it.
    drop(ns);
    let _ = std::fs::remove_dir_all(&profiles);

    let status =
        status.unwrap_or_else(|| panic!("the controller did not finish within {TEST_TIMEOUT:?}"));
    let last = last.unwrap_or_else(|| panic!("the controller printed no summary (exit {status})"));
    let summary: Value = serde_json::from_str(&last)
        .unwrap_or_else(|e| panic!("the controller's last line is not JSON ({e}): {last}"));
    std::fs::write(
        out.join("summary.json"),
        serde_json::to_string_pretty(&summary).unwrap_or_default(),
    )
    .expect("write summary");
    eprintln!("[browser_mesh] latencies: {}", summary["latencies"]);

    // Every problem is collected, then reported at once.
    let mut problems: Vec<String> = Vec::new();
    let checks = summary["checks"].as_array().cloned().unwrap_or_default();
    for c in checks.iter().filter(|c| c["ok"] != true) {
        problems.push(format!(
            "check {} failed: {}",
            c["name"].as_str().unwrap_or("?"),
            c["detail"]
        ));
    }
    for name in [
        "mesh:tab-a",
        "mesh:tab-b",
        "mesh:native-1",
        "mesh:native-2",
        "tab_close:tab-b",
        "tab_close:native-1",
        "tab_close:native-2",
        "renderer_kill:native-1",
        "renderer_kill:native-2",
        "no_console_errors",
    ] {
        if !checks.iter().any(|c| c["name"] == name) {
            problems.push(format!("check {name} did not run"));
        }
    }
    let errors = summary["console_errors"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    for e in &errors {
        problems.push(format!(
            "console error in {}: {} ({})",
            e["page"], e["text"], e["location"]["url"]
        ));
    }
    if problems.is_empty() && !status.success() {
        problems.push(format!(
            "the controller exited with {status} although every check passed"
        ));
    }

    // The UI renders: both pages and both peer lists, screenshotted and not blank.
    let shots: Vec<String> = summary["screenshots"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for page in ["tab-a.png", "tab-b.png"] {
        if !shots.iter().any(|s| s.ends_with(page)) {
            problems.push(format!("the controller took no screenshot {page}"));
        }
        if let Err(e) = check_screenshot(&out.join(page), 400, 300, 16) {
            problems.push(e);
        }
    }
    for list in ["peer-list-a.png", "peer-list-b.png"] {
        if !shots.iter().any(|s| s.ends_with(list)) {
            problems.push(format!("the controller took no screenshot {list}"));
        }
        match check_screenshot(&out.join(list), 200, 60, 8) {
            Ok(img) => {
                // The list shows browsers and natives, connected: the stylesheet colours
                // the kind column (browser #59c2ff, native #ffb454) and the state (#7fd962).
                for (what, colour) in [
                    ("browser", [0x59, 0xc2, 0xff]),
                    ("native", [0xff, 0xb4, 0x54]),
                    ("connected", [0x7f, 0xd9, 0x62]),
                ] {
                    let n = img.near(colour, 24);
                    if n < 10 {
                        problems.push(format!(
                            "{list}: no {what} text colour in the peer list ({n} pixels)"
                        ));
                    }
                }
            }
            Err(e) => problems.push(e),
        }
    }
    assert!(
        problems.is_empty(),
        "{} problem(s); artifacts (screenshots, logs, summary.json) in {}:\n  {}",
        problems.len(),
        out.display(),
        problems.join("\n  ")
    );
    eprintln!("[browser_mesh] passed; artifacts in {}", out.display());
}
