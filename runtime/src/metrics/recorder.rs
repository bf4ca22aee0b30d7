//! The runtime's metric handles: registered once, recorded from the
//! worker and controller events, and published from the scheduler's
//! per-worker counters every [`PUBLISH_INTERVAL`](super::PUBLISH_INTERVAL).

use super::PUBLISH_INTERVAL;
use crate::control::{ControlEvents, Controller};
use crate::scheduler::{PollCulprit, PollObserver, WorkerEvents};
use metrics::{Counter, Gauge, Histogram, Key, Label, Level, Metadata};
use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;
use unplug_worker::{InactiveEvidence, ParkTimings, WorkerState};

use std::sync::atomic::Ordering::Relaxed;

fn meta() -> Metadata<'static> {
    Metadata::new(module_path!(), Level::INFO, Some(module_path!()))
}

/// Name builder with the configured prefix.
#[derive(Clone, Debug)]
pub(crate) struct Names {
    prefix: String,
}

impl Names {
    fn key(&self, name: &str, labels: Vec<Label>) -> Key {
        Key::from_parts(format!("{}_{name}", self.prefix), labels)
    }

    fn counter(&self, name: &str, labels: Vec<Label>) -> Counter {
        metrics::with_recorder(|r| r.register_counter(&self.key(name, labels), &meta()))
    }

    fn gauge(&self, name: &str, labels: Vec<Label>) -> Gauge {
        metrics::with_recorder(|r| r.register_gauge(&self.key(name, labels), &meta()))
    }

    fn histogram(&self, name: &str, labels: Vec<Label>) -> Histogram {
        metrics::with_recorder(|r| r.register_histogram(&self.key(name, labels), &meta()))
    }
}

/// The kinds of hotplug event counted.
pub(crate) const HOTPLUG_KINDS: [&str; 6] = [
    "unplug_cpu",
    "plug_cpu",
    "park_worker",
    "unpark_worker",
    "set_workers",
    "follow",
];

/// Runtime-wide handles, and each worker's.
pub(crate) struct RuntimeMetrics {
    names: Names,
    /// `schedule_latency_seconds` (sampled), shared by every worker.
    schedule_latency: Histogram,
    spawned: Counter,
    completed: Counter,
    hotplug: HashMap<&'static str, Counter>,
    /// `park_inactive_evidence_total`, by `InactiveEvidence::as_str`.
    evidence: HashMap<&'static str, Counter>,
    workers_by_state: Vec<(WorkerState, Gauge)>,
    global_depth: Gauge,
    /// Each worker's handles, by worker index.
    workers: Mutex<HashMap<usize, WorkerMetrics>>,
    /// (worker, cpu) whose `worker_state` series were last set, so a
    /// re-pinned worker's old series can be zeroed.
    last_cpu: Mutex<HashMap<usize, Option<usize>>>,
    /// Lets shutdown end the publisher's wait at once.
    publisher_stop: Mutex<bool>,
    publisher_wake: Condvar,
    /// Held while publishing; true once shutdown's last publish is done
    /// (FINAL-PUBLISH: the publisher thread, ending, must not overwrite it
    /// with what it read before).
    published_final: Mutex<bool>,
    /// What this runtime has added to the shared series so far
    /// (SHARED-SERIES).
    published: Mutex<Published>,
}

/// SHARED-SERIES: what one runtime has added to series that every runtime
/// with the same prefix shares. Each publish adds the change since the
/// last one, so counters and the `workers` and global `queue_depth`
/// gauges are sums over those runtimes. Before, each runtime set them to
/// its own values: a counter read the largest runtime's total (a runtime
/// built after a larger one was dropped never moved it) and the gauges
/// flipped between runtimes from one publish to the next.
#[derive(Default)]
struct Published {
    spawned: u64,
    completed: u64,
    /// Per worker index: polled, migrated, steals, idle sleeps, wake-ups.
    per_worker: HashMap<usize, [u64; 5]>,
    by_state: HashMap<WorkerState, f64>,
    global_depth: f64,
}

