//! The checkpoint item, written and read back: encoding, and validation of everything in
//! it before any of it is used, without relying on the server.
//!
//! The item can hold anything: someone else may have written it, by mistake or not. So
//! reading it never fails and never costs more than the slice: every part is checked on
//! its own, what is valid is kept, and every other part is discarded, described and
//! counted.
//!
//! - `done` ranges are merged and intersected with the slice while parsing, so a range
//!   like `0-4294967295` costs no more memory than the slice's own segments;
//! - a cursor must be a map holding exactly the key attribute, a non-empty string of at
//!   most DynamoDB's 2,048-byte key size. It need not carry the sessions' key prefix:
//!   DynamoDB's `LastEvaluatedKey` is the last item *evaluated*, filtered out or not, so
//!   in a table shared with other items it is legitimately another item's key;
//! - attributes other than the key, `done`, `cursors`, `updated`, `began` and `token` are
//!   discarded.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use dynamo_session_store::ItemSchema;
use dynamo_session_store::schema::{MAX_KEY_BYTES, attribute_type as type_name};

use super::Checkpoint;
use crate::config::Slice;
use crate::scan::Cursor;

/// One DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

const DONE: &str = "done";
const CURSORS: &str = "cursors";
const UPDATED: &str = "updated";
const BEGAN: &str = "began";
/// The write token: a random value each write sets, and the next write requires.
pub(crate) const TOKEN: &str = "token";

impl Checkpoint {
    /// The checkpoint item for `key`, written at `updated` (epoch seconds), with the
    /// write token `token`.
    pub fn to_item(&self, schema: &ItemSchema, key: String, updated: i64, token: &str) -> Item {
        let cursors = self
            .cursors
            .iter()
            .map(|(segment, cursor)| (segment.to_string(), AttributeValue::M(cursor.clone())))
            .collect();
        let mut item = HashMap::from([
            (schema.key_attribute().to_owned(), AttributeValue::S(key)),
            (DONE.to_owned(), AttributeValue::S(ranges(&self.done))),
            (CURSORS.to_owned(), AttributeValue::M(cursors)),
            (UPDATED.to_owned(), AttributeValue::N(updated.to_string())),
            (TOKEN.to_owned(), AttributeValue::S(token.to_owned())),
        ]);
        if let Some(began) = self.began {
            item.insert(BEGAN.to_owned(), AttributeValue::N(began.to_string()));
        }
        item
    }

    /// Reads a checkpoint item of `slice`: every valid part within the slice, and a
    /// description of every part discarded (empty for an item this sweeper wrote). An
    /// item without `began` (written before it was recorded) is taken to have begun
    /// when it was `updated`: the pass began no later than that.
    pub fn from_item(item: &Item, schema: &ItemSchema, slice: Slice) -> (Self, Vec<String>) {
        let mut out = Self::default();
        let mut discarded = Vec::new();
        let mut updated = None;
        for (name, value) in item {
            match (name.as_str(), value) {
                (BEGAN | UPDATED, AttributeValue::N(text)) => match epoch_seconds(text) {
                    Some(t) if name == BEGAN => out.began = Some(t),
                    Some(t) => updated = Some(t),
                    None => discarded.push(format!("`{name}` is not a time: `{}`", short(text))),
                },
                (DONE, AttributeValue::S(text)) => {
                    out.done = parse_done(text, slice, &mut discarded);
                }
                (CURSORS, AttributeValue::M(map)) => {
                    for (segment, cursor) in map {
                        match parse_cursor(segment, cursor, schema, slice) {
                            Ok((segment, cursor)) => {
                                out.cursors.insert(segment, cursor);
                            }
                            Err(problem) => discarded.push(problem),
                        }
                    }
                }
                (TOKEN, AttributeValue::S(_)) => {}
                (name, _) if name == schema.key_attribute() => {}
                (DONE | CURSORS | UPDATED | BEGAN | TOKEN, other) => {
                    discarded.push(format!("`{name}` is {}", type_name(other)));
                }
                (name, _) => discarded.push(format!("unknown attribute `{name}`")),
            }
        }
        if out.began.is_none() {
            out.began = updated;
        }
        // A finished segment has no cursor: one left beside it was never written by us.
        let stale: Vec<u32> = out
            .cursors
            .keys()
            .copied()
            .filter(|s| out.done.contains(s))
            .collect();
        for segment in stale {
            out.cursors.remove(&segment);
            discarded.push(format!("cursor of segment {segment}, which is done"));
        }
        (out, discarded)
    }
}

