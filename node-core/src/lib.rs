//! Meshwork's shared core, compiled natively for the CLI and to wasm32 for the browser.
//!
//! What it owns:
//! - [`signal`] and [`wire`]: every message that crosses a wire, as plain data.
//! - [`membership`]: the sans-IO view of the mesh (Hello, heartbeats, RTT, departures).
//! - [`transport`]: the WebRTC mesh behind one trait, `web` in the browser and `native`
//!   elsewhere; the only platform-specific code in this crate.
//! - [`driver`]: runs [`membership`] over a transport and a clock.
//!
//! What it must never do: read a clock, touch a socket or spawn anything outside
//! `transport` and `driver`. Everything else is deterministic and testable on both
//! targets.

#[cfg(feature = "transport")]
pub mod driver;
pub mod engine;
pub mod job;
pub mod kernels;
pub mod membership;
pub mod signal;
#[cfg(feature = "transport")]
pub mod transport;
pub mod wire;
