//! In-memory fakes of every port, the worker's and the operator's, for fast unit tests.
//!
//! One [`FakeAws`] is one world: it holds the state of all accounts (config items,
//! instances per account and Region, the join ledger, command results, and for the
//! operator ports SSM agents and password references, in [`crate::admin::fake`]) and a
//! record of every call that changes something (commands sent, roles assumed, dead
//! letters, visibility changes), so tests assert on what was done. A sent command
//! succeeds unless a test sets its result ([`FakeAws::set_result`]). Any port it hands
//! out fails on demand when wrapped in [`crate::faults::Faulty`].

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;

use crate::admin::AgentInfo;
use crate::config::{ConfigItem, RoleTarget, TagMatch};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::Instance;
use crate::ledger::JoinRecord;
use crate::ports::{
    AccountPorts, Cancelled, CommandResult, CommandStatus, CommandSummary, Commands, ConfigStore,
    DeadLetter, Instances, Ledger, Parameters, Queue, SecretParameter, Sessions, StoredDocument,
    Transaction,
};
use crate::render::CommandRequest;
use crate::worker::Ports;

/// A command the fake SSM received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentCommand {
    pub account: AccountId,
    pub region: Region,
    pub command_id: String,
    pub request: CommandRequest,
    /// When SSM received it.
    pub sent_at: std::time::SystemTime,
}

impl SentCommand {
    /// Whether the command runs on `instance` (one of its targets).
    pub fn targets(&self, instance: &InstanceId) -> bool {
        &self.request.target == instance || self.request.more_targets.contains(instance)
    }
}

/// A SecureString parameter the fake Parameter Store holds (or held).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredParameter {
    pub account: AccountId,
    pub region: Region,
    pub name: String,
    /// The secret itself: tests look for it wherever it must never appear.
    pub value: String,
    pub tags: Vec<(String, String)>,
    pub expires_at: std::time::SystemTime,
}

/// A role the fake STS was asked to assume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssumedRole {
    pub arn: String,
    pub external_id: Option<String>,
}

#[derive(Default)]
pub(crate) struct State {
    /// Config items by their `accountId` attribute (as written: the operator port may
    /// write an item whose account id is not valid).
    pub(crate) config: BTreeMap<String, ConfigItem>,
    instances: BTreeMap<(AccountId, Region), BTreeMap<InstanceId, Instance>>,
    sent: Vec<SentCommand>,
    assumed: Vec<AssumedRole>,
    dead_letters: Vec<DeadLetter>,
    enqueued: Vec<(String, String)>,
    retries: Vec<(String, Duration)>,
    describe_calls: usize,
    pub(crate) ledger: BTreeMap<String, JoinRecord>,
    ledger_calls: LedgerCalls,
    tag_calls: usize,
    delete_calls: usize,
    summary_calls: usize,
    result_calls: usize,
    results: HashMap<String, CommandResult>,
    /// Parameters by account, Region and name.
    parameters: BTreeMap<(AccountId, Region, String), StoredParameter>,
    /// Every parameter ever written, deleted ones included.
    parameter_writes: Vec<StoredParameter>,
    /// Documents changed (or removed: `None`) by tests, by account, Region and name;
    /// any other adjoin document is there as this version makes it.
    documents: BTreeMap<(AccountId, Region, String), Option<String>>,
    pub(crate) agents: BTreeMap<(AccountId, Region, InstanceId), AgentInfo>,
    pub(crate) references: BTreeSet<(AccountId, Region, String)>,
    /// References whose existence was asked about: the fake never has a value to read.
    pub(crate) probed: Vec<String>,
}

/// How the ledger was written: conditional puts and transactions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LedgerCalls {
    pub puts: usize,
    pub transactions: usize,
}

/// Calls made to the fake, by kind, for tests of gathering.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Calls {
    pub ledger_puts: usize,
    pub ledger_transactions: usize,
    pub sends: usize,
    pub tags: usize,
    pub deletes: usize,
    pub summaries: usize,
    pub results: usize,
}

/// All fake AWS state, shared by the fake ports it hands out.
#[derive(Clone)]
pub struct FakeAws {
    home_account: AccountId,
    home_region: Region,
    state: Arc<Mutex<State>>,
}

impl FakeAws {
    /// A fake world whose service runs in `home_account`/`home_region`.
    pub fn new(home_account: AccountId, home_region: Region) -> Self {
        FakeAws {
            home_account,
            home_region,
            state: Arc::default(),
        }
    }

    pub(crate) fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock has failed already.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The account the service runs in.
    pub fn home_account(&self) -> &AccountId {
        &self.home_account
    }

    pub fn put_config(&self, account: &AccountId, item: ConfigItem) {
        self.state()
            .config
            .insert(account.as_str().to_owned(), item);
    }

