//! Each check's pass and fail, on the in-memory fakes.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::admin::fake::{FakeAdmin, online};
use crate::admin::{AdminFaults, AdminOp, FaultyAdmin};
use crate::fake::FakeAws;
use crate::faults::{Fault, Faults, Faulty, Op};

const HOME: &str = "123456789012";
const MEMBER: &str = "111122223333";
const INSTANCE: &str = "i-0abc1234def567890";
const TOOLS: &str = "i-0000000000000000a";

fn account(a: &str) -> AccountId {
    AccountId::parse(a).expect("valid")
}

fn region() -> Region {
    Region::parse("eu-west-1").expect("valid")
}

fn id(i: &str) -> InstanceId {
    InstanceId::parse(i).expect("valid")
}

fn item() -> ConfigItem {
    json!({
        "accountId": MEMBER, "dnsName": "corp.example.com", "dnsIP1": "10.0.0.1", "dnsIP2": "10.0.1.1",
        "adJoinUserName": "svc", "adJoinUserPwParam": "/adjoin/pw",
        "assumeRoleARN": format!("arn:aws:iam::{MEMBER}:role/adjoin-member"), "externalId": "x",
    })
    .as_object()
    .cloned()
    .expect("object")
}

fn instance(i: &str, state: &str, platform: Platform, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: id(i),
        state: state.into(),
        platform,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>(),
    }
}

fn tools_tag() -> TagMatch {
    TagMatch {
        key: "adjoin:role".into(),
        value: "ad-tools".into(),
    }
}

/// A world where every check passes.
fn world() -> (FakeAws, FakeAdmin) {
    let aws = FakeAws::new(account(HOME), region());
    let admin = FakeAdmin::new(account(HOME));
    aws.put_config(&account(MEMBER), item());
    aws.put_instance(
        &account(MEMBER),
        &region(),
        instance(
            INSTANCE,
            "running",
            Platform::Linux,
            &[("adGroupName", "linux-admins")],
        ),
    );
    aws.put_instance(
        &account(HOME),
        &region(),
        instance(
            TOOLS,
            "running",
            Platform::Linux,
            &[("adjoin:role", "ad-tools")],
        ),
    );
    admin.put_agent(&account(MEMBER), &region(), &id(INSTANCE), online("Linux"));
    admin.put_agent(&account(HOME), &region(), &id(TOOLS), online("Linux"));
    admin.put_reference(&account(MEMBER), &region(), "/adjoin/pw");
    (aws, admin)
}

async fn run_validate(aws: &FakeAws, admin: &FakeAdmin) -> Report {
    let ports = CheckPorts {
        config: aws,
        sessions: aws,
        admin,
    };
    validate(&ports, MEMBER, &region()).await
}

async fn run_preflight(aws: &FakeAws, admin: &FakeAdmin) -> Report {
    let ports = CheckPorts {
        config: aws,
        sessions: aws,
        admin,
    };
    preflight(&ports, MEMBER, INSTANCE, &region(), &tools_tag()).await
}

fn verdict(report: &Report, name: &str) -> Verdict {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {report:?}"))
        .verdict
}

#[tokio::test]
async fn a_good_item_validates_and_its_password_is_only_probed() {
    let (aws, admin) = world();
    let report = run_validate(&aws, &admin).await;
    assert!(report.passed(), "{report:#?}");
    assert_eq!(
        report.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
        [
            "config item",
            "account id",
            "role ARN",
            "DC IPs",
            "DNS name",
            "item valid",
            "role assumable",
            "password reference"
        ]
    );
    assert_eq!(aws.assumed()[0].external_id.as_deref(), Some("x"));
    assert_eq!(admin.probed(), ["/adjoin/pw"]);
}

#[tokio::test]
async fn a_missing_item_fails_and_the_rest_is_skipped() {
    let aws = FakeAws::new(account(HOME), region());
    let admin = FakeAdmin::new(account(HOME));
    let report = run_validate(&aws, &admin).await;
    assert_eq!(verdict(&report, "config item"), Verdict::Fail);
    assert!(
        report.checks[1..]
            .iter()
            .all(|c| c.verdict == Verdict::Skip)
    );
    assert!(!report.passed());
    let ports = CheckPorts {
        config: &aws,
        sessions: &aws,
        admin: &admin,
    };
    let bad = validate(&ports, "1234", &region()).await;
    assert_eq!(verdict(&bad, "config item"), Verdict::Fail);
    assert!(bad.checks[0].detail.contains("not 12 digits"));
}

