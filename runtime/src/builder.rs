//! `Builder`: configure and start a runtime.

use std::sync::Arc;
use std::time::Duration;

/// The default long-poll threshold ([`Builder::long_poll_threshold`]).
pub const DEFAULT_LONG_POLL_THRESHOLD: Duration = Duration::from_millis(10);

/// Configures a [`Runtime`](crate::Runtime).
///
/// ```
/// let rt = unplug::Runtime::builder()
///     .workers(2)
///     .thread_name("my-app")
///     .on_thread_start(|| println!("worker up"))
///     .build()
///     .unwrap();
/// assert_eq!(rt.block_on(async { 1 }), 1);
/// ```
#[derive(Clone)]
pub struct Builder {
    pub(crate) workers: Option<usize>,
    pub(crate) pin: bool,
    pub(crate) cpus: Option<Vec<usize>>,
    pub(crate) thread_name: String,
    pub(crate) procfs_task_dir: Option<std::path::PathBuf>,
    pub(crate) on_start: Option<Arc<dyn Fn() + Send + Sync>>,
    pub(crate) on_stop: Option<Arc<dyn Fn() + Send + Sync>>,
    pub(crate) follow: bool,
    pub(crate) follow_interval: Duration,
    pub(crate) metrics: Option<bool>,
    pub(crate) metrics_prefix: String,
    pub(crate) metrics_poll_time: bool,
    pub(crate) long_poll_threshold: Duration,
}

impl Default for Builder {
    fn default() -> Self {
        Self::new()
    }
}

impl Builder {
    /// Defaults: one worker per CPU the process may use, not pinned,
    /// threads named `unplug-worker-N`.
    pub fn new() -> Self {
        Builder {
            workers: None,
            pin: false,
            cpus: None,
            thread_name: "unplug-worker".to_owned(),
            procfs_task_dir: None,
            on_start: None,
            on_stop: None,
            follow: false,
            follow_interval: Duration::from_millis(100),
            metrics: None,
            metrics_prefix: crate::metrics::DEFAULT_PREFIX.to_owned(),
            metrics_poll_time: false,
            long_poll_threshold: DEFAULT_LONG_POLL_THRESHOLD,
        }
    }

    /// The number of worker threads (default: the number of CPUs in use).
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Pin each worker to its home CPU (default off). Worker `i`'s home CPU
    /// is `cpus[i % cpus.len()]`.
    pub fn pin_workers(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// The CPUs the runtime uses (default: every CPU the process may use).
    pub fn cpus(mut self, cpus: impl IntoIterator<Item = usize>) -> Self {
        self.cpus = Some(cpus.into_iter().collect());
        self
    }

    /// Internal test hook: where the workers' park reads
    /// `<tid>/stat` (default `/proc/self/task`). Tests point it at a missing
    /// directory to exercise the marker-only fallback of a system without
    /// readable procfs. Not part of the API.
    #[doc(hidden)]
    pub fn procfs_task_dir_for_tests(mut self, dir: impl Into<std::path::PathBuf>) -> Self {
        self.procfs_task_dir = Some(dir.into());
        self
    }

    /// The worker threads' name prefix (`<name>-<id>`; tokio's blocking
    /// pool threads, started by `spawn_blocking`, are `<name>-io`). A name with a NUL byte makes `build()` fail with
    /// [`BuildError::InvalidThreadName`](crate::BuildError::InvalidThreadName).
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Follow the CPUs the process may use (opt-in): a watcher thread reads
    /// the main thread's affinity mask, the cgroup cpuset, the online CPUs
    /// and the cgroup CPU quota every `follow_interval`, and unplugs or
    /// plugs workers to match once a change has held for three readings
    /// in a row.
    /// With [`cpus`](Self::cpus) given, it keeps to those CPUs; unpinned
    /// workers get the usable CPUs as their mask at each change. With
    /// [`workers`](Self::workers) given (or after a `set_workers`), it keeps
    /// that many running: it moves workers off CPUs that go and back, and
    /// starts none beyond the count on a CPU that comes back (it moves one
    /// there from a CPU running several); with the default count (one per
    /// CPU) it runs a worker on every CPU it follows. A cgroup CPU quota
    /// caps how many CPUs run a worker (`ceil(quota)`), whatever the count,
    /// and leaves which ones to the pool. A mask that changes back within
    /// three readings is never followed; one flapping faster than the
    /// readings may still be followed now and then.
    pub fn follow_cpus(mut self, follow: bool) -> Self {
        self.follow = follow;
        self
    }

    /// How often the follower reads the allowed CPUs (default 100 ms).
    pub fn follow_interval(mut self, interval: Duration) -> Self {
        self.follow_interval = interval.max(Duration::from_millis(1));
        self
    }

    /// Record metrics through the `metrics` facade (default: on if
    /// [`metrics::serve_prometheus`](crate::metrics::serve_prometheus) was
    /// called before `build`; say `true` to use a recorder of your own).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = Some(on);
        self
    }

