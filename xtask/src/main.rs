//! Developer commands: `cargo xtask setup | demo | test | e2e | package | bench`.
//!
//! The Python tools (the AWS API emulator moto, the AWS CLI, cfn-lint, the tree-sitter
//! PowerShell grammar, cargo-lambda) live in a virtual environment of the project,
//! `<target>/venv`, created on first use: nothing is installed into the system Python
//! (which refuses it on Debian 12 and Ubuntu 24.04 anyway). Every command xtask runs
//! finds them first on its PATH.
//!
//! - `setup`: creates that environment and installs the Python tools (every other task
//!   does this first when needed).
//! - `demo [--keep]`: runs `adjoin-demo`, which
//!   starts it, seeds the sample account, instances and AD tools host, and replays
//!   `tests/events/` with `adjoin replay`.
//! - `test`: format check, clippy, shellcheck, a PowerShell syntax check
//!   (`xtask/check_powershell.py`: `scripts/windows/*.ps1` and the Windows documents'
//!   scripts in `infra/*.yaml`, parsed with the tree-sitter grammar, since no PowerShell
//!   runs here), cfn-lint, every test and the end-to-end test (on the `adjoin` binary
//!   `cargo test` built); ends with a `tests: N passed, N failed` line.
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
//!   batches and whole lifecycles counting every AWS call, measures the bootstrap's cold
//!   start against a minimal Lambda Runtime API, and prints the tables; then again with
//!   30 ms added to every AWS call.

use std::ffi::OsString;
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

type Result<T = ()> = std::result::Result<T, String>;

const USAGE: &str =
    "usage: cargo xtask setup | demo [--keep] | test | e2e | package | bench [--no-cold-start]";

fn main() -> ExitCode {
    let task = std::env::args().nth(1).unwrap_or_default();
    let result = match task.as_str() {
        "setup" => ensure_python_tools(),
        "demo" => demo(std::env::args().nth(2).as_deref() == Some("--keep")),
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
    let mut c = tool(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

/// A command that finds the project's Python tools first on its PATH.
fn tool(program: impl AsRef<std::ffi::OsStr>) -> Command {
    let mut c = Command::new(program);
    c.env("PATH", path_with_venv());
    c
}

/// The project's Python virtual environment.
fn venv() -> PathBuf {
    target_dir().join("venv")
}

/// PATH with the virtual environment's `bin` first.
fn path_with_venv() -> OsString {
    let inherited = std::env::var_os("PATH").unwrap_or_default();
    let paths = std::iter::once(venv().join("bin")).chain(std::env::split_paths(&inherited));
    std::env::join_paths(paths).unwrap_or(inherited)
}

/// The Python tools every task may need: the AWS API emulator, the AWS CLI (1.29 is the
/// first that honours AWS_ENDPOINT_URL), the template linter, and the PowerShell grammar
/// `xtask/check_powershell.py` parses the Windows scripts with (pinned: a new grammar
/// may accept or reject other syntax; tree-sitter-pwsh, as tree-sitter-powershell 0.26.4
/// rejects valid `-Name a, b` arguments).
const PYTHON_TOOLS: &[&str] = &[
    "moto[server]>=5,<6",
    "awscli>=1.29",
    "cfn-lint>=1,<2",
    "tree-sitter==0.26.1",
    "tree-sitter-pwsh==0.38.1",
];

/// Creates `<target>/venv` if needed and installs `PYTHON_TOOLS` into it (again only
/// when the list changed). pip runs with PIP_REQUIRE_VIRTUALENV, so it can never
/// install into the system Python.
fn ensure_python_tools() -> Result {
    ensure_in_venv(PYTHON_TOOLS, "tools")
}

fn ensure_in_venv(requirements: &[&str], name: &str) -> Result {
    let stamp = venv().join(format!(".adjoin-{name}"));
    let wanted = requirements.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|have| have == wanted) {
        return Ok(());
    }
    let python = venv().join("bin/python");
    if !python.exists() {
        let system = if have("python3") { "python3" } else { "python" };
        run(
            &format!("create the Python virtual environment {}", venv().display()),
            Command::new(system).arg("-m").arg("venv").arg(venv()),
        )
        .map_err(|e| {
            format!(
                "{e}: Python's venv module is missing (Debian/Ubuntu: apt-get install python3-venv)"
            )
        })?;
    }
    run(
        &format!(
            "install {} into {}",
            requirements.join(", "),
            venv().display()
        ),
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "--disable-pip-version-check",
                "--progress-bar",
                "off",
            ])
            .args(requirements)
            .env("PIP_REQUIRE_VIRTUALENV", "true"),
    )?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("{}: {e}", stamp.display()))
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
    tool("sh")
        .args(["-c", "command -v \"$1\"", "sh", program])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn demo(keep: bool) -> Result {
    ensure_python_tools()?;
    run(
        "build adjoin",
        cargo().args([
            "build",
            "-p",
            "adjoin-cli",
            "-p",
            "adjoin-testkit",
            "--bins",
        ]),
    )?;
    let adjoin = target_dir().join("debug/adjoin");
    let mut demo = tool(target_dir().join("debug/adjoin-demo"));
    demo.arg(adjoin);
    if keep {
        demo.arg("--keep");
    }
    run("demo", &mut demo)
}

