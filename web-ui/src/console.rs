//! The presenter's console, its scenarios and keys, and what lies over the page: the
//! join QR code, the list of keys and the blank screen.
//!
//! Commands go to members over the data channels ([`PageInput::Console`]); a member
//! obeys them only if the signaling server marked this tab a presenter (it joined with
//! the key `meshwork serve` printed). A tab without the key may still open the console
//! with `?console`: its commands are sent, and ignored, which is how one sees that the
//! key matters.

use futures_channel::mpsc::UnboundedSender;
use leptos::prelude::*;
use node_core::driver::PageInput;
use node_core::node::node_id;
use node_core::signal::PeerId;
use node_core::wire::ConsoleCmd;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_ui::form::JobForm;
use web_ui::keys::{self, KEYS, KeyAction};
use web_ui::qr;

use crate::view::{MeshView, Overlay, console_wanted, presenter_key};
use web_ui::feed::Selection;

/// Slow motion's pause after each task (ms), on every member.
pub const SLOW_MS: u32 = 600;
/// How long the "server goes away" scenario keeps the server from the room (s).
pub const SERVER_AWAY_SECS: u32 = 60;

/// Sends console commands for the page.
#[derive(Clone)]
pub struct Console {
    pub view: MeshView,
    pub to_node: UnboundedSender<PageInput>,
    /// What the console last did, in words (under its buttons).
    pub said: RwSignal<String>,
    /// The room this tab is in.
    pub room: String,
}

impl Console {
    /// One command to one member (or this node).
    pub fn send(&self, target: &str, cmd: ConsoleCmd) {
        let target = PeerId(target.to_string());
        let _ = self
            .to_node
            .unbounded_send(PageInput::Console { target, cmd });
    }

    /// One command to one member, and what was done, in words.
    fn send_saying(&self, target: &str, cmd: ConsoleCmd) -> String {
        let said = format!("sent to {}: {cmd}", self.name(target));
        self.send(target, cmd);
        said
    }

    /// Members the console can act on now: this node and every live peer.
    fn live(&self) -> Vec<String> {
        self.view.graph.with_untracked(|g| {
            g.iter()
                .filter(|n| n.state == "live")
                .map(|n| n.peer.clone())
                .collect()
        })
    }

    /// One command to every live member, this node included.
    pub fn everyone(&self, cmd: ConsoleCmd) {
        for p in self.live() {
            self.send(&p, cmd.clone());
        }
    }

    pub fn pause(&self, on: bool) {
        self.view.paused.set(on);
        self.everyone(ConsoleCmd::Pause { on });
    }

    pub fn slow_motion(&self, ms: u32) {
        self.view.slow_ms.set(ms);
        self.everyone(ConsoleCmd::Pacing { ms });
    }

    /// Cuts (or restores) the link between two members: each end is told about the other.
    pub fn cut(&self, a: &str, b: &str, cut: bool) {
        if a == b {
            return;
        }
        let (pa, pb) = (PeerId(a.into()), PeerId(b.into()));
        if cut {
            self.send(a, ConsoleCmd::Cut { peer: pb });
            self.send(b, ConsoleCmd::Cut { peer: pa });
        } else {
            self.send(a, ConsoleCmd::Restore { peer: pb });
            self.send(b, ConsoleCmd::Restore { peer: pa });
        }
        self.view.cuts.update(|c| {
            let key = (a.to_string(), b.to_string());
            let rev = (b.to_string(), a.to_string());
            if cut {
                c.insert(key);
            } else {
                c.remove(&key);
                c.remove(&rev);
            }
        });
    }

    /// Scenario: half of the other members fail at once.
    pub fn lose_half(&self) -> String {
        let me = self.view.me.get_untracked().map(|m| m.id.0);
        let others: Vec<String> = self
            .live()
            .into_iter()
            .filter(|p| Some(p) != me.as_ref())
            .collect();
        let half = others.len().div_ceil(2);
        if half == 0 {
            return "lose half the mesh: there is no other member".into();
        }
        let names: Vec<String> = others[..half].iter().map(|p| self.name(p)).collect();
        for p in &others[..half] {
            self.send(p, ConsoleCmd::Fail);
        }
        format!(
            "scenario: {} of {} other members fail: {}",
            half,
            others.len(),
            names.join(", ")
        )
    }

