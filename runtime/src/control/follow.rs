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
//! - the cgroup CPU quota, which caps how many of those CPUs run a worker
//!   at once: `ceil(quota)` (QUOTA-COUNTS: how many, never which).
//!
//! The CPUs followed are the cgroup's online CPUs that are also in the main
//! thread's mask. A new reading must hold for `STABLE_READINGS` readings in
//! a row before the pool is changed, so a mask that changes back within
//! that is never followed (one that flaps faster than the readings may
//! still be followed now and then: the readings sample it). Then CPUs that
//! joined are plugged first (while fewer CPUs than the cap run a worker),
//! CPUs that left are unplugged after (so the pool never drops to no
//! running worker on the way), then the highest CPUs running a worker
//! beyond the cap.
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
        let built_for = read_now(scope.as_deref());
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

/// What the follower follows: the CPUs workers may run on, and how many of
/// them may run a worker at once.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reading {
    /// FOLLOW-SCOPE: the usable CPUs within `Builder::cpus` if it was given
    /// (all usable ones if it shares none with them: work must run
    /// somewhere).
    pub(crate) cpus: Vec<usize>,
    /// QUOTA-COUNTS: `ceil` of the cgroup CPU quota (at least 1), or all of
    /// `cpus`. It caps how many CPUs run a worker; which ones is left to
    /// the pool (before, the quota truncated `cpus` to its lowest CPUs: a
    /// worker alone on CPU 1 was moved to CPU 0 under a quota of 1, and a
    /// user's move of the one worker was undone; a red team).
    pub(crate) cap: usize,
}

/// The reading for these usable CPUs, quota and scope.
fn reading_of(usable: &[usize], quota: Option<f64>, scope: Option<&[usize]>) -> Reading {
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
    let cap = quota.map_or(cpus.len(), |q| (q.ceil() as usize).max(1));
    Reading { cpus, cap }
}

/// The reading now.
fn read_now(scope: Option<&[usize]>) -> Reading {
    reading_of(&usable_cpus(), affinity::cpu_quota(), scope)
}

/// The hysteresis: a reading is acted on once it has been seen
/// `STABLE_READINGS` times in a row and differs from what was last acted on.
pub(crate) struct Hysteresis<T> {
    seen: Option<T>,
    stable: u32,
    applied: Option<T>,
}

impl<T> Default for Hysteresis<T> {
    fn default() -> Self {
        Hysteresis {
            seen: None,
            stable: 0,
            applied: None,
        }
    }
}

impl<T: Clone + PartialEq> Hysteresis<T> {
    /// A hysteresis that has already applied `reading`.
    pub(crate) fn applied(reading: T) -> Self {
        Hysteresis {
            applied: Some(reading),
            ..Default::default()
        }
    }

