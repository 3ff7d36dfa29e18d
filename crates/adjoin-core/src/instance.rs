//! What EC2 tells us about an instance.

use std::collections::BTreeMap;
use std::fmt;

use crate::ids::InstanceId;

/// The tag naming the AD group whose members may log in to the instance.
pub const GROUP_TAG: &str = "adGroupName";
/// The tag that picks, among the account's `sudoGroups`, the one AD group whose members
/// get `sudo` on this instance (without it: every group of `sudoGroups`).
pub const SUDO_TAG: &str = "adSudoGroup";
/// The tag that places the instance's computer object in another OU, one of the
/// account's `allowedOuPaths`.
pub const OU_TAG: &str = "adOuPath";
/// The tag that adds computer groups (comma-separated), each one of the account's
/// `allowedComputerGroups` (e.g. the gMSA readers of one Auto Scaling group).
pub const COMPUTER_GROUPS_TAG: &str = "adComputerGroups";
/// At most this many login groups in one `adGroupName` tag.
pub const MAX_LOGIN_GROUPS: usize = 10;
/// The opt-out tag: `autoadjoin=false` leaves the instance alone.
pub const OPT_OUT_TAG: &str = "autoadjoin";
/// The ready signal: set to the computer name once the join is verified, so that Auto
/// Scaling hooks, ECS placement or user automation can wait for it.
pub const READY_TAG: &str = "adjoin:joined";

/// The operating system family, which picks the script and the SSM document.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    Linux,
    Windows,
}

impl Platform {
    /// EC2's `Platform` is `windows` for Windows and absent for Linux; compare case-insensitively.
    pub fn from_ec2(platform: Option<&str>) -> Self {
        match platform {
            Some(p) if p.eq_ignore_ascii_case("windows") => Platform::Windows,
            _ => Platform::Linux,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Linux => "linux",
            Platform::Windows => "windows",
        }
    }
}

/// An instance's state as EC2 names it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum InstanceState {
    Pending,
    Running,
    Stopping,
    Stopped,
    ShuttingDown,
    Terminated,
    /// A name EC2 may add later, kept as sent.
    Other(String),
}

impl InstanceState {
    pub fn parse(name: &str) -> Self {
        match name {
            "pending" => InstanceState::Pending,
            "running" => InstanceState::Running,
            "stopping" => InstanceState::Stopping,
            "stopped" => InstanceState::Stopped,
            "shutting-down" => InstanceState::ShuttingDown,
            "terminated" => InstanceState::Terminated,
            other => InstanceState::Other(other.to_owned()),
        }
    }

    pub fn as_str(&self) -> &str {
        match self {
            InstanceState::Pending => "pending",
            InstanceState::Running => "running",
            InstanceState::Stopping => "stopping",
            InstanceState::Stopped => "stopped",
            InstanceState::ShuttingDown => "shutting-down",
            InstanceState::Terminated => "terminated",
            InstanceState::Other(name) => name,
        }
    }

    /// Shutting down or terminated: the instance will never run again.
    pub fn is_ending(&self) -> bool {
        matches!(
            self,
            InstanceState::ShuttingDown | InstanceState::Terminated
        )
    }
}

impl fmt::Display for InstanceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<&str> for InstanceState {
    fn from(name: &str) -> Self {
        InstanceState::parse(name)
    }
}

impl From<String> for InstanceState {
    fn from(name: String) -> Self {
        InstanceState::parse(&name)
    }
}

impl PartialEq<&str> for InstanceState {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// An instance as DescribeInstances reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: InstanceId,
    pub state: InstanceState,
    pub platform: Platform,
    pub tags: BTreeMap<String, String>,
}

impl Instance {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags.get(key).map(String::as_str)
    }

    /// `autoadjoin=false` (any case, surrounding blanks ignored) opts the instance out.
    pub fn opted_out(&self) -> bool {
        self.tag(OPT_OUT_TAG)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("false"))
    }
}

/// The AD tools host among the running instances that carry the tools-host tag: the one
/// of lowest id, so every caller picks the same.
pub fn tools_host_of(hosts: impl IntoIterator<Item = Instance>) -> Option<Instance> {
    hosts.into_iter().min_by(|a, b| a.id.cmp(&b.id))
}

