#!/usr/bin/env bash
# adjoin: delete a terminated instance's computer object, run on the AD tools host.
#
# Parameters arrive as ADJOIN_<NAME>_B64='<base64>' assignments above this script and
# are decoded as data. The join user's password is read with the tools host's own role
# and given to kinit on stdin, into a private ticket cache; LDAP then runs with Kerberos
# (GSSAPI, signed) against the domain controller.
#
# Only the instance's own object is deleted: the computer named COMPUTER_NAME whose
# description is exactly OWNER_STAMP ("adjoin <account> <region> <instance-id>", written
# at the join) and, when OU_PATH is set, which is inside OU_PATH. A same-named object
# that is not ours is left in place and reported (exit 15). The object is deleted with
# its child objects (e.g. BitLocker recovery information): a plain LDAP delete first,
# then, for an object with children, the tree-delete control (on Windows AD the join user
# then needs the "Delete subtree" right on computer objects).
#
# Exit codes: 0 deleted (or already absent), 10 bad parameters, 11 adcli, kinit or
# ldap-utils missing, 12 password unreadable, 13 domain controller unreachable or the
# join user cannot authenticate, 14 delete refused, 15 not ours: a computer of that name
# exists but lacks the owner stamp or is outside the OU (left in place).
# Helpers (log, fail, params, require, read_dcs, dc_name, read_password, redact) and the shell options come from
# common.sh, which the service sends ahead of this script.

params DOMAIN REALM DC_IPS JOIN_USER COMPUTER_NAME INSTANCE_ID OU_PATH OWNER_STAMP
ETC=${ADJOIN_ETC:-/etc}

require "domain, join user, computer name and owner stamp" DOMAIN JOIN_USER COMPUTER_NAME OWNER_STAMP
case $COMPUTER_NAME in
  *[!A-Za-z0-9-]*) fail 10 "computer name '$COMPUTER_NAME' is not a NetBIOS name" ;;
esac
case $DOMAIN in
  *[!A-Za-z0-9.-]*) fail 10 "domain '$DOMAIN' is not a DNS name" ;;
esac
REALM=${REALM:-${DOMAIN^^}}
read_dcs
DC=${DCS[0]}
for tool in adcli kinit ldapsearch ldapdelete; do
  command -v "$tool" >/dev/null || fail 11 "$tool is not installed on the tools host (adcli, krb5 and ldap-utils are needed)"
done

# norm_dn DN: lower case, no blanks around ',' and '=' (for comparing DNs).
norm_dn() { printf '%s' "$1" | sed -E 's/[[:space:]]*([,=])[[:space:]]*/\1/g' | tr '[:upper:]' '[:lower:]'; }

# The domain controller's host name (Kerberos needs it: ldap/<name>), from CLDAP.
DC_NAME=$(dc_name "$DC") || DC_NAME=""
case $DC_NAME in
  ""|*[!A-Za-z0-9.-]*) fail 13 "domain controller $DC does not answer for $DOMAIN" ;;
esac

# The tools host may not resolve the directory's names: the DC's name is pinned in a
# block of /etc/hosts owned by this script, one per domain, rewritten on every run.
pin_dc_name() {
  local hosts=$ETC/hosts begin="# adjoin-leave: begin $DOMAIN" end="# adjoin-leave: end $DOMAIN"
  # shellcheck disable=SC2094  # fd 9 only holds the lock; the file is rewritten in place
  (
    flock 9 2>/dev/null || true   # concurrent leaves on this host take turns
    awk -v b="$begin" -v e="$end" '$0 == b { skip = 1 } !skip { print } $0 == e { skip = 0 }' \
      "$hosts" >"$hosts.adjoin-new" && cat "$hosts.adjoin-new" >"$hosts" && rm -f "$hosts.adjoin-new"
    getent hosts "$DC_NAME" >/dev/null ||
      printf '%s\n%s %s\n%s\n' "$begin" "$DC" "$DC_NAME" "$end" >>"$hosts"
  ) 9<"$hosts"
}
pin_dc_name || fail 13 "cannot pin the name of domain controller $DC_NAME in $ETC/hosts"

