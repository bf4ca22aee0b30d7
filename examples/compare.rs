//! tokio's multi-thread workloads on unplug, tokio and async-executor,
//! without criterion: each workload runs `--rounds` times per runtime,
//! alternating runtimes round by round (so drift on a noisy machine hits all
//! three alike), and the table gives medians and ratios.
//!
//! Run: `cargo run --release --example compare [-- --rounds N | --quick]`
//! (`BENCH_WORKERS=n` for the worker count, default one per CPU the process
//! may use, for all three runtimes).
//! `--quick` is a smoke run: it checks nothing about speed.
//! tcp_echo also runs thread-per-core, alternating with the others: one
//! current-thread tokio runtime per CPU, both ends of every connection on
//! one thread. It is printed below the table as the row's ceiling
//! (TCP-CEILING in runtime/IO.md), not counted as a peer: it cannot move
//! load between threads.
//! `--explain` prints the counters behind the scheduler's fairness rules
//! (polls of the load while remote spawns waited), what joining 1,000
//! finished tasks costs on each runtime, and tcp_echo on tokio
//! arranged three ways (as it is, with a reactor thread of its own, and
//! thread-per-core: the ceiling of perfect locality), and where the tasks
//! of tcp_echo and channel_pipeline run and are woken from (`Traced`).
//! `--hog` runs everything beside a busy loop at nice 19 on a thread of
//! this process: another program keeping a CPU busy, which is where the
//! kernel's placement of woken workers matters (ONE-WAITER in
//! runtime/IO.md).
//! `--after tokio|asx|none` runs busy1 on unplug right after another
//! runtime's round, with polls per worker (the load's placement is
//! bimodal, which is why rounds alternate).

#[path = "../benches/workloads/mod.rs"]
mod workloads;

use std::time::{Duration, Instant};
use workloads::traced::{Placement, Traced};
use workloads::*;

const WORKLOADS: [&str; 9] = [
    "spawn_many_local",
    "spawn_many_remote_idle",
    "spawn_many_remote_busy1",
    "spawn_many_remote_busy2",
    "yield_many",
    "ping_pong",
    "chained_spawn",
    "tcp_echo",
    "channel_pipeline",
];

/// Rows that use tokio's I/O or sync types: against tokio only (tokio's
/// reactor serves them; async-executor is not a peer there).
const TOKIO_ONLY: [&str; 2] = ["tcp_echo", "channel_pipeline"];

fn run_one<S: Spawner>(workload: &str, s: &S, local: &SpawnManyLocal) -> Duration {
    match workload {
        "spawn_many_remote_busy1" => {
            let _load = busy1(s);
            let start = Instant::now();
            spawn_many_remote(s, NUM_SPAWN);
            start.elapsed()
        }
        "spawn_many_remote_busy2" => {
            let _load = busy2(s);
            let start = Instant::now();
            spawn_many_remote(s, 1_000);
            start.elapsed()
        }
        _ => {
            let start = Instant::now();
            match workload {
                "spawn_many_local" => local.run(s),
                "spawn_many_remote_idle" => spawn_many_remote_idle(s),
                "yield_many" => yield_many(s),
                "ping_pong" => ping_pong(s),
                "chained_spawn" => chained_spawn(s),
                "tcp_echo" => tcp_echo(s),
                "channel_pipeline" => channel_pipeline(s),
                other => unreachable!("{other}"),
            }
            start.elapsed()
        }
    }
}

/// `--explain`: where the time of the `busy` workloads goes on unplug,
/// from the runtime's own counters: how many polls of the load tasks (each
/// stalls `STALL_DUR`) ran while the remote spawns waited.
fn explain_busy(unplug: &Unplug, workers: usize) {
    for (name, spawns) in [
        ("spawn_many_remote_busy1", NUM_SPAWN),
        ("spawn_many_remote_busy2", 1_000),
    ] {
        let mut rows = Vec::new();
        for _ in 0..11 {
            let _load = if name.ends_with('1') {
                busy1(unplug)
            } else {
                busy2(unplug)
            };
            let before = unplug.0.stats().tasks_polled;
            let start = Instant::now();
            spawn_many_remote(unplug, spawns);
            let took = start.elapsed();
            let polls = unplug.0.stats().tasks_polled - before;
            rows.push((took, polls.saturating_sub(spawns as u64)));
        }
        rows.sort();
        let (took, load_polls) = rows[rows.len() / 2];
        let stalled = STALL_DUR * (load_polls as u32) / workers as u32;
        println!(
            "{name}: {:.3} ms for {spawns} remote spawns; {load_polls} polls of the load \
             tasks ran meanwhile, {:.3} ms of stalls per worker ({:.0}% of the time)",
            took.as_secs_f64() * 1e3,
            stalled.as_secs_f64() * 1e3,
            100.0 * stalled.as_secs_f64() / took.as_secs_f64()
        );
    }
}

