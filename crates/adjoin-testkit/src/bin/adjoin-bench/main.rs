//! `adjoin-bench [--bootstrap PATH]`: the real worker over generated batches against the
//! AWS API emulator, counting every AWS API call per service; then, with `--bootstrap`,
//! the release Lambda's cold start. `cargo xtask bench` builds and runs it.
//!
//! Scenarios (500 running events each, every event a new instance, each scenario with a
//! ledger table of its own), taken from a real SQS queue as the Lambda's event source
//! mapping hands them over:
//!
//! - one account, batches of 10, everything shared (the service as deployed);
//! - three accounts mixed, batches of 10;
//! - one account, batches of 1;
//! - one account, batches of 1, nothing shared: a new worker, new clients and no caches for
//!   every message (the baseline the shared modes are compared with).

mod calls;
mod cold_start;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use adjoin_aws::{Caching, Clients, EnvSettings, build_worker_with};
use adjoin_core::config::TagMatch;
use adjoin_core::outcome::Outcome;
use adjoin_core::worker::Message;
use adjoin_testkit::{Bed, HOME_ACCOUNT, Moto, event};
use aws_sdk_ssm::config::SharedInterceptor;

use calls::CallCounter;

const REGION: &str = "eu-west-1";
const EVENTS: usize = 500;
const ACCOUNTS: [&str; 3] = ["210000000001", "210000000002", "210000000003"];
const CONFIG_TABLE: &str = "bench-config";
const TOOLS_TAG: (&str, &str) = ("adjoin:role", "ad-tools");

struct Scenario {
    name: &'static str,
    accounts: usize,
    batch: usize,
    caching: Caching,
}

const SCENARIOS: [Scenario; 4] = [
    Scenario {
        name: "1 account, batch 10",
        accounts: 1,
        batch: 10,
        caching: Caching::On,
    },
    Scenario {
        name: "3 accounts, batch 10",
        accounts: 3,
        batch: 10,
        caching: Caching::On,
    },
    Scenario {
        name: "1 account, batch 1",
        accounts: 1,
        batch: 1,
        caching: Caching::On,
    },
    Scenario {
        name: "1 account, batch 1, no sharing",
        accounts: 1,
        batch: 1,
        caching: Caching::Off,
    },
];

struct Measured {
    calls: BTreeMap<String, u64>,
    events_per_second: f64,
    p50: Duration,
    p95: Duration,
    dispatched: usize,
}

