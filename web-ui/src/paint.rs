//! Painting: result tiles onto each Mandelbrot job's canvas as their bytes arrive, the
//! task grid (a square per task), and the task states over the picture. Canvas only: a
//! thousand tasks cost one draw each, not a thousand DOM nodes; and only what changed is
//! drawn again. In the library (wasm only) so that a browser test can compare what it
//! draws bit by bit (`tests/view_logic.rs`).

use std::collections::BTreeMap;

use crate::model::{self, Flash, Flashes, JobRow, TaskState, colour};
use node_core::job::{JobId, NodeId, TaskId};
use node_core::kernels::{JobOutput, mandelbrot, preview};
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};

/// Draws result tiles onto each Mandelbrot job's canvas as their bytes arrive, and the
/// task states onto the task grid and the overlay above the picture. Each draws only
/// what changed since it last drew on the same canvas: a refresh of a 1,024-task job
/// where three tasks moved costs three squares, not a thousand.
#[derive(Default)]
pub struct Painter {
    /// Per job: what of each tile is on the canvas: [`PREVIEW`], [`FULL`] or 0.
    pub drawn: BTreeMap<JobId, Vec<u8>>,
    /// Assembled images not yet painted (the canvas may not exist yet).
    pub finished: BTreeMap<JobId, JobOutput>,
    /// Per image job: where its tiles go, and tiles received and not yet painted (at
    /// full size: a preview is expanded when it arrives), each with what it is.
    tiles: BTreeMap<JobId, (mandelbrot::Params, Pending)>,
    /// Per job: the task grid's canvas last drawn on, and what each square shows.
    grids: BTreeMap<JobId, Shown<Square>>,
    /// Per job: the overlay's canvas last drawn on, and what each tile's mark shows.
    marks: BTreeMap<JobId, Shown<Mark>>,
    /// Tiles held here were left undrawn at the last paint (its time was up): paint
    /// again soon.
    pub behind: bool,
    /// The job the last paint's time ran out at: the next paint starts there, so that
    /// every job gets its turn.
    resume_at: Option<JobId>,
}

/// Time one paint may spend drawing grids, overlays and tiles (ms): a tab that joins
/// mid-job holds hundreds of tiles at once, and draws them over a few refreshes instead
/// of in one long task.
pub const PAINT_BUDGET_MS: f64 = 6.0;

/// Tiles received and not yet painted, each with what it is ([`PREVIEW`] or [`FULL`])
/// and its pixels at full size.
type Pending = BTreeMap<TaskId, (u8, Vec<u8>)>;

/// A tile drawn from its preview ([`node_core::kernels::preview`]): each preview pixel
/// over a block of 4 × 4.
pub const PREVIEW: u8 = 1;
/// A tile drawn from its own bytes.
pub const FULL: u8 = 2;

/// What is on one canvas: the canvas (a re-rendered card has a new one, drawn afresh)
/// and one entry per task.
struct Shown<T> {
    canvas: wasm_bindgen::JsValue,
    items: Vec<T>,
}

impl<T> Shown<T> {
    /// What `canvas` shows, if it is the canvas drawn on last.
    fn on<'a>(shown: Option<&'a Shown<T>>, canvas: &HtmlCanvasElement) -> Option<&'a [T]> {
        let canvas: &wasm_bindgen::JsValue = canvas.as_ref();
        shown
            .filter(|s| &s.canvas == canvas)
            .map(|s| s.items.as_slice())
    }
}

/// One square of the task grid as drawn.
#[derive(Clone, Copy, PartialEq)]
pub struct Square {
    state: TaskState,
    by: Option<NodeId>,
    replicas: u32,
    short: bool,
    flash: Option<Flash>,
}

/// One tile's mark on the overlay as drawn.
#[derive(Clone, Copy, PartialEq)]
pub struct Mark {
    state: TaskState,
    by: Option<NodeId>,
    pixels_here: bool,
}

