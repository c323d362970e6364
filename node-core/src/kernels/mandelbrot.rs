//! Mandelbrot escape-time images, computed tile by tile.
//!
//! **What.** Pixel (px, py) of a `width` × `height` image samples the point at its
//! centre, c = cx + i·cy with
//!
//! ```text
//! dx = (x_max - x_min) / width      cx = x_min + (px + 0.5) * dx
//! dy = (y_max - y_min) / height     cy = y_max - (py + 0.5) * dy      (row 0 at the top)
//! ```
//!
//! `dx` and `dy` are computed once from the parameters, so a pixel's c is the same
//! whichever tile computes it. Its escape count n is the number of iterations of
//! z ← z² + c from z = 0 before |z|² > 4, at most `max_iter`. A pixel with
//! n = `max_iter` (taken to be in the set) is black; any other gets colour
//! `PALETTE[n % 64]`, a fixed 64-entry gradient built at compile time with integer
//! arithmetic. Alpha is always 255.
//!
//! **Tasks.** The image is cut into `tiles_x` × `tiles_y` tiles; task `t` is the tile in
//! column `t % tiles_x` and row `t / tiles_x`. Tile column `i` covers pixel columns
//! `i * width / tiles_x .. (i + 1) * width / tiles_x` (integer division), rows likewise,
//! so tiles differ in size by at most one pixel and no tile is empty.
//!
//! **Output.** A task's output is its tile's pixels, row-major, one byte each: the
//! pixel's colour index, `n % 64` into the palette, or [`BLACK`] (64) in the set; no
//! header, the geometry follows from the parameters. The tile is coloured only where it
//! is drawn: in the job's output, the whole image as RGBA [`JobOutput::Image`], and in
//! a page ([`colour_tile`]). A quarter of the bytes of RGBA: a quarter to hash, pack,
//! send, unpack and keep for every result.
//!
//! **Why it is deterministic.** Only IEEE f64 `+ - *` and `/` (for `dx`, `dy`) and
//! comparisons, in a fixed order, with no fused multiply-add and no libm call; integer
//! colouring. The escape loop runs several pixels side by side in arrays so that LLVM
//! emits SIMD (simd128 in wasm; natively the widest the CPU has, chosen at run time with
//! `pulp`: AVX-512 with 16 lanes, AVX2 with 8, else SSE2 with [`LANES`]) or at least
//! independent dependency chains, but each lane performs exactly the scalar loop's
//! operations, so it sees the same iterates (Rust never fuses `a * b + c` into a
//! multiply-add, even where the CPU has one); the step at which a lane escapes is found
//! by replaying that lane alone (see `escape_counts`). The tests check every count, at
//! every width and vector level the machine has, against the plain scalar loop, and
//! `tests/kernels_same_bytes.rs` checks the bytes on wasm32.

use serde::{Deserialize, Serialize};

use super::{Compute, JobOutput, KernelError, TASK_COUNT_MAX, invalid};

const NAME: &str = "mandelbrot";

/// Longest image side, in pixels.
pub const SIDE_MAX: u32 = 16_384;
/// Most pixels in an image: 16 Mi pixels, a 64 MiB RGBA image, about what a browser tab
/// can hold and show.
pub const PIXELS_MAX: u64 = 1 << 24;
/// Highest iteration cap. Past it the picture no longer changes at any zoom that f64 can
/// resolve, and one pixel could hold a worker for milliseconds.
pub const ITER_MAX: u32 = 1 << 20;
/// Largest |coordinate| of the viewport. The whole set lies within |c| ≤ 2; the bound
/// keeps spans, `dx` and every iterate before escape finite.
pub const COORD_ABS_MAX: f64 = 1024.0;

/// Pixels computed side by side in the escape loop. Eight lanes are four SSE2 (or wasm
/// simd128) vectors of two f64: enough independent chains to hide the latency of the
/// multiply-add chain while the state still fits the 16 vector registers. Wasm without
/// simd128 runs lanes as scalars, and there V8 spills eight lanes' state; four run
/// fastest. Any value gives the same bytes.
#[cfg(any(not(target_arch = "wasm32"), target_feature = "simd128"))]
const LANES: usize = 8;
#[cfg(all(target_arch = "wasm32", not(target_feature = "simd128")))]
const LANES: usize = 4;

/// Iterations per block of [`escape_counts`]: lanes are checked for escape once per block,
/// so longer blocks spend less on checks and more on lanes that escaped early on.
const ESCAPE_BLOCK: u32 = 8;

/// What the escape loop iterates for a pixel at point p: the Mandelbrot set starts from
/// z = 0 and adds c = p; a Julia set ([`super::julia`]) starts from z = p and adds its
/// fixed c. Either way the same loop, lanes and replay run, so both keep the same
/// guarantees.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Orbit {
    Mandelbrot,
    Julia { c_re: f64, c_im: f64 },
}

/// Parameters of a Mandelbrot job. See the module docs for how they map to pixels.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// Real part at the left edge of the image; finite, `< x_max`.
    pub x_min: f64,
    /// Real part at the right edge.
    pub x_max: f64,
    /// Imaginary part at the bottom edge; finite, `< y_max`.
    pub y_min: f64,
    /// Imaginary part at the top edge.
    pub y_max: f64,
    /// Image width in pixels, `1..=SIDE_MAX`.
    pub width: u32,
    /// Image height in pixels, `1..=SIDE_MAX`; `width * height <= PIXELS_MAX`.
    pub height: u32,
    /// Iteration cap, `1..=ITER_MAX`.
    pub max_iter: u32,
    /// Tile columns, `1..=width`.
    pub tiles_x: u32,
    /// Tile rows, `1..=height`; `tiles_x * tiles_y <= TASK_COUNT_MAX`.
    pub tiles_y: u32,
}

