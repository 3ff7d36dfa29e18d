//! Operating the service: writing config items, reading the ledger, and preflight checks.
//!
//! The port traits here are the AWS calls only the operator commands make (the worker
//! never needs them); `adjoin-aws` implements them; with the `test-util` feature, `fake`
//! implements them in memory on the worker's fake world and [`crate::faults::Faulty`]
//! wraps them to fail on demand, like the worker's ports. What a check finds and what its
//! fix says is decided in [`checks`], what `adjoin status` shows in [`status`].

pub mod checks;
#[cfg(any(test, feature = "test-util"))]
pub mod fake;
pub mod reconcile;
pub mod status;

use std::sync::Arc;

use async_trait::async_trait;
use serde::Serialize;

use crate::arn::Arn;
use crate::config::{ConfigItem, PasswordRef, RoleTarget};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId, Region};
use crate::ledger::JoinRecord;

/// Writing and listing account config items (DynamoDB table, partition key `accountId`).
/// Reading one item is [`crate::ports::ConfigStore`].
#[async_trait]
pub trait ConfigAdmin: Send + Sync {
    /// Writes the item, replacing the account's item if there is one.
    async fn put(&self, item: &ConfigItem) -> Result<(), Error>;
    /// Every item in the table.
    async fn list(&self) -> Result<Vec<ConfigItem>, Error>;
    /// Deletes the account's item; `Ok(false)` when there was none.
    async fn delete(&self, account: &AccountId) -> Result<bool, Error>;
}

/// Which ledger records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LedgerFilter {
    /// Only records of this account.
    pub account: Option<AccountId>,
    /// Only records whose `updatedAt` (RFC 3339, UTC) is at or after this time.
    pub updated_since: Option<String>,
}

impl LedgerFilter {
    /// Whether `record` passes the filter: the same rule the DynamoDB filter expression
    /// applies (`updatedAt` strings compare as times: UTC, whole seconds).
    pub fn matches(&self, record: &JoinRecord) -> bool {
        self.account
            .as_ref()
            .is_none_or(|a| a.as_str() == record.account)
            && self
                .updated_since
                .as_ref()
                .is_none_or(|t| record.updated_at.as_str() >= t.as_str())
    }
}

/// Listing the join ledger (a paginated Scan).
#[async_trait]
pub trait LedgerQuery: Send + Sync {
    /// Every record that passes `filter`.
    async fn scan(&self, filter: &LedgerFilter) -> Result<Vec<JoinRecord>, Error>;
}

/// What SSM knows about an instance's agent (DescribeInstanceInformation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentInfo {
    /// `Online`, `ConnectionLost`, `Inactive`.
    pub ping_status: String,
    /// `Linux`, `Windows`, `MacOS`.
    pub platform_type: Option<String>,
    pub platform_name: Option<String>,
    pub agent_version: Option<String>,
}

/// SSM agents of one account and Region.
#[async_trait]
pub trait AgentStatus: Send + Sync {
    /// The agent of `instance`; `None` when SSM has never heard of it.
    async fn agent(&self, instance: &InstanceId) -> Result<Option<AgentInfo>, Error>;
}

/// Whether a password reference exists, without reading its value (SSM
/// DescribeParameters filtered by name, Secrets Manager DescribeSecret).
#[async_trait]
pub trait SecretProbe: Send + Sync {
    /// `Ok(true)` when the parameter or secret exists and the caller may see it.
    async fn exists(&self, reference: &PasswordRef) -> Result<bool, Error>;
}

/// The operator ports bound to one account and Region.
#[derive(Clone)]
pub struct AdminPorts {
    pub account: AccountId,
    pub region: Region,
    pub agents: Arc<dyn AgentStatus>,
    pub secrets: Arc<dyn SecretProbe>,
}

/// Credentials for the operator ports: the service's own account, or a member account's
/// assumed role (the same role the worker assumes).
#[async_trait]
pub trait AdminSessions: Send + Sync {
    /// The service's own account in `region`.
    async fn home_in(&self, region: &Region) -> Result<AdminPorts, Error>;
    /// A member account, reached by assuming `role`, in `region`.
    async fn assume(&self, role: &RoleTarget, region: &Region) -> Result<AdminPorts, Error>;
}

/// The SSM parameter name inside a reference: the name itself, or the part of a
/// parameter ARN after `:parameter` (`/adjoin/pw` for `…:parameter/adjoin/pw`, `pw` for
/// `…:parameter/pw` — a name without a leading slash has none in the ARN either).
pub fn parameter_name(reference: &str) -> &str {
    match Arn::parse(reference).and_then(|a| a.resource.strip_prefix("parameter")) {
        Some(rest) if rest.matches('/').count() > 1 => rest,
        Some(rest) => rest.trim_start_matches('/'),
        None => reference,
    }
}

/// The account inside an ARN (`arn:PARTITION:SERVICE:REGION:ACCOUNT:…`), if any.
pub fn reference_account(reference: &str) -> Option<AccountId> {
    Arn::parse(reference).and_then(|a| a.account_id())
}

/// An account's ports in `region`, as the worker opens them: through its config item's
/// role, or the service's own account when the item names none; why not, as text.
pub(crate) async fn open_by_item(
    config: &dyn crate::ports::ConfigStore,
    sessions: &dyn crate::ports::Sessions,
    account: &str,
    region: &str,
) -> Result<crate::ports::AccountPorts, String> {
    let account = AccountId::parse(account)?;
    let region = Region::parse(region)?;
    let item = config
        .get(&account)
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no config item for account {account}"))?;
    let cfg =
        crate::config::AccountConfig::from_item(&item, &account).map_err(|e| e.to_string())?;
    crate::ports::open_account(sessions, &cfg, &region)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parameter_names_come_out_of_arns() {
        assert_eq!(parameter_name("/adjoin/pw"), "/adjoin/pw");
        assert_eq!(
            parameter_name("arn:aws:ssm:eu-west-1:123456789012:parameter/adjoin/pw"),
            "/adjoin/pw"
        );
        assert_eq!(
            parameter_name("arn:aws:ssm:eu-west-1:123456789012:parameter/pw"),
            "pw"
        );
    }

    #[test]
    fn reference_accounts_come_out_of_arns() {
        assert_eq!(
            reference_account("arn:aws:ssm:eu-west-1:123456789012:parameter/adjoin/pw")
                .map(|a| a.to_string()),
            Some("123456789012".to_owned())
        );
        assert_eq!(reference_account("/adjoin/pw"), None);
    }

    #[test]
    fn the_ledger_filter_is_by_account_and_time() {
        let mut r = crate::testing::record("i-0abc1234def567890", "111122223333");
        r.updated_at = "2026-01-02T10:00:00Z".into();
        let account = AccountId::parse("111122223333").ok();
        let other = AccountId::parse("999988887777").ok();
        let f = |account: Option<AccountId>, since: Option<&str>| LedgerFilter {
            account,
            updated_since: since.map(str::to_owned),
        };
        assert!(f(None, None).matches(&r));
        assert!(f(account.clone(), Some("2026-01-02T10:00:00Z")).matches(&r));
        assert!(!f(other, None).matches(&r));
        assert!(!f(account, Some("2026-01-02T10:00:01Z")).matches(&r));
    }
}
