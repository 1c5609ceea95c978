#!/usr/bin/env bash
# Run the bfd fuzz targets with cargo-fuzz (libFuzzer).
#
#   crates/bfd/fuzz/run.sh decode [SECONDS] [extra libFuzzer args...]   # default 600 s
#   crates/bfd/fuzz/run.sh session [SECONDS]
#   crates/bfd/fuzz/run.sh all [SECONDS]                                 # both, one after the other
#
# Targets:
#   decode   decode() on arbitrary bytes (optionally with version and Length fixed up so the fuzzer
#            gets to the deeper checks). Must never panic; an accepted packet must re-encode to its
#            own first 24 bytes and decode to itself.
#   session  one session: arbitrary configuration, peer packets (well-formed or raw), timer changes,
#            admin up/down and time steps; the API contract's invariants are checked after each.
#
# Setup, once: `cargo install cargo-fuzz`. Only a stable toolchain is installed here, so the nightly
# flags cargo-fuzz passes (-Zsanitizer=address, ...) are unlocked with RUSTC_BOOTSTRAP=1. If the
# sanitizer runtime is unavailable, add `--sanitizer none` (FUZZ_SANITIZER=none below); the targets
# are safe Rust, so the sanitizer mainly catches panics/aborts, which libFuzzer reports anyway.
#
# The corpus lives in fuzz/corpus/<target>, crashes in fuzz/artifacts/<target> (both git-ignored).
# Reproduce a crash: RUSTC_BOOTSTRAP=1 cargo fuzz run decode fuzz/artifacts/decode/crash-...
# The run is niced: the build machine is shared.
set -euo pipefail
cd "$(dirname "$0")/.."   # crates/bfd: cargo-fuzz finds ./fuzz

target=${1:-decode}
secs=${2:-600}
shift $(( $# > 2 ? 2 : $# ))
sanitizer=${FUZZ_SANITIZER:-address}
export RUSTC_BOOTSTRAP=1

run() {
  mkdir -p "fuzz/corpus/$1"
  nice -n 19 cargo fuzz run --sanitizer "$sanitizer" "$1" "fuzz/corpus/$1" -- \
    -max_total_time="$secs" -print_final_stats=1 "${@:2}"
}

case $target in
  decode | session) run "$target" "$@" ;;
  all) for t in decode session; do run "$t" "$@"; done ;;
  *) echo "usage: $0 decode|session|all [SECONDS] [libFuzzer args...]" >&2; exit 2 ;;
esac
