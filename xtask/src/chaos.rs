//! `cargo xtask chaos [--minutes N] [--seed S] [--natives K] [--tabs K] [--no-firefox]
//! [--hostile K]`:
//! native nodes, browser tabs, the signaling server and a submitter run through seeded
//! faults while jobs run all the time; a checker outside the members compares every
//! output with `meshwork run`'s and watches for stalls, members shown gone while alive,
//! and panics.
//!
//! Every member lives in a network namespace of its own, joined by a veth pair to a hub
//! namespace that routes between them and runs the server (member `k` is 10.77.k.2, its
//! link's hub end 10.77.k.1, the server 10.77.0.1). Packets between two members pass
//! the hub's forward hook, where nftables rules on addresses cut one link, isolate one
//! member, split the mesh or drop a share of one member's packets, as a real network
//! would drop them (the sender's write succeeds); the server's traffic is not forwarded,
//! so signaling goes on. A bandwidth cap is a `tbf` queue on both ends of one member's
//! link. Nothing leaves the namespaces: the hub has no other interface.
//!
//! The members: `--natives` `meshwork node`s (the first `--hostile` of them serve
//! changed bytes under true hashes, `--serve-lies`, to put the others' hash checks to
//! the test), `--tabs` headless Chromium tabs and one
//! Firefox tab when Firefox ESR and geckodriver are installed, each tab driven by
//! `tests/e2e/chaos_tab.mjs`, which reports what the page shows as JSON lines shaped
//! like a native's `--json` events (its id, the members its graph shows live).
//!
//! Faults, drawn from the seed (the schedule is printed; `--seed S` draws the same faults
//! in the same order, though when each starts, and so which members are up to be drawn,
//! can shift with how fast the mesh recovers): SIGKILL of a native and a new one started
//! in its place; a tab closed, reloaded, or its renderer killed, and a new tab opened in
//! its place; SIGSTOP of a native or a whole browser for 1-8 s; a link between two
//! members cut; a member isolated from the others; the members split in two halves;
//! 1-20 % of a member's packets dropped; a member's link capped to 0.25-4 Mbit/s; the
//! server SIGKILLed and restarted on the same address (tokens survive:
//! `--resume-key-file`); the presenter's console (the first Chromium tab joins with the
//! presenter key) fails a member, makes one lie, cuts a link between two or pauses
//! everyone, and its "reset the demo" undoes it (a console fault runs alone, since the
//! reset must reach every member; while a liar runs, and briefly after, jobs are
//! drawn with `q = 2`, and a liar starts only while the job under way has `q = 2`). At
//! least two natives stay up and running at any time. This kernel has no `sch_netem`,
//! so there is no delay or jitter.
//!
//! The checks: every job ends with `meshwork run`'s bytes (a job is a fresh
//! `meshwork submit`: seeded kernel, size, `r`, `q`, pacing); no job goes [`STALL`]
//! without a validated task; once the faults stop, within [`SETTLE`] every living member
//! counts every other living member among its peers, and no tab shows a living member
//! in any other state or as a liar, and (with `--check-copies`) within [`COPIES_SETTLE`] no living native
//! counts a validated result of its newest jobs short of its `r` copies (its
//! `copies_short` lines; not with a member that serves lies); no process printed a
//! panic (a tab's console included). The report gives faults by kind, jobs by outcome, the time from each fault
//! to the first member that noticed it and to a whole mesh again, and the largest RSS
//! of the server and of each native.

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
/// After the last fault is healed, every validated result of the newest jobs has its
/// `r` live copies within this: a copy goes out at the holders' next turn (a second at
/// most), and one to a member that never confirms it is retried ten times a second
/// apart before the next ranked member gets it instead; the next may not confirm
/// either. Runs have taken 2.4 to 27.2 s; this allows three such members in a row.
const COPIES_SETTLE: Duration = Duration::from_secs(45);
/// The copies check looks at the jobs each native accepted last, this many: a job
/// table keeps sixteen, so every member that saw them still holds these.
const COPIES_JOBS: usize = 8;
/// The server's address in the namespace.
const SERVER: &str = "10.77.0.1:18700";
/// The submitter's slot: its namespace's address is 10.77.200.2.
const SUBMITTER_SLOT: u8 = 200;
const ROOM: &str = "chaos";
/// At most this many bars in the plot: a longer run draws the mean of several seconds
/// a bar.
const PLOT_BARS_MAX: usize = 360;
/// The server's presenter key: the first Chromium tab joins with it and runs the
/// console faults.
const PRESENTER_KEY: &str = "chaos-presenter";
/// What a tab fault does to a tab (each at least once in a run).
const TAB_ACTIONS: &[&str] = &["close", "reload", "kill-renderer"];
/// What a console fault does (each at least once in a run).
const CONSOLE_ACTIONS: &[&str] = &["fail", "lie", "cut", "pause"];
/// Jobs started this long after a liar was told to stop still need two matching results
/// (the order in which members hear the presenter and the submitter is not fixed).
const LIAR_AFTERMATH: Duration = Duration::from_secs(3);

pub fn run(root: &Path, args: &[String]) -> Result<()> {
    if Opts::parse(args)?.browsers() > 0 {
        crate::build_ui()?;
    }
    checked(root, args).map(|_| ())
}

/// Runs chaos as `cargo xtask chaos ARGS` does: `Ok(true)` when it ran without a
/// violation, `Ok(false)` when it skipped (no root, or no browser for the tabs; never
/// under `CI=true`).
pub fn checked(root: &Path, args: &[String]) -> Result<bool> {
    let mut opts = Opts::parse(args)?;
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    if let Err(why) = can_run().and_then(|()| browsers_ready(root, &opts)) {
        let msg = format!("chaos: skipped: {why}");
        if in_ci {
            bail!("{msg} (CI=true: nothing may skip)");
        }
        println!("{msg}");
        return Ok(false);
    }
    if opts.firefox
        && let Err(missing) = firefox_ready()
    {
        println!("chaos: no Firefox tab: {missing} (`cargo xtask setup` installs both)");
        opts.firefox = false;
    }
    let opts = &opts;
    let bin = crate::bench::build_release(root)?;
    let dir = crate::bench::target_dir(root).join(format!("chaos-{}", opts.seed));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    println!(
        "chaos: seed {}, {} minute(s), {} natives, {} Chromium tab(s){}; logs in {}",
        opts.seed,
        opts.minutes,
        opts.natives,
        opts.tabs,
        if opts.firefox { ", a Firefox tab" } else { "" },
        dir.display()
    );
    let mut sandbox = Sandbox::create()?;
    let mut run = Run::new(root, &bin, &dir, &mut sandbox, opts)?;
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
    /// Chromium tabs.
    tabs: usize,
    /// A Firefox tab too (when Firefox ESR and geckodriver are installed).
    firefox: bool,
    /// Natives that serve lies (`meshwork node --serve-lies`): honest reports, every
    /// copy and payload they send changed under its true hash.
    hostile: usize,
    /// Check re-replication after the faults stop ([`COPIES_SETTLE`]): off by default,
    /// since a member that lacks a job is not always known to lack it (one CI run in
    /// three found results counted short for good), so the check can fail a healthy
    /// mesh.
    copies: bool,
}

impl Default for Opts {
    /// Three minutes, a seed from the clock, four natives, two Chromium tabs and a
    /// Firefox tab.
    fn default() -> Opts {
        Opts {
            minutes: 3.0,
            seed: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_secs()),
            natives: 4,
            tabs: 2,
            firefox: true,
            hostile: 0,
            copies: false,
        }
    }
}

const USAGE: &str = "usage: cargo xtask chaos [--minutes N] [--seed S] [--natives K] [--tabs K] [--no-firefox] [--hostile K] [--check-copies]";

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
                "--natives" => o.natives = count(a, &value("a count")?, 3..=8)?,
                "--tabs" => o.tabs = count(a, &value("a count")?, 0..=4)?,
                "--no-firefox" => o.firefox = false,
                "--check-copies" => o.copies = true,
                "--hostile" => o.hostile = count(a, &value("a count")?, 0..=2)?,
                other => bail!("chaos: unknown argument {other:?}; {USAGE}"),
            }
        }
        Ok(o)
    }

    /// Browser tabs asked for (Firefox counted whether or not it is installed).
    fn browsers(&self) -> usize {
        self.tabs + usize::from(self.firefox)
    }
}

