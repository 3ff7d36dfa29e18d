//! What EC2 tells us about an instance.

use std::collections::BTreeMap;

use crate::ids::InstanceId;

/// The tag naming the AD group whose members may log in to the instance.
pub const GROUP_TAG: &str = "adGroupName";
/// The opt-out tag: `autoadjoin=false` leaves the instance alone.
pub const OPT_OUT_TAG: &str = "autoadjoin";

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

/// An instance as DescribeInstances reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    pub id: InstanceId,
    /// `pending`, `running`, `stopping`, `stopped`, `shutting-down`, `terminated`.
    pub state: String,
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

/// An instance for tests: `tags` as key/value pairs.
/// What is wrong with an `adGroupName` value, if anything. It is written into sssd.conf
/// and a Windows group name: no control characters (a newline would add configuration
/// lines), no commas (sssd would read a list of groups), at most 256 characters.
pub fn group_tag_problem(value: &str) -> Option<&'static str> {
    if value.chars().any(|c| c.is_control() || c == ',') {
        Some("contains a comma or a control character")
    } else if value.chars().count() > 256 {
        Some("is longer than 256 characters")
    } else {
        None
    }
}

#[cfg(test)]
pub(crate) fn test_instance(
    id: &str,
    state: &str,
    platform: Platform,
    tags: &[(&str, &str)],
) -> Instance {
    Instance {
        id: InstanceId::parse(id).expect("valid instance id"),
        state: state.into(),
        platform,
        tags: tags
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}
