//! What every handle of one runtime shares: the layers below, wired
//! together.

use crate::control::Controller;
use crate::metrics::RuntimeMetrics;
use crate::scheduler::Scheduler;
use std::sync::Arc;

/// What every handle of one runtime shares.
pub(crate) struct Inner {
    pub(crate) scheduler: Arc<Scheduler>,
    pub(crate) control: Arc<Controller>,
    pub(crate) tokio: tokio::runtime::Handle,
    pub(crate) metrics: Option<Arc<RuntimeMetrics>>,
}
