//! The room registry: who is in which room, and who hears about it.
//!
//! Plain state behind one lock, with no sockets and no awaiting: every method queues its
//! frames with [`Outbox::push`] while the caller holds the lock, so each client sees
//! joins, leaves and signals in one consistent order (never a `peer_left` before the
//! matching `peer_joined`). It never reads a client's frames and never trusts a client
//! for an id: ids are made here.
//!
//! A member whose queue overflows (or whose connection already died) is removed on the
//! spot, kicked, and announced as gone, which may in turn overflow someone else: removal
//! works through a to-do list rather than recursion.

use std::collections::{BTreeMap, HashMap};

use axum::extract::ws::Utf8Bytes;
use node_core::signal::{
    IceServer, PeerId, PeerInfo, PeerKind, RateLimits, ServerMsg, SignalData, encode_server,
};
use rand::Rng;
use serde::Serialize;
use tokio::time::Instant;

use crate::outbox::{Outbox, Undeliverable};

/// The bounds on what the registry holds.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Members per room; one more gets `room_full`.
    pub peers_per_room_max: usize,
    /// Rooms at once; opening one more gets `too_many_rooms`.
    pub rooms_max: usize,
    /// The pace each connection is held to, told to every member in its welcome.
    pub rate: Option<RateLimits>,
}

/// Why a join was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum JoinError {
    #[error("the room is full")]
    RoomFull,
    #[error("the server holds as many rooms as it may")]
    TooManyRooms,
    #[error("a connected member holds this id")]
    IdInUse,
}

/// Why a signal was not relayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum RelayError {
    /// The target is not in the sender's room (whether or not it exists elsewhere).
    #[error("no such peer in this room")]
    NoSuchPeer,
    /// The sender itself is no longer a member: it was dropped a moment ago and its
    /// connection is closing.
    #[error("sender is not in a room")]
    SenderGone,
}

/// A room as `/api/rooms` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RoomView {
    /// The room's name.
    pub name: String,
    /// Its members in the order they joined.
    pub peers: Vec<PeerInfo>,
}

/// One member of a room.
#[derive(Debug)]
struct Member {
    /// What others are told about this member.
    info: PeerInfo,
    /// Where frames for this member go.
    outbox: Outbox,
}

/// Why a member is being removed; decides the log line and the count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Removal {
    /// Its connection ended.
    Left,
    /// Its queue overflowed: a slow client.
    Slow,
    /// Its connection's writer had already stopped.
    Dead,
}

/// All rooms on this server.
#[derive(Debug)]
pub struct Registry {
    /// Rooms by name, with members in join order; a room exists only while it has
    /// members (at most a few dozen each, so a `Vec` scan beats a map).
    rooms: BTreeMap<String, Vec<Member>>,
    /// The room each member is in: keeps ids unique server-wide and finds a sender's
    /// room without trusting the client to name it.
    room_of: HashMap<PeerId, String>,
    /// Caps on rooms and members.
    limits: Limits,
    /// Members dropped because they did not read fast enough, since start.
    slow_dropped: u64,
    /// Frames queued for members, by type, since start.
    frames_out: BTreeMap<&'static str, u64>,
    /// Rooms a presenter took the server away from, until when (at most `rooms_max`;
    /// expired ones are pruned whenever one is added).
    away: BTreeMap<String, Instant>,
}

impl Registry {
    pub fn new(limits: Limits) -> Self {
        Registry {
            rooms: BTreeMap::new(),
            room_of: HashMap::new(),
            limits,
            slow_dropped: 0,
            frames_out: BTreeMap::new(),
            away: BTreeMap::new(),
        }
    }

    /// A presenter's outage: every member of `room` is dropped at once, without telling
    /// anyone that anyone left (their data channels carry on), and the room is refused
    /// until `until`. Returns how many members were dropped.
    pub fn take_away(&mut self, room: &str, now: Instant, until: Instant) -> usize {
        self.away.retain(|_, t| *t > now);
        if self.away.len() < self.limits.rooms_max {
            self.away.insert(room.to_string(), until);
        }
        let members = self.rooms.remove(room).unwrap_or_default();
        for m in &members {
            self.room_of.remove(&m.info.id);
            m.outbox.send_away();
        }
        tracing::info!(%room, members = members.len(), "a presenter took the server away from the room");
        members.len()
    }

