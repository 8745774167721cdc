#!/usr/bin/env bash
# Real install and upgrade test: a minimal Debian 12 (rootfs.sh) booted with
# systemd as PID 1 and the network off. Inside, release N is installed from
# its offline bundle by mogothrow77-install (after its --check, and a
# refused --check on an unsupported OS), the installer is run again (safe),
# records are created through the API, `rehearse` runs N+1's migration on a
# copy (timed, its lock named, the live database untouched), and mogothrow77-upgrade
# (the packaged tool) upgrades it to fixture releases built from this source
# (scripts/test: N+1 adds an expand migration, N+2 a contract migration):
# - N → N+2 refused with the required stop named (nothing changed);
# - N → N+1 applied (migration, data kept, /readyz on the new version),
#   rolled back within the window (expand only), and applied again with no
#   migration left to run (its service downtime is printed);
# - N+1 → N refused as a downgrade; a tampered bundle refused;
# - N+1 → N+2 applied; its rollback refused with the backup named (exit 11)
#   while N+2 keeps serving; then `rollback --restore-backup` back to N+1;
# - the fault matrix on N → N+1, each from a fresh copy of the installed N:
#   the tool SIGKILLed after every step (a build with the fault-injection
#   feature), then `apply` rerun and, separately, `rollback` run; a failing
#   migration; a new binary that fails to start; a full disk for the
#   backup. After each: a ready service on one consistent version with
#   every record.
# Last, everything is purged and N installed again by the installer onto an
# external PostgreSQL (a second cluster on the host) from a URL file: junk
# refused, a wrong password stops before the service starts, then installed
# with the URL as a 0640 root:mogothrow77 secret; passwords never logged.
# Then the plain layout (no package manager): N installed under
# /opt/mogothrow77 by the installer with --layout plain, upgraded to N+1 by
# flipping `current`, rolled back, and upgraded to N+2 (older release
# directories pruned). Last, the rpm layout: N installed by the installer
# with --layout rpm (rpm -U of the bundle's .rpm, kept for rollback),
# upgraded with rpm -U, rolled back with rpm -U --oldpackage, and upgraded
# to N+2. (rpm runs on Debian here; no RHEL-family host can be built.)
# Both run the whole kill -9 fault matrix too.
# The host prints the matrix and fails on any FAIL line.
#
# usage: upgrade-in-nspawn.sh UNPACKED_BUNDLE_N BUNDLE_N.zip BUNDLE_N1.zip BUNDLE_N2.zip PUBLIC_KEY FAULT_TOOL
set -euo pipefail

unpacked=$(readlink -f "$1")
n0=$(readlink -f "$2")
n1=$(readlink -f "$3")
n2=$(readlink -f "$4")
pub=$(readlink -f "$5")
fault_tool=$(readlink -f "$6")
here=$(dirname "$(readlink -f "$0")")
command -v systemd-nspawn >/dev/null || { echo "missing systemd-nspawn: apt-get install systemd-container" >&2; exit 2; }
[ -f "$unpacked/packages/debian12/Packages" ] || { echo "$unpacked is not an unpacked offline bundle" >&2; exit 2; }
rpm_n=$(ls "$unpacked"/packages/el8/mogothrow77-*.x86_64.rpm 2>/dev/null | head -1)
[ -n "$rpm_n" ] || { echo "$unpacked carries no .rpm (packages/el8/): build the bundle with --rpm" >&2; exit 2; }
command -v rpmbuild >/dev/null || { echo "missing rpmbuild: apt-get install rpm" >&2; exit 2; }
# rpm (Debian's package of it) in the test host: the rpm layout is driven
# by rpm(8) as on RHEL-family hosts.
cache=$("$here/rootfs.sh" bookworm procps,curl,ca-certificates,rpm)

work=$(mktemp -d /var/tmp/m77-upgrade.XXXXXX)
cleanup() { rm -rf "$work"; }
trap cleanup EXIT
cp -a "$cache" "$work/root"
root=$work/root
# rpm on a Debian host knows none of what dpkg installed. A stand-in package
# provides what the .rpm requires of the base system (glibc with its
# sonames, systemd, shadow-utils, /bin/sh): all of it is really there,
# installed by dpkg.
mkdir -p "$work/rpmbuild"
{
  printf 'Name: host-base\nVersion: 12\nRelease: 1\nSummary: The Debian test host base system, as rpm sees it\n'
  printf 'License: none\nBuildArch: noarch\n'
  rpm -qp --requires "$rpm_n" | grep -v -e '^rpmlib(' -e '^config(' | sed 's/ >= .*/ = 2.36/' | sort -u | sed 's/^/Provides: /'
  printf '%%description\nStand-in for the base system dpkg installed.\n%%files\n'
} >"$work/host-base.spec"
rpmbuild -bb --quiet --define "_topdir $work/rpmbuild" "$work/host-base.spec" >/dev/null
cp "$work"/rpmbuild/RPMS/noarch/host-base-12-1.noarch.rpm "$root/root/host-base.rpm"
mkdir -p "$root/root/bundle"
cp -a "$unpacked/packages/debian12/." "$root/root/bundle/"
cp "$n0" "$root/root/n0.zip"
cp "$n1" "$root/root/n1.zip"
cp "$n2" "$root/root/n2.zip"
cp "$pub" "$root/root/release.pub"
install -m 0755 "$fault_tool" "$root/root/upgrade-fault-injection"
# The installer as the bundle ships it (verified with the bundle).
install -m 0755 "$unpacked/mogothrow77-install" "$root/root/mogothrow77-install"
echo 'deb [trusted=yes] file:/root/bundle ./' >"$root/root/apt-sources.list"
# An age key pair for the encrypted pre-migration backup (made with the
# host's age-keygen: the minimal host has none).
command -v age-keygen >/dev/null || { echo "missing age-keygen: apt-get install age" >&2; exit 2; }
age-keygen -o "$root/root/backup-key.txt" 2>/dev/null
chmod 600 "$root/root/backup-key.txt"
age-keygen -y "$root/root/backup-key.txt" >"$root/root/backup-recipients.txt"

