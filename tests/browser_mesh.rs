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

use std::time::Duration;

use common::browser::{E2eRun, assert_no_problems, check_screenshot, run_e2e};
use serde_json::json;

/// The controller stops itself after this long (and kills what it started).
const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(150);
/// Past this the test kills the controller and everything in the namespace.
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn two_tabs_and_two_natives_form_a_mesh_and_notice_departures() {
    let Some(E2eRun {
        summary,
        out,
        mut problems,
    }) = run_e2e(
        "browser_mesh",
        "mesh.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
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
        |_| json!({}),
    )
    else {
        return;
    };
    eprintln!("[browser_mesh] latencies: {}", summary["latencies"]);

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
    assert_no_problems("browser_mesh", &problems, &out);
}
