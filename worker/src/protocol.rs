//! The park protocol without a thread: the state word, the three events, and
//! every transition. See `worker/PROTOCOL.md` for the prose, the seed races
//! and the proof sketch; comments here name the invariant (P1-P8) a line
//! keeps.
//!
//! [`Worker`](crate::Worker) builds a real thread on this. The type is public
//! so that code that owns its threads some other way (and the loom models)
//! can run the same protocol.

use crate::completion::{wait_until, Spin};
use crate::error::ParkError;
use crate::loom::{AtomicUsize, Ordering::SeqCst};
use crate::state::{
    self, debug_check, generation, Decoded, WorkerState, COMPLETE, EXITED, FAILED, GEN_ONE, IDLE,
    PARKED, SHOULD_PARK, SHOULD_STOP, SLEEPING,
};
use event_listener::Event;
use std::time::{Duration, Instant};

/// The shared half of one worker: what the controller and the worker thread
/// both touch.
///
/// # Example
///
/// A worker loop on a thread you own, parked and stopped by the protocol:
///
/// ```
/// use std::sync::Arc;
/// use unplug_worker::Protocol;
///
/// let protocol = Arc::new(Protocol::new());
/// let p = protocol.clone();
/// let thread = std::thread::spawn(move || {
///     let ctx = p.context();
///     loop {
///         while ctx.keep_running() {
///             ctx.idle_wait(|| false); // no work source here: just sleep
///         }
///         if ctx.should_stop() {
///             break;
///         }
///         ctx.parkme(); // P1: unconditional after leaving for a park
///     }
/// });
/// let timings = protocol.park().unwrap();
/// assert!(timings.to_inactive >= timings.to_parked);
/// protocol.request_stop();
/// thread.join().unwrap();
/// ```
pub struct Protocol {
    /// Flags and generation; see [`crate::state`].
    state: AtomicUsize,
    /// The parked sleep. Notified only by `unpark()`/`stop()` of a PARKED
    /// worker (P5), never by work producers: the special state of seed 002.
    park_wake: Event,
    /// The idle sleep. Notified by work producers, by `park()` (the
    /// `wake_up_process` of `kthread_park`) and by `stop()`.
    idle_wake: Event,
    /// `park()` callers wait here: the `parked` completion (`complete_all`
    /// notifies every listener, P8) and any withdrawal of their request.
    controllers: Event,
    /// PARK-WAIT-WINDOW (P4): odd while the worker is inside its park
    /// wait's blocking call (`parkme` adds one right before it and one
    /// right after), so each sleep has its own pair of values. The
    /// kernel's `S` proves the thread asleep in that wait only when read
    /// between two reads of one odd value: with the marker up the worker
    /// may still be asleep on the lock of the controllers' event, whose
    /// notification it makes after raising the marker.
    park_waits: AtomicUsize,
    /// TICKET-OWNER: a number no other protocol in the process has, carried
    /// by the tickets this one issues. An identity only, never changed.
    id: u64,
    /// When the last withdrawing unpark/stop happened (nanoseconds since
    /// `stamp_base()`), so the worker can measure unpark-to-running. A
    /// measurement only: no synchronisation rides on it, hence Relaxed; not
    /// modelled under loom.
    #[cfg(not(loom))]
    unparked_at: std::sync::atomic::AtomicU64,
    /// A [`Worker`](crate::Worker) has been spawned on this protocol
    /// (`Builder::protocol`): a second spawn is refused. Set once; a flag
    /// with no synchronisation role (the spawn that claims it owns the
    /// protocol from then on), hence Relaxed; loom has no `Worker`.
    #[cfg(not(loom))]
    claimed: std::sync::atomic::AtomicBool,
    /// EXIT-BY-RUNNER: the thread of the [`Worker`](crate::Worker) that
    /// runs this protocol, set by that thread before its body; only it may
    /// mark the protocol exited. Set once; loom has no `Worker`.
    #[cfg(not(loom))]
    runner: std::sync::OnceLock<std::thread::ThreadId>,
    /// Loom models only: how many requests `complete_parked` completed, so a
    /// model can hold `parkme_counted`'s count against the truth.
    #[cfg(loom)]
    completions: AtomicUsize,
}

