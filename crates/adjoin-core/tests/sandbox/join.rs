//! Joins on every distribution family, and the group tag's rules.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;

use crate::sandbox::{PACKAGE_MANAGER, Sandbox};
use crate::{PASSWORD, STAMP, join};

pub(crate) struct Distribution {
    name: &'static str,
    os_release: &'static str,
    /// Stand-ins present before the join (the package manager, PAM tool, AWS CLI).
    preinstalled: &'static [&'static str],
    /// Packages the distribution does not offer.
    unavailable: &'static str,
    package_call: &'static str,
    pam_call: &'static str,
    /// How the AWS CLI arrives: "" preinstalled, else the package or bundle call.
    aws_cli_call: &'static str,
}

pub(crate) const DNF_CALL: &str = "dnf install -y -q sssd sssd-tools adcli krb5-workstation samba-common-tools oddjob-mkhomedir bind-utils";
pub(crate) const APT_CALL: &str = "apt-get -o DPkg::Lock::Timeout=60 install -y -q sssd sssd-tools libnss-sss libpam-sss adcli krb5-user samba-common-bin dnsutils";
pub(crate) const AUTHSELECT_CALL: &str = "authselect select sssd with-mkhomedir --force";
pub(crate) const PAM_AUTH_UPDATE_CALL: &str = "pam-auth-update --enable mkhomedir";
/// AWS's bundled installer, run from the state directory.
pub(crate) const AWS_BUNDLE_CALL: &str = "install --install-dir";
pub(crate) const APT_AWSCLI_CALL: &str = "apt-get -o DPkg::Lock::Timeout=60 install -y -q awscli";

impl Distribution {
    /// A RHEL rebuild without the AWS CLI: dnf and authselect; the CLI from AWS's bundle.
    const fn rhel_without_aws_cli(name: &'static str, os_release: &'static str) -> Self {
        Distribution {
            name,
            os_release,
            preinstalled: &["dnf", "authselect", "curl"],
            unavailable: "",
            package_call: DNF_CALL,
            pam_call: AUTHSELECT_CALL,
            aws_cli_call: AWS_BUNDLE_CALL,
        }
    }

    /// Debian or Ubuntu: apt-get and pam-auth-update; the AWS CLI as `aws_cli_call` says,
    /// the distribution's package unless it is `unavailable`.
    const fn debian(
        name: &'static str,
        os_release: &'static str,
        unavailable: &'static str,
        aws_cli_call: &'static str,
    ) -> Self {
        Distribution {
            name,
            os_release,
            preinstalled: &["apt-get", "pam-auth-update"],
            unavailable,
            package_call: APT_CALL,
            pam_call: PAM_AUTH_UPDATE_CALL,
            aws_cli_call,
        }
    }
}

pub(crate) const DISTRIBUTIONS: &[Distribution] = &[
    Distribution {
        name: "Amazon Linux 2",
        os_release: "NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2\"\nID_LIKE=\"centos rhel fedora\"\n",
        preinstalled: &["yum", "authconfig", "aws"],
        unavailable: "",
        package_call: "yum install -y -q sssd sssd-tools adcli krb5-workstation samba-common-tools oddjob-mkhomedir bind-utils",
        pam_call: "authconfig --enablesssd --enablesssdauth --enablemkhomedir --update",
        aws_cli_call: "",
    },
    Distribution {
        name: "Amazon Linux 2023",
        os_release: "NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2023\"\nID_LIKE=\"fedora\"\n",
        preinstalled: &["dnf", "authselect", "aws"],
        unavailable: "",
        package_call: DNF_CALL,
        pam_call: AUTHSELECT_CALL,
        aws_cli_call: "",
    },
    Distribution::rhel_without_aws_cli(
        "RHEL 9",
        "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\nID_LIKE=\"fedora\"\n",
    ),
    Distribution::rhel_without_aws_cli(
        "Rocky Linux 8",
        "NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"8.10\"\nID_LIKE=\"rhel centos fedora\"\n",
    ),
    Distribution::rhel_without_aws_cli(
        "AlmaLinux 9",
        "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.4\"\nID_LIKE=\"rhel centos fedora\"\n",
    ),
    Distribution::debian(
        "Ubuntu 22.04",
        "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n",
        "",
        APT_AWSCLI_CALL,
    ),
    Distribution::debian(
        "Ubuntu 24.04",
        "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n",
        "awscli\n",
        AWS_BUNDLE_CALL,
    ),
    Distribution::debian(
        "Debian 12",
        "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        "",
        APT_AWSCLI_CALL,
    ),
    Distribution {
        name: "SLES 15",
        os_release: "NAME=\"SLES\"\nID=\"sles\"\nID_LIKE=\"suse\"\nVERSION_ID=\"15.6\"\n",
        preinstalled: &["zypper", "pam-config"],
        unavailable: "",
        package_call: "zypper --non-interactive install sssd sssd-ad sssd-tools adcli krb5-client samba-client bind-utils",
        pam_call: "pam-config -a --sss --mkhomedir",
        aws_cli_call: "zypper --non-interactive install aws-cli",
    },
];

