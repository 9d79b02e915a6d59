//! The table: [`check_table`], the startup check that names what is wrong with a table in
//! words and the setting to change, and [`DynamoStore::create_table`] for development
//! (production tables come from `infra/`).

use std::fmt;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, CreateGlobalSecondaryIndexAction, GlobalSecondaryIndex,
    GlobalSecondaryIndexUpdate, KeySchemaElement, KeyType, Projection, ProjectionType,
    ProvisionedThroughput, ScalarAttributeType, TableDescription, TimeToLiveSpecification,
    TimeToLiveStatus,
};

use crate::error::Error;
use crate::schema::ItemSchema;
use crate::store::DynamoStore;

/// Why a table cannot hold this store's sessions ([`Error::Table`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableProblem {
    /// There is no table of that name in this account, region and endpoint.
    Missing,
    /// The partition key is not the configured key attribute.
    KeyName {
        /// The configured key attribute.
        expected: String,
        /// The table's partition key.
        found: String,
    },
    /// The partition key is the configured attribute, but not a String.
    KeyType {
        /// The key attribute.
        attribute: String,
        /// Its type in the table (`N`, `B`).
        found: String,
    },
    /// The table has a sort key; session items have only a partition key.
    SortKey {
        /// The sort key.
        found: String,
    },
    /// The store writes owners ([`DynamoStore::with_owner`]) but the table has no owner
    /// index of that name, so `sessions_of` and `revoke_all` would fail.
    OwnerIndexMissing {
        /// The index name.
        index: String,
        /// The owner attribute.
        attribute: String,
    },
    /// The owner index exists but is not keyed by the owner attribute, a String, alone.
    OwnerIndexKey {
        /// The index name.
        index: String,
        /// The owner attribute.
        expected: String,
        /// What the index is keyed by, in words.
        found: String,
    },
}

impl fmt::Display for TableProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TableProblem::Missing => f.write_str(
                "it does not exist in this account, region and endpoint: create it \
                 (DynamoStore::create_table, or infra/template.yaml), or name an existing \
                 table (SESSIONS_TABLE), and check AWS_REGION and the endpoint",
            ),
            TableProblem::KeyName { expected, found } => write!(
                f,
                "its partition key is `{found}`, not `{expected}`: set the key attribute to \
                 `{found}` (SESSION_KEY_ATTRIBUTE, ItemSchema::with_key_attribute), or use a \
                 table keyed by `{expected}`"
            ),
            TableProblem::KeyType { attribute, found } => write!(
                f,
                "its partition key `{attribute}` is of type {found}, not S: session ids are \
                 strings; use a table whose partition key is a String"
            ),
            TableProblem::SortKey { found } => write!(
                f,
                "it has a sort key, `{found}`, and session items have a partition key only: \
                 use a table without one"
            ),
            TableProblem::OwnerIndexMissing { index, attribute } => write!(
                f,
                "it has no global secondary index `{index}`, which listing and revoking a \
                 user's sessions query: add it (aws dynamodb update-table \
                 --attribute-definitions AttributeName={attribute},AttributeType=S \
                 --global-secondary-index-updates \
                 'Create={{IndexName={index},KeySchema=[{{AttributeName={attribute},KeyType=HASH}}],Projection={{ProjectionType=KEYS_ONLY}}}}', \
                 DynamoStore::create_table, or OwnerIndex=enabled in infra/template.yaml), or \
                 name the index the table has (SESSION_OWNER_INDEX)"
            ),
            TableProblem::OwnerIndexKey {
                index,
                expected,
                found,
            } => write!(
                f,
                "its index `{index}` is keyed by {found}, not by the owner attribute \
                 `{expected}` (a String) alone: set the owner attribute \
                 (SESSION_OWNER_ATTRIBUTE) to the index's key, or use another index"
            ),
        }
    }
}

/// Whether DynamoDB's native TTL deletes the store's expired sessions, as a backstop to
/// the sweeper. Not an error: the store works without it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TtlStatus {
    /// On (or being turned on) for the expiry attribute.
    On,
    /// Off.
    Off,
    /// On for another attribute.
    OtherAttribute(String),
    /// Not known: `DescribeTimeToLive` failed (say, not allowed); the reason.
    Unknown(String),
}

/// What [`check_table`] found: a usable table, and what is worth a warning.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TableCheck {
    /// Native TTL on the expiry attribute.
    pub ttl: TtlStatus,
    /// The table's provisioned read capacity units, `None` for an on-demand table (or one
    /// whose capacity DynamoDB did not report). A background job sizes its share of the
    /// reads from it, leaving the rest to the application.
    pub provisioned_read_units: Option<u64>,
}

