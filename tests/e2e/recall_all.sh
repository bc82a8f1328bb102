#!/usr/bin/env bash
# Issue 13 item 4 — bulk recall on radosgw: N files (300; TD_BENCH_SIZE=full:
# the issue's 10,000) of varied owners, modes and mtimes are tiered, then
# `recall --all` is started and tierd is killed (SIGKILL) halfway; restarted,
# it resumes the recorded request and the rest come back: every file is a
# regular file again with its bytes, owner, mode and mtime, and no link into
# the namespace is left under the policy roots (the uninstall path). A policy
# whose root is a small tmpfs, with too little room left there, is refused
# with the numbers before a byte moves; after room is made it goes through.
. "$(dirname "$0")/lib.sh"
e2e_init recallall s3
N=${E2E_RECALL_FILES:-300}
[ "${TD_BENCH_SIZE:-}" = full ] && N=10000
export MAX_TRANSFERS=8
python3 - "$T/data" "$N" <<'PY'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
owners = [(0, 0), (1000, 1000), (65534, 65534), (1234, 5678)]
modes = [0o600, 0o640, 0o644, 0o444, 0o755]
for i in range(n):
    d = os.path.join(top, "d%02d" % (i % 30))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "f%05d" % i)
    with open(p, "wb") as f:
        f.write(os.urandom(20000 + (i * 7919) % 60000))
    os.chown(p, *owners[i % 4])
    os.chmod(p, modes[i % 5])
    os.utime(p, ns=(1500000000 * 10**9, 1500000000 * 10**9 + i * 1000003))
PY
snapshot "$T/data" "$T/snap"
mkdir -p "$T/small"
mount -t tmpfs -o size=4m tmpfs "$T/small" || e2e_abort "cannot mount a tmpfs"
E2E_CLEANUP_HOOKS+=("umount -l '$T/small'")
for i in 1 2 3; do head -c 900000 /dev/urandom >"$T/small/s$i"; done
find "$T/small" -type f -exec touch -m -d @1500000000 {} +
snapshot "$T/small" "$T/snap.small"
e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data" keep_cached=no)" \
	"$(e2e_policy s3 "$T/small" keep_cached=no | sed 's/^\[policy "p"\]/[policy "small"]/')"
e2e_start
# One run after the other: a second policy's run started while the first is
# busy has been seen to leave its files queued (not this test's subject).
ctl run p >/dev/null || fail "run p refused"
wait_idle 500 || fail "run p did not finish"
ctl run small >/dev/null || fail "run small refused"
wait_idle 100 || { fail "runs did not finish"; tail -20 "$T/tierd.log"; status_get "d[\"runs\"]"; }
[ "$(find "$T/data" -type l | wc -l)" = "$N" ] && [ "$(find "$T/small" -type l | wc -l)" = 3 ] &&
	pass "$N + 3 files tiered" || e2e_abort "not all tiered: $(find "$T/data" "$T/small" -type l | wc -l)"

# Too little room: the small root's 2.7 MB would not fit beside a filler.
free_kb=$(df -k --output=avail "$T/small" | tail -1)
head -c $(((free_kb - 1024) * 1024)) /dev/zero >"$T/small/filler"
out=$(ctl recall --policy small 2>&1) && fail "recall into a full filesystem went ahead" ||
	{ [[ $out == *"not enough space"* && $out == *"$T/small"* && $out == *"free"* ]] &&
		pass "recall that would not fit refused: $(head -1 <<<"$out" | cut -c1-160)" || fail "refusal: $out"; }
[ "$(find "$T/small" -type l | wc -l)" = 3 ] && ! grep -q "bulk recall:" "$T/tierd.log" &&
	pass "nothing moved, nothing recorded" || fail "the refused recall moved files"
[ ! -e "$T/state/recall-bulk.json" ] || fail "a refused request was recorded"
rm -f "$T/small/filler"
out=$(ctl recall --policy small 2>&1) && [ "$(find "$T/small" -type f | wc -l)" = 3 ] &&
	pass "with room made, recall --policy small brings its 3 files back" || fail "recall small: $out"

# recall --all, killed halfway.
ctl recall --all >"$T/recall.out" 2>&1 &
ctlpid=$!
for _ in $(seq 600); do
	[ "$(find "$T/data" -type f | wc -l)" -ge $((N / 5)) ] && break
	sleep 0.1
done
kill -KILL "$TDPID"
wait "$TDPID" 2>/dev/null || true
TDPID=
wait $ctlpid && fail "tierctl said done though tierd was killed" || true
left=$(find "$T/data" -type l | wc -l)
[ "$left" -gt 0 ] && [ "$left" -lt "$N" ] && pass "tierd killed halfway: $((N - left)) recalled, $left left" ||
	fail "kill was not halfway ($left links left)"
[ -e "$T/state/recall-bulk.json" ] && pass "the request is recorded in state_dir" || fail "request not recorded"
umount -l "$T/run/remote" 2>/dev/null || true
e2e_start
for _ in $(seq 1800); do
	[ "$(find "$T/data" -type l | wc -l)" = 0 ] && [ ! -e "$T/state/recall-bulk.json" ] && break
	sleep 0.1
done
grep -q "resuming the bulk recall" "$T/tierd.log" && pass "tierd resumed the bulk recall at start" || fail "no resume logged"
[ "$(find "$T/data" "$T/small" -type l | wc -l)" = 0 ] && pass "no link left under any policy root" ||
	fail "$(find "$T/data" -type l | wc -l) links left"
[ ! -e "$T/state/recall-bulk.json" ] && pass "the finished request is forgotten" || fail "request file left"
tree_verify "every file is back with its bytes, owner, mode, mtime" "$T/data" "$T/snap"
tree_verify "the small root too" "$T/small" "$T/snap.small"
python3 "$E2E_LIB_DIR/tree.py" verify "$T/data" "$T/snap" "$T/state" | grep -q "tiered=0" &&
	pass "all of them regular files" || fail "some files still links"
out=$(ctl recall --all 2>&1) && grep -q "0 recalled, 0 skipped, 0 failed" <<<"$out" &&
	pass "recall --all again: nothing left to do" || fail "second recall --all: $out"
tierd_stop
finish
