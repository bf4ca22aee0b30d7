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
//! One wake-up at a time: a worker taken by `pop` is *searching* until it
//! finds work ([`IdleSet::found_work`]) or sleeps again, and while any
//! worker searches, `pop` wakes nobody (the searcher will find the work).
//! This is safe by the same pattern: a searcher ends its search with a
//! SeqCst RMW *before* registering and re-checking, so a producer that saw
//! it searching published its work before that re-check. The last searcher
//! to find work wakes the next sleeper if work remains, so wake-ups chain
//! instead of stampeding.
//!
//! ```
//! use unplug_worker::IdleSet;
//! let idle = IdleSet::new();
//! idle.register(3);
//! assert_eq!(idle.pop(), Some(3)); // a producer takes the sleeper to wake
//! assert!(!idle.unregister(3));    // the worker learns it was handed a wake-up
//! assert_eq!(idle.pop(), None);
//! ```

use crate::context::{IdleBlock, Wake, WorkerContext};
use crate::loom::{fence, AtomicUsize, Mutex, Ordering::SeqCst};

/// SLEEP-UNWINDS: a worker inside [`IdleSet::sleep_until_with`], undone
/// if the caller's code in there panics.
struct Asleep<'a, F: FnOnce()> {
    set: &'a IdleSet,
    index: usize,
    timed: bool,
    pass_on: Option<F>,
}

impl<F: FnOnce()> Drop for Asleep<'_, F> {
    fn drop(&mut self) {
        // Only on an unwind: the normal way out forgets the guard.
        let handed = !self.set.unregister(self.index);
        if self.timed {
            self.set.watchers.fetch_sub(1, SeqCst);
        }
        if handed {
            // The wake-up this worker was handed goes to another one. The
            // caller's `pass_on` runs caught: a second panic here, during
            // the unwind, would abort the process.
            self.set.end_search();
            if let Some(pass_on) = self.pass_on.take() {
                let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(pass_on));
            }
        }
    }
}