/// TICKET-OWNER: a fresh protocol identity. Relaxed: a unique number is
/// all it gives (no synchronisation rides on it); a plain std atomic under
/// loom too, as nothing here is modelled.
fn next_protocol_id() -> u64 {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// The origin of `unparked_at` stamps.
#[cfg(not(loom))]
fn stamp_base() -> Instant {
    static BASE: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    *BASE.get_or_init(Instant::now)
}

#[cfg(not(loom))]
fn stamp_now() -> u64 {
    stamp_base().elapsed().as_nanos() as u64
}

/// A park request that `park()` is waiting on.
#[derive(Clone, Copy, Debug)]
pub struct ParkTicket {
    generation: usize,
    requested_at: Instant,
    /// TICKET-OWNER: the [`Protocol`] that issued it (its `id`).
    issuer: u64,
}

impl ParkTicket {
    /// The park generation of the request.
    pub fn generation(&self) -> usize {
        self.generation
    }

    /// When the request was made.
    pub fn requested_at(&self) -> Instant {
        self.requested_at
    }
}

/// What a `park()` took as proof that the worker is inactive (P4), in
/// [`ParkTimings::inactive_by`]. See `worker/PROTOCOL.md`, "Platform seam
/// and inactivity evidence".
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InactiveEvidence {
    /// The kernel reported the thread asleep (Linux: `S` in
    /// `/proc/self/task/<tid>/stat`), read between two reads of the
    /// SLEEPING marker for the park's generation: the thread was asleep in
    /// the kernel inside its park wait. (The kernel sets that state just
    /// before its last context switch, so the thread may still be leaving
    /// the CPU for a few hundred nanoseconds; it runs no user code.)
    Kernel,
    /// The SLEEPING marker alone: the worker has committed to its blocking
    /// futex wait in `parkme` and runs none of its body, but nothing proves
    /// it has left the CPU yet. Weaker than [`Kernel`](Self::Kernel). What
    /// the portable build, [`Protocol::park`] and the `Protocol` methods
    /// that take a caller's probe report, and what a Linux
    /// [`Worker`](crate::Worker) reports when the procfs file cannot be
    /// opened or read (no procfs, `EMFILE`, ...).
    Marker,
}

impl InactiveEvidence {
    /// A short lower-case name (`kernel`, `marker`) for logs and labels.
    pub fn as_str(self) -> &'static str {
        match self {
            InactiveEvidence::Kernel => "kernel",
            InactiveEvidence::Marker => "marker",
        }
    }
}

impl std::fmt::Display for InactiveEvidence {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a successful `park()` measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParkTimings {
    /// From the request to the `parked` completion (Linux: `kthread_park`'s
    /// `wait_for_completion` returning).
    pub to_parked: Duration,
    /// From the request to the worker being inactive, i.e. to `park()`
    /// returning (Linux: `wait_task_inactive` returning).
    pub to_inactive: Duration,
    /// The park generation this park belonged to. An `unpark()` bumps it, so
    /// a caller can tell whether the worker was unparked since.
    pub generation: usize,
    /// What proved the worker inactive: the kernel's word, or the marker
    /// alone (portable build, `Protocol` without a platform probe, or an
    /// unreadable procfs).
    pub inactive_by: InactiveEvidence,
}

impl Default for Protocol {
    fn default() -> Self {
        Self::new()
    }
}

impl Protocol {
    /// A fresh protocol: running, no request, generation 0.
    pub fn new() -> Self {
        Protocol {
            state: AtomicUsize::new(0),
            park_wake: Event::new(),
            idle_wake: Event::new(),
            controllers: Event::new(),
            park_waits: AtomicUsize::new(0),
            id: next_protocol_id(),
            #[cfg(not(loom))]
            unparked_at: std::sync::atomic::AtomicU64::new(0),
            #[cfg(not(loom))]
            claimed: std::sync::atomic::AtomicBool::new(false),
            #[cfg(not(loom))]
            runner: std::sync::OnceLock::new(),
            #[cfg(loom)]
            completions: AtomicUsize::new(0),
        }
    }

    /// Loom models only: the requests completed so far (`parked` set for
    /// them by their worker's `parkme`).
    #[cfg(loom)]
    pub fn completed_requests(&self) -> usize {
        self.completions.load(SeqCst)
    }

