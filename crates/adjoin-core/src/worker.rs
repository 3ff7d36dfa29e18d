//! The worker: from a batch of SQS messages to commands sent and a report per message.
//!
//! The whole flow is here, top to bottom:
//!
//! 1. parse every body; refuse what is not an EC2 state-change event;
//! 2. per account and Region in the batch: read and validate the config item, open a
//!    session (assume the member role), describe all its instances in one call;
//!    and read the ledger records of those instances in one call;
//! 3. per instance, its events in the order they happened: decide from what EC2
//!    reports, then from the ledger (see [`crate::ledger`]); claim the record, send the
//!    join command to the instance or the leave command to the AD tools host, record
//!    the command id. A delivery that sent a join comes back later to verify it:
//!    success records `joined`, failure sends the join again up to
//!    [`Settings::join_attempts`] times, then records `failed` and rejects the message;
//! 4. settle: rejected messages go to the DLQ with their reason, deferred ones come back
//!    after a back-off, and messages whose event is older than [`Settings::max_age`]
//!    (or delivered [`Settings::max_attempts`] times) are rejected rather than retried
//!    forever.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use futures::stream;
use tokio::sync::Mutex;
use tracing::{Instrument as _, Span, field, info, info_span, warn};

use crate::computer_name::computer_name;
use crate::config::{AccountConfig, TagMatch};
use crate::decide::{Decision, decide};
use crate::error::{Error, backoff};
use crate::event::{EventState, InstanceEvent, parse_body};
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::{GROUP_TAG, Instance, group_tag_problem};
use crate::ledger::{self, Handler, JoinRecord, JoinStatus, Step};
use crate::outcome::{Action, Outcome, RenderedCommand, Report};
use crate::ports::{AccountPorts, CommandStatus, ConfigStore, DeadLetter, Ledger, Queue, Sessions};
use crate::render::{CommandRequest, join_command, leave_command};

/// One SQS message as the worker needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub message_id: String,
    pub body: String,
    /// Absent when replaying files: nothing to change the visibility of.
    pub receipt_handle: Option<String>,
    /// `ApproximateReceiveCount`: 1 on the first delivery.
    pub receive_count: u32,
    /// The queue the message came from (`eventSourceARN`).
    pub source_queue_arn: Option<String>,
}

/// How the worker behaves.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The tag that marks the AD tools host (`ADJOIN_TOOLS_HOST_TAG_KEY`/`VALUE`).
    pub tools_host_tag: TagMatch,
    /// How many accounts and messages are worked on at once.
    pub concurrency: usize,
    /// After this many deliveries a message that is still deferred or failing is
    /// rejected to the DLQ (a backstop: [`Settings::max_age`] usually comes first).
    pub max_attempts: u32,
    /// A deferred or failing message whose event is older than this is rejected to the
    /// DLQ with its last reason. Also how long a `joining`/`leaving` ledger record may go
    /// untouched before another event may take it over.
    pub max_age: Duration,
    /// Join commands sent per running event before the instance is recorded `failed`.
    pub join_attempts: u32,
    /// How long after sending a join its result is first read.
    pub verify_after: Duration,
    /// How long a found AD tools host is used without looking it up again.
    pub tools_host_ttl: Duration,
    /// Send the leave command for a terminated instance the ledger has no record of
    /// (instances joined before the ledger existed, e.g. by an earlier tool); otherwise
    /// such a terminate deletes nothing.
    pub leave_unrecorded: bool,
    /// The longest back-off for a deferred message.
    pub max_backoff: Duration,
    /// Read everything, send nothing; report the rendered commands.
    pub dry_run: bool,
}

impl Settings {
    pub fn new(tools_host_tag: TagMatch) -> Self {
        Settings {
            tools_host_tag,
            concurrency: 8,
            max_attempts: 25,
            max_age: Duration::from_secs(2 * 3600),
            join_attempts: 3,
            verify_after: Duration::from_secs(120),
            tools_host_ttl: Duration::from_secs(300),
            leave_unrecorded: false,
            max_backoff: Duration::from_secs(900),
            dry_run: false,
        }
    }
}