cat >"$root/root/upgrade-test.sh" <<'EOF'
#!/bin/bash
# Runs inside the booted container; one result line per check.
out=/root/results
: >"$out"
log=/root/detail.log
ok() { echo "ok $*" >>"$out"; }
fail() { echo "FAIL $*" >>"$out"; }
check() { local name=$1; shift; if "$@" >>"$log" 2>&1; then ok "$name"; else fail "$name"; fi; }
# A matrix row: its outcome, or FAILED when one of the named checks failed.
matrix() {
  local row=$1 name; shift
  for name in "$@"; do
    grep -qx "FAIL $name" "$out" && { echo "matrix $row | FAILED ($name)" >>"$out"; return; }
  done
  echo "matrix $row" >>"$out"
}
expect() {  # CODE PATTERN COMMAND...: exit code and output
  local code=$1 pattern=$2; shift 2
  "$@" >/root/last.txt 2>&1
  local got=$?
  cat /root/last.txt >>"$log"
  [ "$got" = "$code" ] && grep -q -- "$pattern" /root/last.txt
}
api=https://localhost:8443
password='correct horse battery staple 77'
upgrade() { mogothrow77-upgrade "$@" --public-key /root/release.pub; }

wait_ready() {
  for _ in $(seq 1 240); do
    curl -sk --max-time 2 "$api/readyz" 2>/dev/null | grep -q '"status":"ready"' && return 0
    sleep 0.25
  done
  return 1
}
version_is() {
  mogothrow77 version | grep -q "^mogothrow77 $1 " \
    && curl -sk --max-time 5 "$api/readyz" | grep -q "\"version\":\"$1\""
}
session() {
  curl -sk -c /root/jar -H 'content-type: application/json' \
    -d "{\"username\":\"admin\",\"password\":\"$password\"}" "$api/api/v1/auth/login" \
    | sed -n 's/.*"csrf_token":"\([^"]*\)".*/\1/p'
}
record_count() {
  session >/dev/null
  curl -sk -b /root/jar "$api/api/v1/collections/assets/records?limit=100&fields=serial" \
    | grep -o '"serial":"[^"]*"' | sort -u | wc -l
}
records_intact() { [ "$(record_count)" = 25 ]; }
# One consistent, ready installation of version $1 with every record.
healthy_on() {
  systemctl is-active --quiet mogothrow77 && wait_ready && version_is "$1" \
    && [ "$(dpkg-query -W -f '${Version}' mogothrow77)" = "$1-1" ] && records_intact
}

# Release N goes in with the installer from its bundle (no network).
installer() { /root/mogothrow77-install /root/n0.zip --public-key /root/release.pub "$@"; }
printf 'ID=fedora\nVERSION_ID="40"\n' >/root/fedora-os-release
check installer-refuses-unsupported-os expect 10 "FAIL  os: fedora-40 is not supported" installer --check --os-release /root/fedora-os-release
check installer-names-the-fix grep -q "fix: install on one of: .*debian-12" /root/last.txt
check installer-check expect 0 "all checks passed" installer --check
check installer-check-changed-nothing sh -c '! dpkg-query -W mogothrow77'
check install-n expect 0 "first-admin setup link" installer
check install-prints-console grep -q "^console: https://" /root/last.txt
check n-ready wait_ready
check installer-rerun-is-safe expect 0 "installed already: .* is installed" installer
check installer-rerun-ready wait_ready
N=$(mogothrow77 version | cut -d' ' -f2)
N1=$(mogothrow77-upgrade check /root/n1.zip --public-key /root/release.pub | sed -n 's/.*target: \([0-9.]*\).*/\1/p')
N2=$(mogothrow77-upgrade check /root/n2.zip --public-key /root/release.pub | sed -n 's/.*target: \([0-9.]*\).*/\1/p')
echo "versions N=$N N+1=$N1 N+2=$N2" >>"$out"

