//! Conditional deletes: an item goes only if its expiry is still below the cutoff and it
//! still has the session shape (its data attribute plain `S` or encoded `B`), so a
//! session refreshed since the scan, or an item rewritten into another application's
//! shape, is never deleted.
//!
//! Two strategies, chosen by [`DeleteStrategy`]:
//!
//! - **PartiQL batches**: `BatchExecuteStatement` with up to 25 statements
//!   `DELETE FROM "<table>" WHERE "<key>" = ? AND "<expires>" < ? AND "<data>" IS NOT
//!   MISSING AND NOT attribute_type("<data>", 'N') AND …  RETURNING ALL OLD *`, the
//!   data's type being neither of the eight DynamoDB types other than S and B
//!   ([`NOT_DATA_TYPES`]): the shape, S or B, without an `OR`, which a PartiQL
//!   implementation we test against refuses next to the key's equality.
//!   Each statement succeeds or fails on its own: `ConditionalCheckFailed` means the
//!   session was refreshed and is counted as skipped live; throttling and internal errors
//!   of single statements are retried, just those statements, with back-off; any other
//!   per-statement error (`ValidationError`) is counted as a statement error and reported
//!   with its message, never retried, and the rest of the batch goes on. DynamoDB
//!   answers success to a conditional PartiQL `DELETE` of a missing key, so `RETURNING ALL
//!   OLD *` is what tells a real delete (the old item comes back) from a key that was
//!   already gone (nothing comes back): the latter is counted as `already_gone`, never as
//!   deleted.
//! - **`DeleteItem`**: one request per item with
//!   `ConditionExpression: #e < :cutoff AND (attribute_type(#d, :text) OR
//!   attribute_type(#d, :encoded))`,
//!   several in flight. A `ConditionalCheckFailedException` carries the item
//!   (`ReturnValuesOnConditionCheckFailure: ALL_OLD`) when it exists: then it was
//!   refreshed (skipped live), otherwise it was already gone.
//!
//! Either way a page's requests run `delete_concurrency` at a time, each waits for the
//! pacer, and every outcome is added to the shared tally as it happens. A request that
//! gets no answer (cut by a timeout or the deadline, its connection lost) and no answer
//! from a retry either is counted as `unconfirmed`: DynamoDB may have applied it. After
//! a failure no request starts, and those in flight finish, so none is dropped unanswered
//! and uncounted.

use std::sync::Mutex;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, BatchStatementRequest, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure,
};
use dynamo_session_store::ItemSchema;
use dynamo_session_store::schema::{DATA_ALIAS, DATA_TYPE, ENCODED_DATA_TYPE, EXPIRES_ALIAS};
use futures_util::{StreamExt, stream};

use crate::budget::Budget;
use crate::config::{DeleteStrategy, SweepConfig};
use crate::error::{CallError, Operation};
use crate::pace::Pacer;
use crate::retry::{StatementRetry, Stop, send_tracked, statement_retry};
use crate::tally::Tally;

/// PartiQL's limit of statements per `BatchExecuteStatement`.
pub const BATCH_SIZE: usize = 25;

/// The DynamoDB types a session's data attribute never has: all but `S` (plain) and `B`
/// (encoded).
pub const NOT_DATA_TYPES: [&str; 8] = ["N", "SS", "NS", "BS", "M", "L", "NULL", "BOOL"];

/// The PartiQL conditional delete of a session item of `schema` in `table`.
pub fn delete_statement(table: &str, schema: &ItemSchema) -> String {
    let data = quote(schema.data_attribute());
    let shape: String = NOT_DATA_TYPES
        .iter()
        .map(|t| format!(" AND NOT attribute_type({data}, '{t}')"))
        .collect();
    format!(
        "DELETE FROM {} WHERE {} = ? AND {} < ? AND {data} IS NOT MISSING{shape} \
         RETURNING ALL OLD *",
        quote(table),
        quote(schema.key_attribute()),
        quote(schema.expires_attribute()),
    )
}

