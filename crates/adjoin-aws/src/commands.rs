//! `Commands` on SSM SendCommand and GetCommandInvocation.

use async_trait::async_trait;
use aws_sdk_ssm::error::SdkError;
use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationError;
use aws_sdk_ssm::types::{
    CloudWatchOutputConfig, CommandFilter, CommandFilterKey, CommandInvocationStatus,
    CommandStatus as CommandStatusSdk, DocumentFormat, DocumentHashType,
};

use adjoin_core::ids::InstanceId;
use adjoin_core::ports::{CommandResult, CommandStatus, CommandSummary, Commands, StoredDocument};
use adjoin_core::render::CommandRequest;

use crate::error::map_sdk_error;

/// A call's configuration without the SDK's retries (the caller decides what a failure
/// means).
fn without_retries() -> aws_sdk_ssm::config::Builder {
    aws_sdk_ssm::config::Builder::default()
        .retry_config(aws_sdk_ssm::config::retry::RetryConfig::disabled())
}

pub struct SsmCommands {
    client: aws_sdk_ssm::Client,
}

impl SsmCommands {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        SsmCommands { client }
    }
}

#[async_trait]
impl Commands for SsmCommands {
    async fn send(&self, request: &CommandRequest) -> Result<String, adjoin_core::Error> {
        let mut send = self
            .client
            .send_command()
            .document_name(request.document.name())
            .set_instance_ids(Some(
                std::iter::once(&request.target)
                    .chain(&request.more_targets)
                    .map(|id| id.to_string())
                    .collect(),
            ));
        if request.document.is_adjoins() {
            // adjoin's document: its values, and the hash of the content the worker
            // checked (SSM refuses the command if the document changed since).
            for (name, value) in &request.parameters {
                send = send.parameters(name, vec![value.clone()]);
            }
            if let Some(hash) = &request.document_hash {
                send = send
                    .document_hash(hash)
                    .document_hash_type(DocumentHashType::Sha256);
            }
        } else {
            send = send
                .parameters("commands", request.commands.clone())
                .parameters(
                    "executionTimeout",
                    vec![request.execution_timeout_secs.to_string()],
                );
        }
        let out = send
            .comment(&request.comment)
            .set_cloud_watch_output_config(request.output.log_group.as_ref().map(|group| {
                CloudWatchOutputConfig::builder()
                    .cloud_watch_log_group_name(group)
                    .cloud_watch_output_enabled(true)
                    .build()
            }))
            .set_output_s3_bucket_name(request.output.s3_bucket.clone())
            .set_output_s3_key_prefix(
                request
                    .output
                    .s3_bucket
                    .as_ref()
                    .map(|_| "adjoin/".to_owned()),
            )
            // Not retried by the SDK: SendCommand has no idempotency token, and a retry
            // after a time-out or a 5xx that SSM acted on would send a second command.
            // The worker looks for the command before it sends again.
            .customize()
            .config_override(without_retries())
            .send()
            .await
            .map_err(|e| map_sdk_error("ssm:SendCommand", e))?;
        out.command()
            .and_then(|c| c.command_id())
            .map(str::to_owned)
            .ok_or_else(|| adjoin_core::Error::Invalid {
                operation: "ssm:SendCommand",
                message: "the response has no command id".into(),
            })
    }

    async fn find_sent(
        &self,
        instance: &InstanceId,
        comment: &str,
        since: std::time::SystemTime,
    ) -> Result<Option<String>, adjoin_core::Error> {
        let since = aws_sdk_ssm::primitives::DateTime::from(since);
        let invoked_after = CommandFilter::builder()
            .key(CommandFilterKey::InvokedAfter)
            .value(
                since
                    .fmt(aws_sdk_ssm::primitives::DateTimeFormat::DateTime)
                    .unwrap_or_default(),
            )
            .build()
            .map_err(|e| adjoin_core::Error::Invalid {
                operation: "ssm:ListCommands",
                message: e.to_string(),
            })?;
        let mut pages = self
            .client
            .list_commands()
            .instance_id(instance.as_str())
            .filters(invoked_after)
            .into_paginator()
            .items()
            .send();
        while let Some(command) = pages.next().await {
            let command = command.map_err(|e| map_sdk_error("ssm:ListCommands", e))?;
            // The filter is checked here too: not every endpoint applies it.
            let recent = command.requested_date_time().is_none_or(|t| *t >= since);
            if command.comment().is_some_and(|c| c.starts_with(comment)) && recent {
                return Ok(command.command_id().map(str::to_owned));
            }
        }
        Ok(None)
    }

