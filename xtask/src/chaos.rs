//! `cargo xtask chaos [--minutes N] [--seed S] [--natives K]`: native nodes, the
//! signaling server and a submitter run through seeded faults while jobs run all the
//! time; a checker outside the members compares every output with `meshwork run`'s and
//! watches for stalls, members shown gone while alive, and panics.
//!
//! Everything runs in a network namespace made for the run. Each member binds its
//! WebRTC sockets to an address of its own on that namespace's loopback (127.0.1.x for
//! the natives, 127.0.2.x for the submitter, the server on 127.0.0.2), so nftables rules
//! on addresses can cut one link, isolate one member, split the mesh or drop a share
//! of one member's packets, without touching anything outside the namespace.
//!
//! Faults, drawn from the seed (the schedule is printed; `--seed S` draws the same faults
//! in the same order, though when each starts, and so which natives are up to be drawn,
//! can shift with how fast the mesh recovers):
//! SIGKILL of a native and a new one started in its place; SIGSTOP of a native for
//! 1-8 s; a link between two natives cut; a native isolated from the others; the natives
//! split in two halves; 1-20 % of a native's packets dropped; the server SIGKILLed and
//! restarted on the same address (tokens survive: `--resume-key-file`). At least two
//! natives stay up and running at any time. Tabs, bandwidth caps and the presenter's
//! console commands are not among the faults yet.
//!
//! The checks: every job ends with `meshwork run`'s bytes (a job is a fresh
//! `meshwork submit`: seeded kernel, size, `r`, `q`, pacing); no job goes [`STALL`]
//! without a validated task; once the faults stop, within [`SETTLE`] every living native
//! counts every other living native among its peers; no process printed a panic. The
//! report gives faults by kind, jobs by outcome, the time from each fault to the first
//! native that noticed it and to a whole mesh again, and the largest RSS of the server
//! and of each native.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::Value;

/// A job without a newly validated task for this long is stalled. The longest fault
/// lasts 8 s, a departure is declared after 1.5 s of silence and the server comes back
/// within 3 s, so a healthy mesh validates something well within it.
const STALL: Duration = Duration::from_secs(30);
/// After the last fault is healed, every living native sees every other within this.
const SETTLE: Duration = Duration::from_secs(20);
/// The server's address in the namespace.
const SERVER: &str = "127.0.0.2:18700";
const ROOM: &str = "chaos";

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    checked(root, args).map(|_| ())
}

/// Runs chaos as `cargo xtask chaos ARGS` does: `Ok(true)` when it ran without a
/// violation, `Ok(false)` when it skipped (no root; never under `CI=true`).
pub fn checked(root: &Path, args: &[String]) -> Result<bool> {
    let opts = &Opts::parse(args)?;
    if let Err(why) = can_run() {
        let msg = format!(
            "chaos: skipped: {why}. It needs root (a network namespace and nftables): run it as root"
        );
        if std::env::var("CI").is_ok_and(|v| v == "true" || v == "1") {
            bail!("{msg} (CI=true: nothing may skip)");
        }
        println!("{msg}");
        return Ok(false);
    }
    let bin = crate::bench::build_release(root)?;
    let dir = crate::bench::target_dir(root).join(format!("chaos-{}", opts.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    println!(
        "chaos: seed {}, {} minute(s), {} natives; logs in {}",
        opts.seed,
        opts.minutes,
        opts.natives,
        dir.display()
    );
    let sandbox = Sandbox::create()?;
    let mut run = Run::new(&bin, &dir, &sandbox, opts)?;
    let outcome = run.go(opts);
    run.stop_all();
    let report = run.report(opts);
    println!("{report}");
    std::fs::write(dir.join("report.txt"), &report)?;
    std::fs::write(dir.join("plot.svg"), run.plot())?;
    println!(
        "chaos: plot of validated tasks per second in {}",
        dir.join("plot.svg").display()
    );
    outcome?;
    if run.violations.is_empty() {
        println!("chaos: no violation (seed {})", opts.seed);
        Ok(true)
    } else {
        for v in &run.violations {
            println!("VIOLATION: {v}");
        }
        bail!(
            "chaos: {} violation(s) with seed {} (replay with `cargo xtask chaos --seed {} --minutes {}`); logs in {}",
            run.violations.len(),
            opts.seed,
            opts.seed,
            opts.minutes,
            dir.display()
        )
    }
}

struct Opts {
    minutes: f64,
    seed: u64,
    natives: usize,
}

impl Default for Opts {
    /// Three minutes, a seed from the clock, four natives.
    fn default() -> Opts {
        Opts {
            minutes: 3.0,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs()),
            natives: 4,
        }
    }
}

impl Opts {
    fn parse(args: &[String]) -> Result<Opts> {
        let mut o = Opts::default();
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |what: &str| {
                it.next()
                    .with_context(|| format!("chaos: {a} needs {what}"))
                    .cloned()
            };
            match a.as_str() {
                "--minutes" => {
                    let v = value("a number of minutes")?;
                    o.minutes = v
                        .parse()
                        .ok()
                        .filter(|m: &f64| m.is_finite() && *m > 0.0 && *m <= 600.0)
                        .with_context(|| {
                            format!("chaos: --minutes {v:?}: a number above 0, at most 600")
                        })?;
                }
                "--seed" => {
                    let v = value("a seed")?;
                    o.seed = v
                        .parse()
                        .with_context(|| format!("chaos: --seed {v:?} is not a whole number"))?;
                }
                "--natives" => {
                    let v = value("a count")?;
                    o.natives = v
                        .parse()
                        .ok()
                        .filter(|n| (3..=8).contains(n))
                        .with_context(|| format!("chaos: --natives {v:?}: 3 to 8"))?;
                }
                other => bail!(
                    "chaos: unknown argument {other:?}; usage: cargo xtask chaos [--minutes N] [--seed S] [--natives K]"
                ),
            }
        }
        Ok(o)
    }
}

