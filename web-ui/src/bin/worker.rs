//! The compute worker of the page: Trunk builds it as a second wasm binary with a
//! classic-script loader (`worker_loader.js`); the page starts it with `new Worker`.

#[cfg(target_arch = "wasm32")]
fn main() {
    web_ui::worker::start();
}

/// Runs only in a browser worker; natively this binary explains itself.
#[cfg(not(target_arch = "wasm32"))]
fn main() {
    eprintln!("the worker runs inside a browser tab: build the web UI with `cargo xtask build-ui`");
    std::process::exit(2);
}
