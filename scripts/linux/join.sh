#!/usr/bin/env bash
# adjoin: join this Linux instance to Active Directory.
#
# Run by SSM Run Command (AWS-RunShellScript). The service places the parameters above
# this script as ADJOIN_<NAME>_B64='<base64>' assignments; they are decoded here as data
# and never evaluated. No password is ever a parameter.
#
# JOIN_MODE staged (the default): the AD tools host has created the computer account
# (in its OU, with its groups and owner stamp) with a one-time password, which the
# service put in the SecureString parameter OTP_SSM_PARAMETER that only this instance
# may read. The script reads it with the instance's own role, deletes the parameter,
# and joins as the computer itself (adcli --login-type=computer); adcli then sets a
# machine password of its own, so the one-time password binds nothing any more.
#
# JOIN_MODE sharedPassword: the script reads the join user's password from SSM
# Parameter Store or Secrets Manager with the instance's own role and creates the
# computer account itself (in OU_PATH, stamped, added to COMPUTER_GROUPS).
#
# Either password is kept in a variable and handed to adcli on stdin (never in argv,
# never echoed).
#
# Exit codes: 0 joined (or already joined), 10 bad parameters, 11 packages could not be
# installed, 12 password unreadable, 13 domain controller unreachable, 14 join refused,
# 15 local configuration failed, 16 joined but not added to a computerGroups group,
# 19 a computer object of this name exists and is not this instance's (another owner's
# description, or none): not taken over.
#
# Ownership: the computer object is created with its owner in its description,
# OWNER_STAMP ("adjoin <account> <region> <instance-id>"); the leave deletes only an
# object that carries it. "Already joined" means joined as COMPUTER_NAME: adcli testjoin
# passes and the host keytab holds COMPUTER_NAME$@REALM. An instance made from an image
# of another joined machine carries that machine's keytab: its keytab is moved aside
# (to $KEYTAB.adjoin-replaced) and the instance joins as itself, leaving the other
# computer's object untouched.
# Sent to several instances at once, the command carries each one's own values (computer
# name, groups, owner stamp, …) in its INSTANCES table; the script takes its own row.
# Helpers (take_own_values, log, fail, params, require, read_dcs, dc_name, read_password) and the shell options come from common.sh,
# which the service sends ahead of this script.

take_own_values
params JOIN_MODE DOMAIN REALM DC_IPS JOIN_USER COMPUTER_NAME OU_PATH ALLOWED_GROUP COMPUTER_GROUPS \
  OWNER_STAMP OTP_SSM_PARAMETER OTP_REGION SUDO_GROUPS
require "domain, realm, computer name and owner stamp" DOMAIN REALM COMPUTER_NAME OWNER_STAMP
case ${JOIN_MODE:-staged} in
  staged) require "the one-time password parameter and its Region (staged join)" OTP_SSM_PARAMETER OTP_REGION ;;
  sharedPassword) require "the join user (shared-password join)" JOIN_USER ;;
  *) fail 10 "unknown join mode '$JOIN_MODE'" ;;
esac
read_dcs
HOST_FQDN="${COMPUTER_NAME,,}.${DOMAIN}"
# ALLOWED_GROUP and SUDO_GROUPS: AD groups, comma-separated (no AD group name has a
# comma). A name becomes data in sssd.conf, sshd_config and sudoers: no control
# characters, quotes, backslashes or pattern characters. Then one group per line.
for groups in "$ALLOWED_GROUP" "$SUDO_GROUPS"; do
  case $groups in
    *[[:cntrl:]\"\\*?!]*) fail 10 "group names '$groups' contain a control character, a quote, a backslash or a pattern character" ;;
  esac
done
ALLOWED_GROUP=${ALLOWED_GROUP//,/$'\n'}
SUDO_GROUPS=${SUDO_GROUPS//,/$'\n'}
DC=""          # the domain controller used for the join: the first that answers
DC_HOSTS=()    # "IP host-name" of each domain controller that answers
ETC=${ADJOIN_ETC:-/etc}
STATE_DIR=${ADJOIN_STATE_DIR:-/var/lib/adjoin}
KEYTAB=$ETC/krb5.keytab

# ---- packages -----------------------------------------------------------------------
# retry N CMD...: run CMD up to N times with growing pauses (the package lock may be
# held by cloud-init or unattended upgrades).
retry() {
  local tries=$1 n=1; shift
  until "$@"; do
    [ "$n" -lt "$tries" ] || return 1
    log "attempt $n of $* failed; retrying in $((n * 10))s"
    sleep $((n * 10)); n=$((n + 1))
  done
}

# os_family: debian, rhel, suse (from os-release ID and ID_LIKE), or empty.
os_family() {
  local id="" like=""
  # shellcheck disable=SC1091
  [ -r "$ETC/os-release" ] && { id=$(. "$ETC/os-release"; echo "${ID:-}"); like=$(. "$ETC/os-release"; echo "${ID_LIKE:-}"); }
  case " $id $like " in
    *" debian "*|*" ubuntu "*) echo debian ;;
    *" amzn "*|*" rhel "*|*" fedora "*|*" centos "*|*" rocky "*|*" almalinux "*) echo rhel ;;
    *" sles "*|*" suse "*|*" opensuse-leap "*) echo suse ;;
    *) log "unsupported distribution '$id'" >&2 ;;
  esac
}

