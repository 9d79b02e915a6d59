//! Conditional deletes: an item goes only if its expiry is still below the cutoff.
//!
//! Two strategies, chosen by [`DeleteStrategy`]:
//!
//! - **PartiQL batches**: `BatchExecuteStatement` with up to 25 statements
//!   `DELETE FROM "<table>" WHERE "<key>" = ? AND "<expires>" < ? RETURNING ALL OLD *`.
//!   Each statement succeeds or fails on its own: `ConditionalCheckFailed` means the
//!   session was refreshed and is counted as skipped live; throttling and internal errors
//!   of single statements are retried, just those statements, with back-off; any other
//!   per-statement error (`ValidationError`) is counted as a statement error and reported
//!   with its message, never retried, and the rest of the batch goes on. DynamoDB
//!   answers success to a conditional PartiQL `DELETE` of a missing key, so `RETURNING ALL
//!   OLD *` is what tells a real delete (the old item comes back) from a key that was
//!   already gone (nothing comes back): the latter is counted as `already_gone`, never as
//!   deleted.
//! - **`DeleteItem`**: one request per item with `ConditionExpression: #e < :cutoff`,
//!   several in flight. A `ConditionalCheckFailedException` carries the item
//!   (`ReturnValuesOnConditionCheckFailure: ALL_OLD`) when it exists: then it was
//!   refreshed (skipped live), otherwise it was already gone.
//!
//! Either way a page's requests run `delete_concurrency` at a time, each waits for the
//! pacer, and every outcome is added to the shared tally as it happens.

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeValue, BatchStatementRequest, ReturnConsumedCapacity,
    ReturnValuesOnConditionCheckFailure,
};
use futures_util::{TryStreamExt, stream};

use crate::budget::Budget;
use crate::config::{DeleteStrategy, SweepConfig};
use crate::pace::Pacer;
use crate::retry::{StatementRetry, Stop, send_with_retries, statement_retry};
use crate::tally::Tally;

/// PartiQL's limit of statements per `BatchExecuteStatement`.
pub const BATCH_SIZE: usize = 25;

/// The PartiQL conditional delete for `table`, key and expiry attributes.
pub fn delete_statement(table: &str, key_attr: &str, expires_attr: &str) -> String {
    format!(
        "DELETE FROM {} WHERE {} = ? AND {} < ? RETURNING ALL OLD *",
        quote(table),
        quote(key_attr),
        quote(expires_attr)
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
            statement: delete_statement(
                config.table(),
                schema.key_attribute(),
                schema.expires_attribute(),
            ),
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
        match self.config.strategy() {
            DeleteStrategy::PartiqlBatch => {
                let batches: Vec<Vec<String>> =
                    keys.chunks(BATCH_SIZE).map(<[_]>::to_vec).collect();
                stream::iter(batches.into_iter().map(Ok))
                    .try_for_each_concurrent(in_flight, |batch| delete_batch(call, batch))
                    .await
            }
            DeleteStrategy::DeleteItem => {
                stream::iter(keys.into_iter().map(Ok))
                    .try_for_each_concurrent(in_flight, |key| delete_item(call, key))
                    .await
            }
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
        let out = send_with_retries(
            "BatchExecuteStatement",
            deleter.config.retry(),
            budget,
            tally,
            || {
                deleter
                    .client
                    .batch_execute_statement()
                    .set_statements(Some(statements.clone()))
                    .return_consumed_capacity(ReturnConsumedCapacity::Total)
                    .send()
            },
        )
        .await?;
        for consumed in out.consumed_capacity() {
            tally.wrote(Some(consumed));
        }
        let responses = out.responses.unwrap_or_default();
        if responses.len() != pending.len() {
            return Err(Stop::Failed(protocol_error(format!(
                "BatchExecuteStatement answered {} responses to {} statements",
                responses.len(),
                pending.len()
            ))));
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
            return Err(Stop::Failed(protocol_error(format!(
                "{} PartiQL deletes still failing after {} retries: {}",
                retry.len(),
                deleter.config.retry().max_retries(),
                last_error.unwrap_or_default()
            ))));
        };
        if !budget.leaves_time_for(delay) {
            return Err(Stop::Deadline);
        }
        tally.retried(throttled);
        tokio::time::sleep(delay).await;
        pending = retry;
    }
}

/// One conditional `DeleteItem`.
async fn delete_item(call: Call<'_>, key: String) -> Result<(), Stop> {
    use crate::keys::EXPIRES;
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
    let result = send_with_retries("DeleteItem", deleter.config.retry(), budget, tally, || {
        deleter
            .client
            .delete_item()
            .table_name(deleter.config.table())
            .key(schema.key_attribute(), AttributeValue::S(key.clone()))
            .condition_expression(format!("{EXPIRES} < :cutoff"))
            .expression_attribute_names(EXPIRES, schema.expires_attribute())
            .expression_attribute_values(":cutoff", cutoff.clone())
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
    })
    .await;
    match result {
        Ok(out) => {
            tally.wrote(out.consumed_capacity());
            Tally::add(&tally.deleted, 1);
        }
        Err(Stop::Failed(err)) => match condition_failed_on(&err) {
            Some(true) => Tally::add(&tally.skipped_live, 1),
            Some(false) => Tally::add(&tally.already_gone, 1),
            None => return Err(Stop::Failed(err)),
        },
        Err(stop) => return Err(stop),
    }
    Ok(())
}

/// For a failed `DeleteItem`: `Some(true)` when its condition failed on an existing item,
/// `Some(false)` when it failed because there was no item, `None` for any other error.
fn condition_failed_on(err: &dynamo_session_store::Error) -> Option<bool> {
    use aws_sdk_dynamodb::config::http::HttpResponse;
    use aws_sdk_dynamodb::error::SdkError;
    use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;

    let dynamo_session_store::Error::DynamoDb { sdk_error, .. } = err else {
        return None;
    };
    let sdk = sdk_error.downcast_ref::<SdkError<DeleteItemError, HttpResponse>>()?;
    match sdk.as_service_error()? {
        DeleteItemError::ConditionalCheckFailedException(e) => Some(e.item.is_some()),
        _ => None,
    }
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

fn protocol_error(message: String) -> dynamo_session_store::Error {
    dynamo_session_store::Error::dynamo_db("BatchExecuteStatement", false, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_quote_identifiers() {
        assert_eq!(
            delete_statement("sessions", "id", "expires"),
            r#"DELETE FROM "sessions" WHERE "id" = ? AND "expires" < ? RETURNING ALL OLD *"#
        );
        assert_eq!(
            delete_statement("t", "we\"ird", "e"),
            r#"DELETE FROM "t" WHERE "we""ird" = ? AND "e" < ? RETURNING ALL OLD *"#
        );
    }
}
