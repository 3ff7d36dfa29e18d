//! Adapters of the operator ports (`adjoin_core::admin`): config items, ledger scans,
//! SSM agents, password references. Thin: each is one AWS call (or its pages).

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use aws_config::SdkConfig;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValue};
use aws_sdk_secretsmanager::operation::describe_secret::DescribeSecretError;
use aws_sdk_ssm::types::{InstanceInformationStringFilter, ParameterStringFilter};

use adjoin_core::admin::{
    AdminPorts, AdminSessions, AgentInfo, AgentStatus, ConfigAdmin, LedgerFilter, LedgerQuery,
    SecretProbe, parameter_name,
};
use adjoin_core::config::{ConfigItem, PasswordRef, RoleTarget};
use adjoin_core::ids::{AccountId, InstanceId, Region};
use adjoin_core::ledger::JoinRecord;

use crate::error::{map_sdk_error, table_error};
use crate::sessions::{assumed_config, caller_account, in_region};

fn unreadable(
    operation: &'static str,
    what: &str,
    e: impl std::fmt::Display,
) -> adjoin_core::Error {
    adjoin_core::Error::Invalid {
        operation,
        message: format!("{what} cannot be read: {e}"),
    }
}

/// `ConfigAdmin` on DynamoDB: PutItem, Scan, DeleteItem on the config table.
pub struct DynamoConfigAdmin {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoConfigAdmin {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoConfigAdmin {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl ConfigAdmin for DynamoConfigAdmin {
    /// Strings as S, lists as L, booleans as BOOL: the blog's attribute types.
    async fn put(&self, item: &ConfigItem) -> Result<(), adjoin_core::Error> {
        let item: HashMap<String, AttributeValue> =
            serde_dynamo::to_item(serde_json::Value::Object(item.clone()))
                .map_err(|e| unreadable("dynamodb:PutItem", "the config item", e))?;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|e| table_error("dynamodb:PutItem", &self.table, e))?;
        Ok(())
    }

    async fn list(&self) -> Result<Vec<ConfigItem>, adjoin_core::Error> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .into_paginator()
            .items()
            .send();
        let mut items = Vec::new();
        while let Some(item) = pages.next().await {
            let item = item.map_err(|e| table_error("dynamodb:Scan", &self.table, e))?;
            match serde_dynamo::from_item(item)
                .map_err(|e| unreadable("dynamodb:Scan", "a config item", e))?
            {
                serde_json::Value::Object(map) => items.push(map),
                _ => {
                    return Err(unreadable("dynamodb:Scan", "a config item", "not a map"));
                }
            }
        }
        Ok(items)
    }

    async fn delete(&self, account: &AccountId) -> Result<bool, adjoin_core::Error> {
        let out = self
            .client
            .delete_item()
            .table_name(&self.table)
            .key("accountId", AttributeValue::S(account.to_string()))
            .return_values(ReturnValue::AllOld)
            .send()
            .await
            .map_err(|e| table_error("dynamodb:DeleteItem", &self.table, e))?;
        Ok(out.attributes.is_some_and(|a| !a.is_empty()))
    }
}

/// `LedgerQuery` on DynamoDB: a paginated Scan of the ledger with a filter expression.
pub struct DynamoLedgerQuery {
    client: aws_sdk_dynamodb::Client,
    table: String,
}

impl DynamoLedgerQuery {
    pub fn new(client: aws_sdk_dynamodb::Client, table: impl Into<String>) -> Self {
        DynamoLedgerQuery {
            client,
            table: table.into(),
        }
    }
}

#[async_trait]
impl LedgerQuery for DynamoLedgerQuery {
    async fn scan(&self, filter: &LedgerFilter) -> Result<Vec<JoinRecord>, adjoin_core::Error> {
        let mut conditions = Vec::new();
        let mut scan = self.client.scan().table_name(&self.table);
        if let Some(account) = &filter.account {
            conditions.push("#account = :account");
            scan = scan
                .expression_attribute_names("#account", "account")
                .expression_attribute_values(":account", AttributeValue::S(account.to_string()));
        }
        if let Some(since) = &filter.updated_since {
            conditions.push("#updatedAt >= :since");
            scan = scan
                .expression_attribute_names("#updatedAt", "updatedAt")
                .expression_attribute_values(":since", AttributeValue::S(since.clone()));
        }
        if !conditions.is_empty() {
            scan = scan.filter_expression(conditions.join(" AND "));
        }
        let mut items = scan.into_paginator().items().send();
        let mut records = Vec::new();
        while let Some(item) = items.next().await {
            let item = item.map_err(|e| table_error("dynamodb:Scan", &self.table, e))?;
            records.push(
                serde_dynamo::from_item(item)
                    .map_err(|e| unreadable("dynamodb:Scan", "a ledger record", e))?,
            );
        }
        Ok(records)
    }
}

/// `AgentStatus` on SSM DescribeInstanceInformation.
pub struct SsmAgentStatus {
    client: aws_sdk_ssm::Client,
}

impl SsmAgentStatus {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        SsmAgentStatus { client }
    }
}

