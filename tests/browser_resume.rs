//! The mesh outlives its signaling server, end to end with real browsers: two native
//! nodes and two Chromium tabs compute a Mandelbrot job handed out by `meshwork submit`;
//! mid-job the server is SIGKILLed and started again on its port with the same resume
//! key, and a tab reloads. Every member must come back under its old id, the reloaded
//! tab too (shown to the others as a rejoin), a tab opened afterwards must see them all,
//! and the job's PNG must be byte-identical to `meshwork run`'s. The controller is
//! `tests/e2e/resume.mjs`.
//!
//! Prerequisites as for `browser_mesh` (dist/, playwright-core, Chromium, node, root for
//! the namespace): without them the test prints SKIP, except under `CI=true`.

mod common;

use std::time::Duration;

use common::browser::{E2eRun, assert_no_problems, run_e2e};
use common::{mandelbrot_args, paced_submit_args, reference_png, same_png};
use serde_json::json;

const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(150);
const TEST_TIMEOUT: Duration = Duration::from_secs(180);

/// The job: 256 tiles, paced so that it outlasts a server restart and a reload.
fn job_args() -> Vec<String> {
    mandelbrot_args(256, 16, 250)
}

#[test]
fn the_mesh_outlives_a_server_restart_and_a_reloaded_tab_keeps_its_id() {
    let cli_png = std::cell::OnceCell::new();
    let reference = std::cell::OnceCell::new();
    let Some(E2eRun {
        out, mut problems, ..
    }) = run_e2e(
        "browser_resume",
        "resume.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
        &[
            "full_mesh",
            "job_under_way",
            "tabs_say_signaling_away",
            "job_goes_on_without_the_server",
            "server_restarted",
            "every_member_back_with_its_id",
            "tabs_say_signaling_back",
            "nobody_left_the_mesh",
            "job_still_running_at_reload",
            "reloaded_tab_keeps_its_id",
            "others_show_a_rejoin",
            "no_new_member_for_the_reload",
            "new_tab_sees_every_member",
            "job_done_exit_0",
            "tab_a_shows_it_done",
            "no_console_errors",
        ],
        |out| {
            let _ = reference.set(reference_png(&job_args(), &out.join("ref.png")));
            let png = out.join("cli.png");
            let args = paced_submit_args(&job_args(), 300, &png);
            let _ = cli_png.set(png);
            json!({
                "key_file": out.join("resume-key"),
                "submit_args": args,
            })
        },
    )
    else {
        return;
    };
    let (Some(cli_png), Some(reference)) = (cli_png.get(), reference.get()) else {
        panic!("the config was not made");
    };
    same_png(cli_png, reference, &mut problems);
    assert_no_problems("browser_resume", &problems, &out);
}