/// Directory groups whose members administer the domain or its servers. Anyone who may
/// tag an instance could otherwise make them its login group: a tag may name one only
/// when the account's `allowedLoginGroups` lists it.
pub const PRIVILEGED_GROUPS: &[&str] = &[
    "Domain Admins",
    "Enterprise Admins",
    "Schema Admins",
    "Administrators",
    "Account Operators",
    "Server Operators",
    "Backup Operators",
    "Print Operators",
    "Domain Controllers",
    "Read-only Domain Controllers",
    "Enterprise Read-only Domain Controllers",
    "Group Policy Creator Owners",
    "Key Admins",
    "Enterprise Key Admins",
    "DnsAdmins",
    "Cert Publishers",
    "Organization Management",
    "Exchange Windows Permissions",
    "Exchange Trusted Subsystem",
];

/// AWS Managed Microsoft AD's delegated groups (`AWS Delegated Administrators`, `AWS
/// Delegated Server Administrators`, …): privileged too.
const PRIVILEGED_PREFIX: &str = "aws delegated ";

/// What is wrong with an `adGroupName` value, if anything, given the account's
/// `allowedLoginGroups` (`None`: not set). The value is written into sssd.conf and a
/// Windows group name: no control characters (a newline would add configuration lines),
/// no commas (sssd would read a list of groups), at most 256 characters. With an
/// allow-list, only its groups, compared whole (a `@other-forest` suffix is another
/// group) and without case; without one, any ASCII group name but the privileged ones
/// ([`PRIVILEGED_GROUPS`], AWS Managed AD's `AWS Delegated …` groups), compared without
/// case and without a `DOMAIN\` prefix or `@domain` suffix. Non-ASCII names (look-alikes
/// of privileged ones) need the allow-list.
///
/// The tag may name several groups, separated by commas (AD group names never contain
/// one), at most [`MAX_LOGIN_GROUPS`]; each is checked on its own.
pub fn group_tag_problem(value: &str, allowed: Option<&[String]>) -> Option<String> {
    if value.chars().any(char::is_control) {
        return Some("contains a control character".to_owned());
    }
    let names = login_groups(value);
    if names.is_empty() || value.split(',').any(|n| n.trim().is_empty()) {
        return Some("names an empty group (a comma too many?)".to_owned());
    }
    if names.len() > MAX_LOGIN_GROUPS {
        return Some(format!("names more than {MAX_LOGIN_GROUPS} groups"));
    }
    names.iter().find_map(|name| {
        one_group_problem(name, allowed).map(|problem| {
            if names.len() == 1 {
                problem
            } else {
                format!("names group {name:?}, which {problem}")
            }
        })
    })
}

/// What forbids an `adSudoGroup` tag, if anything: it must name one of the account's
/// `sudoGroups` (compared without case).
pub fn sudo_tag_problem(value: &str, sudo_groups: &[String]) -> Option<String> {
    if sudo_groups.is_empty() {
        Some("is set, but the account's config item has no sudoGroups".to_owned())
    } else if sudo_groups
        .iter()
        .any(|g| g.trim().eq_ignore_ascii_case(value.trim()))
    {
        None
    } else {
        Some("is not in the account's sudoGroups".to_owned())
    }
}

