#!/usr/bin/env bash
# adjoin: helpers shared by the Linux join and leave scripts. The service sends this
# file ahead of each script, after the ADJOIN_<NAME>_B64='<base64>' parameter block.
#
# Secrets: the join password (or a staged join's one-time password) is read into
# PASSWORD (and OTP) and handed to tools on stdin only (or, on the tools host, to
# `adcli preset-computer`, which takes the one-time password in its arguments).
# No error path prints it: messages are fixed text, and the output of a tool that was
# given the password is printed only through `redact`.
set -euo pipefail
umask 077
export LC_ALL=C

log() { printf 'adjoin: %s\n' "$*"; }
fail() { local code=$1; shift; printf 'adjoin: error: %s\n' "$*" >&2; exit "$code"; }

# redact TEXT: TEXT with every occurrence of the password replaced by "[redacted]".
redact() {
  local text=$1
  if [ -n "${PASSWORD:-}" ]; then text=${text//"$PASSWORD"/[redacted]}; fi
  printf '%s\n' "$text"
}

# param NAME: the decoded value of ADJOIN_NAME_B64 (empty when unset). Values are data:
# they are decoded, never evaluated.
param() {
  local var="ADJOIN_${1}_B64"
  printf '%s' "${!var:-}" | base64 -d
}

# params NAME...: sets each variable NAME to `param NAME`.
params() {
  local name value
  for name in "$@"; do
    value=$(param "$name")
    printf -v "$name" '%s' "$value"
  done
}

# own_instance_id: this instance's id, as SSM Agent hands it to the script
# (AWS_SSM_INSTANCE_ID), else as the instance metadata service (IMDSv2) gives it.
own_instance_id() {
  local id=${AWS_SSM_INSTANCE_ID:-} token
  if [ -z "$id" ] && command -v curl >/dev/null; then
    token=$(curl -fsS -m 2 -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' \
      http://169.254.169.254/latest/api/token 2>/dev/null) || token=
    id=$(curl -fsS -m 2 -H "X-aws-ec2-metadata-token: $token" \
      http://169.254.169.254/latest/meta-data/instance-id 2>/dev/null) || id=
  fi
  [[ $id =~ ^(i|mi)-[0-9a-f]{8,17}$ ]] || return 1
  printf '%s\n' "$id"
}

# take_row ROW: the values of one row of an INSTANCES table (an instance id, then
# NAME=<base64> pairs), set as ADJOIN_<NAME>_B64 for `param`. Only the values an instance
# may have of its own are taken; each stays base64 data. Exit 10 for anything else.
take_row() {
  local row=$1 pair name value pairs
  [[ ${row%% *} =~ ^(i|mi)-[0-9a-f]{8,17}$ ]] || fail 10 "an INSTANCES row does not start with an instance id"
  read -r -a pairs <<<"${row#* }"
  for pair in "${pairs[@]}"; do
    name=${pair%%=*}
    value=${pair#*=}
    case $name in
      COMPUTER_NAME|ALLOWED_GROUP|SUDO_GROUPS|INSTANCE_ID|OWNER_STAMP|OTP_SSM_PARAMETER|OU_PATH|COMPUTER_GROUPS) ;;
      *) fail 10 "the INSTANCES table names a value an instance cannot have of its own" ;;
    esac
    [[ $value =~ ^[A-Za-z0-9+/]*={0,2}$ ]] || fail 10 "the INSTANCES table holds a value that is not base64"
    printf -v "ADJOIN_${name}_B64" '%s' "$value"
  done
}

# take_own_values: for a join sent to several instances, this instance's own row of the
# INSTANCES table, found by its id. Exit 10 when this instance cannot be told or has no
# row.
take_own_values() {
  local table id row
  table=$(param INSTANCES)
  [ -n "$table" ] || return 0
  id=$(own_instance_id) || fail 10 "cannot tell which instance this is (no AWS_SSM_INSTANCE_ID, no instance metadata)"
  row=$(awk -v id="$id" '$1 == id { print; exit }' <<<"$table")
  [ -n "$row" ] || fail 10 "instance $id has no row in the command's INSTANCES table"
  take_row "$row"
}

# for_each_row: on the AD tools host, a command for several instances (an INSTANCES
# table) runs this script again once per row, one after the other, each run with that
# row's values alone (ADJOIN_ROW) and its own exit code. Each run's output lines are
# prefixed with the instance id, then "adjoin-result <instance-id> <exit code>"; the
# command exits 0 when every row succeeded, else with the last failure's code. A run for
# one row, or a command without a table, goes on with the script.
for_each_row() {
  local table row id rc out line status=0
  if [ -n "${ADJOIN_ROW:-}" ]; then
    take_row "$ADJOIN_ROW"
    return 0
  fi
  table=$(param INSTANCES)
  [ -n "$table" ] || return 0
  [ -r "$0" ] || fail 10 "cannot run the script once per instance ($0 is not readable)"
  while IFS= read -r row; do
    [ -n "$row" ] || continue
    id=${row%% *}
    [[ $id =~ ^(i|mi)-[0-9a-f]{8,17}$ ]] || fail 10 "an INSTANCES row does not start with an instance id"
    rc=0
    out=$(ADJOIN_ROW=$row bash "$0" 2>&1) || rc=$?
    if [ -n "$out" ]; then
      while IFS= read -r line; do printf '%s: %s\n' "$id" "$line"; done <<<"$out"
    fi
    printf 'adjoin-result %s %s\n' "$id" "$rc"
    [ "$rc" = 0 ] || status=$rc
  done <<<"$table"
  exit "$status"
}

# require WHAT NAME...: exit 10 unless every variable NAME is set; WHAT names them all.
require() {
  local what=$1 name; shift
  for name in "$@"; do
    [ -n "${!name}" ] || fail 10 "missing parameter ($what are required)"
  done
}

# read_dcs: DCS, the domain controllers' IPs in DC_IPS; exit 10 when there is none.
read_dcs() {
  read -r -a DCS <<<"$DC_IPS"
  [ "${#DCS[@]}" -ge 1 ] || fail 10 "no domain controller IP"
}

# dc_name IP: the host name the domain controller at IP gives for DOMAIN, over CLDAP (no
# DNS needed); empty, or a failure, when it does not answer.
dc_name() {
  adcli info --domain-controller="$1" "$DOMAIN" 2>/dev/null |
    sed -n 's/^domain-controller = //p' | head -n 1
}

# read_one_time_password: OTP, a staged join's one-time password, from the SecureString
# parameter OTP_SSM_PARAMETER in OTP_REGION, read with this host's own role; the
# parameter is deleted right after (a second delivery of the command finds none: exit
# 12, and the service stages afresh). PASSWORD is set too, for `redact`.
read_one_time_password() {
  OTP=$(aws ssm get-parameter --region "$OTP_REGION" --name "$OTP_SSM_PARAMETER" \
    --with-decryption --query Parameter.Value --output text 2>/dev/null) ||
    fail 12 "cannot read the one-time password parameter $OTP_SSM_PARAMETER"
  aws ssm delete-parameter --region "$OTP_REGION" --name "$OTP_SSM_PARAMETER" >/dev/null 2>&1 ||
    log "could not delete $OTP_SSM_PARAMETER (it expires on its own)"
  case $OTP in
    ""|*[!A-Za-z0-9]*) unset OTP; fail 12 "the one-time password parameter does not hold a one-time password" ;;
  esac
  PASSWORD=$OTP   # what `redact` hides
}

# read_password: sets PASSWORD from Secrets Manager (PASSWORD_SECRET_ARN, JSON with a
# "password" key) or SSM Parameter Store (PASSWORD_SSM_PARAMETER), read with this
# host's own role. Exit 12 when it cannot; the messages never carry the value.
read_password() {
  local secret_arn parameter region json rc=0
  secret_arn=$(param PASSWORD_SECRET_ARN)
  parameter=$(param PASSWORD_SSM_PARAMETER)
  region=$(param SECRET_REGION)
  command -v aws >/dev/null || fail 12 "the AWS CLI is needed to read the join password"
  if [ -n "$secret_arn" ]; then
    json=$(aws secretsmanager get-secret-value --region "$region" --secret-id "$secret_arn" \
      --query SecretString --output text) || fail 12 "cannot read the join secret"
    command -v python3 >/dev/null || fail 12 "python3 is needed to read a Secrets Manager secret"
    # Exit 3: not JSON, 4: no string "password" key. Python's own messages (which may
    # quote the document) are discarded.
    PASSWORD=$(printf '%s' "$json" | python3 -c '
import json, sys
try:
    doc = json.load(sys.stdin)
except Exception:
    sys.exit(3)
value = doc.get("password") if isinstance(doc, dict) else None
if not isinstance(value, str):
    sys.exit(4)
sys.stdout.write(value)' 2>/dev/null) || rc=$?
    unset json
    case $rc in
      0) ;;
      3) fail 12 "the join secret is not JSON" ;;
      4) fail 12 "the join secret has no \"password\" string" ;;
      *) fail 12 "cannot parse the join secret (python3 exit $rc)" ;;
    esac
  elif [ -n "$parameter" ]; then
    PASSWORD=$(aws ssm get-parameter --region "$region" --name "$parameter" \
      --with-decryption --query Parameter.Value --output text) || fail 12 "cannot read the join password parameter"
  else
    fail 10 "no password reference"
  fi
  [ -n "$PASSWORD" ] || fail 12 "the join password is empty"
}
