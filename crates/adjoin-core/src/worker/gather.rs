//! Gathering: the calls that the instances of a batch make at the same step go out
//! together.
//!
//! Each instance of a batch is handled by a task of its own, whose flow reads as if it
//! were alone ([`super::act`], [`super::stage`], [`super::leave`]). Five kinds of call
//! are not made at once but gathered: a task that makes one waits, and when every task
//! still running waits, the last to arrive makes them all:
//!
//! - **ledger writes**: one transaction (TransactWriteItems) per
//!   [`ledger::TRANSACTION_LIMIT`] records. A cancelled transaction does not hold up
//!   the others: a record whose version changed is answered "changed" (as a conditional
//!   PutItem would), and the rest are written one by one;
//! - **commands** that differ only in the instances' own values
//!   ([`render::gather_key`]): joins as one SendCommand to all their instances (up to
//!   [`render::GATHER_MAX_TARGETS`]), each instance's values in a table the script reads
//!   for its own id ([`render::gathered`]); stages and leaves for one AD tools host as
//!   one command (up to [`render::GATHER_MAX_ON_TOOLS_HOST`]) that runs once per row of
//!   the table and reports each instance's exit code. If SSM refuses the command for an
//!   instance whose agent cannot take it (`InvalidInstanceId`), or IAM for one that may
//!   not be sent commands, each instance is sent its own, so that only that one is
//!   deferred or refused. If the answer is lost (a time-out, a 5xx), the command is
//!   looked for before anyone sends again;
//! - **ready tags** of one value: one CreateTags;
//! - **parameter deletions** in one account and Region: one DeleteParameters per ten;
//! - **command results** of one command for several instances: one ListCommands for the
//!   command; when it succeeded everywhere, nothing more is read, else each instance's
//!   result is read (GetCommandInvocation), once per instance that ran it (a command on
//!   the AD tools host is one invocation for all its instances).
//!
//! A call alone of its kind goes out as it would without gathering.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use futures::future::join_all;
use tokio::sync::oneshot;
use tracing::warn;

use crate::error::Error;
use crate::ids::InstanceId;
use crate::ledger::{JoinRecord, TRANSACTION_LIMIT};
use crate::ports::{AccountPorts, Cancelled, CommandResult, CommandStatus, Ledger, Transaction};
use crate::render::{self, CommandRequest, GATHER_MAX_TARGETS};

/// How far this host's clock and SSM's may differ, when commands are looked up by time.
pub(super) const CLOCK_SKEW: std::time::Duration = std::time::Duration::from_secs(60);

/// DeleteParameters takes at most this many names.
const DELETE_LIMIT: usize = 10;

/// A gathered call.
enum Call {
    Write {
        record: JoinRecord,
        expected: Option<u64>,
    },
    Send {
        ports: AccountPorts,
        request: CommandRequest,
    },
    Tag {
        ports: AccountPorts,
        id: InstanceId,
        key: &'static str,
        value: String,
    },
    Delete {
        ports: AccountPorts,
        name: String,
    },
    Result {
        ports: AccountPorts,
        command_id: String,
        instance: InstanceId,
    },
}

/// Its answer.
enum Answer {
    Written(Result<bool, Error>),
    Sent(Result<String, Error>),
    Done(Result<(), Error>),
    Result(Result<CommandResult, Error>),
}

type Waiting = Vec<(Call, oneshot::Sender<Answer>)>;

#[derive(Default)]
struct State {
    /// Tasks started and not finished.
    active: usize,
    waiting: Waiting,
}

impl State {
    /// Every waiting call, once every running task waits.
    fn take_if_all_wait(&mut self) -> Option<Waiting> {
        (!self.waiting.is_empty() && self.waiting.len() >= self.active)
            .then(|| std::mem::take(&mut self.waiting))
    }
}

/// The calls of one batch's tasks, gathered.
pub(super) struct Gather {
    ledger: Arc<dyn Ledger>,
    state: Mutex<State>,
}

/// Where an account's ports are: calls for one account and Region go out together.
fn place(ports: &AccountPorts) -> (String, String) {
    (ports.account.to_string(), ports.region.to_string())
}

