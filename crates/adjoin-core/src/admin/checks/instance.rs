//! `adjoin check`: one instance, as the worker would see it.

use super::*;

/// The `adGroupName` rule the worker applies before a join: up to ten AD group names,
/// comma-separated, written into sssd.conf, sshd_config and a Windows group name, so no
/// control characters and no empty names, each at most 256 characters.
pub fn group_tag_check(instance: &Instance, allowed: Option<&[String]>) -> Check {
    let name = "adGroupName";
    match instance.tag(GROUP_TAG) {
        None => Check::pass(
            name,
            "no adGroupName tag: nobody may log in with AD credentials (Linux: access_provider = deny)",
        ),
        Some(v) => match group_tag_problem(v, allowed) {
            Some(problem) => Check::fail(
                name,
                format!("{v:?} {problem}"),
                "tag up to ten AD group names, comma-separated, each of at most 256 characters, that the account's allowedLoginGroups allows (without it: no privileged group)",
            ),
            None => Check::pass(name, v.to_owned()),
        },
    }
}

/// The opt-out tag must be absent for the instance to be joined.
pub fn opt_out_check(instance: &Instance) -> Check {
    if instance.opted_out() {
        Check::fail(
            "opt-out tag",
            format!("tagged {OPT_OUT_TAG}=false: adjoin leaves it alone"),
            format!(
                "remove the tag: aws ec2 delete-tags --resources {} --tags Key={OPT_OUT_TAG}",
                instance.id
            ),
        )
    } else {
        Check::pass("opt-out tag", format!("no {OPT_OUT_TAG}=false"))
    }
}

/// The instance must exist and run.
pub fn instance_check(id: &InstanceId, found: Option<&Instance>, place: &str) -> Check {
    let name = "instance running";
    match found {
        None => Check::fail(
            name,
            format!("EC2 does not know {id} in {place}"),
            "check the instance id, the account and the Region (--region)",
        ),
        Some(i) if i.state == "running" => Check::pass(name, format!("{id} is running")),
        Some(i) => Check::fail(
            name,
            format!("{id} is {}", i.state),
            "start the instance; adjoin joins it on its running event",
        ),
    }
}

/// The SSM agent must be registered and online for Run Command to reach it.
pub fn agent_check(
    name: &'static str,
    id: &InstanceId,
    agent: Result<Option<&AgentInfo>, &Error>,
) -> Check {
    match agent {
        Ok(Some(a)) if a.ping_status == "Online" => Check::pass(
            name,
            format!(
                "{id}: Online{}",
                a.agent_version
                    .as_deref()
                    .map(|v| format!(", agent {v}"))
                    .unwrap_or_default()
            ),
        ),
        Ok(Some(a)) => Check::fail(
            name,
            format!("{id}: {}", a.ping_status),
            "the agent stopped answering: check it runs (systemctl status amazon-ssm-agent / Get-Service AmazonSSMAgent) and reaches the SSM endpoints",
        ),
        Ok(None) => Check::fail(
            name,
            format!("SSM has no agent registered for {id}"),
            "give the instance profile AmazonSSMManagedInstanceCore and a route to the SSM endpoints (NAT or VPC endpoints ssm, ssmmessages, ec2messages)",
        ),
        Err(e) => Check::fail(
            name,
            e.to_string(),
            fix_for(e, "ssm:DescribeInstanceInformation"),
        ),
    }
}

/// Linux and Windows are supported; SSM's platform type wins over EC2's when known
/// (EC2 reports no platform for Linux and macOS alike).
pub fn platform_check(instance: &Instance, agent: Option<&AgentInfo>) -> Check {
    let name = "platform";
    match agent.and_then(|a| a.platform_type.as_deref()) {
        Some(t) if t.eq_ignore_ascii_case("linux") || t.eq_ignore_ascii_case("windows") => {
            let os = agent
                .and_then(|a| a.platform_name.clone())
                .map(|n| format!(" ({n})"))
                .unwrap_or_default();
            Check::pass(name, format!("{}{os}", t.to_ascii_lowercase()))
        }
        Some(t) => Check::fail(
            name,
            format!("{t} is not supported"),
            "adjoin joins Linux and Windows instances only; tag this one autoadjoin=false",
        ),
        None => Check::pass(
            name,
            format!(
                "{} (from EC2; SSM does not say)",
                match instance.platform {
                    Platform::Linux => "linux",
                    Platform::Windows => "windows",
                }
            ),
        ),
    }
}

