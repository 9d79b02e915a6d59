//! The table: [`check_table`], the startup check that names what is wrong with a table in
//! words and the setting to change, and [`DynamoStore::create_table`] for development
//! (production tables come from `infra/`).

use std::fmt;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TableDescription, TimeToLiveSpecification, TimeToLiveStatus,
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
    Ok(TableCheck {
        ttl,
        provisioned_read_units: provisioned_read_units(&description),
    })
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
    /// [`check_table`] on this store's table and schema; logs each warning (TTL off, or on
    /// another attribute) at `warn`. Call it at startup.
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
        let check = check_table(&self.client, &self.table, &self.schema).await?;
        for warning in check.warnings(&self.table, &self.schema) {
            tracing::warn!("{warning}");
        }
        Ok(check)
    }

    /// Creates the store's table if it does not exist: on-demand billing, a String
    /// partition key, and DynamoDB's native TTL on the expiry attribute. Waits until the
    /// table is active. For development and tests; deploy production tables with `infra/`.
    ///
    /// # Errors
    /// [`Error::DynamoDb`] if a call fails.
    pub async fn create_table(&self) -> Result<TableCreated, Error> {
        let key = self.schema.key_attribute();
        let created = self
            .client
            .create_table()
            .table_name(self.table.as_ref())
            .billing_mode(BillingMode::PayPerRequest)
            .attribute_definitions(
                AttributeDefinition::builder()
                    .attribute_name(key)
                    .attribute_type(ScalarAttributeType::S)
                    .build()
                    .expect("name and type are set"),
            )
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
        self.enable_ttl().await?;
        Ok(outcome)
    }

    async fn wait_until_active(&self) -> Result<(), Error> {
        use aws_sdk_dynamodb::types::TableStatus;
        // A bounded poll: local servers are active at once, AWS within seconds.
        for _ in 0..120 {
            let table = self
                .client
                .describe_table()
                .table_name(self.table.as_ref())
                .send()
                .await
                .map_err(|e| Error::from_sdk("DescribeTable", &self.table, e))?;
            if table.table.and_then(|t| t.table_status) == Some(TableStatus::Active) {
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
