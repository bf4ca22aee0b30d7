//! SHARD-GIVES-BACK: once a burst of tasks that each waited (on a channel,
//! a timer, a socket) has finished, the task registry gives its memory
//! back. Before, its shards kept their peak size for good: 200,000 waiting
//! tasks left 8.4 MB (41 bytes a task) held after `live_tasks()` was back
//! to 0 (a red team of the task API). Alone in its binary: it counts every
//! allocation of the process.
#![cfg(not(loom))]

mod support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use std::sync::Arc;
use support::wait_for;
use unplug::{Handle, Runtime};

/// Counts the bytes allocated and not yet freed.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` unchanged; only a counter is
// kept beside it.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(new_size, Relaxed);
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// `n` tasks that each wait on a channel until all have started, then
/// finish; returns once every one was joined and none is live.
fn burst_of_waiting_tasks(h: &Handle, n: usize) {
    let (tx, _) = tokio::sync::broadcast::channel::<()>(1);
    let started = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let mut rx = tx.subscribe();
            let started = started.clone();
            h.spawn(async move {
                started.fetch_add(1, SeqCst);
                let _ = rx.recv().await;
            })
        })
        .collect();
    wait_for("every task to start waiting", || started.load(SeqCst) == n);
    tx.send(()).unwrap();
    for t in tasks {
        h.block_on(t).unwrap();
    }
    wait_for("no task live", || h.live_tasks() == 0);
}

#[test]
fn the_registry_gives_its_memory_back_after_a_burst_of_waiting_tasks() {
    let rt = Runtime::builder().workers(2).build().unwrap();
    let h = rt.handle().clone();
    burst_of_waiting_tasks(&h, 1_000);
    let base = LIVE.load(Relaxed) as i64;
    burst_of_waiting_tasks(&h, 200_000);
    let grown = LIVE.load(Relaxed) as i64 - base;
    eprintln!("held after 200,000 waiting tasks finished: {grown} bytes");
    assert!(
        grown < 1_000_000,
        "{grown} bytes ({} a task) still held after a burst of 200,000 waiting tasks, \
         with no task live",
        grown / 200_000
    );
}
