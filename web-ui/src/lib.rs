//! The page's logic that does not touch the browser, and what the page (`src/main.rs`),
//! its node worker (`src/bin/node.rs`) and its compute workers (`src/bin/worker.rs`)
//! share: the view's feed ([`feed`]: what the page shows, worked out in the node
//! worker), what page and node worker say ([`link`]), the job form ([`form`]), what the
//! page shows of jobs and departures ([`model`]), the messages between page and compute
//! workers ([`TaskRequest`], [`TaskReply`]) and, in wasm, the workers' loops
//! (`node_worker::start`, `worker::start`) and the painter. All but the last three are
//! tested natively.
//!
//! Trunk builds each worker as a wasm binary of this crate (`data-type="worker"` in
//! `index.html`) with a classic-script loader (`node_loader.js`, `worker_loader.js`);
//! the page starts one node worker, and one compute `Worker` per compute slot (see
//! `pool.rs`). A compute worker runs one task at a time with the same kernels a native
//! node runs, so a tab's bytes equal a native node's.

use std::cell::{Cell, RefCell, RefMut};

use node_core::job::{JobId, TaskId};
use node_core::kernels::Kernel;
use serde::{Deserialize, Serialize};

pub mod feed;
pub mod form;
pub mod guide;
pub mod inspect;
pub mod keys;
pub mod layout;
pub mod link;
pub mod model;
#[cfg(target_arch = "wasm32")]
pub mod node_worker;
#[cfg(target_arch = "wasm32")]
pub mod paint;
pub mod qr;
pub mod record;
#[cfg(target_arch = "wasm32")]
pub mod worker;

/// The cell's value, or `None` if it was left borrowed. On a page's single thread that
/// happens only when the browser ended a script in the middle of a change (Firefox stops
/// a closing tab's running script: "Script terminated by timeout"), which skips the code
/// that gives the borrow back. The page is going away then: what that cell drives stops
/// where it was, with one warning, where `borrow_mut` would panic on every message still
/// to come.
pub fn unless_left_borrowed<T>(cell: &RefCell<T>) -> Option<RefMut<'_, T>> {
    thread_local! {
        static WARNED: Cell<bool> = const { Cell::new(false) };
    }
    let held = cell.try_borrow_mut().ok();
    if held.is_none() && !WARNED.with(|w| w.replace(true)) {
        #[cfg(target_arch = "wasm32")]
        web_sys::console::warn_1(
            &"part of the page stopped: a script was ended mid-change (is the tab closing?)".into(),
        );
    }
    held
}

/// The page asks a worker to compute one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub job: JobId,
    pub task: TaskId,
    pub kernel: Kernel,
    /// Benchmarks only (`?bench=kernels`): compute a Mandelbrot task with the plain
    /// scalar loop that its lanes are measured against, instead of the kernel.
    pub scalar_loop: bool,
}

/// A worker's answer to a [`TaskRequest`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskReply {
    pub job: JobId,
    pub task: TaskId,
    /// The kernel's output, or why it refused the task (a page bug: the engine only
    /// runs tasks of validated jobs).
    pub output: Result<Vec<u8>, String>,
    /// How long the kernel ran, in milliseconds (the worker's clock).
    pub compute_ms: f64,
}

/// Why bytes from the other side are not a message.
#[derive(Debug, thiserror::Error)]
#[error("malformed worker message: {0}")]
pub struct Malformed(#[from] postcard::Error);

/// The bytes of a message (postcard; these plain types cannot fail to encode).
pub fn encode<T: Serialize>(msg: &T) -> Vec<u8> {
    postcard::to_allocvec(msg).unwrap_or_default()
}

/// A message from its bytes.
pub fn decode<'a, T: Deserialize<'a>>(bytes: &'a [u8]) -> Result<T, Malformed> {
    Ok(postcard::from_bytes(bytes)?)
}

/// Computes a request as a worker does (also what a test compares against).
pub fn compute(req: &TaskRequest) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    node_core::kernels::bench::run_task(&req.kernel, req.task.0, req.scalar_loop, &mut out)
        .map(|()| out)
        .map_err(|e| e.to_string())
}

