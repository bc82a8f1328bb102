#!/usr/bin/env bash
# A truncating open of a cold file makes an empty copy and marks its row dirty
# on a worker thread; the writer's close starts the recall at once. When the
# marking lands after the recall began or ended (found by tests/soak: the
# pool was busy), the row must not become dirty again: a dirty row without a
# copy fails every later recall ("its cache copy is missing") and never
# clears. The marking is held exactly with TD_TEST_RVIEW_PAUSE (step "dirty")
# until the recall is done.
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup dirtylate
rv_conf "cache_size = 64M"
mkdir -p "$t/pause"
export TD_TEST_RVIEW_PAUSE=$t/pause
start_tierd || { fail "tierd start"; finish; }
mkfile x 100000
tier x && pass "tiered" || { fail "migrate"; finish; }
id=$(file_id x)
check "x is cold" is_cold x
touch "$t/pause/dirty-$id"
printf 'rewritten\n' >"$t/data/x" && printf 'rewritten\n' >"$t/orig/x"
for _ in $(seq 200); do [ -e "$t/pause/dirty-$id.paused" ] && break; sleep 0.05; done
check "the marking paused" [ -e "$t/pause/dirty-$id.paused" ]
recalled() { [ -f "$t/data/x" ] && [ ! -L "$t/data/x" ]; }
for _ in $(seq 200); do recalled && break; sleep 0.05; done
check "the writer's close recalled x to primary storage" recalled
touch "$t/pause/dirty-$id.go"
for _ in $(seq 200); do [ -e "$t/pause/dirty-$id.paused" ] || break; sleep 0.05; done
check "the marking went on" [ ! -e "$t/pause/dirty-$id.paused" ]
# The marking's job has run once .paused is gone and the row is read after it.
state() { ctl --json ls | "$PY" -c 'import json,sys
print(" ".join(f["state"] for f in json.load(sys.stdin)["files"] if f["id"] == sys.argv[1]))' "$id"; }
s=$(state)
check "its row stays local after the late marking (it is: $s)" [ "$s" = local ]
check "x holds the rewrite" same "$t/data/x" x
n=$(grep -c "recall of .*($id): its cache copy is missing" "$t/tierd.log")
check "no recall fails on a copy that is gone ($n)" [ "$n" = 0 ]
finish
