//! The event log: joins, departures and what became of their work, jobs, verdicts;
//! filtered by kind, member or task, each line linked to the inspector and the guide.

use leptos::prelude::*;
use node_core::job::NodeId;

use crate::view::{LOG_KINDS, LogFilter, LogLine, MeshView, Selection};

/// The log, newest first.
fn log_lines(view: MeshView) -> Vec<LogLine> {
    let f = view.log_filter.get();
    let source = if view.replaying() {
        view.replay_log
    } else {
        view.log
    };
    source.with(|log| {
        log.iter()
            .rev()
            .filter(|l| f.event.is_empty() || l.event == f.event)
            .filter(|l| f.node.is_none() || l.node == f.node)
            .filter(|l| {
                f.task
                    .is_none_or(|t| l.task.is_some_and(|(_, lt)| lt.0 == t))
            })
            .cloned()
            .collect()
    })
}

/// Joins, departures (and what became of their work), jobs, in plain words.
#[component]
pub(crate) fn EventLog(view: MeshView) -> impl IntoView {
    let nodes = move || {
        view.names.with(|m| {
            m.iter()
                .map(|(n, name)| view! { <option value=n.0.to_string()>{name.clone()}</option> })
                .collect_view()
        })
    };
    let set = move |f: fn(&mut LogFilter, String)| {
        move |ev: leptos::ev::Event| view.log_filter.update(|lf| f(lf, event_target_value(&ev)))
    };
    let inspect = move |l: &LogLine| {
        let sel = match (l.task, l.node) {
            (Some((j, t)), _) => Some(Selection::Task(j, t)),
            (None, Some(n)) => Some(Selection::Node(n)),
            _ => None,
        };
        move |_| {
            if sel.is_some() {
                view.selected.set(sel);
            }
        }
    };
    view! {
        <section class="log">
            <h2>"Events"</h2>
            <div class="row filters">
                <label class="field"><span>"kind"</span>
                    <select data-testid="log-kind" on:change=set(|f, v| f.event = v)>
                        {LOG_KINDS.iter().map(|(v, label)| view! { <option value=*v>{*label}</option> }).collect_view()}
                    </select>
                </label>
                <label class="field"><span>"node"</span>
                    <select data-testid="log-node" on:change=set(|f, v| f.node = v.parse().ok().map(NodeId))>
                        <option value="">"every node"</option>
                        {nodes}
                    </select>
                </label>
                <label class="field"><span>"task"</span>
                    <input data-testid="log-task" type="text" inputmode="numeric" placeholder="any"
                        on:input=set(|f, v| f.task = v.trim().parse().ok())/>
                </label>
            </div>
            <ol data-testid="event-log" reversed>
                // Keyed by line and text: a new or updated line re-renders alone.
                <For each=move || log_lines(view) key=|l| (l.seq, l.text.clone()) let:l>
                    <li data-testid="log-entry" data-event=l.event.clone() data-peer=l.peer.clone()
                        data-reason=l.reason.clone() data-ms=format!("{:.1}", l.ms) class=l.event.clone()
                        tabindex=if l.node.is_some() || l.task.is_some() { "0" } else { "-1" }
                        on:click=inspect(&l)>{l.text.clone()}
                        {web_ui::guide::topic_for(&l.event, &l.reason).map(|id| view! {
                            " "<a class="why" href=format!("#guide-{id}") data-testid="log-why"
                                on:click=move |_| open_topic(id)>"why?"</a>
                        })}
                    </li>
                </For>
            </ol>
        </section>
    }
}

/// Opens a topic of the guide (the link then scrolls to it).
fn open_topic(id: &str) {
    if let Some(el) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(&format!("guide-{id}")))
    {
        let _ = el.set_attribute("open", "");
    }
}
