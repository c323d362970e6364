//! `meshwork`: run the signaling server, join a mesh as a native node, hand a mesh a
//! job, compute one alone, or start a demo.
//!
//! A thin shell: the server is `signaling`, the node is `node_core`'s `MeshNode` run by
//! its native transport and run loop. This file parses arguments, prints events and
//! handles Ctrl-C and SIGTERM; `jobs` reads job parameters and writes outputs.

mod jobs;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Instant;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use node_core::driver::{RunOptions, Shell, run_native};
use node_core::engine::EngineConfig;
use node_core::job::{JobSpec, NodeId};
use node_core::membership::{MembershipConfig, MeshEvent};
use node_core::node::{MeshNode, NodeEvent, node_id};
use node_core::signal::{IceServer, PeerKind, valid_room_name};
use node_core::transport::native::{NativeConfig, NativeTransport};
use serde_json::json;

#[derive(Parser, Debug)]
#[command(
    name = "meshwork",
    version,
    about = "A distributed-compute mesh you can watch: browser tabs and native nodes over WebRTC",
    long_about = "A distributed-compute mesh you can watch: browser tabs and native nodes join a \
room through a signaling server and connect to each other over WebRTC data channels.\n\n\
Quick start:\n  meshwork demo                 serve the UI and start 2 native nodes in room `demo`\n  \
meshwork serve                signaling server + web UI only\n  \
meshwork node --server http://HOST:8080 --room demo   add this machine as a node"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the signaling server and serve the web UI.
    Serve(ServeArgs),
    /// Join a room as a native node and stay in the mesh until Ctrl-C.
    Node(NodeArgs),
    /// Serve the UI and start native nodes in room `demo`; prints the URL to open.
    Demo(DemoArgs),
    /// Join a room, hand the mesh a job, show its progress and write its output.
    Submit(SubmitArgs),
    /// Compute a job in this process alone, with no mesh: the reference output and the
    /// speed baseline.
    Run(RunArgs),
}

#[derive(Args, Debug)]
struct SubmitArgs {
    /// The signaling server: http://HOST:PORT, ws://HOST:PORT or a full ws://…/ws URL.
    #[arg(long)]
    server: String,
    /// Room to join (letters, digits, '-' and '_').
    #[arg(long, default_value = "demo")]
    room: String,
    #[command(flatten)]
    job: jobs::JobArgs,
    /// Copies kept of every result (r).
    #[arg(long, default_value_t = 2)]
    replicas: u8,
    /// Matching results from distinct nodes needed to accept one (q, at most r).
    #[arg(long, default_value_t = 1)]
    quorum: u8,
    /// Pause between two tasks on every node, in milliseconds (slow motion for a demo).
    #[arg(long, default_value_t = 0)]
    pace_ms: u32,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout: u64,
    /// The job is handed out once this node has connected to every member the server
    /// listed when it joined, or after this many milliseconds, whichever comes first
    /// (members that connect later still join the job).
    #[arg(long, default_value_t = 5000)]
    wait_ms: u64,
    #[command(flatten)]
    node: NodeOptions,
    /// Print one JSON object per line on stdout for every event, and the result.
    #[arg(long)]
    json: bool,
    /// Only hand the job out and gather its output: this node computes nothing (it
    /// fails if nobody else is in the room).
    #[arg(long)]
    no_compute: bool,
}

#[derive(Args, Debug)]
struct RunArgs {
    #[command(flatten)]
    job: jobs::JobArgs,
    /// Threads computing tasks (default: all cores).
    #[arg(long)]
    workers: Option<usize>,
}

#[derive(Args, Debug, Clone)]
struct ServeArgs {
    /// Address to listen on (use 0.0.0.0:8080 to let other machines join).
    #[arg(long, default_value = "127.0.0.1:8080")]
    bind: SocketAddr,
    #[command(flatten)]
    server: ServerOptions,
    /// Print one JSON object per line on stdout (the first is {"event":"listening",...}).
    #[arg(long)]
    json: bool,
}

