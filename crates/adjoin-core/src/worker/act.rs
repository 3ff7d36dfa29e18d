//! Phase 3: carry out the plan of each event — claim the ledger record, send the join
//! command to the instance or the leave command to the AD tools host, record the
//! command id; read a join's result when its message comes back.

use std::time::SystemTime;

use tracing::{Instrument as _, info, warn};

use super::gather::{CLOCK_SKEW, Gather};
use super::intake::{Group, Pending};
use super::plan::{Facts, Plan, RejectReason, TagRules, plan, tags_refuse_join};
use super::{Fate, Message, Worker, error_fate};
use crate::computer_name::computer_name;
use crate::config::JoinMode;
use crate::error::{Error, backoff};
use crate::event::InstanceEvent;
use crate::instance::READY_TAG;
use crate::ledger::{self, Handler, JoinRecord, JoinStatus};
use crate::outcome::Action;
use crate::ports::CommandStatus;
use crate::render::{CommandRequest, join_command};
use crate::text::clip_end;

/// A command SSM took, as the ledger records it.
pub(super) struct Sent {
    pub command_id: String,
    /// The host it runs on when it is not the instance (the AD tools host).
    pub target: Option<String>,
    /// What was sent, for the report.
    pub what: String,
}

impl Sent {
    fn to_instance(command_id: String, what: String) -> Sent {
        Sent {
            command_id,
            target: None,
            what,
        }
    }
}

/// One event being handled: its message, the event, its account/Region group, and
/// where its gathered calls go.
pub(super) struct Job<'a> {
    pub message: &'a Message,
    pub event: &'a InstanceEvent,
    pub group: &'a Group,
    pub gather: &'a Gather,
}

impl Worker {
    /// Handles the events of one instance in the order they happened; the ledger record
    /// is kept current from one to the next. Returns each message's place, action and
    /// fate.
    pub(super) async fn handle_instance(
        &self,
        group: &Group,
        gather: &Gather,
        mut items: Vec<&Pending<'_>>,
    ) -> Vec<(usize, Action, Fate)> {
        items.sort_by_key(|i| (ledger::parse_time(&i.event.time), i.index));
        let Some(first) = items.first() else {
            return Vec::new();
        };
        let instance_id = &first.event.instance_id;
        let mut record = group.records.get(instance_id.as_str()).cloned();
        let name = computer_name(instance_id, group.config.computer_name_prefix.as_deref());
        let mut fates = Vec::with_capacity(items.len());
        for item in items {
            let job = Job {
                message: item.message,
                event: &item.event,
                group,
                gather,
            };
            let (action, fate) = self
                .handle_event(&job, &name, &mut record)
                .instrument(item.span.clone())
                .await;
            fates.push((item.index, action, fate));
        }
        fates
    }

    /// Plans one event and carries the plan out. `record` is the instance's ledger
    /// record, kept current across the instance's events in this batch.
    async fn handle_event(
        &self,
        job: &Job<'_>,
        computer_name: &str,
        record: &mut Option<JoinRecord>,
    ) -> (Action, Fate) {
        let instance = job.group.instances.get(job.event.instance_id.as_str());
        let facts = Facts {
            event: job.event,
            instance,
            record: record.as_ref(),
            handler: Handler {
                message_id: &job.message.message_id,
                now: self.now(),
                stale_after: self.settings.max_age,
            },
            computer_name,
            leave_unrecorded: self.settings.leave_unrecorded,
            tag_rules: TagRules::of(&job.group.config),
            ignore_opt_out: self.settings.ignore_opt_out,
        };
        let (action, plan) = plan(&facts);
        let fate = match plan {
            Plan::Verify { command_id } => self.verify(job, record, &command_id).await,
            Plan::Join { platform, attempt } => match instance {
                Some(instance) => {
                    info!(platform = platform.as_str(), %computer_name, attempt,
                          join_mode = job.group.config.join_mode.as_str(), "joining");
                    self.start_join(job, instance, computer_name, record, attempt, None)
                        .await
                }
                None => Fate::Failed("internal: a join planned without an instance".into()),
            },
            Plan::VerifyStage { command_id, target } => {
                self.verify_stage(job, record, &command_id, &target).await
            }
            Plan::Reconfigure { computer_name } => match instance {
                Some(instance) => {
                    info!(%computer_name, "tags changed: writing the join's configuration again");
                    let request = join_command(
                        instance,
                        &job.group.config,
                        &job.event.region,
                        &computer_name,
                        &job.event.event_id,
                    );
                    self.join(job, request, &computer_name, record, 1, None)
                        .await
                        .after("tags changed on the joined instance")
                }
                None => {
                    Fate::Failed("internal: a reconfiguration planned without an instance".into())
                }
            },
            Plan::Leave {
                computer_name,
                attempt,
            } => self.leave(job, &computer_name, record, attempt, None).await,
            Plan::VerifyLeave { command_id, target } => {
                self.verify_leave(job, record, &command_id, &target).await
            }
            Plan::Tombstone => self.tombstone(job, computer_name, record).await,
            Plan::Skip(reason) => Fate::Skipped(reason.to_string()),
            Plan::Reject(reason) => {
                if let RejectReason::RecordElsewhere {
                    record_account,
                    record_region,
                } = &reason
                {
                    warn!(%record_account, %record_region,
                          "event names an instance the ledger records in another account or Region");
                }
                Fate::Rejected(reason.to_string())
            }
        };
        (action, fate)
    }