    /// Claims a fresh protocol for the one worker a `Builder` spawns on it:
    /// false if a worker was spawned on it before, or its word is not the
    /// fresh one (no flag, generation 0). A thread that runs the protocol
    /// without a `Worker` (through [`context`](Protocol::context)) and has
    /// not changed its word cannot be told from a fresh one.
    #[cfg(not(loom))]
    pub(crate) fn claim_for_worker(&self) -> bool {
        !self
            .claimed
            .swap(true, std::sync::atomic::Ordering::Relaxed)
            && self.load() == 0
    }

    /// EXIT-BY-RUNNER: called by the worker thread before its body runs.
    #[cfg(not(loom))]
    pub(crate) fn bind_runner(&self) {
        let _ = self.runner.set(std::thread::current().id());
    }

    /// EXIT-BY-RUNNER: may the calling thread mark this protocol exited?
    /// Any thread if no `Worker` runs it, else only the worker's own.
    fn may_exit(&self) -> bool {
        #[cfg(not(loom))]
        {
            self.runner
                .get()
                .is_none_or(|runner| *runner == std::thread::current().id())
        }
        #[cfg(loom)]
        true
    }

    /// Undoes [`claim_for_worker`](Protocol::claim_for_worker) for a spawn
    /// that failed before its body ran (the word was not touched).
    #[cfg(not(loom))]
    pub(crate) fn release_claim(&self) {
        self.claimed
            .store(false, std::sync::atomic::Ordering::Relaxed);
    }

    /// What the worker is doing now (a snapshot).
    pub fn state(&self) -> WorkerState {
        WorkerState::from_word(self.load())
    }

    /// Is the inactivity marker up: the worker is parked and committed to
    /// (or inside) its blocking sleep, running none of its body?
    pub fn is_inactive(&self) -> bool {
        self.load() & SLEEPING != 0
    }

    /// The current park generation (bumped by every withdrawing unpark/stop).
    pub fn generation(&self) -> usize {
        generation(self.load())
    }

    /// The state word decoded as flag names, for diagnostics.
    pub fn describe(&self) -> String {
        Decoded(self.load()).to_string()
    }

    /// Wakes the worker's idle wait, if it is in one: what a producer of work
    /// calls after publishing the work. Cheap when nobody sleeps (a fence and
    /// a load inside `Event::notify`).
    pub fn notify_work(&self) {
        // P2: the fence inside `notify` orders the producer's publication of
        // work before the check for a listener; pairs with `listen` +
        // re-check in `idle_wait`.
        self.idle_wake.notify(1);
    }

    /// Parks the worker: request, wait for `parked`, wait for inactivity
    /// (marker only, reported as [`InactiveEvidence::Marker`];
    /// [`Worker::park`](crate::Worker::park) adds the kernel's word on
    /// Linux). Blocks until then, or returns why it cannot.
    pub fn park(&self) -> Result<ParkTimings, ParkError> {
        self.park_with(None, &mut || true)
    }

    /// `park()` with an optional deadline and an inactivity `probe` that
    /// must agree before it returns (see [`wait_inactive`]). On timeout the
    /// request is withdrawn and [`ParkError::Timeout`] returned. The
    /// evidence is reported as [`InactiveEvidence::Marker`]: this crate
    /// vouches only for its marker, not for what the probe checked.
    ///
    /// [`wait_inactive`]: Protocol::wait_inactive
    pub fn park_with(
        &self,
        deadline: Option<Instant>,
        probe: &mut dyn FnMut() -> bool,
    ) -> Result<ParkTimings, ParkError> {
        let ticket = self.request_park()?;
        self.wait_park(ticket, deadline, probe)
    }

    /// Steps 2 and 3 of `park()` for a request made earlier with
    /// [`request_park`](Protocol::request_park): wait for `parked`, then for
    /// inactivity. Lets a controller request several parks at once and then
    /// wait for them all.
    pub fn wait_park(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
        probe: &mut dyn FnMut() -> bool,
    ) -> Result<ParkTimings, ParkError> {
        self.wait_park_on(ticket, deadline, probe, false)
    }

    /// [`wait_park`](Protocol::wait_park) for a caller that knows whether it
    /// runs on the worker's own CPU (`shares_cpu`): before sleeping, such a
    /// caller yields between checks (the worker needs that CPU to park),
    /// any other busy-spins (a yield could hand a busy neighbour a whole
    /// time slice).
    pub fn wait_park_on(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
        probe: &mut dyn FnMut() -> bool,
        shares_cpu: bool,
    ) -> Result<ParkTimings, ParkError> {
        let spin = if shares_cpu { Spin::Yield } else { Spin::Busy };
        self.wait_park_evidence(
            ticket,
            deadline,
            &mut marker_only(probe),
            spin,
            OnTimeout::Withdraw,
        )
    }

