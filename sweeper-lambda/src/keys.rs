//! The sweeper's names in the table: the aliases its expressions use, the keys the store
//! reserves, and the checkpoint item's key within them. The lowest layer: pure, no I/O.

use std::collections::HashMap;

use dynamo_session_store::ItemSchema;

/// Expression alias of the key attribute.
pub(crate) const KEY: &str = "#k";
/// Expression alias of the expiry attribute.
pub(crate) const EXPIRES: &str = "#e";

/// `ExpressionAttributeNames` binding [`KEY`] and [`EXPIRES`] to `schema`'s names.
pub(crate) fn key_and_expiry_names(schema: &ItemSchema) -> HashMap<String, String> {
    HashMap::from([
        (KEY.to_owned(), schema.key_attribute().to_owned()),
        (EXPIRES.to_owned(), schema.expires_attribute().to_owned()),
    ])
}

/// What the store reserves: no session id starts with it (after the key prefix).
pub const RESERVED_PREFIX: char = '!';

/// The checkpoint item's key for the slice `label` (e.g. `0-8of8`):
/// `<prefix>!sweeper-checkpoint/<label>`. IAM's `dynamodb:LeadingKeys` condition in
/// `infra/template.yaml` allows exactly `<prefix>!sweeper-checkpoint/*`.
pub fn checkpoint_key(schema: &ItemSchema, label: &str) -> String {
    format!(
        "{}{RESERVED_PREFIX}sweeper-checkpoint/{label}",
        schema.key_prefix()
    )
}

/// Whether a table key is reserved (a checkpoint, or another tool's) rather than a
/// session's.
pub fn is_reserved(schema: &ItemSchema, key: &str) -> bool {
    key.strip_prefix(schema.key_prefix())
        .is_some_and(|rest| rest.starts_with(RESERVED_PREFIX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_keys_are_reserved() {
        let schema = ItemSchema::new().with_key_prefix("p:");
        let key = checkpoint_key(&schema, "0-4of16");
        assert_eq!(key, "p:!sweeper-checkpoint/0-4of16");
        assert!(is_reserved(&schema, &key));
        assert!(!is_reserved(&schema, "p:abc"));
        assert!(!is_reserved(&schema, "!no-prefix"));
        // The store agrees: it refuses such an id.
        assert!(schema.key_for("!sweeper-checkpoint/0-4of16").is_err());
    }
}