    /// Scenario: the signaling server goes away from the room for a minute; the mesh
    /// carries on over its data channels.
    pub fn server_away(&self) -> String {
        let _ = self.to_node.unbounded_send(PageInput::ServerAway {
            secs: SERVER_AWAY_SECS,
        });
        format!(
            "scenario: the signaling server leaves this room for {SERVER_AWAY_SECS} s; every member's socket to it closes, the mesh carries on over its data channels (nobody can join meanwhile)"
        )
    }

    /// Scenario: a member starts lying and a job with `q = 2` shows the quorum catching it:
    /// the form's job (its kernel, size and pacing, for a pace one can narrate) with
    /// `r = q = 2`. It starts nothing, and says what is missing, unless the mesh can show
    /// it ([`web_ui::form::liar_scenario_check`]).
    pub fn liar(&self) -> String {
        let (live, lying, caught) = self.view.graph.with_untracked(|g| {
            let live: Vec<_> = g.iter().filter(|n| n.state == "live").collect();
            let lying = live.iter().filter(|n| n.told_to_lie).count();
            let caught = live.iter().filter(|n| n.liar && !n.told_to_lie).count();
            (live.len(), lying, caught)
        });
        if let Err(why) = web_ui::form::liar_scenario_check(live, lying, caught) {
            return why;
        }
        let me = self.view.me.get_untracked().map(|m| m.id.0);
        let candidates = self.view.graph.with_untracked(|g| {
            let mut v: Vec<(bool, String)> = g
                .iter()
                .filter(|n| n.state == "live" && Some(&n.peer) != me.as_ref() && !n.liar)
                .map(|n| (n.kind != "native", n.peer.clone()))
                .collect();
            // Native nodes first: they compute the most.
            v.sort();
            v
        });
        let Some((_, liar)) = candidates.first() else {
            return "a liar joins: there is no other member to make lie".into();
        };
        let Some(me_info) = self.view.me.get_untracked() else {
            return "not in a room yet".into();
        };
        let form = JobForm {
            replicas: "2".into(),
            quorum: "2".into(),
            ..self.view.form.get_untracked()
        };
        let nonce = (js_sys::Math::random() * 9_007_199_254_740_991.0) as u64;
        // The form first: nobody lies for a job that does not start.
        let cmd = match form.submit(node_id(&me_info.id), nonce) {
            Ok(cmd) => cmd,
            Err(e) => {
                return format!("the liar scenario starts nothing: the form's job is refused: {e}");
            }
        };
        self.send(liar, ConsoleCmd::Lie { on: true });
        let _ = self.to_node.unbounded_send(PageInput::Command(cmd));
        format!(
            "scenario: {} now lies; the form's job, with r = 2 and q = 2, needs two matching results for every task",
            self.name(liar)
        )
    }

    /// Resets the demo from whatever state a rehearsal left: every live member resumes,
    /// stops lying and leaves slow motion; every cut link (as the members announce
    /// them, and as this console cut them) is restored; and the server tells every
    /// member to revive, which brings back those a presenter failed.
    pub fn reset(&self) -> String {
        self.pause(false);
        self.slow_motion(0);
        self.everyone(ConsoleCmd::Lie { on: false });
        self.everyone(ConsoleCmd::Forgive);
        let mut cuts: Vec<(String, String)> = self.view.graph.with_untracked(|g| {
            g.iter()
                .filter(|n| n.state == "live")
                .flat_map(|n| n.cut.iter().map(|c| (n.peer.clone(), c.clone())))
                .collect()
        });
        cuts.extend(self.view.cuts.get_untracked());
        cuts.sort();
        cuts.dedup();
        let links = cuts.len();
        for (a, b) in cuts {
            self.send(&a, ConsoleCmd::Restore { peer: PeerId(b) });
        }
        self.view.cuts.set(Default::default());
        let _ = self.to_node.unbounded_send(PageInput::ReviveRoom);
        let revive = if self.view.server_away.with_untracked(Option::is_some) {
            "the signaling server is away, so failed members cannot be asked back until it returns (press r again then)"
        } else {
            "failed members are asked back through the server"
        };
        format!(
            "reset: every member resumes, stops lying, forgets who it caught lying and leaves slow motion; {links} cut {} restored; {revive}",
            if links == 1 { "link" } else { "links" }
        )
    }

