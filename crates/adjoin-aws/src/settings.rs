//! Runtime settings from the environment, shared by the Lambda and `adjoin replay`,
//! and the worker built from them.

use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;

use adjoin_core::cache::CachedConfig;
use adjoin_core::config::TagMatch;
use adjoin_core::ports::ConfigStore;
use adjoin_core::worker::{Ports, Settings, Worker, defaults};

use crate::error::Error;
use crate::{AwsSessions, Caching, Clients, DynamoConfigStore, DynamoLedger, SqsQueue};

/// Default tag of the AD tools host, when `ADJOIN_TOOLS_HOST_TAG_KEY`/`VALUE` are unset.
pub const DEFAULT_TOOLS_HOST_TAG: (&str, &str) = ("adjoin:role", "ad-tools");

/// Every environment variable the service reads, and nothing else: [`EnvSettings::from_lookup`]
/// takes its names from here. The deployment (the Lambda's environment in
/// `infra/central.yaml`) is checked against this list.
pub const VARIABLES: [&str; 12] = [
    "ADJOIN_CONFIG_TABLE",
    "ADJOIN_LEDGER_TABLE",
    "ADJOIN_TOOLS_HOST_TAG_KEY",
    "ADJOIN_TOOLS_HOST_TAG_VALUE",
    "ADJOIN_DLQ_URL",
    "ADJOIN_MAX_ATTEMPTS",
    "ADJOIN_MAX_AGE_SECONDS",
    "ADJOIN_JOIN_ATTEMPTS",
    "ADJOIN_CONCURRENCY",
    "ADJOIN_CONFIG_TTL_SECONDS",
    "ADJOIN_LEAVE_UNRECORDED",
    "ADJOIN_QUEUE_URL",
];

/// The settings the service reads from its environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvSettings {
    /// `ADJOIN_CONFIG_TABLE`
    pub config_table: String,
    /// `ADJOIN_LEDGER_TABLE`
    pub ledger_table: String,
    /// `ADJOIN_TOOLS_HOST_TAG_KEY`, `ADJOIN_TOOLS_HOST_TAG_VALUE`
    pub tools_host_tag: TagMatch,
    /// `ADJOIN_DLQ_URL`
    pub dlq_url: Option<String>,
    /// `ADJOIN_QUEUE_URL`: the domain-join queue, where scheduled reconciliation puts the
    /// events that were lost.
    pub queue_url: Option<String>,
    /// `ADJOIN_MAX_ATTEMPTS` (default 25)
    pub max_attempts: u32,
    /// `ADJOIN_MAX_AGE_SECONDS` (default 7200)
    pub max_age_seconds: u32,
    /// `ADJOIN_JOIN_ATTEMPTS` (default 3)
    pub join_attempts: u32,
    /// `ADJOIN_CONCURRENCY` (default 10)
    pub concurrency: usize,
    /// `ADJOIN_CONFIG_TTL_SECONDS` (default 60; 0 reads the item for every batch)
    pub config_ttl_seconds: u32,
    /// `ADJOIN_LEAVE_UNRECORDED` (`true`/`false`/`1`/`0`, default false)
    pub leave_unrecorded: bool,
}

impl EnvSettings {
    /// Reads the settings through `var` (`std::env::var` in the binaries).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let [
            config_table,
            ledger_table,
            tools_host_tag_key,
            tools_host_tag_value,
            dlq_url,
            max_attempts,
            max_age_seconds,
            join_attempts,
            concurrency,
            config_ttl_seconds,
            leave_unrecorded,
            queue_url,
        ] = VARIABLES;
        let var = |name: &str| var(name).filter(|v| !v.trim().is_empty());
        let number = |name: &'static str, default: u32| -> Result<u32, Error> {
            match var(name) {
                None => Ok(default),
                Some(v) => match v.trim().parse::<u32>() {
                    Ok(n) if n > 0 => Ok(n),
                    _ => Err(Error::InvalidSetting {
                        name,
                        reason: format!("{v:?} is not a positive whole number"),
                    }),
                },
            }
        };
        Ok(EnvSettings {
            config_table: var(config_table).ok_or(Error::MissingSetting(config_table))?,
            ledger_table: var(ledger_table).ok_or(Error::MissingSetting(ledger_table))?,
            tools_host_tag: TagMatch {
                key: var(tools_host_tag_key).unwrap_or_else(|| DEFAULT_TOOLS_HOST_TAG.0.to_owned()),
                value: var(tools_host_tag_value)
                    .unwrap_or_else(|| DEFAULT_TOOLS_HOST_TAG.1.to_owned()),
            },
            dlq_url: var(dlq_url),
            queue_url: var(queue_url),
            max_attempts: number(max_attempts, defaults::MAX_ATTEMPTS)?,
            max_age_seconds: number(max_age_seconds, defaults::MAX_AGE_SECONDS)?,
            join_attempts: number(join_attempts, defaults::JOIN_ATTEMPTS)?,
            concurrency: number(concurrency, defaults::CONCURRENCY)? as usize,
            config_ttl_seconds: match var(config_ttl_seconds) {
                None => defaults::CONFIG_TTL_SECONDS,
                Some(v) => v.trim().parse().map_err(|_| Error::InvalidSetting {
                    name: config_ttl_seconds,
                    reason: format!("{v:?} is not a whole number of seconds"),
                })?,
            },
            leave_unrecorded: match var(leave_unrecorded)
                .map(|v| v.trim().to_ascii_lowercase())
                .as_deref()
            {
                None | Some("false" | "0") => false,
                Some("true" | "1") => true,
                Some(v) => {
                    return Err(Error::InvalidSetting {
                        name: leave_unrecorded,
                        reason: format!("{v:?} is not true or false"),
                    });
                }
            },
        })
    }

    pub fn from_env() -> Result<Self, Error> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }
}

