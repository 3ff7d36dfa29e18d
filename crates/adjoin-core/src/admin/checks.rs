//! `adjoin config validate` and `adjoin check`: what each check finds, and the fix.
//!
//! Each check is a line: a name, a verdict, what was found and, when it did not pass,
//! what to do about it. A check whose prerequisite failed is skipped (it could not be
//! run), which is not a pass.

use serde::Serialize;

use crate::admin::{AdminPorts, AdminSessions, AgentInfo, parameter_name, reference_account};
use crate::config::{self, AccountConfig, ConfigItem, PasswordRef, RoleTarget, TagMatch};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::{GROUP_TAG, Instance, OPT_OUT_TAG, Platform, group_tag_problem};
use crate::ports::{AccountPorts, ConfigStore, Sessions};

/// How a check ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Fail,
    /// Not run: a check it depends on failed.
    Skip,
}

impl Verdict {
    /// ✓, ✗ or – .
    pub fn mark(self) -> &'static str {
        match self {
            Verdict::Pass => "✓",
            Verdict::Fail => "✗",
            Verdict::Skip => "–",
        }
    }
}

/// One line of a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub name: &'static str,
    pub verdict: Verdict,
    /// What was found.
    pub detail: String,
    /// What to do, when the check did not pass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

impl Check {
    pub fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Pass,
            detail: detail.into(),
            fix: None,
        }
    }

    pub fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Check {
            name,
            verdict: Verdict::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn skip(name: &'static str, because: &str) -> Self {
        Check {
            name,
            verdict: Verdict::Skip,
            detail: format!("not checked: {because}"),
            fix: None,
        }
    }
}

/// The lines of a validation or preflight, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    pub checks: Vec<Check>,
}

impl Report {
    /// Whether every check passed.
    pub fn passed(&self) -> bool {
        self.checks.iter().all(|c| c.verdict == Verdict::Pass)
    }

    fn push(&mut self, check: Check) -> bool {
        let passed = check.verdict == Verdict::Pass;
        self.checks.push(check);
        passed
    }

    /// The check called `name`, for tests and callers that want one.
    pub fn get(&self, name: &str) -> Option<&Check> {
        self.checks.iter().find(|c| c.name == name)
    }
}

const FIX_PUT: &str = "write the item with `adjoin config put` (see README, Account config item)";

fn text(item: &ConfigItem, name: &str) -> Option<String> {
    match item.get(name) {
        Some(serde_json::Value::String(s)) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Some(serde_json::Value::Number(n)) => Some(n.to_string()),
        _ => None,
    }
}

/// The attribute checks of an item, each on its own line: account id, role ARN, DC IPs,
/// DNS name, then the item as the worker reads it (every other problem).
pub fn item_checks(item: &ConfigItem, account: &AccountId) -> (Vec<Check>, Option<AccountConfig>) {
    let mut checks = Vec::new();
    checks.push(match text(item, "accountId") {
        Some(id) if id == account.as_str() => Check::pass("account id", id),
        Some(id) => match AccountId::parse(&id) {
            Ok(_) => Check::fail(
                "account id",
                format!("accountId {id} is not the item's key {account}"),
                format!("set accountId to {account}"),
            ),
            Err(e) => Check::fail(
                "account id",
                e,
                "accountId is the 12-digit member account id",
            ),
        },
        None => Check::fail(
            "account id",
            "accountId is missing",
            format!("set accountId to {account}"),
        ),
    });
    checks.push(match text(item, "assumeRoleARN") {
        None => Check::pass(
            "role ARN",
            "no assumeRoleARN: instances are in the service's own account",
        ),
        Some(arn) => match config::role_account(&arn) {
            Ok(owner) if &owner == account => Check::pass("role ARN", arn),
            Ok(owner) => Check::fail(
                "role ARN",
                format!("{arn} belongs to account {owner}, not {account}"),
                format!("use the member stack's role in {account}: arn:aws:iam::{account}:role/…"),
            ),
            Err(e) => Check::fail(
                "role ARN",
                e,
                "assumeRoleARN is arn:aws:iam::ACCOUNT:role/NAME (the member stack's output)",
            ),
        },
    });
    let mut ips = Vec::new();
    let mut bad_ips = Vec::new();
    for name in ["dnsIP1", "dnsIP2"] {
        match text(item, name) {
            Some(ip) if ip.parse::<std::net::IpAddr>().is_ok() => ips.push(ip),
            Some(ip) => bad_ips.push(format!("{name} {ip:?} is not an IP address")),
            None if name == "dnsIP1" => bad_ips.push("dnsIP1 is missing".to_owned()),
            None => {}
        }
    }
    checks.push(if bad_ips.is_empty() {
        Check::pass("DC IPs", ips.join(", "))
    } else {
        Check::fail(
            "DC IPs",
            bad_ips.join("; "),
            "set dnsIP1 (and dnsIP2) to the domain controllers' IP addresses",
        )
    });
    checks.push(match text(item, "dnsName") {
        Some(name) if config::is_dns_name(&name) => Check::pass("DNS name", name),
        Some(name) => Check::fail(
            "DNS name",
            format!("{name:?} is not a DNS domain name"),
            "set dnsName to the directory's DNS name, e.g. corp.example.com",
        ),
        None => Check::fail(
            "DNS name",
            "dnsName is missing",
            "set dnsName to the directory's DNS name, e.g. corp.example.com",
        ),
    });
    let parsed = AccountConfig::from_item(item, account);
    checks.push(match &parsed {
        Ok(_) => Check::pass(
            "item valid",
            "every attribute reads as the service reads it",
        ),
        Err(problems) => Check::fail("item valid", problems.clone(), FIX_PUT),
    });
    (checks, parsed.ok())
}