    /// Fails the member selected on the graph (a click on it).
    pub fn fail_selected(&self) -> String {
        let selected = match self.view.selected.get_untracked() {
            Some(Selection::Node(n)) => n,
            _ => return "select a member on the graph first (click it), then press f".into(),
        };
        let me = self.view.me.get_untracked().map(|m| m.id.0);
        let peer = self.view.graph.with_untracked(|g| {
            g.iter()
                .find(|n| n.node == selected && n.state == "live")
                .map(|n| n.peer.clone())
        });
        if peer.is_some() && peer == me {
            // A key must not silence the presenter's own screen.
            return "that is this tab: select another member on the graph".into();
        }
        match peer {
            Some(p) => self.send_saying(&p, ConsoleCmd::Fail),
            None => "the member selected is not live: nothing to fail".into(),
        }
    }

    fn name(&self, peer: &str) -> String {
        self.view.graph.with_untracked(|g| {
            g.iter()
                .find(|n| n.peer == peer)
                .map_or_else(|| peer.to_string(), |n| n.name.clone())
        })
    }

    /// Carries out a key's action.
    pub fn key(&self, a: KeyAction) {
        let view = self.view;
        let presenter = view
            .me
            .with_untracked(|m| m.as_ref().is_some_and(|m| m.presenter));
        if keys::needs_presenter(a) && !presenter {
            return;
        }
        match a {
            KeyAction::Pause => self.pause(!view.paused.get_untracked()),
            KeyAction::Step => {
                if !view.paused.get_untracked() {
                    self.pause(true);
                }
                self.everyone(ConsoleCmd::Step);
            }
            KeyAction::SlowMotion => {
                let on = view.slow_ms.get_untracked() == 0;
                self.slow_motion(if on { SLOW_MS } else { 0 });
            }
            KeyAction::Submit => submit_the_form(),
            KeyAction::LoseHalf => self.said.set(self.lose_half()),
            KeyAction::Liar => self.said.set(self.liar()),
            KeyAction::ServerAway if view.server_away.with_untracked(Option::is_some) => {
                ask_server_back(self.said, self.room.clone())
            }
            KeyAction::ServerAway => self.said.set(self.server_away()),
            KeyAction::Export => crate::timemachine::export(view, &self.room),
            KeyAction::FailSelected => self.said.set(self.fail_selected()),
            KeyAction::Reset => self.said.set(self.reset()),
            KeyAction::Back => {
                let tm = view.tm;
                let last = tm.frames.get_untracked().checked_sub(1);
                let at = tm.at.get_untracked().or(last);
                if let Some(i) = at {
                    crate::timemachine::show(view, i.saturating_sub(1));
                }
            }
            KeyAction::Forward => {
                let tm = view.tm;
                match tm.at.get_untracked() {
                    Some(i) if i + 1 < tm.frames.get_untracked() => {
                        crate::timemachine::show(view, i + 1)
                    }
                    Some(_) => crate::timemachine::go_live(view),
                    None => {}
                }
            }
            KeyAction::Blank => view.blank.update(|b| *b = !*b),
            KeyAction::Qr => view.overlay.update(|o| {
                *o = if *o == Overlay::Qr {
                    Overlay::None
                } else {
                    Overlay::Qr
                }
            }),
            KeyAction::Help => view.overlay.update(|o| {
                *o = if *o == Overlay::Keys {
                    Overlay::None
                } else {
                    Overlay::Keys
                }
            }),
            KeyAction::Projector => view.projector.update(|p| *p = !*p),
            KeyAction::Column => view.column.update(|c| *c = !*c),
            KeyAction::Close => {
                view.overlay.set(Overlay::None);
                view.blank.set(false);
            }
        }
    }
}

