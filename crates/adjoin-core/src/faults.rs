//! Fault injection: wrap any port, the worker's or the operator's, so that chosen calls
//! fail on demand.
//!
//! ```
//! # use adjoin_core::faults::{Faults, Fault, Op};
//! let faults = Faults::default();
//! faults.inject(Op::SendCommand, Fault::Throttle, Some(1)); // the next SendCommand is throttled
//! faults.inject(Op::DescribeAgent, Fault::AccessDenied, None); // every agent lookup is denied
//! ```
//! Wrap the ports with [`Faulty`]; sessions it opens (the worker's [`Sessions`] and the
//! operator's [`AdminSessions`]) hand out wrapped ports too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use crate::admin::{
    AdminPorts, AdminSessions, AgentInfo, AgentStatus, ConfigAdmin, LedgerFilter, LedgerQuery,
    SecretProbe,
};
use crate::config::{ConfigItem, PasswordRef, RoleTarget, TagMatch};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::Instance;
use crate::ledger::JoinRecord;
use crate::ports::{
    AccountPorts, CommandResult, Commands, ConfigStore, DeadLetter, Instances, Ledger, Queue,
    Sessions,
};
use crate::render::CommandRequest;

/// A port operation that can be made to fail.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Op {
    GetConfig,
    AssumeRole,
    HomeSession,
    DescribeInstances,
    FindByTag,
    SendCommand,
    CommandResult,
    ReadLedger,
    WriteLedger,
    SendToDlq,
    ChangeVisibility,
    // The operator ports.
    PutConfig,
    ListConfig,
    DeleteConfig,
    ScanLedger,
    DescribeAgent,
    ProbeSecret,
}

impl Op {
    fn name(self) -> &'static str {
        match self {
            Op::GetConfig => "dynamodb:GetItem",
            Op::AssumeRole => "sts:AssumeRole",
            Op::HomeSession => "sts:GetCallerIdentity",
            Op::DescribeInstances => "ec2:DescribeInstances",
            Op::FindByTag => "ec2:DescribeInstances",
            Op::SendCommand => "ssm:SendCommand",
            Op::CommandResult => "ssm:GetCommandInvocation",
            Op::ReadLedger => "dynamodb:BatchGetItem",
            Op::WriteLedger => "dynamodb:PutItem",
            Op::SendToDlq => "sqs:SendMessage",
            Op::ChangeVisibility => "sqs:ChangeMessageVisibilityBatch",
            Op::PutConfig => "dynamodb:PutItem",
            Op::ListConfig => "dynamodb:Scan",
            Op::DeleteConfig => "dynamodb:DeleteItem",
            Op::ScanLedger => "dynamodb:Scan",
            Op::DescribeAgent => "ssm:DescribeInstanceInformation",
            Op::ProbeSecret => "ssm:DescribeParameters",
        }
    }
}

/// How a call fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    Throttle,
    ServerError,
    Timeout,
    AccessDenied,
    NotFound,
    AgentNotReady,
}

impl Fault {
    fn error(self, op: Op) -> Error {
        let operation = op.name();
        let message = "injected fault".to_owned();
        match self {
            Fault::Throttle => Error::Throttled { operation, message },
            Fault::ServerError => Error::Unavailable {
                operation,
                message: "injected HTTP 500".into(),
            },
            Fault::Timeout => Error::Unavailable {
                operation,
                message: "injected time-out".into(),
            },
            Fault::AccessDenied => Error::AccessDenied { operation, message },
            Fault::NotFound => Error::NotFound { operation, message },
            Fault::AgentNotReady => Error::AgentNotReady { operation, message },
        }
    }
}

/// Per operation: the fault, and how many more times it fires (`None`: always).
type Rules = HashMap<Op, (Fault, Option<u32>)>;

/// The faults to inject.
#[derive(Clone, Default)]
pub struct Faults {
    rules: Arc<Mutex<Rules>>,
}

impl Faults {
    /// Makes the next `times` calls of `op` fail with `fault` (`None`: every call).
    pub fn inject(&self, op: Op, fault: Fault, times: Option<u32>) {
        self.lock().insert(op, (fault, times));
    }

