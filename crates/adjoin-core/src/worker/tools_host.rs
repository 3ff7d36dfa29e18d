//! The AD tools host: a running instance in the service's own account and Region with
//! the tools-host tag (or the one a config item pins by id), found and kept for a while.
//!
//! Several hosts may carry the tag: those whose SSM agent is online come first (when
//! agent status can be read; else they are taken by id), and a command a host's agent
//! cannot take (not registered, offline: `InvalidInstanceId`) goes to the next one in the
//! same delivery. When none is usable, the message says which hosts were tried and why.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;
use tracing::warn;

use super::act::Job;
use super::{Fate, Worker, error_fate};
use crate::config::TagMatch;
use crate::error::Error;
use crate::ids::InstanceId;
use crate::instance::{Instance, InstanceState};
use crate::ports::{AccountPorts, CommandResult, CommandStatus};
use crate::render::CommandRequest;

/// Which hosts a config item's commands go to: by tag, or one pinned by id.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) enum HostKey {
    Tag(TagMatch),
    Pinned(InstanceId),
}

/// Tools hosts found, best first, by key, each list kept for `ttl`.
pub(super) struct ToolsHosts {
    ttl: Duration,
    found: Mutex<HashMap<HostKey, (Vec<Instance>, Instant)>>,
}

impl ToolsHosts {
    pub(super) fn new(ttl: Duration) -> Self {
        ToolsHosts {
            ttl,
            found: Mutex::new(HashMap::new()),
        }
    }

    /// Forgets the hosts of `key` (one may have stopped or been replaced).
    pub(super) async fn forget(&self, key: &HostKey) {
        self.found.lock().await.remove(key);
    }
}

/// Hosts best first: agents online before the others, each by id.
fn ordered(mut hosts: Vec<Instance>, online: Option<&[InstanceId]>) -> Vec<Instance> {
    hosts.sort_by(|a, b| {
        let down = |i: &Instance| online.is_some_and(|o| !o.contains(&i.id));
        (down(a), &a.id).cmp(&(down(b), &b.id))
    });
    hosts
}

impl Worker {
    /// The key of the job's tools hosts: its config item's `toolsHostId`, else its tag.
    pub(super) fn tools_host_key(&self, job: &Job<'_>) -> HostKey {
        let config = &job.group.config;
        match &config.tools_host_id {
            Some(id) => HostKey::Pinned(id.clone()),
            None => HostKey::Tag(config.tools_host_tag(&self.settings.tools_host_tag).clone()),
        }
    }

    /// The home account's ports and the AD tools hosts of `key`, best first (never
    /// empty): the kept list, else found now (one DescribeInstances, one
    /// DescribeInstanceInformation), kept from now on.
    pub(super) async fn tools_hosts(
        &self,
        key: &HostKey,
        receive_count: u32,
    ) -> Result<(AccountPorts, Vec<Instance>), Fate> {
        let fate = |e: Error| error_fate(e, receive_count, &self.settings);
        let home = self.ports.sessions.home().await.map_err(fate)?;
        let mut found = self.tools_hosts.found.lock().await;
        if let Some((hosts, at)) = found.get(key)
            && at.elapsed() < self.tools_hosts.ttl
            && !hosts.is_empty()
        {
            return Ok((home, hosts.clone()));
        }
        let place = format!("account {} {}", home.account, home.region);
        let hosts = match key {
            HostKey::Tag(tag) => home
                .instances
                .find_running_by_tag(tag)
                .await
                .map_err(fate)?,
            HostKey::Pinned(id) => {
                let described = home
                    .instances
                    .describe(std::slice::from_ref(id))
                    .await
                    .map_err(fate)?;
                match described.into_iter().find(|i| &i.id == id) {
                    Some(i) if i.state == InstanceState::Running => vec![i],
                    Some(i) => {
                        return Err(Fate::Failed(format!(
                            "the AD tools host {id} the config item pins (toolsHostId) is {} in {place}",
                            i.state
                        )));
                    }
                    None => {
                        return Err(Fate::Rejected(format!(
                            "the AD tools host {id} the config item pins (toolsHostId) is not in {place}"
                        )));
                    }
                }
            }
        };
        if hosts.is_empty() {
            let HostKey::Tag(tag) = key else {
                return Err(Fate::Failed(format!("no AD tools host in {place}")));
            };
            return Err(Fate::Failed(format!(
                "no running AD tools host tagged {}={} in {place}",
                tag.key, tag.value
            )));
        }
        let ids: Vec<InstanceId> = hosts.iter().map(|h| h.id.clone()).collect();
        let online = match home.commands.online(&ids).await {
            Ok(online) => Some(online),
            Err(e) => {
                // Permission missing, or an endpoint without the operation: try the hosts
                // by id, and let a failed send move on to the next.
                warn!(error = %e, "the tools hosts' agent status cannot be read; trying them by id");
                None
            }
        };
        let hosts = ordered(hosts, online.as_deref());
        found.insert(key.clone(), (hosts.clone(), Instant::now()));
        Ok((home, hosts))
    }

