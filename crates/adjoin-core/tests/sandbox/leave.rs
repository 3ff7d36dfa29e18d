//! Leaves on the tools host, and clones of a joined image.

use std::fs;

use crate::join::debian_sandbox;
use crate::sandbox::Sandbox;
use crate::{PASSWORD, STAMP, config, join, leave, leave_with};

/// The tools host's sandbox: adcli, kinit, ldap-utils and the AWS CLI present.
pub(crate) fn tools_sandbox() -> Sandbox {
    let sandbox = debian_sandbox();
    for tool in ["adcli", "aws", "kinit", "nsupdate"] {
        sandbox.preinstall(tool);
    }
    sandbox
}

pub(crate) const OUR_DN: &str = "CN=I0ABCD1234EF567,OU=Servers,DC=example,DC=test";

pub(crate) fn entry(dn: &str, descriptions: &[&str]) -> String {
    let mut ldif = format!("dn: {dn}\n");
    for d in descriptions {
        ldif.push_str(&format!("description: {d}\n"));
    }
    ldif
}

#[test]
pub(crate) fn leave_deletes_its_own_object_with_kerberos_and_tolerates_its_absence() {
    let sandbox = tools_sandbox();
    sandbox.flag("ldap-entry", &entry(OUR_DN, &[STAMP]));
    let (code, out) = sandbox.run(&leave());
    assert_eq!(code, 0, "{out}");
    let calls = sandbox.calls();
    assert!(
        calls.contains("ldapsearch -LLL -o ldif-wrap=no -Q -Y GSSAPI -H ldap://dc1.example.test -b DC=example,DC=test (&(objectClass=computer)(sAMAccountName=I0ABCD1234EF567$)) dn description"),
        "{calls}"
    );
    assert!(
        calls.contains(&format!(
            "ldapdelete -Q -Y GSSAPI -H ldap://dc1.example.test {OUR_DN}\n"
        )),
        "{calls}"
    );
    assert!(calls.contains("kinit svc-join@EXAMPLE.TEST"), "{calls}");
    // The password reaches kinit on stdin only, into a private cache.
    assert_eq!(sandbox.read("stdin.log"), format!("{PASSWORD}\n"));
    assert!(!calls.contains(PASSWORD) && !out.contains(PASSWORD));
    assert!(
        out.contains("deleted computer I0ABCD1234EF567 (CN=I0ABCD1234EF567,OU=Servers,DC=example,DC=test) of i-0abcd1234ef567890"),
        "{out}"
    );
    // The instance's DNS record goes too, as the join user (GSS-TSIG) at the DC.
    assert!(calls.contains("nsupdate -g"), "{calls}");
    assert_eq!(
        sandbox.read("nsupdate.log"),
        "server dc1.example.test\nzone example.test\nupdate delete i0abcd1234ef567.example.test. A\nsend\n"
    );
    // The DC's name is pinned in the script's own block of /etc/hosts, once.
    assert_eq!(sandbox.run(&leave()).0, 0);
    assert_eq!(
        sandbox.read("etc/hosts"),
        "127.0.0.1 localhost\n# adjoin-leave: begin example.test\n10.200.0.1 dc1.example.test\n# adjoin-leave: end example.test\n"
    );

    fs::remove_file(sandbox.path("ldap-entry")).expect("entry");
    fs::remove_file(sandbox.path("calls.log")).expect("log");
    let (code, out) = sandbox.run(&leave());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to delete"), "{out}");
    assert!(!sandbox.calls().contains("ldapdelete"));
}

/// The object's DN as AD spells it may differ from the configured OU in case and blanks.
#[test]
pub(crate) fn leave_compares_the_ou_without_case_or_blanks() {
    let sandbox = tools_sandbox();
    let dn = "CN=I0ABCD1234EF567, ou=SERVERS ,DC=Example, DC=test";
    sandbox.flag("ldap-entry", &entry(dn, &[STAMP]));
    let (code, out) = sandbox.run(&leave());
    assert_eq!(code, 0, "{out}");
    assert!(sandbox.calls().contains(&format!(
        "ldapdelete -Q -Y GSSAPI -H ldap://dc1.example.test {dn}\n"
    )));
}

