//! Seams for tests, behind the `testing` feature (off in every build that ships): the
//! integration suite uses them to act between a page's scan and its deletes (a refresh
//! racing a delete). Not covered by any compatibility promise.

pub use crate::engine::{NoHook, PageHook};

/// [`crate::sweep`], calling `hook` on every page between the scan and the deletes.
///
/// # Errors
/// As [`crate::sweep`].
pub async fn sweep_with_hook(
    client: &aws_sdk_dynamodb::Client,
    config: &crate::SweepConfig,
    clock: &dyn dynamo_session_store::Clock,
    budget: crate::Budget,
    hook: std::sync::Arc<dyn PageHook>,
) -> Result<crate::SweepReport, crate::SweepError> {
    crate::engine::sweep_with_hook(client, config, clock, budget, Some(hook)).await
}
