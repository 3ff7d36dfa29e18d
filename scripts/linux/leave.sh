#!/usr/bin/env bash
# adjoin: delete a terminated instance's computer object, run on the AD tools host.
#
# Parameters arrive as ADJOIN_<NAME>_B64='<base64>' assignments above this script and
# are decoded as data. The join user's password is read with the tools host's own
# role and given to adcli on stdin.
#
# Exit codes: 0 deleted (or already absent), 10 bad parameters, 11 adcli missing,
# 12 password unreadable, 13 domain controller unreachable, 14 delete refused.
set -euo pipefail
umask 077
export LC_ALL=C

log() { printf 'adjoin: %s\n' "$*"; }
fail() { local code=$1; shift; printf 'adjoin: error: %s\n' "$*" >&2; exit "$code"; }
param() {
  local var="ADJOIN_${1}_B64"
  printf '%s' "${!var:-}" | base64 -d
}

DOMAIN=$(param DOMAIN)
DC_IPS=$(param DC_IPS)
JOIN_USER=$(param JOIN_USER)
PASSWORD_SSM_PARAMETER=$(param PASSWORD_SSM_PARAMETER)
PASSWORD_SECRET_ARN=$(param PASSWORD_SECRET_ARN)
SECRET_REGION=$(param SECRET_REGION)
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

command -v aws >/dev/null || fail 12 "the AWS CLI is needed to read the join password"
if [ -n "$PASSWORD_SECRET_ARN" ]; then
  json=$(aws secretsmanager get-secret-value --region "$SECRET_REGION" --secret-id "$PASSWORD_SECRET_ARN" \
    --query SecretString --output text) || fail 12 "cannot read the join secret"
  PASSWORD=$(printf '%s' "$json" | sed -n 's/.*"password"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p')
  unset json
else
  PASSWORD=$(aws ssm get-parameter --region "$SECRET_REGION" --name "$PASSWORD_SSM_PARAMETER" \
    --with-decryption --query Parameter.Value --output text) || fail 12 "cannot read the join password parameter"
fi
[ -n "$PASSWORD" ] || fail 12 "the join password is empty"

rc=0
out=$(printf '%s' "$PASSWORD" | adcli delete-computer --domain="$DOMAIN" --domain-controller="$DC" \
  --login-user="$JOIN_USER" --stdin-password "$COMPUTER_NAME" 2>&1) || rc=$?
unset PASSWORD
case $rc in
  0) log "deleted computer $COMPUTER_NAME of $INSTANCE_ID from $DOMAIN" ;;
  *)
    if grep -qi 'no computer account' <<<"$out"; then
      log "computer $COMPUTER_NAME of $INSTANCE_ID is not in $DOMAIN: nothing to delete"
    elif [ "$rc" = 3 ]; then
      printf '%s\n' "$out" >&2; fail 13 "cannot reach or authenticate to domain controller $DC"
    else
      printf '%s\n' "$out" >&2; fail 14 "adcli delete-computer refused (exit $rc)"
    fi ;;
esac
