//! The page's view logic, natively under `cargo test` and in headless Chromium under
//! wasm-bindgen-test (`cargo xtask test` runs it there, inside a network namespace):
//! the join QR code drawn by the browser's own canvas decodes to the join address; job
//! rows, the inspector's words, copies lost and healed, rates and a recording behave the
//! same in the browser's wasm as natively; and the task grid and overlay, drawn change by
//! change, equal one drawing (in the browser only); the view's feed, its changes applied
//! in order after crossing the page/worker encoding, equals a fresh reading of the node;
//! and a job's disagreements fold into one line that counts them.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;
#[cfg(target_arch = "wasm32")]
wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

use node_core::engine::{Command, Engine, EngineConfig, Event, Input, Millis, Output};
use node_core::job::{JobId, NodeId, TaskId};
use node_core::kernels::{Kernel, mandelbrot};
use node_core::testkit::Net;
use web_ui::feed::{
    Feed, GONE_SHOWN_MS, LogLine, PageState, STALE_MS, Selection, ViewModel, ViewOp,
};
use web_ui::inspect;
use web_ui::link::{self, ToPage};
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
    let cmd = Command::Submit {
        kernel: picture(50),
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
        kind: "me".to_string(),
        state: "live".to_string(),
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
        paused: false,
        slow_ms: 0,
        told_to_lie: false,
        cut: Vec::new(),
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

// The view's feed (`web_ui::feed`): four nodes in memory on virtual time
// (`node_core::testkit::Net`), node 0 watched as its page watches it; every batch of
// changes crosses the page/worker boundary's encoding before it is applied.

/// What watches node 0: its feed, the view its changes built, what is selected.
#[derive(Default)]
struct Watcher {
    feed: Feed,
    view: ViewModel,
    selected: Option<Selection>,
    ops: Vec<ViewOp>,
}

/// 64×64 in 4×4 tiles: 16 tasks, `max_iter` iterations at most per pixel.
fn picture(max_iter: u32) -> Kernel {
    Kernel::Mandelbrot(mandelbrot::Params {
        x_min: -2.0,
        x_max: 1.0,
        y_min: -1.5,
        y_max: 1.5,
        width: 64,
        height: 64,
        max_iter,
        tiles_x: 4,
        tiles_y: 4,
    })
}

/// A fresh feed's reading of the node now, applied to an empty view.
fn fresh(net: &Net, selected: Option<Selection>) -> ViewModel {
    let mut feed = Feed::new();
    let page = PageState {
        selected,
        ..Default::default()
    };
    feed.on_change(net.now, &net.nodes[0], &page);
    let mut view = ViewModel::default();
    for op in feed.take() {
        view.apply(op);
    }
    view
}

/// `n` nodes, node 0 (the presenter) watched as a page watches its node: each step's
/// events and the feed's changes, carried as they travel to the page, applied to the
/// page's view.
fn watched(n: usize) -> (Net, Rc<RefCell<Watcher>>) {
    watched_at(n, 0)
}

/// [`watched`], node `i` watched.
fn watched_at(n: usize, i: usize) -> (Net, Rc<RefCell<Watcher>>) {
    let page = Rc::new(RefCell::new(Watcher::default()));
    let watcher = page.clone();
    let net = Net::watched(
        n,
        i,
        Box::new(move |now, node, events| {
            let mut p = watcher.borrow_mut();
            for e in events {
                p.feed.on_event(now, e);
            }
            let state = PageState {
                selected: p.selected,
                ..Default::default()
            };
            p.feed.on_change(now, node, &state);
            // As they travel to the page: encoded, then decoded.
            let ops = p.feed.take();
            let (header, payload) = link::split(ToPage::View(ops));
            let Ok(ToPage::View(ops)) = link::join::<ToPage>(&header, payload) else {
                panic!("the view's changes did not survive the trip");
            };
            for op in &ops {
                p.view.apply(op.clone());
            }
            p.ops.extend(ops);
        }),
    );
    (net, page)
}

/// Four nodes, node 0 watched as a page watches its node; it submits a 16-task job
/// with two copies of each result, and node 2 dies once results exist.
fn run_a_job_through_a_departure() -> (Net, Rc<RefCell<Watcher>>) {
    let (mut net, page) = watched(4);
    net.run_until(500);
    let cmd = Command::Submit {
        kernel: picture(64),
        replication: 2,
        quorum: 1,
        pacing_ms: 0,
        nonce: 1,
    };
    let now = net.now;
    net.nodes[0].handle_command(now, cmd).expect("joined");
    net.drain(0);
    // Until results exist (a task takes 20 ms here), then one member dies.
    net.run_until(net.now.0 / 1000 + 70);
    net.kill(2);
    net.run(1, 60_000);
    assert_eq!(net.done, vec![picture(64).run_all().unwrap()]);
    (net, page)
}

#[test]
fn the_feeds_changes_applied_in_order_equal_a_fresh_reading_of_the_node() {
    let (mut net, page) = run_a_job_through_a_departure();
    let member = node_core::node::node_id(&net.ids[1]);
    page.borrow_mut().selected = Some(Selection::Node(member));
    // Quiet: only heartbeats step the node, past the longest a view may lag
    // (STALE_MS) and the time a departed member stays on the graph.
    let quiet_ms = (GONE_SHOWN_MS + STALE_MS) as u64 + 500;
    net.run_until(net.now.0 / 1000 + quiet_ms);
    let p = page.borrow();
    let snap = fresh(&net, p.selected);
    let live = &p.view;

    assert_eq!(live.peers, snap.peers);
    assert_eq!(live.peers.len(), 2, "{:?}", live.peers);
    let rows = |v: &ViewModel| v.jobs.iter().map(|j| j.row.clone()).collect::<Vec<_>>();
    assert_eq!(rows(live), rows(&snap));
    assert_eq!(live.jobs.len(), 1);
    assert_eq!(live.jobs[0].row.validated, 16);
    assert_eq!(
        live.jobs[0].row.short(),
        0,
        "every result back to two copies"
    );
    assert_eq!(live.graph, snap.graph);
    assert!(!live.inspect.is_empty());
    assert_eq!(live.inspect, snap.inspect);
    // Every tile of the picture reached the page, once.
    assert_eq!(live.tiles, snap.tiles);
    assert_eq!(live.tiles.values().map(BTreeSet::len).sum::<usize>(), 16);
    assert_eq!(live.tiles_received, 16);
    // What only the events tell: the job's output in words, the log.
    let job = live.jobs[0].row.id;
    assert!(live.finished.contains(&job));
    assert!(live.jobs[0].output.is_some(), "{:?}", live.jobs[0]);
    let seqs: Vec<u64> = live.log.iter().map(|l| l.seq).collect();
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    // The departure's line was followed until its work was all elsewhere.
    let left: Vec<&LogLine> = live.log.iter().filter(|l| l.event == "left").collect();
    assert_eq!(left.len(), 1, "{:?}", live.log);
    assert!(
        left[0].text.contains("all of it elsewhere") || left[0].text.ends_with("it held no work"),
        "{}",
        left[0].text
    );
    // The view's words name members by their names, never by a bare id.
    assert_eq!(live.names.len(), 4);
}

#[test]
fn the_feed_sends_rows_only_when_they_changed() {
    let (mut net, page) = run_a_job_through_a_departure();
    net.run_until(net.now.0 / 1000 + 2_000);
    page.borrow_mut().ops.clear();
    // Two seconds more of quiet: the jobs are read again (at least every STALE_MS),
    // but nothing in them changed, so no rows, peers or inspector words are sent.
    net.run_until(net.now.0 / 1000 + 2_000);
    let p = page.borrow();
    let reads = p
        .ops
        .iter()
        .filter(|op| matches!(op, ViewOp::Jobs { .. }))
        .count();
    assert!(reads >= 3, "{reads} reads of the jobs in 2 s");
    for op in &p.ops {
        match op {
            ViewOp::Jobs { jobs: None, .. } | ViewOp::Graph(_) | ViewOp::Pulses(_) => {}
            ViewOp::Rates(_) => {}
            other => panic!("sent without a change: {other:?}"),
        }
    }
}

#[test]
fn a_jobs_disagreements_fold_into_one_counting_line() {
    use node_core::membership::Micros;
    use node_core::node::NodeEvent;
    let mut feed = Feed::new();
    let mut view = ViewModel::default();
    let mismatch = |job: u64, task: u32| {
        NodeEvent::Engine(Event::TaskMismatch {
            job: JobId(job),
            task: TaskId(task),
        })
    };
    // 198 tasks of one job, then one of another, then one more of the first.
    for t in 0..198 {
        feed.on_event(Micros(1_000), &mismatch(7, t));
    }
    feed.on_event(Micros(2_000), &mismatch(8, 3));
    feed.on_event(Micros(3_000), &mismatch(7, 200));
    for op in feed.take() {
        view.apply(op);
    }
    let lines: Vec<&LogLine> = view
        .log
        .iter()
        .filter(|l| l.text.contains("different results"))
        .collect();
    assert_eq!(lines.len(), 2, "one line per job: {lines:?}");
    assert!(
        lines[0].text.contains("for 199 tasks (latest t200;")
            && lines[0].task == Some((JobId(7), TaskId(0))),
        "{:?}",
        lines[0]
    );
    assert!(
        lines[1]
            .text
            .contains("t3: members reported different results"),
        "{:?}",
        lines[1]
    );
}

/// Jobs are shown newest first, in the order this node learnt of them (a job's id is
/// a hash: sorting by it would put any job first, and the stage shows the first).
#[test]
fn jobs_are_shown_newest_first_whatever_their_ids() {
    let (mut net, page) = watched(2);
    net.run_until(500);
    for nonce in 1..=5 {
        let cmd = Command::Submit {
            kernel: picture(16),
            replication: 1,
            quorum: 1,
            pacing_ms: 0,
            nonce,
        };
        let now = net.now;
        net.nodes[0].handle_command(now, cmd).expect("joined");
        net.drain(0);
        net.run_until(net.now.0 / 1000 + 600);
    }
    net.run(5, 60_000);
    let accepted: Vec<JobId> = net
        .events
        .iter()
        .filter_map(|(i, e)| match e {
            node_core::node::NodeEvent::Engine(Event::JobAccepted { job, .. }) if *i == 0 => {
                Some(*job)
            }
            _ => None,
        })
        .collect();
    assert_eq!(accepted.len(), 5);
    let mut by_id = accepted.clone();
    by_id.sort();
    assert_ne!(
        by_id, accepted,
        "ids in submission order would prove nothing"
    );
    let shown: Vec<JobId> = page.borrow().view.jobs.iter().map(|j| j.row.id).collect();
    let newest_first: Vec<JobId> = accepted.iter().rev().copied().collect();
    assert_eq!(shown, newest_first);
}

/// Four nodes, node 3's page (not the presenter's) watched; node 3 lies if `lying`.
/// Node 1 submits a 16-tile picture (r = 2, quorum `q`), and node 3 runs until its page
/// shows the job whole from previews (bounded in time), its page's commands going to it
/// as the worker sends them.
fn a_job_node_3_watches(q: u8, lying: bool) -> (Net, Rc<RefCell<Watcher>>) {
    use node_core::wire::ConsoleCmd;
    let (mut net, page) = watched_at(4, 3);
    net.run_until(500);
    if lying {
        let now = net.now;
        let me = net.ids[3].clone();
        net.nodes[3]
            .console(now, &me, ConsoleCmd::Lie { on: true })
            .expect("joined");
        net.drain(3);
    }
    let cmd = Command::Submit {
        kernel: picture(64),
        replication: 2,
        quorum: q,
        pacing_ms: 0,
        nonce: 1,
    };
    let now = net.now;
    net.nodes[1].handle_command(now, cmd).expect("joined");
    net.drain(1);
    let mut t = net.now.0 / 1000;
    for _ in 0..2_000 {
        t += 10;
        net.run_until(t);
        let commands = page.borrow_mut().feed.take_commands();
        for c in commands {
            let now = net.now;
            net.nodes[3].handle_command(now, c).expect("joined");
            net.drain(3);
        }
        if page.borrow().view.jobs.first().is_some_and(|j| j.previewed) {
            break;
        }
    }
    (net, page)
}

/// A job another member submitted: node 3's page (not the presenter's) has its node
/// watch it (the feed's command), and the picture reaches the page whole, every tile
/// node 3 does not hold as its preview, never assembled.
#[test]
fn another_members_job_is_drawn_from_previews_where_no_tile_is_held() {
    let (net, page) = a_job_node_3_watches(1, false);
    let p = page.borrow();
    let j = &p.view.jobs[0];
    assert!(j.previewed && j.watching, "{j:?}");
    assert!(j.output.is_none(), "a watched job is not assembled");
    assert_eq!(j.row.validated, 16);
    let engine = net.nodes[3].engine().unwrap();
    let held = (0..16)
        .filter(|t| engine.held(j.row.id, TaskId(*t)).is_some())
        .count();
    assert!(held < 16, "node 3 holds only its share of the copies");
    assert!(p.view.previews_received >= 16 - held);
    assert!(p.view.tiles_received >= held);
    assert_eq!(p.view.tiles[&j.row.id].len(), 16, "every task drawn");
}

/// A member that lies (q = 2): its page is sent only validated tiles and previews, each
/// the true one, never the wrong bytes it computed itself (which the quorum refuses).
#[test]
fn a_lying_members_page_is_sent_only_validated_pixels() {
    use node_core::kernels::preview;
    let (net, page) = a_job_node_3_watches(2, true);
    let kernel = picture(64);
    let p = page.borrow();
    assert!(p.view.jobs[0].previewed, "{:?}", p.view.jobs[0]);
    let engine = net.nodes[3].engine().unwrap();
    assert!(engine.stats().tasks_run > 0, "the liar computed some tasks");
    let params = kernel.image().unwrap().clone();
    let truth = |t: TaskId| {
        let mut b = Vec::new();
        kernel.run_task(t.0, &mut b).unwrap();
        b
    };
    let mut sent = 0;
    for op in &p.ops {
        if let ViewOp::Tiles {
            tiles, previews, ..
        } = op
        {
            for (t, bytes) in tiles {
                assert_eq!(bytes, &truth(*t), "{t}: a tile other than the true one");
                sent += 1;
            }
            for (t, bytes) in previews {
                assert_eq!(bytes, &preview::make(&params, t.0, &truth(*t)), "{t}");
                sent += 1;
            }
        }
    }
    assert!(sent >= 16, "every task drawn: {sent}");
}
