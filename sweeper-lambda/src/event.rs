//! The invocation event: per-run overrides from the schedule.
//!
//! Two shapes are accepted, all fields optional:
//!
//! - EventBridge Scheduler's `Input` JSON, as is:
//!   `{"total_segments": 16, "dry_run": true, "grace_seconds": 15,
//!     "max_deletes_per_second": 500, "max_read_units_per_second": 200,
//!     "max_read_units": 100000, "page_size": 100, "slice": {"start": 0, "end": 4}}`
//! - the classic scheduled-event envelope, `{"source": "aws.events", "detail-type":
//!   "Scheduled Event", "detail": {…same fields…}, …}`.
//!
//! `null`, `{}`, an empty `detail` and `null` fields change nothing. The fields are
//! declared with serde (`deny_unknown_fields`), so a typo (`total_segment`) fails instead of
//! being silently ignored, and `serde_path_to_error` names the field that failed.

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::config::{ConfigError, MAX_TOTAL_SEGMENTS, Slice, SweepConfig};

/// Settings an event may override; `None` keeps the configured value.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct EventOverrides {
    /// `total_segments`, 1 to 1,000,000.
    pub total_segments: Option<u32>,
    /// `dry_run`.
    pub dry_run: Option<bool>,
    /// `grace_seconds`.
    pub grace_seconds: Option<u64>,
    /// `max_deletes_per_second` (0: no cap).
    pub max_deletes_per_second: Option<u32>,
    /// `max_read_units_per_second` (0: no cap).
    pub max_read_units_per_second: Option<u32>,
    /// `max_read_units`, the run's read budget (0: none).
    pub max_read_units: Option<u64>,
    /// `page_size` (0: DynamoDB's default).
    pub page_size: Option<u32>,
    /// `slice`: `{"start": s, "end": e}`.
    #[serde(default, deserialize_with = "slice_object")]
    pub slice: Option<Slice>,
}

/// A slice only as an object: serde would also take `[start, end]` for a struct, which
/// reads too much like a range to be allowed through unremarked.
fn slice_object<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Slice>, D::Error> {
    use serde::de::Error;
    let Some(map) = Option::<Map<String, Value>>::deserialize(d)? else {
        return Ok(None);
    };
    Slice::deserialize(Value::Object(map))
        .map(Some)
        .map_err(|e| D::Error::custom(format!("{e} (expected {{\"start\": 0, \"end\": 4}})")))
}

impl EventOverrides {
    /// Reads an invocation event (either shape).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the event field that is unknown, of the wrong type or out
    /// of range.
    pub fn parse(event: &Value) -> Result<Self, ConfigError> {
        let (fields, prefix) = match event {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) if is_envelope(map) => match map.get("detail") {
                None | Some(Value::Null) => return Ok(Self::default()),
                Some(detail @ Value::Object(_)) => (detail, "detail."),
                Some(other) => {
                    return Err(field_error(
                        "detail",
                        format!("must be an object, got {}", kind(other)),
                    ));
                }
            },
            Value::Object(_) => (event, ""),
            other => {
                return Err(ConfigError::new(
                    "event",
                    format!(
                        "must be a JSON object (the schedule's Input) or null, got {}",
                        kind(other)
                    ),
                ));
            }
        };
        let out: Self = serde_path_to_error::deserialize(fields).map_err(|err| {
            let path = err.path().to_string();
            field_error(&format!("{prefix}{path}"), err.into_inner().to_string())
        })?;
        if let Some(total) = out.total_segments
            && !(1..=MAX_TOTAL_SEGMENTS).contains(&total)
        {
            return Err(field_error(
                &format!("{prefix}total_segments"),
                format!("must be between 1 and {MAX_TOTAL_SEGMENTS}, got {total}"),
            ));
        }
        Ok(out)
    }

    /// `config` with these overrides applied, validated.
    ///
    /// # Errors
    /// A [`ConfigError`] when the result is invalid (e.g. a slice beyond the total).
    pub fn apply(&self, config: &SweepConfig) -> Result<SweepConfig, ConfigError> {
        let mut config = config.clone();
        if let Some(total) = self.total_segments {
            config = config.with_total_segments(total);
        }
        if let Some(slice) = self.slice {
            if slice.start >= slice.end || slice.end > config.total_segments() {
                return Err(field_error(
                    "slice",
                    format!(
                        "must satisfy start < end <= total_segments ({}), got {}..{}",
                        config.total_segments(),
                        slice.start,
                        slice.end
                    ),
                ));
            }
            config = config.with_slice(slice);
        }
        if let Some(dry_run) = self.dry_run {
            config = config.with_dry_run(dry_run);
        }
        if let Some(grace) = self.grace_seconds {
            config = config.with_grace(std::time::Duration::from_secs(grace));
        }
        if let Some(cap) = self.max_deletes_per_second {
            config = config.with_max_deletes_per_second(cap);
        }
        if let Some(cap) = self.max_read_units_per_second {
            config = config.with_max_read_units_per_second(cap);
        }
        if let Some(budget) = self.max_read_units {
            config = config.with_max_read_units(budget);
        }
        if let Some(page_size) = self.page_size {
            config = config.with_page_size(page_size);
        }
        config.validate()?;
        Ok(config)
    }
}