/// `v`, the value of option `flag`, as a count within `within`.
fn count(flag: &str, v: &str, within: std::ops::RangeInclusive<usize>) -> Result<usize> {
    v.parse()
        .ok()
        .filter(|n| within.contains(n))
        .with_context(|| {
            format!(
                "chaos: {flag} {v:?}: {} to {}",
                within.start(),
                within.end()
            )
        })
}

/// What the tabs need: the web UI built, playwright-core, Chromium, Node.js.
fn browsers_ready(root: &Path, opts: &Opts) -> Result<(), String> {
    if opts.browsers() == 0 {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !root.join("dist/index.html").is_file() {
        missing.push("the web UI in dist/ (`cargo xtask build-ui`)");
    }
    if !root
        .join("node_modules/playwright-core/package.json")
        .is_file()
    {
        missing.push("node_modules/playwright-core (`cargo xtask setup`)");
    }
    if opts.tabs > 0 && !Path::new(CHROMIUM).exists() {
        missing.push("/usr/bin/chromium (`cargo xtask setup`)");
    }
    if !Command::new("node")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
    {
        missing.push("`node` on PATH (`cargo xtask setup`)");
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the tabs need {} (or run natives only: --tabs 0 --no-firefox)",
            missing.join(", ")
        ))
    }
}

const CHROMIUM: &str = "/usr/bin/chromium";
const FIREFOX: &str = "/usr/bin/firefox-esr";

/// geckodriver's path, when Firefox ESR and geckodriver are both installed.
fn firefox_ready() -> Result<PathBuf, String> {
    let driver = std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("geckodriver"))
            .find(|p| p.is_file())
    });
    match (Path::new(FIREFOX).exists(), driver) {
        (true, Some(d)) => Ok(d),
        (false, _) => Err(format!("{FIREFOX} is missing")),
        (true, None) => Err("geckodriver is not on PATH".into()),
    }
}

/// Whether this machine can make namespaces and nftables rules.
fn can_run() -> Result<(), String> {
    let uid = Command::new("id")
        .arg("-u")
        .output()
        .map_err(|e| format!("cannot run `id`: {e}"))?;
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        return Err(
            "not root: it needs root (network namespaces and nftables); run it as root".into(),
        );
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

/// The run's network namespaces: a hub that runs the server and routes between the
/// members, with an nftables chain (on the forward hook) whose rules are the faults on
/// links in force, and a namespace per member joined to the hub by a veth pair. All
/// deleted on drop.
struct Sandbox {
    hub: String,
    members: Vec<String>,
}

impl Sandbox {
    fn create() -> Result<Sandbox> {
        let hub = format!("mwchaos-{}", std::process::id());
        ip(&["netns", "add", &hub])?;
        let s = Sandbox {
            hub,
            members: Vec::new(),
        };
        ip(&["-n", &s.hub, "link", "set", "lo", "up"])?;
        ip(&["-n", &s.hub, "addr", "add", "10.77.0.1/32", "dev", "lo"])?;
        s.sysctl(&s.hub, "net.ipv4.ip_forward=1")?;
        for v in ["all", "default"] {
            s.sysctl(&s.hub, &format!("net.ipv6.conf.{v}.disable_ipv6=1"))?;
        }
        // Rules act on packets passing between members, as a network between them would:
        // a packet dropped here vanishes (a drop on the sender's own output hook would
        // fail its write with EPERM, which a WebRTC stack takes for a broken path).
        s.nft("add table inet chaos\nadd chain inet chaos drops { type filter hook forward priority 0; policy accept; }\n")?;
        Ok(s)
    }

    /// A namespace for the member in `slot`: its address 10.77.SLOT.2 on `eth0`, the
    /// other end `hSLOT` in the hub (10.77.SLOT.1, its default route); no IPv6. Returns
    /// the namespace and the address.
    fn add_member(&mut self, slot: u8) -> Result<(String, String)> {
        let ns = format!("{}-{slot}", self.hub);
        ip(&["netns", "add", &ns])?;
        self.members.push(ns.clone());
        let link = format!("h{slot}");
        let (gw, addr) = (format!("10.77.{slot}.1"), format!("10.77.{slot}.2"));
        ip(&[
            "-n", &self.hub, "link", "add", &link, "type", "veth", "peer", "name", "eth0", "netns",
            &ns,
        ])?;
        for v in ["all", "default", "eth0"] {
            self.sysctl(&ns, &format!("net.ipv6.conf.{v}.disable_ipv6=1"))?;
        }
        ip(&[
            "-n",
            &self.hub,
            "addr",
            "add",
            &format!("{gw}/24"),
            "dev",
            &link,
        ])?;
        ip(&["-n", &self.hub, "link", "set", &link, "up"])?;
        ip(&[
            "-n",
            &ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            "eth0",
        ])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns, "route", "add", "default", "via", &gw])?;
        Ok((ns, addr))
    }

    fn sysctl(&self, ns: &str, setting: &str) -> Result<()> {
        ip(&["netns", "exec", ns, "sysctl", "-qw", setting])
    }

    /// `prog args` inside namespace `ns`.
    fn command(&self, ns: &str, prog: &Path, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).arg(prog).args(args);
        c
    }

    fn nft(&self, script: &str) -> Result<()> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.hub, "nft", "-f", "-"])
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

    /// Caps the link of the member in `slot` (namespace `ns`) to `kbit` kbit/s each
    /// way, or lifts the cap: a token bucket on both ends of its veth pair.
    fn cap(&self, slot: u8, ns: &str, kbit: Option<u32>) -> Result<()> {
        let link = format!("h{slot}");
        for (ns, dev) in [(self.hub.as_str(), link.as_str()), (ns, "eth0")] {
            match kbit {
                Some(k) => ip(&[
                    "netns",
                    "exec",
                    ns,
                    "tc",
                    "qdisc",
                    "replace",
                    "dev",
                    dev,
                    "root",
                    "tbf",
                    "rate",
                    &format!("{k}kbit"),
                    "burst",
                    "32kb",
                    "latency",
                    "400ms",
                ])?,
                None => ip(&[
                    "netns", "exec", ns, "tc", "qdisc", "del", "dev", dev, "root",
                ])?,
            }
        }
        Ok(())
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        for ns in self.members.iter().chain([&self.hub]) {
            let _ = ip(&["netns", "del", ns]);
        }
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
    /// A tab's graph as it last changed: (member, state, shown lying).
    view: Vec<(String, String, bool)>,
    /// A tab's browser process (the root of the tree a stop freezes).
    browser: Option<u32>,
    /// What a tab's driver did (the console's words) or could not do, not yet said.
    notes: Vec<String>,
    /// A tab's form job: the id the form gave it, or why it could not be submitted.
    form_submitted: Option<Result<String, String>>,
    /// The form job's card as last reported.
    form_card: Option<FormCard>,
    /// A native's newest jobs (`job_accepted`), at most [`COPIES_JOBS`], oldest first.
    jobs: std::collections::VecDeque<String>,
    /// A native's validated results short of copies, by job, as last told
    /// (`copies_short`).
    copies_short: BTreeMap<String, u64>,
}