/// Reads the item of `account`: one line, and the item when present.
async fn config_item(
    config: &dyn ConfigStore,
    account: &str,
) -> (Check, Option<(AccountId, ConfigItem)>) {
    let id = match AccountId::parse(account) {
        Ok(id) => id,
        Err(e) => {
            return (
                Check::fail("config item", e, "give the member account's 12-digit id"),
                None,
            );
        }
    };
    match config.get(&id).await {
        Ok(Some(item)) => (
            Check::pass("config item", format!("present for {id}")),
            Some((id, item)),
        ),
        Ok(None) => (
            Check::fail(
                "config item",
                format!("no item for {id} in the config table"),
                FIX_PUT,
            ),
            None,
        ),
        Err(e) => (
            Check::fail(
                "config item",
                e.to_string(),
                "check ADJOIN_CONFIG_TABLE and your credentials' dynamodb:GetItem permission",
            ),
            None,
        ),
    }
}

/// The fix for an error of a call made in the member account with the assumed role.
fn fix_for(e: &Error, permission: &str) -> String {
    match e {
        Error::AccessDenied { .. } => format!("give the role {permission}"),
        e if e.is_transient() => "try again; the call failed for a passing reason".to_owned(),
        _ => format!("see the error; the call needs {permission}"),
    }
}

/// Assumes the item's role (or opens the service's own account when it has none).
async fn role_check(
    sessions: &dyn Sessions,
    role: Option<&RoleTarget>,
    region: &Region,
) -> (Check, Option<AccountPorts>) {
    let name = "role assumable";
    match role {
        None => match sessions.home_in(region).await {
            Ok(ports) => (
                Check::pass(
                    name,
                    format!("no role: the service's own account {}", ports.account),
                ),
                Some(ports),
            ),
            Err(e) => (
                Check::fail(
                    name,
                    e.to_string(),
                    "check the credentials adjoin runs with",
                ),
                None,
            ),
        },
        Some(role) => match sessions.assume(role, region).await {
            Ok(ports) => (
                Check::pass(
                    name,
                    format!(
                        "assumed {}{}",
                        role.arn,
                        if role.external_id.is_some() {
                            " with the external id"
                        } else {
                            ""
                        }
                    ),
                ),
                Some(ports),
            ),
            Err(e @ Error::AccessDenied { .. }) => (
                Check::fail(
                    name,
                    e.to_string(),
                    "the role's trust policy must allow the service's account to assume it, and externalId must be the member stack's ExternalId (deploy infra/member.yaml in the account)",
                ),
                None,
            ),
            Err(e) => (
                Check::fail(
                    name,
                    e.to_string(),
                    "check that the role exists (deploy infra/member.yaml in the account) and try again",
                ),
                None,
            ),
        },
    }
}

/// Opens the operator ports where the item's instances are: the member role, or the
/// service's own account.
async fn admin_ports(
    admin: &dyn AdminSessions,
    role: Option<&RoleTarget>,
    region: &Region,
) -> Result<AdminPorts, Error> {
    match role {
        Some(role) => admin.assume(role, region).await,
        None => admin.home_in(region).await,
    }
}