    async fn online(
        &self,
        instances: &[InstanceId],
    ) -> Result<Vec<InstanceId>, adjoin_core::Error> {
        // InstanceIds filters take at most 50 values per call.
        let mut online = Vec::new();
        for chunk in instances.chunks(50) {
            let filter = aws_sdk_ssm::types::InstanceInformationStringFilter::builder()
                .key("InstanceIds")
                .set_values(Some(chunk.iter().map(|i| i.as_str().to_owned()).collect()))
                .build()
                .map_err(|e| adjoin_core::Error::Invalid {
                    operation: "ssm:DescribeInstanceInformation",
                    message: e.to_string(),
                })?;
            // Not retried: when agent status cannot be read, the worker tries the hosts
            // by id instead (an endpoint without the operation answers HTTP 500).
            let mut next: Option<String> = None;
            loop {
                let page = self
                    .client
                    .describe_instance_information()
                    .filters(filter.clone())
                    .max_results(50)
                    .set_next_token(next.take())
                    .customize()
                    .config_override(without_retries())
                    .send()
                    .await
                    .map_err(|e| map_sdk_error("ssm:DescribeInstanceInformation", e))?;
                online.extend(
                    page.instance_information_list()
                        .iter()
                        .filter(|i| i.ping_status().is_some_and(|p| p.as_str() == "Online"))
                        .filter_map(|i| i.instance_id())
                        .filter_map(|id| InstanceId::parse(id).ok()),
                );
                match page.next_token() {
                    Some(token) if !token.is_empty() => next = Some(token.to_owned()),
                    _ => break,
                }
            }
        }
        Ok(online)
    }

    async fn document(&self, name: &str) -> Result<Option<StoredDocument>, adjoin_core::Error> {
        let described = match self.client.describe_document().name(name).send().await {
            Ok(out) => out,
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_invalid_document()) =>
            {
                return Ok(None);
            }
            Err(e) => return Err(map_sdk_error("ssm:DescribeDocument", e)),
        };
        let Some(hash) = described
            .document()
            .and_then(|d| d.hash())
            .map(str::to_owned)
        else {
            return Ok(None);
        };
        let got = self
            .client
            .get_document()
            .name(name)
            .document_format(DocumentFormat::Json)
            .send()
            .await
            .map_err(|e| map_sdk_error("ssm:GetDocument", e))?;
        Ok(Some(StoredDocument {
            hash,
            content: got.content().unwrap_or_default().to_owned(),
        }))
    }

    async fn summary(&self, command_id: &str) -> Result<CommandSummary, adjoin_core::Error> {
        let out = self
            .client
            .list_commands()
            .command_id(command_id)
            .send()
            .await
            .map_err(|e| map_sdk_error("ssm:ListCommands", e))?;
        let Some(command) = out.commands().first() else {
            // SSM lists a command a moment after SendCommand returns.
            return Ok(CommandSummary {
                status: CommandStatus::Pending,
                targets: 0,
                completed: 0,
                errors: 0,
            });
        };
        let status = match command.status() {
            Some(CommandStatusSdk::Success) => CommandStatus::Success,
            Some(CommandStatusSdk::InProgress) => CommandStatus::InProgress,
            Some(CommandStatusSdk::Pending) | None => CommandStatus::Pending,
            Some(other) => CommandStatus::Failed(other.as_str().to_owned()),
        };
        let count = |n: i32| u32::try_from(n).unwrap_or(0);
        Ok(CommandSummary {
            status,
            targets: count(command.target_count()),
            completed: count(command.completed_count()),
            errors: count(command.error_count()),
        })
    }

    async fn result(
        &self,
        command_id: &str,
        instance: &InstanceId,
    ) -> Result<CommandResult, adjoin_core::Error> {
        let out = match self
            .client
            .get_command_invocation()
            .command_id(command_id)
            .instance_id(instance.as_str())
            .send()
            .await
        {
            Ok(out) => out,
            // SSM lists an invocation a moment after SendCommand returns.
            Err(SdkError::ServiceError(e))
                if matches!(
                    e.err(),
                    GetCommandInvocationError::InvocationDoesNotExist(_)
                ) =>
            {
                return Ok(CommandResult {
                    status: CommandStatus::Pending,
                    exit_code: None,
                    stdout: String::new(),
                    stderr: String::new(),
                });
            }
            Err(e) => return Err(map_sdk_error("ssm:GetCommandInvocation", e)),
        };
        let status = match out.status() {
            Some(CommandInvocationStatus::Success) => CommandStatus::Success,
            Some(CommandInvocationStatus::InProgress) => CommandStatus::InProgress,
            Some(CommandInvocationStatus::Pending | CommandInvocationStatus::Delayed) | None => {
                CommandStatus::Pending
            }
            Some(other) => CommandStatus::Failed(other.as_str().to_owned()),
        };
        // ResponseCode is -1 until the script ends.
        let exit_code = Some(out.response_code()).filter(|c| *c >= 0);
        Ok(CommandResult {
            status,
            exit_code,
            stdout: out.standard_output_content().unwrap_or_default().to_owned(),
            stderr: out.standard_error_content().unwrap_or_default().to_owned(),
        })
    }
}