/// Settings shared by `serve` and `demo`.
#[derive(Args, Debug, Clone)]
struct ServerOptions {
    /// Directory of the built web UI (made by Trunk: `cargo xtask demo` builds it).
    #[arg(long, default_value = "dist")]
    dist: PathBuf,
    /// Directory served as-is under /static.
    #[arg(long, default_value = "static")]
    static_dir: PathBuf,
    /// ICE server handed to every peer (stun:HOST:PORT or turn:HOST:PORT); repeatable.
    /// None by default: peers on one LAN or machine need none.
    #[arg(long = "ice-server", value_name = "URL")]
    ice_servers: Vec<String>,
    /// Largest signaling frame accepted, in bytes.
    #[arg(long, default_value_t = 64 * 1024)]
    message_bytes_max: usize,
    /// Most peers in one room.
    #[arg(long, default_value_t = 64)]
    peers_per_room_max: usize,
    /// Most rooms at once.
    #[arg(long, default_value_t = 1024)]
    rooms_max: usize,
    /// Most signaling frames per second from one connection.
    #[arg(long, default_value_t = 50)]
    messages_per_second_max: u32,
    /// Most frames one connection may send at once after a quiet spell.
    #[arg(long, default_value_t = 320)]
    messages_burst_max: u32,
    /// The same over all connections from one address (a classroom behind one NAT shares
    /// it): per second, and at once.
    #[arg(long, default_value_t = 2_000)]
    address_messages_per_second_max: u32,
    #[arg(long, default_value_t = 8_000)]
    address_messages_burst_max: u32,
    /// Most WebSockets open at once (kept below the open-files limit, which the server
    /// raises to its maximum at start).
    #[arg(long, default_value_t = 4096)]
    connections_max: usize,
    /// Most connections at once that are not WebSockets (page loads, API calls, upgrades
    /// under way); past it a new one closes the oldest. A request head must arrive
    /// within 5 s.
    #[arg(long, default_value_t = 512)]
    handshakes_max: usize,
    /// Joins per second from one address, on average and in a burst.
    #[arg(long, default_value_t = 10)]
    joins_per_second_max: u32,
    #[arg(long, default_value_t = 128)]
    joins_burst_max: u32,
    /// The presenter key: a tab opened with `?presenter=KEY` gets the presenter's
    /// console, and members obey only its commands. A fresh random key by default,
    /// printed at start.
    #[arg(long, value_name = "KEY")]
    presenter_key: Option<String>,
    /// The address an audience uses to reach this server (e.g. http://192.168.1.20:8080),
    /// shown as the join QR code. By default the first LAN address when listening on all
    /// interfaces; otherwise the page's own address.
    #[arg(long, value_name = "URL")]
    public_url: Option<String>,
    /// The file holding the key that signs members' resume tokens, made (readable by
    /// this user only) if missing. A restarted server with the same key gives members
    /// their ids back. Default: $XDG_STATE_HOME/meshwork/resume-key, or
    /// ~/.local/state/meshwork/resume-key.
    #[arg(long, value_name = "PATH")]
    resume_key_file: Option<PathBuf>,
    /// How long a member's resume token is good for, in seconds (members get a fresh
    /// one every third of it).
    #[arg(long, default_value_t = 3_600, value_parser = clap::value_parser!(u64).range(60..=604_800))]
    resume_token_secs: u64,
    /// The secret shared with the TURN server given by --ice-server turn:…
    /// (coturn: use-auth-secret, static-auth-secret=SECRET): each member then gets its own
    /// short-lived credentials instead of a fixed password.
    #[arg(long, value_name = "SECRET")]
    turn_secret: Option<String>,
    /// How long those TURN credentials are good for, in seconds.
    #[arg(long, default_value_t = 86_400, value_parser = clap::value_parser!(u64).range(60..=604_800))]
    turn_credential_secs: u64,
}

#[derive(Args, Debug)]
struct NodeArgs {
    /// The signaling server: http://HOST:PORT, ws://HOST:PORT or a full ws://…/ws URL.
    #[arg(long)]
    server: String,
    /// Room to join (letters, digits, '-' and '_').
    #[arg(long, default_value = "demo")]
    room: String,
    #[command(flatten)]
    node: NodeOptions,
    /// Print one JSON object per line on stdout for every event; logs go to stderr.
    #[arg(long)]
    json: bool,
    /// Benchmark: send this many bytes to the first peer that connects and report the
    /// throughput.
    #[arg(long, hide = true)]
    bench_bulk_bytes: Option<u64>,
}

/// Settings of a native node, shared by `node` and `demo`.
#[derive(Args, Debug, Clone)]
struct NodeOptions {
    /// Display name shown to other peers (default: derived from the id).
    #[arg(long, default_value = "")]
    name: String,
    /// Local address for WebRTC (ICE) sockets; repeatable. Default: every interface,
    /// which is what a node on a LAN needs. Tests pass 127.0.0.1.
    #[arg(long = "ice-bind", value_name = "ADDR", default_value = "0.0.0.0")]
    ice_bind: Vec<String>,
    /// Tasks this node computes at once, each on its own thread (default: all cores).
    #[arg(long, alias = "cores")]
    workers: Option<u16>,
    /// Heartbeat interval in milliseconds.
    #[arg(long, default_value_t = 250)]
    heartbeat_ms: u64,
    /// A peer silent this long is declared dead, in milliseconds.
    #[arg(long, default_value_t = 1500)]
    dead_after_ms: u64,
    /// Testing: a hostile member. It computes and reports honestly, but every result
    /// copy it sends and every fetch it answers carries changed bytes under the true
    /// hash, so that only the others' hash checks keep them out of their outputs.
    #[arg(long)]
    serve_lies: bool,
}

#[derive(Args, Debug)]
struct DemoArgs {
    /// Address to listen on. The default accepts other machines on the LAN.
    #[arg(long, default_value = "0.0.0.0:8080")]
    bind: SocketAddr,
    /// Native nodes to start.
    #[arg(long, default_value_t = 2)]
    nodes: usize,
    #[command(flatten)]
    server: ServerOptions,
    #[command(flatten)]
    node: NodeOptions,
}

