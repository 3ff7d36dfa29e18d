//! `adjoin join` and `adjoin leave`: one instance through the service's own path, as its
//! EC2 state-change event would take it — for an instance whose event was lost, an
//! opted-out instance an operator wants joined, migrations and repairs. The same checks
//! apply (config item, role, EC2, ledger, allow-lists); a leave still needs EC2 to say
//! the instance is terminated (or no longer know a recorded one).

use std::process::ExitCode;
use std::time::SystemTime;

use adjoin_aws::{EnvSettings, build_worker, load_sdk_config};
use adjoin_core::event::{DETAIL_TYPE, SOURCE};
use adjoin_core::ids::{AccountId, InstanceId, Region};
use adjoin_core::ledger::format_time;
use adjoin_core::worker::Message;

use crate::replay::{EXIT_USAGE, handle_and_print};

#[derive(clap::Args)]
pub struct Target {
    #[command(flatten)]
    which: crate::InstanceArgs,
    /// Do every read, send nothing; show the command that would be sent.
    #[arg(long)]
    dry_run: bool,
}

#[derive(clap::Args)]
pub struct JoinArgs {
    #[command(flatten)]
    target: Target,
    /// Join the instance even though it is tagged autoadjoin=false.
    #[arg(long)]
    ignore_opt_out: bool,
}

/// The event of `state` for the target, and its message. The message id is fixed per
/// instance and state: running the same command again is the return of that message,
/// which reads the result of the command it sent.
pub(crate) fn message(
    state: &str,
    account: &AccountId,
    region: &Region,
    instance: &InstanceId,
) -> Message {
    let event = serde_json::json!({
        "version": "0",
        "id": format!("adjoin-{state}-{instance}"),
        "detail-type": DETAIL_TYPE,
        "source": SOURCE,
        "account": account,
        "time": format_time(SystemTime::now()),
        "region": region,
        "resources": [format!("arn:aws:ec2:{region}:{account}:instance/{instance}")],
        "detail": {"instance-id": instance, "state": state},
    });
    Message {
        message_id: adjoin_core::admin::reconcile::message_id(state, instance.as_str()),
        body: event.to_string(),
        receipt_handle: None,
        receive_count: 1,
        source_queue_arn: None,
    }
}

async fn run(command: &str, state: &str, target: Target, ignore_opt_out: bool) -> ExitCode {
    let usage = |e: String| {
        eprintln!("adjoin {command}: {e}");
        ExitCode::from(EXIT_USAGE)
    };
    let env = match EnvSettings::from_env() {
        // The operator reads the outcome here: a rejection is not parked on the DLQ.
        Ok(env) => EnvSettings {
            dlq_url: None,
            ..env
        },
        Err(e) => return usage(e.to_string()),
    };
    let sdk = load_sdk_config().await;
    let (account, instance) = match (
        AccountId::parse(&target.which.account),
        InstanceId::parse(&target.which.instance),
    ) {
        (Ok(a), Ok(i)) => (a, i),
        (Err(e), _) | (_, Err(e)) => return usage(e),
    };
    let region = match crate::home_region(&sdk, target.which.region.as_deref()) {
        Ok(r) => r,
        Err(e) => return usage(e),
    };
    let worker = build_worker(&sdk, &env, target.dry_run)
        .with(|settings| settings.ignore_opt_out = ignore_opt_out);
    let batch = vec![message(state, &account, &region, &instance)];
    handle_and_print(&worker, vec![batch]).await
}

pub async fn join(args: JoinArgs) -> ExitCode {
    run("join", "running", args.target, args.ignore_opt_out).await
}

pub async fn leave(target: Target) -> ExitCode {
    run("leave", "terminated", target, false).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_event_is_one_the_worker_reads_as_ec2_s() {
        let account = AccountId::parse("111122223333").expect("valid");
        let region = Region::parse("eu-west-1").expect("valid");
        let instance = InstanceId::parse("i-0aaaaaaaaaaaaaaa1").expect("valid");
        let m = message("running", &account, &region, &instance);
        let event = adjoin_core::event::parse_body(&m.body).expect("an EC2 event");
        assert_eq!(event.instance_id, instance);
        assert_eq!(event.region, region);
        assert_eq!(m.message_id, "adjoin-running-i-0aaaaaaaaaaaaaaa1");
    }
}
