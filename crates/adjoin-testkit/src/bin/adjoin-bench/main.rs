//! `adjoin-bench [--latency-ms N] [--events N] [--bootstrap PATH]`: the real worker over
//! generated batches against the AWS API emulator, counting every AWS API call per
//! operation; then, with `--bootstrap`, the release Lambda's cold start. `cargo xtask
//! bench` builds and runs it, at 0 and at 30 ms per call.
//!
//! `--latency-ms` adds that much time to every AWS call (the emulator answers at once; a
//! real endpoint does not), so that waiting on calls counts as it does against AWS.
//!
//! First deliveries (`--events` running events each, 500 by default; every event a new
//! instance of the scenario's own, each scenario with a ledger table of its own), taken
//! from a real SQS queue as the Lambda's event source mapping hands them over:
//!
//! - one account, batches of 10, everything shared (the service as deployed), staged
//!   joins (the default) and joins with the shared password;
//! - three accounts mixed, batches of 10;
//! - one account, batches of 1;
//! - one account, batches of 1, nothing shared: a new worker, new clients and no caches for
//!   every message (the baseline the shared modes are compared with).
//!
//! Whole lifecycles (100 instances, batches of 10, staged and shared password): the
//! running events, each message coming back at once to verify what it sent (the join's
//! stage, the join, its result) until every one is done; then the instances terminate and
//! their terminated events are handled the same way (the leave and its result). Calls are
//! counted per instance over all of it.

mod calls;
mod cold_start;
mod latency;
mod lost;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use adjoin_aws::{Caching, Clients, EnvSettings, build_worker_with};
use adjoin_core::config::TagMatch;
use adjoin_core::outcome::Outcome;
use adjoin_core::worker::{Message, Worker};
use adjoin_testkit::{Bed, HOME_ACCOUNT, Moto, event};
use aws_config::SdkConfig;
use aws_sdk_ssm::config::SharedInterceptor;

use calls::CallCounter;

const REGION: &str = "eu-west-1";
/// Staged joins (the default).
const ACCOUNTS: [&str; 3] = ["210000000001", "210000000002", "210000000003"];
/// Joins with the shared join password.
const SHARED: &str = "210000000004";
const CONFIG_TABLE: &str = "bench-config";
const TOOLS_TAG: (&str, &str) = ("adjoin:role", "ad-tools");
const LIFECYCLE_INSTANCES: usize = 100;

struct Scenario {
    name: &'static str,
    accounts: &'static [&'static str],
    batch: usize,
    caching: Caching,
}

const SCENARIOS: [Scenario; 5] = [
    Scenario {
        name: "1 account, batch 10",
        accounts: &[ACCOUNTS[0]],
        batch: 10,
        caching: Caching::On,
    },
    Scenario {
        name: "1 account, batch 10, shared pw",
        accounts: &[SHARED],
        batch: 10,
        caching: Caching::On,
    },
    Scenario {
        name: "3 accounts, batch 10",
        accounts: &ACCOUNTS,
        batch: 10,
        caching: Caching::On,
    },
    Scenario {
        name: "1 account, batch 1",
        accounts: &[ACCOUNTS[0]],
        batch: 1,
        caching: Caching::On,
    },
    Scenario {
        name: "1 account, batch 1, no sharing",
        accounts: &[ACCOUNTS[0]],
        batch: 1,
        caching: Caching::Off,
    },
];

/// What the bench was asked for.
struct Options {
    bootstrap: Option<PathBuf>,
    latency: Duration,
    events: usize,
}

/// The bed, the service's SDK configuration (with the latency) and the call counter.
struct Rig {
    bed: Bed,
    sdk: SdkConfig,
    clients: Clients,
    counter: CallCounter,
    dlq: String,
}

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
        concurrency: 10,
        config_ttl_seconds: 60,
        leave_unrecorded: false,
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let rank = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len().max(1));
    sorted.get(rank - 1).copied().unwrap_or_default()
}

fn fail(e: adjoin_testkit::Error) -> String {
    e.to_string()
}

impl Rig {
    fn worker(&self, ledger: &str, caching: Caching) -> Worker {
        build_worker_with(
            &self.sdk,
            &env(ledger, &self.dlq),
            false,
            &self.clients,
            caching,
        )
    }

