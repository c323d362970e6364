//! Firefox as a member, end to end: a signaling server, two native nodes, a Chromium tab
//! and a headless Firefox tab (driven over WebDriver by geckodriver) form a full mesh
//! over host candidate pairs; a paced Mandelbrot job from `meshwork submit` runs with
//! the Firefox tab computing part of it, Firefox is SIGKILLed mid-job, and the job's
//! PNG must still be byte-identical to `meshwork run`'s. A second Firefox without the
//! two ICE prefs gathers no address in the namespace, and its page must say so. The
//! controller is `tests/e2e/firefox.mjs`.
//!
//! Prerequisites as for `browser_mesh`, plus Firefox ESR (`/usr/bin/firefox-esr`) and
//! `geckodriver` on PATH (`cargo xtask setup` installs both): without them the test
//! prints SKIP, except under `CI=true`, where it fails.

mod common;

use std::time::Duration;

use common::browser::{E2eRun, assert_no_problems, firefox_prerequisites, run_e2e, skip_or_fail};
use common::{mandelbrot_args, reference_png};
use serde_json::json;

const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(170);
const TEST_TIMEOUT: Duration = Duration::from_secs(200);

/// 256 tiles paced at 120 ms each over five single-worker members: about 6 s, long
/// enough to kill Firefox mid-job.
fn job_args() -> Vec<String> {
    mandelbrot_args(256, 16, 300)
}

#[test]
fn firefox_chromium_and_natives_mesh_and_a_job_outlives_firefox() {
    let (geckodriver, firefox) = match firefox_prerequisites() {
        Ok(found) => found,
        Err(missing) => return skip_or_fail("browser_firefox", &missing),
    };
    let files = std::cell::OnceCell::new();
    let Some(E2eRun {
        out, mut problems, ..
    }) = run_e2e(
        "browser_firefox",
        "firefox.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
        &[
            "full_mesh",
            "natives_see_firefox_as_a_browser",
            "host_pairs:firefox",
            "host_pairs:chromium",
            "native_paths_to_firefox",
            "firefox_computes",
            "natives_notice_firefox_left",
            "job_done_after_firefox_killed",
            "killed_mid_job",
            "no_address_explained",
            "no_false_departure",
            "no_console_errors",
        ],
        |out| {
            let (mesh_png, ref_png) = (out.join("mesh.png"), out.join("ref.png"));
            reference_png(&job_args(), &ref_png);
            let mut cli_args = job_args();
            cli_args.extend(
                [
                    "--replicas",
                    "2",
                    "--pace-ms",
                    "120",
                    "--timeout",
                    "120",
                    "--out",
                ]
                .map(String::from),
            );
            cli_args.push(mesh_png.display().to_string());
            let _ = files.set((mesh_png, ref_png));
            json!({
                "geckodriver": geckodriver,
                "firefox": firefox,
                "cli_args": cli_args,
            })
        },
    )
    else {
        return;
    };
    let Some((mesh_png, ref_png)) = files.get() else {
        panic!("the config was not made");
    };
    match (std::fs::read(mesh_png), std::fs::read(ref_png)) {
        (Ok(mesh), Ok(reference)) if mesh == reference => {}
        (Ok(_), Ok(_)) => problems.push(format!(
            "{} differs from meshwork run's {}",
            mesh_png.display(),
            ref_png.display()
        )),
        (a, b) => problems.push(format!("cannot read the images: {a:?} {b:?}")),
    }
    assert_no_problems("browser_firefox", &problems, &out);
}
