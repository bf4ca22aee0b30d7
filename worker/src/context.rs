//! The worker-side view of the protocol: what a worker body calls.

use crate::protocol::Protocol;
use crate::state::{generation, COMPLETE, IDLE, PARKED, SHOULD_PARK, SHOULD_STOP, SLEEPING};
use event_listener::{EventListener, Listener};

/// Handed to a worker body; every method is for the worker's own thread.
///
/// The body's loop has one shape (P1): run while [`keep_running`]; leave
/// only because of a park or stop request; after leaving for a park, call
/// [`parkme`] unconditionally.
///
/// ```
/// # use unplug_worker::{Worker, WorkerContext};
/// fn body(ctx: &WorkerContext<'_>) -> u64 {
///     let mut parks = 0;
///     loop {
///         while ctx.keep_running() {
///             ctx.idle_wait(|| false);
///         }
///         if ctx.should_stop() {
///             return parks;
///         }
///         parks += 1;
///         ctx.parkme();
///     }
/// }
/// let worker = Worker::builder().name("doc").spawn(body).unwrap();
/// worker.park().unwrap();
/// worker.unpark().unwrap();
/// assert_eq!(worker.stop().unwrap(), 1);
/// ```
///
/// [`keep_running`]: WorkerContext::keep_running
/// [`parkme`]: WorkerContext::parkme
pub struct WorkerContext<'a> {
    protocol: &'a Protocol,
}

/// How an idle worker blocks until it is woken (work, park or stop) or its
/// deadline passes. The default blocks the thread. A runtime can do useful
/// waiting instead: unplug's workers run the tokio reactor while idle.
///
/// The protocol is unchanged by it (P2: the worker registered and
/// re-checked before `block` is called; P5: a park or stop request
/// completes `wake`). An implementation must return once `wake` completes,
/// whatever else it is doing, and must not run the worker's own tasks.
///
/// ```
/// use std::future::Future;
/// use std::pin::Pin;
/// use std::task::{Context, Poll, Waker};
/// use std::time::Instant;
/// use unplug_worker::IdleBlock;
///
/// /// Blocks by polling `wake` with a thread-unparking waker.
/// struct ParkThread;
///
/// impl IdleBlock for ParkThread {
///     fn block(
///         &self,
///         wake: &mut (dyn Future<Output = ()> + Unpin),
///         deadline: Option<Instant>,
///     ) -> bool {
///         struct Unparker(std::thread::Thread);
///         impl std::task::Wake for Unparker {
///             fn wake(self: std::sync::Arc<Self>) {
///                 self.0.unpark();
///             }
///         }
///         let waker = Waker::from(std::sync::Arc::new(Unparker(std::thread::current())));
///         let mut cx = Context::from_waker(&waker);
///         loop {
///             if Pin::new(&mut *wake).poll(&mut cx).is_ready() {
///                 return false;
///             }
///             match deadline {
///                 Some(d) if Instant::now() >= d => return true,
///                 Some(d) => std::thread::park_timeout(d - Instant::now()),
///                 None => std::thread::park(),
///             }
///         }
///     }
/// }
/// # let worker = unplug_worker::Worker::builder().spawn(|ctx| {
/// #     while ctx.keep_running() {
/// #         ctx.idle_wait_until_with(|| false, None, Some(&ParkThread));
/// #     }
/// # }).unwrap();
/// # worker.stop().unwrap();
/// ```
pub trait IdleBlock {
    /// Blocks until `wake` completes (returns `false`) or `deadline`
    /// passes (returns `true`).
    fn block(
        &self,
        wake: &mut (dyn std::future::Future<Output = ()> + Unpin),
        deadline: Option<std::time::Instant>,
    ) -> bool;
}

/// Why [`WorkerContext::idle_wait`] returned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// The work predicate holds.
    Work,
    /// A park was requested: leave the loop and call `parkme()`.
    Park,
    /// A stop was requested: leave the loop and return.
    Stop,
}

impl Protocol {
    /// The worker-side view. Call it on the worker thread. (Defined here,
    /// beside the view, so that the protocol does not depend on it.)
    pub fn context(&self) -> WorkerContext<'_> {
        WorkerContext { protocol: self }
    }
}