/// Where a password reference is checked: an ARN in its own account and Region, a plain
/// name in the member account (where instances read it) in `region`.
pub fn probe_place(
    password: &PasswordRef,
    member: &AccountId,
    region: &Region,
) -> (AccountId, Region) {
    let reference = match password {
        PasswordRef::SsmParameter(r) | PasswordRef::SecretsManager(r) => r,
    };
    let account = reference_account(reference).unwrap_or_else(|| member.clone());
    let region = config::reference_region(reference)
        .and_then(|r| Region::parse(r).ok())
        .unwrap_or_else(|| region.clone());
    (account, region)
}

async fn password_check(
    sessions: &dyn Sessions,
    admin: &dyn AdminSessions,
    cfg: &AccountConfig,
    region: &Region,
) -> Check {
    let name = "password reference";
    let (account, region) = probe_place(&cfg.password, &cfg.account, region);
    let (what, reference, permission) = match &cfg.password {
        PasswordRef::SsmParameter(r) => (
            "parameter",
            parameter_name(r).to_owned(),
            "ssm:DescribeParameters",
        ),
        PasswordRef::SecretsManager(r) => ("secret", r.clone(), "secretsmanager:DescribeSecret"),
    };
    let ports = if account == cfg.account {
        admin_ports(admin, cfg.role.as_ref(), &region).await
    } else {
        match sessions.home().await {
            Ok(home) if home.account == account => admin.home_in(&region).await,
            Ok(home) => {
                return Check::fail(
                    name,
                    format!(
                        "the {what} is in account {account}, neither {} nor this account {}: not checked",
                        cfg.account, home.account
                    ),
                    format!("run `adjoin config validate` with credentials of account {account}"),
                );
            }
            Err(e) => Err(e),
        }
    };
    let ports = match ports {
        Ok(p) => p,
        Err(e) => return Check::skip(name, &format!("no session in {account}: {e}")),
    };
    match ports.secrets.exists(&cfg.password).await {
        Ok(true) => Check::pass(
            name,
            format!("{what} {reference} exists in {account} {region} (its value was not read)"),
        ),
        Ok(false) => Check::fail(
            name,
            format!("no {what} {reference} in {account} {region}"),
            match &cfg.password {
                PasswordRef::SsmParameter(_) => format!(
                    "create it in {account} {region}: aws ssm put-parameter --type SecureString --name {reference} --value …"
                ),
                PasswordRef::SecretsManager(_) => format!(
                    "create the secret {{\"username\",\"password\"}} in {account} {region}, or fix secretArn"
                ),
            },
        ),
        Err(e) => Check::fail(name, e.to_string(), fix_for(&e, permission)),
    }
}

/// The ports `adjoin config validate` and `adjoin check` use.
pub struct CheckPorts<'a> {
    pub config: &'a dyn ConfigStore,
    pub sessions: &'a dyn Sessions,
    pub admin: &'a dyn AdminSessions,
}

/// `adjoin config validate ACCOUNT`: the item, its attributes, the role, the password.
/// `region` is where a password given by name is looked for.
pub async fn validate(ports: &CheckPorts<'_>, account: &str, region: &Region) -> Report {
    let mut report = Report::default();
    let (check, found) = config_item(ports.config, account).await;
    report.push(check);
    let Some((account, item)) = found else {
        for name in [
            "account id",
            "role ARN",
            "DC IPs",
            "DNS name",
            "item valid",
            "role assumable",
            "password reference",
        ] {
            report.push(Check::skip(name, "no config item"));
        }
        return report;
    };
    let (checks, parsed) = item_checks(&item, &account);
    report.checks.extend(checks);
    let Some(cfg) = parsed else {
        report.push(Check::skip("role assumable", "the item is invalid"));
        report.push(Check::skip("password reference", "the item is invalid"));
        return report;
    };
    let (check, session) = role_check(ports.sessions, cfg.role.as_ref(), region).await;
    report.push(check);
    if session.is_none() {
        report.push(Check::skip(
            "password reference",
            "no session in the account",
        ));
        return report;
    }
    report.push(password_check(ports.sessions, ports.admin, &cfg, region).await);
    report
}

