//! `Ledger` on DynamoDB: BatchGetItem by `instanceId`, PutItem conditional on `version`,
//! and several such puts as one TransactWriteItems.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::error::SdkError;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem};

use adjoin_core::ids::InstanceId;
use adjoin_core::ledger::JoinRecord;
use adjoin_core::ports::{Cancelled, Ledger, Transaction};

use crate::error::map_sdk_error;

/// BatchGetItem reads at most this many keys per call.
const BATCH_GET_LIMIT: usize = 100;
/// Rounds of BatchGetItem for the keys DynamoDB left unprocessed (it throttles that way).
const UNPROCESSED_ROUNDS: usize = 3;

pub struct DynamoLedger {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedger {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoLedger {
            client,
            table: table.into(),
        }
    }

    async fn get_chunk(&self, ids: &[InstanceId]) -> Result<Vec<JoinRecord>, adjoin_core::Error> {
        let keys = ids
            .iter()
            .map(|id| HashMap::from([("instanceId".to_owned(), AttributeValue::S(id.to_string()))]))
            .collect::<Vec<_>>();
        let mut request = KeysAndAttributes::builder()
            .set_keys(Some(keys))
            .consistent_read(true)
            .build()
            .map_err(|e| adjoin_core::Error::Invalid {
                operation: "dynamodb:BatchGetItem",
                message: e.to_string(),
            })?;
        let mut records = Vec::new();
        for _ in 0..UNPROCESSED_ROUNDS {
            let out = self
                .client
                .batch_get_item()
                .request_items(&self.table, request)
                .send()
                .await
                .map_err(|e| {
                    map_sdk_error("dynamodb:BatchGetItem", e)
                        .about(&format!("table {}", self.table))
                })?;
            for item in out
                .responses
                .unwrap_or_default()
                .remove(&self.table)
                .unwrap_or_default()
            {
                records.push(serde_dynamo::from_item(item).map_err(|e| {
                    adjoin_core::Error::Invalid {
                        operation: "dynamodb:BatchGetItem",
                        message: format!("a ledger record cannot be read: {e}"),
                    }
                })?);
            }
            match out.unprocessed_keys.unwrap_or_default().remove(&self.table) {
                Some(left) if !left.keys.is_empty() => request = left,
                _ => return Ok(records),
            }
        }
        Err(adjoin_core::Error::Throttled {
            operation: "dynamodb:BatchGetItem",
            message: "keys left unprocessed after several rounds".into(),
        })
    }
}

/// A record as an item, and the condition that it is still at version `expected`.
struct Conditional {
    item: HashMap<String, AttributeValue>,
    condition: &'static str,
    values: Option<HashMap<String, AttributeValue>>,
}

fn conditional(
    operation: &'static str,
    record: &JoinRecord,
    expected: Option<u64>,
) -> Result<Conditional, adjoin_core::Error> {
    let item = serde_dynamo::to_item(record).map_err(|e| adjoin_core::Error::Invalid {
        operation,
        message: format!("the ledger record cannot be written: {e}"),
    })?;
    Ok(match expected {
        None => Conditional {
            item,
            condition: "attribute_not_exists(instanceId)",
            values: None,
        },
        Some(version) => Conditional {
            item,
            condition: "version = :expected",
            values: Some(HashMap::from([(
                ":expected".to_owned(),
                AttributeValue::N(version.to_string()),
            )])),
        },
    })
}

#[async_trait]
impl Ledger for DynamoLedger {
    async fn get_many(&self, ids: &[InstanceId]) -> Result<Vec<JoinRecord>, adjoin_core::Error> {
        let mut records = Vec::new();
        for chunk in ids.chunks(BATCH_GET_LIMIT) {
            records.extend(self.get_chunk(chunk).await?);
        }
        Ok(records)
    }

    async fn put_if(
        &self,
        record: &JoinRecord,
        expected: Option<u64>,
    ) -> Result<bool, adjoin_core::Error> {
        let put = conditional("dynamodb:PutItem", record, expected)?;
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(put.item))
            .condition_expression(put.condition)
            .set_expression_attribute_values(put.values);
        match request.send().await {
            Ok(_) => Ok(true),
            Err(SdkError::ServiceError(e))
                if matches!(e.err(), PutItemError::ConditionalCheckFailedException(_)) =>
            {
                Ok(false)
            }
            Err(e) => {
                Err(map_sdk_error("dynamodb:PutItem", e).about(&format!("table {}", self.table)))
            }
        }
    }

    async fn put_all_if(
        &self,
        writes: &[(JoinRecord, Option<u64>)],
    ) -> Result<Transaction, adjoin_core::Error> {
        const OPERATION: &str = "dynamodb:TransactWriteItems";
        let invalid = |message: String| adjoin_core::Error::Invalid {
            operation: OPERATION,
            message,
        };
        let items = writes
            .iter()
            .map(|(record, expected)| {
                let put = conditional(OPERATION, record, *expected)?;
                let put = Put::builder()
                    .table_name(&self.table)
                    .set_item(Some(put.item))
                    .condition_expression(put.condition)
                    .set_expression_attribute_values(put.values)
                    .build()
                    .map_err(|e| invalid(e.to_string()))?;
                Ok(TransactWriteItem::builder().put(put).build())
            })
            .collect::<Result<Vec<_>, adjoin_core::Error>>()?;
        match self
            .client
            .transact_write_items()
            .set_transact_items(Some(items))
            .send()
            .await
        {
            Ok(_) => Ok(Transaction::Written),
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    TransactWriteItemsError::TransactionCanceledException(_)
                ) =>
            {
                let TransactWriteItemsError::TransactionCanceledException(cancelled) = e.err()
                else {
                    return Err(invalid("a cancelled transaction without reasons".into()));
                };
                Ok(Transaction::Cancelled(
                    cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|reason| match reason.code() {
                            None | Some("None") => Cancelled::None,
                            Some("ConditionalCheckFailed") => Cancelled::ConditionFailed,
                            Some(other) => Cancelled::Other(other.to_owned()),
                        })
                        .collect(),
                ))
            }
            Err(e) => Err(map_sdk_error(OPERATION, e).about(&format!("table {}", self.table))),
        }
    }
}
