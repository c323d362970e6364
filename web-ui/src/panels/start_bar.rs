//! The start bar: the first thing on the page, and a job in one click.

use leptos::prelude::*;
use node_core::driver::PageInput;
use node_core::node::node_id;
use web_ui::form::JobForm;
use web_ui::model::plural;

use crate::bridge::Controls;
use crate::view::MeshView;

/// The first thing on the page: what to do, and a way to start a job without scrolling.
#[component]
pub(crate) fn StartBar(view: MeshView, controls: Controls) -> impl IntoView {
    let error = RwSignal::new(String::new());
    let to_node = controls.to_node.clone();
    let start = move |_| {
        let Some(me) = view.me.get_untracked() else {
            error.set("not in a room yet: wait for the server's welcome".into());
            return;
        };
        let nonce = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        match JobForm::default().submit(node_id(&me.id), nonce) {
            Ok(cmd) => {
                error.set(String::new());
                let _ = to_node.unbounded_send(PageInput::Command(cmd));
            }
            Err(e) => error.set(e),
        }
    };
    let peers = move || {
        view.peers
            .with(|p| p.iter().filter(|r| r.state == "connected").count())
    };
    view! {
        <section class="start" data-testid="start">
            <p>
                {move || match peers() {
                    0 => "You are the only member so far: open this page in another tab (or on a phone, from the QR code) to add one. ".to_string(),
                    n => format!("This tab and {n} other {} form the mesh. ", plural(n as u32, "member", "members")),
                }}
                "Start a job and watch the members split it, copy the results and carry on when one leaves."
            </p>
            <div class="row">
                <button data-testid="start-job" disabled=move || view.me.with(Option::is_none) on:click=start>
                    "Draw a Mandelbrot picture"
                </button>
                <a href="#submit-title">"…or choose the kernel, size, r and q"</a>
            </div>
            <Show when=move || error.with(|e| !e.is_empty())>
                <p class="error" data-testid="start-error">{move || error.get()}</p>
            </Show>
        </section>
    }
}