create_data() {
  local token csrf
  token=$(mogothrow77 admin setup-token | grep -o 'token=[A-Za-z0-9_-]*' | head -1 | cut -d= -f2)
  [ -n "$token" ] || return 1
  csrf=$(curl -sk -c /root/jar -H 'content-type: application/json' \
    -d "{\"token\":\"$token\",\"username\":\"admin\",\"password\":\"$password\"}" "$api/api/v1/setup" \
    | sed -n 's/.*"csrf_token":"\([^"]*\)".*/\1/p')
  [ -n "$csrf" ] || return 1
  curl -skf -b /root/jar -H 'content-type: application/json' -H "X-CSRF-Token: $csrf" \
    -d '{"name":"assets","fields":[{"name":"serial","type":"text","required":true,"unique":true},{"name":"count","type":"integer"}]}' \
    "$api/api/v1/collections" >/dev/null || return 1
  for i in $(seq 1 25); do
    curl -skf -b /root/jar -H 'content-type: application/json' -H "X-CSRF-Token: $csrf" \
      -d "{\"data\":{\"serial\":\"S-$i\",\"count\":$i}}" "$api/api/v1/collections/assets/records" >/dev/null || return 1
  done
}
check create-records create_data
check records-25 records_intact

# A copy of the installed N, to start each fault scenario from.
systemctl stop mogothrow77
cp -a /var/lib/mogothrow77 /root/snapshot-state
cp -a /etc/mogothrow77 /root/snapshot-etc
cp /root/bundle/mogothrow77_"$N"-1_amd64.deb /root/n.deb
systemctl start mogothrow77
wait_ready
reset_to_n() {
  systemctl stop mogothrow77
  umount /var/lib/mogothrow77/backups 2>/dev/null
  rm -f /etc/systemd/system/mogothrow77.service.d/fault.conf
  systemctl daemon-reload
  MOGOTHROW77_NO_START=1 dpkg -i /root/n.deb >/dev/null 2>&1
  rm -rf /var/lib/mogothrow77 /etc/mogothrow77 /var/lib/mogothrow77-upgrade
  cp -a /root/snapshot-state /var/lib/mogothrow77
  cp -a /root/snapshot-etc /etc/mogothrow77
  systemctl reset-failed mogothrow77 2>/dev/null
  systemctl start mogothrow77 && wait_ready
}

# --- refusals and the happy path -------------------------------------------
check skip-stop-refused expect 10 "must stop at $N1 first" upgrade apply /root/n2.zip
check skip-stop-changed-nothing healthy_on "$N"
cp /root/n1.zip /root/tampered.zip
printf 'X' | dd of=/root/tampered.zip bs=1 seek=2000 conv=notrunc 2>/dev/null
check tampered-refused expect 10 "REFUSED  bundle" upgrade apply /root/tampered.zip
check tampered-changed-nothing healthy_on "$N"

