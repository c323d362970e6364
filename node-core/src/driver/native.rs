//! The native run loop, on tokio.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::BULK_POLL_MS;
use crate::engine::Command;
use crate::job::{JobId, TaskId};
use crate::membership::{MeshEvent, Micros};
use crate::node::{Action, MeshNode, NodeEvent};
use crate::transport::Transport;

/// A heartbeat that cannot be sent within this time is dropped: a dead peer's full
/// buffer must not stall the loop that is about to declare it dead.
const SEND_WAIT_MS: u64 = 200;

/// What a run does besides carrying the node's actions out.
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Commands of this node's user (submit, cancel...), handed to the node as they
    /// come; send them once the node has joined (after [`NodeEvent::Joined`]).
    pub commands: Option<tokio::sync::mpsc::UnboundedReceiver<Command>>,
    /// Benchmark: send this many bulk bytes to the first peer that connects (through
    /// the node's bulk queue and its flow control, [`MeshNode::start_bulk`]); the
    /// acknowledgement is [`NodeEvent::BulkDone`].
    pub bulk_bytes: Option<u64>,
}

/// Where a native run's events go: the CLI's output, a test's record.
pub trait Shell {
    /// Something worth reporting happened.
    fn event(&mut self, e: &NodeEvent);
    /// The loop has carried out everything due and waits for what comes next: a
    /// shell that holds its output back (one write for many events) writes it now.
    fn idle(&mut self) {}
}

impl<F: FnMut(&NodeEvent)> Shell for F {
    fn event(&mut self, e: &NodeEvent) {
        self(e)
    }
}

/// Runs a node until `shutdown` resolves, the transport ends or a presenter tells the
/// node to leave, handing `shell` everything worth reporting. Closes every connection
/// before returning.
pub async fn run_native<T: Transport>(
    mut transport: T,
    mut node: MeshNode,
    options: RunOptions,
    mut shell: impl Shell,
    shutdown: impl Future<Output = ()>,
) {
    let start = Instant::now();
    let now = || Micros(start.elapsed().as_micros() as u64);
    let mut bulk_pending = options.bulk_bytes;
    let mut commands = options.commands;
    let mut leave = false;
    // Computations run on threads of their own; the engine starts at most as many at
    // once as the node offers cores.
    let mut computing = Workers::new();
    tokio::pin!(shutdown);
    loop {
        let mut deadline = node.poll_timeout();
        if !node.bulk_waiting().is_empty() {
            let soon = Micros(now().0 + BULK_POLL_MS * 1000);
            deadline = Some(deadline.map_or(soon, |d| d.min(soon)));
        }
        let sleep = async {
            match deadline {
                Some(at) => {
                    let wait = at.0.saturating_sub(now().0);
                    tokio::time::sleep(Duration::from_micros(wait)).await
                }
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = transport.next_event() => match ev {
                Some(ev) => node.handle_transport(now(), ev),
                None => break,
            },
            Some(done) = computing.done.recv() => {
                computing.busy -= 1;
                match done {
                    Done::Output(job, task, Ok(output)) => node.handle_computed(now(), job, task, output),
                    Done::Output(job, task, Err(e)) => {
                        tracing::warn!("{job} {task}: the kernel refused: {e}");
                    }
                    Done::Panicked(job, task) => tracing::warn!("{job} {task}: the computation panicked"),
                }
            }
            Some(cmd) = next_command(&mut commands) => {
                if let Err(e) = node.handle_command(now(), cmd) {
                    tracing::warn!("command ignored: {e}");
                }
            }
            () = sleep => node.handle_timeout(now()),
            () = &mut shutdown => break,
        }
        while let Some(action) = node.poll_action() {
            match action {
                Action::Send { to, bytes } => {
                    let send = transport.send(&to, bytes);
                    match tokio::time::timeout(Duration::from_millis(SEND_WAIT_MS), send).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::debug!(peer = %to, "send failed: {e}"),
                        Err(_) => tracing::debug!(peer = %to, "send timed out"),
                    }
                }
                Action::Close { peer } => transport.close_peer(&peer),
                Action::Reconnect { peer } => transport.reconnect(&peer),
                Action::Rejoin => transport.rejoin(),
                Action::Leave => {
                    leave = true;
                    break;
                }
                Action::Compute { job, task, kernel } => {
                    computing.start(usize::from(node.cores()), (job, task, kernel))
                }
                Action::Event(e) => {
                    if let NodeEvent::Mesh(MeshEvent::PeerConnected { peer, .. }) = &e
                        && let Some(bytes) = bulk_pending.take()
                    {
                        node.start_bulk(now(), peer.id.clone(), bytes);
                    }
                    shell.event(&e)
                }
            }
        }
        if leave {
            break;
        }
        send_bulk(&transport, &mut node).await;
        shell.idle();
    }
    shell.idle();
    drop(computing);
    transport.shutdown().await;
}

