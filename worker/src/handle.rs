//! A real OS thread running the park protocol: spawn (optionally pinned),
//! park, unpark (optionally re-pinned), stop.

use crate::affinity::{check_allowed, current_tid, pin_to, process_cpus_now, AFFINITY_SUPPORTED};
use crate::completion::Spin;
use crate::context::WorkerContext;
use crate::error::{ParkError, SpawnError, StopError, UnparkError};
use crate::loom::{AtomicUsize, Ordering::Relaxed};
use crate::notifier::Notifier;
use crate::platform::InactivityProbe;
use crate::protocol::{OnTimeout, ParkTicket, ParkTimings, Protocol};
use crate::state::WorkerState;
use std::io;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::{self, JoinHandle, ThreadId};
use std::time::{Duration, Instant};

/// `cpu` value meaning "not pinned".
const NO_CPU: usize = usize::MAX;

/// "No such process": the thread named by a tid has exited.
const ESRCH: i32 = 3;

/// Configures and spawns a [`Worker`].
///
/// ```
/// use unplug_worker::{affinity, Worker};
///
/// // Pin to CPU 0 where pinning exists (Linux); unpinned in the portable
/// // build, where asking for a CPU is refused with `SpawnError::Unsupported`.
/// let cpu = affinity::AFFINITY_SUPPORTED.then_some(0);
/// let worker = Worker::builder()
///     .name("pinned-0")
///     .cpu_opt(cpu)
///     .spawn(|ctx| {
///         loop {
///             while ctx.keep_running() {
///                 ctx.idle_wait(|| false);
///             }
///             if ctx.should_stop() {
///                 break;
///             }
///             ctx.parkme();
///         }
///     })
///     .unwrap();
/// assert_eq!(worker.cpu(), cpu);
/// worker.stop().unwrap();
/// ```
#[derive(Debug, Default, Clone)]
pub struct Builder {
    name: Option<String>,
    cpu: Option<usize>,
    stack_size: Option<usize>,
    protocol: Option<Arc<Protocol>>,
    procfs_task_dir: Option<PathBuf>,
}

impl Builder {
    /// The thread's name (default `unplug-worker`). A name with a NUL byte
    /// is refused by [`spawn`](Builder::spawn) with
    /// [`SpawnError::InvalidName`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }

    /// Pin the thread to `cpu` before its body runs. Without pinning
    /// support ([`AFFINITY_SUPPORTED`](crate::affinity::AFFINITY_SUPPORTED)
    /// false) the spawn is refused with [`SpawnError::Unsupported`].
    pub fn cpu(mut self, cpu: usize) -> Self {
        self.cpu = Some(cpu);
        self
    }

    /// Pin to `cpu` if `Some`, leave unpinned if `None` (see
    /// [`spawn`](Builder::spawn) for what unpinned means).
    pub fn cpu_opt(mut self, cpu: Option<usize>) -> Self {
        self.cpu = cpu;
        self
    }

    /// Run the worker on this protocol instead of a new one, so that a
    /// [`Notifier`] for it can be handed out before the thread starts (a
    /// pool that must be able to wake the worker from its first idle wait).
    /// The protocol must be fresh: never used by another worker. One that
    /// is not (a worker was spawned on it, or its word has changed: a
    /// request, an exit) is refused by [`spawn`](Builder::spawn) with
    /// [`SpawnError::ProtocolInUse`]. A spawn that fails before the body
    /// runs (the thread cannot start or be pinned) leaves it fresh.
    pub fn protocol(mut self, protocol: Arc<Protocol>) -> Self {
        self.protocol = Some(protocol);
        self
    }