    /// Ends `room`'s outage now; returns whether it was away.
    pub fn bring_back(&mut self, room: &str, now: Instant) -> bool {
        self.away.retain(|_, t| *t > now);
        let was = self.away.remove(room).is_some();
        if was {
            tracing::info!(%room, "a presenter brought the server back to the room early");
        }
        was
    }

    /// How long `room` is still away, if a presenter took the server away from it.
    pub fn away_for(&self, room: &str, now: Instant) -> Option<std::time::Duration> {
        self.away
            .get(room)
            .filter(|t| **t > now)
            .map(|t| t.duration_since(now))
    }

    /// Adds a member to `room` (a name the caller has validated) under a fresh id.
    ///
    /// Queues `welcome` (the existing members and `ice_servers`) for the newcomer and
    /// `peer_joined` for everyone else, in that order.
    pub fn join(
        &mut self,
        room: &str,
        kind: PeerKind,
        name: String,
        presenter: bool,
        outbox: Outbox,
        ice_servers: &[IceServer],
    ) -> Result<PeerId, JoinError> {
        let id = self.fresh_id();
        self.enter(room, id, (kind, name, presenter, None), outbox, ice_servers)
    }

    /// Adds a member to `room` under `id`, which a resume token proved is its own (the
    /// caller checked the token): as [`Registry::join`] otherwise. Refused while a
    /// connected member holds the id, here or in any room.
    /// `member` is its kind, name, presenter bit and the colour it had (kept if no
    /// member of the room has it now).
    pub fn rejoin(
        &mut self,
        room: &str,
        id: PeerId,
        member: Entering,
        outbox: Outbox,
        ice_servers: &[IceServer],
    ) -> Result<PeerId, JoinError> {
        if self.room_of.contains_key(&id) {
            return Err(JoinError::IdInUse);
        }
        self.enter(room, id, member, outbox, ice_servers)
    }

    fn enter(
        &mut self,
        room: &str,
        id: PeerId,
        (kind, name, presenter, colour_was): Entering,
        outbox: Outbox,
        ice_servers: &[IceServer],
    ) -> Result<PeerId, JoinError> {
        let members_now = self.rooms.get(room).map_or(0, Vec::len);
        if members_now == 0 && self.rooms.len() >= self.limits.rooms_max {
            return Err(JoinError::TooManyRooms);
        }
        if members_now >= self.limits.peers_per_room_max {
            return Err(JoinError::RoomFull);
        }

        let members = self.rooms.entry(room.to_string()).or_default();
        let colour = free_colour(members, colour_was);
        let info = PeerInfo {
            id: id.clone(),
            kind,
            name,
            presenter,
            colour,
        };
        let mut failed = Vec::new();

        let welcome = encode(ServerMsg::Welcome {
            id: id.clone(),
            room: room.to_string(),
            peers: members.iter().map(|m| m.info.clone()).collect(),
            ice_servers: ice_servers.to_vec(),
            presenter,
            limits: self.limits.rate,
            colour,
        });
        deliver(&id, &outbox, welcome, &mut failed);

        let joined = encode(ServerMsg::PeerJoined { peer: info.clone() });
        for m in members.iter() {
            deliver(&m.info.id, &m.outbox, joined.clone(), &mut failed);
        }
        let others = members.len() as u64;

        members.push(Member { info, outbox });
        self.room_of.insert(id.clone(), room.to_string());
        self.sent("welcome", 1);
        self.sent("peer_joined", others);
        self.remove_all(failed);
        Ok(id)
    }

    /// Removes a member whose connection ended and tells the rest of its room.
    /// Returns whether it was still a member (it may have been dropped already).
    pub fn leave(&mut self, id: &PeerId) -> bool {
        let was_member = self.room_of.contains_key(id);
        self.remove_all(vec![(id.clone(), Removal::Left)]);
        was_member
    }

