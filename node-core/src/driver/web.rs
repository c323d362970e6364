//! The browser run loop, on the timers of the page or of the worker it runs in.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;

use futures_channel::mpsc::UnboundedReceiver;
use futures_util::StreamExt;
use futures_util::future::{Either, select};
use wasm_bindgen::prelude::Closure;
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

use super::BULK_POLL_MS;
use crate::job::{JobId, TaskId};
use crate::kernels::Kernel;
use crate::membership::Micros;
use crate::node::{Action, MeshNode, NodeEvent, PageInput};
use crate::transport::Transport;

/// The browser's clock, from the window or, in a worker, the worker's global scope.
fn performance() -> Option<web_sys::Performance> {
    match web_sys::window() {
        Some(w) => w.performance(),
        None => js_sys::global()
            .dyn_into::<web_sys::WorkerGlobalScope>()
            .ok()?
            .performance(),
    }
}

/// The page's (or the worker's) clock, in microseconds since it loaded.
pub fn now() -> Micros {
    let ms = performance().map(|p| p.now()).unwrap_or(0.0);
    Micros((ms * 1000.0) as u64)
}

/// A timer on the window or, in a worker, on the worker's global scope.
fn set_timeout(f: &js_sys::Function, ms: i32) -> bool {
    match web_sys::window() {
        Some(w) => w
            .set_timeout_with_callback_and_timeout_and_arguments_0(f, ms)
            .is_ok(),
        None => js_sys::global()
            .dyn_into::<web_sys::WorkerGlobalScope>()
            .is_ok_and(|g| {
                g.set_timeout_with_callback_and_timeout_and_arguments_0(f, ms)
                    .is_ok()
            }),
    }
}

async fn sleep_until(at: Option<Micros>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    sleep_ms((at.0.saturating_sub(now().0) / 1000) as i32).await;
}

