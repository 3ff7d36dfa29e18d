//! `Parameters` on SSM Parameter Store: PutParameter, AddTagsToResource, DeleteParameter.

use async_trait::async_trait;
use aws_sdk_ssm::types::{ParameterTier, ParameterType, ResourceTypeForTagging, Tag};

use adjoin_core::ports::{Parameters, SecretParameter};

use crate::error::map_sdk_error;

/// DeleteParameters takes at most this many names.
const DELETE_PARAMETERS_LIMIT: usize = 10;

pub struct SsmParameters {
    client: aws_sdk_ssm::Client,
}

impl SsmParameters {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        SsmParameters { client }
    }
}

/// The expiration policy: Parameter Store deletes the parameter at `at` (advanced tier).
fn expiration_policy(at: std::time::SystemTime) -> String {
    let at = aws_sdk_ssm::primitives::DateTime::from(at)
        .fmt(aws_sdk_ssm::primitives::DateTimeFormat::DateTime)
        .unwrap_or_default();
    serde_json::json!([{
        "Type": "Expiration",
        "Version": "1.0",
        "Attributes": { "Timestamp": at }
    }])
    .to_string()
}

fn tags(parameter: &SecretParameter<'_>) -> Result<Vec<Tag>, adjoin_core::Error> {
    parameter
        .tags
        .iter()
        .map(|(key, value)| {
            Tag::builder()
                .key(*key)
                .value(value)
                .build()
                .map_err(|e| adjoin_core::Error::Invalid {
                    operation: "ssm:PutParameter",
                    message: e.to_string(),
                })
        })
        .collect()
}

#[async_trait]
impl Parameters for SsmParameters {
    async fn put_secret(&self, parameter: &SecretParameter<'_>) -> Result<(), adjoin_core::Error> {
        let tags = tags(parameter)?;
        let put = || {
            self.client
                .put_parameter()
                .name(parameter.name)
                .value(parameter.value.expose())
                .r#type(ParameterType::SecureString)
                .tier(ParameterTier::Advanced)
                .policies(expiration_policy(parameter.expires_at))
                .description("adjoin: one-time join password (deleted after use; expires)")
        };
        // A new parameter is written with its tags in one call. One of that name left by
        // an earlier attempt is overwritten (PutParameter takes tags or overwrite, not
        // both) and tagged again, so it is never readable by anyone the tags exclude.
        let created = put().set_tags(Some(tags.clone())).send().await;
        match created {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_parameter_already_exists()) =>
            {
                put()
                    .overwrite(true)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("ssm:PutParameter", e))?;
                self.client
                    .add_tags_to_resource()
                    .resource_type(ResourceTypeForTagging::Parameter)
                    .resource_id(parameter.name)
                    .set_tags(Some(tags))
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("ssm:AddTagsToResource", e))?;
                Ok(())
            }
            Err(e) => Err(map_sdk_error("ssm:PutParameter", e)),
        }
    }

    async fn delete(&self, names: &[String]) -> Result<(), adjoin_core::Error> {
        // Names that do not exist come back as InvalidParameters: no error.
        for chunk in names.chunks(DELETE_PARAMETERS_LIMIT) {
            self.client
                .delete_parameters()
                .set_names(Some(chunk.to_vec()))
                .send()
                .await
                .map_err(|e| map_sdk_error("ssm:DeleteParameters", e))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_expiration_policy_is_what_parameter_store_reads() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_800_000_000);
        let policy: serde_json::Value = serde_json::from_str(&expiration_policy(at)).unwrap();
        assert_eq!(
            policy,
            serde_json::json!([{
                "Type": "Expiration",
                "Version": "1.0",
                "Attributes": { "Timestamp": "2027-01-15T08:00:00Z" }
            }])
        );
    }
}
