//! Where a staged join's one-time password lives between the worker, the AD tools host
//! and the instance ([`crate::config::JoinMode::Staged`]).
//!
//! For each attempt the worker writes one fresh password twice, as SecureString
//! parameters that expire on their own:
//!
//! - for the AD tools host, in the service's account and the tools host's Region:
//!   [`tools_host_parameter`]; the stage script reads it, deletes it, and sets it on the
//!   computer account it creates;
//! - for the instance, in the instance's account and Region: [`instance_parameter`],
//!   tagged [`INSTANCE_TAG`] with the instance's ARN; the member stack's instance policy
//!   lets an instance read and delete only the parameter tagged with its own ARN. The
//!   join script reads it, deletes it, and joins with it; adcli (or Windows) then sets a
//!   machine password of its own.
//!
//! Neither the commands nor their output, the ledger, the logs or the DLQ ever carry
//! the password: commands name the parameter only.

use std::time::Duration;

use crate::ids::{AccountId, InstanceId, Region};

/// The tag that names the one instance that may read its parameter (value: its ARN, as
/// the `ec2:SourceInstanceARN` of its role's requests).
pub const INSTANCE_TAG: &str = "adjoin:instance";

/// How long a one-time password may wait to be used: Parameter Store deletes it then if
/// the scripts or the worker did not (a join runs for at most 30 minutes).
pub const LIFETIME: Duration = Duration::from_secs(2 * 3600);

/// The instance's copy, in its own account and Region.
pub fn instance_parameter(instance: &InstanceId) -> String {
    format!("/adjoin/otp/{instance}")
}

/// The AD tools host's copy, in the service's account.
pub fn tools_host_parameter(account: &AccountId, region: &Region, instance: &InstanceId) -> String {
    format!("/adjoin/stage/{account}/{region}/{instance}")
}

/// The ARN an instance's role requests carry as `ec2:SourceInstanceARN`.
pub fn instance_arn(region: &Region, account: &AccountId, instance: &InstanceId) -> String {
    let partition = match region.as_str() {
        r if r.starts_with("cn-") => "aws-cn",
        r if r.starts_with("us-gov-") => "aws-us-gov",
        r if r.starts_with("us-iso-") => "aws-iso",
        r if r.starts_with("us-isob-") => "aws-iso-b",
        _ => "aws",
    };
    format!("arn:{partition}:ec2:{region}:{account}:instance/{instance}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_arns() {
        let account = AccountId::parse("111122223333").unwrap();
        let id = InstanceId::parse("i-0123456789abcdef0").unwrap();
        let region = Region::parse("eu-west-1").unwrap();
        assert_eq!(instance_parameter(&id), "/adjoin/otp/i-0123456789abcdef0");
        assert_eq!(
            tools_host_parameter(&account, &region, &id),
            "/adjoin/stage/111122223333/eu-west-1/i-0123456789abcdef0"
        );
        assert_eq!(
            instance_arn(&region, &account, &id),
            "arn:aws:ec2:eu-west-1:111122223333:instance/i-0123456789abcdef0"
        );
        let china = Region::parse("cn-north-1").unwrap();
        assert!(instance_arn(&china, &account, &id).starts_with("arn:aws-cn:ec2:"));
    }
}