/// What forbids an `adOuPath` tag, if anything: it must be one of the account's
/// `allowedOuPaths` (compared without case and blanks around `,` and `=`).
pub fn ou_tag_problem(value: &str, allowed: &[String]) -> Option<String> {
    let norm = |dn: &str| {
        dn.split(',')
            .map(|rdn| {
                rdn.split('=')
                    .map(str::trim)
                    .collect::<Vec<_>>()
                    .join("=")
                    .to_lowercase()
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    if allowed.is_empty() {
        Some("is set, but the account's config item has no allowedOuPaths".to_owned())
    } else if allowed.iter().any(|ou| norm(ou) == norm(value)) {
        None
    } else {
        Some("is not in the account's allowedOuPaths".to_owned())
    }
}

/// What forbids an `adComputerGroups` tag, if anything: each of its groups must be one
/// of the account's `allowedComputerGroups` (compared without case).
pub fn computer_groups_tag_problem(value: &str, allowed: &[String]) -> Option<String> {
    if value.chars().any(char::is_control) {
        return Some("contains a control character".to_owned());
    }
    if allowed.is_empty() {
        return Some(
            "is set, but the account's config item has no allowedComputerGroups".to_owned(),
        );
    }
    login_groups(value)
        .into_iter()
        .find(|g| !allowed.iter().any(|a| a.trim().eq_ignore_ascii_case(g)))
        .map(|g| format!("names group {g:?}, which is not in the account's allowedComputerGroups"))
}

/// The group names of an `adGroupName` tag: comma-separated, trimmed.
pub fn login_groups(value: &str) -> Vec<&str> {
    value
        .split(',')
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .collect()
}

/// What forbids one group name, if anything ([`group_tag_problem`]).
fn one_group_problem(value: &str, allowed: Option<&[String]>) -> Option<String> {
    let bare = |name: &str| {
        let name = name.rsplit_once('\\').map_or(name, |(_, n)| n);
        name.split_once('@')
            .map_or(name, |(n, _)| n)
            .trim()
            .to_lowercase()
    };
    let wanted = bare(value);
    if value.chars().count() > 256 {
        Some("is longer than 256 characters".to_owned())
    } else if let Some(allowed) = allowed {
        let whole = value.trim().to_lowercase();
        (!allowed.iter().any(|g| g.trim().to_lowercase() == whole))
            .then(|| "is not in the account's allowedLoginGroups".to_owned())
    } else if !value.is_ascii() {
        Some(
            "is not plain ASCII: list it in the account's allowedLoginGroups to allow it"
                .to_owned(),
        )
    } else if wanted.starts_with(PRIVILEGED_PREFIX)
        || PRIVILEGED_GROUPS.iter().any(|g| bare(g) == wanted)
    {
        Some(
            "names a privileged directory group: list it in the account's allowedLoginGroups to allow it"
                .to_owned(),
        )
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_may_name_a_privileged_group_only_when_the_account_allows_it() {
        for privileged in [
            "Domain Admins",
            "domain admins",
            "CORP\\Domain Admins",
            "Enterprise Admins@corp.example.com",
        ] {
            let problem = group_tag_problem(privileged, None).expect("refused");
            assert!(problem.contains("privileged"), "{privileged}: {problem}");
        }
        assert_eq!(group_tag_problem("linux-admins", None), None);
        let allowed = vec!["linux-admins".to_owned(), "Domain Admins".to_owned()];
        assert_eq!(group_tag_problem("Domain Admins", Some(&allowed)), None);
        assert_eq!(group_tag_problem("LINUX-ADMINS", Some(&allowed)), None);
        let problem = group_tag_problem("web-admins", Some(&allowed)).expect("refused");
        assert!(problem.contains("allowedLoginGroups"), "{problem}");
        assert!(group_tag_problem("a,b", Some(&allowed)).is_some());
        // Several groups: each is checked; none may be empty.
        assert_eq!(
            group_tag_problem("linux-admins, Domain Admins", Some(&allowed)),
            None
        );
        assert_eq!(group_tag_problem("web, db-admins", None), None);
        let problem = group_tag_problem("web,Domain Admins", None).expect("refused");
        assert!(
            problem.contains("\"Domain Admins\"") && problem.contains("privileged"),
            "{problem}"
        );
        assert!(group_tag_problem("web,,db", None).is_some());
        assert!(group_tag_problem("web,", None).is_some());
        assert!(group_tag_problem(&["g"; 11].join(","), None).is_some());
        assert!(group_tag_problem("a\nb", None).is_some());

        // Another forest's group of the same name is another group.
        assert!(group_tag_problem("linux-admins@other-forest.example", Some(&allowed)).is_some());
        // AWS Managed AD's delegated groups, and look-alikes, need the list.
        for refused in [
            "AWS Delegated Server Administrators",
            "CORP\\AWS Delegated Kerberos Delegation Administrators",
            "Organization Management",
            "\u{ff24}\u{ff4f}\u{ff4d}\u{ff41}\u{ff49}\u{ff4e} Admins",
        ] {
            assert!(group_tag_problem(refused, None).is_some(), "{refused}");
        }
    }

    #[test]
    fn a_sudo_tag_may_only_narrow_the_accounts_sudo_groups() {
        let sudo = vec!["linux-admins".to_owned(), "dba".to_owned()];
        assert_eq!(sudo_tag_problem("DBA", &sudo), None);
        assert!(sudo_tag_problem("Domain Admins", &sudo).is_some());
        assert!(
            sudo_tag_problem("dba", &[])
                .expect("refused")
                .contains("no sudoGroups")
        );
    }
}
