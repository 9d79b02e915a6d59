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
//! | `began`   | N    | when the current pass over the slice began, epoch seconds |
//! | `token`   | S    | a random token each write sets |
//!
//! **Overlapping runs** of one slice (a manual invocation during a scheduled one, a CLI
//! run, a retry) work safely beside each other: their deletes are conditional, and every
//! checkpoint write (the save, or the clear at the end of a pass) requires the item to be
//! the one this run read: absent if it read none, else holding the token it read
//! (`Expect`). The first run to write wins; a later one's write is refused, its progress
//! is not saved (its deletes stand), and its report says so (`checkpoint_conflict`). So a
//! run can never leave behind a stale checkpoint that marks segments done after another
//! run finished the pass: the next pass would skip them.
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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::http::HttpResponse;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::types::{AttributeValue, ConsumedCapacity, ReturnConsumedCapacity};
use dynamo_session_store::schema::KEY_ALIAS;

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
    began: Option<i64>,
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

    /// When the pass this checkpoint continues began, epoch seconds: kept from the run
    /// that started it to the run that finishes it, so each run can tell how long the
    /// slice has been behind (the report's `backlog_seconds`).
    pub fn began(&self) -> Option<i64> {
        self.began
    }

    /// Records when the pass began.
    pub fn set_began(&mut self, began: i64) {
        self.began = Some(began);
    }

    /// Whether no segment progress is recorded (when the pass began does not count).
    pub fn is_empty(&self) -> bool {
        self.done.is_empty() && self.cursors.is_empty()
    }
}

/// What a checkpoint write requires of the item in the table: that it is still the one
/// this run read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Expect {
    /// No item was read: the write requires there still is none.
    Absent,
    /// The item read held this token.
    Token(String),
    /// The item read held no valid token (written before tokens, or by someone else):
    /// the write requires there still is none.
    Untokened,
}

/// A write's condition: expression, names, values.
#[derive(Debug, Clone)]
struct Condition {
    expression: String,
    names: HashMap<String, String>,
    values: Option<HashMap<String, AttributeValue>>,
}

impl Expect {
    /// The write's condition, for a table keyed by `key_attribute`.
    fn condition(&self, key_attribute: &str) -> Condition {
        let token = || ("#t".to_owned(), item::TOKEN.to_owned());
        let key = || (KEY_ALIAS.to_owned(), key_attribute.to_owned());
        let (expression, names, values) = match self {
            Expect::Absent => (
                format!("attribute_not_exists({KEY_ALIAS})"),
                HashMap::from([key()]),
                None,
            ),
            Expect::Token(t) => (
                "#t = :t".to_owned(),
                HashMap::from([token()]),
                Some(HashMap::from([(
                    ":t".to_owned(),
                    AttributeValue::S(t.clone()),
                )])),
            ),
            Expect::Untokened => (
                format!("attribute_exists({KEY_ALIAS}) AND NOT attribute_type(#t, :s)"),
                HashMap::from([key(), token()]),
                Some(HashMap::from([(
                    ":s".to_owned(),
                    AttributeValue::S("S".to_owned()),
                )])),
            ),
        };
        Condition {
            expression,
            names,
            values,
        }
    }
}

/// How a checkpoint write ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Written {
    /// Written.
    Done,
    /// Refused: another run wrote the checkpoint since this one read it.
    Conflict,
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
) -> Result<(Option<Checkpoint>, Expect), Stop> {
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
        return Ok((None, Expect::Absent));
    };
    let expect = match item.get(item::TOKEN) {
        Some(AttributeValue::S(token)) => Expect::Token(token.clone()),
        _ => Expect::Untokened,
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
    Ok((Some(checkpoint), expect))
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
        Ok((found, _)) => Ok(found),
        Err(Stop::Failed(err)) => Err(SweepError::Checkpoint(err)),
        Err(Stop::Deadline) => Ok(None),
    }
}

/// Writes the checkpoint of `config`'s slice, within `budget`, if the item is still as
/// `expect` says.
pub(crate) async fn save(
    client: &Client,
    config: &SweepConfig,
    (key, expect): (&str, &Expect),
    checkpoint: &Checkpoint,
    updated: i64,
    budget: &Budget,
    tally: &Tally,
) -> Result<Written, Stop> {
    let token = format!("{:016x}", fastrand::u64(..));
    let item = checkpoint.to_item(config.schema(), key.to_owned(), updated, &token);
    let condition = expect.condition(config.schema().key_attribute());
    let (written, consumed) =
        send_with_retries(Operation::PutItem, config.retry(), budget, tally, || {
            conditional(
                client
                    .put_item()
                    .table_name(config.table())
                    .set_item(Some(item.clone()))
                    .condition_expression(&condition.expression)
                    .set_expression_attribute_names(Some(condition.names.clone()))
                    .set_expression_attribute_values(condition.values.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send(),
                PutItemError::is_conditional_check_failed_exception,
                |out| out.consumed_capacity,
            )
        })
        .await?;
    tally.wrote(consumed.as_ref());
    Ok(written)
}

/// Deletes the checkpoint of `config`'s slice, within `budget`, if the item is still as
/// `expect` says.
pub(crate) async fn clear(
    client: &Client,
    config: &SweepConfig,
    (key, expect): (&str, &Expect),
    budget: &Budget,
    tally: &Tally,
) -> Result<Written, Stop> {
    let condition = expect.condition(config.schema().key_attribute());
    let (written, consumed) =
        send_with_retries(Operation::DeleteItem, config.retry(), budget, tally, || {
            conditional(
                client
                    .delete_item()
                    .table_name(config.table())
                    .key(
                        config.schema().key_attribute(),
                        AttributeValue::S(key.to_owned()),
                    )
                    .condition_expression(&condition.expression)
                    .set_expression_attribute_names(Some(condition.names.clone()))
                    .set_expression_attribute_values(condition.values.clone())
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send(),
                DeleteItemError::is_conditional_check_failed_exception,
                |out| out.consumed_capacity,
            )
        })
        .await?;
    tally.wrote(consumed.as_ref());
    Ok(written)
}

/// One attempt of a conditional checkpoint write: a failed condition is an answer (another
/// run wrote first), told apart here and never retried; `consumed` takes the capacity
/// from the output.
async fn conditional<O, E>(
    sent: impl Future<Output = Result<O, SdkError<E, HttpResponse>>>,
    condition_failed: fn(&E) -> bool,
    consumed: fn(O) -> Option<ConsumedCapacity>,
) -> Result<(Written, Option<ConsumedCapacity>), SdkError<E, HttpResponse>> {
    match sent.await {
        Ok(out) => Ok((Written::Done, consumed(out))),
        Err(err) if err.as_service_error().is_some_and(condition_failed) => {
            Ok((Written::Conflict, None))
        }
        Err(err) => Err(err),
    }
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
