//! Rendering: parameters as data, documents, comments, and the scripts' own rules.

use super::*;
use crate::config::ConfigItem;
use crate::ids::AccountId;
use crate::scripts;
use crate::testing::params_of;
use std::collections::BTreeMap;

const HOSTILE: &str = "admins'; reboot; $(curl evil) `id` \"x\"\n rm -rf / ${IFS} ünï";

/// A staged account (the default join mode).
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

/// The same account, joining with the shared join password.
fn shared_config() -> AccountConfig {
    AccountConfig {
        join_mode: JoinMode::SharedPassword,
        ..config()
    }
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

/// The join of `instance(platform, group)` with [`config`], as computer `name`, for `event`.
fn join(platform: Platform, group: &str, name: &str, event: &str) -> CommandRequest {
    join_command(
        &instance(platform, group),
        &config(),
        &region(),
        name,
        event,
    )
}

/// The same join with the shared join password.
fn shared_join(platform: Platform, group: &str, name: &str, event: &str) -> CommandRequest {
    join_command(
        &instance(platform, group),
        &shared_config(),
        &region(),
        name,
        event,
    )
}

/// The stage command of i-0abcd1234ef567890 (in [`region`]) on `tools` in `tools_region`.
fn stage(tools: &Instance, config: &AccountConfig, tools_region: &Region) -> CommandRequest {
    let id = InstanceId::parse("i-0abcd1234ef567890").expect("valid");
    let placement = Placement {
        ou_path: config.ou_path.clone(),
        computer_groups: config.computer_groups.clone(),
    };
    let subject = Subject {
        region: &region(),
        instance_id: &id,
        computer_name: "IABC",
        event_id: "ev",
    };
    stage_command(tools, config, tools_region, &subject, &placement)
}

#[test]
fn a_staged_join_names_only_the_instances_one_time_password_parameter() {
    let c = join(Platform::Linux, "g", "IABC", "ev-1");
    let params = params_of(&c);
    assert_eq!(params["JOIN_MODE"], "staged");
    assert_eq!(
        params["OTP_SSM_PARAMETER"],
        "/adjoin/otp/i-0abcd1234ef567890"
    );
    assert_eq!(params["OTP_REGION"], "eu-west-1");
    // Nothing that reaches the join user or its password, nothing the stage made.
    for absent in [
        "JOIN_USER",
        "PASSWORD_SSM_PARAMETER",
        "PASSWORD_SECRET_ARN",
        "SECRET_REGION",
        "OU_PATH",
        "COMPUTER_GROUPS",
    ] {
        assert!(!params.contains_key(absent), "{absent} in a staged join");
    }
    let text = c.commands.join("\n");
    assert!(!text.contains("svc-join") && !text.contains("join-password"));
    let windows = params_of(&join(Platform::Windows, "g", "IABC", "ev-1"));
    assert_eq!(
        windows["OTP_SSM_PARAMETER"],
        "/adjoin/otp/i-0abcd1234ef567890"
    );
    assert!(!windows.contains_key("PASSWORD_SSM_PARAMETER"));
}

#[test]
fn the_stage_command_runs_on_the_tools_host_with_the_tools_hosts_copy() {
    let tools = Instance {
        id: InstanceId::parse("i-0f00d0000000000aa").expect("valid"),
        state: "running".into(),
        platform: Platform::Linux,
        tags: BTreeMap::new(),
    };
    let mut config = config();
    config.computer_groups = vec!["gmsa-hosts".into()];
    let c = stage(&tools, &config, &Region::parse("us-east-1").expect("valid"));
    assert_eq!(c.target, tools.id);
    assert!(
        c.comment
            .starts_with("adjoin stage i-0abcd1234ef567890 event ev")
    );
    let params = params_of(&c);
    assert_eq!(
        params["OTP_SSM_PARAMETER"],
        "/adjoin/stage/111122223333/eu-west-1/i-0abcd1234ef567890"
    );
    assert_eq!(params["OTP_REGION"], "us-east-1", "the tools host's Region");
    assert_eq!(
        params["OWNER_STAMP"],
        "adjoin 111122223333 eu-west-1 i-0abcd1234ef567890"
    );
    assert_eq!(params["OU_PATH"], "OU=Servers,DC=example,DC=test");
    assert_eq!(params["COMPUTER_GROUPS"], "gmsa-hosts");
    assert_eq!(params["PASSWORD_SSM_PARAMETER"], "/adjoin/join-password");
    let text = c.commands.join("\n");
    assert!(
        text.contains("ldapadd") && text.contains("find_computer"),
        "tools.sh, then stage.sh"
    );
    let windows = Instance {
        platform: Platform::Windows,
        ..tools
    };
    let w = stage(&windows, &config, &region());
    assert!(w.commands.iter().any(|l| l.contains("New-ADComputer")));
    assert!(
        w.commands
            .iter()
            .any(|l| l.contains("function Find-AdjoinComputer"))
    );
}

/// The leave of i-0abcd1234ef567890 (in [`region`]), run on `tools` in `tools_region`.
fn leave(tools: &Instance, config: &AccountConfig, tools_region: &Region) -> CommandRequest {
    let gone = InstanceId::parse("i-0abcd1234ef567890").expect("valid");
    let subject = Subject {
        region: &region(),
        instance_id: &gone,
        computer_name: "IABC",
        event_id: "ev",
    };
    leave_command(
        tools,
        config,
        tools_region,
        &subject,
        config.ou_path.as_deref(),
    )
}

#[test]
fn linux_join_uses_the_shell_document_and_carries_values_as_base64() {
    let c = shared_join(Platform::Linux, HOSTILE, "IABC", "ev-1");
    assert_eq!(c.document.name(), "adjoin-Join-Linux");
    assert_eq!(c.target.as_str(), "i-0abcd1234ef567890");
    assert!(c.comment.contains("join i-0abcd1234ef567890 event ev-1"));
    let params = params_of(&c);
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
    let c = join(Platform::Linux, HOSTILE, "IABC", "ev");
    let block: Vec<&String> = c
        .commands
        .iter()
        .skip(1)
        .take_while(|l| l.starts_with("ADJOIN_"))
        .collect();
    assert_eq!(
        block.len(),
        crate::documents::parameters(Task::Join).len(),
        "every value the document takes, set or empty"
    );
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
    let c = join(Platform::Windows, HOSTILE, "IABC", "ev");
    assert_eq!(c.document.name(), "adjoin-Join-Windows");
    assert!(c.commands[0].starts_with("$ADJOIN_JOIN_MODE_B64 = '"));
    let params = params_of(&c);
    assert_eq!(params["ALLOWED_GROUP"], HOSTILE);
    assert!(c.commands.iter().any(|l| l.contains("Add-Computer")));
    assert!(!params.contains_key("INSTALL_RDS_SESSION_HOST"));
}

#[test]
fn the_rds_role_and_computer_groups_reach_windows_only_when_configured() {
    let mut config = shared_config();
    config.computer_groups = vec!["gmsa-hosts".into(), "ecs hosts".into()];
    config.install_rds_session_host = true;
    let params = |platform| {
        params_of(&join_command(
            &instance(platform, "g"),
            &config,
            &region(),
            "I",
            "e",
        ))
    };
    let windows = params(Platform::Windows);
    assert_eq!(windows["INSTALL_RDS_SESSION_HOST"], "true");
    assert_eq!(windows["COMPUTER_GROUPS"], "gmsa-hosts\necs hosts");
    let linux = params(Platform::Linux);
    assert!(!linux.contains_key("INSTALL_RDS_SESSION_HOST"));
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
    let linux_tools = format!("{}\n{}", scripts::LINUX_COMMON, scripts::LINUX_TOOLS);
    let windows_tools = format!("{}\n{}", scripts::WINDOWS_COMMON, scripts::WINDOWS_TOOLS);
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
            linux_tools.as_str(),
            "fail ",
        ),
        (
            "stage.sh",
            scripts::LINUX_STAGE,
            linux_tools.as_str(),
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
            windows_tools.as_str(),
            "Stop-Adjoin ",
        ),
        (
            "stage.ps1",
            scripts::WINDOWS_STAGE,
            windows_tools.as_str(),
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
    let c = leave(&tools, &config(), &region());
    assert_eq!(c.target, tools.id);
    assert_eq!(c.document, Document::Adjoin(Task::Leave, Platform::Linux));
    let params = params_of(&c);
    assert_eq!(params["COMPUTER_NAME"], "IABC");
    assert_eq!(params["INSTANCE_ID"], "i-0abcd1234ef567890");
    let windows_tools = Instance {
        platform: Platform::Windows,
        ..tools
    };
    let c = leave(&windows_tools, &config(), &region());
    assert!(c.commands.iter().any(|l| l.contains("Remove-ADObject")));
}

#[test]
fn join_and_leave_carry_the_owner_stamp_and_the_leave_the_ou() {
    let stamp = "adjoin 111122223333 eu-west-1 i-0abcd1234ef567890";
    for platform in [Platform::Linux, Platform::Windows] {
        let joined = instance(platform, "g");
        let c = join_command(&joined, &config(), &region(), "IABC", "ev");
        let params = params_of(&c);
        assert_eq!(params["OWNER_STAMP"], stamp, "{platform:?}");

        let tools = crate::testing::instance("i-0fffffffffffffff0", "running", platform, &[]);
        let params = params_of(&leave(&tools, &config(), &region()));
        assert_eq!(params["OWNER_STAMP"], stamp, "{platform:?}");
        assert_eq!(params["OU_PATH"], "OU=Servers,DC=example,DC=test");

        // A tools host in another Region: the stamp names the instance's Region.
        let home = Region::parse("us-east-1").expect("valid");
        let params = params_of(&leave(&tools, &config(), &home));
        assert_eq!(params["OWNER_STAMP"], stamp, "{platform:?}");
    }
    let mut no_ou = config();
    no_ou.ou_path = None;
    let tools = crate::testing::instance("i-0fffffffffffffff0", "running", Platform::Linux, &[]);
    let params = params_of(&leave(&tools, &no_ou, &region()));
    assert_eq!(params.get("OU_PATH"), None);
}

#[test]
fn commands_name_adjoins_own_documents_with_their_values_as_parameters() {
    let c = join(Platform::Linux, HOSTILE, "IABC", "ev");
    assert_eq!(c.document, Document::Adjoin(Task::Join, Platform::Linux));
    assert_eq!(
        c.document_hash, None,
        "the worker sets it once it checked the document"
    );
    assert_eq!(c.parameters["ALLOWED_GROUP"], B64.encode(HOSTILE));
    assert_eq!(
        c.parameters["executionTimeout"],
        JOIN_TIMEOUT_SECS.to_string()
    );
    let names = crate::documents::parameters(Task::Join);
    for (name, value) in &c.parameters {
        assert!(
            name == "executionTimeout" || names.contains(&name.as_str()),
            "{name}"
        );
        assert!(
            value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
        );
    }
    // The original's documents only where the account asks for them.
    let mut compat = config();
    compat.command_documents = CommandDocuments::AwsRunScript;
    let old = join_command(
        &instance(Platform::Windows, "g"),
        &compat,
        &region(),
        "I",
        "e",
    );
    assert_eq!(old.document, Document::RunPowerShellScript);
    // Stage and leave always run adjoin's own, on the tools host.
    let tools = crate::testing::instance("i-0fffffffffffffff0", "running", Platform::Linux, &[]);
    assert_eq!(
        leave(&tools, &compat, &region()).document,
        Document::Adjoin(Task::Leave, Platform::Linux)
    );
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
    let mut request = join(Platform::Linux, "g", "IABC", "ev");
    request
        .parameters
        .insert("ALLOWED_GROUP".into(), B64.encode(&hostile));
    // adjoin's document as SSM runs it: its assignment lines with each {{ NAME }}
    // replaced by the command's value, then the shared helpers, then a probe that prints
    // the decoded value.
    let doc = crate::documents::content(crate::documents::Task::Join, Platform::Linux);
    let mut script: Vec<String> = doc["mainSteps"][0]["inputs"]["runCommand"]
        .as_array()
        .expect("runCommand")
        .iter()
        .filter_map(|l| l.as_str())
        .filter(|l| l.starts_with("ADJOIN_"))
        .map(|l| {
            request
                .parameters
                .iter()
                .fold(l.to_owned(), |line, (name, value)| {
                    line.replace(&format!("{{{{ {name} }}}}"), value)
                })
        })
        .collect();
    script.extend(scripts::LINUX_COMMON.lines().map(str::to_owned));
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
    let c = join(Platform::Linux, "g", "I", &"e".repeat(300));
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
        let c = join(Platform::Linux, "g", "I", &event_id);
        let full = format!("adjoin join i-0abcd1234ef567890 event {event_id}");
        let expected = full.chars().count().min(100);
        assert_eq!(c.comment.chars().count(), expected, "{event_id}");
        assert!(full.starts_with(&c.comment));
    }
    let short = join(Platform::Linux, "g", "I", "é");
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
            !line[i + "$Error".len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_')
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
        ("tools.ps1", scripts::WINDOWS_TOOLS),
        ("stage.ps1", scripts::WINDOWS_STAGE),
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

#[test]
fn joins_never_take_over_a_computer_someone_else_made() {
    // Before joining, both scripts look the name up and stop (exit 19) on an object
    // that is not stamped as this instance's.
    for (script, look, join) in [
        (scripts::LINUX_JOIN, "not_taken_over\n", "    join\n"),
        (
            scripts::WINDOWS_JOIN,
            "Get-AdjoinComputerEntry -Credential $credential -MustAnswer",
            "Add-Computer @joinArgs",
        ),
    ] {
        let looked = script.find(look).expect("the look-up");
        let joined = script.find(join).expect("the join");
        assert!(looked < joined, "the look-up comes first");
        assert!(script.contains("19"), "exit 19");
    }
}

#[test]
fn tags_place_the_object_only_where_the_account_allows() {
    let mut config = shared_config();
    config.allowed_ou_paths = vec!["OU=Gmsa Hosts,OU=Servers,DC=example,DC=test".into()];
    config.allowed_computer_groups = vec!["ecs-gmsa-readers".into()];
    config.computer_groups = vec!["all-servers".into()];
    let tagged = |tags: &[(&str, &str)]| Instance {
        tags: tags
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
        ..instance(Platform::Linux, "g")
    };
    let p = placement(
        &tagged(&[
            ("adOuPath", "ou=gmsa hosts, ou=Servers,DC=example,DC=test"),
            ("adComputerGroups", "ECS-gmsa-readers"),
        ]),
        &config,
    );
    assert_eq!(
        p.ou_path.as_deref(),
        Some("OU=Gmsa Hosts,OU=Servers,DC=example,DC=test"),
        "the account's spelling"
    );
    assert_eq!(p.computer_groups, ["all-servers", "ecs-gmsa-readers"]);
    let params = params_of(&join_command(
        &tagged(&[("adOuPath", "OU=Gmsa Hosts,OU=Servers,DC=example,DC=test")]),
        &config,
        &region(),
        "I",
        "e",
    ));
    assert_eq!(
        params["OU_PATH"],
        "OU=Gmsa Hosts,OU=Servers,DC=example,DC=test"
    );
    // Without tags: the account's own.
    let plain = placement(&instance(Platform::Linux, "g"), &config);
    assert_eq!(
        plain.ou_path.as_deref(),
        Some("OU=Servers,DC=example,DC=test")
    );
    assert_eq!(plain.computer_groups, ["all-servers"]);
}
