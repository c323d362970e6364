//! The numbers panel: tasks per second in total and per member, and the speedup.

use leptos::prelude::*;

use crate::view::MeshView;

/// Tasks per second in total (a chart of the last minute) and per node, and the
/// speedup over one node.
#[component]
pub(crate) fn Numbers(view: MeshView) -> impl IntoView {
    let line = move || {
        view.rates.with(|r| {
            let max = r.series.iter().copied().fold(1.0, f64::max);
            let n = r.series.len().max(2) - 1;
            r.series
                .iter()
                .enumerate()
                .map(|(i, v)| {
                    format!(
                        "{:.1},{:.1}",
                        i as f64 * 240.0 / n as f64,
                        46.0 - v / max * 42.0
                    )
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
    };
    let fastest = move || {
        view.rates
            .with(|r| r.per.iter().map(|p| p.2).fold(0.0, f64::max).max(0.001))
    };
    view! {
        <section class="numbers" aria-labelledby="numbers-title">
            <h2 id="numbers-title">"Numbers"</h2>
            <p data-testid="rate-total" data-validated-per-s=move || view.rates.with(|r| format!("{:.2}", r.total))
                data-results-per-s=move || view.rates.with(|r| format!("{:.2}", r.results))>
                {move || view.rates.with(|r| format!(
                "Over the last 5 s: {:.1} tasks validated per second, from {:.1} results per second (a task needs q matching results, and a backup or a steal may compute one again){}",
                r.total, r.results,
                r.speedup.map(|s| format!(". The members together compute {s:.1}× as many results per second as the fastest of them alone")).unwrap_or_default()))}</p>
            <svg class="spark" viewBox="0 0 240 48" role="img" aria-label="Tasks validated per second over the last minute">
                <polyline points=line fill="none" stroke="#7fd962" stroke-width="2"/>
            </svg>
            <ul class="rates" data-testid="rates">
                {move || view.rates.get().per.into_iter().map(|(name, c, r)| {
                    let width = format!("width: {:.0}%; background: {c}", r / fastest() * 100.0);
                    view! { <li data-testid="rate-member" data-per-s=format!("{r:.2}")><span class="bar" style=width></span>{format!("{name}: {r:.1} results/s")}</li> }
                }).collect_view()}
            </ul>
        </section>
    }
}
