//! The machine's floor: a plain thread-to-thread wake-up round trip
//! (`thread::park` / `unpark`, a futex each way) between two CPUs, measured
//! in the same run as whatever is compared to it.
#![allow(dead_code)]

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use unplug_worker::affinity;

/// Two threads ping-ponging with `thread::park`/`unpark`.
pub struct Floor {
    peer: thread::Thread,
    ping: Arc<AtomicU64>,
    pong: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    join: Option<thread::JoinHandle<()>>,
    seq: u64,
}

impl Floor {
    /// A peer thread pinned to `cpu`; the caller should pin itself to
    /// another CPU.
    pub fn new(cpu: usize) -> Self {
        let (ping, pong, stop) = (
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicU64::new(0)),
            Arc::new(AtomicBool::new(false)),
        );
        let caller = thread::current();
        let (pi, po, st) = (ping.clone(), pong.clone(), stop.clone());
        let join = thread::spawn(move || {
            affinity::pin_to(0, &[cpu]).unwrap();
            let mut seen = 0;
            while !st.load(SeqCst) {
                let now = pi.load(SeqCst);
                if now == seen {
                    thread::park();
                    continue;
                }
                seen = now;
                po.store(now, SeqCst);
                caller.unpark();
            }
        });
        let peer = join.thread().clone();
        Floor {
            peer,
            ping,
            pong,
            stop,
            join: Some(join),
            seq: 0,
        }
    }

    /// One round trip: wake the peer, sleep until it wakes us.
    pub fn round_trip(&mut self) -> Duration {
        self.seq += 1;
        let start = Instant::now();
        self.ping.store(self.seq, SeqCst);
        self.peer.unpark();
        while self.pong.load(SeqCst) != self.seq {
            thread::park();
        }
        start.elapsed()
    }
}

impl Drop for Floor {
    fn drop(&mut self) {
        self.stop.store(true, SeqCst);
        self.peer.unpark();
        let _ = self.join.take().unwrap().join();
    }
}
