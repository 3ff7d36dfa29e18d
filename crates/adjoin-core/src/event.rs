//! Parsing an SQS message body into an [`InstanceEvent`].
//!
//! Two EventBridge events are acted on: EC2's "EC2 Instance State-change Notification"
//! (`running`, `terminated`), and the tagging service's "Tag Change on Resource" for an
//! EC2 instance (a tag adjoin reads — `adGroupName`, `adSudoGroup`, `autoadjoin` —
//! added, changed or removed). Three body shapes carry them:
//! the event itself (EventBridge → SQS, or SNS raw message delivery), and an SNS
//! notification envelope whose `Message` is the event as a string (SNS → SQS, the
//! cross-Region path). Anything else is refused with a reason that says what was wrong.
//! Parsing never panics.

use serde::Deserialize;
use serde_json::Value;

use crate::ids::{AccountId, InstanceId, Region};

/// The `detail-type` of the events this service acts on.
pub const DETAIL_TYPE: &str = "EC2 Instance State-change Notification";
/// The only `source` of state changes acted on: they must come from EC2 itself.
pub const SOURCE: &str = "aws.ec2";
/// The `detail-type` of tag changes.
pub const TAG_CHANGE_DETAIL_TYPE: &str = "Tag Change on Resource";
/// The only `source` of tag changes acted on: the tagging service.
pub const TAG_SOURCE: &str = "aws.tag";
/// The tags whose changes matter: who may log in, who may use sudo, whether to join.
pub const WATCHED_TAGS: [&str; 3] = [
    crate::instance::GROUP_TAG,
    crate::instance::SUDO_TAG,
    crate::instance::OPT_OUT_TAG,
];

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
    /// Tags of the instance changed (their keys): a running instance is joined, or its
    /// configuration (login groups, sudo groups) written again.
    TagsChanged(Vec<String>),
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
            EventState::TagsChanged(_) => "tags-changed",
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
    resources: Option<Vec<String>>,
    detail: Option<RawDetail>,
}

#[derive(Deserialize)]
struct RawDetail {
    #[serde(rename = "instance-id")]
    instance_id: Option<String>,
    state: Option<String>,
    // Tag changes.
    #[serde(rename = "changed-tag-keys")]
    changed_tag_keys: Option<Vec<String>>,
    service: Option<String>,
    #[serde(rename = "resource-type")]
    resource_type: Option<String>,
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
    let tag_change = detail_type == TAG_CHANGE_DETAIL_TYPE;
    if detail_type != DETAIL_TYPE && !tag_change {
        return Err(ParseError(format!(
            "detail-type {detail_type:?} is neither {DETAIL_TYPE:?} nor {TAG_CHANGE_DETAIL_TYPE:?}"
        )));
    }
    let source = raw.source.unwrap_or_default();
    let expected = if tag_change { TAG_SOURCE } else { SOURCE };
    if source != expected {
        return Err(ParseError(format!(
            "source {source:?} is not {expected:?}: only events from {} are acted on",
            if tag_change {
                "the tagging service"
            } else {
                "EC2"
            }
        )));
    }
    let account = AccountId::parse(&required(raw.account, "account")?).map_err(ParseError)?;
    let region = Region::parse(&required(raw.region, "region")?).map_err(ParseError)?;
    let detail = raw
        .detail
        .ok_or_else(|| ParseError("event has no detail".into()))?;
    let (instance_id, state) = if tag_change {
        tag_change_of(&detail, raw.resources.as_deref(), &account, &region)?
    } else {
        let id = InstanceId::parse(&required(detail.instance_id, "detail.instance-id")?)
            .map_err(ParseError)?;
        (
            id,
            EventState::from_name(&required(detail.state, "detail.state")?),
        )
    };
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

/// The instance and changed keys of a tag change: an EC2 instance's, named by the one
/// ARN in `resources`, which must be of the event's own account and Region.
fn tag_change_of(
    detail: &RawDetail,
    resources: Option<&[String]>,
    account: &AccountId,
    region: &Region,
) -> Result<(InstanceId, EventState), ParseError> {
    let service = detail.service.as_deref().unwrap_or_default();
    let kind = detail.resource_type.as_deref().unwrap_or_default();
    if service != "ec2" || kind != "instance" {
        return Err(ParseError(format!(
            "tag change of {service:?} {kind:?}, not of an EC2 instance"
        )));
    }
    let [arn] = resources.unwrap_or_default() else {
        return Err(ParseError(
            "tag change does not name exactly one resource".into(),
        ));
    };
    let parsed = crate::arn::Arn::parse(arn)
        .filter(|a| a.service == "ec2")
        .ok_or_else(|| {
            ParseError(format!(
                "resource {:?} is not an EC2 ARN",
                crate::text::first_chars(arn, 120)
            ))
        })?;
    if parsed.account != account.as_str() || parsed.region != region.as_str() {
        return Err(ParseError(format!(
            "resource {arn} is not of the event's account {account} and Region {region}"
        )));
    }
    let id = parsed
        .resource
        .strip_prefix("instance/")
        .ok_or_else(|| ParseError(format!("resource {arn} is not an instance")))?;
    let id = InstanceId::parse(id).map_err(ParseError)?;
    let keys = detail.changed_tag_keys.clone().unwrap_or_default();
    Ok((id, EventState::TagsChanged(keys)))
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

    /// A "Tag Change on Resource" event as EventBridge delivers it for an EC2 instance.
    fn tag_change(account: &str, service: &str, arn: &str, keys: &[&str]) -> String {
        serde_json::json!({
            "version": "0", "id": "ffd8a6fe-32f8-4e40-9e1b-8c3b8a1a7d0a",
            "detail-type": "Tag Change on Resource", "source": "aws.tag",
            "account": account, "time": "2026-11-20T12:00:00Z", "region": "us-east-1",
            "resources": [arn],
            "detail": {
                "changed-tag-keys": keys, "service": service, "resource-type": "instance",
                "version": 3, "tags": {"adGroupName": "web, db"}
            }
        })
        .to_string()
    }

    #[test]
    fn tag_changes_of_an_instance_parse_and_others_are_refused() {
        let arn = "arn:aws:ec2:us-east-1:111122223333:instance/i-0abcd1234ef567890";
        let e =
            parse_body(&tag_change("111122223333", "ec2", arn, &["adGroupName"])).expect("parses");
        assert_eq!(e.instance_id.as_str(), "i-0abcd1234ef567890");
        assert_eq!(e.state, EventState::TagsChanged(vec!["adGroupName".into()]));
        assert_eq!(e.state.as_str(), "tags-changed");
        for (body, says) in [
            (
                tag_change("111122223333", "rds", arn, &["x"]),
                "not of an EC2 instance",
            ),
            // An instance of another account or Region than the event's: forged.
            (
                tag_change("444455556666", "ec2", arn, &["x"]),
                "not of the event's account",
            ),
            (
                tag_change(
                    "111122223333",
                    "ec2",
                    "arn:aws:ec2:us-east-1:111122223333:volume/vol-1",
                    &["x"],
                ),
                "not an instance",
            ),
            (
                tag_change("111122223333", "ec2", arn, &["x"]).replace("aws.tag", "aws.ec2"),
                "only events from the tagging service",
            ),
        ] {
            let e = parse_body(&body).expect_err("refused");
            assert!(e.0.contains(says), "{e}");
        }
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