#[test]
pub(crate) fn leave_deletes_child_objects_with_the_tree_delete_control() {
    let sandbox = tools_sandbox();
    sandbox.flag("ldap-entry", &entry(OUR_DN, &[STAMP]));
    sandbox.flag("has-children", "");
    let (code, out) = sandbox.run(&leave());
    assert_eq!(code, 0, "{out}");
    let calls = sandbox.calls();
    assert!(
        calls.contains(&format!(
            "ldapdelete -Q -Y GSSAPI -H ldap://dc1.example.test {OUR_DN}\n\
             ldapdelete -Q -Y GSSAPI -H ldap://dc1.example.test -e !1.2.840.113556.1.4.805 {OUR_DN}\n"
        )),
        "{calls}"
    );
    assert!(out.contains("deleted the child objects"), "{out}");
}

#[test]
pub(crate) fn leave_refuses_a_same_named_object_that_is_not_ours() {
    let other_stamp = "adjoin 111122223333 eu-west-1 i-0ffffffffffffffff";
    for (case, ldif, says) in [
        (
            "another instance's",
            entry(OUR_DN, &[other_stamp]),
            "its description is not",
        ),
        ("no description", entry(OUR_DN, &[]), "found no description"),
        (
            "a longer description",
            entry(OUR_DN, &[&format!("{STAMP} x")]),
            "its description is not",
        ),
        (
            "base64 description",
            format!("dn: {OUR_DN}\ndescription:: IGFkam9pbg==\n"),
            "description:: IGFkam9pbg==",
        ),
        (
            "outside the OU",
            entry(
                "CN=I0ABCD1234EF567,OU=Workstations,DC=example,DC=test",
                &[STAMP],
            ),
            "it is outside OU=Servers,DC=example,DC=test",
        ),
        (
            "in an OU at the root whose name holds an escaped comma and ours",
            entry(
                "CN=I0ABCD1234EF567,OU=x\\,OU=Servers,DC=example,DC=test",
                &[STAMP],
            ),
            "it is outside",
        ),
        (
            "in an OU whose name ends like ours",
            entry(
                "CN=I0ABCD1234EF567,OU=Old,OU=XServers,DC=example,DC=test",
                &[STAMP],
            ),
            "it is outside",
        ),
    ] {
        let sandbox = tools_sandbox();
        sandbox.flag("ldap-entry", &ldif);
        let (code, out) = sandbox.run(&leave());
        assert_eq!(code, 15, "{case}: {out}");
        assert!(
            out.contains("not ours: computer I0ABCD1234EF567 was not deleted"),
            "{case}: {out}"
        );
        assert!(out.contains(says), "{case}: {out}");
        assert!(out.contains("left in place"), "{case}: {out}");
        assert!(!sandbox.calls().contains("ldapdelete"), "{case}: deleted");
    }
    // Without an OU, an object anywhere in the domain is ours if it carries the stamp.
    let mut no_ou = config();
    no_ou.ou_path = None;
    let sandbox = tools_sandbox();
    sandbox.flag(
        "ldap-entry",
        &entry(
            "CN=I0ABCD1234EF567,CN=Computers,DC=example,DC=test",
            &[STAMP],
        ),
    );
    let (code, out) = sandbox.run(&leave_with(&no_ou));
    assert_eq!(code, 0, "{out}");
    assert!(sandbox.calls().contains("ldapdelete"));
}