/// The DOM id of a job's canvas of `kind` (`img`, `ovl`, `cells`).
pub fn job_dom_id(kind: &str, job: JobId) -> String {
    format!("{kind}-{:016x}", job.0)
}

pub fn context(id: &str) -> Option<(HtmlCanvasElement, CanvasRenderingContext2d)> {
    let canvas: HtmlCanvasElement = web_sys::window()?
        .document()?
        .get_element_by_id(id)?
        .dyn_into()
        .ok()?;
    let ctx = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    Some((canvas, ctx))
}

pub fn put(ctx: &CanvasRenderingContext2d, rgba: &[u8], x: u32, y: u32, w: u32, h: u32) -> bool {
    ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), w, h)
        .and_then(|img| ctx.put_image_data(&img, f64::from(x), f64::from(y)))
        .is_ok()
}

impl Painter {
    /// Forgets what every canvas shows (another hand drew on them: the time machine), so
    /// that the next paint draws everything again.
    pub fn forget_canvases(&mut self) {
        self.drawn.clear();
        self.grids.clear();
        self.marks.clear();
    }

    /// Tiles and previews of a job's picture, to paint at the next [`Painter::paint`];
    /// their bytes are dropped once on the canvas (a redraw is sent them again). A
    /// preview never replaces a tile.
    pub fn tiles(
        &mut self,
        job: JobId,
        params: mandelbrot::Params,
        tiles: Vec<(TaskId, Vec<u8>)>,
        previews: Vec<(TaskId, Vec<u8>)>,
    ) {
        let (params, held) = self
            .tiles
            .entry(job)
            .or_insert_with(|| (params, BTreeMap::new()));
        for (t, bytes) in previews {
            if held.get(&t).is_some_and(|(what, _)| *what == FULL) {
                continue;
            }
            // Tiles and previews travel as colour indices: coloured here, once.
            let full = preview::expand(params, t.0, &bytes);
            if let Some(full) = full.as_deref().and_then(mandelbrot::colour_tile) {
                held.insert(t, (PREVIEW, full));
            }
        }
        held.extend(
            tiles
                .into_iter()
                .filter_map(|(t, bytes)| Some((t, (FULL, mandelbrot::colour_tile(&bytes)?)))),
        );
    }

    /// Draws every job of `rows`: its grid and overlay (what changed), and the tiles
    /// received that are not on its canvas yet, for [`PAINT_BUDGET_MS`] at most: once
    /// it is spent, the jobs left wait for the next paint (a first draw of many big
    /// jobs, a late joiner's, is spread over a few frames).
    pub fn paint(&mut self, rows: &[JobRow], flashes: &Flashes) {
        let clock = || node_core::driver::web_now().as_ms_f64();
        let deadline = clock() + PAINT_BUDGET_MS;
        self.behind = false;
        let first = self
            .resume_at
            .take()
            .and_then(|id| rows.iter().position(|r| r.id == id))
            .unwrap_or(0);
        for row in rows[first..].iter().chain(&rows[..first]) {
            if clock() > deadline {
                self.behind = true;
                self.resume_at = Some(row.id);
                break;
            }
            if let Some((canvas, ctx)) = context(&job_dom_id("cells", row.id)) {
                let before = Shown::on(self.grids.get(&row.id), &canvas);
                let items = task_grid(&canvas, &ctx, row, flashes, before);
                self.grids.insert(
                    row.id,
                    Shown {
                        canvas: canvas.into(),
                        items,
                    },
                );
            }
            let Some((params, held)) = self.tiles.get_mut(&row.id) else {
                continue;
            };
            let Some((_, ctx)) = context(&job_dom_id("img", row.id)) else {
                continue;
            };
            let drawn = self
                .drawn
                .entry(row.id)
                .or_insert_with(|| vec![0; row.tasks as usize]);
            if let Some(JobOutput::Image {
                width,
                height,
                rgba,
            }) = self.finished.remove(&row.id)
                && put(&ctx, &rgba, 0, 0, width, height)
            {
                drawn.iter_mut().for_each(|d| *d = FULL);
            }
            held.retain(|t, (what, bytes)| {
                let Some(d) = drawn.get_mut(t.0 as usize) else {
                    return false;
                };
                if *d >= *what {
                    return false;
                }
                let Some((x, y, w, h)) = params.tile_rect(t.0) else {
                    return false;
                };
                if self.behind || clock() > deadline {
                    self.behind = true;
                    return true;
                }
                let ok = put(&ctx, bytes, x, y, w, h);
                if ok {
                    *d = *what;
                }
                !ok
            });
            if let Some((canvas, ovl)) = context(&job_dom_id("ovl", row.id)) {
                let before = Shown::on(self.marks.get(&row.id), &canvas);
                let here: Vec<bool> = drawn.iter().map(|d| *d > 0).collect();
                let items = overlay(&ovl, params, row, &here, before);
                self.marks.insert(
                    row.id,
                    Shown {
                        canvas: canvas.into(),
                        items,
                    },
                );
            }
        }
        let live = |id: &JobId| rows.iter().any(|r| r.id == *id);
        self.drawn.retain(|id, _| live(id));
        self.tiles.retain(|id, _| live(id));
        self.grids.retain(|id, _| live(id));
        self.marks.retain(|id, _| live(id));
    }
}

