//! The worker on the real AWS adapters, against the AWS API emulator (moto server).
//!
//! One emulator serves all tests; each test uses its own member account, DLQ and tools
//! host tag, so tests run in parallel without seeing each other. `stacks` creates the
//! CloudFormation templates of `infra/` (in a Region of their own).

mod stacks;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use adjoin_aws::{EnvSettings, build_worker};
use adjoin_core::config::TagMatch;
use adjoin_core::ids::InstanceId;
use adjoin_core::ledger::{JoinRecord, JoinStatus};
use adjoin_core::outcome::{Action, Outcome, Report};
use adjoin_core::ports::Ledger as _;
use adjoin_core::worker::Message;
use adjoin_testkit::{Bed, HOME_ACCOUNT, Moto, event};
use serde_json::json;

const REGION: &str = "eu-west-1";
const CONFIG_TABLE: &str = "adjoin-config";
const LEDGER_TABLE: &str = "adjoin-ledger";
const PASSWORD: &str = "J0in-Only-Servers!";

fn moto() -> &'static Moto {
    static MOTO: OnceLock<Moto> = OnceLock::new();
    MOTO.get_or_init(|| Moto::start().expect("moto server"))
}

/// One test's world: a member account with its config item, a tools host, a DLQ.
struct World {
    bed: Bed,
    member: String,
    tools_tag: String,
    dlq: String,
}

async fn world(member: &str) -> World {
    let bed = Bed::new(moto(), REGION).await;
    bed.create_table(CONFIG_TABLE, "accountId")
        .await
        .expect("table");
    bed.create_table(LEDGER_TABLE, "instanceId")
        .await
        .expect("ledger table");
    bed.put_config(CONFIG_TABLE, &json!({
        "accountId": member, "adJoinUserName": "svc-join", "adJoinUserPwParam": "/adjoin/join-password",
        "dnsName": "example.test", "dnsIP1": "10.200.0.1",
        "assumeRoleARN": format!("arn:aws:iam::{member}:role/adjoin-member"), "externalId": format!("ext-{member}"),
        "ouPath": "OU=Servers,DC=example,DC=test", "joinMode": "sharedPassword"
    }))
    .await
    .expect("config item");
    bed.put_secure_parameter(member, REGION, "/adjoin/join-password", PASSWORD)
        .await
        .expect("parameter");
    for account in [member, HOME_ACCOUNT] {
        bed.create_documents(account, REGION)
            .await
            .expect("documents");
    }
    let dlq = bed
        .create_queue(&format!("adjoin-dlq-{member}"))
        .await
        .expect("dlq");
    World {
        bed,
        member: member.to_owned(),
        tools_tag: format!("tools-{member}"),
        dlq,
    }
}

impl World {
    async fn worker(&self) -> adjoin_core::worker::Worker {
        let sdk = self
            .bed
            .as_account(HOME_ACCOUNT, REGION)
            .await
            .expect("home");
        let env = EnvSettings {
            config_table: CONFIG_TABLE.into(),
            ledger_table: LEDGER_TABLE.into(),
            tools_host_tag: TagMatch {
                key: "adjoin:role".into(),
                value: self.tools_tag.clone(),
            },
            dlq_url: Some(self.dlq.clone()),
            queue_url: None,
            max_attempts: 5,
            max_age_seconds: 7200,
            join_attempts: 3,
            concurrency: 10,
            config_ttl_seconds: 60,
            leave_unrecorded: false,
        };
        build_worker(&sdk, &env, false)
    }

    async fn run(&self, bodies: Vec<String>) -> Vec<Report> {
        self.worker()
            .await
            .handle_batch(&messages("", bodies))
            .await
    }

    fn event(&self, instance: &str, state: &str) -> String {
        event(&self.member, REGION, instance, state).to_string()
    }

    /// The commands SSM recorded in the member account, oldest first.
    async fn member_commands(&self) -> Vec<adjoin_testkit::RecordedCommand> {
        self.bed
            .commands(&self.member, REGION)
            .await
            .expect("member commands")
    }

    /// Starts the AD tools host in the home account, tagged for this test; its id.
    async fn tools_host(&self) -> String {
        self.bed
            .run_instance(
                HOME_ACCOUNT,
                REGION,
                false,
                &[("adjoin:role", &self.tools_tag)],
            )
            .await
            .expect("tools host")
    }

    /// Terminates the member's instance `id`.
    async fn terminate(&self, id: &str) {
        self.bed
            .terminate_instance(&self.member, REGION, id)
            .await
            .expect("terminate");
    }

