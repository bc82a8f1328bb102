#!/usr/bin/env bash
# The Debian package: built out of tree by `dpkg-buildpackage -us -uc -b`
# from a copy of the source, checked by lintian (no errors; every tag is
# printed), installed with dpkg on a clean Debian 12 root (tests/lib/debroot.sh,
# in a chroot), where the shipped /etc/tierd/tierd.conf passes
# `tierd --check-config`; then removed with `dpkg -r` (binaries gone, the
# configuration, the state and users' data untouched) and purged (the state
# and users' data still untouched: the catalog is the only map of where
# tiered files live).
set -euo pipefail
: "${TD_SOURCE_DIR:?}"
. "$TD_SOURCE_DIR/tests/lib/report.sh"
. "$TD_SOURCE_DIR/tests/lib/missing.sh"
[ "$(id -u)" = 0 ] || td_missing "root"
td_need_cmds dpkg-buildpackage dh lintian debootstrap
T=$(mktemp -d /tmp/tierd-deb.XXXXXX)
R=$T/root
cleanup() {
	set +e
	mountpoint -q "$R/proc" && umount -l "$R/proc"
	rm -rf "$T"
}
trap cleanup EXIT

# --- build ---------------------------------------------------------------------
src=$T/tierd
mkdir -p "$src"
# The source as a release tarball would hold it: no build trees, no git.
tar -C "$TD_SOURCE_DIR" --exclude='./build*' --exclude=./.git --exclude=./obj-* -cf - . | tar -C "$src" -xf -
if (cd "$src" && DEB_BUILD_OPTIONS="parallel=2" dpkg-buildpackage -us -uc -b) >"$T/build.log" 2>&1; then
	pass "dpkg-buildpackage -us -uc -b"
else
	tail -40 "$T/build.log"
	fail "dpkg-buildpackage"
	finish
	exit 1
fi
grep -q "ctest\|Test project" "$T/build.log" && fail "the package build ran the test suite" ||
	pass "the package build ran no tests"
deb=$(ls "$T"/tierd_*.deb 2>/dev/null | grep -v dbgsym | head -1)
[ -n "$deb" ] && pass "built $(basename "$deb")" || { fail "no tierd_*.deb"; finish; exit 1; }
dpkg-deb -c "$deb" >"$T/contents"
for f in ./usr/sbin/tierd ./usr/bin/tierctl ./etc/tierd/tierd.conf ./usr/share/man/man8/tierd.8.gz \
	./usr/share/man/man5/tierd.conf.5.gz ./usr/share/man/man1/tierctl.1.gz \
	./usr/share/bash-completion/completions/tierctl tierd.service ./usr/share/doc/tierd/admin-guide.md.gz; do
	grep -q -- "$f\$" "$T/contents" && pass "ships ${f#.}" || fail "does not ship ${f#.}"
done
dpkg-deb -I "$deb" conffiles 2>/dev/null | grep -qx /etc/tierd/tierd.conf &&
	pass "/etc/tierd/tierd.conf is a conffile" || fail "/etc/tierd/tierd.conf is not a conffile"
# hardening=+all: PIE, bindnow, relro, fortify, stack protector (bookworm's
# dpkg 1.21 has no branch-protection feature: -fcf-protection is not asked).
dpkg-deb -x "$deb" "$T/x"
if command -v hardening-check >/dev/null; then
	hardening-check -q --nocfprotection "$T/x/usr/sbin/tierd" "$T/x/usr/bin/tierctl" >"$T/hard" 2>&1 &&
		pass "hardening-check: tierd and tierctl" || { fail "hardening-check"; cat "$T/hard"; }
fi

# --- lintian ---------------------------------------------------------------------
changes=$(ls "$T"/tierd_*.changes | head -1)
lintian --display-info --pedantic "$changes" >"$T/lintian" 2>&1 || true
grep -v "running with root privileges" "$T/lintian" | sed 's/^/  lintian: /' || true
if grep -q '^E: ' "$T/lintian"; then fail "lintian reports errors"; else
	pass "lintian: no errors ($(grep -c '^W: ' "$T/lintian" || true) warnings)"
fi

# --- install on a clean Debian 12 root ----------------------------------------------
base=$("$TD_SOURCE_DIR/tests/lib/debroot.sh") || { fail "no Debian root"; finish; exit 1; }
cp -a "$base" "$R"
mount -t proc proc "$R/proc"
cp "$deb" "$R/tmp/tierd.deb"
in_root() { chroot "$R" "$@"; }
if in_root dpkg -i /tmp/tierd.deb >"$T/install.log" 2>&1; then
	pass "dpkg -i on a clean Debian 12 root"
else
	fail "dpkg -i"
	cat "$T/install.log"
fi
in_root getent group tierd >/dev/null && pass "the tierd group exists (admin_group)" || fail "no tierd group"
if in_root tierd --check-config >"$T/check.out" 2>&1; then
	pass "tierd --check-config passes on the shipped /etc/tierd/tierd.conf"
else
	fail "tierd --check-config on the shipped config"
	cat "$T/check.out"
fi
in_root tierctl --help >/dev/null 2>&1 && pass "tierctl runs" || fail "tierctl --help"
st=$(in_root systemctl is-enabled tierd 2>/dev/null || true)
[ "$st" = disabled ] && pass "the unit is installed, not enabled until configured" || fail "unit state: '$st'"

# --- remove: binaries gone, the rest untouched ---------------------------------------
mkdir -p "$R/var/lib/tierd/links" "$R/srv/data"
echo "catalog" >"$R/var/lib/tierd/catalog.db"
ln -s /run/tierd/remote/00ab "$R/var/lib/tierd/links/00ab"
echo "user data" >"$R/srv/data/report.txt"
ln -s /var/lib/tierd/links/00ab "$R/srv/data/old.bin"
echo "# edited" >>"$R/etc/tierd/tierd.conf"
keep() { (cd "$R" && find var/lib/tierd srv/data etc/tierd -printf '%p %y %l\n' | sort && cat var/lib/tierd/catalog.db srv/data/report.txt) ; }
keep >"$T/before"
in_root dpkg -r tierd >"$T/remove.log" 2>&1 && pass "dpkg -r tierd" || { fail "dpkg -r"; cat "$T/remove.log"; }
gone=1
for f in /usr/sbin/tierd /usr/bin/tierctl /lib/systemd/system/tierd.service /usr/lib/systemd/system/tierd.service; do
	[ ! -e "$R$f" ] || { fail "$f is still there after dpkg -r"; gone=0; }
done
[ $gone = 1 ] && pass "binaries and unit removed"
keep >"$T/after"
cmp -s "$T/before" "$T/after" && pass "state, users' data and the edited config untouched by dpkg -r" || {
	fail "dpkg -r changed the state, data or config"
	diff "$T/before" "$T/after"
}
in_root dpkg --purge tierd >"$T/purge.log" 2>&1 && pass "dpkg --purge tierd" || { fail "dpkg --purge"; cat "$T/purge.log"; }
[ ! -e "$R/etc/tierd/tierd.conf" ] && pass "purge removed the conffile" || fail "purge left /etc/tierd/tierd.conf"
(cd "$R" && find var/lib/tierd srv/data -printf '%p %y %l\n' | sort && cat var/lib/tierd/catalog.db srv/data/report.txt) >"$T/purged"
grep -v '^etc/tierd' "$T/before" | cmp -s - "$T/purged" && pass "purge leaves the state and users' data" ||
	{ fail "purge touched the state or data"; diff <(grep -v '^etc/tierd' "$T/before") "$T/purged"; }
finish
