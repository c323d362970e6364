//! The time machine: scrub back through what this tab saw, export the run to a file,
//! replay a file in any tab with no mesh at all.
//!
//! The shell records a frame (the graph and every job's grid) whenever the view changes,
//! and every log line, into [`Recording`]. While a frame is shown the shell keeps
//! running and recording but draws nothing; the components show `replay_graph`,
//! `replay_jobs` and `replay_log` instead of the live ones. Pictures are redrawn tile
//! by tile from a copy of the job's canvas (a live run) or from the picture in the file
//! (an imported run), so that a tile shows only once it was validated.

use std::collections::BTreeMap;

use leptos::prelude::*;
use node_core::job::JobId;
use node_core::kernels::mandelbrot;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement};
use web_ui::model::{Flashes, JobRow, TaskState};
use web_ui::record::Recording;

use crate::view::{JobView, LogLine, MeshView, TimeMachine};
use web_ui::paint::{context, job_dom_id, overlay, task_grid};

fn document() -> Option<web_sys::Document> {
    web_sys::window()?.document()
}

/// A fresh offscreen canvas of `w`×`h`.
fn offscreen(w: u32, h: u32) -> Option<(HtmlCanvasElement, CanvasRenderingContext2d)> {
    let c: HtmlCanvasElement = document()?.create_element("canvas").ok()?.dyn_into().ok()?;
    c.set_width(w);
    c.set_height(h);
    let ctx = c.get_context("2d").ok()??.dyn_into().ok()?;
    Some((c, ctx))
}

/// The tiles of a job drawn as an image of `columns` tiles per row.
fn params(row: &JobRow) -> Option<mandelbrot::Params> {
    let (width, height) = row.image?;
    let tiles_x = row.columns.max(1);
    Some(mandelbrot::Params {
        x_min: 0.0,
        x_max: 1.0,
        y_min: 0.0,
        y_max: 1.0,
        width,
        height,
        max_iter: 1,
        tiles_x,
        tiles_y: row.tasks.div_ceil(tiles_x).max(1),
    })
}

/// Shows frame `i` of the run: graph, jobs, log, grids and pictures.
pub fn show(view: MeshView, i: usize) {
    let tm = view.tm;
    let Some((graph, rows)) = tm.with(|r| r.view_at(i)) else {
        return;
    };
    let entering = tm.at.get_untracked().is_none();
    if entering && !tm.is_imported.get_untracked() {
        copy_live_pictures(view);
    }
    tm.at.set(Some(i));
    let names: BTreeMap<_, _> = graph.iter().map(|g| (g.node, g.name.clone())).collect();
    let jobs: Vec<JobView> = rows
        .iter()
        .rev()
        .map(|row| JobView {
            submitter: names
                .get(&row.submitter)
                .cloned()
                .unwrap_or_else(|| row.submitter.to_string()),
            mine: false,
            output: None,
            lost: 0,
            healed: 0,
            stalled: None,
            previewed: false,
            watching: false,
            row: row.clone(),
        })
        .collect();
    let log: Vec<LogLine> = tm.with(|r| {
        r.log_at(i)
            .iter()
            .enumerate()
            .map(|(seq, l)| LogLine::replayed(seq as u64, &l.event, l.text.clone()))
            .collect()
    });
    view.replay_graph.set(graph);
    view.replay_jobs.set(jobs);
    view.replay_log.set(log);
    // The job cards may be new: draw once the page has them.
    request_animation_frame(move || draw_pictures(view, &rows));
}

/// Copies each live job's canvas (as it is on entering the time machine), to draw tiles
/// from while scrubbing.
fn copy_live_pictures(view: MeshView) {
    let rows: Vec<JobRow> = view
        .jobs
        .with_untracked(|js| js.iter().map(|j| j.row.clone()).collect());
    let mut sources = BTreeMap::new();
    for row in &rows {
        let (Some((w, h)), Some((live, _))) = (row.image, context(&job_dom_id("img", row.id)))
        else {
            continue;
        };
        if let Some((c, ctx)) = offscreen(w, h) {
            let _ = ctx.draw_image_with_html_canvas_element(&live, 0.0, 0.0);
            sources.insert(row.id.0, c);
        }
    }
    view.tm.sources.set_value(sources);
}

