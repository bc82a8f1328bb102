#!/usr/bin/env bash
# Acceptance 8 — 10,000 files in one run with flat memory (dir target): all
# are tiered, a sample reads back byte-identical, and tierd's peak RSS
# (VmHWM) stays under 64 MiB, and under its post-start RSS + 40 MiB.
. "$(dirname "$0")/lib.sh"
e2e_init many
export MAX_TRANSFERS=16
N=${E2E_MANY_FILES:-10000}
BOUND_KB=$((64 * 1024))
# Under AddressSanitizer, freed memory sits in its quarantine, so RSS says
# nothing about tierd: that build checks correctness on a smaller tree, and
# the memory bound is checked by the normal build.
asan=0
if ldd "$TIERD" 2>/dev/null | grep libasan >/dev/null; then # not -q: with pipefail, ldd would die of SIGPIPE
	asan=1
	N=${E2E_MANY_FILES:-2000}
fi
mkdir -p "$T/tier"
python3 - "$T/data" "$N" <<'PY'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
for i in range(n):
    d = os.path.join(top, "d%03d" % (i % 100), "e%d" % (i % 7))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "file-%05d" % i), "wb") as f:
        f.write(os.urandom(64 + i % 2048))
    os.utime(os.path.join(d, "file-%05d" % i), (1500000000, 1500000000))
PY
# A sample to read back later (every 97th file).
find "$T/data" -type f -name 'file-*' | sort | awk 'NR % 97 == 1' >"$T/sample"
while read -r f; do sha256sum "$f"; done <"$T/sample" >"$T/sample.sha"
e2e_conf "$(dir_target_conf nas "$T/tier")" "$(e2e_policy nas "$T/data")"
e2e_start
base_kb=$(awk '/VmRSS/ {print $2}' "/proc/$TDPID/status")
t0=$SECONDS
ctl run p >/dev/null || fail "run refused"
wait_idle 280 && pass "run of $N files finished in $((SECONDS - t0)) s" || fail "run did not finish: $(status_get 'd["runs"]')"
hwm_kb=$(awk '/VmHWM/ {print $2}' "/proc/$TDPID/status")
echo "  RSS after start ${base_kb} KiB, peak (VmHWM) ${hwm_kb} KiB"
if [ $asan = 1 ]; then
	echo "  (sanitizer build: RSS reported, not bounded)"
else
	[ "$hwm_kb" -lt $BOUND_KB ] && pass "peak RSS $((hwm_kb / 1024)) MiB < 64 MiB" ||
		fail "peak RSS $((hwm_kb / 1024)) MiB >= 64 MiB"
	[ "$hwm_kb" -lt $((base_kb + 40 * 1024)) ] && pass "peak RSS within 40 MiB of the start" ||
		fail "memory grew by $(((hwm_kb - base_kb) / 1024)) MiB"
fi
n=$(find "$T/data" -type l | wc -l)
[ "$n" = "$N" ] && pass "all $N files are links" || fail "$n of $N files are links"
[ "$(find "$T/data" -type f | wc -l)" = 0 ] || fail "regular files left"
[ "$(status_get 'd["files"]["cached"] + d["files"]["tiered"]')" = "$N" ] && pass "status counts $N tiered" ||
	fail "status: $(status_get 'd["files"]')"
sha256sum --quiet -c "$T/sample.sha" && pass "sample of $(wc -l <"$T/sample") reads back through links" || fail "sample differs"
tierd_stop
finish