# pm_install PACKAGE...: the distribution's package manager, retried while its lock is held.
pm_install() {
  case $(os_family) in
    debian)
      export DEBIAN_FRONTEND=noninteractive
      retry 6 apt-get -o DPkg::Lock::Timeout=60 update -q &&
        retry 6 apt-get -o DPkg::Lock::Timeout=60 install -y -q "$@" ;;
    rhel)
      local pm=yum; command -v dnf >/dev/null && pm=dnf
      retry 6 "$pm" install -y -q "$@" ;;
    suse) retry 6 zypper --non-interactive install "$@" ;;
    *) return 1 ;;
  esac
}

install_packages() {
  if command -v adcli >/dev/null && command -v sssd >/dev/null && command -v kinit >/dev/null &&
    command -v nsupdate >/dev/null; then
    return 0
  fi
  case $(os_family) in
    debian) pm_install sssd sssd-tools libnss-sss libpam-sss adcli krb5-user samba-common-bin dnsutils ;;
    rhel) pm_install sssd sssd-tools adcli krb5-workstation samba-common-tools oddjob-mkhomedir bind-utils ;;
    suse) pm_install sssd sssd-ad sssd-tools adcli krb5-client samba-client bind-utils ;;
    *) return 1 ;;
  esac
}

# ensure_aws_cli: the password is read with the AWS CLI. Amazon Linux ships it; elsewhere
# the distribution's package is tried, then AWS's own bundle, unpacked and installed under
# STATE_DIR (never /tmp, which may be mounted noexec).
ensure_aws_cli() {
  # An `aws` that does not run (a broken or half-removed install) counts as missing.
  aws --version >/dev/null 2>&1 && return 0
  case $(os_family) in
    debian) pm_install awscli >/dev/null 2>&1 || true ;;
    suse) pm_install aws-cli >/dev/null 2>&1 || true ;;
  esac
  aws --version >/dev/null 2>&1 && return 0
  command -v unzip >/dev/null && command -v curl >/dev/null || pm_install unzip curl >/dev/null 2>&1 || true
  local work=$STATE_DIR/awscli-install
  rm -rf "$work" && mkdir -p "$work"
  retry 3 curl -fsSL -o "$work/awscliv2.zip" "https://awscli.amazonaws.com/awscli-exe-linux-$(uname -m).zip" &&
    unzip -q -o "$work/awscliv2.zip" -d "$work" &&
    "$work/aws/install" --install-dir "$STATE_DIR/aws-cli" --bin-dir /usr/local/bin --update >/dev/null ||
    return 1
  rm -rf "$work"
  export PATH="/usr/local/bin:$PATH"
  aws --version >/dev/null 2>&1
}

# ---- configuration ------------------------------------------------------------------
write_krb5_conf() {
  {
    # Keep the distribution's drop-ins (crypto policies on RHEL and Amazon Linux).
    [ ! -d "$ETC/krb5.conf.d" ] || printf 'includedir %s/krb5.conf.d/\n' "$ETC"
    cat <<CONF
[libdefaults]
    default_realm = $REALM
    dns_lookup_realm = false
    dns_lookup_kdc = true
    rdns = false
    dns_canonicalize_hostname = false
[realms]
    $REALM = {
$(for entry in "${DC_HOSTS[@]}"; do printf '        kdc = %s\n' "${entry%% *}"; done)
        admin_server = $DC
    }
[domain_realm]
    .$DOMAIN = $REALM
    $DOMAIN = $REALM
CONF
  } >"$ETC/krb5.conf"
  chmod 644 "$ETC/krb5.conf"
}