    /// Test hook: where the Linux inactivity probe looks for
    /// `<tid>/stat` (default `/proc/self/task`). Tests point it at a
    /// missing directory to exercise the marker-only fallback. Ignored by
    /// the portable build.
    #[doc(hidden)]
    pub fn procfs_task_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.procfs_task_dir = Some(dir.into());
        self
    }

    /// The thread's stack size in bytes.
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spawns the thread and returns once it runs (and, if asked, is pinned).
    ///
    /// The body receives the worker-side [`WorkerContext`]; its return value
    /// (or panic) is what [`Worker::stop`] returns. If the CPU is not one the
    /// process may use, or the kernel refuses the pin, no thread is left
    /// behind. If a CPU is asked for and this build cannot pin, the spawn is
    /// refused with [`SpawnError::Unsupported`] before any thread starts; so
    /// is a name with a NUL byte ([`SpawnError::InvalidName`]), and a
    /// protocol that is not fresh ([`SpawnError::ProtocolInUse`]).
    ///
    /// An unpinned worker may run on the process's CPUs, whatever the mask
    /// of the thread that spawns it: the CPUs it may use
    /// ([`allowed_cpus`](crate::affinity::allowed_cpus): cpuset, online)
    /// that are also in the main thread's mask (what `taskset` gave the
    /// process, as the runtime's CPU follower reads it). A new thread would
    /// otherwise inherit its spawner's mask, so a worker spawned from a
    /// pinned thread (a pool growing from one of its pinned workers) would
    /// be pinned there while [`Worker::cpu`] says `None`. The set is
    /// [`process_cpus_now`](crate::affinity::process_cpus_now). Best
    /// effort: if the allowed CPUs cannot be read or the kernel refuses
    /// them, the inherited mask stays. (Without pinning support nothing is
    /// changed.)
    pub fn spawn<F, T>(self, body: F) -> Result<Worker<T>, SpawnError>
    where
        F: FnOnce(&WorkerContext<'_>) -> T + Send + 'static,
        T: Send + 'static,
    {
        if self.name.as_deref().is_some_and(|n| n.contains('\0')) {
            return Err(SpawnError::InvalidName);
        }
        if let Some(cpu) = self.cpu {
            if !AFFINITY_SUPPORTED {
                return Err(SpawnError::Unsupported);
            }
            check_allowed(cpu).map_err(|allowed| SpawnError::CpuNotAllowed { cpu, allowed })?;
        }
        let protocol = self.protocol.unwrap_or_default();
        // P6: a used protocol would run two bodies on one word, or start
        // this one on an EXITED word that no stop request can reach.
        // Claimed after the checks above: a spawn they refuse leaves it fresh.
        if !protocol.claim_for_worker() {
            return Err(SpawnError::ProtocolInUse);
        }
        let name = self.name.unwrap_or_else(|| "unplug-worker".to_owned());
        let (started_tx, started_rx) = mpsc::sync_channel::<io::Result<i32>>(1);
        let mut builder = thread::Builder::new().name(name.clone());
        if let Some(bytes) = self.stack_size {
            builder = builder.stack_size(bytes);
        }
        let shared = protocol.clone();
        let cpu = self.cpu;
        let join = builder
            .spawn(move || {
                match cpu {
                    Some(cpu) => {
                        if let Err(e) = pin_to(0, &[cpu]) {
                            let _ = started_tx.send(Err(e));
                            return None;
                        }
                    }
                    // Unpinned is the process's CPUs, not the mask this
                    // thread inherited from its spawner (best effort).
                    None if AFFINITY_SUPPORTED => {
                        if let Ok(cpus) = process_cpus_now() {
                            let _ = pin_to(0, &cpus);
                        }
                    }
                    None => {}
                }
                shared.bind_runner();
                let _ = started_tx.send(Ok(current_tid()));
                let ctx = shared.context();
                let result = catch_unwind(AssertUnwindSafe(|| body(&ctx)));
                // P6: whatever the body did, no park() caller waits past here.
                // A panic is told apart: FAILED goes up with EXITED.
                match result {
                    Ok(_) => shared.mark_exited(),
                    Err(_) => shared.mark_failed(),
                }
                Some(result)
            })
            .map_err(|e| {
                // No body ran: the protocol is fresh again.
                protocol.release_claim();
                SpawnError::Thread(e)
            })?;
        let tid = match started_rx.recv() {
            Ok(Ok(tid)) => tid,
            Ok(Err(source)) => {
                let _ = join.join();
                protocol.release_claim();
                return Err(SpawnError::Affinity {
                    cpu: cpu.unwrap_or(NO_CPU),
                    source,
                });
            }
            Err(_) => {
                let _ = join.join();
                protocol.release_claim();
                return Err(SpawnError::Thread(io::Error::other(
                    "worker thread ended before it started",
                )));
            }
        };
        Ok(Worker {
            thread_id: join.thread().id(),
            protocol,
            tid,
            name,
            cpu: AtomicUsize::new(cpu.unwrap_or(NO_CPU)),
            join: Mutex::new(Some(join)),
            control: Mutex::new(()),
            procfs_task_dir: self.procfs_task_dir,
        })
    }
}

