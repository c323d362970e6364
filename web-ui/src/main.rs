//! Meshwork in the browser: this tab is a node of the mesh and a live window onto it.
//!
//! The tab joins the room named by `?room=NAME` (default `demo`) through the signaling
//! server that served the page. `app.rs` mounts the page; `bridge.rs` starts the node
//! worker (`web_ui::node_worker`, where the node runs), relays between it and the peer
//! connections, and writes the view's signals (`view.rs`) from the changes it sends;
//! the panels (`panels/`, `graph.rs`, `console.rs`, `timemachine.rs`) only read them;
//! `paint.rs` (in the library) draws the canvases. Elements that tests read carry
//! `data-testid` attributes.

#[cfg(target_arch = "wasm32")]
mod app;
#[cfg(target_arch = "wasm32")]
mod bench;
#[cfg(target_arch = "wasm32")]
mod bridge;
#[cfg(target_arch = "wasm32")]
mod console;
#[cfg(target_arch = "wasm32")]
mod graph;
#[cfg(target_arch = "wasm32")]
mod panels;
#[cfg(target_arch = "wasm32")]
mod pool;
#[cfg(target_arch = "wasm32")]
mod timemachine;
#[cfg(target_arch = "wasm32")]
mod view;

#[cfg(target_arch = "wasm32")]
fn main() {
    app::start();
}

/// The page only runs in a browser; natively this crate builds an explanation, so that
/// `cargo build --workspace` and `cargo clippy --workspace` work on the host.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("web-ui runs in the browser: build it with `cargo xtask build-ui` (Trunk)");
    std::process::exit(2);
}
