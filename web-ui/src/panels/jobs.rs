//! The jobs panel: a card per job, with its picture, its task grid and its figures.

use leptos::prelude::*;
use node_core::job::{JobId, TaskId};
use wasm_bindgen::JsCast;
use web_ui::model::{JobRow, TaskState, plural};

use crate::view::{JobView, MeshView, Selection};
use futures_channel::mpsc::UnboundedSender;
use node_core::driver::PageInput;
use node_core::engine::Command;
use web_ui::paint::{CELL_PX, cells_text, job_dom_id};

fn job_ids(view: MeshView) -> Vec<JobId> {
    view.shown_jobs(|js| js.iter().map(|j| j.row.id).collect())
}

/// Every job this node takes part in: progress, canvas, task cells, output.
#[component]
pub(crate) fn Jobs(view: MeshView, to_node: UnboundedSender<PageInput>) -> impl IntoView {
    view! {
        <section class="jobs">
            <h2>"Jobs "
                <label class="toggle"><input type="checkbox" data-testid="outlines"
                    prop:checked=move || view.outlines.get()
                    on:change=move |ev| view.outlines.set(event_target_checked(&ev))/>" tile outlines"</label>
                // On the stage only the current job shows.
                <span class="earlier dim" data-testid="earlier-jobs">{move || match view.shown_jobs(Vec::len) {
                    0 | 1 => String::new(),
                    2 => "· 1 earlier job: l shows it".to_string(),
                    n => format!("· {} earlier jobs: l shows them", n - 1),
                }}</span>
            </h2>
            <Show when=move || view.shown_jobs(Vec::is_empty)>
                <p class="empty">"No job yet. Submit one above, or with "<code>"meshwork submit"</code>"."</p>
            </Show>
            <For each=move || job_ids(view) key=|id| *id let:id>
                <JobCard view id to_node=to_node.clone()/>
            </For>
        </section>
    }
}

/// Results computed against tasks validated, and disagreements, in words.
fn results_words(row: &JobRow) -> String {
    if row.validated == 0 {
        return String::new();
    }
    let q = u32::from(row.quorum);
    let extra = row.results.saturating_sub(q * row.validated);
    let mut s = format!(
        "{} {} computed and accepted for {} validated {} (q = {q}: {q} matching {} each",
        row.results,
        plural(row.results, "result", "results"),
        row.validated,
        plural(row.validated, "task", "tasks"),
        plural(q, "result", "results"),
    );
    if extra > 0 {
        s += &format!("; {extra} more computed again by a backup, a steal or help).");
    } else {
        s += ").";
    }
    if row.disagreed > 0 {
        s += &format!(
            " {} validated {} had a member report a different result.",
            row.disagreed,
            plural(row.disagreed, "task", "tasks")
        );
    }
    s
}

