//! Port traits: every call to the outside world goes through one of these.
//!
//! `adjoin-aws` implements them with the AWS SDK; [`crate::fake`] implements them in
//! memory; [`crate::faults`] wraps any of them to fail on demand.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use serde::Serialize;

use crate::config::{ConfigItem, RoleTarget, TagMatch};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::Instance;
use crate::ledger::JoinRecord;
use crate::one_time_password::OneTimePassword;
use crate::render::CommandRequest;

/// Account config items (DynamoDB table, partition key `accountId`).
#[async_trait]
pub trait ConfigStore: Send + Sync {
    /// The item of `account`, `None` when there is none.
    async fn get(&self, account: &AccountId) -> Result<Option<ConfigItem>, Error>;
}

/// Credentials for accounts: the service's own, or a member account's assumed role.
#[async_trait]
pub trait Sessions: Send + Sync {
    /// The service's own account and Region (where the AD tools host lives).
    async fn home(&self) -> Result<AccountPorts, Error>;
    /// A member account, reached by assuming `role`, in `region`.
    async fn assume(&self, role: &RoleTarget, region: &Region) -> Result<AccountPorts, Error>;
    /// The service's own account in another Region (config items without a role).
    async fn home_in(&self, region: &Region) -> Result<AccountPorts, Error>;
}

/// The ports bound to one account and Region.
#[derive(Clone)]
pub struct AccountPorts {
    pub account: AccountId,
    pub region: Region,
    pub instances: Arc<dyn Instances>,
    pub commands: Arc<dyn Commands>,
    pub parameters: Arc<dyn Parameters>,
}

/// A SecureString parameter to hand one secret to one reader (a staged join's one-time
/// password, for the AD tools host or for the instance).
#[derive(Debug)]
pub struct SecretParameter<'a> {
    /// The parameter's name, e.g. `/adjoin/otp/i-0123456789abcdef0`.
    pub name: &'a str,
    pub value: &'a OneTimePassword,
    /// Tags that say whose it is; the instance policy lets an instance read only the
    /// parameter tagged with its own ARN.
    pub tags: &'a [(&'a str, String)],
    /// When SSM deletes it if nobody did before (an expiration policy).
    pub expires_at: SystemTime,
}

/// SSM Parameter Store in one account and Region: the one-time passwords of staged joins.
#[async_trait]
pub trait Parameters: Send + Sync {
    /// Writes the parameter (replacing one of the same name).
    async fn put_secret(&self, parameter: &SecretParameter<'_>) -> Result<(), Error>;
    /// Deletes the parameters (DeleteParameters, ten names per call); one that does not
    /// exist is no error.
    async fn delete(&self, names: &[String]) -> Result<(), Error>;
}

/// EC2 instances of one account and Region.
#[async_trait]
pub trait Instances: Send + Sync {
    /// Describes the given instances in one call; unknown ids are simply absent.
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>, Error>;
    /// Running instances carrying the tag.
    async fn find_running_by_tag(&self, tag: &TagMatch) -> Result<Vec<Instance>, Error>;
    /// Tags the instances (one EC2 CreateTags): the ready signal of verified joins.
    async fn tag(&self, ids: &[InstanceId], key: &str, value: &str) -> Result<(), Error>;
}

/// SSM Run Command in one account and Region.
#[async_trait]
pub trait Commands: Send + Sync {
    /// Sends the command (to its target and its other targets); returns its command id.
    async fn send(&self, request: &CommandRequest) -> Result<String, Error>;
    /// The command sent to `instance` whose comment starts with `comment` at or after
    /// `since` (ListCommands), if any: after a SendCommand whose answer was lost, whether
    /// it took effect.
    async fn find_sent(
        &self,
        instance: &InstanceId,
        comment: &str,
        since: std::time::SystemTime,
    ) -> Result<Option<String>, Error>;
    /// Which of `instances` have an SSM agent online (DescribeInstanceInformation).
    async fn online(&self, instances: &[InstanceId]) -> Result<Vec<InstanceId>, Error>;
    /// The SSM document `name` as this account and Region hold it (DescribeDocument for
    /// its hash, GetDocument for its content), `None` when there is none.
    async fn document(&self, name: &str) -> Result<Option<StoredDocument>, Error>;
    /// Where a command stands on all its targets together (ListCommands by id): one call
    /// for a command sent to several instances.
    async fn summary(&self, command_id: &str) -> Result<CommandSummary, Error>;
    /// The result of a command on one instance (GetCommandInvocation). An invocation
    /// SSM does not know yet is [`CommandStatus::Pending`].
    async fn result(&self, command_id: &str, instance: &InstanceId)
    -> Result<CommandResult, Error>;
}

/// An SSM document as an account holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredDocument {
    /// The SHA-256 SSM computed for it (what `DocumentHash` must name).
    pub hash: String,
    /// Its content, as SSM returns it (JSON for adjoin's documents).
    pub content: String,
}

