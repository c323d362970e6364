//! The page's view state: the signals the node bridge writes and the components read
//! ([`MeshView`]; the rows they hold are the feed's: peers, log lines, jobs, rates), what is selected
//! and what lies over the page, and the time machine's state. It imports no component
//! and no part of the bridge, so every panel can depend on it without a loop.

use std::collections::{BTreeMap, BTreeSet};

use leptos::prelude::*;
use node_core::driver::web_now;
use node_core::job::NodeId;
use node_core::signal::PeerInfo;
use web_sys::HtmlCanvasElement;
use web_ui::model::GraphNode;
use web_ui::record::Recording;

use crate::pool::PoolStats;
pub(crate) use web_ui::feed::{
    JobView, LOG_KINDS, LOG_LEN_MAX, LogLine, PeerRow, Pulse, RatesView, Selection,
};

/// Where a tab keeps the presenter key for the rest of its session (a reload keeps the
/// console; the key leaves the address bar, which a projector shows).
const PRESENTER_KEY_STORAGE: &str = "meshwork-presenter-key";

/// What lies over the page.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Overlay {
    None,
    Qr,
    Keys,
}

/// Which log lines are shown.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LogFilter {
    /// Empty: every kind.
    pub(crate) event: String,
    pub(crate) node: Option<NodeId>,
    /// A task number, in any job.
    pub(crate) task: Option<u32>,
}

/// The page's view of the mesh, written by the node, read by components.
#[derive(Clone, Copy)]
pub(crate) struct MeshView {
    pub(crate) me: RwSignal<Option<PeerInfo>>,
    pub(crate) status: RwSignal<String>,
    pub(crate) peers: RwSignal<Vec<PeerRow>>,
    pub(crate) log: RwSignal<Vec<LogLine>>,
    pub(crate) jobs: RwSignal<Vec<JobView>>,
    pub(crate) pool: RwSignal<PoolStats>,
    /// Names of nodes by engine id, this one included.
    pub(crate) names: RwSignal<BTreeMap<NodeId, String>>,
    pub(crate) outlines: RwSignal<bool>,
    /// The graph's members and the pulses of the last sample.
    pub(crate) graph: RwSignal<Vec<GraphNode>>,
    pub(crate) pulses: RwSignal<Vec<Pulse>>,
    /// What the inspector explains, and its words.
    pub(crate) selected: RwSignal<Option<Selection>>,
    pub(crate) inspect: RwSignal<String>,
    /// Links between two other members this tab's console cut.
    pub(crate) cuts: RwSignal<BTreeSet<(String, String)>>,
    /// The console's mesh-wide state, as this tab set it.
    pub(crate) paused: RwSignal<bool>,
    pub(crate) slow_ms: RwSignal<u32>,
    pub(crate) overlay: RwSignal<Overlay>,
    pub(crate) blank: RwSignal<bool>,
    pub(crate) projector: RwSignal<bool>,
    /// One column at any width, instead of the stage from 1280 px wide.
    pub(crate) column: RwSignal<bool>,
    /// The server's address for an audience, if it gave one.
    pub(crate) public_url: RwSignal<Option<String>>,
    /// The server said it listens on loopback only: no other machine can join.
    pub(crate) loopback_only: RwSignal<bool>,
    /// Set when a presenter failed this node or made it leave: why it is silent.
    pub(crate) halted: RwSignal<Option<String>>,
    /// The signaling server is away: `Some(when it is back, on the page's clock)`, if
    /// the server said. And the page's clock, ticking each second while it is away.
    pub(crate) server_away: RwSignal<Option<Option<f64>>>,
    /// The job form's fields as typed (the scenarios use its kernel, size and pacing).
    pub(crate) form: RwSignal<web_ui::form::JobForm>,
    pub(crate) clock: RwSignal<f64>,
    pub(crate) log_filter: RwSignal<LogFilter>,
    /// The time machine, and what it shows while a recorded moment is on screen.
    pub(crate) tm: TimeMachine,
    pub(crate) replay_graph: RwSignal<Vec<GraphNode>>,
    pub(crate) replay_jobs: RwSignal<Vec<JobView>>,
    pub(crate) replay_log: RwSignal<Vec<LogLine>>,
    pub(crate) rates: RwSignal<RatesView>,
}

impl MeshView {
    /// Whether a recorded moment is shown instead of the live view.
    pub(crate) fn replaying(&self) -> bool {
        self.tm.at.with(Option::is_some) || self.tm.is_imported.get()
    }

    /// The graph on screen: live, or the recorded moment's.
    pub(crate) fn shown_graph<R>(&self, f: impl FnOnce(&Vec<GraphNode>) -> R) -> R {
        if self.replaying() {
            self.replay_graph.with(f)
        } else {
            self.graph.with(f)
        }
    }

