//! The adjoin Lambda function: SQS batches of EC2 state-change events in, SSM join and
//! leave commands out, partial batch response back to SQS.
//!
//! Everything is built once per container (SDK clients, caches); each invocation only
//! runs the worker. Logs are JSON lines, one span per message; each batch also prints
//! its metrics in CloudWatch embedded metric format (namespace `adjoin`).

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use adjoin_aws::{EnvSettings, build_worker, load_sdk_config};

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
    let worker = Arc::new(build_worker(&load_sdk_config().await, &env, false));

    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
        let worker = Arc::clone(&worker);
        async move {
            // Leave time to settle (DLQ sends, visibility changes) before Lambda's deadline.
            let remaining = event
                .context
                .deadline()
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            let deadline = tokio::time::Instant::now() + remaining.saturating_sub(SETTLE_MARGIN);
            let started = std::time::Instant::now();
            let (response, reports) =
                adjoin_core::sqs::handle_event(&worker, event.payload, Some(deadline)).await;
            // CloudWatch metrics in embedded metric format: one JSON line each on stdout.
            let documents =
                adjoin_core::metrics::emf(&reports, started.elapsed(), SystemTime::now());
            let mut stdout = std::io::stdout().lock();
            for document in documents {
                let _ = writeln!(stdout, "{document}");
            }
            Ok::<SqsBatchResponse, Error>(response)
        }
    }))
    .await
}
