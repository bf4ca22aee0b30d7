//! tokio's multi-thread scheduler workloads (its `benches/rt_multi_threaded.rs`:
//! same names, same parameters), written once over a small `Spawner` trait
//! and run on unplug, tokio's multi-thread runtime and async-executor with
//! the same number of worker threads.
#![allow(dead_code)]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{mpsc, Arc};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Worker threads for every runtime: one per CPU the process may use (the
/// default users get from every runtime; more workers than CPUs lets the OS
/// time-slice away a scheduler's own unfairness). `BENCH_WORKERS` overrides.
pub fn num_workers() -> usize {
    std::env::var("BENCH_WORKERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(num_cpus)
}

/// The CPUs the process may use.
pub fn num_cpus() -> usize {
    unplug::worker::affinity::allowed_cpus().map_or(1, |c| c.len().max(1))
}

pub mod traced;

pub const NUM_SPAWN: usize = 10_000;
pub const STALL_DUR: Duration = Duration::from_micros(10);

/// What a workload needs from a runtime.
pub trait Spawner: Clone + Send + Sync + 'static {
    type Join<T: Send + 'static>: Future<Output = T> + Send + 'static;
    fn spawn<F>(&self, f: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
    /// Spawn without keeping a handle. Dropping the handle detaches the
    /// task on unplug and tokio; async-executor overrides this (dropping its
    /// `Task` would cancel it).
    fn spawn_detached<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.spawn(f));
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output;
    fn yield_now() -> impl Future<Output = ()> + Send;
}

/// A join handle whose error is unwrapped (the workloads never fail).
pub struct Unwrapped<J>(J);

impl<T, E: std::fmt::Debug, J: Future<Output = Result<T, E>> + Unpin> Future for Unwrapped<J> {
    type Output = T;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        Pin::new(&mut self.0).poll(cx).map(|r| r.unwrap())
    }
}

// ---- unplug ----

#[derive(Clone)]
pub struct Unplug(pub unplug::Handle);

impl Unplug {
    pub fn new(workers: usize) -> (unplug::Runtime, Self) {
        let rt = unplug::Runtime::builder().workers(workers).build().unwrap();
        let h = rt.handle().clone();
        (rt, Unplug(h))
    }
}

impl Spawner for Unplug {
    type Join<T: Send + 'static> = Unwrapped<unplug::JoinHandle<T>>;
    fn spawn<F>(&self, f: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrapped(self.0.spawn(f))
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        unplug::yield_now()
    }
}

// ---- tokio ----

#[derive(Clone)]
pub struct Tokio(pub tokio::runtime::Handle);

impl Tokio {
    pub fn new(workers: usize) -> (tokio::runtime::Runtime, Self) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(workers)
            .enable_all()
            .build()
            .unwrap();
        let h = rt.handle().clone();
        (rt, Tokio(h))
    }
}

