#!/usr/bin/env bash
# Downloads into OUT every Debian 12 package that `mogothrow77` (the .deb
# given) and PostgreSQL 15 need on the minimal supported host — a root
# filesystem made with exactly `debootstrap --variant=minbase
# --include=systemd,systemd-sysv,dbus` (rootfs.sh) — for the offline bundle:
# what `apt-get install --no-install-recommends ./mogothrow77.deb
# postgresql-15` fetches there, the same request the installer makes.
# Needs root (it runs apt inside a copy of the root filesystem) and the
# Debian package registry.
#
# usage: debian-packages.sh OUT MOGOTHROW77.deb
set -euo pipefail
out=$(readlink -f "$1")
deb=$(readlink -f "$2")
here=$(dirname "$(readlink -f "$0")")
rootfs=$("$here/rootfs.sh" bookworm)
work=$(mktemp -d /var/tmp/m77-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$rootfs" "$work/root"
cp "$deb" "$work/root/root/mogothrow77.deb"
systemd-nspawn --quiet --private-users=no --register=no --keep-unit -D "$work/root" --pipe -- \
  sh -c 'apt-get clean && apt-get update -qq && apt-get install --download-only --no-install-recommends -y -qq /root/mogothrow77.deb postgresql-15 >/dev/null' \
  || { echo "cannot download the packages mogothrow77 and PostgreSQL 15 need" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/*.deb
cp "$work/root/var/cache/apt/archives/"*.deb "$out/"
echo "$(ls "$out"/*.deb | wc -l) packages, $(du -sh "$out" | cut -f1) in $out: $(ls "$out" | sed 's/_.*//' | tr '\n' ' ')" >&2