    pub fn put_instance(&self, account: &AccountId, region: &Region, instance: Instance) {
        self.state()
            .instances
            .entry((account.clone(), region.clone()))
            .or_default()
            .insert(instance.id.clone(), instance);
    }

    /// The tags of an instance in `account`/`region`, as EC2 would describe them now.
    pub fn tags_of(
        &self,
        account: &AccountId,
        region: &Region,
        id: &str,
    ) -> BTreeMap<String, String> {
        let state = self.state();
        InstanceId::parse(id)
            .ok()
            .and_then(|id| {
                state
                    .instances
                    .get(&(account.clone(), region.clone()))
                    .and_then(|k| k.get(&id))
                    .map(|i| i.tags.clone())
            })
            .unwrap_or_default()
    }

    pub fn sent(&self) -> Vec<SentCommand> {
        self.state().sent.clone()
    }
    pub fn assumed(&self) -> Vec<AssumedRole> {
        self.state().assumed.clone()
    }
    pub fn dead_letters(&self) -> Vec<DeadLetter> {
        self.state().dead_letters.clone()
    }
    /// Bodies put on a queue, with the queue's URL.
    pub fn enqueued(&self) -> Vec<(String, String)> {
        self.state().enqueued.clone()
    }
    /// Receipt handles made visible again, with their delays.
    pub fn retries(&self) -> Vec<(String, Duration)> {
        self.state().retries.clone()
    }
    /// The calls made so far, by kind.
    pub fn calls(&self) -> Calls {
        let state = self.state();
        Calls {
            ledger_puts: state.ledger_calls.puts,
            ledger_transactions: state.ledger_calls.transactions,
            sends: state.sent.len(),
            tags: state.tag_calls,
            deletes: state.delete_calls,
            summaries: state.summary_calls,
            results: state.result_calls,
        }
    }
    pub fn describe_calls(&self) -> usize {
        self.state().describe_calls
    }
    /// The ledger record of an instance.
    pub fn record(&self, instance: &str) -> Option<JoinRecord> {
        self.state().ledger.get(instance).cloned()
    }
    /// Stores a ledger record as it is.
    pub fn put_record(&self, record: JoinRecord) {
        self.state()
            .ledger
            .insert(record.instance_id.clone(), record);
    }
    /// The parameters Parameter Store holds now.
    pub fn parameters(&self) -> Vec<StoredParameter> {
        self.state().parameters.values().cloned().collect()
    }
    /// Every parameter ever written, deleted ones included.
    pub fn parameter_writes(&self) -> Vec<StoredParameter> {
        self.state().parameter_writes.clone()
    }
    /// Replaces the document `name` in `account`/`region` with `content` (`None`:
    /// deletes it), as someone with ssm:UpdateDocument there could.
    pub fn put_document(
        &self,
        account: &AccountId,
        region: &Region,
        name: &str,
        content: Option<&str>,
    ) {
        self.state().documents.insert(
            (account.clone(), region.clone(), name.to_owned()),
            content.map(str::to_owned),
        );
    }
    /// What GetCommandInvocation reports for `command_id` from now on.
    pub fn set_result(&self, command_id: &str, result: CommandResult) {
        self.state().results.insert(command_id.to_owned(), result);
    }

    /// The worker's ports on this world: config, sessions, ledger and queue.
    pub fn ports(&self) -> Ports {
        let aws = Arc::new(self.clone());
        Ports {
            config: aws.clone(),
            sessions: aws.clone(),
            ledger: aws.clone(),
            queue: Some(aws),
        }
    }

    /// The ports of one account and Region.
    pub fn account(&self, account: &AccountId, region: &Region) -> AccountPorts {
        let scoped = Arc::new(FakeAccount {
            aws: self.clone(),
            account: account.clone(),
            region: region.clone(),
        });
        AccountPorts {
            account: account.clone(),
            region: region.clone(),
            instances: scoped.clone(),
            commands: scoped.clone(),
            parameters: scoped,
        }
    }
}

#[async_trait]
impl ConfigStore for FakeAws {
    async fn get(&self, account: &AccountId) -> Result<Option<ConfigItem>, Error> {
        Ok(self.state().config.get(account.as_str()).cloned())
    }
}

#[async_trait]
impl Sessions for FakeAws {
    async fn home(&self) -> Result<AccountPorts, Error> {
        Ok(self.account(&self.home_account, &self.home_region))
    }
    async fn assume(&self, role: &RoleTarget, region: &Region) -> Result<AccountPorts, Error> {
        self.state().assumed.push(AssumedRole {
            arn: role.arn.clone(),
            external_id: role.external_id.clone(),
        });
        Ok(self.account(&role.account, region))
    }
    async fn home_in(&self, region: &Region) -> Result<AccountPorts, Error> {
        Ok(self.account(&self.home_account, region))
    }
}

