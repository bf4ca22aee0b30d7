//! Parks: decided and requested under the pool lock, waited for outside
//! it, settled under it again. A call withdraws on timeout only the parks
//! it still owns (OWNED-ROLLBACK in CONTROLLER.md).

use super::pool::{CallId, Plan, Pool, PoolEntry, Sharer};
use super::{ControlError, Controller, ParkReport};
use crate::scheduler::{PollCulprit, PollSnapshot, Slot};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};
use unplug_worker::{ParkError, ParkTicket, ParkTimings, Worker, WorkerState};

/// A park this call will wait for.
pub(super) struct Wait {
    pub(super) id: usize,
    pub(super) worker: Arc<Worker<()>>,
    slot: Arc<Slot>,
    ticket: ParkTicket,
    migrated_before: u64,
    /// The poll the worker was inside when the park was requested.
    snap: Option<PollSnapshot>,
}

/// What a call decided under the lock: parks to wait for, and parks it
/// requested but will not wait for (deferred).
#[derive(Default)]
pub(super) struct Decided {
    pub(super) waits: Vec<Wait>,
    pub(super) deferred: Vec<usize>,
    /// The calling worker's id, if the call came from a worker thread that
    /// now waits (its `waiting` mark is cleared when the call settles).
    pub(super) caller: Option<usize>,
    /// The CPU of an `unplug_cpu` call, counted as being unplugged since it
    /// requested its parks (UNPLUG-MARKS-AT-REQUEST in CONTROLLER.md).
    pub(super) unplugging: Option<usize>,
}

impl Pool {
    /// Requests the park of `entries[at]` (planned `Running`) for `call`,
    /// or with no owner if `owned` is false. `None` if the worker is already
    /// stopping (it will never run again either way).
    pub(super) fn request_park(
        &mut self,
        at: usize,
        call: CallId,
        owned: bool,
    ) -> Option<ParkTicket> {
        let e = &mut self.entries[at];
        match e.worker.request_park() {
            Ok(ticket) => {
                e.plan = Plan::Parking {
                    ticket,
                    owner: owned.then_some(call),
                };
                Some(ticket)
            }
            Err(_) => {
                e.plan = Plan::Failed;
                None
            }
        }
    }

    /// May the caller (worker `caller`, or a plain thread if `None`) block
    /// until `entries[at]` parks or stops? Not its own worker (busy running
    /// the caller), and, from a worker thread, not a worker that is itself
    /// blocked in a controller call (DEADLOCK-FREE).
    pub(super) fn may_wait_for(&self, caller: Option<usize>, at: usize) -> bool {
        match caller {
            None => true,
            Some(me) => me != at && !self.entries[at].waiting,
        }
    }
}

impl Wait {
    pub(super) fn new(e: &PoolEntry, ticket: ParkTicket, snap: Option<PollSnapshot>) -> Self {
        Wait {
            id: e.index,
            worker: e.worker.clone(),
            slot: e.slot.clone(),
            ticket,
            migrated_before: e.slot.migrated.load(Relaxed),
            snap,
        }
    }
}

/// How long an unowned wait (`WaitFor::UntilGivenUp`) waits between two
/// looks at whether it should give up.
const GIVE_UP_LOOK: Duration = Duration::from_millis(10);

/// How a park call waits.
#[derive(Clone, Copy)]
pub(crate) enum WaitFor<'a> {
    /// Until the parks complete or the deadline passes: the call owns the
    /// parks it requests and withdraws them on a timeout (OWNED-ROLLBACK).
    Deadline(Option<Instant>),
    /// Until the parks complete or `give_up` says so (looked at every
    /// [`GIVE_UP_LOOK`]): the parks are requested unowned, like deferred
    /// ones, so giving up leaves them pending and withdraws nothing (the
    /// CPU follower, FOLLOW-GIVES-UP in CONTROLLER.md).
    UntilGivenUp(&'a dyn Fn() -> bool),
}

