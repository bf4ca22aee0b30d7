//! A worker's standing with the pool's one-wake-at-a-time rule (the
//! `searching` half of `unplug_worker::IdleSet`).
//!
//! A producer that publishes work wakes a sleeper only if no worker is
//! *searching*; a worker it wakes is searching until it finds a task. So a
//! searcher carries an obligation for every producer that skipped its
//! wake-up meanwhile: find that work, or pass the wake-up on. It discharges
//! it in exactly one of three ways:
//!
//! 1. it finds a task: [`Search::Searching`] → [`Search::Settled`], and if
//!    it was the last searcher and work remains it wakes the next sleeper
//!    (wake-ups chain: `Local::run`);
//! 2. it goes back to sleep: `IdleSet::sleep` ends the search *before*
//!    registering and re-checking for work (P2), so the re-check sees what
//!    producers skipped;
//! 3. it leaves for a park or a stop: `Local::leave` ends the search, then
//!    re-checks every queue and wakes one sleeper if work is there
//!    (SEARCH-HANDOFF, defect 4). Without it, a search that ended inside
//!    the idle sleep's bookkeeping and then saw the park request left the
//!    skipped work in a queue while every other worker slept.

/// Whether a worker owes the pool a wake-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Search {
    /// Awake and owing nothing: never woken by a producer, or found work
    /// since.
    Settled,
    /// Woken by a producer (`IdleSet::pop`) and no task found yet. Counted
    /// in `IdleSet::searching`; while any worker is here, producers wake
    /// nobody.
    Searching,
}

impl Search {
    /// For `IdleSet`'s `&mut bool` interface.
    pub(crate) fn as_flag(self) -> bool {
        self == Search::Searching
    }

    /// From `IdleSet`'s `&mut bool` interface.
    pub(crate) fn from_flag(searching: bool) -> Self {
        if searching {
            Search::Searching
        } else {
            Search::Settled
        }
    }
}
