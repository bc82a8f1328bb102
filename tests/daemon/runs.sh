#!/usr/bin/env bash
# tierd starts policy runs by itself: one policy on its schedule (every 2 s),
# another because its filesystem is fuller than its high watermark (set just
# below the real figure). Each run really tiers its files, and nothing else
# starts either of them.
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
. "$(dirname "$0")/../lib/conf.sh"
. "$(dirname "$0")/../lib/report.sh"
t=$(mktemp -d /tmp/tierd-runs.XXXXXX)
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null && wait "$pid" 2>/dev/null || true
	fi
	rm -rf "$t"
}
trap cleanup EXIT

mkdir -p "$t/sched" "$t/full" "$t/tier"
for d in sched full; do
	for i in 1 2 3; do
		head -c $((4096 * i)) /dev/urandom >"$t/$d/f$i"
		touch -d '2001-01-01' "$t/$d/f$i"
	done
done
# Half the used share of this filesystem, as tierd computes it: above it now.
high=$(python3 -c "import os,sys; v=os.statvfs(sys.argv[1]); print('%.4f' % (50.0 * (v.f_blocks - v.f_bfree) / v.f_blocks))" "$t")
{
	td_conf_tierd "$t" "log_level = debug"
	td_conf_dir_target nas "$t/tier"
	# policy NAME SCHEDULE [LINE...]: one of the two policies, each on its own root.
	policy() {
		printf '\n[policy "%s"]\npaths    = %s\ntarget   = nas\nmin_age  = 1d\nmin_size = 0\nschedule = %s\n' \
			"$1" "$t/$1" "$2"
		shift 2
		[ $# = 0 ] || printf '%s\n' "$@"
	}
	policy sched "every 2s"
	policy full manual "high_watermark = $high%" "low_watermark  = 0%"
} >"$t/tierd.conf"

"$TIERD" -f -c "$t/tierd.conf" 2>"$t/tierd.log" &
pid=$!

all_links() {
	for f in "$t/$1"/f1 "$t/$1"/f2 "$t/$1"/f3; do [ -L "$f" ] || return 1; done
}
for _ in $(seq 300); do
	all_links sched && all_links full && break
	kill -0 "$pid" 2>/dev/null || break
	sleep 0.1
done
all_links sched && pass "the schedule started a run that tiered every file" ||
	fail "schedule: $(ls -l "$t/sched")"
all_links full && pass "the watermark ($high%) started a run that tiered every file" ||
	fail "watermark: $(ls -l "$t/full")"
grep -q "policy full: $t/full is [0-9.]*% full (high watermark" "$t/tierd.log" &&
	pass "the watermark start is logged" || fail "no watermark line in the log"
grep -q "policy sched: run started" "$t/tierd.log" && pass "the scheduled start is logged" ||
	fail "no scheduled start in the log"
[ "$(grep -c "policy full: run started" "$t/tierd.log")" -ge 1 ] || fail "full never started"
# A link appears at the swap; the row says tiered once the migration is done.
done_rows() {
	"$TIERCTL" -c "$t/tierd.conf" --json status | python3 -c "
import json, sys
f = json.load(sys.stdin)['files']
sys.exit(0 if f['tiered'] + f['cached'] == 6 else 1)"
}
for _ in $(seq 100); do done_rows && break; sleep 0.1; done
done_rows && pass "the catalog holds the six files, tiered" ||
	fail "status: $("$TIERCTL" -c "$t/tierd.conf" --json status)"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
pid=
[ $rc = 0 ] && pass "SIGTERM: exit 0" || fail "SIGTERM exit $rc"
if [ $fails != 0 ]; then tail -40 "$t/tierd.log"; fi
finish
