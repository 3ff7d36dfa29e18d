//! Developer commands: `cargo xtask demo | test | e2e | package | bench`.
//!
//! - `demo`: installs the AWS API emulator if needed, then runs `adjoin-demo`, which
//!   starts it, seeds the sample account, instances and AD tools host, and replays
//!   `tests/events/` with `adjoin replay`.
//! - `test`: format check, clippy, shellcheck, cfn-lint, every test and the end-to-end
//!   test (on the `adjoin` binary `cargo test` built); ends with a
//!   `tests: N passed, N failed` line.
//! - `e2e`: the end-to-end test alone: a Samba AD domain controller, an instance and an
//!   AD tools host in network namespaces, the AWS API emulator, `adjoin replay` and the
//!   join and leave scripts (`tests/e2e/samba-ad.sh`; root, Debian packages installed
//!   when missing).
//! - `package`: builds the Lambda's release `bootstrap` with cargo-lambda (installed from
//!   PyPI if missing; it brings zig for cross-linking) for arm64 and x86_64, and writes
//!   `<target>/lambda/adjoin-lambda-<arch>.zip`, printing each zip's size. Not part of
//!   `test`: two release builds with fat LTO take many minutes.
//! - `bench [--no-cold-start]`: builds the Lambda's release bootstrap for this machine
//!   (many minutes the first time; skipped with `--no-cold-start`) and runs
//!   `adjoin-bench`, which starts the AWS API emulator, runs the worker over generated
//!   batches counting every AWS call, measures the bootstrap's cold start against a
//!   minimal Lambda Runtime API, and prints the table.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str = "usage: cargo xtask demo | test | e2e | package | bench [--no-cold-start]";

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "demo" => demo(),
        "test" => test(),
        "e2e" => e2e(),
        "package" => package(),
        "bench" => bench(std::env::args().nth(2).as_deref() != Some("--no-cold-start")),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
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

/// Installs a Python tool from PyPI when it is not on PATH.
fn ensure_pip(program: &str, requirement: &str) -> Result {
    if have(program) {
        return Ok(());
    }
    let python = if have("python3") { "python3" } else { "python" };
    run(
        &format!("install {requirement}"),
        Command::new(python).args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            requirement,
        ]),
    )
}

fn demo() -> Result {
    ensure_pip("moto_server", "moto[server]>=5,<6")?;
    run(
        "build adjoin",
        cargo().args([
            "build",
            "--quiet",
            "-p",
            "adjoin-cli",
            "-p",
            "adjoin-testkit",
            "--bins",
        ]),
    )?;
    let adjoin = target_dir().join("debug/adjoin");
    run(
        "demo",
        Command::new(target_dir().join("debug/adjoin-demo")).arg(adjoin),
    )
}

fn bench(cold_start: bool) -> Result {
    ensure_pip("moto_server", "moto[server]>=5,<6")?;
    run(
        "build adjoin-bench",
        cargo().args([
            "build",
            "--quiet",
            "-p",
            "adjoin-testkit",
            "--bin",
            "adjoin-bench",
        ]),
    )?;
    let mut bench = Command::new(target_dir().join("debug/adjoin-bench"));
    if cold_start {
        run(
            "build the release bootstrap (cargo build --release -p adjoin-lambda)",
            cargo().args(["build", "--release", "-p", "adjoin-lambda"]),
        )?;
        bench
            .arg("--bootstrap")
            .arg(target_dir().join("release/bootstrap"));
    }
    run("bench", &mut bench)
}

fn test() -> Result {
    ensure_pip("moto_server", "moto[server]>=5,<6")?;
    ensure_pip("cfn-lint", "cfn-lint>=1,<2")?;
    if !have("shellcheck") {
        return Err("shellcheck is not installed (apt-get install shellcheck)".into());
    }
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "shellcheck",
        Command::new("sh")
            .current_dir(root())
            .args(["-c", "shellcheck scripts/linux/*.sh tests/e2e/*.sh"]),
    )?;
    run(
        "cfn-lint",
        Command::new("sh")
            .current_dir(root())
            .args(["-c", "cfn-lint infra/*.yaml"]),
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
    let (mut passed, mut failed, tests) = cargo_test()?;
    // `cargo test` built the `adjoin` binary for the CLI's integration tests: the one
    // the end-to-end test runs. (`cargo build -p adjoin-cli` would build the crates a
    // second time: the tests' dev-dependencies turn on adjoin-core's `test-util`.)
    let end_to_end = end_to_end(false);
    match &end_to_end {
        Ok(()) => passed += 1,
        Err(e) => {
            failed += 1;
            eprintln!("xtask: {e}");
        }
    }
    println!("tests: {passed} passed, {failed} failed");
    tests.and(end_to_end)
}

