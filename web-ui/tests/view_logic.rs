//! The page's view logic, natively under `cargo test` and in headless Chromium under
//! wasm-bindgen-test (`cargo xtask test` runs it there, inside a network namespace):
//! the join QR code drawn by the browser's own canvas decodes to the join address; job
//! rows, the inspector's words, copies lost and healed, rates and a recording behave the
//! same in the browser's wasm as natively; and the task grid and overlay, drawn change by
//! change, equal one drawing (in the browser only).

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use std::collections::BTreeMap;

use node_core::engine::{Command, Engine, EngineConfig, Event, Input, Millis, Output};
use node_core::job::{JobId, NodeId, TaskId};
use node_core::kernels::{Kernel, mandelbrot};
use web_ui::inspect;
use web_ui::model::{self, Flash, Flashes, GraphNode, RateMeter, TaskState};
use web_ui::qr;
use web_ui::record::Recording;

/// A greyscale bitmap of a QR code's path, `scale` pixels per module, decoded.
fn decode(px: usize, grey: &[u8]) -> String {
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(px, px, |x, y| grey[y * px + x]);
    let grids = img.detect_grids();
    assert_eq!(grids.len(), 1, "one code");
    grids[0].decode().expect("decodes").1
}

/// The QR code's path as the browser's canvas draws it (Path2D from the SVG path).
#[cfg(target_arch = "wasm32")]
fn rasterise(side: u32, path: &str, scale: u32) -> Vec<u8> {
    let rgba = pixels(|canvas, ctx| {
        canvas.set_width(side * scale);
        canvas.set_height(side * scale);
        ctx.set_fill_style_str("#fff");
        ctx.fill_rect(0.0, 0.0, f64::from(side * scale), f64::from(side * scale));
        ctx.scale(f64::from(scale), f64::from(scale)).unwrap();
        ctx.set_fill_style_str("#000");
        ctx.fill_with_path_2d(&web_sys::Path2d::new_with_path_string(path).unwrap());
    });
    rgba.chunks_exact(4).map(|p| p[0]).collect()
}

/// The same squares drawn by hand (no browser).
#[cfg(not(target_arch = "wasm32"))]
fn rasterise(side: u32, path: &str, scale: u32) -> Vec<u8> {
    let px = (side * scale) as usize;
    let mut img = vec![255u8; px * px];
    for sq in path.split('M').filter(|s| !s.is_empty()) {
        let (x, y) = sq.trim_end_matches("h1v1h-1z").split_once(' ').unwrap();
        let (x, y): (usize, usize) = (x.parse().unwrap(), y.parse().unwrap());
        let s = scale as usize;
        for dy in 0..s {
            for dx in 0..s {
                img[(y * s + dy) * px + x * s + dx] = 0;
            }
        }
    }
    img
}

#[test]
fn the_drawn_qr_code_decodes_to_the_join_address() {
    let url = qr::join_url(
        Some("http://192.0.2.10:8080"),
        "http://127.0.0.1:1",
        "talk-1",
    );
    let (side, path) = qr::svg_path(&url).unwrap();
    let grey = rasterise(side, &path, 4);
    assert_eq!(decode((side * 4) as usize, &grey), url);
}

/// An engine with `peers` and a 4×4-tile Mandelbrot job of its own, and the job's id.
fn engine_with_job(peers: &[u64]) -> (Engine, JobId) {
    let mut e = Engine::new(NodeId(1), EngineConfig::default(), 1, Millis(0));
    for p in peers {
        e.handle_input(Millis(0), Input::PeerUp(NodeId(*p)));
    }
    let kernel = Kernel::Mandelbrot(mandelbrot::Params {
        x_min: -2.0,
        x_max: 1.0,
        y_min: -1.5,
        y_max: 1.5,
        width: 64,
        height: 64,
        max_iter: 50,
        tiles_x: 4,
        tiles_y: 4,
    });
    let cmd = Command::Submit {
        kernel,
        replication: 2,
        quorum: 1,
        pacing_ms: 0,
        nonce: 7,
    };
    e.handle_input(Millis(1), Input::Command(cmd));
    let mut job = None;
    while let Some(o) = e.poll_output() {
        if let Output::Event(Event::JobAccepted { job: j, .. }) = o {
            job = Some(j);
        }
    }
    (e, job.expect("accepted"))
}

#[test]
fn rows_inspector_and_flashes_read_a_real_engine() {
    let (e, job) = engine_with_job(&[2, 3]);
    let rows = model::job_rows(&e);
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!((row.tasks, row.columns, row.image), (16, 4, Some((64, 64))));
    let running: Vec<usize> = (0..16)
        .filter(|t| row.cells[*t].state == TaskState::Running)
        .collect();
    assert!(!running.is_empty(), "the engine started some of its tasks");
    let t = TaskId(running[0] as u32);
    let words = inspect::task_words(&e, job, t, &[], |n| format!("node-{}", n.0));
    assert!(
        words.starts_with(&format!("task {} of job", t.0)),
        "{words}"
    );
    assert!(words.contains("runs on node-1"), "{words}");
    // A task lost, then whole again: lost, healed, gone.
    let mut f = Flashes::default();
    f.lost([(job, t)], 0.0);
    f.update(&rows, 10_000.0);
    assert_eq!(f.of(job, t), Some(Flash::Lost), "not validated: still lost");
    assert_eq!(f.totals[&job], (1, 0));
}

