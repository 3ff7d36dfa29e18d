//! The join ledger: one record per instance (DynamoDB, partition key `instanceId`), so
//! that SQS's at-least-once, out-of-order delivery never joins an instance twice, never
//! leaves one that was never joined, and never joins one that is already gone.
//!
//! Status by status:
//!
//! ```text
//! (none) ──running──▶ staging ──staged──▶ joining ──verified──▶ joined
//!                        │                   │  └──failed, attempts left──▶ staging (next attempt)
//!                        │                   └──failed, last attempt──▶ failed
//!                        └──failed, last attempt (or not ours)──▶ failed
//! (a shared-password join starts at joining: (none) ──running──▶ joining)
//! staging | joining | joined | failed ──terminated──▶ leaving ──leave command succeeded──▶ left
//!                                             └──failed, last attempt (or not ours)──▶ leaveFailed
//! (none) ──terminated──▶ left      (never joined: nothing to delete; a late running event is skipped)
//! ```
//!
//! Every write is conditional on the version read ([`JoinRecord::version`]), so two
//! deliveries racing for one instance cannot both act. What to do with a record is
//! decided here, purely ([`on_running`], [`on_terminated`]); the worker carries it out.

use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// How long a `left` record is kept (DynamoDB TTL attribute `expiresAt`).
pub const LEFT_RECORD_TTL: Duration = Duration::from_secs(90 * 24 * 3600);

/// Records per ledger transaction (DynamoDB's TransactWriteItems limit).
pub const TRANSACTION_LIMIT: usize = 100;

/// Lines of command output kept in a record.
pub const OUTPUT_LINES: usize = 10;

/// Where an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JoinStatus {
    /// A staged join: the AD tools host is creating the computer account with a
    /// one-time password (the stage command); the join command follows.
    Staging,
    /// A join command is being sent, or was sent and its result is not known yet.
    Joining,
    /// The join command succeeded.
    Joined,
    /// Every join attempt failed; the exit code and output say why.
    Failed,
    /// A leave command is being sent, or was sent and its result is not known yet.
    Leaving,
    /// The leave command succeeded, or the instance terminated without ever being joined.
    Left,
    /// Every leave attempt failed, or the computer object was not ours; the exit code
    /// and output say why. A new terminated event (the message redriven) tries again.
    #[serde(rename = "leaveFailed")]
    LeaveFailed,
}

impl JoinStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JoinStatus::Staging => "staging",
            JoinStatus::Joining => "joining",
            JoinStatus::Joined => "joined",
            JoinStatus::Failed => "failed",
            JoinStatus::Leaving => "leaving",
            JoinStatus::Left => "left",
            JoinStatus::LeaveFailed => "leaveFailed",
        }
    }
}

/// One instance's record. Attribute names are the camelCase of the field names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinRecord {
    pub instance_id: String,
    pub account: String,
    pub region: String,
    pub status: JoinStatus,
    pub computer_name: String,
    /// The SQS message that last changed the record: while `joining` or `leaving`, the
    /// one delivery allowed to go on with it.
    pub message_id: String,
    /// The EventBridge event that message carries.
    pub event_id: String,
    /// The last command sent (join, or leave once `leaving`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_id: Option<String>,
    /// The instance that command runs on, when it is not the instance itself (the AD
    /// tools host of a leave).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command_target: Option<String>,
    /// The OU the computer object was placed in (an `adOuPath` tag's; none: the
    /// account's `ouPath`), which the leave requires the object to be in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ou_path: Option<String>,
    /// Join (or leave) commands sent for the current join (or leave).
    #[serde(default)]
    pub attempts: u32,
    /// The join script's exit code, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The last lines of the join command's output, once known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// RFC 3339.
    pub created_at: String,
    /// RFC 3339.
    pub updated_at: String,
    /// Seconds since the epoch after which DynamoDB deletes the record (`left` only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
    /// Incremented by every write; each write requires the version it read.
    pub version: u64,
}

/// Who is handling an event, and when.
#[derive(Debug, Clone, Copy)]
pub struct Handler<'a> {
    pub message_id: &'a str,
    pub now: SystemTime,
    /// A `joining`/`leaving` record untouched for this long has nobody working on it any
    /// more (the message holding it was settled long ago): another event may take it over.
    pub stale_after: Duration,
}