dc_names() {
  local entry names=()
  for entry in "${DC_HOSTS[@]}"; do names+=("${entry#* }"); done
  (IFS=,; printf '%s' "${names[*]}")
}

write_sssd_conf() {
  mkdir -p "$ETC/sssd"
  {
    printf '[sssd]\nservices = nss, pam\ndomains = %s\n\n' "$DOMAIN"
    printf '[domain/%s]\n' "$DOMAIN"
    printf 'id_provider = ad\nauth_provider = ad\nad_domain = %s\nkrb5_realm = %s\n' "$DOMAIN" "$REALM"
    # sssd needs the DC's host name, not its IP: with rdns off, an IP would make it ask
    # for a ticket for ldap/<IP>, which does not exist.
    printf 'ad_server = %s\n' "$(dc_names)"
    printf 'ad_hostname = %s\nkrb5_keytab = %s\n' "$HOST_FQDN" "$KEYTAB"
    printf 'use_fully_qualified_names = true\nldap_id_mapping = true\ncache_credentials = true\n'
    printf 'fallback_homedir = /home/%%u@%%d\ndefault_shell = /bin/bash\n'
    # The instance's address in the directory's DNS, registered by sssd as the computer
    # (GSS-TSIG) and kept current; the leave removes it (a new instance may get the address).
    printf 'dyndns_update = true\ndyndns_update_ptr = false\ndyndns_refresh_interval = 43200\n'
    printf 'dyndns_server = %s\n' "$(dc_names | cut -d, -f1 | tr -d ' ')"
    if [ -n "$ALLOWED_GROUP" ]; then
      printf 'access_provider = simple\nsimple_allow_groups = %s\n' "$(paste -sd, <<<"$ALLOWED_GROUP" | sed 's/,/, /g')"
    else
      # No adGroupName tag: nobody from the directory may log in.
      printf 'access_provider = deny\n'
    fi
  } >"$ETC/sssd/sssd.conf"
  chmod 600 "$ETC/sssd/sssd.conf"
}

# enable_sss_login: NSS and PAM through sssd, home directories made at first login.
enable_sss_login() {
  if command -v authselect >/dev/null; then           # RHEL 8+, Amazon Linux 2023
    authselect select sssd with-mkhomedir --force >/dev/null
    if command -v systemctl >/dev/null; then systemctl enable --now oddjobd >/dev/null 2>&1 || true; fi
  elif command -v authconfig >/dev/null; then         # Amazon Linux 2
    authconfig --enablesssd --enablesssdauth --enablemkhomedir --update
  elif command -v pam-auth-update >/dev/null; then    # Debian, Ubuntu
    pam-auth-update --enable mkhomedir
  elif command -v pam-config >/dev/null; then         # SLES
    pam-config -a --sss --mkhomedir
  fi
  if [ -f "$ETC/nsswitch.conf" ]; then
    sed -i -E '/^(passwd|group|shadow):/{/sss/!s/$/ sss/}' "$ETC/nsswitch.conf"
  fi
}

restart_sssd() {
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl enable sssd >/dev/null 2>&1 || true
    systemctl restart sssd
  else
    if [ -r /run/sssd.pid ]; then kill "$(cat /run/sssd.pid)" 2>/dev/null || true; sleep 1; fi
    sssd -D --logger=files
  fi
}

# fq_groups GROUPS: each group of GROUPS (one per line) as sssd names it: lower case,
# @domain; one per line.
fq_groups() {
  local group
  while IFS= read -r group; do
    [ -n "$group" ] && printf '%s@%s\n' "${group,,}" "$DOMAIN"
  done <<<"$1"
}

