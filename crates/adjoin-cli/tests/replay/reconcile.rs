//! `adjoin reconcile` against the AWS API emulator: a terminated instance whose event was
//! lost gets its leave.

use std::process::Output;

use adjoin_testkit::samples::Seeded;
use adjoin_testkit::{HOME_ACCOUNT, Moto};
use serde_json::Value;

use super::{REGION, adjoin, assert_exit, lines, seeded};

fn reconcile(moto: &Moto, seeded: &Seeded, args: &[&str]) -> Output {
    adjoin(moto, &seeded.env, ["reconcile"].iter().chain(args))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_terminate_is_found_and_the_leave_sent() {
    let (moto, bed, seeded) = seeded("reconcile").await;
    // The seed records i-0a1b2c3d4e5f60005 joined, then terminates it: its terminated
    // event is never replayed here (lost).
    let gone = &seeded.ids["i-0a1b2c3d4e5f60005"];

    let dry = reconcile(&moto, &seeded, &["--dry-run"]);
    assert_exit(&dry, 0);
    let found: Value =
        serde_json::from_slice(dry.stdout.split(|b| *b == b'\n').next().unwrap_or_default())
            .expect("the findings, as JSON");
    let drifted = found["drifted"].as_array().expect("drifted");
    assert_eq!(drifted.len(), 1, "{found}");
    assert_eq!(drifted[0]["instance_id"], gone.as_str());
    assert_eq!(drifted[0]["fix"], "leave");
    assert_eq!(drifted[0]["ec2"], "terminated");
    let home = || async { bed.commands(HOME_ACCOUNT, REGION).await.expect("commands") };
    assert!(home().await.is_empty(), "a dry run sends nothing");

    let fixed = reconcile(&moto, &seeded, &[]);
    assert_exit(&fixed, 0);
    let outcomes: Vec<Value> = lines(&fixed)
        .into_iter()
        .filter(|l| l.get("outcome").is_some())
        .collect();
    assert_eq!(outcomes.len(), 1, "{outcomes:?}");
    assert_eq!(outcomes[0]["action"], "leave");
    assert_eq!(outcomes[0]["outcome"], "dispatched");
    let leaves = home().await;
    assert_eq!(leaves.len(), 1);
    assert!(
        leaves[0]
            .comment
            .starts_with(&format!("adjoin leave {gone}"))
    );
    // Again: the leave is verified; after that nothing has drifted.
    let again = reconcile(&moto, &seeded, &[]);
    assert!(
        lines(&again).iter().any(|l| l["outcome"] == "verified"),
        "{}",
        String::from_utf8_lossy(&again.stdout)
    );
    let after = reconcile(&moto, &seeded, &["--dry-run"]);
    let found: Value = serde_json::from_slice(
        after
            .stdout
            .split(|b| *b == b'\n')
            .next()
            .unwrap_or_default(),
    )
    .expect("JSON");
    assert_eq!(found["drifted"], serde_json::json!([]), "{found}");
}