impl Default for Params {
    /// The whole set, 1024 × 1024 at 1000 iterations, in 8 × 8 tiles: the speed baseline.
    fn default() -> Self {
        Params {
            x_min: -2.0,
            x_max: 1.0,
            y_min: -1.5,
            y_max: 1.5,
            width: 1024,
            height: 1024,
            max_iter: 1000,
            tiles_x: 8,
            tiles_y: 8,
        }
    }
}

/// A tile's pixel rectangle, `x0..x1` × `y0..y1`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Tile {
    x0: u32,
    x1: u32,
    y0: u32,
    y1: u32,
}

impl Tile {
    fn width(self) -> usize {
        (self.x1 - self.x0) as usize
    }

    fn height(self) -> usize {
        (self.y1 - self.y0) as usize
    }
}

/// Start of part `i` of `n` equal integer parts of `len`.
fn split_at(i: u32, n: u32, len: u32) -> u32 {
    (u64::from(i) * u64::from(len) / u64::from(n)) as u32
}

impl Params {
    /// Task `task`'s tile as `(x, y, width, height)` in pixels from the top-left corner,
    /// the rectangle its output bytes fill (RGBA, row-major); `None` past the last task.
    /// Meaningful only for valid parameters.
    pub fn tile_rect(&self, task: u32) -> Option<(u32, u32, u32, u32)> {
        if task >= self.tiles_x.saturating_mul(self.tiles_y) {
            return None;
        }
        let t = self.tile(task);
        Some((t.x0, t.y0, t.x1 - t.x0, t.y1 - t.y0))
    }

    fn tile(&self, task: u32) -> Tile {
        let (tx, ty) = (task % self.tiles_x, task / self.tiles_x);
        Tile {
            x0: split_at(tx, self.tiles_x, self.width),
            x1: split_at(tx + 1, self.tiles_x, self.width),
            y0: split_at(ty, self.tiles_y, self.height),
            y1: split_at(ty + 1, self.tiles_y, self.height),
        }
    }

    /// Pixel spacing, computed in one place so that every tile maps pixels alike.
    fn spacing(&self) -> (f64, f64) {
        (
            (self.x_max - self.x_min) / f64::from(self.width),
            (self.y_max - self.y_min) / f64::from(self.height),
        )
    }

    /// Calls `f` with the escape count of every pixel of `tile`, row-major.
    ///
    /// On x86_64 the lanes run with the widest vectors the CPU has (AVX-512: 16 lanes,
    /// AVX2: 8 in 256-bit registers), chosen at run time; elsewhere with [`LANES`]. The
    /// counts are the same whatever the width: each lane is the scalar loop.
    fn for_each_count(&self, tile: Tile, orbit: Orbit, f: impl FnMut(u32)) {
        #[cfg(target_arch = "x86_64")]
        {
            if let Some(simd) = pulp::x86::V4::try_new() {
                return simd.vectorize(
                    #[inline(always)]
                    || self.counts_in_lanes::<16>(tile, orbit, f),
                );
            }
            if let Some(simd) = pulp::x86::V3::try_new() {
                return simd.vectorize(
                    #[inline(always)]
                    || self.counts_in_lanes::<8>(tile, orbit, f),
                );
            }
        }
        self.counts_in_lanes::<LANES>(tile, orbit, f);
    }

    /// [`Params::for_each_count`] with `N` lanes.
    #[inline(always)]
    fn counts_in_lanes<const N: usize>(&self, tile: Tile, orbit: Orbit, mut f: impl FnMut(u32)) {
        let (dx, dy) = self.spacing();
        let mut cr = [0.0; N];
        for py in tile.y0..tile.y1 {
            let ci = self.y_max - (f64::from(py) + 0.5) * dy;
            let mut px = tile.x0;
            while px < tile.x1 {
                let lanes = ((tile.x1 - px) as usize).min(N);
                for (lane, c) in cr.iter_mut().enumerate() {
                    // Lanes past the tile's edge repeat its last pixel; their counts
                    // are dropped.
                    let x = px + lane.min(lanes - 1) as u32;
                    *c = self.x_min + (f64::from(x) + 0.5) * dx;
                }
                let counts = match orbit {
                    Orbit::Mandelbrot => escape_counts([0.0; N], 0.0, cr, ci, self.max_iter),
                    Orbit::Julia { c_re, c_im } => {
                        escape_counts(cr, ci, [c_re; N], c_im, self.max_iter)
                    }
                };
                counts[..lanes].iter().for_each(|&n| f(n));
                px += lanes as u32;
            }
        }
    }

    /// Total escape-time iterations of the whole image: the work measure behind
    /// "iterations per second". Runs the escape loop, so it takes as long as the job.
    pub fn iterations_total(&self) -> Result<u64, KernelError> {
        self.validate()?;
        Ok(self.iterations_of(Orbit::Mandelbrot))
    }

    /// [`Params::iterations_total`] for either orbit; parameters valid.
    pub(super) fn iterations_of(&self, orbit: Orbit) -> u64 {
        let mut total = 0;
        for task in 0..self.tiles_x * self.tiles_y {
            self.for_each_count(self.tile(task), orbit, |n| total += u64::from(n));
        }
        total
    }

