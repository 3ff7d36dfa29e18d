//! `Commands` on SSM SendCommand.

use async_trait::async_trait;

use adjoin_core::ports::Commands;
use adjoin_core::render::CommandRequest;

use crate::error::map_sdk_error;

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
        let out = self
            .client
            .send_command()
            .document_name(request.document.name())
            .instance_ids(request.target.as_str())
            .parameters("commands", request.commands.clone())
            .parameters(
                "executionTimeout",
                vec![request.execution_timeout_secs.to_string()],
            )
            .comment(&request.comment)
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
}
