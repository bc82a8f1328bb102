#!/usr/bin/env bash
# Acceptance 1 — round trip on radosgw: files of varied sizes (0, 1, 5M-1, 5M+1
# multipart, a few MiB), owners, modes and old mtimes are tiered by a policy run
# (age) and by `migrate`, read back through their links byte-identical with
# owner, mode and mtime intact; objects and manifests are in the bucket and each
# manifest's sha256 and size match the file.
. "$(dirname "$0")/lib.sh"
e2e_init roundtrip s3

mkdir -p "$T/data/aged/sub/deeper" "$T/data/fresh"
mk() { # PATH SIZE UID:GID MODE
	head -c "$2" /dev/urandom >"$1"
	chown "$3" "$1"
	chmod "$4" "$1"
}
owners=(0:0 1000:1000 65534:65534 1234:5678 4242:0)
modes=(600 640 644 444 755 400)
sizes=(0 1 2 4095 4096 65536 1048576 3145728 5242879 5242881 7340032)
n=0
for s in "${sizes[@]}"; do
	for d in aged aged/sub fresh; do
		n=$((n + 1))
		mk "$T/data/$d/f$n-$s" "$s" "${owners[n % 5]}" "${modes[n % 6]}"
	done
done
for i in $(seq 10); do
	n=$((n + 1))
	mk "$T/data/aged/sub/deeper/small$i" $((i * 100)) "${owners[i % 5]}" "${modes[i % 6]}"
done
# Old mtimes (varied) for the policy's files; the fresh ones keep "now".
i=0
while IFS= read -r -d '' f; do
	i=$((i + 1))
	touch -m -d "@$((1500000000 + i * 86400 + i))" "$f"
done < <(find "$T/data/aged" -type f -print0)
touch -m -d "@1600000000.123456789" "$T/data/aged/f1-0"
snapshot "$T/data" "$T/snap"
total=$(find "$T/data" -type f | wc -l)
fresh=$(find "$T/data/fresh" -type f | wc -l)

e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data" min_age=30d)"
e2e_start

ctl run p >/dev/null && pass "run p accepted" || fail "run p refused"
wait_idle 150 && pass "run finished" || fail "run did not finish"
aged_links=$(find "$T/data/aged" -type l | wc -l)
[ "$aged_links" = $((total - fresh)) ] && pass "run tiered all $aged_links aged files" ||
	fail "run tiered $aged_links of $((total - fresh)) aged files: $(tail -5 "$T/tierd.log")"
[ "$(find "$T/data/fresh" -type l | wc -l)" = 0 ] && pass "run left fresh files alone" ||
	fail "run tiered fresh files"

mapfile -d '' fresh_files < <(find "$T/data/fresh" -type f -print0)
# The biggest of them with --json: the summary counts and the file's outcome.
first=$(for f in "${fresh_files[@]}"; do printf '%s\t%s\n' "$(stat -c %s "$f")" "$f"; done | sort -n | tail -1 | cut -f2)
first_size=$(stat -c %s "$first")
[ "$first_size" -gt 0 ] || fail "no non-empty fresh file for migrate --json"
for i in "${!fresh_files[@]}"; do [ "${fresh_files[$i]}" = "$first" ] && unset "fresh_files[$i]"; done
fresh_files=("${fresh_files[@]}")
if ctl --json migrate "$first" >"$T/migrate.json" 2>"$T/migrate.err"; then
	python3 - "$T/migrate.json" "$first" "$first_size" <<'PY' && pass "migrate --json: one document, tiered 1, skipped 0, failed 0, bytes = the file's size" || fail "migrate --json: $(cat "$T/migrate.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert (d["tiered"], d["skipped"], d["failed"]) == (1, 0, 0), d
assert d["bytes"] == int(sys.argv[3]), d
assert len(d["files"]) == 1 and d["files"][0].get("path") == sys.argv[2], d["files"]
PY
else
	fail "migrate --json: exit $?: $(cat "$T/migrate.err")"
fi
if ctl migrate "${fresh_files[@]}" >"$T/migrate.out" 2>&1; then
	pass "migrate of ${#fresh_files[@]} fresh files: exit 0"
else
	fail "migrate: $(tail -5 "$T/migrate.out")"
fi
[ "$(grep -c tiered "$T/migrate.out")" -ge "${#fresh_files[@]}" ] && pass "migrate printed per-file outcomes" ||
	fail "migrate output: $(head -5 "$T/migrate.out")"

