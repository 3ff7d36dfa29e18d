//! Phase 3, leaves: claim the record, send the leave command to the AD tools host, and
//! read its result when the message comes back — `left` only once the tools host says
//! the computer object is gone.

use tracing::{info, warn};

use super::act::{Job, Sent, dry_run, why_failed};
use super::tools_host::ToolsHostResult;
use super::{Fate, Worker, error_fate};
use crate::ledger::{self, JoinRecord, JoinStatus};
use crate::ports::CommandStatus;
use crate::render::{Subject, leave_command};
use crate::text::clip_end;

/// The leave script's exit code for a same-named computer object that is not ours: it
/// is left in place, and trying again cannot change that.
const NOT_OURS: i32 = 15;

impl Worker {
    /// Claims the record, sends leave attempt `attempt` for `computer_name` to the AD
    /// tools host, records the command and the host. `last` is the previous attempt's
    /// exit code and output, kept in the record.
    pub(super) async fn leave(
        &self,
        job: &Job<'_>,
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
        // The OU the join placed the object in, as the ledger recorded it.
        let ou_path = record
            .as_ref()
            .and_then(|r| r.ou_path.clone())
            .or_else(|| job.group.config.ou_path.clone());
        let request_for = |host: &crate::instance::Instance| {
            let subject = Subject {
                region: &job.event.region,
                instance_id: &job.event.instance_id,
                computer_name,
                event_id: &job.event.event_id,
            };
            leave_command(
                host,
                &job.group.config,
                &home.region,
                &subject,
                ou_path.as_deref(),
            )
        };
        if self.settings.dry_run {
            return match hosts.first() {
                Some(host) => dry_run(&request_for(host)),
                None => Fate::Failed("no AD tools host".into()),
            };
        }
        let (exit_code, output) = last.map_or((None, None), |(c, o)| (c, Some(o)));
        let claim = self.next_record(job, record.as_ref(), computer_name, |r| {
            r.status = JoinStatus::Leaving;
            r.command_id = None;
            r.command_target = None;
            r.attempts = attempt;
            r.exit_code = exit_code;
            r.output = output;
        });
        if let Err(fate) = self.write(job, record, claim).await {
            return fate;
        }
        match self
            .send_to_tools_host(job, &key, &home, &hosts, request_for)
            .await
        {
            Ok((tools, request, command_id)) => {
                info!(%command_id, %computer_name, attempt, document = request.document.name(), tools_host = %tools.id, "leave sent");
                let sent = Sent {
                    command_id,
                    target: Some(tools.id.to_string()),
                    what: format!(
                        "leave attempt {attempt} sent to the AD tools host {}",
                        tools.id
                    ),
                };
                self.record_sent(job, record, computer_name, attempt, sent)
                    .await
            }
            Err(not_sent) => error_fate(not_sent.error, job.message.receive_count, &self.settings),
        }
    }

    /// Reads the result of the leave this delivery sent to the tools host `target`:
    /// records `left`, or sends the next attempt, or records `leaveFailed` and rejects the
    /// message with the script's exit code and last output lines.
    pub(super) async fn verify_leave(
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
            .tools_host_result(job, command_id, target, "leave")
            .await
        {
            Ok(read) => read,
            Err(fate) => return fate,
        };
        let (attempts, name) = record.as_ref().map_or((1, String::new()), |r| {
            (r.attempts, r.computer_name.clone())
        });
        match result.status {
            CommandStatus::Pending | CommandStatus::InProgress => {
                self.not_finished(job, command_id)
            }
            CommandStatus::Success => {
                let expires = ledger::epoch_seconds(self.now() + ledger::LEFT_RECORD_TTL);
                let left = self.next_record(job, record.as_ref(), &name, |r| {
                    r.status = JoinStatus::Left;
                    r.exit_code = result.exit_code;
                    r.output = Some(tail.clone());
                    r.expires_at = Some(expires);
                });
                match self.write(job, record, left).await {
                    Ok(()) => {
                        info!(%command_id, computer_name = %name, "left");
                        Fate::Verified(format!(
                            "left: command {command_id} on the AD tools host {target} removed {name} (or found it gone)"
                        ))
                    }
                    Err(fate) => fate,
                }
            }
            CommandStatus::Failed(status) => {
                let why = why_failed(command_id, &status, result.exit_code);
                warn!(%command_id, exit_code = result.exit_code, output = %tail, "leave failed");
                let not_ours = result.exit_code == Some(NOT_OURS);
                if !not_ours && attempts < self.settings.join_attempts {
                    let last = Some((result.exit_code, tail));
                    return self
                        .leave(job, &name, record, attempts + 1, last)
                        .await
                        .after(&why);
                }
                let failed = self.next_record(job, record.as_ref(), &name, |r| {
                    r.status = JoinStatus::LeaveFailed;
                    r.exit_code = result.exit_code;
                    r.output = Some(tail.clone());
                });
                if let Err(fate) = self.write(job, record, failed).await {
                    return fate;
                }
                Fate::Rejected(if not_ours {
                    format!(
                        "the computer object {name} is not this instance's (no owner stamp, or outside the OU): left in place; {why}: {}",
                        clip_end(&tail, 1000)
                    )
                } else {
                    format!(
                        "leave of {name} failed after {attempts} attempt(s): {why}: {}",
                        clip_end(&tail, 1000)
                    )
                })
            }
        }
    }

    /// A terminated instance that was never joined: nothing to delete, but the record
    /// says `left` so that its delayed running event is skipped.
    pub(super) async fn tombstone(
        &self,
        job: &Job<'_>,
        computer_name: &str,
        record: &mut Option<JoinRecord>,
    ) -> Fate {
        let reason = "no join recorded for the instance: nothing to delete";
        if self.settings.dry_run {
            return Fate::Skipped(reason.to_owned());
        }
        let expires = ledger::epoch_seconds(self.now() + ledger::LEFT_RECORD_TTL);
        let left = self.next_record(job, record.as_ref(), computer_name, |r| {
            r.status = JoinStatus::Left;
            r.expires_at = Some(expires);
        });
        match self.write(job, record, left).await {
            Ok(()) => Fate::Skipped(format!(
                "{reason}; recorded as left, so a late running event is skipped"
            )),
            Err(fate) => fate,
        }
    }
}
