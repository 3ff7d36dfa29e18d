//! The account config item (one per member account, in the config table) and its validation.
//!
//! Attribute names are those of the original blog's table, so existing tables keep working:
//! `accountId`, `adJoinUserName`, `adJoinUserPwParam`, `dnsName`, `dnsIP1`, `dnsIP2`,
//! `assumeRoleARN`. Extensions (all optional): `ouPath`, `computerGroups`,
//! `allowedLoginGroups`, `secretArn`,
//! `externalId`, `toolsHostTag`, `computerNamePrefix`, `installRdsSessionHost`,
//! `commandLogGroup`, `commandOutputBucket`, `joinMode`, `commandDocuments`, `sudoGroups`,
//! `toolsHostId`, `allowedOuPaths`, `allowedComputerGroups`. Unknown attributes are ignored.

use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::arn::Arn;
use crate::ids::AccountId;

/// A config item as stored: attribute name → JSON value (strings, lists, numbers).
pub type ConfigItem = Map<String, Value>;

/// Where the join user's password lives. Only the reference ever leaves this service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PasswordRef {
    /// An SSM SecureString parameter (name or ARN): `adJoinUserPwParam`.
    SsmParameter(String),
    /// A Secrets Manager secret with `{"username","password"}`: `secretArn`.
    SecretsManager(String),
}

/// How an instance proves to the directory that it may join (`joinMode`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum JoinMode {
    /// `staged` (the default): the AD tools host creates the computer account with a
    /// one-time password, and the instance joins with that password alone. Instances
    /// never read the join user's password.
    #[default]
    Staged,
    /// `sharedPassword` (the original's way): the instance reads the join user's
    /// password with its own role and joins with it. Every joining instance can read,
    /// for its whole life, a credential that may create and delete computers.
    SharedPassword,
}

impl JoinMode {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinMode::Staged => "staged",
            JoinMode::SharedPassword => "sharedPassword",
        }
    }
}

/// Which SSM documents run the join (`commandDocuments`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub enum CommandDocuments {
    /// `adjoin` (the default): adjoin's own documents, the scripts pinned by content.
    #[default]
    Adjoin,
    /// `awsRunScript`: the original's `AWS-RunShellScript` / `AWS-RunPowerShellScript`,
    /// which run any command as root or SYSTEM (the member stack must allow them:
    /// `AllowAwsRunScriptDocuments=true`).
    AwsRunScript,
}

/// The role to assume in the member account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoleTarget {
    pub arn: String,
    pub account: AccountId,
    pub external_id: Option<String>,
}

/// A tag key and value that mark an instance.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TagMatch {
    pub key: String,
    pub value: String,
}

/// A validated account config item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountConfig {
    pub account: AccountId,
    /// The directory's DNS name, e.g. `corp.example.com`.
    pub dns_name: String,
    /// Domain controller IPs; the first one is the DC joins are pinned to.
    pub dc_ips: Vec<IpAddr>,
    pub join_user: String,
    pub password: PasswordRef,
    pub role: Option<RoleTarget>,
    pub ou_path: Option<String>,
    pub computer_groups: Vec<String>,
    /// `allowedLoginGroups`: the only AD groups an `adGroupName` tag may name; `None`:
    /// any group but the privileged ones ([`crate::instance::PRIVILEGED_GROUPS`]).
    pub allowed_login_groups: Option<Vec<String>>,
    /// `sudoGroups`: AD groups whose members get `sudo` on the account's Linux instances
    /// (an `adSudoGroup` tag narrows it to one of them).
    pub sudo_groups: Vec<String>,
    /// `allowedOuPaths`: the OUs an instance's `adOuPath` tag may place it in.
    pub allowed_ou_paths: Vec<String>,
    /// `allowedComputerGroups`: the groups an instance's `adComputerGroups` tag may add.
    pub allowed_computer_groups: Vec<String>,
    pub tools_host_tag: Option<TagMatch>,
    /// `toolsHostId`: the AD tools host by instance id (in the service's account and
    /// Region; it must still carry the tools-host tag the central stack grants).
    pub tools_host_id: Option<crate::ids::InstanceId>,
    pub computer_name_prefix: Option<String>,
    /// `installRdsSessionHost`: Windows instances also get the Remote Desktop Session
    /// Host role (RDS-RD-Server). Off unless the item says `true`.
    pub install_rds_session_host: bool,
    /// Where SSM keeps the output of the commands sent for this account (audit).
    pub command_output: CommandOutput,
    /// `joinMode`: staged one-time passwords (the default) or the shared join password.
    pub join_mode: JoinMode,
    /// `commandDocuments`: adjoin's own pinned documents (the default) or the original's.
    pub command_documents: CommandDocuments,
}