/// A finished computation.
enum Done {
    Output(JobId, TaskId, Result<Vec<u8>, crate::kernels::KernelError>),
    Panicked(JobId, TaskId),
}

type Work = (JobId, TaskId, crate::kernels::Kernel);

/// Threads that compute, each for the node's whole run, one per core offered, taking
/// tasks from one queue (where the engine's tasks handed out ahead wait). Long-lived
/// threads keep their CPU: a pool thread per task (tokio's blocking pool) was woken
/// wherever its waker ran, and two nodes on two cores often had their computations on
/// the same one, each task then taking half again as long.
struct Workers {
    queue: mpsc::UnboundedSender<Work>,
    /// The queue's far end, shared by the threads (one waits on it at a time).
    tasks: Arc<Mutex<mpsc::UnboundedReceiver<Work>>>,
    done_tx: mpsc::UnboundedSender<Done>,
    done: mpsc::UnboundedReceiver<Done>,
    threads: usize,
    busy: usize,
}

impl Workers {
    fn new() -> Workers {
        let (queue, tasks) = mpsc::unbounded_channel();
        let (done_tx, done) = mpsc::unbounded_channel();
        Workers {
            queue,
            tasks: Arc::new(Mutex::new(tasks)),
            done_tx,
            done,
            threads: 0,
            busy: 0,
        }
    }

    /// Queues a task, and starts a thread if every one is busy and fewer than `cores`
    /// run.
    fn start(&mut self, cores: usize, work: Work) {
        self.busy += 1;
        if self.busy > self.threads && self.threads < cores.max(1) {
            let (tasks, done) = (self.tasks.clone(), self.done_tx.clone());
            let spawned = std::thread::Builder::new()
                .name(format!("compute-{}", self.threads))
                .spawn(move || compute(&tasks, &done));
            match spawned {
                Ok(_) => self.threads += 1,
                Err(e) => tracing::warn!("no thread to compute on: {e}"),
            }
        }
        // The threads end only when this queue closes.
        let _ = self.queue.send(work);
    }
}

/// A compute thread: runs queued tasks until the queue closes (the run ended).
fn compute(tasks: &Mutex<mpsc::UnboundedReceiver<Work>>, done: &mpsc::UnboundedSender<Done>) {
    loop {
        let next = match tasks.lock() {
            Ok(mut rx) => rx.blocking_recv(),
            Err(_) => None,
        };
        let Some((job, task, kernel)) = next else {
            return;
        };
        let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut out = Vec::new();
            kernel.run_task(task.0, &mut out).map(|()| out)
        }));
        let result = match run {
            Ok(r) => Done::Output(job, task, r),
            Err(_) => Done::Panicked(job, task),
        };
        if done.send(result).is_err() {
            return;
        }
    }
}

/// Hands waiting result bytes to every channel that has little in flight.
async fn send_bulk<T: Transport>(transport: &T, node: &mut MeshNode) {
    for to in node.bulk_waiting() {
        while transport.queued(&to).await < node.in_flight_max(&to) {
            let Some(bytes) = node.pop_bulk(&to) else {
                break;
            };
            let send = transport.send(&to, bytes);
            match tokio::time::timeout(Duration::from_millis(SEND_WAIT_MS), send).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::debug!(peer = %to, "bulk send failed: {e}"),
                Err(_) => tracing::debug!(peer = %to, "bulk send timed out"),
            }
        }
    }
}

/// The next user command, or never if there is no channel (or it closed).
async fn next_command(
    commands: &mut Option<tokio::sync::mpsc::UnboundedReceiver<Command>>,
) -> Option<Command> {
    match commands {
        Some(rx) => match rx.recv().await {
            Some(cmd) => Some(cmd),
            None => {
                *commands = None;
                std::future::pending().await
            }
        },
        None => std::future::pending().await,
    }
}