/// The `adGroupName` rule the worker applies before a join: written into sssd.conf and a
/// Windows group name, so no control characters, no commas, at most 256 characters.
pub fn group_tag_check(instance: &Instance) -> Check {
    let name = "adGroupName";
    match instance.tag(GROUP_TAG) {
        None => Check::pass(
            name,
            "no adGroupName tag: nobody may log in with AD credentials (Linux: access_provider = deny)",
        ),
        Some(v) => match group_tag_problem(v) {
            Some(problem) => Check::fail(
                name,
                format!("{v:?} {problem}"),
                "tag one AD group name of at most 256 characters, without commas",
            ),
            None => Check::pass(name, v.to_owned()),
        },
    }
}

/// The opt-out tag must be absent for the instance to be joined.
pub fn opt_out_check(instance: &Instance) -> Check {
    if instance.opted_out() {
        Check::fail(
            "opt-out tag",
            format!("tagged {OPT_OUT_TAG}=false: adjoin leaves it alone"),
            format!(
                "remove the tag: aws ec2 delete-tags --resources {} --tags Key={OPT_OUT_TAG}",
                instance.id
            ),
        )
    } else {
        Check::pass("opt-out tag", format!("no {OPT_OUT_TAG}=false"))
    }
}

/// The instance must exist and run.
pub fn instance_check(id: &InstanceId, found: Option<&Instance>, place: &str) -> Check {
    let name = "instance running";
    match found {
        None => Check::fail(
            name,
            format!("EC2 does not know {id} in {place}"),
            "check the instance id, the account and the Region (--region)",
        ),
        Some(i) if i.state == "running" => Check::pass(name, format!("{id} is running")),
        Some(i) => Check::fail(
            name,
            format!("{id} is {}", i.state),
            "start the instance; adjoin joins it on its running event",
        ),
    }
}

