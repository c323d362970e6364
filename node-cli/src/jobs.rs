//! `meshwork run` and `meshwork submit`: a job's parameters from the command line, its
//! output written as a PNG or JSON, computed by this process alone or by a mesh.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Args, ValueEnum};
use node_core::engine::{Command, Event};
use node_core::job::{JobId, JobSpec, NodeId};
use node_core::kernels::{JobOutput, Kernel, julia, mandelbrot, monte_carlo, primes};
use serde_json::json;

/// The kernels a job can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum KernelKind {
    /// The Mandelbrot set as an image, one task per tile.
    Mandelbrot,
    /// A Julia set (see --c) as an image, one task per tile.
    Julia,
    /// Count the primes up to N, one task per range.
    Primes,
    /// Estimate π by Monte Carlo, one task per batch of samples.
    Pi,
}

/// What to compute, and where the output goes.
#[derive(Args, Debug, Clone)]
pub struct JobArgs {
    /// The kernel: mandelbrot or julia (write a PNG), primes or pi (write JSON).
    #[arg(long, value_enum)]
    pub kernel: KernelKind,
    /// mandelbrot, julia: image width in pixels.
    #[arg(long, default_value_t = 1024, help_heading = "Mandelbrot and Julia")]
    pub width: u32,
    /// mandelbrot, julia: image height in pixels.
    #[arg(long, default_value_t = 1024, help_heading = "Mandelbrot and Julia")]
    pub height: u32,
    /// mandelbrot, julia: iteration cap.
    #[arg(long, default_value_t = 1000, help_heading = "Mandelbrot and Julia")]
    pub max_iter: u32,
    /// mandelbrot, julia: tiles across and down, COLSxROWS; each tile is a task.
    #[arg(long, default_value = "16x16", help_heading = "Mandelbrot and Julia")]
    pub tiles: String,
    /// mandelbrot, julia: the region of the plane, X_MIN,X_MAX,Y_MIN,Y_MAX
    /// [default: -2,1,-1.5,1.5 for mandelbrot, -1.6,1.6,-1.6,1.6 for julia].
    #[arg(
        long,
        allow_hyphen_values = true,
        help_heading = "Mandelbrot and Julia"
    )]
    pub view: Option<String>,
    /// julia: the constant c, RE,IM.
    #[arg(
        long,
        default_value = "-0.8,0.156",
        allow_hyphen_values = true,
        help_heading = "Mandelbrot and Julia"
    )]
    pub c: String,
    /// primes: count the primes up to N.
    #[arg(long, default_value_t = 100_000_000, help_heading = "Primes")]
    pub n: u64,
    /// primes: tasks (ranges of equal length).
    #[arg(long, default_value_t = 64, help_heading = "Primes")]
    pub ranges: u32,
    /// pi: samples drawn by each task.
    #[arg(long, default_value_t = 1_000_000, help_heading = "Pi")]
    pub samples_per_task: u64,
    /// pi: tasks.
    #[arg(long, default_value_t = 64, help_heading = "Pi")]
    pub tasks: u32,
    /// pi: seed of the whole job (the same seed gives the same estimate).
    #[arg(long, default_value_t = 1, help_heading = "Pi")]
    pub seed: u64,
    /// Write the output to this file (an image needs one: a PNG); without it, counts
    /// and estimates are printed as JSON on stdout.
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_pair(s: &str, what: &str) -> Result<(u32, u32)> {
    let (a, b) = s
        .split_once(['x', 'X'])
        .with_context(|| format!("{what} {s:?} is not COLSxROWS, e.g. 16x16"))?;
    let parse = |v: &str| {
        v.trim()
            .parse::<u32>()
            .with_context(|| format!("{what} {s:?}: {v:?} is not a whole number"))
    };
    Ok((parse(a)?, parse(b)?))
}