/// Default log filter: our own crates at info; webrtc-rs only when something is wrong
/// (it warns about ordinary steps of ICE negotiation).
const QUIET_LOGS: &str = "warn,meshwork=info,node_core=info,signaling=info,\
webrtc=error,rtc=error,rtc_ice=error,rtc_dtls=error,rtc_sctp=error,rtc_datachannel=error";

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| QUIET_LOGS.into()),
        )
        .init();
    match run_command(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One line, causes included: what went wrong and, where it helps, what to do.
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run_command(cli: Cli) -> Result<()> {
    // A node's run loop, its WebRTC connections and its socket share one thread (its
    // computations have threads of their own): on two cores, handing every message
    // between runtime threads cost a quarter of a two-node job's time outside the
    // kernels. The server and the demo, which serve many connections, keep a thread
    // per core.
    let rt = match &cli.command {
        Command::Node(_) | Command::Submit(_) => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build(),
        _ => tokio::runtime::Runtime::new(),
    }
    .context("starting the tokio runtime")?;
    rt.block_on(async move {
        match cli.command {
            Command::Serve(a) => serve(a).await,
            Command::Node(a) => node(a).await,
            Command::Demo(a) => demo(a).await,
            Command::Submit(a) => submit(a).await,
            Command::Run(a) => run(a),
        }
    })
}

/// Resolves on Ctrl-C or SIGTERM. If the SIGTERM handler cannot be installed, Ctrl-C
/// still works (and a warning says SIGTERM is not handled).
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(e) => {
                tracing::warn!(
                    "SIGTERM is not handled (cannot install its handler: {e}); Ctrl-C still stops"
                );
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

fn server_config(o: &ServerOptions) -> Result<signaling::Config> {
    let (connections_max, handshakes_max) = fit_connections(o.connections_max, o.handshakes_max);
    for url in &o.ice_servers {
        if !(url.starts_with("stun:") || url.starts_with("turn:") || url.starts_with("turns:")) {
            bail!("--ice-server {url:?} must start with stun:, turn: or turns:");
        }
    }
    Ok(signaling::Config {
        dist_dir: o.dist.clone(),
        static_dir: o.static_dir.clone(),
        ice_servers: o
            .ice_servers
            .iter()
            .map(|u| IceServer {
                urls: vec![u.clone()],
                username: None,
                credential: None,
            })
            .collect(),
        message_bytes_max: o.message_bytes_max,
        peers_per_room_max: o.peers_per_room_max,
        rooms_max: o.rooms_max,
        messages_per_second_max: o.messages_per_second_max,
        messages_burst_max: o.messages_burst_max,
        address_messages_per_second_max: o.address_messages_per_second_max,
        address_messages_burst_max: o.address_messages_burst_max,
        connections_max,
        handshakes_max,
        joins_per_second_max: o.joins_per_second_max,
        joins_burst_max: o.joins_burst_max,
        presenter_key: Some(match &o.presenter_key {
            Some(k) => {
                if k.len() < 8 || k.len() > 128 || !k.bytes().all(|b| b.is_ascii_graphic()) {
                    bail!("--presenter-key must be 8 to 128 printable characters without spaces");
                }
                k.clone()
            }
            None => signaling::new_presenter_key(),
        }),
        public_url: match &o.public_url {
            Some(u) => {
                if !(u.starts_with("http://") || u.starts_with("https://")) {
                    bail!("--public-url {u:?} must start with http:// or https://");
                }
                Some(u.trim_end_matches('/').to_string())
            }
            None => None,
        },
        resume_key: Some(resume_key(o.resume_key_file.as_deref())?),
        resume_token_secs: o.resume_token_secs,
        turn_secret: match &o.turn_secret {
            Some(s) if s.is_empty() => bail!("--turn-secret must not be empty"),
            Some(_) if !o.ice_servers.iter().any(|u| u.starts_with("turn")) => {
                bail!("--turn-secret needs a TURN server: add --ice-server turn:HOST:PORT")
            }
            other => other.clone(),
        },
        turn_credential_secs: o.turn_credential_secs,
        ..signaling::Config::default()
    })
}

/// The resume key: read from `path` (or the default file), or made there if missing.
fn resume_key(path: Option<&std::path::Path>) -> Result<signaling::ResumeKey> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => {
            let state = std::env::var_os("XDG_STATE_HOME")
                .map(PathBuf::from)
                .or_else(|| {
                    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state"))
                });
            match state {
                Some(dir) => dir.join("meshwork/resume-key"),
                None => {
                    tracing::warn!(
                        "no HOME or XDG_STATE_HOME: resume tokens last only as long as this \
                         server (give --resume-key-file to keep them across restarts)"
                    );
                    return Ok(signaling::ResumeKey::random());
                }
            }
        }
    };
    match std::fs::read_to_string(&path) {
        Ok(text) => signaling::ResumeKey::from_hex(&text).ok_or_else(|| {
            anyhow!(
                "{} is not a resume key (64 hex digits); delete it to make a new one",
                path.display()
            )
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let key = signaling::ResumeKey::random();
            let hex = key.to_hex();
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot make {}", dir.display()))?;
            }
            // Written aside and linked into place, so that servers starting at once
            // agree on one key and none reads a half-written file.
            let aside = path.with_extension(format!("new-{}", std::process::id()));
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut file = options
                .open(&aside)
                .with_context(|| format!("cannot create {}", aside.display()))?;
            std::io::Write::write_all(&mut file, format!("{hex}\n").as_bytes())
                .with_context(|| format!("cannot write {}", aside.display()))?;
            drop(file);
            let linked = std::fs::hard_link(&aside, &path);
            let _ = std::fs::remove_file(&aside);
            match linked {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return resume_key(Some(&path));
                }
                Err(e) => return Err(anyhow!("cannot create {}: {e}", path.display())),
            }
            tracing::info!(path = %path.display(), "made a new resume key");
            Ok(key)
        }
        Err(e) => Err(anyhow!(
            "cannot read the resume key {}: {e}",
            path.display()
        )),
    }
}

/// File descriptors kept for the process itself (listener, standard streams, the
/// runtime's own).
const FDS_SPARE: u64 = 64;

