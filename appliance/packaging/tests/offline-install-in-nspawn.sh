#!/usr/bin/env bash
# The air-gapped install, tested as written: the commands of docs/install.md
# and docs/upgrade.md, taken from the documents themselves (doc-commands.sh:
# the ```sh transfer-machine blocks run here, the ```sh offline-host blocks
# inside the test host), on the minimal supported host — a root filesystem
# made with exactly `debootstrap --variant=minbase
# --include=systemd,systemd-sysv,dbus` (rootfs.sh), booted with systemd as
# PID 1 (systemd-nspawn) in a network namespace of this test's own with no
# route anywhere: no curl, unzip or minisign inside, no package source but
# the bundle. Then, from the test host's side of that namespace's link (a
# second namespace: minbase has no HTTP client), the first admin is set up
# with the link the installer printed and signs in; the documented upgrade
# to N+1 runs; the release answers N+1 with the admin's session data kept.
# Around it: a host that lacks a package the bundle cannot provide is
# refused by --check with the package named (and nothing written outside a
# temporary directory); a partial installation (PostgreSQL removed) is
# repaired by running the installer again; the unpacked bundles are gone
# after success; the host's apt configuration is as it was; the unit's
# sandbox, reload, clean stop and purge keeping data.
#
# The placeholders the documents' commands use, and what this test puts in:
#   docs/install.md   0.1.0 → release N (the bundle's version)
#   docs/upgrade.md   0.2.0 → release N+1
# and the files they name are in the working directory under the release's
# own names: mogothrow77-install (+ .minisig), mogothrow77-N-offline.zip,
# and the public key as mogothrow77.pub.
#
# usage: offline-install-in-nspawn.sh RELEASE_DIR BUNDLE_N1.zip PUBLIC_KEY
#   RELEASE_DIR holds mogothrow77-N-offline.zip, mogothrow77-install and
#   mogothrow77-install.minisig as the release build leaves them.
set -euo pipefail

release_dir=$(readlink -f "$1")
bundle_n1=$(readlink -f "$2")
pub=$(readlink -f "$3")
here=$(dirname "$(readlink -f "$0")")
docs=$(readlink -f "$here/../../../docs")
max_exposure=1.5
for tool in systemd-nspawn minisign curl ip; do
  command -v "$tool" >/dev/null || { echo "missing $tool" >&2; exit 2; }
done
bundle_n=$(ls "$release_dir"/mogothrow77-*-offline.zip | head -1)
n=$(basename "$bundle_n" | sed -n 's/^mogothrow77-\(.*\)-offline\.zip$/\1/p')
n1=$(basename "$bundle_n1" | sed -n 's/^mogothrow77-\(.*\)-offline\.zip$/\1/p')
[ -n "$n" ] && [ -n "$n1" ] || { echo "bundle names are not mogothrow77-VERSION-offline.zip" >&2; exit 2; }
[ -f "$release_dir/mogothrow77-install.minisig" ] || { echo "no mogothrow77-install.minisig beside the bundle in $release_dir" >&2; exit 2; }

# The documents' commands with the placeholders filled in.
install_for() { "$here/doc-commands.sh" "$docs/install.md" "$1" | sed "s/0\.1\.0/$n/g"; }
upgrade_commands=$("$here/doc-commands.sh" "$docs/upgrade.md" offline-host | sed "s/0\.2\.0/$n1/g")

