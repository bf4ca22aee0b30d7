//! Helpers for the CPU-follower red-team tests: a child cpuset cgroup (v1)
//! and a child cpu cgroup (v1 quota) holding this process, each restored on
//! drop (also on panic), the main thread's mask restored on drop, and
//! whole-runtime checks. The tests that use them move the whole process:
//! each takes [`serial`] and lives in a binary of its own.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use unplug::worker::{affinity, WorkerState};
use unplug::Runtime;

static SERIAL: Mutex<()> = Mutex::new(());

/// One test at a time: each moves the whole process between cgroups.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// The process id (the main thread's id).
pub fn pid() -> i32 {
    std::process::id() as i32
}

/// A child cgroup of the v1 hierarchy `controller` holding this process;
/// dropping it moves the process back to the root and removes the child.
pub struct Cgroup {
    root: PathBuf,
    dir: PathBuf,
}

impl Cgroup {
    /// A cpuset child on `cpus` (with the root's memory nodes).
    pub fn cpuset(cpus: &str) -> Result<Cgroup, String> {
        let group = Cgroup::create("cpuset", "cs")?;
        let mems = std::fs::read_to_string(group.root.join("cpuset.mems"))
            .map_err(|e| format!("cpuset.mems: {e}"))?;
        group.write("cpuset.mems", mems.trim())?;
        group.write("cpuset.cpus", cpus)?;
        group.enter()?;
        Ok(group)
    }

    /// A cpu child with no quota yet.
    pub fn cpu() -> Result<Cgroup, String> {
        let group = Cgroup::create("cpu", "cpu")?;
        group.enter()?;
        Ok(group)
    }

    fn create(controller: &str, tag: &str) -> Result<Cgroup, String> {
        let root = Path::new("/sys/fs/cgroup").join(controller);
        if !root.join("cgroup.procs").exists() {
            return Err(format!("no v1 {controller} hierarchy"));
        }
        let dir = root.join(format!("unplug-redteam-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir).map_err(|e| format!("cannot create {dir:?}: {e}"))?;
        Ok(Cgroup { root, dir })
    }

    fn enter(&self) -> Result<(), String> {
        // cgroup.procs moves every thread of the process.
        self.write("cgroup.procs", &std::process::id().to_string())
    }

    pub fn write(&self, file: &str, value: &str) -> Result<(), String> {
        std::fs::write(self.dir.join(file), value)
            .map_err(|e| format!("cannot write {value:?} to {file}: {e}"))
    }

    /// Sets the cpuset's CPUs.
    pub fn set_cpus(&self, cpus: &[usize]) {
        let list: Vec<String> = cpus.iter().map(|c| c.to_string()).collect();
        self.write("cpuset.cpus", &list.join(",")).unwrap();
    }

    /// Sets the CPU quota in CPUs (`None`: unlimited), period 100 ms.
    pub fn set_quota(&self, cpus: Option<f64>) {
        self.write("cpu.cfs_period_us", "100000").unwrap();
        let quota = cpus.map_or(-1, |c| (c * 100_000.0) as i64);
        self.write("cpu.cfs_quota_us", &quota.to_string()).unwrap();
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        let _ = std::fs::write(
            self.root.join("cgroup.procs"),
            std::process::id().to_string(),
        );
        let _ = std::fs::remove_dir(&self.dir);
    }
}

/// Restores the main thread's mask on drop.
pub struct RestoreMask(Vec<usize>);

impl RestoreMask {
    pub fn new() -> RestoreMask {
        RestoreMask(affinity::cpus_of(pid()).unwrap())
    }
}

impl Drop for RestoreMask {
    fn drop(&mut self) {
        let _ = affinity::pin_to(pid(), &self.0);
    }
}

/// The two CPUs of the machine, or `None` (skipped, saying why).
pub fn two_cpus() -> Option<(usize, usize)> {
    let cpus = affinity::allowed_cpus_now().unwrap();
    if cpus.len() < 2 {
        eprintln!("skipped: needs two CPUs");
        return None;
    }
    Some((cpus[0], cpus[1]))
}

/// Workers not parked or parking.
pub fn running(rt: &Runtime) -> usize {
    rt.workers()
        .iter()
        .filter(|w| !matches!(w.state, WorkerState::Parked | WorkerState::Parking))
        .count()
}

/// The CPUs with a worker not parked or parking, sorted, deduplicated.
pub fn running_cpus(rt: &Runtime) -> Vec<usize> {
    let mut cpus: Vec<usize> = rt
        .workers()
        .iter()
        .filter(|w| !matches!(w.state, WorkerState::Parked | WorkerState::Parking))
        .filter_map(|w| w.cpu)
        .collect();
    cpus.sort_unstable();
    cpus.dedup();
    cpus
}

/// What most follower tests start from: this test's turn, the machine's two
/// CPUs and a cpuset cgroup holding the process on both; `None` (skipped,
/// saying why) without two CPUs or a writable cpuset hierarchy. Hold the
/// guard for the whole test.
pub fn on_both_cpus() -> Option<(MutexGuard<'static, ()>, usize, usize, Cgroup)> {
    let turn = serial();
    let (a, b) = two_cpus()?;
    match Cgroup::cpuset(&format!("{a},{b}")) {
        Ok(group) => Some((turn, a, b, group)),
        Err(why) => {
            eprintln!("skipped: {why}");
            None
        }
    }
}
