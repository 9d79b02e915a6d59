//! Settling a sweep: how each segment's work ended, folded into the progress to keep.
//!
//! A pure decision, apart from any I/O, as mini-redis keeps `purge_expired_keys` apart
//! from the task that drives it: the engine gathers [`SegmentEnd`]s, [`settle`] decides
//! the new [`Checkpoint`] and the counts, and the engine then writes what was decided.

use crate::checkpoint::Checkpoint;
use crate::error::{CallError, Operation};
use crate::scan::Cursor;

/// How a segment's work in this sweep ended.
#[derive(Debug)]
pub(crate) enum SegmentEnd {
    /// Scanned to its end.
    Done,
    /// Stopped by the budget; continue from the cursor (`None`: from the start).
    Stopped(Option<Cursor>),
    /// Failed after retries; the cursor is the last page fully processed.
    Failed(Option<Cursor>, CallError),
}

/// What a sweep's segment ends come to.
#[derive(Debug, Default)]
pub(crate) struct Settled {
    /// The progress to keep: the previous checkpoint with this sweep's ends applied.
    pub(crate) progress: Checkpoint,
    /// Segments that failed.
    pub(crate) failed: u32,
    /// Segments that continued from a cursor of the previous checkpoint.
    pub(crate) resumed: u32,
    /// One line per failed segment (no session ids in them).
    pub(crate) errors: Vec<String>,
}

/// Applies `ends` to `previous` (the checkpoint this sweep started from). Pure.
///
/// A finished segment is marked done; a stopped one keeps the cursor it reached; a failed
/// one keeps its last good cursor, except when the scan itself was refused for good (say,
/// a cursor from a forged checkpoint that is not a valid starting key): that segment would
/// fail at the same place every run, so it starts over instead, which only repeats
/// conditional deletes.
pub(crate) fn settle(previous: Option<&Checkpoint>, ends: Vec<(u32, SegmentEnd)>) -> Settled {
    let mut settled = Settled {
        progress: previous.cloned().unwrap_or_default(),
        ..Settled::default()
    };
    for (segment, end) in ends {
        if previous.is_some_and(|p| p.cursor(segment).is_some()) {
            settled.resumed += 1;
        }
        match end {
            SegmentEnd::Done => settled.progress.mark_done(segment),
            SegmentEnd::Stopped(Some(cursor)) => settled.progress.set_cursor(segment, cursor),
            SegmentEnd::Stopped(None) => {}
            SegmentEnd::Failed(cursor, err) => {
                settled.failed += 1;
                let scan_refused = err.operation() == Some(Operation::Scan) && !err.is_transient();
                match cursor {
                    Some(cursor) if !scan_refused => settled.progress.set_cursor(segment, cursor),
                    _ => settled.progress.forget(segment),
                }
                settled.errors.push(format!("segment {segment}: {err}"));
            }
        }
    }
    settled
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use aws_sdk_dynamodb::types::AttributeValue;

    use super::*;

    fn cursor(key: &str) -> Cursor {
        HashMap::from([("id".to_owned(), AttributeValue::S(key.to_owned()))])
    }

    fn failure(operation: Operation, transient: bool) -> CallError {
        CallError::Sdk {
            operation,
            code: Some("Boom".to_owned()),
            transient,
            message: "boom".to_owned(),
        }
    }

    #[test]
    fn ends_are_applied_to_the_previous_checkpoint() {
        let mut previous = Checkpoint::default();
        previous.mark_done(0);
        previous.set_cursor(1, cursor("b"));
        previous.set_cursor(2, cursor("c"));
        let settled = settle(
            Some(&previous),
            vec![
                (1, SegmentEnd::Done),
                (2, SegmentEnd::Stopped(Some(cursor("c2")))),
                (3, SegmentEnd::Stopped(None)),
                (4, SegmentEnd::Stopped(Some(cursor("e")))),
            ],
        );
        let p = &settled.progress;
        assert!(p.is_done(0) && p.is_done(1) && !p.is_done(2));
        assert_eq!(p.cursor(1), None);
        assert_eq!(p.cursor(2), Some(&cursor("c2")));
        assert_eq!(p.cursor(3), None);
        assert_eq!(p.cursor(4), Some(&cursor("e")));
        // Segments 1 and 2 continued from a previous cursor; 3 and 4 started fresh.
        assert_eq!(settled.resumed, 2);
        assert_eq!(settled.failed, 0);
        assert!(settled.errors.is_empty());
    }

    #[test]
    fn a_failed_segment_keeps_its_last_good_cursor() {
        let settled = settle(
            None,
            vec![(
                5,
                SegmentEnd::Failed(
                    Some(cursor("x")),
                    failure(Operation::BatchExecuteStatement, true),
                ),
            )],
        );
        assert_eq!(settled.progress.cursor(5), Some(&cursor("x")));
        assert_eq!(settled.failed, 1);
        assert_eq!(settled.errors.len(), 1);
        assert!(
            settled.errors[0].starts_with("segment 5: "),
            "{:?}",
            settled.errors
        );
    }

    #[test]
    fn a_scan_refused_for_good_starts_the_segment_over() {
        let mut previous = Checkpoint::default();
        previous.set_cursor(6, cursor("forged"));
        let settled = settle(
            Some(&previous),
            vec![
                (
                    6,
                    SegmentEnd::Failed(Some(cursor("forged")), failure(Operation::Scan, false)),
                ),
                (
                    7,
                    SegmentEnd::Failed(Some(cursor("y")), failure(Operation::Scan, true)),
                ),
            ],
        );
        assert_eq!(settled.progress.cursor(6), None);
        assert!(!settled.progress.is_done(6));
        // A transient scan failure is worth resuming where it was.
        assert_eq!(settled.progress.cursor(7), Some(&cursor("y")));
        assert_eq!((settled.failed, settled.resumed), (2, 1));
    }

    #[test]
    fn nothing_to_settle_keeps_the_previous_checkpoint() {
        let mut previous = Checkpoint::default();
        previous.mark_done(3);
        let settled = settle(Some(&previous), Vec::new());
        assert_eq!(settled.progress, previous);
        assert!(settle(None, Vec::new()).progress.is_empty());
    }
}
