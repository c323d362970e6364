//! The compute kernels: pure functions from a task to bytes, the same bytes on every target.
//!
//! A job runs one [`Kernel`] with its parameters. It splits into
//! [`task_count`](Kernel::task_count) tasks; [`run_task`](Kernel::run_task) turns one task
//! into output bytes, and [`assemble`](Kernel::assemble) turns every task's bytes into the
//! job's [`JobOutput`]. [`hash64`] is a fast checksum (tests, tools, node ids); the engine
//! names and compares results by `job::result_hash` (a BLAKE3 prefix, sealed with the
//! preview's for an image), which a liar cannot forge.
//!
//! - [`mandelbrot`]: escape-time image tiles (RGBA8), the visual default.
//! - [`primes`]: π(N) by a segmented sieve over ranges, checkable against published values.
//! - [`monte_carlo`]: π estimated from random points, one seeded stream per task.
//! - [`julia`]: Julia set tiles, the Mandelbrot kernel's escape loop started at each
//!   pixel with a fixed c.
//!
//! What this module guarantees (the project's determinism invariant): the same task gives the same
//! bytes on wasm32 and x86_64. Kernels therefore use integer arithmetic or plain IEEE f64
//! operations (`+ - * /` and comparisons; never `mul_add`, and never a libm function
//! such as `ln`, `exp` or `sin`, whose last bit differs between implementations), their
//! own seeded PRNG instead of platform randomness, no hash-map iteration order, no clock
//! and no threads. Rust never contracts `a * b + c` into a fused multiply-add by itself.
//! Parameters and task outputs may come from the network, so every entry point checks
//! them first and answers with a [`KernelError`] instead of panicking.
//!
//! What it must never do: IO of any kind, allocation inside an inner loop, or anything
//! whose result depends on the platform.
//!
//! Adding a kernel is one file (its `Params`, implementing the private `Compute` trait)
//! plus one [`Kernel`] variant and its arm in `Kernel::compute`.

pub mod julia;
pub mod mandelbrot;
pub mod monte_carlo;
pub mod preview;
pub mod primes;

mod hash;

pub use hash::{hash64, xxh64};

use serde::{Deserialize, Serialize};

/// Most tasks one job may split into, for every kernel: bounds the engine's task board
/// and the work of [`Kernel::assemble`].
pub const TASK_COUNT_MAX: u32 = 1 << 16;

/// A job's computation: which kernel, with which parameters.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Kernel {
    /// An escape-time image in tiles; output [`JobOutput::Image`].
    Mandelbrot(mandelbrot::Params),
    /// π(n) over ranges of numbers; output [`JobOutput::Count`].
    Primes(primes::Params),
    /// π from seeded random points in batches; output [`JobOutput::Estimate`].
    MonteCarloPi(monte_carlo::Params),
    /// A Julia set image in tiles; output [`JobOutput::Image`]. (Last, so that the
    /// other variants keep their wire encoding.)
    Julia(julia::Params),
}

/// What a whole job computes, assembled from every task's output.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum JobOutput {
    /// An image, row-major from the top-left corner, 4 bytes (R, G, B, A) per pixel.
    Image {
        width: u32,
        height: u32,
        rgba: Vec<u8>,
    },
    /// `count` = π(`n`), the number of primes ≤ `n`.
    Count { n: u64, count: u64 },
    /// `inside` of `samples` random points fell in the quarter disc; `pi` = 4·inside/samples.
    Estimate { samples: u64, inside: u64, pi: f64 },
}

/// Why parameters, a task or a task's output were refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KernelError {
    #[error("invalid {kernel} parameters: {reason}")]
    InvalidParams {
        kernel: &'static str,
        reason: String,
    },
    #[error("task {task} is out of range: the job has {task_count} tasks")]
    TaskOutOfRange { task: u32, task_count: u32 },
    #[error("expected {expected} task outputs, got {got}")]
    OutputCount { expected: usize, got: usize },
    #[error("output of task {task} is malformed: {reason}")]
    MalformedOutput { task: u32, reason: String },
}