    /// Records the member's instance `id` joined by an earlier message, then terminates it.
    async fn joined_then_terminated(&self, id: &str) {
        self.bed
            .record_joined(LEDGER_TABLE, &self.member, REGION, id)
            .await
            .expect("joined earlier");
        self.terminate(id).await;
    }

    async fn instance(&self, windows: bool, tags: &[(&str, &str)]) -> String {
        self.bed
            .run_instance(&self.member, REGION, windows, tags)
            .await
            .expect("instance")
    }
}

/// First deliveries of `bodies`, with message ids `{prefix}m0`, `{prefix}m1`, …
fn messages(prefix: &str, bodies: Vec<String>) -> Vec<Message> {
    bodies
        .into_iter()
        .enumerate()
        .map(|(i, body)| Message {
            message_id: format!("{prefix}m{i}"),
            body,
            receipt_handle: None,
            receive_count: 1,
            source_queue_arn: None,
        })
        .collect()
}

#[tokio::test]
async fn linux_instance_is_joined_with_the_shell_document_in_its_own_account() {
    let w = world("100000000001").await;
    let id = w.instance(false, &[("adGroupName", "linux-admins")]).await;
    let r = w.run(vec![w.event(&id, "running")]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Join, Outcome::Dispatched),
        "{r:?}"
    );
    let sent = w.member_commands().await;
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].document, "adjoin-Join-Linux");
    assert_eq!(sent[0].instance_ids, vec![id.clone()]);
    assert_eq!(Some(&sent[0].command_id), r[0].command_id.as_ref());
    let p = sent[0].values();
    assert_eq!(p["ALLOWED_GROUP"], "linux-admins");
    assert_eq!(p["DOMAIN"], "example.test");
    assert_eq!(p["OU_PATH"], "OU=Servers,DC=example,DC=test");
    assert_eq!(p["PASSWORD_SSM_PARAMETER"], "/adjoin/join-password");
    assert!(sent[0].comment.contains(&id));
    assert!(
        !format!("{:?}", sent[0]).contains(PASSWORD),
        "the password never travels in the command"
    );
    let home = w
        .bed
        .commands(HOME_ACCOUNT, REGION)
        .await
        .expect("home commands");
    assert!(
        home.iter().all(|c| !c.instance_ids.contains(&id)),
        "nothing sent from the home account"
    );
}

