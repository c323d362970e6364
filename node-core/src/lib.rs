//! Meshwork's shared core, compiled natively for the CLI and to wasm32 for the browser.
//!
//! What it owns:
//! - [`signal`] and [`wire`]: every message that crosses a wire, as plain data;
//!   [`chunk`] splits messages over 16 KiB and puts them back together.
//! - [`membership`]: the sans-IO view of the mesh (Hello, heartbeats, RTT, departures).
//! - [`node`]: [`node::MeshNode`], the platform-free glue that turns transport events
//!   into membership inputs and membership outputs into actions for a run loop.
//! - [`transport`]: the WebRTC mesh behind one trait ([`transport::Transport`],
//!   [`transport::TransportEvent`]) and [`transport::negotiation`], the sans-IO policy of
//!   who offers, early ICE candidates, failures and closes, shared by both
//!   implementations: `transport::web` in the browser and `transport::native` elsewhere.
//! - `driver`: the run loops, `run_native` (tokio) and `run_web` (browser timers), which
//!   run a [`node::MeshNode`] over a transport and a clock.
//! - [`engine`]: the sans-IO compute engine (placement, scheduling, the task board,
//!   validation, assembly); [`node::MeshNode`] drives it over the live mesh, and the
//!   simulators drive it over simulated ones.
//! - [`job`]: job specs, their content hash and the id newtypes.
//! - [`kernels`]: the compute kernels, bit-identical on every target.
//! - [`testkit`]: whole nodes wired together in memory on virtual time, for the tests
//!   of this crate and of the page's view.
//!
//! Feature `platform` builds exactly the platform code: the two transport
//! implementations (webrtc-rs + tokio natively, web-sys on wasm32) and `driver`.
//! Everything else, the transport trait and its negotiation policy included, builds
//! without it, so the signaling server and the tests of the policy need no WebRTC stack.
//!
//! What it must never do: read a clock, touch a socket or spawn anything outside
//! `transport::{native, web}` and `driver`. Everything else is deterministic and testable
//! on both targets.

pub mod chunk;
#[cfg(feature = "platform")]
pub mod driver;
pub mod engine;
pub mod job;
pub mod kernels;
pub mod membership;
pub mod node;
pub mod signal;
pub mod testkit;
pub mod transport;
pub mod wire;