pub(crate) fn distribution_sandbox(d: &Distribution) -> Sandbox {
    let sandbox = Sandbox::new(d.os_release);
    for tool in d.preinstalled {
        match *tool {
            "aws" | "curl" => sandbox.preinstall(tool),
            "yum" | "dnf" | "apt-get" | "zypper" => {
                sandbox.tool(&format!("bin/{tool}"), PACKAGE_MANAGER)
            }
            _ => sandbox.tool(&format!("bin/{tool}"), ""),
        }
    }
    sandbox.flag("unavailable", d.unavailable);
    sandbox
}

/// Debian 12: the distribution the cases below use.
pub(crate) fn debian_sandbox() -> Sandbox {
    let debian = DISTRIBUTIONS.iter().find(|d| d.name == "Debian 12");
    distribution_sandbox(debian.expect("Debian 12 is listed"))
}

#[test]
pub(crate) fn every_distribution_installs_joins_and_configures() {
    for d in DISTRIBUTIONS {
        let sandbox = distribution_sandbox(d);
        let (code, out) = sandbox.run(&join("linux-admins"));
        let calls = sandbox.calls();
        let name = d.name;
        assert_eq!(code, 0, "{name}: {out}\n{calls}");
        assert!(calls.contains(d.package_call), "{name}: {calls}");
        assert!(calls.contains(d.pam_call), "{name}: {calls}");
        if d.aws_cli_call.is_empty() {
            assert!(
                !calls.contains("awscli") && !calls.contains("curl"),
                "{name}: {calls}"
            );
        } else {
            assert!(calls.contains(d.aws_cli_call), "{name}: {calls}");
        }
        if d.aws_cli_call == AWS_BUNDLE_CALL {
            // AWS's bundle: fetched, unpacked and run under the state directory, not /tmp.
            let state = sandbox.path("state").display().to_string();
            assert!(
                calls.contains(&format!(
                    "{state}/awscli-install/aws/install --install-dir {state}/aws-cli"
                )),
                "{name}: {calls}"
            );
        }
        let outside = calls.replace(&sandbox.dir.path().display().to_string(), "SANDBOX");
        assert!(
            !outside.contains("/tmp/"),
            "{name}: nothing runs from /tmp: {calls}"
        );
        let keytab = sandbox.path("etc/krb5.keytab");
        assert!(
            calls.contains(&format!(
                "adcli join --domain=example.test --domain-realm=EXAMPLE.TEST \
                 --domain-controller=10.200.0.1 --login-user=svc-join --stdin-password \
                 --computer-name=I0ABCD1234EF567 --host-fqdn=i0abcd1234ef567.example.test \
                 --host-keytab={} --description={STAMP} \
                 --domain-ou=OU=Servers,DC=example,DC=test",
                keytab.display()
            )),
            "{name}: {calls}"
        );
        assert!(
            calls.contains("adcli add-member") && calls.contains("gmsa-hosts I0ABCD1234EF567$")
        );
        assert!(calls.contains("sssd -D --logger=files"), "{name}: {calls}");
        // The password reaches adcli on stdin only: never in an argument, never printed.
        assert!(!calls.contains(PASSWORD), "{name}: password in argv");
        assert!(!out.contains(PASSWORD), "{name}: password printed");
        // On stdin: the look for a computer of that name, the join, the group.
        assert_eq!(
            sandbox.read("stdin.log"),
            format!("{PASSWORD}\n{PASSWORD}\n{PASSWORD}\n")
        );

        let krb5 = sandbox.read("etc/krb5.conf");
        assert!(krb5.contains("default_realm = EXAMPLE.TEST"), "{krb5}");
        assert!(krb5.contains("kdc = 10.200.0.1") && krb5.contains("kdc = 10.200.0.4"));
        let sssd = sandbox.read("etc/sssd/sssd.conf");
        assert!(sssd.contains("krb5_realm = EXAMPLE.TEST"), "{sssd}");
        assert!(
            sssd.contains("ad_server = dc1.example.test,dc2.example.test"),
            "{sssd}"
        );
        assert!(sssd.contains("access_provider = simple\nsimple_allow_groups = linux-admins"));
        let mode = fs::metadata(sandbox.path("etc/sssd/sssd.conf")).expect("sssd.conf");
        assert_eq!(mode.permissions().mode() & 0o777, 0o600, "{name}");
        let hosts = sandbox.read("etc/hosts");
        assert!(
            hosts.contains("10.200.0.1 dc1.example.test dc1\n10.200.0.4 dc2.example.test dc2\n"),
            "{hosts}"
        );
        assert!(
            sandbox
                .read("etc/nsswitch.conf")
                .contains("passwd: files sss\n")
        );
    }
}

