#!/usr/bin/env bash
# adjoin: helpers shared by the Linux join and leave scripts. The service sends this
# file ahead of each script, after the ADJOIN_<NAME>_B64='<base64>' parameter block.
set -euo pipefail
umask 077
export LC_ALL=C

log() { printf 'adjoin: %s\n' "$*"; }
fail() { local code=$1; shift; printf 'adjoin: error: %s\n' "$*" >&2; exit "$code"; }

# param NAME: the decoded value of ADJOIN_NAME_B64 (empty when unset). Values are data:
# they are decoded, never evaluated.
param() {
  local var="ADJOIN_${1}_B64"
  printf '%s' "${!var:-}" | base64 -d
}

# read_password: sets PASSWORD from Secrets Manager (PASSWORD_SECRET_ARN, JSON with a
# "password" key) or SSM Parameter Store (PASSWORD_SSM_PARAMETER), read with this
# host's own role. Exit 12 when it cannot.
read_password() {
  local secret_arn parameter region json
  secret_arn=$(param PASSWORD_SECRET_ARN)
  parameter=$(param PASSWORD_SSM_PARAMETER)
  region=$(param SECRET_REGION)
  command -v aws >/dev/null || fail 12 "the AWS CLI is needed to read the join password"
  if [ -n "$secret_arn" ]; then
    json=$(aws secretsmanager get-secret-value --region "$region" --secret-id "$secret_arn" \
      --query SecretString --output text) || fail 12 "cannot read the join secret"
    command -v python3 >/dev/null || fail 12 "python3 is needed to read a Secrets Manager secret"
    PASSWORD=$(printf '%s' "$json" | python3 -c 'import json, sys; sys.stdout.write(json.load(sys.stdin)["password"])') ||
      fail 12 "the join secret has no \"password\" key"
    unset json
  elif [ -n "$parameter" ]; then
    PASSWORD=$(aws ssm get-parameter --region "$region" --name "$parameter" \
      --with-decryption --query Parameter.Value --output text) || fail 12 "cannot read the join password parameter"
  else
    fail 10 "no password reference"
  fi
  [ -n "$PASSWORD" ] || fail 12 "the join password is empty"
}
