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

use std::collections::BTreeMap;

use crate::config::{AccountConfig, CommandDocuments, CommandOutput, JoinMode, PasswordRef};
use crate::documents::{self, Task};
use crate::ids::{InstanceId, Region};
use crate::instance::{
    COMPUTER_GROUPS_TAG, GROUP_TAG, Instance, OU_TAG, Platform, SUDO_TAG, login_groups,
    ou_tag_problem,
};
use crate::staging;

/// The SSM document a command runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Document {
    /// adjoin's own document for a task and platform: the script pinned by content
    /// ([`crate::documents`]).
    Adjoin(Task, Platform),
    /// The original's documents, for accounts whose config item says
    /// `commandDocuments: awsRunScript`: any command, as root or SYSTEM.
    RunShellScript,
    RunPowerShellScript,
}

impl Document {
    /// The document of `task` on `platform` under `documents` (the task's own unless the
    /// account asks for the original's).
    pub fn of(task: Task, platform: Platform, documents: CommandDocuments) -> Self {
        match (documents, platform) {
            (CommandDocuments::Adjoin, _) => Document::Adjoin(task, platform),
            (CommandDocuments::AwsRunScript, Platform::Linux) => Document::RunShellScript,
            (CommandDocuments::AwsRunScript, Platform::Windows) => Document::RunPowerShellScript,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Document::Adjoin(task, platform) => documents::name(task, platform),
            Document::RunShellScript => "AWS-RunShellScript",
            Document::RunPowerShellScript => "AWS-RunPowerShellScript",
        }
    }
    /// adjoin's own (pinned) document.
    pub fn is_adjoins(self) -> bool {
        matches!(self, Document::Adjoin(..))
    }
}

impl Serialize for Document {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.name())
    }
}

/// A SendCommand request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommandRequest {
    pub document: Document,
    /// The instance that runs the command.
    pub target: InstanceId,
    /// More instances that run it: a join command gathered for several instances
    /// ([`gathered`]); empty otherwise.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub more_targets: Vec<InstanceId>,
    /// What runs: the parameter block, then the script. The `commands` parameter of the
    /// original's documents; for adjoin's own, what the document runs once SSM put the
    /// values in.
    pub commands: Vec<String>,
    /// The parameters of adjoin's own document: each value base64, and
    /// `executionTimeout`.
    pub parameters: BTreeMap<String, String>,
    /// The SHA-256 SSM reported for adjoin's document once the worker compared its
    /// content with this version's (`DocumentHash`); `None` until then.
    pub document_hash: Option<String>,
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
            let placement = placement(instance, config);
            let mut p = vec![("JOIN_MODE", JoinMode::SharedPassword.as_str().to_owned())];
            p.extend(directory_params(config, region));
            p.push(("OU_PATH", placement.ou_path.unwrap_or_default()));
            p.push(("COMPUTER_GROUPS", placement.computer_groups.join("\n")));
            p
        }
    };
    params.push(("COMPUTER_NAME", computer_name.to_owned()));
    // The login groups, comma-separated (no AD group name has a comma; a name with a
    // control character stays one name, which the script refuses).
    params.push((
        "ALLOWED_GROUP",
        login_groups(instance.tag(GROUP_TAG).unwrap_or_default()).join(","),
    ));
    if instance.platform == Platform::Linux {
        params.push(("SUDO_GROUPS", sudo_groups(instance, config).join(",")));
    }
    if instance.platform == Platform::Windows && config.install_rds_session_host {
        params.push(("INSTALL_RDS_SESSION_HOST", "true".to_owned()));
    }
    params.push(("INSTANCE_ID", instance.id.as_str().to_owned()));
    params.push(("OWNER_STAMP", owner_stamp(config, region, &instance.id)));
    request(
        Task::Join,
        Document::of(Task::Join, instance.platform, config.command_documents),
        instance,
        &params,
        comment("join", &instance.id, event_id),
        &config.command_output,
    )
}