/// Epoch seconds from a number attribute's text: a whole number from 1 on.
fn epoch_seconds(text: &str) -> Option<i64> {
    text.trim().parse::<i64>().ok().filter(|t| *t > 0)
}

/// `done`'s ranges, merged and intersected with `slice`; a part that is not a segment or
/// range, or reaches outside the slice, is described in `discarded` (its in-slice part,
/// if any, is kept: segments marked done only skip work, and only until the slice's next
/// completion).
fn parse_done(
    text: &str,
    slice: Slice,
    discarded: &mut Vec<String>,
) -> std::collections::BTreeSet<u32> {
    let mut ranges: Vec<(u32, u32)> = Vec::new();
    for part in text.split(',').filter(|p| !p.is_empty()) {
        let Some((first, last)) = parse_range(part) else {
            discarded.push(format!(
                "`{}` in `done` is not a segment or range",
                short(part)
            ));
            continue;
        };
        if first < slice.start || last >= slice.end {
            discarded.push(format!(
                "`{part}` in `done` reaches outside the slice {}..{}",
                slice.start, slice.end
            ));
        }
        let (lo, hi) = (
            first.max(slice.start),
            last.min(slice.end.saturating_sub(1)),
        );
        if lo <= hi {
            ranges.push((lo, hi));
        }
    }
    // Merged first, so that expanding costs at most the slice's length however many
    // overlapping parts the text holds.
    ranges.sort_unstable();
    let mut merged: Vec<(u32, u32)> = Vec::new();
    for (lo, hi) in ranges {
        match merged.last_mut() {
            Some(last) if lo <= last.1.saturating_add(1) => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged.into_iter().flat_map(|(lo, hi)| lo..=hi).collect()
}

/// `n` or `a-b` with `a <= b`.
fn parse_range(part: &str) -> Option<(u32, u32)> {
    let (first, last) = match part.split_once('-') {
        Some((a, b)) => (a.parse().ok()?, b.parse().ok()?),
        None => {
            let n = part.parse().ok()?;
            (n, n)
        }
    };
    (first <= last).then_some((first, last))
}

/// One entry of `cursors`: a segment of the slice, and a map holding exactly the key
/// attribute as a non-empty string of at most 2,048 bytes.
fn parse_cursor(
    segment: &str,
    cursor: &AttributeValue,
    schema: &ItemSchema,
    slice: Slice,
) -> Result<(u32, Cursor), String> {
    let number: u32 = segment
        .parse()
        .map_err(|_| format!("cursor key `{}` is not a segment number", short(segment)))?;
    if !(slice.start..slice.end).contains(&number) {
        return Err(format!(
            "cursor of segment {number}, outside the slice {}..{}",
            slice.start, slice.end
        ));
    }
    let AttributeValue::M(map) = cursor else {
        return Err(format!(
            "cursor of segment {number} is {}, not a map",
            type_name(cursor)
        ));
    };
    let key = schema.key_attribute();
    match map.get(key) {
        Some(AttributeValue::S(value))
            if map.len() == 1 && !value.is_empty() && value.len() <= MAX_KEY_BYTES =>
        {
            Ok((number, map.clone()))
        }
        _ => Err(format!(
            "cursor of segment {number} is not exactly `{key}` as a string key of 1 to \
             {MAX_KEY_BYTES} bytes"
        )),
    }
}

/// `{0,1,2,3,5}` as `0-3,5`.
fn ranges(set: &std::collections::BTreeSet<u32>) -> String {
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

/// At most 40 characters of untrusted text, for a log line.
fn short(text: &str) -> String {
    let mut out: String = text.chars().take(40).collect();
    if out.len() < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    fn s(v: &str) -> AttributeValue {
        AttributeValue::S(v.to_owned())
    }

    fn cursor(key: &str) -> Cursor {
        HashMap::from([("id".into(), s(key))])
    }

    fn read(item: &Item, start: u32, end: u32) -> (Checkpoint, Vec<String>) {
        Checkpoint::from_item(item, &ItemSchema::new(), Slice::new(start, end))
    }

    #[test]
    fn ranges_round_trip() {
        let set: BTreeSet<u32> = [0, 1, 2, 3, 5, 7, 8].into();
        assert_eq!(ranges(&set), "0-3,5,7-8");
        let mut discarded = Vec::new();
        let parsed = parse_done("0-3,5,7-8", Slice::new(0, 9), &mut discarded);
        assert_eq!(parsed, set);
        assert!(discarded.is_empty());
        assert_eq!(ranges(&BTreeSet::new()), "");
        assert!(parse_done("", Slice::new(0, 9), &mut discarded).is_empty());
        assert_eq!(parse_range("3-1"), None);
        assert_eq!(parse_range("x"), None);
        assert_eq!(parse_range("-1"), None);
    }

    #[test]
    fn item_round_trip_keeps_only_the_slice() {
        let schema = ItemSchema::new();
        let mut cp = Checkpoint::default();
        cp.mark_done(4);
        cp.mark_done(5);
        cp.set_cursor(6, cursor("abc"));
        cp.set_cursor(9, cursor("abc"));
        let item = cp.to_item(
            &schema,
            schema.reserved_key("sweeper-checkpoint/4-8of8").unwrap(),
            1,
            "t",
        );
        assert_eq!(item["id"], s("!sweeper-checkpoint/4-8of8"));
        assert!(!item.contains_key("expires"));
        let (back, discarded) = read(&item, 4, 8);
        assert!(back.is_done(4) && back.is_done(5) && !back.is_done(6));
        assert_eq!(back.cursor(6), Some(&cursor("abc")));
        assert_eq!(back.cursor(9), None);
        assert_eq!(discarded.len(), 1, "{discarded:?}");
        assert!(discarded[0].contains("segment 9"), "{discarded:?}");
        // What this sweeper writes for its own slice reads back whole.
        let mut own = cp.clone();
        own.forget(9);
        own.set_began(1);
        let (back, discarded) = read(&own.to_item(&schema, "k".into(), 1, "t"), 4, 8);
        assert_eq!(back, own);
        assert!(discarded.is_empty(), "{discarded:?}");
    }

    #[test]
    fn the_pass_start_is_kept_or_taken_from_the_last_update() {
        let schema = ItemSchema::new();
        let mut cp = Checkpoint::default();
        cp.mark_done(1);
        cp.set_began(1_700_000_000);
        let item = cp.to_item(&schema, "k".into(), 1_700_000_900, "t");
        assert_eq!(item["began"], AttributeValue::N("1700000000".into()));
        assert_eq!(read(&item, 0, 8).0.began(), Some(1_700_000_000));
        // Written before `began` existed: the pass began no later than its last write.
        let mut old = item.clone();
        old.remove("began");
        assert_eq!(read(&old, 0, 8).0.began(), Some(1_700_000_900));
        // Not a time: discarded, and the last write stands in.
        for bad in ["-5", "0", "soon", "1.5"] {
            let mut forged = item.clone();
            forged.insert("began".into(), AttributeValue::N(bad.into()));
            let (cp, discarded) = read(&forged, 0, 8);
            assert_eq!(cp.began(), Some(1_700_000_900), "{bad}");
            assert_eq!(discarded.len(), 1, "{bad}: {discarded:?}");
        }
        let mut forged = item.clone();
        forged.insert("began".into(), s("yesterday"));
        assert_eq!(read(&forged, 0, 8).1.len(), 1);
        assert_eq!(read(&HashMap::new(), 0, 8).0.began(), None);
    }

    #[test]
    fn a_huge_range_costs_no_more_than_the_slice() {
        let item: Item = HashMap::from([
            ("done".into(), s("0-4294967295,0-4294967295,3")),
            ("id".into(), s("!sweeper-checkpoint/0-8of8")),
        ]);
        let (cp, discarded) = read(&item, 0, 8);
        assert_eq!(
            cp.done_segments().collect::<Vec<_>>(),
            (0..8).collect::<Vec<_>>()
        );
        assert_eq!(discarded.len(), 2, "{discarded:?}");
        // Many overlapping parts are merged before they are expanded.
        let many = vec!["0-999999"; 20_000].join(",");
        let item: Item = HashMap::from([("done".into(), s(&many))]);
        let (cp, discarded) = read(&item, 0, 1_000_000);
        assert_eq!(cp.done_segments().count(), 1_000_000);
        assert!(discarded.is_empty());
    }

    #[test]
    fn forged_ranges_are_clamped_to_a_slice_that_does_not_start_at_zero() {
        // A forged `done: "0-5"` on slice 4..8 marks only 4 and 5 done: the slice is not
        // complete, and segments 6 and 7 are still swept. Both ends of every range are
        // clamped.
        for (done, expected) in [
            ("0-5", vec![4, 5]),
            ("0-3", vec![]),
            ("6-100", vec![6, 7]),
            ("0-100", vec![4, 5, 6, 7]),
            ("3-4,7-9", vec![4, 7]),
        ] {
            let item: Item = HashMap::from([("done".into(), s(done))]);
            let (cp, discarded) = read(&item, 4, 8);
            assert_eq!(cp.done_segments().collect::<Vec<_>>(), expected, "{done}");
            assert!(!discarded.is_empty(), "{done}: reaches outside the slice");
        }
    }

    #[test]
    fn cursors_must_be_exactly_a_string_key() {
        let bad = [
            ("x", AttributeValue::M(cursor("a"))),
            ("1", s("not a map")),
            ("1", AttributeValue::M(HashMap::new())),
            (
                "1",
                AttributeValue::M(HashMap::from([(
                    "id".into(),
                    AttributeValue::N("7".into()),
                )])),
            ),
            (
                "1",
                AttributeValue::M(HashMap::from([("id".into(), s(""))])),
            ),
            (
                "1",
                AttributeValue::M(HashMap::from([("id".into(), s(&"k".repeat(2049)))])),
            ),
            (
                "1",
                AttributeValue::M(HashMap::from([("pk".into(), s("a"))])),
            ),
            (
                "1",
                AttributeValue::M(HashMap::from([
                    ("id".into(), s("a")),
                    ("extra".into(), s("b")),
                ])),
            ),
            ("99", AttributeValue::M(cursor("a"))),
        ];
        for (segment, value) in bad {
            let item: Item = HashMap::from([(
                "cursors".into(),
                AttributeValue::M(HashMap::from([(segment.to_owned(), value.clone())])),
            )]);
            let (cp, discarded) = read(&item, 0, 8);
            assert!(cp.is_empty(), "{segment}: {value:?} was kept");
            assert_eq!(discarded.len(), 1, "{segment}: {value:?}");
        }
        // The longest valid key, and a key of another app's prefix, are kept.
        for key in ["k".repeat(2048), "other-app:xyz".to_owned()] {
            let item: Item = HashMap::from([(
                "cursors".into(),
                AttributeValue::M(HashMap::from([(
                    "1".into(),
                    AttributeValue::M(cursor(&key)),
                )])),
            )]);
            let (cp, discarded) = read(&item, 0, 8);
            assert_eq!(cp.cursor(1), Some(&cursor(&key)));
            assert!(discarded.is_empty());
        }
    }

    #[test]
    fn untrusted_text_is_cut_to_forty_characters_in_messages() {
        let garbage = format!("{}{}", "g".repeat(40), "SECRET".repeat(10));
        let item: Item = HashMap::from([("done".into(), s(&garbage))]);
        let (_, discarded) = read(&item, 0, 8);
        assert_eq!(discarded.len(), 1);
        assert!(
            discarded[0].contains(&format!("`{}…`", "g".repeat(40))),
            "{discarded:?}"
        );
        assert!(!discarded[0].contains("SECRET"), "{discarded:?}");
        // Forty characters or fewer are shown whole, without the mark.
        assert_eq!(short(&"x".repeat(40)), "x".repeat(40));
        assert_eq!(short("é".repeat(40).as_str()), "é".repeat(40));
    }

    #[test]
    fn malformed_parts_are_discarded_one_by_one() {
        let item: Item = HashMap::from([
            ("done".into(), AttributeValue::N("1".into())),
            ("cursors".into(), s("nope")),
            ("updated".into(), s("yesterday")),
            ("surprise".into(), AttributeValue::Bool(true)),
        ]);
        let (cp, discarded) = read(&item, 0, 8);
        assert!(cp.is_empty());
        assert_eq!(discarded.len(), 4, "{discarded:?}");
        let item: Item = HashMap::from([
            ("done".into(), s("1,x,2-1,3")),
            (
                "cursors".into(),
                AttributeValue::M(HashMap::from([
                    ("1".into(), AttributeValue::M(cursor("a"))),
                    ("5".into(), AttributeValue::M(cursor("b"))),
                ])),
            ),
        ]);
        let (cp, discarded) = read(&item, 0, 8);
        assert_eq!(cp.done_segments().collect::<Vec<_>>(), [1, 3]);
        assert_eq!(cp.cursor(1), None, "segment 1 is done");
        assert_eq!(cp.cursor(5), Some(&cursor("b")));
        assert_eq!(discarded.len(), 3, "{discarded:?}");
    }
}
