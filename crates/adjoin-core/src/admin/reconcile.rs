//! `adjoin reconcile`: the join ledger against EC2, for what lost events left behind.
//!
//! Events get lost (a rule disabled for an hour, a DLQ purged, a tools host down during
//! a scale-in). Reconciliation reads every ledger record that may still have a computer
//! object (`staging`, `joining`, `joined`, `failed`), asks EC2 about those instances —
//! one DescribeInstances per account and Region, through the account's own role — and
//! finds the drift:
//!
//! - an instance EC2 reports ending or no longer knows: its object is left behind, and
//!   it gets the leave its terminated event would have brought;
//! - an instance still running whose `staging`/`joining` record nobody touched for too
//!   long: its join was abandoned, and it gets the running event again (the worker takes
//!   the stale record over, verifies or retries).
//!
//! Finding is separate from acting: [`find_drift`] only reads; the caller sends each
//! drift's event through the worker (the same checks as a real event's).

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde::Serialize;

use crate::admin::{LedgerFilter, LedgerQuery};
use crate::error::Error;
use crate::ids::{AccountId, InstanceId};
use crate::instance::InstanceState;
use crate::ledger::{JoinRecord, JoinStatus, parse_time};
use crate::ports::{ConfigStore, Sessions};

/// What a drifted instance needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Fix {
    /// Its terminated event: the leave.
    Leave,
    /// Its running event again: the join, taken over.
    Join,
}

impl Fix {
    /// The EC2 state of the event that brings the fix.
    pub fn state(self) -> &'static str {
        match self {
            Fix::Leave => "terminated",
            Fix::Join => "running",
        }
    }
}

/// One instance whose record and EC2 disagree.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    pub instance_id: String,
    pub account: String,
    pub region: String,
    pub computer_name: String,
    /// The ledger's status.
    pub status: String,
    /// What EC2 reports: its state, or `gone`.
    pub ec2: String,
    pub fix: Fix,
}

/// What reconciliation found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    /// Records read that may still have a computer object.
    pub checked: usize,
    pub drifted: Vec<Drift>,
    /// Accounts and Regions that could not be checked, and why.
    pub unchecked: Vec<String>,
}

/// The ports reconciliation reads.
pub struct ReconcilePorts<'a> {
    pub query: &'a dyn LedgerQuery,
    pub config: &'a dyn ConfigStore,
    pub sessions: &'a dyn Sessions,
}

/// Whether the record's instance may still have a computer object (staged, joined, a
/// join that failed part way, or a leave not verified yet).
fn may_have_object(record: &JoinRecord) -> bool {
    matches!(
        record.status,
        JoinStatus::Staging
            | JoinStatus::Joining
            | JoinStatus::Joined
            | JoinStatus::Failed
            | JoinStatus::Leaving
    )
}

/// The message id an operator's (or reconciliation's) event for `instance` in `state`
/// carries: fixed, so that sending it again is that message's return, which reads the
/// result of the command it sent.
pub fn message_id(state: &str, instance: &str) -> String {
    format!("adjoin-{state}-{instance}")
}

/// What one record needs, given what EC2 reports (`None`: EC2 does not know the
/// instance) — a pure decision.
pub fn fix_for(
    record: &JoinRecord,
    ec2: Option<&InstanceState>,
    now: SystemTime,
    stale_after: Duration,
) -> Option<Fix> {
    if !may_have_object(record) {
        return None;
    }
    // A claim in flight is left to its message, unless that message is ours (sending it
    // again reads its result) or nobody touched the record for too long.
    let stale = parse_time(&record.updated_at)
        .and_then(|t| now.duration_since(t).ok())
        .is_none_or(|age| age > stale_after);
    let free = |state: &str| stale || record.message_id == message_id(state, &record.instance_id);
    let gone = ec2.is_none_or(InstanceState::is_ending);
    match record.status {
        JoinStatus::Leaving => (gone && free("terminated")).then_some(Fix::Leave),
        _ if gone => Some(Fix::Leave),
        JoinStatus::Staging | JoinStatus::Joining
            if ec2 == Some(&InstanceState::Running) && free("running") =>
        {
            Some(Fix::Join)
        }
        _ => None,
    }
}

