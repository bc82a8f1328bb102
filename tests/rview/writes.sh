#!/usr/bin/env bash
# Writes through links to tiered files (DESIGN.md invariant 6: a modified copy
# is never thrown away): append, truncate-and-rewrite and in-place overwrite of
# cold files, a write straight into a hydrated copy, eviction running while a
# copy is written, recall by owner and by a stranger, a moved link, and a
# crash in the middle of a recall. Every file must end with exactly the bytes
# written, as a regular file at its original path, and nothing left behind.
. "$(dirname "$0")/lib.sh"
set -e
need_fuse
rv_setup writes
C=(-c "$conf")

mkdir -p "$t/data/sub"
chmod 777 "$t/data"
rv_conf_nas "${CACHE_SIZE:-1G}"

start() { TD_DIRTY_SCAN_S=1 start_tierd || { fail "tierd did not start"; finish; }; }
stop() { stop_tierd; }
# Waits until PATH is a regular file (recalled), up to 15 s.
wait_regular() {
	for _ in $(seq 300); do
		[ -f "$1" ] && [ ! -L "$1" ] && return 0
		sleep 0.05
	done
	return 1
}
mk() { head -c "$2" /dev/urandom >"$1"; }

for f in a b c d e o m; do mk "$t/data/$f.bin" 1500000; done
chown 1234:1234 "$t/data/o.bin" "$t/data/m.bin"
chmod 640 "$t/data/o.bin"
cp -a "$t/data/." "$t/orig/"
start
"$TIERCTL" "${C[@]}" migrate "$t"/data/*.bin >/dev/null && pass "tiered 7 files" || fail "migrate"
for f in a b c d e o m; do [ -L "$t/data/$f.bin" ] || fail "$f.bin is not a link"; done

# 1. Append to a cold file through its link.
echo APPENDED >>"$t/data/a.bin"
cat "$t/orig/a.bin" - <<<"APPENDED" >"$t/want-a"
wait_regular "$t/data/a.bin" && cmp -s "$t/want-a" "$t/data/a.bin" &&
	pass "append: recalled as a regular file with the new bytes" || fail "append"

# 2. Truncate and rewrite.
printf 'brand new contents\n' >"$t/data/b.bin"
wait_regular "$t/data/b.bin" && [ "$(cat "$t/data/b.bin")" = "brand new contents" ] &&
	pass "truncate-and-rewrite" || fail "truncate-and-rewrite: $(head -c 40 "$t/data/b.bin" | od -c | head -2)"

# 3. In-place overwrite in the middle.
printf 'XYZ' | dd of="$t/data/c.bin" bs=1 seek=700000 conv=notrunc status=none
{ head -c 700000 "$t/orig/c.bin"; printf XYZ; tail -c +700004 "$t/orig/c.bin"; } >"$t/want-c"
wait_regular "$t/data/c.bin" && cmp -s "$t/want-c" "$t/data/c.bin" &&
	pass "in-place overwrite" || fail "in-place overwrite"

# 4. A write straight into a hydrated copy (tierd is not in that path).
cat "$t/data/d.bin" >/dev/null # hydrates; the link is rebound to the copy
for _ in $(seq 200); do
	dl=$(readlink "$(readlink "$t/data/d.bin")")
	[[ $dl == "$t/cache/"* ]] && break
	sleep 0.05
done
[[ $dl == "$t/cache/"* ]] && pass "hydrated: the dynamic link points at the cache copy" || fail "not rebound: $dl"
echo DIRECT >>"$t/data/d.bin"
cat "$t/orig/d.bin" - <<<"DIRECT" >"$t/want-d"
wait_regular "$t/data/d.bin" && cmp -s "$t/want-d" "$t/data/d.bin" &&
	pass "a direct write into the copy is noticed and recalled" || fail "direct write"

# 5. Recall by its owner works; by a stranger it is refused.
set +e
out=$(setpriv --reuid=1235 --regid=1235 --clear-groups "$TIERCTL" -s "$t/run/tierd.sock" recall "$t/data/o.bin" 2>&1)
rc=$?
set -e
[ $rc = 1 ] && [[ $out == *"not your file"* ]] && [ -L "$t/data/o.bin" ] &&
	pass "a stranger cannot recall someone else's file" || fail "stranger recall: rc=$rc $out"
setpriv --reuid=1234 --regid=1234 --clear-groups "$TIERCTL" -s "$t/run/tierd.sock" --json recall "$t/data/o.bin" >"$t/recall.json" &&
	python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); sys.exit(0 if (d["recalled"], d["skipped"], d["failed"], len(d["files"])) == (1, 0, 0, 1) else 1)' "$t/recall.json" &&
	[ -f "$t/data/o.bin" ] && [ ! -L "$t/data/o.bin" ] && cmp -s "$t/orig/o.bin" "$t/data/o.bin" &&
	[ "$(stat -c '%u %a' "$t/data/o.bin")" = "1234 640" ] &&
	pass "its owner recalls it (--json: recalled 1, skipped 0, failed 0): same bytes, owner and mode" || fail "owner recall: $(cat "$t/recall.json" 2>/dev/null)"

# 6. A moved link: the copy is kept (pinned) and status says so.
cat "$t/data/m.bin" >/dev/null
mv "$t/data/m.bin" "$t/data/sub/moved.bin"
set +e
"$TIERCTL" "${C[@]}" recall "$t/data/sub/moved.bin" >/dev/null 2>"$t/moved.err"
set -e
grep -q "no longer at its path" "$t/moved.err" && cmp -s "$t/orig/m.bin" "$t/data/sub/moved.bin" &&
	"$TIERCTL" "${C[@]}" --json info "$t/data/sub/moved.bin" | grep '"pinned": true' >/dev/null &&
	pass "moved link: recall refused, copy pinned, still readable" || fail "moved link: $(cat "$t/moved.err")"
"$TIERCTL" "${C[@]}" status | grep "no longer at its path" >/dev/null &&
	pass "status reports the pinned copy" || fail "status does not report it"
stop

# 7. A crash in the middle of a recall, at each step: restart finishes or undoes it.
for step in recall_started recall_placed recalled; do
	f=$t/data/e.bin
	[ -L "$f" ] || { cp -a "$t/orig/e.bin" "$f"; }
	TD_TEST_CRASH_AT=$step start_tierd || true
	[ -L "$f" ] || "$TIERCTL" "${C[@]}" migrate "$f" >/dev/null
	cat "$f" >/dev/null # hydrate
	"$TIERCTL" "${C[@]}" recall "$f" >/dev/null 2>&1 || true
	wait "$pid" 2>/dev/null || true
	pid=
	start
	for _ in $(seq 100); do [ -e "$t/data/.tierd-"* ] 2>/dev/null || break; sleep 0.05; done
	if cmp -s "$t/orig/e.bin" "$f" && [ -z "$(find "$t/data" -name '.tierd-*')" ] &&
		! "$TIERCTL" "${C[@]}" --json ls --state recalling | grep '"id"' >/dev/null; then
		pass "crash after $step: file intact ($( [ -L "$f" ] && echo link || echo regular)), no leftovers"
	else
		fail "crash after $step: $(ls -la "$t/data" | head -20)"
	fi
	stop
done

# 8. Eviction running while a copy is being written: the write is not lost.
for f in v w x y; do mk "$t/data/$f.bin" 1500000; cp -a "$t/data/$f.bin" "$t/orig/"; done
sed -i 's/^cache_size = .*/cache_size = 2M/' "$t/tierd.conf"
start
"$TIERCTL" "${C[@]}" migrate "$t"/data/[vwxy].bin >/dev/null
cat "$t/data/v.bin" >/dev/null # v is hydrated ...
for _ in $(seq 200); do
	[[ $(readlink "$(readlink "$t/data/v.bin")") == "$t/cache/"* ]] && break
	sleep 0.05
done
exec 7>>"$t/data/v.bin" # ... and held open for writing, through the link, in the copy
cat "$t/data/w.bin" "$t/data/x.bin" "$t/data/y.bin" >/dev/null # the cache overflows: evictions
for _ in $(seq 200); do
	"$TIERCTL" "${C[@]}" --json status | grep '"evictions": [1-9]' >/dev/null && break
	sleep 0.05
done
echo "WRITTEN DURING EVICTION" >&7
exec 7>&-
cat "$t/orig/v.bin" - <<<"WRITTEN DURING EVICTION" >"$t/want-v"
"$TIERCTL" "${C[@]}" --json status | grep '"evictions": [1-9]' >/dev/null &&
	pass "evictions ran while v.bin was open for writing" || fail "no eviction happened"
wait_regular "$t/data/v.bin" && cmp -s "$t/want-v" "$t/data/v.bin" &&
	pass "the write made during eviction is in the recalled file" || fail "write lost during eviction"
for f in w x y; do cmp -s "$t/orig/$f.bin" "$t/data/$f.bin" || fail "$f.bin reads wrong after eviction"; done
stop
finish
