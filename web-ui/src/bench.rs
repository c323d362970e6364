//! `?bench=tile`: the page computes nothing for a mesh and joins no room; it times one
//! Mandelbrot tile (1024 × 1024, 1000 iterations, the speed baseline) in a compute
//! worker, [`RUNS`] times in a row, and shows the times as JSON in
//! `[data-testid=bench-result]` for `cargo xtask bench scale`, which compares them with
//! the same tile computed natively.

use std::cell::RefCell;
use std::rc::Rc;

use js_sys::Uint8Array;
use leptos::prelude::*;
use node_core::job::{JobId, TaskId};
use node_core::kernels::{Kernel, mandelbrot};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{MessageEvent, Worker};
use web_ui::{TaskReply, TaskRequest, decode, encode};

use crate::pool::WORKER_URL;

/// Times the tile is computed: the first call, then warm ones.
pub const RUNS: usize = 5;

fn request() -> TaskRequest {
    TaskRequest {
        job: JobId(0),
        task: TaskId(0),
        kernel: Kernel::Mandelbrot(mandelbrot::Params {
            tiles_x: 1,
            tiles_y: 1,
            ..mandelbrot::Params::default()
        }),
    }
}

/// Starts the runs once the worker says it is ready; `result` gets the JSON (or an
/// error) when they are done.
pub fn start(result: RwSignal<String>) {
    let worker = match Worker::new(WORKER_URL) {
        Ok(w) => w,
        Err(e) => return result.set(format!("{{\"error\": \"no worker: {e:?}\"}}")),
    };
    let b = Uint8Array::from(encode(&request()).as_slice());
    let times: Rc<RefCell<Vec<f64>>> = Rc::default();
    let w = worker.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let data = Uint8Array::new(&e.data()).to_vec();
        if data.is_empty() {
            // The worker is ready: the first request.
            if let Err(err) = w.post_message(&b) {
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
        let mut t = times.borrow_mut();
        t.push(reply.compute_ms);
        if t.len() < RUNS {
            let _ = w.post_message(&b);
            return;
        }
        let mut warm = t[1..].to_vec();
        warm.sort_by(f64::total_cmp);
        result.set(format!(
            "{{\"first_ms\": {:.1}, \"warm_ms\": {:.1}, \"runs_ms\": {:?}, \"hash\": \"{hash:016x}\"}}",
            t[0],
            warm[warm.len() / 2],
            *t
        ));
    });
    worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // The page lives for the benchmark only.
    on_message.forget();
}

/// The benchmark page.
#[component]
pub fn BenchTile() -> impl IntoView {
    let result = RwSignal::new(String::new());
    start(result);
    view! {
        <main class="app">
            <h1>"Meshwork: one tile in a worker"</h1>
            <p>"Mandelbrot 1024 × 1024, 1000 iterations, computed "{RUNS}" times in a compute worker."</p>
            <pre data-testid="bench-result">{move || result.get()}</pre>
        </main>
    }
}