/// Reads the ledger (optionally one account's records) and EC2, and returns the drift.
pub async fn find_drift(
    ports: &ReconcilePorts<'_>,
    account: Option<&AccountId>,
    now: SystemTime,
    stale_after: Duration,
) -> Result<Findings, Error> {
    let records = ports
        .query
        .scan(&LedgerFilter {
            account: account.cloned(),
            updated_since: None,
        })
        .await?;
    // The records that may still have a computer object, by account and Region.
    let mut groups: BTreeMap<(String, String), Vec<JoinRecord>> = BTreeMap::new();
    for record in records.into_iter().filter(may_have_object) {
        groups
            .entry((record.account.clone(), record.region.clone()))
            .or_default()
            .push(record);
    }
    let mut findings = Findings::default();
    for ((account, region), records) in groups {
        findings.checked += records.len();
        let place = format!("{account} {region}");
        let ec2 = match describe(ports, &account, &region, &records).await {
            Ok(ec2) => ec2,
            Err(why) => {
                findings.unchecked.push(format!("{place}: {why}"));
                continue;
            }
        };
        for record in records {
            let state = ec2.get(&record.instance_id);
            if let Some(fix) = fix_for(&record, state, now, stale_after) {
                findings.drifted.push(Drift {
                    instance_id: record.instance_id.clone(),
                    account: record.account.clone(),
                    region: record.region.clone(),
                    computer_name: record.computer_name.clone(),
                    status: record.status.as_str().to_owned(),
                    ec2: state.map_or_else(|| "gone".to_owned(), ToString::to_string),
                    fix,
                });
            }
        }
    }
    Ok(findings)
}

/// The EventBridge event a drifted instance missed (its terminated, or its running
/// event), as EC2 would have sent it: what scheduled reconciliation puts on the queue.
pub fn event_body(drift: &Drift, now: SystemTime) -> String {
    let state = drift.fix.state();
    serde_json::json!({
        "version": "0",
        "id": format!("reconcile-{state}-{}-{}", drift.instance_id, crate::ledger::epoch_seconds(now)),
        "detail-type": crate::event::DETAIL_TYPE,
        "source": crate::event::SOURCE,
        "account": drift.account,
        "time": crate::ledger::format_time(now),
        "region": drift.region,
        "resources": [format!("arn:aws:ec2:{}:{}:instance/{}", drift.region, drift.account, drift.instance_id)],
        "detail": {"instance-id": drift.instance_id, "state": state},
    })
    .to_string()
}

/// Scheduled reconciliation: finds the drift and puts each drifted instance's missed
/// event on the domain-join queue at `queue_url`, where the worker handles it as any
/// event (verification, retries, the DLQ). Returns what was found.
pub async fn enqueue_drift(
    ports: &ReconcilePorts<'_>,
    queue: &dyn crate::ports::Queue,
    queue_url: &str,
    now: SystemTime,
    stale_after: Duration,
) -> Result<Findings, Error> {
    let findings = find_drift(ports, None, now, stale_after).await?;
    let bodies: Vec<String> = findings
        .drifted
        .iter()
        .map(|d| event_body(d, now))
        .collect();
    if !bodies.is_empty() {
        queue.enqueue(queue_url, &bodies).await?;
    }
    Ok(findings)
}

