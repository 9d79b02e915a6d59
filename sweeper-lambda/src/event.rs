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
//! The fields are the settings with an event field in [`SETTINGS`] (declared there once,
//! with their variables and flags), applied and validated as the environment's are. `null`,
//! `{}`, an empty `detail` and `null` fields change nothing. An unknown field (a typo,
//! `total_segment`) fails instead of being silently ignored, and so does a value of the
//! wrong JSON type (`"8"` for a number), naming the field.

use serde_json::{Map, Value};

use crate::config::settings::Kind;
use crate::config::{ConfigError, SETTINGS, Setting, SweepConfig};

/// Settings an event overrides, in the order of [`SETTINGS`], each as the text its
/// variable would hold.
#[derive(Debug, Clone, Default)]
pub struct EventOverrides {
    /// (setting, value, the field as the event named it).
    values: Vec<(&'static Setting, String, String)>,
}

impl EventOverrides {
    /// Reads an invocation event (either shape).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the event field that is unknown or of the wrong type.
    pub fn parse(event: &Value) -> Result<Self, ConfigError> {
        let (fields, prefix) = match event {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) if is_envelope(map) => match map.get("detail") {
                None | Some(Value::Null) => return Ok(Self::default()),
                Some(Value::Object(detail)) => (detail, "detail."),
                Some(other) => {
                    return Err(field_error(
                        "detail",
                        format!("must be an object, got {}", kind(other)),
                    ));
                }
            },
            Value::Object(map) => (map, ""),
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
        let mut values = Vec::new();
        for (name, value) in fields {
            let field = format!("{prefix}{name}");
            let setting = Setting::by_event(name).ok_or_else(|| {
                let known: Vec<&str> = SETTINGS.iter().filter_map(|s| s.event).collect();
                field_error(
                    &field,
                    format!("is not a setting; the event may set {}", known.join(", ")),
                )
            })?;
            if value.is_null() {
                continue;
            }
            let text =
                text_of(setting.kind, value).map_err(|reason| field_error(&field, reason))?;
            values.push((setting, text, field));
        }
        // Applied in the order of SETTINGS: the total before the slice within it.
        values.sort_by_key(|(setting, ..)| SETTINGS.iter().position(|s| s.env == setting.env));
        Ok(Self { values })
    }

    /// Whether the event overrides nothing.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `config` with these overrides applied, validated.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the event field whose value is invalid, or the setting
    /// the result breaks (e.g. a slice beyond the total).
    pub fn apply(&self, config: &SweepConfig) -> Result<SweepConfig, ConfigError> {
        let mut config = config.clone();
        for (setting, text, field) in &self.values {
            config = setting
                .apply(config, text)
                .map_err(|reason| field_error(field, reason))?;
        }
        config.validate().map_err(|err| {
            err.renamed(
                |env| match self.values.iter().find(|(s, ..)| s.env == env) {
                    Some((.., field)) => format!("event field `{field}`"),
                    None => format!("setting `{env}`"),
                },
            )
        })?;
        Ok(config)
    }
}

/// The text a variable would hold for an event's `value` of a setting of `kind`.
fn text_of(kind: Kind, value: &Value) -> Result<String, String> {
    match (kind, value) {
        (Kind::Number, Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        (Kind::Number, other) => Err(format!(
            "must be a non-negative whole number, got {}",
            describe(other)
        )),
        (Kind::Rate, Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
        (Kind::Rate, Value::String(text)) if text.trim().eq_ignore_ascii_case("auto") => {
            Ok(text.clone())
        }
        (Kind::Rate, other) => Err(format!(
            "must be \"auto\" or a non-negative whole number, got {}",
            describe(other)
        )),
        (Kind::Bool, Value::Bool(b)) => Ok(b.to_string()),
        (Kind::Bool, other) => Err(format!("must be true or false, got {}", describe(other))),
        (Kind::Slice, Value::Object(map)) => {
            let bound = |name: &str| match map.get(name) {
                Some(Value::Number(n)) => n
                    .as_u64()
                    .and_then(|n| u32::try_from(n).ok())
                    .ok_or_else(|| format!("`{name}` must be a segment number, got {n}")),
                Some(other) => Err(format!(
                    "`{name}` must be a segment number, got {}",
                    describe(other)
                )),
                None => Err(format!(
                    "`{name}` is missing (expected {{\"start\": 0, \"end\": 4}})"
                )),
            };
            if let Some(extra) = map.keys().find(|k| !matches!(k.as_str(), "start" | "end")) {
                return Err(format!(
                    "has an unknown part `{extra}` (expected {{\"start\": 0, \"end\": 4}})"
                ));
            }
            Ok(format!("{}..{}", bound("start")?, bound("end")?))
        }
        (Kind::Slice, other) => Err(format!(
            "must be an object {{\"start\": 0, \"end\": 4}}, got {}",
            describe(other)
        )),
        (Kind::Text | Kind::ExactText, Value::String(text)) => Ok(text.clone()),
        (_, other) => Err(format!("must be a string, got {}", describe(other))),
    }
}

/// A value's JSON type, with the value when it is short.
fn describe(value: &Value) -> String {
    match value {
        Value::Number(_) | Value::Bool(_) => format!("{} `{value}`", kind(value)),
        Value::String(s) if s.len() <= 40 => format!("{} `{value}`", kind(value)),
        other => kind(other).to_owned(),
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
    use crate::config::Slice;

    #[test]
    fn a_read_cap_is_a_number_or_auto() {
        let base = SweepConfig::new("t");
        let apply = |v| EventOverrides::parse(&json!({"max_read_units_per_second": v}));
        let auto = apply(json!("auto")).unwrap().apply(&base).unwrap();
        assert_eq!(auto.read_rate(), crate::config::ReadRate::Auto);
        let fixed = apply(json!(40)).unwrap().apply(&base).unwrap();
        assert_eq!(fixed.max_read_units_per_second(), 40);
        let err = apply(json!("fast")).unwrap_err().to_string();
        assert!(
            err.contains("max_read_units_per_second") && err.contains("\"auto\""),
            "{err}"
        );
    }

    #[test]
    fn scheduler_input_is_read_as_is() {
        // The slice comes first here: it is applied after the total all the same.
        let o = EventOverrides::parse(&json!({
            "slice": {"start": 0, "end": 4}, "total_segments": 16, "dry_run": true,
            "grace_seconds": 30, "max_deletes_per_second": 500, "page_size": 100,
            "max_read_units_per_second": 200, "max_read_units": 100000
        }))
        .unwrap();
        let config = o.apply(&SweepConfig::new("t")).unwrap();
        assert_eq!(config.max_read_units_per_second(), 200);
        assert_eq!(config.max_read_units(), 100_000);
        assert_eq!(config.total_segments(), 16);
        assert_eq!(config.grace(), std::time::Duration::from_secs(30));
        assert_eq!(config.max_deletes_per_second(), 500);
        assert_eq!(config.page_size(), 100);
        assert_eq!(config.slice(), Slice::new(0, 4));
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
        let config = o.apply(&SweepConfig::new("t")).unwrap();
        assert!(config.dry_run());
        assert_eq!(config.total_segments(), 8);
        for empty in [
            json!(null),
            json!({}),
            json!({"source": "aws.events", "detail": {}}),
        ] {
            assert!(EventOverrides::parse(&empty).unwrap().is_empty());
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
            let err = EventOverrides::parse(&event)
                .and_then(|o| o.apply(&SweepConfig::new("t")))
                .unwrap_err();
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
