//! Parsing an SQS message body into an [`InstanceEvent`].
//!
//! Three body shapes carry the same EventBridge "EC2 Instance State-change Notification":
//! the event itself (EventBridge → SQS, or SNS raw message delivery), and an SNS
//! notification envelope whose `Message` is the event as a string (SNS → SQS, the
//! cross-Region path). Anything else is refused with a reason that says what was wrong.
//! Parsing never panics.

use serde::Deserialize;
use serde_json::Value;

use crate::ids::{AccountId, InstanceId, Region};

/// The `detail-type` of the events this service acts on.
pub const DETAIL_TYPE: &str = "EC2 Instance State-change Notification";
/// The only `source` acted on: events must come from EC2 itself.
pub const SOURCE: &str = "aws.ec2";

/// An EC2 instance state change, as the worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceEvent {
    /// EventBridge event id (`id`).
    pub event_id: String,
    pub account: AccountId,
    pub region: Region,
    pub instance_id: InstanceId,
    pub state: EventState,
    /// The event's `time`, as sent.
    pub time: String,
    /// Whether the event arrived inside an SNS envelope.
    pub via_sns: bool,
}

/// The state an instance reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventState {
    Running,
    Terminated,
    /// Any other state (`pending`, `stopping`, …): valid, but nothing to do.
    Other(String),
}

impl EventState {
    fn from_name(name: &str) -> Self {
        match name {
            "running" => EventState::Running,
            "terminated" => EventState::Terminated,
            other => EventState::Other(other.to_owned()),
        }
    }
    pub fn as_str(&self) -> &str {
        match self {
            EventState::Running => "running",
            EventState::Terminated => "terminated",
            EventState::Other(s) => s,
        }
    }
}

/// Why a body is not an EC2 state-change event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ParseError(pub String);

#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: Option<String>,
}

#[derive(Deserialize)]
struct RawEvent {
    id: Option<String>,
    #[serde(rename = "detail-type")]
    detail_type: Option<String>,
    source: Option<String>,
    account: Option<String>,
    region: Option<String>,
    time: Option<String>,
    detail: Option<RawDetail>,
}

#[derive(Deserialize)]
struct RawDetail {
    #[serde(rename = "instance-id")]
    instance_id: Option<String>,
    state: Option<String>,
}

/// Parses one SQS message body.
pub fn parse_body(body: &str) -> Result<InstanceEvent, ParseError> {
    let value: Value = serde_json::from_str(body)
        .map_err(|e| ParseError(format!("message body is not JSON: {e}")))?;
    let (event, via_sns) = unwrap_sns(value)?;
    parse_event(event, via_sns)
}

/// An SNS notification envelope holds the event as a JSON string in `Message`.
fn unwrap_sns(value: Value) -> Result<(Value, bool), ParseError> {
    let is_envelope = value.get("Type").is_some() && value.get("TopicArn").is_some();
    if !is_envelope {
        return Ok((value, false));
    }
    let envelope: SnsEnvelope = serde_json::from_value(value)
        .map_err(|e| ParseError(format!("SNS envelope is malformed: {e}")))?;
    if envelope.kind != "Notification" {
        return Err(ParseError(format!(
            "SNS message of Type {:?} is not a Notification (a subscription confirmation?)",
            envelope.kind
        )));
    }
    let message = envelope
        .message
        .ok_or_else(|| ParseError("SNS notification has no Message".into()))?;
    let inner = serde_json::from_str(&message)
        .map_err(|e| ParseError(format!("SNS notification's Message is not JSON: {e}")))?;
    Ok((inner, true))
}

fn parse_event(value: Value, via_sns: bool) -> Result<InstanceEvent, ParseError> {
    if !value.is_object() {
        return Err(ParseError("message body is not a JSON object".into()));
    }
    let raw: RawEvent = serde_json::from_value(value).map_err(|e| {
        ParseError(format!(
            "not an EventBridge event (a field has the wrong type): {e}"
        ))
    })?;
    let detail_type = raw
        .detail_type
        .ok_or_else(|| ParseError("not an EventBridge event: no detail-type".into()))?;
    if detail_type != DETAIL_TYPE {
        return Err(ParseError(format!(
            "detail-type {detail_type:?} is not {DETAIL_TYPE:?}"
        )));
    }
    let source = raw.source.unwrap_or_default();
    if source != SOURCE {
        return Err(ParseError(format!(
            "source {source:?} is not {SOURCE:?}: only events from EC2 are acted on"
        )));
    }
    let account = AccountId::parse(&required(raw.account, "account")?).map_err(ParseError)?;
    let region = Region::parse(&required(raw.region, "region")?).map_err(ParseError)?;
    let detail = raw
        .detail
        .ok_or_else(|| ParseError("event has no detail".into()))?;
    let instance_id = InstanceId::parse(&required(detail.instance_id, "detail.instance-id")?)
        .map_err(ParseError)?;
    let state = EventState::from_name(&required(detail.state, "detail.state")?);
    let event_id = raw.id.unwrap_or_default();
    check_event_id(&event_id)?;
    Ok(InstanceEvent {
        event_id,
        account,
        region,
        instance_id,
        state,
        time: raw.time.unwrap_or_default(),
        via_sns,
    })
}

/// The longest event id accepted (EventBridge's are 36-character UUIDs).
pub const MAX_EVENT_ID_LEN: usize = 64;

