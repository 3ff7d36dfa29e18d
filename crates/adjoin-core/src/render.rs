//! Rendering a decision into an SSM Run Command request.
//!
//! Values reach the bundled scripts as data: each one is base64-encoded into a
//! variable assignment (`ADJOIN_NAME_B64='…'`) placed above the script, and the script
//! decodes it with `base64 -d` (bash) or `[Convert]::FromBase64String` (PowerShell).
//! The base64 alphabet has no quote, `$`, backtick or newline, so no tag value can
//! become code. No password ever appears: only a reference to where it is (the join
//! user's, or a staged join's one-time password parameter).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;

use crate::config::{AccountConfig, CommandOutput, JoinMode, PasswordRef};
use crate::ids::{InstanceId, Region};
use crate::instance::{GROUP_TAG, Instance, Platform};
use crate::scripts;
use crate::staging;

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

/// The domain controllers' IPs, space-separated.
fn dc_ips(config: &AccountConfig) -> String {
    config
        .dc_ips
        .iter()
        .map(|ip| ip.to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The directory and where the join user's password is (for the AD tools host, or for
/// an instance that joins with the shared password).
fn directory_params(config: &AccountConfig, secret_region: &Region) -> Params {
    let mut p: Params = vec![
        ("DOMAIN", config.dns_name.clone()),
        ("REALM", config.realm()),
        ("DC_IPS", dc_ips(config)),
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
///
/// Staged ([`JoinMode::Staged`]): the command names the instance's one-time password
/// parameter, and nothing that reaches the join user's password; the computer account,
/// its OU, groups and owner stamp were made by the stage command. Shared password: the
/// command names where the join user's password is, and the instance makes the account.
pub fn join_command(
    instance: &Instance,
    config: &AccountConfig,
    region: &Region,
    computer_name: &str,
    event_id: &str,
) -> CommandRequest {
    let mut params: Params = match config.join_mode {
        JoinMode::Staged => vec![
            ("JOIN_MODE", JoinMode::Staged.as_str().to_owned()),
            ("DOMAIN", config.dns_name.clone()),
            ("REALM", config.realm()),
            ("DC_IPS", dc_ips(config)),
            (
                "OTP_SSM_PARAMETER",
                staging::instance_parameter(&instance.id),
            ),
            ("OTP_REGION", region.as_str().to_owned()),
        ],
        JoinMode::SharedPassword => {
            let mut p = vec![("JOIN_MODE", JoinMode::SharedPassword.as_str().to_owned())];
            p.extend(directory_params(config, region));
            p.push(("OU_PATH", config.ou_path.clone().unwrap_or_default()));
            p.push(("COMPUTER_GROUPS", config.computer_groups.join("\n")));
            p
        }
    };
    params.push(("COMPUTER_NAME", computer_name.to_owned()));
    params.push((
        "ALLOWED_GROUP",
        instance.tag(GROUP_TAG).unwrap_or_default().to_owned(),
    ));
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
        commands: with_params(instance.platform, &params, &[script]),
        comment: comment("join", &instance.id, event_id),
        execution_timeout_secs: JOIN_TIMEOUT_SECS,
        output: config.command_output.clone(),
    }
}

/// The stage command of a staged join: run on the AD tools host (in `tools_region`), it
/// creates the computer account `computer_name` of `instance_id` (which runs in
/// `instance_region`) in the configured OU, with the owner stamp as its description,
/// the computer groups, and the one-time password it reads (and deletes) from the
/// parameter [`staging::tools_host_parameter`]. A same-named object that is not ours is
/// left alone (exit 19); one of ours is replaced.
pub fn stage_command(
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
    params.push(("COMPUTER_GROUPS", config.computer_groups.join("\n")));
    params.push((
        "OWNER_STAMP",
        owner_stamp(config, instance_region, instance_id),
    ));
    params.push((
        "OTP_SSM_PARAMETER",
        staging::tools_host_parameter(&config.account, instance_region, instance_id),
    ));
    params.push(("OTP_REGION", tools_region.as_str().to_owned()));
    let scripts = match tools_host.platform {
        Platform::Linux => [scripts::LINUX_TOOLS, scripts::LINUX_STAGE],
        Platform::Windows => [scripts::WINDOWS_TOOLS, scripts::WINDOWS_STAGE],
    };
    CommandRequest {
        document: Document::for_platform(tools_host.platform),
        target: tools_host.id.clone(),
        commands: with_params(tools_host.platform, &params, &scripts),
        comment: comment("stage", instance_id, event_id),
        execution_timeout_secs: LEAVE_TIMEOUT_SECS,
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
    let scripts = match tools_host.platform {
        Platform::Linux => [scripts::LINUX_TOOLS, scripts::LINUX_LEAVE],
        Platform::Windows => [scripts::WINDOWS_TOOLS, scripts::WINDOWS_LEAVE],
    };
    CommandRequest {
        document: Document::for_platform(tools_host.platform),
        target: tools_host.id.clone(),
        commands: with_params(tools_host.platform, &params, &scripts),
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
/// then the scripts.
fn with_params(platform: Platform, params: &Params, scripts: &[&str]) -> Vec<String> {
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
    for part in std::iter::once(common).chain(scripts.iter().copied()) {
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
mod tests;
