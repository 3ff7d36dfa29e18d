//! Rendering a decision into an SSM Run Command request.
//!
//! Values reach the bundled scripts as data: each one is base64-encoded into a
//! variable assignment (`ADJOIN_NAME_B64='…'`) placed above the script, and the script
//! decodes it with `base64 -d` (bash) or `[Convert]::FromBase64String` (PowerShell).
//! The base64 alphabet has no quote, `$`, backtick or newline, so no tag value can
//! become code. The join password never appears: only a reference to where it is.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use crate::config::{AccountConfig, CommandOutput, PasswordRef};
use crate::ids::{InstanceId, Region};
use crate::instance::{GROUP_TAG, Instance, Platform};
use crate::scripts;

/// The SSM documents used.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Document {
    #[serde(rename = "AWS-RunShellScript")]
    RunShellScript,
    #[serde(rename = "AWS-RunPowerShellScript")]
    RunPowerShellScript,
}

impl Document {
    pub fn for_platform(platform: Platform) -> Self {
        match platform {
            Platform::Linux => Document::RunShellScript,
            Platform::Windows => Document::RunPowerShellScript,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Document::RunShellScript => "AWS-RunShellScript",
            Document::RunPowerShellScript => "AWS-RunPowerShellScript",
        }
    }
}

/// A SendCommand request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRequest {
    pub document: Document,
    /// The instance that runs the command.
    pub target: InstanceId,
    /// The document's `commands` parameter: the parameter block, then the script.
    pub commands: Vec<String>,
    /// Shown in the SSM console and command history (at most 100 characters).
    pub comment: String,
    /// The document's `executionTimeout` parameter.
    pub execution_timeout_secs: u32,
    /// Where SSM also keeps the output (the account's audit destinations).
    pub output: CommandOutput,
}

/// How long a join may run: package installs on a fresh instance can be slow.
pub const JOIN_TIMEOUT_SECS: u32 = 1800;
/// How long a leave may run.
pub const LEAVE_TIMEOUT_SECS: u32 = 600;

