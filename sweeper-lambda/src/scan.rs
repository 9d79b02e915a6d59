//! Reading one page of one segment, and deciding what each item on it is.
//!
//! The scan asks, among items of the session shape (the table contract,
//! [`dynamo_session_store::schema`]: a data attribute of the store's type, a key under
//! the prefix that is not reserved), for expired ones, for expiries too far ahead to be
//! epoch seconds of a session, and for those whose expiry is not a number at all:
//!
//! ```text
//! FilterExpression:     (attribute_type(#d, :text) OR attribute_type(#d, :encoded))
//!                       AND (#e < :cutoff OR #e > :far OR NOT attribute_type(#e, :n))
//!                       [AND begins_with(#k, :prefix)] AND NOT begins_with(#k, :reserved)
//! ProjectionExpression: #k, #e
//! ```
//!
//! Items of any other shape, another application's in a shared table, are never
//! returned, counted or deleted, whatever their expiry attribute holds (some use
//! `expires: 0` to mean "never").
//!
//! The last two parts of the `OR` are there to count honestly what is never deleted: an
//! expiry stored as a string, or missing, would otherwise be silently filtered out, and so
//! would one in epoch *milliseconds* (as connect-dynamodb-session wrote them: DynamoDB's
//! TTL ignores those too) or one more than ten years after the cutoff. They are returned
//! (key and expiry only), classified by [`classify_page`], counted, and never deleted. The key prefix keeps a sweep to its own sessions in a shared table, and the
//! reserved prefix keeps the checkpoint item out of the results.

use std::collections::HashMap;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::scan::ScanOutput;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnConsumedCapacity};
use dynamo_session_store::ItemSchema;
use dynamo_session_store::schema::{
    DATA_ALIAS, DATA_TYPE, ENCODED_DATA_TYPE, EXPIRES_ALIAS as EXPIRES, Expiry, FAR_FUTURE_SECONDS,
    KEY_ALIAS as KEY, RESERVED_MARKER,
};

use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::error::Operation;
use crate::retry::{Stop, send_with_retries};
use crate::tally::Tally;

/// A scan position: DynamoDB's `LastEvaluatedKey`, given back as `ExclusiveStartKey`.
pub type Cursor = HashMap<String, AttributeValue>;

/// What one scanned page holds, decided item by item.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PagePlan {
    /// Keys of well-formed sessions expired before the cutoff: to delete.
    pub expired: Vec<String>,
    /// Items with a missing or non-numeric expiry, or a key that is not a string.
    pub malformed: u64,
    /// Sessions whose expiry looks like epoch milliseconds ([`Expiry::EpochMillis`]).
    pub millis: u64,
    /// Sessions whose expiry is far in the future ([`Expiry::FarFuture`]).
    pub far_future: u64,
}

/// Classifies the items of a page against the cutoff (epoch seconds). Pure.
///
/// Items that are not this sweep's to judge (reserved keys, other prefixes, not expired
/// after all) are neither: the scan's filter keeps them out, and should a server return
/// them anyway, they are left alone.
pub fn classify_page(
    schema: &ItemSchema,
    items: Vec<HashMap<String, AttributeValue>>,
    cutoff: i64,
) -> PagePlan {
    let mut plan = PagePlan::default();
    for item in items {
        let key = match schema.key_of(&item) {
            Ok(key) => key,
            Err(_) => {
                plan.malformed += 1;
                continue;
            }
        };
        if !schema.owns_key(key) {
            continue;
        }
        match schema
            .expires_of(&item)
            .map(|e| Expiry::classify(e, cutoff))
        {
            Ok(Expiry::Expired) => plan.expired.push(key.to_owned()),
            Ok(Expiry::EpochMillis) => plan.millis += 1,
            Ok(Expiry::FarFuture) => plan.far_future += 1,
            Ok(_) => {}
            Err(_) => plan.malformed += 1,
        }
    }
    plan
}

/// Expiries above this are far-future for a sweep at `cutoff` (see [`Expiry::classify`]).
fn far_future_after(cutoff: i64) -> i64 {
    cutoff.saturating_add(FAR_FUTURE_SECONDS)
}

/// The scan's `FilterExpression` and its values.
pub(crate) fn filter(
    schema: &ItemSchema,
    cutoff: i64,
) -> (String, HashMap<String, AttributeValue>) {
    let mut expr = format!(
        "(attribute_type({DATA_ALIAS}, :text) OR attribute_type({DATA_ALIAS}, :encoded)) \
         AND ({EXPIRES} < :cutoff OR {EXPIRES} > :far OR NOT attribute_type({EXPIRES}, :n))"
    );
    let mut values = HashMap::from([
        (":text".to_owned(), AttributeValue::S(DATA_TYPE.to_owned())),
        (
            ":encoded".to_owned(),
            AttributeValue::S(ENCODED_DATA_TYPE.to_owned()),
        ),
        (":cutoff".to_owned(), AttributeValue::N(cutoff.to_string())),
        (
            ":far".to_owned(),
            AttributeValue::N(far_future_after(cutoff).to_string()),
        ),
        (":n".to_owned(), AttributeValue::S("N".to_owned())),
        (
            ":reserved".to_owned(),
            AttributeValue::S(format!("{}{RESERVED_MARKER}", schema.key_prefix())),
        ),
    ]);
    if !schema.key_prefix().is_empty() {
        expr.push_str(&format!(" AND begins_with({KEY}, :prefix)"));
        values.insert(
            ":prefix".to_owned(),
            AttributeValue::S(schema.key_prefix().to_owned()),
        );
    }
    expr.push_str(&format!(" AND NOT begins_with({KEY}, :reserved)"));
    (expr, values)
}