/// What every kernel's parameters implement. [`Kernel`] checks the parameters, the task
/// number and the number of outputs before calling `run_task` and `assemble`, so those
/// two may rely on valid parameters; `assemble` must still check each output's contents.
trait Compute {
    fn name(&self) -> &'static str;
    fn validate(&self) -> Result<(), KernelError>;
    /// Meaningful only for valid parameters.
    fn task_count(&self) -> u32;
    /// Meaningful only for valid parameters.
    fn task_output_len_max(&self) -> usize;
    /// Appends task `task`'s output to `out`. Parameters are valid, `task < task_count()`.
    fn run_task(&self, task: u32, out: &mut Vec<u8>);
    /// Parameters are valid, `outputs.len() == task_count()`, and no output is longer
    /// than `task_output_len_max()`.
    fn assemble(&self, outputs: &[&[u8]]) -> Result<JobOutput, KernelError>;
}

/// Calls `$body` with `$p` bound to the kernel's parameters, statically: no vtable, so a
/// binary that never computes (the node worker) links no kernel's loops.
macro_rules! each_kernel {
    ($kernel:expr, $p:ident => $body:expr) => {
        match $kernel {
            Kernel::Mandelbrot($p) => $body,
            Kernel::Primes($p) => $body,
            Kernel::MonteCarloPi($p) => $body,
            Kernel::Julia($p) => $body,
        }
    };
}

fn run_task_checked<C: Compute>(c: &C, task: u32, out: &mut Vec<u8>) -> Result<(), KernelError> {
    c.validate()?;
    let task_count = c.task_count();
    if task >= task_count {
        return Err(KernelError::TaskOutOfRange { task, task_count });
    }
    let start = out.len();
    c.run_task(task, out);
    debug_assert!(out.len() - start <= c.task_output_len_max());
    Ok(())
}

fn assemble_checked<C: Compute>(c: &C, outputs: &[&[u8]]) -> Result<JobOutput, KernelError> {
    c.validate()?;
    let expected = c.task_count() as usize;
    if outputs.len() != expected {
        return Err(KernelError::OutputCount {
            expected,
            got: outputs.len(),
        });
    }
    let len_max = c.task_output_len_max();
    if let Some(task) = outputs.iter().position(|o| o.len() > len_max) {
        return Err(KernelError::MalformedOutput {
            task: task as u32,
            reason: format!(
                "{} bytes, more than the {len_max} a task can produce",
                outputs[task].len()
            ),
        });
    }
    c.assemble(outputs)
}

impl Kernel {
    /// The image geometry (size, viewport, tiles) of a kernel whose output is an image:
    /// Mandelbrot and Julia; task t is tile t of it.
    pub fn image(&self) -> Option<&mandelbrot::Params> {
        match self {
            Kernel::Mandelbrot(p) => Some(p),
            Kernel::Julia(p) => Some(&p.image),
            Kernel::Primes(_) | Kernel::MonteCarloPi(_) => None,
        }
    }

    /// An empty [`mandelbrot::Canvas`] for an image kernel, to assemble its output tile
    /// by tile; `None` for the others (their outputs are a few words, merged at once).
    pub fn canvas(&self) -> Option<mandelbrot::Canvas> {
        let image = self.image()?;
        self.validate().ok()?;
        Some(mandelbrot::Canvas::new(image))
    }

    /// The preview of task `task`'s output ([`preview`]) for an image kernel, `None` for
    /// the others (their results are a few words; a watcher fetches them whole).
    pub fn preview(&self, task: u32, output: &[u8]) -> Option<Vec<u8>> {
        self.image().map(|p| preview::make(p, task, output))
    }

    /// Upper bound on one task's preview, in bytes (0 for a kernel without previews).
    pub fn preview_len_max(&self) -> usize {
        self.image().map_or(0, preview::len_max)
    }