    /// Task `task`'s tile, after the checks `run_task` makes: valid parameters, a task
    /// in range.
    fn checked_tile(&self, task: u32) -> Result<Tile, KernelError> {
        self.validate()?;
        let task_count = self.task_count();
        if task >= task_count {
            return Err(KernelError::TaskOutOfRange { task, task_count });
        }
        Ok(self.tile(task))
    }

    /// Task `task`'s tile computed with the plain scalar loop, one pixel at a time: the
    /// same bytes as [`Kernel::run_task`](super::Kernel::run_task), slower; the baseline
    /// `cargo xtask bench kernels` measures the lanes against. Checks the parameters and
    /// the task as `run_task` does.
    pub fn run_task_scalar_loop(&self, task: u32, out: &mut Vec<u8>) -> Result<(), KernelError> {
        let tile = self.checked_tile(task)?;
        let (dx, dy) = self.spacing();
        for py in tile.y0..tile.y1 {
            let ci = self.y_max - (f64::from(py) + 0.5) * dy;
            for px in tile.x0..tile.x1 {
                let cr = self.x_min + (f64::from(px) + 0.5) * dx;
                let n = escape_count_scalar_from(0.0, 0.0, cr, ci, self.max_iter);
                out.push(index(n, self.max_iter));
            }
        }
        Ok(())
    }

    /// Task `task`'s tile computed with [`LANES`] lanes in the target's baseline vectors,
    /// never the wider ones chosen at run time: natively on x86_64 that is SSE2, two f64
    /// per vector, as wasm's simd128 has, so `cargo xtask bench kernels` compares wasm
    /// with native code of the same width. The same bytes as
    /// [`Kernel::run_task`](super::Kernel::run_task); checks as `run_task` does.
    pub fn run_task_baseline_lanes(&self, task: u32, out: &mut Vec<u8>) -> Result<(), KernelError> {
        let tile = self.checked_tile(task)?;
        out.reserve(tile.width() * tile.height());
        let max_iter = self.max_iter;
        self.counts_in_lanes::<LANES>(tile, Orbit::Mandelbrot, |n| out.push(index(n, max_iter)));
        Ok(())
    }

    /// Appends task `task`'s tile, a colour index per pixel, to `out`; parameters
    /// valid.
    pub(super) fn run_tile(&self, task: u32, orbit: Orbit, out: &mut Vec<u8>) {
        let tile = self.tile(task);
        out.reserve(tile.width() * tile.height());
        let max_iter = self.max_iter;
        self.for_each_count(tile, orbit, |n| out.push(index(n, max_iter)));
    }
}

/// Escape counts of z ← z² + c from z = `zr[lane] + i·zi`, c = `cr[lane] + i·ci`, in
/// lanes (the Mandelbrot set passes z = 0, a Julia set the same c in every lane).
///
/// Per lane this is exactly the scalar loop (see `tests::escape_count_scalar`): the same
/// operations in the same order, so the same iterates z_k. The loop runs blocks of
/// [`ESCAPE_BLOCK`] iterations that only note whether a lane's |z|² exceeded 4 at some
/// step; for a lane that did, [`escape_step`] replays that block alone, from the z saved
/// at its start, to find the exact step. A lane keeps iterating after it escapes (its z
/// may grow to inf or NaN), but its count is fixed by then and it is ignored.
#[inline(always)]
fn escape_counts<const N: usize>(
    mut zr: [f64; N],
    zi: f64,
    cr: [f64; N],
    ci: f64,
    max_iter: u32,
) -> [u32; N] {
    let mut zi = [zi; N];
    let mut count = [max_iter; N];
    let mut done = [false; N];
    let mut before = 0; // iterations completed before the current block
    while before < max_iter {
        let steps = (max_iter - before).min(ESCAPE_BLOCK);
        let (zr_start, zi_start) = (zr, zi);
        // All-ones bits in a lane once |z|² > 4 (or is NaN) at some step of the block.
        // Bit masks rather than bools keep the whole loop in SIMD registers.
        let mut escaped = [0u64; N];
        for _ in 0..steps {
            for l in 0..N {
                let zr2 = zr[l] * zr[l];
                let zi2 = zi[l] * zi[l];
                escaped[l] |= if zr2 + zi2 <= 4.0 { 0 } else { u64::MAX };
                let t = zr[l] * zi[l];
                zi[l] = t + t + ci;
                zr[l] = zr2 - zi2 + cr[l];
            }
        }
        for l in 0..N {
            if escaped[l] != 0 && !done[l] {
                count[l] = before + escape_step(zr_start[l], zi_start[l], cr[l], ci, steps);
                done[l] = true;
            }
        }
        if done.iter().all(|&d| d) {
            break;
        }
        before += steps;
    }
    count
}

/// The plain scalar escape-time loop from z = `zr + i·zi`, one pixel at a time: the
/// definition [`escape_counts`] must match (tests), and the baseline its speed is
/// measured against (`cargo xtask bench kernels`).
fn escape_count_scalar_from(mut zr: f64, mut zi: f64, cr: f64, ci: f64, max_iter: u32) -> u32 {
    let mut n = 0;
    while n < max_iter {
        let zr2 = zr * zr;
        let zi2 = zi * zi;
        if zr2 + zi2 > 4.0 {
            break;
        }
        let t = zr * zi;
        zi = t + t + ci;
        zr = zr2 - zi2 + cr;
        n += 1;
    }
    n
}

