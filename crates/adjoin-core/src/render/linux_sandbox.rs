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
    "uname", "touch", "env", "cp", "awk", "mktemp", "flock", "python3",
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

/// adcli: `join` writes the computer's principal into the keytab named by
/// `--host-keytab` (one principal a line: the `klist` stand-in lists them). With
/// `echo-password`, a failing call prints what it read on stdin (the worst case: the
/// scripts must not pass it on).
const ADCLI: &str = r#"
opt() { local a; for a in "$@"; do case $a in --$want=*) printf '%s' "${a#*=}" ;; esac; done; }
stdin_fail() {
  if [ -e "$SANDBOX/echo-password" ]; then echo "adcli: bad password '$input'" >&2; fi
  exit "$1"
}
case $1 in
  info)
    [ ! -e "$SANDBOX/dc-down" ] || exit 3
    case $2 in *=10.200.0.1) echo "domain-controller = dc1.example.test" ;; *) echo "domain-controller = dc2.example.test" ;; esac ;;
  testjoin) [ -e "$SANDBOX/joined" ] || exit 3 ;;
  join)
    input=$(cat); printf '%s\n' "$input" >>"$SANDBOX/stdin.log"
    [ ! -e "$SANDBOX/refuse-join" ] || stdin_fail 6
    [ ! -e "$SANDBOX/join-exit" ] || stdin_fail "$(cat "$SANDBOX/join-exit")"
    want=computer-name; name=$(opt "$@"); want=host-keytab; keytab=$(opt "$@")
    printf '%s$@EXAMPLE.TEST\n' "$name" >"$keytab"
    touch "$SANDBOX/joined" ;;
  add-member)
    input=$(cat); printf '%s\n' "$input" >>"$SANDBOX/stdin.log"
    if [ -e "$SANDBOX/member-denied" ]; then echo "adcli: Insufficient permissions to modify group entry" >&2; stdin_fail 6; fi
    if [ -e "$SANDBOX/member-exists" ]; then echo "adcli: Attribute member already exists" >&2; exit 4; fi ;;
esac
"#;

/// `klist -k FILE`: the keytab's principals, as MIT klist lists them.
const KLIST: &str = r#"
keytab=${*: -1}
[ -e "$keytab" ] || { echo "klist: Key table file '$keytab' not found while starting keytab scan" >&2; exit 1; }
printf 'Keytab name: FILE:%s\nKVNO Principal\n---- ----------\n' "$keytab"
while IFS= read -r p; do printf '   2 %s\n' "$p"; done <"$keytab"
"#;

/// kinit: reads the password on stdin; `kinit-fails` makes it fail.
const KINIT: &str = r#"
cat >>"$SANDBOX/stdin.log"
[ ! -e "$SANDBOX/kinit-fails" ] || { echo "kinit: Password incorrect while getting initial credentials" >&2; exit 1; }
"#;

/// ldapsearch: prints `ldap-entry` (LDIF) when it exists.
const LDAPSEARCH: &str = r#"
[ ! -e "$SANDBOX/ldap-entry" ] || cat "$SANDBOX/ldap-entry"
"#;

/// ldapdelete: a plain delete of an object with children (`has-children`) fails with 66,
/// as AD and Samba answer; with the tree-delete control it succeeds.
const LDAPDELETE: &str = r#"
case " $* " in
  *" -e !1.2.840.113556.1.4.805 "*) ;;
  *) if [ -e "$SANDBOX/has-children" ]; then echo "ldap_delete: Operation not allowed on non-leaf (66)" >&2; exit 66; fi ;;
esac
"#;

/// The AWS CLI: prints `secret` when it exists, else the password.
const AWS: &str = r#"
if [ -e "$SANDBOX/secret" ]; then cat "$SANDBOX/secret"; else printf '%s\n' 'S3cret-Join-P@ss'; fi
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
            ("kinit", KINIT),
            ("aws", AWS),
            ("aws-bundled", AWS),
            ("unzip", UNZIP),
            ("curl", CURL),
        ] {
            sandbox.tool(&format!("pending/{name}"), body);
        }
        sandbox.tool("bin/klist", KLIST);
        sandbox.tool("bin/ldapsearch", LDAPSEARCH);
        sandbox.tool("bin/ldapdelete", LDAPDELETE);
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
    config_with("adJoinUserPwParam", "/adjoin/join-password")
}

/// The sandbox's account, its password referenced by `key` (`adJoinUserPwParam` or
/// `secretArn`).
fn config_with(key: &str, reference: &str) -> AccountConfig {
    let mut item = serde_json::json!({
        "accountId": "111122223333", "adJoinUserName": "svc-join",
        "dnsName": "example.test",
        "dnsIP1": "10.200.0.1", "dnsIP2": "10.200.0.4",
        "ouPath": "OU=Servers,DC=example,DC=test", "computerGroups": ["gmsa-hosts"]
    });
    item[key] = serde_json::json!(reference);
    let item: ConfigItem = serde_json::from_value(item).expect("object");
    AccountConfig::from_item(&item, &AccountId::parse("111122223333").expect("valid"))
        .expect("valid")
}

/// The owner stamp of the sandbox's instance.
const STAMP: &str = "adjoin 111122223333 eu-west-1 i-0abcd1234ef567890";

fn join(group: &str) -> Vec<String> {
    join_with(&config(), group)
}