/// Listens for the keys on the whole page, except while typing in a field. On a focused
/// button every key but Enter is the page's: space pauses the mesh, it never presses
/// the button that was clicked last.
pub fn listen_for_keys(console: Console) {
    let Some(w) = web_sys::window() else { return };
    let on_key =
        Closure::<dyn FnMut(web_sys::KeyboardEvent)>::new(move |ev: web_sys::KeyboardEvent| {
            if ev.ctrl_key() || ev.meta_key() || ev.alt_key() {
                return;
            }
            let tag = ev
                .target()
                .and_then(|t| t.dyn_into::<web_sys::Element>().ok())
                .map(|e| (e.tag_name().to_ascii_lowercase(), e.get_attribute("role")))
                .unwrap_or_default();
            if matches!(tag.0.as_str(), "input" | "select" | "textarea") {
                return;
            }
            let Some(a) = keys::action(&ev.key()) else {
                return;
            };
            // Enter is no key of the page's ([`keys::action`]): it still presses the
            // focused button. Every other key is taken out of the button's reach, so
            // that neither it nor its release presses it.
            if (tag.0 == "button" || tag.1.as_deref() == Some("button"))
                && let Some(control) = ev
                    .target()
                    .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
            {
                let _ = control.blur();
            }
            ev.prevent_default();
            console.key(a);
        });
    let _ = w.add_event_listener_with_callback("keydown", on_key.as_ref().unchecked_ref());
    // Lives as long as the page.
    on_key.forget();
}

/// Asks the server where an audience reaches it (for the QR code).
pub fn fetch_public_url(view: MeshView) {
    wasm_bindgen_futures::spawn_local(async move {
        let Some(w) = web_sys::window() else { return };
        let Ok(resp) = wasm_bindgen_futures::JsFuture::from(w.fetch_with_str("/api/info")).await
        else {
            return;
        };
        let Ok(resp) = resp.dyn_into::<web_sys::Response>() else {
            return;
        };
        let Ok(text) = resp.text() else { return };
        let Ok(text) = wasm_bindgen_futures::JsFuture::from(text).await else {
            return;
        };
        let text = text.as_string().unwrap_or_default();
        // {"public_url":"http://…","loopback_only":false} or {"public_url":null,…}
        view.loopback_only
            .set(text.contains("\"loopback_only\":true"));
        let url = text
            .split("\"public_url\":\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .filter(|u| u.starts_with("http://") || u.starts_with("https://"))
            .map(str::to_string);
        view.public_url.set(url);
    });
}

/// Submits the job form as its Submit button does: its values, its checks, its errors.
fn submit_the_form() {
    let form = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.query_selector("[data-testid=job-form]").ok().flatten())
        .and_then(|f| f.dyn_into::<web_sys::HtmlFormElement>().ok());
    if let Some(form) = form {
        let _ = form.request_submit();
    }
}

fn blur(ev: &web_sys::MouseEvent) {
    // A click leaves focus on the button, where a remote's space would press it again.
    if let Some(el) = ev
        .current_target()
        .and_then(|t| t.dyn_into::<web_sys::HtmlElement>().ok())
    {
        let _ = el.blur();
    }
}

