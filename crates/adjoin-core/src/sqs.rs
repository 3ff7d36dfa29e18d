//! The SQS event a Lambda receives, and the partial batch response it returns.

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent, SqsMessage};

use crate::outcome::Report;
use crate::worker::{Message, Worker};

impl Message {
    /// A Lambda SQS record as a worker message (`position` names records without an id).
    pub fn from_sqs(record: SqsMessage, position: usize) -> Self {
        Message {
            message_id: record
                .message_id
                .unwrap_or_else(|| format!("record-{position}")),
            body: record.body.unwrap_or_default(),
            receipt_handle: record.receipt_handle,
            receive_count: record
                .attributes
                .get("ApproximateReceiveCount")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1),
            source_queue_arn: record.event_source_arn,
        }
    }
}

/// The messages of an SQS event.
pub fn messages(event: SqsEvent) -> Vec<Message> {
    event
        .records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Message::from_sqs(r, i))
        .collect()
}

/// The partial batch response: every message SQS must deliver again.
pub fn batch_response(reports: &[Report]) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for report in reports.iter().filter(|r| r.outcome.is_batch_item_failure()) {
        response.add_failure(report.message_id.clone());
    }
    response
}

/// Handles one SQS event: what the Lambda function does per invocation.
pub async fn handle_event(worker: &Worker, event: SqsEvent) -> (SqsBatchResponse, Vec<Report>) {
    let reports = worker.handle_batch(&messages(event)).await;
    (batch_response(&reports), reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_become_messages() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "m1", "receiptHandle": "rh", "body": "{}", "attributes": {"ApproximateReceiveCount": "3"},
             "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"},
            {"body": "x"}
        ]}))
        .expect("event");
        let m = messages(event);
        assert_eq!(m[0].message_id, "m1");
        assert_eq!(m[0].receive_count, 3);
        assert_eq!(
            m[0].source_queue_arn.as_deref(),
            Some("arn:aws:sqs:us-east-1:123456789012:q")
        );
        assert_eq!(m[1].message_id, "record-1");
        assert_eq!(m[1].receive_count, 1);
    }
}
