#!/usr/bin/env bash
# adjoin end to end, against a real Active Directory (Samba AD DC).
#
#   tests/e2e/samba-ad.sh ADJOIN_BINARY
#
# Six network namespaces joined by a bridge, with no route off the machine:
# (adjN-: N is the run's id, ADJOIN_E2E_RUN or the shell's PID, so runs never share a lab)
#   adjN-dc     10.200.0.1   Samba AD DC for EXAMPLE.TEST (OU=Servers, delegated join user)
#   adjN-inst   10.200.0.2   the "EC2 instance" that is joined: a fresh Debian 12 image
#                            (tests/e2e/image.sh) without sssd, adcli, krb5 or the AWS CLI
#   adjN-tools  10.200.0.3   the AD tools host that deletes computer objects
#   adjN-clone  10.200.0.4   an instance launched from an image of the joined one
#   adjN-aws    10.200.0.10  the AWS API emulator (moto server)
#   adjN-sw                  the bridge
# The DC, instances and tools host each also get a mount namespace (overlay /etc and /var,
# tmpfs /run and /tmp) and a UTS namespace: nothing they write reaches the host.
#
# The service runs as users run it locally: `adjoin replay` on an EC2 state-change event,
# against the emulator. The emulator records the SSM command; this harness plays the SSM
# agent: it reads the command, writes it where the agent writes it, and runs it with `sh`
# in the target's namespaces, with the instance's AWS credentials pointed at the emulator.
#
# Root only. Needs: samba winbind krb5-user adcli sssd sssd-tools samba-common-bin
# ldb-tools dnsutils iproute2 debootstrap openssh-client sshpass (Debian), moto_server
# and the AWS CLI (pip). The image is built once (network: the machine's Debian mirror)
# and cached in ADJOIN_E2E_IMAGE (default target/e2e-image of the repository).
# ADJOIN_E2E_KEEP=1 keeps the lab afterwards, to look around (then: tests/e2e/samba-ad.sh
# down RUN, with the run id it prints).
# shellcheck disable=SC2016  # inner sh -c '...' scripts get their values as $1..
set -Eeuo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/e2e/image.sh
source "$HERE/image.sh"

# One lab per run: its namespaces and files carry the run's id, so two runs on one
# machine never tear each other down. `down RUN` removes a kept lab.
if [ "${1:-}" = down ]; then RUN=${2:-${ADJOIN_E2E_RUN:-}}; else RUN=${ADJOIN_E2E_RUN:-$$}; fi
case $RUN in
  ""|*[!A-Za-z0-9]*) echo "usage: $0 down RUN (the run id a kept lab printed; letters and digits)" >&2; exit 2 ;;
esac
NSP=adj$RUN
LAB=${ADJOIN_E2E_ROOT:-/tmp/adjoin-e2e-$RUN}
REALM=EXAMPLE.TEST DOMAIN=example.test WORKGROUP=EXAMPLE BASE_DN=DC=example,DC=test
OU_DN="OU=Servers,$BASE_DN"
ADMIN_PASS='Adm1n-E2e-Lab!'
JOIN_USER=svc-join JOIN_PASS='J0in-Only-Servers!'
ALICE_PASS='Al1ce-Passw0rd!' BOB_PASS='B0b-Passw0rd!' CAROL_PASS='C4rol-Passw0rd!'
ADMINS_GROUP=linux-admins USERS_GROUP=linux-users GMSA_GROUP=gmsa-hosts
IMAGE_CACHE=${ADJOIN_E2E_IMAGE:-$HERE/../../target/e2e-image}
DC_IP=10.200.0.1 DC_FQDN=dc1.example.test INST_IP=10.200.0.2 TOOLS_IP=10.200.0.3 CLONE_IP=10.200.0.4
AWS_IP=10.200.0.10 AWS_PORT=5000
ACCOUNT=123456789012 REGION=us-east-1
CONFIG_TABLE=adjoin-config LEDGER_TABLE=adjoin-ledger PASSWORD_PARAMETER=/adjoin/join-password
SMBCONF=$LAB/dc/smb.conf SAMBA_DIR=$LAB/dc/samba LOGS=$LAB/logs

