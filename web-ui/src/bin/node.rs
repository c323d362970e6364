//! The node worker of the page: Trunk builds it as a wasm binary with a classic-script
//! loader (`node_loader.js`); the page starts one with `new Worker` and runs its node
//! in it (see `web_ui::node_worker`).

#[cfg(target_arch = "wasm32")]
fn main() {
    web_ui::node_worker::start();
}

/// Runs only in a browser worker; natively this binary explains itself.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!(
        "the node worker runs inside a browser tab: build the web UI with `cargo xtask build-ui`"
    );
    std::process::exit(2);
}
