//! Conservation: many tasks spawned from many threads (inside and outside
//! the runtime), waking each other across workers through channels; each
//! is polled to completion exactly once, never by two workers at once.
#![cfg(not(loom))]

mod support;

use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use unplug::Runtime;

/// Wraps a future with a guard that fails if two threads poll it at once,
/// and counts its polls and completions.
struct Guarded<F> {
    inner: Pin<Box<F>>,
    in_poll: Arc<AtomicBool>,
    book: Arc<Book>,
    id: usize,
}

#[derive(Default)]
struct Book {
    double_polls: AtomicUsize,
    polls: AtomicU64,
    completed: Mutex<Vec<usize>>,
    threads: Mutex<HashSet<std::thread::ThreadId>>,
}

impl<F: Future> Future for Guarded<F> {
    type Output = F::Output;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        if self.in_poll.swap(true, SeqCst) {
            self.book.double_polls.fetch_add(1, SeqCst);
        }
        self.book.polls.fetch_add(1, SeqCst);
        self.book
            .threads
            .lock()
            .unwrap()
            .insert(std::thread::current().id());
        let out = self.inner.as_mut().poll(cx);
        self.in_poll.store(false, SeqCst);
        if out.is_ready() {
            self.book.completed.lock().unwrap().push(self.id);
        }
        out
    }
}

fn guarded<F: Future>(book: &Arc<Book>, id: usize, f: F) -> Guarded<F> {
    Guarded {
        inner: Box::pin(f),
        in_poll: Arc::new(AtomicBool::new(false)),
        book: book.clone(),
        id,
    }
}

#[test]
fn every_task_completes_exactly_once_and_is_never_polled_twice_at_once() {
    const SPAWNERS: usize = 4;
    const RINGS_PER_SPAWNER: usize = 50;
    const RING: usize = 8;
    const LAPS: usize = 20;
    let rt = Runtime::builder().workers(2).build().unwrap();
    let book = Arc::new(Book::default());
    let handle = rt.handle().clone();
    let b = book.clone();
    let ids = support::with_watchdog("conservation", move || {
        // Outside spawners (plain threads) and inside spawners (tasks) each
        // build rings of tasks that pass a token LAPS times around.
        let next_id = Arc::new(AtomicUsize::new(0));
        let make_ring = {
            let (book, next_id) = (b.clone(), next_id.clone());
            move |h: &unplug::Handle| {
                let senders: Vec<_> = (0..RING)
                    .map(|_| tokio::sync::mpsc::unbounded_channel::<usize>())
                    .collect();
                let (txs, rxs): (Vec<_>, Vec<_>) = senders.into_iter().unzip();
                let mut joins = Vec::new();
                for (i, mut rx) in rxs.into_iter().enumerate() {
                    let next = txs[(i + 1) % RING].clone();
                    let id = next_id.fetch_add(1, SeqCst);
                    joins.push(h.spawn(guarded(&book, id, async move {
                        let mut seen = 0;
                        while let Some(hop) = rx.recv().await {
                            seen += 1;
                            if hop + 1 < RING * LAPS {
                                let _ = next.send(hop + 1);
                            } else {
                                break;
                            }
                            if seen == LAPS {
                                break;
                            }
                        }
                        id
                    })));
                }
                txs[0].send(0).unwrap();
                joins
            }
        };
        let mut threads = Vec::new();
        for s in 0..SPAWNERS {
            let (h, make_ring) = (handle.clone(), make_ring.clone());
            threads.push(std::thread::spawn(move || {
                let mut joins = Vec::new();
                for r in 0..RINGS_PER_SPAWNER {
                    if (s + r) % 2 == 0 {
                        joins.extend(make_ring(&h));
                    } else {
                        // From inside the runtime.
                        let (h2, mr) = (h.clone(), make_ring.clone());
                        let inner = h.spawn(async move { mr(&h2) });
                        joins.extend(h.block_on(inner).unwrap());
                    }
                }
                h.block_on(async move {
                    let mut ids = Vec::new();
                    for j in joins {
                        ids.push(j.await.unwrap());
                    }
                    ids
                })
            }));
        }
        let mut ids: Vec<usize> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        ids.sort_unstable();
        ids
    });
    let total = SPAWNERS * RINGS_PER_SPAWNER * RING;
    assert_eq!(
        ids,
        (0..total).collect::<Vec<_>>(),
        "every task completed, each once"
    );
    let mut completed = book.completed.lock().unwrap().clone();
    completed.sort_unstable();
    assert_eq!(completed, ids, "each completion observed exactly once");
    assert_eq!(
        book.double_polls.load(SeqCst),
        0,
        "a task was polled by two threads at once"
    );
    assert!(book.polls.load(SeqCst) >= total as u64);
    // Work really crossed workers.
    assert!(book.threads.lock().unwrap().len() >= 2);
    assert_eq!(rt.handle().live_tasks(), 0);
}
