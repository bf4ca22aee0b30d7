//! COOP-BUDGET's refills: when a worker gives its tasks a fresh tokio
//! budget (`runtime/IO.md`, "COOP-BUDGET").
//!
//! tokio has no public call that sets a budget; a worker's run phase runs
//! inside `Handle::block_on`, which gives a fresh one each time the phase
//! returns `Pending` (a self-wake and a park that finds it: two atomic
//! operations). So a refill after every poll, as tokio's own workers do,
//! costs a yield-heavy load a fifth of its time, while one budget shared by
//! every poll since the last refill makes a task that uses tokio's channels
//! yield after its share of 128 units, not its own 128 (smaller batches,
//! more task switches). BUDGET-REFILL: share the budget while it lasts;
//! once it runs out within [`SPENT_WITHIN`] polls, the tasks are using
//! tokio's resources heavily, and each of the next [`FRESH_POLLS`] polls
//! gets a fresh budget of its own.

use std::cell::Cell;

/// A shared budget spent within this many polls marks the load as one that
/// uses tokio's resources heavily (`channel_pipeline` spends it within a
/// few polls; `yield_many` and the spawn loads never spend it).
pub(crate) const SPENT_WITHIN: u32 = 16;

/// How many polls then get a fresh budget each before the budget is shared
/// again (and the load looked at anew).
pub(crate) const FRESH_POLLS: u32 = 64;

/// One worker's refill state (lives on that worker's thread).
#[derive(Default)]
pub(crate) struct Refills {
    /// Polls under the current budget.
    polls: Cell<u32>,
    /// Polls left that get a fresh budget each.
    fresh_left: Cell<u32>,
}

impl Refills {
    /// After a poll: `spent` says whether the budget ran out. Returns
    /// whether the next poll gets a fresh budget (the phase returns
    /// `Pending` for it).
    pub(crate) fn after_poll(&self, spent: bool) -> bool {
        let polls = self.polls.get() + 1;
        if spent {
            if polls <= SPENT_WITHIN {
                self.fresh_left.set(FRESH_POLLS);
            }
            self.polls.set(0);
            return true;
        }
        let fresh_left = self.fresh_left.get();
        if fresh_left > 0 {
            self.fresh_left.set(fresh_left - 1);
            self.polls.set(0);
            return true;
        }
        self.polls.set(polls);
        false
    }

    /// A new budget began for another reason (the phase ended for a
    /// reactor turn or the idle wait).
    pub(crate) fn refilled(&self) {
        self.polls.set(0);
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_budget_that_lasts_is_shared_and_never_refilled_early() {
        let r = Refills::default();
        for _ in 0..10_000 {
            assert!(!r.after_poll(false));
        }
        // Spent after many polls: one refill, then shared again.
        assert!(r.after_poll(true));
        assert!(!r.after_poll(false));
    }

    #[test]
    fn a_budget_spent_within_a_few_polls_gives_the_next_polls_one_each() {
        let r = Refills::default();
        for _ in 0..SPENT_WITHIN - 1 {
            assert!(!r.after_poll(false));
        }
        assert!(r.after_poll(true));
        for _ in 0..FRESH_POLLS {
            assert!(r.after_poll(false));
        }
        // The heavy use stopped: the budget is shared again.
        assert!(!r.after_poll(false));
    }

    #[test]
    fn a_budget_spent_just_too_late_is_not_heavy_use() {
        let r = Refills::default();
        for _ in 0..SPENT_WITHIN {
            assert!(!r.after_poll(false));
        }
        assert!(r.after_poll(true));
        assert!(!r.after_poll(false));
    }

    #[test]
    fn a_refill_for_a_turn_starts_the_count_anew() {
        let r = Refills::default();
        for _ in 0..SPENT_WITHIN + 5 {
            r.after_poll(false);
        }
        r.refilled();
        assert!(r.after_poll(true));
        assert!(r.after_poll(false), "spent within a few polls of the turn");
    }
}