#[tokio::test]
async fn each_attribute_check_fails_on_its_own_attribute() {
    let cases: [(&str, serde_json::Value, &str); 5] = [
        ("accountId", json!("999988887777"), "account id"),
        (
            "assumeRoleARN",
            json!("arn:aws:iam::999988887777:role/x"),
            "role ARN",
        ),
        ("dnsIP2", json!("10.0.0.300"), "DC IPs"),
        ("dnsName", json!("nodots"), "DNS name"),
        ("adJoinUserName", json!(""), "item valid"),
    ];
    for (attribute, value, check) in cases {
        let (aws, admin) = world();
        let mut bad = item();
        bad.insert(attribute.into(), value);
        aws.put_config(&account(MEMBER), bad);
        let report = run_validate(&aws, &admin).await;
        assert_eq!(
            verdict(&report, check),
            Verdict::Fail,
            "{attribute}: {report:#?}"
        );
        assert!(report.get(check).and_then(|c| c.fix.as_ref()).is_some());
        assert_eq!(verdict(&report, "item valid"), Verdict::Fail);
        assert_eq!(verdict(&report, "role assumable"), Verdict::Skip);
        let others_pass = report
            .checks
            .iter()
            .filter(|c| c.name != check && c.name != "item valid")
            .all(|c| c.verdict != Verdict::Fail);
        assert!(others_pass, "{attribute}: {report:#?}");
    }
}

#[tokio::test]
async fn a_role_that_cannot_be_assumed_fails_with_the_trust_fix() {
    let (aws, admin) = world();
    let faults = Faults::default();
    faults.inject(Op::AssumeRole, Fault::AccessDenied, None);
    let sessions = Faulty::new(Arc::new(aws.clone()), faults);
    let ports = CheckPorts {
        config: &aws,
        sessions: &sessions,
        admin: &admin,
    };
    let report = validate(&ports, MEMBER, &region()).await;
    let role = report.get("role assumable").expect("line");
    assert_eq!(role.verdict, Verdict::Fail);
    assert!(
        role.fix
            .as_deref()
            .is_some_and(|f| f.contains("externalId"))
    );
    assert_eq!(verdict(&report, "password reference"), Verdict::Skip);
}

#[tokio::test]
async fn a_missing_password_reference_fails_and_so_does_a_denied_probe() {
    let (aws, admin) = world();
    let mut other = item();
    other.insert("adJoinUserPwParam".into(), json!("/adjoin/other"));
    aws.put_config(&account(MEMBER), other);
    let report = run_validate(&aws, &admin).await;
    let line = report.get("password reference").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(
        line.fix
            .as_deref()
            .is_some_and(|f| f.contains("put-parameter"))
    );

    let (aws, admin) = world();
    let faults = AdminFaults::default();
    faults.fail(AdminOp::ProbeSecret);
    let denied = FaultyAdmin::new(Arc::new(admin), faults);
    let ports = CheckPorts {
        config: &aws,
        sessions: &aws,
        admin: &denied,
    };
    let report = validate(&ports, MEMBER, &region()).await;
    let line = report.get("password reference").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(
        line.fix
            .as_deref()
            .is_some_and(|f| f.contains("ssm:DescribeParameters"))
    );
}

#[tokio::test]
async fn a_secret_arn_is_probed_in_its_own_region() {
    let (aws, admin) = world();
    let arn = format!("arn:aws:secretsmanager:us-east-1:{MEMBER}:secret:adjoin/join-AbCdEf");
    let mut with_secret = item();
    with_secret.insert("secretArn".into(), json!(arn));
    aws.put_config(&account(MEMBER), with_secret);
    assert_eq!(
        verdict(&run_validate(&aws, &admin).await, "password reference"),
        Verdict::Fail,
        "not in eu-west-1"
    );
    admin.put_reference(
        &account(MEMBER),
        &Region::parse("us-east-1").expect("valid"),
        &arn,
    );
    assert!(run_validate(&aws, &admin).await.passed());
}