    /// Feeds one reading; returns the reading to apply now, if any.
    pub(crate) fn observe(&mut self, now: T) -> Option<T> {
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
    fn settled_on(&self, now: &T) -> bool {
        self.stable >= STABLE_READINGS && self.applied.as_ref() == Some(now)
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

    /// The workers running (or idle) on each of `cpus` that has one, in
    /// ascending CPU order: `(cpu, ids)`.
    fn running_by_cpu(&self, cpus: &[usize]) -> Vec<(usize, Vec<usize>)> {
        let mut by_cpu: Vec<(usize, Vec<usize>)> = Vec::new();
        for w in self.workers() {
            let Some(cpu) = w.cpu.filter(|c| cpus.contains(c)) else {
                continue;
            };
            if !matches!(w.state, WorkerState::Running | WorkerState::Idle) {
                continue;
            }
            match by_cpu.iter_mut().find(|(c, _)| *c == cpu) {
                Some((_, ids)) => ids.push(w.id),
                None => by_cpu.push((cpu, vec![w.id])),
            }
        }
        by_cpu.sort_unstable_by_key(|&(cpu, _)| cpu);
        by_cpu
    }

    /// Whether a worker counting as running is on a CPU not in `reading`,
    /// or more of its CPUs than the cap run one (FOLLOW-CONVERGES).
    fn runs_outside(&self, reading: &Reading) -> bool {
        let pool = self.lock_pool();
        let mut inside: Vec<usize> = Vec::new();
        for e in pool.entries.iter().filter(|e| e.counts_as_running()) {
            match e.cpu {
                Some(c) if !reading.cpus.contains(&c) => return true,
                Some(c) if !inside.contains(&c) => inside.push(c),
                _ => {}
            }
        }
        inside.len() > reading.cap
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
    built_for: Reading,
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
        let now = reading_of(&usable, affinity::cpu_quota(), scope);
        let stop_asked = || {
            matches!(
                stopped.try_recv(),
                Ok(()) | Err(mpsc::TryRecvError::Disconnected)
            )
        };
        let plugs = if let Some(reading) = hysteresis.observe(now.clone()) {
            // A change of the reading: plug what joined, unplug what left.
            Some((reading, true))
        } else if hysteresis.settled_on(&now) && control.runs_outside(&now) {
            // FOLLOW-CONVERGES: the reading is what was applied, yet a
            // worker runs on a CPU outside it (plugged by the user while
            // the CPU was given back for less than the hysteresis): unplug
            // it, plugging only if no worker would run otherwise.
            Some((now.clone(), false))
        } else {
            None
        };
        if let Some((reading, plug_joined)) = plugs {
            // Counted before the pool changes, so whoever sees the change
            // sees it counted (a test saw the plug before the count).
            control.follow_changes.fetch_add(1, Relaxed);
            apply(&control, &reading, plug_joined, scope, &stop_asked);
            control.spread_unpinned(&usable);
            control.hotplug_event("follow");
            if stop_asked() {
                return;
            }
        }
    }
}

/// Plugs the CPUs of `reading` that run no worker while fewer of them than
/// its cap run one, then unplugs the CPUs not in it, then the highest CPUs
/// running a worker beyond the cap. FOLLOW-GIVES-UP: an unplug waits for a
/// worker inside a poll only until `stop_asked` (shutdown) or the CPU is
/// wanted again; the park then stays requested without an owner, and
/// completes when that poll ends (or a later plug withdraws it). An
/// unbounded wait here held up `shutdown_timeout` for the whole poll, and
/// deadlocked a runtime dropped from a task on the worker being unplugged
/// (shutdown joins this thread).
///
/// With `plug_joined` false (FOLLOW-CONVERGES), a CPU of `reading` is
/// plugged only if no worker runs on any of them (a user's unplug of a CPU
/// the process may use is left alone).
fn apply(
    control: &Controller,
    reading: &Reading,
    plug_joined: bool,
    scope: Option<&[usize]>,
    stop_asked: &dyn Fn() -> bool,
) {
    // FOLLOW-KEEPS-COUNT: with a count asked for, CPUs are plugged only
    // while fewer workers than that run on the CPUs followed (following
    // moves workers off CPUs that go; it adds none a default-built runtime
    // would not have). Counted in workers: counted in CPUs, two workers on
    // one CPU were one, and the CPU that came back got a third (a red team).
    let asked = control.asked_count();
    if plug_joined || control.running_by_cpu(&reading.cpus).is_empty() {
        for &cpu in &reading.cpus {
            let by_cpu = control.running_by_cpu(&reading.cpus);
            let workers: usize = by_cpu.iter().map(|(_, ids)| ids.len()).sum();
            let below_asked = asked.is_none_or(|n| workers < n);
            let crowded = by_cpu.iter().any(|(_, ids)| ids.len() > 1);
            // A CPU without a worker gets one while fewer workers than
            // asked run, or (FOLLOW-SPREADS) as a move while another CPU
            // followed runs several: the count stays, the CPUs fill.
            if by_cpu.iter().any(|&(c, _)| c == cpu)
                || by_cpu.len() >= reading.cap
                || !(below_asked || crowded)
            {
                continue;
            }
            let _ = control.plug_cpu(cpu);
            if let Some(n) = asked {
                trim_to(control, n, &reading.cpus, stop_asked);
            }
            if !plug_joined {
                break;
            }
        }
    }
    let mut gone: Vec<usize> = control.workers().iter().filter_map(|w| w.cpu).collect();
    gone.sort_unstable();
    gone.dedup();
    for cpu in gone.into_iter().filter(|c| !reading.cpus.contains(c)) {
        let give_up = || stop_asked() || read_now(scope).cpus.contains(&cpu);
        unplug_until_done(control, cpu, &give_up);
    }
    // QUOTA-COUNTS: beyond the cap, the highest CPUs running a worker go
    // (the others keep theirs: which CPUs run is the pool's, not the
    // quota's).
    let mut running: Vec<usize> = control
        .running_by_cpu(&reading.cpus)
        .into_iter()
        .map(|(cpu, _)| cpu)
        .collect();
    while running.len() > reading.cap {
        let Some(cpu) = running.pop() else { break };
        let give_up = || stop_asked() || read_now(scope).cap > reading.cap;
        unplug_until_done(control, cpu, &give_up);
        if give_up() {
            break;
        }
    }
}

/// FOLLOW-SPREADS: while more than `n` workers run on `cpus`, parks the
/// newest worker of the CPU running the most (never the only one of a
/// CPU): what a plug brought back beyond the count.
fn trim_to(control: &Controller, n: usize, cpus: &[usize], stop_asked: &dyn Fn() -> bool) {
    loop {
        let by_cpu = control.running_by_cpu(cpus);
        let workers: usize = by_cpu.iter().map(|(_, ids)| ids.len()).sum();
        if workers <= n || stop_asked() {
            return;
        }
        let Some(newest) = by_cpu
            .iter()
            .filter(|(_, ids)| ids.len() > 1)
            .max_by_key(|(_, ids)| ids.len())
            .and_then(|(_, ids)| ids.iter().max())
        else {
            return;
        };
        if control
            .park_worker_waiting(*newest, WaitFor::UntilGivenUp(stop_asked))
            .is_err()
        {
            return;
        }
    }
}

/// Unplugs `cpu` for the follower. The last running worker is refused by
/// the controller; keep it. A park this call shared with another call that
/// withdrew it (a user's `unplug_cpu_timeout` timing out: OWNED-ROLLBACK)
/// is asked for again: the reading still says this CPU goes, and it is
/// already recorded as applied, so nothing would ask later.
fn unplug_until_done(control: &Controller, cpu: usize, give_up: &dyn Fn() -> bool) {
    while let Ok(report) = control.unplug_cpu_waiting(cpu, WaitFor::UntilGivenUp(give_up)) {
        if report.superseded.is_empty() || give_up() {
            break;
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