    /// The whole wait of `park()` with a probe that names its evidence:
    /// `Some(evidence)` when it accepts the worker as inactive, `None` for
    /// "not yet". The platform's probe (`Worker::wait_park`) uses it.
    pub(crate) fn wait_park_evidence(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
        probe: &mut dyn FnMut() -> Option<InactiveEvidence>,
        spin: Spin,
        on_timeout: OnTimeout,
    ) -> Result<ParkTimings, ParkError> {
        self.wait_parked_spin(ticket, deadline, spin, on_timeout)?;
        let to_parked = ticket.requested_at.elapsed();
        // P4: park() returns only once the worker is inactive.
        let inactive_by = self.wait_inactive_spin(ticket, deadline, probe, spin, on_timeout)?;
        Ok(ParkTimings {
            to_parked,
            to_inactive: ticket.requested_at.elapsed(),
            generation: ticket.generation,
            inactive_by,
        })
    }

    /// TICKET-OWNER: a ticket is waited for only on the protocol that
    /// issued it. Another worker's ticket names a generation of another
    /// word: waiting for it here would wait for a request that does not
    /// exist (for ever without a deadline), and a timeout would withdraw
    /// this worker's own request, which that caller never made.
    fn check_issuer(&self, ticket: ParkTicket) -> Result<(), ParkError> {
        if ticket.issuer == self.id {
            Ok(())
        } else {
            Err(ParkError::ForeignTicket)
        }
    }

    /// Step 1 of `park()`: set SHOULD_PARK and wake the worker from an idle
    /// sleep. Refused once a stop was requested.
    pub fn request_park(&self) -> Result<ParkTicket, ParkError> {
        let requested_at = Instant::now();
        let mut cur = self.load();
        let prev = loop {
            if cur & (SHOULD_STOP | EXITED) != 0 {
                return Err(ParkError::Stopped);
            }
            // Concurrent park() callers share one request (P8): setting an
            // already set bit is the same request, same generation.
            // SeqCst: the worker's `fetch_or(PARKED)` and re-checks must see
            // this in one total order with the unpark CAS (P5).
            match self
                .state
                .compare_exchange_weak(cur, cur | SHOULD_PARK, SeqCst, SeqCst)
            {
                Ok(prev) => break prev,
                Err(actual) => cur = actual,
            }
        };
        // P2: `wake_up_process` — the worker may be asleep in its idle wait;
        // it re-checks SHOULD_PARK after registering, so this or the re-check
        // gets it out.
        self.idle_wake.notify(1);
        Ok(ParkTicket {
            generation: generation(prev),
            requested_at,
            issuer: self.id,
        })
    }

    /// Step 2 of `park()`: wait for the `parked` completion of this request.
    /// With a deadline, a timeout withdraws the request (no half-parked
    /// worker is left).
    pub fn wait_parked(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
    ) -> Result<(), ParkError> {
        self.wait_parked_spin(ticket, deadline, Spin::Busy, OnTimeout::Withdraw)
    }

    fn wait_parked_spin(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
        spin: Spin,
        on_timeout: OnTimeout,
    ) -> Result<(), ParkError> {
        self.check_issuer(ticket)?;
        let done = wait_until(&self.controllers, deadline, spin, || {
            let s = self.load();
            if generation(s) != ticket.generation {
                Some(Err(withdrawn_reason(s)))
            } else if s & COMPLETE != 0 {
                Some(Ok(()))
            } else {
                None
            }
        });
        match done {
            Some(result) => result,
            None => Err(self.after_timeout(ticket, on_timeout)),
        }
    }

    /// Step 3 of `park()`: wait until the worker is inactive — the marker
    /// SLEEPING is up for this generation *and* `probe` agrees (on Linux, the
    /// kernel reports the thread sleeping). P4.
    ///
    /// The worker raises the marker a few instructions after completing
    /// `parked` and notifies the controllers; this waits for that, then
    /// polls `probe` with `yield_now` and short sleeps, as
    /// `wait_task_inactive` does.
    pub fn wait_inactive(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
        probe: &mut dyn FnMut() -> bool,
    ) -> Result<(), ParkError> {
        self.wait_inactive_spin(
            ticket,
            deadline,
            &mut marker_only(probe),
            Spin::Busy,
            OnTimeout::Withdraw,
        )
        .map(drop)
    }