fn env(ledger_table: &str, dlq: &str) -> EnvSettings {
    EnvSettings {
        config_table: CONFIG_TABLE.into(),
        ledger_table: ledger_table.into(),
        tools_host_tag: TagMatch {
            key: TOOLS_TAG.0.into(),
            value: TOOLS_TAG.1.into(),
        },
        dlq_url: Some(dlq.into()),
        queue_url: None,
        max_attempts: 25,
        max_age_seconds: 7200,
        join_attempts: 3,
        concurrency: 8,
        config_ttl_seconds: 60,
        leave_unrecorded: false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

async fn run(
    bed: &Bed,
    scenario: &Scenario,
    index: usize,
    instances: &BTreeMap<&str, Vec<String>>,
    dlq: &str,
) -> Result<Measured, String> {
    let fail = |e: adjoin_testkit::Error| e.to_string();
    let ledger = format!("bench-ledger-{index}");
    bed.create_table(&ledger, "instanceId")
        .await
        .map_err(fail)?;
    let queue = bed
        .create_queue(&format!("bench-events-{index}"))
        .await
        .map_err(fail)?;
    let accounts = &ACCOUNTS[..scenario.accounts];
    for k in 0..EVENTS {
        let account = accounts[k % accounts.len()];
        let id = &instances[account][k / accounts.len()];
        let body = event(account, REGION, id, "running").to_string();
        bed.send_message(&queue, &body).await.map_err(fail)?;
    }

    let sdk = bed.as_account(HOME_ACCOUNT, REGION).await.map_err(fail)?;
    let counter = CallCounter::default();
    let clients = Clients::default().with_interceptor(SharedInterceptor::new(counter.clone()));
    let settings = env(&ledger, dlq);
    let shared = build_worker_with(&sdk, &settings, false, &clients, scenario.caching);
    counter.take();

    let mut latencies = Vec::new();
    let mut dispatched = 0;
    let started = Instant::now();
    let mut handled = 0;
    while handled < EVENTS {
        let received = bed.receive(&queue).await.map_err(fail)?;
        if received.is_empty() {
            return Err(format!("the queue ran dry after {handled} messages"));
        }
        for batch in received.chunks(scenario.batch) {
            let t = Instant::now();
            let reports = if scenario.caching == Caching::On {
                shared.handle_batch(batch).await
            } else {
                build_worker_with(&sdk, &settings, false, &clients, Caching::Off)
                    .handle_batch(batch)
                    .await
            };
            latencies.push(t.elapsed());
            for (message, report) in batch.iter().zip(&reports) {
                dispatched += usize::from(report.outcome == Outcome::Dispatched);
                if !report.comes_back {
                    delete(bed, &queue, message).await?;
                }
            }
            handled += batch.len();
        }
    }
    let elapsed = started.elapsed();
    latencies.sort_unstable();
    Ok(Measured {
        calls: counter.take(),
        events_per_second: EVENTS as f64 / elapsed.as_secs_f64(),
        p50: percentile(&latencies, 0.50),
        p95: percentile(&latencies, 0.95),
        dispatched,
    })
}

async fn delete(bed: &Bed, queue: &str, message: &Message) -> Result<(), String> {
    match &message.receipt_handle {
        Some(handle) => bed
            .delete_message(queue, handle)
            .await
            .map_err(|e| e.to_string()),
        None => Ok(()),
    }
}

fn peak_rss_kib() -> Option<u64> {
    cold_start::vm_hwm(&std::fs::read_to_string("/proc/self/status").ok()?)
}

async fn seed(bed: &Bed) -> Result<(BTreeMap<&'static str, Vec<String>>, String), String> {
    let fail = |e: adjoin_testkit::Error| e.to_string();
    bed.create_table(CONFIG_TABLE, "accountId")
        .await
        .map_err(fail)?;
    let mut instances = BTreeMap::new();
    for (n, account) in ACCOUNTS.iter().enumerate() {
        bed.put_config(CONFIG_TABLE, &serde_json::json!({
            "accountId": account, "adJoinUserName": "svc-join", "adJoinUserPwParam": "/adjoin/join-password",
            "dnsName": "example.test", "dnsIP1": "10.200.0.1",
            "assumeRoleARN": format!("arn:aws:iam::{account}:role/adjoin-member"), "externalId": "bench"
        }))
        .await
        .map_err(fail)?;
        bed.create_documents(account, REGION).await.map_err(fail)?;
        // The single-account scenarios use the first account only.
        let count = if n == 0 { EVENTS } else { EVENTS / 3 + 1 };
        let ids = bed
            .run_instances(
                account,
                REGION,
                false,
                count,
                &[("adGroupName", "linux-admins")],
            )
            .await
            .map_err(fail)?;
        instances.insert(*account, ids);
    }
    bed.run_instance(HOME_ACCOUNT, REGION, false, &[TOOLS_TAG])
        .await
        .map_err(fail)?;
    bed.create_documents(HOME_ACCOUNT, REGION)
        .await
        .map_err(fail)?;
    let dlq = bed.create_queue("bench-dlq").await.map_err(fail)?;
    Ok((instances, dlq))
}

fn print_calls(calls: &BTreeMap<String, u64>) -> String {
    calls
        .iter()
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / EVENTS as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn bench(bootstrap: Option<PathBuf>) -> Result<(), String> {
    let moto = Moto::start_private().map_err(|e| e.to_string())?;
    let bed = Bed::new(&moto, REGION).await;
    eprintln!("bench: AWS API emulator on {}; seeding", moto.endpoint());
    let (instances, dlq) = seed(&bed).await?;

    println!(
        "{:<32} {:>10} {:>9} {:>10} {:>10} {:>10}",
        "scenario (500 running events)",
        "calls/evt",
        "events/s",
        "p50 batch",
        "p95 batch",
        "dispatched"
    );
    let mut rates = Vec::new();
    let mut details = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let m = run(&bed, scenario, index, &instances, &dlq).await?;
        let total: u64 = m.calls.values().sum();
        println!(
            "{:<32} {:>10.2} {:>9.1} {:>8.1}ms {:>8.1}ms {:>10}",
            scenario.name,
            total as f64 / EVENTS as f64,
            m.events_per_second,
            m.p50.as_secs_f64() * 1e3,
            m.p95.as_secs_f64() * 1e3,
            m.dispatched
        );
        details.push(format!("  {}: {}", scenario.name, print_calls(&m.calls)));
        rates.push(m.events_per_second);
    }
    println!("\ncalls per event, by operation:");
    for line in details {
        println!("{line}");
    }
    println!(
        "\nshared (1 account, batch 10) over no sharing (batch 1): {:.1}x events/s",
        rates[0] / rates[3]
    );
    if let Some(kib) = peak_rss_kib() {
        println!(
            "peak RSS of this process (worker, SDK clients, bench): {:.1} MiB",
            kib as f64 / 1024.0
        );
    }

    if let Some(bootstrap) = bootstrap {
        let mut env: Vec<(String, String)> = moto
            .env(REGION)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let settings = env_vars(&bed, &instances, &dlq).await?;
        env.extend(settings.0);
        let measured = cold_start::measure(&bootstrap, &env, &settings.1)?;
        println!("\ncold start of {}:", bootstrap.display());
        println!(
            "  process start -> first /next poll: {:.1} ms",
            measured.init.as_secs_f64() * 1e3
        );
        println!(
            "  10-record batch -> response:       {:.1} ms ({} batch item failures: joins come back to be verified)",
            measured.first_event.as_secs_f64() * 1e3,
            measured.response.matches("itemIdentifier").count()
        );
        let outcomes: Vec<String> = measured
            .outcomes
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(k, n)| format!("{} {n}", k.to_lowercase()))
            .collect();
        println!(
            "  outcomes (from its metrics lines):  {}",
            outcomes.join(", ")
        );
        if let Some(kib) = measured.peak_rss_kib {
            println!(
                "  peak RSS after the batch:          {:.1} MiB",
                kib as f64 / 1024.0
            );
        }
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target/lambda");
    for arch in ["arm64", "x86_64"] {
        let zip = root.join(format!("adjoin-lambda-{arch}.zip"));
        if let Ok(meta) = std::fs::metadata(&zip) {
            println!("zip {}: {:.2} MB", zip.display(), meta.len() as f64 / 1e6);
        }
    }
    Ok(())
}

/// The Lambda's environment and a 10-record SQS event for fresh instances.
async fn env_vars(
    bed: &Bed,
    instances: &BTreeMap<&'static str, Vec<String>>,
    dlq: &str,
) -> Result<(Vec<(String, String)>, String), String> {
    let ledger = "bench-ledger-cold";
    bed.create_table(ledger, "instanceId")
        .await
        .map_err(|e| e.to_string())?;
    let account = ACCOUNTS[1];
    let records: Vec<_> = instances[account][..10]
        .iter()
        .enumerate()
        .map(|(i, id)| {
            serde_json::json!({
                "messageId": format!("cold-{i}"),
                "receiptHandle": format!("cold-{i}"),
                "body": event(account, REGION, id, "running").to_string(),
                "attributes": {"ApproximateReceiveCount": "1"},
                "eventSource": "aws:sqs",
                "eventSourceARN": format!("arn:aws:sqs:{REGION}:{HOME_ACCOUNT}:bench-cold"),
                "awsRegion": REGION
            })
        })
        .collect();
    let vars = vec![
        ("ADJOIN_CONFIG_TABLE".to_owned(), CONFIG_TABLE.to_owned()),
        ("ADJOIN_LEDGER_TABLE".to_owned(), ledger.to_owned()),
        ("ADJOIN_DLQ_URL".to_owned(), dlq.to_owned()),
    ];
    Ok((vars, serde_json::json!({ "Records": records }).to_string()))
}

#[tokio::main]
async fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let bootstrap = match (args.next().as_deref(), args.next()) {
        (None, _) => None,
        (Some("--bootstrap"), Some(path)) => Some(PathBuf::from(path)),
        _ => {
            eprintln!("usage: adjoin-bench [--bootstrap PATH-TO-THE-RELEASE-bootstrap]");
            return ExitCode::from(2);
        }
    };
    match bench(bootstrap).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let sorted: Vec<Duration> = (1..=20).map(Duration::from_millis).collect();
        assert_eq!(percentile(&sorted, 0.50), Duration::from_millis(10));
        assert_eq!(percentile(&sorted, 0.95), Duration::from_millis(19));
        assert_eq!(percentile(&[], 0.95), Duration::ZERO);
    }
}
