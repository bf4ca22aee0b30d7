//! Which CPUs a growing `set_workers` keeps off: those unplugged (and not
//! plugged since), and those an `unplug_cpu` call is unplugging right now
//! (UNPLUG-MARKS-AT-REQUEST in `runtime/CONTROLLER.md`).

use std::collections::{BTreeMap, BTreeSet};

/// The unplugged CPUs: marks left by completed unplugs, and a count of the
/// unplug calls of each CPU still waiting for their parks. Behind the pool
/// lock.
#[derive(Debug, Default)]
pub(super) struct UnpluggedCpus {
    /// Unplugged by a call that completed, and not plugged since.
    marked: BTreeSet<usize>,
    /// Unplug calls that requested their parks and have not settled yet.
    pending: BTreeMap<usize, usize>,
}

impl UnpluggedCpus {
    /// Is `cpu` unplugged, or being unplugged?
    pub(super) fn contains(&self, cpu: usize) -> bool {
        self.marked.contains(&cpu) || self.pending.contains_key(&cpu)
    }

    /// An unplug call of `cpu` requested its parks (under the same lock).
    pub(super) fn begin(&mut self, cpu: usize) {
        *self.pending.entry(cpu).or_insert(0) += 1;
    }

    /// That call settled: `completed` leaves the CPU marked (unless
    /// `runs_there`: a later plug or unpark already runs a worker on it);
    /// a call that timed out leaves the mark as it found it.
    pub(super) fn end(&mut self, cpu: usize, completed: bool, runs_there: bool) {
        if let Some(n) = self.pending.get_mut(&cpu) {
            *n -= 1;
            if *n == 0 {
                self.pending.remove(&cpu);
            }
        }
        if completed && !runs_there {
            self.marked.insert(cpu);
        }
    }

    /// Marks `cpu` unplugged (restoring a mark a failed plug lifted).
    pub(super) fn mark(&mut self, cpu: usize) {
        self.marked.insert(cpu);
    }

    /// `cpu` is plugged again; returns whether it was marked.
    pub(super) fn plug(&mut self, cpu: usize) -> bool {
        self.marked.remove(&cpu)
    }
}

#[cfg(test)]
mod tests {
    use super::UnpluggedCpus;

    #[test]
    fn a_cpu_counts_as_unplugged_while_its_unplug_waits() {
        let mut u = UnpluggedCpus::default();
        u.begin(1);
        assert!(u.contains(1));
        u.end(1, true, false);
        assert!(u.contains(1));
        assert!(u.plug(1));
        assert!(!u.contains(1));
    }

    #[test]
    fn a_timed_out_unplug_leaves_the_mark_as_it_found_it() {
        let mut u = UnpluggedCpus::default();
        u.begin(1);
        u.end(1, false, false);
        assert!(!u.contains(1));
        u.mark(2);
        u.begin(2);
        u.end(2, false, false);
        assert!(u.contains(2));
    }

    #[test]
    fn a_cpu_stays_unplugged_while_any_of_its_unplugs_waits() {
        let mut u = UnpluggedCpus::default();
        u.begin(1);
        u.begin(1);
        u.end(1, false, false);
        assert!(u.contains(1));
        u.end(1, true, true);
        assert!(!u.contains(1), "a worker a later plug runs there wins");
    }
}
