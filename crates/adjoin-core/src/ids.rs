//! Validated identifiers: an account id, a Region, an EC2 instance id.

use std::fmt;

use serde::Serialize;

/// Each id: a string checked once, by `parse`, against its `valid` shape; refused as
/// "`what` "…" `is_not`".
macro_rules! string_ids {
    ($($(#[$doc:meta])* $t:ident: $valid:ident, $what:literal, $is_not:literal;)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $t(String);

        impl $t {
            pub fn parse(s: &str) -> Result<Self, String> {
                if $valid(s) {
                    Ok(Self(s.to_owned()))
                } else {
                    Err(format!(concat!($what, " {:?} ", $is_not), s))
                }
            }
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $t {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    )*};
}

string_ids! {
    /// A 12-digit AWS account id.
    AccountId: is_account_id, "account id", "is not 12 digits";
    /// An AWS Region name such as `eu-west-1`.
    Region: is_region, "region", "is not a Region name";
    /// An EC2 instance id: `i-` followed by 8 or 17 lower-case hex digits.
    InstanceId: is_instance_id, "instance id", "is not i- followed by 8 or 17 hex digits";
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

fn is_region(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 32
        && s.split('-').count() >= 3
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && s.bytes().last().is_some_and(|b| b.is_ascii_digit())
}

fn is_instance_id(s: &str) -> bool {
    s.strip_prefix("i-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

impl InstanceId {
    /// The hex digits after `i-`.
    pub fn hex(&self) -> &str {
        self.0.strip_prefix("i-").unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `parse` accepts each of `good` and refuses each of `bad`.
    #[track_caller]
    fn sorts<T>(parse: fn(&str) -> Result<T, String>, good: &[&str], bad: &[&str]) {
        for s in good {
            assert!(parse(s).is_ok(), "{s}");
        }
        for s in bad {
            assert!(parse(s).is_err(), "{s}");
        }
    }

    #[test]
    fn ids_accept_real_shapes_and_refuse_others() {
        sorts(
            AccountId::parse,
            &["111122223333"],
            &["11112222333", "11112222333a"],
        );
        sorts(
            Region::parse,
            &["eu-west-1", "us-gov-west-1"],
            &["EU-WEST-1", "eu-west"],
        );
        sorts(
            InstanceId::parse,
            &["i-0abcd1234ef567890", "i-1234abcd"],
            &[
                "i-0ABCD1234EF567890",
                "i-0abcd1234ef56789",
                "0abcd1234ef567890",
                "i-$(reboot)",
            ],
        );
    }

    #[test]
    fn refusals_name_the_kind_of_id_and_the_value() {
        assert_eq!(
            AccountId::parse("1").unwrap_err(),
            "account id \"1\" is not 12 digits"
        );
        assert_eq!(
            Region::parse("x").unwrap_err(),
            "region \"x\" is not a Region name"
        );
        assert_eq!(
            InstanceId::parse("i-x").unwrap_err(),
            "instance id \"i-x\" is not i- followed by 8 or 17 hex digits"
        );
    }
}