/// Where SSM Run Command writes a command's output, besides its own 24 000 characters.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CommandOutput {
    /// `commandLogGroup`: a CloudWatch Logs group in the account and Region where the
    /// command runs (written by the instance's role).
    pub log_group: Option<String>,
    /// `commandOutputBucket`: an S3 bucket (key prefix `adjoin/`).
    pub s3_bucket: Option<String>,
}

impl AccountConfig {
    /// The tag of this account's AD tools host: the item's `toolsHostTag`, else the
    /// service's.
    pub fn tools_host_tag<'a>(&'a self, service: &'a TagMatch) -> &'a TagMatch {
        self.tools_host_tag.as_ref().unwrap_or(service)
    }

    /// Kerberos realm: the DNS name in upper case (lower case breaks RHEL 9 / AL2023).
    pub fn realm(&self) -> String {
        self.dns_name.to_ascii_uppercase()
    }

    /// Validates an item for `account` (the account of the event, or the item's key).
    ///
    /// The error lists every problem found, so one fix-and-retry is enough.
    pub fn from_item(item: &ConfigItem, account: &AccountId) -> Result<Self, InvalidItem> {
        let item = &normalized(item);
        let mut problems = Problems::default();
        let text = |name: &str| -> Option<String> {
            match item.get(name) {
                Some(Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                Some(Value::Number(n)) => Some(n.to_string()),
                _ => None,
            }
        };
        let set_account = format!("set accountId to {account}");

        match text("accountId") {
            Some(id) if id == account.as_str() => {}
            Some(id) => problems.add(
                "accountId",
                format!("accountId {id:?} is not the account {account} it is read for"),
                set_account,
            ),
            None => problems.add("accountId", "accountId is missing", set_account),
        }

        const FIX_DNS: &str = "set dnsName to the directory's DNS name, e.g. corp.example.com";
        let dns_name = text("dnsName").unwrap_or_default();
        if dns_name.is_empty() {
            problems.add("dnsName", "dnsName is missing", FIX_DNS);
        } else if !is_dns_name(&dns_name) {
            problems.add(
                "dnsName",
                format!("dnsName {dns_name:?} is not a DNS domain name"),
                FIX_DNS,
            );
        }

        const FIX_IPS: &str = "set dnsIP1 (and dnsIP2) to the domain controllers' IP addresses";
        let mut dc_ips = Vec::new();
        for name in ["dnsIP1", "dnsIP2"] {
            match text(name) {
                Some(ip) => match ip.parse::<IpAddr>() {
                    Ok(ip) => dc_ips.push(ip),
                    Err(_) => {
                        problems.add(name, format!("{name} {ip:?} is not an IP address"), FIX_IPS)
                    }
                },
                None if name == "dnsIP1" => problems.add(name, "dnsIP1 is missing", FIX_IPS),
                None => {}
            }
        }

        const FIX_USER: &str = "set adJoinUserName to the join user's name (sAMAccountName)";
        let join_user = text("adJoinUserName").unwrap_or_default();
        if join_user.is_empty() {
            problems.add("adJoinUserName", "adJoinUserName is missing", FIX_USER);
        } else if join_user.chars().any(|c| c.is_control()) {
            problems.add(
                "adJoinUserName",
                "adJoinUserName contains control characters",
                FIX_USER,
            );
        }

        let password = match (text("secretArn"), text("adJoinUserPwParam")) {
            (Some(arn), _) if Arn::parse(&arn).is_some_and(|a| a.service == "secretsmanager") => {
                Some(PasswordRef::SecretsManager(arn))
            }
            (Some(arn), _) => {
                problems.add(
                    "secretArn",
                    format!("secretArn {arn:?} is not a Secrets Manager ARN"),
                    "set secretArn to the ARN of a Secrets Manager secret {\"username\", \"password\"}",
                );
                None
            }
            (None, Some(param)) if is_parameter_reference(&param) => {
                Some(PasswordRef::SsmParameter(param))
            }
            (None, Some(_)) => {
                // Never echo it: an operator may have pasted the password itself here.
                problems.add(
                    "adJoinUserPwParam",
                    "adJoinUserPwParam is not an SSM parameter name or ARN",
                    "set adJoinUserPwParam to the name (or ARN) of the SecureString parameter that holds the password, not the password",
                );
                None
            }
            (None, None) => {
                problems.add(
                    "adJoinUserPwParam",
                    "neither adJoinUserPwParam nor secretArn is set",
                    "set adJoinUserPwParam (an SSM SecureString parameter name) or secretArn",
                );
                None
            }
        };

        let external_id = text("externalId");
        let role = match text("assumeRoleARN") {
            Some(arn) => match role_account(&arn) {
                Ok(owner) if &owner == account => Some(RoleTarget {
                    arn,
                    account: owner,
                    external_id,
                }),
                Ok(owner) => {
                    problems.add(
                        "assumeRoleARN",
                        format!("assumeRoleARN {arn} belongs to account {owner}, not to account {account}"),
                        format!("use the member stack's role in {account}: arn:aws:iam::{account}:role/…"),
                    );
                    None
                }
                Err(e) => {
                    problems.add(
                        "assumeRoleARN",
                        e,
                        "assumeRoleARN is arn:aws:iam::ACCOUNT:role/NAME (the member stack's output)",
                    );
                    None
                }
            },
            None => None,
        };

        const FIX_GROUPS: &str = "set computerGroups to a list of group names";
        let computer_groups = group_list(item, "computerGroups", FIX_GROUPS, &mut problems);
        let allowed_login_groups = item.get("allowedLoginGroups").filter(|v| !v.is_null()).map(
            |_| {
                group_list(
                    item,
                    "allowedLoginGroups",
                    "set allowedLoginGroups to the list of AD groups an adGroupName tag may name",
                    &mut problems,
                )
            },
        );
        const FIX_SUDO: &str = "set sudoGroups to a list of AD group names of letters, digits, spaces, '.', '_' and '-'";
        let sudo_groups = group_list(item, "sudoGroups", FIX_SUDO, &mut problems);
        if let Some(bad) = sudo_groups.iter().find(|g| {
            !g.chars()
                .all(|c| c.is_ascii_alphanumeric() || " ._-".contains(c))
        }) {
            problems.add(
                "sudoGroups",
                format!("sudoGroups names {bad:?}, which a sudoers file cannot name safely"),
                FIX_SUDO,
            );
        }
        // Distinguished names hold commas: a list, or one DN as a string.
        let allowed_ou_paths = match item.get("allowedOuPaths") {
            Some(Value::String(dn)) if !dn.trim().is_empty() => vec![dn.trim().to_owned()],
            _ => group_list(
                item,
                "allowedOuPaths",
                "set allowedOuPaths to a list of OU distinguished names an adOuPath tag may name",
                &mut problems,
            ),
        };
        let allowed_computer_groups = group_list(
            item,
            "allowedComputerGroups",
            "set allowedComputerGroups to a list of AD groups an adComputerGroups tag may name",
            &mut problems,
        );
        let tools_host_tag = match text("toolsHostTag") {
            Some(tag) => match tag.split_once('=') {
                Some((k, v)) if !k.is_empty() && !v.is_empty() => Some(TagMatch {
                    key: k.to_owned(),
                    value: v.to_owned(),
                }),
                _ => {
                    problems.add(
                        "toolsHostTag",
                        format!("toolsHostTag {tag:?} is not KEY=VALUE"),
                        "set toolsHostTag to KEY=VALUE, e.g. adjoin:role=ad-tools",
                    );
                    None
                }
            },
            None => None,
        };

        let tools_host_id = match text("toolsHostId") {
            Some(id) => match crate::ids::InstanceId::parse(&id) {
                Ok(id) => Some(id),
                Err(e) => {
                    problems.add(
                        "toolsHostId",
                        format!("toolsHostId: {e}"),
                        "set toolsHostId to the AD tools host's instance id, e.g. i-0123456789abcdef0, or remove it",
                    );
                    None
                }
            },
            None => None,
        };

        let computer_name_prefix = text("computerNamePrefix");
        if let Some(prefix) = &computer_name_prefix
            && let Err(e) = crate::computer_name::check_prefix(prefix)
        {
            problems.add(
                "computerNamePrefix",
                e,
                "use 1-6 letters, digits or '-', starting with a letter",
            );
        }

        let install_rds_session_host = match item.get("installRdsSessionHost") {
            None | Some(Value::Null) | Some(Value::Bool(false)) => false,
            Some(Value::Bool(true)) => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("true") => true,
            Some(Value::String(s)) if s.eq_ignore_ascii_case("false") => false,
            Some(other) => {
                problems.add(
                    "installRdsSessionHost",
                    format!("installRdsSessionHost {other} is not true or false"),
                    "set installRdsSessionHost to true or false",
                );
                false
            }
        };

        let log_group = text("commandLogGroup");
        if let Some(group) = &log_group
            && !is_log_group_name(group)
        {
            problems.add(
                "commandLogGroup",
                format!("commandLogGroup {group:?} is not a CloudWatch Logs group name"),
                "use a log group name of letters, digits and _-/.#",
            );
        }
        let s3_bucket = text("commandOutputBucket");
        if let Some(bucket) = &s3_bucket
            && !is_bucket_name(bucket)
        {
            problems.add(
                "commandOutputBucket",
                format!("commandOutputBucket {bucket:?} is not an S3 bucket name"),
                "use an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-'",
            );
        }

        let join_mode = match text("joinMode").as_deref() {
            None => JoinMode::default(),
            Some(mode) if mode.eq_ignore_ascii_case("staged") => JoinMode::Staged,
            Some(mode) if mode.eq_ignore_ascii_case("sharedPassword") => JoinMode::SharedPassword,
            Some(other) => {
                problems.add(
                    "joinMode",
                    format!("joinMode {other:?} is neither staged nor sharedPassword"),
                    "set joinMode to staged (one-time passwords, the default) or sharedPassword",
                );
                JoinMode::default()
            }
        };

        let command_documents = match text("commandDocuments").as_deref() {
            None => CommandDocuments::default(),
            Some(d) if d.eq_ignore_ascii_case("adjoin") => CommandDocuments::Adjoin,
            Some(d) if d.eq_ignore_ascii_case("awsRunScript") => CommandDocuments::AwsRunScript,
            Some(other) => {
                problems.add(
                    "commandDocuments",
                    format!("commandDocuments {other:?} is neither adjoin nor awsRunScript"),
                    "set commandDocuments to adjoin (the default) or awsRunScript",
                );
                CommandDocuments::default()
            }
        };

        match (problems.0.is_empty(), password) {
            (true, Some(password)) => Ok(AccountConfig {
                account: account.clone(),
                dns_name: dns_name.to_ascii_lowercase(),
                dc_ips,
                join_user,
                password,
                role,
                ou_path: text("ouPath"),
                computer_groups,
                allowed_login_groups,
                sudo_groups,
                allowed_ou_paths,
                allowed_computer_groups,
                tools_host_tag,
                tools_host_id,
                computer_name_prefix,
                install_rds_session_host,
                command_output: CommandOutput {
                    log_group,
                    s3_bucket,
                },
                join_mode,
                command_documents,
            }),
            _ => Err(InvalidItem {
                account: account.clone(),
                problems: problems.0,
            }),
        }
    }
}

/// The item with blanks trimmed from its attribute names: the original walkthrough's
/// item, as users copy it, names `" adJoinUserName"` and `" adJoinUserPwParam"` with a
/// leading space. A name that is already exact wins over a blank-padded one.
pub fn normalized(item: &ConfigItem) -> ConfigItem {
    let mut clean = ConfigItem::new();
    for (name, value) in item {
        let trimmed = name.trim();
        if trimmed == name || !item.contains_key(trimmed) {
            clean.insert(trimmed.to_owned(), value.clone());
        }
    }
    clean
}

/// One thing wrong with a config item.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The attribute at fault (`accountId`, `dnsIP1`, …).
    pub attribute: &'static str,
    /// What is wrong. Never the value of an attribute that may hold a secret by mistake.
    pub message: String,
    /// What to change.
    pub fix: String,
}