/// Named values handed to a script.
type Params = Vec<(&'static str, String)>;

fn directory_params(config: &AccountConfig, secret_region: &Region) -> Params {
    let mut p: Params = vec![
        ("DOMAIN", config.dns_name.clone()),
        ("REALM", config.realm()),
        (
            "DC_IPS",
            config
                .dc_ips
                .iter()
                .map(|ip| ip.to_string())
                .collect::<Vec<_>>()
                .join(" "),
        ),
        ("JOIN_USER", config.join_user.clone()),
    ];
    let (name, reference) = match &config.password {
        PasswordRef::SsmParameter(name) => ("PASSWORD_SSM_PARAMETER", name),
        PasswordRef::SecretsManager(arn) => ("PASSWORD_SECRET_ARN", arn),
    };
    p.push((name, reference.clone()));
    // An ARN names its own Region (one central secret serves every Region's events).
    let region = crate::config::reference_region(reference).unwrap_or(secret_region.as_str());
    p.push(("SECRET_REGION", region.to_owned()));
    p
}

/// What the join writes into the computer object's `description` and the leave requires
/// before deleting it: `adjoin <account> <region> <instance-id>`.
pub fn owner_stamp(config: &AccountConfig, region: &Region, instance_id: &InstanceId) -> String {
    format!("adjoin {} {} {}", config.account, region, instance_id)
}

/// The join command for `instance` (in `region`), to be run on the instance itself.
pub fn join_command(
    instance: &Instance,
    config: &AccountConfig,
    region: &Region,
    computer_name: &str,
    event_id: &str,
) -> CommandRequest {
    let mut params = directory_params(config, region);
    params.push(("COMPUTER_NAME", computer_name.to_owned()));
    params.push(("OU_PATH", config.ou_path.clone().unwrap_or_default()));
    params.push((
        "ALLOWED_GROUP",
        instance.tag(GROUP_TAG).unwrap_or_default().to_owned(),
    ));
    params.push(("COMPUTER_GROUPS", config.computer_groups.join("\n")));
    if instance.platform == Platform::Windows && config.install_rds_session_host {
        params.push(("INSTALL_RDS_SESSION_HOST", "true".to_owned()));
    }
    params.push(("INSTANCE_ID", instance.id.as_str().to_owned()));
    params.push(("OWNER_STAMP", owner_stamp(config, region, &instance.id)));
    let script = match instance.platform {
        Platform::Linux => scripts::LINUX_JOIN,
        Platform::Windows => scripts::WINDOWS_JOIN,
    };
    CommandRequest {
        document: Document::for_platform(instance.platform),
        target: instance.id.clone(),
        commands: with_params(instance.platform, &params, script),
        comment: comment("join", &instance.id, event_id),
        execution_timeout_secs: JOIN_TIMEOUT_SECS,
        output: config.command_output.clone(),
    }
}

/// The leave command: run on the AD tools host (in `tools_region`), it deletes
/// `computer_name` if it is the object of `instance_id` (which ran in `instance_region`):
/// the object's description is the owner stamp and it lies in the configured OU.
pub fn leave_command(
    tools_host: &Instance,
    config: &AccountConfig,
    tools_region: &Region,
    instance_region: &Region,
    instance_id: &InstanceId,
    computer_name: &str,
    event_id: &str,
) -> CommandRequest {
    let mut params = directory_params(config, tools_region);
    params.push(("COMPUTER_NAME", computer_name.to_owned()));
    params.push(("INSTANCE_ID", instance_id.as_str().to_owned()));
    params.push(("OU_PATH", config.ou_path.clone().unwrap_or_default()));
    params.push((
        "OWNER_STAMP",
        owner_stamp(config, instance_region, instance_id),
    ));
    let script = match tools_host.platform {
        Platform::Linux => scripts::LINUX_LEAVE,
        Platform::Windows => scripts::WINDOWS_LEAVE,
    };
    CommandRequest {
        document: Document::for_platform(tools_host.platform),
        target: tools_host.id.clone(),
        commands: with_params(tools_host.platform, &params, script),
        comment: comment("leave", instance_id, event_id),
        execution_timeout_secs: LEAVE_TIMEOUT_SECS,
        output: config.command_output.clone(),
    }
}

/// SSM's limit on a command's comment, in characters.
const COMMENT_MAX_CHARS: usize = 100;

/// `adjoin join i-… event …`, cut to SSM's 100 characters (at a character boundary:
/// an event id may hold multibyte characters).
fn comment(action: &str, instance: &InstanceId, event_id: &str) -> String {
    format!("adjoin {action} {instance} event {event_id}")
        .chars()
        .take(COMMENT_MAX_CHARS)
        .collect()
}

/// The parameter block (one assignment per line, base64 values), the shared helpers,
/// then the script.
fn with_params(platform: Platform, params: &Params, script: &str) -> Vec<String> {
    let mut lines: Vec<String> = Vec::with_capacity(params.len() + 2);
    match platform {
        Platform::Linux => {
            lines.push("#!/usr/bin/env bash".to_owned());
            for (name, value) in params {
                lines.push(format!("ADJOIN_{name}_B64='{}'", B64.encode(value)));
            }
        }
        Platform::Windows => {
            for (name, value) in params {
                lines.push(format!("$ADJOIN_{name}_B64 = '{}'", B64.encode(value)));
            }
        }
    }
    let common = match platform {
        Platform::Linux => scripts::LINUX_COMMON,
        Platform::Windows => scripts::WINDOWS_COMMON,
    };
    for part in [common, script] {
        lines.extend(
            part.lines()
                .filter(|l| !l.starts_with("#!"))
                .map(str::to_owned),
        );
    }
    lines
}

/// Decodes the parameter block of rendered commands back into names and values
/// (for dry runs, tests and `adjoin render`).
pub fn decode_params(commands: &[String]) -> Vec<(String, String)> {
    commands
        .iter()
        .filter_map(|line| {
            let line = line.trim_start_matches('$');
            let (name, rest) = line.split_once("_B64")?;
            let name = name.strip_prefix("ADJOIN_")?;
            let value = rest.trim_start_matches([' ', '=']).trim_matches('\'');
            let bytes = B64.decode(value).ok()?;
            Some((
                name.to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod linux_sandbox;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigItem;
    use crate::ids::AccountId;
    use std::collections::BTreeMap;

    const HOSTILE: &str = "admins'; reboot; $(curl evil) `id` \"x\"\n rm -rf / ${IFS} ünï";

    fn config() -> AccountConfig {
        let item: ConfigItem = serde_json::from_value(serde_json::json!({
            "accountId": "111122223333", "adJoinUserName": "svc-join",
            "adJoinUserPwParam": "/adjoin/join-password", "dnsName": "example.test",
            "dnsIP1": "10.200.0.1", "ouPath": "OU=Servers,DC=example,DC=test"
        }))
        .expect("object");
        AccountConfig::from_item(&item, &AccountId::parse("111122223333").expect("valid"))
            .expect("valid")
    }

    fn instance(platform: Platform, group: &str) -> Instance {
        Instance {
            id: InstanceId::parse("i-0abcd1234ef567890").expect("valid"),
            state: "running".into(),
            platform,
            tags: BTreeMap::from([(GROUP_TAG.to_owned(), group.to_owned())]),
        }
    }

    fn region() -> Region {
        Region::parse("eu-west-1").expect("valid")
    }

    #[test]
    fn linux_join_uses_the_shell_document_and_carries_values_as_base64() {
        let c = join_command(
            &instance(Platform::Linux, HOSTILE),
            &config(),
            &region(),
            "IABC",
            "ev-1",
        );
        assert_eq!(c.document.name(), "AWS-RunShellScript");
        assert_eq!(c.target.as_str(), "i-0abcd1234ef567890");
        assert!(c.comment.contains("join i-0abcd1234ef567890 event ev-1"));
        let params: BTreeMap<_, _> = decode_params(&c.commands).into_iter().collect();
        assert_eq!(params["ALLOWED_GROUP"], HOSTILE);
        assert_eq!(params["REALM"], "EXAMPLE.TEST");
        assert_eq!(params["PASSWORD_SSM_PARAMETER"], "/adjoin/join-password");
        assert_eq!(params["COMPUTER_NAME"], "IABC");
        // The hostile value appears nowhere as text: not whole, not its dangerous parts.
        let text = c.commands.join("\n");
        for part in ["reboot", "curl evil", "`id`", "rm -rf /"] {
            assert!(!text.contains(part), "{part} leaked into the command");
        }
    }

    #[test]
    fn parameter_lines_are_only_assignments_of_base64_literals() {
        let c = join_command(
            &instance(Platform::Linux, HOSTILE),
            &config(),
            &region(),
            "IABC",
            "ev",
        );
        let block: Vec<&String> = c
            .commands
            .iter()
            .skip(1)
            .take_while(|l| l.starts_with("ADJOIN_"))
            .collect();
        assert_eq!(block.len(), decode_params(&c.commands).len());
        for line in block {
            let (name, value) = line.split_once('=').expect("assignment");
            assert!(
                name.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "{line}"
            );
            let value = value
                .strip_prefix('\'')
                .and_then(|v| v.strip_suffix('\''))
                .expect("quoted");
            assert!(
                value
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b)),
                "{line}"
            );
        }
    }

    #[test]
    fn windows_join_uses_powershell_and_the_same_parameters() {
        let c = join_command(
            &instance(Platform::Windows, HOSTILE),
            &config(),
            &region(),
            "IABC",
            "ev",
        );
        assert_eq!(c.document.name(), "AWS-RunPowerShellScript");
        assert!(c.commands[0].starts_with("$ADJOIN_DOMAIN_B64 = '"));
        let params: BTreeMap<_, _> = decode_params(&c.commands).into_iter().collect();
        assert_eq!(params["ALLOWED_GROUP"], HOSTILE);
        assert!(c.commands.iter().any(|l| l.contains("Add-Computer")));
        assert!(!params.contains_key("INSTALL_RDS_SESSION_HOST"));
    }

    #[test]
    fn the_rds_role_and_computer_groups_reach_windows_only_when_configured() {
        let mut config = config();
        config.computer_groups = vec!["gmsa-hosts".into(), "ecs hosts".into()];
        config.install_rds_session_host = true;
        let windows = join_command(
            &instance(Platform::Windows, "g"),
            &config,
            &region(),
            "I",
            "e",
        );
        let params: BTreeMap<_, _> = decode_params(&windows.commands).into_iter().collect();
        assert_eq!(params["INSTALL_RDS_SESSION_HOST"], "true");
        assert_eq!(params["COMPUTER_GROUPS"], "gmsa-hosts\necs hosts");
        let linux = join_command(
            &instance(Platform::Linux, "g"),
            &config,
            &region(),
            "I",
            "e",
        );
        let params: BTreeMap<_, _> = decode_params(&linux.commands).into_iter().collect();
        assert!(!params.contains_key("INSTALL_RDS_SESSION_HOST"));
    }

    /// Exit codes used by a script: `fail N` (bash) or `Stop-Adjoin N` (PowerShell).
    fn exit_codes(script: &str, call: &str) -> std::collections::BTreeSet<String> {
        script
            .match_indices(call)
            .filter_map(|(i, _)| {
                let rest = &script[i + call.len()..];
                let code: String = rest.chars().take_while(char::is_ascii_digit).collect();
                (!code.is_empty()).then_some(code)
            })
            .collect()
    }

    #[test]
    fn scripts_document_every_exit_code_and_never_evaluate_text() {
        for (name, script, helpers, call) in [
            (
                "join.sh",
                scripts::LINUX_JOIN,
                scripts::LINUX_COMMON,
                "fail ",
            ),
            (
                "leave.sh",
                scripts::LINUX_LEAVE,
                scripts::LINUX_COMMON,
                "fail ",
            ),
            (
                "join.ps1",
                scripts::WINDOWS_JOIN,
                scripts::WINDOWS_COMMON,
                "Stop-Adjoin ",
            ),
            (
                "leave.ps1",
                scripts::WINDOWS_LEAVE,
                scripts::WINDOWS_COMMON,
                "Stop-Adjoin ",
            ),
        ] {
            let header: String = script
                .lines()
                .take_while(|l| l.starts_with('#'))
                .collect::<Vec<_>>()
                .join(" ");
            let used = exit_codes(script, call);
            assert!(!used.is_empty(), "{name}");
            // Codes of the shared helpers are documented by the scripts that call them.
            for code in used.iter().chain(&exit_codes(helpers, call)) {
                assert!(
                    header.contains(&format!(" {code} ")),
                    "{name}: exit {code} undocumented"
                );
            }
            for evaluating in ["eval ", "Invoke-Expression", "iex ", "bash -c", "sh -c"] {
                assert!(
                    !script.contains(evaluating),
                    "{name} evaluates text: {evaluating}"
                );
                assert!(
                    !helpers.contains(evaluating),
                    "{name} helpers: {evaluating}"
                );
            }
        }
    }

    #[test]
    fn leave_runs_on_the_tools_host_and_names_the_computer() {
        let tools = Instance {
            id: InstanceId::parse("i-0fffffffffffffff0").expect("valid"),
            state: "running".into(),
            platform: Platform::Linux,
            tags: BTreeMap::new(),
        };
        let gone = InstanceId::parse("i-0abcd1234ef567890").expect("valid");
        let c = leave_command(&tools, &config(), &region(), &region(), &gone, "IABC", "ev");
        assert_eq!(c.target, tools.id);
        assert_eq!(c.document, Document::RunShellScript);
        let params: BTreeMap<_, _> = decode_params(&c.commands).into_iter().collect();
        assert_eq!(params["COMPUTER_NAME"], "IABC");
        assert_eq!(params["INSTANCE_ID"], "i-0abcd1234ef567890");
        let windows_tools = Instance {
            platform: Platform::Windows,
            ..tools
        };
        let c = leave_command(
            &windows_tools,
            &config(),
            &region(),
            &region(),
            &gone,
            "IABC",
            "ev",
        );
        assert!(c.commands.iter().any(|l| l.contains("Remove-ADObject")));
    }

    #[test]
    fn join_and_leave_carry_the_owner_stamp_and_the_leave_the_ou() {
        let stamp = "adjoin 111122223333 eu-west-1 i-0abcd1234ef567890";
        for platform in [Platform::Linux, Platform::Windows] {
            let joined = instance(platform, "g");
            let c = join_command(&joined, &config(), &region(), "IABC", "ev");
            let params: BTreeMap<_, _> = decode_params(&c.commands).into_iter().collect();
            assert_eq!(params["OWNER_STAMP"], stamp, "{platform:?}");

            let tools =
                crate::instance::test_instance("i-0fffffffffffffff0", "running", platform, &[]);
            let c = leave_command(
                &tools,
                &config(),
                &region(),
                &region(),
                &joined.id,
                "IABC",
                "ev",
            );
            let params: BTreeMap<_, _> = decode_params(&c.commands).into_iter().collect();
            assert_eq!(params["OWNER_STAMP"], stamp, "{platform:?}");
            assert_eq!(params["OU_PATH"], "OU=Servers,DC=example,DC=test");

            // A tools host in another Region: the stamp names the instance's Region.
            let home = Region::parse("us-east-1").expect("valid");
            let c = leave_command(
                &tools,
                &config(),
                &home,
                &region(),
                &joined.id,
                "IABC",
                "ev",
            );
            let params: BTreeMap<_, _> = decode_params(&c.commands).into_iter().collect();
            assert_eq!(params["OWNER_STAMP"], stamp, "{platform:?}");
        }
        let mut no_ou = config();
        no_ou.ou_path = None;
        let tools =
            crate::instance::test_instance("i-0fffffffffffffff0", "running", Platform::Linux, &[]);
        let gone = InstanceId::parse("i-0abcd1234ef567890").expect("valid");
        let c = leave_command(&tools, &no_ou, &region(), &region(), &gone, "IABC", "ev");
        let params: BTreeMap<_, _> = decode_params(&c.commands).into_iter().collect();
        assert_eq!(params["OU_PATH"], "");
    }

    #[test]
    fn hostile_values_reach_bash_as_data_and_nothing_runs() {
        let dir = std::env::temp_dir().join(format!("adjoin-render-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let canary = dir.join("canary");
        let hostile = format!(
            "g'; touch {c}; echo \"$(touch {c})\" `touch {c}` $'\\n' \n; touch {c} #",
            c = canary.display()
        );
        let params: Params = vec![("ALLOWED_GROUP", hostile.clone())];
        // The parameter block and the shared helpers, as rendered, then a probe that
        // prints the decoded value.
        let mut script = with_params(Platform::Linux, &params, "");
        script.push(format!(
            "param ALLOWED_GROUP > '{}'",
            dir.join("out").display()
        ));
        let status = std::process::Command::new("bash")
            .arg("-c")
            .arg(script.join("\n"))
            .status()
            .expect("bash runs");
        assert!(status.success());
        let out = std::fs::read_to_string(dir.join("out")).expect("probe output");
        assert_eq!(out, hostile, "the value arrives verbatim, as one value");
        assert!(!canary.exists(), "the hostile value executed");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn comments_fit_ssm_limit() {
        let c = join_command(
            &instance(Platform::Linux, "g"),
            &config(),
            &region(),
            "I",
            &"e".repeat(300),
        );
        assert!(c.comment.len() <= 100);
    }

    /// `String::truncate(100)` panicked here: byte 100 fell inside a character.
    #[test]
    fn comments_with_multibyte_event_ids_are_cut_at_a_character() {
        // 38 ASCII bytes, then multibyte characters: byte 100 falls inside one (but for
        // the first, whose cut at 100 characters is tested).
        for event_id in [
            "é".repeat(70),
            "中".repeat(40),
            "🦀".repeat(40),
            format!("a{}", "é".repeat(60)),
        ] {
            let c = join_command(
                &instance(Platform::Linux, "g"),
                &config(),
                &region(),
                "I",
                &event_id,
            );
            let full = format!("adjoin join i-0abcd1234ef567890 event {event_id}");
            let expected = full.chars().count().min(100);
            assert_eq!(c.comment.chars().count(), expected, "{event_id}");
            assert!(full.starts_with(&c.comment));
        }
        let short = join_command(
            &instance(Platform::Linux, "g"),
            &config(),
            &region(),
            "I",
            "é",
        );
        assert_eq!(short.comment, "adjoin join i-0abcd1234ef567890 event é");
    }

    /// Where a PowerShell script could print a secret: problems found by the rule below.
    ///
    /// 1. Error text is never read: no `.Exception`, `$Error`, `$PSItem`, `ErrorDetails`
    ///    or `Write-Error` anywhere (exception messages may quote the secret).
    /// 2. `$_` only in a `Where-Object { … }` / `ForEach-Object { … }` filter on the same
    ///    line, or as `$_.InvocationInfo` (the trap's line number): never an error record
    ///    interpolated into a message.
    /// 3. Every `ConvertFrom-Json` is inside a `try` whose `catch` calls `Stop-Adjoin` with
    ///    a single-quoted (fixed, uninterpolated) message.
    fn secret_leaks(script: &str) -> Vec<String> {
        let mut problems = Vec::new();
        for (n, line) in script.lines().enumerate() {
            if line.trim_start().starts_with('#') {
                continue;
            }
            let error_variable = line.match_indices("$Error").any(|(i, _)| {
                !line[i + "$Error".len()..]
                    .starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
            });
            if error_variable {
                problems.push(format!("line {}: $Error: {line}", n + 1));
            }
            for token in [".Exception", "$PSItem", "ErrorDetails", "Write-Error"] {
                if line.contains(token) {
                    problems.push(format!("line {}: {token}: {line}", n + 1));
                }
            }
            let rest = line.replace("$_.InvocationInfo", "");
            if rest.contains("$_")
                && !rest.contains("Where-Object {")
                && !rest.contains("ForEach-Object {")
            {
                problems.push(format!("line {}: $_ outside a filter: {line}", n + 1));
            }
        }
        let blocks = try_catch_blocks(script);
        for (at, _) in script.match_indices("ConvertFrom-Json") {
            let line_start = script[..at].rfind('\n').map_or(0, |i| i + 1);
            if script[line_start..at].trim_start().starts_with('#') {
                continue;
            }
            let guarded = blocks.iter().any(|(body, catch)| {
                body.contains(&at)
                    && catch.lines().any(|l| {
                        let l = l.trim();
                        l.starts_with("Stop-Adjoin ")
                            && l.ends_with('\'')
                            && l.matches('\'').count() == 2
                            && !l.contains('"')
                    })
            });
            if !guarded {
                problems.push(format!(
                    "ConvertFrom-Json at byte {at} without a try/catch and a fixed message"
                ));
            }
        }
        problems
    }

    /// `try { … } catch [Type] { … }` blocks: the try body's byte range and the catch body.
    fn try_catch_blocks(script: &str) -> Vec<(std::ops::Range<usize>, String)> {
        /// The index of the `}` closing the `{` at `open`.
        fn close(script: &str, open: usize) -> Option<usize> {
            let mut depth = 0usize;
            for (i, c) in script[open..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(open + i);
                        }
                    }
                    _ => {}
                }
            }
            None
        }
        let mut blocks = Vec::new();
        for (at, _) in script.match_indices("try {") {
            let open = at + "try ".len();
            let Some(end) = close(script, open) else {
                continue;
            };
            let after = script[end + 1..].trim_start();
            let Some(catch) = after.strip_prefix("catch") else {
                continue;
            };
            let Some(brace) = catch.find('{') else {
                continue;
            };
            let catch_open = script.len() - catch.len() + brace;
            let Some(catch_end) = close(script, catch_open) else {
                continue;
            };
            blocks.push((open..end, script[catch_open + 1..catch_end].to_owned()));
        }
        blocks
    }

    #[test]
    fn powershell_scripts_never_print_error_text() {
        for (name, script) in [
            ("common.ps1", scripts::WINDOWS_COMMON),
            ("join.ps1", scripts::WINDOWS_JOIN),
            ("leave.ps1", scripts::WINDOWS_LEAVE),
        ] {
            let problems = secret_leaks(script);
            assert!(problems.is_empty(), "{name}: {problems:#?}");
        }
        // Errors no catch handles end in a trap that prints a fixed message.
        let common = scripts::WINDOWS_COMMON;
        let trap = common
            .find("\ntrap {")
            .expect("common.ps1 has a script-level trap");
        assert!(common[trap..].contains("Stop-Adjoin 1 \"unexpected failure at line $line"));
        assert!(
            common.contains("ConvertFrom-Json"),
            "the secret is parsed in common.ps1"
        );
    }

    /// The rule catches what the scripts did before: an error's message in Stop-Adjoin,
    /// and ConvertFrom-Json whose failure reached that message.
    #[test]
    fn the_powershell_rule_catches_error_text_in_messages() {
        let before = r#"
    try {
        if ($secretArn) {
            $secret = (Get-SECSecretValue -SecretId $secretArn).SecretString | ConvertFrom-Json
        }
    } catch {
        Stop-Adjoin 12 "cannot read the join password: $($_.Exception.Message)"
    }
"#;
        let problems = secret_leaks(before);
        assert!(
            problems.iter().any(|p| p.contains(".Exception")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("ConvertFrom-Json")),
            "{problems:?}"
        );
        for bad in [
            "} catch { Stop-Adjoin 14 \"failed: $_\" }",
            "} catch { Write-Output $Error[0] }",
            "$x = $json | ConvertFrom-Json",
            "try { $x = $json | ConvertFrom-Json } catch { Stop-Adjoin 12 \"not JSON: $json\" }",
        ] {
            assert!(!secret_leaks(bad).is_empty(), "{bad}");
        }
        let fixed =
            "try {\n  $x = $json | ConvertFrom-Json\n} catch {\n  Stop-Adjoin 12 'not JSON'\n}\n";
        assert!(secret_leaks(fixed).is_empty(), "{:?}", secret_leaks(fixed));
    }
}