impl TableCheck {
    /// What is worth a warning, in words, with the setting to change (none: all is well).
    pub fn warnings(&self, table: &str, schema: &ItemSchema) -> Vec<String> {
        let expires = schema.expires_attribute();
        let fix = format!(
            "turn it on for `{expires}` (aws dynamodb update-time-to-live --table-name {table} \
             --time-to-live-specification Enabled=true,AttributeName={expires}, or \
             DynamoStore::create_table), so that expired sessions are deleted even without \
             the sweeper"
        );
        match &self.ttl {
            TtlStatus::On => Vec::new(),
            TtlStatus::Off => vec![format!("table `{table}`: native TTL is off; {fix}")],
            TtlStatus::OtherAttribute(other) => vec![format!(
                "table `{table}`: native TTL is on `{other}`, not on the expiry attribute \
                 `{expires}`; set the expiry attribute to `{other}` \
                 (SESSION_EXPIRES_ATTRIBUTE) if it holds the sessions' expiry, or {fix}"
            )],
            TtlStatus::Unknown(reason) => vec![format!(
                "table `{table}`: could not read its TTL setting ({reason})"
            )],
        }
    }
}

/// Checks that `table` can hold sessions of `schema`, from `DescribeTable` and
/// `DescribeTimeToLive`: it exists, its partition key is the key attribute, a String, and
/// it has no sort key. TTL off, or on another attribute, is not an error: see
/// [`TableCheck::warnings`]. Call it at startup (an app, the sweeper) so that a wrong table
/// is named in words at once rather than failing every request.
///
/// # Errors
/// [`Error::Table`] naming the problem and the setting to change, or [`Error::DynamoDb`]
/// when `DescribeTable` itself fails (credentials, permissions, network).
pub async fn check_table(
    client: &Client,
    table: &str,
    schema: &ItemSchema,
) -> Result<TableCheck, Error> {
    check_described(client, table, schema)
        .await
        .map(|(check, _)| check)
}

/// [`check_table`], and the table's description.
async fn check_described(
    client: &Client,
    table: &str,
    schema: &ItemSchema,
) -> Result<(TableCheck, TableDescription), Error> {
    let described = client.describe_table().table_name(table).send().await;
    let description = match described {
        Ok(out) => out
            .table
            .unwrap_or_else(|| TableDescription::builder().build()),
        Err(err)
            if err
                .as_service_error()
                .is_some_and(|e| e.is_resource_not_found_exception()) =>
        {
            return Err(table_error(table, TableProblem::Missing));
        }
        Err(err) => return Err(Error::from_sdk("DescribeTable", table, err)),
    };
    if let Some(problem) = key_problem(&description, schema) {
        return Err(table_error(table, problem));
    }
    let ttl = match client
        .describe_time_to_live()
        .table_name(table)
        .send()
        .await
    {
        Ok(out) => match out.time_to_live_description {
            Some(d) => match (d.time_to_live_status(), d.attribute_name()) {
                (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), Some(attribute))
                    if attribute != schema.expires_attribute() =>
                {
                    TtlStatus::OtherAttribute(attribute.to_owned())
                }
                (Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling), _) => TtlStatus::On,
                _ => TtlStatus::Off,
            },
            None => TtlStatus::Off,
        },
        Err(err) => {
            TtlStatus::Unknown(Error::from_sdk("DescribeTimeToLive", table, err).to_string())
        }
    };
    let check = TableCheck {
        ttl,
        provisioned_read_units: provisioned_read_units(&description),
    };
    Ok((check, description))
}

/// What is wrong with the owner index `index` for `schema`, if anything. Pure.
fn owner_index_problem(
    table: &TableDescription,
    index: &str,
    schema: &ItemSchema,
) -> Option<TableProblem> {
    let attribute = schema.owner_attribute();
    let Some(found) = table
        .global_secondary_indexes()
        .iter()
        .find(|i| i.index_name() == Some(index))
    else {
        return Some(TableProblem::OwnerIndexMissing {
            index: index.to_owned(),
            attribute: attribute.to_owned(),
        });
    };
    let keys: Vec<String> = found
        .key_schema()
        .iter()
        .map(|k| format!("`{}` ({})", k.attribute_name(), k.key_type().as_str()))
        .collect();
    let owner_type = table
        .attribute_definitions()
        .iter()
        .find(|d| d.attribute_name() == attribute)
        .map(|d| d.attribute_type().as_str());
    let keyed_by_owner = matches!(found.key_schema(), [k] if k.attribute_name() == attribute && k.key_type() == &KeyType::Hash);
    if keyed_by_owner && owner_type == Some("S") {
        return None;
    }
    let mut found = keys.join(" and ");
    if let (true, Some(t)) = (keyed_by_owner, owner_type) {
        found = format!("{found}, of type {t}");
    }
    Some(TableProblem::OwnerIndexKey {
        index: index.to_owned(),
        expected: attribute.to_owned(),
        found,
    })
}

