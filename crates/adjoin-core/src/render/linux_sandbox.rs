//! The rendered Linux join and leave commands, run under bash against stand-ins for each
//! distribution's tools (package manager, PAM tool, adcli, the AWS CLI, sssd), with the
//! configuration written into a scratch `/etc`. This covers every distribution family's
//! package and configuration path; Debian's is also run for real against a Samba AD domain
//! controller by the end-to-end test (`tests/e2e/samba-ad.sh`).

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::{join_command, leave_command};
use crate::config::{AccountConfig, ConfigItem};
use crate::ids::{AccountId, InstanceId, Region};
use crate::instance::{GROUP_TAG, Platform, test_instance};

const PASSWORD: &str = "S3cret-Join-P@ss";
const COMPUTER: &str = "I0ABCD1234EF567";

/// Real tools the scripts use; everything else on PATH is a stand-in.
const REAL_TOOLS: &[&str] = &[
    "bash", "sh", "base64", "sed", "head", "cat", "chmod", "mkdir", "rm", "mv", "tr", "grep",
    "uname", "touch", "env", "cp",
];

/// Logs its name and arguments; the common head of every stand-in.
const LOG_CALL: &str = r#"#!/bin/bash
printf '%s\n' "${0##*/} $*" >>"$SANDBOX/calls.log"
"#;

/// A package manager: fails once while `lock-held` exists, fails for packages listed in
/// `unavailable`, and "installs" a package by moving its stand-in from `pending/` to `bin/`.
const PACKAGE_MANAGER: &str = r#"
if [ -e "$SANDBOX/lock-held" ]; then rm "$SANDBOX/lock-held"; exit 100; fi
for pkg in "$@"; do
  if grep -qx -- "$pkg" "$SANDBOX/unavailable" 2>/dev/null; then exit 100; fi
done
for pkg in "$@"; do
  case $pkg in
    adcli) tool=adcli ;; sssd) tool=sssd ;; unzip) tool=unzip ;; curl) tool=curl ;;
    krb5-user|krb5-workstation|krb5-client) tool=kinit ;;
    awscli|aws-cli) tool=aws ;;
    *) continue ;;
  esac
  if [ -e "$SANDBOX/pending/$tool" ]; then mv "$SANDBOX/pending/$tool" "$SANDBOX/bin/$tool"; fi
done
"#;

const ADCLI: &str = r#"
case $1 in
  info)
    [ ! -e "$SANDBOX/dc-down" ] || exit 3
    case $2 in *=10.200.0.1) echo "domain-controller = dc1.example.test" ;; *) echo "domain-controller = dc2.example.test" ;; esac ;;
  testjoin) [ -e "$SANDBOX/joined" ] || exit 3 ;;
  join)
    cat >>"$SANDBOX/stdin.log"; echo >>"$SANDBOX/stdin.log"
    [ ! -e "$SANDBOX/refuse-join" ] || exit 6
    touch "$SANDBOX/joined" ;;
  add-member)
    cat >>"$SANDBOX/stdin.log"; echo >>"$SANDBOX/stdin.log"
    if [ -e "$SANDBOX/member-denied" ]; then echo "adcli: Insufficient permissions to modify group entry" >&2; exit 6; fi
    if [ -e "$SANDBOX/member-exists" ]; then echo "adcli: Attribute member already exists" >&2; exit 4; fi ;;
  delete-computer)
    cat >>"$SANDBOX/stdin.log"; echo >>"$SANDBOX/stdin.log"
    if [ -e "$SANDBOX/object-gone" ]; then echo "adcli: No computer account for ${*: -1} exists" >&2; exit 5; fi ;;
esac
"#;

const AWS: &str = r#"printf '%s\n' 'S3cret-Join-P@ss'
"#;