# configure_sshd: the login groups may log in over SSH with their directory password:
# a Match block at the end of sshd_config, owned by this script (rewritten on every run,
# then `Match all`, so that lines appended later are global again), checked with
# `sshd -t` before sshd reloads. Local accounts keep their own settings.
configure_sshd() {
  local conf=$ETC/ssh/sshd_config groups block
  if [ ! -f "$conf" ]; then
    log "no $conf: SSH is not configured (openssh-server is not installed)"
    return 0
  fi
  cp -p "$conf" "$conf.adjoin-previous"
  sed -i '/^# adjoin: begin/,/^# adjoin: end/d' "$conf"
  groups=$(fq_groups "$ALLOWED_GROUP" | paste -sd,)
  if [ -n "$groups" ]; then
    block="# adjoin: begin (directory logins; rewritten by every join)"$'\n'
    block+="Match Group \"$groups\""$'\n'
    block+="    PasswordAuthentication yes"$'\n'"    KbdInteractiveAuthentication yes"$'\n'
    block+="Match all"$'\n'"# adjoin: end"
    printf '%s\n' "$block" >>"$conf"
  fi
  if command -v sshd >/dev/null && ! sshd -t -f "$conf" >/dev/null 2>&1; then
    mv -f "$conf.adjoin-previous" "$conf"
    return 1
  fi
  rm -f "$conf.adjoin-previous"
  if [ -d /run/systemd/system ] && command -v systemctl >/dev/null; then
    systemctl reload ssh >/dev/null 2>&1 || systemctl reload sshd >/dev/null 2>&1 || true
  elif [ -r /run/sshd.pid ]; then
    kill -HUP "$(cat /run/sshd.pid)" 2>/dev/null || true
  fi
}

# register_dns: the instance's address in the directory's DNS (HOST_FQDN A), as the
# computer itself (its keytab, GSS-TSIG) at the first domain controller, now; sssd keeps
# it current afterwards (dyndns_update). Best effort: judged by what the DC answers, and
# logged either way (the DNS zone may not take secure updates).
register_dns() {
  local ip dc_host dir out answer
  ip=$(ip -4 route get "$DC" 2>/dev/null | awk '{ for (i = 1; i < NF; i++) if ($i == "src") { print $(i + 1); exit } }' || true)
  dc_host=$(dc_names | cut -d, -f1 | tr -d ' ')
  if [ -z "$ip" ] || [ -z "$dc_host" ] || ! command -v nsupdate >/dev/null; then
    log "DNS: not registered now (no address, DC name or nsupdate); sssd registers it"
    return 0
  fi
  dir=$(mktemp -d)
  if KRB5CCNAME="FILE:$dir/ccache" kinit -k -t "$KEYTAB" "${COMPUTER_NAME^^}\$@$REALM" >/dev/null 2>&1; then
    out=$(printf 'server %s\nzone %s\nupdate delete %s. A\nupdate add %s. 3600 A %s\nsend\n' \
      "$dc_host" "$DOMAIN" "$HOST_FQDN" "$HOST_FQDN" "$ip" |
      KRB5CCNAME="FILE:$dir/ccache" timeout 30 nsupdate -g 2>&1) || true
  else
    out="kinit with the host keytab failed"
  fi
  rm -rf "$dir"
  answer=$(dig +short +time=3 +tries=1 "@$DC" "$HOST_FQDN" A 2>/dev/null | grep -v '^;' || true)
  if [ "$answer" = "$ip" ]; then
    log "DNS: registered $HOST_FQDN A $ip"
  else
    log "DNS: $HOST_FQDN not registered now ($(head -n 1 <<<"$out")); sssd retries"
  fi
}

# configure_sudo: members of the SUDO_GROUPS groups may run any command with sudo (and
# their password): /etc/sudoers.d/adjoin, checked with visudo before it is put in place;
# no SUDO_GROUPS removes it.
configure_sudo() {
  local file=$ETC/sudoers.d/adjoin new group
  if [ -z "$SUDO_GROUPS" ]; then
    rm -f "$file"
    return 0
  fi
  command -v visudo >/dev/null || pm_install sudo >/dev/null 2>&1 || true
  command -v visudo >/dev/null || return 1
  mkdir -p "$ETC/sudoers.d"
  new=$(mktemp "$ETC/sudoers.d/.adjoin.XXXXXX")
  {
    printf '# Written by adjoin on every join: these directory groups may use sudo.\n'
    while IFS= read -r group; do
      [ -n "$group" ] && printf '%%%s ALL=(ALL:ALL) ALL\n' "${group// /\\ }"
    done < <(fq_groups "$SUDO_GROUPS")
  } >"$new"
  chmod 440 "$new"
  if ! visudo -cf "$new" >/dev/null 2>&1; then
    rm -f "$new"
    return 1
  fi
  mv -f "$new" "$file"
}

