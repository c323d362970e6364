//! `?bench=tile` and `?bench=kernels`: the page computes nothing for a mesh and joins no
//! room; it times one Mandelbrot tile (1024 × 1024, 1000 iterations, the speed
//! baseline), or every kernel at its benchmark size, in one compute worker, [`RUNS`]
//! times each in a row, and shows the times as JSON in `[data-testid=bench-result]` for
//! `cargo xtask bench scale` and `cargo xtask bench kernels`, which compare them with the
//! same work computed natively. Mandelbrot's plain scalar loop (the baseline of its
//! lanes) runs in the worker too, asked for by [`TaskRequest::scalar_loop`], so that
//! both are timed on the same thread.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Uint8Array;
use leptos::prelude::*;
use node_core::job::{JobId, TaskId};
use node_core::kernels::bench::Case;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{MessageEvent, Worker};
use web_ui::{TaskReply, TaskRequest, decode, encode};

use crate::pool::WORKER_URL;

/// Times each kernel is computed: the first call, then warm ones.
pub const RUNS: usize = 5;

/// What a page benchmarks: one Mandelbrot tile (`?bench=tile`) or every kernel at the
/// sizes `cargo xtask bench kernels` compares (`?bench=kernels`).
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Which {
    Tile,
    Kernels,
}

/// The cases timed.
pub fn cases(which: Which) -> Vec<Case> {
    let mut all = node_core::kernels::bench::single_task_cases();
    if which == Which::Tile {
        all.truncate(1);
    }
    all
}

fn request(case: &Case) -> TaskRequest {
    TaskRequest {
        job: JobId(0),
        task: TaskId(case.task),
        kernel: case.kernel.clone(),
        scalar_loop: case.scalar_loop,
    }
}

/// One kernel's times in the worker, as JSON.
fn times_json(name: &str, t: &[f64], hash: u64) -> String {
    let mut warm = t[1..].to_vec();
    warm.sort_by(f64::total_cmp);
    format!(
        "{{\"name\": \"{name}\", \"first_ms\": {:.1}, \"warm_ms\": {:.1}, \"runs_ms\": {:?}, \"hash\": \"{hash:016x}\"}}",
        t[0],
        warm[warm.len() / 2],
        t
    )
}

/// The kernel being timed, its times so far, and the finished kernels' JSON.
type Progress = (usize, Vec<f64>, Vec<String>);

/// Starts the runs once the worker says it is ready; `result` gets the JSON (or an
/// error) when they are done: for `Tile`, the tile's times; for `Kernels`,
/// `{"kernels": [...]}` with each kernel's.
pub fn start(result: RwSignal<String>, which: Which) {
    let worker = match Worker::new(WORKER_URL) {
        Ok(w) => w,
        Err(e) => return result.set(format!("{{\"error\": \"no worker: {e:?}\"}}")),
    };
    let cases = cases(which);
    let bytes: Vec<Uint8Array> = cases
        .iter()
        .map(|c| Uint8Array::from(encode(&request(c)).as_slice()))
        .collect();
    let state: Rc<RefCell<Progress>> = Rc::default();
    let w = worker.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let data = Uint8Array::new(&e.data()).to_vec();
        if data.is_empty() {
            // The worker is ready: the first request.
            if let Err(err) = w.post_message(&bytes[0]) {
                result.set(format!("{{\"error\": \"{err:?}\"}}"));
            }
            return;
        }
        let reply: TaskReply = match decode(&data) {
            Ok(r) => r,
            Err(err) => return result.set(format!("{{\"error\": \"{err}\"}}")),
        };
        let hash = match &reply.output {
            Ok(out) => node_core::job::content_hash(out),
            Err(err) => return result.set(format!("{{\"error\": \"{err}\"}}")),
        };
        let mut s = state.borrow_mut();
        let (index, times, done) = &mut *s;
        times.push(reply.compute_ms);
        if times.len() < RUNS {
            let _ = w.post_message(&bytes[*index]);
            return;
        }
        done.push(times_json(cases[*index].name, times, hash));
        times.clear();
        *index += 1;
        if *index < bytes.len() {
            let _ = w.post_message(&bytes[*index]);
            return;
        }
        result.set(match which {
            Which::Tile => done[0].clone(),
            Which::Kernels => format!("{{\"kernels\": [{}]}}", done.join(", ")),
        });
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The page lives for the benchmark only.
    on_message.forget();
}

/// The benchmark page.
#[component]
pub fn BenchPage(which: Which) -> impl IntoView {
    let result = RwSignal::new(String::new());
    start(result, which);
    let what = match which {
        Which::Tile => "Mandelbrot 1024 × 1024, 1000 iterations",
        Which::Kernels => "every kernel",
    };
    view! {
        <main class="app">
            <h1>"Meshwork: kernels in a worker"</h1>
            <p>{what}", computed "{RUNS}" times each in a compute worker."</p>
            <pre data-testid="bench-result">{move || result.get()}</pre>
        </main>
    }
}