/// Debian packages the end-to-end test runs: the domain controller, the instance's
/// join tools, and the namespace tools.
const E2E_PACKAGES: &[(&str, &str)] = &[
    ("samba-tool", "samba samba-common-bin winbind"),
    ("adcli", "adcli"),
    ("sssd", "sssd sssd-tools"),
    ("kinit", "krb5-user krb5-config"),
    ("ldbsearch", "ldb-tools"),
    ("ldapdelete", "ldap-utils"),
    ("dig", "dnsutils"),
    ("ip", "iproute2"),
];

fn e2e() -> Result {
    end_to_end(true)
}

/// The end-to-end test; `build`: build the `adjoin` binary first, else run the one in
/// the target directory.
fn end_to_end(build: bool) -> Result {
    ensure_pip("moto_server", "moto[server]>=5,<6")?;
    // 1.29 is the first AWS CLI that honours AWS_ENDPOINT_URL.
    ensure_pip("aws", "awscli>=1.29")?;
    let missing: Vec<&str> = E2E_PACKAGES
        .iter()
        .filter(|(program, _)| !have(program))
        .map(|(_, packages)| *packages)
        .collect();
    if !missing.is_empty() {
        let packages = missing.join(" ");
        run(
            "apt-get install (end-to-end test)",
            Command::new("sh").args([
                "-c",
                "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $0",
                &packages,
            ]),
        )?;
    }
    if build {
        run(
            "build adjoin",
            cargo().args(["build", "--quiet", "-p", "adjoin-cli", "--bin", "adjoin"]),
        )?;
    }
    run(
        "end to end: tests/e2e/samba-ad.sh",
        Command::new("bash")
            .arg(root().join("tests/e2e/samba-ad.sh"))
            .arg(target_dir().join("debug/adjoin")),
    )
}

/// Runs every test, echoing the output; returns the passed and failed counts and
/// whether cargo test succeeded.
fn cargo_test() -> Result<(u64, u64, Result)> {
    eprintln!("xtask: cargo test");
    let mut child = cargo()
        .args(["test", "--workspace", "--all-targets"])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cargo test: {e}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            println!("{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                passed += count(rest, " passed");
                failed += count(rest, " failed");
            }
        }
    }
    let status = child.wait().map_err(|e| format!("cargo test: {e}"))?;
    let result = if status.success() {
        Ok(())
    } else {
        Err(format!("cargo test failed ({status})"))
    };
    Ok((passed, failed, result))
}

/// The number before `label` in a `test result:` line.
fn count(line: &str, label: &str) -> u64 {
    line.split(';')
        .find_map(|part| {
            part.trim()
                .trim_start_matches("ok. ")
                .trim_start_matches("FAILED. ")
                .strip_suffix(label.trim_start())
        })
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// The Lambda architectures: CloudFormation's name, cargo-lambda's flag, the Rust target.
const ARCHITECTURES: [(&str, &str, &str); 2] = [
    ("arm64", "--arm64", "aarch64-unknown-linux-gnu"),
    ("x86_64", "--x86-64", "x86_64-unknown-linux-gnu"),
];

/// Where cargo puts its output: `CARGO_TARGET_DIR`, else `target/` in the workspace.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// Adds the Rust standard library for `triple` when rustup manages the toolchain.
fn ensure_rust_target(triple: &str) -> Result {
    if !have("rustup") {
        return Ok(());
    }
    let installed = Command::new("rustup")
        .args(["target", "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup target list: {e}"))?;
    if String::from_utf8_lossy(&installed.stdout)
        .lines()
        .any(|l| l.trim() == triple)
    {
        return Ok(());
    }
    run(
        &format!("rustup target add {triple}"),
        Command::new("rustup").args(["target", "add", triple]),
    )
}

fn package() -> Result {
    ensure_pip("cargo-lambda", "cargo-lambda")?;
    let lambda_dir = target_dir().join("lambda");
    let mut built = Vec::new();
    for (arch, flag, triple) in ARCHITECTURES {
        ensure_rust_target(triple)?;
        // One directory per architecture: cargo-lambda names every zip bootstrap.zip.
        let out = lambda_dir.join(format!("build-{arch}"));
        run(
            &format!("cargo lambda build --release ({arch})"),
            cargo()
                .args(["lambda", "build", "--release", "-p", "adjoin-lambda", flag])
                .args(["--output-format", "zip", "--lambda-dir"])
                .arg(&out),
        )?;
        let zip = lambda_dir.join(format!("adjoin-lambda-{arch}.zip"));
        let from = out.join("bootstrap").join("bootstrap.zip");
        std::fs::copy(&from, &zip).map_err(|e| format!("copy {}: {e}", from.display()))?;
        built.push(zip);
    }
    for zip in built {
        let bytes = std::fs::metadata(&zip)
            .map_err(|e| format!("{}: {e}", zip.display()))?
            .len();
        println!(
            "{}: {bytes} bytes ({:.1} KiB)",
            zip.display(),
            bytes as f64 / 1024.0
        );
    }
    Ok(())
}
