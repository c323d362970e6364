//! The platform-free glue of a running node: [`MeshNode`] turns transport events into
//! membership inputs, and membership outputs into [`Action`]s for the run loop.
//!
//! Sans-IO like [`crate::membership`]: time comes in as an argument and nothing here
//! touches a socket or a clock. The run loops in `driver` (built with feature
//! `platform`) only shuttle events, timers and actions between a transport and this,
//! so a tab and a CLI node behave the same.

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
