#!/bin/sh
# Checks a built floatip .deb: every file the package promises is in it, with sane modes, and the
# control data is right. Fails (exit 1) listing everything missing.
# Usage: packaging/check-deb.sh [path/to.deb]   (default: the newest target/debian/floatip_*.deb)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)
deb=${1:-}
if [ -z "$deb" ]; then
    deb=$(ls -t "${CARGO_TARGET_DIR:-$root/target}"/debian/floatip_*.deb 2>/dev/null | head -n 1 || true)
fi
[ -n "$deb" ] && [ -f "$deb" ] || { echo "check-deb: no .deb found (run packaging/build-deb.sh)" >&2; exit 1; }
contents=$(dpkg-deb -c "$deb")
missing=0
want() { # want MODE PATH: PATH is in the package (ending in / = a directory) with MODE (e.g. -rwxr-xr-x)
    if ! echo "$contents" | awk -v m="$1" -v p="./$2" '$1 == m && $6 == p { found = 1 } END { exit !found }'; then
        echo "check-deb: missing or wrong mode: $1 $2" >&2
        missing=$((missing + 1))
    fi
}
want -rwxr-xr-x usr/sbin/floatip
# cargo-deb may install the unit under /lib or /usr/lib (merged /usr); either is found by systemd.
if ! echo "$contents" | grep -Eq '^-rw-r--r-- .* \./(usr/)?lib/systemd/system/floatip\.service$'; then
    echo "check-deb: missing: lib/systemd/system/floatip.service" >&2
    missing=$((missing + 1))
fi
want -rw-r--r-- etc/floatip/floatip.toml
want -rw-r--r-- usr/share/man/man1/floatip.1.gz
for sub in run check status takeover release auto reload events init import import-keepalived; do
    want -rw-r--r-- "usr/share/man/man1/floatip-$sub.1.gz"
done
want -rw-r--r-- usr/share/bash-completion/completions/floatip
want -rw-r--r-- usr/share/zsh/vendor-completions/_floatip
want -rw-r--r-- usr/share/fish/vendor_completions.d/floatip.fish
want -rw-r--r-- usr/share/doc/floatip/README.md
want -rw-r--r-- usr/share/doc/floatip/config.md
want -rw-r--r-- usr/share/doc/floatip/operations.md
want -rw-r--r-- usr/share/doc/floatip/copyright
want -rw-r--r-- usr/share/doc/floatip/examples/floatip.toml
want -rw-r--r-- usr/share/doc/floatip/grafana/floatip-dashboard.json

# Control data: the example config is a conffile (an upgrade never overwrites the admin's edits),
# and the maintainer scripts never enable or start the service on install.
ctl=$(mktemp -d)
trap 'rm -rf "$ctl"' EXIT INT TERM
dpkg-deb -e "$deb" "$ctl"
grep -qx /etc/floatip/floatip.toml "$ctl/conffiles" 2>/dev/null || {
    echo "check-deb: /etc/floatip/floatip.toml is not a conffile" >&2
    missing=$((missing + 1))
}
if cat "$ctl"/postinst 2>/dev/null | grep -Eq 'deb-systemd-invoke (start|restart) |systemctl (--[a-z-]+ )*(start|enable)'; then
    # try-restart on upgrade is fine; a plain start/enable on install is not.
    if cat "$ctl"/postinst | grep -Ev 'try-restart' | grep -Eq 'deb-systemd-invoke (start|restart) |systemctl (--[a-z-]+ )*(start|enable) '; then
        echo "check-deb: postinst starts or enables floatip on install" >&2
        missing=$((missing + 1))
    fi
fi
grep -q 'stop floatip.service' "$ctl/prerm" 2>/dev/null || {
    echo "check-deb: prerm does not stop floatip on removal" >&2
    missing=$((missing + 1))
}
grep -q '^Package: floatip$' "$ctl/control" || { echo "check-deb: control has no Package: floatip" >&2; missing=$((missing + 1)); }
grep -q '^Section: net$' "$ctl/control" || { echo "check-deb: control: Section is not net" >&2; missing=$((missing + 1)); }

if [ "$missing" -ne 0 ]; then
    echo "check-deb: $deb: $missing problem(s)" >&2
    echo "$contents" >&2
    exit 1
fi
echo "check-deb: $deb OK ($(echo "$contents" | grep -c '^-') files)"