/// A prepared scan of one table: the request parts every page shares.
#[derive(Debug, Clone)]
pub(crate) struct PageScan {
    filter: String,
    values: HashMap<String, AttributeValue>,
    names: HashMap<String, String>,
}

impl PageScan {
    pub(crate) fn new(schema: &ItemSchema, cutoff: i64) -> Self {
        let (filter, values) = filter(schema, cutoff);
        Self {
            filter,
            values,
            names: schema.expression_names(),
        }
    }

    /// Sends the scan of one page of `segment`, from `cursor`.
    async fn send(
        &self,
        client: &Client,
        config: &SweepConfig,
        segment: u32,
        cursor: Option<&Cursor>,
    ) -> Result<
        ScanOutput,
        aws_sdk_dynamodb::error::SdkError<aws_sdk_dynamodb::operation::scan::ScanError>,
    > {
        let limit = i32::try_from(config.page_size()).ok().filter(|n| *n > 0);
        client
            .scan()
            .table_name(config.table())
            .segment(segment as i32)
            .total_segments(config.total_segments() as i32)
            .filter_expression(&self.filter)
            .projection_expression(format!("{KEY}, {EXPIRES}"))
            .set_expression_attribute_names(Some(self.names.clone()))
            .set_expression_attribute_values(Some(self.values.clone()))
            .set_limit(limit)
            .set_exclusive_start_key(cursor.cloned())
            .return_consumed_capacity(ReturnConsumedCapacity::Total)
            .send()
            .await
    }

    /// One page of `segment` from `cursor`, retried by `policy` within `budget`, and the
    /// read units it consumed, which are also added to `tally`.
    pub(crate) async fn page(
        &self,
        client: &Client,
        config: &SweepConfig,
        segment: u32,
        cursor: Option<&Cursor>,
        budget: &Budget,
        tally: &Tally,
    ) -> Result<(ScanOutput, f64), Stop> {
        let page = send_with_retries(Operation::Scan, config.retry(), budget, tally, || {
            self.send(client, config, segment, cursor)
        })
        .await?;
        let units = tally.read(page.consumed_capacity());
        Ok((page, units))
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn item(
        key: AttributeValue,
        expires: Option<AttributeValue>,
    ) -> HashMap<String, AttributeValue> {
        let mut item = HashMap::from([("id".to_owned(), key)]);
        if let Some(e) = expires {
            item.insert("expires".to_owned(), e);
        }
        item
    }

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn n(v: &str) -> AttributeValue {
        AttributeValue::N(v.to_owned())
    }

    #[test]
    fn pages_are_classified_item_by_item() {
        let schema = ItemSchema::new();
        let plan = classify_page(
            &schema,
            vec![
                item(s("old"), Some(n("99"))),
                item(s("fresh"), Some(n("100"))),
                item(s("text-expiry"), Some(s("99"))),
                item(s("no-expiry"), None),
                item(s("fraction"), Some(n("99.5"))),
                item(n("7"), Some(n("1"))),
                item(s("!sweeper-checkpoint/0-1of1"), None),
                item(s("millis"), Some(n("1700000000000"))),
                item(
                    s("far"),
                    Some(n(&(100 + FAR_FUTURE_SECONDS + 1).to_string())),
                ),
                item(
                    s("not-so-far"),
                    Some(n(&(100 + FAR_FUTURE_SECONDS).to_string())),
                ),
            ],
            100,
        );
        // "fresh", "not-so-far" and the checkpoint item are neither expired nor malformed.
        assert_eq!(plan.expired, ["old"]);
        assert_eq!(plan.malformed, 4);
        assert_eq!((plan.millis, plan.far_future), (1, 1));
    }

    #[test]
    fn other_prefixes_are_not_ours() {
        let schema = ItemSchema::new().with_key_prefix("app:");
        let plan = classify_page(
            &schema,
            vec![
                item(s("app:a"), Some(n("1"))),
                item(s("other:b"), Some(n("1"))),
                item(s("app:!sweeper-checkpoint/0-1of1"), None),
            ],
            100,
        );
        assert_eq!(plan.expired, ["app:a"]);
        assert_eq!(plan.malformed, 0);
    }

    #[test]
    fn filter_binds_every_value_it_uses() {
        let (expr, values) = filter(&ItemSchema::new(), 5);
        assert!(!expr.contains(":prefix"));
        assert_eq!(values.len(), 6);
        assert_eq!(values[":text"], s("S"));
        assert_eq!(values[":encoded"], s("B"));
        assert!(
            expr.starts_with("(attribute_type(#d, :text) OR attribute_type(#d, :encoded)) AND ("),
            "{expr}"
        );
        assert_eq!(values[":reserved"], s("!"));
        let (expr, values) = filter(&ItemSchema::new().with_key_prefix("p:"), 5);
        assert!(expr.contains("begins_with(#k, :prefix)"));
        assert_eq!(values[":reserved"], s("p:!"));
        assert_eq!(values[":cutoff"], n("5"));
        assert_eq!(values[":far"], n(&(5 + FAR_FUTURE_SECONDS).to_string()));
    }
}