    /// Short name for the UI and logs: "mandelbrot", "primes", "monte_carlo_pi", "julia".
    pub fn name(&self) -> &'static str {
        each_kernel!(self, p => p.name())
    }

    /// Checks parameters from an untrusted source: sizes, ranges and counts within their
    /// stated limits, a finite viewport, no more tasks than there is work.
    pub fn validate(&self) -> Result<(), KernelError> {
        each_kernel!(self, p => p.validate())
    }

    /// How many tasks the job splits into (tiles, ranges, sample batches). Meaningful
    /// only when [`validate`](Self::validate) passes; at most [`TASK_COUNT_MAX`].
    pub fn task_count(&self) -> u32 {
        each_kernel!(self, p => p.task_count())
    }

    /// Upper bound on one task's output, in bytes; the engine bounds stored and received
    /// payloads with it. Meaningful only when [`validate`](Self::validate) passes.
    pub fn task_output_len_max(&self) -> usize {
        each_kernel!(self, p => p.task_output_len_max())
    }

    /// Computes task `task` (`0..task_count()`) and appends its output bytes to `out`,
    /// which the caller has cleared. Pure and deterministic: the same parameters and task
    /// give the same bytes on every node and target. Validates the parameters first.
    pub fn run_task(&self, task: u32, out: &mut Vec<u8>) -> Result<(), KernelError> {
        each_kernel!(self, p => run_task_checked(p, task, out))
    }

    /// Combines every task's output, indexed by task, into the job's output. The outputs
    /// came from the network: a wrong count, length or content is an error, not a panic.
    pub fn assemble(&self, outputs: &[&[u8]]) -> Result<JobOutput, KernelError> {
        each_kernel!(self, p => assemble_checked(p, outputs))
    }

    /// Computes the whole job in this process, task after task: the reference that a
    /// mesh's assembled output must equal.
    pub fn run_all(&self) -> Result<JobOutput, KernelError> {
        self.validate()?;
        let outputs = (0..self.task_count())
            .map(|task| {
                let mut out = Vec::new();
                self.run_task(task, &mut out).map(|()| out)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let outputs: Vec<&[u8]> = outputs.iter().map(Vec::as_slice).collect();
        self.assemble(&outputs)
    }
}

impl JobOutput {
    /// A stable byte encoding of the output, for hashing and comparing: a tag byte (0 for
    /// an image, 1 for a count, 2 for an estimate), then the fields in order, integers
    /// little-endian, `pi` as its IEEE bits, an image's RGBA bytes last.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            JobOutput::Image {
                width,
                height,
                rgba,
            } => {
                let mut bytes = Vec::with_capacity(9 + rgba.len());
                bytes.push(0);
                bytes.extend_from_slice(&width.to_le_bytes());
                bytes.extend_from_slice(&height.to_le_bytes());
                bytes.extend_from_slice(rgba);
                bytes
            }
            JobOutput::Count { n, count } => {
                [&[1][..], &n.to_le_bytes(), &count.to_le_bytes()].concat()
            }
            JobOutput::Estimate {
                samples,
                inside,
                pi,
            } => [
                &[2][..],
                &samples.to_le_bytes(),
                &inside.to_le_bytes(),
                &pi.to_bits().to_le_bytes(),
            ]
            .concat(),
        }
    }
}

/// Builds the error for parameters that fail a check.
fn invalid(kernel: &'static str, reason: impl Into<String>) -> KernelError {
    KernelError::InvalidParams {
        kernel,
        reason: reason.into(),
    }
}

/// Reads a task output made of exactly `N` little-endian u64 words.
fn read_words<const N: usize>(task: usize, bytes: &[u8]) -> Result<[u64; N], KernelError> {
    if bytes.len() != 8 * N {
        return Err(KernelError::MalformedOutput {
            task: task as u32,
            reason: format!("{} bytes, expected {}", bytes.len(), 8 * N),
        });
    }
    let mut words = [0; N];
    for (word, le) in words.iter_mut().zip(bytes.chunks_exact(8)) {
        let mut b = [0; 8];
        b.copy_from_slice(le);
        *word = u64::from_le_bytes(b);
    }
    Ok(words)
}

