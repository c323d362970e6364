//! Runs [`Membership`] over a [`Transport`] and a clock.
//!
//! [`MeshNode`] is the platform-free half: it turns transport events into membership
//! inputs and membership outputs into [`Action`]s. The run loops ([`run_native`] here,
//! and the browser's in `web-ui`) only shuttle events, timers and actions, so a tab and
//! a CLI node behave the same.

use std::collections::VecDeque;

use crate::membership::{
    Membership, MembershipConfig, MeshEvent, MeshOutput, Micros, default_name,
};
use crate::signal::{ErrorCode, PeerInfo};
use crate::transport::TransportEvent;
use crate::wire;

/// What a node reports to its shell (the CLI's output, the UI).
#[derive(Clone, Debug, PartialEq)]
pub enum NodeEvent {
    /// The signaling server welcomed us.
    Joined { me: PeerInfo },
    /// Something happened in the mesh.
    Mesh(MeshEvent),
    /// The signaling server refused a frame.
    SignalingError { code: ErrorCode, message: String },
    /// The signaling socket closed; the mesh carries on without it.
    SignalingClosed,
}

/// What the run loop must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Send {
        to: crate::signal::PeerId,
        bytes: Vec<u8>,
    },
    Close {
        peer: crate::signal::PeerId,
    },
    Event(NodeEvent),
}

/// The platform-free part of a running node.
#[derive(Debug)]
pub struct MeshNode {
    config: MembershipConfig,
    /// Cores offered in our Hello.
    cores: u16,
    /// Our display name; empty means "derive one from the id".
    name: String,
    /// None until the server has welcomed us and told us our id.
    membership: Option<Membership>,
    actions: VecDeque<Action>,
}

impl MeshNode {
    pub fn new(config: MembershipConfig, name: String, cores: u16) -> Self {
        MeshNode {
            config,
            cores,
            name,
            membership: None,
            actions: VecDeque::new(),
        }
    }

    pub fn membership(&self) -> Option<&Membership> {
        self.membership.as_ref()
    }

    pub fn handle_transport(&mut self, now: Micros, ev: TransportEvent) {
        match ev {
            TransportEvent::Joined { mut me, peers } => {
                me.name = if self.name.is_empty() {
                    default_name(me.kind, &me.id)
                } else {
                    self.name.clone()
                };
                let mut m = Membership::new(me.clone(), self.cores, self.config.clone());
                for p in peers {
                    m.handle_announced(now, p);
                }
                self.membership = Some(m);
                self.actions
                    .push_back(Action::Event(NodeEvent::Joined { me }));
            }
            TransportEvent::PeerJoined(p) => {
                if let Some(m) = &mut self.membership {
                    m.handle_announced(now, p);
                }
            }
            TransportEvent::PeerLeft(id) => {
                if let Some(m) = &mut self.membership {
                    m.handle_signal_left(now, &id);
                }
            }
            TransportEvent::ChannelOpen(id) => {
                if let Some(m) = &mut self.membership {
                    m.handle_channel_open(now, &id);
                }
            }
            TransportEvent::ChannelClosed(id) => {
                if let Some(m) = &mut self.membership {
                    m.handle_channel_closed(now, &id);
                }
            }
            TransportEvent::Message(id, bytes) => {
                if let Some(m) = &mut self.membership {
                    m.handle_message(now, &id, &bytes);
                }
            }
            TransportEvent::SignalingError { code, message } => self
                .actions
                .push_back(Action::Event(NodeEvent::SignalingError { code, message })),
            TransportEvent::SignalingClosed => self
                .actions
                .push_back(Action::Event(NodeEvent::SignalingClosed)),
        }
    }

    pub fn handle_timeout(&mut self, now: Micros) {
        if let Some(m) = &mut self.membership {
            m.handle_timeout(now);
        }
    }

    pub fn poll_timeout(&self) -> Option<Micros> {
        self.membership.as_ref().and_then(Membership::poll_timeout)
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        if let Some(a) = self.actions.pop_front() {
            return Some(a);
        }
        let out = self.membership.as_mut()?.poll_output()?;
        Some(match out {
            MeshOutput::Send { to, msg } => Action::Send {
                to,
                bytes: wire::encode(&msg),
            },
            MeshOutput::Close { peer } => Action::Close { peer },
            MeshOutput::Event(e) => Action::Event(NodeEvent::Mesh(e)),
        })
    }
}

#[cfg(not(target_arch = "wasm32"))]
pub use native::{RunOptions, run_native};

#[cfg(not(target_arch = "wasm32"))]
mod native {
    use std::future::Future;
    use std::time::{Duration, Instant};

    use futures_util::FutureExt;