/// A PartiQL quoted identifier (a `"` inside is doubled).
fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The deletes of one sweep: the client, the settings, the cutoff and the pacer every
/// segment shares.
#[derive(Debug)]
pub(crate) struct Deleter {
    client: Client,
    config: SweepConfig,
    cutoff: AttributeValue,
    statement: String,
    pacer: Pacer,
}

/// One call's share of the sweep: its budget and the tally it adds to.
#[derive(Clone, Copy)]
struct Call<'a> {
    deleter: &'a Deleter,
    budget: &'a Budget,
    tally: &'a Tally,
}

impl Deleter {
    /// Deletes for `config`'s table of items whose expiry is below `cutoff`.
    pub(crate) fn new(client: Client, config: &SweepConfig, cutoff: i64) -> Self {
        let schema = config.schema();
        Self {
            client,
            statement: delete_statement(config.table(), schema),
            pacer: Pacer::new(config.max_deletes_per_second()),
            cutoff: AttributeValue::N(cutoff.to_string()),
            config: config.clone(),
        }
    }

    /// Deletes `keys` (expired when scanned) unless refreshed since, counting every
    /// outcome in `tally` as it happens.
    pub(crate) async fn delete_expired(
        &self,
        keys: Vec<String>,
        budget: &Budget,
        tally: &Tally,
    ) -> Result<(), Stop> {
        let call = Call {
            deleter: self,
            budget,
            tally,
        };
        let in_flight = self.config.delete_concurrency();
        // The first failure stops requests from starting, but those in flight finish:
        // dropping one could lose the answer to a delete DynamoDB applied, uncounted.
        let first_stop: Mutex<Option<Stop>> = Mutex::new(None);
        let stopped = || {
            first_stop
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .is_some()
        };
        let keep = |outcome: Result<(), Stop>| {
            if let Err(stop) = outcome {
                first_stop
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .get_or_insert(stop);
            }
        };
        match self.config.strategy() {
            DeleteStrategy::PartiqlBatch => {
                let batches: Vec<Vec<String>> =
                    keys.chunks(BATCH_SIZE).map(<[_]>::to_vec).collect();
                stream::iter(batches)
                    .for_each_concurrent(in_flight, |batch| async {
                        if !stopped() {
                            keep(delete_batch(call, batch).await);
                        }
                    })
                    .await;
            }
            DeleteStrategy::DeleteItem => {
                stream::iter(keys)
                    .for_each_concurrent(in_flight, |key| async {
                        if !stopped() {
                            keep(delete_item(call, key).await);
                        }
                    })
                    .await;
            }
        }
        match first_stop.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some(stop) => Err(stop),
            None => Ok(()),
        }
    }
}

