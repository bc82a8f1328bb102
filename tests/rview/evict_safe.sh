#!/usr/bin/env bash
# Eviction never throws a change away (DESIGN invariant 6, issue 12 items 1
# and 2). cache_size = 4M, the files owned by uid 1234.
#  (a) The owner overwrites 9 bytes of a hot copy in place and puts its
#      mtime back (utime): cache pressure must not evict it (its ctime
#      moved), and (after (b)) a restart's dirty scan sends it back to
#      primary storage with the change.
#  (b) A writer that opens the copy while eviction holds its lease (placed
#      exactly with TD_TEST_RVIEW_PAUSE at the step "evict": the lease is
#      taken and the copy checked, nothing rebound yet) keeps its write.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup evsafe
rv_conf "cache_size = 4M"
mkdir -p "$t/pause"
export TD_TEST_RVIEW_PAUSE=$t/pause
start_tierd || { fail "tierd start"; finish; }
M=1048576
for f in x w; do mkfile $f $M; done
for f in f1 f2 f3 f4 f5 f6; do mkfile $f $((3 * M / 2)); done
chown 1234:1234 "$t/data/x" "$t/data/w"
# w's original atime is the oldest: an eviction that goes by the copy's atime
# alone takes w first; one that also goes by when tierd made the copy takes it
# once the fillers hydrated before it are gone. Either way w is evicted in (b).
touch -a -d 2000-01-01 "$t/data/w"
tier x w f1 f2 f3 f4 f5 f6 && pass "tiered" || { fail "migrate"; finish; }
owner() { setpriv --reuid=1234 --regid=1234 --clear-groups "$@"; }
# expect NAME OFF TEXT: orig/NAME gets the same change.
expect() { printf '%s' "$3" | dd of="$t/orig/$1" bs=1 seek="$2" conv=notrunc status=none; }
pressure() { # read every filler (9 MiB through a 4 MiB cache); evictions moved past $1
	local f
	for f in f1 f2 f3 f4 f5 f6; do cat "$t/data/$f" >/dev/null; wait_hot $f 10; done
	for _ in $(seq 100); do [ "$(st remote_view.evictions)" -gt "$1" ] && return 0; sleep 0.1; done
	return 1
}

# (a) a forged mtime.
cat "$t/data/x" >/dev/null
check "(a) x is hydrated" wait_hot x
mt=$(stat -Lc %y "$t/data/x")
owner $RVIO overwrite "$t/data/x" 1000 "FORGED!!!" forge
expect x 1000 "FORGED!!!"
# (Not read before the pressure: a read would make x the most recently used.)
check "(a) its mtime is the old one ($mt)" [ "$(stat -Lc %y "$t/data/x")" = "$mt" ]
ev=$(st remote_view.evictions)
check "(a) cache pressure evicts copies" pressure "$ev"
# Kept means: still bound to its copy, or (as a written copy should) already
# recalled to primary storage, which eviction may start when it finds the copy
# changed. Evicted, it would be bound to the remote view.
kept_or_recalled() { is_hot x || [ ! -L "$t/data/x" ]; }
check "(a) x's copy was kept (or x went back to primary storage)" kept_or_recalled ||
	{ echo "  x -> $(bound x)"; ls -la "$(dirname "$(cache_path x)")"; }
check "(a) x keeps its change under cache pressure" same "$t/data/x" x

# (b) a writer in the eviction's window.
cat "$t/data/w" >/dev/null
check "(b) w is hydrated" wait_hot w
wid=$(file_id w)
touch "$t/pause/evict-$wid"
ev=$(st remote_view.evictions)
for f in f1 f2 f3 f4 f5 f6; do
	cat "$t/data/$f" >/dev/null
	[ -e "$t/pause/evict-$wid.paused" ] && break
done
for _ in $(seq 200); do [ -e "$t/pause/evict-$wid.paused" ] && break; sleep 0.1; done
check "(b) eviction reached w and paused" [ -e "$t/pause/evict-$wid.paused" ]
owner $RVIO overwrite "$t/data/w" 2000 "RACED!!!!" >"$t/w.out" 2>&1 &
wpid=$!
bg_pids=$wpid
sleep 0.5
touch "$t/pause/evict-$wid.go"
s=$(date +%s)
wait $wpid
rc=$?
bg_pids=
for _ in $(seq 100); do [ -e "$t/pause/evict-$wid.paused" ] || break; sleep 0.05; done
expect w 2000 "RACED!!!!"
check "(b) the writer succeeded (rc $rc, $(($(date +%s) - s)) s)" [ $rc = 0 ]
check "(b) w holds the write" same "$t/data/w" w
pressure "$(st remote_view.evictions)" || true
check "(b) ... and still after more cache pressure" same "$t/data/w" w
stop_tierd
TD_DIRTY_SCAN_S=1 start_tierd || fail "(a) restart"
for _ in $(seq 150); do { [ -L "$t/data/x" ] || [ -L "$t/data/w" ]; } || break; sleep 0.1; done
check "(a) after a restart the dirty scan sent x back to primary storage" [ ! -L "$t/data/x" ]
check "(a) ... with the change" same "$t/data/x" x
check "(b) w went back to primary storage with its write" bash -c "[ ! -L '$t/data/w' ] && cmp -s '$t/data/w' '$t/orig/w'"
stop_tierd
finish
