//! The adapters on canned HTTP responses: the branches an emulator never produces
//! (keys left unprocessed, a lost conditional write, an invocation not listed yet,
//! throttling and server errors, a visibility change refused for some messages). The
//! real SDK clients parse each response; only the HTTP exchange is canned.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use aws_smithy_runtime_api::client::http::{
    HttpClient, HttpConnector, HttpConnectorFuture, HttpConnectorSettings, SharedHttpClient,
    SharedHttpConnector,
};
use aws_smithy_runtime_api::client::orchestrator::{HttpRequest, HttpResponse};
use aws_smithy_runtime_api::client::runtime_components::RuntimeComponents;
use aws_smithy_runtime_api::http::StatusCode;
use aws_smithy_types::body::SdkBody;
use aws_smithy_types::retry::RetryConfig;

use adjoin_core::Error;
use adjoin_core::ids::InstanceId;
use adjoin_core::ledger::{JoinRecord, JoinStatus};
use adjoin_core::ports::{CommandStatus, Commands as _, Ledger as _, Queue as _};

use crate::{DynamoLedger, SqsQueue, SsmCommands};

/// Answers each request with the next canned response (status, JSON body) and keeps
/// the request bodies.
#[derive(Debug, Clone, Default)]
struct Canned {
    responses: Arc<Mutex<VecDeque<(u16, String)>>>,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Canned {
    fn new(responses: &[(u16, &str)]) -> Self {
        let canned = Canned::default();
        canned
            .responses
            .lock()
            .expect("lock")
            .extend(responses.iter().map(|(s, b)| (*s, (*b).to_owned())));
        canned
    }

    fn requests(&self) -> Vec<String> {
        self.requests.lock().expect("lock").clone()
    }

    fn config(&self) -> SdkConfig {
        SdkConfig::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .credentials_provider(SharedCredentialsProvider::new(Credentials::new(
                "AKID", "secret", None, None, "canned",
            )))
            .retry_config(RetryConfig::disabled())
            .http_client(SharedHttpClient::new(self.clone()))
            .build()
    }
}

impl HttpConnector for Canned {
    fn call(&self, request: HttpRequest) -> HttpConnectorFuture {
        let body = request
            .body()
            .bytes()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .unwrap_or_default();
        self.requests.lock().expect("lock").push(body);
        let (status, body) = self
            .responses
            .lock()
            .expect("lock")
            .pop_front()
            .unwrap_or((500, "{}".to_owned()));
        let mut response = HttpResponse::new(
            StatusCode::try_from(status).expect("status"),
            SdkBody::from(body),
        );
        response
            .headers_mut()
            .insert("content-type", "application/x-amz-json-1.0");
        HttpConnectorFuture::ready(Ok(response))
    }
}

impl HttpClient for Canned {
    fn http_connector(
        &self,
        _: &HttpConnectorSettings,
        _: &RuntimeComponents,
    ) -> SharedHttpConnector {
        SharedHttpConnector::new(self.clone())
    }
}

fn id(s: &str) -> InstanceId {
    InstanceId::parse(s).expect("valid")
}

fn ledger(canned: &Canned) -> DynamoLedger {
    DynamoLedger::new(aws_sdk_dynamodb::Client::new(&canned.config()), "ledger")
}

const ITEM: &str = r#"{"instanceId":{"S":"i-0aaaaaaaaaaaaaaa1"},"account":{"S":"111122223333"},"region":{"S":"eu-west-1"},"status":{"S":"joined"},"computerName":{"S":"IAAA"},"messageId":{"S":"m"},"eventId":{"S":"e"},"attempts":{"N":"1"},"createdAt":{"S":"2026-12-01T00:00:00Z"},"updatedAt":{"S":"2026-12-01T00:00:00Z"},"version":{"N":"2"}}"#;

#[tokio::test]
async fn keys_left_unprocessed_are_asked_for_again() {
    let unprocessed = r#"{"Responses":{"ledger":[]},"UnprocessedKeys":{"ledger":{"Keys":[{"instanceId":{"S":"i-0aaaaaaaaaaaaaaa1"}}],"ConsistentRead":true}}}"#;
    let answered = format!(r#"{{"Responses":{{"ledger":[{ITEM}]}},"UnprocessedKeys":{{}}}}"#);
    let canned = Canned::new(&[(200, unprocessed), (200, &answered)]);
    let records = ledger(&canned)
        .get_many(&[id("i-0aaaaaaaaaaaaaaa1")])
        .await
        .expect("read");
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].status, JoinStatus::Joined);
    assert_eq!(
        canned.requests().len(),
        2,
        "the second call asks for the key left over"
    );
    assert!(canned.requests()[1].contains("i-0aaaaaaaaaaaaaaa1"));
}

