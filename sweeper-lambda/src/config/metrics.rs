//! [`MetricsMode`]: which metrics the EMF line publishes.

/// Which metrics a sweep publishes (each metric and dimension set is a CloudWatch custom
/// metric, billed per month).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum MetricsMode {
    /// Every count of the report per table (see
    /// [`METRIC_NAMES`](crate::report::METRIC_NAMES)), and `BacklogSeconds` per slice.
    #[default]
    All,
    /// Only what the template's alarms read: `BacklogSeconds` per slice.
    Alarms,
}

impl std::str::FromStr for MetricsMode {
    type Err = String;

    /// Parses `all` or `alarms` (any case).
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "all" => Ok(Self::All),
            "alarms" => Ok(Self::Alarms),
            other => Err(format!(
                "`{other}` is not a metrics mode: use `all` or `alarms`"
            )),
        }
    }
}
