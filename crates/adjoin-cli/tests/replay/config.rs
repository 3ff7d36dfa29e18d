//! `adjoin config` as operators run it, against the AWS API emulator.

use std::process::Output;

use adjoin_testkit::samples::{CONFIG_TABLE, PASSWORD_PARAMETER};
use adjoin_testkit::{HOME_ACCOUNT, Moto};
use serde_json::Value;

use super::{MEMBER, PASSWORD, REGION, adjoin, private_bed, tempdir};

fn config(moto: &Moto, args: &[&str]) -> Output {
    let env = [("ADJOIN_CONFIG_TABLE", CONFIG_TABLE.to_owned())];
    adjoin(moto, &env, ["config"].iter().chain(args))
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

/// A private emulator with an empty config table.
async fn with_config_table() -> (Moto, adjoin_testkit::Bed) {
    let (moto, bed) = private_bed().await;
    bed.create_table(CONFIG_TABLE, "accountId")
        .await
        .expect("table");
    (moto, bed)
}

#[tokio::test(flavor = "multi_thread")]
async fn config_items_are_written_checked_listed_validated_and_deleted() {
    let (moto, bed) = with_config_table().await;
    let role = format!("arn:aws:iam::{MEMBER}:role/adjoin-member");

    // From flags: written with the blog's attribute types.
    let put = config(
        &moto,
        &[
            "put",
            "--account-id",
            MEMBER,
            "--dns-name",
            "corp.example.com",
            "--dns-ip1",
            "10.0.0.10",
            "--dns-ip2",
            "10.0.1.10",
            "--join-user",
            "svc-adjoin",
            "--password-param",
            PASSWORD_PARAMETER,
            "--role-arn",
            &role,
            "--external-id",
            "ext-1",
            "--computer-group",
            "gmsa-hosts",
            "--computer-group",
            "web",
            "--install-rds-session-host",
            "true",
        ],
    );
    assert_eq!(put.status.code(), Some(0), "{}", text(&put.stderr));
    let get = config(&moto, &["get", MEMBER]);
    assert_eq!(get.status.code(), Some(0), "{}", text(&get.stderr));
    let item: Value = serde_json::from_slice(&get.stdout).expect("JSON");
    assert_eq!(item["dnsName"], "corp.example.com");
    assert_eq!(
        item["computerGroups"],
        serde_json::json!(["gmsa-hosts", "web"])
    );
    assert_eq!(item["installRdsSessionHost"], true);
    assert_eq!(item["assumeRoleARN"], role.as_str());

    // An invalid item is refused with every problem, and nothing is written.
    let bad = config(
        &moto,
        &[
            "put",
            "--account-id",
            "444455556666",
            "--dns-name",
            "nodots",
            "--dns-ip1",
            "10.0.0.300",
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let refused = text(&bad.stderr);
    for problem in [
        "dnsName \"nodots\"",
        "dnsIP1",
        "adJoinUserName is missing",
        "neither adJoinUserPwParam",
    ] {
        assert!(refused.contains(problem), "{problem} not in {refused}");
    }
    assert_eq!(
        config(&moto, &["get", "444455556666"]).status.code(),
        Some(1)
    );

    // From a TOML file, one flag over it.
    let dir = tempdir("config");
    let file = dir.join("member.toml");
    std::fs::write(
        &file,
        "accountId = \"222233334444\"\ndnsName = \"corp.example.com\"\ndnsIP1 = \"10.0.0.10\"\n\
         adJoinUserName = \"svc-adjoin\"\nadJoinUserPwParam = \"/adjoin/join-password\"\n\
         assumeRoleARN = \"arn:aws:iam::222233334444:role/adjoin-member\"\ncomputerGroups = [\"a\"]\n\
         joinMode = \"sharedPassword\"\n",
    )
    .expect("file");
    let put = config(
        &moto,
        &[
            "put",
            "--file",
            file.to_str().expect("path"),
            "--ou-path",
            "OU=Servers,DC=corp,DC=example,DC=com",
        ],
    );
    assert_eq!(put.status.code(), Some(0), "{}", text(&put.stderr));
    let item: Value =
        serde_json::from_slice(&config(&moto, &["get", "222233334444"]).stdout).expect("JSON");
    assert_eq!(item["ouPath"], "OU=Servers,DC=corp,DC=example,DC=com");
    assert_eq!(item["computerGroups"], serde_json::json!(["a"]));

    // The list: a table when asked plainly, JSON lines with --json.
    let list = config(&moto, &["list"]);
    assert_eq!(list.status.code(), Some(0));
    let table = text(&list.stdout);
    assert!(
        table.contains("| account") && table.contains("dnsName"),
        "{table}"
    );
    assert!(
        table.contains(MEMBER) && table.contains("222233334444") && table.contains(&role),
        "{table}"
    );
    let json = config(&moto, &["list", "--json"]);
    let accounts: Vec<String> = text(&json.stdout)
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l).expect("JSON line")["accountId"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect();
    assert_eq!(accounts, ["111122223333", "222233334444"]);

    // Validate: the role is assumed and the parameter found, its value never shown. A
    // staged account (the default) needs it where the AD tools host reads it: the
    // service's own account.
    let staged = config(&moto, &["validate", MEMBER]);
    assert_eq!(staged.status.code(), Some(1));
    assert!(
        text(&staged.stdout).contains("where it is read by the AD tools host"),
        "{}",
        text(&staged.stdout)
    );
    bed.put_secure_parameter(HOME_ACCOUNT, REGION, PASSWORD_PARAMETER, PASSWORD)
        .await
        .expect("parameter");
    let ok = config(&moto, &["validate", MEMBER]);
    let report = text(&ok.stdout);
    assert_eq!(ok.status.code(), Some(0), "{report}");
    assert_eq!(
        report.lines().filter(|l| l.starts_with('✓')).count(),
        8,
        "{report}"
    );
    assert!(report.contains("its value was not read"), "{report}");
    assert!(!format!("{report}{}", text(&ok.stderr)).contains(PASSWORD));
    // The other account joins with the shared password: its instances read it there,
    // and it has none.
    let missing = config(&moto, &["validate", "222233334444"]);
    let report = text(&missing.stdout);
    assert_eq!(missing.status.code(), Some(1), "{report}");
    assert!(
        report.contains("✗ password reference: no parameter /adjoin/join-password in 222233334444"),
        "{report}"
    );
    assert!(report.contains("fix: create it"), "{report}");
    let absent = config(&moto, &["validate", "999999999999"]);
    assert_eq!(absent.status.code(), Some(1));
    assert!(text(&absent.stdout).starts_with("✗ config item: no item for 999999999999"));

    // Delete: once, then there is nothing to delete.
    for (args, code) in [
        (["delete", "222233334444"], 0),
        (["delete", "222233334444"], 1),
        (["get", "222233334444"], 1),
        (["get", "not-an-account"], 2),
    ] {
        assert_eq!(config(&moto, &args).status.code(), Some(code), "{args:?}");
    }
}

/// The original walkthrough's item, as users copy it (DynamoDB-typed JSON, attribute
/// names with a leading space, values to fill in): refused with what to change; filled
/// in, written with clean attribute names and valid.
#[tokio::test(flavor = "multi_thread")]
async fn the_walkthrough_item_as_users_copy_it_is_refused_with_fixes_then_works_filled_in() {
    let (moto, _bed) = with_config_table().await;
    let sample = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/samples/blog-itemData.json"
    );
    let refused = config(&moto, &["put", "--file", sample]);
    assert_eq!(refused.status.code(), Some(1), "{}", text(&refused.stderr));
    let says = text(&refused.stderr);
    for expected in [
        "✗ dnsName is missing",
        "fix: set dnsName to the directory's DNS name",
        "✗ dnsIP1 is missing",
        "belongs to account 111122223333, not to account 123412341234",
        "fix: use the member stack's role in 123412341234",
    ] {
        assert!(says.contains(expected), "{expected:?} not in {says}");
    }
    assert!(!says.contains("adJoinUserName is missing"), "{says}");

    // Filled in as the walkthrough asks (the typed JSON kept), the item is written.
    let dir = tempdir("walkthrough");
    let text_of_sample = std::fs::read_to_string(sample).expect("sample");
    let filled = text_of_sample
        .replace(
            r#""dnsName": { "S": "" }"#,
            r#""dnsName": { "S": "corp.example.com" }"#,
        )
        .replace(
            r#""dnsIP1": { "S": "" }"#,
            r#""dnsIP1": { "S": "10.0.0.10" }"#,
        )
        .replace(
            "111122223333:role/adJoinLambdaRole",
            "123412341234:role/adjoin-member",
        );
    let path = dir.join("itemData.json");
    std::fs::write(&path, filled).expect("written");
    let put = config(&moto, &["put", "--file", path.to_str().expect("utf-8")]);
    assert_eq!(put.status.code(), Some(0), "{}", text(&put.stderr));
    let get = config(&moto, &["get", "123412341234"]);
    let item: Value = serde_json::from_slice(&get.stdout).expect("JSON");
    assert_eq!(item["adJoinUserName"], "ADJoinUser", "clean names: {item}");
    assert!(item.get(" adJoinUserName").is_none(), "{item}");
}