#[tokio::test]
async fn windows_instance_is_joined_with_powershell() {
    let w = world("100000000002").await;
    let id = w.instance(true, &[]).await;
    let r = w.run(vec![w.event(&id, "running")]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    let sent = w.member_commands().await;
    assert_eq!(sent[0].document, "adjoin-Join-Windows");
    assert_eq!(sent[0].instance_ids, vec![id]);
    assert!(sent[0].values().contains_key("COMPUTER_NAME"));
}

#[tokio::test]
async fn opted_out_and_stopped_instances_are_skipped_and_nothing_is_sent() {
    let w = world("100000000003").await;
    let opted_out = w.instance(false, &[("autoadjoin", "false")]).await;
    let stopped = w.instance(false, &[]).await;
    w.bed
        .stop_instance(&w.member, REGION, &stopped)
        .await
        .expect("stop");
    let r = w
        .run(vec![
            w.event(&opted_out, "running"),
            w.event(&stopped, "running"),
        ])
        .await;
    assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
    assert!(r[0].reason.contains("autoadjoin=false"));
    assert_eq!(r[1].outcome, Outcome::Skipped);
    assert!(r[1].reason.contains("stopped"), "{}", r[1].reason);
    assert!(w.member_commands().await.is_empty());
}

#[tokio::test]
async fn unknown_account_is_rejected_onto_the_dlq_with_its_reason() {
    let w = world("100000000004").await;
    let body = event("100000000099", REGION, "i-0abcd1234ef567890", "running").to_string();
    let r = w.run(vec![body.clone()]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    let dlq = w.bed.drain_queue(&w.dlq).await.expect("dlq");
    assert_eq!(
        dlq,
        vec![(
            body,
            "no config item for account 100000000099 in the config table".to_owned()
        )]
    );
}

#[tokio::test]
async fn event_inside_an_sns_envelope_is_joined() {
    let w = world("100000000005").await;
    let id = w.instance(false, &[]).await;
    let envelope = json!({
        "Type": "Notification", "MessageId": "0c7c3a8e-0000-4000-8000-000000000005",
        "TopicArn": "arn:aws:sns:us-west-2:123456789012:adjoin-forward",
        "Message": w.event(&id, "running"), "Timestamp": "2026-11-20T12:00:01.000Z"
    });
    let r = w.run(vec![envelope.to_string()]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    assert_eq!(w.member_commands().await[0].instance_ids, vec![id]);
}

#[tokio::test]
async fn terminated_instance_leaves_on_the_tools_host_found_by_tag() {
    let w = world("100000000006").await;
    let tools = w.tools_host().await;
    let id = w.instance(false, &[]).await;
    w.joined_then_terminated(&id).await;
    let r = w.run(vec![w.event(&id, "terminated")]).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Leave, Outcome::Dispatched),
        "{r:?}"
    );
    let home = w
        .bed
        .commands(HOME_ACCOUNT, REGION)
        .await
        .expect("home commands");
    let leave = home
        .iter()
        .find(|c| Some(&c.command_id) == r[0].command_id.as_ref())
        .expect("leave command recorded");
    // The emulator lists every instance of the account under a command sent without
    // Targets: the tools host must be among them (the request names it alone).
    assert!(leave.instance_ids.contains(&tools), "{leave:?}");
    assert_eq!(leave.document, "adjoin-Leave-Linux");
    assert_eq!(leave.values()["INSTANCE_ID"], id);
    assert!(w.member_commands().await.is_empty());
    let ledger = w.bed.ledger(LEDGER_TABLE);
    let record = &ledger
        .get_many(&[InstanceId::parse(&id).expect("id")])
        .await
        .expect("ledger")[0];
    assert_eq!(
        (record.status, record.command_target.as_deref()),
        (JoinStatus::Leaving, Some(tools.as_str())),
        "left only once the tools host's command succeeded"
    );
    // The same message again (the return of a live delivery): the command's result.
    let verified = w.run(vec![w.event(&id, "terminated")]).await;
    assert_eq!(
        (verified[0].action, verified[0].outcome),
        (Action::Verify, Outcome::Verified),
        "{verified:?}"
    );
    let record = &ledger
        .get_many(&[InstanceId::parse(&id).expect("id")])
        .await
        .expect("ledger")[0];
    assert_eq!(record.status, JoinStatus::Left);
    assert_eq!(record.command_id, r[0].command_id);
    // The same terminate again, in a new message: nothing more is sent.
    let again = w
        .worker()
        .await
        .handle_batch(&messages("again-", vec![w.event(&id, "terminated")]))
        .await;
    assert_eq!(again[0].outcome, Outcome::Skipped, "{again:?}");
    assert_eq!(
        w.bed
            .commands(HOME_ACCOUNT, REGION)
            .await
            .expect("home")
            .len(),
        home.len()
    );
}

#[tokio::test]
async fn a_malformed_record_in_a_batch_of_ten_does_not_disturb_the_other_nine() {
    let w = world("100000000007").await;
    let mut bodies = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..9 {
        let id = w.instance(false, &[]).await;
        bodies.push(w.event(&id, "running"));
        ids.push(id);
    }
    bodies.insert(3, r#"{"detail-type":"EC2 Instance State-change Notification","source":"aws.ec2","detail":{}}"#.to_owned());
    let r = w.run(bodies).await;
    assert_eq!(r.len(), 10);
    assert_eq!(r[3].outcome, Outcome::Rejected);
    assert!(
        r.iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .all(|(_, r)| r.outcome == Outcome::Dispatched),
        "{r:?}"
    );
    let sent = w.member_commands().await;
    // moto records every instance of the account in each command's InstanceIds, so the
    // targets are read from the commands' own values here (gathered: their tables).
    let mut targets: Vec<String> = sent
        .iter()
        .flat_map(|c| c.values_by_instance().into_keys())
        .collect();
    targets.sort();
    ids.sort();
    assert_eq!(targets, ids);
    assert!(
        sent.len() < ids.len(),
        "joins gathered into fewer commands: {}",
        sent.len()
    );
    let dlq = w.bed.drain_queue(&w.dlq).await.expect("dlq");
    assert_eq!(dlq.len(), 1);
    assert!(dlq[0].1.contains("no account"), "{}", dlq[0].1);
}

#[tokio::test]
async fn role_of_another_account_is_rejected() {
    let w = world("100000000008").await;
    w.bed
        .put_config(CONFIG_TABLE, &json!({
            "accountId": w.member, "adJoinUserName": "svc-join", "adJoinUserPwParam": "/adjoin/join-password",
            "dnsName": "example.test", "dnsIP1": "10.200.0.1",
            "assumeRoleARN": "arn:aws:iam::100000000001:role/adjoin-member"
        }))
        .await
        .expect("config item");
    let id = w.instance(false, &[]).await;
    let r = w.run(vec![w.event(&id, "running")]).await;
    assert_eq!(r[0].outcome, Outcome::Rejected);
    assert!(
        r[0].reason.contains("belongs to account 100000000001"),
        "{}",
        r[0].reason
    );
    assert!(w.member_commands().await.is_empty());
    assert_eq!(w.bed.drain_queue(&w.dlq).await.expect("dlq").len(), 1);
}

/// 1 000 messages, in 100 batches of 10, from two member accounts and an unknown one:
/// malformed bodies, opted-out instances, duplicates within a batch and joins. Every
/// message ends in exactly one outcome; rejections are on the DLQ; every dispatched join
/// is an SSM command in its account. Prints the counts.
#[tokio::test]
async fn a_thousand_messages_are_each_accounted_for_exactly_once() {
    let a = world("100000000009").await;
    let b = world("100000000010").await;
    let mut joinable = Vec::new();
    let mut opted_out = Vec::new();
    for w in [&a, &b] {
        for _ in 0..5 {
            let id = w.instance(false, &[("adGroupName", "linux-admins")]).await;
            joinable.push((w.member.clone(), id));
        }
        let id = w.instance(false, &[("autoadjoin", "false")]).await;
        opted_out.push((w.member.clone(), id));
    }
    let body = |account: &str, instance: &str, k: usize| {
        let mut e = event(account, REGION, instance, "running");
        e["id"] = json!(format!("load-{k}"));
        e.to_string()
    };
    let worker = a.worker().await;
    let started = std::time::Instant::now();
    let mut reports = Vec::new();
    for batch in 0..100 {
        let mut bodies = Vec::new();
        for i in 0..10 {
            let k = batch * 10 + i;
            let (account, instance) = &joinable[(batch + i) % joinable.len()];
            bodies.push(match i {
                0 => format!("{{\"not an event\": {k}"),
                1 => body("999988887777", instance, k),
                2 => {
                    let (account, instance) = &opted_out[batch % opted_out.len()];
                    body(account, instance, k)
                }
                // The same event twice in one batch (SQS at-least-once delivery).
                3 => {
                    let (account, instance) = &joinable[(batch + 4) % joinable.len()];
                    body(account, instance, k + 1)
                }
                _ => body(account, instance, k),
            });
        }
        reports.extend(
            worker
                .handle_batch(&messages(&format!("b{batch}-"), bodies))
                .await,
        );
    }
    let elapsed = started.elapsed();

    let mut ids: Vec<&str> = reports.iter().map(|r| r.message_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        (reports.len(), ids.len()),
        (1000, 1000),
        "one report per message"
    );
    let count = |o: Outcome| reports.iter().filter(|r| r.outcome == o).count();
    let counts = [
        count(Outcome::Dispatched),
        count(Outcome::Skipped),
        count(Outcome::Rejected),
        count(Outcome::Deferred),
        count(Outcome::Failed),
    ];
    let dlq = a.bed.drain_queue(&a.dlq).await.expect("dlq");
    let sent = [a.member_commands().await, b.member_commands().await].concat();
    let commands = sent.len();
    let joined_by_commands: usize = sent.iter().map(|c| c.values_by_instance().len()).sum();
    println!(
        "load: 1000 messages in 100 batches in {:.1} s: dispatched {}, skipped {}, rejected {}, \
         deferred {}, failed {}; DLQ {}; SSM commands {commands}",
        elapsed.as_secs_f64(),
        counts[0],
        counts[1],
        counts[2],
        counts[3],
        counts[4],
        dlq.len()
    );
    // Each of the ten instances is joined once; every later running event for it (a new
    // message: EventBridge's duplicates, or a replay) is skipped by the ledger.
    assert_eq!(counts, [10, 790, 200, 0, 0]);
    assert_eq!(dlq.len(), 200);
    assert!(dlq.iter().all(|(_, reason)| !reason.is_empty()));
    // Joins of one batch and account are gathered: fewer commands, one join each.
    assert_eq!(joined_by_commands, 10);
    assert!(commands <= 10);
    let ids: Vec<InstanceId> = joinable
        .iter()
        .map(|(_, id)| InstanceId::parse(id).expect("id"))
        .collect();
    let records = a
        .bed
        .ledger(LEDGER_TABLE)
        .get_many(&ids)
        .await
        .expect("ledger");
    assert_eq!(records.len(), 10);
    assert!(
        records
            .iter()
            .all(|r| r.status == JoinStatus::Joining && r.command_id.is_some()),
        "{records:?}"
    );
}

/// The ledger records of the given instances, by instance id.
async fn records(w: &World, ids: &[&str]) -> BTreeMap<String, JoinRecord> {
    let ids: Vec<InstanceId> = ids
        .iter()
        .map(|id| InstanceId::parse(id).expect("id"))
        .collect();
    w.bed
        .ledger(LEDGER_TABLE)
        .get_many(&ids)
        .await
        .expect("ledger")
        .into_iter()
        .map(|r| (r.instance_id.clone(), r))
        .collect()
}

/// The whole round through real SQS: the join's message is kept in flight for the
/// verification delay (ChangeMessageVisibility), comes back with the same message id,
/// and its second delivery reads the command's result and records the instance joined.
#[tokio::test]
async fn a_join_comes_back_through_sqs_and_is_recorded_joined() {
    let w = world("100000000011").await;
    let id = w.instance(false, &[("adGroupName", "linux-admins")]).await;
    let queue = w
        .bed
        .create_queue("adjoin-events-100000000011")
        .await
        .expect("queue");
    w.bed
        .send_message(&queue, &w.event(&id, "running"))
        .await
        .expect("send");
    let worker = w.worker().await;
    let first = w.bed.receive(&queue).await.expect("receive");
    let r = worker.handle_batch(&first).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Join, Outcome::Dispatched),
        "{r:?}"
    );
    assert!(r[0].comes_back);
    assert_eq!(records(&w, &[&id]).await[&id].status, JoinStatus::Joining);
    assert!(
        w.bed.receive(&queue).await.expect("receive").is_empty(),
        "the message waits out the verification delay"
    );
    let handle = first[0].receipt_handle.as_deref().expect("handle");
    w.bed.make_visible(&queue, handle).await.expect("visible");
    let second = w.bed.receive(&queue).await.expect("receive");
    assert_eq!(second[0].message_id, first[0].message_id);
    assert_eq!(second[0].receive_count, 2);
    let r = worker.handle_batch(&second).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Verify, Outcome::Verified),
        "{r:?}"
    );
    assert!(!r[0].comes_back, "verified: the message is done");
    let record = &records(&w, &[&id]).await[&id];
    assert_eq!(record.status, JoinStatus::Joined);
    assert_eq!(
        record.command_id,
        w.member_commands()
            .await
            .first()
            .map(|c| c.command_id.clone())
    );
    assert_eq!(
        w.member_commands().await.len(),
        1,
        "one join command in all"
    );
}

