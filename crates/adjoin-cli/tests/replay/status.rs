//! `adjoin status` against the AWS API emulator: the ledger after a replay.

use std::process::Output;

use adjoin_core::ledger::{JoinRecord, JoinStatus};
use adjoin_core::ports::Ledger as _;
use adjoin_testkit::Moto;
use adjoin_testkit::samples::{LEDGER_TABLE, Seeded};
use serde_json::Value;

use super::{MEMBER, adjoin, assert_exit, lines, replay, seeded};

fn status(moto: &Moto, seeded: &Seeded, args: &[&str]) -> Output {
    adjoin(moto, &seeded.env, ["status"].iter().chain(args))
}

#[tokio::test(flavor = "multi_thread")]
async fn status_shows_the_ledger_and_the_commands_state_in_ssm() {
    let (moto, bed, seeded) = seeded("status").await;
    let linux = seeded
        .files
        .iter()
        .find(|f| f.to_string_lossy().contains("01-linux"))
        .expect("file");
    let run = replay(&moto, &seeded, &[], std::slice::from_ref(linux));
    assert_eq!(run.status.code(), Some(0));
    let linux_id = &seeded.ids["i-0a1b2c3d4e5f60001"];
    // A record last updated long ago, in another account.
    let old = JoinRecord {
        status: JoinStatus::Failed,
        computer_name: "IOLD".into(),
        attempts: 3,
        exit_code: Some(13),
        output: Some("adjoin: no domain controller answers".into()),
        created_at: "2020-01-01T00:00:00Z".into(),
        updated_at: "2020-01-01T00:10:00Z".into(),
        version: 4,
        ..adjoin_core::testing::record("i-0eeeeeeeeeeeeeee0", "222233334444")
    };
    assert!(
        bed.ledger(LEDGER_TABLE)
            .put_if(&old, None)
            .await
            .expect("written")
    );

    let all = status(&moto, &seeded, &["--json"]);
    assert_exit(&all, 0);
    let all = lines(&all);
    // The join replayed, the seeded joined record of the terminated instance, the old one.
    assert_eq!(all.len(), 3, "{all:?}");
    let joining = all
        .iter()
        .find(|r| r["instance_id"] == linux_id.as_str())
        .expect("row");
    // Staged: the stage command went to the tools host (the join follows).
    assert_eq!(joining["status"], "staging");
    assert_eq!(joining["account"], MEMBER);
    assert!(joining["command_id"].is_string());
    assert_eq!(
        joining["command_status"], "Success",
        "moto reports sent commands done"
    );
    let failed = all
        .iter()
        .find(|r| r["instance_id"] == "i-0eeeeeeeeeeeeeee0")
        .expect("row");
    assert_eq!(failed["output"], "adjoin: no domain controller answers");
    assert_eq!(failed["command_status"], Value::Null);
    assert_eq!(
        all.last().map(|r| &r["instance_id"]),
        Some(&Value::from("i-0eeeeeeeeeeeeeee0")),
        "newest first"
    );

    // Filters: the Scan's, by time and account, and one instance by key.
    let recent = lines(&status(&moto, &seeded, &["--json", "--since", "1h"]));
    assert_eq!(recent.len(), 2);
    assert!(recent.iter().all(|r| r["account"] == MEMBER));
    let other = lines(&status(
        &moto,
        &seeded,
        &["--json", "--account", "222233334444"],
    ));
    assert_eq!(other.len(), 1);
    let one = lines(&status(&moto, &seeded, &["--json", "--instance", linux_id]));
    assert_eq!(one.len(), 1);
    assert_eq!(one[0]["instance_id"], linux_id.as_str());

    // The table, and the exit statuses.
    let table = status(&moto, &seeded, &[]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("| instance") && text.contains(linux_id.as_str()),
        "{text}"
    );
    assert_eq!(
        status(&moto, &seeded, &["--instance", "i-0fffffffffffffff0"])
            .status
            .code(),
        Some(1)
    );
    assert_eq!(
        status(&moto, &seeded, &["--since", "soon"]).status.code(),
        Some(2)
    );
}