/// `adjoin check --account ACCOUNT --instance ID`: everything a join of that instance
/// needs, in the order the worker needs it. `tools_host_tag` is the service's default
/// (the item's `toolsHostTag` overrides it).
pub async fn preflight(
    ports: &CheckPorts<'_>,
    account: &str,
    instance: &str,
    region: &Region,
    tools_host_tag: &TagMatch,
) -> Report {
    let mut report = Report::default();
    let (check, found) = config_item(ports.config, account).await;
    let cfg = match found {
        Some((account, item)) => match AccountConfig::from_item(&item, &account) {
            Ok(cfg) => {
                report.push(Check::pass(
                    "config item",
                    format!("present and valid for {account}"),
                ));
                Some(cfg)
            }
            Err(invalid) => {
                report.push(Check::fail("config item", invalid.to_string(), FIX_PUT));
                None
            }
        },
        None => {
            report.push(check);
            None
        }
    };
    let id = match InstanceId::parse(instance) {
        Ok(id) => Some(id),
        Err(e) => {
            report.push(Check::fail(
                "instance id",
                e,
                "give the instance id, e.g. i-0123456789abcdef0",
            ));
            None
        }
    };
    let (Some(cfg), Some(id)) = (cfg, id) else {
        report.skip_all(
            &[
                "role assumable",
                "instance running",
                "SSM agent",
                "platform",
                "opt-out tag",
                "adGroupName",
                "tools host",
                "tools host agent",
            ],
            "no valid config item or instance id",
        );
        return report;
    };

    let (check, session) = role_check(ports.sessions, cfg.role.as_ref(), region).await;
    report.push(check);
    let described = match &session {
        Some(s) => Some(s.instances.describe(std::slice::from_ref(&id)).await),
        None => None,
    };
    let place = format!("{} {region}", cfg.account);
    let instance = match described {
        None => {
            report.push(Check::skip("instance running", "no session in the account"));
            None
        }
        Some(Err(e)) => {
            report.push(Check::fail(
                "instance running",
                e.to_string(),
                fix_for(&e, "ec2:DescribeInstances"),
            ));
            None
        }
        Some(Ok(found)) => {
            let found = found.into_iter().find(|i| i.id == id);
            report.push(instance_check(&id, found.as_ref(), &place));
            found
        }
    };

    let agent = match (&session, &instance) {
        (Some(_), Some(_)) => {
            let agent = match admin_ports(ports.admin, cfg.role.as_ref(), region).await {
                Ok(p) => p.agents.agent(&id).await,
                Err(e) => Err(e),
            };
            report.push(agent_check(
                "SSM agent",
                &id,
                agent.as_ref().map(Option::as_ref),
            ));
            agent.ok().flatten()
        }
        _ => {
            report.push(Check::skip("SSM agent", "the instance was not found"));
            None
        }
    };
    match &instance {
        Some(i) => {
            report.push(platform_check(i, agent.as_ref()));
            report.push(opt_out_check(i));
            report.push(group_tag_check(i, cfg.allowed_login_groups.as_deref()));
        }
        None => {
            report.skip_all(
                &["platform", "opt-out tag", "adGroupName"],
                "the instance was not found",
            );
        }
    }

    let tag = cfg.tools_host_tag(tools_host_tag).clone();
    let home = ports.sessions.home().await;
    let host = match &home {
        Err(e) => {
            report.push(Check::fail(
                "tools host",
                e.to_string(),
                "check the credentials adjoin runs with",
            ));
            None
        }
        Ok(home) => match home.instances.find_running_by_tag(&tag).await {
            Ok(hosts) => match crate::instance::tools_host_of(hosts) {
                Some(h) => {
                    report.push(Check::pass(
                        "tools host",
                        format!(
                            "{} ({}) tagged {}={} in {} {}",
                            h.id,
                            h.platform.as_str(),
                            tag.key,
                            tag.value,
                            home.account,
                            home.region
                        ),
                    ));
                    Some(h)
                }
                None => {
                    report.push(Check::fail(
                            "tools host",
                            format!(
                                "no running instance tagged {}={} in {} {}",
                                tag.key, tag.value, home.account, home.region
                            ),
                            format!(
                                "start the AD tools host, or tag it: aws ec2 create-tags --resources i-… --tags Key={},Value={}",
                                tag.key, tag.value
                            ),
                        ));
                    None
                }
            },
            Err(e) => {
                report.push(Check::fail(
                    "tools host",
                    e.to_string(),
                    fix_for(&e, "ec2:DescribeInstances"),
                ));
                None
            }
        },
    };
    match (&home, host) {
        (Ok(home), Some(host)) => {
            let agent = match ports.admin.home_in(&home.region).await {
                Ok(p) => p.agents.agent(&host.id).await,
                Err(e) => Err(e),
            };
            report.push(agent_check(
                "tools host agent",
                &host.id,
                agent.as_ref().map(Option::as_ref),
            ));
        }
        _ => {
            report.push(Check::skip("tools host agent", "no tools host"));
        }
    }
    // What the tools host reads to stage (and to leave): the join user's password.
    if cfg.join_mode == JoinMode::Staged {
        report
            .push(super::account::password_check(ports.sessions, ports.admin, &cfg, region).await);
    }
    report
}
