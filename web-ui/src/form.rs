//! The page's job form: what a person typed, checked, turned into a submit command.
//! Every refusal says which field is wrong and why, in the words the form uses; nothing
//! invalid reaches the node (the engine would refuse it too, but later and less clearly).

use node_core::engine::Command;
use node_core::job::{JobError, JobSpec, NodeId};
use node_core::kernels::{Kernel, julia, mandelbrot, monte_carlo, primes};

/// The kernels the form offers, by the value of its `<select>`.
pub const KERNELS: [(&str, &str); 4] = [
    ("mandelbrot", "Mandelbrot image"),
    ("julia", "Julia image"),
    ("primes", "count primes"),
    ("pi", "estimate π"),
];

/// The form's fields, as typed.
#[derive(Clone, Debug, PartialEq)]
pub struct JobForm {
    /// "mandelbrot", "julia", "primes" or "pi".
    pub kernel: String,
    /// Mandelbrot and Julia: side of the square image, in pixels.
    pub size: String,
    /// Mandelbrot and Julia: iteration cap.
    pub max_iter: String,
    /// Mandelbrot and Julia: tiles per side (the job has its square tasks).
    pub tiles: String,
    /// Julia: the constant c as "re, im".
    pub c: String,
    /// Primes: count up to this.
    pub n: String,
    /// Primes: ranges (tasks).
    pub ranges: String,
    /// π: samples per task.
    pub samples: String,
    /// π: tasks.
    pub tasks: String,
    /// Copies of every result (`r`).
    pub replicas: String,
    /// Matching reports needed (`q`).
    pub quorum: String,
    /// Delay after each task on every node, in ms.
    pub pacing_ms: String,
}

impl Default for JobForm {
    /// A picture that fills in over a few seconds on a few tabs, so that a room can
    /// watch it: 512² in 16 × 16 tiles, `r = 2`, 40 ms of pacing after each tile.
    fn default() -> Self {
        JobForm {
            kernel: "mandelbrot".into(),
            size: "512".into(),
            max_iter: "500".into(),
            tiles: "16".into(),
            c: "-0.8, 0.156".into(),
            n: "100000000".into(),
            ranges: "64".into(),
            samples: "1000000".into(),
            tasks: "64".into(),
            replicas: "2".into(),
            quorum: "1".into(),
            pacing_ms: "40".into(),
        }
    }
}

fn number<T: std::str::FromStr>(field: &str, value: &str) -> Result<T, String> {
    let v = value.trim().replace(['_', ','], "");
    if v.is_empty() {
        return Err(format!("{field}: enter a number"));
    }
    v.parse()
        .map_err(|_| format!("{field}: {value:?} is not a whole number in range"))
}

/// "re, im" as two finite numbers.
fn complex(field: &str, value: &str) -> Result<(f64, f64), String> {
    let parse = |v: &str| v.trim().parse::<f64>().ok().filter(|v| v.is_finite());
    value
        .split_once(',')
        .and_then(|(re, im)| Some((parse(re)?, parse(im)?)))
        .ok_or_else(|| {
            format!("{field}: {value:?} is not two numbers \"re, im\", e.g. -0.8, 0.156")
        })
}

impl JobForm {
    /// A square image with the size, iterations and tiles typed, over `view`.
    fn image(&self, view: mandelbrot::Params) -> Result<mandelbrot::Params, String> {
        let side = number::<u32>("size", &self.size)?;
        let tiles = number::<u32>("tiles per side", &self.tiles)?;
        if tiles == 0 {
            return Err("tiles per side: at least 1".into());
        }
        if side > mandelbrot::SIDE_MAX {
            return Err(format!(
                "size: {side} pixels is over the {} limit",
                mandelbrot::SIDE_MAX
            ));
        }
        Ok(mandelbrot::Params {
            width: side,
            height: side,
            max_iter: number("iterations", &self.max_iter)?,
            tiles_x: tiles,
            tiles_y: tiles,
            ..view
        })
    }

