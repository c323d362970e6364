//! The engine's timers: one [`Timer`] enum and a small table of deadlines.
//!
//! [`Engine::poll_timeout`](super::Engine::poll_timeout) is the earliest entry; on
//! `Input::Timeout` every entry that is due is taken out of the table (in the enum's
//! order) and handled, so a trace can say which timer woke a node. The table holds two
//! global timers and at most three per job, so a linear scan is cheap.

use std::collections::BTreeMap;

use super::Millis;
use crate::job::JobId;

/// Why an engine wants to be woken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Timer {
    /// A job's steal grace (`steal_after_ms`) ends: idle nodes may steal its tasks.
    StealOpen(JobId),
    /// A job's pacing delay ends: its next task may start.
    Paced(JobId),
    /// Tasks left to other thieves have waited `steal_after_ms`: look again.
    StealRetry(JobId),
    /// Own facts batched since the last flush go out.
    Flush,
    /// Periodic work: digests, store and fetch retries, backups, help requests.
    Sync,
    /// A peer with requests waiting has its serving budget again.
    Serve,
}

impl Timer {
    fn job(self) -> Option<JobId> {
        match self {
            Timer::StealOpen(j) | Timer::Paced(j) | Timer::StealRetry(j) => Some(j),
            Timer::Flush | Timer::Sync | Timer::Serve => None,
        }
    }
}

/// Deadlines by timer.
#[derive(Debug, Default)]
pub(super) struct Timers {
    table: BTreeMap<Timer, Millis>,
}

impl Timers {
    /// Sets (or moves) a timer.
    pub(super) fn set(&mut self, timer: Timer, at: Millis) {
        self.table.insert(timer, at);
    }

    /// Disarms a timer.
    pub(super) fn clear(&mut self, timer: Timer) {
        self.table.remove(&timer);
    }

    /// Whether a timer is armed.
    pub(super) fn is_set(&self, timer: Timer) -> bool {
        self.table.contains_key(&timer)
    }

    /// Disarms every timer of a job that is gone.
    pub(super) fn clear_job(&mut self, job: JobId) {
        self.table.retain(|t, _| t.job() != Some(job));
    }

    /// The earliest deadline and its timer.
    pub(super) fn next(&self) -> Option<(Timer, Millis)> {
        self.table
            .iter()
            .min_by_key(|(t, at)| (**at, **t))
            .map(|(t, at)| (*t, *at))
    }

    /// Takes out every timer due at `now`, in the enum's order.
    pub(super) fn take_due(&mut self, now: Millis) -> Vec<Timer> {
        let due: Vec<Timer> = self
            .table
            .iter()
            .filter(|(_, at)| **at <= now)
            .map(|(t, _)| *t)
            .collect();
        for t in &due {
            self.table.remove(t);
        }
        due
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_deadline_wins_and_due_timers_leave_the_table() {
        let mut t = Timers::default();
        assert_eq!(t.next(), None);
        t.set(Timer::Sync, Millis(500));
        t.set(Timer::Flush, Millis(5));
        t.set(Timer::Paced(JobId(1)), Millis(40));
        t.set(Timer::StealOpen(JobId(1)), Millis(200));
        assert_eq!(t.next(), Some((Timer::Flush, Millis(5))));
        assert_eq!(t.take_due(Millis(4)), vec![]);
        assert_eq!(
            t.take_due(Millis(200)),
            vec![
                Timer::StealOpen(JobId(1)),
                Timer::Paced(JobId(1)),
                Timer::Flush
            ]
        );
        assert_eq!(t.next(), Some((Timer::Sync, Millis(500))));
        t.set(Timer::Paced(JobId(2)), Millis(600));
        t.clear_job(JobId(2));
        assert!(!t.is_set(Timer::Paced(JobId(2))));
        assert!(t.is_set(Timer::Sync));
    }
}
