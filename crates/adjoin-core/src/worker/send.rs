//! Phase 3, sending: a command that names one of adjoin's own documents goes out only
//! once the document the account holds is this version's ([`crate::documents`]), and it
//! names the hash SSM reported for it, so SSM refuses it if the document changes after
//! the check.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::Worker;
use super::gather::Gather;
use crate::documents::{self, Task};
use crate::error::Error;
use crate::ids::{AccountId, Region};
use crate::instance::Platform;
use crate::ports::AccountPorts;
use crate::render::{CommandRequest, Document};

/// Where a document is: account, Region, name.
type DocumentKey = (AccountId, Region, &'static str);

/// Document hashes checked, by account, Region and document name, each kept for `ttl`
/// (with the time they were checked).
pub(super) struct CheckedDocuments {
    ttl: Duration,
    found: Mutex<HashMap<DocumentKey, (String, Instant)>>,
}

impl CheckedDocuments {
    pub(super) fn new(ttl: Duration) -> Self {
        CheckedDocuments {
            ttl,
            found: Mutex::new(HashMap::new()),
        }
    }
}

impl Worker {
    /// Sends `request` with `ports` (gathered with the batch's other joins, given
    /// `gather`); adjoin's own document only as checked ([`Worker::document_hash`]).
    /// Returns the command id.
    pub(super) async fn send(
        &self,
        ports: &AccountPorts,
        request: &CommandRequest,
        gather: Option<&Gather>,
    ) -> Result<String, Error> {
        let Document::Adjoin(task, platform) = request.document else {
            return match gather {
                Some(gather) => gather.send(ports, request.clone()).await,
                None => ports.commands.send(request).await,
            };
        };
        let hash = self.document_hash(ports, task, platform).await?;
        let pinned = CommandRequest {
            document_hash: Some(hash),
            ..request.clone()
        };
        let sent = match gather {
            Some(gather) => gather.send(ports, pinned).await,
            None => ports.commands.send(&pinned).await,
        };
        if let Err(Error::Invalid { .. }) = &sent {
            // The document may have changed since it was checked: check it afresh.
            let key = (
                ports.account.clone(),
                ports.region.clone(),
                documents::name(task, platform),
            );
            self.documents.found.lock().await.remove(&key);
        }
        sent
    }

    /// The hash of adjoin's document for `task` on `platform` in `ports`' account and
    /// Region, once its content there is this version's (checked again after a while).
    /// A missing or different document is a permanent error that says what to deploy.
    async fn document_hash(
        &self,
        ports: &AccountPorts,
        task: Task,
        platform: Platform,
    ) -> Result<String, Error> {
        let name = documents::name(task, platform);
        let key = (ports.account.clone(), ports.region.clone(), name);
        let mut found = self.documents.found.lock().await;
        if let Some((hash, at)) = found.get(&key)
            && at.elapsed() < self.documents.ttl
        {
            return Ok(hash.clone());
        }
        let place = format!("account {} {}", ports.account, ports.region);
        let stack = match task {
            Task::Join => "member.yaml (region-forwarder.yaml in other Regions)",
            Task::Stage | Task::Leave => "central.yaml",
        };
        let stored = ports
            .commands
            .document(name)
            .await?
            .ok_or_else(|| Error::NotFound {
                operation: "ssm:DescribeDocument",
                message: format!(
                    "document {name} is not in {place}: deploy {stack} of adjoin {}",
                    env!("CARGO_PKG_VERSION")
                ),
            })?;
        let content: Option<serde_json::Value> = serde_json::from_str(&stored.content).ok();
        if content.as_ref() != Some(&documents::content(task, platform)) {
            return Err(Error::Invalid {
                operation: "ssm:GetDocument",
                message: format!(
                    "document {name} in {place} is not adjoin {}'s (changed there, or made by another version): refused, nothing sent; deploy {stack} of this version",
                    env!("CARGO_PKG_VERSION")
                ),
            });
        }
        found.insert(key, (stored.hash.clone(), Instant::now()));
        Ok(stored.hash)
    }
}
