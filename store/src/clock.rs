//! Where time comes from.
//!
//! Everything in this workspace that depends on the current time (expiry on read, the
//! default lifetime, throttling, the sweeper's cutoff) asks a [`Clock`], so that tests can
//! move time by hand instead of sleeping. `clippy.toml` bans the ambient clock everywhere
//! else; [`SystemClock`] is the one place allowed to read it.

use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use time::{Duration, OffsetDateTime};

/// A source of the current wall-clock time.
pub trait Clock: Debug + Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> OffsetDateTime;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    #[allow(clippy::disallowed_methods)] // the one place that may read the ambient clock
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc()
    }
}

/// A clock that only moves when told to; clones share the same time.
///
/// ```
/// use dynamo_session_store::clock::{Clock, ManualClock};
/// use time::{Duration, OffsetDateTime};
///
/// let clock = ManualClock::new(OffsetDateTime::UNIX_EPOCH);
/// clock.advance(Duration::seconds(30));
/// assert_eq!(clock.now().unix_timestamp(), 30);
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<OffsetDateTime>>,
}

impl ManualClock {
    /// A clock stopped at `start`.
    pub fn new(start: OffsetDateTime) -> Self {
        Self {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// A clock stopped at the current system time (handy for tests against real AWS, where
    /// DynamoDB's own TTL compares with real time).
    pub fn starting_now() -> Self {
        Self::new(SystemClock.now())
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, to: OffsetDateTime) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> OffsetDateTime {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A shared, type-erased clock.
pub type SharedClock = Arc<dyn Clock>;