/// The EC2 states of the records' instances in `account`/`region`, through the
/// account's config item and role; why not, when it cannot be read.
async fn describe(
    ports: &ReconcilePorts<'_>,
    account: &str,
    region: &str,
    records: &[JoinRecord],
) -> Result<BTreeMap<String, InstanceState>, String> {
    let opened = crate::admin::open_by_item(ports.config, ports.sessions, account, region).await?;
    let ids: Vec<InstanceId> = records
        .iter()
        .filter_map(|r| InstanceId::parse(&r.instance_id).ok())
        .collect();
    let mut states = BTreeMap::new();
    for chunk in ids.chunks(100) {
        for instance in opened
            .instances
            .describe(chunk)
            .await
            .map_err(|e| e.to_string())?
        {
            states.insert(instance.id.to_string(), instance.state);
        }
    }
    Ok(states)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::record;

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn the_ledger_against_ec2() {
        let now = SystemTime::now();
        let at = |status: JoinStatus, age: Duration| JoinRecord {
            status,
            updated_at: crate::ledger::format_time(now - age),
            ..record("i-0abc", "111122223333")
        };
        let running = InstanceState::Running;
        let terminated = InstanceState::from("terminated");
        let stopped = InstanceState::from("stopped");
        // A leave reconciliation sent itself: its message comes back at once.
        let ours = JoinRecord {
            message_id: message_id("terminated", "i-0abc"),
            ..at(JoinStatus::Leaving, HOUR)
        };
        assert_eq!(fix_for(&ours, None, now, 2 * HOUR), Some(Fix::Leave));
        for (status, age, ec2, expected) in [
            (JoinStatus::Joined, HOUR, None, Some(Fix::Leave)),
            (
                JoinStatus::Joined,
                HOUR,
                Some(&terminated),
                Some(Fix::Leave),
            ),
            (JoinStatus::Failed, HOUR, None, Some(Fix::Leave)),
            (JoinStatus::Staging, HOUR, None, Some(Fix::Leave)),
            (JoinStatus::Joined, HOUR, Some(&running), None),
            (JoinStatus::Joined, HOUR, Some(&stopped), None),
            (
                JoinStatus::Joining,
                3 * HOUR,
                Some(&running),
                Some(Fix::Join),
            ),
            (
                JoinStatus::Staging,
                3 * HOUR,
                Some(&running),
                Some(Fix::Join),
            ),
            (JoinStatus::Joining, HOUR / 2, Some(&running), None),
            (JoinStatus::Left, HOUR, None, None),
            (JoinStatus::Leaving, HOUR, None, None),
            (JoinStatus::Leaving, 3 * HOUR, None, Some(Fix::Leave)),
            (JoinStatus::LeaveFailed, HOUR, None, None),
        ] {
            assert_eq!(
                fix_for(&at(status, age), ec2, now, 2 * HOUR),
                expected,
                "{status:?} {age:?} {ec2:?}"
            );
        }
    }
}

#[cfg(test)]
mod world_tests {
    use super::*;
    use crate::instance::Platform;
    use crate::testing::{LINUX, MEMBER, WINDOWS, account, instance, record_now, region, world};

    #[tokio::test]
    async fn a_joined_instance_ec2_no_longer_has_is_found_and_a_running_one_is_not() {
        let aws = world();
        for id in [LINUX, WINDOWS] {
            aws.put_record(JoinRecord {
                status: JoinStatus::Joined,
                ..record_now(id, MEMBER)
            });
        }
        // The Linux instance terminated while its events were lost.
        aws.put_instance(
            &account(MEMBER),
            &region(),
            instance(LINUX, "terminated", Platform::Linux, &[]),
        );
        let ports = ReconcilePorts {
            query: &aws,
            config: &aws,
            sessions: &aws,
        };
        let found = find_drift(&ports, None, SystemTime::now(), Duration::from_secs(7200))
            .await
            .expect("read");
        assert_eq!(found.checked, 2);
        assert!(found.unchecked.is_empty(), "{found:?}");
        assert_eq!(found.drifted.len(), 1, "{found:?}");
        let drift = &found.drifted[0];
        assert_eq!(
            (drift.instance_id.as_str(), drift.fix, drift.ec2.as_str()),
            (LINUX, Fix::Leave, "terminated")
        );
        // An account that cannot be read is reported, not fatal.
        aws.put_record(record_now("i-0ddddddddddddddd4", "999988887777"));
        let found = find_drift(&ports, None, SystemTime::now(), Duration::from_secs(7200))
            .await
            .expect("read");
        assert_eq!(found.unchecked.len(), 1, "{found:?}");
        assert!(found.unchecked[0].contains("no config item for account 999988887777"));
    }
}