/// `--explain`: where `tcp_echo` stands. Three arrangements of the same
/// workload on tokio beside unplug's:
/// - tokio's multi-thread runtime as it is (the row's peer);
/// - the same with every socket registered with a separate 1-worker tokio
///   runtime: a reactor on a thread of its own, which unplug had before its
///   reactor moved onto the workers (`runtime/IO.md`, design A);
/// - thread-per-core: one current-thread tokio runtime per worker, each
///   with its own reactor and its share of the connections, no task ever
///   changing threads. Perfect locality: the ceiling of a design with a
///   reactor per worker (IO.md, design C), which nothing that balances
///   load across workers through one reactor can reach;
/// - thread-per-core with half, then all, of each thread's clients talking
///   to a server task on the other thread: every task stays on one thread,
///   but the two ends of a connection are not placed together (what
///   keeping tasks where they are, without knowing who talks to whom,
///   gives).
fn explain_io(unplug: &Unplug, workers: usize) {
    let (_t_rt, tokio) = Tokio::new(workers);
    let reactor = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let per_core = thread_per_core_runtimes(workers);
    let (mut u, mut t, mut split, mut tpc) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // CPU time of the process during the rounds of unplug, tokio and
    // thread-per-core (the other runtimes idle meanwhile).
    let mut cpu = [Duration::ZERO; 3];
    let mut wall = [Duration::ZERO; 3];
    let (mut half, mut all) = (Vec::new(), Vec::new());
    const ROUNDS: usize = 21;
    for _ in 0..ROUNDS {
        let (start, c) = (Instant::now(), process_cpu());
        tcp_echo(unplug);
        u.push(start.elapsed());
        (wall[0], cpu[0]) = (wall[0] + start.elapsed(), cpu[0] + (process_cpu() - c));
        let (start, c) = (Instant::now(), process_cpu());
        tcp_echo(&tokio);
        t.push(start.elapsed());
        (wall[1], cpu[1]) = (wall[1] + start.elapsed(), cpu[1] + (process_cpu() - c));
        let start = Instant::now();
        tcp_echo_registered_with(&tokio, Some(reactor.handle().clone()));
        split.push(start.elapsed());
        let (start, c) = (Instant::now(), process_cpu());
        tcp_echo_thread_per_core(&per_core, None);
        tpc.push(start.elapsed());
        (wall[2], cpu[2]) = (wall[2] + start.elapsed(), cpu[2] + (process_cpu() - c));
        let start = Instant::now();
        tcp_echo_thread_per_core(&per_core, Some(2));
        half.push(start.elapsed());
        let start = Instant::now();
        tcp_echo_thread_per_core(&per_core, Some(1));
        all.push(start.elapsed());
    }
    let (u, t) = (median(&mut u), median(&mut t));
    let (split, tpc) = (median(&mut split), median(&mut tpc));
    let (half, all) = (median(&mut half), median(&mut all));
    println!(
        "tcp_echo: unplug {u:.3} ms, tokio {t:.3} ms ({:.2}x); tokio with its reactor on a \
         thread of its own {split:.3} ms ({:.2}x tokio); thread-per-core ({workers} \
         current-thread runtimes, a reactor each) {tpc:.3} ms ({:.2}x tokio); the same with \
         half of the connections across threads {half:.3} ms ({:.2}x tokio), with all of \
         them across {all:.3} ms ({:.2}x tokio)",
        u / t,
        split / t,
        tpc / t,
        half / t,
        all / t
    );
    // What the row is bound by: CPU spent per round and CPUs kept busy.
    let rounds = ROUNDS as f64;
    for (i, name) in ["unplug", "tokio", "thread-per-core"].iter().enumerate() {
        println!(
            "tcp_echo CPU on {name}: {:.2} ms of CPU per round, {:.2} CPUs busy",
            cpu[i].as_secs_f64() * 1e3 / rounds,
            cpu[i].as_secs_f64() / wall[i].as_secs_f64()
        );
    }
}

