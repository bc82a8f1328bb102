#!/usr/bin/env bash
# tierctl gc on radosgw with the real remote view. Six tiered files:
#   moved   its link is moved to another directory inside the root
#   copied  its link is copied with cp -P to another directory, the original removed
#   hidden  its link is moved into a directory the policy excludes
#   outside its link is moved to a tree outside the policy, listed in sighting_roots
#   gone    its link is deleted
#   pinned  pinned (a cache copy kept), then its link is deleted
# With retention = 1h a gc deletes nothing. With retention = 2s (after reload)
# and once 2 s have passed since the files were tiered: --dry-run lists only
# "gone" as going and deletes nothing; gc deletes exactly "gone"'s object and
# manifest and its row; every other file still reads its bytes; "pinned" is
# kept and said why. status shows the last gc, and still does after a restart.
# A locked catalog: gc fails with a clear message, non-zero exit, nothing deleted.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init gcret s3

mkdir -p "$T/data/a" "$T/data/b" "$T/data/skip" "$T/outside"
names=(moved copied hidden outside gone pinned)
for n in "${names[@]}"; do head -c $((100000 + RANDOM)) /dev/urandom >"$T/data/a/$n"; done
for n in "${names[@]}"; do sha256sum <"$T/data/a/$n" | cut -d' ' -f1 >"$T/$n.sha"; done