#[test]
pub(crate) fn a_held_package_lock_is_waited_out() {
    let sandbox = debian_sandbox();
    sandbox.flag("lock-held", "");
    let (code, out) = sandbox.run(&join("linux-admins"));
    let calls = sandbox.calls();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("attempt 1 of apt-get"), "{out}");
    assert!(calls.contains("sleep 10"), "{calls}");
}

#[test]
pub(crate) fn a_second_run_keeps_the_join_and_reads_no_password() {
    let sandbox = debian_sandbox();
    assert_eq!(sandbox.run(&join("linux-admins")).0, 0);
    fs::remove_file(sandbox.path("calls.log")).expect("log");
    let (code, out) = sandbox.run(&join("linux-admins"));
    let calls = sandbox.calls();
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("already joined to example.test as I0ABCD1234EF567"),
        "{out}"
    );
    assert!(
        !calls.contains("adcli join") && !calls.contains("aws "),
        "{calls}"
    );
    // The pinned block is rewritten, not appended again.
    assert_eq!(
        sandbox.read("etc/hosts").matches("# adjoin: begin").count(),
        1
    );
}

#[test]
pub(crate) fn failures_have_their_own_exit_codes() {
    let unsupported = Sandbox::new("ID=plan9\n");
    let (code, out) = unsupported.run(&join("g"));
    assert_eq!(code, 11, "{out}");
    assert!(out.contains("unsupported distribution 'plan9'"), "{out}");

    for (flag, group, expected, says) in [
        ("dc-down", "g", 13, "no domain controller answers"),
        ("refuse-join", "g", 14, "adcli join refused (exit 6)"),
        ("member-exists", "g", 0, "already in group 'gmsa-hosts'"),
        (
            "member-denied",
            "g",
            16,
            "not added to group(s): gmsa-hosts",
        ),
        ("", "admins\"x", 10, "contain a control character, a quote"),
    ] {
        let sandbox = debian_sandbox();
        if !flag.is_empty() {
            sandbox.flag(flag, "");
        }
        let (code, out) = sandbox.run(&join(group));
        assert_eq!(code, expected, "{flag}: {out}");
        assert!(out.contains(says), "{flag}: {out}");
        assert!(!out.contains(PASSWORD), "{flag}: password printed");
        if expected == 16 {
            // The join itself stands and is configured; the failure is reported.
            let sssd = sandbox.read("etc/sssd/sssd.conf");
            assert!(sssd.contains("simple_allow_groups = g"), "{sssd}");
        }
    }
}

#[test]
pub(crate) fn no_group_tag_means_no_directory_logins() {
    let sandbox = debian_sandbox();
    let (code, out) = sandbox.run(&join(""));
    assert_eq!(code, 0, "{out}");
    let sssd = sandbox.read("etc/sssd/sssd.conf");
    assert!(sssd.contains("access_provider = deny"), "{sssd}");
    assert!(!sssd.contains("simple_allow_groups"), "{sssd}");
}