/// `N` comma-separated numbers, for the option `flag` whose form is `form`.
fn parse_numbers<const N: usize>(s: &str, flag: &str, form: &str) -> Result<[f64; N]> {
    let parts: Vec<&str> = s.split(',').collect();
    if parts.len() != N {
        bail!("{flag} {s:?} is not {form}");
    }
    let mut out = [0.0; N];
    for (o, p) in out.iter_mut().zip(parts) {
        *o = p
            .trim()
            .parse()
            .with_context(|| format!("{flag} {s:?}: {p:?} is not a number"))?;
    }
    Ok(out)
}

impl JobArgs {
    /// The image options over `default`'s region unless --view gives one.
    fn image(&self, default: mandelbrot::Params) -> Result<mandelbrot::Params> {
        let (tiles_x, tiles_y) = parse_pair(&self.tiles, "--tiles")?;
        let [x_min, x_max, y_min, y_max] = match &self.view {
            Some(view) => parse_numbers(view, "--view", "X_MIN,X_MAX,Y_MIN,Y_MAX")?,
            None => [default.x_min, default.x_max, default.y_min, default.y_max],
        };
        Ok(mandelbrot::Params {
            x_min,
            x_max,
            y_min,
            y_max,
            width: self.width,
            height: self.height,
            max_iter: self.max_iter,
            tiles_x,
            tiles_y,
        })
    }

    /// The kernel these arguments describe, checked.
    pub fn kernel(&self) -> Result<Kernel> {
        let kernel = match self.kernel {
            KernelKind::Mandelbrot => {
                Kernel::Mandelbrot(self.image(mandelbrot::Params::default())?)
            }
            KernelKind::Julia => {
                let [c_re, c_im] = parse_numbers(&self.c, "--c", "RE,IM")?;
                Kernel::Julia(julia::Params {
                    image: self.image(julia::Params::default().image)?,
                    c_re,
                    c_im,
                })
            }
            KernelKind::Primes => Kernel::Primes(primes::Params {
                n: self.n,
                ranges: self.ranges,
            }),
            KernelKind::Pi => Kernel::MonteCarloPi(monte_carlo::Params {
                samples_per_task: self.samples_per_task,
                tasks: self.tasks,
                seed: self.seed,
            }),
        };
        kernel.validate()?;
        if kernel.image().is_some() && self.out.is_none() {
            bail!("an image needs a file: add --out FILE.png");
        }
        Ok(kernel)
    }
}

/// Writes a job's output: a PNG for an image, JSON otherwise (to stdout without a file).
pub fn write_output(output: &JobOutput, out: Option<&Path>) -> Result<()> {
    match output {
        JobOutput::Image {
            width,
            height,
            rgba,
        } => {
            let path = out.context("an image needs --out FILE.png")?;
            let file = std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?;
            let mut enc = png::Encoder::new(std::io::BufWriter::new(file), *width, *height);
            enc.set_color(png::ColorType::Rgba);
            enc.set_depth(png::BitDepth::Eight);
            let mut w = enc
                .write_header()
                .with_context(|| format!("cannot write {}", path.display()))?;
            w.write_image_data(rgba)
                .with_context(|| format!("cannot write {}", path.display()))?;
            w.finish()
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        JobOutput::Count { n, count } => {
            write_json(&json!({"kernel": "primes", "n": n, "count": count}), out)?
        }
        JobOutput::Estimate {
            samples,
            inside,
            pi,
        } => write_json(
            &json!({"kernel": "pi", "samples": samples, "inside": inside, "pi": pi}),
            out,
        )?,
    }
    Ok(())
}

fn write_json(v: &serde_json::Value, out: Option<&Path>) -> Result<()> {
    match out {
        Some(path) => std::fs::write(path, format!("{v}\n"))
            .with_context(|| format!("cannot write {}", path.display())),
        None => {
            println!("{v}");
            Ok(())
        }
    }
}

/// Computes every task of `kernel` on `workers` threads of this process and assembles
/// the output: the reference a mesh's output is compared with.
pub fn run_local(kernel: &Kernel, workers: usize) -> Result<JobOutput> {
    let tasks = kernel.task_count();
    let next = AtomicU32::new(0);
    let mut outputs: Vec<Vec<u8>> = vec![Vec::new(); tasks as usize];
    let results: Vec<Vec<(u32, Vec<u8>)>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..workers.max(1))
            .map(|_| {
                s.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let t = next.fetch_add(1, Ordering::Relaxed);
                        if t >= tasks {
                            return Ok(mine);
                        }
                        let mut out = Vec::new();
                        kernel.run_task(t, &mut out)?;
                        mine.push((t, out));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect::<Result<Vec<_>, node_core::kernels::KernelError>>()
    })?;
    for (t, out) in results.into_iter().flatten() {
        outputs[t as usize] = out;
    }
    let refs: Vec<&[u8]> = outputs.iter().map(Vec::as_slice).collect();
    Ok(kernel.assemble(&refs)?)
}

