//! The worker on in-memory fakes: every outcome of design.md's table, and faults.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use std::time::{Duration, SystemTime};

use super::*;
use crate::fake::FakeAws;
use crate::faults::{Fault, Faults, Op};
use crate::ids::{InstanceId, Region};
use crate::instance::{Instance, Platform};
use crate::ledger::{self, JoinRecord, JoinStatus};
use crate::outcome::Outcome;
use crate::ports::{AccountPorts, CommandStatus};
use crate::render::CommandRequest;
use crate::render::decode_params;
use crate::testing::{
    HOME, LINUX, MEMBER, REGION, TOOLS, WINDOWS, account, instance, member_item, region, settings,
};

/// The world of [`crate::testing::world`], its member account joining with the shared
/// join password: the tests of the join command's own mechanics (attempts, lost answers,
/// the ready tag, the report). Staged joins, the default, have their own tests
/// ([`staged`]), which run each mechanism again where staging changes it.
fn world() -> FakeAws {
    let aws = crate::testing::world();
    aws.put_config(&account(MEMBER), shared_item());
    aws
}

/// [`member_item`] with `joinMode: sharedPassword`.
fn shared_item() -> crate::config::ConfigItem {
    let mut item = member_item();
    item.insert("joinMode".into(), json!("sharedPassword"));
    item
}

fn worker_on(aws: &FakeAws, faults: &Faults) -> Worker {
    crate::testing::worker(aws, faults)
}

/// A worker on `aws` whose ports are the fake's, but for `change`'s.
fn worker_with(aws: &FakeAws, change: impl FnOnce(&mut Ports, &mut Settings)) -> Worker {
    let (mut ports, mut settings) = (aws.ports(), settings());
    change(&mut ports, &mut settings);
    Worker::new(ports, settings)
}

/// Puts an instance in the member account, in the world's Region.
fn put_member(aws: &FakeAws, instance: Instance) {
    aws.put_instance(&account(MEMBER), &region(), instance);
}

/// Makes EC2 report the member's `id` as `state`, untagged.
fn now_in_state(aws: &FakeAws, id: &str, state: &str, platform: Platform) {
    put_member(aws, instance(id, state, platform, &[]));
}

/// The member's Linux instance terminated after it was joined.
fn terminated_after_join(aws: &FakeAws) {
    now_in_state(aws, LINUX, "terminated", Platform::Linux);
    joined(aws, LINUX);
}

/// An event that happened just now.
fn body(account: &str, instance: &str, state: &str) -> String {
    body_at(account, instance, state, SystemTime::now())
}

fn body_at(account: &str, instance: &str, state: &str, time: SystemTime) -> String {
    json!({
        "version": "0", "id": format!("ev-{instance}-{state}"), "detail-type": "EC2 Instance State-change Notification",
        "source": "aws.ec2", "account": account, "time": ledger::format_time(time), "region": REGION,
        "resources": [format!("arn:aws:ec2:{REGION}:{account}:instance/{instance}")],
        "detail": {"instance-id": instance, "state": state}
    })
    .to_string()
}

fn message(id: &str, body: String) -> Message {
    Message {
        message_id: id.into(),
        body,
        receipt_handle: Some(format!("rh-{id}")),
        receive_count: 1,
        source_queue_arn: Some(format!("arn:aws:sqs:{REGION}:{HOME}:adjoin-events")),
    }
}

/// A ledger record saying the instance was joined by an earlier message.
fn joined(aws: &FakeAws, instance: &str) {
    aws.put_record(JoinRecord {
        computer_name: crate::computer_name::computer_name(
            &InstanceId::parse(instance).expect("valid"),
            None,
        ),
        message_id: "earlier".into(),
        event_id: "ev-earlier".into(),
        command_id: Some("fake-command-0".into()),
        command_target: None,
        version: 2,
        ..crate::testing::record_now(instance, MEMBER)
    });
}

async fn run(aws: &FakeAws, messages: &[Message]) -> Vec<Report> {
    worker_on(aws, &Faults::default())
        .handle_batch(messages)
        .await
}

#[tokio::test]
async fn running_linux_instance_is_joined_in_its_account_with_the_role_and_external_id() {
    let aws = world();
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Join, Outcome::Dispatched),
        "{r:?}"
    );
    assert_eq!(r[0].command_id.as_deref(), Some("fake-command-1"));
    let sent = aws.sent();
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].account, account(MEMBER));
    assert_eq!(sent[0].request.target.as_str(), LINUX);
    assert_eq!(sent[0].request.document.name(), "adjoin-Join-Linux");
    assert!(
        sent[0].request.document_hash.is_some(),
        "pinned by its hash"
    );
    let params: BTreeMap<_, _> = decode_params(&sent[0].request.commands)
        .into_iter()
        .collect();
    assert_eq!(params["ALLOWED_GROUP"], "linux-admins");
    assert_eq!(aws.assumed()[0].external_id.as_deref(), Some("ext-42"));
}

#[tokio::test]
async fn running_windows_instance_is_joined_with_powershell() {
    let aws = world();
    let r = run(&aws, &[message("m1", body(MEMBER, WINDOWS, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched);
    assert_eq!(aws.sent()[0].request.document.name(), "adjoin-Join-Windows");
}

#[tokio::test]
async fn a_document_changed_in_the_account_is_refused_and_nothing_runs() {
    let aws = world();
    let name = "adjoin-Join-Linux";
    aws.put_document(
        &account(MEMBER),
        &region(),
        name,
        Some(r#"{"schemaVersion":"2.2","mainSteps":[]}"#),
    );
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(
        &r[0],
        "document adjoin-Join-Linux in account 111122223333 eu-west-1 is not adjoin",
    );
    assert_reason(&r[0], "deploy member.yaml");
    assert!(aws.sent().is_empty());
    assert_eq!(
        aws.record(LINUX).expect("record").status,
        JoinStatus::Failed
    );

    let aws = world();
    aws.put_document(&account(MEMBER), &region(), name, None);
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(
        &r[0],
        "document adjoin-Join-Linux is not in account 111122223333 eu-west-1",
    );
    assert!(aws.sent().is_empty());
}

#[tokio::test]
async fn a_document_changed_after_its_check_is_refused_by_its_hash() {
    let aws = world();
    let worker = worker_on(&aws, &Faults::default());
    let r = worker
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    // Changed while the worker keeps its check: SSM refuses the stale hash, and the
    // next attempt checks again and refuses the new content.
    let changed = crate::documents::content(crate::documents::Task::Join, Platform::Windows);
    aws.put_document(
        &account(MEMBER),
        &region(),
        "adjoin-Join-Linux",
        Some(&changed.to_string()),
    );
    let r = worker
        .handle_batch(&[
            message("m2", body(MEMBER, WINDOWS, "running")),
            message("m3", body(MEMBER, LINUX, "terminated")),
        ])
        .await;
    assert_eq!(
        r[0].outcome,
        Outcome::Dispatched,
        "the Windows document is untouched: {r:?}"
    );
    aws.put_record(JoinRecord {
        status: JoinStatus::Failed,
        ..aws.record(LINUX).expect("record")
    });
    let r = worker
        .handle_batch(&[message("m4", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], "InvalidDocument");
    let r = worker
        .handle_batch(&[message("m5", body(MEMBER, LINUX, "running"))])
        .await;
    assert_reason(&r[0], "is not adjoin");
    assert_eq!(
        aws.sent()
            .iter()
            .filter(|c| c.request.target.as_str() == LINUX)
            .count(),
        1
    );
}

#[tokio::test]
async fn the_originals_documents_run_only_where_the_account_asks_for_them() {
    let aws = world();
    let mut item = shared_item();
    item.insert("commandDocuments".into(), json!("awsRunScript"));
    aws.put_config(&account(MEMBER), item);
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    let sent = &aws.sent()[0].request;
    assert_eq!(sent.document.name(), "AWS-RunShellScript");
    assert_eq!(sent.document_hash, None);
}

#[tokio::test]
async fn terminated_instance_leaves_through_the_tools_host_in_the_home_account() {
    let aws = world();
    terminated_after_join(&aws);
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Leave, Outcome::Dispatched),
        "{r:?}"
    );
    let sent = aws.sent();
    assert_eq!(sent[0].account, account(HOME));
    assert_eq!(sent[0].request.target.as_str(), TOOLS);
    let params: BTreeMap<_, _> = decode_params(&sent[0].request.commands)
        .into_iter()
        .collect();
    assert_eq!(params["INSTANCE_ID"], LINUX);
}

#[tokio::test]
async fn missing_tools_host_fails_the_message_so_sqs_retries_it() {
    let aws = crate::testing::bare_world();
    aws.put_config(&account(MEMBER), member_item());
    joined(&aws, LINUX);
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(r[0].outcome, Outcome::Failed);
    assert_reason(
        &r[0],
        "no running AD tools host tagged adjoin:role=ad-tools",
    );
    assert!(aws.sent().is_empty());
}

#[tokio::test]
async fn opted_out_stopped_and_gone_instances_are_skipped() {
    let aws = world();
    put_member(
        &aws,
        instance(
            "i-0ddddddddddddddd4",
            "running",
            Platform::Linux,
            &[("autoadjoin", "false")],
        ),
    );
    now_in_state(&aws, "i-0eeeeeeeeeeeeeee5", "stopped", Platform::Linux);
    let r = run(
        &aws,
        &[
            message("opt", body(MEMBER, "i-0ddddddddddddddd4", "running")),
            message("stop", body(MEMBER, "i-0eeeeeeeeeeeeeee5", "running")),
            message("gone", body(MEMBER, "i-0fffffffffffffff6", "running")),
        ],
    )
    .await;
    assert!(r.iter().all(|r| r.outcome == Outcome::Skipped), "{r:?}");
    assert!(r[0].reason.contains("autoadjoin=false"));
    assert!(r[1].reason.contains("stopped"));
    assert!(r[2].reason.contains("no longer exists"));
    assert!(aws.sent().is_empty());
}

#[tokio::test]
async fn unknown_account_is_rejected_to_the_dlq_with_its_reason() {
    let aws = world();
    let r = run(
        &aws,
        &[message("m1", body("444455556666", LINUX, "running"))],
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert!(
        r[0].reason
            .contains("no config item for account 444455556666")
    );
    let dlq = aws.dead_letters();
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].message_id, "m1");
    assert_eq!(dlq[0].reason, r[0].reason);
}

#[tokio::test]
async fn role_of_another_account_is_rejected_and_never_assumed() {
    let aws = world();
    let mut item = member_item();
    item.insert(
        "assumeRoleARN".into(),
        json!("arn:aws:iam::999988887777:role/adjoin-member"),
    );
    aws.put_config(&account(MEMBER), item);
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert_reason(&r[0], "belongs to account 999988887777");
    assert!(aws.assumed().is_empty());
    assert!(aws.sent().is_empty());
}

#[tokio::test]
async fn config_without_role_for_a_foreign_account_is_rejected() {
    let aws = world();
    let mut item = member_item();
    item.remove("assumeRoleARN");
    aws.put_config(&account(MEMBER), item);
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert_reason(&r[0], "no assumeRoleARN");
}

#[tokio::test]
async fn a_malformed_record_does_not_disturb_the_other_nine() {
    let aws = world();
    for n in 0..9 {
        put_member(
            &aws,
            instance(&format!("i-0{n:016x}"), "running", Platform::Linux, &[]),
        );
    }
    let mut batch: Vec<Message> = (0..9)
        .map(|n| {
            message(
                &format!("m{n}"),
                body(MEMBER, &format!("i-0{n:016x}"), "running"),
            )
        })
        .collect();
    batch.insert(4, message("bad", "{\"detail-type\": 42".into()));
    let r = run(&aws, &batch).await;
    assert_eq!(r.len(), 10);
    assert_eq!(r[4].message_id, "bad");
    assert_eq!(r[4].outcome, Outcome::Rejected);
    assert!(
        r.iter()
            .filter(|r| r.message_id != "bad")
            .all(|r| r.outcome == Outcome::Dispatched)
    );
    let sent = aws.sent();
    assert_eq!(sent.len(), 1, "the nine joins gathered into one command");
    assert_eq!(sent[0].request.more_targets.len(), 8);
    assert_eq!(
        aws.describe_calls(),
        1,
        "one DescribeInstances for the account's nine instances"
    );
    assert_eq!(aws.dead_letters().len(), 1);
}

#[tokio::test]
async fn the_same_event_twice_in_a_batch_is_sent_once() {
    let aws = world();
    let r = run(
        &aws,
        &[
            message("a", body(MEMBER, LINUX, "running")),
            message("b", body(MEMBER, LINUX, "running")),
        ],
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched);
    assert_eq!(r[1].outcome, Outcome::Skipped);
    assert!(r[1].reason.contains("duplicate of message a"));
    assert_eq!(aws.sent().len(), 1);
}

#[tokio::test]
async fn throttled_send_is_deferred_with_backoff() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::Throttle, None);
    let r = worker_on(&aws, &faults)
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Deferred);
    assert_eq!(
        aws.retries(),
        vec![("rh-m1".to_owned(), Duration::from_secs(30))]
    );
    assert!(
        crate::sqs::batch_response(&r)
            .batch_item_failures
            .iter()
            .any(|f| f.item_identifier == "m1")
    );
}

