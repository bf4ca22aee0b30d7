//! Spawning: an `async-task` task whose future catches panics and leaves
//! the registry when it is dropped.

use crate::join::JoinHandle;
use crate::scheduler::{Shared, TaskMeta};
use std::any::Any;
use std::future::Future;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::task::{Context, Poll};

/// A panic payload.
pub(crate) type Payload = Box<dyn Any + Send + 'static>;

pin_project_lite::pin_project! {
    /// The user's future, polled inside `catch_unwind`; leaves the registry
    /// when dropped (on completion, cancellation or shutdown).
    struct Tracked<F> {
        #[pin]
        future: F,
        registration: Registration,
    }
}

impl<F: Future> Future for Tracked<F> {
    type Output = Result<F::Output, Payload>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let future = self.project().future;
        match catch_unwind(AssertUnwindSafe(|| future.poll(cx))) {
            Ok(Poll::Pending) => Poll::Pending,
            Ok(Poll::Ready(value)) => Poll::Ready(Ok(value)),
            Err(payload) => Poll::Ready(Err(payload)),
        }
    }
}

struct Registration {
    shared: Arc<Shared>,
    key: usize,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.shared.registry.remove(self.key);
    }
}

pub(crate) fn spawn<F>(shared: &Arc<Shared>, future: F) -> JoinHandle<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    if shared.is_closing() {
        return JoinHandle::cancelled();
    }
    let spawned = shared.registry.insert_with(|key| {
        let tracked = Tracked {
            future,
            registration: Registration {
                shared: shared.clone(),
                key,
            },
        };
        let scheduler = shared.clone();
        let (runnable, task) = async_task::Builder::new()
            .metadata(TaskMeta {
                key,
                aborted: AtomicBool::new(false),
            })
            .spawn(
                move |_| tracked,
                async_task::WithInfo(move |runnable, info| scheduler.schedule(runnable, info)),
            );
        let waker = runnable.waker();
        ((runnable, task), waker)
    });
    match spawned {
        Some((runnable, task)) => {
            shared.schedule_spawned(runnable);
            JoinHandle::new(task, shared.clone())
        }
        // Closed between the check above and the registry's lock.
        None => JoinHandle::cancelled(),
    }
}
