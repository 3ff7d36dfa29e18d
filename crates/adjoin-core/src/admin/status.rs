//! `adjoin status`: what the ledger and SSM know about instances.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::admin::{LedgerFilter, LedgerQuery};
use crate::error::Error;
use crate::ids::InstanceId;
use crate::ledger::{JoinRecord, OUTPUT_LINES, format_time, output_tail};
use crate::ports::{AccountPorts, CommandStatus, ConfigStore, Ledger, Sessions};

/// One instance, as `adjoin status` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatusRow {
    pub instance_id: String,
    pub status: String,
    pub computer_name: String,
    pub account: String,
    pub region: String,
    pub updated_at: String,
    /// The last command the ledger recorded.
    pub command_id: Option<String>,
    /// What SSM says of that command on the instance (`Success`, `InProgress`, `Pending`,
    /// `Failed`, …), or why it could not be asked.
    pub command_status: Option<String>,
    pub exit_code: Option<i32>,
    /// The command's last output lines from SSM, else the ledger's.
    pub output: Option<String>,
}

/// Which records to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// One instance (a GetItem, not a Scan).
    Instance(InstanceId),
    /// Every record that passes the filter.
    Filter(LedgerFilter),
}

/// The `updatedAt` at or after which a record was updated within `since` before `now`.
pub fn since_cutoff(now: SystemTime, since: Duration) -> String {
    format_time(now.checked_sub(since).unwrap_or(SystemTime::UNIX_EPOCH))
}

/// The ports `adjoin status` reads.
pub struct StatusPorts<'a> {
    pub ledger: &'a dyn Ledger,
    pub query: &'a dyn LedgerQuery,
    pub config: &'a dyn ConfigStore,
    pub sessions: &'a dyn Sessions,
}

/// The selected records, most recently updated first, each with its command's state in
/// SSM (asked in the instance's account through the config item's role). A record whose
/// command cannot be looked up still shows, with the reason as its command status.
pub async fn status(
    ports: &StatusPorts<'_>,
    selection: &Selection,
) -> Result<Vec<StatusRow>, Error> {
    let mut records = match selection {
        Selection::Instance(id) => ports.ledger.get_many(std::slice::from_ref(id)).await?,
        Selection::Filter(filter) => ports.query.scan(filter).await?,
    };
    records.sort_by(|a, b| {
        b.updated_at
            .cmp(&a.updated_at)
            .then_with(|| a.instance_id.cmp(&b.instance_id))
    });
    let mut sessions: HashMap<(String, String), Result<AccountPorts, String>> = HashMap::new();
    let mut rows = Vec::with_capacity(records.len());
    for record in records {
        let mut row = row_of(&record);
        if let Some(command_id) = &record.command_id {
            // A leave ran on the AD tools host (`commandTarget`), in the service's own
            // account; a join on the instance, in its account.
            let (key, target) = match &record.command_target {
                Some(host) => ((String::new(), String::new()), host.as_str()),
                None => (
                    (record.account.clone(), record.region.clone()),
                    record.instance_id.as_str(),
                ),
            };
            if !sessions.contains_key(&key) {
                let opened = match &record.command_target {
                    Some(_) => ports.sessions.home().await.map_err(|e| e.to_string()),
                    None => {
                        crate::admin::open_by_item(
                            ports.config,
                            ports.sessions,
                            &record.account,
                            &record.region,
                        )
                        .await
                    }
                };
                sessions.insert(key.clone(), opened);
            }
            let session = sessions
                .get(&key)
                .ok_or_else(|| "no session".to_owned())
                .and_then(|s| s.as_ref().map_err(Clone::clone));
            match (session, InstanceId::parse(target)) {
                (Ok(account), Ok(id)) => match account.commands.result(command_id, &id).await {
                    Ok(result) => {
                        row.command_status = Some(
                            match &result.status {
                                CommandStatus::Pending => "Pending",
                                CommandStatus::InProgress => "InProgress",
                                CommandStatus::Success => "Success",
                                CommandStatus::Failed(s) => s.as_str(),
                            }
                            .to_owned(),
                        );
                        row.exit_code = result.exit_code.or(record.exit_code);
                        let tail = output_tail(&result.stdout, &result.stderr, OUTPUT_LINES);
                        if !tail.is_empty() {
                            row.output = Some(tail);
                        }
                    }
                    Err(e) => row.command_status = Some(format!("unknown: {e}")),
                },
                (Err(e), _) => row.command_status = Some(format!("unknown: {e}")),
                (_, Err(e)) => row.command_status = Some(format!("unknown: {e}")),
            }
        }
        rows.push(row);
    }
    Ok(rows)
}