write_conf() { # RETENTION
	e2e_conf "retention = $1
sighting_roots = $T/outside" "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data" keep_cached=no 'exclude=**/skip/**')"
}
write_conf 1h
# Uploads count as stale at once (a day is the default).
e2e_start TD_GC_UPLOAD_AGE_S=0
ctl migrate "$T"/data/a/* >"$T/migrate.out" 2>&1 && pass "six files tiered" ||
	e2e_abort "migrate: $(cat "$T/migrate.out")"
for n in "${names[@]}"; do
	id=$(ctl --json info "$T/data/a/$n" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["id"])')
	echo "$id" >"$T/$n.id"
done
ctl pin "$T/data/a/pinned" >/dev/null 2>&1 && pass "pinned hydrated and pinned" || fail "pin failed"

mv "$T/data/a/moved" "$T/data/b/moved-renamed"
cp -P "$T/data/a/copied" "$T/data/b/copied" && rm "$T/data/a/copied"
mv "$T/data/a/hidden" "$T/data/skip/hidden"
mv "$T/data/a/outside" "$T/outside/outside"
rm "$T/data/a/gone" "$T/data/a/pinned"
# A policy run records the links it passes, at their new paths.
ctl run p >/dev/null && wait_idle 60 && pass "policy run over the links finished" || fail "run p"
seen=$(sqlite3 "$T/state/catalog.db" "SELECT CAST(link_seen_path AS TEXT) FROM files WHERE id = '$(cat "$T/moved.id")'")
[ "$seen" = "$T/data/b/moved-renamed" ] && pass "the policy run saw the moved link at its new path" || fail "link_seen_path of moved: '$seen'"
grep -q "and 2 links to tiered files" "$T/tierd.log" && pass "the run's log line counts the 2 links it walks past (not the excluded one)" ||
	fail "run log: $(grep 'policy p: scanned' "$T/tierd.log")"
keys_before=$(s3_keys | sort)
[ "$(wc -l <<<"$keys_before")" = 12 ] && pass "12 keys (6 objects, 6 manifests)" || fail "keys: $keys_before"

# Retention 1 h: nothing is old enough.
ctl gc >"$T/gc1.out" 2>&1 && pass "gc with retention 1h: exit 0" || fail "gc 1h: $(cat "$T/gc1.out")"
grep -q "0 objects deleted" "$T/gc1.out" && pass "gc with retention 1h deleted nothing" || fail "gc 1h: $(cat "$T/gc1.out")"
[ "$(s3_keys | sort)" = "$keys_before" ] && pass "every key still there" || fail "keys changed by gc 1h"

# Retention 2 s, once the files' tiering is more than 2 s old (the clock, not a sleep).
write_conf 2s
ctl reload >/dev/null
tiered=$(ctl --json info "$T/data/b/moved-renamed" | python3 -c '
import json,sys,datetime
t=json.load(sys.stdin)["files"][0]["tiered_at"]
print(int(datetime.datetime.fromisoformat(t.replace("Z","+00:00")).timestamp()))')
deadline=$((SECONDS + 30))
until [ "$(date +%s)" -gt $((tiered + 3)) ] && grep -q "retention *= 2s" "$T/tierd.conf" &&
	ctl --json gc --dry-run >"$T/dry.json" 2>/dev/null &&
	python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d["report"]["would_delete"] else 1)' "$T/dry.json"; do
	[ $SECONDS -lt $deadline ] || break
	sleep 0.2
done
python3 - "$T/dry.json" "$(cat "$T/gone.id")" "$T/data/a/gone" <<'PY' && pass "gc --dry-run: only 'gone' would go, with the reason" || fail "dry run: $(cat "$T/dry.json")"
import json, sys
d = json.load(open(sys.argv[1]))
would = [f for f in d["files"] if f["outcome"] == "would_delete"]
assert [f["id"] for f in would] == [sys.argv[2]], would
assert would[0]["path"] == sys.argv[3] and "no link to it seen since" in would[0]["reason"], would
assert d["report"]["deleted"] == 0 and d["report"]["dry_run"] is True, d["report"]
kept = {f["path"].rsplit("/", 1)[1]: f["reason"] for f in d["files"] if f["outcome"] == "kept"}
assert list(kept) == ["pinned"] and "pinned" in kept["pinned"], kept
PY
[ "$(s3_keys | sort)" = "$keys_before" ] && pass "--dry-run deleted nothing" || fail "keys changed by --dry-run"

ctl gc >"$T/gc2.out" 2>&1 && pass "gc: exit 0" || fail "gc: $(cat "$T/gc2.out")"
grep -q "^deleted $T/data/a/gone: " "$T/gc2.out" && pass "gc named the deleted file" || fail "gc output: $(cat "$T/gc2.out")"
gone=$(cat "$T/gone.id")
keys_after=$(s3_keys | sort)
if [ "$(wc -l <<<"$keys_after")" = 10 ] && ! grep -q "$gone" <<<"$keys_after"; then
	pass "gone's object and manifest deleted, the 10 other keys kept"
else
	fail "keys after gc: $keys_after"
fi
[ -z "$(ls -A "$T/state/links/${gone:0:2}/" 2>/dev/null | grep "$gone")" ] && pass "gone's dynamic link removed" || fail "dynamic link of gone left"
ctl --json ls | grep -q "$gone" && fail "gone's row still in the catalog" || pass "gone's row deleted"
check() { # NAME LINK
	[ "$(sha256sum <"$2" | cut -d' ' -f1)" = "$(cat "$T/$1.sha")" ] && pass "$1 kept: reads its bytes at $2" ||
		fail "$1 does not read back at $2"
}
check moved "$T/data/b/moved-renamed"
check copied "$T/data/b/copied"
check hidden "$T/data/skip/hidden"
check outside "$T/outside/outside"
status_get 'd["last_gc"]["deleted"], d["last_gc"]["links_seen"]' >"$T/st" &&
	[ "$(cat "$T/st")" = "1 4" ] && pass "status: last gc deleted 1, saw 4 links" || fail "status last_gc: $(cat "$T/st")"

tierd_stop
tierd_start TD_GC_UPLOAD_AGE_S=0 && pass "tierd restarted" || e2e_abort "tierd did not restart"
deadline=$((SECONDS + 20))
until status_get 'd["last_gc"]["deleted"]' >"$T/st" 2>/dev/null && [ "$(cat "$T/st")" = 1 ]; do
	[ $SECONDS -lt $deadline ] || break
	sleep 0.1
done
[ "$(cat "$T/st")" = 1 ] && pass "status shows the last gc after a restart" || fail "after restart: $(status_get 'd.get("last_gc")')"
ctl status | grep -q "^gc: *last .*1 objects deleted" && pass "tierctl status prints the last gc" || fail "status text: $(ctl status)"

# A multipart upload left open under the prefix: --dry-run counts it, gc aborts it.
s3api create-multipart-upload --bucket "$TD_S3_BUCKET" --key "${E2E_PREFIX}zz/stray" --output text >/dev/null
t0=$(date +%s)
until [ "$(date +%s)" -gt "$t0" ]; do sleep 0.05; done # started before the gc's second
[ -n "$(s3_uploads)" ] && pass "an upload is open" || fail "no upload created"
ctl --json gc --dry-run >"$T/up-dry.json" 2>&1 || true
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["report"]; sys.exit(0 if r["uploads_found"] >= 1 and r["uploads_aborted"] == 0 else 1)' "$T/up-dry.json" &&
	[ -n "$(s3_uploads)" ] && pass "gc --dry-run counts the open upload and leaves it" || fail "dry run uploads: $(cat "$T/up-dry.json")"
ctl --json gc >"$T/up.json" 2>&1 || true
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["report"]; sys.exit(0 if r["uploads_aborted"] >= 1 else 1)' "$T/up.json" &&
	[ -z "$(s3_uploads)" ] && pass "gc aborted the stale upload" || fail "uploads after gc: $(s3_uploads) $(cat "$T/up.json")"

# The catalog locked by another process: gc fails clearly and deletes nothing.
rm "$T/data/b/copied"
python3 - "$T/state/catalog.db" >"$T/lock.out" 2>&1 <<'PY' &
import sqlite3, sys, time
c = sqlite3.connect(sys.argv[1], isolation_level=None)
c.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
time.sleep(120)
PY
LOCKPID=$!
E2E_CLEANUP_HOOKS+=('kill $LOCKPID 2>/dev/null')
until grep -q locked "$T/lock.out"; do kill -0 $LOCKPID || break; sleep 0.05; done
keys_before=$(s3_keys | sort)
if ctl gc >"$T/gc3.out" 2>&1; then
	fail "gc with the catalog locked exited 0"
else
	pass "gc with the catalog locked: exit $?"
fi
cat "$T/gc3.out"
grep -qi "locked" "$T/gc3.out" && grep -q "nothing deleted" "$T/gc3.out" && pass "the message says the catalog is locked and nothing was deleted" ||
	fail "gc locked output: $(cat "$T/gc3.out")"
kill $LOCKPID
wait $LOCKPID 2>/dev/null || true
[ "$(s3_keys | sort)" = "$keys_before" ] && pass "nothing deleted while locked" || fail "keys changed while locked"
finish