/// Side of a task's square in the task grid, in pixels.
pub const CELL_PX: u32 = 16;

/// The task grid of a job: a square per task, empty while it waits, tinted in the colour
/// of the node computing it, filled in the colour of the node that computed it once
/// validated, with its number of copies at its top-ranked members (red when under `r`);
/// a task that lost a copy to a departure has a red dashed frame until it heals, then
/// a white one for a while. Drawn on a canvas: a thousand tasks cost one draw per task,
/// not a thousand DOM nodes.
pub fn task_grid(
    canvas: &HtmlCanvasElement,
    ctx: &CanvasRenderingContext2d,
    row: &JobRow,
    flashes: &Flashes,
    before: Option<&[Square]>,
) -> Vec<Square> {
    let cols = row.columns.max(1);
    let rows = (row.cells.len() as u32).div_ceil(cols).max(1);
    let (w, h) = (cols * CELL_PX, rows * CELL_PX);
    let mut before = before;
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
        before = None;
    }
    const BACKGROUND: &str = "#151b23";
    if before.is_none() {
        ctx.set_fill_style_str(BACKGROUND);
        ctx.fill_rect(0.0, 0.0, f64::from(w), f64::from(h));
    }
    ctx.set_font("9px sans-serif");
    ctx.set_text_align("center");
    ctx.set_text_baseline("middle");
    let side = f64::from(CELL_PX);
    let mut shown = Vec::with_capacity(row.cells.len());
    for (t, cell) in row.cells.iter().enumerate() {
        let square = Square {
            state: cell.state,
            by: cell.by,
            replicas: cell.replicas,
            short: cell.replicas < u32::from(row.replication),
            flash: flashes.of(row.id, TaskId(t as u32)),
        };
        shown.push(square);
        if before.and_then(|b| b.get(t)) == Some(&square) {
            continue;
        }
        let t = t as u32;
        let (x, y) = (f64::from(t % cols) * side, f64::from(t / cols) * side);
        if before.is_some() {
            ctx.set_fill_style_str(BACKGROUND);
            ctx.fill_rect(x, y, side, side);
        }
        let (fill, alpha) = match (cell.state, cell.by) {
            (TaskState::Validated, Some(by)) => (colour(by), 1.0),
            (TaskState::Running, Some(by)) => (colour(by), 0.45),
            _ => ("#1d252f".to_string(), 1.0),
        };
        ctx.set_global_alpha(alpha);
        ctx.set_fill_style_str(&fill);
        ctx.fill_rect(x + 0.5, y + 0.5, side - 1.0, side - 1.0);
        // Past the palette, a member's colour repeats with a white corner.
        if let Some(by) = cell.by
            && cell.state != TaskState::Waiting
            && model::pattern(model::slot(by)) > 0
        {
            ctx.set_fill_style_str("#ffffff");
            ctx.fill_rect(x + 0.5, y + 0.5, 4.0, 4.0);
        }
        ctx.set_global_alpha(1.0);
        if cell.state == TaskState::Validated {
            ctx.set_fill_style_str(if square.short { "#b00020" } else { "#0f1419" });
            let _ = ctx.fill_text(
                &cell.replicas.to_string(),
                x + side / 2.0,
                y + side / 2.0 + 0.5,
            );
        }
        if let Some(flash) = square.flash {
            let (colour, dash) = match flash {
                Flash::Lost => ("#ff3b4e", [3.0, 2.0]),
                Flash::Healed => ("#ffffff", [16.0, 0.0]),
            };
            let dash: js_sys::Array = dash
                .iter()
                .map(|d| wasm_bindgen::JsValue::from(*d))
                .collect();
            let _ = ctx.set_line_dash(&dash);
            ctx.set_line_width(2.0);
            ctx.set_stroke_style_str(colour);
            ctx.stroke_rect(x + 1.5, y + 1.5, side - 3.0, side - 3.0);
            let _ = ctx.set_line_dash(&js_sys::Array::new());
        }
    }
    shown
}

