//! Every sweeper setting, declared once: its environment variable, its command-line flag,
//! its event field (for the few an invocation may override), its default, its bounds and
//! its one-line doc, and how its text is applied to a [`SweepConfig`].
//!
//! The environment ([`SweepConfig::from_lookup`]), the command line (`crate::cli`) and the
//! schedule's event ([`crate::event`]) all read settings through [`SETTINGS`]; the help
//! text and the tables in the crate docs and the README come from it (a test holds them
//! equal to [`markdown_table`]). Each setting's text is parsed by its own `apply`; the
//! checks across settings (bounds, a slice within the total) are in one place,
//! [`SweepConfig::validate`], whose errors name the setting by its variable, renamed by
//! each source to the flag or field the caller used.

use std::fmt;
use std::time::Duration;

use super::{DeleteStrategy, MetricsMode, ReadRate, SliceSetting, SweepConfig};

/// How a setting's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kind {
    /// Text, trimmed; blank is unset.
    Text,
    /// Text taken exactly as given (a key prefix may end in a space).
    ExactText,
    /// A non-negative whole number; in an event, a JSON number.
    Number,
    /// `true`/`false` (also `1`/`0`, `yes`/`no`); in an event, a JSON boolean.
    Bool,
    /// `START..END` or `I/N`; in an event, `{"start": s, "end": e}`.
    Slice,
    /// `auto` or a non-negative whole number; in an event, a JSON number or `"auto"`.
    Rate,
}

/// One setting of the sweeper.
#[non_exhaustive]
pub struct Setting {
    /// The environment variable, e.g. `SWEEP_TOTAL_SEGMENTS`.
    pub env: &'static str,
    /// The command-line flag's long name, without dashes, e.g. `segments`.
    pub flag: &'static str,
    /// For a switch (a flag without a value): the value it stands for.
    pub switch: Option<&'static str>,
    /// The event field that overrides it per invocation, if any.
    pub event: Option<&'static str>,
    /// How its value is written.
    pub kind: Kind,
    /// Its default, as shown in the docs.
    pub default: &'static str,
    /// Its bounds, as shown in the docs (empty: none beyond its kind).
    pub bounds: &'static str,
    /// What it does, in one line.
    pub doc: &'static str,
    /// `None` for the item schema's variables, which [`ItemSchema::from_lookup`](dynamo_session_store::ItemSchema::from_lookup) reads:
    /// the one reading the apps share, so the sweeper and the apps always agree.
    apply: Option<Apply>,
}

/// How a setting's text changes a configuration.
type Apply = fn(SweepConfig, &str) -> Result<SweepConfig, String>;

impl fmt::Debug for Setting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Setting")
            .field("env", &self.env)
            .field("flag", &self.flag)
            .field("event", &self.event)
            .finish_non_exhaustive()
    }
}

impl Setting {
    /// Applies `value` (as read from the environment, a flag or an event) to `config`.
    /// The item schema's variables are not applied one by one: they are read together by
    /// [`ItemSchema::from_lookup`](dynamo_session_store::ItemSchema::from_lookup), and this returns `config` unchanged for them.
    ///
    /// # Errors
    /// What is wrong with the value, without naming where it came from.
    pub fn apply(&self, config: SweepConfig, value: &str) -> Result<SweepConfig, String> {
        match self.apply {
            Some(apply) => apply(config, value),
            None => Ok(config),
        }
    }

    /// Whether [`ItemSchema::from_lookup`](dynamo_session_store::ItemSchema::from_lookup) reads it, rather than [`Setting::apply`].
    pub fn is_item_schema(&self) -> bool {
        self.apply.is_none()
    }

    /// The flag as typed: `--segments`.
    pub fn flag_name(&self) -> String {
        format!("--{}", self.flag)
    }

    /// The setting named `env`.
    pub fn by_env(env: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.env == env)
    }

    /// The setting an event field `field` overrides.
    pub fn by_event(field: &str) -> Option<&'static Setting> {
        SETTINGS.iter().find(|s| s.event == Some(field))
    }
}