#[tokio::test]
async fn agent_not_registered_is_deferred() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::AgentNotReady, Some(1));
    let w = worker_on(&aws, &faults);
    let r = w
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Deferred);
    let r = w
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(
        r[0].outcome,
        Outcome::Dispatched,
        "the fault fired once only"
    );
}

#[tokio::test]
async fn server_errors_fail_the_message_and_only_that_message() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::ServerError, Some(1));
    let r = worker_on(&aws, &faults)
        .handle_batch(&[
            message("m1", body(MEMBER, LINUX, "running")),
            message("m2", body(MEMBER, WINDOWS, "running")),
        ])
        .await;
    let failed: Vec<_> = r.iter().filter(|r| r.outcome == Outcome::Failed).collect();
    assert_eq!(failed.len(), 1, "{r:?}");
    assert_eq!(
        r.iter()
            .filter(|r| r.outcome == Outcome::Dispatched)
            .count(),
        1
    );
    // The failed message comes back; so does the dispatched one, to verify its join.
    assert!(r.iter().all(|r| r.comes_back));
    assert_eq!(crate::sqs::batch_response(&r).batch_item_failures.len(), 2);
}

#[tokio::test]
async fn access_denied_on_assume_role_is_rejected_with_the_reason() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::AssumeRole, Fault::AccessDenied, None);
    let r = worker_on(&aws, &faults)
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert!(r[0].reason.contains("sts:AssumeRole: access denied"));
    assert_eq!(aws.dead_letters().len(), 1);
}

#[tokio::test]
async fn config_table_timeout_fails_every_message_of_the_account() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::GetConfig, Fault::Timeout, None);
    let r = worker_on(&aws, &faults)
        .handle_batch(&[
            message("m1", body(MEMBER, LINUX, "running")),
            message("m2", body(MEMBER, WINDOWS, "running")),
        ])
        .await;
    assert!(r.iter().all(|r| r.outcome == Outcome::Failed), "{r:?}");
    assert!(aws.dead_letters().is_empty());
}

#[tokio::test]
async fn a_message_that_keeps_failing_ends_on_the_dlq_instead_of_retrying_forever() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::ServerError, None);
    let mut m = message("m1", body(MEMBER, LINUX, "running"));
    m.receive_count = settings().max_attempts;
    let r = worker_on(&aws, &faults).handle_batch(&[m]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert!(
        r[0].reason.starts_with("gave up after 25 deliveries"),
        "{}",
        r[0].reason
    );
    assert_eq!(aws.dead_letters().len(), 1);
}

#[tokio::test]
async fn a_rejection_the_dlq_refuses_is_not_acknowledged() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendToDlq, Fault::ServerError, None);
    let r = worker_on(&aws, &faults)
        .handle_batch(&[message("m1", "nonsense".into())])
        .await;
    assert_eq!(r[0].outcome, Outcome::Failed);
    assert!(r[0].reason.contains("the DLQ refused it"));
    assert_eq!(crate::sqs::batch_response(&r).batch_item_failures.len(), 1);
}

#[tokio::test]
async fn dry_run_sends_nothing_and_shows_the_command() {
    let aws = world();
    let mut w = worker_on(&aws, &Faults::default());
    w.settings.dry_run = true;
    let r = w
        .handle_batch(&[
            message("m1", body(MEMBER, LINUX, "running")),
            message("bad", "x".into()),
        ])
        .await;
    // Every line says it is a dry run; nothing is called dispatched that was not sent.
    assert_eq!(r[0].outcome, Outcome::Planned);
    assert!(r.iter().all(|r| r.dry_run), "{r:?}");
    assert_reason(&r[0], "nothing was sent");
    assert_eq!(r[1].outcome, Outcome::Rejected);
    assert_reason(&r[1], "dry run: not sent to the DLQ");
    assert_eq!(
        r[0].command.as_ref().map(|c| c.document),
        Some("adjoin-Join-Linux")
    );
    assert!(aws.sent().is_empty());
    assert!(aws.dead_letters().is_empty());
}

/// Captures what the worker logs, as the Lambda writes it (JSON, current span).
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn every_log_line_of_a_message_names_its_message_account_region_and_instance() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_current_span(true)
        .with_span_list(false)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let batch = || async {
        let aws = world();
        now_in_state(&aws, WINDOWS, "shutting-down", Platform::Windows);
        joined(&aws, WINDOWS);
        let messages = [
            message("m-linux", body(MEMBER, LINUX, "running")),
            message("m-leave", body(MEMBER, WINDOWS, "terminated")),
        ];
        run(&aws, &messages).await
    };
    // tracing caches whether a span or event is wanted when another test's thread first
    // reaches it, which may be before this subscriber was set: reach every one once,
    // then have the cache computed again, with this subscriber, and log from scratch.
    batch().await;
    tracing::callsite::rebuild_interest_cache();
    captured.0.lock().expect("lock").clear();
    let r = batch().await;
    assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
    let text = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON"))
        .collect();
    for (message_id, instance) in [("m-linux", LINUX), ("m-leave", WINDOWS)] {
        let mine: Vec<_> = lines
            .iter()
            .filter(|l| l["span"]["message_id"] == message_id)
            .collect();
        assert!(
            mine.len() >= 2,
            "decision and outcome are logged for {message_id}: {text}"
        );
        for line in mine {
            assert_eq!(line["span"]["name"], "message");
            assert_eq!(line["span"]["account"], MEMBER);
            assert_eq!(line["span"]["region"], REGION);
            assert_eq!(line["span"]["instance_id"], instance);
        }
    }
}

#[tokio::test]
async fn a_forged_terminated_event_for_a_running_instance_deletes_nothing() {
    let aws = world();
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert_reason(&r[0], "EC2 reports the instance running");
    assert!(aws.sent().is_empty());
    assert_eq!(aws.dead_letters().len(), 1);
}

#[tokio::test]
async fn a_group_tag_that_would_rewrite_sssd_conf_is_refused() {
    let aws = world();
    // A newline would start a section of sssd.conf; an empty name a stray separator.
    for value in [
        "admins\n[domain/evil]",
        "admins,,domain users",
        "admins,Domain Admins",
    ] {
        put_member(
            &aws,
            instance(LINUX, "running", Platform::Linux, &[("adGroupName", value)]),
        );
        let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
        assert_eq!(r[0].outcome, Outcome::Rejected, "{value:?}");
    }
    assert!(aws.sent().is_empty());
}

