//! The body every worker thread runs: the P1 loop of the worker crate with
//! the scheduler inside.

use crate::context::{self, Local};
use crate::scheduler::{Shared, Slot, Task};
use crossbeam_deque::Worker as LocalQueue;
use std::rc::Rc;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use unplug_worker::{Wake, WorkerContext};

pub(crate) fn run(
    ctx: &WorkerContext<'_>,
    shared: Arc<Shared>,
    index: usize,
    slot: Arc<Slot>,
    queue: LocalQueue<Task>,
) {
    // tokio's I/O, timers and blocking pool are usable from every task.
    let _tokio = shared.tokio.enter();
    let local = Rc::new(Local::new(shared.clone(), index, slot, queue));
    let _worker = context::enter_worker(local.clone());
    if let Some(hook) = &shared.hooks.on_start {
        hook();
    }
    loop {
        // P1: leave only for a park or a stop.
        while ctx.keep_running() {
            if let Some(task) = local.next_task().or_else(|| local.steal()) {
                local.run(task);
                continue;
            }
            sleep(ctx, &local);
        }
        // A search we were woken for ends here; pass the wake-up on.
        let mut searching = local.searching.replace(false);
        if shared.idle.found_work(&mut searching) {
            shared.wake_one();
        }
        // P7: hand every queued task to the other workers before `parked`
        // completes (or cancel it, at shutdown).
        local.migrate();
        if ctx.should_stop() {
            break;
        }
        // P1: unconditionally after leaving for a park.
        let unpark_latency = ctx.parkme();
        if let (Some(latency), false) = (unpark_latency, ctx.should_stop()) {
            local
                .slot
                .last_unpark_ns
                .store(latency.as_nanos() as u64, Relaxed);
            local.slot.resumes.fetch_add(1, Relaxed);
            if let Some(m) = &local.slot.metrics {
                m.unpark_latency.record(latency);
            }
        }
    }
    if let Some(hook) = &shared.hooks.on_stop {
        hook();
    }
}

/// The idle sleep: the worker crate's `IdleSet::sleep` (register, re-check
/// work and a hand-delivered wake-up, sleep, pass on an unused wake-up), the
/// path the loom models in `worker/tests/loom_idle_set.rs` check.
fn sleep(ctx: &WorkerContext<'_>, local: &Local) {
    let shared = &local.shared;
    local.slot.idle_sleeps.fetch_add(1, Relaxed);
    let mut searching = local.searching.get();
    let wake = shared.idle.sleep(
        ctx,
        local.index,
        &mut searching,
        || shared.has_work(),
        || shared.wake_one(),
    );
    local.searching.set(searching);
    if wake == Wake::Work {
        local.slot.wakeups.fetch_add(1, Relaxed);
    }
}
