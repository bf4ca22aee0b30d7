//! The one place that chooses between `std` and `loom` sync types.
//!
//! Everything in this crate imports its atomics and locks from here, so
//! that `RUSTFLAGS="--cfg loom"` model-checks the real protocol code.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{fence, AtomicUsize, Ordering};
#[cfg(not(loom))]
pub(crate) use std::sync::{Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{fence, AtomicUsize, Ordering};
#[cfg(loom)]
pub(crate) use loom::sync::{Mutex, MutexGuard};
