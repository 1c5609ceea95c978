#!/bin/sh
# Builds the Debian package: release binary, man pages and completions (target/assets), then
# `cargo deb`. Needs cargo-deb (`cargo install cargo-deb`). Prints the .deb's path last.
# Usage: packaging/build-deb.sh
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
command -v cargo-deb >/dev/null 2>&1 || { echo "build-deb: cargo-deb missing: cargo install cargo-deb" >&2; exit 1; }
target=${CARGO_TARGET_DIR:-$root/target}
# Generated man pages and completions (git-ignored; crates/floatip/Cargo.toml names them).
assets=$root/packaging/generated
rm -rf "$assets"
cargo build --release -p floatip --locked
cargo run --release -q -p floatip --locked --example gen-assets -- "$assets" >/dev/null
gzip -9n "$assets"/man/*.1
mkdir -p "$target/debian"
cargo deb -p floatip --no-build --locked --output "$target/debian/"
