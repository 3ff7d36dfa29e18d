//! `adjoin-demo ADJOIN_BINARY`: starts the AWS API emulator, seeds it for the sample
//! events, and runs `adjoin replay` on them. `cargo xtask demo` builds and runs it.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const REGION: &str = "eu-west-1";

#[tokio::main]
async fn main() -> ExitCode {
    let Some(adjoin) = std::env::args().nth(1).map(PathBuf::from) else {
        eprintln!("usage: adjoin-demo PATH-TO-adjoin");
        return ExitCode::from(2);
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let moto = match adjoin_testkit::Moto::start_private() {
        Ok(moto) => moto,
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
            ExitCode::SUCCESS
        }
        other => {
            eprintln!("demo: adjoin replay failed: {other:?}");
            ExitCode::FAILURE
        }
    }
}