#[tokio::test]
async fn a_central_parameter_is_probed_in_the_home_account_and_a_foreign_one_is_not() {
    let (aws, admin) = world();
    let arn = format!("arn:aws:ssm:eu-west-1:{HOME}:parameter/adjoin/central");
    let mut central = item();
    central.insert("adJoinUserPwParam".into(), json!(arn));
    aws.put_config(&account(MEMBER), central);
    admin.put_reference(&account(HOME), &region(), &arn);
    assert!(run_validate(&aws, &admin).await.passed());

    let mut foreign = item();
    foreign.insert(
        "adJoinUserPwParam".into(),
        json!("arn:aws:ssm:eu-west-1:444455556666:parameter/adjoin/pw"),
    );
    aws.put_config(&account(MEMBER), foreign);
    let report = run_validate(&aws, &admin).await;
    let line = report.get("password reference").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(line.detail.contains("444455556666"));
}

#[tokio::test]
async fn a_ready_instance_passes_the_preflight() {
    let (aws, admin) = world();
    let report = run_preflight(&aws, &admin).await;
    assert!(report.passed(), "{report:#?}");
    assert_eq!(
        report.checks.iter().map(|c| c.name).collect::<Vec<_>>(),
        [
            "config item",
            "role assumable",
            "instance running",
            "SSM agent",
            "platform",
            "opt-out tag",
            "adGroupName",
            "tools host",
            "tools host agent"
        ]
    );
}

#[tokio::test]
async fn an_invalid_item_fails_the_preflight_with_every_problem() {
    let (aws, admin) = world();
    let mut bad = item();
    bad.insert("dnsName".into(), json!("nodots"));
    bad.remove("dnsIP1");
    aws.put_config(&account(MEMBER), bad);
    let report = run_preflight(&aws, &admin).await;
    let line = report.get("config item").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(line.detail.contains("dnsName") && line.detail.contains("dnsIP1"));
    assert!(
        report.checks[1..]
            .iter()
            .all(|c| c.verdict == Verdict::Skip)
    );
}

#[tokio::test]
async fn a_missing_or_stopped_instance_fails() {
    let (aws, admin) = world();
    aws.put_instance(
        &account(MEMBER),
        &region(),
        instance(INSTANCE, "stopped", Platform::Linux, &[]),
    );
    let report = run_preflight(&aws, &admin).await;
    let line = report.get("instance running").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(line.detail.contains("stopped"));

    let (aws, admin) = world();
    let ports = CheckPorts {
        config: &aws,
        sessions: &aws,
        admin: &admin,
    };
    let report = preflight(
        &ports,
        MEMBER,
        "i-0fff1234def567890",
        &region(),
        &tools_tag(),
    )
    .await;
    assert_eq!(verdict(&report, "instance running"), Verdict::Fail);
    assert_eq!(verdict(&report, "SSM agent"), Verdict::Skip);
    assert_eq!(verdict(&report, "opt-out tag"), Verdict::Skip);
}

#[tokio::test]
async fn an_agent_that_is_unregistered_or_offline_fails() {
    let (aws, _) = world();
    let admin = FakeAdmin::new(account(HOME));
    admin.put_agent(&account(HOME), &region(), &id(TOOLS), online("Linux"));
    let report = run_preflight(&aws, &admin).await;
    let line = report.get("SSM agent").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(
        line.fix
            .as_deref()
            .is_some_and(|f| f.contains("AmazonSSMManagedInstanceCore"))
    );

    let mut lost = online("Linux");
    lost.ping_status = "ConnectionLost".into();
    admin.put_agent(&account(MEMBER), &region(), &id(INSTANCE), lost);
    let report = run_preflight(&aws, &admin).await;
    let line = report.get("SSM agent").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(line.detail.contains("ConnectionLost"));
}