    /// Relays `data` from `from` to `to`, if both are in the same room.
    pub fn relay(
        &mut self,
        from: &PeerId,
        to: &PeerId,
        data: SignalData,
    ) -> Result<(), RelayError> {
        let room = self.room_of.get(from).ok_or(RelayError::SenderGone)?;
        // Look only inside the sender's room, so the answer is the same whether `to`
        // exists elsewhere or nowhere.
        let target = self
            .rooms
            .get(room)
            .and_then(|members| members.iter().find(|m| &m.info.id == to))
            .ok_or(RelayError::NoSuchPeer)?;
        let frame = encode(ServerMsg::Signal {
            from: from.clone(),
            data,
        });
        let mut failed = Vec::new();
        deliver(&target.info.id, &target.outbox, frame, &mut failed);
        self.sent("signal", 1);
        self.remove_all(failed);
        Ok(())
    }

    /// Tells every other member of `from`'s room that `from` asks for a revive; returns
    /// how many were told.
    pub fn revive(&mut self, from: &PeerId) -> Result<usize, RelayError> {
        let room = self.room_of.get(from).ok_or(RelayError::SenderGone)?;
        let frame = encode(ServerMsg::Revive { from: from.clone() });
        let mut failed = Vec::new();
        let mut told = 0;
        for m in self.rooms.get(room).into_iter().flatten() {
            if &m.info.id != from {
                deliver(&m.info.id, &m.outbox, frame.clone(), &mut failed);
                told += 1;
            }
        }
        self.sent("revive", told as u64);
        self.remove_all(failed);
        Ok(told)
    }

    /// Up to `limit` rooms with their members, by room name, starting after `after`;
    /// and whether more follow. The lock is held for one page only.
    pub fn rooms_page(&self, after: Option<&str>, limit: usize) -> (Vec<RoomView>, bool) {
        use std::ops::Bound;
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        let mut range =
            self.rooms
                .range::<str, _>((start, Bound::Unbounded))
                .map(|(name, members)| RoomView {
                    name: name.clone(),
                    peers: members.iter().map(|m| m.info.clone()).collect(),
                });
        let page: Vec<RoomView> = range.by_ref().take(limit).collect();
        let more = range.next().is_some();
        (page, more)
    }

    /// Every room and its members, by room name.
    #[cfg(test)]
    pub fn rooms(&self) -> Vec<RoomView> {
        self.rooms_page(None, usize::MAX).0
    }

    /// Rooms and members now.
    pub fn counts(&self) -> (usize, usize) {
        (self.rooms.len(), self.room_of.len())
    }

    /// Frames queued for members since start, by type.
    pub fn frames_out(&self) -> &BTreeMap<&'static str, u64> {
        &self.frames_out
    }

    fn sent(&mut self, kind: &'static str, n: u64) {
        if n > 0 {
            *self.frames_out.entry(kind).or_default() += n;
        }
    }

    /// Members dropped for not keeping up, since start.
    pub fn slow_dropped(&self) -> u64 {
        self.slow_dropped
    }

    /// 16 lowercase hex digits, unused on this server. 64 random bits make a clash
    /// vanishingly rare; the loop makes it impossible.
    fn fresh_id(&self) -> PeerId {
        let mut rng = rand::rng();
        loop {
            let id = PeerId(format!("{:016x}", rng.random::<u64>()));
            if !self.room_of.contains_key(&id) {
                return id;
            }
        }
    }

    /// Removes each listed member still present, announcing `peer_left` to its room; a
    /// member that cannot take the announcement joins the list.
    fn remove_all(&mut self, mut todo: Vec<(PeerId, Removal)>) {
        while let Some((id, why)) = todo.pop() {
            // Already gone: listed twice, or left before it could be dropped.
            let Some(room) = self.room_of.remove(&id) else {
                continue;
            };
            let Some(members) = self.rooms.get_mut(&room) else {
                continue;
            };
            let Some(pos) = members.iter().position(|m| m.info.id == id) else {
                continue;
            };
            let gone = members.remove(pos);
            match why {
                Removal::Left => tracing::info!(%room, %id, "peer left"),
                Removal::Slow => {
                    self.slow_dropped += 1;
                    tracing::warn!(
                        %room, %id, slow_dropped = self.slow_dropped,
                        "dropping a client that does not read its socket fast enough"
                    );
                }
                Removal::Dead => tracing::debug!(%room, %id, "dropping a closed connection"),
            }
            if why != Removal::Left {
                gone.outbox.kick();
            }

            let left = encode(ServerMsg::PeerLeft { id });
            for m in members.iter() {
                deliver(&m.info.id, &m.outbox, left.clone(), &mut todo);
            }
            let told = members.len() as u64;
            if members.is_empty() {
                self.rooms.remove(&room);
            }
            self.sent("peer_left", told);
        }
    }
}

