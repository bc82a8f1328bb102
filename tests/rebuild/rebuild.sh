#!/usr/bin/env bash
# Issue 13 item 3, acceptance "rebuild" and "rebuild from a backup": N files
# (200; TD_BENCH_SIZE=full: the issue's 1,000) of varied owners, modes and
# mtimes are tiered to radosgw, then state_dir is removed: every file is
# unreadable. tierd, started on the empty state, says so and names rebuild;
# rebuild refuses while tierd runs. After `tierctl rebuild` every file reads
# byte-identical with its owner, mode and mtime (through the FUSE view). A
# second rebuild adds nothing; a row that differs is a conflict (exit 1). A
# manifest under another host's prefix in the same bucket is never read. Then
# the same again after the user tree itself is restored from a tar backup
# with its links archived as links.
. "$(dirname "$0")/../e2e/lib.sh"
e2e_init rebuild s3
N=${E2E_REBUILD_FILES:-200}
[ "${TD_BENCH_SIZE:-}" = full ] && N=1000
export MAX_TRANSFERS=8
python3 - "$T/data" "$N" <<'PY'
import os, sys
top, n = sys.argv[1], int(sys.argv[2])
owners = [(0, 0), (1000, 1000), (65534, 65534), (1234, 5678)]
modes = [0o600, 0o640, 0o644, 0o444, 0o755]
for i in range(n):
    d = os.path.join(top, "d%02d" % (i % 20))
    os.makedirs(d, exist_ok=True)
    p = os.path.join(d, "file-%04d.bin" % i)
    with open(p, "wb") as f:
        f.write(os.urandom(1 + (i * 7919) % 40000))
    os.chown(p, *owners[i % 4])
    os.chmod(p, modes[i % 5])
    os.utime(p, ns=(1500000000 * 10**9 + i, 1500000000 * 10**9 + i * 1000003))
PY
snapshot "$T/data" "$T/snap"
e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data" keep_cached=no)"
e2e_start
ctl run p >/dev/null || fail "run refused"
wait_idle 500 || fail "run did not finish"
[ "$(find "$T/data" -type l | wc -l)" = "$N" ] && pass "all $N files tiered" ||
	e2e_abort "$(find "$T/data" -type l | wc -l) of $N files tiered"
tar -C "$T" -cf "$T/backup.tar" data && pass "user tree backed up with tar (links as links)"
# Another host, same bucket, its own prefix: one of our manifests and its object
# copied there must not be read by our rebuild.
OTHER="${E2E_PREFIX%/}-otherhost/"
E2E_CLEANUP_HOOKS+=("aws --endpoint-url \"\$TD_S3_ENDPOINT\" s3 rm --quiet --recursive \"s3://\$TD_S3_BUCKET/$OTHER\"")
s3_keys >"$T/keys"
k=$(grep '\.json$' "$T/keys" | sed -n 1p)
aws --endpoint-url "$TD_S3_ENDPOINT" s3 cp --quiet "s3://$TD_S3_BUCKET/$k" "s3://$TD_S3_BUCKET/$OTHER${k#"$E2E_PREFIX"}"
aws --endpoint-url "$TD_S3_ENDPOINT" s3 cp --quiet "s3://$TD_S3_BUCKET/${k%.json}" "s3://$TD_S3_BUCKET/$OTHER${k#"$E2E_PREFIX"}"
tierd_stop

lose_state() {
	rm -rf "$T/state" "$T/cache"
	local bad=0 f
	for f in $(find "$T/data" -type l | head -20); do
		cat "$f" >/dev/null 2>&1 && bad=$((bad + 1))
	done
	[ $bad = 0 ] && pass "state_dir gone: files unreadable" || fail "$bad files still read"
}

lose_state
tierd_start || e2e_abort "tierd did not start on an empty state"
grep -q "tierctl rebuild" "$T/tierd.log" || {
	# the notice comes once the target has been listed: wait for that line
	for _ in $(seq 100); do grep -q "tierctl rebuild" "$T/tierd.log" && break; sleep 0.1; done
}
grep "tierctl rebuild" "$T/tierd.log" >/dev/null && pass "tierd on the empty state points at rebuild: $(grep -o 'the catalog in.*' "$T/tierd.log" | head -1 | cut -c1-100)..." ||
	fail "tierd said nothing about the lost state"
out=$(ctl rebuild 2>&1) && fail "rebuild ran while tierd was running" ||
	{ grep -q "tierd is running" <<<"$out" && pass "rebuild refuses while tierd runs: $out" || fail "rebuild: $out"; }
tierd_stop

out=$(ctl rebuild 2>&1) && pass "rebuild exit 0: $(tail -1 <<<"$out")" || fail "rebuild failed: $out"
grep -q "^rebuild: $N manifests: $N added" <<<"$out" && pass "rebuild added exactly $N rows (the other host's manifest not read)" ||
	fail "rebuild summary: $(tail -1 <<<"$out")"
e2e_start
tree_verify "every file reads back after rebuild" "$T/data" "$T/snap" --all-tiered
tierd_stop
out=$(ctl --json rebuild 2>&1) &&
	python3 -c 'import json,sys; d=json.loads(sys.argv[1]); assert d["added"]==0 and d["present"]==int(sys.argv[2]) and d["conflicts"]==0, d' "$out" "$N" &&
	pass "second rebuild adds nothing ($N present)" || fail "second rebuild: $out"
# A conflict: the catalog's row says another size than its manifest.
id=$(sqlite3 "$T/state/catalog.db" "SELECT id FROM files ORDER BY id LIMIT 1")
sqlite3 "$T/state/catalog.db" "UPDATE files SET size = size + 1 WHERE id = '$id'"
out=$(ctl rebuild 2>&1) && fail "a conflicting row went unreported" ||
	{ grep -q "conflict .*$id" <<<"$out" && pass "a differing row is reported as a conflict, exit 1" || fail "conflict: $out"; }
sqlite3 "$T/state/catalog.db" "UPDATE files SET size = size - 1 WHERE id = '$id'"

# From a backup: the user tree and state_dir both lost, the tree untarred.
rm -rf "$T/data"
lose_state() { rm -rf "$T/state" "$T/cache"; }
lose_state
tar -C "$T" -xpf "$T/backup.tar" && [ "$(find "$T/data" -type l | wc -l)" = "$N" ] &&
	pass "user tree restored from tar: $N links" || fail "tar restore"
out=$(ctl rebuild 2>&1) && grep -q "$N added" <<<"$out" && pass "rebuild after the tar restore: $(tail -1 <<<"$out")" ||
	fail "rebuild after tar: $out"
e2e_start
tree_verify "every file of the restored tree reads back" "$T/data" "$T/snap" --all-tiered
tierd_stop
finish
