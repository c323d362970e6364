//! The page's compute workers: one Web Worker per slot, each running one task at a
//! time on the same wasm kernels, so that computing never stalls the page or its
//! network loop.
//!
//! The run loop hands tasks in through [`Pool::compute`] (never more at once than the
//! engine's slots, which follow [`Pool::resize`]); outputs go back to it as
//! [`PageInput::Computed`]. A worker that fails (its script did not load, it crashed) is
//! replaced and its task given to another; after [`START_FAILURES_MAX`] failures in a
//! row the pool says so on the console and computes on the page's thread instead, slower
//! but correct.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::{Rc, Weak};

use futures_channel::mpsc::UnboundedSender;
use js_sys::Uint8Array;
use node_core::driver::PageInput;
use node_core::job::{JobId, TaskId};
use node_core::kernels::Kernel;
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::Closure;
use web_sys::{ErrorEvent, MessageEvent, Worker};
use web_ui::{TaskReply, TaskRequest, decode, encode, unless_left_borrowed};

/// The worker's loader, written by Trunk next to the page.
pub const WORKER_URL: &str = "./worker_loader.js";

/// Worker failures in a row after which tasks run on the page's thread.
pub const START_FAILURES_MAX: u32 = 3;

/// Counters the page shows.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct PoolStats {
    /// Workers running.
    pub workers: usize,
    /// Workers computing a task now.
    pub busy: usize,
    /// Tasks computed since the page loaded.
    pub computed: u64,
    /// Milliseconds spent computing, summed over workers.
    pub compute_ms: f64,
    /// Workers that failed.
    pub failures: u32,
    /// Whether tasks run on the page's thread because workers keep failing.
    pub inline: bool,
}

struct Slot {
    id: u64,
    worker: Worker,
    /// The worker said it is ready (its wasm loaded and its handler set).
    ready: bool,
    task: Option<TaskRequest>,
    /// Resized away: ends when its task is done.
    retiring: bool,
    _on_message: Closure<dyn FnMut(MessageEvent)>,
    _on_error: Closure<dyn FnMut(ErrorEvent)>,
}

struct Inner {
    slots: Vec<Slot>,
    queue: VecDeque<TaskRequest>,
    wanted: usize,
    next_id: u64,
    failures_in_row: u32,
    stats: PoolStats,
    to_node: UnboundedSender<PageInput>,
    on_stats: Box<dyn Fn(PoolStats)>,
    me: Weak<RefCell<Inner>>,
}

/// The page's workers. Cheap to clone (one shared pool).
#[derive(Clone)]
pub struct Pool(Rc<RefCell<Inner>>);

impl Pool {
    /// A pool of `workers` workers sending outputs to `to_node`; `on_stats` sees its
    /// counters after every change.
    pub fn new(
        workers: usize,
        to_node: UnboundedSender<PageInput>,
        on_stats: impl Fn(PoolStats) + 'static,
    ) -> Pool {
        let inner = Rc::new_cyclic(|me| {
            RefCell::new(Inner {
                slots: Vec::new(),
                queue: VecDeque::new(),
                wanted: 0,
                next_id: 0,
                failures_in_row: 0,
                stats: PoolStats::default(),
                to_node,
                on_stats: Box::new(on_stats),
                me: me.clone(),
            })
        });
        let pool = Pool(inner);
        pool.resize(workers);
        pool
    }

    /// Starts or retires workers until `workers` run (busy ones finish their task).
    pub fn resize(&self, workers: usize) {
        let Some(mut p) = unless_left_borrowed(&self.0) else {
            return;
        };
        p.wanted = workers;
        p.fit();
        p.dispatch();
        p.publish();
    }

    /// Computes a task in the next free worker.
    pub fn compute(&self, job: JobId, task: TaskId, kernel: Kernel) {
        let Some(mut p) = unless_left_borrowed(&self.0) else {
            return;
        };
        p.queue.push_back(TaskRequest {
            job,
            task,
            kernel,
            scalar_loop: false,
        });
        p.dispatch();
        p.publish();
    }
}

impl Inner {
    fn publish(&mut self) {
        self.stats.workers = self.slots.iter().filter(|s| !s.retiring).count();
        self.stats.busy = self.slots.iter().filter(|s| s.task.is_some()).count();
        self.stats.inline = self.failures_in_row >= START_FAILURES_MAX;
        (self.on_stats)(self.stats);
    }

    /// Starts workers up to `wanted`, retires the rest.
    fn fit(&mut self) {
        let live = self.slots.iter().filter(|s| !s.retiring).count();
        if live < self.wanted && self.failures_in_row < START_FAILURES_MAX {
            for _ in live..self.wanted {
                match self.spawn() {
                    Ok(slot) => self.slots.push(slot),
                    Err(e) => {
                        self.fail(&format!("cannot start a worker: {e}"));
                        break;
                    }
                }
            }
        }
        let mut extra = live.saturating_sub(self.wanted);
        for s in self.slots.iter_mut().rev() {
            if extra == 0 {
                break;
            }
            if !s.retiring {
                s.retiring = true;
                extra -= 1;
            }
        }
        self.slots.retain(|s| {
            let ends = s.retiring && s.task.is_none();
            if ends {
                s.worker.terminate();
            }
            !ends
        });
    }

