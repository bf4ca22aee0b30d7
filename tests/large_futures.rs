//! BOX-LARGE: a future of hundreds of KiB spawned from an ordinary thread
//! (2 MiB of stack, the std default, what worker threads get too) or
//! blocked on from a thread of 1 MiB runs, in debug builds as in release. Before, `spawn` moved the
//! future by value through about ten frames (`spawn`, the scheduler,
//! `task::build`, async-task's builder and allocation), each holding a
//! copy in a debug build, and a 128 KiB future overflowed the stack: the
//! process aborted, no panic, no error (a red team; tokio copes). Each case
//! runs in a child process, so an overflow fails the case instead of
//! killing the test binary.
#![cfg(not(loom))]

mod support;

use unplug::{JoinSet, Runtime};

const CHILD_ENV: &str = "UNPLUG_LARGE_FUTURE_CASE";
const STACK: usize = 2 << 20;
const KIB: usize = 1024;

/// A future holding `N` bytes across an await: its size is at least `N`.
async fn large<const N: usize>() -> usize {
    let buf = [1u8; N];
    unplug::yield_now().await;
    std::hint::black_box(&buf).iter().map(|&b| b as usize).sum()
}

/// Runs `case` on a thread with `stack` bytes of stack inside a child
/// process of this test binary; fails with the child's output if it did
/// not finish.
fn in_child(test_name: &str, stack: usize, case: fn()) {
    if std::env::var(CHILD_ENV).as_deref() == Ok(test_name) {
        std::thread::Builder::new()
            .stack_size(stack)
            .spawn(case)
            .unwrap()
            .join()
            .unwrap();
        println!("LARGE-FUTURE-CASE-OK");
        return;
    }
    let (status, report) = support::rerun_in_child(test_name, CHILD_ENV);
    assert!(
        status.is_some_and(|s| s.success()) && report.contains("LARGE-FUTURE-CASE-OK"),
        "{test_name}: the child did not finish the case ({status:?}):\n{report}"
    );
}

fn runtime() -> Runtime {
    Runtime::builder().workers(2).build().unwrap()
}

#[test]
fn a_256_kib_future_spawned_from_an_ordinary_thread_runs() {
    in_child(
        "a_256_kib_future_spawned_from_an_ordinary_thread_runs",
        STACK,
        || {
            let rt = runtime();
            let by_runtime = rt.spawn(large::<{ 256 * KIB }>());
            let by_handle = rt.handle().spawn(large::<{ 256 * KIB }>());
            let by_free_fn = {
                let _in = rt.enter();
                unplug::spawn(large::<{ 256 * KIB }>())
            };
            let mut set = JoinSet::new();
            set.spawn_on(large::<{ 256 * KIB }>(), rt.handle());
            let total = rt.block_on(async move {
                let mut total = by_runtime.await.unwrap()
                    + by_handle.await.unwrap()
                    + by_free_fn.await.unwrap();
                while let Some(r) = set.join_next().await {
                    total += r.unwrap();
                }
                total
            });
            assert_eq!(total, 4 * 256 * KIB);
        },
    );
}

#[test]
fn a_256_kib_future_spawned_from_a_task_runs() {
    in_child("a_256_kib_future_spawned_from_a_task_runs", STACK, || {
        let rt = runtime();
        let outer = rt.spawn(async { unplug::spawn(large::<{ 256 * KIB }>()).await.unwrap() });
        assert_eq!(rt.block_on(outer).unwrap(), 256 * KIB);
    });
}

/// `block_on` polls the future on the calling thread: from a thread with
/// 1 MiB of stack (a common choice for many threads), a 256 KiB future.
#[test]
fn a_256_kib_future_blocked_on_from_a_1_mib_thread_runs() {
    in_child(
        "a_256_kib_future_blocked_on_from_a_1_mib_thread_runs",
        1 << 20,
        || {
            // One call per frame (a debug build keeps each temporary).
            fn by_runtime(rt: &Runtime) -> usize {
                rt.block_on(large::<{ 256 * KIB }>())
            }
            fn by_handle(rt: &Runtime) -> usize {
                rt.handle().block_on(large::<{ 256 * KIB }>())
            }
            let rt = runtime();
            assert_eq!(by_runtime(&rt), 256 * KIB);
            assert_eq!(by_handle(&rt), 256 * KIB);
        },
    );
}
