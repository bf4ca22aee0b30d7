//! `Builder`: configure and start a runtime.

use crate::control::{Config, ControlEvents, Controller};
use crate::current;
use crate::error::BuildError;
use crate::handle::{Handle, Inner};
use crate::metrics::RuntimeMetrics;
use crate::runtime::Runtime;
use crate::scheduler::{Enter, Hooks, Scheduler, WorkerEvents};
use std::sync::{Arc, Weak};
use std::time::Duration;

/// Configures a [`Runtime`].
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
    workers: Option<usize>,
    pin: bool,
    cpus: Option<Vec<usize>>,
    thread_name: String,
    on_start: Option<Arc<dyn Fn() + Send + Sync>>,
    on_stop: Option<Arc<dyn Fn() + Send + Sync>>,
    follow: bool,
    follow_interval: Duration,
    metrics: Option<bool>,
    metrics_prefix: String,
    metrics_poll_time: bool,
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
            on_start: None,
            on_stop: None,
            follow: false,
            follow_interval: Duration::from_millis(100),
            metrics: None,
            metrics_prefix: crate::metrics::DEFAULT_PREFIX.to_owned(),
            metrics_poll_time: false,
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

    /// The worker threads' name prefix.
    pub fn thread_name(mut self, name: impl Into<String>) -> Self {
        self.thread_name = name.into();
        self
    }

    /// Follow the CPUs the process may use (opt-in): a watcher thread reads
    /// the main thread's affinity mask, the cgroup cpuset, the online CPUs
    /// and the cgroup CPU quota every `follow_interval`, and unplugs or
    /// plugs workers to match once a change has held for three readings
    /// in a row (hysteresis: a flapping mask does not thrash the pool).
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
    pub fn metrics_prefix(mut self, prefix: impl Into<String>) -> Self {
        self.metrics_prefix = prefix.into();
        self
    }

    /// Also record every task poll's duration (`task_poll_seconds`); costs a
    /// clock read per poll, off by default.
    pub fn metrics_poll_time(mut self, on: bool) -> Self {
        self.metrics_poll_time = on;
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

    /// Starts the tokio reactor and the workers.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let allowed = unplug_worker::affinity::allowed_cpus().map_err(BuildError::Reactor)?;
        let cpus = match self.cpus {
            Some(cpus) if cpus.is_empty() => return Err(BuildError::EmptyCpuList),
            Some(cpus) => {
                if let Some(&cpu) = cpus.iter().find(|c| !allowed.contains(c)) {
                    return Err(BuildError::CpuNotAllowed { cpu, allowed });
                }
                cpus
            }
            None => allowed,
        };
        let workers = self.workers.unwrap_or(cpus.len());
        if workers == 0 {
            return Err(BuildError::ZeroWorkers);
        }
        let tokio = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name(format!("{}-io", self.thread_name))
            .enable_all()
            .build()
            .map_err(BuildError::Reactor)?;
        let config = Config {
            pin: self.pin,
            thread_name: self.thread_name,
        };
        let metrics = self
            .metrics
            .unwrap_or_else(crate::metrics::installed)
            .then(|| {
                Arc::new(RuntimeMetrics::new(
                    &self.metrics_prefix,
                    self.metrics_poll_time,
                ))
            });
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let hooks = Hooks {
                on_start: self.on_start,
                on_stop: self.on_stop,
                enter: Some(enter_runtime(weak.clone())),
                time_polls: metrics.as_ref().is_some_and(|m| m.times_polls()),
                events: metrics.clone().map(|m| m as Arc<dyn WorkerEvents>),
            };
            let scheduler = Arc::new(Scheduler::new(hooks));
            let control = Arc::new(Controller::new(
                scheduler.clone(),
                config,
                cpus,
                metrics.clone().map(|m| m as Arc<dyn ControlEvents>),
            ));
            Inner {
                scheduler,
                control,
                tokio: tokio.handle().clone(),
                metrics: metrics.clone(),
            }
        });
        // On failure `runtime` drops and shuts down what was started.
        let mut runtime = Runtime::from_parts(
            Handle {
                inner: inner.clone(),
            },
            tokio,
        );
        inner
            .control
            .start_initial(workers)
            .map_err(BuildError::Worker)?;
        if let Some(metrics) = metrics {
            crate::metrics::start_publisher(metrics, &inner.control);
        }
        if self.follow {
            runtime.start_follower(self.follow_interval);
        }
        Ok(runtime)
    }
}

/// Each worker body runs inside the runtime: tokio's reactor entered (its
/// I/O, timers and blocking pool usable from every task) and this runtime
/// current (`unplug::spawn`, `Handle::current`).
fn enter_runtime(runtime: Weak<Inner>) -> Arc<Enter> {
    Arc::new(move |body: &mut dyn FnMut()| match runtime.upgrade() {
        Some(inner) => {
            let _tokio = inner.tokio.enter();
            let _current = current::enter(Handle {
                inner: inner.clone(),
            });
            body();
        }
        None => body(),
    })
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