/// Adds to `counter` what `now` has over `*last`, and remembers `now`.
fn add_since(counter: &Counter, last: &mut u64, now: u64) {
    counter.increment(now.saturating_sub(*last));
    *last = now.max(*last);
}

/// Moves `gauge` by `now - *last`, and remembers `now`.
fn move_by(gauge: &Gauge, last: &mut f64, now: f64) {
    gauge.increment(now - *last);
    *last = now;
}

const STATES: [WorkerState; 7] = [
    WorkerState::Running,
    WorkerState::Idle,
    WorkerState::Parking,
    WorkerState::Parked,
    WorkerState::Stopping,
    WorkerState::Stopped,
    WorkerState::Failed,
];

/// Every metric with its kind and help text.
const DESCRIPTIONS: [(&str, Kind, &str); 21] = [
    (
        "park_inactive_evidence_total",
        Kind::Counter,
        "Parks completed, by the evidence of inactivity used: `kernel` (procfs said the thread sleeps) or `marker` (procfs unreadable, or no procfs: the worker's own handshake only).",
    ),
    (
        "park_latency_seconds",
        Kind::Histogram,
        "Park request to the parked completion, per worker.",
    ),
    (
        "park_to_inactive_seconds",
        Kind::Histogram,
        "Park request to park() returning with the worker inactive, per worker.",
    ),
    (
        "unpark_latency_seconds",
        Kind::Histogram,
        "Unpark request to the worker running again, per worker.",
    ),
    (
        "poll_duration_seconds",
        Kind::Histogram,
        "Duration of one task poll, per worker (one poll in 1024 timed, every poll with metrics_poll_time(true)).",
    ),
    (
        "schedule_latency_seconds",
        Kind::Histogram,
        "From a task becoming runnable to its poll starting (one schedule in 1024 sampled, every one with metrics_poll_time(true)).",
    ),
    (
        "long_polls_total",
        Kind::Counter,
        "Polls that ran past the long-poll threshold, per worker (each counted once).",
    ),
    (
        "long_poll_running_seconds",
        Kind::Gauge,
        "How long the worker's current long poll has run (0 when none), per worker.",
    ),
    ("parks_total", Kind::Counter, "Parks completed, per worker."),
    (
        "unparks_total",
        Kind::Counter,
        "Unparks of parked workers, per worker.",
    ),
    ("tasks_spawned_total", Kind::Counter, "Tasks spawned."),
    (
        "tasks_completed_total",
        Kind::Counter,
        "Tasks finished (completed, panicked or cancelled).",
    ),
    (
        "tasks_polled_total",
        Kind::Counter,
        "Task polls, per worker.",
    ),
    (
        "tasks_migrated_total",
        Kind::Counter,
        "Tasks handed to other workers when a worker parked or stopped.",
    ),
    (
        "steals_total",
        Kind::Counter,
        "Successful steals from other workers, per worker.",
    ),
    (
        "idle_sleeps_total",
        Kind::Counter,
        "Idle sleeps entered, per worker.",
    ),
    (
        "wakeups_total",
        Kind::Counter,
        "Idle sleeps ended by work, per worker.",
    ),
    (
        "hotplug_events_total",
        Kind::Counter,
        "Controller changes by kind.",
    ),
    (
        "worker_state",
        Kind::Gauge,
        "1 for the worker's current state (with its CPU), else 0.",
    ),
    ("workers", Kind::Gauge, "Workers by state."),
    (
        "queue_depth",
        Kind::Gauge,
        "Tasks queued: the global injector, or a worker's local queue.",
    ),
];

#[derive(Clone, Copy)]
enum Kind {
    Counter,
    Gauge,
    Histogram,
}

impl Names {
    fn describe(&self) {
        for (name, kind, help) in DESCRIPTIONS {
            let key = metrics::KeyName::from(format!("{}_{name}", self.prefix));
            let unit = name.ends_with("_seconds").then_some(metrics::Unit::Seconds);
            let help = metrics::SharedString::from(help);
            metrics::with_recorder(|r| match kind {
                Kind::Counter => r.describe_counter(key, unit, help),
                Kind::Gauge => r.describe_gauge(key, unit, help),
                Kind::Histogram => r.describe_histogram(key, unit, help),
            });
        }
    }
}

