#!/usr/bin/env bash
# bench_million: a million-file run in bounded memory (issue 14 goal 2).
# N small files (4 KiB; one in 100 is 256 KiB) are tiered to a dir target in
# one policy run, default configuration (the policy takes files of any size).
# Measured in the same run: files/s (run to last link), tierd's peak RSS (goal
# <= 100 MiB), the catalog's bytes per entry (goal <= 1 KiB), `status` latency
# sampled during the run and after (goal < 50 ms), and `ls --state tiered |
# wc -l`, which must be exact. Reference: `find -type f | wc -l` of the tree.
#   TD_BENCH_SIZE=full: 1,000,000 files; tiny (default): 2,000.
#   TD_BENCH_MILLION_N overrides the count.
set -euo pipefail
: "${TIERD:?}" "${TIERCTL:?}"
unset TD_SWAP_GRACE_MS # the default configuration
. "$(dirname "$0")/../../lib/bench.sh"
. "$(dirname "$0")/../../lib/daemon.sh"
td_need_cmds python3
size=${TD_BENCH_SIZE:-tiny}
if [ "$size" = full ]; then n=1000000; else n=2000; fi
n=${TD_BENCH_MILLION_N:-$n}
w=$(mktemp -d "${TMPDIR:-/tmp}/tierd-bench-million.XXXXXX")
pid=
sampler=
cleanup() {
	[ -n "$sampler" ] && kill "$sampler" 2>/dev/null || true
	if [ -n "$pid" ]; then
		kill -TERM "$pid" 2>/dev/null || true
		wait "$pid" 2>/dev/null || true
	fi
	fusermount3 -uz "$w/run/remote" 2>/dev/null || true
	[ -n "${TD_BENCH_KEEP:-}" ] || rm -rf "$w"
}
trap cleanup EXIT

td_bench_tree "$w/src" "$n" 4
# One file in a hundred is larger.
find "$w/src" -name 'f*00' -type f -exec sh -c 'for f; do head -c 262144 /dev/urandom >"$f"; done' _ {} +
find "$w/src" -type f -exec touch -a -m -d 2000-01-01 {} +
cp -a "$w/src" "$w/data" # src stays as the truth for the paths; the copies keep the old times
td_time t_find 3 sh -c "find '$w/data' -type f | wc -l >'$w/find.count'"
[ "$(cat "$w/find.count")" = "$n" ] || { echo "FAIL the tree has $(cat "$w/find.count") files, not $n"; exit 1; }

mkdir -p "$w/tier"
{
	td_conf_tierd "$w"
	td_conf_dir_target nas "$w/tier"
	printf '\n[policy "p"]\npaths = %s\ntarget = nas\nmin_age = 1d\nmin_size = 0\nschedule = manual\n' "$w/data"
} >"$w/tierd.conf"
"$TIERD" -f -c "$w/tierd.conf" 2>"$w/tierd.log" &
pid=$!
td_daemon_wait "$w/tierd.conf" "$pid" || { echo "FAIL tierd did not start"; cat "$w/tierd.log"; exit 1; }

# Status latency, sampled every second while the run goes.
python3 - "$TIERCTL" "$w/tierd.conf" "$w/status.ms" <<'PY' &
import subprocess, sys, time
ctl, conf, out = sys.argv[1:4]
while True:
    t = time.monotonic()
    subprocess.run([ctl, "-c", conf, "--json", "status"], capture_output=True)
    with open(out, "a") as f:
        f.write("%.3f\n" % ((time.monotonic() - t) * 1000))
    time.sleep(1)
PY
sampler=$!

t0=$(td_now)
"$TIERCTL" -c "$w/tierd.conf" run p >/dev/null
t1=$(td_bench_wait_links "$w/data" "$w/src" "$TIERCTL" "$w/tierd.conf") || { echo "FAIL not every file became a link"; exit 1; }
td_bench_wait_settled "$TIERCTL" "$w/tierd.conf" "$n" || { echo "FAIL the run did not settle"; exit 1; }
kill "$sampler" 2>/dev/null || true
wait "$sampler" 2>/dev/null || true
sampler=
rss=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
best=999999
for _ in 1 2 3 4 5; do
	td_time ts 4 "$TIERCTL" -c "$w/tierd.conf" --json status >/dev/null
	best=$(awk -v a="$best" -v b="$ts" 'BEGIN { print (b * 1000 < a) ? b * 1000 : a }')
done
ls_count=$("$TIERCTL" -c "$w/tierd.conf" ls --state tiered | wc -l)
[ "$ls_count" = "$n" ] || { echo "FAIL ls --state tiered | wc -l: $ls_count, not $n"; exit 1; }
db=$(du -cb "$w/state/catalog.db"* | tail -1 | cut -f1)

awk -v n="$n" -v tf="$t_find" -v t0="$t0" -v t1="$t1" -v rss="$rss" -v db="$db" -v best="$best" \
	-v worst="$(sort -n "$w/status.ms" | tail -1)" 'BEGIN {
	tt = t1 - t0
	printf "files: %d (4 KiB, 1 in 100 of 256 KiB) to a dir target in one run, default configuration\n", n
	printf "find -type f | wc -l: %.3f s\n", tf
	printf "tierd: %.1f s, %.0f files/s (run to last link)\n", tt, n / tt
	printf "peak RSS: %.1f MiB; catalog: %d bytes, %.0f bytes per entry\n", rss / 1024, db, db / n
	printf "status: %.1f ms after the run (best of 5), %.1f ms at worst during it\n", best, worst
	printf "ls --state tiered | wc -l: %d (exact)\n", n
	printf "ratio peak_rss/goal(100 MiB): %.2f\n", rss / 1024 / 100
	printf "ratio catalog_bytes_per_entry/goal(1024): %.2f\n", db / n / 1024
	printf "ratio status_ms/goal(50 ms): %.2f (worst during the run %.2f)\n", best / 50, worst / 50
	printf "ratio tierd_time/find_time: %.1f\n", tt / tf
}'
