//! The scratch machine: a directory with `bin/` (real tools and stand-ins), `etc/` and
//! the scripts' state, where the rendered commands run as SSM Agent runs them.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Real tools the scripts use; everything else on PATH is a stand-in.
pub(crate) const REAL_TOOLS: &[&str] = &[
    "bash", "sh", "base64", "sed", "head", "cat", "chmod", "mkdir", "rm", "mv", "tr", "grep",
    "uname", "touch", "env", "cp", "awk", "mktemp", "flock", "python3", "iconv", "paste", "cut",
    "timeout",
];

/// Logs its name and arguments; the common head of every stand-in.
pub(crate) const LOG_CALL: &str = r#"#!/bin/bash
printf '%s\n' "${0##*/} $*" >>"$SANDBOX/calls.log"
"#;

/// A package manager: fails once while `lock-held` exists, fails for packages listed in
/// `unavailable`, and "installs" a package by moving its stand-in from `pending/` to `bin/`.
pub(crate) const PACKAGE_MANAGER: &str = r#"
if [ -e "$SANDBOX/lock-held" ]; then rm "$SANDBOX/lock-held"; exit 100; fi
for pkg in "$@"; do
  if grep -qx -- "$pkg" "$SANDBOX/unavailable" 2>/dev/null; then exit 100; fi
done
for pkg in "$@"; do
  case $pkg in
    adcli) tool=adcli ;; sssd) tool=sssd ;; unzip) tool=unzip ;; curl) tool=curl ;;
    dnsutils|bind-utils) tool=nsupdate ;;
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
pub(crate) const ADCLI: &str = r#"
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
  show-computer)
    input=$(cat); printf '%s\n' "$input" >>"$SANDBOX/stdin.log"
    name=${*: -1}
    if [ -e "$SANDBOX/computer-description" ]; then
      printf 'sAMAccountName:\n %s$\ndescription:\n %s\n' "$name" "$(cat "$SANDBOX/computer-description")"
    else
      echo "adcli: couldn't read data for $name: No computer account for $name\$ exists" >&2; exit 5
    fi ;;
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
pub(crate) const KLIST: &str = r#"
keytab=${*: -1}
[ -e "$keytab" ] || { echo "klist: Key table file '$keytab' not found while starting keytab scan" >&2; exit 1; }
printf 'Keytab name: FILE:%s\nKVNO Principal\n---- ----------\n' "$keytab"
while IFS= read -r p; do printf '   2 %s\n' "$p"; done <"$keytab"
"#;

/// kinit: reads the password on stdin; `kinit-fails` makes it fail.
pub(crate) const KINIT: &str = r#"
cat >>"$SANDBOX/stdin.log"
[ ! -e "$SANDBOX/kinit-fails" ] || { echo "kinit: Password incorrect while getting initial credentials" >&2; exit 1; }
"#;

/// ldapsearch: prints `ldap-entry` (LDIF) when it exists; for a group, `group-entry`.
pub(crate) const LDAPSEARCH: &str = r#"
case " $* " in
  *"(objectClass=group)"*) [ ! -e "$SANDBOX/group-entry" ] || cat "$SANDBOX/group-entry"; exit 0 ;;
esac
[ ! -e "$SANDBOX/ldap-entry" ] || cat "$SANDBOX/ldap-entry"
"#;

/// ldapdelete: a plain delete of an object with children (`has-children`) fails with 66,
/// as AD and Samba answer; with the tree-delete control it succeeds.
pub(crate) const LDAPDELETE: &str = r#"
case " $* " in
  *" -e !1.2.840.113556.1.4.805 "*) ;;
  *) if [ -e "$SANDBOX/has-children" ]; then echo "ldap_delete: Operation not allowed on non-leaf (66)" >&2; exit 66; fi ;;
esac
"#;

/// The AWS CLI: deletes parameters; reads a staged join's one-time password parameter
/// (`/adjoin/otp/…`, `/adjoin/stage/…`) as `otp` when it exists, else
/// [`crate::staged::OTP`]; any other secret as `secret` when it exists, else the join
/// password.
pub(crate) const AWS: &str = r#"
case " $* " in
  *" delete-parameter "*) exit 0 ;;
  *" --name /adjoin/otp/"*|*" --name /adjoin/stage/"*)
    if [ -e "$SANDBOX/otp" ]; then cat "$SANDBOX/otp"; else printf '%s\n' 'Otp1Only0nceAbcdefGhijkLmnop2345'; fi
    exit 0 ;;