impl RuntimeMetrics {
    pub(crate) fn new(prefix: &str) -> Self {
        let names = Names {
            prefix: prefix.to_owned(),
        };
        names.describe();
        let hotplug = HOTPLUG_KINDS
            .iter()
            .map(|&k| {
                (
                    k,
                    names.counter("hotplug_events_total", vec![Label::new("kind", k)]),
                )
            })
            .collect();
        let evidence = [InactiveEvidence::Kernel, InactiveEvidence::Marker]
            .iter()
            .map(|e| {
                (
                    e.as_str(),
                    names.counter(
                        "park_inactive_evidence_total",
                        vec![Label::new("evidence", e.as_str())],
                    ),
                )
            })
            .collect();
        RuntimeMetrics {
            evidence,
            schedule_latency: names.histogram("schedule_latency_seconds", vec![]),
            spawned: names.counter("tasks_spawned_total", vec![]),
            completed: names.counter("tasks_completed_total", vec![]),
            hotplug,
            workers_by_state: STATES
                .iter()
                .map(|&s| {
                    (
                        s,
                        names.gauge("workers", vec![Label::new("state", s.as_str())]),
                    )
                })
                .collect(),
            global_depth: names.gauge("queue_depth", vec![Label::new("queue", "global")]),
            workers: Mutex::new(HashMap::new()),
            last_cpu: Mutex::new(HashMap::new()),
            publisher_stop: Mutex::new(false),
            publisher_wake: Condvar::new(),
            published_final: Mutex::new(false),
            published: Mutex::new(Published::default()),
            names,
        }
    }

    fn worker_handles(&self, id: usize) -> WorkerMetrics {
        let w = || vec![Label::new("worker", id.to_string())];
        let n = &self.names;
        WorkerMetrics {
            park_latency: n.histogram("park_latency_seconds", w()),
            park_to_inactive: n.histogram("park_to_inactive_seconds", w()),
            unpark_latency: n.histogram("unpark_latency_seconds", w()),
            poll_duration: n.histogram("poll_duration_seconds", w()),
            long_polls: n.counter("long_polls_total", w()),
            long_poll_running: n.gauge("long_poll_running_seconds", w()),
            parks: n.counter("parks_total", w()),
            unparks: n.counter("unparks_total", w()),
            polled: n.counter("tasks_polled_total", w()),
            migrated: n.counter("tasks_migrated_total", w()),
            steals: n.counter("steals_total", w()),
            idle_sleeps: n.counter("idle_sleeps_total", w()),
            wakeups: n.counter("wakeups_total", w()),
            local_depth: n.gauge(
                "queue_depth",
                vec![
                    Label::new("queue", "local"),
                    Label::new("worker", id.to_string()),
                ],
            ),
        }
    }

    /// Runs `f` on worker `id`'s handles, registering them first if its
    /// `worker_started` has not come yet. PARKS-OF-STARTING: a worker runs
    /// (and may be parked, or poll long) as soon as its own start hook
    /// returns, but `worker_started` comes once every worker of its
    /// `set_workers` call has started; its events meanwhile were dropped,
    /// while its unparks, later, were counted (`parks_total` 0 against
    /// `unparks_total` 1 for good). Same key, same series: registering
    /// early and again at `worker_started` is one set of series.
    fn with_worker(&self, id: usize, f: impl FnOnce(&WorkerMetrics)) {
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        f(workers.entry(id).or_insert_with(|| self.worker_handles(id)));
    }

    fn worker_state_gauge(&self, id: usize, cpu: Option<usize>, state: WorkerState) -> Gauge {
        let cpu = cpu.map_or_else(|| "none".to_owned(), |c| c.to_string());
        self.names.gauge(
            "worker_state",
            vec![
                Label::new("worker", id.to_string()),
                Label::new("cpu", cpu),
                Label::new("state", state.as_str()),
            ],
        )
    }

