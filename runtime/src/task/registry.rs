//! Every live task, so that shutdown can reach the ones no queue holds (a
//! task waiting on a timer or a socket) and cancel them.
//!
//! Sharded: each spawn takes the spawning thread's next shard in turn, so
//! one thread's spawns spread over every shard and the workers completing
//! them (each locking its task's shard) rarely meet on one lock. Each entry
//! is the task's waker; at shutdown the registry is closed and every waker
//! woken: the schedule function, seeing the runtime closing, puts the task
//! in the injector, and shutdown drops it there (CLOSE-DRAIN in
//! `runtime/SCHEDULER.md`).

use super::meta::MetaRef;
use crate::loom::{AtomicBool, Mutex, MutexGuard, Ordering};
use slab::Slab;
#[cfg(not(loom))]
use std::cell::Cell;
use std::panic::Location;
#[cfg(not(loom))]
use std::sync::atomic::AtomicUsize;
use std::task::Waker;

/// A task's id: unique among the tasks one runtime ever spawned (ids are
/// never reused, unlike registry keys). Shown in long-poll logs and in the
/// culprits of slow parks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    /// The id as a number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

/// Ids of tasks refused at spawn (shutdown had begun): the top bit set, so
/// never the id of a registered task (those count spawns, far below 2^63).
#[cfg(not(loom))]
static REFUSED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

impl TaskId {
    /// A fresh id for a task refused at spawn, unique in the process.
    #[cfg(not(loom))]
    pub(crate) fn refused() -> TaskId {
        TaskId(1 << 63 | REFUSED.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }

    /// Under loom nothing process-wide may differ between executions: every
    /// refused task shares one id (only the models refuse tasks there).
    #[cfg(loom)]
    pub(crate) fn refused() -> TaskId {
        TaskId(1 << 63)
    }
}

impl std::fmt::Display for TaskId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// What the registry knows of a live task besides its waker.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TaskInfo {
    pub(crate) id: TaskId,
    /// Where it was spawned (`#[track_caller]` on the spawn functions).
    pub(crate) spawned_at: &'static Location<'static>,
}

/// One live task.
struct Entry {
    waker: Waker,
    // SAFETY (of `MetaRef::get`): `waker` holds a reference on the task
    // allocation whose header holds the metadata, so it lives as long as
    // this entry; it is read only while the entry is in the slab, under
    // the shard lock.
    meta: MetaRef,
    info: TaskInfo,
}

#[cfg(not(loom))]
const SHARDS: usize = 32;
/// Two shards under loom: fewer locks to explore, the same protocol.
#[cfg(loom)]
const SHARDS: usize = 2;

pub(crate) struct Registry {
    shards: Vec<Mutex<Shard>>,
    closed: AtomicBool,
}

/// One shard: its live tasks, and how many it ever registered (counted
/// under the lock already held, so no shared counter is contended).
#[derive(Default)]
struct Shard {
    tasks: Slab<Entry>,
    spawned: usize,
}

// This thread's next shard; starts at a different place per thread.
#[cfg(not(loom))]
std::thread_local! {
    static SHARD: Cell<usize> = const { Cell::new(usize::MAX) };
}

#[cfg(not(loom))]
static NEXT_START: AtomicUsize = AtomicUsize::new(0);

#[cfg(not(loom))]
fn next_shard() -> usize {
    SHARD
        .try_with(|s| {
            let mut shard = s.get();
            if shard == usize::MAX {
                shard = NEXT_START.fetch_add(7, std::sync::atomic::Ordering::Relaxed);
            }
            s.set(shard.wrapping_add(1));
            shard % SHARDS
        })
        .unwrap_or(0)
}

/// Under loom every execution must replay the same way for the same
/// schedule: no process-wide counter may leak from one execution into the
/// next, so every task takes shard 0.
#[cfg(loom)]
fn next_shard() -> usize {
    0
}

/// A task's tag: its registry key with its id's low 32 bits above.
fn tag_of(key: usize, id: TaskId) -> u64 {
    (key as u64 & 0xFFFF_FFFF) | (id.0 << 32)
}