/// The bundle's downloader and unpacker; the unpacked installer puts `aws` on PATH.
const CURL: &str = r#"
while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift ;; esac; shift; done
: >"$out"
"#;
const UNZIP: &str = r#"
while [ $# -gt 0 ]; do case $1 in -d) dest=$2; shift ;; esac; shift; done
mkdir -p "$dest/aws"
printf '#!/bin/bash\nprintf "%%s\\n" "$0 $*" >>"$SANDBOX/calls.log"\ncp "$SANDBOX/pending/aws-bundled" "$SANDBOX/bin/aws"\n' >"$dest/aws/install"
chmod 755 "$dest/aws/install"
"#;

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new(os_release: &str) -> Self {
        let sandbox = Self {
            dir: tempfile::tempdir().expect("temporary directory"),
        };
        for d in ["bin", "pending", "etc", "state"] {
            fs::create_dir(sandbox.path(d)).expect("directory");
        }
        fs::write(sandbox.path("etc/os-release"), os_release).expect("write");
        fs::write(sandbox.path("etc/hosts"), "127.0.0.1 localhost\n").expect("write");
        fs::write(
            sandbox.path("etc/nsswitch.conf"),
            "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\n",
        )
        .expect("write");
        for tool in REAL_TOOLS {
            let real = which(tool);
            std::os::unix::fs::symlink(real, sandbox.path(&format!("bin/{tool}")))
                .expect("symlink");
        }
        for (name, body) in [
            ("adcli", ADCLI),
            ("sssd", ""),
            ("kinit", ""),
            ("aws", AWS),
            ("aws-bundled", AWS),
            ("unzip", UNZIP),
            ("curl", CURL),
        ] {
            sandbox.tool(&format!("pending/{name}"), body);
        }
        // Nothing resolves the directory's names; pauses are only logged.
        sandbox.tool("bin/getent", "exit 2\n");
        sandbox.tool("bin/sleep", "");
        sandbox
    }

    fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes an executable stand-in that logs its call, then runs `body`.
    fn tool(&self, relative: &str, body: &str) {
        let path = self.path(relative);
        fs::write(&path, format!("{LOG_CALL}{body}")).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Makes a stand-in that waits in `pending/` (installed by a package) present now.
    fn preinstall(&self, name: &str) {
        fs::rename(
            self.path(&format!("pending/{name}")),
            self.path(&format!("bin/{name}")),
        )
        .expect("preinstall");
    }

    fn flag(&self, name: &str, content: &str) {
        fs::write(self.path(name), content).expect("write");
    }

    /// Runs the rendered commands as SSM Agent does (a script file run by `sh`).
    fn run(&self, commands: &[String]) -> (i32, String) {
        let script = self.path("_script.sh");
        fs::write(&script, commands.join("\n") + "\n").expect("write");
        fs::set_permissions(&script, fs::Permissions::from_mode(0o700)).expect("chmod");
        let out = Command::new(self.path("bin/sh"))
            .arg("-c")
            .arg(&script)
            .current_dir(self.dir.path())
            .env_clear()
            .env("PATH", self.path("bin"))
            .env("SANDBOX", self.dir.path())
            .env("ADJOIN_ETC", self.path("etc"))
            .env("ADJOIN_STATE_DIR", self.path("state"))
            .output()
            .expect("run the script");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    fn calls(&self) -> String {
        self.read("calls.log")
    }
}

fn which(tool: &str) -> PathBuf {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} is not installed"))
}

fn config() -> AccountConfig {
    let item: ConfigItem = serde_json::from_value(serde_json::json!({
        "accountId": "111122223333", "adJoinUserName": "svc-join",
        "adJoinUserPwParam": "/adjoin/join-password", "dnsName": "example.test",
        "dnsIP1": "10.200.0.1", "dnsIP2": "10.200.0.4",
        "ouPath": "OU=Servers,DC=example,DC=test", "computerGroups": ["gmsa-hosts"]
    }))
    .expect("object");
    AccountConfig::from_item(&item, &AccountId::parse("111122223333").expect("valid"))
        .expect("valid")
}

fn join(group: &str) -> Vec<String> {
    let instance = test_instance(
        "i-0abcd1234ef567890",
        "running",
        Platform::Linux,
        &[(GROUP_TAG, group)],
    );
    let region = Region::parse("eu-west-1").expect("valid");
    join_command(&instance, &config(), &region, COMPUTER, "event-1").commands
}

fn leave() -> Vec<String> {
    let tools = test_instance("i-0fedcba9876543210", "running", Platform::Linux, &[]);
    let region = Region::parse("eu-west-1").expect("valid");
    let id = InstanceId::parse("i-0abcd1234ef567890").expect("valid");
    leave_command(&tools, &config(), &region, &id, COMPUTER, "event-2").commands
}

struct Distribution {
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

const DNF_CALL: &str =
    "dnf install -y -q sssd sssd-tools adcli krb5-workstation samba-common-tools oddjob-mkhomedir";
const APT_CALL: &str = "apt-get -o DPkg::Lock::Timeout=60 install -y -q sssd sssd-tools libnss-sss libpam-sss adcli krb5-user samba-common-bin";
const AUTHSELECT_CALL: &str = "authselect select sssd with-mkhomedir --force";
const PAM_AUTH_UPDATE_CALL: &str = "pam-auth-update --enable mkhomedir";
/// AWS's bundled installer, run from the state directory.
const AWS_BUNDLE_CALL: &str = "install --install-dir";
const APT_AWSCLI_CALL: &str = "apt-get -o DPkg::Lock::Timeout=60 install -y -q awscli";

const DISTRIBUTIONS: &[Distribution] = &[
    Distribution {
        name: "Amazon Linux 2",
        os_release: "NAME=\"Amazon Linux\"\nID=\"amzn\"\nVERSION_ID=\"2\"\nID_LIKE=\"centos rhel fedora\"\n",
        preinstalled: &["yum", "authconfig", "aws"],
        unavailable: "",
        package_call: "yum install -y -q sssd sssd-tools adcli krb5-workstation samba-common-tools oddjob-mkhomedir",
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
    Distribution {
        name: "RHEL 9",
        os_release: "NAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nVERSION_ID=\"9.4\"\nID_LIKE=\"fedora\"\n",
        preinstalled: &["dnf", "authselect", "curl"],
        unavailable: "",
        package_call: DNF_CALL,
        pam_call: AUTHSELECT_CALL,
        aws_cli_call: AWS_BUNDLE_CALL,
    },
    Distribution {
        name: "Rocky Linux 8",
        os_release: "NAME=\"Rocky Linux\"\nID=\"rocky\"\nVERSION_ID=\"8.10\"\nID_LIKE=\"rhel centos fedora\"\n",
        preinstalled: &["dnf", "authselect", "curl"],
        unavailable: "",
        package_call: DNF_CALL,
        pam_call: AUTHSELECT_CALL,
        aws_cli_call: AWS_BUNDLE_CALL,
    },
    Distribution {
        name: "AlmaLinux 9",
        os_release: "NAME=\"AlmaLinux\"\nID=\"almalinux\"\nVERSION_ID=\"9.4\"\nID_LIKE=\"rhel centos fedora\"\n",
        preinstalled: &["dnf", "authselect", "curl"],
        unavailable: "",
        package_call: DNF_CALL,
        pam_call: AUTHSELECT_CALL,
        aws_cli_call: AWS_BUNDLE_CALL,
    },
    Distribution {
        name: "Ubuntu 22.04",
        os_release: "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"22.04\"\n",
        preinstalled: &["apt-get", "pam-auth-update"],
        unavailable: "",
        package_call: APT_CALL,
        pam_call: PAM_AUTH_UPDATE_CALL,
        aws_cli_call: APT_AWSCLI_CALL,
    },
    Distribution {
        name: "Ubuntu 24.04",
        os_release: "NAME=\"Ubuntu\"\nID=ubuntu\nID_LIKE=debian\nVERSION_ID=\"24.04\"\n",
        preinstalled: &["apt-get", "pam-auth-update"],
        unavailable: "awscli\n",
        package_call: APT_CALL,
        pam_call: PAM_AUTH_UPDATE_CALL,
        aws_cli_call: AWS_BUNDLE_CALL,
    },
    Distribution {
        name: "Debian 12",
        os_release: "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nID=debian\nVERSION_ID=\"12\"\n",
        preinstalled: &["apt-get", "pam-auth-update"],
        unavailable: "",
        package_call: APT_CALL,
        pam_call: PAM_AUTH_UPDATE_CALL,
        aws_cli_call: APT_AWSCLI_CALL,
    },
    Distribution {
        name: "SLES 15",
        os_release: "NAME=\"SLES\"\nID=\"sles\"\nID_LIKE=\"suse\"\nVERSION_ID=\"15.6\"\n",
        preinstalled: &["zypper", "pam-config"],
        unavailable: "",
        package_call: "zypper --non-interactive install sssd sssd-ad sssd-tools adcli krb5-client samba-client",
        pam_call: "pam-config -a --sss --mkhomedir",
        aws_cli_call: "zypper --non-interactive install aws-cli",
    },
];

fn distribution_sandbox(d: &Distribution) -> Sandbox {
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
fn debian_sandbox() -> Sandbox {
    let debian = DISTRIBUTIONS.iter().find(|d| d.name == "Debian 12");
    distribution_sandbox(debian.expect("Debian 12 is listed"))
}

#[test]
fn every_distribution_installs_joins_and_configures() {
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
        assert!(
            calls.contains(
                "adcli join --domain=example.test --domain-realm=EXAMPLE.TEST \
                 --domain-controller=10.200.0.1 --login-user=svc-join --stdin-password \
                 --computer-name=I0ABCD1234EF567 --host-fqdn=i0abcd1234ef567.example.test \
                 --domain-ou=OU=Servers,DC=example,DC=test"
            ),
            "{name}: {calls}"
        );
        assert!(
            calls.contains("adcli add-member") && calls.contains("gmsa-hosts I0ABCD1234EF567$")
        );
        assert!(calls.contains("sssd -D --logger=files"), "{name}: {calls}");
        // The password reaches adcli on stdin only: never in an argument, never printed.
        assert!(!calls.contains(PASSWORD), "{name}: password in argv");
        assert!(!out.contains(PASSWORD), "{name}: password printed");
        assert_eq!(
            sandbox.read("stdin.log"),
            format!("{PASSWORD}\n{PASSWORD}\n")
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
fn a_held_package_lock_is_waited_out() {
    let sandbox = debian_sandbox();
    sandbox.flag("lock-held", "");
    let (code, out) = sandbox.run(&join("linux-admins"));
    let calls = sandbox.calls();
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("attempt 1 of apt-get"), "{out}");
    assert!(calls.contains("sleep 10"), "{calls}");
}

#[test]
fn a_second_run_keeps_the_join_and_reads_no_password() {
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
fn failures_have_their_own_exit_codes() {
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
        ("", "admins,everyone", 10, "contains a comma"),
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
fn no_group_tag_means_no_directory_logins() {
    let sandbox = debian_sandbox();
    let (code, out) = sandbox.run(&join(""));
    assert_eq!(code, 0, "{out}");
    let sssd = sandbox.read("etc/sssd/sssd.conf");
    assert!(sssd.contains("access_provider = deny"), "{sssd}");
    assert!(!sssd.contains("simple_allow_groups"), "{sssd}");
}

#[test]
fn a_hostile_group_tag_is_written_as_data_and_never_runs() {
    let sandbox = debian_sandbox();
    let canary = sandbox.path("pwned");
    let c = canary.display();
    let hostile = format!("x$(touch {c})`touch {c}`';touch {c};'\"; touch {c} #");
    let (code, out) = sandbox.run(&join(&hostile));
    assert_eq!(code, 0, "{out}");
    assert!(!canary.exists(), "a tag value was executed");
    let sssd = sandbox.read("etc/sssd/sssd.conf");
    assert!(
        sssd.contains(&format!("simple_allow_groups = {hostile}\n")),
        "{sssd}"
    );
}

#[test]
fn leave_deletes_the_computer_and_tolerates_its_absence() {
    let sandbox = debian_sandbox();
    sandbox.preinstall("adcli");
    sandbox.preinstall("aws");
    let (code, out) = sandbox.run(&leave());
    assert_eq!(code, 0, "{out}");
    let calls = sandbox.calls();
    assert!(
        calls.contains(
            "adcli delete-computer --domain=example.test --domain-controller=10.200.0.1 \
             --login-user=svc-join --stdin-password I0ABCD1234EF567"
        ),
        "{calls}"
    );
    assert!(!calls.contains(PASSWORD) && !out.contains(PASSWORD));
    assert!(
        out.contains("deleted computer I0ABCD1234EF567 of i-0abcd1234ef567890"),
        "{out}"
    );

    sandbox.flag("object-gone", "");
    let (code, out) = sandbox.run(&leave());
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("nothing to delete"), "{out}");
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(24))]

    /// Any tag value (up to EC2's 256 characters): quotes, `$()`, backticks, `;`, unicode,
    /// newlines. The script either refuses it (exit 10: commas and control characters, which
    /// sssd.conf cannot hold) or writes it verbatim as the one allowed group; no command of
    /// the value ever runs.
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
        let refusable = value.chars().any(|c| c.is_control() || c == ',');
        if refusable {
            proptest::prop_assert_eq!(code, 10, "{}", out);
        } else {
            proptest::prop_assert_eq!(code, 0, "{}", out);
            let sssd = sandbox.read("etc/sssd/sssd.conf");
            let expected = format!("\nsimple_allow_groups = {value}\n");
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