/// Builds the worker on the real AWS adapters. Clients are created here, once.
pub fn build_worker(sdk: &SdkConfig, env: &EnvSettings, dry_run: bool) -> Worker {
    build_worker_with(sdk, env, dry_run, &Clients::default(), Caching::On)
}

/// [`build_worker`] with the clients' interceptors and caching chosen (the benchmark
/// counts calls, and measures the service without any sharing as a baseline).
pub fn build_worker_with(
    sdk: &SdkConfig,
    env: &EnvSettings,
    dry_run: bool,
    clients: &Clients,
    caching: Caching,
) -> Worker {
    let dynamodb = clients.dynamodb(sdk);
    let config: Arc<dyn ConfigStore> = Arc::new(DynamoConfigStore::new(
        dynamodb.clone(),
        env.config_table.clone(),
    ));
    let config_ttl = Duration::from_secs(env.config_ttl_seconds.into());
    let ports = Ports {
        config: match caching {
            Caching::On if !config_ttl.is_zero() => Arc::new(CachedConfig::new(config, config_ttl)),
            _ => config,
        },
        sessions: Arc::new(AwsSessions::with(sdk.clone(), clients.clone(), caching)),
        ledger: Arc::new(DynamoLedger::new(dynamodb, env.ledger_table.clone())),
        queue: env.dlq_url.as_ref().map(|url| {
            Arc::new(SqsQueue::new(clients.sqs(sdk), url.clone()))
                as Arc<dyn adjoin_core::ports::Queue>
        }),
    };
    let mut settings = Settings::new(env.tools_host_tag.clone());
    settings.max_attempts = env.max_attempts;
    settings.max_age = Duration::from_secs(env.max_age_seconds.into());
    settings.join_attempts = env.join_attempts;
    settings.leave_unrecorded = env.leave_unrecorded;
    settings.concurrency = env.concurrency;
    settings.dry_run = dry_run;
    if caching == Caching::Off {
        settings.tools_host_ttl = Duration::ZERO;
    }
    Worker::new(ports, settings)
}

/// Scheduled reconciliation on the real adapters: the ledger against EC2, the lost
/// events put on the domain-join queue.
pub struct Reconciler {
    query: crate::admin::DynamoLedgerQuery,
    config: DynamoConfigStore,
    sessions: AwsSessions,
    queue: SqsQueue,
    queue_url: String,
    stale_after: Duration,
}

impl Reconciler {
    /// Finds the drift and enqueues each drifted instance's missed event.
    pub async fn run(
        &self,
        now: std::time::SystemTime,
    ) -> Result<adjoin_core::admin::reconcile::Findings, adjoin_core::Error> {
        let ports = adjoin_core::admin::reconcile::ReconcilePorts {
            query: &self.query,
            config: &self.config,
            sessions: &self.sessions,
        };
        adjoin_core::admin::reconcile::enqueue_drift(
            &ports,
            &self.queue,
            &self.queue_url,
            now,
            self.stale_after,
        )
        .await
    }
}

