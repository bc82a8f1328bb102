#!/usr/bin/env bash
# bench_small: small-file tiering rate, default configuration (issue 14 goal 1).
# N files of 64 KiB are tiered to a dir target by one policy run; the rate is
# counted from `tierctl run` to the moment the last file is a link (the watch
# on old inodes that follows runs on; the benchmark then waits for it to end
# and reports how long that took). Reference in the same run: `rclone copy
# --transfers 8` of the same tree to a local directory (files/s).
#   TD_BENCH_SIZE=full: 20,000 files; tiny (default): 300.
#   TD_BENCH_SMALL_N, TD_BENCH_SMALL_KIB override the count and the size.
# Prints files/s for both and `ratio tierd/rclone` and `ratio tierd/goal`
# (goal 1,000 files/s). Fails if a file is lost: every path must be a link
# reading the original bytes (a sample is compared in full).
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
unset TD_SWAP_GRACE_MS # the default configuration
. "$(dirname "$0")/../../lib/bench.sh"
. "$(dirname "$0")/../../lib/daemon.sh"
td_need_cmds rclone python3 sha256sum
size=${TD_BENCH_SIZE:-tiny}
if [ "$size" = full ]; then n=20000; else n=300; fi
n=${TD_BENCH_SMALL_N:-$n}
kib=${TD_BENCH_SMALL_KIB:-64}
w=$(mktemp -d "${TMPDIR:-/tmp}/tierd-bench-small.XXXXXX")
pid=
cleanup() {
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	fusermount3 -uz "$w/run/remote" 2>/dev/null || true
	rm -rf "$w"
}
trap cleanup EXIT

td_bench_tree "$w/src" "$n" "$kib"
cp -a "$w/src" "$w/data"
sync

# Reference: rclone copy, local to local, 8 transfers.
td_time t_rclone 3 rclone --config /dev/null copy --transfers 8 "$w/src" "$w/rclone-out"
[ "$(find "$w/rclone-out" -type f | wc -l)" = "$n" ] || { echo "FAIL rclone copied $(find "$w/rclone-out" -type f | wc -l) of $n"; exit 1; }
rm -rf "$w/rclone-out"

mkdir -p "$w/tier"
{
	td_conf_tierd "$w"
	td_conf_dir_target nas "$w/tier"
	printf '\n[policy "p"]\npaths = %s\ntarget = nas\nmin_age = 1d\nmin_size = 0\nschedule = manual\n' "$w/data"
} >"$w/tierd.conf"
"$TIERD" -f -c "$w/tierd.conf" 2>"$w/tierd.log" &
pid=$!
td_daemon_wait "$w/tierd.conf" "$pid" || { echo "FAIL tierd did not start"; cat "$w/tierd.log"; exit 1; }

t0=$(td_now)
"$TIERCTL" -c "$w/tierd.conf" run p >/dev/null
t1=$(td_bench_wait_links "$w/data" "$w/src" "$TIERCTL" "$w/tierd.conf") || { echo "FAIL not every file became a link"; exit 1; }
# Then the watch on the old inodes ends (grace), and the run with it.
td_bench_wait_settled "$TIERCTL" "$w/tierd.conf" "$n" || { echo "FAIL the run did not settle"; exit 1; }
t2=$(td_now)
rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")

# Nothing lost: every path is a link, a sample reads the original bytes.
bad=$(python3 - "$w/src" "$w/data" <<'PY'
import hashlib, os, sys
src, data = sys.argv[1], sys.argv[2]
bad = 0
for i, (dp, _, fs) in enumerate(os.walk(src)):
    for f in fs:
        s = os.path.join(dp, f)
        d = os.path.join(data, os.path.relpath(s, src))
        if not os.path.islink(d):
            bad += 1
        elif hash(f) % 20 == 0 and open(s, "rb").read() != open(d, "rb").read():
            bad += 1
print(bad)
PY
)
[ "$bad" = 0 ] || { echo "FAIL $bad files not links or not the original bytes"; exit 1; }

awk -v n="$n" -v kib="$kib" -v tr="$t_rclone" -v t0="$t0" -v t1="$t1" -v t2="$t2" -v rss="$rss" 'BEGIN {
	tt = t1 - t0; fr = n / tr; ft = n / tt
	printf "files: %d x %d KiB to a dir target, default configuration\n", n, kib
	printf "rclone copy --transfers 8 (local): %.3f s, %.0f files/s\n", tr, fr
	printf "tierd (run to last link):          %.3f s, %.0f files/s; watch on old inodes ended %.1f s later; peak RSS %d KiB\n", tt, ft, t2 - t1, rss
	printf "ratio tierd/rclone: %.2f\n", ft / fr
	printf "ratio tierd/goal(1000 files/s): %.2f\n", ft / 1000
}'
