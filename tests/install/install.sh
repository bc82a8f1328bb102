#!/usr/bin/env bash
# `cmake --install` puts every piece in its FHS place, and a second install
# keeps an admin's edited configuration.
set -euo pipefail
: "${TD_BUILD_DIR:?}"
dest=$(mktemp -d /tmp/tierd-install.XXXXXX)
trap 'rm -rf "$dest"' EXIT
DESTDIR="$dest" cmake --install "$TD_BUILD_DIR" --prefix /usr >"$dest.log" 2>&1 || { cat "$dest.log"; exit 1; }
fail=0
for f in usr/sbin/tierd usr/bin/tierctl etc/tierd/tierd.conf usr/share/doc/tierd/examples/tierd.conf \
	usr/share/man/man5/tierd.conf.5 usr/share/man/man8/tierd.8 usr/share/man/man1/tierctl.1 \
	usr/lib/systemd/system/tierd.service usr/share/bash-completion/completions/tierctl; do
	if [ ! -e "$dest/$f" ]; then echo "FAIL: not installed: /$f"; fail=1; fi
done
[ -x "$dest/usr/sbin/tierd" ] || { echo "FAIL: tierd not executable"; fail=1; }
mode=$(stat -c %a "$dest/etc/tierd/tierd.conf" 2>/dev/null || echo none)
[ "$mode" = 640 ] || { echo "FAIL: /etc/tierd/tierd.conf mode $mode, want 640"; fail=1; }
echo "# edited by the admin" >>"$dest/etc/tierd/tierd.conf"
DESTDIR="$dest" cmake --install "$TD_BUILD_DIR" --prefix /usr >/dev/null 2>&1
grep -q "edited by the admin" "$dest/etc/tierd/tierd.conf" || { echo "FAIL: reinstall overwrote the config"; fail=1; }
rm -f "$dest.log"
[ $fail -eq 0 ] && echo "ok install: all files in place, config kept on reinstall"
exit $fail