impl Spawner for Tokio {
    type Join<T: Send + 'static> = Unwrapped<tokio::task::JoinHandle<T>>;
    fn spawn<F>(&self, f: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        Unwrapped(self.0.spawn(f))
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.0.block_on(f)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}

// ---- async-executor ----

#[derive(Clone)]
pub struct AsyncExecutor(pub Arc<async_executor::Executor<'static>>);

/// Keeps async-executor's threads running until dropped.
pub struct AsyncExecutorThreads {
    stop: Option<async_channel_stop::Stop>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

mod async_channel_stop {
    /// A one-shot stop signal for the executor threads.
    pub struct Stop(
        pub std::sync::Arc<event_listener::Event>,
        pub std::sync::Arc<std::sync::atomic::AtomicBool>,
    );
}

impl AsyncExecutor {
    pub fn new(workers: usize) -> (AsyncExecutorThreads, Self) {
        let ex = Arc::new(async_executor::Executor::new());
        let event = Arc::new(event_listener::Event::new());
        let flag = Arc::new(AtomicBool::new(false));
        let threads = (0..workers)
            .map(|_| {
                let (ex, event, flag) = (ex.clone(), event.clone(), flag.clone());
                std::thread::spawn(move || {
                    futures_lite::future::block_on(ex.run(async move {
                        loop {
                            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                                return;
                            }
                            let l = event.listen();
                            if flag.load(std::sync::atomic::Ordering::SeqCst) {
                                return;
                            }
                            l.await;
                        }
                    }))
                })
            })
            .collect();
        (
            AsyncExecutorThreads {
                stop: Some(async_channel_stop::Stop(event, flag)),
                threads,
            },
            AsyncExecutor(ex),
        )
    }
}

impl Drop for AsyncExecutorThreads {
    fn drop(&mut self) {
        if let Some(async_channel_stop::Stop(event, flag)) = self.stop.take() {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            event.notify(usize::MAX);
        }
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Spawner for AsyncExecutor {
    type Join<T: Send + 'static> = async_executor::Task<T>;
    fn spawn<F>(&self, f: F) -> Self::Join<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.0.spawn(f)
    }
    fn spawn_detached<F>(&self, f: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        self.0.spawn(f).detach();
    }
    fn block_on<F: Future>(&self, f: F) -> F::Output {
        futures_lite::future::block_on(f)
    }
    fn yield_now() -> impl Future<Output = ()> + Send {
        futures_lite::future::yield_now()
    }
}

// ---- the workloads ----

fn stall() {
    let now = Instant::now();
    while now.elapsed() < STALL_DUR {
        std::thread::yield_now();
    }
}

/// `spawn_many_local`: 10,000 spawns from inside `block_on`.
pub struct SpawnManyLocal {
    tx: mpsc::SyncSender<()>,
    rx: mpsc::Receiver<()>,
    rem: Arc<AtomicUsize>,
}

impl SpawnManyLocal {
    pub fn new() -> Self {
        let (tx, rx) = mpsc::sync_channel(1000);
        SpawnManyLocal {
            tx,
            rx,
            rem: Arc::new(AtomicUsize::new(0)),
        }
    }

    pub fn run<S: Spawner>(&self, s: &S) {
        self.rem.store(NUM_SPAWN, Relaxed);
        s.block_on(async {
            for _ in 0..NUM_SPAWN {
                let (tx, rem) = (self.tx.clone(), self.rem.clone());
                s.spawn_detached(async move {
                    if 1 == rem.fetch_sub(1, Relaxed) {
                        tx.send(()).unwrap();
                    }
                });
            }
            self.rx.recv().unwrap();
        });
    }
}

/// `spawn_many_remote_idle`: 10,000 spawns from outside, then await them.
pub fn spawn_many_remote_idle<S: Spawner>(s: &S) {
    let handles: Vec<_> = (0..NUM_SPAWN).map(|_| s.spawn(async {})).collect();
    s.block_on(async {
        for h in handles {
            h.await;
        }
    });
}

/// Background load for the `busy` workloads; stops when dropped.
pub struct Busy(Arc<AtomicBool>);

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.store(false, Relaxed);
    }
}

/// `spawn_many_remote_busy1`'s load: 2 x workers tasks that yield and stall.
pub fn busy1<S: Spawner>(s: &S) -> Busy {
    let flag = Arc::new(AtomicBool::new(true));
    for _ in 0..2 * num_workers() {
        let flag = flag.clone();
        s.spawn_detached(async move {
            while flag.load(Relaxed) {
                S::yield_now().await;
                stall();
            }
        });
    }
    Busy(flag)
}

/// `spawn_many_remote_busy2`'s load: workers chains of tasks that stall and
/// spawn the next.
pub fn busy2<S: Spawner>(s: &S) -> Busy {
    fn iter<S: Spawner>(s: S, flag: Arc<AtomicBool>) {
        let s2 = s.clone();
        s.spawn_detached(async move {
            if flag.load(Relaxed) {
                stall();
                iter(s2, flag);
            }
        });
    }
    let flag = Arc::new(AtomicBool::new(true));
    for _ in 0..num_workers() {
        iter(s.clone(), flag.clone());
    }
    Busy(flag)
}

/// The measured part of both `busy` workloads: `n` remote spawns, awaited.
pub fn spawn_many_remote<S: Spawner>(s: &S, n: usize) {
    let handles: Vec<_> = (0..n).map(|_| s.spawn(async {})).collect();
    s.block_on(async {
        for h in handles {
            h.await;
        }
    });
}

/// The join half of the spawn workloads alone: `n` tasks spawned from
/// outside and left to finish, then awaited in order from `block_on`; the
/// time of the awaiting only (`compare --explain`: every spawn workload
/// ends with it, on the thread that measures).
pub fn join_finished<S: Spawner>(s: &S, n: usize) -> Duration {
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..n)
        .map(|_| {
            let done = done.clone();
            s.spawn(async move {
                done.fetch_add(1, Relaxed);
            })
        })
        .collect();
    while done.load(Relaxed) < n {
        std::thread::yield_now();
    }
    let start = Instant::now();
    s.block_on(async {
        for h in handles {
            h.await;
        }
    });
    start.elapsed()
}

