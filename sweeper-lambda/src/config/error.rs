//! [`ConfigError`]: an unusable setting, named as the caller knows it.

/// An unusable setting, naming where it came from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {field}: {reason}")]
pub struct ConfigError {
    field: String,
    reason: String,
}

impl ConfigError {
    /// A problem with `field` (e.g. "environment variable `SWEEP_TOTAL_SEGMENTS`").
    pub fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// Where the value came from, e.g. "event field `slice.end`".
    pub fn field(&self) -> &str {
        &self.field
    }

    /// What is wrong with it.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

impl ConfigError {
    /// This error with its field renamed by `describe` when the field is a setting's
    /// variable (see [`SETTINGS`](super::SETTINGS)): how each source (the environment, a
    /// flag, an event field) names the settings that [`SweepConfig::validate`] checks.
    ///
    /// [`SweepConfig::validate`]: super::SweepConfig::validate
    pub fn renamed(self, describe: impl Fn(&str) -> String) -> Self {
        match super::Setting::by_env(&self.field) {
            Some(setting) => Self {
                field: describe(setting.env),
                ..self
            },
            None => self,
        }
    }
}