/// The instance a command on the AD tools host is about, and the event that asked.
#[derive(Debug, Clone, Copy)]
pub struct Subject<'a> {
    /// The instance's Region (its owner stamp names it).
    pub region: &'a Region,
    pub instance_id: &'a InstanceId,
    pub computer_name: &'a str,
    pub event_id: &'a str,
}

/// Where an instance's computer object goes, and the groups it joins.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Placement {
    /// Its `adOuPath` tag (spelled as the account's `allowedOuPaths` spells it), else
    /// the account's `ouPath`.
    pub ou_path: Option<String>,
    /// The account's `computerGroups`, then those its `adComputerGroups` tag adds.
    pub computer_groups: Vec<String>,
}

/// The placement of `instance` under `config` (its tags checked by the plan already).
pub fn placement(instance: &Instance, config: &AccountConfig) -> Placement {
    let ou_path = instance
        .tag(OU_TAG)
        .and_then(|tag| {
            config
                .allowed_ou_paths
                .iter()
                .find(|ou| ou_tag_problem(tag, std::slice::from_ref(ou)).is_none())
                .cloned()
        })
        .or_else(|| config.ou_path.clone());
    let mut computer_groups = config.computer_groups.clone();
    for group in login_groups(instance.tag(COMPUTER_GROUPS_TAG).unwrap_or_default()) {
        if let Some(allowed) = config
            .allowed_computer_groups
            .iter()
            .find(|a| a.trim().eq_ignore_ascii_case(group))
            && !computer_groups
                .iter()
                .any(|g| g.eq_ignore_ascii_case(allowed))
        {
            computer_groups.push(allowed.clone());
        }
    }
    Placement {
        ou_path,
        computer_groups,
    }
}

/// The AD groups whose members get `sudo` on `instance`: the one its `adSudoGroup` tag
/// names (spelled as the account's `sudoGroups` spells it), else all of `sudoGroups`.
pub fn sudo_groups<'a>(instance: &Instance, config: &'a AccountConfig) -> Vec<&'a str> {
    let all = config.sudo_groups.iter().map(String::as_str);
    match instance.tag(SUDO_TAG) {
        Some(tag) => all
            .filter(|g| g.trim().eq_ignore_ascii_case(tag.trim()))
            .take(1)
            .collect(),
        None => all.collect(),
    }
}

/// What every command on the AD tools host takes: the directory and the join user's
/// password reference (read in `tools_region`), the subject's computer name, instance
/// id and owner stamp, and the OU its object is (to be) in.
fn tools_host_params(
    config: &AccountConfig,
    tools_region: &Region,
    subject: &Subject<'_>,
    ou_path: Option<&str>,
) -> Params {
    let mut params = directory_params(config, tools_region);
    params.push(("COMPUTER_NAME", subject.computer_name.to_owned()));
    params.push(("INSTANCE_ID", subject.instance_id.as_str().to_owned()));
    params.push(("OU_PATH", ou_path.unwrap_or_default().to_owned()));
    params.push((
        "OWNER_STAMP",
        owner_stamp(config, subject.region, subject.instance_id),
    ));
    params
}

/// The stage command of a staged join: run on the AD tools host (in `tools_region`), it
/// creates the computer account `computer_name` of the subject instance (which runs in
/// its `region`) in the configured OU, with the owner stamp as its description,
/// the computer groups, and the one-time password it reads (and deletes) from the
/// parameter [`staging::tools_host_parameter`]. A same-named object that is not ours is
/// left alone (exit 19); one of ours is replaced.
pub fn stage_command(
    tools_host: &Instance,
    config: &AccountConfig,
    tools_region: &Region,
    subject: &Subject<'_>,
    placement: &Placement,
) -> CommandRequest {
    let mut params = tools_host_params(config, tools_region, subject, placement.ou_path.as_deref());
    params.push(("COMPUTER_GROUPS", placement.computer_groups.join("\n")));
    params.push((
        "OTP_SSM_PARAMETER",
        staging::tools_host_parameter(&config.account, subject.region, subject.instance_id),
    ));
    params.push(("OTP_REGION", tools_region.as_str().to_owned()));
    request(
        Task::Stage,
        Document::Adjoin(Task::Stage, tools_host.platform),
        tools_host,
        &params,
        comment("stage", subject.instance_id, subject.event_id),
        &config.command_output,
    )
}

