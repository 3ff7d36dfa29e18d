//! The rendered Linux join and leave commands, run under bash against stand-ins for each
//! distribution's tools (package manager, PAM tool, adcli, the AWS CLI, sssd), with the
//! configuration written into a scratch `/etc`. This covers every distribution family's
//! package and configuration path; Debian's is also run for real against a Samba AD domain
//! controller by the end-to-end test (`tests/e2e/samba-ad.sh`).
//!
//! Only the crate's public API: the commands as `render` makes them from a config item.
//! `sandbox` is the scratch machine and its stand-ins; the cases are in `join`, `leave`
//! and `secrets`.

mod join;
mod leave;
mod sandbox;
mod secrets;
mod staged;

use adjoin_core::config::{AccountConfig, ConfigItem};
use adjoin_core::instance::{GROUP_TAG, Platform};
use adjoin_core::render::{Subject, join_command, leave_command};
use adjoin_core::testing::{MEMBER, account, instance, instance_id, region};

pub(crate) const PASSWORD: &str = "S3cret-Join-P@ss";
pub(crate) const COMPUTER: &str = "I0ABCD1234EF567";

pub(crate) fn config() -> AccountConfig {
    config_with("adJoinUserPwParam", "/adjoin/join-password")
}

/// The sandbox's account, joining with the shared join password, its password
/// referenced by `key` (`adJoinUserPwParam` or `secretArn`). Staged joins: [`staged`].
pub(crate) fn config_with(key: &str, reference: &str) -> AccountConfig {
    let mut item = serde_json::json!({
        "accountId": "111122223333", "adJoinUserName": "svc-join",
        "dnsName": "example.test",
        "dnsIP1": "10.200.0.1", "dnsIP2": "10.200.0.4",
        "ouPath": "OU=Servers,DC=example,DC=test", "computerGroups": ["gmsa-hosts"],
        "joinMode": "sharedPassword"
    });
    item[key] = serde_json::json!(reference);
    let item: ConfigItem = serde_json::from_value(item).expect("object");
    AccountConfig::from_item(&item, &account(MEMBER)).expect("valid")
}

/// The owner stamp of the sandbox's instance.
pub(crate) const STAMP: &str = "adjoin 111122223333 eu-west-1 i-0abcd1234ef567890";

pub(crate) fn join(group: &str) -> Vec<String> {
    join_with(&config(), group)
}

pub(crate) fn join_with(config: &AccountConfig, group: &str) -> Vec<String> {
    let instance = instance(
        "i-0abcd1234ef567890",
        "running",
        Platform::Linux,
        &[(GROUP_TAG, group)],
    );
    join_command(&instance, config, &region(), COMPUTER, "event-1").commands
}

pub(crate) fn leave() -> Vec<String> {
    leave_with(&config())
}

pub(crate) fn leave_with(config: &AccountConfig) -> Vec<String> {
    let tools = instance("i-0fedcba9876543210", "running", Platform::Linux, &[]);
    let id = instance_id("i-0abcd1234ef567890");
    let subject = Subject {
        region: &region(),
        instance_id: &id,
        computer_name: COMPUTER,
        event_id: "event-2",
    };
    leave_command(
        &tools,
        config,
        &region(),
        &subject,
        config.ou_path.as_deref(),
    )
    .commands
}