check check-n1-window expect 0 "rollback window: all are expand migrations" upgrade check /root/n1.zip
check check-n1-release-notes expect 0 "Upgrade-test fixture release $N1\.$" upgrade check /root/n1.zip
# The rehearsal runs N+1's migration on a copy: timed, its lock on users
# (the fixture's CREATE INDEX takes SHARE) named; the live database and the
# cluster keep nothing of it.
live_sql() { runuser -u mogothrow77 -- psql -h /var/lib/mogothrow77/run -d mogothrow77 -Atc "$1"; }
check rehearse-n1 expect 0 "V[0-9]*__upgrade_fixture_notes (expand): [0-9.]* s" upgrade rehearse /root/n1.zip
check rehearse-n1-names-lock grep -q "SHARE on public.users: blocks writes (reads go on)" /root/last.txt
check rehearse-n1-json expect 0 '"blocks":"writes"' sh -c 'mogothrow77-upgrade rehearse /root/n1.zip --json --public-key /root/release.pub 2>/dev/null'
no_fixture_table() { [ "$(live_sql "SELECT to_regclass('upgrade_fixture_notes') IS NULL")" = t ]; }
no_rehearsal_copy() { [ "$(live_sql "SELECT count(*) FROM pg_database WHERE datname LIKE 'mogothrow77\_%'")" = 0 ]; }
check rehearse-left-live-alone no_fixture_table
check rehearse-dropped-copy no_rehearsal_copy
check rehearse-still-healthy healthy_on "$N"
check rehearse-skip-stop-refused expect 10 "must stop at $N1 first" upgrade rehearse /root/n2.zip
# The health step ends with `mogothrow77 smoke` once a token is configured
# (skipped, and said so, before).
smoke_token() {
  local csrf
  csrf=$(session)
  [ -n "$csrf" ] || return 1
  curl -skf -b /root/jar -H 'content-type: application/json' -H "X-CSRF-Token: $csrf" \
    -d '{"name":"upgrade-smoke","permissions":["records:read","records:write","records:export"]}' \
    "$api/api/v1/me/tokens" | sed -n 's/.*"token":"\([^"]*\)".*/\1/p' >/etc/mogothrow77/smoke-token
  chmod 600 /etc/mogothrow77/smoke-token
  [ -s /etc/mogothrow77/smoke-token ] \
    && printf '\n[upgrade]\nsmoke_token_file = "/etc/mogothrow77/smoke-token"\n' >>/etc/mogothrow77/config.toml
}
check smoke-token smoke_token
check apply-n1 expect 0 "upgraded $N → $N1" upgrade apply /root/n1.zip
check apply-n1-smoke-passed grep -q "smoke check passed" /root/last.txt
check apply-n1-no-test-restore sh -c '! grep -q "test-restored" /root/last.txt'
check n1-healthy healthy_on "$N1"
check n1-migration-applied sh -c "mogothrow77 migrate --check | grep -q 'no pending migrations'"
check n1-backup-restorable sh -c 'ls /var/lib/mogothrow77/backups/*/database.dump && pg_restore --list /var/lib/mogothrow77/backups/*/database.dump >/dev/null'
check status-done sh -c 'mogothrow77-upgrade status | grep -q "outcome: Done"'
echo "downtime with-migration $(mogothrow77-upgrade status --json | sed -n 's/.*"downtime_seconds": *\([0-9.]*\).*/\1/p')" >>"$out"
check downgrade-refused expect 10 "older than the installed $N1" upgrade apply /root/n0.zip
check rollback-within-window expect 0 "ROLLED BACK  $N runs again" mogothrow77-upgrade rollback
check rolled-back-healthy healthy_on "$N"
check reapply-n1 expect 0 "no migrations to run" upgrade apply /root/n1.zip
check reapplied-healthy healthy_on "$N1"
echo "downtime without-migration $(mogothrow77-upgrade status --json | sed -n 's/.*"downtime_seconds": *\([0-9.]*\).*/\1/p')" >>"$out"
# From here the backups are age-encrypted: the rollback needs the key.
encrypt_backups() {
  install -m 0644 /root/backup-recipients.txt /etc/mogothrow77/backup-recipients.txt
  printf '\n[backup]\nage_recipients_file = "/etc/mogothrow77/backup-recipients.txt"\n' >>/etc/mogothrow77/config.toml
}
check encrypt-backups encrypt_backups
check check-n2-needs-backup expect 0 "rollback needs the backup: V[0-9]*__upgrade_fixture_contract (contract)" upgrade check /root/n2.zip
check apply-n2-contract expect 0 "upgraded $N1 → $N2" upgrade apply /root/n2.zip
# Past the rollback window the backup was restored into a scratch database
# (and dropped) before the service stopped.
check apply-n2-backup-test-restored grep -q "test-restored into a scratch database" /root/last.txt
check apply-n2-no-scratch-left no_rehearsal_copy
check n2-healthy healthy_on "$N2"
check rollback-past-window-refused expect 11 "the-schema-is-past-the-rollback-window" mogothrow77-upgrade rollback
check rollback-refusal-names-backup grep -q "database.dump" /root/last.txt
check n2-still-serving healthy_on "$N2"
check n2-backup-encrypted sh -c 'head -c 21 /var/lib/mogothrow77/backups/*/database.dump | grep -q "^age-encryption.org/v1"'
check rollback-with-backup expect 0 "ROLLED BACK  $N1 runs again with the backup restored" mogothrow77-upgrade rollback --restore-backup --identity /root/backup-key.txt
check restored-healthy healthy_on "$N1"
check restored-schema-is-n1s sh -c "mogothrow77 migrate --check | grep -q 'no pending migrations'"

# --- the fault matrix on N → N+1 ------------------------------------------
fi_apply() { MOGOTHROW77_UPGRADE_FAULT=$1 /root/upgrade-fault-injection apply /root/n1.zip --public-key /root/release.pub >>"$log" 2>&1; }
# LAYOUT RESET HEALTHY: from a fresh copy of the installed N (RESET), the
# tool SIGKILLed after each step of N → N+1, then `apply` rerun and,
# separately, `rollback` run; HEALTHY VERSION must hold after each.
fault_matrix() {
  local layout=$1 reset=$2 healthy=$3 step recovery name killed code want t0 t1 t2 t3 took
  for step in verify compatibility preflight backup stop migrate swap start health; do
    for recovery in apply rollback; do
      name="$layout-kill-after-$step+$recovery"
      t0=$SECONDS
      if ! "$reset" >>"$log" 2>&1; then fail "$name reset"; continue; fi
      t1=$SECONDS
      fi_apply "kill-after:$step"
      killed=$?
      t2=$SECONDS
      [ "$killed" = 137 ] || { fail "$name killed (exit $killed)"; continue; }
      if [ "$recovery" = apply ]; then
        upgrade apply /root/n1.zip >>"$log" 2>&1; code=$?; want=$N1
      else
        mogothrow77-upgrade rollback >>"$log" 2>&1; code=$?; want=$N
      fi
      t3=$SECONDS
      if [ "$code" = 0 ] && "$healthy" "$want" >>"$log" 2>&1; then
        ok "$name"; echo "matrix kill -9 after $step ($layout) | rerun $recovery | exit $code, $want ready, 25 records" >>"$out"
      else
        fail "$name (exit $code)"; echo "matrix kill -9 after $step ($layout) | rerun $recovery | exit $code, NOT healthy on $want" >>"$out"
      fi
      took="$name: reset $((t1 - t0)) s, until killed $((t2 - t1)) s, $recovery $((t3 - t2)) s, health check $((SECONDS - t3)) s"
      echo "$took" >>"$log"
      echo "time $took" >>"$out"
    done
  done
}
fault_matrix deb reset_to_n healthy_on