/// `--explain`: where `chained_spawn`'s time goes on each runtime, phase
/// by phase (`ChainPhases`): the wake-up that starts the chain, the chain
/// of local spawns itself, and the wake-up of the measuring thread at its
/// end, split by whether that thread woke on the CPU of the last link (on
/// this VM, waking a halted CPU costs tens of microseconds).
fn explain_chain(unplug: &Unplug, workers: usize) {
    let (_t_rt, tokio) = Tokio::new(workers);
    let (_a_threads, asx) = AsyncExecutor::new(workers);
    let mut phases: [Vec<ChainPhases>; 3] = Default::default();
    for _ in 0..301 {
        phases[0].push(chained_spawn_phases(unplug));
        phases[1].push(chained_spawn_phases(&tokio));
        phases[2].push(chained_spawn_phases(&asx));
    }
    let us = |v: Vec<Duration>| {
        let mut v = v;
        if v.is_empty() {
            return f64::NAN;
        }
        median(&mut v) * 1e3
    };
    for (name, p) in ["unplug", "tokio", "async-executor"].iter().zip(phases) {
        let pick = |f: fn(&ChainPhases) -> Duration| us(p.iter().map(f).collect());
        let same: Vec<Duration> = p
            .iter()
            .filter(|x| x.end_on_same_cpu)
            .map(|x| x.end)
            .collect();
        let other: Vec<Duration> = p
            .iter()
            .filter(|x| !x.end_on_same_cpu)
            .map(|x| x.end)
            .collect();
        println!(
            "chained_spawn on {name}: start {:.1} us, chain {:.1} us, end {:.1} us (woken on the \
             last link's CPU in {} of {}: {:.1} us; on the other CPU: {:.1} us)",
            pick(|x| x.start),
            pick(|x| x.chain),
            pick(|x| x.end),
            same.len(),
            p.len(),
            us(same),
            us(other)
        );
    }
}

/// `--explain`: where each task of `channel_pipeline` and `tcp_echo` runs,
/// on unplug and on tokio: polls per round, how many ran on another thread
/// than the task's previous poll, and how many wake-ups came from another
/// thread than the one that last polled the task (each such one is a
/// channel or socket whose two ends are on two CPUs). For the pipeline,
/// also its time at one worker against `workers`: with every stage of a
/// pipeline on one thread and nothing moving, what is left between the
/// two is the cost of the channels' own code on busy CPUs.
fn explain_placement(unplug: &Unplug, workers: usize) {
    let (_t_rt, tokio) = Tokio::new(workers);
    let local = SpawnManyLocal::new();
    const ROUNDS: usize = 21;
    for workload in ["channel_pipeline", "tcp_echo"] {
        for (name, counts) in [
            ("unplug", placement(workload, unplug, &local, ROUNDS)),
            ("tokio", placement(workload, &tokio, &local, ROUNDS)),
        ] {
            let per_round = |c: &std::sync::atomic::AtomicUsize| {
                c.load(std::sync::atomic::Ordering::Relaxed) as f64 / ROUNDS as f64
            };
            let (polls, wakes) = (per_round(&counts.polls), per_round(&counts.wakes));
            println!(
                "{workload} on {name}: {polls:.0} polls a round, {:.1}% on another thread than \
                 the task's previous poll; {wakes:.0} wake-ups, {:.1}% from another thread than \
                 the one that last polled the task",
                100.0 * per_round(&counts.moved) / polls,
                100.0 * per_round(&counts.cross_wakes) / wakes
            );
        }
    }
    let (_u1_rt, unplug1) = Unplug::new(1);
    let (_t1_rt, tokio1) = Tokio::new(1);
    let mut times: [Vec<Duration>; 4] = Default::default();
    for _ in 0..ROUNDS {
        times[0].push(run_one("channel_pipeline", unplug, &local));
        times[1].push(run_one("channel_pipeline", &unplug1, &local));
        times[2].push(run_one("channel_pipeline", &tokio, &local));
        times[3].push(run_one("channel_pipeline", &tokio1, &local));
    }
    let [u, u1, t, t1] = times.map(|mut v| median(&mut v));
    println!(
        "channel_pipeline at {workers} workers and at 1: unplug {u:.3} ms and {u1:.3} ms \
         ({:.2}x faster), tokio {t:.3} ms and {t1:.3} ms ({:.2}x faster)",
        u1 / u,
        t1 / t
    );
}

