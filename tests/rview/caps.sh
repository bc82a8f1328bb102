#!/usr/bin/env bash
# The view's memory and fd caps (issue 12 item 7), made tiny for the test
# (TD_TEST_RVIEW_CHUNK_MIB, TD_TEST_RVIEW_COPY_FDS: rview.h).
#  (f) first, then (m):
#  (m) 3 readers open 9 cold 8 MiB files at once (3 each) under a 24 MiB
#      chunk memory cap: every byte is right and remote_view's
#      chunk_mem_peak_bytes stays under the cap (uncapped, 9 hydration
#      windows of 8 chunks take ~72 MiB).
#  (f) 20 files hydrated one after the other with a cap of 6 copy fds: tierd's
#      open fds grow by at most the cap; read again (the copies reopened on
#      demand, read through the view), every byte is still right and the fds stay bounded.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup caps
rv_conf "cache_size = 2G"
export TD_TEST_RVIEW_CHUNK_MIB=24 TD_TEST_RVIEW_COPY_FDS=6
CAP=$((24 << 20))
start_tierd || { fail "tierd start"; finish; }
mkdir -p "$t/out"

# (f)
fds() { ls "/proc/$pid/fd" | wc -l; }
small=()
for i in $(seq 20); do mkfile "f$i" 100000; small+=("f$i"); done
tier "${small[@]}" && pass "(f) tiered" || fail "(f) migrate"
base=$(fds)
bad=0
for f in "${small[@]}"; do
	cat "$t/data/$f" >"$t/out/$f" && same "$t/out/$f" "$f" || bad=$((bad + 1))
	wait_hot "$f" 5 >/dev/null 2>&1 || true
done
grow=$(($(fds) - base))
check "(f) 20 hydrated files read right ($bad wrong)" [ $bad -eq 0 ]
check "(f) tierd's fds grew by $grow <= 6 + 2" [ $grow -le 8 ]
bad=0
for f in "${small[@]}"; do cmp -s "$(remote_path "$f")" "$t/orig/$f" || bad=$((bad + 1)); done
grow=$(($(fds) - base))
check "(f) read again through reopened copies ($bad wrong)" [ $bad -eq 0 ]
check "(f) fds still bounded: grew by $grow <= 8" [ $grow -le 8 ]
# (m)
big=()
for i in $(seq 9); do mkfile "m$i" $((8 << 20)); big+=("m$i"); done
tier "${big[@]}" && pass "(m) tiered" || fail "(m) migrate"
readers=() # (a bare `wait` would wait for tierd too)
for r in 0 1 2; do
	(
		for k in 1 2 3; do
			f=m$((r * 3 + k))
			cat "$t/data/$f" >"$t/out/$f" 2>"$t/out/$f.err" &
		done
		wait
	) &
	readers+=($!)
done
wait "${readers[@]}"
bad=0
for f in "${big[@]}"; do
	same "$t/out/$f" "$f" || { bad=$((bad + 1)); echo "  $f: $(cmp "$t/out/$f" "$t/orig/$f" 2>&1) $(cat "$t/out/$f.err")"; }
done
check "(m) 9 files read at once are all right ($bad wrong)" [ $bad -eq 0 ]
peak=$(st remote_view.chunk_mem_peak_bytes)
check "(m) peak chunk memory $peak <= cap $CAP" [ "$peak" -gt 0 -a "$peak" -le $CAP ]

stop_tierd
finish
