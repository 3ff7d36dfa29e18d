//! Each check's pass and fail, on the in-memory fakes.

use std::sync::Arc;

use serde_json::json;

use super::*;
use crate::admin::fake::online;
use crate::fake::FakeAws;
use crate::faults::{Fault, Faults, Faulty, Op};
use crate::testing::{
    EXTERNAL_ID, HOME, LINUX as INSTANCE, MEMBER, PASSWORD_PARAMETER, TOOLS, account, bare_world,
    instance, instance_id as id, member_item as item, region, region_named, tools_tag, world,
};

/// `aws`, with its operator ports failing at `op`, access denied.
fn denied(aws: &FakeAws, op: Op) -> Faulty<FakeAws> {
    let faults = Faults::default();
    faults.inject(op, Fault::AccessDenied, None);
    Faulty::new(Arc::new(aws.clone()), faults)
}

/// The checks' ports: the config table and sessions of `aws`, the operator's `admin`.
fn ports<'a>(aws: &'a FakeAws, admin: &'a dyn AdminSessions) -> CheckPorts<'a> {
    CheckPorts {
        config: aws,
        sessions: aws,
        admin,
    }
}

async fn run_validate(aws: &FakeAws, admin: &dyn AdminSessions) -> Report {
    validate(&ports(aws, admin), MEMBER, &region()).await
}

async fn run_preflight(aws: &FakeAws, admin: &dyn AdminSessions) -> Report {
    preflight(
        &ports(aws, admin),
        MEMBER,
        INSTANCE,
        &region(),
        &tools_tag(),
    )
    .await
}

/// The names of the report's checks, in order.
fn names(report: &Report) -> String {
    let names: Vec<_> = report.checks.iter().map(|c| c.name).collect();
    names.join(", ")
}

/// The check `name` of `report`, which failed.
fn failed<'a>(report: &'a Report, name: &str) -> &'a Check {
    let line = report
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {report:?}"));
    assert_eq!(line.verdict, Verdict::Fail, "{name}: {report:#?}");
    line
}

/// The check `name` of `report`, which failed with a fix that mentions `text`.
fn fails_with_fix<'a>(report: &'a Report, name: &str, text: &str) -> &'a Check {
    let line = failed(report, name);
    assert!(
        line.fix.as_deref().is_some_and(|f| f.contains(text)),
        "{line:?}"
    );
    line
}

fn verdict(report: &Report, name: &str) -> Verdict {
    report
        .get(name)
        .unwrap_or_else(|| panic!("no {name} in {report:?}"))
        .verdict
}

#[tokio::test]
async fn a_good_item_validates_and_its_password_is_only_probed() {
    let aws = world();
    let admin = aws.clone();
    let report = run_validate(&aws, &admin).await;
    assert!(report.passed(), "{report:#?}");
    assert_eq!(
        names(&report),
        "config item, account id, role ARN, DC IPs, DNS name, item valid, role assumable, password reference"
    );
    assert_eq!(aws.assumed()[0].external_id.as_deref(), Some(EXTERNAL_ID));
    assert_eq!(admin.probed(), [PASSWORD_PARAMETER]);
}

#[tokio::test]
async fn a_missing_item_fails_and_the_rest_is_skipped() {
    let aws = bare_world();
    let admin = aws.clone();
    let report = run_validate(&aws, &admin).await;
    assert_eq!(verdict(&report, "config item"), Verdict::Fail);
    assert!(
        report.checks[1..]
            .iter()
            .all(|c| c.verdict == Verdict::Skip)
    );
    assert!(!report.passed());
    let bad = validate(&ports(&aws, &admin), "1234", &region()).await;
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
        let aws = world();
        let admin = aws.clone();
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
    let aws = world();
    let admin = aws.clone();
    let sessions = denied(&aws, Op::AssumeRole);
    let ports = CheckPorts {
        config: &aws,
        sessions: &sessions,
        admin: &admin,
    };
    let report = validate(&ports, MEMBER, &region()).await;
    fails_with_fix(&report, "role assumable", "externalId");
    assert_eq!(verdict(&report, "password reference"), Verdict::Skip);
}

#[tokio::test]
async fn a_missing_password_reference_fails_and_so_does_a_denied_probe() {
    let aws = world();
    let admin = aws.clone();
    let mut other = item();
    other.insert("adJoinUserPwParam".into(), json!("/adjoin/other"));
    aws.put_config(&account(MEMBER), other);
    let report = run_validate(&aws, &admin).await;
    fails_with_fix(&report, "password reference", "put-parameter");

    let aws = world();
    let admin = aws.clone();
    let report = run_validate(&aws, &denied(&admin, Op::ProbeSecret)).await;
    fails_with_fix(&report, "password reference", "ssm:DescribeParameters");
}

#[tokio::test]
async fn a_secret_arn_is_probed_in_its_own_region() {
    let aws = world();
    let admin = aws.clone();
    let arn = format!("arn:aws:secretsmanager:us-east-1:{MEMBER}:secret:adjoin/join-AbCdEf");
    let mut with_secret = item();
    with_secret.insert("secretArn".into(), json!(arn));
    aws.put_config(&account(MEMBER), with_secret);
    assert_eq!(
        verdict(&run_validate(&aws, &admin).await, "password reference"),
        Verdict::Fail,
        "not in eu-west-1"
    );
    admin.put_reference(&account(MEMBER), &region_named("us-east-1"), &arn);
    assert!(run_validate(&aws, &admin).await.passed());
}

