//! The `adjoin` binary as users run it, against the AWS API emulator: `adjoin replay` on
//! the sample events seeded as `tests/events/seed.json` says, and the operator commands
//! (`config`, `status`, `check`) in the modules below.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use adjoin_testkit::samples::{self, Seeded};
use adjoin_testkit::{Bed, HOME_ACCOUNT, Moto};
use serde_json::Value;

mod check;
mod config;
mod reconcile;
mod status;

const REGION: &str = "eu-west-1";
const MEMBER: &str = "111122223333";
const PASSWORD: &str = "S3cret-Join-Passw0rd!";

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Runs `adjoin` with `args` against the emulator, with `env` added to its environment.
fn adjoin<A: AsRef<OsStr>>(
    moto: &Moto,
    env: &[(&'static str, String)],
    args: impl IntoIterator<Item = A>,
) -> Output {
    Command::new(env!("CARGO_BIN_EXE_adjoin"))
        .args(args)
        .envs(moto.env(REGION))
        .envs(env.iter().cloned())
        .output()
        .expect("adjoin runs")
}

/// An emulator of the test's own, and the test bed on it.
async fn private_bed() -> (Moto, Bed) {
    let moto = Moto::start_private().expect("moto");
    let bed = Bed::new(&moto, REGION).await;
    (moto, bed)
}

/// Asserts that `adjoin` exited with `code`, showing its standard error otherwise.
fn assert_exit(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A private emulator seeded with the sample accounts, instances and events (its own:
/// the samples' fixed account must not meet other tests' data).
async fn seeded(name: &str) -> (Moto, Bed, Seeded) {
    let (moto, bed) = private_bed().await;
    let seeded = samples::seed(
        &bed,
        &workspace().join("tests/events"),
        &tempdir(name),
        PASSWORD,
    )
    .await
    .expect("seeded");
    (moto, bed, seeded)
}

fn replay(moto: &Moto, seeded: &Seeded, args: &[&str], files: &[PathBuf]) -> Output {
    let mut env = seeded.env.clone();
    env.push(("RUST_LOG", "debug".into()));
    let args = std::iter::once(OsStr::new("replay"))
        .chain(args.iter().map(OsStr::new))
        .chain(files.iter().map(|f| f.as_os_str()));
    adjoin(moto, &env, args)
}

/// The JSON lines of `adjoin`'s standard output.
fn lines(out: &Output) -> Vec<Value> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect()
}

fn summary(v: &Value) -> String {
    format!(
        "{} {}",
        v["action"].as_str().unwrap_or("?"),
        v["outcome"].as_str().unwrap_or("?")
    )
}

fn dlq_url(seeded: &samples::Seeded) -> &str {
    seeded
        .env
        .iter()
        .find(|(name, _)| *name == "ADJOIN_DLQ_URL")
        .map(|(_, url)| url.as_str())
        .expect("ADJOIN_DLQ_URL")
}

#[tokio::test(flavor = "multi_thread")]
async fn replaying_the_sample_events() {
    let (moto, bed, seeded) = seeded("replay").await;
    let out_dir = seeded.files[0]
        .parent()
        .expect("the seeded files' directory");

    // A dry run reads everything, sends nothing, and shows the rendered commands.
    let dry = replay(&moto, &seeded, &["--dry-run"], &seeded.files);
    assert_exit(&dry, 3);
    let dry_lines = lines(&dry);
    let join = dry_lines
        .iter()
        .find(|l| l["action"] == "join")
        .expect("a join");
    assert_eq!(join["outcome"], "planned");
    assert!(
        dry_lines
            .iter()
            .all(|l| l["dry_run"] == true && l["outcome"] != "dispatched"),
        "every line of a dry run says so: {dry_lines:?}"
    );
    assert!(
        join["command"]["parameters"]["DOMAIN"] == "example.test",
        "{join}"
    );
    assert!(
        bed.commands(MEMBER, REGION)
            .await
            .expect("commands")
            .is_empty(),
        "dry run sent a command"
    );
    assert!(
        bed.drain_queue(dlq_url(&seeded))
            .await
            .expect("dlq")
            .is_empty(),
        "dry run sent to the DLQ"
    );

    // The real run: one line per message, outcomes as seed.json expects.
    let run = replay(&moto, &seeded, &[], &seeded.files);
    assert_eq!(
        run.status.code(),
        Some(3),
        "a rejected message makes the exit status 3"
    );
    let got = lines(&run);
    let mut expected = Vec::new();
    for file in &seeded.files {
        let stem = file
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.split('.').next())
            .expect("stem");
        expected.extend(seeded.expected[stem].iter().cloned());
    }
    assert_eq!(got.iter().map(summary).collect::<Vec<_>>(), expected);
    for line in &got {
        for key in [
            "message_id",
            "account",
            "region",
            "instance_id",
            "action",
            "outcome",
            "reason",
            "command_id",
        ] {
            assert!(line.get(key).is_some(), "{key} missing in {line}");
        }
    }

    // What the emulator recorded. Staged joins: a stage command per running instance
    // and the leave, all on the tools host in the home account; no join yet (it follows
    // when a message comes back).
    let home = bed.commands(HOME_ACCOUNT, REGION).await.expect("commands");
    let stages: Vec<_> = home
        .iter()
        .filter(|c| c.comment.starts_with("adjoin stage"))
        .collect();
    assert_eq!(
        stages.len(),
        4,
        "linux, windows, the other Region's and the batch's good record"
    );
    assert!(
        stages
            .iter()
            .all(|c| c.instance_ids.contains(&seeded.tools_host))
    );
    assert!(
        stages
            .iter()
            .all(|c| c.document.starts_with("adjoin-Stage-"))
    );
    let leave: Vec<_> = home
        .iter()
        .filter(|c| c.comment.starts_with("adjoin leave"))
        .collect();
    assert_eq!(leave.len(), 1);
    assert!(leave[0].instance_ids.contains(&seeded.tools_host));
    assert!(
        bed.commands(MEMBER, REGION)
            .await
            .expect("commands")
            .is_empty()
    );
    let dlq = bed.drain_queue(dlq_url(&seeded)).await.expect("dlq");
    let mut reasons: Vec<_> = dlq.iter().map(|(_, r)| r.as_str()).collect();
    reasons.sort();
    assert_eq!(reasons.len(), 2);
    assert!(
        reasons[0].starts_with("message body is not JSON"),
        "{reasons:?}"
    );
    assert_eq!(
        reasons[1],
        "no config item for account 999999999999 in the config table"
    );

    // The join password is never in a command, the output or the logs.
    let everything = format!(
        "{}{}{}{:?}{:?}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr),
        String::from_utf8_lossy(&dry.stdout),
        home,
        leave
    );
    assert!(!everything.contains(PASSWORD));

    // Only good messages, again: exit status 0. The same messages a second time read
    // their stage commands' and the leave's results (the emulator reports success): the
    // joins go to the instances, in their own account and Region.
    let good: Vec<PathBuf> = seeded
        .files
        .iter()
        .filter(|f| !f.to_string_lossy().contains("malformed"))
        .cloned()
        .collect();
    let ok = replay(&moto, &seeded, &[], &good);
    assert_eq!(
        ok.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    let again: Vec<String> = lines(&ok).iter().map(summary).collect();
    assert_eq!(
        again,
        [
            "verify dispatched",
            "verify dispatched",
            "verify dispatched",
            "none skipped",
            "verify verified"
        ]
    );
    let eu = bed.commands(MEMBER, REGION).await.expect("commands");
    assert_eq!(eu.len(), 2, "linux and windows");
    assert_eq!(
        eu.iter()
            .filter(|c| c.document == "adjoin-Join-Windows")
            .count(),
        1
    );
    let us = bed.commands(MEMBER, "us-west-2").await.expect("commands");
    assert_eq!(us.len(), 1);
    assert_eq!(
        us[0].instance_ids,
        vec![seeded.ids["i-0a1b2c3d4e5f60003"].clone()]
    );
    // A third time: the joins are verified, and nothing new is sent.
    let third = replay(&moto, &seeded, &[], &good);
    let verified: Vec<String> = lines(&third).iter().map(summary).collect();
    assert_eq!(
        verified
            .iter()
            .filter(|l| l.as_str() == "verify verified")
            .count(),
        3,
        "{verified:?}"
    );
    assert_eq!(
        bed.commands(MEMBER, REGION).await.expect("commands").len(),
        2
    );
    assert_eq!(
        bed.commands(HOME_ACCOUNT, REGION)
            .await
            .expect("commands")
            .len(),
        home.len()
    );

    // Piped, replay draws no progress bar: stderr has the logs only.
    assert!(!String::from_utf8_lossy(&run.stderr).contains(" files "));

    // Usage errors: exit status 2.
    let usage = replay(&moto, &seeded, &[], &[]);
    assert_eq!(usage.status.code(), Some(2));
    let missing = replay(&moto, &seeded, &[], &[out_dir.join("no-such-file.json")]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("cannot read"));
}

fn tempdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("adjoin-{name}-test-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
