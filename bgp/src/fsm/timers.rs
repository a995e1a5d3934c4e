//! Timer deadlines. The FSM never reads a clock: it stores the deadline computed from the
//! `now` it was handed, reports it as [`Output::ArmTimer`], and ignores an expiry that arrives
//! for a timer that was stopped or re-armed since (a stale wake-up from the caller).

use std::time::{Duration, Instant};

use super::Output;
use super::state::Timer;

/// One optional deadline per [`Timer`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Timers {
    deadlines: [Option<Instant>; 7],
}

impl Timers {
    /// Arms `timer` to fire `after` from `now`, recording the output.
    pub(crate) fn arm(
        &mut self,
        out: &mut Vec<Output>,
        timer: Timer,
        now: Instant,
        after: Duration,
    ) {
        let deadline = now + after;
        self.deadlines[timer.index()] = Some(deadline);
        out.push(Output::ArmTimer { timer, deadline });
    }

    /// Arms `timer` at an absolute deadline.
    pub(crate) fn arm_at(&mut self, out: &mut Vec<Output>, timer: Timer, deadline: Instant) {
        self.deadlines[timer.index()] = Some(deadline);
        out.push(Output::ArmTimer { timer, deadline });
    }

    /// Stops `timer` if it is running.
    pub(crate) fn stop(&mut self, out: &mut Vec<Output>, timer: Timer) {
        if self.deadlines[timer.index()].take().is_some() {
            out.push(Output::StopTimer(timer));
        }
    }

    /// Whether `timer` is running.
    pub(crate) fn running(&self, timer: Timer) -> bool {
        self.deadlines[timer.index()].is_some()
    }

    /// The deadline of `timer`, if running.
    pub(crate) fn deadline(&self, timer: Timer) -> Option<Instant> {
        self.deadlines[timer.index()]
    }

    /// Consumes an expiry: true if `timer` is running and due at `now`.
    pub(crate) fn take_due(&mut self, timer: Timer, now: Instant) -> bool {
        match self.deadlines[timer.index()] {
            Some(deadline) if deadline <= now => {
                self.deadlines[timer.index()] = None;
                true
            }
            _ => false,
        }
    }

    /// The earliest running deadline and its timer.
    pub(crate) fn next(&self) -> Option<(Timer, Instant)> {
        Timer::ALL
            .iter()
            .filter_map(|t| self.deadline(*t).map(|d| (*t, d)))
            .min_by_key(|(_, d)| *d)
    }
}