/// Raises this process's open-files limit to its maximum and fits the socket caps
/// under it: `(connections_max, handshakes_max)`, lowered where the limit cannot hold
/// them (a server out of descriptors cannot accept even `/healthz`). A handshake may
/// hold two descriptors (its socket and a UI file it is sending).
fn fit_connections(connections: usize, handshakes: usize) -> (usize, usize) {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
            let soft = if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
                hard
            } else {
                soft
            };
            let budget = usize::try_from(soft.saturating_sub(FDS_SPARE)).unwrap_or(usize::MAX);
            let fit_handshakes = handshakes.min(budget / 4).max(1);
            let fit_connections = connections.min(budget.saturating_sub(2 * fit_handshakes));
            if (fit_connections, fit_handshakes) != (connections, handshakes) {
                tracing::warn!(
                    "--connections-max {connections} and --handshakes-max {handshakes} are over \
                     what {soft} open files allow: serving {fit_connections} and {fit_handshakes}"
                );
            }
            return (fit_connections, fit_handshakes);
        }
    }
    (connections, handshakes)
}

/// The URL an audience can reach: `--public-url`, or, when listening on every
/// interface, this machine's first LAN address; and whether it listens on loopback only.
fn public_url(config: &mut signaling::Config, addr: SocketAddr) {
    config.loopback_only = addr.ip().is_loopback();
    if config.public_url.is_some() || !addr.ip().is_unspecified() {
        return;
    }
    let lan = local_ip_address::list_afinet_netifas()
        .ok()
        .into_iter()
        .flatten()
        .map(|(_, ip)| ip)
        .find(
            |ip| matches!(ip, std::net::IpAddr::V4(v4) if !v4.is_loopback() && !v4.is_link_local()),
        );
    config.public_url = lan.map(|ip| format!("http://{}", SocketAddr::new(ip, addr.port())));
}

/// Where the presenter's console is: the page with the key.
fn presenter_url(config: &signaling::Config, local: SocketAddr, room: &str) -> String {
    format!(
        "http://{local}/?room={room}&presenter={}",
        config.presenter_key.as_deref().unwrap_or_default()
    )
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await.with_context(|| {
        format!(
            "cannot listen on {addr} (is another server using the port? try --bind 127.0.0.1:0)"
        )
    })
}

async fn serve(a: ServeArgs) -> Result<()> {
    let mut config = server_config(&a.server)?;
    if !config.dist_dir.join("index.html").exists() {
        tracing::warn!(
            "no web UI at {}: run `cargo xtask demo` (or `trunk build`) to build it; signaling works without it",
            config.dist_dir.display()
        );
    }
    let listener = bind(a.bind).await?;
    let addr = listener.local_addr()?;
    public_url(&mut config, addr);
    let key = config.presenter_key.clone().unwrap_or_default();
    if a.json {
        println!(
            "{}",
            json!({"event": "listening", "addr": addr.to_string(), "presenter_key": key,
                   "public_url": config.public_url})
        );
    } else {
        println!("meshwork signaling listening on http://{addr}");
        println!(
            "presenter's console (keep the key to yourself): {}",
            presenter_url(&config, loopback_if_unspecified(addr), "demo")
        );
    }
    signaling::serve(listener, config, shutdown_signal()).await?;
    Ok(())
}

/// Accepts http://, https://, ws:// and wss:// server URLs, with or without the /ws path.
fn ws_url(server: &str) -> Result<String> {
    let s = server.trim().trim_end_matches('/');
    let (scheme, rest) = s.split_once("://").with_context(|| {
        format!("--server {server:?} needs a scheme, e.g. http://127.0.0.1:8080")
    })?;
    let scheme = match scheme {
        "http" | "ws" => "ws",
        "https" | "wss" => "wss",
        other => bail!("--server scheme {other:?} is not http, https, ws or wss"),
    };
    if rest.is_empty() {
        bail!("--server {server:?} has no host");
    }
    let path = if rest.contains('/') { "" } else { "/ws" };
    Ok(format!("{scheme}://{rest}{path}"))
}

fn native_config(url: String, room: &str, o: &NodeOptions) -> Result<NativeConfig> {
    if !valid_room_name(room) {
        bail!("room {room:?} is not valid: use 1-64 letters, digits, '-' or '_'");
    }
    Ok(NativeConfig {
        server_url: url,
        room: room.to_string(),
        name: o.name.clone(),
        ice_bind: o.ice_bind.clone(),
        ..NativeConfig::default()
    })
}

fn mesh_node(o: &NodeOptions) -> Result<MeshNode> {
    mesh_node_with(o, None)
}

/// A node offering `cores` tasks at once if given (0: it computes nothing), otherwise
/// `--workers`, otherwise every core.
fn mesh_node_with(o: &NodeOptions, cores: Option<u16>) -> Result<MeshNode> {
    if o.heartbeat_ms == 0 || o.dead_after_ms <= o.heartbeat_ms {
        bail!("--dead-after-ms must be larger than --heartbeat-ms, and both above 0");
    }
    if o.workers == Some(0) {
        bail!("--workers must be at least 1");
    }
    let cores = cores.or(o.workers).unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get() as u16)
            .unwrap_or(1)
    });
    // One task waits for each compute thread (see `EngineConfig::ahead`).
    let engine = EngineConfig {
        ahead: usize::from(cores),
        ..EngineConfig::default()
    };
    let node = MeshNode::with_engine(
        MembershipConfig {
            heartbeat_ms: o.heartbeat_ms,
            dead_after_ms: o.dead_after_ms,
            ..MembershipConfig::default()
        },
        engine,
        o.name.clone(),
        cores,
    );
    Ok(if o.serve_lies {
        node.serving_lies()
    } else {
        node
    })
}

