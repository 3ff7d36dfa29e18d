//! The CloudFormation templates of `infra/`, created in the emulator: central in the
//! security ("home") account, member in a member account, the Region forwarder in that
//! account's second Region. Then every resource is read back through its own API.
//!
//! What moto's CloudFormation does not create (it skips the type and still reports
//! CREATE_COMPLETE) is checked as declared in the template, through GetTemplateSummary:
//! `AWS::SQS::QueuePolicy`, `AWS::SNS::TopicPolicy`, `AWS::SNS::Subscription` and
//! `AWS::CloudWatch::Alarm`. Properties it drops: the Lambda's `Architectures` and
//! `LoggingConfig`, and the event bus `Policy`. It does not check IAM policy grammar of
//! inline role policies either (it does for managed policies), nor parameter
//! constraints (`MinLength`, `AllowedPattern`) or `Rules`. cfn-lint covers the grammar
//! statically; the rest is read from the template text (`yaml_block`).

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use adjoin_aws::EnvSettings;
use adjoin_aws::settings::VARIABLES;
use adjoin_testkit::{Bed, HOME_ACCOUNT};
use aws_config::SdkConfig;
use aws_sdk_cloudformation::types::{Capability, Parameter, StackStatus};
use serde_json::{Value, json};

const REGION: &str = "eu-central-1";
const OTHER_REGION: &str = "us-west-2";
/// A second central stack, with the SNS entry point turned on and an organization.
const SNS_REGION: &str = "eu-west-3";
const ORGANIZATION: &str = "o-a1b2c3d4e5";
const MEMBER: &str = "100000000050";
const EXTERNAL_ID: &str = "4f1c2b9e0d7a6c5b3e8f9a0b1c2d3e4f";
const BUS: &str = "adjoin-stack-test";
const CODE_BUCKET: &str = "adjoin-code";
const CODE_KEY: &str = "adjoin/adjoin-lambda-arm64.zip";
const TOOLS_TAG: (&str, &str) = ("adjoin:tools", "ad-tools-stack-test");

