//! The run loops: drive a [`MeshNode`](crate::node::MeshNode) with a
//! [`Transport`](crate::transport::Transport) and the platform's clock and timers.
//!
//! Built with feature `platform`, one loop per target: `run_native` (tokio) natively
//! and `run_web` (the browser's timers, through `wasm-bindgen-futures`) on wasm32. Both
//! live here in node-core; `web-ui` and `node-cli` only call them. They hold no protocol
//! decisions: everything they do comes from `MeshNode::poll_action` and
//! `MeshNode::poll_timeout`.

pub use crate::node::{BULK_IN_FLIGHT_MAX, BULK_POLL_MS, PageInput};

#[cfg(not(target_arch = "wasm32"))]
mod native;
#[cfg(not(target_arch = "wasm32"))]
pub use native::{RunOptions, Shell, run_native};

#[cfg(target_arch = "wasm32")]
mod web;
#[cfg(target_arch = "wasm32")]
pub use web::{Page, SLICE_MS, now as web_now, run_web, sleep_ms, yield_to_browser};
