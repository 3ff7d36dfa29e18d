//! The planning rules, one table row per case.

use std::time::{Duration, SystemTime};

use super::*;
use crate::ids::{AccountId, InstanceId, Region};
use crate::ledger::JoinStatus;
use crate::testing::instance as test_instance;

const ACCOUNT: &str = "111122223333";
const REGION: &str = "eu-west-1";
const ID: &str = "i-0abcd1234ef567890";
const NAME: &str = "I0ABCD1234EF567";

fn event(state: EventState) -> InstanceEvent {
    InstanceEvent {
        event_id: "e".into(),
        account: AccountId::parse(ACCOUNT).expect("valid"),
        region: Region::parse(REGION).expect("valid"),
        instance_id: InstanceId::parse(ID).expect("valid"),
        state,
        time: String::new(),
        via_sns: false,
    }
}

fn record(status: JoinStatus, account: &str, region: &str, message_id: &str) -> JoinRecord {
    let now = ledger::format_time(SystemTime::now());
    JoinRecord {
        instance_id: ID.into(),
        account: account.into(),
        region: region.into(),
        status,
        computer_name: "RECORDED-NAME".into(),
        message_id: message_id.into(),
        event_id: "e0".into(),
        command_id: Some("c-1".into()),
        command_target: None,
        ou_path: None,
        attempts: 1,
        exit_code: None,
        output: None,
        created_at: now.clone(),
        updated_at: now,
        expires_at: None,
        version: 1,
    }
}

/// One case: the event's state, EC2's answer (state and tags, or gone), the record.
struct Case {
    name: &'static str,
    state: EventState,
    ec2: Option<(&'static str, &'static [(&'static str, &'static str)])>,
    record: Option<JoinRecord>,
    leave_unrecorded: bool,
    expect: (Action, Expect),
}

