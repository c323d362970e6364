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
