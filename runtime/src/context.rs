//! Thread-local context: on a worker thread, the worker's local state; on
//! any thread inside the runtime (workers, `block_on`), the current handle.

use crate::handle::Handle;
use crate::scheduler::{Shared, Slot, Task};
use crossbeam_deque::{Steal, Worker as LocalQueue};
use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Check the injector before the local queue every this many ticks, so a
/// busy local queue cannot starve remote spawns (fairness).
const GLOBAL_CHECK_INTERVAL: u32 = 61;

/// At most this many tasks in a row from the LIFO slot; then the slot's task
/// goes to the back of the queue, so two tasks pinging each other cannot
/// starve the rest.
const MAX_LIFO_POLLS: u32 = 3;

thread_local! {
    static WORKER: RefCell<Option<Rc<Local>>> = const { RefCell::new(None) };
    static HANDLE: RefCell<Option<Handle>> = const { RefCell::new(None) };
}

/// A worker thread's own state. Lives only on that thread.
pub(crate) struct Local {
    pub(crate) shared: Arc<Shared>,
    pub(crate) index: usize,
    pub(crate) slot: Arc<Slot>,
    pub(crate) queue: LocalQueue<Task>,
    tick: Cell<u32>,
    lifo_polls: Cell<u32>,
    rng: Cell<u64>,
    /// Woken by a producer and not yet found work (see `IdleSet`).
    pub(crate) searching: Cell<bool>,
}

