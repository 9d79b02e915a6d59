//! What a sweep did: [`SweepReport`], and the CloudWatch Embedded Metric Format line that
//! turns its counts into metrics.

use std::time::Duration;

use serde::{Serialize, Serializer};
use serde_json::{Value, json};

use crate::config::MetricsMode;

/// The outcome of one sweep (one invocation, one slice).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct SweepReport {
    /// The table swept.
    pub table: String,
    /// The slice swept, e.g. `0-8of8` (also the checkpoint item's name).
    pub slice: String,
    /// Whether nothing was deleted on purpose.
    pub dry_run: bool,
    /// Items whose expiry (epoch seconds) is below this were deleted.
    pub cutoff: i64,
    /// Items DynamoDB evaluated (`ScannedCount`), live ones included.
    pub scanned: u64,
    /// Well-formed session items found expired: deleted, skipped live, already gone, or
    /// left by a dry run.
    pub expired_found: u64,
    /// Items deleted.
    pub deleted: u64,
    /// Expired items in delete requests that got no answer (cut by a timeout or the
    /// deadline, or a connection lost on the way back) and were not answered by a retry:
    /// DynamoDB may or may not have deleted them. `deleted + unconfirmed` covers what this
    /// sweep removed from the table; the next pass deletes what is left.
    pub unconfirmed: u64,
    /// Expired items whose conditional delete failed because they were refreshed after
    /// the scan. They were left alone.
    pub skipped_live: u64,
    /// Expired items that were gone when their delete arrived (native TTL, a logout, or
    /// an earlier attempt of this sweep whose answer was lost). Not counted as deleted.
    pub already_gone: u64,
    /// Items with a missing or non-numeric expiry, or a key that is not a string: never
    /// deleted, only counted.
    pub malformed_skipped: u64,
    /// Sessions whose expiry looks like epoch milliseconds (as connect-dynamodb-session
    /// wrote them; DynamoDB's TTL ignores them too): never deleted, only counted.
    pub expires_in_millis: u64,
    /// Sessions whose expiry is more than ten years after the cutoff (but not
    /// milliseconds): never deleted, only counted.
    pub expires_far_future: u64,
    /// Deletes DynamoDB refused statement by statement (a `ValidationError` in a PartiQL
    /// batch): never retried, the item left; the first messages are in `errors`.
    pub statement_errors: u64,
    /// Parts of the checkpoint item discarded as invalid (each described in a warning):
    /// the item is rewritten or cleared by this sweep.
    pub checkpoint_discarded: u64,
    /// Retries after throttling (`ProvisionedThroughputExceeded`, `Throttling`,
    /// `RequestLimitExceeded`, whole requests or single statements).
    pub throttled_retries: u64,
    /// All retries, throttling included (also 5xx, timeouts, connection failures).
    pub retries: u64,
    /// Scan pages processed.
    pub pages: u64,
    /// Read capacity units consumed, as DynamoDB reported them: the scan (dry runs too)
    /// and the checkpoint read. On an on-demand table, read request units.
    pub read_units: f64,
    /// Write capacity units consumed, as DynamoDB reported them: the deletes and the
    /// checkpoint write.
    pub write_units: f64,
    /// Segments of the slice finished (in this or an earlier, checkpointed invocation).
    pub segments_completed: u32,
    /// Segments that failed after retries.
    pub segments_failed: u32,
    /// Segments not finished because time ran out (they resume next time).
    pub segments_remaining: u32,
    /// Segments continued from a checkpointed cursor rather than from the start.
    pub segments_resumed: u32,
    /// How long the sweep took.
    #[serde(rename = "duration_ms", serialize_with = "millis")]
    pub duration: Duration,
    /// Whether every segment of the slice is finished.
    pub complete: bool,
    /// Whether resume cursors were saved (the sweep stopped early with checkpoints on).
    pub checkpoint_saved: bool,
    /// The checkpoint could not be read before the work deadline (its retries ran out of
    /// time, though the run had time left): nothing was scanned and nothing written, so
    /// a sweep from the top cannot overwrite the real progress with its own.
    pub checkpoint_unread: bool,
    /// Another run of this slice wrote the checkpoint after this run read it: this run's
    /// progress was not saved (its deletes stand; the other run's checkpoint is kept).
    pub checkpoint_conflict: bool,
    /// The read-units-per-second cap in force (an `auto` cap as sized from the table),
    /// `None` when there was none.
    pub read_cap_per_second: Option<u32>,
    /// When the current pass over the slice began, epoch seconds: this run's start, or
    /// the checkpoint's record of the run that began it.
    pub pass_began: i64,
    /// How long the slice has been behind: 0 when this run finished the pass, otherwise
    /// the seconds since the pass began. It grows run after run while every run stops
    /// early, on any schedule; the `BacklogSeconds` metric and its alarm.
    pub backlog_seconds: u64,
    /// Why segments failed, refused statements, and any checkpoint failure (no session
    /// ids in here).
    pub errors: Vec<String>,
}

