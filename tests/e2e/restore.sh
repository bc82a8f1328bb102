#!/usr/bin/env bash
# Issue 13 item 5 — `tierctl restore`: files of a real user tiered to radosgw
# (read back through the FUSE view). She deletes a link and restores it
# herself: it reads the same bytes, hers, with its mtime. A path now taken by
# another file is refused (exit 1, the file untouched). Another user may not
# restore her file (told nothing), root may. A whole deleted directory comes
# back with -r, its directories remade as hers.
. "$(dirname "$0")/lib.sh"
e2e_init restore s3
. "$E2E_LIB_DIR/users.sh"
alice=tdra$$
bob=tdrb$$
e2e_user "$alice"
e2e_user "$bob"
pass "users $alice and $bob made"
A=$T/data/alice
mkdir -p "$A/sub/deep" "$T/data/bob"
for f in a1 a2 a3 sub/s1 sub/s2 sub/deep/d1; do
	head -c $((1000 + RANDOM)) /dev/urandom >"$A/$f"
done
chown -R "$alice:" "$A"
chown -R "$bob:" "$T/data/bob"
chmod 0640 "$A/a1"
find "$T/data" -type f -exec touch -m -d @1500000000 {} +
snapshot "$T/data" "$T/snap"
e2e_conf "$(s3_target_conf s3)" "$(e2e_policy s3 "$T/data" keep_cached=no)"
e2e_start
ctl run p >/dev/null || fail "run refused"
wait_idle 200 || fail "run did not finish"
[ "$(find "$A" -type l | wc -l)" = 6 ] && pass "alice's six files tiered" || e2e_abort "not tiered"
sock=$T/run/tierd.sock
tc() { # USER ARGS...: tierctl as USER; stdout and stderr, then "rc=N"
	local u=$1 rc=0 out
	shift
	out=$(as_user "$u" "$TIERCTL" -s "$sock" "$@" 2>&1) || rc=$?
	printf '%s\nrc=%s\n' "$out" "$rc"
}
want=$(sha256sum <"$A/a1")
as_user "$alice" rm "$A/a1"
[ ! -e "$A/a1" ] && ! [ -L "$A/a1" ] && pass "alice deleted her link a1"
out=$(tc "$alice" restore "$A/a1")
[[ $out == *rc=0* ]] && pass "alice restores a1 herself" || fail "alice's restore: $out"
[ "$(as_user "$alice" sha256sum <"$A/a1")" = "$want" ] && pass "a1 reads the same bytes again (as alice)" ||
	fail "a1 reads otherwise"
[ "$(stat -c %U "$A/a1")" = "$alice" ] && [ "$(stat -L -c '%U %a %Y' "$A/a1")" = "$alice 640 1500000000" ] &&
	pass "the link and its file are alice's, mode 640, mtime kept" || fail "a1: $(stat -c %U "$A/a1") $(stat -L -c '%U %a %Y' "$A/a1")"

as_user "$alice" rm "$A/a2"
echo "a new file" | as_user "$alice" tee "$A/a2" >/dev/null
out=$(tc "$alice" restore "$A/a2")
[[ $out == *rc=1* && $out == *"something else stands at the path"* ]] && pass "restore over another file refused: ${out%%$'\n'*}" ||
	fail "restore over a file: $out"
[ "$(cat "$A/a2")" = "a new file" ] && [ ! -L "$A/a2" ] && pass "the file at a2 is untouched" || fail "a2 changed"
rm -f "$A/a2"
out=$(ctl restore "$A/a2" 2>&1) && pass "root restores a2 once the path is free" || fail "root's restore of a2: $out"

as_user "$alice" rm "$A/a3"
out=$(tc "$bob" restore "$A/a3")
[[ $out == *rc=1* && $out == *"nothing to restore"* && $out != *"$alice"* ]] && pass "bob may not restore alice's file (told nothing)" ||
	fail "bob's restore: $out"
[ ! -L "$A/a3" ] || fail "bob's restore made a link"
out=$(ctl restore "$A/a3" 2>&1) && [ -L "$A/a3" ] && pass "root restores a3" || fail "root's restore of a3: $out"

rm -rf "$A/sub"
out=$(tc "$alice" restore "$A/sub")
[[ $out == *rc=1* && $out == *"restore -r"* ]] && pass "a deleted directory without -r: refused, pointing at -r" || fail "dir without -r: $out"
out=$(tc "$alice" restore -r "$A/sub")
[[ $out == *rc=0* && $(grep -c '^restored' <<<"$out") == 3 ]] && pass "alice restores the whole deleted directory with -r (3 links)" ||
	fail "restore -r: $out"
[ "$(stat -c %U "$A/sub/deep")" = "$alice" ] && pass "its directories are remade as alice's" || fail "dir owner $(stat -c %U "$A/sub/deep")"
out=$(tc "$alice" restore -r "$A/sub")
[[ $out == *rc=0* && $out == *"already"* ]] && pass "restoring again changes nothing (exit 0)" || fail "second restore -r: $out"
rm -f "$A/a2"
ctl restore "$A/a2" >/dev/null
tree_verify "the whole tree reads back as it was" "$T/data" "$T/snap" --all-tiered
tierd_stop
finish