/// Resolves after `ms` milliseconds, on the timers of the page or of the worker it runs
/// in (at once where there are none).
pub async fn sleep_ms(ms: i32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if !set_timeout(&resolve, ms) {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// The run loop hands the thread back to the browser once it has run this long without
/// a break (ms): messages queued on the data channels are taken one step at a time, and
/// the page renders, handles input and runs its timers between them instead of behind a
/// burst of steps that all fell in one task.
pub const SLICE_MS: f64 = 8.0;

/// Resolves in a task of its own: everything queued before it (events, rendering,
/// timers) runs first. A message to itself on a `MessageChannel`, not a timer: a hidden
/// tab's timers are held to one a second or less, its messages are not.
pub async fn yield_to_browser() {
    /// One channel per thread, and the waiters in the order they posted: each message
    /// wakes the first (any number of callers may wait at once: the run loop, the page's
    /// view updates).
    struct Yielder {
        channel: web_sys::MessageChannel,
        waiting: Rc<RefCell<VecDeque<js_sys::Function>>>,
    }
    thread_local! {
        static YIELDER: Option<Yielder> = web_sys::MessageChannel::new().ok().map(|channel| {
            let waiting: Rc<RefCell<VecDeque<js_sys::Function>>> = Rc::default();
            let w = waiting.clone();
            let wake = Closure::<dyn FnMut()>::new(move || {
                let first = w.borrow_mut().pop_front();
                if let Some(resolve) = first {
                    let _ = resolve.call0(&JsValue::NULL);
                }
            });
            channel.port1().set_onmessage(Some(wake.as_ref().unchecked_ref()));
            // Lives as long as the thread.
            wake.forget();
            Yielder { channel, waiting }
        });
    }
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let posted = YIELDER.with(|y| {
            let Some(y) = y else { return false };
            y.waiting.borrow_mut().push_back(resolve.clone());
            let posted = y.channel.port2().post_message(&JsValue::NULL).is_ok();
            if !posted {
                y.waiting.borrow_mut().pop_back();
            }
            posted
        });
        if !posted {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Yields to the browser if the run of steps that began at `slice_start` (ms) has lasted
/// over [`SLICE_MS`]; a new run begins after it.
async fn yield_if_spent(slice_start: &mut f64) {
    if now().as_ms_f64() - *slice_start > SLICE_MS {
        yield_to_browser().await;
        *slice_start = now().as_ms_f64();
    }
}

/// What the run loop needs from the page.
pub trait Page {
    /// Starts computing a task off the page's thread (in a worker); the output comes
    /// back as [`PageInput::Computed`]. Must not block, and must see every task through:
    /// the engine counts it as running until its output comes back.
    fn compute(&mut self, job: JobId, task: TaskId, kernel: Kernel);
    /// Every event of the node, as it happens.
    fn on_event(&mut self, event: &NodeEvent);
    /// The node after every step, to refresh a view of it.
    fn on_change(&mut self, node: &MeshNode);
}

enum Woke<E> {
    Transport(Option<E>),
    Page(Option<PageInput>),
    Timer,
}

/// Runs a node in the page until the transport ends or a presenter tells it to leave.
pub async fn run_web<T: Transport, P: Page>(
    mut transport: T,
    mut node: MeshNode,
    mut inputs: UnboundedReceiver<PageInput>,
    mut page: P,
) {
    let mut inputs_open = true;
    let mut leave = false;
    // When the current run of steps without a break began (ms on the page's clock).
    let mut slice_start = now().as_ms_f64();
    loop {
        let mut deadline = node.poll_timeout();
        if !node.bulk_waiting().is_empty() {
            let soon = Micros(now().0 + BULK_POLL_MS * 1000);
            deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
        }
        let waiting_since = now().as_ms_f64();
        let woke = {
            let ev = std::pin::pin!(transport.next_event());
            let input = std::pin::pin!(async {
                if inputs_open {
                    inputs.next().await
                } else {
                    std::future::pending().await
                }
            });
            let timer = std::pin::pin!(sleep_until(deadline));
            match select(select(ev, input), timer).await {
                Either::Left((Either::Left((ev, _)), _)) => Woke::Transport(ev),
                Either::Left((Either::Right((input, _)), _)) => Woke::Page(input),
                Either::Right(((), _)) => Woke::Timer,
            }
        };
        let woke_at = now().as_ms_f64();
        if woke_at - waiting_since > 1.0 {
            // It waited: this step starts a task of its own.
            slice_start = woke_at;
        }
        match woke {
            Woke::Transport(Some(ev)) => node.handle_transport(now(), ev),
            Woke::Transport(None) => break,
            Woke::Page(Some(PageInput::Command(cmd))) => {
                if let Err(e) = node.handle_command(now(), cmd) {
                    web_sys::console::warn_1(&format!("command refused: {e}").into());
                }
            }
            Woke::Page(Some(PageInput::Computed { job, task, output })) => {
                node.handle_computed(now(), job, task, output)
            }
            Woke::Page(Some(PageInput::Workers(n))) => node.set_workers(now(), n),
            Woke::Page(Some(PageInput::Background(on))) => node.set_background(now(), on),
            // A failed node is silent: to the server too.
            Woke::Page(Some(PageInput::ServerAway { secs })) if !node.is_failed() => {
                transport.take_server_away(secs)
            }
            Woke::Page(Some(PageInput::ReviveRoom)) if !node.is_failed() => transport.revive_room(),
            Woke::Page(Some(PageInput::ServerAway { .. } | PageInput::ReviveRoom)) => {}
            Woke::Page(Some(PageInput::Console { target, cmd })) => {
                if let Err(e) = node.console(now(), &target, cmd) {
                    web_sys::console::warn_1(&format!("console command not sent: {e}").into());
                }
            }
            Woke::Page(Some(PageInput::Bulk { to, bytes })) => node.start_bulk(now(), to, bytes),
            Woke::Page(Some(PageInput::Refresh)) => {}
            Woke::Page(None) => inputs_open = false,
            Woke::Timer => node.handle_timeout(now()),
        }
        // The step, what it caused (sends, and events that the page logs and renders),
        // and the view's refresh: each in a task of its own once the slice is spent.
        yield_if_spent(&mut slice_start).await;
        while let Some(action) = node.poll_action() {
            match action {
                Action::Send { to, bytes } => {
                    if let Err(e) = transport.send(&to, bytes).await {
                        web_sys::console::debug_1(&format!("send to {to}: {e}").into());
                    }
                }
                Action::Close { peer } => transport.close_peer(&peer),
                Action::Reconnect { peer } => transport.reconnect(&peer),
                Action::Rejoin => transport.rejoin(),
                Action::Leave => leave = true,
                Action::Compute { job, task, kernel } => page.compute(job, task, kernel),
                Action::Event(e) => page.on_event(&e),
            }
        }
        for to in node.bulk_waiting() {
            while transport.queued(&to).await < node.in_flight_max(&to) {
                let Some(bytes) = node.pop_bulk(&to) else {
                    break;
                };
                if let Err(e) = transport.send(&to, bytes).await {
                    web_sys::console::debug_1(&format!("bulk send to {to}: {e}").into());
                }
            }
        }
        yield_if_spent(&mut slice_start).await;
        page.on_change(&node);
        if leave {
            transport.shutdown().await;
            break;
        }
        yield_if_spent(&mut slice_start).await;
    }
}
