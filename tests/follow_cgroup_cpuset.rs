//! The runtime follows a cgroup cpuset change, for real: the test moves
//! this process into a new cpuset cgroup (v1, as root), shrinks the
//! cgroup's CPUs to one, waits for the pool to unplug the other, then
//! widens the cgroup again and waits for the CPU to be plugged back.
//! (`follow_cpus.rs` changes the main thread's mask instead, what
//! `taskset -p` does.) Skipped, saying why, where no writable cpuset v1
//! hierarchy exists. Alone in its binary: it moves the whole process.
#![cfg(not(loom))]

mod support;

use std::path::{Path, PathBuf};
use support::{running_on, wait_for};
use unplug::worker::{affinity, WorkerState};
use unplug::Runtime;

const CPUSET_ROOT: &str = "/sys/fs/cgroup/cpuset";

/// A child cpuset cgroup holding this process; dropping it moves the
/// process back to the root cpuset and removes the child.
struct Cgroup {
    dir: PathBuf,
}

impl Cgroup {
    fn create(cpus: &str) -> Result<Cgroup, String> {
        let root = Path::new(CPUSET_ROOT);
        let mems = std::fs::read_to_string(root.join("cpuset.mems"))
            .map_err(|e| format!("no cpuset v1 hierarchy at {CPUSET_ROOT}: {e}"))?;
        let dir = root.join(format!("unplug-test-{}", std::process::id()));
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        let group = Cgroup { dir };
        group.write("cpuset.mems", mems.trim())?;
        group.write("cpuset.cpus", cpus)?;
        // cgroup.procs moves every thread of the process.
        group.write("cgroup.procs", &std::process::id().to_string())?;
        Ok(group)
    }

    fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("cannot write {value:?} to {file}: {e}"))
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let root = Path::new(CPUSET_ROOT).join("cgroup.procs");
        let _ = std::fs::write(root, std::process::id().to_string());
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[test]
fn the_pool_follows_a_cgroup_cpuset_change_down_and_back_up() {
    let cpus = affinity::allowed_cpus_now().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return;
    }
    let (keep, drop_cpu) = (cpus[0], cpus[1]);
    let both = format!("{keep},{drop_cpu}");
    let group = match Cgroup::create(&both) {
        Ok(group) => group,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let rt = Runtime::builder()
        .workers(2)
        .cpus([keep, drop_cpu])
        .pin_workers(true)
        .follow_cpus(true)
        .follow_interval(std::time::Duration::from_millis(10))
        .build()
        .unwrap();
    assert!(running_on(&rt, drop_cpu));

    group.write("cpuset.cpus", &keep.to_string()).unwrap();
    wait_for("the pool to unplug the CPU the cgroup dropped", || {
        !running_on(&rt, drop_cpu)
    });
    assert_eq!(affinity::cpuset_cpus(), Some(vec![keep]));
    assert!(running_on(&rt, keep));
    assert_eq!(rt.block_on(rt.spawn(async { 1 })).unwrap(), 1);

    group.write("cpuset.cpus", &both).unwrap();
    wait_for("the pool to plug the CPU back", || {
        running_on(&rt, drop_cpu)
    });
    // Counted just after the change is applied: wait for it, as for the
    // change itself.
    wait_for("the follower to count both changes", || {
        rt.stats().follow_changes >= 2
    });
    // The worker came back pinned to the CPU it was unplugged from.
    let back = rt
        .workers()
        .into_iter()
        .find(|w| w.cpu == Some(drop_cpu) && w.state != WorkerState::Parked)
        .unwrap();
    assert!(back.pinned);
    drop(rt);
    drop(group);
}
