//! When a sweep stops starting new work: a deadline, and optionally a page budget.
//!
//! The handler derives the deadline from the Lambda context minus the safety margin; the
//! command line has none unless asked. Work already started (a page's deletes) finishes;
//! only retry back-offs that would sleep past the deadline are cut short.

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

    /// Start no new page once `remaining` has passed from now.
    pub fn for_duration(remaining: Duration) -> Self {
        Self::until(Instant::now() + remaining)
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
        self.deadline.is_none_or(|d| Instant::now() + delay < d)
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
    }
}
