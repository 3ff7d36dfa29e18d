//! The worker: from a batch of SQS messages to commands sent and a report per message.
//!
//! The whole flow is here, top to bottom:
//!
//! 1. parse every body; refuse what is not an EC2 state-change event;
//! 2. per account and Region in the batch: read and validate the config item, open a
//!    session (assume the member role), describe all its instances in one call;
//! 3. per event: decide, render, send the join command to the instance or the leave
//!    command to the AD tools host;
//! 4. settle: rejected messages go to the DLQ with their reason, deferred ones come back
//!    after a back-off, and messages that failed too often are rejected rather than
//!    retried forever.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::stream;
use tokio::sync::Mutex;
use tracing::{Instrument as _, Span, field, info, info_span, warn};

use crate::computer_name::computer_name;
use crate::config::{AccountConfig, TagMatch};
use crate::decide::{Decision, decide};
use crate::error::{Error, backoff};
use crate::event::{InstanceEvent, parse_body};
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::{GROUP_TAG, Instance};
use crate::outcome::{Action, Outcome, RenderedCommand, Report};
use crate::ports::{AccountPorts, ConfigStore, DeadLetter, Queue, Sessions};
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
    /// After this many deliveries a message that still fails is rejected to the DLQ.
    pub max_attempts: u32,
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
            max_attempts: 5,
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
    /// The DLQ and visibility changes; `None` when replaying files without a queue.
    pub queue: Option<Arc<dyn Queue>>,
}

/// Processes batches; built once per container, shared by all invocations.
pub struct Worker {
    ports: Ports,
    settings: Settings,
}

/// How a message ends before settling.
#[derive(Debug, Clone)]
enum Fate {
    Dispatched {
        command_id: Option<String>,
        command: Option<RenderedCommand>,
    },
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
}