/// What a member brings to a room: its kind, its name, whether it holds the presenter
/// key, and the colour it had before (a resume), if any.
pub type Entering = (PeerKind, String, bool, Option<u8>);

/// The colour for a member entering a room: the one it had if no member has it now,
/// else the lowest no member has. With at most 256 members a room always has one free
/// (a room is capped well below that); past the page's palette, the page tells members
/// apart by a pattern.
fn free_colour(members: &[Member], had: Option<u8>) -> u8 {
    let taken = |c: u8| members.iter().any(|m| m.info.colour == c);
    if let Some(c) = had.filter(|c| !taken(*c)) {
        return c;
    }
    (0..=u8::MAX).find(|c| !taken(*c)).unwrap_or(u8::MAX)
}

/// Queues one frame, noting the member for removal if it cannot take it.
fn deliver(id: &PeerId, outbox: &Outbox, frame: Utf8Bytes, failed: &mut Vec<(PeerId, Removal)>) {
    match outbox.push_text(frame) {
        Ok(()) => {}
        Err(Undeliverable::Full) => failed.push((id.clone(), Removal::Slow)),
        Err(Undeliverable::Closed) => failed.push((id.clone(), Removal::Dead)),
    }
}

/// Encodes once; the frame is then shared (not copied) by every recipient's queue.
fn encode(msg: ServerMsg) -> Utf8Bytes {
    Utf8Bytes::from(encode_server(msg))
}

#[cfg(test)]
mod tests {
    use axum::extract::ws::Message;
    use node_core::signal::decode_server;
    use tokio::sync::mpsc;

    use super::*;

    const LIMITS: Limits = Limits {
        peers_per_room_max: 3,
        rooms_max: 2,
        rate: None,
    };

    /// A member's view from outside: its queue's receiving end.
    struct Client {
        outbox: Outbox,
        rx: mpsc::Receiver<Message>,
    }

    impl Client {
        fn new(capacity: usize) -> Self {
            let (outbox, rx) = Outbox::new(capacity);
            Client { outbox, rx }
        }

        /// Everything queued so far.
        fn drain(&mut self) -> Vec<ServerMsg> {
            let mut out = Vec::new();
            while let Ok(msg) = self.rx.try_recv() {
                match msg {
                    Message::Text(t) => out.push(decode_server(&t).expect("server frame decodes")),
                    other => panic!("unexpected frame {other:?}"),
                }
            }
            out
        }
    }

    fn join(reg: &mut Registry, room: &str, client: &Client) -> Result<PeerId, JoinError> {
        reg.join(
            room,
            PeerKind::Native,
            "n".into(),
            false,
            client.outbox.clone(),
            &[],
        )
    }

    fn offer() -> SignalData {
        SignalData::Offer { sdp: "v=0".into() }
    }

    fn colour_of(c: &mut Client) -> u8 {
        match c.drain().first() {
            Some(ServerMsg::Welcome { colour, .. }) => *colour,
            other => panic!("{other:?}"),
        }
    }