    /// Removes every fault.
    pub fn clear(&self) {
        self.lock().clear();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Rules> {
        self.rules
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn check(&self, op: Op) -> Result<(), Error> {
        let mut rules = self.lock();
        let Some((fault, remaining)) = rules.get_mut(&op) else {
            return Ok(());
        };
        let fault = *fault;
        match remaining {
            Some(0) => {
                rules.remove(&op);
                Ok(())
            }
            Some(n) => {
                *n -= 1;
                Err(fault.error(op))
            }
            None => Err(fault.error(op)),
        }
    }
}

/// A port wrapped so that injected faults fire before the real call.
#[derive(Clone)]
pub struct Faulty<T: ?Sized> {
    inner: Arc<T>,
    faults: Faults,
}

impl<T: ?Sized> Faulty<T> {
    pub fn new(inner: Arc<T>, faults: Faults) -> Self {
        Faulty { inner, faults }
    }
}

#[async_trait]
impl<T: ConfigStore + ?Sized> ConfigStore for Faulty<T> {
    async fn get(&self, account: &AccountId) -> Result<Option<ConfigItem>, Error> {
        self.faults.check(Op::GetConfig)?;
        self.inner.get(account).await
    }
}

impl<T: ?Sized> Faulty<T> {
    /// Another port behind the same faults.
    fn also<U: ?Sized>(&self, inner: Arc<U>) -> Arc<Faulty<U>> {
        Arc::new(Faulty::new(inner, self.faults.clone()))
    }

    fn wrap(&self, ports: AccountPorts) -> AccountPorts {
        AccountPorts {
            account: ports.account,
            region: ports.region,
            instances: self.also(ports.instances),
            commands: self.also(ports.commands),
        }
    }

    fn wrap_admin(&self, ports: AdminPorts) -> AdminPorts {
        AdminPorts {
            agents: self.also(ports.agents),
            secrets: self.also(ports.secrets),
            ..ports
        }
    }
}

#[async_trait]
impl<T: Sessions + ?Sized> Sessions for Faulty<T> {
    async fn home(&self) -> Result<AccountPorts, Error> {
        self.faults.check(Op::HomeSession)?;
        Ok(self.wrap(self.inner.home().await?))
    }
    async fn assume(&self, role: &RoleTarget, region: &Region) -> Result<AccountPorts, Error> {
        self.faults.check(Op::AssumeRole)?;
        Ok(self.wrap(self.inner.assume(role, region).await?))
    }
    async fn home_in(&self, region: &Region) -> Result<AccountPorts, Error> {
        self.faults.check(Op::HomeSession)?;
        Ok(self.wrap(self.inner.home_in(region).await?))
    }
}

#[async_trait]
impl<T: Instances + ?Sized> Instances for Faulty<T> {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>, Error> {
        self.faults.check(Op::DescribeInstances)?;
        self.inner.describe(ids).await
    }
    async fn find_running_by_tag(&self, tag: &TagMatch) -> Result<Vec<Instance>, Error> {
        self.faults.check(Op::FindByTag)?;
        self.inner.find_running_by_tag(tag).await
    }
}

#[async_trait]
impl<T: Commands + ?Sized> Commands for Faulty<T> {
    async fn send(&self, request: &CommandRequest) -> Result<String, Error> {
        self.faults.check(Op::SendCommand)?;
        self.inner.send(request).await
    }
    async fn result(
        &self,
        command_id: &str,
        instance: &InstanceId,
    ) -> Result<CommandResult, Error> {
        self.faults.check(Op::CommandResult)?;
        self.inner.result(command_id, instance).await
    }
}

#[async_trait]
impl<T: Ledger + ?Sized> Ledger for Faulty<T> {
    async fn get_many(&self, ids: &[InstanceId]) -> Result<Vec<JoinRecord>, Error> {
        self.faults.check(Op::ReadLedger)?;
        self.inner.get_many(ids).await
    }
    async fn put_if(&self, record: &JoinRecord, expected: Option<u64>) -> Result<bool, Error> {
        self.faults.check(Op::WriteLedger)?;
        self.inner.put_if(record, expected).await
    }
}

#[async_trait]
impl<T: Queue + ?Sized> Queue for Faulty<T> {
    async fn send_to_dlq(&self, letter: &DeadLetter) -> Result<(), Error> {
        self.faults.check(Op::SendToDlq)?;
        self.inner.send_to_dlq(letter).await
    }
    async fn retry_after(
        &self,
        queue_arn: &str,
        messages: &[(String, Duration)],
    ) -> Result<(), Error> {
        self.faults.check(Op::ChangeVisibility)?;
        self.inner.retry_after(queue_arn, messages).await
    }
}

#[async_trait]
impl<T: ConfigAdmin + ?Sized> ConfigAdmin for Faulty<T> {
    async fn put(&self, item: &ConfigItem) -> Result<(), Error> {
        self.faults.check(Op::PutConfig)?;
        self.inner.put(item).await
    }
    async fn list(&self) -> Result<Vec<ConfigItem>, Error> {
        self.faults.check(Op::ListConfig)?;
        self.inner.list().await
    }
    async fn delete(&self, account: &AccountId) -> Result<bool, Error> {
        self.faults.check(Op::DeleteConfig)?;
        self.inner.delete(account).await
    }
}

#[async_trait]
impl<T: LedgerQuery + ?Sized> LedgerQuery for Faulty<T> {
    async fn scan(&self, filter: &LedgerFilter) -> Result<Vec<JoinRecord>, Error> {
        self.faults.check(Op::ScanLedger)?;
        self.inner.scan(filter).await
    }
}

#[async_trait]
impl<T: AgentStatus + ?Sized> AgentStatus for Faulty<T> {
    async fn agent(&self, instance: &InstanceId) -> Result<Option<AgentInfo>, Error> {
        self.faults.check(Op::DescribeAgent)?;
        self.inner.agent(instance).await
    }
}

#[async_trait]
impl<T: SecretProbe + ?Sized> SecretProbe for Faulty<T> {
    async fn exists(&self, reference: &PasswordRef) -> Result<bool, Error> {
        self.faults.check(Op::ProbeSecret)?;
        self.inner.exists(reference).await
    }
}

#[async_trait]
impl<T: AdminSessions + ?Sized> AdminSessions for Faulty<T> {
    async fn home_in(&self, region: &Region) -> Result<AdminPorts, Error> {
        self.faults.check(Op::HomeSession)?;
        Ok(self.wrap_admin(self.inner.home_in(region).await?))
    }
    async fn assume(&self, role: &RoleTarget, region: &Region) -> Result<AdminPorts, Error> {
        self.faults.check(Op::AssumeRole)?;
        Ok(self.wrap_admin(self.inner.assume(role, region).await?))
    }
}
