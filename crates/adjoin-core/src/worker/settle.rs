//! Phase 4: every message gets its report and what its outcome needs on the queue —
//! the DLQ with a reason, a back-off, or a return to verify a join — and nothing is
//! retried forever.

use std::collections::BTreeMap;
use std::time::Duration;

use tracing::{Instrument as _, info, warn};

use super::intake::Entry;
use super::{Fate, Message, Worker};
use crate::error::Error;
use crate::event::InstanceEvent;
use crate::ledger;
use crate::outcome::{Action, Outcome, Report};
use crate::ports::DeadLetter;

/// Visibility changes to make, by source queue ARN: receipt handle and delay.
type Visibility = BTreeMap<String, Vec<(String, Duration)>>;

impl Worker {
    /// Settles every message in batch order; visibility changes go out together per
    /// queue.
    pub(super) async fn settle_batch(&self, entries: Vec<Entry<'_>>) -> Vec<Report> {
        let mut later = Visibility::default();
        let mut reports = Vec::with_capacity(entries.len());
        for entry in entries {
            let (action, fate) = entry.result.unwrap_or((
                Action::None,
                Fate::Failed(
                    "not finished before the invocation's deadline; SQS delivers it again".into(),
                ),
            ));
            let report = self
                .settle(
                    entry.message,
                    entry.event.as_ref(),
                    action,
                    fate,
                    &mut later,
                )
                .instrument(entry.span)
                .await;
            reports.push(report);
        }
        self.change_visibility(later).await;
        reports
    }

    /// A deferred or failing message whose event is too old, or that was delivered too
    /// often, is given up: rejected with its last reason.
    fn give_up(&self, message: &Message, event: Option<&InstanceEvent>, fate: Fate) -> Fate {
        let age = event
            .and_then(|e| ledger::parse_time(&e.time))
            .and_then(|t| self.now().duration_since(t).ok());
        match fate {
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
        let fate = self.give_up(message, event, fate);
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
                if self.settings.dry_run {
                    let note = "dry run: this command would be sent; nothing was sent".to_owned();
                    (Outcome::Planned, note, command_id, command)
                } else {
                    (Outcome::Dispatched, note, command_id, command)
                }
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
            Fate::Rejected(reason) if self.settings.dry_run => (
                Outcome::Rejected,
                format!("{reason} (dry run: not sent to the DLQ)"),
                None,
                None,
            ),
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
            Outcome::Dispatched | Outcome::Planned | Outcome::Verified | Outcome::Skipped => {
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
            dry_run: self.settings.dry_run,
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
