//! ONE-WAITER (runtime/IO.md): only one idle worker at a time waits inside
//! the reactor; the others wait on their own notifiers. The role must never
//! be lost: when its holder parks, or is held in a long poll, another
//! worker takes it, so I/O reaches a runtime whose other workers all sleep.
#![cfg(not(loom))]

mod support;

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};
use support::{wait_for, with_watchdog};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use unplug::worker::WorkerState;

/// How long one echoed byte may take before the test calls it a stall.
const STALL: Duration = Duration::from_millis(150);

/// How long an echo beside a long poll may take: the monitor looks for a
/// starved reactor every 2.5 ms, so the hand-over takes 2.5-5 ms; the rest
/// is the margin for a loaded machine (beside two busy loops, 1 echo in 12
/// runs of ten took over 50 ms with or without MONITOR-DORMANT). Still
/// under the 100-190 ms a monitor looking every 100 ms gave (the large
/// threshold's defect) and the 300 ms poll a missing hand-over waits for.
const BESIDE_LONG_POLL: Duration = Duration::from_millis(100);

/// A 2-worker runtime running [`echo_server`], its handle, and the client
/// end after one echo.
fn echoing_runtime() -> (unplug::Runtime, unplug::Handle, std::net::TcpStream) {
    echoing_runtime_with(unplug::Runtime::builder())
}

/// [`echoing_runtime`] from `builder`.
fn echoing_runtime_with(
    builder: unplug::Builder,
) -> (unplug::Runtime, unplug::Handle, std::net::TcpStream) {
    let rt = builder.workers(2).thread_name("ow").build().unwrap();
    let h = rt.handle().clone();
    let mut client = echo_server(&rt);
    round_trip(&mut client, 0).expect("the first echo");
    (rt, h, client)
}

/// An unplug task echoing single bytes on one accepted connection; the
/// client end, a blocking std socket that gives up after `STALL`.
fn echo_server(rt: &unplug::Runtime) -> std::net::TcpStream {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(listener).unwrap();
        let (mut sock, _) = listener.accept().await.unwrap();
        let mut byte = [0u8; 1];
        while sock.read_exact(&mut byte).await.is_ok() {
            if sock.write_all(&byte).await.is_err() {
                break;
            }
        }
    });
    let client = std::net::TcpStream::connect(addr).unwrap();
    client.set_nodelay(true).unwrap();
    client.set_read_timeout(Some(STALL)).unwrap();
    client
}

/// One byte there and back; how long it took, or the error of a stall.
fn round_trip(client: &mut std::net::TcpStream, byte: u8) -> std::io::Result<Duration> {
    let start = Instant::now();
    client.write_all(&[byte])?;
    let mut back = [0u8; 1];
    client.read_exact(&mut back)?;
    assert_eq!(back[0], byte);
    Ok(start.elapsed())
}

fn states(h: &unplug::Handle) -> Vec<WorkerState> {
    h.workers().iter().map(|w| w.state).collect()
}

#[test]
fn io_reaches_an_idle_runtime_after_either_worker_parks() {
    with_watchdog("one waiter across parks", || {
        let (_rt, h, mut client) = echoing_runtime();
        for k in 0..100u32 {
            let id = (k % 2) as usize;
            h.park_worker(id).unwrap();
            // The other worker is asleep: if the parked one held the role,
            // only the role's hand-over puts a worker in the reactor.
            wait_for("the other worker asleep", || {
                states(&h)[1 - id] == WorkerState::Idle
            });
            if let Err(e) = round_trip(&mut client, k as u8) {
                panic!("echo {k} with worker {id} parked stalled past {STALL:?}: {e}");
            }
            h.unpark_worker(id, None).unwrap();
            wait_for("both workers asleep", || {
                states(&h).iter().all(|s| *s == WorkerState::Idle)
            });
        }
    });
}

#[test]
fn io_is_served_while_the_reactor_waiter_is_held_in_a_long_poll() {
    with_watchdog("one waiter beside a long poll", || {
        let (rt, h, client) = echoing_runtime();
        echo_beside_long_polls(&rt, &h, client);
    });
}

/// A long-poll threshold of a second: the monitor reports long polls at
/// 1 s, but still hands the role on within milliseconds (it looks for a
/// starved reactor every 2.5 ms whatever the threshold). Before, it looked
/// once per `threshold / 4` (100 ms here) and echoes took up to 190 ms.
#[test]
fn a_large_long_poll_threshold_does_not_slow_the_hand_over() {
    with_watchdog("one waiter beside a long poll, threshold 1 s", || {
        let builder = unplug::Runtime::builder().long_poll_threshold(Duration::from_secs(1));
        let (rt, h, client) = echoing_runtime_with(builder);
        echo_beside_long_polls(&rt, &h, client);
    });
}

/// Ten trials: a 300 ms poll starts on either worker while both are idle,
/// then one echo must come back within `BESIDE_LONG_POLL`. Whenever the poll is on the
/// role's holder, only the monitor's hand-over puts a worker in the
/// reactor.
fn echo_beside_long_polls(
    rt: &unplug::Runtime,
    h: &unplug::Handle,
    mut client: std::net::TcpStream,
) {
    client.set_read_timeout(Some(BESIDE_LONG_POLL)).unwrap();
    let mut slowest = Duration::ZERO;
    for k in 0..10u8 {
        wait_for("both workers asleep", || {
            states(h).iter().all(|s| *s == WorkerState::Idle)
        });
        let started = Arc::new(AtomicBool::new(false));
        let s = started.clone();
        let long = rt.spawn(async move {
            s.store(true, SeqCst);
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(300) {
                std::hint::spin_loop();
            }
        });
        wait_for("the long poll to start", || started.load(SeqCst));
        match round_trip(&mut client, k) {
            Ok(took) => slowest = slowest.max(took),
            Err(e) => panic!("echo {k} beside a 300 ms poll took over {BESIDE_LONG_POLL:?}: {e}"),
        }
        rt.block_on(long).unwrap();
    }
    eprintln!("slowest echo beside a 300 ms poll: {slowest:?}");
}
