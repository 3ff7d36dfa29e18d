//! `adjoin config validate`: the item, the member role and the password reference.

use super::*;

impl Report {
    /// A line for each of `names`, skipped `because`: the checks that depended on one
    /// that failed.
    pub(super) fn skip_all(&mut self, names: &[&'static str], because: &str) {
        for name in names {
            self.push(Check::skip(name, because));
        }
    }
}

/// Reads the item of `account`: one line, and the item when present.
pub(super) async fn config_item(
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
pub(super) fn fix_for(e: &Error, permission: &str) -> String {
    match e {
        Error::AccessDenied { .. } => format!("give the role {permission}"),
        e if e.is_transient() => "try again; the call failed for a passing reason".to_owned(),
        _ => format!("see the error; the call needs {permission}"),
    }
}

/// Assumes the item's role (or opens the service's own account when it has none).
pub(super) async fn role_check(
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
pub(super) async fn admin_ports(
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

/// Whether the join user's password reference exists where its reader reads it: the AD
/// tools host's account and Region for a staged join (the default; the tools host stages
/// and leaves), the member account for `sharedPassword` (the instances read it too). An
/// ARN names its own account and Region either way. Its value is never read.
pub(super) async fn password_check(
    sessions: &dyn Sessions,
    admin: &dyn AdminSessions,
    cfg: &AccountConfig,
    region: &Region,
) -> Check {
    let name = "password reference";
    let (account, region, reader) = match cfg.join_mode {
        JoinMode::Staged => match sessions.home().await {
            Ok(home) => {
                let (account, region) = probe_place(&cfg.password, &home.account, &home.region);
                (account, region, "read by the AD tools host")
            }
            Err(e) => return Check::skip(name, &format!("no session in this account: {e}")),
        },
        JoinMode::SharedPassword => {
            let (account, region) = probe_place(&cfg.password, &cfg.account, region);
            (
                account,
                region,
                "read by the instances: joinMode sharedPassword",
            )
        }
    };
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
            format!(
                "{what} {reference} exists in {account} {region}, {reader} (its value was not read)"
            ),
        ),
        Ok(false) => Check::fail(
            name,
            format!("no {what} {reference} in {account} {region}, where it is {reader}"),
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
        report.skip_all(
            &[
                "account id",
                "role ARN",
                "DC IPs",
                "DNS name",
                "item valid",
                "role assumable",
                "password reference",
            ],
            "no config item",
        );
        return report;
    };
    let (checks, parsed) = item_checks(&item, &account);
    report.checks.extend(checks);
    let Some(cfg) = parsed else {
        report.skip_all(
            &["role assumable", "password reference"],
            "the item is invalid",
        );
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
