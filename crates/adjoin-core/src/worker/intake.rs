//! Phase 1: parse the batch, drop duplicates within it, group by account and Region,
//! and prepare each group (config item, session, EC2 and ledger reads).

use std::collections::{BTreeMap, HashMap};

use tracing::Instrument as _;
use tracing::{Span, field, info, info_span, warn};

use super::{Blocked, Fate, Worker};
use crate::config::AccountConfig;
use crate::event::{InstanceEvent, parse_body};
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::Instance;
use crate::ledger::JoinRecord;
use crate::outcome::Action;
use crate::ports::{AccountPorts, OpenError, open_account};

use super::Message;

/// One message of the batch, from intake to its report.
pub(super) struct Entry<'m> {
    pub message: &'m Message,
    /// The message's span: every log line about it names its message, account, Region
    /// and instance.
    pub span: Span,
    /// The parsed event; `None` when the body is not one.
    pub event: Option<InstanceEvent>,
    /// What the event asked for and how it ended; `None` until decided (a message
    /// still undecided at the deadline is reported failed).
    pub result: Option<(Action, Fate)>,
}

/// A parsed message waiting for its group to be prepared.
pub(super) struct Pending<'m> {
    /// Its place in the batch.
    pub index: usize,
    pub message: &'m Message,
    pub event: InstanceEvent,
    pub span: Span,
}

/// Messages are grouped by the account and Region their event names.
pub(super) type GroupKey = (AccountId, Region);

/// What one account/Region group of the batch shares.
pub(super) struct Group {
    pub config: AccountConfig,
    pub ports: AccountPorts,
    /// What EC2 reports, by instance id; absent: EC2 does not know the instance.
    pub instances: HashMap<String, Instance>,
    /// The ledger's records, by instance id.
    pub records: HashMap<String, JoinRecord>,
}

/// Parses every message; refuses what is not an EC2 state-change event and skips
/// duplicates of an earlier message of the batch; groups the rest.
pub(super) fn intake(
    messages: &[Message],
) -> (Vec<Entry<'_>>, BTreeMap<GroupKey, Vec<Pending<'_>>>) {
    let mut entries = Vec::with_capacity(messages.len());
    let mut groups: BTreeMap<GroupKey, Vec<Pending<'_>>> = BTreeMap::new();
    // The same event (id, account, Region, instance, state) twice in one batch.
    let mut seen: HashMap<(String, AccountId, Region, String, String), &str> = HashMap::new();
    for (index, message) in messages.iter().enumerate() {
        let span = info_span!("message", message_id = %message.message_id, account = field::Empty,
                              region = field::Empty, instance_id = field::Empty);
        let mut entry = Entry {
            message,
            span: span.clone(),
            event: None,
            result: None,
        };
        match parse_body(&message.body) {
            Ok(event) => {
                span.record("account", event.account.as_str());
                span.record("region", event.region.as_str());
                span.record("instance_id", event.instance_id.as_str());
                entry.event = Some(event.clone());
                let key = (
                    event.event_id.clone(),
                    event.account.clone(),
                    event.region.clone(),
                    event.instance_id.to_string(),
                    event.state.as_str().to_owned(),
                );
                match seen.get(&key) {
                    Some(first) if !event.event_id.is_empty() => {
                        let reason = format!("duplicate of message {first} in this batch");
                        entry.result = Some((Action::None, Fate::Skipped(reason)));
                    }
                    _ => {
                        seen.insert(key, &message.message_id);
                        groups
                            .entry((event.account.clone(), event.region.clone()))
                            .or_default()
                            .push(Pending {
                                index,
                                message,
                                event,
                                span,
                            });
                    }
                }
            }
            Err(e) => {
                span.in_scope(|| warn!(reason = %e, "message is not an EC2 state-change event"));
                entry.result = Some((Action::None, Fate::Rejected(e.to_string())));
            }
        }
        entries.push(entry);
    }
    (entries, groups)
}

/// Records how the message at `index` ended.
pub(super) fn conclude(entries: &mut [Entry<'_>], index: usize, action: Action, fate: Fate) {
    if let Some(entry) = entries.get_mut(index) {
        entry.result = Some((action, fate));
    }
}

impl Worker {
    /// Config item, session, instances and ledger records for one account and Region.
    pub(super) async fn prepare_group(
        &self,
        account: &AccountId,
        region: &Region,
        items: &[Pending<'_>],
    ) -> Result<Group, Blocked> {
        let mut ids: Vec<InstanceId> = items.iter().map(|i| i.event.instance_id.clone()).collect();
        ids.sort_unstable();
        ids.dedup();
        let span =
            info_span!("account", account = %account, region = %region, messages = items.len());
        self.read_group(account, region, &ids)
            .instrument(span)
            .await
    }

    async fn read_group(
        &self,
        account: &AccountId,
        region: &Region,
        ids: &[InstanceId],
    ) -> Result<Group, Blocked> {
        let item = match self.ports.config.get(account).await {
            Ok(Some(item)) => item,
            Ok(None) => {
                return Err(Blocked::Rejected(format!(
                    "no config item for account {account} in the config table"
                )));
            }
            Err(e) => return Err(Blocked::Error(e)),
        };
        let config = AccountConfig::from_item(&item, account)
            .map_err(|e| Blocked::Rejected(e.to_string()))?;
        let ports = open_account(self.ports.sessions.as_ref(), &config, region)
            .await
            .map_err(|e| match e {
                OpenError::Session(e) => Blocked::Error(e),
                other => Blocked::Rejected(other.to_string()),
            })?;
        // What EC2 reports and what the ledger says, read at the same time.
        let (instances, records) = tokio::join!(
            ports.instances.describe(ids),
            self.ports.ledger.get_many(ids)
        );
        let instances = instances
            .map_err(Blocked::Error)?
            .into_iter()
            .map(|i| (i.id.to_string(), i))
            .collect();
        let records = records
            .map_err(Blocked::Error)?
            .into_iter()
            .map(|r| (r.instance_id.clone(), r))
            .collect();
        info!(instances = ids.len(), "account ready");
        Ok(Group {
            config,
            ports,
            instances,
            records,
        })
    }
}