fn millis<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The metric names of the deployment contract, per table, in the order they are emitted
/// (with [`MetricsMode::All`]).
pub const METRIC_NAMES: [&str; 15] = [
    "Scanned",
    "ExpiredFound",
    "Deleted",
    "SkippedLive",
    "MalformedSkipped",
    "ThrottledRetries",
    "SegmentsCompleted",
    "SegmentsFailed",
    "Incomplete",
    "DurationMs",
    "StatementErrors",
    "ReadUnits",
    "WriteUnits",
    "Unconfirmed",
    "BacklogSeconds",
];

/// The one metric the alarms read, per slice: [`SweepReport::backlog_seconds`].
pub const BACKLOG_METRIC: &str = "BacklogSeconds";

/// A metric's CloudWatch unit.
fn unit(name: &str) -> &'static str {
    match name {
        "DurationMs" => "Milliseconds",
        BACKLOG_METRIC => "Seconds",
        _ => "Count",
    }
}

impl SweepReport {
    /// The report as one CloudWatch Embedded Metric Format object in `namespace`, at
    /// `timestamp_ms` (epoch milliseconds), with every count as a property.
    ///
    /// Which are metrics depends on `mode` (each metric and dimension set is a custom
    /// metric, billed per month):
    /// - [`MetricsMode::All`]: the [`METRIC_NAMES`] per `TableName` (15), and, with
    ///   `function_name` (the Lambda function's, which is one slice's in the template),
    ///   [`BACKLOG_METRIC`] per `TableName` and `FunctionName` (1 per slice), so that a
    ///   slice that keeps stopping early is seen even while the others finish;
    /// - [`MetricsMode::Alarms`]: only [`BACKLOG_METRIC`] per slice (per `TableName`
    ///   without a function name): 1 per slice.
    ///
    /// A dry run, or a run that could not read its checkpoint, does not know how old the
    /// pass is: it publishes no per-slice [`BACKLOG_METRIC`], so it never clears the alarm.
    pub fn to_emf(
        &self,
        namespace: &str,
        timestamp_ms: i64,
        function_name: Option<&str>,
        mode: MetricsMode,
    ) -> Value {
        let metric = |name: &str| json!({"Name": name, "Unit": unit(name)});
        let mut directives = Vec::new();
        if mode == MetricsMode::All {
            directives.push(json!({
                "Namespace": namespace,
                "Dimensions": [["TableName"]],
                "Metrics": METRIC_NAMES.iter().map(|n| metric(n)).collect::<Vec<_>>(),
            }));
        }
        // The alarm's metric only from a run that knows how old its pass is: a dry run
        // (an operator's check) or a run that could not read its checkpoint must not
        // clear a backlog alarm.
        let backlog_known = !self.dry_run && !self.checkpoint_unread;
        let backlog_dimensions = match (backlog_known, function_name, mode) {
            (false, ..) => None,
            (true, Some(_), _) => Some(json!([["TableName", "FunctionName"]])),
            (true, None, MetricsMode::Alarms) => Some(json!([["TableName"]])),
            (true, None, _) => None,
        };
        if let Some(dimensions) = backlog_dimensions {
            directives.push(json!({
                "Namespace": namespace,
                "Dimensions": dimensions,
                "Metrics": [metric(BACKLOG_METRIC)],
            }));
        }
        let mut emf = json!({
            "_aws": {
                "Timestamp": timestamp_ms,
                "CloudWatchMetrics": directives,
            },
            "TableName": self.table,
            "Scanned": self.scanned,
            "ExpiredFound": self.expired_found,
            "Deleted": self.deleted,
            "SkippedLive": self.skipped_live,
            "MalformedSkipped": self.malformed_skipped,
            "ThrottledRetries": self.throttled_retries,
            "SegmentsCompleted": self.segments_completed,
            "SegmentsFailed": self.segments_failed,
            "Incomplete": u8::from(!self.complete),
            "DurationMs": u64::try_from(self.duration.as_millis()).unwrap_or(u64::MAX),
            "StatementErrors": self.statement_errors,
            "ReadUnits": self.read_units,
            "WriteUnits": self.write_units,
            "Unconfirmed": self.unconfirmed,
            "BacklogSeconds": self.backlog_seconds,
            "Slice": self.slice,
            "DryRun": self.dry_run,
            "Retries": self.retries,
            "AlreadyGone": self.already_gone,
            "SegmentsRemaining": self.segments_remaining,
            "ExpiresInMillis": self.expires_in_millis,
            "ExpiresFarFuture": self.expires_far_future,
            "CheckpointDiscarded": self.checkpoint_discarded,
            "PassBegan": self.pass_began,
            "ReadCapPerSecond": self.read_cap_per_second,
        });
        if let Some(name) = function_name {
            emf["FunctionName"] = json!(name);
        }
        emf
    }