work=$(mktemp -d /var/tmp/m77-offline.XXXXXX)
netns_client=m77c$$
netns_server=m77s$$
cleanup() {
  ip netns del "$netns_client" 2>/dev/null || true
  ip netns del "$netns_server" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# --- the transfer machine (this host) -------------------------------------
transfer=$work/transfer
mkdir -p "$transfer"
cp "$bundle_n" "$release_dir/mogothrow77-install" "$release_dir/mogothrow77-install.minisig" "$transfer/"
cp "$pub" "$transfer/mogothrow77.pub"
(cd "$transfer" && sh -e -c "$(install_for transfer-machine)") >"$work/transfer.out" 2>&1 \
  || { cat "$work/transfer.out" >&2; echo "FAIL the transfer-machine commands of install.md" >&2; exit 1; }
grep -q "Signature and comment signature verified" "$work/transfer.out" \
  && grep -q "Trusted comment: mogothrow77-install $n, commit" "$work/transfer.out" \
  || { cat "$work/transfer.out" >&2; echo "FAIL the installer's signature" >&2; exit 1; }
echo "ok transfer-machine: installer signature verified as install.md says"
# A changed installer fails that check.
cp "$transfer/mogothrow77-install" "$work/tampered"
printf 'x' >>"$transfer/mogothrow77-install"
if (cd "$transfer" && sh -e -c "$(install_for transfer-machine)") >/dev/null 2>&1; then
  echo "FAIL a changed installer passed the transfer-machine check" >&2; exit 1
fi
mv "$work/tampered" "$transfer/mogothrow77-install"
echo "ok transfer-machine: a changed installer is refused"

# --- the offline host -----------------------------------------------------
cache=$("$here/rootfs.sh" bookworm)
root=$work/root
cp -a "$cache" "$root"
for tool in unzip minisign curl wget; do
  if [ -e "$root/usr/bin/$tool" ]; then echo "the test host has $tool: not the minimal host" >&2; exit 1; fi
done
# The offline host's name (an admin's host has one; debootstrap copied
# this machine's).
hostname=m77-offline
echo "$hostname" >"$root/etc/hostname"
# Its fully qualified name, recorded in /etc/hosts as Debian's installer
# does: the installer adds it to tls.hostnames.
fqdn=$hostname.site.test
printf '127.0.1.1\t%s\t%s\n' "$fqdn" "$hostname" >>"$root/etc/hosts"
cp "$transfer/"* "$root/root/"
cp "$bundle_n1" "$root/root/"
mkdir -p "$root/root/sync"
printf '%s\n' "$(install_for offline-host)" >"$root/root/install-commands.sh"
printf '%s\n' "$upgrade_commands" >"$root/root/upgrade-commands.sh"
printf 'N=%s\nN1=%s\n' "$n" "$n1" >"$root/root/versions"

cat >"$root/root/offline-test.sh" <<'EOF'
#!/bin/sh
# Runs inside the booted test host; one result line per check.
. /root/versions
out=/root/results
log=/root/detail.log
: >"$out"
ok() { echo "ok $*" >>"$out"; }
fail() { echo "FAIL $*" >>"$out"; }
check() { name=$1; shift; if "$@" >>"$log" 2>&1; then ok "$name"; else fail "$name"; fi; }
# A step the test host runs over the network; its result is this check's.
host_step() {
  : >"/root/sync/$1.request"
  for _ in $(seq 1 600); do
    if [ -f "/root/sync/$1.done" ]; then
      grep -qx ok "/root/sync/$1.done"
      return
    fi
    sleep 0.5
  done
  return 1
}
cd /root
# The host's apt sources, its lists and package caches, before. (The
# packages installed may add their own apt.conf.d snippets, as
# postgresql-common does: that is theirs, not the installer's.)
apt_state() {
  find /etc/apt/sources.list /etc/apt/sources.list.d /var/lib/apt/lists /var/cache/apt/*.bin 2>/dev/null | sort
  cat /etc/apt/sources.list /etc/apt/sources.list.d/* 2>/dev/null | md5sum
}
apt_state >/root/apt-before
# Everything outside the places a running system writes to anyway.
tree_state() {
  find / -xdev \( -path /proc -o -path /sys -o -path /dev -o -path /run -o -path /tmp \
    -o -path /var/log -o -path /var/tmp -o -path /root -o -path /var/lib/systemd \
    -o -path /var/cache/ldconfig -o -path /etc/machine-id \) -prune -o -print | sort
}

# 1. A host that holds back a package the bundle does not carry (an admin
# pin here): --check names it and the fix, changes nothing, leaves no
# temporary files.
cp mogothrow77-install /root/refused-install && chmod 755 /root/refused-install
printf 'Package: procps\nPin: version *\nPin-Priority: -1\n' >/etc/apt/preferences.d/m77-test-no-procps
tree_state >/root/tree-before
/root/refused-install "mogothrow77-$N-offline.zip" --public-key mogothrow77.pub --check >/root/refused.out 2>&1
code=$?
tree_state >/root/tree-after
cat /root/refused.out >>"$log"
check refused-check-exit-10 [ "$code" = 10 ]
check refused-check-names-procps grep -q '^FAIL  packages: .*apt cannot install procps' /root/refused.out
check refused-check-shows-apts-lines grep -q '^      apt: .*Depends: procps' /root/refused.out
check refused-check-says-the-fix grep -q '^      fix: install procps on this host' /root/refused.out
check refused-check-wrote-nothing diff /root/tree-before /root/tree-after
check refused-check-left-no-temporary-files sh -c '! ls -d /tmp/mogothrow77-install-check.* 2>/dev/null'
rm -f /etc/apt/preferences.d/m77-test-no-procps /root/refused-install

# 2. install.md's offline-host commands, as written.
sh -e /root/install-commands.sh >/root/install.out 2>&1
code=$?
cat /root/install.out >>"$log"
check doc-install-exit-0 [ "$code" = 0 ]
check doc-check-passed grep -q '^all checks passed; nothing was changed' /root/install.out
check doc-packages-simulated grep -q "^ok    packages: apt can install mogothrow77 postgresql-15 from the bundle alone" /root/install.out
check doc-installed grep -q '^ok    installed mogothrow77 postgresql-15 from the bundle' /root/install.out
check doc-ready grep -q "^ok    service ready in .*answers version $N" /root/install.out
check doc-setup-link grep -q '^  https://.*/setup#token=' /root/install.out
check doc-fqdn-added grep -q '^ok    tls.hostnames: m77-offline.site.test added in /etc/mogothrow77/config.toml' /root/install.out
check fqdn-in-config grep -q '^hostnames = \["localhost", "m77-offline.site.test"\]' /etc/mogothrow77/config.toml
check unpacked-bundle-removed sh -c 'grep -q "^ok    removed the unpacked bundle" /root/install.out && [ ! -e /var/lib/mogothrow77-install ]'
check key-kept-for-upgrades cmp /root/mogothrow77.pub /etc/mogothrow77/release-keys/mogothrow77.pub
apt_state >/root/apt-after
check host-apt-state-unchanged diff /root/apt-before /root/apt-after
check postgresql-15-installed sh -c 'dpkg-query -W -f "\${Status}" postgresql-15 | grep -q " installed$"'
# A dependency of the .deb (point-in-time recovery), so from the bundle too.
check pgbackrest-installed sh -c 'dpkg-query -W -f "\${Status}" pgbackrest | grep -q " installed$"'

# 3. The first admin, from the other side of the network.
check first-admin-signed-in host_step first-admin
check console-by-fqdn host_step by-fqdn

# 4. The service as installed.
check runs-as-service-user sh -c '[ "$(systemctl show -p User --value mogothrow77)" = mogothrow77 ]'
postgres_child_of_service() {
  main=$(systemctl show -p MainPID --value mogothrow77)
  for pid in /proc/[0-9]*; do
    if [ "$(cut -d' ' -f4 "$pid/stat" 2>/dev/null)" = "$main" ] && grep -qx postgres "$pid/comm" 2>/dev/null; then
      [ "$(stat -c %U "$pid")" = mogothrow77 ] && return 0
    fi
  done
  return 1
}
check postgres-child-of-service postgres_child_of_service
check admin-check mogothrow77 check
same_version_refused() {
  mogothrow77-upgrade check "mogothrow77-$N-offline.zip" >/root/same-version.out 2>&1
  [ $? -eq 10 ] && grep -q "is already installed" /root/same-version.out
}
check upgrade-check-same-version-refused same_version_refused
check config-private sh -c '[ "$(stat -c %a:%G /etc/mogothrow77/config.toml)" = 640:mogothrow77 ]'
check state-dir-0750 sh -c '[ "$(stat -c %a /var/lib/mogothrow77)" = 750 ]'
check reload sh -c 'systemctl reload mogothrow77 && sleep 1 && [ "$(systemctl is-active mogothrow77)" = active ]'
systemd-analyze security --no-pager mogothrow77.service >/root/security.txt 2>&1
exposure=$(sed -n 's/.*Overall exposure level for mogothrow77.service: \([0-9.]*\).*/\1/p' /root/security.txt)
echo "exposure ${exposure:-unknown}" >>"$out"
check stop-clean sh -c 'systemctl stop mogothrow77 && [ "$(systemctl show -p Result --value mogothrow77)" = success ] && [ ! -e /var/lib/mogothrow77/postgres/postmaster.pid ]'

# 5. A partial installation (PostgreSQL gone): the service cannot start;
# the installer, run again, repairs it.
dpkg --remove postgresql-15 >>"$log" 2>&1
check partial-install-does-not-start sh -c '! systemctl start mogothrow77'
./mogothrow77-install "mogothrow77-$N-offline.zip" --public-key mogothrow77.pub >/root/repair.out 2>&1
code=$?
cat /root/repair.out >>"$log"
check rerun-repairs-exit-0 [ "$code" = 0 ]
check rerun-reinstalled-postgresql sh -c 'grep -q "^ok    checked mogothrow77 postgresql-15 from the bundle" /root/repair.out && dpkg-query -W -f "\${Status}" postgresql-15 | grep -q " installed$"'
check rerun-ready grep -q "^ok    service ready in .*answers version $N" /root/repair.out
check rerun-signed-in-admin-kept grep -q '^users exist already' /root/repair.out

# 6. upgrade.md's offline-host commands, as written, to N+1.
sh -e /root/upgrade-commands.sh >/root/upgrade.out 2>&1
code=$?
cat /root/upgrade.out >>"$log"
check doc-upgrade-exit-0 [ "$code" = 0 ]
check doc-upgraded grep -q "upgraded $N → $N1; the service was down" /root/upgrade.out
check upgrade-staging-removed sh -c '[ ! -e /var/lib/mogothrow77-upgrade/staging ] && ls /var/lib/mogothrow77-upgrade/releases/*.deb'
check upgraded-answers-and-admin-signs-in host_step after-upgrade

# 7. Purge: configuration gone, data kept.
check purge sh -c 'dpkg --purge mogothrow77 && [ ! -e /usr/lib/systemd/system/mogothrow77.service ] && [ ! -e /etc/mogothrow77 ]'
check purge-keeps-data test -e /var/lib/mogothrow77/postgres/PG_VERSION
check no-process-left sh -c '! systemctl is-active --quiet mogothrow77'
journalctl -u mogothrow77 --no-pager >/root/journal.txt 2>&1 || true
echo done >>"$out"
systemctl poweroff --no-block
EOF
chmod 755 "$root/root/offline-test.sh"
cat >"$root/etc/systemd/system/offline-test.service" <<'EOF'
[Unit]
Description=Mogothrow77 offline install test
After=multi-user.target

[Service]
Type=exec
ExecStart=/root/offline-test.sh

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/offline-test.service "$root/etc/systemd/system/multi-user.target.wants/offline-test.service"

# Two namespaces of this test's own joined by one link: the test host's
# side (client) and the offline host's (server). No route leaves them.
client_ip=10.231.77.1
server_ip=10.231.77.2
ip netns add "$netns_client"
ip netns add "$netns_server"
ip link add m77c$$ netns "$netns_client" type veth peer name eth0 netns "$netns_server"
ip -n "$netns_client" addr add "$client_ip/30" dev m77c$$
ip -n "$netns_server" addr add "$server_ip/30" dev eth0
for ns in "$netns_client" "$netns_server"; do
  ip -n "$ns" link set lo up
done
ip -n "$netns_client" link set m77c$$ up
ip -n "$netns_server" link set eth0 up

# The host's steps, over the link: curl in the client namespace, the
# certificate checked against the one the appliance generated, for the
# name in the link the installer printed (the offline host's name, as
# install.md says to use from another machine).
password='correct horse battery staple 77'
client() {
  ip netns exec "$netns_client" curl -sS --max-time 20 --cacert "$root/var/lib/mogothrow77/tls/cert.pem" \
    --resolve "$hostname:8443:$server_ip" "$@"
}
api=https://$hostname:8443
first_admin() {
  local link token csrf
  link=$(sed -n '/^first-admin setup link/{n;s/^  //;p}' "$root/root/install.out")
  token=${link##*#token=}
  [ -n "$link" ] && [ "$token" != "$link" ] || { echo "no setup link in the installer's output"; return 1; }
  # The link as install.md says to use it from another machine: its host
  # replaced by the offline host's name.
  link=$(echo "$link" | sed "s#^https://[^/]*/#$api/#")
  client -f -o /dev/null "$link" || { echo "GET $link failed"; return 1; }
  csrf=$(client -c "$work/jar" -H 'content-type: application/json' \
    -d "{\"token\":\"$token\",\"username\":\"admin\",\"password\":\"$password\"}" "$api/api/v1/setup" \
    | sed -n 's/.*"csrf_token":"\([^"]*\)".*/\1/p')
  [ -n "$csrf" ] || { echo "setup with the printed token failed"; return 1; }
  signed_in
}
signed_in() {
  rm -f "$work/jar"
  client -f -c "$work/jar" -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$api/api/v1/auth/login" >/dev/null \
    || { echo "sign-in failed"; return 1; }
  client -f -b "$work/jar" "$api/api/v1/me" | grep -q '"username":"admin"' || { echo "/api/v1/me is not the admin"; return 1; }
}
# The console by the host's fully qualified name: allowed (not 421), and
# named by the certificate the appliance generated.
by_fqdn() {
  ip netns exec "$netns_client" curl -sS -f --max-time 20 -o /dev/null \
    --cacert "$root/var/lib/mogothrow77/tls/cert.pem" \
    --resolve "$fqdn:8443:$server_ip" "https://$fqdn:8443/" \
    || { echo "the console does not answer by $fqdn"; return 1; }
}
after_upgrade() {
  client -f "$api/readyz" | grep -q "\"version\":\"$n1\"" || { echo "/readyz does not answer $n1"; return 1; }
  signed_in
}

echo "==> booting the offline test host (network: one link to the test's own namespace)"
start=$SECONDS
systemd-nspawn --quiet --register=no --keep-unit \
  --network-namespace-path="/run/netns/$netns_server" -D "$root" -b >"$work/boot.log" 2>&1 &
nspawn=$!
deadline=$((SECONDS + 900))
while kill -0 "$nspawn" 2>/dev/null; do
  for request in "$root"/root/sync/*.request; do
    [ -e "$request" ] || continue
    step=$(basename "$request" .request)
    result=fail
    case "$step" in
      first-admin) first_admin >>"$work/host-steps.log" 2>&1 && result=ok ;;
      by-fqdn) by_fqdn >>"$work/host-steps.log" 2>&1 && result=ok ;;
      after-upgrade) after_upgrade >>"$work/host-steps.log" 2>&1 && result=ok ;;
    esac
    rm -f "$request"
    echo "$result" >"$root/root/sync/$step.done"
    echo "host step $step: $result"
  done
  if [ "$SECONDS" -gt "$deadline" ]; then
    echo "the offline test host ran over 900 s" >&2
    kill "$nspawn" 2>/dev/null || true
    break
  fi
  sleep 0.5
done
wait "$nspawn" || true
echo "==> offline test host ran for $((SECONDS - start)) s"

if [ ! -f "$root/root/results" ]; then
  echo "no results: the test never ran" >&2
  tail -40 "$work/boot.log" >&2
  exit 1
fi
cat "$root/root/results"
failed=0
grep -q '^FAIL' "$root/root/results" && failed=1
grep -qx done "$root/root/results" || { echo "the test did not finish" >&2; failed=1; }
exposure=$(sed -n 's/^exposure //p' "$root/root/results")
if ! awk -v e="$exposure" -v max="$max_exposure" 'BEGIN { exit !(e != "" && e + 0 <= max + 0) }'; then
  echo "systemd-analyze security exposure '$exposure' is over $max_exposure" >&2
  failed=1
fi
if [ "$failed" = 1 ]; then
  echo "---- host steps" >&2; cat "$work/host-steps.log" >&2 || true
  echo "---- detail" >&2; cat "$root/root/detail.log" >&2 || true
  echo "---- journal" >&2; tail -60 "$root/root/journal.txt" >&2 || true
  exit 1
fi
echo "==> offline install and upgrade as documented passed (systemd exposure $exposure)"