impl Handler<'_> {
    fn holds(&self, record: &JoinRecord) -> bool {
        record.message_id == self.message_id
    }

    fn is_stale(&self, record: &JoinRecord) -> bool {
        parse_time(&record.updated_at)
            .and_then(|t| self.now.duration_since(t).ok())
            .is_none_or(|age| age > self.stale_after)
    }
}

/// What to do about an event, given the instance's record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Claim the record and send join attempt number `attempt`.
    Join { attempt: u32 },
    /// This delivery sent `command_id`: read its result.
    Verify { command_id: String },
    /// This delivery sent the stage command `command_id` to the tools host `target`:
    /// read its result.
    VerifyStage { command_id: String, target: String },
    /// This delivery sent the leave command `command_id` to the tools host `target`:
    /// read its result.
    VerifyLeave { command_id: String, target: String },
    /// Claim the record and send leave attempt number `attempt`.
    Leave { attempt: u32 },
    /// Record the instance as left without sending anything: it was never joined.
    Tombstone,
    /// Nothing to do.
    Skip(String),
    /// This delivery already gave up (the record says why): reject it again, so that it
    /// reaches the DLQ even if the first rejection did not.
    GiveUp(String),
}

/// A running event, for an instance EC2 reports running and not opted out.
pub fn on_running(record: Option<&JoinRecord>, who: &Handler<'_>) -> Step {
    let Some(r) = record else {
        return Step::Join { attempt: 1 };
    };
    let command = r.command_id.as_deref().unwrap_or("none yet");
    match r.status {
        JoinStatus::Staging if who.holds(r) => match (&r.command_id, &r.command_target) {
            (Some(command_id), Some(target)) => Step::VerifyStage {
                command_id: command_id.clone(),
                target: target.clone(),
            },
            // Claimed, but the stage command was not sent (or its id not recorded).
            _ => Step::Join {
                attempt: r.attempts.max(1),
            },
        },
        JoinStatus::Staging if who.is_stale(r) => Step::Join { attempt: 1 },
        JoinStatus::Staging => Step::Skip(format!(
            "already being staged for a join as {} by message {} (command {command})",
            r.computer_name, r.message_id
        )),
        JoinStatus::Joining if who.holds(r) => match &r.command_id {
            Some(id) => Step::Verify {
                command_id: id.clone(),
            },
            // Claimed, but the command was not sent (or its id not recorded): send it.
            None => Step::Join {
                attempt: r.attempts.max(1),
            },
        },
        JoinStatus::Joining if who.is_stale(r) => Step::Join { attempt: 1 },
        JoinStatus::Joining => Step::Skip(format!(
            "already being joined as {} by message {} (command {command})",
            r.computer_name, r.message_id
        )),
        JoinStatus::Joined => Step::Skip(format!(
            "already joined as {} (command {command})",
            r.computer_name
        )),
        // A new running event (a restart, or the failed message redriven from the DLQ)
        // gets a fresh set of attempts; the delivery that recorded the failure does not.
        JoinStatus::Failed if who.holds(r) => Step::GiveUp(format!(
            "join failed after {} attempts (command {command}, exit code {})",
            r.attempts,
            r.exit_code
                .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
        )),
        JoinStatus::Failed => Step::Join { attempt: 1 },
        JoinStatus::Leaving | JoinStatus::Left | JoinStatus::LeaveFailed => Step::Skip(format!(
            "instance terminated before this running event was handled (record is {})",
            r.status.as_str()
        )),
    }
}