# A migration that fails: its table already exists.
owner_sql() { runuser -u mogothrow77 -- psql -h /var/lib/mogothrow77/run -U mogothrow77_owner -d mogothrow77 -v ON_ERROR_STOP=1 -c "$1"; }
reset_to_n >>"$log" 2>&1
check fault-migration-setup owner_sql 'CREATE TABLE upgrade_fixture_notes (blocker int)'
check fault-migration-rehearsed expect 1 "would fail at V[0-9]*__upgrade_fixture_notes" upgrade rehearse /root/n1.zip
check fault-migration-rolled-back expect 1 "ROLLED BACK  $N runs again" upgrade apply /root/n1.zip
check fault-migration-reason grep -q "already exists" /root/last.txt
check fault-migration-healthy healthy_on "$N"
matrix "migration fails | (automatic) | exit 1, $N ready, 25 records" fault-migration-rolled-back fault-migration-reason fault-migration-healthy
check fault-migration-fixed owner_sql 'DROP TABLE upgrade_fixture_notes'
check fault-migration-rerun expect 0 "upgraded $N → $N1" upgrade apply /root/n1.zip
check fault-migration-rerun-healthy healthy_on "$N1"

# A new binary that fails to start (only the new version is stopped).
reset_to_n >>"$log" 2>&1
mkdir -p /etc/systemd/system/mogothrow77.service.d
cat >/etc/systemd/system/mogothrow77.service.d/fault.conf <<CONF
[Service]
ExecStartPre=/bin/sh -c '! /usr/bin/mogothrow77 version | grep -q " $N1 "'
CONF
systemctl daemon-reload
check fault-start-rolled-back expect 1 "ROLLED BACK  $N runs again" upgrade apply /root/n1.zip
check fault-start-healthy healthy_on "$N"
matrix "new binary fails to start | (automatic) | exit 1, $N ready, 25 records" fault-start-rolled-back fault-start-healthy
rm -f /etc/systemd/system/mogothrow77.service.d/fault.conf
systemctl daemon-reload

# A full disk where the backup goes: refused before anything changed.
reset_to_n >>"$log" 2>&1
mkdir -p /var/lib/mogothrow77/backups
mount -t tmpfs -o size=4k tmpfs /var/lib/mogothrow77/backups
check fault-disk-refused expect 10 "nothing was changed" upgrade apply /root/n1.zip
check fault-disk-reason grep -q "No space left on device" /root/last.txt
check fault-disk-healthy healthy_on "$N"
matrix "disk full (backup) | (automatic) | exit 10, $N ready, 25 records" fault-disk-refused fault-disk-reason fault-disk-healthy
umount /var/lib/mogothrow77/backups
check fault-disk-rerun expect 0 "upgraded $N → $N1" upgrade apply /root/n1.zip
check fault-disk-rerun-healthy healthy_on "$N1"

