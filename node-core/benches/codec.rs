//! Which codec packs results on the wire (`cargo xtask bench codec`): every tile of
//! the scale benchmark's Mandelbrot job (2048², 1000 iterations, 16×16 tiles) and of
//! the default Julia job, compressed by LZ4 (`lz4_flex`, what `wire::pack` uses) and by
//! DEFLATE (`miniz_oxide`) at levels 1 and 6: bytes, ratio, and the time to compress
//! and to decompress them all on one core. Each decompression is checked against the
//! tile. Asserts nothing else.
use std::time::Instant;

use node_core::kernels::{Kernel, julia, mandelbrot};

fn tiles(k: &Kernel) -> Vec<Vec<u8>> {
    (0..k.task_count())
        .map(|t| {
            let mut out = Vec::new();
            k.run_task(t, &mut out).unwrap();
            out
        })
        .collect()
}

fn main() {
    let m = Kernel::Mandelbrot(mandelbrot::Params {
        width: 2048,
        height: 2048,
        tiles_x: 16,
        tiles_y: 16,
        ..Default::default()
    });
    let j = Kernel::Julia(julia::Params::default());
    for (name, k) in [("mandelbrot 2048² 16x16", &m), ("julia default", &j)] {
        let ts = tiles(k);
        let raw: usize = ts.iter().map(Vec::len).sum();
        println!("{name}: {} tiles, {raw} bytes", ts.len());
        type Enc = fn(&[u8]) -> Vec<u8>;
        type Dec = fn(&[u8], usize) -> Vec<u8>;
        let codecs: Vec<(&str, Enc, Dec)> = vec![
            (
                "lz4_flex",
                |b| lz4_flex::block::compress(b),
                |c, n| lz4_flex::block::decompress(c, n).unwrap(),
            ),
            (
                "miniz 1",
                |b| miniz_oxide::deflate::compress_to_vec(b, 1),
                |c, _| miniz_oxide::inflate::decompress_to_vec(c).unwrap(),
            ),
            (
                "miniz 6",
                |b| miniz_oxide::deflate::compress_to_vec(b, 6),
                |c, _| miniz_oxide::inflate::decompress_to_vec(c).unwrap(),
            ),
        ];
        for (cn, enc, dec) in codecs {
            let t = Instant::now();
            let packed: Vec<Vec<u8>> = ts.iter().map(|b| enc(b)).collect();
            let et = t.elapsed().as_secs_f64() * 1e3;
            let t = Instant::now();
            for (p, b) in packed.iter().zip(&ts) {
                assert_eq!(&dec(p, b.len()), b);
            }
            let dt = t.elapsed().as_secs_f64() * 1e3;
            let c: usize = packed.iter().map(Vec::len).sum();
            println!(
                "  {cn:<10} {c:>9} bytes ({:.1}×)  compress {et:.1} ms  decompress {dt:.1} ms",
                raw as f64 / c as f64
            );
        }
    }
}