/// `text` as the inside of a JSON string: the page's one JSON body (a presenter key sent
/// to the server) is written by hand, since a JSON library would cost the first paint
/// kilobytes.
pub fn json_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if u32::from(c) < 0x20 => out.push_str(&format!("\\u{:04x}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// How often each warm-up job runs when a worker starts.
pub const WARM_UP_ROUNDS: usize = 12;

/// Small jobs a compute worker runs before it says it is ready, each
/// [`WARM_UP_ROUNDS`] times: a wasm function starts in V8's baseline tier and is
/// optimised only after it has run for a while, and a call under way keeps the code it
/// started with, so a worker's first real task (one long call) would otherwise run
/// entirely unoptimised. Every kernel's hot loops run here; all together they take a few
/// milliseconds natively.
pub fn warm_up_jobs() -> Vec<node_core::kernels::Kernel> {
    use node_core::kernels::{Kernel, julia, mandelbrot, monte_carlo, primes};
    let small_image = mandelbrot::Params {
        width: 64,
        height: 64,
        max_iter: 500,
        tiles_x: 1,
        tiles_y: 1,
        ..mandelbrot::Params::default()
    };
    vec![
        Kernel::Mandelbrot(small_image.clone()),
        // The same escape loop with the other orbit: both arms optimised.
        Kernel::Julia(julia::Params {
            image: mandelbrot::Params {
                x_min: -1.6,
                x_max: 1.6,
                y_min: -1.6,
                y_max: 1.6,
                ..small_image
            },
            ..julia::Params::default()
        }),
        // √n above 4,096: the larger primes' whole-segment loop runs too.
        Kernel::Primes(primes::Params {
            n: 20_000_000,
            ranges: 1,
        }),
        Kernel::MonteCarloPi(monte_carlo::Params {
            samples_per_task: 200_000,
            tasks: 1,
            seed: 1,
        }),
    ]
}

/// Runs the warm-up jobs; returns how many ran without an error.
pub fn warm_up() -> usize {
    let mut ok = 0;
    let mut out = Vec::new();
    for kernel in warm_up_jobs() {
        for _ in 0..WARM_UP_ROUNDS {
            out.clear();
            ok += usize::from(kernel.run_task(0, &mut out).is_ok());
        }
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::kernels::mandelbrot;

    #[test]
    fn a_borrow_left_behind_by_an_ended_script_stops_the_cell_without_a_panic() {
        let cell = RefCell::new(1);
        *unless_left_borrowed(&cell).expect("a free cell is lent") += 1;
        assert_eq!(*cell.borrow(), 2, "the change went through");
        // What a script ended mid-change leaves: a borrow nobody gives back.
        std::mem::forget(cell.borrow_mut());
        assert!(unless_left_borrowed(&cell).is_none());
        assert!(
            unless_left_borrowed(&cell).is_none(),
            "and again, without a panic"
        );
    }

    #[test]
    fn the_warm_up_runs_every_kernel_briefly() {
        let started = std::time::Instant::now();
        let jobs = warm_up_jobs();
        assert_eq!(
            warm_up(),
            jobs.len() * WARM_UP_ROUNDS,
            "every warm-up job is valid"
        );
        let kinds: std::collections::BTreeSet<_> = jobs
            .iter()
            .map(std::mem::discriminant)
            .map(|d| format!("{d:?}"))
            .collect();
        assert_eq!(kinds.len(), 4, "one job per kernel");
        for k in &jobs {
            assert_eq!(k.task_count(), 1);
        }
        // Not a speed assertion: a bound on how much work the warm-up is (natively it
        // takes a few ms; debug builds are far slower, so the bound is loose).
        assert!(started.elapsed() < std::time::Duration::from_secs(30));
    }

    #[test]
    fn requests_and_replies_survive_the_trip_and_garbage_is_refused() {
        let req = TaskRequest {
            job: JobId(u64::MAX - 3),
            task: TaskId(5),
            kernel: Kernel::Mandelbrot(mandelbrot::Params {
                width: 64,
                height: 64,
                tiles_x: 4,
                tiles_y: 4,
                ..mandelbrot::Params::default()
            }),
            scalar_loop: false,
        };
        let back: TaskRequest = decode(&encode(&req)).unwrap();
        assert_eq!(back, req);
        let output = compute(&req);
        // A colour index a pixel.
        assert_eq!(output.as_ref().map(Vec::len), Ok(16 * 16));
        let reply = TaskReply {
            job: req.job,
            task: req.task,
            output,
            compute_ms: 1.5,
        };
        assert_eq!(decode::<TaskReply>(&encode(&reply)).unwrap(), reply);
        assert!(decode::<TaskReply>(&[0xff; 3]).is_err());
        let bad = TaskRequest {
            task: TaskId(16),
            ..req.clone()
        };
        assert!(compute(&bad).unwrap_err().contains("out of range"));
        // The scalar loop the benchmark measures the lanes against: the same picture.
        let scalar = TaskRequest {
            scalar_loop: true,
            ..req.clone()
        };
        assert_eq!(compute(&scalar), compute(&req));
    }

    #[test]
    fn a_key_with_quotes_and_controls_stays_one_json_string() {
        let key = "a\"b\\c\nd é";
        let body = format!("{{\"presenter_key\":\"{}\"}}", json_escaped(key));
        let back: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(back["presenter_key"], key);
    }
}
