//! Monte Carlo π: the fraction of random points of the unit square that fall inside the
//! quarter disc x² + y² < 1 is π/4.
//!
//! **Tasks.** The job is `tasks` batches of `samples_per_task` points. Task `k` draws its
//! points from its own xoshiro256** stream (Blackman and Vigna, implemented below),
//! seeded from `(seed, k)` by splitmix64: the four state words are the first four outputs
//! of splitmix64 started at `seed ^ splitmix64_first_output(k)`. Mixing `k` through
//! splitmix64 before it meets `seed` keeps neighbouring tasks from sharing state words,
//! which `seed + k` would do.
//!
//! **Points.** Each point takes two outputs, x first: a coordinate is the output's top 53
//! bits times 2⁻⁵³, a uniform f64 in [0, 1) obtained exactly. The point is inside when
//! `x * x + y * y < 1.0` (strictly), evaluated in IEEE f64 with separate roundings.
//!
//! **Output.** A task's output is 16 bytes: `samples` then `inside`, each u64
//! little-endian. The job's output is [`JobOutput::Estimate`] with the sums and
//! `pi = 4.0 * inside as f64 / samples as f64`; both counts stay below 2⁵³, so they
//! convert to f64 exactly.
//!
//! **Why it is deterministic.** The generators are integer-only with wrapping arithmetic,
//! the u64 → f64 conversions are exact, and the test is two products and a sum rounded by
//! IEEE rules that wasm32 and x86_64 (SSE2) both implement exactly; no fused multiply-add.

use serde::{Deserialize, Serialize};

use super::{Compute, JobOutput, KernelError, TASK_COUNT_MAX, invalid, read_words};

const NAME: &str = "monte_carlo_pi";

/// Most points in one task: about a second of work on one native core, so one task
/// never holds a worker for long.
pub const SAMPLES_PER_TASK_MAX: u64 = 1 << 28;

/// Parameters of a Monte Carlo π job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    /// Points drawn by each task, `1..=SAMPLES_PER_TASK_MAX`.
    pub samples_per_task: u64,
    /// Number of tasks, `1..=TASK_COUNT_MAX`.
    pub tasks: u32,
    /// Seed of the whole job; each task derives its own stream from it.
    pub seed: u64,
}

impl Default for Params {
    fn default() -> Self {
        Params {
            samples_per_task: 1_000_000,
            tasks: 16,
            seed: 0,
        }
    }
}

impl Compute for Params {
    fn name(&self) -> &'static str {
        NAME
    }

    fn validate(&self) -> Result<(), KernelError> {
        if !(1..=SAMPLES_PER_TASK_MAX).contains(&self.samples_per_task) {
            return Err(invalid(
                NAME,
                format!(
                    "samples_per_task {} is not in 1..={SAMPLES_PER_TASK_MAX}",
                    self.samples_per_task
                ),
            ));
        }
        if !(1..=TASK_COUNT_MAX).contains(&self.tasks) {
            return Err(invalid(
                NAME,
                format!("tasks {} is not in 1..={TASK_COUNT_MAX}", self.tasks),
            ));
        }
        Ok(())
    }

    fn task_count(&self) -> u32 {
        self.tasks
    }

    fn task_output_len_max(&self) -> usize {
        16
    }

    fn run_task(&self, task: u32, out: &mut Vec<u8>) {
        let inside = count_inside(self.seed, task, self.samples_per_task);
        out.extend_from_slice(&self.samples_per_task.to_le_bytes());
        out.extend_from_slice(&inside.to_le_bytes());
    }

    fn assemble(&self, outputs: &[&[u8]]) -> Result<JobOutput, KernelError> {
        let (mut samples, mut inside) = (0u64, 0u64);
        for (task, bytes) in outputs.iter().enumerate() {
            let [task_samples, task_inside] = read_words::<2>(task, bytes)?;
            let reason = if task_samples != self.samples_per_task {
                format!("{task_samples} samples, expected {}", self.samples_per_task)
            } else if task_inside > task_samples {
                format!("{task_inside} points inside of {task_samples}")
            } else {
                samples += task_samples;
                inside += task_inside;
                continue;
            };
            return Err(KernelError::MalformedOutput {
                task: task as u32,
                reason,
            });
        }
        Ok(JobOutput::Estimate {
            samples,
            inside,
            pi: 4.0 * inside as f64 / samples as f64,
        })
    }
}

/// How many of task `task`'s `samples` points fall inside the quarter disc.
fn count_inside(seed: u64, task: u32, samples: u64) -> u64 {
    let mut rng = Xoshiro256StarStar::for_task(seed, task);
    let mut inside = 0;
    for _ in 0..samples {
        let x = unit_f64(rng.next_u64());
        let y = unit_f64(rng.next_u64());
        inside += u64::from(x * x + y * y < 1.0);
    }
    inside
}

/// The top 53 bits of `bits` as a uniform f64 in [0, 1); exact, so the same everywhere.
fn unit_f64(bits: u64) -> f64 {
    const TWO_POW_MINUS_53: f64 = 1.0 / (1u64 << 53) as f64;
    (bits >> 11) as f64 * TWO_POW_MINUS_53
}

/// splitmix64 (Steele, Lea and Flood; Vigna's reference `splitmix64.c`): used only to
/// turn seeds into xoshiro state.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// xoshiro256** 1.0 (Blackman and Vigna, reference `xoshiro256starstar.c`).
struct Xoshiro256StarStar([u64; 4]);

