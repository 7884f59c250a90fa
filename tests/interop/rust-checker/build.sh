#!/usr/bin/env bash
# Builds the Rust interop checker: real serde derive + serde_cbor with the Rust
# original's v1 struct layout (from the project's shared tools), using Debian's
# packaged crates offline. Prints the binary's path.
#   $bin check FILE   exit 0 when Rust decodes FILE and re-encodes identical bytes
set -eu
here=$(cd "$(dirname "$0")" && pwd)
target=${DURABILITY_RUST_TARGET:-/tmp/durability-rust-checker}
bin=$target/release/rustgold
if [ ! -x "$bin" ]; then
  if ! command -v cargo >/dev/null 2>&1; then
    echo "cargo not found: install Rust (rustc/cargo) to build the interop checker" >&2
    exit 1
  fi
  if [ ! -d /usr/share/cargo/registry/serde_cbor-0.11.2 ]; then
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      librust-serde-cbor-dev librust-serde-derive-dev librust-serde-dev) >/tmp/durability-rust-apt.log 2>&1 \
      || { echo "apt install of Debian's serde crates failed; see /tmp/durability-rust-apt.log" >&2; exit 1; }
  fi
  (cd "$here" && CARGO_TARGET_DIR=$target cargo build -q --offline --locked --release) >&2
fi
echo "$bin"