/// A job's card as a tab shows it.
#[derive(Clone)]
struct FormCard {
    id: String,
    /// "running", "done", or "lost" (the tab's page went away).
    state: String,
    validated: usize,
    output: String,
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
            Some("job_accepted") => {
                if let Some(job) = v["job"].as_str() {
                    if self.jobs.len() == COPIES_JOBS {
                        self.jobs.pop_front();
                    }
                    self.jobs.push_back(job.to_string());
                }
            }
            Some("copies_short") => {
                self.copies_short = v["jobs"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .filter_map(|(job, n)| Some((job.clone(), n.as_u64()?)))
                    .collect();
            }
            // A tab closed or crashed shows nothing: no id, no peers, until a new one.
            Some("reset") => {
                self.id = None;
                self.peers.clear();
                self.view.clear();
            }
            Some("view") => {
                self.view = v["rows"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|r| {
                        (
                            r["peer"].as_str().unwrap_or_default().to_string(),
                            r["state"].as_str().unwrap_or_default().to_string(),
                            r["liar"].as_bool().unwrap_or(false),
                        )
                    })
                    .collect();
            }
            Some("browser") => self.browser = v["pid"].as_u64().and_then(|p| p.try_into().ok()),
            Some("done") if v["cmd"] == "submit" => {
                self.form_submitted = Some(Ok(v["id"].as_str().unwrap_or_default().to_string()));
            }
            Some("error") if v["cmd"] == "submit" => {
                self.form_submitted = Some(Err(v["message"].as_str().unwrap_or("?").to_string()));
            }
            Some("form_job") => {
                self.form_card = Some(FormCard {
                    id: v["id"].as_str().unwrap_or_default().to_string(),
                    state: v["state"].as_str().unwrap_or_default().to_string(),
                    validated: v["validated"]
                        .as_u64()
                        .and_then(|n| n.try_into().ok())
                        .unwrap_or(0),
                    output: v["output"].as_str().unwrap_or_default().to_string(),
                });
            }
            Some("error") => self.notes.push(format!(
                "could not {}: {}",
                v["cmd"].as_str().unwrap_or("?"),
                v["message"].as_str().unwrap_or("?")
            )),
            Some("done") if v["said"].as_str().is_some_and(|t| !t.trim().is_empty()) => {
                self.notes.push(format!(
                    "the console says: {}",
                    v["said"].as_str().unwrap_or_default()
                ))
            }
            _ => {}
        }
    }
}

/// Pids of every descendant of `root`, from /proc.
fn descendants(root: u32) -> Vec<u32> {
    let mut parent = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        // The command may hold spaces and parentheses: fields resume after the last ')'.
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parent.push((pid, ppid));
        }
    }
    let mut out = Vec::new();
    let mut queue = vec![root];
    while let Some(p) = queue.pop() {
        for (pid, ppid) in &parent {
            if *ppid == p && !out.contains(pid) {
                out.push(*pid);
                queue.push(*pid);
            }
        }
    }
    out
}

fn signal(pid: u32, sig: &str) {
    let _ = Command::new("kill")
        .args([sig, &pid.to_string()])
        .stderr(Stdio::null())
        .status();
}

/// A process started here: what its JSON lines said ([`Seen`]), every line in a log
/// file, its stderr in another (read for panics at the end); ended on drop with every
/// process it started.
struct Proc {
    child: Child,
    seen: Arc<Mutex<Seen>>,
    /// A tab driver's commands.
    stdin: Option<std::process::ChildStdin>,
}

impl Proc {
    fn spawn(cmd: Command, stderr: PathBuf, stdout_log: PathBuf) -> Result<Proc> {
        Proc::spawn_with(cmd, stderr, stdout_log, false)
    }

