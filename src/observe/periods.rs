//! Reporting periods for the aggregate reports Ferry sends (DMARC, TLS-RPT):
//! UTC days, which an administrator's "send now" may end early. What is
//! counted carries the start of the period it was counted in; a period has
//! ended once the current one started after it.

use std::sync::atomic::{AtomicI64, Ordering};

pub const DAY: i64 = 86_400;

pub fn now_s() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// The current period of one kind of report.
#[derive(Default)]
pub struct Periods {
    /// The start of the period opened by the last "send now", if later
    /// than today's midnight.
    cut: AtomicI64,
}

impl Periods {
    /// The start of the period counts go to now.
    pub fn current(&self) -> i64 {
        let now = now_s();
        (now - now.rem_euclid(DAY)).max(self.cut.load(Ordering::SeqCst))
    }

    /// Ends the current period now; the start of the next one (every period
    /// that started before it has ended).
    pub fn cut(&self) -> i64 {
        let cut = now_s().max(self.cut.load(Ordering::SeqCst) + 1);
        self.cut.store(cut, Ordering::SeqCst);
        cut
    }
}

/// The last second of the period that began at `begin`: the end of its
/// UTC day, or the second before `before` (the next period's start) when
/// "send now" ended it sooner.
pub fn period_end(begin: i64, before: i64) -> i64 {
    (begin - begin.rem_euclid(DAY) + DAY).min(before) - 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_end_at_midnight_or_when_sent_sooner() {
        let midnight = 1_796_083_200; // 2026-12-01T00:00:00Z
        assert_eq!(midnight % DAY, 0);
        // A whole day, reported after midnight.
        assert_eq!(period_end(midnight - DAY, midnight + 60), midnight - 1);
        // Ended by "send now" at 10:00, and the rest of that day.
        assert_eq!(period_end(midnight, midnight + 36_000), midnight + 35_999);
        assert_eq!(
            period_end(midnight + 36_000, midnight + DAY + 5),
            midnight + DAY - 1
        );
        let p = Periods::default();
        let first = p.cut();
        assert!(p.cut() > first, "each cut starts a new period");
        assert_eq!(p.current(), first + 1);
    }
}
