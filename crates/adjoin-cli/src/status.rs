//! `adjoin status`: the ledger's records with their last command's state in SSM.

use std::io::{IsTerminal as _, Write as _};
use std::process::ExitCode;
use std::time::SystemTime;

use adjoin_aws::admin::DynamoLedgerQuery;
use adjoin_aws::{AwsSessions, DynamoConfigStore, DynamoLedger, load_sdk_config};
use adjoin_core::admin::LedgerFilter;
use adjoin_core::admin::status::{self, Selection, StatusPorts, StatusRow, since_cutoff};
use adjoin_core::ids::{AccountId, InstanceId};

use crate::{EXIT_FAILED, EXIT_USAGE, table};

#[derive(clap::Args)]
pub struct Args {
    /// Only this instance.
    #[arg(long, conflicts_with_all = ["account", "since"])]
    instance: Option<String>,
    /// Only instances of this account.
    #[arg(long)]
    account: Option<String>,
    /// Only records updated within this long, e.g. 30m, 2h, 7d.
    #[arg(long, value_parser = humantime::parse_duration)]
    since: Option<std::time::Duration>,
    /// One JSON line per instance instead of a table.
    #[arg(long)]
    json: bool,
    /// The join ledger (partition key instanceId).
    #[arg(long, env = "ADJOIN_LEDGER_TABLE", hide_env_values = true)]
    ledger_table: Option<String>,
    /// The config table, for each account's role.
    #[arg(long, env = "ADJOIN_CONFIG_TABLE", hide_env_values = true)]
    config_table: Option<String>,
}

fn usage(message: String) -> ExitCode {
    eprintln!("adjoin status: {message}");
    ExitCode::from(EXIT_USAGE)
}

pub async fn run(args: Args) -> ExitCode {
    let set = |v: Option<String>| v.filter(|t| !t.trim().is_empty());
    let Some(ledger_table) = set(args.ledger_table) else {
        return usage(
            "environment variable ADJOIN_LEDGER_TABLE (or --ledger-table) is not set".into(),
        );
    };
    let Some(config_table) = set(args.config_table) else {
        return usage(
            "environment variable ADJOIN_CONFIG_TABLE (or --config-table) is not set".into(),
        );
    };
    let selection = match &args.instance {
        Some(id) => match InstanceId::parse(id) {
            Ok(id) => Selection::Instance(id),
            Err(e) => return usage(e),
        },
        None => Selection::Filter(LedgerFilter {
            account: match args.account.as_deref().map(AccountId::parse).transpose() {
                Ok(a) => a,
                Err(e) => return usage(e),
            },
            updated_since: args.since.map(|d| since_cutoff(SystemTime::now(), d)),
        }),
    };
    let sdk = load_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let ledger = DynamoLedger::new(ddb.clone(), &ledger_table);
    let query = DynamoLedgerQuery::new(ddb.clone(), &ledger_table);
    let config = DynamoConfigStore::new(ddb, config_table);
    let sessions = AwsSessions::new(sdk);
    let ports = StatusPorts {
        ledger: &ledger,
        query: &query,
        config: &config,
        sessions: &sessions,
    };
    let rows = match status::status(&ports, &selection).await {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("adjoin status: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    if let (Selection::Instance(id), true) = (&selection, rows.is_empty()) {
        eprintln!("adjoin status: the ledger has no record of {id}");
        return ExitCode::from(EXIT_FAILED);
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        for row in &rows {
            let _ = writeln!(out, "{}", serde_json::to_string(row).unwrap_or_default());
        }
    } else {
        let _ = writeln!(out, "{}", render(&rows, std::io::stdout().is_terminal()));
    }
    ExitCode::SUCCESS
}

fn render(rows: &[StatusRow], terminal: bool) -> comfy_table::Table {
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    table(
        &[
            "instance", "status", "computer", "account", "region", "updated", "command", "SSM",
            "output",
        ],
        rows.iter()
            .map(|r| {
                vec![
                    r.instance_id.clone(),
                    r.status.clone(),
                    r.computer_name.clone(),
                    r.account.clone(),
                    r.region.clone(),
                    r.updated_at.clone(),
                    text(&r.command_id),
                    match (&r.command_status, r.exit_code) {
                        (Some(s), Some(code)) => format!("{s} ({code})"),
                        (Some(s), None) => s.clone(),
                        (None, _) => String::new(),
                    },
                    text(&r.output),
                ]
            })
            .collect(),
        terminal,
    )
}
