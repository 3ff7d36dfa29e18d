//! Phase 2: what to do about one event — a pure function of the event, what EC2 reports
//! about the instance now, the instance's ledger record and the settings.
//!
//! The rules, in the order they apply:
//!
//! - a record that belongs to another account or Region than the event is never acted
//!   on: the event is rejected (a forged or misrouted event must not delete the
//!   computer object of a live instance elsewhere, nor block its join);
//! - the delivery that sent a join (or its stage command) verifies it, whatever EC2
//!   reports now;
//! - a running event joins an instance EC2 reports running and not opted out, unless the
//!   ledger says it is joined, being joined, or gone;
//! - a terminated event for an instance EC2 reports alive is refused;
//! - a terminated event leaves an instance the ledger recorded (whatever its tags say
//!   now), deleting the computer name the ledger recorded; without a record it deletes
//!   nothing, and is recorded `left` only when EC2 confirms the instance is ending
//!   ("not found" alone proves nothing: the event may name another account or Region).

use std::fmt;

use crate::config::AccountConfig;
use crate::event::{EventState, InstanceEvent};
use crate::instance::{
    COMPUTER_GROUPS_TAG, GROUP_TAG, Instance, InstanceState, OU_TAG, Platform, SUDO_TAG,
    computer_groups_tag_problem, group_tag_problem, ou_tag_problem, sudo_tag_problem,
};
use crate::ledger::{self, Handler, JoinRecord, Step};
use crate::outcome::Action;

/// What the worker knows when it plans one event.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    pub event: &'a InstanceEvent,
    /// What EC2 reports in the event's account and Region; `None`: EC2 does not know it.
    pub instance: Option<&'a Instance>,
    /// The instance's ledger record, if any.
    pub record: Option<&'a JoinRecord>,
    /// Who handles the event, and when.
    pub handler: Handler<'a>,
    /// The computer name the account's config gives the instance (for a new join, or a
    /// leave of an instance the ledger has no record of).
    pub computer_name: &'a str,
    /// [`super::Settings::leave_unrecorded`].
    pub leave_unrecorded: bool,
    /// What the account allows the instance's tags to choose.
    pub tag_rules: TagRules<'a>,
    /// [`super::Settings::ignore_opt_out`].
    pub ignore_opt_out: bool,
}

/// What an account's config item lets an instance's tags choose.
#[derive(Debug, Clone, Copy, Default)]
pub struct TagRules<'a> {
    /// `allowedLoginGroups` (`adGroupName`); `None`: any group but the privileged ones.
    pub login_groups: Option<&'a [String]>,
    /// `sudoGroups` (`adSudoGroup` picks one).
    pub sudo_groups: &'a [String],
    /// `allowedOuPaths` (`adOuPath`).
    pub ou_paths: &'a [String],
    /// `allowedComputerGroups` (`adComputerGroups`).
    pub computer_groups: &'a [String],
}

impl<'a> TagRules<'a> {
    pub fn of(config: &'a AccountConfig) -> Self {
        TagRules {
            login_groups: config.allowed_login_groups.as_deref(),
            sudo_groups: &config.sudo_groups,
            ou_paths: &config.allowed_ou_paths,
            computer_groups: &config.allowed_computer_groups,
        }
    }
}

/// What to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// This delivery sent `command_id`: read its result.
    Verify { command_id: String },
    /// Claim the record and start join attempt `attempt`: the stage command to the AD
    /// tools host (a staged join), or the join command to the instance.
    Join { platform: Platform, attempt: u32 },
    /// A joined instance's tags changed: send the join command again (attempt 1, no
    /// staging: an instance already joined keeps its join and writes its configuration
    /// afresh; should it fail, the next attempt is a whole join).
    Reconfigure { computer_name: String },
    /// This delivery sent the stage command `command_id` to the tools host `target`:
    /// read its result, and send the join command once the account is staged.
    VerifyStage { command_id: String, target: String },
    /// Claim the record and send leave attempt `attempt` for `computer_name` to the AD
    /// tools host.
    Leave { computer_name: String, attempt: u32 },
    /// This delivery sent the leave command `command_id` to the tools host `target`:
    /// read its result.
    VerifyLeave { command_id: String, target: String },
    /// Record the instance `left` without sending anything: it was never joined.
    Tombstone,
    /// Nothing to do.
    Skip(SkipReason),
    /// The event can never be acted on.
    Reject(RejectReason),
}

/// Why nothing is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Tagged `autoadjoin=false`.
    OptedOut,
    /// The instance is no longer running when the (delayed) running event is handled.
    NotRunning { state: InstanceState },
    /// DescribeInstances does not know the instance (terminated long ago, or never existed).
    Gone,
    /// A terminated event for an instance neither the ledger nor EC2 knows.
    UnknownTerminated,
    /// A state other than running/terminated.
    StateNotHandled { state: String },
    /// What the ledger says makes the event moot (already joined, being joined, left…).
    Ledger(String),
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OptedOut => write!(f, "instance is tagged autoadjoin=false"),
            SkipReason::NotRunning { state } => {
                write!(f, "instance is {state} now, no longer running: not joined")
            }
            SkipReason::Gone => write!(f, "instance no longer exists: not joined"),
            SkipReason::UnknownTerminated => write!(
                f,
                "no join recorded for the instance and EC2 does not know it in this account and Region: nothing to delete"
            ),
            SkipReason::StateNotHandled { state } => write!(
                f,
                "state {state:?} needs no action (only running and terminated do)"
            ),
            SkipReason::Ledger(reason) => f.write_str(reason),
        }
    }
}

