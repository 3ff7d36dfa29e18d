//! What the tests of every crate build the same way: ids, the member account's config
//! item, instances, ledger records, the fake world most tests start from
//! ([`world`]), and a worker on it.
//!
//! The world: the service runs in [`HOME`] ([`REGION`]); the member account [`MEMBER`]
//! has its config item ([`member_item`]: role with external id [`EXTERNAL_ID`], password
//! parameter [`PASSWORD_PARAMETER`], which exists), a running Linux instance [`LINUX`]
//! tagged `adGroupName=linux-admins` and a running Windows instance [`WINDOWS`]; the
//! AD tools host [`TOOLS`] runs at home, tagged as [`tools_tag`] says. Every instance's
//! SSM agent is online.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::SystemTime;

use serde_json::json;

use crate::admin::fake::online;
use crate::config::{ConfigItem, TagMatch};
use crate::fake::FakeAws;
use crate::faults::{Faults, Faulty};
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::{Instance, Platform};
use crate::ledger::{self, JoinRecord, JoinStatus};
use crate::render::{CommandRequest, decode_params};
use crate::worker::{Ports, Settings, Worker};

/// The account the service runs in.
pub const HOME: &str = "123456789012";
/// The member account of the world.
pub const MEMBER: &str = "111122223333";
/// The world's Region.
pub const REGION: &str = "eu-west-1";
/// The member account's running Linux instance.
pub const LINUX: &str = "i-0aaaaaaaaaaaaaaa1";
/// The member account's running Windows instance.
pub const WINDOWS: &str = "i-0bbbbbbbbbbbbbbb2";
/// The AD tools host, in the home account.
pub const TOOLS: &str = "i-0ccccccccccccccc3";
/// The member item's password parameter.
pub const PASSWORD_PARAMETER: &str = "/adjoin/join-password";
/// The member item's external id.
pub const EXTERNAL_ID: &str = "ext-42";

pub fn account(a: &str) -> AccountId {
    AccountId::parse(a).expect("valid account id")
}

/// [`REGION`].
pub fn region() -> Region {
    region_named(REGION)
}

pub fn region_named(name: &str) -> Region {
    Region::parse(name).expect("valid Region")
}

pub fn instance_id(i: &str) -> InstanceId {
    InstanceId::parse(i).expect("valid instance id")
}

/// An instance: `tags` as key/value pairs.
pub fn instance(id: &str, state: &str, platform: Platform, tags: &[(&str, &str)]) -> Instance {
    Instance {
        id: instance_id(id),
        state: state.into(),
        platform,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// The config item of `account`: its role (with [`EXTERNAL_ID`]) in that account.
pub fn config_item(account: &str) -> ConfigItem {
    json!({
        "accountId": account, "adJoinUserName": "svc-join", "adJoinUserPwParam": PASSWORD_PARAMETER,
        "dnsName": "example.test", "dnsIP1": "10.200.0.1", "dnsIP2": "10.200.0.4",
        "assumeRoleARN": format!("arn:aws:iam::{account}:role/adjoin-member"), "externalId": EXTERNAL_ID
    })
    .as_object()
    .cloned()
    .expect("object")
}

/// The config item of [`MEMBER`].
pub fn member_item() -> ConfigItem {
    config_item(MEMBER)
}

/// The tag the AD tools host carries: `adjoin:role=ad-tools`.
pub fn tools_tag() -> TagMatch {
    TagMatch {
        key: "adjoin:role".into(),
        value: "ad-tools".into(),
    }
}

/// A ledger record of a join that succeeded on 2 January 2026, 09:00 UTC.
pub fn record(instance: &str, account: &str) -> JoinRecord {
    JoinRecord {
        instance_id: instance.into(),
        account: account.into(),
        region: REGION.into(),
        status: JoinStatus::Joined,
        computer_name: "I0ABC".into(),
        message_id: "m".into(),
        event_id: "e".into(),
        command_id: None,
        command_target: None,
        ou_path: None,
        attempts: 1,
        exit_code: Some(0),
        output: None,
        created_at: "2026-01-02T09:00:00Z".into(),
        updated_at: "2026-01-02T09:00:00Z".into(),
        expires_at: None,
        version: 1,
    }
}

/// The same record, written just now.
pub fn record_now(instance: &str, account: &str) -> JoinRecord {
    let now = ledger::format_time(SystemTime::now());
    JoinRecord {
        created_at: now.clone(),
        updated_at: now,
        ..record(instance, account)
    }
}

/// A world with nothing in it but the service's home.
pub fn bare_world() -> FakeAws {
    FakeAws::new(account(HOME), region())
}

/// The world of the module's description.
pub fn world() -> FakeAws {
    let aws = bare_world();
    let (member, home, region) = (account(MEMBER), account(HOME), region());
    aws.put_config(&member, member_item());
    let linux = instance(
        LINUX,
        "running",
        Platform::Linux,
        &[("adGroupName", "linux-admins")],
    );
    let windows = instance(WINDOWS, "running", Platform::Windows, &[]);
    let tag = tools_tag();
    let tools = instance(TOOLS, "running", Platform::Linux, &[(&tag.key, &tag.value)]);
    for (at, i, platform) in [
        (&member, linux, "Linux"),
        (&member, windows, "Windows"),
        (&home, tools, "Linux"),
    ] {
        aws.put_agent(at, &region, &i.id, online(platform));
        aws.put_instance(at, &region, i);
    }
    // Where the AD tools host reads it (staged joins), and where instances read it
    // (sharedPassword).
    aws.put_reference(&home, &region, PASSWORD_PARAMETER);
    aws.put_reference(&member, &region, PASSWORD_PARAMETER);
    aws
}

/// The worker's settings: the defaults, the tools host found by [`tools_tag`].
pub fn settings() -> Settings {
    Settings::new(tools_tag())
}

/// The worker's ports on `aws`, each failing as `faults` say.
pub fn faulty_ports(aws: &FakeAws, faults: &Faults) -> Ports {
    let wrap = || Arc::new(Faulty::new(Arc::new(aws.clone()), faults.clone()));
    Ports {
        config: wrap(),
        sessions: wrap(),
        ledger: wrap(),
        queue: Some(wrap()),
    }
}

/// A worker on `aws` with [`settings`], its ports failing as `faults` say.
pub fn worker(aws: &FakeAws, faults: &Faults) -> Worker {
    Worker::new(faulty_ports(aws, faults), settings())
}

/// The parameters a command carries, decoded, by name.
pub fn params_of(request: &CommandRequest) -> BTreeMap<String, String> {
    decode_params(&request.commands).into_iter().collect()
}
