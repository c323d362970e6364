//! The page's logic that does not touch the browser, and what the page (`src/main.rs`)
//! and its compute workers (`src/bin/worker.rs`) share: the job form ([`form`]), what
//! the page shows of jobs and departures ([`model`]), the messages between page and
//! workers ([`TaskRequest`], [`TaskReply`]) and, in wasm, the worker's loop
//! ([`worker::start`]). All but the last is tested natively.
//!
//! Trunk builds the worker as a second wasm binary of this crate (`data-type="worker"` in
//! `index.html`) with a classic-script loader, `worker_loader.js`; the page starts one
//! `Worker` per compute slot from it (see `pool.rs`). A worker runs one task at a time
//! with the same kernels a native node runs, so a tab's bytes equal a native node's.

use node_core::job::{JobId, TaskId};
use node_core::kernels::Kernel;
use serde::{Deserialize, Serialize};

pub mod form;
pub mod guide;
pub mod inspect;
pub mod keys;
pub mod model;
pub mod qr;
pub mod record;
#[cfg(target_arch = "wasm32")]
pub mod worker;

/// The page asks a worker to compute one task.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskRequest {
    pub job: JobId,
    pub task: TaskId,
    pub kernel: Kernel,
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
    req.kernel
        .run_task(req.task.0, &mut out)
        .map(|()| out)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::kernels::mandelbrot;

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
        };
        let back: TaskRequest = decode(&encode(&req)).unwrap();
        assert_eq!(back, req);
        let output = compute(&req);
        assert_eq!(output.as_ref().map(Vec::len), Ok(16 * 16 * 4));
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
            ..req
        };
        assert!(compute(&bad).unwrap_err().contains("out of range"));
    }
}
