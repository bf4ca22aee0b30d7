//! "Inactive" as the kernel sees it: the analogue of `wait_task_inactive`.
//!
//! On Linux the controller reads `/proc/self/task/<tid>/stat` and accepts the
//! worker as inactive when the kernel reports state `S` (interruptible sleep)
//! while the worker's SLEEPING marker is up for the park's generation. The
//! marker alone says "the worker has committed to its blocking call and runs
//! no user code"; the kernel's `S` adds "and it has actually gone to sleep in
//! the kernel", so a `sched_setaffinity` re-bind right after `park()` acts on
//! a sleeping thread. Cost: one open/read/close of a small procfs file per
//! probe (a few microseconds), usually one or two probes per park.
//!
//! What it does not guarantee: the kernel sets the task state before the
//! final context switch, so `S` can be read a few hundred nanoseconds before
//! the thread has left the CPU (`wait_task_inactive` also checks `on_cpu`,
//! which procfs does not show). Nothing of the worker's user code can run in
//! that window; see PROTOCOL.md, P4.

/// Returns true when the kernel reports thread `tid` of this process as
/// sleeping (`S`). Any read or parse failure counts as "not yet".
pub(crate) fn kernel_says_sleeping(tid: i32, probe: &mut StatProbe) -> bool {
    probe.read(tid) && state_char(&probe.buf) == Some(b'S')
}

/// An open `/proc/self/task/<tid>/stat`, re-read with `pread` at offset 0
/// (procfs regenerates the text on every read), so a park pays one `open`
/// rather than one per probe.
#[derive(Default)]
pub(crate) struct StatProbe {
    file: Option<std::fs::File>,
    buf: Vec<u8>,
}

impl StatProbe {
    fn read(&mut self, tid: i32) -> bool {
        use std::os::unix::fs::FileExt;
        if self.file.is_none() {
            self.file = std::fs::File::open(format!("/proc/self/task/{tid}/stat")).ok();
        }
        let Some(file) = &self.file else {
            return false;
        };
        self.buf.resize(1024, 0);
        match file.read_at(&mut self.buf, 0) {
            Ok(n) if n > 0 => {
                self.buf.truncate(n);
                true
            }
            _ => false,
        }
    }
}

/// The state field of a `stat` line: the first non-space byte after the
/// *last* `)` (the command name may itself contain `)` and spaces).
pub(crate) fn state_char(stat: &[u8]) -> Option<u8> {
    let close = stat.iter().rposition(|&b| b == b')')?;
    stat[close + 1..]
        .iter()
        .copied()
        .find(|b| !b.is_ascii_whitespace())
}

#[cfg(test)]
mod tests {
    use super::state_char;

    #[test]
    fn state_is_read_after_the_last_paren_of_the_name() {
        assert_eq!(state_char(b"123 (a) b) S 1 2 3"), Some(b'S'));
        assert_eq!(state_char(b"123 (worker-0) R 1 2"), Some(b'R'));
        assert_eq!(state_char(b"garbage"), None);
    }
}
