//! The mesh as a graph: every member a shape (this tab a ringed circle, other tabs
//! circles, native nodes squares) in its own colour, an edge per data channel with its
//! round trip, pulses along edges as messages cross them, each member's load, and
//! departures that stay a few seconds with how they were noticed and how fast.
//!
//! The feed (`web_ui::feed`) works out the [`GraphNode`]s from the node's state;
//! [`MeshGraph`] draws them as SVG.

use leptos::prelude::*;
use node_core::job::NodeId;
use wasm_bindgen::JsCast;
use web_ui::layout::{CHAR_PX, edge_label, label_width, place};
pub use web_ui::model::GraphNode;
use web_ui::model::{palette, pattern, plural};

use crate::view::{MeshView, Selection};

/// Smallest graph height, in pixels.
const H_MIN: f64 = 260.0;
/// The graph is never drawn narrower or wider than this (pixels).
const W_MIN: f64 = 300.0;
const W_MAX: f64 = 1400.0;

/// A member's kind in words.
fn kind_words(kind: &str) -> &'static str {
    match kind {
        "me" => "this tab",
        "browser" => "browser tab",
        _ => "native node",
    }
}

fn label(n: &GraphNode) -> String {
    let mut s = format!("{} ({})", n.name, kind_words(&n.kind));
    if n.presenter {
        s += ", presenter";
    }
    match n.state.as_str() {
        "gone" if !n.note.is_empty() => s += &format!(", {}", n.note),
        "gone" => s += ", gone",
        "silent" => s += &format!(", {}; it may come back", n.note),
        "cut" => s += ", link cut",
        "connecting" => s += ", connecting",
        _ => {}
    }
    if n.background {
        s += ", in the background";
    }
    if n.paused {
        s += ", paused by the presenter (starts no new task)";
    }
    if n.slow_ms > 0 {
        s += &format!(", in slow motion (waits {} ms after each task)", n.slow_ms);
    }
    if n.told_to_lie {
        s += ", lying on the presenter's command";
    }
    if n.liar && n.kind != "me" {
        s += ", caught lying";
    }
    s + &format!(
        ": {} running, {} {} computed and accepted, {} held",
        n.load.running,
        n.load.done,
        plural(n.load.done, "result", "results"),
        n.load.held
    )
}