/// Every setting, in the order they are applied (the total before the slice within it).
pub static SETTINGS: &[Setting] = &[
    Setting {
        env: "SESSIONS_TABLE",
        flag: "table",
        switch: None,
        event: None,
        kind: Kind::Text,
        default: "(required)",
        bounds: "",
        doc: "the table to sweep",
        apply: Some(|c, v| {
            Ok(SweepConfig {
                table: v.trim().into(),
                ..c
            })
        }),
    },
    Setting {
        env: "SESSION_KEY_ATTRIBUTE",
        flag: "key-attribute",
        switch: None,
        event: None,
        kind: Kind::Text,
        default: "`id`",
        bounds: "",
        doc: "the partition key attribute (S), as the apps name it",
        apply: None,
    },
    Setting {
        env: "SESSION_EXPIRES_ATTRIBUTE",
        flag: "expires-attribute",
        switch: None,
        event: None,
        kind: Kind::Text,
        default: "`expires`",
        bounds: "",
        doc: "the expiry attribute, epoch seconds (N)",
        apply: None,
    },
    Setting {
        env: "SESSION_DATA_ATTRIBUTE",
        flag: "data-attribute",
        switch: None,
        event: None,
        kind: Kind::Text,
        default: "`data`",
        bounds: "",
        doc: "the data attribute (S, or B when encoded): only items with it are sessions",
        apply: None,
    },
    Setting {
        env: "SESSION_KEY_PREFIX",
        flag: "key-prefix",
        switch: None,
        event: None,
        kind: Kind::ExactText,
        default: "none",
        bounds: "ends with a separator; no `!`",
        doc: "the key prefix: only keys under it are swept",
        apply: None,
    },
    Setting {
        env: "SWEEP_TOTAL_SEGMENTS",
        flag: "segments",
        switch: None,
        event: Some("total_segments"),
        kind: Kind::Number,
        default: "8",
        bounds: "1 to 1000000",
        doc: "parallel scan segments (`TotalSegments`)",
        apply: Some(|c, v| Ok(c.with_total_segments(number(v)?))),
    },
    Setting {
        env: "SWEEP_SLICE",
        flag: "slice",
        switch: None,
        event: Some("slice"),
        kind: Kind::Slice,
        default: "all segments",
        bounds: "within the total",
        doc: "only segments `START..END` of the total, or part `I/N` (from 0) of them",
        apply: Some(|c, v| Ok(c.with_slice_setting(v.parse::<SliceSetting>()?))),
    },
    Setting {
        env: "SWEEP_GRACE_SECONDS",
        flag: "grace-seconds",
        switch: None,
        event: Some("grace_seconds"),
        kind: Kind::Number,
        default: "15",
        bounds: "0 to 31536000 (a year)",
        doc: "the cutoff is now minus this: sessions expired for less are kept",
        apply: Some(|c, v| Ok(c.with_grace(Duration::from_secs(number(v)?)))),
    },
    Setting {
        env: "SWEEP_MAX_DELETES_PER_SECOND",
        flag: "max-deletes-per-second",
        switch: None,
        event: Some("max_deletes_per_second"),
        kind: Kind::Number,
        default: "0 (no cap)",
        bounds: "",
        doc: "deletes per second, across all segments",
        apply: Some(|c, v| Ok(c.with_max_deletes_per_second(number(v)?))),
    },
    Setting {
        env: "SWEEP_MAX_READ_UNITS_PER_SECOND",
        flag: "max-read-units-per-second",
        switch: None,
        event: Some("max_read_units_per_second"),
        kind: Kind::Rate,
        default: "0 (no cap)",
        bounds: "`auto` or a whole number",
        doc: "read capacity units per second the scan may consume, across all segments; \
              `auto`: a fifth of a provisioned table's, by the slice's share, none on demand",
        apply: Some(|c, v| Ok(c.with_read_rate(v.parse::<ReadRate>()?))),
    },
    Setting {
        env: "SWEEP_MAX_READ_UNITS",
        flag: "max-read-units",
        switch: None,
        event: Some("max_read_units"),
        kind: Kind::Number,
        default: "0 (none)",
        bounds: "",
        doc: "read capacity units per run; then the run checkpoints and stops",
        apply: Some(|c, v| Ok(c.with_max_read_units(number(v)?))),
    },
    Setting {
        env: "SWEEP_PAGE_SIZE",
        flag: "page-size",
        switch: None,
        event: Some("page_size"),
        kind: Kind::Number,
        default: "0 (1 MB pages)",
        bounds: "",
        doc: "items evaluated per scan page (`Limit`)",
        apply: Some(|c, v| Ok(c.with_page_size(number(v)?))),
    },
    Setting {
        env: "SWEEP_DRY_RUN",
        flag: "dry-run",
        switch: Some("true"),
        event: Some("dry_run"),
        kind: Kind::Bool,
        default: "false",
        bounds: "",
        doc: "report what would be deleted, delete nothing",
        apply: Some(|c, v| Ok(c.with_dry_run(boolean(v)?))),
    },
    Setting {
        env: "SWEEP_CHECKPOINT",
        flag: "no-checkpoint",
        switch: Some("false"),
        event: None,
        kind: Kind::Bool,
        default: "true",
        bounds: "",
        doc: "keep resume cursors in the slice's checkpoint item (the flag turns it off)",
        apply: Some(|c, v| Ok(c.with_checkpoint(boolean(v)?))),
    },
    Setting {
        env: "SWEEP_DEADLINE_MARGIN_MS",
        flag: "deadline-margin-ms",
        switch: None,
        event: None,
        kind: Kind::Number,
        default: "1000",
        bounds: "at least 200",
        doc: "in Lambda, be done, checkpoint saved, this long before the deadline",
        apply: Some(|c, v| Ok(c.with_deadline_margin(Duration::from_millis(number(v)?)))),
    },
    Setting {
        env: "SWEEP_ATTEMPT_TIMEOUT_MS",
        flag: "attempt-timeout-ms",
        switch: None,
        event: None,
        kind: Kind::Number,
        default: "3000",
        bounds: "50 to 60000",
        doc: "cut one DynamoDB attempt after this long; the checkpoint keeps two and a delay",
        apply: Some(|c, v| {
            let retry = c.retry.clone();
            Ok(c.with_retry(retry.with_attempt_timeout(Duration::from_millis(number(v)?))))
        }),
    },
    Setting {
        env: "SWEEP_METRICS_NAMESPACE",
        flag: "namespace",
        switch: None,
        event: None,
        kind: Kind::Text,
        default: "`SessionSweeper`",
        bounds: "",
        doc: "the CloudWatch namespace of the metrics line",
        apply: Some(|c, v| Ok(c.with_metrics_namespace(v.trim()))),
    },
    Setting {
        env: "SWEEP_METRICS",
        flag: "metrics",
        switch: None,
        event: None,
        kind: Kind::Text,
        default: "`all`",
        bounds: "`all` or `alarms`",
        doc: "the metrics line: every count per table, or only what the alarms read",
        apply: Some(|c, v| Ok(c.with_metrics(v.parse::<MetricsMode>()?))),
    },
    Setting {
        env: "SWEEP_DELETE_STRATEGY",
        flag: "strategy",
        switch: None,
        event: None,
        kind: Kind::Text,
        default: "`partiql`",
        bounds: "`partiql` or `delete-item`",
        doc: "tuning: PartiQL batches of 25, or one `DeleteItem` per item",
        apply: Some(|c, v| Ok(c.with_strategy(v.parse::<DeleteStrategy>()?))),
    },
    Setting {
        env: "SWEEP_SEGMENT_CONCURRENCY",
        flag: "segment-concurrency",
        switch: None,
        event: None,
        kind: Kind::Number,
        default: "16",
        bounds: "at least 1",
        doc: "tuning: segments scanned at once",
        apply: Some(|c, v| Ok(c.with_segment_concurrency(number(v)?))),
    },
    Setting {
        env: "SWEEP_DELETE_CONCURRENCY",
        flag: "delete-concurrency",
        switch: None,
        event: None,
        kind: Kind::Number,
        default: "4",
        bounds: "at least 1",
        doc: "tuning: delete requests in flight per segment",
        apply: Some(|c, v| Ok(c.with_delete_concurrency(number(v)?))),
    },
];