/// An instance made from an image of a joined machine: testjoin passes with the other
/// machine's keytab. The instance joins as itself, the other keytab set aside.
#[test]
pub(crate) fn a_cloned_keytab_of_another_computer_is_not_already_joined() {
    let sandbox = debian_sandbox();
    sandbox.flag("joined", "");
    sandbox.flag(
        "etc/krb5.keytab",
        "IORIGINAL0000$@EXAMPLE.TEST\nhost/IORIGINAL0000@EXAMPLE.TEST\n",
    );
    let (code, out) = sandbox.run(&join("linux-admins"));
    assert_eq!(code, 0, "{out}");
    let calls = sandbox.calls();
    assert!(
        calls.contains("adcli join") && calls.contains("--computer-name=I0ABCD1234EF567"),
        "{calls}"
    );
    assert!(!out.contains("already joined"), "{out}");
    assert!(out.contains("moved to"), "{out}");
    assert_eq!(
        sandbox.read("etc/krb5.keytab"),
        "I0ABCD1234EF567$@EXAMPLE.TEST\n"
    );
    assert!(
        sandbox
            .read("etc/krb5.keytab.adjoin-replaced")
            .contains("IORIGINAL0000$@EXAMPLE.TEST")
    );

    // Now joined as itself: the next run is "already joined" (the klist check passes).
    fs::remove_file(sandbox.path("calls.log")).expect("log");
    let (code, out) = sandbox.run(&join("linux-admins"));
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("already joined"), "{out}");
    assert!(sandbox.calls().contains("klist -k"), "{}", sandbox.calls());
    assert!(!sandbox.calls().contains("adcli join"));
}

/// One leave command for two instances on the tools host (the worker gathers a batch's
/// leaves): the script runs once per instance with that instance's values alone, each
/// run's lines are prefixed with its instance id and followed by its exit code; the
/// command fails with the failure's code, and the other instance's leave stands.
#[test]
pub(crate) fn a_leave_for_several_instances_runs_once_per_instance_with_its_own_exit_code() {
    use adjoin_core::render::{Subject, gathered, leave_command};
    use adjoin_core::testing::{instance, instance_id, region};

    let sandbox = tools_sandbox();
    sandbox.flag("ldap-entry", &entry(OUR_DN, &[STAMP]));
    let tools = instance(
        "i-0fedcba9876543210",
        "running",
        adjoin_core::instance::Platform::Linux,
        &[],
    );
    let ours = instance_id("i-0abcd1234ef567890");
    let other = instance_id("i-0bbbbbbbbbbbbbbb2");
    let request = |id, name| {
        let subject = Subject {
            region: &region(),
            instance_id: id,
            computer_name: name,
            event_id: "event-2",
        };
        let config = config();
        leave_command(
            &tools,
            &config,
            &region(),
            &subject,
            config.ou_path.as_deref(),
        )
    };
    let one = gathered(&[
        request(&ours, "I0ABCD1234EF567"),
        // The directory answers with the first instance's object: not this one's.
        request(&other, "I0BBBBBBBBBBBB2"),
    ])
    .expect("one command");
    assert!(one.more_targets.is_empty(), "one command on the tools host");
    let (code, out) = sandbox.run(&one.commands);
    assert_eq!(code, 15, "{out}");
    assert!(
        out.contains(&format!("{ours}: adjoin: deleted computer I0ABCD1234EF567")),
        "{out}"
    );
    assert!(out.contains(&format!("adjoin-result {ours} 0\n")), "{out}");
    assert!(
        out.contains(&format!("adjoin-result {other} 15\n")),
        "{out}"
    );
    assert!(
        out.lines()
            .filter(|l| !l.starts_with("adjoin-result "))
            .all(|l| l.starts_with(&format!("{ours}: ")) || l.starts_with(&format!("{other}: "))),
        "every line says whose it is: {out}"
    );
    assert_eq!(
        sandbox.calls().matches("ldapdelete").count(),
        1,
        "{}",
        sandbox.calls()
    );
    assert!(!out.contains(PASSWORD));
}