/// A staged join through the emulator's Parameter Store and SSM: the one-time password
/// is written as two expiring, tagged SecureStrings (the instance's in its account, the
/// tools host's in the service's), the stage command goes to the tools host, the join to
/// the instance, and once joined no copy of the password is left.
#[tokio::test]
async fn a_staged_join_hands_its_one_time_password_over_through_parameter_store() {
    let w = world("100000000015").await;
    w.bed
        .put_config(CONFIG_TABLE, &json!({
            "accountId": w.member, "adJoinUserName": "svc-join", "adJoinUserPwParam": "/adjoin/join-password",
            "dnsName": "example.test", "dnsIP1": "10.200.0.1",
            "assumeRoleARN": format!("arn:aws:iam::{}:role/adjoin-member", w.member),
            "externalId": format!("ext-{}", w.member)
        }))
        .await
        .expect("config item");
    let tools = w.tools_host().await;
    let id = w.instance(false, &[("adGroupName", "linux-admins")]).await;
    let worker = w.worker().await;
    let batch = messages("staged-", vec![w.event(&id, "running")]);

    let r = worker.handle_batch(&batch).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Join, Outcome::Dispatched),
        "{r:?}"
    );
    let for_instance = format!("/adjoin/otp/{id}");
    let for_tools = format!("/adjoin/stage/{}/{REGION}/{id}", w.member);
    let mine = w
        .bed
        .parameter(&w.member, REGION, &for_instance)
        .await
        .expect("read")
        .expect("the instance's copy");
    let theirs = w
        .bed
        .parameter(HOME_ACCOUNT, REGION, &for_tools)
        .await
        .expect("read")
        .expect("the tools host's copy");
    assert_eq!(mine.value, theirs.value);
    assert!(mine.secure && theirs.secure);
    assert_eq!(
        mine.tier, "Advanced",
        "expiration policies need the advanced tier"
    );
    assert!(
        mine.policies.iter().any(|p| p.contains("Expiration")),
        "{:?}",
        mine.policies
    );
    assert_eq!(
        mine.tags,
        vec![(
            "adjoin:instance".to_owned(),
            format!("arn:aws:ec2:{REGION}:{}:instance/{id}", w.member)
        )]
    );
    let home = w.bed.commands(HOME_ACCOUNT, REGION).await.expect("home");
    let stage = home
        .iter()
        .find(|c| c.comment.starts_with(&format!("adjoin stage {id}")))
        .expect("the stage command");
    assert_eq!(stage.instance_ids, vec![tools.clone()]);
    assert!(
        w.member_commands().await.is_empty(),
        "no join before the stage"
    );

    // Staged (the emulator reports the command done): the join goes to the instance.
    let r = worker.handle_batch(&batch).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Verify, Outcome::Dispatched),
        "{r:?}"
    );
    let joins = w.member_commands().await;
    assert_eq!(joins.len(), 1);
    let p = joins[0].values();
    assert_eq!(p["OTP_SSM_PARAMETER"], for_instance);
    assert!(!p.contains_key("PASSWORD_SSM_PARAMETER"), "{p:?}");

    let r = worker.handle_batch(&batch).await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Verify, Outcome::Verified),
        "{r:?}"
    );
    assert_eq!(records(&w, &[&id]).await[&id].status, JoinStatus::Joined);
    for (account, name) in [
        (w.member.as_str(), &for_instance),
        (HOME_ACCOUNT, &for_tools),
    ] {
        assert_eq!(
            w.bed.parameter(account, REGION, name).await.expect("read"),
            None,
            "{name} is deleted"
        );
    }
    let everything = format!("{r:?}{joins:?}{home:?}{:?}", records(&w, &[&id]).await);
    assert!(
        !everything.contains(&mine.value),
        "the one-time password leaked"
    );
}