    /// `per_account` new running instances in each of `accounts`, for one scenario.
    async fn instances(
        &self,
        accounts: &[&'static str],
        per_account: usize,
    ) -> Result<Vec<(&'static str, String)>, String> {
        let mut all = Vec::new();
        for account in accounts {
            let ids = self
                .bed
                .run_instances(
                    account,
                    REGION,
                    false,
                    per_account,
                    &[("adGroupName", "linux-admins")],
                )
                .await
                .map_err(fail)?;
            all.push(ids.into_iter().map(|id| (*account, id)).collect::<Vec<_>>());
        }
        // Accounts interleaved, as events from several accounts arrive.
        let mut mixed = Vec::new();
        for k in 0..per_account {
            for ids in &all {
                if let Some(one) = ids.get(k) {
                    mixed.push(one.clone());
                }
            }
        }
        Ok(mixed)
    }

    async fn queue(&self, name: &str, bodies: &[String]) -> Result<String, String> {
        let queue = self.bed.create_queue(name).await.map_err(fail)?;
        for body in bodies {
            self.bed.send_message(&queue, body).await.map_err(fail)?;
        }
        Ok(queue)
    }

    /// The first deliveries of `scenario`'s running events.
    async fn first_deliveries(
        &self,
        scenario: &Scenario,
        index: usize,
        events: usize,
    ) -> Result<Measured, String> {
        let ledger = format!("bench-ledger-{index}");
        self.bed
            .create_table(&ledger, "instanceId")
            .await
            .map_err(fail)?;
        let per_account = events.div_ceil(scenario.accounts.len());
        let instances = self.instances(scenario.accounts, per_account).await?;
        let bodies: Vec<String> = instances[..events]
            .iter()
            .map(|(account, id)| event(account, REGION, id, "running").to_string())
            .collect();
        let queue = self
            .queue(&format!("bench-events-{index}"), &bodies)
            .await?;
        let shared = self.worker(&ledger, scenario.caching);
        self.counter.take();

        let mut latencies = Vec::new();
        let mut dispatched = 0;
        let started = Instant::now();
        let mut handled = 0;
        while handled < events {
            let received = self.bed.receive(&queue).await.map_err(fail)?;
            if received.is_empty() {
                return Err(format!("the queue ran dry after {handled} messages"));
            }
            for batch in received.chunks(scenario.batch) {
                let t = Instant::now();
                let reports = match scenario.caching {
                    Caching::On => shared.handle_batch(batch).await,
                    Caching::Off => self.worker(&ledger, Caching::Off).handle_batch(batch).await,
                };
                latencies.push(t.elapsed());
                for (message, report) in batch.iter().zip(&reports) {
                    dispatched += usize::from(report.outcome == Outcome::Dispatched);
                    if !report.comes_back {
                        delete(&self.bed, &queue, message).await?;
                    }
                }
                handled += batch.len();
            }
        }
        let elapsed = started.elapsed();
        latencies.sort_unstable();
        Ok(Measured {
            calls: self.counter.take(),
            events_per_second: events as f64 / elapsed.as_secs_f64(),
            p50: percentile(&latencies, 0.50),
            p95: percentile(&latencies, 0.95),
            dispatched,
        })
    }

    /// Running events whose SendCommand answers are lost one in `every` (the command
    /// was created): how many join commands each instance got.
    async fn lost_answers(
        &self,
        every: u64,
        events: usize,
    ) -> Result<(u64, usize, BTreeMap<usize, usize>), String> {
        let ledger = "bench-ledger-lost";
        self.bed
            .create_table(ledger, "instanceId")
            .await
            .map_err(fail)?;
        let instances = self.instances(&[SHARED], events).await?;
        let bodies: Vec<String> = instances
            .iter()
            .map(|(account, id)| event(account, REGION, id, "running").to_string())
            .collect();
        let queue = self.queue("bench-lost", &bodies).await?;
        let lose = lost::LoseAnswers::every(every);
        let clients = Clients::default().with_interceptor(SharedInterceptor::new(lose.clone()));
        let worker = build_worker_with(
            &self.sdk,
            &env(ledger, &self.dlq),
            false,
            &clients,
            Caching::On,
        );
        let mut handled = 0;
        let mut dispatched = 0;
        while handled < events {
            let received = self.bed.receive(&queue).await.map_err(fail)?;
            if received.is_empty() {
                return Err(format!("the queue ran dry after {handled} messages"));
            }
            let reports = worker.handle_batch(&received).await;
            dispatched += reports
                .iter()
                .filter(|r| r.outcome == Outcome::Dispatched)
                .count();
            handled += received.len();
        }
        // Join commands per instance (the scenario's instances are its own).
        let mut per_instance: BTreeMap<String, usize> = BTreeMap::new();
        for command in self
            .bed
            .commands(SHARED, REGION)
            .await
            .map_err(fail)?
            .iter()
        {
            for id in command.values_by_instance().into_keys() {
                *per_instance.entry(id).or_default() += 1;
            }
        }
        let mut histogram = BTreeMap::new();
        for (_, id) in &instances {
            *histogram
                .entry(per_instance.get(id).copied().unwrap_or(0))
                .or_default() += 1;
        }
        Ok((lose.lost(), dispatched, histogram))
    }

    /// Whole lifecycles of `LIFECYCLE_INSTANCES` instances of `account`: joined and
    /// verified, then terminated and left. The calls over all of it, and the time.
    async fn lifecycle(
        &self,
        name: &str,
        account: &'static str,
    ) -> Result<(BTreeMap<String, u64>, Duration), String> {
        let ledger = format!("bench-ledger-{name}");
        self.bed
            .create_table(&ledger, "instanceId")
            .await
            .map_err(fail)?;
        let instances = self.instances(&[account], LIFECYCLE_INSTANCES).await?;
        // Messages come back at once to verify what they sent.
        let worker = self.worker(&ledger, Caching::On).with(|s| {
            s.verify_after = Duration::ZERO;
            s.max_backoff = Duration::ZERO;
        });
        self.counter.take();
        let started = Instant::now();
        for state in ["running", "terminated"] {
            if state == "terminated" {
                for (account, id) in &instances {
                    self.bed
                        .terminate_instance(account, REGION, id)
                        .await
                        .map_err(fail)?;
                }
            }
            let bodies: Vec<String> = instances
                .iter()
                .map(|(account, id)| event(account, REGION, id, state).to_string())
                .collect();
            // The bed's own calls (instances, queue) are not the service's: not counted.
            let queue = self
                .queue(&format!("bench-lifecycle-{name}-{state}"), &bodies)
                .await?;
            self.drain(&worker, &queue, bodies.len()).await?;
        }
        Ok((self.counter.take(), started.elapsed()))
    }

    /// Hands the queue's messages to `worker` in batches of ten until all `count` are
    /// done (deleted once the worker is through with them).
    async fn drain(&self, worker: &Worker, queue: &str, count: usize) -> Result<(), String> {
        let mut done = 0;
        let mut idle = 0;
        while done < count {
            let received = self.bed.receive(queue).await.map_err(fail)?;
            if received.is_empty() {
                idle += 1;
                if idle > 50 {
                    return Err(format!("{} messages never finished", count - done));
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
            idle = 0;
            let reports = worker.handle_batch(&received).await;
            for (message, report) in received.iter().zip(&reports) {
                if matches!(report.outcome, Outcome::Rejected | Outcome::Failed) {
                    return Err(format!("{}: {}", report.message_id, report.reason));
                }
                if !report.comes_back {
                    delete(&self.bed, queue, message).await?;
                    done += 1;
                }
            }
        }
        Ok(())
    }
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

async fn seed(bed: &Bed) -> Result<String, String> {
    bed.create_table(CONFIG_TABLE, "accountId")
        .await
        .map_err(fail)?;
    for account in ACCOUNTS.iter().chain([&SHARED]) {
        let mut item = serde_json::json!({
            "accountId": account, "adJoinUserName": "svc-join", "adJoinUserPwParam": "/adjoin/join-password",
            "dnsName": "example.test", "dnsIP1": "10.200.0.1",
            "assumeRoleARN": format!("arn:aws:iam::{account}:role/adjoin-member"), "externalId": "bench"
        });
        if *account == SHARED {
            item["joinMode"] = serde_json::json!("sharedPassword");
        }
        bed.put_config(CONFIG_TABLE, &item).await.map_err(fail)?;
        bed.create_documents(account, REGION).await.map_err(fail)?;
    }
    bed.run_instance(HOME_ACCOUNT, REGION, false, &[TOOLS_TAG])
        .await
        .map_err(fail)?;
    bed.create_documents(HOME_ACCOUNT, REGION)
        .await
        .map_err(fail)?;
    bed.create_queue("bench-dlq").await.map_err(fail)
}

fn print_calls(calls: &BTreeMap<String, u64>, per: usize) -> String {
    calls
        .iter()
        .map(|(k, v)| format!("{k} {:.2}", *v as f64 / per as f64))
        .collect::<Vec<_>>()
        .join(", ")
}

async fn bench(options: Options) -> Result<(), String> {
    let moto = Moto::start_private().map_err(|e| e.to_string())?;
    let bed = Bed::new(&moto, REGION).await;
    eprintln!("bench: AWS API emulator on {}; seeding", moto.endpoint());
    let dlq = seed(&bed).await?;
    let counter = CallCounter::default();
    let clients = Clients::default().with_interceptor(SharedInterceptor::new(counter.clone()));
    let home = bed.as_account(HOME_ACCOUNT, REGION).await.map_err(fail)?;
    let sdk = latency::with_latency(home, options.latency);
    let rig = Rig {
        bed,
        sdk,
        clients,
        counter,
        dlq,
    };
    let ms = options.latency.as_millis();

    println!(
        "first deliveries, {} running events per scenario, {ms} ms per AWS call:",
        options.events
    );
    println!(
        "{:<32} {:>10} {:>9} {:>10} {:>10} {:>10}",
        "scenario", "calls/evt", "events/s", "p50 batch", "p95 batch", "dispatched"
    );
    let mut rates = Vec::new();
    let mut details = Vec::new();
    for (index, scenario) in SCENARIOS.iter().enumerate() {
        let m = rig
            .first_deliveries(scenario, index, options.events)
            .await?;
        let total: u64 = m.calls.values().sum();
        println!(
            "{:<32} {:>10.2} {:>9.1} {:>8.1}ms {:>8.1}ms {:>10}",
            scenario.name,
            total as f64 / options.events as f64,
            m.events_per_second,
            m.p50.as_secs_f64() * 1e3,
            m.p95.as_secs_f64() * 1e3,
            m.dispatched
        );
        details.push(format!(
            "  {}: {}",
            scenario.name,
            print_calls(&m.calls, options.events)
        ));
        rates.push(m.events_per_second);
    }
    println!("calls per event, by operation:");
    for line in details {
        println!("{line}");
    }
    println!(
        "events/s over no sharing (batch 1), {ms} ms per call: staged batch 10 {:.1}x, shared password batch 10 {:.1}x",
        rates[0] / rates[4],
        rates[1] / rates[4]
    );

    println!(
        "\nwhole lifecycles ({LIFECYCLE_INSTANCES} instances, batch 10: join, its verification, leave, its verification), {ms} ms per AWS call:"
    );
    for (name, account) in [("staged", ACCOUNTS[0]), ("shared password", SHARED)] {
        let (calls, took) = rig.lifecycle(&name.replace(' ', "-"), account).await?;
        let total: u64 = calls.values().sum();
        println!(
            "  {name}: {:.2} calls per instance ({:.1} s): {}",
            total as f64 / LIFECYCLE_INSTANCES as f64,
            took.as_secs_f64(),
            print_calls(&calls, LIFECYCLE_INSTANCES)
        );
    }
    let (lost, dispatched, histogram) = rig.lost_answers(3, 100).await?;
    let histogram: Vec<String> = histogram
        .iter()
        .map(|(commands, instances)| {
            format!("{instances} instance(s) with {commands} join command(s)")
        })
        .collect();
    println!(
        "\nambiguous failures (100 running events, batch 10, shared password; one SendCommand answer in 3 replaced by an HTTP 500 after the command was created): {lost} answers lost; {dispatched} dispatched; {}",
        histogram.join(", ")
    );
    if let Some(kib) = peak_rss_kib() {
        println!(
            "\npeak RSS of this process (worker, SDK clients, bench): {:.1} MiB",
            kib as f64 / 1024.0
        );
    }

    if let Some(bootstrap) = options.bootstrap {
        let mut env: Vec<(String, String)> = moto
            .env(REGION)
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        let settings = env_vars(&rig).await?;
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
async fn env_vars(rig: &Rig) -> Result<(Vec<(String, String)>, String), String> {
    let ledger = "bench-ledger-cold";
    rig.bed
        .create_table(ledger, "instanceId")
        .await
        .map_err(fail)?;
    let instances = rig.instances(&[ACCOUNTS[1]], 10).await?;
    let records: Vec<_> = instances
        .iter()
        .enumerate()
        .map(|(i, (account, id))| {
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
        ("ADJOIN_DLQ_URL".to_owned(), rig.dlq.clone()),
    ];
    Ok((vars, serde_json::json!({ "Records": records }).to_string()))
}

const USAGE: &str =
    "usage: adjoin-bench [--latency-ms N] [--events N] [--bootstrap PATH-TO-THE-RELEASE-bootstrap]";

fn options() -> Result<Options, String> {
    let mut options = Options {
        bootstrap: None,
        latency: Duration::ZERO,
        events: 500,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let number = || {
            value
                .parse::<u64>()
                .map_err(|e| format!("{arg} {value}: {e}"))
        };
        match arg.as_str() {
            "--bootstrap" => options.bootstrap = Some(PathBuf::from(&value)),
            "--latency-ms" => options.latency = Duration::from_millis(number()?),
            "--events" => {
                options.events = usize::try_from(number()?)
                    .map_err(|e| e.to_string())?
                    .max(10)
            }
            other => return Err(format!("unknown option {other}")),
        }
    }
    Ok(options)
}

#[tokio::main]
async fn main() -> ExitCode {
    let options = match options() {
        Ok(options) => options,
        Err(e) => {
            eprintln!("adjoin-bench: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match bench(options).await {
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
