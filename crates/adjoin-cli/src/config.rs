//! `adjoin config`: write, read, list, validate and delete account config items.

use std::io::{IsTerminal as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use adjoin_aws::admin::{AwsAdminSessions, DynamoConfigAdmin};
use adjoin_aws::{AwsSessions, DynamoConfigStore, load_sdk_config};
use adjoin_core::admin::ConfigAdmin as _;
use adjoin_core::admin::checks::{self, CheckPorts};
use adjoin_core::config::{AccountConfig, ConfigItem};
use adjoin_core::ids::AccountId;
use adjoin_core::ports::ConfigStore as _;
use serde_json::{Value, json};

use crate::{EXIT_FAILED, EXIT_USAGE, home_region, print_report, table};

#[derive(clap::Args)]
pub struct Args {
    /// The config table (partition key accountId).
    #[arg(
        long,
        env = "ADJOIN_CONFIG_TABLE",
        global = true,
        hide_env_values = true
    )]
    table: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Write an account's config item, from flags or a file (flags win).
    ///
    /// The item is checked as the service reads it before anything is written; an invalid
    /// item is refused with every problem listed. Exit status: 0 written, 1 refused or
    /// not written, 2 usage errors.
    Put(Box<PutArgs>),
    /// Print an account's config item as JSON.
    ///
    /// Exit status: 0 printed, 1 no item (or the table cannot be read), 2 usage errors.
    Get {
        /// The member account id.
        account: String,
    },
    /// List the config items: a table of account, dnsName and role, or JSON lines.
    ///
    /// Exit status: 0 listed, 1 the table cannot be read, 2 usage errors.
    List {
        /// One JSON line per item, every attribute.
        #[arg(long)]
        json: bool,
    },
    /// Check an account's item, its role and its password reference, one line per check.
    ///
    /// Assumes the item's role (with its external id) and looks up the password parameter
    /// (SSM DescribeParameters) or secret (Secrets Manager DescribeSecret) without reading
    /// its value. Exit status: 0 every check passed, 1 any did not, 2 usage errors.
    Validate {
        /// The member account id.
        account: String,
        /// Region where a password parameter given by name is looked for (default: the
        /// AWS_REGION of the environment).
        #[arg(long)]
        region: Option<String>,
    },
    /// Delete an account's config item.
    ///
    /// Exit status: 0 deleted, 1 there was none (or it cannot be deleted), 2 usage errors.
    Delete {
        /// The member account id.
        account: String,
    },
}

#[derive(clap::Args)]
struct PutArgs {
    /// Read the item from a TOML (.toml) or JSON (.json) file with the table's attribute names.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// accountId: the member account.
    #[arg(long)]
    account_id: Option<String>,
    /// dnsName: the directory's DNS name.
    #[arg(long)]
    dns_name: Option<String>,
    /// dnsIP1: the first domain controller's IP (joins are pinned to it).
    #[arg(long)]
    dns_ip1: Option<String>,
    /// dnsIP2: a second domain controller's IP.
    #[arg(long)]
    dns_ip2: Option<String>,
    /// adJoinUserName: the delegated join user.
    #[arg(long)]
    join_user: Option<String>,
    /// adJoinUserPwParam: the SSM SecureString parameter (name or ARN) with the password.
    #[arg(long)]
    password_param: Option<String>,
    /// secretArn: a Secrets Manager secret {"username","password"} instead.
    #[arg(long)]
    secret_arn: Option<String>,
    /// assumeRoleARN: the role in the member account.
    #[arg(long)]
    role_arn: Option<String>,
    /// externalId: passed to AssumeRole.
    #[arg(long)]
    external_id: Option<String>,
    /// ouPath: the OU for computer objects.
    #[arg(long)]
    ou_path: Option<String>,
    /// computerGroups: an AD group the computers join (repeat for more).
    #[arg(long = "computer-group", value_name = "GROUP")]
    computer_groups: Vec<String>,
    /// computerNamePrefix: 1–6 characters.
    #[arg(long)]
    computer_name_prefix: Option<String>,
    /// installRdsSessionHost: Windows instances also get the RDS Session Host role.
    #[arg(long)]
    install_rds_session_host: Option<bool>,
    /// toolsHostTag: KEY=VALUE of this directory's AD tools host.
    #[arg(long, value_name = "KEY=VALUE")]
    tools_host_tag: Option<String>,
    /// commandLogGroup: CloudWatch Logs group for the commands' output.
    #[arg(long, value_name = "GROUP")]
    command_log_group: Option<String>,
    /// commandOutputBucket: S3 bucket for the commands' output.
    #[arg(long, value_name = "BUCKET")]
    command_output_bucket: Option<String>,
}

