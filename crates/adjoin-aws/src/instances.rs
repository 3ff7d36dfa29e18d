//! `Instances` on EC2 DescribeInstances.

use async_trait::async_trait;
use aws_sdk_ec2::types::Filter;

use adjoin_core::config::TagMatch;
use adjoin_core::ids::InstanceId;
use adjoin_core::instance::{Instance, Platform};
use adjoin_core::ports::Instances;

use crate::error::map_sdk_error;

/// DescribeInstances takes at most 200 values per filter.
const MAX_FILTER_VALUES: usize = 200;

pub struct Ec2Instances {
    client: aws_sdk_ec2::Client,
}

impl Ec2Instances {
    pub fn new(client: aws_sdk_ec2::Client) -> Self {
        Ec2Instances { client }
    }

    async fn describe_filtered(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<Instance>, adjoin_core::Error> {
        let mut pages = self
            .client
            .describe_instances()
            .set_filters(Some(filters))
            .into_paginator()
            .send();
        let mut found = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| map_sdk_error("ec2:DescribeInstances", e))?;
            for reservation in page.reservations() {
                found.extend(reservation.instances().iter().filter_map(to_instance));
            }
        }
        Ok(found)
    }
}

fn to_instance(i: &aws_sdk_ec2::types::Instance) -> Option<Instance> {
    let id = InstanceId::parse(i.instance_id()?).ok()?;
    Some(Instance {
        id,
        state: i
            .state()
            .and_then(|s| s.name())
            .map(|n| n.as_str())
            .unwrap_or_default()
            .into(),
        platform: Platform::from_ec2(i.platform().map(|p| p.as_str())),
        tags: i
            .tags()
            .iter()
            .filter_map(|t| {
                Some((
                    t.key()?.to_owned(),
                    t.value().unwrap_or_default().to_owned(),
                ))
            })
            .collect(),
    })
}

#[async_trait]
impl Instances for Ec2Instances {
    /// Filters by `instance-id` rather than passing `InstanceIds`: with `InstanceIds`,
    /// one unknown id fails the whole call.
    async fn describe(&self, ids: &[InstanceId]) -> Result<Vec<Instance>, adjoin_core::Error> {
        let mut found = Vec::new();
        for chunk in ids.chunks(MAX_FILTER_VALUES) {
            let filter = Filter::builder()
                .name("instance-id")
                .set_values(Some(chunk.iter().map(|i| i.to_string()).collect()))
                .build();
            found.extend(self.describe_filtered(vec![filter]).await?);
        }
        Ok(found)
    }

    async fn tag(
        &self,
        ids: &[InstanceId],
        key: &str,
        value: &str,
    ) -> Result<(), adjoin_core::Error> {
        self.client
            .create_tags()
            .set_resources(Some(ids.iter().map(|id| id.to_string()).collect()))
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key(key)
                    .value(value)
                    .build(),
            )
            .send()
            .await
            .map_err(|e| map_sdk_error("ec2:CreateTags", e))?;
        Ok(())
    }

    async fn find_running_by_tag(
        &self,
        tag: &TagMatch,
    ) -> Result<Vec<Instance>, adjoin_core::Error> {
        self.describe_filtered(vec![
            Filter::builder()
                .name(format!("tag:{}", tag.key))
                .values(&tag.value)
                .build(),
            Filter::builder()
                .name("instance-state-name")
                .values("running")
                .build(),
        ])
        .await
    }
}
