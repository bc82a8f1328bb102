#!/usr/bin/env bash
# A recall across file systems (the cache on a tmpfs of its own) killed while
# it copies the data beside the link (TD_TEST_CRASH_AT=recall_copied, step
# started: the copy is not recorded yet). Recovery must drop the unfinished
# .tierd-<id> copy: left there (found by tests/soak) it stayed in the user's
# directory and every later recall failed with EEXIST ("cannot copy it back:
# File exists"). Then the recall is retried and brings the file back with its
# bytes.
. "$(dirname "$0")/lib.sh"
e2e_init recall_crash
[ "$(id -u)" = 0 ] || td_missing "root (a tmpfs for the cache)"
[ -c /dev/fuse ] || td_missing "/dev/fuse"
mkdir -p "$T/cache" "$T/tier"
mount -t tmpfs -o size=64m,mode=755 e2e-cache "$T/cache" || e2e_abort "cannot mount a tmpfs"
E2E_CLEANUP_HOOKS+=('umount -l "$T/run/remote" 2>/dev/null; umount -l "$T/cache"')
head -c 300000 /dev/urandom >"$T/data/f"
chown 1234:1234 "$T/data/f"
touch -d 2020-01-01 "$T/data/f"
cp -p "$T/data/f" "$T/f.orig"
e2e_conf "$(dir_target_conf tier "$T/tier")" "$(e2e_policy tier "$T/data")"
e2e_start
ctl migrate "$T/data/f" >/dev/null && [ -L "$T/data/f" ] && pass "f tiered, its copy kept in the cache" ||
	e2e_abort "migrate"
tierd_stop
tierd_start TD_TEST_CRASH_AT=recall_copied || e2e_abort "tierd (crash hook) did not start"
ctl recall "$T/data/f" >/dev/null 2>&1 || true
wait_dead 30 && pass "tierd died as the recall copied the data" || e2e_abort "tierd did not crash at recall_copied"
[ -n "$(find "$T/data" -name '.tierd-*')" ] && pass "the unfinished copy is beside the link" ||
	fail "no .tierd-* copy beside the link"
e2e_start
left=$(find "$T/data" -name '.tierd-*')
[ -z "$left" ] && pass "recovery dropped the unfinished copy" || fail "left after recovery: $left"
# The row is dirty again (the copy still has to go back): tierd's own retry
# or this recall brings it back, whichever comes first.
back() { [ -f "$T/data/f" ] && [ ! -L "$T/data/f" ]; }
back || ctl recall "$T/data/f" >"$T/recall.out" 2>&1 || true # "busy": tierd's own is running
for _ in $(seq 100); do back && break; sleep 0.1; done
grep -q "cannot copy it back" "$T/tierd.log" && fail "a recall failed: $(grep "cannot copy it back" "$T/tierd.log" | head -1)" ||
	pass "no recall failed on the copy left behind"
[ -f "$T/data/f" ] && [ ! -L "$T/data/f" ] && cmp -s "$T/data/f" "$T/f.orig" &&
	pass "f is back on primary storage with its bytes" || fail "f is not back whole"
[ -z "$(find "$T/data" -name '.tierd-*')" ] && pass "no .tierd-* names" || fail "temp names left"
tierd_stop
finish