/// Jobs for benchmarks (`cargo xtask bench engine`) and for checking speed by hand.
///
/// Time [`Kernel::run_all`] (one core) or the tasks spread over a pool, and divide by
/// [`work`](crate::kernels::bench::work). Report a first call apart from warmed-up ones:
/// in a browser V8 tiers code up between calls, so a kernel's first call is about twice
/// as slow.
pub mod bench {
    use super::{Kernel, julia, mandelbrot, monte_carlo, primes};

    /// Named jobs of the sizes the speed baselines are measured at.
    pub fn example_jobs() -> Vec<(&'static str, Kernel)> {
        vec![
            (
                "mandelbrot_1024x1024_1000",
                Kernel::Mandelbrot(mandelbrot::Params::default()),
            ),
            (
                "primes_1e8",
                Kernel::Primes(primes::Params {
                    n: 100_000_000,
                    ranges: 16,
                }),
            ),
            (
                "primes_1e9",
                Kernel::Primes(primes::Params {
                    n: 1_000_000_000,
                    ranges: 64,
                }),
            ),
            (
                "monte_carlo_pi_1e8",
                Kernel::MonteCarloPi(monte_carlo::Params {
                    samples_per_task: 1_000_000,
                    tasks: 100,
                    seed: 1,
                }),
            ),
        ]
    }

    /// Appends task `task` of `kernel` to `out`, computed by the kernel or, with
    /// `scalar_loop`, by Mandelbrot's plain scalar loop (what a benchmark case runs,
    /// natively here and in a browser's compute worker).
    pub fn run_task(
        kernel: &Kernel,
        task: u32,
        scalar_loop: bool,
        out: &mut Vec<u8>,
    ) -> Result<(), super::KernelError> {
        match kernel {
            Kernel::Mandelbrot(p) if scalar_loop => p.run_task_scalar_loop(task, out),
            kernel => kernel.run_task(task, out),
        }
    }

    /// One timed case of `cargo xtask bench kernels`: task `task` of `kernel`, computed
    /// by the kernel or, with `scalar_loop`, by Mandelbrot's plain scalar loop (the
    /// baseline the lanes are measured against).
    pub struct Case {
        pub name: &'static str,
        pub kernel: Kernel,
        pub task: u32,
        pub scalar_loop: bool,
        /// Natively, Mandelbrot's lanes in the baseline vectors (SSE2: two f64, as
        /// wasm's simd128), not the widest the CPU has. In wasm the same as the kernel.
        pub baseline_lanes: bool,
    }

    impl Case {
        fn new(name: &'static str, kernel: Kernel) -> Case {
            Case {
                name,
                kernel,
                task: 0,
                scalar_loop: false,
                baseline_lanes: false,
            }
        }

        /// Computes the case's task into `out` (cleared first).
        pub fn run(&self, out: &mut Vec<u8>) -> Result<(), super::KernelError> {
            out.clear();
            match &self.kernel {
                Kernel::Mandelbrot(p) if self.baseline_lanes => {
                    p.run_task_baseline_lanes(self.task, out)
                }
                kernel => run_task(kernel, self.task, self.scalar_loop, out),
            }
        }

        /// The numbers `[lo, hi)` a prime-counting case counts in.
        pub fn primes_range(&self) -> Option<(u64, u64)> {
            match &self.kernel {
                Kernel::Primes(p) => Some(p.range(self.task)),
                _ => None,
            }
        }
    }

