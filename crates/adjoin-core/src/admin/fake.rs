//! In-memory fakes of the operator ports.
//!
//! [`FakeAdmin`] holds config items, ledger records, SSM agents and password references
//! per account and Region, and hands out [`AdminPorts`] for any account like
//! [`crate::fake::FakeAws`] does for the worker's ports.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;

use crate::admin::{
    AdminPorts, AdminSessions, AgentInfo, AgentStatus, ConfigAdmin, LedgerFilter, LedgerQuery,
    SecretProbe,
};
use crate::config::{ConfigItem, PasswordRef, RoleTarget};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId, Region};
use crate::ledger::JoinRecord;
use crate::ports::ConfigStore;

#[derive(Default)]
struct State {
    config: BTreeMap<String, ConfigItem>,
    ledger: BTreeMap<String, JoinRecord>,
    agents: BTreeMap<(AccountId, Region, InstanceId), AgentInfo>,
    references: BTreeSet<(AccountId, Region, String)>,
    /// References whose existence was asked about: the fake never has a value to read.
    probed: Vec<String>,
}

/// All fake operator state, shared by the ports it hands out.
#[derive(Clone)]
pub struct FakeAdmin {
    home_account: AccountId,
    state: Arc<Mutex<State>>,
}

impl FakeAdmin {
    pub fn new(home_account: AccountId) -> Self {
        FakeAdmin {
            home_account,
            state: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn put_record(&self, record: JoinRecord) {
        self.state()
            .ledger
            .insert(record.instance_id.clone(), record);
    }

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

    /// Makes a parameter name or secret ARN exist in `account`/`region`.
    pub fn put_reference(&self, account: &AccountId, region: &Region, reference: &str) {
        self.state()
            .references
            .insert((account.clone(), region.clone(), reference.to_owned()));
    }

    /// The references asked about, in order.
    pub fn probed(&self) -> Vec<String> {
        self.state().probed.clone()
    }

    fn scoped(&self, account: &AccountId, region: &Region) -> AdminPorts {
        let scoped = Arc::new(FakeAdminAccount {
            admin: self.clone(),
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
impl ConfigStore for FakeAdmin {
    async fn get(&self, account: &AccountId) -> Result<Option<ConfigItem>, Error> {
        Ok(self.state().config.get(account.as_str()).cloned())
    }
}

#[async_trait]
impl ConfigAdmin for FakeAdmin {
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
impl LedgerQuery for FakeAdmin {
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
impl AdminSessions for FakeAdmin {
    async fn home_in(&self, region: &Region) -> Result<AdminPorts, Error> {
        Ok(self.scoped(&self.home_account, region))
    }

    async fn assume(&self, role: &RoleTarget, region: &Region) -> Result<AdminPorts, Error> {
        Ok(self.scoped(&role.account, region))
    }
}

struct FakeAdminAccount {
    admin: FakeAdmin,
    account: AccountId,
    region: Region,
}

#[async_trait]
impl AgentStatus for FakeAdminAccount {
    async fn agent(&self, instance: &InstanceId) -> Result<Option<AgentInfo>, Error> {
        Ok(self
            .admin
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
        let mut state = self.admin.state();
        state.probed.push(reference.clone());
        Ok(state
            .references
            .contains(&(self.account.clone(), self.region.clone(), reference)))
    }
}
