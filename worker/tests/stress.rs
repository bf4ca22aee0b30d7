//! 100,000 random park / unpark / re-pin / stop operations from several
//! controller threads on several workers (busy, idle, pinned), under a
//! watchdog: a hang fails the test with every worker's state printed.
//!
//! Checked: no hang; `park()` never returns while the worker is inside user
//! work (the body raises `in_work` around each unit; if the generation is
//! unchanged since `park()` returned, nobody has unparked it, so `in_work`
//! must be false); every stopped worker returns its body's value.
#![cfg(not(loom))]

mod support;

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};
use support::{allowed, busy_body, Busy};
use unplug_worker::{ParkError, Wake, Worker};

const WORKERS: usize = 4;
const CONTROLLERS: usize = 3;
const OPERATIONS: u64 = 100_000;
/// No progress for this long is a hang.
const WATCHDOG: Duration = Duration::from_secs(60);

/// One worker slot: the current worker (replaced after a stop) and what its
/// body exposes.
struct Slot {
    worker: Mutex<Arc<Worker<u64>>>,
    busy: Mutex<Arc<Busy>>,
    kind: Kind,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// Spins on work units while allowed to run.
    Busy,
    /// Sleeps in its idle wait, woken by a producer.
    Idle,
    /// Busy and pinned to a CPU.
    Pinned(usize),
}

#[derive(Default)]
struct Tally {
    ops: AtomicU64,
    parks: AtomicU64,
    unparks: AtomicU64,
    repins: AtomicU64,
    stops: AtomicU64,
    superseded: AtomicU64,
    stopped_errors: AtomicU64,
    violations: AtomicU64,
}

fn spawn(kind: Kind, work: &Arc<AtomicU64>) -> (Worker<u64>, Arc<Busy>) {
    let busy = Arc::new(Busy::default());
    let b = busy.clone();
    let builder = Worker::builder().name(format!("stress-{kind:?}"));
    match kind {
        Kind::Busy => builder.spawn(move |ctx| busy_body(ctx, &b)),
        // The portable build cannot pin: a "pinned" worker is a busy one
        // whose re-pins are refused (`unpark_on` errors are counted out).
        Kind::Pinned(_) if !unplug_worker::affinity::AFFINITY_SUPPORTED => {
            builder.spawn(move |ctx| busy_body(ctx, &b))
        }
        Kind::Pinned(cpu) => builder.cpu(cpu).spawn(move |ctx| busy_body(ctx, &b)),
        Kind::Idle => {
            let work = work.clone();
            builder.spawn(move |ctx| {
                let mut seen = work.load(SeqCst);
                loop {
                    match ctx.idle_wait(|| work.load(SeqCst) != seen) {
                        Wake::Work => {
                            b.in_work.store(true, SeqCst);
                            seen = work.load(SeqCst);
                            b.units.fetch_add(1, SeqCst);
                            b.in_work.store(false, SeqCst);
                        }
                        Wake::Park => {
                            ctx.parkme();
                            b.resumed.fetch_add(1, SeqCst);
                        }
                        Wake::Stop => return b.units.load(SeqCst),
                    }
                }
            })
        }
    }
    .map(|w| (w, busy))
    .expect("spawn worker")
}

fn control(
    slots: &[Slot],
    cpus: &[usize],
    work: &Arc<AtomicU64>,
    tally: &Tally,
    seed: u64,
    ops: u64,
) {
    let mut rng = fastrand::Rng::with_seed(seed);
    for _ in 0..ops {
        let slot = &slots[rng.usize(..slots.len())];
        let worker = slot.worker.lock().unwrap().clone();
        let busy = slot.busy.lock().unwrap().clone();
        match rng.u32(..100) {
            0..=39 => match worker.park() {
                Ok(t) => {
                    tally.parks.fetch_add(1, SeqCst);
                    // P4, checked against the body's own flag.
                    if busy.in_work.load(SeqCst) && worker.protocol().generation() == t.generation {
                        tally.violations.fetch_add(1, SeqCst);
                    }
                }
                Err(ParkError::Superseded) => {
                    tally.superseded.fetch_add(1, SeqCst);
                }
                Err(ParkError::Stopped) => {
                    tally.stopped_errors.fetch_add(1, SeqCst);
                }
                Err(e) => panic!("unexpected park error {e:?}"),
            },
            40..=74 => {
                if worker.unpark().is_ok() {
                    tally.unparks.fetch_add(1, SeqCst);
                }
            }
            75..=89 => {
                let cpu = cpus[rng.usize(..cpus.len())];
                if worker.unpark_on(cpu).is_ok() {
                    tally.repins.fetch_add(1, SeqCst);
                }
            }
            90..=97 => {
                work.fetch_add(1, SeqCst);
                for s in slots {
                    s.worker.lock().unwrap().notifier().notify();
                }
            }
            _ => {
                // Stop from whatever state it is in, then replace it.
                let mut guard = slot.worker.lock().unwrap();
                match guard.stop() {
                    Ok(_) => {
                        tally.stops.fetch_add(1, SeqCst);
                    }
                    Err(unplug_worker::StopError::AlreadyJoined) => {}
                    Err(e) => panic!("worker body failed: {e:?}"),
                }
                let (fresh, fresh_busy) = spawn(slot.kind, work);
                *guard = Arc::new(fresh);
                *slot.busy.lock().unwrap() = fresh_busy;
            }
        }
        tally.ops.fetch_add(1, SeqCst);
    }
}