/// Turns node events into output lines, JSON or human.
struct Reporter {
    json: bool,
    /// JSON lines not yet written: a loop turn's lines go out in one write when the
    /// run loop waits ([`Reporter::flush`]). A line each cost a write and woke the
    /// reader, per task four times over.
    out: Vec<u8>,
    /// Made just before the node's run loop starts, whose clock the engine's times are
    /// on (to a few microseconds).
    started: Instant,
    /// Last RTT line per peer, to print at most one a second.
    rtt_printed: std::collections::HashMap<String, Instant>,
    /// The signaling id of every engine node met, so that an engine event can name
    /// its peer (bounded by the peers ever met).
    peers: std::collections::HashMap<node_core::job::NodeId, node_core::signal::PeerId>,
}

impl Reporter {
    fn new(json: bool) -> Reporter {
        Reporter {
            json,
            out: Vec::new(),
            started: Instant::now(),
            rtt_printed: Default::default(),
            peers: Default::default(),
        }
    }

    fn report(&mut self, e: &NodeEvent) {
        let line = match e {
            NodeEvent::Joined { me, peers } => {
                json!({"event": "joined", "id": me.id, "name": me.name, "peers": peers})
            }
            NodeEvent::Mesh(MeshEvent::PeerConnected {
                peer,
                cores,
                connect_ms,
            }) => {
                if self.peers.len() < 4096 {
                    self.peers.insert(node_id(&peer.id), peer.id.clone());
                }
                json!({"event": "peer_connected", "peer": peer.id, "kind": peer.kind,
                       "name": peer.name, "cores": cores, "connect_ms": round(*connect_ms)})
            }
            NodeEvent::Mesh(MeshEvent::PeerLeft {
                peer,
                reason,
                detect_ms,
                was_connected,
            }) => json!({"event": "peer_left", "peer": peer.id, "kind": peer.kind,
                         "reason": reason.as_str(), "detect_ms": round(*detect_ms),
                         "was_connected": was_connected}),
            NodeEvent::Mesh(MeshEvent::Rtt { peer, ms }) => {
                let now = Instant::now();
                let last = self.rtt_printed.get(&peer.0);
                if last.is_some_and(|t| now.duration_since(*t).as_millis() < 1000) {
                    return;
                }
                self.rtt_printed.insert(peer.0.clone(), now);
                json!({"event": "rtt", "peer": peer, "ms": round(*ms)})
            }
            NodeEvent::Mesh(MeshEvent::PeerBack { peer, silent_ms }) => {
                json!({"event": "peer_back", "peer": peer.id, "kind": peer.kind,
                       "name": peer.name, "silent_ms": round(*silent_ms)})
            }
            NodeEvent::Mesh(MeshEvent::SilentGone { peer, reason }) => {
                json!({"event": "peer_gone", "peer": peer.id, "kind": peer.kind,
                       "reason": reason.as_str()})
            }
            NodeEvent::Mesh(MeshEvent::Background { peer, on }) => {
                json!({"event": "peer_background", "peer": peer, "on": on})
            }
            NodeEvent::Mesh(MeshEvent::LinkCut { peer }) => {
                json!({"event": "link_cut", "peer": peer.id, "name": peer.name})
            }
            NodeEvent::Mesh(MeshEvent::LinkRestored { peer }) => {
                json!({"event": "link_restored", "peer": peer.id, "name": peer.name})
            }
            NodeEvent::Mesh(MeshEvent::Dropped { peer, why }) => {
                json!({"event": "dropped", "peer": peer, "why": why})
            }
            NodeEvent::Mesh(MeshEvent::BulkAcked { peer, seq, bytes }) => {
                json!({"event": "bulk_acked", "peer": peer, "seq": seq, "bytes": bytes})
            }
            NodeEvent::BulkDone { peer, bytes, secs } => {
                json!({"event": "bulk", "peer": peer, "bytes": bytes, "ms": round(secs * 1000.0),
                       "mib_per_s": round(*bytes as f64 / 1048576.0 / secs)})
            }
            NodeEvent::SignalingError { code, message, .. } => {
                json!({"event": "signaling_error", "code": code, "message": message})
            }
            NodeEvent::SignalingClosed => json!({"event": "signaling_closed"}),
            NodeEvent::Path {
                peer,
                local,
                remote,
            } => json!({"event": "ice_path", "peer": peer, "local": local, "remote": remote}),
            NodeEvent::SignalingBack { peers } => {
                json!({"event": "signaling_back", "peers": peers})
            }
            NodeEvent::NoLocalAddress { peer } => {
                json!({"event": "no_local_address", "peer": peer,
                       "message": "this node offered WebRTC no network address (no ICE candidate): check --ice-bind and the interfaces"})
            }
            NodeEvent::Console { from, cmd, obeyed } => {
                let who = from.as_ref().map_or("this node", |p| p.name.as_str());
                let text = if *obeyed {
                    let stop = if matches!(cmd, node_core::wire::ConsoleCmd::Fail) {
                        " (this process stays silent until a presenter's reset revives it, or Ctrl-C)"
                    } else {
                        ""
                    };
                    format!("console: {cmd} (from {who}){stop}")
                } else {
                    format!(
                        "ignored a console command from {who}: it did not join with the presenter key"
                    )
                };
                json!({"event": if *obeyed { "console" } else { "console_refused" },
                       "from": from.as_ref().map(|p| &p.id), "command": format!("{cmd:?}"),
                       "text": text})
            }
            NodeEvent::Revived { by } => {
                let who = by.as_ref().map_or("a presenter", |p| p.name.as_str());
                json!({"event": "revived", "by": by.as_ref().map(|p| &p.id),
                       "text": format!("revived by {who}: entering the room again")})
            }
            NodeEvent::ConsoleState { peer, state } => {
                json!({"event": "console_state", "peer": peer, "paused": state.paused,
                       "pacing_ms": state.pacing_ms, "lying": state.lying, "cut": state.cut})
            }
            NodeEvent::Traffic(t) => {
                json!({"event": "traffic", "bytes_out": t.bytes_out, "bytes_in": t.bytes_in,
                       "packed_in": t.packed_in, "unpacked_in": t.unpacked_in,
                       "text": format!("data channels so far: {} KiB out, {} KiB in; packed results: {} KiB that stood for {} KiB",
                                       t.bytes_out >> 10, t.bytes_in >> 10, t.packed_in >> 10, t.unpacked_in >> 10)})
            }
            NodeEvent::CopiesShort(short) => {
                let jobs: serde_json::Map<String, serde_json::Value> = short
                    .iter()
                    .map(|(job, n)| (job.to_string(), json!(n)))
                    .collect();
                let text = if short.is_empty() {
                    "every validated result has its copies".to_string()
                } else {
                    let each: Vec<String> =
                        short.iter().map(|(j, n)| format!("{j}: {n}")).collect();
                    format!(
                        "validated results short of copies, by job: {}",
                        each.join(", ")
                    )
                };
                json!({"event": "copies_short", "jobs": jobs, "text": text})
            }
            NodeEvent::Engine(e) => {
                let mut v = engine_line(e, self.started.elapsed().as_millis() as u64);
                if let node_core::engine::Event::LiarMarked {
                    node, everywhere, ..
                } = e
                {
                    v["peer"] = json!(self.peers.get(node));
                    v["everywhere"] = json!(everywhere);
                }
                v
            }
        };
        if self.json {
            // Writing a JSON value into a Vec cannot fail.
            let _ = serde_json::to_writer(&mut self.out, &line);
            self.out.push(b'\n');
            if self.out.len() >= OUT_HELD_MAX {
                self.flush();
            }
        } else {
            tracing::info!("{line}");
        }
    }

