#!/usr/bin/env bash
# tierctl verify on radosgw with the real remote view, the target reached
# through a forwarder (proxy.py) so it can be taken away mid-verify.
#   - a clean tree: verify and verify --deep exit 0, no problem printed;
#   - an object overwritten behind tierd's back (aws s3 cp, same size): verify
#     exits 1 and names the file's path; --json says etag_mismatch;
#   - a deleted dynamic link: found (dynamic_link_missing, by path), restored
#     by --repair, and the file reads its bytes through its link again;
#   - a cache copy whose mode drifted: found, set back by --repair;
#   - the target down mid-verify (--deep, bandwidth-limited): a clear message
#     naming the target, exit 1, the checkpoint kept; with the target back
#     the next verify resumes from it and completes;
#   - status shows the last verify, and still after a restart.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init verify s3
HERE=$(cd "$(dirname "$0")" && pwd)
hp=${TD_S3_ENDPOINT#*://}
host=${hp%%:*}
dport=${hp##*:}
[ "$dport" != "$hp" ] || dport=80
python3 "$HERE/proxy.py" 0 "$host" "$dport" >"$T/proxy.log" 2>&1 &
PROXY=$!
E2E_CLEANUP_HOOKS+=('kill $PROXY 2>/dev/null')
until [ -s "$T/proxy.log" ]; do kill -0 $PROXY || e2e_abort "proxy did not start"; sleep 0.05; done
PORT=$(head -1 "$T/proxy.log")
REAL_ENDPOINT=$TD_S3_ENDPOINT

mkdir -p "$T/data/d"
for i in $(seq 8); do head -c $((700000 + i)) /dev/urandom >"$T/data/d/f$i"; done
head -c 4000 /dev/urandom >"$T/data/d/hot"
chown 1000:1000 "$T/data/d/hot"
chmod 640 "$T/data/d/hot"
for f in "$T"/data/d/*; do sha256sum <"$f" | cut -d' ' -f1 >"$f.sha.$$"; mv "$f.sha.$$" "$T/$(basename "$f").sha"; done

TD_S3_ENDPOINT=http://127.0.0.1:$PORT
e2e_conf "$(s3_target_conf s3)
bandwidth_limit = 1M" "$(e2e_policy s3 "$T/data" keep_cached=no)"
TD_S3_ENDPOINT=$REAL_ENDPOINT
# No dirty scan after the first: it would take the chmod below for a write
# and recall the file (right for tierd, not what this test is about).
e2e_start TD_DIRTY_SCAN_S=100000
ctl migrate "$T"/data/d/* >"$T/migrate.out" 2>&1 && pass "9 files tiered" || e2e_abort "migrate: $(cat "$T/migrate.out")"
ctl pin "$T/data/d/hot" >/dev/null 2>&1 && pass "hot pinned (a cache copy)" || fail "pin hot"
idof() { ctl --json info "$1" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["id"])'; }

ctl verify >"$T/v0.out" 2>&1 && pass "clean tree: verify exit 0" || fail "clean verify: $(cat "$T/v0.out")"
ctl verify --deep >"$T/v1.out" 2>&1 && pass "clean tree: verify --deep exit 0" || fail "clean verify --deep: $(cat "$T/v1.out")"
grep -q "9 rows checked (deep): 0 problems" "$T/v1.out" && pass "verify --deep checked 9 rows, 0 problems" || fail "deep summary: $(cat "$T/v1.out")"

# Overwritten behind tierd's back, same size, other bytes.
id3=$(idof "$T/data/d/f3")
head -c 700003 /dev/urandom >"$T/other"
aws --endpoint-url "$REAL_ENDPOINT" s3 cp --quiet "$T/other" "s3://$TD_S3_BUCKET/$E2E_PREFIX${id3:0:2}/$id3"
if ctl verify --deep >"$T/v2.out" 2>&1; then fail "verify --deep of an overwritten object exited 0"; else pass "verify --deep of an overwritten object: exit 1"; fi
grep -q "^$T/data/d/f3: etag_mismatch: " "$T/v2.out" && pass "the overwritten object is named by path" || fail "v2: $(cat "$T/v2.out")"
ctl --json verify "$T/data/d/f3" >"$T/v2.json" 2>/dev/null || true
python3 - "$T/v2.json" "$T/data/d/f3" <<'PY' && pass "--json: one document, etag_mismatch for that path, checked 1" || fail "v2 json: $(cat "$T/v2.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["report"]["checked"] == 1, d["report"]
assert [(p["class"], p["path"]) for p in d["problems"]] == [("etag_mismatch", sys.argv[2])], d["problems"]
PY
# Put the right bytes back (tierd's own copy is the catalog's: its sha256 must match the original's).
aws --endpoint-url "$REAL_ENDPOINT" s3 rm --quiet "s3://$TD_S3_BUCKET/$E2E_PREFIX${id3:0:2}/$id3"

# A deleted dynamic link.
id5=$(idof "$T/data/d/f5")
rm "$T/state/links/${id5:0:2}/$id5/f5"
if ctl verify "$T/data/d/f5" >"$T/v3.out" 2>&1; then fail "verify of a deleted dynamic link exited 0"; else pass "deleted dynamic link: verify exit 1"; fi
grep -q "^$T/data/d/f5: dynamic_link_missing: " "$T/v3.out" && pass "the missing dynamic link is named by path" || fail "v3: $(cat "$T/v3.out")"
ctl verify --repair "$T/data/d/f5" >"$T/v4.out" 2>&1 && pass "verify --repair: exit 0 (repaired)" || fail "repair: $(cat "$T/v4.out")"
grep -q "rebound to" "$T/v4.out" && pass "--repair says it rebound the link" || fail "v4: $(cat "$T/v4.out")"
[ "$(sha256sum <"$T/data/d/f5" | cut -d' ' -f1)" = "$(cat "$T/f5.sha")" ] && pass "f5 reads its bytes through its link again" || fail "f5 unreadable after repair"
ctl verify "$T/data/d/f5" >"$T/v4b.out" 2>&1 && pass "f5 verifies clean after the repair" || fail "f5 still has problems: $(cat "$T/v4b.out")"

# A cache copy whose mode drifted.
idh=$(idof "$T/data/d/hot")
hcopy=$(readlink "$(readlink "$T/data/d/hot")") # the dynamic link leads to the copy
chmod 666 "$hcopy"
if ctl verify "$T/data/d/hot" >"$T/v5.out" 2>&1; then fail "drifted mode: exit 0"; else pass "drifted mode: verify exit 1"; fi
grep -q "^$T/data/d/hot: permissions_drifted: " "$T/v5.out" && pass "drifted permissions named by path" || fail "v5: $(cat "$T/v5.out")"
ctl verify --repair "$T/data/d/hot" >/dev/null 2>&1 && [ "$(stat -c %a "$hcopy")" = 640 ] &&
	pass "--repair set the copy's mode back to 640" || fail "mode after repair: $(stat -c %a "$hcopy")"

# A cached file whose object is lost: --repair uploads it again from the
# cache copy, which hashes to the catalog's SHA-256.
aws --endpoint-url "$REAL_ENDPOINT" s3 rm --quiet "s3://$TD_S3_BUCKET/$E2E_PREFIX${idh:0:2}/$idh"
ctl verify --repair "$T/data/d/hot" >"$T/v5b.out" 2>&1 && pass "lost object of a cached file: --repair exit 0" || fail "re-upload: $(cat "$T/v5b.out")"
grep -q "^$T/data/d/hot: object_missing: .*uploaded again from the verified cache copy" "$T/v5b.out" &&
	pass "--repair uploaded it again from the verified cache copy" || fail "v5b: $(cat "$T/v5b.out")"
[ "$(s3get "$E2E_PREFIX${idh:0:2}/$idh" | sha256sum | cut -d' ' -f1)" = "$(cat "$T/hot.sha")" ] &&
	pass "the object is back with the original bytes" || fail "object of hot after repair"
ctl verify --deep "$T/data/d/hot" >/dev/null 2>&1 && pass "hot verifies clean (deep) after the repair" || fail "hot after repair"

# f3's object is gone now (removed above): verify reports object_missing; keep
# the tree otherwise clean for the outage part by re-tiering nothing: check only f3.
if ctl verify "$T/data/d/f3" >"$T/v6.out" 2>&1; then fail "missing object: exit 0"; else pass "missing object: exit 1"; fi
grep -q "^$T/data/d/f3: object_missing: " "$T/v6.out" && pass "the missing object is named by path" || fail "v6: $(cat "$T/v6.out")"

# The target down mid-verify: --deep reads ~5.6 MB at 1 MB/s; the forwarder
# goes once it has carried 1 MiB of this verify's reads.
n0=$(grep -c bytes "$T/proxy.log")
ctl verify --deep --restart >"$T/v7.out" 2>&1 &
VPID=$!
deadline=$((SECONDS + 60))
until [ "$(grep -c bytes "$T/proxy.log")" -ge $((n0 + 4)) ] || [ $SECONDS -ge $deadline ]; do sleep 0.05; done
kill $PROXY
wait $PROXY 2>/dev/null || true
if wait $VPID; then fail "verify with the target down exited 0"; else pass "verify with the target down: exit non-zero"; fi
grep -q "target s3: " "$T/v7.out" && grep -q "the next verify resumes there" "$T/v7.out" &&
	pass "the message names the target and says the next verify resumes" || fail "v7: $(cat "$T/v7.out")"
sqlite3 "$T/state/catalog.db" "SELECT value FROM lifecycle WHERE name = 'verify.checkpoint'" >"$T/cp"
[ -s "$T/cp" ] && pass "the checkpoint is kept" || fail "no checkpoint after the outage"
status_get '"error" in d["last_verify"]' | grep -q True && pass "status: the last verify says it stopped" || fail "status: $(status_get 'd.get("last_verify")')"

python3 "$HERE/proxy.py" "$PORT" "$host" "$dport" >>"$T/proxy.log" 2>&1 &
PROXY=$!
deadline=$((SECONDS + 10))
until curl -s -o /dev/null -m 2 "http://127.0.0.1:$PORT/"; do [ $SECONDS -lt $deadline ] || break; sleep 0.05; done
ctl --json verify >"$T/v8.json" 2>/dev/null || true
python3 - "$T/v8.json" "$(cat "$T/cp")" "$T/data/d/f3" <<'PY' && pass "the next verify resumed from the checkpoint and completed; only f3's missing object is left" || fail "v8: $(cat "$T/v8.json")"
import json, sys
d = json.load(open(sys.argv[1]))
r = d["report"]
assert r.get("resumed_from") == sys.argv[2].strip(), r
assert r["complete"] is True and "error" not in r, r
assert r["checked"] < 9, r
probs = [(p["class"], p.get("path")) for p in d["problems"] if p["severity"] == "problem"]
assert all(p == ("object_missing", sys.argv[3]) for p in probs), probs
PY
sqlite3 "$T/state/catalog.db" "SELECT count(*) FROM lifecycle WHERE name = 'verify.checkpoint'" | grep -qx 0 &&
	pass "a completed verify drops the checkpoint" || fail "checkpoint left after a complete verify"

# --time-limit: a deep verify (about 6 s at 1 MB/s) stopped after 1 s keeps a
# checkpoint and says it stopped early; the next one resumes and completes.
ctl --json verify --deep --restart --time-limit 1s >"$T/v10.json" 2>/dev/null || true
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["report"]; sys.exit(0 if r["complete"] is False and r["checked"] < 9 and "error" not in r else 1)' "$T/v10.json" &&
	pass "--time-limit 1s stopped a deep verify early, without an error" || fail "v10: $(cat "$T/v10.json")"
sqlite3 "$T/state/catalog.db" "SELECT count(*) FROM lifecycle WHERE name = 'verify.checkpoint'" | grep -qx 1 &&
	pass "--time-limit kept a checkpoint" || fail "no checkpoint after --time-limit"
ctl --json verify >"$T/v11.json" 2>/dev/null || true
python3 -c 'import json,sys; r=json.load(open(sys.argv[1]))["report"]; sys.exit(0 if r["complete"] and "resumed_from" in r else 1)' "$T/v11.json" &&
	pass "the next verify resumed and completed" || fail "v11: $(cat "$T/v11.json")"

tierd_stop
tierd_start TD_DIRTY_SCAN_S=100000 && pass "tierd restarted" || e2e_abort "tierd did not restart"
deadline=$((SECONDS + 20))
until status_get 'd["last_verify"]["complete"]' 2>/dev/null | grep -q True; do [ $SECONDS -lt $deadline ] || break; sleep 0.1; done
status_get 'd["last_verify"]["complete"]' | grep -q True && pass "status shows the last verify after a restart" || fail "after restart: $(status_get 'd.get("last_verify")') $(tail -20 "$T/tierd.log")"
ctl status | grep -q "^verify: *last " && pass "tierctl status prints the last verify" || fail "status text: $(ctl status)"

# An object under the prefix that no row owns.
stray=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
aws --endpoint-url "$REAL_ENDPOINT" s3 cp --quiet "$T/other" "s3://$TD_S3_BUCKET/$E2E_PREFIX${stray:0:2}/$stray"
ctl verify >"$T/v9.out" 2>&1 || true
grep -q "^-: orphan_object: ${stray:0:2}/$stray on target s3 has no row" "$T/v9.out" &&
	pass "an object without a row is reported by its key" || fail "v9: $(cat "$T/v9.out")"
finish
