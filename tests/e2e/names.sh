#!/usr/bin/env bash
# Acceptance 7 — hostile file names (newline, tab, spaces, invalid UTF-8,
# 255 bytes, a leading '-', glob and backslash characters, UTF-8) are tiered on
# radosgw by a run and by migrate, read back through their links, and reported
# by `info --json` and `ls --json` (path, or path_b64 when not UTF-8) without
# error; the manifests in the bucket name them exactly.
. "$(dirname "$0")/lib.sh"
e2e_init names s3
mkdir -p "$T/data/run" "$T/data/mig" "$T/data/run/$'\t'dir with space"
python3 - "$T/data" <<'PY'
import os, sys
top = os.fsencode(sys.argv[1])
names = [b"new\nline", b"tab\there", b"  spaces  ", b"bad\xff\xfeutf8", b"a" * 255,
         b"-leading", b"--help", b"*glob?[x]", b"back\\slash", "\u00fcn\u00efc\u00f8d\u00e9".encode(),
         b"\xc3\x28", b"quote\"'", b"x" * 250 + b"\xff" * 5, b".hidden", b"percent%s%n"]
for sub in (b"run", b"mig"):
    for i, n in enumerate(names):
        with open(os.path.join(top, sub, n), "wb") as f:
            f.write(os.urandom(100 + i * 333))
with open(os.path.join(top, b"run", b"$'\\t'dir with space", b"\xffdeep\nname"), "wb") as f:
    f.write(os.urandom(777))
PY
find "$T/data" -type f -exec touch -m -d '2020-01-01' {} +
snapshot "$T/data" "$T/snap"
total=$(find "$T/data" -type f -printf . | wc -c)
e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data/run $T/data/mig")"
e2e_start

mapfile -d '' mig < <(find "$T/data/mig" -type f -print0)
ctl migrate "${mig[@]}" >"$T/mig.out" 2>&1 && pass "migrate of ${#mig[@]} hostile names: exit 0" ||
	fail "migrate: $(cat "$T/mig.out")"
ctl run p >/dev/null && wait_idle 120 && pass "run finished" || fail "run"
tree_verify "all $total tiered and read back through their links" "$T/data" "$T/snap" --all-tiered
grep -q $'\xff' "$T/tierd.log" && fail "raw invalid UTF-8 in the log" || pass "log lines escaped (no raw \\xff)"

mapfile -d '' all < <(find "$T/data" -type l -print0)
ctl --json info "${all[@]}" >"$T/info.json" && pass "info --json on every name: exit 0" || fail "info --json: $(head -c 300 "$T/info.json")"
ctl --json ls >"$T/ls.json" && pass "ls --json: exit 0" || fail "ls --json"
ctl ls >/dev/null && ctl info "${all[@]}" >/dev/null && pass "plain ls/info print without error" || fail "plain ls/info"
python3 - "$T/info.json" "$T/ls.json" "$T/snap" "$T/data" <<'PY' && pass "info and ls name every file exactly (path or path_b64)" || fail "info/ls paths wrong"
import base64, json, os, sys
top = os.fsencode(sys.argv[4])
want = {os.path.join(top, bytes.fromhex(h)) for h in json.load(open(sys.argv[3]))}
def p(o, k):
    if k + "_b64" in o:
        return base64.b64decode(o[k + "_b64"])
    return o[k].encode("utf-8")
errs = []
info = json.load(open(sys.argv[1]))["files"]
got = set()
for f in info:
    if f.get("error") or f.get("state") not in ("tiered", "cached"):
        errs.append("info: %r" % f)
    if p(f, "original_path") != p(f, "path"):
        errs.append("info: original_path %r != path %r" % (p(f, "original_path"), p(f, "path")))
    got.add(p(f, "path"))
if got != want:
    errs.append("info paths differ: %r" % (sorted(got ^ want)[:3],))
ls = {p(f, "original_path") for f in json.load(open(sys.argv[2]))["files"]}
if ls != want:
    errs.append("ls paths differ: %r" % (sorted(ls ^ want)[:3],))
for e in errs[:10]:
    print("  " + e)
print("  %d paths, %d with path_b64" % (len(info), sum("path_b64" in f for f in info)))
sys.exit(1 if errs else 0)
PY
# The manifests name the files exactly.
bad=0
while read -r id; do
	s3get "$E2E_PREFIX${id:0:2}/$id.json" -o "$T/m.json" || { bad=$((bad + 1)); continue; }
	python3 -c "
import base64, json, sys
m = json.load(open('$T/m.json'))
p = base64.b64decode(m['path_b64']) if m.get('path_b64') else m['path'].encode()
import os; sys.exit(0 if os.path.lexists(p) and os.path.islink(p) else 1)" || { echo "  manifest $id: bad path"; bad=$((bad + 1)); }
done < <(python3 -c "import json; [print(f['id']) for f in json.load(open('$T/ls.json'))['files']]")
[ $bad = 0 ] && pass "every manifest's path (or path_b64) is the file's" || fail "$bad manifests with wrong paths"
tierd_stop
finish