    /// Live members of a room never share a colour; a member that comes back gets its
    /// colour again if it is still free, and the lowest free one otherwise.
    #[test]
    fn members_get_the_lowest_free_colour_and_keep_it_when_they_resume() {
        let mut reg = Registry::new(Limits {
            peers_per_room_max: 8,
            ..LIMITS
        });
        let clients: Vec<Client> = (0..4).map(|_| Client::new(32)).collect();
        let mut ids = Vec::new();
        for c in &clients {
            ids.push(join(&mut reg, "r", c).unwrap());
        }
        let mut clients = clients;
        let colours: Vec<u8> = clients.iter_mut().map(colour_of).collect();
        assert_eq!(colours, [0, 1, 2, 3]);
        // Another room counts apart.
        let mut other = Client::new(8);
        join(&mut reg, "s", &other).unwrap();
        assert_eq!(colour_of(&mut other), 0);
        // Slot 1 leaves: a newcomer takes it.
        reg.leave(&ids[1]);
        let mut newcomer = Client::new(8);
        join(&mut reg, "r", &newcomer).unwrap();
        assert_eq!(colour_of(&mut newcomer), 1);
        // Slot 2 leaves and resumes asking for its colour: it gets it back.
        reg.leave(&ids[2]);
        let mut back = Client::new(8);
        let member = (PeerKind::Native, "n".to_string(), false, Some(2));
        reg.rejoin("r", ids[2].clone(), member, back.outbox.clone(), &[])
            .unwrap();
        assert_eq!(colour_of(&mut back), 2);
        // Slot 3 leaves and resumes asking for 0, which is taken: the lowest free, 3.
        reg.leave(&ids[3]);
        let mut late = Client::new(8);
        let member = (PeerKind::Native, "n".to_string(), false, Some(0));
        reg.rejoin("r", ids[3].clone(), member, late.outbox.clone(), &[])
            .unwrap();
        assert_eq!(colour_of(&mut late), 3);
        // The room shows every member with its colour, all different.
        let room = reg.rooms().into_iter().find(|r| r.name == "r").unwrap();
        let mut seen: Vec<u8> = room.peers.iter().map(|p| p.colour).collect();
        seen.sort_unstable();
        assert_eq!(seen, [0, 1, 2, 3]);
    }

