//! `adjoin reconcile`: the join ledger against EC2; what lost events left behind gets
//! the event it missed, through the service's own path.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use adjoin_aws::admin::DynamoLedgerQuery;
use adjoin_aws::{AwsSessions, DynamoConfigStore, EnvSettings, build_worker, load_sdk_config};
use adjoin_core::admin::reconcile::{ReconcilePorts, find_drift};
use adjoin_core::ids::{AccountId, InstanceId, Region};

use crate::manual::message;
use crate::replay::handle_and_print;
use crate::{EXIT_FAILED, EXIT_USAGE};

#[derive(clap::Args)]
pub struct Args {
    /// Only instances of this account.
    #[arg(long)]
    account: Option<String>,
    /// Find the drift and print it; send nothing.
    #[arg(long)]
    dry_run: bool,
}

fn usage(message: String) -> ExitCode {
    eprintln!("adjoin reconcile: {message}");
    ExitCode::from(EXIT_USAGE)
}

/// Prints what drifted as one JSON object (`checked`, `drifted`, `unchecked`); then,
/// unless `--dry-run`, sends each drifted instance's missed event through the worker and
/// prints its outcome as `adjoin replay` does (running `reconcile` again reads the
/// results of the commands it sent). Exit status: 0 nothing drifted, or every fix was
/// sent (or verified); 1 the ledger could not be read; 2 usage; 3 a fix did not go.
pub async fn run(args: Args) -> ExitCode {
    let env = match EnvSettings::from_env() {
        Ok(env) => EnvSettings {
            dlq_url: None,
            ..env
        },
        Err(e) => return usage(e.to_string()),
    };
    let account = match args.account.as_deref().map(AccountId::parse).transpose() {
        Ok(a) => a,
        Err(e) => return usage(e),
    };
    let sdk = load_sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let query = DynamoLedgerQuery::new(ddb.clone(), &env.ledger_table);
    let config = DynamoConfigStore::new(ddb, env.config_table.clone());
    let sessions = AwsSessions::new(sdk.clone());
    let ports = ReconcilePorts {
        query: &query,
        config: &config,
        sessions: &sessions,
    };
    let stale_after = Duration::from_secs(env.max_age_seconds.into());
    let findings = match find_drift(&ports, account.as_ref(), SystemTime::now(), stale_after).await
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("adjoin reconcile: {e}");
            return ExitCode::from(EXIT_FAILED);
        }
    };
    println!("{}", serde_json::to_string(&findings).unwrap_or_default());
    if args.dry_run || findings.drifted.is_empty() {
        return ExitCode::SUCCESS;
    }
    let mut batch = Vec::new();
    for drift in &findings.drifted {
        let ids = (
            AccountId::parse(&drift.account),
            Region::parse(&drift.region),
            InstanceId::parse(&drift.instance_id),
        );
        if let (Ok(account), Ok(region), Ok(instance)) = ids {
            batch.push(message(drift.fix.state(), &account, &region, &instance));
        }
    }
    let worker = build_worker(&sdk, &env, false);
    handle_and_print(&worker, batch.chunks(10).map(<[_]>::to_vec).collect()).await
}