    /// With `commands`, its stdin stays open for [`Proc::send`].
    fn spawn_with(
        mut cmd: Command,
        stderr: PathBuf,
        stdout_log: PathBuf,
        commands: bool,
    ) -> Result<Proc> {
        let err = File::create(&stderr)?;
        let mut log = File::create(&stdout_log)?;
        let mut child = cmd
            .stdin(if commands {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::from(err))
            .spawn()
            .context("starting a member")?;
        let out = child.stdout.take().context("stdout")?;
        let stdin = child.stdin.take();
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
        Ok(Proc { child, seen, stdin })
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

    /// Takes what its lines said that is to be reported once.
    fn take_notes(&self) -> Vec<String> {
        match self.seen.lock() {
            Ok(mut s) => std::mem::take(&mut s.notes),
            Err(_) => Vec::new(),
        }
    }

    /// Forgets a tab's last form job, before it is handed a new one.
    fn forget_form_job(&self) {
        if let Ok(mut s) = self.seen.lock() {
            s.form_submitted = None;
            s.form_card = None;
        }
    }

    /// A command line to a tab's driver.
    fn send(&mut self, cmd: &str) {
        if let Some(stdin) = &mut self.stdin {
            let _ = writeln!(stdin, "{cmd}").and_then(|()| stdin.flush());
        }
    }

    fn signal(&self, sig: &str) {
        signal(self.pid(), sig);
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
        // A tab's driver ends its browser itself when asked (and removes its profile).
        if self.stdin.is_some() && matches!(self.child.try_wait(), Ok(None)) {
            for pid in descendants(self.pid()) {
                signal(pid, "-CONT");
            }
            self.send("quit");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline && matches!(self.child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        // Whatever is left of its tree dies with it; a stopped process must run again
        // to die of SIGKILL promptly.
        let mut tree = descendants(self.pid());
        if matches!(self.child.try_wait(), Ok(None)) {
            tree.push(self.pid());
        }
        for pid in &tree {
            signal(*pid, "-CONT");
            signal(*pid, "-KILL");
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a member is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Body {
    Native,
    Chromium,
    Firefox,
}

/// One member's slot: its namespace, and the process now in it (a new one after each
/// kill; for a tab, the driver of its browser).
struct Member {
    name: String,
    body: Body,
    slot: u8,
    ns: String,
    addr: String,
    proc: Option<Proc>,
    lives: u32,
    stopped_until: Option<Instant>,
    /// The processes a stop froze (a browser's whole tree).
    stopped: Vec<u32>,
    /// A tab closed, or whose renderer was killed: no page until a new tab opens.
    closed: bool,
    /// A native that serves lies (`--serve-lies`).
    hostile: bool,
    rss_max_kib: u64,
}

impl Member {
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
        self.proc.is_some() && self.stopped_until.is_none() && !self.closed
    }

    fn is_tab(&self) -> bool {
        self.body != Body::Native
    }

    /// Its name, body and address, for the schedule and the report.
    fn describe(&self) -> String {
        format!(
            "{} ({:?}{}, {})",
            self.name,
            self.body,
            if self.hostile { ", serves lies" } else { "" },
            self.addr
        )
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Kill,
    Tab,
    Stop,
    CutLink,
    Isolate,
    Split,
    Loss,
    Cap,
    ServerKill,
    Console,
}

impl Kind {
    const ALL: [Kind; 10] = [
        Kind::Kill,
        Kind::Tab,
        Kind::Stop,
        Kind::CutLink,
        Kind::Isolate,
        Kind::Split,
        Kind::Loss,
        Kind::Cap,
        Kind::ServerKill,
        Kind::Console,
    ];

    /// What a fault of this kind may do (each at least once in a run); "" for kinds
    /// that do one thing.
    fn actions(self) -> &'static [&'static str] {
        match self {
            Kind::Tab => TAB_ACTIONS,
            Kind::Console => CONSOLE_ACTIONS,
            _ => &[""],
        }
    }

    /// A word for the plot's legend.
    fn short(self) -> &'static str {
        match self {
            Kind::Kill => "kill",
            Kind::Tab => "tab",
            Kind::Stop => "stop",
            Kind::CutLink => "cut link",
            Kind::Isolate => "isolate",
            Kind::Split => "split",
            Kind::Loss => "loss",
            Kind::Cap => "cap",
            Kind::ServerKill => "server kill",
            Kind::Console => "console",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Kind::Kill => "SIGKILL a native, start a new one",
            Kind::Tab => "close/reload a tab or kill its renderer",
            Kind::Stop => "SIGSTOP a native or a browser",
            Kind::CutLink => "cut the link between two members",
            Kind::Isolate => "isolate a member from the others",
            Kind::Split => "split the members in two halves",
            Kind::Loss => "drop a share of a member's packets",
            Kind::Cap => "cap a member's bandwidth",
            Kind::ServerKill => "SIGKILL the server, restart it",
            Kind::Console => "a presenter's console: fail, lie, cut, pause",
        }
    }
}

/// A fault in force, undone at `until`.
struct Active {
    kind: Kind,
    at: Instant,
    until: Instant,
    /// Members it concerns (by slot index).
    who: Vec<usize>,
    /// nftables rules it adds while in force.
    rules: Vec<String>,
    /// What a tab fault did to the tab ("close", "reload", "kill-renderer").
    action: &'static str,
}

/// What became of one fault, for the report.
struct Record {
    kind: Kind,
    /// What a tab or console fault did.
    action: &'static str,
    at: Instant,
    /// The ids of the members it concerns, as they were when it began.
    ids: Vec<String>,
    healed: Option<Instant>,
    noticed_ms: Option<f64>,
    whole_ms: Option<f64>,
    /// Another fault began before the mesh was whole again, or was in force when this
    /// one was undone: its `whole_ms` would measure both, so it is not taken.
    overlapped: bool,
}

/// Who handed the mesh the job under way.
enum Submitter {
    /// `meshwork submit` in the submitter's namespace, writing the output to `out`.
    Cli { proc: Proc, out: PathBuf },
    /// A tab's form (a Chromium member): the output is the words on the job's card.
    Form { member: usize },
}

struct JobRun {
    by: Submitter,
    q: u64,
    /// What was asked, for the schedule.
    args: Vec<String>,
    /// The output it must end with: `meshwork run`'s file, or for a form's job, the
    /// words a page shows of that output.
    want: Vec<u8>,
    reference: PathBuf,
    started: Instant,
    last_progress: Instant,
    validated: usize,
    /// When its tasks were seen validated (a form's job: as its card's count grew).
    validated_at: Vec<Instant>,
}

/// How the job under way ended, as its submitter tells.
enum Ending {
    /// Its output (none when the CLI wrote no file).
    Output(Option<Vec<u8>>),
    Failed(String),
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
    root: PathBuf,
    bin: PathBuf,
    dir: PathBuf,
    sandbox: &'a Sandbox,
    rng: Rng,
    start: Instant,
    server: Option<Proc>,
    server_lives: u32,
    server_rss_max_kib: u64,
    server_back_at: Option<Instant>,
    members: Vec<Member>,
    submitter_ns: String,
    submitter_addr: String,
    geckodriver: Option<PathBuf>,
    /// The kinds of fault this run injects (no tab fault without a tab, no console
    /// without a Chromium tab).
    kinds: Vec<Kind>,
    /// The member whose tab holds the presenter's console (the first Chromium tab).
    presenter: Option<usize>,
    /// Until when a job needs `q = 2`: a liar is in force, or stopped only just.
    liar_until: Option<Instant>,
    active: Vec<Active>,
    records: Vec<Record>,
    schedule: Vec<String>,
    /// Every kind of fault with each of its actions, in the order the seed gave them:
    /// the first faults.
    order: Vec<(Kind, &'static str)>,
    job: Option<JobRun>,
    jobs_started: u32,
    jobs: JobTally,
    references: BTreeMap<String, PathBuf>,
    violations: Vec<String>,
    /// When each task of the jobs that ended was validated, for the plot.
    validated_at: Vec<Instant>,
}

impl<'a> Run<'a> {
    fn new(
        root: &Path,
        bin: &Path,
        dir: &Path,
        sandbox: &'a mut Sandbox,
        opts: &Opts,
    ) -> Result<Run<'a>> {
        let bodies = std::iter::repeat_n(Body::Native, opts.natives)
            .chain(std::iter::repeat_n(Body::Chromium, opts.tabs))
            .chain(opts.firefox.then_some(Body::Firefox));
        let (mut natives, mut tabs) = (0, 0);
        let mut members = Vec::new();
        for (i, body) in bodies.enumerate() {
            let slot = u8::try_from(i + 1)?;
            let (ns, addr) = sandbox.add_member(slot)?;
            let name = if body == Body::Native {
                natives += 1;
                format!("native-{natives}")
            } else {
                tabs += 1;
                format!("tab-{tabs}")
            };
            members.push(Member {
                name,
                body,
                slot,
                ns,
                addr,
                proc: None,
                lives: 0,
                stopped_until: None,
                stopped: Vec::new(),
                closed: false,
                hostile: body == Body::Native && natives <= opts.hostile,
                rss_max_kib: 0,
            });
        }
        let (submitter_ns, submitter_addr) = sandbox.add_member(SUBMITTER_SLOT)?;
        let sandbox: &'a Sandbox = sandbox;
        let presenter = members.iter().position(|m| m.body == Body::Chromium);
        let kinds: Vec<Kind> = Kind::ALL
            .into_iter()
            .filter(|k| match k {
                Kind::Tab => tabs > 0,
                Kind::Console => presenter.is_some(),
                _ => true,
            })
            .collect();
        let mut rng = Rng(opts.seed);
        let mut order: Vec<(Kind, &'static str)> = kinds
            .iter()
            .flat_map(|k| k.actions().iter().map(move |a| (*k, *a)))
            .collect();
        for i in (1..order.len()).rev() {
            order.swap(i, rng.below(i as u64 + 1) as usize);
        }
        Ok(Run {
            root: root.to_path_buf(),
            bin: bin.to_path_buf(),
            dir: dir.to_path_buf(),
            sandbox,
            rng,
            start: Instant::now(),
            server: None,
            server_lives: 0,
            server_rss_max_kib: 0,
            server_back_at: None,
            members,
            submitter_ns,
            submitter_addr,
            geckodriver: if opts.firefox {
                firefox_ready().ok()
            } else {
                None
            },
            kinds,
            presenter,
            liar_until: None,
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
        let dist = self.root.join("dist");
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
            "--presenter-key",
            PRESENTER_KEY,
        ]
        .map(String::from);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let stderr = self
            .dir
            .join(format!("server.{}.stderr", self.server_lives));
        let out = self
            .dir
            .join(format!("server.{}.stdout", self.server_lives));
        let p = Proc::spawn(
            self.sandbox.command(&self.sandbox.hub, &self.bin, &args),
            stderr,
            out,
        )?;
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

    /// Starts member `i` afresh: a native, or a tab's driver (which opens the browser).
    fn start_member(&mut self, i: usize) -> Result<()> {
        let server = format!("http://{SERVER}");
        let presenter = self.presenter == Some(i);
        let m = &mut self.members[i];
        m.lives += 1;
        let stderr = self.dir.join(format!("{}.{}.stderr", m.name, m.lives));
        let out = self.dir.join(format!("{}.{}.stdout", m.name, m.lives));
        let proc = if m.body == Body::Native {
            let args = [
                "node",
                "--server",
                &server,
                "--room",
                ROOM,
                "--name",
                &m.name,
                "--ice-bind",
                &m.addr,
                "--workers",
                "1",
                "--json",
            ];
            let hostile = ["--serve-lies"];
            let args: Vec<&str> = args
                .into_iter()
                .chain(hostile.into_iter().filter(|_| m.hostile))
                .collect();
            Proc::spawn(self.sandbox.command(&m.ns, &self.bin, &args), stderr, out)?
        } else {
            let cfg = serde_json::json!({
                "browser": if m.body == Body::Firefox { "firefox" } else { "chromium" },
                "name": m.name,
                "url": format!(
                    "{server}/?room={ROOM}&name={}&workers=1{}",
                    m.name,
                    if presenter { format!("&presenter={PRESENTER_KEY}") } else { String::new() }
                ),
                "outdir": self.dir.join(format!("{}.{}", m.name, m.lives)),
                "profiles_dir": self.dir.join("profiles"),
                "chromium": CHROMIUM,
                "firefox": FIREFOX,
                "geckodriver": self.geckodriver,
            });
            let script = self
                .root
                .join("tests/e2e/chaos_tab.mjs")
                .display()
                .to_string();
            let mut cmd =
                self.sandbox
                    .command(&m.ns, Path::new("node"), &[&script, &cfg.to_string()]);
            cmd.current_dir(&self.root).env("NO_COLOR", "1");
            Proc::spawn_with(cmd, stderr, out, true)?
        };
        m.proc = Some(proc);
        m.stopped_until = None;
        m.stopped.clear();
        m.closed = false;
        Ok(())
    }

    /// A member leaves only when killed here: one whose process exits by itself is a
    /// violation (with the first line of its stderr), and its slot stays empty. What a
    /// tab's driver could not do is said.
    fn watch_members(&mut self) {
        let mut exited = Vec::new();
        let mut said = Vec::new();
        for m in &mut self.members {
            let Some(p) = &mut m.proc else { continue };
            for note in p.take_notes() {
                said.push(format!("{}: {note}", m.name));
            }
            if let Ok(Some(status)) = p.child.try_wait() {
                let stderr = self.dir.join(format!("{}.{}.stderr", m.name, m.lives));
                let first = std::fs::read_to_string(&stderr)
                    .ok()
                    .and_then(|t| t.lines().find(|l| !l.trim().is_empty()).map(String::from))
                    .unwrap_or_default();
                exited.push(format!("{} exited by itself ({status}): {first}", m.name));
                m.proc = None;
                m.stopped_until = None;
            }
        }
        for msg in said {
            self.say(msg);
        }
        for msg in exited {
            self.violations.push(msg.clone());
            self.say(msg);
        }
    }

    /// The running members that have an id, with their slots.
    fn living(&self) -> Vec<(usize, String)> {
        self.members
            .iter()
            .enumerate()
            .filter(|(_, m)| m.running())
            .filter_map(|(i, m)| m.id().map(|id| (i, id)))
            .collect()
    }

    /// Whether every living, running member counts every other among its peers.
    fn whole(&self) -> bool {
        let ids = self.living();
        if ids.len() < self.members.iter().filter(|m| m.running()).count() {
            return false;
        }
        ids.iter().all(|(i, _)| {
            let sees = self.members[*i].sees();
            ids.iter().all(|(j, id)| j == i || sees.contains(id))
        })
    }

    /// What the tabs show wrongly of the living members: one in another state than
    /// live, or shown lying (no member lies in this run).
    fn shown_wrong(&self) -> Vec<String> {
        let living: BTreeMap<String, &str> = self
            .living()
            .into_iter()
            .map(|(i, id)| (id, self.members[i].name.as_str()))
            .collect();
        let mut wrong = Vec::new();
        for m in self.members.iter().filter(|m| m.is_tab() && m.running()) {
            let view = m.proc.as_ref().map(|p| p.with(|s| s.view.clone()));
            for (peer, state, liar) in view.into_iter().flatten() {
                if let Some(name) = living.get(&peer)
                    && (state != "live" || liar)
                {
                    wrong.push(format!(
                        "{} shows {name} ({peer}) {state}{}",
                        m.name,
                        if liar { ", lying" } else { "" }
                    ));
                }
            }
        }
        wrong
    }

    /// The living natives' validated results short of copies, in the jobs each
    /// accepted last ([`COPIES_JOBS`]): "native-2: 3 of job …".
    fn copies_short(&self) -> Vec<String> {
        let mut short = Vec::new();
        for m in self.members.iter().filter(|m| !m.is_tab() && m.running()) {
            let Some((jobs, counts)) = m
                .proc
                .as_ref()
                .map(|p| p.with(|s| (s.jobs.clone(), s.copies_short.clone())))
            else {
                continue;
            };
            for (job, n) in counts.iter().filter(|(job, _)| jobs.contains(job)) {
                short.push(format!("{}: {n} of job {job}", m.name));
            }
        }
        short
    }

    fn go(&mut self, opts: &Opts) -> Result<()> {
        self.start_server()?;
        for i in 0..self.members.len() {
            self.start_member(i)?;
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.whole() {
            if Instant::now() > deadline {
                let views: Vec<String> = self
                    .members
                    .iter()
                    .map(|m| format!("{} ({:?}) sees {:?}", m.name, m.id(), m.sees()))
                    .collect();
                bail!(
                    "the members did not form a full mesh within 60 s: {}",
                    views.join("; ")
                );
            }
            self.watch_members();
            std::thread::sleep(Duration::from_millis(50));
        }
        self.say(format!(
            "{} members in a full mesh: {}",
            self.members.len(),
            self.members
                .iter()
                .map(Member::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ));
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
            self.watch_members();
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
            self.watch_members();
            self.watch_faults(Instant::now());
            std::thread::sleep(Duration::from_millis(50));
        }
        while !(self.whole() && self.shown_wrong().is_empty()) && healed.elapsed() < SETTLE {
            self.watch_members();
            self.watch_faults(Instant::now());
            std::thread::sleep(Duration::from_millis(50));
        }
        self.watch_faults(Instant::now());
        for kind in self.kinds.clone() {
            for action in kind.actions() {
                if !self
                    .records
                    .iter()
                    .any(|r| r.kind == kind && r.action == *action)
                {
                    self.violations.push(format!(
                        "no fault of the kind \"{}\"{} ran: the run was too short, or the members were never up to receive it",
                        kind.name(),
                        if action.is_empty() { String::new() } else { format!(" ({action})") }
                    ));
                }
            }
        }
        let wrong = self.shown_wrong();
        if !self.whole() {
            let views: Vec<String> = self
                .members
                .iter()
                .map(|m| format!("{} ({:?}) sees {:?}", m.name, m.id(), m.sees()))
                .collect();
            self.violations.push(format!(
                "{} s after the faults stopped, the living members do not all see each other: {}",
                SETTLE.as_secs(),
                views.join("; ")
            ));
        } else if !wrong.is_empty() {
            self.violations.push(format!(
                "{} s after the faults stopped, a tab shows a living member wrongly: {}",
                SETTLE.as_secs(),
                wrong.join("; ")
            ));
        } else {
            self.say(format!(
                "whole mesh, every tab showing every living member live, {:.1} s after the faults stopped",
                healed.elapsed().as_secs_f64()
            ));
        }
        // Re-replication: with the members settled, every validated result of the newest
        // jobs is where the engine wants it. A member that serves lies never gets its
        // copies confirmed (the receivers drop its bytes), so its results stay short
        // while it is their only holder: no check with one.
        if !opts.copies {
            self.say("copies not checked (--check-copies checks them)".into());
            return Ok(());
        }
        if self.members.iter().any(|m| m.hostile) {
            self.say("copies not checked: a member serves lies".into());
            return Ok(());
        }
        while !self.copies_short().is_empty() && healed.elapsed() < COPIES_SETTLE {
            self.watch_members();
            std::thread::sleep(Duration::from_millis(50));
        }
        let short = self.copies_short();
        if short.is_empty() {
            self.say(format!(
                "every validated result of the newest jobs has its copies, {:.1} s after the faults stopped",
                healed.elapsed().as_secs_f64()
            ));
        } else {
            self.violations.push(format!(
                "{} s after the faults stopped, validated results are short of copies: {}",
                COPIES_SETTLE.as_secs(),
                short.join("; ")
            ));
        }
        Ok(())
    }

    /// Draws and applies one fault, unless the draw would leave fewer than two natives
    /// up and running, or there is no member up to receive it.
    fn inject(&mut self, now: Instant) -> Result<()> {
        // A console fault is undone by the demo's reset, which reaches every member only
        // while nothing else is in force: it runs alone.
        if self.active.iter().any(|a| a.kind == Kind::Console) {
            return Ok(());
        }
        // Every kind and action once first (in the seed's order, each until it could be
        // applied), so that even a short run has them all; then any.
        let (kind, want) = match self
            .order
            .iter()
            .find(|(k, a)| !self.records.iter().any(|r| r.kind == *k && r.action == *a))
        {
            Some((k, a)) => (*k, Some(*a)),
            None => (self.rng.pick(&self.kinds), None),
        };
        // Ids before a kill takes one away, for telling when others noticed.
        let ids_before: Vec<(usize, String)> = self
            .members
            .iter()
            .enumerate()
            .filter_map(|(i, m)| m.id().map(|id| (i, id)))
            .collect();
        let up: Vec<usize> = (0..self.members.len())
            .filter(|i| {
                self.members[*i].running() && !self.active.iter().any(|a| a.who.contains(i))
            })
            .collect();
        let natives_running = self
            .members
            .iter()
            .filter(|m| m.body == Body::Native && m.running())
            .count();
        let form_member = self.form_member();
        // A native may be taken away only while more than two run.
        let may_take = |m: &Member| m.is_tab() || natives_running > 2;
        let hold_ms = self.rng.range(1_000, 8_000);
        let until = now + Duration::from_millis(hold_ms);
        let mut who = Vec::new();
        let mut rules = Vec::new();
        let mut action = "";
        let mut detail = String::new();
        match kind {
            Kind::Kill | Kind::Tab | Kind::Stop => {
                let pool: Vec<usize> = up
                    .iter()
                    .copied()
                    .filter(|i| {
                        let m = &self.members[*i];
                        may_take(m)
                            && match kind {
                                Kind::Kill => !m.is_tab(),
                                // A tab's form job dies with its tab (a job is taken
                                // only from its submitter): that tab stays open.
                                Kind::Tab => m.is_tab() && Some(*i) != form_member,
                                _ => true,
                            }
                    })
                    .collect();
                if pool.is_empty() {
                    return Ok(());
                }
                let i = self.rng.pick(&pool);
                who.push(i);
                if kind == Kind::Tab {
                    action = want.unwrap_or_else(|| self.rng.pick(TAB_ACTIONS));
                    detail = format!(": {action}");
                }
                let m = &mut self.members[i];
                match kind {
                    Kind::Kill => {
                        if let Some(p) = m.proc.take() {
                            p.signal("-KILL");
                            drop(p);
                        }
                    }
                    Kind::Tab => {
                        if let Some(p) = &mut m.proc {
                            p.send(action);
                        }
                        m.closed = action != "reload";
                    }
                    _ => {
                        let root = match m.body {
                            Body::Native => m.proc.as_ref().map(Proc::pid),
                            _ => m.proc.as_ref().and_then(|p| p.with(|s| s.browser)),
                        };
                        if let Some(root) = root {
                            m.stopped = std::iter::once(root).chain(descendants(root)).collect();
                            for pid in &m.stopped {
                                signal(*pid, "-STOP");
                            }
                        }
                        m.stopped_until = Some(until);
                    }
                }
            }
            Kind::CutLink | Kind::Isolate | Kind::Loss | Kind::Cap => {
                if up.len() < 2 {
                    return Ok(());
                }
                let a = self.rng.pick(&up);
                who.push(a);
                let addr = self.members[a].addr.clone();
                match kind {
                    Kind::CutLink => {
                        let others: Vec<usize> = up.iter().copied().filter(|b| *b != a).collect();
                        let b = self.rng.pick(&others);
                        who.push(b);
                        let other = self.members[b].addr.clone();
                        rules.push(format!("ip saddr {addr} ip daddr {other} drop"));
                        rules.push(format!("ip saddr {other} ip daddr {addr} drop"));
                    }
                    Kind::Isolate => {
                        // From the other members: the server's traffic is not forwarded,
                        // so its signaling stays.
                        rules.push(format!("ip saddr {addr} drop"));
                        rules.push(format!("ip daddr {addr} drop"));
                    }
                    Kind::Loss => {
                        let pct = self.rng.range(1, 20);
                        rules.push(format!(
                            "ip saddr {addr} numgen random mod 100 < {pct} drop"
                        ));
                        rules.push(format!(
                            "ip daddr {addr} numgen random mod 100 < {pct} drop"
                        ));
                    }
                    _ => {
                        let kbit = self.rng.pick(&[256u32, 512, 1024, 4096]);
                        let m = &self.members[a];
                        self.sandbox.cap(m.slot, &m.ns, Some(kbit))?;
                        detail = format!(": {kbit} kbit/s each way");
                    }
                }
            }
            Kind::Split => {
                // The members up, in two halves by position: alternate ones.
                let half: Vec<usize> = up.iter().copied().step_by(2).collect();
                let rest: Vec<usize> = up.iter().copied().skip(1).step_by(2).collect();
                if rest.is_empty() {
                    return Ok(());
                }
                for a in &half {
                    for b in &rest {
                        let (x, y) = (&self.members[*a].addr, &self.members[*b].addr);
                        rules.push(format!("ip saddr {x} ip daddr {y} drop"));
                        rules.push(format!("ip saddr {y} ip daddr {x} drop"));
                    }
                }
                who = up.clone();
            }
            Kind::Console => {
                let Some(p) = self.presenter else {
                    return Ok(());
                };
                if !self.active.is_empty() || !up.contains(&p) || self.server.is_none() {
                    return Ok(());
                }
                let others: Vec<usize> = up
                    .iter()
                    .copied()
                    .filter(|i| *i != p && Some(*i) != form_member)
                    .collect();
                let ids: Vec<Option<String>> = self.members.iter().map(Member::id).collect();
                if others.len() < 2 || up.iter().any(|i| ids[*i].is_none()) {
                    return Ok(());
                }
                // A liar only while the job under way needs two matching results: a
                // job with q = 1 takes a lie for the answer.
                action = want.unwrap_or_else(|| self.rng.pick(CONSOLE_ACTIONS));
                if action == "lie" && self.job.as_ref().is_some_and(|j| j.q < 2) {
                    return Ok(());
                }
                let a = self.rng.pick(&others);
                let id = |i: usize| ids[i].clone().unwrap_or_default();
                let cmd = match action {
                    "cut" => {
                        let rest: Vec<usize> = others.iter().copied().filter(|b| *b != a).collect();
                        let b = self.rng.pick(&rest);
                        who = vec![p, a, b];
                        format!("console cut {} {}", id(a), id(b))
                    }
                    "pause" => {
                        who = up.clone();
                        "console pause".to_string()
                    }
                    _ => {
                        who = vec![p, a];
                        format!("console {action} {}", id(a))
                    }
                };
                if action == "lie" {
                    self.liar_until = Some(now + Duration::from_secs(86_400));
                }
                detail = format!(": {cmd}");
                if let Some(proc) = &mut self.members[p].proc {
                    proc.send(&cmd);
                }
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
                    action: "",
                });
                overlap(&mut self.records);
                self.records.push(Record {
                    kind,
                    action: "",
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
        // A reload is over when it is done: what is timed is the way back.
        let until = if action == "reload" { now } else { until };
        let names: Vec<String> = who.iter().map(|i| self.members[*i].name.clone()).collect();
        let ids: Vec<String> = ids_before
            .iter()
            .filter(|(i, _)| who.contains(i))
            .map(|(_, id)| id.clone())
            .collect();
        self.say(format!(
            "fault: {} ({}){detail} for {} ms{}",
            kind.name(),
            names.join(", "),
            until.duration_since(now).as_millis(),
            match rules.len() {
                0 => String::new(),
                1..=4 => format!("; rules: {}", rules.join(" | ")),
                n => format!("; {n} rules, the first: {}", rules[..2].join(" | ")),
            }
        ));
        self.active.push(Active {
            kind,
            at: now,
            until,
            who: who.clone(),
            rules,
            action,
        });
        self.apply_rules()?;
        overlap(&mut self.records);
        self.records.push(Record {
            kind,
            action,
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
        // A killed native's successor, or a new tab, starts only with the server up
        // (`meshwork node` exits when it cannot reach the server at start); the server
        // comes back first.
        let server_up = self.server.is_some()
            || self
                .active
                .iter()
                .any(|a| a.kind == Kind::ServerKill && a.until <= now);
        let mut due: Vec<Active> = {
            let (due, keep) = std::mem::take(&mut self.active).into_iter().partition(|a| {
                a.until <= now
                    && (!matches!(a.kind, Kind::Kill | Kind::Tab | Kind::Console) || server_up)
            });
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
                    self.start_member(a.who[0])?;
                }
                Kind::Tab => {
                    let m = &mut self.members[a.who[0]];
                    if a.action != "reload"
                        && let Some(p) = &mut m.proc
                    {
                        p.send("open");
                    }
                    m.closed = false;
                }
                Kind::Stop => {
                    let m = &mut self.members[a.who[0]];
                    for pid in std::mem::take(&mut m.stopped) {
                        signal(pid, "-CONT");
                    }
                    m.stopped_until = None;
                }
                Kind::Cap => {
                    let m = &self.members[a.who[0]];
                    self.sandbox.cap(m.slot, &m.ns, None)?;
                }
                Kind::ServerKill => {
                    self.start_server()?;
                    self.server_back_at = None;
                }
                Kind::Console => {
                    if let Some(p) = self.presenter
                        && let Some(proc) = &mut self.members[p].proc
                    {
                        proc.send("console reset");
                    }
                    if a.action == "lie" {
                        self.liar_until = Some(Instant::now() + LIAR_AFTERMATH);
                    }
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
    /// and for faults on members, when another member first noticed.
    fn watch_faults(&mut self, now: Instant) {
        let whole = self.active.is_empty() && self.whole();
        let departures: Vec<(Instant, String)> = self
            .members
            .iter()
            .filter_map(|m| m.proc.as_ref())
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
        for m in self.members.iter_mut().filter(|m| m.body == Body::Native) {
            if let Some(kib) = m.proc.as_ref().and_then(Proc::rss_kib) {
                m.rss_max_kib = m.rss_max_kib.max(kib);
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
        // One job in four from a tab's form, when a Chromium tab is up to take it.
        let tabs: Vec<usize> = (0..self.members.len())
            .filter(|i| {
                let m = &self.members[*i];
                m.body == Body::Chromium
                    && m.running()
                    && m.id().is_some()
                    && !self.active.iter().any(|a| a.who.contains(i))
            })
            .collect();
        let from_form = self.rng.below(4) == 0 && !tabs.is_empty();
        let (kernel_args, ext, fields) = if from_form {
            let (args, fields) = self.draw_form_job();
            (args, "json".to_string(), Some(fields))
        } else {
            let (args, ext) = self.draw_job();
            (args, ext, None)
        };
        let reference = self.reference(&kernel_args, &ext)?;
        let mut r = self.rng.range(1, 3);
        let mut q = self.rng.range(1, r.min(2));
        if self.liar_until.is_some_and(|t| Instant::now() < t) {
            // A liar runs: only a quorum of two makes the output exact.
            r = r.max(2);
            q = 2;
        }
        let pace = self.rng.pick(&[0u32, 10, 30]);
        self.jobs_started += 1;
        let n = self.jobs_started;
        let now = Instant::now();
        let (by, args, want) = if let Some(mut fields) = fields {
            let member = self.rng.pick(&tabs);
            for (k, v) in [("replicas", r), ("quorum", q), ("pacing", u64::from(pace))] {
                fields[k] = Value::from(v.to_string());
            }
            let want = page_words(&std::fs::read(&reference)?)?;
            let m = &mut self.members[member];
            if let Some(p) = &mut m.proc {
                p.forget_form_job();
                p.send(&format!("submit {fields}"));
            }
            self.say(format!(
                "job {n}: from {}'s form: {} r={r} q={q} pace={pace} ms",
                self.members[member].name,
                kernel_args.join(" ")
            ));
            (Submitter::Form { member }, kernel_args, want.into_bytes())
        } else {
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
                &self.submitter_addr,
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
                self.sandbox.command(&self.submitter_ns, &self.bin, &all),
                self.dir.join(format!("job-{n}.stderr")),
                self.dir.join(format!("job-{n}.stdout")),
            )?;
            self.say(format!(
                "job {n}: {} r={r} q={q} pace={pace} ms",
                kernel_args.join(" ")
            ));
            (
                Submitter::Cli { proc, out },
                args,
                std::fs::read(&reference)?,
            )
        };
        self.job = Some(JobRun {
            by,
            q,
            args,
            want,
            reference,
            started: now,
            last_progress: now,
            validated: 0,
            validated_at: Vec::new(),
        });
        Ok(())
    }

    /// A seeded job a tab's form can describe (primes or π, whose output the page shows
    /// in words): `meshwork run` arguments, and the form's fields (the page's π jobs all
    /// use seed 1).
    fn draw_form_job(&mut self) -> (Vec<String>, Value) {
        if self.rng.below(2) == 0 {
            let n = self.rng.pick(&[10_000_000u64, 50_000_000, 100_000_000]);
            let ranges = self.rng.pick(&[16u32, 48, 96]);
            (
                [
                    "--kernel",
                    "primes",
                    "--n",
                    &n.to_string(),
                    "--ranges",
                    &ranges.to_string(),
                ]
                .map(String::from)
                .to_vec(),
                serde_json::json!({"kernel": "primes", "n": n.to_string(), "ranges": ranges.to_string()}),
            )
        } else {
            let tasks = self.rng.pick(&[16u32, 48, 96]);
            (
                [
                    "--kernel",
                    "pi",
                    "--tasks",
                    &tasks.to_string(),
                    "--samples-per-task",
                    "200000",
                    "--seed",
                    "1",
                ]
                .map(String::from)
                .to_vec(),
                serde_json::json!({"kernel": "pi", "tasks": tasks.to_string(), "samples": "200000"}),
            )
        }
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

    /// Checks the job under way: progress, and its output once it ends.
    fn watch_job_only_finish(&mut self) -> Result<()> {
        let Some(job) = &mut self.job else {
            return Ok(());
        };
        let n = self.jobs_started;
        let now = Instant::now();
        let (validated, ending) = match &mut job.by {
            Submitter::Cli { proc, out } => {
                let validated = proc.with(|s| s.validated.len());
                let ending = match proc.child.try_wait() {
                    Ok(None) => None,
                    Ok(Some(status)) if status.success() => {
                        Some(Ending::Output(std::fs::read(&*out).ok()))
                    }
                    Ok(Some(status)) => Some(Ending::Failed(status.to_string())),
                    Err(e) => bail!("waiting for job {n}: {e}"),
                };
                (validated, ending)
            }
            Submitter::Form { member } => {
                let m = &self.members[*member];
                let told = m
                    .proc
                    .as_ref()
                    .map(|p| p.with(|s| (s.form_submitted.clone(), s.form_card.clone())));
                match told {
                    None => (
                        job.validated,
                        Some(Ending::Failed(format!("{} is gone", m.name))),
                    ),
                    Some((Some(Err(why)), _)) => (
                        job.validated,
                        Some(Ending::Failed(format!(
                            "{}'s form did not take it: {why}",
                            m.name
                        ))),
                    ),
                    Some((Some(Ok(id)), Some(card))) if card.id == id => {
                        let ending = match card.state.as_str() {
                            "done" => Some(Ending::Output(Some(card.output.into_bytes()))),
                            "lost" => Some(Ending::Failed(format!("{}'s page went away", m.name))),
                            _ => None,
                        };
                        if card.validated > job.validated {
                            job.validated_at
                                .extend(std::iter::repeat_n(now, card.validated - job.validated));
                        }
                        (card.validated.max(job.validated), ending)
                    }
                    Some(_) => (job.validated, None),
                }
            }
        };
        if validated > job.validated {
            job.validated = validated;
            job.last_progress = now;
        }
        match ending {
            None => {
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
            Some(Ending::Failed(why)) => {
                let secs = job.started.elapsed().as_secs_f64();
                self.jobs.failed += 1;
                let msg = format!(
                    "job {n} failed ({why}) after {secs:.1} s: {}",
                    job.args.join(" ")
                );
                self.violations.push(msg.clone());
                self.say(msg);
                self.end_job();
            }
            Some(Ending::Output(got)) => {
                let secs = job.started.elapsed().as_secs_f64();
                let verdict = if got.as_deref() == Some(&job.want[..]) {
                    self.jobs.exact += 1;
                    self.jobs.secs.push(secs);
                    format!("job {n} exact in {secs:.1} s")
                } else {
                    self.jobs.wrong += 1;
                    let msg = match &job.by {
                        Submitter::Cli { out, .. } => format!(
                            "job {n}: output {} differs from meshwork run's {}",
                            out.display(),
                            job.reference.display()
                        ),
                        Submitter::Form { .. } => format!(
                            "job {n}: the page shows {:?} where meshwork run's {} makes {:?}",
                            String::from_utf8_lossy(got.as_deref().unwrap_or_default()),
                            job.reference.display(),
                            String::from_utf8_lossy(&job.want)
                        ),
                    };
                    self.violations.push(msg.clone());
                    msg
                };
                self.say(verdict);
                self.end_job();
            }
        }
        Ok(())
    }

    /// Ends the job under way (its submitter is killed if it still runs), keeping when
    /// its tasks were validated.
    fn end_job(&mut self) {
        if let Some(job) = self.job.take() {
            match &job.by {
                Submitter::Cli { proc, .. } => {
                    let times = proc.with(|s| s.validated.clone());
                    self.validated_at.extend(times);
                }
                Submitter::Form { .. } => self.validated_at.extend(job.validated_at),
            }
        }
    }

    /// The member whose form handed out the job under way.
    fn form_member(&self) -> Option<usize> {
        match self.job.as_ref()?.by {
            Submitter::Form { member } => Some(member),
            Submitter::Cli { .. } => None,
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
        for m in &mut self.members {
            m.proc = None;
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
            "chaos report: seed {}, {:.1} min planned, {:.1} min run; members: {}; the server and a submitter\n",
            opts.seed,
            opts.minutes,
            elapsed / 60.0,
            self.members
                .iter()
                .map(Member::describe)
                .collect::<Vec<_>>()
                .join(", ")
        ));
        r.push_str("faults injected (notice: from the fault to the first member that declared a member it concerns gone, while it lasted: a cut link, packet loss or a cap need not make anyone leave; whole: from undoing it until every living member sees every other). Not injected: delay and jitter (this kernel has no sch_netem):\n");
        for kind in self.kinds.iter().copied() {
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
            let mut whole = stat(rs.iter().filter_map(|x| x.whole_ms).collect());
            // Which fault took longest, to find it in the schedule.
            if let Some(at) = rs
                .iter()
                .filter_map(|x| x.whole_ms.map(|w| (w, x.at)))
                .max_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, at)| self.secs(at))
            {
                whole.push_str(&format!(" (the worst: the fault at {at:.2} s)"));
            }
            let overlapped = rs.iter().filter(|x| x.overlapped).count();
            let mut actions: BTreeMap<&str, usize> = BTreeMap::new();
            for x in rs.iter().filter(|x| !x.action.is_empty()) {
                *actions.entry(x.action).or_default() += 1;
            }
            let actions = if actions.is_empty() {
                String::new()
            } else {
                let each: Vec<String> = actions.iter().map(|(a, n)| format!("{a} {n}")).collect();
                format!(" [{}]", each.join(", "))
            };
            r.push_str(&format!(
                "  {:<44} {:>4}{actions}   notice: {noticed}; whole: {whole} ({overlapped} overlapped by another fault, not timed)\n",
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
            self.members
                .iter()
                .filter(|m| m.body == Body::Native)
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

/// The words a page shows of a primes or π job's output, from `meshwork run`'s JSON
/// (as `web_ui::model::output_words` writes them).
fn page_words(reference: &[u8]) -> Result<String> {
    let v: Value = serde_json::from_slice(reference).context("meshwork run's JSON")?;
    let n = |k: &str| v[k].as_u64().with_context(|| format!("no {k} in {v}"));
    match v["kernel"].as_str() {
        Some("primes") => Ok(format!("π({}) = {} primes", n("n")?, n("count")?)),
        Some("pi") => {
            let pi = v["pi"].as_f64().context("no pi")?;
            Ok(format!(
                "π ≈ {pi:.6} ({} of {} points inside)",
                n("inside")?,
                n("samples")?
            ))
        }
        other => bail!("no words for the kernel {other:?}"),
    }
}

/// The plot's colour for a kind of fault.
fn colour(kind: Kind) -> &'static str {
    match kind {
        Kind::Kill => "#d62728",
        Kind::Tab => "#2ca02c",
        Kind::Stop => "#ff7f0e",
        Kind::CutLink => "#9467bd",
        Kind::Isolate => "#8c564b",
        Kind::Split => "#e377c2",
        Kind::Loss => "#bcbd22",
        Kind::Cap => "#7f7f7f",
        Kind::ServerKill => "#17becf",
        Kind::Console => "#aec7e8",
    }
}

/// Draws validated tasks per second (one bar a second) under bands that mark each
/// fault while it was in force, with a legend of the kinds, as an SVG document.
fn draw_plot(per_sec: &[u32], faults: &[(Kind, f64, f64)]) -> String {
    let (w, h, left, top, bottom) = (1200.0_f64, 360.0_f64, 50.0, 40.0, 30.0);
    let plot_w = w - left - 10.0;
    let plot_h = h - top - bottom;
    let secs = per_sec.len().max(1) as f64;
    // A bar per `bucket` seconds, as high as its seconds' mean.
    let bucket = per_sec.len().div_ceil(PLOT_BARS_MAX).max(1);
    let bars: Vec<f64> = per_sec
        .chunks(bucket)
        .map(|c| f64::from(c.iter().sum::<u32>()) / c.len() as f64)
        .collect();
    let peak = bars.iter().copied().fold(0.0, f64::max).max(1.0);
    let what = if bucket == 1 {
        "validated tasks per second".to_string()
    } else {
        format!("validated tasks per second (mean of each {bucket} s)")
    };
    let x = |s: f64| left + s / secs * plot_w;
    let y = |v: f64| top + plot_h - v / peak * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"11\">\n\
         <rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>\n\
         <text x=\"{left}\" y=\"14\" font-size=\"13\">{what}, faults marked while in force</text>\n"
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
    for (i, v) in bars.iter().enumerate() {
        if *v == 0.0 {
            continue;
        }
        let (x0, x1) = (x((i * bucket) as f64), x(((i + 1) * bucket) as f64));
        svg.push_str(&format!(
            "<rect x=\"{x0:.1}\" y=\"{:.1}\" width=\"{:.2}\" height=\"{:.1}\" fill=\"#1f77b4\"/>\n",
            y(*v),
            (x1 - x0).max(0.5),
            top + plot_h - y(*v)
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
    // The legend on a line of its own, under the title (which grows with the bars'
    // seconds).
    let mut lx = left;
    for kind in Kind::ALL {
        svg.push_str(&format!(
            "<rect x=\"{lx:.0}\" y=\"21\" width=\"10\" height=\"10\" fill=\"{}\" fill-opacity=\"0.5\"/><text x=\"{:.0}\" y=\"30\">{}</text>\n",
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
        refused(&["--tabs", "5"], "0 to 4");
        refused(&["--hostile", "3"], "0 to 2");
        refused(&["--tabs", "-1"], "0 to 4");
        refused(&["--fast"], "unknown argument");
        let o = parse(&["--tabs", "0", "--no-firefox"]).unwrap();
        assert_eq!((o.tabs, o.firefox, o.browsers()), (0, false, 0));
        assert_eq!(parse(&[]).unwrap().browsers(), 3);
    }

    #[test]
    fn a_long_run_is_drawn_in_buckets_of_seconds() {
        // 1,800 s: five seconds a bar, each as high as its seconds' mean.
        let mut per_sec = vec![0u32; 1_800];
        per_sec[10..15].copy_from_slice(&[10, 10, 10, 10, 10]);
        per_sec[20] = 5;
        let svg = draw_plot(&per_sec, &[]);
        assert!(svg.contains("(mean of each 5 s)"), "{svg}");
        let bars: Vec<&str> = svg.lines().filter(|l| l.contains("#1f77b4")).collect();
        assert_eq!(bars.len(), 2, "{bars:?}");
        // The peak (10) is full height; the bucket of 20-24 s has a mean of 1.
        assert!(bars[0].contains("height=\"290.0\""), "{}", bars[0]);
        assert!(bars[1].contains("height=\"29.0\""), "{}", bars[1]);
    }

    #[test]
    fn a_form_jobs_output_is_read_as_the_page_words_it() {
        let words = |json: &str| page_words(json.as_bytes()).map_err(|e| e.to_string());
        assert_eq!(
            words(r#"{"count":9592,"kernel":"primes","n":100000}"#).unwrap(),
            "π(100000) = 9592 primes"
        );
        assert_eq!(
            words(r#"{"inside":3162,"kernel":"pi","pi":3.162,"samples":4000}"#).unwrap(),
            "π ≈ 3.162000 (3162 of 4000 points inside)"
        );
        assert!(
            words(r#"{"kernel":"mandelbrot"}"#)
                .unwrap_err()
                .contains("no words")
        );
        assert!(
            words(r#"{"kernel":"primes","n":5}"#)
                .unwrap_err()
                .contains("no count")
        );
        assert!(words("not json").is_err());
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
