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
            5, 0, 4, b'a', b'b', b'1', b'2', 0, 3, b't', b'a', b'b', 172, 2
        ]
    );
    assert_eq!(wire::encode(&WireMsg::Ping { seq: 128 }), [5, 1, 128, 1]);
    assert_eq!(
        wire::encode(&WireMsg::BulkAck {
            seq: 1,
            bytes: 1 << 20
        }),
        [5, 5, 1, 128, 128, 64]
    );
    assert_eq!(
        wire::encode(&WireMsg::Read { bytes: 1 << 20 }),
        [5, 12, 128, 128, 64]
    );
    assert_eq!(wire::decode(&wire::encode(&hello)), Ok(hello));
    assert!(wire::decode(&[5, 9, 9]).is_err());
    assert!(wire::decode(&[4, 1, 128, 1]).is_err());
}

/// A result, as a payload message: a 64×64 Mandelbrot tile, or task 0 of `kernel`.
fn payload_of(kernel: &node_core::kernels::Kernel) -> WireMsg {
    use node_core::job::{JobId, TaskId, result_hash};
    use node_core::wire::EngineMsg;
    let mut out = Vec::new();
    kernel.run_task(0, &mut out).unwrap();
    WireMsg::Engine(EngineMsg::Payload {
        job: JobId(1),
        task: TaskId(0),
        hash: result_hash(kernel, TaskId(0), &out),
        payload: out,
    })
}

/// What a peer does with a message it received whole: decode, and open if packed.
fn receive(bytes: &[u8]) -> WireMsg {
    match wire::decode_reassembled(bytes).unwrap() {
        WireMsg::Packed { len, data } => wire::unpack(len, &data).unwrap(),
        plain => plain,
    }
}

/// Packing changes what crosses the wire, never what is hashed or assembled: every
/// kernel's result opens to exactly itself on every target, and a result packed
/// natively (LZ4's choices may differ between targets) opens in wasm to the result
/// computed there.
#[test]
fn packed_results_open_to_the_same_result_on_every_target() {
    use node_core::kernels::{Kernel, julia, mandelbrot, monte_carlo, primes};
    let image = mandelbrot::Params {
        width: 128,
        height: 128,
        max_iter: 200,
        tiles_x: 1,
        tiles_y: 1,
        ..mandelbrot::Params::default()
    };
    let kernels = [
        (Kernel::Mandelbrot(image.clone()), true),
        (
            Kernel::Julia(julia::Params {
                image,
                ..julia::Params::default()
            }),
            true,
        ),
        (
            Kernel::Primes(primes::Params {
                n: 100_000,
                ranges: 1,
            }),
            false,
        ),
        (
            Kernel::MonteCarloPi(monte_carlo::Params {
                samples_per_task: 1000,
                tasks: 1,
                seed: 1,
            }),
            false,
        ),
    ];
    for (kernel, packs) in &kernels {
        let msg = payload_of(kernel);
        let sent = wire::pack(msg.clone());
        // The images travel packed, the counts (a few bytes) as they are.
        assert_eq!(
            matches!(sent, WireMsg::Packed { .. }),
            *packs,
            "{}",
            kernel.name()
        );
        assert_eq!(receive(&wire::encode(&sent)), msg, "{}", kernel.name());
    }
    // Written natively by `wire::encode(&wire::pack(payload_of(&tile)))`.
    let tile = Kernel::Mandelbrot(mandelbrot::Params {
        width: 64,
        height: 64,
        max_iter: 100,
        tiles_x: 1,
        tiles_y: 1,
        ..mandelbrot::Params::default()
    });
    let native: &[u8] = include_bytes!("data/packed_tile.bin");
    assert!(matches!(wire::decode(native), Ok(WireMsg::Packed { .. })));
    assert_eq!(receive(native), payload_of(&tile));
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
