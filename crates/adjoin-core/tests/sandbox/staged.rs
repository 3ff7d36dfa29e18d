//! Staged joins: the tools host's stage script, and the instance's join with the
//! one-time password alone.

use adjoin_core::config::{AccountConfig, ConfigItem};
use adjoin_core::instance::Platform;
use adjoin_core::render::{Subject, placement, stage_command};
use adjoin_core::testing::{MEMBER, account, instance, region};

use crate::join::debian_sandbox;
use crate::leave::{OUR_DN, entry, tools_sandbox};
use crate::secrets::assert_absent;
use crate::{COMPUTER, PASSWORD, STAMP, join_with};

/// What the AWS CLI stand-in reads from a one-time password parameter.
pub(crate) const OTP: &str = "Otp1Only0nceAbcdefGhijkLmnop2345";

/// The sandbox's account in the default join mode (staged).
pub(crate) fn staged_config() -> AccountConfig {
    let item: ConfigItem = serde_json::from_value(serde_json::json!({
        "accountId": "111122223333", "adJoinUserName": "svc-join",
        "adJoinUserPwParam": "/adjoin/join-password", "dnsName": "example.test",
        "dnsIP1": "10.200.0.1", "ouPath": "OU=Servers,DC=example,DC=test",
        "computerGroups": ["gmsa-hosts", "ecs (hosts)*"]
    }))
    .expect("object");
    AccountConfig::from_item(&item, &account(MEMBER)).expect("valid")
}

fn stage() -> Vec<String> {
    let tools = instance("i-0fedcba9876543210", "running", Platform::Linux, &[]);
    let member = instance("i-0abcd1234ef567890", "running", Platform::Linux, &[]);
    let config = staged_config();
    let subject = Subject {
        region: &region(),
        instance_id: &member.id,
        computer_name: COMPUTER,
        event_id: "event-3",
    };
    stage_command(
        &tools,
        &config,
        &region(),
        &subject,
        &placement(&member, &config),
    )
    .commands
}

