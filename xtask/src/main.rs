//! Developer commands: `cargo xtask demo | test`.
//!
//! - `demo`: installs and starts the AWS API emulator, seeds the sample account, instances
//!   and AD tools host, replays `tests/events/` with `adjoin replay`, prints the outcomes.
//! - `test`: format check, clippy, shellcheck, and every test (the emulator is started
//!   once and shared through `ADJOIN_MOTO_URL`).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Run the service locally on the sample events, against the AWS API emulator.
    Demo,
    /// Format check, lints, shellcheck and all tests.
    Test,
}

type Result<T = ()> = std::result::Result<T, String>;

fn main() -> ExitCode {
    let result = match Cli::parse().task {
        Task::Demo => demo(),
        Task::Test => test(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(what: &str, command: &mut Command) -> Result {
    eprintln!("xtask: {what}");
    let status = command.status().map_err(|e| format!("{what}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{what} failed ({status})"))
    }
}

fn have(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", "command -v \"$1\"", "sh", program])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Installs moto server from PyPI when it is not on PATH.
fn ensure_moto() -> Result {
    if have("moto_server") {
        return Ok(());
    }
    let pip = if have("pip3") { "pip3" } else { "pip" };
    run(
        "install the AWS API emulator (moto server)",
        Command::new(pip).args(["install", "--quiet", "moto[server]>=5,<6"]),
    )
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())
}

fn demo() -> Result {
    ensure_moto()?;
    run(
        "build adjoin",
        cargo().args(["build", "--quiet", "-p", "adjoin-cli"]),
    )?;
    const REGION: &str = "eu-west-1";
    let moto = adjoin_testkit::Moto::start().map_err(|e| e.to_string())?;
    eprintln!("xtask: AWS API emulator on {}", moto.endpoint());
    let out_dir = root().join("target/demo-events");
    let seeded = runtime()?.block_on(async {
        let bed = adjoin_testkit::Bed::new(&moto, REGION).await;
        adjoin_testkit::samples::seed(
            &bed,
            &root().join("tests/events"),
            &out_dir,
            "Demo-Join-Passw0rd!",
        )
        .await
    });
    let seeded = seeded.map_err(|e| e.to_string())?;
    eprintln!(
        "xtask: seeded account 111122223333 (config item, {} instances) and the AD tools host {}",
        seeded.ids.len(),
        seeded.tools_host
    );
    for (sample, real) in &seeded.ids {
        eprintln!("         {sample} -> {real}");
    }
    eprintln!("xtask: adjoin replay tests/events/* (one JSON line per message)\n");
    let adjoin = root().join("target/debug/adjoin");
    let status = Command::new(&adjoin)
        .arg("replay")
        .args(&seeded.files)
        .envs(moto.env(REGION))
        .envs(seeded.env.iter().cloned())
        .status()
        .map_err(|e| format!("{}: {e}", adjoin.display()))?;
    match status.code() {
        // 3: some messages were rejected, as the malformed samples must be.
        Some(0 | 3) => {
            eprintln!(
                "\nxtask: done; rejected messages are on the emulator's DLQ with their reasons"
            );
            Ok(())
        }
        _ => Err(format!("adjoin replay failed ({status})")),
    }
}

fn test() -> Result {
    ensure_moto()?;
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--quiet",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    if have("shellcheck") {
        run(
            "shellcheck",
            Command::new("shellcheck")
                .current_dir(root())
                .args(["scripts/linux/join.sh", "scripts/linux/leave.sh"]),
        )?;
    } else {
        return Err("shellcheck is not installed (apt-get install shellcheck)".into());
    }
    let moto = adjoin_testkit::Moto::start().map_err(|e| e.to_string())?;
    run(
        "cargo test",
        cargo()
            .args(["test", "--workspace"])
            .env("ADJOIN_MOTO_URL", moto.endpoint()),
    )
}
