//! The WebRTC mesh behind one trait.
//!
//! A transport joins a room on the signaling server, opens one data channel to every
//! other member (the newcomer sends the offers; ICE candidates trickle), and reports what
//! happens as [`TransportEvent`]s. It knows nothing of the protocol spoken on the
//! channels: it carries opaque byte messages, and [`crate::membership`] gives them
//! meaning.
//!
//! What is decided is decided once, in [`negotiation`]: the sans-IO policy of who
//! offers, early ICE candidates, failures and closes. The two implementations only carry
//! out its steps on their platform, chosen by target and built with feature `platform`:
//! `web` (web-sys `RTCPeerConnection`) in the browser and `native` (webrtc-rs over tokio)
//! elsewhere. This module (the trait, its events and the policy) builds without any
//! feature and on every target.

use crate::signal::{ErrorCode, PeerId, PeerInfo};

pub mod negotiation;
pub mod pace;

#[cfg(all(feature = "platform", not(target_arch = "wasm32")))]
pub mod native;
#[cfg(all(feature = "platform", target_arch = "wasm32"))]
pub mod web;

/// Something that happened on the signaling socket or a data channel.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub enum TransportEvent {
    /// The server welcomed us: our id and the members already in the room, to whom this
    /// transport is now sending offers.
    Joined { me: PeerInfo, peers: Vec<PeerInfo> },
    /// The server welcomed us back under our id after the signaling socket dropped (or
    /// the server restarted): the members it knows now. Connections carry on; the
    /// transport offers to listed members it has none with.
    Rejoined { peers: Vec<PeerInfo> },
    /// Someone joined the room after us; they will send us an offer. Also a listed peer
    /// announced again before a new attempt with it, after a ChannelClosed made the
    /// driver forget it.
    PeerJoined(PeerInfo),
    /// The signaling server saw the peer's socket close. Its connection is already
    /// closed; no ChannelClosed follows.
    PeerLeft(PeerId),
    /// The data channel to the peer is open and can carry messages.
    ChannelOpen(PeerId),
    /// The data channel or the whole connection to the peer closed or failed, or its
    /// negotiation failed. At most once per connection attempt, however many of these
    /// happen, and not for an attempt that never opened with a peer the server still
    /// lists: that one is tried again, the peer still being connected to (see
    /// [`negotiation`]).
    ChannelClosed(PeerId),
    /// The network path of the peer's open connection: the kinds of the local and the
    /// remote candidate ICE selected (`host`, `srflx`, `prflx`, `relay`). Reported by
    /// both transports after the channel opens (the browser's from `getStats`).
    Path {
        peer: PeerId,
        local: String,
        remote: String,
    },
    /// The connection attempt to the peer finished gathering ICE candidates without a
    /// single local one: this side offered WebRTC no network address (a browser that
    /// hides its addresses, a machine with no usable interface), so the attempt will
    /// fail. Reported once per attempt, before that failure, by the browser transport
    /// (webrtc-rs binds the addresses it is given).
    NoLocalAddress(PeerId),
    /// One message arrived on the peer's data channel.
    Message(PeerId, Vec<u8>),
    /// The signaling server refused one of our frames.
    SignalingError {
        code: ErrorCode,
        message: String,
        /// When the refused thing can be tried again, if the server said
        /// ([`ErrorCode::ServerAway`]: when the room is back).
        retry_after_ms: Option<u64>,
    },
    /// The signaling socket closed. Established data channels keep working.
    SignalingClosed,
    /// A presenter asked the room to revive (a reset): a member a presenter failed
    /// comes back; any other member ignores it.
    Revive(PeerId),
}

/// Why a send failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    #[error("no open data channel to peer {0}")]
    NoChannel(PeerId),
    #[error("message of {0} bytes is over the channel limit")]
    TooBig(usize),
    #[error("data channel send failed: {0}")]
    Channel(String),
}

/// A WebRTC mesh endpoint. Futures need not be `Send`: in the browser everything runs on
/// one thread.
#[allow(async_fn_in_trait)]
pub trait Transport {
    /// The next event, or `None` once the transport has shut down.
    async fn next_event(&mut self) -> Option<TransportEvent>;

    /// Sends one message to `to`, waiting while the channel's send buffer is over its
    /// bound (back-pressure instead of an unbounded queue).
    async fn send(&self, to: &PeerId, bytes: Vec<u8>) -> Result<(), SendError>;

    /// Bytes handed to the channel to `to` and not yet on their way (0 without a
    /// channel): the run loop sends result bytes only while this is small, so that
    /// control messages never queue behind a transfer.
    async fn queued(&self, to: &PeerId) -> usize;

    /// Closes the connection to one peer (membership gave up on it after a long
    /// silence). While the server lists the peer, it is tried again later
    /// ([`negotiation::Negotiation::close_peer`]).
    fn close_peer(&self, peer: &PeerId);

    /// Replaces the connection to one peer with a fresh one, if the server lists it (a
    /// member silent for a while, whose connection may be slow to recover): see
    /// [`negotiation::Negotiation::reconnect`].
    fn reconnect(&self, peer: &PeerId);

    /// Asks the signaling server to leave this node's room for `secs` seconds (a
    /// presenter's demonstration; the server refuses it from anyone else). Every
    /// member's signaling socket closes; the data channels carry on.
    fn take_server_away(&self, secs: u32);

    /// Asks the signaling server to tell every other member of the room to revive (a
    /// presenter's reset; the server refuses it from anyone else).
    fn revive_room(&self);

    /// Enters the room again as if just started, under the same id (its resume token):
    /// closes every peer connection and the signaling socket without a word, forgets
    /// what the negotiation knew, and offers to every member the server lists. For a
    /// node a presenter failed and revived: the others, which took its silence for a
    /// departure, see it come back.
    fn rejoin(&self);

    /// Closes every peer connection and the signaling socket, so that the others notice
    /// at once instead of waiting for a timeout.
    async fn shutdown(&self);
}
