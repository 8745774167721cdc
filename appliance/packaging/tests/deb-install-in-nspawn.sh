#!/usr/bin/env bash
# Real install test of the .deb alone: a minimal Debian (rootfs.sh) of
# another release (Debian 11, for the portable binary) with its own
# PostgreSQL, pgBackRest, procps and curl preinstalled, booted with systemd as PID 1
# (systemd-nspawn) and the network off (--private-network). Inside, a test
# unit installs the .deb with apt (no other source; the offline bundle's
# install on Debian 12 is offline-install-in-nspawn.sh). Then it waits for
# the service to become active (Type=notify: only after
# READY=1), calls /readyz over TLS, runs `mogothrow77 check`, reloads, scores
# the sandbox with `systemd-analyze security`, stops, restarts and purges.
# The host checks every result line; non-zero on any failure.
#
# usage: deb-install-in-nspawn.sh PACKAGE.deb SUITE
set -euo pipefail

source=$(readlink -f "$1")
suite=${2:?usage: $0 PACKAGE.deb SUITE}
here=$(dirname "$(readlink -f "$0")")
max_exposure=1.5
command -v systemd-nspawn >/dev/null || { echo "missing systemd-nspawn: apt-get install systemd-container" >&2; exit 2; }
cache=$("$here/rootfs.sh" "$suite" procps,curl,ca-certificates,postgresql,pgbackrest)

work=$(mktemp -d /var/tmp/m77-nspawn.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
cp -a "$cache" "$work/root"
root=$work/root
mkdir -p "$root/root/bundle"
cp "$source" "$root/root/bundle/"
: >"$root/root/apt-sources.list"

cat >"$root/root/install-test.sh" <<'EOF'
#!/bin/bash
# Runs inside the booted container; one result line per check.
out=/root/results
: >"$out"
ok() { echo "ok $*" >>"$out"; }
fail() { echo "FAIL $*" >>"$out"; }
check() { local name=$1; shift; if "$@" >>/root/detail.log 2>&1; then ok "$name"; else fail "$name"; fi; }
wait_active() {
  for _ in $(seq 1 180); do
    [ "$(systemctl is-active mogothrow77)" = active ] && return 0
    sleep 0.5
  done
  return 1
}

# No network: the lone .deb is the only package source.
apt_offline="-o Dir::Etc::SourceList=/root/apt-sources.list -o Dir::Etc::SourceParts=-"
check install-deb env DEBIAN_FRONTEND=noninteractive apt-get $apt_offline install -y /root/bundle/*.deb
check postgresql-installed sh -c 'ls /usr/lib/postgresql/*/bin/initdb'
grep PRETTY_NAME /etc/os-release >>"$out"
check service-active wait_active
check readyz-over-tls sh -c 'curl -sk --max-time 10 https://localhost:8443/readyz | grep -q "\"status\":\"ready\""'
check readyz-tls-only sh -c '! curl -s --max-time 5 http://localhost:8443/readyz'
check runs-as-service-user sh -c '[ "$(systemctl show -p User --value mogothrow77)" = mogothrow77 ]'
postgres_child_of_service() {
  local main pid
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
check config-private sh -c '[ "$(stat -c %a:%G /etc/mogothrow77/config.toml)" = 640:mogothrow77 ]'
check reload sh -c 'systemctl reload mogothrow77 && sleep 1 && [ "$(systemctl is-active mogothrow77)" = active ]'
systemd-analyze security --no-pager mogothrow77.service >/root/security.txt 2>&1
exposure=$(sed -n 's/.*Overall exposure level for mogothrow77.service: \([0-9.]*\).*/\1/p' /root/security.txt)
echo "exposure ${exposure:-unknown}" >>"$out"
check stop-clean sh -c 'systemctl stop mogothrow77 && [ "$(systemctl show -p Result --value mogothrow77)" = success ] && [ ! -e /var/lib/mogothrow77/postgres/postmaster.pid ]'
check restart-keeps-data sh -c 'systemctl start mogothrow77 && for i in $(seq 1 120); do [ "$(systemctl is-active mogothrow77)" = active ] && break; sleep 0.5; done; curl -sk --max-time 10 https://localhost:8443/readyz | grep -q ready'
# Point-in-time recovery inside the unit's sandbox: WAL archived and a
# base backup taken by pgBackRest, everything under state_dir.
pitr_on() {
  printf '\n[backup]\nschedule = "every 10s"\npitr = true\narchive_timeout_secs = 10\n' >>/etc/mogothrow77/config.toml
  systemctl restart mogothrow77 && wait_active || return 1
  for _ in $(seq 1 120); do
    runuser -u mogothrow77 -- pgbackrest --config=/var/lib/mogothrow77/pgbackrest/pgbackrest.conf \
      --stanza=mogothrow77 info --output=json | grep -q '"label"' && return 0
    sleep 0.5
  done
  return 1
}
check pitr-base-backup-in-sandbox pitr_on
check pitr-diagnosed sh -c 'mogothrow77 diagnose | grep "point-in-time recovery" | grep -q "newest base backup"'
# The upgrade tool reinstalls with MOGOTHROW77_NO_START=1 and starts the
# service itself: the maintainer scripts must leave it stopped.
check no-start-flag sh -c 'systemctl stop mogothrow77 && MOGOTHROW77_NO_START=1 dpkg -i /root/bundle/mogothrow77_*.deb && sleep 1 && ! systemctl is-active --quiet mogothrow77'
check reinstall-starts sh -c 'dpkg -i /root/bundle/mogothrow77_*.deb && for i in $(seq 1 120); do [ "$(systemctl is-active mogothrow77)" = active ] && exit 0; sleep 0.5; done; exit 1'
check purge sh -c 'dpkg --purge mogothrow77 && [ ! -e /usr/lib/systemd/system/mogothrow77.service ] && [ ! -e /etc/mogothrow77 ]'
check purge-keeps-data test -e /var/lib/mogothrow77/postgres/PG_VERSION
check no-process-left sh -c '! systemctl is-active --quiet mogothrow77'
journalctl -u mogothrow77 --no-pager >/root/journal.txt 2>&1 || true
echo done >>"$out"
systemctl poweroff --no-block
EOF
chmod 755 "$root/root/install-test.sh"

cat >"$root/etc/systemd/system/install-test.service" <<'EOF'
[Unit]
Description=Mogothrow77 package install test
After=multi-user.target

[Service]
Type=exec
ExecStart=/root/install-test.sh

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/install-test.service "$root/etc/systemd/system/multi-user.target.wants/install-test.service"

echo "==> booting the test host (network off)"
start=$SECONDS
set +e
timeout 600 systemd-nspawn --quiet --register=no --keep-unit --private-network \
  -D "$root" -b >"$work/boot.log" 2>&1
status=$?
set -e
echo "==> test host ran for $((SECONDS - start)) s (nspawn exit $status)"

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
  cat "$root/root/security.txt" >&2
  failed=1
fi
if [ "$failed" = 1 ]; then
  echo "---- detail" >&2; cat "$root/root/detail.log" >&2 || true
  echo "---- journal" >&2; tail -60 "$root/root/journal.txt" >&2 || true
  exit 1
fi
echo "==> package install test passed (systemd exposure $exposure)"
