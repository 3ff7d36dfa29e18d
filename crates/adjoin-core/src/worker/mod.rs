//! The worker: from a batch of SQS messages to commands sent and a report per message.
//!
//! A batch goes through four phases, in this order:
//!
//! 1. [`intake`]: parse every body, refuse what is not an EC2 state-change event, drop
//!    duplicates within the batch, and group the rest by account and Region; then
//!    prepare each group: read and validate the config item, open a session (assume
//!    the member role), describe its instances and read their ledger records, one call
//!    each per group;
//! 2. [`plan`]: per instance, its events in the order they happened, decide what to
//!    do from the event, what EC2 reports and what the ledger says — a pure function;
//! 3. [`act`]: carry the plan out: claim the ledger record, send the join command to
//!    the instance or the leave command to the AD tools host ([`leave`]), record the
//!    command id; the delivery that sent a command comes back later to verify it. A
//!    staged join ([`stage`]) first has the AD tools host create the computer account
//!    with a one-time password, then sends the join;
//!
//!    Each instance is a task of its own, and reads as if it were alone; the calls the
//!    tasks make at the same step — ledger writes, join commands, ready tags, parameter
//!    deletions, command results — are gathered into one call per kind ([`gather`]);
//! 4. [`settle`]: rejected messages go to the DLQ with their reason, deferred ones come
//!    back after a back-off, and messages whose event is older than
//!    [`Settings::max_age`] (or delivered [`Settings::max_attempts`] times) are rejected
//!    rather than retried forever.

mod act;
mod gather;
mod intake;
mod leave;
pub mod plan;
mod send;
mod settle;
mod stage;
mod tools_host;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::StreamExt as _;
use futures::stream;
use tracing::warn;

use crate::config::TagMatch;
use crate::error::{Error, backoff};
use crate::outcome::{Action, RenderedCommand, Report};
use crate::ports::{Clock, ConfigStore, Ledger, Queue, Sessions, SystemClock};

use gather::Gather;
use intake::{Entry, Group, GroupKey, Pending};
use tools_host::ToolsHosts;

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
    /// (instances joined before the ledger existed, e.g. by an earlier tool), when EC2
    /// reports it terminated; otherwise such a terminate deletes nothing.
    pub leave_unrecorded: bool,
    /// The longest back-off for a deferred message.
    pub max_backoff: Duration,
    /// Read everything, send nothing; report the rendered commands.
    pub dry_run: bool,
    /// Join instances tagged `autoadjoin=false` all the same (`adjoin join
    /// --ignore-opt-out`: an operator's explicit request, never the service's).
    pub ignore_opt_out: bool,
}

/// The defaults of the settings. The environment (`ADJOIN_*`), the central stack's
/// parameters and the README state them too; tests hold those to these.
pub mod defaults {
    /// `ADJOIN_CONCURRENCY`: a batch of the stack's default size is worked on all at once,
    /// so that its calls are gathered.
    pub const CONCURRENCY: u32 = 10;
    /// `ADJOIN_MAX_ATTEMPTS`.
    pub const MAX_ATTEMPTS: u32 = 25;
    /// `ADJOIN_MAX_AGE_SECONDS`.
    pub const MAX_AGE_SECONDS: u32 = 7200;
    /// `ADJOIN_JOIN_ATTEMPTS`.
    pub const JOIN_ATTEMPTS: u32 = 3;
    /// `ADJOIN_CONFIG_TTL_SECONDS`: how long a warm container keeps a config item.
    pub const CONFIG_TTL_SECONDS: u32 = 60;
}

