//! Julia set escape-time images, computed tile by tile: the Mandelbrot kernel's sibling.
//!
//! **What.** For a fixed c = `c_re` + i·`c_im`, pixel (px, py) of the image starts the
//! iteration z ← z² + c at its centre point z₀ (mapped from the viewport exactly as in
//! [`mandelbrot`](super::mandelbrot)) instead of at 0, and adds the same c for every
//! pixel. Its escape count is the number of iterations before |z|² > 4, at most
//! `max_iter`, coloured with the Mandelbrot palette. c = 0 gives the unit disc; c inside
//! the Mandelbrot set gives a connected set, outside it dust.
//!
//! **Tasks and output.** Exactly the Mandelbrot kernel's: `image.tiles_x` ×
//! `image.tiles_y` tiles of RGBA pixels, assembled into [`JobOutput::Image`].
//!
//! **Why it is deterministic.** It runs the Mandelbrot kernel's escape loop, lanes,
//! run-time vector width and replay unchanged, only with z₀ and c swapped in
//! (`mandelbrot::Orbit::Julia`): IEEE `+ - *` per lane, never a fused multiply-add, so
//! the same bytes on wasm32 and x86_64 (`tests/kernels_same_bytes.rs`).

use serde::{Deserialize, Serialize};

use super::mandelbrot::{self, Orbit};
use super::{Compute, JobOutput, KernelError, invalid};

const NAME: &str = "julia";

/// Largest |c_re| and |c_im|: every c whose Julia set is more than scattered dust has
/// |c| ≤ 2.
pub const C_ABS_MAX: f64 = 2.0;

/// Parameters of a Julia set job.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Params {
    /// The image: viewport (the plane of starting points z₀), size, iteration cap and
    /// tiles, with the Mandelbrot kernel's meaning and limits.
    pub image: mandelbrot::Params,
    /// Real part of c; finite, within ±[`C_ABS_MAX`].
    pub c_re: f64,
    /// Imaginary part of c; finite, within ±[`C_ABS_MAX`].
    pub c_im: f64,
}

impl Default for Params {
    /// c = -0.8 + 0.156i (a connected, spiralling set) over [-1.6, 1.6] × [-1.6, 1.6],
    /// 1024 × 1024 at 1000 iterations in 8 × 8 tiles.
    fn default() -> Self {
        Params {
            image: mandelbrot::Params {
                x_min: -1.6,
                x_max: 1.6,
                y_min: -1.6,
                y_max: 1.6,
                ..mandelbrot::Params::default()
            },
            c_re: -0.8,
            c_im: 0.156,
        }
    }
}

impl Params {
    fn orbit(&self) -> Orbit {
        Orbit::Julia {
            c_re: self.c_re,
            c_im: self.c_im,
        }
    }

    /// Task `task`'s tile as `(x, y, width, height)`: see [`mandelbrot::Params::tile_rect`].
    pub fn tile_rect(&self, task: u32) -> Option<(u32, u32, u32, u32)> {
        self.image.tile_rect(task)
    }

    /// Total escape-time iterations of the whole image (runs the escape loop).
    pub fn iterations_total(&self) -> Result<u64, KernelError> {
        self.validate()?;
        Ok(self.image.iterations_of(self.orbit()))
    }
}

