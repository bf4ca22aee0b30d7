//! The body every worker thread runs: the P1 loop of the worker crate with
//! the scheduler inside.

use crate::context::{self, Local};
use crate::scheduler::{Shared, Slot, Task};
use crossbeam_deque::Worker as LocalQueue;
use std::rc::Rc;
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
        // P7: hand every queued task to the other workers before `parked`
        // completes (or cancel it, at shutdown).
        local.migrate();
        if ctx.should_stop() {
            break;
        }
        ctx.parkme(); // P1: unconditionally after leaving for a park
    }
    if let Some(hook) = &shared.hooks.on_stop {
        hook();
    }
}

/// The idle sleep: register in the idle set, then the worker crate's idle
/// wait re-checks for work or a hand-delivered wake-up (P2).
fn sleep(ctx: &WorkerContext<'_>, local: &Local) {
    let shared = &local.shared;
    shared.idle.register(local.index);
    let wake = ctx.idle_wait(|| !shared.idle.is_registered(local.index) || shared.has_work());
    let handed = !shared.idle.unregister(local.index);
    if handed && wake != Wake::Work {
        // Handed a wake-up we will not use (we are parking or stopping):
        // pass it on so the work it was for is not stranded.
        shared.wake_one();
    }
}
