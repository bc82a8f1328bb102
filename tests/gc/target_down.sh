#!/usr/bin/env bash
# gc with the target down (radosgw reached through a forwarder, tests/verify/
# proxy.py, which is stopped): the unlinked file past retention is taken out
# of the catalog into gc's journal, its deletion fails, gc exits 1 naming the
# target, and every object is still there. With the target back, the next gc
# finishes the journalled deletion first: object and manifest gone, journal
# empty.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init gcdown s3
PROXY_PY=$(cd "$(dirname "$0")/../verify" && pwd)/proxy.py
hp=${TD_S3_ENDPOINT#*://}
host=${hp%%:*}
dport=${hp##*:}
[ "$dport" != "$hp" ] || dport=80
python3 "$PROXY_PY" 0 "$host" "$dport" >"$T/proxy.log" 2>&1 &
PROXY=$!
E2E_CLEANUP_HOOKS+=('kill $PROXY 2>/dev/null')
until [ -s "$T/proxy.log" ]; do kill -0 $PROXY || e2e_abort "proxy did not start"; sleep 0.05; done
PORT=$(head -1 "$T/proxy.log")

mkdir -p "$T/data"
head -c 9000 /dev/urandom >"$T/data/gone"
REAL=$TD_S3_ENDPOINT
TD_S3_ENDPOINT=http://127.0.0.1:$PORT
e2e_conf "retention = 1s" "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data" keep_cached=no)"
TD_S3_ENDPOINT=$REAL
e2e_start
ctl migrate "$T/data/gone" >/dev/null && pass "tiered" || e2e_abort "migrate"
id=$(ctl --json info "$T/data/gone" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["id"])')
rm "$T/data/gone"
t0=$(date +%s)
until [ "$(date +%s)" -gt $((t0 + 2)) ]; do sleep 0.1; done # retention (1 s) has passed
[ "$(s3_keys | grep -c "$id")" = 2 ] && pass "object and manifest on the target" || fail "keys: $(s3_keys)"

kill $PROXY
wait $PROXY 2>/dev/null || true
if ctl gc >"$T/gc1.out" 2>&1; then fail "gc with the target down exited 0"; else pass "gc with the target down: exit non-zero"; fi
grep -q "target s3: deleting .*$id" "$T/gc1.out" && pass "the message names the target and the object" || fail "gc1: $(cat "$T/gc1.out")"
[ "$(s3_keys | grep -c "$id")" = 2 ] && pass "nothing was deleted" || fail "keys after the failed gc: $(s3_keys)"
[ "$(sqlite3 "$T/state/catalog.db" "SELECT count(*) FROM gc_pending WHERE id = '$id'")" = 1 ] &&
	pass "the deletion waits in gc's journal" || fail "journal: $(sqlite3 "$T/state/catalog.db" 'SELECT * FROM gc_pending')"

python3 "$PROXY_PY" "$PORT" "$host" "$dport" >>"$T/proxy.log" 2>&1 &
PROXY=$!
deadline=$((SECONDS + 10))
until curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/"; do [ $SECONDS -lt $deadline ] || break; sleep 0.05; done
ctl --json gc >"$T/gc2.json" 2>&1 && pass "gc with the target back: exit 0" || fail "gc2: $(cat "$T/gc2.json")"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["report"]; sys.exit(0 if r["journal_finished"] == 1 else 1)' "$T/gc2.json" &&
	pass "the next gc finished the journalled deletion" || fail "gc2 report: $(cat "$T/gc2.json")"
[ "$(s3_keys | grep -c "$id")" = 0 ] && pass "object and manifest deleted" || fail "keys: $(s3_keys)"
[ "$(sqlite3 "$T/state/catalog.db" "SELECT count(*) FROM gc_pending")" = 0 ] && pass "the journal is empty" || fail "journal not empty"
finish