/// Where a command stands on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandStatus {
    /// Not started yet (SSM's Pending and Delayed, or an invocation not listed yet).
    Pending,
    InProgress,
    Success,
    /// Ended without success; SSM's status name (Failed, TimedOut, Cancelled, …).
    Failed(String),
}

/// Where a command stands on all its targets together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSummary {
    /// SSM's status of the whole command: [`CommandStatus::Success`] only once it
    /// succeeded on every target.
    pub status: CommandStatus,
    pub targets: u32,
    pub completed: u32,
    pub errors: u32,
}

/// A command's result on one instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandResult {
    pub status: CommandStatus,
    /// The script's exit code (`ResponseCode`), once it ended.
    pub exit_code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

/// The join ledger (DynamoDB table, partition key `instanceId`); see [`crate::ledger`].
#[async_trait]
pub trait Ledger: Send + Sync {
    /// The records of the given instances; instances without one are absent.
    async fn get_many(&self, ids: &[InstanceId]) -> Result<Vec<JoinRecord>, Error>;
    /// Writes `record` if the stored one still has version `expected` (`None`: if there
    /// is none). `Ok(false)` when it changed meanwhile: nothing was written.
    async fn put_if(&self, record: &JoinRecord, expected: Option<u64>) -> Result<bool, Error>;
    /// Writes all `writes` (each record if the stored one still has its expected
    /// version) in one transaction (TransactWriteItems, at most
    /// [`crate::ledger::TRANSACTION_LIMIT`]): all, or none and why per record.
    async fn put_all_if(&self, writes: &[(JoinRecord, Option<u64>)]) -> Result<Transaction, Error>;
}

/// How a ledger transaction ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transaction {
    /// Every record was written.
    Written,
    /// Nothing was written; per record, in order, why ([`Cancelled::None`] for those
    /// that were not the cause).
    Cancelled(Vec<Cancelled>),
}

/// Why a transaction was cancelled, for one of its records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cancelled {
    /// This record was not the cause: it may be written on its own.
    None,
    /// The stored record is no longer the expected version.
    ConditionFailed,
    /// Another reason DynamoDB gave (a conflicting transaction, throttling, …).
    Other(String),
}

/// A message that is moved to the dead-letter queue, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeadLetter {
    pub message_id: String,
    pub body: String,
    pub reason: String,
}

/// The SQS queues the service reads from and parks messages in.
#[async_trait]
pub trait Queue: Send + Sync {
    /// Sends a message to the DLQ with its reason as a message attribute.
    async fn send_to_dlq(&self, letter: &DeadLetter) -> Result<(), Error>;
    /// Puts event bodies on the queue at `queue_url` (SendMessageBatch, ten per call):
    /// the events reconciliation found lost.
    async fn enqueue(&self, queue_url: &str, bodies: &[String]) -> Result<(), Error>;
    /// Makes received messages of one queue visible again, each after its delay
    /// (ChangeMessageVisibilityBatch, ten per call).
    async fn retry_after(
        &self,
        source_queue_arn: &str,
        messages: &[(String, Duration)],
    ) -> Result<(), Error>;
}

/// The time of day: the ledger's stamps, event ages, record expiry.
pub trait Clock: Send + Sync {
    fn now(&self) -> std::time::SystemTime;
}

/// The system's clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> std::time::SystemTime {
        std::time::SystemTime::now()
    }
}

/// Why an account's ports could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenError {
    /// The session could not be had (STS refused, timed out, …).
    #[error(transparent)]
    Session(Error),
    /// The item names no role, and the service runs in another account.
    #[error(
        "config item for account {account} has no assumeRoleARN, and the service runs in account {home}"
    )]
    ForeignWithoutRole { account: AccountId, home: AccountId },
}

/// The ports of `config`'s account in `region`: through its member role when the item
/// names one, else the service's own account — which must then be the item's account.
pub async fn open_account(
    sessions: &dyn Sessions,
    config: &crate::config::AccountConfig,
    region: &Region,
) -> Result<AccountPorts, OpenError> {
    let ports = match &config.role {
        Some(role) => sessions.assume(role, region).await,
        None => sessions.home_in(region).await,
    }
    .map_err(OpenError::Session)?;
    if ports.account == config.account {
        Ok(ports)
    } else {
        Err(OpenError::ForeignWithoutRole {
            account: config.account.clone(),
            home: ports.account,
        })
    }
}