    /// The cases `cargo xtask bench kernels` compares natively and in a browser's
    /// compute worker (Mandelbrot first: the worker-tile benchmark uses it alone).
    pub fn single_task_cases() -> Vec<Case> {
        let one_tile = mandelbrot::Params {
            tiles_x: 1,
            tiles_y: 1,
            ..mandelbrot::Params::default()
        };
        let primes = |n, ranges| Kernel::Primes(primes::Params { n, ranges });
        vec![
            Case::new(
                "mandelbrot 1024x1024 1000 it",
                Kernel::Mandelbrot(one_tile.clone()),
            ),
            Case {
                scalar_loop: true,
                ..Case::new(
                    "mandelbrot, plain scalar loop",
                    Kernel::Mandelbrot(one_tile.clone()),
                )
            },
            Case {
                baseline_lanes: true,
                ..Case::new(
                    "mandelbrot, 128-bit lanes",
                    Kernel::Mandelbrot(one_tile.clone()),
                )
            },
            Case::new(
                "julia 1024x1024 1000 it",
                Kernel::Julia(julia::Params {
                    image: mandelbrot::Params {
                        tiles_x: 1,
                        tiles_y: 1,
                        ..julia::Params::default().image
                    },
                    ..julia::Params::default()
                }),
            ),
            Case::new("primes pi(10^8)", primes(100_000_000, 1)),
            Case::new("primes pi(10^9)", primes(1_000_000_000, 1)),
            Case::new("primes pi(10^10)", primes(10_000_000_000, 1)),
            Case {
                task: 999,
                ..Case::new("primes top 10^9 to 10^12", primes(primes::N_MAX, 1000))
            },
            Case::new(
                "monte carlo 10M samples",
                Kernel::MonteCarloPi(monte_carlo::Params {
                    samples_per_task: 10_000_000,
                    tasks: 1,
                    seed: 7,
                }),
            ),
        ]
    }