impl<'a> WorkerContext<'a> {
    /// The protocol this context belongs to.
    pub fn protocol(&self) -> &'a Protocol {
        self.protocol
    }

    /// Has a park been requested? (`kthread_should_park`)
    #[inline]
    pub fn should_park(&self) -> bool {
        self.protocol.load() & SHOULD_PARK != 0
    }

    /// Has a stop been requested? (`kthread_should_stop`)
    #[inline]
    pub fn should_stop(&self) -> bool {
        self.protocol.load() & SHOULD_STOP != 0
    }

    /// Neither a park nor a stop is requested: the loop condition of P1.
    #[inline]
    pub fn keep_running(&self) -> bool {
        self.protocol.load() & (SHOULD_PARK | SHOULD_STOP) == 0
    }

    /// Sleeps until `has_work()` holds, a park or a stop is requested; returns
    /// at once if one already does. The prepare-to-wait pattern (P2):
    /// register as a waiter, re-check park, stop and work, then sleep.
    ///
    /// `has_work` is called on this thread, after the waiter is registered;
    /// producers publish their work and then call a [`Notifier`]'s
    /// `notify()`, so either this re-check sees the work or their
    /// notification wakes the sleep.
    ///
    /// [`Notifier`]: crate::Notifier
    pub fn idle_wait(&self, has_work: impl FnMut() -> bool) -> Wake {
        self.idle_wait_until(has_work, None)
            .expect("an idle wait with no deadline returns only with a reason")
    }

    /// [`idle_wait`](WorkerContext::idle_wait) that also returns at
    /// `deadline`: `None` if it passed with no reason to wake (P2 is
    /// unchanged: the re-check after registering is the same). Under loom,
    /// where time does not pass, a deadline returns `None` at once instead
    /// of sleeping (a timeout is a spurious wake-up to the caller).
    pub fn idle_wait_until(
        &self,
        has_work: impl FnMut() -> bool,
        deadline: Option<std::time::Instant>,
    ) -> Option<Wake> {
        self.idle_wait_until_with(has_work, deadline, None)
    }

    /// [`idle_wait_until`](WorkerContext::idle_wait_until) that blocks
    /// through `block` (see [`IdleBlock`]; `None`: on the thread).
    pub fn idle_wait_until_with(
        &self,
        mut has_work: impl FnMut() -> bool,
        deadline: Option<std::time::Instant>,
        block: Option<&dyn IdleBlock>,
    ) -> Option<Wake> {
        let p = self.protocol;
        let mut why = |s: usize| {
            if s & SHOULD_STOP != 0 {
                Some(Wake::Stop)
            } else if s & SHOULD_PARK != 0 {
                Some(Wake::Park)
            } else if has_work() {
                Some(Wake::Work)
            } else {
                None
            }
        };
        loop {
            if let Some(wake) = why(p.load()) {
                return Some(wake);
            }
            // P2: register first...
            let waiter = self.prepare_to_wait();
            // ...then re-check park, stop and work.
            if let Some(wake) = why(waiter.state_at_registration) {
                return Some(wake);
            }
            let timed_out = match block {
                Some(block) => waiter.sleep_with(deadline, block),
                None => waiter.sleep_until(deadline),
            };
            if timed_out {
                return why(p.load());
            }
        }
    }

    /// The first half of an idle sleep (`prepare_to_wait`): registers this
    /// thread as a waiter for work, park and stop wake-ups and marks it idle.
    /// The caller re-checks its conditions, then calls
    /// [`IdleWaiter::sleep`] or drops the waiter.
    ///
    /// [`idle_wait`](WorkerContext::idle_wait) is this plus the right
    /// re-check. The split exists for bodies that need their own loop shape,
    /// and so that the loom models can rebuild the unfixed seed loops from
    /// the real primitives. The re-check must include
    /// [`should_park`](WorkerContext::should_park) and
    /// [`should_stop`](WorkerContext::should_stop) (P2).
    pub fn prepare_to_wait(&self) -> IdleWaiter<'a> {
        let p = self.protocol;
        let listener = p.idle_wake().listen();
        let state_at_registration = p.fetch_or(IDLE);
        IdleWaiter {
            protocol: p,
            listener: Some(listener),
            state_at_registration,
        }
    }

    /// Parks this thread while a park is requested (`kthread_parkme`).
    ///
    /// Each turn (P3): set PARKED, check SHOULD_PARK, complete `parked` for
    /// every waiting `park()` caller, register for the wake-up, set the
    /// inactivity marker while re-checking SHOULD_PARK, sleep. Returns when
    /// SHOULD_PARK is clear (after `unpark()` or `stop()`); returns at once if
    /// no park is requested.
    ///
    /// Returns the unpark latency — from the `unpark()` (or `stop()`) that
    /// released it to now, this thread running again — if it slept; `None`
    /// if it did not sleep (or under loom).
    pub fn parkme(&self) -> Option<std::time::Duration> {
        self.parkme_counted(|| {}).unpark_latency
    }

    /// [`parkme`](Self::parkme) that also says how many park requests it
    /// completed: a request withdrawn while the worker slept and a new one
    /// made before it left its loop are two parks in one call (0 if the
    /// request was withdrawn before it got here). `on_park` runs each time
    /// a request is completed, as it happens.
    ///
    /// If `on_park` panics, the worker leaves `parkme` by unwinding: its
    /// request is pending again, not completed (the state reads
    /// [`Parking`](crate::WorkerState::Parking), never `Parked` while the
    /// body runs), and it is completed when the body next calls `parkme`.
    pub fn parkme_counted(&self, mut on_park: impl FnMut()) -> Parkme {
        let p = self.protocol;
        // P3: PARKED (and COMPLETE, which needs it) come down if we leave
        // by unwinding out of `on_park`; disarmed on the normal way out.
        let unwinding = LeaveOnUnwind(p);
        let mut slept = false;
        let mut parks = 0;
        loop {
            // P3: PARKED first. Only this thread sets or clears it, so no
            // stray wake-up can overwrite it (the special state of seed 002).
            let s = p.fetch_or(PARKED);
            if s & SHOULD_PARK == 0 {
                break;
            }
            // P3: complete before sleeping, on every turn of the loop. A
            // park is counted when this call completes it: a request an
            // unpark withdrew between the `fetch_or` and here was never
            // completed, and one an earlier turn completed is counted already.
            if p.complete_parked(generation(s)) {
                parks += 1;
                on_park();
            }
            let listener = p.park_wake().listen();
            // P4: the marker goes up immediately before the blocking call.
            // P5: this RMW is also the re-check after registering: either it
            // sees !SHOULD_PARK, or unpark's CAS comes later in the total
            // order, sees PARKED and notifies our listener.
            let s = p.fetch_or(SLEEPING);
            if s & SHOULD_PARK == 0 {
                break;
            }
            if s & COMPLETE == 0 {
                // P3: the request we completed was withdrawn and a new one
                // made before we registered (so its unpark's wake-up missed
                // us). Never sleep on an uncompleted request: go round and
                // complete this one first.
                p.fetch_and(!SLEEPING);
                continue;
            }
            p.marker_raised();
            // P4, PARK-WAIT-WINDOW: the window opens after the notification
            // above (which may sleep on the controllers' event lock) and
            // closes before the marker comes down; only the wait is inside.
            p.park_wait_window();
            listener.wait();
            p.park_wait_window();
            slept = true;
            p.fetch_and(!SLEEPING);
        }
        std::mem::forget(unwinding);
        p.fetch_and(!(PARKED | SLEEPING));
        Parkme {
            unpark_latency: if slept { p.since_unpark() } else { None },
            parks,
        }
    }
}

