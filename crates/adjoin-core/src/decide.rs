//! What to do about one event: a pure function of the event and what EC2 reports.

use std::fmt;

use crate::event::{EventState, InstanceEvent};
use crate::instance::{Instance, Platform};

/// The decision for one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Join the instance: run the platform's join script on it.
    Join { platform: Platform },
    /// Delete the instance's computer object from the AD tools host.
    Leave,
    /// Nothing to do.
    Skip(SkipReason),
    /// The event contradicts what EC2 reports: it can never be acted on.
    Refuse(String),
}

/// Why nothing is done.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// Tagged `autoadjoin=false`.
    OptedOut,
    /// The instance is no longer running when the (delayed) running event is handled.
    NotRunning { state: String },
    /// DescribeInstances does not know the instance (terminated long ago, or never existed).
    Gone,
    /// A state other than running/terminated.
    StateNotHandled { state: String },
}

impl fmt::Display for SkipReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SkipReason::OptedOut => write!(f, "instance is tagged autoadjoin=false"),
            SkipReason::NotRunning { state } => {
                write!(f, "instance is {state} now, no longer running: not joined")
            }
            SkipReason::Gone => write!(f, "instance no longer exists: not joined"),
            SkipReason::StateNotHandled { state } => {
                write!(
                    f,
                    "state {state:?} needs no action (only running and terminated do)"
                )
            }
        }
    }
}

/// Decides what an event asks for, given the instance as EC2 describes it now
/// (`None`: EC2 does not know it).
pub fn decide(event: &InstanceEvent, instance: Option<&Instance>) -> Decision {
    match &event.state {
        EventState::Running => match instance {
            None => Decision::Skip(SkipReason::Gone),
            Some(i) if i.opted_out() => Decision::Skip(SkipReason::OptedOut),
            Some(i) if i.state != "running" => Decision::Skip(SkipReason::NotRunning {
                state: i.state.clone(),
            }),
            Some(i) => Decision::Join {
                platform: i.platform,
            },
        },
        EventState::Terminated => match instance {
            // An opted-out instance was never joined: there is nothing to delete.
            Some(i) if i.opted_out() => Decision::Skip(SkipReason::OptedOut),
            // A terminated event for an instance EC2 still reports alive is forged or
            // misrouted: deleting its computer object would cut a live machine off.
            Some(i) if !matches!(i.state.as_str(), "terminated" | "shutting-down") => {
                Decision::Refuse(format!(
                    "terminated event, but EC2 reports the instance {}: its computer object is kept",
                    i.state
                ))
            }
            // EC2 forgets terminated instances after about an hour; the computer
            // object may still exist, and its name is derived from the id alone.
            _ => Decision::Leave,
        },
        EventState::Other(state) => Decision::Skip(SkipReason::StateNotHandled {
            state: state.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{AccountId, InstanceId, Region};

    fn event(state: EventState) -> InstanceEvent {
        InstanceEvent {
            event_id: "e".into(),
            account: AccountId::parse("111122223333").expect("valid"),
            region: Region::parse("eu-west-1").expect("valid"),
            instance_id: InstanceId::parse("i-0abcd1234ef567890").expect("valid"),
            state,
            time: String::new(),
            via_sns: false,
        }
    }

    fn instance(state: &str, platform: Platform, tags: &[(&str, &str)]) -> Instance {
        crate::instance::test_instance("i-0abcd1234ef567890", state, platform, tags)
    }

    #[test]
    fn running_linux_instance_is_joined_with_the_shell_script() {
        let d = decide(
            &event(EventState::Running),
            Some(&instance("running", Platform::Linux, &[])),
        );
        assert_eq!(
            d,
            Decision::Join {
                platform: Platform::Linux
            }
        );
    }

    #[test]
    fn running_windows_instance_is_joined_with_powershell() {
        let d = decide(
            &event(EventState::Running),
            Some(&instance("running", Platform::Windows, &[])),
        );
        assert_eq!(
            d,
            Decision::Join {
                platform: Platform::Windows
            }
        );
    }

    #[test]
    fn opted_out_instance_is_left_alone_on_start_and_on_terminate() {
        for value in ["false", "FALSE", " False "] {
            let i = instance("running", Platform::Linux, &[("autoadjoin", value)]);
            assert_eq!(
                decide(&event(EventState::Running), Some(&i)),
                Decision::Skip(SkipReason::OptedOut)
            );
            assert_eq!(
                decide(&event(EventState::Terminated), Some(&i)),
                Decision::Skip(SkipReason::OptedOut)
            );
        }
        let i = instance("running", Platform::Linux, &[("autoadjoin", "true")]);
        assert!(matches!(
            decide(&event(EventState::Running), Some(&i)),
            Decision::Join { .. }
        ));
    }

    #[test]
    fn instance_stopped_before_the_delayed_event_is_skipped() {
        let i = instance("stopped", Platform::Linux, &[]);
        let d = decide(&event(EventState::Running), Some(&i));
        assert_eq!(
            d,
            Decision::Skip(SkipReason::NotRunning {
                state: "stopped".into()
            })
        );
        assert!(d != Decision::Leave);
    }

    #[test]
    fn instance_gone_before_the_delayed_event_is_skipped() {
        assert_eq!(
            decide(&event(EventState::Running), None),
            Decision::Skip(SkipReason::Gone)
        );
    }

    #[test]
    fn terminated_instance_leaves_even_when_ec2_forgot_it() {
        assert_eq!(
            decide(&event(EventState::Terminated), None),
            Decision::Leave
        );
        let i = instance("terminated", Platform::Windows, &[]);
        assert_eq!(
            decide(&event(EventState::Terminated), Some(&i)),
            Decision::Leave
        );
        let i = instance("shutting-down", Platform::Linux, &[]);
        assert_eq!(
            decide(&event(EventState::Terminated), Some(&i)),
            Decision::Leave
        );
    }

    #[test]
    fn terminated_event_for_a_live_instance_is_refused() {
        for state in ["running", "stopped", "pending"] {
            let i = instance(state, Platform::Linux, &[]);
            assert!(
                matches!(
                    decide(&event(EventState::Terminated), Some(&i)),
                    Decision::Refuse(_)
                ),
                "{state}"
            );
        }
    }

    #[test]
    fn other_states_need_nothing() {
        let d = decide(&event(EventState::Other("stopping".into())), None);
        assert!(matches!(
            d,
            Decision::Skip(SkipReason::StateNotHandled { .. })
        ));
    }
}