/// `unicodePwd` as LDIF carries it: the quoted password in UTF-16LE, base64.
fn unicode_pwd(password: &str) -> String {
    use base64::Engine as _;
    let bytes: Vec<u8> = format!("\"{password}\"")
        .encode_utf16()
        .flat_map(u16::to_le_bytes)
        .collect();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

#[test]
fn a_staged_join_reads_its_one_time_password_once_and_joins_as_the_computer() {
    let sandbox = debian_sandbox();
    let (code, out) = sandbox.run(&join_with(&staged_config(), "linux-admins"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("staged account, one-time password"), "{out}");
    let calls = sandbox.calls();
    assert!(
        calls.contains("aws ssm get-parameter --region eu-west-1 --name /adjoin/otp/i-0abcd1234ef567890 --with-decryption"),
        "{calls}"
    );
    assert!(
        calls.contains(
            "aws ssm delete-parameter --region eu-west-1 --name /adjoin/otp/i-0abcd1234ef567890"
        ),
        "{calls}"
    );
    let join = calls
        .lines()
        .find(|l| l.starts_with("adcli join"))
        .expect("adcli join");
    assert!(
        join.contains("--login-type=computer --stdin-password"),
        "{join}"
    );
    assert!(
        !join.contains("--login-user") && !join.contains("--domain-ou"),
        "{join}"
    );
    // The join user's password is never read; the one-time password goes on stdin only.
    assert!(!calls.contains("join-password"), "{calls}");
    assert_eq!(sandbox.read("stdin.log"), format!("{OTP}\n"));
    assert_absent(OTP, &out, &calls, "staged join");
    // Run again (SSM may deliver twice): already joined, nothing read.
    let before = sandbox.calls().len();
    let (code, out) = sandbox.run(&join_with(&staged_config(), "linux-admins"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already joined"), "{out}");
    assert!(!sandbox.calls()[before..].contains("get-parameter"));
}

#[test]
fn a_refused_or_missing_one_time_password_has_its_own_exit_code_and_is_never_printed() {
    for (flags, expected, says) in [
        (
            &["join-exit=3", "echo-password"][..],
            14,
            "does not open the staged account",
        ),
        (
            &["join-exit=4", "echo-password"][..],
            13,
            "cannot reach domain controller",
        ),
        (
            &["otp=not a password; $(touch CANARY)"][..],
            12,
            "does not hold a one-time password",
        ),
    ] {
        let sandbox = debian_sandbox();
        for flag in flags {
            match flag.split_once('=') {
                Some((name, value)) => sandbox.flag(name, value),
                None => sandbox.flag(flag, ""),
            }
        }
        let (code, out) = sandbox.run(&join_with(&staged_config(), "g"));
        assert_eq!(code, expected, "{flags:?}: {out}");
        assert!(out.contains(says), "{flags:?}: {out}");
        assert_absent(OTP, &out, &sandbox.calls(), says);
        assert!(!sandbox.path("CANARY").exists());
    }
}

#[test]
fn stage_creates_the_stamped_account_with_the_password_inside_the_ldap_request_only() {
    let sandbox = tools_sandbox();
    sandbox.flag(
        "group-entry",
        "dn: CN=gmsa-hosts,CN=Users,DC=example,DC=test\n",
    );
    let (code, out) = sandbox.run(&stage());
    assert_eq!(code, 0, "{out}");
    let calls = sandbox.calls();
    // The tools host's copy: read, then deleted.
    assert!(
        calls.contains("aws ssm get-parameter --region eu-west-1 --name /adjoin/stage/111122223333/eu-west-1/i-0abcd1234ef567890"),
        "{calls}"
    );
    assert!(calls.contains("aws ssm delete-parameter"), "{calls}");
    // One add: the object, its stamp and its password together.
    let ldif = sandbox.read("ldif.log");
    assert!(
        ldif.starts_with(&format!(
            "dn: {OUR_DN}\nobjectClass: computer\nsAMAccountName: {COMPUTER}$\nuserAccountControl: 4096\n"
        )),
        "{ldif}"
    );
    assert!(ldif.contains(&format!("description: {STAMP}\n")), "{ldif}");
    assert!(
        ldif.contains(&format!("unicodePwd:: {}\n", unicode_pwd(OTP))),
        "{ldif}"
    );
    assert!(
        calls.lines().any(|l| l.starts_with("ldapadd -Q -Y GSSAPI")),
        "{calls}"
    );
    // Groups: found by name (escaped for the filter), then the member added.
    assert!(
        calls.contains("(&(objectClass=group)(sAMAccountName=ecs \\28hosts\\29\\2a))"),
        "{calls}"
    );
    assert!(
        ldif.contains(&format!(
            "dn: CN=gmsa-hosts,CN=Users,DC=example,DC=test\nchangetype: modify\nadd: member\nmember: {OUR_DN}\n"
        )),
        "{ldif}"
    );
    // Never in an argument or the output; the join user's password went to kinit only.
    assert_absent(OTP, &out, &calls, "stage");
    assert!(!calls.contains(PASSWORD) && !out.contains(PASSWORD));
    assert!(out.contains("staged computer account"), "{out}");
}

#[test]
fn stage_gives_our_existing_account_a_new_password_and_leaves_anyone_elses_alone() {
    let sandbox = tools_sandbox();
    sandbox.flag("group-entry", "dn: CN=g,DC=example,DC=test\n");
    sandbox.flag("ldap-entry", &entry(OUR_DN, &[STAMP]));
    let (code, out) = sandbox.run(&stage());
    assert_eq!(code, 0, "{out}");
    let ldif = sandbox.read("ldif.log");
    assert!(
        ldif.starts_with(&format!(
            "dn: {OUR_DN}\nchangetype: modify\nreplace: description\ndescription: {STAMP}\n-\nreplace: unicodePwd\nunicodePwd:: {}\n",
            unicode_pwd(OTP)
        )),
        "{ldif}"
    );
    assert!(!sandbox.calls().contains("ldapadd"));

    for (dn, descriptions) in [
        (OUR_DN, &["made by mallory"][..]),
        (
            "CN=I0ABCD1234EF567,CN=Computers,DC=example,DC=test",
            &[STAMP][..],
        ),
    ] {
        let sandbox = tools_sandbox();
        sandbox.flag("ldap-entry", &entry(dn, descriptions));
        let (code, out) = sandbox.run(&stage());
        assert_eq!(code, 19, "{out}");
        assert!(out.contains("not taken over"), "{out}");
        assert!(sandbox.read("ldif.log").is_empty(), "nothing written");
    }
}

#[test]
fn a_failed_ldap_add_is_exit_14_and_never_prints_the_password() {
    let sandbox = tools_sandbox();
    sandbox.flag("ldap-add-exit", "50");
    let (code, out) = sandbox.run(&stage());
    assert_eq!(code, 14, "{out}");
    assert!(out.contains("cannot stage computer account"), "{out}");
    assert_absent(OTP, &out, &sandbox.calls(), "ldapadd refused");
}
