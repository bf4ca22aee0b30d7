//! TURN-WOKEN-NEXT (runtime/IO.md): a timer or a socket that a busy
//! worker's reactor turn makes ready runs right after the turn, not behind
//! that worker's run queue. A red team (2026-12-05) found it queued at the
//! back: beside a task that fans out batches of children polling 50 us
//! each, `tokio::time::sleep(1 ms)` came back 12 ms late on one worker (all
//! 40 samples) and up to 7-12 ms on two, and a datagram's reader woke as
//! late; the lateness was the backlog's length times 50 us (51 ms with
//! 1,024 children queued). tokio's multi-thread runtime served the same
//! program within 2-4 ms: its turn's wake-up goes to the LIFO slot, which
//! serves the last task a turn wakes; here eight sleepers at once must all
//! come back in time.

#![cfg(not(loom))]

mod support;

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::time::Duration;

/// Each child of the storm polls this long, once.
const CHILD_POLL: Duration = Duration::from_micros(50);
/// Children per batch: 1,024 x 50 us is 51 ms of queued work, which a
/// wake-up queued behind it waits.
const BATCH: usize = 1024;
const SAMPLES: usize = 30;
/// Sleepers at once: a turn that fires several timers must serve them all
/// (tokio's LIFO slot takes only the last: a fix that did the same left 7
/// of 8 sleepers 52 ms late).
const SLEEPERS: usize = 8;
/// Far above what a turn's cadence allows (61 polls of 50 us, 3 ms, plus
/// the timer's 1 ms resolution), far below the backlog's 51 ms.
const LATE: Duration = Duration::from_millis(15);

/// For each datagram, now minus the send time written in it.
async fn datagram_lateness(sock: UdpSocket, got: Arc<AtomicU64>) -> Vec<Duration> {
    let sock = tokio::net::UdpSocket::from_std(sock).unwrap();
    let mut late = Vec::new();
    let mut buf = [0u8; 8];
    for _ in 0..SAMPLES {
        sock.recv_from(&mut buf).await.unwrap();
        let sent = u64::from_le_bytes(buf);
        let now = support::epoch().elapsed().as_nanos() as u64;
        late.push(Duration::from_nanos(now.saturating_sub(sent)));
        got.fetch_add(1, SeqCst);
    }
    late
}

/// Sends `SAMPLES` stamped datagrams from this (outside) thread, each once
/// the previous one was read, so each finds its reader waiting for
/// readiness. The pause before each only spreads them over the storm's
/// phases; nothing waits on it.
fn send_datagrams(to: SocketAddr, got: &AtomicU64) {
    let sender = UdpSocket::bind("127.0.0.1:0").unwrap();
    for i in 0..SAMPLES as u64 {
        std::thread::sleep(Duration::from_micros(700 + (i * 37) % 600));
        let sent = support::epoch().elapsed().as_nanos() as u64;
        sender.send_to(&sent.to_le_bytes(), to).unwrap();
        support::wait_for("the datagram to be read", || got.load(SeqCst) > i);
    }
}

/// The worst lateness of a timer and of a datagram's reader beside the
/// storm, on a runtime of `workers`.
fn worst_beside_a_storm(workers: usize) -> (Duration, Duration) {
    let rt = unplug::Runtime::builder().workers(workers).build().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_nonblocking(true).unwrap();
    let to = sock.local_addr().unwrap();
    let got = Arc::new(AtomicU64::new(0));
    support::start_fan_out_storm(&rt, &stop, BATCH, CHILD_POLL);
    let mut timers = support::sleepers_lateness(&rt, SLEEPERS, SAMPLES);
    let reader = rt.spawn(datagram_lateness(sock, got.clone()));
    send_datagrams(to, &got);
    let mut datagrams = rt.block_on(reader).unwrap();
    stop.store(true, SeqCst);
    rt.shutdown_timeout(Duration::from_secs(5));
    timers.sort();
    datagrams.sort();
    eprintln!(
        "{workers} worker(s): sleep(1 ms) late by median {:?}, worst {:?}; datagram read \
         after median {:?}, worst {:?}",
        timers[timers.len() / 2],
        timers[timers.len() - 1],
        datagrams[SAMPLES / 2],
        datagrams[SAMPLES - 1]
    );
    (timers[timers.len() - 1], datagrams[SAMPLES - 1])
}

#[test]
fn timers_and_sockets_a_busy_turn_wakes_do_not_wait_behind_the_backlog() {
    support::with_watchdog("timers and datagrams beside a spawn storm", || {
        support::epoch();
        // One runtime at a time: two would share the two CPUs.
        for workers in [1, 2] {
            let (timer, datagram) = worst_beside_a_storm(workers);
            assert!(
                timer < LATE && datagram < LATE,
                "{workers} worker(s): a wake-up from a busy turn waited behind the backlog: \
                 timer {timer:?}, datagram {datagram:?} late (bound {LATE:?})"
            );
        }
    });
}
