//! The idle workers of a pool, woken one at a time.
//!
//! A pool (the runtime's scheduler) keeps its sleeping workers here. A
//! producer that publishes work calls [`IdleSet::pop`] and wakes the worker
//! it gets (through that worker's [`Notifier`](crate::Notifier)); a worker
//! about to sleep calls [`IdleSet::register`] *before* its idle wait
//! re-checks for work. The two sides are the store-buffer pattern, closed by
//! SeqCst on `count` and a SeqCst fence on each side:
//!
//! ```text
//! producer                         worker
//! publish work                     register: count += 1   (SeqCst RMW)
//! fence(SeqCst)                    fence(SeqCst)
//! pop: count == 0 ? nobody : wake  idle_wait re-checks: work? -> run it
//! ```
//!
//! Either the producer sees the worker registered (and wakes one sleeper),
//! or the worker's re-check sees the work: a task published while the last
//! awake worker goes idle is never stranded. A worker handed a wake-up that
//! it will not use (it is parking or stopping) passes it on.
//!
//! ```
//! use unplug_worker::IdleSet;
//! let idle = IdleSet::new();
//! idle.register(3);
//! assert_eq!(idle.pop(), Some(3)); // a producer takes the sleeper to wake
//! assert!(!idle.unregister(3));    // the worker learns it was handed a wake-up
//! assert_eq!(idle.pop(), None);
//! ```

use crate::context::{Wake, WorkerContext};
use crate::loom::{fence, AtomicUsize, Mutex, Ordering::SeqCst};

/// A set of sleeping worker indices with a lock-free "anyone asleep?" check.
#[derive(Debug, Default)]
pub struct IdleSet {
    /// How many indices are in `sleeping`; read without the lock by `pop`.
    count: AtomicUsize,
    /// The sleeping workers, most recent last (woken first: its caches are
    /// the warmest).
    sleeping: Mutex<Vec<usize>>,
}

impl IdleSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Worker `index` is about to sleep. Call before the idle wait's
    /// re-check for work (P2).
    pub fn register(&self, index: usize) {
        let mut sleeping = self.lock();
        debug_assert!(
            !sleeping.contains(&index),
            "worker {index} registered twice"
        );
        sleeping.push(index);
        // SeqCst RMW + fence: pairs with the fence in `pop`; see the module
        // docs.
        self.count.fetch_add(1, SeqCst);
        drop(sleeping);
        fence(SeqCst);
    }

    /// Worker `index` is awake again. Returns true if it was still
    /// registered, false if a producer had taken it (handed it a wake-up).
    pub fn unregister(&self, index: usize) -> bool {
        let mut sleeping = self.lock();
        match sleeping.iter().position(|&i| i == index) {
            Some(at) => {
                sleeping.swap_remove(at);
                self.count.fetch_sub(1, SeqCst);
                true
            }
            None => false,
        }
    }

    /// Is worker `index` still registered (not handed a wake-up)?
    pub fn is_registered(&self, index: usize) -> bool {
        self.lock().contains(&index)
    }

    /// Takes one sleeping worker to wake, if any. Call after publishing the
    /// work; then notify the returned worker. Cheap (a fence and a load)
    /// when nobody sleeps.
    pub fn pop(&self) -> Option<usize> {
        // Pairs with the RMW + fence in `register`: publish, fence, look.
        fence(SeqCst);
        if self.count.load(SeqCst) == 0 {
            return None;
        }
        let mut sleeping = self.lock();
        let index = sleeping.pop()?;
        self.count.fetch_sub(1, SeqCst);
        Some(index)
    }

    /// The idle sleep of pool worker `index`, the whole pattern in one
    /// place: register, then the worker's idle wait re-checks `has_work()`
    /// and whether a producer handed it a wake-up (P2), then unregister. If
    /// it was handed a wake-up but leaves for a park or stop, `pass_on` is
    /// called (it should wake another sleeper: `pop` and notify), so the
    /// work that wake-up was for is not stranded.
    pub fn sleep(
        &self,
        ctx: &WorkerContext<'_>,
        index: usize,
        mut has_work: impl FnMut() -> bool,
        pass_on: impl FnOnce(),
    ) -> Wake {
        self.register(index);
        let wake = ctx.idle_wait(|| !self.is_registered(index) || has_work());
        let handed = !self.unregister(index);
        if handed && wake != Wake::Work {
            pass_on();
        }
        wake
    }

    /// How many workers are registered as sleeping.
    pub fn len(&self) -> usize {
        self.count.load(SeqCst)
    }

    /// True when no worker is registered as sleeping.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> crate::loom::MutexGuard<'_, Vec<usize>> {
        self.sleeping.lock().unwrap_or_else(|p| p.into_inner())
    }
}