impl Gather {
    pub(super) fn new(ledger: Arc<dyn Ledger>) -> Self {
        Gather {
            ledger,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `task` as one of the batch's tasks: from now on (it counts when it is made, not
    /// when it is first run), gathered calls wait for it to make its own or to finish.
    pub(super) fn task<'a, T: 'a>(
        &'a self,
        task: impl Future<Output = T> + 'a,
    ) -> impl Future<Output = T> + 'a {
        self.state().active += 1;
        async move {
            let out = task.await;
            let ready = {
                let mut state = self.state();
                state.active -= 1;
                state.take_if_all_wait()
            };
            if let Some(calls) = ready {
                self.make(calls).await;
            }
            out
        }
    }

    async fn call(&self, call: Call) -> Answer {
        let (tx, rx) = oneshot::channel();
        let ready = {
            let mut state = self.state();
            state.waiting.push((call, tx));
            state.take_if_all_wait()
        };
        if let Some(calls) = ready {
            self.make(calls).await;
        }
        rx.await.unwrap_or_else(|_| {
            Answer::Done(Err(Error::Unavailable {
                operation: "gather",
                message: "the batch was stopped before this call was made".into(),
            }))
        })
    }

    /// Writes `record` if the stored one still has version `expected`: `Ok(false)` when it
    /// changed meanwhile (see [`Ledger::put_if`]).
    pub(super) async fn write(
        &self,
        record: JoinRecord,
        expected: Option<u64>,
    ) -> Result<bool, Error> {
        match self.call(Call::Write { record, expected }).await {
            Answer::Written(r) => r,
            other => Err(unexpected(other)),
        }
    }

    /// Sends `request` with `ports`; returns its command id.
    pub(super) async fn send(
        &self,
        ports: &AccountPorts,
        request: CommandRequest,
    ) -> Result<String, Error> {
        let call = Call::Send {
            ports: ports.clone(),
            request,
        };
        match self.call(call).await {
            Answer::Sent(r) => r,
            other => Err(unexpected(other)),
        }
    }

    /// Tags instance `id` with `key`=`value`.
    pub(super) async fn tag(
        &self,
        ports: &AccountPorts,
        id: &InstanceId,
        key: &'static str,
        value: &str,
    ) -> Result<(), Error> {
        let call = Call::Tag {
            ports: ports.clone(),
            id: id.clone(),
            key,
            value: value.to_owned(),
        };
        match self.call(call).await {
            Answer::Done(r) => r,
            other => Err(unexpected(other)),
        }
    }

    /// Deletes the parameter `name` (one that does not exist is no error).
    pub(super) async fn delete(&self, ports: &AccountPorts, name: &str) -> Result<(), Error> {
        let call = Call::Delete {
            ports: ports.clone(),
            name: name.to_owned(),
        };
        match self.call(call).await {
            Answer::Done(r) => r,
            other => Err(unexpected(other)),
        }
    }

    /// The result of `command_id` on `instance`.
    pub(super) async fn result(
        &self,
        ports: &AccountPorts,
        command_id: &str,
        instance: &InstanceId,
    ) -> Result<CommandResult, Error> {
        let call = Call::Result {
            ports: ports.clone(),
            command_id: command_id.to_owned(),
            instance: instance.clone(),
        };
        match self.call(call).await {
            Answer::Result(r) => r,
            other => Err(unexpected(other)),
        }
    }

    /// Makes the gathered calls, each kind together, and answers each.
    async fn make(&self, calls: Waiting) {
        let mut writes = Vec::new();
        let mut sends: BTreeMap<Option<(String, String, String)>, Vec<_>> = BTreeMap::new();
        let mut tags: BTreeMap<(String, String, &'static str, String), Vec<_>> = BTreeMap::new();
        let mut deletes: BTreeMap<(String, String), Vec<_>> = BTreeMap::new();
        let mut results: BTreeMap<(String, String, String), Vec<_>> = BTreeMap::new();
        for (call, reply) in calls {
            match call {
                Call::Write { record, expected } => writes.push(((record, expected), reply)),
                Call::Send { ports, request } => {
                    let key = render::gather_key(&request).map(|k| {
                        let (account, region) = place(&ports);
                        (account, region, k)
                    });
                    sends.entry(key).or_default().push((ports, request, reply));
                }
                Call::Tag {
                    ports,
                    id,
                    key,
                    value,
                } => {
                    let (account, region) = place(&ports);
                    tags.entry((account, region, key, value))
                        .or_default()
                        .push((ports, id, reply));
                }
                Call::Delete { ports, name } => {
                    deletes
                        .entry(place(&ports))
                        .or_default()
                        .push((ports, name, reply));
                }
                Call::Result {
                    ports,
                    command_id,
                    instance,
                } => {
                    let (account, region) = place(&ports);
                    results
                        .entry((account, region, command_id))
                        .or_default()
                        .push((ports, instance, reply));
                }
            }
        }
        let writes = async {
            if writes.is_empty() {
                return;
            }
            let (records, replies): (Vec<_>, Vec<_>) = writes.into_iter().unzip();
            let written = write_all(&*self.ledger, &records).await;
            for (reply, answer) in replies.into_iter().zip(written) {
                let _ = reply.send(Answer::Written(answer));
            }
        };
        let send_groups: Vec<SendGroup> = sends
            .into_iter()
            .flat_map(|(key, group)| match key {
                // Not to be gathered: each alone.
                None => group.into_iter().map(|one| vec![one]).collect::<Vec<_>>(),
                Some(_) => {
                    let limit = group
                        .first()
                        .map_or(GATHER_MAX_TARGETS, |(_, r, _)| render::gather_limit(r));
                    chunks(group, limit)
                }
            })
            .collect();
        let sends = join_all(send_groups.into_iter().map(send_group));
        let tags = join_all(
            tags.into_iter()
                .map(|((_, _, key, value), group)| async move {
                    let Some((ports, _, _)) = group.first() else {
                        return;
                    };
                    let ports = ports.clone();
                    let ids: Vec<InstanceId> = group.iter().map(|(_, id, _)| id.clone()).collect();
                    let tagged = ports.instances.tag(&ids, key, &value).await;
                    for (_, _, reply) in group {
                        let _ = reply.send(Answer::Done(tagged.clone()));
                    }
                }),
        );
        let deletes = join_all(deletes.into_values().flat_map(|group| {
            chunks(group, DELETE_LIMIT)
                .into_iter()
                .map(|chunk| async move {
                    let Some((ports, _, _)) = chunk.first() else {
                        return;
                    };
                    let ports = ports.clone();
                    let names: Vec<String> = chunk.iter().map(|(_, n, _)| n.clone()).collect();
                    let deleted = ports.parameters.delete(&names).await;
                    for (_, _, reply) in chunk {
                        let _ = reply.send(Answer::Done(deleted.clone()));
                    }
                })
        }));
        let results = join_all(
            results
                .into_iter()
                .map(|((_, _, command_id), group)| read_results(command_id, group)),
        );
        futures::join!(writes, sends, tags, deletes, results);
    }
}

/// `group` in chunks of at most `size`.
fn chunks<T>(group: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut chunks = Vec::new();
    let mut rest = group.into_iter().peekable();
    while rest.peek().is_some() {
        chunks.push(rest.by_ref().take(size).collect());
    }
    chunks
}

type SendGroup = Vec<(AccountPorts, CommandRequest, oneshot::Sender<Answer>)>;

fn unexpected(_: Answer) -> Error {
    Error::Invalid {
        operation: "gather",
        message: "a gathered call was answered for another kind of call".into(),
    }
}

/// Writes `writes` in transactions; answers per record as [`Ledger::put_if`] would.
/// One record goes out as a conditional PutItem. A cancelled transaction answers `false`
/// for the records whose version changed and writes the others one by one, so one racing
/// instance does not hold up the rest.
pub(super) async fn write_all(
    ledger: &dyn Ledger,
    writes: &[(JoinRecord, Option<u64>)],
) -> Vec<Result<bool, Error>> {
    let mut answers = Vec::with_capacity(writes.len());
    for chunk in writes.chunks(TRANSACTION_LIMIT) {
        if let [(record, expected)] = chunk {
            answers.push(ledger.put_if(record, *expected).await);
            continue;
        }
        match ledger.put_all_if(chunk).await {
            Ok(Transaction::Written) => answers.extend(chunk.iter().map(|_| Ok(true))),
            Ok(Transaction::Cancelled(reasons)) => {
                for (i, (record, expected)) in chunk.iter().enumerate() {
                    let answer = match reasons.get(i) {
                        Some(Cancelled::ConditionFailed) => Ok(false),
                        Some(Cancelled::Other(why)) => {
                            warn!(instance_id = %record.instance_id, reason = %why,
                                  "ledger transaction cancelled for this record; writing it alone");
                            ledger.put_if(record, *expected).await
                        }
                        Some(Cancelled::None) | None => ledger.put_if(record, *expected).await,
                    };
                    answers.push(answer);
                }
            }
            Err(e) => answers.extend(chunk.iter().map(|_| Err(e.clone()))),
        }
    }
    answers
}

/// Sends one group of join commands (alone, or gathered) and answers each.
async fn send_group(group: SendGroup) {
    let Some((ports, _, _)) = group.first() else {
        return;
    };
    let ports = ports.clone();
    if let [(_, request, _)] = group.as_slice() {
        let sent = ports.commands.send(request).await;
        let Some((_, _, reply)) = group.into_iter().next() else {
            return;
        };
        let _ = reply.send(Answer::Sent(sent));
        return;
    }
    let requests: Vec<CommandRequest> = group.iter().map(|(_, r, _)| r.clone()).collect();
    let Some(one) = render::gathered(&requests) else {
        return;
    };
    let asked_at = SystemTime::now();
    let sent = match ports.commands.send(&one).await {
        // SSM refuses the whole command when one instance's agent cannot take it, and
        // IAM when one instance may not be sent commands (opted out since it was
        // described): each instance is sent its own, so only that one is deferred or
        // refused.
        Err(e @ (Error::AgentNotReady { .. } | Error::AccessDenied { .. })) => {
            warn!(error = %e, instances = requests.len(),
                  "a gathered join command was refused; sending each instance its own");
            for (_, request, reply) in group {
                let sent = ports.commands.send(&request).await;
                let _ = reply.send(Answer::Sent(sent));
            }
            return;
        }
        // The answer may be lost after SSM acted: look before anyone sends again.
        Err(e @ Error::Unavailable { .. }) => {
            let since = asked_at.checked_sub(CLOCK_SKEW).unwrap_or(asked_at);
            match ports
                .commands
                .find_sent(&one.target, &one.comment, since)
                .await
            {
                Ok(Some(command_id)) => {
                    warn!(%command_id, error = %e, "SendCommand's answer was lost, but the gathered command was sent");
                    Ok(command_id)
                }
                _ => Err(e),
            }
        }
        other => other,
    };
    for (_, _, reply) in group {
        let _ = reply.send(Answer::Sent(sent.clone()));
    }
}

/// Reads the results of `command_id` on the instances of `group`: for several, first
/// the command's summary, which answers them all when it succeeded everywhere.
async fn read_results(
    command_id: String,
    group: Vec<(AccountPorts, InstanceId, oneshot::Sender<Answer>)>,
) {
    let Some((ports, _, _)) = group.first() else {
        return;
    };
    let ports = ports.clone();
    if group.len() > 1 {
        match ports.commands.summary(&command_id).await {
            Ok(summary) if summary.status == CommandStatus::Success => {
                for (_, _, reply) in group {
                    let _ = reply.send(Answer::Result(Ok(CommandResult {
                        status: CommandStatus::Success,
                        exit_code: Some(0),
                        stdout: format!(
                            "command {command_id} succeeded on all {} of its instances",
                            summary.targets
                        ),
                        stderr: String::new(),
                    })));
                }
                return;
            }
            Ok(_) => {}
            Err(e) => {
                warn!(error = %e, %command_id, "the command's summary cannot be read; reading each instance's result")
            }
        }
    }
    // Each instance's result once (the instances of a command on the AD tools host all
    // read the host's one invocation).
    let mut read: BTreeMap<String, Result<CommandResult, Error>> = BTreeMap::new();
    for (_, instance, reply) in group {
        let result = match read.get(instance.as_str()) {
            Some(result) => result.clone(),
            None => {
                let result = ports.commands.result(&command_id, &instance).await;
                read.insert(instance.to_string(), result.clone());
                result
            }
        };
        let _ = reply.send(Answer::Result(result));
    }
}
