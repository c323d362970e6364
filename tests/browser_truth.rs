//! What the page concludes is true, end to end with real browsers
//! (`tests/e2e/truth.mjs`): a tab that lies in a `q = 1` job gets nobody marked (the
//! lying is shown as a disagreement), in a `q = 2` job it alone is marked on every tab
//! and by every native, a done job stays done for 20 s, the page's figures add up at
//! several moments of a job, a tab frozen for 5 s comes back under its id, eight
//! members have eight colours (the same on every tab, every pair at least 20 apart by
//! CIEDE2000), and the graph's labels fit at 1920×1080, 1280×720 and 375×800.
//!
//! Prerequisites as for `browser_mesh` (dist/, playwright-core, Chromium, node, root for
//! the namespace): without them the test prints SKIP, except under `CI=true`.

mod common;

use std::time::Duration;

use common::browser::{E2eRun, assert_no_problems, run_e2e};
use serde_json::json;
use web_ui::model::{ciede2000, lab};

const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(260);
const TEST_TIMEOUT: Duration = Duration::from_secs(290);
/// The least CIEDE2000 difference between two live members' colours.
const COLOUR_DIFFERENCE_MIN: f64 = 20.0;

#[test]
fn the_page_marks_only_liars_keeps_done_jobs_done_and_shows_every_member_apart() {
    let Some(E2eRun {
        summary,
        out,
        mut problems,
    }) = run_e2e(
        "browser_truth",
        "truth.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
        &[
            "full_mesh",
            "liar_obeys",
            "liar_computes",
            "q1_job_done",
            "q1_disagreement_shown",
            "q1_why_says_first_report_believed",
            "frozen_tab_back_under_its_id",
            "q1_nobody_marked:tab-p",
            "q1_nobody_marked:tab-l",
            "q1_no_native_marks_anyone",
            "q2_job_done",
            "figures_add_up_while_running",
            "q2_liar_alone_marked:tab-p",
            "q2_no_honest_mark:tab-l",
            "q2_natives_mark_only_the_liar",
            "copies_back_to_r_after_the_job",
            "done_job_stays_done_20s",
            "graph_results_equal_job_results",
            "member_rates_add_up",
            "eight_members",
            "colours_same_on_every_tab",
            "colours_are_the_lowest_free_slots",
            "graph_labels_fit:1920x1080",
            "graph_labels_fit:1280x720",
            "graph_labels_fit:375x800",
            "no_console_errors",
        ],
        |_| {
            json!({
                "presenter_key": "truth-presenter-key-0123456789",
                "job": { "size": 256, "tiles": 8, "max_iter": 300, "pacing_ms": 120 },
            })
        },
    )
    else {
        return;
    };
    // Every two members' colours, as the presenter's tab draws them, differ visibly.
    let colours = summary["info"]["colours"]["tab-p"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let fills: Vec<(String, String)> = colours
        .iter()
        .filter_map(|(peer, c)| Some((peer.clone(), c["fill"].as_str()?.to_string())))
        .collect();
    if fills.len() != 8 {
        problems.push(format!(
            "{} member colours, not 8: {colours:?}",
            fills.len()
        ));
    }
    let mut closest = f64::MAX;
    for (i, (pa, a)) in fills.iter().enumerate() {
        for (pb, b) in &fills[i + 1..] {
            let d = ciede2000(lab(a), lab(b));
            closest = closest.min(d);
            if d < COLOUR_DIFFERENCE_MIN {
                problems.push(format!(
                    "{pa} ({a}) and {pb} ({b}) differ by only {d:.1} (CIEDE2000)"
                ));
            }
        }
    }
    eprintln!(
        "[browser_truth] the closest two of 8 member colours differ by {closest:.1} (CIEDE2000)"
    );
    assert_no_problems("browser_truth", &problems, &out);
}
