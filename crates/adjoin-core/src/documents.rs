//! adjoin's own SSM Command documents: the bundled scripts, pinned.
//!
//! Root on a member instance (or the AD tools host) is reachable only through these
//! documents: the member and central roles may send them and no other (the original's
//! `AWS-RunShellScript` / `AWS-RunPowerShellScript` only where an account's config item
//! asks for them, `commandDocuments: awsRunScript`). Each document's content is the
//! script itself, so whoever can change the Lambda's code still cannot change what runs;
//! its parameters are the script's values, each base64 and checked by an
//! `allowedPattern`, so no value can become code. The stacks create the documents from
//! [`content`] (`cargo xtask documents` writes it into `infra/`; a test fails when the
//! templates and the scripts disagree), and before sending the worker reads the
//! document an account holds, compares it with [`content`], and sends with the hash SSM
//! reported for it (`DocumentHash`), so a document changed in an account is refused
//! rather than run.

use serde_json::{Value, json};

use crate::instance::Platform;
use crate::scripts;

/// What a document does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub enum Task {
    /// Joins the instance it runs on.
    Join,
    /// Creates a staged join's computer account (on the AD tools host).
    Stage,
    /// Deletes a terminated instance's computer object (on the AD tools host).
    Leave,
}

/// Every document: (task, platform).
pub const ALL: [(Task, Platform); 6] = [
    (Task::Join, Platform::Linux),
    (Task::Join, Platform::Windows),
    (Task::Stage, Platform::Linux),
    (Task::Stage, Platform::Windows),
    (Task::Leave, Platform::Linux),
    (Task::Leave, Platform::Windows),
];

/// The values each task's script takes (`ADJOIN_<NAME>_B64`), in this order.
pub fn parameters(task: Task) -> &'static [&'static str] {
    match task {
        Task::Join => &[
            "JOIN_MODE",
            "DOMAIN",
            "REALM",
            "DC_IPS",
            "JOIN_USER",
            "PASSWORD_SSM_PARAMETER",
            "PASSWORD_SECRET_ARN",
            "SECRET_REGION",
            "OU_PATH",
            "COMPUTER_GROUPS",
            "OTP_SSM_PARAMETER",
            "OTP_REGION",
            "COMPUTER_NAME",
            "ALLOWED_GROUP",
            "SUDO_GROUPS",
            "INSTALL_RDS_SESSION_HOST",
            "INSTANCE_ID",
            "OWNER_STAMP",
            "INSTANCES",
        ],
        Task::Stage => &[
            "DOMAIN",
            "REALM",
            "DC_IPS",
            "JOIN_USER",
            "PASSWORD_SSM_PARAMETER",
            "PASSWORD_SECRET_ARN",
            "SECRET_REGION",
            "COMPUTER_NAME",
            "INSTANCE_ID",
            "OU_PATH",
            "COMPUTER_GROUPS",
            "OWNER_STAMP",
            "OTP_SSM_PARAMETER",
            "OTP_REGION",
            "INSTANCES",
        ],
        Task::Leave => &[
            "DOMAIN",
            "REALM",
            "DC_IPS",
            "JOIN_USER",
            "PASSWORD_SSM_PARAMETER",
            "PASSWORD_SECRET_ARN",
            "SECRET_REGION",
            "COMPUTER_NAME",
            "INSTANCE_ID",
            "OU_PATH",
            "OWNER_STAMP",
            "INSTANCES",
        ],
    }
}

/// The values that differ from instance to instance. A command for several instances
/// carries them in its `INSTANCES` table, one row per instance (its id, then
/// `NAME=<base64>` for each): a join sent to several instances, where each script takes
/// the row of its own instance id; a stage or leave for several instances on the AD
/// tools host, which runs once per row. The table may carry no other name.
pub const PER_INSTANCE: [&str; 8] = [
    "COMPUTER_NAME",
    "ALLOWED_GROUP",
    "SUDO_GROUPS",
    "INSTANCE_ID",
    "OWNER_STAMP",
    "OTP_SSM_PARAMETER",
    "OU_PATH",
    "COMPUTER_GROUPS",
];

/// The document's name, e.g. `adjoin-Join-Linux`.
pub fn name(task: Task, platform: Platform) -> &'static str {
    match (task, platform) {
        (Task::Join, Platform::Linux) => "adjoin-Join-Linux",
        (Task::Join, Platform::Windows) => "adjoin-Join-Windows",
        (Task::Stage, Platform::Linux) => "adjoin-Stage-Linux",
        (Task::Stage, Platform::Windows) => "adjoin-Stage-Windows",
        (Task::Leave, Platform::Linux) => "adjoin-Leave-Linux",
        (Task::Leave, Platform::Windows) => "adjoin-Leave-Windows",
    }
}