/// A terminated event, for an instance EC2 reports terminated or no longer knows.
pub fn on_terminated(record: Option<&JoinRecord>, who: &Handler<'_>) -> Step {
    let Some(r) = record else {
        return Step::Tombstone;
    };
    match r.status {
        // A staged account exists as soon as the stage command ran: it is deleted too.
        JoinStatus::Staging | JoinStatus::Joining | JoinStatus::Joined | JoinStatus::Failed => {
            Step::Leave { attempt: 1 }
        }
        JoinStatus::Leaving if who.holds(r) => match (&r.command_id, &r.command_target) {
            (Some(command_id), Some(target)) => Step::VerifyLeave {
                command_id: command_id.clone(),
                target: target.clone(),
            },
            // Claimed, but the command was not sent (or its id not recorded): send it.
            _ => Step::Leave {
                attempt: r.attempts.max(1),
            },
        },
        JoinStatus::Leaving if who.is_stale(r) => Step::Leave { attempt: 1 },
        JoinStatus::Leaving => {
            Step::Skip(format!("already being removed by message {}", r.message_id))
        }
        // The delivery that recorded the failure does not try again; a new terminated
        // event (the message redriven from the DLQ) does.
        JoinStatus::LeaveFailed if who.holds(r) => Step::GiveUp(format!(
            "leave failed after {} attempts (command {}, exit code {})",
            r.attempts,
            r.command_id.as_deref().unwrap_or("none"),
            r.exit_code
                .map_or_else(|| "unknown".to_owned(), |c| c.to_string())
        )),
        JoinStatus::LeaveFailed => Step::Leave { attempt: 1 },
        JoinStatus::Left => Step::Skip(match &r.command_id {
            Some(id) => format!("already left (command {id})"),
            None => "already recorded as left; it was never joined".to_owned(),
        }),
    }
}

/// The next version of `record` (or a new record), changed by `change`, stamped `now`.
pub fn next(
    record: Option<&JoinRecord>,
    fresh: impl FnOnce() -> JoinRecord,
    now: SystemTime,
    change: impl FnOnce(&mut JoinRecord),
) -> JoinRecord {
    let mut r = record.cloned().unwrap_or_else(fresh);
    r.version = record.map_or(1, |r| r.version + 1);
    r.updated_at = format_time(now);
    change(&mut r);
    r
}

/// The last `n` non-empty lines of a command's output and error output.
pub fn output_tail(stdout: &str, stderr: &str, n: usize) -> String {
    let lines: Vec<&str> = stdout
        .lines()
        .chain(stderr.lines())
        .map(str::trim_end)
        .filter(|l| !l.is_empty())
        .collect();
    lines
        .get(lines.len().saturating_sub(n)..)
        .unwrap_or_default()
        .join("\n")
}

