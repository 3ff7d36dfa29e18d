//! `adjoin replay`: the Lambda's worker, on event files.

use std::io::{IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;

use adjoin_aws::{EnvSettings, build_worker, load_sdk_config};
use adjoin_core::outcome::Outcome;
use adjoin_core::worker::Message;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// What `adjoin replay` reads from its environment (shown by `--help`).
pub const ENVIRONMENT: &str = "\
Environment:
  ADJOIN_CONFIG_TABLE          the config table (required)
  ADJOIN_LEDGER_TABLE          the ledger table (required)
  ADJOIN_DLQ_URL               where rejected messages go (none: reported only)
  ADJOIN_TOOLS_HOST_TAG_KEY    tag of the AD tools host (default adjoin:role)
  ADJOIN_TOOLS_HOST_TAG_VALUE  (default ad-tools)
  ADJOIN_MAX_ATTEMPTS, ADJOIN_MAX_AGE_SECONDS, ADJOIN_JOIN_ATTEMPTS, ADJOIN_CONCURRENCY,
  ADJOIN_CONFIG_TTL_SECONDS, ADJOIN_LEAVE_UNRECORDED   as the Lambda (see README)
  ADJOIN_QUEUE_URL             the domain-join queue (the Lambda's scheduled reconciliation)
  AWS_REGION, AWS_ENDPOINT_URL, AWS_PROFILE, AWS_ACCESS_KEY_ID, ...   the AWS SDK's own
  RUST_LOG                     log level on stderr (default warn)";

/// Exit status when any message would be a batch item failure or was rejected.
const EXIT_NOT_ALL_HANDLED: u8 = 3;
/// Exit status for usage errors (as clap's).
pub(crate) const EXIT_USAGE: u8 = 2;

#[derive(clap::Args)]
pub struct Args {
    /// Do every read, send nothing; add the rendered command to each line.
    #[arg(long)]
    dry_run: bool,
    /// Event files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// The messages in one file: the records of an SQS event, or the file as one message body.
fn messages_in(path: &std::path::Path, text: &str) -> Vec<Message> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(value) if value.get("Records").is_some_and(|r| r.is_array()) => {
            match serde_json::from_value::<aws_lambda_events::event::sqs::SqsEvent>(value) {
                Ok(event) => adjoin_core::sqs::messages(event)
                    .into_iter()
                    .map(|m| Message {
                        // Replayed records have no live receipt handle.
                        receipt_handle: None,
                        ..m
                    })
                    .collect(),
                Err(e) => vec![plain(
                    &stem,
                    serde_json::json!({"unreadable SQS event": e.to_string()}).to_string(),
                )],
            }
        }
        // A single event or SNS notification, or something the worker will refuse with a reason.
        _ => vec![plain(&stem, text.to_owned())],
    }
}

fn plain(stem: &str, body: String) -> Message {
    Message {
        message_id: stem.to_owned(),
        body,
        receipt_handle: None,
        receive_count: 1,
        source_queue_arn: None,
    }
}

/// A bar of files done, on stderr when it is a terminal; hidden otherwise, so piped
/// output is exactly the JSON lines.
fn progress_bar(files: usize) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(files as u64), ProgressDrawTarget::stderr());
    if let Ok(style) = ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}") {
        bar.set_style(style);
    }
    bar
}

pub async fn run(args: Args) -> ExitCode {
    let env = match EnvSettings::from_env() {
        Ok(env) => env,
        Err(e) => {
            eprintln!("adjoin replay: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let mut batches = Vec::new();
    for path in &args.files {
        match std::fs::read_to_string(path) {
            Ok(text) => batches.push(messages_in(path, &text)),
            Err(e) => {
                eprintln!("adjoin replay: cannot read {}: {e}", path.display());
                return ExitCode::from(EXIT_USAGE);
            }
        }
    }
    let worker = build_worker(&load_sdk_config().await, &env, args.dry_run);
    handle_and_print(&worker, batches).await
}

/// Runs the worker on each batch and prints one JSON line per message. Exit status 0
/// when every message was dispatched, planned, verified or skipped, 3 otherwise.
pub(crate) async fn handle_and_print(
    worker: &adjoin_core::worker::Worker,
    batches: Vec<Vec<Message>>,
) -> ExitCode {
    let mut all_handled = true;
    let progress = progress_bar(batches.len());
    let mut stdout = std::io::stdout().lock();
    for batch in batches {
        let reports = worker.handle_batch(&batch).await;
        progress.inc(1);
        for report in reports {
            all_handled &= matches!(
                report.outcome,
                Outcome::Dispatched | Outcome::Planned | Outcome::Verified | Outcome::Skipped
            );
            let line =
                serde_json::to_string(&report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
            if progress.suspend(|| writeln!(stdout, "{line}")).is_err() {
                return ExitCode::FAILURE;
            }
        }
    }
    progress.finish_and_clear();
    if all_handled {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_NOT_ALL_HANDLED)
    }
}

#[cfg(test)]
mod environment_tests {
    #[test]
    fn help_names_every_variable_the_service_reads() {
        for variable in adjoin_aws::settings::VARIABLES {
            assert!(
                super::ENVIRONMENT.contains(variable),
                "{variable} is missing from replay --help"
            );
        }
    }
}