/// One batch of up to 25 conditional PartiQL deletes, retrying failed statements.
async fn delete_batch(call: Call<'_>, mut pending: Vec<String>) -> Result<(), Stop> {
    let Call {
        deleter,
        budget,
        tally,
    } = call;
    let mut delays = deleter.config.retry().delays();
    let cutoff = &deleter.cutoff;
    loop {
        if !deleter.pacer.acquire(pending.len(), budget).await {
            return Err(Stop::Deadline);
        }
        let statements: Vec<BatchStatementRequest> = pending
            .iter()
            .map(|key| {
                BatchStatementRequest::builder()
                    .statement(deleter.statement.as_str())
                    .parameters(AttributeValue::S(key.clone()))
                    .parameters(cutoff.clone())
                    .build()
                    .expect("the statement is set")
            })
            .collect();
        let mut unanswered = false;
        let sent = send_tracked(
            Operation::BatchExecuteStatement,
            deleter.config.retry(),
            budget,
            tally,
            &mut unanswered,
            || {
                deleter
                    .client
                    .batch_execute_statement()
                    .set_statements(Some(statements.clone()))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            },
        )
        .await;
        let out = unconfirmed_if_unanswered(sent, unanswered, pending.len(), tally)?;
        for consumed in out.consumed_capacity() {
            tally.wrote(Some(consumed));
        }
        let responses = out.responses.unwrap_or_default();
        if responses.len() != pending.len() {
            return Err(Stop::Failed(CallError::Protocol {
                operation: Operation::BatchExecuteStatement,
                sent: pending.len(),
                answered: responses.len(),
            }));
        }
        let mut retry = Vec::new();
        let mut throttled = false;
        let mut last_error = None;
        for (key, response) in pending.into_iter().zip(responses) {
            let Some(error) = response.error else {
                // The old item comes back only if there was one to delete.
                match response.item {
                    Some(_) => Tally::add(&tally.deleted, 1),
                    None => Tally::add(&tally.already_gone, 1),
                }
                continue;
            };
            match statement_retry(error.code.as_ref()) {
                StatementRetry::ConditionFailed => Tally::add(&tally.skipped_live, 1),
                kind @ (StatementRetry::Throttled | StatementRetry::Transient) => {
                    throttled |= kind == StatementRetry::Throttled;
                    last_error = Some(describe(&error));
                    retry.push(key);
                }
                // A refused statement (DynamoDB answers an invalid one with a per-statement
                // `ValidationError`, not a thrown error): counted and reported, never
                // retried; the item stays, and the rest of the batch goes on.
                StatementRetry::Permanent => {
                    Tally::add(&tally.statement_errors, 1);
                    tally.note(format!(
                        "a PartiQL delete was refused: {}",
                        describe(&error)
                    ));
                }
            }
        }
        if retry.is_empty() {
            return Ok(());
        }
        let Some(delay) = delays.next() else {
            return Err(Stop::Failed(CallError::StatementsExhausted {
                failing: retry.len(),
                retries: u32::try_from(deleter.config.retry().max_retries()).unwrap_or(u32::MAX),
                last: last_error.unwrap_or_default(),
            }));
        };
        if !budget.leaves_time_for(delay) {
            return Err(Stop::Deadline);
        }
        tally.retried(throttled);
        tokio::time::sleep(delay).await;
        pending = retry;
    }
}

/// How one conditional `DeleteItem` ended, when DynamoDB answered.
enum ItemDelete {
    /// Deleted, with the capacity it consumed.
    Deleted(Option<Box<aws_sdk_dynamodb::types::ConsumedCapacity>>),
    /// The condition failed on an existing item: refreshed, or no longer a session.
    Kept,
    /// The condition failed because there was no item.
    Gone,
}