/// Scheduled reconciliation through the real adapters: the ledger scanned, EC2 asked
/// through the member role, the lost terminated event put on the queue (SendMessageBatch)
/// as an EC2 event the worker reads.
#[tokio::test]
async fn scheduled_reconciliation_puts_a_lost_terminate_on_the_queue() {
    let w = world("100000000016").await;
    let gone = w.instance(false, &[]).await;
    w.joined_then_terminated(&gone).await;
    let kept = w.instance(false, &[]).await;
    w.bed
        .record_joined(LEDGER_TABLE, &w.member, REGION, &kept)
        .await
        .expect("joined");
    let queue = w
        .bed
        .create_queue("adjoin-events-100000000016")
        .await
        .expect("queue");
    let sdk = w.bed.as_account(HOME_ACCOUNT, REGION).await.expect("home");
    let env = EnvSettings::from_lookup(|name| match name {
        "ADJOIN_CONFIG_TABLE" => Some(CONFIG_TABLE.into()),
        "ADJOIN_LEDGER_TABLE" => Some(LEDGER_TABLE.into()),
        "ADJOIN_QUEUE_URL" => Some(queue.clone()),
        _ => None,
    })
    .expect("settings");
    let reconciler = adjoin_aws::build_reconciler(&sdk, &env).expect("a queue is named");
    let findings = reconciler
        .run(std::time::SystemTime::now())
        .await
        .expect("reconciled");
    let mine: Vec<_> = findings
        .drifted
        .iter()
        .filter(|d| d.account == w.member)
        .collect();
    assert_eq!(mine.len(), 1, "{findings:?}");
    assert_eq!(mine[0].instance_id, gone);
    let received = w.bed.receive(&queue).await.expect("receive");
    let events: Vec<_> = received
        .iter()
        .filter_map(|m| adjoin_core::event::parse_body(&m.body).ok())
        .filter(|e| e.account.as_str() == w.member)
        .collect();
    assert_eq!(events.len(), 1, "{received:?}");
    assert_eq!(events[0].instance_id.as_str(), gone);
    assert_eq!(events[0].state, adjoin_core::event::EventState::Terminated);
}