#[derive(Debug)]
enum Expect {
    Verify,
    Join,
    /// A leave of this computer name.
    Leave(&'static str),
    Tombstone,
    Skip(fn(&SkipReason) -> bool),
    Reject(fn(&RejectReason) -> bool),
}

fn check(case: &Case) {
    let instance = case
        .ec2
        .map(|(state, tags)| test_instance(ID, state, crate::instance::Platform::Linux, tags));
    let event = event(case.state.clone());
    let facts = Facts {
        event: &event,
        instance: instance.as_ref(),
        record: case.record.as_ref(),
        handler: Handler {
            message_id: "this-message",
            now: SystemTime::now(),
            stale_after: Duration::from_secs(7200),
        },
        computer_name: NAME,
        leave_unrecorded: case.leave_unrecorded,
        tag_rules: TagRules::default(),
        ignore_opt_out: false,
    };
    let (action, plan) = plan(&facts);
    let (want_action, want) = &case.expect;
    let ok = action == *want_action
        && match (want, &plan) {
            (Expect::Verify, Plan::Verify { .. }) => true,
            (Expect::Join, Plan::Join { .. }) => true,
            (Expect::Leave(name), Plan::Leave { computer_name, .. }) => computer_name == name,
            (Expect::Tombstone, Plan::Tombstone) => true,
            (Expect::Skip(f), Plan::Skip(r)) => f(r),
            (Expect::Reject(f), Plan::Reject(r)) => f(r),
            _ => false,
        };
    assert!(
        ok,
        "{}: got ({action:?}, {plan:?}), want ({want_action:?}, {want:?})",
        case.name
    );
}

const NO_TAGS: &[(&str, &str)] = &[];
const OPTED_OUT: &[(&str, &str)] = &[("autoadjoin", "false")];

#[test]
fn every_rule_of_the_plan() {
    use EventState::{Running, Terminated};
    let mine = |status| Some(record(status, ACCOUNT, REGION, "earlier"));
    let cases = [
        // Running events.
        Case {
            name: "running, never seen: join",
            state: Running,
            ec2: Some(("running", NO_TAGS)),
            record: None,
            leave_unrecorded: false,
            expect: (Action::Join, Expect::Join),
        },
        Case {
            name: "running, opted out",
            state: Running,
            ec2: Some(("running", OPTED_OUT)),
            record: None,
            leave_unrecorded: false,
            expect: (Action::None, Expect::Skip(|r| *r == SkipReason::OptedOut)),
        },
        Case {
            name: "running, stopped since",
            state: Running,
            ec2: Some(("stopped", NO_TAGS)),
            record: None,
            leave_unrecorded: false,
            expect: (
                Action::None,
                Expect::Skip(
                    |r| matches!(r, SkipReason::NotRunning { state } if *state == InstanceState::Stopped),
                ),
            ),
        },
        Case {
            name: "running, gone",
            state: Running,
            ec2: None,
            record: None,
            leave_unrecorded: false,
            expect: (Action::None, Expect::Skip(|r| *r == SkipReason::Gone)),
        },
        Case {
            name: "running, already joined",
            state: Running,
            ec2: Some(("running", NO_TAGS)),
            record: mine(JoinStatus::Joined),
            leave_unrecorded: false,
            expect: (
                Action::Join,
                Expect::Skip(|r| r.to_string().contains("already joined")),
            ),
        },
        Case {
            name: "running, this delivery sent the join: verify even if EC2 says stopped",
            state: Running,
            ec2: Some(("stopped", NO_TAGS)),
            record: Some(record(JoinStatus::Joining, ACCOUNT, REGION, "this-message")),
            leave_unrecorded: false,
            expect: (Action::Verify, Expect::Verify),
        },
        Case {
            name: "running, hostile group tag",
            state: Running,
            ec2: Some(("running", &[("adGroupName", "a\n[domain/x]")])),
            record: None,
            leave_unrecorded: false,
            expect: (
                Action::Join,
                Expect::Reject(|r| matches!(r, RejectReason::Tag { .. })),
            ),
        },
        Case {
            name: "running, record in another Region",
            state: Running,
            ec2: Some(("running", NO_TAGS)),
            record: Some(record(JoinStatus::Left, ACCOUNT, "us-east-1", "earlier")),
            leave_unrecorded: false,
            expect: (
                Action::Join,
                Expect::Reject(|r| matches!(r, RejectReason::RecordElsewhere { .. })),
            ),
        },
        // Terminated events.
        Case {
            name: "terminated, joined, EC2 terminated: leave the recorded name",
            state: Terminated,
            ec2: Some(("terminated", NO_TAGS)),
            record: mine(JoinStatus::Joined),
            leave_unrecorded: false,
            expect: (Action::Leave, Expect::Leave("RECORDED-NAME")),
        },
        Case {
            name: "terminated, joined, EC2 shutting down",
            state: Terminated,
            ec2: Some(("shutting-down", NO_TAGS)),
            record: mine(JoinStatus::Joined),
            leave_unrecorded: false,
            expect: (Action::Leave, Expect::Leave("RECORDED-NAME")),
        },
        Case {
            name: "terminated, joined, gone from EC2 in its own account and Region",
            state: Terminated,
            ec2: None,
            record: mine(JoinStatus::Joined),
            leave_unrecorded: false,
            expect: (Action::Leave, Expect::Leave("RECORDED-NAME")),
        },
        Case {
            name: "terminated, joined, then opted out: the ledger decides",
            state: Terminated,
            ec2: Some(("terminated", OPTED_OUT)),
            record: mine(JoinStatus::Joined),
            leave_unrecorded: false,
            expect: (Action::Leave, Expect::Leave("RECORDED-NAME")),
        },
        Case {
            name: "terminated, joined, EC2 says running: refused",
            state: Terminated,
            ec2: Some(("running", NO_TAGS)),
            record: mine(JoinStatus::Joined),
            leave_unrecorded: false,
            expect: (
                Action::None,
                Expect::Reject(|r| matches!(r, RejectReason::StillAlive { .. })),
            ),
        },
        Case {
            name: "terminated, record in another Region: refused, nothing deleted",
            state: Terminated,
            ec2: None,
            record: Some(record(JoinStatus::Joined, ACCOUNT, "us-east-1", "earlier")),
            leave_unrecorded: false,
            expect: (
                Action::Leave,
                Expect::Reject(
                    |r| matches!(r, RejectReason::RecordElsewhere { record_region, .. } if record_region == "us-east-1"),
                ),
            ),
        },
        Case {
            name: "terminated, record in another account: refused",
            state: Terminated,
            ec2: None,
            record: Some(record(
                JoinStatus::Joined,
                "444455556666",
                REGION,
                "earlier",
            )),
            leave_unrecorded: false,
            expect: (
                Action::Leave,
                Expect::Reject(
                    |r| matches!(r, RejectReason::RecordElsewhere { record_account, .. } if record_account == "444455556666"),
                ),
            ),
        },
        Case {
            name: "terminated, no record, EC2 terminated: tombstone",
            state: Terminated,
            ec2: Some(("terminated", NO_TAGS)),
            record: None,
            leave_unrecorded: false,
            expect: (Action::Leave, Expect::Tombstone),
        },
        Case {
            name: "terminated, no record, gone: nothing recorded, nothing deleted",
            state: Terminated,
            ec2: None,
            record: None,
            leave_unrecorded: false,
            expect: (
                Action::Leave,
                Expect::Skip(|r| *r == SkipReason::UnknownTerminated),
            ),
        },
        Case {
            name: "terminated, no record, opted out",
            state: Terminated,
            ec2: Some(("terminated", OPTED_OUT)),
            record: None,
            leave_unrecorded: false,
            expect: (Action::None, Expect::Skip(|r| *r == SkipReason::OptedOut)),
        },
        Case {
            name: "leave unrecorded, EC2 terminated: leave the configured name",
            state: Terminated,
            ec2: Some(("terminated", NO_TAGS)),
            record: None,
            leave_unrecorded: true,
            expect: (Action::Leave, Expect::Leave(NAME)),
        },
        Case {
            name: "leave unrecorded, gone: not found alone deletes nothing",
            state: Terminated,
            ec2: None,
            record: None,
            leave_unrecorded: true,
            expect: (
                Action::Leave,
                Expect::Skip(|r| *r == SkipReason::UnknownTerminated),
            ),
        },
        Case {
            name: "leave unrecorded, EC2 says running: refused",
            state: Terminated,
            ec2: Some(("running", NO_TAGS)),
            record: None,
            leave_unrecorded: true,
            expect: (
                Action::None,
                Expect::Reject(|r| matches!(r, RejectReason::StillAlive { .. })),
            ),
        },
        Case {
            name: "terminated, already left",
            state: Terminated,
            ec2: Some(("terminated", NO_TAGS)),
            record: mine(JoinStatus::Left),
            leave_unrecorded: false,
            expect: (
                Action::Leave,
                Expect::Skip(|r| r.to_string().contains("already left")),
            ),
        },
        // Other states.
        Case {
            name: "stopping",
            state: EventState::Other("stopping".into()),
            ec2: None,
            record: None,
            leave_unrecorded: false,
            expect: (
                Action::None,
                Expect::Skip(|r| matches!(r, SkipReason::StateNotHandled { .. })),
            ),
        },
    ];
    for case in &cases {
        check(case);
    }
}

#[test]
fn reasons_say_what_happened() {
    let elsewhere = RejectReason::RecordElsewhere {
        record_account: ACCOUNT.into(),
        record_region: "us-east-1".into(),
    };
    assert!(
        elsewhere
            .to_string()
            .contains("account 111122223333 us-east-1")
    );
    let alive = RejectReason::StillAlive {
        state: InstanceState::Running,
    };
    assert!(
        alive
            .to_string()
            .contains("EC2 reports the instance running")
    );
}
