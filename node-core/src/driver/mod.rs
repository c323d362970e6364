//! The run loops: drive a [`MeshNode`](crate::node::MeshNode) with a
//! [`Transport`](crate::transport::Transport) and the platform's clock and timers.
//!
//! Built with feature `platform`, one loop per target: `run_native` (tokio) natively
//! and `run_web` (the browser's timers, through `wasm-bindgen-futures`) on wasm32. Both
//! live here in node-core; `web-ui` and `node-cli` only call them. They hold no protocol
//! decisions: everything they do comes from `MeshNode::poll_action` and
//! `MeshNode::poll_timeout`.

/// Result bytes are handed to a channel only while it has fewer than this many bytes
/// in flight: a heartbeat sent meanwhile waits behind at most this much (a few
/// milliseconds on a LAN), never behind a whole transfer.
pub const BULK_IN_FLIGHT_MAX: usize = 256 << 10;

/// While result bytes wait for a channel to drain, the loop looks again this often.
pub const BULK_POLL_MS: u64 = 2;

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::{RunOptions, run_native};

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::{Page, PageInput, now as web_now, run_web};