/// The console: commands for one member, for a link, for everyone, and scenarios.
#[component]
pub fn ConsolePanel(console: Console) -> impl IntoView {
    let view = console.view;
    let presenter = move || view.me.with(|m| m.as_ref().is_some_and(|m| m.presenter));
    let wanted = console_wanted();
    let target = RwSignal::new(String::new());
    let other = RwSignal::new(String::new());
    let said = console.said;
    // The other members first and this tab last, so that the first choice never fails
    // the presenter's own screen; worked out again only when the members change, so that
    // the menus keep what was picked.
    let member_list = Memo::new(move |_| {
        view.graph.with(|g| {
            let mut m: Vec<(bool, String, String)> = g
                .iter()
                .filter(|n| n.state != "gone")
                .map(|n| {
                    let mine = n.kind == "me";
                    let name = format!("{}{}", n.name, if mine { " (this tab)" } else { "" });
                    (mine, n.peer.clone(), name)
                })
                .collect();
            m.sort_by_key(|(mine, _, _)| *mine);
            m.into_iter().map(|(_, p, n)| (p, n)).collect::<Vec<_>>()
        })
    });
    let members = move || member_list.get();
    let pick = move |s: RwSignal<String>| {
        let v = s.get_untracked();
        if v.is_empty() {
            members()
                .first()
                .map(|(p, _)| p.clone())
                .unwrap_or_default()
        } else {
            v
        }
    };
    let c = console.clone();
    let act = move |cmd: fn(&str) -> ConsoleCmd| {
        let c = c.clone();
        move |ev: web_sys::MouseEvent| {
            blur(&ev);
            let t = pick(target);
            if t.is_empty() {
                return;
            }
            said.set(c.send_saying(&t, cmd(&t)));
        }
    };
    let c2 = console.clone();
    let link = move |cut: bool| {
        let c = c2.clone();
        move |ev: web_sys::MouseEvent| {
            blur(&ev);
            let (a, b) = (pick(target), other.get_untracked());
            if a.is_empty() || b.is_empty() || a == b {
                said.set("pick two different members for a link".into());
                return;
            }
            c.cut(&a, &b, cut);
            said.set(format!(
                "{} the link between {} and {}",
                if cut { "cut" } else { "restored" },
                c.name(&a),
                c.name(&b)
            ));
        }
    };
    let (c3, c4, c5, c6, c7, c8, c9) = (
        console.clone(),
        console.clone(),
        console.clone(),
        console.clone(),
        console.clone(),
        console.clone(),
        console.clone(),
    );
    // Options made again (a member came or went) keep the pick: it is marked selected.
    let options = move || {
        let picked = pick(target);
        members()
            .into_iter()
            .map(|(p, name)| {
                let on = p == picked;
                view! { <option value=p selected=on>{name}</option> }
            })
            .collect_view()
    };
    let options2 = move || {
        let picked = other.get_untracked();
        std::iter::once(view! { <option value="">"(second member)"</option> }.into_any())
            .chain(members().into_iter().map(|(p, name)| {
                let on = p == picked;
                view! { <option value=p selected=on>{name}</option> }.into_any()
            }))
            .collect_view()
    };
    view! {
        <section class="console" data-testid="console" aria-labelledby="console-title"
            hidden=move || !(wanted || presenter())>
                <h2 id="console-title">"Presenter's console"</h2>
                <Show when=move || !presenter()>
                    <p class="error" data-testid="console-no-key">"This tab did not join with the presenter key: members will ignore its commands."</p>
                </Show>
                <div class="row">
                    <label class="field"><span>"member"</span>
                        <select data-testid="console-target" prop:value=move || { member_list.track(); target.track(); pick(target) }
                            on:change=move |ev| target.set(event_target_value(&ev))>{options}</select>
                    </label>
                    <button data-testid="console-fail" on:click=act(|_| ConsoleCmd::Fail)>"Fail (crash)"</button>
                    <button data-testid="console-leave" on:click=act(|_| ConsoleCmd::Leave)>"Leave"</button>
                    <button data-testid="console-lie" on:click=act(|_| ConsoleCmd::Lie { on: true })>"Lie"</button>
                    <button data-testid="console-honest" on:click=act(|_| ConsoleCmd::Lie { on: false })>"Stop lying"</button>
                </div>
                <div class="row">
                    <label class="field"><span>"link to"</span>
                        <select data-testid="console-other" prop:value=move || { member_list.track(); other.get() }
                            on:change=move |ev| other.set(event_target_value(&ev))>{options2}</select>
                    </label>
                    <button data-testid="console-cut" on:click=link(true)>"Cut link"</button>
                    <button data-testid="console-restore" on:click=link(false)>"Restore link"</button>
                </div>
                <div class="row">
                    <button data-testid="console-pause" aria-pressed=move || view.paused.get().to_string()
                        on:click=move |ev| { blur(&ev); c3.pause(!view.paused.get_untracked()) }>
                        {move || if view.paused.get() { "Resume (space)" } else { "Pause all (space)" }}</button>
                    <button data-testid="console-step" on:click=move |ev| { blur(&ev); c4.key(KeyAction::Step) }>"Step (→)"</button>
                    <button data-testid="console-slow" aria-pressed=move || (view.slow_ms.get() > 0).to_string()
                        on:click=move |ev| { blur(&ev); c5.slow_motion(if view.slow_ms.get_untracked() > 0 { 0 } else { SLOW_MS }) }>
                        {move || if view.slow_ms.get() > 0 { "Normal speed (←)" } else { "Slow motion (←)" }}</button>
                    <button data-testid="console-reset" on:click=move |ev| { blur(&ev); said.set(c9.reset()) }>"Reset the demo (r)"</button>
                </div>
                <div class="row">
                    <span class="dim">"Scenarios:"</span>
                    <button data-testid="scenario-half" on:click=move |ev| { blur(&ev); said.set(c6.lose_half()) }>"Lose half the mesh (1)"</button>
                    <button data-testid="scenario-liar" on:click=move |ev| { blur(&ev); said.set(c7.liar()) }>"A liar, caught by q = 2 (2)"</button>
                    <button data-testid="scenario-away" on:click=move |ev| { blur(&ev); said.set(c8.server_away()) }>"The signaling server goes away (3)"</button>
                </div>
                <p class="dim" data-testid="console-said" aria-live="polite">{move || said.get()}</p>
        </section>
    }
}

