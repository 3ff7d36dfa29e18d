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
    AccountPorts, CommandResult, Commands, ConfigStore, DeadLetter, Instances, Ledger, Parameters,
    Queue, SecretParameter, Sessions, StoredDocument,
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
    TagInstance,
    SendCommand,
    FindCommand,
    DescribeDocument,
    AgentsOnline,
    CommandResult,
    CommandSummary,
    PutParameter,
    DeleteParameter,
    ReadLedger,
    WriteLedger,
    WriteLedgerTransaction,
    SendToDlq,
    Enqueue,
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
            Op::TagInstance => "ec2:CreateTags",
            Op::SendCommand => "ssm:SendCommand",
            Op::FindCommand => "ssm:ListCommands",
            Op::DescribeDocument => "ssm:DescribeDocument",
            Op::AgentsOnline => "ssm:DescribeInstanceInformation",
            Op::CommandResult => "ssm:GetCommandInvocation",
            Op::CommandSummary => "ssm:ListCommands",
            Op::PutParameter => "ssm:PutParameter",
            Op::DeleteParameter => "ssm:DeleteParameters",
            Op::ReadLedger => "dynamodb:BatchGetItem",
            Op::WriteLedger => "dynamodb:PutItem",
            Op::WriteLedgerTransaction => "dynamodb:TransactWriteItems",
            Op::SendToDlq => "sqs:SendMessage",
            Op::Enqueue => "sqs:SendMessageBatch",
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
    /// The call takes effect, but its answer is lost (a time-out after the service
    /// acted): the caller sees a time-out.
    LostAnswer,
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
            Fault::LostAnswer => Error::Unavailable {
                operation,
                message: "injected time-out after the call took effect".into(),
            },
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

    /// The fault of `op` that fires before the call (every fault but a lost answer).
    fn check(&self, op: Op) -> Result<(), Error> {
        self.fire(op, false)
    }

    /// The fault of `op` that fires after the call took effect (a lost answer).
    fn check_after(&self, op: Op) -> Result<(), Error> {
        self.fire(op, true)
    }

    fn fire(&self, op: Op, after: bool) -> Result<(), Error> {
        let mut rules = self.lock();
        let Some((fault, remaining)) = rules.get_mut(&op) else {
            return Ok(());
        };
        let fault = *fault;
        if (fault == Fault::LostAnswer) != after {
            return Ok(());
        }
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

/// Implements each port for `Faulty<T>`: every operation checks its fault (`= Op`), then
/// calls the real port.
macro_rules! faulty_ports {
    ($($port:ident { $(fn $name:ident($($arg:ident: $ty:ty),*) -> $out:ty = $op:ident;)* })*) => {$(
        #[async_trait]
        impl<T: $port + ?Sized> $port for Faulty<T> {
            $(async fn $name(&self, $($arg: $ty),*) -> Result<$out, Error> {
                self.faults.check(Op::$op)?;
                let answer = self.inner.$name($($arg),*).await;
                self.faults.check_after(Op::$op)?;
                answer
            })*
        }
    )*};
}

faulty_ports! {
    ConfigStore {
        fn get(account: &AccountId) -> Option<ConfigItem> = GetConfig;
    }
    Instances {
        fn describe(ids: &[InstanceId]) -> Vec<Instance> = DescribeInstances;
        fn find_running_by_tag(tag: &TagMatch) -> Vec<Instance> = FindByTag;
        fn tag(ids: &[InstanceId], key: &str, value: &str) -> () = TagInstance;
    }
    Commands {
        fn send(request: &CommandRequest) -> String = SendCommand;
        fn find_sent(instance: &InstanceId, comment: &str, since: std::time::SystemTime) -> Option<String> = FindCommand;
        fn document(name: &str) -> Option<StoredDocument> = DescribeDocument;
        fn online(instances: &[InstanceId]) -> Vec<InstanceId> = AgentsOnline;
        fn summary(command_id: &str) -> crate::ports::CommandSummary = CommandSummary;
        fn result(command_id: &str, instance: &InstanceId) -> CommandResult = CommandResult;
    }
    Parameters {
        fn put_secret(parameter: &SecretParameter<'_>) -> () = PutParameter;
        fn delete(names: &[String]) -> () = DeleteParameter;
    }
    Ledger {
        fn get_many(ids: &[InstanceId]) -> Vec<JoinRecord> = ReadLedger;
        fn put_if(record: &JoinRecord, expected: Option<u64>) -> bool = WriteLedger;
        fn put_all_if(writes: &[(JoinRecord, Option<u64>)]) -> crate::ports::Transaction = WriteLedgerTransaction;
    }
    Queue {
        fn send_to_dlq(letter: &DeadLetter) -> () = SendToDlq;
        fn enqueue(queue_url: &str, bodies: &[String]) -> () = Enqueue;
        fn retry_after(queue_arn: &str, messages: &[(String, Duration)]) -> () = ChangeVisibility;
    }
    ConfigAdmin {
        fn put(item: &ConfigItem) -> () = PutConfig;
        fn list() -> Vec<ConfigItem> = ListConfig;
        fn delete(account: &AccountId) -> bool = DeleteConfig;
    }
    LedgerQuery {
        fn scan(filter: &LedgerFilter) -> Vec<JoinRecord> = ScanLedger;
    }
    AgentStatus {
        fn agent(instance: &InstanceId) -> Option<AgentInfo> = DescribeAgent;
    }
    SecretProbe {
        fn exists(reference: &PasswordRef) -> bool = ProbeSecret;
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
            parameters: self.also(ports.parameters),
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
