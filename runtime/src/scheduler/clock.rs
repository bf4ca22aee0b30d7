//! Cheap stamps for measurements (never for synchronisation): time since
//! one process-wide origin, as integers that fit in atomics.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

/// Nanoseconds since the origin.
pub(crate) fn now_ns() -> u64 {
    origin().elapsed().as_nanos() as u64
}

/// Microseconds since the origin, wrapping every ~71 minutes, never 0 (0
/// means "no stamp").
pub(crate) fn now_us32() -> u32 {
    (origin().elapsed().as_micros() as u32).max(1)
}

/// Time from a stamp of [`now_us32`] cut to its low 30 bits (a task's
/// schedule stamp) to now, correct across one wrap (17.9 minutes).
pub(crate) fn since_us30(since: u32) -> Duration {
    Duration::from_micros(u64::from(now_us32().wrapping_sub(since) & ((1 << 30) - 1)))
}

/// Time from stamp `since` (of [`now_ns`]) to now.
pub(crate) fn since_ns(since: u64) -> Duration {
    Duration::from_nanos(now_ns().saturating_sub(since))
}