    #[test]
    fn join_welcomes_and_announces() {
        let mut reg = Registry::new(LIMITS);
        let (mut a, mut b) = (Client::new(8), Client::new(8));
        let ice = [IceServer {
            urls: vec!["stun:127.0.0.1:3478".into()],
            username: None,
            credential: None,
        }];
        let a_id = reg
            .join(
                "r",
                PeerKind::Browser,
                "ann".into(),
                false,
                a.outbox.clone(),
                &ice,
            )
            .unwrap();
        assert_eq!(a_id.as_str().len(), 16);
        assert!(
            a_id.as_str()
                .bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(
            a.drain(),
            vec![ServerMsg::Welcome {
                id: a_id.clone(),
                room: "r".into(),
                peers: vec![],
                ice_servers: ice.to_vec(),
                presenter: false,
                limits: None,
                colour: 0,
            }]
        );

        let b_id = join(&mut reg, "r", &b).unwrap();
        assert_ne!(a_id, b_id);
        match b.drain().as_slice() {
            [ServerMsg::Welcome { id, peers, .. }] => {
                assert_eq!(id, &b_id);
                assert_eq!(peers.len(), 1);
                assert_eq!(peers[0].id, a_id);
                assert_eq!(peers[0].name, "ann");
                assert_eq!(peers[0].kind, PeerKind::Browser);
            }
            other => panic!("{other:?}"),
        }
        match a.drain().as_slice() {
            [ServerMsg::PeerJoined { peer }] => assert_eq!(peer.id, b_id),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn relay_stays_inside_the_room() {
        let mut reg = Registry::new(LIMITS);
        let (mut a, mut b, mut c) = (Client::new(8), Client::new(8), Client::new(8));
        let a_id = join(&mut reg, "x", &a).unwrap();
        let b_id = join(&mut reg, "x", &b).unwrap();
        let c_id = join(&mut reg, "y", &c).unwrap();
        a.drain();
        b.drain();
        c.drain();

        assert_eq!(reg.relay(&a_id, &b_id, offer()), Ok(()));
        assert_eq!(
            b.drain(),
            vec![ServerMsg::Signal {
                from: a_id.clone(),
                data: offer()
            }]
        );
        assert_eq!(
            reg.relay(&a_id, &c_id, offer()),
            Err(RelayError::NoSuchPeer)
        );
        assert_eq!(
            reg.relay(&a_id, &PeerId("nobody".into()), offer()),
            Err(RelayError::NoSuchPeer)
        );
        assert_eq!(
            reg.relay(&PeerId("ghost".into()), &b_id, offer()),
            Err(RelayError::SenderGone)
        );
        assert!(c.drain().is_empty());
        assert!(a.drain().is_empty());
    }

    #[test]
    fn leave_announces_and_empty_rooms_vanish() {
        let mut reg = Registry::new(LIMITS);
        let (a, mut b, mut c) = (Client::new(8), Client::new(8), Client::new(8));
        let a_id = join(&mut reg, "x", &a).unwrap();
        let b_id = join(&mut reg, "x", &b).unwrap();
        join(&mut reg, "y", &c).unwrap();
        b.drain();
        c.drain();

        assert!(reg.leave(&a_id));
        assert!(!reg.leave(&a_id), "second leave is a no-op");
        assert_eq!(b.drain(), vec![ServerMsg::PeerLeft { id: a_id }]);
        assert!(c.drain().is_empty());

        assert!(reg.leave(&b_id));
        let names: Vec<String> = reg.rooms().into_iter().map(|r| r.name).collect();
        assert_eq!(names, vec!["y".to_string()]);
    }

    #[test]
    fn limits_refuse_without_side_effects() {
        let mut reg = Registry::new(LIMITS);
        let clients: Vec<Client> = (0..6).map(|_| Client::new(8)).collect();
        for c in &clients[..3] {
            join(&mut reg, "x", c).unwrap();
        }
        assert_eq!(join(&mut reg, "x", &clients[3]), Err(JoinError::RoomFull));
        join(&mut reg, "y", &clients[4]).unwrap();
        assert_eq!(
            join(&mut reg, "z", &clients[5]),
            Err(JoinError::TooManyRooms)
        );
        let sizes: Vec<usize> = reg.rooms().iter().map(|r| r.peers.len()).collect();
        assert_eq!(sizes, vec![3, 1]);
        // A room that empties frees its slot.
        let y_id = reg.rooms()[1].peers[0].id.clone();
        reg.leave(&y_id);
        join(&mut reg, "z", &clients[5]).unwrap();
    }

    #[test]
    fn a_slow_member_is_dropped_kicked_and_announced() {
        let mut reg = Registry::new(LIMITS);
        let (mut a, slow) = (Client::new(8), Client::new(2));
        let a_id = join(&mut reg, "x", &a).unwrap();
        // welcome fills one of the slow member's two slots.
        let slow_id = join(&mut reg, "x", &slow).unwrap();
        a.drain();

        assert_eq!(reg.relay(&a_id, &slow_id, offer()), Ok(()));
        assert_eq!(reg.slow_dropped(), 0);
        assert_eq!(reg.relay(&a_id, &slow_id, offer()), Ok(()));
        assert_eq!(reg.slow_dropped(), 1);
        assert_eq!(
            a.drain(),
            vec![ServerMsg::PeerLeft {
                id: slow_id.clone()
            }]
        );
        assert_eq!(
            reg.relay(&a_id, &slow_id, offer()),
            Err(RelayError::NoSuchPeer)
        );
        assert!(!reg.leave(&slow_id), "already removed");

        let kicked = futures_util::FutureExt::now_or_never(slow.outbox.kicked());
        assert!(kicked.is_some(), "slow member was not kicked");
    }

    #[test]
    fn removal_cascades_through_full_queues() {
        let mut reg = Registry::new(Limits {
            peers_per_room_max: 8,
            rooms_max: 8,
            rate: None,
        });
        let a = Client::new(64);
        // b has room for its welcome and c's peer_joined; c only for its welcome.
        let (mut b, mut c) = (Client::new(2), Client::new(1));
        let a_id = join(&mut reg, "x", &a).unwrap();
        let b_id = join(&mut reg, "x", &b).unwrap();
        let c_id = join(&mut reg, "x", &c).unwrap();
        assert_eq!(reg.slow_dropped(), 0);

        // peer_left(a) overflows b; peer_left(b) then overflows c.
        assert!(reg.leave(&a_id));
        assert_eq!(reg.slow_dropped(), 2);
        assert!(reg.rooms().is_empty());
        assert!(!reg.leave(&b_id) && !reg.leave(&c_id));
        assert_eq!(b.drain().len(), 2);
        assert_eq!(c.drain().len(), 1);
    }

    #[test]
    fn a_dead_connection_is_removed_without_counting_as_slow() {
        let mut reg = Registry::new(LIMITS);
        let mut a = Client::new(8);
        let b = Client::new(8);
        let a_id = join(&mut reg, "x", &a).unwrap();
        let b_id = join(&mut reg, "x", &b).unwrap();
        a.drain();
        drop(b.rx);
        assert_eq!(reg.relay(&a_id, &b_id, offer()), Ok(()));
        assert_eq!(reg.slow_dropped(), 0);
        assert_eq!(a.drain(), vec![ServerMsg::PeerLeft { id: b_id }]);
    }
}