# --- an external database, named by the installer ---------------------------
# Everything removed, then N installed again from its bundle onto a
# PostgreSQL cluster of the host's own (port 5433): the installer installs
# the URL as a secret, names it in the configuration and has the server
# check the database before it starts the service.
systemctl stop mogothrow77
dpkg --purge mogothrow77 >>"$log" 2>&1
rm -rf /var/lib/mogothrow77 /etc/mogothrow77 /var/lib/mogothrow77-upgrade /var/lib/mogothrow77-install
external_pg() {
  pg_createcluster 15 m77ext -p 5433 --start \
    && runuser -u postgres -- psql -p 5433 -v ON_ERROR_STOP=1 \
      -c "CREATE ROLE m77app LOGIN PASSWORD 'Ext-Secret-5f1c'" -c "CREATE DATABASE m77 OWNER m77app"
}
check external-pg external_pg
printf 'mysql://m77app@127.0.0.1/m77\n' >/root/db-url
check external-junk-url-refused expect 10 "does not hold one PostgreSQL connection URL" installer --database-url-file /root/db-url
check external-junk-changed-nothing sh -c '! dpkg-query -W mogothrow77'
printf 'postgresql://m77app:Wrong-Guess-71@127.0.0.1:5433/m77?sslmode=disable\n' >/root/db-url
check external-bad-password-stops expect 11 "the database check failed: .*password authentication failed" installer --database-url-file /root/db-url
check external-bad-password-not-started sh -c '! systemctl is-active --quiet mogothrow77'
printf 'postgresql://m77app:Ext-Secret-5f1c@127.0.0.1:5433/m77?sslmode=disable\n' >/root/db-url
check external-install expect 0 "first-admin setup link" installer --database-url-file /root/db-url
check external-ready wait_ready
check external-secret-private sh -c '[ "$(stat -c %a:%U:%G /etc/mogothrow77/secrets/database-url)" = 640:root:mogothrow77 ]'
check external-config-names-it grep -q '^url_file = "/etc/mogothrow77/secrets/database-url"' /etc/mogothrow77/config.toml
# The key-encryption key file an external database requires: made by the
# installer in the state directory, the service user's, named in the config.
check external-key-file-private sh -c '[ "$(stat -c %a:%U /var/lib/mogothrow77/secrets.key)" = 600:mogothrow77 ]'
check external-config-names-key-file grep -q '^key_file = "/var/lib/mogothrow77/secrets.key"' /etc/mogothrow77/config.toml
check external-secrets-sealed sh -c '[ "$(runuser -u postgres -- psql -p 5433 -d m77 -Atc "SELECT count(*) FROM server_keys WHERE key_sealed IS NOT NULL")" = 2 ]'
check external-schema-in-external-db sh -c '[ "$(runuser -u postgres -- psql -p 5433 -d m77 -Atc "SELECT count(*) FROM refinery_schema_history")" -gt 0 ]'
check external-no-managed-cluster sh -c '[ ! -e /var/lib/mogothrow77/postgres/PG_VERSION ]'
check external-rerun-safe expect 0 "(unchanged)" installer --database-url-file /root/db-url
check external-rerun-ready wait_ready
# The external database through two upgrades and back: N+1 (expand), N+2
# (contract: its backup is test-restored, for which the role needs
# CREATEDB), then `rollback --restore-backup` to N+1: the archive restored
# into the external database in one transaction by the appliance's role.
check external-create-records create_data
check external-records-25 records_intact
check external-apply-n1 expect 0 "upgraded $N → $N1" upgrade apply /root/n1.zip
check external-n1-healthy healthy_on "$N1"
check external-createdb runuser -u postgres -- psql -p 5433 -v ON_ERROR_STOP=1 -c "ALTER ROLE m77app CREATEDB"
check external-apply-n2 expect 0 "upgraded $N1 → $N2" upgrade apply /root/n2.zip
check external-n2-backup-test-restored grep -q "test-restored into a scratch database" /root/last.txt
check external-n2-healthy healthy_on "$N2"
contract_applied() {
  [ "$(runuser -u postgres -- psql -p 5433 -d m77 -Atc \
    "SELECT count(*) FROM refinery_schema_history WHERE name = 'upgrade_fixture_contract'")" = "$1" ]
}
check external-n2-contract-applied contract_applied 1
check external-rollback-with-backup expect 0 "ROLLED BACK  $N1 runs again with the backup restored" mogothrow77-upgrade rollback --restore-backup
check external-restored-healthy healthy_on "$N1"
check external-restored-schema-is-n1s sh -c "mogothrow77 migrate --check | grep -q 'no pending migrations'"
check external-restored-in-external-db contract_applied 0
check external-passwords-never-shown sh -c '! grep -q -e Ext-Secret-5f1c -e Wrong-Guess-71 /root/detail.log && ! journalctl --no-pager | grep -q -e Ext-Secret-5f1c -e Wrong-Guess-71'

# --- the plain layout (no package manager) ----------------------------------
# Everything removed again; N installed by the installer with --layout plain:
# release directories under /opt/mogothrow77 from the bundle's plain/ files,
# `current` pointing at N, the unit in /etc/systemd/system. Then N → N+1 (the
# upgrade tool flips `current`), rolled back within the window, applied
# again, and N+1 → N+2, after which only N+1 (for rollback) and N+2 are
# kept. The kill -9 fault matrix runs on this layout first.
systemctl stop mogothrow77
dpkg --purge mogothrow77 >>"$log" 2>&1
pg_dropcluster 15 m77ext --stop >>"$log" 2>&1
rm -rf /var/lib/mogothrow77 /etc/mogothrow77 /var/lib/mogothrow77-upgrade /var/lib/mogothrow77-install
hash -r
switched_to() { [ "$(readlink /opt/mogothrow77/current)" = "releases/$1" ]; }
plain_healthy() {
  systemctl is-active --quiet mogothrow77 && wait_ready && version_is "$1" && switched_to "$1" && records_intact
}
# Under a hardened root's umask: the service user must still reach current.
strict() ( umask 077; "$@" )
check plain-install expect 0 "first-admin setup link" strict installer --layout plain
check plain-install-says-where grep -q "installed mogothrow77 $N in /opt/mogothrow77/releases/$N (current)" /root/last.txt
check plain-no-package sh -c '! dpkg-query -W mogothrow77'
check plain-ready wait_ready
check plain-unit-runs-current grep -qx 'ExecStart=/opt/mogothrow77/current/bin/mogothrow77 serve' /etc/systemd/system/mogothrow77.service
check plain-unit-enabled systemctl is-enabled --quiet mogothrow77
check plain-config-private sh -c '[ "$(stat -c %a:%U:%G /etc/mogothrow77/config.toml)" = 640:root:mogothrow77 ]'
check plain-service-user sh -c '[ "$(ps -o user= -p "$(systemctl show -p MainPID --value mogothrow77)")" = mogothrow77 ]'
check plain-commands-linked sh -c '[ "$(readlink /usr/local/bin/mogothrow77-upgrade)" = /opt/mogothrow77/current/bin/mogothrow77-upgrade ]'
check plain-rerun-safe expect 0 "installed already: $N is installed" installer
check plain-keeps-its-layout expect 10 "keeps its layout" installer --layout package
check plain-create-records create_data
check plain-records-25 records_intact
# The fault matrix from a copy of this installed N.
systemctl stop mogothrow77
rm -rf /root/snapshot-state /root/snapshot-etc
cp -a /var/lib/mogothrow77 /root/snapshot-state
cp -a /etc/mogothrow77 /root/snapshot-etc
systemctl start mogothrow77
wait_ready
reset_plain_to_n() {
  systemctl stop mogothrow77
  ln -sfn "releases/$N" /opt/mogothrow77/current.reset && mv -T /opt/mogothrow77/current.reset /opt/mogothrow77/current
  cp /opt/mogothrow77/current/mogothrow77.service /etc/systemd/system/mogothrow77.service
  systemctl daemon-reload
  rm -rf /var/lib/mogothrow77 /etc/mogothrow77 /var/lib/mogothrow77-upgrade
  cp -a /root/snapshot-state /var/lib/mogothrow77
  cp -a /root/snapshot-etc /etc/mogothrow77
  systemctl reset-failed mogothrow77 2>/dev/null
  systemctl start mogothrow77 && wait_ready
}
fault_matrix plain reset_plain_to_n plain_healthy
check plain-reset reset_plain_to_n
check plain-apply-n1 expect 0 "upgraded $N → $N1" strict upgrade apply /root/n1.zip
check plain-apply-n1-flipped grep -q "/opt/mogothrow77/current → releases/$N1" /root/last.txt
check plain-journal-layout sh -c 'mogothrow77-upgrade status --json | grep -q "\"layout\": \"plain\""'
check plain-n1-healthy plain_healthy "$N1"
check plain-previous-kept test -x "/opt/mogothrow77/releases/$N/bin/mogothrow77"
check plain-rollback expect 0 "ROLLED BACK  $N runs again" mogothrow77-upgrade rollback
check plain-rolled-back-healthy plain_healthy "$N"
check plain-reapply-n1 expect 0 "upgraded $N → $N1" upgrade apply /root/n1.zip
check plain-reapplied-healthy plain_healthy "$N1"
check plain-apply-n2 expect 0 "upgraded $N1 → $N2" upgrade apply /root/n2.zip
check plain-n2-pruned grep -q "removed older release directories: $N" /root/last.txt
check plain-n2-healthy plain_healthy "$N2"
plain_kept() {
  [ -d "/opt/mogothrow77/releases/$N1" ] && [ -d "/opt/mogothrow77/releases/$N2" ] \
    && [ ! -e "/opt/mogothrow77/releases/$N" ] && [ "$(ls -A /opt/mogothrow77/releases | wc -l)" = 2 ]
}
check plain-n2-keeps-n1 plain_kept

