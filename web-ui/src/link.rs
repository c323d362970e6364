//! What the page and its node worker say to each other. The node (membership, the
//! engine, the feed of the view) runs in a dedicated worker; the page keeps what only
//! a window can hold (the peer connections and their data channels, the signaling
//! socket, the canvases, the compute pool) and the view's signals.
//!
//! Each message is a header (postcard) and at most one payload of bytes beside it, so
//! that what crosses a data channel (a message in, a send out) and a task's output
//! travel as the bytes they are, in a transferred buffer, never encoded again. The
//! header of such a message holds an empty byte vector where the payload goes;
//! [`split`] and [`join`] take the bytes out and put them back. Where the browser can
//! move a data channel to a worker (Chromium), the channel itself goes
//! ([`ToNode::Channel`]) and its messages no longer pass through the page.

use node_core::job::{JobId, TaskId};
use node_core::kernels::Kernel;
use node_core::node::PageInput;
use node_core::signal::PeerId;
use node_core::transport::TransportEvent;
use serde::{Deserialize, Serialize};

use crate::feed::{PageState, ViewOp};

/// The page to its node worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToNode {
    /// The node's settings; the page sends it once the worker said it is ready, before
    /// anything else.
    Start {
        name: String,
        workers: u16,
        hidden: bool,
    },
    /// What the page's transport reported (a message's bytes travel as the payload).
    Transport(TransportEvent),
    /// What the page's user or its compute pool hands the node (an output travels as
    /// the payload).
    Input(PageInput),
    /// What the page shows that the feed needs to know.
    Page(PageState),
    /// The data channel of connection attempt `conn` to `peer`, moved to the worker: it
    /// travels beside the header (transferred), and the worker reads and sends on it.
    Channel { peer: PeerId, conn: u64 },
    /// The page handed `sent` bytes to the channel to `peer` since its last word,
    /// after which the channel held `buffered` bytes not yet on their way (read after
    /// each send, and while it drains).
    Queued {
        peer: PeerId,
        sent: usize,
        buffered: usize,
    },
}

/// The node worker to its page.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToPage {
    /// The worker's code is loaded: messages sent from now on reach it.
    Ready,
    /// Send these bytes (the payload) on the data channel to `to`.
    Send { to: PeerId, bytes: Vec<u8> },
    /// Close the connection to a peer.
    Close(PeerId),
    /// Replace the connection to a silent peer with a fresh one.
    Reconnect(PeerId),
    /// A data channel moved to the worker opened (`open`) or closed.
    ChannelState { peer: PeerId, conn: u64, open: bool },
    /// Ask the server to leave the room for `secs` seconds.
    ServerAway(u32),
    /// Ask the server to tell the room to revive (a presenter's reset).
    ReviveRoom,
    /// Enter the room again under this node's id (it was revived).
    Rejoin,
    /// Close every connection and the signaling socket: the node left.
    Shutdown,
    /// Compute a task in the pool; the output comes back as `PageInput::Computed`.
    Compute {
        job: JobId,
        task: TaskId,
        kernel: Kernel,
    },
    /// Changes to the view, in order.
    View(Vec<ViewOp>),
}

/// Takes the payload out of a message: the message keeps an empty vector in its place.
pub trait Payload {
    fn split(&mut self) -> Option<Vec<u8>>;
    /// Puts a payload back where [`Payload::split`] took it from; `false` if this
    /// message has no place for one.
    fn join(&mut self, bytes: Vec<u8>) -> bool;
}

impl Payload for ToNode {
    fn split(&mut self) -> Option<Vec<u8>> {
        match self {
            ToNode::Transport(TransportEvent::Message(_, bytes))
            | ToNode::Input(PageInput::Computed { output: bytes, .. }) => {
                Some(std::mem::take(bytes))
            }
            _ => None,
        }
    }

    fn join(&mut self, payload: Vec<u8>) -> bool {
        match self {
            ToNode::Transport(TransportEvent::Message(_, bytes))
            | ToNode::Input(PageInput::Computed { output: bytes, .. }) => {
                *bytes = payload;
                true
            }
            _ => false,
        }
    }
}