/// A terminate that overtakes its instance's delayed running event: nothing is deleted,
/// and the late running event finds the ledger's `left` and joins nothing.
#[tokio::test]
async fn a_terminate_before_the_delayed_running_event_leaves_nothing_behind() {
    let w = world("100000000012").await;
    let id = w.instance(false, &[]).await;
    w.terminate(&id).await;
    let worker = w.worker().await;
    let r = worker
        .handle_batch(&messages("t-", vec![w.event(&id, "terminated")]))
        .await;
    assert_eq!(
        (r[0].action, r[0].outcome),
        (Action::Leave, Outcome::Skipped),
        "{r:?}"
    );
    let record = &records(&w, &[&id]).await[&id];
    assert_eq!(
        (record.status, record.command_id.as_deref()),
        (JoinStatus::Left, None)
    );
    assert!(record.expires_at.is_some());
    let r = worker
        .handle_batch(&messages("r-", vec![w.event(&id, "running")]))
        .await;
    assert_eq!(r[0].outcome, Outcome::Skipped, "{r:?}");
    assert!(w.member_commands().await.is_empty());
    assert!(
        w.bed
            .commands(HOME_ACCOUNT, REGION)
            .await
            .expect("home")
            .iter()
            .all(|c| { c.values().get("INSTANCE_ID") != Some(&id) })
    );
}