    /// The metric name prefix (default `unplug`: `unplug_parks_total`, ...).
    ///
    /// Runtimes of one process with the same prefix share its series: the
    /// counters and the `workers` gauge add up over them (a runtime that
    /// ended takes its workers back out), while the per-worker series
    /// (`worker_state`, `queue_depth{queue="local"}`,
    /// `long_poll_running_seconds`) are keyed by worker index and shared by
    /// the runtimes' workers of that index: they are set, not summed, so
    /// each reads what the runtime that published last wrote (worker 1
    /// parked in one runtime and running in the other reads either). Give
    /// each runtime a prefix of its own to tell them apart.
    ///
    /// The prefix must be the start of a Prometheus metric name (letters,
    /// digits, `_` and `:`, not starting with a digit): `build` refuses any
    /// other with [`BuildError::InvalidMetricsPrefix`](crate::BuildError::InvalidMetricsPrefix).
    ///
    /// ```
    /// let rt = unplug::Runtime::builder()
    ///     .metrics_prefix("ingest")
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metrics_prefix = prefix.into();
        self
    }

    /// Time every task poll for `poll_duration_seconds` and every schedule
    /// for `schedule_latency_seconds`, instead of one in 1024 of each (two
    /// clock reads and a histogram sample per poll and per schedule; off by
    /// default: sampled, the watching costs a few percent at most on the
    /// cheapest polls). On, a load of polls that do almost nothing (a loop
    /// of `yield_now`) runs about 4x slower; the samples are drained into
    /// the buckets every 100 ms, so the memory they hold stays bounded.
    pub fn metrics_poll_time(mut self, on: bool) -> Self {
        self.metrics_poll_time = on;
        self
    }

    /// A poll running longer than `threshold` is a *long poll*: it blocks
    /// its worker (and any park or unplug of it). Each is counted once
    /// (`long_polls_total`), logged once at `warn` through the `log` facade
    /// with the task's id and spawn location, shown while it lasts
    /// (`long_poll_running_seconds`), and named as the culprit of a park it
    /// slows ([`ParkReport::slow_polls`](crate::ParkReport::slow_polls),
    /// [`ControlError::Timeout`](crate::ControlError::Timeout)). Default
    /// [`DEFAULT_LONG_POLL_THRESHOLD`] (10 ms). `Duration::ZERO` turns the
    /// detection off (no monitor thread), as does any threshold of a day
    /// or more; a park still names the poll it waited on if it timed out.
    ///
    /// The monitor thread looks at the workers every `threshold / 4`, at
    /// least every 2.5 ms, while any of them runs; while the runtime has
    /// nothing to do it sleeps (waking once a second at most), and the
    /// first worker to run again wakes it. It also keeps I/O and timers served while a
    /// worker is held in a long poll (it has a busy worker turn the
    /// reactor, or another idle worker wait inside it: ONE-WAITER in
    /// `runtime/IO.md`); with it off, every idle worker waits inside the
    /// reactor instead.
    ///
    /// ```
    /// use std::time::Duration;
    /// let rt = unplug::Runtime::builder()
    ///     .workers(2)
    ///     .long_poll_threshold(Duration::from_millis(50))
    ///     .build()
    ///     .unwrap();
    /// # drop(rt);
    /// ```
    pub fn long_poll_threshold(mut self, threshold: Duration) -> Self {
        self.long_poll_threshold = threshold;
        self
    }

    /// Runs on each worker thread when it starts.
    pub fn on_thread_start(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_start = Some(Arc::new(f));
        self
    }

    /// Runs on each worker thread when it stops.
    pub fn on_thread_stop(mut self, f: impl Fn() + Send + Sync + 'static) -> Self {
        self.on_stop = Some(Arc::new(f));
        self
    }
}

impl std::fmt::Debug for Builder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("pin", &self.pin)
            .field("cpus", &self.cpus)
            .field("thread_name", &self.thread_name)
            .finish_non_exhaustive()
    }
}