#[async_trait]
impl Ledger for FakeAws {
    async fn get_many(&self, ids: &[InstanceId]) -> Result<Vec<JoinRecord>, Error> {
        let state = self.state();
        Ok(ids
            .iter()
            .filter_map(|id| state.ledger.get(id.as_str()).cloned())
            .collect())
    }
    async fn put_if(&self, record: &JoinRecord, expected: Option<u64>) -> Result<bool, Error> {
        let mut state = self.state();
        state.ledger_calls.puts += 1;
        let current = state.ledger.get(&record.instance_id).map(|r| r.version);
        if current != expected {
            return Ok(false);
        }
        state
            .ledger
            .insert(record.instance_id.clone(), record.clone());
        Ok(true)
    }
    async fn put_all_if(&self, writes: &[(JoinRecord, Option<u64>)]) -> Result<Transaction, Error> {
        let mut state = self.state();
        state.ledger_calls.transactions += 1;
        let reasons: Vec<Cancelled> = writes
            .iter()
            .map(|(record, expected)| {
                if state.ledger.get(&record.instance_id).map(|r| r.version) == *expected {
                    Cancelled::None
                } else {
                    Cancelled::ConditionFailed
                }
            })
            .collect();
        if reasons.iter().any(|r| *r != Cancelled::None) {
            return Ok(Transaction::Cancelled(reasons));
        }
        for (record, _) in writes {
            state
                .ledger
                .insert(record.instance_id.clone(), record.clone());
        }
        Ok(Transaction::Written)
    }
}

#[async_trait]
impl Queue for FakeAws {
    async fn send_to_dlq(&self, letter: &DeadLetter) -> Result<(), Error> {
        self.state().dead_letters.push(letter.clone());
        Ok(())
    }
    async fn enqueue(&self, queue_url: &str, bodies: &[String]) -> Result<(), Error> {
        self.state()
            .enqueued
            .extend(bodies.iter().map(|b| (queue_url.to_owned(), b.clone())));
        Ok(())
    }
    async fn retry_after(
        &self,
        _queue_arn: &str,
        messages: &[(String, Duration)],
    ) -> Result<(), Error> {
        self.state().retries.extend_from_slice(messages);
        Ok(())
    }
}

/// The fake EC2 and SSM of one account and Region.
struct FakeAccount {
    aws: FakeAws,
    account: AccountId,
    region: Region,
}

#[async_trait]
impl Instances for FakeAccount {
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>, Error> {
        let mut state = self.aws.state();
        state.describe_calls += 1;
        let known = state
            .instances
            .get(&(self.account.clone(), self.region.clone()));
        Ok(ids
            .iter()
            .filter_map(|id| known.and_then(|k| k.get(id)).cloned())
            .collect())
    }
    async fn find_running_by_tag(&self, tag: &TagMatch) -> Result<Vec<Instance>, Error> {
        let state = self.aws.state();
        let known = state
            .instances
            .get(&(self.account.clone(), self.region.clone()));
        Ok(known
            .into_iter()
            .flat_map(|k| k.values())
            .filter(|i| i.state == "running" && i.tag(&tag.key) == Some(tag.value.as_str()))
            .cloned()
            .collect())
    }
    async fn tag(&self, ids: &[InstanceId], key: &str, value: &str) -> Result<(), Error> {
        let mut state = self.aws.state();
        state.tag_calls += 1;
        let known = state
            .instances
            .get_mut(&(self.account.clone(), self.region.clone()));
        let Some(known) = known.filter(|k| ids.iter().all(|id| k.contains_key(id))) else {
            return Err(Error::NotFound {
                operation: "ec2:CreateTags",
                message: format!("not every instance of {ids:?} is known"),
            });
        };
        for id in ids {
            if let Some(instance) = known.get_mut(id) {
                instance.tags.insert(key.to_owned(), value.to_owned());
            }
        }
        Ok(())
    }
}

impl FakeAccount {
    /// The document `name` here: a test's version, else (for adjoin's own) this
    /// version's; its hash stands for the SHA-256 SSM would compute.
    fn stored_document(&self, state: &State, name: &str) -> Option<StoredDocument> {
        let content =
            match state
                .documents
                .get(&(self.account.clone(), self.region.clone(), name.to_owned()))
            {
                Some(changed) => changed.clone()?,
                None => {
                    let (task, platform) = crate::documents::by_name(name)?;
                    crate::documents::content(task, platform).to_string()
                }
            };
        use std::hash::{Hash as _, Hasher as _};
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        content.hash(&mut hasher);
        Some(StoredDocument {
            hash: format!("fake-sha256-{:016x}", hasher.finish()),
            content,
        })
    }
}