    /// How much work a job is, in its natural unit: escape-time iterations for
    /// Mandelbrot and Julia (computed by running the escape loop, so as slow as the job itself),
    /// numbers sieved for primes, points for Monte Carlo. `None` if the job is invalid.
    pub fn work(kernel: &Kernel) -> Option<(u64, &'static str)> {
        kernel.validate().ok()?;
        Some(match kernel {
            Kernel::Mandelbrot(p) => (p.iterations_total().ok()?, "iterations"),
            Kernel::Primes(p) => (p.n, "numbers"),
            Kernel::MonteCarloPi(p) => (p.samples_per_task * u64::from(p.tasks), "samples"),
            Kernel::Julia(p) => (p.iterations_total().ok()?, "iterations"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn small_jobs() -> Vec<Kernel> {
        vec![
            Kernel::Mandelbrot(mandelbrot::Params {
                width: 40,
                height: 30,
                max_iter: 200,
                tiles_x: 3,
                tiles_y: 2,
                ..mandelbrot::Params::default()
            }),
            Kernel::Primes(primes::Params {
                n: 100_000,
                ranges: 7,
            }),
            Kernel::MonteCarloPi(monte_carlo::Params {
                samples_per_task: 1000,
                tasks: 5,
                seed: 9,
            }),
            Kernel::Julia(julia::Params {
                image: mandelbrot::Params {
                    width: 40,
                    height: 30,
                    max_iter: 200,
                    tiles_x: 2,
                    tiles_y: 3,
                    ..julia::Params::default().image
                },
                ..julia::Params::default()
            }),
        ]
    }

    #[test]
    fn names_are_stable() {
        let names: Vec<_> = small_jobs().iter().map(Kernel::name).collect();
        assert_eq!(names, ["mandelbrot", "primes", "monte_carlo_pi", "julia"]);
    }

    #[test]
    fn run_task_rejects_a_task_out_of_range() {
        for job in small_jobs() {
            let task_count = job.task_count();
            let mut out = Vec::new();
            assert_eq!(
                job.run_task(task_count, &mut out),
                Err(KernelError::TaskOutOfRange {
                    task: task_count,
                    task_count
                })
            );
            assert!(job.run_task(u32::MAX, &mut out).is_err());
        }
    }

    #[test]
    fn task_outputs_stay_within_their_stated_bound() {
        for job in small_jobs() {
            for task in 0..job.task_count() {
                let mut out = Vec::new();
                job.run_task(task, &mut out).unwrap();
                assert!(out.len() <= job.task_output_len_max(), "{}", job.name());
            }
        }
    }

    #[test]
    fn assemble_rejects_a_wrong_number_of_outputs_or_oversized_output() {
        for job in small_jobs() {
            let outputs: Vec<Vec<u8>> = (0..job.task_count())
                .map(|t| {
                    let mut out = Vec::new();
                    job.run_task(t, &mut out).unwrap();
                    out
                })
                .collect();
            let refs: Vec<&[u8]> = outputs.iter().map(Vec::as_slice).collect();
            assert_eq!(job.assemble(&refs), job.run_all());
            assert!(matches!(
                job.assemble(&refs[1..]),
                Err(KernelError::OutputCount { .. })
            ));
            assert!(matches!(
                job.assemble(&[]),
                Err(KernelError::OutputCount { .. })
            ));
            let big = vec![0; job.task_output_len_max() + 1];
            let mut bad = refs.clone();
            bad[0] = &big;
            assert!(matches!(
                job.assemble(&bad),
                Err(KernelError::MalformedOutput { task: 0, .. })
            ));
            let mut bad = refs.clone();
            bad[1] = &[];
            assert!(matches!(
                job.assemble(&bad),
                Err(KernelError::MalformedOutput { task: 1, .. })
            ));
        }
    }

    #[test]
    fn invalid_params_are_refused_by_every_entry_point() {
        let job = Kernel::Primes(primes::Params { n: 0, ranges: 1 });
        assert!(job.validate().is_err());
        assert!(job.run_task(0, &mut Vec::new()).is_err());
        assert!(job.assemble(&[&[0; 24]]).is_err());
        assert!(job.run_all().is_err());
        assert_eq!(bench::work(&job), None);
    }

    #[test]
    fn params_round_trip_through_the_wire_encoding() {
        for job in small_jobs() {
            let bytes = postcard::to_allocvec(&job).unwrap();
            assert_eq!(postcard::from_bytes::<Kernel>(&bytes).unwrap(), job);
        }
    }

    #[test]
    fn example_jobs_are_valid() {
        for (name, job) in bench::example_jobs() {
            assert_eq!(job.validate(), Ok(()), "{name}");
        }
    }

    #[test]
    fn job_output_bytes_are_stable() {
        let out = JobOutput::Count { n: 10, count: 4 };
        assert_eq!(
            out.to_bytes(),
            [1, 10, 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0]
        );
        let image = JobOutput::Image {
            width: 1,
            height: 1,
            rgba: vec![1, 2, 3, 255],
        };
        assert_eq!(image.to_bytes(), [0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 2, 3, 255]);
        let estimate = JobOutput::Estimate {
            samples: 1,
            inside: 1,
            pi: 4.0,
        };
        assert_eq!(estimate.to_bytes()[17..], 4.0f64.to_bits().to_le_bytes());
    }

    /// Speed check by hand, never run by default and asserting nothing about time:
    /// `MESHWORK_KERNEL_TIMING=1 cargo test -p node-core --release --lib kernel_timing -- --nocapture`
    #[cfg(not(target_arch = "wasm32"))]
    #[test]
    fn kernel_timing() {
        if std::env::var_os("MESHWORK_KERNEL_TIMING").is_none() {
            return;
        }
        for (name, job) in bench::example_jobs() {
            let mut best = f64::INFINITY;
            let mut first = None;
            for _ in 0..5 {
                let start = std::time::Instant::now();
                let out = job.run_all().unwrap();
                let s = start.elapsed().as_secs_f64();
                std::hint::black_box(out);
                first.get_or_insert(s);
                best = best.min(s);
            }
            let (work, unit) = bench::work(&job).unwrap();
            println!(
                "{name:28} first {:8.1} ms  best {:8.1} ms  {:8.1} M {unit}/s",
                first.unwrap_or(0.0) * 1e3,
                best * 1e3,
                work as f64 / best / 1e6
            );
        }
    }
}