/// A config item the service cannot use, with every problem found.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("config item for account {account} is invalid: {}", messages(problems))]
pub struct InvalidItem {
    pub account: AccountId,
    pub problems: Vec<Problem>,
}

impl InvalidItem {
    /// The problems with `attribute`.
    pub fn of<'a>(&'a self, attribute: &'a str) -> impl Iterator<Item = &'a Problem> {
        self.problems
            .iter()
            .filter(move |p| p.attribute == attribute)
    }
}

fn messages(problems: &[Problem]) -> String {
    problems
        .iter()
        .map(|p| p.message.as_str())
        .collect::<Vec<_>>()
        .join("; ")
}

/// A list of AD group names: a JSON list of strings, or one comma-separated string.
fn group_list(
    item: &ConfigItem,
    attribute: &'static str,
    fix: &str,
    problems: &mut Problems,
) -> Vec<String> {
    let malformed = format!("{attribute} must be a list of group names");
    match item.get(attribute) {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(values)) => {
            let names: Vec<String> = values
                .iter()
                .filter_map(|v| match v {
                    Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
                    _ => None,
                })
                .collect();
            if names.len() != values.len() {
                problems.add(attribute, malformed, fix);
            }
            names
        }
        Some(Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect(),
        Some(_) => {
            problems.add(attribute, malformed, fix);
            Vec::new()
        }
    }
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, attribute: &'static str, message: impl Into<String>, fix: impl Into<String>) {
        self.0.push(Problem {
            attribute,
            message: message.into(),
            fix: fix.into(),
        });
    }
}