/// A parkable worker thread: the controller's handle.
///
/// Every method takes `&self`, so one handle can be shared (for instance in
/// an `Arc`) by several controller threads; concurrent `park()` callers are
/// all released together (P8).
///
/// Dropping the handle without [`stop`](Worker::stop) requests a stop and
/// detaches the thread.
pub struct Worker<T> {
    protocol: Arc<Protocol>,
    tid: i32,
    thread_id: ThreadId,
    name: String,
    cpu: AtomicUsize,
    join: Mutex<Option<JoinHandle<Option<thread::Result<T>>>>>,
    /// Serializes re-pinning with unparking, so a re-pin lands on the worker
    /// the unpark releases and never on one another controller released.
    control: Mutex<()>,
    /// Where the inactivity probe reads `<tid>/stat`; `None`: the default.
    procfs_task_dir: Option<PathBuf>,
}

impl Worker<()> {
    /// A builder with defaults: unpinned, named `unplug-worker`.
    pub fn builder() -> Builder {
        Builder::default()
    }
}

impl<T> Worker<T> {
    /// Parks the worker and blocks until it is parked *and* inactive (P4):
    /// `parked` has completed and, on Linux, the kernel reports the thread
    /// sleeping while its inactivity marker is up. From then until
    /// `unpark()` the worker runs none of its body.
    ///
    /// [`ParkTimings::inactive_by`] says which proof was used:
    /// [`InactiveEvidence::Kernel`](crate::InactiveEvidence::Kernel) on
    /// Linux; [`Marker`](crate::InactiveEvidence::Marker) (the marker
    /// alone: committed to the futex wait, not proven off the CPU) in the
    /// portable build and on Linux when `/proc/self/task/<tid>/stat` cannot
    /// be opened or read, which therefore never hangs a park.
    ///
    /// Returns the measured latencies. Errors: the worker is stopping or
    /// stopped, an `unpark()` withdrew the request first, or the call came
    /// from the worker's own thread (refused before anything is requested:
    /// nothing changes).
    pub fn park(&self) -> Result<ParkTimings, ParkError> {
        self.park_until(None)
    }

    /// [`park`](Worker::park) with a time limit. On timeout the request is
    /// withdrawn (as if unparked), so no half-parked worker is left, and
    /// [`ParkError::Timeout`] is returned. A timeout too long to represent
    /// as an `Instant` (`Duration::MAX`) means no deadline.
    pub fn park_timeout(&self, timeout: Duration) -> Result<ParkTimings, ParkError> {
        self.park_until(deadline_after(timeout))
    }

    fn park_until(&self, deadline: Option<Instant>) -> Result<ParkTimings, ParkError> {
        // Refuse before requesting: a request made here could never be
        // waited for, and the worker would park itself on its next
        // `keep_running()`.
        if thread::current().id() == self.thread_id {
            return Err(ParkError::FromWorkerThread);
        }
        let ticket = self.request_park()?;
        self.wait_park(ticket, deadline)
    }

    /// The first half of [`park`](Worker::park): set the request and wake
    /// the worker, without waiting. Allowed from the worker's own thread (the
    /// park then happens when its body next checks `keep_running`).
    pub fn request_park(&self) -> Result<ParkTicket, ParkError> {
        self.protocol.request_park()
    }

    /// The second half of [`park`](Worker::park): wait until the request is
    /// completed and the worker inactive (P4), or until `deadline` (then the
    /// request is withdrawn and [`ParkError::Timeout`] returned).
    pub fn wait_park(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
    ) -> Result<ParkTimings, ParkError> {
        self.wait_park_then(ticket, deadline, OnTimeout::Withdraw)
    }

    /// [`wait_park`](Worker::wait_park) for a caller that shares a request
    /// it does not own (P8: another controller requested the park, and
    /// decides about it): on timeout the request is left pending, not
    /// withdrawn, and [`ParkError::Timeout`] returned.
    pub fn wait_park_shared(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
    ) -> Result<ParkTimings, ParkError> {
        self.wait_park_then(ticket, deadline, OnTimeout::Keep)
    }