fn join_with(config: &AccountConfig, group: &str) -> Vec<String> {
    let instance = test_instance(
        "i-0abcd1234ef567890",
        "running",
        Platform::Linux,
        &[(GROUP_TAG, group)],
    );
    let region = Region::parse("eu-west-1").expect("valid");
    join_command(&instance, config, &region, COMPUTER, "event-1").commands
}

fn leave() -> Vec<String> {
    leave_with(&config())
}

fn leave_with(config: &AccountConfig) -> Vec<String> {
    let tools = test_instance("i-0fedcba9876543210", "running", Platform::Linux, &[]);
    let region = Region::parse("eu-west-1").expect("valid");
    let id = InstanceId::parse("i-0abcd1234ef567890").expect("valid");
    leave_command(&tools, config, &region, &region, &id, COMPUTER, "event-2").commands
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

/// The tools host's sandbox: adcli, kinit, ldap-utils and the AWS CLI present.
fn tools_sandbox() -> Sandbox {
    let sandbox = debian_sandbox();
    for tool in ["adcli", "aws", "kinit"] {
        sandbox.preinstall(tool);
    }
    sandbox
}

const OUR_DN: &str = "CN=I0ABCD1234EF567,OU=Servers,DC=example,DC=test";

fn entry(dn: &str, descriptions: &[&str]) -> String {
    let mut ldif = format!("dn: {dn}\n");
    for d in descriptions {
        ldif.push_str(&format!("description: {d}\n"));
    }
    ldif
}

#[test]
fn leave_deletes_its_own_object_with_kerberos_and_tolerates_its_absence() {
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
fn leave_compares_the_ou_without_case_or_blanks() {
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
fn leave_deletes_child_objects_with_the_tree_delete_control() {
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
fn leave_refuses_a_same_named_object_that_is_not_ours() {
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
fn a_cloned_keytab_of_another_computer_is_not_already_joined() {
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

/// Password-like values, the hard ones included.
const SECRETS: &[&str] = &[
    "S3cret-Join-P@ss",
    "pass word with  spaces",
    "it's \"quoted\" $(touch CANARY) `touch CANARY` ${HOME} \\ %s %n",
];

/// Every error path after the password is read, and the read itself: the value, and its
/// base64, appear nowhere in what the script prints (or in any argument).
#[test]
fn no_error_path_prints_the_password() {
    let arn = "arn:aws:secretsmanager:eu-west-1:111122223333:secret:ad-join-AbCdEf";
    let secrets_manager = config_with("secretArn", arn);
    for secret in SECRETS {
        let json = |v: &str| serde_json::json!({ "password": v }).to_string();
        let cases: Vec<(&str, String, &[&str], i32, &str)> = vec![
            (
                "not JSON",
                (*secret).to_owned(),
                &[],
                12,
                "the join secret is not JSON",
            ),
            (
                "cut JSON",
                format!("{{\"password\": \"{secret}"),
                &[],
                12,
                "not JSON",
            ),
            (
                "no password key",
                serde_json::json!({ "pass": secret }).to_string(),
                &[],
                12,
                "no \"password\" string",
            ),
            (
                "not a string",
                serde_json::json!({ "password": [secret] }).to_string(),
                &[],
                12,
                "no \"password\" string",
            ),
            ("empty", json(""), &[], 12, "the join password is empty"),
            (
                "adcli exit 3",
                json(secret),
                &["join-exit=3", "echo-password"],
                13,
                "adcli exit 3",
            ),
            (
                "adcli exit 6",
                json(secret),
                &["refuse-join", "echo-password"],
                14,
                "adcli join refused (exit 6)",
            ),
            (
                "adcli exit 9",
                json(secret),
                &["join-exit=9", "echo-password"],
                14,
                "adcli join refused (exit 9)",
            ),
            (
                "add-member",
                json(secret),
                &["member-denied", "echo-password"],
                16,
                "not added to group(s)",
            ),
        ];
        for (case, content, flags, expected, says) in cases {
            let sandbox = debian_sandbox();
            let canary = sandbox.path("CANARY");
            sandbox.flag("secret", &content);
            for flag in flags {
                match flag.split_once('=') {
                    Some((name, value)) => sandbox.flag(name, value),
                    None => sandbox.flag(flag, ""),
                }
            }
            let (code, out) = sandbox.run(&join_with(&secrets_manager, "g"));
            assert_eq!(code, expected, "{case} {secret:?}: {out}");
            assert!(out.contains(says), "{case} {secret:?}: {out}");
            assert_absent(secret, &out, &sandbox.calls(), case);
            assert!(!canary.exists(), "{case}: the secret was executed");
        }
        // The tools host: kinit refusing the password.
        let sandbox = tools_sandbox();
        sandbox.flag("secret", &json(secret));
        sandbox.flag("kinit-fails", "");
        let (code, out) = sandbox.run(&leave_with(&secrets_manager));
        assert_eq!(code, 13, "{out}");
        assert!(
            out.contains("cannot authenticate as svc-join@EXAMPLE.TEST"),
            "{out}"
        );
        assert_absent(secret, &out, &sandbox.calls(), "kinit");
        assert!(
            sandbox.read("stdin.log").contains(secret),
            "kinit got it on stdin"
        );
    }
}

fn assert_absent(secret: &str, out: &str, calls: &str, case: &str) {
    use base64::Engine as _;
    let encoded = base64::engine::general_purpose::STANDARD.encode(secret);
    let trimmed = secret.trim();
    for text in [out, calls] {
        assert!(!text.contains(trimmed), "{case}: {secret:?} in {text}");
        assert!(
            !text.contains(&encoded),
            "{case}: base64 of {secret:?} in {text}"
        );
    }
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
