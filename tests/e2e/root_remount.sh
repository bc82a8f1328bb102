#!/usr/bin/env bash
# A policy root mounted over after tierd first used it: a later migrate works
# in what the root's path names now (the new mount), never in the directory
# underneath that the mover's first fd of the root still holds.
. "$(dirname "$0")/lib.sh"
e2e_init root_remount
mkdir -p "$T/tier"
head -c 5000 /dev/urandom >"$T/data/before"
head -c 5000 /dev/urandom >"$T/data/late" # the same name, under the mount to come
sha_under=$(sha256sum <"$T/data/late")
e2e_conf "$(dir_target_conf nas "$T/tier")" "$(e2e_policy nas "$T/data")"
e2e_start
ctl migrate "$T/data/before" >/dev/null && [ -L "$T/data/before" ] &&
	pass "first migrate beneath the root" || fail "first migrate"

mount -t tmpfs -o size=16m tierd-remount "$T/data" || e2e_abort "cannot mount a tmpfs (root needed)"
E2E_CLEANUP_HOOKS+=("umount -l '$T/data'")
head -c 7000 /dev/urandom >"$T/data/late"
sha_new=$(sha256sum <"$T/data/late")
ctl migrate "$T/data/late" >"$T/mig.out" 2>&1 && [ -L "$T/data/late" ] &&
	pass "migrate after the remount tiers the file on the new mount" ||
	fail "migrate after the remount: $(cat "$T/mig.out")"
[ "$(sha256sum <"$T/data/late")" = "$sha_new" ] && pass "it reads back through its link" ||
	fail "the new file does not read back"
umount -l "$T/data"
[ -f "$T/data/late" ] && [ ! -L "$T/data/late" ] && [ "$(sha256sum <"$T/data/late")" = "$sha_under" ] &&
	pass "the directory under the mount was not touched" ||
	fail "the file under the mount changed: $(ls -l "$T/data")"
tierd_stop
finish
