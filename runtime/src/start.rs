//! Starting a runtime: [`Builder::build`] wires the layers together.

use crate::builder::Builder;
use crate::control::{Config, ControlError, ControlEvents, Controller, MAX_WORKERS};
use crate::current;
use crate::error::BuildError;
use crate::handle::Handle;
use crate::inner::Inner;
use crate::metrics::RuntimeMetrics;
use crate::reactor::TokioReactor;
use crate::runtime::Runtime;
use crate::scheduler::{Enter, Hooks, Reactor, Scheduler, WorkerEvents};
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

impl Builder {
    /// Starts the tokio reactor and the workers.
    pub fn build(self) -> Result<Runtime, BuildError> {
        // Read fresh (not the 50 ms cache): a CPU given back just now is
        // usable, and the default worker count is the set as it is now.
        let allowed = unplug_worker::affinity::allowed_cpus_now().map_err(BuildError::Reactor)?;
        let cpus_given = self.cpus.is_some();
        let workers_given = self.workers;
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
        if workers > MAX_WORKERS {
            return Err(BuildError::TooManyWorkers {
                requested: workers,
                max: MAX_WORKERS,
            });
        }
        if self.thread_name.contains('\0') {
            return Err(BuildError::InvalidThreadName(self.thread_name));
        }
        if !crate::metrics::is_metric_name(&self.metrics_prefix) {
            return Err(BuildError::InvalidMetricsPrefix(self.metrics_prefix));
        }
        // BLOCKING-CONTEXT: the threads of the reactor's blocking pool
        // (`spawn_blocking`) have this runtime current, as tokio's is, held
        // weakly (those threads outlive the runtime for tokio's keep-alive,
        // and a closure running at the drop runs on detached). The runtime
        // is made after its reactor: the pool's hook finds it here.
        let pool_runtime = Arc::new(OnceLock::<Weak<Inner>>::new());
        let reactor = Arc::new(
            TokioReactor::new(
                format!("{}-io", self.thread_name),
                {
                    let pool_runtime = pool_runtime.clone();
                    move || current::enter_blocking_pool(pool_runtime.get().cloned())
                },
                current::leave_blocking_pool,
            )
            .map_err(BuildError::Reactor)?,
        );
        let tokio = reactor.handle().clone();
        let weak_reactor = Arc::downgrade(&reactor);
        let config = Config {
            pin: self.pin,
            thread_name: self.thread_name,
            procfs_task_dir: self.procfs_task_dir,
            cpus_given,
            workers_given,
        };
        let metrics = self
            .metrics
            .unwrap_or_else(crate::metrics::installed)
            .then(|| Arc::new(RuntimeMetrics::new(&self.metrics_prefix)));
        let inner = Arc::new_cyclic(|weak: &Weak<Inner>| {
            let _ = pool_runtime.set(weak.clone());
            let hooks = Hooks {
                on_start: self.on_start,
                on_stop: self.on_stop,
                enter: Some(enter_runtime(weak.clone())),
                poll_sample_mask: if self.metrics_poll_time { 0 } else { 1023 },
                schedule_sample_mask: if self.metrics_poll_time { 0 } else { 1023 },
                long_poll_threshold: long_poll_threshold(self.long_poll_threshold),
                events: metrics.clone().map(|m| m as Arc<dyn WorkerEvents>),
                reactor: Some(weak_reactor as Weak<dyn Reactor>),
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
                tokio,
                metrics: metrics.clone(),
            }
        });
        // On failure `runtime` drops and shuts down what was started.
        let mut runtime = Runtime::from_parts(
            Handle {
                inner: inner.clone(),
            },
            reactor,
        );
        inner.control.start_initial(workers).map_err(|e| match e {
            ControlError::Spawn(e) => BuildError::Worker(e),
            ControlError::StartHookPanicked { worker, message } => {
                BuildError::StartHookPanicked { worker, message }
            }
            other => BuildError::Worker(unplug_worker::SpawnError::Thread(std::io::Error::other(
                other.to_string(),
            ))),
        })?;
        if let Some(metrics) = metrics {
            crate::metrics::start_publisher(metrics, &inner.control);
        }
        runtime.start_long_poll_monitor();
        if self.follow {
            runtime.start_follower(self.follow_interval);
        }
        Ok(runtime)
    }
}

/// The monitor's threshold: off for zero and for a day or more.
fn long_poll_threshold(threshold: Duration) -> Option<Duration> {
    (!threshold.is_zero() && threshold < Duration::from_secs(86_400)).then_some(threshold)
}

/// Each worker body runs inside the runtime: tokio's reactor entered (its
/// I/O, timers and blocking pool usable from every task) and this runtime
/// current (`unplug::spawn`, `Handle::current`).
fn enter_runtime(runtime: Weak<Inner>) -> Arc<Enter> {
    Arc::new(move |body: &mut dyn FnMut()| match runtime.upgrade() {
        Some(inner) => {
            let _tokio = inner.tokio.enter();
            let _current = current::enter(inner.clone());
            body();
        }
        None => body(),
    })
}