/// The outside world, as ports.
#[derive(Clone)]
pub struct Ports {
    pub config: Arc<dyn ConfigStore>,
    pub sessions: Arc<dyn Sessions>,
    pub ledger: Arc<dyn Ledger>,
    /// The DLQ and visibility changes; `None` when replaying files without a queue.
    pub queue: Option<Arc<dyn Queue>>,
}

/// Processes batches; built once per container, shared by all invocations.
pub struct Worker {
    ports: Ports,
    settings: Settings,
    /// AD tools hosts found, by tag, kept for [`Settings::tools_host_ttl`].
    tools_hosts: Mutex<HashMap<TagMatch, (Instance, tokio::time::Instant)>>,
}

/// How a message ends before settling.
#[derive(Debug, Clone)]
enum Fate {
    Dispatched {
        command_id: Option<String>,
        command: Option<RenderedCommand>,
        /// When the message should come back to verify the command.
        verify_after: Option<Duration>,
        note: String,
    },
    Verified(String),
    Skipped(String),
    Deferred {
        reason: String,
        delay: Duration,
    },
    Rejected(String),
    Failed(String),
}

/// Why an account/Region group cannot be worked on.
#[derive(Debug)]
enum Blocked {
    Rejected(String),
    Error(Error),
}

/// A parsed message, on its way through the batch.
struct Item {
    index: usize,
    event: InstanceEvent,
    span: Span,
}

/// What one account/Region group of the batch shares.
struct Group {
    config: AccountConfig,
    ports: AccountPorts,
    instances: HashMap<String, Instance>,
    records: HashMap<String, JoinRecord>,
}

/// One event being handled: the message, its event, its instance's group.
struct Job<'a> {
    message: &'a Message,
    event: &'a InstanceEvent,
    group: &'a Group,
    computer_name: String,
}