    /// [`SweepReport::to_emf`] as one line of JSON, ready for stdout.
    pub fn emf_line(
        &self,
        namespace: &str,
        timestamp_ms: i64,
        function_name: Option<&str>,
        mode: MetricsMode,
    ) -> String {
        self.to_emf(namespace, timestamp_ms, function_name, mode)
            .to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report() -> SweepReport {
        SweepReport {
            table: "sessions".into(),
            slice: "0-8of8".into(),
            dry_run: false,
            cutoff: 1_700_000_000,
            scanned: 10,
            expired_found: 6,
            deleted: 4,
            unconfirmed: 25,
            skipped_live: 2,
            already_gone: 0,
            malformed_skipped: 1,
            expires_in_millis: 2,
            expires_far_future: 1,
            statement_errors: 1,
            checkpoint_discarded: 3,
            throttled_retries: 3,
            retries: 5,
            pages: 2,
            read_units: 20.5,
            write_units: 4.0,
            segments_completed: 7,
            segments_failed: 1,
            segments_remaining: 0,
            segments_resumed: 0,
            duration: Duration::from_millis(1234),
            complete: false,
            checkpoint_saved: true,
            checkpoint_unread: false,
            checkpoint_conflict: false,
            read_cap_per_second: Some(40),
            pass_began: 1_699_990_000,
            backlog_seconds: 10_000,
            errors: vec!["segment 3: boom".into()],
        }
    }

    #[test]
    fn emf_line_is_one_json_line_with_the_contract_metrics() {
        let line = report().emf_line("SessionSweeper", 1_700_000_000_000, None, MetricsMode::All);
        assert!(!line.contains('\n'));
        let v: Value = serde_json::from_str(&line).unwrap();
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 1, "no function: no per-slice metric");
        let directive = &directives[0];
        assert_eq!(v["_aws"]["Timestamp"], 1_700_000_000_000_i64);
        assert_eq!(directive["Namespace"], "SessionSweeper");
        assert_eq!(directive["Dimensions"], json!([["TableName"]]));
        let names: Vec<&str> = directive["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["Name"].as_str().unwrap())
            .collect();
        assert_eq!(names, METRIC_NAMES);
        assert_eq!(directive["Metrics"][9]["Unit"], "Milliseconds");
        assert_eq!(directive["Metrics"][14]["Unit"], "Seconds");
        assert_eq!(directive["Metrics"][0]["Unit"], "Count");
        // Every metric has a numeric value beside it, and the dimension is set.
        for name in METRIC_NAMES {
            assert!(v[name].is_number(), "{name} missing");
        }
        assert_eq!(v["ReadUnits"], 20.5);
        assert_eq!(v["WriteUnits"], 4.0);
        assert_eq!(v["TableName"], "sessions");
        assert_eq!(v["Deleted"], 4);
        assert_eq!(v["Unconfirmed"], 25);
        assert_eq!(v["BacklogSeconds"], 10_000);
        assert_eq!(v["PassBegan"], 1_699_990_000_i64);
        assert_eq!(v["ReadCapPerSecond"], 40);
        assert_eq!(v["Incomplete"], 1);
        assert_eq!(v["DurationMs"], 1234);
        assert_eq!(v["StatementErrors"], 1);
        assert_eq!(v["ExpiresInMillis"], 2);
        assert_eq!(v["ExpiresFarFuture"], 1);
        assert_eq!(v["CheckpointDiscarded"], 3);
    }

    #[test]
    fn in_lambda_the_backlog_is_also_per_function() {
        let v = report().to_emf(
            "Ns",
            0,
            Some("stack-SweeperFunction1-ABC"),
            MetricsMode::All,
        );
        let directives = v["_aws"]["CloudWatchMetrics"].as_array().unwrap();
        assert_eq!(directives.len(), 2);
        assert_eq!(directives[0]["Dimensions"], json!([["TableName"]]));
        assert_eq!(
            directives[0]["Metrics"].as_array().unwrap().len(),
            METRIC_NAMES.len()
        );
        assert_eq!(directives[1]["Namespace"], "Ns");
        assert_eq!(
            directives[1]["Dimensions"],
            json!([["TableName", "FunctionName"]])
        );
        assert_eq!(
            directives[1]["Metrics"],
            json!([{"Name": "BacklogSeconds", "Unit": "Seconds"}])
        );
        assert_eq!(v["FunctionName"], "stack-SweeperFunction1-ABC");
        assert_eq!(v["BacklogSeconds"], 10_000);
    }

    #[test]
    fn a_dry_run_or_an_unread_checkpoint_never_feeds_the_alarm() {
        for (dry_run, checkpoint_unread) in [(true, false), (false, true)] {
            let mut r = report();
            r.dry_run = dry_run;
            r.checkpoint_unread = checkpoint_unread;
            r.backlog_seconds = 0;
            let all = r.to_emf("Ns", 0, Some("f"), MetricsMode::All);
            let directives = all["_aws"]["CloudWatchMetrics"].as_array().unwrap();
            assert_eq!(directives.len(), 1, "the table's metrics only");
            assert_eq!(directives[0]["Dimensions"], json!([["TableName"]]));
            let alarms = r.to_emf("Ns", 0, Some("f"), MetricsMode::Alarms);
            assert!(
                alarms["_aws"]["CloudWatchMetrics"]
                    .as_array()
                    .unwrap()
                    .is_empty()
            );
        }
    }

    #[test]
    fn alarms_mode_publishes_one_metric_per_slice() {
        let metrics = |function: Option<&str>| {
            let v = report().to_emf("Ns", 0, function, MetricsMode::Alarms);
            v["_aws"]["CloudWatchMetrics"].as_array().unwrap().clone()
        };
        let in_lambda = metrics(Some("f"));
        assert_eq!(in_lambda.len(), 1);
        assert_eq!(
            in_lambda[0]["Dimensions"],
            json!([["TableName", "FunctionName"]])
        );
        assert_eq!(in_lambda[0]["Metrics"].as_array().unwrap().len(), 1);
        let outside = metrics(None);
        assert_eq!(outside.len(), 1);
        assert_eq!(outside[0]["Dimensions"], json!([["TableName"]]));
        assert_eq!(
            outside[0]["Metrics"],
            json!([{"Name": "BacklogSeconds", "Unit": "Seconds"}])
        );
    }

    #[test]
    fn report_json_has_duration_in_millis() {
        let v = serde_json::to_value(report()).unwrap();
        assert_eq!(v["duration_ms"], 1234);
        assert_eq!(v["skipped_live"], 2);
        assert_eq!(v["complete"], false);
    }
}