    fn wait_park_then(
        &self,
        ticket: ParkTicket,
        deadline: Option<Instant>,
        on_timeout: OnTimeout,
    ) -> Result<ParkTimings, ParkError> {
        if thread::current().id() == self.thread_id {
            return Err(ParkError::FromWorkerThread);
        }
        let mut probe = InactivityProbe::new(self.procfs_task_dir.as_deref(), self.tid);
        // UNPARK-ON-UNDONE: the wait itself keeps the request; a timed-out
        // owner withdraws it below, under the control lock, which
        // `unpark_on` holds from its read of the state to its unpark. So
        // no timeout releases the worker between a re-pin and its unpark
        // (it ran its body on the new CPU for a moment, then was put
        // back, with `Ok(false)` returned).
        let waited = self.protocol.wait_park_evidence(
            ticket,
            deadline,
            &mut || probe.poll(),
            Spin::Busy,
            OnTimeout::Keep,
        );
        match waited {
            Err(ParkError::Timeout) if on_timeout == OnTimeout::Withdraw => {
                let _serial = self.control();
                Err(self.protocol.withdraw_after_timeout(ticket))
            }
            other => other,
        }
    }

    /// Unparks the worker. `Ok(true)` if a park request was withdrawn,
    /// `Ok(false)` if the worker was running anyway (no-op).
    pub fn unpark(&self) -> Result<bool, UnparkError> {
        let _serial = self.control();
        self.protocol.unpark()
    }

    /// Unparks the worker after re-binding it to `cpu`, so that it runs there
    /// from its first instruction after the wake-up. If the worker has no
    /// park pending (it is running) nothing changes and `Ok(false)` is
    /// returned. A CPU the process may not use is refused with no change;
    /// so is any CPU in a build that cannot pin
    /// ([`UnparkError::Unsupported`], checked first).
    pub fn unpark_on(&self, cpu: usize) -> Result<bool, UnparkError> {
        if !AFFINITY_SUPPORTED {
            return Err(UnparkError::Unsupported);
        }
        let _serial = self.control();
        check_allowed(cpu).map_err(|allowed| UnparkError::CpuNotAllowed { cpu, allowed })?;
        match self.protocol.state() {
            WorkerState::Stopping | WorkerState::Stopped | WorkerState::Failed => {
                return Err(UnparkError::Stopped)
            }
            WorkerState::Running | WorkerState::Idle => return Ok(false),
            WorkerState::Parking | WorkerState::Parked => {}
        }
        // UNPARK-ON-UNDONE: a timed-out park withdraws its own request, and
        // a stop releases the worker, without this lock; either may land
        // between the state read above and the unpark below. Then the
        // unpark finds nothing to release and the pin is put back, so
        // `Ok(false)` (or `Stopped`) still means "nothing changed".
        let before = (self.cpus_of_thread(cpu)?, self.cpu.load(Relaxed));
        self.pin(cpu)?;
        self.cpu.store(cpu, Relaxed);
        let unparked = self.protocol.unpark();
        if !matches!(unparked, Ok(true)) {
            // The worker runs (released by the other call) or is going:
            // best effort, an exited thread has no mask to put back.
            let _ = pin_to(self.tid, &before.0);
            self.cpu.store(before.1, Relaxed);
        }
        unparked
    }

    /// The thread's affinity mask now (before a re-pin to `cpu`), with
    /// errors as [`pin`](Self::pin) reports them.
    fn cpus_of_thread(&self, cpu: usize) -> Result<Vec<usize>, UnparkError> {
        crate::affinity::cpus_of(self.tid).map_err(|source| self.affinity_error(cpu, source))
    }

    /// Pins the thread to `cpu`, with [`UnparkError::Stopped`] for a
    /// thread that has exited meanwhile.
    fn pin(&self, cpu: usize) -> Result<(), UnparkError> {
        pin_to(self.tid, &[cpu]).map_err(|source| self.affinity_error(cpu, source))
    }

    /// REPIN-EXITED: the thread may exit between a state check and the
    /// system call (a stop does not take the control lock); the kernel
    /// then answers ESRCH, which means the worker stopped, as documented.
    fn affinity_error(&self, cpu: usize, source: io::Error) -> UnparkError {
        if source.raw_os_error() == Some(ESRCH) || self.protocol.state().is_exited() {
            return UnparkError::Stopped;
        }
        UnparkError::Affinity { cpu, source }
    }

    /// Re-binds the worker to `cpu` in whatever state it is; a running
    /// worker migrates at the kernel's next opportunity. Prefer
    /// [`unpark_on`](Worker::unpark_on) for a parked worker. In a build that
    /// cannot pin, [`UnparkError::Unsupported`] with no change.
    pub fn repin(&self, cpu: usize) -> Result<(), UnparkError> {
        if !AFFINITY_SUPPORTED {
            return Err(UnparkError::Unsupported);
        }
        let _serial = self.control();
        check_allowed(cpu).map_err(|allowed| UnparkError::CpuNotAllowed { cpu, allowed })?;
        if self.protocol.state().is_exited() {
            return Err(UnparkError::Stopped);
        }
        self.pin(cpu)?;
        self.cpu.store(cpu, Relaxed);
        Ok(())
    }

