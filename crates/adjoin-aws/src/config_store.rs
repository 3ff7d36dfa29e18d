//! `ConfigStore` on DynamoDB: one GetItem by `accountId`.

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;

use adjoin_core::config::ConfigItem;
use adjoin_core::ids::AccountId;
use adjoin_core::ports::ConfigStore;

use crate::error::map_sdk_error;

pub struct DynamoConfigStore {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoConfigStore {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoConfigStore {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ConfigStore for DynamoConfigStore {
    async fn get(&self, account: &AccountId) -> Result<Option<ConfigItem>, adjoin_core::Error> {
        let out = self
            .client
            .get_item()
            .table_name(&self.table)
            .key("accountId", AttributeValue::S(account.to_string()))
            .send()
            .await
            .map_err(|e| {
                map_sdk_error("dynamodb:GetItem", e).about(&format!("table {}", self.table))
            })?;
        let Some(item) = out.item else {
            return Ok(None);
        };
        let value: serde_json::Value =
            serde_dynamo::from_item(item).map_err(|e| adjoin_core::Error::Invalid {
                operation: "dynamodb:GetItem",
                message: format!("config item of {account} cannot be read: {e}"),
            })?;
        match value {
            serde_json::Value::Object(map) => Ok(Some(map)),
            _ => Err(adjoin_core::Error::Invalid {
                operation: "dynamodb:GetItem",
                message: format!("config item of {account} is not a map"),
            }),
        }
    }
}