impl Xoshiro256StarStar {
    /// Task `task`'s stream of job seed `seed`, as described in the module docs. The
    /// state is never all zero: splitmix64's outputs are a bijection of distinct
    /// counters, so at most one of four consecutive outputs is zero.
    fn for_task(seed: u64, task: u32) -> Self {
        let mut sm = SplitMix64(seed ^ SplitMix64(u64::from(task)).next_u64());
        Xoshiro256StarStar([sm.next_u64(), sm.next_u64(), sm.next_u64(), sm.next_u64()])
    }

    fn next_u64(&mut self) -> u64 {
        let s = &mut self.0;
        let result = s[1].wrapping_mul(5).rotate_left(7).wrapping_mul(9);
        let t = s[1] << 17;
        s[2] ^= s[0];
        s[3] ^= s[1];
        s[1] ^= s[2];
        s[0] ^= s[3];
        s[2] ^= t;
        s[3] = s[3].rotate_left(45);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernels::Kernel;

    fn job(samples_per_task: u64, tasks: u32, seed: u64) -> Kernel {
        Kernel::MonteCarloPi(Params {
            samples_per_task,
            tasks,
            seed,
        })
    }

    #[test]
    fn generators_match_their_reference_implementations() {
        let mut sm = SplitMix64(1_234_567);
        let got: Vec<u64> = (0..5).map(|_| sm.next_u64()).collect();
        assert_eq!(
            got,
            [
                6_457_827_717_110_365_317,
                3_203_168_211_198_807_973,
                9_817_491_932_198_370_423,
                4_593_380_528_125_082_431,
                16_408_922_859_458_223_821,
            ]
        );
        let mut x = Xoshiro256StarStar([1, 2, 3, 4]);
        let got: Vec<u64> = (0..10).map(|_| x.next_u64()).collect();
        assert_eq!(
            got,
            [
                11_520,
                0,
                1_509_978_240,
                1_215_971_899_390_074_240,
                1_216_172_134_540_287_360,
                607_988_272_756_665_600,
                16_172_922_978_634_559_625,
                8_476_171_486_693_032_832,
                10_595_114_339_597_558_777,
                2_904_607_092_377_533_576,
            ]
        );
    }

    #[test]
    fn unit_f64_spans_zero_to_just_below_one() {
        assert_eq!(unit_f64(0), 0.0);
        assert_eq!(unit_f64(u64::MAX), 1.0 - f64::EPSILON / 2.0);
        assert_eq!(unit_f64(1 << 63), 0.5);
    }

    #[test]
    fn tasks_are_reproducible_and_independent() {
        let job = job(10_000, 4, 42);
        assert_eq!(out_bytes(&job, 2), out_bytes(&job, 2));
        assert_ne!(out_bytes(&job, 1), out_bytes(&job, 2));
        assert_ne!(count_inside(42, 0, 10_000), count_inside(43, 0, 10_000));
    }

    #[test]
    fn estimate_is_close_to_pi_and_exactly_reproducible() {
        let job = job(250_000, 16, 2024);
        let out = job.run_all().unwrap();
        assert_eq!(out, job.run_all().unwrap());
        let JobOutput::Estimate {
            samples,
            inside,
            pi,
        } = out
        else {
            panic!("not an estimate: {out:?}");
        };
        assert_eq!(samples, 4_000_000);
        // One standard deviation of the estimate is 4·sqrt(p(1-p)/n) ≈ 8.2e-4.
        assert!((pi - std::f64::consts::PI).abs() < 5e-3, "pi = {pi}");
        assert_eq!(pi, 4.0 * inside as f64 / samples as f64);
        // The exact count, pinned so that any change to the streams shows up here.
        assert_eq!(inside, 3_141_179, "inside changed");
    }

    fn out_bytes(job: &Kernel, task: u32) -> Vec<u8> {
        let mut out = Vec::new();
        job.run_task(task, &mut out).unwrap();
        out
    }

    #[test]
    fn validate_rejects_zero_and_oversized_counts() {
        assert!(job(1, 1, 0).validate().is_ok());
        assert!(
            job(SAMPLES_PER_TASK_MAX, TASK_COUNT_MAX, u64::MAX)
                .validate()
                .is_ok()
        );
        for bad in [
            job(0, 1, 0),
            job(1, 0, 0),
            job(SAMPLES_PER_TASK_MAX + 1, 1, 0),
            job(1, TASK_COUNT_MAX + 1, 0),
        ] {
            let err = bad.validate().unwrap_err();
            assert!(matches!(
                err,
                KernelError::InvalidParams { kernel: NAME, .. }
            ));
        }
    }

    #[test]
    fn assemble_rejects_malformed_outputs() {
        let job = job(100, 2, 1);
        let good = out_bytes(&job, 0);
        let mut lying = [0u8; 16];
        lying[..8].copy_from_slice(&100u64.to_le_bytes());
        lying[8..].copy_from_slice(&101u64.to_le_bytes());
        let mut wrong_samples = good.clone();
        wrong_samples[0] ^= 1;
        for bad in [&good[..15], &lying[..], &wrong_samples[..], &[][..]] {
            assert!(matches!(
                job.assemble(&[&good, bad]),
                Err(KernelError::MalformedOutput { task: 1, .. })
            ));
        }
    }
}
