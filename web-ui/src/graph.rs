//! The mesh as a graph: every member a shape (this tab a ringed circle, other tabs
//! circles, native nodes squares) in its own colour, an edge per data channel with its
//! round trip, pulses along edges as messages cross them, each member's load, and
//! departures that stay a few seconds with how they were noticed and how fast.
//!
//! [`build`] turns the node's state into [`GraphNode`]s (called by the shell after a
//! step, at most every [`GRAPH_MS`]); [`MeshGraph`] draws them as SVG.

use std::collections::BTreeMap;

use leptos::prelude::*;
use node_core::job::NodeId;
use node_core::membership::PeerState;
use node_core::node::{MeshNode, node_id};
use web_ui::inspect::Load;
pub use web_ui::model::GraphNode;
use web_ui::model::colour;

use crate::app::{MeshView, Selection};

/// The graph is rebuilt at most this often (ms): pulses are sampled at this rate.
pub const GRAPH_MS: f64 = 150.0;
/// A departed member stays on the graph this long (ms).
pub const GONE_SHOWN_MS: f64 = 6_000.0;

const W: f64 = 640.0;
const H: f64 = 380.0;

/// A message crossing an edge, drawn once as a dot moving along it.
#[derive(Clone, Debug, PartialEq)]
pub struct Pulse {
    pub seq: u64,
    pub peer: String,
    /// From the peer to this node.
    pub inbound: bool,
}

/// A member that left, kept on the graph for a while.
#[derive(Clone, Debug)]
pub struct Gone {
    pub node: GraphNode,
    pub until: f64,
}

/// Message counters per peer at the last sample, to tell when messages crossed.
#[derive(Default)]
pub struct Sampler {
    counts: BTreeMap<String, (u64, u64)>,
    seq: u64,
}

impl Sampler {
    /// One pulse per direction per edge that carried messages since the last sample.
    pub fn pulses(&mut self, node: &MeshNode) -> Vec<Pulse> {
        let Some(m) = node.membership() else {
            return Vec::new();
        };
        let mut out = Vec::new();
        let mut next = BTreeMap::new();
        for p in m.connected() {
            let now = (p.messages_in, node.messages_to(&p.info.id));
            let before = self.counts.get(&p.info.id.0).copied().unwrap_or(now);
            for (inbound, moved) in [(true, now.0 > before.0), (false, now.1 > before.1)] {
                if moved && !p.cut {
                    self.seq += 1;
                    out.push(Pulse {
                        seq: self.seq,
                        peer: p.info.id.0.clone(),
                        inbound,
                    });
                }
            }
            next.insert(p.info.id.0.clone(), now);
        }
        self.counts = next;
        out
    }
}

/// The graph's members: this node first, then its peers by id, then recent departures.
pub fn build(
    node: &MeshNode,
    loads: &BTreeMap<NodeId, Load>,
    liars: &[NodeId],
    gone: &[Gone],
) -> Vec<GraphNode> {
    let Some(m) = node.membership() else {
        return Vec::new();
    };
    let me = m.me();
    let mut out = vec![GraphNode {
        peer: me.id.0.clone(),
        node: node_id(&me.id),
        name: me.name.clone(),
        kind: "me",
        state: if node.is_failed() { "gone" } else { "live" },
        presenter: me.presenter,
        rtt_ms: None,
        load: loads.get(&node_id(&me.id)).copied().unwrap_or_default(),
        liar: node.is_lying(),
        note: String::new(),
    }];
    for p in m.peers() {
        let n = node_id(&p.info.id);
        out.push(GraphNode {
            peer: p.info.id.0.clone(),
            node: n,
            name: p.info.name.clone(),
            kind: p.info.kind.as_str(),
            state: match (p.cut, p.state) {
                (true, _) => "cut",
                (false, PeerState::Connected) => "live",
                _ => "connecting",
            },
            presenter: p.info.presenter,
            rtt_ms: p
                .rtt_ms
                .filter(|_| p.state == PeerState::Connected && !p.cut)
                .map(|ms| (ms * 10.0).round() / 10.0),
            load: loads.get(&n).copied().unwrap_or_default(),
            liar: liars.contains(&n),
            note: String::new(),
        });
    }
    for g in gone {
        if !out.iter().any(|n| n.peer == g.node.peer) {
            out.push(g.node.clone());
        }
    }
    out
}

/// Where member `i` of `n` sits: this node at the top, the rest around an ellipse.
fn position(i: usize, n: usize) -> (f64, f64) {
    let angle = -std::f64::consts::FRAC_PI_2 + std::f64::consts::TAU * i as f64 / n.max(1) as f64;
    let (rx, ry) = (W / 2.0 - 90.0, H / 2.0 - 60.0);
    (W / 2.0 + rx * angle.cos(), H / 2.0 + 8.0 + ry * angle.sin())
}

fn label(n: &GraphNode) -> String {
    let kind = match n.kind {
        "me" => "this tab",
        "browser" => "browser tab",
        _ => "native node",
    };
    let mut s = format!("{} ({kind})", n.name);
    if n.presenter {
        s += ", presenter";
    }
    match n.state {
        "gone" if !n.note.is_empty() => s += &format!(", {}", n.note),
        "gone" => s += ", gone",
        "cut" => s += ", link cut",
        "connecting" => s += ", connecting",
        _ => {}
    }
    if n.liar {
        s += ", caught lying";
    }
    s + &format!(
        ": {} running, {} done, {} held",
        n.load.running, n.load.done, n.load.held
    )
}