/// One conditional `DeleteItem`.
async fn delete_item(call: Call<'_>, key: String) -> Result<(), Stop> {
    let Call {
        deleter,
        budget,
        tally,
    } = call;
    if !deleter.pacer.acquire(1, budget).await {
        return Err(Stop::Deadline);
    }
    let schema = deleter.config.schema();
    let cutoff = &deleter.cutoff;
    let mut unanswered = false;
    let sent = send_tracked(
        Operation::DeleteItem,
        deleter.config.retry(),
        budget,
        tally,
        &mut unanswered,
        || {
            let sent = deleter
                .client
                .delete_item()
                .table_name(deleter.config.table())
                .key(schema.key_attribute(), AttributeValue::S(key.clone()))
                .condition_expression(format!(
                    "{EXPIRES_ALIAS} < :cutoff AND (attribute_type({DATA_ALIAS}, :text) \
                     OR attribute_type({DATA_ALIAS}, :encoded))"
                ))
                .expression_attribute_names(EXPIRES_ALIAS, schema.expires_attribute())
                .expression_attribute_names(DATA_ALIAS, schema.data_attribute())
                .expression_attribute_values(":cutoff", cutoff.clone())
                .expression_attribute_values(":text", AttributeValue::S(DATA_TYPE.to_owned()))
                .expression_attribute_values(
                    ":encoded",
                    AttributeValue::S(ENCODED_DATA_TYPE.to_owned()),
                )
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .return_consumed_capacity(ReturnConsumedCapacity::Total)
                .send();
            // A failed condition is an answer, not an error: it is told apart here, from the
            // SDK's typed error, and never retried.
            async move {
                match sent.await {
                    Ok(out) => Ok(ItemDelete::Deleted(out.consumed_capacity.map(Box::new))),
                    Err(err) => match err.as_service_error() {
                        Some(DeleteItemError::ConditionalCheckFailedException(e)) => {
                            Ok(if e.item.is_some() {
                                ItemDelete::Kept
                            } else {
                                ItemDelete::Gone
                            })
                        }
                        _ => Err(err),
                    },
                }
            }
        },
    )
    .await;
    let result = unconfirmed_if_unanswered(sent, unanswered, 1, tally)?;
    match result {
        ItemDelete::Deleted(consumed) => {
            tally.wrote(consumed.as_deref());
            Tally::add(&tally.deleted, 1);
        }
        ItemDelete::Kept => Tally::add(&tally.skipped_live, 1),
        ItemDelete::Gone => Tally::add(&tally.already_gone, 1),
    }
    Ok(())
}

/// A delete call's outcome, counting its `items` as unconfirmed when it ended without an
/// answer after an attempt that may have been applied.
fn unconfirmed_if_unanswered<T>(
    sent: Result<T, Stop>,
    unanswered: bool,
    items: usize,
    tally: &Tally,
) -> Result<T, Stop> {
    if sent.is_err() && unanswered {
        Tally::add(&tally.unconfirmed, items as u64);
    }
    sent
}

/// A statement error's code and message (at most 200 characters of it: the message is
/// the server's text, and is reported).
fn describe(error: &aws_sdk_dynamodb::types::BatchStatementError) -> String {
    let message = error.message.as_deref().unwrap_or("no message");
    let mut short: String = message.chars().take(200).collect();
    if short.len() < message.len() {
        short.push('…');
    }
    format!(
        "{} ({short})",
        error.code.as_ref().map_or("no code", |c| c.as_str())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_identifiers() {
        assert_eq!(
            delete_statement("sessions", &ItemSchema::new()),
            concat!(
                r#"DELETE FROM "sessions" WHERE "id" = ? AND "expires" < ? AND "data" IS NOT MISSING"#,
                r#" AND NOT attribute_type("data", 'N') AND NOT attribute_type("data", 'SS')"#,
                r#" AND NOT attribute_type("data", 'NS') AND NOT attribute_type("data", 'BS')"#,
                r#" AND NOT attribute_type("data", 'M') AND NOT attribute_type("data", 'L')"#,
                r#" AND NOT attribute_type("data", 'NULL') AND NOT attribute_type("data", 'BOOL')"#,
                r#" RETURNING ALL OLD *"#
            )
        );
        let schema = ItemSchema::new()
            .with_key_attribute("we\"ird")
            .with_expires_attribute("e")
            .with_data_attribute("d");
        assert_eq!(
            delete_statement("t", &schema),
            concat!(
                r#"DELETE FROM "t" WHERE "we""ird" = ? AND "e" < ? AND "d" IS NOT MISSING"#,
                r#" AND NOT attribute_type("d", 'N') AND NOT attribute_type("d", 'SS')"#,
                r#" AND NOT attribute_type("d", 'NS') AND NOT attribute_type("d", 'BS')"#,
                r#" AND NOT attribute_type("d", 'M') AND NOT attribute_type("d", 'L')"#,
                r#" AND NOT attribute_type("d", 'NULL') AND NOT attribute_type("d", 'BOOL')"#,
                r#" RETURNING ALL OLD *"#
            )
        );
    }
}