#[async_trait]
impl Commands for FakeAccount {
    async fn send(&self, request: &CommandRequest) -> Result<String, Error> {
        let mut state = self.aws.state();
        // An agent SSM knows but that is not online cannot take commands: SSM refuses
        // the whole command.
        for target in std::iter::once(&request.target).chain(&request.more_targets) {
            if let Some(agent) =
                state
                    .agents
                    .get(&(self.account.clone(), self.region.clone(), target.clone()))
                && agent.ping_status != "Online"
            {
                return Err(Error::AgentNotReady {
                    operation: "ssm:SendCommand",
                    message: format!("InvalidInstanceId: {target} is {}", agent.ping_status),
                });
            }
        }
        if request.document.is_adjoins() {
            // SSM runs a document only with the hash the request names.
            let stored = self.stored_document(&state, request.document.name());
            if stored.as_ref().map(|d| &d.hash) != request.document_hash.as_ref() {
                return Err(Error::Invalid {
                    operation: "ssm:SendCommand",
                    message: format!(
                        "InvalidDocument: {} with hash {:?} is not in {} {}",
                        request.document.name(),
                        request.document_hash,
                        self.account,
                        self.region
                    ),
                });
            }
        }
        let command_id = format!("fake-command-{}", state.sent.len() + 1);
        state.sent.push(SentCommand {
            account: self.account.clone(),
            region: self.region.clone(),
            command_id: command_id.clone(),
            request: request.clone(),
            sent_at: std::time::SystemTime::now(),
        });
        Ok(command_id)
    }
    async fn find_sent(
        &self,
        instance: &InstanceId,
        comment: &str,
        since: std::time::SystemTime,
    ) -> Result<Option<String>, Error> {
        let state = self.aws.state();
        Ok(state
            .sent
            .iter()
            .rev()
            .find(|c| {
                c.account == self.account
                    && c.targets(instance)
                    && c.request.comment.starts_with(comment)
                    && c.sent_at >= since
            })
            .map(|c| c.command_id.clone()))
    }
    async fn online(&self, instances: &[InstanceId]) -> Result<Vec<InstanceId>, Error> {
        let state = self.aws.state();
        Ok(instances
            .iter()
            .filter(|id| {
                state
                    .agents
                    .get(&(self.account.clone(), self.region.clone(), (*id).clone()))
                    .is_some_and(|a| a.ping_status == "Online")
            })
            .cloned()
            .collect())
    }
    async fn document(&self, name: &str) -> Result<Option<StoredDocument>, Error> {
        Ok(self.stored_document(&self.aws.state(), name))
    }
    async fn summary(&self, command_id: &str) -> Result<CommandSummary, Error> {
        let mut state = self.aws.state();
        state.summary_calls += 1;
        let targets = state
            .sent
            .iter()
            .find(|c| c.command_id == command_id)
            .map_or(0, |c| 1 + c.request.more_targets.len() as u32);
        let status = match state.results.get(command_id) {
            Some(result) => result.status.clone(),
            None if targets > 0 => CommandStatus::Success,
            None => CommandStatus::Pending,
        };
        let done = matches!(status, CommandStatus::Success | CommandStatus::Failed(_));
        Ok(CommandSummary {
            errors: if matches!(status, CommandStatus::Failed(_)) {
                targets
            } else {
                0
            },
            completed: if done { targets } else { 0 },
            status,
            targets,
        })
    }
    async fn result(
        &self,
        command_id: &str,
        _instance: &InstanceId,
    ) -> Result<CommandResult, Error> {
        let mut state = self.aws.state();
        state.result_calls += 1;
        if let Some(result) = state.results.get(command_id) {
            return Ok(result.clone());
        }
        let sent = state.sent.iter().any(|c| c.command_id == command_id);
        Ok(CommandResult {
            status: if sent {
                CommandStatus::Success
            } else {
                CommandStatus::Pending
            },
            exit_code: sent.then_some(0),
            stdout: String::new(),
            stderr: String::new(),
        })
    }
}

#[async_trait]
impl Parameters for FakeAccount {
    async fn put_secret(&self, parameter: &SecretParameter<'_>) -> Result<(), Error> {
        let stored = StoredParameter {
            account: self.account.clone(),
            region: self.region.clone(),
            name: parameter.name.to_owned(),
            value: parameter.value.expose().to_owned(),
            tags: parameter
                .tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), v.clone()))
                .collect(),
            expires_at: parameter.expires_at,
        };
        let mut state = self.aws.state();
        state.parameter_writes.push(stored.clone());
        state.parameters.insert(
            (
                self.account.clone(),
                self.region.clone(),
                stored.name.clone(),
            ),
            stored,
        );
        Ok(())
    }
    async fn delete(&self, names: &[String]) -> Result<(), Error> {
        let mut state = self.aws.state();
        state.delete_calls += 1;
        for name in names {
            state
                .parameters
                .remove(&(self.account.clone(), self.region.clone(), name.clone()));
        }
        Ok(())
    }
}
