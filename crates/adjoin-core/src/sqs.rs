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
    for report in reports.iter().filter(|r| r.comes_back) {
        response.add_failure(report.message_id.clone());
    }
    response
}

/// Handles one SQS event: what the Lambda function does per invocation. Work stops at
/// `deadline` (see [`Worker::handle_batch_before`]).
pub async fn handle_event(
    worker: &Worker,
    event: SqsEvent,
    deadline: Option<tokio::time::Instant>,
) -> (SqsBatchResponse, Vec<Report>) {
    let reports = worker.handle_batch_before(&messages(event), deadline).await;
    (batch_response(&reports), reports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_lambda_invocation_answers_with_the_messages_to_deliver_again() {
        use crate::faults::{Fault, Faults, Op};

        let aws = crate::testing::bare_world();
        let faults = Faults::default();
        faults.inject(Op::SendToDlq, Fault::ServerError, Some(1));
        let worker = crate::testing::worker(&aws, &faults);
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [
            {"messageId": "first", "body": "not json"},
            {"messageId": "second", "body": "also not json"}
        ]}))
        .expect("event");
        let (response, reports) = handle_event(&worker, event, None).await;
        // Both are rejected; the DLQ refused the first one, so only it must come back.
        let failures: Vec<_> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        assert_eq!(failures.len(), 1);
        assert_eq!(reports.len(), 2);
        assert_eq!(aws.dead_letters().len(), 1);
        let wire = serde_json::to_value(&response).expect("serializes");
        assert_eq!(wire["batchItemFailures"][0]["itemIdentifier"], failures[0]);
    }

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