/// The task and platform of a document name, if it is one of adjoin's.
pub fn by_name(document: &str) -> Option<(Task, Platform)> {
    ALL.into_iter().find(|(t, p)| name(*t, *p) == document)
}

/// What a parameter value may be: base64 (the values are data).
pub const VALUE_PATTERN: &str = "^[A-Za-z0-9+/]*={0,2}$";

/// The scripts a task's document runs after the shared helpers.
fn scripts(task: Task, platform: Platform) -> Vec<&'static str> {
    match (task, platform) {
        (Task::Join, Platform::Linux) => vec![scripts::LINUX_COMMON, scripts::LINUX_JOIN],
        (Task::Stage, Platform::Linux) => vec![
            scripts::LINUX_COMMON,
            scripts::LINUX_TOOLS,
            scripts::LINUX_STAGE,
        ],
        (Task::Leave, Platform::Linux) => vec![
            scripts::LINUX_COMMON,
            scripts::LINUX_TOOLS,
            scripts::LINUX_LEAVE,
        ],
        (Task::Join, Platform::Windows) => vec![scripts::WINDOWS_COMMON, scripts::WINDOWS_JOIN],
        (Task::Stage, Platform::Windows) => vec![
            scripts::WINDOWS_COMMON,
            scripts::WINDOWS_TOOLS,
            scripts::WINDOWS_STAGE,
        ],
        (Task::Leave, Platform::Windows) => vec![
            scripts::WINDOWS_COMMON,
            scripts::WINDOWS_TOOLS,
            scripts::WINDOWS_LEAVE,
        ],
    }
}

/// The parameter assignments: one line per value, the document parameter substituted
/// by SSM (a base64 literal, by its `allowedPattern`).
pub fn assignment(platform: Platform, name: &str, value: &str) -> String {
    match platform {
        Platform::Linux => format!("ADJOIN_{name}_B64='{value}'"),
        Platform::Windows => format!("$ADJOIN_{name}_B64 = '{value}'"),
    }
}

/// The lines a command runs: the assignments (`value` gives each name's value), then
/// the scripts, shebangs dropped.
pub fn lines(task: Task, platform: Platform, mut value: impl FnMut(&str) -> String) -> Vec<String> {
    let mut lines = Vec::new();
    if platform == Platform::Linux {
        lines.push("#!/usr/bin/env bash".to_owned());
    }
    for name in parameters(task) {
        lines.push(assignment(platform, name, &value(name)));
    }
    for part in scripts(task, platform) {
        lines.extend(
            part.lines()
                .filter(|l| !l.starts_with("#!"))
                .map(str::to_owned),
        );
    }
    lines
}

/// How long the document lets a task run, in seconds, unless the command says.
fn default_timeout(task: Task) -> u32 {
    match task {
        Task::Join => crate::render::JOIN_TIMEOUT_SECS,
        Task::Stage | Task::Leave => crate::render::LEAVE_TIMEOUT_SECS,
    }
}

/// The document's content (schema 2.2), as the stacks create it.
pub fn content(task: Task, platform: Platform) -> Value {
    let mut params = serde_json::Map::new();
    for name in parameters(task) {
        params.insert(
            (*name).to_owned(),
            json!({
                "type": "String",
                "description": format!("{name}, base64-encoded"),
                "default": "",
                "allowedPattern": VALUE_PATTERN
            }),
        );
    }
    params.insert(
        "executionTimeout".to_owned(),
        json!({
            "type": "String",
            "description": "Seconds the script may run",
            "default": default_timeout(task).to_string(),
            "allowedPattern": "^[0-9]{1,5}$"
        }),
    );
    let (action, platform_type) = match platform {
        Platform::Linux => ("aws:runShellScript", "Linux"),
        Platform::Windows => ("aws:runPowerShellScript", "Windows"),
    };
    let step = match task {
        Task::Join => "join",
        Task::Stage => "stage",
        Task::Leave => "leave",
    };
    json!({
        "schemaVersion": "2.2",
        "description": format!(
            "adjoin {step} ({}): the bundled script of adjoin {}; values are base64 data",
            platform.as_str(),
            env!("CARGO_PKG_VERSION")
        ),
        "parameters": Value::Object(params),
        "mainSteps": [{
            "action": action,
            "name": step,
            "precondition": { "StringEquals": ["platformType", platform_type] },
            "inputs": {
                "timeoutSeconds": "{{ executionTimeout }}",
                "runCommand": lines(task, platform, |name| format!("{{{{ {name} }}}}"))
            }
        }]
    })
}

/// The first line of the generated part of a template.
pub const BEGIN_MARKER: &str = "  # ---- adjoin's documents: written by `adjoin documents --write-templates infra` from scripts/; do not edit";
/// Its last line.
pub const END_MARKER: &str = "  # ---- end of adjoin's documents";