#[component]
fn JobCard(view: MeshView, id: JobId, to_node: UnboundedSender<PageInput>) -> impl IntoView {
    let job = Memo::new(move |_| view.shown_jobs(|js| js.iter().find(|j| j.row.id == id).cloned()));
    let get = move |f: fn(&JobView) -> String| {
        move || job.with(|j| j.as_ref().map(f).unwrap_or_default())
    };
    let state = move || {
        job.with(|j| match j {
            Some(j) if j.output.is_some() || j.previewed => "done",
            Some(j) if j.row.validated == j.row.tasks => "assembling",
            _ => "running",
        })
    };
    let image = job.with_untracked(|j| j.as_ref().and_then(|j| j.row.image));
    let columns = job.with_untracked(|j| j.as_ref().map_or(16, |j| j.row.columns));
    // Worked out once per change, read by the grid's attributes and its summary.
    let states = Memo::new(move |_| {
        job.with(|j| {
            j.as_ref()
                .map(|j| (cells_text(&j.row), j.row.summary()))
                .unwrap_or_default()
        })
    });
    let tasks = job.with_untracked(|j| j.as_ref().map_or(0, |j| j.row.tasks));
    let count = move |f: fn(&JobRow) -> u32| job.with(|j| j.as_ref().map_or(0, |j| f(&j.row)));
    // A click on the picture or the grid selects the task under it for the inspector.
    let pick = move |ev: web_sys::MouseEvent, cols: u32, rows: u32| {
        let Some(el) = ev
            .target()
            .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
        else {
            return;
        };
        let (w, h) = (f64::from(el.client_width()), f64::from(el.client_height()));
        if w <= 0.0 || h <= 0.0 {
            return;
        }
        let cx = ((f64::from(ev.offset_x()) / w) * f64::from(cols)).floor() as u32;
        let cy = ((f64::from(ev.offset_y()) / h) * f64::from(rows)).floor() as u32;
        let t = cy.min(rows.saturating_sub(1)) * cols + cx.min(cols.saturating_sub(1));
        if t < tasks {
            view.selected.set(Some(Selection::Task(id, TaskId(t))));
        }
    };
    let rows = tasks.div_ceil(columns.max(1)).max(1);
    let canvas = image.map(|(w, h)| {
        view! {
            <div class="canvas" style=format!("width: min(100%, {w}px); aspect-ratio: {w} / {h}; --ar: {}", f64::from(w) / f64::from(h))
                on:click=move |ev| pick(ev, columns.max(1), rows)>
                <canvas id=job_dom_id("img", id) data-testid="job-canvas" width=w height=h></canvas>
                <canvas id=job_dom_id("ovl", id) class="overlay" width=w height=h
                    style:display=move || if view.outlines.get() { "block" } else { "none" }></canvas>
            </div>
        }
    });
    view! {
        <article class="job" data-testid="job" data-job-id=format!("{:016x}", id.0) data-state=state>
            // On the stage (see the CSS) the head, the picture, the board and the notes
            // each take a place of their own.
            <div class="job-head">
            <h3>{get(|j| j.row.what.clone())}</h3>
            <p class="dim">
                {format!("{id} · ")}{get(|j| format!("from {}{}", j.submitter, if j.mine { " (this tab)" } else { "" }))}
                {get(|j| format!(" · r = {}, q = {}, pacing {} ms", j.row.replication, j.row.quorum, j.row.pacing_ms))}
            </p>
            <p>
                <progress max=move || job.with(|j| j.as_ref().map_or(1, |j| j.row.tasks)) value=move || job.with(|j| j.as_ref().map_or(0, |j| j.row.validated))></progress>
                " "<span data-testid="job-progress">{get(|j| format!("{} / {} tasks validated", j.row.validated, j.row.tasks))}</span>
                " · "<span data-testid="job-state">{state}</span>
            </p>
            <Show when=move || job.with(|j| j.as_ref().is_some_and(|j| j.stalled.is_some()))>
                <p class="stalled" data-testid="job-stalled">{get(|j| format!("Stuck: {}", j.stalled.clone().unwrap_or_default()))}</p>
            </Show>
            </div>
            <div class="job-picture">{canvas}</div>
            <div class="job-board">
            <canvas id=job_dom_id("cells", id) class="cells" data-testid="task-grid"
                style=format!("--ar: {}", f64::from(columns.max(1)) / f64::from(rows))
                on:click=move |ev| pick(ev, columns.max(1), rows)
                data-cells=move || states.with(|(compact, _)| compact.clone())
                role="img" aria-label=move || states.with(|(_, words)| words.clone())
                width=columns * CELL_PX height=CELL_PX></canvas>
            </div>
            <div class="job-notes">
            <p class="dim" data-testid="task-summary"
                data-tasks=move || count(|r| r.tasks)
                data-waiting=move || count(|r| r.counts()[TaskState::Waiting as usize])
                data-running=move || count(|r| r.counts()[TaskState::Running as usize])
                data-validated=move || count(|r| r.counts()[TaskState::Validated as usize])
                data-short=move || count(JobRow::short)
                data-results=move || count(|r| r.results)
                data-disagreed=move || count(|r| r.disagreed)
                data-disagreed-tasks=move || job.with(|j| j.as_ref().map(|j| {
                    j.row.disagreed_tasks.iter().map(|t| t.0.to_string()).collect::<Vec<_>>().join(",")
                }).unwrap_or_default())
                data-quorum=move || count(|r| u32::from(r.quorum))
                data-replication=move || count(|r| u32::from(r.replication))>
                {move || states.with(|(_, words)| words.clone())}
            </p>
            <p class="dim" data-testid="results">{move || job.with(|j| j.as_ref().map(|j| results_words(&j.row)).unwrap_or_default())}</p>
            <p class="dim" data-testid="copies" data-lost=move || job.with(|j| j.as_ref().map_or(0, |j| j.lost))
                data-healed=move || job.with(|j| j.as_ref().map_or(0, |j| j.healed))>
                {move || job.with(|j| match j {
                    Some(j) if j.lost > 0 => format!(
                        "Since this page opened, {} {} lost a copy when a member left (red frame); {} of them {} back to {} {} at their top-ranked members (white frame).",
                        j.lost, plural(j.lost as u32, "task", "tasks"),
                        j.healed, plural(j.healed as u32, "is", "are"),
                        j.row.replication, plural(u32::from(j.row.replication), "copy", "copies"),
                    ),
                    _ => String::new(),
                })}
            </p>
            <p class="output" data-testid="job-output">{get(|j| j.output.clone().unwrap_or_default())}</p>
            <Show when=move || job.with(|j| j.as_ref().is_some_and(|j| j.watching))>
                // Beside the output, which the stage shows too: a learner on any screen
                // reads why the picture is coarse and can fetch it whole.
                <p class="output preview" data-testid="preview-note"
                    title="A tile this tab does not hold is drawn from its preview, the tile's pixel at every 4th column of every 4th row: a sixteenth of its bytes. The preview is checked against the hash the quorum validated, which seals the tile's bytes with its preview's.">
                    "Drawn from previews (1 pixel in 16) where no tile is here. "
                    <button data-testid="full-picture" on:click={
                        let to_node = to_node.clone();
                        move |_| {
                            let _ = to_node.unbounded_send(PageInput::Command(Command::Assemble { job: id }));
                        }
                    }>"Fetch the full picture"</button>
                </p>
            </Show>
            </div>
        </article>
    }
}