/// An event id names the event in command comments, the ledger and logs: letters,
/// digits, `-`, `_`, `.` and `:` only, at most [`MAX_EVENT_ID_LEN`] of them.
fn check_event_id(id: &str) -> Result<(), ParseError> {
    let shaped = id.len() <= MAX_EVENT_ID_LEN
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
    if shaped {
        Ok(())
    } else {
        Err(ParseError(format!(
            "event id {:?} is not up to {MAX_EVENT_ID_LEN} letters, digits, '-', '_', '.' or ':'",
            crate::text::first_chars(id, MAX_EVENT_ID_LEN)
        )))
    }
}

fn required(value: Option<String>, name: &str) -> Result<String, ParseError> {
    match value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(ParseError(format!("event has no {name}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_text_never_panics_and_is_never_an_event(body in any::<String>()) {
            prop_assert!(parse_body(&body).is_err());
        }

        #[test]
        fn arbitrary_field_values_never_panic(
            detail_type in prop_oneof![Just(DETAIL_TYPE.to_owned()), any::<String>()],
            account in any::<String>(), region in any::<String>(), id in any::<String>(), state in any::<String>(),
        ) {
            let body = serde_json::json!({"detail-type": detail_type, "source": "aws.ec2", "account": account,
                "region": region, "detail": {"instance-id": id, "state": state}}).to_string();
            if let Ok(e) = parse_body(&body) {
                prop_assert_eq!(e.account.as_str(), account.as_str());
                prop_assert_eq!(e.instance_id.as_str(), id.as_str());
            }
        }
    }

    fn event(detail: &str) -> String {
        format!(
            r#"{{"version":"0","id":"7bf73129-1428-4cd3-a780-95db273d1602","detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","account":"111122223333","time":"2026-11-20T12:00:00Z","region":"us-east-1","resources":["arn:aws:ec2:us-east-1:111122223333:instance/i-0abcd1234ef567890"],"detail":{detail}}}"#
        )
    }
    const RUNNING: &str = r#"{"instance-id":"i-0abcd1234ef567890","state":"running"}"#;

    #[test]
    fn eventbridge_event_parses() {
        let e = parse_body(&event(RUNNING)).expect("parses");
        assert_eq!(e.account.as_str(), "111122223333");
        assert_eq!(e.region.as_str(), "us-east-1");
        assert_eq!(e.instance_id.as_str(), "i-0abcd1234ef567890");
        assert_eq!(e.state, EventState::Running);
        assert_eq!(e.event_id, "7bf73129-1428-4cd3-a780-95db273d1602");
        assert!(!e.via_sns);
    }

    #[test]
    fn sns_envelope_around_the_event_parses() {
        let envelope = serde_json::json!({
            "Type": "Notification",
            "MessageId": "5a1d6b0e-0000-4000-8000-000000000001",
            "TopicArn": "arn:aws:sns:eu-west-1:999988887777:adjoin-forward",
            "Message": event(r#"{"instance-id":"i-0abcd1234ef567890","state":"terminated"}"#),
            "Timestamp": "2026-11-20T12:00:01.000Z",
        });
        let e = parse_body(&envelope.to_string()).expect("parses");
        assert_eq!(e.state, EventState::Terminated);
        assert!(e.via_sns);
    }

    #[test]
    fn other_states_parse_as_other() {
        let e = parse_body(&event(
            r#"{"instance-id":"i-0abcd1234ef567890","state":"stopping"}"#,
        ))
        .expect("parses");
        assert_eq!(e.state, EventState::Other("stopping".into()));
    }

    fn reason(body: &str) -> String {
        parse_body(body).expect_err("must be refused").0
    }

    #[test]
    fn bad_input_is_refused_with_a_reason_that_says_what_is_wrong() {
        assert!(reason("{not json").contains("not JSON"));
        assert!(reason("[1,2]").contains("not a JSON object"));
        assert!(reason("{}").contains("no detail-type"));
        let other = event(RUNNING).replace(DETAIL_TYPE, "AWS API Call via CloudTrail");
        assert!(reason(&other).contains("AWS API Call via CloudTrail"));
        let forged = event(RUNNING).replace("\"aws.ec2\"", "\"my.app\"");
        assert!(reason(&forged).contains("only events from EC2"));
        assert!(reason(&event(r#"{"state":"running"}"#)).contains("detail.instance-id"));
        assert!(
            reason(&event(r#"{"instance-id":"i-0abcd1234ef567890"}"#)).contains("detail.state")
        );
        assert!(reason(&event(r#"{"instance-id":"i-xyz","state":"running"}"#)).contains("i-xyz"));
        assert!(reason(&event(r#"{"instance-id":7,"state":"running"}"#)).contains("wrong type"));
        let bad_account = event(RUNNING).replace("111122223333\",\"time", "1111\",\"time");
        assert!(reason(&bad_account).contains("12 digits"));
        let long_id =
            event(RUNNING).replace("7bf73129-1428-4cd3-a780-95db273d1602", &"é".repeat(40));
        assert!(reason(&long_id).contains("event id"));
        let hostile_id =
            event(RUNNING).replace("7bf73129-1428-4cd3-a780-95db273d1602", "x$(reboot)");
        assert!(reason(&hostile_id).contains("event id"));
        let confirmation = r#"{"Type":"SubscriptionConfirmation","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"confirm"}"#;
        assert!(reason(confirmation).contains("SubscriptionConfirmation"));
        let bad_inner =
            r#"{"Type":"Notification","TopicArn":"arn:aws:sns:us-east-1:1:t","Message":"{oops"}"#;
        assert!(reason(bad_inner).contains("Message is not JSON"));
    }
}