/// Log lines, as the Lambda writes them (JSON, with the message's span).
#[derive(Clone, Default)]
struct Captured(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The join password is stored once, as a SecureString. Everything the service makes,
/// for joins and leaves, successes, verifications and rejections, is searched for it:
/// the commands SSM recorded (raw and decoded), the ledger, the DLQ with its reasons,
/// the reports, and every log line at the most verbose level.
#[tokio::test]
async fn the_join_password_is_in_nothing_the_service_sends_stores_or_logs() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .with_max_level(tracing::Level::TRACE)
        .with_current_span(true)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let w = world("100000000013").await;
    w.tools_host().await;
    let linux = w.instance(false, &[("adGroupName", "linux-admins")]).await;
    let windows = w.instance(true, &[("adGroupName", "windows-admins")]).await;
    let gone = w.instance(false, &[]).await;
    w.joined_then_terminated(&gone).await;
    let batch = messages(
        "secret-",
        vec![
            w.event(&linux, "running"),
            w.event(&windows, "running"),
            w.event(&gone, "terminated"),
            event("999988887777", REGION, &linux, "running").to_string(),
            "{\"malformed\": ".to_owned(),
        ],
    );
    let worker = w.worker().await;
    let mut reports = worker.handle_batch(&batch).await;
    // The same messages again: the joins are verified.
    reports.extend(worker.handle_batch(&batch).await);
    let outcomes: Vec<_> = reports.iter().map(|r| (r.action, r.outcome)).collect();
    for expected in [
        (Action::Join, Outcome::Dispatched),
        (Action::Leave, Outcome::Dispatched),
        (Action::Verify, Outcome::Verified),
        (Action::None, Outcome::Rejected),
    ] {
        assert!(outcomes.contains(&expected), "{outcomes:?}");
    }

    let mut everything = String::new();
    let mut commands = w.member_commands().await;
    commands.extend(
        w.bed
            .commands(HOME_ACCOUNT, REGION)
            .await
            .expect("home")
            .into_iter()
            .filter(|c| c.values().get("INSTANCE_ID") == Some(&gone)),
    );
    assert_eq!(commands.len(), 3, "two joins and a leave");
    for c in &commands {
        everything.push_str(&format!("{c:?}\n{:?}\n", c.values()));
        let p = c.values();
        assert!(
            p.contains_key("PASSWORD_SSM_PARAMETER"),
            "the command carries the reference only: {p:?}"
        );
    }
    for r in records(&w, &[&linux, &windows, &gone]).await.values() {
        everything.push_str(&serde_json::to_string(r).expect("json"));
    }
    for (body, reason) in w.bed.drain_queue(&w.dlq).await.expect("dlq") {
        everything.push_str(&format!("{body}\n{reason}\n"));
    }
    everything.push_str(&serde_json::to_string(&reports).expect("json"));
    let logs = String::from_utf8(captured.0.lock().expect("lock").clone()).expect("utf-8");
    assert!(logs.lines().count() > 20, "the logs were captured: {logs}");
    everything.push_str(&logs);

    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(PASSWORD);
    for needle in [PASSWORD, encoded.as_str(), &PASSWORD[..PASSWORD.len() - 1]] {
        assert!(!everything.contains(needle), "{needle:?} leaked");
    }
}

/// Audit: an account whose config item names an S3 bucket and a log group gets its
/// commands' output kept there. The emulator keeps `OutputS3BucketName` but not
/// `CloudWatchOutputConfig`; the log group is checked on the request in the worker's
/// unit tests.
#[tokio::test]
async fn commands_keep_their_output_where_the_config_item_says() {
    let w = world("100000000014").await;
    w.bed.put_config(CONFIG_TABLE, &json!({
        "accountId": w.member, "adJoinUserName": "svc-join", "adJoinUserPwParam": "/adjoin/join-password",
        "dnsName": "example.test", "dnsIP1": "10.200.0.1",
        "assumeRoleARN": format!("arn:aws:iam::{}:role/adjoin-member", w.member),
        "commandLogGroup": "/adjoin/commands", "commandOutputBucket": "adjoin-audit-100000000014",
        "joinMode": "sharedPassword"
    }))
    .await
    .expect("config item");
    let id = w.instance(false, &[]).await;
    let r = w.run(vec![w.event(&id, "running")]).await;
    assert_eq!(r[0].outcome, Outcome::Dispatched, "{r:?}");
    let commands = w.member_commands().await;
    assert_eq!(
        commands[0].output_s3_bucket.as_deref(),
        Some("adjoin-audit-100000000014")
    );
    assert!(
        commands[0].comment.contains("event "),
        "the comment names the event id"
    );
}