    use super::{Action, MeshNode, NodeEvent};
    use crate::membership::{MeshEvent, Micros};
    use crate::signal::PeerId;
    use crate::transport::Transport;
    use crate::wire::{self, BULK_PAYLOAD_MAX, WireMsg};

    /// A heartbeat that cannot be sent within this time is dropped: a dead peer's full
    /// buffer must not stall the loop that is about to declare it dead.
    const SEND_WAIT_MS: u64 = 200;

    /// Extra work for a run, used by benchmarks.
    #[derive(Clone, Debug, Default)]
    pub struct RunOptions {
        /// Send this many bulk bytes to the first peer that connects, then report the
        /// acknowledged throughput as [`MeshEvent::BulkAcked`].
        pub bulk_bytes: Option<u64>,
    }

    /// A bulk transfer under way.
    struct Bulk {
        to: PeerId,
        remaining: u64,
    }

    /// Runs a node until `shutdown` resolves or the transport ends, calling `on_event`
    /// for everything worth reporting. Closes every connection before returning.
    pub async fn run_native<T: Transport>(
        mut transport: T,
        mut node: MeshNode,
        options: RunOptions,
        mut on_event: impl FnMut(&NodeEvent),
        shutdown: impl Future<Output = ()>,
    ) {
        let start = Instant::now();
        let now = || Micros(start.elapsed().as_micros() as u64);
        let mut bulk_pending = options.bulk_bytes;
        let mut bulk: Option<Bulk> = None;
        let payload = vec![0x5a_u8; BULK_PAYLOAD_MAX];
        tokio::pin!(shutdown);
        loop {
            if let Some(b) = &mut bulk {
                // While a bulk transfer runs, take whatever events are ready without
                // waiting, then push one more message (which waits on back-pressure).
                if (&mut shutdown).now_or_never().is_some() {
                    break;
                }
                while let Some(ev) = transport.next_event().now_or_never() {
                    match ev {
                        Some(ev) => node.handle_transport(now(), ev),
                        None => break,
                    }
                }
                if node.poll_timeout().is_some_and(|t| t <= now()) {
                    node.handle_timeout(now());
                }
                let msg = if b.remaining == 0 {
                    WireMsg::BulkEnd { seq: 1 }
                } else {
                    let n = b.remaining.min(payload.len() as u64) as usize;
                    b.remaining -= n as u64;
                    WireMsg::Bulk {
                        data: payload[..n].to_vec(),
                    }
                };
                let done = matches!(msg, WireMsg::BulkEnd { .. });
                if let Err(e) = transport.send(&b.to, wire::encode(&msg)).await {
                    tracing::warn!(peer = %b.to, "bulk send failed: {e}");
                    bulk = None;
                } else if done {
                    bulk = None;
                }
            } else {
                let deadline = node.poll_timeout();
                let sleep = async {
                    match deadline {
                        Some(at) => {
                            let wait = at.0.saturating_sub(now().0);
                            tokio::time::sleep(Duration::from_micros(wait)).await
                        }
                        None => std::future::pending().await,
                    }
                };
                tokio::select! {
                    ev = transport.next_event() => match ev {
                        Some(ev) => node.handle_transport(now(), ev),
                        None => break,
                    },
                    () = sleep => node.handle_timeout(now()),
                    () = &mut shutdown => break,
                }
            }
            while let Some(action) = node.poll_action() {
                match action {
                    Action::Send { to, bytes } => {
                        let send = transport.send(&to, bytes);
                        match tokio::time::timeout(Duration::from_millis(SEND_WAIT_MS), send).await
                        {
                            Ok(Ok(())) => {}
                            Ok(Err(e)) => tracing::debug!(peer = %to, "send failed: {e}"),
                            Err(_) => tracing::debug!(peer = %to, "send timed out"),
                        }
                    }
                    Action::Close { peer } => transport.close_peer(&peer),
                    Action::Event(e) => {
                        if let NodeEvent::Mesh(MeshEvent::PeerConnected { peer, .. }) = &e
                            && let Some(bytes) = bulk_pending.take()
                        {
                            bulk = Some(Bulk {
                                to: peer.id.clone(),
                                remaining: bytes,
                            });
                        }
                        on_event(&e)
                    }
                }
            }
        }
        transport.shutdown().await;
    }
}

#[cfg(target_arch = "wasm32")]
pub use web::run_web;

#[cfg(target_arch = "wasm32")]
mod web {
    use futures_util::future::{Either, select};
    use wasm_bindgen::JsValue;
    use wasm_bindgen_futures::JsFuture;

    use super::{Action, MeshNode, NodeEvent};
    use crate::membership::Micros;
    use crate::transport::Transport;

