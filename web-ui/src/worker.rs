//! A compute worker's loop: each message is a [`TaskRequest`]'s bytes; each answer a
//! [`TaskReply`]'s. One task at a time, on the worker's own thread. It first runs the
//! warm-up jobs ([`crate::warm_up`]); its first message is empty: it is ready (requests
//! posted before that may be lost while its wasm loads).

use js_sys::Uint8Array;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{DedicatedWorkerGlobalScope, MessageEvent};

use crate::{TaskReply, TaskRequest, compute, decode, encode};

fn clock(scope: &DedicatedWorkerGlobalScope) -> f64 {
    scope.performance().map_or(0.0, |p| p.now())
}

/// Installs the message handler; the worker then lives as long as the page keeps it.
pub fn start() {
    console_error_panic_hook::set_once();
    let scope: DedicatedWorkerGlobalScope = js_sys::global().unchecked_into();
    let reply_to = scope.clone();
    let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
        let bytes = Uint8Array::new(&e.data()).to_vec();
        let req: TaskRequest = match decode(&bytes) {
            Ok(r) => r,
            Err(err) => {
                web_sys::console::error_1(&err.to_string().into());
                return;
            }
        };
        let t0 = clock(&reply_to);
        let output = compute(&req);
        let reply = TaskReply {
            job: req.job,
            task: req.task,
            output,
            compute_ms: clock(&reply_to) - t0,
        };
        let bytes = Uint8Array::from(encode(&reply).as_slice());
        // Hands the buffer over instead of copying it.
        let transfer = js_sys::Array::of1(&bytes.buffer());
        if let Err(err) = reply_to.post_message_with_transfer(&bytes, &transfer) {
            web_sys::console::error_1(&err);
        }
    });
    scope.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    // Lives as long as the worker.
    on_message.forget();
    // Before saying ready: the kernels' code optimised, so the first task runs at speed.
    let t0 = clock(&scope);
    let warmed = crate::warm_up();
    web_sys::console::debug_1(
        &format!(
            "worker warmed up: {warmed} small tasks in {:.0} ms",
            clock(&scope) - t0
        )
        .into(),
    );
    // A message that arrives before the handler is set (while the wasm loads) is lost:
    // say when requests may come (an empty message).
    if let Err(err) = scope.post_message(&Uint8Array::new_with_length(0)) {
        web_sys::console::error_1(&err);
    }
}
