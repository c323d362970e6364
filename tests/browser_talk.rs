//! A whole talk on one screen, end to end with real browsers (`tests/e2e/talk.mjs`): a
//! server with a presenter key, two native nodes, the presenter's tab at 1920×1080 and
//! two phone tabs that give no name. The presenter runs every scene with keys only (the
//! join panel, a job, a phone failed, the liar scenario at the form's pacing, half the
//! mesh lost, the server away and back early, pause, step and slow motion, a moment
//! back and the run exported, a reset); after each scene what it needs is inside the
//! window, and after the reset every member computes again in a `q = 2` job that has no
//! disagreement.
//!
//! Prerequisites as for `browser_mesh` (dist/, playwright-core, Chromium, node, root for
//! the namespace): without them the test prints SKIP, except under `CI=true`.

mod common;

use std::time::Duration;

use common::browser::{E2eRun, assert_no_problems, run_e2e};
use serde_json::json;

const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(240);
const TEST_TIMEOUT: Duration = Duration::from_secs(270);
const PRESENTER_KEY: &str = "talk-test-key-7d31a0c4";
/// An address from TEST-NET-1 (RFC 5737): only ever written into the QR code, never
/// connected to.
const PUBLIC_URL: &str = "http://192.0.2.10:8080";

#[test]
fn a_presenter_runs_a_whole_talk_from_one_screen_by_keys() {
    let Some(E2eRun { out, problems, .. }) = run_e2e(
        "browser_talk",
        "talk.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
        &[
            "server_listening",
            "full_mesh",
            "phones_have_generated_names",
            "qr_counts_the_members",
            "in_view:qr",
            "submitted_by_key",
            "in_view:submit",
            "phone_failed_by_keys",
            "in_view:fail",
            "liar_scenario_at_the_forms_pacing",
            "in_view:liar",
            "lose_half_by_key",
            "in_view:lose-half",
            "in_view:server-away",
            "server_away_and_back_by_keys",
            "in_view:pause",
            "pause_step_slow_motion_by_keys",
            "in_view:rewind",
            "rewind_export_and_live_by_keys",
            "reset_brings_everyone_back",
            "after_reset_every_member_computes_and_none_lies",
            "in_view:reset",
            "no_console_errors",
        ],
        |_| json!({ "presenter_key": PRESENTER_KEY, "public_url": PUBLIC_URL }),
    ) else {
        return;
    };
    assert_no_problems("browser_talk", &problems, &out);
}