#[async_trait]
impl AgentStatus for SsmAgentStatus {
    async fn agent(&self, instance: &InstanceId) -> Result<Option<AgentInfo>, adjoin_core::Error> {
        let filter = InstanceInformationStringFilter::builder()
            .key("InstanceIds")
            .values(instance.as_str())
            .build()
            .map_err(|e| unreadable("ssm:DescribeInstanceInformation", "the filter", e))?;
        let out = self
            .client
            .describe_instance_information()
            .filters(filter)
            .send()
            .await
            .map_err(|e| {
                use aws_sdk_ssm::error::ProvideErrorMetadata as _;
                let status = e.raw_response().map(|r| r.status().as_u16());
                if e.code().is_none() && status.is_some_and(|s| s >= 500) {
                    // Not SSM's error shape: the endpoint lacks the operation (the moto
                    // emulator answers it with a bare HTML 500). Not worth retrying.
                    adjoin_core::Error::Invalid {
                        operation: "ssm:DescribeInstanceInformation",
                        message: format!(
                            "the endpoint answered HTTP {} without an SSM error: it does not implement this operation (the moto emulator does not)",
                            status.unwrap_or_default()
                        ),
                    }
                } else {
                    map_sdk_error("ssm:DescribeInstanceInformation", e)
                }
            })?;
        Ok(out
            .instance_information_list()
            .iter()
            .find(|i| i.instance_id() == Some(instance.as_str()))
            .map(|i| AgentInfo {
                ping_status: i
                    .ping_status()
                    .map(|s| s.as_str().to_owned())
                    .unwrap_or_default(),
                platform_type: i.platform_type().map(|p| p.as_str().to_owned()),
                platform_name: i.platform_name().map(str::to_owned),
                agent_version: i.agent_version().map(str::to_owned),
            }))
    }
}

/// `SecretProbe` on SSM DescribeParameters (filtered by name) and Secrets Manager
/// DescribeSecret: metadata only, never GetParameter or GetSecretValue.
pub struct AwsSecretProbe {
    ssm: aws_sdk_ssm::Client,
    secrets: aws_sdk_secretsmanager::Client,
}

impl AwsSecretProbe {
    pub fn new(ssm: aws_sdk_ssm::Client, secrets: aws_sdk_secretsmanager::Client) -> Self {
        AwsSecretProbe { ssm, secrets }
    }
}

#[async_trait]
impl SecretProbe for AwsSecretProbe {
    async fn exists(&self, reference: &PasswordRef) -> Result<bool, adjoin_core::Error> {
        match reference {
            PasswordRef::SsmParameter(reference) => {
                let filter = ParameterStringFilter::builder()
                    .key("Name")
                    .option("Equals")
                    .values(parameter_name(reference))
                    .build()
                    .map_err(|e| unreadable("ssm:DescribeParameters", "the filter", e))?;
                let out = self
                    .ssm
                    .describe_parameters()
                    .parameter_filters(filter)
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("ssm:DescribeParameters", e))?;
                Ok(!out.parameters().is_empty())
            }
            PasswordRef::SecretsManager(arn) => {
                match self.secrets.describe_secret().secret_id(arn).send().await {
                    Ok(_) => Ok(true),
                    Err(aws_sdk_secretsmanager::error::SdkError::ServiceError(e))
                        if matches!(e.err(), DescribeSecretError::ResourceNotFoundException(_)) =>
                    {
                        Ok(false)
                    }
                    Err(e) => Err(map_sdk_error("secretsmanager:DescribeSecret", e)),
                }
            }
        }
    }
}

/// `AdminSessions` on STS: the operator's own credentials, or the member role assumed
/// with its external id (one session per call; the commands are short-lived).
pub struct AwsAdminSessions {
    base: SdkConfig,
    sts: aws_sdk_sts::Client,
}

impl AwsAdminSessions {
    pub fn new(base: SdkConfig) -> Self {
        AwsAdminSessions {
            sts: aws_sdk_sts::Client::new(&base),
            base,
        }
    }

    fn ports(config: &SdkConfig, account: AccountId, region: Region) -> AdminPorts {
        AdminPorts {
            account,
            region,
            agents: Arc::new(SsmAgentStatus::new(aws_sdk_ssm::Client::new(config))),
            secrets: Arc::new(AwsSecretProbe::new(
                aws_sdk_ssm::Client::new(config),
                aws_sdk_secretsmanager::Client::new(config),
            )),
        }
    }
}

#[async_trait]
impl AdminSessions for AwsAdminSessions {
    async fn home_in(&self, region: &Region) -> Result<AdminPorts, adjoin_core::Error> {
        let account = caller_account(&self.sts).await?;
        Ok(Self::ports(
            &in_region(&self.base, region),
            account,
            region.clone(),
        ))
    }

    async fn assume(
        &self,
        role: &RoleTarget,
        region: &Region,
    ) -> Result<AdminPorts, adjoin_core::Error> {
        let (config, _expires) =
            assumed_config(&self.sts, &self.base, region, role, "adjoin-admin").await?;
        Ok(Self::ports(&config, role.account.clone(), region.clone()))
    }
}