esac
if [ -e "$SANDBOX/secret" ]; then cat "$SANDBOX/secret"; else printf '%s\n' 'S3cret-Join-P@ss'; fi
"#;

/// ldapadd and ldapmodify: the LDIF they read goes to `ldif.log`; `ldap-add-exit` and
/// `ldap-modify-exit` make them fail with that code.
pub(crate) const LDAPADD: &str = r#"
cat >>"$SANDBOX/ldif.log"
[ ! -e "$SANDBOX/ldap-add-exit" ] || exit "$(cat "$SANDBOX/ldap-add-exit")"
"#;
pub(crate) const LDAPMODIFY: &str = r#"
cat >>"$SANDBOX/ldif.log"
[ ! -e "$SANDBOX/ldap-modify-exit" ] || exit "$(cat "$SANDBOX/ldap-modify-exit")"
"#;

/// nsupdate: reads the update on stdin into `nsupdate.log`.
pub(crate) const NSUPDATE: &str = r#"
cat >>"$SANDBOX/nsupdate.log"
"#;

/// The bundle's downloader and unpacker; the unpacked installer puts `aws` on PATH.
pub(crate) const CURL: &str = r#"
while [ $# -gt 0 ]; do case $1 in -o) out=$2; shift ;; esac; shift; done
: >"$out"
"#;
pub(crate) const UNZIP: &str = r#"
while [ $# -gt 0 ]; do case $1 in -d) dest=$2; shift ;; esac; shift; done
mkdir -p "$dest/aws"
printf '#!/bin/bash\nprintf "%%s\\n" "$0 $*" >>"$SANDBOX/calls.log"\ncp "$SANDBOX/pending/aws-bundled" "$SANDBOX/bin/aws"\n' >"$dest/aws/install"
chmod 755 "$dest/aws/install"
"#;

pub(crate) struct Sandbox {
    pub(crate) dir: tempfile::TempDir,
}

impl Sandbox {
    pub(crate) fn new(os_release: &str) -> Self {
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
            ("nsupdate", NSUPDATE),
            ("unzip", UNZIP),
            ("curl", CURL),
        ] {
            sandbox.tool(&format!("pending/{name}"), body);
        }
        sandbox.tool("bin/klist", KLIST);
        sandbox.tool("bin/ldapsearch", LDAPSEARCH);
        sandbox.tool("bin/ldapdelete", LDAPDELETE);
        sandbox.tool("bin/ldapadd", LDAPADD);
        sandbox.tool("bin/ldapmodify", LDAPMODIFY);
        // Nothing resolves the directory's names; pauses are only logged.
        sandbox.tool("bin/getent", "exit 2\n");
        sandbox.tool("bin/sleep", "");
        sandbox
    }

    pub(crate) fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes an executable stand-in that logs its call, then runs `body`.
    pub(crate) fn tool(&self, relative: &str, body: &str) {
        let path = self.path(relative);
        fs::write(&path, format!("{LOG_CALL}{body}")).expect("write");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Makes a stand-in that waits in `pending/` (installed by a package) present now.
    pub(crate) fn preinstall(&self, name: &str) {
        fs::rename(
            self.path(&format!("pending/{name}")),
            self.path(&format!("bin/{name}")),
        )
        .expect("preinstall");
    }

    pub(crate) fn flag(&self, name: &str, content: &str) {
        fs::write(self.path(name), content).expect("write");
    }

    /// Runs the rendered commands as SSM Agent does (a script file run by `sh`).
    pub(crate) fn run(&self, commands: &[String]) -> (i32, String) {
        self.run_on(commands, None)
    }

    /// [`Sandbox::run`] on the instance `id`, as SSM Agent tells the script
    /// (`AWS_SSM_INSTANCE_ID`).
    pub(crate) fn run_on(&self, commands: &[String], id: Option<&str>) -> (i32, String) {
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
            .envs(id.map(|id| ("AWS_SSM_INSTANCE_ID", id)))
            .output()
            .expect("run the script");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    pub(crate) fn read(&self, relative: &str) -> String {
        fs::read_to_string(self.path(relative)).unwrap_or_default()
    }

    pub(crate) fn calls(&self) -> String {
        self.read("calls.log")
    }
}

pub(crate) fn which(tool: &str) -> PathBuf {
    ["/usr/bin", "/bin", "/usr/sbin", "/sbin"]
        .iter()
        .map(|d| Path::new(d).join(tool))
        .find(|p| p.exists())
        .unwrap_or_else(|| panic!("{tool} is not installed"))
}
