#!/usr/bin/env bash
# A hydration that cannot start answers its waiters (issue 12 item 3): with a
# directory at the cache's <id>.part path, a write open through the link and
# `tierctl pin` return an error, never hang (each bounded by timeout).
. "$(dirname "$0")/lib.sh"
need_fuse
rv_setup nostart
rv_conf "cache_size = 64M"
start_tierd || { fail "tierd start"; finish; }
mkfile f 100000
mkfile g 100000
tier f g && pass "tiered" || { fail "migrate"; finish; }
for n in f g; do mkdir -p "$(cache_path $n).part"; done
timeout 20 bash -c "echo >> '$t/data/f'" 2>"$t/echo.err"
rc=$?
check "echo >> file returns an error, not a hang (rc $rc: $(cat "$t/echo.err"))" [ $rc != 0 -a $rc != 124 ]
timeout 20 "$TIERCTL" -c "$conf" pin "$t/data/g" >"$t/pin.out" 2>&1
rc=$?
check "tierctl pin returns an error, not a hang (rc $rc: $(tr '\n' ' ' <"$t/pin.out"))" [ $rc != 0 -a $rc != 124 ]
timeout 20 "$TIERCTL" -c "$conf" status >/dev/null
check "tierd still answers" [ $? = 0 ]
rmdir "$(cache_path f).part" "$(cache_path g).part"
check "f reads right once the .part path is free" timeout 20 cmp -s "$t/data/f" "$t/orig/f"
finish