#[test]
fn random_park_unpark_repin_stop_from_many_controllers_never_hangs() {
    let cpus = allowed();
    let work = Arc::new(AtomicU64::new(0));
    let kinds = [
        Kind::Busy,
        Kind::Idle,
        Kind::Pinned(cpus[0]),
        Kind::Pinned(*cpus.last().unwrap()),
    ];
    let slots: Arc<Vec<Slot>> = Arc::new(
        kinds[..WORKERS]
            .iter()
            .map(|&kind| {
                let (w, b) = spawn(kind, &work);
                Slot {
                    worker: Mutex::new(Arc::new(w)),
                    busy: Mutex::new(b),
                    kind,
                }
            })
            .collect(),
    );
    let tally = Arc::new(Tally::default());
    let started = Instant::now();
    let (done_tx, done_rx) = mpsc::channel();
    let finished = Arc::new(AtomicUsize::new(0));
    for c in 0..CONTROLLERS {
        let (slots, cpus, work, tally, done_tx, finished) = (
            slots.clone(),
            cpus.clone(),
            work.clone(),
            tally.clone(),
            done_tx.clone(),
            finished.clone(),
        );
        let share =
            OPERATIONS / CONTROLLERS as u64 + u64::from(c == 0) * (OPERATIONS % CONTROLLERS as u64);
        std::thread::spawn(move || {
            control(&slots, &cpus, &work, &tally, 0x5eed + c as u64, share);
            finished.fetch_add(1, SeqCst);
            let _ = done_tx.send(());
        });
    }
    drop(done_tx);

    // Watchdog: wait for the controllers, failing loudly if operations stop
    // progressing.
    let hung = AtomicBool::new(false);
    let mut last = (0, Instant::now());
    while finished.load(SeqCst) < CONTROLLERS {
        match done_rx.recv_timeout(Duration::from_secs(1)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => break,
        }
        let ops = tally.ops.load(SeqCst);
        if ops != last.0 {
            last = (ops, Instant::now());
        } else if last.1.elapsed() > WATCHDOG {
            hung.store(true, SeqCst);
            break;
        }
    }
    if hung.load(SeqCst) {
        let states: Vec<String> = slots
            .iter()
            .map(|s| {
                let w = s.worker.lock().unwrap();
                format!(
                    "{:?} tid {} cpu {:?}: {}",
                    s.kind,
                    w.os_tid(),
                    w.cpu(),
                    w.protocol().describe()
                )
            })
            .collect();
        panic!(
            "watchdog: no progress for {WATCHDOG:?} after {} operations; workers:\n{}",
            tally.ops.load(SeqCst),
            states.join("\n")
        );
    }

    for slot in slots.iter() {
        let worker = slot.worker.lock().unwrap();
        worker.stop().expect("final stop");
    }
    let elapsed = started.elapsed();
    println!(
        "stress: {} ops ({} parks, {} unparks, {} re-pins, {} stops, {} superseded, {} refused as stopped) \
         on {WORKERS} workers from {CONTROLLERS} controllers in {elapsed:?}",
        tally.ops.load(SeqCst),
        tally.parks.load(SeqCst),
        tally.unparks.load(SeqCst),
        tally.repins.load(SeqCst),
        tally.stops.load(SeqCst),
        tally.superseded.load(SeqCst),
        tally.stopped_errors.load(SeqCst),
    );
    assert_eq!(tally.ops.load(SeqCst), OPERATIONS);
    assert_eq!(
        tally.violations.load(SeqCst),
        0,
        "park returned inside user work"
    );
    assert!(
        tally.parks.load(SeqCst) > OPERATIONS / 10,
        "too few parks succeeded to mean anything"
    );
}