#[tokio::test]
async fn several_login_groups_and_the_sudo_groups_reach_the_join_as_lines() {
    let aws = world();
    let mut item = shared_item();
    item.insert("sudoGroups".into(), json!(["linux-admins", "dba"]));
    aws.put_config(&account(MEMBER), item);
    put_member(
        &aws,
        instance(
            LINUX,
            "running",
            Platform::Linux,
            &[("adGroupName", "linux-admins, web"), ("adSudoGroup", "DBA")],
        ),
    );
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    let params: BTreeMap<_, _> = decode_params(&aws.sent()[0].request.commands)
        .into_iter()
        .collect();
    assert_eq!(params["ALLOWED_GROUP"], "linux-admins,web");
    assert_eq!(
        params["SUDO_GROUPS"], "dba",
        "the tag narrows the account's sudoGroups"
    );
    // A sudo tag the account does not list is refused.
    put_member(
        &aws,
        instance(
            LINUX,
            "running",
            Platform::Linux,
            &[("adSudoGroup", "Domain Admins")],
        ),
    );
    let r = run(&aws, &[message("m2", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(
        &r[0],
        "adSudoGroup tag \"Domain Admins\" is not in the account's sudoGroups",
    );
}

/// Commands that never answer, as an SSM endpoint that hangs would.
struct Hanging;

#[async_trait::async_trait]
impl crate::ports::Commands for Hanging {
    async fn send(&self, _request: &CommandRequest) -> Result<String, Error> {
        std::future::pending().await
    }
    async fn find_sent(
        &self,
        _instance: &InstanceId,
        _comment: &str,
        _since: SystemTime,
    ) -> Result<Option<String>, Error> {
        std::future::pending().await
    }
    async fn document(&self, _name: &str) -> Result<Option<crate::ports::StoredDocument>, Error> {
        std::future::pending().await
    }
    async fn online(&self, _instances: &[InstanceId]) -> Result<Vec<InstanceId>, Error> {
        std::future::pending().await
    }
    async fn summary(&self, _command_id: &str) -> Result<crate::ports::CommandSummary, Error> {
        std::future::pending().await
    }
    async fn result(
        &self,
        _command_id: &str,
        _instance: &InstanceId,
    ) -> Result<crate::ports::CommandResult, Error> {
        std::future::pending().await
    }
}

struct HangingSessions(FakeAws);

#[async_trait::async_trait]
impl Sessions for HangingSessions {
    async fn home(&self) -> Result<AccountPorts, Error> {
        self.0.home().await
    }
    async fn assume(
        &self,
        role: &crate::config::RoleTarget,
        region: &Region,
    ) -> Result<AccountPorts, Error> {
        let ports = self.0.assume(role, region).await?;
        Ok(AccountPorts {
            commands: Arc::new(Hanging),
            ..ports
        })
    }
    async fn home_in(&self, region: &Region) -> Result<AccountPorts, Error> {
        self.0.home_in(region).await
    }
}

#[tokio::test]
async fn messages_unfinished_at_the_deadline_fail_and_the_rest_are_still_settled() {
    let aws = world();
    let worker = worker_with(&aws, |ports, _| {
        ports.sessions = Arc::new(HangingSessions(aws.clone()));
    });
    let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
    let messages = [
        message("hangs", body(MEMBER, LINUX, "running")),
        message("bad", "nonsense".into()),
    ];
    let batch = worker.handle_batch_before(&messages, Some(deadline));
    // Without the deadline this would hang forever: fail instead.
    let r = tokio::time::timeout(Duration::from_secs(10), batch)
        .await
        .expect("the deadline stopped the work");
    assert_eq!(r[0].outcome, Outcome::Failed);
    assert_reason(&r[0], "deadline");
    assert_eq!(
        r[1].outcome,
        Outcome::Rejected,
        "parsed-out messages are settled too"
    );
    assert_eq!(aws.dead_letters().len(), 1);
}

// ---- the ledger: once, in order, verified ----

fn failed_result(exit_code: i32, output: &str) -> crate::ports::CommandResult {
    crate::ports::CommandResult {
        status: CommandStatus::Failed("Failed".into()),
        exit_code: Some(exit_code),
        stdout: output.into(),
        stderr: String::new(),
    }
}

#[tokio::test]
async fn a_duplicate_running_event_in_a_later_batch_is_skipped() {
    let aws = world();
    let first = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(first[0].outcome, Outcome::Dispatched);
    let record = aws.record(LINUX).expect("recorded");
    assert_eq!(record.status, JoinStatus::Joining);
    assert_eq!(record.command_id.as_deref(), Some("fake-command-1"));
    assert_eq!(
        record.computer_name,
        crate::computer_name::computer_name(&InstanceId::parse(LINUX).expect("valid"), None)
    );
    // EventBridge delivers the same event again, as a new SQS message.
    let again = run(&aws, &[message("m2", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(again[0].outcome, Outcome::Skipped, "{again:?}");
    assert_reason(&again[0], "already being joined");
    assert_eq!(aws.sent().len(), 1);
}

#[tokio::test]
async fn the_delivery_that_sent_a_join_comes_back_and_records_it_joined() {
    let aws = world();
    let m = message("m1", body(MEMBER, LINUX, "running"));
    let first = run(&aws, std::slice::from_ref(&m)).await;
    assert!(
        first[0].comes_back,
        "dispatched joins come back to be verified"
    );
    assert_eq!(
        aws.retries(),
        vec![("rh-m1".to_owned(), Duration::from_secs(120))]
    );
    let mut back = m.clone();
    back.receive_count = 2;
    let r = run(&aws, &[back]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Verify, Outcome::Verified),
        "{r:?}"
    );
    assert!(!r[0].comes_back);
    let record = aws.record(LINUX).expect("recorded");
    assert_eq!(
        (record.status, record.exit_code),
        (JoinStatus::Joined, Some(0))
    );
    // A later restart's running event finds it joined.
    let restart = run(&aws, &[message("m3", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(restart[0].outcome, Outcome::Skipped);
    assert_reason(&restart[0], "already joined");
    assert_eq!(aws.sent().len(), 1);
}

#[tokio::test]
async fn a_join_still_running_is_read_again_later() {
    let aws = world();
    let m = message("m1", body(MEMBER, LINUX, "running"));
    run(&aws, std::slice::from_ref(&m)).await;
    aws.set_result(
        "fake-command-1",
        crate::ports::CommandResult {
            status: CommandStatus::InProgress,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
        },
    );
    let r = run(&aws, std::slice::from_ref(&m)).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Verify, Outcome::Deferred)
    );
    assert_eq!(
        aws.record(LINUX).expect("recorded").status,
        JoinStatus::Joining
    );
}

#[tokio::test]
async fn a_failing_join_is_retried_then_recorded_failed_with_its_exit_code_and_output() {
    let aws = world();
    let m = message("m1", body(MEMBER, LINUX, "running"));
    let returns = fail_every_attempt(
        &aws,
        &m,
        "installing\nattempt {}\nadcli: cannot reach the domain",
    )
    .await;
    for (attempt, (r, record)) in (1..).zip(&returns) {
        if attempt < 3 {
            assert_reason(&r[0], "exit code 13");
            assert_eq!(
                (record.status, record.attempts),
                (JoinStatus::Joining, attempt + 1)
            );
            assert_eq!(
                record.exit_code,
                Some(13),
                "the last attempt's result is kept"
            );
        } else {
            assert_reason(&r[0], "failed after 3 attempt(s)");
            assert_reason(&r[0], "cannot reach the domain");
            assert_eq!(
                (record.status, record.exit_code),
                (JoinStatus::Failed, Some(13))
            );
            assert_eq!(
                record.output.as_deref(),
                Some("installing\nattempt 3\nadcli: cannot reach the domain")
            );
        }
    }
    assert_eq!(aws.sent().len(), 3);
    assert_eq!(aws.dead_letters().len(), 1);
    // The same delivery again (the DLQ refused it, or the invocation ended first): it is
    // rejected again with the record's reason, so it cannot be lost; nothing is sent.
    let r = run(&aws, std::slice::from_ref(&m)).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], "join failed after 3 attempts");
    assert_eq!(aws.sent().len(), 3);
    assert_eq!(aws.dead_letters().len(), 2);
    // A new running event (a restart) gets a fresh set of attempts.
    let r = run(&aws, &[message("m2", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched);
    assert_eq!(aws.record(LINUX).expect("recorded").attempts, 1);
}

#[tokio::test]
async fn a_terminate_for_an_instance_never_joined_deletes_nothing_and_stops_its_late_running_event()
{
    let aws = world();
    now_in_state(&aws, LINUX, "terminated", Platform::Linux);
    let r = run(&aws, &[message("t1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Leave, Outcome::Skipped)
    );
    assert_reason(&r[0], "nothing to delete");
    assert_eq!(
        aws.record(LINUX).expect("tombstone").status,
        JoinStatus::Left
    );
    // The delayed running event arrives after the terminate. Even if EC2 still
    // answered "running" (a stale read), the ledger stops it.
    now_in_state(&aws, LINUX, "running", Platform::Linux);
    let late = body_at(
        MEMBER,
        LINUX,
        "running",
        SystemTime::now() - Duration::from_secs(60),
    );
    let r = run(&aws, &[message("r1", late)]).await;
    assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
    assert_reason(&r[0], "terminated before");
    assert!(aws.sent().is_empty());
    // And a second terminate is skipped too.
    let r = run(&aws, &[message("t2", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(
        r[0].outcome,
        Outcome::Rejected,
        "EC2 says running now: {r:?}"
    );
}

#[tokio::test]
async fn events_of_one_instance_in_one_batch_are_handled_in_the_order_they_happened() {
    let aws = world();
    now_in_state(&aws, LINUX, "terminated", Platform::Linux);
    let now = SystemTime::now();
    // The terminate is first in the batch but happened second.
    let r = run(
        &aws,
        &[
            message("t", body_at(MEMBER, LINUX, "terminated", now)),
            message(
                "r",
                body_at(MEMBER, LINUX, "running", now - Duration::from_secs(30)),
            ),
        ],
    )
    .await;
    assert_eq!(
        r[1].outcome,
        Outcome::Skipped,
        "not running any more: {r:?}"
    );
    assert_eq!(r[0].outcome, Outcome::Skipped, "never joined: {r:?}");
    assert!(aws.sent().is_empty());
    assert_eq!(
        aws.record(LINUX).expect("recorded").status,
        JoinStatus::Left
    );
}

#[tokio::test]
async fn a_leave_is_sent_once_and_recorded() {
    let aws = world();
    terminated_after_join(&aws);
    let r = run(&aws, &[message("t1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched);
    assert!(
        r[0].comes_back,
        "the leave's message comes back to read its result"
    );
    let record = aws.record(LINUX).expect("recorded");
    assert_eq!(
        (record.status, record.command_target.as_deref()),
        (JoinStatus::Leaving, Some(TOOLS)),
        "left only once the tools host says so"
    );
    // The message comes back: the tools host's command succeeded.
    let r = run(&aws, &[message("t1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Verify, Outcome::Verified),
        "{r:?}"
    );
    let record = aws.record(LINUX).expect("recorded");
    assert_eq!(record.status, JoinStatus::Left);
    assert!(record.expires_at.is_some(), "left records expire");
    let r = run(&aws, &[message("t2", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(r[0].outcome, Outcome::Skipped);
    assert_reason(&r[0], "already left");
    assert_eq!(aws.sent().len(), 1);
}

#[tokio::test]
async fn an_agent_that_never_registers_is_rejected_once_the_event_is_too_old() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::AgentNotReady, None);
    let old = body_at(
        MEMBER,
        LINUX,
        "running",
        SystemTime::now() - Duration::from_secs(3 * 3600),
    );
    let r = worker_on(&aws, &faults)
        .handle_batch(&[message("m1", old)])
        .await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert!(
        r[0].reason.starts_with("gave up: the event is"),
        "{}",
        r[0].reason
    );
    assert_reason(&r[0], "instance not ready");
    assert_eq!(aws.dead_letters()[0].reason, r[0].reason);
    // The same failure on a young event is only deferred.
    let r = worker_on(&aws, &faults)
        .handle_batch(&[message("m2", body(MEMBER, WINDOWS, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Deferred);
}

#[tokio::test]
async fn a_rejected_send_frees_the_record_for_a_later_event() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::AccessDenied, Some(1));
    let r = worker_on(&aws, &faults)
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert_eq!(
        aws.record(LINUX).expect("recorded").status,
        JoinStatus::Failed
    );
    let r = run(&aws, &[message("m2", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
}

#[tokio::test]
async fn ledger_faults_send_nothing_and_lose_nothing() {
    for (op, fault, expected) in [
        (Op::ReadLedger, Fault::ServerError, Outcome::Failed),
        (Op::ReadLedger, Fault::Throttle, Outcome::Deferred),
        (Op::ReadLedger, Fault::AccessDenied, Outcome::Rejected),
        (Op::WriteLedger, Fault::Timeout, Outcome::Failed),
        (Op::WriteLedger, Fault::Throttle, Outcome::Failed),
    ] {
        let aws = world();
        let faults = Faults::default();
        faults.inject(op, fault, None);
        let r = worker_on(&aws, &faults)
            .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
            .await;
        assert_eq!(r[0].outcome, expected, "{op:?} {fault:?}: {r:?}");
        assert!(
            aws.sent().is_empty(),
            "{op:?} {fault:?}: nothing sent without a claim"
        );
        let settled = r[0].comes_back || aws.dead_letters().len() == 1;
        assert!(
            settled,
            "{op:?} {fault:?}: the message comes back or is on the DLQ"
        );
    }
}

#[tokio::test]
async fn result_faults_are_retried_and_never_mark_a_join_failed() {
    for (fault, expected) in [
        (Fault::Throttle, Outcome::Deferred),
        (Fault::ServerError, Outcome::Failed),
        (Fault::Timeout, Outcome::Failed),
    ] {
        let aws = world();
        let m = message("m1", body(MEMBER, LINUX, "running"));
        run(&aws, std::slice::from_ref(&m)).await;
        let faults = Faults::default();
        faults.inject(Op::CommandResult, fault, None);
        let r = worker_on(&aws, &faults)
            .handle_batch(std::slice::from_ref(&m))
            .await;
        assert_eq!(
            (r[0].action, r[0].outcome),
            (Action::Verify, expected),
            "{fault:?}"
        );
        assert!(r[0].comes_back);
        assert_eq!(
            aws.record(LINUX).expect("recorded").status,
            JoinStatus::Joining
        );
    }
}

/// A ledger whose reads miss what another writer just wrote.
struct StaleReads(FakeAws);

#[async_trait::async_trait]
impl Ledger for StaleReads {
    async fn get_many(&self, _ids: &[InstanceId]) -> Result<Vec<JoinRecord>, Error> {
        Ok(Vec::new())
    }
    async fn put_if(&self, record: &JoinRecord, expected: Option<u64>) -> Result<bool, Error> {
        self.0.put_if(record, expected).await
    }
    async fn put_all_if(
        &self,
        writes: &[(JoinRecord, Option<u64>)],
    ) -> Result<crate::ports::Transaction, Error> {
        self.0.put_all_if(writes).await
    }
}

#[tokio::test]
async fn a_claim_lost_to_a_concurrent_delivery_sends_nothing_and_comes_back() {
    let aws = world();
    joined(&aws, LINUX);
    let worker = worker_with(&aws, |ports, _| {
        ports.ledger = Arc::new(StaleReads(aws.clone()));
    });
    let r = worker
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Failed, "{r:?}");
    assert_reason(&r[0], "changed while");
    assert!(aws.sent().is_empty());
    assert_eq!(aws.record(LINUX).expect("kept").status, JoinStatus::Joined);
}

// ---- property: nothing that is not a real event for a known instance is ever acted on ----

/// JSON shaped like events: the fields the parser looks at, with right, wrong and
/// arbitrary values, nested at random (an SNS envelope's `Message` included).
fn event_like_json() -> impl proptest::strategy::Strategy<Value = serde_json::Value> {
    use proptest::prelude::*;
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<String>().prop_map(serde_json::Value::from),
        prop_oneof![
            Just("EC2 Instance State-change Notification"),
            Just("aws.ec2"),
            Just(MEMBER),
            Just(REGION),
            Just("running"),
            Just("terminated"),
            Just("Notification"),
        ]
        .prop_map(serde_json::Value::from),
    ];
    let keys = prop_oneof![
        Just("detail-type"),
        Just("source"),
        Just("account"),
        Just("region"),
        Just("detail"),
        Just("instance-id"),
        Just("state"),
        Just("id"),
        Just("time"),
        Just("Type"),
        Just("Message"),
    ]
    .prop_map(str::to_owned);
    leaf.prop_recursive(3, 24, 8, move |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
            proptest::collection::btree_map(keys.clone(), inner.clone(), 0..8)
                .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            inner.prop_map(|v| serde_json::Value::from(v.to_string())),
        ]
    })
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(96))]
    #[test]
    fn arbitrary_bytes_and_event_like_json_are_never_dispatched(
        bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300),
        json in event_like_json(),
    ) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let aws = world();
        let messages = [
            message("bytes", String::from_utf8_lossy(&bytes).into_owned()),
            message("json", json.to_string()),
        ];
        let reports = runtime.block_on(run(&aws, &messages));
        proptest::prop_assert_eq!(reports.len(), 2);
        for r in &reports {
            proptest::prop_assert!(
                !matches!(r.outcome, Outcome::Dispatched | Outcome::Verified),
                "{:?}", r
            );
        }
        proptest::prop_assert!(aws.sent().is_empty());
    }

    /// A real running event for a joinable instance, with one field changed: never joined.
    #[test]
    fn a_real_event_with_any_one_field_changed_is_never_dispatched(
        field in 0usize..5,
        value in proptest::prelude::any::<String>(),
    ) {
        let mut event: serde_json::Value =
            serde_json::from_str(&body(MEMBER, LINUX, "running")).expect("json");
        let slot = match field {
            0 => &mut event["detail-type"],
            1 => &mut event["source"],
            2 => &mut event["account"],
            3 => &mut event["detail"]["instance-id"],
            _ => &mut event["detail"]["state"],
        };
        proptest::prop_assume!(slot.as_str() != Some(value.as_str()));
        *slot = serde_json::Value::from(value);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let aws = world();
        let reports = runtime.block_on(run(&aws, &[message("m", event.to_string())]));
        proptest::prop_assert!(
            !matches!(reports[0].outcome, Outcome::Dispatched | Outcome::Verified),
            "{:?}", reports[0]
        );
        proptest::prop_assert!(aws.sent().is_empty());
    }
}

#[tokio::test]
async fn the_tools_host_found_once_serves_later_batches() {
    let aws = world();
    for id in [LINUX, WINDOWS] {
        let platform = if id == LINUX {
            Platform::Linux
        } else {
            Platform::Windows
        };
        put_member(&aws, instance(id, "terminated", platform, &[]));
        joined(&aws, id);
    }
    let faults = Faults::default();
    let worker = worker_on(&aws, &faults);
    let r = worker
        .handle_batch(&[message("t1", body(MEMBER, LINUX, "terminated"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched);
    // EC2 lookups by tag fail from now on: the host found is used without one.
    faults.inject(Op::FindByTag, Fault::ServerError, None);
    let r = worker
        .handle_batch(&[message("t2", body(MEMBER, WINDOWS, "terminated"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    assert!(
        aws.sent()
            .iter()
            .all(|c| c.request.target.as_str() == TOOLS)
    );
}

#[tokio::test]
async fn commands_carry_the_accounts_audit_destinations() {
    let aws = world();
    let mut item = member_item();
    item.insert("commandLogGroup".into(), json!("/adjoin/commands"));
    aws.put_config(&account(MEMBER), item);
    run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    let sent = aws.sent();
    assert_eq!(
        sent[0].request.output.log_group.as_deref(),
        Some("/adjoin/commands")
    );
    assert_eq!(sent[0].request.output.s3_bucket, None);
}

/// The rest of the fault matrix: every port operation on the join or leave path, each
/// way it can fail. Nothing is sent when a read before the send fails; every message is
/// either acknowledged with a reason on the DLQ (rejected) or comes back (deferred,
/// failed) — never acknowledged silently.
#[tokio::test]
async fn every_port_fault_ends_in_the_right_outcome_and_loses_nothing() {
    let cases = [
        (Op::GetConfig, Fault::Throttle, "running", Outcome::Deferred),
        (Op::GetConfig, Fault::NotFound, "running", Outcome::Rejected),
        (
            Op::DescribeInstances,
            Fault::ServerError,
            "running",
            Outcome::Failed,
        ),
        (
            Op::DescribeInstances,
            Fault::Throttle,
            "running",
            Outcome::Deferred,
        ),
        (
            Op::DescribeInstances,
            Fault::AccessDenied,
            "running",
            Outcome::Rejected,
        ),
        (Op::AssumeRole, Fault::Timeout, "running", Outcome::Failed),
        (
            Op::HomeSession,
            Fault::ServerError,
            "terminated",
            Outcome::Failed,
        ),
        (
            Op::FindByTag,
            Fault::Throttle,
            "terminated",
            Outcome::Deferred,
        ),
        (
            Op::FindByTag,
            Fault::AccessDenied,
            "terminated",
            Outcome::Rejected,
        ),
        (
            Op::SendCommand,
            Fault::NotFound,
            "terminated",
            Outcome::Rejected,
        ),
    ];
    for (op, fault, state, expected) in cases {
        let aws = world();
        if state == "terminated" {
            terminated_after_join(&aws);
        }
        let faults = Faults::default();
        faults.inject(op, fault, None);
        let r = worker_on(&aws, &faults)
            .handle_batch(&[message("m1", body(MEMBER, LINUX, state))])
            .await;
        assert_eq!(r[0].outcome, expected, "{op:?} {fault:?} on {state}: {r:?}");
        assert!(aws.sent().is_empty(), "{op:?} {fault:?}: nothing sent");
        match expected {
            Outcome::Rejected => {
                assert!(!r[0].comes_back);
                assert_eq!(aws.dead_letters().len(), 1, "{op:?} {fault:?}");
                assert_eq!(aws.dead_letters()[0].reason, r[0].reason);
            }
            _ => {
                assert!(r[0].comes_back, "{op:?} {fault:?}: SQS delivers it again");
                assert!(aws.dead_letters().is_empty());
            }
        }
        assert!(!r[0].reason.is_empty(), "{op:?} {fault:?}: a reason");
    }
}

#[tokio::test]
async fn a_failed_visibility_change_still_brings_the_message_back() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::ChangeVisibility, Fault::ServerError, None);
    let r = worker_on(&aws, &faults)
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched);
    assert!(
        r[0].comes_back,
        "a batch item failure: it returns after the queue's visibility timeout"
    );
    assert!(aws.retries().is_empty());
}

/// A worker with `leave_unrecorded` on.
fn leaving_unrecorded(aws: &FakeAws) -> Worker {
    worker_with(aws, |_, settings| settings.leave_unrecorded = true)
}

#[tokio::test]
async fn with_leave_unrecorded_a_terminate_without_a_record_still_deletes_the_object() {
    let aws = world();
    now_in_state(&aws, LINUX, "terminated", Platform::Linux);
    let worker = leaving_unrecorded(&aws);
    let r = worker
        .handle_batch(&[message("t1", body(MEMBER, LINUX, "terminated"))])
        .await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Leave, Outcome::Dispatched),
        "{r:?}"
    );
    assert_eq!(aws.sent()[0].request.target.as_str(), TOOLS);
    assert_eq!(
        aws.record(LINUX).expect("recorded").status,
        JoinStatus::Leaving
    );
}

// ---- authentic terminates: the ledger's account and Region, its computer name ----

fn body_in(account: &str, region: &str, instance: &str, state: &str) -> String {
    let mut event: serde_json::Value =
        serde_json::from_str(&body(account, instance, state)).expect("json");
    event["region"] = serde_json::Value::from(region);
    event.to_string()
}

#[tokio::test]
async fn a_terminate_naming_a_joined_instance_in_another_region_deletes_nothing_and_keeps_its_rejoin()
 {
    let aws = world();
    joined(&aws, LINUX);
    let before = aws.record(LINUX).expect("joined");
    // EC2 in us-east-1 does not know the instance: today that alone was a leave.
    let r = run(
        &aws,
        &[message(
            "forged",
            body_in(MEMBER, "us-east-1", LINUX, "terminated"),
        )],
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(
        &r[0],
        &format!("ledger records the instance in account {MEMBER} {REGION}"),
    );
    assert!(aws.sent().is_empty(), "no leave command");
    assert_eq!(aws.record(LINUX), Some(before), "the ledger is unchanged");
    assert_eq!(aws.dead_letters().len(), 1);
    assert_eq!(aws.dead_letters()[0].reason, r[0].reason);
}

#[tokio::test]
async fn a_terminate_naming_a_joined_instance_in_another_configured_account_deletes_nothing() {
    const OTHER: &str = "444455556666";
    let aws = world();
    let mut item = member_item();
    item.insert("accountId".into(), json!(OTHER));
    item.insert(
        "assumeRoleARN".into(),
        json!(format!("arn:aws:iam::{OTHER}:role/adjoin-member")),
    );
    aws.put_config(&account(OTHER), item);
    joined(&aws, LINUX);
    let r = run(&aws, &[message("forged", body(OTHER, LINUX, "terminated"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], MEMBER);
    assert!(aws.sent().is_empty());
    assert_eq!(aws.record(LINUX).expect("kept").status, JoinStatus::Joined);
}

#[tokio::test]
async fn a_forged_terminate_for_an_instance_unknown_everywhere_records_nothing_so_its_join_goes_on()
{
    let aws = world();
    // Names the real Linux instance, but in another Region where EC2 does not know it,
    // before its running event was handled.
    let r = run(
        &aws,
        &[message(
            "forged",
            body_in(MEMBER, "us-east-1", LINUX, "terminated"),
        )],
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
    assert_reason(&r[0], "nothing to delete");
    assert!(
        aws.record(LINUX).is_none(),
        "no tombstone to block the join"
    );
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
}

#[tokio::test]
async fn a_leave_deletes_the_computer_name_the_ledger_recorded() {
    let aws = world();
    terminated_after_join(&aws);
    let mut record = aws.record(LINUX).expect("joined");
    record.computer_name = "WEB-0AAAAAAAA1".into();
    aws.put_record(record);
    // The account's prefix changed since the join: a recomputed name would differ.
    let mut item = member_item();
    item.insert("computerNamePrefix".into(), json!("APP"));
    aws.put_config(&account(MEMBER), item);
    let r = run(&aws, &[message("t1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    let params: BTreeMap<_, _> = decode_params(&aws.sent()[0].request.commands)
        .into_iter()
        .collect();
    assert_eq!(params["COMPUTER_NAME"], "WEB-0AAAAAAAA1");
    assert_eq!(
        aws.record(LINUX).expect("left").computer_name,
        "WEB-0AAAAAAAA1"
    );
}

#[tokio::test]
async fn an_instance_opted_out_after_its_join_is_still_left() {
    let aws = world();
    put_member(
        &aws,
        instance(
            LINUX,
            "terminated",
            Platform::Linux,
            &[("autoadjoin", "false")],
        ),
    );
    joined(&aws, LINUX);
    let r = run(&aws, &[message("t1", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Leave, Outcome::Dispatched),
        "{r:?}"
    );
    assert_eq!(aws.sent()[0].request.target.as_str(), TOOLS);
    assert_eq!(
        aws.record(LINUX).expect("leaving").status,
        JoinStatus::Leaving
    );
}

#[tokio::test]
async fn with_leave_unrecorded_not_found_alone_deletes_nothing() {
    let aws = world();
    let worker = leaving_unrecorded(&aws);
    // EC2 does not know i-0f… in this account and Region: it may live elsewhere.
    let r = worker
        .handle_batch(&[message(
            "t1",
            body(MEMBER, "i-0fffffffffffffff6", "terminated"),
        )])
        .await;
    assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
    assert!(aws.sent().is_empty());
    assert!(aws.record("i-0fffffffffffffff6").is_none());
}

// ---- no outside input can crash the worker ----

#[tokio::test]
async fn an_event_id_of_multibyte_characters_is_refused_not_a_panic() {
    let aws = world();
    let mut event: serde_json::Value =
        serde_json::from_str(&body(MEMBER, LINUX, "running")).expect("json");
    event["id"] = json!("é".repeat(40));
    let r = run(
        &aws,
        &[
            message("long", event.to_string()),
            message("ok", body(MEMBER, WINDOWS, "running")),
        ],
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], "event id");
    assert_eq!(r[1].outcome, Outcome::Dispatched, "{r:?}");
}

/// Unicode of any kind, including characters of several bytes and controls.
fn outside_text() -> impl proptest::strategy::Strategy<Value = String> {
    use proptest::prelude::*;
    prop_oneof![
        any::<String>(),
        "\\PC{0,80}",
        Just("é".repeat(40)),
        Just("日本語".repeat(30)),
        Just("$(reboot)'\"`;\n\r\u{0}".to_owned()),
    ]
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(64))]
    /// Every outside field of the event, the config item and the tags, one at a time,
    /// set to arbitrary unicode: every message still gets exactly one report, and the
    /// others of the batch are not disturbed.
    #[test]
    fn arbitrary_unicode_in_any_outside_field_leaves_every_message_one_outcome(
        place in 0usize..22,
        value in outside_text(),
    ) {
        let aws = world();
        let mut event: serde_json::Value =
            serde_json::from_str(&body(MEMBER, LINUX, "running")).expect("json");
        let mut item = member_item();
        let mut tags: Vec<(String, String)> = vec![("adGroupName".into(), "linux-admins".into())];
        let config_fields = [
            "accountId", "adJoinUserName", "adJoinUserPwParam", "dnsName", "dnsIP1", "dnsIP2",
            "assumeRoleARN", "externalId", "ouPath", "computerNamePrefix", "secretArn",
            "toolsHostTag", "commandLogGroup", "commandOutputBucket",
        ];
        match place {
            0 => event["id"] = json!(value),
            1 => event["time"] = json!(value),
            2 => event["region"] = json!(value),
            3 => event["detail"]["state"] = json!(value),
            4 => event["resources"] = json!([value]),
            5 => tags.push(("adGroupName".into(), value)),
            6 => tags.push((value, "x".into())),
            7 => tags.push(("autoadjoin".into(), value)),
            n => {
                let field = config_fields.get(n - 8).copied().unwrap_or("ouPath");
                item.insert(field.into(), json!(value));
            }
        }
        aws.put_config(&account(MEMBER), item);
        let tags: Vec<(&str, &str)> = tags.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        put_member(&aws, instance(LINUX, "running", Platform::Linux, &tags));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let messages = [
            message("hostile", event.to_string()),
            message("other", body(MEMBER, WINDOWS, "terminated")),
            message("bad", "{".to_owned()),
        ];
        let reports = runtime.block_on(run(&aws, &messages));
        proptest::prop_assert_eq!(reports.len(), 3);
        for (report, message) in reports.iter().zip(&messages) {
            proptest::prop_assert_eq!(&report.message_id, &message.message_id);
        }
        proptest::prop_assert_eq!(reports[2].outcome, Outcome::Rejected);
        // Whatever happened, a rejection is on the DLQ with its reason.
        let rejected = reports.iter().filter(|r| r.outcome == Outcome::Rejected).count();
        proptest::prop_assert_eq!(aws.dead_letters().len(), rejected);
    }
}

#[tokio::test]
async fn a_leave_names_the_owner_stamp_of_the_instances_own_region() {
    let aws = world();
    let east = Region::parse("us-east-1").expect("valid");
    aws.put_instance(
        &account(MEMBER),
        &east,
        instance(LINUX, "terminated", Platform::Linux, &[]),
    );
    joined(&aws, LINUX);
    let mut record = aws.record(LINUX).expect("joined");
    record.region = "us-east-1".into();
    aws.put_record(record);
    let r = run(
        &aws,
        &[message(
            "t1",
            body_in(MEMBER, "us-east-1", LINUX, "terminated"),
        )],
    )
    .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    let sent = aws.sent();
    assert_eq!(sent[0].account, account(HOME), "the tools host is at home");
    let params: BTreeMap<_, _> = decode_params(&sent[0].request.commands)
        .into_iter()
        .collect();
    assert_eq!(
        params["OWNER_STAMP"],
        format!("adjoin {MEMBER} us-east-1 {LINUX}")
    );
}

/// The report's reason says `expected`.
#[track_caller]
fn assert_reason(report: &Report, expected: &str) {
    assert!(
        report.reason.contains(expected),
        "{expected:?} is not in the reason {:?}",
        report.reason
    );
}

// ---- verified leaves ----

#[tokio::test]
async fn a_failing_leave_is_retried_then_recorded_leave_failed_with_its_output() {
    let aws = world();
    terminated_after_join(&aws);
    let m = message("t1", body(MEMBER, LINUX, "terminated"));
    let returns =
        fail_every_attempt(&aws, &m, "attempt {}\nadjoin: error: cannot reach the DC").await;
    for (attempt, (r, record)) in (1..).zip(&returns) {
        if attempt < 3 {
            assert_eq!(
                (record.status, record.attempts, record.exit_code),
                (JoinStatus::Leaving, attempt + 1, Some(13))
            );
        } else {
            assert_reason(&r[0], "leave of");
            assert_reason(&r[0], "failed after 3 attempt(s)");
            assert_eq!(
                (record.status, record.exit_code),
                (JoinStatus::LeaveFailed, Some(13))
            );
            assert_eq!(
                aws.dead_letters()[0].reason,
                r[0].reason,
                "the DLQ has the same reason"
            );
        }
    }
    assert_eq!(aws.sent().len(), 3, "three leave commands, then it gave up");
    // The message redriven from the DLQ (a new delivery) tries again.
    let redriven = run(&aws, &[message("t9", body(MEMBER, LINUX, "terminated"))]).await;
    assert_eq!(redriven[0].outcome, Outcome::Dispatched, "{redriven:?}");
}

#[tokio::test]
async fn a_leave_that_finds_an_object_not_ours_is_rejected_at_once_and_not_retried() {
    let aws = world();
    terminated_after_join(&aws);
    let m = message("t1", body(MEMBER, LINUX, "terminated"));
    run(&aws, std::slice::from_ref(&m)).await;
    aws.set_result(
        "fake-command-1",
        failed_result(
            15,
            "adjoin: error: not ours: computer I0AAA was not deleted",
        ),
    );
    let r = run(&aws, std::slice::from_ref(&m)).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], "not this instance's");
    assert_eq!(
        aws.record(LINUX).expect("recorded").status,
        JoinStatus::LeaveFailed
    );
    assert_eq!(
        aws.sent().len(),
        1,
        "no retry: the object stays someone else's"
    );
}

#[tokio::test]
async fn a_leave_still_running_is_read_again_later() {
    let aws = world();
    terminated_after_join(&aws);
    let m = message("t1", body(MEMBER, LINUX, "terminated"));
    run(&aws, std::slice::from_ref(&m)).await;
    aws.set_result(
        "fake-command-1",
        crate::ports::CommandResult {
            status: CommandStatus::InProgress,
            exit_code: None,
            stdout: String::new(),
            stderr: String::new(),
        },
    );
    let r = run(&aws, std::slice::from_ref(&m)).await;
    assert_eq!(r[0].outcome, Outcome::Deferred, "{r:?}");
    assert_eq!(
        aws.record(LINUX).expect("recorded").status,
        JoinStatus::Leaving
    );
}

// ---- login groups: the account decides what a tag may name ----

#[tokio::test]
async fn a_tag_naming_domain_admins_is_refused_unless_the_account_allows_it() {
    let aws = world();
    put_member(
        &aws,
        instance(
            LINUX,
            "running",
            Platform::Linux,
            &[("adGroupName", "Domain Admins")],
        ),
    );
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Join, Outcome::Rejected),
        "{r:?}"
    );
    assert_reason(&r[0], "privileged");
    assert!(aws.sent().is_empty());
    // The account lists its login groups: a group outside the list is refused…
    let mut item = member_item();
    item.insert("allowedLoginGroups".into(), json!(["linux-admins"]));
    aws.put_config(&account(MEMBER), item.clone());
    let r = run(&aws, &[message("m2", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], "allowedLoginGroups");
    // …and one on it is joined, privileged or not.
    item.insert(
        "allowedLoginGroups".into(),
        json!(["linux-admins", "Domain Admins"]),
    );
    aws.put_config(&account(MEMBER), item);
    let r = run(&aws, &[message("m3", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
}

#[tokio::test]
async fn an_operator_may_join_an_opted_out_instance_and_the_service_never_does() {
    let aws = world();
    put_member(
        &aws,
        instance(
            LINUX,
            "running",
            Platform::Linux,
            &[("autoadjoin", "false")],
        ),
    );
    let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
    assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
    let operator = worker_with(&aws, |_, settings| settings.ignore_opt_out = true);
    let r = operator
        .handle_batch(&[message("m2", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    assert_eq!(aws.sent().len(), 1);
}

/// Sends `m`, then makes each of its three commands fail with exit code 13 and
/// `output` (`{}` there: the attempt's number), delivering `m` again after each. The
/// first two returns dispatch the next attempt, the third is rejected to the DLQ;
/// returns each return's reports and the record after it.
async fn fail_every_attempt(
    aws: &FakeAws,
    m: &Message,
    output: &str,
) -> Vec<(Vec<Report>, JoinRecord)> {
    run(aws, std::slice::from_ref(m)).await;
    let mut returns = Vec::new();
    for attempt in 1..=3u32 {
        aws.set_result(
            &format!("fake-command-{attempt}"),
            failed_result(13, &output.replace("{}", &attempt.to_string())),
        );
        let r = run(aws, std::slice::from_ref(m)).await;
        let expected = if attempt < 3 {
            (Action::Verify, Outcome::Dispatched)
        } else {
            (r[0].action, Outcome::Rejected)
        };
        assert_eq!(
            (r[0].action, r[0].outcome),
            expected,
            "attempt {attempt}: {r:?}"
        );
        returns.push((r, aws.record(LINUX).expect("recorded")));
    }
    returns
}

// ---- the ready signal ----

#[tokio::test]
async fn a_verified_join_tags_the_instance_with_its_domain() {
    let aws = world();
    let m = message("m1", body(MEMBER, LINUX, "running"));
    run(&aws, std::slice::from_ref(&m)).await;
    assert!(
        !aws.tags_of(&account(MEMBER), &region(), LINUX)
            .contains_key("adjoin:joined"),
        "not before the join is verified"
    );
    let r = run(&aws, std::slice::from_ref(&m)).await;
    assert_eq!(r[0].outcome, Outcome::Verified, "{r:?}");
    assert_eq!(
        aws.tags_of(&account(MEMBER), &region(), LINUX)
            .get("adjoin:joined")
            .map(String::as_str),
        Some("example.test")
    );
    assert_reason(&r[0], "tagged adjoin:joined=example.test");
}

#[tokio::test]
async fn a_ready_tag_that_cannot_be_set_does_not_undo_the_join() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::TagInstance, Fault::AccessDenied, None);
    let m = message("m1", body(MEMBER, LINUX, "running"));
    worker_on(&aws, &faults)
        .handle_batch(std::slice::from_ref(&m))
        .await;
    let r = worker_on(&aws, &faults)
        .handle_batch(std::slice::from_ref(&m))
        .await;
    assert_eq!(r[0].outcome, Outcome::Verified, "{r:?}");
    assert_reason(&r[0], "could not be set");
    assert_eq!(
        aws.record(LINUX).expect("joined").status,
        JoinStatus::Joined
    );
}

// ---- exactly one command per attempt ----

#[tokio::test]
async fn a_send_whose_answer_is_lost_is_found_not_sent_again() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::LostAnswer, Some(1));
    let m = message("m1", body(MEMBER, LINUX, "running"));
    let r = worker_on(&aws, &faults)
        .handle_batch(std::slice::from_ref(&m))
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    assert_reason(&r[0], "answer was lost");
    assert_eq!(aws.sent().len(), 1, "the command took effect once");
    assert_eq!(
        aws.record(LINUX).expect("recorded").command_id.as_deref(),
        Some("fake-command-1")
    );
}

#[tokio::test]
async fn a_lost_answer_that_cannot_be_looked_up_yet_is_looked_up_on_the_next_delivery() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::LostAnswer, Some(1));
    faults.inject(Op::FindCommand, Fault::ServerError, Some(1));
    let m = message("m1", body(MEMBER, LINUX, "running"));
    let r = worker_on(&aws, &faults)
        .handle_batch(std::slice::from_ref(&m))
        .await;
    assert_eq!(r[0].outcome, Outcome::Failed, "{r:?}");
    let claimed = aws.record(LINUX).expect("claimed");
    assert_eq!(
        (claimed.status, claimed.command_id.as_deref()),
        (JoinStatus::Joining, None)
    );
    // The same message again: it finds the command instead of sending a second one.
    let r = worker_on(&aws, &faults)
        .handle_batch(std::slice::from_ref(&m))
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    assert_reason(&r[0], "an earlier delivery sent");
    assert_eq!(aws.sent().len(), 1, "one join command for the attempt");
}

#[tokio::test]
async fn a_send_that_failed_before_ssm_acted_is_sent_again_once() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::ServerError, Some(1));
    let m = message("m1", body(MEMBER, LINUX, "running"));
    let r = worker_on(&aws, &faults)
        .handle_batch(std::slice::from_ref(&m))
        .await;
    assert_eq!(r[0].outcome, Outcome::Failed, "{r:?}");
    assert!(aws.sent().is_empty());
    let r = worker_on(&aws, &faults)
        .handle_batch(std::slice::from_ref(&m))
        .await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    assert_eq!(aws.sent().len(), 1);
}

#[tokio::test]
async fn a_login_group_changed_while_a_join_is_retried_is_checked_again() {
    let aws = world();
    let m = message("m1", body(MEMBER, LINUX, "running"));
    run(&aws, std::slice::from_ref(&m)).await;
    // The first attempt fails; meanwhile the tag names a privileged group.
    aws.set_result(
        "fake-command-1",
        failed_result(13, "adcli: cannot reach the domain"),
    );
    put_member(
        &aws,
        instance(
            LINUX,
            "running",
            Platform::Linux,
            &[("adGroupName", "Domain Admins")],
        ),
    );
    let r = run(&aws, std::slice::from_ref(&m)).await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], "not retried");
    assert_reason(&r[0], "privileged");
    assert_eq!(aws.sent().len(), 1, "no second attempt with the new group");
    assert_eq!(
        aws.record(LINUX).expect("recorded").status,
        JoinStatus::Failed
    );
}

/// A clock that reads a fixed time.
struct FixedClock(SystemTime);

impl crate::ports::Clock for FixedClock {
    fn now(&self) -> SystemTime {
        self.0
    }
}

#[tokio::test]
async fn the_worker_reads_the_time_from_its_clock() {
    let aws = world();
    let faults = Faults::default();
    faults.inject(Op::SendCommand, Fault::Throttle, None);
    // Three hours after the event, by the worker's clock: a throttled send is given up.
    let later = SystemTime::now() + Duration::from_secs(3 * 3600);
    let worker = worker_on(&aws, &faults).with_clock(Arc::new(FixedClock(later)));
    let r = worker
        .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
        .await;
    assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
    assert_reason(&r[0], "gave up: the event is");
    let record = aws.record(LINUX).expect("claimed");
    assert_eq!(
        record.updated_at,
        ledger::format_time(later),
        "stamped by the clock"
    );
}

/// Staged joins: the AD tools host creates the account with a one-time password, then
/// the instance joins with that password alone.
mod staged {
    use super::*;
    use crate::fake::StoredParameter;
    use crate::ports::CommandResult;

    /// The world with the member account in the default (staged) join mode.
    fn staged_world() -> FakeAws {
        crate::testing::world()
    }

    const OTP_PARAMETER: &str = "/adjoin/otp/i-0aaaaaaaaaaaaaaa1";

    /// The computer name of [`LINUX`].
    fn name() -> String {
        crate::computer_name::computer_name(&InstanceId::parse(LINUX).expect("valid"), None)
    }

    fn tools_parameter() -> String {
        format!("/adjoin/stage/{MEMBER}/{REGION}/{LINUX}")
    }

    fn parameter(aws: &FakeAws, name: &str) -> Option<StoredParameter> {
        aws.parameters().into_iter().find(|p| p.name == name)
    }

    fn failed(exit_code: i32, stderr: &str) -> CommandResult {
        CommandResult {
            status: CommandStatus::Failed("Failed".into()),
            exit_code: Some(exit_code),
            stdout: String::new(),
            stderr: stderr.into(),
        }
    }

    /// Everything the service wrote or sent, but Parameter Store: commands, ledger, DLQ,
    /// reports.
    fn everything_but_parameters(aws: &FakeAws, reports: &[Report]) -> String {
        format!(
            "{:?}\n{:?}\n{:?}\n{}",
            aws.sent(),
            aws.record(LINUX),
            aws.dead_letters(),
            serde_json::to_string(reports).expect("json")
        )
    }

    #[tokio::test]
    async fn a_running_event_stages_on_the_tools_host_then_joins_with_the_one_time_password() {
        let aws = staged_world();
        let m = message("m1", body(MEMBER, LINUX, "running"));

        // 1. The stage command goes to the tools host, in the service's account.
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        assert_reason(&r[0], "stage attempt 1 sent to the AD tools host");
        let sent = aws.sent();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].account.as_str(), HOME);
        assert_eq!(sent[0].request.target.as_str(), TOOLS);
        assert!(
            sent[0]
                .request
                .comment
                .starts_with(&format!("adjoin stage {LINUX}"))
        );
        let record = aws.record(LINUX).expect("record");
        assert_eq!(record.status, JoinStatus::Staging);
        assert_eq!(record.command_target.as_deref(), Some(TOOLS));
        // One fresh password, twice: the instance's copy (its account and Region, tagged
        // with its ARN) and the tools host's (the service's account).
        let mine = parameter(&aws, OTP_PARAMETER).expect("the instance's copy");
        assert_eq!(mine.account.as_str(), MEMBER);
        assert_eq!(
            mine.tags,
            vec![(
                "adjoin:instance".to_owned(),
                format!("arn:aws:ec2:{REGION}:{MEMBER}:instance/{LINUX}")
            )]
        );
        let tools = parameter(&aws, &tools_parameter()).expect("the tools host's copy");
        assert_eq!(tools.account.as_str(), HOME);
        assert_eq!(tools.value, mine.value);
        assert!(mine.expires_at > SystemTime::now(), "it expires on its own");
        let stage_params = decode_params(&sent[0].request.commands);
        assert!(
            stage_params
                .iter()
                .any(|(k, v)| k == "OTP_SSM_PARAMETER" && *v == tools_parameter())
        );

        // 2. The message comes back: staged, so the join goes to the instance.
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        assert_reason(&r[0], "staged");
        let sent = aws.sent();
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[1].account.as_str(), MEMBER);
        assert_eq!(sent[1].request.target.as_str(), LINUX);
        let join = decode_params(&sent[1].request.commands);
        assert!(
            join.iter()
                .any(|(k, v)| k == "OTP_SSM_PARAMETER" && v == OTP_PARAMETER)
        );
        assert!(
            !join
                .iter()
                .any(|(k, _)| k.starts_with("PASSWORD") || k == "JOIN_USER")
        );
        assert_eq!(
            aws.record(LINUX).expect("record").status,
            JoinStatus::Joining
        );

        // 3. And again: joined, tagged, and no copy of the password is left.
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(r[0].outcome, Outcome::Verified, "{r:?}");
        assert_reason(&r[0], "one-time password deleted");
        assert_eq!(
            aws.record(LINUX).expect("record").status,
            JoinStatus::Joined
        );
        assert!(aws.parameters().is_empty(), "{:?}", aws.parameters());
        assert!(aws.dead_letters().is_empty());
    }

    #[tokio::test]
    async fn the_one_time_password_is_only_ever_in_parameter_store() {
        let aws = staged_world();
        let m = message("m1", body(MEMBER, LINUX, "running"));
        let mut reports = Vec::new();
        for _ in 0..3 {
            reports.extend(run(&aws, std::slice::from_ref(&m)).await);
        }
        let written = aws.parameter_writes();
        assert_eq!(written.len(), 2);
        let text = everything_but_parameters(&aws, &reports);
        assert!(
            !text.contains(&written[0].value),
            "the one-time password leaked"
        );
        assert!(!format!("{:?}", aws.parameters()).is_empty());
    }

    #[tokio::test]
    async fn a_failed_stage_is_staged_again_with_a_new_password_then_given_up_and_cleared() {
        let aws = staged_world();
        let m = message("m1", body(MEMBER, LINUX, "running"));
        let mut last = Vec::new();
        for attempt in 1..=3 {
            last = run(&aws, std::slice::from_ref(&m)).await;
            if attempt > 1 {
                assert_reason(&last[0], "exit code 14");
            }
            let sent = aws.sent();
            let stage = sent.last().expect("a stage command");
            assert!(stage.request.comment.starts_with("adjoin stage"));
            aws.set_result(&stage.command_id, failed(14, "adjoin: error: cannot stage"));
        }
        assert_eq!(last[0].outcome, Outcome::Dispatched);
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
        assert_reason(
            &r[0],
            &format!("staging of {} failed after 3 attempt(s)", name()),
        );
        let writes = aws.parameter_writes();
        let values: std::collections::BTreeSet<_> = writes.iter().map(|p| &p.value).collect();
        assert_eq!(values.len(), 3, "a new password for every attempt");
        // Nothing left that a password could open, nor a password.
        assert!(aws.parameters().is_empty(), "{:?}", aws.parameters());
        let leave = aws.sent().into_iter().last().expect("a leave");
        assert!(
            leave.request.comment.starts_with("adjoin leave"),
            "{leave:?}"
        );
        assert_eq!(leave.request.target.as_str(), TOOLS);
        assert_eq!(
            aws.record(LINUX).expect("record").status,
            JoinStatus::Failed
        );
        assert_eq!(aws.dead_letters().len(), 1);
    }

    #[tokio::test]
    async fn someone_elses_object_is_not_taken_over_not_retried_and_not_deleted() {
        let aws = staged_world();
        let m = message("m1", body(MEMBER, LINUX, "running"));
        run(&aws, std::slice::from_ref(&m)).await;
        let stage = aws.sent().pop().expect("stage");
        aws.set_result(
            &stage.command_id,
            failed(19, "adjoin: error: not taken over"),
        );
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
        assert_reason(&r[0], "not taken over");
        assert_eq!(aws.sent().len(), 1, "neither staged again nor deleted");
        assert!(aws.parameters().is_empty());
    }

    #[tokio::test]
    async fn a_join_that_fails_every_attempt_is_staged_afresh_each_time_and_its_account_removed() {
        let aws = staged_world();
        let m = message("m1", body(MEMBER, LINUX, "running"));
        let mut joins = 0;
        for _ in 0..10 {
            let r = run(&aws, std::slice::from_ref(&m)).await;
            if r[0].outcome == Outcome::Rejected {
                assert_reason(
                    &r[0],
                    &format!("join of {} failed after 3 attempt(s)", name()),
                );
                assert_reason(
                    &r[0],
                    &format!("staged account {} removed by command", name()),
                );
                break;
            }
            let last = aws.sent().pop().expect("sent");
            if last.request.comment.starts_with("adjoin join") {
                joins += 1;
                aws.set_result(&last.command_id, failed(14, "adjoin: error: refused"));
            }
        }
        assert_eq!(joins, 3);
        let stages = aws
            .sent()
            .iter()
            .filter(|c| c.request.comment.starts_with("adjoin stage"))
            .count();
        assert_eq!(stages, 3, "each attempt is staged with its own password");
        assert!(aws.parameters().is_empty());
        assert_eq!(
            aws.record(LINUX).expect("record").status,
            JoinStatus::Failed
        );
    }

    #[tokio::test]
    async fn a_stage_send_whose_answer_is_lost_is_found_not_sent_again() {
        let aws = staged_world();
        let faults = Faults::default();
        faults.inject(Op::SendCommand, Fault::LostAnswer, Some(1));
        let m = message("m1", body(MEMBER, LINUX, "running"));
        let r = worker_on(&aws, &faults)
            .handle_batch(std::slice::from_ref(&m))
            .await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        assert_reason(&r[0], "was sent");
        assert_eq!(aws.sent().len(), 1);
        let record = aws.record(LINUX).expect("record");
        assert_eq!(
            record.command_id.as_deref(),
            Some(aws.sent()[0].command_id.as_str())
        );
    }

    #[tokio::test]
    async fn parameter_store_failures_send_nothing_and_leave_no_password() {
        let aws = staged_world();
        let faults = Faults::default();
        // The instance's copy is written, the tools host's is refused.
        faults.inject(Op::PutParameter, Fault::ServerError, None);
        let m = message("m1", body(MEMBER, LINUX, "running"));
        let r = worker_on(&aws, &faults)
            .handle_batch(std::slice::from_ref(&m))
            .await;
        assert_eq!(r[0].outcome, Outcome::Failed, "{r:?}");
        assert!(aws.sent().is_empty());
        assert!(aws.parameters().is_empty());
    }

    #[tokio::test]
    async fn a_terminate_while_staging_removes_the_staged_account() {
        let aws = staged_world();
        run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
        now_in_state(&aws, LINUX, "terminated", Platform::Linux);
        let r = run(&aws, &[message("m2", body(MEMBER, LINUX, "terminated"))]).await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        let leave = aws.sent().pop().expect("leave");
        assert!(
            leave
                .request
                .comment
                .starts_with(&format!("adjoin leave {LINUX}"))
        );
    }

    #[tokio::test]
    async fn a_dry_run_shows_the_stage_command_and_writes_no_password() {
        let aws = staged_world();
        let worker = worker_on(&aws, &Faults::default()).with(|s| s.dry_run = true);
        let r = worker
            .handle_batch(&[message("m1", body(MEMBER, LINUX, "running"))])
            .await;
        assert_eq!(r[0].outcome, Outcome::Planned, "{r:?}");
        assert!(aws.parameter_writes().is_empty() && aws.sent().is_empty());
    }
}

/// Tag changes ("Tag Change on Resource"): a joined instance gets its configuration
/// written again without a new join; a running instance not joined yet is joined.
mod tag_changes {
    use super::*;

    fn tag_change(instance: &str, keys: &[&str]) -> String {
        json!({
            "version": "0", "id": format!("tags-{instance}"), "detail-type": "Tag Change on Resource",
            "source": "aws.tag", "account": MEMBER, "time": ledger::format_time(SystemTime::now()),
            "region": REGION,
            "resources": [format!("arn:aws:ec2:{REGION}:{MEMBER}:instance/{instance}")],
            "detail": {"changed-tag-keys": keys, "service": "ec2", "resource-type": "instance", "version": 2}
        })
        .to_string()
    }

    #[tokio::test]
    async fn a_joined_instances_new_login_groups_are_written_without_a_new_join() {
        let aws = crate::testing::world(); // staged joins
        joined(&aws, LINUX);
        put_member(
            &aws,
            instance(
                LINUX,
                "running",
                Platform::Linux,
                &[("adGroupName", "linux-admins, web")],
            ),
        );
        let m = message("t1", tag_change(LINUX, &["adGroupName"]));
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(
            (r[0].action, r[0].outcome),
            (Action::Join, Outcome::Dispatched),
            "{r:?}"
        );
        assert_reason(&r[0], "tags changed on the joined instance");
        let sent = aws.sent();
        assert_eq!(
            sent.len(),
            1,
            "the join command only: no stage, no new password"
        );
        assert_eq!(sent[0].request.target.as_str(), LINUX);
        assert!(aws.parameter_writes().is_empty());
        let params: BTreeMap<_, _> = decode_params(&sent[0].request.commands)
            .into_iter()
            .collect();
        assert_eq!(params["ALLOWED_GROUP"], "linux-admins,web");
        // Its result is read like a join's.
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(r[0].outcome, Outcome::Verified, "{r:?}");
        assert_eq!(
            aws.record(LINUX).expect("record").status,
            JoinStatus::Joined
        );
        // The same message again: done.
        let r = run(&aws, std::slice::from_ref(&m)).await;
        assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
        assert_eq!(aws.sent().len(), 1);
    }

    #[tokio::test]
    async fn removing_the_opt_out_from_a_running_instance_joins_it() {
        let aws = crate::testing::world();
        let r = run(&aws, &[message("t1", tag_change(LINUX, &["autoadjoin"]))]).await;
        assert_eq!(
            (r[0].action, r[0].outcome),
            (Action::Join, Outcome::Dispatched),
            "{r:?}"
        );
        assert_reason(&r[0], "stage attempt 1 sent");
        assert_eq!(
            aws.record(LINUX).expect("record").status,
            JoinStatus::Staging
        );
    }

    #[tokio::test]
    async fn other_tags_opted_out_and_refused_groups_change_nothing() {
        let aws = crate::testing::world();
        joined(&aws, LINUX);
        let r = run(
            &aws,
            &[message("t1", tag_change(LINUX, &["Name", "CostCenter"]))],
        )
        .await;
        assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
        assert_reason(&r[0], "no tag adjoin reads changed (Name, CostCenter)");
        put_member(
            &aws,
            instance(
                LINUX,
                "running",
                Platform::Linux,
                &[("autoadjoin", "false")],
            ),
        );
        let r = run(&aws, &[message("t2", tag_change(LINUX, &["autoadjoin"]))]).await;
        assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
        put_member(
            &aws,
            instance(
                LINUX,
                "running",
                Platform::Linux,
                &[("adGroupName", "Domain Admins")],
            ),
        );
        let r = run(&aws, &[message("t3", tag_change(LINUX, &["adGroupName"]))]).await;
        assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
        assert!(aws.sent().is_empty());
        assert_eq!(
            aws.record(LINUX).expect("record").status,
            JoinStatus::Joined
        );
    }
}

/// Several AD tools hosts, failover, and a host pinned by id.
mod tools_hosts {
    use super::*;
    use crate::admin::fake::online;

    const LOWER: &str = "i-0000000000000000a";

    fn tools_host(aws: &FakeAws, id: &str, ping: &str) {
        let tag = crate::testing::tools_tag();
        aws.put_instance(
            &account(HOME),
            &region(),
            instance(id, "running", Platform::Linux, &[(&tag.key, &tag.value)]),
        );
        let mut agent = online("Linux");
        agent.ping_status = ping.into();
        aws.put_agent(
            &account(HOME),
            &region(),
            &InstanceId::parse(id).expect("id"),
            agent,
        );
    }

    /// The host a terminated event's leave goes to.
    async fn leave_target(aws: &FakeAws) -> String {
        terminated_after_join(aws);
        let r = run(aws, &[message("m1", body(MEMBER, LINUX, "terminated"))]).await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        aws.sent().last().expect("sent").request.target.to_string()
    }

    #[tokio::test]
    async fn a_host_whose_agent_is_online_is_chosen_over_one_of_lower_id() {
        let aws = world();
        tools_host(&aws, LOWER, "ConnectionLost");
        assert_eq!(leave_target(&aws).await, TOOLS);
    }

    #[tokio::test]
    async fn without_agent_status_a_host_that_cannot_take_the_command_is_passed_over() {
        let aws = world();
        tools_host(&aws, LOWER, "ConnectionLost");
        let faults = Faults::default();
        faults.inject(Op::AgentsOnline, Fault::AccessDenied, None);
        terminated_after_join(&aws);
        let r = worker_on(&aws, &faults)
            .handle_batch(&[message("m1", body(MEMBER, LINUX, "terminated"))])
            .await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        assert_eq!(
            aws.sent().last().expect("sent").request.target.as_str(),
            TOOLS
        );
        assert_eq!(
            aws.record(LINUX).expect("record").command_target.as_deref(),
            Some(TOOLS)
        );
    }

    #[tokio::test]
    async fn when_no_host_can_take_the_command_the_message_says_which_were_tried() {
        let aws = world();
        tools_host(&aws, LOWER, "ConnectionLost");
        tools_host(&aws, TOOLS, "Inactive");
        terminated_after_join(&aws);
        let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "terminated"))]).await;
        assert_eq!(r[0].outcome, Outcome::Deferred, "{r:?}");
        assert_reason(
            &r[0],
            &format!(
                "no AD tools host could take the command (agent not registered or offline): {LOWER}, {TOOLS}"
            ),
        );
        assert!(aws.sent().is_empty());
    }

    #[tokio::test]
    async fn a_pinned_host_is_used_and_a_missing_one_is_named() {
        let aws = world();
        tools_host(&aws, LOWER, "Online");
        let mut item = shared_item();
        item.insert("toolsHostId".into(), json!(TOOLS));
        aws.put_config(&account(MEMBER), item.clone());
        assert_eq!(
            leave_target(&aws).await,
            TOOLS,
            "pinned, though {LOWER} has a lower id"
        );

        let aws = world();
        item.insert("toolsHostId".into(), json!("i-0999999999999999f"));
        aws.put_config(&account(MEMBER), item);
        terminated_after_join(&aws);
        let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "terminated"))]).await;
        assert_eq!(r[0].outcome, Outcome::Rejected, "{r:?}");
        assert_reason(
            &r[0],
            "the AD tools host i-0999999999999999f the config item pins (toolsHostId) is not in account",
        );
    }
}

/// Placement by tag: an OU and computer groups the account allows, and the leave in the
/// OU the ledger recorded.
mod placement_tags {
    use super::*;

    const GMSA_OU: &str = "OU=Gmsa Hosts,DC=example,DC=test";

    fn allowing() -> crate::config::ConfigItem {
        let mut item = member_item();
        item.insert("ouPath".into(), json!("OU=Servers,DC=example,DC=test"));
        item.insert("allowedOuPaths".into(), json!([GMSA_OU]));
        item.insert("allowedComputerGroups".into(), json!(["ecs-gmsa-readers"]));
        item
    }

    #[tokio::test]
    async fn an_allowed_ou_and_groups_are_used_and_the_leave_looks_there() {
        let aws = crate::testing::world();
        aws.put_config(&account(MEMBER), allowing());
        put_member(
            &aws,
            instance(
                LINUX,
                "running",
                Platform::Linux,
                &[
                    ("adOuPath", "ou=gmsa hosts,dc=example,dc=test"),
                    ("adComputerGroups", "ecs-gmsa-readers"),
                ],
            ),
        );
        let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        let stage: BTreeMap<_, _> = decode_params(&aws.sent()[0].request.commands)
            .into_iter()
            .collect();
        assert_eq!(stage["OU_PATH"], GMSA_OU);
        assert_eq!(stage["COMPUTER_GROUPS"], "ecs-gmsa-readers");
        assert_eq!(
            aws.record(LINUX).expect("record").ou_path.as_deref(),
            Some(GMSA_OU)
        );
        // Terminated: the leave requires the object in the OU the join placed it in.
        now_in_state(&aws, LINUX, "terminated", Platform::Linux);
        let r = run(&aws, &[message("m2", body(MEMBER, LINUX, "terminated"))]).await;
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
        let leave: BTreeMap<_, _> =
            decode_params(&aws.sent().last().expect("leave").request.commands)
                .into_iter()
                .collect();
        assert_eq!(leave["OU_PATH"], GMSA_OU);
    }

    #[tokio::test]
    async fn an_ou_or_group_the_account_does_not_allow_is_refused() {
        for tags in [
            [("adOuPath", "OU=Domain Controllers,DC=example,DC=test")],
            [("adComputerGroups", "Domain Admins")],
        ] {
            let aws = crate::testing::world();
            aws.put_config(&account(MEMBER), allowing());
            put_member(&aws, instance(LINUX, "running", Platform::Linux, &tags));
            let r = run(&aws, &[message("m1", body(MEMBER, LINUX, "running"))]).await;
            assert_eq!(r[0].outcome, Outcome::Rejected, "{tags:?}: {r:?}");
            assert_reason(&r[0], "is not in the account's allowed");
            assert!(aws.sent().is_empty());
        }
    }
}

// ---- gathering: one call per kind for a batch's instances ----

mod gathered {
    use super::*;
    use crate::admin::fake::online;
    use crate::fake::Calls;

    /// `n` running Linux instances in the member account, tagged alike.
    fn fleet(aws: &FakeAws, n: usize) -> Vec<String> {
        (0..n)
            .map(|k| {
                let id = format!("i-0aa{k:014x}");
                put_member(
                    aws,
                    instance(
                        &id,
                        "running",
                        Platform::Linux,
                        &[("adGroupName", "linux-admins")],
                    ),
                );
                id
            })
            .collect()
    }

    fn running(ids: &[String]) -> Vec<Message> {
        ids.iter()
            .enumerate()
            .map(|(k, id)| message(&format!("m{k}"), body(MEMBER, id, "running")))
            .collect()
    }

    fn since(aws: &FakeAws, before: Calls) -> Calls {
        let now = aws.calls();
        Calls {
            ledger_puts: now.ledger_puts - before.ledger_puts,
            ledger_transactions: now.ledger_transactions - before.ledger_transactions,
            sends: now.sends - before.sends,
            tags: now.tags - before.tags,
            deletes: now.deletes - before.deletes,
            summaries: now.summaries - before.summaries,
            results: now.results - before.results,
        }
    }

    #[tokio::test]
    async fn a_batch_of_joins_is_one_command_and_two_ledger_transactions_and_each_instance_gets_its_own_values()
     {
        let aws = world();
        let ids = fleet(&aws, 10);
        let batch = running(&ids);
        let r = run(&aws, &batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
        let calls = aws.calls();
        assert_eq!(
            (calls.sends, calls.ledger_transactions, calls.ledger_puts),
            (1, 2, 0),
            "one join command, the claims and the records each one transaction"
        );
        let sent = &aws.sent()[0];
        for id in &ids {
            assert!(sent.targets(&instance_id(id)), "{id} is a target");
            let record = aws.record(id).expect("recorded");
            assert_eq!(record.command_id.as_deref(), Some(sent.command_id.as_str()));
        }
        // The shared values once, each instance's own in its row of the table.
        let params: BTreeMap<_, _> = decode_params(&sent.request.commands).into_iter().collect();
        assert!(!params.contains_key("COMPUTER_NAME"), "{params:?}");
        let table = &params["INSTANCES"];
        assert_eq!(table.lines().count(), 10);
        for id in &ids {
            let name = crate::computer_name::computer_name(&instance_id(id), None);
            let row = table
                .lines()
                .find(|row| row.starts_with(&format!("{id} ")))
                .expect("a row per instance");
            let own = |key: &str| {
                row.split(' ')
                    .find_map(|pair| pair.strip_prefix(&format!("{key}=")))
                    .map(|v| String::from_utf8(base64_decode(v)).expect("utf-8"))
            };
            assert_eq!(own("COMPUTER_NAME").as_deref(), Some(name.as_str()));
            assert_eq!(own("INSTANCE_ID").as_deref(), Some(id.as_str()));
        }

        // Verification: one summary for the command, one transaction, one tag call.
        let before = aws.calls();
        let r = run(&aws, &batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Verified), "{r:?}");
        let calls = since(&aws, before);
        assert_eq!(
            (
                calls.summaries,
                calls.results,
                calls.ledger_transactions,
                calls.tags
            ),
            (1, 0, 1, 1),
            "{calls:?}"
        );
        for id in &ids {
            assert_eq!(aws.record(id).expect("joined").status, JoinStatus::Joined);
        }
    }

    fn instance_id(id: &str) -> InstanceId {
        InstanceId::parse(id).expect("id")
    }

    fn base64_decode(v: &str) -> Vec<u8> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD
            .decode(v)
            .expect("base64")
    }

    #[tokio::test]
    async fn a_command_that_did_not_succeed_everywhere_is_read_instance_by_instance() {
        let aws = world();
        let ids = fleet(&aws, 4);
        let batch = running(&ids);
        run(&aws, &batch).await;
        let command = aws.sent()[0].command_id.clone();
        aws.set_result(
            &command,
            crate::ports::CommandResult {
                status: CommandStatus::InProgress,
                exit_code: None,
                stdout: String::new(),
                stderr: String::new(),
            },
        );
        let before = aws.calls();
        let r = run(&aws, &batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Deferred), "{r:?}");
        let calls = since(&aws, before);
        assert_eq!((calls.summaries, calls.results), (1, 4), "{calls:?}");
    }

    /// A ledger on which another writer changes one record between the worker's read and
    /// its first write.
    struct RacedOnce {
        aws: FakeAws,
        instance: String,
        raced: std::sync::atomic::AtomicBool,
    }

    #[async_trait::async_trait]
    impl Ledger for RacedOnce {
        async fn get_many(&self, ids: &[InstanceId]) -> Result<Vec<JoinRecord>, Error> {
            self.aws.get_many(ids).await
        }
        async fn put_if(&self, record: &JoinRecord, expected: Option<u64>) -> Result<bool, Error> {
            self.race();
            self.aws.put_if(record, expected).await
        }
        async fn put_all_if(
            &self,
            writes: &[(JoinRecord, Option<u64>)],
        ) -> Result<crate::ports::Transaction, Error> {
            self.race();
            self.aws.put_all_if(writes).await
        }
    }

    impl RacedOnce {
        fn race(&self) {
            if !self.raced.swap(true, std::sync::atomic::Ordering::SeqCst) {
                self.aws.put_record(JoinRecord {
                    message_id: "another-delivery".into(),
                    status: JoinStatus::Joining,
                    ..crate::testing::record_now(&self.instance, MEMBER)
                });
            }
        }
    }

    #[tokio::test]
    async fn a_cancelled_claim_transaction_holds_up_only_the_instance_that_raced() {
        let aws = world();
        let ids = fleet(&aws, 5);
        let worker = worker_with(&aws, |ports, _| {
            ports.ledger = Arc::new(RacedOnce {
                aws: aws.clone(),
                instance: ids[2].clone(),
                raced: false.into(),
            });
        });
        let r = worker.handle_batch(&running(&ids)).await;
        for (k, report) in r.iter().enumerate() {
            if k == 2 {
                assert_eq!(report.outcome, Outcome::Failed, "{report:?}");
                assert_reason(report, "changed while");
            } else {
                assert_eq!(report.outcome, Outcome::Dispatched, "{report:?}");
            }
        }
        let calls = aws.calls();
        // The cancelled transaction, then the four others' claims one by one; their
        // command ids in one transaction; one command for the four.
        assert_eq!(
            (calls.ledger_transactions, calls.ledger_puts, calls.sends),
            (2, 4, 1),
            "{calls:?}"
        );
        assert!(!aws.sent()[0].targets(&instance_id(&ids[2])));
        assert_eq!(
            aws.record(&ids[2]).expect("the other's").message_id,
            "another-delivery"
        );
    }

    #[tokio::test]
    async fn an_unregistered_agent_in_a_gathered_command_defers_only_its_instance() {
        let aws = world();
        let ids = fleet(&aws, 4);
        for (k, id) in ids.iter().enumerate() {
            let mut agent = online("Linux");
            if k == 1 {
                agent.ping_status = "ConnectionLost".into();
            }
            aws.put_agent(&account(MEMBER), &region(), &instance_id(id), agent);
        }
        let r = run(&aws, &running(&ids)).await;
        for (k, report) in r.iter().enumerate() {
            let expected = if k == 1 {
                Outcome::Deferred
            } else {
                Outcome::Dispatched
            };
            assert_eq!(report.outcome, expected, "{report:?}");
        }
        // The gathered command was refused; each instance was then sent its own.
        let sent = aws.sent();
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.iter().all(|c| c.request.more_targets.is_empty()));
    }

    #[tokio::test]
    async fn a_gathered_command_whose_answer_was_lost_is_found_not_sent_again() {
        let aws = world();
        let ids = fleet(&aws, 6);
        let faults = Faults::default();
        faults.inject(Op::SendCommand, Fault::LostAnswer, Some(1));
        let r = worker_on(&aws, &faults).handle_batch(&running(&ids)).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
        let sent = aws.sent();
        assert_eq!(sent.len(), 1, "exactly one join command: {sent:?}");
        for id in &ids {
            assert_eq!(
                aws.record(id).expect("recorded").command_id.as_deref(),
                Some(sent[0].command_id.as_str())
            );
        }
    }

    #[tokio::test]
    async fn a_gathered_command_lost_and_not_found_is_looked_for_by_each_instance_before_sending_again()
     {
        let aws = world();
        let ids = fleet(&aws, 3);
        let batch = running(&ids);
        let faults = Faults::default();
        // The command takes effect, its answer is lost, and SSM does not list it yet.
        faults.inject(Op::SendCommand, Fault::LostAnswer, Some(1));
        faults.inject(Op::FindCommand, Fault::ServerError, Some(4));
        let w = worker_on(&aws, &faults);
        let r = w.handle_batch(&batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Failed), "{r:?}");
        // The next delivery finds the one command for each instance.
        let r = w.handle_batch(&batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
        assert_eq!(aws.sent().len(), 1, "exactly one join command");
    }

    /// A staged world's fleet: the member account in the default (staged) join mode.
    fn staged_fleet(n: usize) -> (FakeAws, Vec<String>) {
        let aws = crate::testing::world();
        let ids = fleet(&aws, n);
        (aws, ids)
    }

    #[tokio::test]
    async fn a_batch_of_staged_joins_is_one_stage_command_then_one_join_command() {
        let (aws, ids) = staged_fleet(5);
        let batch = running(&ids);
        let r = run(&aws, &batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
        let sent = aws.sent();
        assert_eq!(sent.len(), 1, "one stage command for the five: {sent:?}");
        assert_eq!(sent[0].request.document.name(), "adjoin-Stage-Linux");
        assert_eq!(sent[0].request.target.as_str(), TOOLS);
        let params: BTreeMap<_, _> = decode_params(&sent[0].request.commands)
            .into_iter()
            .collect();
        for id in &ids {
            assert!(
                params["INSTANCES"]
                    .lines()
                    .any(|row| row.starts_with(&format!("{id} "))),
                "{id} has its row"
            );
        }
        // The stage succeeded: one read for the command, then one join command.
        let before = aws.calls();
        let r = run(&aws, &batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
        let calls = since(&aws, before);
        assert_eq!(
            (calls.summaries, calls.results, calls.sends),
            (1, 0, 1),
            "{calls:?}"
        );
        let join = aws.sent().pop().expect("the join");
        assert_eq!(join.request.document.name(), "adjoin-Join-Linux");
        assert_eq!(join.request.more_targets.len(), 4);
        // Verified: the one-time passwords of all five deleted in one call per account.
        let before = aws.calls();
        let r = run(&aws, &batch).await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Verified), "{r:?}");
        assert_eq!(
            since(&aws, before).deletes,
            2,
            "instances' and tools host's"
        );
        assert!(aws.parameters().is_empty(), "{:?}", aws.parameters());
    }

    #[tokio::test]
    async fn each_instance_of_a_gathered_stage_is_judged_by_its_own_exit_code() {
        let (aws, ids) = staged_fleet(3);
        let batch = running(&ids);
        run(&aws, &batch).await;
        let stage = aws.sent()[0].command_id.clone();
        // The tools host staged the first, found someone else's object for the second
        // (exit 19) and could not reach the third's turn.
        aws.set_result(
            &stage,
            crate::ports::CommandResult {
                status: CommandStatus::Failed("Failed".into()),
                exit_code: Some(19),
                stdout: format!(
                    "{a}: adjoin: staged\nadjoin-result {a} 0\n{b}: adjoin: error: not ours\nadjoin-result {b} 19\n",
                    a = ids[0],
                    b = ids[1]
                ),
                stderr: String::new(),
            },
        );
        let before = aws.calls();
        let r = run(&aws, &batch).await;
        assert_eq!(
            since(&aws, before).results,
            1,
            "the tools host's one invocation, read once"
        );
        assert_eq!(r[0].outcome, Outcome::Dispatched, "{:?}", r[0]);
        assert_reason(&r[0], "staged");
        assert_eq!(r[1].outcome, Outcome::Rejected, "{:?}", r[1]);
        assert_reason(&r[1], "not this instance's");
        assert_reason(&r[1], "not ours");
        // The third is staged again (its attempt failed before it ran).
        assert_eq!(r[2].outcome, Outcome::Dispatched, "{:?}", r[2]);
        assert_reason(&r[2], "exit code none; stage attempt 2 sent");
    }

    #[tokio::test]
    async fn joins_of_different_documents_or_settings_are_not_gathered() {
        let aws = world();
        let r = run(
            &aws,
            &[
                message("m1", body(MEMBER, LINUX, "running")),
                message("m2", body(MEMBER, WINDOWS, "running")),
            ],
        )
        .await;
        assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
        assert_eq!(aws.sent().len(), 2);
    }
}
