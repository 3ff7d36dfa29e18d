# shellcheck shell=bash
# shellcheck disable=SC2016  # inner sh -c '...' scripts get their values as $1..
# adjoin end to end: a fresh, minimal Debian 12 root filesystem as a lab host.
# Sourced by tests/e2e/samba-ad.sh (root only).
#
#   image_build CACHE_DIR
#       Builds once and caches CACHE_DIR/rootfs: `debootstrap --variant=minbase` of bookworm
#       with IMAGE_BASE_PACKAGES (sshd, sudo, iproute2, procps, python3, netbase: what a
#       cloud image has; no systemd, no documentation), and a local APT repository in it,
#       /srv/adjoin-repo, holding IMAGE_REPO_PACKAGES (what scripts/linux/join.sh installs
#       on Debian, the AWS CLI, dnsutils) with every dependency the root filesystem lacks,
#       Recommends included (the join's apt-get installs them). The image's only APT
#       source is that repository, so `apt-get update && apt-get install -y sssd ...` works
#       in the lab, with no route off the machine. The image's root has an AWS CLI plugin
#       in its AWS config that honours AWS_ENDPOINT_URL, which Debian 12's AWS CLI (2.9)
#       ignores: the lab points the instance's CLI at the emulator with it.
#       Reused while CACHE_DIR/stamp holds `image_version` (the package lists and
#       IMAGE_FORMAT: set IMAGE_*_PACKAGES after sourcing to change them, and the image is
#       rebuilt). Sets IMAGE_ROOTFS. Needs the network (the Debian mirror this machine's
#       APT uses) only when it builds, and debootstrap (apt-get installs it when missing).
#       Progress in CACHE_DIR/build.log.
#   image_host_up NAME FQDN IP LAB NSP [FROM]
#       Starts host NAME from IMAGE_ROOTFS: an overlay (lower: the cached rootfs, never
#       written; upper: LAB/NAME/upper) as the root of a new mount namespace (pivot_root),
#       with /proc, /sys (read-only), a minimal /dev (devpts), tmpfs /run and /tmp, LAB
#       bind-mounted at its own path, a new UTS namespace named FQDN, /etc/hostname,
#       /etc/hosts (IP FQDN) and /etc/resolv.conf (search $DOMAIN when set, nameserver
#       127.0.0.1: nothing answers, as host_up has it), then sshd listening on IP:22.
#       FROM, another image host's NAME: starts from a copy of that host's changes (its
#       upper directory), as an instance launched from an image of FROM.
#       No init runs: a package's init script may start its daemon when the join installs
#       it (in the network namespace, so lab_down ends it); the join starts sssd itself.
#       Needs what samba-ad.sh's run and net_up make: the network namespace
#       /run/netns/NSP-NAME, and LAB/ns as a private mount (bind-mounted on itself).
#       The namespaces are kept as LAB/ns/NAME.mnt and LAB/ns/NAME.uts, as host_up keeps
#       them, so `nsenter --net=/run/netns/NSP-NAME --mount=LAB/ns/NAME.mnt
#       --uts=LAB/ns/NAME.uts -- CMD` (samba-ad.sh's in_host) runs CMD inside the image:
#       entering a mount namespace puts the caller at that namespace's root, the image.
#   image_sshd NAME LAB NSP [IP]
#       (Re)starts the host's sshd (stops the running one first); its log is
#       LAB/logs/NAME-sshd.log when LAB/logs exists, else /var/log/sshd.log in the image.
#   image_host_down NAME LAB
#       Ends every process in the host's mount namespace and unmounts LAB/ns/NAME.mnt and
#       .uts: the namespace and its mounts (the overlay included) go with them. The
#       overlay is mounted only inside that namespace, never in the caller's, so
#       samba-ad.sh's lab_down (processes of the network namespace, then LAB/ns/*) does
#       the same; this is for a host taken down on its own, and checks nothing is left.
#
# Nothing here writes to the machine's own /etc, /var or mount table (but for installing
# debootstrap): the build runs in private mount, PID and UTS namespaces (debootstrap's
# and apt's mounts, and anything a package script starts, end with them); a host's
# mounts exist in its own mount namespace only.

