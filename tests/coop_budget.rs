//! COOP-BUDGET (runtime/IO.md): tokio's cooperative budget is in force in
//! unplug tasks, so a task draining a tokio resource that is always ready
//! yields its worker now and then instead of holding it (and a park) for
//! as long as it has input.
#![cfg(not(loom))]

mod support;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll};
use support::with_watchdog;

/// Counts the polls of the future it wraps.
struct CountPolls<F> {
    inner: Pin<Box<F>>,
    polls: Arc<AtomicU64>,
}

impl<F: Future> Future for CountPolls<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        self.polls.fetch_add(1, SeqCst);
        self.inner.as_mut().poll(cx)
    }
}

const MESSAGES: u64 = 100_000;

#[test]
fn draining_a_ready_channel_yields_the_worker() {
    with_watchdog("coop budget", || {
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        for i in 0..MESSAGES {
            tx.send(i).unwrap();
        }
        drop(tx);
        let polls = Arc::new(AtomicU64::new(0));
        let drain = CountPolls {
            inner: Box::pin(async move {
                let mut sum = 0u64;
                while let Some(v) = rx.recv().await {
                    sum += v;
                }
                sum
            }),
            polls: polls.clone(),
        };
        let sum = rt.block_on(rt.spawn(drain)).unwrap();
        assert_eq!(sum, MESSAGES * (MESSAGES - 1) / 2);
        let polls = polls.load(SeqCst);
        // tokio's budget is 128 units a poll: about 781 polls here. With
        // no budget in force the whole channel drains in one poll.
        println!("{MESSAGES} ready messages drained in {polls} polls");
        assert!(
            polls >= MESSAGES / 128 / 2,
            "the drain yielded only {polls} times: no cooperative budget"
        );
    });
}

#[test]
fn another_task_runs_while_a_ready_stream_drains_on_the_only_worker() {
    with_watchdog("coop fairness", || {
        let rt = unplug::Runtime::builder().workers(1).build().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<u64>();
        for i in 0..MESSAGES {
            tx.send(i).unwrap();
        }
        drop(tx);
        let other_ran = Arc::new(AtomicBool::new(false));
        let seen_mid_drain = Arc::new(AtomicBool::new(false));
        let (o, s) = (other_ran.clone(), seen_mid_drain.clone());
        let done = rt.block_on(rt.spawn(async move {
            // Queued behind the drain on the same worker.
            let other = unplug::spawn(async move { o.store(true, SeqCst) });
            let mut n = 0u64;
            while rx.recv().await.is_some() {
                n += 1;
                if n == MESSAGES / 2 && other_ran.load(SeqCst) {
                    s.store(true, SeqCst);
                }
            }
            other.await.unwrap();
            n
        }));
        assert_eq!(done.unwrap(), MESSAGES);
        assert!(
            seen_mid_drain.load(SeqCst),
            "the other task waited for the whole drain"
        );
    });
}
