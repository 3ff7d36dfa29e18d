//! Phase 3, staged joins ([`JoinMode::Staged`]): before the instance joins, the AD tools
//! host creates its computer account with a one-time password; the instance then joins
//! with that password alone.
//!
//! One join attempt, staged:
//!
//! 1. [`Worker::stage`]: claim the record (`staging`), write a fresh one-time password
//!    for the instance (its account and Region, readable by it alone) and for the tools
//!    host (the service's account), send the stage command to the tools host;
//! 2. [`Worker::verify_stage`], when the message comes back: the account is staged, so
//!    the join command goes to the instance (`joining`); a failed stage is tried again
//!    with a new password, up to the join attempts;
//! 3. the join is verified as any join; then, or when the join is given up,
//!    [`Worker::clear_staging`] deletes what is left of the one-time password and, for a
//!    join given up, the staged account itself (a leave command), so no password that
//!    ever existed can open it.

use tracing::{info, warn};

use super::act::{Job, Sent, dry_run, why_failed};
use super::plan::tags_refuse_join;
use super::tools_host::NotSent;
use super::tools_host::ToolsHostResult;
use super::{Fate, Worker, error_fate};
use crate::config::JoinMode;
use crate::error::Error;
use crate::instance::Instance;
use crate::ledger::{self, JoinRecord, JoinStatus};
use crate::one_time_password::OneTimePassword;
use crate::ports::{AccountPorts, CommandStatus, SecretParameter};
use crate::render::{Subject, join_command, leave_command, placement, stage_command};
use crate::staging;
use crate::text::clip_end;

/// The stage script's exit code for a same-named computer object that is not ours: it
/// is left alone, and trying again cannot change that.
const NOT_TAKEN_OVER: i32 = 19;

impl Worker {
    /// Starts join attempt `attempt` as the account's join mode says: the stage command
    /// to the AD tools host, or (shared password) the join command to the instance.
    /// `last` is the previous attempt's exit code and output, kept in the record.
    pub(super) async fn start_join(
        &self,
        job: &Job<'_>,
        instance: &Instance,
        computer_name: &str,
        record: &mut Option<JoinRecord>,
        attempt: u32,
        last: Option<(Option<i32>, String)>,
    ) -> Fate {
        match job.group.config.join_mode {
            JoinMode::Staged => {
                self.stage(job, instance, computer_name, record, attempt, last)
                    .await
            }
            JoinMode::SharedPassword => {
                let request = join_command(
                    instance,
                    &job.group.config,
                    &job.event.region,
                    computer_name,
                    &job.event.event_id,
                );
                self.join(job, request, computer_name, record, attempt, last)
                    .await
            }
        }
    }

