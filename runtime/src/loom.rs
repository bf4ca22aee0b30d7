//! The one place that chooses between `std` and `loom`.
//!
//! Everything in `task/` and `scheduler/` imports its atomics, locks,
//! `Arc` and work queues from here (the one thread-local that matters,
//! `scheduler/context.rs`, picks std's or loom's itself), so that
//! `RUSTFLAGS="--cfg loom"` model-checks the scheduler's real code (see
//! `scheduler/tests/`).
//!
//! Known limit of the models: under loom the work queues are [`deque`], a
//! mutex around a `VecDeque` with crossbeam-deque's API. Each queue
//! operation is then one atomic step; crossbeam-deque is assumed to be
//! linearizable (it is: Chase-Lev plus a linearizable injector), and the
//! models check what the scheduler does around it, not the deque itself.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard};

/// The work queues: crossbeam-deque, or under loom a model of it.
#[cfg(not(loom))]
pub(crate) mod deque {
    pub(crate) use crossbeam_deque::{Injector, Steal, Stealer, Worker as LocalQueue};
}

/// A model of crossbeam-deque for loom: each operation is one step under
/// a loom mutex (see the module docs for why that is enough).
#[cfg(loom)]
pub(crate) mod deque {
    use loom::sync::{Arc, Mutex};
    use std::collections::VecDeque;

    /// Like `crossbeam_deque::Steal`.
    pub(crate) enum Steal<T> {
        Empty,
        Success(T),
        #[allow(dead_code)] // never produced by the model
        Retry,
    }

    type Shared<T> = Arc<Mutex<VecDeque<T>>>;

    /// Like `crossbeam_deque::Injector`.
    pub(crate) struct Injector<T>(Mutex<VecDeque<T>>);

    impl<T> Injector<T> {
        pub(crate) fn new() -> Self {
            Injector(Mutex::new(VecDeque::new()))
        }
        pub(crate) fn push(&self, task: T) {
            self.0.lock().unwrap().push_back(task);
        }
        pub(crate) fn steal(&self) -> Steal<T> {
            self.0
                .lock()
                .unwrap()
                .pop_front()
                .map_or(Steal::Empty, Steal::Success)
        }
        /// Moves up to half (at least one) into `dest`, returns one.
        pub(crate) fn steal_batch_and_pop(&self, dest: &LocalQueue<T>) -> Steal<T> {
            take_half(&self.0, &dest.0, usize::MAX)
        }
        /// Moves at most `limit` (the one returned included) into `dest`.
        pub(crate) fn steal_batch_with_limit_and_pop(
            &self,
            dest: &LocalQueue<T>,
            limit: usize,
        ) -> Steal<T> {
            let mut src = self.0.lock().unwrap();
            let Some(first) = src.pop_front() else {
                return Steal::Empty;
            };
            let n = src.len().min(limit.saturating_sub(1));
            dest.0.lock().unwrap().extend(src.drain(..n));
            Steal::Success(first)
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }

    /// Pops one from `src` and moves half of the rest to `dest`, at most
    /// `limit` in all (the one returned included).
    fn take_half<T>(src: &Mutex<VecDeque<T>>, dest: &Mutex<VecDeque<T>>, limit: usize) -> Steal<T> {
        let mut src = src.lock().unwrap();
        let Some(first) = src.pop_front() else {
            return Steal::Empty;
        };
        let n = (src.len() / 2).min(limit.saturating_sub(1));
        dest.lock().unwrap().extend(src.drain(..n));
        Steal::Success(first)
    }

    /// Like `crossbeam_deque::Worker` (FIFO flavour).
    pub(crate) struct LocalQueue<T>(Shared<T>);

    impl<T> LocalQueue<T> {
        pub(crate) fn new_fifo() -> Self {
            LocalQueue(Arc::new(Mutex::new(VecDeque::new())))
        }
        pub(crate) fn push(&self, task: T) {
            self.0.lock().unwrap().push_back(task);
        }
        pub(crate) fn pop(&self) -> Option<T> {
            self.0.lock().unwrap().pop_front()
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
        pub(crate) fn stealer(&self) -> Stealer<T> {
            Stealer(self.0.clone())
        }
    }