/// A set of sleeping worker indices with a lock-free "anyone asleep?" check.
#[derive(Debug, Default)]
pub struct IdleSet {
    /// How many indices are in `sleeping`; read without the lock by `pop`.
    count: AtomicUsize,
    /// Workers woken by `pop` that have not yet found work or slept again.
    searching: AtomicUsize,
    /// Workers inside a sleep with a deadline ([`IdleSet::sleep_until`]):
    /// they will look again by themselves.
    watchers: AtomicUsize,
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
    /// re-check for work (P2). An index already registered stays registered
    /// once (no panic on a second call: it is counted once, and one
    /// `unregister` takes it out).
    pub fn register(&self, index: usize) {
        let mut sleeping = self.lock();
        if !sleeping.contains(&index) {
            sleeping.push(index);
            // SeqCst RMW + fence: pairs with the fence in `pop`; see the
            // module docs.
            self.count.fetch_add(1, SeqCst);
        }
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

    /// Takes one sleeping worker to wake, if any and if no woken worker is
    /// still searching. Call after publishing the work; then notify the
    /// returned worker, which is now searching. Cheap (a fence and two
    /// loads) when nobody sleeps or someone searches.
    pub fn pop(&self) -> Option<usize> {
        // Pairs with the RMW + fence in `register` (and the RMW in
        // `end_search` that precedes it): publish, fence, look.
        fence(SeqCst);
        self.pop_after_fence()
    }

    /// [`pop`](IdleSet::pop) for a caller that has just executed
    /// `fence(SeqCst)` after publishing its work (and has nothing published
    /// since): the same pairing, one fence fewer on the producer's path.
    pub fn pop_after_fence(&self) -> Option<usize> {
        if self.searching.load(SeqCst) > 0 || self.count.load(SeqCst) == 0 {
            return None;
        }
        let mut sleeping = self.lock();
        let index = sleeping.pop()?;
        self.count.fetch_sub(1, SeqCst);
        self.searching.fetch_add(1, SeqCst);
        Some(index)
    }

    /// [`pop_after_fence`](IdleSet::pop_after_fence) that never takes
    /// worker `me` and wakes one even while a search is under way: for a
    /// worker that is registered as sleeping but busy inside its idle wait
    /// (an event loop running one of its own tasks there) and must wake
    /// another for work it cannot run now. It may itself be the searcher,
    /// handed a wake-up it cannot act on until that task returns, so the
    /// one-searcher rule would strand the work.
    pub fn pop_other_after_fence(&self, me: usize) -> Option<usize> {
        if self.count.load(SeqCst) == 0 {
            return None;
        }
        let mut sleeping = self.lock();
        let at = sleeping.iter().rposition(|&i| i != me)?;
        let index = sleeping.remove(at);
        self.count.fetch_sub(1, SeqCst);
        self.searching.fetch_add(1, SeqCst);
        Some(index)
    }

    /// A searching worker stops searching. Returns true if it was the last
    /// searcher.
    fn end_search(&self) -> bool {
        self.searching.fetch_sub(1, SeqCst) == 1
    }

    /// The worker found a task. If it was searching, its search ends; returns
    /// true if it was the last searcher, in which case the caller should wake
    /// another worker (`pop` + notify) if more work is queued.
    pub fn found_work(&self, searching: &mut bool) -> bool {
        std::mem::take(searching) && self.end_search()
    }

    /// How many woken workers are searching.
    pub fn searching(&self) -> usize {
        self.searching.load(SeqCst)
    }

    /// The idle sleep of pool worker `index`, the whole pattern in one
    /// place: end a search the worker was on, register, then the worker's
    /// idle wait re-checks `has_work()` and whether a producer handed it a
    /// wake-up (P2), then unregister. A worker woken by a producer with work
    /// to do comes back *searching* (`*searching = true`); one handed a
    /// wake-up that leaves for a park or stop ends that search and calls
    /// `pass_on` (which should `pop` and notify another), so the work that
    /// wake-up was for is not stranded.
    pub fn sleep(
        &self,
        ctx: &WorkerContext<'_>,
        index: usize,
        searching: &mut bool,
        has_work: impl FnMut() -> bool,
        pass_on: impl FnOnce(),
    ) -> Wake {
        self.sleep_until(ctx, index, searching, has_work, pass_on, None)
            .expect("an idle sleep with no deadline returns only with a reason")
    }

    /// [`sleep`](IdleSet::sleep) that also ends at `deadline` (`None`
    /// returned). A worker handed a wake-up whose sleep then timed out is
    /// awake and searching, as if woken for work. While it sleeps with a
    /// deadline it is counted in [`watchers`](IdleSet::watchers).
    pub fn sleep_until(
        &self,
        ctx: &WorkerContext<'_>,
        index: usize,
        searching: &mut bool,
        has_work: impl FnMut() -> bool,
        pass_on: impl FnOnce(),
        deadline: Option<std::time::Instant>,
    ) -> Option<Wake> {
        self.sleep_until_with(ctx, index, searching, has_work, pass_on, deadline, None)
    }

    /// [`sleep_until`](IdleSet::sleep_until) that blocks through `block`
    /// (see [`IdleBlock`]; `None`: on the thread).
    #[allow(clippy::too_many_arguments)] // the sleep's whole contract
    pub fn sleep_until_with(
        &self,
        ctx: &WorkerContext<'_>,
        index: usize,
        searching: &mut bool,
        mut has_work: impl FnMut() -> bool,
        pass_on: impl FnOnce(),
        deadline: Option<std::time::Instant>,
        block: Option<&dyn IdleBlock>,
    ) -> Option<Wake> {
        if std::mem::take(searching) {
            // Before registering: see the module docs.
            self.end_search();
        }
        if deadline.is_some() {
            // Counted only while it sleeps with a deadline, so the count is
            // exact by construction. SeqCst: read by producers after their
            // publish-and-fence, like `count` (`watchers`).
            self.watchers.fetch_add(1, SeqCst);
        }
        self.register(index);
        // SLEEP-UNWINDS: `has_work` and `block` are the caller's code; if
        // either panics, the guard takes the worker out of the set and the
        // watcher count, and passes on a wake-up it was handed. Before, a
        // caught panic left a ghost sleeper: producers handed it every
        // wake-up and the real sleepers were never woken.
        let mut guard = Asleep {
            set: self,
            index,
            timed: deadline.is_some(),
            pass_on: Some(pass_on),
        };
        let recheck = || !self.is_registered(index) || has_work();
        let wake = ctx.idle_wait_until_with(recheck, deadline, block);
        let pass_on = guard.pass_on.take();
        std::mem::forget(guard);
        let handed = !self.unregister(index);
        if deadline.is_some() {
            self.watchers.fetch_sub(1, SeqCst);
        }
        if handed {
            match wake {
                Some(Wake::Park) | Some(Wake::Stop) => {
                    self.end_search();
                    if let Some(pass_on) = pass_on {
                        pass_on();
                    }
                }
                Some(Wake::Work) | None => *searching = true,
            }
        }
        wake
    }

    /// How many workers sleep with a deadline (they look again on their
    /// own by then). A producer reads it after publishing and
    /// `fence(SeqCst)`, as for [`pop_after_fence`](IdleSet::pop_after_fence).
    pub fn watchers(&self) -> usize {
        self.watchers.load(SeqCst)
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