    /// Claims the record (`staging`), writes the attempt's one-time password for the
    /// instance and the tools host, and sends the stage command to the tools host.
    async fn stage(
        &self,
        job: &Job<'_>,
        instance: &Instance,
        computer_name: &str,
        record: &mut Option<JoinRecord>,
        attempt: u32,
        last: Option<(Option<i32>, String)>,
    ) -> Fate {
        let key = self.tools_host_key(job);
        let (home, hosts) = match self.tools_hosts(&key, job.message.receive_count).await {
            Ok(found) => found,
            Err(fate) => return fate,
        };
        let placement = placement(instance, &job.group.config);
        let request_for = |host: &Instance| {
            let subject = Subject {
                region: &job.event.region,
                instance_id: &instance.id,
                computer_name,
                event_id: &job.event.event_id,
            };
            stage_command(host, &job.group.config, &home.region, &subject, &placement)
        };
        info!(platform = instance.platform.as_str(), %computer_name, attempt, "staging");
        if self.settings.dry_run {
            return match hosts.first() {
                Some(host) => dry_run(&request_for(host)),
                None => Fate::Failed("no AD tools host".into()),
            };
        }
        // This delivery claimed this attempt before but never learnt whether its stage
        // command was sent (the answer was lost): look for it on every host before
        // staging again.
        if let Some(claimed) = record.as_ref().filter(|r| {
            r.status == JoinStatus::Staging
                && r.message_id == job.message.message_id
                && r.command_id.is_none()
                && r.attempts == attempt
        }) {
            let claimed_at = ledger::parse_time(&claimed.updated_at).unwrap_or_else(|| self.now());
            for host in &hosts {
                match self
                    .find_sent_on(&home, &request_for(host), claimed_at)
                    .await
                {
                    Ok(Some(command_id)) => {
                        let what = format!(
                            "stage attempt {attempt}: found command {command_id}, which an earlier delivery sent (its answer was lost)"
                        );
                        let sent = Sent {
                            command_id,
                            target: Some(host.id.to_string()),
                            what,
                        };
                        return self
                            .record_sent(job, record, computer_name, attempt, sent)
                            .await;
                    }
                    Ok(None) => {}
                    Err(e) => return error_fate(e, job.message.receive_count, &self.settings),
                }
            }
        }
        let (exit_code, output) = last.map_or((None, None), |(c, o)| (c, Some(o)));
        let claim = self.next_record(job, record.as_ref(), computer_name, |r| {
            r.status = JoinStatus::Staging;
            r.computer_name = computer_name.to_owned();
            r.ou_path = placement.ou_path.clone();
            r.command_id = None;
            r.command_target = None;
            r.attempts = attempt;
            r.exit_code = exit_code;
            r.output = output;
            r.expires_at = None;
        });
        if let Err(fate) = self.write(job, record, claim).await {
            return fate;
        }
        if let Err(e) = self.hand_out_one_time_password(job, &home).await {
            return error_fate(e, job.message.receive_count, &self.settings);
        }
        let claimed_at = self.now();
        let (tools, command_id, what) = match self
            .send_to_tools_host(job, &key, &home, &hosts, request_for)
            .await
        {
            Ok((tools, request, command_id)) => {
                info!(%command_id, document = request.document.name(), tools_host = %tools.id, "stage sent");
                let what = format!(
                    "stage attempt {attempt} sent to the AD tools host {}",
                    tools.id
                );
                (tools, command_id, what)
            }
            // A time-out or 5xx may come after SSM acted: look before anyone sends again.
            Err(NotSent {
                tried: Some((tools, request)),
                error: e @ Error::Unavailable { .. },
            }) => match self.find_sent_on(&home, &request, claimed_at).await {
                Ok(Some(command_id)) => {
                    warn!(%command_id, error = %e, "SendCommand's answer was lost, but the command was sent");
                    let what = format!(
                        "stage attempt {attempt}: SendCommand's answer was lost, but command {command_id} was sent to the AD tools host {}",
                        tools.id
                    );
                    (tools, command_id, what)
                }
                _ => return error_fate(e, job.message.receive_count, &self.settings),
            },
            Err(not_sent) => {
                let cleared = self.clear_staging(job, computer_name, false).await;
                warn!(%cleared, "stage command not sent");
                return error_fate(not_sent.error, job.message.receive_count, &self.settings);
            }
        };
        let sent = Sent {
            command_id,
            target: Some(tools.id.to_string()),
            what,
        };
        self.record_sent(job, record, computer_name, attempt, sent)
            .await
    }

