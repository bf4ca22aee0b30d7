//! SET-GIVES-BACK: an emptied `JoinSet` frees what its largest burst
//! allocated (live heap counted by a counting allocator, alone in its
//! binary). Found by a red team (2026-12-04): after 1,000,000 tasks joined,
//! the empty set still held 67.4 MB for its whole life (tokio's frees each
//! entry as it is joined).
#![cfg(not(loom))]

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering::Relaxed};
use std::time::{Duration, Instant};
use unplug::{JoinSet, Runtime};

struct Counting;
static LIVE: AtomicIsize = AtomicIsize::new(0);
// SAFETY: every call is passed to `System` unchanged; the counter is a
// side effect with no effect on the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Relaxed);
        // SAFETY: the caller's layout, as `GlobalAlloc::alloc` requires.
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Relaxed);
        // SAFETY: `p` came from `System.alloc` with `l` (every allocation
        // of this binary goes through here).
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, n: usize) -> *mut u8 {
        LIVE.fetch_add(n as isize - l.size() as isize, Relaxed);
        // SAFETY: as for `dealloc`; `n` is the caller's new size.
        unsafe { System.realloc(p, l, n) }
    }
}
#[global_allocator]
static A: Counting = Counting;

fn watchdog<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)));
    });
    match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(Ok(v)) => v,
        Ok(Err(p)) => std::panic::resume_unwind(p),
        Err(_) => panic!("watchdog"),
    }
}

fn settle(h: &unplug::Handle) -> isize {
    let end = Instant::now() + Duration::from_secs(30);
    while h.live_tasks() != 0 {
        assert!(Instant::now() < end);
        std::thread::yield_now();
    }
    LIVE.load(Relaxed)
}

fn mb(x: isize) -> f64 {
    x as f64 / 1e6
}

#[test]
fn an_emptied_join_set_gives_its_memory_back() {
    watchdog(|| {
        let rt = Runtime::builder().workers(2).build().unwrap();
        let h = rt.handle().clone();
        rt.block_on(async {});
        let mut set = JoinSet::new();
        let base = settle(&h);
        for _ in 0..200_000 {
            set.spawn_on(async {}, &h);
        }
        futures_lite::future::block_on(async {
            while let Some(r) = set.join_next().await {
                r.unwrap();
            }
        });
        assert!(set.is_empty());
        let held = settle(&h) - base;
        eprintln!(
            "an empty JoinSet after 200,000 tasks holds {:.2} MB",
            mb(held)
        );
        // tokio's JoinSet frees each entry as it is joined.
        assert!(
            held < 1_000_000,
            "an empty JoinSet holds {:.2} MB",
            mb(held)
        );
        drop(set);
    });
}