/// The owner index of a new table, or one added to an existing table: keyed by the owner
/// attribute, projecting the table's key only, so that touches and saves that keep the
/// owner never write it.
fn owner_index(index: &str, schema: &ItemSchema) -> (KeySchemaElement, Projection, String) {
    (
        KeySchemaElement::builder()
            .attribute_name(schema.owner_attribute())
            .key_type(KeyType::Hash)
            .build()
            .expect("name and type are set"),
        Projection::builder()
            .projection_type(ProjectionType::KeysOnly)
            .build(),
        index.to_owned(),
    )
}

fn string_attribute(name: &str) -> AttributeDefinition {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .expect("name and type are set")
}

/// The provisioned read capacity of a table in provisioned mode, from its
/// `DescribeTable` description; `None` on demand. A table created before billing modes
/// existed reports no mode: its capacity is what counts.
pub fn provisioned_read_units(description: &TableDescription) -> Option<u64> {
    let on_demand = description
        .billing_mode_summary()
        .and_then(|b| b.billing_mode())
        == Some(&BillingMode::PayPerRequest);
    let units = description
        .provisioned_throughput()
        .and_then(|p| p.read_capacity_units())
        .and_then(|u| u64::try_from(u).ok())
        .filter(|u| *u > 0);
    if on_demand { None } else { units }
}

fn table_error(table: &str, problem: TableProblem) -> Error {
    Error::Table {
        table: table.to_owned(),
        problem,
    }
}

/// What is wrong with the table's key for `schema`, if anything. Pure.
fn key_problem(table: &TableDescription, schema: &ItemSchema) -> Option<TableProblem> {
    let expected = schema.key_attribute();
    let hash = table
        .key_schema()
        .iter()
        .find(|k| k.key_type() == &KeyType::Hash)
        .map(|k| k.attribute_name().to_owned());
    if let Some(found) = hash.filter(|found| found != expected) {
        return Some(TableProblem::KeyName {
            expected: expected.to_owned(),
            found,
        });
    }
    let key_type = table
        .attribute_definitions()
        .iter()
        .find(|d| d.attribute_name() == expected)
        .map(|d| d.attribute_type().as_str().to_owned());
    if let Some(found) = key_type.filter(|t| t != "S") {
        return Some(TableProblem::KeyType {
            attribute: expected.to_owned(),
            found,
        });
    }
    table
        .key_schema()
        .iter()
        .find(|k| k.key_type() == &KeyType::Range)
        .map(|k| TableProblem::SortKey {
            found: k.attribute_name().to_owned(),
        })
}

/// Whether [`DynamoStore::create_table`] made a new table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TableCreated {
    /// The table was created.
    Created,
    /// A table of that name existed already; it was left as it was, except that native TTL
    /// was enabled on the expiry attribute if it was off.
    AlreadyExisted,
}

impl DynamoStore {
    /// [`check_table`] on this store's table and schema, and, when the store writes
    /// owners ([`with_owner`](DynamoStore::with_owner)), its owner index
    /// ([`TableProblem::OwnerIndexMissing`], [`TableProblem::OwnerIndexKey`]); logs each
    /// warning (TTL off, or on another attribute) at `warn`. Call it at startup.
    ///
    /// ```no_run
    /// # async fn run(store: dynamo_session_store::DynamoStore) {
    /// if let Err(err) = store.check_table().await {
    ///     eprintln!("sessions: {err}");
    ///     std::process::exit(2);
    /// }
    /// # }
    /// ```
    ///
    /// # Errors
    /// As [`check_table`].
    pub async fn check_table(&self) -> Result<TableCheck, Error> {
        let (check, description) = check_described(&self.client, &self.table, &self.schema).await?;
        let index_problem = self
            .writes_owners()
            .then(|| owner_index_problem(&description, self.owner_index(), &self.schema))
            .flatten();
        if let Some(problem) = index_problem {
            return Err(table_error(&self.table, problem));
        }
        for warning in check.warnings(&self.table, &self.schema) {
            tracing::warn!("{warning}");
        }
        Ok(check)
    }

