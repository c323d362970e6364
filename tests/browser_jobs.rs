//! Jobs on the live mesh, end to end with real browsers: a signaling server, two native
//! nodes and three Chromium tabs compute two Mandelbrot jobs at once, one submitted
//! through a tab's form and one with `meshwork submit`; mid-job a tab is closed, another
//! tab's renderer is SIGKILLed and a fourth tab joins. Both jobs must complete; the
//! CLI's PNG must be byte-identical to `meshwork run`'s, and both pictures in the two
//! surviving tabs (canvas bytes and an element screenshot) pixel-identical to it. The
//! controller (`tests/e2e/jobs.mjs`) also checks the form's refusals, the late tab's
//! catching up and computing, console errors, long main-thread tasks, and that the page
//! needs no horizontal scrolling on a phone (375 px wide).
//!
//! Prerequisites as for `browser_mesh` (dist/, playwright-core, Chromium, node, root for
//! the namespace): without them the test prints SKIP, except under `CI=true`.

mod common;

use std::path::Path;
use std::time::Duration;

use common::browser::{E2eRun, Image, assert_no_problems, decode_png, run_e2e};
use common::{mandelbrot_args, reference_png};
use serde_json::json;

const CONTROLLER_TIMEOUT: Duration = Duration::from_secs(170);
const TEST_TIMEOUT: Duration = Duration::from_secs(200);

/// The job arguments of the two jobs (as `meshwork run` takes them): 256 tiles each,
/// paced so that they last several seconds. Their iteration counts tell them apart.
/// The pacing, not the kernels' speed, must set how long they last: the late tab can
/// catch up with the CLI's job only while its submitter is still there (at 80 ms a
/// task, with native nodes on AVX-512, the CLI's job was done before the late tab had
/// connected to the submitter).
const SIZE: u32 = 256;
const TILES: u32 = 16;
const PAGE_ITER: u32 = 300;
const CLI_ITER: u32 = 200;
const PACING_MS: u32 = 160;

fn job_args(max_iter: u32) -> Vec<String> {
    mandelbrot_args(SIZE, TILES, max_iter)
}

/// `meshwork run`'s output for a job: the reference.
fn reference(max_iter: u32, out: &Path) -> Vec<u8> {
    reference_png(&job_args(max_iter), out)
}

/// Pixels that differ between an image and the reference (None if the sizes differ).
fn differing(img: &Image, reference: &Image) -> Option<usize> {
    (img.width == reference.width && img.height == reference.height).then(|| {
        img.rgb
            .iter()
            .zip(&reference.rgb)
            .filter(|(a, b)| a != b)
            .count()
    })
}