/// Leaves `parkme` when a panic unwinds out of it (`on_park` is user code):
/// PARKED, SLEEPING and COMPLETE come down in one RMW, so the word never
/// shows a parked worker that runs its body, nor COMPLETE without PARKED.
/// The request stays pending, uncompleted: its `park()` callers wait on
/// (for the completion and marker of the body's next `parkme`, or for a
/// withdrawal or the exit).
struct LeaveOnUnwind<'a>(&'a Protocol);

impl Drop for LeaveOnUnwind<'_> {
    fn drop(&mut self) {
        // P3: a request counts as completed only while its worker is in
        // parkme.
        self.0.fetch_and(!(PARKED | SLEEPING | COMPLETE));
        // PARK-WAIT-WINDOW: never left open (only this thread moves it).
        self.0.close_park_wait_window();
    }
}

/// What [`WorkerContext::parkme_counted`] did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Parkme {
    /// From the `unpark()` (or `stop()`) that released the worker to it
    /// running again, if it slept (`None` under loom).
    pub unpark_latency: Option<std::time::Duration>,
    /// Park requests it completed (distinct generations).
    pub parks: usize,
}

impl std::fmt::Debug for WorkerContext<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerContext")
            .field("protocol", self.protocol)
            .finish()
    }
}

/// A registered idle waiter: the thread will be woken by any work
/// notification, park or stop that comes after [`prepare_to_wait`]
/// returned. Dropping it without sleeping unregisters.
///
/// [`prepare_to_wait`]: WorkerContext::prepare_to_wait
pub struct IdleWaiter<'a> {
    protocol: &'a Protocol,
    listener: Option<EventListener>,
    state_at_registration: usize,
}

impl IdleWaiter<'_> {
    /// Blocks until a notification arrives (work, park or stop). Re-check
    /// everything afterwards: the wake-up may be for something else.
    pub fn sleep(self) {
        self.sleep_until(None);
    }

    /// [`sleep`](IdleWaiter::sleep), or until `deadline`; returns true if
    /// the deadline passed first. Under loom a deadline returns true at
    /// once (time does not pass there).
    pub fn sleep_until(mut self, deadline: Option<std::time::Instant>) -> bool {
        let Some(listener) = self.listener.take() else {
            return false;
        };
        match deadline {
            None => {
                listener.wait();
                false
            }
            #[cfg(not(loom))]
            Some(deadline) => listener.wait_deadline(deadline).is_none(),
            #[cfg(loom)]
            Some(_) => {
                drop(listener);
                true
            }
        }
    }
}

impl IdleWaiter<'_> {
    /// [`sleep_until`](IdleWaiter::sleep_until) through `block`: the
    /// registered listener is the future `block` waits on.
    pub fn sleep_with(
        mut self,
        deadline: Option<std::time::Instant>,
        block: &dyn IdleBlock,
    ) -> bool {
        let Some(mut listener) = self.listener.take() else {
            return false;
        };
        block.block(&mut listener, deadline)
    }
}

impl Drop for IdleWaiter<'_> {
    fn drop(&mut self) {
        self.protocol.fetch_and(!IDLE);
    }
}

impl std::fmt::Debug for IdleWaiter<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IdleWaiter").finish_non_exhaustive()
    }
}