    /// The jobs on screen: live, or the recorded moment's.
    pub(crate) fn shown_jobs<R>(&self, f: impl FnOnce(&Vec<JobView>) -> R) -> R {
        if self.replaying() {
            self.replay_jobs.with(f)
        } else {
            self.jobs.with(f)
        }
    }

    /// Appends a line the feed numbered, and records it for the time machine.
    pub(crate) fn push(&self, line: LogLine) {
        let t = ms_now() as u64;
        self.tm
            .live
            .update_value(|r| r.log_line(t, &line.event, &line.text));
        self.log.update(|log| {
            log.push(line);
            if log.len() > LOG_LEN_MAX {
                log.remove(0);
            }
        });
    }

    /// Adds to the end of a line already logged.
    pub(crate) fn log_append(&self, seq: u64, more: &str) {
        self.log.update(|log| {
            if let Some(l) = log.iter_mut().find(|l| l.seq == seq) {
                l.text += more;
            }
        });
    }

    /// Rewrites a line already logged (a departure followed as its work moves; the
    /// feed sends only changed words).
    pub(crate) fn relog(&self, seq: u64, text: String) {
        self.log.update(|log| {
            if let Some(l) = log.iter_mut().find(|l| l.seq == seq) {
                l.text = text;
            }
        });
    }
}

pub(crate) fn query_param(name: &str) -> Option<String> {
    let search = web_sys::window()?.location().search().ok()?;
    web_sys::UrlSearchParams::new_with_str(&search)
        .ok()?
        .get(name)
}

/// Whether this tab shows the console: it has the presenter key (kept in the tab's
/// session storage once read from the address), or asked with `?console`.
pub(crate) fn console_wanted() -> bool {
    presenter_key().is_some() || query_param("console").is_some()
}

/// The presenter key this tab was given: `?presenter=KEY`, kept in the tab's session
/// storage and taken out of the address bar (which a projector shows); or the one kept
/// before a reload.
pub(crate) fn presenter_key() -> Option<String> {
    let w = web_sys::window()?;
    let storage = w.session_storage().ok().flatten();
    if let Some(key) = query_param("presenter").filter(|k| !k.is_empty()) {
        if let Some(st) = &storage {
            let _ = st.set_item(PRESENTER_KEY_STORAGE, &key);
        }
        // The same address without the key.
        let loc = w.location();
        if let (Ok(path), Ok(search)) = (loc.pathname(), loc.search())
            && let Ok(params) = web_sys::UrlSearchParams::new_with_str(&search)
        {
            params.delete("presenter");
            let rest = String::from(params.to_string());
            let url = if rest.is_empty() {
                path
            } else {
                format!("{path}?{rest}")
            };
            if let Ok(history) = w.history() {
                let _ =
                    history.replace_state_with_url(&wasm_bindgen::JsValue::NULL, "", Some(&url));
            }
        }
        return Some(key);
    }
    storage?.get_item(PRESENTER_KEY_STORAGE).ok().flatten()
}

pub(crate) fn ms_now() -> f64 {
    web_now().as_ms_f64()
}

/// The time machine's state, shared by the shell and the components.
#[derive(Clone, Copy)]
pub struct TimeMachine {
    /// What this tab records of the live run.
    pub live: StoredValue<Recording>,
    /// A run read from a file, replayed instead of the live one.
    pub imported: StoredValue<Option<Recording>>,
    /// Frames in the run shown (for the slider), and whether it is imported.
    pub frames: RwSignal<usize>,
    pub is_imported: RwSignal<bool>,
    /// The frame shown; `None`: live.
    pub at: RwSignal<Option<usize>>,
    /// Per job: the picture tiles are copied from while scrubbing.
    pub(crate) sources: StoredValue<BTreeMap<u64, HtmlCanvasElement>, LocalStorage>,
    pub error: RwSignal<String>,
}

impl TimeMachine {
    pub fn new() -> TimeMachine {
        TimeMachine {
            live: StoredValue::new(Recording::new()),
            imported: StoredValue::new(None),
            frames: RwSignal::new(0),
            is_imported: RwSignal::new(false),
            at: RwSignal::new(None),
            sources: StoredValue::new_local(BTreeMap::new()),
            error: RwSignal::new(String::new()),
        }
    }

    /// Runs `f` on the recording shown: the imported one, else the live one.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&Recording) -> R) -> R {
        if self.is_imported.get_untracked() {
            self.imported
                .with_value(|i| f(i.as_ref().unwrap_or(&Recording::new())))
        } else {
            self.live.with_value(f)
        }
    }
}

/// The page's monotonic clock, in ms.
pub(crate) fn page_now() -> f64 {
    web_sys::window()
        .and_then(|w| w.performance())
        .map_or(0.0, |p| p.now())
}
