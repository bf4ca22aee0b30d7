//! Every task that waits where no queue holds it (on a timer, a socket, a
//! channel), so that shutdown can reach it and cancel it; and the counts of
//! tasks spawned and finished.
//!
//! REGISTER-ON-PENDING (`runtime/SCHEDULER.md`): a task enters the registry
//! when its poll first returns `Pending`, not at spawn. Until then it is
//! always in a queue or inside a poll, where shutdown's drains reach it, so
//! a task that completes in its first poll never touches a shard lock: the
//! registry had been a third of a remote spawn's cost on the spawning thread
//! (`perf` of `spawn_many_remote_idle`: the shard lock, the slab entry and
//! the lock's contention with the workers removing entries). An
//! [`AbortHandle`](super::AbortHandle) registers its task at once (without
//! a waker), so that it can find the task later.
//!
//! Sharded by task id, so one thread's spawns spread over every shard and
//! the workers completing them (each locking its task's shard) rarely meet
//! on one lock. Each entry holds the task's waker (once the task waited);
//! at shutdown the registry is closed and every waker woken: the schedule
//! function, seeing the runtime closing, puts the task in the injector,
//! and shutdown drops it there (CLOSE-DRAIN in `runtime/SCHEDULER.md`).

use super::words::{TaskWords, WordsRef, GONE, UNREGISTERED};
use crate::loom::{AtomicBool, Mutex, MutexGuard, Ordering};
use slab::Slab;
#[cfg(not(loom))]
use std::cell::Cell;
use std::sync::atomic::AtomicU64;
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

    /// The id whose number is `n` (read back from a worker's slot).
    pub(crate) fn from_u64(n: u64) -> TaskId {
        TaskId(n)
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

/// One registered task.
struct Entry {
    /// Its waker, once it waited (`None`: registered by an abort handle
    /// before its first `Pending`; it is then in a queue or a poll).
    waker: Option<Waker>,
    // SAFETY (of `WordsRef::get`): the entry is removed by the task's own
    // future's `Drop` (`Tracked`), before async-task frees the header
    // holding the words, and read only under the shard lock.
    words: WordsRef,
    /// The task's id: a key is reused once its task is gone, an id never,
    /// so a stale key never reaches a newer task.
    id: TaskId,
}

#[cfg(not(loom))]
const SHARDS: usize = 32;
/// Two shards under loom: fewer locks to explore, the same protocol.
#[cfg(loom)]
const SHARDS: usize = 2;

/// SHARD-GIVES-BACK: the entries an empty shard keeps room for; above it,
/// an empty shard frees its slab (32 bytes an entry). Before, a burst of
/// 200,000 waiting tasks left 8.4 MB held for good after every task had
/// finished (`tests/registry_memory.rs`).
const SHARD_KEEP: usize = 256;

/// Spawn and finish counters, one pair per home of a thread (so a thread
/// counting rarely shares a cache line with another).
#[cfg(not(loom))]
const COUNTERS: usize = 16;
#[cfg(loom)]
const COUNTERS: usize = 1;

/// A pair of counters on a cache line of its own. Counts only (std
/// atomics, Relaxed): they publish nothing. A task's finish is counted in
/// its future's `Drop`, which async-task orders before the task's output
/// reaches its join handle, so once every task was joined the counts are
/// exact.
#[derive(Default)]
#[repr(align(128))]
struct Counts {
    spawned: AtomicU64,
    finished: AtomicU64,
}

pub(crate) struct Registry {
    shards: Vec<Mutex<Slab<Entry>>>,
    closed: AtomicBool,
    counts: Vec<Counts>,
    /// Ids under loom: nothing process-wide may differ between executions,
    /// so each registry (one per execution) counts its own.
    #[cfg(loom)]
    next_id: AtomicU64,
}

/// What [`Registry::register`] found.
pub(crate) enum Registered {
    /// The task is in the registry under this key.
    Key(u64),
    /// Its future is already gone.
    Gone,
    /// Shutdown closed the registry.
    Closed,
}

// This thread's home among the counters: one per thread, round-robin.
#[cfg(not(loom))]
std::thread_local! {
    static HOME: Cell<usize> = const { Cell::new(usize::MAX) };
    /// This thread's block of ids: next, end.
    static IDS: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

#[cfg(not(loom))]
fn home() -> usize {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    HOME.try_with(|h| {
        if h.get() == usize::MAX {
            h.set(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % COUNTERS);
        }
        h.get()
    })
    .unwrap_or(0)
}

#[cfg(loom)]
fn home() -> usize {
    0
}

/// Ids are handed to threads in blocks this long, so spawning threads do
/// not share a counter's cache line.
#[cfg(not(loom))]
const ID_BLOCK: u64 = 1024;

impl Registry {
    pub(crate) fn new() -> Self {
        Registry {
            shards: (0..SHARDS).map(|_| Mutex::new(Slab::new())).collect(),
            closed: AtomicBool::new(false),
            counts: (0..COUNTERS).map(|_| Counts::default()).collect(),
            #[cfg(loom)]
            next_id: AtomicU64::new(1),
        }
    }

    fn lock(&self, shard: usize) -> MutexGuard<'_, Slab<Entry>> {
        self.shards[shard].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new task: its id (unique in the process, so in this runtime; from
    /// this thread's block), counted as spawned.
    pub(crate) fn spawned(&self) -> TaskId {
        use std::sync::atomic::Ordering::Relaxed;
        self.counts[home()].spawned.fetch_add(1, Relaxed);
        self.next_id()
    }

    #[cfg(not(loom))]
    fn next_id(&self) -> TaskId {
        use std::sync::atomic::Ordering::Relaxed;
        static NEXT_BLOCK: AtomicU64 = AtomicU64::new(1);
        let from_block = IDS.try_with(|ids| {
            let (mut next, mut end) = ids.get();
            if next == end {
                next = NEXT_BLOCK.fetch_add(ID_BLOCK, Relaxed);
                end = next + ID_BLOCK;
            }
            ids.set((next + 1, end));
            next
        });
        // A thread being torn down has no block: one id on its own.
        TaskId(from_block.unwrap_or_else(|_| NEXT_BLOCK.fetch_add(1, Relaxed)))
    }

    #[cfg(loom)]
    fn next_id(&self) -> TaskId {
        TaskId(
            self.next_id
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        )
    }

    /// A task's future was dropped (it completed, was cancelled or torn
    /// down): counted, and its entry, if it had one (`key`), removed.
    pub(crate) fn finished(&self, key: Option<u32>) {
        self.counts[home()]
            .finished
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let Some(key) = key else { return };
        let mut shard = self.lock(key as usize % SHARDS);
        // `try_remove`: shutdown may have drained the entry already.
        let entry = shard.try_remove(key as usize / SHARDS);
        // SHARD-GIVES-BACK: a shard a burst of waiting tasks grew gives its
        // memory back once it is empty again. Safe to start afresh: an
        // empty shard has no entry, so no tag holds one of its keys (the
        // tag goes GONE before its key is removed), and every lookup by a
        // stale key checks the task's id.
        let released = (shard.is_empty() && shard.capacity() > SHARD_KEEP)
            .then(|| std::mem::take(&mut *shard));
        drop(shard);
        // Dropped outside the lock (the entry's waker is a reference on
        // the task's allocation).
        drop(entry);
        drop(released);
    }

    /// Puts task `id`, whose words are `words`, in the registry, with
    /// `waker` if given (or adds `waker` to its entry if it is there
    /// without one). The caller keeps the task's allocation alive.
    ///
    /// The tag's CAS races only the future's `Drop`, which swaps in
    /// [`GONE`] without the lock: every other change of the tag and of the
    /// entries happens under the shard lock of the task's id.
    pub(crate) fn register(
        &self,
        words: &TaskWords,
        id: TaskId,
        waker: Option<&Waker>,
    ) -> Registered {
        let shard = (id.as_u64() % SHARDS as u64) as usize;
        let mut guard = self.lock(shard);
        // Checked under the shard lock: `close_and_wake_all` drains each
        // shard under its lock after setting `closed`, so no entry can slip
        // in after. (The lock orders the two; Relaxed is enough.)
        if self.closed.load(Ordering::Relaxed) {
            return Registered::Closed;
        }
        match words.tag().load(Ordering::Acquire) {
            GONE => Registered::Gone,
            UNREGISTERED => {
                let entry = guard.vacant_entry();
                let key = (entry.key() * SHARDS + shard) as u32;
                debug_assert!(key < GONE, "registry keys fit below the tag's markers");
                // AcqRel: races the drop's swap (see `TaskWords::take_key_at_drop`).
                match words.tag().compare_exchange(
                    UNREGISTERED,
                    key,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        if waker.is_some() {
                            words.mark_waker_registered();
                        }
                        entry.insert(Entry {
                            waker: waker.cloned(),
                            words: WordsRef::new(words),
                            id,
                        });
                        Registered::Key(key.into())
                    }
                    // The only other writer: the future's drop.
                    Err(_) => Registered::Gone,
                }
            }
            key => {
                // The entry is there: its removal follows the swap to GONE
                // and needs this lock.
                if let (Some(waker), Some(entry)) = (waker, guard.get_mut(key as usize / SHARDS)) {
                    if entry.waker.is_none() {
                        entry.waker = Some(waker.clone());
                        words.mark_waker_registered();
                    }
                }
                Registered::Key(key.into())
            }
        }
    }

    /// The entry of `key` if it is still the task with `id`.
    fn find(&self, key: u64, id: TaskId) -> (MutexGuard<'_, Slab<Entry>>, Option<usize>) {
        let shard = self.lock(key as usize % SHARDS);
        let index = key as usize / SHARDS;
        let found = shard.get(index).is_some_and(|e| e.id == id);
        (shard, found.then_some(index))
    }

    /// [`JoinHandle::abort`](super::JoinHandle::abort): sets the task's
    /// abort bit, then wakes it if it waited.
    ///
    /// ABORT-REGISTER: the bit is set before this takes the shard lock of
    /// the task's id, and a registration runs under that same lock and
    /// looks at the bit after it. Either the registration came first (this
    /// finds the entry and its waker) or this came first (the registrant
    /// sees the bit and wakes the task itself). A task not registered has
    /// never waited: it is in a queue or in its first poll, and its next
    /// poll start or its registration sees the bit.
    pub(crate) fn abort_task(&self, words: &TaskWords, id: TaskId) {
        words.abort();
        let shard = self.lock((id.as_u64() % SHARDS as u64) as usize);
        let waker = match words.tag().load(Ordering::Acquire) {
            UNREGISTERED | GONE => None,
            key => shard
                .get(key as usize / SHARDS)
                .filter(|e| e.id == id)
                .and_then(|e| e.waker.clone()),
        };
        drop(shard);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Aborts the task `id` at `key` if it is still live, as
    /// [`JoinHandle::abort`](super::JoinHandle::abort) does: sets its
    /// abort bit, then wakes it (ABORT-AT-POLL). A task that has left the
    /// registry is finished (its future is gone) or being cancelled by
    /// shutdown: nothing to do.
    pub(crate) fn abort(&self, key: u64, id: TaskId) {
        let (shard, index) = self.find(key, id);
        let waker = index.and_then(|i| {
            let entry = &shard[i];
            entry.words.get().abort();
            entry.waker.clone()
        });
        drop(shard);
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Is the task `id` still at `key` (its future not yet dropped, and
    /// shutdown not yet past its cancellation)?
    pub(crate) fn contains(&self, key: u64, id: TaskId) -> bool {
        self.find(key, id).1.is_some()
    }

    /// Closes the registry and wakes every task that waited (shutdown).
    /// The others are in queues, which shutdown drains.
    pub(crate) fn close_and_wake_all(&self) {
        // Ordered before each shard's drain by that shard's lock.
        self.closed.store(true, Ordering::Relaxed);
        for shard in 0..SHARDS {
            let wakers: Vec<Waker> = self.lock(shard).drain().filter_map(|e| e.waker).collect();
            for waker in wakers {
                waker.wake();
            }
        }
    }

    /// (ever spawned, still live). Exact once the tasks counted were
    /// joined (see [`Counts`]); while tasks are in flight the sums are
    /// read at slightly different moments (finishes first, and the live
    /// count saturates at zero).
    pub(crate) fn counts(&self) -> (usize, usize) {
        use std::sync::atomic::Ordering::Relaxed;
        let finished: u64 = self.counts.iter().map(|c| c.finished.load(Relaxed)).sum();
        let spawned: u64 = self.counts.iter().map(|c| c.spawned.load(Relaxed)).sum();
        (spawned as usize, spawned.saturating_sub(finished) as usize)
    }

    /// Tasks spawned and not yet completed or dropped.
    pub(crate) fn live(&self) -> usize {
        self.counts().1
    }
}
