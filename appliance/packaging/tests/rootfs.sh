#!/usr/bin/env bash
# Prints the path of a pristine Debian root filesystem, creating it with
# debootstrap on first use. It stands in for a freshly installed server in
# the packaging tests.
#
# usage: rootfs.sh [SUITE [EXTRA_PACKAGES]]   (default: bookworm, none)
# The base is the minimal supported host, exactly `debootstrap
# --variant=minbase --include=systemd,systemd-sysv,dbus` (docs/install.md,
# "What the offline host needs"); a test that needs more in its host (curl
# to drive the API from inside, rpm, a PostgreSQL of its own) names it in
# EXTRA_PACKAGES (comma-separated). MOGOTHROW77_ROOTFS_CACHE sets the
# directory the root filesystems are kept in (default /var/tmp/mogothrow77-rootfs).
set -euo pipefail
suite=${1:-bookworm}
include=systemd,systemd-sysv,dbus${2:+,$2}
base=${MOGOTHROW77_ROOTFS_CACHE:-/var/tmp/mogothrow77-rootfs}
cache=$base/$suite-$(echo "$include" | md5sum | cut -c1-8)
if [ ! -e "$cache/.complete" ]; then
  command -v debootstrap >/dev/null || { echo "missing debootstrap: apt-get install debootstrap" >&2; exit 2; }
  echo "==> debootstrap $suite with $include into $cache (one time)" >&2
  rm -rf "$cache.tmp"
  mkdir -p "$base"
  debootstrap --variant=minbase --include="$include" "$suite" "$cache.tmp" \
    http://deb.debian.org/debian >"$cache.log" 2>&1 || { tail -20 "$cache.log" >&2; exit 1; }
  rm -f "$cache.tmp"/var/cache/apt/archives/*.deb
  touch "$cache.tmp/.complete"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi
echo "$cache"