#[tokio::test]
async fn keys_that_stay_unprocessed_are_throttling() {
    let unprocessed = r#"{"Responses":{},"UnprocessedKeys":{"ledger":{"Keys":[{"instanceId":{"S":"i-0aaaaaaaaaaaaaaa1"}}]}}}"#;
    let canned = Canned::new(&[(200, unprocessed); 3]);
    let e = ledger(&canned)
        .get_many(&[id("i-0aaaaaaaaaaaaaaa1")])
        .await
        .expect_err("gives up");
    assert!(matches!(e, Error::Throttled { .. }), "{e:?}");
}

fn record() -> JoinRecord {
    serde_dynamo::from_item(
        serde_json::from_str::<std::collections::HashMap<String, serde_dynamo::AttributeValue>>(
            ITEM,
        )
        .expect("item"),
    )
    .expect("record")
}

#[tokio::test]
async fn a_lost_conditional_write_is_false_not_an_error() {
    let lost = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ConditionalCheckFailedException","message":"The conditional request failed"}"#;
    let canned = Canned::new(&[(400, lost), (200, "{}")]);
    let ledger = ledger(&canned);
    assert!(!ledger.put_if(&record(), Some(1)).await.expect("answered"));
    assert!(ledger.put_if(&record(), Some(1)).await.expect("written"));
    assert!(
        canned.requests()[0].contains("#version = :expected")
            || canned.requests()[0].contains("ConditionExpression"),
        "{}",
        canned.requests()[0]
    );
}

#[tokio::test]
async fn throttling_and_server_errors_keep_their_kind() {
    let throttled = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException","message":"slow down"}"#;
    let canned = Canned::new(&[
        (400, throttled),
        (500, r#"{"__type":"InternalServerError"}"#),
        (429, "{}"),
    ]);
    let ledger = ledger(&canned);
    let e = ledger.put_if(&record(), None).await.expect_err("throttled");
    assert!(
        matches!(e, Error::Throttled { .. }) && e.wants_backoff(),
        "{e:?}"
    );
    let e = ledger.put_if(&record(), None).await.expect_err("5xx");
    assert!(
        matches!(e, Error::Unavailable { .. }) && e.is_transient(),
        "{e:?}"
    );
    let e = ledger.put_if(&record(), None).await.expect_err("429");
    assert!(e.is_transient() || e.wants_backoff(), "{e:?}");
}

#[tokio::test]
async fn an_invocation_ssm_does_not_list_yet_is_pending() {
    let missing = r#"{"__type":"InvocationDoesNotExist","Message":"not yet"}"#;
    let done = r#"{"CommandId":"c-1","InstanceId":"i-0aaaaaaaaaaaaaaa1","Status":"Failed","ResponseCode":14,"StandardOutputContent":"out","StandardErrorContent":"adjoin: error: refused"}"#;
    let canned = Canned::new(&[(400, missing), (200, done)]);
    let commands = SsmCommands::new(aws_sdk_ssm::Client::new(&canned.config()));
    let r = commands
        .result("c-1", &id("i-0aaaaaaaaaaaaaaa1"))
        .await
        .expect("pending");
    assert_eq!((r.status, r.exit_code), (CommandStatus::Pending, None));
    let r = commands
        .result("c-1", &id("i-0aaaaaaaaaaaaaaa1"))
        .await
        .expect("result");
    assert_eq!(r.status, CommandStatus::Failed("Failed".into()));
    assert_eq!(r.exit_code, Some(14));
    assert_eq!(r.stderr, "adjoin: error: refused");
}

#[tokio::test]
async fn visibility_changes_refused_for_some_messages_are_an_error_of_their_kind() {
    let partial = r#"{"Successful":[{"Id":"0"}],"Failed":[{"Id":"1","SenderFault":false,"Code":"InternalError","Message":"try later"}]}"#;
    let canned = Canned::new(&[(200, partial)]);
    let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&canned.config()), "https://dlq");
    let e = queue
        .retry_after(
            "arn:aws:sqs:eu-west-1:111122223333:adjoin-events",
            &[
                ("rh-0".into(), Duration::from_secs(30)),
                ("rh-1".into(), Duration::from_secs(30)),
            ],
        )
        .await
        .expect_err("partly refused");
    assert!(matches!(e, Error::Unavailable { .. }), "{e:?}");
    assert!(e.to_string().contains("1 of 2"), "{e}");
}

