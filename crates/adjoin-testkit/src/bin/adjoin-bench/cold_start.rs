//! The release Lambda bootstrap against a minimal Lambda Runtime API: time from process
//! start to its first `/next` poll, time from handing it a 10-record batch to its
//! response, and its peak RSS.

use std::path::Path;
use std::process::{Child, Command};
use std::time::{Duration, Instant, SystemTime};

use tiny_http::{Header, Response, Server};

pub struct ColdStart {
    pub init: Duration,
    pub first_event: Duration,
    pub peak_rss_kib: Option<u64>,
    pub response: String,
    /// Outcome counts of the batch, from the metrics (EMF) lines the bootstrap printed.
    pub outcomes: std::collections::BTreeMap<String, u64>,
}

/// Kills the bootstrap however the measurement ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn header(name: &str, value: &str) -> Result<Header, String> {
    Header::from_bytes(name.as_bytes(), value.as_bytes()).map_err(|()| format!("header {name}"))
}

/// Runs `bootstrap` with `env` until it answered `event` once.
pub fn measure(
    bootstrap: &Path,
    env: &[(String, String)],
    event: &str,
) -> Result<ColdStart, String> {
    let server = Server::http("127.0.0.1:0").map_err(|e| e.to_string())?;
    let port = server
        .server_addr()
        .to_ip()
        .map(|a| a.port())
        .ok_or("no port")?;
    let stdout = std::env::temp_dir().join(format!("adjoin-bench-{}.out", std::process::id()));
    let out_file = std::fs::File::create(&stdout).map_err(|e| e.to_string())?;
    let started = Instant::now();
    let child = Command::new(bootstrap)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
        .env("AWS_LAMBDA_FUNCTION_NAME", "adjoin")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "128")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/adjoin")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_LEVEL", "warn")
        .stdout(out_file)
        .spawn()
        .map_err(|e| format!("{}: {e}", bootstrap.display()))?;
    let pid = child.id();
    let _running = Running(child);
    let timeout = Duration::from_secs(30);

    let first = server
        .recv_timeout(timeout)
        .map_err(|e| e.to_string())?
        .ok_or("the bootstrap never polled /next")?;
    let init = started.elapsed();
    if !first.url().ends_with("/invocation/next") {
        return Err(format!("unexpected first request {}", first.url()));
    }
    let deadline = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_err(|e| e.to_string())?
        + Duration::from_secs(60);
    let handed = Instant::now();
    first
        .respond(
            Response::from_string(event)
                .with_header(header("Lambda-Runtime-Aws-Request-Id", "bench-1")?)
                .with_header(header(
                    "Lambda-Runtime-Deadline-Ms",
                    &deadline.as_millis().to_string(),
                )?)
                .with_header(header(
                    "Lambda-Runtime-Invoked-Function-Arn",
                    "arn:aws:lambda:eu-west-1:123456789012:function:adjoin",
                )?)
                .with_header(header("Content-Type", "application/json")?),
        )
        .map_err(|e| e.to_string())?;
    let mut answer = server
        .recv_timeout(timeout)
        .map_err(|e| e.to_string())?
        .ok_or("the bootstrap never answered")?;
    let first_event = handed.elapsed();
    let mut response = String::new();
    answer
        .as_reader()
        .read_to_string(&mut response)
        .map_err(|e| e.to_string())?;
    if !answer.url().ends_with("/invocation/bench-1/response") {
        return Err(format!("{}: {response}", answer.url()));
    }
    let peak_rss_kib = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| vm_hwm(&s));
    let _ = answer.respond(Response::empty(202));
    let printed = std::fs::read_to_string(&stdout).unwrap_or_default();
    let _ = std::fs::remove_file(&stdout);
    Ok(ColdStart {
        init,
        first_event,
        peak_rss_kib,
        response,
        outcomes: outcomes(&printed),
    })
}

/// Sums the outcome counts of the EMF documents in `printed`.
pub fn outcomes(printed: &str) -> std::collections::BTreeMap<String, u64> {
    let mut counts = std::collections::BTreeMap::new();
    for doc in printed
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|d| d.get("_aws").is_some() && d.get("Action").is_some())
    {
        for name in [
            "Dispatched",
            "Verified",
            "Skipped",
            "Deferred",
            "Rejected",
            "Failed",
        ] {
            *counts.entry(name.to_owned()).or_default() += doc[name].as_u64().unwrap_or(0);
        }
    }
    counts
}

/// `VmHWM` (peak resident set) in KiB, from /proc/PID/status.
pub fn vm_hwm(status: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn outcomes_are_summed_from_the_metrics_lines() {
        let printed = concat!(
            r#"{"level":"WARN","fields":{"message":"x"}}"#,
            "\n",
            r#"{"_aws":{},"Account":"1","Action":"join","Dispatched":9,"Failed":1}"#,
            "\n",
            r#"{"_aws":{},"Account":"2","Action":"join","Dispatched":1}"#,
            "\n",
            r#"{"_aws":{},"BatchLatency":3.0,"Messages":11}"#,
            "\n"
        );
        let counts = super::outcomes(printed);
        assert_eq!(counts["Dispatched"], 10);
        assert_eq!(counts["Failed"], 1);
        assert_eq!(counts["Skipped"], 0);
    }

    #[test]
    fn peak_rss_is_read_from_proc_status() {
        let status =
            "Name:\tbootstrap\nVmPeak:\t  20000 kB\nVmHWM:\t   12345 kB\nVmRSS:\t 9000 kB\n";
        assert_eq!(super::vm_hwm(status), Some(12345));
        assert_eq!(super::vm_hwm("Name:\tx\n"), None);
    }
}
