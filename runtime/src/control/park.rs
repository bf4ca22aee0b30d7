//! Parks requested under the pool lock and waited for outside it.

use super::pool::{Pool, PoolEntry, Target};
use super::{ControlError, Controller, ParkReport};
use crate::scheduler::Slot;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Instant;
use unplug_worker::{ParkError, ParkTicket, Worker};

/// A park requested under the lock, to be waited for outside it.
pub(super) struct PendingPark {
    pub(super) id: usize,
    pub(super) worker: Arc<Worker<()>>,
    slot: Arc<Slot>,
    ticket: ParkTicket,
    migrated_before: u64,
}

/// Requests parks of the `victims` (indices into `pool.entries`) and marks
/// them with `target`.
pub(super) fn request_parks(
    pool: &mut Pool,
    victims: &[usize],
    target: Target,
) -> Vec<PendingPark> {
    let mut pending = Vec::new();
    for &i in victims {
        let e = &mut pool.entries[i];
        let migrated_before = e.slot.migrated.load(Relaxed);
        match e.worker.request_park() {
            Ok(ticket) => {
                e.target = target;
                pending.push(PendingPark {
                    id: e.index,
                    worker: e.worker.clone(),
                    slot: e.slot.clone(),
                    ticket,
                    migrated_before,
                });
            }
            // Stopping already: it will not run again either way.
            Err(_) => e.target = target,
        }
    }
    pending
}

impl Controller {
    /// Waits for `pending` parks (outside the pool lock). On a timeout,
    /// withdraws every park of this call and restores the targets.
    pub(super) fn wait_parks(
        &self,
        pending: Vec<PendingPark>,
        deadline: Option<Instant>,
    ) -> Result<ParkReport, ControlError> {
        let me = std::thread::current().id();
        let mut report = ParkReport::default();
        let mut timed_out = false;
        for p in &pending {
            if p.worker.thread_id() == me {
                report.deferred.push(p.id);
                continue;
            }
            match p.worker.wait_park(p.ticket, deadline) {
                Ok(timings) => {
                    if let Some(events) = &self.events {
                        events.parked(p.id, &timings);
                    }
                    report.parked.push(p.id);
                    report.park_latencies.push(timings);
                    report.tasks_migrated += p.slot.migrated.load(Relaxed) - p.migrated_before;
                }
                Err(ParkError::Timeout) => {
                    timed_out = true;
                    break;
                }
                // Another controller unparked or stopped it meanwhile: its
                // call decides now.
                Err(_) => {}
            }
        }
        if timed_out {
            let mut pool = self.lock_pool();
            for p in &pending {
                let _ = p.worker.unpark();
                if let Some(e) = pool.entries.iter_mut().find(|e| e.index == p.id) {
                    e.target = Target::Running;
                }
            }
            return Err(ControlError::Timeout);
        }
        Ok(report)
    }

    /// Parks every running worker `select` picks (not the last running one).
    pub(super) fn park_where(
        &self,
        kind: &'static str,
        deadline: Option<Instant>,
        select: impl Fn(&PoolEntry) -> bool,
        none: ControlError,
    ) -> Result<ParkReport, ControlError> {
        let pending = {
            let mut pool = self.lock_pool();
            self.check_open()?;
            let victims: Vec<usize> = (0..pool.entries.len())
                .filter(|&i| pool.entries[i].target == Target::Running && select(&pool.entries[i]))
                .collect();
            if victims.is_empty() {
                // Already parked there: nothing to do. Never there: an error.
                return if pool.entries.iter().any(&select) {
                    Ok(ParkReport::default())
                } else {
                    Err(none)
                };
            }
            if pool.running() == victims.len() {
                return Err(ControlError::LastWorker);
            }
            request_parks(&mut pool, &victims, Target::Parked)
        };
        let report = self.wait_parks(pending, deadline)?;
        self.hotplug_event(kind);
        Ok(report)
    }
}
