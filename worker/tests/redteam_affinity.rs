//! Red team, affinity: what "unpinned" means, whoever spawns the worker.
#![cfg(not(loom))]

mod support;

use support::{allowed, idle_body, with_watchdog};
use unplug_worker::affinity::{self, AFFINITY_SUPPORTED};
use unplug_worker::Worker;

/// A worker spawned without `Builder::cpu` is unpinned (`cpu()` is `None`)
/// and may run on every CPU the process may use, even when the thread that
/// spawns it is pinned: a pool grown from one of its own pinned workers (the
/// runtime resizes from a task) must not get every new "unpinned" worker
/// stuck on the spawner's CPU. Before the fix the new thread inherited the
/// spawner's mask: `[1]` against allowed `[0, 1]`.
#[test]
fn an_unpinned_worker_spawned_from_a_pinned_thread_may_run_on_every_allowed_cpu() {
    if !AFFINITY_SUPPORTED || allowed().len() < 2 {
        return; // nothing to pin to, or nothing to be confined from
    }
    let last = *allowed().last().unwrap();
    // From a plain thread pinned to one CPU, and from a pinned worker's body.
    let (from_thread, from_worker) = with_watchdog("spawns from pinned threads", move || {
        let from_thread = std::thread::spawn(move || {
            affinity::pin_to(0, &[last]).unwrap();
            let w = Worker::builder().spawn(idle_body).unwrap();
            let seen = (w.cpu(), affinity::cpus_of(w.os_tid()).unwrap());
            w.stop().unwrap();
            seen
        })
        .join()
        .unwrap();
        let pinned = Worker::builder()
            .cpu(last)
            .spawn(|_ctx| {
                let w = Worker::builder().spawn(idle_body).unwrap();
                let seen = (w.cpu(), affinity::cpus_of(w.os_tid()).unwrap());
                w.stop().unwrap();
                seen
            })
            .unwrap();
        (from_thread, pinned.stop().unwrap())
    });
    for (what, (cpu, mask)) in [("thread", from_thread), ("worker", from_worker)] {
        assert_eq!(cpu, None, "spawned from a pinned {what}");
        assert_eq!(
            mask,
            allowed(),
            "an unpinned worker spawned from a {what} pinned to CPU {last} inherited its mask"
        );
    }
}

/// `parse_cpu_list` bounds the CPUs a list may name (a `cpu_set_t` holds
/// `CPU_SETSIZE` = 1024): a range reaching past the bound is refused, and so
/// must be a single CPU past it, or `allowed_cpus` can offer a CPU that
/// every pin then fails on with `EINVAL` instead of `CpuNotAllowed`. Before
/// the fix `"1024"` and `"0,5000"` parsed (`[1024]`, `[0, 5000]`) while
/// `"1024-1024"` was refused.
#[test]
fn a_cpu_list_naming_a_cpu_past_the_cpu_set_is_refused_like_a_range() {
    use unplug_worker::affinity::parse_cpu_list;
    assert_eq!(parse_cpu_list("1024-1024"), None);
    assert_eq!(parse_cpu_list("1024"), None);
    assert_eq!(parse_cpu_list("0,5000"), None);
    assert_eq!(parse_cpu_list("1023"), Some(vec![1023]));
    assert_eq!(parse_cpu_list("0-1,1023"), Some(vec![0, 1, 1023]));
}

/// An unpinned worker stays inside what `taskset` gave the process: the
/// main thread's mask bounds it as the cgroup's CPUs do. Run in a child
/// process (the only test there), since it narrows the main thread's mask.
#[test]
fn an_unpinned_worker_keeps_to_the_main_threads_mask() {
    const CHILD: &str = "UNPLUG_WORKER_MAIN_MASK_CHILD";
    if !AFFINITY_SUPPORTED || allowed().len() < 2 {
        return;
    }
    let (first, last) = (allowed()[0], *allowed().last().unwrap());
    if std::env::var_os(CHILD).is_some() {
        // The child: the process as `taskset -p -c <first>` leaves it (the
        // main thread's id is the process id), the spawner pinned elsewhere.
        let main = std::process::id() as i32;
        affinity::pin_to(main, &[first]).unwrap();
        let mask = with_watchdog("a spawn from a thread pinned elsewhere", move || {
            std::thread::spawn(move || {
                affinity::pin_to(0, &[last]).unwrap();
                let w = Worker::builder().spawn(idle_body).unwrap();
                let mask = affinity::cpus_of(w.os_tid()).unwrap();
                w.stop().unwrap();
                mask
            })
            .join()
            .unwrap()
        });
        assert_eq!(mask, vec![first], "left the main thread's mask");
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "an_unpinned_worker_keeps_to_the_main_threads_mask",
            "--test-threads=1",
            "--nocapture",
        ])
        .env(CHILD, "1")
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("1 passed"),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
