#!/usr/bin/env bash
# adjoin: stage a join, run on the AD tools host: create the instance's computer account
# with a one-time password, so that the instance joins with that password alone and
# never needs the join user's.
#
# Parameters arrive as ADJOIN_<NAME>_B64='<base64>' assignments above this script and
# are decoded as data. Kerberos and LDAP as the join user, and what "ours" means, come
# from tools.sh, which the service sends ahead of this script (after common.sh).
#
# The one-time password is in the SecureString parameter OTP_SSM_PARAMETER (Region
# OTP_REGION), written by the service for this attempt: it is read with the tools host's
# own role, the parameter deleted at once, and the password sent to the directory only
# inside the LDAP request (stdin to ldapadd/ldapmodify, on the sealed GSSAPI connection;
# never in a command's arguments).
#
# A new account is created in one LDAP add, with OWNER_STAMP as its description and the
# one-time password, so it never exists unstamped or with a guessable password. An
# account of ours that exists (an earlier attempt, or an instance that joined before) is
# given the new password (its old keytab stops working); a same-named object that is
# not ours (another description, or outside the OU) is left alone (exit 19). The account
# is then added to each COMPUTER_GROUPS group.
#
# Exit codes: 0 staged, 10 bad parameters, 11 adcli, kinit, ldap-utils or iconv missing,
# 12 a password unreadable, 13 domain controller unreachable or the join user cannot
# authenticate, 14 the account could not be created or given its password, 16 staged
# but not added to a computerGroups group, 19 a computer of that name exists and is not
# this instance's: not taken over.

params COMPUTER_GROUPS OTP_SSM_PARAMETER OTP_REGION
require "the one-time password parameter and its Region" OTP_SSM_PARAMETER OTP_REGION
command -v iconv >/dev/null || fail 11 "iconv is not installed on the tools host"

# ldap_value TEXT: TEXT escaped for an LDAP filter (RFC 4515): data, never filter syntax.
ldap_value() { printf '%s' "$1" | sed -e 's/\\/\\5c/g' -e 's/\*/\\2a/g' -e 's/(/\\28/g' -e 's/)/\\29/g'; }

# unicode_pwd PASSWORD: the LDAP unicodePwd value (the quoted password in UTF-16LE,
# base64 for LDIF).
unicode_pwd() { printf '"%s"' "$1" | iconv -f UTF-8 -t UTF-16LE | base64 -w 0; }

read_one_time_password

find_computer
rc=0
if [ -z "$DN" ]; then
  DN="CN=$COMPUTER_NAME,${OU_PATH:-CN=Computers,$BASE_DN}"
  printf 'dn: %s\nobjectClass: computer\nsAMAccountName: %s$\nuserAccountControl: 4096\ndNSHostName: %s\ndescription: %s\nunicodePwd:: %s\n' \
    "$DN" "$COMPUTER_NAME" "${COMPUTER_NAME,,}.$DOMAIN" "$OWNER_STAMP" "$(unicode_pwd "$OTP")" |
    ldapadd "${LDAP[@]}" >/dev/null 2>"$WORK/err" || rc=$?
  what="created computer account $COMPUTER_NAME ($DN)"
else
  why=$(not_ours_because)
  if [ -n "$why" ]; then
    report_not_ours "$why"
    fail 19 "computer $COMPUTER_NAME exists and is not this instance's; not taken over"
  fi
  printf 'dn: %s\nchangetype: modify\nreplace: description\ndescription: %s\n-\nreplace: unicodePwd\nunicodePwd:: %s\n-\n' \
    "$DN" "$OWNER_STAMP" "$(unicode_pwd "$OTP")" |
    ldapmodify "${LDAP[@]}" >/dev/null 2>"$WORK/err" || rc=$?
  what="gave the computer account $COMPUTER_NAME ($DN) a new one-time password"
fi
unset OTP PASSWORD
if [ "$rc" != 0 ]; then
  cat "$WORK/err" >&2
  fail 14 "cannot stage computer account $COMPUTER_NAME in $DOMAIN (LDAP exit $rc)"
fi
log "$what"

# The computer groups (e.g. the group allowed to read a gMSA password). LDAP 20 (Samba:
# 68): already a member.
failures=()
while IFS= read -r group; do
  [ -n "$group" ] || continue
  group_dn=$(ldapsearch -LLL -o ldif-wrap=no "${LDAP[@]}" -b "$BASE_DN" \
    "(&(objectClass=group)(sAMAccountName=$(ldap_value "$group")))" dn 2>/dev/null |
    sed -n 's/^dn: //p' | head -n 1) || group_dn=""
  if [ -z "$group_dn" ]; then
    printf 'adjoin: group %s not found in %s\n' "$group" "$DOMAIN" >&2
    failures+=("$group")
    continue
  fi
  rc=0
  printf 'dn: %s\nchangetype: modify\nadd: member\nmember: %s\n-\n' "$group_dn" "$DN" |
    ldapmodify "${LDAP[@]}" >/dev/null 2>"$WORK/err" || rc=$?
  case $rc in
    0) log "added $COMPUTER_NAME to group '$group'" ;;
    20|68) log "$COMPUTER_NAME is already in group '$group'" ;;
    *) cat "$WORK/err" >&2; failures+=("$group") ;;
  esac
done <<<"$COMPUTER_GROUPS"
[ "${#failures[@]}" = 0 ] || fail 16 "staged, but not added to group(s): ${failures[*]}"

log "staged computer account $COMPUTER_NAME of $INSTANCE_ID in $DOMAIN"
