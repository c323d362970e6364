//! The inspector ("Why?"): the words the bridge worked out for the selection.

use leptos::prelude::*;

use crate::view::MeshView;

/// "Why?": what the selected member or task is doing, in plain words.
#[component]
pub(crate) fn Inspector(view: MeshView) -> impl IntoView {
    view! {
        <section class="inspector" aria-live="polite">
            <h2>"Why?"</h2>
            <p data-testid="inspector">{move || {
                let w = view.inspect.get();
                if w.is_empty() { "Click a member of the graph, a task square or a tile of the picture, or an event, to see what it is doing and why.".to_string() } else { w }
            }}</p>
        </section>
    }
}