    /// The kernel the fields describe, checked.
    pub fn kernel(&self) -> Result<Kernel, String> {
        let kernel = match self.kernel.as_str() {
            "mandelbrot" => Kernel::Mandelbrot(self.image(mandelbrot::Params::default())?),
            "julia" => {
                let (c_re, c_im) = complex("c", &self.c)?;
                Kernel::Julia(julia::Params {
                    image: self.image(julia::Params::default().image)?,
                    c_re,
                    c_im,
                })
            }
            "primes" => Kernel::Primes(primes::Params {
                n: number("count up to", &self.n)?,
                ranges: number("ranges", &self.ranges)?,
            }),
            "pi" => Kernel::MonteCarloPi(monte_carlo::Params {
                samples_per_task: number("samples per task", &self.samples)?,
                tasks: number("tasks", &self.tasks)?,
                seed: 1,
            }),
            other => return Err(format!("kernel: {other:?} is not one this page knows")),
        };
        kernel.validate().map_err(|e| e.to_string())?;
        Ok(kernel)
    }

    /// The submit command for node `me`, or why the form is refused.
    pub fn submit(&self, me: NodeId, nonce: u64) -> Result<Command, String> {
        let kernel = self.kernel()?;
        let spec = JobSpec {
            kernel,
            replication: number("r (copies)", &self.replicas)?,
            quorum: number("q (quorum)", &self.quorum)?,
            pacing_ms: number("pacing", &self.pacing_ms)?,
            submitter: me,
            nonce,
        };
        spec.validate().map_err(|e| match e {
            JobError::Kernel(k) => k.to_string(),
            other => other.to_string(),
        })?;
        Ok(Command::Submit {
            kernel: spec.kernel,
            replication: spec.replication,
            quorum: spec.quorum,
            pacing_ms: spec.pacing_ms,
            nonce,
        })
    }
}

/// Live members the liar scenario needs beside its liar: honest ones, so that two
/// honest results can always agree on every task (`q = 2`) with one to spare when a
/// member is slow or leaves.
pub const LIAR_SCENARIO_HONEST_MIN: usize = 3;