/// The task states as text, for tests and screen readers: `state:copies` per task
/// (`v2,r0,w0,…`).
pub fn cells_text(row: &JobRow) -> String {
    let mut compact = String::with_capacity(row.cells.len() * 3);
    for (i, c) in row.cells.iter().enumerate() {
        if i > 0 {
            compact.push(',');
        }
        compact.push(match c.state {
            TaskState::Waiting => 'w',
            TaskState::Running => 'r',
            TaskState::Validated => 'v',
        });
        compact.push_str(&c.replicas.to_string());
    }
    compact
}

/// Task states over the image: a validated tile is outlined, thin and translucent, in
/// the colour of the node that computed it (and tinted while its pixels are not here); a
/// running one is tinted in its node's colour. Off by default: the picture comes first.
pub fn overlay(
    ctx: &CanvasRenderingContext2d,
    params: &node_core::kernels::mandelbrot::Params,
    row: &JobRow,
    drawn: &[bool],
    before: Option<&[Mark]>,
) -> Vec<Mark> {
    if before.is_none() {
        ctx.clear_rect(0.0, 0.0, f64::from(params.width), f64::from(params.height));
    }
    ctx.set_line_width(1.0);
    let mut shown = Vec::with_capacity(row.cells.len());
    for (t, cell) in row.cells.iter().enumerate() {
        let Some((x, y, w, h)) = params.tile_rect(t as u32) else {
            break;
        };
        let mark = Mark {
            state: cell.state,
            by: cell.by,
            pixels_here: drawn.get(t).copied().unwrap_or(false),
        };
        shown.push(mark);
        if before.and_then(|b| b.get(t)) == Some(&mark) {
            continue;
        }
        let (x, y, w, h) = (f64::from(x), f64::from(y), f64::from(w), f64::from(h));
        if before.is_some() {
            ctx.clear_rect(x, y, w, h);
        }
        let Some(by) = cell.by else { continue };
        let c = colour(by);
        match cell.state {
            TaskState::Validated => {
                if !mark.pixels_here {
                    ctx.set_global_alpha(0.35);
                    ctx.set_fill_style_str(&c);
                    ctx.fill_rect(x, y, w, h);
                }
                ctx.set_global_alpha(0.5);
                ctx.set_stroke_style_str(&c);
                ctx.stroke_rect(x + 0.5, y + 0.5, (w - 1.0).max(0.0), (h - 1.0).max(0.0));
            }
            TaskState::Running => {
                ctx.set_global_alpha(0.6);
                ctx.set_fill_style_str(&c);
                ctx.fill_rect(x, y, w, h);
            }
            TaskState::Waiting => {}
        }
    }
    ctx.set_global_alpha(1.0);
    shown
}
