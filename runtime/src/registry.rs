//! Every live task, so that shutdown can reach the ones no queue holds (a
//! task waiting on a timer or a socket) and cancel them.
//!
//! Sharded: a spawn locks the shard of the spawning thread, a completion
//! the shard of the task. Each entry is the task's waker; at shutdown the
//! registry is closed and every waker woken, and the schedule function,
//! seeing the runtime closing, drops the task.

use slab::Slab;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::task::Waker;

const SHARDS: usize = 16;

pub(crate) struct Registry {
    shards: Vec<Mutex<Slab<Waker>>>,
    closed: AtomicBool,
    live: AtomicUsize,
    spawned: AtomicUsize,
}

thread_local! {
    /// This thread's shard, chosen round-robin the first time it spawns.
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

fn my_shard() -> usize {
    SHARD
        .try_with(|s| {
            if s.get() == usize::MAX {
                s.set(NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS);
            }
            s.get()
        })
        .unwrap_or(0)
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(Slab::new())).collect(),
            closed: AtomicBool::new(false),
            live: AtomicUsize::new(0),
            spawned: AtomicUsize::new(0),
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Slab<Waker>> {
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a task: `make(key)` builds it and returns its waker. `None`
    /// (and `make` not called) once the registry is closed.
    pub(crate) fn insert_with<R>(&self, make: impl FnOnce(usize) -> (R, Waker)) -> Option<R> {
        let shard = my_shard();
        let mut slab = self.lock(shard);
        // Checked under the shard lock: `close` drains each shard under its
        // lock after setting `closed`, so no entry can slip in after.
        if self.closed.load(Ordering::Acquire) {
            return None;
        }
        let entry = slab.vacant_entry();
        let key = entry.key() * SHARDS + shard;
        let (made, waker) = make(key);
        entry.insert(waker);
        self.live.fetch_add(1, Ordering::Relaxed);
        self.spawned.fetch_add(1, Ordering::Relaxed);
        Some(made)
    }

    /// The task with `key` is gone (completed or dropped).
    pub(crate) fn remove(&self, key: usize) {
        let waker = self.lock(key % SHARDS).try_remove(key / SHARDS);
        if waker.is_some() {
            self.live.fetch_sub(1, Ordering::Relaxed);
        }
        // Dropped outside the lock: it may free the task.
        drop(waker);
    }

    /// Wakes the task with `key`, if it is still live.
    pub(crate) fn wake(&self, key: usize) {
        let waker = self.lock(key % SHARDS).get(key / SHARDS).cloned();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Closes the registry and wakes every live task (shutdown).
    pub(crate) fn close_and_wake_all(&self) {
        self.closed.store(true, Ordering::SeqCst);
        for shard in 0..SHARDS {
            let wakers: Vec<Waker> = self.lock(shard).drain().collect();
            self.live.fetch_sub(wakers.len(), Ordering::Relaxed);
            for waker in wakers {
                waker.wake();
            }
        }
    }

    /// Tasks ever registered.
    pub(crate) fn spawned(&self) -> usize {
        self.spawned.load(Ordering::Relaxed)
    }

    /// Tasks spawned and not yet completed or dropped.
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Relaxed)
    }
}