/// The first of `steps` iterations from z = `zr + i·zi` at which |z|² > 4 (or `steps`):
/// one lane of a block of [`escape_counts`], replayed with the same operations.
fn escape_step(mut zr: f64, mut zi: f64, cr: f64, ci: f64, steps: u32) -> u32 {
    for k in 0..steps {
        let zr2 = zr * zr;
        let zi2 = zi * zi;
        if zr2 + zi2 <= 4.0 {
            let t = zr * zi;
            zi = t + t + ci;
            zr = zr2 - zi2 + cr;
        } else {
            return k;
        }
    }
    steps
}

/// The colour index of a pixel in the set: black.
pub const BLACK: u8 = PALETTE.len() as u8;

/// The colour index of escape count `n`: [`BLACK`] in the set, else `n % 64`.
fn index(n: u32, max_iter: u32) -> u8 {
    if n >= max_iter {
        return BLACK;
    }
    (n % PALETTE.len() as u32) as u8
}

/// The colour (RGBA) of each index: the palette, then black; `None` past [`BLACK`].
fn rgba_of(index: u8) -> Option<[u8; 4]> {
    match PALETTE.get(usize::from(index)) {
        Some([r, g, b]) => Some([*r, *g, *b, 255]),
        None if index == BLACK => Some([0, 0, 0, 255]),
        None => None,
    }
}

/// The colour of escape count `n` (RGBA).
#[cfg(test)]
fn colour(n: u32, max_iter: u32) -> [u8; 4] {
    rgba_of(index(n, max_iter)).unwrap_or_default()
}

/// A tile's (or a preview's) colour indices as RGBA pixels, for drawing; `None` if a
/// byte is not a colour index (a malformed result).
pub fn colour_tile(indices: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(indices.len() * 4);
    for i in indices {
        out.extend_from_slice(&rgba_of(*i)?);
    }
    Some(out)
}

/// A 64-entry cyclic gradient (deep blue, light blue, white, orange, black and back),
/// linearly interpolated between stops in integer arithmetic at compile time.
const PALETTE: [[u8; 3]; 64] = palette();

const fn palette() -> [[u8; 3]; 64] {
    const STOPS: [(i32, [i32; 3]); 6] = [
        (0, [0, 7, 100]),
        (10, [32, 107, 203]),
        (27, [237, 255, 255]),
        (41, [255, 170, 0]),
        (55, [0, 2, 0]),
        (64, [0, 7, 100]),
    ];
    let mut out = [[0u8; 3]; 64];
    let mut s = 0;
    while s + 1 < STOPS.len() {
        let (p0, c0) = STOPS[s];
        let (p1, c1) = STOPS[s + 1];
        let mut i = p0;
        while i < p1 {
            let mut ch = 0;
            while ch < 3 {
                out[i as usize][ch] = (c0[ch] + (c1[ch] - c0[ch]) * (i - p0) / (p1 - p0)) as u8;
                ch += 1;
            }
            i += 1;
        }
        s += 1;
    }
    out
}

impl Compute for Params {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self) -> Result<(), KernelError> {
        let coords = [
            ("x_min", self.x_min),
            ("x_max", self.x_max),
            ("y_min", self.y_min),
            ("y_max", self.y_max),
        ];
        for (name, v) in coords {
            if !v.is_finite() || v.abs() > COORD_ABS_MAX {
                return Err(invalid(
                    NAME,
                    format!("{name} {v} is not a finite number within ±{COORD_ABS_MAX}"),
                ));
            }
        }
        if !(self.x_min < self.x_max && self.y_min < self.y_max) {
            return Err(invalid(
                NAME,
                "the viewport is empty: need x_min < x_max and y_min < y_max",
            ));
        }
        for (name, side) in [("width", self.width), ("height", self.height)] {
            if !(1..=SIDE_MAX).contains(&side) {
                return Err(invalid(
                    NAME,
                    format!("{name} {side} is not in 1..={SIDE_MAX}"),
                ));
            }
        }
        let pixels = u64::from(self.width) * u64::from(self.height);
        if pixels > PIXELS_MAX {
            return Err(invalid(
                NAME,
                format!("{pixels} pixels is more than {PIXELS_MAX}"),
            ));
        }
        if !(1..=ITER_MAX).contains(&self.max_iter) {
            return Err(invalid(
                NAME,
                format!("max_iter {} is not in 1..={ITER_MAX}", self.max_iter),
            ));
        }
        if !(1..=self.width).contains(&self.tiles_x) || !(1..=self.height).contains(&self.tiles_y) {
            return Err(invalid(
                NAME,
                format!(
                    "a {}×{} tile grid does not fit a {}×{} image (at least one pixel per tile)",
                    self.tiles_x, self.tiles_y, self.width, self.height
                ),
            ));
        }
        let tiles = u64::from(self.tiles_x) * u64::from(self.tiles_y);
        if tiles > u64::from(TASK_COUNT_MAX) {
            return Err(invalid(
                NAME,
                format!("{tiles} tiles is more than {TASK_COUNT_MAX}"),
            ));
        }
        Ok(())
    }

    fn task_count(&self) -> u32 {
        self.tiles_x.saturating_mul(self.tiles_y)
    }

    fn task_output_len_max(&self) -> usize {
        let w = self.width.div_ceil(self.tiles_x.max(1)) as usize;
        let h = self.height.div_ceil(self.tiles_y.max(1)) as usize;
        w.saturating_mul(h)
    }

    fn run_task(&self, task: u32, out: &mut Vec<u8>) {
        self.run_tile(task, Orbit::Mandelbrot, out);
    }

    fn assemble(&self, outputs: &[&[u8]]) -> Result<JobOutput, KernelError> {
        let mut canvas = Canvas::new(self);
        for (task, bytes) in outputs.iter().enumerate() {
            canvas.add(task as u32, bytes);
        }
        canvas.finish()
    }
}

