//! PLUG-ALL-OR-NOTHING (`runtime/CONTROLLER.md`): a `plug_cpu` that fails
//! changes nothing. Reached through the public API by dropping the CPU
//! from the process's cpuset cgroup while the 50 ms cache of the allowed
//! CPUs still holds it, so the call's check passes and the kernel refuses
//! the re-pin. Found by a red team (2026-12-04), 10 of 10 runs each
//! before the fix: the error came out of `plug_cpu`'s loop after the CPU's
//! unplugged mark was cleared (a later `set_workers` brought back the
//! parked worker there) and after an earlier worker of the CPU was
//! unparked (running, homed on a CPU the process could no longer use, and
//! reported nowhere). The tests move the process between cgroups, one at a
//! time (`follow_support::serial`).
#![cfg(not(loom))]

mod follow_support;
mod support;

use follow_support::on_both_cpus;
use std::sync::Arc;
use std::time::Duration;
use support::{wait_until, with_watchdog};
use unplug::worker::{affinity, WorkerState};
use unplug::Runtime;

fn live(w: &unplug::WorkerInfo) -> bool {
    !matches!(w.state, WorkerState::Parked | WorkerState::Parking)
}

/// Plug of a CPU the cgroup just dropped (cache still says allowed): the
/// call fails; nothing must change, the CPU must stay unplugged. Observed
/// via a later growing `set_workers` once the CPU is back: REUSE-PARKED
/// brings back only workers on CPUs not unplugged.
#[test]
fn a_plug_the_kernel_refuses_leaves_the_cpu_unplugged() {
    let Some((_turn, a, b, group)) = on_both_cpus() else {
        return;
    };
    let group = Arc::new(group);
    let cgroup = group.clone();
    let out = with_watchdog("failed plug", move || {
        let rt = Runtime::builder()
            .workers(2)
            .cpus([a, b])
            .pin_workers(true)
            .build()
            .unwrap();
        rt.unplug_cpu(b).unwrap();
        // Warm the allowed-CPU cache, then drop b.
        let _ = affinity::allowed_cpus();
        cgroup.set_cpus(&[a]);
        let plug = rt.plug_cpu(b);
        // Give b back, let the cache see it.
        cgroup.set_cpus(&[a, b]);
        assert!(wait_until(Duration::from_secs(5), || {
            affinity::allowed_cpus().is_ok_and(|c| c.contains(&b))
        }));
        let grow = rt.set_workers(2);
        let ws = rt.workers();
        drop(rt);
        (format!("{plug:?}"), plug.is_err(), format!("{grow:?}"), ws)
    });
    drop(group);
    let (plug, plug_failed, grow, ws) = out;
    eprintln!("plug_cpu: {plug}\nset_workers(2): {grow}");
    for w in &ws {
        eprintln!(
            "  worker {} cpu {:?} pinned {} {:?}",
            w.id, w.cpu, w.pinned, w.state
        );
    }
    if !plug_failed {
        eprintln!("plug did not fail (cache missed?): inconclusive");
        return;
    }
    let on_b: Vec<_> = ws.iter().filter(|w| w.cpu == Some(b) && live(w)).collect();
    assert!(
        on_b.is_empty(),
        "plug_cpu({b}) failed ({plug}), yet CPU {b} lost its unplugged mark: set_workers(2) brought back the parked worker there: {on_b:?}"
    );
}

/// Two workers homed on CPU a, the first unpinned, the second pinned
/// there: `plug_cpu(a)` after the cgroup dropped `a` unparks the first and
/// fails on the second. An error must change nothing.
#[test]
fn a_plug_the_kernel_refuses_unparks_nothing() {
    let Some((_turn, a, b, group)) = on_both_cpus() else {
        return;
    };
    let group = Arc::new(group);
    let cgroup = group.clone();
    let out = with_watchdog("half plug", move || {
        let rt = Runtime::builder()
            .workers(2)
            .cpus([a, b])
            .pin_workers(false)
            .build()
            .unwrap();
        let ws = rt.workers();
        let w0 = ws.iter().find(|w| w.cpu == Some(a)).unwrap().id;
        let w1 = ws.iter().find(|w| w.cpu == Some(b)).unwrap().id;
        // Move w1 to a, pinned.
        rt.park_worker(w1).unwrap();
        rt.unpark_worker(w1, Some(a)).unwrap();
        // A third worker to keep running on b.
        rt.set_workers(3).unwrap();
        let before = rt.workers();
        let r = rt.unplug_cpu(a).unwrap();
        let _ = affinity::allowed_cpus();
        cgroup.set_cpus(&[b]);
        let plug = rt.plug_cpu(a);
        let after = rt.workers();
        // CPU-GONE: the user may still unplug a now (a worker of ours on it).
        let unplug_again = rt.unplug_cpu_timeout(a, Duration::from_secs(5));
        let last = rt.workers();
        cgroup.set_cpus(&[a, b]);
        drop(rt);
        (
            w0,
            w1,
            before,
            format!("{r:?}"),
            format!("{plug:?}"),
            plug.is_err(),
            after,
            format!("{unplug_again:?}"),
            last,
        )
    });
    drop(group);
    let (w0, w1, before, r, plug, failed, after, again, last) = out;
    eprintln!("w0 {w0} w1 {w1}\nbefore {before:#?}\nunplug {r}\nplug {plug}\nafter {after:#?}\nunplug again {again}\nlast {last:#?}");
    if !failed {
        eprintln!("plug did not fail: inconclusive");
        return;
    }
    let unparked: Vec<_> = after
        .iter()
        .filter(|w| w.cpu == Some(a) && live(w))
        .collect();
    assert!(
        unparked.is_empty(),
        "plug_cpu({a}) returned {plug} but unparked {unparked:?}"
    );
}