impl Settings {
    pub fn new(tools_host_tag: TagMatch) -> Self {
        Settings {
            tools_host_tag,
            concurrency: defaults::CONCURRENCY as usize,
            max_attempts: defaults::MAX_ATTEMPTS,
            max_age: Duration::from_secs(defaults::MAX_AGE_SECONDS.into()),
            join_attempts: defaults::JOIN_ATTEMPTS,
            verify_after: Duration::from_secs(120),
            tools_host_ttl: Duration::from_secs(300),
            leave_unrecorded: false,
            max_backoff: Duration::from_secs(900),
            dry_run: false,
            ignore_opt_out: false,
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
    clock: Arc<dyn Clock>,
    /// AD tools hosts found, by tag, kept for [`Settings::tools_host_ttl`].
    tools_hosts: ToolsHosts,
    /// adjoin's documents checked, by account and Region, kept as long.
    documents: send::CheckedDocuments,
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

impl Fate {
    /// A retry's fate: a dispatched command's note starts with why the last one failed.
    fn after(self, why: &str) -> Fate {
        match self {
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

    fn reason(&self) -> &str {
        match self {
            Fate::Dispatched { note, .. } => note,
            Fate::Verified(r)
            | Fate::Skipped(r)
            | Fate::Rejected(r)
            | Fate::Failed(r)
            | Fate::Deferred { reason: r, .. } => r,
        }
    }
}

impl Worker {
    pub fn new(ports: Ports, settings: Settings) -> Self {
        Worker {
            tools_hosts: ToolsHosts::new(settings.tools_host_ttl),
            documents: send::CheckedDocuments::new(settings.tools_host_ttl),
            ports,
            settings,
            clock: Arc::new(SystemClock),
        }
    }

    /// The same worker, reading the time from `clock` (tests move time on).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The same worker with its settings changed.
    pub fn with(mut self, change: impl FnOnce(&mut Settings)) -> Self {
        change(&mut self.settings);
        self
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    fn now(&self) -> SystemTime {
        self.clock.now()
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
        // 1. Intake: parse, drop duplicates within the batch, group by account and Region.
        let (mut entries, groups) = intake::intake(messages);
        let work = async {
            // 1b. Per group: config item, session, EC2 and ledger reads.
            let prepared = self.prepare_groups(groups).await;
            // 2 and 3. Per instance, its events in order: plan, then act.
            self.plan_and_act(&prepared, &mut entries).await;
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
        self.settle_batch(entries).await
    }

    /// Prepares every group, several at a time.
    async fn prepare_groups<'m>(
        &self,
        groups: BTreeMap<GroupKey, Vec<Pending<'m>>>,
    ) -> Vec<(Vec<Pending<'m>>, Result<Group, Blocked>)> {
        stream::iter(groups)
            .map(|((account, region), items)| async move {
                let group = self.prepare_group(&account, &region, &items).await;
                (items, group)
            })
            .buffer_unordered(self.settings.concurrency.max(1))
            .collect()
            .await
    }

    /// Plans and acts on every instance of the prepared groups, several instances at a
    /// time; each instance's events one after the other. Fates are written into
    /// `entries` as each instance finishes, so a deadline keeps what was done.
    async fn plan_and_act(
        &self,
        prepared: &[(Vec<Pending<'_>>, Result<Group, Blocked>)],
        entries: &mut [Entry<'_>],
    ) {
        let mut instances: BTreeMap<(usize, &str), (&Group, Vec<&Pending<'_>>)> = BTreeMap::new();
        for (group_index, (items, group)) in prepared.iter().enumerate() {
            match group {
                Ok(group) => {
                    for item in items {
                        instances
                            .entry((group_index, item.event.instance_id.as_str()))
                            .or_insert_with(|| (group, Vec::new()))
                            .1
                            .push(item);
                    }
                }
                Err(blocked) => {
                    for item in items {
                        let fate = blocked.fate(item.message.receive_count, &self.settings);
                        item.span.in_scope(
                            || warn!(reason = %fate.reason(), "account cannot be worked on"),
                        );
                        intake::conclude(entries, item.index, Action::None, fate);
                    }
                }
            }
        }
        // Each instance is a task of its own; their ledger writes, joins, tags, deletions
        // and result reads at the same step are gathered into fewer calls.
        let gather = Gather::new(self.ports.ledger.clone());
        let gather = &gather;
        let mut done = stream::iter(instances.into_values())
            .map(|(group, items)| gather.task(self.handle_instance(group, gather, items)))
            .buffer_unordered(self.settings.concurrency.max(1));
        while let Some(finished) = done.next().await {
            for (index, action, fate) in finished {
                intake::conclude(entries, index, action, fate);
            }
        }
    }
}

/// Why an account/Region group cannot be worked on.
#[derive(Debug)]
enum Blocked {
    Rejected(String),
    Error(Error),
}

impl Blocked {
    fn fate(&self, receive_count: u32, settings: &Settings) -> Fate {
        match self {
            Blocked::Rejected(reason) => Fate::Rejected(reason.clone()),
            Blocked::Error(e) => error_fate(e.clone(), receive_count, settings),
        }
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

#[cfg(test)]
mod tests;