# --- the rpm layout ---------------------------------------------------------
# The plain installation removed, then N installed from the bundle's .rpm.
systemctl disable --now mogothrow77 >>"$log" 2>&1
rm -rf /opt/mogothrow77 /etc/systemd/system/mogothrow77.service /etc/sysusers.d/mogothrow77.conf \
  /usr/local/bin/mogothrow77 /usr/local/bin/mogothrow77-upgrade
systemctl daemon-reload
rm -rf /var/lib/mogothrow77 /etc/mogothrow77 /var/lib/mogothrow77-upgrade /var/lib/mogothrow77-install
hash -r
rpm_has() { [ "$(rpm -q --qf '%{VERSION}' mogothrow77)" = "$1" ]; }
rpm_healthy() {
  systemctl is-active --quiet mogothrow77 && wait_ready && version_is "$1" && rpm_has "$1" && records_intact
}
check rpm-host-base rpm -i /root/host-base.rpm
check rpm-install expect 0 "first-admin setup link" installer --layout rpm
check rpm-install-says-how grep -q "installed mogothrow77 $N from the bundle's .rpm" /root/last.txt
check rpm-kept-for-rollback test -f "/var/lib/mogothrow77-upgrade/releases/mogothrow77-$N-1.x86_64.rpm"
check rpm-not-dpkg sh -c '! dpkg-query -W -f "\${Status}" mogothrow77 | grep -q " installed"'
check rpm-ready wait_ready
check rpm-config-private sh -c '[ "$(stat -c %a:%U:%G /etc/mogothrow77/config.toml)" = 640:root:mogothrow77 ]'
check rpm-service-user sh -c '[ "$(ps -o user= -p "$(systemctl show -p MainPID --value mogothrow77)")" = mogothrow77 ]'
check rpm-unit-enabled systemctl is-enabled --quiet mogothrow77
check rpm-rerun-safe expect 0 "rpm (the .rpm) (installed already)" installer
check rpm-keeps-its-layout expect 10 "keeps its layout" installer --layout plain
check rpm-create-records create_data
check rpm-records-25 records_intact
# The fault matrix from a copy of this installed N (with the kept .rpm).
systemctl stop mogothrow77
rm -rf /root/snapshot-state /root/snapshot-etc /root/snapshot-upgrade
cp -a /var/lib/mogothrow77 /root/snapshot-state
cp -a /etc/mogothrow77 /root/snapshot-etc
cp -a /var/lib/mogothrow77-upgrade /root/snapshot-upgrade
cp "/var/lib/mogothrow77-upgrade/releases/mogothrow77-$N-1.x86_64.rpm" /root/n.rpm
systemctl start mogothrow77
wait_ready
reset_rpm_to_n() {
  systemctl stop mogothrow77
  rpm_has "$N" || MOGOTHROW77_NO_START=1 rpm -U --oldpackage /root/n.rpm
  systemctl daemon-reload
  rm -rf /var/lib/mogothrow77 /etc/mogothrow77 /var/lib/mogothrow77-upgrade
  cp -a /root/snapshot-state /var/lib/mogothrow77
  cp -a /root/snapshot-etc /etc/mogothrow77
  cp -a /root/snapshot-upgrade /var/lib/mogothrow77-upgrade
  systemctl reset-failed mogothrow77 2>/dev/null
  systemctl start mogothrow77 && wait_ready
}
fault_matrix rpm reset_rpm_to_n rpm_healthy
check rpm-reset reset_rpm_to_n
check rpm-apply-n1 expect 0 "upgraded $N → $N1" upgrade apply /root/n1.zip
check rpm-journal-layout sh -c 'mogothrow77-upgrade status --json | grep -q "\"layout\": \"rpm\""'
check rpm-n1-healthy rpm_healthy "$N1"
check rpm-rollback expect 0 "ROLLED BACK  $N runs again" mogothrow77-upgrade rollback
check rpm-rolled-back-healthy rpm_healthy "$N"
check rpm-reapply-n1 expect 0 "upgraded $N → $N1" upgrade apply /root/n1.zip
check rpm-reapplied-healthy rpm_healthy "$N1"
# Without the installed release's .rpm kept there is no way back: refused
# before the backup, nothing changed.
check rpm-unkept-setup mv "/var/lib/mogothrow77-upgrade/releases/mogothrow77-$N1-1.x86_64.rpm" /root/
check rpm-unkept-refused expect 10 "the .rpm of the installed release $N1 is not kept" upgrade apply /root/n2.zip
check rpm-unkept-healthy rpm_healthy "$N1"
check rpm-unkept-restored mv "/root/mogothrow77-$N1-1.x86_64.rpm" /var/lib/mogothrow77-upgrade/releases/
check rpm-apply-n2 expect 0 "upgraded $N1 → $N2" upgrade apply /root/n2.zip
check rpm-n2-healthy rpm_healthy "$N2"
# An rpm -U killed midway leaves both versions listed (made here by
# installing N+1's .rpm beside N+2's): a rollback stops, names the runbook
# section, and N+2 keeps serving. Last check: the files on disk are mixed now.
rpm_two_listed() {
  MOGOTHROW77_NO_START=1 rpm -i --force "/var/lib/mogothrow77-upgrade/releases/mogothrow77-$N1-1.x86_64.rpm" \
    && [ "$(rpm -q mogothrow77 | wc -l)" = 2 ]
}
check rpm-two-listed rpm_two_listed
check rpm-two-listed-stops expect 11 "upgrade.md.gz, section rpm-lists-two-versions" mogothrow77-upgrade rollback
serves() { curl -sk --max-time 5 "$api/readyz" | grep -q "\"version\":\"$1\""; }
check rpm-two-listed-still-serving serves "$N2"

