#!/usr/bin/env bash
# Resolver acceptance: failure behaviour.
#  (a) object corrupted on the dir target: reading through the link fails
#      (EIO or a failed read) and status recent_errors names the id; the bad
#      copy is never bound (link still on the view, no copy in the cache).
#  (b) object deleted on the target: the read fails with EIO; error logged.
#  (c) tierd stopped cleanly: a cold open fails within 2 s; hot files read
#      natively; after a restart cold reads work again.
#  (d) tierd SIGKILLed with a cold read in flight: the reader gets an error
#      (timeout 20: no hang); after a restart the mount works (stale mount
#      cleaned up) and no *.part files are left.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup fail
rv_conf "cache_size = 1G"
start_tierd || { fail "tierd start"; finish; }
mkfile corrupt 5242885
mkfile gone 2097153
mkfile hot 1048583
mkfile cold 1048589
mkfile cold2 3145739
mkfile big 209715203 # 200 MiB: its hydration is still running when tierd is killed
tier corrupt gone hot cold cold2 big && pass "tiered" || { fail "migrate"; finish; }
obj() { local id; id=$(file_id "$1"); echo "$t/tier/${id:0:2}/$id"; }

# (a) flip one byte in the middle of the object.
cid=$(file_id corrupt)
[ -f "$(obj corrupt)" ] || fail "object not at $(obj corrupt)"
"$PY" - "$(obj corrupt)" <<'PY'
import sys
with open(sys.argv[1], "r+b") as f:
    f.seek(3000000); b = f.read(1); f.seek(3000000); f.write(bytes([b[0] ^ 0xff]))
PY

timeout 20 cat "$t/data/corrupt" >"$t/corrupt.out" 2>"$t/corrupt.err"
rc=$?

check "(a) reading the corrupt object through the link fails (rc=$rc: $(cat "$t/corrupt.err"))" [ $rc != 0 ]
check "(a) ... with EIO" grep -q "Input/output error" "$t/corrupt.err"
for _ in $(seq 50); do st recent_errors | grep -q "$cid" && break; sleep 0.1; done
check "(a) status recent_errors names the id" bash -c "'$TIERCTL' -c '$conf' --json status | grep -q '$cid'"
check "(a) the log names it too" grep -q "$cid" "$t/tierd.log"
sleep 0.5
check "(a) the bad copy is not bound (link still on the remote view)" is_cold corrupt
check "(a) no copy of it (nor a .part) in its cache directory" bash -c "! ls '$t/cache/copies/${cid:0:2}/$cid/' 2>/dev/null | grep -q '$cid'"
check "(a) hydration_failures > 0" [ "$(st remote_view.hydration_failures)" -gt 0 ]

# (b) object deleted on the target.
gid=$(file_id gone)
rm -f "$(obj gone)"

timeout 20 cat "$t/data/gone" >/dev/null 2>"$t/gone.err"
rc=$?
check "(b) reading a deleted object fails with EIO (rc=$rc: $(cat "$t/gone.err"))" grep -q "Input/output error" "$t/gone.err"
for _ in $(seq 50); do grep -q "$gid" "$t/tierd.log" && break; sleep 0.1; done
check "(b) the error is logged, naming the id" grep -q "$gid" "$t/tierd.log"
check "(b) no copy bound" is_cold gone

# (c) clean stop.
cat "$t/data/hot" >/dev/null
check "(c) a file is hot before the stop" wait_hot hot
stop_tierd
s=$(date +%s%N)
timeout 20 cat "$t/data/cold" >/dev/null 2>"$t/cold.err"
rc=$?
ms=$((($(date +%s%N) - s) / 1000000))
check "(c) with tierd stopped a cold open fails (rc=$rc: $(cat "$t/cold.err"))" [ $rc != 0 -a $rc != 124 ]
check "(c) ... fast (${ms} ms <= 2000)" [ $ms -le 2000 ]
check "(c) hot files still read natively" cmp -s "$t/data/hot" "$t/orig/hot"
start_tierd || fail "restart"
check "(c) after a restart cold reads work again" cmp -s "$t/data/cold" "$t/orig/cold"

# (d) SIGKILL with a cold read in flight.
$RVIO slow "$t/data/big" "$t/slow.err" >/dev/null 2>&1 &
rpid=$!
bg_pids=$rpid
for _ in $(seq 100); do [ "$(parts)" -gt 0 ] && break; sleep 0.02; done
np=$(parts)
sleep 0.3
kill -KILL "$pid"
wait "$pid" 2>/dev/null
pid=
s=$(date +%s)
for _ in $(seq 200); do kill -0 $rpid 2>/dev/null || break; sleep 0.1; done
wait $rpid
rc=$?
bg_pids=
check "(d) the in-flight reader got an error ($rc: $(cat "$t/slow.err" 2>/dev/null)) within $(($(date +%s) - s)) s" [ $rc = 3 ]
echo "  (a .part was there at kill time: $np)"
start_tierd || fail "restart after SIGKILL"
check "(d) the remote view is mounted again" mountpoint -q "$t/run/remote"
check "(d) no *.part left in cache_dir/copies" [ "$(parts)" = 0 ]
check "(d) cold reads work after the restart" cmp -s "$t/data/cold2" "$t/orig/cold2"
check "(d) the big file reads right after the restart" cmp "$t/data/big" "$t/orig/big"
echo "  big is bound to $(bound big); copy: $(ls -l "$(cache_path big)" 2>&1)"
finish