/// Why an event can never be acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RejectReason {
    /// The ledger recorded the instance in another account or Region than the event.
    RecordElsewhere {
        record_account: String,
        record_region: String,
    },
    /// This delivery gave up before (every attempt failed, or the object was not ours).
    GaveUp(String),
    /// A terminated event for an instance EC2 reports alive.
    StillAlive { state: InstanceState },
    /// A tag (`adGroupName`, `adSudoGroup`) would change the instance's configuration,
    /// or names a group the account does not allow.
    Tag {
        tag: &'static str,
        value: String,
        problem: String,
    },
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RejectReason::RecordElsewhere {
                record_account,
                record_region,
            } => write!(
                f,
                "the ledger records the instance in account {record_account} {record_region}, not the event's: nothing is done"
            ),
            RejectReason::GaveUp(reason) => f.write_str(reason),
            RejectReason::StillAlive { state } => write!(
                f,
                "terminated event, but EC2 reports the instance {state}: its computer object is kept"
            ),
            RejectReason::Tag {
                tag,
                value,
                problem,
            } => write!(f, "{tag} tag {value:?} {problem}: not joined"),
        }
    }
}

/// Plans one event: what the event asks for, and what to do.
pub fn plan(facts: &Facts<'_>) -> (Action, Plan) {
    let event = facts.event;
    if let Some(r) = facts.record
        && (r.account != event.account.as_str() || r.region != event.region.as_str())
    {
        let action = match event.state {
            EventState::Running | EventState::TagsChanged(_) => Action::Join,
            EventState::Terminated => Action::Leave,
            EventState::Other(_) => Action::None,
        };
        return (
            action,
            Plan::Reject(RejectReason::RecordElsewhere {
                record_account: r.account.clone(),
                record_region: r.region.clone(),
            }),
        );
    }
    match &event.state {
        EventState::Running => plan_running(facts),
        EventState::TagsChanged(keys) => plan_tags_changed(facts, keys),
        EventState::Terminated => plan_terminated(facts),
        EventState::Other(state) => (
            Action::None,
            Plan::Skip(SkipReason::StateNotHandled {
                state: state.clone(),
            }),
        ),
    }
}

/// A tag change: a joined instance gets its configuration written again (login and sudo
/// groups, by the join command, which keeps the join); any other running instance is
/// handled as a running event (joined, unless the ledger or its tags say otherwise).
fn plan_tags_changed(facts: &Facts<'_>, keys: &[String]) -> (Action, Plan) {
    if !keys
        .iter()
        .any(|k| crate::event::WATCHED_TAGS.contains(&k.as_str()))
    {
        return (
            Action::None,
            Plan::Skip(SkipReason::Ledger(format!(
                "no tag adjoin reads changed ({})",
                keys.join(", ")
            ))),
        );
    }
    let joined_before = facts.record.filter(|r| {
        r.status == ledger::JoinStatus::Joined && r.message_id != facts.handler.message_id
    });
    let Some(record) = joined_before else {
        return plan_running(facts);
    };
    match facts.instance {
        None => (Action::None, Plan::Skip(SkipReason::Gone)),
        Some(i) if i.opted_out() && !facts.ignore_opt_out => {
            (Action::None, Plan::Skip(SkipReason::OptedOut))
        }
        Some(i) if i.state != InstanceState::Running => (
            Action::None,
            Plan::Skip(SkipReason::NotRunning {
                state: i.state.clone(),
            }),
        ),
        Some(i) => match tag_refusal(i, &facts.tag_rules) {
            Some(reason) => (Action::Join, Plan::Reject(reason)),
            None => (
                Action::Join,
                Plan::Reconfigure {
                    computer_name: record.computer_name.clone(),
                },
            ),
        },
    }
}