/// The graph of the mesh, as SVG. Click (or Enter on) a member to inspect it.
#[component]
pub fn MeshGraph(view: MeshView) -> impl IntoView {
    let layout = Memo::new(move |_| {
        view.shown_graph(|g| {
            let n = g.len();
            g.iter()
                .enumerate()
                .map(|(i, node)| (node.clone(), position(i, n)))
                .collect::<Vec<_>>()
        })
    });
    let at =
        move |peer: &str| layout.with(|l| l.iter().find(|(n, _)| n.peer == peer).map(|(_, p)| *p));
    let edges = move || {
        let l = layout.get();
        let Some(((me, (mx, my)), rest)) = l.split_first() else {
            return Vec::new();
        };
        let cuts = view.cuts.get();
        let mut lines = Vec::new();
        // Between other members: channels this tab cannot measure, drawn faint (or
        // cut, where this tab's presenter cut them).
        for (i, (a, (ax, ay))) in rest.iter().enumerate() {
            for (b, (bx, by)) in &rest[i + 1..] {
                if a.state == "gone" || b.state == "gone" {
                    continue;
                }
                let cut = cuts.contains(&(a.peer.clone(), b.peer.clone()))
                    || cuts.contains(&(b.peer.clone(), a.peer.clone()));
                lines.push(view! {
                    <line x1=*ax y1=*ay x2=*bx y2=*by class=if cut { "edge cut" } else { "edge far" }
                        data-testid="edge" data-a=a.peer.clone() data-b=b.peer.clone() data-state=if cut { "cut" } else { "assumed" }/>
                }.into_any());
            }
        }
        for (p, (px, py)) in rest {
            if p.state == "gone" {
                continue;
            }
            let rtt = p.rtt_ms.map(|ms| format!("{ms:.1} ms")).unwrap_or_default();
            let (tx, ty) = ((mx + px) / 2.0, (my + py) / 2.0 - 4.0);
            let text = if p.state == "cut" {
                "✂ cut".to_string()
            } else {
                rtt
            };
            lines.push(view! {
                <g>
                    <line x1=*mx y1=*my x2=*px y2=*py class=format!("edge mine {}", p.state)
                        data-testid="edge" data-a=me.peer.clone() data-b=p.peer.clone() data-state=p.state/>
                    <text x=tx y=ty class="rtt">{text}</text>
                </g>
            }.into_any());
        }
        lines
    };
    let pulses = move || {
        let me = layout.with(|l| l.first().map(|(_, p)| *p));
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
        layout
            .get()
            .into_iter()
            .map(|(n, (x, y))| {
                let c = colour(n.node);
                let id = n.node;
                let shape = if n.kind == "native" {
                    view! { <rect x=x - 17.0 y=y - 17.0 width="34" height="34" rx="5" fill=c.clone() class="shape"/> }.into_any()
                } else {
                    view! { <circle cx=x cy=y r="18" fill=c.clone() class="shape"/> }.into_any()
                };
                let ring = (n.kind == "me").then(|| view! { <circle cx=x cy=y r="24" class="ring"/> });
                let liar = n.liar.then(|| view! {
                    <g class="liar-mark"><circle cx=x cy=y r="27" class="liar-ring"/>
                    <text x=x y=y + 5.0 class="badge">"✗"</text></g>
                });
                let star = if n.presenter { "★ " } else { "" };
                let under = match n.state {
                    "gone" => n.note.clone(),
                    "cut" => "link cut".to_string(),
                    _ => format!("{} running · {} done", n.load.running, n.load.done),
                };
                let aria = label(&n);
                let aria_label = aria.clone();
                view! {
                    <g class=format!("member {} {}", n.kind, n.state) data-testid="graph-node"
                        data-peer-id=n.peer.clone() data-kind=n.kind data-state=n.state
                        data-liar=if n.liar { "true" } else { "false" }
                        data-running=n.load.running.to_string() data-done=n.load.done.to_string()
                        tabindex="0" role="button" aria-label=aria_label
                        on:click=move |_| select(id)
                        on:keydown=move |ev| if ev.key() == "Enter" { select(id) }>
                        <title>{aria}</title>
                        {ring}{shape}{liar}
                        <text x=x y=y + 40.0 class="name">{format!("{star}{}", n.name)}</text>
                        <text x=x y=y + 54.0 class="load">{under}</text>
                    </g>
                }
            })
            .collect::<Vec<_>>()
    };
    view! {
        <section class="graph">
            <h2>"The mesh"</h2>
            <svg data-testid="mesh-graph" viewBox=format!("0 0 {W} {H}") role="group"
                aria-label="Every member of the mesh and the data channels between them">
                <g class="edges">{edges}</g>
                <g class="pulses">
                    <For each=pulses key=|(seq, _)| *seq let:p>
                        <circle r="4" class="pulse" style=p.1/>
                    </For>
                </g>
                <g class="nodes">{nodes}</g>
            </svg>
            <p class="legend dim">"● this tab (ringed) and other tabs · ■ native nodes · ★ presenter · ✗ caught lying · dashed: gone or cut. Click a member to see what it does."</p>
        </section>
    }
}