# ---- domain controllers -------------------------------------------------------------
# discover_dcs: ask each configured DC IP for its host name (CLDAP, no DNS needed).
discover_dcs() {
  local ip name
  for ip in "${DCS[@]}"; do
    name=$(dc_name "$ip") || name=""
    if [ -z "$name" ]; then
      log "domain controller $ip does not answer for $DOMAIN"
      continue
    fi
    [ -n "$DC" ] || DC=$ip
    DC_HOSTS+=("$ip $name")
  done
  [ -n "$DC" ] || fail 13 "no domain controller answers for $DOMAIN (${DCS[*]})"
}

# pin_dc_names: the VPC resolver often does not know the directory's zone. Rather than
# pointing the whole resolver at the DCs, the DC host names the resolver cannot resolve
# are pinned in a block of /etc/hosts that this script owns (rewritten on every run).
pin_dc_names() {
  local hosts=$ETC/hosts entry name block=""
  sed -i '/^# adjoin: begin/,/^# adjoin: end/d' "$hosts"
  for entry in "${DC_HOSTS[@]}"; do
    name=${entry#* }
    getent hosts "$name" >/dev/null || block+="$entry ${name%%.*}"$'\n'
  done
  [ -n "$block" ] || return 0
  printf '# adjoin: begin (domain controllers of %s)\n%s# adjoin: end\n' "$DOMAIN" "$block" >>"$hosts"
}

# ---- join ---------------------------------------------------------------------------
# keytab_has_own_principal: the host keytab holds COMPUTER_NAME$@REALM (any case).
keytab_has_own_principal() {
  [ -e "$KEYTAB" ] || return 1
  klist -k "$KEYTAB" 2>/dev/null |
    awk -v p="${COMPUTER_NAME}\$@${REALM}" 'toupper($2) == toupper(p) { found = 1 } END { exit !found }'
}

# is_joined: joined as this instance's own computer: the keytab is ours and it still
# authenticates (the object may have been deleted since).
is_joined() {
  keytab_has_own_principal &&
    adcli testjoin --domain="$DOMAIN" --domain-controller="$DC" --host-keytab="$KEYTAB" >/dev/null 2>&1
}

# set_aside_foreign_keytab: a keytab without our principal belongs to another computer
# (an image of a joined machine): moved aside, never used, its object never touched.
set_aside_foreign_keytab() {
  [ -e "$KEYTAB" ] || return 0
  keytab_has_own_principal && return 0
  mv -f "$KEYTAB" "$KEYTAB.adjoin-replaced" ||
    fail 15 "cannot move aside $KEYTAB, which belongs to another computer"
  log "$KEYTAB held no key for ${COMPUTER_NAME}\$ (an image of another joined machine?): moved to $KEYTAB.adjoin-replaced"
}

# not_taken_over: a computer object of this name that someone else created (any user
# may create a few) must not become this instance's: adcli join would reuse it, and its
# creator would keep control of it. Ours carries OWNER_STAMP as its description.
not_taken_over() {
  local out rc=0 description
  out=$(printf '%s' "$PASSWORD" | adcli show-computer --domain="$DOMAIN" --domain-controller="$DC" \
    --login-user="$JOIN_USER" --stdin-password "$COMPUTER_NAME" 2>&1) || rc=$?
  case $rc in
    0) ;;
    5) grep -q 'No computer account' <<<"$out" && return 0
       redact "$out" >&2; fail 13 "cannot read computer $COMPUTER_NAME (adcli exit $rc)" ;;
    3|4) fail 13 "cannot reach or authenticate to domain controller $DC (adcli exit $rc)" ;;
    *) redact "$out" >&2; fail 13 "cannot read computer $COMPUTER_NAME (adcli exit $rc)" ;;
  esac
  description=$(awk '$0 == "description:" { getline; sub(/^ /, ""); print; exit }' <<<"$out")
  if [ "$description" != "$OWNER_STAMP" ]; then
    fail 19 "computer $COMPUTER_NAME exists and is not this instance's (description: '${description:-none}'); not taken over"
  fi
}