    /// A fresh one-time password, written for the instance (in its account and Region,
    /// tagged with its ARN) and for the tools host (in the service's account); it leaves
    /// memory when this returns.
    async fn hand_out_one_time_password(
        &self,
        job: &Job<'_>,
        home: &AccountPorts,
    ) -> Result<(), Error> {
        let event = job.event;
        let password = OneTimePassword::generate()?;
        let owner = [(
            staging::INSTANCE_TAG,
            staging::instance_arn(&event.region, &event.account, &event.instance_id),
        )];
        let expires_at = self.now() + staging::LIFETIME;
        let for_instance = staging::instance_parameter(&event.instance_id);
        let for_tools_host =
            staging::tools_host_parameter(&event.account, &event.region, &event.instance_id);
        let instance_parameter = SecretParameter {
            name: &for_instance,
            value: &password,
            tags: &owner,
            expires_at,
        };
        let tools_host_parameter = SecretParameter {
            name: &for_tools_host,
            ..instance_parameter
        };
        // Both copies at once; if either cannot be written, the other is deleted.
        let (instance_copy, tools_host_copy) = tokio::join!(
            job.group.ports.parameters.put_secret(&instance_parameter),
            home.parameters.put_secret(&tools_host_parameter)
        );
        let undo = match (&instance_copy, &tools_host_copy) {
            (Ok(()), Ok(())) => None,
            (Ok(()), Err(_)) => Some((&job.group.ports, &for_instance)),
            (Err(_), Ok(())) => Some((home, &for_tools_host)),
            (Err(_), Err(_)) => None,
        };
        if let Some((ports, name)) = undo
            && let Err(e) = job.gather.delete(ports, name).await
        {
            warn!(error = %e, parameter = %name, "could not delete a one-time password copy (it expires on its own)");
        }
        instance_copy.and(tools_host_copy)
    }

    /// Reads the result of the stage command this delivery sent to the tools host
    /// `target`: sends the join command once the account is staged, stages again after
    /// a failure while attempts are left, or records `failed` and rejects the message.
    pub(super) async fn verify_stage(
        &self,
        job: &Job<'_>,
        record: &mut Option<JoinRecord>,
        command_id: &str,
        target: &str,
    ) -> Fate {
        if self.settings.dry_run {
            return Fate::Skipped(format!("would read the result of command {command_id}"));
        }
        let ToolsHostResult { result, tail } = match self
            .tools_host_result(job, command_id, target, "stage")
            .await
        {
            Ok(read) => read,
            Err(fate) => return fate,
        };
        let (attempts, name) = record.as_ref().map_or((1, String::new()), |r| {
            (r.attempts, r.computer_name.clone())
        });
        let instance = job.group.instances.get(job.event.instance_id.as_str());
        // The tags are read afresh for every step: they are checked afresh too.
        let refused = instance
            .and_then(|i| tags_refuse_join(i, &job.group.config, self.settings.ignore_opt_out));
        let running = instance.filter(|i| i.state == "running");
        match result.status {
            CommandStatus::Pending | CommandStatus::InProgress => {
                self.not_finished(job, command_id)
            }
            CommandStatus::Success => match running {
                Some(instance) if refused.is_none() => {
                    info!(%command_id, computer_name = %name, "staged");
                    let request = join_command(
                        instance,
                        &job.group.config,
                        &job.event.region,
                        &name,
                        &job.event.event_id,
                    );
                    self.join(job, request, &name, record, attempts, None)
                        .await
                        .after(&format!(
                            "the AD tools host {target} staged {name} (command {command_id})"
                        ))
                }
                _ => {
                    let why =
                        refused.unwrap_or_else(|| "the instance is no longer running".to_owned());
                    self.give_up_staged(
                        job,
                        record,
                        &name,
                        (result.exit_code, tail),
                        format!("{name} was staged, but not joined: {why}"),
                        true,
                    )
                    .await
                }
            },
            CommandStatus::Failed(status) => {
                let why = why_failed(command_id, &status, result.exit_code);
                warn!(%command_id, exit_code = result.exit_code, output = %tail, "stage failed");
                let not_ours = result.exit_code == Some(NOT_TAKEN_OVER);
                match running {
                    Some(instance)
                        if !not_ours
                            && refused.is_none()
                            && attempts < self.settings.join_attempts =>
                    {
                        let last = Some((result.exit_code, tail));
                        self.stage(job, instance, &name, record, attempts + 1, last)
                            .await
                            .after(&why)
                    }
                    _ => {
                        let reason = if not_ours {
                            format!(
                                "a computer object {name} exists and is not this instance's (no owner stamp, or outside the OU): not taken over; {why}: {}",
                                clip_end(&tail, 1000)
                            )
                        } else {
                            let not_retried = refused
                                .map(|r| format!(" (not retried: {r})"))
                                .unwrap_or_default();
                            format!(
                                "staging of {name} failed after {attempts} attempt(s){not_retried}: {why}: {}",
                                clip_end(&tail, 1000)
                            )
                        };
                        // A stage that failed part way (e.g. created, but a group could
                        // not be added) may have left our account behind: remove it,
                        // unless the object is someone else's.
                        self.give_up_staged(
                            job,
                            record,
                            &name,
                            (result.exit_code, tail),
                            reason,
                            !not_ours,
                        )
                        .await
                    }
                }
            }
        }
    }