impl Compute for Params {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self) -> Result<(), KernelError> {
        // The image's limits are the Mandelbrot kernel's; its errors name this kernel.
        self.image.validate().map_err(|e| match e {
            KernelError::InvalidParams { reason, .. } => invalid(NAME, reason),
            other => other,
        })?;
        for (name, v) in [("c_re", self.c_re), ("c_im", self.c_im)] {
            if !v.is_finite() || v.abs() > C_ABS_MAX {
                return Err(invalid(
                    NAME,
                    format!("{name} {v} is not a finite number within ±{C_ABS_MAX}"),
                ));
            }
        }
        Ok(())
    }

    fn task_count(&self) -> u32 {
        self.image.task_count()
    }

    fn task_output_len_max(&self) -> usize {
        self.image.task_output_len_max()
    }

    fn run_task(&self, task: u32, out: &mut Vec<u8>) {
        self.image.run_tile(task, self.orbit(), out);
    }

    fn assemble(&self, outputs: &[&[u8]]) -> Result<JobOutput, KernelError> {
        self.image.assemble(outputs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernel;

    fn job(c_re: f64, c_im: f64, side: u32, tiles: u32) -> Kernel {
        Kernel::Julia(Params {
            image: mandelbrot::Params {
                x_min: -2.5,
                x_max: 2.5,
                y_min: -2.5,
                y_max: 2.5,
                width: side,
                height: side,
                max_iter: 200,
                tiles_x: tiles,
                tiles_y: tiles,
            },
            c_re,
            c_im,
        })
    }

    fn image(job: &Kernel) -> Vec<u8> {
        match job.run_all().unwrap() {
            JobOutput::Image { rgba, .. } => rgba,
            other => panic!("not an image: {other:?}"),
        }
    }

    fn pixel(rgba: &[u8], side: usize, x: usize, y: usize) -> [u8; 4] {
        let i = (y * side + x) * 4;
        [rgba[i], rgba[i + 1], rgba[i + 2], rgba[i + 3]]
    }

    #[test]
    fn c_zero_is_the_unit_disc() {
        // z ← z²: |z₀| < 1 never escapes (black); |z₀|² > 4 escapes at once (the
        // palette's first colour); 1 < |z₀| ≤ 2 escapes after k ≥ 1 squarings.
        let side = 64;
        let rgba = image(&job(0.0, 0.0, side as u32, 4));
        let (mut inside, mut outside) = (0, 0);
        for y in 0..side {
            for x in 0..side {
                let p = |v: usize| -2.5 + (v as f64 + 0.5) * (5.0 / side as f64);
                let (zr, zi) = (p(x), -p(y));
                let r2 = zr * zr + zi * zi;
                let got = pixel(&rgba, side, x, y);
                if r2 < 0.95 {
                    assert_eq!(got, [0, 0, 0, 255], "({zr}, {zi}) is inside");
                    inside += 1;
                } else if r2 > 4.0 {
                    assert_eq!(got, [0, 7, 100, 255], "({zr}, {zi}) escapes at once");
                    outside += 1;
                } else if r2 > 1.05 {
                    assert_ne!(got, [0, 0, 0, 255], "({zr}, {zi}) escapes");
                }
            }
        }
        assert!(
            inside > 400 && outside > 1000,
            "{inside} inside, {outside} outside"
        );
    }

    #[test]
    fn symmetric_under_a_half_turn() {
        // z₀ and -z₀ have the same orbit after one step. With a power-of-two side and a
        // symmetric viewport the pixel centres are exact, so pixel (x, y) and
        // (side-1-x, side-1-y) sample z₀ and -z₀ exactly.
        let side = 64;
        let rgba = image(&job(-0.8, 0.156, side as u32, 3));
        for y in 0..side {
            for x in 0..side {
                assert_eq!(
                    pixel(&rgba, side, x, y),
                    pixel(&rgba, side, side - 1 - x, side - 1 - y),
                    "({x}, {y})"
                );
            }
        }
    }

    #[test]
    fn tiles_assemble_to_the_single_tile_image_and_differ_from_mandelbrot() {
        let whole = image(&job(-0.8, 0.156, 48, 1));
        for tiles in [2, 5, 48] {
            assert_eq!(image(&job(-0.8, 0.156, 48, tiles)), whole, "{tiles}² tiles");
        }
        assert_ne!(image(&job(0.285, 0.01, 48, 1)), whole, "another c");
        let Kernel::Julia(p) = job(-0.8, 0.156, 48, 1) else {
            unreachable!()
        };
        assert_ne!(image(&Kernel::Mandelbrot(p.image.clone())), whole);
        assert!(p.iterations_total().unwrap() > 48 * 48);
    }

    #[test]
    fn validate_rejects_bad_params_under_its_own_name() {
        let good = Params::default();
        assert_eq!(good.validate(), Ok(()));
        let bad = [
            Params {
                c_re: f64::NAN,
                ..good.clone()
            },
            Params {
                c_im: f64::INFINITY,
                ..good.clone()
            },
            Params {
                c_re: 2.01,
                ..good.clone()
            },
            Params {
                c_im: -2.01,
                ..good.clone()
            },
            Params {
                image: mandelbrot::Params {
                    width: 0,
                    ..good.image.clone()
                },
                ..good.clone()
            },
            Params {
                image: mandelbrot::Params {
                    x_min: 1.0,
                    x_max: -1.0,
                    ..good.image.clone()
                },
                ..good.clone()
            },
        ];
        for p in bad {
            let job = Kernel::Julia(p.clone());
            assert!(
                matches!(
                    job.validate(),
                    Err(KernelError::InvalidParams { kernel: NAME, .. })
                ),
                "{p:?}"
            );
            assert!(job.run_task(0, &mut Vec::new()).is_err());
        }
    }
}
