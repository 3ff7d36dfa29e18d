//! `adjoin-demo ADJOIN_BINARY [--keep]`: starts the AWS API emulator, seeds it for the
//! sample events, and runs `adjoin replay` on them. `cargo xtask demo` builds and runs
//! it. With `--keep` the emulator keeps running afterwards, and the environment to try
//! every `adjoin` command against it is written to `target/demo.env`.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const REGION: &str = "eu-west-1";

#[tokio::main]
async fn main() -> ExitCode {
    let Some(adjoin) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: adjoin-demo PATH-TO-adjoin");
        return ExitCode::from(2);
    };
    let keep = std::env::args().nth(2).as_deref() == Some("--keep");
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let root = manifest.canonicalize().unwrap_or(manifest);
    let started = if keep {
        adjoin_testkit::DetachedMoto::start().map(|d| (d.moto, Some(d.pid)))
    } else {
        adjoin_testkit::Moto::start_private().map(|m| (m, None))
    };
    let (moto, kept_pid) = match started {
        Ok(started) => started,
        Err(e) => {
            eprintln!("demo: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!("demo: AWS API emulator on {}", moto.endpoint());
    let bed = adjoin_testkit::Bed::new(&moto, REGION).await;
    let out_dir = root.join("target/demo-events");
    let seeded = match adjoin_testkit::samples::seed(
        &bed,
        &root.join("tests/events"),
        &out_dir,
        "Demo-Join-Passw0rd!",
    )
    .await
    {
        Ok(seeded) => seeded,
        Err(e) => {
            eprintln!("demo: seeding the emulator failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    eprintln!(
        "demo: seeded account 111122223333 (config item, {} instances) and the AD tools host {}",
        seeded.ids.len(),
        seeded.tools_host
    );
    for (sample, real) in &seeded.ids {
        eprintln!("        sample {sample} is {real} in the emulator");
    }
    eprintln!("demo: adjoin replay tests/events/* (one JSON line per message)\n");
    let status = Command::new(&adjoin)
        .arg("replay")
        .args(&seeded.files)
        .envs(moto.env(REGION))
        .envs(seeded.env.iter().cloned())
        .status();
    match status.map(|s| s.code()) {
        // 3: some messages were rejected, as the malformed samples must be.
        Ok(Some(0 | 3)) => {
            eprintln!(
                "\ndemo: done; rejected messages are on the emulator's DLQ with their reasons"
            );
            if let Some(pid) = kept_pid {
                return keep_sandbox(&root, &moto, pid, &seeded);
            }
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("demo: adjoin replay failed: {other:?}");
            ExitCode::FAILURE
        }
    }
}

/// Writes the environment of the kept emulator to `target/demo.env` and says how to
/// try each command against it.
fn keep_sandbox(
    root: &Path,
    moto: &adjoin_testkit::Moto,
    pid: u32,
    seeded: &adjoin_testkit::samples::Seeded,
) -> ExitCode {
    let venv_bin = root.join("target/venv/bin");
    let mut lines: Vec<String> = moto
        .env(REGION)
        .into_iter()
        .chain(seeded.env.iter().cloned())
        .map(|(name, value)| format!("export {name}='{value}'"))
        .collect();
    // The `adjoin` the demo built, and the project's Python tools (the AWS CLI).
    lines.push(format!(
        "export PATH='{}':'{}':\"$PATH\"",
        root.join("target/debug").display(),
        venv_bin.display()
    ));
    lines.push(format!("export ADJOIN_DEMO_MOTO_PID={pid}"));
    let env_file = root.join("target/demo.env");
    if let Err(e) = std::fs::write(&env_file, lines.join("\n") + "\n") {
        eprintln!("demo: cannot write {}: {e}", env_file.display());
        return ExitCode::FAILURE;
    }
    let linux = seeded
        .files
        .first()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    let instance = seeded.ids.values().next().cloned().unwrap_or_default();
    eprintln!(
        "
demo: the emulator keeps running (pid {pid}). Try adjoin by hand against it:

  . target/demo.env
  adjoin replay {linux}        # again: reads the join's result, outcome verified
  adjoin status
  adjoin check --account 111122223333 --instance {instance}
  adjoin config list
  adjoin config validate 111122223333
  kill $ADJOIN_DEMO_MOTO_PID       # stop the emulator
"
    );
    ExitCode::SUCCESS
}