    /// Writes the lines held back.
    fn flush(&mut self) {
        use std::io::Write;
        if self.out.is_empty() {
            return;
        }
        let mut stdout = std::io::stdout().lock();
        // A reader gone away (a closed pipe) loses the lines, as println! would.
        let _ = stdout.write_all(&self.out).and_then(|()| stdout.flush());
        self.out.clear();
    }
}

/// Bytes of output lines a reporter holds back at most.
const OUT_HELD_MAX: usize = 64 << 10;

impl Drop for Reporter {
    fn drop(&mut self) {
        self.flush();
    }
}

impl Shell for Reporter {
    fn event(&mut self, e: &NodeEvent) {
        self.report(e);
    }

    fn idle(&mut self) {
        self.flush();
    }
}

/// An engine event as a JSON line: its kind, its text in plain words, and the numbers
/// a program reading the line needs. `now_ms` is the time on the run loop's clock
/// (the engine's) as the event is reported.
fn engine_line(e: &node_core::engine::Event, now_ms: u64) -> serde_json::Value {
    use node_core::engine::Event;
    let mut v = json!({"event": e.kind(), "text": e.to_string()});
    match e {
        Event::JobProgress {
            job,
            tasks_validated,
            tasks,
        } => {
            v["job"] = json!(job.to_string());
            v["tasks_validated"] = json!(tasks_validated);
            v["tasks"] = json!(tasks);
        }
        Event::JobAccepted { job, tasks, .. } => {
            v["job"] = json!(job.to_string());
            v["tasks"] = json!(tasks);
        }
        Event::TaskStarted { job, task, why } => {
            v["job"] = json!(job.to_string());
            v["task"] = json!(task.0);
            v["why"] = json!(format!("{why:?}").to_lowercase());
        }
        Event::TaskValidated { job, task, .. } | Event::TaskComputed { job, task, .. } => {
            v["job"] = json!(job.to_string());
            v["task"] = json!(task.0);
        }
        // The job's own clock, from its acceptance here: what a reader of the line
        // would otherwise time with its own delays in it.
        Event::JobDone { job, timings, .. } => {
            let since = |at: node_core::engine::Millis| at.0.saturating_sub(timings.started_at.0);
            v["job"] = json!(job.to_string());
            v["validated_ms"] = json!(since(timings.validated_at));
            // The engine's clock stands still while it handles an input, so its
            // `assembled_at` is the start of the input that assembled the job; the
            // output exists only now, when its event is reported.
            let assembled =
                since(timings.assembled_at).max(now_ms.saturating_sub(timings.started_at.0));
            v["assembled_ms"] = json!(assembled);
            v["computed_here"] = json!(timings.computed_here);
        }
        _ => {}
    }
    v
}

fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

async fn node(a: NodeArgs) -> Result<()> {
    let url = ws_url(&a.server)?;
    let config = native_config(url, &a.room, &a.node)?;
    let mut node = mesh_node(&a.node)?;
    // A program reading the lines gets the copies' count too (`copies_short`).
    if a.json {
        node.watch_copies();
    }
    let transport = NativeTransport::connect(config, PeerKind::Native).await?;
    let reporter = Reporter::new(a.json);
    let options = RunOptions {
        bulk_bytes: a.bench_bulk_bytes,
        ..RunOptions::default()
    };
    run_native(transport, node, options, reporter, shutdown_signal()).await;
    Ok(())
}