/// Whether this machine can make namespaces and nftables rules.
fn can_run() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("cannot run `id`: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err("not root".into());
    }
    for tool in ["ip", "nft"] {
        let found = Command::new(tool)
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !found {
            return Err(format!(
                "`{tool}` is missing (`cargo xtask setup` installs nftables)"
            ));
        }
    }
    Ok(())
}

/// splitmix64: the run's only source of randomness, so a seed replays its draws.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// A whole number in `lo..=hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.below(hi - lo + 1)
    }

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        xs[self.below(xs.len() as u64) as usize]
    }
}

/// The run's network namespace, with an nftables chain whose rules are the faults on
/// links in force. Deleted on drop.
struct Sandbox {
    ns: String,
}

impl Sandbox {
    fn create() -> Result<Sandbox> {
        let ns = format!("meshwork-chaos-{}", std::process::id());
        ip(&["netns", "add", &ns])?;
        let s = Sandbox { ns };
        ip(&["netns", "exec", &s.ns, "ip", "link", "set", "lo", "up"])?;
        // Rules act where packets arrive, so that a dropped packet vanishes as on a real
        // network: dropped on the way out, it would fail the sender's write with EPERM,
        // which a WebRTC stack takes for a broken path at once.
        s.nft("add table inet chaos\nadd chain inet chaos drops { type filter hook input priority 0; policy accept; }\n")?;
        Ok(s)
    }

    /// `prog args` inside the namespace.
    fn command(&self, prog: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns]).arg(prog).args(args);
        c
    }

    fn nft(&self, script: &str) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.ns, "nft", "-f", "-"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("running nft")?;
        child
            .stdin
            .take()
            .context("nft's stdin")?
            .write_all(script.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "nft refused {script:?}: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }

    /// Replaces the rules in force with `rules` (one nftables rule each), at once.
    fn set_rules(&self, rules: &[String]) -> Result<()> {
        let mut script = String::from("flush chain inet chaos drops\n");
        for r in rules {
            script.push_str(&format!("add rule inet chaos drops {r}\n"));
        }
        self.nft(&script)
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.ns]);
    }
}

/// A fault begins: the faults not yet followed by a whole mesh can no longer be timed
/// alone.
fn overlap(records: &mut [Record]) {
    for r in records {
        r.overlapped |= r.whole_ms.is_none();
    }
}

fn ip(args: &[&str]) -> Result<()> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .context("running ip")?;
    if !out.status.success() {
        bail!(
            "`ip {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

/// What the checker keeps of a member's JSON lines (all of them go to its stdout log).
#[derive(Default)]
struct Seen {
    /// The id it joined under (`joined`), or `listening` for the server.
    id: Option<String>,
    listening: bool,
    /// Peers it counts as connected now.
    peers: BTreeSet<String>,
    /// Peers it declared gone, and when that was read.
    departures: Vec<(Instant, String)>,
    /// When each `task_validated` line was read (a submitter's progress).
    validated: Vec<Instant>,
}

impl Seen {
    fn take(&mut self, at: Instant, v: &Value) {
        let peer = v["peer"].as_str().unwrap_or_default().to_string();
        match v["event"].as_str() {
            Some("joined") => self.id = v["id"].as_str().map(String::from),
            Some("listening") => self.listening = true,
            Some("peer_connected" | "peer_back") => {
                self.peers.insert(peer);
            }
            Some("peer_left" | "peer_gone") => {
                self.peers.remove(&peer);
                self.departures.push((at, peer));
            }
            Some("task_validated") => self.validated.push(at),
            _ => {}
        }
    }
}

/// A process started here: what its JSON lines said ([`Seen`]), every line in a log
/// file, its stderr in another (read for panics at the end); killed on drop.
struct Proc {
    child: Child,
    seen: Arc<Mutex<Seen>>,
}

impl Proc {
    fn spawn(mut cmd: Command, stderr: PathBuf, stdout_log: PathBuf) -> Result<Proc> {
        let err = File::create(&stderr)?;
        let mut log = File::create(&stdout_log)?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .context("starting a member")?;
        let out = child.stdout.take().context("stdout")?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let _ = writeln!(log, "{line}");
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && let Ok(mut s) = sink.lock()
                {
                    s.take(Instant::now(), &v);
                }
            }
        });
        Ok(Proc { child, seen })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads what its lines said so far.
    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        match self.seen.lock() {
            Ok(s) => f(&s),
            Err(e) => f(&e.into_inner()),
        }
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    fn rss_kib(&self) -> Option<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // A stopped process must run again to die of SIGKILL promptly.
        if matches!(self.child.try_wait(), Ok(None)) {
            self.signal("-CONT");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One native slot: the process now in it (a new one after each kill).
struct Native {
    name: String,
    addr: String,
    proc: Option<Proc>,
    lives: u32,
    stopped_until: Option<Instant>,
    rss_max_kib: u64,
}

impl Native {
    /// The id it joined under, once it has.
    fn id(&self) -> Option<String> {
        self.proc.as_ref()?.with(|s| s.id.clone())
    }

    /// The peers it counts as connected now.
    fn sees(&self) -> BTreeSet<String> {
        self.proc
            .as_ref()
            .map(|p| p.with(|s| s.peers.clone()))
            .unwrap_or_default()
    }

    fn running(&self) -> bool {
        self.proc.is_some() && self.stopped_until.is_none()
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Kill,
    Stop,
    CutLink,
    Isolate,
    Split,
    Loss,
    ServerKill,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Kill,
        Kind::Stop,
        Kind::CutLink,
        Kind::Isolate,
        Kind::Split,
        Kind::Loss,
        Kind::ServerKill,
    ];

    /// A word for the plot's legend.
    fn short(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Stop => "stop",
            Kind::CutLink => "cut link",
            Kind::Isolate => "isolate",
            Kind::Split => "split",
            Kind::Loss => "loss",
            Kind::ServerKill => "server kill",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "SIGKILL a native, start a new one",
            Kind::Stop => "SIGSTOP a native, then SIGCONT",
            Kind::CutLink => "cut the link between two natives",
            Kind::Isolate => "isolate a native from the others",
            Kind::Split => "split the natives in two halves",
            Kind::Loss => "drop a share of a native's packets",
            Kind::ServerKill => "SIGKILL the server, restart it",
        }
    }
}

/// A fault in force, undone at `until`.
struct Active {
    kind: Kind,
    at: Instant,
    until: Instant,
    /// Natives it concerns (by slot).
    who: Vec<usize>,
    /// nftables rules it adds while in force.
    rules: Vec<String>,
}

/// What became of one fault, for the report.
struct Record {
    kind: Kind,
    at: Instant,
    /// The ids of the natives it concerns, as they were when it began.
    ids: Vec<String>,
    healed: Option<Instant>,
    noticed_ms: Option<f64>,
    whole_ms: Option<f64>,
    /// Another fault began before the mesh was whole again, or was in force when this
    /// one was undone: its `whole_ms` would measure both, so it is not taken.
    overlapped: bool,
}

struct JobRun {
    proc: Proc,
    args: Vec<String>,
    out: PathBuf,
    reference: PathBuf,
    started: Instant,
    last_progress: Instant,
    validated: usize,
}

#[derive(Default)]
struct JobTally {
    exact: usize,
    wrong: usize,
    failed: usize,
    stalled: usize,
    secs: Vec<f64>,
}

struct Run<'a> {
    bin: PathBuf,
    dir: PathBuf,
    sandbox: &'a Sandbox,
    rng: Rng,
    start: Instant,
    server: Option<Proc>,
    server_lives: u32,
    server_rss_max_kib: u64,
    server_back_at: Option<Instant>,
    natives: Vec<Native>,
    active: Vec<Active>,
    records: Vec<Record>,
    schedule: Vec<String>,
    /// Every kind of fault, in the order the seed gave them: the first faults.
    order: Vec<Kind>,
    job: Option<JobRun>,
    jobs_started: u32,
    jobs: JobTally,
    references: BTreeMap<String, PathBuf>,
    violations: Vec<String>,
    /// When each task of the jobs that ended was validated, for the plot.
    validated_at: Vec<Instant>,
}