impl Controller {
    /// Waits for the parks of `decided` (outside the pool lock), then
    /// settles them under it: the ones this call owns lose their owner on
    /// success; on a timeout the ones it still owns are withdrawn and run
    /// again, and no other call's park is touched. An unowned wait that
    /// gives up reports the parks left pending as deferred.
    pub(super) fn wait_parks(
        &self,
        call: CallId,
        decided: Decided,
        wait_for: WaitFor<'_>,
    ) -> Result<ParkReport, ControlError> {
        let mut report = ParkReport {
            deferred: decided.deferred,
            ..Default::default()
        };
        let mut timed_out = false;
        let threshold = self.scheduler.hooks.long_poll_threshold;
        // Who held each worker when its park was asked for (looked up now,
        // outside the pool lock: the poll may end while we wait).
        let held_by: Vec<Option<PollCulprit>> = decided
            .waits
            .iter()
            .map(|w| {
                w.snap
                    .as_ref()
                    .map(|s| self.scheduler.describe(s, Duration::ZERO))
            })
            .collect();
        let mut blocked_by = Vec::new();
        // Parks this call saw complete, with their timings.
        let mut measured = Vec::new();
        // Which of the waits this call saw complete (OWNED-HANDOVER: a
        // call that saw a park complete leaves it standing).
        let mut saw_parked = vec![false; decided.waits.len()];
        for (i, w) in decided.waits.iter().enumerate() {
            // Shared: a timeout here leaves the request pending; the
            // settling below withdraws exactly the parks this call owns
            // (OWNED-ROLLBACK), and no other.
            let waited = match wait_for {
                WaitFor::Deadline(deadline) => w.worker.wait_park_shared(w.ticket, deadline),
                WaitFor::UntilGivenUp(give_up) => loop {
                    let look = Instant::now() + GIVE_UP_LOOK;
                    match w.worker.wait_park_shared(w.ticket, Some(look)) {
                        Err(ParkError::Timeout) if !give_up() => continue,
                        other => break other,
                    }
                },
            };
            match waited {
                // Given up: the park stays requested (unowned) and completes
                // when the worker's poll ends.
                Err(ParkError::Timeout) if matches!(wait_for, WaitFor::UntilGivenUp(_)) => {
                    report.deferred.push(w.id);
                }
                Ok(timings) => {
                    // A park slowed past the threshold names the poll it
                    // waited on.
                    if let (Some(t), Some(c)) = (threshold, &held_by[i]) {
                        if timings.to_parked >= t {
                            report.slow_polls.push(PollCulprit {
                                running_for: timings.to_parked,
                                ..c.clone()
                            });
                        }
                    }
                    measured.push((w.id, timings));
                    saw_parked[i] = true;
                    report.parked.push(w.id);
                    report.park_latencies.push(timings);
                    report.tasks_migrated += w.slot.migrated.load(Relaxed) - w.migrated_before;
                }
                Err(ParkError::Timeout) => {
                    timed_out = true;
                    // Every worker of this call still inside a poll: the
                    // one it waited on since the request, or a newer one.
                    for w in &decided.waits[i..] {
                        let culprit = w
                            .snap
                            .as_ref()
                            .and_then(|s| self.scheduler.culprit_if_still(s))
                            .or_else(|| {
                                let now = self.scheduler.poll_snapshot(w.id)?;
                                self.scheduler.culprit_if_still(&now)
                            });
                        blocked_by.extend(culprit);
                    }
                    break;
                }
                // Withdrawn by another call (an unpark, a stop): that call
                // decided later, and its decision stands.
                Err(_) => report.superseded.push(w.id),
            }
        }
        let mut pool = self.lock_pool();
        if let Some(me) = decided.caller.and_then(|id| pool.position(id)) {
            pool.entries[me].waiting = false;
        }
        // PARK-COUNT: a park several calls waited for (SHARED-PARK) has
        // its timings recorded by the first of them to settle.
        measured.retain(|(id, timings): &(usize, ParkTimings)| {
            let Some(at) = pool.position(*id) else {
                return false;
            };
            let e = &mut pool.entries[at];
            let first = e.timed_generation != Some(timings.generation);
            e.timed_generation = Some(timings.generation);
            first
        });
        for (i, w) in decided.waits.iter().enumerate() {
            let Some(at) = pool.position(w.id) else {
                continue;
            };
            let e = &mut pool.entries[at];
            // This call no longer waits on the park (if it shared it).
            e.sharers.retain(|s| s.call != call);
            let generation = w.ticket.generation();
            let Plan::Parking { ticket, owner } = e.plan else {
                continue;
            };
            if ticket.generation() != generation {
                continue;
            }
            if !timed_out {
                // Completed for this call: nobody withdraws it any more,
                // not even an owner that times out after this.
                if saw_parked[i] || owner == Some(call) {
                    e.plan = Plan::Parking {
                        ticket,
                        owner: None,
                    };
                }
                continue;
            }
            // OWNED-ROLLBACK: a timed-out call withdraws only a park it
            // requested (or was handed), of the same generation, still
            // owned by it (completed or not: nothing half-applied).
            if owner != Some(call) {
                continue;
            }
            // OWNED-HANDOVER: if another call still waits for this park, it
            // stands, owned by the first such call that may own it (which
            // withdraws it if it times out in turn), or by nobody if only
            // unowned waits (the CPU follower's) remain.
            let mut heirs = e
                .sharers
                .iter()
                .filter(|s| s.generation == generation)
                .peekable();
            if heirs.peek().is_some() {
                let heir = heirs.find(|s| s.may_own).map(|s| s.call);
                e.plan = Plan::Parking {
                    ticket,
                    owner: heir,
                };
            } else {
                // No other call waits on it: this unpark withdraws nothing
                // of anyone else's.
                let _ = e.worker.unpark();
                e.plan = e.unparked_plan();
            }
        }
        // UNPLUG-MARKS-AT-REQUEST: the call is no longer pending. One that
        // completed leaves the CPU unplugged unless a later call (a plug,
        // an unpark) already runs a worker there; one that timed out leaves
        // the mark as it found it, as if it had never been made.
        if let Some(cpu) = decided.unplugging {
            let runs_there = pool
                .entries
                .iter()
                .any(|e| e.cpu == Some(cpu) && e.counts_as_running());
            pool.unplugged.end(cpu, !timed_out, runs_there);
        }
        drop(pool);
        if let Some(events) = &self.events {
            for (id, timings) in &measured {
                events.parked(*id, timings);
            }
        }
        if timed_out {
            Err(ControlError::Timeout { blocked_by })
        } else {
            Ok(report)
        }
    }

