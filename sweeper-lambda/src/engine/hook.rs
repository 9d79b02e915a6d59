//! [`PageHook`]: a seam between a page's scan and its deletes, for tests and
//! instrumentation (see [`crate::testing`]).

use async_trait::async_trait;

/// Called by the engine between scanning a page and deleting its expired items.
///
/// For tests and instrumentation (e.g. refreshing a session after it was scanned, to check
/// that it survives). Keys are full table keys: do not log them.
#[async_trait]
pub trait PageHook: Send + Sync + 'static {
    /// `expired` are the keys about to be deleted (or, in a dry run, reported).
    async fn before_delete(&self, segment: u32, expired: &[String]);
}

/// A [`PageHook`] that does nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHook;

#[async_trait]
impl PageHook for NoHook {
    async fn before_delete(&self, _segment: u32, _expired: &[String]) {}
}
