//! This node's panel: who it is, its room, its signaling status and its workers.

use leptos::prelude::*;
use node_core::driver::PageInput;
use node_core::node::node_id;
use node_core::signal::PeerInfo;
use web_ui::model::colour;

use crate::bridge::{Controls, WORKERS_MAX};
use crate::view::MeshView;

/// This node: id, name, kind, room, signaling status and its workers.
#[component]
pub(crate) fn Me(view: MeshView, room: String, controls: Controls) -> impl IntoView {
    let field = move |f: fn(&PeerInfo) -> String| {
        move || view.me.get().map(|m| f(&m)).unwrap_or_else(|| "…".into())
    };
    let workers = controls.workers;
    let set_workers = move |v: String| {
        let Ok(n) = v.trim().parse::<u16>() else {
            return;
        };
        let n = n.min(WORKERS_MAX);
        workers.set(n);
        controls.pool.resize(usize::from(n));
        let _ = controls.to_node.unbounded_send(PageInput::Workers(n));
    };
    let pool_text = move || {
        let s = view.pool.get();
        let inline = if s.inline {
            "; workers failed, computing on the page"
        } else {
            ""
        };
        format!("{} busy, {} tasks computed{inline}", s.busy, s.computed)
    };
    view! {
        <section class="me" data-testid="me">
            <h2>"This node"</h2>
            <dl>
                <dt>"id"</dt><dd data-testid="me-id">{field(|m| m.id.0.clone())}</dd>
                <dt>"name"</dt><dd data-testid="me-name">
                    <span class="swatch" style=move || view.me.get().map(|m| format!("background: {}", colour(node_id(&m.id)))).unwrap_or_default()></span>
                    {field(|m| m.name.clone())}
                </dd>
                <dt>"kind"</dt><dd data-testid="me-kind">{field(|m| m.kind.as_str().to_string())}</dd>
                <dt>"room"</dt><dd data-testid="room">{room}</dd>
                <dt>"status"</dt><dd data-testid="status">{move || view.status.get()}</dd>
                <dt><label for="workers">"workers"</label></dt>
                <dd>
                    <input id="workers" data-testid="workers" type="number" min="0" max=WORKERS_MAX
                        prop:value=move || workers.get().to_string()
                        on:change=move |ev| set_workers(event_target_value(&ev))/>
                    " "<span data-testid="pool" class="dim">{pool_text}</span>
                </dd>
            </dl>
        </section>
    }
}