/// `yield_many`: 200 tasks yielding 1,000 times each.
pub fn yield_many<S: Spawner>(s: &S) {
    const NUM_YIELD: usize = 1_000;
    const TASKS: usize = 200;
    let (tx, rx) = mpsc::sync_channel(TASKS);
    for _ in 0..TASKS {
        let tx = tx.clone();
        s.spawn_detached(async move {
            for _ in 0..NUM_YIELD {
                S::yield_now().await;
            }
            tx.send(()).unwrap();
        });
    }
    for _ in 0..TASKS {
        rx.recv().unwrap();
    }
}

/// `ping_pong`: 1,000 pairs of tasks exchanging oneshot messages.
pub fn ping_pong<S: Spawner>(s: &S) {
    const NUM_PINGS: usize = 1_000;
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    let rem = Arc::new(AtomicUsize::new(NUM_PINGS));
    let s2 = s.clone();
    s.block_on(async move {
        s2.clone().spawn_detached(async move {
            for _ in 0..NUM_PINGS {
                let (rem, done_tx, s3) = (rem.clone(), done_tx.clone(), s2.clone());
                s2.spawn_detached(async move {
                    let (tx1, rx1) = tokio::sync::oneshot::channel::<()>();
                    let (tx2, rx2) = tokio::sync::oneshot::channel::<()>();
                    s3.spawn_detached(async move {
                        rx1.await.unwrap();
                        tx2.send(()).unwrap();
                    });
                    tx1.send(()).unwrap();
                    rx2.await.unwrap();
                    if 1 == rem.fetch_sub(1, Relaxed) {
                        done_tx.send(()).unwrap();
                    }
                });
            }
        });
        done_rx.recv().unwrap();
    });
}

/// `chained_spawn`: a chain of 1,000 tasks, each spawning the next.
pub fn chained_spawn<S: Spawner>(s: &S) {
    const ITER: usize = 1_000;
    fn iter<S: Spawner>(s: S, done_tx: mpsc::SyncSender<()>, n: usize) {
        if n == 0 {
            done_tx.send(()).unwrap();
        } else {
            let s2 = s.clone();
            s.spawn_detached(async move { iter(s2, done_tx, n - 1) });
        }
    }
    let (done_tx, done_rx) = mpsc::sync_channel(1000);
    let s2 = s.clone();
    s.block_on(async move {
        s2.clone()
            .spawn_detached(async move { iter(s2, done_tx, ITER) });
        done_rx.recv().unwrap();
    });
}

/// `chained_spawn` cut into its three phases (`compare --explain`): the
/// remote spawn of the first link until it runs (a wake-up of a sleeping
/// worker), the chain of 1,000 local spawns, and the last link's send until
/// the `block_on` thread runs again (a wake-up of the measuring thread).
/// Also says whether that thread woke on the CPU the last link ran on.
pub struct ChainPhases {
    pub start: Duration,
    pub chain: Duration,
    pub end: Duration,
    pub end_on_same_cpu: bool,
}

