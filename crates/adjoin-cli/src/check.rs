//! `adjoin check`: the preflight of one instance.

use std::process::ExitCode;

use adjoin_aws::admin::AwsAdminSessions;
use adjoin_aws::settings::DEFAULT_TOOLS_HOST_TAG;
use adjoin_aws::{AwsSessions, DynamoConfigStore, load_sdk_config};
use adjoin_core::admin::checks::{self, CheckPorts};
use adjoin_core::config::TagMatch;

use crate::{EXIT_FAILED, EXIT_USAGE, home_region, print_report};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    which: crate::InstanceArgs,
    /// The config table (partition key accountId).
    #[arg(long, env = "ADJOIN_CONFIG_TABLE", hide_env_values = true)]
    table: Option<String>,
    /// The tag key of the AD tools host (an item's toolsHostTag overrides it).
    #[arg(long, env = "ADJOIN_TOOLS_HOST_TAG_KEY", default_value = DEFAULT_TOOLS_HOST_TAG.0)]
    tools_host_tag_key: String,
    /// The tag value of the AD tools host.
    #[arg(long, env = "ADJOIN_TOOLS_HOST_TAG_VALUE", default_value = DEFAULT_TOOLS_HOST_TAG.1)]
    tools_host_tag_value: String,
}

pub async fn run(args: Args) -> ExitCode {
    let Some(table) = args.table.filter(|t| !t.trim().is_empty()) else {
        eprintln!("adjoin check: environment variable ADJOIN_CONFIG_TABLE (or --table) is not set");
        return ExitCode::from(EXIT_USAGE);
    };
    let sdk = load_sdk_config().await;
    let region = match home_region(&sdk, args.which.region.as_deref()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("adjoin check: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let store = DynamoConfigStore::new(aws_sdk_dynamodb::Client::new(&sdk), table);
    let sessions = AwsSessions::new(sdk.clone());
    let admin = AwsAdminSessions::new(sdk);
    let ports = CheckPorts {
        config: &store,
        sessions: &sessions,
        admin: &admin,
    };
    let tag = TagMatch {
        key: args.tools_host_tag_key,
        value: args.tools_host_tag_value,
    };
    let report = checks::preflight(
        &ports,
        &args.which.account,
        &args.which.instance,
        &region,
        &tag,
    )
    .await;
    print_report(&report);
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_FAILED)
    }
}
