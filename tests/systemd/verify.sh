#!/usr/bin/env bash
# systemd accepts the unit file as shipped (systemd-analyze verify), pointing
# its Exec lines at the binaries just built.
set -euo pipefail
: "${TD_SOURCE_DIR:?}" "${TIERD:?}"
command -v systemd-analyze >/dev/null || { echo "FAIL: systemd-analyze missing (apt-get install systemd)"; exit 1; }
t=$(mktemp -d /tmp/tierd-unit.XXXXXX)
trap 'rm -rf "$t"' EXIT
sed "s|/usr/sbin/tierd|$TIERD|g" "$TD_SOURCE_DIR/systemd/tierd.service" >"$t/tierd.service"
# verify warns on stderr about other units on the machine; only ours counts.
out=$(systemd-analyze verify --man=no "$t/tierd.service" 2>&1 || true)
ours=$(printf '%s\n' "$out" | grep -F "tierd.service" || true)
if [ -n "$ours" ]; then
	echo "FAIL: systemd-analyze verify:"
	printf '%s\n' "$ours"
	exit 1
fi
grep -q '^Type=notify' "$t/tierd.service" && grep -q '^ExecReload=' "$t/tierd.service" ||
	{ echo "FAIL: unit lost Type=notify or ExecReload"; exit 1; }
echo "ok systemd-analyze verify tierd.service"
