//! Resume cursors: where each segment of a slice stopped, kept in one reserved item.
//!
//! The item's key is [`ItemSchema::checkpoint_key`] of the slice label (e.g.
//! `!sweeper-checkpoint/0-8of8`), which no session id may take, so the store never sees it;
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

use std::collections::{BTreeMap, BTreeSet, HashMap};

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::ItemSchema;

use crate::budget::Budget;
use crate::config::SweepConfig;
use crate::error::SweepError;
use crate::retry::{Stop, send_with_retries};
use crate::scan::Cursor;
use crate::tally::Tally;

/// One DynamoDB item.
type Item = HashMap<String, AttributeValue>;

const DONE: &str = "done";
const CURSORS: &str = "cursors";
const UPDATED: &str = "updated";

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

    /// The checkpoint item for `key`.
    pub fn to_item(&self, schema: &ItemSchema, key: String, updated: i64) -> Item {
        let cursors = self
            .cursors
            .iter()
            .map(|(segment, cursor)| (segment.to_string(), AttributeValue::M(cursor.clone())))
            .collect();
        HashMap::from([
            (schema.key_attribute().to_owned(), AttributeValue::S(key)),
            (DONE.to_owned(), AttributeValue::S(ranges(&self.done))),
            (CURSORS.to_owned(), AttributeValue::M(cursors)),
            (UPDATED.to_owned(), AttributeValue::N(updated.to_string())),
        ])
    }

    /// Reads a checkpoint item, keeping only segments within `start..end`.
    ///
    /// # Errors
    /// A description of what is malformed.
    pub fn from_item(item: &Item, start: u32, end: u32) -> Result<Self, String> {
        let mut out = Self::default();
        match item.get(DONE) {
            Some(AttributeValue::S(text)) => {
                for segment in parse_ranges(text)? {
                    if (start..end).contains(&segment) {
                        out.done.insert(segment);
                    }
                }
            }
            None => {}
            Some(_) => return Err(format!("`{DONE}` is not a string")),
        }
        match item.get(CURSORS) {
            Some(AttributeValue::M(map)) => {
                for (segment, cursor) in map {
                    let segment: u32 = segment
                        .parse()
                        .map_err(|_| format!("cursor key `{segment}` is not a segment number"))?;
                    let AttributeValue::M(cursor) = cursor else {
                        return Err(format!("cursor of segment {segment} is not a map"));
                    };
                    if (start..end).contains(&segment) && !out.done.contains(&segment) {
                        out.cursors.insert(segment, cursor.clone());
                    }
                }
            }
            None => {}
            Some(_) => return Err(format!("`{CURSORS}` is not a map")),
        }
        Ok(out)
    }
}

/// Reads the checkpoint of `config`'s slice (a consistent read); `None` when there is none
/// or it is malformed (then the slice starts over, which is safe, and a warning is logged).
pub(crate) async fn load(
    client: &Client,
    config: &SweepConfig,
    budget: &Budget,
    tally: &Tally,
) -> Result<Option<Checkpoint>, Stop> {
    let key = config.schema().checkpoint_key(&config.slice_label());
    let out = send_with_retries("GetItem", config.retry(), budget, tally, || {
        client
            .get_item()
            .table_name(config.table())
            .key(
                config.schema().key_attribute(),
                AttributeValue::S(key.clone()),
            )
            .consistent_read(true)
            .send()
    })
    .await?;
    let Some(item) = out.item else {
        return Ok(None);
    };
    let slice = config.slice();
    match Checkpoint::from_item(&item, slice.start, slice.end) {
        Ok(checkpoint) => Ok(Some(checkpoint)),
        Err(problem) => {
            tracing::warn!(slice = %config.slice_label(), %problem, "ignoring malformed checkpoint");
            Ok(None)
        }
    }
}

/// Reads the saved checkpoint of `config`'s slice, if any (for tools and tests).
///
/// # Errors
/// [`SweepError::Checkpoint`] when it cannot be read.
pub async fn read_checkpoint(
    client: &Client,
    config: &SweepConfig,
) -> Result<Option<Checkpoint>, SweepError> {
    match load(client, config, &Budget::unlimited(), &Tally::default()).await {
        Ok(found) => Ok(found),
        Err(Stop::Failed(err)) => Err(SweepError::Checkpoint(err)),
        Err(Stop::Deadline) => Ok(None),
    }
}