# ---- output and checks ----------------------------------------------------------------
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN{printf "%.1f", b-a}'; }
say() { printf '\n== %s\n' "$*"; }
ok() { printf '   ok   %s\n' "$*"; }
die() {
  printf '\nFAIL: %s\n' "$*" >&2
  [ ! -d "$LOGS" ] || for f in "$LOGS"/*.log; do printf -- '--- %s (tail)\n' "$f" >&2; tail -n 15 "$f" >&2; done
  exit 1
}
# expect WHAT CMD...: CMD succeeds.
expect() {
  local what=$1; shift
  "$@" >>"$LOGS/checks.log" 2>&1 || die "$what"
  ok "$what"
}
# expect_fail WHAT REGEX CMD...: CMD fails and says REGEX (so it fails for the right reason).
expect_fail() {
  local what=$1 re=$2 out rc=0; shift 2
  out=$("$@" 2>&1) || rc=$?
  printf '%s\n' "$out" >>"$LOGS/checks.log"
  [ "$rc" != 0 ] || die "$what (it succeeded)"
  grep -Eq -- "$re" <<<"$out" || die "$what (exit $rc without /$re/: $out)"
  ok "$what"
}
# wait_for SECONDS WHAT CMD...: poll CMD until it succeeds.
wait_for() {
  local secs=$1 what=$2 t0; shift 2
  t0=$(now)
  until "$@" >/dev/null 2>&1; do
    awk -v a="$t0" -v b="$(now)" -v s="$secs" 'BEGIN{exit !(b-a>s)}' && die "timed out: $what"
    sleep 0.2
  done
  ok "$what ($(since "$t0") s)"
}

# ---- namespaces -------------------------------------------------------------------------
in_host() {
  local h=$1; shift
  nsenter --net="/run/netns/$NSP-$h" --mount="$LAB/ns/$h.mnt" --uts="$LAB/ns/$h.uts" -- "$@"
}
in_net() { local h=$1; shift; nsenter --net="/run/netns/$NSP-$h" -- "$@"; }

# start_bg NS NAME CMD...: a daemon in network namespace NS (and its mount/UTS namespaces
# when it has them), its PID in $LAB/pids.
start_bg() {
  local h=$1 name=$2 enter; shift 2
  enter=(nsenter "--net=/run/netns/$NSP-$h")
  [ ! -e "$LAB/ns/$h.mnt" ] || enter+=("--mount=$LAB/ns/$h.mnt" "--uts=$LAB/ns/$h.uts")
  "${enter[@]}" -- "$@" </dev/null >"$LOGS/$h-$name.log" 2>&1 &
  echo $! >"$LAB/pids/$h-$name.pid"
}

kill_pid() {
  kill -TERM "$1" 2>/dev/null || return 0
  for _ in $(seq 50); do kill -0 "$1" 2>/dev/null || return 0; sleep 0.1; done
  kill -KILL "$1" 2>/dev/null || true
}

# Everything left in a namespace was started by this harness.
stop_ns() {
  local p
  [ -e "/run/netns/$NSP-$1" ] || return 0
  for p in $(ip netns pids "$NSP-$1" 2>/dev/null); do kill_pid "$p"; done
}

lab_down() {
  local ns f
  for ns in inst clone tools dc aws; do stop_ns "$ns"; done
  if [ -d "$LAB/ns" ]; then
    for f in "$LAB"/ns/*; do
      [ -e "$f" ] && mountpoint -q "$f" && umount -n "$f"
    done
    if mountpoint -q "$LAB/ns"; then umount -n "$LAB/ns"; fi
  fi
  for ns in inst clone tools dc aws sw; do
    if [ -e "/run/netns/$NSP-$ns" ]; then ip netns del "$NSP-$ns"; fi
  done
  if [ -e "$LAB" ]; then
    ! grep -q " $LAB" /proc/self/mounts || die "still mounted under $LAB"
    rm -rf "$LAB"
  fi
}

net_up() {
  ip netns add "$NSP-sw"
  ip -n "$NSP-sw" link add br0 type bridge
  ip -n "$NSP-sw" link set br0 up
  local h ip
  for h in dc inst tools clone aws; do
    case $h in dc) ip=$DC_IP ;; inst) ip=$INST_IP ;; tools) ip=$TOOLS_IP ;; clone) ip=$CLONE_IP ;; aws) ip=$AWS_IP ;; esac
    ip netns add "$NSP-$h"
    in_net "$h" sysctl -q -w net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip link add eth0 netns "$NSP-$h" type veth peer name "$h" netns "$NSP-sw"
    ip -n "$NSP-sw" link set "$h" master br0 up
    ip -n "$NSP-$h" link set lo up
    ip -n "$NSP-$h" addr add "$ip/24" dev eth0
    ip -n "$NSP-$h" link set eth0 up
  done
}

# host_up HOST FQDN IP: private /etc, /var (overlays), /run, /tmp (tmpfs) and host name.
host_up() {
  local h=$1 fqdn=$2 ip=$3 d=$LAB/$1
  mkdir -p "$d"/etc/{upper,work} "$d"/var/{upper,work}
  touch "$LAB/ns/$h.mnt" "$LAB/ns/$h.uts"
  unshare --mount="$LAB/ns/$h.mnt" --uts="$LAB/ns/$h.uts" --propagation private /bin/sh -euc '
    lab=$1 d=$2 fqdn=$3
    mount -n -t tmpfs -o mode=0755 tmpfs /run
    mkdir /run/lab && mount -n --bind "$lab" /run/lab
    mount -n -t overlay overlay -o "lowerdir=/etc,upperdir=$d/etc/upper,workdir=$d/etc/work" /etc
    mount -n -t overlay overlay -o "lowerdir=/var,upperdir=$d/var/upper,workdir=$d/var/work" /var
    mount -n -t tmpfs -o mode=1777 tmpfs /tmp
    mkdir -p "$lab" && mount -n --bind /run/lab "$lab"
    umount -n /run/lab && rmdir /run/lab
    mkdir -p /run/lock /run/samba /run/dbus
    hostname "$fqdn"
  ' sh "$LAB" "$d" "$fqdn"
  in_host "$h" sh -euc '
    fqdn=$1 ip=$2 dc_ip=$3 domain=$4
    echo "$fqdn" >/etc/hostname
    rm -f /etc/hosts /etc/resolv.conf
    printf "127.0.0.1 localhost\n%s %s %s\n" "$ip" "$fqdn" "${fqdn%%.*}" >/etc/hosts
    # The VPC resolver stand-in: it knows nothing of the directory.
    printf "search %s\nnameserver 127.0.0.1\n" "$domain" >/etc/resolv.conf
    [ "$ip" != "$dc_ip" ] || printf "search %s\nnameserver %s\n" "$domain" "$dc_ip" >/etc/resolv.conf
  ' sh "$fqdn" "$ip" "$DC_IP" "$DOMAIN"
}

# ---- the domain controller -----------------------------------------------------------------
st() { in_host dc samba-tool "$@" -s "$SMBCONF"; }

dc_up() {
  mkdir -p "$SAMBA_DIR"/{private,state,cache,lock,run,bind-dns}
  : >"$SMBCONF"
  in_host dc samba-tool domain provision -s "$SMBCONF" \
    --realm="$REALM" --domain="$WORKGROUP" --server-role=dc --dns-backend=SAMBA_INTERNAL \
    --use-rfc2307 --adminpass="$ADMIN_PASS" --host-name=dc1 --host-ip="$DC_IP" \
    --option="interfaces=lo eth0" --option="bind interfaces only=yes" --option="dns forwarder=" \
    --option="private dir=$SAMBA_DIR/private" --option="state directory=$SAMBA_DIR/state" \
    --option="cache directory=$SAMBA_DIR/cache" --option="lock directory=$SAMBA_DIR/lock" \
    --option="pid directory=$SAMBA_DIR/run" --option="binddns dir=$SAMBA_DIR/bind-dns" \
    >"$LOGS/provision.log" 2>&1 || die "samba-tool domain provision"
  in_host dc cp "$SAMBA_DIR/private/krb5.conf" /etc/krb5.conf
  start_bg dc samba samba -F --debug-stdout -s "$SMBCONF"
  wait_for 90 "DC: LDAP answers as Administrator" \
    env PASSWD="$ADMIN_PASS" nsenter --net="/run/netns/$NSP-dc" --mount="$LAB/ns/dc.mnt" \
    --uts="$LAB/ns/dc.uts" -- ldbsearch -H "ldap://$DC_FQDN" -U Administrator -b "$BASE_DN" -s base dn
  wait_for 60 "DC: Kerberos answers" in_net inst timeout 2 bash -c "exec 3<>/dev/tcp/$DC_IP/88"

  st ou create "$OU_DN" >/dev/null
  st user create "$JOIN_USER" "$JOIN_PASS" >/dev/null
  st user setexpiry "$JOIN_USER" --noexpiry >/dev/null
  local sid computer=bf967a86-0de6-11d0-a285-00aa003049e2 member=bf9679c0-0de6-11d0-a285-00aa003049e2
  sid=$(st user show "$JOIN_USER" --attributes=objectSid | awk '/^objectSid:/{print $2}')
  [ -n "$sid" ] || die "no objectSid for $JOIN_USER"
  # The join user may create and delete computer objects in OU=Servers, nothing else...
  st dsacl set --objectdn="$OU_DN" --trusteedn="CN=$JOIN_USER,CN=Users,$BASE_DN" \
    --sddl="(OA;CI;CCDC;$computer;;$sid)" >/dev/null
  st group add "$ADMINS_GROUP" >/dev/null
  st group add "$GMSA_GROUP" >/dev/null
  # ...and write the members of the gMSA hosts group (what computerGroups needs).
  st dsacl set --objectdn="CN=$GMSA_GROUP,CN=Users,$BASE_DN" \
    --trusteedn="CN=$JOIN_USER,CN=Users,$BASE_DN" --sddl="(OA;;WP;$member;;$sid)" >/dev/null
  st user create alice "$ALICE_PASS" >/dev/null
  st user create bob "$BOB_PASS" >/dev/null
  st user create carol "$CAROL_PASS" >/dev/null
  st group addmembers "$ADMINS_GROUP" alice >/dev/null
  st group add "$USERS_GROUP" >/dev/null
  st group addmembers "$USERS_GROUP" carol >/dev/null
  # ...and remove the address records of the zone (the leave deletes the instance's):
  # read, write and delete on dnsNode objects (e0fa1e8c-…) in the zone.
  st dsacl set --objectdn="DC=$DOMAIN,CN=MicrosoftDNS,DC=DomainDnsZones,$BASE_DN" \
    --trusteedn="CN=$JOIN_USER,CN=Users,$BASE_DN" \
    --sddl="(OA;CIIO;RPWPSDSW;;e0fa1e8c-9b45-11d0-afdd-00c04fd930c9;$sid)" >/dev/null
  ok "DC: $REALM provisioned; $OU_DN, $JOIN_USER delegated there and on the zone's records, $ADMINS_GROUP (alice), $USERS_GROUP (carol), $GMSA_GROUP, bob"
}

# ---- the AWS emulator and the account's seed ------------------------------------------------
aws_cli() {
  in_net aws env AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_DEFAULT_REGION="$REGION" AWS_ENDPOINT_URL="http://$AWS_IP:$AWS_PORT" \
    aws --output text "$@"
}

aws_up() {
  start_bg aws moto moto_server -H "$AWS_IP" -p "$AWS_PORT"
  wait_for 60 "AWS emulator answers" aws_cli sts get-caller-identity
  aws_cli dynamodb create-table --table-name "$CONFIG_TABLE" \
    --attribute-definitions AttributeName=accountId,AttributeType=S \
    --key-schema AttributeName=accountId,KeyType=HASH --billing-mode PAY_PER_REQUEST >/dev/null
  aws_cli dynamodb create-table --table-name "$LEDGER_TABLE" \
    --attribute-definitions AttributeName=instanceId,AttributeType=S \
    --key-schema AttributeName=instanceId,KeyType=HASH --billing-mode PAY_PER_REQUEST >/dev/null
  aws_cli dynamodb put-item --table-name "$CONFIG_TABLE" --item "$(cat <<JSON
{"accountId": {"S": "$ACCOUNT"}, "dnsName": {"S": "$DOMAIN"}, "dnsIP1": {"S": "$DC_IP"},
 "adJoinUserName": {"S": "$JOIN_USER"}, "adJoinUserPwParam": {"S": "$PASSWORD_PARAMETER"},
 "ouPath": {"S": "$OU_DN"}, "computerGroups": {"L": [{"S": "$GMSA_GROUP"}]},
 "sudoGroups": {"L": [{"S": "$ADMINS_GROUP"}]}}
JSON
)"
  # The password reaches the emulator on stdin-like file input, not in argv.
  printf '%s' "$JOIN_PASS" >"$LAB/password"
  aws_cli ssm put-parameter --name "$PASSWORD_PARAMETER" --type SecureString \
    --value "file://$LAB/password" >/dev/null
  rm -f "$LAB/password"
  # adjoin's SSM documents, as the stacks create them.
  "$ADJOIN" documents --json "$LAB/documents" >/dev/null || die "adjoin documents"
  local doc
  for doc in "$LAB"/documents/*.json; do
    aws_cli ssm create-document --name "$(basename "$doc" .json)" --document-type Command \
      --document-format JSON --content "file://$doc" >/dev/null
  done
  local ami
  ami=$(aws_cli ec2 describe-images --query 'Images[?Platform==null] | [0].ImageId')
  # Two login groups; sudo for the account's sudoGroups (linux-admins).
  INSTANCE_ID=$(aws_cli ec2 run-instances --image-id "$ami" --count 1 --query 'Instances[0].InstanceId' \
    --tag-specifications "[{\"ResourceType\": \"instance\", \"Tags\": [{\"Key\": \"adGroupName\", \"Value\": \"$ADMINS_GROUP, $USERS_GROUP\"}, {\"Key\": \"Name\", \"Value\": \"e2e-web\"}]}]")
  TOOLS_ID=$(aws_cli ec2 run-instances --image-id "$ami" --count 1 --query 'Instances[0].InstanceId' \
    --tag-specifications 'ResourceType=instance,Tags=[{Key=adjoin:role,Value=ad-tools}]')
  ok "emulator: config item for $ACCOUNT, password parameter, adjoin's documents, instance $INSTANCE_ID, tools host $TOOLS_ID"
}

# ---- the service and the SSM agent ----------------------------------------------------------
# replay STATE [NAME]: `adjoin replay` of the instance's state-change event, against the
# emulator. The event file's name (NAME, default STATE) is the message id.
replay() {
  local name=${2:-$1}
  local event=$LAB/$name.event.json
  cat >"$event" <<JSON
{"version": "0", "id": "e2e-$name-$(date +%s%N)", "detail-type": "EC2 Instance State-change Notification",
 "source": "aws.ec2", "account": "$ACCOUNT", "time": "$(date -u +%Y-%m-%dT%H:%M:%SZ)", "region": "$REGION",
 "resources": ["arn:aws:ec2:$REGION:$ACCOUNT:instance/$INSTANCE_ID"],
 "detail": {"instance-id": "$INSTANCE_ID", "state": "$1"}}
JSON
  in_net aws env AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="$REGION" \
    AWS_ENDPOINT_URL="http://$AWS_IP:$AWS_PORT" ADJOIN_CONFIG_TABLE="$CONFIG_TABLE" \
    ADJOIN_LEDGER_TABLE="$LEDGER_TABLE" \
    "$ADJOIN" replay "$event" >"$LOGS/replay-$name.out" 2>"$LOGS/replay-$name.log" ||
    die "adjoin replay ($name): $(cat "$LOGS/replay-$name.out")"
  cat "$LOGS/replay-$name.out"
}

# reconcile [ARGS...]: `adjoin reconcile` against the emulator; its output.
reconcile() {
  in_net aws env AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION="$REGION" \
    AWS_ENDPOINT_URL="http://$AWS_IP:$AWS_PORT" ADJOIN_CONFIG_TABLE="$CONFIG_TABLE" \
    ADJOIN_LEDGER_TABLE="$LEDGER_TABLE" "$ADJOIN" reconcile "$@" 2>>"$LOGS/reconcile.log"
}

# ledger_status: the instance's status in the join ledger.
ledger_status() {
  aws_cli dynamodb get-item --table-name "$LEDGER_TABLE" \
    --key "{\"instanceId\": {\"S\": \"$INSTANCE_ID\"}}" --query Item.status.S
}
join_commands() { aws_cli ssm list-commands --query "length(Commands[?starts_with(Comment, 'adjoin join')])"; }

# agent HOST TARGET_INSTANCE ACTION: what SSM Agent does with the newest command for
# TARGET_INSTANCE whose comment starts "adjoin ACTION": take the command's document
# (adjoin's own, as the stacks create it: its runCommand lines, each {{ NAME }} replaced
# by the command's parameter, or the document's default), write the lines to the
# document's _script.sh and run `sh -c` on it, with the instance profile's credentials
# (here: the emulator's) and the instance's id in AWS_SSM_INSTANCE_ID. Prints the output; returns the script's exit status.
agent() {
  local h=$1 target=$2 action=$3 subject=${4:-$INSTANCE_ID} id targets document
  # One ListCommands: the newest matching command as "ID DOCUMENT TARGETS...", then its
  # parameters as JSON.
  aws_cli ssm list-commands --output json \
    --query "reverse(sort_by(Commands[?starts_with(Comment, 'adjoin $action $subject')], &RequestedDateTime))[0]" |
    python3 -c 'import json, sys
c = json.load(sys.stdin) or {}
print(" ".join([c.get("CommandId", ""), c.get("DocumentName", "")] + c.get("InstanceIds", [])))
print(json.dumps(c.get("Parameters", {})))' >"$LOGS/$action-found"
  read -r id document targets <"$LOGS/$action-found"
  [ -n "$id" ] || die "no '$action' command for $subject in the emulator"
  grep -qw "$target" <<<"$targets" || die "command $id does not target $target"
  case $document in adjoin-*) ;; *) die "command $id runs $document, not one of adjoin's documents" ;; esac
  aws_cli ssm get-document --name "$document" --document-format JSON --output json >"$LOGS/$action-document.json" ||
    die "no document $document in the emulator"
  tail -n 1 "$LOGS/$action-found" | python3 -c 'import json, re, sys
doc = json.loads(json.load(open(sys.argv[1]))["Content"])
given = json.load(sys.stdin)
def value(m):
    name = m.group(1)
    spec = doc["parameters"][name]
    v = given.get(name, [spec.get("default", "")])[0]
    if not re.fullmatch(spec.get("allowedPattern", ".*"), v):
        sys.exit("parameter %s does not match its allowedPattern" % name)
    return v
for line in doc["mainSteps"][0]["inputs"]["runCommand"]:
    print(re.sub(r"\{\{ *([A-Za-z0-9_]+) *\}\}", value, line))' "$LOGS/$action-document.json" \
    >"$LOGS/$action-command.sh" || die "command $id: its parameters do not fit $document"
  run_script "$h" "$target" "$id" "$LOGS/$action-command.sh"
}

# run_script HOST TARGET_INSTANCE COMMAND_ID FILE: run FILE on HOST as SSM Agent runs a
# command's script.
run_script() {
  local h=$1 target=$2 id=$3 file=$4 dir
  dir=/var/lib/amazon/ssm/$target/document/orchestration/$id/awsrunShellScript/0.awsrunShellScript
  in_host "$h" sh -euc 'mkdir -p "$1" && cp "$2" "$1/_script.sh" && chmod 700 "$1/_script.sh"' \
    sh "$dir" "$file"
  in_host "$h" env -i PATH="$PATH" HOME=/root AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing \
    AWS_ENDPOINT_URL="http://$AWS_IP:$AWS_PORT" AWS_SSM_INSTANCE_ID="$target" sh -c "$dir/_script.sh"
}

# with_params FILE NAME=VALUE...: FILE (a rendered Linux command) with the named
# parameters replaced, as the service would have rendered them.
with_params() {
  python3 -c 'import sys
from base64 import b64encode
new = dict(a.split("=", 1) for a in sys.argv[2:])
for line in open(sys.argv[1]):
    name = line.split("=", 1)[0]
    if name.startswith("ADJOIN_") and name.endswith("_B64") and name[7:-4] in new:
        line = "%s=\x27%s\x27\n" % (name, b64encode(new[name[7:-4]].encode()).decode())
    sys.stdout.write(line)' "$@"
}

# stage_as NAME INSTANCE OTP: the stage command (as the service rendered it) for another
# instance NAME/INSTANCE, with OTP put where the service puts a one-time password (the
# tools host's copy and the instance's), run on the tools host.
stage_as() {
  local name=$1 id=$2 otp=$3
  printf '%s' "$otp" >"$LAB/otp"
  aws_cli ssm put-parameter --name "/adjoin/stage/$ACCOUNT/$REGION/$id" --type SecureString \
    --value "file://$LAB/otp" --overwrite >/dev/null
  aws_cli ssm put-parameter --name "/adjoin/otp/$id" --type SecureString --value "file://$LAB/otp" --overwrite >/dev/null
  rm -f "$LAB/otp"
  with_params "$LOGS/stage-command.sh" COMPUTER_NAME="$name" INSTANCE_ID="$id" \
    OWNER_STAMP="adjoin $ACCOUNT $REGION $id" OTP_SSM_PARAMETER="/adjoin/stage/$ACCOUNT/$REGION/$id" \
    >"$LOGS/stage-$name.sh"
  run_script tools "$TOOLS_ID" "stage-$name" "$LOGS/stage-$name.sh"
}

# kinit_as HOST PRINCIPAL PASSWORD: a Kerberos login on HOST (its krb5.conf), into a
# throw-away cache.
kinit_as() {
  printf '%s\n' "$3" | in_host "$1" env KRB5CCNAME=MEMORY: kinit "$2"
}

parameter_gone() {
  ! aws_cli ssm get-parameter --name "$1" >/dev/null 2>&1
}

# ssh_as USER PASSWORD CMD...: CMD on the instance over SSH as the directory user USER,
# logged in with PASSWORD (from the tools host's namespace: another machine of the lab).
ssh_as() {
  local user=$1 pass=$2 rc=0; shift 2
  printf '%s\n' "$pass" >"$LAB/ssh-pass"
  in_net tools sshpass -f "$LAB/ssh-pass" ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
    -o PreferredAuthentications=keyboard-interactive,password -o PubkeyAuthentication=no \
    -o ConnectTimeout=10 -l "$user@$DOMAIN" "$INST_IP" "$@" || rc=$?
  rm -f "$LAB/ssh-pass"
  return "$rc"
}

# ssh_login USER PASSWORD: USER logs in over SSH and lands in a home directory of its own.
ssh_login() {
  local out
  out=$(ssh_as "$1" "$2" 'id -un; cd && pwd' 2>/dev/null) || return 1
  [ "$out" = "$1@$DOMAIN"$'\n'"/home/$1@$DOMAIN" ] || { echo "unexpected: $out"; return 1; }
}

# ssh_refused USER PASSWORD: USER's SSH login fails, and sshd says why: the account phase
# of PAM (sssd's access control) refused it, not a wrong password or a lost connection.
ssh_refused() {
  if ssh_as "$1" "$2" true 2>/dev/null; then echo "$1 logged in"; return 1; fi
  grep -F "Access denied for user $1@$DOMAIN by PAM account configuration" "$LOGS/inst-sshd.log"
}

# local_accounts_kept: every entry of the instance's passwd, shadow and group files from
# before the join is still there, unchanged (packages may add system accounts).
local_accounts_kept() {
  local f
  for f in passwd shadow group; do
    in_host inst cat "/etc/$f" >"$LAB/accounts-after-$f"
    if grep -Fxvf "$LAB/accounts-after-$f" "$LAB/accounts-before/$f"; then echo "changed in /etc/$f"; return 1; fi
  done
}

# sudo_as USER PASSWORD: USER runs `id -u` with sudo (its password on stdin) over SSH.
sudo_as() {
  local out
  out=$(printf '%s\n' "$2" | ssh_as "$1" "$2" "sudo -S -k -p '' id -u" 2>&1 | grep -v '^Warning: Permanently added') ||
    { echo "$out"; return 1; }
  [ "$out" = 0 ] || { echo "unexpected: $out"; return 1; }
}

# dns_a NAME: the A records the domain controller's DNS gives for NAME.
dns_a() { in_net aws dig +short +time=2 +tries=1 "@$DC_IP" "$1" A; }
dns_is() { [ "$(dns_a "$1")" = "$2" ]; }

# ---- checks ---------------------------------------------------------------------------------
computer_in() { st computer show "$COMPUTER" | grep -Fx "dn: CN=$COMPUTER,$1" >/dev/null; }
# attr COMPUTER ATTRIBUTE: the attribute's value line(s) of a computer object.
attr() { st computer show "$1" --attributes="$2" | grep "^$2:" || true; }
description_is() { [ "$(attr "$1" description)" = "description: $2" ]; }
# description_is_in COMPUTER DESCRIPTION OU: the stamp, and the object inside OU.
description_is_in() {
  description_is "$1" "$2" && st computer show "$1" | grep -Fx "dn: CN=$1,$3" >/dev/null
}
exists() { in_host dc env PASSWD="$ADMIN_PASS" ldbsearch -H "ldap://$DC_FQDN" -U Administrator -b "$1" -s base dn 2>/dev/null | grep -q '^dn: '; }
both_exist() { exists "$1" && exists "$2"; }
none_exist() { ! exists "$1" && ! exists "$2"; }
# others_untouched FOREIGN STRAY CLONE CLONE_STAMP
others_untouched() {
  exists "CN=$1,$OU_DN" && exists "CN=$2,CN=Computers,$BASE_DN" && description_is "$2" "$STAMP" &&
    description_is "$3" "$4"
}
group_has() { st group listmembers "$1" | grep -Fx "$2" >/dev/null; }
kvno() { in_host inst klist -k /etc/krb5.keytab | awk -v p="$COMPUTER\$@$REALM" '$2==p{k=$1} END{print k}'; }
# access_is ALLOWED|DENIED USER: the account phase of PAM through sssd (sssctl exits 0
# either way: the verdict is in its output).
access_is() {
  local out
  out=$(in_host inst sssctl user-checks -a acct -s adjoin-e2e "$2" 2>&1)
  case $1 in
    ALLOWED) grep -q 'pam_acct_mgmt: Success' <<<"$out" ;;
    DENIED) grep -q 'pam_acct_mgmt: Permission denied' <<<"$out" ;;
  esac
}
password_auth() {
  local out
  out=$(printf '%s\n' "$2" | in_host inst sssctl user-checks -a auth -s adjoin-e2e "$1" 2>&1)
  grep -q 'pam_authenticate for user .*: Success' <<<"$out"
}

run() {
  local t0 t1 k1 out
  t0=$(now)
  lab_down
  mkdir -p "$LAB/ns" "$LAB/pids" "$LOGS"
  mount -n --bind "$LAB/ns" "$LAB/ns"
  mount -n --make-private "$LAB/ns"
  say "lab: a fresh Debian 12 image, namespaces, domain controller, AWS emulator"
  t1=$(now)
  image_build "$IMAGE_CACHE" || die "the Debian image could not be built (see $IMAGE_CACHE/build.log)"
  ok "image: $IMAGE_ROOTFS ($(since "$t1") s; sssd, adcli, krb5 and the AWS CLI only in its local repository)"
  net_up
  host_up dc "$DC_FQDN" "$DC_IP"
  image_host_up inst e2e-web.internal "$INST_IP" "$LAB" "$NSP" || die "the instance did not start"
  host_up tools tools.internal "$TOOLS_IP"
  ! in_host inst sh -c 'command -v sssd || command -v adcli || command -v kinit || command -v aws' >/dev/null ||
    die "the fresh image already has sssd, adcli, kinit or aws"
  ok "the instance is a fresh image: no sssd, adcli, Kerberos client or AWS CLI"
  mkdir -p "$LAB/accounts-before"
  in_host inst sh -c 'cp /etc/passwd /etc/shadow /etc/group "$1"/' sh "$LAB/accounts-before"
  dc_up
  aws_up
  printf 'auth required pam_sss.so\naccount required pam_sss.so\n' >"$LAB/pam"
  in_host inst cp "$LAB/pam" /etc/pam.d/adjoin-e2e
  ok "lab up ($(since "$t0") s)"

  say "running event -> adjoin replay -> stage command -> tools host (one-time password)"
  t1=$(now)
  out=$(replay running)
  grep -q '"dispatched"' <<<"$out" || die "the running event was not dispatched: $out"
  grep -q 'stage attempt 1 sent to the AD tools host' <<<"$out" || die "no stage command: $out"
  ok "adjoin replay: $(grep -o '"outcome":"[a-z]*"' <<<"$out" | head -n 1), stage command to the tools host"
  OTP=$(aws_cli ssm get-parameter --name "/adjoin/otp/$INSTANCE_ID" --with-decryption --query Parameter.Value)
  [ -n "$OTP" ] || die "no one-time password parameter for the instance"
  [ "$(aws_cli ssm get-parameter --name "/adjoin/stage/$ACCOUNT/$REGION/$INSTANCE_ID" --with-decryption \
    --query Parameter.Value)" = "$OTP" ] || die "the tools host's copy differs"
  ok "one one-time password, two SecureString copies (the instance's and the tools host's)"
  agent tools "$TOOLS_ID" stage >"$LOGS/stage-1.log" 2>&1 || die "stage script (exit $?): $(cat "$LOGS/stage-1.log")"
  COMPUTER=$(python3 -c 'import sys; from base64 import b64decode as d
for l in open(sys.argv[1]):
    if l.startswith("ADJOIN_COMPUTER_NAME_B64="): print(d(l.split("=", 1)[1].strip().strip("\x27")).decode())' \
    "$LOGS/stage-command.sh")
  [ -n "$COMPUTER" ] || die "no computer name in the stage command"
  ok "stage script ran on the tools host: $(tail -n 1 "$LOGS/stage-1.log")"
  STAMP="adjoin $ACCOUNT $REGION $INSTANCE_ID"
  expect "staged: computer $COMPUTER is in $OU_DN with its owner stamp" \
    description_is_in "$COMPUTER" "$STAMP" "$OU_DN"
  expect "staged: computer $COMPUTER is a member of $GMSA_GROUP (computerGroups)" group_has "$GMSA_GROUP" "$COMPUTER\$"
  expect "the tools host deleted its copy of the one-time password" \
    parameter_gone "/adjoin/stage/$ACCOUNT/$REGION/$INSTANCE_ID"
  ! grep -qF -- "$OTP" "$LOGS/stage-1.log" "$LOGS/stage-command.sh" || die "the one-time password is in the stage command or its output"
  ok "neither the stage command nor its output carries the one-time password"

  say "the message comes back: staged -> join command -> instance"
  out=$(replay running)
  grep -q 'staged .* (command' <<<"$out" || die "the stage was not verified: $out"
  grep -q '"dispatched"' <<<"$out" || die "no join dispatched: $out"
  agent inst "$INSTANCE_ID" join >"$LOGS/join-1.log" 2>&1 || die "join script (exit $?): $(cat "$LOGS/join-1.log")"
  grep -q "staged account, one-time password" "$LOGS/join-1.log" || die "not a staged join: $(cat "$LOGS/join-1.log")"
  ok "join script ran: $(tail -n 1 "$LOGS/join-1.log") ($(since "$t1") s)"
  expect_fail "the join command carries no password" "no match" \
    sh -c 'grep -F -e "$1" -e "$2" -e svc-join "$3" && exit 0; echo no match; exit 1' sh "$JOIN_PASS" "$OTP" "$LOGS/join-command.sh"
  ! grep -qF -e "$JOIN_PASS" -e "$OTP" "$LOGS/join-1.log" || die "the join script printed a password"
  ok "the join script's output carries no password"
  expect "the instance deleted its one-time password parameter" parameter_gone "/adjoin/otp/$INSTANCE_ID"
  expect_fail "the one-time password no longer opens $COMPUTER\$ (the machine set its own)" \
    'Password incorrect|Preauthentication failed' kinit_as inst "$COMPUTER\$@$REALM" "$OTP"
  out=$(replay running)
  grep -q '"outcome":"verified"' <<<"$out" || die "the join was not verified: $out"
  [ "$(ledger_status)" = joined ] || die "ledger: $(ledger_status), not joined"
  ok "the message comes back again: joined, verified"

  say "directory and instance after the join"
  expect "computer $COMPUTER is in $OU_DN" computer_in "$OU_DN"
  expect "computer $COMPUTER's description is still its owner stamp '$STAMP'" description_is "$COMPUTER" "$STAMP"
  expect "instance keytab authenticates (adcli testjoin)" \
    in_host inst adcli testjoin --domain="$DOMAIN" --domain-controller="$DC_IP"
  wait_for 30 "getent passwd alice@$DOMAIN through sssd" in_host inst getent passwd "alice@$DOMAIN"
  expect "getent group $ADMINS_GROUP@$DOMAIN lists alice" \
    sh -c 'nsenter --net="$3" --mount="$1.mnt" --uts="$1.uts" -- getent group "$2" | grep -F alice' \
    sh "$LAB/ns/inst" "$ADMINS_GROUP@$DOMAIN" "/run/netns/$NSP-inst"
  expect "alice ($ADMINS_GROUP) may log in" access_is ALLOWED "alice@$DOMAIN"
  expect "bob (not in $ADMINS_GROUP) may not" access_is DENIED "bob@$DOMAIN"
  expect "alice's password authenticates (pam_sss, Kerberos)" password_auth "alice@$DOMAIN" "$ALICE_PASS"

  say "the original's acceptance test: SSH logins, sudo, DNS"
  expect "alice ($ADMINS_GROUP) logs in over SSH with her password, into a new home directory" \
    ssh_login alice "$ALICE_PASS"
  expect "carol ($USERS_GROUP, the second login group) logs in over SSH" ssh_login carol "$CAROL_PASS"
  expect "bob (in neither group) cannot log in over SSH (PAM's account phase refuses him)" \
    ssh_refused bob "$BOB_PASS"
  expect "alice ($ADMINS_GROUP, the account's sudoGroups) may use sudo" sudo_as alice "$ALICE_PASS"
  expect_fail "carol may not use sudo" 'not in the sudoers|not allowed|may not run' sudo_as carol "$CAROL_PASS"
  expect "local accounts are unchanged (every line of /etc/passwd, shadow and group is still there)" \
    local_accounts_kept
  HOST_FQDN=${COMPUTER,,}.$DOMAIN
  grep -q "DNS: registered $HOST_FQDN A $INST_IP" "$LOGS/join-1.log" ||
    die "the join did not register the instance's address: $(grep 'DNS:' "$LOGS/join-1.log")"
  expect "the instance's address is in the directory's DNS ($HOST_FQDN A $INST_IP, registered by the join as the computer)" \
    dns_is "$HOST_FQDN" "$INST_IP"

  say "sssd restarts (as at a reboot): logins still work"
  in_host inst sh -c 'kill "$(cat /run/sssd.pid)"; for _ in $(seq 50); do [ -e /run/sssd.pid ] || break; sleep 0.1; done
    sssd -D --logger=files' || die "cannot restart sssd"
  wait_for 30 "getent passwd alice@$DOMAIN after the restart" in_host inst getent passwd "alice@$DOMAIN"
  expect "alice logs in over SSH after the restart" ssh_login alice "$ALICE_PASS"

  say "the same join again (SSM may deliver twice)"
  k1=$(kvno)
  local configured=(/etc/sssd/sssd.conf /etc/ssh/sshd_config /etc/sudoers.d/adjoin /etc/krb5.conf /etc/hosts /etc/nsswitch.conf)
  in_host inst md5sum "${configured[@]}" >"$LAB/configured.md5"
  agent inst "$INSTANCE_ID" join >"$LOGS/join-2.log" 2>&1 || die "second join (exit $?)"
  grep -q "already joined" "$LOGS/join-2.log" || die "second join did not report 'already joined'"
  [ "$(kvno)" = "$k1" ] || die "second join reset the machine password (kvno $k1 -> $(kvno))"
  ok "second run: already joined, machine password kept (kvno $k1)"
  expect "and it changed nothing: ${configured[*]} are the same" \
    sh -c 'nsenter --net="$3" --mount="$1.mnt" --uts="$1.uts" -- md5sum -c --quiet "$2"' \
    sh "$LAB/ns/inst" "$LAB/configured.md5" "/run/netns/$NSP-inst"

  say "the running event again, in a new message (EventBridge may deliver twice)"
  out=$(replay running duplicate)
  grep -q '"outcome":"skipped","reason":"already joined' <<<"$out" ||
    die "the duplicate running event was not skipped: $out"
  [ "$(join_commands)" = 1 ] || die "$(join_commands) join commands, not 1"
  ok "skipped by the ledger; still one join command"

  say "an instance launched from an image of the joined one (its keytab is the first's)"
  local clone=ICLONE0E2E clone_id=i-0c10e0000000e2e00 first_kvno first_pwd
  image_host_up clone e2e-web-copy.internal "$CLONE_IP" "$LAB" "$NSP" inst || die "the clone did not start"
  first_kvno=$(attr "$COMPUTER" msDS-KeyVersionNumber) first_pwd=$(attr "$COMPUTER" pwdLastSet)
  in_host clone mkdir -p /etc/sssd
  in_host inst cat /etc/krb5.keytab >"$LAB/clone.keytab"
  in_host clone sh -c 'cat "$1" >/etc/krb5.keytab && chmod 600 /etc/krb5.keytab' sh "$LAB/clone.keytab"
  rm -f "$LAB/clone.keytab"
  expect "the clone's copied keytab passes adcli testjoin (it would say 'joined')" \
    in_host clone adcli testjoin --domain="$DOMAIN" --domain-controller="$DC_IP"
  stage_as "$clone" "$clone_id" "Cl0neOnlyOnceAbcdefGhijkLmnop123" >"$LOGS/stage-clone.log" 2>&1 ||
    die "clone stage (exit $?): $(cat "$LOGS/stage-clone.log")"
  with_params "$LOGS/join-command.sh" COMPUTER_NAME="$clone" INSTANCE_ID="$clone_id" \
    OWNER_STAMP="adjoin $ACCOUNT $REGION $clone_id" OTP_SSM_PARAMETER="/adjoin/otp/$clone_id" >"$LOGS/clone-command.sh"
  run_script clone "$clone_id" clone-join "$LOGS/clone-command.sh" >"$LOGS/join-clone.log" 2>&1 ||
    die "clone join (exit $?): $(cat "$LOGS/join-clone.log")"
  if ! grep -q "moved to /etc/krb5.keytab.adjoin-replaced" "$LOGS/join-clone.log" ||
    grep -q "already joined" "$LOGS/join-clone.log"; then
    die "the clone did not join as itself: $(cat "$LOGS/join-clone.log")"
  fi
  grep -q "joined $DOMAIN as $clone via" "$LOGS/join-clone.log" || die "the clone did not join as $clone"
  ok "clone join: $(grep -m 1 'moved to' "$LOGS/join-clone.log"); $(grep -m 1 "joined $DOMAIN as" "$LOGS/join-clone.log")"
  expect "the clone's keytab holds $clone\$@$REALM" \
    sh -c 'nsenter --net="$3" --mount="$1.mnt" --uts="$1.uts" -- klist -k /etc/krb5.keytab | grep -F " $2"' \
    sh "$LAB/ns/clone" "$clone\$@$REALM" "/run/netns/$NSP-clone"
  expect "computer $clone exists with its own stamp" description_is "$clone" "adjoin $ACCOUNT $REGION $clone_id"
  if [ "$(attr "$COMPUTER" msDS-KeyVersionNumber)" != "$first_kvno" ] ||
    [ "$(attr "$COMPUTER" pwdLastSet)" != "$first_pwd" ]; then
    die "the clone's join changed $COMPUTER's password"
  fi
  expect "computer $COMPUTER is untouched: same password ($first_kvno), same stamp" description_is "$COMPUTER" "$STAMP"
  expect "the first instance's keytab still authenticates" \
    in_host inst adcli testjoin --domain="$DOMAIN" --domain-controller="$DC_IP"

  say "a computer of an instance's name, made beforehand by someone else, is not taken over"
  local taken=ITAKEN0E2E taken_id=i-0f00e0000000e2e00 rc=0
  st computer create "$taken" --computerou=OU=Servers --description="made by mallory" >/dev/null
  stage_as "$taken" "$taken_id" "TakenOnlyOnceAbcdefGhijkLmnop123" >"$LOGS/stage-taken.log" 2>&1 || rc=$?
  if [ "$rc" != 19 ] || ! grep -q "is not this instance's" "$LOGS/stage-taken.log"; then
    die "the stage took over $taken (exit $rc): $(cat "$LOGS/stage-taken.log")"
  fi
  expect "computer $taken keeps its creator's description" description_is "$taken" "made by mallory"
  expect_fail "and its creator's password: the one-time password does not open it" \
    'Password incorrect|Preauthentication failed|no support for encryption type' kinit_as inst "$taken\$@$REALM" "TakenOnlyOnceAbcdefGhijkLmnop123"
  ok "stage of $taken: exit 19: $(grep -m 1 "not this instance's" "$LOGS/stage-taken.log")"


  say "objects the leave must not delete, and a child object of ours"
  local foreign=IFOREIGN0E2E stray=ISTRAY0E2E
  st computer create "$foreign" --computerou=OU=Servers >/dev/null
  st computer create "$stray" --description="$STAMP" >/dev/null
  ok "computer $foreign in $OU_DN without a stamp; $stray in CN=Computers with our stamp"
  local child1="CN=adjoin-e2e-scp,CN=$COMPUTER,$OU_DN"
  local child2="CN=2026-01-01T00:00:00-00:00{0D1A2B3C-0000-0000-0000-0000000E2E00},CN=$COMPUTER,$OU_DN"
  cat >"$LAB/children.ldif" <<LDIF
dn: $child1
objectClass: serviceConnectionPoint

dn: $child2
objectClass: msFVE-RecoveryInformation
msFVE-RecoveryGuid:: AAECAwQFBgcICQoLDA0ODw==
msFVE-RecoveryPassword: 000000-000000-000000-000000-000000-000000-000000-000000
LDIF
  in_host dc env PASSWD="$ADMIN_PASS" ldbadd -H "ldap://$DC_FQDN" -U Administrator "$LAB/children.ldif" \
    >>"$LOGS/checks.log" 2>&1 || die "cannot add child objects under $COMPUTER"
  expect "$COMPUTER has child objects (a service connection point, BitLocker recovery information)" \
    both_exist "$child1" "$child2"

  say "terminated event -> leave command -> tools host"
  aws_cli ec2 terminate-instances --instance-ids "$INSTANCE_ID" >/dev/null
  t1=$(now)
  out=$(replay terminated)
  grep -q '"dispatched"' <<<"$out" || die "the terminated event was not dispatched: $out"
  agent tools "$TOOLS_ID" leave >"$LOGS/leave-1.log" 2>&1 || die "leave script (exit $?): $(cat "$LOGS/leave-1.log")"
  ok "leave script ran on the tools host: $(tail -n 1 "$LOGS/leave-1.log") ($(since "$t1") s)"
  expect_fail "computer $COMPUTER is gone" 'Unable to find computer' st computer show "$COMPUTER"
  grep -q "deleted the child objects of $COMPUTER" "$LOGS/leave-1.log" || die "no tree delete: $(cat "$LOGS/leave-1.log")"
  expect "its child objects are gone with it (tree delete)" none_exist "$child1" "$child2"
  # The same leave command, rendered for a same-named object that is not ours.
  local name rc
  for name in "$foreign" "$stray"; do
    with_params "$LOGS/leave-command.sh" COMPUTER_NAME="$name" >"$LOGS/leave-$name.sh"
    rc=0
    run_script tools "$TOOLS_ID" "leave-$name" "$LOGS/leave-$name.sh" >"$LOGS/leave-$name.log" 2>&1 || rc=$?
    if [ "$rc" != 15 ] || ! grep -q "not ours: computer $name was not deleted" "$LOGS/leave-$name.log"; then
      die "leave of $name (not ours): exit $rc: $(cat "$LOGS/leave-$name.log")"
    fi
    ok "leave of $name: exit 15: $(grep -m 1 'left in place' "$LOGS/leave-$name.log")"
  done
  expect "computer $foreign (no stamp), $stray (outside the OU) and $clone are untouched" \
    others_untouched "$foreign" "$stray" "$clone" "adjoin $ACCOUNT $REGION $clone_id"
  expect "$GMSA_GROUP no longer lists it" sh -c '! grep -Fx "$1"' sh "$COMPUTER\$" \
    < <(st group listmembers "$GMSA_GROUP")
  expect "alice, bob and the join user are untouched" st user show bob
  agent tools "$TOOLS_ID" leave >"$LOGS/leave-2.log" 2>&1 || die "second leave (exit $?)"
  grep -q "nothing to delete" "$LOGS/leave-2.log" || die "second leave did not report 'nothing to delete'"
  ok "second leave: nothing to delete"
  grep -q "removed the DNS record $HOST_FQDN" "$LOGS/leave-1.log" || die "the leave did not remove the DNS record: $(cat "$LOGS/leave-1.log")"
  expect "the instance's DNS record is gone ($HOST_FQDN), removed by the leave" dns_is "$HOST_FQDN" ""

  say "a join given up after its stage: the staged account goes, so its password opens nothing"
  local gaveup=IGAVEUP0E2E gaveup_id=i-0a0e0000000000e2e gaveup_otp=GaveUpOnceAbcdefGhijkLmnop12345
  stage_as "$gaveup" "$gaveup_id" "$gaveup_otp" >"$LOGS/stage-gaveup.log" 2>&1 ||
    die "stage of $gaveup (exit $?): $(cat "$LOGS/stage-gaveup.log")"
  expect "staged $gaveup: its one-time password opens it (before the give-up)" \
    kinit_as inst "$gaveup\$@$REALM" "$gaveup_otp"
  # The leave for two instances as the service gathers a batch's leaves: one command on
  # the tools host with an INSTANCES table, run once per row — the given-up account (ours)
  # and $foreign (not ours, exit 15) — each with its own exit code.
  local foreign_id=i-0f0e0000000000e2e
  leave_row() { # leave_row ID NAME: an INSTANCES row for instance ID, computer NAME.
    printf '%s COMPUTER_NAME=%s INSTANCE_ID=%s OWNER_STAMP=%s' "$1" "$(printf '%s' "$2" | base64 -w0)" \
      "$(printf '%s' "$1" | base64 -w0)" "$(printf 'adjoin %s %s %s' "$ACCOUNT" "$REGION" "$1" | base64 -w0)"
  }
  with_params "$LOGS/leave-command.sh" \
    INSTANCES="$(leave_row "$gaveup_id" "$gaveup")"$'\n'"$(leave_row "$foreign_id" "$foreign")" >"$LOGS/leave-gathered.sh"
  rc=0
  run_script tools "$TOOLS_ID" leave-gathered "$LOGS/leave-gathered.sh" >"$LOGS/leave-gathered.log" 2>&1 || rc=$?
  if [ "$rc" != 15 ] || ! grep -qx "adjoin-result $gaveup_id 0" "$LOGS/leave-gathered.log" ||
    ! grep -qx "adjoin-result $foreign_id 15" "$LOGS/leave-gathered.log" ||
    ! grep -q "^$gaveup_id: adjoin: deleted computer $gaveup" "$LOGS/leave-gathered.log"; then
    die "the leave for two instances (exit $rc): $(cat "$LOGS/leave-gathered.log")"
  fi
  ok "one leave command for two instances: $gaveup deleted (its exit 0), $foreign left in place (its exit 15)"
  expect_fail "after the give-up's leave, $gaveup is gone" 'Unable to find computer' st computer show "$gaveup"
  expect "and $foreign is untouched" st computer show "$foreign"
  expect_fail "and its one-time password opens nothing" \
    'not found in Kerberos database|Preauthentication failed|Password incorrect' kinit_as inst "$gaveup\$@$REALM" "$gaveup_otp"
  [ "$(ledger_status)" = leaving ] || die "ledger: $(ledger_status), not leaving before the leave is verified"
  out=$(replay terminated)
  grep -q '"outcome":"verified"' <<<"$out" || die "the leave's return was not verified: $out"
  ok "the terminate's message comes back: the leave command succeeded, verified"
  [ "$(ledger_status)" = left ] || die "ledger: $(ledger_status), not left"
  out=$(replay running late)
  grep -q '"outcome":"skipped"' <<<"$out" || die "a late running event was not skipped: $out"
  ok "ledger says left; a late running event is skipped"

  say "reconciliation: an instance gone whose terminated event was lost"
  # The clone's object is stamped as its instance's, and the ledger says joined; EC2
  # has never heard of that instance (it was terminated, and its event lost).
  local now_s
  now_s=$(date -u +%Y-%m-%dT%H:%M:%SZ)
  aws_cli dynamodb put-item --table-name "$LEDGER_TABLE" --item "$(cat <<JSON
{"instanceId": {"S": "$clone_id"}, "account": {"S": "$ACCOUNT"}, "region": {"S": "$REGION"},
 "status": {"S": "joined"}, "computerName": {"S": "$clone"}, "messageId": {"S": "lost"},
 "eventId": {"S": "lost"}, "attempts": {"N": "1"}, "createdAt": {"S": "$now_s"},
 "updatedAt": {"S": "$now_s"}, "version": {"N": "1"}}
JSON
)"
  out=$(reconcile --dry-run) || die "adjoin reconcile --dry-run: $out"
  python3 -c 'import json, sys
f = json.loads(sys.argv[1].splitlines()[0])
d = [x for x in f["drifted"] if x["instance_id"] == sys.argv[2]]
sys.exit(0 if d and d[0]["fix"] == "leave" and d[0]["ec2"] == "gone" else 1)' "$out" "$clone_id" ||
    die "reconcile did not find $clone_id: $out"
  ok "adjoin reconcile --dry-run: $clone_id is gone, its record says joined: leave"
  out=$(reconcile) || die "adjoin reconcile: $out"
  grep -q '"action":"leave","outcome":"dispatched"' <<<"$out" || die "no leave dispatched: $out"
  agent tools "$TOOLS_ID" leave "$clone_id" >"$LOGS/leave-reconciled.log" 2>&1 ||
    die "the reconciled leave (exit $?): $(cat "$LOGS/leave-reconciled.log")"
  expect_fail "computer $clone, left behind, is gone" 'Unable to find computer' st computer show "$clone"
  out=$(reconcile) || die "adjoin reconcile (again): $out"
  grep -q '"outcome":"verified"' <<<"$out" || die "the reconciled leave was not verified: $out"
  out=$(reconcile --dry-run)
  ! grep -q "$clone_id" <<<"$(head -n 1 <<<"$out")" || die "still drifted: $out"
  ok "run again: the leave verified, nothing drifted any more"

  say "end to end passed in $(since "$t0") s"
}

# What the lab must never change on the host.
host_fingerprint() {
  hostname
  md5sum /etc/hosts /etc/resolv.conf /etc/hostname /etc/krb5.conf /etc/nsswitch.conf \
    /etc/krb5.keytab /etc/sssd/sssd.conf 2>&1
  find /var/lib/sss /var/lib/samba -type f -exec md5sum {} + 2>&1 | sort
}

ADJOIN_KEEP=${ADJOIN_E2E_KEEP:-}
case ${1:-} in
  down) lab_down ;;
  ""|-h|--help) sed -n '2,4p' "$0"; exit 2 ;;
  *)
    [ "$(id -u)" = 0 ] || die "run as root (network and mount namespaces)"
    ADJOIN=$(realpath "$1")
    [ -x "$ADJOIN" ] || die "$1 is not the adjoin binary"
    before=$(host_fingerprint)
    if [ -n "$ADJOIN_KEEP" ]; then run; ok "lab kept in $LAB, run $RUN ($0 down $RUN removes it)"; exit 0; fi
    trap lab_down EXIT
    run
    lab_down
    trap - EXIT
    [ "$before" = "$(host_fingerprint)" ] || die "the host's own files changed"
    ok "the host's name, /etc files, sssd and samba state are unchanged" ;;
esac