/// `rounds` rounds of `workload` on `s`, each task counted (`Traced`).
fn placement<S: Spawner>(
    workload: &str,
    s: &S,
    local: &SpawnManyLocal,
    rounds: usize,
) -> std::sync::Arc<Placement> {
    let traced = Traced::new(s.clone());
    for _ in 0..rounds {
        run_one(workload, &traced, local);
    }
    traced.counts
}

/// CPU time (user + system) of the whole process so far.
fn process_cpu() -> Duration {
    // SAFETY: `getrusage` writes the struct it is given; zeroed is a valid
    // `rusage`.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1_000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// `--explain`: what awaiting 1,000 finished tasks costs the awaiting
/// thread on each runtime (JOIN-FINISHED: every spawn workload ends with
/// it, and under load it runs after the last task, on the clock).
fn explain_join(unplug: &Unplug, workers: usize) {
    let (_t_rt, tokio) = Tokio::new(workers);
    let (_a_threads, asx) = AsyncExecutor::new(workers);
    let (mut u, mut t, mut a) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..101 {
        u.push(join_finished(unplug, 1_000));
        t.push(join_finished(&tokio, 1_000));
        a.push(join_finished(&asx, 1_000));
    }
    let (u, t, a) = (median(&mut u), median(&mut t), median(&mut a));
    println!(
        "joining 1000 finished tasks from block_on: unplug {:.1} us, tokio {:.1} us, \
         async-executor {:.1} us",
        u * 1e3,
        t * 1e3,
        a * 1e3
    );
}

fn median(v: &mut [Duration]) -> f64 {
    v.sort();
    v[v.len() / 2].as_secs_f64() * 1e3
}

/// `--hog`: a thread of this process spinning at nice 19 until dropped.
struct Hog(std::sync::Arc<std::sync::atomic::AtomicBool>);

impl Hog {
    fn start() -> Hog {
        use std::sync::atomic::Ordering::Relaxed;
        let run = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
        let r = run.clone();
        std::thread::spawn(move || {
            // SAFETY: gettid and setpriority take plain integers; a failure
            // leaves the thread at its nice value, which only weakens the hog.
            unsafe {
                let tid = libc::syscall(libc::SYS_gettid) as libc::id_t;
                libc::setpriority(libc::PRIO_PROCESS, tid, 19);
            }
            while r.load(Relaxed) {
                std::hint::spin_loop();
            }
        });
        Hog(run)
    }
}

impl Drop for Hog {
    fn drop(&mut self) {
        self.0.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    let rounds: usize = args
        .iter()
        .position(|a| a == "--rounds")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 3 } else { 31 });
    // `--workload NAME` / `--only unplug|tokio|asx|tpc`: narrow the run (for
    // profiling; `tpc` is tcp_echo thread-per-core, TCP-CEILING).
    let pick = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let (only_workload, only_runtime) = (pick("--workload"), pick("--only"));
    let n = num_workers();
    let (_u_rt, unplug) = Unplug::new(n);
    if let Some(peer) = pick("--after") {
        let (_t_rt, tokio) = Tokio::new(n);
        let (_a_threads, asx) = AsyncExecutor::new(n);
        let local = SpawnManyLocal::new();
        let w = "spawn_many_remote_busy1";
        for _ in 0..5 {
            match peer.as_str() {
                "tokio" => drop(run_one(w, &tokio, &local)),
                "asx" => drop(run_one(w, &asx, &local)),
                _ => {}
            }
            let before: Vec<u64> = unplug.0.workers().iter().map(|w| w.tasks_polled).collect();
            let took = run_one(w, &unplug, &local);
            let after: Vec<u64> = unplug.0.workers().iter().map(|w| w.tasks_polled).collect();
            let d: Vec<u64> = after.iter().zip(&before).map(|(a, b)| a - b).collect();
            println!("unplug after {peer}: {took:?} polls per worker {d:?}");
        }
        return;
    }
    if args.iter().any(|a| a == "--explain") {
        explain_busy(&unplug, n);
        explain_join(&unplug, n);
        explain_chain(&unplug, n);
        explain_io(&unplug, n);
        explain_placement(&unplug, n);
        return;
    }
    let (_t_rt, tokio) = Tokio::new(n);
    let (_a_threads, asx) = AsyncExecutor::new(n);
    let local = SpawnManyLocal::new();
    let hog = args.iter().any(|a| a == "--hog").then(Hog::start);
    println!(
        "# {n} workers each on {} CPUs, {rounds} rounds per runtime, medians, runtimes alternating{}",
        num_cpus(),
        if hog.is_some() { ", beside a nice-19 busy loop (--hog)" } else { "" }
    );
    println!(
        "{:<26} {:>10} {:>10} {:>17} {:>12} {:>21}",
        "workload",
        "unplug_ms",
        "tokio_ms",
        "async_executor_ms",
        "unplug/tokio",
        "unplug/async_executor"
    );
    let (mut worst_tokio, mut worst_best) = (0f64, 0f64);
    // TCP-CEILING: tcp_echo's third runtime is the arrangement no
    // scheduler on a shared reactor can beat (see `ceiling` below).
    let per_core = thread_per_core_runtimes(n);
    let mut ceiling = None;
    for workload in WORKLOADS {
        if only_workload.as_deref().is_some_and(|w| w != workload) {
            continue;
        }
        if let Some(rt) = only_runtime.as_deref() {
            let mut v: Vec<Duration> = (0..rounds)
                .map(|_| match rt {
                    "unplug" => run_one(workload, &unplug, &local),
                    "tokio" => run_one(workload, &tokio, &local),
                    // TCP-CEILING alone (tcp_echo only), for profiling.
                    "tpc" => {
                        let start = Instant::now();
                        tcp_echo_thread_per_core(&per_core, None);
                        start.elapsed()
                    }
                    _ => run_one(workload, &asx, &local),
                })
                .collect();
            println!("{workload:<26} {rt} median {:.3} ms", median(&mut v));
            continue;
        }
        let with_asx = !TOKIO_ONLY.contains(&workload);
        let with_tpc = workload == "tcp_echo";
        let thread_per_core = || {
            let start = Instant::now();
            tcp_echo_thread_per_core(&per_core, None);
            start.elapsed()
        };
        // Warm-up: one run each.
        run_one(workload, &unplug, &local);
        run_one(workload, &tokio, &local);
        if with_asx {
            run_one(workload, &asx, &local);
        }
        if with_tpc {
            thread_per_core();
        }
        let (mut u, mut t, mut a, mut c) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for r in 0..rounds {
            // Rotate the order so no runtime always goes first.
            for k in 0..3 {
                match (r + k) % 3 {
                    0 => u.push(run_one(workload, &unplug, &local)),
                    1 => t.push(run_one(workload, &tokio, &local)),
                    _ if with_asx => a.push(run_one(workload, &asx, &local)),
                    _ if with_tpc => c.push(thread_per_core()),
                    _ => {}
                }
            }
        }
        let (u, t) = (median(&mut u), median(&mut t));
        if with_tpc {
            ceiling = Some((u, t, median(&mut c)));
        }
        worst_tokio = worst_tokio.max(u / t);
        if with_asx {
            let a = median(&mut a);
            worst_best = worst_best.max(u / t.min(a));
            println!(
                "{workload:<26} {u:>10.3} {t:>10.3} {a:>17.3} {:>12.2} {:>21.2}",
                u / t,
                u / a
            );
        } else {
            worst_best = worst_best.max(u / t);
            println!(
                "{workload:<26} {u:>10.3} {t:>10.3} {:>17} {:>12.2} {:>21}",
                "-",
                u / t,
                "-"
            );
        }
    }
    if let Some((u, t, c)) = ceiling {
        println!(
            "tcp_echo's ceiling, thread-per-core (a current-thread tokio runtime per CPU, both \
             ends of every connection on one thread, no task ever moving; not a peer: it \
             cannot balance load): {c:.3} ms, {:.2} of tokio; unplug {:.2} of it",
            c / t,
            u / c
        );
    }
    println!("worst unplug/tokio: {worst_tokio:.2}");
    println!("worst unplug/best peer: {worst_best:.2}");
}