    /// Stops the worker from any state (running, idle, parking, parked) and
    /// joins it (P6): returns the body's value or its panic. Only the first
    /// `stop()` gets the result; any other (a later one, or one racing the
    /// first) also waits until the body has returned, then returns
    /// [`StopError::AlreadyJoined`]: no `stop()` returns while the body may
    /// still run.
    pub fn stop(&self) -> Result<T, StopError> {
        if thread::current().id() == self.thread_id {
            return Err(StopError::FromWorkerThread);
        }
        self.request_stop();
        let Some(join) = lock(&self.join).take() else {
            // Another stop() holds the handle and is joining. Like it, return
            // only once the body has returned (EXITED is set right after).
            self.protocol.wait_exited(None);
            return Err(StopError::AlreadyJoined);
        };
        match join.join() {
            Ok(Some(Ok(value))) => Ok(value),
            Ok(Some(Err(payload))) | Err(payload) => Err(StopError::Panicked(payload)),
            // The start-up failure path never produces a `Worker`.
            Ok(None) => Err(StopError::AlreadyJoined),
        }
    }

    /// [`stop`](Worker::stop) with a time limit for the body to return. On
    /// timeout the stop stays requested and [`StopError::Timeout`] is
    /// returned; a later `stop()` can still join the thread. A timeout too
    /// long to represent as an `Instant` (`Duration::MAX`) means no deadline.
    pub fn stop_timeout(&self, timeout: Duration) -> Result<T, StopError> {
        if thread::current().id() == self.thread_id {
            return Err(StopError::FromWorkerThread);
        }
        self.request_stop();
        if !self.protocol.wait_exited(deadline_after(timeout)) {
            return Err(StopError::Timeout);
        }
        // EXITED is the body's last protocol step, and only its own
        // thread may set it (EXIT-BY-RUNNER): the join is immediate.
        self.stop()
    }

    /// What the worker is doing now.
    pub fn state(&self) -> WorkerState {
        self.protocol.state()
    }

    /// The CPU the worker is pinned to, if any.
    pub fn cpu(&self) -> Option<usize> {
        match self.cpu.load(Relaxed) {
            NO_CPU => None,
            cpu => Some(cpu),
        }
    }

    /// The thread's OS id (Linux `gettid`), as in `/proc/self/task/<tid>`.
    /// In the portable build, a process-unique id from a counter
    /// ([`affinity::current_tid`](crate::affinity::current_tid)).
    pub fn os_tid(&self) -> i32 {
        self.tid
    }

    /// The thread's Rust id.
    pub fn thread_id(&self) -> ThreadId {
        self.thread_id
    }

    /// The thread's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A handle that producers of work use to wake the worker's idle wait.
    pub fn notifier(&self) -> Notifier {
        Notifier::new(self.protocol.clone())
    }

    /// The protocol this worker runs.
    pub fn protocol(&self) -> &Arc<Protocol> {
        &self.protocol
    }

    fn control(&self) -> MutexGuard<'_, ()> {
        lock(&self.control)
    }

    /// Requests the stop under the control lock (UNPARK-ON-UNDONE: a stop
    /// releases a parked worker, so it must not land between `unpark_on`'s
    /// re-pin and its unpark).
    fn request_stop(&self) {
        let _serial = self.control();
        self.protocol.request_stop();
    }
}

impl<T> Drop for Worker<T> {
    fn drop(&mut self) {
        // Ask the body to return; the thread is detached, not joined, so a
        // drop never blocks (the control lock is held only for the
        // request, by calls that never wait under it).
        self.request_stop();
    }
}

impl<T> std::fmt::Debug for Worker<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Worker")
            .field("name", &self.name)
            .field("tid", &self.tid)
            .field("cpu", &self.cpu())
            .field("protocol", &self.protocol)
            .finish()
    }
}

/// The deadline `timeout` from now; `None` (no deadline) if that instant
/// cannot be represented, so `Duration::MAX` waits forever instead of
/// panicking on overflow.
fn deadline_after(timeout: Duration) -> Option<Instant> {
    Instant::now().checked_add(timeout)
}

/// Locks, ignoring poisoning: every critical section here leaves the data
/// consistent, so a panic elsewhere must not make the handle unusable.
fn lock<G>(mutex: &Mutex<G>) -> MutexGuard<'_, G> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
