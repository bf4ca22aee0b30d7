//! Bringing workers back: `plug_cpu` and `unpark_worker`.

use super::pool::Plan;
use super::{check_allowed, ControlError, Controller, PlugReport};
use unplug_worker::UnparkError;

/// PLUG-ALL-OR-NOTHING: why a re-pin for `plug_cpu(cpu)` was refused: the
/// CPU left the process's CPUs (read fresh), or what the worker said.
fn plug_refused(cpu: usize, refused: UnparkError) -> ControlError {
    match unplug_worker::affinity::allowed_cpus_now() {
        Ok(allowed) if !allowed.contains(&cpu) => ControlError::CpuNotAllowed { cpu, allowed },
        _ => ControlError::Unpark(refused),
    }
}

impl Controller {
    /// See [`Handle::plug_cpu`](crate::Handle::plug_cpu).
    pub(crate) fn plug_cpu(&self, cpu: usize) -> Result<PlugReport, ControlError> {
        check_allowed(cpu)?;
        let mut report = PlugReport::default();
        let spawned = {
            let mut pool = self.lock_pool();
            self.check_open()?;
            let parked: Vec<usize> = (0..pool.entries.len())
                .filter(|&at| {
                    let e = &pool.entries[at];
                    e.cpu == Some(cpu) && matches!(e.plan, Plan::Parking { .. }) && !e.gone()
                })
                .collect();
            // PLUG-ALL-OR-NOTHING: every fallible step first. A pinned
            // worker is re-pinned while still parked (it runs there from
            // its first instruction after the unpark below); the kernel
            // refuses a CPU the cgroup has just dropped, which the 50 ms
            // cache of the allowed CPUs checked above may not know yet.
            // Before, that error came out of the loop after the CPU's
            // unplugged mark was cleared and earlier workers were unparked
            // (a red team: 10 of 10 each).
            for &at in &parked {
                let e = &pool.entries[at];
                if e.pinned {
                    match e.worker.repin(cpu) {
                        // Ended meanwhile: left alone below (`gone`).
                        Ok(()) | Err(UnparkError::Stopped) => {}
                        Err(refused) => return Err(plug_refused(cpu, refused)),
                    }
                }
            }
            let was_unplugged = pool.unplugged.plug(cpu);
            for at in parked {
                let e = &mut pool.entries[at];
                // Only a stop (the worker ended) can refuse a plain unpark.
                if e.worker.unpark().is_ok() {
                    // Withdrawn: a call waiting on this park learns it was
                    // superseded, and its rollback leaves it alone.
                    e.plan = e.unparked_plan();
                    report.unparked.push(e.index);
                }
            }
            let running_here = pool.entries.iter().any(|e| {
                e.cpu == Some(cpu) && (e.counts_as_running() || matches!(e.plan, Plan::Starting))
            });
            if running_here {
                None
            } else {
                match self.spawn_worker(&mut pool, Some(cpu), true) {
                    Ok(spawned) => Some(spawned),
                    Err(e) => {
                        // Nothing was unparked here (else one would run
                        // here): the call changes nothing.
                        if was_unplugged {
                            pool.unplugged.mark(cpu);
                        }
                        pool.clear_waiting_of_caller();
                        return Err(e);
                    }
                }
            }
        };
        if let Some(spawned) = spawned {
            let (started, failure) = self.confirm(vec![spawned]);
            report.started = started;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        if report != PlugReport::default() {
            self.hotplug_event("plug_cpu");
        }
        Ok(report)
    }

    /// See [`Handle::unpark_worker`](crate::Handle::unpark_worker).
    pub(crate) fn unpark_worker(
        &self,
        id: usize,
        cpu: Option<usize>,
    ) -> Result<PlugReport, ControlError> {
        if let Some(cpu) = cpu {
            check_allowed(cpu)?;
        }
        let mut pool = self.lock_pool();
        self.check_open()?;
        let at = pool.position(id).ok_or(ControlError::UnknownWorker(id))?;
        let e = &mut pool.entries[at];
        let mut report = PlugReport::default();
        if e.gone() {
            return Err(ControlError::WorkerGone(id));
        }
        match e.plan {
            // Stopping and Failed are gone (above).
            Plan::Stopping | Plan::Failed | Plan::Starting | Plan::Running => {}
            Plan::Parking { .. } => {
                match cpu {
                    Some(cpu) => {
                        e.worker.unpark_on(cpu).map_err(ControlError::Unpark)?;
                        e.cpu = Some(cpu);
                        e.pinned = true;
                    }
                    None => {
                        e.worker.unpark().map_err(ControlError::Unpark)?;
                    }
                }
                e.plan = e.unparked_plan();
                // It runs there now: that CPU is plugged again.
                if let Some(cpu) = e.cpu {
                    pool.unplugged.plug(cpu);
                }
                self.hotplug_event("unpark_worker");
                report.unparked.push(id);
            }
        }
        Ok(report)
    }
}
