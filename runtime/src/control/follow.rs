//! Following the CPUs the process may use (`Builder::follow_cpus`).
//!
//! A watcher thread reads, every interval:
//! - the **main thread's** affinity mask (`sched_getaffinity(getpid())`):
//!   what `taskset -p <pid>` changes. Only that mask is followed, never a
//!   worker's own (the runtime pins its workers itself) nor the calling
//!   thread's. `taskset -a -p` rewrites every thread's mask, workers'
//!   included: the main thread's change is followed like any other, and
//!   workers are re-pinned as they are plugged;
//! - the cgroup cpuset and the online CPUs (`affinity::allowed_cpus_now`):
//!   what a container runtime's `--cpuset-cpus` update or a CPU hot-unplug
//!   changes;
//! - the cgroup CPU quota, which caps how many of those CPUs get a running
//!   worker: `ceil(quota)`.
//!
//! The CPUs followed are the cgroup's online CPUs that are also in the main
//! thread's mask. A new reading must hold for `STABLE_READINGS` readings in
//! a row before the pool is changed, so a flapping mask does not thrash it.
//! Then CPUs that joined are plugged first, CPUs that left are unplugged
//! after (so the pool never drops to no running worker on the way).
//! Tested for real: `tests/follow_cpus.rs` (the main thread's mask) and
//! `tests/follow_cgroup_cpuset.rs` (a cpuset cgroup).

use super::{Controller, WaitFor};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::Duration;
use unplug_worker::{affinity, WorkerState};

/// Readings in a row a change must hold before the pool follows it.
pub(crate) const STABLE_READINGS: u32 = 3;

pub(crate) struct Follower {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Follower {
    pub(crate) fn start(control: Arc<Controller>, interval: Duration) -> Self {
        let (stop, stopped) = mpsc::channel::<()>();
        // Read now, on the thread that builds the runtime: what the pool
        // was built for counts as applied, so only a later change is
        // followed (a first reading equal to it must not undo manual
        // calls, and a change made right after `build()` is not missed).
        let scope = control.follow_scope();
        let built_for = desired_cpus(scope.as_deref());
        let thread = std::thread::Builder::new()
            .name("unplug-follow".into())
            .spawn(move || follow(control, interval, stopped, built_for, scope))
            .ok();
        Follower {
            stop: Some(stop),
            thread,
        }
    }

