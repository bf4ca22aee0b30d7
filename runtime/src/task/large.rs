//! BOX-LARGE: a large future is boxed where it enters the runtime.
//!
//! A future passed by value is copied into every frame it passes through
//! on its way to its heap allocation; in a debug build each of the ten or
//! so frames between `spawn` and async-task's allocation keeps a copy, and
//! a future of 128 KiB overflowed a 2 MiB stack (the process aborted). The
//! public entry points (`spawn`, `Handle::spawn`, `Runtime::spawn`,
//! `JoinSet::spawn_on`, `block_on`) move a future larger than
//! [`BOX_THRESHOLD`] into a box first, so only the small box travels down.
//! `tests/large_futures.rs` checks every entry point.

/// The size above which a future is boxed on entry: small enough that
/// the copies a debug build makes of a future below it fit any stack a
/// thread gets by default, large enough that common futures are not
/// allocated twice (async-task boxes large futures again inside).
pub(crate) const BOX_THRESHOLD: usize = if cfg!(debug_assertions) {
    2 * 1024
} else {
    16 * 1024
};

/// Whether a future of type `F` is boxed on entry (a constant per type:
/// the branch on it is folded away).
pub(crate) const fn is_large<F>() -> bool {
    std::mem::size_of::<F>() > BOX_THRESHOLD
}
