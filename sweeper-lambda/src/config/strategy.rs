//! [`DeleteStrategy`]: how expired items are deleted.

/// How expired items are deleted. Both are conditional on the expiry still being below
/// the cutoff, so a session refreshed after the scan survives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum DeleteStrategy {
    /// PartiQL `BatchExecuteStatement`, 25 `DELETE … WHERE key = ? AND expires < ?` per
    /// request (IAM action `dynamodb:PartiQLDelete`).
    #[default]
    PartiqlBatch,
    /// One `DeleteItem` with a `ConditionExpression` per item, several in flight (IAM
    /// action `dynamodb:DeleteItem`).
    DeleteItem,
}

impl std::str::FromStr for DeleteStrategy {
    type Err = String;

    /// Parses `partiql` or `delete-item` (any case).
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().to_ascii_lowercase().as_str() {
            "partiql" | "partiql-batch" | "batch" => Ok(Self::PartiqlBatch),
            "delete-item" | "deleteitem" | "item" => Ok(Self::DeleteItem),
            other => Err(format!(
                "`{other}` is not a delete strategy: use `partiql` or `delete-item`"
            )),
        }
    }
}