/// An image assembled tile by tile, in any order: each tile is coloured into its place
/// as it is added, so that an assembler that receives its results one by one while the
/// job runs has only the last of them left to colour when the job is validated. Adding
/// every tile and finishing gives exactly [`Kernel::assemble`]'s output (which is
/// computed this way), or its error: that of the lowest malformed task.
///
/// [`Kernel::assemble`]: super::Kernel::assemble
#[derive(Debug)]
pub struct Canvas {
    params: Params,
    /// RGBA, row after row; zeroed (so untouched pages cost nothing) until tiles land.
    rgba: Vec<u8>,
    added: Vec<bool>,
    /// The lowest task whose bytes are not a tile, and why.
    error: Option<KernelError>,
}

impl Canvas {
    /// An empty canvas for valid parameters `p`.
    pub fn new(p: &Params) -> Canvas {
        Canvas {
            params: p.clone(),
            rgba: vec![0; p.width as usize * p.height as usize * 4],
            added: vec![false; p.task_count() as usize],
            error: None,
        }
    }

    /// Whether task `task`'s tile has been added.
    pub fn has(&self, task: u32) -> bool {
        self.added.get(task as usize).copied().unwrap_or(false)
    }

    /// Colours task `task`'s tile (its colour indices) into place. A task out of range
    /// or already added is ignored; bytes that are not a tile are remembered as the
    /// error [`Canvas::finish`] returns.
    pub fn add(&mut self, task: u32, bytes: &[u8]) {
        if task >= self.params.task_count() || self.has(task) {
            return;
        }
        self.added[task as usize] = true;
        if let Err(e) = self.colour_in(task, bytes) {
            let lower = match &self.error {
                Some(KernelError::MalformedOutput { task: t, .. }) => task < *t,
                _ => true,
            };
            if lower {
                self.error = Some(e);
            }
        }
    }

    fn colour_in(&mut self, task: u32, bytes: &[u8]) -> Result<(), KernelError> {
        let width = self.params.width as usize;
        let tile = self.params.tile(task);
        let row_len = tile.width();
        let malformed = |reason: String| KernelError::MalformedOutput { task, reason };
        if bytes.len() != row_len * tile.height() {
            return Err(malformed(format!(
                "{} bytes, expected {} for a {}×{} tile",
                bytes.len(),
                row_len * tile.height(),
                tile.width(),
                tile.height()
            )));
        }
        for (row, src) in bytes.chunks_exact(row_len).enumerate() {
            let start = ((tile.y0 as usize + row) * width + tile.x0 as usize) * 4;
            let dst = &mut self.rgba[start..start + row_len * 4];
            for (px, i) in dst.chunks_exact_mut(4).zip(src) {
                let Some(c) = rgba_of(*i) else {
                    return Err(malformed(format!("{i} is not a colour index")));
                };
                px.copy_from_slice(&c);
            }
        }
        Ok(())
    }