# A private Kerberos configuration and ticket cache, removed on exit.
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
{
  printf '[libdefaults]\n    rdns = false\n    dns_canonicalize_hostname = false\n'
  printf '    dns_lookup_kdc = false\n[realms]\n    %s = {\n        kdc = %s\n    }\n' "$REALM" "$DC"
  printf '[domain_realm]\n    %s = %s\n    .%s = %s\n' "${DC_NAME,,}" "$REALM" "$DOMAIN" "$REALM"
} >"$WORK/krb5.conf"
export KRB5_CONFIG="$WORK/krb5.conf" KRB5CCNAME="FILE:$WORK/ccache"
export LDAPCONF=/dev/null LDAPRC="$WORK/ldaprc" LDAPSASL_NOCANON=on

read_password
if ! printf '%s\n' "$PASSWORD" | kinit "$JOIN_USER@$REALM" >/dev/null 2>&1; then
  unset PASSWORD
  fail 13 "cannot authenticate as $JOIN_USER@$REALM at domain controller $DC"
fi
unset PASSWORD

LDAP=(-Q -Y GSSAPI -H "ldap://$DC_NAME")
BASE_DN=DC=${DOMAIN//./,DC=}

# The computer object: DN and descriptions (LDIF, unwrapped; a value that is not plain
# text comes base64-encoded as "attr:: ...").
rc=0
found=$(ldapsearch -LLL -o ldif-wrap=no "${LDAP[@]}" -b "$BASE_DN" \
  "(&(objectClass=computer)(sAMAccountName=${COMPUTER_NAME}\$))" dn description 2>"$WORK/err") || rc=$?
if [ "$rc" != 0 ]; then
  cat "$WORK/err" >&2
  fail 13 "cannot search $DOMAIN for computer $COMPUTER_NAME (ldapsearch exit $rc)"
fi
dn_line=$(grep -m 1 '^dn::\? ' <<<"$found" || true)
if [ -z "$dn_line" ]; then
  log "computer $COMPUTER_NAME of $INSTANCE_ID is not in $DOMAIN: nothing to delete"
  exit 0
fi
case $dn_line in
  "dn:: "*) DN=$(printf '%s' "${dn_line#dn:: }" | base64 -d) ;;
  *) DN=${dn_line#dn: } ;;
esac
descriptions=$(grep -c '^description::\? ' <<<"$found" || true)
ours=yes why=""
if [ "$descriptions" != 1 ] || ! grep -qxF "description: $OWNER_STAMP" <<<"$found"; then
  ours="" why="its description is not \"$OWNER_STAMP\""
fi
if [ -n "$OU_PATH" ]; then
  dn_n=$(norm_dn "$DN") ou_n=$(norm_dn "$OU_PATH")
  case $dn_n in
    # Inside the OU: the DN ends in ",<OU>", and that comma separates RDNs (it is not an
    # escaped comma inside a name such as "OU=x\,OU=Servers").
    *[!\\],"$ou_n") ;;
    *) ours="" why="${why:+$why, and }it is outside $OU_PATH" ;;
  esac
fi
if [ -z "$ours" ]; then
  printf 'adjoin: computer %s (%s) is not the object of %s: %s; left in place\n' \
    "$COMPUTER_NAME" "$DN" "$INSTANCE_ID" "$why"
  grep '^description::\? ' <<<"$found" | sed 's/^/adjoin:   found /' || printf 'adjoin:   found no description\n'
  fail 15 "not ours: computer $COMPUTER_NAME was not deleted"
fi

# Delete: a leaf first; an object with children (LDAP 66, notAllowedOnNonLeaf) with the
# tree-delete control (1.2.840.113556.1.4.805). 32: already gone.
delete() { ldapdelete "${LDAP[@]}" "$@" "$DN" 2>"$WORK/err"; }
rc=0
delete || rc=$?
if [ "$rc" = 66 ]; then
  rc=0
  delete -e '!1.2.840.113556.1.4.805' || rc=$?
  [ "$rc" != 0 ] || log "deleted the child objects of $COMPUTER_NAME with it"
fi
case $rc in
  0) log "deleted computer $COMPUTER_NAME ($DN) of $INSTANCE_ID from $DOMAIN" ;;
  32) log "computer $COMPUTER_NAME of $INSTANCE_ID is not in $DOMAIN: nothing to delete" ;;
  *) cat "$WORK/err" >&2; fail 14 "LDAP delete of $DN refused (ldapdelete exit $rc)" ;;
esac