    /// Sends the command `build` makes for a host to the first of `hosts` that takes it:
    /// a host whose agent cannot take commands (not registered, offline) is passed over
    /// for the next, and the kept list is forgotten. Returns the host, the request and the
    /// command id.
    pub(super) async fn send_to_tools_host(
        &self,
        job: &Job<'_>,
        key: &HostKey,
        home: &AccountPorts,
        hosts: &[Instance],
        build: impl Fn(&Instance) -> CommandRequest,
    ) -> Result<(Instance, CommandRequest, String), NotSent> {
        let mut refused = Vec::new();
        let mut last = None;
        for host in hosts {
            let request = build(host);
            match self.send(home, &request, Some(job.gather)).await {
                Ok(command_id) => return Ok((host.clone(), request, command_id)),
                Err(e @ Error::AgentNotReady { .. }) => {
                    warn!(tools_host = %host.id, error = %e, "the tools host cannot take commands; trying the next");
                    self.tools_hosts.forget(key).await;
                    refused.push(host.id.to_string());
                    last = Some((host.clone(), request, e.operation()));
                }
                Err(error) => {
                    if !error.is_transient() {
                        self.tools_hosts.forget(key).await;
                    }
                    return Err(NotSent {
                        tried: Some((host.clone(), request)),
                        error,
                    });
                }
            }
        }
        let tried = last.map(|(host, request, _)| (host, request));
        Err(NotSent {
            tried,
            error: Error::AgentNotReady {
                operation: "ssm:SendCommand",
                message: format!(
                    "no AD tools host could take the command (agent not registered or offline): {}",
                    if refused.is_empty() {
                        "none found".to_owned()
                    } else {
                        refused.join(", ")
                    }
                ),
            },
        })
    }
}

/// What a command on the AD tools host came to: its result and its last output lines.
pub(super) struct ToolsHostResult {
    pub result: crate::ports::CommandResult,
    pub tail: String,
}

impl Worker {
    /// The result of the command `command_id` that this delivery sent to the tools host
    /// `target` (as the ledger recorded it; `what` names the command for errors), or
    /// the fate when it cannot be read.
    pub(super) async fn tools_host_result(
        &self,
        job: &Job<'_>,
        command_id: &str,
        target: &str,
        what: &str,
    ) -> Result<ToolsHostResult, Fate> {
        let target = InstanceId::parse(target)
            .map_err(|e| Fate::Rejected(format!("the ledger's {what} target: {e}")))?;
        let fate = |e: Error| error_fate(e, job.message.receive_count, &self.settings);
        let home = self.ports.sessions.home().await.map_err(fate)?;
        let result = job
            .gather
            .result(&home, command_id, &target)
            .await
            .map_err(fate)?;
        let result = own_result(result, &job.event.instance_id);
        let tail =
            crate::ledger::output_tail(&result.stdout, &result.stderr, crate::ledger::OUTPUT_LINES);
        Ok(ToolsHostResult { result, tail })
    }
}