/// Asks the server to take the room back now, and says so in `said`, then what came
/// of it.
fn ask_server_back(said: RwSignal<String>, room: String) {
    said.set("asking the server to come back…".into());
    wasm_bindgen_futures::spawn_local(async move { said.set(bring_server_back(room).await) });
}

/// Asks the server to take the room back now (a presenter's "bring it back"): the
/// members' next attempt to resume succeeds. Returns what happened, in words.
async fn bring_server_back(room: String) -> String {
    let Some(key) = presenter_key() else {
        return "only a presenter can bring the server back".into();
    };
    let Some(window) = web_sys::window() else {
        return "no window".into();
    };
    let init = web_sys::RequestInit::new();
    init.set_method("POST");
    let headers = js_sys::Object::new();
    let _ = js_sys::Reflect::set(&headers, &"content-type".into(), &"application/json".into());
    init.set_headers(&headers);
    let body = format!("{{\"presenter_key\":\"{}\"}}", web_ui::json_escaped(&key));
    init.set_body(&body.into());
    let url = format!("/api/rooms/{room}/back");
    let sent =
        wasm_bindgen_futures::JsFuture::from(window.fetch_with_str_and_init(&url, &init)).await;
    let Some(r) = sent
        .ok()
        .and_then(|r| r.dyn_into::<web_sys::Response>().ok())
    else {
        return "the server did not answer".into();
    };
    if !r.ok() {
        return format!("the server refused to come back ({})", r.status());
    }
    let body = match r.text() {
        Ok(p) => wasm_bindgen_futures::JsFuture::from(p)
            .await
            .ok()
            .and_then(|t| t.as_string()),
        Err(_) => None,
    };
    if body.is_some_and(|b| b.contains("\"back\":true")) {
        "the server takes the room back now: members reconnect within a few seconds".into()
    } else {
        "the room was not away from the server: nothing to bring back (the socket dropped for another reason, and reconnects by itself)".into()
    }
}

