//! Config items cached per container: a warm Lambda reads each account's item once per
//! TTL instead of once per batch; a changed item applies within the TTL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::Mutex;
use tokio::time::Instant;

use crate::config::ConfigItem;
use crate::error::Error;
use crate::ids::AccountId;
use crate::ports::ConfigStore;

/// A [`ConfigStore`] that keeps what it read for `ttl`. Missing items are kept too (an
/// unknown account's burst of events costs one read); errors are not.
pub struct CachedConfig {
    inner: Arc<dyn ConfigStore>,
    ttl: Duration,
    items: Mutex<HashMap<AccountId, (Option<ConfigItem>, Instant)>>,
}

impl CachedConfig {
    pub fn new(inner: Arc<dyn ConfigStore>, ttl: Duration) -> Self {
        CachedConfig {
            inner,
            ttl,
            items: Mutex::new(HashMap::new()),
        }
    }
}

#[async_trait]
impl ConfigStore for CachedConfig {
    async fn get(&self, account: &AccountId) -> Result<Option<ConfigItem>, Error> {
        if let Some((item, read)) = self.items.lock().await.get(account)
            && read.elapsed() < self.ttl
        {
            return Ok(item.clone());
        }
        let item = self.inner.get(account).await?;
        self.items
            .lock()
            .await
            .insert(account.clone(), (item.clone(), Instant::now()));
        Ok(item)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::faults::{Fault, Faults, Faulty, Op};
    use crate::testing::{MEMBER, bare_world, member_item};

    fn account() -> AccountId {
        crate::testing::account(MEMBER)
    }

    fn item(dns: &str) -> ConfigItem {
        let mut item = member_item();
        item.insert("dnsName".into(), dns.into());
        item
    }

    #[tokio::test(start_paused = true)]
    async fn items_are_read_once_per_ttl_and_changes_show_after_it() {
        let aws = bare_world();
        aws.put_config(&account(), item("a.example"));
        let cached = CachedConfig::new(Arc::new(aws.clone()), Duration::from_secs(60));
        assert_eq!(cached.get(&account()).await, Ok(Some(item("a.example"))));
        aws.put_config(&account(), item("b.example"));
        tokio::time::advance(Duration::from_secs(59)).await;
        assert_eq!(
            cached.get(&account()).await,
            Ok(Some(item("a.example"))),
            "within the TTL"
        );
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(cached.get(&account()).await, Ok(Some(item("b.example"))));
    }

    #[tokio::test(start_paused = true)]
    async fn errors_are_not_kept() {
        let aws = bare_world();
        aws.put_config(&account(), item("a.example"));
        let faults = Faults::default();
        faults.inject(Op::GetConfig, Fault::Timeout, Some(1));
        let cached = CachedConfig::new(
            Arc::new(Faulty::new(Arc::new(aws), faults)),
            Duration::from_secs(60),
        );
        assert!(cached.get(&account()).await.is_err());
        assert_eq!(cached.get(&account()).await, Ok(Some(item("a.example"))));
    }
}