    /// Copies the scheduler's per-worker counts into the counters and
    /// refreshes the gauges (nothing once the final publish is done).
    pub(crate) fn publish(&self, control: &Controller) {
        let done = self
            .published_final
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !*done {
            self.publish_now(control);
        }
    }

    /// FINAL-PUBLISH, at the end of shutdown (the workers stopped, the
    /// waiting tasks cancelled): the last counts (`tasks_completed_total`
    /// then includes every cancelled task) and the workers' last states.
    /// Before, the publisher simply stopped when shutdown began: up to a
    /// publish interval of counts was never shown, cancelled tasks never
    /// counted as completed, and the gauges kept saying idle for good.
    pub(crate) fn publish_final(&self, control: &Controller) {
        let mut done = self
            .published_final
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        self.publish_now(control);
        // A runtime that ended has no workers and no queue: it takes back
        // what it added to the shared gauges (SHARED-SERIES).
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        for (state, gauge) in &self.workers_by_state {
            move_by(gauge, published.by_state.entry(*state).or_default(), 0.0);
        }
        move_by(&self.global_depth, &mut published.global_depth, 0.0);
        *done = true;
    }

    fn publish_now(&self, control: &Controller) {
        let scheduler = &control.scheduler;
        let mut published = self.published.lock().unwrap_or_else(|p| p.into_inner());
        let published = &mut *published;
        let (spawned, live) = scheduler.registry().counts();
        add_since(&self.spawned, &mut published.spawned, spawned as u64);
        add_since(
            &self.completed,
            &mut published.completed,
            (spawned - live) as u64,
        );
        move_by(
            &self.global_depth,
            &mut published.global_depth,
            scheduler.injector.len() as f64,
        );
        {
            let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
            for (index, slot) in scheduler.slots().iter().enumerate() {
                if let Some(m) = workers.get(&index) {
                    let last = published.per_worker.entry(index).or_default();
                    for (i, (counter, now)) in [
                        (&m.polled, &slot.polled),
                        (&m.migrated, &slot.migrated),
                        (&m.steals, &slot.steals),
                        (&m.idle_sleeps, &slot.idle_sleeps),
                        (&m.wakeups, &slot.wakeups),
                    ]
                    .into_iter()
                    .enumerate()
                    {
                        add_since(counter, &mut last[i], now.load(Relaxed));
                    }
                    // DEPTH-COUNTS-ALL: every task queued on the worker (the
                    // woken queue, the run queue, the yielded queue, the
                    // LIFO slot), not the run queue alone.
                    m.local_depth
                        .set((slot.queued() + usize::from(slot.has_lifo())) as f64);
                    m.long_poll_running
                        .set(scheduler.long_poll_running(slot).as_secs_f64());
                }
            }
        }
        let workers = control.workers();
        let mut by_state: HashMap<WorkerState, usize> = HashMap::new();
        let mut last = self.last_cpu.lock().unwrap_or_else(|p| p.into_inner());
        for w in &workers {
            *by_state.entry(w.state).or_default() += 1;
            if let Some(previous) = last.insert(w.id, w.cpu) {
                if previous != w.cpu {
                    for s in STATES {
                        self.worker_state_gauge(w.id, previous, s).set(0.0);
                    }
                }
            }
            for s in STATES {
                self.worker_state_gauge(w.id, w.cpu, s)
                    .set(if s == w.state { 1.0 } else { 0.0 });
            }
        }
        // Workers resized away: their series drop to "stopped".
        let gone: Vec<(usize, Option<usize>)> = last
            .iter()
            .filter(|(id, _)| !workers.iter().any(|w| w.id == **id))
            .map(|(&id, &cpu)| (id, cpu))
            .collect();
        // The record is kept: if the index comes back on another CPU, this
        // series is zeroed above (STATE-SERIES: one current state per
        // worker; forgetting it left the old CPU's series at stopped = 1
        // beside the new one's).
        for (id, cpu) in gone {
            for s in STATES {
                self.worker_state_gauge(id, cpu, s)
                    .set(if s == WorkerState::Stopped { 1.0 } else { 0.0 });
            }
        }
        for (state, gauge) in &self.workers_by_state {
            let now = by_state.get(state).copied().unwrap_or(0) as f64;
            move_by(gauge, published.by_state.entry(*state).or_default(), now);
        }
    }