    /// Claims the record, sends join attempt `attempt`, records the command id.
    /// `last` is the previous attempt's exit code and output, kept in the record.
    pub(super) async fn join(
        &self,
        job: &Job<'_>,
        request: CommandRequest,
        computer_name: &str,
        record: &mut Option<JoinRecord>,
        attempt: u32,
        last: Option<(Option<i32>, String)>,
    ) -> Fate {
        if self.settings.dry_run {
            return dry_run(&request);
        }
        // This delivery claimed this attempt before but never learnt whether its command
        // was sent (the answer was lost): look for it before sending again, so that an
        // attempt is one command.
        if let Some(claimed) = record.as_ref().filter(|r| {
            r.status == JoinStatus::Joining
                && r.message_id == job.message.message_id
                && r.command_id.is_none()
                && r.attempts == attempt
        }) {
            let claimed_at = ledger::parse_time(&claimed.updated_at).unwrap_or_else(|| self.now());
            match self
                .find_sent_on(&job.group.ports, &request, claimed_at)
                .await
            {
                Ok(Some(command_id)) => {
                    let what = format!(
                        "join attempt {attempt}: found command {command_id}, which an earlier delivery sent (its answer was lost)"
                    );
                    return self
                        .record_sent(
                            job,
                            record,
                            computer_name,
                            attempt,
                            Sent::to_instance(command_id, what),
                        )
                        .await;
                }
                Ok(None) => {}
                Err(e) => return error_fate(e, job.message.receive_count, &self.settings),
            }
        }
        let (exit_code, output) = last.map_or((None, None), |(c, o)| (c, Some(o)));
        // A join that makes the object itself (shared password) records its OU; a staged
        // join keeps the one its stage recorded.
        let ou_path = crate::render::decode_params(&request.commands)
            .into_iter()
            .find(|(name, _)| name == "OU_PATH")
            .map(|(_, ou)| ou);
        let claim = self.next_record(job, record.as_ref(), computer_name, |r| {
            r.status = JoinStatus::Joining;
            r.computer_name = computer_name.to_owned();
            if ou_path.is_some() {
                r.ou_path = ou_path;
            }
            r.command_id = None;
            r.attempts = attempt;
            r.exit_code = exit_code;
            r.output = output;
            r.expires_at = None;
        });
        if let Err(fate) = self.write(job, record, claim).await {
            return fate;
        }
        let claimed_at = self.now();
        let sent = match self
            .send(&job.group.ports, &request, Some(job.gather))
            .await
        {
            Ok(command_id) => {
                info!(%command_id, document = request.document.name(), target = %request.target, "command sent");
                Sent::to_instance(command_id, format!("join attempt {attempt} sent"))
            }
            // A time-out or 5xx may come after SSM acted: look before anyone sends again.
            Err(e @ Error::Unavailable { .. }) => {
                match self
                    .find_sent_on(&job.group.ports, &request, claimed_at)
                    .await
                {
                    Ok(Some(command_id)) => {
                        warn!(%command_id, error = %e, "SendCommand's answer was lost, but the command was sent");
                        let what = format!(
                            "join attempt {attempt}: SendCommand's answer was lost, but command {command_id} was sent"
                        );
                        Sent::to_instance(command_id, what)
                    }
                    // Not found (or not known yet): the next delivery looks again first.
                    _ => return error_fate(e, job.message.receive_count, &self.settings),
                }
            }
            Err(e) => {
                let fate = error_fate(e, job.message.receive_count, &self.settings);
                if let Fate::Rejected(reason) = &fate {
                    // Nobody will send this join: free the record for a later event.
                    let failed = self.next_record(job, record.as_ref(), computer_name, |r| {
                        r.status = JoinStatus::Failed;
                        r.output = Some(reason.clone());
                    });
                    if let Err(f) = self.write(job, record, failed).await {
                        warn!(reason = %f.reason(), "could not record the failed join");
                    }
                }
                return fate;
            }
        };
        self.record_sent(job, record, computer_name, attempt, sent)
            .await
    }

