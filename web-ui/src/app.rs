//! The page: [`start`] mounts [`App`], which makes the view's signals, starts the worker
//! pool and the node (`bridge.rs`) and lays out the panels, each in a file of its own
//! (`panels/`, `graph.rs`, `console.rs`, `timemachine.rs`).

use std::collections::{BTreeMap, BTreeSet};

use futures_channel::mpsc::unbounded;
use leptos::prelude::*;
use node_core::signal::valid_room_name;

use crate::bridge::{Controls, default_workers, start_node};
use crate::console::{Console, ConsolePanel, Overlays, ServerAwayBanner};
use crate::graph::MeshGraph;
use crate::panels::{
    event_log::EventLog, guide::Guide, inspector::Inspector, jobs::Jobs, me::Me, numbers::Numbers,
    peers::Peers, start_bar::StartBar, submit_form::SubmitForm,
};
use crate::pool::{Pool, PoolStats};
use crate::timemachine::{ReplayBanner, TimeMachinePanel};
use crate::view::{LogFilter, MeshView, Overlay, RatesView, TimeMachine, query_param};

#[component]
fn App() -> impl IntoView {
    let view = MeshView {
        me: RwSignal::new(None),
        status: RwSignal::new("connecting to the signaling server…".into()),
        peers: RwSignal::new(Vec::new()),
        log: RwSignal::new(Vec::new()),
        jobs: RwSignal::new(Vec::new()),
        pool: RwSignal::new(PoolStats::default()),
        names: RwSignal::new(BTreeMap::new()),
        outlines: RwSignal::new(false),
        graph: RwSignal::new(Vec::new()),
        pulses: RwSignal::new(Vec::new()),
        selected: RwSignal::new(None),
        inspect: RwSignal::new(String::new()),
        cuts: RwSignal::new(BTreeSet::new()),
        paused: RwSignal::new(false),
        slow_ms: RwSignal::new(0),
        overlay: RwSignal::new(Overlay::None),
        blank: RwSignal::new(false),
        projector: RwSignal::new(query_param("layout").as_deref() == Some("projector")),
        column: RwSignal::new(query_param("layout").as_deref() == Some("column")),
        public_url: RwSignal::new(None),
        loopback_only: RwSignal::new(false),
        halted: RwSignal::new(None),
        server_away: RwSignal::new(None),
        form: RwSignal::new(web_ui::form::JobForm::default()),
        clock: RwSignal::new(0.0),
        log_filter: RwSignal::new(LogFilter::default()),
        tm: TimeMachine::new(),
        replay_graph: RwSignal::new(Vec::new()),
        replay_jobs: RwSignal::new(Vec::new()),
        replay_log: RwSignal::new(Vec::new()),
        rates: RwSignal::new(RatesView::default()),
    };
    let asked = query_param("room");
    let room = match asked {
        Some(r) if valid_room_name(&r) => r,
        Some(_) => {
            view.status.set(
                "that room name is not valid (letters, digits, '-', '_'); joined `demo`".into(),
            );
            "demo".to_string()
        }
        None => "demo".to_string(),
    };
    let (to_node, inputs) = unbounded();
    let workers = RwSignal::new(default_workers());
    let pool = Pool::new(
        usize::from(workers.get_untracked()),
        to_node.clone(),
        move |s| view.pool.set(s),
    );
    let console = Console {
        view,
        to_node: to_node.clone(),
        said: RwSignal::new(String::new()),
        room: room.clone(),
    };
    let controls = Controls {
        to_node,
        pool,
        workers,
    };
    start_node(view, room.clone(), controls.clone(), inputs);
    crate::console::listen_for_keys(console.clone());
    crate::console::fetch_public_url(view);
    let console_wanted = crate::view::console_wanted();
    let toggle = move |o: Overlay| {
        move |_| {
            view.overlay
                .update(|v| *v = if *v == o { Overlay::None } else { o })
        }
    };
    view! {
        <main class=move || {
                let side = if view.overlay.get() == Overlay::Qr { " side-open" } else { "" };
                // The stage keeps a place for the console only where it is shown.
                let presenter = view.me.with(|m| m.as_ref().is_some_and(|m| m.presenter));
                let console = if console_wanted || presenter { " console-on" } else { "" };
                // While a recorded moment is shown, the panels that stay live say so.
                let replay = if view.tm.at.with(Option::is_some) { " replaying" } else { "" };
                let column = if view.column.get() { " column" } else { "" };
                format!("app{}{side}{console}{replay}{column}", if view.projector.get() { " projector" } else { "" })
            } data-testid="app"
            data-layout=move || if view.projector.get() { "projector" } else { "standard" }>
            // The stage: what a talk shows, in one screen from 1280 px wide (the CSS
            // places it); narrower, its panels take their turn in the one column.
            <div class="stage-area" data-testid="stage">
            <header>
                <h1>"Meshwork"</h1>
                <p class="tagline">"This tab is a node in a WebRTC mesh of browsers and native processes. Submit a job: it splits into tasks that every member computes a share of."</p>
                <nav class="tools" aria-label="View">
                    <button data-testid="show-qr" on:click=toggle(Overlay::Qr)>"Join QR code (q)"</button>
                    <button data-testid="show-keys" on:click=toggle(Overlay::Keys)>"Keys (?)"</button>
                    <button data-testid="projector" aria-pressed=move || view.projector.get().to_string()
                        on:click=move |_| view.projector.update(|p| *p = !*p)>"Projector layout (p)"</button>
                    <button data-testid="column" aria-pressed=move || view.column.get().to_string()
                        on:click=move |_| view.column.update(|c| *c = !*c)>"One column (l)"</button>
                </nav>
            </header>
            // What the whole mesh is in (failed, paused, slowed, replayed): banners that
            // stay at the top of the window however far the page is scrolled.
            <div class="banners">
                <Show when=move || view.halted.with(Option::is_some)>
                    <p class="halted" role="alert" data-testid="halted">{move || view.halted.get().unwrap_or_default()}</p>
                </Show>
                <ServerAwayBanner view room=room.clone()/>
                <Show when=move || { view.paused.get() || view.slow_ms.get() > 0 }>
                    <p class="paused" data-testid="mesh-mode">{move || {
                        // As the members announce it: all of them, or some.
                        let (paused, slowed, live) = view.graph.with(|g| {
                            let live: Vec<_> = g.iter().filter(|n| n.state == "live").collect();
                            (live.iter().filter(|n| n.paused).count(), live.iter().filter(|n| n.slow_ms > 0).count(), live.len())
                        });
                        match (view.paused.get(), view.slow_ms.get()) {
                            (true, _) if paused < live => format!("{paused} of {live} members are paused: they start no task (→ steps one task on each, space resumes them)."),
                            (true, _) => "The mesh is paused: no member starts a task (→ steps one task on each).".to_string(),
                            (false, ms) if slowed < live => format!("Slow motion on {slowed} of {live} members: each waits up to {ms} ms after each task."),
                            (false, ms) => format!("Slow motion: every member waits {ms} ms after each task."),
                        }
                    }}</p>
                </Show>
                <ReplayBanner view/>
            </div>
            <StartBar view controls=controls.clone()/>
            <MeshGraph view/>
            <ConsolePanel console/>
            <Inspector view/>
            <Jobs view to_node=controls.to_node.clone()/>
            <EventLog view/>
            </div>
            <Numbers view/>
            <TimeMachinePanel view room=room.clone()/>
            <Me view room=room.clone() controls=controls.clone()/>
            <SubmitForm view controls/>
            <Peers view/>
            <Guide/>
            <Overlays view room/>
        </main>
    }
}

/// Mounts the app on the page (or, with `?bench=tile` or `?bench=kernels`, a worker
/// benchmark).
pub fn start() {
    console_error_panic_hook::set_once();
    let bench = match query_param("bench").as_deref() {
        Some("tile") => Some(crate::bench::Which::Tile),
        Some("kernels") => Some(crate::bench::Which::Kernels),
        _ => None,
    };
    if let Some(which) = bench {
        leptos::mount::mount_to_body(move || {
            crate::bench::BenchPage(crate::bench::BenchPageProps { which })
        });
    } else {
        leptos::mount::mount_to_body(App);
    }
}