/// The item from the file, if any, with the flags' attributes over it.
fn item_of(args: &PutArgs) -> Result<ConfigItem, String> {
    let mut item = match &args.file {
        Some(path) => adjoin_core::config::normalized(&read_file(path)?),
        None => ConfigItem::new(),
    };
    let strings = [
        ("accountId", &args.account_id),
        ("dnsName", &args.dns_name),
        ("dnsIP1", &args.dns_ip1),
        ("dnsIP2", &args.dns_ip2),
        ("adJoinUserName", &args.join_user),
        ("adJoinUserPwParam", &args.password_param),
        ("secretArn", &args.secret_arn),
        ("assumeRoleARN", &args.role_arn),
        ("externalId", &args.external_id),
        ("ouPath", &args.ou_path),
        ("computerNamePrefix", &args.computer_name_prefix),
        ("toolsHostTag", &args.tools_host_tag),
        ("commandLogGroup", &args.command_log_group),
        ("commandOutputBucket", &args.command_output_bucket),
    ];
    for (name, value) in strings {
        if let Some(v) = value {
            item.insert(name.to_owned(), Value::String(v.clone()));
        }
    }
    if !args.computer_groups.is_empty() {
        item.insert("computerGroups".into(), json!(args.computer_groups));
    }
    if let Some(rds) = args.install_rds_session_host {
        item.insert("installRdsSessionHost".into(), Value::Bool(rds));
    }
    Ok(item)
}

fn read_file(path: &Path) -> Result<ConfigItem, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let value: Value = match path.extension().and_then(|e| e.to_str()) {
        Some("toml") => toml::from_str::<toml::Value>(&text)
            .map_err(|e| format!("{} is not TOML: {e}", path.display()))
            .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))?,
        Some("json") => serde_json::from_str(&text)
            .map_err(|e| format!("{} is not JSON: {e}", path.display()))?,
        _ => {
            return Err(format!(
                "{}: the file name must end in .toml or .json",
                path.display()
            ));
        }
    };
    match value {
        Value::Object(map) if is_dynamodb_json(&map) => from_dynamodb_json(map)
            .map_err(|e| format!("{}: DynamoDB JSON that cannot be read: {e}", path.display())),
        Value::Object(map) => Ok(map),
        _ => Err(format!(
            "{} does not hold one item (a table/object)",
            path.display()
        )),
    }
}

/// DynamoDB's typed JSON, as `aws dynamodb put-item --item file://…` takes it: every
/// value an object with one type key (`{"S": "…"}`, `{"L": […]}`, …).
fn is_dynamodb_json(item: &ConfigItem) -> bool {
    const TYPES: [&str; 10] = ["S", "N", "B", "BOOL", "NULL", "M", "L", "SS", "NS", "BS"];
    !item.is_empty()
        && item.values().all(|v| {
            v.as_object()
                .is_some_and(|o| o.len() == 1 && o.keys().all(|k| TYPES.contains(&k.as_str())))
        })
}

fn from_dynamodb_json(item: ConfigItem) -> Result<ConfigItem, String> {
    let typed: std::collections::HashMap<String, serde_dynamo::AttributeValue> =
        serde_json::from_value(Value::Object(item)).map_err(|e| e.to_string())?;
    match serde_dynamo::from_item::<_, Value>(typed).map_err(|e| e.to_string())? {
        Value::Object(map) => Ok(map),
        _ => Err("not an item".to_owned()),
    }
}

fn account_arg(command: &str, account: &str) -> Result<AccountId, ExitCode> {
    AccountId::parse(account).map_err(|e| {
        eprintln!("adjoin config {command}: {e}");
        ExitCode::from(EXIT_USAGE)
    })
}

