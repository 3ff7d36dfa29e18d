//! `adjoin`: run the service locally on sample events, and operate it.

mod replay;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
    /// 0 when every message was dispatched or skipped, 3 when any was deferred, failed or
    /// rejected, 2 for usage errors.
    Replay(replay::Args),
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Replay(args) => replay::run(args).await,
    }
}
