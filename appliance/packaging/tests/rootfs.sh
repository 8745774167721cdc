#!/usr/bin/env bash
# Prints the path of a pristine minimal Debian 12 root filesystem (systemd,
# procps, curl; no PostgreSQL), creating it with debootstrap on first use.
# It stands in for a freshly installed Debian 12 server in the packaging
# tests. MOGOTHROW77_ROOTFS_CACHE overrides where it is kept.
set -euo pipefail
include=systemd,systemd-sysv,dbus,procps,curl,ca-certificates
cache=${MOGOTHROW77_ROOTFS_CACHE:-/var/tmp/mogothrow77-rootfs/bookworm-$(echo "$include" | md5sum | cut -c1-8)}
if [ ! -e "$cache/.complete" ]; then
  command -v debootstrap >/dev/null || { echo "missing debootstrap: apt-get install debootstrap" >&2; exit 2; }
  echo "==> debootstrap bookworm into $cache (one time)" >&2
  rm -rf "$cache.tmp"
  mkdir -p "$(dirname "$cache")"
  debootstrap --variant=minbase --include="$include" bookworm "$cache.tmp" \
    http://deb.debian.org/debian >"$cache.log" 2>&1 || { tail -20 "$cache.log" >&2; exit 1; }
  rm -f "$cache.tmp"/var/cache/apt/archives/*.deb
  touch "$cache.tmp/.complete"
  rm -rf "$cache"
  mv "$cache.tmp" "$cache"
fi
echo "$cache"