tree_verify "every file tiered, reads back byte-identical with owner/mode/mtime" "$T/data" "$T/snap" --all-tiered
# stat -L spot check on one file, through the link, with the shell tools too.
f="$T/data/aged/sub/f5-1"
[ -L "$f" ] && [ "$(stat -L -c '%u:%g %a %Y' "$f")" = "$(python3 -c "
import json,os,sys; s=json.load(open('$T/snap'))[os.fsencode('aged/sub/f5-1').hex()]
print('%d:%d %o %d' % (s['uid'], s['gid'], s['mode'], s['mtime_ns']//10**9))")" ] &&
	pass "stat -L through a link: owner, mode, mtime as before" || fail "stat -L of $f: $(stat -L -c '%u:%g %a %Y' "$f")"
[ "$(stat -L -c %y "$T/data/aged/f1-0")" = "$(date -d @1600000000.123456789 '+%Y-%m-%d %H:%M:%S.%N %z')" ] &&
	pass "nanosecond mtime kept" || fail "mtime of f1-0: $(stat -L -c %y "$T/data/aged/f1-0")"

ctl --json ls >"$T/ls.json" && pass "ls --json" || fail "ls --json"
ctl --json status >"$T/status.json"
s3_keys >"$T/keys"
python3 - "$T/ls.json" "$T/keys" "$E2E_PREFIX" "$total" "$T/status.json" <<'PY' && pass "catalog: $total rows, all cached/tiered; bucket: one object + one manifest each, nothing else" || fail "catalog/bucket mismatch"
import json, sys
ls = json.load(open(sys.argv[1]))["files"]
keys = set(open(sys.argv[2]).read().split())
prefix, total = sys.argv[3], int(sys.argv[4])
st = json.load(open(sys.argv[5]))
ok = True
if len(ls) != total:
    print("  %d catalog rows, expected %d" % (len(ls), total)); ok = False
want = set()
for f in ls:
    if f["state"] not in ("tiered", "cached"):
        print("  %s state %s" % (f["id"], f["state"])); ok = False
    k = prefix + f["key"] if not f["key"].startswith(prefix) else f["key"]
    want |= {k, k + ".json"}
    if k != prefix + f["id"][:2] + "/" + f["id"]:
        print("  unexpected key %s for %s" % (k, f["id"])); ok = False
if keys != want:
    print("  missing:", sorted(want - keys)[:5], "extra:", sorted(keys - want)[:5]); ok = False
n = sum(st["files"].get(s, 0) for s in ("tiered", "cached"))
if n != total:
    print("  status counts %s" % st["files"]); ok = False
sys.exit(0 if ok else 1)
PY

# Every object: HEAD size = file size; every manifest: sha256/size/path/owner/mode = the file's.
bad=0
mkdir -p "$T/m"
while IFS=$'\t' read -r id key size; do
	hsz=$(s3get "$key" -I | tr -d '\r' | awk -F': ' 'tolower($1)=="content-length"{print $2}')
	[ "$hsz" = "$size" ] || { echo "  $key: HEAD size '$hsz', expected $size"; bad=$((bad + 1)); }
	s3get "$key.json" -o "$T/m/$id.json" || { echo "  $key.json: GET failed"; bad=$((bad + 1)); }
done < <(python3 -c "
import json
for f in json.load(open('$T/ls.json'))['files']:
    k = f['key'] if f['key'].startswith('$E2E_PREFIX') else '$E2E_PREFIX' + f['key']
    print('\t'.join([f['id'], k, str(f['size'])]))")
python3 - "$T/ls.json" "$T/snap" "$T/data" "$T/m" <<'PY' || bad=$((bad + 1))
import json, os, sys
snap = json.load(open(sys.argv[2]))
top = os.fsencode(sys.argv[3])
errs = []
for f in json.load(open(sys.argv[1]))["files"]:
    path = os.fsencode(f["original_path"])
    s = snap[os.path.relpath(path, top).hex()]
    try:
        m = json.load(open(os.path.join(sys.argv[4], f["id"] + ".json")))
    except OSError as e:
        errs.append("%r: %s" % (path, e)); continue
    if not (m.get("sha256") == f["sha256"] == s["sha256"]):
        errs.append("%r: sha256 manifest %s catalog %s file %s" % (path, m.get("sha256"), f["sha256"], s["sha256"]))
    if not (m.get("size") == f["size"] == s["size"]):
        errs.append("%r: size manifest %s file %s" % (path, m.get("size"), s["size"]))
    if m.get("path") != os.fsdecode(path):
        errs.append("%r: manifest path %r" % (path, m.get("path")))
    for k in ("uid", "gid"):
        if m.get(k, s[k]) != s[k]:
            errs.append("%r: manifest %s %s, file %s" % (path, k, m[k], s[k]))
    if (m.get("mode", s["mode"]) & 0o7777) != s["mode"]:
        errs.append("%r: manifest mode %o, file %o" % (path, m["mode"], s["mode"]))
for e in errs:
    print("  " + e)
sys.exit(1 if errs else 0)
PY
[ $bad = 0 ] && pass "HEAD sizes and manifests (sha256, size, path, owner, mode) match all $total files" ||
	fail "$bad object/manifest mismatches"

# info's key is the whole object key (prefix included), and options may follow
# the command: `aws s3 cp s3://BUCKET/KEY` with it gives the file's bytes.
one=$(python3 -c "import json; print(json.load(open('$T/ls.json'))['files'][0]['original_path'])")
key=$(ctl info --json "$one" | python3 -c 'import json,sys; print(json.load(sys.stdin)["files"][0]["key"])') &&
	case $key in "$E2E_PREFIX"*) pass "info --json after the command gives the full key $key" ;;
	*) fail "info key '$key' lacks the prefix $E2E_PREFIX" ;; esac || fail "info --json PATH failed"
aws --endpoint-url "$TD_S3_ENDPOINT" s3 cp "s3://$TD_S3_BUCKET/$key" "$T/by-key" >/dev/null &&
	cmp -s "$T/by-key" "$one" && pass "aws s3 cp of info's key gives the original bytes" ||
	fail "aws s3 cp s3://$TD_S3_BUCKET/$key does not give $one's bytes"

[ -z "$(s3_uploads)" ] && pass "no open multipart uploads" || fail "open multipart uploads: $(s3_uploads)"
tierd_stop
finish
