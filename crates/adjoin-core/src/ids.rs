//! Validated identifiers: an account id, a Region, an EC2 instance id.

use std::fmt;

use serde::Serialize;

/// A 12-digit AWS account id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct AccountId(String);

impl AccountId {
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit()) {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("account id {s:?} is not 12 digits"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An AWS Region name such as `eu-west-1`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Region(String);

impl Region {
    pub fn parse(s: &str) -> Result<Self, String> {
        let shaped = !s.is_empty()
            && s.len() <= 32
            && s.split('-').count() >= 3
            && s.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && s.bytes().last().is_some_and(|b| b.is_ascii_digit());
        if shaped {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("region {s:?} is not a Region name"))
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An EC2 instance id: `i-` followed by 8 or 17 lower-case hex digits.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct InstanceId(String);

impl InstanceId {
    pub fn parse(s: &str) -> Result<Self, String> {
        match s.strip_prefix("i-") {
            Some(hex)
                if (hex.len() == 8 || hex.len() == 17)
                    && hex
                        .bytes()
                        .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(format!(
                "instance id {s:?} is not i- followed by 8 or 17 hex digits"
            )),
        }
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// The hex digits after `i-`.
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("i-").unwrap_or_default()
    }
}

macro_rules! display_as_str {
    ($($t:ty),*) => {$(
        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}
display_as_str!(AccountId, Region, InstanceId);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_real_shapes_and_refuse_others() {
        assert!(AccountId::parse("111122223333").is_ok());
        assert!(AccountId::parse("11112222333").is_err());
        assert!(AccountId::parse("11112222333a").is_err());
        assert!(Region::parse("eu-west-1").is_ok());
        assert!(Region::parse("us-gov-west-1").is_ok());
        assert!(Region::parse("EU-WEST-1").is_err());
        assert!(Region::parse("eu-west").is_err());
        assert!(InstanceId::parse("i-0abcd1234ef567890").is_ok());
        assert!(InstanceId::parse("i-1234abcd").is_ok());
        assert!(InstanceId::parse("i-0ABCD1234EF567890").is_err());
        assert!(InstanceId::parse("i-0abcd1234ef56789").is_err());
        assert!(InstanceId::parse("0abcd1234ef567890").is_err());
        assert!(InstanceId::parse("i-$(reboot)").is_err());
    }
}