#[tokio::test]
async fn a_central_parameter_is_probed_in_the_home_account_and_a_foreign_one_is_not() {
    let aws = world();
    let admin = aws.clone();
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
    let line = failed(&report, "password reference");
    assert!(line.detail.contains("444455556666"));
}

#[tokio::test]
async fn a_staged_account_needs_the_password_where_the_tools_host_reads_it() {
    let aws = bare_world_with_item();
    let admin = aws.clone();
    // Only in the member account: enough for shared-password joins, not for staging.
    admin.put_reference(&account(MEMBER), &region(), PASSWORD_PARAMETER);
    let report = run_validate(&aws, &admin).await;
    let line = failed(&report, "password reference");
    assert!(
        line.detail.contains(HOME) && line.detail.contains("AD tools host"),
        "{line:?}"
    );
    let preflight = run_preflight(&aws, &admin).await;
    assert_eq!(verdict(&preflight, "password reference"), Verdict::Fail);

    let mut shared = item();
    shared.insert("joinMode".into(), json!("sharedPassword"));
    aws.put_config(&account(MEMBER), shared);
    let report = run_validate(&aws, &admin).await;
    assert_eq!(
        verdict(&report, "password reference"),
        Verdict::Pass,
        "{report:#?}"
    );
    assert!(!names(&run_preflight(&aws, &admin).await).contains("password reference"));

    admin.put_reference(&account(HOME), &region(), PASSWORD_PARAMETER);
    aws.put_config(&account(MEMBER), item());
    assert!(run_validate(&aws, &admin).await.passed());
    assert!(run_preflight(&aws, &admin).await.passed());
}

/// The world, its password reference nowhere yet.
fn bare_world_with_item() -> FakeAws {
    let aws = world();
    aws.clear_references();
    aws
}

#[tokio::test]
async fn a_ready_instance_passes_the_preflight() {
    let aws = world();
    let admin = aws.clone();
    let report = run_preflight(&aws, &admin).await;
    assert!(report.passed(), "{report:#?}");
    assert_eq!(
        names(&report),
        "config item, role assumable, instance running, SSM agent, platform, opt-out tag, adGroupName, tools host, tools host agent, password reference"
    );
}

#[tokio::test]
async fn an_invalid_item_fails_the_preflight_with_every_problem() {
    let aws = world();
    let admin = aws.clone();
    let mut bad = item();
    bad.insert("dnsName".into(), json!("nodots"));
    bad.remove("dnsIP1");
    aws.put_config(&account(MEMBER), bad);
    let report = run_preflight(&aws, &admin).await;
    let line = failed(&report, "config item");
    assert!(line.detail.contains("dnsName") && line.detail.contains("dnsIP1"));
    assert!(
        report.checks[1..]
            .iter()
            .all(|c| c.verdict == Verdict::Skip)
    );
}

#[tokio::test]
async fn a_missing_or_stopped_instance_fails() {
    let aws = world();
    let admin = aws.clone();
    aws.put_instance(
        &account(MEMBER),
        &region(),
        instance(INSTANCE, "stopped", Platform::Linux, &[]),
    );
    let report = run_preflight(&aws, &admin).await;
    let line = failed(&report, "instance running");
    assert!(line.detail.contains("stopped"));

    let aws = world();
    let admin = aws.clone();
    let report = preflight(
        &ports(&aws, &admin),
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
    let aws = world();
    let admin = aws.clone();
    admin.remove_agent(&account(MEMBER), &region(), &id(INSTANCE));
    let report = run_preflight(&aws, &admin).await;
    fails_with_fix(&report, "SSM agent", "AmazonSSMManagedInstanceCore");

    let mut lost = online("Linux");
    lost.ping_status = "ConnectionLost".into();
    admin.put_agent(&account(MEMBER), &region(), &id(INSTANCE), lost);
    let report = run_preflight(&aws, &admin).await;
    let line = failed(&report, "SSM agent");
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
        group_tag_check(&with("linux-admins"), None).verdict,
        Verdict::Pass
    );
    assert_eq!(
        group_tag_check(&instance(INSTANCE, "running", Platform::Linux, &[]), None).verdict,
        Verdict::Pass
    );
    assert_eq!(group_tag_check(&with("a, b"), None).verdict, Verdict::Pass);
    assert_eq!(group_tag_check(&with("a,,b"), None).verdict, Verdict::Fail);
    assert_eq!(group_tag_check(&with("a\nb"), None).verdict, Verdict::Fail);
    assert_eq!(
        group_tag_check(&with(&"g".repeat(257)), None).verdict,
        Verdict::Fail
    );
}

#[tokio::test]
async fn a_missing_tools_host_fails_and_its_agent_is_skipped() {
    let aws = world();
    let admin = aws.clone();
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
    fails_with_fix(&report, "tools host", "Key=adjoin:role,Value=ad-tools");
    assert_eq!(verdict(&report, "tools host agent"), Verdict::Skip);
}

#[tokio::test]
async fn the_items_tools_host_tag_overrides_the_default_and_its_agent_is_checked() {
    let aws = world();
    let admin = aws.clone();
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
    let aws = world();
    let admin = aws.clone();
    let report = run_preflight(&aws, &denied(&admin, Op::DescribeAgent)).await;
    fails_with_fix(&report, "SSM agent", "ssm:DescribeInstanceInformation");
}
