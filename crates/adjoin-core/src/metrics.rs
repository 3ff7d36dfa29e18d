//! CloudWatch metrics of a batch, as embedded metric format (EMF) documents: the Lambda
//! prints each as one line and CloudWatch Logs turns them into metrics (namespace
//! `adjoin`), without a PutMetricData call.
//!
//! Per account and action: `Dispatched`, `Verified`, `Skipped`, `Deferred`, `Rejected`,
//! `Failed` (counts), with the dimension sets `[Account, Action]`, `[Action]` and none (the
//! service-wide totals the central stack's alarm watches). Per batch: `BatchLatency`
//! (milliseconds) and `Messages`. Per scheduled reconciliation ([`reconcile_emf`]):
//! `ReconcileChecked`, `ReconcileDrifted`, `ReconcileUnchecked`.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use crate::outcome::{Action, Outcome, Report};

pub const NAMESPACE: &str = "adjoin";

const OUTCOMES: [(Outcome, &str); 6] = [
    (Outcome::Dispatched, "Dispatched"),
    (Outcome::Verified, "Verified"),
    (Outcome::Skipped, "Skipped"),
    (Outcome::Deferred, "Deferred"),
    (Outcome::Rejected, "Rejected"),
    (Outcome::Failed, "Failed"),
];

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Join => "join",
        Action::Leave => "leave",
        Action::Verify => "verify",
        Action::None => "none",
    }
}

/// The EMF document of one reconciliation: `ReconcileChecked` (records that may still
/// have a computer object), `ReconcileDrifted` (instances whose lost event was sent
/// again), `ReconcileUnchecked` (accounts and Regions that could not be read).
pub fn reconcile_emf(findings: &crate::admin::reconcile::Findings, now: SystemTime) -> Value {
    let timestamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [
                    {"Name": "ReconcileChecked", "Unit": "Count"},
                    {"Name": "ReconcileDrifted", "Unit": "Count"},
                    {"Name": "ReconcileUnchecked", "Unit": "Count"},
                ],
            }],
        },
        "ReconcileChecked": findings.checked,
        "ReconcileDrifted": findings.drifted.len(),
        "ReconcileUnchecked": findings.unchecked.len(),
    })
}

/// The EMF documents of one batch handled in `latency`, stamped `now`.
pub fn emf(reports: &[Report], latency: Duration, now: SystemTime) -> Vec<Value> {
    let timestamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64);
    let mut counts: BTreeMap<(String, &'static str), BTreeMap<&'static str, u64>> = BTreeMap::new();
    // Dry runs send nothing: they are not counted.
    for r in reports.iter().filter(|r| r.outcome != Outcome::Planned) {
        let account = r.account.clone().unwrap_or_else(|| "unknown".to_owned());
        let name = OUTCOMES
            .iter()
            .find(|(o, _)| *o == r.outcome)
            .map_or("Failed", |(_, n)| n);
        *counts
            .entry((account, action_name(r.action)))
            .or_default()
            .entry(name)
            .or_default() += 1;
    }
    let mut documents: Vec<Value> = counts
        .into_iter()
        .map(|((account, action), by_outcome)| {
            let mut doc = json!({
                "_aws": {
                    "Timestamp": timestamp,
                    "CloudWatchMetrics": [{
                        "Namespace": NAMESPACE,
                        "Dimensions": [["Account", "Action"], ["Action"], []],
                        "Metrics": OUTCOMES.iter().map(|(_, n)| json!({"Name": n, "Unit": "Count"})).collect::<Vec<_>>(),
                    }],
                },
                "Account": account,
                "Action": action,
            });
            if let Some(doc) = doc.as_object_mut() {
                for (_, name) in OUTCOMES {
                    doc.insert(
                        (*name).to_owned(),
                        json!(by_outcome.get(name).copied().unwrap_or(0)),
                    );
                }
            }
            doc
        })
        .collect();
    documents.push(json!({
        "_aws": {
            "Timestamp": timestamp,
            "CloudWatchMetrics": [{
                "Namespace": NAMESPACE,
                "Dimensions": [[]],
                "Metrics": [
                    {"Name": "BatchLatency", "Unit": "Milliseconds"},
                    {"Name": "Messages", "Unit": "Count"},
                ],
            }],
        },
        "BatchLatency": latency.as_secs_f64() * 1000.0,
        "Messages": reports.len(),
    }));
    documents
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(account: Option<&str>, action: Action, outcome: Outcome) -> Report {
        Report {
            message_id: "m".into(),
            account: account.map(str::to_owned),
            region: None,
            instance_id: None,
            action,
            outcome,
            reason: String::new(),
            command_id: None,
            command: None,
            comes_back: false,
            dry_run: false,
        }
    }

    #[test]
    fn counts_per_account_and_action_and_the_batch_latency() {
        let a = Some("111122223333");
        let reports = [
            report(a, Action::Join, Outcome::Dispatched),
            report(a, Action::Join, Outcome::Dispatched),
            report(a, Action::Join, Outcome::Skipped),
            report(a, Action::Leave, Outcome::Dispatched),
            report(None, Action::None, Outcome::Rejected),
        ];
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let docs = emf(&reports, Duration::from_millis(250), now);
        assert_eq!(docs.len(), 4, "{docs:#?}");
        let join = docs
            .iter()
            .find(|d| d["Account"] == "111122223333" && d["Action"] == "join")
            .expect("join document");
        assert_eq!(
            (join["Dispatched"].as_u64(), join["Skipped"].as_u64()),
            (Some(2), Some(1))
        );
        assert_eq!(join["Failed"], 0, "every metric is present, zeros included");
        let meta = &join["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(meta["Namespace"], "adjoin");
        assert_eq!(
            meta["Dimensions"],
            json!([["Account", "Action"], ["Action"], []])
        );
        assert_eq!(join["_aws"]["Timestamp"], 1_800_000_000_000u64);
        let unknown = docs
            .iter()
            .find(|d| d["Account"] == "unknown")
            .expect("unparsed messages count too");
        assert_eq!(unknown["Rejected"], 1);
        let batch = docs.last().expect("batch document");
        assert_eq!(
            (batch["BatchLatency"].as_f64(), batch["Messages"].as_u64()),
            (Some(250.0), Some(5))
        );
    }

    #[test]
    fn every_metric_named_is_a_field_of_its_document() {
        let docs = emf(
            &[report(Some("1"), Action::Verify, Outcome::Verified)],
            Duration::ZERO,
            SystemTime::now(),
        );
        for doc in docs {
            for directive in doc["_aws"]["CloudWatchMetrics"].as_array().expect("array") {
                for metric in directive["Metrics"].as_array().expect("metrics") {
                    let name = metric["Name"].as_str().expect("name");
                    assert!(doc[name].is_number(), "{name} in {doc}");
                }
                for set in directive["Dimensions"].as_array().expect("sets") {
                    for dim in set.as_array().expect("set") {
                        assert!(doc[dim.as_str().expect("name")].is_string());
                    }
                }
            }
        }
    }
}
