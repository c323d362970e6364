//! The job form: every field checked (`web_ui::form`) before anything is sent.

use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use node_core::driver::PageInput;
use node_core::node::node_id;
use web_ui::form::{JobForm, KERNELS};

use crate::bridge::Controls;
use crate::view::MeshView;

/// The job form: every field checked before anything is sent.
#[component]
pub(crate) fn SubmitForm(view: MeshView, controls: Controls) -> impl IntoView {
    let form = view.form;
    let error = RwSignal::new(String::new());
    let joined = move || view.me.with(Option::is_some);
    let to_node = controls.to_node.clone();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let Some(me) = view.me.get_untracked() else {
            error.set("not in a room yet: wait for the server's welcome".into());
            return;
        };
        let nonce = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        match form.get_untracked().submit(node_id(&me.id), nonce) {
            Ok(cmd) => {
                error.set(String::new());
                let _ = to_node.unbounded_send(PageInput::Command(cmd));
            }
            Err(e) => error.set(e),
        }
    };
    let field = move |label: &'static str,
                      testid: &'static str,
                      get: fn(&JobForm) -> String,
                      set: fn(&mut JobForm, String)| {
        view! {
            <label class="field">
                <span>{label}</span>
                <input data-testid=testid type="text" inputmode="numeric"
                    prop:value=move || form.with(get)
                    on:input=move |ev| form.update(|f| set(f, event_target_value(&ev)))/>
            </label>
        }
    };
    let kernel = move || form.with(|f| f.kernel.clone());
    view! {
        <section class="submit">
            <h2 id="submit-title">"Submit a job"</h2>
            <form data-testid="job-form" on:submit=submit>
                <label class="field">
                    <span>"kernel"</span>
                    <select data-testid="kernel"
                        on:change=move |ev| form.update(|f| f.kernel = event_target_value(&ev))>
                        {KERNELS.iter().map(|(value, label)| view! {
                            <option value=*value selected=move || kernel() == *value>{*label}</option>
                        }).collect_view()}
                    </select>
                </label>
                <Show when=move || kernel() == "mandelbrot" || kernel() == "julia">
                    {field("size (px)", "size", |f| f.size.clone(), |f, v| f.size = v)}
                    {field("iterations", "max-iter", |f| f.max_iter.clone(), |f, v| f.max_iter = v)}
                    {field("tiles per side", "tiles", |f| f.tiles.clone(), |f, v| f.tiles = v)}
                </Show>
                <Show when=move || kernel() == "julia">
                    {field("c (re, im)", "julia-c", |f| f.c.clone(), |f, v| f.c = v)}
                </Show>
                <Show when=move || kernel() == "primes">
                    {field("count up to", "n", |f| f.n.clone(), |f, v| f.n = v)}
                    {field("ranges", "ranges", |f| f.ranges.clone(), |f, v| f.ranges = v)}
                </Show>
                <Show when=move || kernel() == "pi">
                    {field("samples per task", "samples", |f| f.samples.clone(), |f, v| f.samples = v)}
                    {field("tasks", "tasks", |f| f.tasks.clone(), |f, v| f.tasks = v)}
                </Show>
                {field("r (copies)", "replicas", |f| f.replicas.clone(), |f, v| f.replicas = v)}
                {field("q (quorum)", "quorum", |f| f.quorum.clone(), |f, v| f.quorum = v)}
                {field("pacing (ms)", "pacing", |f| f.pacing_ms.clone(), |f, v| f.pacing_ms = v)}
                <button type="submit" data-testid="submit" disabled=move || !joined()>"Submit (s)"</button>
            </form>
            <p class="error" data-testid="job-error">{move || error.get()}</p>
        </section>
    }
}
