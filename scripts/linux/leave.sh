#!/usr/bin/env bash
# adjoin: delete a terminated instance's computer object, run on the AD tools host.
#
# Parameters arrive as ADJOIN_<NAME>_B64='<base64>' assignments above this script and
# are decoded as data. The join user's password is read with the tools host's own
# role and given to adcli on stdin.
#
# Exit codes: 0 deleted (or already absent), 10 bad parameters, 11 adcli missing,
# 12 password unreadable, 13 domain controller unreachable, 14 delete refused.
# Helpers (log, fail, param, read_password) and the shell options come from common.sh,
# which the service sends ahead of this script.

DOMAIN=$(param DOMAIN)
DC_IPS=$(param DC_IPS)
JOIN_USER=$(param JOIN_USER)
COMPUTER_NAME=$(param COMPUTER_NAME)
INSTANCE_ID=$(param INSTANCE_ID)

if [ -z "$DOMAIN" ] || [ -z "$JOIN_USER" ] || [ -z "$COMPUTER_NAME" ]; then
  fail 10 "missing parameter (domain, join user and computer name are required)"
fi
case $COMPUTER_NAME in
  *[!A-Za-z0-9-]*) fail 10 "computer name '$COMPUTER_NAME' is not a NetBIOS name" ;;
esac
read -r -a DCS <<<"$DC_IPS"
[ "${#DCS[@]}" -ge 1 ] || fail 10 "no domain controller IP"
DC=${DCS[0]}
command -v adcli >/dev/null || fail 11 "adcli is not installed on the tools host"

read_password

rc=0
out=$(printf '%s' "$PASSWORD" | adcli delete-computer --domain="$DOMAIN" --domain-controller="$DC" \
  --login-user="$JOIN_USER" --stdin-password "$COMPUTER_NAME" 2>&1) || rc=$?
unset PASSWORD
case $rc in
  0) log "deleted computer $COMPUTER_NAME of $INSTANCE_ID from $DOMAIN" ;;
  *)
    if grep -qi 'no computer account' <<<"$out"; then
      log "computer $COMPUTER_NAME of $INSTANCE_ID is not in $DOMAIN: nothing to delete"
    elif [ "$rc" = 3 ] || [ "$rc" = 4 ]; then
      printf '%s\n' "$out" >&2; fail 13 "cannot reach or authenticate to domain controller $DC"
    else
      printf '%s\n' "$out" >&2; fail 14 "adcli delete-computer refused (exit $rc)"
    fi ;;
esac