/// A CloudWatch Logs group name: 1–512 of letters, digits and `_-/.#`.
fn is_log_group_name(name: &str) -> bool {
    (1..=512).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-/.#".contains(&b))
}

/// An S3 bucket name: 3–63 of lower-case letters, digits, `.` and `-`, starting and
/// ending with a letter or digit.
fn is_bucket_name(name: &str) -> bool {
    let edge = |b: Option<u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
        && edge(name.bytes().next())
        && edge(name.bytes().last())
}

/// The account id inside an IAM role ARN `arn:PARTITION:iam::ACCOUNT:role/NAME`.
pub fn role_account(arn: &str) -> Result<AccountId, String> {
    match Arn::parse(arn) {
        Some(a) if a.service == "iam" && a.region.is_empty() && a.resource.starts_with("role/") => {
            AccountId::parse(a.account).map_err(|e| format!("assumeRoleARN {arn}: {e}"))
        }
        _ => Err(format!("assumeRoleARN {arn:?} is not an IAM role ARN")),
    }
}

/// An SSM parameter name (`/path/name`: letters, digits, `_.-/`) or parameter ARN.
fn is_parameter_reference(value: &str) -> bool {
    let name = match Arn::parse(value) {
        Some(a) if a.service == "ssm" => a.resource.strip_prefix("parameter").unwrap_or_default(),
        Some(_) => return false,
        None if value.starts_with("arn:") => return false,
        None => value,
    };
    !name.is_empty()
        && name.len() <= 2048
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_.-/".contains(&b))
}

