//! Amazon Resource Names: `arn:PARTITION:SERVICE:REGION:ACCOUNT:RESOURCE`, read in one
//! place.

use crate::ids::AccountId;

/// The parts of an ARN; the resource keeps any further `:` or `/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arn<'a> {
    pub partition: &'a str,
    pub service: &'a str,
    /// Empty for global services (IAM).
    pub region: &'a str,
    /// Empty for some resources (S3 buckets).
    pub account: &'a str,
    pub resource: &'a str,
}

impl<'a> Arn<'a> {
    /// Reads `text` as an ARN; `None` when it is not shaped like one.
    pub fn parse(text: &'a str) -> Option<Self> {
        let mut parts = text.splitn(6, ':');
        let (
            Some("arn"),
            Some(partition),
            Some(service),
            Some(region),
            Some(account),
            Some(resource),
        ) = (
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
            parts.next(),
        )
        else {
            return None;
        };
        (!partition.is_empty() && !service.is_empty()).then_some(Arn {
            partition,
            service,
            region,
            account,
            resource,
        })
    }

    /// The account, when the ARN names a valid one.
    pub fn account_id(&self) -> Option<AccountId> {
        AccountId::parse(self.account).ok()
    }

    /// The DNS suffix of the partition's service endpoints.
    pub fn dns_suffix(&self) -> &'static str {
        match self.partition {
            "aws-cn" => "amazonaws.com.cn",
            "aws-iso" => "c2s.ic.gov",
            "aws-iso-b" => "sc2s.sgov.gov",
            _ => "amazonaws.com",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn arns_of_every_partition_are_read() {
        let role = Arn::parse("arn:aws-us-gov:iam::111122223333:role/path/x").expect("arn");
        assert_eq!(
            (
                role.partition,
                role.service,
                role.region,
                role.account,
                role.resource
            ),
            ("aws-us-gov", "iam", "", "111122223333", "role/path/x")
        );
        let secret = Arn::parse("arn:aws-cn:secretsmanager:cn-north-1:111122223333:secret:a:b")
            .expect("arn");
        assert_eq!(secret.resource, "secret:a:b");
        assert_eq!(secret.dns_suffix(), "amazonaws.com.cn");
        assert!(Arn::parse("/adjoin/pw").is_none());
        assert!(Arn::parse("arn:aws:iam").is_none());
        assert!(Arn::parse("arn::iam::1:role/x").is_none());
    }

    proptest! {
        #[test]
        fn any_text_is_read_without_panicking(text in any::<String>()) {
            if let Some(arn) = Arn::parse(&text) {
                prop_assert!(text.ends_with(arn.resource));
            }
        }
    }
}