/// The SSM agent must be registered and online for Run Command to reach it.
pub fn agent_check(
    name: &'static str,
    id: &InstanceId,
    agent: Result<Option<&AgentInfo>, &Error>,
) -> Check {
    match agent {
        Ok(Some(a)) if a.ping_status == "Online" => Check::pass(
            name,
            format!(
                "{id}: Online{}",
                a.agent_version
                    .as_deref()
                    .map(|v| format!(", agent {v}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(Some(a)) => Check::fail(
            name,
            format!("{id}: {}", a.ping_status),
            "the agent stopped answering: check it runs (systemctl status amazon-ssm-agent / Get-Service AmazonSSMAgent) and reaches the SSM endpoints",
        ),
        Ok(None) => Check::fail(
            name,
            format!("SSM has no agent registered for {id}"),
            "give the instance profile AmazonSSMManagedInstanceCore and a route to the SSM endpoints (NAT or VPC endpoints ssm, ssmmessages, ec2messages)",
        ),
        Err(e) => Check::fail(
            name,
            e.to_string(),
            fix_for(e, "ssm:DescribeInstanceInformation"),
        ),
    }
}

/// Linux and Windows are supported; SSM's platform type wins over EC2's when known
/// (EC2 reports no platform for Linux and macOS alike).
pub fn platform_check(instance: &Instance, agent: Option<&AgentInfo>) -> Check {
    let name = "platform";
    match agent.and_then(|a| a.platform_type.as_deref()) {
        Some(t) if t.eq_ignore_ascii_case("linux") || t.eq_ignore_ascii_case("windows") => {
            let os = agent
                .and_then(|a| a.platform_name.clone())
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            Check::pass(name, format!("{}{os}", t.to_ascii_lowercase()))
        }
        Some(t) => Check::fail(
            name,
            format!("{t} is not supported"),
            "adjoin joins Linux and Windows instances only; tag this one autoadjoin=false",
        ),
        None => Check::pass(
            name,
            format!(
                "{} (from EC2; SSM does not say)",
                match instance.platform {
                    Platform::Linux => "linux",
                    Platform::Windows => "windows",
                }
            ),
        ),
    }
}

/// `adjoin check --account ACCOUNT --instance ID`: everything a join of that instance
/// needs, in the order the worker needs it. `tools_host_tag` is the service's default
/// (the item's `toolsHostTag` overrides it).
pub async fn preflight(
    ports: &CheckPorts<'_>,
    account: &str,
    instance: &str,
    region: &Region,
    tools_host_tag: &TagMatch,
) -> Report {
    let mut report = Report::default();
    let (check, found) = config_item(ports.config, account).await;
    let cfg = match found {
        Some((account, item)) => match AccountConfig::from_item(&item, &account) {
            Ok(cfg) => {
                report.push(Check::pass(
                    "config item",
                    format!("present and valid for {account}"),
                ));
                Some(cfg)
            }
            Err(problems) => {
                report.push(Check::fail("config item", problems, FIX_PUT));
                None
            }
        },
        None => {
            report.push(check);
            None
        }
    };
    let id = match InstanceId::parse(instance) {
        Ok(id) => Some(id),
        Err(e) => {
            report.push(Check::fail(
                "instance id",
                e,
                "give the instance id, e.g. i-0123456789abcdef0",
            ));
            None
        }
    };
    let (Some(cfg), Some(id)) = (cfg, id) else {
        for name in [
            "role assumable",
            "instance running",
            "SSM agent",
            "platform",
            "opt-out tag",
            "adGroupName",
            "tools host",
            "tools host agent",
        ] {
            report.push(Check::skip(name, "no valid config item or instance id"));
        }
        return report;
    };

    let (check, session) = role_check(ports.sessions, cfg.role.as_ref(), region).await;
    report.push(check);
    let described = match &session {
        Some(s) => Some(s.instances.describe(std::slice::from_ref(&id)).await),
        None => None,
    };
    let place = format!("{} {region}", cfg.account);
    let instance = match described {
        None => {
            report.push(Check::skip("instance running", "no session in the account"));
            None
        }
        Some(Err(e)) => {
            report.push(Check::fail(
                "instance running",
                e.to_string(),
                fix_for(&e, "ec2:DescribeInstances"),
            ));
            None
        }
        Some(Ok(found)) => {
            let found = found.into_iter().find(|i| i.id == id);
            report.push(instance_check(&id, found.as_ref(), &place));
            found
        }
    };

    let agent = match (&session, &instance) {
        (Some(_), Some(_)) => {
            let agent = match admin_ports(ports.admin, cfg.role.as_ref(), region).await {
                Ok(p) => p.agents.agent(&id).await,
                Err(e) => Err(e),
            };
            report.push(agent_check(
                "SSM agent",
                &id,
                agent.as_ref().map(Option::as_ref),
            ));
            agent.ok().flatten()
        }
        _ => {
            report.push(Check::skip("SSM agent", "the instance was not found"));
            None
        }
    };
    match &instance {
        Some(i) => {
            report.push(platform_check(i, agent.as_ref()));
            report.push(opt_out_check(i));
            report.push(group_tag_check(i));
        }
        None => {
            for name in ["platform", "opt-out tag", "adGroupName"] {
                report.push(Check::skip(name, "the instance was not found"));
            }
        }
    }

    let tag = cfg
        .tools_host_tag
        .clone()
        .unwrap_or_else(|| tools_host_tag.clone());
    let home = ports.sessions.home().await;
    let host = match &home {
        Err(e) => {
            report.push(Check::fail(
                "tools host",
                e.to_string(),
                "check the credentials adjoin runs with",
            ));
            None
        }
        Ok(home) => match home.instances.find_running_by_tag(&tag).await {
            Ok(mut hosts) => {
                hosts.sort_by(|a, b| a.id.cmp(&b.id));
                match hosts.into_iter().next() {
                    Some(h) => {
                        report.push(Check::pass(
                            "tools host",
                            format!(
                                "{} ({}) tagged {}={} in {} {}",
                                h.id,
                                h.platform.as_str(),
                                tag.key,
                                tag.value,
                                home.account,
                                home.region
                            ),
                        ));
                        Some(h)
                    }
                    None => {
                        report.push(Check::fail(
                            "tools host",
                            format!(
                                "no running instance tagged {}={} in {} {}",
                                tag.key, tag.value, home.account, home.region
                            ),
                            format!(
                                "start the AD tools host, or tag it: aws ec2 create-tags --resources i-… --tags Key={},Value={}",
                                tag.key, tag.value
                            ),
                        ));
                        None
                    }
                }
            }
            Err(e) => {
                report.push(Check::fail(
                    "tools host",
                    e.to_string(),
                    fix_for(&e, "ec2:DescribeInstances"),
                ));
                None
            }
        },
    };
    match (&home, host) {
        (Ok(home), Some(host)) => {
            let agent = match ports.admin.home_in(&home.region).await {
                Ok(p) => p.agents.agent(&host.id).await,
                Err(e) => Err(e),
            };
            report.push(agent_check(
                "tools host agent",
                &host.id,
                agent.as_ref().map(Option::as_ref),
            ));
        }
        _ => {
            report.push(Check::skip("tools host agent", "no tools host"));
        }
    }
    report
}

#[cfg(test)]
mod tests;