    pub(crate) fn stop(mut self) {
        self.stop.take();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The CPUs the process may run workers on now: the cgroup's online CPUs
/// that are also in the main thread's mask (all of the former if they
/// share none), as an unpinned worker takes at its start.
fn usable_cpus() -> Vec<usize> {
    affinity::process_cpus_now().unwrap_or_default()
}

/// The CPUs the runtime should run workers on, given the usable ones:
/// FOLLOW-SCOPE, those of `Builder::cpus` if it was given (all usable
/// ones if it shares none with them: work must run somewhere), capped by
/// the cgroup CPU quota.
fn desired_of(usable: &[usize], scope: Option<&[usize]>) -> Vec<usize> {
    let mut cpus: Vec<usize> = match scope {
        Some(scope) => usable
            .iter()
            .copied()
            .filter(|c| scope.contains(c))
            .collect(),
        None => usable.to_vec(),
    };
    if cpus.is_empty() {
        cpus = usable.to_vec();
    }
    if let Some(quota) = affinity::cpu_quota() {
        cpus.truncate((quota.ceil() as usize).max(1));
    }
    cpus
}

/// The CPUs the runtime should run workers on now.
fn desired_cpus(scope: Option<&[usize]>) -> Vec<usize> {
    desired_of(&usable_cpus(), scope)
}

/// The hysteresis: a reading is acted on once it has been seen
/// `STABLE_READINGS` times in a row and differs from what was last acted on.
#[derive(Default)]
pub(crate) struct Hysteresis {
    seen: Option<Vec<usize>>,
    stable: u32,
    applied: Option<Vec<usize>>,
}

impl Hysteresis {
    /// A hysteresis that has already applied `cpus`.
    pub(crate) fn applied(cpus: Vec<usize>) -> Self {
        Hysteresis {
            applied: Some(cpus),
            ..Default::default()
        }
    }

    /// Feeds one reading; returns the CPU set to apply now, if any.
    pub(crate) fn observe(&mut self, now: Vec<usize>) -> Option<Vec<usize>> {
        if self.seen.as_ref() == Some(&now) {
            self.stable += 1;
        } else {
            self.seen = Some(now.clone());
            self.stable = 1;
        }
        if self.stable >= STABLE_READINGS && self.applied.as_ref() != Some(&now) {
            self.applied = Some(now.clone());
            return Some(now);
        }
        None
    }

    /// Whether `now` has held for `STABLE_READINGS` readings and is what
    /// was last acted on.
    fn settled_on(&self, now: &[usize]) -> bool {
        self.stable >= STABLE_READINGS && self.applied.as_deref() == Some(now)
    }
}

impl Controller {
    /// The CPUs of `Builder::cpus`, if it was given (FOLLOW-SCOPE).
    fn follow_scope(&self) -> Option<Vec<usize>> {
        let pool = self.lock_pool();
        pool.config.cpus_given.then(|| pool.cpus.clone())
    }

    /// FOLLOW-KEEPS-COUNT: the running workers asked for explicitly, if any.
    fn asked_count(&self) -> Option<usize> {
        self.lock_pool().asked_count
    }

    /// Whether a worker counting as running is on a CPU not in `desired`
    /// (FOLLOW-CONVERGES).
    fn runs_outside(&self, desired: &[usize]) -> bool {
        self.lock_pool()
            .entries
            .iter()
            .any(|e| e.counts_as_running() && e.cpu.is_some_and(|c| !desired.contains(&c)))
    }

    /// FOLLOW-UNPINNED: gives every unpinned worker the mask `usable`, as
    /// one started now would get (AFFINITY-INHERIT). Best effort: a thread
    /// the kernel refuses keeps its mask.
    fn spread_unpinned(&self, usable: &[usize]) {
        if !affinity::AFFINITY_SUPPORTED || usable.is_empty() {
            return;
        }
        let pool = self.lock_pool();
        for e in pool.entries.iter().filter(|e| !e.pinned && !e.gone()) {
            let _ = affinity::pin_to(e.worker.os_tid(), usable);
        }
    }
}

fn follow(
    control: Arc<Controller>,
    interval: Duration,
    stopped: mpsc::Receiver<()>,
    built_for: Vec<usize>,
    scope: Option<Vec<usize>>,
) {
    let mut hysteresis = Hysteresis::applied(built_for);
    let scope = scope.as_deref();
    loop {
        match stopped.recv_timeout(interval) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            _ => return,
        }
        let usable = usable_cpus();
        let now = desired_of(&usable, scope);
        let stop_asked = || {
            matches!(
                stopped.try_recv(),
                Ok(()) | Err(mpsc::TryRecvError::Disconnected)
            )
        };
        let plugs = if let Some(cpus) = hysteresis.observe(now.clone()) {
            // A change of the reading: plug what joined, unplug what left.
            Some((cpus, true))
        } else if hysteresis.settled_on(&now) && control.runs_outside(&now) {
            // FOLLOW-CONVERGES: the reading is what was applied, yet a
            // worker runs on a CPU outside it (plugged by the user while
            // the CPU was given back for less than the hysteresis): unplug
            // it, plugging only if no worker would run otherwise.
            Some((now.clone(), false))
        } else {
            None
        };
        if let Some((cpus, plug_joined)) = plugs {
            // Counted before the pool changes, so whoever sees the change
            // sees it counted (a test saw the plug before the count).
            control.follow_changes.fetch_add(1, Relaxed);
            apply(&control, &cpus, plug_joined, scope, &stop_asked);
            control.spread_unpinned(&usable);
            control.hotplug_event("follow");
            if stop_asked() {
                return;
            }
        }
    }
}

/// Plugs the CPUs of `desired` that run no worker, then unplugs the
/// others. FOLLOW-GIVES-UP: an unplug waits for a worker inside a poll
/// only until `stop_asked` (shutdown) or the CPU is wanted again; the park
/// then stays requested without an owner, and completes when that poll
/// ends (or a later plug withdraws it). An unbounded wait here held up
/// `shutdown_timeout` for the whole poll, and deadlocked a runtime dropped
/// from a task on the worker being unplugged (shutdown joins this thread).
///
/// With `plug_joined` false (FOLLOW-CONVERGES), a CPU of `desired` is
/// plugged only if no worker runs on any of them (a user's unplug of a CPU
/// the process may use is left alone).
fn apply(
    control: &Controller,
    desired: &[usize],
    plug_joined: bool,
    scope: Option<&[usize]>,
    stop_asked: &dyn Fn() -> bool,
) {
    let running_on = |cpu: usize| {
        control.workers().iter().any(|w| {
            w.cpu == Some(cpu) && matches!(w.state, WorkerState::Running | WorkerState::Idle)
        })
    };
    // FOLLOW-KEEPS-COUNT: with a count asked for, CPUs are plugged only
    // while fewer of the CPUs followed than that run a worker (following
    // moves workers; it adds none a default-built runtime would not have).
    let asked = control.asked_count();
    let below_asked =
        || asked.is_none_or(|n| desired.iter().filter(|&&c| running_on(c)).count() < n);
    if plug_joined || !desired.iter().any(|&c| running_on(c)) {
        for &cpu in desired {
            if !running_on(cpu) && below_asked() {
                let _ = control.plug_cpu(cpu);
                if !plug_joined {
                    break;
                }
            }
        }
    }
    let mut gone: Vec<usize> = control.workers().iter().filter_map(|w| w.cpu).collect();
    gone.sort_unstable();
    gone.dedup();
    for cpu in gone.into_iter().filter(|c| !desired.contains(c)) {
        let give_up = || stop_asked() || desired_cpus(scope).contains(&cpu);
        // The last running worker is refused by the controller; keep it.
        // A park this call shared with another call that withdrew it (a
        // user's `unplug_cpu_timeout` timing out: OWNED-ROLLBACK) is asked
        // for again: the mask still says this CPU goes, and this reading is
        // already recorded as applied, so nothing would ask later.
        while let Ok(report) = control.unplug_cpu_waiting(cpu, WaitFor::UntilGivenUp(&give_up)) {
            if report.superseded.is_empty() || give_up() {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Hysteresis;

    #[test]
    fn a_flapping_mask_is_never_applied() {
        let mut h = Hysteresis::default();
        for i in 0..100 {
            let reading = if i % 2 == 0 { vec![0] } else { vec![0, 1] };
            assert_eq!(h.observe(reading), None);
        }
        // Runs of two are still not enough.
        for reading in [vec![0], vec![0], vec![0, 1], vec![0, 1], vec![0]] {
            assert_eq!(h.observe(reading), None);
        }
    }

    #[test]
    fn a_stable_change_is_applied_once() {
        let mut h = Hysteresis::default();
        assert_eq!(h.observe(vec![0, 1]), None);
        assert_eq!(h.observe(vec![0, 1]), None);
        assert_eq!(h.observe(vec![0, 1]), Some(vec![0, 1]));
        assert_eq!(h.observe(vec![0, 1]), None);
        assert_eq!(h.observe(vec![0]), None);
        assert_eq!(h.observe(vec![0]), None);
        assert_eq!(h.observe(vec![0]), Some(vec![0]));
    }
}