#[test]
fn rates_and_a_recording_round_trip() {
    let mut m = RateMeter::default();
    for s in 0..4u32 {
        m.sample(
            f64::from(s) * 1000.0,
            u64::from(s) * 10,
            BTreeMap::from([(NodeId(1), s * 5)]),
        );
    }
    // One member: the mesh computes as many results as its fastest member, though it
    // validates 10 tasks a second (results, not validated tasks, on both sides).
    assert!((m.speedup().unwrap() - 1.0).abs() < 1e-9);
    let (e, _) = engine_with_job(&[2]);
    let rows = model::job_rows(&e);
    let me = GraphNode {
        peer: "p1".into(),
        node: NodeId(1),
        name: "tab".into(),
        kind: "me",
        state: "live",
        presenter: true,
        rtt_ms: None,
        load: inspect::loads(&e, 64)
            .get(&NodeId(1))
            .copied()
            .unwrap_or_default(),
        liar: false,
        note: String::new(),
        colour: 5,
        background: false,
    };
    let mut r = Recording::new();
    r.record(5, std::slice::from_ref(&me), &rows);
    r.log_line(6, "job", "a job");
    let back = Recording::from_json(&r.to_json(&BTreeMap::new())).unwrap();
    assert_eq!(back.view_at(0), Some((vec![me], rows)));
}

/// The pixels (RGBA) of a fresh canvas on the page after `draw`.
#[cfg(target_arch = "wasm32")]
fn pixels(
    draw: impl FnOnce(&web_sys::HtmlCanvasElement, &web_sys::CanvasRenderingContext2d),
) -> Vec<u8> {
    use wasm_bindgen::JsCast;
    let doc = web_sys::window().unwrap().document().unwrap();
    let canvas: web_sys::HtmlCanvasElement =
        doc.create_element("canvas").unwrap().dyn_into().unwrap();
    doc.body().unwrap().append_child(&canvas).unwrap();
    let ctx: web_sys::CanvasRenderingContext2d = canvas
        .get_context("2d")
        .unwrap()
        .unwrap()
        .dyn_into()
        .unwrap();
    draw(&canvas, &ctx);
    let (w, h) = (canvas.width(), canvas.height());
    ctx.get_image_data(0.0, 0.0, f64::from(w), f64::from(h))
        .unwrap()
        .data()
        .0
}

/// The task grid and the overlay draw only what changed since their last drawing on the
/// same canvas: drawn that way, a job's second moment (tasks running, validated with too
/// few copies, a lost copy flashing, a tile's pixels arrived) is the same, pixel for
/// pixel, as the second moment drawn at once on a fresh canvas.
#[cfg(target_arch = "wasm32")]
#[test]
fn grid_and_overlay_drawn_change_by_change_equal_one_drawing() {
    use model::{Cell, JobRow};
    use web_ui::paint::{overlay, task_grid};
    let (e, job) = engine_with_job(&[2, 3]);
    let before = model::job_rows(&e).remove(0);
    let mut after: JobRow = before.clone();
    let cell = |state, replicas, by| Cell {
        state,
        replicas,
        by: Some(NodeId(by)),
    };
    after.cells[0] = cell(TaskState::Validated, 2, 2);
    after.cells[1] = cell(TaskState::Validated, 1, 3);
    after.cells[2] = cell(TaskState::Running, 0, 3);
    after.cells[5] = Cell {
        state: TaskState::Waiting,
        replicas: 0,
        by: None,
    };
    after.cells[15] = cell(TaskState::Validated, 2, 1);
    assert_ne!(before.cells, after.cells);
    let mut flashes = Flashes::default();
    flashes.lost([(job, TaskId(1))], 0.0);
    flashes.update(std::slice::from_ref(&after), 1.0);
    assert_eq!(flashes.of(job, TaskId(1)), Some(Flash::Lost));
    let none = Flashes::default();

    let at_once = pixels(|c, ctx| {
        task_grid(c, ctx, &after, &flashes, None);
    });
    let by_change = pixels(|c, ctx| {
        let shown = task_grid(c, ctx, &before, &none, None);
        task_grid(c, ctx, &after, &flashes, Some(&shown));
    });
    assert!(at_once.iter().any(|b| *b != 0), "the grid drew something");
    assert_eq!(at_once, by_change, "the task grid");

    let params = match &e.job_spec(job).unwrap().kernel {
        Kernel::Mandelbrot(p) => p.clone(),
        other => panic!("a Mandelbrot job, not {other:?}"),
    };
    let size = |c: &web_sys::HtmlCanvasElement| {
        c.set_width(params.width);
        c.set_height(params.height);
    };
    let mut here = vec![false; 16];
    let at_once = pixels(|c, ctx| {
        size(c);
        here[0] = true;
        overlay(ctx, &params, &after, &here, None);
    });
    let by_change = pixels(|c, ctx| {
        size(c);
        let shown = overlay(ctx, &params, &before, &[false; 16], None);
        overlay(ctx, &params, &after, &here, Some(&shown));
    });
    assert!(
        at_once.iter().any(|b| *b != 0),
        "the overlay drew something"
    );
    assert_eq!(at_once, by_change, "the overlay");
}