    /// The command sent for `request` with `ports` since `claimed_at` (less a minute of
    /// clock skew between this host and SSM), if SSM has one.
    pub(super) async fn find_sent_on(
        &self,
        ports: &crate::ports::AccountPorts,
        request: &CommandRequest,
        claimed_at: SystemTime,
    ) -> Result<Option<String>, Error> {
        let since = claimed_at.checked_sub(CLOCK_SKEW).unwrap_or(claimed_at);
        ports
            .commands
            .find_sent(
                &request.target,
                crate::render::lookup_comment(request),
                since,
            )
            .await
    }

    /// Records the command sent for this attempt (and the host it runs on, when it is
    /// not the instance); the message comes back to read its result.
    pub(super) async fn record_sent(
        &self,
        job: &Job<'_>,
        record: &mut Option<JoinRecord>,
        computer_name: &str,
        attempt: u32,
        sent: Sent,
    ) -> Fate {
        let Sent {
            command_id,
            target,
            what,
        } = sent;
        let recorded = self.next_record(job, record.as_ref(), computer_name, |r| {
            r.command_id = Some(command_id.clone());
            r.command_target = target;
        });
        if let Err(fate) = self.write(job, record, recorded).await {
            // Sent but not recorded: the next delivery looks for it before sending again.
            warn!(reason = %fate.reason(), "command sent, but its id is not in the ledger");
        }
        self.sent(job, what, attempt, command_id)
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
            .gather
            .result(&job.group.ports, command_id, &job.event.instance_id)
            .await
        {
            Ok(result) => result,
            Err(e) => return error_fate(e, job.message.receive_count, &self.settings),
        };
        let tail = ledger::output_tail(&result.stdout, &result.stderr, ledger::OUTPUT_LINES);
        let attempts = record.as_ref().map_or(1, |r| r.attempts);
        let name = record
            .as_ref()
            .map(|r| r.computer_name.clone())
            .unwrap_or_default();
        match result.status {
            CommandStatus::Pending | CommandStatus::InProgress => {
                self.not_finished(job, command_id)
            }
            CommandStatus::Success => {
                let joined = self.next_record(job, record.as_ref(), &name, |r| {
                    r.status = JoinStatus::Joined;
                    r.exit_code = result.exit_code;
                    r.output = Some(tail.clone());
                });
                match self.write(job, record, joined).await {
                    Ok(()) => {
                        info!(%command_id, computer_name = %name, "joined");
                        let ready = self.tag_ready(job).await;
                        let cleared = match job.group.config.join_mode {
                            JoinMode::Staged => {
                                format!("; {}", self.clear_staging(job, &name, false).await)
                            }
                            JoinMode::SharedPassword => String::new(),
                        };
                        Fate::Verified(format!(
                            "joined as {name}: command {command_id} succeeded; {ready}{cleared}"
                        ))
                    }
                    Err(fate) => fate,
                }
            }
            CommandStatus::Failed(status) => {
                let why = why_failed(command_id, &status, result.exit_code);
                warn!(%command_id, exit_code = result.exit_code, output = %tail, "join failed");
                let instance = job.group.instances.get(job.event.instance_id.as_str());
                // The tags are read afresh for every attempt: they are checked afresh too.
                let refused = instance.and_then(|i| {
                    tags_refuse_join(i, &job.group.config, self.settings.ignore_opt_out)
                });
                match instance.filter(|i| i.state == "running") {
                    Some(instance)
                        if attempts < self.settings.join_attempts && refused.is_none() =>
                    {
                        let last = Some((result.exit_code, tail));
                        self.start_join(job, instance, &name, record, attempts + 1, last)
                            .await
                            .after(&why)
                    }
                    _ if job.group.config.join_mode == JoinMode::Staged => {
                        let not_retried = refused
                            .map(|r| format!(" (not retried: {r})"))
                            .unwrap_or_default();
                        let reason = format!(
                            "join of {name} failed after {attempts} attempt(s){not_retried}: {why}: {}",
                            clip_end(&tail, 1000)
                        );
                        let last = (result.exit_code, tail);
                        self.give_up_staged(job, record, &name, last, reason, true)
                            .await
                    }
                    _ => {
                        let failed = self.next_record(job, record.as_ref(), &name, |r| {
                            r.status = JoinStatus::Failed;
                            r.exit_code = result.exit_code;
                            r.output = Some(tail.clone());
                        });
                        if let Err(fate) = self.write(job, record, failed).await {
                            return fate;
                        }
                        let not_retried = refused
                            .map(|r| format!(" (not retried: {r})"))
                            .unwrap_or_default();
                        Fate::Rejected(format!(
                            "join of {name} failed after {attempts} attempt(s){not_retried}: {why}: {}",
                            clip_end(&tail, 1000)
                        ))
                    }
                }
            }
        }
    }