/// Draws each job as the frame saw it: the validated tiles of its picture, its grid and
/// outlines.
fn draw_pictures(view: MeshView, rows: &[JobRow]) {
    for row in rows {
        if let Some((canvas, ctx)) = context(&job_dom_id("cells", row.id)) {
            task_grid(&canvas, &ctx, row, &Flashes::default(), None);
        }
        let Some(p) = params(row) else { continue };
        let Some((_, ctx)) = context(&job_dom_id("img", row.id)) else {
            continue;
        };
        ctx.clear_rect(0.0, 0.0, f64::from(p.width), f64::from(p.height));
        let drawn: Vec<bool> = row
            .cells
            .iter()
            .map(|c| c.state == TaskState::Validated)
            .collect();
        view.tm.sources.with_value(|s| {
            if let Some(src) = s.get(&row.id.0) {
                for (t, _) in drawn.iter().enumerate().filter(|(_, d)| **d) {
                    if let Some((x, y, w, h)) = p.tile_rect(t as u32) {
                        let (x, y, w, h) = (f64::from(x), f64::from(y), f64::from(w), f64::from(h));
                        let _ = ctx
                            .draw_image_with_html_canvas_element_and_sw_and_sh_and_dx_and_dy_and_dw_and_dh(
                                src, x, y, w, h, x, y, w, h,
                            );
                    }
                }
            }
        });
        if let Some((_, ovl)) = context(&job_dom_id("ovl", row.id)) {
            overlay(&ovl, &p, row, &drawn, None);
        }
    }
}

/// Back to the live view (and the live run, if a file was shown).
pub fn go_live(view: MeshView) {
    let tm = view.tm;
    tm.imported.set_value(None);
    tm.is_imported.set(false);
    tm.sources.set_value(BTreeMap::new());
    tm.at.set(None);
    tm.frames.set(tm.live.with_value(|r| r.frames.len()));
}

/// Saves the run shown as a JSON file, with each job's picture.
pub fn export(view: MeshView, room: &str) {
    let tm = view.tm;
    let mut pictures = BTreeMap::new();
    let ids: Vec<u64> = tm.with(|r| r.jobs.iter().map(|j| j.id).collect());
    for id in ids {
        let picture = tm
            .imported
            .with_value(|i| {
                i.as_ref()
                    .and_then(|r| r.jobs.iter().find(|j| j.id == id)?.picture.clone())
            })
            .or_else(|| {
                // A live canvas: while scrubbing it shows part of the picture; the copy
                // taken on entering holds all of it.
                let from_source = tm
                    .sources
                    .with_value(|s| s.get(&id).and_then(|c| c.to_data_url().ok()));
                from_source.or_else(|| {
                    context(&job_dom_id("img", JobId(id))).and_then(|(c, _)| c.to_data_url().ok())
                })
            });
        if let Some(p) = picture {
            pictures.insert(id, p);
        }
    }
    let json = tm.with(|r| r.to_json(&pictures));
    let parts = js_sys::Array::of1(&wasm_bindgen::JsValue::from_str(&json));
    let bag = web_sys::BlobPropertyBag::new();
    bag.set_type("application/json");
    let Ok(blob) = web_sys::Blob::new_with_str_sequence_and_options(&parts, &bag) else {
        tm.error.set("cannot make the file".into());
        return;
    };
    let Ok(url) = web_sys::Url::create_object_url_with_blob(&blob) else {
        return;
    };
    if let Some(a) = document()
        .and_then(|d| d.create_element("a").ok())
        .and_then(|a| a.dyn_into::<web_sys::HtmlAnchorElement>().ok())
    {
        a.set_href(&url);
        a.set_download(&format!("meshwork-run-{room}.json"));
        a.click();
    }
    let _ = web_sys::Url::revoke_object_url(&url);
}

/// Reads a file chosen by the person and replays it.
fn import(view: MeshView, file: web_sys::File) {
    let tm = view.tm;
    if file.size() > web_ui::record::FILE_BYTES_MAX as f64 {
        tm.error.set(format!(
            "{} is {} bytes; a recording is at most {}",
            file.name(),
            file.size(),
            web_ui::record::FILE_BYTES_MAX
        ));
        return;
    }
    wasm_bindgen_futures::spawn_local(async move {
        let text = match wasm_bindgen_futures::JsFuture::from(file.text()).await {
            Ok(t) => t.as_string().unwrap_or_default(),
            Err(_) => {
                tm.error.set(format!("cannot read {}", file.name()));
                return;
            }
        };
        let rec = match Recording::from_json(&text) {
            Ok(r) => r,
            Err(e) => {
                tm.error.set(format!("{}: {e}", file.name()));
                return;
            }
        };
        tm.error.set(String::new());
        // The recorded members' colours, so the replay draws each as the run did.
        for n in &rec.nodes {
            if let Some(c) = n.colour {
                web_ui::model::remember_colour(node_core::job::NodeId(n.node), c);
            }
        }
        let last = rec.frames.len() - 1;
        let pictures: Vec<(u64, (u32, u32), String)> = rec
            .jobs
            .iter()
            .filter_map(|j| Some((j.id, j.image?, j.picture.clone()?)))
            .collect();
        tm.frames.set(rec.frames.len());
        tm.imported.set_value(Some(rec));
        tm.is_imported.set(true);
        tm.at.set(None);
        // Pictures load asynchronously: each redraws the frame shown when it is in.
        let mut sources = BTreeMap::new();
        for (id, (w, h), url) in pictures {
            let Some((c, ctx)) = offscreen(w, h) else {
                continue;
            };
            let Ok(img) = web_sys::HtmlImageElement::new() else {
                continue;
            };
            let onload = {
                let img = img.clone();
                Closure::once(move || {
                    let _ = ctx.draw_image_with_html_image_element(&img, 0.0, 0.0);
                    if let Some(i) = tm.at.get_untracked() {
                        show(view, i);
                    }
                })
            };
            img.set_onload(Some(onload.as_ref().unchecked_ref()));
            // Dropped with the image once it has loaded.
            onload.forget();
            img.set_src(&url);
            sources.insert(id, c);
        }
        tm.sources.set_value(sources);
        show(view, last);
    });
}