/// Shows a job's progress on stderr: a bar on a terminal, a line per tenth otherwise.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    last_tenth: u32,
    started: Instant,
}

impl Progress {
    pub fn new(quiet: bool) -> Progress {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = indicatif::ProgressBar::new(0);
            bar.set_style(
                indicatif::ProgressStyle::with_template(
                    "{spinner} [{bar:40}] {pos}/{len} tasks validated, {msg} ({per_sec}, ETA {eta})",
                )
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(200));
            bar
        });
        Progress {
            bar,
            last_tenth: 0,
            started: Instant::now(),
        }
    }

    pub fn update(&mut self, validated: u32, tasks: u32, nodes: usize) {
        if let Some(bar) = &self.bar {
            bar.set_length(u64::from(tasks));
            bar.set_position(u64::from(validated));
            bar.set_message(format!("{nodes} node(s)"));
            return;
        }
        let tenth = validated * 10 / tasks.max(1);
        if tenth > self.last_tenth {
            self.last_tenth = tenth;
            let secs = self.started.elapsed().as_secs_f64();
            eprintln!(
                "{validated}/{tasks} tasks validated, {nodes} node(s), {:.1} tasks/s",
                f64::from(validated) / secs.max(1e-3)
            );
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

/// A submitter's view of its job, fed with the node's events.
pub struct Submission {
    pub spec: JobSpec,
    pub id: JobId,
    pub output: Option<JobOutput>,
    pub refused: Option<String>,
    pub validated: u32,
}

impl Submission {
    pub fn new(
        kernel: Kernel,
        replication: u8,
        quorum: u8,
        pacing_ms: u32,
        me: NodeId,
        nonce: u64,
    ) -> Self {
        let spec = JobSpec {
            kernel,
            replication,
            quorum,
            pacing_ms,
            submitter: me,
            nonce,
        };
        let id = spec.id();
        Submission {
            spec,
            id,
            output: None,
            refused: None,
            validated: 0,
        }
    }

    pub fn command(&self) -> Command {
        Command::Submit {
            kernel: self.spec.kernel.clone(),
            replication: self.spec.replication,
            quorum: self.spec.quorum,
            pacing_ms: self.spec.pacing_ms,
            nonce: self.spec.nonce,
        }
    }

    /// Takes what concerns this job; says whether it ended (done or refused).
    pub fn on_event(&mut self, e: &Event) -> bool {
        match e {
            Event::JobProgress {
                job,
                tasks_validated,
                ..
            } if *job == self.id => self.validated = *tasks_validated,
            Event::JobDone { job, output, .. } if *job == self.id => {
                self.output = Some(output.clone());
                return true;
            }
            Event::JobRefused { job, why } if *job == self.id => {
                self.refused = Some(why.clone());
                return true;
            }
            Event::JobFailed { job, why } if *job == self.id => {
                self.refused = Some(why.clone());
                return true;
            }
            _ => {}
        }
        false
    }
}

/// Prints a line to stderr right away (progress lines must not wait for a buffer).
pub fn say(line: &str) {
    let mut err = std::io::stderr();
    let _ = writeln!(err, "{line}");
}
