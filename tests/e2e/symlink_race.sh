#!/usr/bin/env bash
# Acceptance 4 — a directory in a policy path swapped for a symlink to a
# directory outside the root while tierd migrates (a helper swaps it back and
# forth for a bounded time, while runs and migrates through the path go on):
# nothing outside the root is read, replaced or chowned — every outside file
# keeps its sha256, owner, mode, mtime; no link, temp name or new entry appears
# outside; no catalog row or manifest in the bucket names or hashes an outside
# file. Inside, every file ends untouched or tiered and readable.
. "$(dirname "$0")/lib.sh"
e2e_init symrace s3
hpid=
E2E_CLEANUP_HOOKS+=('[ -n "$hpid" ] && kill "$hpid" 2>/dev/null')

mkdir -p "$T/data/a/victim/sub" "$T/outside/sub" "$T/data/other"
for i in $(seq 150); do
	head -c $((1000 + i * 37)) /dev/urandom >"$T/data/a/victim/f$i"
	head -c $((1000 + i * 37)) /dev/urandom >"$T/outside/f$i"
done
for i in $(seq 30); do
	head -c 5000 /dev/urandom >"$T/data/a/victim/sub/g$i"
	head -c 5000 /dev/urandom >"$T/outside/sub/g$i"
	head -c 3000 /dev/urandom >"$T/data/other/h$i"
done
head -c $((6 * 1024 * 1024)) /dev/urandom >"$T/outside/sub/big"
head -c $((6 * 1024 * 1024)) /dev/urandom >"$T/data/a/victim/sub/big"
chown -R 1000:1000 "$T/data"
chown -R 777:778 "$T/outside"
chmod 604 "$T/outside/f"*
find "$T/data" "$T/outside" -type f -exec touch -m -d '2020-02-02 02:02:02' {} +
touch -m -d '2019-01-01' "$T/outside/f7"
snapshot "$T/data" "$T/snap"
snapshot "$T/outside" "$T/osnap"
find "$T/outside" -printf '%y %m %u %g %p\n' | sort >"$T/olist"

e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data")"
e2e_start

# The swapper: victim <-> symlink to ../outside, by renames (the name always
# exists), for 10 s.
python3 - "$T/data/a" "$T/outside" 10 <<'PY' &
import os, sys, time, random
d, outside, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
v, hold, ln = d + "/victim", d + "/.hold", d + "/.ln"
end = time.monotonic() + secs
n = 0
while time.monotonic() < end:
    os.symlink(outside, ln)
    os.rename(v, hold)        # victim gone for a moment
    os.rename(ln, v)          # victim -> outside
    time.sleep(random.uniform(0, 0.01))
    os.rename(v, ln)
    os.rename(hold, v)        # victim is the real directory again
    os.unlink(ln)
    time.sleep(random.uniform(0, 0.01))
    n += 1
print("swapper: %d swaps" % n)
PY
hpid=$!
runs=0 migs=0
while kill -0 "$hpid" 2>/dev/null; do
	ctl run p >/dev/null 2>&1 && runs=$((runs + 1))
	# Also ask for files through the swapped path explicitly.
	ctl migrate "$T/data/a/victim/f$((RANDOM % 150 + 1))" "$T/data/a/victim/sub/g$((RANDOM % 30 + 1))" \
		"$T/data/a/victim/sub/big" >>"$T/mig.out" 2>&1 || true
	migs=$((migs + 1))
	wait_idle 60 || true
done
wait "$hpid" && pass "swapper ran ($runs runs, $migs migrates during the race)" || fail "swapper failed"
hpid=
echo "  migrate outcomes during the race: $(grep -oE ': (tiered|skipped|failed|restored)' "$T/mig.out" | sort | uniq -c | tr '\n' ' ')"
echo "  e.g.: $(grep -E 'skipped|failed' "$T/mig.out" | head -2 | tr '\n' ' ')"
wait_idle 120 || fail "tierd not idle"
[ "$(find "$T/data/a" -maxdepth 1 -type l | wc -l)" = 0 ] && [ -d "$T/data/a/victim" ] || fail "swapper left a mess"

find "$T/outside" -printf '%y %m %u %g %p\n' | sort >"$T/olist2"
diff "$T/olist" "$T/olist2" >/dev/null && pass "outside tree: same entries, types, modes, owners (no link, temp name or new file)" ||
	{ fail "outside tree changed"; diff "$T/olist" "$T/olist2" | head; }
tree_verify "outside tree: every file's sha256, owner, mode, mtime unchanged" "$T/outside" "$T/osnap"
tree_verify "inside: every file untouched or tiered and readable" "$T/data" "$T/snap"

ctl --json ls >"$T/ls.json"
mkdir -p "$T/m"
python3 -c "
import json
for f in json.load(open('$T/ls.json'))['files']:
    print(f['id'])" | while read -r id; do
	s3get "$E2E_PREFIX${id:0:2}/$id.json" -o "$T/m/$id.json" || echo "  no manifest for $id"
done
python3 - "$T/ls.json" "$T/m" "$T/osnap" "$T/outside" "$T/data" <<'PY' && pass "no catalog row or manifest names or hashes an outside file" || fail "outside data reached the catalog or bucket"
import json, os, sys
rows = json.load(open(sys.argv[1]))["files"]
osha = {v["sha256"] for v in json.load(open(sys.argv[3])).values()}
outside, data = sys.argv[4], sys.argv[5]
bad = 0
for r in rows:
    p = r.get("original_path", "")
    if not p.startswith(data + "/") or r["sha256"] in osha:
        print("  row %s: %s %s" % (r["id"], p, r["sha256"])); bad += 1
    mf = os.path.join(sys.argv[2], r["id"] + ".json")
    if os.path.exists(mf):
        m = json.load(open(mf))
        if not m["path"].startswith(data + "/") or m["sha256"] in osha or os.path.realpath(m["path"]).startswith(outside):
            print("  manifest %s: %s" % (r["id"], m["path"])); bad += 1
print("%d rows checked" % len(rows))
sys.exit(1 if bad else 0)
PY

# With the race over, a run tiers everything inside.
ctl run p >/dev/null && wait_idle 120 || fail "last run"
tree_verify "after the race a run tiers every inside file" "$T/data" "$T/snap" --all-tiered
tree_verify "outside tree still unchanged" "$T/outside" "$T/osnap"
tierd_stop
finish