fn plan_running(facts: &Facts<'_>) -> (Action, Plan) {
    // What the ledger says, read once. The delivery that sent a join verifies it,
    // whatever EC2 reports now.
    let step = ledger::on_running(facts.record, &facts.handler);
    match step {
        Step::Verify { command_id } => return (Action::Verify, Plan::Verify { command_id }),
        Step::VerifyStage { command_id, target } => {
            return (Action::Verify, Plan::VerifyStage { command_id, target });
        }
        _ => {}
    }
    let instance = match facts.instance {
        None => return (Action::None, Plan::Skip(SkipReason::Gone)),
        Some(i) if i.opted_out() && !facts.ignore_opt_out => {
            return (Action::None, Plan::Skip(SkipReason::OptedOut));
        }
        Some(i) if i.state != InstanceState::Running => {
            return (
                Action::None,
                Plan::Skip(SkipReason::NotRunning {
                    state: i.state.clone(),
                }),
            );
        }
        Some(i) => i,
    };
    if let Some(reason) = tag_refusal(instance, &facts.tag_rules) {
        return (Action::Join, Plan::Reject(reason));
    }
    let plan = match step {
        Step::Join { attempt } => Plan::Join {
            platform: instance.platform,
            attempt,
        },
        Step::Skip(reason) => Plan::Skip(SkipReason::Ledger(reason)),
        Step::GiveUp(reason) => Plan::Reject(RejectReason::GaveUp(reason)),
        // on_running answers Join, Verify, Skip or GiveUp only.
        Step::Verify { .. }
        | Step::VerifyStage { .. }
        | Step::VerifyLeave { .. }
        | Step::Leave { .. }
        | Step::Tombstone => Plan::Skip(SkipReason::Ledger(format!(
            "no join for ledger step {step:?}"
        ))),
    };
    (Action::Join, plan)
}

/// Why one of the instance's tags (`adGroupName`, `adSudoGroup`, `adOuPath`,
/// `adComputerGroups`) forbids a join, if one does.
fn tag_refusal(instance: &Instance, rules: &TagRules<'_>) -> Option<RejectReason> {
    /// What forbids a tag's value, if anything.
    type Check<'c> = &'c dyn Fn(&str) -> Option<String>;
    let checks: [(&'static str, Check<'_>); 4] = [
        (GROUP_TAG, &|v| group_tag_problem(v, rules.login_groups)),
        (SUDO_TAG, &|v| sudo_tag_problem(v, rules.sudo_groups)),
        (OU_TAG, &|v| ou_tag_problem(v, rules.ou_paths)),
        (COMPUTER_GROUPS_TAG, &|v| {
            computer_groups_tag_problem(v, rules.computer_groups)
        }),
    ];
    checks.into_iter().find_map(|(tag, problem)| {
        let value = instance.tag(tag)?;
        problem(value).map(|problem| RejectReason::Tag {
            tag,
            value: value.to_owned(),
            problem,
        })
    })
}

/// Why the instance's tags, as EC2 reports them now, forbid sending another join
/// attempt, if they do: opted out since, or a login or sudo group the account does not
/// allow. Checked before every attempt, since tags may change while a join is retried.
pub(super) fn tags_refuse_join(
    instance: &Instance,
    config: &AccountConfig,
    ignore_opt_out: bool,
) -> Option<String> {
    if instance.opted_out() && !ignore_opt_out {
        return Some(SkipReason::OptedOut.to_string());
    }
    tag_refusal(instance, &TagRules::of(config)).map(|r| r.to_string())
}

fn plan_terminated(facts: &Facts<'_>) -> (Action, Plan) {
    // What the ledger says, read once. The delivery that sent a leave verifies it.
    let step = facts
        .record
        .map(|r| (r, ledger::on_terminated(Some(r), &facts.handler)));
    if let Some((_, Step::VerifyLeave { command_id, target })) = step {
        return (Action::Verify, Plan::VerifyLeave { command_id, target });
    }
    // A terminated event for an instance EC2 still reports alive is forged or misrouted:
    // deleting its computer object would cut a live machine off.
    if let Some(i) = facts.instance
        && !i.state.is_ending()
    {
        let reason = RejectReason::StillAlive {
            state: i.state.clone(),
        };
        return (Action::None, Plan::Reject(reason));
    }
    if facts.record.is_none() && facts.instance.is_some_and(Instance::opted_out) {
        return (Action::None, Plan::Skip(SkipReason::OptedOut));
    }
    (Action::Leave, plan_leave(facts, step))
}

/// `step`: the record and what the ledger says about it, when there is one.
fn plan_leave(facts: &Facts<'_>, step: Option<(&JoinRecord, Step)>) -> Plan {
    let ending = facts.instance.is_some();
    match step {
        // The ledger decides, not the tags: an instance opted out after its join still
        // has a computer object to delete. EC2 in the record's own account and Region
        // says it is ending, or no longer knows it (EC2 forgets terminated instances
        // after about an hour).
        Some((record, step)) => match step {
            Step::Leave { attempt } => Plan::Leave {
                computer_name: record.computer_name.clone(),
                attempt,
            },
            Step::Skip(reason) => Plan::Skip(SkipReason::Ledger(reason)),
            Step::GiveUp(reason) => Plan::Reject(RejectReason::GaveUp(reason)),
            other => Plan::Skip(SkipReason::Ledger(format!(
                "no leave for ledger step {other:?}"
            ))),
        },
        // Never joined by this service; only EC2's own word that the instance is ending
        // justifies a delete (of an object joined before the ledger existed) or a record.
        None if ending && facts.leave_unrecorded => Plan::Leave {
            computer_name: facts.computer_name.to_owned(),
            attempt: 1,
        },
        None if ending => Plan::Tombstone,
        None => Plan::Skip(SkipReason::UnknownTerminated),
    }
}

#[cfg(test)]
mod tests;