    /// Parks every worker `select` picks, never the last running one. A
    /// worker already parking (another call's request) is waited for too.
    /// With `unplugging`, that CPU counts as unplugged from the requests on,
    /// under the same lock (UNPLUG-MARKS-AT-REQUEST).
    pub(super) fn park_where(
        &self,
        kind: &'static str,
        wait_for: WaitFor<'_>,
        select: impl Fn(&PoolEntry) -> bool,
        none: ControlError,
        unplugging: Option<usize>,
    ) -> Result<ParkReport, ControlError> {
        let owns = matches!(wait_for, WaitFor::Deadline(_));
        let (call, decided) = {
            let mut pool = self.lock_pool();
            self.check_open()?;
            let call = pool.new_call();
            let chosen: Vec<usize> = (0..pool.entries.len())
                .filter(|&i| select(&pool.entries[i]))
                .collect();
            if chosen.is_empty() {
                return Err(none);
            }
            if chosen.iter().all(|&i| pool.entries[i].gone()) {
                // Being stopped by a resize, or ended: it will not run again.
                return Err(match none {
                    ControlError::UnknownWorker(id) => ControlError::WorkerGone(id),
                    other => other,
                });
            }
            let fresh = chosen
                .iter()
                .filter(|&&i| pool.entries[i].counts_as_running())
                .count();
            if fresh > 0 && pool.running() == fresh {
                return Err(ControlError::LastWorker);
            }
            let caller = pool.position_of_thread(std::thread::current().id());
            let mut decided = Decided::default();
            for &at in &chosen {
                let wait = pool.may_wait_for(caller, at);
                let ticket = match pool.entries[at].plan {
                    _ if pool.entries[at].gone() => None,
                    // A starting worker parks once its start hook returned
                    // (the confirmation leaves a park requested meanwhile).
                    Plan::Starting => pool.request_park(at, call, wait && owns),
                    Plan::Running if pool.entries[at].counts_as_running() => {
                        pool.request_park(at, call, wait && owns)
                    }
                    // Parked already and settled: nothing to do.
                    Plan::Parking { owner: None, .. }
                        if pool.entries[at].worker.state() == WorkerState::Parked =>
                    {
                        None
                    }
                    // P8: a park another call requested (or deferred) is
                    // shared: waited for, withdrawn by this call only if
                    // its owner times out and hands it over
                    // (OWNED-HANDOVER).
                    Plan::Parking { ticket, .. } => {
                        if wait {
                            pool.entries[at].sharers.push(Sharer {
                                call,
                                generation: ticket.generation(),
                                may_own: owns,
                            });
                        } else {
                            // DEFERRED-STANDS: a call that defers a park
                            // returns `Ok` promising it completes when the
                            // poll ends; nobody withdraws it on a timeout
                            // any more, as for a park it deferred itself.
                            pool.entries[at].plan = Plan::Parking {
                                ticket,
                                owner: None,
                            };
                        }
                        Some(ticket)
                    }
                    _ => None,
                };
                let Some(ticket) = ticket else { continue };
                if wait {
                    let snap = self.scheduler.poll_snapshot(pool.entries[at].index);
                    decided
                        .waits
                        .push(Wait::new(&pool.entries[at], ticket, snap));
                } else {
                    decided.deferred.push(pool.entries[at].index);
                }
            }
            if let Some(me) = caller.filter(|_| !decided.waits.is_empty()) {
                pool.entries[me].waiting = true;
                decided.caller = Some(pool.entries[me].index);
            }
            // UNPLUG-MARKS-AT-REQUEST: from the moment its parks are
            // requested, a resize neither starts a worker on the CPU nor
            // brings its parked worker back (it used to until the parks had
            // completed, and the unplug then returned beside a worker
            // running there).
            if let Some(cpu) = unplugging {
                pool.unplugged.begin(cpu);
                decided.unplugging = Some(cpu);
            }
            (call, decided)
        };
        let report = self.wait_parks(call, decided, wait_for)?;
        if !report.parked.is_empty() || !report.deferred.is_empty() {
            self.hotplug_event(kind);
        }
        Ok(report)
    }
}