#[tokio::test]
async fn a_missing_table_or_queue_is_named_in_the_error() {
    let missing = r#"{"__type":"com.amazonaws.dynamodb.v20120810#ResourceNotFoundException","message":"Requested resource not found"}"#;
    let canned = Canned::new(&[(400, missing)]);
    let e = ledger(&canned)
        .get_many(&[id("i-0aaaaaaaaaaaaaaa1")])
        .await
        .expect_err("no table");
    assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
    assert!(e.to_string().contains("table ledger"), "{e}");
    let gone = r#"{"__type":"com.amazonaws.sqs#QueueDoesNotExist","message":"The specified queue does not exist."}"#;
    let canned = Canned::new(&[(400, gone)]);
    let queue = SqsQueue::new(
        aws_sdk_sqs::Client::new(&canned.config()),
        "https://sqs.eu-west-1.amazonaws.com/111122223333/adjoin-dlq",
    );
    let e = queue
        .send_to_dlq(&adjoin_core::ports::DeadLetter {
            message_id: "m".into(),
            body: "{}".into(),
            reason: "r".into(),
        })
        .await
        .expect_err("no queue");
    assert!(
        e.to_string()
            .contains("queue https://sqs.eu-west-1.amazonaws.com/111122223333/adjoin-dlq"),
        "{e}"
    );
}

#[tokio::test]
async fn a_lost_send_is_found_by_instance_comment_and_time() {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    let comment = "adjoin join i-0aaaaaaaaaaaaaaa1 event e-1";
    let listed = format!(
        r#"{{"Commands":[
            {{"CommandId":"c-old","Comment":"{comment}","RequestedDateTime":{old}}},
            {{"CommandId":"c-other","Comment":"adjoin join i-0aaaaaaaaaaaaaaa1 event e-2","RequestedDateTime":{now}}},
            {{"CommandId":"c-new","Comment":"{comment}","RequestedDateTime":{now}}}
        ]}}"#,
        old = now - 3600
    );
    let canned = Canned::new(&[(200, &listed), (200, r#"{"Commands":[]}"#)]);
    let commands = SsmCommands::new(aws_sdk_ssm::Client::new(&canned.config()));
    let since = std::time::SystemTime::now() - Duration::from_secs(60);
    let found = commands
        .find_sent(&id("i-0aaaaaaaaaaaaaaa1"), comment, since)
        .await
        .expect("listed");
    assert_eq!(
        found.as_deref(),
        Some("c-new"),
        "the recent one with the same comment"
    );
    let asked = &canned.requests()[0];
    assert!(
        asked.contains("i-0aaaaaaaaaaaaaaa1") && asked.contains("InvokedAfter"),
        "{asked}"
    );
    let none = commands
        .find_sent(&id("i-0aaaaaaaaaaaaaaa1"), comment, since)
        .await
        .expect("listed");
    assert_eq!(none, None);
}
