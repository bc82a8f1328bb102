#!/usr/bin/env bash
# tierctl plan end to end from a config file: a hostile-name tree (newline,
# tab, invalid UTF-8, leading '-', 255-byte names, a ~4,000-byte path) is
# scanned without error and reported correctly in text and JSON; a missing
# root exits 1; an unknown policy or a bad config exits 2.
set -euo pipefail
: "${TIERCTL:?}"
. "$(dirname "$0")/../lib/conf.sh"
tmp=$(mktemp -d /tmp/tierd-plan-hostile.XXXXXX)
trap 'rm -rf -- "$tmp"' EXIT
root="$tmp/data"
mkdir -p "$root" "$tmp/state"
old() { head -c "${2:-100}" /dev/zero >"$1"; touch -d '400 days ago' -- "$1"; }
old "$root/"$'new\nline'
old "$root/"$'tab\there'
old "$root/"$'bad\xff\xfe'
old "$root/-leading-dash"
long=$(printf 'L%.0s' $(seq 255))
old "$root/$long"
mkdir "$root/"$'dir\x80'
old "$root/"$'dir\x80/inner' 5000
deep="$root"
for i in $(seq 19); do
	deep="$deep/$(printf 'd%.0s' $(seq 199))"
done
mkdir -p "$deep"
old "$deep/deepfile"
printf 'young' >"$root/young"
{
	td_conf_tierd "$tmp"
	td_conf_dir_target nas "$tmp/nas"
	cat <<CONF
[policy "hostile"]
paths = $root
target = nas
age_by = mtime
min_age = 30d
min_size = 1
CONF
} >"$tmp/t.conf"
"$TIERCTL" -c "$tmp/t.conf" plan --list >"$tmp/out.txt"
cat "$tmp/out.txt"
grep -q 'would move:  7 files' "$tmp/out.txt"
grep -qF "$root/new\\nline" "$tmp/out.txt"
grep -qF "$root/tab\\there" "$tmp/out.txt"
grep -qF "$root/bad\\xff\\xfe" "$tmp/out.txt"
grep -qF "$root/dir\\x80/inner" "$tmp/out.txt"
grep -qF -- "$root/-leading-dash" "$tmp/out.txt"
grep -qF "$root/$long" "$tmp/out.txt"
grep -qF "/deepfile" "$tmp/out.txt"
grep -q 'too_young 1' "$tmp/out.txt"

"$TIERCTL" -c "$tmp/t.conf" --json plan --list >"$tmp/out.json"
python3 - "$tmp/out.json" "$root" <<'PY'
import base64, json, sys
doc = json.load(open(sys.argv[1]))
root = sys.argv[2].encode()
p = doc["policies"][0]
for k in ("name", "scanned_files", "scanned_bytes", "candidate_files", "candidate_bytes",
          "age_histogram", "top_dirs", "skipped"):
    assert k in p, k
assert p["candidate_files"] == 7, p["candidate_files"]
assert p["skipped"]["too_young"] == 1
def raw(e):
    return base64.b64decode(e["path_b64"]) if "path_b64" in e else e["path"].encode()
paths = {raw(c) for c in p["candidates"]}
want = {root + b"/new\nline", root + b"/tab\there", root + b"/bad\xff\xfe",
        root + b"/-leading-dash", root + b"/" + b"L" * 255, root + b"/dir\x80/inner"}
assert want <= paths, want - paths
deep = [x for x in paths if x.endswith(b"/deepfile")]
assert len(deep) == 1 and len(deep[0]) > 3800, deep
assert p["top_dirs"][0]["bytes"] == 5000 and raw(p["top_dirs"][0]) == root + b"/dir\x80"
print("json ok")
PY

# exit codes: missing root 1, unknown policy 2, unreadable config 2
sed -i "s|^paths = .*|paths = $root $tmp/missing|" "$tmp/t.conf"
rc=0; "$TIERCTL" -c "$tmp/t.conf" plan >/dev/null 2>"$tmp/err" || rc=$?
[ "$rc" = 1 ] && grep -q missing "$tmp/err"
rc=0; "$TIERCTL" -c "$tmp/t.conf" plan --policy nope >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ]
rc=0; "$TIERCTL" -c "$tmp/nonexistent.conf" plan >/dev/null 2>&1 || rc=$?
[ "$rc" = 2 ]
echo "plan_hostile ok"