pub async fn run(args: Args) -> ExitCode {
    let Some(table_name) = args.table.filter(|t| !t.trim().is_empty()) else {
        eprintln!(
            "adjoin config: environment variable ADJOIN_CONFIG_TABLE (or --table) is not set"
        );
        return ExitCode::from(EXIT_USAGE);
    };
    let sdk = load_sdk_config().await;
    let client = aws_sdk_dynamodb::Client::new(&sdk);
    let admin = DynamoConfigAdmin::new(client.clone(), &table_name);
    let store = DynamoConfigStore::new(client, &table_name);
    match args.command {
        Command::Put(put) => {
            let item = match item_of(&put) {
                Ok(item) => item,
                Err(e) => {
                    eprintln!("adjoin config put: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let account = match item.get("accountId").and_then(Value::as_str) {
                Some(a) => match AccountId::parse(a.trim()) {
                    Ok(a) => a,
                    Err(e) => {
                        eprintln!("adjoin config put: refused: {e}");
                        return ExitCode::from(EXIT_FAILED);
                    }
                },
                None => {
                    eprintln!("adjoin config put: refused: accountId is missing (--account-id)");
                    return ExitCode::from(EXIT_FAILED);
                }
            };
            if let Err(invalid) = AccountConfig::from_item(&item, &account) {
                eprintln!("adjoin config put: refused, nothing written; the item of {account}:");
                for p in &invalid.problems {
                    eprintln!("  ✗ {}\n      fix: {}", p.message, p.fix);
                }
                return ExitCode::from(EXIT_FAILED);
            }
            match admin.put(&item).await {
                Ok(()) => {
                    println!("config item of {account} written to {table_name}");
                    ExitCode::SUCCESS
                }
                Err(e) => failed("put", e),
            }
        }
        Command::Get { account } => {
            let account = match account_arg("get", &account) {
                Ok(a) => a,
                Err(code) => return code,
            };
            match store.get(&account).await {
                Ok(Some(item)) => {
                    println!(
                        "{}",
                        serde_json::to_string_pretty(&Value::Object(item)).unwrap_or_default()
                    );
                    ExitCode::SUCCESS
                }
                Ok(None) => {
                    eprintln!(
                        "adjoin config get: no config item for account {account} in {table_name}"
                    );
                    ExitCode::from(EXIT_FAILED)
                }
                Err(e) => failed("get", e),
            }
        }
        Command::List { json } => match admin.list().await {
            Ok(mut items) => {
                let key = |i: &ConfigItem| {
                    i.get("accountId")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned()
                };
                items.sort_by_key(key);
                let mut out = std::io::stdout().lock();
                if json {
                    for item in items {
                        let _ = writeln!(out, "{}", Value::Object(item));
                    }
                } else {
                    let attr = |i: &ConfigItem, name: &str| {
                        i.get(name).and_then(Value::as_str).unwrap_or("").to_owned()
                    };
                    let rows = items
                        .iter()
                        .map(|i| {
                            vec![
                                attr(i, "accountId"),
                                attr(i, "dnsName"),
                                attr(i, "assumeRoleARN"),
                            ]
                        })
                        .collect();
                    let _ = writeln!(
                        out,
                        "{}",
                        table(
                            &["account", "dnsName", "role"],
                            rows,
                            std::io::stdout().is_terminal()
                        )
                    );
                }
                ExitCode::SUCCESS
            }
            Err(e) => failed("list", e),
        },
        Command::Validate { account, region } => {
            let region = match home_region(&sdk, region.as_deref()) {
                Ok(r) => r,
                Err(e) => {
                    eprintln!("adjoin config validate: {e}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let sessions = AwsSessions::new(sdk.clone());
            let admin_sessions = AwsAdminSessions::new(sdk.clone());
            let ports = CheckPorts {
                config: &store,
                sessions: &sessions,
                admin: &admin_sessions,
            };
            let report = checks::validate(&ports, &account, &region).await;
            print_report(&report);
            if report.passed() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(EXIT_FAILED)
            }
        }
        Command::Delete { account } => {
            let account = match account_arg("delete", &account) {
                Ok(a) => a,
                Err(code) => return code,
            };
            match admin.delete(&account).await {
                Ok(true) => {
                    println!("config item of {account} deleted from {table_name}");
                    ExitCode::SUCCESS
                }
                Ok(false) => {
                    eprintln!(
                        "adjoin config delete: no config item for account {account} in {table_name}"
                    );
                    ExitCode::from(EXIT_FAILED)
                }
                Err(e) => failed("delete", e),
            }
        }
    }
}

fn failed(command: &str, e: adjoin_core::Error) -> ExitCode {
    eprintln!("adjoin config {command}: {e}");
    ExitCode::from(EXIT_FAILED)
}