journalctl -u mogothrow77 --no-pager >/root/journal.txt 2>&1 || true
echo done >>"$out"
systemctl poweroff --no-block
EOF
chmod 755 "$root/root/upgrade-test.sh"

cat >"$root/etc/systemd/system/upgrade-test.service" <<'EOF'
[Unit]
Description=Mogothrow77 upgrade test
After=multi-user.target

[Service]
Type=exec
ExecStart=/root/upgrade-test.sh

[Install]
WantedBy=multi-user.target
EOF
mkdir -p "$root/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/upgrade-test.service "$root/etc/systemd/system/multi-user.target.wants/upgrade-test.service"

echo "==> booting the test host (network off)"
start=$SECONDS
set +e
timeout 1500 systemd-nspawn --quiet --register=no --keep-unit --private-network \
  -D "$root" -b >"$work/boot.log" 2>&1
status=$?
set -e
echo "==> test host ran for $((SECONDS - start)) s (nspawn exit $status)"
if [ ! -f "$root/root/results" ]; then
  echo "no results: the test never ran" >&2
  tail -40 "$work/boot.log" >&2
  exit 1
fi
grep -v '^matrix ' "$root/root/results"
echo "==> fault matrix (step × fault → outcome)"
grep '^matrix ' "$root/root/results" | sed 's/^matrix /  /' | column -t -s '|' || true
failed=0
grep -q '^FAIL' "$root/root/results" && failed=1
grep -qx done "$root/root/results" || { echo "the test did not finish" >&2; failed=1; }
if [ "$failed" = 1 ]; then
  logs=${MOGOTHROW77_TEST_LOGS:-/var/tmp}
  cp "$root/root/detail.log" "$logs/upgrade-test-detail.log" 2>/dev/null \
    && echo "the whole detail log: $logs/upgrade-test-detail.log" >&2
  echo "---- detail (tail)" >&2; tail -150 "$root/root/detail.log" >&2 || true
  echo "---- journal (tail)" >&2; tail -60 "$root/root/journal.txt" >&2 || true
  exit 1
fi
echo "==> upgrade test passed"