    /// Like `crossbeam_deque::Stealer`.
    pub(crate) struct Stealer<T>(Shared<T>);

    impl<T> Stealer<T> {
        /// Moves up to half (at least one) into `dest`, returns one.
        pub(crate) fn steal_batch_and_pop(&self, dest: &LocalQueue<T>) -> Steal<T> {
            self.steal_batch_with_limit_and_pop(dest, usize::MAX)
        }
        /// As `steal_batch_and_pop`, moving at most `limit` (the one
        /// returned included); nothing from the thief's own queue.
        pub(crate) fn steal_batch_with_limit_and_pop(
            &self,
            dest: &LocalQueue<T>,
            limit: usize,
        ) -> Steal<T> {
            if Arc::ptr_eq(&self.0, &dest.0) {
                return Steal::Empty;
            }
            take_half(&self.0, &dest.0, limit)
        }
        /// One task from the front, as `crossbeam_deque::Stealer::steal`.
        pub(crate) fn steal(&self) -> Steal<T> {
            match self.0.lock().unwrap().pop_front() {
                Some(task) => Steal::Success(task),
                None => Steal::Empty,
            }
        }
        pub(crate) fn is_empty(&self) -> bool {
            self.0.lock().unwrap().is_empty()
        }
        pub(crate) fn len(&self) -> usize {
            self.0.lock().unwrap().len()
        }
    }
}

/// Regressions the loom models can switch back on, one per fixed defect,
/// so that each model's failing control runs the *real* code with exactly
/// that fix removed (the way the worker crate keeps the unfixed seeds).
/// Without loom, [`on`](regress::on) is a constant `false` and the
/// regressed branches compile away.
pub(crate) mod regress {
    /// One fixed defect of the scheduler-core issue.
    #[derive(Clone, Copy, Debug)]
    #[repr(u32)]
    #[allow(dead_code)] // each is named only by its model's control
    pub(crate) enum Regression {
        /// Defect 1: check the abort bit before the task is marked running
        /// (not at the start of its poll).
        AbortCheckedBeforeRun = 1,
        /// Defect 2: a push to the injector does not re-check the
        /// lifecycle afterwards (a push after shutdown's last drain stays).
        PushIgnoresClosing = 2,
        /// Defect 4: a worker leaving for a park or stop does not pass on
        /// the wake-up its search owed the pool.
        LeaveWithoutHandoff = 4,
        /// Defect 5: filling the LIFO slot or queueing a yield wakes nobody.
        LifoFillWakesNobody = 8,
        /// WATCH: a worker that stops watching sleeps without re-checking
        /// for work other workers were offering meanwhile.
        WatchExitWithoutRecheck = 16,
        /// YIELD-LAST done as a private deferred list (tokio's): yielded
        /// tasks are invisible to the other workers.
        YieldedKeptPrivate = 32,
        /// ABORT-REGISTER: a task entering the registry at its first
        /// `Pending` does not look at the abort bit afterwards.
        RegisterWithoutAbortCheck = 64,
        /// REGISTER-ON-PENDING: the future's drop reads the tag and then
        /// marks it gone in two steps (not one swap), so an abort handle
        /// registering the task in between leaves an entry behind.
        DropTagInTwoSteps = 128,
        /// BUSY-GRACE: a worker holding yielded tasks takes only backlogs
        /// of the other workers' run queues, never what an owner stuck in
        /// one poll holds.
        BusyTakesOnlyBacklogs = 256,
    }

    #[cfg(loom)]
    static ON: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    /// Switches `r` on for this process (set once, before the model runs).
    #[cfg(loom)]
    pub(crate) fn enable(r: Regression) {
        ON.fetch_or(r as u32, std::sync::atomic::Ordering::Relaxed);
    }

    /// Is `r` switched on?
    #[cfg(loom)]
    pub(crate) fn on(r: Regression) -> bool {
        ON.load(std::sync::atomic::Ordering::Relaxed) & r as u32 != 0
    }

    /// Is `r` switched on? Never, without loom.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) fn on(_: Regression) -> bool {
        false
    }
}
