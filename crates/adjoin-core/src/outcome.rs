//! What happened to each message: the report the Lambda and `adjoin replay` give.

use serde::Serialize;

use crate::render::CommandRequest;

/// Every message ends in exactly one outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// A join or leave command was sent (or, in a dry run, would be). A join's message
    /// comes back later to verify the command.
    Dispatched,
    /// The join command this message sent succeeded: the ledger says `joined`.
    Verified,
    /// A dry run's join or leave: the command that would be sent; nothing was sent.
    Planned,
    /// Nothing to do.
    Skipped,
    /// Try again later: the message comes back after a back-off.
    Deferred,
    /// Can never succeed: moved to the DLQ with its reason.
    Rejected,
    /// A transient error: SQS delivers the message again.
    Failed,
}

impl Outcome {
    /// Whether SQS must deliver the message again (a batch item failure).
    pub fn is_batch_item_failure(self) -> bool {
        matches!(self, Outcome::Deferred | Outcome::Failed)
    }
}

/// What the event asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    Join,
    Leave,
    /// Reading the result of the join command the message sent earlier.
    Verify,
    None,
}

/// The account's rendered command in a dry run, parameters decoded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderedCommand {
    pub document: &'static str,
    pub target: String,
    pub comment: String,
    pub parameters: std::collections::BTreeMap<String, String>,
}

impl From<&CommandRequest> for RenderedCommand {
    fn from(c: &CommandRequest) -> Self {
        RenderedCommand {
            document: c.document.name(),
            target: c.target.to_string(),
            comment: c.comment.clone(),
            parameters: crate::render::decode_params(&c.commands)
                .into_iter()
                .collect(),
        }
    }
}

/// One line of the report: a message and what became of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub message_id: String,
    pub account: Option<String>,
    pub region: Option<String>,
    pub instance_id: Option<String>,
    pub action: Action,
    pub outcome: Outcome,
    pub reason: String,
    pub command_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub command: Option<RenderedCommand>,
    /// SQS delivers the message again (a batch item failure): deferred, failed, or a
    /// dispatched join that comes back for verification.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub comes_back: bool,
    /// A dry run: read everything, sent nothing (no command, no DLQ message, no
    /// visibility change).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub dry_run: bool,
}
