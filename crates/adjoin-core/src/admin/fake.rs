//! The operator ports on the one in-memory world, [`FakeAws`].
//!
//! The world's config items and ledger are the ones the worker's ports read and write;
//! SSM agents and password references are kept per account and Region, and
//! [`AdminPorts`] are handed out for any account like [`FakeAws::account`] does for the
//! worker's ports. Assuming a role through [`AdminSessions`] is not recorded in
//! [`FakeAws::assumed`] (that lists the worker's sessions).

use std::sync::Arc;

use async_trait::async_trait;

use crate::admin::{
    AdminPorts, AdminSessions, AgentInfo, AgentStatus, ConfigAdmin, LedgerFilter, LedgerQuery,
    SecretProbe,
};
use crate::config::{ConfigItem, PasswordRef, RoleTarget};
use crate::error::Error;
use crate::fake::FakeAws;
use crate::ids::{AccountId, InstanceId, Region};
use crate::ledger::JoinRecord;

impl FakeAws {
    /// Registers an SSM agent for `instance` in `account`/`region`.
    pub fn put_agent(
        &self,
        account: &AccountId,
        region: &Region,
        instance: &InstanceId,
        info: AgentInfo,
    ) {
        self.state()
            .agents
            .insert((account.clone(), region.clone(), instance.clone()), info);
    }

    /// Unregisters the SSM agent of `instance` in `account`/`region`.
    pub fn remove_agent(&self, account: &AccountId, region: &Region, instance: &InstanceId) {
        self.state()
            .agents
            .remove(&(account.clone(), region.clone(), instance.clone()));
    }

    /// Makes a parameter name or secret ARN exist in `account`/`region`.
    /// Forgets every password reference.
    pub fn clear_references(&self) {
        self.state().references.clear();
    }

    pub fn put_reference(&self, account: &AccountId, region: &Region, reference: &str) {
        self.state()
            .references
            .insert((account.clone(), region.clone(), reference.to_owned()));
    }

    /// The references asked about, in order.
    pub fn probed(&self) -> Vec<String> {
        self.state().probed.clone()
    }

    fn admin_ports(&self, account: &AccountId, region: &Region) -> AdminPorts {
        let scoped = Arc::new(FakeAdminAccount {
            aws: self.clone(),
            account: account.clone(),
            region: region.clone(),
        });
        AdminPorts {
            account: account.clone(),
            region: region.clone(),
            agents: scoped.clone(),
            secrets: scoped,
        }
    }
}

/// An agent that is online, for tests.
pub fn online(platform_type: &str) -> AgentInfo {
    AgentInfo {
        ping_status: "Online".into(),
        platform_type: Some(platform_type.into()),
        platform_name: None,
        agent_version: Some("3.3.0.0".into()),
    }
}

#[async_trait]
impl ConfigAdmin for FakeAws {
    async fn put(&self, item: &ConfigItem) -> Result<(), Error> {
        let key = match item.get("accountId") {
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => {
                return Err(Error::Invalid {
                    operation: "dynamodb:PutItem",
                    message: "the item has no accountId".into(),
                });
            }
        };
        self.state().config.insert(key, item.clone());
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ConfigItem>, Error> {
        Ok(self.state().config.values().cloned().collect())
    }

    async fn delete(&self, account: &AccountId) -> Result<bool, Error> {
        Ok(self.state().config.remove(account.as_str()).is_some())
    }
}

#[async_trait]
impl LedgerQuery for FakeAws {
    async fn scan(&self, filter: &LedgerFilter) -> Result<Vec<JoinRecord>, Error> {
        Ok(self
            .state()
            .ledger
            .values()
            .filter(|r| filter.matches(r))
            .cloned()
            .collect())
    }
}

#[async_trait]
impl AdminSessions for FakeAws {
    async fn home_in(&self, region: &Region) -> Result<AdminPorts, Error> {
        Ok(self.admin_ports(self.home_account(), region))
    }

    async fn assume(&self, role: &RoleTarget, region: &Region) -> Result<AdminPorts, Error> {
        Ok(self.admin_ports(&role.account, region))
    }
}

/// The fake SSM agents and password references of one account and Region.
struct FakeAdminAccount {
    aws: FakeAws,
    account: AccountId,
    region: Region,
}

#[async_trait]
impl AgentStatus for FakeAdminAccount {
    async fn agent(&self, instance: &InstanceId) -> Result<Option<AgentInfo>, Error> {
        Ok(self
            .aws
            .state()
            .agents
            .get(&(self.account.clone(), self.region.clone(), instance.clone()))
            .cloned())
    }
}

#[async_trait]
impl SecretProbe for FakeAdminAccount {
    async fn exists(&self, reference: &PasswordRef) -> Result<bool, Error> {
        let reference = match reference {
            PasswordRef::SsmParameter(r) | PasswordRef::SecretsManager(r) => r.clone(),
        };
        let mut state = self.aws.state();
        state.probed.push(reference.clone());
        Ok(state
            .references
            .contains(&(self.account.clone(), self.region.clone(), reference)))
    }
}