/// Whether the liar scenario can show a liar caught, with `live` members now (this tab
/// included) of which `lying` lie on a presenter's command and `caught` more were caught
/// lying before (their results count for nothing; a reset does not undo evidence): the
/// new liar must leave at least [`LIAR_SCENARIO_HONEST_MIN`] honest members, and no
/// other member may be lying now (liars tell the same lie, so two of them agree with
/// each other and reach `q = 2` with a wrong result). Otherwise, what is missing, in
/// words.
pub fn liar_scenario_check(live: usize, lying: usize, caught: usize) -> Result<(), String> {
    let honest = live.saturating_sub(lying + caught + 1);
    if lying > 0 {
        return Err(format!(
            "the liar scenario starts nothing: {lying} {} already lying, and two liars tell the same lie, which can reach q = 2; reset first (r)",
            if lying == 1 {
                "member is"
            } else {
                "members are"
            }
        ));
    }
    if honest < LIAR_SCENARIO_HONEST_MIN {
        return Err(format!(
            "the liar scenario starts nothing: it needs a liar and {LIAR_SCENARIO_HONEST_MIN} honest members (two to agree on every result, one to spare), and there {} {live} {} live{}; let more join from the QR code (q)",
            if live == 1 { "is" } else { "are" },
            if live == 1 { "member" } else { "members" },
            if caught > 0 {
                format!(", {caught} of them caught lying before")
            } else {
                String::new()
            }
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(f: impl FnOnce(&mut JobForm)) -> String {
        let mut form = JobForm::default();
        f(&mut form);
        form.submit(NodeId(7), 1).expect_err("should be refused")
    }

    #[test]
    fn the_default_form_and_each_kernel_submit() {
        for ((kernel, _), name) in
            KERNELS
                .iter()
                .zip(["mandelbrot", "julia", "primes", "monte_carlo_pi"])
        {
            let form = JobForm {
                kernel: (*kernel).into(),
                ..JobForm::default()
            };
            let Ok(Command::Submit { kernel: k, .. }) = form.submit(NodeId(7), 1) else {
                panic!("{kernel} refused");
            };
            assert_eq!(k.name(), name);
        }
        let Ok(Command::Submit {
            kernel: Kernel::Mandelbrot(p),
            replication: 2,
            quorum: 1,
            ..
        }) = JobForm::default().submit(NodeId(7), 1)
        else {
            panic!("default form");
        };
        assert_eq!(
            (p.width, p.height, p.tiles_x, p.tiles_y),
            (512, 512, 16, 16)
        );
    }

    #[test]
    fn every_invalid_field_is_refused_with_its_reason() {
        assert_eq!(
            refused(|f| f.tiles = "0".into()),
            "tiles per side: at least 1"
        );
        assert!(refused(|f| f.size = "abc".into()).starts_with("size: \"abc\" is not"));
        assert_eq!(refused(|f| f.size = " ".into()), "size: enter a number");
        assert!(refused(|f| f.size = "20000".into()).contains("over the 16384 limit"));
        // 8192² is within the side limit but over the pixel limit.
        assert!(refused(|f| f.size = "8192".into()).contains("pixels"));
        assert!(refused(|f| f.size = "-5".into()).starts_with("size:"));
        assert!(refused(|f| f.tiles = "600".into()).contains("tile grid does not fit"));
        assert!(refused(|f| f.kernel = "sha".into()).contains("\"sha\""));
        assert!(refused(|f| f.quorum = "3".into()).contains("quorum 3 is over the replication 2"));
        assert!(refused(|f| f.replicas = "0".into()).contains("between 1 and"));
        assert!(refused(|f| f.pacing_ms = "600000".into()).contains("pacing"));
        // One tile of 2048², a byte a pixel, would be 4 MiB: over the task output limit.
        let big = refused(|f| {
            f.size = "2048".into();
            f.tiles = "1".into();
        });
        assert!(big.contains("more tasks"), "{big}");
        assert!(
            refused(|f| {
                f.kernel = "primes".into();
                f.ranges = "0".into();
            })
            .contains("primes")
        );
        assert!(
            refused(|f| {
                f.kernel = "pi".into();
                f.tasks = "x".into();
            })
            .starts_with("tasks:")
        );
        let julia = |c: &str| {
            refused(|f| {
                f.kernel = "julia".into();
                f.c = c.into();
            })
        };
        for bad in ["", "-0.8", "a, b", "1, 2, 3", "inf, 0", "NaN, 0"] {
            assert!(julia(bad).starts_with("c: "), "{bad:?}: {}", julia(bad));
        }
        let far = julia("3, 0");
        assert!(far.contains("julia") && far.contains("c_re 3"), "{far}");
        assert!(
            refused(|f| {
                f.kernel = "julia".into();
                f.tiles = "0".into();
            })
            .contains("tiles per side")
        );
    }

    #[test]
    fn a_julia_form_carries_its_c() {
        let form = JobForm {
            kernel: "julia".into(),
            c: " 0.285 , -0.01 ".into(),
            ..JobForm::default()
        };
        let Ok(Command::Submit {
            kernel: Kernel::Julia(j),
            ..
        }) = form.submit(NodeId(7), 1)
        else {
            panic!("julia refused");
        };
        assert_eq!((j.c_re, j.c_im), (0.285, -0.01));
        assert_eq!((j.image.width, j.image.tiles_x), (512, 16));
        assert_eq!(j.image.x_min, julia::Params::default().image.x_min);
    }

    #[test]
    fn the_liar_scenario_says_what_it_lacks_instead_of_starting() {
        assert_eq!(liar_scenario_check(4, 0, 0), Ok(()));
        assert_eq!(liar_scenario_check(9, 0, 0), Ok(()));
        // A member caught before is no honest member, and blocks nothing by itself.
        assert_eq!(liar_scenario_check(5, 0, 1), Ok(()));
        let spent = liar_scenario_check(4, 0, 1).unwrap_err();
        assert!(spent.contains("1 of them caught lying before"), "{spent}");
        let few = liar_scenario_check(3, 0, 0).unwrap_err();
        assert!(
            few.contains("3 honest members") && few.contains("there are 3 members live"),
            "{few}"
        );
        let alone = liar_scenario_check(1, 0, 0).unwrap_err();
        assert!(alone.contains("there is 1 member live"), "{alone}");
        let liars = liar_scenario_check(8, 1, 0).unwrap_err();
        assert!(liars.contains("1 member is already lying"), "{liars}");
    }
}