    /// Creates the store's table if it does not exist: on-demand billing, a String
    /// partition key, and DynamoDB's native TTL on the expiry attribute; when the store
    /// writes owners ([`with_owner`](DynamoStore::with_owner)), the owner index too
    /// (keyed by the owner attribute, keys only), which is also added to an existing
    /// table that lacks it. Waits until the table (and the index) is active. For
    /// development and tests; deploy production tables with `infra/`.
    ///
    /// # Errors
    /// [`Error::DynamoDb`] if a call fails.
    pub async fn create_table(&self) -> Result<TableCreated, Error> {
        let key = self.schema.key_attribute();
        let mut request = self
            .client
            .create_table()
            .table_name(self.table.as_ref())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(string_attribute(key));
        if self.writes_owners() {
            let (key, projection, name) = owner_index(self.owner_index(), &self.schema);
            request = request
                .attribute_definitions(string_attribute(self.schema.owner_attribute()))
                .global_secondary_indexes(
                    GlobalSecondaryIndex::builder()
                        .index_name(name)
                        .key_schema(key)
                        .projection(projection)
                        .build()
                        .expect("name and key schema are set"),
                );
        }
        let created = request
            .key_schema(
                KeySchemaElement::builder()
                    .attribute_name(key)
                    .key_type(KeyType::Hash)
                    .build()
                    .expect("name and type are set"),
            )
            .send()
            .await;
        let outcome = match created {
            Ok(_) => TableCreated::Created,
            Err(err)
                if err
                    .as_service_error()
                    .is_some_and(|e| e.is_resource_in_use_exception()) =>
            {
                TableCreated::AlreadyExisted
            }
            Err(err) => return Err(Error::from_sdk("CreateTable", &self.table, err)),
        };
        self.wait_until_active().await?;
        if outcome == TableCreated::AlreadyExisted && self.writes_owners() {
            self.add_owner_index().await?;
        }
        self.enable_ttl().await?;
        Ok(outcome)
    }

    /// Adds the owner index to the existing table if it has none of that name, and waits
    /// until it is active (DynamoDB backfills it from the items that have an owner).
    async fn add_owner_index(&self) -> Result<(), Error> {
        let description = self.describe().await?;
        let index = self.owner_index();
        if !matches!(
            owner_index_problem(&description, index, &self.schema),
            Some(TableProblem::OwnerIndexMissing { .. })
        ) {
            return Ok(());
        }
        let (key, projection, name) = owner_index(index, &self.schema);
        let provisioned = provisioned_read_units(&description).is_some();
        let mut create = CreateGlobalSecondaryIndexAction::builder()
            .index_name(name)
            .key_schema(key)
            .projection(projection);
        if provisioned {
            // A provisioned table's index needs its own capacity: the table's.
            let table = description.provisioned_throughput();
            create = create.provisioned_throughput(
                ProvisionedThroughput::builder()
                    .read_capacity_units(table.and_then(|t| t.read_capacity_units()).unwrap_or(1))
                    .write_capacity_units(table.and_then(|t| t.write_capacity_units()).unwrap_or(1))
                    .build()
                    .expect("units are set"),
            );
        }
        self.client
            .update_table()
            .table_name(self.table.as_ref())
            .attribute_definitions(string_attribute(self.schema.owner_attribute()))
            .global_secondary_index_updates(
                GlobalSecondaryIndexUpdate::builder()
                    .create(create.build().expect("name and key schema are set"))
                    .build(),
            )
            .send()
            .await
            .map_err(|e| Error::from_sdk("UpdateTable", &self.table, e))?;
        self.wait_until_active().await
    }

    async fn describe(&self) -> Result<TableDescription, Error> {
        let out = self
            .client
            .describe_table()
            .table_name(self.table.as_ref())
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeTable", &self.table, e))?;
        Ok(out
            .table
            .unwrap_or_else(|| TableDescription::builder().build()))
    }

    async fn wait_until_active(&self) -> Result<(), Error> {
        use aws_sdk_dynamodb::types::{IndexStatus, TableStatus};
        // A bounded poll: local servers are active at once, AWS within seconds.
        for _ in 0..120 {
            let table = self.describe().await?;
            let indexes_active = table
                .global_secondary_indexes()
                .iter()
                .all(|i| i.index_status().is_none_or(|s| s == &IndexStatus::Active));
            if table.table_status() == Some(&TableStatus::Active) && indexes_active {
                return Ok(());
            }
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        }
        Ok(())
    }

    async fn enable_ttl(&self) -> Result<(), Error> {
        let current = self
            .client
            .describe_time_to_live()
            .table_name(self.table.as_ref())
            .send()
            .await
            .map_err(|e| Error::from_sdk("DescribeTimeToLive", &self.table, e))?;
        let on = current.time_to_live_description.is_some_and(|d| {
            d.attribute_name() == Some(self.schema.expires_attribute())
                && matches!(
                    d.time_to_live_status(),
                    Some(
                        aws_sdk_dynamodb::types::TimeToLiveStatus::Enabled
                            | aws_sdk_dynamodb::types::TimeToLiveStatus::Enabling
                    )
                )
        });
        if on {
            return Ok(());
        }
        self.client
            .update_time_to_live()
            .table_name(self.table.as_ref())
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .enabled(true)
                    .attribute_name(self.schema.expires_attribute())
                    .build()
                    .expect("enabled and attribute name are set"),
            )
            .send()
            .await
            .map_err(|e| Error::from_sdk("UpdateTimeToLive", &self.table, e))?;
        Ok(())
    }
}