fn is_envelope(map: &Map<String, Value>) -> bool {
    map.get("source").and_then(Value::as_str) == Some("aws.events")
        || map.contains_key("detail-type")
}

fn field_error(field: &str, reason: impl Into<String>) -> ConfigError {
    ConfigError::new(format!("event field `{field}`"), reason)
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn scheduler_input_is_read_as_is() {
        let o = EventOverrides::parse(&json!({
            "total_segments": 16, "dry_run": true, "grace_seconds": 30,
            "max_deletes_per_second": 500, "page_size": 100, "slice": {"start": 0, "end": 4},
            "max_read_units_per_second": 200, "max_read_units": 100000
        }))
        .unwrap();
        assert_eq!(o.max_read_units_per_second, Some(200));
        assert_eq!(o.max_read_units, Some(100_000));
        assert_eq!(o.total_segments, Some(16));
        assert_eq!(o.dry_run, Some(true));
        assert_eq!(o.grace_seconds, Some(30));
        assert_eq!(o.max_deletes_per_second, Some(500));
        assert_eq!(o.page_size, Some(100));
        assert_eq!(o.slice, Some(Slice::new(0, 4)));
        let config = o.apply(&SweepConfig::new("t")).unwrap();
        assert_eq!(config.slice_label(), "0-4of16");
        assert!(config.dry_run());
    }

    #[test]
    fn envelope_detail_is_read_and_empty_events_change_nothing() {
        let o = EventOverrides::parse(&json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event",
            "source": "aws.events", "time": "2024-01-01T00:00:00Z", "region": "eu-west-1",
            "resources": [], "detail": {"dry_run": true}
        }))
        .unwrap();
        assert_eq!(o.dry_run, Some(true));
        assert_eq!(o.total_segments, None);
        for empty in [
            json!(null),
            json!({}),
            json!({"source": "aws.events", "detail": {}}),
        ] {
            assert_eq!(EventOverrides::parse(&empty).unwrap(), Default::default());
        }
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (json!({"total_segments": "8"}), "total_segments"),
            (json!({"total_segments": 0}), "total_segments"),
            (json!({"total_segments": 1_000_001}), "total_segments"),
            (json!({"dry_run": "yes"}), "dry_run"),
            (json!({"total_segment": 8}), "total_segment"),
            (json!({"slice": {"start": 1}}), "slice"),
            (json!({"slice": {"start": 1, "end": 2, "step": 1}}), "slice"),
            (json!({"slice": [0, 4]}), "slice"),
            (json!({"page_size": -1}), "page_size"),
            (
                json!({"max_read_units_per_second": 1.5}),
                "max_read_units_per_second",
            ),
            (json!({"max_read_units": "10"}), "max_read_units"),
            (
                json!({"source": "aws.events", "detail": {"grace_seconds": 1.5}}),
                "detail.grace_seconds",
            ),
            (json!([1]), "event"),
        ];
        for (event, field) in cases {
            let err = EventOverrides::parse(&event).unwrap_err();
            assert!(err.field().contains(field), "{event}: {err}");
        }
        // A missing part of the slice is named in the reason.
        let err = EventOverrides::parse(&json!({"slice": {"start": 1}})).unwrap_err();
        assert!(err.reason().contains("`end`"), "{err}");
        // Unknown fields list the known ones.
        let err = EventOverrides::parse(&json!({"total_segment": 8})).unwrap_err();
        assert!(err.reason().contains("total_segments"), "{err}");
        let err = EventOverrides::parse(&json!({"slice": {"start": 4, "end": 9}}))
            .unwrap()
            .apply(&SweepConfig::new("t"))
            .unwrap_err();
        assert!(err.to_string().contains("slice"), "{err}");
    }
}