/// The reconciler, when the environment names the queue (`ADJOIN_QUEUE_URL`).
pub fn build_reconciler(sdk: &SdkConfig, env: &EnvSettings) -> Option<Reconciler> {
    let queue_url = env.queue_url.clone()?;
    let clients = Clients::default();
    let dynamodb = clients.dynamodb(sdk);
    Some(Reconciler {
        query: crate::admin::DynamoLedgerQuery::new(dynamodb.clone(), &env.ledger_table),
        config: DynamoConfigStore::new(dynamodb, env.config_table.clone()),
        sessions: AwsSessions::with(sdk.clone(), clients.clone(), Caching::On),
        queue: SqsQueue::new(clients.sqs(sdk), env.dlq_url.clone().unwrap_or_default()),
        queue_url,
        stale_after: Duration::from_secs(env.max_age_seconds.into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_come_from_the_environment_with_defaults() {
        let s = EnvSettings::from_lookup(|n| match n {
            "ADJOIN_CONFIG_TABLE" => Some("cfg".to_owned()),
            "ADJOIN_LEDGER_TABLE" => Some("ledger".to_owned()),
            _ => None,
        })
        .expect("valid");
        assert_eq!(
            (s.config_table.as_str(), s.ledger_table.as_str()),
            ("cfg", "ledger")
        );
        assert_eq!(s.tools_host_tag.key, "adjoin:role");
        assert_eq!(
            (s.max_attempts, s.max_age_seconds, s.join_attempts),
            (25, 7200, 3)
        );
        assert_eq!(s.dlq_url, None);
    }

    #[test]
    fn exactly_the_listed_variables_are_read() {
        let asked = std::cell::RefCell::new(Vec::new());
        EnvSettings::from_lookup(|name| {
            asked.borrow_mut().push(name.to_owned());
            Some("1".to_owned())
        })
        .expect("valid");
        let mut asked = asked.into_inner();
        asked.sort();
        asked.dedup();
        let mut listed = VARIABLES.map(str::to_owned).to_vec();
        listed.sort();
        assert_eq!(asked, listed);
    }

    #[test]
    fn missing_and_bad_settings_are_named() {
        let e = EnvSettings::from_lookup(|_| None).expect_err("missing");
        assert!(e.to_string().contains("ADJOIN_CONFIG_TABLE"));
        let e = EnvSettings::from_lookup(|n| (n == "ADJOIN_CONFIG_TABLE").then(|| "t".into()))
            .expect_err("missing");
        assert!(e.to_string().contains("ADJOIN_LEDGER_TABLE"));
        let e = EnvSettings::from_lookup(|n| match n {
            "ADJOIN_CONFIG_TABLE" | "ADJOIN_LEDGER_TABLE" => Some("t".into()),
            "ADJOIN_MAX_ATTEMPTS" => Some("zero".into()),
            _ => None,
        })
        .expect_err("bad");
        assert!(e.to_string().contains("ADJOIN_MAX_ATTEMPTS"));
    }

    /// The `Default:` of a top-level parameter of a template.
    fn parameter_default(template: &str, parameter: &str) -> Option<String> {
        let start = template.find(&format!("\n  {parameter}:\n"))?;
        template
            .get(start + 1..)?
            .lines()
            .skip(1)
            .take_while(|l| l.starts_with("    "))
            .find_map(|l| l.trim().strip_prefix("Default:"))
            .map(|v| v.trim().trim_matches('"').to_owned())
    }

    #[test]
    fn the_central_stack_and_the_readme_state_the_code_defaults() {
        let template = include_str!("../../../infra/central.yaml");
        let readme = include_str!("../../../README.md");
        // Each default: the code's value, the stack parameter and the variable that carry
        // it (the README states the variables' defaults; Concurrency is the stack's only).
        for (value, parameter, variable) in [
            (
                defaults::MAX_ATTEMPTS,
                "MaxAttempts",
                Some("ADJOIN_MAX_ATTEMPTS"),
            ),
            (
                defaults::MAX_AGE_SECONDS,
                "MaxAgeSeconds",
                Some("ADJOIN_MAX_AGE_SECONDS"),
            ),
            (
                defaults::JOIN_ATTEMPTS,
                "JoinAttempts",
                Some("ADJOIN_JOIN_ATTEMPTS"),
            ),
            (defaults::CONCURRENCY, "Concurrency", None),
            (
                defaults::CONFIG_TTL_SECONDS,
                "ConfigTtlSeconds",
                Some("ADJOIN_CONFIG_TTL_SECONDS"),
            ),
        ] {
            assert_eq!(
                parameter_default(template, parameter),
                Some(value.to_string()),
                "central.yaml parameter {parameter}"
            );
            let Some(variable) = variable else { continue };
            let stated = readme.match_indices(variable).any(|(at, _)| {
                readme
                    .get(at..)
                    .and_then(|rest| rest.lines().next())
                    .is_some_and(|line| {
                        line.contains(&format!("(default {value}"))
                            || line.contains(&format!("({value})"))
                    })
            });
            assert!(stated, "the README states {variable}'s default as {value}");
        }
        for parameter in ["MaxAttempts", "MaxReceiveCount"] {
            let value = parameter_default(template, parameter).expect("a default");
            assert!(
                readme.contains(&format!("`{parameter}` ({value})")),
                "the README states {parameter}'s default as {value}"
            );
        }
    }
}