    /// A staged join given up: the record says `failed` with the last exit code and
    /// output; what is left of the one-time password (and, with `remove_account`, the
    /// staged account) is removed; the message is rejected with `reason`.
    pub(super) async fn give_up_staged(
        &self,
        job: &Job<'_>,
        record: &mut Option<JoinRecord>,
        name: &str,
        (exit_code, tail): (Option<i32>, String),
        reason: String,
        remove_account: bool,
    ) -> Fate {
        let failed = self.next_record(job, record.as_ref(), name, |r| {
            r.status = JoinStatus::Failed;
            r.exit_code = exit_code;
            r.output = Some(tail);
        });
        if let Err(fate) = self.write(job, record, failed).await {
            return fate;
        }
        let cleared = self.clear_staging(job, name, remove_account).await;
        Fate::Rejected(format!("{reason}; {cleared}"))
    }

    /// Deletes both copies of the instance's one-time password (after a join, or when
    /// it is given up) and, with `remove_account`, sends the leave command that deletes
    /// the staged account (ours: it carries the owner stamp). Failures are logged: the
    /// parameters expire on their own, and a terminated event deletes the account.
    /// Returns what was done, for the report.
    pub(super) async fn clear_staging(
        &self,
        job: &Job<'_>,
        name: &str,
        remove_account: bool,
    ) -> String {
        let event = job.event;
        let mut done = Vec::new();
        let for_instance = staging::instance_parameter(&event.instance_id);
        match job.gather.delete(&job.group.ports, &for_instance).await {
            Ok(()) => done.push("one-time password deleted".to_owned()),
            Err(e) => {
                warn!(error = %e, parameter = %for_instance, "could not delete the instance's one-time password");
                done.push(format!(
                    "the one-time password parameter {for_instance} could not be deleted (it expires on its own): {e}"
                ));
            }
        }
        let key = self.tools_host_key(job);
        let for_tools_host =
            staging::tools_host_parameter(&event.account, &event.region, &event.instance_id);
        let (home, hosts) = match self.tools_hosts(&key, job.message.receive_count).await {
            Ok(found) => found,
            Err(fate) => {
                done.push(format!("staged account not removed: {}", fate.reason()));
                return done.join("; ");
            }
        };
        if let Err(e) = job.gather.delete(&home, &for_tools_host).await {
            warn!(error = %e, parameter = %for_tools_host, "could not delete the tools host's one-time password");
        }
        if remove_account {
            // Where the stage put it: the instance's placement (its tags were checked).
            let ou_path = job
                .group
                .instances
                .get(event.instance_id.as_str())
                .map(|i| placement(i, &job.group.config).ou_path)
                .unwrap_or_else(|| job.group.config.ou_path.clone());
            let request_for = |host: &Instance| {
                let subject = Subject {
                    region: &event.region,
                    instance_id: &event.instance_id,
                    computer_name: name,
                    event_id: &event.event_id,
                };
                leave_command(
                    host,
                    &job.group.config,
                    &home.region,
                    &subject,
                    ou_path.as_deref(),
                )
            };
            match self
                .send_to_tools_host(job, &key, &home, &hosts, request_for)
                .await
            {
                Ok((tools, _, command_id)) => done.push(format!(
                    "staged account {name} removed by command {command_id} on the AD tools host {}",
                    tools.id
                )),
                Err(not_sent) => {
                    warn!(error = %not_sent.error, "the staged account could not be removed");
                    done.push(format!(
                        "the staged account {name} could not be removed ({}); the instance's terminated event removes it",
                        not_sent.error
                    ));
                }
            }
        }
        done.join("; ")
    }
}