/// Parses a non-negative whole number.
fn number<T>(text: &str) -> Result<T, String>
where
    T: std::str::FromStr,
    T::Err: fmt::Display,
{
    text.trim()
        .parse::<T>()
        .map_err(|e| format!("`{}` is not a non-negative whole number ({e})", text.trim()))
}

/// Parses `true`/`false` (also `1`/`0`, `yes`/`no`, any case).
fn boolean(text: &str) -> Result<bool, String> {
    match text.trim().to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" => Ok(true),
        "false" | "0" | "no" => Ok(false),
        other => Err(format!("`{other}` is not a boolean: use true or false")),
    }
}

/// The settings as a Markdown table: variable, flag, event field, default, bounds, doc.
/// The crate docs and the sweeper's README hold exactly this table.
pub fn markdown_table() -> String {
    let mut out = String::from(
        "| variable | flag | event field | default | bounds | what |\n\
         |---|---|---|---|---|---|\n",
    );
    for s in SETTINGS {
        let event = s.event.map_or_else(|| "—".to_owned(), |e| format!("`{e}`"));
        let bounds = if s.bounds.is_empty() { "—" } else { s.bounds };
        out.push_str(&format!(
            "| `{}` | `{}` | {event} | {} | {bounds} | {} |\n",
            s.env,
            s.flag_name(),
            s.default,
            s.doc
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn names_are_unique_and_well_formed() {
        let (mut envs, mut flags, mut events) = (HashSet::new(), HashSet::new(), HashSet::new());
        for s in SETTINGS {
            assert!(envs.insert(s.env), "{} twice", s.env);
            assert!(flags.insert(s.flag), "{} twice", s.flag);
            if let Some(event) = s.event {
                assert!(events.insert(event), "{event} twice");
            }
            assert!(
                s.env.starts_with("SWEEP_") || s.env.starts_with("SESSION"),
                "{}",
                s.env
            );
            assert!(!s.doc.is_empty() && !s.default.is_empty(), "{}", s.env);
            assert!(s.switch.is_none() || s.kind == Kind::Bool, "{}", s.env);
        }
    }

    #[test]
    fn every_default_is_the_configs_own() {
        // Applying each documented default changes nothing.
        let base = SweepConfig::new("t");
        for s in SETTINGS {
            let value = s.default.trim_matches('`').split(' ').next().unwrap();
            if matches!(
                s.env,
                "SESSIONS_TABLE" | "SESSION_KEY_PREFIX" | "SWEEP_SLICE"
            ) {
                continue;
            }
            let applied = s.apply(base.clone(), value).unwrap();
            assert_eq!(format!("{applied:?}"), format!("{base:?}"), "{}", s.env);
        }
    }

    #[test]
    fn the_crate_docs_and_the_readme_hold_the_table() {
        let table = markdown_table();
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&table),
            "sweeper-lambda/README.md must hold the settings table, exactly:\n{table}"
        );
        let crate_docs: String = include_str!("../lib.rs")
            .lines()
            .filter_map(|l| l.strip_prefix("//! ").or(l.strip_prefix("//!")))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(
            crate_docs.contains(&table),
            "the crate docs (src/lib.rs) must hold the settings table, exactly:\n{table}"
        );
    }
}
