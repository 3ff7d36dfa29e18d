//! The adjoin Lambda function: SQS batches of EC2 state-change events in, SSM join and
//! leave commands out, partial batch response back to SQS. Invoked by its EventBridge
//! schedule instead, it reconciles: the join ledger against EC2, each lost event put on
//! the domain-join queue.
//!
//! Everything is built once per container (SDK clients, caches); each invocation only
//! runs the worker. Logs are JSON lines, one span per message; each batch also prints
//! its metrics in CloudWatch embedded metric format (namespace `adjoin`).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use adjoin_aws::{EnvSettings, build_reconciler, build_worker, load_sdk_config};

/// Time kept back from the invocation's deadline to settle every message.
const SETTLE_MARGIN: Duration = Duration::from_secs(5);

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .json()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("AWS_LAMBDA_LOG_LEVEL")
                .or_else(|_| tracing_subscriber::EnvFilter::try_from_default_env())
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_current_span(true)
        .with_span_list(false)
        .with_target(false)
        .init();

    let env = EnvSettings::from_env()?;
    if env.dlq_url.is_none() {
        return Err(
            "environment variable ADJOIN_DLQ_URL is not set: rejected messages need a DLQ".into(),
        );
    }
    let sdk = load_sdk_config().await;
    let worker = Arc::new(build_worker(&sdk, &env, false));
    let reconciler = Arc::new(build_reconciler(&sdk, &env));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| {
        let worker = Arc::clone(&worker);
        let reconciler = Arc::clone(&reconciler);
        async move {
            if is_schedule(&event.payload) {
                return reconcile(reconciler.as_ref().as_ref()).await;
            }
            let batch: SqsEvent = serde_json::from_value(event.payload).map_err(|e| {
                format!("neither an SQS batch nor the reconciliation schedule: {e}")
            })?;
            // Leave time to settle (DLQ sends, visibility changes) before Lambda's deadline.
            let remaining = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let deadline = tokio::time::Instant::now() + remaining.saturating_sub(SETTLE_MARGIN);
            let started = std::time::Instant::now();
            let (response, reports) =
                adjoin_core::sqs::handle_event(&worker, batch, Some(deadline)).await;
            // CloudWatch metrics in embedded metric format: one JSON line each on stdout.
            let documents =
                adjoin_core::metrics::emf(&reports, started.elapsed(), SystemTime::now());
            let mut stdout = std::io::stdout().lock();
            for document in documents {
                let _ = writeln!(stdout, "{document}");
            }
            Ok::<serde_json::Value, Error>(serde_json::to_value::<SqsBatchResponse>(response)?)
        }
    }))
    .await
}

/// An EventBridge schedule's invocation (`source` `aws.events`, `Scheduled Event`).
fn is_schedule(payload: &serde_json::Value) -> bool {
    payload["source"] == "aws.events" && payload["detail-type"] == "Scheduled Event"
}

/// Scheduled reconciliation; what was found is logged as one JSON line and returned.
async fn reconcile(
    reconciler: Option<&adjoin_aws::Reconciler>,
) -> Result<serde_json::Value, Error> {
    let Some(reconciler) = reconciler else {
        return Err(
            "the reconciliation schedule needs ADJOIN_QUEUE_URL (the domain-join queue)".into(),
        );
    };
    let findings = reconciler.run(SystemTime::now()).await?;
    // Its counts as CloudWatch metrics (embedded metric format), like a batch's.
    println!(
        "{}",
        adjoin_core::metrics::reconcile_emf(&findings, SystemTime::now())
    );
    tracing::info!(
        checked = findings.checked,
        drifted = findings.drifted.len(),
        unchecked = findings.unchecked.len(),
        findings = %serde_json::to_string(&findings)?,
        "reconciled: the lost events are on the queue"
    );
    Ok(serde_json::to_value(findings)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_told_from_an_sqs_batch() {
        let schedule = serde_json::json!({
            "version": "0", "id": "x", "detail-type": "Scheduled Event", "source": "aws.events",
            "account": "123456789012", "time": "2026-12-02T00:00:00Z", "region": "eu-west-1",
            "resources": ["arn:aws:events:eu-west-1:123456789012:rule/adjoin-reconcile"], "detail": {}
        });
        assert!(is_schedule(&schedule));
        assert!(!is_schedule(&serde_json::json!({"Records": []})));
        // An EC2 event arriving directly (not through the queue) is no schedule.
        assert!(!is_schedule(
            &serde_json::json!({"source": "aws.ec2", "detail-type": "Scheduled Event"})
        ));
    }
}
