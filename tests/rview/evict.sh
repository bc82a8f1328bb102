#!/usr/bin/env bash
# Resolver acceptance: eviction under cache_size = 8M with 5 x 3 MiB files
# read in turn. Asserted bound: after the cache settles it holds <= 8 MiB of
# copies (no slack). evictions > 0; evicted files are bound to the remote view
# again and read right; readers holding an evicted file open (one opened on
# the cache copy, one opened cold through the remote view) read the right
# bytes to the end.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup evict
rv_conf "cache_size = 8M"
start_tierd || { fail "tierd start"; finish; }
M3=3145728
for f in a b c d e h; do mkfile "$f" $M3; done
tier a b c d e h && pass "tiered" || { fail "migrate"; finish; }
settle() { # until no .part and the copies are within the limit (10 s)
	for _ in $(seq 100); do
		[ "$(parts)" = 0 ] && [ "$(cache_bytes)" -le 8388608 ] && return 0
		sleep 0.1
	done
	return 1
}
# Reader 1 holds 'a' open on its cache copy.
cat "$t/data/a" >/dev/null
check "a is hydrated" wait_hot a
$RVIO hold "$t/data/a" "$t/orig/a" "$t/ready-a" "$t/go-a" >"$t/hold-a.out" 2>&1 &
h1=$!
# Reader 2 holds 'h' open through the remote view (opened cold).
$RVIO hold "$t/data/h" "$t/orig/h" "$t/ready-h" "$t/go-h" >"$t/hold-h.out" 2>&1 &
h2=$!
bg_pids="$h1 $h2"
for _ in $(seq 200); do [ -e "$t/ready-a" ] && [ -e "$t/ready-h" ] && break; sleep 0.05; done
check "both holders read half" test -e "$t/ready-a" -a -e "$t/ready-h"
wait_hot h
# a and h are the least recently used copies: hydrated first (LRU goes by the
# copy's atime or, if later, its ctime: when tierd made it). Not by touching
# them: a copy whose times were set has changed, and is never evicted.
ok=0
for f in b c d e; do
	cat "$t/data/$f" | cmp -s - "$t/orig/$f" || ok=1
	wait_hot "$f" 10
	settle || true
done
check "5 x 3 MiB read in turn, right bytes" [ $ok = 0 ]
settle; check "the cache settles at <= 8 MiB of copies ($(cache_bytes) bytes)" settle
ev=$(st remote_view.evictions)
check "evictions > 0 ($ev)" [ "$ev" -gt 0 ]
check "a was evicted (no copy) while held open" [ ! -e "$(cache_path a)" ]
check "h was evicted while held open through the view" [ ! -e "$(cache_path h)" ]
touch "$t/go-a" "$t/go-h"
wait $h1; r1=$?
wait $h2; r2=$?
bg_pids=
check "holder of the evicted cache copy read the right bytes to the end" [ $r1 = 0 ]
check "holder of the evicted file via the remote view read the right bytes" [ $r2 = 0 ]
cat "$t/hold-a.out" "$t/hold-h.out"
evicted=()
for f in a b c d e h; do [ -e "$(cache_path "$f")" ] || evicted+=("$f"); done
ok=0
for f in "${evicted[@]}"; do is_cold "$f" || { echo "$f -> $(bound "$f")"; ok=1; }; done
check "evicted files (${evicted[*]}) are bound to the remote view" [ $ok = 0 ]
ok=0
for f in "${evicted[@]}"; do cmp -s "$t/data/$f" "$t/orig/$f" || ok=1; done
check "evicted files read right again" [ $ok = 0 ]
settle; check "and the cache settles at <= 8 MiB again ($(cache_bytes) bytes)" settle
check "no hydration failures" [ "$(st remote_view.hydration_failures)" = 0 ]
finish