    /// The image, once every tile is added; else the error of the lowest malformed
    /// task, or which task is missing.
    pub fn finish(self) -> Result<JobOutput, KernelError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if let Some(task) = self.added.iter().position(|a| !a) {
            return Err(KernelError::MalformedOutput {
                task: task as u32,
                reason: "not added to the canvas".into(),
            });
        }
        Ok(JobOutput::Image {
            width: self.params.width,
            height: self.params.height,
            rgba: self.rgba,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::{Kernel, hash64};

    /// The plain scalar escape-time loop from z = 0.
    fn escape_count_scalar(cr: f64, ci: f64, max_iter: u32) -> u32 {
        escape_count_scalar_from(0.0, 0.0, cr, ci, max_iter)
    }

    #[test]
    fn the_baseline_lanes_give_the_same_tiles() {
        for p in [small(3, 2), small(1, 1)] {
            let job = Kernel::Mandelbrot(p.clone());
            for task in 0..p.task_count() {
                let (mut lanes, mut baseline) = (Vec::new(), Vec::new());
                job.run_task(task, &mut lanes).unwrap();
                p.run_task_baseline_lanes(task, &mut baseline).unwrap();
                assert_eq!(lanes, baseline, "task {task}");
            }
            let past = p.task_count();
            assert!(p.run_task_baseline_lanes(past, &mut Vec::new()).is_err());
        }
    }

    #[test]
    fn the_scalar_loop_gives_the_same_tiles() {
        let p = small(3, 2);
        let job = Kernel::Mandelbrot(p.clone());
        for task in 0..6 {
            let (mut lanes, mut scalar) = (Vec::new(), Vec::new());
            job.run_task(task, &mut lanes).unwrap();
            p.run_task_scalar_loop(task, &mut scalar).unwrap();
            assert_eq!(lanes, scalar, "task {task}");
        }
        // Refused like run_task: a task past the last, and invalid parameters.
        assert_eq!(
            p.run_task_scalar_loop(6, &mut Vec::new()),
            Err(KernelError::TaskOutOfRange {
                task: 6,
                task_count: 6
            })
        );
        let bad = Params { max_iter: 0, ..p };
        assert!(matches!(
            bad.run_task_scalar_loop(0, &mut Vec::new()),
            Err(KernelError::InvalidParams { .. })
        ));
    }

    fn small(tiles_x: u32, tiles_y: u32) -> Params {
        Params {
            width: 67,
            height: 45,
            max_iter: 300,
            tiles_x,
            tiles_y,
            ..Params::default()
        }
    }

    /// Every task's tile of `job`, in task order.
    fn every_tile(job: &Kernel) -> Vec<Vec<u8>> {
        (0..job.task_count())
            .map(|t| {
                let mut out = Vec::new();
                job.run_task(t, &mut out).unwrap();
                out
            })
            .collect()
    }

    fn image(p: &Params) -> Vec<u8> {
        match Kernel::Mandelbrot(p.clone()).run_all().unwrap() {
            JobOutput::Image { rgba, .. } => rgba,
            other => panic!("not an image: {other:?}"),
        }
    }

    /// A way of counting a tile's pixels (a lane width, a vector level).
    type CountTile<'a> = dyn Fn(Tile, &mut dyn FnMut(u32)) + 'a;

    #[test]
    fn lanes_agree_with_the_scalar_loop() {
        // Near the boundary (many different counts), inside, far outside, and a deep
        // zoom where rounding matters; for the Mandelbrot set and for a Julia set.
        let julia = Orbit::Julia {
            c_re: -0.8,
            c_im: 0.156,
        };
        let views = [
            (Orbit::Mandelbrot, (-0.75, 0.1, 0.02)),
            (Orbit::Mandelbrot, (-0.1, 0.9, 0.3)),
            (Orbit::Mandelbrot, (0.0, 0.0, 0.2)),
            (Orbit::Mandelbrot, (5.0, 5.0, 3.0)),
            (Orbit::Mandelbrot, (-1.768_778_833, -0.001_738_996, 1e-9)),
            (julia, (0.0, 0.0, 1.5)),
            (julia, (0.31, 0.27, 0.01)),
            (julia, (0.0, 0.0, 1e-9)),
        ];
        let mut julia_counts = std::collections::BTreeSet::new();
        for (orbit, (x, y, r)) in views {
            let p = Params {
                x_min: x - r,
                x_max: x + r,
                y_min: y - r,
                y_max: y + r,
                width: 29,
                height: 13,
                max_iter: 2000,
                tiles_x: 2,
                tiles_y: 1,
            };
            let (dx, dy) = p.spacing();
            let mut expected = Vec::new();
            for task in 0..2 {
                let tile = p.tile(task);
                for py in tile.y0..tile.y1 {
                    for px in tile.x0..tile.x1 {
                        let x = p.x_min + (f64::from(px) + 0.5) * dx;
                        let y = p.y_max - (f64::from(py) + 0.5) * dy;
                        expected.push(match orbit {
                            Orbit::Mandelbrot => escape_count_scalar(x, y, p.max_iter),
                            Orbit::Julia { c_re, c_im } => {
                                escape_count_scalar_from(x, y, c_re, c_im, p.max_iter)
                            }
                        });
                    }
                }
            }
            if let Orbit::Julia { .. } = orbit {
                julia_counts.extend(expected.iter().copied());
            }
            // The width this machine chose, and every width on every vector level it
            // has: each must be the scalar loop.
            let through = |count: &CountTile| {
                let mut got = Vec::new();
                for task in 0..2 {
                    count(p.tile(task), &mut |n| got.push(n));
                }
                got
            };
            let widths: [(&str, &CountTile); 5] = [
                ("chosen", &|t, f| p.for_each_count(t, orbit, f)),
                ("1 lane", &|t, f| p.counts_in_lanes::<1>(t, orbit, f)),
                ("4 lanes", &|t, f| p.counts_in_lanes::<4>(t, orbit, f)),
                ("8 lanes", &|t, f| p.counts_in_lanes::<8>(t, orbit, f)),
                ("16 lanes", &|t, f| p.counts_in_lanes::<16>(t, orbit, f)),
            ];
            let view = format!("{orbit:?} view {x} {y} {r}");
            for (what, count) in widths {
                assert_eq!(through(count), expected, "{view}, {what}");
            }
            #[cfg(target_arch = "x86_64")]
            {
                if let Some(simd) = pulp::x86::V3::try_new() {
                    let got =
                        simd.vectorize(|| through(&|t, f| p.counts_in_lanes::<8>(t, orbit, f)));
                    assert_eq!(got, expected, "{view}, AVX2");
                }
                if let Some(simd) = pulp::x86::V4::try_new() {
                    let got =
                        simd.vectorize(|| through(&|t, f| p.counts_in_lanes::<16>(t, orbit, f)));
                    assert_eq!(got, expected, "{view}, AVX-512");
                }
            }
        }
        assert!(
            julia_counts.len() > 20,
            "Julia views too plain: {julia_counts:?}"
        );
    }

    /// Escape counts of points on the real axis, through the lanes.
    fn counts_on_real_axis(points: &[f64], max_iter: u32) -> Vec<u32> {
        points
            .chunks(LANES)
            .flat_map(|chunk| {
                let mut cr = [0.0; LANES];
                cr[..chunk.len()].copy_from_slice(chunk);
                escape_counts([0.0; LANES], 0.0, cr, 0.0, max_iter)[..chunk.len()].to_vec()
            })
            .collect()
    }

    #[test]
    fn known_points_escape_when_they_should() {
        // 0 and -1 (a 2-cycle) are in the set; 1 goes 0, 1, 2, 5 (|z₃|² = 25 > 4);
        // 3 escapes at once; -2 goes 0, -2, 2, 2, … with |z|² = 4, which is not > 4.
        let points = [0.0, -1.0, 1.0, 3.0, -2.0, 0.25, 0.26, -2.0000001];
        let counts = counts_on_real_axis(&points, 100);
        assert_eq!(&counts[..5], &[100, 100, 3, 1, 100]);
        for (c, n) in points.iter().zip(counts) {
            assert_eq!(n, escape_count_scalar(*c, 0.0, 100), "c = {c}");
        }
        // Counts that end inside, at and past a block boundary, and at max_iter.
        for max_iter in [1, 2, 7, 8, 9, 15, 16, 17, 1000] {
            let points: Vec<f64> = (0..37).map(|i| 0.25 + f64::from(i) * 1e-3).collect();
            let expected: Vec<u32> = points
                .iter()
                .map(|&c| escape_count_scalar(c, 0.0, max_iter))
                .collect();
            assert_eq!(
                counts_on_real_axis(&points, max_iter),
                expected,
                "max_iter {max_iter}"
            );
        }
    }

    #[test]
    fn tiles_assemble_to_the_single_tile_image() {
        let whole = image(&small(1, 1));
        assert_eq!(whole.len(), 67 * 45 * 4);
        for (tx, ty) in [(4, 3), (67, 1), (1, 45), (7, 11), (67, 45)] {
            assert_eq!(image(&small(tx, ty)), whole, "{tx}×{ty} tiles");
        }
    }

    #[test]
    fn default_job_tiles_match_one_tile() {
        let p = Params {
            width: 256,
            height: 256,
            max_iter: 200,
            ..Params::default()
        };
        let one = Params {
            tiles_x: 1,
            tiles_y: 1,
            ..p.clone()
        };
        let twelve = Params {
            tiles_x: 4,
            tiles_y: 3,
            ..p.clone()
        };
        let whole = image(&one);
        assert_eq!(image(&twelve), whole);
        assert_eq!(image(&p), whole);
    }

    #[test]
    fn run_task_is_deterministic() {
        let job = Kernel::Mandelbrot(small(3, 2));
        for task in 0..6 {
            let (mut a, mut b) = (Vec::new(), Vec::new());
            job.run_task(task, &mut a).unwrap();
            job.run_task(task, &mut b).unwrap();
            assert_eq!(a, b);
            assert_eq!(hash64(&a), hash64(&b));
        }
    }

    #[test]
    fn tiles_cover_the_image_exactly_once() {
        let p = small(7, 4);
        let mut seen = vec![0u8; 67 * 45];
        assert_eq!(p.tile_rect(28), None);
        for task in 0..28 {
            let t = p.tile(task);
            assert_eq!(
                p.tile_rect(task),
                Some((t.x0, t.y0, t.x1 - t.x0, t.y1 - t.y0))
            );
            assert!(t.width() > 0 && t.height() > 0);
            assert!(t.width() * t.height() <= p.task_output_len_max());
            for y in t.y0..t.y1 {
                for x in t.x0..t.x1 {
                    seen[(y * 67 + x) as usize] += 1;
                }
            }
        }
        assert!(seen.iter().all(|&s| s == 1));
    }

    #[test]
    fn image_is_symmetric_about_the_real_axis() {
        // Centred pixels on a symmetric viewport sample c and its conjugate.
        let rgba = image(&small(3, 3));
        let row = |y: usize| &rgba[y * 67 * 4..(y + 1) * 67 * 4];
        for y in 0..45 {
            assert_eq!(row(y), row(44 - y), "row {y}");
        }
    }

    #[test]
    fn palette_runs_through_its_stops() {
        assert_eq!(PALETTE[0], [0, 7, 100]);
        assert_eq!(PALETTE[27], [237, 255, 255]);
        assert_eq!(PALETTE[41], [255, 170, 0]);
        assert_eq!(colour(5, 5), [0, 0, 0, 255]);
        assert_eq!(colour(64 + 27, 1000), [237, 255, 255, 255]);
    }

    #[test]
    fn validate_rejects_bad_params() {
        let good = small(2, 2);
        assert_eq!(good.validate(), Ok(()));
        let max = Params {
            width: 4096,
            height: 4096,
            max_iter: ITER_MAX,
            tiles_x: 256,
            tiles_y: 256,
            x_min: -COORD_ABS_MAX,
            x_max: COORD_ABS_MAX,
            y_min: -COORD_ABS_MAX,
            y_max: COORD_ABS_MAX,
        };
        assert_eq!(max.validate(), Ok(()));
        let bad: Vec<(&str, Params)> = vec![
            (
                "zero width",
                Params {
                    width: 0,
                    ..good.clone()
                },
            ),
            (
                "zero height",
                Params {
                    height: 0,
                    ..good.clone()
                },
            ),
            (
                "wide",
                Params {
                    width: SIDE_MAX + 1,
                    tiles_x: 1,
                    ..good.clone()
                },
            ),
            (
                "too many pixels",
                Params {
                    width: SIDE_MAX,
                    height: 1025,
                    ..good.clone()
                },
            ),
            (
                "zero iterations",
                Params {
                    max_iter: 0,
                    ..good.clone()
                },
            ),
            (
                "many iterations",
                Params {
                    max_iter: ITER_MAX + 1,
                    ..good.clone()
                },
            ),
            (
                "zero tiles",
                Params {
                    tiles_x: 0,
                    ..good.clone()
                },
            ),
            (
                "zero tile rows",
                Params {
                    tiles_y: 0,
                    ..good.clone()
                },
            ),
            (
                "more tiles than columns",
                Params {
                    tiles_x: 68,
                    ..good.clone()
                },
            ),
            (
                "more tiles than rows",
                Params {
                    tiles_y: 46,
                    ..good.clone()
                },
            ),
            (
                "too many tiles",
                Params {
                    tiles_x: 512,
                    tiles_y: 512,
                    ..max.clone()
                },
            ),
            (
                "NaN",
                Params {
                    x_min: f64::NAN,
                    ..good.clone()
                },
            ),
            (
                "inf",
                Params {
                    y_max: f64::INFINITY,
                    ..good.clone()
                },
            ),
            (
                "-inf",
                Params {
                    x_min: f64::NEG_INFINITY,
                    ..good.clone()
                },
            ),
            (
                "far",
                Params {
                    x_max: 2e3,
                    ..good.clone()
                },
            ),
            (
                "empty x",
                Params {
                    x_max: good.x_min,
                    ..good.clone()
                },
            ),
            (
                "reversed y",
                Params {
                    y_min: 1.5,
                    y_max: -1.5,
                    ..good.clone()
                },
            ),
        ];
        for (what, p) in bad {
            let err = p.validate().unwrap_err();
            assert!(
                matches!(err, KernelError::InvalidParams { kernel: NAME, .. }),
                "{what}"
            );
            let job = Kernel::Mandelbrot(p);
            assert!(job.run_task(0, &mut Vec::new()).is_err(), "{what}");
        }
    }

    #[test]
    fn assemble_rejects_malformed_tiles() {
        let job = Kernel::Mandelbrot(small(2, 1));
        let tiles = every_tile(&job);
        assert!(job.assemble(&[&tiles[0], &tiles[1]]).is_ok());
        // Tiles of 33 and 34 columns: swapping them changes their lengths.
        assert!(job.assemble(&[&tiles[1], &tiles[0]]).is_err());
        let short = &tiles[1][..tiles[1].len() - 1];
        assert!(job.assemble(&[&tiles[0], short]).is_err());
        // One more than black: not a colour.
        let mut no_colour = tiles[1].clone();
        no_colour[7] = BLACK + 1;
        assert!(matches!(
            job.assemble(&[&tiles[0], &no_colour]),
            Err(KernelError::MalformedOutput { task: 1, .. })
        ));
        assert_eq!(colour_tile(&no_colour), None);
        assert_eq!(
            colour_tile(&[BLACK, 27]),
            Some(vec![0, 0, 0, 255, 237, 255, 255, 255])
        );
    }

    #[test]
    fn a_canvas_filled_in_any_order_is_the_assembled_image() {
        let p = small(3, 2);
        let job = Kernel::Mandelbrot(p.clone());
        let tiles = every_tile(&job);
        // Each tile coloured on its own and copied to its rectangle.
        let mut expected = vec![0; 67 * 45 * 4];
        for (t, bytes) in tiles.iter().enumerate() {
            let tile = p.tile(t as u32);
            let rgba = colour_tile(bytes).unwrap();
            for (row, src) in rgba.chunks_exact(tile.width() * 4).enumerate() {
                let at = ((tile.y0 as usize + row) * 67 + tile.x0 as usize) * 4;
                expected[at..at + src.len()].copy_from_slice(src);
            }
        }
        let image = |c: Canvas| match c.finish() {
            Ok(JobOutput::Image { rgba, .. }) => rgba,
            other => panic!("not an image: {other:?}"),
        };
        // Last tile first; then a task out of range and a second copy (ignored).
        let mut c = Canvas::new(&p);
        for t in (0..6).rev() {
            assert!(!c.has(t));
            c.add(t, &tiles[t as usize]);
            assert!(c.has(t));
        }
        c.add(6, &[0]);
        c.add(2, &tiles[0][..3]);
        assert_eq!(image(c), expected);
        assert_eq!(
            job.assemble(&tiles.iter().map(Vec::as_slice).collect::<Vec<_>>()),
            Ok(JobOutput::Image {
                width: 67,
                height: 45,
                rgba: expected
            })
        );
        // A tile missing.
        let mut c = Canvas::new(&p);
        for t in 1..6 {
            c.add(t, &tiles[t as usize]);
        }
        assert!(matches!(
            c.finish(),
            Err(KernelError::MalformedOutput { task: 0, .. })
        ));
        // Two malformed tiles, the higher added first: the error is the lower one's.
        let mut bad = tiles[4].clone();
        bad[0] = BLACK + 1;
        let mut c = Canvas::new(&p);
        for t in [5, 4, 3, 2, 0] {
            c.add(t, if t == 4 { &bad } else { &tiles[t as usize] });
        }
        c.add(1, &tiles[1][1..]);
        assert!(matches!(
            c.finish(),
            Err(KernelError::MalformedOutput { task: 1, .. })
        ));
    }

    #[test]
    fn iterations_total_counts_every_pixel() {
        let p = Params {
            width: 4,
            height: 2,
            max_iter: 50,
            tiles_x: 1,
            tiles_y: 1,
            x_min: -0.5,
            x_max: 0.2,
            y_min: -0.1,
            y_max: 0.1,
        };
        // Every one of these points is in the set.
        assert_eq!(p.iterations_total(), Ok(8 * 50));
        assert!(Params { width: 0, ..p }.iterations_total().is_err());
    }
}