/// Where the time machine is, in words: live (with how much is recorded) or the moment
/// replayed. Reactive: it reads the time machine's signals.
pub fn where_words(tm: TimeMachine) -> String {
    let t_of = move |i: usize| tm.with(|r| r.frames.get(i).map(|f| f.t).unwrap_or(0));
    let n = tm.frames.get();
    let span = tm.with(|r| r.span_ms()) as f64 / 1000.0;
    match tm.at.get() {
        None => format!("live; {n} moments recorded over {span:.1} s"),
        Some(i) => {
            let t = (t_of(i) - t_of(0)) as f64 / 1000.0;
            let what = if tm.is_imported.get() {
                "an imported run"
            } else {
                "this run"
            };
            format!(
                "replaying {what}: moment {} of {n}, {t:.1} s of {span:.1} s",
                i + 1
            )
        }
    }
}

/// The banner over the whole page while a recorded moment is shown, so that nobody takes
/// it for the live mesh: what is replayed, and what stays live.
#[component]
pub fn ReplayBanner(view: MeshView) -> impl IntoView {
    let tm = view.tm;
    view! {
        <Show when=move || tm.at.with(Option::is_some)>
            <p class="banner replaying" role="status" data-testid="replay-banner">
                <strong>{move || where_words(tm)}</strong>
                ". The graph, the jobs and the events show that moment; the numbers, the peers, this node and Why? stay live (each says so). "
                <kbd>"]"</kbd>" steps forward (past the last moment: live), "<kbd>"["</kbd>" back. "
                <button data-testid="replay-banner-live" on:click=move |_| go_live(view)>"Back to live"</button>
            </p>
        </Show>
    }
}

/// The slider, the way back to live, export and import.
#[component]
pub fn TimeMachinePanel(view: MeshView, room: String) -> impl IntoView {
    let tm = view.tm;
    let status = move || where_words(tm);
    let on_slide = move |ev: leptos::ev::Event| {
        if let Ok(i) = event_target_value(&ev).parse::<usize>() {
            show(view, i);
        }
    };
    let on_file = move |ev: leptos::ev::Event| {
        let input: Option<web_sys::HtmlInputElement> = ev.target().and_then(|t| t.dyn_into().ok());
        if let Some(file) = input.and_then(|i| i.files()).and_then(|f| f.get(0)) {
            import(view, file);
        }
    };
    view! {
        <section class="timemachine" aria-labelledby="tm-title">
            <h2 id="tm-title">"Time machine"</h2>
            <div class="row">
                <label class="field grow"><span>"moment"</span>
                    <input type="range" data-testid="tm-slider" min="0"
                        max=move || tm.frames.get().saturating_sub(1).to_string()
                        prop:value=move || tm.at.get().unwrap_or(tm.frames.get().saturating_sub(1)).to_string()
                        on:input=on_slide/>
                </label>
                <button data-testid="tm-live" disabled=move || tm.at.get().is_none() && !tm.is_imported.get()
                    on:click=move |_| go_live(view)>"Back to live"</button>
                <button data-testid="tm-export" on:click=move |_| export(view, &room)>"Export run"</button>
                <label class="field"><span>"import a run"</span>
                    <input type="file" data-testid="tm-import" accept=".json,application/json" on:change=on_file/>
                </label>
            </div>
            <p class="dim" data-testid="tm-status" aria-live="polite">{status}</p>
            <p class="error" data-testid="tm-error">{move || tm.error.get()}</p>
        </section>
    }
}