fn bench(cold_start: bool) -> Result {
    ensure_python_tools()?;
    run(
        "build adjoin-bench",
        cargo().args(["build", "-p", "adjoin-testkit", "--bin", "adjoin-bench"]),
    )?;
    let bench = || tool(target_dir().join("debug/adjoin-bench"));
    let mut instant = bench();
    if cold_start {
        run(
            "build the release bootstrap (cargo build --release -p adjoin-lambda)",
            cargo().args(["build", "--release", "-p", "adjoin-lambda"]),
        )?;
        instant
            .arg("--bootstrap")
            .arg(target_dir().join("release/bootstrap"));
    }
    run("bench (the emulator as it answers)", &mut instant)?;
    // A real endpoint takes tens of milliseconds a call: the same, with 30 ms each (fewer
    // events: the baseline makes its calls one after the other).
    run(
        "bench (30 ms per AWS call)",
        bench().args(["--latency-ms", "30", "--events", "100"]),
    )
}

fn test() -> Result {
    ensure_python_tools()?;
    if !have("shellcheck") {
        return Err("shellcheck is not installed (apt-get install shellcheck)".into());
    }
    run(
        "cargo fmt --check",
        cargo().args(["fmt", "--all", "--check"]),
    )?;
    run(
        "shellcheck",
        tool("sh")
            .current_dir(root())
            .args(["-c", "shellcheck scripts/linux/*.sh tests/e2e/*.sh"]),
    )?;
    run(
        "PowerShell syntax (xtask/check_powershell.py)",
        tool(venv().join("bin/python"))
            .current_dir(root())
            .arg(root().join("xtask/check_powershell.py")),
    )?;
    run(
        "cfn-lint",
        tool("sh")
            .current_dir(root())
            .args(["-c", "cfn-lint infra/*.yaml"]),
    )?;
    run(
        "cargo clippy",
        cargo().args([
            "clippy",
            "--workspace",
            "--all-targets",
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
    // The instance: a fresh Debian image, and SSH logins into it.
    ("debootstrap", "debootstrap"),
    ("ssh", "openssh-client"),
    ("sshpass", "sshpass"),
];

fn e2e() -> Result {
    end_to_end(true)
}

/// The end-to-end test; `build`: build the `adjoin` binary first, else run the one in
/// the target directory.
fn end_to_end(build: bool) -> Result {
    ensure_python_tools()?;
    let missing: Vec<&str> = E2E_PACKAGES
        .iter()
        .filter(|(program, _)| !have(program))
        .map(|(_, packages)| *packages)
        .collect();
    if !missing.is_empty() {
        let packages = missing.join(" ");
        run(
            "apt-get install (end-to-end test)",
            tool("sh").args([
                "-c",
                "apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q $0",
                &packages,
            ]),
        )?;
    }
    if build {
        run(
            "build adjoin",
            cargo().args(["build", "-p", "adjoin-cli", "--bin", "adjoin"]),
        )?;
    }
    run(
        "end to end: tests/e2e/samba-ad.sh",
        tool("bash")
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
    ensure_in_venv(&["cargo-lambda"], "cargo-lambda")?;
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