impl<'a> Run<'a> {
    fn new(bin: &Path, dir: &Path, sandbox: &'a Sandbox, opts: &Opts) -> Result<Run<'a>> {
        let natives = (0..opts.natives)
            .map(|i| Native {
                name: format!("native-{}", i + 1),
                addr: format!("127.0.1.{}", i + 1),
                proc: None,
                lives: 0,
                stopped_until: None,
                rss_max_kib: 0,
            })
            .collect();
        let mut rng = Rng(opts.seed);
        let mut order = Kind::ALL.to_vec();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        Ok(Run {
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            sandbox,
            rng,
            start: Instant::now(),
            server: None,
            server_lives: 0,
            server_rss_max_kib: 0,
            server_back_at: None,
            natives,
            active: Vec::new(),
            records: Vec::new(),
            schedule: Vec::new(),
            order,
            job: None,
            jobs_started: 0,
            jobs: JobTally::default(),
            references: BTreeMap::new(),
            violations: Vec::new(),
            validated_at: Vec::new(),
        })
    }

    fn secs(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.start).as_secs_f64()
    }

    fn say(&mut self, what: String) {
        let line = format!("[{:7.2} s] {what}", self.secs(Instant::now()));
        println!("{line}");
        self.schedule.push(line);
    }

    fn start_server(&mut self) -> Result<()> {
        self.server_lives += 1;
        let dist = self.dir.join("no-dist");
        let keys = self.dir.join("resume.key");
        let args = [
            "serve",
            "--bind",
            SERVER,
            "--json",
            "--dist",
            &dist.display().to_string(),
            "--resume-key-file",
            &keys.display().to_string(),
            "--messages-per-second-max",
            "1000",
        ]
        .map(String::from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = self
            .dir
            .join(format!("server.{}.stderr", self.server_lives));
        let out = self
            .dir
            .join(format!("server.{}.stdout", self.server_lives));
        let p = Proc::spawn(self.sandbox.command(&self.bin, &args), stderr, out)?;
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if p.with(|s| s.listening) {
                self.server = Some(p);
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        bail!("the server did not start (see {})", self.dir.display())
    }

    fn start_native(&mut self, i: usize) -> Result<()> {
        let n = &mut self.natives[i];
        n.lives += 1;
        let server = format!("http://{SERVER}");
        let args = [
            "node",
            "--server",
            &server,
            "--room",
            ROOM,
            "--name",
            &n.name,
            "--ice-bind",
            &n.addr,
            "--workers",
            "1",
            "--json",
        ];
        let stderr = self.dir.join(format!("{}.{}.stderr", n.name, n.lives));
        let out = self.dir.join(format!("{}.{}.stdout", n.name, n.lives));
        n.proc = Some(Proc::spawn(
            self.sandbox.command(&self.bin, &args),
            stderr,
            out,
        )?);
        n.stopped_until = None;
        Ok(())
    }

    /// A native leaves only when killed here: one that exits by itself is a violation
    /// (with the first line of its stderr), and its slot stays empty.
    fn watch_natives(&mut self) {
        let mut exited = Vec::new();
        for n in &mut self.natives {
            if let Some(p) = &mut n.proc
                && let Ok(Some(status)) = p.child.try_wait()
            {
                let stderr = self.dir.join(format!("{}.{}.stderr", n.name, n.lives));
                let said = std::fs::read_to_string(&stderr)
                    .ok()
                    .and_then(|t| t.lines().find(|l| !l.trim().is_empty()).map(String::from))
                    .unwrap_or_default();
                exited.push(format!("{} exited by itself ({status}): {said}", n.name));
                n.proc = None;
                n.stopped_until = None;
            }
        }
        for msg in exited {
            self.violations.push(msg.clone());
            self.say(msg);
        }
    }

    /// Whether every living, running native counts every other among its peers.
    fn whole(&self) -> bool {
        let ids: Vec<(usize, String)> = self
            .natives
            .iter()
            .enumerate()
            .filter(|(_, n)| n.running())
            .filter_map(|(i, n)| n.id().map(|id| (i, id)))
            .collect();
        if ids.len() < self.natives.iter().filter(|n| n.running()).count() {
            return false;
        }
        ids.iter().all(|(i, _)| {
            let sees = self.natives[*i].sees();
            ids.iter().all(|(j, id)| j == i || sees.contains(id))
        })
    }

    fn go(&mut self, opts: &Opts) -> Result<()> {
        self.start_server()?;
        for i in 0..self.natives.len() {
            self.start_native(i)?;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while !self.whole() {
            if Instant::now() > deadline {
                bail!("the natives did not form a full mesh within 30 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.say(format!("{} natives in a full mesh", self.natives.len()));
        let end = Instant::now() + Duration::from_secs_f64(opts.minutes * 60.0);
        let mut next_fault = Instant::now() + Duration::from_secs(2);
        // Every other fault waits, after the one before, for the mesh to be whole again
        // (at most `SETTLE`): recovery is then timed alone. The others overlap.
        let mut wait_whole: Option<Instant> = None;
        while Instant::now() < end {
            let now = Instant::now();
            self.heal_due(now)?;
            if let Some(since) = wait_whole
                && (self.active.is_empty() && self.whole() || since.elapsed() > SETTLE)
            {
                wait_whole = None;
                next_fault = now + Duration::from_millis(self.rng.range(500, 2_000));
            }
            if wait_whole.is_none() && now >= next_fault {
                self.inject(now)?;
                next_fault = now + Duration::from_millis(self.rng.range(1_000, 5_000));
                if self.rng.below(2) == 0 {
                    wait_whole = Some(now);
                }
            }
            self.watch_job()?;
            self.watch_natives();
            self.watch_faults(now);
            self.sample_rss();
            std::thread::sleep(Duration::from_millis(50));
        }
        // The faults stop: every one is undone now.
        self.say("faults stop; healing every fault in force".into());
        let far = Instant::now() + Duration::from_secs(3600);
        self.heal_due(far)?;
        let healed = Instant::now();
        // The job under way finishes (or stalls).
        while self.job.is_some() {
            self.watch_job_only_finish()?;
            self.watch_natives();
            self.watch_faults(Instant::now());
            std::thread::sleep(Duration::from_millis(50));
        }
        while !self.whole() && healed.elapsed() < SETTLE {
            self.watch_natives();
            self.watch_faults(Instant::now());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.watch_faults(Instant::now());
        for kind in Kind::ALL {
            if !self.records.iter().any(|r| r.kind == kind) {
                self.violations.push(format!(
                    "no fault of the kind \"{}\" ran: the run was too short, or the natives were never up to receive it",
                    kind.name()
                ));
            }
        }
        if !self.whole() {
            let views: Vec<String> = self
                .natives
                .iter()
                .map(|n| format!("{} ({:?}) sees {:?}", n.name, n.id(), n.sees()))
                .collect();
            self.violations.push(format!(
                "{} s after the faults stopped, the living natives do not all see each other: {}",
                SETTLE.as_secs(),
                views.join("; ")
            ));
        } else {
            self.say(format!(
                "whole mesh {:.1} s after the faults stopped",
                healed.elapsed().as_secs_f64()
            ));
        }
        Ok(())
    }

    /// Draws and applies one fault, unless the draw would leave fewer than two natives
    /// up and running.
    fn inject(&mut self, now: Instant) -> Result<()> {
        // Every kind once first (in the seed's order, each until it could be applied),
        // so that even a short run has them all; then any.
        let kind = match self
            .order
            .iter()
            .find(|k| !self.records.iter().any(|r| r.kind == **k))
        {
            Some(k) => *k,
            None => self.rng.pick(&Kind::ALL),
        };
        // Ids before a kill takes one away, for telling when others noticed.
        let ids_before: Vec<(usize, String)> = self
            .natives
            .iter()
            .enumerate()
            .filter_map(|(i, n)| n.id().map(|id| (i, id)))
            .collect();
        let up: Vec<usize> = (0..self.natives.len())
            .filter(|i| {
                self.natives[*i].running() && !self.active.iter().any(|a| a.who.contains(i))
            })
            .collect();
        let running = self.natives.iter().filter(|n| n.running()).count();
        let hold_ms = self.rng.range(1_000, 8_000);
        let until = now + Duration::from_millis(hold_ms);
        let mut who = Vec::new();
        let mut rules = Vec::new();
        match kind {
            Kind::Kill | Kind::Stop => {
                if running <= 2 || up.is_empty() {
                    return Ok(());
                }
                let i = self.rng.pick(&up);
                who.push(i);
                let n = &mut self.natives[i];
                if kind == Kind::Kill {
                    if let Some(p) = n.proc.take() {
                        p.signal("-KILL");
                        drop(p);
                    }
                } else if let Some(p) = &n.proc {
                    p.signal("-STOP");
                    n.stopped_until = Some(until);
                }
            }
            Kind::CutLink | Kind::Isolate | Kind::Loss => {
                if up.len() < 2 {
                    return Ok(());
                }
                let a = self.rng.pick(&up);
                who.push(a);
                let addr = self.natives[a].addr.clone();
                match kind {
                    Kind::CutLink => {
                        let others: Vec<usize> = up.iter().copied().filter(|b| *b != a).collect();
                        let b = self.rng.pick(&others);
                        who.push(b);
                        let other = self.natives[b].addr.clone();
                        rules.push(format!("ip saddr {addr} ip daddr {other} drop"));
                        rules.push(format!("ip saddr {other} ip daddr {addr} drop"));
                    }
                    Kind::Isolate => {
                        // From the other members; the server (its signaling) stays.
                        rules.push(format!("ip saddr {addr} ip daddr 127.0.1.0/24 drop"));
                        rules.push(format!("ip saddr {addr} ip daddr 127.0.2.0/24 drop"));
                        rules.push(format!("ip daddr {addr} ip saddr 127.0.1.0/24 drop"));
                        rules.push(format!("ip daddr {addr} ip saddr 127.0.2.0/24 drop"));
                    }
                    _ => {
                        let pct = self.rng.range(1, 20);
                        rules.push(format!(
                            "ip saddr {addr} numgen random mod 100 < {pct} drop"
                        ));
                        rules.push(format!(
                            "ip daddr {addr} numgen random mod 100 < {pct} drop"
                        ));
                    }
                }
            }
            Kind::Split => {
                // The natives up, in two halves by position: alternate ones.
                let half: Vec<usize> = up.iter().copied().step_by(2).collect();
                let rest: Vec<usize> = up.iter().copied().skip(1).step_by(2).collect();
                if rest.is_empty() {
                    return Ok(());
                }
                for a in &half {
                    for b in &rest {
                        let (x, y) = (&self.natives[*a].addr, &self.natives[*b].addr);
                        rules.push(format!("ip saddr {x} ip daddr {y} drop"));
                        rules.push(format!("ip saddr {y} ip daddr {x} drop"));
                    }
                }
                who = up.clone();
            }
            Kind::ServerKill => {
                if self.server_back_at.is_some() {
                    return Ok(());
                }
                if let Some(p) = self.server.take() {
                    p.signal("-KILL");
                    drop(p);
                }
                let back = now + Duration::from_millis(self.rng.range(1_000, 3_000));
                self.server_back_at = Some(back);
                self.active.push(Active {
                    kind,
                    at: now,
                    until: back,
                    who: Vec::new(),
                    rules: Vec::new(),
                });
                overlap(&mut self.records);
                self.records.push(Record {
                    kind,
                    at: now,
                    ids: Vec::new(),
                    healed: None,
                    noticed_ms: None,
                    whole_ms: None,
                    overlapped: false,
                });
                self.say(format!(
                    "fault: {} for {} ms",
                    kind.name(),
                    back.duration_since(now).as_millis()
                ));
                return Ok(());
            }
        }
        let names: Vec<String> = who.iter().map(|i| self.natives[*i].name.clone()).collect();
        let ids: Vec<String> = ids_before
            .iter()
            .filter(|(i, _)| who.contains(i))
            .map(|(_, id)| id.clone())
            .collect();
        self.say(format!(
            "fault: {} ({}) for {hold_ms} ms{}",
            kind.name(),
            names.join(", "),
            if rules.is_empty() {
                String::new()
            } else {
                format!("; rules: {}", rules.join(" | "))
            }
        ));
        self.active.push(Active {
            kind,
            at: now,
            until,
            who: who.clone(),
            rules,
        });
        self.apply_rules()?;
        overlap(&mut self.records);
        self.records.push(Record {
            kind,
            at: now,
            ids,
            healed: None,
            noticed_ms: None,
            whole_ms: None,
            overlapped: false,
        });
        Ok(())
    }

    fn apply_rules(&self) -> Result<()> {
        let rules: Vec<String> = self.active.iter().flat_map(|a| a.rules.clone()).collect();
        self.sandbox.set_rules(&rules)
    }

    /// Undoes the faults due by `now`.
    fn heal_due(&mut self, now: Instant) -> Result<()> {
        // A killed native's successor starts only with the server up (`meshwork node`
        // exits when it cannot reach the server at start); the server comes back first.
        let server_up = self.server.is_some()
            || self
                .active
                .iter()
                .any(|a| a.kind == Kind::ServerKill && a.until <= now);
        let mut due: Vec<Active> = {
            let (due, keep) = std::mem::take(&mut self.active)
                .into_iter()
                .partition(|a| a.until <= now && (a.kind != Kind::Kill || server_up));
            self.active = keep;
            due
        };
        due.sort_by_key(|a| a.kind != Kind::ServerKill);
        if due.is_empty() {
            return Ok(());
        }
        for a in &due {
            match a.kind {
                Kind::Kill => {
                    self.start_native(a.who[0])?;
                }
                Kind::Stop => {
                    let n = &mut self.natives[a.who[0]];
                    if let Some(p) = &n.proc {
                        p.signal("-CONT");
                    }
                    n.stopped_until = None;
                }
                Kind::ServerKill => {
                    self.start_server()?;
                    self.server_back_at = None;
                }
                _ => {}
            }
            let healed = Instant::now();
            let others = !self.active.is_empty();
            if let Some(r) = self
                .records
                .iter_mut()
                .rev()
                .find(|r| r.kind == a.kind && r.at == a.at)
            {
                r.healed = Some(healed);
                // Undone while another fault is in force: a whole mesh waits for that.
                r.overlapped |= others;
            }
            self.say(format!("healed: {}", a.kind.name()));
        }
        self.apply_rules()
    }

    /// Fills in, for faults healed and not yet whole again, when the mesh became whole;
    /// and for faults on natives, when another native first noticed.
    fn watch_faults(&mut self, now: Instant) {
        let whole = self.active.is_empty() && self.whole();
        let departures: Vec<(Instant, String)> = self
            .natives
            .iter()
            .filter_map(|n| n.proc.as_ref())
            .flat_map(|p| p.with(|s| s.departures.clone()))
            .collect();
        for r in &mut self.records {
            if let Some(healed) = r.healed
                && r.whole_ms.is_none()
                && !r.overlapped
                && whole
            {
                r.whole_ms = Some(now.duration_since(healed).as_secs_f64() * 1000.0);
            }
            // A departure counts while the fault is in force, and briefly after.
            let window = r.healed.unwrap_or(now) + Duration::from_secs(2);
            if r.noticed_ms.is_none()
                && let Some((t, _)) = departures
                    .iter()
                    .filter(|(t, p)| *t >= r.at && *t <= window && r.ids.contains(p))
                    .min_by_key(|(t, _)| *t)
            {
                r.noticed_ms = Some(t.duration_since(r.at).as_secs_f64() * 1000.0);
            }
        }
    }

    fn sample_rss(&mut self) {
        if let Some(kib) = self.server.as_ref().and_then(Proc::rss_kib) {
            self.server_rss_max_kib = self.server_rss_max_kib.max(kib);
        }
        for n in &mut self.natives {
            if let Some(kib) = n.proc.as_ref().and_then(Proc::rss_kib) {
                n.rss_max_kib = n.rss_max_kib.max(kib);
            }
        }
    }

    /// A seeded job: `meshwork run` and `meshwork submit` arguments for its kernel.
    fn draw_job(&mut self) -> (Vec<String>, String) {
        let kernel = self.rng.pick(&["mandelbrot", "julia", "primes", "pi"]);
        let mut args: Vec<String> = vec!["--kernel".into(), kernel.into()];
        let ext = match kernel {
            "mandelbrot" | "julia" => {
                let size = self.rng.pick(&[128u32, 256, 384]);
                let tiles = self.rng.pick(&[4u32, 8, 12]);
                let iter = self.rng.pick(&[200u32, 500]);
                args.extend(
                    [
                        "--width",
                        &size.to_string(),
                        "--height",
                        &size.to_string(),
                        "--tiles",
                        &format!("{tiles}x{tiles}"),
                        "--max-iter",
                        &iter.to_string(),
                    ]
                    .map(String::from),
                );
                "png"
            }
            "primes" => {
                let n = self.rng.pick(&[10_000_000u64, 50_000_000, 100_000_000]);
                let ranges = self.rng.pick(&[16u32, 48, 96]);
                args.extend(
                    ["--n", &n.to_string(), "--ranges", &ranges.to_string()].map(String::from),
                );
                "json"
            }
            _ => {
                let tasks = self.rng.pick(&[16u32, 48, 96]);
                let seed = self.rng.range(1, 1_000);
                args.extend(
                    [
                        "--tasks",
                        &tasks.to_string(),
                        "--samples-per-task",
                        "200000",
                        "--seed",
                        &seed.to_string(),
                    ]
                    .map(String::from),
                );
                "json"
            }
        };
        (args, ext.to_string())
    }

    /// `meshwork run`'s output for these kernel arguments (computed once).
    fn reference(&mut self, args: &[String], ext: &str) -> Result<PathBuf> {
        let key = args.join(" ");
        if let Some(p) = self.references.get(&key) {
            return Ok(p.clone());
        }
        let path = self
            .dir
            .join(format!("reference-{}.{ext}", self.references.len()));
        let status = Command::new(&self.bin)
            .arg("run")
            .args(args)
            .args(["--workers", "1", "--out"])
            .arg(&path)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .context("meshwork run")?;
        if !status.success() {
            bail!("meshwork run {key} failed");
        }
        self.references.insert(key, path.clone());
        Ok(path)
    }

    fn start_job(&mut self) -> Result<()> {
        let (kernel_args, ext) = self.draw_job();
        let reference = self.reference(&kernel_args, &ext)?;
        let r = self.rng.range(1, 3);
        let q = self.rng.range(1, r.min(2));
        let pace = self.rng.pick(&[0u32, 10, 30]);
        self.jobs_started += 1;
        let n = self.jobs_started;
        let out = self.dir.join(format!("job-{n}.{ext}"));
        let server = format!("http://{SERVER}");
        let mut args: Vec<String> = [
            "submit",
            "--server",
            &server,
            "--room",
            ROOM,
            "--name",
            &format!("submitter-{n}"),
            "--ice-bind",
            "127.0.2.1",
            "--workers",
            "1",
            "--json",
            "--wait-ms",
            "2000",
            "--timeout",
            "600",
            "--replicas",
            &r.to_string(),
            "--quorum",
            &q.to_string(),
            "--pace-ms",
            &pace.to_string(),
        ]
        .map(String::from)
        .to_vec();
        args.extend(kernel_args.iter().cloned());
        args.push("--out".into());
        args.push(out.display().to_string());
        let all: Vec<&str> = args.iter().map(String::as_str).collect();
        let proc = Proc::spawn(
            self.sandbox.command(&self.bin, &all),
            self.dir.join(format!("job-{n}.stderr")),
            self.dir.join(format!("job-{n}.stdout")),
        )?;
        self.say(format!(
            "job {n}: {} r={r} q={q} pace={pace} ms",
            kernel_args.join(" ")
        ));
        let now = Instant::now();
        self.job = Some(JobRun {
            proc,
            args,
            out,
            reference,
            started: now,
            last_progress: now,
            validated: 0,
        });
        Ok(())
    }

    fn watch_job(&mut self) -> Result<()> {
        if self.job.is_none() {
            // A submitter that cannot reach the server says so and exits: a new job
            // waits for the server to be back.
            if self.server.is_none() {
                return Ok(());
            }
            return self.start_job();
        }
        self.watch_job_only_finish()
    }

    /// Checks the job under way: progress, and its output once it exits.
    fn watch_job_only_finish(&mut self) -> Result<()> {
        let Some(job) = &mut self.job else {
            return Ok(());
        };
        let validated = job.proc.with(|s| s.validated.len());
        if validated > job.validated {
            job.validated = validated;
            job.last_progress = Instant::now();
        }
        let n = self.jobs_started;
        match job.proc.child.try_wait() {
            Ok(None) => {
                if job.last_progress.elapsed() > STALL {
                    let msg = format!(
                        "job {n} stalled: no task validated for {} s ({validated} validated; {})",
                        STALL.as_secs(),
                        job.args.join(" ")
                    );
                    self.jobs.stalled += 1;
                    self.violations.push(msg.clone());
                    self.say(msg);
                    self.end_job();
                }
            }
            Ok(Some(status)) => {
                let secs = job.started.elapsed().as_secs_f64();
                let got = std::fs::read(&job.out).ok();
                let want = std::fs::read(&job.reference)?;
                let verdict = if !status.success() {
                    self.jobs.failed += 1;
                    let msg = format!(
                        "job {n} failed ({status}) after {secs:.1} s: {}",
                        job.args.join(" ")
                    );
                    self.violations.push(msg.clone());
                    msg
                } else if got.as_deref() == Some(&want[..]) {
                    self.jobs.exact += 1;
                    self.jobs.secs.push(secs);
                    format!("job {n} exact in {secs:.1} s")
                } else {
                    self.jobs.wrong += 1;
                    let msg = format!(
                        "job {n}: output {} differs from meshwork run's {}",
                        job.out.display(),
                        job.reference.display()
                    );
                    self.violations.push(msg.clone());
                    msg
                };
                self.say(verdict);
                self.end_job();
            }
            Err(e) => bail!("waiting for job {n}: {e}"),
        }
        Ok(())
    }

    /// Ends the job under way (its submitter is killed if it still runs), keeping when
    /// its tasks were validated.
    fn end_job(&mut self) {
        if let Some(job) = self.job.take() {
            let times = job.proc.with(|s| s.validated.clone());
            self.validated_at.extend(times);
        }
    }

    /// A plot of validated tasks per second over the run, with the faults marked, as
    /// SVG (a browser or any image viewer shows it).
    fn plot(&self) -> String {
        let end = self
            .validated_at
            .iter()
            .copied()
            .chain(self.records.iter().filter_map(|r| r.healed))
            .max()
            .unwrap_or(self.start);
        let secs = end.duration_since(self.start).as_secs() as usize + 1;
        let mut per_sec = vec![0u32; secs];
        for t in &self.validated_at {
            per_sec[t.duration_since(self.start).as_secs() as usize] += 1;
        }
        draw_plot(&per_sec, &self.fault_spans())
    }

    /// Every fault as (kind, start s, end s) from the run's start; one never undone
    /// ends with the run.
    fn fault_spans(&self) -> Vec<(Kind, f64, f64)> {
        let now = Instant::now();
        self.records
            .iter()
            .map(|r| {
                let s = |t: Instant| t.duration_since(self.start).as_secs_f64();
                (r.kind, s(r.at), s(r.healed.unwrap_or(now)))
            })
            .collect()
    }

    /// Ends every process started here, then looks for panics in every stderr file
    /// (earlier lives' included).
    fn stop_all(&mut self) {
        for n in &mut self.natives {
            n.proc = None;
        }
        self.server = None;
        self.end_job();
        let Ok(dir) = std::fs::read_dir(&self.dir) else {
            return;
        };
        let mut files: Vec<PathBuf> = dir
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "stderr"))
            .collect();
        files.sort();
        for path in files {
            if let Ok(text) = std::fs::read_to_string(&path)
                && let Some(l) = text.lines().find(|l| l.contains("panicked"))
            {
                self.violations
                    .push(format!("a panic in {}: {l}", path.display()));
            }
        }
    }

    fn report(&self, opts: &Opts) -> String {
        let mut r = String::new();
        let elapsed = self.start.elapsed().as_secs_f64();
        r.push_str(&format!(
            "chaos report: seed {}, {:.1} min planned, {:.1} min run, {} natives, the server and a submitter\n",
            opts.seed,
            opts.minutes,
            elapsed / 60.0,
            opts.natives
        ));
        r.push_str("faults injected (notice: from the fault to the first native that declared a member it concerns gone, while it lasted: a cut link or packet loss need not make anyone leave; whole: from undoing it until every living native sees every other):\n");
        for kind in Kind::ALL {
            let rs: Vec<&Record> = self.records.iter().filter(|x| x.kind == kind).collect();
            let stat = |xs: Vec<f64>| -> String {
                if xs.is_empty() {
                    return "-".into();
                }
                let mut xs = xs;
                xs.sort_by(f64::total_cmp);
                format!(
                    "median {:.0} ms, worst {:.0} ms",
                    xs[xs.len() / 2],
                    xs[xs.len() - 1]
                )
            };
            let noticed = stat(rs.iter().filter_map(|x| x.noticed_ms).collect());
            let whole = stat(rs.iter().filter_map(|x| x.whole_ms).collect());
            let overlapped = rs.iter().filter(|x| x.overlapped).count();
            r.push_str(&format!(
                "  {:<40} {:>4}   notice: {noticed}; whole: {whole} ({overlapped} overlapped by another fault, not timed)\n",
                kind.name(),
                rs.len()
            ));
        }
        let j = &self.jobs;
        let mut secs = j.secs.clone();
        secs.sort_by(f64::total_cmp);
        r.push_str(&format!(
            "jobs: {} exact, {} wrong, {} failed, {} stalled{}\n",
            j.exact,
            j.wrong,
            j.failed,
            j.stalled,
            secs.last().map_or(String::new(), |w| format!(
                " (exact ones took median {:.1} s, worst {w:.1} s)",
                secs[secs.len() / 2]
            ))
        ));
        r.push_str(&format!(
            "largest RSS: server {} MiB over {} start(s); natives {}\n",
            self.server_rss_max_kib / 1024,
            self.server_lives,
            self.natives
                .iter()
                .map(|n| format!(
                    "{} {} MiB ({} start(s))",
                    n.name,
                    n.rss_max_kib / 1024,
                    n.lives
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ));
        r.push_str(&format!("violations: {}\n", self.violations.len()));
        for v in &self.violations {
            r.push_str(&format!("  {v}\n"));
        }
        r.push_str("schedule:\n");
        for line in &self.schedule {
            r.push_str(&format!("  {line}\n"));
        }
        r
    }
}

/// The plot's colour for a kind of fault.
fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Kill => "#d62728",
        Kind::Stop => "#ff7f0e",
        Kind::CutLink => "#9467bd",
        Kind::Isolate => "#8c564b",
        Kind::Split => "#e377c2",
        Kind::Loss => "#bcbd22",
        Kind::ServerKill => "#17becf",
    }
}

/// Draws validated tasks per second (one bar a second) under bands that mark each
/// fault while it was in force, with a legend of the kinds, as an SVG document.
fn draw_plot(per_sec: &[u32], faults: &[(Kind, f64, f64)]) -> String {
    let (w, h, left, top, bottom) = (1200.0_f64, 360.0_f64, 50.0, 40.0, 30.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - top - bottom;
    let secs = per_sec.len().max(1) as f64;
    let peak = per_sec.iter().copied().max().unwrap_or(0).max(1) as f64;
    let x = |s: f64| left + s / secs * plot_w;
    let y = |v: f64| top + plot_h - v / peak * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"14\" font-size=\"13\">validated tasks per second, faults marked while in force</text>\n"
    );
    for (kind, from, to) in faults {
        let (x0, x1) = (x(*from), x(to.max(*from + 0.2)));
        svg.push_str(&format!(
            "<rect x=\"{x0:.1}\" y=\"{top}\" width=\"{:.1}\" height=\"{plot_h}\" fill=\"{}\" fill-opacity=\"0.25\"><title>{} {from:.1}-{to:.1} s</title></rect>\n",
            x1 - x0,
            colour(*kind),
            kind.name()
        ));
    }
    for (i, v) in per_sec.iter().enumerate() {
        if *v == 0 {
            continue;
        }
        let (x0, x1) = (x(i as f64), x(i as f64 + 1.0));
        svg.push_str(&format!(
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#1f77b4\"/>\n",
            y(f64::from(*v)),
            (x1 - x0).max(0.5),
            top + plot_h - y(f64::from(*v))
        ));
    }
    // Axes: the peak on the left, a tick every minute (every 10 s in a short run).
    svg.push_str(&format!(
        "<line x1=\"{left}\" y1=\"{top}\" x2=\"{left}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
         <line x1=\"{left}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"black\"/>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{peak:.0}</text>\n\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">0</text>\n",
        top + plot_h,
        top + plot_h,
        left + plot_w,
        top + plot_h,
        left - 4.0,
        top + 8.0,
        left - 4.0,
        top + plot_h,
    ));
    let step = if secs > 180.0 { 60 } else { 10 };
    for s in (0..per_sec.len()).step_by(step) {
        svg.push_str(&format!(
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{s} s</text>\n",
            x(s as f64),
            top + plot_h + 16.0
        ));
    }
    let mut lx = left + 380.0;
    for kind in Kind::ALL {
        svg.push_str(&format!(
            "<rect x=\"{lx:.0}\" y=\"5\" width=\"10\" height=\"10\" fill=\"{}\" fill-opacity=\"0.5\"/><text x=\"{:.0}\" y=\"14\">{}</text>\n",
            colour(kind),
            lx + 13.0,
            kind.short()
        ));
        lx += 13.0 + 7.0 * kind.short().len() as f64 + 12.0;
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Opts> {
        Opts::parse(&args.iter().map(|a| a.to_string()).collect::<Vec<_>>())
    }

    #[test]
    fn options_are_read_and_bad_ones_refused_with_the_reason() {
        let o = parse(&["--minutes", "0.5", "--seed", "12", "--natives", "6"]).unwrap();
        assert_eq!((o.minutes, o.seed, o.natives), (0.5, 12, 6));
        let refused = |args: &[&str], why: &str| {
            let e = format!("{:#}", parse(args).err().expect("refused"));
            assert!(e.contains(why), "{args:?}: {e}");
        };
        refused(&["--minutes", "0"], "a number above 0");
        refused(&["--minutes", "NaN"], "a number above 0");
        refused(&["--minutes", "601"], "at most 600");
        refused(&["--minutes"], "--minutes needs a number of minutes");
        refused(&["--seed", "-1"], "not a whole number");
        refused(&["--natives", "2"], "3 to 8");
        refused(&["--natives", "9"], "3 to 8");
        refused(&["--fast"], "unknown argument");
    }

    #[test]
    fn a_seed_draws_the_same_faults_in_the_same_order() {
        let draws = |seed| {
            let mut r = Rng(seed);
            (0..32).map(|_| r.range(1_000, 8_000)).collect::<Vec<_>>()
        };
        assert_eq!(draws(12), draws(12));
        assert_ne!(draws(12), draws(11));
        let mut r = Rng(5);
        assert!((0..1_000).all(|_| (3..=7).contains(&r.range(3, 7))));
    }

    #[test]
    fn the_plot_draws_a_bar_per_busy_second_and_a_band_per_fault() {
        let svg = draw_plot(&[0, 2, 4, 0, 1], &[(Kind::Stop, 1.5, 3.0)]);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        let bars: Vec<&str> = svg.lines().filter(|l| l.contains("#1f77b4")).collect();
        assert_eq!(
            bars.len(),
            3,
            "one bar per second with a validated task: {svg}"
        );
        // The busiest second's bar is the plot's full height (290 px), half of it is
        // half as tall.
        assert!(bars[1].contains("height=\"290.0\""), "{}", bars[1]);
        assert!(bars[0].contains("height=\"145.0\""), "{}", bars[0]);
        let band = svg
            .lines()
            .find(|l| l.contains(colour(Kind::Stop)) && l.contains("<title>"))
            .expect("the fault's band");
        assert!(band.contains("1.5-3.0 s"), "{band}");
        // 1.5 s of 5 s, from x = 50 over 1140 px: 392.0 to 734.0.
        assert!(
            band.contains("x=\"392.0\"") && band.contains("width=\"342.0\""),
            "{band}"
        );
    }
}
