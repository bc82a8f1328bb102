#!/usr/bin/env bash
# Resolver acceptance: no_hydrate and sweep streaming. Readers named in
# no_hydrate (cat, and a renamed copy of cat, "myscanner") get the right bytes
# and leave the cache empty (no copies, hydrations == 0, streamed_opens > 0).
# A sweep (one process opening 40 cold files quickly) leaves at most 17 of
# them cached (the first 16 opens are not yet a sweep).
# stream_direct_io (default yes): a streamed open bypasses the page cache (a
# second read of a file reaches tierd again), MAP_PRIVATE maps work and
# MAP_SHARED ones fail with ENODEV; after a reload with "no", the page cache
# serves the second read and MAP_SHARED works.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup stream
rv_conf "no_hydrate = cat myscanner" "cache_size = 1G"
start_tierd || { fail "tierd start"; finish; }
cp /bin/cat "$t/myscanner"
names=()
for i in $(seq 6); do mkfile "c$i" $((i * 700001)); names+=("c$i"); done
for i in $(seq 6); do mkfile "s$i" $((i * 500007)); names+=("s$i"); done
for i in $(seq 40); do mkfile "w$i" $((i * 50021 + 3)); names+=("w$i"); done
tier "${names[@]}" && pass "tiered ${#names[@]} files" || { fail "migrate"; finish; }
ok=0
for i in $(seq 6); do cat "$t/data/c$i" | cmp -s - "$t/orig/c$i" || ok=1; done
check "cat (no_hydrate) reads 6 cold files right" [ $ok = 0 ]
ok=0
for i in $(seq 6); do "$t/myscanner" "$t/data/s$i" | cmp -s - "$t/orig/s$i" || ok=1; done
check "myscanner (no_hydrate) reads 6 cold files right" [ $ok = 0 ]
sleep 0.5
check "no copies in the cache ($(cache_files) files)" [ "$(cache_files)" = 0 ]
check "no .part files" [ "$(parts)" = 0 ]
check "hydrations == 0" [ "$(st remote_view.hydrations)" = 0 ]
so=$(st remote_view.streamed_opens)
check "streamed_opens >= 12 ($so)" [ "$so" -ge 12 ]
ok=0
for i in $(seq 6); do is_cold "c$i" && is_cold "s$i" || ok=1; done
check "their dynamic links still point at the remote view" [ $ok = 0 ]

# Direct I/O: the page cache kept nothing of c6, so reading it again asks tierd.
r0=$(st remote_view.reads)
"$t/myscanner" "$t/data/c6" | cmp -s - "$t/orig/c6"
check "a second streamed read of c6 is right" [ $? = 0 ]
r1=$(st remote_view.reads)
check "... and reaches tierd: no page cache (reads $r0 -> $r1)" [ "$r1" -gt "$r0" ]
check "MAP_PRIVATE map of a streamed file reads right" $RVIO --comm myscanner mmap-private "$t/data/c5" "$t/orig/c5"
$RVIO --comm myscanner mmap "$t/data/c5" "$t/orig/c5" >/dev/null
check "MAP_SHARED map of a direct-I/O stream fails with ENODEV" [ $? = 4 ]
# reload: waits for the daemon's "reloaded" log line.
reload() {
	local n0
	n0=$(grep -c "reloaded " "$t/tierd.log")
	ctl reload >/dev/null || return 1
	for _ in $(seq 100); do
		[ "$(grep -c "reloaded " "$t/tierd.log")" -gt "$n0" ] && return 0
		sleep 0.1
	done
	return 1
}
rv_conf "no_hydrate = cat myscanner" "cache_size = 1G" "stream_direct_io = no"
check "reload with stream_direct_io = no" reload
check "stream_direct_io = no, after reload: MAP_SHARED map of a streamed file reads right" \
	$RVIO --comm myscanner mmap "$t/data/c4" "$t/orig/c4"
"$t/myscanner" "$t/data/c3" >/dev/null
r0=$(st remote_view.reads)
"$t/myscanner" "$t/data/c3" | cmp -s - "$t/orig/c3"
check "a second streamed read of c3 is right" [ $? = 0 ]
r1=$(st remote_view.reads)
check "... and the page cache served it (reads $r0 -> $r1)" [ "$r1" = "$r0" ]
check "still no copies in the cache ($(cache_files) files)" [ "$(cache_files)" = 0 ]
rv_conf "no_hydrate = cat myscanner" "cache_size = 1G"
check "reload back to the default" reload

# The sweep: one python process opens and reads 40 cold files in a row.
for i in $(seq 40); do echo "$t/data/w$i $t/orig/w$i"; done >"$t/sweep.list"
check "a sweeping process reads 40 cold files right" $RVIO sweep "$t/sweep.list"
for _ in $(seq 40); do [ "$(parts)" = 0 ] && break; sleep 0.1; done
n=$(cache_files)
check "the sweep left at most 17 of 40 files in the cache ($n)" [ "$n" -le 17 ]
so2=$(st remote_view.streamed_opens)
check "the sweep was streamed: streamed_opens grew by >= 23 ($so -> $so2)" [ $((so2 - so)) -ge 23 ]
check "no hydration failures" [ "$(st remote_view.hydration_failures)" = 0 ]
finish