fn template(name: &str) -> String {
    let path = format!("{}/../../infra/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The lines of the YAML block that starts with the line `head` (indentation included,
/// e.g. `"  TopicPolicy:"`), up to the next line indented no deeper. For what the
/// emulator does not create or check; serde_yaml is not a dependency.
fn yaml_block(text: &str, head: &str) -> String {
    let indent = head.len() - head.trim_start().len();
    let mut lines = text.lines().skip_while(|l| l.trim_end() != head);
    let first = lines
        .next()
        .unwrap_or_else(|| panic!("no line {head:?} in the template"));
    let body = lines.take_while(|l| {
        let t = l.trim_start();
        t.is_empty() || t.starts_with('#') || l.len() - t.len() > indent
    });
    std::iter::once(first)
        .chain(body)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The statement `sid` of an inline role policy. moto hands dict-form inline policies
/// back in Python notation (single quotes): made JSON here (the policies hold no quotes).
fn policy_statement(policy: &str, sid: &str) -> Value {
    let document: Value = serde_json::from_str(policy)
        .or_else(|_| {
            serde_json::from_str(
                &policy
                    .replace('\'', "\"")
                    .replace("True", "true")
                    .replace("False", "false"),
            )
        })
        .unwrap_or_else(|e| panic!("policy {policy}: {e}"));
    document["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {policy}"))
        .clone()
}

/// A created stack: its outputs, its resources (logical id → type, physical id) and the
/// resource types its template declares.
struct Stack {
    outputs: BTreeMap<String, String>,
    resources: BTreeMap<String, (String, String)>,
    declared_types: Vec<String>,
}

impl Stack {
    fn output(&self, key: &str) -> &str {
        self.outputs
            .get(key)
            .unwrap_or_else(|| panic!("no output {key}: {:?}", self.outputs))
    }

    /// The physical id of a resource moto created, after checking its type.
    fn physical(&self, logical: &str, resource_type: &str) -> &str {
        let (t, id) = self
            .resources
            .get(logical)
            .unwrap_or_else(|| panic!("no resource {logical}: {:?}", self.resources));
        assert_eq!(t, resource_type, "{logical}");
        id
    }

    /// Whether the stack created no resource `logical` (its condition was false).
    fn has_no(&self, logical: &str) -> bool {
        !self.resources.contains_key(logical)
    }

    fn declares(&self, resource_type: &str) {
        assert!(
            self.declared_types.iter().any(|t| t == resource_type),
            "the template declares no {resource_type}: {:?}",
            self.declared_types
        );
    }
}

async fn create_stack(
    sdk: &SdkConfig,
    name: &str,
    file: &str,
    parameters: &[(&str, &str)],
    capability: Capability,
) -> Stack {
    let cfn = aws_sdk_cloudformation::Client::new(sdk);
    let mut create = cfn
        .create_stack()
        .stack_name(name)
        .template_body(template(file))
        .capabilities(capability);
    for (k, v) in parameters {
        create = create.parameters(
            Parameter::builder()
                .parameter_key(*k)
                .parameter_value(*v)
                .build(),
        );
    }
    create
        .send()
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e:?}"));

    let started = Instant::now();
    let stack = loop {
        let out = cfn
            .describe_stacks()
            .stack_name(name)
            .send()
            .await
            .expect("describe stack");
        let stack = out.stacks()[0].clone();
        match stack.stack_status() {
            Some(StackStatus::CreateComplete) => break stack,
            Some(StackStatus::CreateInProgress) if started.elapsed() < Duration::from_secs(60) => {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => panic!(
                "{name}: {other:?} {}",
                stack.stack_status_reason().unwrap_or_default()
            ),
        }
    };
    let outputs = stack
        .outputs()
        .iter()
        .map(|o| {
            (
                o.output_key().unwrap_or_default().to_owned(),
                o.output_value().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let resources = cfn
        .list_stack_resources()
        .stack_name(name)
        .send()
        .await
        .expect("stack resources")
        .stack_resource_summaries()
        .iter()
        .filter(|r| r.resource_type().is_some_and(|t| !t.is_empty()))
        .map(|r| {
            (
                r.logical_resource_id().unwrap_or_default().to_owned(),
                (
                    r.resource_type().unwrap_or_default().to_owned(),
                    r.physical_resource_id().unwrap_or_default().to_owned(),
                ),
            )
        })
        .collect();
    let declared_types = cfn
        .get_template_summary()
        .stack_name(name)
        .send()
        .await
        .expect("template summary")
        .resource_types()
        .to_vec();
    Stack {
        outputs,
        resources,
        declared_types,
    }
}

/// central.yaml as stack `name`: its code from the uploaded bundle, on the test bus, with
/// `parameters` besides.
async fn create_central(sdk: &SdkConfig, name: &str, parameters: &[(&str, &str)]) -> Stack {
    let mut all = vec![
        ("CodeBucket", CODE_BUCKET),
        ("CodeKey", CODE_KEY),
        ("EventBusName", BUS),
    ];
    all.extend_from_slice(parameters);
    create_stack(sdk, name, "central.yaml", &all, Capability::CapabilityIam).await
}

/// One request to the emulator without an SDK client (for S3 and Lambda; see Cargo.toml).
/// moto routes by the credential scope of the Authorization header and checks no signature.
fn emulator_request(
    endpoint: &str,
    service: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Vec<u8> {
    let host = endpoint.trim_start_matches("http://");
    let mut stream = TcpStream::connect(host).expect("connect to the emulator");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut request = format!(
        "{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Length: {}\r\n\
         Authorization: AWS4-HMAC-SHA256 Credential=testing/20260101/{REGION}/{service}/aws4_request, \
         SignedHeaders=host, Signature=0\r\n",
        body.len()
    );
    for (k, v) in headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).expect("send");
    stream.write_all(body).expect("send body");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("response");
    let split = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("HTTP response");
    let head = String::from_utf8_lossy(&response[..split]).to_ascii_lowercase();
    assert!(
        head.starts_with("http/1.1 200") || head.starts_with("http/1.0 200"),
        "{method} {path}: {head}\n{}",
        String::from_utf8_lossy(&response[split..])
    );
    assert!(!head.contains("transfer-encoding: chunked"), "chunked");
    response[split + 4..].to_vec()
}

fn emulator_json(endpoint: &str, service: &str, path: &str) -> Value {
    let body = emulator_request(endpoint, service, "GET", path, &[], b"");
    serde_json::from_slice(&body).expect("JSON answer")
}

/// IAM returns policy documents URL-encoded.
fn url_decoded(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(hex)) => {
                let hex = std::str::from_utf8(hex).expect("ascii");
                out.push(u8::from_str_radix(hex, 16).expect("hex"));
                i += 3;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).expect("UTF-8")
}

async fn role_policy(iam: &aws_sdk_iam::Client, role: &str, policy: &str) -> String {
    let out = iam
        .get_role_policy()
        .role_name(role)
        .policy_name(policy)
        .send()
        .await
        .unwrap_or_else(|e| panic!("policy {policy} of {role}: {e:?}"));
    url_decoded(out.policy_document())
}

async fn trust_policy(iam: &aws_sdk_iam::Client, role: &str) -> Value {
    let out = iam
        .get_role()
        .role_name(role)
        .send()
        .await
        .unwrap_or_else(|e| panic!("role {role}: {e:?}"));
    let document = out
        .role()
        .and_then(|r| r.assume_role_policy_document())
        .expect("trust policy");
    serde_json::from_str(&url_decoded(document)).expect("trust policy JSON")
}

/// The rules of `bus` whose names start with `prefix`, each with its targets' (ARN, role).
async fn rules(
    events: &aws_sdk_eventbridge::Client,
    bus: &str,
    prefix: &str,
) -> Vec<(Value, Vec<(String, Option<String>)>)> {
    let out = events
        .list_rules()
        .event_bus_name(bus)
        .name_prefix(prefix)
        .send()
        .await
        .expect("rules");
    let mut found = Vec::new();
    for rule in out.rules() {
        let pattern: Value =
            serde_json::from_str(rule.event_pattern().unwrap_or("null")).expect("pattern");
        let targets = events
            .list_targets_by_rule()
            .rule(rule.name().unwrap_or_default())
            .event_bus_name(bus)
            .send()
            .await
            .expect("targets")
            .targets()
            .iter()
            .map(|t| (t.arn().to_owned(), t.role_arn().map(str::to_owned)))
            .collect();
        found.push((pattern, targets));
    }
    found
}

fn assert_ec2_state_changes(pattern: &Value) {
    assert_eq!(pattern["source"], json!(["aws.ec2"]));
    assert_eq!(
        pattern["detail-type"],
        json!(["EC2 Instance State-change Notification"])
    );
    assert_eq!(pattern["detail"]["state"], json!(["running", "terminated"]));
}

#[tokio::test]
async fn the_three_stacks_create_what_the_service_needs_and_its_environment_matches_the_code() {
    let moto = super::moto();
    let bed = Bed::new(moto, REGION).await;
    let home = bed.as_account(HOME_ACCOUNT, REGION).await.expect("home");

    // The code package: an empty zip archive (moto never runs it).
    let empty_zip = [&b"PK\x05\x06"[..], &[0; 18]].concat();
    let location = format!(
        "<CreateBucketConfiguration><LocationConstraint>{REGION}</LocationConstraint></CreateBucketConfiguration>"
    );
    emulator_request(
        moto.endpoint(),
        "s3",
        "PUT",
        &format!("/{CODE_BUCKET}"),
        &[],
        location.as_bytes(),
    );
    emulator_request(
        moto.endpoint(),
        "s3",
        "PUT",
        &format!("/{CODE_BUCKET}/{CODE_KEY}"),
        &[],
        &empty_zip,
    );

    // ------------------------------------------------------------ central
    let central = create_central(
        &home,
        "adjoin-central",
        &[
            ("MemberAccountIds", MEMBER),
            ("ToolsHostTagKey", TOOLS_TAG.0),
            ("ToolsHostTagValue", TOOLS_TAG.1),
            ("OtherToolsHostTagValues", "ad-tools-emea"),
        ],
    )
    .await;
    for skipped in [
        "AWS::SQS::QueuePolicy",
        "AWS::SNS::TopicPolicy",
        "AWS::SNS::Subscription",
        "AWS::CloudWatch::Alarm",
    ] {
        central.declares(skipped);
    }

    // Queues: the delay, 6 x the function timeout, the redrive to the DLQ.
    let sqs = aws_sdk_sqs::Client::new(&home);
    let attributes = |url: String| {
        let sqs = sqs.clone();
        async move {
            sqs.get_queue_attributes()
                .queue_url(url)
                .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
                .send()
                .await
                .expect("queue attributes")
                .attributes()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k.as_str().to_owned(), v))
                .collect::<BTreeMap<_, _>>()
        }
    };
    let queue_url = central.physical("DomainJoinQueue", "AWS::SQS::Queue");
    assert_eq!(queue_url, central.output("QueueUrl"));
    let queue = attributes(queue_url.to_owned()).await;
    assert_eq!(queue["DelaySeconds"], "300");
    assert_eq!(queue["VisibilityTimeout"], "360");
    let redrive: Value = serde_json::from_str(&queue["RedrivePolicy"]).expect("redrive");
    assert_eq!(
        redrive["deadLetterTargetArn"],
        central.output("DeadLetterQueueArn")
    );
    assert_eq!(redrive["maxReceiveCount"], 30);
    let dlq_url = central.physical("DeadLetterQueue", "AWS::SQS::Queue");
    let dlq = attributes(dlq_url.to_owned()).await;
    assert_eq!(dlq["MessageRetentionPeriod"], "1209600");

    // Tables: config (accountId) and ledger (instanceId), on demand.
    let ddb = aws_sdk_dynamodb::Client::new(&home);
    for (logical, output, key) in [
        ("ConfigTable", "ConfigTableName", "accountId"),
        ("LedgerTable", "LedgerTableName", "instanceId"),
    ] {
        let name = central.physical(logical, "AWS::DynamoDB::Table");
        assert_eq!(name, central.output(output));
        let table = ddb
            .describe_table()
            .table_name(name)
            .send()
            .await
            .expect("table");
        let table = table.table().expect("table description");
        let schema = table.key_schema();
        assert_eq!(
            (schema.len(), schema[0].attribute_name()),
            (1, key),
            "{logical}"
        );
        assert_eq!(
            table
                .billing_mode_summary()
                .and_then(|b| b.billing_mode())
                .map(|m| m.as_str()),
            Some("PAY_PER_REQUEST")
        );
    }

    // The function, and its environment against what the code reads.
    let function = central.physical("Function", "AWS::Lambda::Function");
    assert_eq!(function, central.output("FunctionName"));
    let config = emulator_json(
        moto.endpoint(),
        "lambda",
        &format!("/2015-03-31/functions/{function}/configuration"),
    );
    assert_eq!(config["Runtime"], "provided.al2023");
    assert_eq!(config["Handler"], "bootstrap");
    assert_eq!(config["Timeout"], 60);
    assert_eq!(config["Role"], central.output("LambdaRoleArn"));
    let env: BTreeMap<String, String> = config["Environment"]["Variables"]
        .as_object()
        .expect("environment")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map_or_else(|| v.to_string(), str::to_owned),
            )
        })
        .collect();
    let names: BTreeSet<&str> = env.keys().map(String::as_str).collect();
    let expected: BTreeSet<&str> = VARIABLES.iter().copied().collect();
    assert_eq!(names, expected, "the Lambda's environment variables");
    assert_eq!(
        env["ADJOIN_LEDGER_TABLE"],
        central.output("LedgerTableName")
    );
    let settings = EnvSettings::from_lookup(|name| env.get(name).cloned())
        .expect("the code accepts the deployed environment");
    assert_eq!(settings.config_table, central.output("ConfigTableName"));
    assert_eq!(settings.dlq_url.as_deref(), Some(dlq_url));
    assert_eq!(
        (
            settings.tools_host_tag.key.as_str(),
            settings.tools_host_tag.value.as_str()
        ),
        TOOLS_TAG
    );
    assert_eq!(settings.ledger_table, central.output("LedgerTableName"));
    assert_eq!(
        (
            settings.max_attempts,
            settings.max_age_seconds,
            settings.join_attempts,
            settings.concurrency,
            settings.config_ttl_seconds
        ),
        (25, 7200, 3, 10, 60)
    );
    assert!(!settings.leave_unrecorded);

    let mappings = emulator_json(
        moto.endpoint(),
        "lambda",
        &format!("/2015-03-31/event-source-mappings/?FunctionName={function}"),
    );
    let mappings = mappings["EventSourceMappings"]
        .as_array()
        .expect("mappings");
    assert_eq!(mappings.len(), 1, "{mappings:?}");
    assert_eq!(mappings[0]["EventSourceArn"], central.output("QueueArn"));
    assert_eq!(mappings[0]["BatchSize"], 10);
    assert_eq!(mappings[0]["MaximumBatchingWindowInSeconds"], 0);
    assert_eq!(
        mappings[0]["FunctionResponseTypes"],
        json!(["ReportBatchItemFailures"])
    );

    // The alarm on the service's own metrics names what the Lambda emits (the emulator
    // does not create CloudWatch alarms from templates: the text is checked).
    central.declares("AWS::CloudWatch::Alarm");
    let text = template("central.yaml");
    let alarm = &text[text.find("  FailingMessagesAlarm:").expect("alarm")..];
    assert!(alarm.contains(&format!("Namespace: {}", adjoin_core::metrics::NAMESPACE)));
    assert!(alarm.contains("MetricName: Failed"));

    let log_group = central.physical("FunctionLogGroup", "AWS::Logs::LogGroup");
    let groups = emulator_request(
        moto.endpoint(),
        "logs",
        "POST",
        "/",
        &[
            ("X-Amz-Target", "Logs_20140328.DescribeLogGroups"),
            ("Content-Type", "application/x-amz-json-1.1"),
        ],
        json!({ "logGroupNamePrefix": log_group })
            .to_string()
            .as_bytes(),
    );
    let groups: Value = serde_json::from_slice(&groups).expect("log groups");
    assert_eq!(groups["logGroups"][0]["logGroupName"], log_group);
    assert_eq!(groups["logGroups"][0]["retentionInDays"], 30);

    // Event routing: the bus, its rule and the default bus's rule, both to the queue.
    let events = aws_sdk_eventbridge::Client::new(&home);
    let bus = events
        .describe_event_bus()
        .name(BUS)
        .send()
        .await
        .expect("event bus");
    assert_eq!(bus.arn(), Some(central.output("EventBusArn")));
    for (bus_name, prefix) in [
        (BUS, "adjoin-central-CentralBusRule"),
        ("default", "adjoin-central-DefaultBusRule"),
    ] {
        let found = rules(&events, bus_name, prefix).await;
        assert_eq!(found.len(), 1, "{bus_name}: {found:?}");
        assert_ec2_state_changes(&found[0].0);
        assert_eq!(
            found[0].1,
            vec![(central.output("QueueArn").to_owned(), None)]
        );
    }
    // No SNS entry point unless turned on (EnableSnsEntryPoint defaults to false): no
    // topic, no subscription, no topic policy, no TopicArn output.
    for logical in ["Topic", "TopicPolicy", "TopicSubscription"] {
        assert!(
            !central.resources.contains_key(logical),
            "{logical} created by default: {:?}",
            central.resources
        );
    }
    assert!(
        !central.outputs.contains_key("TopicArn"),
        "{:?}",
        central.outputs
    );
    let sns = aws_sdk_sns::Client::new(&home);
    let topics = sns.list_topics().send().await.expect("topics");
    assert_eq!(topics.topics(), [], "no SNS topic by default");

    // The Lambda role: trusted by Lambda; SendCommand on this account's instances only
    // with the tools-host tag that the function's environment names; no secret access.
    let iam = aws_sdk_iam::Client::new(&home);
    let role = central.physical("FunctionRole", "AWS::IAM::Role");
    assert_eq!(
        trust_policy(&iam, role).await["Statement"][0]["Principal"]["Service"],
        "lambda.amazonaws.com"
    );
    let tools_host: Value =
        serde_json::from_str(&role_policy(&iam, role, "adjoin-tools-host").await)
            .expect("the tools-host policy is JSON");
    let statement = &tools_host["Statement"][0];
    assert_eq!(statement["Action"], "ssm:SendCommand");
    assert_eq!(
        statement["Resource"],
        format!("arn:aws:ec2:{REGION}:{HOME_ACCOUNT}:instance/*")
    );
    // The stack's tag value and the other directories' (OtherToolsHostTagValues).
    assert_eq!(
        statement["Condition"]["StringEquals"],
        json!({ format!("ssm:resourceTag/{}", settings.tools_host_tag.key): [settings.tools_host_tag.value, "ad-tools-emea"] })
    );
    // moto hands dict-form inline policies back in its own notation, not JSON: read as text.
    let main = role_policy(&iam, role, "adjoin").await;
    // Every call the service makes in its own account: assume, find the tools host,
    // send and verify leaves, the config and ledger tables, the queues.
    for grant in [
        "arn:aws:iam::*:role/adjoin-member",
        "sts:GetCallerIdentity",
        "ec2:DescribeInstances",
        "document/adjoin-Stage-*",
        "document/adjoin-Leave-*",
        "ssm:GetCommandInvocation",
        "dynamodb:GetItem",
        "dynamodb:BatchGetItem",
        "dynamodb:PutItem",
        "sqs:SendMessage",
        "sqs:ChangeMessageVisibility",
    ] {
        assert!(main.contains(grant), "{grant} not in {main}");
    }
    for absent in ["ssm:GetParameter", "secretsmanager:", "kms:"] {
        assert!(!main.contains(absent), "{absent} in {main}");
    }
    // Member roles only in the listed member accounts and this account (its own member
    // role), not in any AWS account.
    assert_eq!(
        policy_statement(&main, "AssumeMemberRoles"),
        json!({
            "Sid": "AssumeMemberRoles",
            "Effect": "Allow",
            "Action": "sts:AssumeRole",
            "Resource": "arn:aws:iam::*:role/adjoin-member",
            "Condition": {"StringEquals": {"aws:ResourceAccount": [MEMBER, HOME_ACCOUNT]}}
        })
    );
    central.physical("ToolsHostJoinSecretPolicy", "AWS::IAM::ManagedPolicy");
    assert!(
        central
            .output("ToolsHostPolicyArn")
            .starts_with("arn:aws:iam::")
    );

    // ------------------------------------------------------------ central, SNS turned on
    // With an organization this time. Publishing is limited to the named principals and
    // the subscription and policies exist only with the topic: moto creates neither
    // topic policies nor subscriptions, so those are read from the template text.
    let sns_sdk = bed
        .as_account(HOME_ACCOUNT, SNS_REGION)
        .await
        .expect("home");
    let publisher = format!("arn:aws:iam::{MEMBER}:role/legacy-ec2-forwarder");
    let with_sns = create_central(
        &sns_sdk,
        "adjoin-central-sns",
        &[
            ("OrganizationId", ORGANIZATION),
            ("EnableSnsEntryPoint", "true"),
            ("SnsPublisherArns", &publisher),
        ],
    )
    .await;
    let topic = with_sns.physical("Topic", "AWS::SNS::Topic");
    assert_eq!(topic, with_sns.output("TopicArn"));
    aws_sdk_sns::Client::new(&sns_sdk)
        .get_topic_attributes()
        .topic_arn(topic)
        .send()
        .await
        .expect("topic");
    let sns_iam = aws_sdk_iam::Client::new(&sns_sdk);
    let sns_role = with_sns.physical("FunctionRole", "AWS::IAM::Role");
    assert_eq!(
        policy_statement(
            &role_policy(&sns_iam, sns_role, "adjoin").await,
            "AssumeMemberRoles"
        )["Condition"],
        json!({"StringEquals": {"aws:ResourceOrgID": ORGANIZATION}}),
        "with an organization: its accounts' member roles"
    );

    let text = template("central.yaml");
    for logical in ["  Topic:", "  TopicPolicy:", "  TopicSubscription:"] {
        assert!(
            yaml_block(&text, logical).contains("\n    Condition: SnsEntryPoint\n"),
            "{logical} is created only with EnableSnsEntryPoint"
        );
    }
    assert!(
        yaml_block(&yaml_block(&text, "Outputs:"), "  TopicArn:")
            .contains("Condition: SnsEntryPoint")
    );
    assert!(
        yaml_block(&text, "Conditions:")
            .contains(r#"SnsEntryPoint: !Equals [!Ref EnableSnsEntryPoint, "true"]"#)
    );
    let topic_policy = yaml_block(&text, "  TopicPolicy:");
    assert_eq!(
        topic_policy.matches("sns:Publish").count(),
        1,
        "one grant: {topic_policy}"
    );
    assert!(
        topic_policy.contains(
            "Principal:\n              AWS: !Split [\",\", !Ref SnsPublisherArns]\n            Action: sns:Publish"
        ),
        "only the named principals publish: {topic_policy}"
    );
    for absent in [
        "aws:PrincipalOrgID",
        "OrganizationId",
        "MemberAccountIds",
        "Principal: \"*\"",
    ] {
        assert!(!topic_policy.contains(absent), "{absent}: {topic_policy}");
    }
    let queue_policy = yaml_block(&text, "  DomainJoinQueuePolicy:");
    assert!(
        queue_policy
            .contains("- !If\n            - SnsEntryPoint\n            - Sid: SnsTopicOfThisStack"),
        "the queue admits the topic only when it exists: {queue_policy}"
    );
    let publishers = yaml_block(&text, "  SnsPublisherArns:");
    assert!(publishers.contains("Default: \"\"\n"), "{publishers}");
    assert!(
        publishers.contains(":iam::\\d{12}:(role|user)/") && !publishers.contains("root|"),
        "IAM roles and users only, no whole accounts: {publishers}"
    );
    let rule = yaml_block(&yaml_block(&text, "Rules:"), "  SnsPublishersNamed:");
    assert!(
        rule.contains(r#"RuleCondition: !Equals [!Ref EnableSnsEntryPoint, "true"]"#)
            && rule.contains(r#"- Assert: !Not [!Equals [!Ref SnsPublisherArns, ""]]"#),
        "the SNS entry point needs named publishers: {rule}"
    );

    // ------------------------------------------------------------ member
    let member_sdk = bed.as_account(MEMBER, REGION).await.expect("member");
    let member = create_stack(
        &member_sdk,
        "adjoin-member",
        "member.yaml",
        &[
            ("CentralEventBusArn", central.output("EventBusArn")),
            ("CentralLambdaRoleArn", central.output("LambdaRoleArn")),
            ("ExternalId", EXTERNAL_ID),
        ],
        Capability::CapabilityNamedIam,
    )
    .await;
    assert_eq!(
        member.output("MemberRoleArn"),
        format!("arn:aws:iam::{MEMBER}:role/adjoin-member")
    );
    let member_iam = aws_sdk_iam::Client::new(&member_sdk);
    let trust = trust_policy(&member_iam, "adjoin-member").await;
    assert_eq!(
        trust["Statement"],
        json!([{
            "Effect": "Allow",
            "Principal": {"AWS": central.output("LambdaRoleArn")},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}}
        }])
    );
    let join = role_policy(&member_iam, "adjoin-member", "adjoin-join").await;
    for grant in [
        "ec2:DescribeInstances",
        "document/adjoin-Join-*",
        "ssm:DescribeDocument",
        "ssm:GetCommandInvocation",
        "ssm:DescribeInstanceInformation",
        "ssm:ListCommands",
        "ssm:PutParameter",
        "parameter/adjoin/otp/*",
    ] {
        assert!(join.contains(grant), "{grant} not in {join}");
    }
    // Staged joins by default: the instances' policy reads their own one-time password;
    // the shared join password's policy exists only with SharedPasswordJoins=true.
    member.physical("InstanceJoinPolicy", "AWS::IAM::ManagedPolicy");
    assert!(
        member.has_no("InstanceJoinSecretPolicy"),
        "instances may not read the join password by default"
    );
    // One external id per account: no default to share, at least 16 characters. The
    // template cannot see other accounts' values; the README generates one per account
    // before it uses it.
    let external_id = yaml_block(&template("member.yaml"), "  ExternalId:");
    for line in [
        "    NoEcho: true",
        "    MinLength: 16",
        "    AllowedPattern: ^[\\w+=,.@:/-]{16,1224}$",
    ] {
        assert!(
            external_id.lines().any(|l| l == line),
            "{line}: {external_id}"
        );
    }
    assert!(!external_id.contains("Default:"), "{external_id}");
    let readme = std::fs::read_to_string(format!("{}/../../README.md", env!("CARGO_MANIFEST_DIR")))
        .expect("README");
    let deploy = &readme[readme.find("\n## Deploy\n").expect("Deploy section")..];
    let generated = deploy
        .find("EXTERNAL_ID=$(openssl rand -hex 16)")
        .expect("the README generates an external id");
    assert!(
        deploy
            .find("$EXTERNAL_ID")
            .is_some_and(|used| used > generated),
        "the README uses $EXTERNAL_ID before it sets it"
    );
    let stack_set = &deploy[deploy
        .find("create-stack-set --stack-set-name adjoin-member")
        .expect("member StackSet")..];
    let stack_set = &stack_set[..stack_set.find("\n```").expect("end of block")];
    let per_account = stack_set
        .find("EXTERNAL_ID=$(openssl rand -hex 16)")
        .expect("one external id per account in the StackSet loop");
    assert!(
        stack_set[per_account..].contains(
            "--parameter-overrides ParameterKey=ExternalId,ParameterValue=\"$EXTERNAL_ID\""
        ),
        "{stack_set}"
    );
    let member_events = aws_sdk_eventbridge::Client::new(&member_sdk);
    let forward = rules(&member_events, "default", "adjoin-member-ForwardRule").await;
    assert_eq!(forward.len(), 1, "{forward:?}");
    assert_ec2_state_changes(&forward[0].0);
    let (target, target_role) = &forward[0].1[0];
    assert_eq!(target, central.output("EventBusArn"));
    assert!(target_role.as_deref().is_some_and(|r| r.contains(MEMBER)));

    // ------------------------------------------------------------ member, security account
    // The security account holds both stacks when its own instances join. That there,
    // in the central account and Region, member.yaml creates neither the forwarding rule
    // nor the command log group is checked on the template's conditions
    // (`templates::member_stack_forwards_except_…`, `…exactly_one_stack_creates_the_command_log_group_…`): the
    // emulator evaluates a condition that refers to another condition as true.
    let home_member = create_stack(
        &home,
        "adjoin-member-here",
        "member.yaml",
        &[
            ("CentralEventBusArn", central.output("EventBusArn")),
            ("CentralLambdaRoleArn", central.output("LambdaRoleArn")),
            ("ExternalId", EXTERNAL_ID),
        ],
        Capability::CapabilityNamedIam,
    )
    .await;
    assert_eq!(
        home_member.output("MemberRoleArn"),
        format!("arn:aws:iam::{HOME_ACCOUNT}:role/adjoin-member")
    );
    home_member.physical("InstanceJoinPolicy", "AWS::IAM::ManagedPolicy");

    // ------------------------------------------------------------ region forwarder
    let other_sdk = bed.as_account(MEMBER, OTHER_REGION).await.expect("member");
    let forwarder = create_stack(
        &other_sdk,
        "adjoin-forwarder",
        "region-forwarder.yaml",
        &[("CentralEventBusArn", central.output("EventBusArn"))],
        Capability::CapabilityIam,
    )
    .await;
    let role = forwarder.physical("ForwarderRole", "AWS::IAM::Role");
    let other_events = aws_sdk_eventbridge::Client::new(&other_sdk);
    let forward = rules(&other_events, "default", "adjoin-forwarder-ForwardRule").await;
    assert_eq!(forward.len(), 1, "{forward:?}");
    assert_ec2_state_changes(&forward[0].0);
    assert_eq!(
        forward[0].1,
        vec![(
            central.output("EventBusArn").to_owned(),
            Some(format!("arn:aws:iam::{MEMBER}:role/{role}"))
        )],
        "cross-Region to the central bus"
    );
}