    fn wait_for_next_publish(&self) {
        let stop = self
            .publisher_stop
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if !*stop {
            let _ = self.publisher_wake.wait_timeout(stop, PUBLISH_INTERVAL);
        }
    }

    /// No poll is watched any more (shutdown stopped the long-poll
    /// monitor): every worker's `long_poll_running_seconds` reads 0.
    pub(crate) fn clear_long_polls(&self) {
        let workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        for m in workers.values() {
            m.long_poll_running.set(0.0);
        }
    }

    /// Ends the publisher (at shutdown).
    pub(crate) fn stop_publisher(&self) {
        *self
            .publisher_stop
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = true;
        self.publisher_wake.notify_all();
    }

    fn publisher_stopped(&self) -> bool {
        *self
            .publisher_stop
            .lock()
            .unwrap_or_else(|p| p.into_inner())
    }
}

impl WorkerEvents for RuntimeMetrics {
    fn parking(&self, index: usize) {
        self.with_worker(index, |m| m.parks.increment(1));
    }

    fn resumed(&self, index: usize, latency: Option<Duration>) {
        self.with_worker(index, |m| {
            m.unparks.increment(1);
            if let Some(latency) = latency {
                m.unpark_latency.record(latency);
            }
        });
    }

    fn observer(&self, index: usize) -> Option<Arc<dyn PollObserver>> {
        // Registered here (the worker's `worker_started` may come later):
        // same key, same series.
        let poll = self.worker_handles(index).poll_duration;
        Some(Arc::new(Timings {
            poll,
            schedule: self.schedule_latency.clone(),
        }))
    }

    fn long_poll(&self, culprit: &PollCulprit) {
        self.with_worker(culprit.worker, |m| m.long_polls.increment(1));
    }
}

impl ControlEvents for RuntimeMetrics {
    fn worker_started(&self, index: usize) {
        // Registered now if no event of it came first (PARKS-OF-STARTING).
        self.with_worker(index, |_| {});
    }

    fn parked(&self, index: usize, timings: &ParkTimings) {
        if let Some(c) = self.evidence.get(timings.inactive_by.as_str()) {
            c.increment(1);
        }
        self.with_worker(index, |m| {
            m.park_latency.record(timings.to_parked);
            m.park_to_inactive.record(timings.to_inactive);
        });
    }

    fn hotplug(&self, kind: &'static str) {
        if let Some(c) = self.hotplug.get(kind) {
            c.increment(1);
        }
    }
}

/// One worker's poll and schedule timings, recorded on its thread.
struct Timings {
    poll: Histogram,
    schedule: Histogram,
}

impl PollObserver for Timings {
    fn polled(&self, took: Duration) {
        self.poll.record(took);
    }

    fn scheduled(&self, waited: Duration) {
        self.schedule.record(waited);
    }
}

/// One worker's handles.
struct WorkerMetrics {
    park_latency: Histogram,
    park_to_inactive: Histogram,
    unpark_latency: Histogram,
    poll_duration: Histogram,
    long_polls: Counter,
    long_poll_running: Gauge,
    parks: Counter,
    unparks: Counter,
    polled: Counter,
    migrated: Counter,
    steals: Counter,
    idle_sleeps: Counter,
    wakeups: Counter,
    local_depth: Gauge,
}

/// The publisher thread: every `PUBLISH_INTERVAL` until the runtime closes.
pub(crate) fn start_publisher(metrics: Arc<RuntimeMetrics>, control: &Arc<Controller>) {
    let weak: Weak<Controller> = Arc::downgrade(control);
    let _ = std::thread::Builder::new()
        .name("unplug-metrics".into())
        .spawn(move || loop {
            if metrics.publisher_stopped() {
                return;
            }
            let Some(control) = weak.upgrade() else {
                return;
            };
            if control.scheduler.is_closing() {
                return;
            }
            metrics.publish(&control);
            drop(control);
            metrics.wait_for_next_publish();
        });
}
