//! `Queue` on SQS: the DLQ, and visibility changes on the source queue.

use std::time::Duration;

use async_trait::async_trait;
use aws_sdk_sqs::types::{ChangeMessageVisibilityBatchRequestEntry, MessageAttributeValue};

use adjoin_core::arn::Arn;
use adjoin_core::ports::{DeadLetter, Queue};

use crate::error::map_sdk_error;

/// Entries per ChangeMessageVisibilityBatch call.
const BATCH_LIMIT: usize = 10;
/// SQS caps a message's visibility timeout at 12 hours.
const MAX_VISIBILITY: Duration = Duration::from_secs(12 * 3600);

pub struct SqsQueue {
    client: aws_sdk_sqs::Client,
    dlq_url: String,
}

impl SqsQueue {
    pub fn new(client: aws_sdk_sqs::Client, dlq_url: impl Into<String>) -> Self {
        SqsQueue {
            client,
            dlq_url: dlq_url.into(),
        }
    }
}

/// `arn:PARTITION:sqs:REGION:ACCOUNT:NAME` → `https://sqs.REGION.<partition's DNS suffix>/ACCOUNT/NAME`.
fn queue_url(arn: &str) -> Option<String> {
    match Arn::parse(arn) {
        Some(a) if a.service == "sqs" && !a.resource.contains(':') => Some(format!(
            "https://sqs.{}.{}/{}/{}",
            a.region,
            a.dns_suffix(),
            a.account,
            a.resource
        )),
        _ => None,
    }
}

fn text(value: &str) -> Result<MessageAttributeValue, adjoin_core::Error> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .map_err(|e| adjoin_core::Error::Invalid {
            operation: "sqs:SendMessage",
            message: e.to_string(),
        })
}

#[async_trait]
impl Queue for SqsQueue {
    async fn enqueue(&self, queue_url: &str, bodies: &[String]) -> Result<(), adjoin_core::Error> {
        for (chunk_index, chunk) in bodies.chunks(BATCH_LIMIT).enumerate() {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(format!("m{}", chunk_index * BATCH_LIMIT + i))
                        .message_body(body)
                        .build()
                        .map_err(|e| adjoin_core::Error::Invalid {
                            operation: "sqs:SendMessageBatch",
                            message: e.to_string(),
                        })
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .map_err(|e| map_sdk_error("sqs:SendMessageBatch", e))?;
            if let Some(failed) = out.failed().first() {
                return Err(adjoin_core::Error::Unavailable {
                    operation: "sqs:SendMessageBatch",
                    message: format!(
                        "{} of {} messages not sent: {} {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.code(),
                        failed.message().unwrap_or_default()
                    ),
                });
            }
        }
        Ok(())
    }

    async fn send_to_dlq(&self, letter: &DeadLetter) -> Result<(), adjoin_core::Error> {
        let reason: String = letter.reason.chars().take(1024).collect();
        self.client
            .send_message()
            .queue_url(&self.dlq_url)
            .message_body(&letter.body)
            .message_attributes("adjoin-reason", text(&reason)?)
            .message_attributes("adjoin-message-id", text(&letter.message_id)?)
            .send()
            .await
            .map_err(|e| {
                map_sdk_error("sqs:SendMessage", e).about(&format!("queue {}", self.dlq_url))
            })?;
        Ok(())
    }

    async fn retry_after(
        &self,
        source_queue_arn: &str,
        messages: &[(String, Duration)],
    ) -> Result<(), adjoin_core::Error> {
        const OPERATION: &str = "sqs:ChangeMessageVisibilityBatch";
        let url = queue_url(source_queue_arn).ok_or_else(|| adjoin_core::Error::Invalid {
            operation: OPERATION,
            message: format!("{source_queue_arn:?} is not an SQS queue ARN"),
        })?;
        for chunk in messages.chunks(BATCH_LIMIT) {
            let mut request = self
                .client
                .change_message_visibility_batch()
                .queue_url(&url);
            for (i, (handle, delay)) in chunk.iter().enumerate() {
                let seconds =
                    i32::try_from((*delay).min(MAX_VISIBILITY).as_secs()).unwrap_or(i32::MAX);
                request = request.entries(
                    ChangeMessageVisibilityBatchRequestEntry::builder()
                        .id(i.to_string())
                        .receipt_handle(handle)
                        .visibility_timeout(seconds)
                        .build()
                        .map_err(|e| adjoin_core::Error::Invalid {
                            operation: OPERATION,
                            message: e.to_string(),
                        })?,
                );
            }
            let out = request
                .send()
                .await
                .map_err(|e| map_sdk_error(OPERATION, e).about(&format!("queue {url}")))?;
            if let Some(failed) = out.failed().first() {
                return Err(crate::error::classify(
                    OPERATION,
                    failed.code(),
                    format!(
                        "{} of {} visibility changes failed: {}",
                        out.failed().len(),
                        chunk.len(),
                        failed.message().unwrap_or_default()
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn queue_urls_come_from_arns() {
        assert_eq!(
            super::queue_url("arn:aws:sqs:eu-west-1:111122223333:adjoin-events").as_deref(),
            Some("https://sqs.eu-west-1.amazonaws.com/111122223333/adjoin-events")
        );
        assert_eq!(super::queue_url("nope"), None);
    }
}
