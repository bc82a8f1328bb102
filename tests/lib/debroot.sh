#!/usr/bin/env bash
# Builds (once) and prints the path of a minimal Debian 12 root with systemd,
# made by debootstrap from Debian's archive: the systemd test boots it with
# systemd-nspawn, the package test installs the .deb in a copy of it.
#
#   tests/lib/debroot.sh            print the root's path, building it if needed
#   TD_DEBROOT_CACHE=DIR            where it lives (default /var/cache/tierd-test)
#   TD_DEBIAN_MIRROR=URL            default http://deb.debian.org/debian
#
# The root is built in a temp dir next to the final one and renamed when
# complete, so an interrupted build never leaves a half root behind; a lock
# serialises concurrent tests. Tests boot or chroot into a throw-away copy (cp -a), so
# the cached root stays clean between runs. Its packages: systemd and dbus to
# boot, the shared libraries tierd links (and ASan's, for the sanitizer
# build), fuse3, and sqlite3 for tests.
set -euo pipefail
cache=${TD_DEBROOT_CACHE:-/var/cache/tierd-test}
mirror=${TD_DEBIAN_MIRROR:-http://deb.debian.org/debian}
# Bump when the package list changes, so a stale cache is rebuilt.
version=2
root=$cache/bookworm-v$version
pkgs=systemd,systemd-sysv,dbus,libcurl4,libuv1,libjansson4,libinih1,libsqlite3-0,libfuse3-3,fuse3,sqlite3,procps,psmisc,libpam-systemd,libasan8,libubsan1

command -v debootstrap >/dev/null || { echo "debroot: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
mkdir -p "$cache"
exec 9>"$cache/.lock"
flock 9
if [ ! -e "$root/.complete" ]; then
	rm -rf "$root" "$root.tmp"
	echo "debroot: building $root with debootstrap (a few minutes, once)" >&2
	if ! debootstrap --variant=minbase --include="$pkgs" bookworm "$root.tmp" "$mirror" >"$cache/debootstrap.log" 2>&1; then
		tail -20 "$cache/debootstrap.log" >&2
		echo "debroot: debootstrap failed (log: $cache/debootstrap.log)" >&2
		exit 1
	fi
	# Boots without a login prompt or a network wait; root has no password
	# (the container is only reached through machinectl/nsenter by the tests).
	echo tierd-test >"$root.tmp/etc/hostname"
	rm -f "$root.tmp/etc/machine-id" && : >"$root.tmp/etc/machine-id"
	chroot "$root.tmp" systemctl mask getty@tty1.service console-getty.service systemd-networkd-wait-online.service >/dev/null 2>&1 || true
	chroot "$root.tmp" apt-get clean
	touch "$root.tmp/.complete"
	mv "$root.tmp" "$root"
	find "$cache" -mindepth 1 -maxdepth 1 -name "bookworm-v*" ! -name "bookworm-v$version" -exec rm -rf {} +
fi
echo "$root"
