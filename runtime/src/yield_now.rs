//! `yield_now`: let other tasks run.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Yields to the scheduler once: the task goes to the back of its worker's
/// queue, behind the tasks already waiting there.
///
/// ```
/// let rt = unplug::Runtime::builder().workers(1).build().unwrap();
/// rt.block_on(async {
///     unplug::spawn(async {
///         for _ in 0..3 {
///             unplug::yield_now().await;
///         }
///     })
///     .await
///     .unwrap();
/// });
/// ```
pub async fn yield_now() {
    YieldNow { yielded: false }.await
}

struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        // Woken while running: the scheduler puts it at the back of the
        // local queue, not in the LIFO slot.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