async fn demo(a: DemoArgs) -> Result<()> {
    let mut config = server_config(&a.server)?;
    if !config.dist_dir.join("index.html").exists() {
        bail!(
            "no web UI at {}: run `cargo xtask demo`, which builds it first",
            config.dist_dir.display()
        );
    }
    let listener = bind(a.bind).await?;
    let addr = listener.local_addr()?;
    public_url(&mut config, addr);
    let local = loopback_if_unspecified(addr);
    let console = presenter_url(&config, local, "demo");
    let audience = config.public_url.clone();
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let server = {
        let mut rx = stop_rx.clone();
        tokio::spawn(signaling::serve(listener, config, async move {
            let _ = rx.changed().await;
        }))
    };
    let mut nodes = Vec::new();
    for i in 0..a.nodes {
        let mut o = a.node.clone();
        if o.name.is_empty() {
            o.name = format!("native-{}", i + 1);
        }
        let config = native_config(format!("ws://{local}/ws"), "demo", &o)?;
        let node = mesh_node(&o)?;
        let transport = NativeTransport::connect(config, PeerKind::Native).await?;
        let mut rx = stop_rx.clone();
        let mut reporter = Reporter::new(false);
        nodes.push(tokio::spawn(async move {
            run_native(
                transport,
                node,
                RunOptions::default(),
                move |e: &NodeEvent| {
                    if !matches!(e, NodeEvent::Mesh(MeshEvent::Rtt { .. })) {
                        reporter.report(e)
                    }
                },
                async move {
                    let _ = rx.changed().await;
                },
            )
            .await
        }));
    }
    println!();
    println!(
        "  Meshwork demo: signaling server and {} native node(s) in room `demo`.",
        a.nodes
    );
    println!("  Open  http://{local}/?room=demo  in a browser tab to join the mesh.");
    println!("  Presenter's console (keep the key to yourself): {console}");
    match audience {
        Some(url) => {
            println!("  The audience joins from {url}/?room=demo (the page shows it as a QR code).")
        }
        None if addr.ip().is_unspecified() => println!(
            "  From another machine: http://<this machine's address>:{}/?room=demo",
            addr.port()
        ),
        None => {}
    }
    println!("  Submit a job from the page's form, or from a terminal:");
    println!(
        "    meshwork submit --server http://{local} --room demo --kernel mandelbrot --pace-ms 50 --out mandelbrot.png"
    );
    println!("  Add a node from a terminal: meshwork node --server http://{local} --room demo");
    println!("  Ctrl-C stops everything.");
    println!();
    shutdown_signal().await;
    let _ = stop_tx.send(true);
    for n in nodes {
        let _ = n.await;
    }
    server.await??;
    Ok(())
}

/// 127.0.0.1 for an address that listens on every interface.
fn loopback_if_unspecified(addr: SocketAddr) -> SocketAddr {
    if addr.ip().is_unspecified() {
        SocketAddr::new(std::net::Ipv4Addr::LOCALHOST.into(), addr.port())
    } else {
        addr
    }
}

fn all_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn run(a: RunArgs) -> Result<()> {
    let kernel = a.job.kernel()?;
    if a.workers == Some(0) {
        bail!("--workers must be at least 1");
    }
    let workers = a.workers.unwrap_or_else(all_cores);
    let started = Instant::now();
    let output = jobs::run_local(&kernel, workers)?;
    jobs::say(&format!(
        "{} tasks on {workers} thread(s) in {:.3} s",
        kernel.task_count(),
        started.elapsed().as_secs_f64()
    ));
    jobs::write_output(&output, a.job.out.as_deref())
}

impl Shell for &mut SubmitState {
    fn event(&mut self, e: &NodeEvent) {
        self.on_event(e);
    }

    fn idle(&mut self) {
        self.reporter.flush();
    }
}

/// What `submit` follows while the node runs.
struct SubmitState {
    json: bool,
    reporter: Reporter,
    progress: jobs::Progress,
    job: Option<jobs::Submission>,
    /// Peers connected now (read by the task that hands the job out).
    nodes: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    no_compute: bool,
    /// Set when the job was not handed out: nobody to compute it.
    nobody: std::sync::Arc<std::sync::atomic::AtomicBool>,
    commands: tokio::sync::mpsc::UnboundedSender<node_core::engine::Command>,
    done: std::sync::Arc<tokio::sync::watch::Sender<bool>>,
    kernel: node_core::kernels::Kernel,
    replicas: u8,
    quorum: u8,
    pace_ms: u32,
    wait: std::time::Duration,
    /// Members this node connected to (ever): the job waits for those listed at join.
    connected: tokio::sync::watch::Sender<usize>,
}

