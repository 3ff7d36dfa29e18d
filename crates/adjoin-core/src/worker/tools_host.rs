//! The AD tools host: a running instance with the tools-host tag in the service's own
//! account and Region, found by tag and kept for a while.

use std::collections::HashMap;
use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

use super::{Fate, Worker, error_fate};
use crate::config::TagMatch;
use crate::instance::{Instance, tools_host_of};
use crate::ports::AccountPorts;

/// Tools hosts found, by tag, each kept for `ttl`.
pub(super) struct ToolsHosts {
    ttl: Duration,
    found: Mutex<HashMap<TagMatch, (Instance, Instant)>>,
}

impl ToolsHosts {
    pub(super) fn new(ttl: Duration) -> Self {
        ToolsHosts {
            ttl,
            found: Mutex::new(HashMap::new()),
        }
    }

    /// The kept host of `tag`, else the running instance `find` gives with the lowest
    /// id, kept from now on. One lookup at a time: events of a batch share it.
    async fn get_or_find<E>(
        &self,
        tag: &TagMatch,
        find: impl Future<Output = Result<Vec<Instance>, E>>,
    ) -> Result<Option<Instance>, E> {
        let mut found = self.found.lock().await;
        if let Some((host, at)) = found.get(tag)
            && at.elapsed() < self.ttl
        {
            return Ok(Some(host.clone()));
        }
        let host = tools_host_of(find.await?);
        if let Some(host) = &host {
            found.insert(tag.clone(), (host.clone(), Instant::now()));
        }
        Ok(host)
    }

    /// Forgets the host of `tag` (it may have stopped or been replaced).
    pub(super) async fn forget(&self, tag: &TagMatch) {
        self.found.lock().await.remove(tag);
    }
}

impl Worker {
    /// The AD tools host of `tag` and the home account's ports: the kept one, else the
    /// running instance with the tag of lowest id.
    pub(super) async fn tools_host(
        &self,
        tag: &TagMatch,
        receive_count: u32,
    ) -> Result<(AccountPorts, Instance), Fate> {
        let home = self
            .ports
            .sessions
            .home()
            .await
            .map_err(|e| error_fate(e, receive_count, &self.settings))?;
        let host = self
            .tools_hosts
            .get_or_find(tag, home.instances.find_running_by_tag(tag))
            .await
            .map_err(|e| error_fate(e, receive_count, &self.settings))?;
        match host {
            Some(host) => Ok((home, host)),
            None => Err(Fate::Failed(format!(
                "no running AD tools host tagged {}={} in account {} {}",
                tag.key, tag.value, home.account, home.region
            ))),
        }
    }
}
