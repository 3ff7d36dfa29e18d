#!/usr/bin/env bash
# adjoin: helpers shared by the AD tools host's scripts (stage.sh, leave.sh). The service
# sends this file after common.sh and before the script.
#
# The join user's password is read with the tools host's own role and given to kinit on
# stdin, into a private ticket cache; LDAP then runs with that ticket (GSSAPI, sealed)
# against one domain controller. Nothing here prints a password.
#
# A command for several instances (an INSTANCES table) runs once per instance: see
# for_each_row in common.sh.

for_each_row
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
for tool in adcli kinit ldapsearch ldapmodify ldapdelete; do
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
# block of /etc/hosts owned by these scripts, one per domain, rewritten on every run.
pin_dc_name() {
  local hosts=$ETC/hosts begin="# adjoin-leave: begin $DOMAIN" end="# adjoin-leave: end $DOMAIN"
  # shellcheck disable=SC2094  # fd 9 only holds the lock; the file is rewritten in place
  (
    flock 9 2>/dev/null || true   # concurrent commands on this host take turns
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

# The join user's ticket; the password is forgotten right after.
read_password
if ! printf '%s\n' "$PASSWORD" | kinit "$JOIN_USER@$REALM" >/dev/null 2>&1; then
  unset PASSWORD
  fail 13 "cannot authenticate as $JOIN_USER@$REALM at domain controller $DC"
fi
unset PASSWORD

LDAP=(-Q -Y GSSAPI -H "ldap://$DC_NAME")
BASE_DN=DC=${DOMAIN//./,DC=}

# find_computer: DN (empty when there is none) and FOUND (its LDIF: dn and descriptions,
# unwrapped; a value that is not plain text comes base64-encoded as "attr:: ...") of
# the computer COMPUTER_NAME. Exit 13 when the directory cannot be searched.
find_computer() {
  local rc=0 dn_line
  FOUND=$(ldapsearch -LLL -o ldif-wrap=no "${LDAP[@]}" -b "$BASE_DN" \
    "(&(objectClass=computer)(sAMAccountName=${COMPUTER_NAME}\$))" dn description 2>"$WORK/err") || rc=$?
  if [ "$rc" != 0 ]; then
    cat "$WORK/err" >&2
    fail 13 "cannot search $DOMAIN for computer $COMPUTER_NAME (ldapsearch exit $rc)"
  fi
  DN=""
  dn_line=$(grep -m 1 '^dn::\? ' <<<"$FOUND" || true)
  case $dn_line in
    "") ;;
    "dn:: "*) DN=$(printf '%s' "${dn_line#dn:: }" | base64 -d) ;;
    *) DN=${dn_line#dn: } ;;
  esac
}

# not_ours_because: why the object found is not this instance's (empty: it is ours).
# Ours: its one description is exactly OWNER_STAMP and, when OU_PATH is set, it lies
# inside OU_PATH.
not_ours_because() {
  local why="" descriptions dn_n ou_n
  descriptions=$(grep -c '^description::\? ' <<<"$FOUND" || true)
  if [ "$descriptions" != 1 ] || ! grep -qxF "description: $OWNER_STAMP" <<<"$FOUND"; then
    why="its description is not \"$OWNER_STAMP\""
  fi
  if [ -n "$OU_PATH" ]; then
    dn_n=$(norm_dn "$DN") ou_n=$(norm_dn "$OU_PATH")
    case $dn_n in
      # Inside the OU: the DN ends in ",<OU>", and that comma separates RDNs (it is not an
      # escaped comma inside a name such as "OU=x\,OU=Servers").
      *[!\\],"$ou_n") ;;
      *) why="${why:+$why, and }it is outside $OU_PATH" ;;
    esac
  fi
  printf '%s' "$why"
}

# report_not_ours WHY: what was found instead of this instance's object.
report_not_ours() {
  printf 'adjoin: computer %s (%s) is not the object of %s: %s; left in place\n' \
    "$COMPUTER_NAME" "$DN" "$INSTANCE_ID" "$1"
  grep '^description::\? ' <<<"$FOUND" | sed 's/^/adjoin:   found /' || printf 'adjoin:   found no description\n'
}

# remove_dns_record: deletes the A record COMPUTER_NAME.DOMAIN (what sssd registered for
# the instance) with nsupdate as the join user, at the domain controller. Best effort:
# logs what became of it.
remove_dns_record() {
  local fqdn=${COMPUTER_NAME,,}.$DOMAIN out rc=0 left
  if ! command -v nsupdate >/dev/null; then
    log "nsupdate is not installed (dnsutils or bind-utils): the DNS record $fqdn was not removed"
    return 0
  fi
  out=$(printf 'server %s\nzone %s\nupdate delete %s. A\nsend\n' "$DC_NAME" "$DOMAIN" "$fqdn" |
    timeout 30 nsupdate -g 2>&1) || rc=$?
  # What the DC answers now decides (Samba applies the update, then may sign its answer
  # in a way nsupdate rejects: "tsig verify failure").
  if command -v dig >/dev/null; then
    left=$(dig +short +time=3 +tries=1 "@$DC" "$fqdn" A 2>/dev/null | grep -v '^;' || true)
    if [ -z "$left" ]; then
      log "removed the DNS record $fqdn (the DC has none now)"
    else
      log "could not remove the DNS record $fqdn (still $(paste -sd, <<<"$left")): $(head -n 1 <<<"$out") (the join user needs the right to delete it)"
    fi
  elif [ "$rc" = 0 ]; then
    log "removed the DNS record $fqdn (if there was one)"
  else
    log "could not remove the DNS record $fqdn: $(head -n 1 <<<"$out") (the join user needs the right to delete it)"
  fi
}

# delete_computer: deletes DN with its child objects: a leaf first; an object with
# children (LDAP 66, notAllowedOnNonLeaf) with the tree-delete control
# (1.2.840.113556.1.4.805). Returns ldapdelete's exit status (32: already gone).
delete_computer() {
  local rc=0
  ldapdelete "${LDAP[@]}" "$DN" 2>"$WORK/err" || rc=$?
  if [ "$rc" = 66 ]; then
    rc=0
    ldapdelete "${LDAP[@]}" -e '!1.2.840.113556.1.4.805' "$DN" 2>"$WORK/err" || rc=$?
    [ "$rc" != 0 ] || log "deleted the child objects of $COMPUTER_NAME with it"
  fi
  return "$rc"
}
