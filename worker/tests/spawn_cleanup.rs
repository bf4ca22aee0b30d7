//! A refused spawn leaves no thread behind. (Alone in its test binary, so
//! the thread count is not disturbed by other tests.)
#![cfg(not(loom))]

use unplug_worker::{SpawnError, Worker};

/// The threads of this process, as procfs lists them (this machine is
/// Linux even when the crate is built portable).
fn threads() -> usize {
    std::fs::read_dir("/proc/self/task").unwrap().count()
}

#[test]
fn refused_spawns_leave_no_thread_behind() {
    let before = threads();
    for cpu in [4000, 1 << 20, usize::MAX - 1] {
        let err = Worker::builder().cpu(cpu).spawn(|_| ()).unwrap_err();
        if unplug_worker::affinity::AFFINITY_SUPPORTED {
            assert!(matches!(err, SpawnError::CpuNotAllowed { .. }), "{err:?}");
        } else {
            assert!(matches!(err, SpawnError::Unsupported), "{err:?}");
        }
    }
    assert_eq!(threads(), before);
}