/// The logical id of a document's resource, e.g. `JoinLinuxDocument`.
pub fn logical_id(task: Task, platform: Platform) -> String {
    let platform = match platform {
        Platform::Linux => "Linux",
        Platform::Windows => "Windows",
    };
    format!("{task:?}{platform}Document")
}

/// The documents each template creates, and the condition they are created under.
pub fn of_template(template: &str) -> Option<(&'static [Task], Option<&'static str>)> {
    match template {
        "member.yaml" => Some((&[Task::Join], None)),
        // Not where member.yaml (or central.yaml's account) already has them.
        "region-forwarder.yaml" => Some((&[Task::Join], Some("OutsideCentralRegion"))),
        "central.yaml" => Some((&[Task::Stage, Task::Leave], None)),
        _ => None,
    }
}

/// The CloudFormation resources of `tasks`' documents, between the markers: each
/// document's content as JSON (valid YAML), named as the worker sends it.
pub fn cloudformation(tasks: &[Task], condition: Option<&str>) -> String {
    let mut out = format!("{BEGIN_MARKER}\n");
    for (task, platform) in ALL.into_iter().filter(|(t, _)| tasks.contains(t)) {
        let json = serde_json::to_string_pretty(&content(task, platform)).unwrap_or_default();
        out.push_str(&format!(
            "  {}:\n    Type: AWS::SSM::Document\n",
            logical_id(task, platform)
        ));
        if let Some(condition) = condition {
            out.push_str(&format!("    Condition: {condition}\n"));
        }
        out.push_str(&format!(
            "    Properties:\n      Name: {}\n      DocumentType: Command\n      DocumentFormat: JSON\n      UpdateMethod: NewVersion\n      Content:\n",
            name(task, platform)
        ));
        for line in json.lines() {
            out.push_str(&format!("        {line}\n"));
        }
    }
    out.push_str(END_MARKER);
    out.push('\n');
    out
}

/// `template` with its generated part replaced by `block`; `None` when it has no
/// markers.
pub fn with_block(template: &str, block: &str) -> Option<String> {
    let begin = template.find(BEGIN_MARKER)?;
    let end = begin + template.get(begin..)?.find(END_MARKER)? + END_MARKER.len();
    let rest = template
        .get(end..)?
        .strip_prefix('\n')
        .unwrap_or(template.get(end..)?);
    Some(format!("{}{block}{rest}", template.get(..begin)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_found_again() {
        let names: std::collections::BTreeSet<_> = ALL.iter().map(|(t, p)| name(*t, *p)).collect();
        assert_eq!(names.len(), ALL.len());
        for (t, p) in ALL {
            assert_eq!(by_name(name(t, p)), Some((t, p)));
            // SSM: 3 to 128 of letters, digits, _ - . and never an AWS- or Amazon prefix.
            let n = name(t, p);
            assert!(n.len() >= 3 && n.len() <= 128);
            assert!(!n.starts_with("AWS") && !n.starts_with("Amazon"));
        }
        assert_eq!(by_name("AWS-RunShellScript"), None);
    }

    #[test]
    fn every_value_is_a_base64_parameter_and_the_script_follows_unchanged() {
        for (task, platform) in ALL {
            let doc = content(task, platform);
            let params = doc["parameters"].as_object().expect("parameters");
            assert_eq!(params.len(), parameters(task).len() + 1);
            for name in parameters(task) {
                assert_eq!(params[*name]["allowedPattern"], VALUE_PATTERN);
            }
            let run: Vec<&str> = doc["mainSteps"][0]["inputs"]["runCommand"]
                .as_array()
                .expect("runCommand")
                .iter()
                .map(|l| l.as_str().expect("line"))
                .collect();
            // The only substitutions are the assignments of base64 values.
            for line in &run {
                if line.contains("{{") {
                    assert!(
                        parameters(task)
                            .iter()
                            .any(|n| *line == assignment(platform, n, &format!("{{{{ {n} }}}}"))),
                        "{line}"
                    );
                }
            }
            let text = run.join("\n");
            for part in scripts(task, platform) {
                let body: Vec<&str> = part.lines().filter(|l| !l.starts_with("#!")).collect();
                assert!(text.contains(&body.join("\n")), "{task:?} {platform:?}");
            }
        }
    }

    #[test]
    fn the_pattern_admits_base64_and_nothing_a_shell_or_powershell_reads() {
        let re = |s: &str| {
            // ^[A-Za-z0-9+/]*={0,2}$ by hand (no regex crate in the core).
            let body = s.trim_end_matches('=');
            s.len() - body.len() <= 2
                && body
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        };
        assert!(re("YWRtaW5zJzsgcmVib290Cg=="));
        for hostile in ["a'b", "$(id)", "`id`", "a b", "a\nb", "a;b", "'{{x}}'"] {
            assert!(!re(hostile), "{hostile}");
        }
    }
}