# join_staged: joins as the computer account the tools host staged, with the one-time
# password; adcli sets a new machine password and writes the keytab.
join_staged() {
  local args=(--domain="$DOMAIN" --domain-realm="$REALM" --domain-controller="$DC"
              --login-type=computer --stdin-password
              --computer-name="$COMPUTER_NAME" --host-fqdn="$HOST_FQDN"
              --host-keytab="$KEYTAB")
  local rc=0 out
  out=$(printf '%s' "$OTP" | adcli join "${args[@]}" 2>&1) || rc=$?
  unset OTP
  [ "$rc" = 0 ] || redact "$out" >&2
  case $rc in
    0) ;;
    # 3: the password was refused (wrong, used already, no such account, disabled).
    3) fail 14 "the one-time password does not open the staged account $COMPUTER_NAME (adcli exit $rc)" ;;
    4) fail 13 "cannot reach domain controller $DC (adcli exit $rc)" ;;
    *) fail 14 "adcli join with the one-time password refused (exit $rc)" ;;
  esac
}

join() {
  local args=(--domain="$DOMAIN" --domain-realm="$REALM" --domain-controller="$DC"
              --login-user="$JOIN_USER" --stdin-password
              --computer-name="$COMPUTER_NAME" --host-fqdn="$HOST_FQDN"
              --host-keytab="$KEYTAB" --description="$OWNER_STAMP")
  [ -z "$OU_PATH" ] || args+=(--domain-ou="$OU_PATH")
  local rc=0 out
  out=$(printf '%s' "$PASSWORD" | adcli join "${args[@]}" 2>&1) || rc=$?
  [ "$rc" = 0 ] || redact "$out" >&2
  case $rc in
    0) ;;
    3|4) fail 13 "cannot reach or authenticate to domain controller $DC (adcli exit $rc)" ;;
    *) fail 14 "adcli join refused (exit $rc)" ;;
  esac
}

# add_computer_groups: the computer account into each computerGroups group (e.g. the
# group allowed to read a gMSA password). Already a member is fine; other failures are
# collected in GROUP_FAILURES and end the script with exit 16 once the join is configured.
GROUP_FAILURES=()
add_computer_groups() {
  local group out
  while IFS= read -r group; do
    [ -n "$group" ] || continue
    if out=$(printf '%s' "$PASSWORD" | adcli add-member --domain="$DOMAIN" --domain-controller="$DC" \
      --login-user="$JOIN_USER" --stdin-password "$group" "${COMPUTER_NAME}\$" 2>&1); then
      log "added $COMPUTER_NAME to group '$group'"
    elif grep -q 'already exists' <<<"$out"; then
      log "$COMPUTER_NAME is already in group '$group'"
    else
      redact "$out" >&2
      GROUP_FAILURES+=("$group")
    fi
  done <<<"$COMPUTER_GROUPS"
}

main() {
  install_packages || fail 11 "could not install sssd/adcli/krb5 packages"
  discover_dcs
  pin_dc_names || fail 15 "cannot pin the domain controllers' names in $ETC/hosts"
  write_krb5_conf || fail 15 "cannot write krb5.conf"
  if is_joined; then
    log "already joined to $DOMAIN as $COMPUTER_NAME"
  elif [ "${JOIN_MODE:-staged}" = staged ]; then
    ensure_aws_cli || fail 12 "the AWS CLI, needed to read the one-time password, could not be installed"
    read_one_time_password
    set_aside_foreign_keytab
    join_staged
    unset PASSWORD
    log "joined $DOMAIN as $COMPUTER_NAME via $DC (staged account, one-time password)"
  else
    ensure_aws_cli || fail 12 "the AWS CLI, needed to read the join password, could not be installed"
    read_password
    not_taken_over
    set_aside_foreign_keytab
    join
    add_computer_groups
    unset PASSWORD
    log "joined $DOMAIN as $COMPUTER_NAME via $DC"
  fi
  write_sssd_conf || fail 15 "cannot write sssd.conf"
  enable_sss_login || fail 15 "cannot enable sssd logins (NSS, PAM)"
  restart_sssd || fail 15 "cannot (re)start sssd"
  configure_sshd || fail 15 "cannot configure sshd for directory logins (sshd -t refused it; the previous sshd_config is kept)"
  configure_sudo || fail 15 "cannot write /etc/sudoers.d/adjoin (sudo missing, or visudo refused it)"
  register_dns
  log "login allowed for group(s): $(paste -sd, <<<"${ALLOWED_GROUP:-(none)}"); sudo for: $(paste -sd, <<<"${SUDO_GROUPS:-(none)}")"
  if [ "${#GROUP_FAILURES[@]}" -gt 0 ]; then
    fail 16 "joined, but not added to group(s): ${GROUP_FAILURES[*]}"
  fi
}

main
