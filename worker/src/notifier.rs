//! The handle producers of work hold to wake a worker's idle wait.

use crate::protocol::Protocol;
use std::sync::Arc;

/// Wakes one worker's [`idle_wait`](crate::WorkerContext::idle_wait).
///
/// Publish the work first, then call [`notify`](Notifier::notify): the
/// worker's idle wait re-checks after registering, so the work is never
/// missed (P2). Cheap when the worker is awake.
///
/// ```
/// use std::sync::{atomic::{AtomicUsize, Ordering}, Arc};
/// use unplug_worker::{Wake, Worker};
///
/// let pending = Arc::new(AtomicUsize::new(0));
/// let seen = pending.clone();
/// let worker = Worker::builder().spawn(move |ctx| {
///     let mut done = 0;
///     loop {
///         match ctx.idle_wait(|| seen.load(Ordering::Acquire) > done) {
///             Wake::Work => done += 1,
///             // On stop, finish what was published: nothing is lost.
///             Wake::Stop => return seen.load(Ordering::Acquire),
///             Wake::Park => {
///                 ctx.parkme();
///             }
///         }
///     }
/// }).unwrap();
/// let notifier = worker.notifier();
/// for _ in 0..3 {
///     pending.fetch_add(1, Ordering::Release); // publish...
///     notifier.notify();                       // ...then wake
/// }
/// assert_eq!(worker.stop().unwrap(), 3);
/// ```
#[derive(Clone)]
pub struct Notifier {
    protocol: Arc<Protocol>,
}

impl Notifier {
    /// A notifier for the worker that runs `protocol`.
    pub fn new(protocol: Arc<Protocol>) -> Self {
        Notifier { protocol }
    }

    /// Wakes the worker if it sleeps in its idle wait.
    #[inline]
    pub fn notify(&self) {
        self.protocol.notify_work();
    }
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("protocol", &self.protocol)
            .finish()
    }
}