fn row_of(record: &JoinRecord) -> StatusRow {
    StatusRow {
        instance_id: record.instance_id.clone(),
        status: record.status.as_str().to_owned(),
        computer_name: record.computer_name.clone(),
        account: record.account.clone(),
        region: record.region.clone(),
        updated_at: record.updated_at.clone(),
        command_id: record.command_id.clone(),
        command_status: None,
        exit_code: record.exit_code,
        output: record.output.clone().filter(|o| !o.is_empty()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ledger::JoinStatus;
    use crate::ports::CommandResult;
    use crate::testing::{MEMBER, record, world};

    /// The status of every record, the world's ports answering.
    async fn status_of(aws: &crate::fake::FakeAws, selection: &Selection) -> Vec<StatusRow> {
        let ports = StatusPorts {
            ledger: aws,
            query: aws,
            config: aws,
            sessions: aws,
        };
        status(&ports, selection).await.expect("rows")
    }

    #[tokio::test]
    async fn rows_carry_the_commands_state_in_ssm_and_its_output() {
        let aws = world();
        let mut failed = record("i-0abc1234def567890", MEMBER);
        failed.status = JoinStatus::Failed;
        failed.command_id = Some("cmd-1".into());
        failed.output = Some("ledger output".into());
        failed.updated_at = "2026-01-02T10:00:00Z".into();
        aws.put_record(failed);
        aws.put_record(record("i-0abc1234def567891", MEMBER));
        aws.set_result(
            "cmd-1",
            CommandResult {
                status: CommandStatus::Failed("Failed".into()),
                exit_code: Some(13),
                stdout: "a\nb\nno domain controller answers\n".into(),
                stderr: String::new(),
            },
        );
        let rows = status_of(&aws, &Selection::Filter(LedgerFilter::default())).await;
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].instance_id, "i-0abc1234def567890", "newest first");
        assert_eq!(rows[0].command_status.as_deref(), Some("Failed"));
        assert_eq!(rows[0].exit_code, Some(13));
        assert_eq!(
            rows[0].output.as_deref(),
            Some("a\nb\nno domain controller answers")
        );
        assert_eq!(rows[1].command_status, None, "no command, nothing asked");
        assert_eq!(aws.assumed().len(), 1, "the member role, assumed once");

        let one = status_of(
            &aws,
            &Selection::Instance(InstanceId::parse("i-0abc1234def567890").expect("valid")),
        )
        .await;
        assert_eq!(one.len(), 1);
    }

    #[tokio::test]
    async fn the_ledgers_output_shows_when_ssm_has_none_and_errors_are_shown_not_fatal() {
        let aws = world();
        let mut joining = record("i-0abc1234def567890", MEMBER);
        joining.command_id = Some("unknown-to-ssm".into());
        joining.output = Some("from the ledger".into());
        aws.put_record(joining);
        let mut stranger = record("i-0abc1234def567892", "999988887777");
        stranger.command_id = Some("cmd-2".into());
        aws.put_record(stranger);
        let rows = status_of(&aws, &Selection::Filter(LedgerFilter::default())).await;
        let by_id = |id: &str| rows.iter().find(|r| r.instance_id == id).expect("row");
        let joining = by_id("i-0abc1234def567890");
        assert_eq!(joining.command_status.as_deref(), Some("Pending"));
        assert_eq!(joining.output.as_deref(), Some("from the ledger"));
        assert_eq!(
            by_id("i-0abc1234def567892").command_status.as_deref(),
            Some("unknown: no config item for account 999988887777")
        );
    }

    #[test]
    fn the_cutoff_is_now_minus_since() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(86_400 * 365);
        assert_eq!(
            since_cutoff(now, Duration::from_secs(7200)),
            "1970-12-31T22:00:00Z"
        );
    }
}