/// `text` cut to at most `chars` characters, with an ellipsis when cut (the whole text
/// is in the member's title and label for a screen reader).
fn fit(text: String, chars: usize) -> String {
    if text.chars().count() <= chars {
        return text;
    }
    let mut t: String = text.chars().take(chars.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// A member's two label lines, each fitting a graph `w` px wide: its name, then what it
/// does, or where it went.
fn lines(n: &GraphNode, w: f64) -> (String, String) {
    let chars = ((w - 16.0) / CHAR_PX).floor().max(8.0) as usize;
    let (a, b) = full_lines(n);
    (fit(a, chars), fit(b, chars))
}

fn full_lines(n: &GraphNode) -> (String, String) {
    let star = if n.presenter { "★ " } else { "" };
    let mut name = format!("{star}{}", n.name);
    if n.background {
        name += " (background)";
    }
    let under = match n.state.as_str() {
        "gone" | "silent" => n.note.clone(),
        "cut" => "link cut".to_string(),
        "connecting" => "connecting…".to_string(),
        _ => {
            let mut under = String::new();
            for (on, word) in [
                (n.paused, "paused"),
                (n.slow_ms > 0, "slow"),
                (n.told_to_lie, "lying"),
            ] {
                if on {
                    under += word;
                    under += " · ";
                }
            }
            under
                + &format!(
                    "{} running · {} {}",
                    n.load.running,
                    n.load.done,
                    plural(n.load.done, "result", "results")
                )
        }
    };
    (name, under)
}

/// The graph of the mesh, as SVG, one unit a CSS pixel so that its text is as large on
/// a phone as on a projector. Click (or Enter on) a member to inspect it.
#[component]
pub fn MeshGraph(view: MeshView) -> impl IntoView {
    // The drawing is as wide as the graph's box on the page (CSS gives the SVG the
    // whole width): one unit a pixel.
    let svg = NodeRef::<leptos::svg::Svg>::new();
    let width = RwSignal::new(640.0);
    let measure = move || {
        if let Some(el) = svg.get_untracked() {
            let w = f64::from(el.client_width());
            if w > 0.0 && (w.clamp(W_MIN, W_MAX) - width.get_untracked()).abs() >= 1.0 {
                width.set(w.clamp(W_MIN, W_MAX));
            }
        }
    };
    Effect::new(move |_| {
        if svg.get().is_some() {
            measure();
        }
    });
    let on_resize = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(measure);
    if let Some(w) = web_sys::window() {
        let _ = w.add_event_listener_with_callback("resize", on_resize.as_ref().unchecked_ref());
    }
    // Lives as long as the page.
    on_resize.forget();
    let layout = Memo::new(move |_| {
        let w = width.get();
        view.shown_graph(|g| {
            let widths: Vec<f64> = g
                .iter()
                .map(|n| {
                    let (a, b) = lines(n, w);
                    label_width(&[&a, &b])
                })
                .collect();
            let placed = place(w, H_MIN.max(w * 0.45).min(520.0), &widths);
            (g.clone(), placed)
        })
    });
    let at = move |peer: &str| {
        layout.with(|(g, l)| {
            g.iter()
                .position(|n| n.peer == peer)
                .and_then(|i| l.members.get(i))
                .map(|p| (p.x, p.y))
        })
    };
    let edges = move || {
        let (g, l) = layout.get();
        let (Some(me), Some(mp)) = (g.first(), l.members.first()) else {
            return Vec::new();
        };
        let (mx, my) = (mp.x, mp.y);
        let cuts = view.cuts.get();
        let mut lines_out = Vec::new();
        // Between other members: channels this tab cannot measure, drawn faint (or
        // cut, where this tab's presenter cut them).
        for i in 1..g.len() {
            for j in i + 1..g.len() {
                let (a, b) = (&g[i], &g[j]);
                if matches!(a.state.as_str(), "gone" | "silent")
                    || matches!(b.state.as_str(), "gone" | "silent")
                {
                    continue;
                }
                let (pa, pb) = (l.members[i], l.members[j]);
                let cut = cuts.contains(&(a.peer.clone(), b.peer.clone()))
                    || cuts.contains(&(b.peer.clone(), a.peer.clone()));
                lines_out.push(view! {
                    <line x1=pa.x y1=pa.y x2=pb.x y2=pb.y class=if cut { "edge cut" } else { "edge far" }
                        data-testid="edge" data-a=a.peer.clone() data-b=b.peer.clone() data-state=if cut { "cut" } else { "assumed" }/>
                }.into_any());
            }
        }
        let mut taken = Vec::new();
        for (p, pp) in g.iter().zip(&l.members).skip(1) {
            if p.state == "gone" {
                continue;
            }
            let text = match (p.state.as_str(), p.rtt_ms) {
                ("cut", _) => "✂ cut".to_string(),
                (_, Some(ms)) => format!("{ms:.1} ms"),
                _ => String::new(),
            };
            let rtt = edge_label(&l, (mx, my), (pp.x, pp.y), text.chars().count(), &taken)
                .filter(|_| !text.is_empty())
                .inspect(|r| taken.push(*r))
                .map(|r| view! {
                    <text x=r.x + r.w / 2.0 y=r.y + r.h - 3.0 class="rtt" data-testid="rtt-label">{text.clone()}</text>
                });
            lines_out.push(view! {
                <g>
                    <line x1=mx y1=my x2=pp.x y2=pp.y class=format!("edge mine {}", p.state)
                        data-testid="edge" data-a=me.peer.clone() data-b=p.peer.clone() data-state=p.state.clone()/>
                    {rtt}
                </g>
            }.into_any());
        }
        lines_out
    };
    let pulses = move || {
        let me = layout.with(|(_, l)| l.members.first().map(|p| (p.x, p.y)));
        view.pulses
            .get()
            .into_iter()
            .filter_map(|p| {
                let (mx, my) = me?;
                let (px, py) = at(&p.peer)?;
                let ((x1, y1), (x2, y2)) = if p.inbound {
                    ((px, py), (mx, my))
                } else {
                    ((mx, my), (px, py))
                };
                let style =
                    format!("--x1: {x1:.1}px; --y1: {y1:.1}px; --x2: {x2:.1}px; --y2: {y2:.1}px");
                Some((p.seq, style))
            })
            .collect::<Vec<_>>()
    };
    let select = move |n: NodeId| view.selected.set(Some(Selection::Node(n)));
    let nodes = move || {
        let (g, l) = layout.get();
        let graph_w = l.w;
        g.into_iter()
            .zip(l.members)
            .map(|(n, p)| {
                let (x, y) = (p.x, p.y);
                let c = palette(n.colour);
                let outlined = pattern(n.colour) > 0;
                let id = n.node;
                let shape_class = if outlined { "shape patterned" } else { "shape" };
                let shape = if n.kind == "native" {
                    view! { <rect x=x - 17.0 y=y - 17.0 width="34" height="34" rx="5" fill=c class=shape_class/> }.into_any()
                } else {
                    view! { <circle cx=x cy=y r="18" fill=c class=shape_class/> }.into_any()
                };
                let ring = (n.kind == "me").then(|| view! { <circle cx=x cy=y r="24" class="ring"/> });
                let liar = n.liar.then(|| view! {
                    <g class="liar-mark"><circle cx=x cy=y r="27" class="liar-ring"/>
                    <text x=x y=y + 5.0 class="badge">"✗"</text></g>
                });
                let (name, under) = lines(&n, graph_w);
                let (tx, y1, y2) = p.text_at();
                let aria = label(&n);
                let aria_label = aria.clone();
                let lb = p.label;
                // What its console state is, for tests: "paused slow lying" or a part.
                let console = [(n.paused, "paused"), (n.slow_ms > 0, "slow"), (n.told_to_lie, "lying")]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, w)| *w)
                    .collect::<Vec<_>>()
                    .join(" ");
                view! {
                    <g class=format!("member {} {}", n.kind, n.state) data-testid="graph-node"
                        data-peer-id=n.peer.clone() data-kind=n.kind data-state=n.state
                        data-liar=if n.liar { "true" } else { "false" }
                        data-background=if n.background { "true" } else { "false" } data-console=console
                        data-colour=n.colour.to_string() data-fill=c
                        data-running=n.load.running.to_string() data-done=n.load.done.to_string()
                        data-held=n.load.held.to_string()
                        tabindex="0" role="button" aria-label=aria_label
                        on:click=move |_| select(id)
                        on:keydown=move |ev| if ev.key() == "Enter" { select(id) }>
                        <title>{aria}</title>
                        {ring}{shape}{liar}
                        <g class="label" data-testid="graph-label" data-x=lb.x.to_string() data-y=lb.y.to_string()
                            data-w=lb.w.to_string() data-h=lb.h.to_string()>
                            <text x=tx y=y1 class="name">{name}</text>
                            <text x=tx y=y2 class="load">{under}</text>
                        </g>
                    </g>
                }
            })
            .collect::<Vec<_>>()
    };
    let size = move || layout.with(|(_, l)| (l.w, l.h));
    view! {
        <section class="graph">
            <h2>"The mesh"</h2>
            <svg node_ref=svg data-testid="mesh-graph" viewBox=move || { let (w, h) = size(); format!("0 0 {w:.0} {h:.0}") }
                width=move || format!("{:.0}", size().0) height=move || format!("{:.0}", size().1)
                role="group" aria-label="Every member of the mesh and the data channels between them">
                <g class="edges">{edges}</g>
                <g class="pulses">
                    <For each=pulses key=|(seq, _)| *seq let:p>
                        <circle r="4" class="pulse" style=p.1/>
                    </For>
                </g>
                <g class="nodes">{nodes}</g>
            </svg>
            <p class="legend dim" data-testid="graph-legend">"● this tab (ringed) and other tabs · ■ native nodes · ★ presenter · ✗ caught lying · dashed: gone, silent or cut. Click a member to see what it does."</p>
        </section>
    }
}