pub fn chained_spawn_phases<S: Spawner>(s: &S) -> ChainPhases {
    const ITER: usize = 1_000;
    /// Nanoseconds since `base` at the first link and at the last, and the
    /// CPU the last ran on.
    #[derive(Default)]
    struct Marks {
        first: std::sync::atomic::AtomicU64,
        last: std::sync::atomic::AtomicU64,
        last_cpu: std::sync::atomic::AtomicI64,
    }
    fn cpu() -> i64 {
        // SAFETY: no preconditions; returns -1 on failure.
        i64::from(unsafe { libc::sched_getcpu() })
    }
    fn iter<S: Spawner>(s: S, done: mpsc::SyncSender<()>, n: usize, base: Instant, m: Arc<Marks>) {
        let now = base.elapsed().as_nanos() as u64;
        if n == ITER {
            m.first.store(now, Relaxed);
        }
        if n == 0 {
            m.last.store(now, Relaxed);
            m.last_cpu.store(cpu(), Relaxed);
            done.send(()).unwrap();
        } else {
            let s2 = s.clone();
            s.spawn_detached(async move { iter(s2, done, n - 1, base, m) });
        }
    }
    let marks = Arc::new(Marks::default());
    let (done_tx, done_rx) = mpsc::sync_channel(1);
    let (s2, m2) = (s.clone(), marks.clone());
    let base = Instant::now();
    s.block_on(async move {
        s2.clone()
            .spawn_detached(async move { iter(s2, done_tx, ITER, base, m2) });
        done_rx.recv().unwrap();
    });
    let back = base.elapsed();
    let first = Duration::from_nanos(marks.first.load(Relaxed));
    let last = Duration::from_nanos(marks.last.load(Relaxed));
    ChainPhases {
        start: first,
        chain: last - first,
        end: back - last,
        end_on_same_cpu: cpu() == marks.last_cpu.load(Relaxed),
    }
}

// ---- workloads users hit daily (tokio I/O and sync inside tasks) ----

/// `tcp_echo`: `TCP_CONNS` loopback connections, each a client task and a
/// server task on the runtime under test, `TCP_ROUND_TRIPS` 64-byte echoes
/// each. Every read waits on the tokio reactor, so this measures where the
/// reactor's wake-ups land.
pub const TCP_CONNS: usize = 32;
pub const TCP_ROUND_TRIPS: usize = 100;

pub fn tcp_echo<S: Spawner>(s: &S) {
    tcp_echo_registered_with(s, None)
}

/// Registers a socket with the reactor of `reactor` (a separate tokio
/// runtime), or with the current context's for `None`.
fn register(
    std: std::net::TcpStream,
    reactor: &Option<tokio::runtime::Handle>,
) -> tokio::net::TcpStream {
    std.set_nonblocking(true).unwrap();
    std.set_nodelay(true).unwrap();
    let _guard = reactor.as_ref().map(|h| h.enter());
    tokio::net::TcpStream::from_std(std).unwrap()
}

/// `tcp_echo` with every socket registered with `reactor`'s I/O driver
/// (`None`: the runtime's own), to measure what a reactor on a thread of
/// its own costs a runtime (`compare --explain`).
pub fn tcp_echo_registered_with<S: Spawner>(s: &S, reactor: Option<tokio::runtime::Handle>) {
    let s2 = s.clone();
    s.block_on(s.spawn(echo_session(s2, TCP_CONNS, reactor)));
}

/// `n` current-thread tokio runtimes, each with its own reactor: the
/// threads of [`tcp_echo_thread_per_core`].
pub fn thread_per_core_runtimes(n: usize) -> Vec<tokio::runtime::Runtime> {
    (0..n)
        .map(|_| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
        })
        .collect()
}

/// `tcp_echo` as a thread-per-core runtime would run it: one current-thread
/// tokio runtime per thread, each with its own reactor and `TCP_CONNS /
/// runtimes.len()` connections, no task ever leaving its thread
/// (`compare --explain`). With `crossed_every = None` both ends of every
/// connection live on one thread: the ceiling of perfect locality. With
/// `Some(k)`, every k-th client of each thread connects to the next
/// thread's listener, so those connections' two ends stay on two threads
/// for good: what a design that keeps each task on one worker, without
/// knowing which tasks talk to each other, would get.
pub fn tcp_echo_thread_per_core(
    runtimes: &[tokio::runtime::Runtime],
    crossed_every: Option<usize>,
) {
    let n = runtimes.len();
    let conns = TCP_CONNS / n;
    let listeners: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let addrs: Vec<_> = listeners.iter().map(|l| l.local_addr().unwrap()).collect();
    std::thread::scope(|scope| {
        for (r, (rt, listener)) in runtimes.iter().zip(listeners).enumerate() {
            // Each thread sends as many connections to the next one as it
            // gets from the previous one, so every listener accepts `conns`.
            let targets = (0..conns)
                .map(|i| match crossed_every {
                    Some(k) if i % k == 0 => addrs[(r + 1) % n],
                    _ => addrs[r],
                })
                .collect();
            let s = Tokio(rt.handle().clone());
            scope.spawn(move || rt.block_on(echo_pairs(s, listener, targets, None)));
        }
    });
}