#[test]
pub(crate) fn a_hostile_group_tag_is_written_as_data_and_never_runs() {
    let sandbox = debian_sandbox();
    let canary = sandbox.path("pwned");
    let c = canary.display();
    let hostile = format!("x$(touch {c})`touch {c}`';touch {c};'; touch {c} #");
    let (code, out) = sandbox.run(&join(&hostile));
    assert_eq!(code, 0, "{out}");
    assert!(!canary.exists(), "a tag value was executed");
    let sssd = sandbox.read("etc/sssd/sssd.conf");
    assert!(
        sssd.contains(&format!("simple_allow_groups = {hostile}\n")),
        "{sssd}"
    );
    // A double quote would end the quoted group list of sshd_config: refused.
    let (code, out) = sandbox.run(&join(&format!("{hostile}\"; touch {c}")));
    assert_eq!(code, 10, "{out}");
    assert!(!canary.exists(), "a tag value was executed");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Any tag value (up to EC2's 256 characters): quotes, `$()`, backticks, `;`, unicode,
    /// newlines. Commas separate groups. The script either refuses it (exit 10: control
    /// characters, which sssd.conf cannot hold, and double quotes, backslashes and pattern
    /// characters, which sshd_config's group list cannot) or writes its groups verbatim as
    /// the allowed groups; no command of the value ever runs.
    #[test]
    fn any_group_tag_is_one_value_and_never_runs(
        tail in r#"([a-zA-Z0-9 ._\-é中]|[\$`'";|&<>(){}\\*?!#~]){0,160}"#,
        refused in proptest::option::of("[,\n\t\r]"),
    ) {
        let sandbox = debian_sandbox();
        let canary = sandbox.path("ran");
        let mut value = format!("g$(touch {c})`touch {c}`;touch {c}{tail}", c = canary.display());
        if let Some(separator) = refused {
            let mut at = value.len() / 2;
            while !value.is_char_boundary(at) {
                at -= 1;
            }
            value.insert_str(at, &format!("{separator}touch {}", canary.display()));
        }
        let (code, out) = sandbox.run(&join(&value));
        proptest::prop_assert!(!canary.exists(), "a tag value was executed: {value:?}");
        let refusable = value.chars().any(|c| c.is_control() || "\"\\*?!".contains(c));
        if refusable {
            proptest::prop_assert_eq!(code, 10, "{}", out);
        } else {
            proptest::prop_assert_eq!(code, 0, "{}", out);
            let sssd = sandbox.read("etc/sssd/sssd.conf");
            let groups = adjoin_core::instance::login_groups(&value).join(", ");
            let expected = format!("\nsimple_allow_groups = {groups}\n");
            proptest::prop_assert!(sssd.contains(&expected), "{}", sssd);
        }
        // What the stand-ins received: only the expected commands, never the value's.
        for call in sandbox.calls().lines() {
            let tool = call.split(' ').next().unwrap_or_default();
            proptest::prop_assert!(
                ["apt-get", "pam-auth-update", "adcli", "aws", "getent", "sssd", "sleep"].contains(&tool),
                "unexpected command {call:?}"
            );
        }
    }
}

#[test]
pub(crate) fn a_computer_of_that_name_made_by_someone_else_is_not_taken_over() {
    for (case, description) in [
        ("another owner's", "created by mallory"),
        (
            "another instance's stamp",
            "adjoin 111122223333 eu-west-1 i-0ffffffffffffffff",
        ),
        ("no description", ""),
    ] {
        let sandbox = debian_sandbox();
        sandbox.flag("computer-description", description);
        let (code, out) = sandbox.run(&join("linux-admins"));
        assert_eq!(code, 19, "{case}: {out}");
        assert!(out.contains("is not this instance's"), "{case}: {out}");
        assert!(
            !sandbox.calls().contains("adcli join"),
            "{case}: joined anyway"
        );
    }
    // Ours (a join that lost its keytab, say): joined again.
    let sandbox = debian_sandbox();
    sandbox.flag("computer-description", STAMP);
    let (code, out) = sandbox.run(&join("linux-admins"));
    assert_eq!(code, 0, "{out}");
    assert!(sandbox.calls().contains("adcli join"));
}

/// A Debian sandbox with openssh-server and sudo: `sshd -t` and `visudo -cf` stand-ins
/// that accept a file unless told (`sshd-refuses`, `visudo-refuses`).
fn ssh_sudo_sandbox() -> Sandbox {
    let sandbox = debian_sandbox();
    std::fs::create_dir_all(sandbox.path("etc/ssh")).expect("dir");
    sandbox.flag(
        "etc/ssh/sshd_config",
        "Include /etc/ssh/sshd_config.d/*.conf\nKbdInteractiveAuthentication no\nUsePAM yes\n",
    );
    sandbox.tool("bin/sshd", "[ ! -e \"$SANDBOX/sshd-refuses\" ]\n");
    sandbox.tool(
        "bin/visudo",
        "cp \"${*: -1}\" \"$SANDBOX/visudo-checked\"\n[ ! -e \"$SANDBOX/visudo-refuses\" ]\n",
    );
    sandbox
}

fn with_sudo_groups(groups: &[&str]) -> adjoin_core::config::AccountConfig {
    adjoin_core::config::AccountConfig {
        sudo_groups: groups.iter().map(|g| (*g).to_owned()).collect(),
        ..crate::config()
    }
}

#[test]
pub(crate) fn login_groups_may_log_in_over_ssh_with_their_password_and_only_they() {
    let sandbox = ssh_sudo_sandbox();
    let commands = crate::join_with(&crate::config(), "Linux-Admins, web");
    let (code, out) = sandbox.run(&commands);
    assert_eq!(code, 0, "{out}");
    let block = "# adjoin: begin (directory logins; rewritten by every join)\n\
                 Match Group \"linux-admins@example.test,web@example.test\"\n    \
                 PasswordAuthentication yes\n    KbdInteractiveAuthentication yes\n\
                 Match all\n# adjoin: end\n";
    let conf = sandbox.read("etc/ssh/sshd_config");
    assert!(
        conf.starts_with("Include /etc/ssh/sshd_config.d/*.conf\n"),
        "{conf}"
    );
    assert!(conf.ends_with(block), "{conf}");
    let sssd = sandbox.read("etc/sssd/sssd.conf");
    assert!(
        sssd.contains("simple_allow_groups = Linux-Admins, web\n"),
        "{sssd}"
    );
    // sssd registers the instance's address in the directory's DNS, at the DC.
    assert!(
        sssd.contains("dyndns_update = true\n")
            && sssd.contains("dyndns_server = dc1.example.test\n"),
        "{sssd}"
    );
    // Again: the block is replaced, not added twice.
    assert_eq!(sandbox.run(&commands).0, 0);
    assert_eq!(
        sandbox
            .read("etc/ssh/sshd_config")
            .matches("# adjoin: begin")
            .count(),
        1
    );
    // sshd refuses the result: the previous file stays, the join says so.
    let before = sandbox.read("etc/ssh/sshd_config");
    sandbox.flag("sshd-refuses", "");
    let (code, out) = sandbox.run(&crate::join_with(&crate::config(), "other"));
    assert_eq!(code, 15, "{out}");
    assert!(out.contains("cannot configure sshd"), "{out}");
    assert_eq!(sandbox.read("etc/ssh/sshd_config"), before);
}

#[test]
pub(crate) fn sudo_groups_get_a_checked_sudoers_file_and_lose_it_with_the_setting() {
    let sandbox = ssh_sudo_sandbox();
    let (code, out) = sandbox.run(&crate::join_with(
        &with_sudo_groups(&["Linux Admins", "dba"]),
        "g",
    ));
    assert_eq!(code, 0, "{out}");
    let sudoers = sandbox.read("etc/sudoers.d/adjoin");
    assert_eq!(
        sudoers,
        "# Written by adjoin on every join: these directory groups may use sudo.\n\
         %linux\\ admins@example.test ALL=(ALL:ALL) ALL\n%dba@example.test ALL=(ALL:ALL) ALL\n"
    );
    assert_eq!(
        sandbox.read("visudo-checked"),
        sudoers,
        "visudo checked what was installed"
    );
    let mode = std::fs::metadata(sandbox.path("etc/sudoers.d/adjoin")).expect("file");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
        0o440
    );
    // visudo refuses: nothing is installed, the join says so.
    let refused = ssh_sudo_sandbox();
    refused.flag("visudo-refuses", "");
    let (code, out) = refused.run(&crate::join_with(&with_sudo_groups(&["dba"]), "g"));
    assert_eq!(code, 15, "{out}");
    assert!(!refused.path("etc/sudoers.d/adjoin").exists());
    // No sudoGroups any more: the file goes.
    let (code, out) = sandbox.run(&crate::join_with(&crate::config(), "g"));
    assert_eq!(code, 0, "{out}");
    assert!(!sandbox.path("etc/sudoers.d/adjoin").exists());
}

