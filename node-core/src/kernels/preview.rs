//! Previews: an image tile at a quarter of its width and height, for a tab that only
//! shows a job (a phone draws a 2,048-pixel picture at 400 pixels). A preview is 1/16 of
//! its tile's bytes.
//!
//! **What.** The preview of a tile `w` × `h` (a colour index per pixel, row-major, as
//! its task output) is
//! `⌈w / STEP⌉` × `⌈h / STEP⌉` pixels: preview pixel (i, j) is the tile's pixel
//! (i·STEP, j·STEP), copied, not averaged. It is a function of the tile's bytes alone
//! (with the tile's size from the parameters), so every holder of a tile makes the same
//! preview, and [`expand`] draws it back at full size with each pixel repeated over its
//! STEP × STEP block: at the sampled pixels it equals the tile exactly.
//!
//! **How it is trusted.** The engine names an image result by [`crate::job::result_hash`],
//! which seals the hash of the tile's bytes with the hash of its preview. A quorum on
//! that hash therefore covers the preview too: a holder answers a preview request with the
//! preview and the tile's own hash, and the asker checks that the two seal to the
//! validated hash. Bytes of the wrong length (a malformed result) have an empty preview.

use super::mandelbrot;

/// Pixels of the tile per preview pixel, along each side.
pub const STEP: u32 = 4;

/// The size of task `task`'s preview, `(width, height)` in pixels; `None` past the last
/// task.
pub fn size(params: &mandelbrot::Params, task: u32) -> Option<(u32, u32)> {
    let (_, _, w, h) = params.tile_rect(task)?;
    Some((w.div_ceil(STEP), h.div_ceil(STEP)))
}

/// Upper bound on one preview's bytes in a job.
pub fn len_max(params: &mandelbrot::Params) -> usize {
    let w = params.width.div_ceil(params.tiles_x.max(1)).div_ceil(STEP) as usize;
    let h = params.height.div_ceil(params.tiles_y.max(1)).div_ceil(STEP) as usize;
    w.saturating_mul(h)
}

/// The preview of task `task`'s tile `tile` (colour indices): empty when `tile` is not
/// exactly the tile's size, or `task` is past the last.
pub fn make(params: &mandelbrot::Params, task: u32, tile: &[u8]) -> Vec<u8> {
    let Some((_, _, w, h)) = params.tile_rect(task) else {
        return Vec::new();
    };
    let (w, h) = (w as usize, h as usize);
    if tile.len() != w * h {
        return Vec::new();
    }
    let step = STEP as usize;
    let mut out = Vec::with_capacity(w.div_ceil(step) * h.div_ceil(step));
    for y in (0..h).step_by(step) {
        out.extend(tile[y * w..(y + 1) * w].iter().step_by(step));
    }
    out
}

/// A preview drawn at its tile's full size (colour indices, row-major, as the tile's
/// own): each preview pixel fills
/// its STEP × STEP block (cut at the tile's right and bottom edges). `None` when the
/// preview is not exactly its size or `task` is past the last.
pub fn expand(params: &mandelbrot::Params, task: u32, preview: &[u8]) -> Option<Vec<u8>> {
    let (_, _, w, h) = params.tile_rect(task)?;
    let (pw, ph) = size(params, task)?;
    if preview.len() != (pw * ph) as usize {
        return None;
    }
    let (w, h, pw, step) = (w as usize, h as usize, pw as usize, STEP as usize);
    let mut out = Vec::with_capacity(w * h);
    for y in 0..h {
        let src = &preview[(y / step) * pw..(y / step + 1) * pw];
        out.extend((0..w).map(|x| src[x / step]));
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernel;

    fn params(width: u32, height: u32, tiles_x: u32, tiles_y: u32) -> mandelbrot::Params {
        mandelbrot::Params {
            width,
            height,
            tiles_x,
            tiles_y,
            max_iter: 60,
            ..mandelbrot::Params::default()
        }
    }

    /// Every tile of images whose tiles are not multiples of STEP: the preview has the
    /// stated size, and expanded it equals the tile at every sampled pixel and repeats
    /// that pixel over its block.
    #[test]
    fn previews_sample_every_step_th_pixel_and_expand_back() {
        for p in [
            params(64, 48, 2, 2),
            params(37, 23, 3, 2),
            params(5, 3, 1, 1),
        ] {
            let kernel = Kernel::Mandelbrot(p.clone());
            for task in 0..kernel.task_count() {
                let mut tile = Vec::new();
                kernel.run_task(task, &mut tile).unwrap();
                let preview = make(&p, task, &tile);
                let (pw, ph) = size(&p, task).unwrap();
                assert_eq!(preview.len(), (pw * ph) as usize);
                assert!(preview.len() <= len_max(&p));
                let full = expand(&p, task, &preview).unwrap();
                assert_eq!(full.len(), tile.len());
                let (_, _, w, _) = p.tile_rect(task).unwrap();
                let w = w as usize;
                for (i, px) in full.iter().enumerate() {
                    let (x, y) = (i % w, i / w);
                    let s = STEP as usize;
                    let at = (y / s * s) * w + x / s * s;
                    assert_eq!(*px, tile[at], "task {task} pixel ({x}, {y})");
                }
            }
        }
    }

    #[test]
    fn bytes_of_the_wrong_size_have_no_preview() {
        let p = params(64, 48, 2, 2);
        let mut tile = Vec::new();
        Kernel::Mandelbrot(p.clone())
            .run_task(0, &mut tile)
            .unwrap();
        assert!(make(&p, 0, &tile[..tile.len() - 1]).is_empty());
        assert!(make(&p, 4, &tile).is_empty());
        let preview = make(&p, 0, &tile);
        assert_eq!(expand(&p, 0, &preview[1..]), None);
        assert_eq!(expand(&p, 9, &preview), None);
    }
}
