//! `adjoin`: run the service locally on sample events, and operate it.

mod check;
mod config;
mod documents;
mod manual;
mod reconcile;
mod replay;
mod status;

use std::process::ExitCode;

use adjoin_core::admin::checks::{Report, Verdict};
use adjoin_core::ids::Region;
use clap::{Parser, Subcommand};

/// Exit status when a check did not pass, or what was asked for is not there.
pub(crate) const EXIT_FAILED: u8 = 1;
/// Exit status for usage errors (as clap's).
pub(crate) const EXIT_USAGE: u8 = 2;

#[derive(Parser)]
#[command(
    name = "adjoin",
    version,
    about = "Join EC2 instances to Active Directory, event by event"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the worker on event files, against the AWS endpoint the standard variables name.
    ///
    /// Each FILE is an SQS event ({"Records":[...]}), a single EventBridge event, or an SNS
    /// notification; each file is one batch. Prints one JSON line per message. Exit status:
    /// 0 when every message was dispatched, planned (--dry-run), verified or skipped, 3 when
    /// any was deferred, failed or rejected, 2 for usage errors.
    #[command(after_help = replay::ENVIRONMENT)]
    Replay(replay::Args),
    /// Join one instance now, through the service's own path (a lost event, an opted-out
    /// instance, a repair). Running it again reads the join's result.
    ///
    /// Exit status as replay's.
    #[command(after_help = replay::ENVIRONMENT)]
    Join(manual::JoinArgs),
    /// Remove one terminated instance's computer object now, through the service's own
    /// path (a lost event). Running it again reads the leave's result.
    ///
    /// Exit status as replay's.
    #[command(after_help = replay::ENVIRONMENT)]
    Leave(manual::Target),
    /// Write, read, list, validate and delete account config items (ADJOIN_CONFIG_TABLE).
    Config(config::Args),
    /// What the ledger and SSM know about instances: status, computer name, last command.
    ///
    /// Exit status: 0 shown (an empty list too), 1 the instance has no record or the
    /// ledger cannot be read, 2 usage errors.
    Status(status::Args),
    /// Preflight for one instance: can it be joined now? One line per check, with the fix.
    ///
    /// Exit status: 0 every check passed, 1 any did not, 2 usage errors.
    Check(check::Args),
    /// The join ledger against EC2: instances gone whose records say joined get their
    /// leave, joins abandoned in flight get their running event again, through the
    /// service's own path. Prints what drifted as JSON, then each outcome.
    ///
    /// Exit status: 0 nothing drifted or every fix went, 1 the ledger could not be read,
    /// 2 usage errors, 3 a fix did not go.
    #[command(after_help = replay::ENVIRONMENT)]
    Reconcile(reconcile::Args),
    /// adjoin's SSM Command documents (the bundled scripts, pinned), as the stacks create
    /// them: list them, write them as JSON, or write them into the templates.
    Documents(documents::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        // Colour only for a person: piped or redirected stderr gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay::run(args).await,
        Command::Join(args) => manual::join(args).await,
        Command::Leave(target) => manual::leave(target).await,
        Command::Config(args) => config::run(args).await,
        Command::Status(args) => status::run(args).await,
        Command::Check(args) => check::run(args).await,
        Command::Documents(args) => documents::run(args),
        Command::Reconcile(args) => reconcile::run(args).await,
    }
}

/// Which instance a command is about.
#[derive(clap::Args)]
pub(crate) struct InstanceArgs {
    /// The member account the instance runs in.
    #[arg(long)]
    pub account: String,
    /// The instance id.
    #[arg(long)]
    pub instance: String,
    /// The instance's Region (default: the Region of the AWS configuration).
    #[arg(long)]
    pub region: Option<String>,
}

/// `--region`, else the Region of the SDK configuration (AWS_REGION, profile).
pub(crate) fn home_region(
    sdk: &aws_config::SdkConfig,
    flag: Option<&str>,
) -> Result<Region, String> {
    match flag
        .map(str::to_owned)
        .or_else(|| sdk.region().map(|r| r.to_string()))
    {
        Some(r) => Region::parse(&r),
        None => Err("no Region: set AWS_REGION or pass --region".to_owned()),
    }
}

/// One line per check (`✓ name: detail`), the fix indented under a failure.
pub(crate) fn print_report(report: &Report) {
    for check in &report.checks {
        println!("{} {}: {}", check.verdict.mark(), check.name, check.detail);
        if let (Verdict::Fail, Some(fix)) = (check.verdict, &check.fix) {
            println!("    fix: {fix}");
        }
    }
}

/// A table: box-drawn and fitted to the width on a terminal, plain ASCII otherwise.
pub(crate) fn table(header: &[&str], rows: Vec<Vec<String>>, terminal: bool) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    if terminal {
        table
            .load_preset(comfy_table::presets::UTF8_FULL_CONDENSED)
            .set_content_arrangement(comfy_table::ContentArrangement::Dynamic);
    } else {
        table.load_preset(comfy_table::presets::ASCII_MARKDOWN);
    }
    table.set_header(header.to_vec());
    for row in rows {
        table.add_row(row);
    }
    table
}