/// The ledger's transactions on DynamoDB: all written, or none, with per record whether
/// its version had changed (the worker writes the others one by one).
#[tokio::test]
async fn ledger_transactions_write_all_or_say_which_record_changed() {
    use adjoin_core::ports::{Cancelled, Transaction};
    let w = world("100000000031").await;
    let ledger = w.bed.ledger(LEDGER_TABLE);
    let record = |id: &str, version: u64| JoinRecord {
        instance_id: id.into(),
        account: w.member.clone(),
        region: REGION.into(),
        status: JoinStatus::Joining,
        computer_name: "I0TX".into(),
        message_id: "m".into(),
        event_id: "e".into(),
        command_id: None,
        command_target: None,
        ou_path: None,
        attempts: 1,
        exit_code: None,
        output: None,
        created_at: "2026-12-02T10:00:00Z".into(),
        updated_at: "2026-12-02T10:00:00Z".into(),
        expires_at: None,
        version,
    };
    let (a, b, c) = (
        "i-0c0000000000000a1",
        "i-0c0000000000000b2",
        "i-0c0000000000000c3",
    );
    let first = ledger
        .put_all_if(&[(record(a, 1), None), (record(b, 1), None)])
        .await
        .expect("transaction");
    assert_eq!(first, Transaction::Written);
    // a at its version, c new, b claimed as new although it exists: cancelled for b.
    let second = ledger
        .put_all_if(&[
            (record(a, 2), Some(1)),
            (record(c, 1), None),
            (record(b, 2), None),
        ])
        .await
        .expect("transaction");
    assert_eq!(
        second,
        Transaction::Cancelled(vec![
            Cancelled::None,
            Cancelled::None,
            Cancelled::ConditionFailed
        ])
    );
    let stored = records(&w, &[a, b, c]).await;
    assert_eq!(
        stored[a].version, 1,
        "nothing of a cancelled transaction is written"
    );
    assert!(!stored.contains_key(c));
}

/// A batch's joins through the real adapters: claims and records as transactions, one
/// SendCommand to every instance, verified by one ListCommands, tagged by one CreateTags.
#[tokio::test]
async fn a_batch_of_joins_is_one_command_verified_and_tagged_together() {
    let w = world("100000000032").await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(w.instance(false, &[("adGroupName", "linux-admins")]).await);
    }
    let bodies: Vec<String> = ids.iter().map(|id| w.event(id, "running")).collect();
    let worker = w.worker().await;
    let batch = messages("", bodies);
    let r = worker.handle_batch(&batch).await;
    assert!(r.iter().all(|r| r.outcome == Outcome::Dispatched), "{r:?}");
    let sent = w.member_commands().await;
    assert_eq!(sent.len(), 1, "one join command for the batch");
    let by_instance = sent[0].values_by_instance();
    let mut targets: Vec<&String> = by_instance.keys().collect();
    targets.sort();
    let mut expected: Vec<&String> = ids.iter().collect();
    expected.sort();
    assert_eq!(targets, expected);
    for (id, values) in &by_instance {
        assert_eq!(values["INSTANCE_ID"], *id);
        assert_eq!(values["ALLOWED_GROUP"], "linux-admins");
        assert!(values["OWNER_STAMP"].ends_with(id.as_str()));
    }
    let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
    let joining = records(&w, &refs).await;
    assert!(
        joining
            .values()
            .all(|r| r.command_id.as_deref() == Some(sent[0].command_id.as_str())),
        "{joining:?}"
    );

    let r = worker.handle_batch(&batch).await;
    assert!(r.iter().all(|r| r.outcome == Outcome::Verified), "{r:?}");
    assert!(
        records(&w, &refs)
            .await
            .values()
            .all(|r| r.status == JoinStatus::Joined)
    );
    let sdk = w.bed.as_account(&w.member, REGION).await.expect("member");
    let described = aws_sdk_ec2::Client::new(&sdk)
        .describe_instances()
        .set_instance_ids(Some(ids.clone()))
        .send()
        .await
        .expect("describe");
    let tagged = described
        .reservations()
        .iter()
        .flat_map(|r| r.instances())
        .filter(|i| {
            i.tags().iter().any(|t| {
                t.key() == Some(adjoin_core::instance::READY_TAG)
                    && t.value() == Some("example.test")
            })
        })
        .count();
    assert_eq!(tagged, ids.len());
}