impl Local {
    pub(crate) fn new(
        shared: Arc<Shared>,
        index: usize,
        slot: Arc<Slot>,
        queue: LocalQueue<Task>,
    ) -> Self {
        Local {
            shared,
            index,
            slot,
            queue,
            tick: Cell::new(0),
            lifo_polls: Cell::new(0),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ (index as u64 + 1)),
            searching: Cell::new(false),
        }
    }

    /// A task woken on this thread: the LIFO slot, or the back of the
    /// queue for a task that woke itself (a yield).
    pub(crate) fn schedule_woken(&self, task: Task, yielded: bool) {
        if yielded {
            self.queue.push(task);
            return;
        }
        if let Some(displaced) = self.slot.put_lifo(task) {
            self.push_local(displaced);
        }
    }

    /// The back of the local queue, and one sleeper woken to help.
    pub(crate) fn push_local(&self, task: Task) {
        self.queue.push(task);
        self.shared.wake_one();
    }

    /// The next task to run from this worker's own sources.
    pub(crate) fn next_task(&self) -> Option<Task> {
        let tick = self.tick.get().wrapping_add(1);
        self.tick.set(tick);
        if tick % GLOBAL_CHECK_INTERVAL == 0 {
            if let Some(task) = self.pop_injector() {
                return Some(task);
            }
        }
        if self.lifo_polls.get() < MAX_LIFO_POLLS {
            if let Some(task) = self.slot.take_lifo() {
                self.lifo_polls.set(self.lifo_polls.get() + 1);
                return Some(task);
            }
        } else if let Some(task) = self.slot.take_lifo() {
            self.push_local(task);
        }
        self.lifo_polls.set(0);
        self.queue.pop().or_else(|| self.pop_injector())
    }

    /// A batch from the injector into the local queue, returning one.
    fn pop_injector(&self) -> Option<Task> {
        loop {
            match self.shared.injector.steal_batch_and_pop(&self.queue) {
                Steal::Success(task) => {
                    if !self.queue.is_empty() {
                        // More than we can run at once: let a sleeper help.
                        self.shared.wake_one();
                    }
                    return Some(task);
                }
                Steal::Empty => return None,
                Steal::Retry => continue,
            }
        }
    }

    /// Steals from the other workers (their queues, then their LIFO slots),
    /// starting at a random one; then the injector.
    pub(crate) fn steal(&self) -> Option<Task> {
        let slots = self.shared.slots();
        let n = slots.len();
        if n > 1 {
            let start = (self.next_random() % n as u64) as usize;
            for i in 0..n {
                let slot = &slots[(start + i) % n];
                if Arc::ptr_eq(slot, &self.slot) {
                    continue;
                }
                loop {
                    match slot.stealer.steal_batch_and_pop(&self.queue) {
                        Steal::Success(task) => {
                            self.slot.steals.fetch_add(1, Relaxed);
                            return Some(task);
                        }
                        Steal::Retry => continue,
                        Steal::Empty => break,
                    }
                }
                if let Some(task) = slot.take_lifo() {
                    self.slot.steals.fetch_add(1, Relaxed);
                    return Some(task);
                }
            }
        }
        drop(slots);
        self.pop_injector()
    }

    /// Runs one task (or drops it if it was aborted).
    pub(crate) fn run(&self, task: Task) {
        if self.searching.get() {
            // The search that woke us is over; if it was the last one and
            // more work waits, wake the next worker (wake-ups chain).
            let mut searching = true;
            if self.shared.idle.found_work(&mut searching) && self.shared.has_work() {
                self.shared.wake_one();
            }
            self.searching.set(searching);
        }
        if task.metadata().aborted.load(Relaxed) {
            drop(task); // cancelled: the JoinHandle reports it
            return;
        }
        self.slot.polled.fetch_add(1, Relaxed);
        match self
            .shared
            .metrics
            .as_ref()
            .and_then(|m| m.poll_time.as_ref())
        {
            Some(poll_time) => {
                let start = std::time::Instant::now();
                task.run();
                poll_time.record(start.elapsed());
            }
            None => {
                task.run();
            }
        }
    }

    /// P7: everything queued here goes to the injector (or, at shutdown, is
    /// cancelled) before the worker parks or stops, and one sleeper is woken
    /// per batch moved.
    pub(crate) fn migrate(&self) -> usize {
        let closing = self.shared.is_closing();
        let mut moved = 0;
        let mut dispose = |task: Task| {
            moved += 1;
            if closing {
                drop(task);
            } else {
                self.shared.injector.push(task);
            }
        };
        if let Some(task) = self.slot.take_lifo() {
            dispose(task);
        }
        while let Some(task) = self.queue.pop() {
            dispose(task);
        }
        if !closing {
            self.slot.migrated.fetch_add(moved as u64, Relaxed);
        }
        if closing {
            // Shutdown: cancel what other workers left in the injector too.
            loop {
                match self.shared.injector.steal() {
                    Steal::Success(task) => drop(task),
                    Steal::Retry => continue,
                    Steal::Empty => break,
                }
            }
        } else if moved > 0 {
            self.shared.wake_one();
        }
        moved
    }

    fn next_random(&self) -> u64 {
        // xorshift64*
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

/// Makes `local` this thread's worker state until the guard drops.
pub(crate) fn enter_worker(local: Rc<Local>) -> WorkerGuard {
    let handle = Handle::from_shared(local.shared.clone());
    WORKER.with(|w| *w.borrow_mut() = Some(local));
    let previous = HANDLE.with(|h| h.borrow_mut().replace(handle));
    WorkerGuard { previous }
}

pub(crate) struct WorkerGuard {
    previous: Option<Handle>,
}

impl Drop for WorkerGuard {
    fn drop(&mut self) {
        let _ = WORKER.try_with(|w| w.borrow_mut().take());
        let previous = self.previous.take();
        let _ = HANDLE.try_with(|h| *h.borrow_mut() = previous);
    }
}

/// Runs `f` with this thread's worker state if it belongs to `shared`'s
/// runtime.
pub(crate) fn with_local<R>(shared: &Arc<Shared>, f: impl FnOnce(Option<&Local>) -> R) -> R {
    // While thread-locals are torn down, act as a foreign thread.
    let local = WORKER.try_with(|w| w.borrow().clone()).ok().flatten();
    match local.as_deref() {
        Some(local) if Arc::ptr_eq(&local.shared, shared) => f(Some(local)),
        _ => f(None),
    }
}

/// Is this thread a worker of any unplug runtime?
pub(crate) fn in_worker() -> bool {
    WORKER.try_with(|w| w.borrow().is_some()).unwrap_or(false)
}

/// The handle of the runtime this thread is inside, if any.
pub(crate) fn current_handle() -> Option<Handle> {
    HANDLE.try_with(|h| h.borrow().clone()).ok().flatten()
}

/// Makes `handle` current on this thread until the guard drops.
pub(crate) fn enter_handle(handle: Handle) -> HandleGuard {
    let previous = HANDLE.with(|h| h.borrow_mut().replace(handle));
    HandleGuard { previous }
}

pub(crate) struct HandleGuard {
    previous: Option<Handle>,
}

impl Drop for HandleGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        let _ = HANDLE.try_with(|h| *h.borrow_mut() = previous);
    }
}