/// A banner while the signaling server is away: why, a countdown to its return when
/// the server said when, and for a presenter a control to bring it back now.
#[component]
pub fn ServerAwayBanner(view: MeshView, room: String) -> impl IntoView {
    // The countdown runs: the clock ticks each second while the server is away.
    leptos::prelude::set_interval(
        move || {
            if view.server_away.with_untracked(Option::is_some) {
                view.clock.set(crate::view::page_now());
            }
        },
        std::time::Duration::from_millis(1000),
    );
    let presenter = move || view.me.with(|m| m.as_ref().is_some_and(|m| m.presenter));
    let words = move || {
        match view.server_away.get() {
        Some(Some(at)) => {
            let left = ((at - view.clock.get()) / 1000.0).ceil().max(0.0);
            format!(
                "The signaling server is away from this room (a presenter's demonstration): back in {left:.0} s. The mesh carries on over its data channels; nobody can join until then."
            )
        }
        _ => "The signaling server is away: the mesh carries on over its data channels, and this tab reconnects to it (nobody can join meanwhile).".into(),
    }
    };
    let said = RwSignal::new(String::new());
    let back = move |ev: web_sys::MouseEvent| {
        blur(&ev);
        ask_server_back(said, room.clone());
    };
    view! {
        <Show when=move || view.server_away.with(Option::is_some)>
            <p class="server-away" role="status" data-testid="server-away">
                <span data-testid="server-away-words">{words}</span>" "
                <button data-testid="server-back" hidden=move || !presenter() on:click=back.clone()>"Bring it back now"</button>
                " "<span class="dim">{move || said.get()}</span>
            </p>
        </Show>
    }
}

/// The join QR code, the list of keys, or nothing; and the blank screen.
#[component]
pub fn Overlays(view: MeshView, room: String) -> impl IntoView {
    let join = move || {
        let origin = web_sys::window()
            .and_then(|w| w.location().origin().ok())
            .unwrap_or_default();
        qr::join_url(view.public_url.get().as_deref(), &origin, &room)
    };
    let code = move || {
        let url = join();
        let Some((side, path)) = qr::svg_path(&url) else {
            return view! { <p>{url}</p> }.into_any();
        };
        let (data_url, aria) = (url.clone(), format!("QR code of {url}"));
        view! {
            <figure class="qr" data-testid="qr" data-url=data_url>
                <svg viewBox=format!("0 0 {side} {side}") role="img" aria-label=aria
                    shape-rendering="crispEdges">
                    <rect width=side height=side fill="#fff"/>
                    <path d=path fill="#000"/>
                </svg>
                <figcaption data-testid="join-url">{url}</figcaption>
            </figure>
        }
        .into_any()
    };
    let warning = move || {
        let host = web_sys::window()
            .and_then(|w| w.location().host().ok())
            .unwrap_or_default();
        qr::join_warning(
            view.public_url.get().as_deref(),
            &host,
            view.loopback_only.get(),
        )
    };
    let members = move || {
        let n = view
            .graph
            .with(|g| g.iter().filter(|m| m.state == "live").count());
        if n == 1 {
            "1 member so far: this tab".to_string()
        } else {
            format!("{n} members joined")
        }
    };
    let close = move |_| view.overlay.set(Overlay::None);
    view! {
        // Beside the page, not over it: the room sees each member join on the graph.
        <aside class="overlay side" role="dialog" aria-label="Join this mesh" data-testid="qr-overlay"
            hidden=move || view.overlay.get() != Overlay::Qr>
            <h2>"Join from your phone"</h2>
            {code}
            <p class="error" data-testid="join-warning" hidden=move || warning().is_none()>
                {move || warning().unwrap_or_default()}
            </p>
            <p class="members-joined" data-testid="qr-members" aria-live="polite">{members}</p>
            <button on:click=close>"Close (escape)"</button>
        </aside>
        <Show when=move || view.overlay.get() == Overlay::Keys>
            <div class="overlay" role="dialog" aria-label="Keys" data-testid="keys-overlay">
                <h2>"Keys"</h2>
                <dl class="keys">
                    {KEYS.iter().map(|(k, _, what)| view! { <dt><kbd>{*k}</kbd></dt><dd>{*what}</dd> }).collect_view()}
                </dl>
                <button on:click=close>"Close (escape)"</button>
            </div>
        </Show>
        <Show when=move || view.blank.get()>
            <div class="blank" data-testid="blank" aria-hidden="true"></div>
        </Show>
    }
}