#[test]
fn platforms_other_than_linux_and_windows_fail() {
    let i = instance(INSTANCE, "running", Platform::Linux, &[]);
    assert_eq!(
        platform_check(&i, Some(&online("Windows"))).verdict,
        Verdict::Pass
    );
    assert_eq!(platform_check(&i, None).verdict, Verdict::Pass);
    assert!(platform_check(&i, None).detail.contains("from EC2"));
    let mac = platform_check(&i, Some(&online("MacOS")));
    assert_eq!(mac.verdict, Verdict::Fail);
    assert!(mac.detail.contains("MacOS"));
}

#[test]
fn the_opt_out_tag_fails_and_its_absence_passes() {
    let out = instance(
        INSTANCE,
        "running",
        Platform::Linux,
        &[("autoadjoin", " False ")],
    );
    let line = opt_out_check(&out);
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(
        line.fix
            .as_deref()
            .is_some_and(|f| f.contains("delete-tags"))
    );
    let kept = instance(
        INSTANCE,
        "running",
        Platform::Linux,
        &[("autoadjoin", "true")],
    );
    assert_eq!(opt_out_check(&kept).verdict, Verdict::Pass);
}

#[test]
fn group_tags_with_commas_control_characters_or_too_long_fail() {
    let with = |v: &str| instance(INSTANCE, "running", Platform::Linux, &[("adGroupName", v)]);
    assert_eq!(
        group_tag_check(&with("linux-admins")).verdict,
        Verdict::Pass
    );
    assert_eq!(
        group_tag_check(&instance(INSTANCE, "running", Platform::Linux, &[])).verdict,
        Verdict::Pass
    );
    assert_eq!(group_tag_check(&with("a,b")).verdict, Verdict::Fail);
    assert_eq!(group_tag_check(&with("a\nb")).verdict, Verdict::Fail);
    assert_eq!(
        group_tag_check(&with(&"g".repeat(257))).verdict,
        Verdict::Fail
    );
}

#[tokio::test]
async fn a_missing_tools_host_fails_and_its_agent_is_skipped() {
    let (aws, admin) = world();
    aws.put_instance(
        &account(HOME),
        &region(),
        instance(
            TOOLS,
            "stopped",
            Platform::Linux,
            &[("adjoin:role", "ad-tools")],
        ),
    );
    let report = run_preflight(&aws, &admin).await;
    let line = report.get("tools host").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(
        line.fix
            .as_deref()
            .is_some_and(|f| f.contains("Key=adjoin:role,Value=ad-tools"))
    );
    assert_eq!(verdict(&report, "tools host agent"), Verdict::Skip);
}

#[tokio::test]
async fn the_items_tools_host_tag_overrides_the_default_and_its_agent_is_checked() {
    let (aws, admin) = world();
    let mut custom = item();
    custom.insert("toolsHostTag".into(), json!("role=other-tools"));
    aws.put_config(&account(MEMBER), custom);
    assert_eq!(
        verdict(&run_preflight(&aws, &admin).await, "tools host"),
        Verdict::Fail
    );
    let other = "i-0000000000000000b";
    aws.put_instance(
        &account(HOME),
        &region(),
        instance(
            other,
            "running",
            Platform::Windows,
            &[("role", "other-tools")],
        ),
    );
    let report = run_preflight(&aws, &admin).await;
    assert_eq!(verdict(&report, "tools host"), Verdict::Pass);
    assert_eq!(
        verdict(&report, "tools host agent"),
        Verdict::Fail,
        "no agent for it"
    );
    admin.put_agent(&account(HOME), &region(), &id(other), online("Windows"));
    assert!(run_preflight(&aws, &admin).await.passed());
}

#[tokio::test]
async fn a_denied_agent_lookup_fails_with_the_permission_to_add() {
    let (aws, admin) = world();
    let faults = AdminFaults::default();
    faults.fail(AdminOp::DescribeAgent);
    let denied = FaultyAdmin::new(Arc::new(admin), faults);
    let ports = CheckPorts {
        config: &aws,
        sessions: &aws,
        admin: &denied,
    };
    let report = preflight(&ports, MEMBER, INSTANCE, &region(), &tools_tag()).await;
    let line = report.get("SSM agent").expect("line");
    assert_eq!(line.verdict, Verdict::Fail);
    assert!(
        line.fix
            .as_deref()
            .is_some_and(|f| f.contains("ssm:DescribeInstanceInformation"))
    );
}