IMAGE_SUITE=bookworm
IMAGE_REPO_DIR=/srv/adjoin-repo
# What a fresh cloud instance has (openssh-server for logins; sudo and python3, as Debian's
# cloud images have them); no sssd, adcli, krb5, samba, AWS CLI: the join installs those.
IMAGE_BASE_PACKAGES=(openssh-server sudo iproute2 procps python3 netbase)
# What scripts/linux/join.sh installs on Debian (install_packages, with dnsutils for
# nsupdate; ensure_aws_cli's awscli), into the image's local repository, with their
# dependencies.
IMAGE_REPO_PACKAGES=(sssd sssd-tools libnss-sss libpam-sss adcli krb5-user samba-common-bin awscli dnsutils)
IMAGE_FORMAT=2
IMAGE_ROOTFS=

image_version() {
  printf 'adjoin-image %s %s %s base=%s repo=%s\n' "$IMAGE_FORMAT" "$IMAGE_SUITE" \
    "$(dpkg --print-architecture 2>/dev/null || uname -m)" \
    "$(IFS=,; echo "${IMAGE_BASE_PACKAGES[*]}")" "$(IFS=,; echo "${IMAGE_REPO_PACKAGES[*]}")"
}

image_log() { printf '   image: %s\n' "$*"; }
image_die() { printf '\nimage: error: %s\n' "$*" >&2; return 1; }