#[test]
fn tabs_and_natives_finish_two_jobs_through_departures_and_a_late_joiner() {
    let cli_png = std::cell::OnceCell::new();
    let refs = std::cell::OnceCell::new();
    let Some(E2eRun {
        summary,
        out,
        mut problems,
    }) = run_e2e(
        "browser_jobs",
        "jobs.mjs",
        (CONTROLLER_TIMEOUT, TEST_TIMEOUT),
        &[
            "full_mesh",
            "form_refuses:tiles",
            "form_refuses:tiles+size",
            "form_refuses:size+quorum",
            "form_refuses:quorum+pacing",
            "invalid_jobs_reach_nobody",
            "form_accepts_valid_job",
            "both_jobs_under_way",
            "late_tab_catches_up",
            "renderer_killed",
            "jobs_done:tab-a",
            "jobs_done:tab-d",
            "cli_submit_exit_0",
            "late_tab_computed",
            "workers_idle_after_jobs:tab-a",
            "workers_idle_after_jobs:tab-d",
            "workers_changed_mid_job",
            "no_long_task:tab-a",
            "no_long_task:tab-d",
            "departures_in_plain_words",
            "phone_width_no_horizontal_scroll",
            "no_console_errors",
        ],
        |out| {
            let _ = refs.set([
                ("page", reference(PAGE_ITER, &out.join("ref-page.png"))),
                ("cli", reference(CLI_ITER, &out.join("ref-cli.png"))),
            ]);
            let png = out.join("cli.png");
            let mut cli_args = job_args(CLI_ITER);
            cli_args.extend(
                [
                    "--replicas",
                    "2",
                    "--quorum",
                    "1",
                    "--pace-ms",
                    &PACING_MS.to_string(),
                    "--timeout",
                    "120",
                    "--out",
                ]
                .map(String::from),
            );
            cli_args.push(png.display().to_string());
            let _ = cli_png.set(png);
            json!({
                "page_job": {
                    "size": SIZE, "tiles": TILES, "max_iter": PAGE_ITER,
                    "replicas": 2, "quorum": 1, "pacing_ms": PACING_MS,
                },
                "cli_args": cli_args,
            })
        },
    )
    else {
        return;
    };
    let (Some(cli_png), Some(refs)) = (cli_png.get(), refs.get()) else {
        panic!("the config was not made");
    };

    // The CLI's file is the reference's, byte for byte.
    match std::fs::read(cli_png) {
        Ok(bytes) if bytes == refs[1].1 => {}
        Ok(_) => problems.push(format!(
            "{} differs from meshwork run's output",
            cli_png.display()
        )),
        Err(e) => problems.push(format!("{}: {e}", cli_png.display())),
    }
    // Both pictures in both surviving tabs, as bytes and as shown.
    for (kind, _) in refs {
        let reference = decode_png(&out.join(format!("ref-{kind}.png"))).expect("reference");
        for tab in ["tab-a", "tab-d"] {
            for what in ["canvas", "screen"] {
                let key = format!("{tab}:{kind}:{what}");
                let Some(file) = summary["files"][&key].as_str() else {
                    problems.push(format!("no {key} image from the controller"));
                    continue;
                };
                match decode_png(Path::new(file)).map(|img| differing(&img, &reference)) {
                    Ok(Some(0)) => {}
                    Ok(Some(n)) => problems.push(format!(
                        "{key}: {n} of {} pixels differ from meshwork run's image ({file})",
                        SIZE * SIZE
                    )),
                    Ok(None) => problems.push(format!("{key}: not {SIZE}×{SIZE} ({file})")),
                    Err(e) => problems.push(format!("{key}: {e}")),
                }
            }
        }
        // A job the tab did not submit, as it showed it before fetching it whole: every
        // tile is either the reference's (held there) or its preview, the reference's
        // pixel at each 4 × 4 block's corner over the block; and some are previews.
        for tab in ["tab-a", "tab-d"] {
            let key = format!("{tab}:{kind}:preview");
            let Some(file) = summary["files"][&key].as_str() else {
                continue;
            };
            match decode_png(Path::new(file)) {
                Ok(img) => match preview_tiles(&img, &reference) {
                    Ok(0) => problems.push(format!("{key}: no tile drawn from a preview ({file})")),
                    Ok(_) => {}
                    Err(e) => problems.push(format!("{key}: {e} ({file})")),
                },
                Err(e) => problems.push(format!("{key}: {e}")),
            }
        }
    }
    for tab in ["tab-a", "tab-d"] {
        if summary["files"][format!("{tab}:cli:preview")].is_null() {
            problems.push(format!("{tab} showed the CLI's job without previews"));
        }
    }
    assert_no_problems("browser_jobs", &problems, &out);
}

/// Checks a picture drawn from tiles and previews against the reference, tile by tile
/// (`TILES` × `TILES` tiles of `SIZE / TILES` pixels): each must be the reference's
/// tile or its preview (`node_core::kernels::preview`: the pixel at each 4 × 4 block's
/// top-left corner, over the block). Returns how many are previews and not the tile.
fn preview_tiles(img: &Image, reference: &Image) -> Result<usize, String> {
    if (img.width, img.height) != (SIZE, SIZE) {
        return Err(format!("not {SIZE}×{SIZE}"));
    }
    let side = (SIZE / TILES) as usize;
    let step = node_core::kernels::preview::STEP as usize;
    let at = |i: &Image, x: usize, y: usize| i.rgb[y * SIZE as usize + x];
    let mut previews = 0;
    for ty in 0..TILES as usize {
        for tx in 0..TILES as usize {
            let (x0, y0) = (tx * side, ty * side);
            let pixels = || (y0..y0 + side).flat_map(|y| (x0..x0 + side).map(move |x| (x, y)));
            let whole = pixels().all(|(x, y)| at(img, x, y) == at(reference, x, y));
            let sampled = pixels().all(|(x, y)| {
                let (sx, sy) = (x0 + (x - x0) / step * step, y0 + (y - y0) / step * step);
                at(img, x, y) == at(reference, sx, sy)
            });
            match (whole, sampled) {
                (true, _) => {}
                (false, true) => previews += 1,
                (false, false) => {
                    return Err(format!(
                        "tile ({tx}, {ty}) is neither the tile nor its preview"
                    ));
                }
            }
        }
    }
    Ok(previews)
}