/// One join command for three instances (the worker gathers a batch's joins): each
/// instance, told its id by SSM Agent, joins with its own values from the INSTANCES table,
/// and a hostile tag in one instance's row is data on that instance and nowhere else.
#[test]
pub(crate) fn a_command_for_several_instances_joins_each_with_its_own_values_and_runs_none() {
    use adjoin_core::instance::Platform;
    use adjoin_core::render::{gathered, join_command};
    use adjoin_core::testing::{instance, region};

    let probe = debian_sandbox();
    let canary = probe.path("pwned");
    let c = canary.display();
    let hostile = format!("x$(touch {c})`touch {c}`';touch {c};'");
    let instances = [
        (
            "i-0aaaaaaaaaaaaaaa1",
            "I0AAAAAAAAAAAA1",
            "alpha-admins".to_owned(),
        ),
        ("i-0aaaaaaaaaaaaaaa2", "I0AAAAAAAAAAAA2", hostile.clone()),
        (
            "i-0aaaaaaaaaaaaaaa3",
            "I0AAAAAAAAAAAA3",
            "gamma-admins".to_owned(),
        ),
    ];
    let requests: Vec<_> = instances
        .iter()
        .map(|(id, name, group)| {
            let i = instance(
                id,
                "running",
                Platform::Linux,
                &[(adjoin_core::instance::GROUP_TAG, group)],
            );
            join_command(&i, &crate::config(), &region(), name, "event-1")
        })
        .collect();
    let one = gathered(&requests).expect("one command");
    assert_eq!(one.more_targets.len(), 2);

    for (id, name, group) in &instances {
        let sandbox = debian_sandbox();
        let (code, out) = sandbox.run_on(&one.commands, Some(id));
        assert_eq!(code, 0, "{id}: {out}");
        assert!(
            sandbox.calls().contains(&format!("--computer-name={name}")),
            "{id} joins as {name}: {}",
            sandbox.calls()
        );
        let sssd = sandbox.read("etc/sssd/sssd.conf");
        assert!(
            sssd.contains(&format!("simple_allow_groups = {group}\n")),
            "{id}: {sssd}"
        );
    }
    assert!(!canary.exists(), "a tag value was executed");

    // An instance the table does not name, and an instance that cannot be told.
    for (id, says) in [
        (Some("i-0bbbbbbbbbbbbbbb9"), "has no row"),
        (None, "cannot tell which instance"),
    ] {
        let sandbox = debian_sandbox();
        let (code, out) = sandbox.run_on(&one.commands, id);
        assert_eq!(code, 10, "{out}");
        assert!(out.contains(says), "{out}");
        assert!(!sandbox.calls().contains("adcli join"), "{out}");
    }

    // A table may carry only an instance's own values: not the join mode, nor a name
    // that would be a shell variable.
    for pair in [
        "JOIN_MODE=c2hhcmVkUGFzc3dvcmQ=",
        "PATH=L3RtcA==",
        "COMPUTER_NAME=$(id)",
    ] {
        use base64::Engine as _;
        let table = format!("i-0aaaaaaaaaaaaaaa1 {pair}");
        let encoded = base64::engine::general_purpose::STANDARD.encode(table);
        let commands: Vec<String> = one
            .commands
            .iter()
            .map(|line| {
                if line.starts_with("ADJOIN_INSTANCES_B64=") {
                    format!("ADJOIN_INSTANCES_B64='{encoded}'")
                } else {
                    line.clone()
                }
            })
            .collect();
        let sandbox = debian_sandbox();
        let (code, out) = sandbox.run_on(&commands, Some("i-0aaaaaaaaaaaaaaa1"));
        assert_eq!(code, 10, "{pair}: {out}");
        assert!(!sandbox.calls().contains("adcli join"), "{pair}: {out}");
    }
}