/// The leave command: run on the AD tools host (in `tools_region`), it deletes
/// `computer_name` if it is the object of `instance_id` (which ran in `instance_region`):
/// the object's description is the owner stamp and it lies in `ou_path` (the OU the
/// ledger recorded at the join, else the account's `ouPath`).
pub fn leave_command(
    tools_host: &Instance,
    config: &AccountConfig,
    tools_region: &Region,
    subject: &Subject<'_>,
    ou_path: Option<&str>,
) -> CommandRequest {
    let params = tools_host_params(config, tools_region, subject, ou_path);
    request(
        Task::Leave,
        Document::Adjoin(Task::Leave, tools_host.platform),
        tools_host,
        &params,
        comment("leave", subject.instance_id, subject.event_id),
        &config.command_output,
    )
}

/// What the command sent for `request` is looked for by, among the commands sent to its
/// target since a claim: a join's "adjoin join " (a gathered join's comment names only
/// its first instance, and no one else sends joins to a claimed instance); a tools-host
/// command's whole comment (the host runs commands for many instances).
pub fn lookup_comment(request: &CommandRequest) -> &str {
    match request.document {
        Document::Adjoin(Task::Join, _)
        | Document::RunShellScript
        | Document::RunPowerShellScript => "adjoin join ",
        Document::Adjoin(..) => &request.comment,
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

/// The request for `task` on `target`: the values as base64, in the lines that run and
/// as the parameters of adjoin's document.
fn request(
    task: Task,
    document: Document,
    target: &Instance,
    params: &Params,
    comment: String,
    output: &CommandOutput,
) -> CommandRequest {
    let encoded: BTreeMap<String, String> = params
        .iter()
        .map(|(name, value)| ((*name).to_owned(), B64.encode(value)))
        .collect();
    let commands = documents::lines(task, target.platform, |name| {
        encoded.get(name).cloned().unwrap_or_default()
    });
    let execution_timeout_secs = match task {
        Task::Join => JOIN_TIMEOUT_SECS,
        Task::Stage | Task::Leave => LEAVE_TIMEOUT_SECS,
    };
    let mut parameters = encoded;
    parameters.insert(
        "executionTimeout".to_owned(),
        execution_timeout_secs.to_string(),
    );
    CommandRequest {
        document,
        target: target.id.clone(),
        more_targets: Vec::new(),
        commands,
        parameters,
        document_hash: None,
        comment,
        execution_timeout_secs,
        output: output.clone(),
    }
}

/// SSM's limit on the instances of one command (`InstanceIds`): a join gathers at most
/// this many instances.
pub const GATHER_MAX_TARGETS: usize = 50;

/// The instances one command on the AD tools host works on at most (one after the other,
/// within the command's time-out and SSM's 24,000 characters of output).
pub const GATHER_MAX_ON_TOOLS_HOST: usize = 10;

/// What requests must share to be gathered into one command ([`gathered`]): the
/// document (and its checked hash), every value that is not an instance's own
/// ([`documents::PER_INSTANCE`]), the time-out and the output; for a command on the AD
/// tools host, the host too. `None` for requests that are sent alone (the original's
/// documents, whose values are in the script lines).
pub fn gather_key(request: &CommandRequest) -> Option<String> {
    let Document::Adjoin(task, _) = request.document else {
        return None;
    };
    let shared: BTreeMap<&String, &String> = shared_parameters(request).collect();
    let host = match task {
        Task::Join => None,
        Task::Stage | Task::Leave => Some(&request.target),
    };
    serde_json::to_string(&(
        request.document,
        host,
        &request.document_hash,
        shared,
        request.execution_timeout_secs,
        &request.output,
    ))
    .ok()
}

/// The request's values that are not an instance's own ([`documents::PER_INSTANCE`]).
fn shared_parameters(request: &CommandRequest) -> impl Iterator<Item = (&String, &String)> {
    request
        .parameters
        .iter()
        .filter(|(name, _)| !documents::PER_INSTANCE.contains(&name.as_str()))
}

/// How many requests like `request` one command takes at most.
pub fn gather_limit(request: &CommandRequest) -> usize {
    match request.document {
        Document::Adjoin(Task::Stage | Task::Leave, _) => GATHER_MAX_ON_TOOLS_HOST,
        _ => GATHER_MAX_TARGETS,
    }
}

/// One command for the instances of `requests` (which share a [`gather_key`]): the shared
/// values as they are, each instance's own in the `INSTANCES` table — a row per instance,
/// its id then `NAME=<base64>` for each of its values. A join goes to all the instances,
/// each script taking the row of the instance it runs on; a stage or leave goes to the
/// AD tools host, which runs once per row. One request is returned as it is.
pub fn gathered(requests: &[CommandRequest]) -> Option<CommandRequest> {
    let (first, rest) = requests.split_first()?;
    let Document::Adjoin(task, platform) = first.document else {
        return None;
    };
    if rest.is_empty() {
        return Some(first.clone());
    }
    let mut parameters: BTreeMap<String, String> = shared_parameters(first)
        .map(|(name, value)| (name.clone(), value.clone()))
        .collect();
    let subject = |r: &CommandRequest| match task {
        Task::Join => r.target.to_string(),
        Task::Stage | Task::Leave => r
            .parameters
            .get("INSTANCE_ID")
            .and_then(|v| B64.decode(v).ok())
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default(),
    };
    let table = requests
        .iter()
        .map(|r| {
            let mut row = subject(r);
            for name in documents::PER_INSTANCE {
                if let Some(value) = r.parameters.get(name).filter(|v| !v.is_empty()) {
                    row.push_str(&format!(" {name}={value}"));
                }
            }
            row
        })
        .collect::<Vec<_>>()
        .join("\n");
    parameters.insert("INSTANCES".to_owned(), B64.encode(table));
    let commands = documents::lines(task, platform, |name| {
        parameters.get(name).cloned().unwrap_or_default()
    });
    // `adjoin <action> <first instance> +<more> event …`.
    let mut words = first.comment.splitn(4, ' ');
    let head: Vec<&str> = words.by_ref().take(3).collect();
    let comment = format!(
        "{} +{} {}",
        head.join(" "),
        rest.len(),
        words.next().unwrap_or_default()
    )
    .trim_end()
    .chars()
    .take(COMMENT_MAX_CHARS)
    .collect();
    let more_targets = match task {
        Task::Join => rest.iter().map(|r| r.target.clone()).collect(),
        Task::Stage | Task::Leave => Vec::new(),
    };
    Some(CommandRequest {
        more_targets,
        commands,
        parameters,
        comment,
        ..first.clone()
    })
}

/// Decodes the parameter block of rendered commands back into the names and values it
/// sets (for dry runs and tests); a name left empty is left out.
pub fn decode_params(commands: &[String]) -> Vec<(String, String)> {
    commands
        .iter()
        .filter_map(|line| {
            let line = line.trim_start_matches('$');
            let (name, rest) = line.split_once("_B64")?;
            let name = name.strip_prefix("ADJOIN_")?;
            let value = rest.trim_start_matches([' ', '=']).trim_matches('\'');
            let bytes = B64.decode(value).ok().filter(|b| !b.is_empty())?;
            Some((
                name.to_owned(),
                String::from_utf8_lossy(&bytes).into_owned(),
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests;