/// `instance`'s part of a command on the AD tools host: a command for several instances
/// runs once per instance, prints each run's lines prefixed with its instance id, then
/// `adjoin-result <instance-id> <exit code>`. The whole command's result when it has no
/// such line for `instance` (a command for it alone, or one still running). A finished
/// command for several instances that has no line for `instance` failed before its turn.
pub(super) fn own_result(whole: CommandResult, instance: &InstanceId) -> CommandResult {
    let prefix = format!("{instance}: ");
    let result_line = format!("adjoin-result {instance} ");
    let mut code = None;
    let mut gathered = false;
    let mut own = Vec::new();
    for line in whole.stdout.lines() {
        if let Some(c) = line.strip_prefix(&result_line) {
            code = c.trim().parse::<i32>().ok();
        } else if line.starts_with("adjoin-result ") {
            gathered = true;
        } else if let Some(l) = line.strip_prefix(&prefix) {
            own.push(l);
        }
    }
    let finished = matches!(
        whole.status,
        CommandStatus::Success | CommandStatus::Failed(_)
    );
    match code {
        Some(0) => CommandResult {
            status: CommandStatus::Success,
            exit_code: Some(0),
            stdout: own.join("\n"),
            stderr: String::new(),
        },
        Some(c) => CommandResult {
            status: CommandStatus::Failed("Failed".into()),
            exit_code: Some(c),
            stdout: own.join("\n"),
            stderr: String::new(),
        },
        // Its own exit code is not known: not the command's (another instance's).
        None if gathered && finished && whole.status != CommandStatus::Success => CommandResult {
            status: whole.status.clone(),
            exit_code: None,
            stdout: format!("no result for {instance} in the command's output"),
            stderr: whole.stderr,
        },
        None => whole,
    }
}

/// A command no tools host took: the last host tried and its request (if any), and why.
pub(super) struct NotSent {
    pub tried: Option<(Instance, CommandRequest)>,
    pub error: Error,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(status: CommandStatus, stdout: &str) -> CommandResult {
        CommandResult {
            status,
            exit_code: Some(14),
            stdout: stdout.into(),
            stderr: String::new(),
        }
    }

    fn id(s: &str) -> InstanceId {
        InstanceId::parse(s).expect("id")
    }

    const OUTPUT: &str = "i-0aaaaaaaaaaaaaaa1: adjoin: staged\n\
        adjoin-result i-0aaaaaaaaaaaaaaa1 0\n\
        i-0aaaaaaaaaaaaaaa2: adjoin: error: refused\n\
        adjoin-result i-0aaaaaaaaaaaaaaa2 14\n";

    #[test]
    fn each_instance_of_a_gathered_command_gets_its_own_exit_code_and_lines() {
        let failed = whole(CommandStatus::Failed("Failed".into()), OUTPUT);
        let a = own_result(failed.clone(), &id("i-0aaaaaaaaaaaaaaa1"));
        assert_eq!(
            (a.status, a.exit_code, a.stdout.as_str()),
            (CommandStatus::Success, Some(0), "adjoin: staged")
        );
        let b = own_result(failed.clone(), &id("i-0aaaaaaaaaaaaaaa2"));
        assert_eq!(
            (b.status, b.exit_code, b.stdout.as_str()),
            (
                CommandStatus::Failed("Failed".into()),
                Some(14),
                "adjoin: error: refused"
            )
        );
        // No line of its own in a finished, failed command: failed, its code unknown.
        let c = own_result(failed, &id("i-0aaaaaaaaaaaaaaa3"));
        assert_eq!(
            (c.status, c.exit_code),
            (CommandStatus::Failed("Failed".into()), None)
        );
        // Still running: as the command is.
        let running = whole(CommandStatus::InProgress, OUTPUT);
        assert_eq!(
            own_result(running, &id("i-0aaaaaaaaaaaaaaa3")).status,
            CommandStatus::InProgress
        );
    }

    #[test]
    fn a_command_for_one_instance_is_its_result() {
        let alone = whole(CommandStatus::Failed("Failed".into()), "adjoin: error: x\n");
        assert_eq!(own_result(alone.clone(), &id("i-0aaaaaaaaaaaaaaa1")), alone);
    }
}