    fn wait_inactive_spin(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
        probe: &mut dyn FnMut() -> Option<InactiveEvidence>,
        spin: Spin,
        on_timeout: OnTimeout,
    ) -> Result<InactiveEvidence, ParkError> {
        self.check_issuer(ticket)?;
        loop {
            let marker = wait_until(&self.controllers, deadline, spin, || {
                let s = self.load();
                if generation(s) != ticket.generation {
                    Some(Err(withdrawn_reason(s)))
                } else if s & SLEEPING != 0 {
                    Some(Ok(()))
                } else {
                    None
                }
            });
            match marker {
                None => return Err(self.after_timeout(ticket, on_timeout)),
                Some(Err(e)) => return Err(e),
                Some(Ok(())) => {}
            }
            let mut spins = 0u32;
            loop {
                // P4: the kernel's word is taken only between two reads of
                // the marker for our generation: it was read while the worker
                // was inside parkme's blocking call. A probe that cannot ask
                // the kernel answers `Marker`: the marker alone decides.
                // PARK-WAIT-WINDOW: the kernel's word counts only between
                // two reads of one odd value of the wait count too, so it
                // was read inside the blocking call itself, not on a lock
                // on the way to it (`Marker` claims only the commitment).
                let window = self.park_waits.load(SeqCst);
                if let Some(evidence) = probe() {
                    let again = self.load();
                    let in_window = evidence != InactiveEvidence::Kernel
                        || (window % 2 == 1 && self.park_waits.load(SeqCst) == window);
                    if again & SLEEPING != 0 && generation(again) == ticket.generation && in_window
                    {
                        return Ok(evidence);
                    }
                }
                let s = self.load();
                if generation(s) != ticket.generation {
                    return Err(withdrawn_reason(s));
                }
                if s & SLEEPING == 0 {
                    break; // a spurious wake-up: wait for the marker again
                }
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err(self.after_timeout(ticket, on_timeout));
                }
                backoff(&mut spins);
            }
        }
    }

    /// Unparks: re-arms `parked`, clears SHOULD_PARK, bumps the generation,
    /// and wakes the worker only if it is PARKED (P5). Returns whether a park
    /// request was withdrawn; an unpark of a running worker is a no-op
    /// (`Ok(false)`).
    pub fn unpark(&self) -> Result<bool, crate::UnparkError> {
        let mut cur = self.load();
        loop {
            if cur & (SHOULD_STOP | EXITED) != 0 {
                return Err(crate::UnparkError::Stopped);
            }
            if cur & SHOULD_PARK == 0 {
                return Ok(false);
            }
            if self.try_withdraw(cur, 0).is_ok() {
                return Ok(true);
            }
            cur = self.load();
        }
    }

