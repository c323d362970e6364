//! The native run loop, on tokio.

use std::future::Future;
use std::time::{Duration, Instant};

use futures_util::FutureExt;

use crate::membership::{MeshEvent, Micros};
use crate::node::{Action, MeshNode, NodeEvent};
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
                    match tokio::time::timeout(Duration::from_millis(SEND_WAIT_MS), send).await {
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