impl Worker {
    pub fn new(ports: Ports, settings: Settings) -> Self {
        Worker { ports, settings }
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
            let tools_hosts = Mutex::new(HashMap::new());
            let group_results: Vec<(Vec<Item>, Result<Group, Blocked>)> = stream::iter(groups)
            .map(|((account, region), items)| async move {
                let ids: Vec<_> = items.iter().map(|i| i.event.instance_id.clone()).collect::<HashSet<_>>().into_iter().collect();
                let span = info_span!("account", account = %account, region = %region, messages = items.len());
                let group = self.prepare_group(&account, &region, &ids).instrument(span).await;
                (items, group)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await;

            // 3. Per event: decide, render, send.
            let mut ready = Vec::new();
            for (items, group) in &group_results {
                for item in items {
                    match group {
                        Ok(group) => ready.push((item, group)),
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
            let mut done = stream::iter(ready)
                .map(|(item, group)| {
                    let receive_count = messages[item.index].receive_count;
                    let tools_hosts = &tools_hosts;
                    async move {
                        let (action, fate) = self
                            .handle_event(&item.event, group, receive_count, tools_hosts)
                            .await;
                        (item.index, action, fate)
                    }
                    .instrument(item.span.clone())
                })
                .buffer_unordered(self.settings.concurrency.max(1));
            while let Some((index, action, fate)) = done.next().await {
                fates[index] = Some((action, fate));
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

        // 4. Settle every message.
        let mut reports = Vec::with_capacity(messages.len());
        for (index, message) in messages.iter().enumerate() {
            let (action, fate) = fates[index].take().unwrap_or((
                Action::None,
                Fate::Failed(
                    "not finished before the invocation's deadline; SQS delivers it again".into(),
                ),
            ));
            let report = self
                .settle(message, events[index].as_ref(), action, fate)
                .instrument(spans[index].clone())
                .await;
            reports.push(report);
        }
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
        let instances = ports
            .instances
            .describe(ids)
            .await
            .map_err(Blocked::Error)?
            .into_iter()
            .map(|i| (i.id.to_string(), i))
            .collect();
        info!(instances = ids.len(), "account ready");
        Ok(Group {
            config,
            ports,
            instances,
        })
    }

    /// Decides, renders and sends the command for one event.
    async fn handle_event(
        &self,
        event: &InstanceEvent,
        group: &Group,
        receive_count: u32,
        tools_hosts: &Mutex<HashMap<TagMatch, Instance>>,
    ) -> (Action, Fate) {
        let instance = group.instances.get(event.instance_id.as_str());
        let name = computer_name(
            &event.instance_id,
            group.config.computer_name_prefix.as_deref(),
        );
        match decide(event, instance) {
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
                info!(platform = platform.as_str(), computer_name = %name, "joining");
                let request = join_command(
                    instance,
                    &group.config,
                    &event.region,
                    &name,
                    &event.event_id,
                );
                (
                    Action::Join,
                    self.send(&group.ports, &request, receive_count).await,
                )
            }
            Decision::Leave => {
                let tag = group
                    .config
                    .tools_host_tag
                    .clone()
                    .unwrap_or_else(|| self.settings.tools_host_tag.clone());
                let (home, tools) = match self.tools_host(&tag, tools_hosts, receive_count).await {
                    Ok(found) => found,
                    Err(e) => return (Action::Leave, e),
                };
                info!(computer_name = %name, tools_host = %tools.id, "leaving");
                let request = leave_command(
                    &tools,
                    &group.config,
                    &home.region,
                    &event.instance_id,
                    &name,
                    &event.event_id,
                );
                (
                    Action::Leave,
                    self.send(&home, &request, receive_count).await,
                )
            }
        }
    }

    /// The AD tools host: a running instance with the tag, in the service's own account
    /// and Region. Looked up once per batch and tag.
    async fn tools_host(
        &self,
        tag: &TagMatch,
        cache: &Mutex<HashMap<TagMatch, Instance>>,
        receive_count: u32,
    ) -> Result<(AccountPorts, Instance), Fate> {
        let home = self
            .ports
            .sessions
            .home()
            .await
            .map_err(|e| error_fate(e, receive_count, &self.settings))?;
        let mut cache = cache.lock().await;
        if let Some(host) = cache.get(tag) {
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
                cache.insert(tag.clone(), host.clone());
                Ok((home, host))
            }
            None => Err(Fate::Failed(format!(
                "no running AD tools host tagged {}={} in account {} {}",
                tag.key, tag.value, home.account, home.region
            ))),
        }
    }

    async fn send(
        &self,
        ports: &AccountPorts,
        request: &CommandRequest,
        receive_count: u32,
    ) -> Fate {
        if self.settings.dry_run {
            return Fate::Dispatched {
                command_id: None,
                command: Some(request.into()),
            };
        }
        match ports.commands.send(request).await {
            Ok(command_id) => {
                info!(%command_id, document = request.document.name(), target = %request.target, "command sent");
                Fate::Dispatched {
                    command_id: Some(command_id),
                    command: None,
                }
            }
            Err(e) => error_fate(e, receive_count, &self.settings),
        }
    }

    /// Turns a fate into the final report, doing what the outcome needs on the queue.
    async fn settle(
        &self,
        message: &Message,
        event: Option<&InstanceEvent>,
        action: Action,
        fate: Fate,
    ) -> Report {
        let fate = match fate {
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
        let (outcome, reason, command_id, command) = match fate {
            Fate::Dispatched {
                command_id,
                command,
            } => (Outcome::Dispatched, String::new(), command_id, command),
            Fate::Skipped(reason) => (Outcome::Skipped, reason, None, None),
            Fate::Failed(reason) => (Outcome::Failed, reason, None, None),
            Fate::Deferred { reason, delay } => {
                self.retry_after(message, delay).await;
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
        match outcome {
            Outcome::Dispatched | Outcome::Skipped => {
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

    async fn retry_after(&self, message: &Message, delay: Duration) {
        let (Some(queue), Some(handle), Some(arn)) = (
            &self.ports.queue,
            &message.receipt_handle,
            &message.source_queue_arn,
        ) else {
            return;
        };
        if self.settings.dry_run {
            return;
        }
        if let Err(e) = queue.retry_after(arn, handle, delay).await {
            // The message still comes back, after the queue's visibility timeout.
            warn!(error = %e, "could not set the back-off on the message");
        }
    }
}

/// The `adGroupName` value is written into sssd.conf and a Windows group name: no
/// control characters (a newline would add configuration lines) and no commas (sssd
/// would read a list of groups).
fn check_group_tag(value: Option<&str>) -> Result<(), String> {
    match value {
        Some(v) if v.chars().any(|c| c.is_control() || c == ',') => Err(format!(
            "{GROUP_TAG} tag {v:?} contains a comma or a control character: not joined"
        )),
        Some(v) if v.chars().count() > 256 => Err(format!(
            "{GROUP_TAG} tag is longer than 256 characters: not joined"
        )),
        _ => Ok(()),
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

fn fate_reason(fate: &Fate) -> String {
    match fate {
        Fate::Dispatched { .. } => String::new(),
        Fate::Skipped(r)
        | Fate::Rejected(r)
        | Fate::Failed(r)
        | Fate::Deferred { reason: r, .. } => r.clone(),
    }
}

#[cfg(test)]
mod tests;
