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

use std::path::Path;
use std::time::Duration;

use common::browser::{
    CHROMIUM, Netns, check_screenshot, dist_dir, missing_prerequisites, run_controller,
    skip_or_fail, summary_problems, workspace,
};
use serde_json::json;

/// The controller stops itself after this long (and kills what it started).
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(150);
/// Past this the test kills the controller and everything in the namespace.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn two_tabs_and_two_natives_form_a_mesh_and_notice_departures() {
    let ws = workspace();
    let dist = dist_dir(&ws);
    let missing = missing_prerequisites(&ws, &dist);
    if !missing.is_empty() {
        return skip_or_fail("browser_mesh", &missing.join("; "));
    }
    let ns = match Netns::create() {
        Ok(ns) => ns,
        Err(e) => return skip_or_fail("browser_mesh", &format!("a network namespace ({e})")),
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
    let (status, summary) = run_controller(&ns, "mesh.mjs", &config, &out, TEST_TIMEOUT);
    // The controller is gone; the namespace goes too, with anything left in it.
    drop(ns);
    let _ = std::fs::remove_dir_all(&profiles);
    let status =
        status.unwrap_or_else(|| panic!("the controller did not finish within {TEST_TIMEOUT:?}"));
    let summary = summary.unwrap_or_else(|e| panic!("{e} (exit {status})"));
    eprintln!("[browser_mesh] latencies: {}", summary["latencies"]);

    // Every problem is collected, then reported at once.
    let mut problems = summary_problems(
        &summary,
        &[
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
        ],
    );
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