    /// The next version of the instance's record, held by this message and event; a new
    /// record names `computer_name`.
    pub(super) fn next_record(
        &self,
        job: &Job<'_>,
        record: Option<&JoinRecord>,
        computer_name: &str,
        change: impl FnOnce(&mut JoinRecord),
    ) -> JoinRecord {
        let now = self.now();
        ledger::next(
            record,
            || JoinRecord {
                instance_id: job.event.instance_id.to_string(),
                account: job.event.account.to_string(),
                region: job.event.region.to_string(),
                status: JoinStatus::Joining,
                computer_name: computer_name.to_owned(),
                message_id: String::new(),
                event_id: String::new(),
                command_id: None,
                command_target: None,
                ou_path: None,
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
                change(r);
            },
        )
    }

    /// Writes `new` over `record` if nobody changed it meanwhile (gathered with the
    /// batch's other writes).
    pub(super) async fn write(
        &self,
        job: &Job<'_>,
        record: &mut Option<JoinRecord>,
        new: JoinRecord,
    ) -> Result<(), Fate> {
        match job
            .gather
            .write(new.clone(), record.as_ref().map(|r| r.version))
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

    /// A command sent: the message comes back to read its result, when it can.
    pub(super) fn sent(
        &self,
        job: &Job<'_>,
        what: String,
        attempt: u32,
        command_id: String,
    ) -> Fate {
        let verify_after = self.can_come_back(job.message).then(|| {
            self.settings
                .verify_after
                .max(backoff(attempt, self.settings.max_backoff))
        });
        Fate::Dispatched {
            note: match verify_after {
                Some(d) => format!("{what}; its result is read in {}s", d.as_secs()),
                None => format!("{what}; not verified (no queue to bring the message back)"),
            },
            command_id: Some(command_id),
            command: None,
            verify_after,
        }
    }

    /// Sets the ready tag on a joined instance: `adjoin:joined=<domain>` (one value for
    /// every instance of a directory, so a batch's tags go out in one call); what became
    /// of it, for the report. A failure does not undo the join: it is logged and reported.
    async fn tag_ready(&self, job: &Job<'_>) -> String {
        let domain = &job.group.config.dns_name;
        match job
            .gather
            .tag(&job.group.ports, &job.event.instance_id, READY_TAG, domain)
            .await
        {
            Ok(()) => format!("tagged {READY_TAG}={domain}"),
            Err(e) => {
                warn!(error = %e, "the ready tag could not be set");
                format!("the {READY_TAG} tag could not be set: {e}")
            }
        }
    }

    /// A command still pending or running: read it again a little later.
    pub(super) fn not_finished(&self, job: &Job<'_>, command_id: &str) -> Fate {
        Fate::Deferred {
            reason: format!("command {command_id} has not finished yet"),
            delay: self.settings.verify_after.min(backoff(
                job.message.receive_count,
                self.settings.max_backoff,
            )),
        }
    }

    /// Whether this message can be made to come back (a live SQS delivery).
    pub(super) fn can_come_back(&self, message: &Message) -> bool {
        self.ports.queue.is_some()
            && message.receipt_handle.is_some()
            && message.source_queue_arn.is_some()
    }
}

/// The dry run's result: the command that would be sent.
pub(super) fn dry_run(request: &CommandRequest) -> Fate {
    Fate::Dispatched {
        command_id: None,
        command: Some(request.into()),
        verify_after: None,
        note: String::new(),
    }
}

/// How a command failed: its id, SSM's status and the script's exit code.
pub(super) fn why_failed(command_id: &str, status: &str, exit_code: Option<i32>) -> String {
    let code = exit_code.map_or_else(|| "none".to_owned(), |c| c.to_string());
    format!("command {command_id} {status} with exit code {code}")
}
