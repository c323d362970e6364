//! The peers panel: every member with its kind, connection state, path and round trip.

use leptos::prelude::*;

use crate::view::MeshView;

/// Every peer with its kind, connection state and round-trip time.
#[component]
pub(crate) fn Peers(view: MeshView) -> impl IntoView {
    let connected = move || {
        view.peers
            .with(|p| p.iter().filter(|r| r.state == "connected").count())
    };
    view! {
        <section class="peers">
            <h2>"Peers "<span class="count" data-testid="peer-count">{connected}</span></h2>
            <table data-testid="peer-list">
                <thead><tr><th>"name"</th><th>"kind"</th><th>"state"</th><th>"RTT"</th></tr></thead>
                <tbody>
                    {move || view.peers.get().into_iter().map(|p| {
                        let rtt = p.rtt_ms.map(|ms| format!("{ms:.1} ms")).unwrap_or_else(|| "–".into());
                        view! {
                            <tr data-testid="peer-row" data-peer-id=p.id.clone() data-kind=p.kind.clone() data-state=p.state.clone()
                                data-path=p.path.clone() class=format!("peer {} {}", p.kind, p.state)>
                                <td class="name" title=p.id.clone()><span class="swatch" style=format!("background: {}", p.colour)></span>{p.name.clone()}</td>
                                <td data-testid="peer-kind">{p.kind.clone()}</td>
                                <td data-testid="peer-state" title=if p.path.is_empty() { String::new() } else { format!("ICE path (local/remote candidate): {}", p.path) }>
                                    {p.state.clone()}
                                    <span class="path">{if p.path.is_empty() { String::new() } else { format!(" · {}", p.path) }}</span>
                                </td>
                                <td data-testid="peer-rtt">{rtt}</td>
                            </tr>
                        }
                    }).collect_view()}
                </tbody>
            </table>
            <Show when=move || view.peers.with(Vec::is_empty)>
                <p class="empty">"No other peers yet. Open this page in another tab, or run "<code>"meshwork node"</code>"."</p>
            </Show>
        </section>
    }
}