impl SubmitState {
    fn on_event(&mut self, e: &NodeEvent) {
        if self.json && !matches!(e, NodeEvent::Mesh(MeshEvent::Rtt { .. })) {
            self.reporter.report(e);
        }
        match e {
            NodeEvent::Joined { me, peers } => {
                // The job is ours: its submitter is this node's engine id.
                let nonce = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_nanos() as u64);
                let sub = jobs::Submission::new(
                    self.kernel.clone(),
                    self.replicas,
                    self.quorum,
                    self.pace_ms,
                    node_id(&me.id),
                    nonce,
                );
                let (tx, cmd, wait) = (self.commands.clone(), sub.command(), self.wait);
                let (nodes, nobody, done) =
                    (self.nodes.clone(), self.nobody.clone(), self.done.clone());
                let no_compute = self.no_compute;
                let (listed, mut connected) = (*peers, self.connected.subscribe());
                tokio::spawn(async move {
                    // Handed out with the room present: a job computed by this node
                    // alone while the others are still connecting waits for nobody.
                    let all = connected.wait_for(|n| *n >= listed);
                    let _ = tokio::time::timeout(wait, all).await;
                    if no_compute && nodes.load(Ordering::Relaxed) == 0 {
                        nobody.store(true, Ordering::Relaxed);
                        let _ = done.send(true);
                        return;
                    }
                    let _ = tx.send(cmd);
                });
                self.job = Some(sub);
            }
            NodeEvent::Mesh(MeshEvent::PeerConnected { .. } | MeshEvent::PeerBack { .. }) => {
                self.nodes.fetch_add(1, Ordering::Relaxed);
                self.connected.send_modify(|n| *n += 1);
            }
            NodeEvent::Mesh(MeshEvent::PeerLeft { was_connected, .. }) if *was_connected => {
                let _ = self
                    .nodes
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                        Some(n.saturating_sub(1))
                    });
            }
            NodeEvent::Engine(ev) => {
                if let Some(job) = &mut self.job {
                    if job.on_event(ev) {
                        let _ = self.done.send(true);
                    }
                    let tasks = job.spec.kernel.task_count();
                    let nodes = self.nodes.load(Ordering::Relaxed) + usize::from(!self.no_compute);
                    self.progress.update(job.validated, tasks, nodes);
                }
            }
            NodeEvent::SignalingError { message, .. } if !self.json => {
                jobs::say(&format!("signaling server: {message}"))
            }
            _ => {}
        }
    }
}

async fn submit(a: SubmitArgs) -> Result<()> {
    let kernel = a.job.kernel()?;
    // Every bound the mesh would check, checked here first: nothing invalid leaves.
    JobSpec {
        kernel: kernel.clone(),
        replication: a.replicas,
        quorum: a.quorum,
        pacing_ms: a.pace_ms,
        submitter: NodeId(0),
        nonce: 0,
    }
    .validate()
    .map_err(|e| anyhow!("invalid job: {e}"))?;
    if a.timeout == 0 {
        bail!("--timeout must be at least 1 second");
    }
    let url = ws_url(&a.server)?;
    let config = native_config(url, &a.room, &a.node)?;
    let mut options = a.node.clone();
    if a.no_compute {
        options.workers = None;
    }
    let node = mesh_node_with(&options, a.no_compute.then_some(0))?;
    let transport = NativeTransport::connect(config, PeerKind::Native)
        .await
        .with_context(|| format!("cannot join room {:?} at {}", a.room, a.server))?;
    let (cmd_tx, cmd_rx) = tokio::sync::mpsc::unbounded_channel();
    let (done_tx, mut done_rx) = tokio::sync::watch::channel(false);
    let mut state = SubmitState {
        json: a.json,
        reporter: Reporter::new(true),
        progress: jobs::Progress::new(a.json),
        job: None,
        nodes: Default::default(),
        no_compute: a.no_compute,
        nobody: Default::default(),
        commands: cmd_tx,
        done: std::sync::Arc::new(done_tx),
        kernel,
        replicas: a.replicas,
        quorum: a.quorum,
        pace_ms: a.pace_ms,
        wait: std::time::Duration::from_millis(a.wait_ms),
        connected: tokio::sync::watch::channel(0).0,
    };
    let timeout = std::time::Duration::from_secs(a.timeout);
    let options = RunOptions {
        commands: Some(cmd_rx),
        ..RunOptions::default()
    };
    let started = Instant::now();
    let stop = async move {
        tokio::select! {
            _ = done_rx.wait_for(|d| *d) => {}
            () = tokio::time::sleep(timeout) => {}
            () = shutdown_signal() => {}
        }
    };
    run_native(transport, node, options, &mut state, stop).await;
    state.progress.finish();
    if state.nobody.load(Ordering::Relaxed) {
        bail!(
            "nobody in room {:?} to compute the job (with --no-compute this node computes nothing): start `meshwork node` there, or drop --no-compute",
            a.room
        );
    }
    let Some(job) = state.job else {
        bail!(
            "the signaling server never welcomed this node into room {:?}",
            a.room
        );
    };
    if let Some(why) = job.refused {
        bail!("the job was refused: {why}");
    }
    let Some(output) = job.output else {
        bail!(
            "no result after {:.0} s: {}/{} tasks validated (raise --timeout, or add nodes)",
            started.elapsed().as_secs_f64(),
            job.validated,
            job.spec.kernel.task_count()
        );
    };
    if !a.json {
        jobs::say(&format!(
            "job {} done in {:.2} s",
            job.id,
            started.elapsed().as_secs_f64()
        ));
    }
    jobs::write_output(&output, a.job.out.as_deref())
}

#[cfg(test)]
mod tests {
    use super::ws_url;

    #[test]
    fn server_urls() {
        assert_eq!(
            ws_url("http://127.0.0.1:8080").unwrap(),
            "ws://127.0.0.1:8080/ws"
        );
        assert_eq!(ws_url("ws://h:1/").unwrap(), "ws://h:1/ws");
        assert_eq!(
            ws_url("https://example.org").unwrap(),
            "wss://example.org/ws"
        );
        assert_eq!(ws_url("ws://h:1/ws").unwrap(), "ws://h:1/ws");
        assert!(ws_url("127.0.0.1:8080").is_err());
        assert!(ws_url("ftp://h").is_err());
        assert!(ws_url("http://").is_err());
    }
}