/// Writes the checkpoint of `config`'s slice.
pub(crate) async fn save(
    client: &Client,
    config: &SweepConfig,
    checkpoint: &Checkpoint,
    updated: i64,
    tally: &Tally,
) -> Result<(), Stop> {
    let key = config.schema().checkpoint_key(&config.slice_label());
    let item = checkpoint.to_item(config.schema(), key, updated);
    // The deadline has passed by now; saving is the last, short, step and must still run.
    let budget = Budget::unlimited();
    send_with_retries("PutItem", config.retry(), &budget, tally, || {
        client
            .put_item()
            .table_name(config.table())
            .set_item(Some(item.clone()))
            .send()
    })
    .await
    .map(drop)
}

/// Deletes the checkpoint of `config`'s slice.
pub(crate) async fn clear(
    client: &Client,
    config: &SweepConfig,
    tally: &Tally,
) -> Result<(), Stop> {
    let key = config.schema().checkpoint_key(&config.slice_label());
    let budget = Budget::unlimited();
    send_with_retries("DeleteItem", config.retry(), &budget, tally, || {
        client
            .delete_item()
            .table_name(config.table())
            .key(
                config.schema().key_attribute(),
                AttributeValue::S(key.clone()),
            )
            .send()
    })
    .await
    .map(drop)
}

/// `{0,1,2,3,5}` as `0-3,5`.
fn ranges(set: &BTreeSet<u32>) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut iter = set.iter().copied().peekable();
    while let Some(first) = iter.next() {
        let mut last = first;
        while iter.peek() == Some(&(last + 1)) {
            last += 1;
            iter.next();
        }
        out.push(if first == last {
            first.to_string()
        } else {
            format!("{first}-{last}")
        });
    }
    out.join(",")
}

fn parse_ranges(text: &str) -> Result<Vec<u32>, String> {
    let mut out = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let bad = || format!("`{part}` is not a segment or range");
        let (first, last) = match part.split_once('-') {
            Some((a, b)) => (
                a.parse::<u32>().map_err(|_| bad())?,
                b.parse::<u32>().map_err(|_| bad())?,
            ),
            None => {
                let n = part.parse::<u32>().map_err(|_| bad())?;
                (n, n)
            }
        };
        if first > last {
            return Err(bad());
        }
        out.extend(first..=last);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_round_trip() {
        let set: BTreeSet<u32> = [0, 1, 2, 3, 5, 7, 8].into();
        assert_eq!(ranges(&set), "0-3,5,7-8");
        assert_eq!(parse_ranges("0-3,5,7-8").unwrap(), [0, 1, 2, 3, 5, 7, 8]);
        assert_eq!(ranges(&BTreeSet::new()), "");
        assert!(parse_ranges("").unwrap().is_empty());
        assert!(parse_ranges("3-1").is_err());
        assert!(parse_ranges("x").is_err());
    }

    #[test]
    fn item_round_trip_keeps_only_the_slice() {
        let schema = ItemSchema::new();
        let mut cp = Checkpoint::default();
        cp.mark_done(4);
        cp.mark_done(5);
        let cursor: Cursor = HashMap::from([("id".into(), AttributeValue::S("abc".into()))]);
        cp.set_cursor(6, cursor.clone());
        cp.set_cursor(9, cursor.clone());
        let item = cp.to_item(&schema, schema.checkpoint_key("4-8of8"), 1);
        assert_eq!(
            item["id"],
            AttributeValue::S("!sweeper-checkpoint/4-8of8".into())
        );
        assert!(!item.contains_key("expires"));
        let back = Checkpoint::from_item(&item, 4, 8).unwrap();
        assert!(back.is_done(4) && back.is_done(5) && !back.is_done(6));
        assert_eq!(back.cursor(6), Some(&cursor));
        assert_eq!(back.cursor(9), None);
    }

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

    #[test]
    fn malformed_items_are_reported() {
        let item: Item = HashMap::from([(DONE.into(), AttributeValue::N("1".into()))]);
        assert!(Checkpoint::from_item(&item, 0, 8).is_err());
        let item: Item = HashMap::from([(
            CURSORS.into(),
            AttributeValue::M(HashMap::from([(
                "x".into(),
                AttributeValue::M(HashMap::new()),
            )])),
        )]);
        assert!(Checkpoint::from_item(&item, 0, 8).is_err());
    }
}
