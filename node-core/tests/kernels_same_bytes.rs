//! The kernels give the same bytes on every target: natively under `cargo test`, and on
//! wasm32 in Node under wasm-bindgen-test
//! (`cargo test -p node-core --target wasm32-unknown-unknown --test kernels_same_bytes`).
//! The expected hashes were computed once natively and written out, so a platform that
//! rounds, orders or encodes differently fails here.

#[cfg(target_arch = "wasm32")]
use wasm_bindgen_test::wasm_bindgen_test as test;

use node_core::kernels::{JobOutput, Kernel, hash64, julia, mandelbrot, monte_carlo, primes};

/// Runs every task of `job`, checks `hash64` of each task's output and of the assembled
/// output's bytes, and returns the assembled output. On a mismatch the message shows the
/// actual hashes in the form they are written here.
fn check(job: &Kernel, task_hashes: &[u64], output_hash: u64) -> JobOutput {
    assert_eq!(job.validate(), Ok(()));
    let outputs: Vec<Vec<u8>> = (0..job.task_count())
        .map(|task| {
            let mut out = Vec::new();
            job.run_task(task, &mut out).unwrap();
            out
        })
        .collect();
    let got: Vec<u64> = outputs.iter().map(|o| hash64(o)).collect();
    let refs: Vec<&[u8]> = outputs.iter().map(Vec::as_slice).collect();
    let output = job.assemble(&refs).unwrap();
    let got_output = hash64(&output.to_bytes());
    let show = |hs: &[u64]| {
        hs.iter()
            .map(|h| format!("0x{h:016x}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    assert_eq!(
        (got.as_slice(), got_output),
        (task_hashes, output_hash),
        "{}: task hashes [{}], output hash 0x{got_output:016x}",
        job.name(),
        show(&got)
    );
    assert_eq!(job.run_all().unwrap(), output);
    output
}

/// A 40 × 30 image of the square of half-side `r` around (`x`, `y`).
fn zoom(
    (x, y, r): (f64, f64, f64),
    max_iter: u32,
    (tiles_x, tiles_y): (u32, u32),
) -> mandelbrot::Params {
    mandelbrot::Params {
        x_min: x - r,
        x_max: x + r,
        y_min: y - r,
        y_max: y + r,
        width: 40,
        height: 30,
        max_iter,
        tiles_x,
        tiles_y,
    }
}

#[test]
fn hash64_is_xxh64_on_every_target() {
    assert_eq!(hash64(b""), 0xef46_db37_51d8_e999);
    assert_eq!(
        hash64(b"The quick brown fox jumps over the lazy dog"),
        0x0b24_2d36_1fda_71bc
    );
    // Many 32-byte stripes and a tail; the value is Python `xxhash.xxh64`'s.
    let bytes: Vec<u8> = (0..1000u32).map(|i| i as u8).collect();
    assert_eq!(hash64(&bytes), 0x6ef4_36b0_0eba_4078);
}

#[test]
fn mandelbrot_tiles_are_identical_on_every_target() {
    let job = Kernel::Mandelbrot(mandelbrot::Params {
        width: 96,
        height: 64,
        max_iter: 500,
        tiles_x: 3,
        tiles_y: 2,
        ..mandelbrot::Params::default()
    });
    check(
        &job,
        &[
            0x0b21e72b25f9cd97,
            0x2d4385b7d81fdf64,
            0x8a71a65e253019dc,
            0xaad9039a08b0e885,
            0xefd6466ade4d24f9,
            0x1ec20a29327deb53,
        ],
        0x618d274c498fd821,
    );
}

#[test]
fn mandelbrot_deep_zoom_is_identical_on_every_target() {
    // At this zoom pixels are ~1e-12 apart, so every last bit of rounding shows.
    let job = Kernel::Mandelbrot(zoom(
        (-0.743_643_887_037_151, 0.131_825_904_205_33, 3e-11),
        5000,
        (2, 2),
    ));
    check(
        &job,
        &[
            0x12a97059a6f66820,
            0x0c5309772418e127,
            0x3ec8ebbc29c1ae8d,
            0x53895a09eb7dee0e,
        ],
        0xb2a4bb58d4cb5915,
    );
}

#[test]
fn julia_tiles_are_identical_on_every_target() {
    // A connected set, and a zoom onto another set's boundary where pixels are ~1e-13
    // apart, so every last bit of rounding shows.
    let whole = Kernel::Julia(julia::Params {
        image: mandelbrot::Params {
            width: 80,
            height: 60,
            max_iter: 700,
            tiles_x: 2,
            tiles_y: 3,
            ..julia::Params::default().image
        },
        ..julia::Params::default()
    });
    check(
        &whole,
        &[
            0x08355af7a0153b17,
            0x96e0fad3f2dd9b7e,
            0xc9e7c91a73d72485,
            0xba4493991157f2a1,
            0x17f646aa1e53ebbb,
            0xe713b1e3cc62e874,
        ],
        0x32a6f223e8a91e6f,
    );
    let edge = Kernel::Julia(julia::Params {
        image: zoom(
            (0.160_658_295_060_485, 0.542_513_174_050_455, 3e-12),
            3000,
            (2, 1),
        ),
        c_re: 0.285,
        c_im: 0.01,
    });
    let JobOutput::Image { rgba, .. } = check(
        &edge,
        &[0xac6b4665cb18e0f7, 0x3541932d7f84b987],
        0xcd36c05c866a60dc,
    ) else {
        unreachable!()
    };
    let colours: std::collections::BTreeSet<&[u8]> = rgba.chunks(4).collect();
    assert!(colours.len() > 8, "{} colours in the zoom", colours.len());
}

#[test]
fn prime_counts_are_identical_on_every_target() {
    let job = Kernel::Primes(primes::Params {
        n: 2_000_000,
        ranges: 5,
    });
    let output = check(
        &job,
        &[
            0xe8cfba42f09ca5e3,
            0xf185db45df6e7664,
            0x777b0540f4c4734f,
            0xc451f816e8a49473,
            0xabfd5cad8c255a08,
        ],
        0x34f57eb4493fc7d3,
    );
    assert_eq!(
        output,
        JobOutput::Count {
            n: 2_000_000,
            count: 148_933
        }
    );
    // Across segments and chunks (30 · 512 Ki numbers each), where the small and the
    // larger primes cross off apart, and at the top of the range, where base primes reach
    // 10^6 and positions exceed 32 bits: the counts primesieve gives.
    let run = |kernel: Kernel, task: u32| {
        let mut out = Vec::new();
        kernel.run_task(task, &mut out).unwrap();
        u64::from_le_bytes(out[16..24].try_into().unwrap())
    };
    let pi = |n, ranges| Kernel::Primes(primes::Params { n, ranges });
    assert_eq!(run(pi(40_000_000, 1), 0), 2_433_654);
    assert_eq!(run(pi(primes::N_MAX, 1 << 16), (1 << 16) - 1), 553_032);
}

#[test]
fn monte_carlo_streams_are_identical_on_every_target() {
    let job = Kernel::MonteCarloPi(monte_carlo::Params {
        samples_per_task: 20_000,
        tasks: 4,
        seed: 7,
    });
    let output = check(
        &job,
        &[
            0xdb4bf0dc1b717ec5,
            0xabcb9d8714297463,
            0xa8f804dee4af73da,
            0xc51ac75577c0b308,
        ],
        0x1767b886361c29d6,
    );
    let JobOutput::Estimate {
        samples, inside, ..
    } = output
    else {
        panic!("not an estimate: {output:?}");
    };
    assert_eq!((samples, inside), (80_000, 62_764));
}
