#!/bin/sh
# Checks packaging/floatip.service with `systemd-analyze verify` (Debian package: systemd).
#
# verify insists that ExecStart= binaries exist, so a copy of the unit with /usr/sbin/floatip
# rewritten to the freshly built binary is verified in a temp dir. Any warning about the unit
# fails the run (systemd-analyze exits 0 for some of them).
# Usage: packaging/verify-unit.sh [path/to/floatip]   (default: target/debug/floatip, built if missing)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
bin=${1:-}
if [ -z "$bin" ]; then
    target=${CARGO_TARGET_DIR:-$root/target}
    bin=$target/debug/floatip
    [ -x "$bin" ] || (cd "$root" && cargo build -q -p floatip)
fi
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
[ -x "$bin" ] || { echo "verify-unit: no floatip binary at $bin" >&2; exit 1; }
command -v systemd-analyze >/dev/null || { echo "verify-unit: systemd-analyze missing (apt-get install systemd)" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM
sed "s#/usr/sbin/floatip#$bin#g" "$root/packaging/floatip.service" > "$tmp/floatip.service"
out=$(cd "$tmp" && SYSTEMD_LOG_LEVEL=notice systemd-analyze verify --man=no "$tmp/floatip.service" 2>&1) || {
    echo "$out" >&2
    echo "verify-unit: systemd-analyze verify failed" >&2
    exit 1
}
# Only lines about our unit count (the host's own units may have their own complaints).
if echo "$out" | grep -F "floatip.service" >&2; then
    echo "verify-unit: systemd-analyze has complaints about floatip.service (above)" >&2
    exit 1
fi
echo "verify-unit: floatip.service OK"
