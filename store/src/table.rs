//! Creating a sessions table for development (production tables come from `infra/`).

use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, KeySchemaElement, KeyType, ScalarAttributeType,
    TimeToLiveSpecification,
};

use crate::error::Error;
use crate::store::DynamoStore;

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
            Err(err) => return Err(Error::from_sdk("CreateTable", err)),
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
                .map_err(|e| Error::from_sdk("DescribeTable", e))?;
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
            .map_err(|e| Error::from_sdk("DescribeTimeToLive", e))?;
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
            .map_err(|e| Error::from_sdk("UpdateTimeToLive", e))?;
        Ok(())
    }
}