impl Worker {
    pub fn new(ports: Ports, settings: Settings) -> Self {
        Worker {
            ports,
            settings,
            tools_hosts: Mutex::new(HashMap::new()),
        }
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// Processes a batch; returns one report per message, in input order.
    pub async fn handle_batch(&self, messages: &[Message]) -> Vec<Report> {
        self.handle_batch_before(messages, None).await
    }

    /// Processes a batch, stopping the work at `deadline`: messages not finished by
    /// then are reported `failed` (SQS delivers them again), and every message is
    /// still settled. The Lambda passes its invocation deadline less a margin, so a
    /// slow AWS API never turns a whole batch into a time-out with no response.
    pub async fn handle_batch_before(
        &self,
        messages: &[Message],
        deadline: Option<tokio::time::Instant>,
    ) -> Vec<Report> {
        let mut fates: Vec<Option<(Action, Fate)>> = vec![None; messages.len()];
        let spans: Vec<Span> = messages
            .iter()
            .map(|m| {
                info_span!("message", message_id = %m.message_id, account = field::Empty,
                           region = field::Empty, instance_id = field::Empty)
            })
            .collect();

        // 1. Parse; group by account and Region; drop duplicates within the batch.
        let mut groups: BTreeMap<(AccountId, Region), Vec<Item>> = BTreeMap::new();
        let mut seen: HashMap<(String, String, String), usize> = HashMap::new();
        let mut events: Vec<Option<InstanceEvent>> = vec![None; messages.len()];
        for (index, message) in messages.iter().enumerate() {
            let span = spans[index].clone();
            match parse_body(&message.body) {
                Ok(event) => {
                    span.record("account", event.account.as_str());
                    span.record("region", event.region.as_str());
                    span.record("instance_id", event.instance_id.as_str());
                    events[index] = Some(event.clone());
                    let key = (
                        event.event_id.clone(),
                        event.instance_id.to_string(),
                        event.state.as_str().to_owned(),
                    );
                    if let Some(first) = seen.get(&key).filter(|_| !event.event_id.is_empty()) {
                        let reason = format!(
                            "duplicate of message {} in this batch",
                            messages[*first].message_id
                        );
                        fates[index] = Some((Action::None, Fate::Skipped(reason)));
                        continue;
                    }
                    seen.insert(key, index);
                    groups
                        .entry((event.account.clone(), event.region.clone()))
                        .or_default()
                        .push(Item { index, event, span });
                }
                Err(e) => {
                    span.in_scope(
                        || warn!(reason = %e, "message is not an EC2 state-change event"),
                    );
                    fates[index] = Some((Action::None, Fate::Rejected(e.to_string())));
                }
            }
        }

        let work = async {
            // 2. Per account and Region: config, session, one DescribeInstances.
            let group_results: Vec<(Vec<Item>, Result<Group, Blocked>)> = stream::iter(groups)
            .map(|((account, region), items)| async move {
                let mut ids: Vec<_> = items.iter().map(|i| i.event.instance_id.clone()).collect();
                ids.sort_unstable();
                ids.dedup();
                let span = info_span!("account", account = %account, region = %region, messages = items.len());
                let group = self.prepare_group(&account, &region, &ids).instrument(span).await;
                (items, group)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;

            // 3. Per instance, its events in order: decide, claim, send, record.
            let mut ready: BTreeMap<(usize, String), (&Group, Vec<&Item>)> = BTreeMap::new();
            for (group_index, (items, group)) in group_results.iter().enumerate() {
                for item in items {
                    match group {
                        Ok(group) => ready
                            .entry((group_index, item.event.instance_id.to_string()))
                            .or_insert_with(|| (group, Vec::new()))
                            .1
                            .push(item),
                        Err(blocked) => {
                            let fate = match blocked {
                                Blocked::Rejected(reason) => Fate::Rejected(reason.clone()),
                                Blocked::Error(e) => error_fate(
                                    e.clone(),
                                    messages[item.index].receive_count,
                                    &self.settings,
                                ),
                            };
                            item.span.in_scope(
                            || warn!(reason = %fate_reason(&fate), "account cannot be worked on"),
                        );
                            fates[item.index] = Some((Action::None, fate));
                        }
                    }
                }
            }
            let mut done = stream::iter(ready.into_values())
                .map(|(group, mut items)| {
                    items.sort_by_key(|i| (ledger::parse_time(&i.event.time), i.index));
                    async move {
                        let mut record = group
                            .records
                            .get(items[0].event.instance_id.as_str())
                            .cloned();
                        let mut fates = Vec::with_capacity(items.len());
                        for item in items {
                            let job = Job {
                                message: &messages[item.index],
                                event: &item.event,
                                group,
                                computer_name: computer_name(
                                    &item.event.instance_id,
                                    group.config.computer_name_prefix.as_deref(),
                                ),
                            };
                            let (action, fate) = self
                                .handle_event(&job, &mut record)
                                .instrument(item.span.clone())
                                .await;
                            fates.push((item.index, action, fate));
                        }
                        fates
                    }
                })
                .buffer_unordered(self.settings.concurrency.max(1));
            while let Some(finished) = done.next().await {
                for (index, action, fate) in finished {
                    fates[index] = Some((action, fate));
                }
            }
        };
        match deadline {
            Some(deadline) => {
                if tokio::time::timeout_at(deadline, work).await.is_err() {
                    warn!("the invocation's deadline came before every message was finished");
                }
            }
            None => work.await,
        }

        // 4. Settle every message; visibility changes go out together per queue.
        let mut later = Visibility::default();
        let mut reports = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let (action, fate) = fates[index].take().unwrap_or((
                Action::None,
                Fate::Failed(
                    "not finished before the invocation's deadline; SQS delivers it again".into(),
                ),
            ));
            let report = self
                .settle(message, events[index].as_ref(), action, fate, &mut later)
                .instrument(spans[index].clone())
                .await;
            reports.push(report);
        }
        self.change_visibility(later).await;
        reports
    }

    /// Config item, session and instances for one account and Region.
    async fn prepare_group(
        &self,
        account: &AccountId,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Group, Blocked> {
        let item = match self.ports.config.get(account).await {
            Ok(Some(item)) => item,
            Ok(None) => {
                return Err(Blocked::Rejected(format!(
                    "no config item for account {account} in the config table"
                )));
            }
            Err(e) => return Err(Blocked::Error(e)),
        };
        let config = AccountConfig::from_item(&item, account).map_err(Blocked::Rejected)?;
        let ports = match &config.role {
            Some(role) => self.ports.sessions.assume(role, region).await,
            None => self.ports.sessions.home_in(region).await,
        }
        .map_err(Blocked::Error)?;
        if &ports.account != account {
            return Err(Blocked::Rejected(format!(
                "config item for account {account} has no assumeRoleARN, and the service runs in account {}",
                ports.account
            )));
        }
        // What EC2 reports and what the ledger says, read at the same time.
        let (instances, records) = tokio::join!(
            ports.instances.describe(ids),
            self.ports.ledger.get_many(ids)
        );
        let instances = instances
            .map_err(Blocked::Error)?
            .into_iter()
            .map(|i| (i.id.to_string(), i))
            .collect();
        let records = records
            .map_err(Blocked::Error)?
            .into_iter()
            .map(|r| (r.instance_id.clone(), r))
            .collect();
        info!(instances = ids.len(), "account ready");
        Ok(Group {
            config,
            ports,
            instances,
            records,
        })
    }

    /// Decides what one event needs and does it; `record` is the instance's ledger
    /// record, kept current across the instance's events in this batch.
    async fn handle_event(&self, job: &Job<'_>, record: &mut Option<JoinRecord>) -> (Action, Fate) {
        let who = Handler {
            message_id: &job.message.message_id,
            now: SystemTime::now(),
            stale_after: self.settings.max_age,
        };
        // What the ledger says about a running event, read once. The delivery that sent
        // a join verifies it, whatever EC2 reports now.
        let running = (job.event.state == EventState::Running)
            .then(|| ledger::on_running(record.as_ref(), &who));
        if let Some(Step::Verify { command_id }) = running {
            return (Action::Verify, self.verify(job, record, &command_id).await);
        }
        let instance = job.group.instances.get(job.event.instance_id.as_str());
        match decide(job.event, instance) {
            Decision::Skip(reason) => (Action::None, Fate::Skipped(reason.to_string())),
            Decision::Refuse(reason) => (Action::None, Fate::Rejected(reason)),
            Decision::Join { platform } => {
                let Some(instance) = instance else {
                    return (
                        Action::Join,
                        Fate::Failed("internal: join without instance".into()),
                    );
                };
                if let Err(reason) = check_group_tag(instance.tag(GROUP_TAG)) {
                    return (Action::Join, Fate::Rejected(reason));
                }
                let fate = match running {
                    Some(Step::Join { attempt }) => {
                        info!(platform = platform.as_str(), computer_name = %job.computer_name, attempt, "joining");
                        self.join(job, instance, record, attempt, None).await
                    }
                    Some(Step::Skip(reason)) => Fate::Skipped(reason),
                    other => Fate::Failed(format!("internal: {other:?} for a running event")),
                };
                (Action::Join, fate)
            }
            Decision::Leave => {
                let fate = match ledger::on_terminated(record.as_ref(), &who) {
                    Step::Leave => self.leave(job, record).await,
                    Step::Tombstone if self.settings.leave_unrecorded => {
                        self.leave(job, record).await
                    }
                    Step::Tombstone => self.tombstone(job, record).await,
                    Step::Skip(reason) => Fate::Skipped(reason),
                    other => Fate::Failed(format!("internal: {other:?} for a terminated event")),
                };
                (Action::Leave, fate)
            }
        }
    }

    /// Claims the record, sends join attempt `attempt`, records the command id.
    /// `last` is the previous attempt's exit code and output, kept in the record.
    async fn join(
        &self,
        job: &Job<'_>,
        instance: &Instance,
        record: &mut Option<JoinRecord>,
        attempt: u32,
        last: Option<(Option<i32>, String)>,
    ) -> Fate {
        let request = join_command(
            instance,
            &job.group.config,
            &job.event.region,
            &job.computer_name,
            &job.event.event_id,
        );
        if self.settings.dry_run {
            return dry_run(&request);
        }
        let (exit_code, output) = last.map_or((None, None), |(c, o)| (c, Some(o)));
        let claim = self.next_record(job, record.as_ref(), |r| {
            r.status = JoinStatus::Joining;
            r.command_id = None;
            r.attempts = attempt;
            r.exit_code = exit_code;
            r.output = output;
            r.expires_at = None;
        });
        if let Err(fate) = self.write(record, claim).await {
            return fate;
        }
        match job.group.ports.commands.send(&request).await {
            Ok(command_id) => {
                info!(%command_id, document = request.document.name(), target = %request.target, "command sent");
                let sent = self.next_record(job, record.as_ref(), |r| {
                    r.command_id = Some(command_id.clone());
                });
                if let Err(fate) = self.write(record, sent).await {
                    // Sent but not recorded: the next delivery sends it again, which the
                    // join script turns into a no-op.
                    warn!(reason = %fate_reason(&fate), "join command sent, but its id is not in the ledger");
                }
                let verify_after = self.can_come_back(job.message).then(|| {
                    self.settings
                        .verify_after
                        .max(backoff(attempt, self.settings.max_backoff))
                });
                Fate::Dispatched {
                    note: match verify_after {
                        Some(d) => format!(
                            "join attempt {attempt} sent; its result is read in {}s",
                            d.as_secs()
                        ),
                        None => format!(
                            "join attempt {attempt} sent; not verified (no queue to bring the message back)"
                        ),
                    },
                    command_id: Some(command_id),
                    command: None,
                    verify_after,
                }
            }
            Err(e) => {
                let fate = error_fate(e, job.message.receive_count, &self.settings);
                if let Fate::Rejected(reason) = &fate {
                    // Nobody will send this join: free the record for a later event.
                    let failed = self.next_record(job, record.as_ref(), |r| {
                        r.status = JoinStatus::Failed;
                        r.output = Some(reason.clone());
                    });
                    if let Err(f) = self.write(record, failed).await {
                        warn!(reason = %fate_reason(&f), "could not record the failed join");
                    }
                }
                fate
            }
        }
    }

    /// Reads the result of the join this delivery sent: records `joined`, or sends the
    /// next attempt, or records `failed` and rejects the message with the script's
    /// exit code and last output lines.
    async fn verify(
        &self,
        job: &Job<'_>,
        record: &mut Option<JoinRecord>,
        command_id: &str,
    ) -> Fate {
        if self.settings.dry_run {
            return Fate::Skipped(format!("would read the result of command {command_id}"));
        }
        let result = match job
            .group
            .ports
            .commands
            .result(command_id, &job.event.instance_id)
            .await
        {
            Ok(result) => result,
            Err(e) => return error_fate(e, job.message.receive_count, &self.settings),
        };
        let tail = ledger::output_tail(&result.stdout, &result.stderr, ledger::OUTPUT_LINES);
        let attempts = record.as_ref().map_or(1, |r| r.attempts);
        match result.status {
            CommandStatus::Pending | CommandStatus::InProgress => Fate::Deferred {
                reason: format!("command {command_id} has not finished yet"),
                delay: self.settings.verify_after.min(backoff(
                    job.message.receive_count,
                    self.settings.max_backoff,
                )),
            },
            CommandStatus::Success => {
                let joined = self.next_record(job, record.as_ref(), |r| {
                    r.status = JoinStatus::Joined;
                    r.exit_code = result.exit_code;
                    r.output = Some(tail.clone());
                });
                match self.write(record, joined).await {
                    Ok(()) => {
                        info!(%command_id, computer_name = %job.computer_name, "joined");
                        Fate::Verified(format!(
                            "joined as {}: command {command_id} succeeded",
                            job.computer_name
                        ))
                    }
                    Err(fate) => fate,
                }
            }
            CommandStatus::Failed(status) => {
                let code = result
                    .exit_code
                    .map_or_else(|| "none".to_owned(), |c| c.to_string());
                let why = format!("command {command_id} {status} with exit code {code}");
                warn!(%command_id, exit_code = result.exit_code, output = %tail, "join failed");
                let instance = job.group.instances.get(job.event.instance_id.as_str());
                match instance.filter(|i| i.state == "running") {
                    Some(instance) if attempts < self.settings.join_attempts => {
                        match self
                            .join(
                                job,
                                instance,
                                record,
                                attempts + 1,
                                Some((result.exit_code, tail)),
                            )
                            .await
                        {
                            Fate::Dispatched {
                                command_id,
                                command,
                                verify_after,
                                note,
                            } => Fate::Dispatched {
                                note: format!("{why}; {note}"),
                                command_id,
                                command,
                                verify_after,
                            },
                            other => other,
                        }
                    }
                    _ => {
                        let failed = self.next_record(job, record.as_ref(), |r| {
                            r.status = JoinStatus::Failed;
                            r.exit_code = result.exit_code;
                            r.output = Some(tail.clone());
                        });
                        if let Err(fate) = self.write(record, failed).await {
                            return fate;
                        }
                        Fate::Rejected(format!(
                            "join of {} failed after {attempts} attempt(s): {why}: {}",
                            job.computer_name,
                            clip(&tail, 1000)
                        ))
                    }
                }
            }
        }
    }

    /// Claims the record, sends the leave command to the AD tools host, records it.
    async fn leave(&self, job: &Job<'_>, record: &mut Option<JoinRecord>) -> Fate {
        let tag = job
            .group
            .config
            .tools_host_tag
            .clone()
            .unwrap_or_else(|| self.settings.tools_host_tag.clone());
        let (home, tools) = match self.tools_host(&tag, job.message.receive_count).await {
            Ok(found) => found,
            Err(fate) => return fate,
        };
        info!(computer_name = %job.computer_name, tools_host = %tools.id, "leaving");
        let request = leave_command(
            &tools,
            &job.group.config,
            &home.region,
            &job.event.instance_id,
            &job.computer_name,
            &job.event.event_id,
        );
        if self.settings.dry_run {
            return dry_run(&request);
        }
        let claim = self.next_record(job, record.as_ref(), |r| {
            r.status = JoinStatus::Leaving;
        });
        if let Err(fate) = self.write(record, claim).await {
            return fate;
        }
        match home.commands.send(&request).await {
            Ok(command_id) => {
                info!(%command_id, document = request.document.name(), target = %request.target, "command sent");
                let expires = ledger::epoch_seconds(SystemTime::now() + ledger::LEFT_RECORD_TTL);
                let left = self.next_record(job, record.as_ref(), |r| {
                    r.status = JoinStatus::Left;
                    r.command_id = Some(command_id.clone());
                    r.expires_at = Some(expires);
                });
                if let Err(fate) = self.write(record, left).await {
                    warn!(reason = %fate_reason(&fate), "leave command sent, but not recorded");
                }
                Fate::Dispatched {
                    command_id: Some(command_id),
                    command: None,
                    verify_after: None,
                    note: format!(
                        "leave command sent to the AD tools host {}; the ledger says left",
                        tools.id
                    ),
                }
            }
            Err(e) => {
                // The host may have stopped or been replaced: look it up afresh next time.
                self.tools_hosts.lock().await.remove(&tag);
                error_fate(e, job.message.receive_count, &self.settings)
            }
        }
    }

    /// A terminated instance that was never joined: nothing to delete, but the record
    /// says `left` so that its delayed running event is skipped.
    async fn tombstone(&self, job: &Job<'_>, record: &mut Option<JoinRecord>) -> Fate {
        let reason = "no join recorded for the instance: nothing to delete";
        if self.settings.dry_run {
            return Fate::Skipped(reason.to_owned());
        }
        let expires = ledger::epoch_seconds(SystemTime::now() + ledger::LEFT_RECORD_TTL);
        let left = self.next_record(job, record.as_ref(), |r| {
            r.status = JoinStatus::Left;
            r.expires_at = Some(expires);
        });
        match self.write(record, left).await {
            Ok(()) => Fate::Skipped(format!(
                "{reason}; recorded as left, so a late running event is skipped"
            )),
            Err(fate) => fate,
        }
    }

    /// The next version of the instance's record, held by this message and event.
    fn next_record(
        &self,
        job: &Job<'_>,
        record: Option<&JoinRecord>,
        change: impl FnOnce(&mut JoinRecord),
    ) -> JoinRecord {
        let now = SystemTime::now();
        ledger::next(
            record,
            || JoinRecord {
                instance_id: job.event.instance_id.to_string(),
                account: job.event.account.to_string(),
                region: job.event.region.to_string(),
                status: JoinStatus::Joining,
                computer_name: job.computer_name.clone(),
                message_id: String::new(),
                event_id: String::new(),
                command_id: None,
                attempts: 0,
                exit_code: None,
                output: None,
                created_at: ledger::format_time(now),
                updated_at: String::new(),
                expires_at: None,
                version: 0,
            },
            now,
            |r| {
                r.message_id = job.message.message_id.clone();
                r.event_id = job.event.event_id.clone();
                r.computer_name = job.computer_name.clone();
                change(r);
            },
        )
    }

    /// Writes `new` over `record` if nobody changed it meanwhile.
    async fn write(&self, record: &mut Option<JoinRecord>, new: JoinRecord) -> Result<(), Fate> {
        match self
            .ports
            .ledger
            .put_if(&new, record.as_ref().map(|r| r.version))
            .await
        {
            Ok(true) => {
                *record = Some(new);
                Ok(())
            }
            Ok(false) => Err(Fate::Failed(format!(
                "the ledger record of {} changed while this message was handled; decided again on the next delivery",
                new.instance_id
            ))),
            Err(e) => Err(Fate::Failed(e.to_string())),
        }
    }

    /// Whether this message can be made to come back (a live SQS delivery).
    fn can_come_back(&self, message: &Message) -> bool {
        self.ports.queue.is_some()
            && message.receipt_handle.is_some()
            && message.source_queue_arn.is_some()
    }

    /// The AD tools host: a running instance with the tag, in the service's own account
    /// and Region. Looked up once per tag and [`Settings::tools_host_ttl`].
    async fn tools_host(
        &self,
        tag: &TagMatch,
        receive_count: u32,
    ) -> Result<(AccountPorts, Instance), Fate> {
        let home = self
            .ports
            .sessions
            .home()
            .await
            .map_err(|e| error_fate(e, receive_count, &self.settings))?;
        let mut cache = self.tools_hosts.lock().await;
        if let Some((host, found)) = cache.get(tag)
            && found.elapsed() < self.settings.tools_host_ttl
        {
            return Ok((home, host.clone()));
        }
        let mut hosts = home
            .instances
            .find_running_by_tag(tag)
            .await
            .map_err(|e| error_fate(e, receive_count, &self.settings))?;
        hosts.sort_by(|a, b| a.id.cmp(&b.id));
        match hosts.into_iter().next() {
            Some(host) => {
                cache.insert(tag.clone(), (host.clone(), tokio::time::Instant::now()));
                Ok((home, host))
            }
            None => Err(Fate::Failed(format!(
                "no running AD tools host tagged {}={} in account {} {}",
                tag.key, tag.value, home.account, home.region
            ))),
        }
    }

    /// Turns a fate into the final report, doing what the outcome needs on the queue.
    async fn settle(
        &self,
        message: &Message,
        event: Option<&InstanceEvent>,
        action: Action,
        fate: Fate,
        later: &mut Visibility,
    ) -> Report {
        let age = event
            .and_then(|e| ledger::parse_time(&e.time))
            .and_then(|t| SystemTime::now().duration_since(t).ok());
        let fate = match fate {
            Fate::Deferred { reason, .. } | Fate::Failed(reason)
                if age.is_some_and(|age| age > self.settings.max_age) =>
            {
                Fate::Rejected(format!(
                    "gave up: the event is {}s old, over the {}s limit: {reason}",
                    age.unwrap_or_default().as_secs(),
                    self.settings.max_age.as_secs()
                ))
            }
            Fate::Deferred { reason, .. } | Fate::Failed(reason)
                if message.receive_count >= self.settings.max_attempts =>
            {
                Fate::Rejected(format!(
                    "gave up after {} deliveries: {reason}",
                    message.receive_count
                ))
            }
            other => other,
        };
        let mut comes_back = false;
        let (outcome, reason, command_id, command) = match fate {
            Fate::Dispatched {
                command_id,
                command,
                verify_after,
                note,
            } => {
                if let Some(delay) = verify_after {
                    comes_back = self.retry_after(message, delay, later);
                }
                (Outcome::Dispatched, note, command_id, command)
            }
            Fate::Verified(reason) => (Outcome::Verified, reason, None, None),
            Fate::Skipped(reason) => (Outcome::Skipped, reason, None, None),
            Fate::Failed(reason) => (Outcome::Failed, reason, None, None),
            Fate::Deferred { reason, delay } => {
                self.retry_after(message, delay, later);
                (
                    Outcome::Deferred,
                    format!("{reason} (retry in {}s)", delay.as_secs()),
                    None,
                    None,
                )
            }
            Fate::Rejected(reason) => match self.dead_letter(message, &reason).await {
                Ok(()) => (Outcome::Rejected, reason, None, None),
                Err(e) => (
                    Outcome::Failed,
                    format!("{reason}; and the DLQ refused it: {e}"),
                    None,
                    None,
                ),
            },
        };
        let comes_back = comes_back || outcome.is_batch_item_failure();
        match outcome {
            Outcome::Dispatched | Outcome::Verified | Outcome::Skipped => {
                info!(outcome = ?outcome, reason = %reason, "done")
            }
            _ => warn!(outcome = ?outcome, reason = %reason, "done"),
        }
        Report {
            message_id: message.message_id.clone(),
            account: event.map(|e| e.account.to_string()),
            region: event.map(|e| e.region.to_string()),
            instance_id: event.map(|e| e.instance_id.to_string()),
            action,
            outcome,
            reason,
            command_id,
            command,
            comes_back,
        }
    }

    async fn dead_letter(&self, message: &Message, reason: &str) -> Result<(), Error> {
        let Some(queue) = self.ports.queue.as_ref().filter(|_| !self.settings.dry_run) else {
            return Ok(());
        };
        let letter = DeadLetter {
            message_id: message.message_id.clone(),
            body: message.body.clone(),
            reason: reason.to_owned(),
        };
        queue.send_to_dlq(&letter).await
    }

    /// Makes the message come back after `delay` (collected in `later`); whether it
    /// can.
    fn retry_after(&self, message: &Message, delay: Duration, later: &mut Visibility) -> bool {
        let (Some(_), Some(handle), Some(arn)) = (
            &self.ports.queue,
            &message.receipt_handle,
            &message.source_queue_arn,
        ) else {
            return false;
        };
        if self.settings.dry_run {
            return false;
        }
        later
            .entry(arn.clone())
            .or_default()
            .push((handle.clone(), delay));
        true
    }

    /// ChangeMessageVisibilityBatch for the messages that come back, per queue.
    async fn change_visibility(&self, later: Visibility) {
        let Some(queue) = &self.ports.queue else {
            return;
        };
        for (arn, messages) in later {
            if let Err(e) = queue.retry_after(&arn, &messages).await {
                // Batch item failures all the same: they come back after the queue's
                // visibility timeout instead.
                warn!(error = %e, messages = messages.len(), "could not set the back-off of messages");
            }
        }
    }
}

/// Visibility changes to make, by source queue ARN: receipt handle and delay.
type Visibility = BTreeMap<String, Vec<(String, Duration)>>;

fn check_group_tag(value: Option<&str>) -> Result<(), String> {
    match value.and_then(|v| group_tag_problem(v).map(|problem| (v, problem))) {
        Some((v, problem)) => Err(format!("{GROUP_TAG} tag {v:?} {problem}: not joined")),
        None => Ok(()),
    }
}

/// Maps a port error to a fate: back off, retry, or reject with the error as reason.
fn error_fate(e: Error, receive_count: u32, settings: &Settings) -> Fate {
    if e.wants_backoff() {
        Fate::Deferred {
            reason: e.to_string(),
            delay: backoff(receive_count, settings.max_backoff),
        }
    } else if e.is_transient() {
        Fate::Failed(e.to_string())
    } else {
        Fate::Rejected(e.to_string())
    }
}

/// The dry run's result: the command that would be sent.
fn dry_run(request: &CommandRequest) -> Fate {
    Fate::Dispatched {
        command_id: None,
        command: Some(request.into()),
        verify_after: None,
        note: String::new(),
    }
}

/// The last `max` bytes of `text` (at a character boundary), marked when cut.
fn clip(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("…{}", &text[start..])
}

fn fate_reason(fate: &Fate) -> String {
    match fate {
        Fate::Dispatched { note, .. } => note.clone(),
        Fate::Verified(r)
        | Fate::Skipped(r)
        | Fate::Rejected(r)
        | Fate::Failed(r)
        | Fate::Deferred { reason: r, .. } => r.clone(),
    }
}

#[cfg(test)]
mod tests;