    fn spawn(&mut self) -> Result<Slot, String> {
        let worker = Worker::new(WORKER_URL).map_err(|e| format!("{e:?}"))?;
        let id = self.next_id;
        self.next_id += 1;
        let me = self.me.clone();
        let on_message = Closure::<dyn FnMut(MessageEvent)>::new(move |e: MessageEvent| {
            if let Some(p) = me.upgrade() {
                let bytes = Uint8Array::new(&e.data()).to_vec();
                if let Some(mut p) = unless_left_borrowed(&p) {
                    p.on_reply(id, &bytes);
                }
            }
        });
        let me = self.me.clone();
        let on_error = Closure::<dyn FnMut(ErrorEvent)>::new(move |e: ErrorEvent| {
            e.prevent_default();
            if let Some(p) = me.upgrade()
                && let Some(mut p) = unless_left_borrowed(&p)
            {
                p.on_worker_error(id, &e.message());
            }
        });
        worker.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
        worker.set_onerror(Some(on_error.as_ref().unchecked_ref()));
        Ok(Slot {
            id,
            worker,
            ready: false,
            task: None,
            retiring: false,
            _on_message: on_message,
            _on_error: on_error,
        })
    }

    fn on_reply(&mut self, id: u64, bytes: &[u8]) {
        let Some(slot) = self.slots.iter_mut().find(|s| s.id == id) else {
            return;
        };
        if bytes.is_empty() {
            // Ready: requests may come now.
            slot.ready = true;
            self.dispatch();
            self.publish();
            return;
        }
        let asked = slot.task.take();
        self.failures_in_row = 0;
        match decode::<TaskReply>(bytes) {
            Ok(reply)
                if asked
                    .as_ref()
                    .is_some_and(|a| a.job == reply.job && a.task == reply.task) =>
            {
                self.stats.compute_ms += reply.compute_ms;
                self.finish(reply.job, reply.task, reply.output);
            }
            Ok(reply) => web_sys::console::error_1(
                &format!("worker answered {} {} unasked", reply.job, reply.task).into(),
            ),
            Err(e) => web_sys::console::error_1(&e.to_string().into()),
        }
        self.fit();
        self.dispatch();
        self.publish();
    }

    fn finish(&mut self, job: JobId, task: TaskId, output: Result<Vec<u8>, String>) {
        match output {
            Ok(output) => {
                self.stats.computed += 1;
                let _ = self
                    .to_node
                    .unbounded_send(PageInput::Computed { job, task, output });
            }
            // Cannot happen for a validated job; say so loudly.
            Err(e) => web_sys::console::error_1(&format!("{job} {task}: {e}").into()),
        }
    }

    /// A worker failed: its task goes to another, and it is replaced.
    fn on_worker_error(&mut self, id: u64, message: &str) {
        let Some(i) = self.slots.iter().position(|s| s.id == id) else {
            return;
        };
        let slot = self.slots.remove(i);
        slot.worker.terminate();
        if let Some(task) = slot.task {
            self.queue.push_front(task);
        }
        self.fail(&format!("a compute worker failed: {message}"));
        self.fit();
        self.dispatch();
        self.publish();
    }

    fn fail(&mut self, why: &str) {
        self.stats.failures += 1;
        self.failures_in_row += 1;
        if self.failures_in_row == START_FAILURES_MAX {
            web_sys::console::warn_1(
                &format!("{why}; {START_FAILURES_MAX} failures in a row: tasks now run on the page's thread").into(),
            );
        } else {
            web_sys::console::warn_1(&why.into());
        }
    }

    /// Hands queued tasks to idle workers, or computes them here if workers keep failing
    /// (or a task was asked for just as the last worker was retired).
    fn dispatch(&mut self) {
        let no_worker = self.slots.iter().all(|s| s.retiring);
        if self.failures_in_row >= START_FAILURES_MAX || (self.wanted == 0 && no_worker) {
            while let Some(req) = self.queue.pop_front() {
                let output = web_ui::compute(&req);
                self.finish(req.job, req.task, output);
            }
            return;
        }
        for slot in self
            .slots
            .iter_mut()
            .filter(|s| s.ready && !s.retiring && s.task.is_none())
        {
            let Some(req) = self.queue.pop_front() else {
                return;
            };
            let bytes = Uint8Array::from(encode(&req).as_slice());
            match slot.worker.post_message(&bytes) {
                Ok(()) => slot.task = Some(req),
                Err(e) => {
                    web_sys::console::error_1(&e);
                    self.queue.push_front(req);
                    return;
                }
            }
        }
    }
}