/// `conns` loopback connections on `s`, each a client task and a server
/// task, `TCP_ROUND_TRIPS` 64-byte echoes each.
async fn echo_session<S: Spawner>(s2: S, conns: usize, reactor: Option<tokio::runtime::Handle>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    echo_pairs(s2, listener, vec![addr; conns], reactor).await
}

/// A server task accepting `targets.len()` connections on `listener`, one
/// echo task per connection, and one client task per address in
/// `targets`, all spawned on `s`; sockets registered with `reactor`'s
/// driver (`None`: the current context's).
async fn echo_pairs<S: Spawner>(
    s2: S,
    std_listener: std::net::TcpListener,
    targets: Vec<std::net::SocketAddr>,
    reactor: Option<tokio::runtime::Handle>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let conns = targets.len();
    std_listener.set_nonblocking(true).unwrap();
    let listener = {
        let _guard = reactor.as_ref().map(|h| h.enter());
        tokio::net::TcpListener::from_std(std_listener).unwrap()
    };
    let s3 = s2.clone();
    let server_reactor = reactor.clone();
    let server = s2.spawn(async move {
        let mut accepted = Vec::with_capacity(conns);
        for _ in 0..conns {
            let (sock, _) = listener.accept().await.unwrap();
            let mut sock = register(sock.into_std().unwrap(), &server_reactor);
            accepted.push(s3.spawn(async move {
                let mut buf = [0u8; 64];
                for _ in 0..TCP_ROUND_TRIPS {
                    sock.read_exact(&mut buf).await.unwrap();
                    sock.write_all(&buf).await.unwrap();
                }
            }));
        }
        for c in accepted {
            c.await;
        }
    });
    let clients: Vec<_> = targets
        .iter()
        .enumerate()
        .map(|(i, addr)| {
            let mut sock = register(std::net::TcpStream::connect(addr).unwrap(), &reactor);
            s2.spawn(async move {
                let mut buf = [i as u8; 64];
                for _ in 0..TCP_ROUND_TRIPS {
                    sock.write_all(&buf).await.unwrap();
                    sock.read_exact(&mut buf).await.unwrap();
                }
            })
        })
        .collect();
    for c in clients {
        c.await;
    }
    server.await;
}

/// `channel_pipeline`: `PIPELINES` chains of `STAGES` tasks linked by
/// bounded tokio mpsc channels; `PIPELINE_ITEMS` items flow through each,
/// every stage adding to the item.
pub const PIPELINES: usize = 4;
pub const STAGES: usize = 4;
pub const PIPELINE_ITEMS: u64 = 5_000;

pub fn channel_pipeline<S: Spawner>(s: &S) {
    let s2 = s.clone();
    s.block_on(s.spawn(async move {
        let mut sinks = Vec::new();
        for _ in 0..PIPELINES {
            let (first_tx, mut rx) = tokio::sync::mpsc::channel::<u64>(64);
            for _ in 0..STAGES {
                let (tx, next_rx) = tokio::sync::mpsc::channel::<u64>(64);
                s2.spawn_detached(async move {
                    while let Some(v) = rx.recv().await {
                        if tx.send(v + 1).await.is_err() {
                            return;
                        }
                    }
                });
                rx = next_rx;
            }
            s2.spawn_detached(async move {
                for i in 0..PIPELINE_ITEMS {
                    first_tx.send(i).await.unwrap();
                }
            });
            sinks.push(s2.spawn(async move {
                let mut sum = 0u64;
                while let Some(v) = rx.recv().await {
                    sum += v;
                }
                sum
            }));
        }
        let expected = PIPELINE_ITEMS * (PIPELINE_ITEMS - 1) / 2 + PIPELINE_ITEMS * STAGES as u64;
        for sink in sinks {
            assert_eq!(sink.await, expected);
        }
    }));
}