/// The Region of a reference: the ARN's Region, or `None` for a plain name.
pub fn reference_region(reference: &str) -> Option<&str> {
    Arn::parse(reference)
        .map(|a| a.region)
        .filter(|region| !region.is_empty())
}

/// A DNS domain name: at least two labels of letters, digits and inner hyphens.
pub fn is_dns_name(name: &str) -> bool {
    name.len() <= 253
        && name.contains('.')
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn account() -> AccountId {
        AccountId::parse("111122223333").expect("valid")
    }

    fn blog_item() -> ConfigItem {
        json!({
            "accountId": "111122223333",
            "adJoinUserName": "svc-join",
            "adJoinUserPwParam": "/adjoin/join-password",
            "dnsName": "Corp.Example.com",
            "dnsIP1": "10.0.0.10",
            "dnsIP2": "10.0.1.10",
            "assumeRoleARN": "arn:aws:iam::111122223333:role/adjoin-member",
            "someOtherAttribute": 42
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    #[test]
    fn the_blogs_item_is_valid() {
        let c = AccountConfig::from_item(&blog_item(), &account()).expect("valid");
        assert_eq!(c.dns_name, "corp.example.com");
        assert_eq!(c.realm(), "CORP.EXAMPLE.COM");
        assert_eq!(c.dc_ips.len(), 2);
        assert_eq!(
            c.password,
            PasswordRef::SsmParameter("/adjoin/join-password".into())
        );
        assert_eq!(c.role.as_ref().map(|r| r.account.clone()), Some(account()));
        assert_eq!(
            c.join_mode,
            JoinMode::Staged,
            "staged unless the item says otherwise"
        );
    }

    #[test]
    fn join_mode_is_read_and_checked() {
        let mode = |v: serde_json::Value| {
            let mut item = blog_item();
            item.insert("joinMode".into(), v);
            AccountConfig::from_item(&item, &account()).map(|c| c.join_mode)
        };
        assert_eq!(
            mode(json!("sharedPassword")).unwrap(),
            JoinMode::SharedPassword
        );
        assert_eq!(mode(json!("STAGED")).unwrap(), JoinMode::Staged);
        let err = mode(json!("password")).unwrap_err();
        assert_eq!(err.problems.len(), 1);
        assert_eq!(err.problems[0].attribute, "joinMode");
        assert!(err.problems[0].fix.contains("sharedPassword"), "{err}");
    }

    #[test]
    fn command_output_destinations_are_read_and_checked() {
        let c = AccountConfig::from_item(&blog_item(), &account()).expect("valid");
        assert_eq!(c.command_output, CommandOutput::default());
        let mut item = blog_item();
        item.insert("commandLogGroup".into(), json!("/adjoin/commands"));
        item.insert("commandOutputBucket".into(), json!("audit-111122223333"));
        let c = AccountConfig::from_item(&item, &account()).expect("valid");
        assert_eq!(
            c.command_output.log_group.as_deref(),
            Some("/adjoin/commands")
        );
        assert_eq!(
            c.command_output.s3_bucket.as_deref(),
            Some("audit-111122223333")
        );
        item.insert("commandLogGroup".into(), json!("bad group name!"));
        item.insert("commandOutputBucket".into(), json!("Not_A_Bucket"));
        let e = AccountConfig::from_item(&item, &account()).expect_err("invalid");
        assert_eq!(e.of("commandLogGroup").count(), 1, "{e}");
        assert_eq!(e.of("commandOutputBucket").count(), 1, "{e}");
        assert_eq!(e.problems.len(), 2, "{e}");
    }

    #[test]
    fn role_of_another_account_is_refused() {
        let mut item = blog_item();
        item.insert(
            "assumeRoleARN".into(),
            json!("arn:aws:iam::999988887777:role/adjoin-member"),
        );
        let e = AccountConfig::from_item(&item, &account()).expect_err("refused");
        let problem = e.of("assumeRoleARN").next().expect("the role's problem");
        assert!(problem.message.contains("999988887777"), "{e}");
        assert!(
            problem.fix.contains("arn:aws:iam::111122223333:role/"),
            "{e}"
        );
    }

    #[test]
    fn every_problem_is_listed() {
        let item =
            json!({"accountId": "111122223333", "dnsName": "nodots", "dnsIP1": "10.0.0.300"});
        let e = AccountConfig::from_item(item.as_object().expect("object"), &account())
            .expect_err("refused");
        let attributes: Vec<&str> = e.problems.iter().map(|p| p.attribute).collect();
        assert_eq!(
            attributes,
            ["dnsName", "dnsIP1", "adJoinUserName", "adJoinUserPwParam"],
            "{e}"
        );
        assert!(e.problems.iter().all(|p| !p.fix.is_empty()));
        assert!(e.to_string().contains("dnsName \"nodots\""), "{e}");
    }

    #[test]
    fn extensions_are_read() {
        let mut item = blog_item();
        item.insert(
            "ouPath".into(),
            json!("OU=Servers,DC=corp,DC=example,DC=com"),
        );
        item.insert("computerGroups".into(), json!(["gmsa-hosts", "web"]));
        item.insert(
            "secretArn".into(),
            json!("arn:aws:secretsmanager:us-east-1:111122223333:secret:ad-join-AbCdEf"),
        );
        item.insert("externalId".into(), json!("ext-1"));
        item.insert("toolsHostTag".into(), json!("role=ad-tools"));
        item.insert("installRdsSessionHost".into(), json!(true));
        let c = AccountConfig::from_item(&item, &account()).expect("valid");
        assert_eq!(c.computer_groups, vec!["gmsa-hosts", "web"]);
        assert!(c.install_rds_session_host);
        assert!(matches!(c.password, PasswordRef::SecretsManager(_)));
        assert_eq!(c.role.and_then(|r| r.external_id).as_deref(), Some("ext-1"));
        assert_eq!(
            c.tools_host_tag,
            Some(TagMatch {
                key: "role".into(),
                value: "ad-tools".into()
            })
        );
    }

    #[test]
    fn a_password_pasted_as_parameter_name_is_refused_and_not_echoed() {
        let mut item = blog_item();
        item.insert("adJoinUserPwParam".into(), json!("Hunter2 is my p@ss!"));
        let e = AccountConfig::from_item(&item, &account()).expect_err("refused");
        assert_eq!(e.of("adJoinUserPwParam").count(), 1, "{e}");
        assert!(!format!("{e} {e:?}").contains("Hunter2"));
        item.insert(
            "adJoinUserPwParam".into(),
            json!("arn:aws:ssm:eu-west-1:123456789012:parameter/adjoin/pw"),
        );
        assert!(AccountConfig::from_item(&item, &account()).is_ok());
    }

    #[test]
    fn references_name_their_region() {
        assert_eq!(
            reference_region("arn:aws:secretsmanager:eu-central-1:1:secret:x"),
            Some("eu-central-1")
        );
        assert_eq!(reference_region("/adjoin/pw"), None);
    }

    #[test]
    fn role_arns_are_checked() {
        assert!(role_account("arn:aws:iam::111122223333:role/x").is_ok());
        assert!(role_account("arn:aws-us-gov:iam::111122223333:role/path/x").is_ok());
        assert!(role_account("arn:aws:iam::111122223333:user/x").is_err());
        assert!(role_account("arn:aws:sts::111122223333:role/x").is_err());
        assert!(role_account("garbage").is_err());
    }

    /// The original walkthrough's item as users copy it (tests/samples/blog-itemData.json,
    /// here as DynamoDB returns it): attribute names with a leading space, empty values
    /// to fill in, a role of another account.
    fn walkthrough_item() -> ConfigItem {
        json!({
            "accountId": "123412341234",
            " adJoinUserName": "ADJoinUser",
            " adJoinUserPwParam": "ADJoinUser-PwParam",
            "dnsName": "",
            "dnsIP1": "",
            "dnsIP2": "",
            "assumeRoleARN": "arn:aws:iam::111122223333:role/adJoinLambdaRole"
        })
        .as_object()
        .cloned()
        .expect("object")
    }

    #[test]
    fn the_walkthrough_item_as_copied_is_refused_with_what_to_change() {
        let account = AccountId::parse("123412341234").expect("valid");
        let e = AccountConfig::from_item(&walkthrough_item(), &account).expect_err("refused");
        let attributes: Vec<&str> = e.problems.iter().map(|p| p.attribute).collect();
        // The names with a leading space are read; what is left is what to fill in.
        assert_eq!(attributes, ["dnsName", "dnsIP1", "assumeRoleARN"], "{e}");
        let role = e.of("assumeRoleARN").next().expect("role");
        assert!(role.fix.contains("123412341234"), "{role:?}");
    }

    #[test]
    fn the_walkthrough_item_filled_in_works() {
        let account = AccountId::parse("123412341234").expect("valid");
        let mut item = walkthrough_item();
        item.insert("dnsName".into(), json!("corp.example.com"));
        item.insert("dnsIP1".into(), json!("10.0.0.10"));
        item.insert(
            "assumeRoleARN".into(),
            json!("arn:aws:iam::123412341234:role/adjoin-member"),
        );
        let c = AccountConfig::from_item(&item, &account).expect("valid");
        assert_eq!(c.join_user, "ADJoinUser");
        assert_eq!(
            c.password,
            PasswordRef::SsmParameter("ADJoinUser-PwParam".into())
        );
        let clean = normalized(&item);
        assert!(clean.contains_key("adJoinUserName") && !clean.contains_key(" adJoinUserName"));
    }
}
