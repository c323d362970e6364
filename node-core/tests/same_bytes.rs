//! The same checks on both targets: natively under `cargo test`, and on wasm32 in Node
//! under wasm-bindgen-test (`cargo test -p node-core --target wasm32-unknown-unknown`).
//! The expected bytes are written out, so a platform that encodes or decides
//! differently fails the build.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use node_core::membership::{
    LeftReason, Membership, MembershipConfig, MeshEvent, MeshOutput, Micros,
};
use node_core::signal::{self, ClientMsg, PeerId, PeerInfo, PeerKind};
use node_core::wire::{self, WireMsg};

#[test]
fn wire_encoding_is_identical_on_every_target() {
    let hello = WireMsg::Hello {
        id: PeerId("ab12".into()),
        kind: PeerKind::Browser,
        name: "tab".into(),
        cores: 300,
    };
    assert_eq!(
        wire::encode(&hello),
        [
            1, 0, 4, b'a', b'b', b'1', b'2', 0, 3, b't', b'a', b'b', 172, 2
        ]
    );
    assert_eq!(wire::encode(&WireMsg::Ping { seq: 128 }), [1, 1, 128, 1]);
    assert_eq!(
        wire::encode(&WireMsg::BulkAck {
            seq: 1,
            bytes: 1 << 20
        }),
        [1, 5, 1, 128, 128, 64]
    );
    assert_eq!(wire::decode(&wire::encode(&hello)), Ok(hello));
    assert!(wire::decode(&[1, 9, 9]).is_err());
}

#[test]
fn signaling_json_is_identical_on_every_target() {
    let join = signal::encode_client(ClientMsg::Join {
        room: "demo".into(),
        kind: PeerKind::Native,
        name: "n".into(),
        presenter_key: None,
    });
    assert_eq!(
        join,
        r#"{"v":1,"type":"join","room":"demo","kind":"native","name":"n"}"#
    );
    assert!(signal::decode_client(r#"{"v":2,"type":"join"}"#).is_err());
}

#[test]
fn failure_detection_decides_the_same_on_every_target() {
    let me = PeerInfo {
        id: PeerId("me".into()),
        kind: PeerKind::Browser,
        name: "me".into(),
        presenter: false,
        colour: 0,
    };
    let peer = PeerId("p".into());
    let mut m = Membership::new(me, 4, MembershipConfig::default());
    m.handle_announced(
        Micros(0),
        PeerInfo {
            id: peer.clone(),
            kind: PeerKind::Native,
            name: "p".into(),
            presenter: false,
            colour: 0,
        },
    );
    m.handle_channel_open(Micros(1_000), &peer);
    m.handle_message(
        Micros(2_000),
        &peer,
        &wire::encode(&WireMsg::Hello {
            id: peer.clone(),
            kind: PeerKind::Native,
            name: "p".into(),
            cores: 2,
        }),
    );
    let mut left_at = None;
    for _ in 0..64 {
        let Some(t) = m.poll_timeout() else { break };
        m.handle_timeout(t);
        while let Some(out) = m.poll_output() {
            if let MeshOutput::Event(MeshEvent::PeerLeft {
                reason: LeftReason::Heartbeat,
                ..
            }) = out
            {
                left_at = Some(t);
            }
        }
        if left_at.is_some() {
            break;
        }
    }
    assert_eq!(left_at, Some(Micros(1_502_000)));
}

/// Every node must rank members the same way, or nodes would disagree about who
/// computes and holds what: the rendezvous hash is pinned to known values (splitmix64's
/// finaliser, computed independently), and so is a ranking built incrementally.
#[test]
fn placement_is_identical_on_every_target() {
    use node_core::engine::placement::{Ranking, mix64, score};
    use node_core::job::{JobId, NodeId, TaskId};
    assert_eq!(mix64(1), 0x5692_161d_100b_05e5);
    assert_eq!(mix64(0x0123_4567_89ab_cdef), 0xb2c0_58e4_ebb5_112c);
    assert_eq!(
        score(JobId(42), TaskId(7), NodeId(3)),
        0xa66e_3245_747b_26a7
    );
    let expected: [[u64; 6]; 4] = [
        [6, 3, 1, 2, 5, 4],
        [1, 4, 6, 2, 5, 3],
        [3, 6, 5, 1, 4, 2],
        [4, 1, 3, 6, 2, 5],
    ];
    // Built from two members, then the others join one by one, and one leaves and
    // comes back: the same top 4 as ranking all six at once.
    let all: Vec<NodeId> = (1..=6).map(NodeId).collect();
    let mut r = Ranking::new(JobId(42), 4, 4, &all[..2]);
    for n in &all[2..] {
        r.add(*n);
    }
    let without_6: Vec<NodeId> = all[..5].to_vec();
    r.remove(NodeId(6), &without_6);
    for (t, want) in expected.iter().enumerate() {
        let got: Vec<u64> = r.top(TaskId(t as u32)).map(|n| n.0).collect();
        let want_without_6: Vec<u64> = want.iter().copied().filter(|n| *n != 6).take(4).collect();
        assert_eq!(got, want_without_6, "task {t} without node 6");
    }
    r.add(NodeId(6));
    for (t, want) in expected.iter().enumerate() {
        let got: Vec<u64> = r.top(TaskId(t as u32)).map(|n| n.0).collect();
        assert_eq!(got, want[..4], "task {t}");
    }
}
