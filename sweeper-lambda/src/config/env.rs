//! Reading a [`SweepConfig`] from the environment variables of the deployment contract
//! (or from anything that answers by variable name, such as the command line's flags).
//!
//! The item schema's variables are read by [`ItemSchema::from_lookup`], the one reading
//! the apps share, so the sweeper and the apps always agree on names and key prefix.

use dynamo_session_store::ItemSchema;

use super::settings::{Kind, SETTINGS};
use super::{ConfigError, SweepConfig};

impl SweepConfig {
    /// Reads the contract's environment variables ([`SETTINGS`]).
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is missing or invalid.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Like [`SweepConfig::from_env`], reading variables through `lookup`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is missing or invalid.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        Self::from_lookup_named(lookup, |name| format!("environment variable `{name}`"))
    }

    /// Like [`SweepConfig::from_lookup`]; `describe` names where a variable's value came
    /// from in errors (say, a command-line flag standing in for it). Every setting of
    /// [`SETTINGS`] is read: blank values are unset (but a key prefix, taken exactly);
    /// the item schema's variables through [`ItemSchema::from_lookup`], as the apps read
    /// them. The result is validated.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the first variable that is missing or invalid.
    pub fn from_lookup_named(
        lookup: impl Fn(&str) -> Option<String>,
        describe: impl Fn(&str) -> String,
    ) -> Result<Self, ConfigError> {
        let mut config = Self::new("").with_schema(ItemSchema::from_lookup(&lookup));
        for setting in SETTINGS.iter().filter(|s| !s.is_item_schema()) {
            let Some(value) = lookup(setting.env) else {
                continue;
            };
            if setting.kind != Kind::ExactText && value.trim().is_empty() {
                continue;
            }
            config = setting
                .apply(config, &value)
                .map_err(|reason| ConfigError::new(describe(setting.env), reason))?;
        }
        config.validate().map_err(|err| err.renamed(&describe))?;
        Ok(config)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use std::time::Duration;

    use super::*;
    use crate::config::{DeleteStrategy, Slice};

    fn from(vars: &[(&str, &str)]) -> Result<SweepConfig, ConfigError> {
        let vars: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        SweepConfig::from_lookup(|name| vars.get(name).cloned())
    }

    #[test]
    fn defaults_follow_the_contract() {
        let config = from(&[("SESSIONS_TABLE", "sessions")]).unwrap();
        assert_eq!(config.table(), "sessions");
        assert_eq!(config.total_segments(), 8);
        assert_eq!(config.slice(), Slice::new(0, 8));
        assert_eq!(config.slice_label(), "0-8of8");
        assert_eq!(config.grace(), Duration::from_secs(15));
        assert_eq!(config.max_deletes_per_second(), 0);
        assert_eq!(config.page_size(), 0);
        assert_eq!(config.deadline_margin(), Duration::from_millis(1000));
        assert_eq!(config.retry().attempt_timeout(), Duration::from_secs(3));
        assert!(!config.dry_run());
        assert!(config.checkpoint());
        assert_eq!(config.metrics_namespace(), "SessionSweeper");
        assert_eq!(config.schema(), &ItemSchema::default());
    }

    #[test]
    fn a_slice_is_segments_or_a_part() {
        let config = from(&[
            ("SESSIONS_TABLE", "t"),
            ("SWEEP_TOTAL_SEGMENTS", "8"),
            ("SWEEP_SLICE", "1/2"),
        ])
        .unwrap();
        assert_eq!(config.slice(), Slice::new(4, 8));
        assert_eq!(config.slice_label(), "4-8of8");
        let config = from(&[("SESSIONS_TABLE", "t"), ("SWEEP_SLICE", "2..3")]).unwrap();
        assert_eq!(config.slice_label(), "2-3of8");
        for bad in ["2/2", "0/9", "1-2", "3..2"] {
            let err = from(&[("SESSIONS_TABLE", "t"), ("SWEEP_SLICE", bad)]).unwrap_err();
            assert_eq!(
                err.field(),
                "environment variable `SWEEP_SLICE`",
                "{bad}: {err}"
            );
        }
    }

    #[test]
    fn every_variable_is_read() {
        let config = from(&[
            ("SESSIONS_TABLE", "t"),
            ("SESSION_KEY_ATTRIBUTE", "pk"),
            ("SESSION_EXPIRES_ATTRIBUTE", "ttl"),
            ("SESSION_DATA_ATTRIBUTE", "body"),
            ("SESSION_KEY_PREFIX", "app:"),
            ("SWEEP_TOTAL_SEGMENTS", "32"),
            ("SWEEP_GRACE_SECONDS", "60"),
            ("SWEEP_MAX_DELETES_PER_SECOND", "250"),
            ("SWEEP_PAGE_SIZE", "100"),
            ("SWEEP_DEADLINE_MARGIN_MS", "1500"),
            ("SWEEP_DRY_RUN", "TRUE"),
            ("SWEEP_CHECKPOINT", "false"),
            ("SWEEP_METRICS_NAMESPACE", "Ns"),
            ("SWEEP_DELETE_STRATEGY", "delete-item"),
            ("SWEEP_ATTEMPT_TIMEOUT_MS", "750"),
            ("SWEEP_MAX_READ_UNITS_PER_SECOND", "40"),
            ("SWEEP_MAX_READ_UNITS", "5000"),
        ])
        .unwrap();
        assert_eq!(config.max_read_units_per_second(), 40);
        assert_eq!(config.max_read_units(), 5000);
        assert_eq!(config.retry().attempt_timeout(), Duration::from_millis(750));
        assert_eq!(config.schema().key_attribute(), "pk");
        assert_eq!(config.schema().expires_attribute(), "ttl");
        assert_eq!(config.schema().data_attribute(), "body");
        assert_eq!(config.schema().key_prefix(), "app:");
        assert_eq!(config.total_segments(), 32);
        assert_eq!(config.grace(), Duration::from_secs(60));
        assert_eq!(config.max_deletes_per_second(), 250);
        assert_eq!(config.page_size(), 100);
        assert_eq!(config.deadline_margin(), Duration::from_millis(1500));
        assert!(config.dry_run());
        assert!(!config.checkpoint());
        assert_eq!(config.metrics_namespace(), "Ns");
        assert_eq!(config.strategy(), DeleteStrategy::DeleteItem);
    }

    #[test]
    fn errors_name_the_variable() {
        let err = from(&[]).unwrap_err();
        assert!(err.field().contains("SESSIONS_TABLE"), "{err}");
        let err = from(&[("SESSIONS_TABLE", "t"), ("SWEEP_TOTAL_SEGMENTS", "-1")]).unwrap_err();
        assert!(err.to_string().contains("SWEEP_TOTAL_SEGMENTS"), "{err}");
        let err = from(&[("SESSIONS_TABLE", "t"), ("SWEEP_TOTAL_SEGMENTS", "0")]).unwrap_err();
        assert!(err.field().contains("SWEEP_TOTAL_SEGMENTS"), "{err}");
        let err = from(&[("SESSIONS_TABLE", "t"), ("SWEEP_DRY_RUN", "maybe")]).unwrap_err();
        assert!(err.to_string().contains("SWEEP_DRY_RUN"), "{err}");
        let err =
            from(&[("SESSIONS_TABLE", "t"), ("SESSION_EXPIRES_ATTRIBUTE", "id")]).unwrap_err();
        assert!(err.to_string().contains("must differ"), "{err}");
        let err = from(&[("SESSIONS_TABLE", "t"), ("SWEEP_DEADLINE_MARGIN_MS", "50")]).unwrap_err();
        assert!(err.field().contains("SWEEP_DEADLINE_MARGIN_MS"), "{err}");
        for (var, bad) in [
            ("SWEEP_MAX_READ_UNITS_PER_SECOND", "-5"),
            ("SWEEP_MAX_READ_UNITS_PER_SECOND", "2.5"),
            ("SWEEP_MAX_READ_UNITS", "lots"),
            ("SWEEP_MAX_READ_UNITS", "99999999999999999999999"),
        ] {
            let err = from(&[("SESSIONS_TABLE", "t"), (var, bad)]).unwrap_err();
            assert!(err.field().contains(var), "{var}={bad}: {err}");
        }
        let err = from(&[("SESSIONS_TABLE", "t"), ("SWEEP_ATTEMPT_TIMEOUT_MS", "0")]).unwrap_err();
        assert!(err.field().contains("SWEEP_ATTEMPT_TIMEOUT_MS"), "{err}");
        let err =
            from(&[("SESSIONS_TABLE", "t"), ("SWEEP_GRACE_SECONDS", "31536001")]).unwrap_err();
        assert!(err.field().contains("SWEEP_GRACE_SECONDS"), "{err}");
    }
}