    /// Requests a stop: sets SHOULD_STOP and, as `kthread_stop` does, unparks
    /// (clears SHOULD_PARK, wakes a PARKED worker) and wakes an idle one.
    /// Works from any state (P6). Returns false if the body had already
    /// returned.
    pub fn request_stop(&self) -> bool {
        let mut cur = self.load();
        loop {
            if cur & EXITED != 0 {
                return false;
            }
            match self.try_withdraw(cur, SHOULD_STOP) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        // P6: the worker may be in its idle wait instead; it re-checks
        // SHOULD_STOP after registering.
        self.idle_wake.notify(1);
        true
    }

    /// Waits until the body has returned (EXITED), or the deadline passes
    /// (returns false).
    pub fn wait_exited(&self, deadline: Option<Instant>) -> bool {
        wait_until(&self.controllers, deadline, Spin::Yield, || {
            (self.load() & EXITED != 0).then_some(())
        })
        .is_some()
    }

    /// Marks the body as returned: clears every live flag, sets EXITED and
    /// releases every `park()` caller (they get [`ParkError::Stopped`]).
    /// Called by the worker thread as its last protocol step. On the
    /// protocol of a [`Worker`](crate::Worker) a call from any other
    /// thread is ignored (EXIT-BY-RUNNER: it would hide a live body from
    /// every stop request, and the word would show an exited worker that
    /// still runs; a red team's `stop_timeout` then joined for ever).
    pub fn mark_exited(&self) {
        if self.may_exit() {
            self.exit(0);
        }
    }

    /// [`mark_exited`](Protocol::mark_exited) for a body that panicked:
    /// also sets FAILED, so the state reads [`WorkerState::Failed`].
    /// [`Worker`](crate::Worker) calls it when its body's panic is caught.
    /// Ignored like `mark_exited` from a thread that is not the worker's.
    pub fn mark_failed(&self) {
        if self.may_exit() {
            self.exit(FAILED);
        }
    }

    /// Sets EXITED (and `extra`: FAILED or nothing) in one CAS, clearing
    /// every live flag (P6).
    fn exit(&self, extra: usize) {
        let mut cur = self.load();
        loop {
            let mut next =
                (cur & !(SHOULD_PARK | PARKED | COMPLETE | SLEEPING | IDLE)) | EXITED | extra;
            if cur & SHOULD_PARK != 0 {
                next = next.wrapping_add(GEN_ONE);
            }
            // SeqCst: pairs with the loads in `wait_parked`'s re-check.
            match self.state.compare_exchange_weak(cur, next, SeqCst, SeqCst) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        debug_check(self.load());
        self.controllers.notify(usize::MAX);
    }

    /// One CAS attempt that withdraws a pending park request (if any) and
    /// adds `extra` (SHOULD_STOP for stop). On success wakes a PARKED worker
    /// (P5) and every waiting `park()` caller.
    fn try_withdraw(&self, cur: usize, extra: usize) -> Result<usize, usize> {
        let mut next = cur | extra;
        #[cfg(not(loom))]
        if cur & SHOULD_PARK != 0 {
            self.unparked_at
                .store(stamp_now(), std::sync::atomic::Ordering::Relaxed);
        }
        if cur & SHOULD_PARK != 0 {
            // Re-arm the completion and start a new generation in the same
            // step as clearing the request, so a park() racing this one can
            // never see a COMPLETE that belonged to the old request.
            next = (next & !(SHOULD_PARK | COMPLETE)).wrapping_add(GEN_ONE);
        }
        // SeqCst: pairs with the worker's `fetch_or(PARKED)` and
        // `fetch_or(SLEEPING)` in parkme — one total order decides whether
        // the worker sees !SHOULD_PARK or we see PARKED (P5).
        let prev = self.state.compare_exchange(cur, next, SeqCst, SeqCst)?;
        debug_check(next);
        if prev & SHOULD_PARK != 0 {
            if prev & PARKED != 0 {
                // P5: wake only a PARKED thread (`wake_up_state(k, TASK_PARKED)`).
                self.park_wake.notify(1);
            }
            // Waiting park() callers of the old generation learn they were
            // superseded (or that a stop came).
            self.controllers.notify(usize::MAX);
        }
        Ok(prev)
    }

    /// After a deadline: withdraw the request (or, for a caller that does
    /// not own it, leave it pending) and say why the wait ended.
    fn after_timeout(&self, ticket: ParkTicket, on_timeout: OnTimeout) -> ParkError {
        match on_timeout {
            OnTimeout::Withdraw => self.withdraw_after_timeout(ticket),
            OnTimeout::Keep => {
                let s = self.load();
                if generation(s) != ticket.generation {
                    withdrawn_reason(s)
                } else {
                    ParkError::Timeout
                }
            }
        }
    }

    /// After a deadline: withdraw our own request if it is still the current
    /// one, so the worker is not left half-parked, and report why we stopped.
    #[cold]
    pub(crate) fn withdraw_after_timeout(&self, ticket: ParkTicket) -> ParkError {
        let mut cur = self.load();
        loop {
            if generation(cur) != ticket.generation || cur & SHOULD_PARK == 0 {
                // Someone else already withdrew or finished it.
                return withdrawn_reason(cur);
            }
            match self.try_withdraw(cur, 0) {
                Ok(_) => return ParkError::Timeout,
                Err(actual) => cur = actual,
            }
        }
    }

    // ---- worker side, used by the worker's context (`context.rs`) ----

    #[inline]
    pub(crate) fn load(&self) -> usize {
        // SeqCst: every re-check in the protocol is a load that must take
        // part in the single total order with the RMWs above.
        let s = self.state.load(SeqCst);
        debug_check(s);
        s
    }

    #[inline]
    pub(crate) fn fetch_or(&self, bits: usize) -> usize {
        self.state.fetch_or(bits, SeqCst)
    }

    #[inline]
    pub(crate) fn fetch_and(&self, bits: usize) -> usize {
        self.state.fetch_and(bits, SeqCst)
    }

    pub(crate) fn park_wake(&self) -> &Event {
        &self.park_wake
    }

    pub(crate) fn idle_wake(&self) -> &Event {
        &self.idle_wake
    }

    /// Time since the last withdrawing unpark/stop (None under loom).
    pub(crate) fn since_unpark(&self) -> Option<Duration> {
        #[cfg(not(loom))]
        {
            let at = self.unparked_at.load(std::sync::atomic::Ordering::Relaxed);
            Some(Duration::from_nanos(stamp_now().saturating_sub(at)))
        }
        #[cfg(loom)]
        None
    }

    /// Tells `park()` callers waiting in `wait_inactive` that the marker is up.
    pub(crate) fn marker_raised(&self) {
        self.controllers.notify(usize::MAX);
    }

    /// PARK-WAIT-WINDOW: the worker enters (then leaves) its park wait's
    /// blocking call. SeqCst: the controller's loads of the count and of
    /// the state word, around its read of the kernel's state, are ordered
    /// with these RMWs and with the marker's.
    pub(crate) fn park_wait_window(&self) {
        self.park_waits.fetch_add(1, SeqCst);
    }

    /// PARK-WAIT-WINDOW: closes the window if an unwind left it open.
    pub(crate) fn close_park_wait_window(&self) {
        if self.park_waits.load(SeqCst) % 2 == 1 {
            self.park_waits.fetch_add(1, SeqCst);
        }
    }

    /// `complete_all(&parked)` for generation `gen`: sets COMPLETE only if the
    /// request of that generation is still pending, and releases every
    /// `park()` caller (P3, P8). True if this call completed it: false if it
    /// was withdrawn meanwhile or completed by an earlier turn.
    pub(crate) fn complete_parked(&self, gen: usize) -> bool {
        let mut cur = self.load();
        loop {
            if cur & SHOULD_PARK == 0 || generation(cur) != gen || cur & COMPLETE != 0 {
                // Withdrawn meanwhile (parkme's re-check will see it), or
                // already completed by an earlier turn of the loop.
                return false;
            }
            debug_assert!(
                cur & PARKED != 0,
                "complete outside parkme: {}",
                Decoded(cur)
            );
            // SeqCst: pairs with the loads in `wait_parked`.
            match self
                .state
                .compare_exchange_weak(cur, cur | COMPLETE, SeqCst, SeqCst)
            {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        #[cfg(loom)]
        self.completions.fetch_add(1, SeqCst);
        self.controllers.notify(usize::MAX);
        true
    }
}

impl std::fmt::Debug for Protocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Protocol")
            .field("state", &format_args!("{}", Decoded(self.load())))
            .finish()
    }
}

/// A caller's yes/no probe as an evidence probe: its "yes" is reported as
/// [`InactiveEvidence::Marker`] (the crate cannot vouch for what it checked).
fn marker_only(probe: &mut dyn FnMut() -> bool) -> impl FnMut() -> Option<InactiveEvidence> + '_ {
    move || probe().then_some(InactiveEvidence::Marker)
}

/// What a timed-out wait does with the request it waited on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OnTimeout {
    /// Withdraw it (the caller owns it: `park_timeout`).
    Withdraw,
    /// Leave it pending: another caller owns it and decides
    /// (`Worker::wait_park_shared`), or the caller withdraws it itself
    /// (`Worker`'s own waits, under its control lock); the loom build has
    /// no `Worker`.
    #[cfg_attr(loom, allow(dead_code))]
    Keep,
}

/// Why a request of an older generation ended.
fn withdrawn_reason(s: usize) -> ParkError {
    if s & (state::SHOULD_STOP | EXITED) != 0 {
        ParkError::Stopped
    } else {
        ParkError::Superseded
    }
}

/// Spin politely, then sleep briefly: the controller's side of
/// `wait_task_inactive`.
fn backoff(spins: &mut u32) {
    *spins += 1;
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    {
        if *spins < 64 {
            // Yield, not spin: this thread may share the worker's CPU, and
            // the worker needs it for the last microseconds into its sleep.
            std::thread::yield_now();
        } else {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
}
