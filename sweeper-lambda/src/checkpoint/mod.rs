//! Resume cursors: where each segment of a slice stopped, kept in one reserved item.
//!
//! The item's key is [`SweepConfig::checkpoint_key`], a reserved key of the table
//! contract ([`dynamo_session_store::schema`]), e.g. `!sweeper-checkpoint/0-8of8`: no
//! session key contains `!`, so the store never reads or writes it;
//! it has no expiry attribute, so neither native TTL nor the sweep's conditional deletes
//! ever remove it. Its attributes:
//!
//! | attribute | type | holds |
//! |-----------|------|-------|
//! | `done`    | S    | finished segments as ranges, e.g. `0-3,5` |
//! | `cursors` | M    | segment number → the `LastEvaluatedKey` to continue from |
//! | `updated` | N    | when it was written, epoch seconds |
//!
//! It is read once when a sweep starts (`GetItem`), written once when a sweep stops early
//! (`PutItem`), and deleted when a sweep finishes its slice (`DeleteItem`): the three
//! calls IAM allows on `<prefix>!sweeper-checkpoint/*` keys. A crash between two writes
//! only repeats work: the deletes are conditional, so repeating them is harmless.
//!
//! Whatever the item holds is validated before use (`item.rs`): invalid parts are
//! discarded, counted in the report (`checkpoint_discarded`), and the item is rewritten
//! or cleared when the sweep ends. The save and the clear run under the sweep's own
//! deadline, in the reserve the engine keeps for them, with bounded retries.

mod item;

use std::collections::{BTreeMap, BTreeSet};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};

use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::error::{Operation, SweepError};
use crate::retry::{Stop, send_with_retries};
use crate::scan::Cursor;
use crate::tally::Tally;

/// Progress of one slice, as saved between invocations.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Checkpoint {
    done: BTreeSet<u32>,
    cursors: BTreeMap<u32, Cursor>,
}

impl Checkpoint {
    /// Marks `segment` finished.
    pub fn mark_done(&mut self, segment: u32) {
        self.cursors.remove(&segment);
        self.done.insert(segment);
    }

    /// Records where `segment` should continue.
    pub fn set_cursor(&mut self, segment: u32, cursor: Cursor) {
        self.done.remove(&segment);
        self.cursors.insert(segment, cursor);
    }

    /// Forgets `segment`'s progress: it starts from the top next time.
    pub fn forget(&mut self, segment: u32) {
        self.cursors.remove(&segment);
        self.done.remove(&segment);
    }

    /// Whether `segment` is finished.
    pub fn is_done(&self, segment: u32) -> bool {
        self.done.contains(&segment)
    }

    /// Where `segment` continues, if it was started and not finished.
    pub fn cursor(&self, segment: u32) -> Option<&Cursor> {
        self.cursors.get(&segment)
    }

    /// The finished segments.
    pub fn done_segments(&self) -> impl Iterator<Item = u32> + '_ {
        self.done.iter().copied()
    }

    /// Whether nothing is recorded.
    pub fn is_empty(&self) -> bool {
        self.done.is_empty() && self.cursors.is_empty()
    }
}

/// Reads the checkpoint of `config`'s slice (a consistent read); `None` when there is none.
/// Its invalid parts are discarded with a warning and counted in `tally`; what is left
/// (possibly nothing) is returned, so the item is rewritten or cleared at the end.
pub(crate) async fn load(
    client: &Client,
    config: &SweepConfig,
    key: &str,
    budget: &Budget,
    tally: &Tally,
) -> Result<Option<Checkpoint>, Stop> {
    let out = send_with_retries(Operation::GetItem, config.retry(), budget, tally, || {
        client
            .get_item()
            .table_name(config.table())
            .key(
                config.schema().key_attribute(),
                AttributeValue::S(key.to_owned()),
            )
            .consistent_read(true)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
    })
    .await?;
    tally.read(out.consumed_capacity());
    let Some(item) = out.item else {
        return Ok(None);
    };
    let (checkpoint, discarded) = Checkpoint::from_item(&item, config.schema(), config.slice());
    if let Some(first) = discarded.first() {
        tracing::warn!(
            slice = %config.slice_label(),
            discarded = discarded.len(),
            first = %first,
            "discarding invalid parts of the checkpoint"
        );
        Tally::add(&tally.checkpoint_discarded, discarded.len() as u64);
    }
    Ok(Some(checkpoint))
}

/// Reads the saved checkpoint of `config`'s slice, if any (for tools and tests).
///
/// # Errors
/// [`SweepError::InvalidConfig`] for an invalid configuration, and
/// [`SweepError::Checkpoint`] when the checkpoint cannot be read.
pub async fn read_checkpoint(
    client: &Client,
    config: &SweepConfig,
) -> Result<Option<Checkpoint>, SweepError> {
    let key = config.checkpoint_key()?;
    match load(
        client,
        config,
        &key,
        &Budget::unlimited(),
        &Tally::default(),
    )
    .await
    {
        Ok(found) => Ok(found),
        Err(Stop::Failed(err)) => Err(SweepError::Checkpoint(err)),
        Err(Stop::Deadline) => Ok(None),
    }
}

/// Writes the checkpoint of `config`'s slice, within `budget`.
pub(crate) async fn save(
    client: &Client,
    config: &SweepConfig,
    key: &str,
    checkpoint: &Checkpoint,
    updated: i64,
    budget: &Budget,
    tally: &Tally,
) -> Result<(), Stop> {
    let item = checkpoint.to_item(config.schema(), key.to_owned(), updated);
    let out = send_with_retries(Operation::PutItem, config.retry(), budget, tally, || {
        client
            .put_item()
            .table_name(config.table())
            .set_item(Some(item.clone()))
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
    })
    .await?;
    tally.wrote(out.consumed_capacity());
    Ok(())
}

/// Deletes the checkpoint of `config`'s slice, within `budget`.
pub(crate) async fn clear(
    client: &Client,
    config: &SweepConfig,
    key: &str,
    budget: &Budget,
    tally: &Tally,
) -> Result<(), Stop> {
    let out = send_with_retries(Operation::DeleteItem, config.retry(), budget, tally, || {
        client
            .delete_item()
            .table_name(config.table())
            .key(
                config.schema().key_attribute(),
                AttributeValue::S(key.to_owned()),
            )
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
    })
    .await?;
    tally.wrote(out.consumed_capacity());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn a_forgotten_segment_starts_over() {
        let mut cp = Checkpoint::default();
        let cursor: Cursor = HashMap::from([("id".into(), AttributeValue::S("abc".into()))]);
        cp.set_cursor(1, cursor);
        cp.mark_done(2);
        cp.forget(1);
        cp.forget(2);
        assert!(cp.is_empty());
        assert!(!cp.is_done(2) && cp.cursor(1).is_none());
    }
}
