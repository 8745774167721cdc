#!/usr/bin/env bash
# Checks the OCI image archive built by `cargo xtask oci`: its config and
# annotations (skopeo), its layout and layer digests (umoci), then loads it
# into podman and runs it the way a site would: non-root, read-only root
# filesystem, no capabilities, against a throwaway PostgreSQL on 127.0.0.1.
# `migrate` first, then `serve` until /readyz says ready, then a SIGTERM stop
# that must exit 0. Prints the image size. Installs nothing.
#
# usage: oci-image-test.sh ARCHIVE      (run as root)
# OCI_RUNTIME picks podman's runtime (default: runc when installed; crun
# refuses hosts with cgroups in hybrid mode).
set -euo pipefail

die() { echo "FAIL: $*" >&2; exit 1; }
step() { echo "==> $*" >&2; }

[ $# -eq 1 ] || { echo "usage: $0 ARCHIVE" >&2; exit 2; }
[ -f "$1" ] || die "no such archive: $1"
archive=$(realpath "$1")
[ "$(id -u)" -eq 0 ] || { echo "run as root (podman, and PostgreSQL as nobody)" >&2; exit 2; }

pg_bin=/usr/lib/postgresql/15/bin
missing=()
for tool in podman skopeo umoci curl jq runuser; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ -x "$pg_bin/initdb" ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  echo "missing: ${missing[*]}; install with: apt-get install -y podman runc skopeo umoci curl jq postgresql" >&2
  exit 2
fi
runtime=${OCI_RUNTIME:-}
if [ -z "$runtime" ] && command -v runc >/dev/null; then runtime=runc; fi
podman_() { podman ${runtime:+--runtime "$runtime"} "$@"; }

start=$SECONDS
work=$(mktemp -d /tmp/oci-image-test.XXXXXX)
chmod 0755 "$work"
name=oci-image-test-$$
image_id=
loaded=
pg_started=
secret=
key_secret=
cleanup() {
  local rc=$?
  podman_ rm -f -t 0 "$name" "$name-migrate" >/dev/null 2>&1 || true
  if [ -n "$secret" ]; then podman secret rm "$secret" >/dev/null 2>&1 || true; fi
  if [ -n "$key_secret" ]; then podman secret rm "$key_secret" >/dev/null 2>&1 || true; fi
  if [ -n "$loaded" ]; then podman rmi -f "$image_id" >/dev/null 2>&1 || true; fi
  if [ -n "$pg_started" ]; then
    runuser -u nobody -- "$pg_bin/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true
  fi
  rm -rf "$work"
  if [ $rc -eq 0 ]; then echo "PASS: OCI image ($((SECONDS - start)) s)" >&2; fi
  exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# A TCP port nothing listens on (connecting fails).
free_port() {
  local port
  while :; do
    port=$((20000 + RANDOM % 40000))
    [ "$port" != "${1:-}" ] || continue
    (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || { echo "$port"; return; }
  done
}

step "skopeo inspect: config and annotations"
ref=oci-archive:$archive
config=$(skopeo inspect --config "$ref") || die "skopeo cannot read $archive"
manifest=$(skopeo inspect --raw "$ref")
user=$(jq -r '.config.User // ""' <<<"$config")
uid=${user%%:*}
[[ "$uid" =~ ^[0-9]+$ && "$uid" -ne 0 ]] || die "config User is '$user', expected a numeric non-root uid"
[ "$(jq -c '.config.Entrypoint' <<<"$config")" = '["/usr/bin/mogothrow77"]' ] ||
  die "Entrypoint is $(jq -c '.config.Entrypoint' <<<"$config")"
[ "$(jq -c '.config.Cmd' <<<"$config")" = '["serve"]' ] || die "Cmd is $(jq -c '.config.Cmd' <<<"$config")"
for key in version revision created; do
  for where in manifest config; do
    if [ $where = manifest ]; then
      value=$(jq -r --arg k "org.opencontainers.image.$key" '.annotations[$k] // ""' <<<"$manifest")
    else
      value=$(jq -r --arg k "org.opencontainers.image.$key" '.config.Labels[$k] // ""' <<<"$config")
    fi
    [ -n "$value" ] || die "$where has no org.opencontainers.image.$key"
  done
done
version=$(jq -r '.annotations["org.opencontainers.image.version"]' <<<"$manifest")
image_id=$(jq -r '.config.digest' <<<"$manifest")
image_id=${image_id#sha256:}
echo "    User $user, version $version, revision $(jq -r '.annotations["org.opencontainers.image.revision"]' <<<"$manifest")" >&2

step "umoci: layout, digests and layer contents"
mkdir "$work/layout"
tar -xf "$archive" -C "$work/layout"
umoci unpack --image "$work/layout:$version" "$work/bundle" >/dev/null ||
  die "umoci cannot unpack the image (bad layout or digest)"
rootfs=$work/bundle/rootfs
[ "$(stat -c %u:%g "$rootfs/var/lib/mogothrow77")" = "$uid:$uid" ] ||
  die "/var/lib/mogothrow77 is owned by $(stat -c %u:%g "$rootfs/var/lib/mogothrow77")"
for f in usr/bin/mogothrow77 etc/ssl/certs/ca-certificates.crt usr/share/zoneinfo/Europe/Berlin etc/passwd; do
  [ -s "$rootfs/$f" ] || die "the layer has no /$f"
done
grep -q "^mogothrow77:x:$uid:" "$rootfs/etc/passwd" || die "/etc/passwd has no mogothrow77 user with uid $uid"
rm -rf "$work/layout" "$work/bundle"

step "podman load"
podman image exists "$image_id" || loaded=1
podman load -q -i "$archive" >/dev/null || die "podman load failed"
podman image exists "$image_id" || die "podman load did not store image $image_id"

step "throwaway PostgreSQL on 127.0.0.1"
pg_port=$(free_port)
install -d -o nobody -m 0700 "$work/pg"
runuser -u nobody -- "$pg_bin/initdb" -D "$work/pg/data" --auth=trust -U postgres \
  --no-sync -E UTF8 --locale=C >"$work/initdb.log" 2>&1 || { cat "$work/initdb.log" >&2; die "initdb failed"; }
pg_started=1
runuser -u nobody -- "$pg_bin/pg_ctl" -D "$work/pg/data" -w -t 30 -l "$work/pg/log" \
  -o "-c listen_addresses=127.0.0.1 -c port=$pg_port -c unix_socket_directories=$work/pg -c fsync=off" \
  start >/dev/null || { cat "$work/pg/log" >&2; die "PostgreSQL did not start"; }
db_url=postgresql://postgres@127.0.0.1:$pg_port/postgres

# The database URL as docs/install.md passes it: a podman secret mounted
# private to the image's user, named by MOGOTHROW77_DATABASE__URL_FILE,
# with a tmpfs under /run/secrets (the read-only root has no room for the
# secret's mount point).
secret=db-url-$$
printf '%s\n' "$db_url" | podman secret create "$secret" - >/dev/null || die "podman secret create failed"
# The key-encryption key file an external database requires
# (secrets.key_file), in the format `mogothrow77 key-file new` writes.
key_secret=secrets-key-$$
printf '%s %s\n' "$(head -c 8 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
  "$(head -c 32 /dev/urandom | basenc --base64url | tr -d '=\n')" |
  podman secret create "$key_secret" - >/dev/null || die "podman secret create failed"
# shellcheck disable=SC2054 # the commas are mount options
run_args=(--network=host --read-only
  # U: owned by the image's user (podman 4.3 rejects tmpfs uid=/gid=).
  --tmpfs /var/lib/mogothrow77:rw,mode=0700,U
  --tmpfs /run/secrets:rw,mode=0755
  --cap-drop=ALL --security-opt no-new-privileges
  --ulimit nofile=20000:20000 --ulimit nproc=4096:4096
  -e MOGOTHROW77_DATABASE__URL_FILE=/run/secrets/db-url
  --secret "$secret,target=db-url,uid=10001,mode=0400"
  -e MOGOTHROW77_SECRETS__KEY_FILE=/run/secrets/secrets.key
  --secret "$key_secret,target=secrets.key,uid=10001,mode=0400")

step "mogothrow77 migrate (in the container)"
podman_ run --rm --name "$name-migrate" "${run_args[@]}" "$image_id" migrate >"$work/migrate.log" 2>&1 ||
  { cat "$work/migrate.log" >&2; die "migrate failed in the container"; }
sed 's/^/    /' "$work/migrate.log" >&2

step "serve (read-only root, no capabilities)"
port=$(free_port "$pg_port")
# No --rm: the exit code must survive the stop for `podman inspect`.
podman_ run -d --name "$name" "${run_args[@]}" -e "MOGOTHROW77_LISTEN=127.0.0.1:$port" "$image_id" >/dev/null ||
  die "podman run failed"
ready=
for _ in $(seq 120); do
  body=$(curl -sk --max-time 2 "https://127.0.0.1:$port/readyz" || true)
  if [ "$(jq -r '.status? // empty' <<<"$body" 2>/dev/null)" = ready ]; then ready=1; break; fi
  [ "$(podman inspect -f '{{.State.Running}}' "$name")" = true ] || break
  sleep 0.5
done
if [ -z "$ready" ]; then
  podman logs "$name" 2>&1 | tail -20 >&2
  die "/readyz on 127.0.0.1:$port did not report ready within 60 s (last answer: ${body:-none})"
fi
echo "    /readyz: $body" >&2

step "process identity"
pid=$(podman inspect -f '{{.State.Pid}}' "$name")
status=$(cat "/proc/$pid/status")
podman_ top "$name" user group huser hgroup capeff args >&2
awk '/^Uid:/ { for (i = 2; i <= 5; i++) if ($i != u) exit 1 }' u="$uid" <<<"$status" ||
  die "the server does not run as uid $uid: $(grep '^Uid:' <<<"$status")"
awk '/^Gid:/ { for (i = 2; i <= 5; i++) if ($i != u) exit 1 }' u="$uid" <<<"$status" ||
  die "the server does not run as gid $uid: $(grep '^Gid:' <<<"$status")"
grep -Eq '^CapEff:\s+0+$' <<<"$status" || die "the server has capabilities: $(grep '^CapEff:' <<<"$status")"
grep -Eq '^NoNewPrivs:\s+1$' <<<"$status" || die "no_new_privs is not set"
# Into a file first: `head` closing a pipe early would fail the pipeline.
podman logs "$name" >"$work/serve.log" 2>/dev/null || die "cannot read the container's log"
head -1 "$work/serve.log" | jq -e . >/dev/null || die "the log is not JSON lines: $(head -1 "$work/serve.log")"

step "podman stop (SIGTERM)"
podman_ stop -t 30 "$name" >/dev/null || die "podman stop failed"
code=$(podman inspect -f '{{.State.ExitCode}}' "$name")
[ "$code" = 0 ] || { podman logs "$name" 2>&1 | tail -20 >&2; die "the server exited $code after SIGTERM, expected 0"; }
podman logs "$name" 2>/dev/null | grep '"stopped"' >/dev/null || die "no 'stopped' event in the log after SIGTERM"

size=$(podman image inspect -f '{{.Size}}' "$image_id")
echo "image size: $size bytes in podman, archive $(stat -c %s "$archive") bytes" >&2