impl Payload for ToPage {
    fn split(&mut self) -> Option<Vec<u8>> {
        match self {
            ToPage::Send { bytes, .. } => Some(std::mem::take(bytes)),
            _ => None,
        }
    }

    fn join(&mut self, payload: Vec<u8>) -> bool {
        match self {
            ToPage::Send { bytes, .. } => {
                *bytes = payload;
                true
            }
            _ => false,
        }
    }
}

/// Why a message from the other side was dropped.
#[derive(Debug, thiserror::Error)]
pub enum BadMessage {
    #[error("malformed header: {0}")]
    Header(#[from] postcard::Error),
    #[error("a payload for a message that takes none")]
    StrayPayload,
}

/// A message as its header's bytes and its payload.
pub fn split<T: Payload + Serialize>(mut msg: T) -> (Vec<u8>, Option<Vec<u8>>) {
    let payload = msg.split();
    (crate::encode(&msg), payload)
}

/// A message from its header's bytes and its payload.
pub fn join<T: Payload + for<'a> Deserialize<'a>>(
    header: &[u8],
    payload: Option<Vec<u8>>,
) -> Result<T, BadMessage> {
    let mut msg: T = postcard::from_bytes(header)?;
    if let Some(p) = payload
        && !msg.join(p)
    {
        return Err(BadMessage::StrayPayload);
    }
    Ok(msg)
}

#[cfg(test)]
mod tests {
    use super::*;
    use node_core::engine::Command;
    use node_core::signal::{PeerInfo, PeerKind};

    fn round_trip<
        T: Payload + Serialize + for<'a> Deserialize<'a> + PartialEq + Clone + std::fmt::Debug,
    >(
        msg: T,
    ) -> Option<usize> {
        let (header, payload) = split(msg.clone());
        let len = payload.as_ref().map(Vec::len);
        assert_eq!(join::<T>(&header, payload).unwrap(), msg);
        len
    }

    #[test]
    fn messages_cross_whole_with_their_bytes_beside_the_header() {
        let peer = PeerId("p1".into());
        let bytes: Vec<u8> = (0..=255).collect();
        let msg = ToNode::Transport(TransportEvent::Message(peer.clone(), bytes.clone()));
        assert_eq!(round_trip(msg.clone()), Some(256));
        // The header does not carry the bytes.
        let (header, _) = split(msg);
        assert!(header.len() < 16, "{} bytes of header", header.len());
        let computed = ToNode::Input(PageInput::Computed {
            job: JobId(7),
            task: TaskId(3),
            output: bytes.clone(),
        });
        assert_eq!(round_trip(computed), Some(256));
        assert_eq!(
            round_trip(ToPage::Send {
                to: peer.clone(),
                bytes
            }),
            Some(256)
        );
        // Types also written as JSON for the server (`PeerInfo`) cross whole too.
        let me = PeerInfo {
            id: peer.clone(),
            kind: PeerKind::Browser,
            name: "tab".into(),
            presenter: false,
            colour: 3,
        };
        let joined = TransportEvent::Joined {
            me: me.clone(),
            peers: vec![PeerInfo {
                presenter: true,
                ..me.clone()
            }],
        };
        assert_eq!(round_trip(ToNode::Transport(joined)), None);
        let submit = ToNode::Input(PageInput::Command(Command::Cancel { job: JobId(1) }));
        assert_eq!(round_trip(submit), None);
        assert_eq!(round_trip(ToPage::Reconnect(peer.clone())), None);
        assert_eq!(round_trip(ToPage::Close(peer)), None);
    }

    #[test]
    fn a_bad_header_or_a_stray_payload_is_an_error_not_a_panic() {
        assert!(matches!(
            join::<ToNode>(&[0xff, 0xff, 0xff], None),
            Err(BadMessage::Header(_))
        ));
        let (header, _) = split(ToPage::Shutdown);
        assert!(matches!(
            join::<ToPage>(&header, Some(vec![1, 2, 3])),
            Err(BadMessage::StrayPayload)
        ));
        // Every truncation of a real header is refused or read as some message; none
        // panics.
        let (header, _) = split(ToNode::Start {
            name: "tab".into(),
            workers: 2,
            hidden: false,
        });
        for n in 0..header.len() {
            let _ = join::<ToNode>(&header[..n], None);
        }
    }
}
