//! `set_workers`: growing starts workers (each confirmed running once its
//! start hook returned), shrinking stops the newest running ones.

use super::pool::Plan;
use super::{ControlError, Controller, ResizeReport, MAX_WORKERS};
use std::sync::atomic::Ordering::Relaxed;

impl Controller {
    /// See [`Handle::set_workers`](crate::Handle::set_workers).
    pub(crate) fn set_workers(&self, n: usize) -> Result<ResizeReport, ControlError> {
        if n == 0 {
            return Err(ControlError::ZeroWorkers);
        }
        if n > MAX_WORKERS {
            return Err(ControlError::TooManyWorkers {
                requested: n,
                max: MAX_WORKERS,
            });
        }
        let mut pool = self.lock_pool();
        self.check_open()?;
        let starting = pool
            .entries
            .iter()
            .filter(|e| matches!(e.plan, Plan::Starting))
            .count();
        let before = pool.running();
        let mut report = ResizeReport {
            before,
            after: n,
            ..Default::default()
        };
        let mut planned = before + starting;
        // MAX-AT-ONCE: the workers left parked (on unplugged CPUs) and
        // stopping still count; refused before anything is unparked or
        // started.
        // REUSE-ALLOWED and GROW-FRESH: read fresh (not the 50 ms cache),
        // once for the whole call.
        let allowed = unplug_worker::affinity::allowed_cpus_now().ok();
        let unparkable = pool
            .entries
            .iter()
            .filter(|e| e.reusable(&pool.unplugged, allowed.as_deref()))
            .count();
        let to_start = n.saturating_sub(planned + unparkable);
        if pool.entries.len() + to_start > MAX_WORKERS {
            return Err(ControlError::TooManyWorkers {
                requested: pool.entries.len() + to_start,
                max: MAX_WORKERS,
            });
        }
        // FOLLOW-KEEPS-COUNT: the count the CPU follower keeps from now on.
        pool.asked_count = Some(n);
        if n > planned {
            // Parked workers on CPUs that are not unplugged come back first
            // (IDS-REUSED: a pool that parks and grows does not pile up
            // parked threads).
            let pool = &mut *pool;
            for e in pool.entries.iter_mut().rev() {
                if planned == n {
                    break;
                }
                if e.reusable(&pool.unplugged, allowed.as_deref()) && e.worker.unpark().is_ok() {
                    // Running: `reusable` takes confirmed workers only.
                    e.plan = e.unparked_plan();
                    report.unparked.push(e.index);
                    planned += 1;
                }
            }
        }
        if n > planned {
            let mut spawned = Vec::new();
            let mut failure = None;
            for _ in planned..n {
                let cpu = least_used_cpu(&pool, allowed.as_deref().unwrap_or_default());
                let pin = pool.config.pin;
                match self.spawn_worker(&mut pool, cpu, pin) {
                    Ok(s) => spawned.push(s),
                    Err(e) => {
                        failure = Some(e);
                        break;
                    }
                }
            }
            drop(pool);
            let (started, confirm_failure) = self.confirm(spawned);
            if let Some(e) = failure.or(confirm_failure) {
                // Nothing half-applied: the workers this call started go.
                self.undo_starts(&started);
                return Err(e);
            }
            report.started = started;
        } else if n < before {
            let caller = pool.position_of_thread(std::thread::current().id());
            // Newest first, never the caller's own worker and, from a
            // worker thread, never one blocked in a controller call itself.
            let victims: Vec<usize> = (0..pool.entries.len())
                .rev()
                .filter(|&i| pool.entries[i].counts_as_running() && pool.may_wait_for(caller, i))
                .take(before - n)
                .collect();
            if victims.len() < before - n {
                return Err(ControlError::WouldDeadlock);
            }
            let mut workers = Vec::new();
            let mut migrated_before = 0;
            for &at in &victims {
                let e = &mut pool.entries[at];
                e.plan = Plan::Stopping;
                e.worker.protocol().request_stop();
                migrated_before += e.slot.migrated.load(Relaxed);
                workers.push((e.index, e.worker.clone(), e.slot.clone()));
            }
            if let Some(me) = caller {
                pool.entries[me].waiting = true;
            }
            drop(pool);
            for (_, worker, _) in &workers {
                // P6: stop works from any state; the worker hands its
                // queued tasks to the others on the way out (P7).
                let _ = worker.stop();
            }
            let migrated_after: u64 = workers
                .iter()
                .map(|(_, _, s)| s.migrated.load(Relaxed))
                .sum();
            report.tasks_migrated = migrated_after - migrated_before;
            let mut pool = self.lock_pool();
            if let Some(me) =
                caller.and_then(|_| pool.position_of_thread(std::thread::current().id()))
            {
                pool.entries[me].waiting = false;
            }
            for (id, _, _) in &workers {
                pool.remove(*id);
                report.stopped.push(*id);
            }
        } else {
            drop(pool);
        }
        if !report.started.is_empty() || !report.stopped.is_empty() || !report.unparked.is_empty() {
            self.hotplug_event("set_workers");
        }
        Ok(report)
    }
}

/// The runtime's CPU with the fewest running or starting workers, among
/// those the process may still use and that are not unplugged (if every
/// one is unplugged, among all the process may use).
///
/// GROW-FRESH: `allowed` is read fresh by `set_workers`, not taken from the
/// 50 ms cache:
/// a cgroup that just dropped a CPU made a growing `set_workers` choose
/// it, and the pinned start failed (`EINVAL`) with the whole call, or
/// an unpinned worker was homed on a CPU the process may not use.
fn least_used_cpu(pool: &super::pool::Pool, allowed: &[usize]) -> Option<usize> {
    let usable = |c: &usize| allowed.contains(c) && !pool.unplugged.contains(*c);
    let mut cpus: Vec<usize> = pool.cpus.iter().copied().filter(usable).collect();
    if cpus.is_empty() {
        cpus = allowed.iter().copied().filter(usable).collect();
    }
    if cpus.is_empty() {
        cpus = allowed.to_vec();
    }
    cpus.into_iter().min_by_key(|&c| {
        pool.entries
            .iter()
            .filter(|e| {
                e.cpu == Some(c) && (e.counts_as_running() || matches!(e.plan, Plan::Starting))
            })
            .count()
    })
}