/// The registry key inside a tag.
fn key_of(tag: u64) -> usize {
    (tag & 0xFFFF_FFFF) as usize
}

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            closed: AtomicBool::new(false),
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Shard> {
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Registers a task spawned at `spawned_at`: `make(tag, id)` builds it
    /// and returns its waker and its metadata. The tag is the task's
    /// registry key (low 32 bits) with the low 32 bits of its id above: a
    /// key is reused once its task is gone, a tag is not (until 2^32 more
    /// spawns on that shard), so a stale tag never reaches another task
    /// (see [`Self::info`], [`Self::wake`], [`Self::abort`]). `None` (and
    /// `make` not called) once the registry is closed.
    pub(crate) fn insert_with<R>(
        &self,
        spawned_at: &'static Location<'static>,
        make: impl FnOnce(u64, TaskId) -> (R, Waker, MetaRef),
    ) -> Option<R> {
        let shard = next_shard();
        let mut guard = self.lock(shard);
        // Checked under the shard lock: `close` drains each shard under its
        // lock after setting `closed`, so no entry can slip in after. (The
        // lock orders the two; Relaxed is enough.)
        if self.closed.load(Ordering::Relaxed) {
            return None;
        }
        let shard_state = &mut *guard;
        shard_state.spawned += 1;
        let entry = shard_state.tasks.vacant_entry();
        let key = entry.key() * SHARDS + shard;
        // Unique: this shard's count of spawns, interleaved with the others.
        let id = TaskId((shard_state.spawned * SHARDS + shard) as u64);
        let (made, waker, meta) = make(tag_of(key, id), id);
        entry.insert(Entry {
            waker,
            meta,
            info: TaskInfo { id, spawned_at },
        });
        Some(made)
    }

    /// The shard of `tag`, locked, with the index of its entry if the task
    /// with that tag is still there (never a newer task that reused the
    /// key).
    fn find(&self, tag: u64) -> (MutexGuard<'_, Shard>, Option<usize>) {
        let key = key_of(tag);
        let shard = self.lock(key % SHARDS);
        let index = shard
            .tasks
            .get(key / SHARDS)
            .filter(|e| tag_of(key, e.info.id) == tag)
            .map(|_| key / SHARDS);
        (shard, index)
    }

    /// The task with `tag` is gone (completed or dropped).
    pub(crate) fn remove(&self, tag: u64) {
        let (mut shard, index) = self.find(tag);
        let waker = index.map(|i| shard.tasks.remove(i));
        drop(shard);
        // Dropped outside the lock: it may free the task.
        drop(waker);
    }

    /// Wakes the task with `tag`, if it is still live (never a newer task
    /// that reused its key).
    pub(crate) fn wake(&self, tag: u64) {
        let (shard, index) = self.find(tag);
        let waker = index.map(|i| shard.tasks[i].waker.clone());
        drop(shard);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Aborts the task with `tag` if it is still live, as
    /// [`JoinHandle::abort`](super::JoinHandle::abort) does: sets its
    /// abort bit, then wakes it (ABORT-AT-POLL). A task that has left the
    /// registry is finished (its future is gone) or being cancelled by
    /// shutdown: nothing to do.
    pub(crate) fn abort(&self, tag: u64) {
        let (shard, index) = self.find(tag);
        let waker = index.map(|i| {
            let entry = &shard.tasks[i];
            entry.meta.get().abort();
            entry.waker.clone()
        });
        drop(shard);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Is the task with `tag` still registered (its future not yet
    /// dropped, and shutdown not yet past its cancellation)?
    pub(crate) fn contains(&self, tag: u64) -> bool {
        self.find(tag).1.is_some()
    }

    /// Closes the registry and wakes every live task (shutdown).
    pub(crate) fn close_and_wake_all(&self) {
        // Ordered before each shard's drain by that shard's lock.
        self.closed.store(true, Ordering::Relaxed);
        for shard in 0..SHARDS {
            let wakers: Vec<Waker> = self.lock(shard).tasks.drain().map(|e| e.waker).collect();
            for waker in wakers {
                waker.wake();
            }
        }
    }

    /// The id and spawn location of the live task with `tag` (`None` once
    /// it is gone, even if a newer task reused its key).
    pub(crate) fn info(&self, tag: u64) -> Option<TaskInfo> {
        let (shard, index) = self.find(tag);
        index.map(|i| shard.tasks[i].info)
    }

    /// (ever registered, still live), each shard read under its lock once.
    pub(crate) fn counts(&self) -> (usize, usize) {
        (0..SHARDS).fold((0, 0), |(spawned, live), s| {
            let shard = self.lock(s);
            (spawned + shard.spawned, live + shard.tasks.len())
        })
    }

    /// Tasks spawned and not yet completed or dropped (locks each shard in
    /// turn).
    pub(crate) fn live(&self) -> usize {
        (0..SHARDS).map(|s| self.lock(s).tasks.len()).sum()
    }
}
