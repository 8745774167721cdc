#!/usr/bin/env bash
# Downloads the Debian 12 packages PostgreSQL needs on a minimal Debian 12
# server (exactly what `apt-get install postgresql` would fetch on the
# pristine root filesystem from rootfs.sh) into OUT, for the offline bundle.
# Needs root (it runs apt inside a copy of the root filesystem) and the
# Debian package registry.
set -euo pipefail
out=$(readlink -f "$1")
here=$(dirname "$(readlink -f "$0")")
rootfs=$("$here/rootfs.sh" bookworm)
work=$(mktemp -d /var/tmp/m77-debs.XXXXXX)
trap 'rm -rf "$work"' EXIT
cp -a "$rootfs" "$work/root"
systemd-nspawn --quiet --private-users=no --register=no --keep-unit -D "$work/root" --pipe -- \
  sh -c 'apt-get clean && apt-get update -qq && apt-get install --download-only --no-install-recommends -y -qq postgresql >/dev/null' \
  || { echo "cannot download the PostgreSQL packages" >&2; exit 1; }
mkdir -p "$out"
rm -f "$out"/*.deb
cp "$work/root/var/cache/apt/archives/"*.deb "$out/"
echo "$(ls "$out"/*.deb | wc -l) packages, $(du -sh "$out" | cut -f1) in $out" >&2