    fn now() -> Micros {
        let ms = web_sys::window()
            .and_then(|w| w.performance())
            .map(|p| p.now())
            .unwrap_or(0.0);
        Micros((ms * 1000.0) as u64)
    }

    async fn sleep_until(at: Option<Micros>) {
        let Some(at) = at else {
            return std::future::pending().await;
        };
        let ms = (at.0.saturating_sub(now().0) / 1000) as i32;
        let promise = js_sys::Promise::new(&mut |resolve, _| {
            if let Some(w) = web_sys::window() {
                let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms);
            } else {
                let _ = resolve.call0(&JsValue::NULL);
            }
        });
        let _ = JsFuture::from(promise).await;
    }

    /// Runs a node in the page until the transport ends. `on_event` sees every event;
    /// `on_change` sees the node after every step, to refresh a view of the mesh.
    pub async fn run_web<T: Transport>(
        mut transport: T,
        mut node: MeshNode,
        mut on_event: impl FnMut(&NodeEvent),
        mut on_change: impl FnMut(&MeshNode),
    ) {
        loop {
            let deadline = node.poll_timeout();
            let woke = {
                let ev = std::pin::pin!(transport.next_event());
                let timer = std::pin::pin!(sleep_until(deadline));
                match select(ev, timer).await {
                    Either::Left((ev, _)) => Some(ev),
                    Either::Right(((), _)) => None,
                }
            };
            match woke {
                Some(Some(ev)) => node.handle_transport(now(), ev),
                Some(None) => break,
                None => node.handle_timeout(now()),
            }
            while let Some(action) = node.poll_action() {
                match action {
                    Action::Send { to, bytes } => {
                        if let Err(e) = transport.send(&to, bytes).await {
                            web_sys::console::debug_1(&format!("send to {to}: {e}").into());
                        }
                    }
                    Action::Close { peer } => transport.close_peer(&peer),
                    Action::Event(e) => on_event(&e),
                }
            }
            on_change(&node);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::{PeerId, PeerKind};
    use crate::wire::WireMsg;

    fn info(id: &str, kind: PeerKind) -> PeerInfo {
        PeerInfo {
            id: PeerId(id.into()),
            kind,
            name: String::new(),
        }
    }

    fn drain(n: &mut MeshNode) -> Vec<Action> {
        std::iter::from_fn(|| n.poll_action()).collect()
    }

    #[test]
    fn a_join_then_a_channel_gives_hello_then_connected() {
        let mut n = MeshNode::new(MembershipConfig::default(), String::new(), 3);
        n.handle_transport(
            Micros(0),
            TransportEvent::Joined {
                me: info("abcdef", PeerKind::Native),
                peers: vec![info("p1", PeerKind::Browser)],
            },
        );
        let out = drain(&mut n);
        assert!(
            matches!(&out[..], [Action::Event(NodeEvent::Joined { me })] if me.name == "native-abcd"),
            "{out:?}"
        );
        let p1 = PeerId("p1".into());
        n.handle_transport(Micros(10), TransportEvent::ChannelOpen(p1.clone()));
        let out = drain(&mut n);
        let [Action::Send { to, bytes }] = &out[..] else {
            panic!("{out:?}")
        };
        assert_eq!(to, &p1);
        assert!(matches!(
            wire::decode(bytes),
            Ok(WireMsg::Hello { cores: 3, .. })
        ));
        let hello = wire::encode(&WireMsg::Hello {
            id: p1.clone(),
            kind: PeerKind::Browser,
            name: "tab".into(),
            cores: 8,
        });
        n.handle_transport(Micros(20), TransportEvent::Message(p1.clone(), hello));
        assert!(matches!(
            &drain(&mut n)[..],
            [Action::Event(NodeEvent::Mesh(MeshEvent::PeerConnected {
                cores: 8,
                ..
            }))]
        ));
        n.handle_transport(Micros(30), TransportEvent::PeerLeft(p1));
        assert!(matches!(
            &drain(&mut n)[..],
            [Action::Event(NodeEvent::Mesh(MeshEvent::PeerLeft { .. }))]
        ));
    }

    #[test]
    fn events_before_the_welcome_are_ignored() {
        let mut n = MeshNode::new(MembershipConfig::default(), "x".into(), 1);
        n.handle_transport(Micros(0), TransportEvent::ChannelOpen(PeerId("p".into())));
        n.handle_transport(
            Micros(0),
            TransportEvent::Message(PeerId("p".into()), vec![1, 2]),
        );
        assert!(drain(&mut n).is_empty());
        assert_eq!(n.poll_timeout(), None);
    }
}
