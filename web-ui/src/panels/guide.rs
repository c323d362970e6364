//! The learner's guide: each mechanism in plain words (the text is `web_ui::guide`).

use leptos::prelude::*;

/// The learner's guide: each mechanism in plain words; events link to it.
#[component]
pub(crate) fn Guide() -> impl IntoView {
    view! {
        <section class="guide" aria-labelledby="guide-title">
            <h2 id="guide-title">"How it works"</h2>
            {web_ui::guide::TOPICS.iter().map(|t| view! {
                <details id=format!("guide-{}", t.id) data-testid="guide-topic">
                    <summary>{t.title}</summary>
                    {t.text.iter().map(|p| view! { <p>{*p}</p> }).collect_view()}
                </details>
            }).collect_view()}
        </section>
    }
}
