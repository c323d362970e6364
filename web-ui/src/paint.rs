//! Painting: result tiles onto each Mandelbrot job's canvas as their bytes arrive, the
//! task grid (a square per task), and the task states over the picture. Canvas only: a
//! thousand tasks cost one draw each, not a thousand DOM nodes.

use std::collections::BTreeMap;

use node_core::job::{JobId, TaskId};
use node_core::kernels::JobOutput;
use node_core::node::MeshNode;
use wasm_bindgen::{Clamped, JsCast};
use web_sys::{CanvasRenderingContext2d, HtmlCanvasElement, ImageData};
use web_ui::model::{self, Flash, Flashes, JobRow, TaskState, colour};

use crate::view::job_dom_id;

/// Draws result tiles onto each Mandelbrot job's canvas as their bytes arrive, and the
/// task states onto the overlay above it.
#[derive(Default)]
pub(crate) struct Painter {
    /// Per job: which tiles' pixels are on the canvas.
    pub(crate) drawn: BTreeMap<JobId, Vec<bool>>,
    /// Assembled images not yet painted (the canvas may not exist yet).
    pub(crate) finished: BTreeMap<JobId, JobOutput>,
}

pub(crate) fn context(id: &str) -> Option<(HtmlCanvasElement, CanvasRenderingContext2d)> {
    let canvas: HtmlCanvasElement = web_sys::window()?
        .document()?
        .get_element_by_id(id)?
        .dyn_into()
        .ok()?;
    let ctx = canvas.get_context("2d").ok()??.dyn_into().ok()?;
    Some((canvas, ctx))
}

pub(crate) fn put(
    ctx: &CanvasRenderingContext2d,
    rgba: &[u8],
    x: u32,
    y: u32,
    w: u32,
    h: u32,
) -> bool {
    ImageData::new_with_u8_clamped_array_and_sh(Clamped(rgba), w, h)
        .and_then(|img| ctx.put_image_data(&img, f64::from(x), f64::from(y)))
        .is_ok()
}

impl Painter {
    pub(crate) fn paint(&mut self, node: &MeshNode, rows: &[JobRow], flashes: &Flashes) {
        let Some(engine) = node.engine() else { return };
        for row in rows {
            if let Some((canvas, ctx)) = context(&job_dom_id("cells", row.id)) {
                task_grid(&canvas, &ctx, row, flashes);
            }
            let Some(params) = engine.job_spec(row.id).and_then(|s| s.kernel.image()) else {
                continue;
            };
            let Some((_, ctx)) = context(&job_dom_id("img", row.id)) else {
                continue;
            };
            let drawn = self
                .drawn
                .entry(row.id)
                .or_insert_with(|| vec![false; row.tasks as usize]);
            if let Some(JobOutput::Image {
                width,
                height,
                rgba,
            }) = self.finished.remove(&row.id)
                && put(&ctx, &rgba, 0, 0, width, height)
            {
                drawn.iter_mut().for_each(|d| *d = true);
            }
            for t in 0..row.tasks {
                if drawn[t as usize] {
                    continue;
                }
                if let (Some(bytes), Some((x, y, w, h))) =
                    (engine.held(row.id, TaskId(t)), params.tile_rect(t))
                {
                    drawn[t as usize] = put(&ctx, bytes, x, y, w, h);
                }
            }
            if let Some((_, ovl)) = context(&job_dom_id("ovl", row.id)) {
                overlay(&ovl, params, row, drawn);
            }
        }
        self.drawn.retain(|id, _| rows.iter().any(|r| r.id == *id));
    }
}

/// Side of a task's square in the task grid, in pixels.
pub(crate) const CELL_PX: u32 = 16;

/// The task grid of a job: a square per task, empty while it waits, tinted in the colour
/// of the node computing it, filled in the colour of the node that computed it once
/// validated, with its number of copies at its top-ranked members (red when under `r`);
/// a task that lost a copy to a departure has a red dashed frame until it heals, then
/// a white one for a while. Drawn on a canvas: a thousand tasks cost one draw per task,
/// not a thousand DOM nodes.
pub(crate) fn task_grid(
    canvas: &HtmlCanvasElement,
    ctx: &CanvasRenderingContext2d,
    row: &JobRow,
    flashes: &Flashes,
) {
    let cols = row.columns.max(1);
    let rows = (row.cells.len() as u32).div_ceil(cols).max(1);
    let (w, h) = (cols * CELL_PX, rows * CELL_PX);
    if canvas.width() != w || canvas.height() != h {
        canvas.set_width(w);
        canvas.set_height(h);
    }
    ctx.set_fill_style_str("#151b23");
    ctx.fill_rect(0.0, 0.0, f64::from(w), f64::from(h));
    ctx.set_font("9px sans-serif");
    ctx.set_text_align("center");
    ctx.set_text_baseline("middle");
    let side = f64::from(CELL_PX);
    for (t, cell) in row.cells.iter().enumerate() {
        let t = t as u32;
        let (x, y) = (f64::from(t % cols) * side, f64::from(t / cols) * side);
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
            let short = cell.replicas < u32::from(row.replication);
            ctx.set_fill_style_str(if short { "#b00020" } else { "#0f1419" });
            let _ = ctx.fill_text(
                &cell.replicas.to_string(),
                x + side / 2.0,
                y + side / 2.0 + 0.5,
            );
        }
        if let Some(flash) = flashes.of(row.id, TaskId(t)) {
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
}

/// The task states as text, for tests and screen readers: `state:copies` per task
/// (`v2,r0,w0,…`).
pub(crate) fn cells_text(row: &JobRow) -> String {
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
pub(crate) fn overlay(
    ctx: &CanvasRenderingContext2d,
    params: &node_core::kernels::mandelbrot::Params,
    row: &JobRow,
    drawn: &[bool],
) {
    ctx.clear_rect(0.0, 0.0, f64::from(params.width), f64::from(params.height));
    ctx.set_line_width(1.0);
    for (t, cell) in row.cells.iter().enumerate() {
        let Some((x, y, w, h)) = params.tile_rect(t as u32) else {
            break;
        };
        let (x, y, w, h) = (f64::from(x), f64::from(y), f64::from(w), f64::from(h));
        let Some(by) = cell.by else { continue };
        let c = colour(by);
        match cell.state {
            TaskState::Validated => {
                if !drawn[t] {
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
}