/// RFC 3339, UTC, whole seconds.
pub fn format_time(t: SystemTime) -> String {
    time::OffsetDateTime::from(t)
        .replace_nanosecond(0)
        .unwrap_or_else(|_| time::OffsetDateTime::from(t))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// Reads an RFC 3339 time (an event's `time`, a record's `updatedAt`).
pub fn parse_time(s: &str) -> Option<SystemTime> {
    time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(SystemTime::from)
}

/// Seconds since the epoch (`expiresAt`).
pub fn epoch_seconds(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: Duration = Duration::from_secs(3600);

    fn record(status: JoinStatus, message_id: &str, command: Option<&str>) -> JoinRecord {
        JoinRecord {
            instance_id: "i-0abc".into(),
            account: "111122223333".into(),
            region: "eu-west-1".into(),
            status,
            computer_name: "EC2-0ABC".into(),
            message_id: message_id.into(),
            event_id: "ev-1".into(),
            command_id: command.map(str::to_owned),
            command_target: None,
            ou_path: None,
            attempts: 1,
            exit_code: None,
            output: None,
            created_at: format_time(SystemTime::now()),
            updated_at: format_time(SystemTime::now()),
            expires_at: None,
            version: 3,
        }
    }

    fn by(message_id: &str) -> Handler<'_> {
        Handler {
            message_id,
            now: SystemTime::now(),
            stale_after: 2 * HOUR,
        }
    }

    #[test]
    fn a_first_running_event_joins_and_duplicates_are_skipped() {
        assert_eq!(on_running(None, &by("m1")), Step::Join { attempt: 1 });
        for status in [JoinStatus::Staging, JoinStatus::Joining, JoinStatus::Joined] {
            let r = record(status, "m1", Some("c1"));
            assert!(matches!(on_running(Some(&r), &by("m2")), Step::Skip(_)));
        }
    }

    #[test]
    fn the_delivery_that_sent_the_stage_command_verifies_it_on_the_tools_host() {
        let mut r = record(JoinStatus::Staging, "m1", Some("c1"));
        r.command_target = Some("i-0tools".into());
        assert_eq!(
            on_running(Some(&r), &by("m1")),
            Step::VerifyStage {
                command_id: "c1".into(),
                target: "i-0tools".into()
            }
        );
        // Claimed, never sent: stage again (same attempt).
        let unsent = record(JoinStatus::Staging, "m1", None);
        assert_eq!(
            on_running(Some(&unsent), &by("m1")),
            Step::Join { attempt: 1 }
        );
        // A staged account is deleted when the instance ends, like a joined one.
        assert_eq!(
            on_terminated(Some(&r), &by("m9")),
            Step::Leave { attempt: 1 }
        );
    }

    #[test]
    fn the_delivery_that_sent_the_command_verifies_it() {
        let r = record(JoinStatus::Joining, "m1", Some("c1"));
        assert_eq!(
            on_running(Some(&r), &by("m1")),
            Step::Verify {
                command_id: "c1".into()
            }
        );
        let unsent = record(JoinStatus::Joining, "m1", None);
        assert_eq!(
            on_running(Some(&unsent), &by("m1")),
            Step::Join { attempt: 1 }
        );
    }

    #[test]
    fn a_joining_record_nobody_touched_for_too_long_is_taken_over() {
        let mut r = record(JoinStatus::Joining, "m1", Some("c1"));
        r.updated_at = format_time(SystemTime::now() - 3 * HOUR);
        assert_eq!(on_running(Some(&r), &by("m2")), Step::Join { attempt: 1 });
        r.updated_at = "garbage".into();
        assert_eq!(on_running(Some(&r), &by("m2")), Step::Join { attempt: 1 });
    }

    #[test]
    fn a_failed_join_is_retried_by_a_new_event_only() {
        let r = record(JoinStatus::Failed, "m1", Some("c3"));
        // The delivery that gave up gives up again (and reaches the DLQ if it had not).
        assert!(matches!(on_running(Some(&r), &by("m1")), Step::GiveUp(_)));
        assert_eq!(on_running(Some(&r), &by("m2")), Step::Join { attempt: 1 });
    }

    #[test]
    fn a_running_event_after_the_terminate_is_skipped() {
        for status in [JoinStatus::Leaving, JoinStatus::Left] {
            let r = record(status, "m1", None);
            let Step::Skip(reason) = on_running(Some(&r), &by("m2")) else {
                panic!("not skipped")
            };
            assert!(reason.contains("terminated before"), "{reason}");
        }
    }

    #[test]
    fn terminate_leaves_what_was_joined_and_tombstones_what_was_not() {
        assert_eq!(on_terminated(None, &by("m9")), Step::Tombstone);
        for status in [JoinStatus::Joining, JoinStatus::Joined, JoinStatus::Failed] {
            let r = record(status, "m1", Some("c1"));
            assert_eq!(
                on_terminated(Some(&r), &by("m9")),
                Step::Leave { attempt: 1 }
            );
        }
        let leaving = record(JoinStatus::Leaving, "m9", None);
        assert_eq!(
            on_terminated(Some(&leaving), &by("m9")),
            Step::Leave { attempt: 1 }
        );
        assert!(matches!(
            on_terminated(Some(&leaving), &by("m8")),
            Step::Skip(_)
        ));
        let left = record(JoinStatus::Left, "m9", Some("c2"));
        assert!(matches!(
            on_terminated(Some(&left), &by("m9")),
            Step::Skip(_)
        ));
    }

    #[test]
    fn next_versions_count_up_from_one() {
        let now = SystemTime::now();
        let fresh = || record(JoinStatus::Joining, "m1", None);
        let first = next(None, fresh, now, |r| r.status = JoinStatus::Left);
        assert_eq!((first.version, first.status), (1, JoinStatus::Left));
        let second = next(Some(&first), fresh, now, |r| r.attempts = 2);
        assert_eq!((second.version, second.attempts), (2, 2));
    }

    #[test]
    fn output_tail_keeps_the_last_lines_of_both_streams() {
        let out = "a\nb\n\nc\n";
        let err = "d\ne\n";
        assert_eq!(output_tail(out, err, 3), "c\nd\ne");
        assert_eq!(output_tail("", "", 3), "");
        assert_eq!(output_tail("x", "", 10), "x");
    }

    #[test]
    fn times_round_trip_in_rfc3339() {
        let t = parse_time("2026-11-20T12:00:00Z").expect("parses");
        assert_eq!(format_time(t), "2026-11-20T12:00:00Z");
        assert!(parse_time("yesterday").is_none());
        assert!(epoch_seconds(t) > 1_700_000_000);
    }
}
