//! When a sweep must be done: a deadline, and optionally a page budget.
//!
//! The handler derives the deadline from the Lambda context minus the safety margin; the
//! command line has none unless asked (`--max-seconds`). The deadline is a hard bound: the
//! engine keeps the checkpoint's reserve free before it (`Budget::reserving`) and stops
//! starting work there, every attempt is cut at the deadline of the budget it runs under
//! (see [`crate::retry`]), and no back-off or pacing wait is started that would end past
//! it.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

/// Limits on how much work one sweep starts. Cheap to clone; clones share the page count.
#[derive(Debug, Clone, Default)]
pub struct Budget {
    deadline: Option<Instant>,
    max_pages: Option<u64>,
    pages_started: Arc<AtomicU64>,
}

impl Budget {
    /// No limit: sweep until every segment is done.
    pub fn unlimited() -> Self {
        Self::default()
    }

    /// Start no new page at or after `deadline`.
    pub fn until(deadline: Instant) -> Self {
        Self {
            deadline: Some(deadline),
            ..Self::default()
        }
    }

    /// Start no new page once `remaining` has passed from now. A duration too long to
    /// add to the clock's now is no deadline at all ([`Budget::unlimited`]).
    pub fn for_duration(remaining: Duration) -> Self {
        Instant::now()
            .checked_add(remaining)
            .map_or_else(Self::unlimited, Self::until)
    }

    /// Also start at most `pages` scan pages in all (across segments). Useful to cap one
    /// run's work, and for tests that need a sweep cut short at a known point.
    pub fn with_max_pages(mut self, pages: u64) -> Self {
        self.max_pages = Some(pages);
        self
    }

    /// The deadline, if any.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Whether the deadline has passed.
    pub fn expired(&self) -> bool {
        self.deadline.is_some_and(|d| Instant::now() >= d)
    }

    /// This budget with `reserve` kept free at its end: the same page count, a deadline
    /// `reserve` earlier. What the engine gives the work, keeping time for the checkpoint.
    pub(crate) fn reserving(&self, reserve: Duration) -> Self {
        Self {
            deadline: self
                .deadline
                .map(|d| d.checked_sub(reserve).unwrap_or_else(Instant::now).min(d)),
            ..self.clone()
        }
    }

    /// The deadline alone, without the page limit: for the checkpoint's own calls, which
    /// run after the work's pages are spent.
    pub(crate) fn deadline_only(&self) -> Self {
        Self {
            deadline: self.deadline,
            ..Self::default()
        }
    }

    /// Claims one page of work; `false` when the deadline passed or the pages ran out.
    pub(crate) fn try_start_page(&self) -> bool {
        if self.expired() {
            return false;
        }
        match self.max_pages {
            None => true,
            Some(max) => self.pages_started.fetch_add(1, Ordering::Relaxed) < max,
        }
    }

    /// Whether sleeping for `delay` still ends before the deadline.
    pub(crate) fn leaves_time_for(&self, delay: Duration) -> bool {
        self.deadline
            .is_none_or(|d| Instant::now().checked_add(delay).is_some_and(|end| end < d))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn page_budget_is_shared_by_clones() {
        let budget = Budget::unlimited().with_max_pages(2);
        let clone = budget.clone();
        assert!(budget.try_start_page());
        assert!(clone.try_start_page());
        assert!(!budget.try_start_page());
        assert!(!clone.try_start_page());
    }

    #[tokio::test(start_paused = true)]
    async fn deadline_stops_new_pages_and_long_sleeps() {
        let budget = Budget::for_duration(Duration::from_secs(10));
        assert!(budget.try_start_page());
        assert!(budget.leaves_time_for(Duration::from_secs(9)));
        assert!(!budget.leaves_time_for(Duration::from_secs(10)));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert!(budget.expired());
        assert!(!budget.try_start_page());
        assert!(Budget::unlimited().leaves_time_for(Duration::MAX / 2));
        // No overflow past the clock's range: a delay that cannot end never fits.
        assert!(!budget.leaves_time_for(Duration::MAX));
    }

    #[tokio::test]
    async fn a_duration_past_the_clocks_range_is_no_deadline() {
        let budget = Budget::for_duration(Duration::MAX);
        assert_eq!(budget.deadline(), None);
        assert!(budget.try_start_page() && !budget.expired());
        let budget = Budget::for_duration(Duration::from_secs(u64::MAX));
        assert_eq!(budget.deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_reserve_moves_the_work_deadline_earlier_and_shares_the_pages() {
        let budget = Budget::for_duration(Duration::from_secs(10)).with_max_pages(1);
        let work = budget.reserving(Duration::from_secs(4));
        assert_eq!(
            work.deadline().unwrap() + Duration::from_secs(4),
            budget.deadline().unwrap()
        );
        assert!(work.try_start_page());
        assert!(!budget.try_start_page(), "the page count is shared");
        let save = budget.deadline_only();
        assert!(save.try_start_page(), "the save has no page limit");
        assert_eq!(save.deadline(), budget.deadline());
        tokio::time::advance(Duration::from_secs(6)).await;
        assert!(work.expired() && !budget.expired());
        // A reserve longer than the budget leaves the work no time at all.
        assert!(budget.reserving(Duration::from_secs(60)).expired());
        assert!(
            Budget::unlimited()
                .reserving(Duration::from_secs(60))
                .deadline()
                .is_none()
        );
    }
}
