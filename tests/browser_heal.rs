//! Suspicion that heals, end to end with real browsers (`tests/e2e/heal.mjs`): a tab in
//! the background for 5 s is shown so and never declared gone; a tab whose main thread
//! is blocked for 2 s is declared gone by nobody and buries nobody (its node runs in a
//! worker, with its data channels moved there); a native frozen with SIGSTOP for 3 s is
//! shown gone and then back on every tab and by every other native, buries nobody
//! itself, and the job it was computing for completes with `meshwork run`'s PNG; at the
//! end every tab's graph and peer list agree.
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

#[test]
fn a_frozen_native_and_a_hidden_tab_are_taken_back_and_the_job_is_exact() {
    let job = mandelbrot_args(256, 16, 200);
    let png = std::cell::OnceCell::new();
    let reference = std::cell::OnceCell::new();
    let Some(E2eRun {
        out, mut problems, ..
    }) = run_e2e(
        "browser_heal",
        "heal.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
        &[
            "full_mesh",
            "job_under_way",
            "background_tab_shown_and_never_gone",
            "blocked_main_thread_nobody_gone",
            "frozen_native_gone_then_back_everywhere",
            "frozen_native_buried_nobody",
            "cli_submit_exit_0",
            "graph_and_peers_agree:tab-a",
            "graph_and_peers_agree:tab-b",
            "no_console_errors",
        ],
        |out| {
            let _ = reference.set(reference_png(&job, &out.join("reference.png")));
            let file = out.join("mesh.png");
            // Paced so that the job outlasts every step (about 30 s): the submitter must
            // still be there to see the frozen native come back.
            let args = paced_submit_args(&job, 600, &file);
            let _ = png.set(file);
            json!({ "cli_args": args })
        },
    )
    else {
        return;
    };
    let (Some(png), Some(reference)) = (png.get(), reference.get()) else {
        panic!("the config was not made");
    };
    same_png(png, reference, &mut problems);
    assert_no_problems("browser_heal", &problems, &out);
}
