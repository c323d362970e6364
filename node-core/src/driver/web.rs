//! The browser run loop, on the page's timers.

use futures_util::future::{Either, select};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

use super::{BULK_IN_FLIGHT_MAX, BULK_POLL_MS};
use crate::membership::Micros;
use crate::node::{Action, MeshNode, NodeEvent};
use crate::transport::Transport;

fn now() -> Micros {
    let ms = web_sys::window()
        .and_then(|w| w.performance())
        .map(|p| p.now())
        .unwrap_or(0.0);
    Micros((ms * 1000.0) as u64)
}

async fn sleep_until(at: Option<Micros>) {
    let Some(at) = at else {
        return std::future::pending().await;
    };
    let ms = (at.0.saturating_sub(now().0) / 1000) as i32;
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
        } else {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = JsFuture::from(promise).await;
}

/// Runs a node in the page until the transport ends. `on_event` sees every event;
/// `on_change` sees the node after every step, to refresh a view of the mesh.
pub async fn run_web<T: Transport>(
    mut transport: T,
    mut node: MeshNode,
    mut on_event: impl FnMut(&NodeEvent),
    mut on_change: impl FnMut(&MeshNode),
) {
    loop {
        let mut deadline = node.poll_timeout();
        if !node.bulk_waiting().is_empty() {
            let soon = Micros(now().0 + BULK_POLL_MS * 1000);
            deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
        }
        let woke = {
            let ev = std::pin::pin!(transport.next_event());
            let timer = std::pin::pin!(sleep_until(deadline));
            match select(ev, timer).await {
                Either::Left((ev, _)) => Some(ev),
                Either::Right(((), _)) => None,
            }
        };
        match woke {
            Some(Some(ev)) => node.handle_transport(now(), ev),
            Some(None) => break,
            None => node.handle_timeout(now()),
        }
        while let Some(action) = node.poll_action() {
            match action {
                Action::Send { to, bytes } => {
                    if let Err(e) = transport.send(&to, bytes).await {
                        web_sys::console::debug_1(&format!("send to {to}: {e}").into());
                    }
                }
                Action::Close { peer } => transport.close_peer(&peer),
                // For now on the page's own thread, between events (Web Workers come
                // with the job form).
                Action::Compute { job, task, kernel } => {
                    let mut out = Vec::new();
                    match kernel.run_task(task.0, &mut out) {
                        Ok(()) => node.handle_computed(now(), job, task, out),
                        Err(e) => web_sys::console::warn_1(&format!("{job} {task}: {e}").into()),
                    }
                }
                Action::Event(e) => on_event(&e),
            }
        }
        for to in node.bulk_waiting() {
            while transport.queued(&to).await < BULK_IN_FLIGHT_MAX {
                let Some(bytes) = node.pop_bulk(&to) else {
                    break;
                };
                if let Err(e) = transport.send(&to, bytes).await {
                    web_sys::console::debug_1(&format!("bulk send to {to}: {e}").into());
                }
            }
        }
        on_change(&node);
    }
}