# image_mirror: the Debian mirror this machine's APT uses for IMAGE_SUITE (one-line
# sources.list entries and deb822 .sources files), else deb.debian.org. IMAGE_MIRROR
# overrides.
image_mirror() {
  if [ -n "${IMAGE_MIRROR:-}" ]; then echo "$IMAGE_MIRROR"; return; fi
  local files=() f uri=""
  [ ! -f /etc/apt/sources.list ] || files+=(/etc/apt/sources.list)
  for f in /etc/apt/sources.list.d/*.list; do [ ! -f "$f" ] || files+=("$f"); done
  if [ "${#files[@]}" -gt 0 ]; then
    uri=$(awk -v suite="$IMAGE_SUITE" '
      $1 == "deb" {
        i = 2
        if ($i ~ /^\[/) { while (i <= NF && $i !~ /\]$/) i++; i++ }
        if ($(i + 1) == suite && $i ~ /^(https?|ftp|file):/) { print $i; exit }
      }' "${files[@]}")
  fi
  if [ -z "$uri" ]; then
    for f in /etc/apt/sources.list.d/*.sources; do
      [ -f "$f" ] || continue
      # deb822: stanzas split by blank lines; the first http, ftp or file URI of an enabled
      # "deb" stanza whose Suites list IMAGE_SUITE.
      uri=$(awk -v suite="$IMAGE_SUITE" '
        function flush() {
          if (types ~ /(^| )deb( |$)/ && enabled != "no" && (" " suites " ") ~ (" " suite " ") && first ~ /^(https?|ftp|file):/) { print first; found = 1; exit }
          types = ""; suites = ""; first = ""; enabled = ""
        }
        /^[ \t]*#/ { next }
        /^[ \t]*$/ { flush(); next }
        { key = tolower($1); sub(/:$/, "", key); $1 = "" ; sub(/^ +/, "") }
        key == "types" { types = $0 }
        key == "suites" { suites = $0 }
        key == "enabled" { enabled = tolower($0) }
        key == "uris" { n = split($0, u, " "); for (i = 1; i <= n; i++) if (u[i] ~ /^(https?|ftp|file):/) { first = u[i]; break } }
        END { if (!found) flush() }' "$f")
      [ -z "$uri" ] || break
    done
  fi
  echo "${uri:-http://deb.debian.org/debian}"
}

# image_build CACHE_DIR: see the top of this file.
image_build() {
  local cache=${1:?usage: image_build CACHE_DIR} version t0 rc=0
  mkdir -p "$cache"
  cache=$(realpath "$cache")
  version=$(image_version)
  IMAGE_ROOTFS=$cache/rootfs
  # One build at a time per cache (two runs on one machine share it).
  exec {IMAGE_LOCK_FD}>"$cache/.lock"
  flock "$IMAGE_LOCK_FD"
  if [ -d "$cache/rootfs" ] && [ "$(cat "$cache/stamp" 2>/dev/null)" = "$version" ]; then
    exec {IMAGE_LOCK_FD}>&-
    image_log "cached in $cache ($version)"
    return 0
  fi
  t0=$(date +%s)
  : >"$cache/build.log"
  if ! command -v debootstrap >/dev/null; then
    image_log "installing debootstrap"
    { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q debootstrap; } \
      >>"$cache/build.log" 2>&1 || { exec {IMAGE_LOCK_FD}>&-; image_die "cannot install debootstrap (see $cache/build.log)"; return 1; }
  fi
  local mirror
  mirror=$(image_mirror)
  image_log "building $version from $mirror (log: $cache/build.log)"
  rm -f "$cache/stamp"
  if ! image_clear "$cache/rootfs.new" || ! image_clear "$cache/rootfs"; then exec {IMAGE_LOCK_FD}>&-; return 1; fi
  # Private mount, PID and UTS namespaces: the mounts debootstrap and apt need in the
  # chroot, and anything a package script might start, end with the build.
  unshare --mount --pid --fork --uts --propagation private \
    bash -c "$(declare -f image_build_inside); image_build_inside \"\$@\"" image-build \
    "$cache/rootfs.new" "$mirror" "$IMAGE_SUITE" "$IMAGE_REPO_DIR" \
    "$(IFS=,; echo "${IMAGE_BASE_PACKAGES[*]}")" "${IMAGE_REPO_PACKAGES[@]}" \
    >>"$cache/build.log" 2>&1 || rc=$?
  if [ "$rc" != 0 ]; then
    tail -n 25 "$cache/build.log" >&2
    exec {IMAGE_LOCK_FD}>&-
    image_die "image build failed (exit $rc; $cache/build.log)"
    return 1
  fi
  mv "$cache/rootfs.new" "$cache/rootfs"
  echo "$version" >"$cache/stamp"
  exec {IMAGE_LOCK_FD}>&-
  image_log "built in $(($(date +%s) - t0)) s: $(du -sh "$cache/rootfs" | cut -f1) in $cache/rootfs," \
    "$(find "$cache/rootfs$IMAGE_REPO_DIR" -name '*.deb' | wc -l) packages in its $IMAGE_REPO_DIR"
}

# image_clear DIR: removes DIR, refusing when anything is mounted under it.
image_clear() {
  [ -e "$1" ] || return 0
  if awk -v d="$1" '$5 == d || index($5, d "/") == 1 { found = 1 } END { exit !found }' /proc/self/mountinfo; then
    image_die "something is mounted under $1; not removing it"
    return 1
  fi
  rm -rf --one-file-system "$1"
}

# image_build_inside TARGET MIRROR SUITE REPO BASE_PACKAGES(comma-separated) REPO_PACKAGE...
# Runs in the build's own namespaces (image_build); prints its progress to the log.
image_build_inside() {
  set -Eeuo pipefail
  local target=$1 mirror=$2 suite=$3 repo=$4 base=$5
  shift 5
  export LC_ALL=C DEBIAN_FRONTEND=noninteractive
  # Debian's PATH inside the chroot (the caller's may hold directories it lacks).
  export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  mount -n -t proc proc /proc   # this PID namespace's
  echo "== debootstrap $suite ($mirror) with $base"
  debootstrap --variant=minbase --components=main --include="$base" "$suite" "$target" "$mirror"
  in_target() { chroot "$target" "$@"; }
  mount -n -t proc proc "$target/proc"
  # No daemon starts in the chroot (the image holds no policy-rc.d afterwards: in the lab
  # a package's init script starts its daemon, as on a host without systemd).
  printf '#!/bin/sh\nexit 101\n' >"$target/usr/sbin/policy-rc.d"
  chmod 755 "$target/usr/sbin/policy-rc.d"
  # No documentation, manual pages or translations, now and when the join installs.
  cat >"$target/etc/dpkg/dpkg.cfg.d/90adjoin-nodoc" <<'CFG'
path-exclude=/usr/share/doc/*
path-include=/usr/share/doc/*/copyright
path-exclude=/usr/share/man/*
path-exclude=/usr/share/info/*
path-exclude=/usr/share/locale/*
path-include=/usr/share/locale/locale.alias
path-exclude=/usr/share/lintian/*
CFG
  find "$target/usr/share/doc" -mindepth 1 ! -type d ! -name copyright -delete
  find "$target/usr/share/doc" -mindepth 1 -type d -empty -delete
  rm -rf "$target"/usr/share/man/* "$target"/usr/share/info/* "$target"/usr/share/lintian/*
  find "$target/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +

  echo "== the local repository: $* and what they need"
  printf 'deb %s %s main\n' "$mirror" "$suite" >"$target/etc/apt/sources.list"
  # debootstrap leaves the suite's package lists; fetch them only when it did not.
  ls "$target"/var/lib/apt/lists/*_Packages >/dev/null 2>&1 || in_target apt-get update -q
  mkdir -p "$target$repo/partial"
  # The default APT configuration (Recommends included), as the join script's apt-get has it.
  in_target apt-get install -q -y --download-only -o Dir::Cache::Archives="$repo/" "$@"
  rm -rf "${target:?}$repo/partial" "$target$repo/lock"
  # The index: each package's control fields, file name (the pool's, without the epoch
  # and %3a apt leaves in it), size and checksums.
  in_target sh -euc '
    cd "$1"
    for f in *.deb; do
      p=$(dpkg-deb -f "$f" Package) v=$(dpkg-deb -f "$f" Version) a=$(dpkg-deb -f "$f" Architecture)
      n="${p}_${v#*:}_${a}.deb"
      [ "$f" = "$n" ] || mv "$f" "$n"
    done
    for f in *.deb; do
      dpkg-deb -f "$f" | sed "/^\$/d"
      printf "Filename: ./%s\nSize: %s\nMD5sum: %s\nSHA256: %s\n\n" "$f" "$(stat -c %s "$f")" \
        "$(md5sum "$f" | cut -d " " -f 1)" "$(sha256sum "$f" | cut -d " " -f 1)"
    done >Packages
    # A Release naming the index, so that apt fetches it alone (no compressed variants).
    printf "Origin: adjoin-e2e\nLabel: adjoin-e2e\nDate: %s\nSHA256:\n %s %s Packages\n" "$(date -u -R)" \
      "$(sha256sum Packages | cut -d " " -f 1)" "$(stat -c %s Packages)" >Release
    chmod 644 ./*.deb Packages Release
  ' sh "$repo"
  chmod 755 "$target$repo"
  printf '# The lab has no route off the machine: the only source is the image'\''s own repository.\ndeb [trusted=yes] file:%s ./\n' \
    "$repo" >"$target/etc/apt/sources.list"
  rm -f "$target"/etc/apt/sources.list.d/*

  echo "== offline check: apt-get update and a simulated install with no network"
  unshare --net chroot "$target" sh -euc '
    apt-get update -q
    n=$(apt-get install -s -q -y "$@" | grep -c "^Inst ")
    echo "offline: $n packages would be installed"' sh "$@"

  echo "== the emulator's endpoint for the AWS CLI"
  # Debian 12's AWS CLI (2.9) predates AWS_ENDPOINT_URL (2.13): an AWS CLI plugin, loaded
  # from root's AWS config, takes the endpoint from that variable when it is set (the lab
  # sets it, pointing at the emulator) and does nothing otherwise.
  mkdir -p "$target/usr/local/lib/adjoin-e2e" "$target/root/.aws"
  cat >"$target/usr/local/lib/adjoin-e2e/adjoin_e2e_aws_endpoint.py" <<'PY'
"""adjoin end to end: AWS_ENDPOINT_URL for an AWS CLI older than 2.13 (the lab's emulator)."""
import os


def _endpoint_from_environment(parsed_args, **kwargs):
    url = os.environ.get("AWS_ENDPOINT_URL")
    if url and not getattr(parsed_args, "endpoint_url", None):
        parsed_args.endpoint_url = url


def awscli_initialize(cli):
    cli.register("top-level-args-parsed", _endpoint_from_environment)
PY
  printf '[plugins]\ncli_legacy_plugin_path = /usr/local/lib/adjoin-e2e\nadjoin_e2e_aws_endpoint = adjoin_e2e_aws_endpoint\n' \
    >"$target/root/.aws/config"

  echo "== cleaning up"
  rm -f "$target/usr/sbin/policy-rc.d"
  rm -rf "$target"/var/lib/apt/lists/* "$target"/var/cache/apt/*.bin "$target"/var/cache/apt/archives/*.deb \
    "$target"/var/cache/debconf/*-old "$target"/var/lib/dpkg/*-old "$target"/tmp/* "$target"/root/.bash_history
  find "$target/var/log" -type f -exec truncate -s 0 {} +
  # Nothing of the build machine's own: its name and resolver are set per lab host.
  echo localhost >"$target/etc/hostname"
  printf '127.0.0.1 localhost\n' >"$target/etc/hosts"
  : >"$target/etc/resolv.conf"
  umount -n "$target/proc"
}

# image_host_up NAME FQDN IP LAB NSP [FROM]: see the top of this file.
image_host_up() {
  local h=${1:?usage: image_host_up NAME FQDN IP LAB NSP [FROM]} fqdn=${2:?} ip=${3:?} lab=${4:?} nsp=${5:?}
  local from=${6:-} d=$lab/$1
  if [ -z "${IMAGE_ROOTFS:-}" ] || [ ! -d "$IMAGE_ROOTFS$IMAGE_REPO_DIR" ]; then image_die "no image: run image_build first"; return 1; fi
  [ -e "/run/netns/$nsp-$h" ] || { image_die "no network namespace $nsp-$h (net_up makes it)"; return 1; }
  mkdir -p "$d"/{upper,work,root} "$lab/ns"
  if [ -n "$from" ]; then
    # An image of host FROM: its changes to the image (whiteouts, xattrs and all).
    [ -d "$lab/$from/upper" ] || { image_die "no image host $from to copy"; return 1; }
    cp -a "$lab/$from/upper/." "$d/upper/"
  fi
  touch "$lab/ns/$h.mnt" "$lab/ns/$h.uts"
  echo "$ip" >"$d/ip"
  # In the host's network namespace (its sysfs), a new mount and UTS namespace, kept in
  # LAB/ns. The overlay and the rest are mounted there only; pivot_root makes the overlay
  # that namespace's root, and the machine's own root is detached from it.
  nsenter --net="/run/netns/$nsp-$h" -- \
    unshare --mount="$lab/ns/$h.mnt" --uts="$lab/ns/$h.uts" --propagation private /bin/sh -euc '
    rootfs=$1 d=$2 lab=$3 fqdn=$4 ip=$5 domain=$6
    r=$d/root
    mount -n -t overlay overlay -o "lowerdir=$rootfs,upperdir=$d/upper,workdir=$d/work" "$r"
    mount -n -t proc -o nosuid,nodev,noexec proc "$r/proc"
    mount -n -t sysfs -o ro,nosuid,nodev,noexec sysfs "$r/sys"
    mount -n -t tmpfs -o mode=0755,nosuid,size=16m tmpfs "$r/dev"
    for n in null:1:3 zero:1:5 full:1:7 random:1:8 urandom:1:9 tty:5:0; do
      IFS=: read -r name major minor <<EOF
$n
EOF
      mknod -m 666 "$r/dev/$name" c "$major" "$minor"
    done
    mkdir -m 755 "$r/dev/pts" && mkdir -m 1777 "$r/dev/shm"
    mount -n -t devpts -o newinstance,ptmxmode=0666,mode=0620,gid=5,nosuid,noexec devpts "$r/dev/pts"
    mount -n -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/dev/shm"
    ln -s pts/ptmx "$r/dev/ptmx" && ln -s /proc/self/fd "$r/dev/fd"
    ln -s /proc/self/fd/0 "$r/dev/stdin" && ln -s /proc/self/fd/1 "$r/dev/stdout" && ln -s /proc/self/fd/2 "$r/dev/stderr"
    mount -n -t tmpfs -o mode=0755,nosuid,nodev tmpfs "$r/run"
    mkdir -p -m 755 "$r/run/lock" "$r/run/sshd"
    mount -n -t tmpfs -o mode=1777,nosuid,nodev tmpfs "$r/tmp"
    # The lab directory at its own path, as host_up has it (the harness hands files over there).
    mkdir -p "$r$lab" && mount -n --bind "$lab" "$r$lab"
    hostname "$fqdn"
    echo "$fqdn" >"$r/etc/hostname"
    rm -f "$r/etc/hosts" "$r/etc/resolv.conf"
    printf "127.0.0.1 localhost\n%s %s %s\n" "$ip" "$fqdn" "${fqdn%%.*}" >"$r/etc/hosts"
    # The VPC resolver stand-in: it knows nothing of the directory.
    { [ -z "$domain" ] || printf "search %s\n" "$domain"; printf "nameserver 127.0.0.1\n"; } >"$r/etc/resolv.conf"
    cd "$r"
    pivot_root . .
    umount -n -l .
  ' sh "$IMAGE_ROOTFS" "$d" "$lab" "$fqdn" "$ip" "${DOMAIN:-}" || { image_die "cannot start image host $h"; return 1; }
  image_in "$h" "$lab" "$nsp" test -d "$IMAGE_REPO_DIR" || { image_die "$h: the mount namespace's root is not the image"; return 1; }
  image_sshd "$h" "$lab" "$nsp" "$ip"
}

# image_in NAME LAB NSP CMD...: CMD in the image host (as samba-ad.sh's in_host).
image_in() {
  local h=$1 lab=$2 nsp=$3; shift 3
  nsenter --net="/run/netns/$nsp-$h" --mount="$lab/ns/$h.mnt" --uts="$lab/ns/$h.uts" -- "$@"
}

# image_sshd NAME LAB NSP [IP]: see the top of this file.
image_sshd() {
  local h=$1 lab=$2 nsp=$3 ip=${4:-} log=/var/log/sshd.log
  [ ! -d "$lab/logs" ] || log=$lab/logs/$h-sshd.log
  [ -n "$ip" ] || ip=$(cat "$lab/$h/ip")
  image_in "$h" "$lab" "$nsp" sh -euc '
    if [ -r /run/sshd.pid ]; then
      pid=$(cat /run/sshd.pid)
      kill "$pid" 2>/dev/null || true
      for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      rm -f /run/sshd.pid
    fi
    mkdir -p -m 755 /run/sshd
    /usr/sbin/sshd -E "$2" -o ListenAddress="$1"
    for _ in $(seq 50); do [ ! -s /run/sshd.pid ] || exit 0; sleep 0.1; done
    echo "sshd did not start ($2)" >&2; exit 1
  ' sh "$ip" "$log" </dev/null || { image_die "$h: sshd did not start"; return 1; }
  [ ! -d "$lab/pids" ] || image_in "$h" "$lab" "$nsp" cat /run/sshd.pid >"$lab/pids/$h-sshd.pid"
}

# image_host_down NAME LAB: see the top of this file.
image_host_down() {
  local h=${1:?usage: image_host_down NAME LAB} lab=${2:?} ns p f left
  if [ -e "$lab/ns/$h.mnt" ] && mountpoint -q "$lab/ns/$h.mnt"; then
    ns="mnt:[$(stat -L -c %i "$lab/ns/$h.mnt")]"
    for p in /proc/[0-9]*; do
      [ "$(readlink "$p/ns/mnt" 2>/dev/null)" = "$ns" ] || continue
      p=${p#/proc/}
      kill -TERM "$p" 2>/dev/null || continue
      for _ in $(seq 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
      kill -KILL "$p" 2>/dev/null || true
    done
  fi
  for f in "$lab/ns/$h.mnt" "$lab/ns/$h.uts"; do
    if [ -e "$f" ] && mountpoint -q "$f"; then umount -n "$f"; fi
  done
  # The overlay lived in that namespace only: no mount table may still hold it.
  left=$(grep -l -F "upperdir=$lab/$h/upper," /proc/[0-9]*/mountinfo 2>/dev/null || true)
  [ -z "$left" ] || { image_die "$h: its overlay is still mounted (${left//$'\n'/ })"; return 1; }
}
